/*  The builder actor with a real recorder (PostgreSQL, a schema of its
    own) and a real broker: a BUILD registers the version, which the
    recorder then finds by digest, by job_ref and by job type. The pip
    side is covered by tests/integration/test_builder.py; here the job
    type is the built-in default (no requirements: no pip).             */

#include <criterion/criterion.h>
#include <ftw.h>
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
#include "actors/builder/tako_builder.h"

#define TEST_TIMEOUT_SECONDS 120
#define BEAT_MS   100
#define WAIT_MS   10000
#define URL_SIZE  2048

static char base_url [URL_SIZE];
static char url [URL_SIZE + 128];
static char schema [64];
static char data_dir [] = "/tmp/tako-test-builder-XXXXXX";
static PGconn *admin;
static tako_config_t *config;
static zactor_t *broker;
static char *endpoint;
static zactor_t *recorder;
static zactor_t *builder;
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
    char exe [1024], cluster_dir [1100];
    ssize_t length = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert (length > 0);
    exe [length] = 0;
    snprintf (cluster_dir, sizeof cluster_dir, "%s/unit-pg", dirname (exe));
    tako_pgcluster_t *cluster = tako_pgcluster_new (cluster_dir);
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

static int
remove_entry (const char *path, const struct stat *info, int flag, struct FTW *walk)
{
    (void) info; (void) flag; (void) walk;
    remove (path);
    return 0;
}

static void
setup (void)
{
    base_url_find ();
    admin = PQconnectdb (base_url);
    cr_assert (PQstatus (admin) == CONNECTION_OK, "%s", PQerrorMessage (admin));
    admin_exec ("SET client_min_messages = warning");
    snprintf (schema, sizeof schema, "builder_%d_%ld", (int) getpid (), (long) time (NULL));
    char sql [256];
    snprintf (sql, sizeof sql, "CREATE SCHEMA %s", schema);
    admin_exec (sql);
    if (strstr (base_url, "://"))
        snprintf (url, sizeof url, "%s%soptions=-csearch_path%%3D%s", base_url,
                  strchr (base_url, '?')? "&": "?", schema);
    else
        snprintf (url, sizeof url, "%s options='-csearch_path=%s'", base_url, schema);

    cr_assert_not_null (mkdtemp (data_dir));
    config = tako_config_new ();
    cr_assert_not_null (config);
    free (config->data_dir);
    config->data_dir = strdup (data_dir);
    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", BEAT_MS, 3, NULL };
    broker = zactor_new (tako_broker_actor, &broker_args);
    endpoint = tako_broker_endpoint (broker);
    cr_assert_not_null (endpoint);
    tako_heartbeat_t beat = { BEAT_MS, 3 };
    actor_args = (tako_actor_args_t) {
        .config = config, .broker_endpoint = endpoint, .database_url = url, .heartbeat = beat,
        .events_endpoint = "tcp://127.0.0.1:1"      //  no hub: events go nowhere
    };
    recorder = zactor_new (tako_recorder_actor, &actor_args);
    builder = zactor_new (tako_builder_actor, &actor_args);
    client = tako_peer_new_client (endpoint, "test", &beat);
    cr_assert (recorder && builder && client);
}

static void
teardown (void)
{
    tako_peer_destroy (&client);
    zactor_destroy (&builder);
    zactor_destroy (&recorder);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    tako_config_destroy (&config);
    nftw (data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (admin && PQstatus (admin) == CONNECTION_OK && *schema) {
        char sql [256];
        snprintf (sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
        PQclear (PQexec (admin, sql));
    }
    PQfinish (admin);
    admin = NULL;
}

TestSuite (builder, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_SECONDS);

//  ---------------------------------------------------------------------
//  Helpers

//  The answer to request_id (REPLY, BUILT or ERROR); NULL on timeout.
static tako_msg_t *
answer_wait (const char *request_id)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
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

//  Send msg (taken) with a fresh request id until the broker routes it
//  (the service may not have registered yet); the answer.
static tako_msg_t *
ask (tako_msg_t *(*make) (const char *, const char *), const char *argument)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (zclock_mono () < deadline) {
        char request_id [32];
        snprintf (request_id, sizeof request_id, "r-%d", ++request_count);
        tako_msg_t *msg = make (argument, request_id);
        cr_assert_eq (tako_peer_send (client, &msg), 0);
        tako_msg_t *answer = answer_wait (request_id);
        cr_assert_not_null (answer, "no answer within %d ms", WAIT_MS);
        if (!(streq (tako_msg_command (answer), "ERROR") && *tako_msg_address (answer) == 0))
            return answer;
        tako_msg_destroy (&answer);
        zclock_sleep (BEAT_MS);         //  pacing between polls
    }
    cr_assert_fail ("the service did not register within %d ms", WAIT_MS);
    return NULL;
}

static tako_msg_t *
make_build (const char *version_tag, const char *request_id)
{
    tako_msg_t *msg = tako_msg_new ("BUILD");
    tako_msg_set_address (msg, "builder");
    tako_msg_set_str (msg, "request_id", request_id);
    tako_msg_set_str (msg, "job_type", "default");
    tako_msg_set_str (msg, "version_tag", version_tag);
    return msg;
}

//  argument: "QUERY-NAME PARAMS-JSON"
static tako_msg_t *
make_recorder_query (const char *argument, const char *request_id)
{
    const char *space = strchr (argument, ' ');
    char *query = strndup (argument, (size_t) (space - argument));
    json_t *params = json_loads (space + 1, 0, NULL);
    cr_assert (query && params);
    tako_msg_t *msg = tako_msg_new ("QUERY");
    tako_msg_set_address (msg, "recorder");
    tako_msg_set_str (msg, "request_id", request_id);
    tako_msg_set_str (msg, "query", query);
    tako_msg_set_object (msg, "params", params);
    json_decref (params);
    free (query);
    return msg;
}

//  The version the recorder has for this digest with this tag, waiting
//  for the builder's registration (it does not wait for it to answer).
static json_t *
version_wait (const char *digest, const char *version_tag)
{
    char *argument = zsys_sprintf ("version.lookup {\"digest\": \"%s\"}", digest);
    json_t *version = NULL;
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (!version && zclock_mono () < deadline) {
        tako_msg_t *reply = ask (make_recorder_query, argument);
        json_t *result = tako_msg_object (reply, "result");
        const char *tag = json_string_value (json_object_get (result, "version_tag"));
        if (tako_msg_int (reply, "code", 0) == 200 && tag && streq (tag, version_tag))
            version = json_deep_copy (result);
        tako_msg_destroy (&reply);
        if (!version)
            zclock_sleep (BEAT_MS);     //  pacing between polls
    }
    zstr_free (&argument);
    cr_assert_not_null (version, "version %s (%s) not registered", digest, version_tag);
    return version;
}

//  ---------------------------------------------------------------------
//  Tests

Test (builder, build_registers_the_version_with_the_recorder)
{
    tako_msg_t *built = ask (make_build, "v1");
    cr_assert_str_eq (tako_msg_command (built), "BUILT", "%s",
                      tako_msg_str (built, "reason")? tako_msg_str (built, "reason"): "");
    cr_assert_str_eq (tako_msg_str (built, "status"), "built");
    cr_assert_str_eq (tako_msg_str (built, "version_tag"), "v1");
    char *digest = strdup (tako_msg_str (built, "digest"));
    char *job_ref = strdup (tako_msg_str (built, "job_ref"));
    tako_msg_destroy (&built);

    json_t *version = version_wait (digest, "v1");
    cr_assert_str_eq (json_string_value (json_object_get (version, "job_ref")), job_ref);
    cr_assert_str_eq (json_string_value (json_object_get (version, "job_type")), "default");
    const char *built_by = json_string_value (json_object_get (version, "built_by"));
    cr_assert (built_by && strncmp (built_by, "builder.", 8) == 0, "built_by %s", built_by);
    cr_assert_not_null (json_object_get (version, "requirements_hash"));
    json_decref (version);

    //  By job_ref too, and in the job type's list.
    char *argument = zsys_sprintf ("version.lookup {\"digest\": \"%s\"}", job_ref);
    tako_msg_t *reply = ask (make_recorder_query, argument);
    cr_assert_eq (tako_msg_int (reply, "code", 0), 200);
    tako_msg_destroy (&reply);
    zstr_free (&argument);
    reply = ask (make_recorder_query, "version.list {\"job_type\": \"default\"}");
    json_t *versions = json_object_get (tako_msg_object (reply, "result"), "versions");
    cr_assert_eq (json_array_size (versions), 1);
    tako_msg_destroy (&reply);

    //  A second build is cached, same version, and takes the new tag.
    built = ask (make_build, "v2");
    cr_assert_str_eq (tako_msg_command (built), "BUILT");
    cr_assert (tako_msg_bool (built, "cached", false));
    cr_assert_str_eq (tako_msg_str (built, "digest"), digest);
    cr_assert_str_eq (tako_msg_str (built, "job_ref"), job_ref);
    tako_msg_destroy (&built);
    version = version_wait (digest, "v2");
    json_decref (version);

    free (digest);
    free (job_ref);
}
