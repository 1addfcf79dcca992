/*  tako-vm — one binary, many subcommands.

    tako-vm [--config FILE] [-v] COMMAND [ARGS...]

    Global options come before the command; --config FILE wins over the
    configuration search order. `tako-vm help` lists the commands;
    `tako-vm COMMAND --help` explains one.                                 */

#include <stdlib.h>
#include <string.h>
#include "tako_cli.h"
#include "commands.h"

static const tako_command_t *
command_find (const char *name)
{
    for (const tako_command_t **c = tako_commands; *c; c++)
        if (strcmp ((*c)->name, name) == 0)
            return *c;
    return NULL;
}

static void
usage_print (FILE *out)
{
    fprintf (out,
        "usage: tako-vm [--config FILE] [-v] COMMAND [ARGS...]\n"
        "\n"
        "Runs untrusted Python in isolated sandboxes and keeps every run.\n"
        "\n"
        "commands:\n");
    for (const tako_command_t **c = tako_commands; *c; c++)
        fprintf (out, "  %-10s %s\n", (*c)->name, (*c)->summary);
    fprintf (out, "  %-10s %s\n", "help", "show this help, or `help COMMAND`");
    fprintf (out,
        "\n"
        "global options:\n"
        "  --config FILE  use this configuration file (wins over TAKO_VM_CONFIG\n"
        "                 and the search order)\n"
        "  -v, --verbose  more output\n"
        "  -h, --help     this help\n");
}

bool
tako_cli_wants_help (int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--") == 0)
            break;
        if (strcmp (argv [i], "-h") == 0 || strcmp (argv [i], "--help") == 0)
            return true;
    }
    return false;
}

void
tako_cli_print_help (const tako_command_t *command, FILE *out)
{
    fprintf (out, "usage: tako-vm %s %s\n\n%s\n", command->name, command->args,
             command->summary);
    if (command->help && *command->help)
        fprintf (out, "\n%s", command->help);
}

int
main (int argc, char *argv [])
{
    tako_cli_t cli = { NULL, false };
    int arg = 1;
    for (; arg < argc && argv [arg][0] == '-'; arg++) {
        if (strcmp (argv [arg], "--config") == 0) {
            if (arg + 1 >= argc) {
                fprintf (stderr, "tako-vm: --config needs a FILE\n");
                return 2;
            }
            cli.config_path = argv [++arg];
        }
        else
        if (strncmp (argv [arg], "--config=", 9) == 0)
            cli.config_path = argv [arg] + 9;
        else
        if (strcmp (argv [arg], "-v") == 0 || strcmp (argv [arg], "--verbose") == 0)
            cli.verbose = true;
        else
        if (strcmp (argv [arg], "-h") == 0 || strcmp (argv [arg], "--help") == 0) {
            usage_print (stdout);
            return 0;
        }
        else
        if (strcmp (argv [arg], "--version") == 0)
            return command_find ("version")->run (&cli, 1, (char *[]) { "version", NULL });
        else {
            fprintf (stderr, "tako-vm: unknown option '%s' (see tako-vm help)\n", argv [arg]);
            return 2;
        }
    }
    if (arg >= argc) {
        usage_print (stderr);
        return 2;
    }
    const char *name = argv [arg];
    if (strcmp (name, "help") == 0) {
        if (arg + 1 < argc) {
            const tako_command_t *command = command_find (argv [arg + 1]);
            if (!command) {
                fprintf (stderr, "tako-vm: unknown command '%s' (see tako-vm help)\n", argv [arg + 1]);
                return 2;
            }
            tako_cli_print_help (command, stdout);
        }
        else
            usage_print (stdout);
        return 0;
    }
    const tako_command_t *command = command_find (name);
    if (!command) {
        fprintf (stderr, "tako-vm: unknown command '%s' (see tako-vm help)\n", name);
        return 2;
    }
    int command_argc = argc - arg;
    char **command_argv = argv + arg;
    if (tako_cli_wants_help (command_argc, command_argv)) {
        tako_cli_print_help (command, stdout);
        return 0;
    }
    return command->run (&cli, command_argc, command_argv);
}
