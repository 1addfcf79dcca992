/*  tako_broker — the service broker. See tako_broker.h.  */

#include <assert.h>
#include <errno.h>
#include <string.h>
#include "tako_broker.h"
#include "tako_log.h"
#include "tako_proto.h"

#define BROKER_COMPONENT "broker"

//  Frames of a message as the ROUTER receives it: routing id + protocol.
#define BROKER_FRAME_COUNT (1 + TAKO_PROTO_FRAME_COUNT)
#define FRAME_ROUTING_ID 0
#define FRAME_SIGNATURE  1
#define FRAME_ADDRESS    2
#define FRAME_COMMAND    3
#define FRAME_BODY       4

//  Per-peer queue depth both ways. Beyond it the broker refuses to queue
//  (the sender gets 503) rather than grow without bound or block.
#define BROKER_HIGH_WATER_MARK 10000

//  Most services one instance may offer.
#define BROKER_SERVICES_PER_PEER_MAX 16

//  Error replies are short and fixed-size.
#define BROKER_REASON_MAX 256

//  ---------------------------------------------------------------------
//  Types

typedef struct {
    char *instance;                 //  routing id == instance id
    zlistx_t *services;             //  service_t * it offers (not owned)
    int64_t expires_at;             //  dead if nothing heard by then
    int64_t heartbeat_at;           //  send HEARTBEAT if nothing sent by then
} peer_t;

typedef struct {
    char *name;
    zlistx_t *instances;            //  peer_t *, next to serve first (not owned)
} service_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *router;
    char *endpoint;                 //  as bound, with the real port
    zpoller_t *poller;
    zhashx_t *peers;                //  instance id -> peer_t (owned)
    zhashx_t *services;             //  service name -> service_t (owned)
    int interval_ms;
    int liveness;
    int64_t tick_at;                //  next heartbeat/expiry pass
    uint64_t routed;
    uint64_t dropped;
} broker_t;

//  ---------------------------------------------------------------------
//  Routing tables

static void
service_destroy (service_t **self_p)
{
    service_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->instances);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

static void
service_destructor (void **item)
{
    service_destroy ((service_t **) item);
}

static void
peer_destroy (peer_t **self_p)
{
    peer_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->services);
        free (self->instance);
        free (self);
        *self_p = NULL;
    }
}

static void
peer_destructor (void **item)
{
    peer_destroy ((peer_t **) item);
}

//  Lists of borrowed pointers compare by identity.
static int
pointer_compare (const void *a, const void *b)
{
    return a == b? 0: (a < b? -1: 1);
}

static zlistx_t *
pointer_list_new (void)
{
    zlistx_t *list = zlistx_new ();
    assert (list);
    zlistx_set_comparator (list, pointer_compare);
    return list;
}

static service_t *
broker_service_require (broker_t *self, const char *name)
{
    service_t *service = (service_t *) zhashx_lookup (self->services, name);
    if (!service) {
        service = (service_t *) zmalloc (sizeof (service_t));
        assert (service);
        service->name = strdup (name);
        service->instances = pointer_list_new ();
        zhashx_insert (self->services, name, service);
    }
    return service;
}

//  Take a peer out of every service it offered; a service left with no
//  instance disappears, so "no live instance" and "unknown" read the same.
static void
broker_peer_withdraw (broker_t *self, peer_t *peer)
{
    service_t *service = (service_t *) zlistx_first (peer->services);
    while (service) {
        void *handle = zlistx_find (service->instances, peer);
        if (handle)
            zlistx_delete (service->instances, handle);
        if (zlistx_size (service->instances) == 0)
            zhashx_delete (self->services, service->name);
        service = (service_t *) zlistx_next (peer->services);
    }
    zlistx_purge (peer->services);
}

static void
broker_peer_remove (broker_t *self, peer_t *peer, const char *why)
{
    tako_debug (BROKER_COMPONENT, "peer %s leaves: %s", peer->instance, why);
    broker_peer_withdraw (self, peer);
    zhashx_delete (self->peers, peer->instance);
}

static void
broker_peer_offer (broker_t *self, peer_t *peer, const char *name)
{
    service_t *service = broker_service_require (self, name);
    if (zlistx_find (peer->services, service))
        return;                     //  listed twice in one REGISTER
    zlistx_add_end (peer->services, service);
    zlistx_add_end (service->instances, peer);
}

//  The instance to serve next for a service; moves it to the back of the
//  line so the next message goes to another one (LRU fairness).
static peer_t *
service_next_instance (service_t *service)
{
    void *handle = zlistx_first (service->instances)? zlistx_cursor (service->instances): NULL;
    if (!handle)
        return NULL;
    peer_t *peer = (peer_t *) zlistx_handle_item (handle);
    zlistx_move_end (service->instances, handle);
    return peer;
}

static void
broker_peer_heard (broker_t *self, peer_t *peer)
{
    peer->expires_at = zclock_mono () + (int64_t) self->interval_ms * self->liveness;
}

//  ---------------------------------------------------------------------
//  Sending

//  Send frames from a ROUTER, never blocking (the socket has a zero send
//  timeout). The first frame is the routing id: with ROUTER_MANDATORY an
//  unknown or full peer fails right there, so nothing partial goes out.
static int
broker_send_frames (broker_t *self, zframe_t **frames, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        int flags = ZFRAME_REUSE | ZFRAME_DONTWAIT | (index + 1 < count? ZFRAME_MORE: 0);
        if (zframe_send (&frames [index], self->router, flags) == -1) {
            //  After the first frame libzmq accepts the rest of the
            //  message whole; a failure there means we are shutting down.
            return -1;
        }
    }
    return 0;
}

//  Send a message from the broker itself (address "") to a routing id.
static int
broker_send_own (broker_t *self, tako_msg_t **msg_p, zframe_t *routing_id)
{
    if (tako_msg_send_to (msg_p, self->router, routing_id) == -1) {
        int send_errno = errno;
        tako_debug (BROKER_COMPONENT, "cannot send to a peer: %s", zmq_strerror (send_errno));
        errno = send_errno;
        return -1;
    }
    return 0;
}

static int
broker_send_heartbeat (broker_t *self, peer_t *peer)
{
    tako_msg_t *heartbeat = tako_msg_new ("HEARTBEAT");
    assert (heartbeat);
    zframe_t *routing_id = zframe_from (peer->instance);
    int rc = broker_send_own (self, &heartbeat, routing_id);
    int send_errno = errno;
    zframe_destroy (&routing_id);
    peer->heartbeat_at = zclock_mono () + self->interval_ms;
    errno = send_errno;
    return rc;
}

//  Answer the sender of `failed` with ERROR from the broker. Never answers
//  an ERROR: two peers must not bounce errors at each other forever.
static void
broker_send_error (broker_t *self, zframe_t *routing_id, tako_msg_t *failed,
                   int code, const char *reason)
{
    if (failed && streq (tako_msg_command (failed), "ERROR"))
        return;
    tako_msg_t *error = tako_msg_new ("ERROR");
    assert (error);
    tako_msg_set_int (error, "code", code);
    tako_msg_set_str (error, "reason", reason);
    if (failed) {
        tako_msg_set_str (error, "in_reply_to", tako_msg_command (failed));
        if (*tako_msg_address (failed))
            tako_msg_set_str (error, "destination", tako_msg_address (failed));
        const tako_proto_command_t *command = tako_proto_command_find (tako_msg_command (failed));
        if (command && tako_proto_field_find (command, "request_id")
        &&  tako_msg_str (failed, "request_id"))
            tako_msg_set_str (error, "request_id", tako_msg_str (failed, "request_id"));
    }
    if (code == TAKO_BROKER_CODE_UNAVAILABLE)
        tako_msg_set_int (error, "retry_after_ms", self->interval_ms);
    broker_send_own (self, &error, routing_id);
}

//  Forward the received frames to one peer, with the address frame now
//  naming the sender. The body goes out as it came: already checked, no
//  need to encode it again.
static int
broker_forward (broker_t *self, zframe_t **frames, peer_t *sender, peer_t *target)
{
    zframe_t *routing_id = zframe_from (target->instance);
    zframe_t *address = zframe_from (sender->instance);
    zframe_t *outgoing [BROKER_FRAME_COUNT] = {
        routing_id, frames [FRAME_SIGNATURE], address, frames [FRAME_COMMAND], frames [FRAME_BODY]
    };
    int rc = broker_send_frames (self, outgoing, BROKER_FRAME_COUNT);
    int send_errno = errno;
    zframe_destroy (&routing_id);
    zframe_destroy (&address);
    if (rc == 0) {
        self->routed++;
        target->heartbeat_at = zclock_mono () + self->interval_ms;
    }
    errno = send_errno;             //  the caller tells "gone" from "busy"
    return rc;
}

//  ---------------------------------------------------------------------
//  Handling peers' messages

static void
broker_handle_register (broker_t *self, zframe_t *routing_id, const char *sender, tako_msg_t *msg)
{
    const char *instance = tako_msg_str (msg, "instance");
    size_t count = 0;
    const char *const *services = tako_msg_strlist (msg, "services", &count);
    if (!sender || !tako_proto_is_instance_id (sender) || !instance || !streq (instance, sender)) {
        broker_send_error (self, routing_id, msg, TAKO_BROKER_CODE_BAD_MESSAGE,
                           "instance must be SERVICE.SUFFIX and equal the routing id");
        return;
    }
    if (count > BROKER_SERVICES_PER_PEER_MAX) {
        broker_send_error (self, routing_id, msg, TAKO_BROKER_CODE_BAD_MESSAGE, "too many services");
        return;
    }
    for (size_t index = 0; index < count; index++)
        if (!tako_proto_is_service_name (services [index])) {
            broker_send_error (self, routing_id, msg, TAKO_BROKER_CODE_BAD_MESSAGE, "bad service name");
            return;
        }
    peer_t *peer = (peer_t *) zhashx_lookup (self->peers, sender);
    if (peer)
        broker_peer_withdraw (self, peer);      //  re-registration replaces the offer
    else {
        peer = (peer_t *) zmalloc (sizeof (peer_t));
        assert (peer);
        peer->instance = strdup (sender);
        peer->services = pointer_list_new ();
        zhashx_insert (self->peers, sender, peer);
    }
    for (size_t index = 0; index < count; index++)
        broker_peer_offer (self, peer, services [index]);
    broker_peer_heard (self, peer);
    tako_debug (BROKER_COMPONENT, "peer %s registered %zu service(s)", sender, count);
    //  An immediate beat tells the peer it is registered.
    if (broker_send_heartbeat (self, peer) == -1)
        broker_peer_remove (self, peer, "unreachable");
}

//  Messages addressed to the broker itself.
static void
broker_handle_own (broker_t *self, zframe_t *routing_id, peer_t *sender, tako_msg_t *msg)
{
    const char *command = tako_msg_command (msg);
    if (streq (command, "HEARTBEAT"))
        return;                     //  being heard was the point
    if (streq (command, "UNREGISTER"))
        broker_peer_remove (self, sender, "unregistered");
    else {
        self->dropped++;
        broker_send_error (self, routing_id, msg, TAKO_BROKER_CODE_BAD_MESSAGE,
                           "the broker handles only REGISTER, HEARTBEAT, UNREGISTER");
    }
}

//  Deliver to the addressed instance, or to the next live instance of the
//  addressed service. An instance that turns out unreachable is dead: it
//  leaves the tables and the next one is tried.
static void
broker_route (broker_t *self, zframe_t **frames, peer_t *sender, tako_msg_t *msg)
{
    const char *address = tako_msg_address (msg);
    peer_t *target = (peer_t *) zhashx_lookup (self->peers, address);
    if (target) {
        if (broker_forward (self, frames, sender, target) == 0)
            return;
        if (errno == EHOSTUNREACH)
            broker_peer_remove (self, target, "unreachable");
    }
    else {
        service_t *service = (service_t *) zhashx_lookup (self->services, address);
        while (service && (target = service_next_instance (service))) {
            if (broker_forward (self, frames, sender, target) == 0)
                return;
            if (errno != EHOSTUNREACH)
                break;              //  queue full: the others are likely no better
            broker_peer_remove (self, target, "unreachable");
            service = (service_t *) zhashx_lookup (self->services, address);
        }
    }
    self->dropped++;
    char reason [BROKER_REASON_MAX];
    snprintf (reason, sizeof reason, "no live instance of %s", address);
    broker_send_error (self, frames [FRAME_ROUTING_ID], msg, TAKO_BROKER_CODE_UNAVAILABLE, reason);
}

//  Check the frames and decode them; NULL (logged, counted) if malformed.
static tako_msg_t *
broker_decode (broker_t *self, zmsg_t *incoming, zframe_t **frames)
{
    if (zmsg_size (incoming) != BROKER_FRAME_COUNT) {
        tako_debug (BROKER_COMPONENT, "dropped a message of %zu frames", zmsg_size (incoming));
        self->dropped++;
        return NULL;
    }
    size_t index = 0;
    for (zframe_t *frame = zmsg_first (incoming); frame; frame = zmsg_next (incoming))
        frames [index++] = frame;
    char *error = NULL;
    tako_msg_t *msg = tako_msg_decode (
        zframe_data (frames [FRAME_SIGNATURE]), zframe_size (frames [FRAME_SIGNATURE]),
        zframe_data (frames [FRAME_ADDRESS]), zframe_size (frames [FRAME_ADDRESS]),
        zframe_data (frames [FRAME_COMMAND]), zframe_size (frames [FRAME_COMMAND]),
        zframe_data (frames [FRAME_BODY]), zframe_size (frames [FRAME_BODY]), &error);
    if (!msg) {
        tako_debug (BROKER_COMPONENT, "dropped a malformed message: %s", error? error: "?");
        self->dropped++;
    }
    free (error);
    return msg;
}

//  The routing id as a C string if it is printable, else NULL.
static char *
routing_id_string (zframe_t *routing_id)
{
    size_t size = zframe_size (routing_id);
    if (size == 0 || size > TAKO_PROTO_ADDRESS_MAX
    ||  !tako_proto_utf8_valid (zframe_data (routing_id), size)
    ||  memchr (zframe_data (routing_id), '\0', size))
        return NULL;
    return zframe_strdup (routing_id);
}

static void
broker_handle_router (broker_t *self)
{
    zmsg_t *incoming = zmsg_recv (self->router);
    if (!incoming)
        return;
    zframe_t *frames [BROKER_FRAME_COUNT];
    tako_msg_t *msg = broker_decode (self, incoming, frames);
    if (!msg) {
        zmsg_destroy (&incoming);
        return;
    }
    zframe_t *routing_id = frames [FRAME_ROUTING_ID];
    char *sender_id = routing_id_string (routing_id);
    peer_t *sender = sender_id? (peer_t *) zhashx_lookup (self->peers, sender_id): NULL;
    bool for_broker = *tako_msg_address (msg) == '\0';

    if (for_broker && streq (tako_msg_command (msg), "REGISTER"))
        broker_handle_register (self, routing_id, sender_id, msg);
    else
    if (!sender) {
        //  Not an implicit registration: the peer must say what it offers.
        self->dropped++;
        broker_send_error (self, routing_id, msg, TAKO_BROKER_CODE_REGISTER_FIRST, "register first");
    }
    else {
        broker_peer_heard (self, sender);
        if (for_broker)
            broker_handle_own (self, routing_id, sender, msg);
        else
            broker_route (self, frames, sender, msg);
    }
    free (sender_id);
    tako_msg_destroy (&msg);
    zmsg_destroy (&incoming);
}

//  Once per interval: forget peers silent too long, beat to idle ones.
static void
broker_tick (broker_t *self)
{
    int64_t now = zclock_mono ();
    zlistx_t *instances = zhashx_keys (self->peers);
    for (const char *instance = (const char *) zlistx_first (instances); instance;
         instance = (const char *) zlistx_next (instances)) {
        peer_t *peer = (peer_t *) zhashx_lookup (self->peers, instance);
        if (now >= peer->expires_at)
            broker_peer_remove (self, peer, "missed heartbeats");
        else
        if (now >= peer->heartbeat_at && broker_send_heartbeat (self, peer) == -1
        &&  errno == EHOSTUNREACH)
            broker_peer_remove (self, peer, "unreachable");
    }
    zlistx_destroy (&instances);
    self->tick_at = now + self->interval_ms;
}

//  ---------------------------------------------------------------------
//  The actor

static void
broker_destroy (broker_t **self_p)
{
    broker_t *self = *self_p;
    if (self) {
        zpoller_destroy (&self->poller);
        zsock_destroy (&self->router);
        zstr_free (&self->endpoint);
        zhashx_destroy (&self->peers);          //  peers first: they point at services
        zhashx_destroy (&self->services);
        free (self);
        *self_p = NULL;
    }
}

static zsock_t *
broker_router_new (const char *endpoint)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert (router);
    zsock_set_router_mandatory (router, 1);
    zsock_set_router_handover (router, 1);      //  a reconnecting peer takes over its id
    zsock_set_maxmsgsize (router, TAKO_PROTO_SOCKET_MAXMSGSIZE);
    zsock_set_sndhwm (router, BROKER_HIGH_WATER_MARK);
    zsock_set_rcvhwm (router, BROKER_HIGH_WATER_MARK);
    zsock_set_sndtimeo (router, 0);             //  the broker never blocks on one peer
    zsock_set_linger (router, 0);
    if (endpoint && *endpoint == '@')
        endpoint++;
    if (!endpoint || *endpoint == '>' || zsock_bind (router, "%s", endpoint) == -1) {
        tako_error (BROKER_COMPONENT, "cannot bind %s: %s", endpoint? endpoint: "(none)",
                    zmq_strerror (zmq_errno ()));
        zsock_destroy (&router);
    }
    return router;
}

static broker_t *
broker_new (zsock_t *pipe, const tako_broker_args_t *args)
{
    zsock_t *router = broker_router_new (args->endpoint);
    if (!router)
        return NULL;
    broker_t *self = (broker_t *) zmalloc (sizeof (broker_t));
    assert (self);
    self->pipe = pipe;
    self->router = router;
    self->endpoint = zsock_last_endpoint (router);
    if (args->inproc_endpoint && zsock_bind (router, "%s", args->inproc_endpoint) == -1)
        tako_error (BROKER_COMPONENT, "cannot bind %s: %s", args->inproc_endpoint,
                    zmq_strerror (zmq_errno ()));
    self->poller = zpoller_new (pipe, router, NULL);
    self->peers = zhashx_new ();
    self->services = zhashx_new ();
    assert (self->poller && self->peers && self->services);
    zhashx_set_destructor (self->peers, peer_destructor);
    zhashx_set_destructor (self->services, service_destructor);
    self->interval_ms = args->heartbeat_interval_ms > 0?
                        args->heartbeat_interval_ms: TAKO_BROKER_DEFAULT_INTERVAL_MS;
    self->liveness = args->heartbeat_liveness > 0?
                     args->heartbeat_liveness: TAKO_BROKER_DEFAULT_LIVENESS;
    self->tick_at = zclock_mono () + self->interval_ms;
    return self;
}

//  Returns true when the owner asked us to stop.
static bool
broker_handle_pipe (broker_t *self)
{
    char *command = zstr_recv (self->pipe);
    bool terminate = !command || streq (command, "$TERM");
    if (command && streq (command, "ENDPOINT"))
        zstr_send (self->pipe, self->endpoint? self->endpoint: "");
    else
    if (command && streq (command, "STATS"))
        zsock_send (self->pipe, "8888", (uint64_t) zhashx_size (self->peers),
                    (uint64_t) zhashx_size (self->services), self->routed, self->dropped);
    else
    if (!terminate)
        tako_debug (BROKER_COMPONENT, "unknown pipe command '%s'", command);
    zstr_free (&command);
    return terminate;
}

//  A broker that could not bind still answers its pipe, so its owner
//  learns of the failure from ENDPOINT instead of hanging.
static void
broker_serve_failure (zsock_t *pipe)
{
    while (true) {
        char *command = zstr_recv (pipe);
        if (!command || streq (command, "$TERM")) {
            zstr_free (&command);
            return;
        }
        if (streq (command, "ENDPOINT"))
            zstr_send (pipe, "");
        else
        if (streq (command, "STATS"))
            zsock_send (pipe, "8888", (uint64_t) 0, (uint64_t) 0, (uint64_t) 0, (uint64_t) 0);
        zstr_free (&command);
    }
}

void
tako_broker_actor (zsock_t *pipe, void *args)
{
    broker_t *self = broker_new (pipe, (const tako_broker_args_t *) args);
    zsock_signal (pipe, 0);
    if (!self) {
        broker_serve_failure (pipe);
        return;
    }
    tako_debug (BROKER_COMPONENT, "serving on %s", self->endpoint);
    while (true) {
        int64_t wait = self->tick_at - zclock_mono ();
        void *which = zpoller_wait (self->poller, wait > 0? (int) wait: 0);
        if (which == self->pipe) {
            if (broker_handle_pipe (self))
                break;
        }
        else
        if (which == self->router)
            broker_handle_router (self);
        else
        if (zpoller_terminated (self->poller))
            break;
        if (zclock_mono () >= self->tick_at)
            broker_tick (self);
    }
    broker_destroy (&self);
}

char *
tako_broker_endpoint (zactor_t *broker)
{
    assert (broker);
    if (zstr_send (broker, "ENDPOINT") == -1)
        return NULL;
    char *endpoint = zstr_recv (broker);
    if (endpoint && *endpoint == '\0')
        zstr_free (&endpoint);
    return endpoint;
}

int
tako_broker_stats (zactor_t *broker, tako_broker_stats_t *stats)
{
    assert (broker && stats);
    if (zstr_send (broker, "STATS") == -1)
        return -1;
    return zsock_recv (broker, "8888", &stats->peers, &stats->services,
                       &stats->routed, &stats->dropped);
}

//  ---------------------------------------------------------------------
//  Self-test: the broker's contract with bare DEALER sockets. The full
//  behaviour (fairness, expiry, restarts, garbage) is in tests/unit.

#define BROKER_TEST_TIMEOUT_MS 5000

static zsock_t *
test_dealer (const char *endpoint, const char *instance)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zsock_set_identity (dealer, instance);
    zsock_set_rcvtimeo (dealer, BROKER_TEST_TIMEOUT_MS);
    assert (zsock_connect (dealer, "%s", endpoint) == 0);
    return dealer;
}

static tako_msg_t *
test_recv (zsock_t *dealer, const char *command)
{
    char *error = NULL;
    tako_msg_t *msg = tako_msg_recv (dealer, &error);
    assert (msg && !error);
    assert (streq (tako_msg_command (msg), command));
    return msg;
}

static void
test_send (zsock_t *dealer, const char *address, const char *command, const char *request_id)
{
    tako_msg_t *msg = tako_msg_new (command);
    assert (msg);
    assert (tako_msg_set_address (msg, address) == 0);
    if (streq (command, "REGISTER")) {
        const char *services [] = { "echo" };
        tako_msg_set_str (msg, "instance", request_id);
        tako_msg_set_strlist (msg, "services", services, 1);
    }
    else
    if (request_id) {
        tako_msg_set_str (msg, "request_id", request_id);
        tako_msg_set_str (msg, "query", "ping");
    }
    assert (tako_msg_send (&msg, dealer) == 0);
}

void
tako_broker_test (bool verbose)
{
    (void) verbose;
    tako_broker_args_t args = { "tcp://127.0.0.1:*", 1000, 3, NULL };
    zactor_t *broker = zactor_new (tako_broker_actor, &args);
    char *endpoint = tako_broker_endpoint (broker);
    assert (endpoint && strncmp (endpoint, "tcp://127.0.0.1:", 16) == 0);

    //  A worker registers "echo"; the broker beats back at once.
    zsock_t *worker = test_dealer (endpoint, "echo.w1");
    test_send (worker, "", "REGISTER", "echo.w1");
    tako_msg_t *msg = test_recv (worker, "HEARTBEAT");
    tako_msg_destroy (&msg);

    //  A client that has not registered is told to.
    zsock_t *client = test_dealer (endpoint, "exec.c1");
    test_send (client, "echo", "QUERY", "r-0");
    msg = test_recv (client, "ERROR");
    assert (tako_msg_int (msg, "code", 0) == TAKO_BROKER_CODE_REGISTER_FIRST);
    assert (streq (tako_msg_str (msg, "request_id"), "r-0"));
    tako_msg_destroy (&msg);

    //  Registered (with no services), its query reaches the worker,
    //  addressed from the client.
    tako_msg_t *hello = tako_msg_new ("REGISTER");
    tako_msg_set_str (hello, "instance", "exec.c1");
    tako_msg_set_strlist (hello, "services", NULL, 0);
    assert (tako_msg_send (&hello, client) == 0);
    msg = test_recv (client, "HEARTBEAT");
    tako_msg_destroy (&msg);
    test_send (client, "echo", "QUERY", "r-1");
    msg = test_recv (worker, "QUERY");
    assert (streq (tako_msg_address (msg), "exec.c1"));
    assert (streq (tako_msg_str (msg, "request_id"), "r-1"));
    tako_msg_destroy (&msg);

    //  A service nobody offers: ERROR 503 from the broker, echoing the request.
    test_send (client, "nobody", "QUERY", "r-2");
    msg = test_recv (client, "ERROR");
    assert (streq (tako_msg_address (msg), ""));
    assert (tako_msg_int (msg, "code", 0) == TAKO_BROKER_CODE_UNAVAILABLE);
    assert (streq (tako_msg_str (msg, "request_id"), "r-2"));
    assert (streq (tako_msg_str (msg, "destination"), "nobody"));
    tako_msg_destroy (&msg);

    tako_broker_stats_t stats;
    assert (tako_broker_stats (broker, &stats) == 0);
    assert (stats.peers == 2 && stats.services == 1 && stats.routed == 1);

    //  UNREGISTER takes the worker out of the tables.
    test_send (worker, "", "UNREGISTER", NULL);
    int64_t deadline = zclock_mono () + BROKER_TEST_TIMEOUT_MS;
    while (tako_broker_stats (broker, &stats) == 0 && stats.services > 0 && zclock_mono () < deadline)
        zclock_sleep (5);
    assert (stats.peers == 1 && stats.services == 0);

    zsock_destroy (&worker);
    zsock_destroy (&client);
    zstr_free (&endpoint);
    zactor_destroy (&broker);

    //  A broker that cannot bind says so instead of hanging its owner.
    tako_log_set_level (TAKO_LOG_CRITICAL);
    tako_broker_args_t bad = { "bogus://nowhere", 0, 0, NULL };
    broker = zactor_new (tako_broker_actor, &bad);
    assert (tako_broker_endpoint (broker) == NULL);
    zactor_destroy (&broker);
    tako_log_set_level (TAKO_LOG_INFO);
}
