/*  tako-vm setup — check every prerequisite of the sandbox, one line each.

    Exit 0 when everything required is there, 1 otherwise. Optional items
    (runsc) are reported but only required when the configuration asks
    for them with security_mode strict.                                   */

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "actors/executor/tako_sandbox.h"
#include "actors/executor/sandbox_cgroup.h"
#include "actors/executor/sandbox_namespaces.h"
#include "actors/executor/sandbox_runtime.h"
#include "actors/executor/sandbox_seccomp.h"
#include "actors/executor/sandbox_uidmap.h"
#include "actors/executor/tako_zygote.h"

typedef struct {
    const char *name;
    int flag;
} namespace_check_t;

static const namespace_check_t namespace_checks [] = {
    { "user", 0 }, { "pid", CLONE_NEWPID }, { "net", CLONE_NEWNET }, { "mount", CLONE_NEWNS },
    { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS }, { "cgroup", CLONE_NEWCGROUP },
};

static void
line_print (bool ok, const char *what, const char *detail)
{
    printf ("%-8s %-34s %s\n", ok? "ok": "MISSING", what, detail? detail: "");
}

static int
namespaces_check (void)
{
    int missing = 0;
    for (size_t i = 0; i < sizeof (namespace_checks) / sizeof (namespace_checks [0]); i++) {
        char what [64];
        snprintf (what, sizeof (what), "%s namespace", namespace_checks [i].name);
        int error = tako_sandbox_namespaces_probe (namespace_checks [i].flag);
        if (error == 0)
            line_print (true, what, "");
        else {
            char detail [160];
            snprintf (detail, sizeof (detail), "%s: check user.max_*_namespaces and "
                      "kernel.unprivileged_userns_clone", strerror (error));
            line_print (false, what, detail);
            missing++;
        }
    }
    return missing;
}

static int
cgroup_check (void)
{
    tako_sandbox_cgroup_limits_t limits = { 64LL * 1024 * 1024, 0.5, 10 };
    char name [64];
    snprintf (name, sizeof (name), "tako-setup-%d", (int) getpid ());
    const char *error = NULL;
    tako_sandbox_cgroup_t *cgroup = tako_sandbox_cgroup_new (name, &limits, &error);
    if (!cgroup) {
        char detail [160];
        snprintf (detail, sizeof (detail), "%s: mount cgroup v2 or the v1 memory, pids, cpu "
                  "controllers writable by this user", error);
        line_print (false, "cgroup memory, pids, cpu limits", detail);
        return 1;
    }
    char detail [64];
    snprintf (detail, sizeof (detail), "cgroup %s, %zu groups", tako_sandbox_cgroup_version (cgroup),
              tako_sandbox_cgroup_dir_count (cgroup));
    line_print (true, "cgroup memory, pids, cpu limits", detail);
    tako_sandbox_cgroup_destroy (&cgroup);
    return 0;
}

static int
seccomp_check (void)
{
    tako_sandbox_seccomp_t filter;
    const char *error = NULL;
    if (tako_sandbox_seccomp_build (&filter, &error) != 0) {
        line_print (false, "seccomp filter", error);
        return 1;
    }
    pid_t pid = fork ();
    if (pid == 0) {
        //  A throwaway child proves the kernel accepts the program.
        _exit (tako_sandbox_seccomp_apply (&filter) == 0? 0: 1);
    }
    int status = 0;
    if (pid > 0)
        waitpid (pid, &status, 0);
    tako_sandbox_seccomp_release (&filter);
    bool ok = pid > 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0;
    line_print (ok, "seccomp filter", ok? "": "the kernel refused the filter (CONFIG_SECCOMP_FILTER?)");
    return ok? 0: 1;
}

//  The real test: a whole sandbox running the configured python.
static int
sandbox_check (tako_config_t *config)
{
    tako_sandbox_spec_t spec;
    tako_sandbox_spec_defaults (&spec);
    spec.python_path = config->sandbox_python && *config->sandbox_python? config->sandbox_python: NULL;
    spec.rootfs = config->sandbox_rootfs && *config->sandbox_rootfs? config->sandbox_rootfs: NULL;
    spec.slot = TAKO_SANDBOX_SLOT_MAX - getpid () % 1000;
    spec.code = "import sys\nprint(sys.version_info[0])\n";
    spec.code_size = strlen (spec.code);
    char *error = NULL;
    json_t *result = tako_sandbox_execute (&spec, &error);
    const char *python = spec.python_path? spec.python_path: TAKO_SANDBOX_DEFAULT_PYTHON;
    char what [128];
    snprintf (what, sizeof (what), "python in a sandbox (%s)", python);
    const char *out = json_string_value (json_object_get (result, "stdout"));
    bool ok = result && out && strcmp (out, "3\n") == 0;
    char detail [TAKO_SANDBOX_ERROR_MAX + 64];
    snprintf (detail, sizeof (detail), "%s", ok? "": error? error: "it did not print 3: set sandbox_python");
    line_print (ok, what, detail);
    json_decref (result);
    free (error);
    return ok? 0: 1;
}

//  Optional: the zygote program, tried for real (a sandbox it clones runs
//  a job). Without it warm pools still work, starting python per sandbox.
static void
zygote_check (void)
{
    char *program = tako_zygote_program ();
    if (!program) {
        line_print (true, "tako-zygote", "not installed next to tako-vm; optional: warm pools then "
                                         "start python per sandbox");
        return;
    }
    free (program);
    tako_sandbox_spec_t spec;
    tako_sandbox_spec_defaults (&spec);
    spec.slot = TAKO_SANDBOX_SLOT_MAX - 1000 - getpid () % 1000;
    spec.code = "print(6 * 7)\n";
    spec.code_size = strlen (spec.code);
    char *error = NULL;
    tako_zygote_t *zygote = tako_zygote_new (&spec, &error);
    json_t *result = NULL;
    if (zygote) {
        spec.zygote = zygote;
        result = tako_sandbox_execute (&spec, &error);
        tako_zygote_destroy (&zygote);
    }
    const char *out = json_string_value (json_object_get (result, "stdout"));
    bool ok = out && strcmp (out, "42\n") == 0;
    line_print (ok, "tako-zygote", ok? "works: warm pools fork their interpreters from one"
                                    : error? error: "its sandbox did not print 42");
    if (!ok)
        printf ("%-8s %-34s %s\n", "", "", "(optional: warm pools then start python per sandbox)");
    json_decref (result);
    free (error);
}

static int
runtime_check (tako_config_t *config)
{
    const char *runsc = tako_sandbox_runtime_runsc_path ();
    bool wanted = config->container_runtime == TAKO_RUNTIME_RUNSC;
    bool strict = config->security_mode == TAKO_SECURITY_STRICT;
    const char *warning = NULL, *error = NULL;
    int rc = tako_sandbox_runtime_choose (wanted, strict, &warning, &error);
    if (runsc)
        line_print (rc == 0, "runsc (gVisor)", error? error: warning? warning
                    : wanted? "installed; jobs run under runsc (container_runtime: runsc)"
                    : "installed (not used: native runtime)");
    else
        line_print (rc == 0, "runsc (gVisor)", error? error
                    : "not installed; optional (apt-get install runsc); the native sandbox is used");
    return rc == 0? 0: 1;
}

static int
setup_run (tako_cli_t *cli, int argc, char **argv)
{
    if (argc > 1) {
        fprintf (stderr, "tako-vm setup: unexpected argument '%s'\n", argv [1]);
        return 2;
    }
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fprintf (stderr, "%s", problems? problems: "tako-vm setup: cannot load the configuration\n");
        free (problems);
        return 2;
    }
    int missing = namespaces_check ();
    missing += cgroup_check ();
    missing += seccomp_check ();
    if (missing == 0) {
        missing += sandbox_check (config);
        zygote_check ();
    }
    else
        line_print (false, "python in a sandbox", "skipped: fix the lines above first");
    missing += runtime_check (config);
    printf ("%s\n", missing? "some prerequisites are missing": "everything the sandbox needs is there");
    tako_config_destroy (&config);
    return missing? 1: 0;
}

const tako_command_t tako_command_setup = {
    "setup", "", "check every prerequisite of the sandbox", setup_run,
    "Checks, one line each: the user, pid, net, mount, ipc, uts and cgroup\n"
    "namespaces; cgroup limits (v1 or v2) can be created; the seccomp filter\n"
    "compiles and loads; the configured sandbox_python runs inside a real\n"
    "sandbox; tako-zygote (optional) clones a sandbox that runs a job; runsc\n"
    "(gVisor) when the configuration asks for it.\n"
    "Exit status 0 when everything required is there, 1 otherwise.\n"
};
