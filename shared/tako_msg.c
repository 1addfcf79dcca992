/*  tako_msg — one protocol message; encoding, safe decoding, send, recv.

    Field values live in an array parallel to the command's field table,
    so every lookup is by the table and a message can only ever hold the
    fields its command defines.                                          */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "tako_proto.h"

typedef struct {
    bool set;
    union {
        char *str;
        int64_t integer;
        bool boolean;
        double real;
        struct { uint8_t *data; size_t size; } bin;
        struct { char **items; size_t count; } list;   //  items NULL-terminated
        json_t *json;
    } as;
} value_t;

struct _tako_msg_t {
    const tako_proto_command_t *command;
    char address [TAKO_PROTO_ADDRESS_MAX + 1];
    zframe_t *routing_id;           //  set by recv on a ROUTER
    char *routing_id_str;           //  the same when it is a valid address
    value_t *values;                //  one per command field
};

//  How much of a string field tako_msg_print shows.
#define PRINT_STRING_MAX  120


//  ---------------------------------------------------------------------
//  Values.

static void
value_clear (value_t *value, tako_field_type_t type)
{
    if (!value->set)
        return;
    switch (type) {
        case TAKO_FIELD_STR:     free (value->as.str); break;
        case TAKO_FIELD_BIN:     free (value->as.bin.data); break;
        case TAKO_FIELD_OBJECT:  json_decref (value->as.json); break;
        case TAKO_FIELD_STRLIST:
            for (size_t i = 0; i < value->as.list.count; i++)
                free (value->as.list.items [i]);
            free (value->as.list.items);
            break;
        default: break;
    }
    memset (value, 0, sizeof *value);
}

//  A NULL-terminated copy of count strings, or NULL.
static char **
strlist_copy (const char *const *items, size_t count)
{
    char **copy = calloc (count + 1, sizeof (char *));
    for (size_t i = 0; copy && i < count; i++)
        if (!(copy [i] = strdup (items [i]))) {
            while (i > 0)
                free (copy [--i]);
            free (copy);
            return NULL;
        }
    return copy;
}

static int
value_copy (value_t *target, const value_t *source, tako_field_type_t type)
{
    *target = *source;
    if (!source->set)
        return 0;
    switch (type) {
        case TAKO_FIELD_STR:
            target->as.str = strdup (source->as.str);
            return target->as.str? 0: -1;
        case TAKO_FIELD_BIN:
            target->as.bin.data = malloc (source->as.bin.size + 1);
            if (!target->as.bin.data)
                return -1;
            memcpy (target->as.bin.data, source->as.bin.data, source->as.bin.size);
            return 0;
        case TAKO_FIELD_STRLIST:
            target->as.list.items = strlist_copy ((const char *const *) source->as.list.items,
                                                  source->as.list.count);
            return target->as.list.items? 0: -1;
        case TAKO_FIELD_OBJECT:
            target->as.json = json_deep_copy (source->as.json);
            return target->as.json? 0: -1;
        default:
            return 0;
    }
}

//  ---------------------------------------------------------------------
//  Construction.

static tako_msg_t *
msg_new_for (const tako_proto_command_t *command)
{
    tako_msg_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->command = command;
    //  One spare slot so a command without fields still gets an array.
    self->values = calloc (command->field_count + 1, sizeof (value_t));
    if (!self->values) {
        free (self);
        return NULL;
    }
    return self;
}

tako_msg_t *
tako_msg_new (const char *command)
{
    const tako_proto_command_t *entry = tako_proto_command_find (command);
    return entry? msg_new_for (entry): NULL;
}

void
tako_msg_destroy (tako_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_msg_t *self = *self_p;
    for (size_t i = 0; i < self->command->field_count; i++)
        value_clear (&self->values [i], self->command->fields [i].type);
    free (self->values);
    zframe_destroy (&self->routing_id);
    free (self->routing_id_str);
    free (self);
    *self_p = NULL;
}

//  Remember the routing id, and its string form when it is an address.
static int
msg_set_routing_id (tako_msg_t *self, zframe_t *routing_id)
{
    zframe_destroy (&self->routing_id);
    free (self->routing_id_str);
    self->routing_id_str = NULL;
    self->routing_id = zframe_dup (routing_id);
    if (!self->routing_id)
        return -1;
    size_t size = zframe_size (routing_id);
    if (size > 0 && tako_proto_check_address (zframe_data (routing_id), size, NULL) == 0)
        self->routing_id_str = strndup ((char *) zframe_data (routing_id), size);
    return 0;
}

tako_msg_t *
tako_msg_dup (tako_msg_t *self)
{
    if (!self)
        return NULL;
    tako_msg_t *copy = msg_new_for (self->command);
    if (!copy)
        return NULL;
    memcpy (copy->address, self->address, sizeof copy->address);
    int rc = self->routing_id? msg_set_routing_id (copy, self->routing_id): 0;
    for (size_t i = 0; rc == 0 && i < self->command->field_count; i++)
        rc = value_copy (&copy->values [i], &self->values [i], self->command->fields [i].type);
    if (rc != 0)
        tako_msg_destroy (&copy);
    return copy;
}

const char *
tako_msg_command (tako_msg_t *self)
{
    return self->command->name;
}

const char *
tako_msg_address (tako_msg_t *self)
{
    return self->address;
}

int
tako_msg_set_address (tako_msg_t *self, const char *address)
{
    if (!address || tako_proto_check_address (address, strlen (address), NULL) < 0)
        return -1;
    snprintf (self->address, sizeof self->address, "%s", address);
    return 0;
}

zframe_t *
tako_msg_routing_id (tako_msg_t *self)
{
    return self->routing_id;
}

const char *
tako_msg_routing_id_str (tako_msg_t *self)
{
    return self->routing_id_str;
}

//  ---------------------------------------------------------------------
//  Field access, by the table.

static ssize_t
field_index (tako_msg_t *self, const char *name)
{
    const tako_proto_field_t *field = tako_proto_field_find (self->command, name);
    return field? field - self->command->fields: -1;
}

//  The slot for a field of this type, or NULL if there is none.
static value_t *
slot_typed (tako_msg_t *self, const char *name, tako_field_type_t type)
{
    ssize_t index = field_index (self, name);
    if (index < 0 || self->command->fields [index].type != type)
        return NULL;
    return &self->values [index];
}

//  The slot, emptied, ready to take a new value.
static value_t *
slot_for_set (tako_msg_t *self, const char *name, tako_field_type_t type)
{
    value_t *slot = slot_typed (self, name, type);
    if (slot)
        value_clear (slot, type);
    return slot;
}

//  The slot if it holds a value.
static value_t *
slot_if_set (tako_msg_t *self, const char *name, tako_field_type_t type)
{
    value_t *slot = slot_typed (self, name, type);
    return slot && slot->set? slot: NULL;
}

bool
tako_msg_has (tako_msg_t *self, const char *name)
{
    ssize_t index = field_index (self, name);
    return index >= 0 && self->values [index].set;
}

int
tako_msg_unset (tako_msg_t *self, const char *name)
{
    ssize_t index = field_index (self, name);
    if (index < 0)
        return -1;
    value_clear (&self->values [index], self->command->fields [index].type);
    return 0;
}

int
tako_msg_set_str (tako_msg_t *self, const char *name, const char *value)
{
    if (!value || !tako_proto_utf8_valid (value, strlen (value)))
        return -1;
    value_t *slot = slot_for_set (self, name, TAKO_FIELD_STR);
    if (!slot || !(slot->as.str = strdup (value)))
        return -1;
    slot->set = true;
    return 0;
}

int
tako_msg_set_int (tako_msg_t *self, const char *name, int64_t value)
{
    value_t *slot = slot_for_set (self, name, TAKO_FIELD_INT);
    if (!slot)
        return -1;
    slot->as.integer = value;
    slot->set = true;
    return 0;
}

int
tako_msg_set_bool (tako_msg_t *self, const char *name, bool value)
{
    value_t *slot = slot_for_set (self, name, TAKO_FIELD_BOOL);
    if (!slot)
        return -1;
    slot->as.boolean = value;
    slot->set = true;
    return 0;
}

int
tako_msg_set_double (tako_msg_t *self, const char *name, double value)
{
    value_t *slot = isfinite (value)? slot_for_set (self, name, TAKO_FIELD_DOUBLE): NULL;
    if (!slot)
        return -1;
    slot->as.real = value;
    slot->set = true;
    return 0;
}

int
tako_msg_set_bin (tako_msg_t *self, const char *name, const void *data, size_t size)
{
    if ((!data && size > 0) || size > TAKO_PROTO_BODY_MAX)
        return -1;
    value_t *slot = slot_for_set (self, name, TAKO_FIELD_BIN);
    //  One spare byte so an empty value still has a buffer.
    if (!slot || !(slot->as.bin.data = malloc (size + 1)))
        return -1;
    if (size)
        memcpy (slot->as.bin.data, data, size);
    slot->as.bin.size = size;
    slot->set = true;
    return 0;
}

int
tako_msg_set_strlist (tako_msg_t *self, const char *name,
                      const char *const *items, size_t count)
{
    if (count > TAKO_PROTO_ELEMENTS_MAX || (count > 0 && !items))
        return -1;
    for (size_t i = 0; i < count; i++)
        if (!items [i] || !tako_proto_utf8_valid (items [i], strlen (items [i])))
            return -1;
    value_t *slot = slot_for_set (self, name, TAKO_FIELD_STRLIST);
    if (!slot || !(slot->as.list.items = strlist_copy (items, count)))
        return -1;
    slot->as.list.count = count;
    slot->set = true;
    return 0;
}

//  True if value nests more than limit containers deep. Stops descending
//  at the limit, so even a pathological value costs no deep recursion.
static bool
json_deeper_than (const json_t *value, size_t limit)
{
    if (!json_is_object (value) && !json_is_array (value))
        return false;
    if (limit == 0)
        return true;
    if (json_is_object (value)) {
        const char *key;
        json_t *member;
        json_object_foreach ((json_t *) value, key, member)
            if (json_deeper_than (member, limit - 1))
                return true;
        return false;
    }
    size_t index;
    json_t *member;
    json_array_foreach (value, index, member)
        if (json_deeper_than (member, limit - 1))
            return true;
    return false;
}

int
tako_msg_set_object (tako_msg_t *self, const char *name, const json_t *value)
{
    //  The body map is one level; the object must fit under it. Deeper
    //  values would be refused by every receiver.
    if (!value || json_deeper_than (value, TAKO_PROTO_DEPTH_MAX - 1))
        return -1;
    value_t *slot = slot_for_set (self, name, TAKO_FIELD_OBJECT);
    if (!slot || !(slot->as.json = json_deep_copy (value)))
        return -1;
    slot->set = true;
    return 0;
}

const char *
tako_msg_str (tako_msg_t *self, const char *name)
{
    value_t *slot = slot_if_set (self, name, TAKO_FIELD_STR);
    return slot? slot->as.str: NULL;
}

int64_t
tako_msg_int (tako_msg_t *self, const char *name, int64_t default_value)
{
    value_t *slot = slot_if_set (self, name, TAKO_FIELD_INT);
    return slot? slot->as.integer: default_value;
}

bool
tako_msg_bool (tako_msg_t *self, const char *name, bool default_value)
{
    value_t *slot = slot_if_set (self, name, TAKO_FIELD_BOOL);
    return slot? slot->as.boolean: default_value;
}

double
tako_msg_double (tako_msg_t *self, const char *name, double default_value)
{
    value_t *slot = slot_if_set (self, name, TAKO_FIELD_DOUBLE);
    return slot? slot->as.real: default_value;
}

const void *
tako_msg_bin (tako_msg_t *self, const char *name, size_t *size)
{
    value_t *slot = slot_if_set (self, name, TAKO_FIELD_BIN);
    if (size)
        *size = slot? slot->as.bin.size: 0;
    return slot? slot->as.bin.data: NULL;
}

const char *const *
tako_msg_strlist (tako_msg_t *self, const char *name, size_t *count)
{
    value_t *slot = slot_if_set (self, name, TAKO_FIELD_STRLIST);
    if (count)
        *count = slot? slot->as.list.count: 0;
    return slot? (const char *const *) slot->as.list.items: NULL;
}

json_t *
tako_msg_object (tako_msg_t *self, const char *name)
{
    value_t *slot = slot_if_set (self, name, TAKO_FIELD_OBJECT);
    return slot? slot->as.json: NULL;
}

//  ---------------------------------------------------------------------
//  Encoding.

static void
pack_string (msgpack_packer *packer, const char *text, size_t size)
{
    msgpack_pack_str (packer, size);
    msgpack_pack_str_body (packer, text, size);
}

static void
pack_json (msgpack_packer *packer, const json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT: {
            msgpack_pack_map (packer, json_object_size (value));
            const char *key;
            json_t *member;
            json_object_foreach ((json_t *) value, key, member) {
                pack_string (packer, key, strlen (key));
                pack_json (packer, member);
            }
            break;
        }
        case JSON_ARRAY: {
            msgpack_pack_array (packer, json_array_size (value));
            size_t index;
            json_t *member;
            json_array_foreach (value, index, member)
                pack_json (packer, member);
            break;
        }
        case JSON_STRING:
            pack_string (packer, json_string_value (value), json_string_length (value));
            break;
        case JSON_INTEGER: msgpack_pack_int64 (packer, json_integer_value (value)); break;
        case JSON_REAL:    msgpack_pack_double (packer, json_real_value (value)); break;
        case JSON_TRUE:    msgpack_pack_true (packer); break;
        case JSON_FALSE:   msgpack_pack_false (packer); break;
        default:           msgpack_pack_nil (packer); break;
    }
}

static void
pack_value (msgpack_packer *packer, const value_t *value, tako_field_type_t type)
{
    switch (type) {
        case TAKO_FIELD_STR:    pack_string (packer, value->as.str, strlen (value->as.str)); break;
        case TAKO_FIELD_INT:    msgpack_pack_int64 (packer, value->as.integer); break;
        case TAKO_FIELD_BOOL:
            value->as.boolean? msgpack_pack_true (packer): msgpack_pack_false (packer);
            break;
        case TAKO_FIELD_DOUBLE: msgpack_pack_double (packer, value->as.real); break;
        case TAKO_FIELD_BIN:
            msgpack_pack_bin (packer, value->as.bin.size);
            msgpack_pack_bin_body (packer, value->as.bin.data, value->as.bin.size);
            break;
        case TAKO_FIELD_STRLIST:
            msgpack_pack_array (packer, value->as.list.count);
            for (size_t i = 0; i < value->as.list.count; i++)
                pack_string (packer, value->as.list.items [i], strlen (value->as.list.items [i]));
            break;
        case TAKO_FIELD_OBJECT: pack_json (packer, value->as.json); break;
    }
}

static int
check_required (tako_msg_t *self, char **error)
{
    for (size_t i = 0; i < self->command->field_count; i++)
        if (self->command->fields [i].required && !self->values [i].set)
            return tako_proto_fail (error, "%s: missing required field %s", self->command->name,
                         self->command->fields [i].name);
    return 0;
}

int
tako_msg_encode_body (tako_msg_t *self, uint8_t **data, size_t *size, char **error)
{
    if (check_required (self, error) < 0)
        return -1;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    size_t set = 0;
    for (size_t i = 0; i < self->command->field_count; i++)
        set += self->values [i].set;
    msgpack_pack_map (&packer, set);
    //  Table order, so equal messages encode to equal bytes.
    for (size_t i = 0; i < self->command->field_count; i++) {
        const tako_proto_field_t *field = &self->command->fields [i];
        if (!self->values [i].set)
            continue;
        pack_string (&packer, field->name, strlen (field->name));
        pack_value (&packer, &self->values [i], field->type);
    }
    //  Run our own output through the receiver's scan: never send what
    //  a peer would refuse (too big, too many elements).
    if (!buffer.data || tako_proto_body_scan (buffer.data, buffer.size, error) < 0) {
        if (!buffer.data)
            tako_proto_fail (error, "out of memory");
        msgpack_sbuffer_destroy (&buffer);
        return -1;
    }
    *size = buffer.size;
    *data = (uint8_t *) msgpack_sbuffer_release (&buffer);
    return 0;
}

zmsg_t *
tako_msg_encode (tako_msg_t *self, char **error)
{
    uint8_t *body;
    size_t body_size;
    if (tako_msg_encode_body (self, &body, &body_size, error) < 0)
        return NULL;
    zmsg_t *frames = zmsg_new ();
    zmsg_addmem (frames, TAKO_PROTO_SIGNATURE, TAKO_PROTO_SIGNATURE_SIZE);
    zmsg_addmem (frames, self->address, strlen (self->address));
    zmsg_addstr (frames, self->command->name);
    zmsg_addmem (frames, body, body_size);
    free (body);
    return frames;
}

//  ---------------------------------------------------------------------
//  Decoding, after tako_proto_body_scan has bounded everything.

//  A field or key name as a C string: no NUL, valid UTF-8, bounded.
static char *
name_from (const msgpack_object_str *text, size_t max)
{
    //  msgpack-c gives an empty string a NULL pointer.
    if (text->size == 0)
        return strdup ("");
    if (text->size > max || memchr (text->ptr, 0, text->size)
    ||  !tako_proto_utf8_valid (text->ptr, text->size))
        return NULL;
    return strndup (text->ptr, text->size);
}

static int json_from_msgpack (const msgpack_object *object, json_t **value, char **error);

static int
json_from_map (const msgpack_object_map *map, json_t **value, char **error)
{
    json_t *object = json_object ();
    for (uint32_t i = 0; object && i < map->size; i++) {
        //  The scan guarantees string keys.
        char *key = name_from (&map->ptr [i].key.via.str, TAKO_PROTO_BODY_MAX);
        json_t *member = NULL;
        int rc = -1;
        if (!key)
            tako_proto_fail (error, "object key is not UTF-8 text");
        else
        if (json_object_get (object, key))
            tako_proto_fail (error, "object has a duplicate key");
        else
        if (json_from_msgpack (&map->ptr [i].val, &member, error) == 0)
            rc = json_object_set_new (object, key, member);
        free (key);
        if (rc != 0) {
            json_decref (object);
            return -1;
        }
    }
    *value = object;
    return object? 0: tako_proto_fail (error, "out of memory");
}

static int
json_from_array (const msgpack_object_array *array, json_t **value, char **error)
{
    json_t *list = json_array ();
    for (uint32_t i = 0; list && i < array->size; i++) {
        json_t *member;
        if (json_from_msgpack (&array->ptr [i], &member, error) < 0
        ||  json_array_append_new (list, member) < 0) {
            json_decref (list);
            return -1;
        }
    }
    *value = list;
    return list? 0: tako_proto_fail (error, "out of memory");
}

static int
json_from_msgpack (const msgpack_object *object, json_t **value, char **error)
{
    *value = NULL;
    switch (object->type) {
        case MSGPACK_OBJECT_NIL:     *value = json_null (); break;
        case MSGPACK_OBJECT_BOOLEAN: *value = json_boolean (object->via.boolean); break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (object->via.u64 > INT64_MAX)
                return tako_proto_fail (error, "integer out of range");
            *value = json_integer ((json_int_t) object->via.u64);
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            *value = json_integer ((json_int_t) object->via.i64);
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            if (!isfinite (object->via.f64))
                return tako_proto_fail (error, "number is not finite");
            *value = json_real (object->via.f64);
            break;
        case MSGPACK_OBJECT_STR:
            if (!tako_proto_utf8_valid (object->via.str.ptr, object->via.str.size))
                return tako_proto_fail (error, "string is not valid UTF-8");
            *value = json_stringn_nocheck (object->via.str.size? object->via.str.ptr: "",
                                           object->via.str.size);
            break;
        case MSGPACK_OBJECT_ARRAY:
            return json_from_array (&object->via.array, value, error);
        case MSGPACK_OBJECT_MAP:
            return json_from_map (&object->via.map, value, error);
        default:
            return tako_proto_fail (error, "binary data inside an object");
    }
    return *value? 0: tako_proto_fail (error, "out of memory");
}

//  Store one decoded field value; nil means absent (object: JSON null).
static int
value_from_msgpack (value_t *value, const tako_proto_field_t *field,
                    const msgpack_object *object, char **error)
{
    const char *type = tako_proto_type_name (field->type);
    if (object->type == MSGPACK_OBJECT_NIL && field->type != TAKO_FIELD_OBJECT)
        return 0;
    switch (field->type) {
        case TAKO_FIELD_STR:
            if (object->type != MSGPACK_OBJECT_STR
            ||  !(value->as.str = name_from (&object->via.str, TAKO_PROTO_BODY_MAX)))
                return tako_proto_fail (error, "field %s: want %s (UTF-8, no NUL)", field->name, type);
            break;
        case TAKO_FIELD_INT:
            if (object->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                value->as.integer = object->via.i64;
            else
            if (object->type == MSGPACK_OBJECT_POSITIVE_INTEGER && object->via.u64 <= INT64_MAX)
                value->as.integer = (int64_t) object->via.u64;
            else
                return tako_proto_fail (error, "field %s: want %s", field->name, type);
            break;
        case TAKO_FIELD_BOOL:
            if (object->type != MSGPACK_OBJECT_BOOLEAN)
                return tako_proto_fail (error, "field %s: want %s", field->name, type);
            value->as.boolean = object->via.boolean;
            break;
        case TAKO_FIELD_DOUBLE:
            //  Clients in dynamic languages send 2 for 2.0: accept ints.
            if (object->type == MSGPACK_OBJECT_FLOAT32 || object->type == MSGPACK_OBJECT_FLOAT64)
                value->as.real = object->via.f64;
            else
            if (object->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                value->as.real = (double) object->via.u64;
            else
            if (object->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                value->as.real = (double) object->via.i64;
            else
                return tako_proto_fail (error, "field %s: want %s", field->name, type);
            if (!isfinite (value->as.real))
                return tako_proto_fail (error, "field %s: not a finite number", field->name);
            break;
        case TAKO_FIELD_BIN:
            if (object->type != MSGPACK_OBJECT_BIN)
                return tako_proto_fail (error, "field %s: want %s", field->name, type);
            value->as.bin.size = object->via.bin.size;
            if (!(value->as.bin.data = malloc (object->via.bin.size + 1)))
                return tako_proto_fail (error, "out of memory");
            if (object->via.bin.size)   //  an empty bin has a NULL pointer
                memcpy (value->as.bin.data, object->via.bin.ptr, object->via.bin.size);
            break;
        case TAKO_FIELD_STRLIST: {
            const msgpack_object_array *array = &object->via.array;
            if (object->type != MSGPACK_OBJECT_ARRAY)
                return tako_proto_fail (error, "field %s: want %s", field->name, type);
            if (!(value->as.list.items = calloc (array->size + 1, sizeof (char *))))
                return tako_proto_fail (error, "out of memory");
            //  Count as we go so a failure half-way frees what was made.
            value->set = true;
            for (uint32_t i = 0; i < array->size; i++) {
                if (array->ptr [i].type != MSGPACK_OBJECT_STR
                ||  !(value->as.list.items [i] = name_from (&array->ptr [i].via.str,
                                                             TAKO_PROTO_BODY_MAX)))
                    return tako_proto_fail (error, "field %s: want %s (UTF-8, no NUL)", field->name, type);
                value->as.list.count++;
            }
            break;
        }
        case TAKO_FIELD_OBJECT:
            value->set = true;      //  so a failure frees a partial value
            if (json_from_msgpack (object, &value->as.json, error) < 0) {
                char *reason = error && *error? strdup (*error): NULL;
                tako_proto_fail (error, "field %s: %s", field->name, reason? reason: "invalid");
                free (reason);
                return -1;
            }
            break;
    }
    value->set = true;
    return 0;
}

//  Copy a client-chosen name into an error only when it is tame.
static const char *
printable_or (const char *text, const char *fallback)
{
    for (const char *c = text; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            return fallback;
    return text;
}

static int
fields_from_map (tako_msg_t *self, const msgpack_object_map *map, char **error)
{
    for (uint32_t i = 0; i < map->size; i++) {
        char *name = name_from (&map->ptr [i].key.via.str, TAKO_PROTO_FIELD_NAME_MAX);
        ssize_t index = name? field_index (self, name): -1;
        if (index < 0) {
            tako_proto_fail (error, "%s: unknown field %s", self->command->name,
                  name? printable_or (name, "(unprintable)"): "(too long)");
            free (name);
            return -1;
        }
        free (name);
        value_t *value = &self->values [index];
        const tako_proto_field_t *field = &self->command->fields [index];
        if (value->set)
            return tako_proto_fail (error, "%s: duplicate field %s", self->command->name, field->name);
        if (value_from_msgpack (value, field, &map->ptr [i].val, error) < 0) {
            value_clear (value, field->type);
            return -1;
        }
    }
    return check_required (self, error);
}

tako_msg_t *
tako_msg_decode_body (const char *command, const void *body, size_t body_size, char **error)
{
    const tako_proto_command_t *entry = tako_proto_command_find (command);
    if (!entry) {
        tako_proto_fail (error, "unknown command");
        return NULL;
    }
    if (tako_proto_body_scan (body, body_size, error) < 0)
        return NULL;
    tako_msg_t *self = msg_new_for (entry);
    if (!self) {
        tako_proto_fail (error, "out of memory");
        return NULL;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t offset = 0;
    msgpack_unpack_return rc = msgpack_unpack_next (&unpacked, body, body_size, &offset);
    if (rc != MSGPACK_UNPACK_SUCCESS || offset != body_size
    ||  unpacked.data.type != MSGPACK_OBJECT_MAP) {
        tako_proto_fail (error, "body is not one msgpack map");
        tako_msg_destroy (&self);
    }
    else
    if (fields_from_map (self, &unpacked.data.via.map, error) < 0)
        tako_msg_destroy (&self);
    msgpack_unpacked_destroy (&unpacked);
    return self;
}

tako_msg_t *
tako_msg_decode (const void *signature, size_t signature_size,
                 const void *address, size_t address_size,
                 const void *command, size_t command_size,
                 const void *body, size_t body_size, char **error)
{
    if (tako_proto_check_signature (signature, signature_size, error) < 0
    ||  tako_proto_check_address (address, address_size, error) < 0
    ||  tako_proto_check_command (command, command_size, error) < 0)
        return NULL;
    char name [TAKO_PROTO_COMMAND_MAX + 1];
    memcpy (name, command, command_size);
    name [command_size] = 0;
    tako_msg_t *self = tako_msg_decode_body (name, body, body_size, error);
    if (self) {
        memcpy (self->address, address, address_size);
        self->address [address_size] = 0;
    }
    return self;
}

tako_msg_t *
tako_msg_decode_zmsg (zmsg_t *frames, char **error)
{
    if (!frames || zmsg_size (frames) != TAKO_PROTO_FRAME_COUNT) {
        tako_proto_fail (error, "want %d frames, got %zu", TAKO_PROTO_FRAME_COUNT,
              frames? zmsg_size (frames): 0);
        return NULL;
    }
    zframe_t *part [TAKO_PROTO_FRAME_COUNT];
    part [0] = zmsg_first (frames);
    for (int i = 1; i < TAKO_PROTO_FRAME_COUNT; i++)
        part [i] = zmsg_next (frames);
    return tako_msg_decode (zframe_data (part [0]), zframe_size (part [0]),
                            zframe_data (part [1]), zframe_size (part [1]),
                            zframe_data (part [2]), zframe_size (part [2]),
                            zframe_data (part [3]), zframe_size (part [3]), error);
}

//  ---------------------------------------------------------------------
//  Sockets.

static int
send_frames (tako_msg_t **self_p, zsock_t *socket, zframe_t *routing_id)
{
    if (!self_p || !*self_p)
        return -1;
    zmsg_t *frames = tako_msg_encode (*self_p, NULL);
    tako_msg_destroy (self_p);
    if (!frames)
        return -1;
    if (routing_id)
        zmsg_prepend (frames, &(zframe_t *) { zframe_dup (routing_id) });
    int rc = zmsg_send (&frames, socket);
    if (rc != 0) {
        int saved = errno;          //  keep EHOSTUNREACH for the caller
        zmsg_destroy (&frames);
        errno = saved;
    }
    return rc == 0? 0: -1;
}

int
tako_msg_send (tako_msg_t **self_p, zsock_t *socket)
{
    return send_frames (self_p, socket, NULL);
}

int
tako_msg_send_to (tako_msg_t **self_p, zsock_t *router, zframe_t *routing_id)
{
    if (!routing_id) {
        tako_msg_destroy (self_p);
        return -1;
    }
    return send_frames (self_p, router, routing_id);
}

int
tako_msg_send_to_str (tako_msg_t **self_p, zsock_t *router, const char *routing_id)
{
    zframe_t *frame = routing_id? zframe_new (routing_id, strlen (routing_id)): NULL;
    int rc = tako_msg_send_to (self_p, router, frame);
    zframe_destroy (&frame);
    return rc;
}

tako_msg_t *
tako_msg_recv_router (zsock_t *router, zframe_t **routing_id_p, char **error)
{
    *routing_id_p = NULL;
    zmsg_t *frames = zmsg_recv (router);
    if (!frames)
        return NULL;
    *routing_id_p = zmsg_pop (frames);
    tako_msg_t *self = tako_msg_decode_zmsg (frames, error);
    zmsg_destroy (&frames);
    if (self && *routing_id_p && msg_set_routing_id (self, *routing_id_p) < 0) {
        tako_proto_fail (error, "out of memory");
        tako_msg_destroy (&self);
    }
    return self;
}

tako_msg_t *
tako_msg_recv (zsock_t *socket, char **error)
{
    if (zsock_type (socket) == ZMQ_ROUTER) {
        zframe_t *routing_id;
        tako_msg_t *self = tako_msg_recv_router (socket, &routing_id, error);
        zframe_destroy (&routing_id);
        return self;
    }
    zmsg_t *frames = zmsg_recv (socket);
    if (!frames)
        return NULL;
    tako_msg_t *self = tako_msg_decode_zmsg (frames, error);
    zmsg_destroy (&frames);
    return self;
}

//  ---------------------------------------------------------------------
//  Debug print.

static void
print_value (const value_t *value, tako_field_type_t type, FILE *file)
{
    switch (type) {
        case TAKO_FIELD_STR: {
            size_t size = strlen (value->as.str);
            fprintf (file, "\"%.*s\"%s", PRINT_STRING_MAX, value->as.str,
                     size > PRINT_STRING_MAX? "...": "");
            break;
        }
        case TAKO_FIELD_INT:    fprintf (file, "%" PRId64, value->as.integer); break;
        case TAKO_FIELD_BOOL:   fprintf (file, "%s", value->as.boolean? "true": "false"); break;
        case TAKO_FIELD_DOUBLE: fprintf (file, "%g", value->as.real); break;
        case TAKO_FIELD_BIN:    fprintf (file, "<%zu bytes>", value->as.bin.size); break;
        case TAKO_FIELD_STRLIST:
            fprintf (file, "[");
            for (size_t i = 0; i < value->as.list.count; i++)
                fprintf (file, "%s\"%s\"", i? ", ": "", value->as.list.items [i]);
            fprintf (file, "]");
            break;
        case TAKO_FIELD_OBJECT: {
            char *text = json_dumps (value->as.json, JSON_ENCODE_ANY | JSON_COMPACT);
            size_t size = text? strlen (text): 0;
            fprintf (file, "%.*s%s", PRINT_STRING_MAX, text? text: "?",
                     size > PRINT_STRING_MAX? "...": "");
            free (text);
            break;
        }
    }
}

void
tako_msg_print (tako_msg_t *self, FILE *file)
{
    fprintf (file, "%s address=\"%s\"", self->command->name, self->address);
    if (self->routing_id_str)
        fprintf (file, " from=%s", self->routing_id_str);
    fprintf (file, "\n");
    for (size_t i = 0; i < self->command->field_count; i++) {
        if (!self->values [i].set)
            continue;
        fprintf (file, "    %s: ", self->command->fields [i].name);
        print_value (&self->values [i], self->command->fields [i].type, file);
        fprintf (file, "\n");
    }
}

//  ---------------------------------------------------------------------
//  Self-test: the life of a job's first two messages.

void
tako_msg_test (bool verbose)
{
    //  Build a SUBMIT as a client would.
    tako_msg_t *submit = tako_msg_new ("SUBMIT");
    assert (submit);
    assert (!tako_msg_new ("TELEPORT"));
    assert (tako_msg_set_address (submit, "scheduler") == 0);
    assert (tako_msg_set_address (submit, "Not An Address") == -1);
    assert (tako_msg_set_str (submit, "request_id", "r-1") == 0);
    assert (tako_msg_set_str (submit, "code", "print('hi')") == 0);
    assert (tako_msg_set_int (submit, "timeout", 30) == 0);
    const char *requirements [] = { "numpy", "requests>=2" };
    assert (tako_msg_set_strlist (submit, "requirements", requirements, 2) == 0);
    json_t *input = json_pack ("{s:i, s:[s, n, b], s:f}", "n", 3, "list", "a", 1, "x", 0.5);
    assert (tako_msg_set_object (submit, "input_data", input) == 0);
    json_decref (input);
    //  The table refuses what SUBMIT does not have, or the wrong type.
    assert (tako_msg_set_str (submit, "timeout", "30") == -1);
    assert (tako_msg_set_str (submit, "no_such_field", "x") == -1);
    assert (tako_msg_set_str (submit, "code", "\xff") == -1);
    assert (tako_msg_set_double (submit, "timeout", 1.0) == -1);

    //  Over a real socket pair.
    zsock_t *router = zsock_new_router ("inproc://tako-msg-selftest");
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (router && dealer);
    zsock_set_identity (dealer, "ingress.t1");
    assert (zsock_connect (dealer, "inproc://tako-msg-selftest") == 0);
    zsock_set_rcvtimeo (router, 5000);
    zsock_set_rcvtimeo (dealer, 5000);
    tako_msg_t *copy = tako_msg_dup (submit);
    assert (tako_msg_send (&submit, dealer) == 0);
    assert (submit == NULL);

    char *error = NULL;
    tako_msg_t *received = tako_msg_recv (router, &error);
    assert (received && !error);
    if (verbose)
        tako_msg_print (received, stdout);
    assert (streq (tako_msg_command (received), "SUBMIT"));
    assert (streq (tako_msg_address (received), "scheduler"));
    assert (streq (tako_msg_routing_id_str (received), "ingress.t1"));
    assert (streq (tako_msg_str (received, "code"), "print('hi')"));
    assert (tako_msg_int (received, "timeout", 0) == 30);
    assert (tako_msg_int (received, "startup_timeout", 60) == 60);
    size_t count;
    const char *const *list = tako_msg_strlist (received, "requirements", &count);
    assert (count == 2 && streq (list [1], "requests>=2") && list [2] == NULL);
    json_t *data = tako_msg_object (received, "input_data");
    assert (json_equal (data, tako_msg_object (copy, "input_data")));
    assert (json_integer_value (json_object_get (data, "n")) == 3);

    //  Answer from the ROUTER to whoever sent it.
    tako_msg_t *accepted = tako_msg_new ("ACCEPTED");
    tako_msg_set_str (accepted, "request_id", tako_msg_str (received, "request_id"));
    tako_msg_set_str (accepted, "job_id", "j-1");
    tako_msg_set_str (accepted, "status", "queued");
    assert (tako_msg_send_to (&accepted, router, tako_msg_routing_id (received)) == 0);
    tako_msg_t *reply = tako_msg_recv (dealer, &error);
    assert (reply && streq (tako_msg_str (reply, "job_id"), "j-1"));
    assert (!tako_msg_has (reply, "existing"));
    assert (tako_msg_bool (reply, "existing", false) == false);

    //  A message missing a required field is never sent.
    tako_msg_t *incomplete = tako_msg_new ("ACCEPTED");
    assert (tako_msg_send (&incomplete, dealer) == -1);
    assert (incomplete == NULL);

    //  A malformed message is consumed and reported, not returned.
    zmsg_t *junk = zmsg_new ();
    zmsg_addstr (junk, "TAKO/9");
    zmsg_addstr (junk, "");
    zmsg_addstr (junk, "HEARTBEAT");
    zmsg_addmem (junk, "\x80", 1);
    zmsg_send (&junk, dealer);
    zframe_t *sender;
    assert (tako_msg_recv_router (router, &sender, &error) == NULL);
    assert (error && strstr (error, "version 9"));
    assert (sender && zframe_streq (sender, "ingress.t1"));
    zframe_destroy (&sender);
    zstr_free (&error);

    tako_msg_destroy (&reply);
    tako_msg_destroy (&received);
    tako_msg_destroy (&copy);
    tako_msg_destroy (&copy);           //  safe twice
    zsock_destroy (&dealer);
    zsock_destroy (&router);
}
