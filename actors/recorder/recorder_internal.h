/*  recorder_internal — what tako_recorder.c and recorder_queries.c share.
    Not API.                                                              */

#ifndef RECORDER_INTERNAL_H_INCLUDED
#define RECORDER_INTERNAL_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include "tako_recorder.h"
#include "tako_artbuf.h"
#include "tako_store.h"

//  Longest reason we put in a REPLY.
#define RECORDER_REASON_SIZE 160

typedef struct {
    zsock_t *pipe;
    tako_config_t *config;          //  borrowed
    tako_peer_t *peer;
    zsock_t *peer_socket;           //  as last added to the poller
    zpoller_t *poller;
    tako_store_t *store;
    tako_artbuf_t *artifacts;       //  ARTIFACT bytes awaiting job.finish
    bool connected;                 //  connected, schema migrated, session set up
    int64_t next_connect;           //  monotonic ms of the next connect attempt
    int64_t next_cleanup;           //  monotonic ms of the next TTL cleanup
    int64_t next_expire;            //  monotonic ms of the next artifact expiry
    bool terminated;
} recorder_t;

//  The answer to one QUERY, built by a query handler.
typedef struct {
    int code;
    json_t *result;                 //  owned; NULL = none
    char reason [RECORDER_REASON_SIZE];
    void *data;                     //  owned; bytes for the REPLY's data field
    size_t size;
} recorder_reply_t;

//  Answer one query (the store must be connected); fills *reply.
void recorder_query (recorder_t *self, const char *query, json_t *params,
                     recorder_reply_t *reply);

//  The store connection was found lost: answer 503 until it is back.
void recorder_disconnected (recorder_t *self);

#endif
