/*  tako-vm sandbox — run one job locally, no server, print the result.

    Maps the configuration (and the job type) to a sandbox spec; the
    sandbox itself knows nothing of the configuration. Exit 0 when the job
    ran, whatever its status; 1 when the sandbox could not be built (the
    layer is named on stderr); 2 for usage errors.                        */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "tako_cli.h"
#include "tako_config.h"
#include "tako_executor.h"
#include "actors/executor/tako_sandbox.h"
#include "actors/executor/sandbox_runtime.h"
#include "actors/executor/sandbox_uidmap.h"
#include "actors/executor/tako_zygote.h"

//  Code and input read from files or stdin are capped well above the
//  configuration's maxima so that the sandbox reports the limit itself.
#define SANDBOX_CLI_READ_MAX (300 * 1024 * 1024)
//  Default slots for the command line: away from an executor's low slots.
#define SANDBOX_CLI_SLOT_BASE 10000
#define SANDBOX_CLI_SLOT_SPAN 50000
#define MS_PER_SECOND 1000.0

typedef struct {
    const char *file;
    const char *input;
    const char *input_file;
    double timeout_s, startup_timeout_s;
    const char *job_type;
    const char *memory;
    int slot;
    bool zygote;
} sandbox_args_t;

static char *
file_slurp (const char *path, size_t *size)
{
    FILE *file = strcmp (path, "-") == 0? stdin: fopen (path, "rb");
    if (!file)
        return NULL;
    size_t allocated = 4096, filled = 0;
    char *data = malloc (allocated);
    while (data) {
        if (filled + 1 >= allocated) {
            if (allocated >= SANDBOX_CLI_READ_MAX) {
                free (data);
                data = NULL;
                break;
            }
            char *grown = realloc (data, allocated * 2);
            if (!grown) {
                free (data);
                data = NULL;
                break;
            }
            data = grown;
            allocated *= 2;
        }
        size_t got = fread (data + filled, 1, allocated - 1 - filled, file);
        filled += got;
        if (got == 0)
            break;
    }
    if (file != stdin)
        fclose (file);
    if (data) {
        data [filled] = '\0';
        *size = filled;
    }
    return data;
}

static int
seconds_parse (const char *text, double *seconds)
{
    char *end = NULL;
    errno = 0;
    double value = strtod (text, &end);
    if (errno || end == text || *end || !isfinite (value) || value <= 0 || value > 86400)
        return -1;
    *seconds = value;
    return 0;
}

static int
args_parse (int argc, char **argv, sandbox_args_t *args)
{
    memset (args, 0, sizeof (*args));
    args->slot = -1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        bool takes_value = strcmp (arg, "--input") == 0 || strcmp (arg, "--input-file") == 0
            || strcmp (arg, "--timeout") == 0 || strcmp (arg, "--startup-timeout") == 0
            || strcmp (arg, "--job-type") == 0 || strcmp (arg, "--memory") == 0
            || strcmp (arg, "--slot") == 0;
        if (takes_value && !value) {
            fprintf (stderr, "tako-vm sandbox: %s needs a value\n", arg);
            return -1;
        }
        if (strcmp (arg, "--input") == 0)
            args->input = value;
        else if (strcmp (arg, "--input-file") == 0)
            args->input_file = value;
        else if (strcmp (arg, "--job-type") == 0)
            args->job_type = value;
        else if (strcmp (arg, "--memory") == 0)
            args->memory = value;
        else if (strcmp (arg, "--timeout") == 0) {
            if (seconds_parse (value, &args->timeout_s) != 0) {
                fprintf (stderr, "tako-vm sandbox: --timeout wants seconds > 0\n");
                return -1;
            }
        }
        else if (strcmp (arg, "--startup-timeout") == 0) {
            if (seconds_parse (value, &args->startup_timeout_s) != 0) {
                fprintf (stderr, "tako-vm sandbox: --startup-timeout wants seconds > 0\n");
                return -1;
            }
        }
        else if (strcmp (arg, "--zygote") == 0)
            args->zygote = true;
        else if (strcmp (arg, "--slot") == 0) {
            char *end = NULL;
            long slot = strtol (value, &end, 10);
            if (*end || slot < 0 || slot > TAKO_SANDBOX_SLOT_MAX) {
                fprintf (stderr, "tako-vm sandbox: --slot wants 0..%d\n", TAKO_SANDBOX_SLOT_MAX);
                return -1;
            }
            args->slot = (int) slot;
        }
        else if (arg [0] == '-' && arg [1] != '\0') {
            fprintf (stderr, "tako-vm sandbox: unknown option '%s'\n", arg);
            return -1;
        }
        else if (!args->file) {
            args->file = arg;
            continue;
        }
        else {
            fprintf (stderr, "tako-vm sandbox: unexpected argument '%s'\n", arg);
            return -1;
        }
        i++;
    }
    if (!args->file) {
        fprintf (stderr, "tako-vm sandbox: which FILE.py (or - for stdin)?\n");
        return -1;
    }
    if (args->input && args->input_file) {
        fprintf (stderr, "tako-vm sandbox: --input and --input-file exclude each other\n");
        return -1;
    }
    return 0;
}

//  The job's input: valid JSON, an object (input_data of the REST API).
static char *
input_load (const sandbox_args_t *args)
{
    size_t size = 0;
    char *text = args->input_file? file_slurp (args->input_file, &size)
               : strdup (args->input? args->input: "{}");
    if (!text) {
        fprintf (stderr, "tako-vm sandbox: cannot read the input\n");
        return NULL;
    }
    json_error_t problem;
    json_t *parsed = json_loads (text, 0, &problem);
    if (!json_is_object (parsed)) {
        fprintf (stderr, "tako-vm sandbox: the input must be a JSON object%s%s\n",
                 parsed? "": ": ", parsed? "": problem.text);
        json_decref (parsed);
        free (text);
        return NULL;
    }
    json_decref (parsed);
    return text;
}


static int
sandbox_run (tako_cli_t *cli, int argc, char **argv)
{
    sandbox_args_t args;
    if (args_parse (argc, argv, &args) != 0)
        return 2;
    char *problems = NULL;
    tako_config_t *config = tako_config_load (cli->config_path, &problems);
    if (!config) {
        fprintf (stderr, "%s", problems? problems: "tako-vm sandbox: cannot load the configuration\n");
        free (problems);
        return 2;
    }
    const char *job_type_name = args.job_type? args.job_type: "default";
    const tako_config_job_type_t *job_type = tako_config_job_type (config, job_type_name);
    if (!job_type) {
        fprintf (stderr, "tako-vm sandbox: unknown job type '%s'\n", job_type_name);
        tako_config_destroy (&config);
        return 2;
    }
    const char *warning = NULL, *refusal = NULL;
    if (tako_sandbox_runtime_choose (config->container_runtime == TAKO_RUNTIME_RUNSC,
                                     config->security_mode == TAKO_SECURITY_STRICT,
                                     &warning, &refusal) != 0) {
        fprintf (stderr, "tako-vm sandbox: runtime: %s (security_mode strict)\n", refusal);
        tako_config_destroy (&config);
        return 1;
    }
    if (warning)
        fprintf (stderr, "tako-vm sandbox: warning: %s; using the native sandbox\n", warning);

    tako_sandbox_spec_t spec;
    tako_sandbox_env_t *env = NULL;
    int rc = 2;
    size_t code_size = 0;
    char *code = file_slurp (args.file, &code_size);
    char *input = code? input_load (&args): NULL;
    if (!code)
        fprintf (stderr, "tako-vm sandbox: cannot read '%s'\n", args.file);
    if (!code || !input || tako_executor_spec_from_config (&spec, config, job_type, &env) != 0)
        goto done;
    if (args.timeout_s > 0)
        spec.timeout_ms = (int64_t) ceil (args.timeout_s * MS_PER_SECOND);
    if (args.startup_timeout_s > 0)
        spec.startup_timeout_ms = (int64_t) ceil (args.startup_timeout_s * MS_PER_SECOND);
    if (args.memory && (tako_config_parse_size (args.memory, &spec.memory_limit_bytes) != 0
                        || spec.memory_limit_bytes < 1024 * 1024)) {
        fprintf (stderr, "tako-vm sandbox: --memory wants a size of at least 1m (e.g. 256m)\n");
        goto done;
    }
    spec.slot = args.slot >= 0? args.slot: SANDBOX_CLI_SLOT_BASE + getpid () % SANDBOX_CLI_SLOT_SPAN;
    spec.code = code;
    spec.code_size = code_size;
    spec.input_json = input;
    if (cli->verbose)
        fprintf (stderr, "tako-vm sandbox: slot %d, host uid %u\n", spec.slot,
                 (unsigned) tako_sandbox_uidmap_host_id (spec.slot));
    tako_zygote_t *zygote = NULL;
    if (args.zygote) {
        //  As a warm pool would: the job type's preload, imported once in
        //  the zygote; the sandbox is cloned by it.
        spec.preload = (const char *const *) job_type->preload.items;
        spec.preload_count = job_type->preload.count;
        char *reason = NULL;
        if (!(zygote = tako_zygote_new (&spec, &reason))) {
            fprintf (stderr, "tako-vm sandbox: zygote: %s\n", reason? reason: "out of memory");
            free (reason);
            rc = 1;
            goto done;
        }
        spec.zygote = zygote;
    }
    char *error = NULL;
    json_t *result = tako_sandbox_execute (&spec, &error);
    tako_zygote_destroy (&zygote);
    if (!result) {
        fprintf (stderr, "tako-vm sandbox: %s\n", error? error: "failed");
        free (error);
        rc = 1;
        goto done;
    }
    char *text = json_dumps (result, JSON_INDENT (2) | JSON_REAL_PRECISION (12));
    if (text)
        printf ("%s\n", text);
    free (text);
    json_decref (result);
    rc = 0;
done:
    free (env);
    free (code);
    free (input);
    tako_config_destroy (&config);
    return rc;
}

const tako_command_t tako_command_sandbox = {
    "sandbox",
    "FILE.py [--input JSON | --input-file F] [--timeout S] [--startup-timeout S] [--job-type NAME] [--memory SIZE] [--slot N] [--zygote]",
    "run one job in a local sandbox and print its result as JSON",
    sandbox_run,
    "Runs FILE.py (- reads the code from stdin) once in a fresh sandbox, without\n"
    "any server, and prints the full result (status, exit_code, stdout, stderr,\n"
    "output, error, artifacts, timing, resource_usage, hashes) as JSON.\n"
    "\n"
    "  --input JSON         input_data, a JSON object (default {}), in /input/data.json\n"
    "  --input-file F       the same, read from a file\n"
    "  --timeout S          execution timeout in seconds (default: the job type's)\n"
    "  --startup-timeout S  until the interpreter is ready (default: the job type's)\n"
    "  --job-type NAME      limits and environment of this job type (default: default)\n"
    "  --memory SIZE        memory limit, e.g. 256m (default: the job type's)\n"
    "  --slot N             sandbox slot: the job runs as host uid 200000+N\n"
    "  --zygote             fork the interpreter from a zygote started for this run\n"
    "                       (how warm pools start jobs) instead of exec'ing one\n"
    "\n"
    "Exit status: 0 when the job ran (whatever its status), 1 when the sandbox\n"
    "could not be built (the failing layer is named on stderr), 2 on usage errors.\n"
};
