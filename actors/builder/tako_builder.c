/*  tako_builder — the builder actor. See tako_builder.h.

    A build_t is one environment being built, keyed by its digest, with
    the requests waiting for it (BUILDs and env.resolve queries) and the
    worker thread that runs tako_envbuild. The worker talks to the actor
    only over its pipe:

        worker → actor  "PROGRESS" phase detail
                        "DONE" ok env_path built_at error_type reason
                               duration_ms cached
        actor → worker  "$TERM" (after DONE, or to cancel: the cancel flag
                        is set first, so pip is stopped within 100 ms)

    The spec a worker reads is owned by the build_t and not changed
    while the worker runs; the config is the actor's, read-only.          */

#include <ftw.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <time.h>
#include "tako_builder.h"
#include "tako_envbuild.h"
#include "tako_envspec.h"
#include "tako_events.h"
#include "tako_log.h"
#include "tako_msg.h"
#include "brokers/tako_broker.h"       //  self-test only
#include "brokers/tako_hub.h"          //  self-test only

#define LOG "builder"

//  Room for "builder-<counter>".
#define REQUEST_ID_SIZE 32
#define MS_PER_SECOND   1000

typedef enum {
    WAITER_BUILD,               //  BUILD: answer BUILT or ERROR
    WAITER_RESOLVE              //  QUERY env.resolve: answer REPLY
} waiter_kind_t;

typedef struct {
    waiter_kind_t kind;
    char *client;               //  instance id to answer
    char *request_id;
    char *job_type;             //  the name it asked for
    char *job_ref;              //  of its own spec (names differ, digests not)
    char *version_tag;          //  BUILD only
} waiter_t;

typedef struct {
    tako_envspec_t *spec;       //  owned; read by the worker
    const tako_config_t *config;
    bool force;
    atomic_bool cancel;
    zactor_t *worker;
    zlist_t *waiters;           //  waiter_t *, owned
    int64_t seq;                //  of its events
} build_t;

typedef struct {
    zsock_t *pipe;
    tako_config_t *config;      //  borrowed
    tako_peer_t *peer;
    zsock_t *peer_socket;       //  as last added to the poller
    tako_events_t *events;      //  may be NULL: no event hub
    zpoller_t *poller;
    zhashx_t *builds;           //  digest → build_t *, owned
    uint64_t sequence;          //  for our request ids
    bool terminated;
} builder_t;

//  ---------------------------------------------------------------------
//  Waiters

static void
waiter_destroy (waiter_t **self_p)
{
    waiter_t *self = *self_p;
    if (!self)
        return;
    free (self->client);
    free (self->request_id);
    free (self->job_type);
    free (self->job_ref);
    free (self->version_tag);
    free (self);
    *self_p = NULL;
}

static char *
strdup_or_null (const char *text)
{
    return text? strdup (text): NULL;
}

static waiter_t *
waiter_new (waiter_kind_t kind, tako_msg_t *request, tako_envspec_t *spec)
{
    waiter_t *self = (waiter_t *) calloc (1, sizeof (waiter_t));
    if (!self)
        return NULL;
    self->kind = kind;
    self->client = strdup (tako_msg_address (request));
    self->request_id = strdup (tako_msg_str (request, "request_id"));
    self->job_type = strdup (tako_envspec_job_type (spec));
    self->job_ref = strdup (tako_envspec_job_ref (spec));
    if (kind == WAITER_BUILD)
        self->version_tag = strdup_or_null (tako_msg_str (request, "version_tag"));
    if (!self->client || !self->request_id || !self->job_type || !self->job_ref)
        waiter_destroy (&self);
    return self;
}

//  ---------------------------------------------------------------------
//  Answers

static void
send_error (builder_t *self, const char *client, const char *request_id,
            const char *in_reply_to, int code, const char *reason)
{
    tako_msg_t *msg = tako_msg_new ("ERROR");
    if (!msg)
        return;
    tako_msg_set_address (msg, client);
    tako_msg_set_int (msg, "code", code);
    tako_msg_set_str (msg, "reason", reason);
    tako_msg_set_str (msg, "in_reply_to", in_reply_to);
    if (request_id)
        tako_msg_set_str (msg, "request_id", request_id);
    if (code == 503)
        tako_msg_set_int (msg, "retry_after_ms", TAKO_BUILDER_RETRY_AFTER_MS);
    tako_peer_send (self->peer, &msg);
}

static void
send_reply (builder_t *self, const char *client, const char *request_id, int code,
            json_t *result, const char *reason)
{
    tako_msg_t *msg = tako_msg_new ("REPLY");
    if (!msg)
        return;
    tako_msg_set_address (msg, client);
    tako_msg_set_str (msg, "request_id", request_id);
    tako_msg_set_int (msg, "code", code);
    if (result)
        tako_msg_set_object (msg, "result", result);
    if (code != 200 && reason)
        tako_msg_set_str (msg, "reason", reason);
    tako_peer_send (self->peer, &msg);
}

//  What a successful build gives its waiters.
typedef struct {
    const char *digest;
    const char *env_path;
    const char *built_at;
    int64_t duration_ms;
    bool cached;
} outcome_t;

static void
send_built (builder_t *self, waiter_t *waiter, const outcome_t *outcome)
{
    tako_msg_t *msg = tako_msg_new ("BUILT");
    if (!msg)
        return;
    char *image_ref = zsys_sprintf ("%s/%s", TAKO_ENVBUILD_DIR, outcome->digest);
    tako_msg_set_address (msg, waiter->client);
    tako_msg_set_str (msg, "request_id", waiter->request_id);
    tako_msg_set_str (msg, "job_type", waiter->job_type);
    tako_msg_set_str (msg, "status", "built");
    tako_msg_set_str (msg, "digest", outcome->digest);
    tako_msg_set_str (msg, "job_ref", waiter->job_ref);
    if (image_ref)
        tako_msg_set_str (msg, "image_ref", image_ref);
    if (outcome->built_at)
        tako_msg_set_str (msg, "built_at", outcome->built_at);
    tako_msg_set_int (msg, "duration_ms", outcome->duration_ms);
    tako_msg_set_bool (msg, "cached", outcome->cached);
    if (waiter->version_tag)
        tako_msg_set_str (msg, "version_tag", waiter->version_tag);
    zstr_free (&image_ref);
    tako_peer_send (self->peer, &msg);
}

static void
send_resolved (builder_t *self, waiter_t *waiter, const outcome_t *outcome)
{
    json_t *result = json_pack ("{s:s, s:s, s:s, s:b, s:I}",
        "env_path", outcome->env_path, "job_ref", waiter->job_ref, "digest", outcome->digest,
        "built", !outcome->cached, "build_ms", (json_int_t) (outcome->cached? 0: outcome->duration_ms));
    send_reply (self, waiter->client, waiter->request_id, 200, result, NULL);
    json_decref (result);
}

//  Tell the recorder about this version; its answer is only logged.
static void
version_register (builder_t *self, waiter_t *waiter, const char *digest,
                  tako_envspec_t *spec)
{
    char request_id [REQUEST_ID_SIZE];
    snprintf (request_id, sizeof request_id, "builder-%" PRIu64, ++self->sequence);
    //  The build may be shared with a job type of another name: this
    //  waiter's names, the build's digest.
    json_t *version = tako_envspec_version (spec, tako_peer_instance (self->peer),
                                            waiter->version_tag);
    if (version) {
        json_object_set_new (version, "job_type", json_string (waiter->job_type));
        json_object_set_new (version, "job_ref", json_string (waiter->job_ref));
        json_object_set_new (version, "digest", json_string (digest));
    }
    json_t *params = version? json_pack ("{s:o}", "version", version): NULL;
    tako_msg_t *msg = params? tako_msg_new ("QUERY"): NULL;
    if (msg) {
        tako_msg_set_address (msg, "recorder");
        tako_msg_set_str (msg, "request_id", request_id);
        tako_msg_set_str (msg, "query", "version.register");
        tako_msg_set_object (msg, "params", params);
        if (tako_peer_send (self->peer, &msg))
            tako_warning (LOG, "could not register %s with the recorder", waiter->job_ref);
    }
    json_decref (params);
}

//  One waiter's answer for a successful build.
static void
waiter_succeeded (builder_t *self, waiter_t *waiter, const outcome_t *outcome, tako_envspec_t *spec)
{
    if (waiter->kind == WAITER_BUILD) {
        send_built (self, waiter, outcome);
        version_register (self, waiter, outcome->digest, spec);
    }
    else
        send_resolved (self, waiter, outcome);
}

//  An answer that is not about a build: ERROR for BUILD, REPLY for a query.
static void
waiter_refuse (builder_t *self, waiter_t *waiter, int code, const char *reason)
{
    if (waiter->kind == WAITER_BUILD)
        send_error (self, waiter->client, waiter->request_id, "BUILD", code, reason);
    else
        send_reply (self, waiter->client, waiter->request_id, code, NULL, reason);
}

//  dependency_error (pip refused) is the caller's problem: 422; anything
//  else is the host's: 500.
static void
waiter_failed (builder_t *self, waiter_t *waiter, const char *error_type, const char *reason)
{
    int code = streq (error_type, TAKO_ENVBUILD_DEPENDENCY_ERROR)? 422: 500;
    char *text = zsys_sprintf ("%s: %s", error_type, reason);
    if (waiter->kind == WAITER_BUILD)
        send_error (self, waiter->client, waiter->request_id, "BUILD", code, text? text: error_type);
    else {
        json_t *result = json_pack ("{s:s, s:s}", "error_type", error_type, "reason", reason);
        send_reply (self, waiter->client, waiter->request_id, code, result, text? text: error_type);
        json_decref (result);
    }
    zstr_free (&text);
}

//  ---------------------------------------------------------------------
//  Events

static char *
now_iso8601 (void)
{
    char text [32];
    time_t now = time (NULL);
    struct tm utc;
    gmtime_r (&now, &utc);
    strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return strdup (text);
}

//  Publish one event of a build; data is taken.
static void
event_publish (builder_t *self, build_t *build, const char *kind, const char *status,
               json_t *data)
{
    if (!self->events || !data) {
        json_decref (data);
        return;
    }
    json_object_set_new (data, "job_type", json_string (tako_envspec_job_type (build->spec)));
    json_object_set_new (data, "digest", json_string (tako_envspec_digest (build->spec)));
    tako_msg_t *event = tako_msg_new ("EVENT");
    char *at = now_iso8601 ();
    if (event) {
        tako_msg_set_str (event, "job_id", tako_envspec_job_ref (build->spec));
        tako_msg_set_int (event, "seq", ++build->seq);
        tako_msg_set_str (event, "status", status);
        tako_msg_set_str (event, "kind", kind);
        if (at)
            tako_msg_set_str (event, "at", at);
        tako_msg_set_object (event, "data", data);
        tako_events_publish_build (self->events, &event);
    }
    free (at);
    json_decref (data);
}

//  ---------------------------------------------------------------------
//  Builds and their workers

typedef struct {
    tako_envspec_t *spec;
    const tako_config_t *config;
    bool force;
    atomic_bool *cancel;
} worker_args_t;

static void
worker_progress (void *arg, const char *phase, const char *detail)
{
    zsock_t *pipe = (zsock_t *) arg;
    zstr_sendx (pipe, "PROGRESS", phase, detail, NULL);
}

static void
worker_actor (zsock_t *pipe, void *args)
{
    worker_args_t *work = (worker_args_t *) args;
    tako_envspec_t *spec = work->spec;
    tako_envbuild_options_t options = {
        .config = work->config, .force = work->force, .cancel = work->cancel,
        .progress = worker_progress, .progress_arg = pipe
    };
    free (work);
    zsock_signal (pipe, 0);
    tako_envbuild_result_t result = { 0 };
    int rc = tako_envbuild_run (spec, &options, &result);
    char duration [32];
    snprintf (duration, sizeof duration, "%" PRId64, result.duration_ms);
    zstr_sendx (pipe, "DONE", rc == 0? "1": "0",
                result.env_path? result.env_path: "", result.built_at? result.built_at: "",
                result.error_type? result.error_type: "", result.reason? result.reason: "",
                duration, result.cached? "1": "0", NULL);
    tako_envbuild_result_clear (&result);
    while (true) {
        char *command = zstr_recv (pipe);
        bool term = !command || streq (command, "$TERM");
        zstr_free (&command);
        if (term)
            break;
    }
}

static void
build_destroy (build_t **self_p)
{
    build_t *self = *self_p;
    if (!self)
        return;
    atomic_store (&self->cancel, true);
    zactor_destroy (&self->worker);
    if (self->waiters) {
        for (waiter_t *waiter = (waiter_t *) zlist_first (self->waiters); waiter;
             waiter = (waiter_t *) zlist_next (self->waiters))
            waiter_destroy (&waiter);
        zlist_destroy (&self->waiters);
    }
    tako_envspec_destroy (&self->spec);
    free (self);
    *self_p = NULL;
}

//  A build of spec (taken) with its worker started, or NULL.
static build_t *
build_start (builder_t *self, tako_envspec_t **spec_p, bool force)
{
    build_t *build = (build_t *) calloc (1, sizeof (build_t));
    worker_args_t *work = (worker_args_t *) calloc (1, sizeof (worker_args_t));
    if (!build || !work) {
        free (build);
        free (work);
        return NULL;
    }
    build->spec = *spec_p;
    *spec_p = NULL;
    build->config = self->config;
    build->force = force;
    atomic_init (&build->cancel, false);
    build->waiters = zlist_new ();
    *work = (worker_args_t) { build->spec, self->config, force, &build->cancel };
    build->worker = build->waiters? zactor_new (worker_actor, work): NULL;
    if (!build->worker) {
        free (work);
        build_destroy (&build);
        return NULL;
    }
    zpoller_add (self->poller, build->worker);
    zhashx_insert (self->builds, tako_envspec_digest (build->spec), build);
    size_t count = 0;
    tako_envspec_requirements (build->spec, &count);
    event_publish (self, build, "build_started", "building",
                   json_pack ("{s:s, s:s, s:i}", "phase", "resolving",
                              "detail", tako_envspec_job_ref (build->spec),
                              "requirements", (int) count));
    tako_info (LOG, "building %s (%zu requirements)", tako_envspec_job_ref (build->spec), count);
    return build;
}

//  The worker said DONE: answer everyone and forget the build.
static void
build_finish (builder_t *self, build_t *build, zmsg_t *done)
{
    char *ok = zmsg_popstr (done), *env_path = zmsg_popstr (done), *built_at = zmsg_popstr (done);
    char *error_type = zmsg_popstr (done), *reason = zmsg_popstr (done);
    char *duration = zmsg_popstr (done), *cached = zmsg_popstr (done);
    bool succeeded = ok && streq (ok, "1") && env_path && *env_path;
    outcome_t outcome = {
        .digest = tako_envspec_digest (build->spec), .env_path = env_path,
        .built_at = built_at && *built_at? built_at: NULL,
        .duration_ms = duration? strtoll (duration, NULL, 10): 0,
        .cached = cached && streq (cached, "1")
    };
    const char *why = reason && *reason? reason: "the build failed";
    const char *type = error_type && *error_type? error_type: TAKO_ENVBUILD_BUILD_ERROR;
    char *done_detail = zsys_sprintf ("%s in %.1f s", outcome.cached? "cached": "built",
                                      (double) outcome.duration_ms / MS_PER_SECOND);
    json_t *data = succeeded?
        json_pack ("{s:s, s:s, s:I, s:b}", "phase", "done", "detail", done_detail? done_detail: "built",
                   "duration_ms", (json_int_t) outcome.duration_ms, "cached", outcome.cached):
        json_pack ("{s:s, s:s, s:s, s:I}", "phase", "failed", "detail", why, "error_type", type,
                   "duration_ms", (json_int_t) outcome.duration_ms);
    event_publish (self, build, "build_finished", succeeded? "built": "failed", data);
    zstr_free (&done_detail);
    if (succeeded)
        tako_info (LOG, "%s ready in %" PRId64 " ms", tako_envspec_job_ref (build->spec),
                   outcome.duration_ms);
    else
        tako_warning (LOG, "%s failed: %s: %s", tako_envspec_job_ref (build->spec), type, why);
    for (waiter_t *waiter = (waiter_t *) zlist_first (build->waiters); waiter;
         waiter = (waiter_t *) zlist_next (build->waiters))
        if (succeeded)
            waiter_succeeded (self, waiter, &outcome, build->spec);
        else
            waiter_failed (self, waiter, type, why);
    zpoller_remove (self->poller, build->worker);
    zhashx_delete (self->builds, tako_envspec_digest (build->spec));
    build_destroy (&build);
    free (ok); free (env_path); free (built_at); free (error_type);
    free (reason); free (duration); free (cached);
}

static void
build_progress (builder_t *self, build_t *build, zmsg_t *message)
{
    char *phase = zmsg_popstr (message);
    char *detail = zmsg_popstr (message);
    if (phase && detail && !streq (phase, "done") && !streq (phase, "resolving"))
        event_publish (self, build, "build_progress", "building",
                       json_pack ("{s:s, s:s}", "phase", phase, "detail", detail));
    free (phase);
    free (detail);
}

static void
handle_worker (builder_t *self, zactor_t *worker)
{
    build_t *build = NULL;
    for (build_t *each = (build_t *) zhashx_first (self->builds); each;
         each = (build_t *) zhashx_next (self->builds))
        if (each->worker == worker)
            build = each;
    zmsg_t *message = zmsg_recv (worker);
    char *kind = message? zmsg_popstr (message): NULL;
    if (build && kind && streq (kind, "PROGRESS"))
        build_progress (self, build, message);
    else
    if (build && kind && streq (kind, "DONE"))
        build_finish (self, build, message);
    free (kind);
    zmsg_destroy (&message);
}

//  ---------------------------------------------------------------------
//  Requests

//  An environment that exists already: the answer needs no worker.
static bool
answer_if_built (builder_t *self, waiter_t *waiter, tako_envspec_t *spec)
{
    const char *digest = tako_envspec_digest (spec);
    char *env_path = tako_envbuild_env_path (self->config->data_dir, digest);
    if (!env_path || !tako_envbuild_exists (self->config->data_dir, digest)) {
        zstr_free (&env_path);
        return false;
    }
    char *meta = zsys_sprintf ("%s/%s", env_path, TAKO_ENVBUILD_META_FILE);
    json_t *info = meta? json_load_file (meta, 0, NULL): NULL;
    outcome_t outcome = { .digest = digest, .env_path = env_path, .cached = true,
        .built_at = json_string_value (json_object_get (info, "built_at")) };
    waiter_succeeded (self, waiter, &outcome, spec);
    json_decref (info);
    zstr_free (&meta);
    zstr_free (&env_path);
    return true;
}

//  Attach the waiter (taken) to the build of spec (taken), starting one
//  if none runs. Answers the waiter itself when that fails.
static void
build_join (builder_t *self, waiter_t **waiter_p, tako_envspec_t **spec_p, bool force)
{
    waiter_t *waiter = *waiter_p;
    *waiter_p = NULL;
    build_t *build = (build_t *) zhashx_lookup (self->builds, tako_envspec_digest (*spec_p));
    if (build)
        tako_envspec_destroy (spec_p);
    else
    if (zhashx_size (self->builds) >= TAKO_BUILDER_BUILDS_MAX) {
        tako_envspec_destroy (spec_p);
        waiter_refuse (self, waiter, 503, "too many builds running");
        waiter_destroy (&waiter);
        return;
    }
    else
        build = build_start (self, spec_p, force);
    if (!build || zlist_size (build->waiters) >= TAKO_BUILDER_WAITERS_MAX) {
        tako_envspec_destroy (spec_p);
        waiter_failed (self, waiter, TAKO_ENVBUILD_BUILD_ERROR,
                       build? "too many requests wait for this build": "cannot start the build");
        waiter_destroy (&waiter);
        return;
    }
    zlist_append (build->waiters, waiter);
}

//  The spec a request names, or NULL after answering why not.
static tako_envspec_t *
request_spec (builder_t *self, tako_msg_t *msg, waiter_kind_t kind, const char *job_type_name,
              const char *const *requirements, size_t count)
{
    const char *client = tako_msg_address (msg);
    const char *request_id = tako_msg_str (msg, "request_id");
    const tako_config_job_type_t *job_type = tako_config_job_type (self->config, job_type_name);
    char *error = NULL;
    tako_envspec_t *spec = job_type? tako_envspec_new (job_type, requirements, count, &error): NULL;
    if (!spec) {
        waiter_t refused = { .kind = kind, .client = (char *) client, .request_id = (char *) request_id };
        waiter_refuse (self, &refused, !job_type? 404: error? 422: 500,
                       !job_type? "unknown job type": error? error: "out of memory");
    }
    free (error);
    return spec;
}

static void
handle_build (builder_t *self, tako_msg_t *msg)
{
    const char *tag = tako_msg_str (msg, "version_tag");
    if (tag && !tako_envspec_version_tag_valid (tag)) {
        send_error (self, tako_msg_address (msg), tako_msg_str (msg, "request_id"), "BUILD",
                    422, "version_tag must be 1 to 64 letters, digits, '.', '_' or '-'");
        return;
    }
    size_t count = 0;
    const char *const *requirements = tako_msg_strlist (msg, "requirements", &count);
    tako_envspec_t *spec = request_spec (self, msg, WAITER_BUILD, tako_msg_str (msg, "job_type"),
                                         requirements, count);
    if (!spec)
        return;
    waiter_t *waiter = waiter_new (WAITER_BUILD, msg, spec);
    bool force = tako_msg_bool (msg, "force", false);
    if (!waiter)
        send_error (self, tako_msg_address (msg), tako_msg_str (msg, "request_id"), "BUILD",
                    500, "out of memory");
    else
    if (force || !answer_if_built (self, waiter, spec))
        build_join (self, &waiter, &spec, force);
    waiter_destroy (&waiter);
    tako_envspec_destroy (&spec);
}

//  env.resolve params: requirements as a list of strings, or NULL.
static const char **
params_requirements (json_t *params, size_t *count, bool *valid)
{
    json_t *list = json_object_get (params, "requirements");
    *count = 0;
    *valid = !list || json_is_null (list) || json_is_array (list);
    if (!*valid || !json_array_size (list))
        return NULL;
    const char **items = (const char **) calloc (json_array_size (list) + 1, sizeof (char *));
    for (size_t i = 0; items && i < json_array_size (list); i++) {
        items [i] = json_string_value (json_array_get (list, i));
        if (!items [i])
            *valid = false;
    }
    *count = json_array_size (list);
    return items;
}

//  A pinned job_ref whose environment exists: answer with it.
static bool
resolve_pinned (builder_t *self, tako_msg_t *msg, const char *job_ref)
{
    char *digest = tako_envbuild_find (self->config->data_dir, job_ref);
    if (!digest)
        return false;
    char *env_path = tako_envbuild_env_path (self->config->data_dir, digest);
    json_t *result = json_pack ("{s:s, s:s, s:s, s:b, s:i}", "env_path", env_path? env_path: "",
                                "job_ref", job_ref, "digest", digest, "built", 0, "build_ms", 0);
    send_reply (self, tako_msg_address (msg), tako_msg_str (msg, "request_id"), 200, result, NULL);
    json_decref (result);
    zstr_free (&env_path);
    zstr_free (&digest);
    return true;
}

static void
handle_resolve (builder_t *self, tako_msg_t *msg, json_t *params)
{
    const char *client = tako_msg_address (msg);
    const char *request_id = tako_msg_str (msg, "request_id");
    json_t *name = json_object_get (params, "job_type");
    json_t *pin = json_object_get (params, "job_ref");
    size_t count = 0;
    bool valid = true;
    const char **requirements = params_requirements (params, &count, &valid);
    if ((name && !json_is_string (name)) || (pin && !json_is_string (pin)) || !valid
    ||  (pin && !tako_envspec_is_job_ref (json_string_value (pin)))) {
        send_reply (self, client, request_id, 400, NULL,
                    "params: job_type (string), requirements (strings), job_ref (name@sha256:<hex>)");
        free (requirements);
        return;
    }
    const char *job_ref = json_string_value (pin);
    if (job_ref && resolve_pinned (self, msg, job_ref)) {
        free (requirements);
        return;
    }
    const char *job_type = name? json_string_value (name): TAKO_CONFIG_DEFAULT_JOB_TYPE;
    tako_envspec_t *spec = request_spec (self, msg, WAITER_RESOLVE, job_type, requirements, count);
    free (requirements);
    if (!spec)
        return;
    if (job_ref && !tako_envspec_ref_matches (job_ref, tako_envspec_digest (spec))) {
        //  The pinned version is gone and the job type has changed since:
        //  we cannot make the old environment again.
        send_reply (self, client, request_id, 404, NULL,
                    "job version not available: its environment was removed");
        tako_envspec_destroy (&spec);
        return;
    }
    waiter_t *waiter = waiter_new (WAITER_RESOLVE, msg, spec);
    if (!waiter)
        send_reply (self, client, request_id, 500, NULL, "out of memory");
    else
    if (answer_if_built (self, waiter, spec))
        ;
    else
    if (self->config->production_mode) {
        char *reason = zsys_sprintf ("environment not built: run tako-vm build %s", job_type);
        send_reply (self, client, request_id, 409, NULL, reason? reason: "environment not built");
        zstr_free (&reason);
    }
    else
        build_join (self, &waiter, &spec, false);
    waiter_destroy (&waiter);
    tako_envspec_destroy (&spec);
}

static void
handle_query (builder_t *self, tako_msg_t *msg)
{
    json_t *params = tako_msg_object (msg, "params");
    if (!streq (tako_msg_str (msg, "query"), "env.resolve"))
        send_reply (self, tako_msg_address (msg), tako_msg_str (msg, "request_id"), 400, NULL,
                    "unknown query");
    else
    if (params && !json_is_object (params) && !json_is_null (params))
        send_reply (self, tako_msg_address (msg), tako_msg_str (msg, "request_id"), 400, NULL,
                    "params must be an object");
    else
        handle_resolve (self, msg, params);
}

//  The recorder's answer to a version.register, or the broker's ERROR.
static void
handle_upstream (tako_msg_t *msg)
{
    int code = (int) tako_msg_int (msg, "code", 500);
    if (code != 200)
        tako_warning (LOG, "version not registered: %d %s", code,
                      tako_msg_str (msg, "reason")? tako_msg_str (msg, "reason"): "");
}

static void
handle_message (builder_t *self, tako_msg_t *msg)
{
    const char *command = tako_msg_command (msg);
    if (streq (command, "BUILD"))
        handle_build (self, msg);
    else
    if (streq (command, "QUERY"))
        handle_query (self, msg);
    else
    if (streq (command, "REPLY") || streq (command, "ERROR"))
        handle_upstream (msg);
    else
        tako_debug (LOG, "ignoring %s from %s", command, tako_msg_address (msg));
}

//  ---------------------------------------------------------------------
//  Actor

static void
handle_pipe (builder_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "INSTANCE"))
        zstr_send (self->pipe, tako_peer_instance (self->peer));
    zstr_free (&command);
}

static void
builder_destroy (builder_t **self_p)
{
    builder_t *self = *self_p;
    if (!self)
        return;
    if (self->builds) {
        //  Stop every pip first, then wait for the workers one by one.
        for (build_t *build = (build_t *) zhashx_first (self->builds); build;
             build = (build_t *) zhashx_next (self->builds))
            atomic_store (&build->cancel, true);
        for (build_t *build = (build_t *) zhashx_first (self->builds); build;
             build = (build_t *) zhashx_next (self->builds))
            build_destroy (&build);
        zhashx_destroy (&self->builds);
    }
    zpoller_destroy (&self->poller);
    tako_events_destroy (&self->events);
    tako_peer_destroy (&self->peer);
    free (self);
    *self_p = NULL;
}

static builder_t *
builder_new (zsock_t *pipe, tako_actor_args_t *args)
{
    builder_t *self = (builder_t *) calloc (1, sizeof (builder_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->config = args->config;
    self->builds = zhashx_new ();
    const char *endpoint = args->broker_endpoint? args->broker_endpoint:
                                                  args->config->broker_endpoint;
    self->peer = tako_peer_new (endpoint, "builder", &args->heartbeat);
    const char *events = args->events_endpoint? args->events_endpoint:
                                                args->config->event_publish_endpoint;
    self->events = events? tako_events_new_publisher (events): NULL;
    if (!self->events)
        tako_warning (LOG, "no event hub: builds are not published");
    if (!self->builds || !self->peer) {
        builder_destroy (&self);
        return NULL;
    }
    self->peer_socket = tako_peer_socket (self->peer);
    self->poller = zpoller_new (pipe, self->peer_socket, NULL);
    if (!self->poller)
        builder_destroy (&self);
    return self;
}

void
tako_builder_actor (zsock_t *pipe, void *args)
{
    builder_t *self = builder_new (pipe, (tako_actor_args_t *) args);
    zsock_signal (pipe, self? 0: 1);
    if (!self)
        return;
    tako_info (LOG, "%s ready", tako_peer_instance (self->peer));
    while (!self->terminated) {
        void *which = zpoller_wait (self->poller, tako_peer_tick_due (self->peer));
        if (which == pipe)
            handle_pipe (self);
        else
        if (which == self->peer_socket) {
            tako_msg_t *msg = tako_peer_handle_input (self->peer);
            if (msg)
                handle_message (self, msg);
            tako_msg_destroy (&msg);
        }
        else
        if (which)
            handle_worker (self, (zactor_t *) which);
        else
        if (zpoller_terminated (self->poller))
            break;
        if (tako_peer_tick (self->peer) == 1) {
            zpoller_remove (self->poller, self->peer_socket);
            self->peer_socket = tako_peer_socket (self->peer);
            zpoller_add (self->poller, self->peer_socket);
        }
    }
    tako_info (LOG, "%s stopping", tako_peer_instance (self->peer));
    builder_destroy (&self);
}

//  ---------------------------------------------------------------------
//  Self-test: a broker, an event hub, the builder, a client, and a peer
//  standing in for the recorder.

#define TEST_BEAT_MS    100
//  Peers the test thread serves only now and then (the stand-in recorder
//  is silent while the thread waits for a build): a liveness long enough
//  for a build under valgrind, where 3 beats (300 ms) were not.
#define TEST_LIVENESS   50
#define TEST_WAIT_MS    30000
#define TEST_WALK_FDS   16

static int
test_remove_entry (const char *path, const struct stat *info, int flag, struct FTW *walk)
{
    (void) info; (void) flag; (void) walk;
    remove (path);
    return 0;
}

static tako_config_t *
test_config (const char *data_dir, const char *wheels, bool production)
{
    char *yaml = zsys_sprintf (
        "data_dir: %s\n"
        "production_mode: %s\n"
        "pip_find_links: [%s]\n"
        "job_types:\n"
        "  - name: broken\n"
        "    requirements: [nosuchpkg==1.0]\n", data_dir, production? "true": "false", wheels);
    tako_config_t *config = tako_config_new ();
    tako_config_errors_t *errors = tako_config_errors_new ();
    assert (yaml && config && errors);
    assert (tako_config_load_string (config, yaml, strlen (yaml), "test.yaml", errors) == 0);
    assert (tako_config_finish (config, errors) == 0);
    tako_config_errors_destroy (&errors);
    zstr_free (&yaml);
    return config;
}

static tako_msg_t *
test_build_request (const char *job_type, const char *request_id)
{
    tako_msg_t *msg = tako_msg_new ("BUILD");
    tako_msg_set_address (msg, "builder");
    tako_msg_set_str (msg, "request_id", request_id);
    tako_msg_set_str (msg, "job_type", job_type);
    return msg;
}

static tako_msg_t *
test_resolve_request (const char *params_json, const char *request_id)
{
    tako_msg_t *msg = tako_msg_new ("QUERY");
    json_t *params = json_loads (params_json, 0, NULL);
    assert (params);
    tako_msg_set_address (msg, "builder");
    tako_msg_set_str (msg, "request_id", request_id);
    tako_msg_set_str (msg, "query", "env.resolve");
    tako_msg_set_object (msg, "params", params);
    json_decref (params);
    return msg;
}

//  The next message for the client; the builder must be registered
//  first, so a 503 from the broker means "ask again".
static tako_msg_t *
test_ask (tako_peer_t *client, tako_msg_t *(*make) (const char *, const char *),
          const char *argument, const char *request_id)
{
    int64_t deadline = zclock_mono () + TEST_WAIT_MS;
    while (zclock_mono () < deadline) {
        tako_msg_t *request = make (argument, request_id);
        assert (tako_peer_send (client, &request) == 0);
        tako_msg_t *answer = tako_peer_recv (client, TEST_WAIT_MS);
        assert (answer);
        if (!(streq (tako_msg_command (answer), "ERROR") && *tako_msg_address (answer) == 0))
            return answer;
        tako_msg_destroy (&answer);
        zclock_sleep (TEST_BEAT_MS);
    }
    assert (false);
    return NULL;
}

void
tako_builder_test (bool verbose)
{
    (void) verbose;
    tako_log_set_level (verbose? TAKO_LOG_DEBUG: TAKO_LOG_CRITICAL);
    char root [] = "/tmp/tako-builder-test-XXXXXX";
    assert (mkdtemp (root));
    char *data_dir = zsys_sprintf ("%s/data", root);
    char *wheels = zsys_sprintf ("%s/wheels", root);
    assert (data_dir && wheels && mkdir (wheels, 0755) == 0);
    tako_config_t *config = test_config (data_dir, wheels, false);

    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", TEST_BEAT_MS, TEST_LIVENESS, NULL };
    zactor_t *broker = zactor_new (tako_broker_actor, &broker_args);
    char *endpoint = tako_broker_endpoint (broker);
    tako_hub_args_t hub_args = { "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", NULL, NULL };
    zactor_t *hub = zactor_new (tako_hub_actor, &hub_args);
    char *publish = NULL, *subscribe = NULL;
    assert (endpoint && tako_hub_endpoints (hub, &publish, &subscribe) == 0);
    tako_events_t *watcher = tako_events_new_subscriber (subscribe);
    assert (watcher && tako_events_follow_builds (watcher, "broken") == 0);
    int64_t welcome_by = zclock_mono () + TEST_WAIT_MS;
    while (!tako_events_welcomed (watcher) && zclock_mono () < welcome_by)
        tako_events_recv (watcher, TEST_BEAT_MS);
    assert (tako_events_welcomed (watcher));

    tako_heartbeat_t beat = { TEST_BEAT_MS, TEST_LIVENESS };
    tako_peer_t *recorder = tako_peer_new (endpoint, "recorder", &beat);
    tako_peer_t *client = tako_peer_new_client (endpoint, "test", &beat);
    tako_actor_args_t args = { .config = config, .broker_endpoint = endpoint,
                               .events_endpoint = publish, .heartbeat = beat };
    assert (recorder && client);
    //  The stand-in recorder must be registered before the builder sends
    //  it version.register (else the broker answers "no recorder").
    int64_t registered_by = zclock_mono () + TEST_WAIT_MS;
    while ((!tako_peer_registered (recorder) || !tako_peer_registered (client))
       &&  zclock_mono () < registered_by) {
        tako_msg_t *early = tako_peer_recv (recorder, TEST_BEAT_MS);
        tako_msg_destroy (&early);
        early = tako_peer_recv (client, 1);
        tako_msg_destroy (&early);
    }
    assert (tako_peer_registered (recorder) && tako_peer_registered (client));
    zactor_t *builder = zactor_new (tako_builder_actor, &args);
    assert (builder);

    //  The default job type: an empty environment, built at once, and
    //  its version registered with the recorder.
    tako_msg_t *answer = test_ask (client, test_build_request, "default", "b1");
    assert (streq (tako_msg_command (answer), "BUILT"));
    assert (streq (tako_msg_str (answer, "status"), "built"));
    assert (streq (tako_msg_str (answer, "request_id"), "b1"));
    assert (strlen (tako_msg_str (answer, "digest")) == 64);
    assert (strncmp (tako_msg_str (answer, "job_ref"), "default@sha256:", 15) == 0);
    assert (!tako_msg_bool (answer, "cached", true));
    char *digest = strdup (tako_msg_str (answer, "digest"));
    tako_msg_destroy (&answer);
    tako_msg_t *register_query = tako_peer_recv (recorder, TEST_WAIT_MS);
    assert (register_query && streq (tako_msg_str (register_query, "query"), "version.register"));
    json_t *version = json_object_get (tako_msg_object (register_query, "params"), "version");
    assert (streq (json_string_value (json_object_get (version, "digest")), digest));
    assert (streq (json_string_value (json_object_get (version, "job_type")), "default"));
    tako_msg_destroy (&register_query);

    //  Again: cached, same digest.
    answer = test_ask (client, test_build_request, "default", "b2");
    assert (streq (tako_msg_command (answer), "BUILT") && tako_msg_bool (answer, "cached", false));
    assert (streq (tako_msg_str (answer, "digest"), digest));
    tako_msg_destroy (&answer);

    //  Unknown job type: 404.
    answer = test_ask (client, test_build_request, "nope", "b3");
    assert (streq (tako_msg_command (answer), "ERROR") && tako_msg_int (answer, "code", 0) == 404);
    tako_msg_destroy (&answer);

    //  A package no wheel directory has: pip runs in a worker, and the
    //  actor answers other requests meanwhile (the resolve comes back
    //  while pip is still looking).
    tako_msg_t *request = test_build_request ("broken", "b4");
    assert (tako_peer_send (client, &request) == 0);
    request = test_resolve_request ("{}", "r0");
    assert (tako_peer_send (client, &request) == 0);
    answer = tako_peer_recv (client, TEST_WAIT_MS);
    assert (answer && streq (tako_msg_command (answer), "REPLY"));
    assert (streq (tako_msg_str (answer, "request_id"), "r0"));
    tako_msg_destroy (&answer);
    answer = tako_peer_recv (client, TEST_WAIT_MS);
    assert (answer && streq (tako_msg_command (answer), "ERROR"));
    assert (streq (tako_msg_str (answer, "request_id"), "b4"));
    assert (tako_msg_int (answer, "code", 0) == 422);
    assert (strncmp (tako_msg_str (answer, "reason"), "dependency_error: ", 18) == 0);
    assert (strstr (tako_msg_str (answer, "reason"), "nosuchpkg"));
    assert (!strstr (tako_msg_str (answer, "reason"), root));
    tako_msg_destroy (&answer);
    tako_msg_t *event = tako_events_recv (watcher, TEST_WAIT_MS);
    bool finished = false;
    while (event && !finished) {
        assert (strncmp (tako_msg_str (event, "job_id"), "broken@sha256:", 14) == 0);
        finished = streq (tako_msg_str (event, "kind"), "build_finished");
        if (finished)
            assert (streq (tako_msg_str (event, "status"), "failed"));
        tako_msg_destroy (&event);
        if (!finished)
            event = tako_events_recv (watcher, TEST_WAIT_MS);
    }
    assert (finished);

    //  env.resolve: the default environment's path, nothing built.
    answer = test_ask (client, test_resolve_request, "{}", "r1");
    assert (streq (tako_msg_command (answer), "REPLY") && tako_msg_int (answer, "code", 0) == 200);
    json_t *result = tako_msg_object (answer, "result");
    char *env_path = tako_envbuild_env_path (data_dir, digest);
    assert (streq (json_string_value (json_object_get (result, "env_path")), env_path));
    assert (json_is_false (json_object_get (result, "built")));
    zstr_free (&env_path);
    tako_msg_destroy (&answer);
    answer = test_ask (client, test_resolve_request, "{\"requirements\": [\"--index-url=x\"]}", "r2");
    assert (tako_msg_int (answer, "code", 0) == 422);
    tako_msg_destroy (&answer);
    answer = test_ask (client, test_resolve_request,
                       "{\"job_type\": \"broken\", \"job_ref\": \"broken@sha256:000000000000\"}", "r3");
    assert (tako_msg_int (answer, "code", 0) == 404);
    tako_msg_destroy (&answer);
    zactor_destroy (&builder);

    //  production_mode: no build on demand, a clear error instead.
    tako_config_destroy (&config);
    config = test_config (data_dir, wheels, true);
    args.config = config;
    builder = zactor_new (tako_builder_actor, &args);
    answer = test_ask (client, test_resolve_request, "{\"job_type\": \"broken\"}", "r4");
    assert (tako_msg_int (answer, "code", 0) == 409);
    assert (streq (tako_msg_str (answer, "reason"),
                   "environment not built: run tako-vm build broken"));
    tako_msg_destroy (&answer);
    answer = test_ask (client, test_resolve_request, "{}", "r5");
    assert (tako_msg_int (answer, "code", 0) == 200);
    tako_msg_destroy (&answer);

    zactor_destroy (&builder);
    tako_peer_destroy (&client);
    tako_peer_destroy (&recorder);
    tako_events_destroy (&watcher);
    zstr_free (&publish);
    zstr_free (&subscribe);
    zstr_free (&endpoint);
    zactor_destroy (&hub);
    zactor_destroy (&broker);
    tako_config_destroy (&config);
    free (digest);
    nftw (root, test_remove_entry, TEST_WALK_FDS, FTW_DEPTH | FTW_PHYS);
    zstr_free (&data_dir);
    zstr_free (&wheels);
    tako_log_set_level (TAKO_LOG_INFO);
}
