/*  tako_jobenv — the Python environment a job runs with (see the header). */

#include <czmq.h>
#include <libgen.h>
#include <sys/stat.h>
#include "tako_jobenv.h"
#include "tako_envbuild.h"
#include "tako_envspec.h"

static int
fail (tako_jobenv_t *self, const char *error_type, bool user_error, char *reason)
{
    self->error_type = strdup (error_type);
    self->reason = reason? reason: strdup (error_type);
    self->user_error = user_error;
    return -1;
}

char *
tako_jobenv_current_ref (const tako_config_job_type_t *job_type)
{
    tako_envspec_t *spec = tako_envspec_new (job_type, NULL, 0, NULL);
    char *job_ref = spec? strdup (tako_envspec_job_ref (spec)): NULL;
    tako_envspec_destroy (&spec);
    return job_ref;
}

static bool
spec_is_empty (tako_envspec_t *spec)
{
    size_t count = 0;
    tako_envspec_requirements (spec, &count);
    return count == 0;
}

//  The environment a pinned job_ref names, if it is on this host.
static bool
resolve_pinned (tako_jobenv_t *self, const tako_config_t *config, const char *job_ref)
{
    char *digest = tako_envbuild_find (config->data_dir, job_ref);
    if (!digest)
        return false;
    self->env_path = tako_envbuild_env_path (config->data_dir, digest);
    self->job_ref = strdup (job_ref);
    zstr_free (&digest);
    return self->env_path != NULL;
}

//  Build spec's environment within timeout_s.
static int
resolve_build (tako_jobenv_t *self, const tako_config_t *config, tako_envspec_t *spec,
               int timeout_s, atomic_bool *cancel)
{
    tako_envbuild_options_t options = {
        .config = config, .timeout_s = timeout_s, .cancel = cancel
    };
    tako_envbuild_result_t result = { 0 };
    int64_t started = zclock_mono ();
    int rc = tako_envbuild_run (spec, &options, &result);
    self->build_ms = zclock_mono () - started;
    if (rc == 0) {
        self->env_path = result.env_path;
        result.env_path = NULL;
        self->built = !result.cached;
        if (self->built)
            self->version = tako_envspec_version (spec, NULL, NULL);
    }
    else
    if (self->build_ms >= (int64_t) timeout_s * 1000 && !(cancel && atomic_load (cancel)))
        fail (self, TAKO_JOBENV_STARTUP_TIMEOUT, true,
              zsys_sprintf ("installing the requirements took longer than startup_timeout (%d s)",
                            timeout_s));
    else
        fail (self, result.error_type? result.error_type: TAKO_ENVBUILD_BUILD_ERROR,
              streq (result.error_type? result.error_type: "", TAKO_ENVBUILD_DEPENDENCY_ERROR),
              result.reason? strdup (result.reason): NULL);
    tako_envbuild_result_clear (&result);
    return rc;
}

int
tako_jobenv_resolve (tako_jobenv_t *self, const tako_config_t *config,
                     const tako_config_job_type_t *job_type,
                     const char *const *requirements, size_t count,
                     const char *job_ref, int timeout_s, atomic_bool *cancel)
{
    assert (self && config && job_type);
    char *error = NULL;
    tako_envspec_t *spec = tako_envspec_new (job_type, requirements, count, &error);
    if (!spec)
        return fail (self, TAKO_JOBENV_DEPENDENCY_ERROR, true,
                     error? error: strdup ("out of memory"));
    const char *current = tako_envspec_job_ref (spec);
    bool is_current = !job_ref || streq (job_ref, current);
    int rc = 0;
    if (!is_current && resolve_pinned (self, config, job_ref))
        ;                                   //  a rerun's own version
    else
    if (!is_current)
        rc = fail (self, TAKO_JOBENV_MISSING, true,
                   zsys_sprintf ("the environment %s this job is pinned to is not on this host, "
                                 "and its job type has changed since", job_ref));
    else
    if (spec_is_empty (spec)) {
        //  Nothing to install: the job runs with the interpreter's own
        //  packages and nothing is mounted. The empty environment is made
        //  once all the same, so a rerun pinned to this version finds it.
        if (!tako_envbuild_exists (config->data_dir, tako_envspec_digest (spec)))
            rc = resolve_build (self, config, spec, timeout_s, cancel);
        zstr_free (&self->env_path);
        self->build_ms = 0;
    }
    else
    if (tako_envbuild_exists (config->data_dir, tako_envspec_digest (spec))) {
        self->env_path = tako_envbuild_env_path (config->data_dir, tako_envspec_digest (spec));
        if (!self->env_path)
            rc = fail (self, TAKO_ENVBUILD_BUILD_ERROR, false, NULL);
    }
    else {
        if (config->production_mode)
            rc = fail (self, TAKO_JOBENV_NOT_BUILT, true, zsys_sprintf (
                "environment not built and production_mode forbids building on demand: "
                "run tako-vm build %s", job_type->name));
        else
            rc = resolve_build (self, config, spec, timeout_s, cancel);
    }
    if (rc == 0 && !self->job_ref)
        self->job_ref = strdup (current);
    tako_envspec_destroy (&spec);
    return rc;
}

//  A string apply keeps until clear.
static char *
keep (tako_jobenv_t *self, char *text)
{
    if (!text)
        return NULL;
    char **strings = realloc (self->strings, (self->string_count + 1) * sizeof (char *));
    if (!strings) {
        free (text);
        return NULL;
    }
    self->strings = strings;
    self->strings [self->string_count++] = text;
    return text;
}

int
tako_jobenv_apply (tako_jobenv_t *self, const tako_config_job_type_t *job_type,
                   tako_sandbox_spec_t *spec)
{
    assert (self && job_type && spec);
    size_t shared = job_type->shared_code.count;
    self->binds = calloc (spec->bind_count + shared + 2, sizeof (tako_sandbox_bind_t));
    self->vars = calloc (spec->env_count + 2, sizeof (tako_sandbox_env_t));
    if (!self->binds || !self->vars)
        return -1;
    size_t binds = spec->bind_count;
    if (binds)
        memcpy (self->binds, spec->binds, binds * sizeof (tako_sandbox_bind_t));
    if (self->env_path)
        self->binds [binds++] = (tako_sandbox_bind_t) { self->env_path, TAKO_JOBENV_ENV_DIR };
    for (size_t i = 0; i < shared; i++) {
        const char *source = job_type->shared_code.items [i];
        struct stat status;
        char *copy = strdup (source);
        char *name = copy? basename (copy): NULL;
        char *target = name? keep (self, zsys_sprintf ("%s/%s", TAKO_JOBENV_SHARED_DIR, name)): NULL;
        free (copy);
        if (!target)
            return -1;
        if (stat (source, &status) != 0) {
            free (self->reason);
            self->reason = zsys_sprintf ("shared_code %s of job type %s is missing",
                                         target + strlen (TAKO_JOBENV_SHARED_DIR) + 1,
                                         job_type->name);
            return -1;
        }
        self->binds [binds++] = (tako_sandbox_bind_t) { source, target };
    }
    spec->binds = self->binds;
    spec->bind_count = binds;

    size_t vars = spec->env_count;
    if (vars)
        memcpy (self->vars, spec->env, vars * sizeof (tako_sandbox_env_t));
    const char *path = self->env_path && shared? TAKO_JOBENV_ENV_DIR ":" TAKO_JOBENV_SHARED_DIR
                     : self->env_path? TAKO_JOBENV_ENV_DIR
                     : shared? TAKO_JOBENV_SHARED_DIR: NULL;
    if (path)
        self->vars [vars++] = (tako_sandbox_env_t) { "PYTHONPATH", path };
    spec->env = self->vars;
    spec->env_count = vars;
    return 0;
}

void
tako_jobenv_clear (tako_jobenv_t *self)
{
    if (!self)
        return;
    free (self->env_path);
    free (self->job_ref);
    json_decref (self->version);
    free (self->error_type);
    free (self->reason);
    free (self->binds);
    free (self->vars);
    for (size_t i = 0; i < self->string_count; i++)
        free (self->strings [i]);
    free (self->strings);
    memset (self, 0, sizeof *self);
}

//  --------------------------------------------------------------------------
//  Self-test

void
tako_jobenv_test (bool verbose)
{
    (void) verbose;
    char root [] = "/tmp/tako-jobenv-test-XXXXXX";
    assert (mkdtemp (root));
    tako_config_t *config = tako_config_new ();
    assert (config);
    free (config->data_dir);
    config->data_dir = strdup (root);
    char shared_dir [PATH_MAX];
    snprintf (shared_dir, sizeof shared_dir, "%s/mylib", root);
    assert (mkdir (shared_dir, 0755) == 0);
    char *shared_items [] = { shared_dir, NULL };
    tako_config_job_type_t job_type = { .name = "plain" };
    job_type.shared_code.items = shared_items;
    job_type.shared_code.count = 1;

    //  No requirements: nothing to mount, but the empty environment is
    //  made (at once) so that a pinned rerun finds it later.
    tako_jobenv_t env = { 0 };
    assert (tako_jobenv_resolve (&env, config, &job_type, NULL, 0, NULL, 5, NULL) == 0);
    assert (!env.env_path && env.job_ref && env.build_ms == 0);
    char *current = tako_jobenv_current_ref (&job_type);
    assert (current && streq (current, env.job_ref));
    tako_sandbox_spec_t spec;
    tako_sandbox_spec_defaults (&spec);
    assert (tako_jobenv_apply (&env, &job_type, &spec) == 0);
    assert (spec.bind_count == 1 && spec.env_count == 1);
    assert (streq (spec.binds [0].target, "/shared/mylib"));
    assert (streq (spec.env [0].name, "PYTHONPATH") && streq (spec.env [0].value, "/shared"));
    tako_jobenv_clear (&env);

    //  Pinned to that version after the type gained a requirement: the
    //  empty environment, mounted.
    char *grown_items [] = { "six==1.0", NULL };
    tako_config_job_type_t grown = job_type;
    grown.requirements.items = grown_items;
    grown.requirements.count = 1;
    assert (tako_jobenv_resolve (&env, config, &grown, NULL, 0, current, 5, NULL) == 0);
    assert (env.env_path && !env.built && streq (env.job_ref, current));
    tako_sandbox_spec_defaults (&spec);
    assert (tako_jobenv_apply (&env, &grown, &spec) == 0);
    assert (spec.bind_count == 2 && streq (spec.binds [0].target, "/env"));
    assert (streq (spec.binds [0].source, env.env_path));
    assert (streq (spec.env [0].value, "/env:/shared"));
    tako_jobenv_clear (&env);

    //  Production mode: a type with requirements is never built by a job.
    config->production_mode = true;
    const char *extra [] = { "six==1.0" };
    assert (tako_jobenv_resolve (&env, config, &job_type, extra, 1, NULL, 5, NULL) == -1);
    assert (streq (env.error_type, TAKO_JOBENV_NOT_BUILT) && env.user_error);
    assert (strstr (env.reason, "tako-vm build plain"));
    tako_jobenv_clear (&env);

    //  A pinned version that is gone and not current: a clear error.
    assert (tako_jobenv_resolve (&env, config, &job_type, NULL, 0,
                                 "plain@sha256:0123456789ab", 5, NULL) == -1);
    assert (streq (env.error_type, TAKO_JOBENV_MISSING));
    tako_jobenv_clear (&env);

    //  An invalid requirement is the job's dependency_error.
    const char *bad [] = { "--index-url=http://x" };
    assert (tako_jobenv_resolve (&env, config, &job_type, bad, 1, NULL, 5, NULL) == -1);
    assert (streq (env.error_type, TAKO_JOBENV_DEPENDENCY_ERROR) && env.user_error);
    tako_jobenv_clear (&env);

    //  A missing shared_code path: apply refuses, saying which.
    config->production_mode = false;
    assert (tako_jobenv_resolve (&env, config, &job_type, NULL, 0, NULL, 5, NULL) == 0);
    assert (rmdir (shared_dir) == 0);
    tako_sandbox_spec_defaults (&spec);
    assert (tako_jobenv_apply (&env, &job_type, &spec) == -1);
    assert (env.reason && strstr (env.reason, "mylib") && !strstr (env.reason, root));
    tako_jobenv_clear (&env);
    tako_jobenv_clear (&env);

    free (current);
    tako_config_destroy (&config);
    char *command = zsys_sprintf ("rm -rf '%s'", root);
    assert (command && system (command) == 0);
    zstr_free (&command);
}
