/*  tako_http — the HTTP ingress actor. See tako_http.h and http_internal.h.

    libmicrohttpd runs in external-epoll mode with suspend/resume: its
    epoll fd is one of the items of this actor's zmq_poll, next to the
    actor pipe, the broker connection and the event subscription. After
    each wake-up MHD_run is called until MHD_get_timeout says nothing is
    left to do at once (the inner epoll is edge-triggered).

    Access handler calls, per request: the first creates the connection
    state; the next ones collect the body; the last routes it. A handler
    either responds at once or sends one message and suspends; the answer
    resumes the connection and MHD calls the handler again, which queues
    the response (answering on a later call, never the first, keeps
    keep-alive: MHD 0.9.75 adds `Connection: close` to a first-call
    answer).                                                              */

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "tako_http.h"
#include "http_internal.h"
#include "tako_actor.h"
#include "tako_log.h"
#include "tako_version.h"

#define LOG "http"

//  Latency histogram bounds, milliseconds (the last bucket is +Inf).
static const double latency_bounds [] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};
#define LATENCY_BUCKETS (sizeof latency_bounds / sizeof latency_bounds [0] + 1)
//  Response codes counted separately (any other is counted as 0).
#define CODES_MAX 32

struct _http_t {
    zsock_t *pipe;
    tako_config_t *config;
    tako_peer_t *peer;
    tako_events_t *events;
    tako_httpauth_t *auth;
    struct MHD_Daemon *daemon;
    int epoll_fd;
    unsigned port;
    zhashx_t *pending;              //  request_id → http_conn_t * (borrowed)
    zlistx_t *waiting;              //  http_conn_t * waiting on a job or streaming
    uint64_t next_request;
    bool terminated;
    //  Metrics.
    unsigned codes [CODES_MAX];
    uint64_t code_counts [CODES_MAX];
    uint64_t latency_counts [LATENCY_BUCKETS];
    double latency_sum_ms;
    uint64_t latency_count;
    zhashx_t *submitted;            //  job_type → uint64_t * accepted jobs
};

//  --------------------------------------------------------------------------
//  Small helpers

tako_config_t *
http_config (http_t *self)
{
    return self->config;
}

int
http_answer_code (tako_msg_t *answer)
{
    if (!answer)
        return 0;
    if (streq (tako_msg_command (answer), "ACCEPTED"))
        return 200;
    return (int) tako_msg_int (answer, "code", 500);
}

static void
metrics_count (http_t *self, unsigned status, int64_t elapsed_ms)
{
    size_t slot = 0;
    while (slot < CODES_MAX && self->codes [slot] && self->codes [slot] != status)
        slot++;
    if (slot < CODES_MAX) {
        self->codes [slot] = status;
        self->code_counts [slot]++;
    }
    size_t bucket = 0;
    while (bucket < LATENCY_BUCKETS - 1 && (double) elapsed_ms > latency_bounds [bucket])
        bucket++;
    self->latency_counts [bucket]++;
    self->latency_sum_ms += (double) elapsed_ms;
    self->latency_count++;
}

//  --------------------------------------------------------------------------
//  Responses

static void
conn_resume (http_conn_t *conn)
{
    if (conn->suspended && conn->connection) {
        conn->suspended = false;
        MHD_resume_connection (conn->connection);
    }
}

static void
conn_suspend (http_conn_t *conn)
{
    if (!conn->suspended && conn->connection) {
        conn->suspended = true;
        MHD_suspend_connection (conn->connection);
    }
}

static void
response_set (http_conn_t *conn, unsigned int status, struct MHD_Response *response)
{
    if (!response)
        return;
    if (conn->response)
        MHD_destroy_response (conn->response);
    conn->response = response;
    conn->status = status;
    MHD_add_response_header (response, "X-Correlation-ID", conn->correlation_id);
    MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header (response, "X-Frame-Options", "DENY");
    conn_resume (conn);
}

void
http_respond_bytes (http_conn_t *conn, unsigned int status, const char *content_type,
                    const void *data, size_t size)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (
        size, (void *) data, MHD_RESPMEM_MUST_COPY);
    if (response && content_type)
        MHD_add_response_header (response, "Content-Type", content_type);
    response_set (conn, status, response);
}

void
http_respond_json (http_conn_t *conn, unsigned int status, json_t *body)
{
    char *text = body? json_dumps (body, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION (6)): NULL;
    json_decref (body);
    if (!text) {
        http_respond_bytes (conn, 500, "application/json", "{\"detail\":\"internal error\"}", 27);
        return;
    }
    http_respond_bytes (conn, status, "application/json", text, strlen (text));
    free (text);
}

void
http_respond_detail (http_conn_t *conn, unsigned int status, const char *detail)
{
    json_t *body = json_pack ("{s:s}", "detail", detail? detail: "");
    if (status >= 500)
        json_object_set_new (body, "correlation_id", json_string (conn->correlation_id));
    http_respond_json (conn, status, body);
}

void
http_response_header (http_conn_t *conn, const char *name, const char *value)
{
    if (conn->response)
        MHD_add_response_header (conn->response, name, value);
}

void
http_respond_failure (http_conn_t *conn, tako_msg_t *answer, const char *service)
{
    char detail [160];
    if (!answer) {
        snprintf (detail, sizeof detail, "%s unavailable", service);
        http_respond_detail (conn, 503, detail);
        return;
    }
    int code = http_answer_code (answer);
    const char *reason = tako_msg_str (answer, "reason");
    if (code < 400 || code > 599)
        code = 500;
    http_respond_detail (conn, (unsigned) code, reason && *reason? reason: "request failed");
    if (code == 503) {
        int64_t retry_ms = tako_msg_int (answer, "retry_after_ms", 1000);
        char seconds [24];
        snprintf (seconds, sizeof seconds, "%" PRId64, retry_ms / 1000 + 1);
        http_response_header (conn, "Retry-After", seconds);
    }
}

//  --------------------------------------------------------------------------
//  Asking other services

void
http_ask (http_conn_t *conn, tako_msg_t *msg, http_step_fn *step)
{
    http_t *self = conn->server;
    snprintf (conn->request_id, sizeof conn->request_id, "h%" PRIu64, ++self->next_request);
    tako_msg_set_str (msg, "request_id", conn->request_id);
    if (tako_peer_send (self->peer, &msg) != 0) {
        tako_msg_destroy (&msg);
        conn->request_id [0] = 0;
        step (conn, NULL);
        return;
    }
    conn->step = step;
    conn->deadline = zclock_mono () + HTTP_SERVICE_WAIT_MS;
    zhashx_update (self->pending, conn->request_id, conn);
    if (!conn->sse)
        conn_suspend (conn);
}

void
http_query (http_conn_t *conn, const char *service, const char *query, json_t *params,
            http_step_fn *step)
{
    tako_msg_t *msg = tako_msg_new ("QUERY");
    if (!msg || tako_msg_set_address (msg, service) != 0) {
        tako_msg_destroy (&msg);
        json_decref (params);
        step (conn, NULL);
        return;
    }
    tako_msg_set_str (msg, "query", query);
    if (params)
        tako_msg_set_object (msg, "params", params);
    json_decref (params);
    http_ask (conn, msg, step);
}

//  The answer to a pending request: run its step.
static void
answer_handle (http_t *self, tako_msg_t *msg)
{
    const char *request_id = tako_msg_str (msg, "request_id");
    http_conn_t *conn = request_id? (http_conn_t *) zhashx_lookup (self->pending, request_id): NULL;
    if (!conn)
        return;                         //  late, or its client is gone
    zhashx_delete (self->pending, request_id);
    conn->request_id [0] = 0;
    conn->deadline = 0;
    http_step_fn *step = conn->step;
    conn->step = NULL;
    if (step)
        step (conn, msg);
}

static void
pending_expire (http_t *self, int64_t now)
{
    http_conn_t *expired [64];
    size_t count = 0;
    for (http_conn_t *conn = (http_conn_t *) zhashx_first (self->pending);
         conn && count < 64; conn = (http_conn_t *) zhashx_next (self->pending))
        if (conn->deadline && now >= conn->deadline)
            expired [count++] = conn;
    for (size_t i = 0; i < count; i++) {
        http_conn_t *conn = expired [i];
        zhashx_delete (self->pending, conn->request_id);
        conn->request_id [0] = 0;
        conn->deadline = 0;
        http_step_fn *step = conn->step;
        conn->step = NULL;
        if (step)
            step (conn, NULL);
    }
}

//  --------------------------------------------------------------------------
//  Waiting for jobs

static bool
status_terminal (const char *status)
{
    return status && (streq (status, "succeeded") || streq (status, "failed")
                   || streq (status, "timeout") || streq (status, "oom")
                   || streq (status, "cancelled"));
}

static void
waiting_remove (http_t *self, http_conn_t *conn)
{
    void *handle = zlistx_find (self->waiting, conn);
    if (handle)
        zlistx_delete (self->waiting, handle);
}

static void wait_poll (http_conn_t *conn);

//  End a plain wait: its step gets answer (borrowed; NULL when the wait
//  ran out). A poll still on its way is no longer wanted.
static void
wait_end (http_conn_t *conn, tako_msg_t *answer)
{
    http_t *self = conn->server;
    waiting_remove (self, conn);
    if (conn->request_id [0]) {
        zhashx_delete (self->pending, conn->request_id);
        conn->request_id [0] = 0;
        conn->deadline = 0;
        conn->step = NULL;
    }
    conn->wait_until = 0;
    http_step_fn *step = conn->wait_step;
    conn->wait_step = NULL;
    step (conn, answer);
}

static void
wait_polled (http_conn_t *conn, tako_msg_t *answer)
{
    int64_t now = zclock_mono ();
    json_t *record = answer? tako_msg_object (answer, "result"): NULL;
    const char *status = json_string_value (json_object_get (record, "status"));
    bool ended = http_answer_code (answer) == 200 && status_terminal (status);
    bool gone = http_answer_code (answer) == 404;
    if (ended || gone || now >= conn->wait_until) {
        wait_end (conn, ended || gone? answer: NULL);
        return;
    }
    //  An event that came while this answer was on its way means the
    //  answer may be stale: ask again at once.
    conn->next_poll = conn->event_seen? now: now + conn->poll_ms;
    conn->event_seen = false;
    conn->poll_ms = conn->poll_ms * 2 > HTTP_JOB_POLL_MAX_MS? HTTP_JOB_POLL_MAX_MS: conn->poll_ms * 2;
}

static void
wait_poll (http_conn_t *conn)
{
    conn->next_poll = 0;
    json_t *params = json_pack ("{s:s}", "job_id", conn->job_id);
    if (conn->full_view)
        json_object_set_new (params, "view", json_string ("full"));
    http_query (conn, "recorder", "job.get", params, wait_polled);
}

void
http_wait_job (http_conn_t *conn, int64_t deadline_ms, http_step_fn *step)
{
    conn->wait_until = deadline_ms;
    conn->wait_step = step;
    conn->poll_ms = HTTP_JOB_POLL_FIRST_MS;
    //  The job's events make the first question; the poll is the fallback
    //  should one be missed (or the job have ended already).
    conn->next_poll = zclock_mono () + HTTP_JOB_POLL_FIRST_MS;
    zlistx_add_end (conn->server->waiting, conn);
    conn_suspend (conn);
}

//  --------------------------------------------------------------------------
//  Server-sent events

//  Queue one event on the stream (data is borrowed).
static void
sse_append (http_conn_t *conn, const char *event, json_t *data)
{
    char *text = data? json_dumps (data, JSON_COMPACT): NULL;
    char *chunk = zsys_sprintf ("event: %s\ndata: %s\n\n", event, text? text: "{}");
    free (text);
    if (chunk && conn->sse_buffer)
        zchunk_extend (conn->sse_buffer, chunk, strlen (chunk));
    zstr_free (&chunk);
    conn_resume (conn);
}

static ssize_t
sse_read (void *cls, uint64_t position, char *buffer, size_t max)
{
    (void) position;
    http_conn_t *conn = (http_conn_t *) cls;
    size_t have = conn->sse_buffer? zchunk_size (conn->sse_buffer): 0;
    if (have > 0) {
        size_t size = have < max? have: max;
        memcpy (buffer, zchunk_data (conn->sse_buffer), size);
        zchunk_t *rest = zchunk_new (zchunk_data (conn->sse_buffer) + size, have - size);
        zchunk_destroy (&conn->sse_buffer);
        conn->sse_buffer = rest;
        return (ssize_t) size;
    }
    if (conn->sse_done)
        return MHD_CONTENT_READER_END_OF_STREAM;
    //  Nothing to send now: park the connection until an event comes.
    conn_suspend (conn);
    return 0;
}

static void sse_result (http_conn_t *conn, tako_msg_t *answer);

static void
sse_result (http_conn_t *conn, tako_msg_t *answer)
{
    json_t *record = answer? tako_msg_object (answer, "result"): NULL;
    const char *status = json_string_value (json_object_get (record, "status"));
    if (http_answer_code (answer) == 200 && status_terminal (status)) {
        sse_append (conn, "result", record);
        conn->sse_done = true;
        waiting_remove (conn->server, conn);
    }
    else
    if (http_answer_code (answer) == 404) {
        json_t *error = json_pack ("{s:s}", "detail", "Job not found");
        sse_append (conn, "error", error);
        json_decref (error);
        conn->sse_done = true;
        waiting_remove (conn->server, conn);
    }
    else
    if (record && status) {
        json_t *current = json_pack ("{s:s, s:s}", "job_id", conn->job_id, "status", status);
        sse_append (conn, "status", current);
        json_decref (current);
    }
    //  With no answer the stream waits for the job's events.
}

void
http_sse_start (http_conn_t *conn)
{
    conn->sse = true;
    conn->sse_buffer = zchunk_new (NULL, 0);
    conn->sse_next_beat = zclock_mono () + HTTP_SSE_HEARTBEAT_MS;
    conn->wait_until = zclock_mono () + HTTP_SSE_MAX_MS;
    struct MHD_Response *response = MHD_create_response_from_callback (
        MHD_SIZE_UNKNOWN, 4096, sse_read, conn, NULL);
    if (!response || !conn->sse_buffer) {
        if (response)
            MHD_destroy_response (response);
        http_respond_detail (conn, 500, "cannot start the event stream");
        return;
    }
    MHD_add_response_header (response, "Content-Type", "text/event-stream");
    MHD_add_response_header (response, "Cache-Control", "no-cache");
    response_set (conn, 200, response);
    zlistx_add_end (conn->server->waiting, conn);
    json_t *params = json_pack ("{s:s}", "job_id", conn->job_id);
    http_query (conn, "recorder", "job.get", params, sse_result);
}

//  The answer job.get would give, from a finished event's record (NULL
//  when the event has none).
static tako_msg_t *
event_answer (tako_msg_t *event)
{
    json_t *record = tako_msg_object (event, "record");
    const char *status = json_string_value (json_object_get (record, "status"));
    if (!status_terminal (status))
        return NULL;
    tako_msg_t *answer = tako_msg_new ("REPLY");
    if (answer && (tako_msg_set_int (answer, "code", 200)
               ||  tako_msg_set_object (answer, "result", record)))
        tako_msg_destroy (&answer);
    return answer;
}

//  An event from the hub: streams get it; waits end with the record the
//  event carries, or ask again at once.
static void
event_handle (http_t *self, tako_msg_t *event)
{
    const char *job_id = tako_msg_str (event, "job_id");
    if (!job_id)
        return;
    const char *kind = tako_msg_str (event, "kind");
    const char *status = tako_msg_str (event, "status");
    int64_t seq = tako_msg_int (event, "seq", 0);
    int64_t now = zclock_mono ();
    tako_msg_t *answer = NULL;
    http_conn_t *ended [64];
    size_t ended_count = 0;
    for (http_conn_t *conn = (http_conn_t *) zlistx_first (self->waiting); conn;
         conn = (http_conn_t *) zlistx_next (self->waiting)) {
        if (!streq (conn->job_id, job_id))
            continue;
        if (!conn->sse) {
            //  A plain wait only cares for the end: other events would
            //  only make the recorder answer job.get for nothing.
            if (!status_terminal (status) || (kind && streq (kind, "output")))
                continue;
            if (!answer)
                answer = event_answer (event);
            if (answer && !conn->full_view && ended_count < 64)
                ended [ended_count++] = conn;
            else
            if (conn->request_id [0])
                conn->event_seen = true;
            else
                conn->next_poll = now;
            continue;
        }
        if (conn->sse_done)
            continue;
        if (kind && streq (kind, "output")) {
            json_t *output = tako_msg_object (event, "data");
            if (output)
                sse_append (conn, "output", output);
            continue;
        }
        if (seq <= conn->sse_seq)
            continue;
        conn->sse_seq = seq;
        json_t *data = json_pack ("{s:s, s:s, s:s, s:I}", "job_id", job_id,
                                  "kind", kind? kind: "", "status", status? status: "",
                                  "seq", (json_int_t) seq);
        json_t *extra = tako_msg_object (event, "data");
        if (extra)
            json_object_set (data, "data", extra);
        if (tako_msg_str (event, "at"))
            json_object_set_new (data, "at", json_string (tako_msg_str (event, "at")));
        sse_append (conn, "status", data);
        json_decref (data);
        if (status_terminal (status) && !conn->request_id [0]) {
            json_t *params = json_pack ("{s:s, s:s}", "job_id", job_id, "view", "full");
            http_query (conn, "recorder", "job.get", params, sse_result);
        }
    }
    for (size_t i = 0; i < ended_count; i++)
        wait_end (ended [i], answer);
    tako_msg_destroy (&answer);
}

//  Timers of waiting connections: polls due, waits run out, heartbeats.
static void
waiting_tick (http_t *self, int64_t now)
{
    http_conn_t *due [64];
    size_t count = 0;
    for (http_conn_t *conn = (http_conn_t *) zlistx_first (self->waiting); conn && count < 64;
         conn = (http_conn_t *) zlistx_next (self->waiting)) {
        if (conn->sse) {
            if (now >= conn->sse_next_beat && !conn->sse_done) {
                zchunk_extend (conn->sse_buffer, ": keep-alive\n\n", 14);
                conn->sse_next_beat = now + HTTP_SSE_HEARTBEAT_MS;
                conn_resume (conn);
            }
            if (now >= conn->wait_until && !conn->sse_done) {
                conn->sse_done = true;
                conn_resume (conn);
            }
        }
        else
        if (!conn->request_id [0] && conn->next_poll && now >= conn->next_poll)
            due [count++] = conn;
    }
    for (size_t i = 0; i < count; i++)
        wait_poll (due [i]);
    //  Streams that ended leave the list once drained.
    http_conn_t *conn = (http_conn_t *) zlistx_first (self->waiting);
    while (conn) {
        http_conn_t *next = (http_conn_t *) zlistx_next (self->waiting);
        if (conn->sse && conn->sse_done && !conn->request_id [0])
            waiting_remove (self, conn);
        conn = next;
    }
}

static int64_t
waiting_due (http_t *self, int64_t due)
{
    for (http_conn_t *conn = (http_conn_t *) zlistx_first (self->waiting); conn;
         conn = (http_conn_t *) zlistx_next (self->waiting)) {
        if (conn->sse && conn->sse_next_beat < due)
            due = conn->sse_next_beat;
        if (!conn->sse && conn->next_poll && conn->next_poll < due)
            due = conn->next_poll;
    }
    for (http_conn_t *conn = (http_conn_t *) zhashx_first (self->pending); conn;
         conn = (http_conn_t *) zhashx_next (self->pending))
        if (conn->deadline && conn->deadline < due)
            due = conn->deadline;
    return due;
}

//  --------------------------------------------------------------------------
//  Routing

//  Match path against pattern; params get the {…} segments (pointers
//  into buffer, a copy of path). True on a match.
static bool
route_match (const char *pattern, const char *path, char *buffer, size_t size,
             const char *params [4])
{
    if (strlen (path) >= size)
        return false;
    strcpy (buffer, path);
    size_t count = 0;
    const char *p = pattern;
    char *q = buffer;
    while (*p && *q) {
        if (*p == '{') {
            const char *close = strchr (p, '}');
            if (!close || count >= 4)
                return false;
            char *end = strchr (q, '/');
            if (end == q)
                return false;
            params [count++] = q;
            p = close + 1;
            if (end) {
                *end = 0;
                q = end + 1;
                if (*p != '/')
                    return false;
                p++;
            }
            else
                q += strlen (q);
        }
        else {
            if (*p != *q)
                return false;
            p++;
            q++;
        }
    }
    return !*p && !*q;
}

static bool
client_key (http_conn_t *conn, const char **key)
{
    *key = MHD_lookup_connection_value (conn->connection, MHD_HEADER_KIND, "X-API-Key");
    const char *authorization = MHD_lookup_connection_value (conn->connection, MHD_HEADER_KIND,
                                                             "Authorization");
    if (!*key && authorization && strncasecmp (authorization, "Bearer ", 7) == 0)
        *key = authorization + 7;
    return *key != NULL;
}

static void
route (http_conn_t *conn)
{
    http_t *self = conn->server;
    if (conn->body_too_large) {
        http_respond_detail (conn, 413, "Request body too large");
        return;
    }
    const char *method = streq (conn->method, "HEAD")? "GET": conn->method;
    conn->head = streq (conn->method, "HEAD");
    char buffer [1024];
    const char *params [4] = { NULL, NULL, NULL, NULL };
    const http_route_t *found = NULL;
    bool path_known = false;
    for (const http_route_t *route = http_routes; route->pattern; route++)
        if (route_match (route->pattern, conn->path, buffer, sizeof buffer, params)) {
            path_known = true;
            if (streq (route->method, method)) {
                found = route;
                break;
            }
        }
    if (!found) {
        http_respond_detail (conn, path_known? 405: 404, path_known? "Method not allowed": "Not found");
        return;
    }
    if (!found->open) {
        const char *key = NULL;
        client_key (conn, &key);
        if (!tako_httpauth_key_ok (self->auth, key)) {
            http_respond_detail (conn, 401, "Invalid or missing API key");
            http_response_header (conn, "WWW-Authenticate", "Bearer");
            return;
        }
    }
    if (!found->unlimited) {
        int retry_after = 0;
        if (!tako_httpauth_admit (self->auth, conn->client_ip, zclock_time () / 1000, &retry_after)) {
            char seconds [16];
            snprintf (seconds, sizeof seconds, "%d", retry_after);
            http_respond_detail (conn, 429, "Rate limit exceeded");
            http_response_header (conn, "Retry-After", seconds);
            return;
        }
    }
    found->handler (conn, params);
}

//  --------------------------------------------------------------------------
//  libmicrohttpd callbacks

static http_conn_t *
conn_new (http_t *self, struct MHD_Connection *connection, const char *url, const char *method)
{
    http_conn_t *conn = (http_conn_t *) calloc (1, sizeof (http_conn_t));
    if (!conn)
        return NULL;
    conn->server = self;
    conn->connection = connection;
    snprintf (conn->method, sizeof conn->method, "%s", method);
    conn->path = strdup (url? url: "/");
    conn->started_ms = zclock_mono ();
    const char *given = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "X-Correlation-ID");
    if (tako_httpreq_correlation_valid (given))
        snprintf (conn->correlation_id, sizeof conn->correlation_id, "%s", given);
    else {
        zuuid_t *uuid = zuuid_new ();
        snprintf (conn->correlation_id, sizeof conn->correlation_id, "%s",
                  uuid? zuuid_str_canonical (uuid): "unknown");
        zuuid_destroy (&uuid);
    }
    const union MHD_ConnectionInfo *info = MHD_get_connection_info (
        connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *address = info? info->client_addr: NULL;
    if (address && address->sa_family == AF_INET)
        inet_ntop (AF_INET, &((const struct sockaddr_in *) address)->sin_addr,
                   conn->client_ip, sizeof conn->client_ip);
    else
    if (address && address->sa_family == AF_INET6)
        inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) address)->sin6_addr,
                   conn->client_ip, sizeof conn->client_ip);
    const char *length = MHD_lookup_connection_value (connection, MHD_HEADER_KIND, "Content-Length");
    if (length && strtoull (length, NULL, 10) > (unsigned long long) self->config->api_max_payload_bytes)
        conn->body_too_large = true;
    if (!conn->path) {
        free (conn);
        return NULL;
    }
    return conn;
}

static void
conn_free (http_conn_t *conn)
{
    http_t *self = conn->server;
    if (conn->request_id [0])
        zhashx_delete (self->pending, conn->request_id);
    waiting_remove (self, conn);
    if (conn->response)
        MHD_destroy_response (conn->response);
    json_decref (conn->context);
    zchunk_destroy (&conn->sse_buffer);
    free (conn->path);
    free (conn->body);
    free (conn);
}

static void
body_append (http_t *self, http_conn_t *conn, const char *data, size_t size)
{
    if (conn->body_too_large)
        return;
    if (conn->body_size + size > (size_t) self->config->api_max_payload_bytes) {
        conn->body_too_large = true;
        free (conn->body);
        conn->body = NULL;
        conn->body_size = 0;
        return;
    }
    char *body = realloc (conn->body, conn->body_size + size + 1);
    if (!body) {
        conn->body_too_large = true;
        return;
    }
    memcpy (body + conn->body_size, data, size);
    conn->body = body;
    conn->body_size += size;
    conn->body [conn->body_size] = 0;
}

//  The path as it may appear in a log line: control characters (a CR or
//  LF decoded from the URL could forge lines) become '?', and it is cut.
static void
path_loggable (const char *path, char *out, size_t size)
{
    size_t i = 0;
    for (; path [i] && i < size - 1; i++)
        out [i] = (unsigned char) path [i] < 0x20 || path [i] == 0x7f? '?': path [i];
    out [i] = 0;
}

static enum MHD_Result
response_queue (http_conn_t *conn)
{
    http_t *self = conn->server;
    struct MHD_Response *response = conn->response;
    conn->response = NULL;
    enum MHD_Result result = MHD_queue_response (conn->connection, conn->status, response);
    MHD_destroy_response (response);
    int64_t elapsed = zclock_mono () - conn->started_ms;
    metrics_count (self, conn->status, elapsed);
    char path [256];
    path_loggable (conn->path, path, sizeof path);
    if (conn->status >= 400)
        tako_info (LOG, "%s %s %u %" PRId64 " ms client=%s correlation_id=%s", conn->method,
                   path, conn->status, elapsed, conn->client_ip, conn->correlation_id);
    else
        tako_debug (LOG, "%s %s %u %" PRId64 " ms correlation_id=%s", conn->method, path,
                    conn->status, elapsed, conn->correlation_id);
    return result;
}

static enum MHD_Result
access_handler (void *cls, struct MHD_Connection *connection, const char *url,
                const char *method, const char *version, const char *upload_data,
                size_t *upload_data_size, void **con_cls)
{
    (void) version;
    http_t *self = (http_t *) cls;
    http_conn_t *conn = (http_conn_t *) *con_cls;
    if (!conn) {
        conn = conn_new (self, connection, url, method);
        if (!conn)
            return MHD_NO;
        *con_cls = conn;
        //  Over the cap by Content-Length: answer now, read nothing (the
        //  connection closes after this answer).
        if (conn->body_too_large) {
            conn->routed = true;
            http_respond_detail (conn, 413, "Request body too large");
            return response_queue (conn);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        body_append (self, conn, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!conn->routed) {
        conn->routed = true;
        route (conn);
    }
    if (conn->response && !conn->suspended)
        return response_queue (conn);
    return MHD_YES;
}

static void
request_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
                   enum MHD_RequestTerminationCode code)
{
    (void) cls;
    (void) connection;
    (void) code;
    http_conn_t *conn = (http_conn_t *) *con_cls;
    if (conn)
        conn_free (conn);
    *con_cls = NULL;
}

static void
mhd_run (http_t *self)
{
    MHD_run (self->daemon);
    MHD_UNSIGNED_LONG_LONG timeout = 0;
    for (int round = 0; round < 16 && MHD_get_timeout (self->daemon, &timeout) == MHD_YES
                        && timeout == 0; round++)
        MHD_run (self->daemon);
}

//  --------------------------------------------------------------------------
//  Actor

static void
http_destroy (http_t **self_p)
{
    http_t *self = *self_p;
    if (!self)
        return;
    if (self->daemon) {
        //  Every suspended connection must be resumed before the stop.
        for (http_conn_t *conn = (http_conn_t *) zhashx_first (self->pending); conn;
             conn = (http_conn_t *) zhashx_next (self->pending))
            conn_resume (conn);
        for (http_conn_t *conn = (http_conn_t *) zlistx_first (self->waiting); conn;
             conn = (http_conn_t *) zlistx_next (self->waiting)) {
            conn->sse_done = true;
            conn_resume (conn);
        }
        MHD_stop_daemon (self->daemon);
    }
    zhashx_destroy (&self->pending);
    zlistx_destroy (&self->waiting);
    zhashx_destroy (&self->submitted);
    tako_httpauth_destroy (&self->auth);
    tako_events_destroy (&self->events);
    tako_peer_destroy (&self->peer);
    free (self);
    *self_p = NULL;
}

static size_t
unescape (void *arg, struct MHD_Connection *connection, char *text)
{
    (void) arg;
    (void) connection;
    return tako_httpreq_unescape (text);
}

static struct MHD_Daemon *
daemon_start (http_t *self)
{
    struct sockaddr_in address;
    memset (&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons ((uint16_t) self->config->server_port);
    if (inet_pton (AF_INET, self->config->server_host, &address.sin_addr) != 1) {
        tako_error (LOG, "server_host %s is not an IPv4 address", self->config->server_host);
        return NULL;
    }
    return MHD_start_daemon (
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, (uint16_t) self->config->server_port,
        NULL, NULL, access_handler, self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, self,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) HTTP_IDLE_TIMEOUT_S,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) HTTP_CONNECTIONS_PER_IP,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int) HTTP_CONNECTIONS_MAX,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int) 1,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_END);
}

static http_t *
http_new (zsock_t *pipe, tako_actor_args_t *args)
{
    http_t *self = (http_t *) calloc (1, sizeof (http_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->config = args->config;
    const char *broker = args->broker_endpoint? args->broker_endpoint: self->config->broker_endpoint;
    self->peer = tako_peer_new_client (broker, "http", &args->heartbeat);
    self->events = tako_events_new_subscriber (self->config->event_subscribe_endpoint);
    self->auth = tako_httpauth_new (self->config);
    self->pending = zhashx_new ();
    self->waiting = zlistx_new ();
    self->submitted = zhashx_new ();
    if (!self->peer || !self->events || !self->auth || !self->pending || !self->waiting
    ||  !self->submitted || tako_events_follow_all (self->events) != 0) {
        http_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->submitted, (zhashx_destructor_fn *) zstr_free);
    self->daemon = daemon_start (self);
    if (!self->daemon) {
        tako_error (LOG, "cannot listen on %s:%d", self->config->server_host, self->config->server_port);
        http_destroy (&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    self->epoll_fd = info? info->epoll_fd: -1;
    info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info? info->port: (unsigned) self->config->server_port;
    if (self->epoll_fd < 0)
        http_destroy (&self);
    return self;
}

void
http_count_submitted (http_t *self, const char *job_type)
{
    const char *name = job_type? job_type: "default";
    uint64_t *count = (uint64_t *) zhashx_lookup (self->submitted, name);
    if (!count) {
        count = (uint64_t *) calloc (1, sizeof (uint64_t));
        if (!count)
            return;
        zhashx_insert (self->submitted, name, count);
    }
    (*count)++;
}

char *
http_metrics_text (http_t *self, json_t *pool, json_t *jobs)
{
    size_t size = 0;
    char *text = NULL;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    fprintf (out, "# HELP tako_http_requests_total HTTP requests answered, by status code.\n"
                  "# TYPE tako_http_requests_total counter\n");
    for (size_t i = 0; i < CODES_MAX && self->codes [i]; i++)
        fprintf (out, "tako_http_requests_total{code=\"%u\"} %" PRIu64 "\n",
                 self->codes [i], self->code_counts [i]);
    fprintf (out, "# HELP tako_http_request_duration_ms HTTP request latency in milliseconds.\n"
                  "# TYPE tako_http_request_duration_ms histogram\n");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LATENCY_BUCKETS; i++) {
        cumulative += self->latency_counts [i];
        if (i < LATENCY_BUCKETS - 1)
            fprintf (out, "tako_http_request_duration_ms_bucket{le=\"%g\"} %" PRIu64 "\n",
                     latency_bounds [i], cumulative);
        else
            fprintf (out, "tako_http_request_duration_ms_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    }
    fprintf (out, "tako_http_request_duration_ms_sum %.3f\ntako_http_request_duration_ms_count %" PRIu64 "\n",
             self->latency_sum_ms, self->latency_count);
    fprintf (out, "# HELP tako_jobs_submitted_total Jobs accepted through this server, by job type.\n"
                  "# TYPE tako_jobs_submitted_total counter\n");
    for (uint64_t *count = (uint64_t *) zhashx_first (self->submitted); count;
         count = (uint64_t *) zhashx_next (self->submitted))
        fprintf (out, "tako_jobs_submitted_total{job_type=\"%s\"} %" PRIu64 "\n",
                 (const char *) zhashx_cursor (self->submitted), *count);
    if (pool) {
        fprintf (out, "# HELP tako_queue_depth Jobs queued, not yet running.\n# TYPE tako_queue_depth gauge\n"
                      "tako_queue_depth %" JSON_INTEGER_FORMAT "\n",
                 json_integer_value (json_object_get (pool, "pending")));
        fprintf (out, "# HELP tako_jobs_running Jobs running now.\n# TYPE tako_jobs_running gauge\n"
                      "tako_jobs_running %" JSON_INTEGER_FORMAT "\n",
                 json_integer_value (json_object_get (pool, "running")));
        fprintf (out, "# HELP tako_max_workers Sandboxes the executors offer.\n# TYPE tako_max_workers gauge\n"
                      "tako_max_workers %" JSON_INTEGER_FORMAT "\n",
                 json_integer_value (json_object_get (pool, "max_workers")));
        fprintf (out, "# HELP tako_warm_sandboxes Sandboxes prepared ahead and waiting for a job.\n"
                      "# TYPE tako_warm_sandboxes gauge\ntako_warm_sandboxes %" JSON_INTEGER_FORMAT "\n",
                 json_integer_value (json_object_get (pool, "warm_ready")));
        fprintf (out, "# HELP tako_warm_memory_bytes Memory held by the waiting warm sandboxes.\n"
                      "# TYPE tako_warm_memory_bytes gauge\ntako_warm_memory_bytes %" JSON_INTEGER_FORMAT "\n",
                 json_integer_value (json_object_get (pool, "warm_memory_bytes")));
        fprintf (out, "# HELP tako_infrastructure_failures_total Attempts lost or failed by the sandbox "
                      "(not by the job's code) since the scheduler started.\n"
                      "# TYPE tako_infrastructure_failures_total counter\n"
                      "tako_infrastructure_failures_total %" JSON_INTEGER_FORMAT "\n",
                 json_integer_value (json_object_get (pool, "infrastructure_failures")));
    }
    if (json_is_array (jobs)) {
        fprintf (out, "# HELP tako_jobs Jobs recorded, by status and job type.\n# TYPE tako_jobs gauge\n");
        size_t index;
        json_t *item;
        json_array_foreach (jobs, index, item) {
            const char *status = json_string_value (json_object_get (item, "status"));
            const char *job_type = json_string_value (json_object_get (item, "job_type"));
            if (status && job_type)
                fprintf (out, "tako_jobs{status=\"%s\",job_type=\"%s\"} %" JSON_INTEGER_FORMAT "\n",
                         status, job_type, json_integer_value (json_object_get (item, "count")));
        }
    }
    fclose (out);
    return text;
}

static void
pipe_handle (http_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "PORT"))
        zstr_sendf (self->pipe, "%u", self->port);
    zstr_free (&command);
}

static int
poll_timeout (http_t *self)
{
    int64_t now = zclock_mono ();
    int64_t due = now + 1000;
    int64_t peer_due = now + tako_peer_tick_due (self->peer);
    if (peer_due < due)
        due = peer_due;
    due = waiting_due (self, due);
    MHD_UNSIGNED_LONG_LONG mhd = 0;
    if (MHD_get_timeout (self->daemon, &mhd) == MHD_YES && (int64_t) mhd < due - now)
        due = now + (int64_t) mhd;
    return due > now? (int) (due - now): 0;
}

void
tako_http_actor (zsock_t *pipe, void *args)
{
    http_t *self = http_new (pipe, (tako_actor_args_t *) args);
    zsock_signal (pipe, self? 0: 1);
    if (!self)
        return;
    tako_info (LOG, "REST API on http://%s:%u", self->config->server_host, self->port);
    while (!self->terminated) {
        zsock_t *peer_socket = tako_peer_socket (self->peer);
        zmq_pollitem_t items [] = {
            { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (peer_socket), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (tako_events_socket (self->events)), 0, ZMQ_POLLIN, 0 },
            { NULL, self->epoll_fd, ZMQ_POLLIN, 0 },
        };
        if (zmq_poll (items, 4, poll_timeout (self)) < 0 && zmq_errno () != EINTR)
            break;
        if (items [0].revents & ZMQ_POLLIN)
            pipe_handle (self);
        while (zsock_events (peer_socket) & ZMQ_POLLIN) {
            tako_msg_t *msg = tako_peer_handle_input (self->peer);
            if (msg)
                answer_handle (self, msg);
            tako_msg_destroy (&msg);
            if (tako_peer_socket (self->peer) != peer_socket)
                break;
        }
        tako_msg_t *event;
        while ((event = tako_events_recv (self->events, 0))) {
            event_handle (self, event);
            tako_msg_destroy (&event);
        }
        int64_t now = zclock_mono ();
        pending_expire (self, now);
        waiting_tick (self, now);
        mhd_run (self);
        tako_peer_tick (self->peer);
    }
    tako_info (LOG, "stopping");
    http_destroy (&self);
}

void
tako_http_test (bool verbose)
{
    (void) verbose;
    char buffer [128];
    const char *params [4];
    assert (route_match ("/jobs/{id}/artifacts/{name}", "/jobs/j1/artifacts/a.png",
                         buffer, sizeof buffer, params));
    assert (streq (params [0], "j1") && streq (params [1], "a.png"));
    assert (!route_match ("/jobs/{id}", "/jobs/j1/x", buffer, sizeof buffer, params));
    assert (!route_match ("/jobs/{id}", "/jobs/", buffer, sizeof buffer, params));
    assert (route_match ("/health", "/health", buffer, sizeof buffer, params));
    assert (!route_match ("/health", "/healthz", buffer, sizeof buffer, params));
    assert (!route_match ("/jobs/{id}/artifacts/{name}", "/jobs/j1/artifacts/a/b",
                          buffer, sizeof buffer, params));
    //  Every route's pattern is well-formed and unique per method.
    for (const http_route_t *a = http_routes; a->pattern; a++) {
        assert (a->pattern [0] == '/' && a->handler && a->summary);
        for (const http_route_t *b = a + 1; b->pattern; b++)
            assert (!(streq (a->pattern, b->pattern) && streq (a->method, b->method)));
    }
}
