/*  tako-vm version — print the version and the protocol version.  */

#include <stdio.h>
#include "tako_cli.h"
#include "tako_version.h"

static int
version_run (tako_cli_t *cli, int argc, char **argv)
{
    (void) cli;
    if (argc > 1) {
        fprintf (stderr, "tako-vm version: unexpected argument '%s'\n", argv [1]);
        return 2;
    }
    printf ("tako-vm %s\n", TAKO_VERSION);
    return 0;
}

const tako_command_t tako_command_version = {
    "version", "", "print the version", version_run,
    "Prints the tako-vm version.\n"
};
