/*  The DLQ actor with a real recorder (PostgreSQL, a schema of its own),
    a real broker, a client peer, and a test peer registered as
    "scheduler" that answers SUBMIT the way the scheduler does.          */

#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "tako_broker.h"
#include "tako_pgcluster.h"
#include "tako_peer.h"
#include "actors/recorder/tako_recorder.h"
#include "actors/dlq/tako_dlq.h"

#define TEST_TIMEOUT_SECONDS 120
#define BEAT_MS   100
#define WAIT_MS   5000
#define URL_SIZE  2048

static char base_url [URL_SIZE];
static char url [URL_SIZE + 128];
static char schema [64];
static PGconn *admin;
static tako_config_t *config;
static zactor_t *broker;
static char *endpoint;
static zactor_t *recorder;
static zactor_t *dlq;
static tako_peer_t *client;
static tako_peer_t *scheduler;
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

static tako_msg_t *request (const char *service, const char *query, const char *params_text,
                            int timeout_ms);

//  Until the broker routes to both actors, a QUERY gets the broker's ERROR.
static void
wait_registered (const char *service)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        tako_msg_t *reply = request (service, "ping", NULL, WAIT_MS);
        bool answered = reply && streq (tako_msg_command (reply), "REPLY");
        tako_msg_destroy (&reply);
        if (answered)
            return;
        zclock_sleep (BEAT_MS);         //  pacing between polls
    }
    cr_assert_fail ("%s did not register within %d ms", service, WAIT_MS);
}

static void
setup (void)
{
    base_url_find ();
    admin = PQconnectdb (base_url);
    cr_assert (PQstatus (admin) == CONNECTION_OK, "%s", PQerrorMessage (admin));
    admin_exec ("SET client_min_messages = warning");
    snprintf (schema, sizeof schema, "dlq_%d_%ld", (int) getpid (), (long) time (NULL));
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
    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", BEAT_MS, 3, NULL };
    broker = zactor_new (tako_broker_actor, &broker_args);
    endpoint = tako_broker_endpoint (broker);
    cr_assert_not_null (endpoint);
    tako_heartbeat_t beat = { BEAT_MS, 3 };
    actor_args = (tako_actor_args_t) {
        .config = config, .broker_endpoint = endpoint, .database_url = url, .heartbeat = beat
    };
    recorder = zactor_new (tako_recorder_actor, &actor_args);
    dlq = zactor_new (tako_dlq_actor, &actor_args);
    client = tako_peer_new_client (endpoint, "test", &beat);
    scheduler = tako_peer_new (endpoint, "scheduler", &beat);
    cr_assert (recorder && dlq && client && scheduler);
    wait_registered ("recorder");
    wait_registered ("dlq");
}

static void
teardown (void)
{
    tako_peer_destroy (&scheduler);
    tako_peer_destroy (&client);
    zactor_destroy (&dlq);
    zactor_destroy (&recorder);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    tako_config_destroy (&config);
    if (admin && PQstatus (admin) == CONNECTION_OK && *schema) {
        char sql [256];
        snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
        PQclear (PQexec (admin, sql));
    }
    PQfinish (admin);
    admin = NULL;
}

TestSuite (dlq, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_SECONDS);

//  ---------------------------------------------------------------------
//  Helpers

static void
query_send (const char *service, const char *query, const char *params_text, char *request_id,
            size_t size)
{
    snprintf (request_id, size, "r-%d", ++request_count);
    tako_msg_t *msg = tako_msg_new ("QUERY");
    tako_msg_set_address (msg, service);
    tako_msg_set_str (msg, "request_id", request_id);
    tako_msg_set_str (msg, "query", query);
    if (params_text) {
        json_t *params = json_loads (params_text, 0, NULL);
        cr_assert_not_null (params, "bad test JSON %s", params_text);
        tako_msg_set_object (msg, "params", params);
        json_decref (params);
    }
    cr_assert_eq (tako_peer_send (client, &msg), 0);
}

//  The client's REPLY (or the broker's ERROR) to request_id; NULL on timeout.
static tako_msg_t *
answer_wait (const char *request_id, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        tako_msg_t *reply = tako_peer_recv (client, (int) (deadline - zclock_mono ()));
        if (!reply)
            break;
        const char *reply_to = tako_msg_str (reply, "request_id");
        if ((streq (tako_msg_command (reply), "REPLY") || streq (tako_msg_command (reply), "ERROR"))
        &&  reply_to && streq (reply_to, request_id))
            return reply;
        tako_msg_destroy (&reply);
    }
    return NULL;
}

static tako_msg_t *
request (const char *service, const char *query, const char *params_text, int timeout_ms)
{
    char request_id [32];
    query_send (service, query, params_text, request_id, sizeof request_id);
    return answer_wait (request_id, timeout_ms);
}

//  A REPLY with this code; a copy of its result (or NULL).
static json_t *
expect_code (tako_msg_t *reply, int code)
{
    cr_assert_not_null (reply, "no answer within %d ms", WAIT_MS);
    cr_assert_str_eq (tako_msg_command (reply), "REPLY");
    cr_assert_eq (tako_msg_int (reply, "code", 0), code, "code %d (%s), expected %d",
                  (int) tako_msg_int (reply, "code", 0),
                  tako_msg_str (reply, "reason")? tako_msg_str (reply, "reason"): "", code);
    json_t *result = tako_msg_object (reply, "result");
    json_t *copy = result? json_deep_copy (result): NULL;
    tako_msg_destroy (&reply);
    return copy;
}

static json_t *
dlq_query (const char *query, const char *params_text, int code)
{
    return expect_code (request ("dlq", query, params_text, WAIT_MS), code);
}

//  A dead letter, written through the recorder; its id (caller frees).
static char *
entry_insert (const char *job_id, const char *error_type, const char *code)
{
    char params [512];
    snprintf (params, sizeof params, "{\"entry\": {\"job_id\": \"%s\", \"error_type\": \"%s\","
              " \"error_message\": \"gone\", \"retry_count\": 2, \"correlation_id\": \"c-9\","
              " \"job_data\": {\"code\": \"%s\", \"input_data\": {\"n\": 3},"
              " \"job_type\": \"default\", \"timeout\": 7}}}", job_id, error_type, code);
    json_t *result = expect_code (request ("recorder", "dlq.insert", params, WAIT_MS), 200);
    char *entry_id = strdup (json_string_value (json_object_get (result, "entry_id")));
    json_decref (result);
    return entry_id;
}

static int64_t
entry_count (const char *params_text)
{
    json_t *page = dlq_query ("dlq.list", params_text, 200);
    int64_t count = json_integer_value (json_object_get (page, "count"));
    json_decref (page);
    return count;
}

//  The next SUBMIT the test scheduler receives.
static tako_msg_t *
submit_receive (void)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        tako_msg_t *msg = tako_peer_recv (scheduler, (int) (deadline - zclock_mono ()));
        if (!msg)
            break;
        if (streq (tako_msg_command (msg), "SUBMIT"))
            return msg;
        tako_msg_destroy (&msg);
    }
    cr_assert_fail ("no SUBMIT within %d ms", WAIT_MS);
    return NULL;
}

static void
scheduler_answer (tako_msg_t *submit, const char *command, int code)
{
    tako_msg_t *msg = tako_msg_new (command);
    tako_msg_set_address (msg, tako_msg_address (submit));
    tako_msg_set_str (msg, "request_id", tako_msg_str (submit, "request_id"));
    if (streq (command, "ACCEPTED")) {
        tako_msg_set_str (msg, "job_id", "job-requeued");
        tako_msg_set_str (msg, "status", "queued");
    }
    else {
        tako_msg_set_int (msg, "code", code);
        tako_msg_set_str (msg, "reason", "queue full");
    }
    cr_assert_eq (tako_peer_send (scheduler, &msg), 0);
}

//  ---------------------------------------------------------------------
//  Tests

Test (dlq, list_stats_and_remove)
{
    char *lost = entry_insert ("j-1", "executor_lost", "print(1)");
    char *timeout = entry_insert ("j-2", "timeout", "print(2)");
    cr_assert_eq (entry_count (NULL), 2);
    cr_assert_eq (entry_count ("{\"error_type\": \"timeout\"}"), 1);
    json_t *page = dlq_query ("dlq.list", "{\"limit\": 1, \"offset\": 0}", 200);
    cr_assert_eq (json_integer_value (json_object_get (page, "count")), 1);
    cr_assert (json_is_true (json_object_get (page, "has_more")));
    json_decref (page);

    json_t *stats = dlq_query ("dlq.stats", NULL, 200);
    cr_assert_eq (json_integer_value (json_object_get (stats, "total")), 2);
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (stats, "by_error_type"),
                                                       "executor_lost")), 1);
    json_decref (stats);

    char params [256];
    snprintf (params, sizeof params, "{\"entry_id\": \"%s\"}", lost);
    json_t *removed = dlq_query ("dlq.remove", params, 200);
    cr_assert (json_is_true (json_object_get (removed, "removed")));
    json_decref (removed);
    json_decref (dlq_query ("dlq.remove", params, 404));
    cr_assert_eq (entry_count (NULL), 1);
    free (lost);
    free (timeout);
}

Test (dlq, bad_queries_are_400)
{
    json_decref (dlq_query ("dlq.nonsense", NULL, 400));
    json_decref (dlq_query ("dlq.requeue", NULL, 400));
    json_decref (dlq_query ("dlq.requeue", "{\"entry_id\": 5}", 400));
    json_decref (dlq_query ("dlq.list", "{\"limit\": 0}", 400));
    json_decref (dlq_query ("dlq.remove", "{}", 400));
    json_decref (dlq_query ("dlq.requeue", "{\"entry_id\": \"no-such-entry\"}", 404));
}

Test (dlq, requeue_submits_the_job_and_removes_the_entry)
{
    char *entry_id = entry_insert ("j-1", "executor_lost", "print(41 + 1)");
    char params [256], request_id [32];
    snprintf (params, sizeof params, "{\"entry_id\": \"%s\"}", entry_id);
    query_send ("dlq", "dlq.requeue", params, request_id, sizeof request_id);

    tako_msg_t *submit = submit_receive ();
    cr_assert_str_eq (tako_msg_str (submit, "code"), "print(41 + 1)");
    cr_assert_str_eq (tako_msg_str (submit, "job_type"), "default");
    cr_assert_eq (tako_msg_int (submit, "timeout", 0), 7);
    cr_assert_eq (json_integer_value (json_object_get (tako_msg_object (submit, "input_data"), "n")), 3);
    cr_assert_str_eq (tako_msg_str (submit, "correlation_id"), "c-9");
    char key [128];
    snprintf (key, sizeof key, "dlq-requeue-%s", entry_id);
    cr_assert_str_eq (tako_msg_str (submit, "idempotency_key"), key);
    scheduler_answer (submit, "ACCEPTED", 0);
    tako_msg_destroy (&submit);

    json_t *result = expect_code (answer_wait (request_id, WAIT_MS), 200);
    cr_assert_str_eq (json_string_value (json_object_get (result, "job_id")), "job-requeued");
    cr_assert_str_eq (json_string_value (json_object_get (result, "status")), "queued");
    cr_assert (json_is_true (json_object_get (result, "removed")));
    json_decref (result);
    cr_assert_eq (entry_count (NULL), 0);
    free (entry_id);
}

Test (dlq, requeue_refused_keeps_the_entry)
{
    char *entry_id = entry_insert ("j-1", "executor_lost", "print(1)");
    char params [256], request_id [32];
    snprintf (params, sizeof params, "{\"entry_id\": \"%s\"}", entry_id);
    query_send ("dlq", "dlq.requeue", params, request_id, sizeof request_id);
    tako_msg_t *submit = submit_receive ();
    scheduler_answer (submit, "ERROR", 503);
    tako_msg_destroy (&submit);
    tako_msg_t *reply = answer_wait (request_id, WAIT_MS);
    cr_assert_not_null (reply);
    cr_assert_str_eq (tako_msg_str (reply, "reason"), "queue full");
    json_decref (expect_code (reply, 503));
    cr_assert_eq (entry_count (NULL), 1);

    //  No scheduler at all: 503 (from the broker's ERROR, or the DLQ's
    //  own deadline if the broker still routed to the departed one).
    tako_peer_destroy (&scheduler);
    reply = request ("dlq", "dlq.requeue", params, TAKO_DLQ_UPSTREAM_TIMEOUT_MS + WAIT_MS);
    cr_assert_not_null (reply);
    cr_assert_str_eq (tako_msg_str (reply, "reason"), "scheduler unavailable");
    json_decref (expect_code (reply, 503));
    cr_assert_eq (entry_count (NULL), 1);
    free (entry_id);
}
