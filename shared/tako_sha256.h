/*  tako_sha256 — SHA-256 (FIPS 180-4), incremental or one-shot.

    We hash code, inputs and artifacts; OpenSSL is not among our
    dependencies, so this small implementation is ours.

        tako_sha256_t *hash = tako_sha256_new ();
        tako_sha256_update (hash, "ab", 2);
        tako_sha256_update (hash, "c", 1);
        char hex [TAKO_SHA256_HEX_SIZE];
        tako_sha256_final_hex (hash, hex);      //  "ba7816bf..."
        tako_sha256_destroy (&hash);

    or in one call: char *hex = tako_sha256_hex ("abc", 3); ... free (hex);   */

#ifndef TAKO_SHA256_H_INCLUDED
#define TAKO_SHA256_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAKO_SHA256_DIGEST_SIZE 32
//  64 hex digits and the terminating NUL.
#define TAKO_SHA256_HEX_SIZE    65

typedef struct tako_sha256_t tako_sha256_t;

//  A fresh hash, or NULL when out of memory.
tako_sha256_t *tako_sha256_new (void);

//  Free the hash and NULL the caller's pointer; safe twice.
void tako_sha256_destroy (tako_sha256_t **self_p);

//  Add bytes to the hash.
void tako_sha256_update (tako_sha256_t *self, const void *data, size_t size);

//  Finish: write the 32-byte digest. The hash starts over afterwards.
void tako_sha256_final (tako_sha256_t *self, uint8_t digest [TAKO_SHA256_DIGEST_SIZE]);

//  Finish: write 64 lowercase hex digits and a NUL into hex.
void tako_sha256_final_hex (tako_sha256_t *self, char hex [TAKO_SHA256_HEX_SIZE]);

//  One-shot: lowercase hex digest of data, fresh string (caller frees),
//  or NULL when out of memory.
char *tako_sha256_hex (const void *data, size_t size);

void tako_sha256_test (bool verbose);

#endif
