/*  tako_httpreq — request validation. See the header.  */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_httpreq.h"

//  Requirement list bounds, as the scheduler's (it checks each item).
#define REQUIREMENTS_MAX    100

static void
error_set (tako_httpreq_error_t *error, int status, const char *format, const char *what)
{
    error->status = status;
    snprintf (error->detail, sizeof error->detail, format, what? what: "");
}

json_t *
tako_httpreq_object (const char *body, size_t size, tako_httpreq_error_t *error)
{
    json_error_t parse;
    if (!body || size == 0) {
        error_set (error, 400, "Invalid JSON: the request body is empty%s", NULL);
        return NULL;
    }
    json_t *value = json_loadb (body, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &parse);
    if (!value) {
        error->status = 400;
        snprintf (error->detail, sizeof error->detail, "Invalid JSON at line %d, column %d: %s",
                  parse.line, parse.column, parse.text);
        return NULL;
    }
    if (!json_is_object (value)) {
        json_decref (value);
        error_set (error, 422, "The request body must be a JSON object%s", NULL);
        return NULL;
    }
    return value;
}

//  True when every key of object is one of allowed; else names the first
//  stranger in error.
static bool
keys_known (json_t *object, const char *const *allowed, tako_httpreq_error_t *error)
{
    const char *key;
    json_t *value;
    json_object_foreach (object, key, value) {
        bool known = false;
        for (const char *const *name = allowed; *name && !known; name++)
            known = strcmp (*name, key) == 0;
        if (!known) {
            error_set (error, 422, "Unknown field: %s", key);
            return false;
        }
    }
    return true;
}

static bool
printable_ascii (const char *text, size_t max)
{
    size_t length = 0;
    for (const char *c = text; *c; c++, length++)
        if (*c < 0x20 || *c > 0x7e || length >= max)
            return false;
    return length > 0;
}

//  Copy a field into submit if present with the right type.
static bool
copy_string (json_t *body, json_t *submit, const char *name, bool required,
             tako_httpreq_error_t *error)
{
    json_t *value = json_object_get (body, name);
    if (!value || json_is_null (value)) {
        if (required)
            error_set (error, 422, "Field required: %s", name);
        return !required;
    }
    if (!json_is_string (value)) {
        error_set (error, 422, "Field %s must be a string", name);
        return false;
    }
    json_object_set (submit, name, value);
    return true;
}

static bool
copy_integer (json_t *body, json_t *submit, const char *name, tako_httpreq_error_t *error)
{
    json_t *value = json_object_get (body, name);
    if (!value || json_is_null (value))
        return true;
    if (!json_is_integer (value)) {
        error_set (error, 422, "Field %s must be an integer", name);
        return false;
    }
    json_object_set (submit, name, value);
    return true;
}

static bool
copy_requirements (json_t *body, json_t *submit, tako_httpreq_error_t *error)
{
    json_t *value = json_object_get (body, "requirements");
    if (!value || json_is_null (value))
        return true;
    if (!json_is_array (value) || json_array_size (value) > REQUIREMENTS_MAX) {
        error_set (error, 422, "Field requirements must be a list of at most 100 strings%s", NULL);
        return false;
    }
    size_t index;
    json_t *item;
    json_array_foreach (value, index, item)
        if (!json_is_string (item)) {
            error_set (error, 422, "Field requirements must be a list of strings%s", NULL);
            return false;
        }
    if (json_array_size (value) > 0)
        json_object_set (submit, "requirements", value);
    return true;
}

json_t *
tako_httpreq_execute (const char *body, size_t size, bool async, tako_httpreq_error_t *error)
{
    static const char *const sync_fields [] = {
        "code", "input_data", "timeout", "startup_timeout", "job_type", "requirements", NULL
    };
    static const char *const async_fields [] = {
        "code", "input_data", "timeout", "startup_timeout", "job_type", "requirements",
        "idempotency_key", NULL
    };
    json_t *object = tako_httpreq_object (body, size, error);
    if (!object)
        return NULL;
    json_t *submit = json_object ();
    bool ok = submit && keys_known (object, async? async_fields: sync_fields, error)
           && copy_string (object, submit, "code", true, error)
           && copy_integer (object, submit, "timeout", error)
           && copy_integer (object, submit, "startup_timeout", error)
           && copy_string (object, submit, "job_type", false, error)
           && copy_requirements (object, submit, error)
           && copy_string (object, submit, "idempotency_key", false, error);
    if (ok && json_string_length (json_object_get (submit, "code")) == 0) {
        error_set (error, 422, "Field code must not be empty%s", NULL);
        ok = false;
    }
    json_t *input = json_object_get (object, "input_data");
    if (ok && input && !json_is_null (input)) {
        if (json_is_object (input))
            json_object_set (submit, "input_data", input);
        else {
            error_set (error, 422, "Field input_data must be a JSON object%s", NULL);
            ok = false;
        }
    }
    json_t *key = json_object_get (submit, "idempotency_key");
    if (ok && key && !printable_ascii (json_string_value (key), TAKO_HTTPREQ_IDEMPOTENCY_MAX)) {
        error_set (error, 422, "Field idempotency_key must be 1-255 printable ASCII characters%s", NULL);
        ok = false;
    }
    json_decref (object);
    if (!ok)
        json_decref (submit);
    return ok? submit: NULL;
}

char *
tako_httpreq_fork (const char *body, size_t size, tako_httpreq_error_t *error)
{
    static const char *const fields [] = { "code", NULL };
    json_t *object = tako_httpreq_object (body, size, error);
    if (!object)
        return NULL;
    char *code = NULL;
    json_t *value = json_object_get (object, "code");
    if (keys_known (object, fields, error)) {
        if (!json_is_string (value))
            error_set (error, 422, "Field code must be a string%s", NULL);
        else
        if (json_string_length (value) == 0)
            error_set (error, 422, "Field code must not be empty%s", NULL);
        else
            code = strdup (json_string_value (value));
    }
    json_decref (object);
    return code;
}

bool
tako_httpreq_id_valid (const char *id)
{
    if (!id || !*id || strlen (id) > TAKO_HTTPREQ_ID_MAX)
        return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
           || *c == '-' || *c == '_'))
            return false;
    return true;
}

bool
tako_httpreq_name_valid (const char *name)
{
    if (!name || !*name || strlen (name) > TAKO_HTTPREQ_NAME_MAX
    ||  strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
        return false;
    for (const unsigned char *c = (const unsigned char *) name; *c; c++)
        if (*c < 0x20 || *c == 0x7f || *c == '/' || *c == '\\')
            return false;
    return true;
}

static int
hex_digit (char c)
{
    return c >= '0' && c <= '9'? c - '0'
         : c >= 'a' && c <= 'f'? c - 'a' + 10
         : c >= 'A' && c <= 'F'? c - 'A' + 10: -1;
}

size_t
tako_httpreq_unescape (char *text)
{
    char *out = text;
    for (const char *in = text; *in; ) {
        int high = *in == '%'? hex_digit (in [1]): -1;
        int low = high >= 0? hex_digit (in [2]): -1;
        if (low >= 0 && high * 16 + low != 0) {
            *out++ = (char) (high * 16 + low);
            in += 3;
        }
        else
            *out++ = *in++;
    }
    *out = 0;
    return (size_t) (out - text);
}

bool
tako_httpreq_correlation_valid (const char *value)
{
    if (!value || !*value || strlen (value) > TAKO_HTTPREQ_CORRELATION_MAX)
        return false;
    for (const char *c = value; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
           || *c == '-' || *c == '_' || *c == '.'))
            return false;
    return true;
}

int
tako_httpreq_bool (const char *text, bool *value)
{
    if (!text)
        return 0;
    if (strcmp (text, "true") == 0 || strcmp (text, "1") == 0 || strcmp (text, "yes") == 0)
        *value = true;
    else
    if (strcmp (text, "false") == 0 || strcmp (text, "0") == 0 || strcmp (text, "no") == 0)
        *value = false;
    else
        return -1;
    return 0;
}

int
tako_httpreq_int (const char *text, long low, long high, long *value)
{
    if (!text)
        return 0;
    if (!*text || strlen (text) > 18)
        return -1;
    char *end = NULL;
    errno = 0;
    long number = strtol (text, &end, 10);
    if (errno || *end || number < low || number > high)
        return -1;
    *value = number;
    return 0;
}

//  --------------------------------------------------------------------------
//  Self-test

static json_t *
execute (const char *text, bool async, int *status)
{
    tako_httpreq_error_t error = { 0, "" };
    json_t *submit = tako_httpreq_execute (text, strlen (text), async, &error);
    *status = submit? 200: error.status;
    return submit;
}

void
tako_httpreq_test (bool verbose)
{
    (void) verbose;
    char escaped [] = "a%2Fb%20c%00d%zz%4";
    assert (tako_httpreq_unescape (escaped) == 14);
    assert (strcmp (escaped, "a/b c%00d%zz%4") == 0);
    int status;
    json_t *submit = execute ("{\"code\": \"print(1)\", \"input_data\": {\"a\": 1}, \"timeout\": 5,"
                              " \"requirements\": [\"six\"], \"idempotency_key\": \"k1\"}", true, &status);
    assert (submit && status == 200);
    assert (strcmp (json_string_value (json_object_get (submit, "code")), "print(1)") == 0);
    assert (json_integer_value (json_object_get (submit, "timeout")) == 5);
    assert (json_is_object (json_object_get (submit, "input_data")));
    json_decref (submit);

    const struct { const char *body; bool async; int status; } cases [] = {
        { "{\"code\": \"x\", \"idempotency_key\": \"k\"}", false, 422 },   //  sync: unknown
        { "{\"code\": \"x\", \"bogus\": 1}", true, 422 },
        { "{\"code\": 5}", false, 422 },
        { "{\"code\": \"\"}", false, 422 },
        { "{}", false, 422 },
        { "[1]", false, 422 },
        { "{\"code\": \"x\", \"input_data\": [1]}", false, 422 },
        { "{\"code\": \"x\", \"timeout\": \"5\"}", false, 422 },
        { "{\"code\": \"x\", \"timeout\": 1.5}", false, 422 },
        { "{\"code\": \"x\", \"requirements\": [1]}", false, 422 },
        { "{\"code\": \"x\", \"idempotency_key\": \"\\u0001\"}", true, 422 },
        { "{\"code\": \"x\", \"code\": \"y\"}", false, 400 },               //  duplicate key
        { "{\"code\": ", false, 400 },
        { "", false, 400 },
        { "{\"code\": \"x\", \"input_data\": null, \"job_type\": null}", false, 200 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        submit = execute (cases [i].body, cases [i].async, &status);
        assert (status == cases [i].status);
        json_decref (submit);
    }
    tako_httpreq_error_t error;
    assert (tako_httpreq_object ("{\n  \"a\": }", 10, &error) == NULL);
    assert (error.status == 400 && strstr (error.detail, "line 2"));

    char *code = tako_httpreq_fork ("{\"code\": \"print(2)\"}", 20, &error);
    assert (code && strcmp (code, "print(2)") == 0);
    free (code);
    assert (tako_httpreq_fork ("{\"code\": \"x\", \"y\": 1}", 21, &error) == NULL && error.status == 422);

    assert (tako_httpreq_id_valid ("3f2a-11_b"));
    assert (!tako_httpreq_id_valid ("") && !tako_httpreq_id_valid ("a.b") && !tako_httpreq_id_valid ("a/b"));
    assert (tako_httpreq_name_valid ("plot.png") && tako_httpreq_name_valid ("_code.py"));
    assert (!tako_httpreq_name_valid ("..") && !tako_httpreq_name_valid ("a/b")
         && !tako_httpreq_name_valid ("a\nb") && !tako_httpreq_name_valid (""));
    assert (tako_httpreq_correlation_valid ("req-1.2_3"));
    assert (!tako_httpreq_correlation_valid ("a b") && !tako_httpreq_correlation_valid ("<x>"));

    bool flag = false;
    assert (tako_httpreq_bool ("true", &flag) == 0 && flag);
    assert (tako_httpreq_bool ("maybe", &flag) == -1 && flag);
    long number = 7;
    assert (tako_httpreq_int (NULL, 1, 10, &number) == 0 && number == 7);
    assert (tako_httpreq_int ("10", 1, 10, &number) == 0 && number == 10);
    assert (tako_httpreq_int ("11", 1, 10, &number) == -1);
    assert (tako_httpreq_int ("1x", 1, 10, &number) == -1);
    assert (tako_httpreq_int ("-1", 0, 10, &number) == -1);
}
