/*  tako_scheduler — the scheduler actor: the job state machine.

    It registers with the service broker as service "scheduler" and owns
    the queue, the leases and the retries. It holds no database: every
    transition is a QUERY to the recorder, and nothing is told to a client
    before the recorder has committed it.

        client    -> scheduler  SUBMIT       validated, job.insert, then ACCEPTED
        executor  -> scheduler  READY        credits; queued jobs are DISPATCHed
        executor  -> scheduler  ACCEPT       job.start, EVENT started
        executor  -> scheduler  JOB_HEARTBEAT   renews the lease
        executor  -> scheduler  ARTIFACT, RESULT   forwarded, job.finish, RESULT_ACK
        client    -> scheduler  CANCEL       REPLY 200 / 404 / 409
        client    -> scheduler  QUERY        job.rerun, job.fork, job.position,
                                             pool.stats, health

    A lease not renewed in time (executor lost) or a RESULT marked
    retryable (sandbox set-up failed) is an infrastructure failure: the
    job is requeued with attempt + 1 after retry_base_delay * 2^(attempt-1)
    seconds, up to max_retry_attempts retries, then dead-lettered (dlq
    entry, job failed). A failure of the user's code is final. Every
    transition is published on the event hub with a per-job sequence
    number. On start the scheduler rebuilds its state from the recorder's
    unfinished jobs: queued ones queue again in order, running ones get a
    grace lease their executor can renew.

    The lease length is derived from the heartbeat interval (there is no
    configuration option for it): TAKO_SCHEDULER_LEASE_BEATS intervals,
    at least TAKO_SCHEDULER_LEASE_MIN_MS.

        tako_actor_args_t args = { .config = config };
        zactor_t *scheduler = zactor_new (tako_scheduler_actor, &args);
        ...
        zactor_destroy (&scheduler);                                       */

#ifndef TAKO_SCHEDULER_H_INCLUDED
#define TAKO_SCHEDULER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "tako_actor.h"

//  A lease lasts this many heartbeat intervals, and at least this long.
#define TAKO_SCHEDULER_LEASE_BEATS        10
#define TAKO_SCHEDULER_LEASE_MIN_MS       1000
//  A request to the recorder not answered within this long is sent again
//  (state changes) or failed (a client's request).
#define TAKO_SCHEDULER_REQUEST_TIMEOUT_MS 5000
//  Circuit breaker: open after this many consecutive infrastructure
//  failures, for this long.
#define TAKO_SCHEDULER_BREAKER_FAILURES   5
#define TAKO_SCHEDULER_BREAKER_OPEN_MS    30000

//  The actor; args is a tako_actor_args_t. Signals its pipe 0 once
//  registered, 1 if it could not start. Pipe commands: $TERM;
//  "INSTANCE" → its instance id; "STATS" → queued (int), running (int),
//  executors (int), recovered (int 0/1).
void tako_scheduler_actor (zsock_t *pipe, void *args);

//  Check a SUBMIT (or the code of a fork) against the configuration.
//  input_data, job_type and requirements may be NULL; timeout and
//  startup_timeout are INT64_MIN when absent (the job type's then apply).
//  0 with *timeout_out and *startup_timeout_out set to the effective
//  values, or -1 with a short client-safe reason. Pure; exposed for tests.
int tako_scheduler_validate (tako_config_t *config, const char *code, json_t *input_data,
                             const char *job_type, int64_t timeout, int64_t startup_timeout,
                             json_t *requirements, int *timeout_out, int *startup_timeout_out,
                             char *reason, size_t reason_size);

//  The idempotency fingerprint of a job's payload: sha256 hex of the
//  canonical JSON of code, input, job type, timeouts, requirements and
//  job_ref. A new string, or NULL.
char *tako_scheduler_fingerprint (json_t *job);

//  Milliseconds to wait before running `attempt` (2, 3, ...) after an
//  infrastructure failure: retry_base_delay * 2^(attempt-2) seconds,
//  capped at one hour.
int64_t tako_scheduler_backoff_ms (double retry_base_delay, int attempt);

//  The lease length for this heartbeat interval (<= 0: the default).
int64_t tako_scheduler_lease_ms (int heartbeat_interval_ms);

void tako_scheduler_test (bool verbose);

#endif
