/*  tako_envspec — a job type's environment spec and digest. See
    tako_envspec.h.

    The canonical form is part of every job_ref ever handed out: changing
    what goes into it (a field, a spelling, the normalisation) changes
    every digest, and reruns pinned to an old job_ref would no longer find
    their environment. Extend it only with fields that are absent from
    the JSON when they have their default value.                          */

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include <jansson.h>
#include "tako_envspec.h"
#include "tako_config_private.h"
#include "tako_sha256.h"

//  jansson flags of the canonical form: sorted keys, no spaces, UTF-8.
#define ENVSPEC_JSON_FLAGS  (JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII)

struct _tako_envspec_t {
    char *job_type;
    char **requirements;            //  normalised, NULL-terminated
    size_t requirement_count;
    char *python_version;
    char *canonical;
    char digest [TAKO_SHA256_HEX_SIZE];
    char requirements_hash [TAKO_SHA256_HEX_SIZE];
    char *job_ref;
};

//  ---------------------------------------------------------------------
//  Normalisation

//  A copy of text without leading and trailing spaces, or NULL.
static char *
trimmed_copy (const char *text)
{
    while (*text == ' ')
        text++;
    size_t size = strlen (text);
    while (size > 0 && text [size - 1] == ' ')
        size--;
    return strndup (text, size);
}

static int
compare_strings (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

//  Gather the job type's and the extra requirements, trimmed, sorted,
//  unique. 0, or -1 (out of memory).
static int
requirements_collect (tako_envspec_t *self, const tako_config_list_t *own,
                      const char *const *extra, size_t extra_count)
{
    size_t total = own->count + extra_count;
    self->requirements = (char **) calloc (total + 1, sizeof (char *));
    if (!self->requirements)
        return -1;
    size_t count = 0;
    for (size_t i = 0; i < total; i++) {
        const char *item = i < own->count? own->items [i]: extra [i - own->count];
        char *copy = trimmed_copy (item);
        if (!copy)
            return -1;
        self->requirements [count++] = copy;
    }
    qsort (self->requirements, count, sizeof (char *), compare_strings);
    size_t unique = 0;
    for (size_t i = 0; i < count; i++)
        if (unique > 0 && streq (self->requirements [unique - 1], self->requirements [i]))
            free (self->requirements [i]);
        else
            self->requirements [unique++] = self->requirements [i];
    self->requirements [unique] = NULL;
    self->requirement_count = unique;
    return 0;
}

//  Refuse per-request requirements that are not plain specifiers: they
//  go to pip, and an option or a URL there would change what pip does.
static char *
extra_check (const char *const *extra, size_t extra_count)
{
    if (extra_count > TAKO_ENVSPEC_EXTRA_MAX)
        return zsys_sprintf ("at most %d requirements per request", TAKO_ENVSPEC_EXTRA_MAX);
    for (size_t i = 0; i < extra_count; i++) {
        char *copy = extra [i]? trimmed_copy (extra [i]): NULL;
        char *problem = copy? tako_config_check_requirement (copy): strdup ("invalid requirement");
        free (copy);
        if (problem) {
            char *message = zsys_sprintf ("requirements: %s", problem);
            free (problem);
            return message;
        }
    }
    return NULL;
}

static json_t *
strings_json (char *const *items, size_t count)
{
    json_t *array = json_array ();
    for (size_t i = 0; array && i < count; i++)
        json_array_append_new (array, json_string (items [i]));
    return array;
}

static const char *
gpu_vendor_name (tako_gpu_vendor_t vendor)
{
    return vendor == TAKO_GPU_VENDOR_NVIDIA? "nvidia":
           vendor == TAKO_GPU_VENDOR_AMD? "amd": "none";
}

//  Only an enabled GPU changes the environment; a disabled one is just
//  {enabled: false}, whatever else its entry says.
static json_t *
gpu_json (const tako_config_gpu_t *gpu)
{
    if (!gpu->enabled)
        return json_pack ("{s:b}", "enabled", 0);
    return json_pack ("{s:b, s:s, s:i, s:o}", "enabled", 1,
                      "vendor", gpu_vendor_name (gpu->vendor), "count", gpu->count,
                      "device_ids", strings_json (gpu->device_ids.items, gpu->device_ids.count));
}

static json_t *
environment_json (const tako_config_job_type_t *job_type)
{
    json_t *object = json_object ();
    for (size_t i = 0; object && i < job_type->environment_count; i++)
        json_object_set_new (object, job_type->environment [i].name,
                             json_string (job_type->environment [i].value));
    return object;
}

//  The canonical JSON text of the environment fields, or NULL.
static char *
canonical_text (tako_envspec_t *self, const tako_config_job_type_t *job_type)
{
    json_t *spec = json_pack ("{s:o, s:s, s:s, s:o, s:o, s:o}",
        "requirements", strings_json (self->requirements, self->requirement_count),
        "python_version", job_type->python_version? job_type->python_version: "",
        "base", job_type->base? job_type->base: "",
        "environment", environment_json (job_type),
        //  Order matters here: the first directory wins an import.
        "shared_code", strings_json (job_type->shared_code.items, job_type->shared_code.count),
        "gpu", gpu_json (&job_type->gpu));
    char *text = spec? json_dumps (spec, ENVSPEC_JSON_FLAGS): NULL;
    json_decref (spec);
    return text;
}

static void
sha256_hex_into (const char *text, char hex [TAKO_SHA256_HEX_SIZE])
{
    tako_sha256_t *hash = tako_sha256_new ();
    assert (hash);
    tako_sha256_update (hash, text, strlen (text));
    tako_sha256_final_hex (hash, hex);
    tako_sha256_destroy (&hash);
}

//  ---------------------------------------------------------------------
//  Public

tako_envspec_t *
tako_envspec_new (const tako_config_job_type_t *job_type,
                  const char *const *extra, size_t extra_count, char **error)
{
    assert (job_type && job_type->name);
    char *problem = extra_check (extra, extra_count);
    if (problem) {
        if (error)
            *error = problem;
        else
            free (problem);
        return NULL;
    }
    tako_envspec_t *self = (tako_envspec_t *) calloc (1, sizeof (tako_envspec_t));
    if (!self)
        return NULL;
    self->job_type = strdup (job_type->name);
    self->python_version = strdup (job_type->python_version? job_type->python_version: "");
    char *requirements_text = NULL;
    if (!self->job_type || !self->python_version
    ||  requirements_collect (self, &job_type->requirements, extra, extra_count)
    ||  !(self->canonical = canonical_text (self, job_type))) {
        tako_envspec_destroy (&self);
        return NULL;
    }
    sha256_hex_into (self->canonical, self->digest);
    json_t *list = strings_json (self->requirements, self->requirement_count);
    requirements_text = list? json_dumps (list, ENVSPEC_JSON_FLAGS): NULL;
    json_decref (list);
    self->job_ref = zsys_sprintf ("%s@sha256:%.*s", self->job_type,
                                  TAKO_ENVSPEC_SHORT_DIGEST, self->digest);
    if (!requirements_text || !self->job_ref) {
        free (requirements_text);
        tako_envspec_destroy (&self);
        return NULL;
    }
    sha256_hex_into (requirements_text, self->requirements_hash);
    free (requirements_text);
    return self;
}

void
tako_envspec_destroy (tako_envspec_t **self_p)
{
    assert (self_p);
    tako_envspec_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; self->requirements && self->requirements [i]; i++)
        free (self->requirements [i]);
    free (self->requirements);
    free (self->job_type);
    free (self->python_version);
    free (self->canonical);
    zstr_free (&self->job_ref);
    free (self);
    *self_p = NULL;
}

const char *
tako_envspec_job_type (tako_envspec_t *self)
{
    assert (self);
    return self->job_type;
}

const char *
tako_envspec_canonical (tako_envspec_t *self)
{
    assert (self);
    return self->canonical;
}

const char *
tako_envspec_digest (tako_envspec_t *self)
{
    assert (self);
    return self->digest;
}

const char *
tako_envspec_job_ref (tako_envspec_t *self)
{
    assert (self);
    return self->job_ref;
}

const char *
tako_envspec_requirements_hash (tako_envspec_t *self)
{
    assert (self);
    return self->requirements_hash;
}

const char *const *
tako_envspec_requirements (tako_envspec_t *self, size_t *count)
{
    assert (self);
    if (count)
        *count = self->requirement_count;
    return (const char *const *) self->requirements;
}

const char *
tako_envspec_python_version (tako_envspec_t *self)
{
    assert (self);
    return self->python_version;
}

json_t *
tako_envspec_version (tako_envspec_t *self, const char *built_by, const char *version_tag)
{
    assert (self);
    char env_ref [16 + TAKO_SHA256_HEX_SIZE];
    snprintf (env_ref, sizeof env_ref, "envs/%s", self->digest);
    json_t *version = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}",
        "digest", self->digest, "job_type", self->job_type, "job_ref", self->job_ref,
        "env_ref", env_ref, "requirements_hash", self->requirements_hash,
        "built_by", built_by? built_by: "");
    if (version && version_tag)
        json_object_set_new (version, "version_tag", json_string (version_tag));
    return version;
}

bool
tako_envspec_version_tag_valid (const char *tag)
{
    size_t length = tag? strlen (tag): 0;
    if (length == 0 || length > 64)
        return false;
    for (const char *c = tag; *c; c++)
        if (!isalnum ((unsigned char) *c) && *c != '.' && *c != '_' && *c != '-')
            return false;
    return true;
}

bool
tako_envspec_is_job_ref (const char *text)
{
    const char *at = text? strstr (text, "@sha256:"): NULL;
    if (!at || at == text)
        return false;
    char *name = strndup (text, (size_t) (at - text));
    char *problem = name? tako_config_check_job_type_name (name): NULL;
    bool valid = name && !problem;
    free (name);
    free (problem);
    const char *hex = at + strlen ("@sha256:");
    size_t digits = 0;
    while (isxdigit ((unsigned char) hex [digits]) && !isupper ((unsigned char) hex [digits]))
        digits++;
    return valid && hex [digits] == 0 && digits >= TAKO_ENVSPEC_SHORT_DIGEST
        && digits < TAKO_SHA256_HEX_SIZE;
}

bool
tako_envspec_ref_matches (const char *job_ref, const char *digest)
{
    if (!tako_envspec_is_job_ref (job_ref) || !digest)
        return false;
    const char *hex = strstr (job_ref, "@sha256:") + strlen ("@sha256:");
    return strncmp (hex, digest, strlen (hex)) == 0;
}

//  ---------------------------------------------------------------------
//  Self-test

void
tako_envspec_test (bool verbose)
{
    (void) verbose;
    char *items [] = { "pkg==1.0", " numpy>=1.26 ", "pkg==1.0", NULL };
    tako_config_job_type_t job_type = {
        .name = "data",
        .requirements = { 3, items },
        .python_version = "",
        .base = ""
    };
    assert (tako_envspec_version_tag_valid ("v1.2-rc_3"));
    assert (!tako_envspec_version_tag_valid (""));
    assert (!tako_envspec_version_tag_valid ("a b"));
    assert (!tako_envspec_version_tag_valid ("x\n"));
    tako_envspec_t *spec = tako_envspec_new (&job_type, NULL, 0, NULL);
    assert (spec);
    assert (streq (tako_envspec_canonical (spec),
        "{\"base\":\"\",\"environment\":{},\"gpu\":{\"enabled\":false},"
        "\"python_version\":\"\",\"requirements\":[\"numpy>=1.26\",\"pkg==1.0\"],"
        "\"shared_code\":[]}"));
    size_t count = 0;
    const char *const *requirements = tako_envspec_requirements (spec, &count);
    assert (count == 2 && streq (requirements [0], "numpy>=1.26") && requirements [2] == NULL);
    const char *digest = tako_envspec_digest (spec);
    assert (strlen (digest) == 64);
    char *job_ref = zsys_sprintf ("data@sha256:%.12s", digest);
    assert (streq (tako_envspec_job_ref (spec), job_ref));
    assert (tako_envspec_is_job_ref (job_ref) && tako_envspec_ref_matches (job_ref, digest));
    zstr_free (&job_ref);

    //  The requirements hash is the sha256 of the list's canonical JSON.
    const char *list = "[\"numpy>=1.26\",\"pkg==1.0\"]";
    char *expected = tako_sha256_hex (list, strlen (list));
    assert (streq (tako_envspec_requirements_hash (spec), expected));
    free (expected);

    //  Order and duplicates do not matter; the name does not either.
    char *reordered_items [] = { "numpy>=1.26", "pkg==1.0", NULL };
    tako_config_job_type_t twin = job_type;
    twin.name = "twin";
    twin.requirements.count = 2;
    twin.requirements.items = reordered_items;
    tako_envspec_t *other = tako_envspec_new (&twin, NULL, 0, NULL);
    assert (other && streq (tako_envspec_digest (other), digest));
    assert (strncmp (tako_envspec_job_ref (other), "twin@sha256:", 12) == 0);
    tako_envspec_destroy (&other);

    //  Per-request requirements join the type's: one already listed is
    //  the same environment, a new one is another.
    const char *same [] = { "pkg==1.0" };
    other = tako_envspec_new (&job_type, same, 1, NULL);
    assert (other && streq (tako_envspec_digest (other), digest));
    tako_envspec_destroy (&other);
    const char *more [] = { "six" };
    other = tako_envspec_new (&job_type, more, 1, NULL);
    assert (other && !streq (tako_envspec_digest (other), digest));
    tako_envspec_destroy (&other);

    //  Every environment field changes the digest.
    tako_config_env_var_t variable = { "MODE", "fast" };
    tako_config_job_type_t changed = job_type;
    changed.environment_count = 1;
    changed.environment = &variable;
    other = tako_envspec_new (&changed, NULL, 0, NULL);
    assert (other && !streq (tako_envspec_digest (other), digest));
    tako_envspec_destroy (&other);
    changed = job_type;
    changed.python_version = "3.11";
    other = tako_envspec_new (&changed, NULL, 0, NULL);
    assert (other && !streq (tako_envspec_digest (other), digest));
    tako_envspec_destroy (&other);
    changed = job_type;
    changed.gpu.enabled = true;
    changed.gpu.vendor = TAKO_GPU_VENDOR_NVIDIA;
    changed.gpu.count = 1;
    other = tako_envspec_new (&changed, NULL, 0, NULL);
    assert (other && !streq (tako_envspec_digest (other), digest));
    tako_envspec_destroy (&other);

    //  ...and fields that do not change the environment do not.
    changed = job_type;
    changed.memory_limit = 1 << 30;
    changed.timeout = 99;
    changed.gpu.count = 3;          //  GPU disabled: ignored
    other = tako_envspec_new (&changed, NULL, 0, NULL);
    assert (other && streq (tako_envspec_digest (other), digest));
    tako_envspec_destroy (&other);

    //  Per-request requirements are checked: no pip options, no URLs.
    const char *evil [] = { "--index-url=http://x" };
    char *error = NULL;
    assert (tako_envspec_new (&job_type, evil, 1, &error) == NULL);
    assert (error && strstr (error, "requirements:"));
    zstr_free (&error);
    const char *url [] = { "pkg @ file:///etc" };
    assert (tako_envspec_new (&job_type, url, 1, NULL) == NULL);

    assert (!tako_envspec_is_job_ref ("data"));
    assert (!tako_envspec_is_job_ref ("data@sha256:abc"));
    assert (!tako_envspec_is_job_ref ("Data@sha256:0123456789ab"));
    assert (!tako_envspec_is_job_ref ("data@sha256:0123456789AB"));
    assert (!tako_envspec_is_job_ref ("@sha256:0123456789ab"));
    assert (tako_envspec_is_job_ref ("data@sha256:0123456789ab"));
    assert (!tako_envspec_ref_matches ("data@sha256:0123456789ab", digest));

    tako_envspec_destroy (&spec);
    tako_envspec_destroy (&spec);
}
