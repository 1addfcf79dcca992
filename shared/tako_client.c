/*  tako_client — ask a service something and wait for its answer.  */

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include "tako_client.h"
#include "tako_log.h"
#include "brokers/tako_broker.h"

//  "<instance>-<counter>" fits in this.
#define REQUEST_ID_SIZE (TAKO_PROTO_ADDRESS_MAX + 24)

struct _tako_client_t {
    tako_peer_t *peer;
    uint64_t requests;          //  numbers the request ids
};

tako_client_t *
tako_client_new (const char *endpoint, const tako_heartbeat_t *heartbeat)
{
    tako_client_t *self = calloc (1, sizeof (tako_client_t));
    if (!self)
        return NULL;
    self->peer = tako_peer_new_client (endpoint, "client", heartbeat);
    if (!self->peer)
        tako_client_destroy (&self);
    return self;
}

void
tako_client_destroy (tako_client_t **self_p)
{
    tako_client_t *self = *self_p;
    if (!self)
        return;
    tako_peer_destroy (&self->peer);
    free (self);
    *self_p = NULL;
}

tako_peer_t *
tako_client_peer (tako_client_t *self)
{
    return self->peer;
}

//  True if msg answers the request with this id.
static bool
answers (tako_msg_t *msg, const char *request_id)
{
    const char *id = tako_msg_has (msg, "request_id")? tako_msg_str (msg, "request_id"): NULL;
    return id && streq (id, request_id)
        && (streq (tako_msg_command (msg), "REPLY") || streq (tako_msg_command (msg), "ACCEPTED")
         || streq (tako_msg_command (msg), "ERROR") || streq (tako_msg_command (msg), "BUILT"));
}

tako_msg_t *
tako_client_request (tako_client_t *self, tako_msg_t **request_p, int timeout_ms)
{
    char request_id [REQUEST_ID_SIZE];
    snprintf (request_id, sizeof request_id, "%s-%" PRIu64,
              tako_peer_instance (self->peer), ++self->requests);
    if (tako_msg_set_str (*request_p, "request_id", request_id)
    ||  tako_peer_send (self->peer, request_p)) {
        tako_msg_destroy (request_p);
        return NULL;
    }
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return NULL;
        tako_msg_t *msg = tako_peer_recv (self->peer, (int) left);
        if (!msg)
            return NULL;        //  timed out or interrupted
        if (answers (msg, request_id))
            return msg;
        tako_msg_destroy (&msg);
    }
}

int
tako_client_query (tako_client_t *self, const char *service, const char *query,
                   json_t *params, int timeout_ms, json_t **result, char **reason)
{
    if (result)
        *result = NULL;
    if (reason)
        *reason = NULL;
    tako_msg_t *request = tako_msg_new ("QUERY");
    if (!request || tako_msg_set_address (request, service) || tako_msg_set_str (request, "query", query)
    ||  (params && tako_msg_set_object (request, "params", params))) {
        tako_msg_destroy (&request);
        return -1;
    }
    tako_msg_t *answer = tako_client_request (self, &request, timeout_ms);
    if (!answer)
        return -1;
    int code = (int) tako_msg_int (answer, "code", -1);
    json_t *answer_result = tako_msg_object (answer, "result");
    if (result && answer_result)
        *result = json_incref (answer_result);
    const char *answer_reason = tako_msg_str (answer, "reason");
    if (reason && answer_reason)
        *reason = strdup (answer_reason);
    tako_msg_destroy (&answer);
    return code;
}

//  --------------------------------------------------------------------------
//  Self-test

//  A service "echo" that answers QUERY "echo" with its params, and any
//  other query with 404 — and first sends a stray REPLY the client must
//  ignore.
static void
test_echo_actor (zsock_t *pipe, void *args)
{
    tako_peer_t *echo = tako_peer_new ((const char *) args, "echo", &(tako_heartbeat_t) { 100, 3 });
    assert (echo);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, tako_peer_socket (echo), NULL);
    while (true) {
        void *which = zpoller_wait (poller, tako_peer_tick_due (echo));
        if (which == pipe)
            break;
        tako_msg_t *msg = which? tako_peer_handle_input (echo): NULL;
        if (msg && streq (tako_msg_command (msg), "QUERY")) {
            tako_msg_t *stray = tako_msg_new ("REPLY");
            tako_msg_set_address (stray, tako_msg_address (msg));
            tako_msg_set_str (stray, "request_id", "someone-else");
            tako_msg_set_int (stray, "code", 500);
            tako_peer_send (echo, &stray);

            tako_msg_t *reply = tako_msg_new ("REPLY");
            tako_msg_set_address (reply, tako_msg_address (msg));
            tako_msg_set_str (reply, "request_id", tako_msg_str (msg, "request_id"));
            bool known = streq (tako_msg_str (msg, "query"), "echo");
            tako_msg_set_int (reply, "code", known? 200: 404);
            if (known && tako_msg_object (msg, "params"))
                tako_msg_set_object (reply, "result", tako_msg_object (msg, "params"));
            if (!known)
                tako_msg_set_str (reply, "reason", "unknown query");
            tako_peer_send (echo, &reply);
        }
        tako_msg_destroy (&msg);
        tako_peer_tick (echo);
    }
    zpoller_destroy (&poller);
    tako_peer_destroy (&echo);
}

void
tako_client_test (bool verbose)
{
    (void) verbose;
    tako_log_set_level (TAKO_LOG_CRITICAL);
    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", 100, 3, NULL };
    zactor_t *broker = zactor_new (tako_broker_actor, &broker_args);
    char *endpoint = tako_broker_endpoint (broker);
    assert (endpoint);
    zactor_t *echo = zactor_new (test_echo_actor, endpoint);
    tako_client_t *client = tako_client_new (endpoint, &(tako_heartbeat_t) { 100, 3 });
    assert (client);

    //  The echo service may take a moment to register: the broker says
    //  503 until then.
    json_t *params = json_pack ("{s:i}", "n", 42);
    json_t *result = NULL;
    char *reason = NULL;
    int code = 503;
    for (int attempt = 0; attempt < 100 && code == 503; attempt++) {
        free (reason);
        code = tako_client_query (client, "echo", "echo", params, 2000, &result, &reason);
        if (code == 503)
            zclock_sleep (20);
    }
    assert (code == 200);
    assert (json_equal (result, params));
    assert (reason == NULL);
    json_decref (result);

    code = tako_client_query (client, "echo", "nothing", NULL, 2000, &result, &reason);
    assert (code == 404 && result == NULL);
    assert (reason && streq (reason, "unknown query"));
    free (reason);

    //  No such service: the broker answers 503 at once.
    code = tako_client_query (client, "nobody", "echo", NULL, 2000, NULL, NULL);
    assert (code == 503);
    json_decref (params);

    //  Nobody answers in time: -1.
    zactor_destroy (&echo);
    zactor_destroy (&broker);
    assert (tako_client_query (client, "echo", "echo", NULL, 100, NULL, NULL) == -1);

    tako_client_destroy (&client);
    tako_client_destroy (&client);
    assert (client == NULL);
    zstr_free (&endpoint);
    tako_log_set_level (TAKO_LOG_INFO);
}
