/*  tako_hub — XSUB/XPUB event forwarder. See tako_hub.h.  */

#include <assert.h>
#include <string.h>
#include "tako_hub.h"
#include "tako_log.h"

#define HUB_COMPONENT "hub"

//  Events queue here while a subscriber is slow; beyond it ZeroMQ drops
//  (events are for watchers, nothing durable rides on them).
#define HUB_HIGH_WATER_MARK 10000

//  How long the self-test waits for anything before failing.
#define HUB_TEST_TIMEOUT_MS 5000

typedef struct {
    zsock_t *pipe;                    //  back to the owner
    zsock_t *frontend;                //  XSUB: publishers connect here
    zsock_t *backend;                 //  XPUB: subscribers connect here
    char *publish_endpoint;           //  as bound, with the real ports
    char *subscribe_endpoint;
    zpoller_t *poller;
    tako_hub_stats_t stats;
} hub_t;

//  Bind a socket to an endpoint that may carry czmq's "@" (bind) prefix.
static int
hub_bind (zsock_t *socket, const char *endpoint)
{
    if (!endpoint || *endpoint == '>')
        return -1;
    if (*endpoint == '@')
        endpoint++;
    return zsock_bind (socket, "%s", endpoint) == -1? -1: 0;
}

static void
hub_destroy (hub_t **self_p)
{
    assert (self_p);
    hub_t *self = *self_p;
    if (self) {
        zpoller_destroy (&self->poller);
        zsock_destroy (&self->frontend);
        zsock_destroy (&self->backend);
        zstr_free (&self->publish_endpoint);
        zstr_free (&self->subscribe_endpoint);
        free (self);
        *self_p = NULL;
    }
}

//  Returns a hub whose sockets are bound, or NULL (logged) if a bind failed.
static hub_t *
hub_new (zsock_t *pipe, const tako_hub_args_t *args)
{
    hub_t *self = (hub_t *) zmalloc (sizeof (hub_t));
    assert (self);
    self->pipe = pipe;
    self->frontend = zsock_new (ZMQ_XSUB);
    self->backend = zsock_new (ZMQ_XPUB);
    assert (self->frontend && self->backend);
    zsock_set_maxmsgsize (self->frontend, TAKO_HUB_MAX_EVENT_SIZE);
    zsock_set_rcvhwm (self->frontend, HUB_HIGH_WATER_MARK);
    zsock_set_sndhwm (self->backend, HUB_HIGH_WATER_MARK);
    zsock_set_xpub_welcome_msg (self->backend, TAKO_HUB_WELCOME);
    if (hub_bind (self->frontend, args->publish_endpoint) == -1) {
        tako_error (HUB_COMPONENT, "cannot bind publish endpoint %s: %s",
                    args->publish_endpoint? args->publish_endpoint: "(none)", zmq_strerror (zmq_errno ()));
        hub_destroy (&self);
        return NULL;
    }
    if (hub_bind (self->backend, args->subscribe_endpoint) == -1) {
        tako_error (HUB_COMPONENT, "cannot bind subscribe endpoint %s: %s",
                    args->subscribe_endpoint? args->subscribe_endpoint: "(none)", zmq_strerror (zmq_errno ()));
        hub_destroy (&self);
        return NULL;
    }
    self->publish_endpoint = zsock_last_endpoint (self->frontend);
    self->subscribe_endpoint = zsock_last_endpoint (self->backend);
    assert (self->publish_endpoint && self->subscribe_endpoint);
    if ((args->inproc_publish_endpoint
         && zsock_bind (self->frontend, "%s", args->inproc_publish_endpoint) == -1)
    ||  (args->inproc_subscribe_endpoint
         && zsock_bind (self->backend, "%s", args->inproc_subscribe_endpoint) == -1)) {
        tako_error (HUB_COMPONENT, "cannot bind the in-process endpoints: %s",
                    zmq_strerror (zmq_errno ()));
        hub_destroy (&self);
        return NULL;
    }
    self->poller = zpoller_new (pipe, self->frontend, self->backend, NULL);
    assert (self->poller);
    return self;
}

//  Forward one whole multipart message; a failed send drops it (XPUB
//  never blocks, so a failure means the hub is shutting down).
static void
hub_forward (zsock_t *from, zsock_t *to, uint64_t *counter)
{
    zmsg_t *msg = zmsg_recv (from);
    if (!msg)
        return;
    if (zmsg_send (&msg, to) == 0)
        (*counter)++;
    else
        zmsg_destroy (&msg);
}

//  Returns true when the owner asked us to stop.
static bool
hub_handle_pipe (hub_t *self)
{
    zmsg_t *request = zmsg_recv (self->pipe);
    if (!request)
        return true;
    char *command = zmsg_popstr (request);
    bool terminate = !command || streq (command, "$TERM");
    if (command && streq (command, "ENDPOINTS"))
        zsock_send (self->pipe, "ss", self->publish_endpoint, self->subscribe_endpoint);
    else
    if (command && streq (command, "STATS"))
        zsock_send (self->pipe, "88", self->stats.events, self->stats.subscriptions);
    else
    if (!terminate)
        tako_debug (HUB_COMPONENT, "unknown pipe command '%s'", command);
    free (command);
    zmsg_destroy (&request);
    return terminate;
}

//  A hub that could not bind still answers its pipe, so its owner learns
//  of the failure from ENDPOINTS instead of hanging, and stops on $TERM.
static void
hub_serve_failure (zsock_t *pipe)
{
    while (true) {
        char *command = zstr_recv (pipe);
        if (!command || streq (command, "$TERM")) {
            free (command);
            return;
        }
        if (streq (command, "ENDPOINTS"))
            zsock_send (pipe, "ss", "", "");
        else
        if (streq (command, "STATS"))
            zsock_send (pipe, "88", (uint64_t) 0, (uint64_t) 0);
        free (command);
    }
}

void
tako_hub_actor (zsock_t *pipe, void *args)
{
    hub_t *self = hub_new (pipe, (const tako_hub_args_t *) args);
    zsock_signal (pipe, 0);
    if (!self) {
        hub_serve_failure (pipe);
        return;
    }
    tako_debug (HUB_COMPONENT, "publishers connect to %s, subscribers to %s",
                self->publish_endpoint, self->subscribe_endpoint);
    while (true) {
        void *which = zpoller_wait (self->poller, -1);
        if (which == self->pipe) {
            if (hub_handle_pipe (self))
                break;
        }
        else
        if (which == self->frontend)
            hub_forward (self->frontend, self->backend, &self->stats.events);
        else
        if (which == self->backend)
            hub_forward (self->backend, self->frontend, &self->stats.subscriptions);
        else
        if (zpoller_terminated (self->poller))
            break;
    }
    hub_destroy (&self);
}

int
tako_hub_endpoints (zactor_t *hub, char **publish, char **subscribe)
{
    assert (hub && publish && subscribe);
    *publish = *subscribe = NULL;
    if (zstr_send (hub, "ENDPOINTS") == -1
    ||  zsock_recv (hub, "ss", publish, subscribe) == -1)
        return -1;
    if (*publish && **publish && *subscribe && **subscribe)
        return 0;
    zstr_free (publish);
    zstr_free (subscribe);
    return -1;
}

int
tako_hub_stats (zactor_t *hub, tako_hub_stats_t *stats)
{
    assert (hub && stats);
    if (zstr_send (hub, "STATS") == -1)
        return -1;
    return zsock_recv (hub, "88", &stats->events, &stats->subscriptions);
}

//  Receive one message within the test deadline, or NULL.
static zmsg_t *
test_recv (zsock_t *socket)
{
    zpoller_t *poller = zpoller_new (socket, NULL);
    zmsg_t *msg = zpoller_wait (poller, HUB_TEST_TIMEOUT_MS)? zmsg_recv (socket): NULL;
    zpoller_destroy (&poller);
    return msg;
}

void
tako_hub_test (bool verbose)
{
    (void) verbose;
    //  Bind on free ports; the hub tells us which.
    tako_hub_args_t args = { "tcp://127.0.0.1:*", "@tcp://127.0.0.1:*", NULL, NULL };
    zactor_t *hub = zactor_new (tako_hub_actor, &args);
    assert (hub);
    char *publish, *subscribe;
    assert (tako_hub_endpoints (hub, &publish, &subscribe) == 0);

    //  A subscriber following one job, which also wants the welcome.
    zsock_t *subscriber = zsock_new (ZMQ_SUB);
    zsock_set_subscribe (subscriber, TAKO_HUB_WELCOME);
    zsock_set_subscribe (subscriber, "job.42.");
    assert (zsock_connect (subscriber, "%s", subscribe) == 0);
    zmsg_t *welcome = test_recv (subscriber);
    assert (welcome && zmsg_size (welcome) == 1);
    char *text = zmsg_popstr (welcome);
    assert (streq (text, TAKO_HUB_WELCOME));
    free (text);
    zmsg_destroy (&welcome);

    //  The publisher's subscriptions arrive asynchronously, so publish
    //  until the first event gets through; job 421 must never arrive.
    zsock_t *publisher = zsock_new (ZMQ_PUB);
    assert (zsock_connect (publisher, "%s", publish) == 0);
    zpoller_t *poller = zpoller_new (subscriber, NULL);
    int64_t deadline = zclock_mono () + HUB_TEST_TIMEOUT_MS;
    zmsg_t *event = NULL;
    while (!event && zclock_mono () < deadline) {
        zstr_sendx (publisher, "job.421.", "other", NULL);
        zstr_sendx (publisher, "job.42.", "mine", NULL);
        if (zpoller_wait (poller, 20))
            event = zmsg_recv (subscriber);
    }
    zpoller_destroy (&poller);
    assert (event && zmsg_size (event) == 2);
    char *topic = zmsg_popstr (event);
    char *body = zmsg_popstr (event);
    assert (streq (topic, "job.42.") && streq (body, "mine"));
    free (topic);
    free (body);
    zmsg_destroy (&event);

    tako_hub_stats_t stats;
    assert (tako_hub_stats (hub, &stats) == 0);
    assert (stats.events >= 1 && stats.subscriptions >= 2);

    zsock_destroy (&publisher);
    zsock_destroy (&subscriber);
    zstr_free (&publish);
    zstr_free (&subscribe);
    zactor_destroy (&hub);

    //  A hub that cannot bind says so instead of hanging its owner.
    //  (Quiet, so the expected error line does not clutter the run.)
    tako_log_set_level (TAKO_LOG_CRITICAL);
    tako_hub_args_t bad = { "bogus://nowhere", "tcp://127.0.0.1:*", NULL, NULL };
    hub = zactor_new (tako_hub_actor, &bad);
    assert (tako_hub_endpoints (hub, &publish, &subscribe) == -1);
    assert (publish == NULL && subscribe == NULL);
    zactor_destroy (&hub);
    tako_log_set_level (TAKO_LOG_INFO);
}
