/*  tako-selftest — run every class's self-test.

    Usage: tako-selftest [-v] [--test NAME] [--list]
    Each class ends with tako_NAME_test (bool verbose): silent on success,
    asserts on failure. The table below is generated from the headers.     */

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "selftest_headers.h"

typedef struct {
    const char *name;
    void (*test) (bool verbose);
} selftest_t;

#define SELFTEST(name) { #name, tako_##name##_test },
static const selftest_t selftests [] = {
#include "selftests.h"
    { NULL, NULL }
};
#undef SELFTEST

int
main (int argc, char *argv [])
{
    bool verbose = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "-v") == 0 || strcmp (argv [i], "--verbose") == 0)
            verbose = true;
        else
        if (strcmp (argv [i], "--test") == 0 && i + 1 < argc)
            only = argv [++i];
        else
        if (strcmp (argv [i], "--list") == 0) {
            for (const selftest_t *t = selftests; t->name; t++)
                puts (t->name);
            return 0;
        }
        else {
            fprintf (stderr, "usage: tako-selftest [-v] [--test NAME] [--list]\n");
            return 2;
        }
    }
    int ran = 0;
    for (const selftest_t *t = selftests; t->name; t++) {
        if (only && strcmp (only, t->name) != 0)
            continue;
        printf (" * %s: ", t->name);
        fflush (stdout);
        t->test (verbose);
        printf ("OK\n");
        ran++;
    }
    if (only && ran == 0) {
        fprintf (stderr, "tako-selftest: no test named '%s'\n", only);
        return 1;
    }
    return 0;
}
