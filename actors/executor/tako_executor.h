/*  tako_executor — the executor actor: runs dispatched jobs in sandboxes.

    It registers with the service broker as service "executor" and offers
    `slots` concurrent sandboxes as credits:

        executor  -> scheduler   READY {instance, slots}      on start, when a
                                                              slot frees, and
                                                              every few beats
        scheduler -> executor    DISPATCH {job_id, attempt, lease_id, ...}
        executor  -> dispatcher  ACCEPT {job_id, attempt, lease_id}
                                 (or ERROR 503 when no slot is free)
        executor  -> scheduler   JOB_HEARTBEAT ... every lease_ms / 3
        scheduler -> executor    CANCEL {job_id}: the job's tree dies at once
        executor  -> scheduler   ARTIFACT ... then RESULT {job_id, attempt, ...}
        scheduler -> executor    RESULT_ACK {job_id, attempt}

    A result is kept and sent again every TAKO_EXECUTOR_RESEND_MS until the
    scheduler acknowledges it, so a scheduler or broker restart loses no
    result; the scheduler records results idempotently per (job_id,
    attempt), so a duplicate changes nothing. Each job runs in its own
    thread (a sandbox run blocks); a job's failure never takes the
    executor down.

        tako_executor_args_t args = { .config = config };
        zactor_t *executor = zactor_new (tako_executor_actor, &args);
        ...
        zactor_destroy (&executor);     //  cancels running jobs            */

#ifndef TAKO_EXECUTOR_H_INCLUDED
#define TAKO_EXECUTOR_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "tako_config.h"
#include "tako_peer.h"
#include "tako_sandbox.h"

//  A result not yet acknowledged is sent again this often.
#define TAKO_EXECUTOR_RESEND_MS       2000
//  READY is repeated this often even when nothing changed, so a scheduler
//  that restarted learns our credits.
#define TAKO_EXECUTOR_READY_EVERY_MS  3000
//  Bounds on a DISPATCH's lease.
#define TAKO_EXECUTOR_LEASE_MIN_MS    300
#define TAKO_EXECUTOR_LEASE_MAX_MS    600000
//  Most output events one job publishes while it runs.
#define TAKO_EXECUTOR_OUTPUT_EVENTS_MAX 1000
//  Most jobs one executor runs at once.
#define TAKO_EXECUTOR_SLOTS_MAX       256
//  At stop, how long a cancelled job's worker may take to give it back.
#define TAKO_EXECUTOR_STOP_WAIT_MS    10000

typedef struct {
    tako_config_t *config;          //  borrowed; outlives the actor
    const char *endpoint;           //  broker; NULL = config->broker_endpoint
    tako_heartbeat_t heartbeat;     //  zero = defaults
    int slots;                      //  0 = config->max_workers
    int slot_base;                  //  sandbox uid slots slot_base .. +slots-1
    const char *result_service;     //  NULL = "scheduler"
} tako_executor_args_t;

//  The actor. Pipe commands: $TERM; "INSTANCE" → its instance id;
//  "STATS" → running (int), free slots (int), unacked results (int).
void tako_executor_actor (zsock_t *pipe, void *args);

//  Fill a sandbox spec from the configuration and a job type. The job
//  type's environment goes into *env_p (caller frees; its strings are
//  borrowed from job_type). 0, or -1 when out of memory.
int tako_executor_spec_from_config (tako_sandbox_spec_t *spec, const tako_config_t *config,
                                    const tako_config_job_type_t *job_type,
                                    tako_sandbox_env_t **env_p);

void tako_executor_test (bool verbose);

#endif
