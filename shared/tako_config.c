/*  tako_config — defaults, search order, cross-field checks, lookups.

    The pieces: tako_config_values.c (option tables, value parsing),
    tako_config_yaml.c (the file), tako_config_env.c (TAKO_VM_*),
    tako_config_json.c (output), tako_config_errors.c (problem list),
    tako_config_api_keys.c (key hashing).                                  */

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tako_config_private.h"

#define streq(a, b) (strcmp ((a), (b)) == 0)

//  Defaults, as in the Tako VM configuration reference unless noted.
#define DEFAULT_MAX_WORKERS             4
#define DEFAULT_SERVER_HOST             "127.0.0.1"     //  theirs: 0.0.0.0
#define DEFAULT_SERVER_PORT             8000
#define DEFAULT_API_MAX_PAYLOAD_BYTES   (2 * MIB)
#define DEFAULT_RATE_LIMIT_REQUESTS     120
#define DEFAULT_RATE_LIMIT_WINDOW       60
#define DEFAULT_TIMEOUT                 30
#define DEFAULT_MAX_TIMEOUT             300
#define DEFAULT_STARTUP_TIMEOUT         60              //  REST contract; theirs: 120
#define DEFAULT_MAX_STARTUP_TIMEOUT     600
#define DEFAULT_MAX_CODE_BYTES          (100 * KIB)
#define DEFAULT_MAX_INPUT_BYTES         MIB
#define DEFAULT_MAX_STREAM_BYTES        (64 * KIB)
#define DEFAULT_MAX_RETRY_ATTEMPTS      2
#define DEFAULT_RETRY_BASE_DELAY        1.0
#define DEFAULT_QUEUE_WAIT_TIMEOUT      1.0
#define DEFAULT_PIDS_LIMIT              100
#define DEFAULT_NOFILE                  256
#define DEFAULT_NPROC                   50
#define DEFAULT_FSIZE                   (100 * MIB)
#define DEFAULT_TMPFS_SIZE              (100 * MIB)
#define DEFAULT_MAX_QUEUE_SIZE          100
#define DEFAULT_MAX_ARTIFACT_BYTES      (10 * MIB)
#define DEFAULT_MAX_TOTAL_ARTIFACTS     (50 * MIB)
#define DEFAULT_RECORD_TTL_DAYS         30
#define DEFAULT_BROKER_ENDPOINT         "tcp://127.0.0.1:5555"
#define DEFAULT_EVENT_PUBLISH_ENDPOINT  "tcp://127.0.0.1:5556"
#define DEFAULT_EVENT_SUBSCRIBE_ENDPOINT "tcp://127.0.0.1:5557"
#define DEFAULT_SANDBOX_PYTHON          "/usr/bin/python3"

//  The search order after an explicit file and $TAKO_VM_CONFIG; the
//  home entry is relative to $HOME.
#define SEARCH_CURRENT      "tako_vm.yaml"
#define SEARCH_CURRENT_SUB  "config/tako_vm.yaml"
#define SEARCH_HOME         ".tako_vm/config.yaml"
#define SEARCH_SYSTEM       "/etc/tako_vm/config.yaml"

typedef struct {
    char *option;           //  "default_timeout", "job_types[x].timeout"
    int line;               //  line in the source file, 0 if from env
    char *env_name;         //  the variable that set it, or NULL
} origin_entry_t;

struct tako_config_origin_t {
    char *source;           //  file read, or NULL
    origin_entry_t *entries;
    size_t count;
    size_t capacity;
};

//  ---------------------------------------------------------------------
//  Origins

static origin_entry_t *
origin_find (tako_config_t *self, const char *option)
{
    for (size_t i = 0; self->origin && i < self->origin->count; i++)
        if (strcmp (self->origin->entries [i].option, option) == 0)
            return &self->origin->entries [i];
    return NULL;
}

void
tako_config_origin_set (tako_config_t *self, const char *option, int line, const char *env_name)
{
    tako_config_origin_t *origin = self->origin;
    if (!origin)
        return;
    origin_entry_t *entry = origin_find (self, option);
    if (!entry) {
        if (origin->count == origin->capacity) {
            size_t capacity = origin->capacity? origin->capacity * 2: 32;
            origin_entry_t *entries = realloc (origin->entries, capacity * sizeof *entries);
            if (!entries)
                return;
            origin->entries = entries;
            origin->capacity = capacity;
        }
        entry = &origin->entries [origin->count];
        entry->option = strdup (option);
        if (!entry->option)
            return;
        entry->env_name = NULL;
        origin->count++;
    }
    entry->line = line;
    free (entry->env_name);
    entry->env_name = env_name? strdup (env_name): NULL;
}

bool
tako_config_origin_known (tako_config_t *self, const char *option)
{
    return origin_find (self, option) != NULL;
}

void
tako_config_origin_set_source (tako_config_t *self, const char *file)
{
    if (!self->origin)
        return;
    free (self->origin->source);
    self->origin->source = file? strdup (file): NULL;
}

static void
origin_destroy (tako_config_origin_t **self_p)
{
    tako_config_origin_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++) {
        free (self->entries [i].option);
        free (self->entries [i].env_name);
    }
    free (self->entries);
    free (self->source);
    free (self);
    *self_p = NULL;
}

void
tako_config_error_at (tako_config_t *self, tako_config_errors_t *errors,
                      const char *option, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *message = NULL;
    if (vasprintf (&message, format, args) < 0)
        message = NULL;
    va_end (args);
    origin_entry_t *entry = origin_find (self, option);
    if (entry && entry->env_name)
        tako_config_errors_add (errors, false, NULL, 0, entry->env_name, "%s", message);
    else
        tako_config_errors_add (errors, false, entry && entry->line? self->origin->source: NULL,
                                entry? entry->line: 0, option, "%s", message);
    free (message);
}

//  ---------------------------------------------------------------------
//  Construction

static void
limits_set_defaults (tako_config_limits_t *limits)
{
    limits->pids_limit = DEFAULT_PIDS_LIMIT;
    limits->nofile_soft = limits->nofile_hard = DEFAULT_NOFILE;
    limits->nproc_soft = limits->nproc_hard = DEFAULT_NPROC;
    limits->fsize = DEFAULT_FSIZE;
    limits->tmpfs_size = DEFAULT_TMPFS_SIZE;
}

static void
strings_set_defaults (tako_config_t *self)
{
    self->server_host = strdup (DEFAULT_SERVER_HOST);
    self->database_url = strdup ("");
    self->data_dir = tako_config_default_data_dir (NULL);
    self->broker_endpoint = strdup (DEFAULT_BROKER_ENDPOINT);
    self->event_publish_endpoint = strdup (DEFAULT_EVENT_PUBLISH_ENDPOINT);
    self->event_subscribe_endpoint = strdup (DEFAULT_EVENT_SUBSCRIBE_ENDPOINT);
    self->pip_index_url = strdup ("");
    self->sandbox_rootfs = strdup ("");
    self->sandbox_python = strdup (DEFAULT_SANDBOX_PYTHON);
}

static bool
strings_present (tako_config_t *self)
{
    return self->server_host && self->database_url && self->data_dir && self->broker_endpoint
        && self->event_publish_endpoint && self->event_subscribe_endpoint
        && self->pip_index_url && self->sandbox_rootfs && self->sandbox_python;
}

tako_config_t *
tako_config_new (void)
{
    tako_config_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max_workers = DEFAULT_MAX_WORKERS;
    self->log_level = TAKO_LOG_INFO;
    self->server_port = DEFAULT_SERVER_PORT;
    self->api_max_payload_bytes = DEFAULT_API_MAX_PAYLOAD_BYTES;
    self->api_rate_limit_enabled = true;
    self->api_rate_limit_requests = DEFAULT_RATE_LIMIT_REQUESTS;
    self->api_rate_limit_window_seconds = DEFAULT_RATE_LIMIT_WINDOW;
    self->default_timeout = DEFAULT_TIMEOUT;
    self->max_timeout = DEFAULT_MAX_TIMEOUT;
    self->default_startup_timeout = DEFAULT_STARTUP_TIMEOUT;
    self->max_startup_timeout = DEFAULT_MAX_STARTUP_TIMEOUT;
    self->max_code_bytes = DEFAULT_MAX_CODE_BYTES;
    self->max_input_bytes = DEFAULT_MAX_INPUT_BYTES;
    self->max_stdout_bytes = self->max_stderr_bytes = DEFAULT_MAX_STREAM_BYTES;
    self->max_retry_attempts = DEFAULT_MAX_RETRY_ATTEMPTS;
    self->retry_base_delay = DEFAULT_RETRY_BASE_DELAY;
    self->queue_wait_timeout = DEFAULT_QUEUE_WAIT_TIMEOUT;
    self->enable_seccomp = self->enable_cap_restrictions = true;
    //  Our sandbox always runs job code as an unprivileged mapped uid.
    self->enable_userns = true;
    self->container_runtime = TAKO_RUNTIME_NATIVE;
    self->security_mode = TAKO_SECURITY_PERMISSIVE;
    limits_set_defaults (&self->container_limits);
    self->max_queue_size = DEFAULT_MAX_QUEUE_SIZE;
    self->max_artifact_bytes = DEFAULT_MAX_ARTIFACT_BYTES;
    self->max_total_artifacts_bytes = DEFAULT_MAX_TOTAL_ARTIFACTS;
    self->execution_record_ttl_days = DEFAULT_RECORD_TTL_DAYS;
    self->warm_pools_enabled = true;
    strings_set_defaults (self);
    self->origin = calloc (1, sizeof (tako_config_origin_t));
    self->job_types = calloc (1, sizeof (tako_config_job_type_t));
    if (self->job_types) {
        self->job_type_count = 1;
        tako_config_job_type_init (&self->job_types [0], TAKO_CONFIG_DEFAULT_JOB_TYPE);
        self->job_types [0].builtin = true;
    }
    if (!self->origin || !self->job_types || !self->job_types [0].name || !strings_present (self))
        tako_config_destroy (&self);
    return self;
}

void
tako_config_destroy (tako_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_config_t *self = *self_p;
    for (const option_t *option = tako_config_top_options; option->name; option++)
        if (option->kind == OPTION_STRING)
            free (*(char **) ((char *) self + option->offset));
    for (size_t i = 0; i < self->job_type_count; i++)
        tako_config_job_type_clear (&self->job_types [i]);
    free (self->job_types);
    tako_config_list_clear (&self->api_keys);
    tako_config_list_clear (&self->pip_find_links);
    origin_destroy (&self->origin);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------
//  Cross-field checks

static void
check_not_greater (tako_config_t *self, tako_config_errors_t *errors, const char *option,
                   long long value, const char *limit_name, long long limit)
{
    if (value > limit)
        tako_config_error_at (self, errors, option, "%lld is greater than %s (%lld)",
                              value, limit_name, limit);
}

static void
job_type_resolve (tako_config_t *self, tako_config_job_type_t *job_type,
                  tako_config_errors_t *errors)
{
    char option [256];
    snprintf (option, sizeof option, "job_types[%s].timeout", job_type->name);
    if (job_type->timeout == 0)
        job_type->timeout = self->default_timeout;
    else
        check_not_greater (self, errors, option, job_type->timeout, "max_timeout", self->max_timeout);

    snprintf (option, sizeof option, "job_types[%s].startup_timeout", job_type->name);
    if (job_type->startup_timeout == 0)
        job_type->startup_timeout = self->default_startup_timeout;
    else
        check_not_greater (self, errors, option, job_type->startup_timeout,
                           "max_startup_timeout", self->max_startup_timeout);

    tako_config_gpu_t *gpu = &job_type->gpu;
    if (!gpu->enabled)
        return;
    if (gpu->vendor == TAKO_GPU_VENDOR_NONE)
        gpu->vendor = TAKO_GPU_VENDOR_NVIDIA;
    snprintf (option, sizeof option, "job_types[%s].gpu.count", job_type->name);
    if (gpu->count == 0)
        gpu->count = gpu->device_ids.count? (int) gpu->device_ids.count: 1;
    else
    if (gpu->device_ids.count && (size_t) gpu->count != gpu->device_ids.count)
        tako_config_error_at (self, errors, option, "%d does not match the %zu device_ids",
                              gpu->count, gpu->device_ids.count);
}

int
tako_config_finish (tako_config_t *self, tako_config_errors_t *errors)
{
    size_t before = tako_config_errors_count (errors);
    check_not_greater (self, errors, "default_timeout", self->default_timeout,
                       "max_timeout", self->max_timeout);
    check_not_greater (self, errors, "default_startup_timeout", self->default_startup_timeout,
                       "max_startup_timeout", self->max_startup_timeout);
    tako_config_limits_t *limits = &self->container_limits;
    check_not_greater (self, errors, "container_limits.nofile_soft", limits->nofile_soft,
                       "nofile_hard", limits->nofile_hard);
    check_not_greater (self, errors, "container_limits.nproc_soft", limits->nproc_soft,
                       "nproc_hard", limits->nproc_hard);
    check_not_greater (self, errors, "max_artifact_bytes", self->max_artifact_bytes,
                       "max_total_artifacts_bytes", self->max_total_artifacts_bytes);
    for (size_t i = 0; i < self->job_type_count; i++)
        job_type_resolve (self, &self->job_types [i], errors);
    return tako_config_errors_count (errors) > before? -1: 0;
}

//  ---------------------------------------------------------------------
//  Search order and loading

static bool
file_exists (const char *path)
{
    struct stat status;
    return stat (path, &status) == 0;
}

//  An explicitly named file must exist; saying so beats silently
//  running on defaults.
static char *
explicit_file (const char *path, const char *named_by, tako_config_errors_t *errors)
{
    if (file_exists (path))
        return strdup (path);
    tako_config_errors_add (errors, false, path, 0, NULL, "cannot read (named by %s): %s",
                            named_by, strerror (errno));
    return NULL;
}

char *
tako_config_find_file (const char *explicit_path, char **envp, tako_config_errors_t *errors)
{
    if (explicit_path && *explicit_path)
        return explicit_file (explicit_path, "--config", errors);
    const char *from_env = tako_config_env_get (envp, "TAKO_VM_CONFIG");
    if (from_env && *from_env)
        return explicit_file (from_env, "TAKO_VM_CONFIG", errors);
    if (file_exists (SEARCH_CURRENT))
        return strdup (SEARCH_CURRENT);
    if (file_exists (SEARCH_CURRENT_SUB))
        return strdup (SEARCH_CURRENT_SUB);
    const char *home = tako_config_env_get (envp, "HOME");
    if (home && home [0] == '/') {
        char *path = tako_config_format ("%s/%s", home, SEARCH_HOME);
        if (path && file_exists (path))
            return path;
        free (path);
    }
    if (file_exists (SEARCH_SYSTEM))
        return strdup (SEARCH_SYSTEM);
    return NULL;
}

tako_config_t *
tako_config_load_from (const char *explicit_path, char **envp, tako_config_errors_t *errors)
{
    size_t before = tako_config_errors_count (errors);
    tako_config_t *self = tako_config_new ();
    if (!self) {
        tako_config_errors_add (errors, false, NULL, 0, NULL, "out of memory");
        return NULL;
    }
    char *path = tako_config_find_file (explicit_path, envp, errors);
    if (path)
        tako_config_load_file (self, path, errors);
    free (path);
    tako_config_apply_env (self, envp, errors);
    tako_config_finish (self, errors);
    if (tako_config_errors_count (errors) > before)
        tako_config_destroy (&self);
    return self;
}

static void
warnings_log (tako_config_errors_t *errors)
{
    for (size_t i = 0; i < tako_config_errors_size (errors); i++) {
        const tako_config_error_t *entry = tako_config_errors_get (errors, i);
        if (!entry->warning)
            continue;
        char location [64] = "";
        if (entry->line > 0)
            snprintf (location, sizeof location, ":%d", entry->line);
        tako_warning ("config", "%s%s%s%s%s%s", entry->file? entry->file: "", location,
                      entry->file? ": ": "", entry->option? entry->option: "",
                      entry->option? ": ": "", entry->message);
    }
}

tako_config_t *
tako_config_load (const char *explicit_path, char **error_text)
{
    tako_config_errors_t *errors = tako_config_errors_new ();
    if (!errors) {
        if (error_text)
            *error_text = strdup ("out of memory\n");
        return NULL;
    }
    tako_config_t *self = tako_config_load_from (explicit_path, NULL, errors);
    if (!self && error_text)
        *error_text = tako_config_errors_text (errors, false);
    if (self)
        warnings_log (errors);
    tako_config_errors_destroy (&errors);
    return self;
}

const char *
tako_config_source (tako_config_t *self)
{
    return self && self->origin? self->origin->source: NULL;
}

const tako_config_job_type_t *
tako_config_job_type (tako_config_t *self, const char *name)
{
    for (size_t i = 0; self && name && i < self->job_type_count; i++)
        if (strcmp (self->job_types [i].name, name) == 0)
            return &self->job_types [i];
    return NULL;
}

//  ---------------------------------------------------------------------
//  Self-test: read like an example of using the class.

static tako_config_t *
test_load (const char *yaml, char **envp, tako_config_errors_t *errors)
{
    tako_config_t *config = tako_config_new ();
    assert (config);
    tako_config_load_string (config, yaml, strlen (yaml), "tako_vm.yaml", errors);
    tako_config_apply_env (config, envp, errors);
    tako_config_finish (config, errors);
    return config;
}

void
tako_config_test (bool verbose)
{
    //  Defaults need no file.
    tako_config_t *config = tako_config_new ();
    assert (config);
    assert (config->max_workers == 4);
    assert (streq (config->server_host, "127.0.0.1"));
    assert (config->container_limits.pids_limit == 100);
    assert (config->default_startup_timeout == 60);
    assert (config->enable_userns);
    assert (tako_config_job_type (config, "default"));
    assert (!tako_config_source (config));
    tako_config_destroy (&config);
    tako_config_destroy (&config);          //  safe twice
    assert (config == NULL);

    //  A file with a job type, and an override from the environment.
    tako_config_errors_t *errors = tako_config_errors_new ();
    char *envp [] = { "TAKO_VM_SERVER_PORT=9000", "HOME=/home/test", NULL };
    config = test_load (
        "max_workers: 8\n"
        "container_limits:\n"
        "  tmpfs_size: \"64m\"\n"
        "job_types:\n"
        "  - name: data-processing\n"
        "    requirements: [pandas, \"numpy>=1.26,<3\"]\n"
        "    memory_limit: 1g\n"
        "    cpu_limit: 2.0\n", envp, errors);
    assert (tako_config_errors_count (errors) == 0);
    assert (config->max_workers == 8);
    assert (config->server_port == 9000);
    assert (config->container_limits.tmpfs_size == 64 * MIB);
    assert (streq (config->data_dir, "/home/test/.tako_vm"));
    const tako_config_job_type_t *job_type = tako_config_job_type (config, "data-processing");
    assert (job_type && job_type->requirements.count == 2);
    assert (job_type->memory_limit == GIB);
    assert (job_type->timeout == config->default_timeout);     //  inherited
    json_t *json = tako_config_to_json (config);
    assert (json_integer_value (json_object_get (json, "server_port")) == 9000);
    if (verbose) {
        char *text = json_dumps (json, JSON_INDENT (2));
        printf ("%s\n", text);
        free (text);
    }
    json_decref (json);
    tako_config_destroy (&config);
    tako_config_errors_destroy (&errors);

    //  Every problem is reported, each with its line.
    errors = tako_config_errors_new ();
    config = test_load (
        "max_workers: 0\n"
        "docker_image: code-executor:latest\n"
        "container_limits: {pids_limit: 5}\n"
        "log_levl: INFO\n", NULL, errors);
    assert (tako_config_errors_count (errors) == 4);
    char *text = tako_config_errors_text (errors, false);
    assert (strstr (text, "tako_vm.yaml:1: max_workers: 0 is out of range (1–256)"));
    assert (strstr (text, "tako_vm.yaml:3: container_limits.pids_limit:"));
    assert (strstr (text, "did you mean log_level?"));
    free (text);
    tako_config_destroy (&config);
    tako_config_errors_destroy (&errors);

    //  Sizes and booleans.
    int64_t bytes = 0;
    assert (tako_config_parse_size ("100m", &bytes) == 0 && bytes == 100 * MIB);
    assert (tako_config_parse_size ("2G", &bytes) == 0 && bytes == 2 * GIB);
    assert (tako_config_parse_size ("99999999999999999999", &bytes) == -1);
    bool flag = false;
    assert (tako_config_parse_bool ("Yes", &flag) == 0 && flag);
    assert (tako_config_parse_bool ("off", &flag) == 0 && !flag);
    assert (tako_config_parse_bool ("maybe", &flag) == -1);
}
