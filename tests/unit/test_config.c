/*  Configuration: defaults, every kind of error with its line, TAKO_VM_*
    overrides, the search order, sizes, job types, and the example file.  */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
//  The private header too: the requirement grammar is tested directly.
#include "tako_config_private.h"

//  An environment with nothing from the test runner in it.
static char *empty_env [] = { "HOME=/nonexistent-home", NULL };

//  Load yaml (+ envp) like the server does, minus the search order.
//  Returns the config (even when invalid) and every problem as text.
static tako_config_t *
load_yaml (const char *yaml, char **envp, char **problems)
{
    tako_config_errors_t *errors = tako_config_errors_new ();
    cr_assert (errors);
    tako_config_t *config = tako_config_new ();
    cr_assert (config);
    tako_config_load_string (config, yaml, strlen (yaml), "tako_vm.yaml", errors);
    tako_config_apply_env (config, envp? envp: empty_env, errors);
    tako_config_finish (config, errors);
    *problems = tako_config_errors_text (errors, true);
    tako_config_errors_destroy (&errors);
    return config;
}

//  Expect the yaml to produce exactly this problem line among others.
static void
expect_problem (const char *yaml, const char *line)
{
    char *problems = NULL;
    tako_config_t *config = load_yaml (yaml, NULL, &problems);
    cr_expect (strstr (problems, line), "expected \"%s\" in:\n%s", line, problems);
    free (problems);
    tako_config_destroy (&config);
}

static void
expect_clean (const char *yaml)
{
    char *problems = NULL;
    tako_config_t *config = load_yaml (yaml, NULL, &problems);
    cr_expect_str_empty (problems, "expected no problem for:\n%s\ngot:\n%s", yaml, problems);
    free (problems);
    tako_config_destroy (&config);
}

Test (config, defaults_match_the_reference)
{
    tako_config_t *config = tako_config_new ();
    cr_assert (config);
    cr_expect_not (config->production_mode);
    cr_expect_eq (config->max_workers, 4);
    cr_expect_eq (config->log_level, TAKO_LOG_INFO);
    cr_expect_str_eq (config->server_host, "127.0.0.1");
    cr_expect_eq (config->server_port, 8000);
    cr_expect_str_eq (config->database_url, "");
    cr_expect_eq (config->api_max_payload_bytes, 2097152);
    cr_expect (config->api_rate_limit_enabled);
    cr_expect_eq (config->api_rate_limit_requests, 120);
    cr_expect_eq (config->api_rate_limit_window_seconds, 60);
    cr_expect_eq (config->default_timeout, 30);
    cr_expect_eq (config->max_timeout, 300);
    cr_expect_eq (config->default_startup_timeout, 60);
    cr_expect_eq (config->max_startup_timeout, 600);
    cr_expect_eq (config->max_code_bytes, 102400);
    cr_expect_eq (config->max_input_bytes, 1048576);
    cr_expect_eq (config->max_stdout_bytes, 65536);
    cr_expect_eq (config->max_stderr_bytes, 65536);
    cr_expect_eq (config->max_retry_attempts, 2);
    cr_expect_float_eq (config->retry_base_delay, 1.0, 1e-9);
    cr_expect_float_eq (config->queue_wait_timeout, 1.0, 1e-9);
    cr_expect (config->enable_seccomp && config->enable_cap_restrictions && config->enable_userns);
    cr_expect_eq (config->container_runtime, TAKO_RUNTIME_NATIVE);
    cr_expect_eq (config->security_mode, TAKO_SECURITY_PERMISSIVE);
    cr_expect_eq (config->container_limits.pids_limit, 100);
    cr_expect_eq (config->container_limits.nofile_soft, 256);
    cr_expect_eq (config->container_limits.nofile_hard, 256);
    cr_expect_eq (config->container_limits.nproc_soft, 50);
    cr_expect_eq (config->container_limits.nproc_hard, 50);
    cr_expect_eq (config->container_limits.fsize, 100 * MIB);
    cr_expect_eq (config->container_limits.tmpfs_size, 100 * MIB);
    cr_expect_eq (config->max_queue_size, 100);
    cr_expect_eq (config->max_artifact_bytes, 10485760);
    cr_expect_eq (config->max_total_artifacts_bytes, 52428800);
    cr_expect_eq (config->execution_record_ttl_days, 30);
    cr_expect_str_eq (config->broker_endpoint, "tcp://127.0.0.1:5555");
    cr_expect_str_eq (config->event_publish_endpoint, "tcp://127.0.0.1:5556");
    cr_expect_str_eq (config->event_subscribe_endpoint, "tcp://127.0.0.1:5557");
    cr_expect_eq (config->api_keys.count, 0);
    cr_expect (config->warm_pools_enabled);
    cr_expect_str_eq (config->sandbox_rootfs, "");
    cr_expect_str_eq (config->sandbox_python, "/usr/bin/python3");
    cr_assert_eq (config->job_type_count, 1);
    const tako_config_job_type_t *job_type = tako_config_job_type (config, "default");
    cr_assert (job_type && job_type->builtin);
    cr_expect_eq (job_type->requirements.count, 0);
    cr_expect_eq (job_type->memory_limit, 512 * MIB);
    cr_expect_null (tako_config_job_type (config, "nope"));
    tako_config_destroy (&config);
    tako_config_destroy (&config);
    cr_expect_null (config);
}

Test (config, data_dir_follows_xdg_then_home)
{
    char *xdg [] = { "XDG_DATA_HOME=/xdg", "HOME=/home/u", NULL };
    char *home [] = { "HOME=/home/u", NULL };
    char *relative [] = { "XDG_DATA_HOME=relative", "HOME=/home/u", NULL };
    char *problems = NULL;
    tako_config_t *config = load_yaml ("", xdg, &problems);
    cr_expect_str_eq (config->data_dir, "/xdg/tako_vm");
    tako_config_destroy (&config);
    free (problems);
    config = load_yaml ("", home, &problems);
    cr_expect_str_eq (config->data_dir, "/home/u/.tako_vm");
    tako_config_destroy (&config);
    free (problems);
    config = load_yaml ("", relative, &problems);
    cr_expect_str_eq (config->data_dir, "/home/u/.tako_vm");
    tako_config_destroy (&config);
    free (problems);
    //  A file's data_dir wins over the derived default.
    config = load_yaml ("data_dir: /srv/tako\n", xdg, &problems);
    cr_expect_str_eq (config->data_dir, "/srv/tako");
    tako_config_destroy (&config);
    free (problems);
}

Test (config, empty_and_comment_only_files_are_defaults)
{
    expect_clean ("");
    expect_clean ("# nothing here\n");
    expect_clean ("---\n");
    expect_clean ("~\n");
}

Test (config, out_of_range_names_option_and_line)
{
    expect_problem ("log_level: INFO\nmax_workers: 4\ncontainer_limits: {pids_limit: 5}\n",
                    "tako_vm.yaml:3: container_limits.pids_limit: 5 is out of range (10–1000)");
    expect_problem ("\n\nmax_workers: 0\n", "tako_vm.yaml:3: max_workers: 0 is out of range (1–256)");
    expect_problem ("server_port: 70000\n", "tako_vm.yaml:1: server_port: 70000 is out of range");
    expect_problem ("default_timeout: 3601\n", "default_timeout: 3601 is out of range (1–3600)");
    expect_problem ("max_startup_timeout: 10\n", "max_startup_timeout: 10 is out of range (30–1800)");
    expect_problem ("container_limits:\n  tmpfs_size: 5m\n",
                    "tako_vm.yaml:2: container_limits.tmpfs_size: 5m is out of range (10m–2g)");
    expect_problem ("container_limits:\n  fsize: 2g\n", "container_limits.fsize: 2g is out of range (1m–1g)");
    expect_problem ("retry_base_delay: -1\n", "retry_base_delay: -1 is out of range");
    expect_problem ("max_code_bytes: -5\n", "max_code_bytes: -5 is out of range");
}

Test (config, huge_numbers_do_not_overflow)
{
    expect_problem ("max_workers: 99999999999999999999999\n",
                    "tako_vm.yaml:1: max_workers: 99999999999999999999999 is out of range");
    expect_problem ("max_input_bytes: 99999999999999999999g\n", "max_input_bytes: 99999999999999999999g is out of range");
    expect_problem ("max_input_bytes: lots\n", "max_input_bytes: expected a size");
    expect_problem ("max_input_bytes: 9999999999g\n", "max_input_bytes: 9999999999g is out of range");
    expect_problem ("retry_base_delay: 1e999\n", "retry_base_delay: expected a number");
}

Test (config, wrong_types_are_reported)
{
    expect_problem ("max_workers: lots\n", "tako_vm.yaml:1: max_workers: expected an integer, got \"lots\"");
    expect_problem ("max_workers: \"4\"\n", "max_workers: expected an integer, got the string \"4\"");
    expect_problem ("max_workers: 4.5\n", "max_workers: expected an integer");
    expect_problem ("enable_seccomp: \"true\"\n", "enable_seccomp: expected true or false");
    expect_problem ("max_workers: [1, 2]\n", "max_workers: expected an integer, got a list");
    expect_problem ("job_types: {name: x}\n", "job_types: expected a list of job types, got a mapping");
    expect_problem ("container_limits: [1]\n", "container_limits: expected a mapping, got a list");
    expect_problem ("api_keys: abc\n", "api_keys: expected a list, got a single value");
    expect_problem ("max_workers:\n", "max_workers: needs a value");
    expect_problem ("security_mode: paranoid\n", "security_mode: expected strict or permissive");
    expect_problem ("log_level: LOUD\n", "log_level: expected DEBUG, INFO, WARNING, ERROR or CRITICAL");
}

Test (config, unknown_keys_suggest_close_names)
{
    expect_problem ("log_levl: INFO\n", "tako_vm.yaml:1: log_levl: unknown option \"log_levl\" (did you mean log_level?)");
    expect_problem ("container_limits:\n  pid_limit: 50\n",
                    "tako_vm.yaml:2: container_limits.pid_limit: unknown option \"pid_limit\" (did you mean pids_limit?)");
    expect_problem ("frobnicate: 1\n", "frobnicate: unknown option \"frobnicate\"\n");
    expect_problem ("pids_limit: 50\n", "pids_limit: belongs under container_limits");
    expect_problem ("job_types:\n  - name: a\n    requirments: [x]\n",
                    "tako_vm.yaml:3: job_types[a].requirments: unknown option \"requirments\" (did you mean requirements?)");
}

Test (config, docker_image_points_to_sandbox_rootfs)
{
    expect_problem ("docker_image: code-executor:latest\n",
                    "tako_vm.yaml:1: docker_image is not used by tako-vm (no Docker engine); use sandbox_rootfs");
}

Test (config, yaml_structure_problems)
{
    expect_problem ("max_workers: 4\n  bad: [\n", "tako_vm.yaml:2: YAML syntax error:");
    expect_problem ("max_workers: 4\nmax_workers: 5\n", "tako_vm.yaml:2: max_workers: duplicate key (first at line 1)");
    expect_problem ("- a\n- b\n", "tako_vm.yaml:1: the file must be a mapping");
    expect_problem ("just a string\n", "the file must be a mapping");
    expect_problem ("a: &x 1\nmax_workers: *x\n", "tako_vm.yaml:2: YAML aliases (*name) are not supported");
    expect_problem ("max_workers: 4\n---\nmax_workers: 5\n", "tako_vm.yaml:2: only one YAML document is allowed");
    expect_problem ("server_host: \"a\\0b\"\n", "tako_vm.yaml:1: a value contains a NUL byte");
    expect_problem ("? [a, b]\n: 1\n", "a key must be a plain name");
}

Test (config, nul_bytes_deep_nesting_and_huge_files_are_refused)
{
    tako_config_errors_t *errors = tako_config_errors_new ();
    tako_config_t *config = tako_config_new ();
    cr_expect_eq (tako_config_load_string (config, "a: 1\nb\0: 2\n", 11, "f.yaml", errors), -1);
    char *text = tako_config_errors_text (errors, false);
    cr_expect (strstr (text, "f.yaml:2: contains a NUL byte"), "%s", text);
    free (text);
    tako_config_errors_destroy (&errors);

    //  [[[[...]]]] far deeper than any configuration.
    size_t depth = 10000;
    char *deep = malloc (depth * 2 + 16);
    strcpy (deep, "a: ");
    memset (deep + 3, '[', depth);
    memset (deep + 3 + depth, ']', depth);
    deep [3 + depth * 2] = 0;
    errors = tako_config_errors_new ();
    cr_expect_eq (tako_config_load_string (config, deep, strlen (deep), "f.yaml", errors), -1);
    text = tako_config_errors_text (errors, false);
    cr_expect (strstr (text, "nested deeper than"), "%s", text);
    free (text);
    free (deep);
    tako_config_errors_destroy (&errors);

    size_t huge = TAKO_CONFIG_FILE_MAX + 10;
    char *big = malloc (huge);
    memset (big, '#', huge);
    errors = tako_config_errors_new ();
    cr_expect_eq (tako_config_load_string (config, big, huge, "f.yaml", errors), -1);
    text = tako_config_errors_text (errors, false);
    cr_expect (strstr (text, "f.yaml: is larger than 1024 KiB"), "%s", text);
    free (text);
    free (big);
    tako_config_errors_destroy (&errors);
    tako_config_destroy (&config);
}

Test (config, every_error_is_collected)
{
    char *problems = NULL;
    tako_config_t *config = load_yaml (
        "max_workers: 0\n"
        "server_port: x\n"
        "container_limits:\n"
        "  pids_limit: 5\n"
        "  nofile_soft: 1000\n"
        "  nofile_hard: 500\n"
        "job_types:\n"
        "  - name: BAD\n", NULL, &problems);
    cr_expect (strstr (problems, "tako_vm.yaml:1: max_workers:"), "%s", problems);
    cr_expect (strstr (problems, "tako_vm.yaml:2: server_port:"), "%s", problems);
    cr_expect (strstr (problems, "tako_vm.yaml:4: container_limits.pids_limit:"), "%s", problems);
    cr_expect (strstr (problems, "tako_vm.yaml:5: container_limits.nofile_soft: 1000 is greater than nofile_hard (500)"), "%s", problems);
    cr_expect (strstr (problems, "tako_vm.yaml:8: job_types[0]: name:"), "%s", problems);
    free (problems);
    tako_config_destroy (&config);
}

Test (config, cross_field_checks)
{
    expect_problem ("max_timeout: 20\n", "default_timeout: 30 is greater than max_timeout (20)");
    expect_problem ("default_startup_timeout: 300\nmax_startup_timeout: 200\n",
                    "tako_vm.yaml:1: default_startup_timeout: 300 is greater than max_startup_timeout (200)");
    expect_problem ("container_limits: {nproc_soft: 60, nproc_hard: 40}\n",
                    "container_limits.nproc_soft: 60 is greater than nproc_hard (40)");
    expect_problem ("max_artifact_bytes: 100m\nmax_total_artifacts_bytes: 50m\n",
                    "tako_vm.yaml:1: max_artifact_bytes: 104857600 is greater than max_total_artifacts_bytes (52428800)");
    expect_problem ("job_types:\n  - name: a\n    timeout: 301\n",
                    "tako_vm.yaml:3: job_types[a].timeout: 301 is greater than max_timeout (300)");
    expect_problem ("job_types:\n  - name: a\n  - name: a\n",
                    "tako_vm.yaml:3: job_types[1]: duplicate job type name \"a\" (first at line 2)");
}

Test (config, sizes_parse_units)
{
    struct { const char *text; int64_t bytes; } good [] = {
        { "0", 0 }, { "1048576", 1048576 }, { "512k", 512 * 1024 }, { "100m", 100 * MIB },
        { "2g", 2 * GIB }, { "2G", 2 * GIB }, { "64MB", 64 * MIB }, { "1GiB", GIB }, { "10b", 10 },
    };
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++) {
        int64_t bytes = -1;
        cr_expect_eq (tako_config_parse_size (good [i].text, &bytes), 0, "%s", good [i].text);
        cr_expect_eq (bytes, good [i].bytes, "%s", good [i].text);
    }
    const char *bad [] = { "", "m", "-1", "1.5g", "10 m", "10x", "0x10", "99999999999999999999", "9999999999999g" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        int64_t bytes = 0;
        cr_expect_eq (tako_config_parse_size (bad [i], &bytes), -1, "%s", bad [i]);
    }
    char *problems = NULL;
    tako_config_t *config = load_yaml ("container_limits:\n  tmpfs_size: 64m\n  fsize: \"2m\"\n"
                                       "max_input_bytes: 2m\n", NULL, &problems);
    cr_expect_str_empty (problems);
    cr_expect_eq (config->container_limits.tmpfs_size, 64 * MIB);
    cr_expect_eq (config->container_limits.fsize, 2 * MIB);
    cr_expect_eq (config->max_input_bytes, 2 * MIB);
    free (problems);
    tako_config_destroy (&config);
}

Test (config, env_overrides_every_kind)
{
    char *envp [] = {
        "HOME=/home/u",
        "TAKO_VM_API_RATE_LIMIT_REQUESTS=77",
        "TAKO_VM_API_RATE_LIMIT_ENABLED=No",
        "TAKO_VM_ENABLE_SECCOMP=off",
        "TAKO_VM_ENABLE_CAP_RESTRICTIONS=0",
        "TAKO_VM_ENABLE_USERNS=YES",
        "TAKO_VM_PRODUCTION_MODE=on",
        "TAKO_VM_WARM_POOLS_ENABLED=false",
        "TAKO_VM_LOG_LEVEL=warning",
        "TAKO_VM_SECURITY_MODE=Strict",
        "TAKO_VM_CONTAINER_RUNTIME=runc",
        "TAKO_VM_SERVER_HOST=0.0.0.0",
        "TAKO_VM_SERVER_PORT=9001",
        "TAKO_VM_MAX_WORKERS=16",
        "TAKO_VM_DATA_DIR=/var/lib/tako",
        "TAKO_VM_DATABASE_URL=postgresql://u:secret@db/tako",
        "TAKO_VM_API_MAX_PAYLOAD_BYTES=4m",
        "TAKO_VM_API_RATE_LIMIT_WINDOW_SECONDS=30",
        "TAKO_VM_CONTAINER_LIMITS_PIDS_LIMIT=200",
        NULL
    };
    char *problems = NULL;
    tako_config_t *config = load_yaml ("api_rate_limit_requests: 10\nmax_workers: 2\n", envp, &problems);
    cr_expect_str_empty (problems, "%s", problems);
    cr_expect_eq (config->api_rate_limit_requests, 77);
    cr_expect_not (config->api_rate_limit_enabled);
    cr_expect_not (config->enable_seccomp);
    cr_expect_not (config->enable_cap_restrictions);
    cr_expect (config->enable_userns);
    cr_expect (config->production_mode);
    cr_expect_not (config->warm_pools_enabled);
    cr_expect_eq (config->log_level, TAKO_LOG_WARNING);
    cr_expect_eq (config->security_mode, TAKO_SECURITY_STRICT);
    cr_expect_eq (config->container_runtime, TAKO_RUNTIME_NATIVE);
    cr_expect_str_eq (config->server_host, "0.0.0.0");
    cr_expect_eq (config->server_port, 9001);
    cr_expect_eq (config->max_workers, 16);
    cr_expect_str_eq (config->data_dir, "/var/lib/tako");
    cr_expect_eq (config->api_max_payload_bytes, 4 * MIB);
    cr_expect_eq (config->api_rate_limit_window_seconds, 30);
    cr_expect_eq (config->container_limits.pids_limit, 200);
    //  The password never shows.
    json_t *json = tako_config_to_json (config);
    cr_expect_str_eq (json_string_value (json_object_get (json, "database_url")),
                      "postgresql://u:****@db/tako");
    json_decref (json);
    free (problems);
    tako_config_destroy (&config);
}

Test (config, bad_env_values_name_the_variable)
{
    char *envp [] = {
        "TAKO_VM_ENABLE_SECCOMP=perhaps",
        "TAKO_VM_SERVER_PORT=0",
        "TAKO_VM_CONTAINER_RUNTIME=docker",
        "TAKO_VM_MAX_TIMEOUT=10",
        "TAKO_VM_SERVR_PORT=1",
        NULL
    };
    char *problems = NULL;
    tako_config_t *config = load_yaml ("", envp, &problems);
    cr_expect (strstr (problems, "TAKO_VM_ENABLE_SECCOMP: expected true or false, got \"perhaps\""), "%s", problems);
    cr_expect (strstr (problems, "TAKO_VM_SERVER_PORT: 0 is out of range (1–65535)"), "%s", problems);
    cr_expect (strstr (problems, "TAKO_VM_CONTAINER_RUNTIME: expected native, runsc or runc"), "%s", problems);
    //  The cross-field check blames the variable that broke it.
    cr_expect (strstr (problems, "default_timeout: 30 is greater than max_timeout (10)"), "%s", problems);
    cr_expect (strstr (problems, "warning: TAKO_VM_SERVR_PORT: not a tako-vm setting; ignored"), "%s", problems);
    free (problems);
    tako_config_destroy (&config);
}

Test (config, booleans_and_enums)
{
    const char *truths [] = { "true", "TRUE", "1", "yes", "Yes", "on", "ON" };
    const char *falsehoods [] = { "false", "False", "0", "no", "NO", "off" };
    bool value;
    for (size_t i = 0; i < sizeof truths / sizeof truths [0]; i++)
        cr_expect (tako_config_parse_bool (truths [i], &value) == 0 && value, "%s", truths [i]);
    for (size_t i = 0; i < sizeof falsehoods / sizeof falsehoods [0]; i++)
        cr_expect (tako_config_parse_bool (falsehoods [i], &value) == 0 && !value, "%s", falsehoods [i]);
    cr_expect_eq (tako_config_parse_bool ("2", &value), -1);
    cr_expect_eq (tako_config_parse_bool ("", &value), -1);

    char *problems = NULL;
    tako_config_t *config = load_yaml ("log_level: debug\ncontainer_runtime: RunSC\n"
                                       "security_mode: STRICT\nenable_seccomp: no\n", NULL, &problems);
    cr_expect_str_empty (problems, "%s", problems);
    cr_expect_eq (config->log_level, TAKO_LOG_DEBUG);
    cr_expect_eq (config->container_runtime, TAKO_RUNTIME_RUNSC);
    cr_expect_eq (config->security_mode, TAKO_SECURITY_STRICT);
    cr_expect_not (config->enable_seccomp);
    free (problems);
    tako_config_destroy (&config);
}

//  ---------------------------------------------------------------------
//  Search order

static void
write_file (const char *path, const char *text)
{
    FILE *file = fopen (path, "w");
    cr_assert (file, "cannot write %s", path);
    fputs (text, file);
    fclose (file);
}

//  A fresh temporary directory as the current directory; returns its path.
static char *
enter_temp_dir (char *saved_cwd)
{
    cr_assert (getcwd (saved_cwd, PATH_MAX));
    char template [] = "/tmp/tako-config-test-XXXXXX";
    char *dir = mkdtemp (template);
    cr_assert (dir);
    cr_assert_eq (chdir (dir), 0);
    return strdup (dir);
}

static void
leave_temp_dir (char *dir, const char *saved_cwd)
{
    cr_assert_eq (chdir (saved_cwd), 0);
    char *command = NULL;
    cr_assert (asprintf (&command, "rm -rf '%s'", dir) > 0);
    cr_expect_eq (system (command), 0);
    free (command);
    free (dir);
}

//  Which file the search order picks, or "" for none; "!" + errors on failure.
static char *
found (const char *explicit_path, char **envp)
{
    tako_config_errors_t *errors = tako_config_errors_new ();
    char *path = tako_config_find_file (explicit_path, envp, errors);
    char *result = path? strdup (path): tako_config_errors_count (errors)? strdup ("!"): strdup ("");
    free (path);
    tako_config_errors_destroy (&errors);
    return result;
}

Test (config, search_order)
{
    char saved [PATH_MAX];
    char *dir = enter_temp_dir (saved);
    char home [PATH_MAX + 8], home_env [PATH_MAX + 16], env_file [PATH_MAX + 32];
    snprintf (home, sizeof home, "%s/home", dir);
    snprintf (home_env, sizeof home_env, "HOME=%s", home);
    cr_assert_eq (mkdir ("home", 0700), 0);
    cr_assert_eq (mkdir ("home/.tako_vm", 0700), 0);
    cr_assert_eq (mkdir ("config", 0700), 0);
    char *envp [] = { home_env, NULL };
    char *s;

    //  Nothing anywhere: defaults.
    cr_expect_str_empty (s = found (NULL, envp)); free (s);

    write_file ("home/.tako_vm/config.yaml", "max_workers: 5\n");
    snprintf (env_file, sizeof env_file, "%s/.tako_vm/config.yaml", home);
    cr_expect_str_eq (s = found (NULL, envp), env_file); free (s);

    write_file ("config/tako_vm.yaml", "max_workers: 6\n");
    cr_expect_str_eq (s = found (NULL, envp), "config/tako_vm.yaml"); free (s);

    write_file ("tako_vm.yaml", "max_workers: 7\n");
    cr_expect_str_eq (s = found (NULL, envp), "tako_vm.yaml"); free (s);

    //  TAKO_VM_CONFIG beats the current directory; --config beats both.
    write_file ("from-env.yaml", "max_workers: 8\n");
    write_file ("explicit.yaml", "max_workers: 9\n");
    char *with_env [] = { home_env, "TAKO_VM_CONFIG=from-env.yaml", NULL };
    cr_expect_str_eq (s = found (NULL, with_env), "from-env.yaml"); free (s);
    cr_expect_str_eq (s = found ("explicit.yaml", with_env), "explicit.yaml"); free (s);

    tako_config_errors_t *errors = tako_config_errors_new ();
    tako_config_t *config = tako_config_load_from ("explicit.yaml", with_env, errors);
    cr_assert (config);
    cr_expect_eq (config->max_workers, 9);
    cr_expect_str_eq (tako_config_source (config), "explicit.yaml");
    tako_config_destroy (&config);
    config = tako_config_load_from (NULL, with_env, errors);
    cr_assert (config);
    cr_expect_eq (config->max_workers, 8);
    tako_config_destroy (&config);
    config = tako_config_load_from (NULL, envp, errors);
    cr_assert (config);
    cr_expect_eq (config->max_workers, 7);
    tako_config_destroy (&config);
    cr_expect_eq (tako_config_errors_count (errors), 0);
    tako_config_errors_destroy (&errors);

    //  A named file that does not exist is an error, never the defaults.
    char *missing_env [] = { home_env, "TAKO_VM_CONFIG=missing.yaml", NULL };
    cr_expect_str_eq (s = found ("missing.yaml", envp), "!"); free (s);
    cr_expect_str_eq (s = found (NULL, missing_env), "!"); free (s);
    errors = tako_config_errors_new ();
    config = tako_config_load_from (NULL, missing_env, errors);
    cr_expect_null (config);
    char *text = tako_config_errors_text (errors, false);
    cr_expect (strstr (text, "missing.yaml: cannot read (named by TAKO_VM_CONFIG)"), "%s", text);
    free (text);
    tako_config_errors_destroy (&errors);

    leave_temp_dir (dir, saved);
}

Test (config, load_file_reads_and_refuses_directories)
{
    char saved [PATH_MAX];
    char *dir = enter_temp_dir (saved);
    write_file ("ok.yaml", "server_port: 8123\n");
    cr_assert_eq (mkdir ("adir", 0700), 0);
    tako_config_errors_t *errors = tako_config_errors_new ();
    tako_config_t *config = tako_config_new ();
    cr_expect_eq (tako_config_load_file (config, "ok.yaml", errors), 0);
    cr_expect_eq (config->server_port, 8123);
    cr_expect_str_eq (tako_config_source (config), "ok.yaml");
    cr_expect_eq (tako_config_load_file (config, "adir", errors), -1);
    char *text = tako_config_errors_text (errors, false);
    cr_expect (strstr (text, "adir: is not a regular file"), "%s", text);
    free (text);
    tako_config_destroy (&config);
    tako_config_errors_destroy (&errors);
    leave_temp_dir (dir, saved);
}

//  ---------------------------------------------------------------------
//  Job types

Test (config, job_types_load_with_inherited_timeouts)
{
    char *problems = NULL;
    tako_config_t *config = load_yaml (
        "default_timeout: 40\n"
        "job_types:\n"
        "  - name: ml-inference\n"
        "    requirements: [\"numpy>=1.26,<3\", \"scikit-learn\", \"requests[socks] == 2.*\"]\n"
        "    python_version: \"3.11\"\n"
        "    base: /srv/rootfs\n"
        "    shared_code: [/srv/lib]\n"
        "    environment: {OMP_NUM_THREADS: \"2\", MODE: fast, EMPTY: }\n"
        "    memory_limit: 2g\n"
        "    cpu_limit: 1.5\n"
        "    startup_timeout: 300\n"
        "    network_enabled: true\n"
        "    use_system_packages: yes\n"
        "    gpu: {enabled: true, vendor: AMD, device_ids: [\"0\", \"1\"]}\n"
        "    warm_pool: 2\n"
        "    preload: [numpy, sklearn.linear_model]\n", NULL, &problems);
    cr_expect_str_empty (problems, "%s", problems);
    cr_assert_eq (config->job_type_count, 2);
    const tako_config_job_type_t *job_type = tako_config_job_type (config, "ml-inference");
    cr_assert (job_type);
    cr_expect_eq (job_type->requirements.count, 3);
    cr_expect_str_eq (job_type->requirements.items [2], "requests[socks] == 2.*");
    cr_expect_null (job_type->requirements.items [3]);
    cr_expect_str_eq (job_type->python_version, "3.11");
    cr_expect_str_eq (job_type->base, "/srv/rootfs");
    cr_expect_str_eq (job_type->shared_code.items [0], "/srv/lib");
    cr_assert_eq (job_type->environment_count, 3);
    cr_expect_str_eq (job_type->environment [1].name, "MODE");
    cr_expect_str_eq (job_type->environment [2].value, "");
    cr_expect_eq (job_type->memory_limit, 2 * GIB);
    cr_expect_float_eq (job_type->cpu_limit, 1.5, 1e-9);
    cr_expect_eq (job_type->timeout, 40);
    cr_expect_eq (job_type->startup_timeout, 300);
    cr_expect (job_type->network_enabled && job_type->use_system_packages);
    cr_expect (job_type->gpu.enabled);
    cr_expect_eq (job_type->gpu.vendor, TAKO_GPU_VENDOR_AMD);
    cr_expect_eq (job_type->gpu.count, 2);
    cr_expect_eq (job_type->warm_pool, 2);
    cr_expect_eq (job_type->preload.count, 2);
    cr_expect_gt (job_type->line, 0);
    //  The built-in default inherits too.
    cr_expect_eq (tako_config_job_type (config, "default")->timeout, 40);
    cr_expect_eq (tako_config_job_type (config, "default")->startup_timeout, 60);

    json_t *json = tako_config_job_type_to_json (job_type);
    cr_expect_str_eq (json_string_value (json_object_get (json, "memory_limit")), "2g");
    cr_expect_eq (json_integer_value (json_object_get (json, "memory_limit_bytes")), 2 * GIB);
    cr_expect_str_eq (json_string_value (json_object_get (json_object_get (json, "gpu"), "vendor")), "amd");
    json_decref (json);
    free (problems);
    tako_config_destroy (&config);
}

Test (config, default_job_type_may_change_limits_not_requirements)
{
    char *problems = NULL;
    tako_config_t *config = load_yaml ("job_types:\n  - name: default\n    memory_limit: 256m\n"
                                       "    warm_pool: 3\n", NULL, &problems);
    cr_expect_str_empty (problems, "%s", problems);
    cr_expect_eq (config->job_type_count, 1);
    const tako_config_job_type_t *job_type = tako_config_job_type (config, "default");
    cr_expect (job_type->builtin);
    cr_expect_eq (job_type->memory_limit, 256 * MIB);
    cr_expect_eq (job_type->warm_pool, 3);
    free (problems);
    tako_config_destroy (&config);
    expect_problem ("job_types:\n  - name: default\n    requirements: [numpy]\n",
                    "tako_vm.yaml:2: job_types[default].requirements: the built-in default job type is standard library only");
    expect_problem ("job_types:\n  - name: default\n  - name: default\n",
                    "tako_vm.yaml:3: job_types[1]: duplicate job type name \"default\" (first at line 2)");
}

Test (config, requirement_grammar_is_conservative)
{
    const char *good [] = {
        "numpy", "numpy>=1.26", "numpy >= 1.26, < 3", "scikit-learn==1.4.2", "requests[socks]",
        "requests[socks,security]>=2", "zope.interface~=6.0", "pkg===1.0", "Django!=4.0.*", "a",
    };
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++) {
        char *message = tako_config_check_requirement (good [i]);
        cr_expect_null (message, "%s: %s", good [i], message);
        free (message);
    }
    const char *bad [] = {
        "", "--index-url=http://evil", "-e .", "numpy; python_version<'3.8'", "pkg @ https://x/y.whl",
        "https://x/y.whl", "./local", "/abs/path", "numpy\n--extra-index-url http://x", "numpy\t>=1",
        "numpy>=", "numpy>=1.0,", "numpy 1.0", "-numpy", "numpy-", "req[", "req[]", "a b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        char *message = tako_config_check_requirement (bad [i]);
        cr_expect_not_null (message, "should refuse \"%s\"", bad [i]);
        free (message);
    }
}

Test (config, job_type_fields_are_validated)
{
    expect_problem ("job_types:\n  - name: Bad\n", "tako_vm.yaml:2: job_types[0]: name: \"Bad\" is not a valid name");
    expect_problem ("job_types:\n  - name: -x\n", "job_types[0]: name: \"-x\" is not a valid name");
    expect_problem ("job_types:\n  - requirements: [x]\n", "tako_vm.yaml:2: job_types[0]: name is required");
    expect_problem ("job_types:\n  - name: a\n    environment: {LD_PRELOAD: /x.so}\n",
                    "tako_vm.yaml:3: job_types[a].environment.LD_PRELOAD: \"LD_PRELOAD\" may not be set by a job type");
    expect_problem ("job_types:\n  - name: a\n    environment: {PYTHONPATH: /x}\n", "\"PYTHONPATH\" may not be set");
    expect_problem ("job_types:\n  - name: a\n    environment: {lower: x}\n", "\"lower\" is not a valid variable name");
    expect_problem ("job_types:\n  - name: a\n    environment: {A: [1]}\n", "environment.A: expected a string, got a list");
    expect_problem ("job_types:\n  - name: a\n    cpu_limit: 0.05\n", "job_types[a].cpu_limit: 0.05 is out of range (0.1–64)");
    expect_problem ("job_types:\n  - name: a\n    memory_limit: 1m\n", "job_types[a].memory_limit: 1m is out of range (16m–256g)");
    expect_problem ("job_types:\n  - name: a\n    warm_pool: 65\n", "job_types[a].warm_pool: 65 is out of range (0–64)");
    expect_problem ("job_types:\n  - name: a\n    python_version: \"2.7\"\n", "is not a Python 3 version");
    expect_problem ("job_types:\n  - name: a\n    python_version: \"3.x\"\n", "is not a Python 3 version");
    expect_problem ("job_types:\n  - name: a\n    base: relative/dir\n", "job_types[a].base: must be an absolute path");
    expect_problem ("job_types:\n  - name: a\n    preload: [\"os;x\"]\n", "job_types[a].preload[0]: \"os;x\" is not a Python module name");
    expect_problem ("job_types:\n  - name: a\n    gpu: {enabled: true, vendor: intel}\n", "gpu.vendor: expected nvidia or amd");
    expect_problem ("job_types:\n  - name: a\n    gpu: {enabled: true, count: 2, device_ids: [\"0\"]}\n",
                    "job_types[a].gpu.count: 2 does not match the 1 device_ids");
    expect_problem ("job_types:\n  - name: a\n    startup_timeout: 700\n",
                    "job_types[a].startup_timeout: 700 is greater than max_startup_timeout (600)");
    expect_problem ("job_types:\n  - name: a\n    shared_code: [/x/lib, /y/lib]\n",
                    "tako_vm.yaml:3: job_types[a].shared_code: two paths end in the same name 'lib'");
    expect_clean ("job_types:\n  - name: a\n    shared_code: [/x/lib, /y/tools.py]\n");
    expect_clean ("job_types:\n  - name: a\n    python_version: 3.12\n");
}

Test (config, api_keys_are_hashed_and_never_kept_plain)
{
    const char *plain = "my-very-secret-api-key-0001";
    char yaml [512];
    snprintf (yaml, sizeof yaml, "api_keys:\n  - \"%s\"\n  - \"sha256:%s\"\n", plain,
              "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08");
    char *problems = NULL;
    tako_config_t *config = load_yaml (yaml, NULL, &problems);
    cr_expect (strstr (problems, "warning: tako_vm.yaml:2: api_keys[0]: plain API key hashed at load"), "%s", problems);
    cr_expect_null (strstr (problems, plain));
    cr_assert_eq (config->api_keys.count, 2);
    cr_expect_eq (strncmp (config->api_keys.items [0], "sha256:", 7), 0);
    cr_expect_eq (strlen (config->api_keys.items [0]), 7 + 64);
    cr_expect_str_eq (config->api_keys.items [1],
                      "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    json_t *json = tako_config_to_json (config);
    char *text = json_dumps (json, 0);
    cr_expect_null (strstr (text, plain));
    free (text);
    json_decref (json);
    free (problems);
    tako_config_destroy (&config);
    expect_problem ("api_keys: [short]\n", "api_keys[0]: a plain key must be 16–256 printable characters");
    expect_problem ("api_keys: [\"sha256:abc\"]\n", "api_keys[0]: a hashed key must be \"sha256:\" and 64 hex digits");
}

Test (config, strings_are_checked)
{
    expect_problem ("server_host: \"\"\n", "server_host: must be a host name or an IP address");
    expect_problem ("server_host: \"a b\"\n", "server_host: must be a host name");
    expect_problem ("database_url: \"mysql://u:p@h/d\"\n", "database_url: must be a postgresql:// URL");
    expect_problem ("broker_endpoint: \"tcp://localhost\"\n", "broker_endpoint: must be a tcp://HOST:PORT");
    expect_problem ("event_publish_endpoint: \"udp://x:1\"\n", "event_publish_endpoint: must be a tcp://HOST:PORT");
    expect_problem ("pip_index_url: ftp://x\n", "pip_index_url: must be an http:// or https:// URL");
    expect_problem ("pip_find_links: [wheels]\n", "pip_find_links[0]: must be an absolute path");
    expect_problem ("sandbox_python: python3\n", "sandbox_python: must be an absolute path");
    expect_problem ("data_dir: relative\n", "data_dir: must be an absolute path");
    expect_clean ("broker_endpoint: \"ipc:///tmp/tako.sock\"\nevent_publish_endpoint: \">tcp://10.0.0.1:5556\"\n"
                  "event_subscribe_endpoint: \"inproc://events\"\ndatabase_url: \"host=db dbname=tako\"\n"
                  "pip_index_url: https://pypi.example/simple\npip_find_links: [/srv/wheels]\n");
}

Test (config, example_file_validates)
{
    const char *root = getenv ("TAKO_ROOT");
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/tako_vm.yaml.example", root? root: ".");
    tako_config_errors_t *errors = tako_config_errors_new ();
    tako_config_t *config = tako_config_new ();
    cr_expect_eq (tako_config_load_file (config, path, errors), 0);
    tako_config_apply_env (config, empty_env, errors);
    cr_expect_eq (tako_config_finish (config, errors), 0);
    char *text = tako_config_errors_text (errors, true);
    cr_expect_str_empty (text, "%s", text);
    free (text);
    const tako_config_job_type_t *data = tako_config_job_type (config, "data-processing");
    cr_assert (data);
    cr_expect_eq (data->memory_limit, GIB);
    cr_expect_float_eq (data->cpu_limit, 2.0, 1e-9);
    cr_expect_eq (data->timeout, 60);
    const tako_config_job_type_t *ml = tako_config_job_type (config, "ml-inference");
    cr_assert (ml);
    cr_expect_eq (ml->memory_limit, 2 * GIB);
    tako_config_destroy (&config);
    tako_config_errors_destroy (&errors);
}

Test (config, load_uses_the_process_environment)
{
    char saved [PATH_MAX];
    char *dir = enter_temp_dir (saved);
    write_file ("bad.yaml", "max_workers: 0\n");
    write_file ("good.yaml", "max_workers: 12\n");
    cr_assert_eq (setenv ("TAKO_VM_CONFIG", "bad.yaml", 1), 0);
    char *error_text = NULL;
    tako_config_t *config = tako_config_load (NULL, &error_text);
    cr_expect_null (config);
    cr_assert (error_text);
    cr_expect_str_eq (error_text, "bad.yaml:1: max_workers: 0 is out of range (1–256)\n");
    free (error_text);
    error_text = NULL;
    config = tako_config_load ("good.yaml", &error_text);
    cr_assert (config);
    cr_expect_null (error_text);
    cr_expect_eq (config->max_workers, 12);
    tako_config_destroy (&config);
    unsetenv ("TAKO_VM_CONFIG");
    leave_temp_dir (dir, saved);
}
