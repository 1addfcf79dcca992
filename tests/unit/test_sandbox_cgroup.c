//  sandbox_cgroup: groups with limits appear, account, and disappear.
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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

//  A process joins the group itself through fds the host opened (v1:
//  each hierarchy's tasks file); what it forks afterwards is in the group.
Test (sandbox_cgroup, a_process_joins_through_host_opened_files)
{
    char name [64];
    snprintf (name, sizeof (name), "tako-sandbox-unit-join-%d", (int) getpid ());
    tako_sandbox_cgroup_limits_t limits = { 64LL * 1024 * 1024, 0, 16 };
    const char *error = NULL;
    tako_sandbox_cgroup_t *cgroup = tako_sandbox_cgroup_new (name, &limits, &error);
    cr_assert (cgroup, "%s", error);
    int fds [TAKO_SANDBOX_CGROUP_JOIN_MAX];
    int count = tako_sandbox_cgroup_join_open (cgroup, fds);
    cr_assert_geq (count, 0);
    if (strcmp (tako_sandbox_cgroup_version (cgroup), "v2") == 0)
        cr_assert_eq (count, 0, "v2 groups have no tasks file to join through");
    else
        cr_assert_geq (count, 2, "memory and pids at least");
    int ready [2];
    cr_assert_eq (pipe (ready), 0);
    pid_t pid = fork ();
    if (pid == 0) {
        //  As a sandbox's reaper: unprivileged, then join, then fork.
        if (setresgid (65534, 65534, 65534) != 0 || setresuid (65534, 65534, 65534) != 0
        ||  tako_sandbox_cgroup_join (fds, count) != 0)
            _exit (3);
        pid_t grandchild = fork ();
        if (grandchild == 0) {
            pause ();
            _exit (0);
        }
        char byte = 'j';
        if (write (ready [1], &byte, 1) != 1)
            _exit (4);
        pause ();
        _exit (0);
    }
    for (int i = 0; i < count; i++)
        close (fds [i]);
    close (ready [1]);
    char byte = 0;
    cr_assert_eq (read (ready [0], &byte, 1), 1, "the child could not join");
    close (ready [0]);
    cr_assert_eq (tako_sandbox_cgroup_attach_unjoined (cgroup, pid), 0);
    //  Every directory lists both processes.
    for (size_t i = 0; i < tako_sandbox_cgroup_dir_count (cgroup); i++) {
        char path [600];
        snprintf (path, sizeof (path), "%s/cgroup.procs", tako_sandbox_cgroup_dir (cgroup, i));
        FILE *file = fopen (path, "r");
        cr_assert (file, "%s", path);
        int listed = 0;
        int member;
        bool has_child = false;
        while (fscanf (file, "%d", &member) == 1) {
            listed++;
            has_child = has_child || member == pid;
        }
        fclose (file);
        cr_assert (has_child && listed == 2, "%s: %d listed", path, listed);
    }
    cr_assert_eq (tako_sandbox_cgroup_kill (cgroup), 0);
    int status = 0;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    cr_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    tako_sandbox_cgroup_destroy (&cgroup);
}

Test (sandbox_cgroup, rejects_bad_names)
{
    tako_sandbox_cgroup_limits_t limits = { 0, 0, 0 };
    const char *error = NULL;
    cr_assert_null (tako_sandbox_cgroup_new ("../escape", &limits, &error));
    cr_assert_null (tako_sandbox_cgroup_new ("", &limits, &error));
}
