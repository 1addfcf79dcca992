/*  tako_config_json — the effective configuration as JSON.

    Used by `tako-vm config --json`, GET /job-types and the builder's job
    type digest. Safe to show: the database password is masked and API
    keys appear only as their hashes.                                      */

#include <string.h>
#include <stdlib.h>
#include "tako_config_private.h"

#define PASSWORD_MASK "****"

static json_t *
list_json (const tako_config_list_t *list)
{
    json_t *array = json_array ();
    for (size_t i = 0; array && i < list->count; i++)
        json_array_append_new (array, json_string (list->items [i]));
    return array;
}

static void
table_into (json_t *object, const option_t *table, const void *base)
{
    for (const option_t *option = table; option->name; option++)
        json_object_set_new (object, option->name, tako_config_option_json (option, base));
}

//  "postgresql://user:secret@host/db" -> "postgresql://user:****@host/db";
//  "host=x password=secret" -> "host=x password=****".
static char *
database_url_masked (const char *url)
{
    const char *scheme_end = strstr (url, "://");
    if (scheme_end) {
        const char *authority = scheme_end + 3;
        const char *at = strchr (authority, '@');
        const char *slash = strchr (authority, '/');
        const char *colon = strchr (authority, ':');
        if (at && (!slash || at < slash) && colon && colon < at)
            return tako_config_format ("%.*s" PASSWORD_MASK "%s", (int) (colon + 1 - url), url, at);
        return strdup (url);
    }
    const char *password = strstr (url, "password=");
    if (password) {
        const char *end = strchr (password, ' ');
        return tako_config_format ("%.*s" PASSWORD_MASK "%s", (int) (password + 9 - url), url,
                                   end? end: "");
    }
    return strdup (url);
}

json_t *
tako_config_job_type_to_json (const tako_config_job_type_t *job_type)
{
    json_t *object = json_object ();
    if (!object)
        return NULL;
    json_object_set_new (object, "name", json_string (job_type->name));
    json_object_set_new (object, "requirements", list_json (&job_type->requirements));
    table_into (object, tako_config_job_options, job_type);
    json_object_set_new (object, "memory_limit_bytes", json_integer (job_type->memory_limit));
    json_object_set_new (object, "shared_code", list_json (&job_type->shared_code));
    json_t *environment = json_object ();
    for (size_t i = 0; environment && i < job_type->environment_count; i++)
        json_object_set_new (environment, job_type->environment [i].name,
                             json_string (job_type->environment [i].value));
    json_object_set_new (object, "environment", environment);
    json_t *gpu = json_object ();
    if (gpu) {
        table_into (gpu, tako_config_gpu_options, &job_type->gpu);
        json_object_set_new (gpu, "device_ids", list_json (&job_type->gpu.device_ids));
    }
    json_object_set_new (object, "gpu", gpu);
    json_object_set_new (object, "preload", list_json (&job_type->preload));
    json_object_set_new (object, "builtin", json_boolean (job_type->builtin));
    return object;
}

json_t *
tako_config_to_json (tako_config_t *self)
{
    json_t *object = json_object ();
    if (!object)
        return NULL;
    table_into (object, tako_config_top_options, self);
    char *masked = database_url_masked (self->database_url? self->database_url: "");
    json_object_set_new (object, "database_url", json_string (masked? masked: ""));
    free (masked);

    json_t *limits = json_object ();
    if (limits)
        table_into (limits, tako_config_limit_options, self);
    json_object_set_new (object, "container_limits", limits);

    json_t *job_types = json_array ();
    for (size_t i = 0; job_types && i < self->job_type_count; i++)
        json_array_append_new (job_types, tako_config_job_type_to_json (&self->job_types [i]));
    json_object_set_new (object, "job_types", job_types);
    json_object_set_new (object, "api_keys", list_json (&self->api_keys));
    json_object_set_new (object, "pip_find_links", list_json (&self->pip_find_links));
    return object;
}
