/*  tako-vm broker — run the service broker and the event hub in the
    foreground until SIGINT or SIGTERM, then exit 0.

    Endpoints come from the configuration (broker_endpoint,
    event_publish_endpoint, event_subscribe_endpoint) unless given on the
    command line. Every peer must use the same heartbeat settings as the
    broker; the defaults match tako_peer's.                                */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_log.h"
#include "brokers/tako_broker.h"
#include "brokers/tako_hub.h"

#define BROKER_CLI_COMPONENT "broker"

//  Bounds of the heartbeat options.
#define HEARTBEAT_MS_MIN     10
#define HEARTBEAT_MS_MAX     60000
#define LIVENESS_MIN         2
#define LIVENESS_MAX         100

typedef struct {
    const char *bind;
    const char *events_in;
    const char *events_out;
    int heartbeat_ms;
    int liveness;
} broker_options_t;

//  Parse an integer option value within [minimum, maximum]. 0 or -1.
static int
parse_bounded (const char *name, const char *text, int minimum, int maximum, int *value)
{
    char *end = NULL;
    long number = text? strtol (text, &end, 10): 0;
    if (!text || !*text || *end || number < minimum || number > maximum) {
        fprintf (stderr, "tako-vm broker: %s must be an integer from %d to %d\n", name, minimum, maximum);
        return -1;
    }
    *value = (int) number;
    return 0;
}

//  0, or 2 (usage error, already reported).
static int
parse_options (int argc, char **argv, broker_options_t *options)
{
    for (int arg = 1; arg < argc; arg++) {
        const char *name = argv [arg];
        const char *value = arg + 1 < argc? argv [arg + 1]: NULL;
        bool takes_value = streq (name, "--bind") || streq (name, "--events-in")
                        || streq (name, "--events-out") || streq (name, "--heartbeat")
                        || streq (name, "--liveness");
        if (!takes_value) {
            fprintf (stderr, "tako-vm broker: unknown argument '%s' (see tako-vm broker --help)\n", name);
            return 2;
        }
        if (!value) {
            fprintf (stderr, "tako-vm broker: %s needs a value\n", name);
            return 2;
        }
        arg++;
        if (streq (name, "--bind"))
            options->bind = value;
        else
        if (streq (name, "--events-in"))
            options->events_in = value;
        else
        if (streq (name, "--events-out"))
            options->events_out = value;
        else
        if (streq (name, "--heartbeat")) {
            if (parse_bounded (name, value, HEARTBEAT_MS_MIN, HEARTBEAT_MS_MAX, &options->heartbeat_ms))
                return 2;
        }
        else
        if (parse_bounded (name, value, LIVENESS_MIN, LIVENESS_MAX, &options->liveness))
            return 2;
    }
    return 0;
}

//  Run both actors until interrupted. 0, or 1 if either could not bind.
static int
serve (const broker_options_t *options)
{
    tako_broker_args_t broker_args = { options->bind, options->heartbeat_ms, options->liveness, NULL };
    tako_hub_args_t hub_args = { options->events_in, options->events_out, NULL, NULL };
    zactor_t *broker = zactor_new (tako_broker_actor, &broker_args);
    zactor_t *hub = zactor_new (tako_hub_actor, &hub_args);
    char *endpoint = tako_broker_endpoint (broker);
    char *publish = NULL, *subscribe = NULL;
    int hub_rc = tako_hub_endpoints (hub, &publish, &subscribe);
    int rc = 1;
    if (endpoint && hub_rc == 0) {
        tako_info (BROKER_CLI_COMPONENT, "service broker on %s, heartbeat %d ms x %d", endpoint,
                   options->heartbeat_ms, options->liveness);
        tako_info (BROKER_CLI_COMPONENT, "event hub: publishers to %s, subscribers to %s",
                   publish, subscribe);
        //  Both actors stop when a signal interrupts them; so do we.
        zpoller_t *poller = zpoller_new (broker, hub, NULL);
        while (!zsys_interrupted && !zpoller_terminated (poller))
            zpoller_wait (poller, -1);
        zpoller_destroy (&poller);
        tako_info (BROKER_CLI_COMPONENT, "stopping");
        rc = 0;
    }
    else
        fprintf (stderr, "tako-vm broker: cannot bind %s\n", endpoint? "the event hub": "the service broker");
    zstr_free (&endpoint);
    zstr_free (&publish);
    zstr_free (&subscribe);
    zactor_destroy (&hub);
    zactor_destroy (&broker);
    return rc;
}

static int
broker_run (tako_cli_t *cli, int argc, char **argv)
{
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fputs (problems? problems: "tako-vm broker: cannot load the configuration\n", stderr);
        free (problems);
        return 1;
    }
    broker_options_t options = {
        config->broker_endpoint, config->event_publish_endpoint, config->event_subscribe_endpoint,
        TAKO_BROKER_DEFAULT_INTERVAL_MS, TAKO_BROKER_DEFAULT_LIVENESS
    };
    int rc = parse_options (argc, argv, &options);
    if (rc == 0) {
        tako_log_set_level (cli->verbose? TAKO_LOG_DEBUG: config->log_level);
        //  Installs czmq's handler: SIGINT/SIGTERM set zsys_interrupted.
        zsys_init ();
        rc = serve (&options);
    }
    tako_config_destroy (&config);
    return rc;
}

const tako_command_t tako_command_broker = {
    "broker", "[--bind ENDPOINT] [--events-in ENDPOINT] [--events-out ENDPOINT]",
    "run the service broker and the event hub", broker_run,
    "Runs the service broker (a ROUTER every actor and client connects to) and\n"
    "the event hub (publishers connect to --events-in, watchers to --events-out)\n"
    "in the foreground. Stops cleanly on SIGINT or SIGTERM.\n"
    "\n"
    "options:\n"
    "  --bind ENDPOINT        broker endpoint (default: broker_endpoint)\n"
    "  --events-in ENDPOINT   where publishers connect (default: event_publish_endpoint)\n"
    "  --events-out ENDPOINT  where subscribers connect (default: event_subscribe_endpoint)\n"
    "  --heartbeat MS         heartbeat interval, 10-60000 (default 1000); peers must match\n"
    "  --liveness N           missed beats before a peer is dead, 2-100 (default 3)\n"
};
