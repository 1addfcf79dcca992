/*  tako_config_private — shared between the tako_config_*.c files only.

    The option tables drive parsing (YAML and environment), validation of
    single values, and JSON output, so adding an option is one table row
    plus a struct field.                                                  */

#ifndef TAKO_CONFIG_PRIVATE_H_INCLUDED
#define TAKO_CONFIG_PRIVATE_H_INCLUDED

#include "tako_config.h"

//  Strings longer than this are refused (paths, URLs, values).
#define TAKO_CONFIG_STRING_MAX   4096
//  Entries in any one list (requirements, api_keys, ...).
#define TAKO_CONFIG_LIST_MAX     1024
//  Job types in one file.
#define TAKO_CONFIG_JOB_TYPES_MAX 256
//  Errors kept per load; the rest are counted in one final line.
#define TAKO_CONFIG_ERRORS_MAX   100
//  Values quoted in error messages are cut to this many characters.
#define TAKO_CONFIG_ECHO_MAX     40

#define KIB ((int64_t) 1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

typedef enum {
    OPTION_BOOL,
    OPTION_INT,             //  int field
    OPTION_SIZE,            //  int64_t bytes; integer or "100m"; JSON as integer
    OPTION_SIZE_TEXT,       //  int64_t bytes; JSON as text "100m"
    OPTION_DOUBLE,
    OPTION_STRING,          //  char *, checked by option->check
    OPTION_LOG_LEVEL,
    OPTION_RUNTIME,
    OPTION_SECURITY_MODE,
    OPTION_GPU_VENDOR
} option_kind_t;

//  Checks a string value; returns NULL if fine, else a fresh message.
typedef char *(option_check_fn) (const char *value);

typedef struct {
    const char *name;       //  key in YAML
    option_kind_t kind;
    size_t offset;          //  into the struct the table describes
    int64_t min, max;       //  INT, SIZE
    double min_real, max_real;  //  DOUBLE
    option_check_fn *check; //  STRING; NULL = any string
    bool has_env;           //  TAKO_VM_<NAME> overrides it
} option_t;

//  Tables: top-level scalars, container_limits, job type scalars, gpu.
extern const option_t tako_config_top_options [];
extern const option_t tako_config_limit_options [];
extern const option_t tako_config_job_options [];
extern const option_t tako_config_gpu_options [];

//  Parse text into the field of option at base. quoted: the YAML scalar
//  was quoted (a quoted "true" is not a boolean). Returns NULL on
//  success, else a fresh message without the option name.
char *tako_config_option_set (const option_t *option, void *base,
                              const char *text, bool quoted);

//  The field as JSON.
json_t *tako_config_option_json (const option_t *option, const void *base);

//  Find an option by name in a table (NULL-name terminated), or NULL.
const option_t *tako_config_option_find (const option_t *table, const char *name);

//  The closest known name in a table within a small edit distance, or NULL.
const char *tako_config_suggest (const option_t *table, const char *name,
                                 const char *const *extra_names);

//  Single-value checks, NULL if fine, else a fresh message.
char *tako_config_check_job_type_name (const char *value);
char *tako_config_check_requirement (const char *value);
char *tako_config_check_env_name (const char *value);
char *tako_config_check_module_name (const char *value);
char *tako_config_check_absolute_path (const char *value);
char *tako_config_check_optional_path (const char *value);
char *tako_config_check_device_id (const char *value);
char *tako_config_check_python_version (const char *value);

//  Size as short text: 104857600 -> "100m", 1500 -> "1500".
void tako_config_size_text (int64_t bytes, char *buffer, size_t size);

//  A value fit to quote in an error: cut, control characters escaped.
//  Caller frees.
char *tako_config_echo (const char *value);

//  API key: "sha256:<hex>" normalised to lowercase, or a plain key hashed.
//  Returns the fresh hash string, or NULL and sets *message. *was_plain
//  is set when the input was a plain key.
char *tako_config_api_key_hash (const char *value, bool *was_plain, char **message);

//  Job type: set defaults / free fields.
void tako_config_job_type_init (tako_config_job_type_t *job_type, const char *name);
void tako_config_job_type_clear (tako_config_job_type_t *job_type);

//  Lists.
int tako_config_list_append (tako_config_list_t *list, const char *item);
void tako_config_list_clear (tako_config_list_t *list);

//  Origins: remember where an option got its value, for later messages.
void tako_config_origin_set (tako_config_t *self, const char *option,
                             int line, const char *env_name);
//  The file name the config was read from (also tako_config_source).
void tako_config_origin_set_source (tako_config_t *self, const char *file);
//  Add an error about option, placed where its value came from.
void tako_config_error_at (tako_config_t *self, tako_config_errors_t *errors,
                           const char *option, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

//  True if some file line or variable set option (not just the default).
bool tako_config_origin_known (tako_config_t *self, const char *option);

//  The value of name in envp (NULL = this process's environ), or NULL.
const char *tako_config_env_get (char **envp, const char *name);

//  $XDG_DATA_HOME/tako_vm, else $HOME/.tako_vm, from envp. Caller frees.
char *tako_config_default_data_dir (char **envp);

//  printf into a fresh string (aborts only on allocation failure: NULL).
char *tako_config_format (const char *format, ...)
    __attribute__ ((format (printf, 1, 2)));

#endif
