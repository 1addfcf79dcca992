/*  tako_config_values — the option tables and single-value parsing.

    Every scalar option is one row: name, type, field offset and bounds.
    YAML loading, TAKO_VM_* overrides and JSON output all walk these rows,
    so the three can never disagree about an option.                      */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tako_config_private.h"

//  Bounds the Tako VM reference gives.
#define TIMEOUT_MIN                 1
#define DEFAULT_TIMEOUT_MAX         3600
#define MAX_TIMEOUT_MAX             86400
#define DEFAULT_STARTUP_TIMEOUT_MIN 10
#define DEFAULT_STARTUP_TIMEOUT_MAX 600
#define MAX_STARTUP_TIMEOUT_MIN     30
#define MAX_STARTUP_TIMEOUT_MAX     1800
#define PIDS_LIMIT_MIN              10
#define PIDS_LIMIT_MAX              1000
#define NOFILE_MIN                  64
#define NOFILE_MAX                  65536
#define NPROC_MIN                   10
#define NPROC_MAX                   1000
#define FSIZE_MIN                   MIB
#define FSIZE_MAX                   GIB
#define TMPFS_SIZE_MIN              (10 * MIB)
#define TMPFS_SIZE_MAX              (2 * GIB)

//  Bounds we chose where the reference has none: wide enough for any
//  real deployment, narrow enough that a typo cannot ask for the absurd.
#define MAX_WORKERS_MAX             256
#define PORT_MAX                    65535
#define PAYLOAD_BYTES_MIN           KIB
#define PAYLOAD_BYTES_MAX           GIB
#define RATE_LIMIT_REQUESTS_MAX     1000000
#define RATE_LIMIT_WINDOW_MAX       86400
#define CODE_BYTES_MAX              (16 * MIB)
#define STREAM_BYTES_MAX            (256 * MIB)
#define RETRY_ATTEMPTS_MAX          10
#define RETRY_DELAY_MAX             300.0
#define QUEUE_WAIT_MIN              0.001
#define QUEUE_WAIT_MAX              3600.0
#define QUEUE_SIZE_MAX              1000000
#define ARTIFACT_BYTES_MAX          (4 * GIB)
#define TOTAL_ARTIFACTS_BYTES_MAX   (16 * GIB)
#define RECORD_TTL_DAYS_MAX         36500
#define MEMORY_LIMIT_MIN            (16 * MIB)
#define MEMORY_LIMIT_MAX            (256 * GIB)
#define CPU_LIMIT_MIN               0.1
#define CPU_LIMIT_MAX               64.0
#define WARM_POOL_MAX               64
#define GPU_COUNT_MAX               16

//  Lengths of names and specifiers.
#define HOST_NAME_MAX_LENGTH        253
#define JOB_TYPE_NAME_MAX_LENGTH    63
#define REQUIREMENT_MAX_LENGTH      200
#define ENV_NAME_MAX_LENGTH         128
#define MODULE_NAME_MAX_LENGTH      200
#define DEVICE_ID_MAX_LENGTH        64
#define ENDPOINT_MAX_LENGTH         256
//  "Did you mean" only for names this close (edits).
#define SUGGEST_DISTANCE_MAX        2

static bool all_characters_in (const char *value, const char *allowed_punctuation);
static char *check_host (const char *value);
static char *check_database_url (const char *value);
static char *check_data_dir (const char *value);
static char *check_endpoint (const char *value);
static char *check_http_url (const char *value);

#define TOP(field) offsetof (tako_config_t, field)
#define ROW_BOOL(table, name)             { #name, OPTION_BOOL, table (name), 0, 0, 0, 0, NULL, true }
#define ROW_INT(table, name, lo, hi)      { #name, OPTION_INT, table (name), lo, hi, 0, 0, NULL, true }
#define ROW_SIZE(table, name, lo, hi)     { #name, OPTION_SIZE, table (name), lo, hi, 0, 0, NULL, true }
#define ROW_REAL(table, name, lo, hi)     { #name, OPTION_DOUBLE, table (name), 0, 0, lo, hi, NULL, true }
#define ROW_STRING(table, name, check)    { #name, OPTION_STRING, table (name), 0, 0, 0, 0, check, true }
#define ROW_ENUM(table, name, kind)       { #name, kind, table (name), 0, 0, 0, 0, NULL, true }

const option_t tako_config_top_options [] = {
    ROW_BOOL (TOP, production_mode),
    ROW_INT (TOP, max_workers, 1, MAX_WORKERS_MAX),
    ROW_ENUM (TOP, log_level, OPTION_LOG_LEVEL),
    ROW_STRING (TOP, server_host, check_host),
    ROW_INT (TOP, server_port, 1, PORT_MAX),
    ROW_STRING (TOP, database_url, check_database_url),
    ROW_SIZE (TOP, api_max_payload_bytes, PAYLOAD_BYTES_MIN, PAYLOAD_BYTES_MAX),
    ROW_BOOL (TOP, api_rate_limit_enabled),
    ROW_INT (TOP, api_rate_limit_requests, 1, RATE_LIMIT_REQUESTS_MAX),
    ROW_INT (TOP, api_rate_limit_window_seconds, 1, RATE_LIMIT_WINDOW_MAX),
    ROW_INT (TOP, default_timeout, TIMEOUT_MIN, DEFAULT_TIMEOUT_MAX),
    ROW_INT (TOP, max_timeout, TIMEOUT_MIN, MAX_TIMEOUT_MAX),
    ROW_INT (TOP, default_startup_timeout, DEFAULT_STARTUP_TIMEOUT_MIN, DEFAULT_STARTUP_TIMEOUT_MAX),
    ROW_INT (TOP, max_startup_timeout, MAX_STARTUP_TIMEOUT_MIN, MAX_STARTUP_TIMEOUT_MAX),
    ROW_SIZE (TOP, max_code_bytes, 1, CODE_BYTES_MAX),
    ROW_SIZE (TOP, max_input_bytes, 1, STREAM_BYTES_MAX),
    ROW_SIZE (TOP, max_stdout_bytes, 1, STREAM_BYTES_MAX),
    ROW_SIZE (TOP, max_stderr_bytes, 1, STREAM_BYTES_MAX),
    ROW_INT (TOP, max_retry_attempts, 0, RETRY_ATTEMPTS_MAX),
    ROW_REAL (TOP, retry_base_delay, 0.0, RETRY_DELAY_MAX),
    ROW_REAL (TOP, queue_wait_timeout, QUEUE_WAIT_MIN, QUEUE_WAIT_MAX),
    ROW_BOOL (TOP, enable_seccomp),
    ROW_BOOL (TOP, enable_cap_restrictions),
    ROW_BOOL (TOP, enable_userns),
    ROW_ENUM (TOP, container_runtime, OPTION_RUNTIME),
    ROW_ENUM (TOP, security_mode, OPTION_SECURITY_MODE),
    ROW_INT (TOP, max_queue_size, 1, QUEUE_SIZE_MAX),
    ROW_SIZE (TOP, max_artifact_bytes, 1, ARTIFACT_BYTES_MAX),
    ROW_SIZE (TOP, max_total_artifacts_bytes, 1, TOTAL_ARTIFACTS_BYTES_MAX),
    ROW_INT (TOP, execution_record_ttl_days, 0, RECORD_TTL_DAYS_MAX),
    ROW_STRING (TOP, data_dir, check_data_dir),
    ROW_STRING (TOP, broker_endpoint, check_endpoint),
    ROW_STRING (TOP, event_publish_endpoint, check_endpoint),
    ROW_STRING (TOP, event_subscribe_endpoint, check_endpoint),
    ROW_STRING (TOP, pip_index_url, check_http_url),
    ROW_BOOL (TOP, warm_pools_enabled),
    ROW_STRING (TOP, sandbox_rootfs, tako_config_check_optional_path),
    ROW_STRING (TOP, sandbox_python, tako_config_check_absolute_path),
    { NULL }
};

#define LIMIT(field) offsetof (tako_config_t, container_limits.field)
const option_t tako_config_limit_options [] = {
    ROW_INT (LIMIT, pids_limit, PIDS_LIMIT_MIN, PIDS_LIMIT_MAX),
    ROW_INT (LIMIT, nofile_soft, NOFILE_MIN, NOFILE_MAX),
    ROW_INT (LIMIT, nofile_hard, NOFILE_MIN, NOFILE_MAX),
    ROW_INT (LIMIT, nproc_soft, NPROC_MIN, NPROC_MAX),
    ROW_INT (LIMIT, nproc_hard, NPROC_MIN, NPROC_MAX),
    ROW_SIZE (LIMIT, fsize, FSIZE_MIN, FSIZE_MAX),
    { "tmpfs_size", OPTION_SIZE_TEXT, LIMIT (tmpfs_size), TMPFS_SIZE_MIN, TMPFS_SIZE_MAX, 0, 0, NULL, true },
    { NULL }
};

//  Job type scalars; lists, environment and gpu are handled by the loader.
//  Timeouts are bounded again against max_timeout / max_startup_timeout
//  once the whole configuration is known.
#define JOB(field) offsetof (tako_config_job_type_t, field)
const option_t tako_config_job_options [] = {
    { "python_version", OPTION_STRING, JOB (python_version), 0, 0, 0, 0, tako_config_check_python_version, false },
    { "base", OPTION_STRING, JOB (base), 0, 0, 0, 0, tako_config_check_optional_path, false },
    { "memory_limit", OPTION_SIZE_TEXT, JOB (memory_limit), MEMORY_LIMIT_MIN, MEMORY_LIMIT_MAX, 0, 0, NULL, false },
    { "cpu_limit", OPTION_DOUBLE, JOB (cpu_limit), 0, 0, CPU_LIMIT_MIN, CPU_LIMIT_MAX, NULL, false },
    { "timeout", OPTION_INT, JOB (timeout), TIMEOUT_MIN, MAX_TIMEOUT_MAX, 0, 0, NULL, false },
    { "startup_timeout", OPTION_INT, JOB (startup_timeout), DEFAULT_STARTUP_TIMEOUT_MIN, MAX_STARTUP_TIMEOUT_MAX, 0, 0, NULL, false },
    { "network_enabled", OPTION_BOOL, JOB (network_enabled), 0, 0, 0, 0, NULL, false },
    { "use_system_packages", OPTION_BOOL, JOB (use_system_packages), 0, 0, 0, 0, NULL, false },
    { "warm_pool", OPTION_INT, JOB (warm_pool), 0, WARM_POOL_MAX, 0, 0, NULL, false },
    { NULL }
};

#define GPU(field) offsetof (tako_config_gpu_t, field)
const option_t tako_config_gpu_options [] = {
    { "enabled", OPTION_BOOL, GPU (enabled), 0, 0, 0, 0, NULL, false },
    { "vendor", OPTION_GPU_VENDOR, GPU (vendor), 0, 0, 0, 0, NULL, false },
    { "count", OPTION_INT, GPU (count), 0, GPU_COUNT_MAX, 0, 0, NULL, false },
    { NULL }
};

static const char *runtime_names [] = { "native", "runsc" };
static const char *security_mode_names [] = { "permissive", "strict" };
static const char *gpu_vendor_names [] = { NULL, "nvidia", "amd" };

//  ---------------------------------------------------------------------
//  Scalars

int
tako_config_parse_bool (const char *text, bool *value)
{
    static const char *truths [] = { "true", "1", "yes", "on", NULL };
    static const char *falsehoods [] = { "false", "0", "no", "off", NULL };
    for (int i = 0; text && truths [i]; i++) {
        if (strcasecmp (text, truths [i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp (text, falsehoods [i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return -1;
}

//  Decimal integer with optional sign; -1 if malformed, -2 if too large.
static int
parse_integer (const char *text, int64_t *value)
{
    const char *digits = text + (*text == '+' || *text == '-');
    if (!*digits)
        return -1;
    for (const char *c = digits; *c; c++)
        if (!isdigit ((unsigned char) *c))
            return -1;
    errno = 0;
    long long parsed = strtoll (text, NULL, 10);
    if (errno == ERANGE)
        return -2;
    *value = parsed;
    return 0;
}

//  Unit multipliers, binary like Docker's and the kernel's tmpfs size=.
static int64_t
size_unit (const char *suffix)
{
    static const struct { const char *name; int64_t factor; } units [] = {
        { "", 1 }, { "b", 1 },
        { "k", KIB }, { "kb", KIB }, { "kib", KIB },
        { "m", MIB }, { "mb", MIB }, { "mib", MIB },
        { "g", GIB }, { "gb", GIB }, { "gib", GIB },
        { "t", GIB * 1024 }, { "tb", GIB * 1024 }, { "tib", GIB * 1024 },
    };
    for (size_t i = 0; i < sizeof units / sizeof units [0]; i++)
        if (strcasecmp (suffix, units [i].name) == 0)
            return units [i].factor;
    return 0;
}

//  Returns 0, -1 if malformed, -2 if well-formed but beyond INT64_MAX.
static int
size_parse (const char *text, int64_t *bytes)
{
    if (!text || !isdigit ((unsigned char) *text))
        return -1;
    const char *suffix = text;
    while (isdigit ((unsigned char) *suffix))
        suffix++;
    int64_t factor = size_unit (suffix);
    if (factor == 0)
        return -1;
    errno = 0;
    long long number = strtoll (text, NULL, 10);
    if (errno == ERANGE || number > INT64_MAX / factor)
        return -2;
    *bytes = (int64_t) number * factor;
    return 0;
}

int
tako_config_parse_size (const char *text, int64_t *bytes)
{
    return size_parse (text, bytes) == 0? 0: -1;
}

void
tako_config_size_text (int64_t bytes, char *buffer, size_t size)
{
    static const struct { char unit; int64_t factor; } units [] = {
        { 't', GIB * 1024 }, { 'g', GIB }, { 'm', MIB }, { 'k', KIB }
    };
    for (size_t i = 0; i < sizeof units / sizeof units [0]; i++)
        if (bytes >= units [i].factor && bytes % units [i].factor == 0) {
            snprintf (buffer, size, "%lld%c", (long long) (bytes / units [i].factor),
                      units [i].unit);
            return;
        }
    snprintf (buffer, size, "%lld", (long long) bytes);
}

//  Only plain decimal notation: no hex floats, nan or inf.
static int
parse_real (const char *text, double *value)
{
    if (!*text || strlen (text) > 64)
        return -1;
    for (const char *c = text; *c; c++)
        if (!isdigit ((unsigned char) *c) && !strchr (".eE+-", *c))
            return -1;
    char *end = NULL;
    errno = 0;
    double parsed = strtod (text, &end);
    if (*end || errno == ERANGE || !isfinite (parsed))
        return -1;
    *value = parsed;
    return 0;
}

char *
tako_config_echo (const char *value)
{
    size_t length = strlen (value);
    size_t shown = length > TAKO_CONFIG_ECHO_MAX? TAKO_CONFIG_ECHO_MAX: length;
    //  Worst case every byte becomes \xNN, plus quotes, ellipsis, NUL.
    char *echo = malloc (shown * 4 + 8);
    if (!echo)
        return NULL;
    char *out = echo;
    *out++ = '"';
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char) value [i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            out += sprintf (out, "\\x%02x", c);
        else
            *out++ = (char) c;
    }
    *out++ = '"';
    if (shown < length)
        out += sprintf (out, "...");
    *out = 0;
    return echo;
}

static int
enum_parse (const char **names, int count, const char *text)
{
    for (int i = 0; i < count; i++)
        if (names [i] && strcasecmp (text, names [i]) == 0)
            return i;
    return -1;
}

static char *
range_message (const option_t *option, const char *text)
{
    char low [32], high [32];
    if (option->kind == OPTION_SIZE || option->kind == OPTION_SIZE_TEXT) {
        tako_config_size_text (option->min, low, sizeof low);
        tako_config_size_text (option->max, high, sizeof high);
    }
    else {
        snprintf (low, sizeof low, "%lld", (long long) option->min);
        snprintf (high, sizeof high, "%lld", (long long) option->max);
    }
    //  Numbers read best bare: "5 is out of range (10–1000)".
    bool bare = strlen (text) <= TAKO_CONFIG_ECHO_MAX && all_characters_in (text, "+-.");
    char *echo = bare? strdup (text): tako_config_echo (text);
    char *message = tako_config_format ("%s is out of range (%s–%s)",
                                        echo? echo: "value", low, high);
    free (echo);
    return message;
}

static char *
type_message (const char *expected, const char *text, bool quoted)
{
    char *echo = tako_config_echo (text);
    char *message = tako_config_format ("expected %s, got %s%s", expected,
                                        quoted? "the string ": "",
                                        echo? echo: "a value");
    free (echo);
    return message;
}

static char *
set_integer (const option_t *option, void *field, const char *text, bool quoted)
{
    int64_t value = 0;
    int rc = quoted? -1: parse_integer (text, &value);
    if (rc == -1)
        return type_message ("an integer", text, quoted);
    if (rc == -2 || value < option->min || value > option->max)
        return range_message (option, text);
    *(int *) field = (int) value;
    return NULL;
}

static char *
set_size (const option_t *option, void *field, const char *text)
{
    int64_t value = 0;
    int rc = size_parse (text + (*text == '-'), &value);
    if (rc == -1)
        return type_message ("a size (bytes, or like \"512k\", \"100m\", \"2g\")", text, false);
    if (rc == -2 || *text == '-' || value < option->min || value > option->max)
        return range_message (option, text);
    *(int64_t *) field = value;
    return NULL;
}

static char *
set_real (const option_t *option, void *field, const char *text, bool quoted)
{
    double value = 0;
    if (quoted || parse_real (text, &value))
        return type_message ("a number", text, quoted);
    if (value < option->min_real || value > option->max_real) {
        char *echo = strdup (text);     //  a number: parse_real allowed nothing else
        char *message = tako_config_format ("%s is out of range (%g–%g)", echo? echo: "value",
                                            option->min_real, option->max_real);
        free (echo);
        return message;
    }
    *(double *) field = value;
    return NULL;
}

static char *
set_string (const option_t *option, void *field, const char *text)
{
    if (strlen (text) > TAKO_CONFIG_STRING_MAX)
        return tako_config_format ("is longer than %d characters", TAKO_CONFIG_STRING_MAX);
    char *message = option->check? option->check (text): NULL;
    if (message)
        return message;
    char *copy = strdup (text);
    if (!copy)
        return strdup ("out of memory");
    //  A data_dir of "~/x" is relative to the home of whoever runs us.
    if (option->check == check_data_dir && text [0] == '~') {
        const char *home = getenv ("HOME");
        free (copy);
        copy = tako_config_format ("%s%s", home && *home? home: "", text + 1);
        if (!copy || copy [0] != '/') {
            free (copy);
            return strdup ("\"~\" needs HOME to be set to an absolute path");
        }
    }
    free (*(char **) field);
    *(char **) field = copy;
    return NULL;
}

static char *
set_enum (const char **names, int count, const char *what, int *field, const char *text)
{
    int value = enum_parse (names, count, text);
    if (value < 0)
        return type_message (what, text, false);
    *field = value;
    return NULL;
}

char *
tako_config_option_set (const option_t *option, void *base, const char *text, bool quoted)
{
    void *field = (char *) base + option->offset;
    switch (option->kind) {
        case OPTION_BOOL: {
            bool value;
            if (quoted || tako_config_parse_bool (text, &value))
                return type_message ("true or false", text, quoted);
            *(bool *) field = value;
            return NULL;
        }
        case OPTION_INT:
            return set_integer (option, field, text, quoted);
        case OPTION_SIZE:
        case OPTION_SIZE_TEXT:
            return set_size (option, field, text);
        case OPTION_DOUBLE:
            return set_real (option, field, text, quoted);
        case OPTION_STRING:
            return set_string (option, field, text);
        case OPTION_LOG_LEVEL: {
            tako_log_level_t level;
            if (tako_log_level_parse (text, &level))
                return type_message ("DEBUG, INFO, WARNING, ERROR or CRITICAL", text, false);
            *(tako_log_level_t *) field = level;
            return NULL;
        }
        case OPTION_RUNTIME:
            //  "runc" is what a Tako VM config says for the standard
            //  runtime; ours is the native sandbox.
            if (strcasecmp (text, "runc") == 0) {
                *(tako_container_runtime_t *) field = TAKO_RUNTIME_NATIVE;
                return NULL;
            }
            return set_enum (runtime_names, 2, "native, runsc or runc", (int *) field, text);
        case OPTION_SECURITY_MODE:
            return set_enum (security_mode_names, 2, "strict or permissive", (int *) field, text);
        case OPTION_GPU_VENDOR:
            return set_enum (gpu_vendor_names, 3, "nvidia or amd", (int *) field, text);
    }
    return strdup ("unknown option type");
}

json_t *
tako_config_option_json (const option_t *option, const void *base)
{
    const void *field = (const char *) base + option->offset;
    char text [32];
    switch (option->kind) {
        case OPTION_BOOL:
            return json_boolean (*(const bool *) field);
        case OPTION_INT:
            return json_integer (*(const int *) field);
        case OPTION_SIZE:
            return json_integer (*(const int64_t *) field);
        case OPTION_SIZE_TEXT:
            tako_config_size_text (*(const int64_t *) field, text, sizeof text);
            return json_string (text);
        case OPTION_DOUBLE:
            return json_real (*(const double *) field);
        case OPTION_STRING: {
            const char *value = *(char *const *) field;
            return json_string (value? value: "");
        }
        case OPTION_LOG_LEVEL:
            return json_string (tako_log_level_name (*(const tako_log_level_t *) field));
        case OPTION_RUNTIME:
            return json_string (runtime_names [*(const int *) field & 1]);
        case OPTION_SECURITY_MODE:
            return json_string (security_mode_names [*(const int *) field & 1]);
        case OPTION_GPU_VENDOR: {
            int vendor = *(const int *) field;
            return vendor > 0 && vendor < 3? json_string (gpu_vendor_names [vendor]): json_null ();
        }
    }
    return json_null ();
}

const option_t *
tako_config_option_find (const option_t *table, const char *name)
{
    for (const option_t *option = table; option->name; option++)
        if (strcmp (option->name, name) == 0)
            return option;
    return NULL;
}

//  Levenshtein distance, capped: beyond cap we do not care how far.
static size_t
edit_distance (const char *a, const char *b, size_t cap)
{
    size_t length_a = strlen (a), length_b = strlen (b);
    if (length_b > 64 || length_a > 64)
        return cap + 1;
    size_t row [65];
    for (size_t j = 0; j <= length_b; j++)
        row [j] = j;
    for (size_t i = 1; i <= length_a; i++) {
        size_t diagonal = row [0];
        row [0] = i;
        for (size_t j = 1; j <= length_b; j++) {
            size_t above = row [j];
            size_t cost = tolower ((unsigned char) a [i - 1]) == tolower ((unsigned char) b [j - 1])? 0: 1;
            size_t best = diagonal + cost;
            if (above + 1 < best)
                best = above + 1;
            if (row [j - 1] + 1 < best)
                best = row [j - 1] + 1;
            row [j] = best;
            diagonal = above;
        }
    }
    return row [length_b];
}

const char *
tako_config_suggest (const option_t *table, const char *name, const char *const *extra_names)
{
    const char *best = NULL;
    size_t best_distance = SUGGEST_DISTANCE_MAX + 1;
    for (const option_t *option = table; option && option->name; option++) {
        size_t distance = edit_distance (name, option->name, SUGGEST_DISTANCE_MAX);
        if (distance < best_distance) {
            best = option->name;
            best_distance = distance;
        }
    }
    for (const char *const *extra = extra_names; extra && *extra; extra++) {
        size_t distance = edit_distance (name, *extra, SUGGEST_DISTANCE_MAX);
        if (distance < best_distance) {
            best = *extra;
            best_distance = distance;
        }
    }
    return best;
}

//  ---------------------------------------------------------------------
//  String checks

static bool
has_control_character (const char *value)
{
    for (const unsigned char *c = (const unsigned char *) value; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return true;
    return false;
}

static bool
all_characters_in (const char *value, const char *allowed_punctuation)
{
    for (const char *c = value; *c; c++)
        if (!isalnum ((unsigned char) *c) && !strchr (allowed_punctuation, *c))
            return false;
    return true;
}

static char *
check_host (const char *value)
{
    if (!*value || strlen (value) > HOST_NAME_MAX_LENGTH || !all_characters_in (value, ".-:_%"))
        return strdup ("must be a host name or an IP address");
    return NULL;
}

//  Never echo the value: a database URL may hold a password.
static char *
check_database_url (const char *value)
{
    if (!*value)
        return NULL;
    if (has_control_character (value))
        return strdup ("must not contain control characters");
    if (strncmp (value, "postgresql://", 13) == 0 || strncmp (value, "postgres://", 11) == 0
    ||  strchr (value, '='))
        return NULL;
    return strdup ("must be a postgresql:// URL or a libpq key=value string");
}

char *
tako_config_check_absolute_path (const char *value)
{
    if (value [0] != '/')
        return strdup ("must be an absolute path");
    if (strlen (value) >= PATH_MAX || has_control_character (value))
        return strdup ("is not a usable path");
    return NULL;
}

char *
tako_config_check_optional_path (const char *value)
{
    return *value? tako_config_check_absolute_path (value): NULL;
}

static char *
check_data_dir (const char *value)
{
    if (value [0] == '~' && (value [1] == '/' || value [1] == 0))
        return has_control_character (value)? strdup ("is not a usable path"): NULL;
    return tako_config_check_absolute_path (value);
}

static bool
tcp_address_valid (const char *address)
{
    const char *colon = strrchr (address, ':');
    if (!colon || colon == address || !colon [1] || strlen (colon + 1) > 5)
        return false;
    if (strcmp (colon + 1, "*") != 0) {
        for (const char *c = colon + 1; *c; c++)
            if (!isdigit ((unsigned char) *c))
                return false;
        int port = atoi (colon + 1);
        if (port < 1 || port > PORT_MAX)
            return false;
    }
    for (const char *c = address; c < colon; c++)
        if (!isalnum ((unsigned char) *c) && !strchr (".-_*[]:;%", *c))
            return false;
    return true;
}

//  czmq endpoints, optionally with its "@" (bind) or ">" (connect) prefix.
static char *
check_endpoint (const char *value)
{
    const char *endpoint = value + (value [0] == '@' || value [0] == '>');
    bool valid = strlen (endpoint) <= ENDPOINT_MAX_LENGTH && !has_control_character (endpoint);
    if (valid && strncmp (endpoint, "tcp://", 6) == 0)
        valid = tcp_address_valid (endpoint + 6);
    else
    if (valid && strncmp (endpoint, "ipc://", 6) == 0)
        valid = endpoint [6] != 0;
    else
    if (valid && strncmp (endpoint, "inproc://", 9) == 0)
        valid = endpoint [9] != 0;
    else
        valid = false;
    return valid? NULL: strdup ("must be a tcp://HOST:PORT, ipc://PATH or inproc://NAME endpoint");
}

static char *
check_http_url (const char *value)
{
    if (!*value)
        return NULL;
    if ((strncmp (value, "http://", 7) != 0 && strncmp (value, "https://", 8) != 0)
    ||  has_control_character (value) || strchr (value, ' '))
        return strdup ("must be an http:// or https:// URL");
    return NULL;
}

char *
tako_config_check_job_type_name (const char *value)
{
    size_t length = strlen (value);
    bool valid = length > 0 && length <= JOB_TYPE_NAME_MAX_LENGTH
              && (islower ((unsigned char) value [0]) || isdigit ((unsigned char) value [0]));
    for (const char *c = value; valid && *c; c++)
        valid = islower ((unsigned char) *c) || isdigit ((unsigned char) *c) || *c == '_' || *c == '-';
    if (valid)
        return NULL;
    char *echo = tako_config_echo (value);
    char *message = tako_config_format (
        "%s is not a valid name (lowercase letters, digits, '_' and '-', "
        "starting with a letter or digit, at most %d)", echo? echo: "name",
        JOB_TYPE_NAME_MAX_LENGTH);
    free (echo);
    return message;
}

//  A PEP 508 distribution name: letters and digits, with . _ - inside.
static const char *
skip_package_name (const char *c)
{
    if (!isalnum ((unsigned char) *c))
        return NULL;
    while (isalnum ((unsigned char) *c) || *c == '.' || *c == '_' || *c == '-')
        c++;
    return isalnum ((unsigned char) c [-1])? c: NULL;
}

static const char *
skip_spaces (const char *c)
{
    while (*c == ' ')
        c++;
    return c;
}

//  One "OP VERSION" clause, e.g. ">=1.26" or "== 2.*".
static const char *
skip_version_clause (const char *c)
{
    static const char *operators [] = { "===", "~=", "==", "!=", "<=", ">=", "<", ">" };
    size_t i = 0;
    for (; i < sizeof operators / sizeof operators [0]; i++)
        if (strncmp (c, operators [i], strlen (operators [i])) == 0)
            break;
    if (i == sizeof operators / sizeof operators [0])
        return NULL;
    c = skip_spaces (c + strlen (operators [i]));
    const char *start = c;
    while (isalnum ((unsigned char) *c) || (*c && strchr (".*+!_-", *c)))
        c++;
    return c > start? c: NULL;
}

//  The conservative subset of PEP 508 we pass to pip: name, optional
//  [extras], optional comma-separated version clauses. Anything else
//  (options like --index-url, URLs, paths, markers, tabs or newlines)
//  could change what pip does, so it is refused.
char *
tako_config_check_requirement (const char *value)
{
    const char *c = strlen (value) <= REQUIREMENT_MAX_LENGTH? skip_package_name (value): NULL;
    if (c && *c == '[') {
        do
            c = skip_package_name (skip_spaces (c + 1));
        while (c && *(c = skip_spaces (c)) == ',');
        c = c && *c == ']'? c + 1: NULL;
    }
    if (c && *(c = skip_spaces (c))) {
        do
            c = skip_version_clause (skip_spaces (c));
        while (c && *(c = skip_spaces (c)) == ',' && (c = c + 1));
    }
    if (c && *c == 0)
        return NULL;
    char *echo = tako_config_echo (value);
    char *message = tako_config_format (
        "%s is not a plain requirement (name, optional [extras], optional "
        "version clauses like \">=1.26,<2\"; no options, URLs or markers)",
        echo? echo: "value");
    free (echo);
    return message;
}

//  Variables that would let a job type steer the loader or the
//  interpreter away from the environment the builder made, or that the
//  sandbox sets itself.
static bool
env_name_refused (const char *name)
{
    static const char *refused [] = {
        "PATH", "HOME", "TMPDIR", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
        "PYTHONUSERBASE", "PYTHONEXECUTABLE", "PYTHONNOUSERSITE", "PYTHONSAFEPATH",
        "PYTHONPLATLIBDIR", "PYTHONINSPECT", "PYTHONBREAKPOINT", NULL
    };
    if (strncmp (name, "LD_", 3) == 0 || strncmp (name, "TAKO_", 5) == 0)
        return true;
    for (int i = 0; refused [i]; i++)
        if (strcmp (name, refused [i]) == 0)
            return true;
    return false;
}

char *
tako_config_check_env_name (const char *value)
{
    size_t length = strlen (value);
    bool valid = length > 0 && length <= ENV_NAME_MAX_LENGTH
              && (isupper ((unsigned char) value [0]) || value [0] == '_');
    for (const char *c = value; valid && *c; c++)
        valid = isupper ((unsigned char) *c) || isdigit ((unsigned char) *c) || *c == '_';
    char *echo = tako_config_echo (value);
    char *message = NULL;
    if (!valid)
        message = tako_config_format ("%s is not a valid variable name ([A-Z_][A-Z0-9_]*)",
                                      echo? echo: "name");
    else
    if (env_name_refused (value))
        message = tako_config_format ("%s may not be set by a job type "
                                      "(the sandbox controls it)", echo? echo: "name");
    free (echo);
    return message;
}

char *
tako_config_check_module_name (const char *value)
{
    bool valid = strlen (value) <= MODULE_NAME_MAX_LENGTH;
    bool at_start = true;
    for (const char *c = value; valid && *c; c++) {
        if (*c == '.') {
            valid = !at_start;
            at_start = true;
        }
        else {
            valid = isalpha ((unsigned char) *c) || *c == '_' || (!at_start && isdigit ((unsigned char) *c));
            at_start = false;
        }
    }
    if (valid && !at_start)
        return NULL;
    char *echo = tako_config_echo (value);
    char *message = tako_config_format ("%s is not a Python module name", echo? echo: "value");
    free (echo);
    return message;
}

char *
tako_config_check_device_id (const char *value)
{
    if (*value && strlen (value) <= DEVICE_ID_MAX_LENGTH && all_characters_in (value, ":_-."))
        return NULL;
    return strdup ("is not a device id (letters, digits, ':', '_', '-', '.')");
}

char *
tako_config_check_python_version (const char *value)
{
    //  "3.11" or "3.11.4"; "" means the interpreter sandbox_python is.
    if (!*value)
        return NULL;
    int major = 0, minor = 0, patch = 0, used = 0;
    int fields = sscanf (value, "%2d.%2d%n.%2d%n", &major, &minor, &used, &patch, &used);
    bool digits_only = all_characters_in (value, ".") && isdigit ((unsigned char) value [0]);
    for (const char *c = value; *c; c++)
        if (isalpha ((unsigned char) *c))
            digits_only = false;
    if (digits_only && fields >= 2 && major == 3 && value [used] == 0)
        return NULL;
    char *echo = tako_config_echo (value);
    char *message = tako_config_format ("%s is not a Python 3 version like \"3.11\"", echo? echo: "value");
    free (echo);
    return message;
}

//  ---------------------------------------------------------------------
//  Lists and job types

int
tako_config_list_append (tako_config_list_t *list, const char *item)
{
    if (list->count >= TAKO_CONFIG_LIST_MAX)
        return -1;
    char **items = realloc (list->items, (list->count + 2) * sizeof *items);
    if (!items)
        return -1;
    list->items = items;
    items [list->count] = strdup (item);
    if (!items [list->count]) {
        items [list->count] = NULL;
        return -1;
    }
    items [++list->count] = NULL;
    return 0;
}

void
tako_config_list_clear (tako_config_list_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        free (list->items [i]);
    free (list->items);
    list->items = NULL;
    list->count = 0;
}

//  Job type defaults from the Tako VM reference; timeouts 0 = inherit.
void
tako_config_job_type_init (tako_config_job_type_t *job_type, const char *name)
{
    memset (job_type, 0, sizeof *job_type);
    job_type->name = strdup (name);
    job_type->python_version = strdup ("");
    job_type->base = strdup ("");
    job_type->memory_limit = 512 * MIB;
    job_type->cpu_limit = 1.0;
}

void
tako_config_job_type_clear (tako_config_job_type_t *job_type)
{
    free (job_type->name);
    free (job_type->python_version);
    free (job_type->base);
    tako_config_list_clear (&job_type->requirements);
    tako_config_list_clear (&job_type->shared_code);
    tako_config_list_clear (&job_type->preload);
    tako_config_list_clear (&job_type->gpu.device_ids);
    for (size_t i = 0; i < job_type->environment_count; i++) {
        free (job_type->environment [i].name);
        free (job_type->environment [i].value);
    }
    free (job_type->environment);
    memset (job_type, 0, sizeof *job_type);
}
