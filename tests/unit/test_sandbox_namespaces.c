//  sandbox_namespaces + sandbox_uidmap: a child in fresh namespaces runs as
//  the slot's host uid, sees itself as pid 1 and uid 1000.
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "actors/executor/sandbox_namespaces.h"
#include "actors/executor/sandbox_uidmap.h"

Test (sandbox_namespaces, clone_map_and_become_user)
{
    int sync [2];
    cr_assert_eq (pipe (sync), 0);
    pid_t pid = tako_sandbox_namespaces_clone (tako_sandbox_namespaces_flags (false));
    cr_assert (pid >= 0);
    if (pid == 0) {
        char go;
        close (sync [1]);
        if (read (sync [0], &go, 1) != 1)
            _exit (10);
        if (getpid () != 1)
            _exit (11);
        if (tako_sandbox_uidmap_become_user () != 0)
            _exit (12);
        if (getuid () != TAKO_SANDBOX_INNER_ID || getgid () != TAKO_SANDBOX_INNER_ID)
            _exit (13);
        const char *step = NULL;
        _exit (tako_sandbox_namespaces_enter (false, &step) == 0? 0: 14);
    }
    close (sync [0]);
    cr_assert_eq (tako_sandbox_uidmap_write (pid, 4242), 0);
    char path [64], line [128];
    snprintf (path, sizeof (path), "/proc/%d/uid_map", (int) pid);
    FILE *map = fopen (path, "r");
    cr_assert (map && fgets (line, sizeof (line), map));
    fclose (map);
    unsigned inside, outside, count;
    cr_assert_eq (sscanf (line, "%u %u %u", &inside, &outside, &count), 3);
    cr_assert_eq (inside, 1000);
    cr_assert_eq (outside, 200000 + 4242);
    cr_assert_eq (count, 1);
    cr_assert_eq (write (sync [1], "S", 1), 1);
    int status = 0;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
    close (sync [1]);
}

Test (sandbox_namespaces, probe_and_slot_ids)
{
    cr_assert_eq (tako_sandbox_namespaces_probe (CLONE_NEWPID), 0);
    cr_assert_eq (tako_sandbox_uidmap_host_id (0), 200000);
    cr_assert_eq (tako_sandbox_uidmap_write (1, -1), -1);
}
