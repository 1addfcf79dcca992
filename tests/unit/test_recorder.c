/*  The recorder actor against a real PostgreSQL and a real broker.

    The database: TAKO_TEST_DATABASE_URL when set (tests/run.sh sets it),
    else a private cluster under the build directory (<dir of
    tako-unit>/unit-pg, shared with test_store). Every test works in a
    schema of its own, so suites run concurrently. The "database down"
    test needs a server it may stop, so it starts its own cluster.
    A client peer sends QUERYs and ARTIFACTs through the broker.          */

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
#include "tako_sha256.h"
#include "actors/recorder/tako_recorder.h"

#define TEST_TIMEOUT_SECONDS 120
#define BEAT_MS       100
#define WAIT_MS       5000
#define URL_SIZE      2048
//  How fast a QUERY must be answered while the database is down.
#define DOWN_ANSWER_MS 3000
//  How long the recorder may take to notice a restarted database.
#define RECONNECT_WAIT_MS 20000

static char base_url [URL_SIZE];
static char url [URL_SIZE + 128];
static char schema [64];
static PGconn *admin;
static tako_config_t *config;
static zactor_t *broker;
static char *endpoint;
static zactor_t *recorder;
static tako_peer_t *client;
static tako_actor_args_t recorder_args;
static int request_count;

//  ---------------------------------------------------------------------
//  Fixture

static void
build_dir (char *out, size_t size)
{
    char exe [1024];
    ssize_t length = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert (length > 0);
    exe [length] = 0;
    snprintf (out, size, "%s", dirname (exe));
}

static void
base_url_find (void)
{
    const char *test_url = getenv ("TAKO_TEST_DATABASE_URL");
    if (test_url && *test_url) {
        snprintf (base_url, sizeof base_url, "%s", test_url);
        return;
    }
    char dir [1024], data_dir [1100];
    build_dir (dir, sizeof dir);
    snprintf (data_dir, sizeof data_dir, "%s/unit-pg", dir);
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    snprintf (base_url, sizeof base_url, "%s", tako_pgcluster_url (cluster));
    tako_pgcluster_destroy (&cluster);
}

//  base with search_path set to our schema.
static void
schema_url (const char *base, char *out, size_t size)
{
    if (strstr (base, "://"))
        snprintf (out, size, "%s%soptions=-csearch_path%%3D%s", base,
                  strchr (base, '?')? "&": "?", schema);
    else
        snprintf (out, size, "%s options='-csearch_path=%s'", base, schema);
}

static void
admin_exec (const char *sql)
{
    PGresult *result = PQexec (admin, sql);
    cr_assert (PQresultStatus (result) == PGRES_COMMAND_OK, "%s: %s", sql,
               PQerrorMessage (admin));
    PQclear (result);
}

static tako_msg_t *query_wait (const char *query, const char *params_text, int timeout_ms);

//  Until the broker knows the recorder, a QUERY gets the broker's ERROR.
static void
recorder_wait_registered (void)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        tako_msg_t *reply = query_wait ("ping", NULL, WAIT_MS);
        bool answered = reply && streq (tako_msg_command (reply), "REPLY");
        tako_msg_destroy (&reply);
        if (answered)
            return;
        zclock_sleep (BEAT_MS);         //  pacing between polls
    }
    cr_assert_fail ("the recorder did not register within %d ms", WAIT_MS);
}

//  A broker, a recorder on database url, and a client.
static void
actors_start (const char *database_url)
{
    config = tako_config_new ();
    cr_assert_not_null (config);
    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", BEAT_MS, 3, NULL };
    broker = zactor_new (tako_broker_actor, &broker_args);
    endpoint = tako_broker_endpoint (broker);
    cr_assert_not_null (endpoint);
    tako_heartbeat_t beat = { BEAT_MS, 3 };
    recorder_args = (tako_actor_args_t) {
        .config = config, .broker_endpoint = endpoint,
        .database_url = database_url, .heartbeat = beat
    };
    recorder = zactor_new (tako_recorder_actor, &recorder_args);
    cr_assert_not_null (recorder);
    client = tako_peer_new_client (endpoint, "test", &beat);
    cr_assert_not_null (client);
    recorder_wait_registered ();
}

static void
actors_stop (void)
{
    tako_peer_destroy (&client);
    zactor_destroy (&recorder);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    tako_config_destroy (&config);
}

static void
setup (void)
{
    base_url_find ();
    admin = PQconnectdb (base_url);
    cr_assert (PQstatus (admin) == CONNECTION_OK, "%s", PQerrorMessage (admin));
    admin_exec ("SET client_min_messages = warning");
    snprintf (schema, sizeof schema, "rec_%d_%ld", (int) getpid (), (long) time (NULL));
    char sql [256];
    snprintf (sql, sizeof sql, "CREATE SCHEMA %s", schema);
    admin_exec (sql);
    schema_url (base_url, url, sizeof url);
    actors_start (url);
}

static void
teardown (void)
{
    actors_stop ();
    if (admin && PQstatus (admin) == CONNECTION_OK && *schema) {
        char sql [256];
        snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
        PQclear (PQexec (admin, sql));
    }
    PQfinish (admin);
    admin = NULL;
}

TestSuite (recorder, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_SECONDS);

//  ---------------------------------------------------------------------
//  Helpers

//  Send a QUERY (params: a JSON text, or NULL) and wait for its REPLY
//  (or the broker's ERROR). NULL on timeout.
static tako_msg_t *
query_wait (const char *query, const char *params_text, int timeout_ms)
{
    char request_id [32];
    snprintf (request_id, sizeof request_id, "r-%d", ++request_count);
    tako_msg_t *msg = tako_msg_new ("QUERY");
    tako_msg_set_address (msg, "recorder");
    tako_msg_set_str (msg, "request_id", request_id);
    tako_msg_set_str (msg, "query", query);
    if (params_text) {
        json_error_t error;
        json_t *params = json_loads (params_text, JSON_DECODE_ANY, &error);
        cr_assert_not_null (params, "bad test JSON %s: %s", params_text, error.text);
        tako_msg_set_object (msg, "params", params);
        json_decref (params);
    }
    //  Kept to send again: a test that blocked (stopping PostgreSQL) can
    //  miss its heartbeats, and the broker then answers 403 "register
    //  first" while the peer registers anew.
    tako_msg_t *copy = tako_msg_dup (msg);
    cr_assert_eq (tako_peer_send (client, &msg), 0);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        tako_msg_t *reply = tako_peer_recv (client, (int) (deadline - zclock_mono ()));
        if (!reply)
            break;
        const char *reply_to = tako_msg_str (reply, "request_id");
        if (streq (tako_msg_command (reply), "ERROR") && tako_msg_int (reply, "code", 0) == 403
        &&  copy) {
            tako_msg_destroy (&reply);
            zclock_sleep (BEAT_MS);         //  pacing: the peer re-registers meanwhile
            tako_msg_t *again = tako_msg_dup (copy);
            cr_assert_eq (tako_peer_send (client, &again), 0);
            continue;
        }
        if ((streq (tako_msg_command (reply), "REPLY") || streq (tako_msg_command (reply), "ERROR"))
        &&  reply_to && streq (reply_to, request_id)) {
            tako_msg_destroy (&copy);
            return reply;
        }
        tako_msg_destroy (&reply);
    }
    tako_msg_destroy (&copy);
    return NULL;
}

static tako_msg_t *
query (const char *name, const char *params_text)
{
    tako_msg_t *reply = query_wait (name, params_text, WAIT_MS);
    cr_assert_not_null (reply, "no REPLY to %s within %d ms", name, WAIT_MS);
    return reply;
}

//  A query whose REPLY must have this code; returns a copy of its result
//  (or NULL), the reply itself is freed.
static json_t *
query_expect (const char *name, const char *params_text, int code)
{
    tako_msg_t *reply = query (name, params_text);
    cr_assert_eq (tako_msg_int (reply, "code", 0), code, "%s %s: code %d (%s)", name,
                  params_text? params_text: "", (int) tako_msg_int (reply, "code", 0),
                  tako_msg_str (reply, "reason")? tako_msg_str (reply, "reason"): "");
    json_t *result = tako_msg_object (reply, "result");
    json_t *copy = result? json_deep_copy (result): NULL;
    tako_msg_destroy (&reply);
    return copy;
}

static const char *
field (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

//  A new queued job; its id (caller frees).
static char *
job_create (const char *code)
{
    char params [256];
    snprintf (params, sizeof params, "{\"code\": \"%s\", \"job_type\": \"default\"}", code);
    json_t *result = query_expect ("job.insert", params, 200);
    cr_assert_str_eq (field (result, "outcome"), "created");
    cr_assert_str_eq (field (result, "status"), "queued");
    char *job_id = strdup (field (result, "job_id"));
    json_decref (result);
    return job_id;
}

static void
job_start (const char *job_id, int attempt, int code)
{
    char params [256];
    snprintf (params, sizeof params, "{\"job_id\": \"%s\", \"attempt\": %d, \"lease_id\": \"l-1\","
              " \"lease_owner\": \"executor.t1\", \"lease_ms\": 30000}", job_id, attempt);
    json_decref (query_expect ("job.start", params, code));
}

static void
artifact_send (const char *job_id, int attempt, const char *name, const char *data)
{
    tako_msg_t *msg = tako_msg_new ("ARTIFACT");
    tako_msg_set_address (msg, "recorder");
    tako_msg_set_str (msg, "job_id", job_id);
    tako_msg_set_int (msg, "attempt", attempt);
    tako_msg_set_str (msg, "name", name);
    tako_msg_set_str (msg, "content_type", "text/plain");
    char *sha256 = tako_sha256_hex (data, strlen (data));
    tako_msg_set_str (msg, "sha256", sha256);
    free (sha256);
    tako_msg_set_bin (msg, "data", data, strlen (data));
    cr_assert_eq (tako_peer_send (client, &msg), 0);
}

//  job.finish params listing one artifact (or none when name is NULL).
static char *
finish_params (const char *job_id, int attempt, const char *name, const char *data)
{
    char artifacts [512] = "[]";
    if (name) {
        char *sha256 = tako_sha256_hex (data, strlen (data));
        snprintf (artifacts, sizeof artifacts, "[{\"name\": \"%s\", \"sha256\": \"%s\","
                  " \"size_bytes\": %zu, \"content_type\": \"text/plain\"}]",
                  name, sha256, strlen (data));
        free (sha256);
    }
    return zsys_sprintf ("{\"job_id\": \"%s\", \"attempt\": %d, \"result\": {\"status\":"
                         " \"succeeded\", \"exit_code\": 0, \"stdout\": \"hi\\n\", \"stderr\": \"\","
                         " \"output\": {\"n\": 1}, \"error\": null, \"duration_ms\": 12},"
                         " \"artifacts\": %s}", job_id, attempt, artifacts);
}

//  ---------------------------------------------------------------------
//  Jobs

Test (recorder, job_insert_is_idempotent_by_key)
{
    const char *job = "{\"code\": \"print(1)\", \"idempotency_key\": \"k-1\","
                      " \"payload_fingerprint\": \"f-1\"}";
    json_t *first = query_expect ("job.insert", job, 200);
    cr_assert_str_eq (field (first, "outcome"), "created");
    json_t *again = query_expect ("job.insert", job, 200);
    cr_assert_str_eq (field (again, "outcome"), "existing");
    cr_assert_str_eq (field (again, "job_id"), field (first, "job_id"));
    json_t *conflict = query_expect ("job.insert", "{\"code\": \"print(2)\", \"idempotency_key\":"
                                     " \"k-1\", \"payload_fingerprint\": \"f-2\"}", 409);
    cr_assert_str_eq (field (conflict, "outcome"), "conflict");
    cr_assert_str_eq (field (conflict, "job_id"), field (first, "job_id"));
    json_decref (first);
    json_decref (again);
    json_decref (conflict);
}

Test (recorder, job_views_and_lists)
{
    char *job_id = job_create ("print(42)");
    char params [256];
    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", job_id);
    json_t *job = query_expect ("job.get", params, 200);
    cr_assert_str_eq (field (job, "status"), "queued");
    json_decref (job);
    snprintf (params, sizeof params, "{\"job_id\": \"%s\", \"view\": \"full\"}", job_id);
    json_decref (query_expect ("job.get", params, 200));
    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", job_id);
    json_t *payload = query_expect ("job.payload", params, 200);
    cr_assert_str_eq (field (payload, "code"), "print(42)");
    json_decref (payload);
    json_t *position = query_expect ("job.queue_position", params, 200);
    cr_assert_eq (json_integer_value (json_object_get (position, "queue_position")), 1);
    json_decref (position);

    json_t *counts = query_expect ("job.counts", NULL, 200);
    cr_assert_eq (json_integer_value (json_object_get (counts, "queued")), 1);
    cr_assert_eq (json_integer_value (json_object_get (counts, "running")), 0);
    json_decref (counts);
    json_t *stats = query_expect ("job.stats", NULL, 200);
    json_t *items = json_object_get (stats, "items");
    cr_assert_eq (json_array_size (items), 1);
    cr_assert_str_eq (field (json_array_get (items, 0), "status"), "queued");
    cr_assert_str_eq (field (json_array_get (items, 0), "job_type"), "default");
    cr_assert_eq (json_integer_value (json_object_get (json_array_get (items, 0), "count")), 1);
    json_decref (stats);
    json_t *unfinished = query_expect ("job.unfinished", "{}", 200);
    json_t *jobs = json_object_get (unfinished, "jobs");
    cr_assert_eq (json_array_size (jobs), 1);
    cr_assert_str_eq (field (json_array_get (jobs, 0), "job_id"), job_id);
    json_decref (unfinished);

    json_t *page = query_expect ("job.list", "{\"status\": \"queued\", \"limit\": 10}", 200);
    cr_assert_eq (json_integer_value (json_object_get (page, "count")), 1);
    cr_assert_eq (json_integer_value (json_object_get (page, "limit")), 10);
    json_decref (page);
    page = query_expect ("job.list", "{\"status\": \"succeeded\"}", 200);
    cr_assert_eq (json_integer_value (json_object_get (page, "count")), 0);
    json_decref (page);
    free (job_id);
}

Test (recorder, artifact_buffered_then_finish_stores_it)
{
    char *job_id = job_create ("print(1)");
    job_start (job_id, 1, 200);
    job_start (job_id, 1, 409);                 //  stale: already running
    char params [256];
    snprintf (params, sizeof params, "{\"job_id\": \"%s\", \"attempt\": 1, \"lease_id\": \"l-1\","
              " \"lease_ms\": 30000}", job_id);
    json_t *renewed = query_expect ("job.renew", params, 200);
    cr_assert_str_eq (field (renewed, "outcome"), "applied");
    json_decref (renewed);

    //  Bytes with a NUL inside arrive whole.
    tako_msg_t *msg = tako_msg_new ("ARTIFACT");
    tako_msg_set_address (msg, "recorder");
    tako_msg_set_str (msg, "job_id", job_id);
    tako_msg_set_int (msg, "attempt", 1);
    tako_msg_set_str (msg, "name", "blob.bin");
    char *sha256 = tako_sha256_hex ("a\0b", 3);
    tako_msg_set_str (msg, "sha256", sha256);
    tako_msg_set_bin (msg, "data", "a\0b", 3);
    cr_assert_eq (tako_peer_send (client, &msg), 0);
    char *finish = zsys_sprintf ("{\"job_id\": \"%s\", \"attempt\": 1, \"result\": {\"status\":"
                                 " \"succeeded\", \"exit_code\": 0}, \"artifacts\": [{\"name\":"
                                 " \"blob.bin\", \"sha256\": \"%s\", \"size_bytes\": 3}]}",
                                 job_id, sha256);
    json_t *result = query_expect ("job.finish", finish, 200);
    cr_assert_str_eq (field (result, "outcome"), "applied");
    json_decref (result);

    snprintf (params, sizeof params, "{\"job_id\": \"%s\", \"name\": \"blob.bin\"}", job_id);
    tako_msg_t *reply = query ("artifact.get", params);
    cr_assert_eq (tako_msg_int (reply, "code", 0), 200);
    size_t size = 0;
    const void *data = tako_msg_bin (reply, "data", &size);
    cr_assert_eq (size, 3);
    cr_assert_eq (memcmp (data, "a\0b", 3), 0);
    json_t *meta = tako_msg_object (reply, "result");
    cr_assert_str_eq (field (meta, "sha256"), sha256);
    cr_assert_eq (json_integer_value (json_object_get (meta, "size_bytes")), 3);
    tako_msg_destroy (&reply);

    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", job_id);
    json_t *list = query_expect ("artifact.list", params, 200);
    cr_assert_eq (json_array_size (json_object_get (list, "artifacts")), 1);
    json_decref (list);
    json_t *job = query_expect ("job.get", params, 200);
    cr_assert_str_eq (field (job, "status"), "succeeded");
    json_decref (job);

    //  The same finish again (its ARTIFACTs not resent): a duplicate.
    json_t *duplicate = query_expect ("job.finish", finish, 409);
    cr_assert_str_eq (field (duplicate, "outcome"), "duplicate");
    json_decref (duplicate);
    free (finish);
    free (sha256);
    free (job_id);
}

Test (recorder, finish_without_its_artifact_is_refused)
{
    char *job_id = job_create ("print(1)");
    job_start (job_id, 1, 200);
    char *finish = finish_params (job_id, 1, "out.txt", "hello");
    tako_msg_t *reply = query ("job.finish", finish);
    cr_assert_eq (tako_msg_int (reply, "code", 0), 409);
    cr_assert_str_eq (tako_msg_str (reply, "reason"), "artifacts missing");
    tako_msg_destroy (&reply);

    //  Bytes that do not match the listed sha256 count as missing too.
    artifact_send (job_id, 1, "out.txt", "HELLO");
    reply = query ("job.finish", finish);
    cr_assert_eq (tako_msg_int (reply, "code", 0), 409);
    cr_assert_str_eq (tako_msg_str (reply, "reason"), "artifacts missing");
    tako_msg_destroy (&reply);
    char params [256];
    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", job_id);
    json_t *job = query_expect ("job.get", params, 200);
    cr_assert_str_eq (field (job, "status"), "running");
    json_decref (job);

    //  Resent: recorded.
    artifact_send (job_id, 1, "out.txt", "hello");
    json_decref (query_expect ("job.finish", finish, 200));
    snprintf (params, sizeof params, "{\"job_id\": \"%s\", \"name\": \"out.txt\"}", job_id);
    reply = query ("artifact.get", params);
    size_t size = 0;
    const void *data = tako_msg_bin (reply, "data", &size);
    cr_assert (size == 5 && memcmp (data, "hello", 5) == 0);
    tako_msg_destroy (&reply);
    //  The buffer let go of the recorded bytes.
    zstr_send (recorder, "STATS");
    int connected, count, bytes;
    cr_assert_eq (zsock_recv (recorder, "iii", &connected, &count, &bytes), 0);
    cr_assert (connected == 1 && count == 0 && bytes == 0);
    free (finish);
    free (job_id);
}

Test (recorder, requeue_and_cancel)
{
    char *job_id = job_create ("print(1)");
    job_start (job_id, 1, 200);
    char params [256];
    snprintf (params, sizeof params, "{\"job_id\": \"%s\", \"attempt\": 1}", job_id);
    json_t *requeued = query_expect ("job.requeue", params, 200);
    cr_assert_str_eq (field (requeued, "outcome"), "applied");
    json_decref (requeued);
    json_decref (query_expect ("job.requeue", params, 409));    //  stale now
    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", job_id);
    json_t *payload = query_expect ("job.payload", params, 200);
    cr_assert_eq (json_integer_value (json_object_get (payload, "attempt")), 2);
    cr_assert_str_eq (field (payload, "status"), "queued");
    json_decref (payload);

    json_t *cancelled = query_expect ("job.cancel", params, 200);
    cr_assert_str_eq (field (cancelled, "outcome"), "applied");
    json_decref (cancelled);
    cancelled = query_expect ("job.cancel", params, 409);
    cr_assert_str_eq (field (cancelled, "outcome"), "stale");
    json_decref (cancelled);
    //  A finish for a cancelled job is stale.
    char *finish = finish_params (job_id, 2, NULL, NULL);
    json_t *stale = query_expect ("job.finish", finish, 409);
    cr_assert_str_eq (field (stale, "outcome"), "stale");
    json_decref (stale);
    free (finish);
    free (job_id);
}

Test (recorder, bad_params_are_400)
{
    json_decref (query_expect ("job.nonsense", "{}", 400));
    json_decref (query_expect ("job.get", NULL, 400));
    json_decref (query_expect ("job.get", "[1, 2]", 400));
    json_decref (query_expect ("job.get", "{\"job_id\": 7}", 400));
    json_decref (query_expect ("job.get", "{\"job_id\": \"x\", \"view\": \"huge\"}", 400));
    json_decref (query_expect ("job.insert", "{\"job_type\": \"default\"}", 400));
    json_decref (query_expect ("job.insert", NULL, 400));
    json_decref (query_expect ("job.start", "{\"job_id\": \"x\", \"attempt\": \"one\"}", 400));
    json_decref (query_expect ("job.start", "{\"job_id\": \"x\", \"attempt\": 1,"
                               " \"lease_id\": \"l\", \"lease_owner\": \"o\"}", 400));
    json_decref (query_expect ("job.finish", "{\"job_id\": \"x\", \"attempt\": 1}", 400));
    json_decref (query_expect ("job.finish", "{\"job_id\": \"x\", \"attempt\": 1, \"result\":"
                               " {\"status\": \"succeeded\"}, \"artifacts\": [7]}", 400));
    json_decref (query_expect ("job.list", "{\"limit\": 5000}", 400));
    json_decref (query_expect ("job.list", "{\"offset\": -1}", 400));
    json_decref (query_expect ("job.list", "{\"status\": \"sleeping\"}", 400));
    json_decref (query_expect ("dlq.insert", "{\"entry\": {\"job_id\": \"x\"}}", 400));
    json_decref (query_expect ("version.register", "{\"version\": {\"digest\": \"12\"}}", 400));
    json_decref (query_expect ("version.lookup", "{\"digest\": \"ab\"}", 400));
    //  The recorder is still fine.
    json_decref (query_expect ("job.counts", NULL, 200));
}

Test (recorder, unknown_records_are_404)
{
    json_decref (query_expect ("job.get", "{\"job_id\": \"no-such-job\"}", 404));
    json_decref (query_expect ("job.payload", "{\"job_id\": \"no-such-job\"}", 404));
    json_decref (query_expect ("job.cancel", "{\"job_id\": \"no-such-job\"}", 404));
    char *finish = finish_params ("no-such-job", 1, NULL, NULL);
    json_decref (query_expect ("job.finish", finish, 404));
    free (finish);
    finish = finish_params ("no-such-job", 1, "a.txt", "abc");
    json_decref (query_expect ("job.finish", finish, 404));
    free (finish);
    json_decref (query_expect ("artifact.get", "{\"job_id\": \"no-such-job\", \"name\": \"a\"}", 404));
    json_decref (query_expect ("dlq.get", "{\"entry_id\": \"no-such-entry\"}", 404));
    json_t *removed = query_expect ("dlq.remove", "{\"entry_id\": \"no-such-entry\"}", 404);
    cr_assert (json_is_false (json_object_get (removed, "removed")));
    json_decref (removed);
    json_decref (query_expect ("version.lookup", "{\"digest\": \"abcdef0123\"}", 404));
}

//  ---------------------------------------------------------------------
//  Dead letters and versions

Test (recorder, dead_letters)
{
    const char *entry = "{\"entry\": {\"job_id\": \"j-1\", \"error_type\": \"executor_lost\","
                        " \"error_message\": \"lost\", \"retry_count\": 2, \"job_data\":"
                        " {\"code\": \"print(1)\", \"input_data\": {}, \"job_type\": \"default\"}}}";
    json_t *inserted = query_expect ("dlq.insert", entry, 200);
    char *entry_id = strdup (field (inserted, "entry_id"));
    json_decref (inserted);
    json_decref (query_expect ("dlq.insert", "{\"entry\": {\"job_id\": \"j-2\","
                               " \"error_type\": \"timeout\"}}", 200));

    json_t *page = query_expect ("dlq.list", "{\"error_type\": \"executor_lost\"}", 200);
    cr_assert_eq (json_integer_value (json_object_get (page, "count")), 1);
    cr_assert_str_eq (field (json_array_get (json_object_get (page, "items"), 0), "id"), entry_id);
    json_decref (page);
    json_t *stats = query_expect ("dlq.stats", NULL, 200);
    cr_assert_eq (json_integer_value (json_object_get (stats, "total")), 2);
    json_decref (stats);

    char params [256];
    snprintf (params, sizeof params, "{\"entry_id\": \"%s\"}", entry_id);
    json_t *got = query_expect ("dlq.get", params, 200);
    cr_assert_str_eq (field (json_object_get (got, "job_data"), "code"), "print(1)");
    json_decref (got);
    json_t *removed = query_expect ("dlq.remove", params, 200);
    cr_assert (json_is_true (json_object_get (removed, "removed")));
    json_decref (removed);
    json_decref (query_expect ("dlq.remove", params, 404));
    free (entry_id);
}

Test (recorder, job_versions)
{
    const char *digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char params [512];
    snprintf (params, sizeof params, "{\"version\": {\"digest\": \"%s\", \"job_type\": \"ml\","
              " \"job_ref\": \"ml@sha256:0123456789ab\", \"version_tag\": \"v1\"}}", digest);
    json_decref (query_expect ("version.register", params, 200));
    json_t *version = query_expect ("version.lookup", "{\"digest\": \"0123456789\"}", 200);
    cr_assert_str_eq (field (version, "job_ref"), "ml@sha256:0123456789ab");
    json_decref (version);
    json_t *list = query_expect ("version.list", "{\"job_type\": \"ml\"}", 200);
    cr_assert_eq (json_array_size (json_object_get (list, "versions")), 1);
    json_decref (list);
}

Test (recorder, cleanup_at_start_removes_expired_records)
{
    char *old_id = job_create ("print('old')");
    char *new_id = job_create ("print('new')");
    job_start (old_id, 1, 200);
    char *finish = finish_params (old_id, 1, NULL, NULL);
    json_decref (query_expect ("job.finish", finish, 200));
    free (finish);
    //  Age the finished job past the TTL; a restarted recorder cleans up.
    char sql [512];
    snprintf (sql, sizeof sql, "UPDATE %s.executions SET created_at = now () - make_interval"
              " (days => %d) WHERE id = '%s'", schema, config->execution_record_ttl_days + 1,
              old_id);
    admin_exec (sql);
    zactor_destroy (&recorder);
    recorder = zactor_new (tako_recorder_actor, &recorder_args);
    cr_assert_not_null (recorder);
    char params [256];
    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", old_id);
    int64_t deadline = zclock_mono () + WAIT_MS;
    int code = 0;
    while (code != 404 && zclock_mono () < deadline) {
        tako_msg_t *reply = query_wait ("job.get", params, WAIT_MS);
        code = reply && streq (tako_msg_command (reply), "REPLY")?
               (int) tako_msg_int (reply, "code", 0): 0;
        tako_msg_destroy (&reply);
        if (code != 404)
            zclock_sleep (BEAT_MS);     //  pacing between polls
    }
    cr_assert_eq (code, 404, "the expired job was not cleaned up");
    //  The queued one, however old, stays.
    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", new_id);
    json_decref (query_expect ("job.get", params, 200));
    free (old_id);
    free (new_id);
}

//  ---------------------------------------------------------------------
//  The database goes away and comes back

static void
cluster_dir (char *out, size_t size)
{
    char dir [1024];
    build_dir (dir, sizeof dir);
    snprintf (out, size, "%s/unit-recorder-pg-%d", dir, (int) getpid ());
}

static void
cluster_remove (void)
{
    char data_dir [1200], command [1300];
    cluster_dir (data_dir, sizeof data_dir);
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    if (cluster)
        tako_pgcluster_stop (cluster);
    tako_pgcluster_destroy (&cluster);
    snprintf (command, sizeof command, "rm -rf '%s'", data_dir);
    cr_assert (system (command) == 0);
}

static void
down_setup (void)
{
    char data_dir [1200];
    cluster_dir (data_dir, sizeof data_dir);
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    snprintf (url, sizeof url, "%s", tako_pgcluster_url (cluster));
    tako_pgcluster_destroy (&cluster);
    actors_start (url);
}

static void
down_teardown (void)
{
    actors_stop ();
    cluster_remove ();
}

Test (recorder_down, answers_503_fast_then_recovers, .init = down_setup,
      .fini = down_teardown, .timeout = TEST_TIMEOUT_SECONDS)
{
    char *job_id = job_create ("print(1)");
    char data_dir [1200];
    cluster_dir (data_dir, sizeof data_dir);
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    cr_assert (tako_pgcluster_stop (cluster) == 0, "%s", tako_pgcluster_error (cluster));

    char params [256];
    snprintf (params, sizeof params, "{\"job_id\": \"%s\"}", job_id);
    for (int i = 0; i < 3; i++) {
        int64_t started = zclock_mono ();
        tako_msg_t *reply = query_wait ("job.get", params, DOWN_ANSWER_MS);
        cr_assert_not_null (reply, "no answer within %d ms while the database is down",
                            DOWN_ANSWER_MS);
        cr_assert_eq (tako_msg_int (reply, "code", 0), 503, "round %d: %s %d %s", i,
                      tako_msg_command (reply), (int) tako_msg_int (reply, "code", 0),
                      tako_msg_str (reply, "reason")? tako_msg_str (reply, "reason"): "-");
        cr_assert_str_eq (tako_msg_str (reply, "reason"), "database unavailable");
        cr_assert_lt (zclock_mono () - started, DOWN_ANSWER_MS);
        tako_msg_destroy (&reply);
    }
    //  The actor itself stays responsive.
    zstr_send (recorder, "STATS");
    int connected, count, bytes;
    cr_assert_eq (zsock_recv (recorder, "iii", &connected, &count, &bytes), 0);
    cr_assert_eq (connected, 0);

    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    tako_pgcluster_destroy (&cluster);
    int64_t deadline = zclock_mono () + RECONNECT_WAIT_MS;
    int code = 0;
    while (code != 200 && zclock_mono () < deadline) {
        tako_msg_t *reply = query_wait ("job.get", params, DOWN_ANSWER_MS);
        code = reply? (int) tako_msg_int (reply, "code", 0): 0;
        if (code == 200)
            cr_assert_str_eq (field (tako_msg_object (reply, "result"), "status"), "queued");
        tako_msg_destroy (&reply);
        if (code != 200)
            zclock_sleep (BEAT_MS);     //  pacing between polls, not synchronisation
    }
    cr_assert_eq (code, 200, "the recorder did not reconnect within %d ms", RECONNECT_WAIT_MS);
    free (job_id);
}
