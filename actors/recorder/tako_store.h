/*  tako_store — every durable record of tako-vm, in PostgreSQL.

    The recorder actor is the only holder of a store; nothing here knows
    about ZeroMQ. Records go in and come out as jansson values shaped like
    the REST contract (docs/storage.md lists the tables).

        tako_store_t *store = tako_store_new (url);
        if (tako_store_connect (store) || tako_store_migrate (store))
            fprintf (stderr, "%s\n", tako_store_error (store));

        json_t *job = json_pack ("{s:s, s:s}", "code", "print(1)", "job_type", "default");
        tako_store_outcome_t outcome;
        char *job_id = NULL, *status = NULL;
        tako_store_job_insert (store, job, &outcome, &job_id, &status);

    Every function returns 0 (or sets its outputs) on success and -1 on
    failure; then tako_store_error () says why in a short sentence that is
    safe to show a client (no host path, no SQL), and
    tako_store_unavailable () tells whether the server could not be
    reached. A store never retries by itself: the caller calls
    tako_store_connect () again after tako_store_retry_delay_ms ().

    State changes are guarded: a write that does not match the record's
    current status and attempt changes nothing and reports
    TAKO_STORE_STALE; a second result for the same (job, attempt) reports
    TAKO_STORE_DUPLICATE. Every statement is parameterised.             */

#ifndef TAKO_STORE_H_INCLUDED
#define TAKO_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

//  Paging bounds of the list calls (REST: limit 1–1000, default 100).
#define TAKO_STORE_LIST_LIMIT_MAX       1000
#define TAKO_STORE_LIST_LIMIT_DEFAULT   100
//  A digest prefix shorter than this is refused (too ambiguous).
#define TAKO_STORE_DIGEST_PREFIX_MIN    6
//  Reconnect backoff: doubles from the first delay up to the cap.
#define TAKO_STORE_RETRY_DELAY_FIRST_MS 100
#define TAKO_STORE_RETRY_DELAY_MAX_MS   5000

typedef enum {
    TAKO_STORE_APPLIED = 0,     //  the write took effect
    TAKO_STORE_CREATED,         //  insert: a new job
    TAKO_STORE_EXISTING,        //  insert: same idempotency key and payload
    TAKO_STORE_CONFLICT,        //  insert: same key, different payload
    TAKO_STORE_STALE,           //  guard did not match: nothing changed
    TAKO_STORE_DUPLICATE,       //  this (job, attempt) has a result already
    TAKO_STORE_NOT_FOUND        //  no such job
} tako_store_outcome_t;

//  One output file of a job, written with its result.
typedef struct {
    const char *name;           //  one path component
    const char *content_type;   //  NULL = application/octet-stream
    const void *data;
    size_t size;
} tako_store_artifact_t;

typedef struct _tako_store_t tako_store_t;

//  --- Connection ---------------------------------------------------------

//  A store for this libpq URL or key=value string. Does not connect.
tako_store_t *tako_store_new (const char *url);

//  Close the connection and free; NULLs the caller's pointer.
void tako_store_destroy (tako_store_t **self_p);

//  Connect, or reconnect if the connection was lost. A healthy
//  connection is kept. 0 or -1 (then tako_store_unavailable is true).
int tako_store_connect (tako_store_t *self);

//  How long to wait before the next tako_store_connect after a failure;
//  doubles on each failed connect, resets on success.
int tako_store_retry_delay_ms (tako_store_t *self);

//  Why the last call failed; "" after a success.
const char *tako_store_error (tako_store_t *self);

//  How many statements this connection has prepared (each statement with
//  parameters is, on first use; for tests and diagnostics).
size_t tako_store_prepared_count (tako_store_t *self);

//  True if the last call failed because the server could not be reached.
bool tako_store_unavailable (tako_store_t *self);

//  Bring the schema to the newest version: each migration once, in one
//  transaction, under an advisory lock so concurrent starters are safe.
int tako_store_migrate (tako_store_t *self);

//  The schema version in the database (0 = none), or -1.
int tako_store_schema_version (tako_store_t *self);

//  Name of an outcome, e.g. "duplicate".
const char *tako_store_outcome_name (tako_store_outcome_t outcome);

//  --- Jobs ---------------------------------------------------------------

//  True for queued, running and the five terminal statuses.
bool tako_store_status_valid (const char *status);

//  True for succeeded, failed, timeout, oom, cancelled.
bool tako_store_status_terminal (const char *status);

//  Record a new job as queued. job holds: code (required), job_type
//  (default "default"), and optionally job_id (else a uuid is made),
//  job_ref, input_data, priority, max_attempts, timeout_s,
//  startup_timeout_s, requirements, code_hash, input_hash,
//  parent_execution_id, relationship, idempotency_key,
//  payload_fingerprint, client_ip, correlation_id.
//  Sets *outcome to CREATED, EXISTING or CONFLICT and *job_id / *status
//  (caller frees) to the new or the existing job.
int tako_store_job_insert (tako_store_t *self, json_t *job,
                           tako_store_outcome_t *outcome, char **job_id, char **status);

//  queued → running for this attempt, with a lease. APPLIED or STALE.
int tako_store_job_start (tako_store_t *self, const char *job_id, int attempt,
                          const char *lease_id, const char *lease_owner,
                          int lease_seconds, tako_store_outcome_t *outcome);

//  Extend the lease of a running attempt. APPLIED or STALE.
int tako_store_job_lease_renew (tako_store_t *self, const char *job_id, int attempt,
                                const char *lease_id, int lease_seconds,
                                tako_store_outcome_t *outcome);

//  Record the result of an attempt and make the job terminal. result:
//  status (terminal, required), exit_code, stdout, stderr,
//  stdout_truncated, stderr_truncated, output, error, timing,
//  resource_usage, duration_ms. Artifacts replace the job's artifacts.
//  APPLIED, DUPLICATE (this attempt has a result), STALE (the job is not
//  at this attempt or already terminal) or NOT_FOUND. When APPLIED and
//  record is not NULL, *record is the job's record as tako_store_job_get
//  (not full) would read it after the commit, made by the same statement
//  that writes the result (caller destroys).
int tako_store_job_finish (tako_store_t *self, const char *job_id, int attempt,
                           json_t *result, const tako_store_artifact_t *artifacts,
                           size_t artifact_count, tako_store_outcome_t *outcome,
                           json_t **record);

//  running (at this attempt) → queued at attempt + 1, lease cleared.
//  APPLIED or STALE.
int tako_store_job_requeue (tako_store_t *self, const char *job_id, int attempt,
                            tako_store_outcome_t *outcome);

//  queued or running → cancelled. APPLIED, STALE (already terminal) or
//  NOT_FOUND.
int tako_store_job_cancel (tako_store_t *self, const char *job_id,
                           tako_store_outcome_t *outcome);

//  One job in the REST result shape; full adds the view=full fields.
//  *job is NULL when there is no such job.
int tako_store_job_get (tako_store_t *self, const char *job_id, bool full, json_t **job);

//  What the scheduler needs to run or rerun a job: job_id, status,
//  attempt, max_attempts, priority, job_type, job_ref, code, input_data,
//  timeout_s, startup_timeout_s, requirements, lease fields. NULL if none.
int tako_store_job_payload (tako_store_t *self, const char *job_id, json_t **payload);

//  {items, limit, offset, has_more, count}, newest first; status and
//  job_type may be NULL (no filter); limit 0 means the default; count is
//  the number of items on this page.
int tako_store_job_list (tako_store_t *self, const char *status, const char *job_type,
                         int limit, int offset, bool full, json_t **page);

//  1-based place of a queued job in the queue (priority first, then
//  oldest); 0 when the job is not queued or unknown.
int tako_store_job_queue_position (tako_store_t *self, const char *job_id,
                                   int64_t *position);

//  {queued, running}: counts for /health and /pool/stats.
int tako_store_job_counts (tako_store_t *self, json_t **counts);

//  Jobs by status and job type: {items: [{status, job_type, count}]}.
int tako_store_job_stats (tako_store_t *self, json_t **stats);

//  Every queued or running job as payloads without code and input, in
//  queue order: what a restarted scheduler rebuilds its state from.
int tako_store_jobs_unfinished (tako_store_t *self, json_t **jobs);

//  Delete terminal jobs created more than ttl_days ago, with their
//  artifacts and results. ttl_days 0 keeps everything. *deleted = rows.
int tako_store_cleanup (tako_store_t *self, int ttl_days, int64_t *deleted);

//  --- Artifacts ----------------------------------------------------------

//  The bytes and {name, size_bytes, sha256, content_type} of one
//  artifact; also the derived input artifacts _code.py and _input.json.
//  *meta is NULL when there is none. *data is the caller's to free.
int tako_store_artifact_get (tako_store_t *self, const char *job_id, const char *name,
                             json_t **meta, void **data, size_t *size);

//  The job's artifacts' metadata, by name (array; empty if none).
int tako_store_artifact_list (tako_store_t *self, const char *job_id, json_t **list);

//  --- Dead letters -------------------------------------------------------

//  entry: job_id, job_data {code, input_data, job_type}, error_type,
//  error_message, retry_count, client_ip, correlation_id. *entry_id is
//  the new entry's uuid (caller frees).
int tako_store_dlq_insert (tako_store_t *self, json_t *entry, char **entry_id);

//  {items, limit, offset, has_more, count}, newest first.
int tako_store_dlq_list (tako_store_t *self, const char *error_type,
                         int limit, int offset, json_t **page);

//  {total, by_error_type: {type: count}}.
int tako_store_dlq_stats (tako_store_t *self, json_t **stats);

//  One entry, or NULL.
int tako_store_dlq_get (tako_store_t *self, const char *entry_id, json_t **entry);

//  Remove one entry; *removed false when there was none.
int tako_store_dlq_remove (tako_store_t *self, const char *entry_id, bool *removed);

//  --- Job versions -------------------------------------------------------

//  version: job_type, digest (64 hex, "sha256:" prefix allowed), job_ref,
//  env_ref, requirements_hash, built_by, version_tag. Registering a known
//  digest again keeps it (and takes a new version_tag if given).
int tako_store_version_register (tako_store_t *self, json_t *version);

//  By full digest, a prefix of at least TAKO_STORE_DIGEST_PREFIX_MIN hex
//  digits, or a job_ref "name@sha256:<hex>". NULL when none; an
//  ambiguous prefix is an error.
int tako_store_version_lookup (tako_store_t *self, const char *digest, json_t **version);

//  Versions of one job type, newest first (array).
int tako_store_version_list (tako_store_t *self, const char *job_type, json_t **list);

void tako_store_test (bool verbose);

#endif
