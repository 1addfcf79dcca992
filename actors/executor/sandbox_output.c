/*  sandbox_output — capped streams, UTF-8 repair, /output collection.  */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sandbox_output.h"

//  Initial capture allocation; grows by doubling up to the cap.
#define CAPTURE_INITIAL 4096
#define ARTIFACT_NAME_MAX 4096

int
tako_sandbox_capture_append (tako_sandbox_capture_t *self, const void *data, size_t size)
{
    size_t room = self->cap > self->size? self->cap - self->size: 0;
    if (size > room) {
        self->truncated = true;
        size = room;
    }
    if (size == 0)
        return 0;
    size_t wanted = self->size + size + 1;
    if (wanted > self->allocated) {
        size_t grown = CAPTURE_INITIAL;
        while (grown < wanted)
            grown *= 2;
        if (grown > self->cap + 1)
            grown = self->cap + 1;
        char *data_new = realloc (self->data, grown);
        if (!data_new)
            return -1;
        self->data = data_new;
        self->allocated = grown;
    }
    memcpy (self->data + self->size, data, size);
    self->size += size;
    self->data [self->size] = '\0';
    return 0;
}

void
tako_sandbox_capture_release (tako_sandbox_capture_t *self)
{
    free (self->data);
    self->data = NULL;
    self->size = 0;
    self->allocated = 0;
}

//  Length of the valid UTF-8 sequence at bytes (1-4), or 0 if invalid.
static size_t
utf8_sequence (const unsigned char *bytes, size_t left)
{
    unsigned char lead = bytes [0];
    if (lead < 0x80)
        return 1;
    size_t length;
    unsigned int minimum, code;
    if (lead >= 0xc2 && lead <= 0xdf) { length = 2; code = lead & 0x1f; minimum = 0x80; }
    else if (lead >= 0xe0 && lead <= 0xef) { length = 3; code = lead & 0x0f; minimum = 0x800; }
    else if (lead >= 0xf0 && lead <= 0xf4) { length = 4; code = lead & 0x07; minimum = 0x10000; }
    else return 0;
    if (left < length)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((bytes [i] & 0xc0) != 0x80)
            return 0;
        code = (code << 6) | (bytes [i] & 0x3f);
    }
    if (code < minimum || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
        return 0;
    return length;
}

char *
tako_sandbox_utf8_sanitize (const char *data, size_t size, size_t *out_size)
{
    //  Worst case every byte becomes the 3-byte U+FFFD.
    char *clean = malloc (size * 3 + 1);
    if (!clean)
        return NULL;
    const unsigned char *bytes = (const unsigned char *) data;
    size_t in = 0, out = 0;
    while (in < size) {
        size_t length = utf8_sequence (bytes + in, size - in);
        if (length == 0) {
            memcpy (clean + out, "\xef\xbf\xbd", 3);
            out += 3;
            in++;
        }
        else {
            memcpy (clean + out, bytes + in, length);
            out += length;
            in += length;
        }
    }
    clean [out] = '\0';
    *out_size = out;
    return clean;
}

typedef struct {
    const char *extension;
    const char *type;
} content_type_t;

static const content_type_t content_types [] = {
    { "json", "application/json" }, { "txt", "text/plain" }, { "log", "text/plain" },
    { "csv", "text/csv" }, { "tsv", "text/tab-separated-values" }, { "md", "text/markdown" },
    { "html", "text/html" }, { "htm", "text/html" }, { "xml", "application/xml" },
    { "png", "image/png" }, { "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" },
    { "gif", "image/gif" }, { "svg", "image/svg+xml" }, { "webp", "image/webp" },
    { "pdf", "application/pdf" }, { "zip", "application/zip" }, { "gz", "application/gzip" },
    { "parquet", "application/vnd.apache.parquet" }, { "npy", "application/octet-stream" },
    { "py", "text/x-python" }, { "yaml", "application/yaml" }, { "yml", "application/yaml" },
};

const char *
tako_sandbox_content_type (const char *name)
{
    const char *dot = strrchr (name, '.');
    if (dot && dot != name && !strchr (dot, '/'))
        for (size_t i = 0; i < sizeof (content_types) / sizeof (content_types [0]); i++)
            if (strcasecmp (dot + 1, content_types [i].extension) == 0)
                return content_types [i].type;
    return "application/octet-stream";
}

typedef struct {
    const tako_sandbox_output_limits_t *limits;
    tako_sandbox_output_t *out;
    size_t scanned;
    int64_t total;
    size_t allocated;
} collector_t;

//  Read a whole regular file of known size; NULL if it changed or failed.
static uint8_t *
file_read (int fd, size_t size)
{
    uint8_t *data = malloc (size + 1);
    if (!data)
        return NULL;
    size_t filled = 0;
    while (filled < size) {
        ssize_t got = read (fd, data + filled, size - filled);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        filled += (size_t) got;
    }
    if (filled != size) {
        free (data);
        return NULL;
    }
    data [size] = '\0';
    return data;
}

static int
artifact_add (collector_t *self, const char *name, uint8_t *data, size_t size)
{
    tako_sandbox_output_t *out = self->out;
    if (out->artifact_count == self->allocated) {
        size_t grown = self->allocated? self->allocated * 2: 16;
        tako_sandbox_artifact_t *items = realloc (out->artifacts, grown * sizeof (*items));
        if (!items)
            return -1;
        out->artifacts = items;
        self->allocated = grown;
    }
    tako_sandbox_artifact_t *artifact = &out->artifacts [out->artifact_count];
    artifact->name = strdup (name);
    if (!artifact->name)
        return -1;
    artifact->data = data;
    artifact->size = size;
    artifact->content_type = tako_sandbox_content_type (name);
    tako_sha256_t *hash = tako_sha256_new ();
    if (!hash) {
        free (artifact->name);
        return -1;
    }
    tako_sha256_update (hash, data, size);
    tako_sha256_final_hex (hash, artifact->sha256);
    tako_sha256_destroy (&hash);
    out->artifact_count++;
    return 0;
}

static int scan_directory (collector_t *self, int dir_fd, const char *prefix, int depth);

//  One entry: a subdirectory to descend into, or a regular file to keep.
static int
entry_collect (collector_t *self, int dir_fd, const char *entry, const char *prefix, int depth)
{
    char name [ARTIFACT_NAME_MAX];
    if ((size_t) snprintf (name, sizeof (name), "%s%s", prefix, entry) >= sizeof (name)) {
        self->out->skipped++;
        return 0;
    }
    int fd = openat (dir_fd, entry, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        self->out->skipped++;           //  symlinks (ELOOP) and the like
        return 0;
    }
    struct stat status;
    int rc = 0;
    if (fstat (fd, &status) != 0)
        self->out->skipped++;
    else
    if (S_ISDIR (status.st_mode)) {
        char sub [ARTIFACT_NAME_MAX];
        if (depth + 1 < TAKO_SANDBOX_OUTPUT_DEPTH_MAX
        &&  (size_t) snprintf (sub, sizeof (sub), "%s/", name) < sizeof (sub))
            rc = scan_directory (self, fd, sub, depth + 1);
        else
            self->out->skipped++;
        fd = -1;                        //  scan_directory closed it
    }
    else
    if (!S_ISREG (status.st_mode))
        self->out->skipped++;
    else
    if (depth == 0 && strcmp (entry, TAKO_SANDBOX_RESULT_NAME) == 0) {
        self->out->result_present = true;
        if (status.st_size > self->limits->max_artifact_bytes)
            self->out->result_too_big = true;
        else {
            self->out->result = (char *) file_read (fd, (size_t) status.st_size);
            self->out->result_size = (size_t) status.st_size;
            if (!self->out->result)
                self->out->result_present = false;
        }
    }
    else
    if (status.st_size > self->limits->max_artifact_bytes
    ||  self->total + status.st_size > self->limits->max_total_bytes
    ||  self->out->artifact_count >= TAKO_SANDBOX_ARTIFACTS_MAX)
        self->out->skipped++;
    else {
        uint8_t *data = file_read (fd, (size_t) status.st_size);
        if (!data)
            self->out->skipped++;
        else
        if (artifact_add (self, name, data, (size_t) status.st_size) != 0) {
            free (data);
            rc = -1;
        }
        else
            self->total += status.st_size;
    }
    if (fd >= 0)
        close (fd);
    return rc;
}

//  Takes ownership of dir_fd.
static int
scan_directory (collector_t *self, int dir_fd, const char *prefix, int depth)
{
    DIR *listing = fdopendir (dir_fd);
    if (!listing) {
        close (dir_fd);
        return 0;
    }
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir (listing))) {
        if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
            continue;
        if (++self->scanned > TAKO_SANDBOX_OUTPUT_SCAN_MAX) {
            self->out->skipped++;
            break;
        }
        rc = entry_collect (self, dirfd (listing), entry->d_name, prefix, depth);
    }
    closedir (listing);
    return rc;
}

int
tako_sandbox_output_collect (int dir_fd, const tako_sandbox_output_limits_t *limits,
                             tako_sandbox_output_t *out)
{
    memset (out, 0, sizeof (*out));
    //  A private fd: the scan closes what it opens, never the caller's.
    int own_fd = openat (dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (own_fd < 0)
        return 0;
    collector_t collector = { limits, out, 0, 0, 0 };
    int rc = scan_directory (&collector, own_fd, "", 0);
    if (rc != 0)
        tako_sandbox_output_release (out);
    return rc;
}

void
tako_sandbox_output_release (tako_sandbox_output_t *out)
{
    for (size_t i = 0; i < out->artifact_count; i++) {
        free (out->artifacts [i].name);
        free (out->artifacts [i].data);
    }
    free (out->artifacts);
    free (out->result);
    memset (out, 0, sizeof (*out));
}
