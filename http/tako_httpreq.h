/*  tako_httpreq — what the REST API accepts, checked before anything is
    sent on: request bodies, path parameters and query values. Pure
    functions of their input (the libFuzzer harness tests/fuzz/fuzz_http.c
    drives them with arbitrary bytes).

    Shapes and types are checked here; values against the configuration
    (code size, timeout ranges, job types, requirement grammar) are the
    scheduler's to check, so REST and the wire protocol refuse the same
    things with the same words.

        tako_httpreq_error_t error;
        json_t *submit = tako_httpreq_execute (body, size, true, &error);
        if (!submit)
            respond (error.status, error.detail);      //  400 or 422      */

#ifndef TAKO_HTTPREQ_H_INCLUDED
#define TAKO_HTTPREQ_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define TAKO_HTTPREQ_DETAIL_MAX         256
//  An idempotency key: at most this many printable ASCII characters.
#define TAKO_HTTPREQ_IDEMPOTENCY_MAX    255
//  X-Correlation-ID: at most this many of [A-Za-z0-9._-].
#define TAKO_HTTPREQ_CORRELATION_MAX    128
//  Ids in paths (job ids, dead-letter ids) and artifact names.
#define TAKO_HTTPREQ_ID_MAX             64
#define TAKO_HTTPREQ_NAME_MAX           255

typedef struct {
    int status;                         //  400 malformed, 422 wrong shape
    char detail [TAKO_HTTPREQ_DETAIL_MAX];
} tako_httpreq_error_t;

//  A JSON object from a request body: 400 "Invalid JSON at line L,
//  column C: ..." when it does not parse, 422 when it is not an object.
json_t *tako_httpreq_object (const char *body, size_t size, tako_httpreq_error_t *error);

//  POST /execute and /execute/async: the body as SUBMIT fields (code,
//  input_data, timeout, startup_timeout, job_type, requirements,
//  idempotency_key — the last only when async). Unknown fields and wrong
//  types are 422. Returns a new object, or NULL with error filled.
json_t *tako_httpreq_execute (const char *body, size_t size, bool async,
                              tako_httpreq_error_t *error);

//  POST /jobs/{id}/fork: {code}. Returns the code (caller frees) or NULL.
char *tako_httpreq_fork (const char *body, size_t size, tako_httpreq_error_t *error);

//  A job id or dead-letter id in a path: 1..TAKO_HTTPREQ_ID_MAX of
//  [A-Za-z0-9_-].
bool tako_httpreq_id_valid (const char *id);

//  An artifact name: one path component, no NUL, not "." or "..", no
//  control characters, at most TAKO_HTTPREQ_NAME_MAX bytes.
bool tako_httpreq_name_valid (const char *name);

//  Percent-decode text in place (the ingress's unescape callback for
//  paths and query values); returns the new length. "%00" stays as it
//  is, so a NUL never cuts a name short ("a.csv%00" is not "a.csv"); so
//  does a '%' not followed by two hex digits.
size_t tako_httpreq_unescape (char *text);

//  An X-Correlation-ID worth echoing.
bool tako_httpreq_correlation_valid (const char *value);

//  Query values. Each returns 0 and sets *value, or -1 when the text is
//  not of the kind or out of [low, high]. NULL text keeps *value.
int tako_httpreq_bool (const char *text, bool *value);
int tako_httpreq_int (const char *text, long low, long high, long *value);

void tako_httpreq_test (bool verbose);

#endif
