/*  sandbox_runsc — one job run under gVisor (runsc) instead of our own
    namespaces and seccomp.

    The same inputs as the native sandbox give the same layout and the same
    result: the native mount plan (sandbox_mounts) is translated into an
    OCI bundle (config.json written with jansson) in a private directory,
    /code/main.py and /input/data.json are read-only files of its root,
    /output is a size-limited tmpfs on the host bound into the container
    and read afterwards by sandbox_output through a directory fd opened
    before the job ran. The interpreter runs the same bootstrap
    (sandbox_bootstrap) as uid/gid 1000 with no capabilities, the
    rlimits of sandbox_rlimits and an environment built from nothing.

    runsc passes only stdin, stdout and stderr into the container, so the
    bootstrap's ready, go and error channels (fds 3, 4, 5) all travel on
    one socket given to runsc as stdin: a short prelude duplicates fd 0
    onto them and gives the job /dev/null as stdin. The first byte read
    back is the ready "R" (the end of start-up), the host answers "G", and
    the rest is the error record.

    runsc runs with --network=none (the only network mode that works on
    the hosts we run on) and --ignore-cgroups: the caller's cgroup
    (sandbox_cgroup) holds runsc and everything it starts, so the limits,
    the accounting and the final kill cover the whole sandbox, gVisor's own
    processes included (TAKO_SANDBOX_RUNSC_*_OVERHEAD are added for them).
    On timeout or cancel `runsc kill` stops the container (runsc then
    tears the sandbox down), the cgroup is killed as the backstop, and
    when runsc itself had to be killed `runsc delete --force` removes the
    container's state; destroy unmounts /output and removes the
    directory. Nothing outlives the job.                               */

#ifndef SANDBOX_RUNSC_H_INCLUDED
#define SANDBOX_RUNSC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sandbox_cgroup.h"
#include "sandbox_mounts.h"
#include "sandbox_output.h"
#include "sandbox_rlimits.h"

//  Where the private bundle directories are made (mkdtemp).
#define TAKO_SANDBOX_RUNSC_DIR_TEMPLATE   "/tmp/tako-runsc-XXXXXX"
//  gVisor's own processes (sentry, gofer, runsc) in the job's cgroup:
//  measured at ~25 MiB and ~40 host tasks for print(1+1).
#define TAKO_SANDBOX_RUNSC_MEMORY_OVERHEAD (64LL * 1024 * 1024)
#define TAKO_SANDBOX_RUNSC_PIDS_OVERHEAD   128
//  `runsc kill` and `runsc delete --force`, and the exit of runsc after
//  the kill, are each awaited at most this long.
#define TAKO_SANDBOX_RUNSC_COMMAND_MS      2000
#define TAKO_SANDBOX_RUNSC_ARGS_MAX        16
//  Output drained after runsc exited or was killed, at most this long.
#define TAKO_SANDBOX_RUNSC_DRAIN_MS        2000

typedef struct tako_sandbox_runsc_t tako_sandbox_runsc_t;

//  Called with each piece of output as it comes (as tako_sandbox_output_fn).
typedef void (tako_sandbox_runsc_output_fn) (void *arg, bool is_stderr, const char *data, size_t size);

//  What the bundle and the run are made of; read during new only, except
//  cgroup and the output callback, which must outlive the object.
typedef struct {
    const char *runsc_path;
    const tako_sandbox_mounts_t *mounts;    //  the native plan
    const tako_sandbox_rlimits_t *rlimits;
    char *const *argv;              //  python, -S|-s, -c, BOOTSTRAP, preload...
    char *const *envp;
    int64_t output_bytes;           //  size of /output
    tako_sandbox_cgroup_t *cgroup;  //  runsc and its children run in it
} tako_sandbox_runsc_plan_t;

//  What one run did, for the caller's result (the native fields).
typedef struct {
    tako_sandbox_capture_t *out, *err, *error_record;   //  caller's, caps set
    tako_sandbox_runsc_output_fn *on_output;
    void *on_output_arg;
    int cancel_fd;                  //  -1, or readable = cancel
    int64_t startup_timeout_ms, timeout_ms;
    //  Filled by run
    bool ready_seen, job_running, have_exit, timed_out, cancelled;
    int exit_status;                //  a wait status
    int64_t ready_ns, handover_ns, ended_ns;
} tako_sandbox_runsc_run_t;

//  Write the bundle. NULL with *error a short static reason (no host
//  paths) when it cannot be done.
tako_sandbox_runsc_t *tako_sandbox_runsc_new (const tako_sandbox_runsc_plan_t *plan,
                                              const char **error);

//  Kill what is left, delete the container, unmount /output, remove the
//  directory, free; safe twice.
void tako_sandbox_runsc_destroy (tako_sandbox_runsc_t **self_p);

//  Place code and input, run the job under the run's timeouts, fill run.
//  Returns 0 when the job ran (whatever it did), -1 with *error when the
//  container could not be started.
int tako_sandbox_runsc_run (tako_sandbox_runsc_t *self, const char *code, size_t code_size,
                            const char *input, size_t input_size,
                            tako_sandbox_runsc_run_t *run, const char **error);

//  The /output directory fd (opened before the job ran), or -1.
int tako_sandbox_runsc_output_fd (tako_sandbox_runsc_t *self);

#endif
