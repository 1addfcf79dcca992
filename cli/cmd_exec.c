/*  tako-vm exec FILE.py — submit a job to a running server.

    Sends SUBMIT to the scheduler through the broker (the job id comes
    back only once the job is committed), then follows the job's events
    and asks the recorder for the record until the job has ended, and
    prints the record as JSON — the same fields `tako-vm sandbox` prints.
    With --async it prints {job_id, status} at once instead.

    Exit 0 when the job was accepted and (unless --async) ended, whatever
    its status; 1 when it could not be submitted (the reason on stderr)
    or did not end within the wait; 2 for usage errors.                  */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include <jansson.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_client.h"
#include "tako_events.h"
#include "actors/recorder/tako_store.h"

//  The largest code file read: the widest max_code_bytes allows, plus one
//  byte so the scheduler sees (and reports) anything too big.
#define EXEC_CODE_READ_MAX      (16 * 1024 * 1024 + 1)
//  Bounds of --timeout and --wait, seconds.
#define EXEC_TIMEOUT_MAX        86400
#define EXEC_WAIT_MAX           (7 * 86400)
//  How long the scheduler may take to commit a job and answer.
#define EXEC_SUBMIT_WAIT_MS     15000
//  One question to the recorder.
#define EXEC_QUERY_WAIT_MS      5000
//  Default wait for the end beyond the job's own timeouts: queueing.
#define EXEC_QUEUE_ALLOWANCE_S  600
//  Between two looks at the record (events wake us up earlier).
#define EXEC_POLL_FIRST_MS      100
#define EXEC_POLL_MAX_MS        1000
#define MS_PER_SECOND           1000

typedef struct {
    const char *file;
    const char *input;
    const char *job_type;
    const char *connect;
    const char *idempotency_key;
    int timeout;                //  0: the job type's
    int wait;                   //  0: computed
    bool async;
} exec_options_t;

static int
parse_seconds (const char *option, const char *text, int maximum, int *value)
{
    char *end = NULL;
    long number = strtol (text, &end, 10);
    if (!*text || *end || number < 1 || number > maximum) {
        fprintf (stderr, "tako-vm exec: %s wants whole seconds from 1 to %d\n", option, maximum);
        return -1;
    }
    *value = (int) number;
    return 0;
}

//  0, or 2 (usage error, reported).
static int
parse_options (int argc, char **argv, exec_options_t *options)
{
    for (int arg = 1; arg < argc; arg++) {
        const char *option = argv [arg];
        if (streq (option, "--async")) {
            options->async = true;
            continue;
        }
        if (option [0] != '-' || streq (option, "-")) {
            if (options->file) {
                fprintf (stderr, "tako-vm exec: unexpected argument '%s'\n", option);
                return 2;
            }
            options->file = option;
            continue;
        }
        const char *value = arg + 1 < argc? argv [++arg]: NULL;
        if (!value) {
            fprintf (stderr, "tako-vm exec: %s needs a value\n", option);
            return 2;
        }
        if (streq (option, "--input"))
            options->input = value;
        else
        if (streq (option, "--job-type"))
            options->job_type = value;
        else
        if (streq (option, "--connect"))
            options->connect = value;
        else
        if (streq (option, "--idempotency-key"))
            options->idempotency_key = value;
        else
        if (streq (option, "--timeout")) {
            if (parse_seconds (option, value, EXEC_TIMEOUT_MAX, &options->timeout))
                return 2;
        }
        else
        if (streq (option, "--wait")) {
            if (parse_seconds (option, value, EXEC_WAIT_MAX, &options->wait))
                return 2;
        }
        else {
            fprintf (stderr, "tako-vm exec: unknown option '%s' (see tako-vm exec --help)\n", option);
            return 2;
        }
    }
    if (!options->file) {
        fprintf (stderr, "tako-vm exec: which FILE.py (or - for stdin)?\n");
        return 2;
    }
    return 0;
}

//  The whole file (or stdin for "-") as a string, or NULL.
static char *
code_read (const char *path)
{
    FILE *file = streq (path, "-")? stdin: fopen (path, "rb");
    if (!file)
        return NULL;
    char *code = malloc (EXEC_CODE_READ_MAX + 1);
    size_t size = code? fread (code, 1, EXEC_CODE_READ_MAX, file): 0;
    if (code)
        code [size] = '\0';
    if (code && ferror (file)) {
        free (code);
        code = NULL;
    }
    if (file != stdin)
        fclose (file);
    return code;
}

//  The SUBMIT for these options, or NULL (reported).
static tako_msg_t *
submit_build (const exec_options_t *options, const char *code)
{
    json_error_t problem;
    json_t *input = options->input? json_loads (options->input, 0, &problem): json_object ();
    if (!json_is_object (input)) {
        fprintf (stderr, "tako-vm exec: --input must be a JSON object\n");
        json_decref (input);
        return NULL;
    }
    tako_msg_t *submit = tako_msg_new ("SUBMIT");
    int rc = tako_msg_set_address (submit, "scheduler");
    rc |= tako_msg_set_str (submit, "code", code);
    rc |= tako_msg_set_object (submit, "input_data", input);
    if (options->timeout)
        rc |= tako_msg_set_int (submit, "timeout", options->timeout);
    if (options->job_type)
        rc |= tako_msg_set_str (submit, "job_type", options->job_type);
    if (options->idempotency_key)
        rc |= tako_msg_set_str (submit, "idempotency_key", options->idempotency_key);
    json_decref (input);
    if (rc) {
        fprintf (stderr, "tako-vm exec: the code or the input is not valid UTF-8 text\n");
        tako_msg_destroy (&submit);
    }
    return submit;
}

//  Submit; on success the new job's id and status (caller frees both).
static int
job_submit (tako_client_t *client, const char *endpoint, tako_msg_t **submit_p,
            char **job_id, char **status)
{
    tako_msg_t *answer = tako_client_request (client, submit_p, EXEC_SUBMIT_WAIT_MS);
    if (!answer) {
        fprintf (stderr, "tako-vm exec: no answer from the server at %s\n", endpoint);
        return -1;
    }
    int rc = -1;
    if (streq (tako_msg_command (answer), "ACCEPTED")) {
        *job_id = strdup (tako_msg_str (answer, "job_id"));
        *status = strdup (tako_msg_str (answer, "status"));
        rc = *job_id && *status? 0: -1;
    }
    else
    if (tako_msg_str (answer, "job_id"))
        fprintf (stderr, "tako-vm exec: %s (job %s)\n", tako_msg_str (answer, "reason"),
                 tako_msg_str (answer, "job_id"));
    else
        fprintf (stderr, "tako-vm exec: %s\n", tako_msg_has (answer, "reason")?
                 tako_msg_str (answer, "reason"): "the job was refused");
    tako_msg_destroy (&answer);
    return rc;
}

static void
json_print (json_t *value)
{
    char *text = json_dumps (value, JSON_INDENT (2) | JSON_REAL_PRECISION (12));
    if (text)
        printf ("%s\n", text);
    free (text);
}

//  The job's record if it has ended (caller decrefs), else NULL.
static json_t *
job_ended (tako_client_t *client, const char *job_id, char **status)
{
    json_t *params = json_pack ("{s:s, s:s}", "job_id", job_id, "view", "full");
    json_t *record = NULL;
    int code = tako_client_query (client, "recorder", "job.get", params, EXEC_QUERY_WAIT_MS,
                                  &record, NULL);
    json_decref (params);
    const char *now = json_string_value (json_object_get (record, "status"));
    if (code == 200 && now) {
        free (*status);
        *status = strdup (now);
        if (tako_store_status_terminal (now))
            return record;
    }
    json_decref (record);
    return NULL;
}

//  Wait until the job has ended and print its record. 0, or 1 (reported).
static int
job_follow (tako_client_t *client, tako_config_t *config, const char *job_id,
            char **status, int wait_s)
{
    tako_events_t *events = tako_events_new_subscriber (config->event_subscribe_endpoint);
    if (events)
        tako_events_follow_job (events, job_id);
    int64_t deadline = zclock_mono () + (int64_t) wait_s * MS_PER_SECOND;
    int poll_ms = EXEC_POLL_FIRST_MS;
    json_t *record = NULL;
    while (!zsys_interrupted && zclock_mono () < deadline
       &&  !(record = job_ended (client, job_id, status))) {
        //  An event for the job ends the pause early; the record decides.
        tako_msg_t *event = events? tako_events_recv (events, poll_ms): NULL;
        if (!events)
            zclock_sleep (poll_ms);
        tako_msg_destroy (&event);
        poll_ms = poll_ms * 2 > EXEC_POLL_MAX_MS? EXEC_POLL_MAX_MS: poll_ms * 2;
    }
    tako_events_destroy (&events);
    if (!record) {
        fprintf (stderr, "tako-vm exec: job %s did not end within the wait (status %s)\n",
                 job_id, *status);
        return 1;
    }
    json_print (record);
    json_decref (record);
    return 0;
}

//  The default wait: the job's timeouts plus time in the queue.
static int
wait_default (tako_config_t *config, const exec_options_t *options)
{
    const tako_config_job_type_t *job_type =
        tako_config_job_type (config, options->job_type? options->job_type: TAKO_CONFIG_DEFAULT_JOB_TYPE);
    int timeout = options->timeout? options->timeout: job_type? job_type->timeout: config->max_timeout;
    int startup = job_type? job_type->startup_timeout: config->max_startup_timeout;
    return timeout + startup + EXEC_QUEUE_ALLOWANCE_S;
}

static int
exec_submit_and_follow (tako_config_t *config, const exec_options_t *options, const char *code)
{
    const char *endpoint = options->connect? options->connect: config->broker_endpoint;
    tako_msg_t *submit = submit_build (options, code);
    if (!submit)
        return 1;
    tako_client_t *client = tako_client_new (endpoint, NULL);
    if (!client) {
        fprintf (stderr, "tako-vm exec: invalid endpoint '%s'\n", endpoint);
        tako_msg_destroy (&submit);
        return 1;
    }
    char *job_id = NULL, *status = NULL;
    int rc = 1;
    if (job_submit (client, endpoint, &submit, &job_id, &status) == 0) {
        if (options->async) {
            json_t *accepted = json_pack ("{s:s, s:s}", "job_id", job_id, "status", status);
            json_print (accepted);
            json_decref (accepted);
            rc = 0;
        }
        else
            rc = job_follow (client, config, job_id, &status,
                             options->wait? options->wait: wait_default (config, options));
    }
    free (job_id);
    free (status);
    tako_client_destroy (&client);
    return rc;
}

static int
exec_run (tako_cli_t *cli, int argc, char **argv)
{
    exec_options_t options = { 0 };
    int rc = parse_options (argc, argv, &options);
    if (rc)
        return rc;
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fputs (problems? problems: "tako-vm exec: cannot load the configuration\n", stderr);
        free (problems);
        return 1;
    }
    char *code = code_read (options.file);
    if (!code) {
        fprintf (stderr, "tako-vm exec: cannot read '%s'\n", options.file);
        tako_config_destroy (&config);
        return 1;
    }
    zsys_init ();           //  Ctrl-C ends the wait (the job goes on)
    rc = exec_submit_and_follow (config, &options, code);
    free (code);
    tako_config_destroy (&config);
    return rc;
}

const tako_command_t tako_command_exec = {
    "exec", "FILE.py [--input JSON] [--timeout S] [--job-type NAME] [--async] [--idempotency-key K] [--connect ENDPOINT]",
    "submit a job to the running server and print its result", exec_run,
    "Submits FILE.py (or - for stdin) as a job through the service broker,\n"
    "waits until it has ended and prints its record as JSON (status, exit_code,\n"
    "stdout, stderr, output, error, timing, artifacts...). Exit 0 when the job\n"
    "ran, whatever its status; 1 when it could not be submitted.\n"
    "\n"
    "options:\n"
    "  --input JSON         input_data, a JSON object (default {})\n"
    "  --timeout S          execution timeout in seconds (default: the job type's)\n"
    "  --job-type NAME      job type (default: default)\n"
    "  --async              print {job_id, status} at once and do not wait\n"
    "  --idempotency-key K  submitting again with the same K and the same job\n"
    "                       returns the first job instead of a new one\n"
    "  --wait S             give up waiting after S seconds (default: the job's\n"
    "                       timeouts plus 10 minutes in the queue)\n"
    "  --connect ENDPOINT   the service broker (default: broker_endpoint)\n"
};
