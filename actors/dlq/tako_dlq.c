/*  tako_dlq — the dead-letter-queue actor. See tako_dlq.h.

    Every client query becomes one or more upstream requests, each with a
    request_id of ours; a pending_t remembers the client's request across
    them, keyed by the upstream request_id of the step in flight:

        dlq.list, dlq.stats, dlq.remove:  QUERY to the recorder, REPLY relayed
        dlq.requeue:  dlq.get (recorder) → SUBMIT (scheduler) → ACCEPTED
                      → dlq.remove (recorder) → REPLY {job_id, status}

    The SUBMIT carries idempotency_key "dlq-requeue-<entry id>", so a
    requeue repeated after a lost answer (or a failed remove) returns the
    job made the first time instead of a second one.                    */

#include <inttypes.h>
#include "tako_dlq.h"
#include "tako_log.h"
#include "tako_msg.h"

#define LOG "dlq"

//  Room for "dlq-<counter>".
#define REQUEST_ID_SIZE 32

typedef enum {
    STEP_FORWARD,               //  a query relayed to the recorder as is
    STEP_GET,                   //  requeue: reading the entry
    STEP_SUBMIT,                //  requeue: the scheduler is making the job
    STEP_REMOVE                 //  requeue: removing the entry
} step_t;

typedef struct {
    char upstream_id [REQUEST_ID_SIZE];     //  request_id of the step in flight
    char *client;                           //  the client's instance id
    char *client_request_id;
    step_t step;
    char *entry_id;                         //  requeue only
    char *job_id;                           //  requeue: from ACCEPTED
    char *status;
    int64_t deadline;                       //  monotonic ms
} pending_t;

typedef struct {
    zsock_t *pipe;
    tako_config_t *config;                  //  borrowed
    tako_peer_t *peer;
    zsock_t *peer_socket;                   //  as last added to the poller
    zpoller_t *poller;
    zhashx_t *pending;                      //  upstream_id → pending_t * (not owned)
    uint64_t sequence;                      //  for upstream request ids
    bool terminated;
} dlq_t;

//  ---------------------------------------------------------------------
//  Pending requests

static void
pending_destroy (pending_t **self_p)
{
    pending_t *self = *self_p;
    if (!self)
        return;
    free (self->client);
    free (self->client_request_id);
    free (self->entry_id);
    free (self->job_id);
    free (self->status);
    free (self);
    *self_p = NULL;
}

//  File the pending request under a fresh upstream id (its next step).
static void
pending_file (dlq_t *self, pending_t *pending)
{
    zhashx_delete (self->pending, pending->upstream_id);
    snprintf (pending->upstream_id, sizeof pending->upstream_id, "dlq-%" PRIu64,
              ++self->sequence);
    pending->deadline = zclock_mono () + TAKO_DLQ_UPSTREAM_TIMEOUT_MS;
    zhashx_insert (self->pending, pending->upstream_id, pending);
}

//  Answer the client and forget the request.
static void
pending_answer (dlq_t *self, pending_t *pending, int code, json_t *result, const char *reason)
{
    tako_msg_t *msg = tako_msg_new ("REPLY");
    if (msg) {
        tako_msg_set_address (msg, pending->client);
        tako_msg_set_str (msg, "request_id", pending->client_request_id);
        tako_msg_set_int (msg, "code", code);
        if (result)
            tako_msg_set_object (msg, "result", result);
        if (code != 200 && reason)
            tako_msg_set_str (msg, "reason", reason);
        if (tako_peer_send (self->peer, &msg))
            tako_warning (LOG, "could not answer %s", pending->client);
    }
    zhashx_delete (self->pending, pending->upstream_id);
    pending_destroy (&pending);
}

//  The requeue is done: the job exists. The entry's removal may have
//  failed; a later requeue then finds the same job (idempotency key).
static void
requeue_answer (dlq_t *self, pending_t *pending, bool removed)
{
    json_t *result = json_pack ("{s:s, s:s, s:b}", "job_id", pending->job_id,
                                "status", pending->status, "removed", removed);
    pending_answer (self, pending, 200, result, NULL);
    json_decref (result);
}

//  ---------------------------------------------------------------------
//  Upstream requests

static int
send_query (dlq_t *self, pending_t *pending, const char *query, json_t *params)
{
    pending_file (self, pending);
    tako_msg_t *msg = tako_msg_new ("QUERY");
    if (!msg)
        return -1;
    tako_msg_set_address (msg, "recorder");
    tako_msg_set_str (msg, "request_id", pending->upstream_id);
    tako_msg_set_str (msg, "query", query);
    if (params)
        tako_msg_set_object (msg, "params", params);
    return tako_peer_send (self->peer, &msg);
}

static void
send_remove (dlq_t *self, pending_t *pending)
{
    pending->step = STEP_REMOVE;
    json_t *params = json_pack ("{s:s}", "entry_id", pending->entry_id);
    if (!params || send_query (self, pending, "dlq.remove", params))
        requeue_answer (self, pending, false);
    json_decref (params);
}

//  Copy job_data's field into the SUBMIT if it has the right type.
static void
submit_copy (tako_msg_t *msg, json_t *job_data, const char *name)
{
    json_t *value = json_object_get (job_data, name);
    if (json_is_string (value))
        tako_msg_set_str (msg, name, json_string_value (value));
    else
    if (json_is_integer (value))
        tako_msg_set_int (msg, name, json_integer_value (value));
    else
    if (json_is_object (value))
        tako_msg_set_object (msg, name, value);
}

static void
submit_copy_requirements (tako_msg_t *msg, json_t *job_data)
{
    json_t *list = json_object_get (job_data, "requirements");
    size_t count = json_array_size (list);
    const char **items = count? calloc (count, sizeof (char *)): NULL;
    if (!items)
        return;
    size_t taken = 0;
    for (size_t i = 0; i < count; i++)
        if (json_is_string (json_array_get (list, i)))
            items [taken++] = json_string_value (json_array_get (list, i));
    tako_msg_set_strlist (msg, "requirements", items, taken);
    free (items);
}

//  The entry arrived: SUBMIT its job again as a new job.
static void
send_submit (dlq_t *self, pending_t *pending, json_t *entry)
{
    json_t *job_data = json_object_get (entry, "job_data");
    const char *code = json_string_value (json_object_get (job_data, "code"));
    if (!code || !*code) {
        pending_answer (self, pending, 422, NULL, "dead letter has no code to run");
        return;
    }
    pending->step = STEP_SUBMIT;
    pending_file (self, pending);
    tako_msg_t *msg = tako_msg_new ("SUBMIT");
    if (!msg) {
        pending_answer (self, pending, 500, NULL, "out of memory");
        return;
    }
    tako_msg_set_address (msg, "scheduler");
    tako_msg_set_str (msg, "request_id", pending->upstream_id);
    tako_msg_set_str (msg, "code", code);
    const char *fields [] = { "input_data", "timeout", "startup_timeout", "job_type", "job_ref" };
    for (size_t i = 0; i < sizeof fields / sizeof fields [0]; i++)
        submit_copy (msg, job_data, fields [i]);
    submit_copy_requirements (msg, job_data);
    submit_copy (msg, entry, "client_ip");
    submit_copy (msg, entry, "correlation_id");
    char *key = zsys_sprintf ("dlq-requeue-%s", pending->entry_id);
    if (key)
        tako_msg_set_str (msg, "idempotency_key", key);
    zstr_free (&key);
    if (tako_peer_send (self->peer, &msg))
        pending_answer (self, pending, 503, NULL, "scheduler unavailable");
}

//  ---------------------------------------------------------------------
//  Client queries

static void
answer_now (dlq_t *self, tako_msg_t *request, int code, const char *reason)
{
    tako_msg_t *msg = tako_msg_new ("REPLY");
    if (!msg)
        return;
    tako_msg_set_address (msg, tako_msg_address (request));
    tako_msg_set_str (msg, "request_id", tako_msg_str (request, "request_id"));
    tako_msg_set_int (msg, "code", code);
    tako_msg_set_str (msg, "reason", reason);
    tako_peer_send (self->peer, &msg);
}

static void
handle_query (dlq_t *self, tako_msg_t *msg)
{
    const char *query = tako_msg_str (msg, "query");
    json_t *params = tako_msg_object (msg, "params");
    bool forward = streq (query, "dlq.list") || streq (query, "dlq.stats")
                || streq (query, "dlq.remove");
    if (!forward && !streq (query, "dlq.requeue")) {
        answer_now (self, msg, 400, "unknown query");
        return;
    }
    if (params && !json_is_object (params) && !json_is_null (params)) {
        answer_now (self, msg, 400, "params must be an object");
        return;
    }
    const char *entry_id = json_string_value (json_object_get (params, "entry_id"));
    if (!forward && (!entry_id || !*entry_id)) {
        answer_now (self, msg, 400, "entry_id is required");
        return;
    }
    if (zhashx_size (self->pending) >= TAKO_DLQ_PENDING_MAX) {
        answer_now (self, msg, 503, "too many requests in flight");
        return;
    }
    pending_t *pending = calloc (1, sizeof *pending);
    if (pending) {
        pending->client = strdup (tako_msg_address (msg));
        pending->client_request_id = strdup (tako_msg_str (msg, "request_id"));
        pending->entry_id = entry_id? strdup (entry_id): NULL;
        pending->step = forward? STEP_FORWARD: STEP_GET;
    }
    if (!pending || !pending->client || !pending->client_request_id
    ||  (entry_id && !pending->entry_id)) {
        pending_destroy (&pending);
        answer_now (self, msg, 500, "out of memory");
        return;
    }
    json_t *get_params = forward? NULL: json_pack ("{s:s}", "entry_id", entry_id);
    int rc = send_query (self, pending, forward? query: "dlq.get", forward? params: get_params);
    json_decref (get_params);
    if (rc)
        pending_answer (self, pending, 503, NULL, "recorder unavailable");
}

//  ---------------------------------------------------------------------
//  Upstream answers

static void
handle_reply (dlq_t *self, tako_msg_t *msg)
{
    pending_t *pending = (pending_t *) zhashx_lookup (self->pending, tako_msg_str (msg, "request_id"));
    if (!pending || pending->step == STEP_SUBMIT)
        return;
    int code = (int) tako_msg_int (msg, "code", 500);
    json_t *result = tako_msg_object (msg, "result");
    if (pending->step == STEP_REMOVE)
        requeue_answer (self, pending, code == 200);
    else
    if (pending->step == STEP_GET && code == 200)
        send_submit (self, pending, result);
    else
        pending_answer (self, pending, code, result, tako_msg_str (msg, "reason"));
}

static void
handle_accepted (dlq_t *self, tako_msg_t *msg)
{
    pending_t *pending = (pending_t *) zhashx_lookup (self->pending, tako_msg_str (msg, "request_id"));
    if (!pending || pending->step != STEP_SUBMIT)
        return;
    pending->job_id = strdup (tako_msg_str (msg, "job_id"));
    pending->status = strdup (tako_msg_str (msg, "status"));
    if (!pending->job_id || !pending->status)
        pending_answer (self, pending, 500, NULL, "out of memory");
    else
        send_remove (self, pending);
}

//  Which upstream a step talks to, for "<it> unavailable".
static const char *
step_upstream (step_t step)
{
    return step == STEP_SUBMIT? "scheduler unavailable": "recorder unavailable";
}

static void
handle_error (dlq_t *self, tako_msg_t *msg)
{
    const char *request_id = tako_msg_str (msg, "request_id");
    pending_t *pending = request_id? (pending_t *) zhashx_lookup (self->pending, request_id): NULL;
    if (!pending)
        return;
    int code = (int) tako_msg_int (msg, "code", 503);
    bool from_broker = *tako_msg_address (msg) == 0;
    if (pending->step == STEP_REMOVE)
        requeue_answer (self, pending, false);
    else
    if (from_broker)        //  no such service right now, or undeliverable
        pending_answer (self, pending, 503, NULL, step_upstream (pending->step));
    else {
        //  The scheduler refused the job (invalid 422, queue full 503...).
        json_t *result = tako_msg_str (msg, "job_id")?
            json_pack ("{s:s}", "job_id", tako_msg_str (msg, "job_id")): NULL;
        pending_answer (self, pending, code, result, tako_msg_str (msg, "reason"));
        json_decref (result);
    }
}

static void
handle_message (dlq_t *self, tako_msg_t *msg)
{
    const char *command = tako_msg_command (msg);
    if (streq (command, "QUERY"))
        handle_query (self, msg);
    else
    if (streq (command, "REPLY"))
        handle_reply (self, msg);
    else
    if (streq (command, "ACCEPTED"))
        handle_accepted (self, msg);
    else
    if (streq (command, "ERROR"))
        handle_error (self, msg);
    else
        tako_debug (LOG, "ignoring %s from %s", command, tako_msg_address (msg));
}

//  ---------------------------------------------------------------------
//  Timers

static void
dlq_expire (dlq_t *self)
{
    int64_t now = zclock_mono ();
    zlist_t *expired = zlist_new ();
    if (!expired)
        return;
    for (pending_t *pending = (pending_t *) zhashx_first (self->pending); pending;
         pending = (pending_t *) zhashx_next (self->pending))
        if (now >= pending->deadline)
            zlist_append (expired, pending);
    for (pending_t *pending = (pending_t *) zlist_first (expired); pending;
         pending = (pending_t *) zlist_next (expired))
        if (pending->step == STEP_REMOVE)
            requeue_answer (self, pending, false);
        else
            pending_answer (self, pending, 503, NULL, step_upstream (pending->step));
    zlist_destroy (&expired);
}

static int
dlq_wait_ms (dlq_t *self)
{
    int64_t now = zclock_mono ();
    int64_t due = now + tako_peer_tick_due (self->peer);
    for (pending_t *pending = (pending_t *) zhashx_first (self->pending); pending;
         pending = (pending_t *) zhashx_next (self->pending))
        if (pending->deadline < due)
            due = pending->deadline;
    return due > now? (int) (due - now): 0;
}

//  ---------------------------------------------------------------------
//  Actor

static void
handle_pipe (dlq_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "INSTANCE"))
        zstr_send (self->pipe, tako_peer_instance (self->peer));
    zstr_free (&command);
}

static void
dlq_destroy (dlq_t **self_p)
{
    dlq_t *self = *self_p;
    if (!self)
        return;
    if (self->pending) {
        for (pending_t *pending = (pending_t *) zhashx_first (self->pending); pending;
             pending = (pending_t *) zhashx_next (self->pending))
            pending_destroy (&pending);
        zhashx_destroy (&self->pending);
    }
    zpoller_destroy (&self->poller);
    tako_peer_destroy (&self->peer);
    free (self);
    *self_p = NULL;
}

static dlq_t *
dlq_new (zsock_t *pipe, tako_actor_args_t *args)
{
    dlq_t *self = calloc (1, sizeof (dlq_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->config = args->config;
    self->pending = zhashx_new ();
    const char *endpoint = args->broker_endpoint? args->broker_endpoint:
                                                  args->config->broker_endpoint;
    self->peer = tako_peer_new (endpoint, "dlq", &args->heartbeat);
    if (!self->pending || !self->peer) {
        dlq_destroy (&self);
        return NULL;
    }
    self->peer_socket = tako_peer_socket (self->peer);
    self->poller = zpoller_new (pipe, self->peer_socket, NULL);
    if (!self->poller)
        dlq_destroy (&self);
    return self;
}

void
tako_dlq_actor (zsock_t *pipe, void *args)
{
    dlq_t *self = dlq_new (pipe, (tako_actor_args_t *) args);
    zsock_signal (pipe, self? 0: 1);
    if (!self)
        return;
    tako_info (LOG, "%s ready", tako_peer_instance (self->peer));
    while (!self->terminated) {
        void *which = zpoller_wait (self->poller, dlq_wait_ms (self));
        if (which == pipe)
            handle_pipe (self);
        else
        if (which == self->peer_socket) {
            tako_msg_t *msg = tako_peer_handle_input (self->peer);
            if (msg)
                handle_message (self, msg);
            tako_msg_destroy (&msg);
        }
        else
        if (zpoller_terminated (self->poller))
            break;
        if (tako_peer_tick (self->peer) == 1) {
            zpoller_remove (self->poller, self->peer_socket);
            self->peer_socket = tako_peer_socket (self->peer);
            zpoller_add (self->poller, self->peer_socket);
        }
        dlq_expire (self);
    }
    tako_info (LOG, "%s stopping", tako_peer_instance (self->peer));
    dlq_destroy (&self);
}

void
tako_dlq_test (bool verbose)
{
    (void) verbose;
    //  The conversation needs a broker, a recorder and a scheduler:
    //  tests/unit/test_dlq.c. Here: naming of the upstream that failed.
    assert (streq (step_upstream (STEP_SUBMIT), "scheduler unavailable"));
    assert (streq (step_upstream (STEP_GET), "recorder unavailable"));
    assert (streq (step_upstream (STEP_REMOVE), "recorder unavailable"));
}
