/*  tako_proto — the wire protocol: frames, limits, and the command table.

    Every message is four ZeroMQ frames (a ROUTER prepends the peer's
    routing id, which is not part of the protocol):

        1. signature   the 6 bytes "TAKO/1"
        2. address     UTF-8, at most TAKO_PROTO_ADDRESS_MAX bytes
                       to the broker: destination ("" = the broker itself,
                       a service name, or an instance id SERVICE.SUFFIX);
                       from the broker: the sender's instance id ("" when
                       the broker itself speaks)
        3. command     upper-case ASCII, at most TAKO_PROTO_COMMAND_MAX bytes
        4. body        exactly one msgpack map with string keys

    The table below is the single source of truth for every command and
    its fields; docs/protocol.md documents the same table and a unit test
    fails when the two disagree. The message class that carries a command
    and its fields is tako_msg (tako_msg.h, included below), so one
    `#include "tako_proto.h"` gives the whole protocol.

    Decoding is strict: an unknown command, a missing required field, a
    field of the wrong type or a field the table does not list is an error.
    A field set to nil counts as absent, except for `object` fields where
    nil is the JSON value null. Adding a field is a protocol version bump.

    The body is pre-scanned before msgpack-c sees it (msgpack-c reserves a
    container's declared length before checking it): declared lengths must
    fit in the bytes left, nesting is bounded, the total element count is
    bounded, ext types and trailing bytes are rejected.                    */

#ifndef TAKO_PROTO_H_INCLUDED
#define TAKO_PROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

//  Frame 1: protocol name and version. A peer speaking another version
//  is refused with a reason naming both versions.
#define TAKO_PROTO_NAME             "TAKO"
#define TAKO_PROTO_VERSION          1
#define TAKO_PROTO_SIGNATURE        "TAKO/1"
#define TAKO_PROTO_SIGNATURE_SIZE   6
#define TAKO_PROTO_FRAME_COUNT      4

//  Limits. TAKO_PROTO_BODY_MAX matches the ZMQ_MAXMSGSIZE every socket
//  that receives protocol messages sets, so an oversize frame is dropped
//  by libzmq before it is even buffered whole.
#define TAKO_PROTO_ADDRESS_MAX      128
#define TAKO_PROTO_COMMAND_MAX      32
#define TAKO_PROTO_FIELD_NAME_MAX   64
#define TAKO_PROTO_BODY_MAX         (16 * 1024 * 1024)
//  Containers nested in the body, the body map included. msgpack-c's
//  own parser stack holds 32 levels; we never go past it.
#define TAKO_PROTO_DEPTH_MAX        32
//  All msgpack values in one body (map keys and values, array items).
//  Bounds what decoding allocates to a small multiple of the input.
#define TAKO_PROTO_ELEMENTS_MAX     (256 * 1024)
//  ZMQ_MAXMSGSIZE for every socket that receives protocol messages
//  (libzmq applies it to each frame; the body is the largest).
#define TAKO_PROTO_SOCKET_MAXMSGSIZE  TAKO_PROTO_BODY_MAX

//  Field value types.
typedef enum {
    TAKO_FIELD_STR = 1,     //  msgpack str, valid UTF-8, no NUL byte
    TAKO_FIELD_INT,         //  msgpack int within int64
    TAKO_FIELD_BOOL,        //  msgpack bool
    TAKO_FIELD_DOUBLE,      //  msgpack float32/float64 (an int is accepted)
    TAKO_FIELD_BIN,         //  msgpack bin
    TAKO_FIELD_STRLIST,     //  msgpack array of str
    TAKO_FIELD_OBJECT       //  any JSON value: map (str keys), array, str,
                            //  int, float, bool, nil; no bin, no ext
} tako_field_type_t;

typedef enum {
    TAKO_FIELD_OPTIONAL = 0,
    TAKO_FIELD_REQUIRED = 1
} tako_field_presence_t;

//  ---------------------------------------------------------------------
//  The command table.
//
//  TAKO_PROTO_COMMANDS lists each command with its one-line purpose;
//  TAKO_PROTO_FIELDS_<COMMAND> lists its fields as
//      F (name, TYPE, PRESENCE, "what it means")
//  with TYPE one of STR INT BOOL DOUBLE BIN STRLIST OBJECT and PRESENCE
//  REQUIRED or OPTIONAL. Request/reply pairs carry a request_id chosen
//  by the requester and echoed in the reply.

#define TAKO_PROTO_COMMANDS(C) \
    C (REGISTER,      "peer -> broker: announce this instance and the services it offers") \
    C (HEARTBEAT,     "peer <-> broker: I am alive (either side, every heartbeat interval)") \
    C (UNREGISTER,    "peer -> broker: I am leaving; route nothing more to me") \
    C (ERROR,         "broker or service -> peer: a request failed or was undeliverable") \
    C (SUBMIT,        "client -> scheduler: run this code as a new job") \
    C (ACCEPTED,      "scheduler -> client: the job is committed (or already existed)") \
    C (DISPATCH,      "scheduler -> executor: run this job attempt under a lease") \
    C (READY,         "executor -> scheduler: free slots (credits) for dispatch") \
    C (ACCEPT,        "executor -> scheduler: the lease is taken, the job is starting") \
    C (JOB_HEARTBEAT, "executor -> scheduler: the job attempt is still running; renew the lease") \
    C (RESULT,        "executor -> scheduler: the attempt ended; every result field") \
    C (RESULT_ACK,    "scheduler -> executor: the result is recorded; stop sending it") \
    C (ARTIFACT,      "executor -> scheduler: the bytes of one output file of an attempt") \
    C (CANCEL,        "client -> scheduler, scheduler -> executor: cancel a job") \
    C (EVENT,         "scheduler -> event hub -> watchers: one job transition") \
    C (QUERY,         "any -> service: a named request with parameters") \
    C (REPLY,         "service -> requester: the answer to a QUERY or CANCEL") \
    C (BUILD,         "client -> builder: build (or look up) a job type environment") \
    C (BUILT,         "builder -> client: the environment is ready (or failed)")

#define TAKO_PROTO_FIELDS_REGISTER(F) \
    F (instance,        STR,     REQUIRED, "sender's instance id SERVICE.SUFFIX, equal to its routing id") \
    F (services,        STRLIST, REQUIRED, "service names this instance answers") \
    F (version,         STR,     OPTIONAL, "sender's tako-vm version")

#define TAKO_PROTO_FIELDS_HEARTBEAT(F)

#define TAKO_PROTO_FIELDS_UNREGISTER(F)

#define TAKO_PROTO_FIELDS_ERROR(F) \
    F (code,            INT,     REQUIRED, "HTTP-like status: 400 bad message, 403 register first, 404 not found, 409 conflict, 503 unavailable...") \
    F (reason,          STR,     REQUIRED, "short human-readable reason, safe to show a client") \
    F (in_reply_to,     STR,     OPTIONAL, "command of the message that failed") \
    F (request_id,      STR,     OPTIONAL, "request_id of the message that failed") \
    F (destination,     STR,     OPTIONAL, "address the failed message was sent to") \
    F (job_id,          STR,     OPTIONAL, "job concerned; for 409 the existing job") \
    F (retry_after_ms,  INT,     OPTIONAL, "when 429/503: try again after this long")

#define TAKO_PROTO_FIELDS_SUBMIT(F) \
    F (request_id,      STR,     REQUIRED, "chosen by the client, echoed in ACCEPTED or ERROR") \
    F (code,            STR,     REQUIRED, "Python source, non-empty") \
    F (input_data,      OBJECT,  OPTIONAL, "JSON written to /input/data.json; default {}") \
    F (timeout,         INT,     OPTIONAL, "execution timeout, seconds; default: job type's") \
    F (startup_timeout, INT,     OPTIONAL, "sandbox set-up + dependency install timeout, seconds") \
    F (job_type,        STR,     OPTIONAL, "job type name; default \"default\"") \
    F (requirements,    STRLIST, OPTIONAL, "extra pip requirement specifiers for this run") \
    F (idempotency_key, STR,     OPTIONAL, "same key + same payload returns the existing job") \
    F (client_ip,       STR,     OPTIONAL, "address of the HTTP client, for the DLQ record") \
    F (correlation_id,  STR,     OPTIONAL, "X-Correlation-ID of the originating request") \
    F (job_ref,         STR,     OPTIONAL, "pin this job version name@sha256:<12 hex> (reruns)") \
    F (parent_execution_id, STR, OPTIONAL, "lineage: the job this one reruns or forks") \
    F (relationship,    STR,     OPTIONAL, "lineage: rerun or fork")

#define TAKO_PROTO_FIELDS_ACCEPTED(F) \
    F (request_id,      STR,     REQUIRED, "the SUBMIT's request_id") \
    F (job_id,          STR,     REQUIRED, "the committed job") \
    F (status,          STR,     REQUIRED, "job status now: queued, or the existing job's status") \
    F (existing,        BOOL,    OPTIONAL, "true when an idempotency_key matched an existing job") \
    F (queue_position,  INT,     OPTIONAL, "jobs ahead of this one, when queued")

#define TAKO_PROTO_FIELDS_DISPATCH(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (attempt,         INT,     REQUIRED, "attempt number, 1 for the first") \
    F (lease_id,        STR,     REQUIRED, "lease to quote in ACCEPT, JOB_HEARTBEAT and RESULT") \
    F (lease_ms,        INT,     REQUIRED, "the lease expires this long after the last renewal") \
    F (code,            STR,     REQUIRED, "Python source") \
    F (input_data,      OBJECT,  REQUIRED, "JSON for /input/data.json") \
    F (timeout,         INT,     REQUIRED, "execution timeout, seconds") \
    F (startup_timeout, INT,     REQUIRED, "startup timeout, seconds") \
    F (job_type,        STR,     REQUIRED, "job type name") \
    F (job_ref,         STR,     OPTIONAL, "job version name@sha256:<12 hex>") \
    F (requirements,    STRLIST, OPTIONAL, "extra pip requirement specifiers for this run") \
    F (job_spec,        OBJECT,  OPTIONAL, "resolved job type: limits, network, environment, env digest") \
    F (correlation_id,  STR,     OPTIONAL, "X-Correlation-ID of the originating request")

#define TAKO_PROTO_FIELDS_READY(F) \
    F (instance,        STR,     REQUIRED, "the executor's instance id") \
    F (slots,           INT,     REQUIRED, "jobs it can accept now") \
    F (job_types,       STRLIST, OPTIONAL, "job types with a warm sandbox ready") \
    F (warm_ready,      INT,     OPTIONAL, "sandboxes prepared ahead and waiting") \
    F (warm_memory_bytes, INT,   OPTIONAL, "their memory (peak of their cgroups), bytes")

#define TAKO_PROTO_FIELDS_ACCEPT(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (attempt,         INT,     REQUIRED, "the attempt") \
    F (lease_id,        STR,     REQUIRED, "the DISPATCH's lease_id")

#define TAKO_PROTO_FIELDS_JOB_HEARTBEAT(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (attempt,         INT,     REQUIRED, "the attempt") \
    F (lease_id,        STR,     REQUIRED, "the DISPATCH's lease_id") \
    F (phase,           STR,     OPTIONAL, "startup or execution")

#define TAKO_PROTO_FIELDS_RESULT(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (attempt,         INT,     REQUIRED, "the attempt; results are idempotent per (job_id, attempt)") \
    F (lease_id,        STR,     OPTIONAL, "the DISPATCH's lease_id") \
    F (status,          STR,     REQUIRED, "succeeded, failed, timeout, oom or cancelled") \
    F (retryable,       BOOL,    OPTIONAL, "true for an infrastructure failure (not the user's code)") \
    F (exit_code,       INT,     OPTIONAL, "exit status of the Python process") \
    F (signal,          INT,     OPTIONAL, "signal that ended it, if any") \
    F (stdout,          STR,     OPTIONAL, "captured stdout (UTF-8, invalid bytes replaced)") \
    F (stderr,          STR,     OPTIONAL, "captured stderr (UTF-8, invalid bytes replaced)") \
    F (stdout_truncated, BOOL,   OPTIONAL, "stdout hit its cap") \
    F (stderr_truncated, BOOL,   OPTIONAL, "stderr hit its cap") \
    F (output,          OBJECT,  OPTIONAL, "parsed /output/result.json, or null") \
    F (error,           OBJECT,  OPTIONAL, "{type, message, phase}, or null on success") \
    F (timing,          OBJECT,  OPTIONAL, "{startup_ms, dep_install_ms, execution_ms, total_ms, phase_at_exit}") \
    F (resource_usage,  OBJECT,  OPTIONAL, "{max_rss_mb, cpu_time_ms, wall_time_ms}") \
    F (artifacts,       OBJECT,  OPTIONAL, "array of {name, size_bytes, sha256, content_type}") \
    F (started_at,      STR,     OPTIONAL, "ISO-8601 UTC") \
    F (ended_at,        STR,     OPTIONAL, "ISO-8601 UTC") \
    F (duration_ms,     INT,     OPTIONAL, "ended_at - started_at") \
    F (execution_time,  DOUBLE,  OPTIONAL, "seconds, as the sync REST answer reports it") \
    F (job_type,        STR,     OPTIONAL, "job type name") \
    F (job_version,     STR,     OPTIONAL, "job type version") \
    F (job_ref,         STR,     OPTIONAL, "job version name@sha256:<12 hex>") \
    F (code_hash,       STR,     OPTIONAL, "sha256 hex of the code") \
    F (input_hash,      STR,     OPTIONAL, "sha256 hex of the input") \
    F (input_artifacts, OBJECT,  OPTIONAL, "array of {name, size_bytes, sha256, content_type}")

#define TAKO_PROTO_FIELDS_RESULT_ACK(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (attempt,         INT,     REQUIRED, "the attempt whose RESULT (and ARTIFACTs) are recorded")

#define TAKO_PROTO_FIELDS_ARTIFACT(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (attempt,         INT,     REQUIRED, "the attempt") \
    F (name,            STR,     REQUIRED, "file name, one path component") \
    F (content_type,    STR,     OPTIONAL, "MIME type") \
    F (sha256,          STR,     REQUIRED, "sha256 hex of data") \
    F (data,            BIN,     REQUIRED, "the bytes")

#define TAKO_PROTO_FIELDS_CANCEL(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (request_id,      STR,     OPTIONAL, "when set, the receiver answers with REPLY") \
    F (attempt,         INT,     OPTIONAL, "scheduler -> executor: the attempt to stop") \
    F (reason,          STR,     OPTIONAL, "why, for the record")

#define TAKO_PROTO_FIELDS_EVENT(F) \
    F (job_id,          STR,     REQUIRED, "the job") \
    F (seq,             INT,     REQUIRED, "per-job sequence number, from 1, no gaps") \
    F (status,          STR,     REQUIRED, "job status after this event") \
    F (kind,            STR,     REQUIRED, "queued, started, retrying, finished, cancelled, dead_lettered...") \
    F (attempt,         INT,     OPTIONAL, "the attempt concerned") \
    F (at,              STR,     OPTIONAL, "ISO-8601 UTC time of the transition") \
    F (data,            OBJECT,  OPTIONAL, "kind-specific details") \
    F (record,          OBJECT,  OPTIONAL, "finished: the job record as committed (job.get), when small")

#define TAKO_PROTO_FIELDS_QUERY(F) \
    F (request_id,      STR,     REQUIRED, "echoed in the REPLY") \
    F (query,           STR,     REQUIRED, "dotted name of the request, e.g. job.get, dlq.list") \
    F (params,          OBJECT,  OPTIONAL, "its parameters")

#define TAKO_PROTO_FIELDS_REPLY(F) \
    F (request_id,      STR,     REQUIRED, "the request's request_id") \
    F (code,            INT,     REQUIRED, "HTTP-like status: 200 ok, 404 not found...") \
    F (result,          OBJECT,  OPTIONAL, "the answer") \
    F (reason,          STR,     OPTIONAL, "short reason when code is not 2xx") \
    F (data,            BIN,     OPTIONAL, "raw bytes of the answer, e.g. an artifact's content")

#define TAKO_PROTO_FIELDS_BUILD(F) \
    F (request_id,      STR,     REQUIRED, "echoed in BUILT") \
    F (job_type,        STR,     REQUIRED, "job type name") \
    F (version_tag,     STR,     OPTIONAL, "label for this version") \
    F (requirements,    STRLIST, OPTIONAL, "per-request requirements to resolve instead of the job type's") \
    F (force,           BOOL,    OPTIONAL, "rebuild even if the digest is cached")

#define TAKO_PROTO_FIELDS_BUILT(F) \
    F (request_id,      STR,     REQUIRED, "the BUILD's request_id") \
    F (job_type,        STR,     REQUIRED, "job type name") \
    F (status,          STR,     REQUIRED, "built or failed") \
    F (digest,          STR,     OPTIONAL, "sha256 hex of the canonical job type") \
    F (job_ref,         STR,     OPTIONAL, "name@sha256:<12 hex>") \
    F (image_ref,       STR,     OPTIONAL, "environment reference") \
    F (reason,          STR,     OPTIONAL, "why the build failed") \
    F (version_tag,     STR,     OPTIONAL, "the BUILD's version_tag") \
    F (built_at,        STR,     OPTIONAL, "ISO-8601 UTC time the environment was built") \
    F (duration_ms,     INT,     OPTIONAL, "how long this BUILD took, lock waits included") \
    F (cached,          BOOL,    OPTIONAL, "true when the environment existed already")

//  One enum value per command: TAKO_CMD_SUBMIT, ...
typedef enum {
    TAKO_CMD_UNKNOWN = 0,
#define TAKO_PROTO_ENUM_(name, purpose) TAKO_CMD_##name,
    TAKO_PROTO_COMMANDS (TAKO_PROTO_ENUM_)
#undef TAKO_PROTO_ENUM_
    TAKO_CMD_COUNT_
} tako_command_id_t;

//  The table, as data.
typedef struct {
    const char *name;
    tako_field_type_t type;
    bool required;
    const char *purpose;
} tako_proto_field_t;

typedef struct {
    tako_command_id_t id;
    const char *name;
    const char *purpose;
    const tako_proto_field_t *fields;   //  terminated by a NULL name
    size_t field_count;
} tako_proto_command_t;

//  All commands in table order; *count gets how many.
const tako_proto_command_t *tako_proto_commands (size_t *count);

//  The command of this name, or NULL.
const tako_proto_command_t *tako_proto_command_find (const char *name);

//  The command with this id, or NULL.
const tako_proto_command_t *tako_proto_command_by_id (tako_command_id_t id);

//  The field of this name in command, or NULL.
const tako_proto_field_t *tako_proto_field_find (const tako_proto_command_t *command,
                                                 const char *name);

//  Name of a field type as the docs spell it: "str", "int", ...
const char *tako_proto_type_name (tako_field_type_t type);

//  ---------------------------------------------------------------------
//  Frame checks. Each returns 0, or -1 and sets *error (if error is not
//  NULL) to a reason the caller frees.

int tako_proto_check_signature (const void *data, size_t size, char **error);
int tako_proto_check_address (const void *data, size_t size, char **error);
int tako_proto_check_command (const void *data, size_t size, char **error);

//  True if name is a service name [a-z][a-z0-9-]* of at most
//  TAKO_PROTO_ADDRESS_MAX bytes.
bool tako_proto_is_service_name (const char *name);

//  True if name is an instance id SERVICE.SUFFIX: a service name, one
//  '.', then [A-Za-z0-9_-]+; at most TAKO_PROTO_ADDRESS_MAX bytes.
bool tako_proto_is_instance_id (const char *name);

//  The service part of an address: "executor" for "executor.h1-42" or
//  "executor". Returns a new string, or NULL if address is neither.
char *tako_proto_address_service (const char *address);

//  True if size bytes at data are valid UTF-8 (no overlongs, no
//  surrogates, nothing above U+10FFFF).
bool tako_proto_utf8_valid (const void *data, size_t size);

//  Pre-scan a body: exactly one msgpack map with string keys, every
//  declared length within the bytes left, depth and element count within
//  the limits, no ext, no trailing bytes. Allocates nothing. Returns 0
//  or -1 with *error set.
int tako_proto_body_scan (const void *data, size_t size, char **error);

//  Self-test.
void tako_proto_test (bool verbose);

#include "tako_msg.h"

//  Set *error (if error is not NULL; the caller frees it) to the
//  formatted reason, replacing any earlier one. Returns -1, so decoders
//  can `return tako_proto_fail (error, "...")`.
int tako_proto_fail (char **error, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
