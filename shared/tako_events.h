/*  tako_events — publish job events to the event hub, or follow them.

    An event on the wire is a topic frame followed by the four frames of an
    EVENT protocol message. The topic is "job.<job_id>." — the trailing dot
    ends the id, so subscribing to one job's topic never matches another
    job whose id merely starts the same way — and "job." is the prefix of
    every job's topic. Job ids therefore may not contain a dot.

    Publisher (connects PUB to the hub's publish endpoint):

        tako_events_t *events = tako_events_new_publisher (publish_endpoint);
        tako_msg_t *event = tako_msg_new ("EVENT");
        tako_msg_set_str (event, "job_id", "j1");  ... seq, status, kind
        tako_events_publish (events, &event);

    Subscriber (connects SUB to the hub's subscribe endpoint; it also
    subscribes to the hub's welcome message, which tako_events_recv
    swallows and tako_events_welcomed reports — before the welcome,
    events may be missed):

        tako_events_t *watcher = tako_events_new_subscriber (subscribe_endpoint);
        tako_events_follow_job (watcher, "j1");     //  or tako_events_follow_all
        tako_msg_t *event = tako_events_recv (watcher, 1000);               */

#ifndef TAKO_EVENTS_H_INCLUDED
#define TAKO_EVENTS_H_INCLUDED

#include <stdbool.h>
#include <czmq.h>
#include "tako_proto.h"

typedef struct _tako_events_t tako_events_t;

//  Topic prefix of every job event.
#define TAKO_EVENTS_JOB_PREFIX "job."
//  Topic prefix of the builder's events. A build event is an EVENT whose
//  job_id is the build's job_ref "name@sha256:<12 hex>", on the topic
//  "build.<job_ref>.", so job watchers never see it.
#define TAKO_EVENTS_BUILD_PREFIX "build."

//  A publisher connected to the hub's publish endpoint, or NULL.
tako_events_t *tako_events_new_publisher (const char *endpoint);

//  A subscriber connected to the hub's subscribe endpoint, following
//  nothing yet but the welcome, or NULL.
tako_events_t *tako_events_new_subscriber (const char *endpoint);

void tako_events_destroy (tako_events_t **self_p);

//  The topic of a job's events, "job.<job_id>.", a new string; NULL if
//  the id is empty, too long, or contains a dot.
char *tako_events_topic (const char *job_id);

//  Publish an EVENT message (its job_id names the topic). Takes and
//  destroys *event_p. 0, or -1 if it is not a valid EVENT.
int tako_events_publish (tako_events_t *self, tako_msg_t **event_p);

//  Subscriber: follow one job, or every job. 0 or -1.
int tako_events_follow_job (tako_events_t *self, const char *job_id);
int tako_events_follow_all (tako_events_t *self);

//  The topic of a build's events, "build.<build_id>.", a new string;
//  NULL under the same rules as tako_events_topic.
char *tako_events_build_topic (const char *build_id);

//  Publish a build EVENT (its job_id is the build id) on its build topic.
//  Takes and destroys *event_p. 0 or -1.
int tako_events_publish_build (tako_events_t *self, tako_msg_t **event_p);

//  Subscriber: follow the builds of one job type (name), or every build
//  (name NULL). 0 or -1.
int tako_events_follow_builds (tako_events_t *self, const char *name);

//  Subscriber: the next EVENT within timeout_ms (-1: forever), or NULL.
//  Malformed events are dropped.
tako_msg_t *tako_events_recv (tako_events_t *self, int timeout_ms);

//  Subscriber: true once the hub's welcome arrived (we are connected).
bool tako_events_welcomed (tako_events_t *self);

//  The socket, for a poller.
zsock_t *tako_events_socket (tako_events_t *self);

void tako_events_test (bool verbose);

#endif
