/*  tako_store_records — artifacts, dead letters and job versions.  */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_store_internal.h"

//  A sha256 digest in hex.
#define DIGEST_HEX_LENGTH 64
#define DIGEST_PREFIX "sha256:"

//  ---------------------------------------------------------------------
//  Artifacts

#define ARTIFACT_META \
    "json_build_object ('name', name, 'size_bytes', size_bytes," \
    " 'sha256', sha256, 'content_type', content_type)"

int
tako_store_artifact_get (tako_store_t *self, const char *job_id, const char *name,
                         json_t **meta, void **data, size_t *size)
{
    *meta = NULL;
    *data = NULL;
    *size = 0;
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    store_params_text (&params, name);
    //  Stored artifacts first; then the input ones, derived from the job.
    //  Binary results, so content with NUL bytes arrives whole.
    PGresult *result = store_query (self,
        "SELECT meta::text, content FROM ("
        "  SELECT 1 AS rank, " ARTIFACT_META " AS meta, content"
        "    FROM artifacts WHERE job_id = $1 AND name = $2"
        "  UNION ALL"
        "  SELECT 2, json_build_object ('name', '_code.py', 'size_bytes',"
        "      octet_length (code), 'sha256', encode (sha256 (convert_to (code, 'UTF8')), 'hex'),"
        "      'content_type', 'text/x-python'), convert_to (code, 'UTF8')"
        "    FROM executions WHERE id = $1 AND $2 = '_code.py'"
        "  UNION ALL"
        "  SELECT 3, json_build_object ('name', '_input.json', 'size_bytes',"
        "      octet_length (input_data::text), 'sha256',"
        "      encode (sha256 (convert_to (input_data::text, 'UTF8')), 'hex'),"
        "      'content_type', 'application/json'), convert_to (input_data::text, 'UTF8')"
        "    FROM executions WHERE id = $1 AND $2 = '_input.json'"
        ") found ORDER BY rank LIMIT 1", &params, 1);
    store_params_free (&params);
    if (!result)
        return -1;
    int rc = 0;
    if (PQntuples (result) == 1) {
        //  A text column in binary format is its bytes, not NUL-terminated
        //  by the server (libpq adds one).
        *meta = json_loadb (PQgetvalue (result, 0, 0), PQgetlength (result, 0, 0), 0, NULL);
        *size = PQgetlength (result, 0, 1);
        *data = malloc (*size + 1);
        if (*data)
            memcpy (*data, PQgetvalue (result, 0, 1), *size);
        if (!*meta || !*data) {
            json_decref (*meta);
            free (*data);
            *meta = NULL;
            *data = NULL;
            *size = 0;
            rc = store_fail (self, "out of memory");
        }
    }
    PQclear (result);
    return rc;
}

int
tako_store_artifact_list (tako_store_t *self, const char *job_id, json_t **list)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_id);
    int rc = store_query_json (self,
        "SELECT coalesce (json_agg (" ARTIFACT_META " ORDER BY name), '[]'::json)"
        "  FROM artifacts WHERE job_id = $1", &params, list);
    store_params_free (&params);
    return rc;
}

//  ---------------------------------------------------------------------
//  Dead letters

#define DLQ_FIELDS \
    "json_build_object ('id', d.id, 'job_id', d.job_id, 'job_data', d.job_data," \
    " 'error_type', d.error_type, 'error_message', d.error_message," \
    " 'retry_count', d.retry_count, 'created_at', " STORE_TIME ("d.created_at") "," \
    " 'client_ip', d.client_ip, 'correlation_id', d.correlation_id)"

int
tako_store_dlq_insert (tako_store_t *self, json_t *entry, char **entry_id)
{
    *entry_id = NULL;
    if (!json_is_string (json_object_get (entry, "job_id"))
    ||  !json_is_string (json_object_get (entry, "error_type")))
        return store_fail (self, "invalid dead letter: job_id and error_type are required");
    store_params_t params = { .count = 0 };
    store_params_string_field (&params, entry, "job_id");
    store_params_json_field (&params, entry, "job_data");
    store_params_string_field (&params, entry, "error_type");
    store_params_string_field (&params, entry, "error_message");
    store_params_int_field (&params, entry, "retry_count");
    store_params_string_field (&params, entry, "client_ip");
    store_params_string_field (&params, entry, "correlation_id");
    PGresult *result = store_query (self,
        "INSERT INTO dlq (job_id, job_data, error_type, error_message, retry_count,"
        "  client_ip, correlation_id)"
        " VALUES ($1, coalesce ($2::jsonb, '{}'), $3, $4, coalesce ($5::integer, 0), $6, $7)"
        " RETURNING id", &params, 0);
    store_params_free (&params);
    if (!result)
        return -1;
    *entry_id = strdup (PQgetvalue (result, 0, 0));
    PQclear (result);
    return *entry_id? 0: store_fail (self, "out of memory");
}

int
tako_store_dlq_list (tako_store_t *self, const char *error_type, int limit, int offset,
                     json_t **page)
{
    *page = NULL;
    if (store_paging_check (self, &limit, offset))
        return -1;
    store_params_t params = { .count = 0 };
    store_params_text (&params, error_type);
    store_params_int (&params, limit + 1);
    store_params_int (&params, offset);
    int rc = store_query_page (self,
        "SELECT " DLQ_FIELDS " FROM dlq d WHERE ($1::text IS NULL OR d.error_type = $1)"
        " ORDER BY d.created_at DESC, d.id LIMIT $2::integer OFFSET $3::integer",
        &params, limit, offset, page);
    store_params_free (&params);
    return rc;
}

int
tako_store_dlq_stats (tako_store_t *self, json_t **stats)
{
    return store_query_json (self,
        "SELECT json_build_object ('total', coalesce (sum (n), 0),"
        "  'by_error_type', coalesce (json_object_agg (error_type, n), '{}'::json))"
        "  FROM (SELECT error_type, count (*) AS n FROM dlq GROUP BY error_type) counts",
        NULL, stats);
}

int
tako_store_dlq_get (tako_store_t *self, const char *entry_id, json_t **entry)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, entry_id);
    int rc = store_query_json (self, "SELECT " DLQ_FIELDS " FROM dlq d WHERE d.id = $1",
                               &params, entry);
    store_params_free (&params);
    return rc;
}

int
tako_store_dlq_remove (tako_store_t *self, const char *entry_id, bool *removed)
{
    *removed = false;
    store_params_t params = { .count = 0 };
    store_params_text (&params, entry_id);
    int64_t rows = store_execute (self, "DELETE FROM dlq WHERE id = $1", &params);
    store_params_free (&params);
    if (rows < 0)
        return -1;
    *removed = rows > 0;
    return 0;
}

//  ---------------------------------------------------------------------
//  Job versions

#define VERSION_FIELDS \
    "json_build_object ('job_type', job_type, 'digest', digest, 'job_ref', job_ref," \
    " 'env_ref', env_ref, 'requirements_hash', requirements_hash," \
    " 'built_at', " STORE_TIME ("built_at") ", 'built_by', built_by," \
    " 'version_tag', version_tag)"

//  Lowercase hex without the "sha256:" prefix into out. 0, or -1 when it
//  is not hex or its length is outside [min_length, 64].
static int
digest_normalise (const char *digest, size_t min_length, char *out)
{
    if (!digest)
        return -1;
    if (strncmp (digest, DIGEST_PREFIX, strlen (DIGEST_PREFIX)) == 0)
        digest += strlen (DIGEST_PREFIX);
    size_t length = strlen (digest);
    if (length < min_length || length > DIGEST_HEX_LENGTH)
        return -1;
    for (size_t i = 0; i < length; i++) {
        if (!isxdigit ((unsigned char) digest [i]))
            return -1;
        out [i] = (char) tolower ((unsigned char) digest [i]);
    }
    out [length] = 0;
    return 0;
}

int
tako_store_version_register (tako_store_t *self, json_t *version)
{
    char digest [DIGEST_HEX_LENGTH + 1];
    if (digest_normalise (json_string_value (json_object_get (version, "digest")),
                          DIGEST_HEX_LENGTH, digest)
    ||  !json_is_string (json_object_get (version, "job_type"))
    ||  !json_is_string (json_object_get (version, "job_ref")))
        return store_fail (self, "invalid job version: digest (sha256), job_type and "
                                 "job_ref are required");
    store_params_t params = { .count = 0 };
    store_params_text (&params, digest);
    store_params_string_field (&params, version, "job_type");
    store_params_string_field (&params, version, "job_ref");
    store_params_string_field (&params, version, "env_ref");
    store_params_string_field (&params, version, "requirements_hash");
    store_params_string_field (&params, version, "built_by");
    store_params_string_field (&params, version, "version_tag");
    int64_t rows = store_execute (self,
        "INSERT INTO job_versions (digest, job_type, job_ref, env_ref, requirements_hash,"
        "  built_by, version_tag) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (digest) DO UPDATE"
        "  SET version_tag = coalesce (EXCLUDED.version_tag, job_versions.version_tag)",
        &params);
    store_params_free (&params);
    return rows < 0? -1: 0;
}

int
tako_store_version_lookup (tako_store_t *self, const char *digest, json_t **version)
{
    *version = NULL;
    //  "name@sha256:<hex>" narrows to that job type.
    char job_type [256] = "";
    const char *at = digest? strchr (digest, '@'): NULL;
    if (at) {
        if ((size_t) (at - digest) >= sizeof job_type)
            return store_fail (self, "invalid job reference");
        memcpy (job_type, digest, at - digest);
        job_type [at - digest] = 0;
        digest = at + 1;
    }
    char prefix [DIGEST_HEX_LENGTH + 1];
    if (digest_normalise (digest, TAKO_STORE_DIGEST_PREFIX_MIN, prefix))
        return store_fail (self, "invalid digest: give at least 6 hex digits");
    store_params_t params = { .count = 0 };
    store_params_text (&params, prefix);
    store_params_text (&params, at? job_type: NULL);
    //  Two rows are enough to know the prefix is ambiguous.
    PGresult *result = store_query (self,
        "SELECT " VERSION_FIELDS " FROM job_versions"
        " WHERE left (digest, length ($1)) = $1 AND ($2::text IS NULL OR job_type = $2)"
        " LIMIT 2", &params, 0);
    store_params_free (&params);
    if (!result)
        return -1;
    int rc = 0;
    if (PQntuples (result) > 1)
        rc = store_fail (self, "ambiguous digest prefix");
    else
    if (PQntuples (result) == 1)
        *version = store_json_value (result, 0);
    PQclear (result);
    return rc;
}

int
tako_store_version_list (tako_store_t *self, const char *job_type, json_t **list)
{
    store_params_t params = { .count = 0 };
    store_params_text (&params, job_type);
    int rc = store_query_json (self,
        "SELECT coalesce (json_agg (" VERSION_FIELDS " ORDER BY built_at DESC, digest),"
        "  '[]'::json) FROM job_versions WHERE job_type = $1", &params, list);
    store_params_free (&params);
    return rc;
}
