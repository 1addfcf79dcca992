/*  sandbox_runtime — which sandbox runtime a job gets.

    "native" is our own namespaces+seccomp+cgroup sandbox. "runsc" is
    gVisor (sandbox_runsc), used when the configuration asks for it and
    the runsc binary is installed. When it is asked for but missing,
    security_mode strict refuses to run the job with a clear reason, and
    permissive runs it in the native sandbox; the caller logs the warning. */

#ifndef SANDBOX_RUNTIME_H_INCLUDED
#define SANDBOX_RUNTIME_H_INCLUDED

#include <stdbool.h>

//  Path of the runsc binary if installed (static string), else NULL.
const char *tako_sandbox_runtime_runsc_path (void);

//  Decide whether the job may run: wants_runsc from container_runtime,
//  strict from security_mode. Returns 0 when it may (*warning set when
//  runsc was asked for but the native sandbox will be used), or -1 with
//  *error when the job must not run.
int tako_sandbox_runtime_choose (bool wants_runsc, bool strict,
                                 const char **warning, const char **error);

//  True when the job runs under runsc: asked for and installed.
bool tako_sandbox_runtime_uses_runsc (bool wants_runsc);

#endif
