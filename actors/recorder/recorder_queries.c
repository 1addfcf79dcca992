/*  recorder_queries — the recorder's QUERY handlers, one per query name,
    each a thin mapping of params to one tako_store call and of its
    outcome to a REPLY code (docs/protocol.md, "Recorder queries").      */

#include <inttypes.h>
#include "recorder_internal.h"
#include "tako_sha256.h"
#include "tako_log.h"

#define LOG "recorder"

//  Most artifacts one job.finish may list.
#define FINISH_ARTIFACTS_MAX 1000
//  Largest attempt number and lease we accept (far beyond real use;
//  they keep the arithmetic in range).
#define ATTEMPT_MAX      1000000
#define LEASE_MS_MAX     (24 * 60 * 60 * 1000)
#define PAGE_OFFSET_MAX  INT32_MAX
//  A SQLSTATE of class 22 (data exception) is a bad value from the caller.
#define SQLSTATE_DATA_EXCEPTION "database error (SQLSTATE 22"

typedef void (query_fn) (recorder_t *self, json_t *params, recorder_reply_t *reply);

//  ---------------------------------------------------------------------
//  Replies

static void
reply_ok (recorder_reply_t *reply, json_t *result)
{
    reply->code = 200;
    json_decref (reply->result);
    reply->result = result;
}

static void
reply_fail (recorder_reply_t *reply, int code, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
reply_fail (recorder_reply_t *reply, int code, const char *format, ...)
{
    reply->code = code;
    va_list args;
    va_start (args, format);
    vsnprintf (reply->reason, sizeof reply->reason, format, args);
    va_end (args);
}

//  A store call failed: 503 when the database is gone (and we reconnect),
//  else a code from the store's (client-safe) error.
static void
reply_store_failed (recorder_t *self, recorder_reply_t *reply)
{
    const char *error = tako_store_error (self->store);
    if (tako_store_unavailable (self->store)) {
        recorder_disconnected (self);
        reply_fail (reply, 503, "database unavailable");
    }
    else
    if (strncmp (error, SQLSTATE_DATA_EXCEPTION, strlen (SQLSTATE_DATA_EXCEPTION)) == 0)
        reply_fail (reply, 400, "invalid parameter value");
    else
    if (strncmp (error, "database error", 14) == 0 || streq (error, "out of memory"))
        reply_fail (reply, 500, "%s", error);
    else
    if (streq (error, "a job with this id exists"))
        reply_fail (reply, 409, "%s", error);
    else
        reply_fail (reply, 400, "%s", error);
}

//  The REPLY for a store outcome: 200 when it took effect, 404 for an
//  unknown job, 409 for conflict/stale/duplicate. result gets "outcome".
static void
reply_outcome (recorder_reply_t *reply, tako_store_outcome_t outcome, json_t *result)
{
    if (!result)
        result = json_object ();
    json_object_set_new (result, "outcome", json_string (tako_store_outcome_name (outcome)));
    reply_ok (reply, result);
    if (outcome == TAKO_STORE_NOT_FOUND)
        reply_fail (reply, 404, "job not found");
    else
    if (outcome == TAKO_STORE_CONFLICT || outcome == TAKO_STORE_STALE
    ||  outcome == TAKO_STORE_DUPLICATE)
        reply_fail (reply, 409, "%s", tako_store_outcome_name (outcome));
}

//  A record, or 404 with this reason when there is none.
static void
reply_record (recorder_reply_t *reply, json_t *record, const char *missing)
{
    if (record)
        reply_ok (reply, record);
    else
        reply_fail (reply, 404, "%s", missing);
}

//  ---------------------------------------------------------------------
//  Parameters: each getter answers 400 and returns -1 when the value is
//  missing (and required) or of the wrong type.

static int
param_string (json_t *params, const char *key, bool required, const char **value,
              recorder_reply_t *reply)
{
    json_t *item = json_object_get (params, key);
    *value = NULL;
    if (!item || json_is_null (item)) {
        if (!required)
            return 0;
        reply_fail (reply, 400, "%s is required", key);
        return -1;
    }
    if (!json_is_string (item) || json_string_length (item) == 0) {
        reply_fail (reply, 400, "%s must be a non-empty string", key);
        return -1;
    }
    *value = json_string_value (item);
    return 0;
}

static int
param_int (json_t *params, const char *key, bool required, int64_t low, int64_t high,
           int64_t *value, recorder_reply_t *reply)
{
    json_t *item = json_object_get (params, key);
    if (!item || json_is_null (item)) {
        if (!required)
            return 0;           //  *value keeps the caller's default
        reply_fail (reply, 400, "%s is required", key);
        return -1;
    }
    if (!json_is_integer (item) || json_integer_value (item) < low
    ||  json_integer_value (item) > high) {
        reply_fail (reply, 400, "%s must be an integer from %" PRId64 " to %" PRId64,
                    key, low, high);
        return -1;
    }
    *value = json_integer_value (item);
    return 0;
}

static int
param_object (json_t *params, const char *key, json_t **value, recorder_reply_t *reply)
{
    *value = json_object_get (params, key);
    if (json_is_object (*value))
        return 0;
    reply_fail (reply, 400, "%s must be an object", key);
    return -1;
}

//  view: "full" or absent/null.
static int
param_view_full (json_t *params, bool *full, recorder_reply_t *reply)
{
    const char *view;
    if (param_string (params, "view", false, &view, reply))
        return -1;
    if (view && !streq (view, "full") && !streq (view, "summary")) {
        reply_fail (reply, 400, "view must be full or summary");
        return -1;
    }
    *full = view && streq (view, "full");
    return 0;
}

static int
param_paging (json_t *params, int64_t *limit, int64_t *offset, recorder_reply_t *reply)
{
    *limit = 0;             //  0 = the store's default
    *offset = 0;
    if (param_int (params, "limit", false, 1, TAKO_STORE_LIST_LIMIT_MAX, limit, reply)
    ||  param_int (params, "offset", false, 0, PAGE_OFFSET_MAX, offset, reply))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Jobs

static void
query_job_insert (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    tako_store_outcome_t outcome;
    char *job_id = NULL, *status = NULL;
    if (!json_is_object (params)) {
        reply_fail (reply, 400, "params must be the job object");
        return;
    }
    if (tako_store_job_insert (self->store, params, &outcome, &job_id, &status)) {
        reply_store_failed (self, reply);
        return;
    }
    reply_outcome (reply, outcome, json_pack ("{s:s, s:s}", "job_id", job_id, "status", status));
    free (job_id);
    free (status);
}

//  Lease length in whole seconds (the store's unit), rounded up.
static int
lease_seconds (int64_t lease_ms)
{
    return (int) ((lease_ms + 999) / 1000);
}

static void
query_job_start (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id, *lease_id, *lease_owner;
    int64_t attempt = 0, lease_ms = 0;
    if (param_string (params, "job_id", true, &job_id, reply)
    ||  param_int (params, "attempt", true, 1, ATTEMPT_MAX, &attempt, reply)
    ||  param_string (params, "lease_id", true, &lease_id, reply)
    ||  param_string (params, "lease_owner", true, &lease_owner, reply)
    ||  param_int (params, "lease_ms", true, 1, LEASE_MS_MAX, &lease_ms, reply))
        return;
    tako_store_outcome_t outcome;
    if (tako_store_job_start (self->store, job_id, (int) attempt, lease_id, lease_owner,
                              lease_seconds (lease_ms), &outcome))
        reply_store_failed (self, reply);
    else
        reply_outcome (reply, outcome, NULL);
}

static void
query_job_renew (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id, *lease_id;
    int64_t attempt = 0, lease_ms = 0;
    if (param_string (params, "job_id", true, &job_id, reply)
    ||  param_int (params, "attempt", true, 1, ATTEMPT_MAX, &attempt, reply)
    ||  param_string (params, "lease_id", true, &lease_id, reply)
    ||  param_int (params, "lease_ms", true, 1, LEASE_MS_MAX, &lease_ms, reply))
        return;
    tako_store_outcome_t outcome;
    if (tako_store_job_lease_renew (self->store, job_id, (int) attempt, lease_id,
                                    lease_seconds (lease_ms), &outcome))
        reply_store_failed (self, reply);
    else
        reply_outcome (reply, outcome, NULL);
}

//  Some artifact the finish lists is not buffered (or its bytes do not
//  match). If the job already has its result the answer is the store's
//  duplicate/stale outcome (a finish sent again); otherwise 409
//  "artifacts missing": the sender must send the ARTIFACTs again.
static void
finish_artifacts_missing (recorder_t *self, const char *job_id, int64_t attempt,
                          json_t *result, json_t *missing, recorder_reply_t *reply)
{
    json_t *job = NULL;
    if (tako_store_job_get (self->store, job_id, false, &job)) {
        reply_store_failed (self, reply);
        json_decref (missing);
        return;
    }
    const char *status = job? json_string_value (json_object_get (job, "status")): NULL;
    if (!job)
        reply_outcome (reply, TAKO_STORE_NOT_FOUND, NULL);
    else
    if (status && tako_store_status_terminal (status)) {
        //  Terminal: a finish cannot apply, so asking without the bytes
        //  only learns whether it is a duplicate or stale.
        tako_store_outcome_t outcome;
        if (tako_store_job_finish (self->store, job_id, (int) attempt, result, NULL, 0, &outcome,
                                   NULL))
            reply_store_failed (self, reply);
        else
            reply_outcome (reply, outcome, NULL);
    }
    else {
        reply_ok (reply, json_pack ("{s:s, s:O}", "outcome", "artifacts_missing",
                                    "missing", missing));
        reply_fail (reply, 409, "artifacts missing");
    }
    json_decref (missing);
    json_decref (job);
}

//  The listed artifacts from the buffer into store form; names of the
//  ones that are absent or whose bytes do not match their sha256 go in
//  missing. -1 (and 400) when the list is malformed.
static int
finish_collect (recorder_t *self, const char *job_id, int64_t attempt, json_t *listed,
                tako_store_artifact_t *artifacts, json_t *missing, recorder_reply_t *reply)
{
    size_t index;
    json_t *item;
    json_array_foreach (listed, index, item) {
        const char *name, *sha256, *content_type;
        if (!json_is_object (item)
        ||  param_string (item, "name", true, &name, reply)
        ||  param_string (item, "sha256", false, &sha256, reply)
        ||  param_string (item, "content_type", false, &content_type, reply)) {
            if (!json_is_object (item))
                reply_fail (reply, 400, "artifacts must be objects");
            return -1;
        }
        const tako_artbuf_entry_t *entry = tako_artbuf_get (self->artifacts, job_id,
                                                            attempt, name);
        char *actual = entry? tako_sha256_hex (entry->data, entry->size): NULL;
        if (!entry || !actual || (sha256 && strcasecmp (sha256, actual) != 0))
            json_array_append_new (missing, json_string (name));
        else
            artifacts [index] = (tako_store_artifact_t) {
                .name = name,
                .content_type = content_type? content_type: entry->content_type,
                .data = entry->data, .size = entry->size
            };
        free (actual);
    }
    return 0;
}

static void
query_job_finish (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id;
    int64_t attempt = 0;
    json_t *result;
    if (param_string (params, "job_id", true, &job_id, reply)
    ||  param_int (params, "attempt", true, 1, ATTEMPT_MAX, &attempt, reply)
    ||  param_object (params, "result", &result, reply))
        return;
    json_t *listed = json_object_get (params, "artifacts");
    if (listed && !json_is_null (listed)
    &&  (!json_is_array (listed) || json_array_size (listed) > FINISH_ARTIFACTS_MAX)) {
        reply_fail (reply, 400, "artifacts must be an array of at most %d", FINISH_ARTIFACTS_MAX);
        return;
    }
    size_t count = json_is_array (listed)? json_array_size (listed): 0;
    tako_store_artifact_t *artifacts = calloc (count + 1, sizeof *artifacts);
    json_t *missing = json_array ();
    if (!artifacts || !missing) {
        free (artifacts);
        json_decref (missing);
        reply_fail (reply, 500, "out of memory");
        return;
    }
    if (finish_collect (self, job_id, attempt, listed, artifacts, missing, reply) == 0) {
        if (json_array_size (missing) > 0) {
            finish_artifacts_missing (self, job_id, attempt, result, missing, reply);
            missing = NULL;
        }
        else {
            tako_store_outcome_t outcome;
            json_t *record = NULL;
            if (tako_store_job_finish (self->store, job_id, (int) attempt, result,
                                       artifacts, count, &outcome, &record))
                reply_store_failed (self, reply);
            else {
                //  Recorded (or never will be): the bytes have served.
                //  The record lets the scheduler's event end a waiter's
                //  wait without reading the job back.
                reply_outcome (reply, outcome,
                               record? json_pack ("{s:o}", "record", record): NULL);
                tako_artbuf_drop_attempt (self->artifacts, job_id, attempt);
            }
        }
    }
    json_decref (missing);
    free (artifacts);
}

static void
query_job_requeue (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id;
    int64_t attempt = 0;
    if (param_string (params, "job_id", true, &job_id, reply)
    ||  param_int (params, "attempt", true, 1, ATTEMPT_MAX, &attempt, reply))
        return;
    tako_store_outcome_t outcome;
    if (tako_store_job_requeue (self->store, job_id, (int) attempt, &outcome))
        reply_store_failed (self, reply);
    else
        reply_outcome (reply, outcome, NULL);
}

static void
query_job_cancel (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id;
    if (param_string (params, "job_id", true, &job_id, reply))
        return;
    tako_store_outcome_t outcome;
    if (tako_store_job_cancel (self->store, job_id, &outcome))
        reply_store_failed (self, reply);
    else
        reply_outcome (reply, outcome, NULL);
}

static void
query_job_get (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id;
    bool full = false;
    if (param_string (params, "job_id", true, &job_id, reply)
    ||  param_view_full (params, &full, reply))
        return;
    json_t *job = NULL;
    if (tako_store_job_get (self->store, job_id, full, &job))
        reply_store_failed (self, reply);
    else
        reply_record (reply, job, "job not found");
}

static void
query_job_payload (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id;
    if (param_string (params, "job_id", true, &job_id, reply))
        return;
    json_t *payload = NULL;
    if (tako_store_job_payload (self->store, job_id, &payload))
        reply_store_failed (self, reply);
    else
        reply_record (reply, payload, "job not found");
}

static void
query_job_list (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *status, *job_type;
    int64_t limit, offset;
    bool full = false;
    if (param_string (params, "status", false, &status, reply)
    ||  param_string (params, "job_type", false, &job_type, reply)
    ||  param_paging (params, &limit, &offset, reply)
    ||  param_view_full (params, &full, reply))
        return;
    if (status && !tako_store_status_valid (status)) {
        reply_fail (reply, 400, "unknown status");
        return;
    }
    json_t *page = NULL;
    if (tako_store_job_list (self->store, status, job_type, (int) limit, (int) offset,
                             full, &page))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, page);
}

static void
query_job_queue_position (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id;
    if (param_string (params, "job_id", true, &job_id, reply))
        return;
    int64_t position = 0;
    if (tako_store_job_queue_position (self->store, job_id, &position))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, json_pack ("{s:I}", "queue_position", (json_int_t) position));
}

static void
query_job_counts (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    (void) params;
    json_t *counts = NULL;
    if (tako_store_job_counts (self->store, &counts))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, counts);
}

static void
query_job_stats (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    (void) params;
    json_t *stats = NULL;
    if (tako_store_job_stats (self->store, &stats))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, stats);
}

static void
query_job_unfinished (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    (void) params;
    json_t *jobs = NULL;
    if (tako_store_jobs_unfinished (self->store, &jobs))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, json_pack ("{s:o}", "jobs", jobs? jobs: json_array ()));
}

//  ---------------------------------------------------------------------
//  Artifacts

static void
query_artifact_get (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id, *name;
    if (param_string (params, "job_id", true, &job_id, reply)
    ||  param_string (params, "name", true, &name, reply))
        return;
    json_t *meta = NULL;
    void *data = NULL;
    size_t size = 0;
    if (tako_store_artifact_get (self->store, job_id, name, &meta, &data, &size))
        reply_store_failed (self, reply);
    else
    if (!meta)
        reply_fail (reply, 404, "artifact not found");
    else {
        reply_ok (reply, meta);
        reply->data = data;
        reply->size = size;
    }
}

static void
query_artifact_list (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_id;
    if (param_string (params, "job_id", true, &job_id, reply))
        return;
    json_t *list = NULL;
    if (tako_store_artifact_list (self->store, job_id, &list))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, json_pack ("{s:o}", "artifacts", list? list: json_array ()));
}

//  ---------------------------------------------------------------------
//  Dead letters

static void
query_dlq_insert (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    json_t *entry;
    if (param_object (params, "entry", &entry, reply))
        return;
    char *entry_id = NULL;
    if (tako_store_dlq_insert (self->store, entry, &entry_id))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, json_pack ("{s:s}", "entry_id", entry_id));
    free (entry_id);
}

static void
query_dlq_list (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *error_type;
    int64_t limit, offset;
    if (param_string (params, "error_type", false, &error_type, reply)
    ||  param_paging (params, &limit, &offset, reply))
        return;
    json_t *page = NULL;
    if (tako_store_dlq_list (self->store, error_type, (int) limit, (int) offset, &page))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, page);
}

static void
query_dlq_stats (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    (void) params;
    json_t *stats = NULL;
    if (tako_store_dlq_stats (self->store, &stats))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, stats);
}

static void
query_dlq_get (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *entry_id;
    if (param_string (params, "entry_id", true, &entry_id, reply))
        return;
    json_t *entry = NULL;
    if (tako_store_dlq_get (self->store, entry_id, &entry))
        reply_store_failed (self, reply);
    else
        reply_record (reply, entry, "dead letter not found");
}

static void
query_dlq_remove (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *entry_id;
    if (param_string (params, "entry_id", true, &entry_id, reply))
        return;
    bool removed = false;
    if (tako_store_dlq_remove (self->store, entry_id, &removed)) {
        reply_store_failed (self, reply);
        return;
    }
    reply_ok (reply, json_pack ("{s:b}", "removed", removed));
    if (!removed)
        reply_fail (reply, 404, "dead letter not found");
}

//  ---------------------------------------------------------------------
//  Job versions

static void
query_version_register (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    json_t *version;
    if (param_object (params, "version", &version, reply))
        return;
    if (tako_store_version_register (self->store, version))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, json_pack ("{s:b}", "registered", true));
}

static void
query_version_lookup (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *digest;
    if (param_string (params, "digest", true, &digest, reply))
        return;
    json_t *version = NULL;
    if (tako_store_version_lookup (self->store, digest, &version))
        reply_store_failed (self, reply);
    else
        reply_record (reply, version, "job version not found");
}

static void
query_version_list (recorder_t *self, json_t *params, recorder_reply_t *reply)
{
    const char *job_type;
    if (param_string (params, "job_type", true, &job_type, reply))
        return;
    json_t *list = NULL;
    if (tako_store_version_list (self->store, job_type, &list))
        reply_store_failed (self, reply);
    else
        reply_ok (reply, json_pack ("{s:o}", "versions", list? list: json_array ()));
}

//  ---------------------------------------------------------------------
//  Dispatch

static const struct {
    const char *name;
    query_fn *answer;
} queries [] = {
    { "job.insert",         query_job_insert },
    { "job.start",          query_job_start },
    { "job.renew",          query_job_renew },
    { "job.finish",         query_job_finish },
    { "job.requeue",        query_job_requeue },
    { "job.cancel",         query_job_cancel },
    { "job.get",            query_job_get },
    { "job.payload",        query_job_payload },
    { "job.list",           query_job_list },
    { "job.queue_position", query_job_queue_position },
    { "job.counts",         query_job_counts },
    { "job.stats",          query_job_stats },
    { "job.unfinished",     query_job_unfinished },
    { "artifact.get",       query_artifact_get },
    { "artifact.list",      query_artifact_list },
    { "dlq.insert",         query_dlq_insert },
    { "dlq.list",           query_dlq_list },
    { "dlq.stats",          query_dlq_stats },
    { "dlq.get",            query_dlq_get },
    { "dlq.remove",         query_dlq_remove },
    { "version.register",   query_version_register },
    { "version.lookup",     query_version_lookup },
    { "version.list",       query_version_list },
};

void
recorder_query (recorder_t *self, const char *query, json_t *params, recorder_reply_t *reply)
{
    if (params && !json_is_object (params) && !json_is_null (params)) {
        reply_fail (reply, 400, "params must be an object");
        return;
    }
    for (size_t i = 0; i < sizeof queries / sizeof queries [0]; i++)
        if (streq (queries [i].name, query)) {
            queries [i].answer (self, params, reply);
            return;
        }
    reply_fail (reply, 400, "unknown query");
}
