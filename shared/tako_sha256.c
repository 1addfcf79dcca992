/*  tako_sha256 — SHA-256 per FIPS 180-4, section 6.2.  */

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "tako_sha256.h"

#define BLOCK_SIZE 64

struct tako_sha256_t {
    uint32_t state [8];
    uint64_t length;                //  bytes hashed so far
    uint8_t block [BLOCK_SIZE];
    size_t filled;                  //  bytes waiting in block
};

static const uint32_t round_constants [64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

static const uint32_t initial_state [8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
};

static uint32_t
rotate_right (uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void
sha256_reset (tako_sha256_t *self)
{
    memcpy (self->state, initial_state, sizeof (initial_state));
    self->length = 0;
    self->filled = 0;
}

static void
sha256_compress (tako_sha256_t *self, const uint8_t *block)
{
    uint32_t w [64];
    for (int i = 0; i < 16; i++)
        w [i] = (uint32_t) block [i * 4] << 24 | (uint32_t) block [i * 4 + 1] << 16
              | (uint32_t) block [i * 4 + 2] << 8 | (uint32_t) block [i * 4 + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotate_right (w [i - 15], 7) ^ rotate_right (w [i - 15], 18) ^ (w [i - 15] >> 3);
        uint32_t s1 = rotate_right (w [i - 2], 17) ^ rotate_right (w [i - 2], 19) ^ (w [i - 2] >> 10);
        w [i] = w [i - 16] + s0 + w [i - 7] + s1;
    }
    uint32_t a = self->state [0], b = self->state [1], c = self->state [2], d = self->state [3];
    uint32_t e = self->state [4], f = self->state [5], g = self->state [6], h = self->state [7];
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = rotate_right (e, 6) ^ rotate_right (e, 11) ^ rotate_right (e, 25);
        uint32_t choice = (e & f) ^ (~e & g);
        uint32_t t1 = h + s1 + choice + round_constants [i] + w [i];
        uint32_t s0 = rotate_right (a, 2) ^ rotate_right (a, 13) ^ rotate_right (a, 22);
        uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + majority;
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    self->state [0] += a; self->state [1] += b; self->state [2] += c; self->state [3] += d;
    self->state [4] += e; self->state [5] += f; self->state [6] += g; self->state [7] += h;
}

tako_sha256_t *
tako_sha256_new (void)
{
    tako_sha256_t *self = calloc (1, sizeof (tako_sha256_t));
    if (self)
        sha256_reset (self);
    return self;
}

void
tako_sha256_destroy (tako_sha256_t **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

void
tako_sha256_update (tako_sha256_t *self, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    self->length += size;
    while (size > 0) {
        size_t take = BLOCK_SIZE - self->filled;
        if (take > size)
            take = size;
        memcpy (self->block + self->filled, bytes, take);
        self->filled += take;
        bytes += take;
        size -= take;
        if (self->filled == BLOCK_SIZE) {
            sha256_compress (self, self->block);
            self->filled = 0;
        }
    }
}

void
tako_sha256_final (tako_sha256_t *self, uint8_t digest [TAKO_SHA256_DIGEST_SIZE])
{
    //  Padding: a 1 bit, zeros, then the message length in bits (64-bit BE).
    uint64_t bit_length = self->length * 8;
    uint8_t pad = 0x80;
    tako_sha256_update (self, &pad, 1);
    uint8_t zero = 0;
    while (self->filled != BLOCK_SIZE - 8)
        tako_sha256_update (self, &zero, 1);
    uint8_t length_be [8];
    for (int i = 0; i < 8; i++)
        length_be [i] = (uint8_t) (bit_length >> (56 - 8 * i));
    tako_sha256_update (self, length_be, 8);
    assert (self->filled == 0);
    for (int i = 0; i < 8; i++) {
        digest [i * 4] = (uint8_t) (self->state [i] >> 24);
        digest [i * 4 + 1] = (uint8_t) (self->state [i] >> 16);
        digest [i * 4 + 2] = (uint8_t) (self->state [i] >> 8);
        digest [i * 4 + 3] = (uint8_t) self->state [i];
    }
    sha256_reset (self);
}

void
tako_sha256_final_hex (tako_sha256_t *self, char hex [TAKO_SHA256_HEX_SIZE])
{
    static const char digits [] = "0123456789abcdef";
    uint8_t digest [TAKO_SHA256_DIGEST_SIZE];
    tako_sha256_final (self, digest);
    for (int i = 0; i < TAKO_SHA256_DIGEST_SIZE; i++) {
        hex [i * 2] = digits [digest [i] >> 4];
        hex [i * 2 + 1] = digits [digest [i] & 15];
    }
    hex [TAKO_SHA256_HEX_SIZE - 1] = '\0';
}

char *
tako_sha256_hex (const void *data, size_t size)
{
    tako_sha256_t hash;
    sha256_reset (&hash);
    tako_sha256_update (&hash, data, size);
    char *hex = malloc (TAKO_SHA256_HEX_SIZE);
    if (hex)
        tako_sha256_final_hex (&hash, hex);
    return hex;
}

void
tako_sha256_test (bool verbose)
{
    (void) verbose;
    //  FIPS 180-4 example vectors (NIST CSRC "SHA256.pdf", "SHA2_Additional").
    char *hex = tako_sha256_hex ("abc", 3);
    assert (hex);
    assert (strcmp (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    free (hex);

    hex = tako_sha256_hex ("", 0);
    assert (strcmp (hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    free (hex);

    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex = tako_sha256_hex (two_blocks, strlen (two_blocks));
    assert (strcmp (hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    free (hex);

    //  One million 'a', fed in uneven pieces through the incremental API.
    tako_sha256_t *hash = tako_sha256_new ();
    assert (hash);
    char chunk [997];
    memset (chunk, 'a', sizeof (chunk));
    size_t left = 1000000;
    while (left > 0) {
        size_t take = left < sizeof (chunk)? left: sizeof (chunk);
        tako_sha256_update (hash, chunk, take);
        left -= take;
    }
    char digest_hex [TAKO_SHA256_HEX_SIZE];
    tako_sha256_final_hex (hash, digest_hex);
    assert (strcmp (digest_hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);

    //  55 and 56 bytes straddle the padding boundary.
    memset (chunk, 'a', 56);
    tako_sha256_update (hash, chunk, 55);
    tako_sha256_final_hex (hash, digest_hex);
    assert (strcmp (digest_hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318") == 0);
    tako_sha256_update (hash, chunk, 56);
    tako_sha256_final_hex (hash, digest_hex);
    assert (strcmp (digest_hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a") == 0);

    tako_sha256_destroy (&hash);
    tako_sha256_destroy (&hash);
    assert (hash == NULL);
}
