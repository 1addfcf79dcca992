/*  tako_store_migrations — the schema, one versioned step at a time.

    A migration is never edited once released: a change to the schema is
    a new entry at the end. tako_store_migrate applies the missing ones in
    one transaction. docs/storage.md explains every table.               */

#include "tako_store_internal.h"

//  Version 1: the whole first schema.
static const char schema_v1 [] =
    //  One row per job: the request, the state machine, the result.
    "CREATE TABLE executions ("
    "  id                  text PRIMARY KEY,"
    "  status              text NOT NULL CHECK (status IN ('queued', 'running',"
    "                        'succeeded', 'failed', 'timeout', 'oom', 'cancelled')),"
    "  job_type            text NOT NULL,"
    "  job_ref             text,"
    "  priority            integer NOT NULL DEFAULT 0,"
    "  attempt             integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),"
    "  max_attempts        integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),"
    "  created_at          timestamptz NOT NULL DEFAULT now(),"
    "  queued_at           timestamptz NOT NULL DEFAULT now(),"
    "  dequeued_at         timestamptz,"
    "  started_at          timestamptz,"
    "  ended_at            timestamptz,"
    "  duration_ms         bigint,"
    "  exit_code           integer,"
    "  stdout              text,"
    "  stderr              text,"
    "  stdout_truncated    boolean NOT NULL DEFAULT false,"
    "  stderr_truncated    boolean NOT NULL DEFAULT false,"
    "  output              jsonb,"
    "  error               jsonb,"
    "  timing              jsonb,"
    "  resource_usage      jsonb,"
    "  code                text NOT NULL,"
    "  input_data          jsonb NOT NULL DEFAULT '{}',"
    "  code_hash           text,"
    "  input_hash          text,"
    "  timeout_s           integer,"
    "  startup_timeout_s   integer,"
    "  requirements        jsonb NOT NULL DEFAULT '[]',"
    "  parent_execution_id text,"
    "  relationship        text CHECK (relationship IN ('rerun', 'fork')),"
    "  idempotency_key     text,"
    "  payload_fingerprint text,"
    "  lease_id            text,"
    "  lease_owner         text,"
    "  lease_expires_at    timestamptz,"
    "  client_ip           text,"
    "  correlation_id      text"
    ");"
    "CREATE INDEX executions_status_idx ON executions (status);"
    "CREATE INDEX executions_job_type_idx ON executions (job_type);"
    "CREATE INDEX executions_created_at_idx ON executions (created_at);"
    "CREATE INDEX executions_status_type_created_idx"
    "  ON executions (status, job_type, created_at);"
    "CREATE UNIQUE INDEX executions_idempotency_key_idx"
    "  ON executions (idempotency_key) WHERE idempotency_key IS NOT NULL;"
    //  The queue order: what queue positions and recovery walk.
    "CREATE INDEX executions_queue_idx ON executions (priority DESC, queued_at, id)"
    "  WHERE status = 'queued';"

    //  One row per (job, attempt) that produced a result: the primary key
    //  is what makes a duplicate result a no-op.
    "CREATE TABLE attempt_results ("
    "  job_id      text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,"
    "  attempt     integer NOT NULL,"
    "  status      text NOT NULL,"
    "  recorded_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (job_id, attempt)"
    ");"

    //  Output files. Input artifacts (_code.py, _input.json) are derived
    //  from executions.code and input_data, not stored twice.
    "CREATE TABLE artifacts ("
    "  job_id       text NOT NULL REFERENCES executions (id) ON DELETE CASCADE,"
    "  name         text NOT NULL,"
    "  size_bytes   bigint NOT NULL,"
    "  sha256       text NOT NULL,"
    "  content_type text NOT NULL,"
    "  content      bytea NOT NULL,"
    "  created_at   timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (job_id, name)"
    ");"

    "CREATE TABLE job_versions ("
    "  digest            text PRIMARY KEY,"
    "  job_type          text NOT NULL,"
    "  job_ref           text NOT NULL,"
    "  env_ref           text,"
    "  requirements_hash text,"
    "  built_at          timestamptz NOT NULL DEFAULT now(),"
    "  built_by          text,"
    "  version_tag       text"
    ");"
    "CREATE INDEX job_versions_type_idx ON job_versions (job_type, built_at);"

    //  Dead letters outlive their execution record (no foreign key).
    "CREATE TABLE dlq ("
    "  id             text PRIMARY KEY DEFAULT gen_random_uuid ()::text,"
    "  job_id         text NOT NULL,"
    "  job_data       jsonb NOT NULL DEFAULT '{}',"
    "  error_type     text NOT NULL,"
    "  error_message  text,"
    "  retry_count    integer NOT NULL DEFAULT 0,"
    "  created_at     timestamptz NOT NULL DEFAULT now(),"
    "  client_ip      text,"
    "  correlation_id text"
    ");"
    "CREATE INDEX dlq_error_type_idx ON dlq (error_type, created_at);"
    "CREATE INDEX dlq_created_at_idx ON dlq (created_at);";

const store_migration_t store_migrations [] = {
    { 1, "initial schema", schema_v1 },
};

const size_t store_migration_count = sizeof store_migrations / sizeof store_migrations [0];
