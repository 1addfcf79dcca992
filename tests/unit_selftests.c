/*  Runs every class self-test (tako_NAME_test) as one Criterion test each,
    so `make test` covers them under ASan/UBSan with per-test isolation.   */

#include <criterion/criterion.h>
#include <stdbool.h>
#include "selftest_headers.h"

#define SELFTEST(name) Test (selftest, name) { tako_##name##_test (false); }
#include "selftests.h"
#undef SELFTEST
