/*  tako_store_jobs — the executions table: insert, transitions, reads.  */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_store_internal.h"

static const char *statuses [] = {
    "queued", "running", "succeeded", "failed", "timeout", "oom", "cancelled", NULL
};
//  statuses [TERMINAL_FIRST..] are the terminal ones.
#define TERMINAL_FIRST 2
#define TERMINAL_SQL "('succeeded', 'failed', 'timeout', 'oom', 'cancelled')"

//  The REST result record (GET /jobs/{id}/result, GET /executions).
#define RECORD_FIELDS \
    "'execution_id', e.id, 'status', e.status, 'job_type', e.job_type," \
    "'job_version', e.job_ref," \
    "'created_at', " STORE_TIME ("e.created_at") "," \
    "'started_at', " STORE_TIME ("e.started_at") "," \
    "'ended_at', " STORE_TIME ("e.ended_at") "," \
    "'duration_ms', e.duration_ms, 'exit_code', e.exit_code," \
    "'stdout', e.stdout, 'stderr', e.stderr, 'output', e.output," \
    "'error', e.error, 'timing', e.timing"

//  What view=full adds. Input artifacts are derived from the stored code
//  and input: _input.json is the input as PostgreSQL's jsonb text.
#define INPUT_ARTIFACT(name, type, bytes) \
    "json_build_object ('name', '" name "', 'size_bytes', octet_length (" bytes ")," \
    " 'sha256', encode (sha256 (convert_to (" bytes ", 'UTF8')), 'hex')," \
    " 'content_type', '" type "')"

#define FULL_FIELDS \
    "'job_ref', e.job_ref," \
    "'artifacts', (SELECT coalesce (json_agg (json_build_object (" \
    "   'name', a.name, 'size_bytes', a.size_bytes, 'sha256', a.sha256," \
    "   'content_type', a.content_type) ORDER BY a.name), '[]'::json)" \
    "   FROM artifacts a WHERE a.job_id = e.id)," \
    "'input_artifacts', json_build_array (" \
    INPUT_ARTIFACT ("_code.py", "text/x-python", "e.code") "," \
    INPUT_ARTIFACT ("_input.json", "application/json", "e.input_data::text") ")," \
    "'resource_usage', e.resource_usage, 'code_hash', e.code_hash," \
    "'input_hash', e.input_hash, 'parent_execution_id', e.parent_execution_id," \
    "'relationship', e.relationship, 'stdout_truncated', e.stdout_truncated," \
    "'stderr_truncated', e.stderr_truncated, 'idempotency_key', e.idempotency_key"

//  What the scheduler needs, minus the (possibly large) code and input.
#define STATE_FIELDS \
    "'job_id', e.id, 'status', e.status, 'attempt', e.attempt," \
    "'max_attempts', e.max_attempts, 'priority', e.priority," \
    "'job_type', e.job_type, 'job_ref', e.job_ref," \
    "'timeout_s', e.timeout_s, 'startup_timeout_s', e.startup_timeout_s," \
    "'requirements', e.requirements, 'lease_id', e.lease_id," \
    "'lease_owner', e.lease_owner," \
    "'lease_expires_at', " STORE_TIME ("e.lease_expires_at") "," \
    "'created_at', " STORE_TIME ("e.created_at") "," \
    "'queued_at', " STORE_TIME ("e.queued_at") "," \
    "'parent_execution_id', e.parent_execution_id, 'relationship', e.relationship," \
    "'idempotency_key', e.idempotency_key, 'client_ip', e.client_ip," \
    "'correlation_id', e.correlation_id"

#define QUEUE_ORDER "e.priority DESC, e.queued_at, e.id"

bool
tako_store_status_valid (const char *status)
{
    for (int i = 0; status && statuses [i]; i++)
        if (strcmp (status, statuses [i]) == 0)
            return true;
    return false;
}

bool
tako_store_status_terminal (const char *status)
{
    for (int i = TERMINAL_FIRST; status && statuses [i]; i++)
        if (strcmp (status, statuses [i]) == 0)
            return true;
    return false;
}

//  Rows changed by a guarded UPDATE: 1 applied, 0 stale.
static int
guarded_update (tako_store_t *self, const char *sql, store_params_t *params,
                tako_store_outcome_t *outcome)
{
    int64_t rows = store_execute (self, sql, params);
    store_params_free (params);
    if (rows < 0)
        return -1;
    *outcome = rows > 0? TAKO_STORE_APPLIED: TAKO_STORE_STALE;
    return 0;
}

//  ---------------------------------------------------------------------
//  Insert

static int
job_check (tako_store_t *self, json_t *job)
{
    if (!json_is_object (job))
        return store_fail (self, "invalid job: not an object");
    json_t *code = json_object_get (job, "code");
    if (!json_is_string (code) || json_string_length (code) == 0)
        return store_fail (self, "invalid job: code is required");
    const char *relationship = json_string_value (json_object_get (job, "relationship"));
    if (relationship && strcmp (relationship, "rerun") && strcmp (relationship, "fork"))
        return store_fail (self, "invalid job: relationship must be rerun or fork");
    json_t *input = json_object_get (job, "input_data");
    if (input && !json_is_object (input) && !json_is_null (input))
        return store_fail (self, "invalid job: input_data must be an object");
    return 0;
}

//  The insert lost to an existing job with the same idempotency key:
//  same payload fingerprint → existing, otherwise conflict.
static int
job_insert_existing (tako_store_t *self, json_t *job, tako_store_outcome_t *outcome,
                     char **job_id, char **status)
{
    const char *key = json_string_value (json_object_get (job, "idempotency_key"));
    if (!key)
        return store_fail (self, "a job with this id exists");
    store_params_t params = { .count = 0 };
    store_params_text (&params, key);
    store_params_string_field (&params, job, "payload_fingerprint");
    PGresult *result = store_query (self,
        "SELECT id, status, payload_fingerprint IS NOT DISTINCT FROM $2"
        "  FROM executions WHERE idempotency_key = $1", &params, 0);
    store_params_free (&params);
    if (!result)
        return -1;
    int rc = 0;
    if (PQntuples (result) == 1) {
        *job_id = strdup (PQgetvalue (result, 0, 0));
        *status = strdup (PQgetvalue (result, 0, 1));
        *outcome = strcmp (PQgetvalue (result, 0, 2), "t") == 0?
                   TAKO_STORE_EXISTING: TAKO_STORE_CONFLICT;
    }
    else    //  The job id (not the key) collided.
        rc = store_fail (self, "a job with this id exists");
    PQclear (result);
    return rc;
}

int
tako_store_job_insert (tako_store_t *self, json_t *job,
                       tako_store_outcome_t *outcome, char **job_id, char **status)
{
    *job_id = *status = NULL;
    if (job_check (self, job))
        return -1;
    store_params_t params = { .count = 0 };
    store_params_string_field (&params, job, "job_id");
    store_params_string_field (&params, job, "job_type");
    store_params_string_field (&params, job, "job_ref");
    store_params_int_field (&params, job, "priority");
    store_params_int_field (&params, job, "max_attempts");
    store_params_string_field (&params, job, "code");
    store_params_json_field (&params, job, "input_data");
    store_params_string_field (&params, job, "code_hash");
    store_params_string_field (&params, job, "input_hash");
    store_params_int_field (&params, job, "timeout_s");
    store_params_int_field (&params, job, "startup_timeout_s");
    store_params_json_field (&params, job, "requirements");
    store_params_string_field (&params, job, "parent_execution_id");
    store_params_string_field (&params, job, "relationship");
    store_params_string_field (&params, job, "idempotency_key");
    store_params_string_field (&params, job, "payload_fingerprint");
    store_params_string_field (&params, job, "client_ip");
    store_params_string_field (&params, job, "correlation_id");
    //  ON CONFLICT DO NOTHING waits for a concurrent insert of the same
    //  key to commit, so exactly one of two racing clients creates it.
    PGresult *result = store_query (self,
        "INSERT INTO executions (id, status, job_type, job_ref, priority, max_attempts,"
        "  code, input_data, code_hash, input_hash, timeout_s, startup_timeout_s,"
        "  requirements, parent_execution_id, relationship, idempotency_key,"
        "  payload_fingerprint, client_ip, correlation_id)"
        " VALUES (coalesce ($1, gen_random_uuid ()::text), 'queued',"
        "  coalesce ($2, 'default'), $3, coalesce ($4::integer, 0),"
        "  coalesce ($5::integer, 1), $6, coalesce ($7::jsonb, '{}'), $8, $9,"
        "  $10::integer, $11::integer, coalesce ($12::jsonb, '[]'), $13, $14, $15,"
        "  $16, $17, $18)"
        " ON CONFLICT DO NOTHING RETURNING id, status", &params, 0);
    store_params_free (&params);
    if (!result)
        return -1;
    int rc = 0;
    if (PQntuples (result) == 1) {
        *job_id = strdup (PQgetvalue (result, 0, 0));
        *status = strdup (PQgetvalue (result, 0, 1));
        *outcome = TAKO_STORE_CREATED;
    }
    else
        rc = job_insert_existing (self, job, outcome, job_id, status);
    PQclear (result);
    if (rc == 0 && (!*job_id || !*status)) {
        free (*job_id);
        free (*status);
        *job_id = *status = NULL;
        rc = store_fail (self, "out of memory");
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Transitions

int
tako_store_job_start (tako_store_t *self, const char *job_id, int attempt,
                      const char *lease_id, const char *lease_owner, int lease_seconds,
                      tako_store_outcome_t *outcome)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    store_params_int (&params, attempt);
    store_params_text (&params, lease_id);
    store_params_text (&params, lease_owner);
    store_params_int (&params, lease_seconds);
    return guarded_update (self,
        "UPDATE executions SET status = 'running', dequeued_at = now (),"
        "  started_at = now (), lease_id = $3, lease_owner = $4,"
        "  lease_expires_at = now () + make_interval (secs => $5::integer)"
        " WHERE id = $1 AND attempt = $2::integer AND status = 'queued'",
        &params, outcome);
}

int
tako_store_job_lease_renew (tako_store_t *self, const char *job_id, int attempt,
                            const char *lease_id, int lease_seconds,
                            tako_store_outcome_t *outcome)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    store_params_int (&params, attempt);
    store_params_text (&params, lease_id);
    store_params_int (&params, lease_seconds);
    return guarded_update (self,
        "UPDATE executions"
        "  SET lease_expires_at = now () + make_interval (secs => $4::integer)"
        " WHERE id = $1 AND attempt = $2::integer AND status = 'running'"
        "   AND lease_id = $3", &params, outcome);
}

int
tako_store_job_requeue (tako_store_t *self, const char *job_id, int attempt,
                        tako_store_outcome_t *outcome)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    store_params_int (&params, attempt);
    return guarded_update (self,
        "UPDATE executions SET status = 'queued', attempt = attempt + 1,"
        "  queued_at = now (), dequeued_at = NULL, started_at = NULL,"
        "  lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL"
        " WHERE id = $1 AND attempt = $2::integer AND status = 'running'",
        &params, outcome);
}

static int
job_exists (tako_store_t *self, const char *job_id, bool *exists)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    PGresult *result = store_query (self, "SELECT 1 FROM executions WHERE id = $1", &params, 0);
    store_params_free (&params);
    if (!result)
        return -1;
    *exists = PQntuples (result) > 0;
    PQclear (result);
    return 0;
}

int
tako_store_job_cancel (tako_store_t *self, const char *job_id, tako_store_outcome_t *outcome)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    if (guarded_update (self,
        "UPDATE executions SET status = 'cancelled', ended_at = now (),"
        "  error = jsonb_build_object ('type', 'cancelled', 'message', 'Job was cancelled',"
        "    'phase', CASE WHEN status = 'running' THEN 'execution' ELSE 'startup' END),"
        "  lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL"
        " WHERE id = $1 AND status IN ('queued', 'running')", &params, outcome))
        return -1;
    bool exists = true;
    if (*outcome == TAKO_STORE_STALE && job_exists (self, job_id, &exists))
        return -1;
    if (!exists)
        *outcome = TAKO_STORE_NOT_FOUND;
    return 0;
}

//  Lock the job row and claim (job, attempt) in attempt_results. Sets
//  *outcome to APPLIED when the result may be written.
static int
finish_claim (tako_store_t *self, const char *job_id, int attempt, const char *status,
              tako_store_outcome_t *outcome)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    PGresult *current = store_query (self,
        "SELECT status, attempt FROM executions WHERE id = $1 FOR UPDATE", &params, 0);
    store_params_free (&params);
    if (!current)
        return -1;
    if (PQntuples (current) == 0) {
        PQclear (current);
        *outcome = TAKO_STORE_NOT_FOUND;
        return 0;
    }
    bool at_attempt = atoi (PQgetvalue (current, 0, 1)) == attempt
                   && !tako_store_status_terminal (PQgetvalue (current, 0, 0));
    PQclear (current);

    store_params_text (&params, job_id);
    store_params_int (&params, attempt);
    store_params_text (&params, status);
    int64_t claimed = store_execute (self,
        "INSERT INTO attempt_results (job_id, attempt, status) VALUES ($1, $2::integer, $3)"
        " ON CONFLICT DO NOTHING", &params);
    store_params_free (&params);
    if (claimed < 0)
        return -1;
    *outcome = claimed == 0? TAKO_STORE_DUPLICATE:
               at_attempt? TAKO_STORE_APPLIED: TAKO_STORE_STALE;
    return 0;
}

//  Write the result; *record is the job's record after it (RECORD_FIELDS).
static int
finish_record (tako_store_t *self, const char *job_id, json_t *result, json_t **record)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    store_params_string_field (&params, result, "status");
    store_params_int_field (&params, result, "exit_code");
    store_params_string_field (&params, result, "stdout");
    store_params_string_field (&params, result, "stderr");
    store_params_bool_field (&params, result, "stdout_truncated");
    store_params_bool_field (&params, result, "stderr_truncated");
    store_params_json_field (&params, result, "output");
    store_params_json_field (&params, result, "error");
    store_params_json_field (&params, result, "timing");
    store_params_json_field (&params, result, "resource_usage");
    store_params_int_field (&params, result, "duration_ms");
    int rc = store_query_json (self,
        "UPDATE executions e SET status = $2, ended_at = now (), exit_code = $3::integer,"
        "  stdout = $4, stderr = $5,"
        "  stdout_truncated = coalesce ($6::boolean, false),"
        "  stderr_truncated = coalesce ($7::boolean, false),"
        "  output = $8::jsonb, error = $9::jsonb, timing = $10::jsonb,"
        "  resource_usage = $11::jsonb,"
        "  duration_ms = coalesce ($12::bigint, (extract (epoch FROM now ()"
        "    - coalesce (e.started_at, now ())) * 1000)::bigint),"
        "  lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL"
        " WHERE e.id = $1 RETURNING json_build_object (" RECORD_FIELDS ")", &params, record);
    store_params_free (&params);
    if (rc == 0 && !*record)
        rc = store_fail (self, "job row vanished while locked");
    return rc;
}

static int
finish_artifacts (tako_store_t *self, const char *job_id,
                  const tako_store_artifact_t *artifacts, size_t count)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    int64_t rows = store_execute (self, "DELETE FROM artifacts WHERE job_id = $1", &params);
    store_params_free (&params);
    for (size_t i = 0; rows >= 0 && i < count; i++) {
        const tako_store_artifact_t *artifact = &artifacts [i];
        if (!artifact->name || !*artifact->name || strchr (artifact->name, '/'))
            return store_fail (self, "invalid artifact name");
        store_params_text (&params, job_id);
        store_params_text (&params, artifact->name);
        store_params_text (&params, artifact->content_type?
                                    artifact->content_type: "application/octet-stream");
        store_params_bytes (&params, artifact->data, artifact->size);
        rows = store_execute (self,
            "INSERT INTO artifacts (job_id, name, content_type, content, size_bytes, sha256)"
            " VALUES ($1, $2, $3, $4::bytea, octet_length ($4::bytea),"
            "         encode (sha256 ($4::bytea), 'hex'))", &params);
        store_params_free (&params);
    }
    return rows < 0? -1: 0;
}

int
tako_store_job_finish (tako_store_t *self, const char *job_id, int attempt,
                       json_t *result, const tako_store_artifact_t *artifacts,
                       size_t artifact_count, tako_store_outcome_t *outcome,
                       json_t **record)
{
    json_t *written = NULL;
    if (record)
        *record = NULL;
    const char *status = json_string_value (json_object_get (result, "status"));
    if (!tako_store_status_terminal (status))
        return store_fail (self, "invalid result: status must be terminal");
    if (store_begin (self))
        return -1;
    if (finish_claim (self, job_id, attempt, status, outcome))
        goto failed;
    //  A duplicate or stale result leaves no trace: roll back the claim.
    if (*outcome != TAKO_STORE_APPLIED) {
        store_rollback (self);
        return 0;
    }
    if (finish_record (self, job_id, result, &written)
    ||  finish_artifacts (self, job_id, artifacts, artifact_count)
    ||  store_commit (self))
        goto failed;
    if (record)
        *record = written;
    else
        json_decref (written);
    return 0;
failed:
    json_decref (written);
    store_rollback (self);
    return -1;
}

//  ---------------------------------------------------------------------
//  Reads

int
tako_store_job_get (tako_store_t *self, const char *job_id, bool full, json_t **job)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    int rc = store_query_json (self, full?
        "SELECT json_build_object (" RECORD_FIELDS "," FULL_FIELDS ")"
        "  FROM executions e WHERE e.id = $1":
        "SELECT json_build_object (" RECORD_FIELDS ") FROM executions e WHERE e.id = $1",
        &params, job);
    store_params_free (&params);
    return rc;
}

int
tako_store_job_payload (tako_store_t *self, const char *job_id, json_t **payload)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    int rc = store_query_json (self,
        "SELECT json_build_object (" STATE_FIELDS ","
        "  'code', e.code, 'input_data', e.input_data)"
        "  FROM executions e WHERE e.id = $1", &params, payload);
    store_params_free (&params);
    return rc;
}

int
tako_store_job_list (tako_store_t *self, const char *status, const char *job_type,
                     int limit, int offset, bool full, json_t **page)
{
    *page = NULL;
    if (store_paging_check (self, &limit, offset))
        return -1;
    store_params_t params = { .count = 0 };
    store_params_text (&params, status);
    store_params_text (&params, job_type);
    store_params_int (&params, limit + 1);
    store_params_int (&params, offset);
    #define LIST_WHERE \
        " FROM executions e WHERE ($1::text IS NULL OR e.status = $1)" \
        "   AND ($2::text IS NULL OR e.job_type = $2)" \
        " ORDER BY e.created_at DESC, e.id DESC LIMIT $3::integer OFFSET $4::integer"
    int rc = store_query_page (self, full?
        "SELECT json_build_object (" RECORD_FIELDS "," FULL_FIELDS ")" LIST_WHERE:
        "SELECT json_build_object (" RECORD_FIELDS ")" LIST_WHERE,
        &params, limit, offset, page);
    #undef LIST_WHERE
    store_params_free (&params);
    return rc;
}

int
tako_store_job_queue_position (tako_store_t *self, const char *job_id, int64_t *position)
{
    *position = 0;
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    PGresult *result = store_query (self,
        "SELECT 1 + (SELECT count (*) FROM executions e"
        "   WHERE e.status = 'queued' AND (e.priority > j.priority"
        "      OR (e.priority = j.priority AND (e.queued_at, e.id) < (j.queued_at, j.id))))"
        "  FROM executions j WHERE j.id = $1 AND j.status = 'queued'", &params, 0);
    store_params_free (&params);
    if (!result)
        return -1;
    if (PQntuples (result) == 1)
        *position = strtoll (PQgetvalue (result, 0, 0), NULL, 10);
    PQclear (result);
    return 0;
}

int
tako_store_job_counts (tako_store_t *self, json_t **counts)
{
    return store_query_json (self,
        "SELECT json_build_object ("
        "  'queued', count (*) FILTER (WHERE status = 'queued'),"
        "  'running', count (*) FILTER (WHERE status = 'running'))"
        "  FROM executions WHERE status IN ('queued', 'running')", NULL, counts);
}

int
tako_store_job_stats (tako_store_t *self, json_t **stats)
{
    return store_query_json (self,
        "SELECT json_build_object ('items', coalesce (json_agg (json_build_object ("
        "  'status', s.status, 'job_type', s.job_type, 'count', s.n)"
        "  ORDER BY s.status, s.job_type), '[]'::json))"
        "  FROM (SELECT status, job_type, count (*) AS n FROM executions"
        "        GROUP BY status, job_type) s", NULL, stats);
}

int
tako_store_jobs_unfinished (tako_store_t *self, json_t **jobs)
{
    return store_query_json (self,
        "SELECT coalesce (json_agg (json_build_object (" STATE_FIELDS ")"
        "  ORDER BY " QUEUE_ORDER "), '[]'::json)"
        "  FROM executions e WHERE e.status IN ('queued', 'running')", NULL, jobs);
}

int
tako_store_cleanup (tako_store_t *self, int ttl_days, int64_t *deleted)
{
    *deleted = 0;
    if (ttl_days < 0)
        return store_fail (self, "ttl_days must not be negative");
    if (ttl_days == 0)
        return 0;
    store_params_t params = { .count = 0 };
    store_params_int (&params, ttl_days);
    //  Artifacts and attempt results go with their job (ON DELETE CASCADE).
    int64_t rows = store_execute (self,
        "DELETE FROM executions WHERE status IN " TERMINAL_SQL
        "   AND created_at < now () - make_interval (days => $1::integer)", &params);
    store_params_free (&params);
    if (rows < 0)
        return -1;
    *deleted = rows;
    return 0;
}
