/*  tako_recorder — the recorder actor. See tako_recorder.h.

    One thread: the broker connection, the store connection and the
    artifact buffer. Every store call is short (a connect gives up after
    TAKO_RECORDER_CONNECT_TIMEOUT_S, a statement after
    TAKO_RECORDER_STATEMENT_TIMEOUT_MS), so the loop stays responsive.
    While the database is down each QUERY gets 503 at once; a reconnect is
    tried when one is due (backoff from tako_store_retry_delay_ms), both on
    a timer and when a query arrives.                                     */

#include <inttypes.h>
#include "recorder_internal.h"
//  For one session setting (statement_timeout) the public store API does
//  not offer; the recorder is the store's only user.
#include "tako_store_internal.h"
#include "tako_log.h"
#include "tako_msg.h"

#define LOG "recorder"

//  A failed cleanup is tried again this much later.
#define CLEANUP_RETRY_MS       (60 * 1000)
//  How often buffered artifacts are checked for age.
#define EXPIRE_EVERY_MS        (10 * 1000)
//  Room for the connection string with our additions.
#define URL_EXTRA_SIZE         64

//  ---------------------------------------------------------------------
//  Database connection

//  The session settings every connection gets. 0 or -1.
static int
session_setup (recorder_t *self)
{
    char sql [URL_EXTRA_SIZE];
    snprintf (sql, sizeof sql, "SET statement_timeout = %d", TAKO_RECORDER_STATEMENT_TIMEOUT_MS);
    return store_execute (self->store, sql, NULL) < 0? -1: 0;
}

void
recorder_disconnected (recorder_t *self)
{
    if (self->connected)
        tako_warning (LOG, "database connection lost; answering 503 until it is back");
    self->connected = false;
    self->next_connect = zclock_mono ();
}

//  Try to (re)connect now: connect, migrate, set the session up. On
//  failure the next attempt is scheduled after the store's backoff.
static void
recorder_connect (recorder_t *self)
{
    if (tako_store_connect (self->store) == 0
    &&  tako_store_migrate (self->store) == 0
    &&  session_setup (self) == 0) {
        self->connected = true;
        tako_info (LOG, "database connected (schema version %d)",
                   tako_store_schema_version (self->store));
        return;
    }
    if (!tako_store_unavailable (self->store))
        tako_error (LOG, "database set-up failed: %s", tako_store_error (self->store));
    self->connected = false;
    self->next_connect = zclock_mono () + tako_store_retry_delay_ms (self->store);
}

//  Connected, or connected now if an attempt was due.
static bool
recorder_ready (recorder_t *self)
{
    if (!self->connected && zclock_mono () >= self->next_connect)
        recorder_connect (self);
    return self->connected;
}

static void
recorder_cleanup (recorder_t *self)
{
    int64_t deleted = 0;
    if (tako_store_cleanup (self->store, self->config->execution_record_ttl_days, &deleted) == 0) {
        if (deleted > 0)
            tako_info (LOG, "cleanup removed %" PRId64 " old execution records", deleted);
        self->next_cleanup = zclock_mono () + TAKO_RECORDER_CLEANUP_EVERY_MS;
        return;
    }
    tako_warning (LOG, "cleanup failed: %s", tako_store_error (self->store));
    if (tako_store_unavailable (self->store))
        recorder_disconnected (self);
    self->next_cleanup = zclock_mono () + CLEANUP_RETRY_MS;
}

//  ---------------------------------------------------------------------
//  Messages

static void
reply_send (recorder_t *self, tako_msg_t *request, recorder_reply_t *reply)
{
    tako_msg_t *msg = tako_msg_new ("REPLY");
    if (!msg)
        return;
    tako_msg_set_address (msg, tako_msg_address (request));
    tako_msg_set_str (msg, "request_id", tako_msg_str (request, "request_id"));
    tako_msg_set_int (msg, "code", reply->code);
    if (reply->result)
        tako_msg_set_object (msg, "result", reply->result);
    if (reply->code != 200 && *reply->reason)
        tako_msg_set_str (msg, "reason", reply->reason);
    if (reply->data)
        tako_msg_set_bin (msg, "data", reply->data, reply->size);
    if (tako_peer_send (self->peer, &msg) == 0)
        return;
    //  Most likely the answer breaks a protocol limit: say so, briefly.
    tako_warning (LOG, "could not send the answer to %s", tako_msg_str (request, "query"));
    msg = tako_msg_new ("REPLY");
    if (!msg)
        return;
    tako_msg_set_address (msg, tako_msg_address (request));
    tako_msg_set_str (msg, "request_id", tako_msg_str (request, "request_id"));
    tako_msg_set_int (msg, "code", 500);
    tako_msg_set_str (msg, "reason", "answer too large to send");
    tako_peer_send (self->peer, &msg);
}

static void
handle_query (recorder_t *self, tako_msg_t *msg)
{
    recorder_reply_t reply = { .code = 500 };
    const char *query = tako_msg_str (msg, "query");
    if (recorder_ready (self))
        recorder_query (self, query, tako_msg_object (msg, "params"), &reply);
    else
        snprintf (reply.reason, sizeof reply.reason, "database unavailable"), reply.code = 503;
    tako_debug (LOG, "%s from %s: %d %s", query, tako_msg_address (msg), reply.code, reply.reason);
    reply_send (self, msg, &reply);
    json_decref (reply.result);
    free (reply.data);
}

static void
handle_artifact (recorder_t *self, tako_msg_t *msg)
{
    size_t size = 0;
    const void *data = tako_msg_bin (msg, "data", &size);
    if (tako_artbuf_put (self->artifacts, tako_msg_str (msg, "job_id"),
                         tako_msg_int (msg, "attempt", 0), tako_msg_str (msg, "name"),
                         tako_msg_str (msg, "content_type"), data, size, zclock_mono ()))
        tako_warning (LOG, "artifact of %s dropped: over the buffer bound",
                      tako_msg_str (msg, "job_id"));
}

static void
handle_message (recorder_t *self, tako_msg_t *msg)
{
    const char *command = tako_msg_command (msg);
    if (streq (command, "QUERY"))
        handle_query (self, msg);
    else
    if (streq (command, "ARTIFACT"))
        handle_artifact (self, msg);
    else
    if (streq (command, "ERROR"))
        tako_debug (LOG, "ERROR %" PRId64 " from %s: %s", tako_msg_int (msg, "code", 0),
                    tako_msg_address (msg), tako_msg_str (msg, "reason"));
    else
        tako_debug (LOG, "ignoring %s from %s", command, tako_msg_address (msg));
}

static void
handle_pipe (recorder_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "INSTANCE"))
        zstr_send (self->pipe, tako_peer_instance (self->peer));
    else
    if (streq (command, "STATS"))
        zsock_send (self->pipe, "iii", self->connected? 1: 0,
                    (int) tako_artbuf_count (self->artifacts),
                    (int) tako_artbuf_bytes (self->artifacts));
    zstr_free (&command);
}

//  ---------------------------------------------------------------------
//  Timers

static void
recorder_timers (recorder_t *self)
{
    int64_t now = zclock_mono ();
    if (!self->connected && now >= self->next_connect)
        recorder_connect (self);
    if (self->connected && now >= self->next_cleanup)
        recorder_cleanup (self);
    if (now >= self->next_expire) {
        tako_artbuf_expire (self->artifacts, now);
        self->next_expire = now + EXPIRE_EVERY_MS;
    }
}

static int
recorder_wait_ms (recorder_t *self)
{
    int64_t now = zclock_mono ();
    int64_t due = now + tako_peer_tick_due (self->peer);
    if (!self->connected && self->next_connect < due)
        due = self->next_connect;
    if (self->connected && self->next_cleanup < due)
        due = self->next_cleanup;
    if (self->next_expire < due)
        due = self->next_expire;
    return due > now? (int) (due - now): 0;
}

//  ---------------------------------------------------------------------
//  Actor

static void
recorder_destroy (recorder_t **self_p)
{
    recorder_t *self = *self_p;
    if (!self)
        return;
    zpoller_destroy (&self->poller);
    tako_peer_destroy (&self->peer);
    tako_store_destroy (&self->store);
    tako_artbuf_destroy (&self->artifacts);
    free (self);
    *self_p = NULL;
}

//  The store's URL with our connect timeout as a default the URL may
//  override (libpq takes the last value of a repeated keyword, so ours
//  goes first in key=value form; a URI gets it as a query parameter
//  only when it has none).
static char *
url_with_timeout (const char *url)
{
    if (strstr (url, "connect_timeout"))
        return strdup (url);
    if (strstr (url, "://"))
        return zsys_sprintf ("%s%sconnect_timeout=%d", url, strchr (url, '?')? "&": "?",
                             TAKO_RECORDER_CONNECT_TIMEOUT_S);
    return zsys_sprintf ("connect_timeout=%d %s", TAKO_RECORDER_CONNECT_TIMEOUT_S, url);
}

static recorder_t *
recorder_new (zsock_t *pipe, tako_actor_args_t *args)
{
    const char *url = args->database_url? args->database_url: args->config->database_url;
    if (!url || !*url) {
        tako_error (LOG, "no database URL: start the database first and pass its URL");
        return NULL;
    }
    recorder_t *self = calloc (1, sizeof (recorder_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->config = args->config;
    char *full_url = url_with_timeout (url);
    self->store = full_url? tako_store_new (full_url): NULL;
    free (full_url);
    self->artifacts = tako_artbuf_new (TAKO_RECORDER_ARTIFACT_BUFFER_MAX,
                                       TAKO_RECORDER_ARTIFACT_MAX_AGE_MS);
    const char *endpoint = args->broker_endpoint? args->broker_endpoint:
                                                  args->config->broker_endpoint;
    self->peer = tako_peer_new (endpoint, "recorder", &args->heartbeat);
    if (!self->store || !self->artifacts || !self->peer) {
        recorder_destroy (&self);
        return NULL;
    }
    self->peer_socket = tako_peer_socket (self->peer);
    self->poller = zpoller_new (pipe, self->peer_socket, NULL);
    if (!self->poller)
        recorder_destroy (&self);
    else {
        int64_t now = zclock_mono ();
        self->next_connect = now;
        self->next_cleanup = now;       //  once at start, then hourly
        self->next_expire = now + EXPIRE_EVERY_MS;
    }
    return self;
}

void
tako_recorder_actor (zsock_t *pipe, void *args)
{
    recorder_t *self = recorder_new (pipe, (tako_actor_args_t *) args);
    zsock_signal (pipe, self? 0: 1);
    if (!self)
        return;
    tako_info (LOG, "%s ready", tako_peer_instance (self->peer));
    while (!self->terminated) {
        void *which = zpoller_wait (self->poller, recorder_wait_ms (self));
        if (which == pipe)
            handle_pipe (self);
        else
        if (which == self->peer_socket) {
            tako_msg_t *msg = tako_peer_handle_input (self->peer);
            if (msg)
                handle_message (self, msg);
            tako_msg_destroy (&msg);
        }
        else
        if (zpoller_terminated (self->poller))
            break;
        if (tako_peer_tick (self->peer) == 1) {
            zpoller_remove (self->poller, self->peer_socket);
            self->peer_socket = tako_peer_socket (self->peer);
            zpoller_add (self->poller, self->peer_socket);
        }
        if (!self->terminated)
            recorder_timers (self);
    }
    tako_info (LOG, "%s stopping", tako_peer_instance (self->peer));
    recorder_destroy (&self);
}

void
tako_recorder_test (bool verbose)
{
    (void) verbose;
    //  The queries need PostgreSQL and a broker: tests/unit/test_recorder.c.
    //  Here: the connect timeout goes in without overriding the caller's.
    char *url = url_with_timeout ("postgresql:///tako_vm?host=/run/pg");
    assert (streq (url, "postgresql:///tako_vm?host=/run/pg&connect_timeout=2"));
    free (url);
    url = url_with_timeout ("postgresql://db/tako_vm");
    assert (streq (url, "postgresql://db/tako_vm?connect_timeout=2"));
    free (url);
    url = url_with_timeout ("host=/run/pg dbname=tako_vm");
    assert (streq (url, "connect_timeout=2 host=/run/pg dbname=tako_vm"));
    free (url);
    url = url_with_timeout ("host=db connect_timeout=9");
    assert (streq (url, "host=db connect_timeout=9"));
    free (url);
}
