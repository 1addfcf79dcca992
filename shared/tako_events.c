/*  tako_events — job events through the event hub. See tako_events.h.  */

#include <assert.h>
#include <errno.h>
#include <string.h>
#include "tako_events.h"
#include "tako_log.h"
#include "brokers/tako_hub.h"

#define EVENTS_COMPONENT "events"

//  A topic frame followed by the protocol frames.
#define EVENTS_FRAME_COUNT (1 + TAKO_PROTO_FRAME_COUNT)

//  Events waiting for a slow subscriber (or a slow hub); beyond it
//  ZeroMQ drops them: events are for watchers, nothing durable rides on them.
#define EVENTS_HIGH_WATER_MARK 10000

//  How long the self-test waits for anything before failing.
#define EVENTS_TEST_TIMEOUT_MS 5000

struct _tako_events_t {
    zsock_t *socket;
    bool subscriber;
    bool welcomed;
};

static const char *
endpoint_connect_form (const char *endpoint)
{
    return *endpoint == '>'? endpoint + 1: endpoint;
}

static tako_events_t *
events_new (const char *endpoint, int type)
{
    if (!endpoint || *endpoint == '@')
        return NULL;
    tako_events_t *self = (tako_events_t *) zmalloc (sizeof (tako_events_t));
    assert (self);
    self->subscriber = type == ZMQ_SUB;
    self->socket = zsock_new (type);
    assert (self->socket);
    zsock_set_linger (self->socket, 0);
    if (self->subscriber) {
        zsock_set_rcvhwm (self->socket, EVENTS_HIGH_WATER_MARK);
        zsock_set_maxmsgsize (self->socket, TAKO_PROTO_SOCKET_MAXMSGSIZE);
        zsock_set_subscribe (self->socket, TAKO_HUB_WELCOME);
    }
    else
        zsock_set_sndhwm (self->socket, EVENTS_HIGH_WATER_MARK);
    if (zsock_connect (self->socket, "%s", endpoint_connect_form (endpoint)) == -1)
        tako_events_destroy (&self);
    return self;
}

tako_events_t *
tako_events_new_publisher (const char *endpoint)
{
    return events_new (endpoint, ZMQ_PUB);
}

tako_events_t *
tako_events_new_subscriber (const char *endpoint)
{
    return events_new (endpoint, ZMQ_SUB);
}

void
tako_events_destroy (tako_events_t **self_p)
{
    assert (self_p);
    tako_events_t *self = *self_p;
    if (self) {
        zsock_destroy (&self->socket);
        free (self);
        *self_p = NULL;
    }
}

char *
tako_events_topic (const char *job_id)
{
    size_t size = job_id? strlen (job_id): 0;
    if (size == 0 || size > TAKO_PROTO_ADDRESS_MAX || strchr (job_id, '.'))
        return NULL;
    return zsys_sprintf ("%s%s.", TAKO_EVENTS_JOB_PREFIX, job_id);
}

char *
tako_events_build_topic (const char *build_id)
{
    size_t size = build_id? strlen (build_id): 0;
    if (size == 0 || size > TAKO_PROTO_ADDRESS_MAX || strchr (build_id, '.'))
        return NULL;
    return zsys_sprintf ("%s%s.", TAKO_EVENTS_BUILD_PREFIX, build_id);
}

static int
events_publish (tako_events_t *self, tako_msg_t **event_p, bool build)
{
    assert (self && event_p);
    tako_msg_t *event = *event_p;
    char *topic = NULL;
    char *error = NULL;
    zmsg_t *frames = NULL;
    const char *id = event? tako_msg_str (event, "job_id"): NULL;
    if (!self->subscriber && event && streq (tako_msg_command (event), "EVENT")
    &&  (topic = build? tako_events_build_topic (id): tako_events_topic (id)))
        frames = tako_msg_encode (event, &error);
    tako_msg_destroy (event_p);
    int rc = -1;
    if (frames) {
        zmsg_pushstr (frames, topic);
        rc = zmsg_send (&frames, self->socket);
        zmsg_destroy (&frames);     //  only left if the send failed
    }
    else
        tako_debug (EVENTS_COMPONENT, "not published: %s", error? error: "not an EVENT with a job_id");
    free (error);
    free (topic);
    return rc;
}

int
tako_events_publish (tako_events_t *self, tako_msg_t **event_p)
{
    return events_publish (self, event_p, false);
}

int
tako_events_publish_build (tako_events_t *self, tako_msg_t **event_p)
{
    return events_publish (self, event_p, true);
}

static int
events_follow (tako_events_t *self, const char *topic)
{
    if (!self->subscriber || !topic)
        return -1;
    zsock_set_subscribe (self->socket, topic);
    return 0;
}

int
tako_events_follow_job (tako_events_t *self, const char *job_id)
{
    assert (self);
    char *topic = tako_events_topic (job_id);
    int rc = events_follow (self, topic);
    free (topic);
    return rc;
}

int
tako_events_follow_all (tako_events_t *self)
{
    assert (self);
    return events_follow (self, TAKO_EVENTS_JOB_PREFIX);
}

int
tako_events_follow_builds (tako_events_t *self, const char *name)
{
    assert (self);
    if (!name)
        return events_follow (self, TAKO_EVENTS_BUILD_PREFIX);
    char *prefix = strchr (name, '.') || strchr (name, '@')? NULL:
                   zsys_sprintf ("%s%s@", TAKO_EVENTS_BUILD_PREFIX, name);
    int rc = events_follow (self, prefix);
    zstr_free (&prefix);
    return rc;
}

//  True if topic is the job topic or the build topic of id.
static bool
events_topic_matches (const char *topic, const char *id)
{
    char *job = tako_events_topic (id);
    char *build = tako_events_build_topic (id);
    bool matches = (job && streq (job, topic)) || (build && streq (build, topic));
    zstr_free (&job);
    zstr_free (&build);
    return matches;
}

//  An EVENT whose topic matches its job_id, from one received message;
//  NULL (the welcome noted, anything else dropped) otherwise.
static tako_msg_t *
events_decode (tako_events_t *self, zmsg_t *frames)
{
    if (zmsg_size (frames) == 1) {
        char *text = zmsg_popstr (frames);
        if (text && streq (text, TAKO_HUB_WELCOME))
            self->welcomed = true;
        free (text);
        return NULL;
    }
    if (zmsg_size (frames) != EVENTS_FRAME_COUNT)
        return NULL;
    char *topic = zmsg_popstr (frames);
    char *error = NULL;
    tako_msg_t *event = tako_msg_decode_zmsg (frames, &error);
    if (!event || !streq (tako_msg_command (event), "EVENT") || !topic
    ||  !events_topic_matches (topic, tako_msg_str (event, "job_id"))) {
        tako_debug (EVENTS_COMPONENT, "dropped a malformed event: %s", error? error: "topic mismatch");
        tako_msg_destroy (&event);
    }
    free (error);
    free (topic);
    return event;
}

tako_msg_t *
tako_events_recv (tako_events_t *self, int timeout_ms)
{
    assert (self);
    if (!self->subscriber)
        return NULL;
    int64_t deadline = timeout_ms < 0? INT64_MAX: zclock_mono () + timeout_ms;
    while (!zsys_interrupted) {
        int64_t left = deadline - zclock_mono ();
        if (left < 0)
            break;
        zmq_pollitem_t item = { zsock_resolve (self->socket), 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, timeout_ms < 0? -1: (long) left);
        if (rc == -1 && errno != EINTR)
            break;
        if (rc <= 0)
            continue;
        zmsg_t *frames = zmsg_recv (self->socket);
        tako_msg_t *event = frames? events_decode (self, frames): NULL;
        zmsg_destroy (&frames);
        if (event)
            return event;
    }
    return NULL;
}

bool
tako_events_welcomed (tako_events_t *self)
{
    assert (self);
    return self->welcomed;
}

zsock_t *
tako_events_socket (tako_events_t *self)
{
    assert (self);
    return self->socket;
}

//  ---------------------------------------------------------------------
//  Self-test

static tako_msg_t *
test_event (const char *job_id, int64_t seq)
{
    tako_msg_t *event = tako_msg_new ("EVENT");
    tako_msg_set_str (event, "job_id", job_id);
    tako_msg_set_int (event, "seq", seq);
    tako_msg_set_str (event, "status", "queued");
    tako_msg_set_str (event, "kind", "queued");
    return event;
}

void
tako_events_test (bool verbose)
{
    (void) verbose;
    char *topic = tako_events_topic ("j1");
    assert (topic && streq (topic, "job.j1."));
    free (topic);
    assert (tako_events_topic ("a.b") == NULL);
    assert (tako_events_topic ("") == NULL);

    tako_hub_args_t args = { "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", NULL, NULL };
    zactor_t *hub = zactor_new (tako_hub_actor, &args);
    char *publish, *subscribe;
    assert (tako_hub_endpoints (hub, &publish, &subscribe) == 0);

    tako_events_t *watcher = tako_events_new_subscriber (subscribe);
    tako_events_t *publisher = tako_events_new_publisher (publish);
    assert (watcher && publisher);
    assert (tako_events_follow_job (watcher, "j1") == 0);
    assert (tako_events_follow_job (publisher, "j1") == -1);    //  not a subscriber

    //  Subscriptions reach the publisher asynchronously: publish until
    //  the watcher sees one, with a deadline. j2 must never show up.
    tako_msg_t *received = NULL;
    int64_t deadline = zclock_mono () + EVENTS_TEST_TIMEOUT_MS;
    for (int64_t seq = 1; !received && zclock_mono () < deadline; seq++) {
        tako_msg_t *other = test_event ("j2", seq);
        assert (tako_events_publish (publisher, &other) == 0);
        tako_msg_t *event = test_event ("j1", seq);
        assert (tako_events_publish (publisher, &event) == 0 && event == NULL);
        received = tako_events_recv (watcher, 20);
    }
    assert (received && tako_events_welcomed (watcher));
    assert (streq (tako_msg_str (received, "job_id"), "j1"));
    tako_msg_destroy (&received);

    //  Build events travel on their own topics: a job watcher never
    //  sees them, a build watcher sees only those of its job type.
    char *build_topic = tako_events_build_topic ("data@sha256:0123456789ab");
    assert (build_topic && streq (build_topic, "build.data@sha256:0123456789ab."));
    zstr_free (&build_topic);
    tako_events_t *builds = tako_events_new_subscriber (subscribe);
    assert (builds && tako_events_follow_builds (builds, "data") == 0);
    assert (tako_events_follow_builds (builds, "a.b") == -1);
    deadline = zclock_mono () + EVENTS_TEST_TIMEOUT_MS;
    for (int64_t seq = 1; !received && zclock_mono () < deadline; seq++) {
        tako_msg_t *other = test_event ("datax@sha256:0123456789ab", seq);
        assert (tako_events_publish_build (publisher, &other) == 0);
        tako_msg_t *event = test_event ("data@sha256:0123456789ab", seq);
        assert (tako_events_publish_build (publisher, &event) == 0);
        received = tako_events_recv (builds, 20);
    }
    assert (received && streq (tako_msg_str (received, "job_id"), "data@sha256:0123456789ab"));
    tako_msg_destroy (&received);
    //  The job watcher may still hold late j1 events, never a build's.
    for (tako_msg_t *late; (late = tako_events_recv (watcher, 50)); tako_msg_destroy (&late))
        assert (streq (tako_msg_str (late, "job_id"), "j1"));
    tako_events_destroy (&builds);

    //  Not an EVENT: refused, and destroyed all the same.
    tako_msg_t *wrong = tako_msg_new ("HEARTBEAT");
    assert (tako_events_publish (publisher, &wrong) == -1 && wrong == NULL);

    tako_events_destroy (&publisher);
    tako_events_destroy (&watcher);
    tako_events_destroy (&watcher);
    zstr_free (&publish);
    zstr_free (&subscribe);
    zactor_destroy (&hub);
}
