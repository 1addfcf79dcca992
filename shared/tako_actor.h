/*  tako_actor — what every actor is started with.

    Each actor is a czmq actor `void tako_NAME_actor (zsock_t *pipe, void
    *args)` taking a tako_actor_args_t (the executor takes its own
    tako_executor_args_t, which adds slots). It signals its pipe once ready
    (0) or failed (1), exits on $TERM, owns every socket it creates, and
    talks to the others only through the broker (tako_peer) and the event
    hub. `tako-vm server` starts all of them as threads of one process, or
    with --processes each as `tako-vm actor NAME` in its own process.     */

#ifndef TAKO_ACTOR_H_INCLUDED
#define TAKO_ACTOR_H_INCLUDED

#include "tako_config.h"
#include "tako_peer.h"

typedef struct {
    tako_config_t *config;          //  borrowed; outlives the actor
    const char *broker_endpoint;    //  NULL = config->broker_endpoint
    const char *events_endpoint;    //  PUB connects here; NULL = config->event_publish_endpoint
    const char *database_url;       //  recorder only; NULL = config->database_url
    tako_heartbeat_t heartbeat;     //  zero = defaults; tests use short beats
} tako_actor_args_t;

#endif
