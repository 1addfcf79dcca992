/*  tako_httpauth — who may ask: API keys and the per-client rate limit.

    Keys: the configuration holds only "sha256:<hex>" hashes (plain keys
    in the file are hashed at load). A request presents its key as
    `Authorization: Bearer KEY` or `X-API-Key: KEY`; its sha256 is compared
    with every configured hash in constant time (no early exit, no
    length-dependent branch on the secret). No keys configured = open.

    Rate limit: a fixed window per client address — at most `requests` in
    each `window_s` seconds; a refused request learns how many seconds
    until the window turns (Retry-After). Windows of addresses not seen
    for a while are forgotten so the table stays small.

        tako_httpauth_t *auth = tako_httpauth_new (config);
        if (!tako_httpauth_key_ok (auth, bearer_or_x_api_key))  → 401
        int retry_after;
        if (!tako_httpauth_admit (auth, "127.0.0.1", now_s, &retry_after)) → 429
        tako_httpauth_destroy (&auth);                                     */

#ifndef TAKO_HTTPAUTH_H_INCLUDED
#define TAKO_HTTPAUTH_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include "tako_config.h"

//  Most client addresses remembered; beyond it, stale windows go first.
#define TAKO_HTTPAUTH_CLIENTS_MAX   65536

typedef struct _tako_httpauth_t tako_httpauth_t;

tako_httpauth_t *tako_httpauth_new (const tako_config_t *config);
void tako_httpauth_destroy (tako_httpauth_t **self_p);

//  True when keys are configured (every endpoint but /health needs one).
bool tako_httpauth_required (tako_httpauth_t *self);

//  True when key (may be NULL) hashes to a configured key, or none is
//  configured.
bool tako_httpauth_key_ok (tako_httpauth_t *self, const char *key);

//  Count a request from client at now_s (seconds); true when admitted.
//  When refused, *retry_after_s is the wait until the next window.
bool tako_httpauth_admit (tako_httpauth_t *self, const char *client, int64_t now_s,
                          int *retry_after_s);

void tako_httpauth_test (bool verbose);

#endif
