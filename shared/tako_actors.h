/*  tako_actors — the actor registry, and a set of actors run as threads.

    Knows every actor by name (recorder, scheduler, dlq, builder, executor, http), which
    function runs it and how to build its arguments from one set of
    options, so `tako-vm server` (all of them as threads) and `tako-vm
    actor NAME` (one of them) start actors the same way.

        tako_actors_options_t options = { .config = config, .database_url = url };
        tako_actors_t *actors = tako_actors_new (&options);
        for (const char *const *name = tako_actors_start_order (); *name; name++)
            if (tako_actors_start (actors, *name))
                ...;
        ...
        tako_actors_stop (actors, "executor");      //  one, e.g. to drain first
        tako_actors_destroy (&actors);              //  the rest, last started first

    An actor whose thread ends on its own (it could not start, or failed)
    makes its pipe readable: poll tako_actors_pipe and call
    tako_actors_check to learn which one ended.                           */

#ifndef TAKO_ACTORS_H_INCLUDED
#define TAKO_ACTORS_H_INCLUDED

#include <stdbool.h>
#include <czmq.h>
#include "tako_config.h"
#include "tako_peer.h"

//  How many actors the registry knows at most.
#define TAKO_ACTORS_MAX 8

typedef struct {
    tako_config_t *config;          //  borrowed; must outlive the set
    const char *broker_endpoint;    //  NULL = config->broker_endpoint
    const char *events_endpoint;    //  PUB connects here; NULL = config->event_publish_endpoint
    const char *database_url;       //  recorder only; NULL = config->database_url
    tako_heartbeat_t heartbeat;     //  zero = defaults
    int executor_slots;             //  0 = config->max_workers
    int executor_slot_base;         //  first sandbox uid slot of the executor
} tako_actors_options_t;

typedef struct _tako_actors_t tako_actors_t;

//  A set with no actor running yet; copies the option strings. NULL on
//  allocation failure.
tako_actors_t *tako_actors_new (const tako_actors_options_t *options);

//  Stop every running actor, last started first; free; NULL *self_p.
void tako_actors_destroy (tako_actors_t **self_p);

//  True if NAME is an actor this build can run.
bool tako_actors_known (const char *name);

//  Names of the actors this build can run, in the order a server starts
//  them (the recorder first: everyone asks it; then the executor, which
//  asks for work; the HTTP ingress last, once everything behind it runs).
//  NULL-terminated, static.
const char *const *tako_actors_start_order (void);

//  Start one actor as a thread of this process. 0, or -1 if the name is
//  unknown, it already runs, or the thread could not start.
int tako_actors_start (tako_actors_t *self, const char *name);

//  Stop one actor (send $TERM, wait for its thread). 0, or -1 if it
//  does not run.
int tako_actors_stop (tako_actors_t *self, const char *name);

//  The running actor's zactor (for its pipe commands), or NULL.
zactor_t *tako_actors_get (tako_actors_t *self, const char *name);

//  Add every running actor's pipe to poller.
void tako_actors_poll (tako_actors_t *self, zpoller_t *poller);

//  Given what a poller returned: if it is the pipe of one of our actors,
//  that actor ended on its own (actors send nothing unasked); forget it
//  and return its name (static). NULL otherwise.
const char *tako_actors_check (tako_actors_t *self, void *which);

void tako_actors_test (bool verbose);

#endif
