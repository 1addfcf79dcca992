/*  sandbox_runtime — which sandbox runtime a job gets.

    "native" is our own namespaces+seccomp+cgroup sandbox. "runsc" (gVisor)
    is detected but not implemented yet: with security_mode strict a
    configuration asking for it is refused with a clear reason; with
    permissive the native sandbox is used and the caller logs a warning.  */

#ifndef SANDBOX_RUNTIME_H_INCLUDED
#define SANDBOX_RUNTIME_H_INCLUDED

#include <stdbool.h>

//  Path of the runsc binary if installed (static string), else NULL.
const char *tako_sandbox_runtime_runsc_path (void);

//  Decide the runtime: wants_runsc from container_runtime, strict from
//  security_mode. Returns 0 to run natively (*warning set when that is a
//  fallback), or -1 with *error when the job must not run.
int tako_sandbox_runtime_choose (bool wants_runsc, bool strict,
                                 const char **warning, const char **error);

#endif
