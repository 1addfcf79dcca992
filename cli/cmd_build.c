/*  tako-vm build JOB_TYPE | --all — build job type environments.

    By default asks the running server's builder (BUILD through the
    service broker) and prints its progress, which arrives as build
    events on the event hub; the builder registers the version with the
    recorder. With --local it builds here, in this process, with this
    host's configuration and no server (the version is then registered
    the next time the server's builder is asked for it).

    Progress goes to stderr, one line per step; the outcome of each job
    type goes to stdout, as a line or (--json) one JSON object per line:
    {status, job_type, version, digest, image_ref, built_at, duration_ms,
    cached}. Exit 0 when every environment is ready; 1 when one failed
    (the reason on stderr) or the server did not answer; 2 for usage
    errors.                                                              */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include <jansson.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_client.h"
#include "tako_events.h"
#include "actors/builder/tako_envspec.h"
#include "actors/builder/tako_envbuild.h"

//  Beyond pip's own deadline (max_startup_timeout), what a server build
//  may take: waiting for an identical build, registering the version.
#define BUILD_ANSWER_ALLOWANCE_MS   30000
//  How long we wait for the event hub's welcome before asking (so that
//  the first progress events are not missed); the build goes on anyway.
#define BUILD_WELCOME_WAIT_MS       1000
//  Between two looks at the answer while printing events.
//  After the answer, the build's last progress event is awaited this long.
#define BUILD_LAST_EVENT_WAIT_MS 1000
#define BUILD_EVENT_SLICE_MS        100
#define MS_PER_SECOND               1000

typedef struct {
    const char *job_type;
    const char *version_tag;
    const char *connect;
    bool all;
    bool local;
    bool json;
    bool force;
    bool quiet;
} build_options_t;

//  0, or 2 (usage error, reported).
static int
parse_options (int argc, char **argv, build_options_t *options)
{
    for (int arg = 1; arg < argc; arg++) {
        const char *option = argv [arg];
        bool *flag = streq (option, "--all")? &options->all:
                     streq (option, "--local")? &options->local:
                     streq (option, "--json")? &options->json:
                     streq (option, "--force")? &options->force:
                     streq (option, "--quiet") || streq (option, "-q")? &options->quiet: NULL;
        if (flag) {
            *flag = true;
            continue;
        }
        if (option [0] != '-') {
            if (options->job_type) {
                fprintf (stderr, "tako-vm build: unexpected argument '%s'\n", option);
                return 2;
            }
            options->job_type = option;
            continue;
        }
        const char *value = arg + 1 < argc? argv [++arg]: NULL;
        if (!value) {
            fprintf (stderr, "tako-vm build: %s needs a value\n", option);
            return 2;
        }
        if (streq (option, "--version-tag"))
            options->version_tag = value;
        else
        if (streq (option, "--connect"))
            options->connect = value;
        else {
            fprintf (stderr, "tako-vm build: unknown option '%s' (see tako-vm build --help)\n", option);
            return 2;
        }
    }
    if (!options->job_type == !options->all) {
        fprintf (stderr, "tako-vm build: name one JOB_TYPE, or --all\n");
        return 2;
    }
    if (options->version_tag && !tako_envspec_version_tag_valid (options->version_tag)) {
        fprintf (stderr, "tako-vm build: --version-tag wants 1 to 64 letters, digits, "
                         "'.', '_' or '-'\n");
        return 2;
    }
    return 0;
}

//  The outcome line (or JSON object) of one built job type.
static void
outcome_print (const build_options_t *options, json_t *outcome)
{
    if (options->json) {
        char *text = json_dumps (outcome, JSON_SORT_KEYS | JSON_COMPACT);
        if (text)
            printf ("%s\n", text);
        free (text);
    }
    else
        printf ("%s: %s %s (digest %s, %s in %.1f s)\n",
                json_string_value (json_object_get (outcome, "job_type")),
                json_string_value (json_object_get (outcome, "status")),
                json_string_value (json_object_get (outcome, "version")),
                json_string_value (json_object_get (outcome, "digest")),
                json_is_true (json_object_get (outcome, "cached"))? "cached": "built",
                (double) json_integer_value (json_object_get (outcome, "duration_ms")) / MS_PER_SECOND);
    fflush (stdout);
}

static json_t *
outcome_new (const char *job_type, const char *job_ref, const char *digest,
             const char *built_at, int64_t duration_ms, bool cached)
{
    char *image_ref = zsys_sprintf ("%s/%s", TAKO_ENVBUILD_DIR, digest);
    json_t *outcome = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b}",
        "status", "built", "job_type", job_type, "version", job_ref, "digest", digest,
        "image_ref", image_ref? image_ref: "", "built_at", built_at? built_at: "",
        "duration_ms", (json_int_t) duration_ms, "cached", cached);
    zstr_free (&image_ref);
    return outcome;
}

//  ---------------------------------------------------------------------
//  --local: build in this process

static void
local_progress (void *arg, const char *phase, const char *detail)
{
    const build_options_t *options = (const build_options_t *) arg;
    if (!options->quiet)
        fprintf (stderr, "  %s: %s\n", phase, detail);
}

static int
build_local_one (tako_config_t *config, const build_options_t *options,
                 const tako_config_job_type_t *job_type)
{
    char *error = NULL;
    tako_envspec_t *spec = tako_envspec_new (job_type, NULL, 0, &error);
    if (!spec) {
        fprintf (stderr, "tako-vm build: %s: %s\n", job_type->name, error? error: "out of memory");
        free (error);
        return 1;
    }
    if (!options->quiet)
        fprintf (stderr, "building %s (%s)\n", job_type->name, tako_envspec_job_ref (spec));
    tako_envbuild_options_t build = { .config = config, .force = options->force,
                                      .progress = local_progress, .progress_arg = (void *) options };
    tako_envbuild_result_t result = { 0 };
    int rc = 0;
    if (tako_envbuild_run (spec, &build, &result) == 0) {
        json_t *outcome = outcome_new (job_type->name, tako_envspec_job_ref (spec),
                                       tako_envspec_digest (spec), result.built_at,
                                       result.duration_ms, result.cached);
        if (options->version_tag)
            json_object_set_new (outcome, "version_tag", json_string (options->version_tag));
        outcome_print (options, outcome);
        json_decref (outcome);
    }
    else {
        fprintf (stderr, "tako-vm build: %s: %s: %s\n", job_type->name,
                 result.error_type, result.reason);
        rc = 1;
    }
    tako_envbuild_result_clear (&result);
    tako_envspec_destroy (&spec);
    return rc;
}

//  ---------------------------------------------------------------------
//  Through the server's builder

//  Print one build event as a progress line; true for the last one
//  (done or failed).
static bool
event_print (const build_options_t *options, tako_msg_t *event)
{
    json_t *data = tako_msg_object (event, "data");
    const char *phase = json_string_value (json_object_get (data, "phase"));
    const char *detail = json_string_value (json_object_get (data, "detail"));
    //  A failure's reason is printed once, with the answer.
    if (!options->quiet && phase && !streq (phase, "failed"))
        fprintf (stderr, "  %s: %s\n", phase, detail? detail: "");
    return phase && (streq (phase, "done") || streq (phase, "failed"));
}

//  Wait for the answer with this request_id, printing build events.
static tako_msg_t *
answer_wait (tako_peer_t *peer, tako_events_t *events, const build_options_t *options,
             const char *request_id, int64_t deadline)
{
    bool building = false;          //  progress seen: a last event will come
    bool last = false;              //  and it came
    while (!zsys_interrupted && zclock_mono () < deadline) {
        for (tako_msg_t *event; events && (event = tako_events_recv (events, 0)); ) {
            last = event_print (options, event) || last;
            building = true;
            tako_msg_destroy (&event);
        }
        tako_msg_t *answer = tako_peer_recv (peer, BUILD_EVENT_SLICE_MS);
        if (answer && streq (tako_msg_str (answer, "request_id")? tako_msg_str (answer, "request_id"): "",
                             request_id)) {
            //  The last event was published before the answer was sent,
            //  but it travels through the hub, the answer through the
            //  broker: the answer may come first. Wait for it a little.
            int64_t last_by = zclock_mono () + BUILD_LAST_EVENT_WAIT_MS;
            last = last || (!building && !streq (tako_msg_command (answer), "BUILT"));
            while (events && !last && zclock_mono () < last_by) {
                tako_msg_t *event = tako_events_recv (events, (int) (last_by - zclock_mono ()));
                if (event)
                    last = event_print (options, event);
                tako_msg_destroy (&event);
            }
            return answer;
        }
        tako_msg_destroy (&answer);
    }
    return NULL;
}

static int
build_remote_one (tako_config_t *config, const build_options_t *options, tako_peer_t *peer,
                  const char *endpoint, const char *job_type, int sequence)
{
    tako_events_t *events = tako_events_new_subscriber (config->event_subscribe_endpoint);
    if (events && tako_events_follow_builds (events, job_type) == 0) {
        int64_t welcome_by = zclock_mono () + BUILD_WELCOME_WAIT_MS;
        while (!tako_events_welcomed (events) && zclock_mono () < welcome_by)
            tako_events_recv (events, BUILD_EVENT_SLICE_MS);
    }
    if (!options->quiet)
        fprintf (stderr, "building %s\n", job_type);
    char request_id [64];
    snprintf (request_id, sizeof request_id, "build-%s-%d", tako_peer_instance (peer), sequence);
    tako_msg_t *request = tako_msg_new ("BUILD");
    tako_msg_set_address (request, "builder");
    tako_msg_set_str (request, "request_id", request_id);
    int rc = tako_msg_set_str (request, "job_type", job_type);
    if (options->version_tag)
        rc |= tako_msg_set_str (request, "version_tag", options->version_tag);
    if (options->force)
        rc |= tako_msg_set_bool (request, "force", true);
    if (rc) {
        fprintf (stderr, "tako-vm build: invalid job type name or version tag\n");
        tako_msg_destroy (&request);
        tako_events_destroy (&events);
        return 1;
    }
    tako_peer_send (peer, &request);
    int64_t deadline = zclock_mono () + (int64_t) config->max_startup_timeout * MS_PER_SECOND
                     + BUILD_ANSWER_ALLOWANCE_MS;
    tako_msg_t *answer = answer_wait (peer, events, options, request_id, deadline);
    tako_events_destroy (&events);
    if (!answer) {
        fprintf (stderr, "tako-vm build: no answer from the builder at %s\n", endpoint);
        return 1;
    }
    rc = 1;
    if (streq (tako_msg_command (answer), "BUILT")
    &&  streq (tako_msg_str (answer, "status"), "built")) {
        json_t *outcome = outcome_new (job_type, tako_msg_str (answer, "job_ref"),
                                       tako_msg_str (answer, "digest"),
                                       tako_msg_str (answer, "built_at"),
                                       tako_msg_int (answer, "duration_ms", 0),
                                       tako_msg_bool (answer, "cached", false));
        if (tako_msg_str (answer, "version_tag"))
            json_object_set_new (outcome, "version_tag",
                                 json_string (tako_msg_str (answer, "version_tag")));
        outcome_print (options, outcome);
        json_decref (outcome);
        rc = 0;
    }
    else
        fprintf (stderr, "tako-vm build: %s: %s\n", job_type,
                 tako_msg_str (answer, "reason")? tako_msg_str (answer, "reason"): "the build failed");
    tako_msg_destroy (&answer);
    return rc;
}

//  ---------------------------------------------------------------------

static int
build_run (tako_cli_t *cli, int argc, char **argv)
{
    build_options_t options = { 0 };
    int rc = parse_options (argc, argv, &options);
    if (rc)
        return rc;
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fputs (problems? problems: "tako-vm build: cannot load the configuration\n", stderr);
        free (problems);
        return 1;
    }
    if (options.job_type && !tako_config_job_type (config, options.job_type)) {
        //  With a server, its configuration decides; here we only know ours.
        if (options.local) {
            fprintf (stderr, "tako-vm build: unknown job type '%s'\n", options.job_type);
            tako_config_destroy (&config);
            return 1;
        }
    }
    zsys_init ();           //  Ctrl-C ends the wait
    const char *endpoint = options.connect? options.connect: config->broker_endpoint;
    tako_client_t *client = options.local? NULL: tako_client_new (endpoint, NULL);
    if (!options.local && !client) {
        fprintf (stderr, "tako-vm build: invalid endpoint '%s'\n", endpoint);
        tako_config_destroy (&config);
        return 1;
    }
    for (size_t i = 0; i < config->job_type_count; i++) {
        const tako_config_job_type_t *job_type = &config->job_types [i];
        if (!options.all && !streq (job_type->name, options.job_type))
            continue;
        int one = options.local? build_local_one (config, &options, job_type):
                  build_remote_one (config, &options, tako_client_peer (client), endpoint,
                                    job_type->name, (int) i);
        rc = rc? rc: one;
    }
    if (!options.local && options.job_type && !tako_config_job_type (config, options.job_type))
        rc = build_remote_one (config, &options, tako_client_peer (client), endpoint,
                               options.job_type, 0);
    tako_client_destroy (&client);
    tako_config_destroy (&config);
    return rc;
}

const tako_command_t tako_command_build = {
    "build", "JOB_TYPE | --all [--version-tag T] [--local] [--force] [--json] [--connect ENDPOINT]",
    "build the environment of a job type (pip install into a content-addressed directory)",
    build_run,
    "Builds the environment of JOB_TYPE (every job type with --all): installs\n"
    "its requirements with pip into data_dir/envs/<digest>, where <digest> is\n"
    "the sha256 of the job type's environment fields. A built environment is\n"
    "reused at once. Progress goes to stderr; the version (name@sha256:<12 hex>),\n"
    "digest and timing of each job type to stdout. Exit 0 when every\n"
    "environment is ready, 1 when a build failed (the reason on stderr).\n"
    "\n"
    "options:\n"
    "  --all                build every job type of the configuration\n"
    "  --version-tag T      label the version (registered with it)\n"
    "  --local              build in this process, without a server\n"
    "  --force              rebuild even if the environment exists\n"
    "  --json               one JSON object per job type on stdout\n"
    "  -q, --quiet          no progress lines\n"
    "  --connect ENDPOINT   the service broker (default: broker_endpoint)\n"
};
