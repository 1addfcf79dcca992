/*  tako_config_api_keys — API keys are kept only as sha256 hashes.

    A config may list "sha256:<64 hex>" (preferred) or a plain key, which
    is hashed here and then forgotten, so no plain key lives in memory or
    in `tako-vm config` output after load.                               */

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_config_private.h"
#include "tako_sha256.h"

#define SHA256_PREFIX       "sha256:"
#define SHA256_HEX_LENGTH   64
//  Plain keys shorter than this are too easy to guess.
#define API_KEY_MIN_LENGTH  16
#define API_KEY_MAX_LENGTH  256

static bool
is_hash_form (const char *value)
{
    if (strncmp (value, SHA256_PREFIX, strlen (SHA256_PREFIX)) != 0)
        return false;
    const char *hex = value + strlen (SHA256_PREFIX);
    if (strlen (hex) != SHA256_HEX_LENGTH)
        return false;
    for (const char *c = hex; *c; c++)
        if (!isxdigit ((unsigned char) *c))
            return false;
    return true;
}

char *
tako_config_api_key_hash (const char *value, bool *was_plain, char **message)
{
    *was_plain = false;
    *message = NULL;
    if (strncmp (value, SHA256_PREFIX, strlen (SHA256_PREFIX)) == 0) {
        if (!is_hash_form (value)) {
            *message = strdup ("a hashed key must be \"sha256:\" and 64 hex digits");
            return NULL;
        }
        char *hash = strdup (value);
        for (char *c = hash? hash: ""; *c; c++)
            *c = (char) tolower ((unsigned char) *c);
        return hash;
    }
    //  Never echo a plain key: it is a secret.
    size_t length = strlen (value);
    bool printable = length >= API_KEY_MIN_LENGTH && length <= API_KEY_MAX_LENGTH;
    for (const char *c = value; printable && *c; c++)
        printable = isgraph ((unsigned char) *c);
    if (!printable) {
        *message = tako_config_format ("a plain key must be %d–%d printable characters "
                                       "without spaces", API_KEY_MIN_LENGTH, API_KEY_MAX_LENGTH);
        return NULL;
    }
    char *hex = tako_sha256_hex (value, length);
    char *hash = hex? tako_config_format ("%s%s", SHA256_PREFIX, hex): NULL;
    free (hex);
    *was_plain = hash != NULL;
    if (!hash)
        *message = strdup ("out of memory");
    return hash;
}
