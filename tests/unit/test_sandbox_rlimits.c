//  sandbox_rlimits: the plan holds every limit and applies in a child.
#include <criterion/criterion.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "actors/executor/sandbox_rlimits.h"

Test (sandbox_rlimits, plan_and_apply)
{
    tako_sandbox_rlimits_spec_t spec = { 64, 128, 20, 30, 1 << 20, 7 };
    tako_sandbox_rlimits_t plan;
    tako_sandbox_rlimits_plan (&plan, &spec);
    cr_assert_eq (plan.count, 6);
    pid_t pid = fork ();
    if (pid == 0) {
        int failed = 0;
        if (tako_sandbox_rlimits_apply (&plan, &failed) != 0)
            _exit (10);
        struct rlimit limit;
        getrlimit (RLIMIT_NOFILE, &limit);
        if (limit.rlim_cur != 64 || limit.rlim_max > 128)
            _exit (11);
        getrlimit (RLIMIT_CORE, &limit);
        if (limit.rlim_max != 0)
            _exit (12);
        getrlimit (RLIMIT_CPU, &limit);
        if (limit.rlim_max != 7)
            _exit (13);
        getrlimit (RLIMIT_FSIZE, &limit);
        _exit (limit.rlim_cur == 1 << 20? 0: 14);
    }
    int status = 0;
    waitpid (pid, &status, 0);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
}
