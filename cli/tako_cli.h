/*  tako_cli — the `tako-vm` command line.

    Each subcommand lives in its own file cli/cmd_NAME.c and defines

        const tako_command_t tako_command_NAME = {
            "NAME", "ARGS", "one-line summary", run_function, help_function
        };

    The Makefile generates the command table from those definitions, so a
    new subcommand needs no edit anywhere else.                            */

#ifndef TAKO_CLI_H_INCLUDED
#define TAKO_CLI_H_INCLUDED

#include <stdbool.h>
#include <stdio.h>

//  What every subcommand receives: the global options.
typedef struct {
    const char *config_path;    //  --config FILE, or NULL for the search order
    bool verbose;               //  -v / --verbose
} tako_cli_t;

typedef int (tako_command_fn) (tako_cli_t *cli, int argc, char **argv);

typedef struct {
    const char *name;           //  the word after tako-vm
    const char *args;           //  synopsis of its arguments, for help
    const char *summary;        //  one line, for `tako-vm help`
    tako_command_fn *run;       //  argv [0] is the command name
    const char *help;           //  full help text printed for --help
} tako_command_t;

//  True if argv holds -h or --help; subcommands may call it first.
bool tako_cli_wants_help (int argc, char **argv);

//  Print the help of one command to out.
void tako_cli_print_help (const tako_command_t *command, FILE *out);

#endif
