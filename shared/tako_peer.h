/*  tako_peer — one connection to the service broker (the DEALER side).

    Every actor and every external client talks to the others through a
    peer. A peer has an instance id "NAME.<16 hex>" that is also its
    routing id, registers the service it offers (none for a client), sends
    messages addressed to a service or an instance, and receives messages
    whose address names the sender, so a reply is addressed to it.

    The peer keeps the connection alive by itself: it sends HEARTBEAT when
    it has sent nothing for one interval, swallows the broker's HEARTBEATs,
    and when it has heard nothing from the broker for `liveness` intervals
    it assumes the broker restarted: it drops the socket, connects a new
    one with the same instance id and registers again. A broker that says
    "register first" (it forgot us) gets a new REGISTER at once.

    Simple use (blocking, with a deadline):

        tako_heartbeat_t beat = { 1000, 3 };
        tako_peer_t *client = tako_peer_new_client ("tcp://127.0.0.1:5555", "exec", &beat);
        tako_msg_t *msg = tako_msg_new ("QUERY");
        tako_msg_set_address (msg, "recorder");
        ...
        tako_peer_send (client, &msg);
        tako_msg_t *reply = tako_peer_recv (client, 5000);    //  NULL: timed out
        tako_peer_destroy (&client);                          //  UNREGISTERs

    In an event loop: poll tako_peer_socket (peer) for input and call
    tako_peer_handle_input, which returns the next application message
    or NULL; call tako_peer_tick at least every tako_peer_tick_due (peer)
    milliseconds. When tako_peer_tick returns 1 the peer reconnected and
    tako_peer_socket now returns a NEW socket: re-register it with your
    poller/zloop (and forget the old one, which is destroyed).          */

#ifndef TAKO_PEER_H_INCLUDED
#define TAKO_PEER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>
#include "tako_proto.h"

typedef struct _tako_peer_t tako_peer_t;

//  Heartbeat settings; both sides of a connection must agree.
typedef struct {
    int interval_ms;            //  beat when idle this long; <= 0: TAKO_PEER_DEFAULT_INTERVAL_MS
    int liveness;               //  the other side is gone after this many silent intervals; <= 0: default
} tako_heartbeat_t;

#define TAKO_PEER_DEFAULT_INTERVAL_MS 1000
#define TAKO_PEER_DEFAULT_LIVENESS    3

//  A peer offering `service` (a service name): instance id
//  "service.<hex>", REGISTER {services: [service]} sent at once.
//  heartbeat may be NULL for the defaults. NULL if the name or the
//  endpoint is invalid.
tako_peer_t *tako_peer_new (const char *endpoint, const char *service,
                            const tako_heartbeat_t *heartbeat);

//  A peer that offers nothing (a client); `name` only names its instance.
tako_peer_t *tako_peer_new_client (const char *endpoint, const char *name,
                                   const tako_heartbeat_t *heartbeat);

//  Send UNREGISTER (best effort), close, free; NULLs *self_p, safe twice.
void tako_peer_destroy (tako_peer_t **self_p);

//  The instance id (borrowed).
const char *tako_peer_instance (tako_peer_t *self);

//  Send a message whose address is its destination. Takes and destroys
//  *msg_p whatever happens. 0, or -1 if it could not be queued (encoding
//  failed or the outgoing queue is full).
int tako_peer_send (tako_peer_t *self, tako_msg_t **msg_p);

//  The next application message (never a HEARTBEAT), waiting at most
//  timeout_ms (-1: forever) while keeping heartbeats going. NULL on
//  timeout or interrupt. The caller destroys the message.
tako_msg_t *tako_peer_recv (tako_peer_t *self, int timeout_ms);

//  The socket to poll for input. Changes when the peer reconnects.
zsock_t *tako_peer_socket (tako_peer_t *self);

//  Read one message from the socket (call when it is readable). Handles
//  the broker's HEARTBEAT and "register first" itself and drops malformed
//  input; returns an application message, or NULL if there was none.
tako_msg_t *tako_peer_handle_input (tako_peer_t *self);

//  Send a HEARTBEAT if due; reconnect and re-register if the broker has
//  been silent too long. Returns 0, or 1 if it reconnected (the socket
//  changed).
int tako_peer_tick (tako_peer_t *self);

//  Milliseconds until tako_peer_tick has something to do (0: now).
int tako_peer_tick_due (tako_peer_t *self);

//  True once the broker has answered since our latest REGISTER (the
//  broker beats back at once on a REGISTER).
bool tako_peer_registered (tako_peer_t *self);

//  How many REGISTERs this peer has sent: 1 after a quiet life, more after
//  broker restarts.
uint64_t tako_peer_registrations (tako_peer_t *self);

void tako_peer_test (bool verbose);

#endif
