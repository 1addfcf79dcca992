/*  fuzz_proto — arbitrary bytes into the protocol decoders.

    Input layout: one mode byte, then the payload.
      mode odd:  the payload is a body for command number (mode >> 1)
                 of the table, fed to tako_msg_decode_body;
      mode even: the first three payload bytes are the lengths of frames
                 1-3 (each cut to what is left), the rest is frame 4, fed
                 to tako_msg_decode as the four frames.
    Whatever decodes must encode again, and re-decoding that encoding
    must give the same bytes: the decoder never accepts what the encoder
    cannot represent.                                                   */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tako_proto.h"

//  Frame lengths taken from the input, one byte each.
#define FRAME_LENGTH_BYTES 3

static void
check_reencodes (tako_msg_t *msg)
{
    zmsg_t *frames = tako_msg_encode (msg, NULL);
    if (!frames)
        abort ();
    tako_msg_t *copy = tako_msg_decode_zmsg (frames, NULL);
    if (!copy)
        abort ();
    zmsg_t *again = tako_msg_encode (copy, NULL);
    if (!again || !zframe_eq (zmsg_last (frames), zmsg_last (again)))
        abort ();
    zmsg_destroy (&again);
    zmsg_destroy (&frames);
    tako_msg_destroy (&copy);
}

static tako_msg_t *
decode_as_body (uint8_t mode, const uint8_t *data, size_t size, char **error)
{
    size_t count;
    const tako_proto_command_t *table = tako_proto_commands (&count);
    return tako_msg_decode_body (table [(mode >> 1) % count].name, data, size, error);
}

static tako_msg_t *
decode_as_frames (const uint8_t *data, size_t size, char **error)
{
    if (size < FRAME_LENGTH_BYTES)
        return NULL;
    const uint8_t *part [4];
    size_t length [4];
    const uint8_t *cursor = data + FRAME_LENGTH_BYTES;
    size_t left = size - FRAME_LENGTH_BYTES;
    for (int i = 0; i < FRAME_LENGTH_BYTES; i++) {
        length [i] = data [i] < left? data [i]: left;
        part [i] = cursor;
        cursor += length [i];
        left -= length [i];
    }
    part [3] = cursor;
    length [3] = left;
    return tako_msg_decode (part [0], length [0], part [1], length [1],
                            part [2], length [2], part [3], length [3], error);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *error = NULL;
    tako_msg_t *msg = (data [0] & 1)
        ? decode_as_body (data [0], data + 1, size - 1, &error)
        : decode_as_frames (data + 1, size - 1, &error);
    //  Every refusal says why.
    if (!msg && size >= 1 + FRAME_LENGTH_BYTES && !error)
        abort ();
    if (msg)
        check_reencodes (msg);
    tako_msg_destroy (&msg);
    free (error);
    return 0;
}
