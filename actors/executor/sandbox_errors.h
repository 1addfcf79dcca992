/*  sandbox_errors — the Tako VM error table as the sandbox sees it.

    Python exceptions are classified inside the sandbox by the bootstrap
    (sandbox_bootstrap.c), which reports a type name; the host only accepts
    names from this table. Signals that ended the job map here too.

    Decisions where the reference is silent:
    - SystemExit with a non-zero code: status failed, exit_code the code,
      error type runtime_error, message "exited with code N".
    - KeyboardInterrupt raised by the job: runtime_error (nothing killed it).
    - MemoryError: oom (the interpreter hit the memory limit).
    - The bootstrap's error record travels on a pipe the job's own code can
      also write to. The host trusts it only when the interpreter exited
      with a non-zero code, and only for exception types: a job can at most
      mislabel its own failure, never turn a success into a failure or
      claim a timeout, kill, cancellation or infrastructure error.        */

#ifndef SANDBOX_ERRORS_H_INCLUDED
#define SANDBOX_ERRORS_H_INCLUDED

#include <stdbool.h>

//  The error type of a job killed by signal (e.g. SIGSEGV → "segfault");
//  any signal not in the table is "killed".
const char *tako_sandbox_error_for_signal (int signal_number);

//  True if the bootstrap may report this type for an uncaught exception
//  (the Python rows of the table, permission, and oom for MemoryError).
bool tako_sandbox_error_type_from_exception (const char *type);

//  True if type is one of the error types of the Tako VM table.
bool tako_sandbox_error_type_known (const char *type);

#endif
