/*  The scheduler actor with everything real around it: PostgreSQL (a
    schema of its own), the broker, the event hub, the recorder and
    executors running sandboxes. A client peer submits jobs and follows
    them through the recorder's job.get and the hub's events.           */

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "tako_broker.h"
#include "tako_hub.h"
#include "tako_events.h"
#include "tako_pgcluster.h"
#include "tako_peer.h"
#include "actors/recorder/tako_recorder.h"
#include "actors/executor/tako_executor.h"
#include "actors/scheduler/tako_scheduler.h"

#define TEST_TIMEOUT_SECONDS 180
#define BEAT_MS       100
#define WAIT_MS       10000
//  A job under AddressSanitizer on a busy machine: generous.
#define JOB_WAIT_MS   60000
#define POLL_MS       100
#define URL_SIZE      2048
//  Sandbox uid slots of this file's executors: from SLOT_BASE (distinct
//  from other test files), a block per test process so tests running in
//  parallel (tako-unit -j2) never share a slot.
#define SLOT_BASE     600
#define SLOT_BLOCKS   64
#define SLOTS         2
#define EXECUTORS_MAX 2

static char base_url [URL_SIZE];
static char url [URL_SIZE + 128];
static char schema [64];
static PGconn *admin;
static tako_config_t *config;
static zactor_t *broker;
static zactor_t *hub;
static char *endpoint;
static char *publish_endpoint;
static char *subscribe_endpoint;
static zactor_t *recorder;
static zactor_t *scheduler;
static zactor_t *executors [EXECUTORS_MAX];
static tako_executor_args_t executor_args [EXECUTORS_MAX];
static tako_peer_t *client;
static tako_actor_args_t actor_args;
static int request_count;

//  ---------------------------------------------------------------------
//  Fixture

static void
base_url_find (void)
{
    const char *test_url = getenv ("TAKO_TEST_DATABASE_URL");
    if (test_url && *test_url) {
        snprintf (base_url, sizeof base_url, "%s", test_url);
        return;
    }
    char exe [1024], data_dir [1100];
    ssize_t length = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert (length > 0);
    exe [length] = 0;
    snprintf (data_dir, sizeof data_dir, "%s/unit-pg", dirname (exe));
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    snprintf (base_url, sizeof base_url, "%s", tako_pgcluster_url (cluster));
    tako_pgcluster_destroy (&cluster);
}

static void
admin_exec (const char *sql)
{
    PGresult *result = PQexec (admin, sql);
    cr_assert (PQresultStatus (result) == PGRES_COMMAND_OK, "%s: %s", sql,
               PQerrorMessage (admin));
    PQclear (result);
}

static tako_msg_t *query (const char *service, const char *name, json_t *params);

//  Until the broker routes to a service, a QUERY gets the broker's ERROR.
static void
wait_registered (const char *service)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        tako_msg_t *reply = query (service, "ping", NULL);
        bool answered = reply && streq (tako_msg_command (reply), "REPLY");
        tako_msg_destroy (&reply);
        if (answered)
            return;
        zclock_sleep (POLL_MS);         //  pacing between polls
    }
    cr_assert_fail ("%s did not register within %d ms", service, WAIT_MS);
}

static void
scheduler_start (void)
{
    scheduler = zactor_new (tako_scheduler_actor, &actor_args);
    cr_assert_not_null (scheduler);
    wait_registered ("scheduler");
}

static void
executor_start (int index)
{
    executor_args [index] = (tako_executor_args_t) {
        .config = config, .endpoint = endpoint, .heartbeat = actor_args.heartbeat,
        .slots = SLOTS,
        .slot_base = SLOT_BASE + ((int) getpid () % SLOT_BLOCKS) * EXECUTORS_MAX * SLOTS
                   + index * SLOTS
    };
    executors [index] = zactor_new (tako_executor_actor, &executor_args [index]);
    cr_assert_not_null (executors [index]);
}

static void
setup (void)
{
    base_url_find ();
    admin = PQconnectdb (base_url);
    cr_assert (PQstatus (admin) == CONNECTION_OK, "%s", PQerrorMessage (admin));
    admin_exec ("SET client_min_messages = warning");
    snprintf (schema, sizeof schema, "sched_%d_%ld", (int) getpid (), (long) time (NULL));
    char sql [256];
    snprintf (sql, sizeof sql, "CREATE SCHEMA %s", schema);
    admin_exec (sql);
    if (strstr (base_url, "://"))
        snprintf (url, sizeof url, "%s%soptions=-csearch_path%%3D%s", base_url,
                  strchr (base_url, '?')? "&": "?", schema);
    else
        snprintf (url, sizeof url, "%s options='-csearch_path=%s'", base_url, schema);

    config = tako_config_new ();
    cr_assert_not_null (config);
    config->retry_base_delay = 0.1;
    config->max_retry_attempts = 1;
    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", BEAT_MS, 3, NULL };
    broker = zactor_new (tako_broker_actor, &broker_args);
    endpoint = tako_broker_endpoint (broker);
    cr_assert_not_null (endpoint);
    tako_hub_args_t hub_args = { "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", NULL, NULL };
    hub = zactor_new (tako_hub_actor, &hub_args);
    cr_assert_eq (tako_hub_endpoints (hub, &publish_endpoint, &subscribe_endpoint), 0);
    tako_heartbeat_t beat = { BEAT_MS, 3 };
    actor_args = (tako_actor_args_t) {
        .config = config, .broker_endpoint = endpoint, .events_endpoint = publish_endpoint,
        .database_url = url, .heartbeat = beat
    };
    recorder = zactor_new (tako_recorder_actor, &actor_args);
    client = tako_peer_new_client (endpoint, "test", &beat);
    cr_assert (recorder && client);
    wait_registered ("recorder");
}

static void
teardown (void)
{
    for (int i = 0; i < EXECUTORS_MAX; i++)
        zactor_destroy (&executors [i]);
    zactor_destroy (&scheduler);
    tako_peer_destroy (&client);
    zactor_destroy (&recorder);
    zactor_destroy (&hub);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    zstr_free (&publish_endpoint);
    zstr_free (&subscribe_endpoint);
    tako_config_destroy (&config);
    if (admin && PQstatus (admin) == CONNECTION_OK && *schema) {
        char sql [256];
        snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
        PQclear (PQexec (admin, sql));
    }
    PQfinish (admin);
    admin = NULL;
}

TestSuite (scheduler, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_SECONDS);

//  ---------------------------------------------------------------------
//  Helpers

static void
next_request_id (char *request_id, size_t size)
{
    snprintf (request_id, size, "t-%d", ++request_count);
}

//  The answer (ACCEPTED, REPLY or ERROR) carrying request_id; NULL on timeout.
static tako_msg_t *
answer_wait (const char *request_id, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        tako_msg_t *answer = tako_peer_recv (client, (int) (deadline - zclock_mono ()));
        if (!answer)
            break;
        const char *reply_to = tako_msg_str (answer, "request_id");
        if (reply_to && streq (reply_to, request_id))
            return answer;
        tako_msg_destroy (&answer);
    }
    return NULL;
}

//  Send msg to service with a fresh request_id and wait for its answer.
static tako_msg_t *
request (const char *service, tako_msg_t *msg)
{
    char request_id [32];
    next_request_id (request_id, sizeof request_id);
    tako_msg_set_address (msg, service);
    tako_msg_set_str (msg, "request_id", request_id);
    cr_assert_eq (tako_peer_send (client, &msg), 0);
    return answer_wait (request_id, WAIT_MS);
}

//  Takes params.
static tako_msg_t *
query (const char *service, const char *name, json_t *params)
{
    tako_msg_t *msg = tako_msg_new ("QUERY");
    tako_msg_set_str (msg, "query", name);
    if (params)
        tako_msg_set_object (msg, "params", params);
    json_decref (params);
    return request (service, msg);
}

//  A REPLY with this code; a new reference to its result (or NULL).
static json_t *
expect_reply (tako_msg_t *reply, int code)
{
    cr_assert_not_null (reply, "no answer within %d ms", WAIT_MS);
    cr_assert_str_eq (tako_msg_command (reply), "REPLY", "%s %d %s", tako_msg_command (reply),
                      (int) tako_msg_int (reply, "code", 0),
                      tako_msg_str (reply, "reason")? tako_msg_str (reply, "reason"): "");
    cr_assert_eq (tako_msg_int (reply, "code", 0), code, "code %d (%s), expected %d",
                  (int) tako_msg_int (reply, "code", 0),
                  tako_msg_str (reply, "reason")? tako_msg_str (reply, "reason"): "", code);
    json_t *result = json_incref (tako_msg_object (reply, "result"));
    tako_msg_destroy (&reply);
    return result;
}

static tako_msg_t *
submit_msg (const char *code, const char *idempotency_key)
{
    tako_msg_t *msg = tako_msg_new ("SUBMIT");
    tako_msg_set_str (msg, "code", code);
    json_t *input = json_pack ("{s:i}", "n", 2);
    tako_msg_set_object (msg, "input_data", input);
    json_decref (input);
    tako_msg_set_int (msg, "timeout", 30);
    if (idempotency_key)
        tako_msg_set_str (msg, "idempotency_key", idempotency_key);
    return msg;
}

//  SUBMIT that must be ACCEPTED; the job id (caller frees).
static char *
submit (const char *code)
{
    tako_msg_t *answer = request ("scheduler", submit_msg (code, NULL));
    cr_assert_not_null (answer, "no answer to SUBMIT");
    cr_assert_str_eq (tako_msg_command (answer), "ACCEPTED", "%s %s", tako_msg_command (answer),
                      tako_msg_str (answer, "reason")? tako_msg_str (answer, "reason"): "");
    cr_assert_str_eq (tako_msg_str (answer, "status"), "queued");
    char *job_id = strdup (tako_msg_str (answer, "job_id"));
    tako_msg_destroy (&answer);
    return job_id;
}

//  SUBMIT that must fail with ERROR code.
static void
submit_refused (tako_msg_t *msg, int code)
{
    tako_msg_t *answer = request ("scheduler", msg);
    cr_assert_not_null (answer);
    cr_assert_str_eq (tako_msg_command (answer), "ERROR");
    cr_assert_eq (tako_msg_int (answer, "code", 0), code, "code %d (%s)",
                  (int) tako_msg_int (answer, "code", 0), tako_msg_str (answer, "reason"));
    tako_msg_destroy (&answer);
}

static json_t *
job_get (const char *job_id, bool full)
{
    json_t *params = json_pack ("{s:s}", "job_id", job_id);
    if (full)
        json_object_set_new (params, "view", json_string ("full"));
    return expect_reply (query ("recorder", "job.get", params), 200);
}

//  Poll the record until it has this status; the record.
static json_t *
wait_status (const char *job_id, const char *status, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    char last [32] = "";
    while (zclock_mono () < deadline) {
        json_t *job = job_get (job_id, true);
        const char *now = json_string_value (json_object_get (job, "status"));
        snprintf (last, sizeof last, "%s", now? now: "?");
        if (now && streq (now, status))
            return job;
        json_decref (job);
        zclock_sleep (POLL_MS);         //  pacing between polls
    }
    cr_assert_fail ("job %s is %s, not %s, after %d ms", job_id, last, status, timeout_ms);
    return NULL;
}

static json_t *
cancel (const char *job_id, int code)
{
    tako_msg_t *msg = tako_msg_new ("CANCEL");
    tako_msg_set_str (msg, "job_id", job_id);
    return expect_reply (request ("scheduler", msg), code);
}

static tako_events_t *
watcher_new (void)
{
    tako_events_t *watcher = tako_events_new_subscriber (subscribe_endpoint);
    cr_assert_not_null (watcher);
    cr_assert_eq (tako_events_follow_all (watcher), 0);
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (!tako_events_welcomed (watcher) && zclock_mono () < deadline) {
        tako_msg_t *event = tako_events_recv (watcher, POLL_MS);
        tako_msg_destroy (&event);
    }
    cr_assert (tako_events_welcomed (watcher));
    return watcher;
}

//  The next event of job_id; NULL on timeout.
static tako_msg_t *
event_next (tako_events_t *watcher, const char *job_id, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        //  Short waits: the client peer must keep beating meanwhile, or
        //  the broker forgets it.
        tako_peer_tick (client);
        tako_msg_t *event = tako_events_recv (watcher, BEAT_MS / 2);
        if (event && streq (tako_msg_str (event, "job_id"), job_id))
            return event;
        tako_msg_destroy (&event);
    }
    return NULL;
}

static void
expect_event (tako_events_t *watcher, const char *job_id, int64_t seq, const char *kind,
              int64_t attempt)
{
    tako_msg_t *event = event_next (watcher, job_id, JOB_WAIT_MS);
    cr_assert_not_null (event, "no event %s", kind);
    cr_assert_str_eq (tako_msg_str (event, "kind"), kind);
    cr_assert_eq (tako_msg_int (event, "seq", 0), seq, "%s: seq %d, expected %d", kind,
                  (int) tako_msg_int (event, "seq", 0), (int) seq);
    cr_assert_eq (tako_msg_int (event, "attempt", 0), attempt, "%s: attempt %d", kind,
                  (int) tako_msg_int (event, "attempt", 0));
    tako_msg_destroy (&event);
}

static int
scheduler_stat (int which)
{
    zstr_send (scheduler, "STATS");
    int values [4] = { 0 };
    cr_assert_eq (zsock_recv (scheduler, "iiii", &values [0], &values [1], &values [2],
                              &values [3]), 0);
    return values [which];
}

//  ---------------------------------------------------------------------
//  Tests

Test (scheduler, submit_runs_and_is_recorded)
{
    scheduler_start ();
    executor_start (0);
    tako_events_t *watcher = watcher_new ();
    char *job_id = submit ("import json\nprint('hello', json.load(open('/input/data.json'))['n'])");
    //  ACCEPTED only after the commit: the record is there at once.
    json_t *record = job_get (job_id, false);
    json_decref (record);
    record = wait_status (job_id, "succeeded", JOB_WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "hello 2\n");
    cr_assert_eq (json_integer_value (json_object_get (record, "exit_code")), 0);
    cr_assert_eq (json_string_length (json_object_get (record, "code_hash")), 64);
    json_decref (record);
    //  Every transition, in order, without a gap.
    expect_event (watcher, job_id, 1, "queued", 1);
    expect_event (watcher, job_id, 2, "started", 1);
    expect_event (watcher, job_id, 3, "finished", 1);
    tako_events_destroy (&watcher);

    json_t *stats = expect_reply (query ("scheduler", "pool.stats", NULL), 200);
    cr_assert_eq (json_integer_value (json_object_get (stats, "max_workers")), SLOTS);
    cr_assert_eq (json_integer_value (json_object_get (stats, "pending")), 0);
    json_decref (stats);
    json_t *health = expect_reply (query ("scheduler", "health", NULL), 200);
    cr_assert_str_eq (json_string_value (json_object_get (json_object_get (health,
                      "circuit_breaker"), "state")), "closed");
    cr_assert_eq (json_integer_value (json_object_get (health, "executors")), 1);
    json_decref (health);
    free (job_id);
}

Test (scheduler, idempotency_key)
{
    scheduler_start ();
    tako_msg_t *answer = request ("scheduler", submit_msg ("print(1)", "key-1"));
    cr_assert_str_eq (tako_msg_command (answer), "ACCEPTED");
    cr_assert_not (tako_msg_bool (answer, "existing", true));
    char *job_id = strdup (tako_msg_str (answer, "job_id"));
    tako_msg_destroy (&answer);

    answer = request ("scheduler", submit_msg ("print(1)", "key-1"));
    cr_assert_str_eq (tako_msg_command (answer), "ACCEPTED");
    cr_assert_str_eq (tako_msg_str (answer, "job_id"), job_id);
    cr_assert (tako_msg_bool (answer, "existing", false));
    tako_msg_destroy (&answer);

    answer = request ("scheduler", submit_msg ("print(2)", "key-1"));
    cr_assert_str_eq (tako_msg_command (answer), "ERROR");
    cr_assert_eq (tako_msg_int (answer, "code", 0), 409);
    cr_assert_str_eq (tako_msg_str (answer, "job_id"), job_id);
    tako_msg_destroy (&answer);
    free (job_id);
}

//  The recorder committed a submission but its answer was lost (a broker
//  restart in between): the client's retry with the same key finds the
//  job "existing" and queued, and this scheduler, which never queued it,
//  must run it now rather than leave it queued forever.
Test (scheduler, a_committed_job_whose_answer_was_lost_still_runs)
{
    scheduler_start ();
    executor_start (0);
    json_t *job = json_pack ("{s:s, s:{s:i}, s:s, s:i, s:i, s:s, s:i, s:i}",
        "code", "print('lost answer')", "input_data", "n", 2, "job_type", "default",
        "timeout_s", 30, "startup_timeout_s", config->default_startup_timeout,
        "idempotency_key", "lost-1", "priority", 0, "max_attempts", 2);
    char *fingerprint = tako_scheduler_fingerprint (job);
    json_object_set_new (job, "payload_fingerprint", json_string (fingerprint));
    free (fingerprint);
    json_t *inserted = expect_reply (query ("recorder", "job.insert", job), 200);
    char *job_id = strdup (json_string_value (json_object_get (inserted, "job_id")));
    json_decref (inserted);

    tako_msg_t *answer = request ("scheduler", submit_msg ("print('lost answer')", "lost-1"));
    cr_assert_str_eq (tako_msg_command (answer), "ACCEPTED");
    cr_assert_str_eq (tako_msg_str (answer, "job_id"), job_id);
    cr_assert (tako_msg_bool (answer, "existing", false));
    tako_msg_destroy (&answer);
    json_t *record = wait_status (job_id, "succeeded", JOB_WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "lost answer\n");
    json_decref (record);
    free (job_id);
}

Test (scheduler, invalid_submissions_are_422)
{
    scheduler_start ();
    submit_refused (submit_msg ("", NULL), 422);
    tako_msg_t *msg = submit_msg ("print(1)", NULL);
    tako_msg_set_int (msg, "timeout", 0);
    submit_refused (msg, 422);
    msg = submit_msg ("print(1)", NULL);
    tako_msg_set_int (msg, "startup_timeout", 5);
    submit_refused (msg, 422);
    msg = submit_msg ("print(1)", NULL);
    tako_msg_set_str (msg, "job_type", "no-such-type");
    submit_refused (msg, 422);
    msg = submit_msg ("print(1)", NULL);
    const char *requirements [] = { "-e git+https://example.com/x" };
    tako_msg_set_strlist (msg, "requirements", requirements, 1);
    submit_refused (msg, 422);
    msg = submit_msg ("print(1)", NULL);
    json_t *array = json_pack ("[i]", 1);
    tako_msg_set_object (msg, "input_data", array);
    json_decref (array);
    submit_refused (msg, 422);
    //  Nothing was recorded.
    json_t *counts = expect_reply (query ("recorder", "job.counts", NULL), 200);
    cr_assert_eq (json_integer_value (json_object_get (counts, "queued")), 0);
    json_decref (counts);
}

Test (scheduler, queue_full_is_503)
{
    config->max_queue_size = 2;
    scheduler_start ();             //  no executor: jobs stay queued
    char *first = submit ("print(1)");
    char *second = submit ("print(2)");
    submit_refused (submit_msg ("print(3)", NULL), 503);
    json_t *position = expect_reply (query ("scheduler", "job.position",
                                            json_pack ("{s:s}", "job_id", second)), 200);
    cr_assert_eq (json_integer_value (json_object_get (position, "queue_position")), 1);
    json_decref (position);
    free (first);
    free (second);
}

Test (scheduler, cancel_queued_and_finished)
{
    scheduler_start ();
    char *job_id = submit ("print(1)");
    json_t *result = cancel (job_id, 200);
    cr_assert_str_eq (json_string_value (json_object_get (result, "status")), "cancelled");
    json_decref (result);
    json_decref (wait_status (job_id, "cancelled", WAIT_MS));
    json_decref (cancel (job_id, 409));
    json_decref (cancel ("no-such-job", 404));
    //  Cancelled means it never runs.
    executor_start (0);
    char *later = submit ("print('later')");
    json_decref (wait_status (later, "succeeded", JOB_WAIT_MS));
    json_t *record = job_get (job_id, false);
    cr_assert_str_eq (json_string_value (json_object_get (record, "status")), "cancelled");
    json_decref (record);
    free (job_id);
    free (later);
}

Test (scheduler, cancel_running)
{
    scheduler_start ();
    executor_start (0);
    char *job_id = submit ("import time\nprint('started', flush=True)\ntime.sleep(60)");
    json_decref (wait_status (job_id, "running", JOB_WAIT_MS));
    json_decref (cancel (job_id, 200));
    json_decref (wait_status (job_id, "cancelled", WAIT_MS));
    //  The executor stopped it and its RESULT was acknowledged.
    int64_t deadline = zclock_mono () + WAIT_MS;
    int running = -1, unacked = -1, free_slots = -1;
    while (zclock_mono () < deadline) {
        zstr_send (executors [0], "STATS");
        zsock_recv (executors [0], "iii", &running, &free_slots, &unacked);
        if (running == 0 && unacked == 0)
            break;
        zclock_sleep (POLL_MS);         //  pacing between polls
    }
    cr_assert (running == 0 && unacked == 0, "executor: %d running, %d unacknowledged",
               running, unacked);
    cr_assert_eq (scheduler_stat (1), 0);
    json_decref (cancel (job_id, 409));
    free (job_id);
}

Test (scheduler, rerun_and_fork_lineage)
{
    scheduler_start ();
    executor_start (0);
    char *job_id = submit ("print('original')");
    json_decref (wait_status (job_id, "succeeded", JOB_WAIT_MS));

    json_t *rerun = expect_reply (query ("scheduler", "job.rerun",
                                         json_pack ("{s:s}", "job_id", job_id)), 200);
    cr_assert_str_eq (json_string_value (json_object_get (rerun, "status")), "queued");
    const char *rerun_id = json_string_value (json_object_get (rerun, "job_id"));
    cr_assert (rerun_id && !streq (rerun_id, job_id));
    json_t *record = wait_status (rerun_id, "succeeded", JOB_WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "original\n");
    cr_assert_str_eq (json_string_value (json_object_get (record, "parent_execution_id")), job_id);
    cr_assert_str_eq (json_string_value (json_object_get (record, "relationship")), "rerun");
    json_decref (record);

    json_t *fork = expect_reply (query ("scheduler", "job.fork",
                                        json_pack ("{s:s, s:s}", "job_id", job_id,
                                                   "code", "print('forked')")), 200);
    const char *fork_id = json_string_value (json_object_get (fork, "job_id"));
    record = wait_status (fork_id, "succeeded", JOB_WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "forked\n");
    cr_assert_str_eq (json_string_value (json_object_get (record, "parent_execution_id")), job_id);
    cr_assert_str_eq (json_string_value (json_object_get (record, "relationship")), "fork");
    json_decref (record);

    json_decref (expect_reply (query ("scheduler", "job.rerun",
                                      json_pack ("{s:s}", "job_id", "no-such-job")), 404));
    json_decref (expect_reply (query ("scheduler", "job.fork",
                                      json_pack ("{s:s, s:s}", "job_id", job_id, "code", "")), 422));
    json_decref (rerun);
    json_decref (fork);
    free (job_id);
}

Test (scheduler, rerun_of_unfinished_job_is_409)
{
    scheduler_start ();
    char *job_id = submit ("print(1)");
    json_decref (expect_reply (query ("scheduler", "job.rerun",
                                      json_pack ("{s:s}", "job_id", job_id)), 409));
    free (job_id);
}

Test (scheduler, lost_executor_is_retried_elsewhere)
{
    scheduler_start ();
    executor_start (0);
    tako_events_t *watcher = watcher_new ();
    char *job_id = submit ("import time\ntime.sleep(2)\nprint('survived')");
    expect_event (watcher, job_id, 1, "queued", 1);
    expect_event (watcher, job_id, 2, "started", 1);
    //  The executor disappears mid-job; its lease expires.
    zactor_destroy (&executors [0]);
    executor_start (1);
    expect_event (watcher, job_id, 3, "retrying", 2);
    expect_event (watcher, job_id, 4, "started", 2);
    expect_event (watcher, job_id, 5, "finished", 2);
    json_t *record = wait_status (job_id, "succeeded", JOB_WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "survived\n");
    json_decref (record);
    tako_events_destroy (&watcher);
    free (job_id);
}

Test (scheduler, exhausted_retries_go_to_the_dlq)
{
    config->max_retry_attempts = 0;
    scheduler_start ();
    executor_start (0);
    tako_events_t *watcher = watcher_new ();
    char *job_id = submit ("import time\ntime.sleep(60)");
    expect_event (watcher, job_id, 1, "queued", 1);
    expect_event (watcher, job_id, 2, "started", 1);
    zactor_destroy (&executors [0]);
    expect_event (watcher, job_id, 3, "dead_lettered", 1);
    json_t *record = wait_status (job_id, "failed", WAIT_MS);
    json_t *error = json_object_get (record, "error");
    cr_assert_str_eq (json_string_value (json_object_get (error, "type")), "service_unavailable");
    json_decref (record);
    //  The dead letter is recorded right after the failure.
    int64_t deadline = zclock_mono () + WAIT_MS;
    json_t *page = NULL;
    while (zclock_mono () < deadline) {
        page = expect_reply (query ("recorder", "dlq.list",
                                    json_pack ("{s:s}", "error_type", "executor_lost")), 200);
        if (json_array_size (json_object_get (page, "items")) > 0)
            break;
        json_decref (page);
        page = NULL;
        zclock_sleep (POLL_MS);         //  pacing between polls
    }
    cr_assert_not_null (page, "no dead letter");
    json_t *entry = json_array_get (json_object_get (page, "items"), 0);
    cr_assert_str_eq (json_string_value (json_object_get (entry, "job_id")), job_id);
    json_decref (page);
    tako_events_destroy (&watcher);
    free (job_id);
}

Test (scheduler, user_code_failure_is_not_retried)
{
    scheduler_start ();
    executor_start (0);
    tako_events_t *watcher = watcher_new ();
    char *job_id = submit ("raise ValueError('bad input')");
    expect_event (watcher, job_id, 1, "queued", 1);
    expect_event (watcher, job_id, 2, "started", 1);
    expect_event (watcher, job_id, 3, "finished", 1);
    json_t *record = wait_status (job_id, "failed", WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (json_object_get (record, "error"),
                                                          "type")), "value_error");
    json_decref (record);
    tako_events_destroy (&watcher);
    free (job_id);
}

Test (scheduler, restart_loses_no_queued_job)
{
    scheduler_start ();             //  no executor yet: both stay queued
    char *first = submit ("print('first')");
    char *second = submit ("print('second')");
    zactor_destroy (&scheduler);
    scheduler_start ();
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (scheduler_stat (3) == 0 && zclock_mono () < deadline)
        zclock_sleep (POLL_MS);         //  pacing between polls
    cr_assert_eq (scheduler_stat (0), 2, "both jobs queued again");
    executor_start (0);
    json_t *record = wait_status (first, "succeeded", JOB_WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "first\n");
    json_decref (record);
    record = wait_status (second, "succeeded", JOB_WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "second\n");
    json_decref (record);
    free (first);
    free (second);
}

Test (scheduler, restart_adopts_running_job)
{
    scheduler_start ();
    executor_start (0);
    tako_events_t *watcher = watcher_new ();
    char *job_id = submit ("import time\ntime.sleep(2)\nprint('adopted')");
    expect_event (watcher, job_id, 1, "queued", 1);
    expect_event (watcher, job_id, 2, "started", 1);
    zactor_destroy (&scheduler);
    scheduler_start ();
    //  The new scheduler takes the running attempt over: its RESULT is
    //  recorded, nothing is retried, and the events continue at seq 3.
    expect_event (watcher, job_id, 3, "finished", 1);
    json_t *record = wait_status (job_id, "succeeded", WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (record, "stdout")), "adopted\n");
    json_decref (record);
    tako_events_destroy (&watcher);
    free (job_id);
}

//  A stand-in executor: what the real one says, under the test's control.
static tako_msg_t *
fake_expect (tako_peer_t *fake, const char *command)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        tako_msg_t *msg = tako_peer_recv (fake, (int) (deadline - zclock_mono ()));
        if (msg && streq (tako_msg_command (msg), command))
            return msg;
        tako_msg_destroy (&msg);
    }
    cr_assert_fail ("fake executor: no %s", command);
    return NULL;
}

static void
fake_send (tako_peer_t *fake, tako_msg_t *msg, const char *to)
{
    tako_msg_set_address (msg, to);
    cr_assert_eq (tako_peer_send (fake, &msg), 0);
}

//  READY, take the DISPATCH, ACCEPT it, report a sandbox failure, expect
//  the RESULT_ACK. Returns the attempt.
static int64_t
fake_run_failing (tako_peer_t *fake, const char *job_id)
{
    tako_msg_t *ready = tako_msg_new ("READY");
    tako_msg_set_str (ready, "instance", tako_peer_instance (fake));
    tako_msg_set_int (ready, "slots", 1);
    fake_send (fake, ready, "scheduler");
    tako_msg_t *dispatch = fake_expect (fake, "DISPATCH");
    cr_assert_str_eq (tako_msg_str (dispatch, "job_id"), job_id);
    int64_t attempt = tako_msg_int (dispatch, "attempt", 0);
    tako_msg_t *accept = tako_msg_new ("ACCEPT");
    tako_msg_set_str (accept, "job_id", job_id);
    tako_msg_set_int (accept, "attempt", attempt);
    tako_msg_set_str (accept, "lease_id", tako_msg_str (dispatch, "lease_id"));
    fake_send (fake, accept, tako_msg_address (dispatch));
    tako_msg_t *result = tako_msg_new ("RESULT");
    tako_msg_set_str (result, "job_id", job_id);
    tako_msg_set_int (result, "attempt", attempt);
    tako_msg_set_str (result, "lease_id", tako_msg_str (dispatch, "lease_id"));
    tako_msg_set_str (result, "status", "failed");
    tako_msg_set_bool (result, "retryable", true);
    json_t *error = json_pack ("{s:s, s:s, s:s}", "type", "internal_error",
                               "message", "sandbox could not be started (mounts)",
                               "phase", "startup");
    tako_msg_set_object (result, "error", error);
    json_decref (error);
    fake_send (fake, result, "scheduler");
    tako_msg_t *ack = fake_expect (fake, "RESULT_ACK");
    cr_assert_eq (tako_msg_int (ack, "attempt", 0), attempt);
    tako_msg_destroy (&ack);
    tako_msg_destroy (&dispatch);
    return attempt;
}

Test (scheduler, sandbox_failures_retry_then_dead_letter)
{
    scheduler_start ();
    tako_heartbeat_t beat = { BEAT_MS, 3 };
    tako_peer_t *fake = tako_peer_new (endpoint, "executor", &beat);
    cr_assert_not_null (fake);
    tako_events_t *watcher = watcher_new ();
    char *job_id = submit ("print(1)");
    cr_assert_eq (fake_run_failing (fake, job_id), 1);
    cr_assert_eq (fake_run_failing (fake, job_id), 2);
    expect_event (watcher, job_id, 1, "queued", 1);
    expect_event (watcher, job_id, 2, "started", 1);
    expect_event (watcher, job_id, 3, "retrying", 2);
    expect_event (watcher, job_id, 4, "started", 2);
    expect_event (watcher, job_id, 5, "dead_lettered", 2);
    json_t *record = wait_status (job_id, "failed", WAIT_MS);
    cr_assert_str_eq (json_string_value (json_object_get (json_object_get (record, "error"),
                                                          "type")), "internal_error");
    json_decref (record);
    json_t *stats = expect_reply (query ("recorder", "dlq.stats", NULL), 200);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (stats, "by_error_type"),
                                                       "sandbox_error")), 1);
    json_decref (stats);
    json_t *health = expect_reply (query ("scheduler", "health", NULL), 200);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (health,
                  "circuit_breaker"), "failure_count")), 2);
    json_decref (health);
    tako_events_destroy (&watcher);
    tako_peer_destroy (&fake);
    free (job_id);
}
