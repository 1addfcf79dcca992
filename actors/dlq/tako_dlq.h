/*  tako_dlq — the dead-letter-queue actor.

    It registers as service "dlq" and answers QUERY {request_id, query,
    params} with REPLY {request_id, code, result, reason}:

        dlq.list    {error_type?, limit?, offset?} → {items, limit, offset, has_more, count}
        dlq.stats   {}                             → the store's statistics
        dlq.remove  {entry_id}                     → {removed}
        dlq.requeue {entry_id}                     → {job_id, status}

    It holds no database connection: each query is forwarded to the
    recorder, and dlq.requeue reads the entry there, SUBMITs its job_data
    to the scheduler as a new job, and removes the entry once ACCEPTED.
    A recorder or scheduler that does not answer in time gives 503.

        tako_actor_args_t args = { .config = config };
        zactor_t *dlq = zactor_new (tako_dlq_actor, &args);
        ...
        zactor_destroy (&dlq);                                             */

#ifndef TAKO_DLQ_H_INCLUDED
#define TAKO_DLQ_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "tako_actor.h"

//  How long the DLQ waits for the recorder or the scheduler.
#define TAKO_DLQ_UPSTREAM_TIMEOUT_MS  5000
//  Most client queries in flight at once.
#define TAKO_DLQ_PENDING_MAX          1024

//  The actor; args is a tako_actor_args_t. Signals its pipe 0 once
//  started, 1 if it could not. Pipe commands: $TERM; "INSTANCE" → its
//  instance id.
void tako_dlq_actor (zsock_t *pipe, void *args);

void tako_dlq_test (bool verbose);

#endif
