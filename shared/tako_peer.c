/*  tako_peer — DEALER connection to the service broker. See tako_peer.h.  */

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include "tako_peer.h"
#include "tako_log.h"
#include "brokers/tako_broker.h"

#define PEER_COMPONENT "peer"

//  Random bytes in an instance suffix (printed as twice as many hex digits).
#define PEER_SUFFIX_BYTES 8

//  Outgoing messages queued while the broker is slow or away; beyond it
//  tako_peer_send fails instead of blocking the caller.
#define PEER_HIGH_WATER_MARK 10000

//  How long destroy waits for UNREGISTER (and anything queued) to leave.
#define PEER_LINGER_MS 100

//  How long the self-test waits for anything before failing.
#define PEER_TEST_TIMEOUT_MS 5000

struct _tako_peer_t {
    char *endpoint;                 //  where the broker is (connect)
    char *instance;                 //  NAME.<hex>, also the routing id
    char *service;                  //  offered service, NULL for a client
    int interval_ms;
    int liveness;
    zsock_t *dealer;
    int64_t broker_expires_at;      //  reconnect if nothing heard by then
    int64_t heartbeat_at;           //  send HEARTBEAT if nothing sent by then
    bool registered;                //  broker heard from since our REGISTER
    uint64_t registrations;
};

//  ---------------------------------------------------------------------
//  Helpers

static char *
instance_id_new (const char *name)
{
    uint8_t random [PEER_SUFFIX_BYTES];
    if (getrandom (random, sizeof random, 0) != (ssize_t) sizeof random)
        return NULL;
    char suffix [2 * PEER_SUFFIX_BYTES + 1];
    for (size_t index = 0; index < sizeof random; index++)
        snprintf (suffix + 2 * index, 3, "%02x", random [index]);
    return zsys_sprintf ("%s.%s", name, suffix);
}

static void
peer_broker_heard (tako_peer_t *self)
{
    self->broker_expires_at = zclock_mono () + (int64_t) self->interval_ms * self->liveness;
}

static void
peer_sent (tako_peer_t *self)
{
    self->heartbeat_at = zclock_mono () + self->interval_ms;
}

static int
peer_send_raw (tako_peer_t *self, tako_msg_t **msg_p)
{
    if (!self->dealer) {
        tako_msg_destroy (msg_p);
        return -1;
    }
    if (tako_msg_send (msg_p, self->dealer) == -1)
        return -1;
    peer_sent (self);
    return 0;
}

static int
peer_send_command (tako_peer_t *self, const char *command)
{
    tako_msg_t *msg = tako_msg_new (command);
    assert (msg);
    return peer_send_raw (self, &msg);
}

static int
peer_register (tako_peer_t *self)
{
    tako_msg_t *msg = tako_msg_new ("REGISTER");
    assert (msg);
    tako_msg_set_str (msg, "instance", self->instance);
    const char *services [] = { self->service };
    tako_msg_set_strlist (msg, "services", services, self->service? 1: 0);
    self->registered = false;
    self->registrations++;
    return peer_send_raw (self, &msg);
}

//  A new DEALER carrying our instance id, connected. Any previous socket
//  and what it still had queued is thrown away: after a broker restart
//  those messages would only earn "register first".
static int
peer_connect (tako_peer_t *self)
{
    zsock_destroy (&self->dealer);
    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_identity (self->dealer, self->instance);
    zsock_set_maxmsgsize (self->dealer, TAKO_PROTO_SOCKET_MAXMSGSIZE);
    zsock_set_sndhwm (self->dealer, PEER_HIGH_WATER_MARK);
    zsock_set_rcvhwm (self->dealer, PEER_HIGH_WATER_MARK);
    zsock_set_sndtimeo (self->dealer, 0);
    zsock_set_linger (self->dealer, 0);
    const char *endpoint = *self->endpoint == '>'? self->endpoint + 1: self->endpoint;
    if (zsock_connect (self->dealer, "%s", endpoint) == -1) {
        zsock_destroy (&self->dealer);
        return -1;
    }
    peer_broker_heard (self);       //  give the new connection a full grace period
    return peer_register (self);
}

static tako_peer_t *
peer_new (const char *endpoint, const char *name, const char *service,
          const tako_heartbeat_t *heartbeat)
{
    if (!endpoint || !name || !tako_proto_is_service_name (name))
        return NULL;
    tako_peer_t *self = (tako_peer_t *) zmalloc (sizeof (tako_peer_t));
    assert (self);
    self->endpoint = strdup (endpoint);
    self->instance = instance_id_new (name);
    self->service = service? strdup (service): NULL;
    self->interval_ms = heartbeat && heartbeat->interval_ms > 0?
                        heartbeat->interval_ms: TAKO_PEER_DEFAULT_INTERVAL_MS;
    self->liveness = heartbeat && heartbeat->liveness > 0?
                     heartbeat->liveness: TAKO_PEER_DEFAULT_LIVENESS;
    if (!self->instance || peer_connect (self) == -1)
        tako_peer_destroy (&self);
    return self;
}

//  ---------------------------------------------------------------------
//  Public API

tako_peer_t *
tako_peer_new (const char *endpoint, const char *service, const tako_heartbeat_t *heartbeat)
{
    return peer_new (endpoint, service, service, heartbeat);
}

tako_peer_t *
tako_peer_new_client (const char *endpoint, const char *name, const tako_heartbeat_t *heartbeat)
{
    return peer_new (endpoint, name, NULL, heartbeat);
}

void
tako_peer_destroy (tako_peer_t **self_p)
{
    assert (self_p);
    tako_peer_t *self = *self_p;
    if (self) {
        if (self->dealer) {
            //  Tell the broker at once rather than let it wait out our
            //  heartbeats; give the message a moment to leave.
            zsock_set_linger (self->dealer, PEER_LINGER_MS);
            peer_send_command (self, "UNREGISTER");
            zsock_destroy (&self->dealer);
        }
        free (self->endpoint);
        free (self->instance);
        free (self->service);
        free (self);
        *self_p = NULL;
    }
}

const char *
tako_peer_instance (tako_peer_t *self)
{
    assert (self);
    return self->instance;
}

int
tako_peer_send (tako_peer_t *self, tako_msg_t **msg_p)
{
    assert (self && msg_p);
    return peer_send_raw (self, msg_p);
}

zsock_t *
tako_peer_socket (tako_peer_t *self)
{
    assert (self);
    return self->dealer;
}

//  The broker speaks with an empty address; everyone else is named.
static bool
peer_msg_from_broker (tako_msg_t *msg)
{
    return *tako_msg_address (msg) == '\0';
}

tako_msg_t *
tako_peer_handle_input (tako_peer_t *self)
{
    assert (self);
    char *error = NULL;
    tako_msg_t *msg = tako_msg_recv (self->dealer, &error);
    if (!msg) {
        if (error)
            tako_debug (PEER_COMPONENT, "%s dropped a malformed message: %s", self->instance, error);
        free (error);
        return NULL;
    }
    //  Whatever arrives proves the broker is there: it routed it.
    peer_broker_heard (self);
    self->registered = true;
    if (!peer_msg_from_broker (msg))
        return msg;
    const char *command = tako_msg_command (msg);
    if (streq (command, "HEARTBEAT")) {
        tako_msg_destroy (&msg);
        return NULL;
    }
    if (streq (command, "ERROR")
    &&  tako_msg_int (msg, "code", 0) == TAKO_BROKER_CODE_REGISTER_FIRST) {
        //  The broker restarted or gave up on us: register again. The
        //  refused message, if it was a request, is the caller's to retry.
        tako_debug (PEER_COMPONENT, "%s: broker forgot us, registering again", self->instance);
        peer_register (self);
        if (!tako_msg_str (msg, "request_id"))
            tako_msg_destroy (&msg);
    }
    return msg;
}

int
tako_peer_tick_due (tako_peer_t *self)
{
    assert (self);
    int64_t now = zclock_mono ();
    int64_t next = self->heartbeat_at < self->broker_expires_at?
                   self->heartbeat_at: self->broker_expires_at;
    return next > now? (int) (next - now): 0;
}

int
tako_peer_tick (tako_peer_t *self)
{
    assert (self);
    int64_t now = zclock_mono ();
    if (now >= self->broker_expires_at) {
        tako_debug (PEER_COMPONENT, "%s: broker silent, reconnecting", self->instance);
        peer_connect (self);
        return 1;
    }
    if (now >= self->heartbeat_at && peer_send_command (self, "HEARTBEAT") == -1)
        peer_sent (self);           //  queue full: try again next interval, not in a loop
    return 0;
}

tako_msg_t *
tako_peer_recv (tako_peer_t *self, int timeout_ms)
{
    assert (self);
    int64_t deadline = timeout_ms < 0? INT64_MAX: zclock_mono () + timeout_ms;
    while (!zsys_interrupted) {
        int64_t now = zclock_mono ();
        if (now > deadline)
            break;
        int64_t wait = tako_peer_tick_due (self);
        if (deadline - now < wait)
            wait = deadline - now;
        zmq_pollitem_t item = { zsock_resolve (self->dealer), 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, (long) wait);
        if (rc == -1 && errno != EINTR)
            break;
        if (rc > 0) {
            tako_msg_t *msg = tako_peer_handle_input (self);
            if (msg)
                return msg;
        }
        tako_peer_tick (self);
    }
    return NULL;
}

bool
tako_peer_registered (tako_peer_t *self)
{
    assert (self);
    return self->registered;
}

uint64_t
tako_peer_registrations (tako_peer_t *self)
{
    assert (self);
    return self->registrations;
}

//  ---------------------------------------------------------------------
//  Self-test: a worker and a client talk through a real broker.

void
tako_peer_test (bool verbose)
{
    (void) verbose;
    tako_broker_args_t args = { "tcp://127.0.0.1:*", 100, 3, NULL };
    zactor_t *broker = zactor_new (tako_broker_actor, &args);
    char *endpoint = tako_broker_endpoint (broker);
    assert (endpoint);

    tako_heartbeat_t beat = { 100, 3 };
    tako_peer_t *worker = tako_peer_new (endpoint, "echo", &beat);
    tako_peer_t *client = tako_peer_new_client (endpoint, "exec", &beat);
    assert (worker && client);
    assert (strncmp (tako_peer_instance (worker), "echo.", 5) == 0);
    assert (tako_proto_is_instance_id (tako_peer_instance (client)));

    //  Until the worker is registered, sends to "echo" may earn a 503:
    //  wait for the broker's answering beat.
    int64_t deadline = zclock_mono () + PEER_TEST_TIMEOUT_MS;
    while (!tako_peer_registered (worker) && zclock_mono () < deadline)
        assert (tako_peer_recv (worker, 10) == NULL);
    assert (tako_peer_registered (worker));

    //  The client asks the service; the worker sees who asked and answers.
    tako_msg_t *query = tako_msg_new ("QUERY");
    tako_msg_set_address (query, "echo");
    tako_msg_set_str (query, "request_id", "r-1");
    tako_msg_set_str (query, "query", "ping");
    assert (tako_peer_send (client, &query) == 0);
    assert (query == NULL);

    tako_msg_t *request = tako_peer_recv (worker, PEER_TEST_TIMEOUT_MS);
    assert (request && streq (tako_msg_command (request), "QUERY"));
    assert (streq (tako_msg_address (request), tako_peer_instance (client)));
    tako_msg_t *reply = tako_msg_new ("REPLY");
    tako_msg_set_address (reply, tako_msg_address (request));
    tako_msg_set_str (reply, "request_id", tako_msg_str (request, "request_id"));
    tako_msg_set_int (reply, "code", 200);
    assert (tako_peer_send (worker, &reply) == 0);
    tako_msg_destroy (&request);

    reply = tako_peer_recv (client, PEER_TEST_TIMEOUT_MS);
    assert (reply && streq (tako_msg_command (reply), "REPLY"));
    assert (streq (tako_msg_str (reply, "request_id"), "r-1"));
    assert (tako_msg_int (reply, "code", 0) == 200);
    tako_msg_destroy (&reply);

    //  Nothing more is coming: recv times out with NULL.
    assert (tako_peer_recv (client, 50) == NULL);

    tako_peer_destroy (&worker);
    tako_peer_destroy (&worker);
    tako_peer_destroy (&client);
    assert (tako_peer_new (endpoint, "Bad Name", &beat) == NULL);
    zstr_free (&endpoint);
    zactor_destroy (&broker);
}
