/*  tako_store_internal — what the tako_store_*.c files share. Not API.  */

#ifndef TAKO_STORE_INTERNAL_H_INCLUDED
#define TAKO_STORE_INTERNAL_H_INCLUDED

#include <czmq.h>
#include <libpq-fe.h>
#include "tako_store.h"

#define STORE_ERROR_SIZE 256
//  No statement of ours has more parameters than this.
#define STORE_PARAMS_MAX 24

//  Statements with parameters are prepared once per connection (the
//  server then neither parses nor plans them again): at most this many.
#define STORE_PREPARED_MAX 128

struct _tako_store_t {
    char *url;
    PGconn *conn;
    zhashx_t *prepared;         //  SQL text → its statement name, this connection's
    char error [STORE_ERROR_SIZE];
    bool unavailable;
    int retry_delay_ms;
};

//  ISO-8601 UTC with milliseconds, as the REST contract shows times.
#define STORE_TIME(column) \
    "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

//  Parameters of one statement. Values that we format are owned here.
typedef struct {
    const char *values [STORE_PARAMS_MAX];
    int lengths [STORE_PARAMS_MAX];
    int formats [STORE_PARAMS_MAX];
    char *owned [STORE_PARAMS_MAX];
    int count;
    const char *invalid;        //  first problem with a field, for the error
} store_params_t;

void store_params_text (store_params_t *params, const char *value);
void store_params_int (store_params_t *params, int64_t value);
void store_params_bytes (store_params_t *params, const void *data, size_t size);
//  A string field of obj (NULL when missing or null; invalid otherwise).
void store_params_string_field (store_params_t *params, json_t *obj, const char *key);
//  An integer field (NULL when missing or null).
void store_params_int_field (store_params_t *params, json_t *obj, const char *key);
//  A boolean field (NULL when missing or null).
void store_params_bool_field (store_params_t *params, json_t *obj, const char *key);
//  Any JSON value, serialised (NULL when missing or null).
void store_params_json_field (store_params_t *params, json_t *obj, const char *key);
void store_params_free (store_params_t *params);

//  Set a client-safe error; returns -1.
int store_fail (tako_store_t *self, const char *message);

//  Run one statement. result_format 1 asks for binary columns. Returns
//  the result (caller PQclear's) or NULL with the error set.
PGresult *store_query (tako_store_t *self, const char *sql, store_params_t *params,
                       int result_format);

//  Run a statement for its effect; rows affected, or -1.
int64_t store_execute (tako_store_t *self, const char *sql, store_params_t *params);

//  BEGIN / COMMIT / ROLLBACK.
int store_begin (tako_store_t *self);
int store_commit (tako_store_t *self);
void store_rollback (tako_store_t *self);

//  Column 0 of row as JSON (NULL for SQL NULL or bad JSON).
json_t *store_json_value (PGresult *result, int row);

//  First column of the first row as JSON, or NULL when no row. 0 or -1.
int store_query_json (tako_store_t *self, const char *sql, store_params_t *params,
                      json_t **value);

//  A page {items, limit, offset, has_more, count} from a statement whose
//  last two parameters are limit + 1 and offset, rows being column 0 JSON.
int store_query_page (tako_store_t *self, const char *sql, store_params_t *params,
                      int limit, int offset, json_t **page);

//  Clamp paging arguments to the documented bounds. -1 if out of range.
int store_paging_check (tako_store_t *self, int *limit, int offset);

//  The migrations, oldest first; defined in tako_store_migrations.c.
typedef struct {
    int version;
    const char *name;
    const char *sql;
} store_migration_t;

extern const store_migration_t store_migrations [];
extern const size_t store_migration_count;

#endif
