/*  tako_envspec — what a job type's environment is made of, and its name.

    A job type's environment depends on a few of its fields only:
    requirements, python_version, base, environment, shared_code and gpu.
    The spec is those fields as canonical JSON (keys sorted, no spaces;
    requirements trimmed, sorted and without duplicates, since their order
    does not change what pip installs), its sha256 digest, the job type's
    job_ref "name@sha256:<first 12 hex>", and the sha256 of the
    requirements alone. The job type's name is not in the digest: two job
    types with the same environment share one built environment.

    Per-request requirements are added to the job type's, so a job that
    asks for "pkg==1.0" under a type that already lists it resolves to the
    type's own environment.

        tako_envspec_t *spec = tako_envspec_new (job_type, NULL, 0, &error);
        printf ("%s → envs/%s\n", tako_envspec_job_ref (spec),
                tako_envspec_digest (spec));
        tako_envspec_destroy (&spec);

    Pure: no file system, no network, no clock.                            */

#ifndef TAKO_ENVSPEC_H_INCLUDED
#define TAKO_ENVSPEC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "tako_config.h"

typedef struct _tako_envspec_t tako_envspec_t;

//  Hex digits of the digest in a job_ref.
#define TAKO_ENVSPEC_SHORT_DIGEST   12
//  Per-request requirements accepted on top of the job type's.
#define TAKO_ENVSPEC_EXTRA_MAX      64

//  The spec of job_type with extra (per-request) requirements, which may
//  be NULL/0. NULL and *error set (caller frees; safe to show a client)
//  when an extra requirement is not a plain specifier or there are too
//  many.
tako_envspec_t *tako_envspec_new (const tako_config_job_type_t *job_type,
                                  const char *const *extra, size_t extra_count,
                                  char **error);

//  Free; NULLs the caller's pointer, safe twice.
void tako_envspec_destroy (tako_envspec_t **self_p);

//  The job type's name.
const char *tako_envspec_job_type (tako_envspec_t *self);

//  The canonical JSON the digest is taken over.
const char *tako_envspec_canonical (tako_envspec_t *self);

//  sha256 of the canonical JSON, 64 lowercase hex digits.
const char *tako_envspec_digest (tako_envspec_t *self);

//  "name@sha256:<first 12 hex of the digest>".
const char *tako_envspec_job_ref (tako_envspec_t *self);

//  sha256 hex of the normalised requirements list (as canonical JSON).
const char *tako_envspec_requirements_hash (tako_envspec_t *self);

//  The normalised requirements, NULL-terminated; *count (if not NULL)
//  gets how many.
const char *const *tako_envspec_requirements (tako_envspec_t *self, size_t *count);

//  python_version of the job type ("" = the sandbox's interpreter).
const char *tako_envspec_python_version (tako_envspec_t *self);

//  True if text is "name@sha256:<hex>" with a job type name and 12 to 64
//  lowercase hex digits.
bool tako_envspec_is_job_ref (const char *text);

//  True if digest (64 hex) is the one job_ref names (its hex is a prefix).
bool tako_envspec_ref_matches (const char *job_ref, const char *digest);

//  The version record the recorder keeps (QUERY version.register
//  {version}): {digest, job_type, job_ref, env_ref: "envs/<digest>",
//  requirements_hash, built_by, version_tag?}. A new object, or NULL.
json_t *tako_envspec_version (tako_envspec_t *self, const char *built_by,
                              const char *version_tag);

//  True if tag is a version_tag we keep: 1 to 64 letters, digits, '.',
//  '_' or '-'.
bool tako_envspec_version_tag_valid (const char *tag);

void tako_envspec_test (bool verbose);

#endif
