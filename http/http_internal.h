/*  http_internal — what the ingress actor (tako_http.c) and its route
    handlers (http_routes.c) share. Not a public API.

    One thread owns libmicrohttpd, the broker connection and the event
    subscription. A request that needs another service sends one message
    through the broker and suspends its connection; the answer (or the
    deadline) resumes it with a response ready, which the access handler
    queues on its next call. A connection never has more than one message
    outstanding: a handler continues in `step` with the answer.          */

#ifndef HTTP_INTERNAL_H_INCLUDED
#define HTTP_INTERNAL_H_INCLUDED

#include <microhttpd.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>
#include "tako_config.h"
#include "tako_httpauth.h"
#include "tako_httpreq.h"
#include "tako_msg.h"
#include "tako_peer.h"
#include "tako_events.h"

//  How long one question to another service may take.
#define HTTP_SERVICE_WAIT_MS        5000
//  A waiting job is asked about this often at first, doubling to the max;
//  its events make the next question immediate.
#define HTTP_JOB_POLL_FIRST_MS      100
#define HTTP_JOB_POLL_MAX_MS        2000
//  Sync executes wait for the job's timeouts plus this for the queue.
#define HTTP_EXECUTE_QUEUE_MS       (10 * 60 * 1000)
//  GET /jobs/{id}/result?wait=true: default and longest wait, seconds.
#define HTTP_RESULT_WAIT_DEFAULT_S  30
#define HTTP_RESULT_WAIT_MAX_S      3600
//  Server-sent events: heartbeat comment, and the longest stream.
#define HTTP_SSE_HEARTBEAT_MS       15000
#define HTTP_SSE_MAX_MS             (60 * 60 * 1000)
//  Connections per client address, and in all.
#define HTTP_CONNECTIONS_PER_IP     64
#define HTTP_CONNECTIONS_MAX        1024
//  Idle keep-alive connections are closed after this many seconds.
#define HTTP_IDLE_TIMEOUT_S         60

typedef struct _http_t http_t;
typedef struct _http_conn_t http_conn_t;

//  A handler's continuation: called with the answer to its message
//  (REPLY, ACCEPTED or ERROR), or with NULL when none came in time.
typedef void (http_step_fn) (http_conn_t *conn, tako_msg_t *answer);

struct _http_conn_t {
    http_t *server;
    struct MHD_Connection *connection;
    char method [8];
    char *path;                     //  as received (MHD has unescaped it)
    char *body;                     //  request body, NUL-terminated
    size_t body_size;
    bool body_too_large;
    bool routed;                    //  the handler ran
    bool suspended;
    char correlation_id [TAKO_HTTPREQ_CORRELATION_MAX + 1];
    char client_ip [64];
    int64_t started_ms;             //  monotonic, for the latency histogram
    //  The response, once known; queued on the handler's next call.
    struct MHD_Response *response;
    unsigned int status;
    //  One outstanding message.
    char request_id [40];
    int64_t deadline;               //  monotonic ms; 0 = none
    http_step_fn *step;
    //  Handler state.
    char job_id [TAKO_HTTPREQ_ID_MAX + 1];
    char name [TAKO_HTTPREQ_NAME_MAX + 1];
    bool full_view;
    bool head;
    bool sync_shape;                //  POST /execute: answer the sync shape
    int64_t wait_until;             //  waiting for a job to end; 0 = not
    http_step_fn *wait_step;        //  called when it ended or the wait ran out
    int64_t next_poll;
    bool event_seen;                //  an event came while a poll was out
    int64_t poll_ms;
    json_t *context;                //  handler-owned
    //  Server-sent events.
    bool sse;
    zchunk_t *sse_buffer;           //  bytes not yet given to MHD
    bool sse_done;                  //  the final event is in the buffer
    int64_t sse_next_beat;
    int64_t sse_seq;                //  last event seq sent
};

//  Route handlers: one per (method, pattern).
typedef void (http_handler_fn) (http_conn_t *conn, const char *const *params);

typedef struct {
    const char *method;             //  "GET", "POST", "DELETE"; GET also serves HEAD
    const char *pattern;            //  "/jobs/{id}/artifacts/{name}"
    http_handler_fn *handler;
    bool open;                      //  no API key needed (only /health)
    bool unlimited;                 //  not counted by the rate limit
    const char *summary;            //  for /openapi.json
} http_route_t;

//  The route table (http_routes.c), NULL-terminated by pattern.
extern const http_route_t http_routes [];

//  --- tako_http.c services for handlers ---------------------------------

tako_config_t *http_config (http_t *self);

//  Respond with JSON (taken) / with {"detail": detail} / with bytes.
void http_respond_json (http_conn_t *conn, unsigned int status, json_t *body);
void http_respond_detail (http_conn_t *conn, unsigned int status, const char *detail);
void http_respond_bytes (http_conn_t *conn, unsigned int status, const char *content_type,
                         const void *data, size_t size);
//  Add a header to the response already set.
void http_response_header (http_conn_t *conn, const char *name, const char *value);

//  Send msg (taken; address = service) with a fresh request_id; step gets
//  the answer. On a send failure step runs at once with NULL.
void http_ask (http_conn_t *conn, tako_msg_t *msg, http_step_fn *step);
//  QUERY service for query with params (taken, may be NULL).
void http_query (http_conn_t *conn, const char *service, const char *query, json_t *params,
                 http_step_fn *step);

//  Wait for job conn->job_id to end (or until deadline_ms, monotonic):
//  step is then called with the recorder's REPLY to job.get, or NULL when
//  the wait ran out.
void http_wait_job (http_conn_t *conn, int64_t deadline_ms, http_step_fn *step);

//  Start a server-sent event stream for conn->job_id.
void http_sse_start (http_conn_t *conn);

//  An answer's code (REPLY/ERROR code, ACCEPTED = 200), 0 when NULL.
int http_answer_code (tako_msg_t *answer);

//  Respond to a failed answer: 503 when none came, else its code and reason.
void http_respond_failure (http_conn_t *conn, tako_msg_t *answer, const char *service);

//  Count a job accepted through this server (metrics).
void http_count_submitted (http_t *self, const char *job_type);

//  Metrics text (Prometheus) of this server, a new string.
//  pool_stats: the scheduler's pool.stats; jobs: the recorder's job.stats
//  items; either may be NULL.
char *http_metrics_text (http_t *self, json_t *pool_stats, json_t *jobs);

#endif
