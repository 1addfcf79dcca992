/*  tako_config — the effective configuration of tako-vm.

    Loaded from tako_vm.yaml (libyaml), then overridden by TAKO_VM_*
    environment variables, then validated as a whole. Every option has a
    default and a bound; docs/configuration.md lists them all and
    tako_vm.yaml.example shows them with comments.

    Unlike other classes, tako_config_t is a plain struct with public
    fields: every actor reads it. Treat a loaded config as read-only and
    pass it (or copies of the values you need) to whoever needs them.

        char *problems = NULL;
        tako_config_t *config = tako_config_load (cli->config_path, &problems);
        if (!config) {
            fputs (problems, stderr);       //  every error, one per line
            free (problems);
            return 1;
        }
        printf ("%d workers\n", config->max_workers);
        const tako_config_job_type_t *job_type =
            tako_config_job_type (config, "default");
        tako_config_destroy (&config);

    Search order when no explicit file is given: $TAKO_VM_CONFIG,
    ./tako_vm.yaml, ./config/tako_vm.yaml, ~/.tako_vm/config.yaml,
    /etc/tako_vm/config.yaml; none found = built-in defaults. An explicit
    file (argument or TAKO_VM_CONFIG) that does not exist is an error.

    Error lines look like
        tako_vm.yaml:3: container_limits.pids_limit: 5 is out of range (10–1000)
    and a load collects ALL of them rather than stopping at the first.   */

#ifndef TAKO_CONFIG_H_INCLUDED
#define TAKO_CONFIG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "tako_log.h"

//  Name of the built-in job type every job uses unless it names another.
#define TAKO_CONFIG_DEFAULT_JOB_TYPE "default"

//  The largest configuration file we read (bytes); bigger is an error.
#define TAKO_CONFIG_FILE_MAX (1024 * 1024)
//  data_dir when running as root with HOME=/root (see docs/configuration.md).
#define TAKO_CONFIG_ROOT_DATA_DIR "/var/lib/tako_vm"

typedef enum {
    TAKO_RUNTIME_NATIVE = 0,    //  our own namespaces+seccomp+cgroup sandbox
                                //  ("runc" in a Tako VM config means this)
    TAKO_RUNTIME_RUNSC          //  gVisor's runsc, where it is installed
} tako_container_runtime_t;

typedef enum {
    TAKO_SECURITY_PERMISSIVE = 0,   //  fall back to native with a warning
    TAKO_SECURITY_STRICT            //  refuse to start without the runtime
} tako_security_mode_t;

typedef enum {
    TAKO_GPU_VENDOR_NONE = 0,
    TAKO_GPU_VENDOR_NVIDIA,
    TAKO_GPU_VENDOR_AMD
} tako_gpu_vendor_t;

//  A list of strings. items [count] is NULL, so it can be walked either way.
typedef struct {
    size_t count;
    char **items;
} tako_config_list_t;

//  One environment variable of a job type.
typedef struct {
    char *name;                 //  [A-Z_][A-Z0-9_]*, not a refused name
    char *value;                //  any string without NUL
} tako_config_env_var_t;

//  Limits applied to every sandbox (container_limits:).
typedef struct {
    int pids_limit;             //  10–1000, default 100 (cgroup pids.max)
    int nofile_soft;            //  64–65536, default 256 (RLIMIT_NOFILE)
    int nofile_hard;            //  64–65536, default 256, >= nofile_soft
    int nproc_soft;             //  10–1000, default 50 (RLIMIT_NPROC)
    int nproc_hard;             //  10–1000, default 50, >= nproc_soft
    int64_t fsize;              //  bytes, 1 MiB–1 GiB, default 100 MiB (RLIMIT_FSIZE)
    int64_t tmpfs_size;         //  bytes, 10 MiB–2 GiB, default 100 MiB (/tmp, /output)
} tako_config_limits_t;

//  GPU access of a job type (gpu:).
typedef struct {
    bool enabled;               //  default false
    tako_gpu_vendor_t vendor;   //  nvidia | amd; NONE when not enabled
    int count;                  //  0–16 GPUs; 0 with device_ids = use those
    tako_config_list_t device_ids;  //  e.g. ["0", "1"] or UUIDs
} tako_config_gpu_t;

//  One job type: a named, pre-configured execution environment.
//  After tako_config_load every field is resolved (timeouts inherit the
//  top-level defaults when the file does not set them).
typedef struct {
    char *name;                 //  [a-z0-9][a-z0-9_-]{0,62}
    tako_config_list_t requirements;    //  pip specifiers, e.g. "numpy>=1.26"
    char *python_version;       //  "3.11" etc.; "" = whatever sandbox_python is
    char *base;                 //  rootfs directory; "" = sandbox_rootfs
    tako_config_list_t shared_code;     //  absolute paths made importable
    size_t environment_count;
    tako_config_env_var_t *environment;
    int64_t memory_limit;       //  bytes, 16 MiB–256 GiB, default 512 MiB
    double cpu_limit;           //  cores, 0.1–64, default 1.0
    int timeout;                //  execution seconds, 1–max_timeout,
                                //  default default_timeout
    int startup_timeout;        //  seconds, 10–max_startup_timeout,
                                //  default default_startup_timeout
    bool network_enabled;       //  default false: loopback only
    bool use_system_packages;   //  default false: only the env's packages
    tako_config_gpu_t gpu;
    int warm_pool;              //  sandboxes kept ready, 0–64, default 0
    tako_config_list_t preload; //  modules imported in warm sandboxes
    bool builtin;               //  true only for the built-in "default"
    int line;                   //  line of its entry in the file, 0 if none
} tako_config_job_type_t;

//  Where the value of an option came from (internal; for error messages).
typedef struct tako_config_origin_t tako_config_origin_t;

typedef struct {
    //  Quick start
    bool production_mode;       //  default false
    int max_workers;            //  1–256, default 4 (concurrent sandboxes per executor)

    //  Server and logging
    tako_log_level_t log_level; //  DEBUG..CRITICAL, default INFO
    char *server_host;          //  default "127.0.0.1" (Tako VM: 0.0.0.0)
    int server_port;            //  1–65535, default 8000
    char *database_url;         //  "" (default) = embedded PostgreSQL under data_dir

    //  API protection
    int64_t api_max_payload_bytes;      //  1 KiB–1 GiB, default 2 MiB
    bool api_rate_limit_enabled;        //  default true
    int api_rate_limit_requests;        //  1–1000000, default 120
    int api_rate_limit_window_seconds;  //  1–86400, default 60

    //  Execution limits (seconds, bytes)
    int default_timeout;        //  1–3600, default 30
    int max_timeout;            //  1–86400, default 300
    int default_startup_timeout;    //  10–600, default 60
    int max_startup_timeout;    //  30–1800, default 600
    int64_t max_code_bytes;     //  1 B–16 MiB, default 100 KiB
    int64_t max_input_bytes;    //  1 B–256 MiB, default 1 MiB
    int64_t max_stdout_bytes;   //  1 B–256 MiB, default 64 KiB
    int64_t max_stderr_bytes;   //  1 B–256 MiB, default 64 KiB

    //  Retries
    int max_retry_attempts;     //  0–10, default 2
    double retry_base_delay;    //  seconds, 0–300, default 1.0
    double queue_wait_timeout;  //  seconds, 0.001–3600, default 1.0

    //  Sandbox security
    bool enable_seccomp;        //  default true
    bool enable_cap_restrictions;   //  default true
    bool enable_userns;         //  default true (Tako VM: false)
    tako_container_runtime_t container_runtime; //  default native
    tako_security_mode_t security_mode;         //  default permissive
    tako_config_limits_t container_limits;

    //  Job types: [0] is always the built-in "default"
    size_t job_type_count;
    tako_config_job_type_t *job_types;

    //  Other
    int max_queue_size;         //  1–1000000, default 100 (queued jobs)
    int64_t max_artifact_bytes;         //  1 B–4 GiB, default 10 MiB
    int64_t max_total_artifacts_bytes;  //  1 B–16 GiB, default 50 MiB
    int execution_record_ttl_days;      //  0–36500, default 30; 0 = keep forever

    //  Ours (not in the Tako VM reference)
    char *data_dir;             //  default $XDG_DATA_HOME/tako_vm or ~/.tako_vm
    char *broker_endpoint;          //  default tcp://127.0.0.1:5555 (ROUTER)
    char *event_publish_endpoint;   //  default tcp://127.0.0.1:5556 (PUB connects, XSUB binds)
    char *event_subscribe_endpoint; //  default tcp://127.0.0.1:5557 (SUB connects, XPUB binds)
    tako_config_list_t api_keys;    //  "sha256:<64 lowercase hex>" only; plain
                                    //  keys in the file are hashed at load
    char *pip_index_url;        //  "" = pip's default; else http(s) URL
    tako_config_list_t pip_find_links;  //  absolute directories of wheels
    bool warm_pools_enabled;    //  default true
    char *sandbox_rootfs;       //  "" = read-only binds of the host's /usr etc.
    char *sandbox_python;       //  default /usr/bin/python3

    tako_config_origin_t *origin;   //  internal
} tako_config_t;

//  One problem found while loading. line is 1-based, 0 when the problem
//  has no line (an environment variable, a missing file).
typedef struct {
    char *file;                 //  file as named by the user, or NULL
    int line;
    char *option;               //  "container_limits.pids_limit", "TAKO_VM_X", or NULL
    char *message;
    bool warning;               //  true: reported, but the load still succeeds
} tako_config_error_t;

//  A collection of problems (errors and warnings).
typedef struct tako_config_errors_t tako_config_errors_t;

//  Built-in defaults; data_dir from XDG_DATA_HOME or HOME of this process.
tako_config_t *tako_config_new (void);

//  Free a config; NULLs the caller's pointer. Safe to call twice.
void tako_config_destroy (tako_config_t **self_p);

//  Read a YAML file into self, adding every problem to errors.
//  Returns 0 when no error was found, else -1 (self is then partly set).
int tako_config_load_file (tako_config_t *self, const char *path,
                           tako_config_errors_t *errors);

//  Same from memory; name is used in error lines ("tako_vm.yaml").
int tako_config_load_string (tako_config_t *self, const char *text, size_t size,
                             const char *name, tako_config_errors_t *errors);

//  Apply TAKO_VM_* overrides from envp (NULL-terminated "NAME=value"
//  array; NULL = this process's environ). Returns 0 or -1.
int tako_config_apply_env (tako_config_t *self, char **envp,
                           tako_config_errors_t *errors);

//  Resolve inherited values and run the cross-field checks (timeouts,
//  soft <= hard, artifact sizes, job type bounds). Returns 0 or -1.
int tako_config_finish (tako_config_t *self, tako_config_errors_t *errors);

//  Which file the search order picks, given an explicit path (or NULL)
//  and envp (NULL = environ). Returns a fresh string, or NULL when no
//  file exists (defaults). An explicit file or TAKO_VM_CONFIG that does
//  not exist is an error in errors, and returns NULL.
char *tako_config_find_file (const char *explicit_path, char **envp,
                             tako_config_errors_t *errors);

//  Search order + file + env + finish, all problems into errors. Returns
//  the config or NULL if any error was found.
tako_config_t *tako_config_load_from (const char *explicit_path, char **envp,
                                      tako_config_errors_t *errors);

//  Convenience for main programs: load with this process's environment.
//  On failure returns NULL and sets *error_text to every error, one per
//  line (caller frees). Warnings are logged with tako_warning.
tako_config_t *tako_config_load (const char *explicit_path, char **error_text);

//  The file the config was read from, or NULL for pure defaults.
const char *tako_config_source (tako_config_t *self);

//  The job type with this name, or NULL.
const tako_config_job_type_t *tako_config_job_type (tako_config_t *self,
                                                    const char *name);

//  The whole configuration as JSON (caller json_decref's it). Safe to
//  show: the database_url password is masked, api_keys are hashes only.
json_t *tako_config_to_json (tako_config_t *self);

//  One job type as JSON, same field names as in YAML (sizes in bytes,
//  memory_limit also as text "512m"). For GET /job-types and the builder.
json_t *tako_config_job_type_to_json (const tako_config_job_type_t *job_type);

//  Parse a size: 1048576, "512k", "100m", "2g", "1G", "64MB". Returns 0
//  and sets *bytes, or -1 if malformed or beyond INT64_MAX.
int tako_config_parse_size (const char *text, int64_t *bytes);

//  Parse a boolean: true/false/1/0/yes/no/on/off, case-insensitive.
int tako_config_parse_bool (const char *text, bool *value);

//  Problems collected during a load.
tako_config_errors_t *tako_config_errors_new (void);
void tako_config_errors_destroy (tako_config_errors_t **self_p);
//  Number of errors (warnings not counted).
size_t tako_config_errors_count (tako_config_errors_t *self);
//  Number of entries, errors and warnings.
size_t tako_config_errors_size (tako_config_errors_t *self);
//  Entry at index, or NULL.
const tako_config_error_t *tako_config_errors_get (tako_config_errors_t *self,
                                                   size_t index);
//  Add one problem (file/option may be NULL). printf-style message.
void tako_config_errors_add (tako_config_errors_t *self, bool warning,
                             const char *file, int line, const char *option,
                             const char *format, ...)
    __attribute__ ((format (printf, 6, 7)));
//  Every entry as text, one per line: "file:line: option: message"; with
//  warnings when include_warnings, prefixed "warning: ". Caller frees.
char *tako_config_errors_text (tako_config_errors_t *self, bool include_warnings);

void tako_config_test (bool verbose);

#endif
