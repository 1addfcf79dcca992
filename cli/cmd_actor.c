/*  tako-vm actor NAME — run one actor in the foreground.

    The building block of `tako-vm server --processes` and of multi-host
    set-ups: the actor connects to a broker (--connect, default the
    configuration's broker_endpoint) and runs until SIGINT or SIGTERM,
    then exits 0. Exit 1 when it cannot start or ends on its own.        */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <czmq.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_log.h"
#include "tako_actors.h"

#define ACTOR_CLI_COMPONENT "actor"
//  Bounds of --slots and --slot-base (sandbox uid slots).
#define ACTOR_SLOTS_MAX      256
#define ACTOR_SLOT_BASE_MAX  60000

typedef struct {
    const char *name;
    const char *connect;
    const char *events;
    const char *database_url;
    int slots;
    int slot_base;
} actor_options_t;

static int
parse_int (const char *option, const char *text, int minimum, int maximum, int *value)
{
    char *end = NULL;
    long number = strtol (text, &end, 10);
    if (!*text || *end || number < minimum || number > maximum) {
        fprintf (stderr, "tako-vm actor: %s must be an integer from %d to %d\n",
                 option, minimum, maximum);
        return -1;
    }
    *value = (int) number;
    return 0;
}

//  0, or 2 (usage error, reported).
static int
parse_options (int argc, char **argv, actor_options_t *options)
{
    for (int arg = 1; arg < argc; arg++) {
        const char *option = argv [arg];
        if (option [0] != '-') {
            if (options->name) {
                fprintf (stderr, "tako-vm actor: unexpected argument '%s'\n", option);
                return 2;
            }
            options->name = option;
            continue;
        }
        const char *value = arg + 1 < argc? argv [++arg]: NULL;
        if (!value) {
            fprintf (stderr, "tako-vm actor: %s needs a value\n", option);
            return 2;
        }
        if (streq (option, "--connect"))
            options->connect = value;
        else
        if (streq (option, "--events"))
            options->events = value;
        else
        if (streq (option, "--database-url"))
            options->database_url = value;
        else
        if (streq (option, "--slots")) {
            if (parse_int (option, value, 1, ACTOR_SLOTS_MAX, &options->slots))
                return 2;
        }
        else
        if (streq (option, "--slot-base")) {
            if (parse_int (option, value, 0, ACTOR_SLOT_BASE_MAX, &options->slot_base))
                return 2;
        }
        else {
            fprintf (stderr, "tako-vm actor: unknown option '%s' (see tako-vm actor --help)\n", option);
            return 2;
        }
    }
    if (!options->name) {
        fprintf (stderr, "tako-vm actor: which actor? (see tako-vm actor --help)\n");
        return 2;
    }
    if (!tako_actors_known (options->name)) {
        fprintf (stderr, "tako-vm actor: unknown actor '%s'\n", options->name);
        return 2;
    }
    return 0;
}

//  Run until a signal (0) or until the actor ends on its own (1).
static int
actor_serve (tako_config_t *config, const actor_options_t *options)
{
    tako_actors_options_t actors_options = {
        .config = config,
        .broker_endpoint = options->connect,
        .events_endpoint = options->events,
        .database_url = options->database_url,
        .executor_slots = options->slots,
        .executor_slot_base = options->slot_base
    };
    tako_actors_t *actors = tako_actors_new (&actors_options);
    if (!actors || tako_actors_start (actors, options->name)) {
        fprintf (stderr, "tako-vm actor: cannot start the %s\n", options->name);
        tako_actors_destroy (&actors);
        return 1;
    }
    tako_info (ACTOR_CLI_COMPONENT, "%s connected to %s (pid %d)", options->name,
               options->connect? options->connect: config->broker_endpoint, (int) getpid ());
    zpoller_t *poller = zpoller_new (NULL);
    tako_actors_poll (actors, poller);
    int rc = 0;
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, -1);
        //  After a signal the actor may end first: that is no failure.
        if (which && !zsys_interrupted && tako_actors_check (actors, which)) {
            tako_error (ACTOR_CLI_COMPONENT, "the %s stopped on its own", options->name);
            rc = 1;
            break;
        }
        if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    tako_info (ACTOR_CLI_COMPONENT, "%s stopping", options->name);
    tako_actors_destroy (&actors);
    return rc;
}

static int
actor_run (tako_cli_t *cli, int argc, char **argv)
{
    actor_options_t options = { 0 };
    int rc = parse_options (argc, argv, &options);
    if (rc)
        return rc;
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fputs (problems? problems: "tako-vm actor: cannot load the configuration\n", stderr);
        free (problems);
        return 1;
    }
    tako_log_set_level (cli->verbose? TAKO_LOG_DEBUG: config->log_level);
    //  czmq's handler: SIGINT/SIGTERM set zsys_interrupted, which ends the
    //  actor's loop and ours.
    zsys_init ();
    rc = actor_serve (config, &options);
    tako_config_destroy (&config);
    return rc;
}

const tako_command_t tako_command_actor = {
    "actor", "NAME [--connect ENDPOINT] [--events ENDPOINT] [--database-url URL] [--slots N] [--slot-base N]",
    "run one actor (scheduler, recorder, executor, dlq, builder, http) in the foreground", actor_run,
    "Runs one actor until SIGINT or SIGTERM. NAME is scheduler, recorder,\n"
    "executor, dlq, builder (job type environments) or http (the REST API\n"
    "on server_host:server_port).\n"
    "`tako-vm server --processes` runs each actor this way;\n"
    "on several hosts, run the broker on one and point the actors at it.\n"
    "\n"
    "options:\n"
    "  --connect ENDPOINT    the service broker (default: broker_endpoint)\n"
    "  --events ENDPOINT     where events are published (default: event_publish_endpoint)\n"
    "  --database-url URL    recorder: the PostgreSQL server (default: database_url)\n"
    "  --slots N             executor: concurrent sandboxes, 1-256 (default: max_workers)\n"
    "  --slot-base N         executor: first sandbox uid slot, 0-60000 (default 0)\n"
};
