/*  The wire protocol: round trips of every command, every way a decoder
    refuses bad input, real sockets, and the docs matching the table.   */

#include <criterion/criterion.h>
#include <errno.h>
#include <unistd.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_proto.h"

//  A body under construction, packed with msgpack-c directly so tests
//  can write what our encoder never would.
typedef struct {
    msgpack_sbuffer buffer;
    msgpack_packer packer;
} body_t;

static void
body_init (body_t *body)
{
    msgpack_sbuffer_init (&body->buffer);
    msgpack_packer_init (&body->packer, &body->buffer, msgpack_sbuffer_write);
}

static void
body_str (body_t *body, const char *text)
{
    msgpack_pack_str (&body->packer, strlen (text));
    msgpack_pack_str_body (&body->packer, text, strlen (text));
}

//  Decode body as command; returns the message and leaves the reason
//  (or NULL) in *error.
static tako_msg_t *
decode_body (const char *command, const void *data, size_t size, char **error)
{
    free (*error);
    *error = NULL;
    return tako_msg_decode_body (command, data, size, error);
}

//  Assert that this body is refused for command with a reason containing expect.
static void
assert_refused (const char *command, const void *data, size_t size, const char *expect)
{
    char *error = NULL;
    tako_msg_t *msg = decode_body (command, data, size, &error);
    cr_assert_null (msg, "decoded what should be refused (%s)", expect);
    cr_assert_not_null (error);
    cr_assert (strstr (error, expect), "reason '%s' lacks '%s'", error, expect);
    free (error);
}

//  The same for a string literal (which may hold NUL bytes).
#define assert_literal_refused(command, literal, expect) \
    assert_refused (command, literal, sizeof (literal) - 1, expect)

static void
assert_body_refused (body_t *body, const char *command, const char *expect)
{
    assert_refused (command, body->buffer.data, body->buffer.size, expect);
    msgpack_sbuffer_destroy (&body->buffer);
}

//  ---------------------------------------------------------------------
//  Round trips.

static json_t *
sample_object (void)
{
    return json_pack ("{s:[i, s, n, b, f], s:{s:s}, s:i}", "list", -7, "x", 1, 0.25,
                      "nested", "k", "v\xc3\xa9", "big", (json_int_t) INT64_MAX);
}

//  Give every field of msg a value of its type; with required_only, only
//  the required ones.
static void
fill_fields (tako_msg_t *msg, const tako_proto_command_t *command, bool required_only)
{
    const char *list [] = { "alpha", "b\xc3\xa9ta", "" };
    uint8_t bytes [] = { 0, 1, 2, 0xff, 0 };
    for (const tako_proto_field_t *field = command->fields; field->name; field++) {
        if (required_only && !field->required)
            continue;
        int rc = -1;
        json_t *object = sample_object ();
        switch (field->type) {
            case TAKO_FIELD_STR:     rc = tako_msg_set_str (msg, field->name, field->name); break;
            case TAKO_FIELD_INT:     rc = tako_msg_set_int (msg, field->name, -123456789012LL); break;
            case TAKO_FIELD_BOOL:    rc = tako_msg_set_bool (msg, field->name, true); break;
            case TAKO_FIELD_DOUBLE:  rc = tako_msg_set_double (msg, field->name, 2.5); break;
            case TAKO_FIELD_BIN:     rc = tako_msg_set_bin (msg, field->name, bytes, sizeof bytes); break;
            case TAKO_FIELD_STRLIST: rc = tako_msg_set_strlist (msg, field->name, list, 3); break;
            case TAKO_FIELD_OBJECT:  rc = tako_msg_set_object (msg, field->name, object); break;
        }
        json_decref (object);
        cr_assert_eq (rc, 0, "%s.%s", command->name, field->name);
    }
}

static void
assert_same_fields (tako_msg_t *a, tako_msg_t *b, const tako_proto_command_t *command)
{
    for (const tako_proto_field_t *field = command->fields; field->name; field++) {
        const char *name = field->name;
        cr_assert_eq (tako_msg_has (a, name), tako_msg_has (b, name), "%s", name);
        if (!tako_msg_has (a, name))
            continue;
        size_t size_a, size_b;
        switch (field->type) {
            case TAKO_FIELD_STR:
                cr_assert_str_eq (tako_msg_str (a, name), tako_msg_str (b, name));
                break;
            case TAKO_FIELD_INT:
                cr_assert_eq (tako_msg_int (a, name, 0), tako_msg_int (b, name, 1));
                break;
            case TAKO_FIELD_BOOL:
                cr_assert_eq (tako_msg_bool (a, name, false), tako_msg_bool (b, name, false));
                break;
            case TAKO_FIELD_DOUBLE:
                cr_assert_eq (tako_msg_double (a, name, 0), tako_msg_double (b, name, 1));
                break;
            case TAKO_FIELD_BIN: {
                const void *bin_a = tako_msg_bin (a, name, &size_a);
                const void *bin_b = tako_msg_bin (b, name, &size_b);
                cr_assert_eq (size_a, size_b);
                cr_assert (memcmp (bin_a, bin_b, size_a) == 0);
                break;
            }
            case TAKO_FIELD_STRLIST: {
                const char *const *list_a = tako_msg_strlist (a, name, &size_a);
                const char *const *list_b = tako_msg_strlist (b, name, &size_b);
                cr_assert_eq (size_a, size_b);
                for (size_t i = 0; i < size_a; i++)
                    cr_assert_str_eq (list_a [i], list_b [i]);
                cr_assert_null (list_b [size_b]);
                break;
            }
            case TAKO_FIELD_OBJECT:
                cr_assert (json_equal (tako_msg_object (a, name), tako_msg_object (b, name)),
                           "%s.%s", command->name, name);
                break;
        }
    }
}

static void
round_trip (const tako_proto_command_t *command, bool required_only)
{
    tako_msg_t *msg = tako_msg_new (command->name);
    cr_assert_not_null (msg, "%s", command->name);
    cr_assert_eq (tako_msg_set_address (msg, "executor.h1-2"), 0);
    fill_fields (msg, command, required_only);
    char *error = NULL;
    zmsg_t *frames = tako_msg_encode (msg, &error);
    cr_assert_not_null (frames, "%s: %s", command->name, error? error: "");
    cr_assert_eq (zmsg_size (frames), TAKO_PROTO_FRAME_COUNT);
    tako_msg_t *copy = tako_msg_decode_zmsg (frames, &error);
    cr_assert_not_null (copy, "%s: %s", command->name, error? error: "");
    cr_assert_str_eq (tako_msg_command (copy), command->name);
    cr_assert_str_eq (tako_msg_address (copy), "executor.h1-2");
    assert_same_fields (msg, copy, command);

    //  Encoding is deterministic: the copy encodes to the same bytes.
    zmsg_t *again = tako_msg_encode (copy, NULL);
    zframe_t *body_1 = zmsg_last (frames);
    zframe_t *body_2 = zmsg_last (again);
    cr_assert (zframe_eq (body_1, body_2), "%s", command->name);
    zmsg_destroy (&again);
    zmsg_destroy (&frames);
    tako_msg_destroy (&copy);
    tako_msg_destroy (&msg);
}

Test (proto, every_command_round_trips_with_all_fields)
{
    size_t count;
    const tako_proto_command_t *table = tako_proto_commands (&count);
    cr_assert_gt (count, 15);
    for (size_t i = 0; i < count; i++)
        round_trip (&table [i], false);
}

Test (proto, every_command_round_trips_with_required_fields_only)
{
    size_t count;
    const tako_proto_command_t *table = tako_proto_commands (&count);
    for (size_t i = 0; i < count; i++)
        round_trip (&table [i], true);
}

Test (proto, dup_copies_everything)
{
    const tako_proto_command_t *command = tako_proto_command_find ("ARTIFACT");
    tako_msg_t *msg = tako_msg_new ("ARTIFACT");
    fill_fields (msg, command, false);
    tako_msg_t *copy = tako_msg_dup (msg);
    tako_msg_destroy (&msg);
    msg = tako_msg_new ("ARTIFACT");
    fill_fields (msg, command, false);
    assert_same_fields (msg, copy, command);
    tako_msg_destroy (&copy);
    tako_msg_destroy (&msg);
}

Test (proto, encode_refuses_missing_required_field)
{
    tako_msg_t *msg = tako_msg_new ("DISPATCH");
    tako_msg_set_str (msg, "job_id", "j");
    char *error = NULL;
    cr_assert_null (tako_msg_encode (msg, &error));
    cr_assert (strstr (error, "missing required field attempt"), "%s", error);
    free (error);
    tako_msg_destroy (&msg);
}

Test (proto, setters_follow_the_table)
{
    tako_msg_t *msg = tako_msg_new ("RESULT");
    cr_assert_eq (tako_msg_set_str (msg, "exit_code", "0"), -1);
    cr_assert_eq (tako_msg_set_int (msg, "exit_code", 0), 0);
    cr_assert_eq (tako_msg_set_int (msg, "no_such", 0), -1);
    cr_assert_eq (tako_msg_set_double (msg, "execution_time", 0.0 / 0.0), -1);
    cr_assert_eq (tako_msg_set_str (msg, "stdout", "bad \xc3\x28 utf8"), -1);
    cr_assert_eq (tako_msg_set_str (msg, "stdout", "fine"), 0);
    cr_assert_eq (tako_msg_unset (msg, "stdout"), 0);
    cr_assert_not (tako_msg_has (msg, "stdout"));
    cr_assert_null (tako_msg_str (msg, "stdout"));
    //  An object may nest 31 deep (32 with the body map); deeper is
    //  refused at once, not when a peer would refuse it.
    json_t *deep = json_array ();
    for (int i = 1; i < TAKO_PROTO_DEPTH_MAX - 1; i++)
        deep = json_pack ("[o]", deep);
    cr_assert_eq (tako_msg_set_object (msg, "output", deep), 0);
    deep = json_pack ("[o]", deep);
    cr_assert_eq (tako_msg_set_object (msg, "output", deep), -1);
    json_decref (deep);
    tako_msg_destroy (&msg);
}

//  ---------------------------------------------------------------------
//  Frames 1-3 and the frame count.

static const char *GOOD_BODY = "\x81\xa6" "job_id" "\xa1" "j";

static char *
decode_frames (const char *tag, const char *address, const char *command,
               const void *body, size_t body_size)
{
    char *error = NULL;
    tako_msg_t *msg = tako_msg_decode (tag, strlen (tag), address, strlen (address),
                                       command, strlen (command), body, body_size, &error);
    tako_msg_destroy (&msg);
    return error;
}

static void
assert_frames_refused (const char *tag, const char *address, const char *command,
                       const char *expect)
{
    char *error = decode_frames (tag, address, command, GOOD_BODY, strlen (GOOD_BODY));
    cr_assert_not_null (error, "accepted %s/%s/%s", tag, address, command);
    cr_assert (strstr (error, expect), "'%s' lacks '%s'", error, expect);
    free (error);
}

Test (proto, frames_good)
{
    cr_assert_null (decode_frames ("TAKO/1", "", "CANCEL", GOOD_BODY, strlen (GOOD_BODY)));
    cr_assert_null (decode_frames ("TAKO/1", "scheduler", "CANCEL", GOOD_BODY, strlen (GOOD_BODY)));
    cr_assert_null (decode_frames ("TAKO/1", "scheduler.a-1_B", "CANCEL", GOOD_BODY, strlen (GOOD_BODY)));
}

Test (proto, frames_refused)
{
    assert_frames_refused ("ZMTP/1", "", "CANCEL", "bad protocol tag");
    assert_frames_refused ("", "", "CANCEL", "bad protocol tag");
    assert_frames_refused ("TAKO/2", "", "CANCEL", "unsupported protocol version 2");
    assert_frames_refused ("TAKO/10", "", "CANCEL", "unsupported protocol version 10");
    assert_frames_refused ("TAKO/", "", "CANCEL", "unsupported protocol version");
    assert_frames_refused ("TAKO/1", "", "LAUNCH", "unknown command LAUNCH");
    assert_frames_refused ("TAKO/1", "", "cancel", "malformed command");
    assert_frames_refused ("TAKO/1", "", "", "empty command");
    assert_frames_refused ("TAKO/1", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG", "longer than 32");
    assert_frames_refused ("TAKO/1", "Scheduler", "CANCEL", "malformed address");
    assert_frames_refused ("TAKO/1", "a.b.c", "CANCEL", "malformed address");
    assert_frames_refused ("TAKO/1", "a.", "CANCEL", "malformed address");
    assert_frames_refused ("TAKO/1", ".x", "CANCEL", "malformed address");
    char long_address [TAKO_PROTO_ADDRESS_MAX + 2];
    memset (long_address, 'a', sizeof long_address - 1);
    long_address [sizeof long_address - 1] = 0;
    assert_frames_refused ("TAKO/1", long_address, "CANCEL", "longer than 128");
}

Test (proto, wrong_frame_count_refused)
{
    zmsg_t *frames = zmsg_new ();
    zmsg_addstr (frames, "TAKO/1");
    zmsg_addstr (frames, "");
    zmsg_addstr (frames, "HEARTBEAT");
    char *error = NULL;
    cr_assert_null (tako_msg_decode_zmsg (frames, &error));
    cr_assert (strstr (error, "want 4 frames, got 3"), "%s", error);
    zmsg_addmem (frames, "\x80", 1);
    zmsg_addmem (frames, "\x80", 1);
    cr_assert_null (tako_msg_decode_zmsg (frames, &error));
    cr_assert (strstr (error, "got 5"), "%s", error);
    free (error);
    zmsg_destroy (&frames);
}

//  ---------------------------------------------------------------------
//  The body: hostile bytes.

Test (proto, oversize_containers_declared_in_five_bytes)
{
    //  map32 / array32 / str32 / bin32 claiming 4 billion entries or bytes.
    assert_literal_refused ("HEARTBEAT", "\xdf\xff\xff\xff\xff", "items");
    assert_literal_refused ("HEARTBEAT", "\xdd\xff\xff\xff\xff", "not a msgpack map");
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\xdd\xff\xff\xff\xff", "items");
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\xdf\x7f\xff\xff\xff", "items");
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\xdb\xff\xff\xff\xff", "truncated");
    assert_literal_refused ("ARTIFACT", "\x81\xa4" "data" "\xc6\xff\xff\xff\xff", "truncated");
    //  Four items declared; after the first key too few bytes remain.
    assert_literal_refused ("CANCEL", "\x82\xa6" "job_id" "\x92\x01", "truncated");
    //  An array of 3 with 2 bytes left.
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\x93\x01\x02", "items");
}

Test (proto, too_many_elements_refused)
{
    body_t body;
    body_init (&body);
    msgpack_pack_map (&body.packer, 1);
    body_str (&body, "input_data");
    msgpack_pack_array (&body.packer, TAKO_PROTO_ELEMENTS_MAX);
    for (int i = 0; i < TAKO_PROTO_ELEMENTS_MAX; i++)
        msgpack_pack_nil (&body.packer);
    assert_body_refused (&body, "SUBMIT", "more than");
}

static void
pack_nested_arrays (body_t *body, int levels)
{
    for (int i = 0; i < levels; i++)
        msgpack_pack_array (&body->packer, i + 1 < levels? 1: 0);
}

Test (proto, nesting_up_to_the_limit_decodes)
{
    body_t body;
    body_init (&body);
    msgpack_pack_map (&body.packer, 3);
    body_str (&body, "request_id");
    body_str (&body, "r");
    body_str (&body, "code");
    body_str (&body, "x");
    body_str (&body, "input_data");
    pack_nested_arrays (&body, TAKO_PROTO_DEPTH_MAX - 1);
    char *error = NULL;
    tako_msg_t *msg = decode_body ("SUBMIT", body.buffer.data, body.buffer.size, &error);
    cr_assert_not_null (msg, "%s", error);
    cr_assert (json_is_array (tako_msg_object (msg, "input_data")));
    tako_msg_destroy (&msg);
    msgpack_sbuffer_destroy (&body.buffer);
}

Test (proto, deep_nesting_refused)
{
    body_t body;
    body_init (&body);
    msgpack_pack_map (&body.packer, 1);
    body_str (&body, "input_data");
    pack_nested_arrays (&body, TAKO_PROTO_DEPTH_MAX);
    assert_body_refused (&body, "SUBMIT", "deeper than 32");
    //  Maps count as much as arrays; an empty container still counts.
    body_init (&body);
    for (int i = 0; i < TAKO_PROTO_DEPTH_MAX; i++) {
        msgpack_pack_map (&body.packer, 1);
        body_str (&body, "k");
    }
    msgpack_pack_map (&body.packer, 0);
    assert_body_refused (&body, "SUBMIT", "deeper");
}

Test (proto, trailing_bytes_refused)
{
    assert_literal_refused ("HEARTBEAT", "\x80\x80", "trailing");
    assert_literal_refused ("HEARTBEAT", "\x80\x00", "trailing");
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\xa1" "j" "\xc0", "trailing");
}

Test (proto, every_truncation_refused)
{
    tako_msg_t *msg = tako_msg_new ("RESULT");
    fill_fields (msg, tako_proto_command_find ("RESULT"), false);
    uint8_t *data;
    size_t size;
    cr_assert_eq (tako_msg_encode_body (msg, &data, &size, NULL), 0);
    for (size_t cut = 0; cut < size; cut++) {
        char *error = NULL;
        cr_assert_null (decode_body ("RESULT", data, cut, &error), "cut at %zu", cut);
        cr_assert_not_null (error);
        free (error);
    }
    char *error = NULL;
    tako_msg_t *whole = decode_body ("RESULT", data, size, &error);
    cr_assert_not_null (whole, "%s", error);
    tako_msg_destroy (&whole);
    free (data);
    tako_msg_destroy (&msg);
}

Test (proto, non_string_keys_refused)
{
    assert_literal_refused ("HEARTBEAT", "\x81\x01\x02", "not a string");
    assert_literal_refused ("HEARTBEAT", "\x81\xc4\x01" "a" "\x01", "not a string");
    body_t body;
    body_init (&body);
    msgpack_pack_map (&body.packer, 1);
    body_str (&body, "params");
    msgpack_pack_map (&body.packer, 1);
    msgpack_pack_int (&body.packer, 7);
    msgpack_pack_int (&body.packer, 8);
    assert_body_refused (&body, "QUERY", "not a string");
}

Test (proto, not_a_map_refused)
{
    assert_literal_refused ("HEARTBEAT", "\x90", "not a msgpack map");
    assert_literal_refused ("HEARTBEAT", "\xa0", "not a msgpack map");
    assert_literal_refused ("HEARTBEAT", "", "empty body");
}

Test (proto, ext_and_reserved_bytes_refused)
{
    assert_literal_refused ("QUERY", "\x81\xa6" "params" "\xd4\x01\x02", "ext");
    assert_literal_refused ("QUERY", "\x81\xa6" "params" "\xc7\x01\x05\x00", "ext");
    assert_literal_refused ("QUERY", "\x81\xa6" "params" "\xc1", "invalid msgpack byte 0xc1");
}

Test (proto, invalid_utf8_refused)
{
    //  In a str field, an object string, an object key, a strlist item.
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\xa2\xc3\x28", "field job_id");
    assert_literal_refused ("QUERY", "\x81\xa6" "params" "\xa2\xed\xa0", "UTF-8");
    assert_literal_refused ("QUERY", "\x81\xa6" "params" "\x81\xa1\xff\xc0", "UTF-8");
    assert_literal_refused ("REGISTER", "\x81\xa8" "services" "\x91\xa1\x80", "field services");
    //  A NUL inside a str field would be cut by C; refused too.
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\xa3" "a\0b", "no NUL");
}

Test (proto, field_rules)
{
    //  Unknown, duplicate, missing, wrong type.
    assert_literal_refused ("CANCEL", "\x82\xa6" "job_id" "\xa1" "j" "\xa3" "foo" "\x01", "unknown field foo");
    assert_literal_refused ("CANCEL", "\x82\xa6" "job_id" "\xa1" "j" "\xa6" "job_id" "\xa1" "k", "duplicate field job_id");
    assert_literal_refused ("CANCEL", "\x80", "missing required field job_id");
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\x07", "field job_id: want str");
    assert_literal_refused ("CANCEL", "\x82\xa6" "job_id" "\xa1" "j" "\xa7" "attempt" "\xc3", "field attempt: want int");
    //  uint64 above INT64_MAX does not fit an int field.
    assert_literal_refused ("CANCEL", "\x82\xa6" "job_id" "\xa1" "j" "\xa7" "attempt"
                    "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "want int");
    //  A required field set to nil is missing.
    assert_literal_refused ("CANCEL", "\x81\xa6" "job_id" "\xc0", "missing required field job_id");
    //  A bin inside an object.
    assert_literal_refused ("QUERY", "\x81\xa6" "params" "\x91\xc4\x01" "a", "binary");
    //  Non-finite doubles.
    assert_literal_refused ("RESULT", "\x81\xae" "execution_time" "\xcb\x7f\xf8\0\0\0\0\0\0", "finite");
}

Test (proto, nil_means_absent_except_for_objects)
{
    body_t full;
    body_init (&full);
    msgpack_pack_map (&full.packer, 5);
    body_str (&full, "job_id"); body_str (&full, "j");
    body_str (&full, "attempt"); msgpack_pack_int (&full.packer, 1);
    body_str (&full, "status"); body_str (&full, "succeeded");
    body_str (&full, "output"); msgpack_pack_nil (&full.packer);
    body_str (&full, "exit_code"); msgpack_pack_nil (&full.packer);
    char *error = NULL;
    tako_msg_t *msg = decode_body ("RESULT", full.buffer.data, full.buffer.size, &error);
    cr_assert_not_null (msg, "%s", error);
    cr_assert (tako_msg_has (msg, "output"));
    cr_assert (json_is_null (tako_msg_object (msg, "output")));
    cr_assert_not (tako_msg_has (msg, "exit_code"));
    cr_assert_eq (tako_msg_int (msg, "exit_code", -1), -1);
    tako_msg_destroy (&msg);
    msgpack_sbuffer_destroy (&full.buffer);
}

Test (proto, ints_accepted_as_doubles)
{
    body_t body;
    body_init (&body);
    msgpack_pack_map (&body.packer, 4);
    body_str (&body, "job_id"); body_str (&body, "j");
    body_str (&body, "attempt"); msgpack_pack_int (&body.packer, 2);
    body_str (&body, "status"); body_str (&body, "failed");
    body_str (&body, "execution_time"); msgpack_pack_int (&body.packer, -3);
    char *error = NULL;
    tako_msg_t *msg = decode_body ("RESULT", body.buffer.data, body.buffer.size, &error);
    cr_assert_not_null (msg, "%s", error);
    cr_assert_eq (tako_msg_double (msg, "execution_time", 0), -3.0);
    cr_assert_eq (tako_msg_int (msg, "attempt", 0), 2);
    tako_msg_destroy (&msg);
    msgpack_sbuffer_destroy (&body.buffer);
}

Test (proto, oversize_body_refused)
{
    size_t size = (size_t) TAKO_PROTO_BODY_MAX + 1;
    char *big = calloc (1, size);
    big [0] = (char) 0x80;
    assert_refused ("HEARTBEAT", big, size, "larger than");
    free (big);
    //  And the encoder will not produce one.
    tako_msg_t *msg = tako_msg_new ("ARTIFACT");
    fill_fields (msg, tako_proto_command_find ("ARTIFACT"), false);
    char *blob = calloc (1, TAKO_PROTO_BODY_MAX);
    cr_assert_eq (tako_msg_set_bin (msg, "data", blob, TAKO_PROTO_BODY_MAX), 0);
    char *error = NULL;
    cr_assert_null (tako_msg_encode (msg, &error));
    cr_assert (strstr (error, "larger than"), "%s", error);
    free (error);
    free (blob);
    tako_msg_destroy (&msg);
}

//  ---------------------------------------------------------------------
//  Real sockets.

Test (proto, router_dealer_over_ipc)
{
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "ipc:///tmp/tako-proto-%d.ipc", (int) getpid ());
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_router_mandatory (router, 1);
    zsock_set_maxmsgsize (router, TAKO_PROTO_SOCKET_MAXMSGSIZE);
    cr_assert_eq (zsock_bind (router, "%s", endpoint), 0);
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_identity (dealer, "executor.e1");
    cr_assert_eq (zsock_connect (dealer, "%s", endpoint), 0);
    zsock_set_rcvtimeo (router, 5000);
    zsock_set_rcvtimeo (dealer, 5000);

    const char *services [] = { "executor" };
    tako_msg_t *msg = tako_msg_new ("REGISTER");
    tako_msg_set_str (msg, "instance", "executor.e1");
    tako_msg_set_strlist (msg, "services", services, 1);
    cr_assert_eq (tako_msg_send (&msg, dealer), 0);

    char *error = NULL;
    zframe_t *sender = NULL;
    tako_msg_t *got = tako_msg_recv_router (router, &sender, &error);
    cr_assert_not_null (got, "%s", error? error: "timeout");
    cr_assert (zframe_streq (sender, "executor.e1"));
    cr_assert_str_eq (tako_msg_routing_id_str (got), "executor.e1");
    cr_assert_str_eq (tako_msg_command (got), "REGISTER");
    cr_assert_str_eq (tako_msg_strlist (got, "services", NULL) [0], "executor");
    tako_msg_destroy (&got);

    //  The broker forwards a DISPATCH to that instance by its id.
    msg = tako_msg_new ("DISPATCH");
    fill_fields (msg, tako_proto_command_find ("DISPATCH"), true);
    tako_msg_set_address (msg, "scheduler.s1");
    cr_assert_eq (tako_msg_send_to_str (&msg, router, "executor.e1"), 0);
    got = tako_msg_recv (dealer, &error);
    cr_assert_not_null (got, "%s", error? error: "timeout");
    cr_assert_str_eq (tako_msg_address (got), "scheduler.s1");
    cr_assert_null (tako_msg_routing_id (got));
    tako_msg_destroy (&got);

    //  With ROUTER_MANDATORY, an unknown peer is an error, not a drop.
    msg = tako_msg_new ("HEARTBEAT");
    cr_assert_eq (tako_msg_send_to_str (&msg, router, "executor.gone"), -1);
    cr_assert_eq (errno, EHOSTUNREACH);
    cr_assert_null (msg);

    zframe_destroy (&sender);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
    unlink (endpoint + strlen ("ipc://"));
}

Test (proto, pair_over_inproc_and_junk_is_consumed)
{
    zsock_t *a = zsock_new_pair ("@inproc://tako-proto-pair");
    zsock_t *b = zsock_new_pair (">inproc://tako-proto-pair");
    zsock_set_rcvtimeo (b, 5000);
    //  Junk first, then a good message: the junk is reported and gone.
    zstr_sendx (a, "TAKO/1", "", "HEARTBEAT", "\xdf\xff\xff\xff\xff", NULL);
    tako_msg_t *heartbeat = tako_msg_new ("HEARTBEAT");
    cr_assert_eq (tako_msg_send (&heartbeat, a), 0);
    char *error = NULL;
    cr_assert_null (tako_msg_recv (b, &error));
    cr_assert (error && strstr (error, "items"), "%s", error? error: "none");
    free (error);
    error = NULL;
    tako_msg_t *got = tako_msg_recv (b, &error);
    cr_assert_not_null (got, "%s", error? error: "timeout");
    cr_assert_str_eq (tako_msg_command (got), "HEARTBEAT");
    tako_msg_destroy (&got);
    zsock_destroy (&b);
    zsock_destroy (&a);
}

//  ---------------------------------------------------------------------
//  docs/protocol.md documents the table exactly.

//  Room for the table in the docs check: commands, and fields per command.
#define DOC_TABLE_MAX 64

typedef struct {
    char field [TAKO_PROTO_FIELD_NAME_MAX + 1];
    char type [16];
    char presence [16];
} doc_row_t;

//  The %64[ width below is the field name limit.
_Static_assert (TAKO_PROTO_FIELD_NAME_MAX == 64, "update doc_row_parse");

//  A field row of a command section: "| `name` | type | required | ... |".
static bool
doc_row_parse (const char *line, doc_row_t *row)
{
    return sscanf (line, "| `%64[a-z0-9_]` | %15[a-z] | %15[a-z] |",
                   row->field, row->type, row->presence) == 3;
}

static char *
doc_read (void)
{
    FILE *file = fopen ("docs/protocol.md", "r");
    cr_assert_not_null (file, "docs/protocol.md not found (cwd must be the repo root)");
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    char chunk [4096];
    size_t got;
    while ((got = fread (chunk, 1, sizeof chunk, file)) > 0)
        fwrite (chunk, 1, got, out);
    fclose (out);
    fclose (file);
    return text;
}

Test (proto, docs_match_the_table)
{
    char *text = doc_read ();
    size_t count;
    const tako_proto_command_t *table = tako_proto_commands (&count);
    bool seen_command [DOC_TABLE_MAX] = { false };
    static bool seen_field [DOC_TABLE_MAX][DOC_TABLE_MAX];
    memset (seen_field, 0, sizeof seen_field);
    cr_assert_lt (count, DOC_TABLE_MAX);
    for (size_t i = 0; i < count; i++)
        cr_assert_lt (table [i].field_count, DOC_TABLE_MAX);
    const tako_proto_command_t *section = NULL;
    char *save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        if (strncmp (line, "## ", 3) == 0)
            section = NULL;                 //  a new chapter ends the command sections
        if (strncmp (line, "### ", 4) == 0) {
            section = tako_proto_command_find (line + 4);
            bool is_command_heading = strspn (line + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == strlen (line + 4);
            cr_assert (section || !is_command_heading,
                       "docs/protocol.md documents %s, which the table lacks", line + 4);
            if (section) {
                cr_assert_not (seen_command [section - table], "%s documented twice", section->name);
                seen_command [section - table] = true;
            }
            continue;
        }
        doc_row_t row;
        if (!section || !doc_row_parse (line, &row))
            continue;
        const tako_proto_field_t *field = tako_proto_field_find (section, row.field);
        cr_assert_not_null (field, "docs: %s has field %s, the table does not",
                            section->name, row.field);
        cr_assert_str_eq (row.type, tako_proto_type_name (field->type),
                          "docs: %s.%s type", section->name, row.field);
        cr_assert_str_eq (row.presence, field->required? "required": "optional",
                          "docs: %s.%s presence", section->name, row.field);
        size_t index = field - section->fields;
        cr_assert_not (seen_field [section - table][index], "docs: %s.%s documented twice",
                       section->name, row.field);
        seen_field [section - table][index] = true;
    }
    for (size_t i = 0; i < count; i++) {
        cr_assert (seen_command [i], "docs/protocol.md lacks a section for %s", table [i].name);
        for (size_t f = 0; f < table [i].field_count; f++)
            cr_assert (seen_field [i][f], "docs: %s lacks field %s",
                       table [i].name, table [i].fields [f].name);
    }
    free (text);
}

//  The hex dump in docs/protocol.md §7 is what the encoder produces.
#define DOC_HEX_COLUMN 20

//  Append the hex bytes of one dump line (from DOC_HEX_COLUMN up to the
//  first word that is not a hex byte) to bytes; returns the new count.
static size_t
doc_hex_line (const char *line, uint8_t *bytes, size_t count, size_t max)
{
    if (strlen (line) <= DOC_HEX_COLUMN)
        return count;
    const char *cursor = line + DOC_HEX_COLUMN;
    unsigned value;
    int start, used;
    //  Exactly two hex digits, then a space or the end of the line.
    while (count < max && sscanf (cursor, " %n%2x%n", &start, &value, &used) == 1
           && used - start == 2 && (cursor [used] == ' ' || cursor [used] == 0)) {
        bytes [count++] = (uint8_t) value;
        cursor += used;
    }
    return count;
}

Test (proto, docs_worked_example_matches_the_encoder)
{
    tako_msg_t *msg = tako_msg_new ("SUBMIT");
    tako_msg_set_address (msg, "scheduler");
    tako_msg_set_str (msg, "request_id", "r1");
    tako_msg_set_str (msg, "code", "print(1)");
    json_t *input = json_pack ("{s:i}", "n", 2);
    tako_msg_set_object (msg, "input_data", input);
    json_decref (input);
    tako_msg_set_int (msg, "timeout", 5);
    zmsg_t *frames = tako_msg_encode (msg, NULL);
    cr_assert_not_null (frames);
    uint8_t expect [256];
    size_t expect_size = 0;
    for (zframe_t *frame = zmsg_first (frames); frame; frame = zmsg_next (frames)) {
        memcpy (expect + expect_size, zframe_data (frame), zframe_size (frame));
        expect_size += zframe_size (frame);
    }

    char *text = doc_read ();
    char *example = strstr (text, "## 7.");
    cr_assert_not_null (example, "docs: no worked example");
    char *block = strstr (example, "```\n");
    cr_assert_not_null (block);
    block += 4;
    char *end = strstr (block, "```");
    cr_assert_not_null (end);
    *end = 0;
    uint8_t dumped [256];
    size_t dumped_size = 0;
    char *save = NULL;
    for (char *line = strtok_r (block, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
        dumped_size = doc_hex_line (line, dumped, dumped_size, sizeof dumped);
    cr_assert_eq (dumped_size, expect_size, "docs dump %zu bytes, encoder %zu",
                  dumped_size, expect_size);
    cr_assert (memcmp (dumped, expect, expect_size) == 0, "docs hex dump differs");
    free (text);
    zmsg_destroy (&frames);
    tako_msg_destroy (&msg);
}
