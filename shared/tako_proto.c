/*  tako_proto — command table as data, frame checks, and the body
    pre-scan that runs before msgpack-c ever sees untrusted bytes.      */

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_proto.h"

//  ---------------------------------------------------------------------
//  The table as static arrays, generated from the X-macros in the header.

#define FIELD_ENTRY_(fname, ftype, presence, purpose) \
    { #fname, TAKO_FIELD_##ftype, TAKO_FIELD_##presence == TAKO_FIELD_REQUIRED, purpose },
#define FIELD_ARRAY_(cname, cpurpose) \
    static const tako_proto_field_t fields_##cname [] = { \
        TAKO_PROTO_FIELDS_##cname (FIELD_ENTRY_) \
        { NULL, 0, false, NULL } \
    };
TAKO_PROTO_COMMANDS (FIELD_ARRAY_)
#undef FIELD_ARRAY_
#undef FIELD_ENTRY_

#define COMMAND_ENTRY_(cname, cpurpose) \
    { TAKO_CMD_##cname, #cname, cpurpose, fields_##cname, \
      sizeof (fields_##cname) / sizeof (fields_##cname [0]) - 1 },
static const tako_proto_command_t commands [] = {
    TAKO_PROTO_COMMANDS (COMMAND_ENTRY_)
};
#undef COMMAND_ENTRY_
#define COMMAND_COUNT (sizeof (commands) / sizeof (commands [0]))

static const char *type_names [] = {
    [TAKO_FIELD_STR] = "str", [TAKO_FIELD_INT] = "int", [TAKO_FIELD_BOOL] = "bool",
    [TAKO_FIELD_DOUBLE] = "double", [TAKO_FIELD_BIN] = "bin",
    [TAKO_FIELD_STRLIST] = "strlist", [TAKO_FIELD_OBJECT] = "object"
};

const tako_proto_command_t *
tako_proto_commands (size_t *count)
{
    if (count)
        *count = COMMAND_COUNT;
    return commands;
}

const tako_proto_command_t *
tako_proto_command_find (const char *name)
{
    for (size_t i = 0; name && i < COMMAND_COUNT; i++)
        if (strcmp (commands [i].name, name) == 0)
            return &commands [i];
    return NULL;
}

const tako_proto_command_t *
tako_proto_command_by_id (tako_command_id_t id)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (commands [i].id == id)
            return &commands [i];
    return NULL;
}

const tako_proto_field_t *
tako_proto_field_find (const tako_proto_command_t *command, const char *name)
{
    if (!command || !name)
        return NULL;
    for (const tako_proto_field_t *field = command->fields; field->name; field++)
        if (strcmp (field->name, name) == 0)
            return field;
    return NULL;
}

const char *
tako_proto_type_name (tako_field_type_t type)
{
    if ((int) type >= TAKO_FIELD_STR && (int) type <= TAKO_FIELD_OBJECT)
        return type_names [type];
    return "unknown";
}

//  ---------------------------------------------------------------------
//  Errors: short, and never quoting more than a few bytes of input.

int
tako_proto_fail (char **error, const char *format, ...)
{
    if (error) {
        va_list args;
        va_start (args, format);
        char *text = NULL;
        if (vasprintf (&text, format, args) < 0)
            text = NULL;
        va_end (args);
        free (*error);
        *error = text;
    }
    return -1;
}

//  ---------------------------------------------------------------------
//  Frames 1 to 3.

//  Longest foreign version number quoted back in an error.
#define VERSION_TEXT_MAX 6

int
tako_proto_check_signature (const void *data, size_t size, char **error)
{
    const char *bytes = data;
    size_t name_size = strlen (TAKO_PROTO_NAME);
    if (!data || size < name_size + 1 || memcmp (bytes, TAKO_PROTO_NAME "/", name_size + 1) != 0)
        return tako_proto_fail (error, "not a TAKO message (bad protocol tag)");
    if (size != TAKO_PROTO_SIGNATURE_SIZE
    ||  memcmp (bytes, TAKO_PROTO_SIGNATURE, TAKO_PROTO_SIGNATURE_SIZE) != 0) {
        //  Say which version the peer speaks, if it is short and printable.
        char version [VERSION_TEXT_MAX + 1] = "";
        size_t length = size - name_size - 1;
        bool printable = length > 0 && length <= VERSION_TEXT_MAX;
        for (size_t i = 0; printable && i < length; i++)
            printable = isdigit ((unsigned char) bytes [name_size + 1 + i]);
        if (printable)
            memcpy (version, bytes + name_size + 1, length);
        return tako_proto_fail (error, "unsupported protocol version %s (this peer speaks %s)",
                     printable? version: "?", TAKO_PROTO_SIGNATURE);
    }
    return 0;
}

static bool
is_service_char (char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (!first && ((c >= '0' && c <= '9') || c == '-'));
}

static bool
is_suffix_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

//  Length of the service name at the start of text (0 if none).
static size_t
service_prefix_length (const char *text, size_t size)
{
    size_t length = 0;
    while (length < size && is_service_char (text [length], length == 0))
        length++;
    return length;
}

static bool
address_is_valid (const char *text, size_t size)
{
    if (size == 0)
        return true;
    if (size > TAKO_PROTO_ADDRESS_MAX)
        return false;
    size_t service = service_prefix_length (text, size);
    if (service == 0)
        return false;
    if (service == size)
        return true;
    if (text [service] != '.' || service + 1 == size)
        return false;
    for (size_t i = service + 1; i < size; i++)
        if (!is_suffix_char (text [i]))
            return false;
    return true;
}

bool
tako_proto_is_service_name (const char *name)
{
    if (!name)
        return false;
    size_t size = strlen (name);
    return size > 0 && size <= TAKO_PROTO_ADDRESS_MAX
        && service_prefix_length (name, size) == size;
}

bool
tako_proto_is_instance_id (const char *name)
{
    if (!name)
        return false;
    size_t size = strlen (name);
    return size > 0 && !tako_proto_is_service_name (name) && address_is_valid (name, size);
}

char *
tako_proto_address_service (const char *address)
{
    if (!address || !*address || !address_is_valid (address, strlen (address)))
        return NULL;
    return strndup (address, service_prefix_length (address, strlen (address)));
}

int
tako_proto_check_address (const void *data, size_t size, char **error)
{
    if (size > TAKO_PROTO_ADDRESS_MAX)
        return tako_proto_fail (error, "address longer than %d bytes", TAKO_PROTO_ADDRESS_MAX);
    if (size > 0 && !address_is_valid (data, size))
        return tako_proto_fail (error, "malformed address (want a service name or SERVICE.SUFFIX)");
    return 0;
}

int
tako_proto_check_command (const void *data, size_t size, char **error)
{
    const char *text = data;
    if (size == 0)
        return tako_proto_fail (error, "empty command");
    if (size > TAKO_PROTO_COMMAND_MAX)
        return tako_proto_fail (error, "command longer than %d bytes", TAKO_PROTO_COMMAND_MAX);
    for (size_t i = 0; i < size; i++)
        if (!((text [i] >= 'A' && text [i] <= 'Z') || text [i] == '_'
              || (i > 0 && text [i] >= '0' && text [i] <= '9')))
            return tako_proto_fail (error, "malformed command (want upper-case ASCII)");
    char name [TAKO_PROTO_COMMAND_MAX + 1];
    memcpy (name, text, size);
    name [size] = 0;
    if (!tako_proto_command_find (name))
        return tako_proto_fail (error, "unknown command %s", name);
    return 0;
}

//  ---------------------------------------------------------------------
//  UTF-8, per RFC 3629: shortest form only, no surrogates, ≤ U+10FFFF.

bool
tako_proto_utf8_valid (const void *data, size_t size)
{
    const uint8_t *bytes = data;
    size_t i = 0;
    while (i < size) {
        uint8_t lead = bytes [i];
        if (lead < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t point, minimum;
        if ((lead & 0xE0) == 0xC0)      { extra = 1; point = lead & 0x1F; minimum = 0x80; }
        else if ((lead & 0xF0) == 0xE0) { extra = 2; point = lead & 0x0F; minimum = 0x800; }
        else if ((lead & 0xF8) == 0xF0) { extra = 3; point = lead & 0x07; minimum = 0x10000; }
        else
            return false;
        if (size - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((bytes [i + k] & 0xC0) != 0x80)
                return false;
            point = (point << 6) | (bytes [i + k] & 0x3F);
        }
        if (point < minimum || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

//  ---------------------------------------------------------------------
//  The body pre-scan.
//
//  One pass, no allocation: a fixed stack of open containers, each with
//  the number of items not yet started. `pending` is the sum of those
//  counts; since every item takes at least one byte, pending may never
//  exceed the bytes left, which is what bounds msgpack-c's reservations.

typedef struct {
    uint32_t remaining;         //  items (keys and values) not yet started
    bool is_map;
    bool expect_key;            //  in a map: the next item is a key
} scan_level_t;

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    scan_level_t stack [TAKO_PROTO_DEPTH_MAX];
    size_t depth;
    uint64_t pending;
    uint64_t elements;
} scan_t;

//  Header of one msgpack value: its size, and for str/bin its payload
//  length, for array/map its item count.
typedef enum { ITEM_SCALAR, ITEM_STR, ITEM_BIN, ITEM_ARRAY, ITEM_MAP, ITEM_EXT, ITEM_BAD } item_kind_t;

typedef struct {
    item_kind_t kind;
    size_t header;              //  bytes of type + length (+ fixed payload for scalars)
    uint64_t length;            //  payload bytes (str/bin) or items (array/map)
} item_t;

static uint64_t
read_big_endian (const uint8_t *bytes, size_t width)
{
    uint64_t value = 0;
    for (size_t i = 0; i < width; i++)
        value = (value << 8) | bytes [i];
    return value;
}

//  Classify the value at p (with `left` > 0 bytes available). Returns -1
//  if its header does not fit.
static int
item_read (const uint8_t *p, size_t left, item_t *item)
{
    uint8_t b = p [0];
    size_t width = 0;
    *item = (item_t) { ITEM_SCALAR, 1, 0 };
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;                                           //  fixint, nil, bool
    if (b >= 0x80 && b <= 0x8f) { item->kind = ITEM_MAP;   item->length = b & 0x0f; return 0; }
    if (b >= 0x90 && b <= 0x9f) { item->kind = ITEM_ARRAY; item->length = b & 0x0f; return 0; }
    if (b >= 0xa0 && b <= 0xbf) { item->kind = ITEM_STR;   item->length = b & 0x1f; return 0; }
    switch (b) {
        case 0xcc: case 0xd0: item->header = 2; break;      //  8-bit ints
        case 0xcd: case 0xd1: item->header = 3; break;
        case 0xca: case 0xce: case 0xd2: item->header = 5; break;
        case 0xcb: case 0xcf: case 0xd3: item->header = 9; break;
        case 0xd9: item->kind = ITEM_STR;   width = 1; break;
        case 0xda: item->kind = ITEM_STR;   width = 2; break;
        case 0xdb: item->kind = ITEM_STR;   width = 4; break;
        case 0xc4: item->kind = ITEM_BIN;   width = 1; break;
        case 0xc5: item->kind = ITEM_BIN;   width = 2; break;
        case 0xc6: item->kind = ITEM_BIN;   width = 4; break;
        case 0xdc: item->kind = ITEM_ARRAY; width = 2; break;
        case 0xdd: item->kind = ITEM_ARRAY; width = 4; break;
        case 0xde: item->kind = ITEM_MAP;   width = 2; break;
        case 0xdf: item->kind = ITEM_MAP;   width = 4; break;
        case 0xc7: case 0xc8: case 0xc9:
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            item->kind = ITEM_EXT; return 0;
        default:
            item->kind = ITEM_BAD; return 0;                //  0xc1 is never used
    }
    if (width) {
        item->header = 1 + width;
        if (left < item->header)
            return -1;
        item->length = read_big_endian (p + 1, width);
    }
    return left < item->header? -1: 0;
}

//  Start an item: it leaves the innermost container's count. Returns
//  true if that item is a map key.
static bool
scan_item_start (scan_t *scan)
{
    if (scan->depth == 0)
        return false;
    scan_level_t *level = &scan->stack [scan->depth - 1];
    bool is_key = level->is_map && level->expect_key;
    level->remaining--;
    scan->pending--;
    if (level->is_map)
        level->expect_key = !level->expect_key;
    return is_key;
}

//  After an item ends: close every container whose items have all ended.
static void
scan_close_finished (scan_t *scan)
{
    while (scan->depth > 0 && scan->stack [scan->depth - 1].remaining == 0)
        scan->depth--;
}

static int
scan_container_open (scan_t *scan, const item_t *item, char **error)
{
    if (scan->depth >= TAKO_PROTO_DEPTH_MAX)
        return tako_proto_fail (error, "body nested deeper than %d", TAKO_PROTO_DEPTH_MAX);
    uint64_t items = item->kind == ITEM_MAP? item->length * 2: item->length;
    size_t left = scan->size - scan->pos;
    if (scan->pending + items > left)
        return tako_proto_fail (error, "body declares %llu items with %zu bytes left",
                     (unsigned long long) items, left);
    scan->elements += items;
    if (scan->elements > TAKO_PROTO_ELEMENTS_MAX)
        return tako_proto_fail (error, "body has more than %d elements", TAKO_PROTO_ELEMENTS_MAX);
    if (items > 0) {
        scan->stack [scan->depth++] = (scan_level_t) {
            (uint32_t) items, item->kind == ITEM_MAP, item->kind == ITEM_MAP
        };
        scan->pending += items;
    }
    return 0;
}

static int
scan_one (scan_t *scan, char **error)
{
    item_t item;
    if (item_read (scan->data + scan->pos, scan->size - scan->pos, &item) < 0)
        return tako_proto_fail (error, "body truncated");
    if (item.kind == ITEM_EXT)
        return tako_proto_fail (error, "body contains a msgpack ext value");
    if (item.kind == ITEM_BAD)
        return tako_proto_fail (error, "body contains an invalid msgpack byte 0x%02x",
                     scan->data [scan->pos]);
    if (scan->depth == 0 && item.kind != ITEM_MAP)
        return tako_proto_fail (error, "body is not a msgpack map");
    if (scan_item_start (scan) && item.kind != ITEM_STR)
        return tako_proto_fail (error, "body has a map key that is not a string");
    scan->pos += item.header;
    size_t left = scan->size - scan->pos;
    if (item.kind == ITEM_STR || item.kind == ITEM_BIN) {
        //  The payload, plus one byte for every item not yet started.
        if (item.length > left || scan->pending > left - item.length)
            return tako_proto_fail (error, "body truncated (string of %llu bytes)",
                         (unsigned long long) item.length);
        scan->pos += item.length;
    }
    else
    if (scan->pending > left)
        return tako_proto_fail (error, "body truncated");
    if ((item.kind == ITEM_ARRAY || item.kind == ITEM_MAP)
    &&  scan_container_open (scan, &item, error) < 0)
        return -1;
    scan_close_finished (scan);
    return 0;
}

int
tako_proto_body_scan (const void *data, size_t size, char **error)
{
    if (!data || size == 0)
        return tako_proto_fail (error, "empty body");
    if (size > TAKO_PROTO_BODY_MAX)
        return tako_proto_fail (error, "body larger than %d bytes", TAKO_PROTO_BODY_MAX);
    scan_t scan = { .data = data, .size = size };
    //  The top-level map: read it, then items until every container closed.
    if (scan_one (&scan, error) < 0)
        return -1;
    while (scan.depth > 0) {
        if (scan.pos >= scan.size)
            return tako_proto_fail (error, "body truncated");
        if (scan_one (&scan, error) < 0)
            return -1;
    }
    if (scan.pos != scan.size)
        return tako_proto_fail (error, "%zu trailing bytes after the body map", scan.size - scan.pos);
    return 0;
}

//  ---------------------------------------------------------------------
//  Self-test: the table and the scanner, as a reader would use them.

static void
assert_scan_fails (const char *bytes, size_t size, const char *expect)
{
    char *error = NULL;
    assert (tako_proto_body_scan (bytes, size, &error) == -1);
    assert (error && strstr (error, expect));
    free (error);
}

void
tako_proto_test (bool verbose)
{
    (void) verbose;
    //  Every command has a unique name and unique field names.
    size_t count;
    const tako_proto_command_t *table = tako_proto_commands (&count);
    assert (count == TAKO_CMD_COUNT_ - 1);
    for (size_t i = 0; i < count; i++) {
        assert (tako_proto_command_find (table [i].name) == &table [i]);
        assert (tako_proto_command_by_id (table [i].id) == &table [i]);
        for (size_t f = 0; f < table [i].field_count; f++) {
            assert (tako_proto_field_find (&table [i], table [i].fields [f].name)
                    == &table [i].fields [f]);
            assert (strlen (table [i].fields [f].name) <= TAKO_PROTO_FIELD_NAME_MAX);
        }
    }
    const tako_proto_command_t *submit = tako_proto_command_find ("SUBMIT");
    assert (submit && submit->id == TAKO_CMD_SUBMIT);
    const tako_proto_field_t *code = tako_proto_field_find (submit, "code");
    assert (code && code->type == TAKO_FIELD_STR && code->required);
    assert (!tako_proto_field_find (submit, "nope"));
    assert (!tako_proto_command_find ("submit"));
    assert (streq (tako_proto_type_name (TAKO_FIELD_STRLIST), "strlist"));

    //  Frames 1-3.
    char *error = NULL;
    assert (tako_proto_check_signature ("TAKO/1", 6, NULL) == 0);
    assert (tako_proto_check_signature ("TAKO/2", 6, &error) == -1);
    assert (strstr (error, "version 2"));
    zstr_free (&error);
    assert (tako_proto_check_signature ("HTTP/1", 6, NULL) == -1);
    assert (tako_proto_check_address ("", 0, NULL) == 0);
    assert (tako_proto_check_address ("scheduler", 9, NULL) == 0);
    assert (tako_proto_check_address ("executor.h1-42", 14, NULL) == 0);
    assert (tako_proto_check_address ("a.b.c", 5, NULL) == -1);
    assert (tako_proto_check_address ("Sched", 5, NULL) == -1);
    assert (tako_proto_check_command ("SUBMIT", 6, NULL) == 0);
    assert (tako_proto_check_command ("FLY", 3, NULL) == -1);
    assert (tako_proto_is_service_name ("dlq"));
    assert (tako_proto_is_instance_id ("dlq.x1"));
    assert (!tako_proto_is_instance_id ("dlq"));
    char *service = tako_proto_address_service ("executor.h1");
    assert (streq (service, "executor"));
    free (service);

    //  UTF-8.
    assert (tako_proto_utf8_valid ("h\xc3\xa9", 3));
    assert (!tako_proto_utf8_valid ("\xc0\xaf", 2));            //  overlong '/'
    assert (!tako_proto_utf8_valid ("\xed\xa0\x80", 3));        //  surrogate
    assert (!tako_proto_utf8_valid ("\xe2\x82", 2));            //  truncated

    //  The scanner: {"a": [1, "x"]} is fine; what follows is not.
    assert (tako_proto_body_scan ("\x81\xa1" "a\x92\x01\xa1x", 7, NULL) == 0);
    assert (tako_proto_body_scan ("\x80", 1, NULL) == 0);
    assert_scan_fails ("\xdf\xff\xff\xff\xff", 5, "items");   //  2^32-1 pairs in 5 bytes
    assert_scan_fails ("\x81\xa1" "a\xdd\xff\xff\xff\xff", 8, "items");
    assert_scan_fails ("\x81\x01\x02", 3, "key");
    assert_scan_fails ("\x80\x00", 2, "trailing");
    assert_scan_fails ("\x81\xa1" "a\xd4\x01\x02", 6, "ext");
    assert_scan_fails ("\x81\xa1" "a\xdb\xff\xff\xff\xff", 8, "truncated");
    assert_scan_fails ("\x92\x01\x02", 3, "not a msgpack map");
    assert_scan_fails ("\x81\xa1" "a", 3, "truncated");
    char deep [TAKO_PROTO_DEPTH_MAX + 8];
    deep [0] = (char) 0x81; deep [1] = (char) 0xa1; deep [2] = 'a';
    for (size_t i = 3; i < sizeof deep; i++)
        deep [i] = (char) 0x91;                             //  [[[[...
    assert_scan_fails (deep, sizeof deep, "deeper");
}
