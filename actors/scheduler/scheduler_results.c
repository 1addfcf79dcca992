/*  scheduler_results — an attempt's ARTIFACTs and RESULT from an executor.

    ARTIFACTs go on to the recorder at once; the RESULT becomes job.finish
    to the same recorder instance. Only once the recorder has the result
    (applied, or a duplicate/stale one: already recorded or no longer
    wanted) does the executor get RESULT_ACK; otherwise it sends
    everything again a little later. A RESULT marked retryable is an
    infrastructure failure and takes the retry path instead.            */

#include <inttypes.h>
#include "scheduler_internal.h"

//  After a failed job.finish the executor sends the RESULT again within a
//  few seconds; until then the job's lease is held open this much longer.
#define RESULT_RESEND_GRACE_MS 5000

void
scheduler_ack (scheduler_t *self, const char *executor, const char *job_id, int attempt)
{
    if (!executor || !job_id)
        return;
    tako_msg_t *ack = tako_msg_new ("RESULT_ACK");
    if (!ack)
        return;
    tako_msg_set_str (ack, "job_id", job_id);
    tako_msg_set_int (ack, "attempt", attempt);
    scheduler_send (self, ack, executor);
}

void
scheduler_handle_artifact (scheduler_t *self, tako_msg_t *msg)
{
    scheduler_send (self, tako_msg_dup (msg), self->recorder? self->recorder: "recorder");
}

//  The result object of job.finish, from the RESULT's fields.
static json_t *
result_from_msg (tako_msg_t *msg)
{
    static const char *strings [] = {
        "status", "stdout", "stderr", "started_at", "ended_at", "job_ref", "job_version", NULL
    };
    static const char *integers [] = { "exit_code", "signal", "duration_ms", NULL };
    static const char *booleans [] = { "stdout_truncated", "stderr_truncated", NULL };
    static const char *objects [] = { "output", "error", "timing", "resource_usage", NULL };
    json_t *result = json_object ();
    if (!result)
        return NULL;
    for (const char **name = strings; *name; name++)
        if (tako_msg_has (msg, *name))
            json_object_set_new (result, *name, json_string (tako_msg_str (msg, *name)));
    for (const char **name = integers; *name; name++)
        if (tako_msg_has (msg, *name))
            json_object_set_new (result, *name, json_integer (tako_msg_int (msg, *name, 0)));
    for (const char **name = booleans; *name; name++)
        if (tako_msg_has (msg, *name))
            json_object_set_new (result, *name, json_boolean (tako_msg_bool (msg, *name, false)));
    for (const char **name = objects; *name; name++)
        if (tako_msg_has (msg, *name))
            json_object_set (result, *name, tako_msg_object (msg, *name));
    if (tako_msg_has (msg, "execution_time"))
        json_object_set_new (result, "execution_time",
                             json_real (tako_msg_double (msg, "execution_time", 0)));
    return result;
}

static void
finish_on_reply (scheduler_t *self, request_t *request, int code, json_t *result,
                 const char *reason)
{
    const char *outcome = json_string_value (json_object_get (result, "outcome"));
    bool recorded = code == 200 || code == 404
                 || (code == 409 && outcome
                     && (streq (outcome, "duplicate") || streq (outcome, "stale")));
    job_t *job = (job_t *) zhashx_lookup (self->jobs, request->job_id);
    if (job && job->attempt != request->attempt)
        job = NULL;             //  a result of an earlier attempt: not the job's state
    if (!recorded) {
        //  Not stored: no ack, so the executor sends it all again.
        tako_debug (LOG, "job %s: finish not recorded (%d %s)", request->job_id, code,
                    reason? reason: "");
        if (job && job->state == JOB_FINISHING) {
            job->state = JOB_RUNNING;
            job->lease_expires = scheduler_now () + self->lease_ms + RESULT_RESEND_GRACE_MS;
        }
        return;
    }
    scheduler_ack (self, request->client, request->job_id, request->attempt);
    if (!job)
        return;
    tako_breaker_record_success (self->breaker, scheduler_now ());
    if (code == 200) {
        const char *status = json_string_value (json_object_get (request->context, "status"));
        scheduler_publish_finished (self, job, status? status: "failed",
                                    json_pack ("{s:O}", "exit_code",
                                               json_object_get (request->context, "exit_code")?: json_null ()),
                                    json_object_get (result, "record"));
    }
    scheduler_job_forget (self, job);
}

static void
result_finish (scheduler_t *self, job_t *job, tako_msg_t *msg)
{
    json_t *result = result_from_msg (msg);
    json_t *artifacts = tako_msg_object (msg, "artifacts");
    json_t *params = json_pack ("{s:s, s:I, s:O, s:O}", "job_id", tako_msg_str (msg, "job_id"),
                                "attempt", (json_int_t) tako_msg_int (msg, "attempt", 0),
                                "result", result,
                                "artifacts", json_is_array (artifacts)? artifacts: json_array ());
    if (!json_is_array (artifacts))
        json_decref (json_object_get (params, "artifacts"));
    request_t *request = scheduler_request (self, "job.finish", params, finish_on_reply, false);
    if (!request) {
        json_decref (result);
        return;
    }
    request->job_id = strdup (tako_msg_str (msg, "job_id"));
    request->attempt = (int) tako_msg_int (msg, "attempt", 0);
    request->context = result;
    scheduler_request_set_client (request, tako_msg_address (msg), NULL);
    if (job)
        job->state = JOB_FINISHING;
}

void
scheduler_handle_result (scheduler_t *self, tako_msg_t *msg)
{
    if (!self->recovered)
        return;             //  we do not know our jobs yet; it comes again
    const char *job_id = tako_msg_str (msg, "job_id");
    int attempt = (int) tako_msg_int (msg, "attempt", 0);
    const char *status = tako_msg_str (msg, "status");
    job_t *job = (job_t *) zhashx_lookup (self->jobs, job_id);
    if (job && job->attempt != attempt)
        job = NULL;
    bool retryable = tako_msg_bool (msg, "retryable", false) && !streq (status, "cancelled");
    tako_debug (LOG, "job %s attempt %d: RESULT %s%s from %s (state %d)", job_id, attempt,
                status? status: "?", retryable? " retryable": "", tako_msg_address (msg),
                job? (int) job->state: -1);
    if (job && job->state == JOB_DISPATCHED && !job->cancelled && tako_msg_str (msg, "lease_id"))
        //  Its ACCEPT was lost: the record must be running before the
        //  finish or requeue (the recorder answers in order).
        scheduler_job_start (self, job, tako_msg_address (msg), tako_msg_str (msg, "lease_id"));
    if (job && (job->state == JOB_FINISHING || job->state == JOB_RETRYING))
        return;             //  the first copy is being recorded
    if (job && (job->state == JOB_QUEUED || job->state == JOB_BACKOFF)) {
        //  We gave up on that dispatch already; the job runs again.
        scheduler_ack (self, tako_msg_address (msg), job_id, attempt);
        return;
    }
    if (retryable) {
        if (job && !job->cancelled) {
            const json_t *error = tako_msg_object (msg, "error");
            const char *message = json_string_value (json_object_get (error, "message"));
            scheduler_infra_failure (self, job, "sandbox_error",
                                     message? message: "sandbox could not be started",
                                     "startup", tako_msg_address (msg));
        }
        else {
            //  Not ours to retry (unknown, or cancelled): just stop it coming.
            scheduler_ack (self, tako_msg_address (msg), job_id, attempt);
            if (job)
                scheduler_job_forget (self, job);
        }
        return;
    }
    //  A final result, even of a job we no longer track: the recorder's
    //  guards decide (a duplicate or a stale one changes nothing).
    result_finish (self, job, msg);
}
