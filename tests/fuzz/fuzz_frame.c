/* fuzz_frame: the stream frame decoder plus Envelope decoding, fed in input-chosen chunk sizes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "epw_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    epw_frame_decoder_t *d;
    const uint8_t *frame;
    size_t used, flen, chunk, pos;
    Epw__Envelope *env;
    uint8_t *re;
    size_t relen;

    if (size < 1)
        return 0;
    /* First byte: chunk size (1..256) so fragmentation paths are explored too. */
    chunk = (size_t)data[0] + 1;
    data++;
    size--;
    if (epw_frame_decoder_create(4096, &d))
        return 0;
    for (pos = 0; pos < size;) {
        size_t n = size - pos < chunk ? size - pos : chunk;
        size_t off = 0;
        while (off < n) {
            if (epw_frame_decoder_feed(d, data + pos + off, n - off, &used, &frame, &flen))
                goto out;
            if (used == 0)
                abort(); /* must always make progress */
            off += used;
            if (frame == NULL)
                continue;
            if (flen == 0 || flen > 4096)
                abort();
            if (epw_frame_decode_envelope(frame, flen, &env) == 0) {
                /* Anything decoded must re-encode. */
                if (epw_frame_encode(env, 0, &re, &relen) != 0)
                    abort();
                free(re);
                epw_frame_envelope_free(env);
            }
        }
        pos += n;
    }
out:
    epw_frame_decoder_destroy(d);
    return 0;
}
