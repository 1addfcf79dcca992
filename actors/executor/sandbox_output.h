/*  sandbox_output — what the job leaves behind, read safely by the host.

    - Captured streams: stdout/stderr are kept up to a cap (the rest is
      read and dropped so the job never blocks) with a truncated flag, and
      made valid UTF-8 (bad sequences become U+FFFD) before they go into
      JSON.
    - /output: read through a directory fd opened before the job ran (the
      tmpfs stays reachable through it after the sandbox is gone). Every
      open is openat with O_NOFOLLOW|O_NONBLOCK, only regular files count
      (FIFOs, sockets, devices, symlinks are skipped), each file is capped
      at max_artifact_bytes (bigger ones, sparse giants included, are
      skipped without reading), the total at max_total_bytes, the scan at
      TAKO_SANDBOX_OUTPUT_SCAN_MAX entries and TAKO_SANDBOX_OUTPUT_DEPTH_MAX
      levels. result.json at the top is the job's output; every other file
      is an artifact named by its path below /output ("plots/a.png").     */

#ifndef SANDBOX_OUTPUT_H_INCLUDED
#define SANDBOX_OUTPUT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tako_sha256.h"

#define TAKO_SANDBOX_OUTPUT_SCAN_MAX   10000
#define TAKO_SANDBOX_OUTPUT_DEPTH_MAX  4
#define TAKO_SANDBOX_ARTIFACTS_MAX     1000
#define TAKO_SANDBOX_RESULT_NAME       "result.json"

//  A capped capture of one stream.
typedef struct {
    char *data;
    size_t size;
    size_t cap;                     //  set by the caller
    size_t allocated;
    bool truncated;
} tako_sandbox_capture_t;

//  Append bytes; what exceeds the cap is dropped and flagged. Returns 0,
//  or -1 when out of memory.
int tako_sandbox_capture_append (tako_sandbox_capture_t *self, const void *data, size_t size);
void tako_sandbox_capture_release (tako_sandbox_capture_t *self);

//  Valid UTF-8 copy of data (malformed sequences become U+FFFD), size in
//  *out_size; caller frees. NULL when out of memory.
char *tako_sandbox_utf8_sanitize (const char *data, size_t size, size_t *out_size);

typedef struct {
    char *name;                     //  path below /output
    uint8_t *data;
    size_t size;
    char sha256 [TAKO_SHA256_HEX_SIZE];
    const char *content_type;
} tako_sandbox_artifact_t;

typedef struct {
    bool result_present;            //  /output/result.json was a regular file
    bool result_too_big;
    char *result;                   //  its bytes (NUL-terminated)
    size_t result_size;
    tako_sandbox_artifact_t *artifacts;
    size_t artifact_count;
    size_t skipped;                 //  entries left out (type, size, caps)
} tako_sandbox_output_t;

typedef struct {
    int64_t max_artifact_bytes;
    int64_t max_total_bytes;
} tako_sandbox_output_limits_t;

//  Collect result.json and the artifacts below dir_fd. Returns 0 (out
//  filled, possibly empty) or -1 when out of memory.
int tako_sandbox_output_collect (int dir_fd, const tako_sandbox_output_limits_t *limits,
                                 tako_sandbox_output_t *out);
void tako_sandbox_output_release (tako_sandbox_output_t *out);

//  A content type from a file name's extension.
const char *tako_sandbox_content_type (const char *name);

#endif
