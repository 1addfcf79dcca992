/*  tako_sandbox — ties the layers together: prepare, run, collect.  */

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tako_sandbox.h"
#include "sandbox_bootstrap.h"
#include "sandbox_cgroup.h"
#include "sandbox_errors.h"
#include "sandbox_mounts.h"
#include "sandbox_namespaces.h"
#include "sandbox_reaper.h"
#include "sandbox_rlimits.h"
#include "sandbox_runsc.h"
#include "sandbox_runtime.h"
#include "sandbox_seccomp.h"
#include "sandbox_uidmap.h"
#include "tako_sha256.h"
#include "tako_zygote.h"

#define NS_PER_MS       1000000LL
#define READ_CHUNK      65536
#define ERROR_MESSAGE_MAX 1024

typedef enum {
    STATE_NEW,
    STATE_READY,            //  interpreter waiting for its job
    STATE_STARTUP_ENDED,    //  died, timed out or cancelled before ready
    STATE_RAN,
    STATE_BROKEN            //  a layer failed
} state_t;

//  The pipes, host end and sandbox end.
typedef struct {
    int host;
    int sandbox;
} pipe_ends_t;

enum { PIPE_SYNC, PIPE_REPORT, PIPE_JOB, PIPE_STDOUT, PIPE_STDERR, PIPE_READY,
       PIPE_ERROR, PIPE_GO, PIPE_COUNT };

struct tako_sandbox_t {
    tako_sandbox_spec_t spec;       //  scalars only after new
    char *python_path;
    char **envp;
    char **argv;                    //  python -s -c BOOTSTRAP [preload...]
    bool warm;                      //  assigned after it was prepared
    void (*run_in_process) (void);  //  set in a zygote's clone (see header)
    state_t state;
    char error [TAKO_SANDBOX_ERROR_MAX];
    bool has_error;

    tako_sandbox_mounts_t mounts;
    tako_sandbox_rlimits_t rlimits;
    tako_sandbox_seccomp_t seccomp;
    tako_sandbox_cgroup_t *cgroup;
    tako_sandbox_runsc_t *runsc;    //  the gVisor runtime, when it is used
    bool use_runsc;
    pipe_ends_t pipes [PIPE_COUNT];
    int go_write;                   //  the reaper's end of the go pipe
    int join_fds [TAKO_SANDBOX_CGROUP_JOIN_MAX];    //  until the reaper has them
    int join_count;
    pid_t reaper;
    bool reaped;
    int reaper_status;              //  its wait status, once reaped
    struct rusage reaper_usage;
    int output_fd;

    //  What happened
    bool ready_seen, report_closed, have_exit, killed, cancelled, timed_out;
    bool job_running;
    int exit_status;
    tako_sandbox_capture_t out, err, error_record;
    int64_t started_ns, ready_ns, handover_ns, ended_ns;
    char *job;                      //  header + code + input, being written
    size_t job_size, job_written;
    tako_sandbox_output_t output;
    char *code_hash, *input_hash;
};

static int64_t
now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void
error_set (tako_sandbox_t *self, const char *layer, const char *reason)
{
    if (snprintf (self->error, sizeof (self->error), "%s: %s", layer, reason) < 0)
        self->error [0] = '\0';
    self->has_error = true;
    self->state = STATE_BROKEN;
}

static void
fd_close (int *fd)
{
    if (*fd >= 0)
        close (*fd);
    *fd = -1;
}

static void
joins_close (tako_sandbox_t *self)
{
    for (int i = 0; i < self->join_count; i++)
        close (self->join_fds [i]);
    self->join_count = 0;
}

void
tako_sandbox_spec_defaults (tako_sandbox_spec_t *spec)
{
    memset (spec, 0, sizeof (*spec));
    spec->timeout_ms = 30 * 1000;
    spec->startup_timeout_ms = 60 * 1000;
    spec->memory_limit_bytes = 512LL * 1024 * 1024;
    spec->cpu_limit = 1.0;
    spec->pids_limit = 100;
    spec->nofile_soft = 256;
    spec->nofile_hard = 256;
    spec->nproc_soft = 50;
    spec->nproc_hard = 50;
    spec->fsize_bytes = 100LL * 1024 * 1024;
    spec->tmpfs_size_bytes = 100LL * 1024 * 1024;
    spec->max_total_artifacts_bytes = 50LL * 1024 * 1024;
    spec->max_artifact_bytes = 10LL * 1024 * 1024;
    spec->max_stdout_bytes = 64 * 1024;
    spec->max_stderr_bytes = 64 * 1024;
    spec->max_code_bytes = 100 * 1024;
    spec->max_input_bytes = 1024 * 1024;
    spec->seccomp_enabled = true;
    spec->cancel_fd = -1;
}

//  The job's environment, built from nothing.
static char **
environment_build (const tako_sandbox_spec_t *spec)
{
    static const char *fixed [] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8",
        "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "USER=sandbox", "TMPDIR=/tmp",
    };
    size_t fixed_count = sizeof (fixed) / sizeof (fixed [0]);
    if (spec->env_count > TAKO_SANDBOX_ENV_MAX)
        return NULL;
    char **envp = calloc (fixed_count + spec->env_count + 1, sizeof (char *));
    if (!envp)
        return NULL;
    size_t count = 0;
    for (size_t i = 0; i < fixed_count; i++)
        if (!(envp [count++] = strdup (fixed [i])))
            goto failed;
    for (size_t i = 0; i < spec->env_count; i++) {
        const char *name = spec->env [i].name, *value = spec->env [i].value;
        if (!name || !*name || strchr (name, '=') || !value)
            goto failed;
        size_t size = strlen (name) + strlen (value) + 2;
        if (!(envp [count] = malloc (size)))
            goto failed;
        snprintf (envp [count++], size, "%s=%s", name, value);
    }
    return envp;
failed:
    for (size_t i = 0; i < count; i++)
        free (envp [i]);
    free (envp);
    return NULL;
}

//  python -S -c BOOTSTRAP [module...]: -S, no site module — only the
//  standard library (and what the job's environment adds) is importable,
//  and start-up skips site's .pth processing; with system_packages,
//  -s instead (site runs, the host's dist-packages are on the path, the
//  user site is not). The bootstrap comes in with -c and imports the
//  preload modules named after it.
//  Module names are checked here: letters, digits, _ and dots only.
static char **
argv_build (char *python_path, const tako_sandbox_spec_t *spec)
{
    if (spec->preload_count > TAKO_SANDBOX_PRELOAD_MAX)
        return NULL;
    char **argv = calloc (5 + spec->preload_count, sizeof (char *));
    if (!argv)
        return NULL;
    argv [0] = python_path;
    argv [1] = spec->system_packages? "-s": "-S";
    argv [2] = "-c";
    argv [3] = (char *) tako_sandbox_bootstrap_source;
    for (size_t i = 0; i < spec->preload_count; i++) {
        const char *name = spec->preload [i];
        bool valid = name && *name && *name != '.' && strlen (name) < 256;
        for (const char *c = name; valid && *c; c++)
            valid = isalnum ((unsigned char) *c) || *c == '_' || *c == '.';
        if (!valid) {
            free (argv);
            return NULL;
        }
        argv [4 + i] = (char *) name;
    }
    return argv;
}

//  container_runtime and security_mode (sandbox_runtime); a refusal
//  makes prepare fail with the reason.
static void
runtime_choose (tako_sandbox_t *self)
{
    const char *warning = NULL, *refusal = NULL;
    if (tako_sandbox_runtime_choose (self->spec.runtime_runsc, self->spec.runtime_strict,
                                     &warning, &refusal) != 0) {
        error_set (self, "runtime", refusal);
        return;
    }
    self->use_runsc = tako_sandbox_runtime_uses_runsc (self->spec.runtime_runsc);
    if (self->use_runsc && self->spec.network_enabled)
        error_set (self, "runtime", "runsc runs jobs without a network (--network=none);"
                                    " this job type enables network access");
}

tako_sandbox_t *
tako_sandbox_new (const tako_sandbox_spec_t *spec)
{
    if (!spec || spec->slot < 0 || spec->slot > TAKO_SANDBOX_SLOT_MAX
    ||  spec->timeout_ms <= 0 || spec->startup_timeout_ms <= 0
    ||  spec->max_stdout_bytes < 0 || spec->max_stderr_bytes < 0)
        return NULL;
    tako_sandbox_t *self = calloc (1, sizeof (tako_sandbox_t));
    if (!self)
        return NULL;
    self->spec = *spec;
    self->spec.code = NULL;
    self->spec.input_json = NULL;
    self->spec.env = NULL;
    self->spec.binds = NULL;
    self->spec.rootfs = NULL;
    self->spec.python_path = NULL;
    self->spec.preload = NULL;
    self->spec.preload_count = 0;
    for (int i = 0; i < PIPE_COUNT; i++)
        self->pipes [i].host = self->pipes [i].sandbox = -1;
    self->go_write = -1;
    self->join_count = 0;
    self->output_fd = -1;
    self->reaper = -1;
    self->out.cap = (size_t) spec->max_stdout_bytes;
    self->err.cap = (size_t) spec->max_stderr_bytes;
    self->error_record.cap = TAKO_SANDBOX_ERROR_RECORD_MAX;
    self->python_path = strdup (spec->python_path? spec->python_path: TAKO_SANDBOX_DEFAULT_PYTHON);
    self->envp = environment_build (spec);
    self->argv = argv_build (self->python_path, spec);
    if (!self->python_path || !self->envp || !self->argv) {
        tako_sandbox_destroy (&self);
        return NULL;
    }

    const char **sources = calloc (spec->bind_count + 1, sizeof (char *));
    const char **targets = calloc (spec->bind_count + 1, sizeof (char *));
    for (size_t i = 0; sources && targets && i < spec->bind_count; i++) {
        sources [i] = spec->binds [i].source;
        targets [i] = spec->binds [i].target;
    }
    tako_sandbox_mounts_spec_t mounts = {
        spec->rootfs, spec->tmpfs_size_bytes, spec->max_total_artifacts_bytes,
        spec->network_enabled, sources, targets, spec->bind_count
    };
    const char *reason = "out of memory";
    if (!sources || !targets || tako_sandbox_mounts_plan (&self->mounts, &mounts, &reason) != 0)
        error_set (self, "mounts", reason);
    free (sources);
    free (targets);

    //  RLIMIT_CPU backs up the wall clock: both phases plus some slack.
    tako_sandbox_rlimits_spec_t limits = {
        spec->nofile_soft, spec->nofile_hard, spec->nproc_soft, spec->nproc_hard,
        spec->fsize_bytes,
        (spec->timeout_ms + spec->startup_timeout_ms) / 1000 + TAKO_SANDBOX_CPU_SLACK_S
    };
    tako_sandbox_rlimits_plan (&self->rlimits, &limits);
    runtime_choose (self);
    return self;
}

//  Wait for the reaper (bounded: after SIGKILL it exits at once).
static void
reaper_reap (tako_sandbox_t *self)
{
    if (self->reaper <= 0 || self->reaped)
        return;
    int64_t deadline = now_ns () + TAKO_SANDBOX_REAP_MS * NS_PER_MS;
    //  Wait for the exit on a pidfd rather than in sleeps.
    int pidfd = (int) syscall (SYS_pidfd_open, self->reaper, 0);
    if (pidfd >= 0) {
        struct pollfd exited = { pidfd, POLLIN, 0 };
        poll (&exited, 1, TAKO_SANDBOX_REAP_MS);
        close (pidfd);
    }
    bool signalled = false;
    while (!self->reaped) {
        int status;
        pid_t pid = wait4 (self->reaper, &status, WNOHANG, &self->reaper_usage);
        if (pid == self->reaper)
            self->reaper_status = status;
        if (pid == self->reaper || (pid < 0 && errno != EINTR)) {
            self->reaped = true;
            break;
        }
        if (!signalled && now_ns () > deadline) {
            kill (self->reaper, SIGKILL);
            signalled = true;
        }
        struct timespec pause = { 0, 2 * NS_PER_MS };
        nanosleep (&pause, NULL);
    }
}

//  End the sandbox's processes: the reaper first, whose exit (as init of
//  the pid namespace) takes every process of the namespace with it, then
//  whatever the cgroup still lists. In this order the cgroup is empty by
//  then and costs one read of cgroup.procs; its kill (a write lock on
//  every cgroup's forks: an RCU grace period, ~5 ms, even when empty)
//  runs only when something is left.
static void
reaper_end (tako_sandbox_t *self)
{
    if (self->reaper > 0 && !self->reaped) {
        kill (self->reaper, SIGKILL);
        self->killed = true;
    }
    reaper_reap (self);
    if (self->cgroup)
        tako_sandbox_cgroup_kill (self->cgroup);
}

void
tako_sandbox_destroy (tako_sandbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_sandbox_t *self = *self_p;
    reaper_end (self);
    tako_sandbox_runsc_destroy (&self->runsc);
    tako_sandbox_cgroup_destroy (&self->cgroup);
    for (int i = 0; i < PIPE_COUNT; i++) {
        fd_close (&self->pipes [i].host);
        fd_close (&self->pipes [i].sandbox);
    }
    fd_close (&self->go_write);
    joins_close (self);
    fd_close (&self->output_fd);
    tako_sandbox_mounts_release (&self->mounts);
    tako_sandbox_seccomp_release (&self->seccomp);
    for (char **env = self->envp; env && *env; env++)
        free (*env);
    free (self->envp);
    free (self->argv);
    free (self->python_path);
    tako_sandbox_capture_release (&self->out);
    tako_sandbox_capture_release (&self->err);
    tako_sandbox_capture_release (&self->error_record);
    tako_sandbox_output_release (&self->output);
    free (self->job);
    free (self->code_hash);
    free (self->input_hash);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Preparing

//  Pipes: which end the host keeps is the read end except for sync and
//  job. The go pipe is internal to the sandbox (reaper → interpreter).
static int
pipes_open (tako_sandbox_t *self)
{
    for (int i = 0; i < PIPE_COUNT; i++) {
        int ends [2];
        if (pipe2 (ends, O_CLOEXEC) != 0)
            return -1;
        bool host_writes = i == PIPE_SYNC || i == PIPE_JOB;
        self->pipes [i].host = host_writes? ends [1]: ends [0];
        self->pipes [i].sandbox = host_writes? ends [0]: ends [1];
        if (i == PIPE_GO) {
            self->go_write = ends [1];
            self->pipes [i].host = -1;
            self->pipes [i].sandbox = ends [0];
        }
    }
    return 0;
}

static void __attribute__ ((noreturn))
child_run (tako_sandbox_t *self)
{
    tako_sandbox_init_plan_t plan = {
        .sync_fd = self->pipes [PIPE_SYNC].sandbox,
        .report_fd = self->pipes [PIPE_REPORT].sandbox,
        .job_fd = self->pipes [PIPE_JOB].sandbox,
        .stdout_fd = self->pipes [PIPE_STDOUT].sandbox,
        .stderr_fd = self->pipes [PIPE_STDERR].sandbox,
        .ready_fd = self->pipes [PIPE_READY].sandbox,
        .error_fd = self->pipes [PIPE_ERROR].sandbox,
        .go_read_fd = self->pipes [PIPE_GO].sandbox,
        .go_write_fd = self->go_write,
        .join_count = self->join_count,
        .network_enabled = self->spec.network_enabled,
        .seccomp_enabled = self->spec.seccomp_enabled,
        .mounts = &self->mounts,
        .rlimits = &self->rlimits,
        .seccomp = &self->seccomp,
        .argv = self->argv,
        .envp = self->envp,
        .code_max = (uint64_t) self->spec.max_code_bytes,
        .input_max = (uint64_t) self->spec.max_input_bytes,
        .run_in_process = self->run_in_process,
    };
    memcpy (plan.join_fds, self->join_fds, sizeof (plan.join_fds));
    tako_sandbox_reaper_main (&plan);
}

static void
report_failure (tako_sandbox_t *self, const tako_sandbox_report_t *record)
{
    char reason [TAKO_SANDBOX_ERROR_MAX / 2];
    const char *what = strerror (record->error);
    if (record->layer == TAKO_LAYER_MOUNTS)
        snprintf (reason, sizeof (reason), "cannot set up %s: %s",
                  tako_sandbox_mounts_op_path (&self->mounts, record->detail), what);
    else
    if (record->layer == TAKO_LAYER_INTERPRETER)
        snprintf (reason, sizeof (reason), "cannot start the interpreter: %s", what);
    else
        snprintf (reason, sizeof (reason), "%s", what);
    error_set (self, tako_sandbox_layer_name (record->layer), reason);
}

static void
report_handle (tako_sandbox_t *self, const tako_sandbox_report_t *record)
{
    if (record->kind == TAKO_REPORT_SETUP_DONE && self->output_fd < 0) {
        //  Open /output now, before any job code ran: afterwards the path
        //  is never walked again, only this fd (sandbox_output).
        char path [64];
        snprintf (path, sizeof (path), "/proc/%d/root/output", (int) self->reaper);
        self->output_fd = open (path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (self->output_fd < 0)
            error_set (self, "mounts", "cannot open /output");
    }
    else
    if (record->kind == TAKO_REPORT_FAILED)
        report_failure (self, record);
    else
    if (record->kind == TAKO_REPORT_JOB_RUNNING)
        self->job_running = true;
    else
    if (record->kind == TAKO_REPORT_EXIT && record->detail >= 0) {
        self->have_exit = true;
        self->exit_status = record->detail;
    }
}

typedef enum { PUMP_STARTUP, PUMP_RUN, PUMP_DRAIN } pump_mode_t;

//  Read what is there on one host pipe; closes it at EOF.
static void
pipe_read (tako_sandbox_t *self, int index)
{
    char buffer [READ_CHUNK];
    int *fd = &self->pipes [index].host;
    ssize_t got = read (*fd, buffer, index == PIPE_REPORT? sizeof (tako_sandbox_report_t): sizeof (buffer));
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (got <= 0) {
        fd_close (fd);
        if (index == PIPE_REPORT)
            self->report_closed = true;
        return;
    }
    if ((index == PIPE_STDOUT || index == PIPE_STDERR) && self->spec.on_output)
        self->spec.on_output (self->spec.on_output_arg, index == PIPE_STDERR, buffer, (size_t) got);
    if (index == PIPE_STDOUT)
        tako_sandbox_capture_append (&self->out, buffer, (size_t) got);
    else
    if (index == PIPE_STDERR)
        tako_sandbox_capture_append (&self->err, buffer, (size_t) got);
    else
    if (index == PIPE_ERROR)
        tako_sandbox_capture_append (&self->error_record, buffer, (size_t) got);
    else
    if (index == PIPE_READY)
        self->ready_seen = true;
    else
    if (index == PIPE_REPORT && got == sizeof (tako_sandbox_report_t)) {
        tako_sandbox_report_t record;
        memcpy (&record, buffer, sizeof (record));
        report_handle (self, &record);
    }
}

static void
job_write_some (tako_sandbox_t *self)
{
    int *fd = &self->pipes [PIPE_JOB].host;
    ssize_t done = write (*fd, self->job + self->job_written, self->job_size - self->job_written);
    if (done > 0)
        self->job_written += (size_t) done;
    else
    if (done < 0 && errno != EAGAIN && errno != EINTR)
        self->job_written = self->job_size;     //  the reaper is gone; nothing to send
    if (self->job_written == self->job_size)
        fd_close (fd);      //  the reaper sees EOF if it wants more
}

static bool
pump_done (tako_sandbox_t *self, pump_mode_t mode)
{
    if (self->state == STATE_BROKEN)
        return true;
    if (mode == PUMP_STARTUP)
        return self->ready_seen || self->pipes [PIPE_READY].host < 0 || self->report_closed;
    if (mode == PUMP_RUN)
        return self->report_closed;
    return self->pipes [PIPE_STDOUT].host < 0 && self->pipes [PIPE_STDERR].host < 0
        && self->pipes [PIPE_ERROR].host < 0;
}

//  Poll the pipes until mode's condition holds, the deadline passes
//  (returns 1), or cancel_fd becomes readable (returns 2). 0 when done.
static int
pump (tako_sandbox_t *self, pump_mode_t mode, int64_t deadline)
{
    static const int readers [] = { PIPE_REPORT, PIPE_STDOUT, PIPE_STDERR, PIPE_ERROR, PIPE_READY };
    while (!pump_done (self, mode)) {
        struct pollfd fds [8];
        int index [8];
        nfds_t count = 0;
        for (size_t i = 0; i < sizeof (readers) / sizeof (readers [0]); i++) {
            int which = readers [i];
            if (self->pipes [which].host < 0 || (which == PIPE_READY && mode != PUMP_STARTUP))
                continue;
            fds [count] = (struct pollfd) { self->pipes [which].host, POLLIN, 0 };
            index [count++] = which;
        }
        if (mode == PUMP_RUN && self->pipes [PIPE_JOB].host >= 0 && self->job_written < self->job_size) {
            fds [count] = (struct pollfd) { self->pipes [PIPE_JOB].host, POLLOUT, 0 };
            index [count++] = PIPE_JOB;
        }
        if (self->spec.cancel_fd >= 0 && mode != PUMP_DRAIN) {
            fds [count] = (struct pollfd) { self->spec.cancel_fd, POLLIN, 0 };
            index [count++] = -1;
        }
        int64_t left_ms = (deadline - now_ns () + NS_PER_MS - 1) / NS_PER_MS;
        if (left_ms <= 0)
            return 1;
        int ready = poll (fds, count, (int) (left_ms > 1000? 1000: left_ms));
        if (ready < 0 && errno != EINTR)
            return 1;
        for (nfds_t i = 0; ready > 0 && i < count; i++) {
            if (!fds [i].revents)
                continue;
            if (index [i] == -1)
                return 2;
            if (index [i] == PIPE_JOB)
                job_write_some (self);
            else
                pipe_read (self, index [i]);
        }
    }
    return 0;
}

//  The first process of the sandbox: cloned here, or by the zygote.
static pid_t
reaper_start (tako_sandbox_t *self)
{
    if (!self->spec.zygote) {
        pid_t pid = tako_sandbox_namespaces_clone (tako_sandbox_namespaces_flags (self->spec.network_enabled));
        if (pid == 0)
            child_run (self);
        return pid;
    }
    int fds [TAKO_SANDBOX_ZYGOTE_FDS_MAX];
    for (int i = 0; i < PIPE_COUNT; i++)
        fds [i] = self->pipes [i].sandbox;
    fds [PIPE_COUNT] = self->go_write;
    for (int i = 0; i < self->join_count; i++)
        fds [TAKO_SANDBOX_ZYGOTE_FDS + i] = self->join_fds [i];
    return tako_zygote_spawn (self->spec.zygote, fds,
                              TAKO_SANDBOX_ZYGOTE_FDS + (size_t) self->join_count);
}

static int
sandbox_start (tako_sandbox_t *self)
{
    const char *reason = NULL;
    if (self->spec.seccomp_enabled && !self->spec.zygote
    &&  tako_sandbox_seccomp_build (&self->seccomp, &reason) != 0) {
        error_set (self, "seccomp", reason);
        return -1;
    }
    char name [96];
    snprintf (name, sizeof (name), TAKO_SANDBOX_CGROUP_PREFIX "%d-%d-%lld", (int) getpid (), self->spec.slot,
              (long long) now_ns ());
    tako_sandbox_cgroup_limits_t limits = {
        self->spec.memory_limit_bytes, self->spec.cpu_limit, self->spec.pids_limit
    };
    self->cgroup = tako_sandbox_cgroup_new (name, &limits, &reason);
    if (!self->cgroup) {
        error_set (self, "cgroup", reason);
        return -1;
    }
    if (pipes_open (self) != 0) {
        error_set (self, "sandbox", "cannot create pipes");
        return -1;
    }
    self->join_count = tako_sandbox_cgroup_join_open (self->cgroup, self->join_fds);
    if (self->join_count < 0) {
        self->join_count = 0;
        error_set (self, "cgroup", "cannot open the group's tasks files");
        return -1;
    }
    self->reaper = reaper_start (self);
    if (self->reaper < 0) {
        error_set (self, self->spec.zygote? "zygote": "namespaces", strerror (errno));
        return -1;
    }
    for (int i = 0; i < PIPE_COUNT; i++)
        fd_close (&self->pipes [i].sandbox);
    fd_close (&self->go_write);
    joins_close (self);
    if (tako_sandbox_uidmap_write (self->reaper, self->spec.slot) != 0) {
        error_set (self, "uidmap", strerror (errno));
        return -1;
    }
    //  The reaper joins the v1 hierarchies itself (sandbox_cgroup.h).
    if (tako_sandbox_cgroup_attach_unjoined (self->cgroup, self->reaper) != 0) {
        error_set (self, "cgroup", "cannot move the sandbox into its cgroup");
        return -1;
    }
    for (int i = 0; i < PIPE_COUNT; i++)
        if (self->pipes [i].host >= 0)
            fcntl (self->pipes [i].host, F_SETFL, O_NONBLOCK);
    if (write (self->pipes [PIPE_SYNC].host, "S", 1) != 1) {
        error_set (self, "sandbox", "the sandbox died during setup");
        return -1;
    }
    fd_close (&self->pipes [PIPE_SYNC].host);
    return 0;
}

//  Under runsc: the cgroup and the OCI bundle; the container itself
//  starts with the job (sandbox_runsc).
static int
runsc_prepare (tako_sandbox_t *self)
{
    char name [96];
    snprintf (name, sizeof (name), TAKO_SANDBOX_CGROUP_PREFIX "%d-%d-%lld", (int) getpid (), self->spec.slot,
              (long long) now_ns ());
    tako_sandbox_cgroup_limits_t limits = {
        self->spec.memory_limit_bytes? self->spec.memory_limit_bytes + TAKO_SANDBOX_RUNSC_MEMORY_OVERHEAD: 0,
        self->spec.cpu_limit,
        self->spec.pids_limit? self->spec.pids_limit + TAKO_SANDBOX_RUNSC_PIDS_OVERHEAD: 0
    };
    const char *reason = NULL;
    self->cgroup = tako_sandbox_cgroup_new (name, &limits, &reason);
    if (!self->cgroup) {
        error_set (self, "cgroup", reason);
        return -1;
    }
    tako_sandbox_runsc_plan_t plan = {
        tako_sandbox_runtime_runsc_path (), &self->mounts, &self->rlimits, self->argv, self->envp,
        self->spec.max_total_artifacts_bytes, self->cgroup
    };
    if (!plan.runsc_path || !(self->runsc = tako_sandbox_runsc_new (&plan, &reason))) {
        error_set (self, "runsc", plan.runsc_path? reason: "the runsc binary disappeared");
        return -1;
    }
    self->output_fd = fcntl (tako_sandbox_runsc_output_fd (self->runsc), F_DUPFD_CLOEXEC, 0);
    if (self->output_fd < 0) {
        error_set (self, "runsc", "cannot open /output");
        return -1;
    }
    self->state = STATE_READY;
    return 0;
}

int
tako_sandbox_prepare (tako_sandbox_t *self)
{
    assert (self);
    if (self->state != STATE_NEW)
        return self->state == STATE_BROKEN? -1: 0;
    self->started_ns = now_ns ();
    if (!self->has_error && self->use_runsc)
        return runsc_prepare (self);
    if (self->has_error || sandbox_start (self) != 0) {
        self->state = STATE_BROKEN;
        reaper_end (self);
        return -1;
    }
    int rc = pump (self, PUMP_STARTUP, self->started_ns + self->spec.startup_timeout_ms * NS_PER_MS);
    self->ready_ns = now_ns ();
    if (self->state == STATE_BROKEN) {
        reaper_end (self);
        return -1;
    }
    if (rc == 0 && self->ready_seen && self->output_fd >= 0) {
        self->state = STATE_READY;
        return 0;
    }
    //  Not ready: a job-level outcome reported by run.
    if (rc == 1)
        self->timed_out = true;
    if (rc == 2)
        self->cancelled = true;
    reaper_end (self);
    self->state = STATE_STARTUP_ENDED;
    return 0;
}

pid_t
tako_sandbox_zygote_clone (tako_sandbox_t *self, const int *fds, size_t fd_count, void (*run) (void))
{
    assert (self);
    if (fd_count < TAKO_SANDBOX_ZYGOTE_FDS || fd_count > TAKO_SANDBOX_ZYGOTE_FDS_MAX
    ||  !run || self->has_error || self->use_runsc) {
        errno = EINVAL;
        return -1;
    }
    const char *reason = NULL;
    if (self->spec.seccomp_enabled && !self->seccomp.filter
    &&  tako_sandbox_seccomp_build (&self->seccomp, &reason) != 0) {
        errno = EINVAL;
        return -1;
    }
    int flags = tako_sandbox_namespaces_flags (self->spec.network_enabled) | CLONE_PARENT;
    pid_t pid = tako_sandbox_namespaces_clone (flags);
    if (pid == 0) {
        for (int i = 0; i < PIPE_COUNT; i++) {
            self->pipes [i].host = -1;
            self->pipes [i].sandbox = fds [i];
        }
        self->go_write = fds [PIPE_COUNT];
        self->join_count = (int) (fd_count - TAKO_SANDBOX_ZYGOTE_FDS);
        for (int i = 0; i < self->join_count; i++)
            self->join_fds [i] = fds [TAKO_SANDBOX_ZYGOTE_FDS + i];
        self->run_in_process = run;
        child_run (self);
    }
    return pid;
}

char *const *
tako_sandbox_envp (tako_sandbox_t *self)
{
    return self->envp;
}

bool
tako_sandbox_ready (tako_sandbox_t *self)
{
    return self->state == STATE_READY;
}

const char *
tako_sandbox_error (tako_sandbox_t *self)
{
    return self->has_error? self->error: NULL;
}

unsigned
tako_sandbox_host_uid (tako_sandbox_t *self)
{
    return (unsigned) tako_sandbox_uidmap_host_id (self->spec.slot);
}

size_t
tako_sandbox_artifact_count (tako_sandbox_t *self)
{
    return self->output.artifact_count;
}

const tako_sandbox_artifact_t *
tako_sandbox_artifact (tako_sandbox_t *self, size_t index)
{
    return index < self->output.artifact_count? &self->output.artifacts [index]: NULL;
}

//  ---------------------------------------------------------------------
//  Running

static int
job_build (tako_sandbox_t *self, const char *code, size_t code_size, const char *input, size_t input_size)
{
    tako_sandbox_job_header_t header = {
        TAKO_SANDBOX_JOB_MAGIC, (uint32_t) code_size, (uint64_t) input_size
    };
    self->job_size = sizeof (header) + code_size + input_size;
    self->job = malloc (self->job_size);
    if (!self->job)
        return -1;
    memcpy (self->job, &header, sizeof (header));
    memcpy (self->job + sizeof (header), code, code_size);
    memcpy (self->job + sizeof (header) + code_size, input, input_size);
    return 0;
}

static json_t *
json_text (const tako_sandbox_capture_t *capture)
{
    size_t size = 0;
    char *clean = tako_sandbox_utf8_sanitize (capture->data? capture->data: "", capture->size, &size);
    json_t *text = clean? json_stringn (clean, size): json_string ("");
    free (clean);
    return text;
}

static json_t *
error_object (const char *type, const char *message, const char *phase)
{
    return json_pack ("{s:s, s:s, s:s}", "type", type, "message", message, "phase", phase);
}

//  The bootstrap's {type, message}, validated; NULL if absent or invalid.
static json_t *
bootstrap_error (tako_sandbox_t *self)
{
    //  See sandbox_errors.h: a record is believed only after a failure.
    bool failed = self->have_exit && WIFEXITED (self->exit_status)
               && WEXITSTATUS (self->exit_status) != 0;
    if (!self->error_record.size || !failed)
        return NULL;
    json_t *record = json_loadb (self->error_record.data, self->error_record.size, 0, NULL);
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *message = json_string_value (json_object_get (record, "message"));
    json_t *error = NULL;
    if (type && message && tako_sandbox_error_type_from_exception (type)) {
        char clipped [ERROR_MESSAGE_MAX + 1];
        snprintf (clipped, sizeof (clipped), "%s", message);
        size_t size = 0;
        char *clean = tako_sandbox_utf8_sanitize (clipped, strlen (clipped), &size);
        error = error_object (type, clean? clean: "", "execution");
        free (clean);
    }
    json_decref (record);
    return error;
}

typedef struct {
    const char *status;
    json_t *error;
    json_t *exit_code;
    const char *phase_at_exit;
} outcome_t;

static void
outcome_decide (tako_sandbox_t *self, const tako_sandbox_cgroup_usage_t *usage, outcome_t *outcome)
{
    bool started = self->state == STATE_RAN && self->job_running;
    const char *phase = started? "execution": "startup";
    int killed_code = 128 + SIGKILL;
    json_t *reported = bootstrap_error (self);
    if (self->cancelled) {
        *outcome = (outcome_t) { "cancelled", error_object ("cancelled", "the job was cancelled", phase),
                                 json_integer (killed_code), phase };
    }
    else
    if (self->timed_out) {
        char message [128];
        int64_t limit = started? self->spec.timeout_ms: self->spec.startup_timeout_ms;
        snprintf (message, sizeof (message), "%s phase exceeded %lld ms", phase, (long long) limit);
        *outcome = (outcome_t) { "timeout",
            error_object (started? "execution_timeout": "startup_timeout", message, phase),
            json_integer (killed_code), phase };
    }
    else
    if (usage->oom_killed
    ||  (reported && strcmp (json_string_value (json_object_get (reported, "type")), "oom") == 0)) {
        char message [128];
        snprintf (message, sizeof (message), "memory limit of %lld MiB exceeded",
                  (long long) (self->spec.memory_limit_bytes / (1024 * 1024)));
        int code = self->have_exit && WIFEXITED (self->exit_status)? WEXITSTATUS (self->exit_status): killed_code;
        *outcome = (outcome_t) { "oom", error_object ("oom", message, phase), json_integer (code), phase };
    }
    else
    if (self->have_exit && WIFEXITED (self->exit_status) && WEXITSTATUS (self->exit_status) == 0 && started)
        *outcome = (outcome_t) { "succeeded", json_null (), json_integer (0), "completed" };
    else
    if (self->have_exit && WIFEXITED (self->exit_status)) {
        int code = WEXITSTATUS (self->exit_status);
        json_t *error = reported? json_incref (reported): NULL;
        if (!error) {
            char message [64];
            snprintf (message, sizeof (message), "exited with code %d", code);
            error = error_object ("runtime_error", message, phase);
        }
        json_object_set_new (error, "phase", json_string (phase));
        *outcome = (outcome_t) { "failed", error, json_integer (code), "failed" };
    }
    else
    if (self->have_exit && WIFSIGNALED (self->exit_status)) {
        int signal_number = WTERMSIG (self->exit_status);
        char message [64];
        snprintf (message, sizeof (message), "killed by signal %d (%s)", signal_number,
                  strsignal (signal_number));
        *outcome = (outcome_t) { "failed",
            error_object (tako_sandbox_error_for_signal (signal_number), message, phase),
            json_integer (128 + signal_number), "failed" };
    }
    else {
        //  How the sandbox's first process ended says where it stopped.
        char message [128];
        int status = self->reaper_status;
        snprintf (message, sizeof (message), "%s (its init %s %d%s)",
                  started? "the sandbox ended without an exit status": "the interpreter did not start",
                  !self->reaped? "still ran,": WIFSIGNALED (status)? "got signal": "exited with",
                  !self->reaped? 0: WIFSIGNALED (status)? WTERMSIG (status): WEXITSTATUS (status),
                  self->killed? ", after our SIGKILL": "");
        *outcome = (outcome_t) { "failed",
            error_object (started? "killed": "internal_error", message, phase),
            json_null (), started? "execution": "startup" };
    }
    json_decref (reported);
}

static json_t *
artifacts_json (tako_sandbox_t *self)
{
    json_t *list = json_array ();
    for (size_t i = 0; i < self->output.artifact_count; i++) {
        const tako_sandbox_artifact_t *artifact = &self->output.artifacts [i];
        size_t size = 0;
        char *name = tako_sandbox_utf8_sanitize (artifact->name, strlen (artifact->name), &size);
        json_array_append_new (list, json_pack ("{s:s%, s:I, s:s, s:s}",
            "name", name? name: "", size, "size_bytes", (json_int_t) artifact->size,
            "sha256", artifact->sha256, "content_type", artifact->content_type));
        free (name);
    }
    return list;
}

//  result.json: parsed; when it is not valid JSON the run is kept, output
//  is null and *error says why (unless the job already has an error).
static json_t *
output_json (tako_sandbox_t *self, json_t **error)
{
    if (!self->output.result_present)
        return json_null ();
    char message [ERROR_MESSAGE_MAX];
    json_t *output = NULL;
    if (self->output.result_too_big)
        snprintf (message, sizeof (message), "result.json is larger than %lld bytes",
                  (long long) self->spec.max_artifact_bytes);
    else {
        json_error_t problem;
        output = json_loadb (self->output.result, self->output.result_size,
                             JSON_DECODE_ANY | JSON_ALLOW_NUL, &problem);
        snprintf (message, sizeof (message), "result.json is not valid JSON: %s (line %d)",
                  problem.text, problem.line);
    }
    if (output)
        return output;
    if (json_is_null (*error)) {
        json_decref (*error);
        size_t size = 0;
        char *clean = tako_sandbox_utf8_sanitize (message, strlen (message), &size);
        *error = error_object ("json_error", clean? clean: "result.json is not valid JSON", "execution");
        free (clean);
    }
    return json_null ();
}

static json_t *
result_build (tako_sandbox_t *self)
{
    tako_sandbox_cgroup_usage_t usage = { 0 };
    if (self->cgroup)
        tako_sandbox_cgroup_usage (self->cgroup, &usage);
    outcome_t outcome;
    outcome_decide (self, &usage, &outcome);
    json_t *output = output_json (self, &outcome.error);

    int64_t startup_ms = self->warm && !self->use_runsc? 0: (self->ready_ns - self->started_ns) / NS_PER_MS;
    int64_t execution_ms = self->handover_ns? (self->ended_ns - self->handover_ns) / NS_PER_MS: 0;
    int64_t cpu_ms = usage.have_cpu? usage.cpu_usec / 1000
                   : (int64_t) self->reaper_usage.ru_utime.tv_sec * 1000 + self->reaper_usage.ru_utime.tv_usec / 1000
                   + (int64_t) self->reaper_usage.ru_stime.tv_sec * 1000 + self->reaper_usage.ru_stime.tv_usec / 1000;
    double rss_mb = usage.have_peak? (double) usage.peak_bytes / (1024.0 * 1024.0)
                  : (double) self->reaper_usage.ru_maxrss / 1024.0;
    json_t *result = json_object ();
    json_object_set_new (result, "status", json_string (outcome.status));
    json_object_set_new (result, "exit_code", outcome.exit_code);
    json_object_set_new (result, "stdout", json_text (&self->out));
    json_object_set_new (result, "stderr", json_text (&self->err));
    json_object_set_new (result, "stdout_truncated", json_boolean (self->out.truncated));
    json_object_set_new (result, "stderr_truncated", json_boolean (self->err.truncated));
    json_object_set_new (result, "output", output);
    json_object_set_new (result, "error", outcome.error);
    json_object_set_new (result, "artifacts", artifacts_json (self));
    json_object_set_new (result, "timing", json_pack ("{s:I, s:I, s:I, s:I, s:s, s:b}",
        "startup_ms", (json_int_t) startup_ms, "dep_install_ms", (json_int_t) 0,
        "execution_ms", (json_int_t) execution_ms,
        "total_ms", (json_int_t) (startup_ms + execution_ms), "phase_at_exit", outcome.phase_at_exit,
        "warm", self->warm));
    json_object_set_new (result, "resource_usage", json_pack ("{s:f, s:I, s:I}",
        "max_rss_mb", (double) ((int64_t) (rss_mb * 100)) / 100.0, "cpu_time_ms", (json_int_t) cpu_ms,
        "wall_time_ms", (json_int_t) execution_ms));
    json_object_set_new (result, "code_hash", self->code_hash? json_string (self->code_hash): json_null ());
    json_object_set_new (result, "input_hash", self->input_hash? json_string (self->input_hash): json_null ());
    return result;
}

//  After the reaper is gone: wait for the tree, drain, collect, clean.
static void
run_finish (tako_sandbox_t *self)
{
    reaper_end (self);
    pump (self, PUMP_DRAIN, now_ns () + TAKO_SANDBOX_DRAIN_MS * NS_PER_MS);
    self->ended_ns = self->ended_ns? self->ended_ns: now_ns ();
    if (self->output_fd >= 0) {
        tako_sandbox_output_limits_t limits = {
            self->spec.max_artifact_bytes, self->spec.max_total_artifacts_bytes
        };
        tako_sandbox_output_collect (self->output_fd, &limits, &self->output);
        fd_close (&self->output_fd);
    }
}

int
tako_sandbox_limit (tako_sandbox_t *self, int64_t timeout_ms, int cancel_fd)
{
    assert (self);
    if (self->state != STATE_READY || timeout_ms <= 0 || timeout_ms > self->spec.timeout_ms)
        return -1;
    self->spec.timeout_ms = timeout_ms;
    self->spec.cancel_fd = cancel_fd;
    return 0;
}

int
tako_sandbox_assign (tako_sandbox_t *self, int64_t timeout_ms, int cancel_fd)
{
    if (tako_sandbox_limit (self, timeout_ms, cancel_fd) != 0)
        return -1;
    self->warm = true;
    return 0;
}

int64_t
tako_sandbox_memory_bytes (tako_sandbox_t *self)
{
    assert (self);
    tako_sandbox_cgroup_usage_t usage = { 0 };
    if (self->cgroup)
        tako_sandbox_cgroup_usage (self->cgroup, &usage);
    return usage.have_peak? usage.peak_bytes: 0;
}

void
tako_sandbox_on_output (tako_sandbox_t *self, tako_sandbox_output_fn *on_output, void *arg)
{
    assert (self);
    self->spec.on_output = on_output;
    self->spec.on_output_arg = arg;
}

//  Under runsc: start-up and execution happen here, with the same
//  timeouts, captures and result as the native sandbox.
static json_t *
runsc_run (tako_sandbox_t *self, const char *code, size_t code_size, const char *input, size_t input_size)
{
    tako_sandbox_runsc_run_t run = {
        .out = &self->out, .err = &self->err, .error_record = &self->error_record,
        .on_output = self->spec.on_output, .on_output_arg = self->spec.on_output_arg,
        .cancel_fd = self->spec.cancel_fd,
        .startup_timeout_ms = self->spec.startup_timeout_ms, .timeout_ms = self->spec.timeout_ms,
    };
    const char *reason = NULL;
    self->started_ns = now_ns ();
    if (tako_sandbox_runsc_run (self->runsc, code, code_size, input, input_size, &run, &reason) != 0) {
        error_set (self, "runsc", reason);
        return NULL;
    }
    self->ready_seen = run.ready_seen;
    self->job_running = run.job_running;
    self->have_exit = run.have_exit;
    self->exit_status = run.exit_status;
    self->timed_out = run.timed_out;
    self->cancelled = run.cancelled;
    self->ready_ns = run.ready_ns;
    self->handover_ns = run.handover_ns;
    self->ended_ns = run.ended_ns;
    run_finish (self);
    return result_build (self);
}

json_t *
tako_sandbox_run (tako_sandbox_t *self, const char *code, size_t code_size, const char *input_json)
{
    assert (self);
    if (self->state == STATE_NEW && tako_sandbox_prepare (self) != 0)
        return NULL;
    if (self->state == STATE_BROKEN || self->state == STATE_RAN)
        return NULL;
    const char *input = input_json? input_json: "{}";
    size_t input_size = strlen (input);
    self->code_hash = tako_sha256_hex (code? code: "", code? code_size: 0);
    self->input_hash = tako_sha256_hex (input, input_size);
    if (self->state == STATE_STARTUP_ENDED) {
        run_finish (self);
        return result_build (self);
    }
    if ((int64_t) code_size > self->spec.max_code_bytes || (int64_t) input_size > self->spec.max_input_bytes) {
        error_set (self, "job", "code or input exceeds its size limit");
        return NULL;
    }
    if (job_build (self, code? code: "", code? code_size: 0, input, input_size) != 0) {
        error_set (self, "job", "out of memory");
        return NULL;
    }
    self->state = STATE_RAN;
    if (self->use_runsc)
        return runsc_run (self, code? code: "", code? code_size: 0, input, input_size);
    self->handover_ns = now_ns ();
    int rc = pump (self, PUMP_RUN, self->handover_ns + self->spec.timeout_ms * NS_PER_MS);
    self->ended_ns = now_ns ();
    if (rc == 1)
        self->timed_out = true;
    if (rc == 2)
        self->cancelled = true;
    if (self->has_error) {
        reaper_end (self);
        return NULL;
    }
    run_finish (self);
    return result_build (self);
}

json_t *
tako_sandbox_execute (const tako_sandbox_spec_t *spec, char **error)
{
    *error = NULL;
    tako_sandbox_t *sandbox = tako_sandbox_new (spec);
    if (!sandbox) {
        *error = strdup ("sandbox: invalid specification");
        return NULL;
    }
    json_t *result = NULL;
    if (tako_sandbox_prepare (sandbox) == 0)
        result = tako_sandbox_run (sandbox, spec->code, spec->code_size, spec->input_json);
    if (!result)
        *error = strdup (tako_sandbox_error (sandbox)? tako_sandbox_error (sandbox): "sandbox: failed");
    tako_sandbox_destroy (&sandbox);
    return result;
}

//  ---------------------------------------------------------------------

void
tako_sandbox_test (bool verbose)
{
    (void) verbose;
    tako_sandbox_spec_t spec;
    tako_sandbox_spec_defaults (&spec);
    spec.slot = 60000 + getpid () % 5000;
    spec.timeout_ms = 20000;
    tako_sandbox_t *sandbox = tako_sandbox_new (&spec);
    assert (sandbox);
    int rc = tako_sandbox_prepare (sandbox);
    if (rc != 0)
        fprintf (stderr, "tako_sandbox_test: %s\n", tako_sandbox_error (sandbox));
    assert (rc == 0);
    assert (tako_sandbox_ready (sandbox));
    const char *code = "import json\nprint(1+1)\nopen('/output/a.txt','w').write('hi')\n";
    json_t *result = tako_sandbox_run (sandbox, code, strlen (code), "{\"x\": 1}");
    assert (result);
    assert (strcmp (json_string_value (json_object_get (result, "status")), "succeeded") == 0);
    assert (strcmp (json_string_value (json_object_get (result, "stdout")), "2\n") == 0);
    assert (json_integer_value (json_object_get (result, "exit_code")) == 0);
    assert (json_is_null (json_object_get (result, "error")));
    assert (tako_sandbox_artifact_count (sandbox) == 1);
    assert (tako_sandbox_artifact (sandbox, 0)->size == 2);
    json_decref (result);
    //  One job per sandbox.
    assert (tako_sandbox_run (sandbox, code, strlen (code), NULL) == NULL);
    tako_sandbox_destroy (&sandbox);
    tako_sandbox_destroy (&sandbox);
    assert (sandbox == NULL);
}
