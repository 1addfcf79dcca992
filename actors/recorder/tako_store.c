/*  tako_store — connection, statements, migrations.

    Jobs are in tako_store_jobs.c; artifacts, dead letters and job
    versions in tako_store_records.c; the schema in
    tako_store_migrations.c.                                              */

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_log.h"
#include "tako_store_internal.h"

//  Seconds libpq waits for a server before giving up on a connect.
#define STORE_CONNECT_TIMEOUT "5"
//  Key of the advisory lock that serialises migrations ("takovm").
#define STORE_MIGRATION_LOCK_KEY "116097107111118109"
//  How much of a server message goes into one log line.
#define STORE_LOG_DETAIL_SIZE 1024

//  ---------------------------------------------------------------------
//  Parameters

static void
params_push (store_params_t *params, const char *value, int length, int format, char *owned)
{
    if (params->count >= STORE_PARAMS_MAX) {
        //  A programming error in a statement of ours, not a user input.
        assert (!"too many statement parameters");
        free (owned);
        return;
    }
    params->values [params->count] = value;
    params->lengths [params->count] = length;
    params->formats [params->count] = format;
    params->owned [params->count] = owned;
    params->count++;
}

void
store_params_text (store_params_t *params, const char *value)
{
    params_push (params, value, 0, 0, NULL);
}

void
store_params_int (store_params_t *params, int64_t value)
{
    char *text = malloc (24);
    if (text)
        snprintf (text, 24, "%" PRId64, value);
    params_push (params, text, 0, 0, text);
}

void
store_params_bytes (store_params_t *params, const void *data, size_t size)
{
    //  Binary format: NUL bytes pass through untouched.
    params_push (params, size? data: "", (int) size, 1, NULL);
}

static void
params_invalid (store_params_t *params, const char *key)
{
    if (!params->invalid)
        params->invalid = key;
    params_push (params, NULL, 0, 0, NULL);
}

//  PostgreSQL text cannot hold NUL, and jansson strings can (a program's
//  stdout may contain one). Each NUL becomes U+FFFD rather than silently
//  cutting the string there.
#define REPLACEMENT_CHARACTER "\xEF\xBF\xBD"

static char *
text_without_nul (const char *text, size_t length)
{
    size_t size = length * strlen (REPLACEMENT_CHARACTER) + 1;
    char *copy = malloc (size), *out = copy;
    for (size_t i = 0; copy && i < length; i++) {
        if (text [i])
            *out++ = text [i];
        else {
            memcpy (out, REPLACEMENT_CHARACTER, strlen (REPLACEMENT_CHARACTER));
            out += strlen (REPLACEMENT_CHARACTER);
        }
    }
    if (copy)
        *out = 0;
    return copy;
}

//  jsonb refuses the escape \u0000 the same way; rewrite it to \ufffd in
//  serialised JSON, skipping escaped backslashes ("\\u0000" is text).
static void
json_text_without_nul (char *json)
{
    for (char *c = json; *c; c++) {
        if (*c != '\\')
            continue;
        if (strncmp (c, "\\u0000", 6) == 0)
            memcpy (c + 2, "fffd", 4);
        c++;
    }
}

void
store_params_string_field (store_params_t *params, json_t *obj, const char *key)
{
    json_t *value = json_object_get (obj, key);
    if (!value || json_is_null (value))
        params_push (params, NULL, 0, 0, NULL);
    else
    if (!json_is_string (value))
        params_invalid (params, key);
    else
    if (strlen (json_string_value (value)) == json_string_length (value))
        store_params_text (params, json_string_value (value));
    else {
        char *copy = text_without_nul (json_string_value (value), json_string_length (value));
        if (copy)
            params_push (params, copy, 0, 0, copy);
        else
            params_invalid (params, key);
    }
}

void
store_params_int_field (store_params_t *params, json_t *obj, const char *key)
{
    json_t *value = json_object_get (obj, key);
    if (!value || json_is_null (value))
        params_push (params, NULL, 0, 0, NULL);
    else
    if (json_is_integer (value))
        store_params_int (params, json_integer_value (value));
    else
        params_invalid (params, key);
}

void
store_params_bool_field (store_params_t *params, json_t *obj, const char *key)
{
    json_t *value = json_object_get (obj, key);
    if (!value || json_is_null (value))
        params_push (params, NULL, 0, 0, NULL);
    else
    if (json_is_boolean (value))
        store_params_text (params, json_is_true (value)? "true": "false");
    else
        params_invalid (params, key);
}

void
store_params_json_field (store_params_t *params, json_t *obj, const char *key)
{
    json_t *value = json_object_get (obj, key);
    if (!value || json_is_null (value)) {
        params_push (params, NULL, 0, 0, NULL);
        return;
    }
    char *text = json_dumps (value, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text)
        params_invalid (params, key);
    else {
        json_text_without_nul (text);
        params_push (params, text, 0, 0, text);
    }
}

void
store_params_free (store_params_t *params)
{
    for (int i = 0; i < params->count; i++) {
        free (params->owned [i]);
        params->owned [i] = NULL;
    }
    params->count = 0;
}

//  ---------------------------------------------------------------------
//  Errors

int
store_fail (tako_store_t *self, const char *message)
{
    snprintf (self->error, sizeof self->error, "%s", message);
    return -1;
}

static void
error_clear (tako_store_t *self)
{
    self->error [0] = 0;
    self->unavailable = false;
}

//  Connection exceptions (08), shutdowns and "cannot connect now" (57P0x)
//  mean the server is gone, not that our statement was wrong.
static bool
sqlstate_unavailable (const char *state)
{
    return state && (strncmp (state, "08", 2) == 0 || strcmp (state, "57P01") == 0
                 ||  strcmp (state, "57P02") == 0 || strcmp (state, "57P03") == 0);
}

//  libpq messages span lines; a log entry is one line.
static void
one_line (const char *message, char *out, size_t size)
{
    snprintf (out, size, "%s", message? message: "");
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\t')
            *c = ' ';
    size_t length = strlen (out);
    while (length > 0 && out [length - 1] == ' ')
        out [--length] = 0;
}

//  The full message goes to the log; the caller gets a sentence without
//  server paths, socket names or SQL.
static void
error_from_result (tako_store_t *self, PGresult *result)
{
    const char *state = result? PQresultErrorField (result, PG_DIAG_SQLSTATE): NULL;
    char detail [STORE_LOG_DETAIL_SIZE];
    const char *message = result? PQresultErrorMessage (result): "";
    one_line (*message? message: PQerrorMessage (self->conn), detail, sizeof detail);
    if (PQstatus (self->conn) != CONNECTION_OK || sqlstate_unavailable (state)) {
        self->unavailable = true;
        store_fail (self, "database unavailable");
        tako_warning ("store", "database unavailable: %s", detail);
    }
    else {
        snprintf (self->error, sizeof self->error, "database error (SQLSTATE %s)",
                  state? state: "unknown");
        tako_error ("store", "statement failed: %s", detail);
    }
}

//  ---------------------------------------------------------------------
//  Connection

tako_store_t *
tako_store_new (const char *url)
{
    if (!url || !*url)
        return NULL;
    tako_store_t *self = calloc (1, sizeof *self);
    if (!self || !(self->url = strdup (url)) || !(self->prepared = zhashx_new ())) {
        if (self)
            free (self->url);
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->prepared, (zhashx_destructor_fn *) zstr_free);
    return self;
}

void
tako_store_destroy (tako_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_store_t *self = *self_p;
    if (self->conn)
        PQfinish (self->conn);
    zhashx_destroy (&self->prepared);
    free (self->url);
    free (self);
    *self_p = NULL;
}

const char *
tako_store_error (tako_store_t *self)
{
    return self->error;
}

size_t
tako_store_prepared_count (tako_store_t *self)
{
    return zhashx_size (self->prepared);
}

bool
tako_store_unavailable (tako_store_t *self)
{
    return self->unavailable;
}

int
tako_store_retry_delay_ms (tako_store_t *self)
{
    return self->retry_delay_ms? self->retry_delay_ms: TAKO_STORE_RETRY_DELAY_FIRST_MS;
}

static void
retry_delay_grow (tako_store_t *self)
{
    int next = self->retry_delay_ms? self->retry_delay_ms * 2: TAKO_STORE_RETRY_DELAY_FIRST_MS;
    self->retry_delay_ms = next > TAKO_STORE_RETRY_DELAY_MAX_MS? TAKO_STORE_RETRY_DELAY_MAX_MS: next;
}

//  Server notices ("relation already exists, skipping") are debug
//  chatter; libpq would print them on stderr.
static void
notice_log (void *arg, const char *message)
{
    (void) arg;
    char line [STORE_LOG_DETAIL_SIZE];
    one_line (message, line, sizeof line);
    tako_debug ("store", "server notice: %s", line);
}

int
tako_store_connect (tako_store_t *self)
{
    error_clear (self);
    if (self->conn && PQstatus (self->conn) == CONNECTION_OK)
        return 0;
    if (self->conn)
        PQfinish (self->conn);
    zhashx_purge (self->prepared);      //  they lived in the old session
    //  Our defaults first: anything the URL says wins over them.
    const char *keywords [] = { "connect_timeout", "application_name", "dbname", NULL };
    const char *values [] = { STORE_CONNECT_TIMEOUT, "tako-vm", self->url, NULL };
    self->conn = PQconnectdbParams (keywords, values, 1);
    if (!self->conn || PQstatus (self->conn) != CONNECTION_OK) {
        char detail [STORE_LOG_DETAIL_SIZE];
        one_line (self->conn? PQerrorMessage (self->conn): "out of memory",
                  detail, sizeof detail);
        tako_warning ("store", "cannot connect to PostgreSQL: %s", detail);
        self->unavailable = true;
        retry_delay_grow (self);
        return store_fail (self, "database unavailable");
    }
    PQsetNoticeProcessor (self->conn, notice_log, NULL);
    self->retry_delay_ms = 0;
    return 0;
}

//  ---------------------------------------------------------------------
//  Statements

//  The name sql is prepared under in this session, preparing it on first
//  use; NULL (run it unprepared) when the table is full or it cannot be
//  prepared. A PREPARE that failed inside a transaction aborted it: then
//  *failed is its result, whose error is the statement's own.
static const char *
statement_prepared (tako_store_t *self, const char *sql, PGresult **failed)
{
    const char *name = (const char *) zhashx_lookup (self->prepared, sql);
    if (name || zhashx_size (self->prepared) >= STORE_PREPARED_MAX)
        return name;
    char *fresh = zsys_sprintf ("tako_%zu", zhashx_size (self->prepared) + 1);
    PGresult *prepared = fresh? PQprepare (self->conn, fresh, sql, 0, NULL): NULL;
    if (PQresultStatus (prepared) == PGRES_COMMAND_OK
    &&  zhashx_insert (self->prepared, sql, fresh) == 0) {
        PQclear (prepared);
        return fresh;
    }
    zstr_free (&fresh);
    if (PQtransactionStatus (self->conn) == PQTRANS_INERROR)
        *failed = prepared;
    else
        PQclear (prepared);
    return NULL;
}

PGresult *
store_query (tako_store_t *self, const char *sql, store_params_t *params, int result_format)
{
    error_clear (self);
    if (params && params->invalid) {
        snprintf (self->error, sizeof self->error, "invalid field '%s'", params->invalid);
        return NULL;
    }
    if (!self->conn || PQstatus (self->conn) != CONNECTION_OK) {
        self->unavailable = true;
        store_fail (self, "database unavailable");
        return NULL;
    }
    int count = params? params->count: 0;
    PGresult *result = NULL;
    const char *name = count? statement_prepared (self, sql, &result): NULL;
    if (name)
        result = PQexecPrepared (self->conn, name, count, params->values, params->lengths,
                                 params->formats, result_format);
    else
    if (!result)
        result = PQexecParams (self->conn, sql, count, NULL,
                               count? params->values: NULL,
                               count? params->lengths: NULL,
                               count? params->formats: NULL, result_format);
    ExecStatusType status = PQresultStatus (result);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return result;
    error_from_result (self, result);
    PQclear (result);
    return NULL;
}

int64_t
store_execute (tako_store_t *self, const char *sql, store_params_t *params)
{
    PGresult *result = store_query (self, sql, params, 0);
    if (!result)
        return -1;
    int64_t rows = strtoll (PQcmdTuples (result), NULL, 10);
    PQclear (result);
    return rows;
}

int
store_begin (tako_store_t *self)
{
    return store_execute (self, "BEGIN", NULL) < 0? -1: 0;
}

int
store_commit (tako_store_t *self)
{
    return store_execute (self, "COMMIT", NULL) < 0? -1: 0;
}

void
store_rollback (tako_store_t *self)
{
    //  Keep the error that made us roll back.
    char error [STORE_ERROR_SIZE];
    bool unavailable = self->unavailable;
    memcpy (error, self->error, sizeof error);
    if (self->conn && PQstatus (self->conn) == CONNECTION_OK)
        PQclear (PQexec (self->conn, "ROLLBACK"));
    memcpy (self->error, error, sizeof error);
    self->unavailable = unavailable;
}

json_t *
store_json_value (PGresult *result, int row)
{
    if (PQgetisnull (result, row, 0))
        return NULL;
    return json_loads (PQgetvalue (result, row, 0), JSON_DECODE_ANY, NULL);
}

int
store_query_json (tako_store_t *self, const char *sql, store_params_t *params, json_t **value)
{
    *value = NULL;
    PGresult *result = store_query (self, sql, params, 0);
    if (!result)
        return -1;
    if (PQntuples (result) > 0)
        *value = store_json_value (result, 0);
    PQclear (result);
    return 0;
}

int
store_paging_check (tako_store_t *self, int *limit, int offset)
{
    if (*limit == 0)
        *limit = TAKO_STORE_LIST_LIMIT_DEFAULT;
    if (*limit < 1 || *limit > TAKO_STORE_LIST_LIMIT_MAX)
        return store_fail (self, "limit must be between 1 and 1000");
    if (offset < 0)
        return store_fail (self, "offset must not be negative");
    return 0;
}

int
store_query_page (tako_store_t *self, const char *sql, store_params_t *params,
                  int limit, int offset, json_t **page)
{
    *page = NULL;
    PGresult *result = store_query (self, sql, params, 0);
    if (!result)
        return -1;
    //  The statement asked for one row more than the page: its presence
    //  is has_more, without counting the whole table.
    int rows = PQntuples (result);
    bool has_more = rows > limit;
    json_t *items = json_array ();
    for (int row = 0; row < rows && row < limit; row++)
        json_array_append_new (items, store_json_value (result, row));
    PQclear (result);
    *page = json_pack ("{s:o, s:i, s:i, s:b, s:I}", "items", items, "limit", limit,
                       "offset", offset, "has_more", has_more,
                       "count", (json_int_t) json_array_size (items));
    return *page? 0: store_fail (self, "out of memory");
}

//  ---------------------------------------------------------------------
//  Migrations

static int
migration_apply (tako_store_t *self, const store_migration_t *migration)
{
    //  Migrations are constant text of ours, several statements each, so
    //  the simple-query protocol; nothing in them comes from outside.
    PGresult *result = PQexec (self->conn, migration->sql);
    if (PQresultStatus (result) != PGRES_COMMAND_OK) {
        error_from_result (self, result);
        PQclear (result);
        return -1;
    }
    PQclear (result);
    store_params_t params = { .count = 0 };
    store_params_int (&params, migration->version);
    store_params_text (&params, migration->name);
    int64_t rows = store_execute (self,
        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &params);
    store_params_free (&params);
    if (rows == 1)
        tako_info ("store", "applied migration %d (%s)", migration->version, migration->name);
    return rows == 1? 0: -1;
}

static int
migrations_run (tako_store_t *self)
{
    if (store_execute (self, "SELECT pg_advisory_xact_lock (" STORE_MIGRATION_LOCK_KEY ")",
                       NULL) < 0
    ||  store_execute (self, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "  version    integer PRIMARY KEY,"
                             "  name       text NOT NULL,"
                             "  applied_at timestamptz NOT NULL DEFAULT now ())", NULL) < 0)
        return -1;
    int current = tako_store_schema_version (self);
    if (current < 0)
        return -1;
    for (size_t i = 0; i < store_migration_count; i++)
        if (store_migrations [i].version > current
        &&  migration_apply (self, &store_migrations [i]))
            return -1;
    return 0;
}

int
tako_store_migrate (tako_store_t *self)
{
    if (store_begin (self))
        return -1;
    if (migrations_run (self) || store_commit (self)) {
        store_rollback (self);
        return -1;
    }
    return 0;
}

int
tako_store_schema_version (tako_store_t *self)
{
    //  No migrations table yet means version 0, not an error.
    PGresult *exists = store_query (self,
        "SELECT to_regclass ('schema_migrations') IS NOT NULL", NULL, 0);
    if (!exists)
        return -1;
    bool found = strcmp (PQgetvalue (exists, 0, 0), "t") == 0;
    PQclear (exists);
    if (!found)
        return 0;
    PGresult *result = store_query (self,
        "SELECT coalesce (max (version), 0) FROM schema_migrations", NULL, 0);
    if (!result)
        return -1;
    int version = atoi (PQgetvalue (result, 0, 0));
    PQclear (result);
    return version;
}

const char *
tako_store_outcome_name (tako_store_outcome_t outcome)
{
    static const char *names [] = {
        "applied", "created", "existing", "conflict", "stale", "duplicate", "not_found"
    };
    size_t index = (size_t) outcome;
    return index < sizeof names / sizeof names [0]? names [index]: "unknown";
}

//  ---------------------------------------------------------------------
//  Self-test: what needs no server. Database behaviour is tested in
//  tests/unit/test_store.c against a real PostgreSQL.

void
tako_store_test (bool verbose)
{
    (void) verbose;
    assert (tako_store_new (NULL) == NULL);
    assert (tako_store_new ("") == NULL);

    //  Nothing listens on this socket directory: connect fails cleanly,
    //  says so without naming the path, and backs off. (The log line with
    //  the details is silenced: self-tests are quiet.)
    tako_log_set_level (TAKO_LOG_CRITICAL);
    tako_store_t *store = tako_store_new (
        "postgresql:///tako_vm?host=/nonexistent/tako-selftest&connect_timeout=2");
    assert (store);
    assert (tako_store_connect (store) == -1);
    assert (tako_store_unavailable (store));
    assert (strcmp (tako_store_error (store), "database unavailable") == 0);
    assert (strstr (tako_store_error (store), "/nonexistent") == NULL);
    int first = tako_store_retry_delay_ms (store);
    assert (first == TAKO_STORE_RETRY_DELAY_FIRST_MS);
    assert (tako_store_connect (store) == -1);
    assert (tako_store_retry_delay_ms (store) == 2 * first);

    //  Calls without a connection fail the same way, never with an answer.
    json_t *job = NULL;
    assert (tako_store_job_get (store, "some-job", false, &job) == -1);
    assert (job == NULL);
    assert (tako_store_unavailable (store));
    tako_store_destroy (&store);
    tako_store_destroy (&store);
    assert (store == NULL);
    tako_log_set_level (TAKO_LOG_INFO);

    assert (tako_store_status_valid ("queued"));
    assert (!tako_store_status_valid ("pending"));
    assert (tako_store_status_terminal ("oom"));
    assert (!tako_store_status_terminal ("running"));
    assert (strcmp (tako_store_outcome_name (TAKO_STORE_DUPLICATE), "duplicate") == 0);

    //  Parameters keep JSON types honest before anything reaches SQL.
    store_params_t params = { .count = 0 };
    json_t *fields = json_pack ("{s:s, s:i, s:[i]}", "name", "x", "count", 3, "list", 1);
    store_params_string_field (&params, fields, "name");
    store_params_int_field (&params, fields, "count");
    store_params_json_field (&params, fields, "list");
    store_params_string_field (&params, fields, "missing");
    assert (params.invalid == NULL);
    assert (strcmp (params.values [1], "3") == 0);
    assert (strcmp (params.values [2], "[1]") == 0);
    assert (params.values [3] == NULL);
    store_params_int_field (&params, fields, "name");
    assert (params.invalid && strcmp (params.invalid, "name") == 0);
    store_params_free (&params);
    json_decref (fields);

    //  NUL cannot be stored in text or jsonb: it becomes U+FFFD, and an
    //  escaped backslash followed by "u0000" is left alone.
    params = (store_params_t) { .count = 0 };
    fields = json_pack ("{s:s%, s:{s:s%, s:s}}", "out", "a\0b", (size_t) 3,
                        "json", "nul", "x\0", (size_t) 2, "text", "\\u0000");
    store_params_string_field (&params, fields, "out");
    store_params_json_field (&params, fields, "json");
    assert (strcmp (params.values [0], "a" REPLACEMENT_CHARACTER "b") == 0);
    assert (strstr (params.values [1], "\"x\\ufffd\""));
    assert (strstr (params.values [1], "\"\\\\u0000\""));
    store_params_free (&params);
    json_decref (fields);
}
