/*  tako_client — ask a service something and wait for its answer.

    The C client of the direct ZeroMQ protocol, as `tako-vm exec`,
    `tako-vm status` and the server's shutdown use it: a client peer
    (offers no service) that sends a request carrying a fresh request_id
    and waits, with a deadline, for the answer carrying the same id —
    REPLY, ACCEPTED, or ERROR (from the service, or from the broker when
    no instance of the service is alive). Anything else that arrives
    meanwhile (late answers to earlier requests) is dropped.

        tako_client_t *client = tako_client_new ("tcp://127.0.0.1:5555", NULL);
        json_t *result = NULL;
        char *reason = NULL;
        int code = tako_client_query (client, "scheduler", "pool.stats", NULL,
                                      2000, &result, &reason);
        if (code == 200) ... else if (code == -1) ... timed out
        json_decref (result);
        free (reason);
        tako_client_destroy (&client);                                     */

#ifndef TAKO_CLIENT_H_INCLUDED
#define TAKO_CLIENT_H_INCLUDED

#include <stdbool.h>
#include <jansson.h>
#include "tako_peer.h"
#include "tako_proto.h"

typedef struct _tako_client_t tako_client_t;

//  A client connected to the broker at endpoint; heartbeat NULL for the
//  defaults. NULL if the endpoint is invalid.
tako_client_t *tako_client_new (const char *endpoint, const tako_heartbeat_t *heartbeat);

//  Close and free; NULLs *self_p, safe twice.
void tako_client_destroy (tako_client_t **self_p);

//  Send a request (its address is the destination) with a fresh
//  request_id, and return the answer with the same request_id, or NULL
//  after timeout_ms. Takes and destroys *request_p. The caller destroys
//  the answer.
tako_msg_t *tako_client_request (tako_client_t *self, tako_msg_t **request_p, int timeout_ms);

//  QUERY service (a service name or an instance id) with params (may be
//  NULL; not taken). Returns the answer's code — the REPLY's, or the
//  ERROR's (e.g. 503: no such service alive) — or -1 on timeout. When
//  result is not NULL it gets the REPLY's result (caller decrefs, NULL if
//  none); when reason is not NULL it gets the reason (caller frees, NULL
//  if none).
int tako_client_query (tako_client_t *self, const char *service, const char *query,
                       json_t *params, int timeout_ms, json_t **result, char **reason);

//  The client's peer, e.g. to learn its instance id.
tako_peer_t *tako_client_peer (tako_client_t *self);

void tako_client_test (bool verbose);

#endif
