/*  tako_artbuf — artifact bytes waiting for their job.finish.

    An attempt's ARTIFACT messages reach the recorder before the job.finish
    that lists them; the recorder keeps their bytes here, keyed by (job_id,
    attempt, name), and takes them out when the finish is recorded. The
    buffer is bounded: entries older than max_age_ms are dropped, and when
    a new entry does not fit in max_bytes the oldest entries make room.
    Nothing is lost for good by a drop: the executor resends an attempt's
    artifacts until its result is acknowledged.

        tako_artbuf_t *buffer = tako_artbuf_new (64 << 20, 600000);
        tako_artbuf_put (buffer, "job-1", 1, "plot.png", "image/png", data, size, now);
        const tako_artbuf_entry_t *entry = tako_artbuf_get (buffer, "job-1", 1, "plot.png");
        ...
        tako_artbuf_drop_attempt (buffer, "job-1", 1);
        tako_artbuf_destroy (&buffer);                                      */

#ifndef TAKO_ARTBUF_H_INCLUDED
#define TAKO_ARTBUF_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _tako_artbuf_t tako_artbuf_t;

//  One buffered artifact; borrowed from the buffer, valid until the next
//  put, drop or expire.
typedef struct {
    const char *name;
    const char *content_type;       //  NULL when the sender gave none
    const void *data;
    size_t size;
    int64_t received_ms;
} tako_artbuf_entry_t;

//  An empty buffer holding at most max_bytes of data, each entry at most
//  max_age_ms. NULL on allocation failure.
tako_artbuf_t *tako_artbuf_new (size_t max_bytes, int64_t max_age_ms);

//  Free every entry and the buffer; NULLs *self_p, safe twice.
void tako_artbuf_destroy (tako_artbuf_t **self_p);

//  Keep a copy of the bytes under (job_id, attempt, name), replacing an
//  entry with the same key; now_ms is a monotonic clock. Drops expired
//  entries, then the oldest ones until the new one fits. 0, or -1 if it
//  can never fit or memory ran out (the buffer is then unchanged, bar
//  the expired entries).
int tako_artbuf_put (tako_artbuf_t *self, const char *job_id, int64_t attempt,
                     const char *name, const char *content_type,
                     const void *data, size_t size, int64_t now_ms);

//  The entry under this key, or NULL.
const tako_artbuf_entry_t *tako_artbuf_get (tako_artbuf_t *self, const char *job_id,
                                            int64_t attempt, const char *name);

//  Drop every entry of one attempt (its finish is recorded).
void tako_artbuf_drop_attempt (tako_artbuf_t *self, const char *job_id, int64_t attempt);

//  Drop entries received more than max_age_ms before now_ms.
void tako_artbuf_expire (tako_artbuf_t *self, int64_t now_ms);

//  How many entries, and how many bytes of data, are held.
size_t tako_artbuf_count (tako_artbuf_t *self);
size_t tako_artbuf_bytes (tako_artbuf_t *self);

void tako_artbuf_test (bool verbose);

#endif
