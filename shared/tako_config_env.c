/*  tako_config_env — TAKO_VM_* environment overrides.

    Every scalar option of the top level and of container_limits has a
    variable: TAKO_VM_ plus its name in capitals (container_limits.fsize
    is TAKO_VM_CONTAINER_LIMITS_FSIZE). The values parse exactly like
    unquoted YAML values. A bad value is an error naming the variable.    */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tako_config_private.h"

extern char **environ;

#define ENV_PREFIX          "TAKO_VM_"
#define ENV_NAME_MAX        128
//  Not an option, but ours: where the configuration file is.
#define ENV_CONFIG_FILE     "TAKO_VM_CONFIG"

const char *
tako_config_env_get (char **envp, const char *name)
{
    size_t length = strlen (name);
    for (char **entry = envp? envp: environ; entry && *entry; entry++)
        if (strncmp (*entry, name, length) == 0 && (*entry) [length] == '=')
            return *entry + length + 1;
    return NULL;
}

//  "container_limits.fsize" -> "TAKO_VM_CONTAINER_LIMITS_FSIZE".
static void
env_name_of (const char *prefix, const char *option, char *name, size_t size)
{
    snprintf (name, size, "%s%s%s", ENV_PREFIX, prefix, option);
    for (char *c = name; *c; c++)
        *c = *c == '.'? '_': (char) toupper ((unsigned char) *c);
}

static void
env_apply_table (tako_config_t *self, char **envp, tako_config_errors_t *errors,
                 const option_t *table, const char *prefix)
{
    for (const option_t *option = table; option->name; option++) {
        if (!option->has_env)
            continue;
        char name [ENV_NAME_MAX];
        env_name_of (prefix, option->name, name, sizeof name);
        const char *value = tako_config_env_get (envp, name);
        if (!value)
            continue;
        char *message = tako_config_option_set (option, self, value, false);
        char path [ENV_NAME_MAX];
        snprintf (path, sizeof path, "%s%s", prefix, option->name);
        if (message)
            tako_config_errors_add (errors, false, NULL, 0, name, "%s", message);
        else
            tako_config_origin_set (self, path, 0, name);
        free (message);
    }
}

//  True if name is a variable some option reads.
static bool
env_name_known (const char *name)
{
    if (strcmp (name, ENV_CONFIG_FILE) == 0)
        return true;
    char known [ENV_NAME_MAX];
    for (const option_t *option = tako_config_top_options; option->name; option++) {
        env_name_of ("", option->name, known, sizeof known);
        if (strcmp (name, known) == 0)
            return true;
    }
    for (const option_t *option = tako_config_limit_options; option->name; option++) {
        env_name_of ("container_limits.", option->name, known, sizeof known);
        if (strcmp (name, known) == 0)
            return true;
    }
    return false;
}

//  A misspelt variable would otherwise be ignored without a word.
static void
env_warn_unknown (char **envp, tako_config_errors_t *errors)
{
    for (char **entry = envp? envp: environ; entry && *entry; entry++) {
        if (strncmp (*entry, ENV_PREFIX, strlen (ENV_PREFIX)) != 0)
            continue;
        const char *equals = strchr (*entry, '=');
        size_t length = equals? (size_t) (equals - *entry): strlen (*entry);
        if (length >= ENV_NAME_MAX)
            continue;
        char name [ENV_NAME_MAX];
        memcpy (name, *entry, length);
        name [length] = 0;
        if (!env_name_known (name))
            tako_config_errors_add (errors, true, NULL, 0, name,
                                    "not a tako-vm setting; ignored");
    }
}

//  The default data_dir: $XDG_DATA_HOME/tako_vm, else ~/.tako_vm. XDG
//  says a relative XDG_DATA_HOME is invalid and must be ignored. Root gets
//  /var/lib/tako_vm instead of /root/.tako_vm: the private PostgreSQL runs
//  as the postgres user, which cannot enter /root (mode 0700).
char *
tako_config_default_data_dir (char **envp)
{
    const char *xdg = tako_config_env_get (envp, "XDG_DATA_HOME");
    if (xdg && xdg [0] == '/')
        return tako_config_format ("%s/tako_vm", xdg);
    const char *home = tako_config_env_get (envp, "HOME");
    if (geteuid () == 0 && (!home || strcmp (home, "/root") == 0))
        return strdup (TAKO_CONFIG_ROOT_DATA_DIR);
    if (home && home [0] == '/')
        return tako_config_format ("%s/.tako_vm", strcmp (home, "/") == 0? "": home);
    return strdup (TAKO_CONFIG_ROOT_DATA_DIR);
}

int
tako_config_apply_env (tako_config_t *self, char **envp, tako_config_errors_t *errors)
{
    size_t before = tako_config_errors_count (errors);
    //  The default data_dir follows the environment being applied, unless
    //  the file chose one.
    if (!tako_config_origin_known (self, "data_dir")) {
        char *data_dir = tako_config_default_data_dir (envp);
        if (data_dir) {
            free (self->data_dir);
            self->data_dir = data_dir;
        }
    }
    env_apply_table (self, envp, errors, tako_config_top_options, "");
    env_apply_table (self, envp, errors, tako_config_limit_options, "container_limits.");
    env_warn_unknown (envp, errors);
    return tako_config_errors_count (errors) > before? -1: 0;
}
