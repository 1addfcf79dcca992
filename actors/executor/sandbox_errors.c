/*  sandbox_errors — error types and signal classification.  */

#include <signal.h>
#include <stddef.h>
#include <string.h>
#include "sandbox_errors.h"

typedef struct {
    int signal_number;
    const char *type;
} signal_error_t;

static const signal_error_t signal_errors [] = {
    { SIGSEGV, "segfault" },
    { SIGABRT, "abort" },
    { SIGFPE,  "arithmetic_error" },
    { SIGBUS,  "bus_error" },
    { SIGPIPE, "pipe_error" },
    { SIGKILL, "killed" },
};

//  Every type of the REST error table (REST.md, "error when present").
static const char *known_types [] = {
    "timeout", "startup_timeout", "execution_timeout",
    "oom", "cancelled", "segfault", "abort", "arithmetic_error", "bus_error",
    "pipe_error", "killed",
    "syntax_error", "import_error", "type_error", "value_error", "key_error",
    "index_error", "attribute_error", "name_error", "file_not_found",
    "file_error", "os_error", "recursion_error", "assertion_error",
    "division_error", "overflow_error", "encoding_error", "json_error",
    "runtime_error",
    "permission", "dependency_error", "network_error", "network_timeout",
    "service_unavailable", "config_error", "internal_error", "unknown",
};

//  The types the bootstrap may report for an uncaught exception. The job's
//  code can write to the same pipe, so nothing else is taken from it:
//  timeouts, kills, cancellation and infrastructure errors come only from
//  what the host itself observed.
static const char *exception_types [] = {
    "syntax_error", "import_error", "type_error", "value_error", "key_error",
    "index_error", "attribute_error", "name_error", "file_not_found",
    "file_error", "os_error", "recursion_error", "assertion_error",
    "division_error", "overflow_error", "encoding_error", "json_error",
    "runtime_error", "permission", "oom",
};

static bool
type_listed (const char *type, const char **list, size_t count)
{
    for (size_t i = 0; type && i < count; i++)
        if (strcmp (list [i], type) == 0)
            return true;
    return false;
}

bool
tako_sandbox_error_type_from_exception (const char *type)
{
    return type_listed (type, exception_types, sizeof (exception_types) / sizeof (exception_types [0]));
}

const char *
tako_sandbox_error_for_signal (int signal_number)
{
    for (size_t i = 0; i < sizeof (signal_errors) / sizeof (signal_errors [0]); i++)
        if (signal_errors [i].signal_number == signal_number)
            return signal_errors [i].type;
    return "killed";
}

bool
tako_sandbox_error_type_known (const char *type)
{
    return type_listed (type, known_types, sizeof (known_types) / sizeof (known_types [0]));
}
