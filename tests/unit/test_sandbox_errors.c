//  sandbox_errors: signal classification and the error-type table.
#include <criterion/criterion.h>
#include <signal.h>
#include "actors/executor/sandbox_errors.h"

Test (sandbox_errors, signals_map_to_types)
{
    cr_assert_str_eq (tako_sandbox_error_for_signal (SIGSEGV), "segfault");
    cr_assert_str_eq (tako_sandbox_error_for_signal (SIGABRT), "abort");
    cr_assert_str_eq (tako_sandbox_error_for_signal (SIGFPE), "arithmetic_error");
    cr_assert_str_eq (tako_sandbox_error_for_signal (SIGBUS), "bus_error");
    cr_assert_str_eq (tako_sandbox_error_for_signal (SIGPIPE), "pipe_error");
    cr_assert_str_eq (tako_sandbox_error_for_signal (SIGKILL), "killed");
    cr_assert_str_eq (tako_sandbox_error_for_signal (SIGUSR1), "killed");
}

Test (sandbox_errors, only_table_types_are_known)
{
    cr_assert (tako_sandbox_error_type_known ("json_error"));
    cr_assert (tako_sandbox_error_type_known ("startup_timeout"));
    cr_assert (tako_sandbox_error_type_known ("permission"));
    cr_assert_not (tako_sandbox_error_type_known ("made_up"));
    cr_assert_not (tako_sandbox_error_type_known (NULL));
}
