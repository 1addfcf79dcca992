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
    for (size_t i = 0; type && i < sizeof (known_types) / sizeof (known_types [0]); i++)
        if (strcmp (known_types [i], type) == 0)
            return true;
    return false;
}
