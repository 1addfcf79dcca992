/*  tako_store against a real PostgreSQL.

    The server: TAKO_TEST_DATABASE_URL when set (the test runner starts
    one with `tako-vm dev up`), otherwise a private cluster under the
    build directory (<dir of tako-unit>/unit-pg) that the first test starts
    and the end of the run stops. Every test works in a schema of its own
    (search_path in the connection options), so tests run in parallel
    without seeing each other's rows.                                    */

#include <criterion/criterion.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "tako_pgcluster.h"
#include "actors/recorder/tako_store.h"
#include "actors/recorder/tako_store_internal.h"

#define TEST_TIMEOUT_SECONDS 120
#define URL_SIZE 2048

//  Per-test state (Criterion runs each test in its own process).
static char base_url [URL_SIZE];
static char schema [64];
static PGconn *admin;
static tako_store_t *store;

static void
build_dir (char *out, size_t size)
{
    char exe [1024];
    ssize_t length = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert (length > 0);
    exe [length] = 0;
    snprintf (out, size, "%s", dirname (exe));
}

//  The URL of the server the tests use, starting the private one if needed.
static void
base_url_find (void)
{
    const char *url = getenv ("TAKO_TEST_DATABASE_URL");
    if (url && *url) {
        snprintf (base_url, sizeof base_url, "%s", url);
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

//  base_url with search_path set to our schema.
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
    cr_assert (PQresultStatus (result) == PGRES_COMMAND_OK
            || PQresultStatus (result) == PGRES_TUPLES_OK, "%s: %s", sql,
               PQerrorMessage (admin));
    PQclear (result);
}

static tako_store_t *
store_open (void)
{
    char url [URL_SIZE + 128];
    schema_url (base_url, url, sizeof url);
    tako_store_t *opened = tako_store_new (url);
    cr_assert (opened);
    cr_assert (tako_store_connect (opened) == 0, "%s", tako_store_error (opened));
    return opened;
}

static void
suite_setup (void)
{
    base_url_find ();
    admin = PQconnectdb (base_url);
    cr_assert (PQstatus (admin) == CONNECTION_OK, "%s", PQerrorMessage (admin));
    admin_exec ("SET client_min_messages = warning");
    snprintf (schema, sizeof schema, "test_%d_%ld", (int) getpid (), (long) time (NULL));
    char sql [256];
    snprintf (sql, sizeof sql, "CREATE SCHEMA %s", schema);
    admin_exec (sql);
    store = store_open ();
    cr_assert (tako_store_migrate (store) == 0, "%s", tako_store_error (store));
}

static void
suite_teardown (void)
{
    tako_store_destroy (&store);
    if (admin && PQstatus (admin) == CONNECTION_OK && *schema) {
        char sql [256];
        snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
        PQclear (PQexec (admin, sql));
    }
    PQfinish (admin);
    admin = NULL;
}

//  At the end of the run (in the runner process), stop the private
//  cluster if we used one.
ReportHook (POST_ALL) (struct criterion_global_stats *stats)
{
    (void) stats;
    const char *url = getenv ("TAKO_TEST_DATABASE_URL");
    if (url && *url)
        return;
    char dir [1024], data_dir [1100];
    build_dir (dir, sizeof dir);
    snprintf (data_dir, sizeof data_dir, "%s/unit-pg", dir);
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    tako_pgcluster_stop (cluster);
    tako_pgcluster_destroy (&cluster);
}

TestSuite (store, .init = suite_setup, .fini = suite_teardown,
           .timeout = TEST_TIMEOUT_SECONDS);

//  ---------------------------------------------------------------------
//  Helpers

static char *
job_insert (const char *code, const char *job_type, const char *key, const char *fingerprint,
            tako_store_outcome_t expected)
{
    json_t *job = json_pack ("{s:s, s:s, s:{s:i}}", "code", code, "job_type", job_type,
                             "input_data", "n", 1);
    if (key)
        json_object_set_new (job, "idempotency_key", json_string (key));
    if (fingerprint)
        json_object_set_new (job, "payload_fingerprint", json_string (fingerprint));
    tako_store_outcome_t outcome;
    char *job_id = NULL, *status = NULL;
    cr_assert (tako_store_job_insert (store, job, &outcome, &job_id, &status) == 0,
               "%s", tako_store_error (store));
    cr_assert_eq (outcome, expected, "outcome %s", tako_store_outcome_name (outcome));
    json_decref (job);
    free (status);
    return job_id;
}

static json_t *
job_get (const char *job_id, bool full)
{
    json_t *job = NULL;
    cr_assert (tako_store_job_get (store, job_id, full, &job) == 0, "%s", tako_store_error (store));
    return job;
}

static const char *
field_string (json_t *obj, const char *key)
{
    return json_string_value (json_object_get (obj, key));
}

static void
job_start (const char *job_id, int attempt, tako_store_outcome_t expected)
{
    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_start (store, job_id, attempt, "lease-1", "executor-a", 30,
                                     &outcome) == 0);
    cr_assert_eq (outcome, expected, "outcome %s", tako_store_outcome_name (outcome));
}

static tako_store_outcome_t
job_finish (const char *job_id, int attempt, const char *status, const char *stdout_text)
{
    json_t *result = json_pack ("{s:s, s:i, s:s, s:s, s:{s:i}, s:n, s:{s:i}}",
                                "status", status, "exit_code", 0, "stdout", stdout_text,
                                "stderr", "", "output", "answer", 42, "error",
                                "timing", "total_ms", 5);
    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_finish (store, job_id, attempt, result, NULL, 0, &outcome, NULL) == 0,
               "%s", tako_store_error (store));
    json_decref (result);
    return outcome;
}

//  ---------------------------------------------------------------------
//  Migrations

Test (store, migrations_are_idempotent)
{
    int version = tako_store_schema_version (store);
    cr_assert_geq (version, 1);
    cr_assert (tako_store_migrate (store) == 0);
    cr_assert (tako_store_migrate (store) == 0);
    cr_assert_eq (tako_store_schema_version (store), version);
    const char *params [] = { schema };
    PGresult *result = PQexecParams (admin, "SELECT count (*) FROM pg_tables WHERE tablename IN "
        "('executions', 'attempt_results', 'artifacts', 'job_versions', 'dlq', "
        "'schema_migrations') AND schemaname = $1", 1, NULL, params, NULL, NULL, 0);
    cr_assert_str_eq (PQgetvalue (result, 0, 0), "6");
    PQclear (result);
}

//  Two starters at once: the advisory lock lets one migrate, the other
//  then finds nothing to do.
static void *
migrate_thread (void *arg)
{
    tako_store_t *own = arg;
    return (void *) (intptr_t) tako_store_migrate (own);
}

Test (store, concurrent_migrations_are_safe)
{
    char sql [256];
    snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE; CREATE SCHEMA %s", schema, schema);
    admin_exec (sql);
    tako_store_t *first = store_open (), *second = store_open ();
    pthread_t threads [2];
    pthread_create (&threads [0], NULL, migrate_thread, first);
    pthread_create (&threads [1], NULL, migrate_thread, second);
    void *rc [2];
    pthread_join (threads [0], &rc [0]);
    pthread_join (threads [1], &rc [1]);
    cr_assert (rc [0] == NULL && rc [1] == NULL);
    cr_assert_geq (tako_store_schema_version (first), 1);
    tako_store_destroy (&first);
    tako_store_destroy (&second);
}

//  ---------------------------------------------------------------------
//  Jobs

Test (store, insert_and_get)
{
    char *job_id = job_insert ("print('hi')", "default", NULL, NULL, TAKO_STORE_CREATED);
    cr_assert (job_id && strlen (job_id) == 36, "a uuid");
    json_t *job = job_get (job_id, false);
    cr_assert (job);
    cr_assert_str_eq (field_string (job, "execution_id"), job_id);
    cr_assert_str_eq (field_string (job, "status"), "queued");
    cr_assert_str_eq (field_string (job, "job_type"), "default");
    const char *created = field_string (job, "created_at");
    cr_assert (created && strlen (created) == 24 && created [23] == 'Z', "ISO-8601 UTC: %s", created);
    cr_assert (json_is_null (json_object_get (job, "started_at")));
    cr_assert (json_object_get (job, "code_hash") == NULL, "only in view=full");
    json_decref (job);

    job = job_get (job_id, true);
    cr_assert (json_is_array (json_object_get (job, "artifacts")));
    json_t *inputs = json_object_get (job, "input_artifacts");
    cr_assert_eq (json_array_size (inputs), 2);
    cr_assert_str_eq (field_string (json_array_get (inputs, 0), "name"), "_code.py");
    cr_assert_eq (json_integer_value (json_object_get (json_array_get (inputs, 0), "size_bytes")), 11);
    cr_assert (json_is_false (json_object_get (job, "stdout_truncated")));
    json_decref (job);

    json_t *payload = NULL;
    cr_assert (tako_store_job_payload (store, job_id, &payload) == 0);
    cr_assert_str_eq (field_string (payload, "code"), "print('hi')");
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (payload, "input_data"), "n")), 1);
    cr_assert_eq (json_integer_value (json_object_get (payload, "attempt")), 1);
    json_decref (payload);

    cr_assert (job_get ("no-such-job", false) == NULL);
    free (job_id);
}

//  Statements are prepared once per connection, and a statement that
//  fails inside a transaction still says why (not "transaction aborted").
Test (store, statements_are_prepared_once)
{
    char *job_id = job_insert ("print(1)", "default", NULL, NULL, TAKO_STORE_CREATED);
    json_t *job = job_get (job_id, false);
    json_decref (job);
    size_t prepared = tako_store_prepared_count (store);
    cr_assert_gt (prepared, 0);
    for (int i = 0; i < 3; i++) {
        job = job_get (job_id, false);
        cr_assert (job);
        json_decref (job);
    }
    cr_assert_eq (tako_store_prepared_count (store), prepared, "the same statement again");

    store_params_t params = { .count = 0 };
    cr_assert_eq (store_begin (store), 0);
    store_params_text (&params, job_id);
    cr_assert_null (store_query (store, "SELECT no_such_column FROM executions WHERE id = $1",
                                 &params, 0));
    store_params_free (&params);
    cr_assert (strstr (tako_store_error (store), "42703"), "undefined column: %s", tako_store_error (store));
    store_rollback (store);
    cr_assert_eq (tako_store_prepared_count (store), prepared, "a failed statement is not kept");
    job = job_get (job_id, false);
    cr_assert (job, "the connection works after the rollback");
    json_decref (job);
    free (job_id);
}

Test (store, insert_rejects_bad_jobs)
{
    tako_store_outcome_t outcome;
    char *job_id = NULL, *status = NULL;
    json_t *job = json_pack ("{s:s}", "job_type", "default");
    cr_assert (tako_store_job_insert (store, job, &outcome, &job_id, &status) == -1);
    cr_assert (!tako_store_unavailable (store));
    cr_assert (strstr (tako_store_error (store), "code"));
    json_decref (job);
    job = json_pack ("{s:s, s:s}", "code", "x", "priority", "high");
    cr_assert (tako_store_job_insert (store, job, &outcome, &job_id, &status) == -1);
    cr_assert (strstr (tako_store_error (store), "priority"));
    json_decref (job);
    cr_assert (job_id == NULL && status == NULL);
}

Test (store, list_filters_and_pages)
{
    for (int i = 0; i < 5; i++)
        free (job_insert ("pass", i < 3? "alpha": "beta", NULL, NULL, TAKO_STORE_CREATED));
    json_t *page = NULL;
    cr_assert (tako_store_job_list (store, NULL, NULL, 2, 0, false, &page) == 0);
    cr_assert_eq (json_array_size (json_object_get (page, "items")), 2);
    cr_assert (json_is_true (json_object_get (page, "has_more")));
    cr_assert_eq (json_integer_value (json_object_get (page, "count")), 2);
    cr_assert_eq (json_integer_value (json_object_get (page, "limit")), 2);
    json_decref (page);

    cr_assert (tako_store_job_list (store, NULL, NULL, 2, 4, false, &page) == 0);
    cr_assert_eq (json_array_size (json_object_get (page, "items")), 1);
    cr_assert (json_is_false (json_object_get (page, "has_more")));
    json_decref (page);

    cr_assert (tako_store_job_list (store, "queued", "alpha", 100, 0, true, &page) == 0);
    cr_assert_eq (json_array_size (json_object_get (page, "items")), 3);
    cr_assert (json_object_get (json_array_get (json_object_get (page, "items"), 0), "input_artifacts"));
    json_decref (page);

    cr_assert (tako_store_job_list (store, "running", NULL, 100, 0, false, &page) == 0);
    cr_assert_eq (json_array_size (json_object_get (page, "items")), 0);
    json_decref (page);

    cr_assert (tako_store_job_list (store, NULL, NULL, 1001, 0, false, &page) == -1);
    cr_assert (tako_store_job_list (store, NULL, NULL, 10, -1, false, &page) == -1);
}

Test (store, idempotency_same_payload_returns_existing)
{
    char *first = job_insert ("x = 1", "default", "key-1", "fp-a", TAKO_STORE_CREATED);
    char *second = job_insert ("x = 1", "default", "key-1", "fp-a", TAKO_STORE_EXISTING);
    cr_assert_str_eq (first, second);
    char *conflict = job_insert ("x = 2", "default", "key-1", "fp-b", TAKO_STORE_CONFLICT);
    cr_assert_str_eq (conflict, first, "the conflict names the existing job");
    free (first);
    free (second);
    free (conflict);
}

typedef struct {
    tako_store_t *store;
    pthread_barrier_t *barrier;
    tako_store_outcome_t outcome;
    char *job_id;
} racer_t;

static void *
racer_run (void *arg)
{
    racer_t *racer = arg;
    json_t *job = json_pack ("{s:s, s:s, s:s}", "code", "race()", "idempotency_key", "race-key",
                             "payload_fingerprint", "same");
    char *status = NULL;
    pthread_barrier_wait (racer->barrier);
    if (tako_store_job_insert (racer->store, job, &racer->outcome, &racer->job_id, &status))
        racer->outcome = TAKO_STORE_STALE;     //  any failure fails the test
    free (status);
    json_decref (job);
    return NULL;
}

Test (store, concurrent_inserts_of_one_key_make_one_job)
{
    pthread_barrier_t barrier;
    pthread_barrier_init (&barrier, NULL, 2);
    racer_t racers [2] = {
        { store_open (), &barrier, TAKO_STORE_STALE, NULL },
        { store_open (), &barrier, TAKO_STORE_STALE, NULL }
    };
    pthread_t threads [2];
    for (int i = 0; i < 2; i++)
        pthread_create (&threads [i], NULL, racer_run, &racers [i]);
    for (int i = 0; i < 2; i++)
        pthread_join (threads [i], NULL);
    cr_assert (racers [0].job_id && racers [1].job_id);
    cr_assert_str_eq (racers [0].job_id, racers [1].job_id);
    int created = (racers [0].outcome == TAKO_STORE_CREATED) + (racers [1].outcome == TAKO_STORE_CREATED);
    int existing = (racers [0].outcome == TAKO_STORE_EXISTING) + (racers [1].outcome == TAKO_STORE_EXISTING);
    cr_assert (created == 1 && existing == 1);
    json_t *page = NULL;
    cr_assert (tako_store_job_list (store, NULL, NULL, 10, 0, false, &page) == 0);
    cr_assert_eq (json_array_size (json_object_get (page, "items")), 1);
    json_decref (page);
    for (int i = 0; i < 2; i++) {
        free (racers [i].job_id);
        tako_store_destroy (&racers [i].store);
    }
    pthread_barrier_destroy (&barrier);
}

Test (store, transitions_are_guarded)
{
    char *job_id = job_insert ("print(1)", "default", NULL, NULL, TAKO_STORE_CREATED);
    job_start (job_id, 2, TAKO_STORE_STALE);        //  wrong attempt
    job_start (job_id, 1, TAKO_STORE_APPLIED);
    job_start (job_id, 1, TAKO_STORE_STALE);        //  already running
    json_t *job = job_get (job_id, false);
    cr_assert_str_eq (field_string (job, "status"), "running");
    cr_assert (json_is_string (json_object_get (job, "started_at")));
    json_decref (job);

    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_lease_renew (store, job_id, 1, "lease-1", 60, &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_APPLIED);
    cr_assert (tako_store_job_lease_renew (store, job_id, 1, "other-lease", 60, &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_STALE);

    cr_assert_eq (job_finish (job_id, 1, "succeeded", "first"), TAKO_STORE_APPLIED);
    //  The same attempt again, even with other content: nothing changes.
    cr_assert_eq (job_finish (job_id, 1, "failed", "second"), TAKO_STORE_DUPLICATE);
    job = job_get (job_id, true);
    cr_assert_str_eq (field_string (job, "status"), "succeeded");
    cr_assert_str_eq (field_string (job, "stdout"), "first");
    cr_assert_eq (json_integer_value (json_object_get (json_object_get (job, "output"), "answer")), 42);
    cr_assert (json_is_null (json_object_get (job, "error")));
    cr_assert (json_is_integer (json_object_get (job, "duration_ms")));
    cr_assert (json_is_string (json_object_get (job, "ended_at")));
    json_decref (job);

    //  A terminal job cannot be requeued, cancelled or finished again.
    cr_assert (tako_store_job_requeue (store, job_id, 1, &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_STALE);
    cr_assert (tako_store_job_cancel (store, job_id, &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_STALE);
    cr_assert_eq (job_finish (job_id, 2, "failed", "late"), TAKO_STORE_STALE);
    cr_assert_eq (job_finish ("no-such-job", 1, "failed", ""), TAKO_STORE_NOT_FOUND);

    json_t *bad = json_pack ("{s:s}", "status", "running");
    cr_assert (tako_store_job_finish (store, job_id, 1, bad, NULL, 0, &outcome, NULL) == -1);
    json_decref (bad);
    free (job_id);
}

//  The record job.finish hands back is the one a read after it returns;
//  a result that does not apply hands back none.
Test (store, finish_returns_the_record_it_wrote)
{
    char *job_id = job_insert ("print(1)", "default", NULL, NULL, TAKO_STORE_CREATED);
    job_start (job_id, 1, TAKO_STORE_APPLIED);
    json_t *result = json_pack ("{s:s, s:i, s:s, s:s, s:{s:i}, s:{s:i}, s:i}",
                                "status", "failed", "exit_code", 3, "stdout", "out",
                                "stderr", "err", "output", "answer", 7,
                                "timing", "total_ms", 9, "duration_ms", 12);
    tako_store_outcome_t outcome;
    json_t *record = NULL;
    cr_assert (tako_store_job_finish (store, job_id, 1, result, NULL, 0, &outcome, &record) == 0,
               "%s", tako_store_error (store));
    cr_assert_eq (outcome, TAKO_STORE_APPLIED);
    cr_assert (json_is_object (record));
    json_t *read = job_get (job_id, false);
    char *written = json_dumps (record, JSON_SORT_KEYS | JSON_COMPACT);
    char *again = json_dumps (read, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_str_eq (written, again);
    cr_assert_str_eq (field_string (record, "status"), "failed");
    cr_assert_eq (json_integer_value (json_object_get (record, "exit_code")), 3);
    cr_assert_eq (json_integer_value (json_object_get (record, "duration_ms")), 12);
    cr_assert (json_is_string (json_object_get (record, "ended_at")));
    free (written);
    free (again);
    json_decref (read);
    json_decref (record);

    json_t *before = json_object ();
    record = before;
    cr_assert (tako_store_job_finish (store, job_id, 1, result, NULL, 0, &outcome, &record) == 0);
    cr_assert_eq (outcome, TAKO_STORE_DUPLICATE);
    cr_assert_null (record);
    json_decref (before);
    json_decref (result);
    free (job_id);
}

Test (store, requeue_increments_attempt)
{
    char *job_id = job_insert ("print(1)", "default", NULL, NULL, TAKO_STORE_CREATED);
    job_start (job_id, 1, TAKO_STORE_APPLIED);
    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_requeue (store, job_id, 1, &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_APPLIED);
    cr_assert (tako_store_job_requeue (store, job_id, 1, &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_STALE, "a second requeue of attempt 1 changes nothing");
    json_t *payload = NULL;
    cr_assert (tako_store_job_payload (store, job_id, &payload) == 0);
    cr_assert_str_eq (field_string (payload, "status"), "queued");
    cr_assert_eq (json_integer_value (json_object_get (payload, "attempt")), 2);
    cr_assert (json_is_null (json_object_get (payload, "lease_id")));
    json_decref (payload);
    //  The lost executor's late result for attempt 1 is stale.
    cr_assert_eq (job_finish (job_id, 1, "succeeded", "late"), TAKO_STORE_STALE);
    job_start (job_id, 2, TAKO_STORE_APPLIED);
    cr_assert_eq (job_finish (job_id, 2, "succeeded", "ok"), TAKO_STORE_APPLIED);
    free (job_id);
}

Test (store, cancel_queue_position_and_recovery)
{
    char *first = job_insert ("a", "default", NULL, NULL, TAKO_STORE_CREATED);
    char *second = job_insert ("b", "default", NULL, NULL, TAKO_STORE_CREATED);
    char *third = job_insert ("c", "default", NULL, NULL, TAKO_STORE_CREATED);
    int64_t position = -1;
    cr_assert (tako_store_job_queue_position (store, second, &position) == 0);
    cr_assert_eq (position, 2);
    job_start (first, 1, TAKO_STORE_APPLIED);
    cr_assert (tako_store_job_queue_position (store, second, &position) == 0);
    cr_assert_eq (position, 1);
    cr_assert (tako_store_job_queue_position (store, first, &position) == 0);
    cr_assert_eq (position, 0, "running jobs have no queue position");

    json_t *counts = NULL;
    cr_assert (tako_store_job_counts (store, &counts) == 0);
    cr_assert_eq (json_integer_value (json_object_get (counts, "queued")), 2);
    cr_assert_eq (json_integer_value (json_object_get (counts, "running")), 1);
    json_decref (counts);

    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_cancel (store, third, &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_APPLIED);
    cr_assert (tako_store_job_cancel (store, "no-such-job", &outcome) == 0);
    cr_assert_eq (outcome, TAKO_STORE_NOT_FOUND);
    json_t *job = job_get (third, false);
    cr_assert_str_eq (field_string (job, "status"), "cancelled");
    cr_assert_str_eq (field_string (json_object_get (job, "error"), "type"), "cancelled");
    json_decref (job);

    json_t *unfinished = NULL;
    cr_assert (tako_store_jobs_unfinished (store, &unfinished) == 0);
    cr_assert_eq (json_array_size (unfinished), 2);
    cr_assert (json_object_get (json_array_get (unfinished, 0), "code") == NULL);
    json_decref (unfinished);
    free (first);
    free (second);
    free (third);
}

Test (store, ttl_cleanup_deletes_only_old_finished_jobs)
{
    char *old_done = job_insert ("a", "default", NULL, NULL, TAKO_STORE_CREATED);
    char *old_queued = job_insert ("b", "default", NULL, NULL, TAKO_STORE_CREATED);
    char *new_done = job_insert ("c", "default", NULL, NULL, TAKO_STORE_CREATED);
    job_start (old_done, 1, TAKO_STORE_APPLIED);
    json_t *result = json_pack ("{s:s}", "status", "succeeded");
    tako_store_artifact_t artifact = { "out.txt", "text/plain", "x", 1 };
    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_finish (store, old_done, 1, result, &artifact, 1, &outcome, NULL) == 0);
    job_start (new_done, 1, TAKO_STORE_APPLIED);
    cr_assert_eq (job_finish (new_done, 1, "failed", ""), TAKO_STORE_APPLIED);
    json_decref (result);

    char sql [256];
    snprintf (sql, sizeof sql, "UPDATE %s.executions SET created_at = now () - interval '40 days'"
              " WHERE id IN ('%s', '%s')", schema, old_done, old_queued);
    admin_exec (sql);

    int64_t deleted = -1;
    cr_assert (tako_store_cleanup (store, 0, &deleted) == 0);
    cr_assert_eq (deleted, 0, "ttl 0 keeps everything");
    cr_assert (tako_store_cleanup (store, 30, &deleted) == 0);
    cr_assert_eq (deleted, 1);
    json_t *job = job_get (old_done, false);
    cr_assert (job == NULL);
    json_t *list = NULL;
    cr_assert (tako_store_artifact_list (store, old_done, &list) == 0);
    cr_assert_eq (json_array_size (list), 0, "artifacts went with their job");
    json_decref (list);
    job = job_get (old_queued, false);
    cr_assert (job, "unfinished jobs are never cleaned up");
    json_decref (job);
    job = job_get (new_done, false);
    cr_assert (job);
    json_decref (job);
    free (old_done);
    free (old_queued);
    free (new_done);
}

//  ---------------------------------------------------------------------
//  Artifacts

Test (store, artifacts_round_trip_binary)
{
    char *job_id = job_insert ("open('/output/a.bin','wb')", "default", NULL, NULL, TAKO_STORE_CREATED);
    job_start (job_id, 1, TAKO_STORE_APPLIED);
    const unsigned char bytes [] = { 0x00, 0x01, 0xff, 0x00, 'a', 0x00 };
    tako_store_artifact_t artifacts [] = {
        { "a.bin", NULL, bytes, sizeof bytes },
        { "empty.txt", "text/plain", NULL, 0 }
    };
    json_t *result = json_pack ("{s:s}", "status", "succeeded");
    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_finish (store, job_id, 1, result, artifacts, 2, &outcome, NULL) == 0,
               "%s", tako_store_error (store));
    cr_assert_eq (outcome, TAKO_STORE_APPLIED);
    json_decref (result);

    json_t *meta = NULL;
    void *data = NULL;
    size_t size = 0;
    cr_assert (tako_store_artifact_get (store, job_id, "a.bin", &meta, &data, &size) == 0);
    cr_assert (meta);
    cr_assert_eq (size, sizeof bytes);
    cr_assert (memcmp (data, bytes, size) == 0);
    cr_assert_eq (json_integer_value (json_object_get (meta, "size_bytes")), 6);
    cr_assert_str_eq (field_string (meta, "content_type"), "application/octet-stream");
    //  sha256 of 00 01 ff 00 61 00, as computed by `sha256sum`.
    cr_assert_str_eq (field_string (meta, "sha256"),
        "240b28368de402cca6a76475ae910302d407bed71618f611dcdcd96b0856281e");
    json_decref (meta);
    free (data);

    cr_assert (tako_store_artifact_get (store, job_id, "_code.py", &meta, &data, &size) == 0);
    cr_assert (meta);
    cr_assert_eq (size, strlen ("open('/output/a.bin','wb')"));
    cr_assert (memcmp (data, "open(", 5) == 0);
    json_decref (meta);
    free (data);

    cr_assert (tako_store_artifact_get (store, job_id, "_input.json", &meta, &data, &size) == 0);
    cr_assert (meta);
    cr_assert (size > 0 && ((char *) data) [0] == '{');
    json_decref (meta);
    free (data);

    cr_assert (tako_store_artifact_get (store, job_id, "missing", &meta, &data, &size) == 0);
    cr_assert (meta == NULL && data == NULL && size == 0);

    json_t *list = NULL;
    cr_assert (tako_store_artifact_list (store, job_id, &list) == 0);
    cr_assert_eq (json_array_size (list), 2);
    cr_assert_str_eq (field_string (json_array_get (list, 0), "name"), "a.bin");
    json_decref (list);

    json_t *job = job_get (job_id, true);
    cr_assert_eq (json_array_size (json_object_get (job, "artifacts")), 2);
    json_decref (job);
    free (job_id);
}

//  ---------------------------------------------------------------------
//  Dead letters

static char *
dlq_insert (const char *error_type)
{
    json_t *entry = json_pack ("{s:s, s:{s:s, s:{}, s:s}, s:s, s:s, s:i, s:s}",
                               "job_id", "job-1", "job_data", "code", "print(1)",
                               "input_data", "job_type", "default", "error_type", error_type,
                               "error_message", "executor lost", "retry_count", 2,
                               "correlation_id", "corr-1");
    char *entry_id = NULL;
    cr_assert (tako_store_dlq_insert (store, entry, &entry_id) == 0, "%s", tako_store_error (store));
    json_decref (entry);
    return entry_id;
}

Test (store, dlq_list_stats_remove)
{
    char *first = dlq_insert ("internal_error");
    free (dlq_insert ("internal_error"));
    free (dlq_insert ("service_unavailable"));

    json_t *stats = NULL;
    cr_assert (tako_store_dlq_stats (store, &stats) == 0);
    cr_assert_eq (json_integer_value (json_object_get (stats, "total")), 3);
    json_t *by_type = json_object_get (stats, "by_error_type");
    cr_assert_eq (json_integer_value (json_object_get (by_type, "internal_error")), 2);
    cr_assert_eq (json_integer_value (json_object_get (by_type, "service_unavailable")), 1);
    json_decref (stats);

    json_t *page = NULL;
    cr_assert (tako_store_dlq_list (store, "internal_error", 1, 0, &page) == 0);
    cr_assert_eq (json_array_size (json_object_get (page, "items")), 1);
    cr_assert (json_is_true (json_object_get (page, "has_more")));
    json_t *item = json_array_get (json_object_get (page, "items"), 0);
    cr_assert_str_eq (field_string (json_object_get (item, "job_data"), "code"), "print(1)");
    cr_assert_eq (json_integer_value (json_object_get (item, "retry_count")), 2);
    json_decref (page);

    json_t *entry = NULL;
    cr_assert (tako_store_dlq_get (store, first, &entry) == 0);
    cr_assert (entry);
    cr_assert_str_eq (field_string (entry, "id"), first);
    json_decref (entry);

    bool removed = false;
    cr_assert (tako_store_dlq_remove (store, first, &removed) == 0);
    cr_assert (removed);
    cr_assert (tako_store_dlq_remove (store, first, &removed) == 0);
    cr_assert (!removed);
    cr_assert (tako_store_dlq_remove (store, "not-a-uuid", &removed) == 0);
    cr_assert (!removed);
    cr_assert (tako_store_dlq_get (store, first, &entry) == 0);
    cr_assert (entry == NULL);
    cr_assert (tako_store_dlq_stats (store, &stats) == 0);
    cr_assert_eq (json_integer_value (json_object_get (stats, "total")), 2);
    json_decref (stats);
    free (first);
}

//  ---------------------------------------------------------------------
//  Job versions

static void
version_register (const char *digest, const char *job_type, const char *tag)
{
    char job_ref [128];
    snprintf (job_ref, sizeof job_ref, "%s@sha256:%.12s", job_type, digest);
    json_t *version = json_pack ("{s:s, s:s, s:s, s:s}", "digest", digest, "job_type", job_type,
                                 "job_ref", job_ref, "built_by", "builder-1");
    if (tag)
        json_object_set_new (version, "version_tag", json_string (tag));
    cr_assert (tako_store_version_register (store, version) == 0, "%s", tako_store_error (store));
    json_decref (version);
}

Test (store, versions_lookup_by_prefix)
{
    const char *one = "abc1230000000000000000000000000000000000000000000000000000000001";
    const char *two = "abc1240000000000000000000000000000000000000000000000000000000002";
    version_register (one, "numpy", "v1");
    version_register (two, "numpy", NULL);
    version_register (one, "numpy", NULL);     //  again: kept, tag kept

    json_t *version = NULL;
    cr_assert (tako_store_version_lookup (store, one, &version) == 0);
    cr_assert_str_eq (field_string (version, "digest"), one);
    cr_assert_str_eq (field_string (version, "version_tag"), "v1");
    json_decref (version);

    cr_assert (tako_store_version_lookup (store, "sha256:ABC124", &version) == 0);
    cr_assert (version);
    cr_assert_str_eq (field_string (version, "digest"), two);
    json_decref (version);

    cr_assert (tako_store_version_lookup (store, "numpy@sha256:abc123000000", &version) == 0);
    cr_assert_str_eq (field_string (version, "digest"), one);
    json_decref (version);
    cr_assert (tako_store_version_lookup (store, "pandas@sha256:abc123000000", &version) == 0);
    cr_assert (version == NULL);

    cr_assert (tako_store_version_lookup (store, "abc12", &version) == -1, "too short");
    cr_assert (tako_store_version_lookup (store, "abc12x", &version) == -1, "not hex");
    cr_assert (tako_store_version_lookup (store, "abc12%", &version) == -1, "no LIKE patterns");
    cr_assert (tako_store_version_lookup (store, "abc12a", &version) == 0);
    cr_assert (version == NULL, "no such prefix");
    //  A third digest shares the prefix abc124: that prefix is ambiguous.
    version_register ("abc1240000000000000000000000000000000000000000000000000000000003", "numpy", NULL);
    cr_assert (tako_store_version_lookup (store, "abc124", &version) == -1);
    cr_assert (strstr (tako_store_error (store), "ambiguous"));

    json_t *list = NULL;
    cr_assert (tako_store_version_list (store, "numpy", &list) == 0);
    cr_assert_eq (json_array_size (list), 3);
    json_decref (list);
    cr_assert (tako_store_version_list (store, "pandas", &list) == 0);
    cr_assert_eq (json_array_size (list), 0);
    json_decref (list);

    json_t *bad = json_pack ("{s:s, s:s, s:s}", "digest", "abc", "job_type", "x", "job_ref", "x@y");
    cr_assert (tako_store_version_register (store, bad) == -1);
    json_decref (bad);
}

//  ---------------------------------------------------------------------
//  The server goes away and comes back (a private cluster: stopping the
//  shared one would break the tests running beside this one).

Test (store, database_down_is_unavailable_then_reconnects)
{
    char dir [1024], data_dir [1200];
    build_dir (dir, sizeof dir);
    snprintf (data_dir, sizeof data_dir, "%s/unit-store-down-%d", dir, (int) getpid ());
    tako_pgcluster_t *cluster = tako_pgcluster_new (data_dir);
    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    tako_store_t *own = tako_store_new (tako_pgcluster_url (cluster));
    cr_assert (tako_store_connect (own) == 0);
    cr_assert (tako_store_migrate (own) == 0, "%s", tako_store_error (own));

    cr_assert (tako_pgcluster_stop (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    json_t *job = NULL;
    cr_assert (tako_store_job_get (own, "any", false, &job) == -1);
    cr_assert (job == NULL);
    cr_assert (tako_store_unavailable (own));
    cr_assert_str_eq (tako_store_error (own), "database unavailable");
    cr_assert (tako_store_connect (own) == -1);
    cr_assert (tako_store_unavailable (own));
    cr_assert_geq (tako_store_retry_delay_ms (own), TAKO_STORE_RETRY_DELAY_FIRST_MS);

    cr_assert (tako_pgcluster_start (cluster) == 0, "%s", tako_pgcluster_error (cluster));
    cr_assert (tako_store_connect (own) == 0, "%s", tako_store_error (own));
    cr_assert (tako_store_job_get (own, "any", false, &job) == 0);
    cr_assert (job == NULL);
    cr_assert (!tako_store_unavailable (own));
    cr_assert_eq (tako_store_retry_delay_ms (own), TAKO_STORE_RETRY_DELAY_FIRST_MS);

    tako_store_destroy (&own);
    cr_assert (tako_pgcluster_stop (cluster) == 0);
    tako_pgcluster_destroy (&cluster);
    char command [1300];
    snprintf (command, sizeof command, "rm -rf '%s'", data_dir);
    cr_assert (system (command) == 0);
}

//  A program may print NUL bytes; PostgreSQL text and jsonb cannot hold
//  them. The result is still recorded, with U+FFFD in their place.
Test (store, nul_bytes_in_results_are_replaced)
{
    char *job_id = job_insert ("print('\\0')", "default", NULL, NULL, TAKO_STORE_CREATED);
    job_start (job_id, 1, TAKO_STORE_APPLIED);
    json_t *result = json_pack ("{s:s, s:s%, s:{s:s%}}", "status", "succeeded",
                                "stdout", "a\0b", (size_t) 3, "output", "value", "\0", (size_t) 1);
    tako_store_outcome_t outcome;
    cr_assert (tako_store_job_finish (store, job_id, 1, result, NULL, 0, &outcome, NULL) == 0,
               "%s", tako_store_error (store));
    cr_assert_eq (outcome, TAKO_STORE_APPLIED);
    json_decref (result);
    json_t *job = job_get (job_id, false);
    cr_assert_str_eq (field_string (job, "stdout"), "a\xEF\xBF\xBD" "b");
    cr_assert_str_eq (field_string (json_object_get (job, "output"), "value"), "\xEF\xBF\xBD");
    json_decref (job);
    free (job_id);
}

Test (store, empty_schema_is_version_0)
{
    char sql [256];
    snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE; CREATE SCHEMA %s", schema, schema);
    admin_exec (sql);
    cr_assert_eq (tako_store_schema_version (store), 0);
    cr_assert (tako_store_migrate (store) == 0);
    cr_assert_geq (tako_store_schema_version (store), 1);
}
