/*  bench_sandbox — what a long-running executor pays per job, cold and warm.

    Interleaves N runs of tako_sandbox_execute ("print(1+1)", default
    limits, full isolation: cold), N warm runs (a sandbox prepared before
    the clock starts, as a warm pool holds them: only assign + run are
    timed), the same with the sandbox prepared by a zygote (what a warm
    pool holds when the job type has one), N zygote runs (a sandbox cloned
    by the job type's zygote, its
    interpreter a fork of one started before: prepare + run timed, what a
    job pays when no prepared sandbox waits, and what a pool pays to
    refill) and N spawns of a bare `/usr/bin/python3 -c 'print(1+1)'` from
    the same process, and prints p50/p90 of each and their ratios to the
    bare spawn. Informative only, never pass/fail.

        build/bench/bench_sandbox [N]                                     */

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include "tako_sandbox.h"
#include "tako_executor.h"
#include "tako_zygote.h"

#define DEFAULT_RUNS  30
#define BENCH_SLOT    900

extern char **environ;

//  The spec an executor uses for the default job type (the limits of the
//  default configuration).
static tako_config_t *config;
static tako_sandbox_env_t *env;

static void
spec_fill (tako_sandbox_spec_t *spec)
{
    free (env);
    env = NULL;
    if (tako_executor_spec_from_config (spec, config, tako_config_job_type (config, "default"), &env) != 0) {
        fprintf (stderr, "bench_sandbox: out of memory\n");
        exit (1);
    }
}

static double
now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000.0 + now.tv_nsec / 1e6;
}

static double
bare_python_ms (void)
{
    char *argv [] = { "/usr/bin/python3", "-c", "print(1+1)", NULL };
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_addopen (&actions, 1, "/dev/null", O_WRONLY, 0);
    double start = now_ms ();
    pid_t pid;
    if (posix_spawn (&pid, argv [0], &actions, NULL, argv, environ) != 0) {
        perror ("posix_spawn");
        exit (1);
    }
    int status;
    waitpid (pid, &status, 0);
    posix_spawn_file_actions_destroy (&actions);
    return now_ms () - start;
}

static double
sandbox_ms (void)
{
    tako_sandbox_spec_t spec;
    spec_fill (&spec);
    spec.code = "print(1+1)\n";
    spec.code_size = 11;
    spec.slot = BENCH_SLOT;
    char *error = NULL;
    double start = now_ms ();
    json_t *result = tako_sandbox_execute (&spec, &error);
    double took = now_ms () - start;
    const char *status = json_string_value (json_object_get (result, "status"));
    if (!result || !status || strcmp (status, "succeeded") != 0) {
        fprintf (stderr, "bench_sandbox: sandbox failed: %s\n", error? error: "bad status");
        exit (1);
    }
    json_decref (result);
    return took;
}

//  A sandbox prepared ahead (by the zygote when given: as a warm pool
//  prepares them), then timed from hand-over to result.
static tako_zygote_t *zygote;

static double
warm_ms (tako_zygote_t *from)
{
    tako_sandbox_spec_t spec;
    spec_fill (&spec);
    spec.slot = BENCH_SLOT + 1;
    spec.zygote = from;
    tako_sandbox_t *sandbox = tako_sandbox_new (&spec);
    if (!sandbox || tako_sandbox_prepare (sandbox) != 0 || !tako_sandbox_ready (sandbox)) {
        fprintf (stderr, "bench_sandbox: cannot prepare a warm sandbox\n");
        exit (1);
    }
    double start = now_ms ();
    json_t *result = NULL;
    if (tako_sandbox_assign (sandbox, spec.timeout_ms, -1) == 0)
        result = tako_sandbox_run (sandbox, "print(1+1)\n", 11, "{}");
    double took = now_ms () - start;
    const char *status = json_string_value (json_object_get (result, "status"));
    if (!result || !status || strcmp (status, "succeeded") != 0) {
        fprintf (stderr, "bench_sandbox: warm sandbox failed\n");
        exit (1);
    }
    json_decref (result);
    tako_sandbox_destroy (&sandbox);
    return took;
}

//  A sandbox cloned by the zygote, timed from prepare to result.
static double
zygote_ms (void)
{
    tako_sandbox_spec_t spec;
    spec_fill (&spec);
    spec.slot = BENCH_SLOT + 2;
    spec.zygote = zygote;
    double start = now_ms ();
    tako_sandbox_t *sandbox = tako_sandbox_new (&spec);
    json_t *result = NULL;
    if (sandbox && tako_sandbox_prepare (sandbox) == 0 && tako_sandbox_ready (sandbox)
    &&  tako_sandbox_assign (sandbox, spec.timeout_ms, -1) == 0)
        result = tako_sandbox_run (sandbox, "print(1+1)\n", 11, "{}");
    double took = now_ms () - start;
    const char *status = json_string_value (json_object_get (result, "status"));
    if (!result || !status || strcmp (status, "succeeded") != 0) {
        fprintf (stderr, "bench_sandbox: zygote sandbox failed: %s\n",
                 sandbox && tako_sandbox_error (sandbox)? tako_sandbox_error (sandbox): "bad status");
        exit (1);
    }
    json_decref (result);
    tako_sandbox_destroy (&sandbox);
    return took;
}

static int
compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double
percentile (double *values, int count, int p)
{
    qsort (values, (size_t) count, sizeof (double), compare);
    int index = (int) ((p / 100.0) * (count - 1) + 0.5);
    return values [index];
}

int
main (int argc, char *argv [])
{
    int runs = argc > 1? atoi (argv [1]): DEFAULT_RUNS;
    config = tako_config_new ();
    tako_config_errors_t *errors = tako_config_errors_new ();
    if (!config || !errors || tako_config_finish (config, errors) != 0) {
        fprintf (stderr, "bench_sandbox: cannot resolve the default configuration\n");
        return 1;
    }
    tako_config_errors_destroy (&errors);
    if (runs < 3)
        runs = 3;
    double *sandbox = calloc ((size_t) runs, sizeof (double));
    double *bare = calloc ((size_t) runs, sizeof (double));
    double *warm = calloc ((size_t) runs, sizeof (double));
    double *forked = calloc ((size_t) runs, sizeof (double));
    double *warm_forked = calloc ((size_t) runs, sizeof (double));
    tako_sandbox_spec_t spec;
    spec_fill (&spec);
    char *error = NULL;
    if (!(zygote = tako_zygote_new (&spec, &error))) {
        fprintf (stderr, "bench_sandbox: no zygote: %s\n", error);
        return 1;
    }
    sandbox_ms ();
    warm_ms (NULL);
    warm_ms (zygote);
    zygote_ms ();
    bare_python_ms ();          //  warm the page cache
    for (int i = 0; i < runs; i++) {
        sandbox [i] = sandbox_ms ();
        warm [i] = warm_ms (NULL);
        warm_forked [i] = warm_ms (zygote);
        forked [i] = zygote_ms ();
        bare [i] = bare_python_ms ();
    }
    double z50 = percentile (forked, runs, 50), z90 = percentile (forked, runs, 90);
    double f50 = percentile (warm_forked, runs, 50), f90 = percentile (warm_forked, runs, 90);
    double s50 = percentile (sandbox, runs, 50), s90 = percentile (sandbox, runs, 90);
    double w50 = percentile (warm, runs, 50), w90 = percentile (warm, runs, 90);
    double b50 = percentile (bare, runs, 50), b90 = percentile (bare, runs, 90);
    printf ("cold sandbox        n=%d p50=%7.1f ms  p90=%7.1f ms\n", runs, s50, s90);
    printf ("warm sandbox        n=%d p50=%7.1f ms  p90=%7.1f ms\n", runs, w50, w90);
    printf ("warm zygote sandbox n=%d p50=%7.1f ms  p90=%7.1f ms\n", runs, f50, f90);
    printf ("zygote sandbox      n=%d p50=%7.1f ms  p90=%7.1f ms\n", runs, z50, z90);
    printf ("bare python spawn   n=%d p50=%7.1f ms  p90=%7.1f ms\n", runs, b50, b90);
    printf ("cold/bare p50 %.2fx  p90 %.2fx\n", s50 / b50, s90 / b90);
    printf ("warm/bare p50 %.2fx  p90 %.2fx\n", w50 / b50, w90 / b90);
    printf ("warm zygote/bare p50 %.2fx  p90 %.2fx\n", f50 / b50, f90 / b90);
    printf ("zygote/bare p50 %.2fx  p90 %.2fx\n", z50 / b50, z90 / b90);
    tako_zygote_destroy (&zygote);
    free (forked);
    free (warm_forked);
    free (sandbox);
    free (warm);
    free (env);
    tako_config_destroy (&config);
    free (bare);
    return 0;
}
