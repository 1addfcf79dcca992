/*  tako_sandbox — one isolated run of untrusted Python.

    A sandbox is built in two steps so that sandboxes can be prepared ahead
    of demand (warm pools):

        tako_sandbox_spec_t spec;
        tako_sandbox_spec_defaults (&spec);
        spec.memory_limit_bytes = 256 * 1024 * 1024;
        tako_sandbox_t *sandbox = tako_sandbox_new (&spec);
        if (tako_sandbox_prepare (sandbox) != 0)        //  a layer failed
            fprintf (stderr, "%s\n", tako_sandbox_error (sandbox));
        else {
            json_t *result = tako_sandbox_run (sandbox, "print(1+1)", 10, "{}");
            ...                                         //  the result, see below
            json_decref (result);
        }
        tako_sandbox_destroy (&sandbox);

    prepare: namespaces (sandbox_namespaces, sandbox_uidmap), file system
    (sandbox_mounts), cgroup (sandbox_cgroup), and an interpreter started
    under rlimits, no capabilities and seccomp, which imports what it needs
    and signals ready (sandbox_reaper, sandbox_bootstrap). It returns -1
    only when the sandbox could not be built (tako_sandbox_error names the
    layer); a sandbox that is not ready within startup_timeout_ms returns 0
    and its run reports status "timeout", error "startup_timeout".

    run: hands code and input over (/code/main.py, /input/data.json, both
    read-only to the job), waits at most timeout_ms, kills the whole tree,
    collects stdout, stderr, /output (sandbox_output) and usage, and
    returns the result as JSON, the fields of a Tako VM result (view=full)
    that the sandbox knows:

        status            succeeded | failed | timeout | oom | cancelled
        exit_code         the interpreter's; 128+N when killed by signal N
        stdout, stderr    capped, valid UTF-8; stdout_truncated, stderr_truncated
        output            /output/result.json parsed, or null
        error             {type, message, phase} or null (sandbox_errors)
        artifacts         [{name, size_bytes, sha256, content_type}]
        timing            {startup_ms, dep_install_ms, execution_ms, total_ms, phase_at_exit}
        resource_usage    {max_rss_mb, cpu_time_ms, wall_time_ms}
        code_hash, input_hash   sha256 hex

    With spec.runtime_runsc and runsc installed, prepare only writes an
    OCI bundle and run starts the job under gVisor instead (sandbox_runsc):
    same layout, timeouts, captures and result. Without runsc,
    runtime_strict makes prepare fail ("runtime: ..."); otherwise the
    native sandbox runs the job (sandbox_runtime).

    The artifacts' bytes stay available through tako_sandbox_artifact.
    A sandbox runs one job, never more. The caller may cancel a run by
    making spec.cancel_fd readable (an eventfd or a pipe).                  */

#ifndef TAKO_SANDBOX_H_INCLUDED
#define TAKO_SANDBOX_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "sandbox_cgroup.h"
#include "sandbox_output.h"

#define TAKO_SANDBOX_DEFAULT_PYTHON "/usr/bin/python3"
//  Output drained after the job's tree died, at most this long.
#define TAKO_SANDBOX_DRAIN_MS       2000
//  The reaper's exit is awaited at most this long after SIGKILL.
#define TAKO_SANDBOX_REAP_MS        5000
#define TAKO_SANDBOX_ENV_MAX        256
#define TAKO_SANDBOX_PRELOAD_MAX    64
#define TAKO_SANDBOX_ERROR_MAX      256
//  The error record the bootstrap writes (JSON {type, message}).
#define TAKO_SANDBOX_ERROR_RECORD_MAX 8192

typedef struct {
    const char *name;
    const char *value;
} tako_sandbox_env_t;

//  Called with each piece of the job's output as it is read (stdout or
//  stderr), before any cap: for streaming. Runs in the thread running the
//  sandbox.
typedef void (tako_sandbox_output_fn) (void *arg, bool is_stderr, const char *data, size_t size);

typedef struct {
    const char *source;             //  host path
    const char *target;             //  path inside the sandbox
} tako_sandbox_bind_t;

//  Everything a sandbox needs; strings and arrays are read during
//  tako_sandbox_new and tako_sandbox_prepare only.
typedef struct {
    const char *code;               //  for tako_sandbox_execute
    size_t code_size;
    const char *input_json;         //  NULL = "{}"
    int64_t timeout_ms;             //  execution phase
    int64_t startup_timeout_ms;     //  until the interpreter is ready
    int64_t memory_limit_bytes;     //  0 = none
    double cpu_limit;               //  cores, 0 = none
    int pids_limit;                 //  0 = none
    int64_t nofile_soft, nofile_hard;
    int64_t nproc_soft, nproc_hard;
    int64_t fsize_bytes;
    int64_t tmpfs_size_bytes;       //  /tmp
    int64_t max_total_artifacts_bytes;  //  /output size and artifact total
    int64_t max_artifact_bytes;
    int64_t max_stdout_bytes, max_stderr_bytes;
    int64_t max_code_bytes, max_input_bytes;
    bool network_enabled;           //  share the host's network namespace
    bool seccomp_enabled;
    bool system_packages;           //  the host's site-packages on sys.path
                                    //  (job type use_system_packages)
    const tako_sandbox_env_t *env;  //  the job type's environment
    size_t env_count;
    const char *python_path;        //  NULL = TAKO_SANDBOX_DEFAULT_PYTHON
    const char *rootfs;             //  NULL or "" = the host's /usr etc.
    const tako_sandbox_bind_t *binds;   //  extra read-only binds
    size_t bind_count;
    int slot;                       //  0..TAKO_SANDBOX_SLOT_MAX: host uid 200000+slot
    int cancel_fd;                  //  -1, or readable = cancel
    tako_sandbox_output_fn *on_output;  //  NULL, or told of output as it comes
    void *on_output_arg;
    bool runtime_runsc;             //  container_runtime runsc (sandbox_runsc)
    bool runtime_strict;            //  security_mode strict: no fallback
    const char *const *preload;     //  modules the interpreter imports before
    size_t preload_count;           //  it is ready (warm pools), at most
                                    //  TAKO_SANDBOX_PRELOAD_MAX
    struct _tako_zygote_t *zygote;  //  NULL, or the sandbox's first process is
                                    //  cloned by this zygote (tako_zygote.h):
                                    //  its interpreter is a fork of one that
                                    //  started already; made from the same spec
} tako_sandbox_spec_t;

typedef struct tako_sandbox_t tako_sandbox_t;

//  Fill spec with the configuration reference's defaults.
void tako_sandbox_spec_defaults (tako_sandbox_spec_t *spec);

//  A new sandbox (nothing started yet), or NULL when spec is invalid or
//  memory is short.
tako_sandbox_t *tako_sandbox_new (const tako_sandbox_spec_t *spec);

//  Kill whatever still runs, remove the cgroup, free; safe twice.
void tako_sandbox_destroy (tako_sandbox_t **self_p);

//  Build the sandbox and start the interpreter; see above. 0 or -1.
int tako_sandbox_prepare (tako_sandbox_t *self);

//  True once prepared and waiting for its job.
bool tako_sandbox_ready (tako_sandbox_t *self);

//  Run the job; returns the result (caller decrefs) or NULL when the
//  sandbox failed as infrastructure (see tako_sandbox_error).
//  For a sandbox prepared before its job was known (a warm pool): the
//  job's own execution timeout and cancel fd, before run. The timeout may
//  not exceed the prepared one (the CPU-time limit was set from it). The
//  result's timing then says warm: true and startup_ms 0 (the job waited
//  for no start-up). 0, or -1 when the timeout is too long or the sandbox
//  is not ready.
int tako_sandbox_assign (tako_sandbox_t *self, int64_t timeout_ms, int cancel_fd);

//  The same for a sandbox prepared for its job, from a spec with a longer
//  timeout (one a zygote serves): the result counts its start-up.
int tako_sandbox_limit (tako_sandbox_t *self, int64_t timeout_ms, int cancel_fd);

//  Memory used so far by the sandbox's processes (its cgroup's peak),
//  bytes; 0 when unknown.
int64_t tako_sandbox_memory_bytes (tako_sandbox_t *self);

//  Before run: where output goes as it comes (see tako_sandbox_output_fn).
void tako_sandbox_on_output (tako_sandbox_t *self, tako_sandbox_output_fn *on_output, void *arg);

json_t *tako_sandbox_run (tako_sandbox_t *self, const char *code, size_t code_size,
                          const char *input_json);

//  "layer: reason" of the last infrastructure failure, or NULL.
const char *tako_sandbox_error (tako_sandbox_t *self);

//  The artifacts of the finished run (index < count); bytes included.
size_t tako_sandbox_artifact_count (tako_sandbox_t *self);
const tako_sandbox_artifact_t *tako_sandbox_artifact (tako_sandbox_t *self, size_t index);

//  The host uid the job ran as (for checks that nothing is left behind).
unsigned tako_sandbox_host_uid (tako_sandbox_t *self);

//  For tako-zygote, in the zygote process, on a sandbox that is only a
//  template (new, never prepared): clone its first process into fresh
//  namespaces as a child of the zygote's parent (the executor, which then
//  finishes the start as for any sandbox it prepares). fds are the sandbox
//  ends of the pipes (TAKO_SANDBOX_ZYGOTE_FDS), then the cgroup files the
//  first process joins its group through (sandbox_cgroup.h), in the order
//  the executor's sandbox sends them; the interpreter child calls run
//  instead of exec. The pid, or -1 with errno.
pid_t tako_sandbox_zygote_clone (tako_sandbox_t *self, const int *fds, size_t fd_count,
                                 void (*run) (void));

//  How many fds a zygote clone takes: the pipes, then up to
//  TAKO_SANDBOX_CGROUP_JOIN_MAX more.
#define TAKO_SANDBOX_ZYGOTE_FDS 9
#define TAKO_SANDBOX_ZYGOTE_FDS_MAX (TAKO_SANDBOX_ZYGOTE_FDS + TAKO_SANDBOX_CGROUP_JOIN_MAX)

//  The interpreter's environment (NULL-terminated), as built from the spec.
char *const *tako_sandbox_envp (tako_sandbox_t *self);

//  One call: new, prepare, run with spec's code and input, destroy. NULL
//  with *error (caller frees) when the sandbox could not be built.
json_t *tako_sandbox_execute (const tako_sandbox_spec_t *spec, char **error);

void tako_sandbox_test (bool verbose);

#endif
