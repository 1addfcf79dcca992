/*  tako_broker — the service broker: one ROUTER every peer talks through.

    Peers (actors, external clients) connect a DEALER whose routing id is
    their instance id, "SERVICE.SUFFIX", and send REGISTER {instance,
    services}. Then a message's address frame says where it goes:

      - a service name: the least recently used live instance offering it
        (each send moves that instance to the back of the line, so work
        spreads evenly);
      - an instance id: exactly that instance;
      - empty: the broker itself (REGISTER, HEARTBEAT, UNREGISTER).

    The broker forwards the same command and body with the address frame
    replaced by the sender's instance id, so the receiver can answer by
    addressing the sender. When nothing can take a message the sender gets
    ERROR {code: 503, reason, request_id?} from the broker (address empty).
    A peer that has not registered gets ERROR 403 "register first" for
    anything but REGISTER; its message is not routed.

    Heartbeats run both ways: the broker sends HEARTBEAT to a peer it has
    sent nothing to for one interval; any message from a peer proves it is
    alive; a peer silent for `liveness` intervals is dead and leaves the
    routing tables. The broker keeps nothing durable: after a restart the
    peers notice the silence, reconnect and register again (tako_peer does
    it for them).

    Malformed messages (wrong frame count, bad tag, oversize, undecodable
    body) are dropped with a debug line and counted. An ERROR is never
    answered with an ERROR.

    Usage:

        tako_broker_args_t args = { "tcp://127.0.0.1:*", 100, 3 };
        zactor_t *broker = zactor_new (tako_broker_actor, &args);
        char *endpoint = tako_broker_endpoint (broker);   //  NULL: bind failed
        ...
        zactor_destroy (&broker);

    Pipe commands: "$TERM"; "ENDPOINT" → one string (empty if the bind
    failed); "STATS" → picture "8888" (peers, services, routed, dropped).  */

#ifndef TAKO_BROKER_H_INCLUDED
#define TAKO_BROKER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>

//  Defaults for the configuration; tests use much shorter beats.
#define TAKO_BROKER_DEFAULT_ENDPOINT      "tcp://127.0.0.1:5555"
#define TAKO_BROKER_DEFAULT_INTERVAL_MS   1000
#define TAKO_BROKER_DEFAULT_LIVENESS      3

//  ERROR codes the broker itself sends (address "").
#define TAKO_BROKER_CODE_BAD_MESSAGE      400   //  e.g. REGISTER with a bad instance id
#define TAKO_BROKER_CODE_REGISTER_FIRST   403   //  sender is not registered: send REGISTER
#define TAKO_BROKER_CODE_UNAVAILABLE      503   //  no live instance can take the message

typedef struct {
    const char *endpoint;           //  ROUTER binds here ("@" prefix allowed)
    int heartbeat_interval_ms;      //  <= 0: TAKO_BROKER_DEFAULT_INTERVAL_MS
    int heartbeat_liveness;         //  missed intervals before a peer is dead; <= 0: default
    const char *inproc_endpoint;    //  also bound when set: the same process's peers
} tako_broker_args_t;

typedef struct {
    uint64_t peers;                 //  registered, live instances
    uint64_t services;              //  services with at least one instance
    uint64_t routed;                //  messages forwarded to a peer
    uint64_t dropped;               //  malformed or undeliverable messages
} tako_broker_stats_t;

//  The actor. args is a tako_broker_args_t, read before the actor signals.
void tako_broker_actor (zsock_t *pipe, void *args);

//  The endpoint a running broker bound (with the real port), as a fresh
//  string, or NULL if it could not bind.
char *tako_broker_endpoint (zactor_t *broker);

//  Read the broker's counters. Returns 0 or -1.
int tako_broker_stats (zactor_t *broker, tako_broker_stats_t *stats);

void tako_broker_test (bool verbose);

#endif
