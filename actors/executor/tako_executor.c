/*  tako_executor — the executor actor. See tako_executor.h.

    One thread owns the broker connection and every job's bookkeeping; each
    job slot has a worker thread of its own (a zactor, started with the
    executor and kept: a thread, its sockets and its event-hub connection
    are not made again for every job) that builds the sandbox, runs the job
    and answers DONE. The job's struct is handed to the worker with JOB
    and handed back by DONE: the two threads never touch it at the same
    time, except the cancel eventfd, which is made for that. A sandbox's
    parent-death signal follows the worker that cloned it.              */

#include <inttypes.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>
#include "tako_executor.h"
#include "sandbox_runtime.h"
#include "tako_events.h"
#include "sandbox_output.h"
#include "tako_warmpool.h"
#include "tako_jobenv.h"
#include "sandbox_uidmap.h"
#include "tako_log.h"
#include "tako_msg.h"
#include "tako_version.h"

#define LOG "executor"

//  Characters of "job_id#attempt".
#define JOB_KEY_MAX       (TAKO_PROTO_ADDRESS_MAX + 32)
//  "2026-11-22T08:00:00.123Z" plus NUL.
#define TIMESTAMP_SIZE    32

typedef struct {
    char key [JOB_KEY_MAX];         //  job_id#attempt
    char *job_id;
    int64_t attempt;
    char *lease_id;
    int64_t lease_ms;
    char *dispatcher;               //  instance id of the scheduler that sent it
    char *job_type;
    char *job_ref;
    char **requirements;            //  the job's own, NULL-terminated
    size_t requirement_count;
    char *code;
    size_t code_size;
    char *input_json;
    int64_t timeout_ms;
    int64_t startup_timeout_ms;
    int slot;
    int warm_slot;                  //  uid slot of a warm sandbox, or -1
    int cancel_fd;                  //  eventfd: readable = cancel
    atomic_bool cancel_flag;        //  set with cancel_fd (stops a build)
    bool cancelled;
    int64_t next_beat;              //  monotonic ms of the next JOB_HEARTBEAT
    tako_config_t *config;          //  borrowed
    zactor_t *thread;               //  its slot's worker, borrowed
    bool running;                   //  handed to the worker, no DONE yet
    //  Written by the job thread, read after DONE:
    json_t *result;                 //  NULL when the sandbox failed
    char *failure;                  //  "layer: reason" when it failed
    tako_jobenv_t env;              //  its environment; error_type set when
                                    //  it could not be had
    tako_sandbox_t *sandbox;        //  prepared ahead (warm) when set at
                                    //  dispatch; kept for its artifacts
                                    //  until reported
    tako_zygote_t *zygote;          //  no warm sandbox was ready, but the
                                    //  type's zygote can clone one now
    char started_at [TIMESTAMP_SIZE];
    char ended_at [TIMESTAMP_SIZE];
    int64_t wall_started;           //  realtime ms
    int64_t wall_ended;
    //  Output streamed to the event hub while the job runs (job thread).
    tako_events_t *events;
    int output_events;
    int64_t output_bytes;
} job_t;

//  A finished attempt whose RESULT is not acknowledged yet: the messages
//  to send again (ARTIFACTs first, RESULT last).
typedef struct {
    char key [JOB_KEY_MAX];
    zlist_t *messages;              //  of tako_msg_t *
    int64_t next_send;
} pending_t;

typedef struct {
    zsock_t *pipe;
    tako_config_t *config;
    tako_peer_t *peer;
    zsock_t *peer_socket;           //  as last added to the poller
    zpoller_t *poller;
    const char *result_service;
    int slots;
    int slot_base;
    bool *slot_used;
    zactor_t **workers;             //  one per slot
    zhashx_t *jobs;                 //  key → job_t *, running
    zhashx_t *pending;              //  key → pending_t *, unacknowledged
    tako_warmpool_t *warm;          //  NULL when no job type has a warm pool
    int64_t next_ready;
    int64_t next_warm_tick;
    bool terminated;
} executor_t;

//  --------------------------------------------------------------------------
//  Time

static int64_t
now_wall_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void
timestamp_format (int64_t wall_ms, char *buffer)
{
    time_t seconds = (time_t) (wall_ms / 1000);
    struct tm utc;
    gmtime_r (&seconds, &utc);
    char date [24];
    strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf (buffer, TIMESTAMP_SIZE, "%s.%03dZ", date, (int) (wall_ms % 1000));
}

//  --------------------------------------------------------------------------
//  Sandbox spec

int
tako_executor_spec_from_config (tako_sandbox_spec_t *spec, const tako_config_t *config,
                                const tako_config_job_type_t *job_type,
                                tako_sandbox_env_t **env_p)
{
    tako_sandbox_spec_defaults (spec);
    spec->timeout_ms = (int64_t) job_type->timeout * 1000;
    spec->startup_timeout_ms = (int64_t) job_type->startup_timeout * 1000;
    spec->memory_limit_bytes = job_type->memory_limit;
    spec->cpu_limit = job_type->cpu_limit;
    spec->pids_limit = config->container_limits.pids_limit;
    spec->nofile_soft = config->container_limits.nofile_soft;
    spec->nofile_hard = config->container_limits.nofile_hard;
    spec->nproc_soft = config->container_limits.nproc_soft;
    spec->nproc_hard = config->container_limits.nproc_hard;
    spec->fsize_bytes = config->container_limits.fsize;
    spec->tmpfs_size_bytes = config->container_limits.tmpfs_size;
    spec->max_total_artifacts_bytes = config->max_total_artifacts_bytes;
    spec->max_artifact_bytes = config->max_artifact_bytes;
    spec->max_stdout_bytes = config->max_stdout_bytes;
    spec->max_stderr_bytes = config->max_stderr_bytes;
    spec->max_code_bytes = config->max_code_bytes;
    spec->max_input_bytes = config->max_input_bytes;
    spec->network_enabled = job_type->network_enabled;
    spec->system_packages = job_type->use_system_packages;
    spec->seccomp_enabled = config->enable_seccomp;
    spec->runtime_runsc = config->container_runtime == TAKO_RUNTIME_RUNSC;
    spec->runtime_strict = config->security_mode == TAKO_SECURITY_STRICT;
    spec->python_path = config->sandbox_python && *config->sandbox_python
                      ? config->sandbox_python: NULL;
    spec->rootfs = job_type->base && *job_type->base? job_type->base
                 : config->sandbox_rootfs && *config->sandbox_rootfs? config->sandbox_rootfs: NULL;

    tako_sandbox_env_t *env = calloc (job_type->environment_count + 1, sizeof (tako_sandbox_env_t));
    if (!env)
        return -1;
    for (size_t i = 0; i < job_type->environment_count; i++)
        env [i] = (tako_sandbox_env_t) { job_type->environment [i].name,
                                         job_type->environment [i].value };
    spec->env = env;
    spec->env_count = job_type->environment_count;
    *env_p = env;
    return 0;
}

//  --------------------------------------------------------------------------
//  Jobs

static void
job_destroy (job_t **self_p)
{
    job_t *self = *self_p;
    if (!self)
        return;
    if (self->running) {
        //  A worker that never gave it back (at stop, see workers_stop)
        //  may still touch it: left as it is.
        *self_p = NULL;
        return;
    }
    tako_sandbox_destroy (&self->sandbox);
    tako_zygote_destroy (&self->zygote);
    json_decref (self->result);
    if (self->cancel_fd >= 0)
        close (self->cancel_fd);
    free (self->job_id);
    free (self->lease_id);
    free (self->dispatcher);
    free (self->job_type);
    free (self->job_ref);
    for (size_t i = 0; i < self->requirement_count; i++)
        free (self->requirements [i]);
    free (self->requirements);
    tako_jobenv_clear (&self->env);
    free (self->code);
    free (self->input_json);
    free (self->failure);
    free (self);
    *self_p = NULL;
}

static char *
strdup_or_null (const char *text)
{
    return text? strdup (text): NULL;
}

static int64_t
clamp (int64_t value, int64_t low, int64_t high)
{
    return value < low? low: value > high? high: value;
}

//  A job from a DISPATCH, or NULL when the message is unusable.
static job_t *
job_from_dispatch (executor_t *self, tako_msg_t *msg)
{
    job_t *job = calloc (1, sizeof (job_t));
    if (!job)
        return NULL;
    job->cancel_fd = -1;
    job->warm_slot = -1;
    job->config = self->config;
    job->job_id = strdup (tako_msg_str (msg, "job_id"));
    job->attempt = tako_msg_int (msg, "attempt", 1);
    job->lease_id = strdup (tako_msg_str (msg, "lease_id"));
    job->lease_ms = clamp (tako_msg_int (msg, "lease_ms", 0),
                           TAKO_EXECUTOR_LEASE_MIN_MS, TAKO_EXECUTOR_LEASE_MAX_MS);
    job->dispatcher = strdup (tako_msg_address (msg));
    job->job_type = strdup (tako_msg_str (msg, "job_type"));
    job->job_ref = strdup_or_null (tako_msg_str (msg, "job_ref"));
    size_t count = 0;
    const char *const *requirements = tako_msg_strlist (msg, "requirements", &count);
    job->requirements = calloc (count + 1, sizeof (char *));
    for (size_t i = 0; job->requirements && i < count; i++)
        if ((job->requirements [i] = strdup (requirements [i])))
            job->requirement_count++;
    job->code = strdup (tako_msg_str (msg, "code"));
    job->code_size = job->code? strlen (job->code): 0;
    job->input_json = json_dumps (tako_msg_object (msg, "input_data"), JSON_COMPACT | JSON_ENCODE_ANY);
    job->timeout_ms = clamp (tako_msg_int (msg, "timeout", 0), 1, self->config->max_timeout) * 1000;
    job->startup_timeout_ms = clamp (tako_msg_int (msg, "startup_timeout", 0), 1,
                                     self->config->max_startup_timeout) * 1000;
    job->cancel_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    snprintf (job->key, sizeof job->key, "%s#%" PRId64, job->job_id? job->job_id: "", job->attempt);
    if (!job->job_id || !job->lease_id || !job->dispatcher || !job->job_type
    ||  !job->code || !job->input_json || job->cancel_fd < 0
    ||  !job->requirements || job->requirement_count != count)
        job_destroy (&job);
    return job;
}

//  In the job's thread, as output comes: publish it on the event hub
//  (kind "output", seq 0: outside the scheduler's numbered transitions),
//  until the job has streamed as much as its capture keeps or
//  TAKO_EXECUTOR_OUTPUT_EVENTS_MAX events. The result still carries all
//  of it; watchers only see it sooner.
static void
job_output (void *arg, bool is_stderr, const char *data, size_t size)
{
    job_t *job = (job_t *) arg;
    int64_t cap = is_stderr? job->config->max_stderr_bytes: job->config->max_stdout_bytes;
    if (!job->events || job->output_events >= TAKO_EXECUTOR_OUTPUT_EVENTS_MAX
    ||  job->output_bytes >= 2 * cap)
        return;
    job->output_events++;
    job->output_bytes += (int64_t) size;
    size_t clean_size = 0;
    char *clean = tako_sandbox_utf8_sanitize (data, size, &clean_size);
    tako_msg_t *event = tako_msg_new ("EVENT");
    if (clean && event) {
        tako_msg_set_str (event, "job_id", job->job_id);
        tako_msg_set_int (event, "seq", 0);
        tako_msg_set_str (event, "status", "running");
        tako_msg_set_str (event, "kind", "output");
        tako_msg_set_int (event, "attempt", job->attempt);
        json_t *payload = json_pack ("{s:s, s:s%}", "stream", is_stderr? "stderr": "stdout",
                                     "text", clean, clean_size);
        if (payload)
            tako_msg_set_object (event, "data", payload);
        json_decref (payload);
        tako_events_publish (job->events, &event);
    }
    tako_msg_destroy (&event);
    free (clean);
}

//  Installing the requirements is part of the start-up: dep_install_ms,
//  and in startup_ms and total_ms.
static void
timing_add_install (json_t *result, int64_t install_ms)
{
    json_t *timing = json_object_get (result, "timing");
    static const char *added [] = { "startup_ms", "total_ms" };
    for (size_t i = 0; i < 2; i++) {
        json_t *value = json_object_get (timing, added [i]);
        if (json_is_integer (value))
            json_integer_set (value, json_integer_value (value) + install_ms);
    }
    json_object_set_new (timing, "dep_install_ms", json_integer (install_ms));
}

//  The result of a job whose environment could not be had for a reason
//  of its own (a requirement pip cannot satisfy, an unbuilt environment
//  in production_mode...): failed in start-up, not retried.
static json_t *
result_from_env_error (job_t *job)
{
    int64_t install_ms = job->env.build_ms;
    json_t *error = json_pack ("{s:s, s:s, s:s}", "type", job->env.error_type,
                               "message", job->env.reason, "phase", "startup");
    json_t *result = json_pack ("{s:s, s:n, s:s, s:s, s:b, s:b, s:n, s:o, s:[], s:{s:I, s:I, s:I, s:I, s:s, s:b}}",
        "status", streq (job->env.error_type, TAKO_JOBENV_STARTUP_TIMEOUT)? "timeout": "failed",
        "exit_code", "stdout", "", "stderr", "",
        "stdout_truncated", false, "stderr_truncated", false, "output",
        "error", error, "artifacts",
        "timing", "startup_ms", (json_int_t) install_ms, "dep_install_ms", (json_int_t) install_ms,
        "execution_ms", (json_int_t) 0, "total_ms", (json_int_t) install_ms,
        "phase_at_exit", "startup", "warm", false);
    return result;
}

//  A job that found no warm sandbox but whose type has a zygote: the
//  spec the zygote was made from (the warm pool's: the longest timeout,
//  the type's preload), so the zygote clones its sandbox; the job's own
//  timeout is set once it is ready (tako_sandbox_limit). When the specs
//  differ after all, the sandbox starts its own interpreter.
static void
job_zygote_spec (job_t *job, const tako_config_job_type_t *job_type, tako_sandbox_spec_t *spec)
{
    tako_sandbox_spec_t forked = *spec;
    tako_warmpool_spec_warm (job->config, job_type, &forked);
    if (forked.timeout_ms >= job->timeout_ms && tako_zygote_matches (job->zygote, &forked)) {
        forked.startup_timeout_ms = spec->startup_timeout_ms;
        forked.zygote = job->zygote;
        *spec = forked;
    }
}

//  In the job's thread: build the sandbox and run the job.
static void
job_execute (job_t *job)
{
    job->wall_started = now_wall_ms ();
    timestamp_format (job->wall_started, job->started_at);
    const tako_config_job_type_t *job_type = tako_config_job_type (job->config, job->job_type);
    if (!job_type) {
        job->failure = strdup ("config: unknown job type");
        goto done;
    }
    if (job->sandbox && tako_sandbox_assign (job->sandbox, job->timeout_ms, job->cancel_fd) == 0) {
        tako_sandbox_on_output (job->sandbox, job_output, job);
        job->result = tako_sandbox_run (job->sandbox, job->code, job->code_size, job->input_json);
        if (!job->result)
            job->failure = strdup (tako_sandbox_error (job->sandbox)?: "sandbox: run failed");
        goto done;
    }
    //  Not warm (or the warm one would not take this job): start cold,
    //  with the job's environment (built now if it must be).
    tako_sandbox_destroy (&job->sandbox);
    int startup_s = (int) ((job->startup_timeout_ms + 999) / 1000);
    if (tako_jobenv_resolve (&job->env, job->config, job_type,
                             (const char *const *) job->requirements, job->requirement_count,
                             job->job_ref, startup_s, &job->cancel_flag) != 0) {
        if (!job->env.user_error)
            job->failure = zsys_sprintf ("environment: %s: %s", job->env.error_type, job->env.reason);
        goto done;
    }
    tako_sandbox_spec_t spec;
    tako_sandbox_env_t *env = NULL;
    if (tako_executor_spec_from_config (&spec, job->config, job_type, &env) != 0
    ||  tako_jobenv_apply (&job->env, job_type, &spec) != 0) {
        job->failure = zsys_sprintf ("environment: %s", job->env.reason? job->env.reason: "out of memory");
        free (env);
        goto done;
    }
    spec.timeout_ms = job->timeout_ms;
    //  What the build took is gone from the start-up's allowance.
    spec.startup_timeout_ms = job->startup_timeout_ms - job->env.build_ms;
    if (spec.startup_timeout_ms < 1000)
        spec.startup_timeout_ms = 1000;
    spec.slot = job->slot;
    spec.cancel_fd = job->cancel_fd;
    spec.code = job->code;
    spec.code_size = job->code_size;
    spec.input_json = job->input_json;
    spec.on_output = job_output;
    spec.on_output_arg = job;
    tako_sandbox_spec_t exec_spec = spec;
    if (job->zygote)
        job_zygote_spec (job, job_type, &spec);
    job->sandbox = tako_sandbox_new (&spec);
    if (job->sandbox && spec.zygote && tako_sandbox_prepare (job->sandbox) != 0
    &&  !tako_zygote_alive (spec.zygote)) {
        //  The zygote died (the warm pool starts another): this job starts
        //  its own interpreter rather than fail.
        tako_warning (LOG, "job %s: the zygote is gone, starting cold", job->key);
        tako_sandbox_destroy (&job->sandbox);
        spec = exec_spec;
        job->sandbox = tako_sandbox_new (&spec);
    }
    if (!job->sandbox)
        job->failure = strdup ("sandbox: invalid job specification");
    else
    if (tako_sandbox_prepare (job->sandbox) != 0)
        job->failure = strdup (tako_sandbox_error (job->sandbox)?: "sandbox: prepare failed");
    else
    if (spec.zygote && tako_sandbox_ready (job->sandbox)
    &&  tako_sandbox_limit (job->sandbox, job->timeout_ms, job->cancel_fd) != 0)
        job->failure = strdup ("sandbox: cannot set the job's timeout");
    else {
        job->result = tako_sandbox_run (job->sandbox, job->code, job->code_size, job->input_json);
        if (!job->result)
            job->failure = strdup (tako_sandbox_error (job->sandbox)?: "sandbox: run failed");
    }
    free (env);
    if (job->result && job->env.build_ms > 0)
        timing_add_install (job->result, job->env.build_ms);
done:
    if (!job->result && !job->failure && job->env.error_type)
        job->result = result_from_env_error (job);
    job->wall_ended = now_wall_ms ();
    timestamp_format (job->wall_ended, job->ended_at);
}

//  A slot's worker: runs the jobs it is handed, one at a time, with its
//  own connection to the event hub for their output.
//      executor -> worker   "JOB" job        (picture "sp")
//      worker -> executor   "DONE" job
static void
worker_actor (zsock_t *pipe, void *args)
{
    tako_config_t *config = (tako_config_t *) args;
    tako_events_t *events = tako_events_new_publisher (config->event_publish_endpoint);
    zsock_signal (pipe, 0);
    while (true) {
        char *command = NULL;
        void *pointer = NULL;
        if (zsock_recv (pipe, "sp", &command, &pointer) != 0 || !command)
            break;
        bool stop = streq (command, "$TERM");
        if (streq (command, "JOB") && pointer) {
            job_t *job = (job_t *) pointer;
            job->events = events;
            job_execute (job);
            job->events = NULL;
            zsock_send (pipe, "sp", "DONE", job);
        }
        free (command);
        if (stop)
            break;
    }
    tako_events_destroy (&events);
}

//  --------------------------------------------------------------------------
//  Messages out

static void
executor_send (executor_t *self, tako_msg_t *msg, const char *to)
{
    if (!msg)
        return;
    if (tako_msg_set_address (msg, to) != 0
    ||  tako_peer_send (self->peer, &msg) != 0)
        tako_warning (LOG, "could not send to %s", to);
    tako_msg_destroy (&msg);
}

static int
free_slots (executor_t *self)
{
    int free_count = 0;
    for (int i = 0; i < self->slots; i++)
        free_count += !self->slot_used [i];
    return free_count;
}

static void
executor_announce (executor_t *self)
{
    tako_msg_t *msg = tako_msg_new ("READY");
    if (msg) {
        tako_msg_set_str (msg, "instance", tako_peer_instance (self->peer));
        tako_msg_set_int (msg, "slots", free_slots (self));
        if (self->warm) {
            tako_msg_set_int (msg, "warm_ready", (int64_t) tako_warmpool_ready (self->warm));
            tako_msg_set_int (msg, "warm_memory_bytes", tako_warmpool_memory (self->warm));
        }
    }
    executor_send (self, msg, self->result_service);
    self->next_ready = zclock_mono () + TAKO_EXECUTOR_READY_EVERY_MS;
}

static tako_msg_t *
job_message (job_t *job, const char *command)
{
    tako_msg_t *msg = tako_msg_new (command);
    if (msg) {
        tako_msg_set_str (msg, "job_id", job->job_id);
        tako_msg_set_int (msg, "attempt", job->attempt);
        tako_msg_set_str (msg, "lease_id", job->lease_id);
    }
    return msg;
}

static void
job_send_heartbeat (executor_t *self, job_t *job)
{
    //  To the service, not the dispatching instance: after a scheduler
    //  restart the new instance must hear that the job is still alive.
    executor_send (self, job_message (job, "JOB_HEARTBEAT"), self->result_service);
    job->next_beat = zclock_mono () + job->lease_ms / 3;
}

//  Copy a result field of the sandbox's JSON into the message.
static void
result_copy (tako_msg_t *msg, json_t *result, const char *name)
{
    json_t *value = json_object_get (result, name);
    if (!value || json_is_null (value))
        return;
    if (json_is_string (value))
        tako_msg_set_str (msg, name, json_string_value (value));
    else
    if (json_is_boolean (value))
        tako_msg_set_bool (msg, name, json_is_true (value));
    else
    if (json_is_integer (value))
        tako_msg_set_int (msg, name, json_integer_value (value));
    else
        tako_msg_set_object (msg, name, value);
}

static const char *result_fields [] = {
    "status", "exit_code", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
    "output", "error", "timing", "resource_usage", "artifacts", "code_hash", "input_hash",
    NULL
};

//  The RESULT of an attempt whose sandbox could not be built: an
//  infrastructure failure the scheduler retries. Only the layer's name
//  reaches the client; the full reason is in our log.
static void
result_set_failure (tako_msg_t *msg, job_t *job)
{
    char layer [64];
    snprintf (layer, sizeof layer, "%s", job->failure);
    char *colon = strchr (layer, ':');
    if (colon)
        *colon = '\0';
    char message [128];
    snprintf (message, sizeof message, "sandbox could not be started (%s)", layer);
    bool user_error = streq (layer, "config");
    json_t *error = json_pack ("{s:s, s:s, s:s}", "type", user_error? "config_error": "internal_error",
                               "message", message, "phase", "startup");
    tako_msg_set_str (msg, "status", "failed");
    tako_msg_set_bool (msg, "retryable", !user_error);
    tako_msg_set_object (msg, "error", error);
    json_decref (error);
    tako_warning (LOG, "job %s: %s", job->key, job->failure);
}

//  A result whose interpreter never became ready without a reason of the
//  job's (no timeout, no exit code, no exception: internal_error in
//  start-up) failed on our side: none of the job's code ran, so it is an
//  infrastructure failure the scheduler retries, not the job's outcome.
static bool
result_is_ours (json_t *result)
{
    json_t *error = json_object_get (result, "error");
    const char *type = json_string_value (json_object_get (error, "type"));
    const char *phase = json_string_value (json_object_get (error, "phase"));
    return type && phase && streq (type, "internal_error") && streq (phase, "startup");
}

static tako_msg_t *
job_result_message (job_t *job)
{
    tako_msg_t *msg = job_message (job, "RESULT");
    if (!msg)
        return NULL;
    if (job->result) {
        for (const char **field = result_fields; *field; field++)
            result_copy (msg, job->result, *field);
        if (result_is_ours (job->result)) {
            tako_msg_set_bool (msg, "retryable", true);
            tako_warning (LOG, "job %s: the sandbox ended before its interpreter was ready",
                          job->key);
        }
    }
    else
        result_set_failure (msg, job);
    tako_msg_set_str (msg, "started_at", job->started_at);
    tako_msg_set_str (msg, "ended_at", job->ended_at);
    tako_msg_set_int (msg, "duration_ms", job->wall_ended - job->wall_started);
    json_t *execution = json_object_get (json_object_get (job->result, "timing"), "execution_ms");
    tako_msg_set_double (msg, "execution_time",
                         json_is_integer (execution)? json_integer_value (execution) / 1000.0: 0.0);
    tako_msg_set_str (msg, "job_type", job->job_type);
    if (job->job_ref)
        tako_msg_set_str (msg, "job_ref", job->job_ref);
    return msg;
}

//  --------------------------------------------------------------------------
//  Pending results

static void
pending_destroy (pending_t **self_p)
{
    pending_t *self = *self_p;
    if (!self)
        return;
    tako_msg_t *msg;
    while ((msg = (tako_msg_t *) zlist_pop (self->messages)))
        tako_msg_destroy (&msg);
    zlist_destroy (&self->messages);
    free (self);
    *self_p = NULL;
}

static void
pending_send (executor_t *self, pending_t *pending)
{
    for (tako_msg_t *msg = (tako_msg_t *) zlist_first (pending->messages); msg;
         msg = (tako_msg_t *) zlist_next (pending->messages))
        executor_send (self, tako_msg_dup (msg), self->result_service);
    pending->next_send = zclock_mono () + TAKO_EXECUTOR_RESEND_MS;
}

//  Turn a finished job into its pending result and send it once.
static void
job_report (executor_t *self, job_t *job)
{
    pending_t *pending = calloc (1, sizeof (pending_t));
    if (!pending || !(pending->messages = zlist_new ())) {
        free (pending);
        tako_error (LOG, "out of memory: result of %s lost", job->key);
        return;
    }
    memcpy (pending->key, job->key, sizeof pending->key);
    size_t count = job->result && job->sandbox? tako_sandbox_artifact_count (job->sandbox): 0;
    for (size_t i = 0; i < count; i++) {
        const tako_sandbox_artifact_t *artifact = tako_sandbox_artifact (job->sandbox, i);
        tako_msg_t *msg = job_message (job, "ARTIFACT");
        if (!msg)
            continue;
        tako_msg_unset (msg, "lease_id");
        tako_msg_set_str (msg, "name", artifact->name);
        tako_msg_set_str (msg, "sha256", artifact->sha256);
        if (artifact->content_type)
            tako_msg_set_str (msg, "content_type", artifact->content_type);
        tako_msg_set_bin (msg, "data", artifact->data, artifact->size);
        zlist_append (pending->messages, msg);
    }
    tako_msg_t *result = job_result_message (job);
    if (result)
        zlist_append (pending->messages, result);
    zhashx_update (self->pending, pending->key, pending);
    pending_send (self, pending);
}

//  --------------------------------------------------------------------------
//  Messages in

static int
slot_take (executor_t *self)
{
    for (int i = 0; i < self->slots; i++)
        if (!self->slot_used [i]) {
            self->slot_used [i] = true;
            return i;
        }
    return -1;
}

static void
reply_error (executor_t *self, tako_msg_t *request, int code, const char *reason)
{
    tako_msg_t *msg = tako_msg_new ("ERROR");
    if (!msg)
        return;
    tako_msg_set_int (msg, "code", code);
    tako_msg_set_str (msg, "reason", reason);
    tako_msg_set_str (msg, "in_reply_to", tako_msg_command (request));
    if (tako_msg_str (request, "job_id"))
        tako_msg_set_str (msg, "job_id", tako_msg_str (request, "job_id"));
    if (tako_msg_str (request, "request_id"))
        tako_msg_set_str (msg, "request_id", tako_msg_str (request, "request_id"));
    executor_send (self, msg, tako_msg_address (request));
}

//  A warm sandbox has its job type's current environment: a job with
//  requirements of its own, or pinned to another version, starts cold.
static bool
job_fits_warm (executor_t *self, job_t *job)
{
    if (job->requirement_count > 0)
        return false;
    if (!job->job_ref)
        return true;
    const tako_config_job_type_t *job_type = tako_config_job_type (self->config, job->job_type);
    char *current = job_type? tako_jobenv_current_ref (job_type): NULL;
    bool fits = current && streq (current, job->job_ref);
    free (current);
    return fits;
}

static void
handle_dispatch (executor_t *self, tako_msg_t *msg)
{
    char key [JOB_KEY_MAX];
    snprintf (key, sizeof key, "%s#%" PRId64, tako_msg_str (msg, "job_id"),
              tako_msg_int (msg, "attempt", 1));
    //  A repeated DISPATCH (our ACCEPT was lost): answer again, run once.
    job_t *running = (job_t *) zhashx_lookup (self->jobs, key);
    if (running) {
        executor_send (self, job_message (running, "ACCEPT"), tako_msg_address (msg));
        return;
    }
    pending_t *finished = (pending_t *) zhashx_lookup (self->pending, key);
    if (finished) {
        pending_send (self, finished);
        return;
    }
    int slot = slot_take (self);
    if (slot < 0) {
        reply_error (self, msg, 503, "no free slot on this executor");
        return;
    }
    job_t *job = job_from_dispatch (self, msg);
    if (!job) {
        self->slot_used [slot] = false;
        reply_error (self, msg, 400, "unusable DISPATCH");
        return;
    }
    job->slot = self->slot_base + slot;
    if (self->warm && job_fits_warm (self, job)) {
        job->sandbox = tako_warmpool_take (self->warm, job->job_type, &job->warm_slot);
        if (!job->sandbox)
            job->zygote = tako_warmpool_zygote (self->warm, job->job_type);
        //  Tick when the pool's deferred refill is due.
        int64_t due = zclock_mono () + TAKO_WARMPOOL_REFILL_DELAY_MS + 1;
        if (due < self->next_warm_tick)
            self->next_warm_tick = due;
    }
    job->thread = self->workers [slot];
    if (zsock_send (job->thread, "sp", "JOB", job) != 0) {
        self->slot_used [slot] = false;
        reply_error (self, msg, 503, "cannot hand the job to its worker");
        int warm_slot = job->warm_slot;
        job_destroy (&job);
        if (self->warm && warm_slot >= 0)
            tako_warmpool_release (self->warm, warm_slot);
        return;
    }
    job->running = true;
    zhashx_insert (self->jobs, job->key, job);
    executor_send (self, job_message (job, "ACCEPT"), job->dispatcher);
    job->next_beat = zclock_mono () + job->lease_ms / 3;
    tako_debug (LOG, "job %s started in slot %d%s", job->key, job->slot, job->sandbox? " (warm)": "");
}

static void
job_cancel (job_t *job)
{
    uint64_t one = 1;
    job->cancelled = true;
    atomic_store (&job->cancel_flag, true);
    if (write (job->cancel_fd, &one, sizeof one) < 0)
        tako_warning (LOG, "cannot cancel %s: %s", job->key, strerror (errno));
}

static void
handle_cancel (executor_t *self, tako_msg_t *msg)
{
    const char *job_id = tako_msg_str (msg, "job_id");
    bool any_attempt = !tako_msg_has (msg, "attempt");
    int64_t attempt = tako_msg_int (msg, "attempt", 0);
    int found = 0;
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job;
         job = (job_t *) zhashx_next (self->jobs))
        if (streq (job->job_id, job_id) && (any_attempt || job->attempt == attempt)) {
            job_cancel (job);
            found++;
        }
    if (tako_msg_str (msg, "request_id")) {
        tako_msg_t *reply = tako_msg_new ("REPLY");
        if (reply) {
            tako_msg_set_str (reply, "request_id", tako_msg_str (msg, "request_id"));
            tako_msg_set_int (reply, "code", found? 200: 404);
            if (!found)
                tako_msg_set_str (reply, "reason", "job not running here");
        }
        executor_send (self, reply, tako_msg_address (msg));
    }
}

static void
handle_result_ack (executor_t *self, tako_msg_t *msg)
{
    char key [JOB_KEY_MAX];
    snprintf (key, sizeof key, "%s#%" PRId64, tako_msg_str (msg, "job_id"),
              tako_msg_int (msg, "attempt", 0));
    tako_debug (LOG, "job %s: result acknowledged", key);
    zhashx_delete (self->pending, key);
}

static void
handle_message (executor_t *self, tako_msg_t *msg)
{
    const char *command = tako_msg_command (msg);
    if (streq (command, "DISPATCH"))
        handle_dispatch (self, msg);
    else
    if (streq (command, "CANCEL"))
        handle_cancel (self, msg);
    else
    if (streq (command, "RESULT_ACK"))
        handle_result_ack (self, msg);
    else
    if (streq (command, "ERROR"))
        tako_debug (LOG, "ERROR %" PRId64 " from %s: %s", tako_msg_int (msg, "code", 0),
                    tako_msg_address (msg), tako_msg_str (msg, "reason"));
    else
        tako_debug (LOG, "ignoring %s from %s", command, tako_msg_address (msg));
}

//  The job built its environment: the recorder keeps the version, as for
//  the builder's builds. Its answer is only logged.
static void
version_register (executor_t *self, job_t *job)
{
    json_object_set_new (job->env.version, "built_by", json_string (tako_peer_instance (self->peer)));
    json_t *params = json_pack ("{s:O}", "version", job->env.version);
    tako_msg_t *msg = params? tako_msg_new ("QUERY"): NULL;
    if (msg) {
        char request_id [JOB_KEY_MAX + 16];
        snprintf (request_id, sizeof request_id, "version-%s", job->key);
        tako_msg_set_str (msg, "request_id", request_id);
        tako_msg_set_str (msg, "query", "version.register");
        tako_msg_set_object (msg, "params", params);
    }
    executor_send (self, msg, "recorder");
    json_decref (params);
}

//  A job thread said DONE: report, free its slot, announce the credit.
static void
handle_job_done (executor_t *self, zactor_t *worker)
{
    char *command = NULL;
    void *pointer = NULL;
    if (zsock_recv (worker, "sp", &command, &pointer) != 0 || !command)
        return;
    bool done = streq (command, "DONE");
    free (command);
    job_t *job = NULL;
    for (job_t *candidate = (job_t *) zhashx_first (self->jobs); done && candidate;
         candidate = (job_t *) zhashx_next (self->jobs))
        if (candidate == pointer && candidate->thread == worker) {
            job = candidate;
            break;
        }
    if (!job)
        return;
    job->running = false;
    tako_debug (LOG, "job %s done: %s", job->key,
                job->result? json_string_value (json_object_get (job->result, "status")): job->failure);
    if (job->env.version)
        version_register (self, job);
    job_report (self, job);
    self->slot_used [job->slot - self->slot_base] = false;
    int warm_slot = job->warm_slot;
    zhashx_delete (self->jobs, job->key);
    if (self->warm && warm_slot >= 0)
        tako_warmpool_release (self->warm, warm_slot);
    executor_announce (self);
}

static void
handle_pipe (executor_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "INSTANCE"))
        zstr_send (self->pipe, tako_peer_instance (self->peer));
    else
    if (streq (command, "STATS"))
        zsock_send (self->pipe, "iii", (int) zhashx_size (self->jobs), free_slots (self),
                    (int) zhashx_size (self->pending));
    zstr_free (&command);
}

//  --------------------------------------------------------------------------
//  Timers

static void
executor_beat (executor_t *self, int64_t now)
{
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job;
         job = (job_t *) zhashx_next (self->jobs))
        if (now >= job->next_beat && !job->cancelled)
            job_send_heartbeat (self, job);
    for (pending_t *pending = (pending_t *) zhashx_first (self->pending); pending;
         pending = (pending_t *) zhashx_next (self->pending))
        if (now >= pending->next_send)
            pending_send (self, pending);
    if (now >= self->next_ready)
        executor_announce (self);
    if (self->warm && now >= self->next_warm_tick) {
        tako_warmpool_tick (self->warm);
        self->next_warm_tick = now + 1000;
    }
}

static int
executor_wait_ms (executor_t *self)
{
    int64_t now = zclock_mono ();
    int64_t due = now + tako_peer_tick_due (self->peer);
    if (self->next_ready < due)
        due = self->next_ready;
    if (self->warm && self->next_warm_tick < due)
        due = self->next_warm_tick;
    for (job_t *job = (job_t *) zhashx_first (self->jobs); job;
         job = (job_t *) zhashx_next (self->jobs))
        if (job->next_beat < due)
            due = job->next_beat;
    for (pending_t *pending = (pending_t *) zhashx_first (self->pending); pending;
         pending = (pending_t *) zhashx_next (self->pending))
        if (pending->next_send < due)
            due = pending->next_send;
    return due > now? (int) (due - now): 0;
}

//  --------------------------------------------------------------------------
//  Actor

//  Cancel the running jobs, take them back from their workers (within
//  TAKO_EXECUTOR_STOP_WAIT_MS in all: a cancelled sandbox is killed at
//  once), stop the workers.
static void
workers_stop (executor_t *self)
{
    for (job_t *job = self->jobs? (job_t *) zhashx_first (self->jobs): NULL; job;
         job = (job_t *) zhashx_next (self->jobs))
        if (job->running) {
            uint64_t one = 1;
            atomic_store (&job->cancel_flag, true);
            if (write (job->cancel_fd, &one, sizeof one) < 0)
                tako_warning (LOG, "cannot cancel %s: %s", job->key, strerror (errno));
        }
    int64_t deadline = zclock_mono () + TAKO_EXECUTOR_STOP_WAIT_MS;
    for (job_t *job = self->jobs? (job_t *) zhashx_first (self->jobs): NULL; job;
         job = (job_t *) zhashx_next (self->jobs))
        while (job->running) {
            int64_t left = deadline - zclock_mono ();
            zsock_set_rcvtimeo (job->thread, left > 0? (int) left: 0);
            char *command = NULL;
            void *pointer = NULL;
            if (zsock_recv (job->thread, "sp", &command, &pointer) != 0 || !command) {
                //  Never given back: leave it (and its worker) to the exit.
                tako_error (LOG, "job %s did not end when cancelled", job->key);
                job->thread = NULL;
                break;
            }
            if (streq (command, "DONE") && pointer == job)
                job->running = false;
            free (command);
        }
    for (int i = 0; self->workers && i < self->slots; i++) {
        bool abandoned = false;
        for (job_t *job = self->jobs? (job_t *) zhashx_first (self->jobs): NULL; job;
             job = (job_t *) zhashx_next (self->jobs))
            abandoned |= job->running && job->slot == self->slot_base + i;
        if (!abandoned)
            zactor_destroy (&self->workers [i]);
    }
}

static void
executor_destroy (executor_t **self_p)
{
    executor_t *self = *self_p;
    if (!self)
        return;
    workers_stop (self);                //  cancels and waits for running jobs
    zhashx_destroy (&self->jobs);
    zhashx_destroy (&self->pending);
    //  After the jobs: the warmer thread is their sandboxes' parent.
    tako_warmpool_destroy (&self->warm);
    zpoller_destroy (&self->poller);
    tako_peer_destroy (&self->peer);
    free (self->slot_used);
    free (self->workers);
    free (self);
    *self_p = NULL;
}

//  Warm pools, when a job type asks for one: their sandboxes take uid
//  slots after the executor's own, as many as the pools hold plus one per
//  job slot (a taken sandbox keeps its slot while the pool refills).
static int
warm_start (executor_t *self)
{
    int wanted = 0;
    for (size_t i = 0; self->config->warm_pools_enabled && i < self->config->job_type_count; i++)
        wanted += self->config->job_types [i].warm_pool;
    if (wanted == 0)
        return 0;
    int first = self->slot_base + self->slots;
    int count = wanted + self->slots;
    if (first + count - 1 > TAKO_SANDBOX_SLOT_MAX)
        count = TAKO_SANDBOX_SLOT_MAX - first + 1;
    if (count <= 0) {
        tako_warning (LOG, "no uid slots left for warm sandboxes: they are off");
        return 0;
    }
    self->warm = tako_warmpool_new (self->config, first, count);
    if (!self->warm)
        return -1;
    zpoller_add (self->poller, tako_warmpool_socket (self->warm));
    return 0;
}

static executor_t *
executor_new (zsock_t *pipe, tako_executor_args_t *args)
{
    executor_t *self = calloc (1, sizeof (executor_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->config = args->config;
    self->slots = args->slots > 0? args->slots: args->config->max_workers;
    if (self->slots > TAKO_EXECUTOR_SLOTS_MAX)
        self->slots = TAKO_EXECUTOR_SLOTS_MAX;
    self->slot_base = args->slot_base;
    self->result_service = args->result_service? args->result_service: "scheduler";
    self->slot_used = calloc (self->slots, sizeof (bool));
    self->jobs = zhashx_new ();
    self->pending = zhashx_new ();
    const char *endpoint = args->endpoint? args->endpoint: args->config->broker_endpoint;
    self->peer = tako_peer_new (endpoint, "executor", &args->heartbeat);
    if (!self->slot_used || !self->jobs || !self->pending || !self->peer) {
        executor_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->jobs, (zhashx_destructor_fn *) job_destroy);
    zhashx_set_destructor (self->pending, (zhashx_destructor_fn *) pending_destroy);
    self->peer_socket = tako_peer_socket (self->peer);
    self->poller = zpoller_new (pipe, self->peer_socket, NULL);
    self->workers = calloc ((size_t) self->slots, sizeof (zactor_t *));
    for (int i = 0; self->poller && self->workers && i < self->slots; i++)
        if (!(self->workers [i] = zactor_new (worker_actor, self->config))
        ||  zpoller_add (self->poller, self->workers [i]) != 0) {
            executor_destroy (&self);
            return NULL;
        }
    if (!self->poller || !self->workers || warm_start (self) != 0)
        executor_destroy (&self);
    return self;
}

void
tako_executor_actor (zsock_t *pipe, void *args)
{
    executor_t *self = executor_new (pipe, (tako_executor_args_t *) args);
    zsock_signal (pipe, self? 0: 1);
    if (!self)
        return;
    tako_info (LOG, "%s ready with %d slots", tako_peer_instance (self->peer), self->slots);
    //  The sandbox applies the runtime rule to every job; say it once here.
    const char *warning = NULL, *refusal = NULL;
    tako_sandbox_runtime_choose (self->config->container_runtime == TAKO_RUNTIME_RUNSC,
                                 self->config->security_mode == TAKO_SECURITY_STRICT,
                                 &warning, &refusal);
    if (warning || refusal)
        tako_warning (LOG, "%s%s", warning? warning: refusal,
                      warning? "; jobs run in the native sandbox": "; jobs are refused (security_mode strict)");
    executor_announce (self);
    while (!self->terminated) {
        void *which = zpoller_wait (self->poller, executor_wait_ms (self));
        if (which == pipe)
            handle_pipe (self);
        else
        if (self->warm && which == tako_warmpool_socket (self->warm))
            tako_warmpool_handle (self->warm);
        else
        if (which == self->peer_socket) {
            tako_msg_t *msg = tako_peer_handle_input (self->peer);
            if (msg)
                handle_message (self, msg);
            tako_msg_destroy (&msg);
        }
        else
        if (which)
            handle_job_done (self, (zactor_t *) which);
        else
        if (zpoller_terminated (self->poller))
            break;
        if (tako_peer_tick (self->peer) == 1) {
            //  The peer reconnected: poll its new socket, announce again.
            zpoller_remove (self->poller, self->peer_socket);
            self->peer_socket = tako_peer_socket (self->peer);
            zpoller_add (self->poller, self->peer_socket);
            executor_announce (self);
        }
        executor_beat (self, zclock_mono ());
    }
    tako_info (LOG, "%s stopping", tako_peer_instance (self->peer));
    executor_destroy (&self);
}

void
tako_executor_test (bool verbose)
{
    (void) verbose;
    //  The full conversation (dispatch, heartbeats, cancel, resend until
    //  acknowledged) needs a broker and real sandboxes and is tested in
    //  tests/unit/test_executor.c. Here: the spec mapping.
    tako_config_t *config = tako_config_new ();
    assert (config);
    const tako_config_job_type_t *job_type = tako_config_job_type (config, "default");
    assert (job_type);
    tako_sandbox_spec_t spec;
    tako_sandbox_env_t *env = NULL;
    assert (tako_executor_spec_from_config (&spec, config, job_type, &env) == 0);
    assert (spec.pids_limit == config->container_limits.pids_limit);
    assert (spec.memory_limit_bytes == job_type->memory_limit);
    assert (spec.timeout_ms == (int64_t) job_type->timeout * 1000);
    assert (spec.env_count == job_type->environment_count);
    free (env);
    tako_config_destroy (&config);

    char stamp [TIMESTAMP_SIZE];
    timestamp_format (1700000000123, stamp);
    assert (streq (stamp, "2023-11-14T22:13:20.123Z"));
}
