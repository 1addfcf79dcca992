/*  scheduler_control — what clients ask of the scheduler besides SUBMIT
    (CANCEL; QUERY job.rerun, job.fork, job.position, pool.stats, health),
    and the start-up recovery from the recorder's unfinished jobs.       */

#include <inttypes.h>
#include "scheduler_internal.h"

//  --------------------------------------------------------------------------
//  CANCEL

static void
cancel_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                 const char *reason)
{
    (void) result;
    job_t *job = (job_t *) zhashx_lookup (self->jobs, request->job_id);
    if (code == 200) {
        if (job) {
            scheduler_publish (self, job, "cancelled", "cancelled", NULL);
            //  On an executor, it stays until its RESULT (or lease) ends it.
            if (!scheduler_job_on_executor (job))
                scheduler_job_forget (self, job);
        }
        scheduler_reply (self, request->client, request->client_request_id, 200,
                         json_pack ("{s:s, s:s}", "status", "cancelled",
                                    "job_id", request->job_id), NULL);
        return;
    }
    if (job && !scheduler_job_on_executor (job) && job->state != JOB_RETRYING)
        scheduler_job_forget (self, job);   //  terminal or gone in the record
    if (code == 409)
        scheduler_reply (self, request->client, request->client_request_id, 409, NULL,
                         "job already finished");
    else
    if (code == 404)
        scheduler_reply (self, request->client, request->client_request_id, 404, NULL,
                         "job not found");
    else
        scheduler_reply (self, request->client, request->client_request_id, code, NULL,
                         reason? reason: "cancel failed");
}

void
scheduler_handle_cancel (scheduler_t *self, tako_msg_t *msg)
{
    const char *job_id = tako_msg_str (msg, "job_id");
    job_t *job = (job_t *) zhashx_lookup (self->jobs, job_id);
    if (job && !job->cancelled) {
        job->cancelled = true;
        tako_jobqueue_remove (self->queue, job_id);
        if (scheduler_job_on_executor (job))
            scheduler_cancel_executor (self, job->executor, job->job_id, job->attempt);
    }
    //  The record decides: queued/running → cancelled, terminal → 409,
    //  unknown → 404. It also covers jobs we do not hold in memory.
    request_t *request = scheduler_request (self, "job.cancel",
                                            json_pack ("{s:s}", "job_id", job_id),
                                            cancel_on_reply, true);
    if (!request)
        return;
    request->job_id = strdup (job_id);
    scheduler_request_set_client (request, tako_msg_address (msg), tako_msg_str (msg, "request_id"));
}

//  --------------------------------------------------------------------------
//  QUERY: rerun and fork

static void
derive_on_payload (scheduler_t *self, request_t *request, int code, json_t *result,
                   const char *reason)
{
    const char *relationship = json_string_value (json_object_get (request->context,
                                                                   "relationship"));
    const char *code_text = json_string_value (json_object_get (request->context, "code"));
    const char *status = json_string_value (json_object_get (result, "status"));
    if (code != 200) {
        scheduler_reply (self, request->client, request->client_request_id,
                         code == 404? 404: code == 503? 503: 500, NULL,
                         code == 404? "job not found": reason? reason: "recorder failed");
        return;
    }
    bool finished = status && !streq (status, "queued") && !streq (status, "running");
    if (streq (relationship, "rerun") && !finished) {
        scheduler_reply (self, request->client, request->client_request_id, 409, NULL,
                         "only a finished job can be rerun");
        return;
    }
    if (scheduler_queue_full (self)) {
        scheduler_reply (self, request->client, request->client_request_id, 503, NULL,
                         "queue full");
        return;
    }
    json_t *job = scheduler_job_derived (self, result, request->job_id, code_text, relationship);
    if (job)
        scheduler_insert (self, job, request->client, request->client_request_id, true);
}

static void
query_derive (scheduler_t *self, tako_msg_t *msg, json_t *params, const char *relationship)
{
    const char *client = tako_msg_address (msg);
    const char *request_id = tako_msg_str (msg, "request_id");
    const char *job_id = json_string_value (json_object_get (params, "job_id"));
    const char *code = json_string_value (json_object_get (params, "code"));
    if (!job_id) {
        scheduler_reply (self, client, request_id, 400, NULL, "job_id is required");
        return;
    }
    if (streq (relationship, "fork")) {
        char reason [128];
        int timeout, startup_timeout;
        //  Only the code is new; the rest was valid when first submitted.
        if (tako_scheduler_validate (self->config, code, NULL, NULL, INT64_MIN, INT64_MIN, NULL,
                                     &timeout, &startup_timeout, reason, sizeof reason)) {
            scheduler_reply (self, client, request_id, 422, NULL, reason);
            return;
        }
    }
    request_t *request = scheduler_request (self, "job.payload",
                                            json_pack ("{s:s}", "job_id", job_id),
                                            derive_on_payload, false);
    if (!request)
        return;
    request->job_id = strdup (job_id);
    request->context = json_pack ("{s:s, s:s?}", "relationship", relationship, "code", code);
    scheduler_request_set_client (request, client, request_id);
}

//  --------------------------------------------------------------------------
//  QUERY: statistics

static json_t *
pool_stats (scheduler_t *self)
{
    int capacity = scheduler_capacity (self);
    int queued = 0;
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job;
         job = (job_t *) zhashx_next (self->jobs))
        queued += job->state == JOB_QUEUED || job->state == JOB_BACKOFF;
    json_int_t warm_ready = 0, warm_memory = 0;
    for (executor_t *executor = (executor_t *) zhashx_first (self->executors); executor;
         executor = (executor_t *) zhashx_next (self->executors)) {
        warm_ready += executor->warm_ready;
        warm_memory += executor->warm_memory_bytes;
    }
    return json_pack ("{s:i, s:i, s:i, s:i, s:I, s:I, s:I}", "pending", queued,
                      "running", scheduler_running (self),
                      "max_workers", capacity > 0? capacity: self->config->max_workers,
                      "max_queue_size", self->config->max_queue_size,
                      "warm_ready", warm_ready, "warm_memory_bytes", warm_memory,
                      "infrastructure_failures", (json_int_t) self->infra_failures);
}

static json_t *
health (scheduler_t *self)
{
    return json_pack ("{s:o, s:o, s:i, s:b}",
                      "circuit_breaker", tako_breaker_to_json (self->breaker, scheduler_now ()),
                      "queue_stats", pool_stats (self),
                      "executors", (int) zhashx_size (self->executors),
                      "recovered", self->recovered);
}

static void
query_position (scheduler_t *self, tako_msg_t *msg, json_t *params)
{
    const char *client = tako_msg_address (msg);
    const char *request_id = tako_msg_str (msg, "request_id");
    const char *job_id = json_string_value (json_object_get (params, "job_id"));
    long position = job_id? tako_jobqueue_position (self->queue, job_id): -1;
    if (!job_id)
        scheduler_reply (self, client, request_id, 400, NULL, "job_id is required");
    else
    if (position < 0)
        scheduler_reply (self, client, request_id, 404, NULL, "job not queued");
    else
        scheduler_reply (self, client, request_id, 200,
                         json_pack ("{s:I}", "queue_position", (json_int_t) position), NULL);
}

void
scheduler_handle_query (scheduler_t *self, tako_msg_t *msg)
{
    const char *client = tako_msg_address (msg);
    const char *request_id = tako_msg_str (msg, "request_id");
    const char *query = tako_msg_str (msg, "query");
    json_t *params = tako_msg_object (msg, "params");
    if (streq (query, "job.rerun"))
        query_derive (self, msg, params, "rerun");
    else
    if (streq (query, "job.fork"))
        query_derive (self, msg, params, "fork");
    else
    if (streq (query, "job.position"))
        query_position (self, msg, params);
    else
    if (streq (query, "pool.stats"))
        scheduler_reply (self, client, request_id, 200, pool_stats (self), NULL);
    else
    if (streq (query, "health"))
        scheduler_reply (self, client, request_id, 200, health (self), NULL);
    else
        scheduler_reply (self, client, request_id, 400, NULL, "unknown query");
}

//  --------------------------------------------------------------------------
//  Recovery

//  The event sequence a job has reached: each attempt publishes "started"
//  and one closing event, "queued" opened the first (see
//  scheduler_dispatch.c).
static int64_t
recovered_seq (int attempt, bool running)
{
    return 2 * (int64_t) attempt - (running? 0: 1);
}

static void
recover_job (scheduler_t *self, json_t *record)
{
    const char *job_id = json_string_value (json_object_get (record, "job_id"));
    const char *status = json_string_value (json_object_get (record, "status"));
    int attempt = (int) json_integer_value (json_object_get (record, "attempt"));
    int priority = (int) json_integer_value (json_object_get (record, "priority"));
    if (!job_id || !status || attempt < 1 || zhashx_lookup (self->jobs, job_id))
        return;
    bool running = streq (status, "running");
    job_t *job = scheduler_job_new (self, job_id, attempt, priority,
                                    recovered_seq (attempt, running));
    if (!job)
        return;
    if (running) {
        //  Its executor may still run it: whoever quotes its lease adopts it.
        const char *lease_id = json_string_value (json_object_get (record, "lease_id"));
        const char *owner = json_string_value (json_object_get (record, "lease_owner"));
        job->state = JOB_RUNNING;
        job->started = true;
        snprintf (job->lease_id, sizeof job->lease_id, "%s", lease_id? lease_id: "");
        job->executor = owner? strdup (owner): NULL;
        job->lease_expires = scheduler_now () + 2 * self->lease_ms + SCHEDULER_RECOVERY_GRACE_MS;
    }
    else
    //  Walked backwards: the front of each priority ends up in order.
    if (tako_jobqueue_push_front (self->queue, job_id, priority) != TAKO_JOBQUEUE_OK)
        scheduler_job_forget (self, job);
}

static void
recover_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                  const char *reason)
{
    (void) request;
    json_t *jobs = json_object_get (result, "jobs");
    if (code != 200 || !json_is_array (jobs)) {
        tako_warning (LOG, "unfinished jobs not available (%d %s), asking again", code,
                      reason? reason: "");
        self->recover_at = scheduler_now () + SCHEDULER_RESEND_MAX_MS;
        return;
    }
    for (size_t index = json_array_size (jobs); index > 0; index--)
        recover_job (self, json_array_get (jobs, index - 1));
    self->recovered = true;
    tako_info (LOG, "recovered %zu unfinished jobs", json_array_size (jobs));
}

void
scheduler_recover_tick (scheduler_t *self, int64_t now)
{
    if (self->recovered || !self->recover_at || now < self->recover_at)
        return;
    self->recover_at = 0;
    scheduler_request (self, "job.unfinished", json_object (), recover_on_reply, true);
}
