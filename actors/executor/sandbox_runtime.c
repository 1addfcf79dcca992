/*  sandbox_runtime — runtime detection and strict/permissive policy.  */

#include <stddef.h>
#include <unistd.h>
#include "sandbox_runtime.h"

static const char *runsc_paths [] = { "/usr/bin/runsc", "/usr/local/bin/runsc", "/usr/sbin/runsc" };

const char *
tako_sandbox_runtime_runsc_path (void)
{
    for (size_t i = 0; i < sizeof (runsc_paths) / sizeof (runsc_paths [0]); i++)
        if (access (runsc_paths [i], X_OK) == 0)
            return runsc_paths [i];
    return NULL;
}

bool
tako_sandbox_runtime_uses_runsc (bool wants_runsc)
{
    return wants_runsc && tako_sandbox_runtime_runsc_path () != NULL;
}

int
tako_sandbox_runtime_choose (bool wants_runsc, bool strict, const char **warning, const char **error)
{
    *warning = NULL;
    *error = NULL;
    if (!wants_runsc || tako_sandbox_runtime_uses_runsc (wants_runsc))
        return 0;
    const char *reason = "container_runtime runsc: the runsc (gVisor) runtime is not installed"
                         " (apt-get install runsc)";
    if (strict) {
        *error = reason;
        return -1;
    }
    *warning = reason;
    return 0;
}
