/*  tako_actors — the actor registry, and a set of actors run as threads.

    The scheduler, recorder and dlq take a tako_actor_args_t; the executor
    takes its own tako_executor_args_t. Both are built here from the
    set's options and live as long as the actor does (actors may keep
    pointers into them).                                                  */

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include "tako_actor.h"
#include "tako_actors.h"
#include "tako_log.h"
#include "brokers/tako_broker.h"
#include "actors/executor/tako_executor.h"
#include "actors/recorder/tako_recorder.h"
#include "actors/scheduler/tako_scheduler.h"
#include "actors/dlq/tako_dlq.h"
#include "actors/builder/tako_builder.h"
#include "http/tako_http.h"

#define LOG "actors"

//  How an actor's arguments are built.
typedef enum {
    ARGS_ACTOR,                 //  tako_actor_args_t
    ARGS_EXECUTOR               //  tako_executor_args_t
} args_kind_t;

typedef struct {
    const char *name;
    zactor_fn *function;
    args_kind_t args_kind;
} registry_entry_t;

//  Every actor this build has, in start order.
static const registry_entry_t registry [] = {
    { "recorder",  tako_recorder_actor,  ARGS_ACTOR },
    { "scheduler", tako_scheduler_actor, ARGS_ACTOR },
    { "dlq",       tako_dlq_actor,       ARGS_ACTOR },
    { "builder",   tako_builder_actor,   ARGS_ACTOR },
    { "executor",  tako_executor_actor,  ARGS_EXECUTOR },
    { "http",      tako_http_actor,      ARGS_ACTOR },
};
#define REGISTRY_SIZE (sizeof registry / sizeof registry [0])

static const char *const start_order [] = {
    "recorder",
    "scheduler",
    "dlq",
    "builder",
    "executor",
    "http",
    NULL
};

//  One running actor with the arguments it was given.
typedef struct {
    const registry_entry_t *entry;
    zactor_t *actor;
    tako_actor_args_t actor_args;
    tako_executor_args_t executor_args;
} running_t;

struct _tako_actors_t {
    tako_config_t *config;
    char *broker_endpoint;
    char *events_endpoint;
    char *database_url;
    tako_heartbeat_t heartbeat;
    int executor_slots;
    int executor_slot_base;
    running_t *running [TAKO_ACTORS_MAX];   //  in start order
    size_t count;
};

//  --------------------------------------------------------------------------
//  Helpers

static const registry_entry_t *
registry_find (const char *name)
{
    for (size_t i = 0; name && i < REGISTRY_SIZE; i++)
        if (streq (registry [i].name, name))
            return &registry [i];
    return NULL;
}

static char *
strdup_or_null (const char *text)
{
    return text? strdup (text): NULL;
}

static size_t
running_index (tako_actors_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (streq (self->running [i]->entry->name, name))
            return i;
    return SIZE_MAX;
}

//  Forget the actor at index, keeping the others in start order.
static void
running_remove (tako_actors_t *self, size_t index)
{
    free (self->running [index]);
    memmove (&self->running [index], &self->running [index + 1],
             (self->count - index - 1) * sizeof (running_t *));
    self->count--;
}

static void
running_args_fill (tako_actors_t *self, running_t *running)
{
    running->actor_args = (tako_actor_args_t) {
        .config = self->config,
        .broker_endpoint = self->broker_endpoint,
        .events_endpoint = self->events_endpoint,
        .database_url = self->database_url,
        .heartbeat = self->heartbeat
    };
    running->executor_args = (tako_executor_args_t) {
        .config = self->config,
        .endpoint = self->broker_endpoint,
        .heartbeat = self->heartbeat,
        .slots = self->executor_slots,
        .slot_base = self->executor_slot_base
    };
}

//  --------------------------------------------------------------------------
//  Public API

tako_actors_t *
tako_actors_new (const tako_actors_options_t *options)
{
    assert (options && options->config);
    tako_actors_t *self = calloc (1, sizeof (tako_actors_t));
    if (!self)
        return NULL;
    self->config = options->config;
    self->broker_endpoint = strdup_or_null (options->broker_endpoint);
    self->events_endpoint = strdup_or_null (options->events_endpoint);
    self->database_url = strdup_or_null (options->database_url);
    self->heartbeat = options->heartbeat;
    self->executor_slots = options->executor_slots;
    self->executor_slot_base = options->executor_slot_base;
    if ((options->broker_endpoint && !self->broker_endpoint)
    ||  (options->events_endpoint && !self->events_endpoint)
    ||  (options->database_url && !self->database_url))
        tako_actors_destroy (&self);
    return self;
}

void
tako_actors_destroy (tako_actors_t **self_p)
{
    tako_actors_t *self = *self_p;
    if (!self)
        return;
    while (self->count > 0)
        tako_actors_stop (self, self->running [self->count - 1]->entry->name);
    free (self->broker_endpoint);
    free (self->events_endpoint);
    free (self->database_url);
    free (self);
    *self_p = NULL;
}

bool
tako_actors_known (const char *name)
{
    return registry_find (name) != NULL;
}

const char *const *
tako_actors_start_order (void)
{
    return start_order;
}

int
tako_actors_start (tako_actors_t *self, const char *name)
{
    const registry_entry_t *entry = registry_find (name);
    if (!entry || running_index (self, name) != SIZE_MAX || self->count >= TAKO_ACTORS_MAX)
        return -1;
    running_t *running = calloc (1, sizeof (running_t));
    if (!running)
        return -1;
    running->entry = entry;
    running_args_fill (self, running);
    void *args = entry->args_kind == ARGS_EXECUTOR? (void *) &running->executor_args
                                                  : (void *) &running->actor_args;
    running->actor = zactor_new (entry->function, args);
    if (!running->actor) {
        free (running);
        return -1;
    }
    self->running [self->count++] = running;
    tako_debug (LOG, "%s started", name);
    return 0;
}

int
tako_actors_stop (tako_actors_t *self, const char *name)
{
    size_t index = running_index (self, name);
    if (index == SIZE_MAX)
        return -1;
    tako_debug (LOG, "stopping %s", name);
    zactor_destroy (&self->running [index]->actor);
    running_remove (self, index);
    return 0;
}

zactor_t *
tako_actors_get (tako_actors_t *self, const char *name)
{
    size_t index = running_index (self, name);
    return index == SIZE_MAX? NULL: self->running [index]->actor;
}

void
tako_actors_poll (tako_actors_t *self, zpoller_t *poller)
{
    for (size_t i = 0; i < self->count; i++)
        zpoller_add (poller, self->running [i]->actor);
}

const char *
tako_actors_check (tako_actors_t *self, void *which)
{
    for (size_t i = 0; which && i < self->count; i++)
        if ((void *) self->running [i]->actor == which) {
            const char *name = self->running [i]->entry->name;
            //  The thread has ended: destroy collects its final signal.
            zactor_destroy (&self->running [i]->actor);
            running_remove (self, i);
            return name;
        }
    return NULL;
}

//  --------------------------------------------------------------------------
//  Self-test

void
tako_actors_test (bool verbose)
{
    (void) verbose;
    assert (tako_actors_known ("executor"));
    assert (!tako_actors_known ("nobody"));
    assert (!tako_actors_known (NULL));
    const char *const *order = tako_actors_start_order ();
    assert (order [0]);
    size_t count = 0;
    for (const char *const *name = order; *name; name++, count++)
        assert (tako_actors_known (*name));
    assert (count == REGISTRY_SIZE);
    //  The executor asks for work once the others are up; the HTTP
    //  ingress, last, takes requests once everything behind it runs.
    assert (streq (order [count - 2], "executor"));
    assert (streq (order [count - 1], "http"));

    //  Start an executor against a private broker, stop it, start again.
    tako_log_set_level (TAKO_LOG_CRITICAL);
    tako_config_t *config = tako_config_new ();
    assert (config);
    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", 100, 3, NULL };
    zactor_t *broker = zactor_new (tako_broker_actor, &broker_args);
    char *endpoint = tako_broker_endpoint (broker);
    assert (endpoint);
    tako_actors_options_t options = {
        .config = config, .broker_endpoint = endpoint,
        .heartbeat = { 100, 3 }, .executor_slots = 1, .executor_slot_base = 900
    };
    tako_actors_t *actors = tako_actors_new (&options);
    assert (actors);
    assert (tako_actors_start (actors, "nobody") == -1);
    assert (tako_actors_start (actors, "executor") == 0);
    assert (tako_actors_start (actors, "executor") == -1);
    zactor_t *executor = tako_actors_get (actors, "executor");
    assert (executor);
    zstr_send (executor, "INSTANCE");
    char *instance = zstr_recv (executor);
    assert (instance && strncmp (instance, "executor.", 9) == 0);
    zstr_free (&instance);

    //  A running actor's pipe is quiet; tako_actors_check ignores others.
    zpoller_t *poller = zpoller_new (NULL);
    tako_actors_poll (actors, poller);
    assert (zpoller_wait (poller, 50) == NULL);
    assert (tako_actors_check (actors, broker) == NULL);
    zpoller_destroy (&poller);

    assert (tako_actors_stop (actors, "executor") == 0);
    assert (tako_actors_get (actors, "executor") == NULL);
    assert (tako_actors_stop (actors, "executor") == -1);
    assert (tako_actors_start (actors, "executor") == 0);
    tako_actors_destroy (&actors);
    tako_actors_destroy (&actors);
    assert (actors == NULL);

    zstr_free (&endpoint);
    zactor_destroy (&broker);
    tako_config_destroy (&config);
    tako_log_set_level (TAKO_LOG_INFO);
}
