//  sandbox_cgroup: groups with limits appear, account, and disappear.
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "actors/executor/sandbox_cgroup.h"

Test (sandbox_cgroup, create_attach_kill_remove)
{
    char name [64];
    snprintf (name, sizeof (name), "tako-sandbox-unit-%d", (int) getpid ());
    tako_sandbox_cgroup_limits_t limits = { 64LL * 1024 * 1024, 0.5, 16 };
    const char *error = NULL;
    tako_sandbox_cgroup_t *cgroup = tako_sandbox_cgroup_new (name, &limits, &error);
    cr_assert (cgroup, "%s", error);
    size_t count = tako_sandbox_cgroup_dir_count (cgroup);
    cr_assert (count >= 2);
    char dirs [8][512];
    for (size_t i = 0; i < count && i < 8; i++)
        snprintf (dirs [i], sizeof (dirs [i]), "%s", tako_sandbox_cgroup_dir (cgroup, i));
    pid_t pid = fork ();
    if (pid == 0) {
        pause ();
        _exit (0);
    }
    cr_assert_eq (tako_sandbox_cgroup_attach (cgroup, pid), 0);
    cr_assert_eq (tako_sandbox_cgroup_kill (cgroup), 0);
    int status = 0;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    tako_sandbox_cgroup_usage_t usage;
    tako_sandbox_cgroup_usage (cgroup, &usage);
    cr_assert (usage.have_cpu);
    cr_assert_not (usage.oom_killed);
    tako_sandbox_cgroup_destroy (&cgroup);
    tako_sandbox_cgroup_destroy (&cgroup);
    cr_assert_null (cgroup);
    struct stat status_buffer;
    for (size_t i = 0; i < count && i < 8; i++)
        cr_assert_neq (stat (dirs [i], &status_buffer), 0, "%s still exists", dirs [i]);
}

Test (sandbox_cgroup, rejects_bad_names)
{
    tako_sandbox_cgroup_limits_t limits = { 0, 0, 0 };
    const char *error = NULL;
    cr_assert_null (tako_sandbox_cgroup_new ("../escape", &limits, &error));
    cr_assert_null (tako_sandbox_cgroup_new ("", &limits, &error));
}
