/*  The service broker with real sockets on 127.0.0.1: routing, fairness,
    dead peers, broker restarts and garbage. Workers are tako_peer actors
    driven by a poller, as real actors are; beats are 100 ms so each test
    finishes in about a second.                                            */

#include <criterion/criterion.h>
#include <assert.h>
#include <stdarg.h>
#include <string.h>
#include "brokers/tako_broker.h"
#include "tako_log.h"
#include "tako_peer.h"
#include "tako_proto.h"

#define BEAT_MS          100
#define LIVENESS         5
#define WAIT_MS          5000       //  every wait in these tests is bounded by this
#define WORKERS          3
#define REQUESTS         30

static const tako_heartbeat_t beat = { BEAT_MS, LIVENESS };

//  ---------------------------------------------------------------------
//  An echo worker: answers every QUERY with REPLY {request_id, code 200}.
//  Pipe: "$TERM"; "INSTANCE" -> its instance id; "REGISTRATIONS" -> "8".

static void
echo_worker (zsock_t *pipe, void *args)
{
    tako_peer_t *peer = tako_peer_new ((const char *) args, "echo", &beat);
    zsock_signal (pipe, 0);
    assert (peer);                  //  not cr_assert: this is not the test's thread
    zpoller_t *poller = zpoller_new (pipe, tako_peer_socket (peer), NULL);
    bool running = true;
    while (running) {
        void *which = zpoller_wait (poller, tako_peer_tick_due (peer));
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            if (!command || streq (command, "$TERM"))
                running = false;
            else
            if (streq (command, "INSTANCE"))
                zstr_send (pipe, tako_peer_instance (peer));
            else
            if (streq (command, "REGISTRATIONS"))
                zsock_send (pipe, "8", tako_peer_registrations (peer));
            zstr_free (&command);
        }
        else
        if (which) {
            tako_msg_t *request = tako_peer_handle_input (peer);
            if (request && streq (tako_msg_command (request), "QUERY")) {
                tako_msg_t *reply = tako_msg_new ("REPLY");
                tako_msg_set_address (reply, tako_msg_address (request));
                tako_msg_set_str (reply, "request_id", tako_msg_str (request, "request_id"));
                tako_msg_set_int (reply, "code", 200);
                tako_peer_send (peer, &reply);
            }
            tako_msg_destroy (&request);
        }
        else
        if (zpoller_terminated (poller))
            running = false;
        if (running && tako_peer_tick (peer) == 1) {
            //  Reconnected: the socket is new, so is the poller.
            zpoller_destroy (&poller);
            poller = zpoller_new (pipe, tako_peer_socket (peer), NULL);
        }
    }
    zpoller_destroy (&poller);
    tako_peer_destroy (&peer);
}

static char *
worker_instance (zactor_t *worker)
{
    zstr_send (worker, "INSTANCE");
    return zstr_recv (worker);
}

//  ---------------------------------------------------------------------
//  Helpers

static zactor_t *
broker_start (const char *endpoint, char **bound)
{
    tako_broker_args_t args = { endpoint, BEAT_MS, LIVENESS, NULL };
    zactor_t *broker = zactor_new (tako_broker_actor, &args);
    cr_assert_not_null (broker);
    *bound = tako_broker_endpoint (broker);
    cr_assert_not_null (*bound, "broker did not bind %s", endpoint);
    return broker;
}

static tako_broker_stats_t
broker_stats (zactor_t *broker)
{
    tako_broker_stats_t stats;
    cr_assert_eq (tako_broker_stats (broker, &stats), 0);
    return stats;
}

//  Poll until the broker counts `peers` peers; the client (if any) is
//  driven meanwhile so it keeps beating and can re-register.
static void
wait_for_peers (zactor_t *broker, tako_peer_t *client, uint64_t peers)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (broker_stats (broker).peers != peers && zclock_mono () < deadline) {
        if (client)
            cr_assert_null (tako_peer_recv (client, 10));
        else
            zclock_sleep (10);
    }
    cr_assert_eq (broker_stats (broker).peers, peers, "expected %lu peers, broker has %lu",
                  (unsigned long) peers, (unsigned long) broker_stats (broker).peers);
}

static void
send_query (tako_peer_t *client, const char *address, const char *request_id)
{
    tako_msg_t *query = tako_msg_new ("QUERY");
    cr_assert_eq (tako_msg_set_address (query, address), 0);
    tako_msg_set_str (query, "request_id", request_id);
    tako_msg_set_str (query, "query", "ping");
    cr_assert_eq (tako_peer_send (client, &query), 0);
}

//  Send `count` queries to `address` and count the REPLYs per replier.
//  Every query must be answered.
static zhashx_t *
query_round (tako_peer_t *client, const char *address, int count)
{
    for (int index = 0; index < count; index++) {
        char request_id [32];
        snprintf (request_id, sizeof request_id, "r-%d", index);
        send_query (client, address, request_id);
    }
    zhashx_t *counts = zhashx_new ();
    zhashx_set_destructor (counts, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_duplicator (counts, (zhashx_duplicator_fn *) strdup);
    for (int index = 0; index < count; index++) {
        tako_msg_t *reply = tako_peer_recv (client, WAIT_MS);
        cr_assert_not_null (reply, "reply %d of %d missing", index + 1, count);
        cr_assert_str_eq (tako_msg_command (reply), "REPLY",
                          "got %s (code %ld)", tako_msg_command (reply),
                          (long) tako_msg_int (reply, "code", 0));
        const char *replier = tako_msg_address (reply);
        char *seen = (char *) zhashx_lookup (counts, replier);
        char number [16];
        snprintf (number, sizeof number, "%d", seen? atoi (seen) + 1: 1);
        zhashx_update (counts, replier, number);
        tako_msg_destroy (&reply);
    }
    return counts;
}

static int
count_of (zhashx_t *counts, const char *instance)
{
    const char *seen = (const char *) zhashx_lookup (counts, instance);
    return seen? atoi (seen): 0;
}

typedef struct {
    zactor_t *broker;
    char *endpoint;
    zactor_t *workers [WORKERS];
    char *instances [WORKERS];
    tako_peer_t *client;
} cluster_t;

static void
cluster_start (cluster_t *cluster)
{
    memset (cluster, 0, sizeof *cluster);
    cluster->broker = broker_start ("tcp://127.0.0.1:*", &cluster->endpoint);
    for (int index = 0; index < WORKERS; index++) {
        cluster->workers [index] = zactor_new (echo_worker, cluster->endpoint);
        cluster->instances [index] = worker_instance (cluster->workers [index]);
    }
    cluster->client = tako_peer_new_client (cluster->endpoint, "test", &beat);
    cr_assert_not_null (cluster->client);
    wait_for_peers (cluster->broker, cluster->client, WORKERS + 1);
}

static void
cluster_stop (cluster_t *cluster)
{
    tako_peer_destroy (&cluster->client);
    for (int index = 0; index < WORKERS; index++) {
        zactor_destroy (&cluster->workers [index]);
        zstr_free (&cluster->instances [index]);
    }
    zactor_destroy (&cluster->broker);
    zstr_free (&cluster->endpoint);
}

//  A bare DEALER that registers "echo" and then does nothing at all.
static zsock_t *
silent_worker (const char *endpoint, const char *instance)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_identity (dealer, instance);
    zsock_set_linger (dealer, 0);
    cr_assert_eq (zsock_connect (dealer, "%s", endpoint), 0);
    tako_msg_t *hello = tako_msg_new ("REGISTER");
    const char *services [] = { "echo" };
    tako_msg_set_str (hello, "instance", instance);
    tako_msg_set_strlist (hello, "services", services, 1);
    cr_assert_eq (tako_msg_send (&hello, dealer), 0);
    return dealer;
}

//  ---------------------------------------------------------------------
//  Tests

Test (broker, routes_by_service_and_by_instance)
{
    cluster_t cluster;
    cluster_start (&cluster);
    cr_assert_eq (broker_stats (cluster.broker).services, 1);

    //  By instance id: always that instance, and the reply names it.
    zhashx_t *counts = query_round (cluster.client, cluster.instances [1], 5);
    cr_assert_eq (count_of (counts, cluster.instances [1]), 5);
    zhashx_destroy (&counts);

    //  By service: someone answers.
    counts = query_round (cluster.client, "echo", 1);
    cr_assert_eq (zhashx_size (counts), 1);
    zhashx_destroy (&counts);
    cluster_stop (&cluster);
}

Test (broker, spreads_requests_evenly_lru)
{
    cluster_t cluster;
    cluster_start (&cluster);
    zhashx_t *counts = query_round (cluster.client, "echo", REQUESTS);
    for (int index = 0; index < WORKERS; index++)
        cr_assert_eq (count_of (counts, cluster.instances [index]), REQUESTS / WORKERS,
                      "worker %d served %d", index, count_of (counts, cluster.instances [index]));
    zhashx_destroy (&counts);
    cluster_stop (&cluster);
}

Test (broker, no_live_instance_answers_503)
{
    cluster_t cluster;
    cluster_start (&cluster);
    const char *addresses [] = { "nobody", "echo.0000dead" };
    for (size_t index = 0; index < 2; index++) {
        send_query (cluster.client, addresses [index], "r-503");
        tako_msg_t *error = tako_peer_recv (cluster.client, WAIT_MS);
        cr_assert_not_null (error);
        cr_assert_str_eq (tako_msg_command (error), "ERROR");
        cr_assert_str_eq (tako_msg_address (error), "");
        cr_assert_eq (tako_msg_int (error, "code", 0), TAKO_BROKER_CODE_UNAVAILABLE);
        cr_assert_str_eq (tako_msg_str (error, "request_id"), "r-503");
        cr_assert_str_eq (tako_msg_str (error, "in_reply_to"), "QUERY");
        cr_assert_not_null (strstr (tako_msg_str (error, "reason"), addresses [index]));
        tako_msg_destroy (&error);
    }
    //  An ERROR that cannot be delivered is dropped, never answered: the
    //  next thing the client hears is the 503 for its next query.
    tako_msg_t *error = tako_msg_new ("ERROR");
    tako_msg_set_address (error, "nobody");
    tako_msg_set_int (error, "code", 500);
    tako_msg_set_str (error, "reason", "bounce me");
    cr_assert_eq (tako_peer_send (cluster.client, &error), 0);
    send_query (cluster.client, "nobody", "r-after");
    error = tako_peer_recv (cluster.client, WAIT_MS);
    cr_assert_not_null (error);
    cr_assert_str_eq (tako_msg_str (error, "request_id"), "r-after");
    tako_msg_destroy (&error);
    cluster_stop (&cluster);
}

Test (broker, silent_peer_expires_after_missed_beats)
{
    cluster_t cluster;
    cluster_start (&cluster);
    zsock_t *silent = silent_worker (cluster.endpoint, "echo.silent");
    wait_for_peers (cluster.broker, cluster.client, WORKERS + 2);
    int64_t registered_at = zclock_mono ();

    //  It never beats: after `liveness` intervals it is gone, not before.
    wait_for_peers (cluster.broker, cluster.client, WORKERS + 1);
    int64_t lived = zclock_mono () - registered_at;
    cr_assert_geq (lived, (LIVENESS - 1) * BEAT_MS, "expired after only %ld ms", (long) lived);

    //  Its share of the traffic now goes to the live workers.
    zhashx_t *counts = query_round (cluster.client, "echo", REQUESTS);
    cr_assert_eq (count_of (counts, "echo.silent"), 0);
    for (int index = 0; index < WORKERS; index++)
        cr_assert_eq (count_of (counts, cluster.instances [index]), REQUESTS / WORKERS);
    zhashx_destroy (&counts);
    zsock_destroy (&silent);
    cluster_stop (&cluster);
}

Test (broker, killed_worker_is_dropped_and_traffic_moves)
{
    cluster_t cluster;
    cluster_start (&cluster);
    //  A fourth worker dies without UNREGISTER: its socket just closes.
    zsock_t *doomed = silent_worker (cluster.endpoint, "echo.doomed");
    wait_for_peers (cluster.broker, cluster.client, WORKERS + 2);
    zsock_destroy (&doomed);
    wait_for_peers (cluster.broker, cluster.client, WORKERS + 1);

    zhashx_t *counts = query_round (cluster.client, "echo", REQUESTS);
    cr_assert_eq (count_of (counts, "echo.doomed"), 0);
    for (int index = 0; index < WORKERS; index++)
        cr_assert_eq (count_of (counts, cluster.instances [index]), REQUESTS / WORKERS);
    zhashx_destroy (&counts);
    cluster_stop (&cluster);
}

Test (broker, restarted_broker_gets_peers_back)
{
    cluster_t cluster;
    cluster_start (&cluster);
    zhashx_t *counts = query_round (cluster.client, "echo", WORKERS);
    zhashx_destroy (&counts);

    //  Same endpoint, fresh broker: it knows nobody. libzmq closes the
    //  old listener in its I/O thread, a moment after the actor is gone,
    //  so the new bind is retried until it succeeds.
    zactor_destroy (&cluster.broker);
    char *endpoint = NULL;
    tako_broker_args_t args = { cluster.endpoint, BEAT_MS, LIVENESS, NULL };
    int64_t deadline = zclock_mono () + WAIT_MS;
    tako_log_set_level (TAKO_LOG_CRITICAL);
    while (!endpoint && zclock_mono () < deadline) {
        zactor_destroy (&cluster.broker);
        cluster.broker = zactor_new (tako_broker_actor, &args);
        endpoint = tako_broker_endpoint (cluster.broker);
    }
    tako_log_set_level (TAKO_LOG_INFO);
    cr_assert_not_null (endpoint);
    cr_assert_str_eq (endpoint, cluster.endpoint);
    zstr_free (&endpoint);
    cr_assert_eq (broker_stats (cluster.broker).peers, 0);

    //  Everyone registers again on their own, and traffic resumes.
    wait_for_peers (cluster.broker, cluster.client, WORKERS + 1);
    cr_assert_geq (tako_peer_registrations (cluster.client), 2);
    zsock_send (cluster.workers [0], "s", "REGISTRATIONS");
    uint64_t registrations = 0;
    zsock_recv (cluster.workers [0], "8", &registrations);
    cr_assert_geq (registrations, 2);
    counts = query_round (cluster.client, "echo", REQUESTS);
    for (int index = 0; index < WORKERS; index++)
        cr_assert_eq (count_of (counts, cluster.instances [index]), REQUESTS / WORKERS);
    zhashx_destroy (&counts);
    cluster_stop (&cluster);
}

//  Raw frames from a bare DEALER.
static void
send_frames (zsock_t *dealer, int count, ...)
{
    va_list args;
    va_start (args, count);
    zmsg_t *msg = zmsg_new ();
    for (int index = 0; index < count; index++) {
        const char *data = va_arg (args, const char *);
        size_t size = va_arg (args, size_t);
        zmsg_addmem (msg, data, size);
    }
    va_end (args);
    cr_assert_eq (zmsg_send (&msg, dealer), 0);
}

Test (broker, drops_garbage_and_keeps_routing)
{
    cluster_t cluster;
    cluster_start (&cluster);
    zsock_t *junk = zsock_new (ZMQ_DEALER);
    zsock_set_identity (junk, "junk.1");
    zsock_set_linger (junk, 0);
    cr_assert_eq (zsock_connect (junk, "%s", cluster.endpoint), 0);

    static const char body [] = "\x80";                     //  empty msgpack map
    static const char garbage [] = "\xc1\xc1\xff\x00";      //  not msgpack
    static const char lying [] = "\xdf\xff\xff\xff\xff";    //  map claiming 4G entries
    send_frames (junk, 3, "TAKO/1", (size_t) 6, "", (size_t) 0, "HEARTBEAT", (size_t) 9);
    send_frames (junk, 5, "TAKO/1", (size_t) 6, "", (size_t) 0, "HEARTBEAT", (size_t) 9,
                 body, (size_t) 1, body, (size_t) 1);
    send_frames (junk, 4, "TAKO/9", (size_t) 6, "", (size_t) 0, "HEARTBEAT", (size_t) 9, body, (size_t) 1);
    send_frames (junk, 4, "TAKO/1", (size_t) 6, "echo", (size_t) 4, "QUERY", (size_t) 5, garbage, sizeof garbage - 1);
    send_frames (junk, 4, "TAKO/1", (size_t) 6, "echo", (size_t) 4, "QUERY", (size_t) 5, lying, sizeof lying - 1);
    send_frames (junk, 4, "TAKO/1", (size_t) 6, "", (size_t) 0, "NO_SUCH", (size_t) 7, body, (size_t) 1);
    send_frames (junk, 1, "", (size_t) 0);
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (broker_stats (cluster.broker).dropped < 7 && zclock_mono () < deadline)
        cr_assert_null (tako_peer_recv (cluster.client, 10));
    cr_assert_geq (broker_stats (cluster.broker).dropped, 7);

    //  Oversize: libzmq refuses the frame and drops that connection.
    size_t huge_size = TAKO_PROTO_SOCKET_MAXMSGSIZE + 1;
    char *huge = (char *) calloc (1, huge_size);
    send_frames (junk, 4, "TAKO/1", (size_t) 6, "echo", (size_t) 4, "QUERY", (size_t) 5, huge, huge_size);
    free (huge);

    //  Nothing came back to the junk sender, nobody crashed, and the
    //  broker still routes for everyone else.
    //  (The client is driven meanwhile, or the broker would rightly
    //  forget it.)
    deadline = zclock_mono () + 2 * BEAT_MS;
    while (zclock_mono () < deadline) {
        cr_assert_null (tako_peer_recv (cluster.client, 10));
        cr_assert_eq (zsock_events (junk) & ZMQ_POLLIN, 0, "the broker answered garbage");
    }
    zhashx_t *counts = query_round (cluster.client, "echo", REQUESTS);
    for (int index = 0; index < WORKERS; index++)
        cr_assert_eq (count_of (counts, cluster.instances [index]), REQUESTS / WORKERS);
    zhashx_destroy (&counts);
    cr_assert_eq (broker_stats (cluster.broker).peers, WORKERS + 1);
    zsock_destroy (&junk);
    cluster_stop (&cluster);
}

Test (broker, register_rejects_bad_instance)
{
    cluster_t cluster;
    cluster_start (&cluster);
    zsock_t *liar = zsock_new (ZMQ_DEALER);
    zsock_set_identity (liar, "echo.liar");
    zsock_set_rcvtimeo (liar, WAIT_MS);
    zsock_set_linger (liar, 0);
    cr_assert_eq (zsock_connect (liar, "%s", cluster.endpoint), 0);
    tako_msg_t *hello = tako_msg_new ("REGISTER");
    tako_msg_set_str (hello, "instance", "echo.someone-else");
    tako_msg_set_strlist (hello, "services", NULL, 0);
    cr_assert_eq (tako_msg_send (&hello, liar), 0);
    char *error_text = NULL;
    tako_msg_t *error = tako_msg_recv (liar, &error_text);
    cr_assert_not_null (error);
    cr_assert_str_eq (tako_msg_command (error), "ERROR");
    cr_assert_eq (tako_msg_int (error, "code", 0), TAKO_BROKER_CODE_BAD_MESSAGE);
    tako_msg_destroy (&error);
    cr_assert_eq (broker_stats (cluster.broker).peers, WORKERS + 1);
    zsock_destroy (&liar);
    cluster_stop (&cluster);
}
