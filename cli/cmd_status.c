/*  tako-vm status [JOB_ID] — is the server up, how busy is it, or where
    is one job?

    Without JOB_ID: asks the scheduler for `health` and `pool.stats`
    through the broker and prints both as one JSON object. With JOB_ID:
    asks the recorder for the job's record (view full) and prints it.
    Exit 0 when answered, 1 when not within the deadline (server down, no
    scheduler or recorder) or when there is no such job.                 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_client.h"

//  How long each question may take before the server counts as down.
#define STATUS_WAIT_MS 3000

//  Ask one query; on success set *result and return 0, else print why.
static int
status_ask (tako_client_t *client, const char *endpoint, const char *service,
            const char *query, json_t *params, json_t **result)
{
    char *reason = NULL;
    int code = tako_client_query (client, service, query, params, STATUS_WAIT_MS, result, &reason);
    if (code == 200 && *result) {
        free (reason);
        return 0;
    }
    if (code == -1)
        fprintf (stderr, "tako-vm status: no answer from %s within %d ms\n", endpoint, STATUS_WAIT_MS);
    else
        fprintf (stderr, "tako-vm status: %s: %s (%d)\n", query,
                 reason? reason: "failed", code);
    free (reason);
    json_decref (*result);
    *result = NULL;
    return -1;
}

static void
json_print (json_t *value)
{
    char *text = json_dumps (value, JSON_INDENT (2) | JSON_SORT_KEYS | JSON_REAL_PRECISION (12));
    if (text)
        printf ("%s\n", text);
    free (text);
}

//  The server's health and pool statistics. 0 or 1 (reported).
static int
status_server (tako_client_t *client, const char *endpoint)
{
    json_t *health = NULL, *pool = NULL;
    int rc = 1;
    if (status_ask (client, endpoint, "scheduler", "health", NULL, &health) == 0
    &&  status_ask (client, endpoint, "scheduler", "pool.stats", NULL, &pool) == 0) {
        json_t *status = json_pack ("{s:s, s:s, s:O, s:O}", "status", "running",
                                    "endpoint", endpoint, "health", health, "pool", pool);
        if (status) {
            json_print (status);
            rc = 0;
        }
        json_decref (status);
    }
    json_decref (health);
    json_decref (pool);
    return rc;
}

//  One job's record. 0 or 1 (reported).
static int
status_job (tako_client_t *client, const char *endpoint, const char *job_id)
{
    json_t *params = json_pack ("{s:s, s:s}", "job_id", job_id, "view", "full");
    json_t *record = NULL;
    int rc = status_ask (client, endpoint, "recorder", "job.get", params, &record) == 0? 0: 1;
    if (rc == 0)
        json_print (record);
    json_decref (record);
    json_decref (params);
    return rc;
}

static int
status_run (tako_cli_t *cli, int argc, char **argv)
{
    const char *connect = NULL, *job_id = NULL;
    for (int arg = 1; arg < argc; arg++) {
        if (streq (argv [arg], "--connect") && arg + 1 < argc)
            connect = argv [++arg];
        else
        if (argv [arg][0] != '-' && !job_id)
            job_id = argv [arg];
        else {
            fprintf (stderr, "tako-vm status: unexpected argument '%s' (see tako-vm status --help)\n",
                     argv [arg]);
            return 2;
        }
    }
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fputs (problems? problems: "tako-vm status: cannot load the configuration\n", stderr);
        free (problems);
        return 1;
    }
    const char *endpoint = connect? connect: config->broker_endpoint;
    tako_client_t *client = tako_client_new (endpoint, NULL);
    int rc = 1;
    if (!client)
        fprintf (stderr, "tako-vm status: invalid endpoint '%s'\n", endpoint);
    else
        rc = job_id? status_job (client, endpoint, job_id): status_server (client, endpoint);
    tako_client_destroy (&client);
    tako_config_destroy (&config);
    return rc;
}

const tako_command_t tako_command_status = {
    "status", "[JOB_ID] [--connect ENDPOINT]",
    "show whether the server runs, its health and pool statistics", status_run,
    "Asks the scheduler (through the broker) for its health (circuit breaker,\n"
    "queue, executors) and pool statistics and prints them as JSON. With\n"
    "JOB_ID, prints that job's record from the recorder instead. Exits 1\n"
    "when no answer comes within 3 seconds, or there is no such job.\n"
    "\n"
    "options:\n"
    "  --connect ENDPOINT   the service broker (default: broker_endpoint)\n"
};
