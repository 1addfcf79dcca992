/*  scheduler_dispatch — executors and their credits, DISPATCH under a
    lease, ACCEPT and JOB_HEARTBEAT, lease expiry, and the retry path of
    every infrastructure failure (requeue with backoff, or dead letter).

    The record moves queued → running only on ACCEPT (job.start), so a
    DISPATCH that was never accepted simply goes back to the queue at the
    same attempt. Each attempt publishes exactly "started" and then one of
    "retrying", "finished", "cancelled" or "dead_lettered": the event
    sequence of a job is therefore known from its attempt and status,
    which is how a restarted scheduler continues it without a gap.       */

#include <inttypes.h>
#include "scheduler_internal.h"

//  --------------------------------------------------------------------------
//  Executors

void
scheduler_executor_destroy (executor_t **self_p)
{
    executor_t *self = *self_p;
    if (!self)
        return;
    free (self->instance);
    free (self);
    *self_p = NULL;
}

static executor_t *
executor_get (scheduler_t *self, const char *instance)
{
    executor_t *executor = (executor_t *) zhashx_lookup (self->executors, instance);
    if (executor)
        return executor;
    executor = calloc (1, sizeof (executor_t));
    if (!executor || !(executor->instance = strdup (instance))) {
        free (executor);
        return NULL;
    }
    zhashx_insert (self->executors, executor->instance, executor);
    tako_info (LOG, "executor %s joined", instance);
    return executor;
}

void
scheduler_handle_ready (scheduler_t *self, tako_msg_t *msg)
{
    //  The sender's address is authoritative: the broker wrote it.
    executor_t *executor = executor_get (self, tako_msg_address (msg));
    if (!executor)
        return;
    int64_t slots = tako_msg_int (msg, "slots", 0);
    executor->credits = slots < 0? 0: slots > INT32_MAX? INT32_MAX: (int) slots;
    executor->warm_ready = tako_msg_int (msg, "warm_ready", 0);
    executor->warm_memory_bytes = tako_msg_int (msg, "warm_memory_bytes", 0);
    executor->last_seen = scheduler_now ();
}

bool
scheduler_job_on_executor (job_t *job)
{
    return job->state == JOB_DISPATCHED || job->state == JOB_RUNNING
        || job->state == JOB_FINISHING;
}

int
scheduler_running (scheduler_t *self)
{
    int running = 0;
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job;
         job = (job_t *) zhashx_next (self->jobs))
        running += scheduler_job_on_executor (job);
    return running;
}

//  Slots known: every executor's free credits plus the jobs it runs.
int
scheduler_capacity (scheduler_t *self)
{
    int capacity = scheduler_running (self);
    for (executor_t *executor = (executor_t *) zhashx_first (self->executors); executor;
         executor = (executor_t *) zhashx_next (self->executors))
        capacity += executor->credits;
    return capacity;
}

//  The executor with the most credits, or NULL when none has any.
static executor_t *
executor_pick (scheduler_t *self)
{
    executor_t *best = NULL;
    for (executor_t *executor = (executor_t *) zhashx_first (self->executors); executor;
         executor = (executor_t *) zhashx_next (self->executors))
        if (executor->credits > 0 && (!best || executor->credits > best->credits))
            best = executor;
    return best;
}

void
scheduler_cancel_executor (scheduler_t *self, const char *executor, const char *job_id,
                           int attempt)
{
    if (!executor)
        return;
    tako_msg_t *cancel = tako_msg_new ("CANCEL");
    if (!cancel)
        return;
    tako_msg_set_str (cancel, "job_id", job_id);
    tako_msg_set_int (cancel, "attempt", attempt);
    tako_msg_set_str (cancel, "reason", "cancelled by the scheduler");
    scheduler_send (self, cancel, executor);
}

//  --------------------------------------------------------------------------
//  Dispatch

static void
job_set_executor (job_t *job, const char *executor)
{
    free (job->executor);
    job->executor = executor? strdup (executor): NULL;
}

//  Back to the front of the queue at the same attempt (never started).
static void
job_requeue_front (scheduler_t *self, job_t *job)
{
    job->state = JOB_QUEUED;
    job_set_executor (job, NULL);
    tako_jobqueue_push_front (self->queue, job->job_id, job->priority);
}

static void
payload_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                  const char *reason)
{
    job_t *job = (job_t *) zhashx_lookup (self->jobs, request->job_id);
    if (!job)
        return;
    job->payload_loading = false;
    if (code == 200 && json_is_object (result))
        job->payload = json_incref (result);
    else {
        //  The record is gone (TTL cleanup, or never there): nothing to run.
        tako_warning (LOG, "job %s has no payload (%d %s): dropped", job->job_id, code,
                      reason? reason: "");
        scheduler_job_forget (self, job);
    }
}

static void
payload_load (scheduler_t *self, job_t *job)
{
    request_t *request = scheduler_request (self, "job.payload",
                                            json_pack ("{s:s}", "job_id", job->job_id),
                                            payload_on_reply, true);
    if (request) {
        request->job_id = strdup (job->job_id);
        job->payload_loading = true;
    }
}

static void
dispatch_set_payload (tako_msg_t *msg, json_t *payload)
{
    json_t *input = json_object_get (payload, "input_data");
    json_t *empty = json_object ();
    tako_msg_set_str (msg, "code", json_string_value (json_object_get (payload, "code"))?: "");
    tako_msg_set_object (msg, "input_data", input && json_is_object (input)? input: empty);
    json_decref (empty);
    tako_msg_set_int (msg, "timeout", json_integer_value (json_object_get (payload, "timeout_s")));
    tako_msg_set_int (msg, "startup_timeout",
                      json_integer_value (json_object_get (payload, "startup_timeout_s")));
    const char *job_type = json_string_value (json_object_get (payload, "job_type"));
    tako_msg_set_str (msg, "job_type", job_type? job_type: TAKO_CONFIG_DEFAULT_JOB_TYPE);
    const char *job_ref = json_string_value (json_object_get (payload, "job_ref"));
    if (job_ref)
        tako_msg_set_str (msg, "job_ref", job_ref);
    const char *correlation_id = json_string_value (json_object_get (payload, "correlation_id"));
    if (correlation_id)
        tako_msg_set_str (msg, "correlation_id", correlation_id);
    json_t *requirements = json_object_get (payload, "requirements");
    size_t count = json_is_array (requirements)? json_array_size (requirements): 0;
    if (count > 0) {
        const char **items = calloc (count, sizeof (char *));
        size_t used = 0;
        for (size_t i = 0; items && i < count; i++)
            if (json_is_string (json_array_get (requirements, i)))
                items [used++] = json_string_value (json_array_get (requirements, i));
        if (items && used > 0)
            tako_msg_set_strlist (msg, "requirements", items, used);
        free (items);
    }
}

static void
dispatch_send (scheduler_t *self, job_t *job, executor_t *executor)
{
    scheduler_next_id (self, tako_peer_instance (self->peer), job->lease_id);
    tako_msg_t *msg = tako_msg_new ("DISPATCH");
    if (msg) {
        tako_msg_set_str (msg, "job_id", job->job_id);
        tako_msg_set_int (msg, "attempt", job->attempt);
        tako_msg_set_str (msg, "lease_id", job->lease_id);
        tako_msg_set_int (msg, "lease_ms", self->lease_ms);
        dispatch_set_payload (msg, job->payload);
    }
    scheduler_send (self, msg, executor->instance);
    executor->credits--;
    job->state = JOB_DISPATCHED;
    job_set_executor (job, executor->instance);
    job->lease_expires = scheduler_now () + self->lease_ms;
    tako_debug (LOG, "job %s attempt %d dispatched to %s", job->job_id, job->attempt,
                executor->instance);
}

//  Give queued jobs to executors with credits, in queue order. The head
//  of the queue waits for its payload (a recovered job) rather than be
//  overtaken.
void
scheduler_dispatch (scheduler_t *self)
{
    if (!self->recovered)
        return;
    while (tako_jobqueue_size (self->queue) > 0) {
        executor_t *executor = executor_pick (self);
        if (!executor)
            return;
        const char *head = tako_jobqueue_peek (self->queue);
        job_t *job = (job_t *) zhashx_lookup (self->jobs, head);
        if (!job || job->state != JOB_QUEUED || job->cancelled) {
            char *dropped = tako_jobqueue_pop (self->queue);
            free (dropped);
            if (job && job->cancelled)
                scheduler_job_forget (self, job);
            continue;
        }
        if (!job->payload) {
            if (!job->payload_loading)
                payload_load (self, job);
            return;
        }
        if (!tako_breaker_allows (self->breaker, scheduler_now ()))
            return;
        char *job_id = tako_jobqueue_pop (self->queue);
        free (job_id);
        dispatch_send (self, job, executor);
    }
}

//  --------------------------------------------------------------------------
//  ACCEPT and heartbeats

static void
start_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                const char *reason)
{
    (void) result;
    job_t *job = (job_t *) zhashx_lookup (self->jobs, request->job_id);
    if (!job || job->attempt != request->attempt)
        return;
    if (code == 200) {
        job->started = true;
        scheduler_publish (self, job, "running", "started",
                           json_pack ("{s:s}", "executor", job->executor? job->executor: ""));
    }
    else
    if (!job->cancelled) {
        //  The record moved on without us (finished or cancelled elsewhere):
        //  stop the attempt and forget the job.
        tako_warning (LOG, "job %s: start refused (%d %s)", job->job_id, code, reason? reason: "");
        scheduler_cancel_executor (self, job->executor, job->job_id, job->attempt);
        scheduler_job_forget (self, job);
    }
}

void
scheduler_job_start (scheduler_t *self, job_t *job, const char *executor, const char *lease_id)
{
    int64_t now = scheduler_now ();
    job->state = JOB_RUNNING;
    job_set_executor (job, executor);
    snprintf (job->lease_id, sizeof job->lease_id, "%s", lease_id);
    job->lease_expires = now + self->lease_ms;
    job->next_renew = now + self->lease_ms / 2;
    json_t *params = json_pack ("{s:s, s:i, s:s, s:s, s:I}", "job_id", job->job_id,
                                "attempt", job->attempt, "lease_id", job->lease_id,
                                "lease_owner", executor, "lease_ms", (json_int_t) self->lease_ms);
    request_t *request = scheduler_request (self, "job.start", params, start_on_reply, true);
    if (request) {
        request->job_id = strdup (job->job_id);
        request->attempt = job->attempt;
    }
}

//  A message about an attempt we do not run (any more): once we know our
//  state (recovered), tell the executor to stop it.
static void
attempt_unknown (scheduler_t *self, tako_msg_t *msg)
{
    if (self->recovered)
        scheduler_cancel_executor (self, tako_msg_address (msg), tako_msg_str (msg, "job_id"),
                                   (int) tako_msg_int (msg, "attempt", 0));
}

//  An ACCEPT (or a first heartbeat) may start the attempt: it was
//  dispatched, or its DISPATCH timed out and it waits in the queue again
//  (a slow executor took it after all: it runs here, not twice).
static bool
job_startable (scheduler_t *self, job_t *job)
{
    if (job->cancelled)
        return false;
    if (job->state == JOB_QUEUED && tako_jobqueue_remove (self->queue, job->job_id))
        job->state = JOB_DISPATCHED;
    return job->state == JOB_DISPATCHED;
}

void
scheduler_handle_accept (scheduler_t *self, tako_msg_t *msg)
{
    job_t *job = (job_t *) zhashx_lookup (self->jobs, tako_msg_str (msg, "job_id"));
    if (!job || job->attempt != tako_msg_int (msg, "attempt", 0)) {
        attempt_unknown (self, msg);
        return;
    }
    if (job_startable (self, job))
        //  Adopt the executor's lease id: after a restart of ours it may
        //  quote the lease of an earlier DISPATCH of the same attempt.
        scheduler_job_start (self, job, tako_msg_address (msg), tako_msg_str (msg, "lease_id"));
    else
    if (job->state == JOB_DISPATCHED)
        scheduler_cancel_executor (self, tako_msg_address (msg), job->job_id, job->attempt);
}

static void
job_renew (scheduler_t *self, job_t *job, int64_t now)
{
    job->lease_expires = now + self->lease_ms;
    if (now < job->next_renew)
        return;
    job->next_renew = now + self->lease_ms / 2;
    json_t *params = json_pack ("{s:s, s:i, s:s, s:I}", "job_id", job->job_id,
                                "attempt", job->attempt, "lease_id", job->lease_id,
                                "lease_ms", (json_int_t) self->lease_ms);
    //  Informational for the record; the lease that counts is ours.
    scheduler_request (self, "job.renew", params, NULL, false);
}

void
scheduler_handle_job_heartbeat (scheduler_t *self, tako_msg_t *msg)
{
    job_t *job = (job_t *) zhashx_lookup (self->jobs, tako_msg_str (msg, "job_id"));
    if (!job || job->attempt != tako_msg_int (msg, "attempt", 0)) {
        attempt_unknown (self, msg);
        return;
    }
    const char *lease_id = tako_msg_str (msg, "lease_id");
    if (job_startable (self, job))
        scheduler_job_start (self, job, tako_msg_address (msg), lease_id);   //  its ACCEPT was lost
    else
    if (job->state == JOB_RUNNING && streq (job->lease_id, lease_id)) {
        //  A recovered job: whoever holds its lease runs it.
        if (!job->executor || !streq (job->executor, tako_msg_address (msg)))
            job_set_executor (job, tako_msg_address (msg));
        job_renew (self, job, scheduler_now ());
    }
}

//  ERROR about a DISPATCH: from the executor (no free slot) or from the
//  broker (the executor is gone). Either way the attempt never started.
void
scheduler_handle_executor_error (scheduler_t *self, tako_msg_t *msg)
{
    const char *in_reply_to = tako_msg_str (msg, "in_reply_to");
    const char *sender = tako_msg_address (msg);
    const char *destination = tako_msg_str (msg, "destination");
    const char *gone = *sender? NULL: destination;
    const char *executor_id = *sender? sender: destination;
    if (!executor_id || !in_reply_to || !streq (in_reply_to, "DISPATCH"))
        return;
    executor_t *executor = (executor_t *) zhashx_lookup (self->executors, executor_id);
    if (executor)
        executor->credits = 0;
    const char *job_id = tako_msg_str (msg, "job_id");
    zlist_t *back = zlist_new ();
    for (job_t *job = (job_t *) zhashx_first (self->jobs); back && job;
         job = (job_t *) zhashx_next (self->jobs))
        if (job->state == JOB_DISPATCHED && job->executor && streq (job->executor, executor_id)
        &&  (gone || (job_id && streq (job->job_id, job_id))))
            zlist_append (back, job);
    for (job_t *job = (job_t *) zlist_first (back); job; job = (job_t *) zlist_next (back))
        job_requeue_front (self, job);
    zlist_destroy (&back);
    if (gone)
        zhashx_delete (self->executors, gone);
}

//  --------------------------------------------------------------------------
//  Infrastructure failures: requeue with backoff, or dead letter

static void
requeue_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                  const char *reason)
{
    (void) result;
    (void) reason;
    scheduler_ack (self, request->client, request->job_id, request->attempt);
    job_t *job = (job_t *) zhashx_lookup (self->jobs, request->job_id);
    if (!job || job->attempt != request->attempt)
        return;
    if (code != 200 || job->cancelled) {
        //  The record is not running at this attempt any more (cancelled
        //  or finished meanwhile): it is no longer ours to run.
        scheduler_job_forget (self, job);
        return;
    }
    job->attempt++;
    job->started = false;
    job_set_executor (job, NULL);
    job->state = JOB_BACKOFF;
    int64_t delay = tako_scheduler_backoff_ms (self->config->retry_base_delay, job->attempt);
    job->retry_at = scheduler_now () + delay;
    json_t *data = json_incref (request->context);
    json_object_set_new (data, "retry_in_ms", json_integer (delay));
    scheduler_publish (self, job, "queued", "retrying", data);
    tako_info (LOG, "job %s: attempt %d in %" PRId64 " ms", job->job_id, job->attempt, delay);
}

static void
dlq_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
              const char *reason)
{
    (void) self;
    (void) result;
    if (code != 200)
        tako_error (LOG, "job %s: dead letter not recorded (%d %s)", request->job_id, code,
                    reason? reason: "");
}

static json_t *
dlq_entry (job_t *job, json_t *failure)
{
    json_t *payload = job->payload;
    json_t *job_data = json_pack ("{s:s}", "job_type",
        json_string_value (json_object_get (payload, "job_type"))?: TAKO_CONFIG_DEFAULT_JOB_TYPE);
    //  Named as in SUBMIT: dlq.requeue submits job_data again as it is.
    static const char *fields [][2] = {
        { "code", "code" }, { "input_data", "input_data" }, { "timeout_s", "timeout" },
        { "startup_timeout_s", "startup_timeout" }, { "job_ref", "job_ref" },
        { "requirements", "requirements" }, { NULL, NULL }
    };
    for (int i = 0; fields [i][0]; i++) {
        json_t *value = json_object_get (payload, fields [i][0]);
        if (value && !json_is_null (value))
            json_object_set (job_data, fields [i][1], value);
    }
    json_t *entry = json_pack ("{s:s, s:O, s:O, s:O, s:i}", "job_id", job->job_id,
                               "error_type", json_object_get (failure, "error_type"),
                               "error_message", json_object_get (failure, "message"),
                               "job_data", job_data, "retry_count", job->attempt - 1);
    json_decref (job_data);
    static const char *origin [] = { "client_ip", "correlation_id", NULL };
    for (const char **field = origin; entry && *field; field++)
        if (json_is_string (json_object_get (payload, *field)))
            json_object_set (entry, *field, json_object_get (payload, *field));
    return entry;
}

static void
dead_finish_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                      const char *reason)
{
    (void) reason;
    job_t *job = (job_t *) zhashx_lookup (self->jobs, request->job_id);
    const char *outcome = json_string_value (json_object_get (result, "outcome"));
    bool applied = code == 200;
    bool recorded = applied || (code == 409 && outcome && streq (outcome, "duplicate"));
    if (code == 409 && outcome && streq (outcome, "artifacts_missing"))
        recorded = false;
    scheduler_ack (self, request->client, request->job_id, request->attempt);
    if (job && applied) {
        json_t *entry = dlq_entry (job, request->context);
        request_t *insert = scheduler_request (self, "dlq.insert",
                                               json_pack ("{s:o}", "entry", entry),
                                               dlq_on_reply, true);
        if (insert)
            insert->job_id = strdup (job->job_id);
        scheduler_publish (self, job, "failed", "dead_lettered", json_incref (request->context));
    }
    if (job && (recorded || code == 409 || code == 404))
        scheduler_job_forget (self, job);
}

//  The attempt failed for a reason that is not the user's code. ack_to,
//  when set, is the executor whose RESULT reported it: acknowledged once
//  the consequence is recorded.
void
scheduler_infra_failure (scheduler_t *self, job_t *job, const char *error_type,
                         const char *message, const char *phase, const char *ack_to)
{
    tako_breaker_record_failure (self->breaker, scheduler_now (), message);
    self->infra_failures++;
    job->state = JOB_RETRYING;
    json_t *failure = json_pack ("{s:s, s:s, s:s}", "error_type", error_type,
                                 "message", message, "phase", phase);
    request_t *request;
    if (job->attempt <= self->config->max_retry_attempts) {
        request = scheduler_request (self, "job.requeue",
                                     json_pack ("{s:s, s:i}", "job_id", job->job_id,
                                                "attempt", job->attempt),
                                     requeue_on_reply, true);
    }
    else {
        const char *type = streq (error_type, "executor_lost")? "service_unavailable"
                                                               : "internal_error";
        json_t *result = json_pack ("{s:s, s:{s:s, s:s, s:s}}", "status", "failed",
                                    "error", "type", type, "message", message, "phase", phase);
        request = scheduler_request (self, "job.finish",
                                     json_pack ("{s:s, s:i, s:o, s:[]}", "job_id", job->job_id,
                                                "attempt", job->attempt, "result", result,
                                                "artifacts"),
                                     dead_finish_on_reply, true);
        tako_warning (LOG, "job %s: retries exhausted (%s)", job->job_id, error_type);
    }
    if (!request) {
        json_decref (failure);
        return;
    }
    request->job_id = strdup (job->job_id);
    request->attempt = job->attempt;
    request->context = failure;
    scheduler_request_set_client (request, ack_to, NULL);
}

//  --------------------------------------------------------------------------
//  Timers

static void
lease_expired (scheduler_t *self, job_t *job)
{
    if (job->state == JOB_DISPATCHED) {
        //  Never accepted: the record is still queued at this attempt.
        tako_debug (LOG, "job %s: DISPATCH not accepted in time", job->job_id);
        if (job->cancelled)
            scheduler_job_forget (self, job);
        else
            job_requeue_front (self, job);
        return;
    }
    tako_warning (LOG, "job %s attempt %d: lease expired on %s", job->job_id, job->attempt,
                  job->executor? job->executor: "unknown executor");
    scheduler_cancel_executor (self, job->executor, job->job_id, job->attempt);
    if (job->cancelled)
        scheduler_job_forget (self, job);       //  recorded as cancelled already
    else
        scheduler_infra_failure (self, job, "executor_lost", "executor stopped responding",
                                 "execution", NULL);
}

void
scheduler_leases_tick (scheduler_t *self, int64_t now)
{
    zlist_t *due = zlist_new ();
    if (!due)
        return;
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job;
         job = (job_t *) zhashx_next (self->jobs))
        if (((job->state == JOB_DISPATCHED || job->state == JOB_RUNNING)
             && now >= job->lease_expires)
        ||  (job->state == JOB_BACKOFF && now >= job->retry_at))
            zlist_append (due, job);
    for (job_t *job = (job_t *) zlist_first (due); job; job = (job_t *) zlist_next (due))
        if (job->state == JOB_BACKOFF)
            job_requeue_front (self, job);
        else
            lease_expired (self, job);
    zlist_purge (due);
    for (executor_t *executor = (executor_t *) zhashx_first (self->executors); executor;
         executor = (executor_t *) zhashx_next (self->executors))
        if (now - executor->last_seen > SCHEDULER_EXECUTOR_STALE_MS)
            zlist_append (due, executor->instance);
    for (char *instance = (char *) zlist_first (due); instance;
         instance = (char *) zlist_next (due)) {
        tako_info (LOG, "executor %s forgotten (silent)", instance);
        zhashx_delete (self->executors, instance);
    }
    zlist_destroy (&due);
}
