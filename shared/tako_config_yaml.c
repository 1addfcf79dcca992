/*  tako_config_yaml — read tako_vm.yaml into a tako_config_t.

    Two passes. First libyaml's event parser builds a small tree of our
    own, refusing what a configuration never needs and an attacker loves:
    aliases (billion laughs), deep nesting, huge node counts, NUL bytes,
    several documents. Then the tree is walked against the option tables,
    recording every problem with its line and carrying on, so one run
    shows all of them.                                                    */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <yaml.h>
#include "tako_config_private.h"

//  Nesting a configuration ever needs is about 5 (root, job_types, one
//  job type, gpu, device_ids); deeper is a mistake or an attack.
#define TREE_DEPTH_MAX   16
//  Values (scalars and containers) in one file.
#define TREE_NODES_MAX   100000
//  Option paths like "job_types[data-processing].gpu.device_ids[3]".
#define PATH_MAX_LENGTH  256

typedef enum { NODE_SCALAR, NODE_SEQUENCE, NODE_MAPPING } node_kind_t;

typedef struct node_t {
    node_kind_t kind;
    int line;                   //  1-based
    char *text;                 //  scalar value, NUL-terminated
    bool quoted;                //  not a plain scalar: "true" is a string
    bool bad;                   //  already reported (e.g. holds a NUL)
    struct node_t **children;   //  sequence items, or mapping key, value, ...
    size_t count;
    size_t capacity;
} node_t;

typedef struct {
    tako_config_t *config;
    tako_config_errors_t *errors;
    const char *file;
    size_t node_count;
    bool failed;
} loader_t;

static void
loader_error (loader_t *self, int line, const char *option, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
loader_error (loader_t *self, int line, const char *option, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *message = NULL;
    if (vasprintf (&message, format, args) < 0)
        message = NULL;
    va_end (args);
    tako_config_errors_add (self->errors, false, self->file, line, option, "%s",
                            message? message: "out of memory");
    free (message);
    self->failed = true;
}

//  Option paths are for messages: a very long key is cut, not an error.
static void
path_format (char *path, size_t size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
path_format (char *path, size_t size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (path, size, format, args);
    va_end (args);
}

//  ---------------------------------------------------------------------
//  Pass 1: events to tree

static void
node_destroy (node_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    node_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        node_destroy (&self->children [i]);
    free (self->children);
    free (self->text);
    free (self);
    *self_p = NULL;
}

static int
node_append (node_t *parent, node_t *child)
{
    if (parent->count == parent->capacity) {
        size_t capacity = parent->capacity? parent->capacity * 2: 8;
        node_t **children = realloc (parent->children, capacity * sizeof *children);
        if (!children)
            return -1;
        parent->children = children;
        parent->capacity = capacity;
    }
    parent->children [parent->count++] = child;
    return 0;
}

static node_t *
node_from_event (loader_t *self, yaml_event_t *event)
{
    node_t *node = calloc (1, sizeof *node);
    if (!node)
        return NULL;
    node->line = (int) event->start_mark.line + 1;
    if (event->type == YAML_SEQUENCE_START_EVENT)
        node->kind = NODE_SEQUENCE;
    else
    if (event->type == YAML_MAPPING_START_EVENT)
        node->kind = NODE_MAPPING;
    else {
        node->kind = NODE_SCALAR;
        size_t length = event->data.scalar.length;
        node->text = malloc (length + 1);
        if (!node->text) {
            free (node);
            return NULL;
        }
        memcpy (node->text, event->data.scalar.value, length);
        node->text [length] = 0;
        const char *tag = (const char *) event->data.scalar.tag;
        node->quoted = event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE
                    || (tag && strcmp (tag, YAML_STR_TAG) == 0);
        //  "\0" in a double-quoted scalar gives a NUL: no C string holds it.
        if (memchr (event->data.scalar.value, 0, length)) {
            loader_error (self, node->line, NULL, "a value contains a NUL byte");
            node->bad = true;
        }
    }
    return node;
}

//  Handles one event. Returns 1 at the end of the stream, 0 to go on,
//  -1 on a problem (already reported).
static int
tree_event (loader_t *self, yaml_event_t *event, node_t **root,
            node_t **stack, int *depth, int *documents)
{
    switch (event->type) {
        case YAML_STREAM_END_EVENT:
            return 1;
        case YAML_DOCUMENT_START_EVENT:
            if (++*documents > 1) {
                loader_error (self, (int) event->start_mark.line + 1, NULL,
                              "only one YAML document is allowed");
                return -1;
            }
            return 0;
        case YAML_ALIAS_EVENT:
            loader_error (self, (int) event->start_mark.line + 1, NULL,
                          "YAML aliases (*name) are not supported");
            return -1;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            (*depth)--;
            return 0;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            break;
        default:
            return 0;
    }
    if (++self->node_count > TREE_NODES_MAX) {
        loader_error (self, (int) event->start_mark.line + 1, NULL,
                      "too many values (more than %d)", TREE_NODES_MAX);
        return -1;
    }
    node_t *node = node_from_event (self, event);
    if (!node) {
        loader_error (self, 0, NULL, "out of memory");
        return -1;
    }
    if (*depth == 0)
        *root = node;
    else
    if (node_append (stack [*depth - 1], node)) {
        node_destroy (&node);
        loader_error (self, 0, NULL, "out of memory");
        return -1;
    }
    if (node->kind != NODE_SCALAR) {
        if (*depth >= TREE_DEPTH_MAX) {
            loader_error (self, node->line, NULL, "nested deeper than %d levels", TREE_DEPTH_MAX);
            return -1;
        }
        stack [(*depth)++] = node;
    }
    return 0;
}

//  Parse the text into *root (NULL for an empty file). Returns 0 or -1.
static int
tree_build (loader_t *self, const char *text, size_t size, node_t **root)
{
    *root = NULL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize (&parser)) {
        loader_error (self, 0, NULL, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string (&parser, (const unsigned char *) text, size);
    node_t *stack [TREE_DEPTH_MAX];
    int depth = 0, documents = 0, rc = 0;
    while (rc == 0) {
        yaml_event_t event;
        if (!yaml_parser_parse (&parser, &event)) {
            loader_error (self, (int) parser.problem_mark.line + 1, NULL, "YAML syntax error: %s",
                          parser.problem? parser.problem: "malformed");
            rc = -1;
            break;
        }
        rc = tree_event (self, &event, root, stack, &depth, &documents);
        yaml_event_delete (&event);
    }
    yaml_parser_delete (&parser);
    if (rc < 0) {
        node_destroy (root);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Pass 2: tree to config

static bool
node_is_null (const node_t *node)
{
    return !node || (node->kind == NODE_SCALAR && !node->quoted
        && (!*node->text || strcmp (node->text, "~") == 0 || strcasecmp (node->text, "null") == 0));
}

static const char *
node_kind_name (const node_t *node)
{
    return node->kind == NODE_MAPPING? "a mapping": node->kind == NODE_SEQUENCE? "a list": "a single value";
}

static const char *
option_expects (const option_t *option)
{
    switch (option->kind) {
        case OPTION_BOOL:   return "true or false";
        case OPTION_INT:    return "an integer";
        case OPTION_SIZE:
        case OPTION_SIZE_TEXT: return "a size";
        case OPTION_DOUBLE: return "a number";
        default:            return "a single value";
    }
}

//  Reports a duplicate key; true if the key at pair index was seen before.
static bool
key_is_duplicate (loader_t *self, const node_t *map, size_t pair, const char *path)
{
    const node_t *key = map->children [pair * 2];
    for (size_t earlier = 0; earlier < pair; earlier++) {
        const node_t *other = map->children [earlier * 2];
        if (other->kind == NODE_SCALAR && strcmp (other->text, key->text) == 0) {
            char option [PATH_MAX_LENGTH];
            snprintf (option, sizeof option, "%s%s", path, key->text);
            loader_error (self, key->line, option, "duplicate key (first at line %d)", other->line);
            return true;
        }
    }
    return false;
}

//  The key of pair, or NULL (reported) if it is not a usable name.
static const node_t *
pair_key (loader_t *self, const node_t *map, size_t pair, const char *path)
{
    const node_t *key = map->children [pair * 2];
    if (key->kind != NODE_SCALAR || key->bad) {
        if (!key->bad)
            loader_error (self, key->line, *path? path: NULL, "a key must be a plain name, not %s",
                          node_kind_name (key));
        return NULL;
    }
    return key_is_duplicate (self, map, pair, path)? NULL: key;
}

static bool
expect_mapping (loader_t *self, const node_t *node, const char *option)
{
    if (node->kind == NODE_MAPPING)
        return true;
    if (!node->bad)
        loader_error (self, node->line, option, "expected a mapping, got %s", node_kind_name (node));
    return false;
}

static void
set_scalar (loader_t *self, const option_t *option, void *base, const node_t *value,
            const char *path)
{
    if (value->bad)
        return;
    if (value->kind != NODE_SCALAR) {
        loader_error (self, value->line, path, "expected %s, got %s", option_expects (option),
                      node_kind_name (value));
        return;
    }
    if (node_is_null (value) && option->kind != OPTION_STRING) {
        loader_error (self, value->line, path, "needs a value (%s)", option_expects (option));
        return;
    }
    const char *text = node_is_null (value)? "": value->text;
    char *message = tako_config_option_set (option, base, text, value->quoted);
    if (message) {
        loader_error (self, value->line, path, "%s", message);
        free (message);
    }
    else
        tako_config_origin_set (self->config, path, value->line, NULL);
}

static void
unknown_key (loader_t *self, const node_t *key, const char *path, const option_t *table,
             const char *const *extra_names)
{
    const char *suggestion = tako_config_suggest (table, key->text, extra_names);
    char *echo = tako_config_echo (key->text);
    if (suggestion)
        loader_error (self, key->line, path, "unknown option %s (did you mean %s?)",
                      echo? echo: "", suggestion);
    else
        loader_error (self, key->line, path, "unknown option %s", echo? echo: "");
    free (echo);
}

typedef char *(item_check_fn) (const char *value);

//  A list of strings replaces the (empty) default list.
static void
load_string_list (loader_t *self, const node_t *node, const char *path,
                  tako_config_list_t *list, item_check_fn *check)
{
    tako_config_list_clear (list);
    if (node_is_null (node) || node->bad)
        return;
    if (node->kind != NODE_SEQUENCE) {
        loader_error (self, node->line, path, "expected a list, got %s", node_kind_name (node));
        return;
    }
    for (size_t i = 0; i < node->count; i++) {
        const node_t *item = node->children [i];
        char option [PATH_MAX_LENGTH];
        snprintf (option, sizeof option, "%s[%zu]", path, i);
        if (item->bad)
            continue;
        if (item->kind != NODE_SCALAR || node_is_null (item)) {
            loader_error (self, item->line, option, "expected a string, got %s",
                          item->kind == NODE_SCALAR? "nothing": node_kind_name (item));
            continue;
        }
        char *message = check? check (item->text): NULL;
        if (message) {
            loader_error (self, item->line, option, "%s", message);
            free (message);
        }
        else
        if (tako_config_list_append (list, item->text))
            loader_error (self, item->line, option, "more than %d entries", TAKO_CONFIG_LIST_MAX);
    }
}

static void
load_table_mapping (loader_t *self, const node_t *node, const char *prefix,
                    const option_t *table, void *base)
{
    char path [PATH_MAX_LENGTH];
    snprintf (path, sizeof path, "%.*s", (int) strlen (prefix) - 1, prefix);
    if (node_is_null (node) || !expect_mapping (self, node, path))
        return;
    for (size_t pair = 0; pair < node->count / 2; pair++) {
        const node_t *key = pair_key (self, node, pair, prefix);
        if (!key)
            continue;
        snprintf (path, sizeof path, "%s%s", prefix, key->text);
        const option_t *option = tako_config_option_find (table, key->text);
        if (option)
            set_scalar (self, option, base, node->children [pair * 2 + 1], path);
        else
            unknown_key (self, key, path, table, NULL);
    }
}

static void
load_api_keys (loader_t *self, const node_t *node)
{
    tako_config_list_t given = { 0, NULL };
    load_string_list (self, node, "api_keys", &given, NULL);
    tako_config_list_clear (&self->config->api_keys);
    for (size_t i = 0; i < given.count; i++) {
        char option [PATH_MAX_LENGTH];
        snprintf (option, sizeof option, "api_keys[%zu]", i);
        int line = node->children [i]->line;
        bool was_plain = false;
        char *message = NULL;
        char *hash = tako_config_api_key_hash (given.items [i], &was_plain, &message);
        if (!hash)
            loader_error (self, line, option, "%s", message? message: "out of memory");
        else
        if (was_plain)
            tako_config_errors_add (self->errors, true, self->file, line, option,
                                    "plain API key hashed at load; store \"%s\" instead", hash);
        if (hash && tako_config_list_append (&self->config->api_keys, hash))
            loader_error (self, line, option, "more than %d entries", TAKO_CONFIG_LIST_MAX);
        free (hash);
        free (message);
        //  The plain key must not outlive the load.
        explicit_bzero (given.items [i], strlen (given.items [i]));
    }
    tako_config_list_clear (&given);
}

static void
load_environment (loader_t *self, const node_t *node, const char *path,
                  tako_config_job_type_t *job_type)
{
    if (node_is_null (node) || !expect_mapping (self, node, path))
        return;
    char prefix [PATH_MAX_LENGTH];
    path_format (prefix, sizeof prefix, "%s.", path);
    for (size_t pair = 0; pair < node->count / 2; pair++) {
        const node_t *key = pair_key (self, node, pair, prefix);
        const node_t *value = node->children [pair * 2 + 1];
        if (!key || value->bad)
            continue;
        char option [PATH_MAX_LENGTH];
        snprintf (option, sizeof option, "%s%s", prefix, key->text);
        char *message = tako_config_check_env_name (key->text);
        if (!message && value->kind != NODE_SCALAR)
            message = tako_config_format ("expected a string, got %s", node_kind_name (value));
        if (!message && strlen (value->text) > TAKO_CONFIG_STRING_MAX)
            message = tako_config_format ("is longer than %d characters", TAKO_CONFIG_STRING_MAX);
        if (!message && job_type->environment_count >= TAKO_CONFIG_LIST_MAX)
            message = tako_config_format ("more than %d variables", TAKO_CONFIG_LIST_MAX);
        if (message) {
            loader_error (self, key->line, option, "%s", message);
            free (message);
            continue;
        }
        tako_config_env_var_t *variables = realloc (job_type->environment,
            (job_type->environment_count + 1) * sizeof *variables);
        if (!variables)
            continue;
        job_type->environment = variables;
        variables [job_type->environment_count].name = strdup (key->text);
        variables [job_type->environment_count].value = strdup (node_is_null (value)? "": value->text);
        job_type->environment_count++;
    }
}

static void
load_gpu (loader_t *self, const node_t *node, const char *path, tako_config_gpu_t *gpu)
{
    if (node_is_null (node) || !expect_mapping (self, node, path))
        return;
    static const char *const extra [] = { "device_ids", NULL };
    char prefix [PATH_MAX_LENGTH];
    path_format (prefix, sizeof prefix, "%s.", path);
    for (size_t pair = 0; pair < node->count / 2; pair++) {
        const node_t *key = pair_key (self, node, pair, prefix);
        if (!key)
            continue;
        char option [PATH_MAX_LENGTH];
        snprintf (option, sizeof option, "%s%s", prefix, key->text);
        const node_t *value = node->children [pair * 2 + 1];
        const option_t *row = tako_config_option_find (tako_config_gpu_options, key->text);
        if (row)
            set_scalar (self, row, gpu, value, option);
        else
        if (strcmp (key->text, "device_ids") == 0)
            load_string_list (self, value, option, &gpu->device_ids, tako_config_check_device_id);
        else
            unknown_key (self, key, option, tako_config_gpu_options, extra);
    }
}


//  Each shared_code path is mounted at /shared/<its last component>: two
//  with the same last component would hide one another.
static void
shared_code_check_names (loader_t *self, const node_t *node, const char *option,
                         const tako_config_list_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = strrchr (list->items [i], '/');
            const char *b = strrchr (list->items [j], '/');
            if (a && b && strcmp (a, b) == 0) {
                loader_error (self, node->line, option,
                              "two paths end in the same name '%s'", a + 1);
                return;
            }
        }
}
static void
load_job_type_field (loader_t *self, const node_t *key, const node_t *value,
                     const char *prefix, tako_config_job_type_t *job_type)
{
    static const char *const extra [] = {
        "name", "requirements", "shared_code", "environment", "gpu", "preload", NULL
    };
    char option [PATH_MAX_LENGTH];
    snprintf (option, sizeof option, "%s%s", prefix, key->text);
    const option_t *row = tako_config_option_find (tako_config_job_options, key->text);
    if (row)
        set_scalar (self, row, job_type, value, option);
    else
    if (strcmp (key->text, "name") == 0)
        ;   //  read first, by load_job_type
    else
    if (strcmp (key->text, "requirements") == 0)
        load_string_list (self, value, option, &job_type->requirements, tako_config_check_requirement);
    else
    if (strcmp (key->text, "shared_code") == 0) {
        load_string_list (self, value, option, &job_type->shared_code, tako_config_check_absolute_path);
        shared_code_check_names (self, value, option, &job_type->shared_code);
    }
    else
    if (strcmp (key->text, "preload") == 0)
        load_string_list (self, value, option, &job_type->preload, tako_config_check_module_name);
    else
    if (strcmp (key->text, "environment") == 0)
        load_environment (self, value, option, job_type);
    else
    if (strcmp (key->text, "gpu") == 0)
        load_gpu (self, value, option, &job_type->gpu);
    else
        unknown_key (self, key, option, tako_config_job_options, extra);
}

//  The job type's name, or NULL (reported) if missing or invalid.
static const char *
job_type_name (loader_t *self, const node_t *node, const char *label)
{
    for (size_t pair = 0; pair < node->count / 2; pair++) {
        const node_t *key = node->children [pair * 2];
        const node_t *value = node->children [pair * 2 + 1];
        if (key->kind != NODE_SCALAR || strcmp (key->text, "name") != 0)
            continue;
        if (value->bad)
            return NULL;
        if (value->kind != NODE_SCALAR || node_is_null (value)) {
            loader_error (self, value->line, label, "name: expected a string, got %s",
                          value->kind == NODE_SCALAR? "nothing": node_kind_name (value));
            return NULL;
        }
        char *message = tako_config_check_job_type_name (value->text);
        if (message) {
            loader_error (self, value->line, label, "name: %s", message);
            free (message);
            return NULL;
        }
        return value->text;
    }
    loader_error (self, node->line, label, "name is required");
    return NULL;
}

//  Adds the job type to the config, or replaces the built-in default.
static void
job_type_store (loader_t *self, tako_config_job_type_t *job_type)
{
    tako_config_t *config = self->config;
    if (strcmp (job_type->name, TAKO_CONFIG_DEFAULT_JOB_TYPE) == 0) {
        job_type->builtin = true;
        tako_config_job_type_clear (&config->job_types [0]);
        config->job_types [0] = *job_type;
        return;
    }
    tako_config_job_type_t *job_types = realloc (config->job_types,
        (config->job_type_count + 1) * sizeof *job_types);
    if (!job_types) {
        tako_config_job_type_clear (job_type);
        return;
    }
    config->job_types = job_types;
    job_types [config->job_type_count++] = *job_type;
}

static void
load_job_type (loader_t *self, const node_t *node, size_t index)
{
    char label [PATH_MAX_LENGTH];
    snprintf (label, sizeof label, "job_types[%zu]", index);
    if (node->bad || !expect_mapping (self, node, label))
        return;
    const char *name = job_type_name (self, node, label);
    if (!name)
        return;
    const tako_config_job_type_t *earlier = tako_config_job_type (self->config, name);
    if (earlier && earlier->line > 0) {
        loader_error (self, node->line, label, "duplicate job type name \"%s\" (first at line %d)",
                      name, earlier->line);
        return;
    }
    if (self->config->job_type_count >= TAKO_CONFIG_JOB_TYPES_MAX) {
        loader_error (self, node->line, label, "more than %d job types", TAKO_CONFIG_JOB_TYPES_MAX);
        return;
    }
    snprintf (label, sizeof label, "job_types[%s].", name);
    tako_config_job_type_t job_type;
    tako_config_job_type_init (&job_type, name);
    job_type.line = node->line;
    for (size_t pair = 0; pair < node->count / 2; pair++) {
        const node_t *key = pair_key (self, node, pair, label);
        if (key)
            load_job_type_field (self, key, node->children [pair * 2 + 1], label, &job_type);
    }
    //  The built-in default runs the standard library only, so that a
    //  job with no job type never waits for an environment build.
    if (strcmp (name, TAKO_CONFIG_DEFAULT_JOB_TYPE) == 0 && job_type.requirements.count > 0) {
        snprintf (label, sizeof label, "job_types[%s].requirements", name);
        loader_error (self, node->line, label, "the built-in default job type is standard "
                      "library only; define another job type for requirements");
    }
    job_type_store (self, &job_type);
}

static void
load_job_types (loader_t *self, const node_t *node)
{
    if (node_is_null (node) || node->bad)
        return;
    if (node->kind != NODE_SEQUENCE) {
        loader_error (self, node->line, "job_types", "expected a list of job types, got %s",
                      node_kind_name (node));
        return;
    }
    for (size_t i = 0; i < node->count; i++)
        load_job_type (self, node->children [i], i);
}

static void
load_top_option (loader_t *self, const node_t *key, const node_t *value)
{
    static const char *const extra [] = {
        "container_limits", "job_types", "api_keys", "pip_find_links", NULL
    };
    const char *name = key->text;
    const option_t *option = tako_config_option_find (tako_config_top_options, name);
    if (option)
        set_scalar (self, option, self->config, value, name);
    else
    if (strcmp (name, "container_limits") == 0)
        load_table_mapping (self, value, "container_limits.", tako_config_limit_options, self->config);
    else
    if (strcmp (name, "job_types") == 0)
        load_job_types (self, value);
    else
    if (strcmp (name, "api_keys") == 0)
        load_api_keys (self, value);
    else
    if (strcmp (name, "pip_find_links") == 0)
        load_string_list (self, value, name, &self->config->pip_find_links,
                          tako_config_check_absolute_path);
    else
    if (strcmp (name, "docker_image") == 0)
        loader_error (self, key->line, NULL, "docker_image is not used by tako-vm "
                      "(no Docker engine); use sandbox_rootfs");
    else
    if (tako_config_option_find (tako_config_limit_options, name))
        loader_error (self, key->line, name, "belongs under container_limits "
                      "(container_limits.%s)", name);
    else
        unknown_key (self, key, name, tako_config_top_options, extra);
}

static void
load_root (loader_t *self, const node_t *root)
{
    if (node_is_null (root) || root->bad)
        return;     //  an empty file is valid: all defaults
    if (root->kind != NODE_MAPPING) {
        loader_error (self, root->line, NULL, "the file must be a mapping of \"option: value\" "
                      "lines, not %s", node_kind_name (root));
        return;
    }
    for (size_t pair = 0; pair < root->count / 2; pair++) {
        const node_t *key = pair_key (self, root, pair, "");
        if (key)
            load_top_option (self, key, root->children [pair * 2 + 1]);
    }
}

//  Line of the first NUL byte in text, counting from 1.
static int
line_of (const char *text, const char *at)
{
    int line = 1;
    for (const char *c = text; c < at; c++)
        line += *c == '\n';
    return line;
}

int
tako_config_load_string (tako_config_t *self, const char *text, size_t size,
                         const char *name, tako_config_errors_t *errors)
{
    loader_t loader = { self, errors, name, 0, false };
    tako_config_origin_set_source (self, name);
    if (size > TAKO_CONFIG_FILE_MAX) {
        loader_error (&loader, 0, NULL, "is larger than %d KiB", TAKO_CONFIG_FILE_MAX / 1024);
        return -1;
    }
    const char *nul = memchr (text, 0, size);
    if (nul) {
        loader_error (&loader, line_of (text, nul), NULL, "contains a NUL byte; not a text file");
        return -1;
    }
    node_t *root = NULL;
    if (tree_build (&loader, text, size, &root) == 0)
        load_root (&loader, root);
    node_destroy (&root);
    return loader.failed? -1: 0;
}

//  Reads at most TAKO_CONFIG_FILE_MAX + 1 bytes, so a file that grows
//  while we read it is still refused rather than read without end.
static char *
file_read (const char *path, size_t *size, char **problem)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat status;
    if (fd < 0 || fstat (fd, &status)) {
        *problem = tako_config_format ("cannot read: %s", strerror (errno));
        if (fd >= 0)
            close (fd);
        return NULL;
    }
    if (!S_ISREG (status.st_mode)) {
        *problem = strdup ("is not a regular file");
        close (fd);
        return NULL;
    }
    char *text = malloc (TAKO_CONFIG_FILE_MAX + 2);
    size_t used = 0;
    while (text && used <= TAKO_CONFIG_FILE_MAX) {
        ssize_t got = read (fd, text + used, TAKO_CONFIG_FILE_MAX + 1 - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            *problem = tako_config_format ("cannot read: %s", strerror (errno));
            free (text);
            text = NULL;
        }
        if (got <= 0)
            break;
        used += (size_t) got;
    }
    close (fd);
    if (text)
        text [used] = 0;
    else
    if (!*problem)
        *problem = strdup ("out of memory");
    *size = used;
    return text;
}

int
tako_config_load_file (tako_config_t *self, const char *path, tako_config_errors_t *errors)
{
    size_t size = 0;
    char *problem = NULL;
    char *text = file_read (path, &size, &problem);
    if (!text) {
        tako_config_errors_add (errors, false, path, 0, NULL, "%s", problem);
        free (problem);
        return -1;
    }
    int rc = tako_config_load_string (self, text, size, path, errors);
    free (text);
    return rc;
}
