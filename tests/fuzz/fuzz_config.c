/*  libFuzzer harness: any bytes as a tako_vm.yaml. Loading must never
    crash, leak or run away, whatever the input: every problem becomes an
    error line. A valid result must also survive the rest of the load
    (environment, cross-field checks) and JSON output.                    */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "tako_config.h"

//  No variables from the machine running the fuzzer.
static char *fuzz_env [] = { "HOME=/nonexistent", NULL };

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    tako_config_t *config = tako_config_new ();
    tako_config_errors_t *errors = tako_config_errors_new ();
    if (!config || !errors)
        abort ();
    tako_config_load_string (config, (const char *) data, size, "fuzz.yaml", errors);
    tako_config_apply_env (config, fuzz_env, errors);
    tako_config_finish (config, errors);
    char *text = tako_config_errors_text (errors, true);
    free (text);
    json_t *json = tako_config_to_json (config);
    if (!json)
        abort ();
    char *dump = json_dumps (json, 0);
    free (dump);
    json_decref (json);
    tako_config_errors_destroy (&errors);
    tako_config_destroy (&config);
    return 0;
}
