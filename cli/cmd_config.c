/*  tako-vm config [--json] [--show-defaults] — the effective configuration.

    Loads like every other command (--config, the search order, TAKO_VM_*
    overrides) and prints the result: readable YAML by default, JSON with
    --json. The text starts with a comment naming the file used; with
    --json that line goes to stderr so stdout stays pure JSON. API keys
    appear as hashes and the database password is masked.                 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_cli.h"
#include "tako_config.h"

#define YAML_INDENT_STEP 2

static void yaml_print_object (FILE *out, json_t *object, int indent, bool inline_first);
static void yaml_print_array (FILE *out, json_t *array, int indent);

static bool
is_nonempty_container (json_t *value)
{
    return (json_is_object (value) && json_object_size (value) > 0)
        || (json_is_array (value) && json_array_size (value) > 0);
}

//  Scalars as JSON: a JSON string is a valid YAML double-quoted string.
static void
yaml_print_scalar (FILE *out, json_t *value)
{
    char *text = json_dumps (value, JSON_ENCODE_ANY | JSON_REAL_PRECISION (10));
    fprintf (out, "%s\n", text? text: "null");
    free (text);
}

static void
yaml_print_nested (FILE *out, json_t *value, int indent)
{
    fputc ('\n', out);
    if (json_is_object (value))
        yaml_print_object (out, value, indent, false);
    else
        yaml_print_array (out, value, indent);
}

static void
yaml_print_object (FILE *out, json_t *object, int indent, bool inline_first)
{
    const char *key;
    json_t *value;
    bool first = true;
    json_object_foreach (object, key, value) {
        if (!(first && inline_first))
            fprintf (out, "%*s", indent, "");
        first = false;
        fprintf (out, "%s:", key);
        if (is_nonempty_container (value))
            yaml_print_nested (out, value, indent + YAML_INDENT_STEP);
        else {
            fputc (' ', out);
            yaml_print_scalar (out, value);
        }
    }
}

static void
yaml_print_array (FILE *out, json_t *array, int indent)
{
    size_t index;
    json_t *item;
    json_array_foreach (array, index, item) {
        fprintf (out, "%*s- ", indent, "");
        if (json_is_object (item) && json_object_size (item) > 0)
            yaml_print_object (out, item, indent + YAML_INDENT_STEP, true);
        else
        if (is_nonempty_container (item))
            yaml_print_nested (out, item, indent + YAML_INDENT_STEP);
        else
            yaml_print_scalar (out, item);
    }
}

//  Built-in defaults only: no file, no environment overrides.
static tako_config_t *
defaults_load (tako_config_errors_t *errors)
{
    tako_config_t *config = tako_config_new ();
    if (config && tako_config_finish (config, errors))
        tako_config_destroy (&config);
    return config;
}

static void
problems_print (tako_config_errors_t *errors)
{
    char *text = tako_config_errors_text (errors, true);
    if (text)
        fputs (text, stderr);
    free (text);
}

static int
config_print (tako_config_t *config, bool as_json, bool defaults_only)
{
    const char *source = tako_config_source (config);
    char *origin = defaults_only? strdup ("built-in defaults (--show-defaults)")
                 : source? strdup (source)
                 : strdup ("no file found; built-in defaults and environment");
    json_t *json = tako_config_to_json (config);
    int rc = json && origin? 0: 1;
    if (rc == 0 && as_json) {
        fprintf (stderr, "tako-vm config: %s\n", origin);
        char *text = json_dumps (json, JSON_INDENT (2) | JSON_REAL_PRECISION (10));
        rc = text? 0: 1;
        if (text)
            printf ("%s\n", text);
        free (text);
    }
    else
    if (rc == 0) {
        printf ("# tako-vm effective configuration\n# source: %s\n", origin);
        yaml_print_object (stdout, json, 0, false);
    }
    json_decref (json);
    free (origin);
    return rc;
}

static int
config_run (tako_cli_t *cli, int argc, char **argv)
{
    bool as_json = false, defaults_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--json") == 0)
            as_json = true;
        else
        if (strcmp (argv [i], "--show-defaults") == 0)
            defaults_only = true;
        else {
            fprintf (stderr, "tako-vm config: unexpected argument '%s' (see tako-vm config --help)\n",
                     argv [i]);
            return 2;
        }
    }
    tako_config_errors_t *errors = tako_config_errors_new ();
    if (!errors)
        return 1;
    tako_config_t *config = defaults_only? defaults_load (errors)
                          : tako_config_load_from (cli->config_path, NULL, errors);
    problems_print (errors);
    int rc = config? config_print (config, as_json, defaults_only): 1;
    tako_config_destroy (&config);
    tako_config_errors_destroy (&errors);
    return rc;
}

const tako_command_t tako_command_config = {
    "config", "[--json] [--show-defaults]", "print the effective configuration", config_run,
    "Loads the configuration the way the server does and prints every option.\n"
    "\n"
    "The file is --config FILE, else $TAKO_VM_CONFIG, else the first of\n"
    "./tako_vm.yaml, ./config/tako_vm.yaml, ~/.tako_vm/config.yaml and\n"
    "/etc/tako_vm/config.yaml; TAKO_VM_* variables override it.\n"
    "\n"
    "options:\n"
    "  --json           print JSON (the file used is named on stderr)\n"
    "  --show-defaults  print the built-in defaults, ignoring files and\n"
    "                   TAKO_VM_* variables\n"
    "\n"
    "API keys are shown as sha256 hashes; the database password is masked.\n"
    "Exit status: 0, 1 if the configuration is invalid (errors on stderr),\n"
    "2 on a usage error. See docs/configuration.md for every option.\n"
};
