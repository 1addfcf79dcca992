/*  tako_envbuild — build a job type's environment with pip.

    An environment is a directory data_dir/envs/<digest> holding the
    job type's requirements as `pip install --target` lays them out; the
    executor mounts it read-only and puts it on sys.path. It is made
    atomically: pip installs into data_dir/envs/.tmp-<digest>-<random>/env
    and the directory is renamed into place only when pip succeeded, so a
    directory named by a digest is always complete. A lock file per digest
    (data_dir/envs/.locks/<digest>.lock, flock) makes two identical builds
    at once — in one process or in several — produce one environment: the
    second waits and then finds it built.

    pip runs as its own process group with a deadline, with an environment
    built from nothing. When we are root it runs inside a build sandbox: a
    private mount namespace where the scratch directory is /tmp and each
    pip_find_links directory is bound read-only at /tmp/links/<n>, as user
    nobody, without network unless pip_index_url is set (or neither an
    index nor wheel directories are configured: then pip's default index
    is the only source). A failed build leaves nothing behind and reports
    `dependency_error` with pip's last lines, host paths removed.

        tako_envbuild_options_t options = { .config = config };
        tako_envbuild_result_t result = { 0 };
        if (tako_envbuild_run (spec, &options, &result) == 0)
            printf ("%s in %lld ms\n", result.env_path, (long long) result.duration_ms);
        else
            printf ("%s: %s\n", result.error_type, result.reason);
        tako_envbuild_result_clear (&result);                              */

#ifndef TAKO_ENVBUILD_H_INCLUDED
#define TAKO_ENVBUILD_H_INCLUDED

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "tako_config.h"
#include "tako_envspec.h"

//  Folder of data_dir holding the environments.
#define TAKO_ENVBUILD_DIR           "envs"
//  File inside each environment describing it (spec, digest, built_at).
#define TAKO_ENVBUILD_META_FILE     ".tako_env.json"
//  Lines of pip's output kept in a failure's reason, and its size bound.
#define TAKO_ENVBUILD_REASON_LINES  4
#define TAKO_ENVBUILD_REASON_MAX    1024

//  Error types of a failed build.
#define TAKO_ENVBUILD_DEPENDENCY_ERROR  "dependency_error"
#define TAKO_ENVBUILD_BUILD_ERROR       "build_error"

//  Called as the build goes: phase is "resolving", "waiting",
//  "installing" or "done"; detail is one line safe to show (no host path).
typedef void (tako_envbuild_progress_fn) (void *arg, const char *phase, const char *detail);

typedef struct {
    const tako_config_t *config;    //  data_dir, sandbox_python, pip_index_url,
                                    //  pip_find_links, max_startup_timeout
    int timeout_s;                  //  pip's deadline; <= 0: max_startup_timeout
    bool force;                     //  rebuild even if the environment exists
    tako_envbuild_progress_fn *progress;    //  may be NULL
    void *progress_arg;
    atomic_bool *cancel;            //  may be NULL; set: stop pip, fail
} tako_envbuild_options_t;

typedef struct {
    bool cached;                //  the environment existed: nothing was installed
    int64_t duration_ms;        //  this call, lock waits included
    char *env_path;             //  absolute path of the environment (success)
    char *built_at;             //  ISO-8601 UTC of the environment (success)
    char *error_type;           //  TAKO_ENVBUILD_*_ERROR (failure)
    char *reason;               //  short, safe to show (failure)
} tako_envbuild_result_t;

//  Make sure spec's environment exists, building it if needed. 0 with
//  result->env_path set, or -1 with error_type and reason set.
int tako_envbuild_run (tako_envspec_t *spec, const tako_envbuild_options_t *options,
                       tako_envbuild_result_t *result);

//  Free the strings of a result and zero it.
void tako_envbuild_result_clear (tako_envbuild_result_t *result);

//  data_dir/envs/<digest>, a fresh string (caller frees), or NULL.
char *tako_envbuild_env_path (const char *data_dir, const char *digest);

//  True if the environment of this digest (64 hex) is built.
bool tako_envbuild_exists (const char *data_dir, const char *digest);

//  The digest of a built environment whose digest job_ref names (by its
//  hex prefix), a fresh string, or NULL when none (or several) match.
char *tako_envbuild_find (const char *data_dir, const char *job_ref);

//  The built environment a job would run with, without building: the
//  environment job_ref pins when it is given and exists, else the one of
//  job_type plus the job's own requirements. A fresh path (caller frees),
//  or NULL when it is not built yet (ask the builder: QUERY env.resolve)
//  or when a requirement is invalid (*error set, caller frees).
char *tako_envbuild_path_for_job (const tako_config_t *config,
                                  const tako_config_job_type_t *job_type,
                                  const char *const *requirements, size_t count,
                                  const char *job_ref, char **error);

void tako_envbuild_test (bool verbose);

#endif
