/*  tako_msg — one protocol message: a command, an address, typed fields.

    The command and every field are checked against the command table in
    tako_proto.h: tako_msg_new refuses an unknown command, a setter refuses
    a field the command does not have or a value of the wrong type, and
    encoding refuses a message missing a required field. Decoding checks
    the same things on bytes from the network, after the safe pre-scan.

        tako_msg_t *msg = tako_msg_new ("SUBMIT");
        tako_msg_set_address (msg, "scheduler");
        tako_msg_set_str (msg, "request_id", "r-1");
        tako_msg_set_str (msg, "code", "print(1)");
        tako_msg_send (&msg, dealer);           //  destroys msg

        char *error = NULL;
        tako_msg_t *reply = tako_msg_recv (dealer, &error);
        if (reply && streq (tako_msg_command (reply), "ACCEPTED"))
            puts (tako_msg_str (reply, "job_id"));

    Getters return borrowed values valid until the message is destroyed or
    the field is set again; a getter of a field that is absent returns
    NULL (or the given default for scalars). Setters return 0, or -1 if
    the command has no such field of that type or the value is invalid
    (str not valid UTF-8, double not finite, object nested deeper than
    the protocol allows).

    Functions that take `char **error` set it, on failure, to a short
    reason safe to show a peer (the caller frees it); start with NULL.   */

#ifndef TAKO_MSG_H_INCLUDED
#define TAKO_MSG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <czmq.h>
#include <jansson.h>

typedef struct _tako_msg_t tako_msg_t;

//  A new message for command (e.g. "SUBMIT"), empty address, no fields.
//  NULL if the command is not in the table.
tako_msg_t *tako_msg_new (const char *command);

//  Destroy a message; NULLs the caller's pointer, safe twice.
void tako_msg_destroy (tako_msg_t **self_p);

//  A deep copy (routing id included), or NULL on allocation failure.
tako_msg_t *tako_msg_dup (tako_msg_t *self);

const char *tako_msg_command (tako_msg_t *self);

//  The address frame: destination on the way to the broker, sender's
//  instance id on the way from it. Never NULL; "" when empty.
const char *tako_msg_address (tako_msg_t *self);

//  Set the address; -1 if it is not "", a service name or an instance id.
int tako_msg_set_address (tako_msg_t *self, const char *address);

//  On a message received from a ROUTER: the sender's routing id (borrowed),
//  else NULL. tako_msg_routing_id_str gives it as a string when it is
//  printable UTF-8 (peers use their instance id), else NULL.
zframe_t *tako_msg_routing_id (tako_msg_t *self);
const char *tako_msg_routing_id_str (tako_msg_t *self);

//  True if the message has this field set.
bool tako_msg_has (tako_msg_t *self, const char *name);

//  Remove a field; 0 even if it was not set, -1 if the command has no such field.
int tako_msg_unset (tako_msg_t *self, const char *name);

//  Typed setters: copy the value.
int tako_msg_set_str (tako_msg_t *self, const char *name, const char *value);
int tako_msg_set_int (tako_msg_t *self, const char *name, int64_t value);
int tako_msg_set_bool (tako_msg_t *self, const char *name, bool value);
int tako_msg_set_double (tako_msg_t *self, const char *name, double value);
int tako_msg_set_bin (tako_msg_t *self, const char *name, const void *data, size_t size);
int tako_msg_set_strlist (tako_msg_t *self, const char *name,
                          const char *const *items, size_t count);
//  Copies value (a deep copy); the caller keeps its reference.
int tako_msg_set_object (tako_msg_t *self, const char *name, const json_t *value);

//  Typed getters.
const char *tako_msg_str (tako_msg_t *self, const char *name);
int64_t tako_msg_int (tako_msg_t *self, const char *name, int64_t default_value);
bool tako_msg_bool (tako_msg_t *self, const char *name, bool default_value);
double tako_msg_double (tako_msg_t *self, const char *name, double default_value);
//  The bytes (NULL if absent) and their size in *size (0 if absent).
const void *tako_msg_bin (tako_msg_t *self, const char *name, size_t *size);
//  NULL-terminated array of strings; *count (if not NULL) gets the length.
//  NULL if absent.
const char *const *tako_msg_strlist (tako_msg_t *self, const char *name, size_t *count);
//  Borrowed JSON value; NULL if absent (a JSON null is json_null ()).
json_t *tako_msg_object (tako_msg_t *self, const char *name);

//  Encode into the four protocol frames (signature, address, command,
//  body) appended to a new zmsg. NULL and *error set if a required field
//  is missing.
zmsg_t *tako_msg_encode (tako_msg_t *self, char **error);

//  Encode only the body map; a new buffer in *data/*size the caller frees.
int tako_msg_encode_body (tako_msg_t *self, uint8_t **data, size_t *size, char **error);

//  Decode the four frames given as raw bytes. NULL and *error set (the
//  caller frees it) on any violation; never aborts on bad input.
tako_msg_t *tako_msg_decode (const void *signature, size_t signature_size,
                             const void *address, size_t address_size,
                             const void *command, size_t command_size,
                             const void *body, size_t body_size, char **error);

//  Decode a body for a known command (for the fuzzer and for tests).
tako_msg_t *tako_msg_decode_body (const char *command, const void *body,
                                  size_t body_size, char **error);

//  Decode a zmsg of exactly four frames (no routing id). Does not take it.
tako_msg_t *tako_msg_decode_zmsg (zmsg_t *frames, char **error);

//  Send on a DEALER/PAIR/REQ-like socket. Destroys the message whatever
//  the outcome. 0, or -1 if encoding or sending failed.
int tako_msg_send (tako_msg_t **self_p, zsock_t *socket);

//  Send from a ROUTER to the peer with this routing id (not taken).
//  Destroys the message. -1 if encoding failed or the peer is unknown
//  (with ZMQ_ROUTER_MANDATORY: errno EHOSTUNREACH).
int tako_msg_send_to (tako_msg_t **self_p, zsock_t *router, zframe_t *routing_id);

//  Same, routing id given as a string (an instance id).
int tako_msg_send_to_str (tako_msg_t **self_p, zsock_t *router, const char *routing_id);

//  Receive from a ROUTER and always hand back the sender's routing id
//  (in *routing_id_p, the caller destroys it) when a message arrived,
//  even a malformed one, so the caller can answer with ERROR. Returns
//  the message or NULL (*error set if malformed).
tako_msg_t *tako_msg_recv_router (zsock_t *router, zframe_t **routing_id_p, char **error);

//  Receive one message (blocking, or per the socket's receive timeout).
//  On a ROUTER the first frame is kept as the routing id. NULL on
//  interrupt/timeout (*error untouched) or on a malformed message
//  (*error set; the whole message has been consumed).
tako_msg_t *tako_msg_recv (zsock_t *socket, char **error);

//  Print the message to file, for debugging (binary shown as size,
//  long strings cut).
void tako_msg_print (tako_msg_t *self, FILE *file);

//  Self-test.
void tako_msg_test (bool verbose);

#endif
