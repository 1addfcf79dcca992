/*  tako-vm dev up|down|status [--data-dir DIR] — the private PostgreSQL.

    Scripts parse the output: `up` prints only the connection URL on
    stdout; `status` prints "running URL" or "stopped URL" and exits 0 when
    running, 3 when stopped (the pg_ctl convention); `down` prints
    "stopped". Errors go to stderr with exit 1; usage errors exit 2.     */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_pgcluster.h"

//  Exit status of `dev status` when the server is not running.
#define DEV_EXIT_STOPPED 3

typedef int (dev_action_fn) (tako_pgcluster_t *cluster);

static int
dev_up (tako_pgcluster_t *cluster)
{
    if (tako_pgcluster_start (cluster) != 0) {
        fprintf (stderr, "tako-vm dev up: %s\n", tako_pgcluster_error (cluster));
        return 1;
    }
    printf ("%s\n", tako_pgcluster_url (cluster));
    return 0;
}

static int
dev_down (tako_pgcluster_t *cluster)
{
    if (tako_pgcluster_stop (cluster) != 0) {
        fprintf (stderr, "tako-vm dev down: %s\n", tako_pgcluster_error (cluster));
        return 1;
    }
    printf ("stopped\n");
    return 0;
}

static int
dev_status (tako_pgcluster_t *cluster)
{
    bool running = tako_pgcluster_status (cluster) == TAKO_PGCLUSTER_RUNNING;
    printf ("%s %s\n", running? "running": "stopped", tako_pgcluster_url (cluster));
    return running? 0: DEV_EXIT_STOPPED;
}

static dev_action_fn *
dev_action_find (const char *name)
{
    if (strcmp (name, "up") == 0)
        return dev_up;
    if (strcmp (name, "down") == 0)
        return dev_down;
    if (strcmp (name, "status") == 0)
        return dev_status;
    return NULL;
}

//  The data_dir of the configuration, as a fresh string, or NULL with the
//  problems printed.
static char *
config_data_dir (tako_cli_t *cli)
{
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fprintf (stderr, "%s", problems? problems: "tako-vm dev: cannot load the configuration\n");
        free (problems);
        return NULL;
    }
    if (config->database_url && *config->database_url)
        fprintf (stderr, "tako-vm dev: note: database_url is set, so tako-vm server "
                         "uses that server, not this private one\n");
    char *data_dir = config->data_dir? strdup (config->data_dir): NULL;
    tako_config_destroy (&config);
    return data_dir;
}

static int
dev_run (tako_cli_t *cli, int argc, char **argv)
{
    dev_action_fn *action = NULL;
    const char *data_dir_option = NULL;
    for (int arg = 1; arg < argc; arg++) {
        if (strcmp (argv [arg], "--data-dir") == 0 && arg + 1 < argc)
            data_dir_option = argv [++arg];
        else
        if (strncmp (argv [arg], "--data-dir=", 11) == 0)
            data_dir_option = argv [arg] + 11;
        else
        if (!action && (action = dev_action_find (argv [arg])))
            ;
        else {
            fprintf (stderr, "tako-vm dev: unexpected argument '%s' (see tako-vm dev --help)\n",
                     argv [arg]);
            return 2;
        }
    }
    if (!action) {
        fprintf (stderr, "tako-vm dev: say up, down or status (see tako-vm dev --help)\n");
        return 2;
    }
    char *data_dir = data_dir_option? strdup (data_dir_option): config_data_dir (cli);
    if (!data_dir)
        return 1;
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    free (data_dir);
    if (!cluster) {
        fprintf (stderr, "tako-vm dev: the data directory name is empty or too long\n");
        return 1;
    }
    int rc = action (cluster);
    tako_pgcluster_destroy (&cluster);
    return rc;
}

const tako_command_t tako_command_dev = {
    "dev", "up|down|status [--data-dir DIR]",
    "manage the private PostgreSQL cluster under the data directory", dev_run,
    "  up       initialise the cluster if needed, start it, create the\n"
    "           tako_vm database; prints only the connection URL\n"
    "  down     stop it (fast shutdown); prints \"stopped\"\n"
    "  status   prints \"running URL\" (exit 0) or \"stopped URL\" (exit 3)\n"
    "\n"
    "  --data-dir DIR   the data directory (default: data_dir of the\n"
    "                   configuration); the cluster lives in DIR/pg\n"
    "\n"
    "The cluster listens on a unix socket only (no TCP port). As root,\n"
    "PostgreSQL runs as the 'postgres' system user, which must be able to\n"
    "search every parent directory of DIR. Point tako-vm at it, or at any\n"
    "other server, with database_url.\n"
};
