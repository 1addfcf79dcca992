/*  fuzz_http — arbitrary bytes into the REST request checks.

    The first byte picks what the rest is: an execute body (sync or
    async), a fork body, or a path parameter / query value (made a C
    string at the first NUL). Whatever is accepted must have the shape the
    handlers rely on: a SUBMIT object whose code is a non-empty string.  */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tako_httpreq.h"

static void
check_execute (const char *data, size_t size, bool async)
{
    tako_httpreq_error_t error;
    json_t *submit = tako_httpreq_execute (data, size, async, &error);
    if (submit) {
        json_t *code = json_object_get (submit, "code");
        if (!json_is_string (code) || json_string_length (code) == 0)
            abort ();
        if (!async && json_object_get (submit, "idempotency_key"))
            abort ();
        json_decref (submit);
    }
    else
    if (error.status != 400 && error.status != 422)
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *input, size_t size)
{
    if (size == 0)
        return 0;
    const char *data = (const char *) input + 1;
    size--;
    tako_httpreq_error_t error;
    switch (input [0] % 4) {
        case 0:
            check_execute (data, size, false);
            break;
        case 1:
            check_execute (data, size, true);
            break;
        case 2:
            free (tako_httpreq_fork (data, size, &error));
            break;
        default: {
            char *text = strndup (data, size);
            if (!text)
                return 0;
            bool flag = false;
            long number = 0;
            tako_httpreq_id_valid (text);
            tako_httpreq_name_valid (text);
            tako_httpreq_correlation_valid (text);
            tako_httpreq_bool (text, &flag);
            if (tako_httpreq_int (text, 1, 1000, &number) == 0 && (number < 1 || number > 1000))
                abort ();
            //  Decoding never grows the text nor makes a NUL inside it.
            size_t before = strlen (text);
            if (tako_httpreq_unescape (text) != strlen (text) || strlen (text) > before)
                abort ();
            free (text);
        }
    }
    return 0;
}
