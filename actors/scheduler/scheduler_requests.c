/*  scheduler_requests — QUERYs to the recorder, each kept in a table with
    its continuation until the REPLY comes, so the loop never blocks.

    A persistent request is a state change that must happen (job.start,
    job.requeue, job.cancel, ...): refused with 503, undeliverable, or not
    answered in time, it is sent again with the same request_id (the
    recorder's writes are guarded, so a repeat changes nothing). Any other
    request gets its continuation called once with 503 when it times out;
    one with late_ms set is still awaited that long afterwards (a
    job.insert that committed late still runs its job).                  */

#include <inttypes.h>
#include "scheduler_internal.h"

void
scheduler_request_destroy (request_t **self_p)
{
    request_t *self = *self_p;
    if (!self)
        return;
    free (self->query);
    json_decref (self->params);
    free (self->address);
    free (self->job_id);
    free (self->client);
    free (self->client_request_id);
    json_decref (self->context);
    free (self);
    *self_p = NULL;
}

static void
request_send (scheduler_t *self, request_t *request)
{
    free (request->address);
    request->address = strdup (self->recorder? self->recorder: "recorder");
    tako_msg_t *msg = tako_msg_new ("QUERY");
    if (msg) {
        tako_msg_set_str (msg, "request_id", request->request_id);
        tako_msg_set_str (msg, "query", request->query);
        if (request->params)
            tako_msg_set_object (msg, "params", request->params);
    }
    scheduler_send (self, msg, request->address? request->address: "recorder");
    request->deadline = scheduler_now () + TAKO_SCHEDULER_REQUEST_TIMEOUT_MS;
    request->resend_at = 0;
}

//  Send a QUERY to the recorder; takes params. The request stays in the
//  table until answered; the caller may fill its context fields.
request_t *
scheduler_request (scheduler_t *self, const char *query, json_t *params,
                   request_fn *on_reply, bool persistent)
{
    request_t *request = calloc (1, sizeof (request_t));
    if (!request || !(request->query = strdup (query))) {
        free (request);
        json_decref (params);
        tako_error (LOG, "out of memory: %s not sent", query);
        return NULL;
    }
    request->params = params;
    request->on_reply = on_reply;
    request->persistent = persistent;
    request->resend_delay_ms = SCHEDULER_RESEND_FIRST_MS;
    scheduler_next_id (self, "s", request->request_id);
    zhashx_insert (self->requests, request->request_id, request);
    request_send (self, request);
    return request;
}

void
scheduler_request_set_client (request_t *request, const char *client,
                              const char *client_request_id)
{
    if (!request)
        return;
    request->client = client? strdup (client): NULL;
    request->client_request_id = client_request_id? strdup (client_request_id): NULL;
}

//  Refused for now: a persistent request waits and goes again.
static void
request_resend_later (request_t *request)
{
    request->resend_at = scheduler_now () + request->resend_delay_ms;
    request->deadline = request->resend_at + TAKO_SCHEDULER_REQUEST_TIMEOUT_MS;
    if (request->resend_delay_ms < SCHEDULER_RESEND_MAX_MS)
        request->resend_delay_ms *= 2;
    if (request->resend_delay_ms > SCHEDULER_RESEND_MAX_MS)
        request->resend_delay_ms = SCHEDULER_RESEND_MAX_MS;
}

//  The answer (or its failure) reached us: continue, then forget the
//  request unless it awaits a late answer.
static void
request_complete (scheduler_t *self, request_t *request, int code, json_t *result,
                  const char *reason)
{
    if (code == 503 && request->persistent) {
        request_resend_later (request);
        return;
    }
    char request_id [SCHEDULER_ID_MAX];
    memcpy (request_id, request->request_id, sizeof request_id);
    if (request->on_reply)
        request->on_reply (self, request, code, result, reason);
    zhashx_delete (self->requests, request_id);
}

void
scheduler_request_reply (scheduler_t *self, tako_msg_t *reply)
{
    const char *request_id = tako_msg_str (reply, "request_id");
    request_t *request = request_id? (request_t *) zhashx_lookup (self->requests, request_id): NULL;
    if (!request) {
        tako_debug (LOG, "REPLY %s matches no request", request_id? request_id: "?");
        return;
    }
    //  Learn the recorder instance: an attempt's ARTIFACTs and its
    //  job.finish must reach the same one.
    const char *sender = tako_msg_address (reply);
    if (strncmp (sender, "recorder.", strlen ("recorder.")) == 0
    &&  (!self->recorder || !streq (self->recorder, sender))) {
        free (self->recorder);
        self->recorder = strdup (sender);
    }
    request_complete (self, request, (int) tako_msg_int (reply, "code", 500),
                      tako_msg_object (reply, "result"), tako_msg_str (reply, "reason"));
}

//  The broker could not deliver a request: the recorder is gone (or
//  restarting). Forget its instance; the service name finds the next one.
void
scheduler_request_error (scheduler_t *self, tako_msg_t *error)
{
    const char *destination = tako_msg_str (error, "destination");
    if (self->recorder && destination && streq (destination, self->recorder)) {
        free (self->recorder);
        self->recorder = NULL;
    }
    request_t *request = (request_t *) zhashx_lookup (self->requests,
                                                      tako_msg_str (error, "request_id"));
    if (request)
        request_complete (self, request, 503, NULL, "recorder unavailable");
}

//  Requests whose deadline or resend time has come: resend persistent
//  ones, fail the others once.
void
scheduler_requests_tick (scheduler_t *self, int64_t now)
{
    zlist_t *due = zlist_new ();
    if (!due)
        return;
    zlist_autofree (due);
    for (request_t *request = (request_t *) zhashx_first (self->requests); request;
         request = (request_t *) zhashx_next (self->requests))
        if ((request->resend_at && now >= request->resend_at) || now >= request->deadline)
            zlist_append (due, request->request_id);
    for (char *request_id = (char *) zlist_first (due); request_id;
         request_id = (char *) zlist_next (due)) {
        request_t *request = (request_t *) zhashx_lookup (self->requests, request_id);
        if (!request)
            continue;
        if (request->persistent) {
            if (!request->resend_at)
                tako_debug (LOG, "%s %s not answered, sending again", request->query, request_id);
            request_send (self, request);
        }
        else
        if (request->late)      //  failed once and waited long enough: give up
            zhashx_delete (self->requests, request_id);
        else {
            if (request->on_reply)
                request->on_reply (self, request, 503, NULL, "recorder did not answer");
            if (request->late_ms > 0) {
                request->deadline = now + request->late_ms;
                request->late = true;
            }
            else
                zhashx_delete (self->requests, request_id);
        }
    }
    zlist_destroy (&due);
}
