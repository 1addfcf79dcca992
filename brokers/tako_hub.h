/*  tako_hub — the event hub: an XSUB/XPUB forwarder in a czmq actor.

    Publishers connect a PUB socket to the publish endpoint; subscribers
    connect a SUB socket to the subscribe endpoint. The hub forwards every
    event from any publisher to every subscriber whose subscription
    matches, and forwards subscriptions back to the publishers so they
    filter at the source.

    An event is five frames: a topic, then the four frames of a protocol
    message (tag, address, command, body). Topics:

        job.<job_id>.   one job's events        (subscribe to this to follow one job)
        job.            prefix of every job event (subscribe to this for all jobs)

    The trailing dot makes a one-job subscription exact: "job.ab." does not
    match "job.abc.". See tako_events for helpers that build topics.

    A new subscriber receives one single-frame message, TAKO_HUB_WELCOME,
    as soon as its connection is up. ZeroMQ filters it like any topic, so
    a subscriber that wants it subscribes to TAKO_HUB_WELCOME (or to "").
    Until the welcome arrives, events can be lost: it is the signal that
    the subscriber is connected.

    Usage:

        tako_hub_args_t args = { "tcp://127.0.0.1:*", "tcp://127.0.0.1:*" };
        zactor_t *hub = zactor_new (tako_hub_actor, &args);
        char *publish = NULL, *subscribe = NULL;
        tako_hub_endpoints (hub, &publish, &subscribe);
        ...
        zactor_destroy (&hub);

    Pipe commands: "$TERM"; "ENDPOINTS" → two strings (publish, subscribe;
    empty when the bind failed); "STATS" → picture "88" (events forwarded,
    subscription messages forwarded).                                      */

#ifndef TAKO_HUB_H_INCLUDED
#define TAKO_HUB_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>

//  First and only frame of the message every new subscriber receives.
#define TAKO_HUB_WELCOME "tako.welcome"

//  Largest event the hub forwards; bigger ones are dropped by ZeroMQ.
#define TAKO_HUB_MAX_EVENT_SIZE (16 * 1024 * 1024)

typedef struct {
    const char *publish_endpoint;     //  XSUB binds here ("@" prefix allowed)
    const char *subscribe_endpoint;   //  XPUB binds here ("@" prefix allowed)
    //  Also bound when set: publishers and watchers in the same process.
    const char *inproc_publish_endpoint;
    const char *inproc_subscribe_endpoint;
} tako_hub_args_t;

typedef struct {
    uint64_t events;                  //  event messages forwarded
    uint64_t subscriptions;           //  (un)subscribe messages forwarded
} tako_hub_stats_t;

//  The actor. args is a tako_hub_args_t, read before the actor signals.
void tako_hub_actor (zsock_t *pipe, void *args);

//  Ask a running hub which endpoints it bound. Sets fresh strings the
//  caller frees. Returns 0, or -1 if the hub could not bind.
int tako_hub_endpoints (zactor_t *hub, char **publish, char **subscribe);

//  Read the hub's counters. Returns 0 or -1.
int tako_hub_stats (zactor_t *hub, tako_hub_stats_t *stats);

void tako_hub_test (bool verbose);

#endif
