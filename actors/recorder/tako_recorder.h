/*  tako_recorder — the recorder actor: the only owner of the database.

    It registers with the service broker as service "recorder" and answers
    QUERY {request_id, query, params} with REPLY {request_id, code, result,
    reason[, data]}; every query maps to one tako_store operation (see
    docs/protocol.md, "Recorder queries"). Codes: 200 ok, 400 bad params,
    404 not found, 409 the store's outcome is conflict/stale/duplicate (or
    "artifacts missing"), 503 "database unavailable" — the caller retries.

    ARTIFACT messages carry an attempt's artifact bytes ahead of its
    job.finish; the recorder buffers them in memory (bounded in bytes and
    age) and stores them with the finish. While the database is down it
    answers 503 and reconnects with backoff; it migrates at start and runs
    the execution-record TTL cleanup once at start and then hourly.

        tako_actor_args_t args = { .config = config, .database_url = url };
        zactor_t *recorder = zactor_new (tako_recorder_actor, &args);
        ...
        zactor_destroy (&recorder);                                        */

#ifndef TAKO_RECORDER_H_INCLUDED
#define TAKO_RECORDER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "tako_actor.h"

//  Most artifact bytes buffered while waiting for their job.finish.
#define TAKO_RECORDER_ARTIFACT_BUFFER_MAX  (256 * 1024 * 1024)
//  A buffered artifact no job.finish claimed is dropped after this long.
#define TAKO_RECORDER_ARTIFACT_MAX_AGE_MS  (10 * 60 * 1000)
//  How often the execution-record TTL cleanup runs.
#define TAKO_RECORDER_CLEANUP_EVERY_MS     (60 * 60 * 1000)
//  libpq connect timeout, seconds: a dead database must fail fast.
#define TAKO_RECORDER_CONNECT_TIMEOUT_S    2
//  Longest one statement may run before the database aborts it.
#define TAKO_RECORDER_STATEMENT_TIMEOUT_MS 5000

//  The actor; args is a tako_actor_args_t. Signals its pipe 0 once
//  registered (the database may still be down: it then answers 503), 1 if
//  it could not start. Pipe commands: $TERM; "INSTANCE" → its instance id;
//  "STATS" → connected (int 0/1), buffered artifacts (int), buffered
//  bytes (int).
void tako_recorder_actor (zsock_t *pipe, void *args);

void tako_recorder_test (bool verbose);

#endif
