/*  tako_httpauth — API keys and rate limit. See the header.  */

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include "tako_httpauth.h"
#include "tako_sha256.h"

#define HASH_PREFIX     "sha256:"
#define HEX_SIZE        65

typedef struct {
    int64_t window;             //  now_s / window_s of the counted requests
    int count;
} client_t;

struct _tako_httpauth_t {
    char (*hashes) [HEX_SIZE];  //  configured keys, hex without the prefix
    size_t hash_count;
    bool limit_enabled;
    int limit_requests;
    int limit_window_s;
    zhashx_t *clients;          //  address → client_t *
};

tako_httpauth_t *
tako_httpauth_new (const tako_config_t *config)
{
    assert (config);
    tako_httpauth_t *self = calloc (1, sizeof (tako_httpauth_t));
    if (!self)
        return NULL;
    self->hashes = calloc (config->api_keys.count + 1, HEX_SIZE);
    self->clients = zhashx_new ();
    if (!self->hashes || !self->clients) {
        tako_httpauth_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->clients, (zhashx_destructor_fn *) zstr_free);
    for (size_t i = 0; i < config->api_keys.count; i++) {
        const char *hash = config->api_keys.items [i];
        if (strncmp (hash, HASH_PREFIX, strlen (HASH_PREFIX)) == 0
        &&  strlen (hash + strlen (HASH_PREFIX)) == HEX_SIZE - 1)
            memcpy (self->hashes [self->hash_count++], hash + strlen (HASH_PREFIX), HEX_SIZE);
    }
    self->limit_enabled = config->api_rate_limit_enabled;
    self->limit_requests = config->api_rate_limit_requests;
    self->limit_window_s = config->api_rate_limit_window_seconds > 0
                         ? config->api_rate_limit_window_seconds: 1;
    return self;
}

void
tako_httpauth_destroy (tako_httpauth_t **self_p)
{
    tako_httpauth_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->clients);
    free (self->hashes);
    free (self);
    *self_p = NULL;
}

bool
tako_httpauth_required (tako_httpauth_t *self)
{
    return self->hash_count > 0;
}

bool
tako_httpauth_key_ok (tako_httpauth_t *self, const char *key)
{
    if (self->hash_count == 0)
        return true;
    if (!key || !*key)
        return false;
    char *hex = tako_sha256_hex (key, strlen (key));
    if (!hex)
        return false;
    //  Every hash is compared in full, whatever matched before.
    unsigned matched = 0;
    for (size_t i = 0; i < self->hash_count; i++) {
        unsigned difference = 0;
        for (size_t j = 0; j < HEX_SIZE - 1; j++)
            difference |= (unsigned) (hex [j] ^ self->hashes [i][j]);
        matched |= difference == 0;
    }
    free (hex);
    return matched != 0;
}

//  Forget clients whose window has passed (called when the table is full).
static void
clients_sweep (tako_httpauth_t *self, int64_t window)
{
    zlistx_t *stale = zlistx_new ();
    if (!stale)
        return;
    for (client_t *client = (client_t *) zhashx_first (self->clients); client;
         client = (client_t *) zhashx_next (self->clients))
        if (client->window != window)
            zlistx_add_end (stale, (void *) zhashx_cursor (self->clients));
    for (const char *key = (const char *) zlistx_first (stale); key;
         key = (const char *) zlistx_next (stale))
        zhashx_delete (self->clients, key);
    zlistx_destroy (&stale);
}

bool
tako_httpauth_admit (tako_httpauth_t *self, const char *client_address, int64_t now_s,
                     int *retry_after_s)
{
    if (!self->limit_enabled)
        return true;
    int64_t window = now_s / self->limit_window_s;
    const char *key = client_address? client_address: "";
    client_t *client = (client_t *) zhashx_lookup (self->clients, key);
    if (!client) {
        if (zhashx_size (self->clients) >= TAKO_HTTPAUTH_CLIENTS_MAX)
            clients_sweep (self, window);
        if (zhashx_size (self->clients) >= TAKO_HTTPAUTH_CLIENTS_MAX) {
            *retry_after_s = self->limit_window_s;
            return false;
        }
        client = (client_t *) calloc (1, sizeof (client_t));
        if (!client)
            return true;
        client->window = window;
        zhashx_insert (self->clients, key, client);
    }
    if (client->window != window) {
        client->window = window;
        client->count = 0;
    }
    if (client->count >= self->limit_requests) {
        *retry_after_s = (int) ((window + 1) * self->limit_window_s - now_s);
        if (*retry_after_s < 1)
            *retry_after_s = 1;
        return false;
    }
    client->count++;
    return true;
}

void
tako_httpauth_test (bool verbose)
{
    (void) verbose;
    tako_config_t *config = tako_config_new ();
    assert (config);
    tako_httpauth_t *auth = tako_httpauth_new (config);
    assert (auth && !tako_httpauth_required (auth) && tako_httpauth_key_ok (auth, NULL));
    tako_httpauth_destroy (&auth);

    //  sha256 ("secret")
    char *items [] = { "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", NULL };
    tako_config_list_t saved = config->api_keys;
    config->api_keys = (tako_config_list_t) { 1, items };
    config->api_rate_limit_requests = 3;
    config->api_rate_limit_window_seconds = 60;
    auth = tako_httpauth_new (config);
    config->api_keys = saved;
    assert (auth && tako_httpauth_required (auth));
    assert (tako_httpauth_key_ok (auth, "secret"));
    assert (!tako_httpauth_key_ok (auth, "Secret") && !tako_httpauth_key_ok (auth, NULL)
         && !tako_httpauth_key_ok (auth, ""));

    int retry = 0;
    for (int i = 0; i < 3; i++)
        assert (tako_httpauth_admit (auth, "10.0.0.1", 120, &retry));
    assert (!tako_httpauth_admit (auth, "10.0.0.1", 130, &retry) && retry == 50);
    assert (tako_httpauth_admit (auth, "10.0.0.2", 130, &retry));
    assert (tako_httpauth_admit (auth, "10.0.0.1", 180, &retry));     //  next window
    tako_httpauth_destroy (&auth);
    assert (auth == NULL);
    tako_config_destroy (&config);
}
