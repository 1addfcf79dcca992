/*  tako-vm validate [FILE] — check a configuration without starting.

    Validates FILE, or the file the search order finds, with TAKO_VM_*
    overrides applied, exactly as the server would load it. Prints
    "FILE: OK" on stdout and exits 0, or every problem on stderr, one per
    line as "FILE:LINE: OPTION: MESSAGE", and exits 1.                    */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_cli.h"
#include "tako_config.h"

static int
validate_run (tako_cli_t *cli, int argc, char **argv)
{
    const char *path = cli->config_path;
    int files = 0;
    for (int i = 1; i < argc; i++) {
        if (argv [i][0] == '-' && argv [i][1] != 0) {
            fprintf (stderr, "tako-vm validate: unknown option '%s' (see tako-vm validate --help)\n",
                     argv [i]);
            return 2;
        }
        path = argv [i];
        files++;
    }
    if (files > 1) {
        fprintf (stderr, "tako-vm validate: one FILE at most (see tako-vm validate --help)\n");
        return 2;
    }
    tako_config_errors_t *errors = tako_config_errors_new ();
    if (!errors)
        return 1;
    tako_config_t *config = tako_config_load_from (path, NULL, errors);
    char *problems = tako_config_errors_text (errors, true);
    if (problems)
        fputs (problems, stderr);
    free (problems);
    int rc = 0;
    if (config) {
        const char *source = tako_config_source (config);
        printf ("%s: OK\n", source? source: "(no file found: built-in defaults)");
    }
    else {
        fprintf (stderr, "%s: %zu error%s\n", path? path: "configuration",
                 tako_config_errors_count (errors), tako_config_errors_count (errors) == 1? "": "s");
        rc = 1;
    }
    tako_config_destroy (&config);
    tako_config_errors_destroy (&errors);
    return rc;
}

const tako_command_t tako_command_validate = {
    "validate", "[FILE]", "check a configuration file", validate_run,
    "Validates FILE (or the file the search order finds: $TAKO_VM_CONFIG,\n"
    "./tako_vm.yaml, ./config/tako_vm.yaml, ~/.tako_vm/config.yaml,\n"
    "/etc/tako_vm/config.yaml) with TAKO_VM_* overrides applied, as the\n"
    "server would load it.\n"
    "\n"
    "Prints \"FILE: OK\" and exits 0, or prints every problem on stderr as\n"
    "FILE:LINE: OPTION: MESSAGE and exits 1. Exit 2 on a usage error.\n"
    "See docs/configuration.md for every option.\n"
};
