/*  http_routes — the REST API's routes and their handlers (docs/rest.md).

    Each handler checks what the client sent, asks one service at a time
    (scheduler, recorder, dlq) and shapes the answer into the Tako VM
    response. The same table drives the router and /openapi.json, so the
    two cannot disagree.                                                  */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http_internal.h"
#include "sandbox_runtime.h"
#include "tako_version.h"
#include "tako_envbuild.h"
#include "tako_envspec.h"

//  --------------------------------------------------------------------------
//  Helpers

static const char *
query_arg (http_conn_t *conn, const char *name)
{
    return MHD_lookup_connection_value (conn->connection, MHD_GET_ARGUMENT_KIND, name);
}

//  view=full or no view; anything else is a 422 (answered here).
static bool
view_parse (http_conn_t *conn)
{
    const char *view = query_arg (conn, "view");
    if (view && !streq (view, "full") && !streq (view, "basic")) {
        http_respond_detail (conn, 422, "view must be full or basic");
        return false;
    }
    conn->full_view = view && streq (view, "full");
    return true;
}

static bool
job_id_take (http_conn_t *conn, const char *id)
{
    if (!tako_httpreq_id_valid (id)) {
        http_respond_detail (conn, 404, "Job not found");
        return false;
    }
    snprintf (conn->job_id, sizeof conn->job_id, "%s", id);
    return true;
}

static json_t *
answer_result (tako_msg_t *answer)
{
    json_t *result = answer? tako_msg_object (answer, "result"): NULL;
    return result? json_incref (result): json_object ();
}

//  Pass a service's 200 result through, or its failure.
static void
relay (http_conn_t *conn, tako_msg_t *answer, const char *service)
{
    if (http_answer_code (answer) == 200)
        http_respond_json (conn, 200, answer_result (answer));
    else
        http_respond_failure (conn, answer, service);
}

static void relay_scheduler (http_conn_t *conn, tako_msg_t *answer) { relay (conn, answer, "scheduler"); }
static void relay_recorder (http_conn_t *conn, tako_msg_t *answer) { relay (conn, answer, "recorder"); }
static void relay_dlq (http_conn_t *conn, tako_msg_t *answer) { relay (conn, answer, "dlq"); }

static void
respond_not_found (http_conn_t *conn, tako_msg_t *answer, const char *what, const char *service)
{
    if (http_answer_code (answer) == 404)
        http_respond_detail (conn, 404, what);
    else
        http_respond_failure (conn, answer, service);
}

//  --------------------------------------------------------------------------
//  POST /execute, /execute/async

static json_t *
sync_shape (json_t *record)
{
    const char *status = json_string_value (json_object_get (record, "status"));
    json_t *duration = json_object_get (record, "duration_ms");
    double seconds = json_is_integer (duration)? (double) json_integer_value (duration) / 1000.0: 0.0;
    json_t *body = json_pack ("{s:b, s:s?}", "success", status && streq (status, "succeeded"),
                              "job_id", json_string_value (json_object_get (record, "execution_id")));
    const char *copied [] = { "output", "stdout", "stderr", "exit_code", "error", "job_type", "status" };
    for (size_t i = 0; i < sizeof copied / sizeof copied [0]; i++) {
        json_t *value = json_object_get (record, copied [i]);
        json_object_set (body, copied [i], value? value: json_null ());
    }
    json_object_set_new (body, "execution_time", json_real (seconds));
    return body;
}

static void
execute_ended (http_conn_t *conn, tako_msg_t *answer)
{
    if (!answer) {
        json_t *body = json_pack ("{s:s, s:s}", "detail", "Job did not finish within the wait",
                                  "job_id", conn->job_id);
        http_respond_json (conn, 408, body);
        return;
    }
    if (http_answer_code (answer) != 200) {
        http_respond_failure (conn, answer, "recorder");
        return;
    }
    http_respond_json (conn, 200, sync_shape (tako_msg_object (answer, "result")));
}

//  The longest a sync execute waits: the job's timeouts plus the queue.
static int64_t
execute_deadline (http_conn_t *conn)
{
    tako_config_t *config = http_config (conn->server);
    const char *name = json_string_value (json_object_get (conn->context, "job_type"));
    const tako_config_job_type_t *job_type = tako_config_job_type (config, name? name: "default");
    json_t *timeout = json_object_get (conn->context, "timeout");
    json_t *startup = json_object_get (conn->context, "startup_timeout");
    int64_t seconds = json_is_integer (timeout)? json_integer_value (timeout)
                    : job_type? job_type->timeout: config->default_timeout;
    seconds += json_is_integer (startup)? json_integer_value (startup)
             : job_type? job_type->startup_timeout: config->default_startup_timeout;
    if (seconds < 0 || seconds > 100000)
        seconds = 100000;
    return zclock_mono () + seconds * 1000 + HTTP_EXECUTE_QUEUE_MS;
}

static void
execute_accepted (http_conn_t *conn, tako_msg_t *answer)
{
    int code = http_answer_code (answer);
    if (code == 409 && tako_msg_str (answer, "job_id")) {
        http_respond_json (conn, 409, json_pack ("{s:s, s:s}", "detail",
                           tako_msg_str (answer, "reason")? tako_msg_str (answer, "reason")
                           : "idempotency_key reused with a different payload",
                           "existing_job_id", tako_msg_str (answer, "job_id")));
        return;
    }
    if (code != 200 || !tako_msg_str (answer, "job_id")) {
        http_respond_failure (conn, answer, "scheduler");
        return;
    }
    http_count_submitted (conn->server, json_string_value (json_object_get (conn->context, "job_type")));
    snprintf (conn->job_id, sizeof conn->job_id, "%s", tako_msg_str (answer, "job_id"));
    if (!conn->sync_shape) {
        const char *status = tako_msg_str (answer, "status");
        http_respond_json (conn, 200, json_pack ("{s:s, s:s}", "job_id", conn->job_id,
                                                 "status", status? status: "queued"));
        return;
    }
    http_wait_job (conn, execute_deadline (conn), execute_ended);
}

static void
execute_submit (http_conn_t *conn, bool async)
{
    tako_httpreq_error_t error;
    json_t *submit = tako_httpreq_execute (conn->body, conn->body_size, async, &error);
    if (!submit) {
        http_respond_detail (conn, (unsigned) error.status, error.detail);
        return;
    }
    tako_msg_t *msg = tako_msg_new ("SUBMIT");
    if (!msg || tako_msg_set_address (msg, "scheduler") != 0) {
        tako_msg_destroy (&msg);
        json_decref (submit);
        http_respond_detail (conn, 500, "internal error");
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach (submit, key, value) {
        if (json_is_string (value))
            tako_msg_set_str (msg, key, json_string_value (value));
        else
        if (json_is_integer (value))
            tako_msg_set_int (msg, key, json_integer_value (value));
        else
        if (json_is_object (value))
            tako_msg_set_object (msg, key, value);
        else
        if (json_is_array (value)) {
            const char *items [128];
            size_t count = 0;
            size_t index;
            json_t *item;
            json_array_foreach (value, index, item)
                if (count < 128)
                    items [count++] = json_string_value (item);
            tako_msg_set_strlist (msg, key, items, count);
        }
    }
    if (conn->client_ip [0])
        tako_msg_set_str (msg, "client_ip", conn->client_ip);
    tako_msg_set_str (msg, "correlation_id", conn->correlation_id);
    conn->sync_shape = !async;
    json_decref (conn->context);
    conn->context = submit;
    http_ask (conn, msg, execute_accepted);
}

static void
handle_execute (http_conn_t *conn, const char *const *params)
{
    (void) params;
    execute_submit (conn, false);
}

static void
handle_execute_async (http_conn_t *conn, const char *const *params)
{
    (void) params;
    execute_submit (conn, true);
}

//  --------------------------------------------------------------------------
//  GET /jobs/{id}, /jobs/{id}/result

static void
job_got (http_conn_t *conn, tako_msg_t *answer)
{
    if (http_answer_code (answer) != 200) {
        respond_not_found (conn, answer, "Job not found", "recorder");
        return;
    }
    json_t *record = tako_msg_object (answer, "result");
    json_t *body = json_object ();
    json_object_set_new (body, "job_id", json_string (conn->job_id));
    const char *copied [] = { "status", "job_type", "created_at", "started_at", "ended_at" };
    for (size_t i = 0; i < sizeof copied / sizeof copied [0]; i++) {
        json_t *value = json_object_get (record, copied [i]);
        json_object_set (body, copied [i], value? value: json_null ());
    }
    http_respond_json (conn, 200, body);
}

static void
handle_job (http_conn_t *conn, const char *const *params)
{
    if (job_id_take (conn, params [0]))
        http_query (conn, "recorder", "job.get", json_pack ("{s:s}", "job_id", conn->job_id), job_got);
}

static bool
record_terminal (json_t *record)
{
    const char *status = json_string_value (json_object_get (record, "status"));
    return status && (streq (status, "succeeded") || streq (status, "failed")
                   || streq (status, "timeout") || streq (status, "oom")
                   || streq (status, "cancelled"));
}

static void
result_position (http_conn_t *conn, tako_msg_t *answer)
{
    json_t *position = answer && http_answer_code (answer) == 200
                     ? json_object_get (tako_msg_object (answer, "result"), "queue_position"): NULL;
    json_t *body = json_pack ("{s:s, s:O?, s:s, s:O}", "job_id", conn->job_id,
                              "status", json_object_get (conn->context, "status"),
                              "message", "Job still in progress",
                              "queue_position", json_is_integer (position)? position: json_null ());
    http_respond_json (conn, 200, body);
}

static void
result_waited (http_conn_t *conn, tako_msg_t *answer)
{
    if (!answer) {
        char detail [96];
        snprintf (detail, sizeof detail, "Job did not finish within %" JSON_INTEGER_FORMAT " seconds",
                  json_integer_value (json_object_get (conn->context, "wait_s")));
        http_respond_detail (conn, 408, detail);
    }
    else
    if (http_answer_code (answer) != 200)
        respond_not_found (conn, answer, "Job not found", "recorder");
    else
        http_respond_json (conn, 200, answer_result (answer));
}

static void
result_got (http_conn_t *conn, tako_msg_t *answer)
{
    if (http_answer_code (answer) != 200) {
        respond_not_found (conn, answer, "Job not found", "recorder");
        return;
    }
    json_t *record = tako_msg_object (answer, "result");
    if (record_terminal (record)) {
        http_respond_json (conn, 200, answer_result (answer));
        return;
    }
    json_object_set (conn->context, "status", json_object_get (record, "status"));
    if (json_is_true (json_object_get (conn->context, "wait"))) {
        int64_t wait_s = json_integer_value (json_object_get (conn->context, "wait_s"));
        http_wait_job (conn, zclock_mono () + wait_s * 1000, result_waited);
        return;
    }
    http_query (conn, "scheduler", "job.position", json_pack ("{s:s}", "job_id", conn->job_id),
                result_position);
}

static void
handle_result (http_conn_t *conn, const char *const *params)
{
    bool wait = false;
    long wait_s = HTTP_RESULT_WAIT_DEFAULT_S;
    if (tako_httpreq_bool (query_arg (conn, "wait"), &wait) != 0) {
        http_respond_detail (conn, 422, "wait must be true or false");
        return;
    }
    if (tako_httpreq_int (query_arg (conn, "timeout"), 1, HTTP_RESULT_WAIT_MAX_S, &wait_s) != 0) {
        http_respond_detail (conn, 422, "timeout must be an integer from 1 to 3600");
        return;
    }
    if (!view_parse (conn) || !job_id_take (conn, params [0]))
        return;
    conn->context = json_pack ("{s:b, s:I}", "wait", wait, "wait_s", (json_int_t) wait_s);
    json_t *query = json_pack ("{s:s}", "job_id", conn->job_id);
    if (conn->full_view)
        json_object_set_new (query, "view", json_string ("full"));
    http_query (conn, "recorder", "job.get", query, result_got);
}

//  --------------------------------------------------------------------------
//  POST /jobs/{id}/cancel|rerun|fork

static void
cancelled (http_conn_t *conn, tako_msg_t *answer)
{
    int code = http_answer_code (answer);
    if (code == 200)
        http_respond_json (conn, 200, json_pack ("{s:s, s:s}", "status", "cancelled", "job_id", conn->job_id));
    else
    if (code == 404)
        http_respond_detail (conn, 404, "Job not found");
    else
        http_respond_failure (conn, answer, "scheduler");
}

static void
handle_cancel (http_conn_t *conn, const char *const *params)
{
    if (!job_id_take (conn, params [0]))
        return;
    tako_msg_t *msg = tako_msg_new ("CANCEL");
    tako_msg_set_address (msg, "scheduler");
    tako_msg_set_str (msg, "job_id", conn->job_id);
    http_ask (conn, msg, cancelled);
}

static void
lineage_made (http_conn_t *conn, tako_msg_t *answer)
{
    if (http_answer_code (answer) == 200)
        http_count_submitted (conn->server, NULL);
    if (http_answer_code (answer) == 404)
        http_respond_detail (conn, 404, "Job not found");
    else
        relay (conn, answer, "scheduler");
}

static void
handle_rerun (http_conn_t *conn, const char *const *params)
{
    if (job_id_take (conn, params [0]))
        http_query (conn, "scheduler", "job.rerun", json_pack ("{s:s}", "job_id", conn->job_id),
                    lineage_made);
}

static void
handle_fork (http_conn_t *conn, const char *const *params)
{
    tako_httpreq_error_t error;
    char *code = tako_httpreq_fork (conn->body, conn->body_size, &error);
    if (!code) {
        http_respond_detail (conn, (unsigned) error.status, error.detail);
        return;
    }
    if (job_id_take (conn, params [0]))
        http_query (conn, "scheduler", "job.fork",
                    json_pack ("{s:s, s:s}", "job_id", conn->job_id, "code", code), lineage_made);
    free (code);
}

//  --------------------------------------------------------------------------
//  GET|HEAD /jobs/{id}/artifacts/{name}

static void
artifact_got (http_conn_t *conn, tako_msg_t *answer)
{
    if (http_answer_code (answer) != 200) {
        respond_not_found (conn, answer, "Artifact not found", "recorder");
        return;
    }
    json_t *meta = tako_msg_object (answer, "result");
    const char *sha256 = json_string_value (json_object_get (meta, "sha256"));
    const char *type = json_string_value (json_object_get (meta, "content_type"));
    char etag [80];
    snprintf (etag, sizeof etag, "\"%s\"", sha256? sha256: "");
    const char *match = MHD_lookup_connection_value (conn->connection, MHD_HEADER_KIND, "If-None-Match");
    if (match && sha256 && (streq (match, etag) || streq (match, sha256) || streq (match, "*"))) {
        http_respond_bytes (conn, 304, NULL, "", 0);
        http_response_header (conn, "ETag", etag);
        return;
    }
    size_t size = 0;
    const void *data = tako_msg_bin (answer, "data", &size);
    http_respond_bytes (conn, 200, type? type: "application/octet-stream", data? data: "", data? size: 0);
    http_response_header (conn, "ETag", etag);
    char disposition [TAKO_HTTPREQ_NAME_MAX + 48];
    char safe [TAKO_HTTPREQ_NAME_MAX + 1];
    snprintf (safe, sizeof safe, "%s", conn->name);
    for (char *c = safe; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char) *c >= 0x80)
            *c = '_';
    snprintf (disposition, sizeof disposition, "attachment; filename=\"%s\"", safe);
    http_response_header (conn, "Content-Disposition", disposition);
}

static void
handle_artifact (http_conn_t *conn, const char *const *params)
{
    if (!tako_httpreq_name_valid (params [1])) {
        http_respond_detail (conn, 400, "Invalid artifact name");
        return;
    }
    if (!job_id_take (conn, params [0]))
        return;
    snprintf (conn->name, sizeof conn->name, "%s", params [1]);
    http_query (conn, "recorder", "artifact.get",
                json_pack ("{s:s, s:s}", "job_id", conn->job_id, "name", conn->name), artifact_got);
}

static void
handle_events (http_conn_t *conn, const char *const *params)
{
    if (job_id_take (conn, params [0]))
        http_sse_start (conn);
}

//  --------------------------------------------------------------------------
//  Job types

//  env_ready: the job type's current environment is built on this host
//  (a type without requirements needs no build: always ready).
static json_t *
job_type_json (const tako_config_t *config, const tako_config_job_type_t *job_type)
{
    json_t *body = tako_config_job_type_to_json (job_type);
    tako_envspec_t *spec = tako_envspec_new (job_type, NULL, 0, NULL);
    size_t needed = 0;
    if (spec)
        tako_envspec_requirements (spec, &needed);
    bool ready = spec && (needed == 0 || tako_envbuild_exists (config->data_dir,
                                                               tako_envspec_digest (spec)));
    json_object_set_new (body, "env_ready", json_boolean (ready));
    json_object_set_new (body, "image_exists", json_boolean (ready));
    json_object_set_new (body, "job_ref", spec? json_string (tako_envspec_job_ref (spec)): json_null ());
    tako_envspec_destroy (&spec);
    return body;
}

static void
handle_job_types (http_conn_t *conn, const char *const *params)
{
    (void) params;
    tako_config_t *config = http_config (conn->server);
    json_t *list = json_array ();
    for (size_t i = 0; i < config->job_type_count; i++)
        json_array_append_new (list, job_type_json (config, &config->job_types [i]));
    http_respond_json (conn, 200, list);
}

static void
handle_job_type (http_conn_t *conn, const char *const *params)
{
    const tako_config_job_type_t *job_type = tako_config_job_type (http_config (conn->server), params [0]);
    if (!job_type)
        http_respond_detail (conn, 404, "Job type not found");
    else
        http_respond_json (conn, 200, job_type_json (http_config (conn->server), job_type));
}

static void
build_done (http_conn_t *conn, tako_msg_t *answer)
{
    if (!answer || !streq (tako_msg_command (answer), "BUILT")) {
        http_respond_failure (conn, answer, "builder");
        return;
    }
    json_t *body = json_pack ("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:b}",
        "status", "built", "job_type", tako_msg_str (answer, "job_type"),
        "version", tako_msg_str (answer, "job_ref"), "digest", tako_msg_str (answer, "digest"),
        "image_ref", tako_msg_str (answer, "image_ref"),
        "built_at", tako_msg_str (answer, "built_at"),
        "duration_ms", (json_int_t) tako_msg_int (answer, "duration_ms", 0),
        "cached", tako_msg_bool (answer, "cached", false));
    if (body && tako_msg_str (answer, "version_tag"))
        json_object_set_new (body, "version_tag", json_string (tako_msg_str (answer, "version_tag")));
    http_respond_json (conn, 200, body);
}

//  POST /job-types/{name}/build[?version_tag=T]: BUILD at the builder,
//  waiting as long as a build may take (max_startup_timeout) plus a
//  margin for builds queued before it.
static void
handle_build (http_conn_t *conn, const char *const *params)
{
    tako_config_t *config = http_config (conn->server);
    if (!tako_config_job_type (config, params [0])) {
        http_respond_detail (conn, 404, "Job type not found");
        return;
    }
    const char *tag = MHD_lookup_connection_value (conn->connection, MHD_GET_ARGUMENT_KIND,
                                                   "version_tag");
    if (tag && !tako_envspec_version_tag_valid (tag)) {
        http_respond_detail (conn, 422, "version_tag must be 1 to 64 letters, digits, '.', '_' or '-'");
        return;
    }
    tako_msg_t *msg = tako_msg_new ("BUILD");
    if (!msg || tako_msg_set_address (msg, "builder") != 0) {
        tako_msg_destroy (&msg);
        build_done (conn, NULL);
        return;
    }
    tako_msg_set_str (msg, "job_type", params [0]);
    if (tag)
        tako_msg_set_str (msg, "version_tag", tag);
    http_ask (conn, msg, build_done);
    if (conn->request_id [0])
        conn->deadline = zclock_mono () + ((int64_t) config->max_startup_timeout + 30) * 1000;
}

//  --------------------------------------------------------------------------
//  Operations

static void
health_got (http_conn_t *conn, tako_msg_t *answer)
{
    tako_config_t *config = http_config (conn->server);
    json_t *health = http_answer_code (answer) == 200? tako_msg_object (answer, "result"): NULL;
    json_t *breaker = json_object_get (health, "circuit_breaker");
    const char *state = json_string_value (json_object_get (breaker, "state"));
    json_int_t executors = json_integer_value (json_object_get (health, "executors"));
    bool healthy = health && state && streq (state, "closed") && executors > 0;
    json_t *body = json_pack ("{s:s, s:b, s:b, s:O?, s:s, s:b, s:O?}",
        "status", healthy? "healthy": "degraded",
        "sandbox_available", executors > 0,
        "gvisor_available", tako_sandbox_runtime_runsc_path () != NULL,
        "circuit_breaker", breaker,
        "version", TAKO_VERSION,
        "production_mode", config->production_mode,
        "queue_stats", json_object_get (health, "queue_stats"));
    if (!health)
        json_object_set_new (body, "detail", json_string ("scheduler unavailable"));
    http_respond_json (conn, 200, body);
}

static void
handle_health (http_conn_t *conn, const char *const *params)
{
    (void) params;
    http_query (conn, "scheduler", "health", NULL, health_got);
}

static void
handle_pool_stats (http_conn_t *conn, const char *const *params)
{
    (void) params;
    http_query (conn, "scheduler", "pool.stats", NULL, relay_scheduler);
}

static const char *const statuses [] = {
    "queued", "running", "succeeded", "failed", "timeout", "oom", "cancelled", NULL
};

//  limit and offset from the query into params; false when answered 422.
static bool
page_parse (http_conn_t *conn, json_t *params)
{
    long limit = 100, offset = 0;
    if (tako_httpreq_int (query_arg (conn, "limit"), 1, 1000, &limit) != 0) {
        http_respond_detail (conn, 422, "limit must be an integer from 1 to 1000");
        return false;
    }
    if (tako_httpreq_int (query_arg (conn, "offset"), 0, 1000000000L, &offset) != 0) {
        http_respond_detail (conn, 422, "offset must be a non-negative integer");
        return false;
    }
    json_object_set_new (params, "limit", json_integer (limit));
    json_object_set_new (params, "offset", json_integer (offset));
    return true;
}

static void
handle_executions (http_conn_t *conn, const char *const *params)
{
    (void) params;
    json_t *query = json_object ();
    const char *status = query_arg (conn, "status");
    const char *job_type = query_arg (conn, "job_type");
    bool known = !status;
    for (const char *const *name = statuses; status && *name; name++)
        known = known || streq (*name, status);
    if (!known) {
        json_decref (query);
        http_respond_detail (conn, 422, "status must be one of queued, running, succeeded, failed, "
                                        "timeout, oom, cancelled");
        return;
    }
    if (job_type && (strlen (job_type) == 0 || strlen (job_type) > 63)) {
        json_decref (query);
        http_respond_detail (conn, 422, "job_type is not a job type name");
        return;
    }
    if (!page_parse (conn, query) || !view_parse (conn)) {
        json_decref (query);
        return;
    }
    if (status)
        json_object_set_new (query, "status", json_string (status));
    if (job_type)
        json_object_set_new (query, "job_type", json_string (job_type));
    if (conn->full_view)
        json_object_set_new (query, "view", json_string ("full"));
    http_query (conn, "recorder", "job.list", query, relay_recorder);
}

static void
execution_got (http_conn_t *conn, tako_msg_t *answer)
{
    if (http_answer_code (answer) == 404)
        http_respond_detail (conn, 404, "Execution not found");
    else
        relay (conn, answer, "recorder");
}

static void
handle_execution (http_conn_t *conn, const char *const *params)
{
    if (!view_parse (conn))
        return;
    if (!tako_httpreq_id_valid (params [0])) {
        http_respond_detail (conn, 404, "Execution not found");
        return;
    }
    json_t *query = json_pack ("{s:s}", "job_id", params [0]);
    if (conn->full_view)
        json_object_set_new (query, "view", json_string ("full"));
    http_query (conn, "recorder", "job.get", query, execution_got);
}

static void
handle_dlq_stats (http_conn_t *conn, const char *const *params)
{
    (void) params;
    http_query (conn, "dlq", "dlq.stats", NULL, relay_dlq);
}

static void
handle_dlq (http_conn_t *conn, const char *const *params)
{
    (void) params;
    json_t *query = json_object ();
    const char *error_type = query_arg (conn, "error_type");
    if (!page_parse (conn, query)) {
        json_decref (query);
        return;
    }
    if (error_type)
        json_object_set_new (query, "error_type", json_string (error_type));
    http_query (conn, "dlq", "dlq.list", query, relay_dlq);
}

static void
dlq_removed (http_conn_t *conn, tako_msg_t *answer)
{
    if (http_answer_code (answer) == 200)
        http_respond_json (conn, 200, json_pack ("{s:s, s:s}", "status", "removed", "entry_id", conn->name));
    else
        respond_not_found (conn, answer, "Dead letter not found", "dlq");
}

static void
handle_dlq_remove (http_conn_t *conn, const char *const *params)
{
    if (!tako_httpreq_id_valid (params [0])) {
        http_respond_detail (conn, 404, "Dead letter not found");
        return;
    }
    snprintf (conn->name, sizeof conn->name, "%s", params [0]);
    http_query (conn, "dlq", "dlq.remove", json_pack ("{s:s}", "entry_id", conn->name), dlq_removed);
}

static void
metrics_stats_got (http_conn_t *conn, tako_msg_t *answer)
{
    json_t *stats = http_answer_code (answer) == 200? tako_msg_object (answer, "result"): NULL;
    char *text = http_metrics_text (conn->server, json_object_get (conn->context, "pool"),
                                    json_object_get (stats, "items"));
    if (!text) {
        http_respond_detail (conn, 500, "internal error");
        return;
    }
    http_respond_bytes (conn, 200, "text/plain; version=0.0.4", text, strlen (text));
    free (text);
}

//  /metrics asks the scheduler (pool) and then the recorder (jobs); a
//  silent service leaves its lines out, never the answer.
static void
metrics_pool_got (http_conn_t *conn, tako_msg_t *answer)
{
    json_t *pool = http_answer_code (answer) == 200? tako_msg_object (answer, "result"): NULL;
    json_decref (conn->context);
    conn->context = json_object ();
    if (pool)
        json_object_set (conn->context, "pool", pool);
    http_query (conn, "recorder", "job.stats", NULL, metrics_stats_got);
}

static void
handle_metrics (http_conn_t *conn, const char *const *params)
{
    (void) params;
    http_query (conn, "scheduler", "pool.stats", NULL, metrics_pool_got);
}

static void
handle_openapi (http_conn_t *conn, const char *const *params)
{
    (void) params;
    json_t *paths = json_object ();
    for (const http_route_t *route = http_routes; route->pattern; route++) {
        json_t *item = json_object_get (paths, route->pattern);
        if (!item) {
            item = json_object ();
            json_object_set_new (paths, route->pattern, item);
        }
        char method [8];
        size_t i = 0;
        for (; route->method [i] && i < sizeof method - 1; i++)
            method [i] = (char) (route->method [i] | 0x20);
        method [i] = 0;
        json_t *operation = json_pack ("{s:s, s:{s:{s:s}}}", "summary", route->summary,
                                       "responses", "200", "description", "OK");
        if (!route->open)
            json_object_set_new (operation, "security", json_pack ("[{s:[]}]", "apiKey"));
        json_object_set_new (item, method, operation);
        if (streq (route->method, "GET") && strstr (route->pattern, "/artifacts/"))
            json_object_set_new (item, "head", json_pack ("{s:s, s:{s:{s:s}}}", "summary",
                                 "Artifact headers only", "responses", "200", "description", "OK"));
    }
    json_t *document = json_pack ("{s:s, s:{s:s, s:s}, s:o, s:{s:{s:{s:s, s:s}}}}",
        "openapi", "3.0.3",
        "info", "title", "tako-vm", "version", TAKO_VERSION,
        "paths", paths,
        "components", "securitySchemes", "apiKey", "type", "http", "scheme", "bearer");
    http_respond_json (conn, 200, document);
}

//  --------------------------------------------------------------------------
//  The table

const http_route_t http_routes [] = {
    { "POST", "/execute", handle_execute, false, false, "Run code and wait for its result" },
    { "POST", "/execute/async", handle_execute_async, false, false, "Queue code and return its job id" },
    { "GET", "/jobs/{job_id}", handle_job, false, false, "A job's status" },
    { "GET", "/jobs/{job_id}/result", handle_result, false, false, "A job's result (wait, timeout, view)" },
    { "GET", "/jobs/{job_id}/events", handle_events, false, false, "Server-sent events of a job until it ends" },
    { "POST", "/jobs/{job_id}/cancel", handle_cancel, false, false, "Cancel a queued or running job" },
    { "POST", "/jobs/{job_id}/rerun", handle_rerun, false, false, "Run a finished job again" },
    { "POST", "/jobs/{job_id}/fork", handle_fork, false, false, "Run new code with a job's input and settings" },
    { "GET", "/jobs/{job_id}/artifacts/{name}", handle_artifact, false, false, "One output or input artifact" },
    { "GET", "/job-types", handle_job_types, false, false, "Every job type" },
    { "GET", "/job-types/{name}", handle_job_type, false, false, "One job type" },
    { "POST", "/job-types/{name}/build", handle_build, false, false, "Build a job type's environment" },
    { "GET", "/health", handle_health, true, true, "Health of the server" },
    { "GET", "/pool/stats", handle_pool_stats, false, false, "Queue and worker statistics" },
    { "GET", "/executions", handle_executions, false, false, "Execution history (status, job_type, limit, offset, view)" },
    { "GET", "/executions/{execution_id}", handle_execution, false, false, "One execution record" },
    { "GET", "/dlq/stats", handle_dlq_stats, false, false, "Dead letters by error type" },
    { "GET", "/dlq", handle_dlq, false, false, "Dead letters (error_type, limit, offset)" },
    { "DELETE", "/dlq/{entry_id}", handle_dlq_remove, false, false, "Remove a dead letter" },
    { "GET", "/metrics", handle_metrics, false, true, "Prometheus metrics" },
    { "GET", "/openapi.json", handle_openapi, false, true, "This document" },
    { NULL, NULL, NULL, false, false, NULL }
};
