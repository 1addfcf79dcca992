/*  scheduler_internal — what the scheduler's files share (private).

    tako_scheduler.c      the actor: loop, pipe, timers, events, self-test
    scheduler_requests.c  QUERYs to the recorder and their continuations
    scheduler_submit.c    SUBMIT: validation, fingerprint, job.insert
    scheduler_dispatch.c  executors, credits, DISPATCH, leases, retries, DLQ
    scheduler_results.c   ARTIFACT and RESULT: job.finish, RESULT_ACK
    scheduler_control.c   CANCEL and the client QUERYs; start-up recovery  */

#ifndef SCHEDULER_INTERNAL_H_INCLUDED
#define SCHEDULER_INTERNAL_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include "tako_scheduler.h"
#include "tako_breaker.h"
#include "tako_events.h"
#include "tako_jobqueue.h"
#include "tako_log.h"
#include "tako_msg.h"
#include "tako_peer.h"

#define LOG "scheduler"

//  Request ids "s-<n>" and lease ids "<instance>-<n>".
#define SCHEDULER_ID_MAX            64
//  A state change the recorder refused with 503 is sent again after
//  this long, doubling up to the cap.
#define SCHEDULER_RESEND_FIRST_MS   200
#define SCHEDULER_RESEND_MAX_MS     5000
//  A job.insert whose client was already told 503 (timeout) is still
//  awaited this long: if it committed after all, the job runs.
#define SCHEDULER_LATE_INSERT_MS    (10 * 60 * 1000)
//  How often the timers (leases, backoffs, request deadlines) are checked.
#define SCHEDULER_TICK_MS           50
//  An executor not heard from (READY) for this long is forgotten.
#define SCHEDULER_EXECUTOR_STALE_MS 15000
//  A running job found at start keeps its lease this much longer than
//  two leases: time for its executor to beat or send its RESULT again.
#define SCHEDULER_RECOVERY_GRACE_MS 3000

typedef enum {
    JOB_QUEUED,         //  in the queue
    JOB_BACKOFF,        //  requeued after a failure; queues at retry_at
    JOB_DISPATCHED,     //  DISPATCH sent, no ACCEPT yet (the record is still queued)
    JOB_RUNNING,        //  accepted (job.start sent); lease renewed by heartbeats
    JOB_FINISHING,      //  job.finish of a RESULT in flight
    JOB_RETRYING        //  job.requeue or the dead-lettering in flight
} job_state_t;

typedef struct {
    char *job_id;
    job_state_t state;
    int attempt;
    int priority;
    int64_t seq;                //  sequence number of the last event published
    json_t *payload;            //  code, input_data, job_type, ...; NULL until loaded
    bool payload_loading;
    char *executor;             //  instance running (or dispatched) the attempt
    char lease_id [SCHEDULER_ID_MAX];
    int64_t lease_expires;      //  monotonic ms
    int64_t next_renew;         //  monotonic ms: job.renew not before
    int64_t retry_at;           //  JOB_BACKOFF: monotonic ms
    bool cancelled;             //  cancel recorded: finish, never retry
    bool started;               //  job.start recorded for this attempt
} job_t;

typedef struct {
    char *instance;
    int credits;                //  free slots as of its last READY, minus our dispatches
    int64_t last_seen;
    int64_t warm_ready;         //  its warm sandboxes waiting, as of its last READY
    int64_t warm_memory_bytes;
} executor_t;

typedef struct _scheduler_t scheduler_t;
typedef struct _request_t request_t;

//  Called once per request with the recorder's answer: code 200..., the
//  REPLY's result (borrowed, may be NULL) and reason (may be NULL). A
//  broker ERROR or a timeout comes as 503.
typedef void (request_fn) (scheduler_t *self, request_t *request, int code,
                           json_t *result, const char *reason);

struct _request_t {
    char request_id [SCHEDULER_ID_MAX];
    char *query;
    json_t *params;
    char *address;              //  where it went: "recorder" or an instance
    request_fn *on_reply;
    bool persistent;            //  a state change: resend until answered
    int64_t deadline;           //  monotonic ms
    int64_t resend_at;          //  persistent and refused: send again then (0 = not waiting)
    int resend_delay_ms;
    int64_t late_ms;            //  not persistent: after a timeout, still await the answer this long
    bool late;                  //  timed out once already
    //  Context for the continuation.
    char *job_id;
    int attempt;
    char *client;               //  who to answer; NULL once answered
    char *client_request_id;
    bool client_query;          //  the client asked with QUERY (answer REPLY), not SUBMIT
    json_t *context;            //  anything else (e.g. the RESULT to finish)
};

struct _scheduler_t {
    zsock_t *pipe;
    tako_config_t *config;
    tako_peer_t *peer;
    zsock_t *peer_socket;
    zpoller_t *poller;
    tako_events_t *events;
    tako_jobqueue_t *queue;
    tako_breaker_t *breaker;
    int64_t infra_failures;     //  attempts failed by infrastructure, since start
    zhashx_t *jobs;             //  job_id → job_t *: every job not yet terminal
    zhashx_t *executors;        //  instance → executor_t *
    zhashx_t *requests;         //  request_id → request_t *
    char *recorder;             //  recorder instance of the latest REPLY, or NULL
    int64_t lease_ms;
    uint64_t next_id;
    int inserts_pending;        //  job.inserts in flight (count against the queue bound)
    bool recovered;             //  job.unfinished answered
    int64_t recover_at;         //  ask for job.unfinished (again) then; 0 = asked
    bool terminated;
};

//  tako_scheduler.c
int64_t scheduler_now (void);
void scheduler_send (scheduler_t *self, tako_msg_t *msg, const char *to);
void scheduler_next_id (scheduler_t *self, const char *prefix, char *buffer);
void scheduler_publish (scheduler_t *self, job_t *job, const char *status, const char *kind,
                        json_t *data);
void scheduler_publish_finished (scheduler_t *self, job_t *job, const char *status,
                                 json_t *data, const json_t *record);
job_t *scheduler_job_new (scheduler_t *self, const char *job_id, int attempt, int priority,
                          int64_t seq);
void scheduler_job_forget (scheduler_t *self, job_t *job);
void scheduler_reply (scheduler_t *self, const char *client, const char *request_id,
                      int code, json_t *result, const char *reason);
void scheduler_error (scheduler_t *self, const char *client, const char *request_id,
                      int code, const char *reason, const char *job_id);

//  scheduler_requests.c
request_t *scheduler_request (scheduler_t *self, const char *query, json_t *params,
                              request_fn *on_reply, bool persistent);
void scheduler_request_set_client (request_t *request, const char *client,
                                   const char *client_request_id);
void scheduler_request_reply (scheduler_t *self, tako_msg_t *reply);
void scheduler_request_error (scheduler_t *self, tako_msg_t *error);
void scheduler_requests_tick (scheduler_t *self, int64_t now);
void scheduler_request_destroy (request_t **self_p);

//  scheduler_submit.c
void scheduler_handle_submit (scheduler_t *self, tako_msg_t *msg);
void scheduler_insert (scheduler_t *self, json_t *job, const char *client,
                       const char *client_request_id, bool client_query);
//  Set job's job_ref (see scheduler_submit.c). 0, or -1 with *error.
int scheduler_job_pin (scheduler_t *self, json_t *job, char **error);
json_t *scheduler_job_derived (scheduler_t *self, json_t *payload, const char *parent_id,
                               const char *code, const char *relationship);
bool scheduler_queue_full (scheduler_t *self);

//  scheduler_dispatch.c
void scheduler_handle_ready (scheduler_t *self, tako_msg_t *msg);
void scheduler_handle_accept (scheduler_t *self, tako_msg_t *msg);
void scheduler_handle_job_heartbeat (scheduler_t *self, tako_msg_t *msg);
void scheduler_handle_executor_error (scheduler_t *self, tako_msg_t *msg);
void scheduler_dispatch (scheduler_t *self);
void scheduler_leases_tick (scheduler_t *self, int64_t now);
void scheduler_job_start (scheduler_t *self, job_t *job, const char *executor,
                          const char *lease_id);
void scheduler_infra_failure (scheduler_t *self, job_t *job, const char *error_type,
                              const char *message, const char *phase, const char *ack_to);
void scheduler_cancel_executor (scheduler_t *self, const char *executor, const char *job_id,
                                int attempt);
void scheduler_executor_destroy (executor_t **self_p);
int scheduler_capacity (scheduler_t *self);
int scheduler_running (scheduler_t *self);
bool scheduler_job_on_executor (job_t *job);

//  scheduler_results.c
void scheduler_handle_artifact (scheduler_t *self, tako_msg_t *msg);
void scheduler_handle_result (scheduler_t *self, tako_msg_t *msg);
void scheduler_ack (scheduler_t *self, const char *executor, const char *job_id, int attempt);

//  scheduler_control.c
void scheduler_handle_cancel (scheduler_t *self, tako_msg_t *msg);
void scheduler_handle_query (scheduler_t *self, tako_msg_t *msg);
void scheduler_recover_tick (scheduler_t *self, int64_t now);

#endif
