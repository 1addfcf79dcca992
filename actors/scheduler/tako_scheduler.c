/*  tako_scheduler — the scheduler actor. See tako_scheduler.h.

    One thread, one loop: every request to the recorder is a QUERY kept in
    a table with its continuation (scheduler_requests.c), so the loop never
    waits for an answer. This file holds the loop, the pipe, the shared
    helpers (sending, events, the job table) and the pure functions the
    header exposes.                                                       */

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <time.h>
#include "scheduler_internal.h"
#include "tako_sha256.h"

//  Requirements: at most this many per job, each at most this long.
#define REQUIREMENTS_MAX        100
#define REQUIREMENT_LENGTH_MAX  200
//  Startup timeout bounds of the REST contract (seconds).
#define STARTUP_TIMEOUT_MIN     10
//  A backoff never exceeds this (ms).
#define BACKOFF_MAX_MS          (60 * 60 * 1000)
//  "2026-11-22T08:00:00.123Z" plus NUL.
#define TIMESTAMP_SIZE          32

//  --------------------------------------------------------------------------
//  Pure pieces

int64_t
tako_scheduler_lease_ms (int heartbeat_interval_ms)
{
    int64_t interval = heartbeat_interval_ms > 0? heartbeat_interval_ms
                                                : TAKO_PEER_DEFAULT_INTERVAL_MS;
    int64_t lease = interval * TAKO_SCHEDULER_LEASE_BEATS;
    return lease < TAKO_SCHEDULER_LEASE_MIN_MS? TAKO_SCHEDULER_LEASE_MIN_MS: lease;
}

int64_t
tako_scheduler_backoff_ms (double retry_base_delay, int attempt)
{
    if (attempt < 2 || retry_base_delay <= 0)
        return 0;
    double delay = retry_base_delay * 1000.0 * ldexp (1.0, attempt - 2);
    return delay > BACKOFF_MAX_MS? BACKOFF_MAX_MS: (int64_t) delay;
}

//  A pip requirement specifier we pass on: a name first, then only the
//  characters of versions, extras and markers. No options ("-e", "--index-url"),
//  no URLs or paths: those could reach outside the configured index.
static bool
requirement_valid (const char *text)
{
    size_t length = strlen (text);
    if (length == 0 || length > REQUIREMENT_LENGTH_MAX || !isalnum ((unsigned char) text [0]))
        return false;
    for (const char *c = text; *c; c++)
        if (!isalnum ((unsigned char) *c) && !strchr ("._-[]<>=!~,* ", *c))
            return false;
    return true;
}

static int
validate_fail (char *reason, size_t reason_size, const char *text)
{
    snprintf (reason, reason_size, "%s", text);
    return -1;
}

int
tako_scheduler_validate (tako_config_t *config, const char *code, json_t *input_data,
                         const char *job_type, int64_t timeout, int64_t startup_timeout,
                         json_t *requirements, int *timeout_out, int *startup_timeout_out,
                         char *reason, size_t reason_size)
{
    if (!code || !*code)
        return validate_fail (reason, reason_size, "code must not be empty");
    if ((int64_t) strlen (code) > config->max_code_bytes)
        return validate_fail (reason, reason_size, "code is larger than max_code_bytes");
    if (input_data && !json_is_null (input_data)) {
        if (!json_is_object (input_data))
            return validate_fail (reason, reason_size, "input_data must be an object");
        char *text = json_dumps (input_data, JSON_COMPACT);
        bool too_big = !text || (int64_t) strlen (text) > config->max_input_bytes;
        free (text);
        if (too_big)
            return validate_fail (reason, reason_size, "input_data is larger than max_input_bytes");
    }
    const tako_config_job_type_t *type =
        tako_config_job_type (config, job_type? job_type: TAKO_CONFIG_DEFAULT_JOB_TYPE);
    if (!type)
        return validate_fail (reason, reason_size, "unknown job type");
    //  A job type's timeouts inherit the defaults (0 until the config is finished).
    if (timeout == INT64_MIN)
        timeout = type->timeout > 0? type->timeout: config->default_timeout;
    if (timeout < 1 || timeout > config->max_timeout)
        return validate_fail (reason, reason_size, "timeout is out of range");
    if (startup_timeout == INT64_MIN)
        startup_timeout = type->startup_timeout > 0? type->startup_timeout
                                                   : config->default_startup_timeout;
    if (startup_timeout < STARTUP_TIMEOUT_MIN || startup_timeout > config->max_startup_timeout)
        return validate_fail (reason, reason_size, "startup_timeout is out of range");
    if (requirements && !json_is_null (requirements)) {
        if (!json_is_array (requirements) || json_array_size (requirements) > REQUIREMENTS_MAX)
            return validate_fail (reason, reason_size, "too many requirements");
        size_t index;
        json_t *item;
        json_array_foreach (requirements, index, item)
            if (!json_is_string (item) || !requirement_valid (json_string_value (item)))
                return validate_fail (reason, reason_size, "invalid requirement specifier");
    }
    *timeout_out = (int) timeout;
    *startup_timeout_out = (int) startup_timeout;
    return 0;
}

char *
tako_scheduler_fingerprint (json_t *job)
{
    static const char *fields [] = {
        "code", "input_data", "job_type", "timeout_s", "startup_timeout_s",
        "requirements", NULL
    };
    json_t *canonical = json_object ();
    if (!canonical)
        return NULL;
    for (const char **field = fields; *field; field++) {
        json_t *value = json_object_get (job, *field);
        json_object_set (canonical, *field, value? value: json_null ());
    }
    char *text = json_dumps (canonical, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref (canonical);
    char *hex = text? tako_sha256_hex (text, strlen (text)): NULL;
    free (text);
    return hex;
}

//  --------------------------------------------------------------------------
//  Shared helpers

int64_t
scheduler_now (void)
{
    return zclock_mono ();
}

void
scheduler_send (scheduler_t *self, tako_msg_t *msg, const char *to)
{
    if (!msg)
        return;
    if (tako_msg_set_address (msg, to) != 0
    ||  tako_peer_send (self->peer, &msg) != 0)
        tako_warning (LOG, "could not send to %s", to);
    tako_msg_destroy (&msg);
}

void
scheduler_next_id (scheduler_t *self, const char *prefix, char *buffer)
{
    snprintf (buffer, SCHEDULER_ID_MAX, "%s-%" PRIu64, prefix, ++self->next_id);
}

static void
timestamp_now (char *buffer)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    char date [24];
    strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (buffer, TIMESTAMP_SIZE, "%s.%03dZ", date, (int) (now.tv_nsec / 1000000));
}

//  A record larger than this (encoded as JSON) stays out of the event;
//  a waiter then reads it from the recorder.
#define EVENT_RECORD_MAX (256 * 1024)

static bool
record_fits (const json_t *record)
{
    return record && json_dumpb (record, NULL, 0, JSON_COMPACT) <= EVENT_RECORD_MAX;
}

//  Takes data (may be NULL); record is borrowed (may be NULL).
static void
publish (scheduler_t *self, job_t *job, const char *status, const char *kind,
         json_t *data, const json_t *record)
{
    tako_msg_t *event = tako_msg_new ("EVENT");
    if (event && self->events) {
        char at [TIMESTAMP_SIZE];
        timestamp_now (at);
        tako_msg_set_str (event, "job_id", job->job_id);
        tako_msg_set_int (event, "seq", ++job->seq);
        tako_msg_set_str (event, "status", status);
        tako_msg_set_str (event, "kind", kind);
        tako_msg_set_int (event, "attempt", job->attempt);
        tako_msg_set_str (event, "at", at);
        if (data)
            tako_msg_set_object (event, "data", data);
        if (record_fits (record))
            tako_msg_set_object (event, "record", record);
        if (tako_events_publish (self->events, &event))
            tako_warning (LOG, "could not publish %s of %s", kind, job->job_id);
    }
    tako_msg_destroy (&event);
    json_decref (data);
}

//  Takes data (may be NULL).
void
scheduler_publish (scheduler_t *self, job_t *job, const char *status, const char *kind,
                   json_t *data)
{
    publish (self, job, status, kind, data, NULL);
}

//  The job's "finished" event, with the record job.finish committed (a
//  waiter's answer without reading it back).
void
scheduler_publish_finished (scheduler_t *self, job_t *job, const char *status,
                            json_t *data, const json_t *record)
{
    publish (self, job, status, "finished", data, record);
}

static void
job_destroy (job_t **self_p)
{
    job_t *self = *self_p;
    if (!self)
        return;
    free (self->job_id);
    free (self->executor);
    json_decref (self->payload);
    free (self);
    *self_p = NULL;
}

//  A job in the table (state JOB_QUEUED, not in the queue yet), or NULL.
job_t *
scheduler_job_new (scheduler_t *self, const char *job_id, int attempt, int priority, int64_t seq)
{
    job_t *job = calloc (1, sizeof (job_t));
    if (!job || !(job->job_id = strdup (job_id))) {
        free (job);
        return NULL;
    }
    job->state = JOB_QUEUED;
    job->attempt = attempt;
    job->priority = priority;
    job->seq = seq;
    zhashx_update (self->jobs, job->job_id, job);
    return job;
}

//  The job is terminal (or no longer ours): out of the queue and the table.
void
scheduler_job_forget (scheduler_t *self, job_t *job)
{
    tako_jobqueue_remove (self->queue, job->job_id);
    zhashx_delete (self->jobs, job->job_id);
}

//  Takes result (may be NULL).
void
scheduler_reply (scheduler_t *self, const char *client, const char *request_id,
                 int code, json_t *result, const char *reason)
{
    tako_msg_t *reply = request_id? tako_msg_new ("REPLY"): NULL;
    if (reply) {
        tako_msg_set_str (reply, "request_id", request_id);
        tako_msg_set_int (reply, "code", code);
        if (result)
            tako_msg_set_object (reply, "result", result);
        if (reason)
            tako_msg_set_str (reply, "reason", reason);
        scheduler_send (self, reply, client);
    }
    json_decref (result);
}

void
scheduler_error (scheduler_t *self, const char *client, const char *request_id,
                 int code, const char *reason, const char *job_id)
{
    tako_msg_t *error = tako_msg_new ("ERROR");
    if (!error)
        return;
    tako_msg_set_int (error, "code", code);
    tako_msg_set_str (error, "reason", reason);
    if (request_id)
        tako_msg_set_str (error, "request_id", request_id);
    if (job_id)
        tako_msg_set_str (error, "job_id", job_id);
    //  A client told "try later" waits about as long as a queued job may.
    if (code == 503)
        tako_msg_set_int (error, "retry_after_ms",
                          (int64_t) (self->config->queue_wait_timeout * 1000) + 1);
    scheduler_send (self, error, client);
}

//  --------------------------------------------------------------------------
//  Messages in

static void
scheduler_handle_error (scheduler_t *self, tako_msg_t *msg)
{
    const char *in_reply_to = tako_msg_str (msg, "in_reply_to");
    if (tako_msg_str (msg, "request_id"))
        scheduler_request_error (self, msg);
    else
    if (in_reply_to && (streq (in_reply_to, "DISPATCH") || streq (in_reply_to, "CANCEL")
                    ||  streq (in_reply_to, "RESULT_ACK")))
        scheduler_handle_executor_error (self, msg);
    else
    if (in_reply_to && streq (in_reply_to, "ARTIFACT") && self->recorder
    &&  tako_msg_str (msg, "destination") && streq (tako_msg_str (msg, "destination"), self->recorder)) {
        //  That recorder is gone; its job.finish will say "artifacts
        //  missing" and the executor sends them again to the next one.
        free (self->recorder);
        self->recorder = NULL;
    }
    else
        tako_debug (LOG, "ERROR %" PRId64 " from '%s': %s", tako_msg_int (msg, "code", 0),
                    tako_msg_address (msg), tako_msg_str (msg, "reason"));
}

static void
scheduler_handle_message (scheduler_t *self, tako_msg_t *msg)
{
    const char *command = tako_msg_command (msg);
    if (streq (command, "SUBMIT"))
        scheduler_handle_submit (self, msg);
    else
    if (streq (command, "REPLY"))
        scheduler_request_reply (self, msg);
    else
    if (streq (command, "READY"))
        scheduler_handle_ready (self, msg);
    else
    if (streq (command, "ACCEPT"))
        scheduler_handle_accept (self, msg);
    else
    if (streq (command, "JOB_HEARTBEAT"))
        scheduler_handle_job_heartbeat (self, msg);
    else
    if (streq (command, "ARTIFACT"))
        scheduler_handle_artifact (self, msg);
    else
    if (streq (command, "RESULT"))
        scheduler_handle_result (self, msg);
    else
    if (streq (command, "CANCEL"))
        scheduler_handle_cancel (self, msg);
    else
    if (streq (command, "QUERY"))
        scheduler_handle_query (self, msg);
    else
    if (streq (command, "ERROR"))
        scheduler_handle_error (self, msg);
    else
        tako_debug (LOG, "ignoring %s from %s", command, tako_msg_address (msg));
}

static int
scheduler_queued (scheduler_t *self)
{
    int queued = 0;
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job;
         job = (job_t *) zhashx_next (self->jobs))
        queued += job->state == JOB_QUEUED || job->state == JOB_BACKOFF;
    return queued;
}

static void
scheduler_handle_pipe (scheduler_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "INSTANCE"))
        zstr_send (self->pipe, tako_peer_instance (self->peer));
    else
    if (streq (command, "STATS"))
        zsock_send (self->pipe, "iiii", scheduler_queued (self), scheduler_running (self),
                    (int) zhashx_size (self->executors), self->recovered? 1: 0);
    zstr_free (&command);
}

//  --------------------------------------------------------------------------
//  Actor

static void
scheduler_destroy (scheduler_t **self_p)
{
    scheduler_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->requests);
    zhashx_destroy (&self->jobs);
    zhashx_destroy (&self->executors);
    tako_jobqueue_destroy (&self->queue);
    tako_breaker_destroy (&self->breaker);
    tako_events_destroy (&self->events);
    zpoller_destroy (&self->poller);
    tako_peer_destroy (&self->peer);
    free (self->recorder);
    free (self);
    *self_p = NULL;
}

static scheduler_t *
scheduler_new (zsock_t *pipe, tako_actor_args_t *args)
{
    scheduler_t *self = calloc (1, sizeof (scheduler_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->config = args->config;
    self->lease_ms = tako_scheduler_lease_ms (args->heartbeat.interval_ms);
    self->jobs = zhashx_new ();
    self->executors = zhashx_new ();
    self->requests = zhashx_new ();
    self->queue = tako_jobqueue_new ((size_t) args->config->max_queue_size);
    self->breaker = tako_breaker_new (TAKO_SCHEDULER_BREAKER_FAILURES,
                                      TAKO_SCHEDULER_BREAKER_OPEN_MS);
    const char *events = args->events_endpoint? args->events_endpoint
                                              : args->config->event_publish_endpoint;
    self->events = tako_events_new_publisher (events);
    const char *endpoint = args->broker_endpoint? args->broker_endpoint
                                                : args->config->broker_endpoint;
    self->peer = tako_peer_new (endpoint, "scheduler", &args->heartbeat);
    if (!self->jobs || !self->executors || !self->requests || !self->queue
    ||  !self->breaker || !self->events || !self->peer) {
        scheduler_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->jobs, (zhashx_destructor_fn *) job_destroy);
    zhashx_set_destructor (self->executors, (zhashx_destructor_fn *) scheduler_executor_destroy);
    zhashx_set_destructor (self->requests, (zhashx_destructor_fn *) scheduler_request_destroy);
    self->peer_socket = tako_peer_socket (self->peer);
    self->poller = zpoller_new (pipe, self->peer_socket, NULL);
    if (!self->poller)
        scheduler_destroy (&self);
    return self;
}

static int
scheduler_wait_ms (scheduler_t *self)
{
    int due = tako_peer_tick_due (self->peer);
    return due < SCHEDULER_TICK_MS? due: SCHEDULER_TICK_MS;
}

void
tako_scheduler_actor (zsock_t *pipe, void *args)
{
    scheduler_t *self = scheduler_new (pipe, (tako_actor_args_t *) args);
    zsock_signal (pipe, self? 0: 1);
    if (!self)
        return;
    tako_info (LOG, "%s ready, lease %" PRId64 " ms", tako_peer_instance (self->peer),
               self->lease_ms);
    self->recover_at = scheduler_now ();
    int64_t next_tick = 0;
    while (!self->terminated) {
        void *which = zpoller_wait (self->poller, scheduler_wait_ms (self));
        if (which == pipe)
            scheduler_handle_pipe (self);
        else
        if (which == self->peer_socket) {
            tako_msg_t *msg = tako_peer_handle_input (self->peer);
            if (msg)
                scheduler_handle_message (self, msg);
            tako_msg_destroy (&msg);
        }
        else
        if (!which && zpoller_terminated (self->poller))
            break;
        if (tako_peer_tick (self->peer) == 1) {
            zpoller_remove (self->poller, self->peer_socket);
            self->peer_socket = tako_peer_socket (self->peer);
            zpoller_add (self->poller, self->peer_socket);
        }
        //  Timers at most once a tick: they walk every job and request.
        int64_t now = scheduler_now ();
        if (now >= next_tick) {
            scheduler_recover_tick (self, now);
            scheduler_requests_tick (self, now);
            scheduler_leases_tick (self, now);
            next_tick = now + SCHEDULER_TICK_MS;
        }
        scheduler_dispatch (self);
    }
    tako_info (LOG, "%s stopping", tako_peer_instance (self->peer));
    scheduler_destroy (&self);
}

//  --------------------------------------------------------------------------
//  Self-test

void
tako_scheduler_test (bool verbose)
{
    (void) verbose;
    //  The conversation with a recorder, executors and clients is tested
    //  in tests/unit/test_scheduler.c. Here: the pure pieces.
    tako_config_t *config = tako_config_new ();
    assert (config);
    char reason [128];
    int timeout = 0, startup = 0;
    json_t *input = json_pack ("{s:i}", "n", 2);
    json_t *requirements = json_pack ("[s, s]", "numpy>=1.26", "pandas[excel]==2.0");
    assert (tako_scheduler_validate (config, "print(1)", input, NULL, INT64_MIN, INT64_MIN,
                                     requirements, &timeout, &startup, reason, sizeof reason) == 0);
    assert (timeout == config->default_timeout);
    assert (startup == config->default_startup_timeout);
    assert (tako_scheduler_validate (config, "", input, NULL, 5, INT64_MIN, NULL,
                                     &timeout, &startup, reason, sizeof reason) == -1);
    assert (streq (reason, "code must not be empty"));
    assert (tako_scheduler_validate (config, "x", input, "nope", 5, INT64_MIN, NULL,
                                     &timeout, &startup, reason, sizeof reason) == -1);
    assert (streq (reason, "unknown job type"));
    assert (tako_scheduler_validate (config, "x", input, NULL, 0, INT64_MIN, NULL,
                                     &timeout, &startup, reason, sizeof reason) == -1);
    assert (tako_scheduler_validate (config, "x", input, NULL, config->max_timeout + 1,
                                     INT64_MIN, NULL, &timeout, &startup, reason,
                                     sizeof reason) == -1);
    assert (tako_scheduler_validate (config, "x", input, NULL, 5, 9, NULL,
                                     &timeout, &startup, reason, sizeof reason) == -1);
    assert (streq (reason, "startup_timeout is out of range"));
    json_t *array = json_pack ("[i]", 1);
    assert (tako_scheduler_validate (config, "x", array, NULL, 5, INT64_MIN, NULL,
                                     &timeout, &startup, reason, sizeof reason) == -1);
    json_decref (array);
    json_t *bad = json_pack ("[s]", "--index-url=http://evil");
    assert (tako_scheduler_validate (config, "x", input, NULL, 5, INT64_MIN, bad,
                                     &timeout, &startup, reason, sizeof reason) == -1);
    assert (streq (reason, "invalid requirement specifier"));
    json_decref (bad);
    config->max_code_bytes = 3;
    assert (tako_scheduler_validate (config, "abcd", input, NULL, 5, INT64_MIN, NULL,
                                     &timeout, &startup, reason, sizeof reason) == -1);

    //  Same payload, same fingerprint; any field changed, another one.
    json_t *job = json_pack ("{s:s, s:O, s:s, s:i}", "code", "print(1)", "input_data", input,
                             "job_type", "default", "timeout_s", 5);
    char *first = tako_scheduler_fingerprint (job);
    char *again = tako_scheduler_fingerprint (job);
    json_object_set_new (job, "timeout_s", json_integer (6));
    char *other = tako_scheduler_fingerprint (job);
    assert (first && again && other);
    assert (strlen (first) == 64 && streq (first, again) && !streq (first, other));
    free (first);
    free (again);
    free (other);
    json_decref (job);
    json_decref (input);
    json_decref (requirements);

    //  Backoff: none for the first attempt, then base, 2 base, 4 base...
    assert (tako_scheduler_backoff_ms (1.0, 1) == 0);
    assert (tako_scheduler_backoff_ms (1.0, 2) == 1000);
    assert (tako_scheduler_backoff_ms (1.0, 3) == 2000);
    assert (tako_scheduler_backoff_ms (0.5, 4) == 2000);
    assert (tako_scheduler_backoff_ms (300, 30) == BACKOFF_MAX_MS);
    assert (tako_scheduler_backoff_ms (0, 5) == 0);

    //  Lease: ten beats, never under the minimum.
    assert (tako_scheduler_lease_ms (0) == TAKO_SCHEDULER_LEASE_BEATS * TAKO_PEER_DEFAULT_INTERVAL_MS);
    assert (tako_scheduler_lease_ms (2000) == 2000 * TAKO_SCHEDULER_LEASE_BEATS);
    assert (tako_scheduler_lease_ms (10) == TAKO_SCHEDULER_LEASE_MIN_MS);
    tako_config_destroy (&config);
}
