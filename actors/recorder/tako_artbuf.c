/*  tako_artbuf — artifact bytes waiting for their job.finish. See the header.

    Entries live in a hash keyed "<length of job_id>:<job_id>#<attempt>#<name>":
    the length prefix keeps the key unambiguous whatever characters the
    job id holds. The buffer holds few entries (one attempt's files, for
    the few attempts finishing at once), so finding the oldest is a scan. */

#include <czmq.h>
#include <inttypes.h>
#include "tako_artbuf.h"

typedef struct {
    tako_artbuf_entry_t public;     //  what tako_artbuf_get hands out
    char *job_id;
    int64_t attempt;
    char *name;
    char *content_type;
    void *data;
} entry_t;

struct _tako_artbuf_t {
    zhashx_t *entries;              //  key → entry_t *
    size_t max_bytes;
    int64_t max_age_ms;
    size_t bytes;
};

static void
entry_destroy (entry_t **self_p)
{
    entry_t *self = *self_p;
    if (!self)
        return;
    free (self->job_id);
    free (self->name);
    free (self->content_type);
    free (self->data);
    free (self);
    *self_p = NULL;
}

static entry_t *
entry_new (const char *job_id, int64_t attempt, const char *name,
           const char *content_type, const void *data, size_t size, int64_t now_ms)
{
    entry_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->job_id = strdup (job_id);
    self->attempt = attempt;
    self->name = strdup (name);
    self->content_type = content_type? strdup (content_type): NULL;
    //  malloc (0) may return NULL; one spare byte keeps "no memory" clear.
    self->data = malloc (size + 1);
    if (!self->job_id || !self->name || (content_type && !self->content_type) || !self->data) {
        entry_destroy (&self);
        return NULL;
    }
    if (size)
        memcpy (self->data, data, size);
    self->public = (tako_artbuf_entry_t) {
        .name = self->name, .content_type = self->content_type,
        .data = self->data, .size = size, .received_ms = now_ms
    };
    return self;
}

//  The hash key of (job_id, attempt, name); caller frees.
static char *
entry_key (const char *job_id, int64_t attempt, const char *name)
{
    return zsys_sprintf ("%zu:%s#%" PRId64 "#%s", strlen (job_id), job_id, attempt, name);
}

tako_artbuf_t *
tako_artbuf_new (size_t max_bytes, int64_t max_age_ms)
{
    tako_artbuf_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->entries = zhashx_new ();
    if (!self->entries) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->entries, (zhashx_destructor_fn *) entry_destroy);
    self->max_bytes = max_bytes;
    self->max_age_ms = max_age_ms;
    return self;
}

void
tako_artbuf_destroy (tako_artbuf_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_artbuf_t *self = *self_p;
    zhashx_destroy (&self->entries);
    free (self);
    *self_p = NULL;
}

static void
remove_key (tako_artbuf_t *self, const char *key)
{
    entry_t *entry = (entry_t *) zhashx_lookup (self->entries, key);
    if (!entry)
        return;
    self->bytes -= entry->public.size;
    zhashx_delete (self->entries, key);
}

//  Remove every entry the predicate selects. Keys are collected first:
//  deleting while iterating a zhashx is not allowed.
static void
remove_where (tako_artbuf_t *self, bool (*selects) (entry_t *entry, const void *arg),
              const void *arg)
{
    zlist_t *doomed = zlist_new ();
    if (!doomed)
        return;
    for (entry_t *entry = (entry_t *) zhashx_first (self->entries); entry;
         entry = (entry_t *) zhashx_next (self->entries))
        if (selects (entry, arg))
            zlist_append (doomed, (void *) zhashx_cursor (self->entries));
    //  The cursor keys belong to the hash; copy before deleting any.
    zlist_t *keys = zlist_new ();
    if (keys) {
        zlist_autofree (keys);
        for (char *key = (char *) zlist_first (doomed); key; key = (char *) zlist_next (doomed))
            zlist_append (keys, key);
        for (char *key = (char *) zlist_first (keys); key; key = (char *) zlist_next (keys))
            remove_key (self, key);
        zlist_destroy (&keys);
    }
    zlist_destroy (&doomed);
}

static bool
is_expired (entry_t *entry, const void *arg)
{
    const int64_t *cutoff = (const int64_t *) arg;
    return entry->public.received_ms < *cutoff;
}

void
tako_artbuf_expire (tako_artbuf_t *self, int64_t now_ms)
{
    int64_t cutoff = now_ms - self->max_age_ms;
    remove_where (self, is_expired, &cutoff);
}

typedef struct {
    const char *job_id;
    int64_t attempt;
} attempt_key_t;

static bool
is_of_attempt (entry_t *entry, const void *arg)
{
    const attempt_key_t *key = (const attempt_key_t *) arg;
    return entry->attempt == key->attempt && streq (entry->job_id, key->job_id);
}

void
tako_artbuf_drop_attempt (tako_artbuf_t *self, const char *job_id, int64_t attempt)
{
    attempt_key_t key = { job_id, attempt };
    remove_where (self, is_of_attempt, &key);
}

//  Drop the oldest entry; false when there is none.
static bool
drop_oldest (tako_artbuf_t *self)
{
    const char *oldest_key = NULL;
    int64_t oldest = INT64_MAX;
    for (entry_t *entry = (entry_t *) zhashx_first (self->entries); entry;
         entry = (entry_t *) zhashx_next (self->entries))
        if (entry->public.received_ms < oldest) {
            oldest = entry->public.received_ms;
            oldest_key = (const char *) zhashx_cursor (self->entries);
        }
    if (!oldest_key)
        return false;
    char *key = strdup (oldest_key);
    if (!key)
        return false;
    remove_key (self, key);
    free (key);
    return true;
}

int
tako_artbuf_put (tako_artbuf_t *self, const char *job_id, int64_t attempt,
                 const char *name, const char *content_type,
                 const void *data, size_t size, int64_t now_ms)
{
    tako_artbuf_expire (self, now_ms);
    if (size > self->max_bytes)
        return -1;
    char *key = entry_key (job_id, attempt, name);
    entry_t *entry = key? entry_new (job_id, attempt, name, content_type, data, size, now_ms): NULL;
    if (!entry) {
        free (key);
        return -1;
    }
    remove_key (self, key);
    while (self->bytes + size > self->max_bytes && drop_oldest (self))
        ;
    zhashx_insert (self->entries, key, entry);
    self->bytes += size;
    free (key);
    return 0;
}

const tako_artbuf_entry_t *
tako_artbuf_get (tako_artbuf_t *self, const char *job_id, int64_t attempt, const char *name)
{
    char *key = entry_key (job_id, attempt, name);
    entry_t *entry = key? (entry_t *) zhashx_lookup (self->entries, key): NULL;
    free (key);
    return entry? &entry->public: NULL;
}

size_t
tako_artbuf_count (tako_artbuf_t *self)
{
    return zhashx_size (self->entries);
}

size_t
tako_artbuf_bytes (tako_artbuf_t *self)
{
    return self->bytes;
}

void
tako_artbuf_test (bool verbose)
{
    (void) verbose;
    tako_artbuf_t *buffer = tako_artbuf_new (10, 1000);
    assert (buffer);

    //  Put, get, replace.
    assert (tako_artbuf_put (buffer, "job#1", 1, "a.txt", "text/plain", "abc", 3, 0) == 0);
    assert (tako_artbuf_put (buffer, "job", 1, "1#a.txt", NULL, "xy", 2, 1) == 0);
    const tako_artbuf_entry_t *entry = tako_artbuf_get (buffer, "job#1", 1, "a.txt");
    assert (entry && entry->size == 3 && memcmp (entry->data, "abc", 3) == 0);
    assert (streq (entry->content_type, "text/plain"));
    entry = tako_artbuf_get (buffer, "job", 1, "1#a.txt");
    assert (entry && entry->size == 2 && entry->content_type == NULL);
    assert (tako_artbuf_get (buffer, "job#1", 2, "a.txt") == NULL);
    assert (tako_artbuf_put (buffer, "job#1", 1, "a.txt", NULL, "abcd", 4, 2) == 0);
    assert (tako_artbuf_count (buffer) == 2 && tako_artbuf_bytes (buffer) == 6);

    //  Too big ever: refused. Over the bound: the oldest make room.
    assert (tako_artbuf_put (buffer, "big", 1, "b", NULL, "0123456789X", 11, 3) == -1);
    assert (tako_artbuf_put (buffer, "new", 1, "n", NULL, "0123456", 7, 4) == 0);
    assert (tako_artbuf_get (buffer, "job", 1, "1#a.txt") == NULL);
    assert (tako_artbuf_get (buffer, "job#1", 1, "a.txt") == NULL);
    assert (tako_artbuf_count (buffer) == 1 && tako_artbuf_bytes (buffer) == 7);

    //  Dropping one attempt leaves the others.
    assert (tako_artbuf_put (buffer, "new", 2, "n", NULL, "", 0, 5) == 0);
    tako_artbuf_drop_attempt (buffer, "new", 1);
    assert (tako_artbuf_count (buffer) == 1 && tako_artbuf_bytes (buffer) == 0);
    assert (tako_artbuf_get (buffer, "new", 2, "n"));

    //  Expiry.
    tako_artbuf_expire (buffer, 1005);
    assert (tako_artbuf_count (buffer) == 1);
    tako_artbuf_expire (buffer, 1006);
    assert (tako_artbuf_count (buffer) == 0);

    tako_artbuf_destroy (&buffer);
    tako_artbuf_destroy (&buffer);
}
