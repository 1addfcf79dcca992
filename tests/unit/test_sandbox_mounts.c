//  sandbox_mounts: the plan shows only what it should.
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mount.h>
#include "actors/executor/sandbox_mounts.h"

static int
op_find (const tako_sandbox_mounts_t *plan, tako_mount_kind_t kind, const char *path)
{
    for (int i = 0; i < plan->count; i++)
        if (plan->ops [i].kind == kind && strcmp (tako_sandbox_mounts_op_path (plan, i), path) == 0)
            return i;
    return -1;
}

Test (sandbox_mounts, plan_binds_usr_read_only_and_generates_etc)
{
    tako_sandbox_mounts_spec_t spec = { NULL, 1 << 20, 1 << 20, false, NULL, NULL, 0 };
    tako_sandbox_mounts_t plan;
    const char *error = NULL;
    cr_assert_eq (tako_sandbox_mounts_plan (&plan, &spec, &error), 0, "%s", error);
    int usr = op_find (&plan, TAKO_MOUNT_BIND, "/usr");
    cr_assert (usr >= 0);
    cr_assert (plan.ops [usr].flags & MS_RDONLY);
    int passwd = op_find (&plan, TAKO_MOUNT_FILE, "/etc/passwd");
    cr_assert (passwd >= 0);
    cr_assert_null (strstr (plan.ops [passwd].data, "root:x:0:0:root:/root"));
    cr_assert (op_find (&plan, TAKO_MOUNT_PROC, "/proc") >= 0);
    cr_assert (op_find (&plan, TAKO_MOUNT_TMPFS, "/output") >= 0);
    cr_assert (plan.ops [op_find (&plan, TAKO_MOUNT_TMPFS, "/tmp")].flags & MS_NOEXEC);
    cr_assert (op_find (&plan, TAKO_MOUNT_BIND, "/home") < 0);
    cr_assert (op_find (&plan, TAKO_MOUNT_BIND, "/dev/null") >= 0);
    tako_sandbox_mounts_release (&plan);
    tako_sandbox_mounts_release (&plan);
}

Test (sandbox_mounts, binds_below_staging_are_refused)
{
    const char *sources [] = { "/mnt/x" };
    const char *targets [] = { "/opt/x" };
    tako_sandbox_mounts_spec_t spec = { NULL, 1 << 20, 1 << 20, false, sources, targets, 1 };
    tako_sandbox_mounts_t plan;
    const char *error = NULL;
    cr_assert_eq (tako_sandbox_mounts_plan (&plan, &spec, &error), -1);
    cr_assert (strstr (error, "staging"));
}
