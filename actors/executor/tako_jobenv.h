/*  tako_jobenv — the Python environment a job runs with.

    A job runs with the environment of its job_ref: the job type's
    requirements plus its own (tako_envspec), installed once per host into
    data_dir/envs/<digest> (tako_envbuild). The scheduler pins the job_ref
    at submit, so a rerun keeps its original's environment even after the
    job type changed.

    Resolving looks first (a stat), and builds only when the environment
    is missing and it is the job type's current one: the time counts as
    the job's dep_install_ms and within its startup_timeout. Builds go
    through tako_envbuild's per-digest lock, so the builder actor, other
    executors and this one never build one environment twice. With
    production_mode on, a job never builds: a missing environment is the
    error environment_not_built, naming the command that builds it. (A job
    type without requirements has an empty environment, made at once:
    that is not a build.)

    The sandbox then gets the environment bound read-only at /env, each
    shared_code path bound read-only at /shared/<its name>, and
    PYTHONPATH=/env:/shared, so both import and nothing can write them.

        tako_jobenv_t env = { 0 };
        if (tako_jobenv_resolve (&env, config, job_type, reqs, count, job_ref,
                                 startup_s, &cancel) == 0)
            tako_jobenv_apply (&env, job_type, &spec);
        else
            printf ("%s: %s\n", env.error_type, env.reason);
        ...
        tako_jobenv_clear (&env);                                        */

#ifndef TAKO_JOBENV_H_INCLUDED
#define TAKO_JOBENV_H_INCLUDED

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "tako_config.h"
#include "tako_sandbox.h"

//  Where the sandbox sees the environment and the shared code.
#define TAKO_JOBENV_ENV_DIR         "/env"
#define TAKO_JOBENV_SHARED_DIR      "/shared"

//  Error types of a job whose environment cannot be had (phase startup).
#define TAKO_JOBENV_DEPENDENCY_ERROR    "dependency_error"
#define TAKO_JOBENV_NOT_BUILT           "environment_not_built"
#define TAKO_JOBENV_MISSING             "environment_missing"
#define TAKO_JOBENV_STARTUP_TIMEOUT     "startup_timeout"

typedef struct {
    char *env_path;             //  host directory of the environment
    char *job_ref;              //  the version it is
    bool built;                 //  this call installed it
    int64_t build_ms;           //  time spent installing (dep_install_ms)
    json_t *version;            //  when built: the record for the recorder
    char *error_type;           //  on failure: TAKO_JOBENV_* or "build_error"
    char *reason;               //  on failure: short, safe to show
    bool user_error;            //  the failure is the job's (not retried)
    //  Owned by apply, freed by clear:
    tako_sandbox_bind_t *binds;
    tako_sandbox_env_t *vars;
    char **strings;
    size_t string_count;
} tako_jobenv_t;

//  Find, or build, the environment. job_ref may be NULL (the job type's
//  current one); timeout_s bounds a build; cancel may be NULL. 0, or -1
//  with error_type and reason set.
int tako_jobenv_resolve (tako_jobenv_t *self, const tako_config_t *config,
                         const tako_config_job_type_t *job_type,
                         const char *const *requirements, size_t count,
                         const char *job_ref, int timeout_s, atomic_bool *cancel);

//  The job type's current job_ref (no per-request requirements), a new
//  string, or NULL.
char *tako_jobenv_current_ref (const tako_config_job_type_t *job_type);

//  Give spec the binds and PYTHONPATH of a resolved environment and of
//  job_type's shared code; the arrays live until clear. 0, or -1 when
//  memory is short or a shared_code path is missing (reason set).
int tako_jobenv_apply (tako_jobenv_t *self, const tako_config_job_type_t *job_type,
                       tako_sandbox_spec_t *spec);

//  Free everything; safe twice.
void tako_jobenv_clear (tako_jobenv_t *self);

void tako_jobenv_test (bool verbose);

#endif
