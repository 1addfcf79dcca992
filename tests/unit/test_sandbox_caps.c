//  sandbox_caps: after dropping, no set holds anything, for good.
#include <criterion/criterion.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "actors/executor/sandbox_caps.h"

Test (sandbox_caps, drop_all_empties_every_set)
{
    pid_t pid = fork ();
    if (pid == 0) {
        if (tako_sandbox_caps_drop_all () != 0)
            _exit (10);
        if (!tako_sandbox_caps_none_held ())
            _exit (11);
        //  Becoming uid 0 again gives nothing back: NOROOT is locked.
        _exit (prctl (PR_SET_SECUREBITS, 0, 0, 0, 0) == -1? 0: 12);
    }
    int status = 0;
    waitpid (pid, &status, 0);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "status %d", status);
}
