//  sandbox_seccomp: the filter compiles, loads, and denies what it lists.
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "actors/executor/sandbox_seccomp.h"

Test (sandbox_seccomp, denies_keyctl_unshare_and_kills_x32)
{
    tako_sandbox_seccomp_t filter;
    const char *error = NULL;
    cr_assert_eq (tako_sandbox_seccomp_build (&filter, &error), 0, "%s", error);
    cr_assert (filter.length > 0);
    pid_t pid = fork ();
    if (pid == 0) {
        if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || tako_sandbox_seccomp_apply (&filter) != 0)
            _exit (10);
        if (syscall (SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
            _exit (11);
        if (unshare (CLONE_NEWUSER) != -1 || errno != EPERM)
            _exit (12);
        if (syscall (SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
            _exit (13);
        if (getpid () <= 0)             //  ordinary calls still work
            _exit (14);
        syscall (0x40000000 + SYS_getpid);     //  x32 ABI: killed
        _exit (15);
    }
    int status = 0;
    cr_assert_eq (waitpid (pid, &status, 0), pid);
    cr_assert (WIFSIGNALED (status), "child exited with %d", WEXITSTATUS (status));
    cr_assert_eq (WTERMSIG (status), SIGSYS);
    tako_sandbox_seccomp_release (&filter);
    tako_sandbox_seccomp_release (&filter);
}
