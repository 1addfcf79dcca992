/*  scheduler_submit — SUBMIT: check it, hash it, have the recorder commit
    it (job.insert), and only then answer ACCEPTED and queue the job.    */

#include <inttypes.h>
#include "scheduler_internal.h"
#include "tako_sha256.h"
#include "tako_envspec.h"

//  Longest idempotency key, job_ref and lineage id we pass on.
#define IDEMPOTENCY_KEY_MAX   256
#define JOB_REF_MAX           128
#define JOB_ID_MAX            128

//  A SUBMIT's optional int field, or INT64_MIN when absent.
static int64_t
msg_int_or_unset (tako_msg_t *msg, const char *name)
{
    return tako_msg_has (msg, name)? tako_msg_int (msg, name, 0): INT64_MIN;
}

static json_t *
strlist_to_json (tako_msg_t *msg, const char *name)
{
    size_t count = 0;
    const char *const *items = tako_msg_strlist (msg, name, &count);
    if (!items)
        return NULL;
    json_t *array = json_array ();
    for (size_t i = 0; array && i < count; i++)
        json_array_append_new (array, json_string (items [i]));
    return array;
}

static void
job_set_string (json_t *job, const char *name, const char *value)
{
    if (value)
        json_object_set_new (job, name, json_string (value));
}

static bool
length_ok (const char *value, size_t max)
{
    return !value || (*value && strlen (value) <= max);
}

//  Lineage and idempotency fields: bounded, and relationship one of ours.
static const char *
submit_check_extras (tako_msg_t *msg)
{
    const char *relationship = tako_msg_str (msg, "relationship");
    if (!length_ok (tako_msg_str (msg, "idempotency_key"), IDEMPOTENCY_KEY_MAX))
        return "idempotency_key is empty or too long";
    if (!length_ok (tako_msg_str (msg, "job_ref"), JOB_REF_MAX)
    ||  (tako_msg_str (msg, "job_ref") && !strstr (tako_msg_str (msg, "job_ref"), "@sha256:")))
        return "job_ref must be name@sha256:<hex>";
    if (!length_ok (tako_msg_str (msg, "parent_execution_id"), JOB_ID_MAX))
        return "parent_execution_id is empty or too long";
    if (relationship && !streq (relationship, "rerun") && !streq (relationship, "fork"))
        return "relationship must be rerun or fork";
    return NULL;
}

//  The code and input hashes the record keeps.
static void
job_add_hashes (json_t *job)
{
    const char *code = json_string_value (json_object_get (job, "code"));
    char *code_hash = code? tako_sha256_hex (code, strlen (code)): NULL;
    char *input = json_dumps (json_object_get (job, "input_data"),
                              JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *input_hash = input? tako_sha256_hex (input, strlen (input)): NULL;
    job_set_string (job, "code_hash", code_hash);
    job_set_string (job, "input_hash", input_hash);
    free (code_hash);
    free (input);
    free (input_hash);
}

//  The job object of job.insert from a valid SUBMIT, or NULL.
static json_t *
job_from_submit (scheduler_t *self, tako_msg_t *msg, int timeout, int startup_timeout)
{
    json_t *input = tako_msg_object (msg, "input_data");
    json_t *job = json_pack ("{s:s, s:O, s:s, s:i, s:i, s:i, s:i}",
        "code", tako_msg_str (msg, "code"),
        "input_data", input && !json_is_null (input)? input: json_object (),
        "job_type", tako_msg_str (msg, "job_type")?: TAKO_CONFIG_DEFAULT_JOB_TYPE,
        "timeout_s", timeout, "startup_timeout_s", startup_timeout,
        "priority", 0, "max_attempts", 1 + self->config->max_retry_attempts);
    if (!job)
        return NULL;
    //  json_pack's O took a reference to the fresh {} too: drop ours.
    if (!input || json_is_null (input))
        json_decref (json_object_get (job, "input_data"));
    json_t *requirements = strlist_to_json (msg, "requirements");
    if (requirements)
        json_object_set_new (job, "requirements", requirements);
    static const char *copied [] = {
        "job_ref", "parent_execution_id", "relationship", "idempotency_key",
        "client_ip", "correlation_id", NULL
    };
    for (const char **name = copied; *name; name++)
        job_set_string (job, *name, tako_msg_str (msg, *name));
    job_add_hashes (job);
    return job;
}

//  Pin job to its environment: unless it carries a job_ref already (a
//  rerun keeps its original's), the job_ref of its job type plus its own
//  requirements as the configuration says now. 0, or -1 with *error set
//  (a requirement the builder would refuse; caller frees).
int
scheduler_job_pin (scheduler_t *self, json_t *job, char **error)
{
    if (json_is_string (json_object_get (job, "job_ref")))
        return 0;
    const tako_config_job_type_t *job_type = tako_config_job_type (self->config,
        json_string_value (json_object_get (job, "job_type")));
    if (!job_type) {
        *error = strdup ("unknown job type");
        return -1;
    }
    json_t *list = json_object_get (job, "requirements");
    size_t count = json_array_size (list);
    const char **extra = calloc (count + 1, sizeof (char *));
    for (size_t i = 0; extra && i < count; i++)
        extra [i] = json_string_value (json_array_get (list, i));
    tako_envspec_t *spec = extra? tako_envspec_new (job_type, extra, count, error): NULL;
    free (extra);
    if (!spec) {
        if (!*error)
            *error = strdup ("out of memory");
        return -1;
    }
    job_set_string (job, "job_ref", tako_envspec_job_ref (spec));
    tako_envspec_destroy (&spec);
    return 0;
}

bool
scheduler_queue_full (scheduler_t *self)
{
    return tako_jobqueue_size (self->queue) + (size_t) self->inserts_pending
        >= (size_t) self->config->max_queue_size;
}

//  A rerun or fork of the job whose job.payload is payload: same input,
//  job type, timeouts, requirements and pinned job_ref; code is the new
//  code of a fork (NULL: the same). A new job object, or NULL.
json_t *
scheduler_job_derived (scheduler_t *self, json_t *payload, const char *parent_id,
                       const char *code, const char *relationship)
{
    json_t *job = json_pack ("{s:s, s:s, s:s, s:i, s:i}",
        "code", code? code: json_string_value (json_object_get (payload, "code"))?: "",
        "parent_execution_id", parent_id, "relationship", relationship,
        "priority", 0, "max_attempts", 1 + self->config->max_retry_attempts);
    static const char *copied [] = {
        "input_data", "job_type", "timeout_s", "startup_timeout_s", "requirements",
        "job_ref", "client_ip", "correlation_id", NULL
    };
    for (const char **name = copied; job && *name; name++) {
        json_t *value = json_object_get (payload, *name);
        if (value && !json_is_null (value))
            json_object_set (job, *name, value);
    }
    if (job) {
        job_add_hashes (job);
        char *error = NULL;             //  an old record's requirement the
        scheduler_job_pin (self, job, &error);  //  builder refuses: unpinned
        free (error);
    }
    return job;
}

void
scheduler_handle_submit (scheduler_t *self, tako_msg_t *msg)
{
    const char *client = tako_msg_address (msg);
    const char *request_id = tako_msg_str (msg, "request_id");
    char reason [128];
    int timeout = 0, startup_timeout = 0;
    json_t *requirements = strlist_to_json (msg, "requirements");
    int rc = tako_scheduler_validate (self->config, tako_msg_str (msg, "code"),
                                      tako_msg_object (msg, "input_data"),
                                      tako_msg_str (msg, "job_type"),
                                      msg_int_or_unset (msg, "timeout"),
                                      msg_int_or_unset (msg, "startup_timeout"),
                                      requirements, &timeout, &startup_timeout,
                                      reason, sizeof reason);
    json_decref (requirements);
    const char *extras = rc == 0? submit_check_extras (msg): NULL;
    if (rc != 0 || extras) {
        scheduler_error (self, client, request_id, 422, extras? extras: reason, NULL);
        return;
    }
    if (scheduler_queue_full (self)) {
        scheduler_error (self, client, request_id, 503, "queue full", NULL);
        return;
    }
    json_t *job = job_from_submit (self, msg, timeout, startup_timeout);
    if (!job) {
        scheduler_error (self, client, request_id, 500, "out of memory", NULL);
        return;
    }
    char *error = NULL;
    if (scheduler_job_pin (self, job, &error) != 0) {
        scheduler_error (self, client, request_id, 422, error, NULL);
        free (error);
        json_decref (job);
        return;
    }
    scheduler_insert (self, job, client, request_id, false);
}

//  --------------------------------------------------------------------------
//  job.insert and its answer

static void
insert_answer_accepted (scheduler_t *self, request_t *request, const char *job_id,
                        const char *status, bool existing)
{
    if (request->client_query) {
        scheduler_reply (self, request->client, request->client_request_id, 200,
                         json_pack ("{s:s, s:s}", "job_id", job_id, "status", status), NULL);
        return;
    }
    tako_msg_t *accepted = tako_msg_new ("ACCEPTED");
    if (!accepted)
        return;
    tako_msg_set_str (accepted, "request_id", request->client_request_id);
    tako_msg_set_str (accepted, "job_id", job_id);
    tako_msg_set_str (accepted, "status", status);
    tako_msg_set_bool (accepted, "existing", existing);
    long position = tako_jobqueue_position (self->queue, job_id);
    if (position >= 0)
        tako_msg_set_int (accepted, "queue_position", position);
    scheduler_send (self, accepted, request->client);
}

static void
insert_answer_error (scheduler_t *self, request_t *request, int code, const char *reason,
                     const char *job_id)
{
    if (request->client_query) {
        json_t *result = job_id? json_pack ("{s:s}", "job_id", job_id): NULL;
        scheduler_reply (self, request->client, request->client_request_id, code, result, reason);
    }
    else
        scheduler_error (self, request->client, request->client_request_id, code, reason, job_id);
}

//  A committed new job: into the table and the queue, event "queued".
static void
insert_created (scheduler_t *self, request_t *request, const char *job_id)
{
    if (zhashx_lookup (self->jobs, job_id))
        return;
    job_t *job = scheduler_job_new (self, job_id, 1, 0, 0);
    if (!job) {
        tako_error (LOG, "out of memory: job %s stays queued until a restart", job_id);
        return;
    }
    job->payload = json_incref (request->context);
    //  Committed: it must run even if the queue filled meanwhile.
    if (tako_jobqueue_push (self->queue, job_id, job->priority) == TAKO_JOBQUEUE_FULL)
        tako_jobqueue_push_front (self->queue, job_id, job->priority);
    scheduler_publish (self, job, "queued", "queued", NULL);
}

static void
insert_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                 const char *reason)
{
    if (!request->late)
        self->inserts_pending--;
    const char *outcome = json_string_value (json_object_get (result, "outcome"));
    const char *job_id = json_string_value (json_object_get (result, "job_id"));
    const char *status = json_string_value (json_object_get (result, "status"));
    if (code == 200 && outcome && job_id && status && streq (outcome, "created"))
        insert_created (self, request, job_id);
    else
    //  Committed by an earlier try whose answer was lost (a broker or
    //  recorder restart between commit and reply), and so never queued
    //  here: the same key with the same payload, so this is its payload.
    if (code == 200 && outcome && job_id && status && streq (outcome, "existing")
    &&  streq (status, "queued") && !zhashx_lookup (self->jobs, job_id)) {
        tako_info (LOG, "job %s: committed before, queued now", job_id);
        insert_created (self, request, job_id);
    }
    if (!request->client)
        return;             //  answered already (timed out before)
    if (code == 200 && job_id && status)
        insert_answer_accepted (self, request, job_id, status,
                                outcome && streq (outcome, "existing"));
    else
    if (code == 409 && job_id)
        insert_answer_error (self, request, 409,
                             "idempotency key already used with a different payload", job_id);
    else
    if (code == 503)
        insert_answer_error (self, request, 503, "recorder unavailable", NULL);
    else
    if (code == 400)
        insert_answer_error (self, request, 422, reason? reason: "invalid job", NULL);
    else
        insert_answer_error (self, request, code >= 400? code: 500,
                             reason? reason: "could not record the job", NULL);
    free (request->client);
    request->client = NULL;
}

//  Have the recorder commit job (taken); answer the client afterwards
//  with ACCEPTED (SUBMIT) or REPLY {job_id, status} (client_query).
void
scheduler_insert (scheduler_t *self, json_t *job, const char *client,
                  const char *client_request_id, bool client_query)
{
    const char *key = json_string_value (json_object_get (job, "idempotency_key"));
    if (key) {
        char *fingerprint = tako_scheduler_fingerprint (job);
        job_set_string (job, "payload_fingerprint", fingerprint);
        free (fingerprint);
    }
    json_t *context = json_incref (job);
    request_t *request = scheduler_request (self, "job.insert", job, insert_on_reply, false);
    if (!request) {
        json_decref (context);
        return;
    }
    request->context = context;
    request->late_ms = SCHEDULER_LATE_INSERT_MS;
    request->client_query = client_query;
    scheduler_request_set_client (request, client, client_request_id);
    self->inserts_pending++;
}
