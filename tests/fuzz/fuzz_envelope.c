/* fuzz_envelope: protobuf-c decoding of one Envelope payload, as the collector does per frame, and
 * epw_frame_peek_snapshot (the collector's shortcut for snapshots) checked against it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "epw_frame.h"
#include "epwatch.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Epw__Envelope *env;
    uint8_t *buf;
    size_t n, i;

    const uint8_t *inner;
    size_t ilen;
    int peeked = epw_frame_peek_snapshot(data, size, &inner, &ilen);

    if (peeked && (inner < data || ilen == 0 || inner + ilen != data + size))
        abort();
    env = epw__envelope__unpack(NULL, size, data);
    if (peeked) {
        /* The shortcut hands `inner` to Snapshot decoding: it must agree with the full decode. */
        Epw__Snapshot *alone = epw__snapshot__unpack(NULL, ilen, inner);
        if ((alone == NULL) != (env == NULL))
            abort();
        if (env != NULL &&
            (env->msg_case != EPW__ENVELOPE__MSG_SNAPSHOT || env->snapshot->seq != alone->seq ||
             env->snapshot->dropped_before != alone->dropped_before))
            abort();
        if (alone != NULL)
            epw__snapshot__free_unpacked(alone, NULL);
    }
    if (env == NULL)
        return 0;
    /* Walk what a receiver touches, then re-encode. */
    if (env->msg_case == EPW__ENVELOPE__MSG_SNAPSHOT && env->snapshot != NULL) {
        const Epw__Snapshot *s = env->snapshot;
        for (i = 0; i < s->n_destinations; i++)
            if (s->destinations[i] == NULL || s->destinations[i]->local_address == NULL)
                abort();
        for (i = 0; i < s->n_notes; i++)
            if (s->notes[i] == NULL)
                abort();
        if (s->hostname == NULL)
            abort();
    } else if (env->msg_case == EPW__ENVELOPE__MSG_HELLO && env->hello != NULL) {
        if (env->hello->hostname == NULL)
            abort();
    }
    n = epw__envelope__get_packed_size(env);
    buf = malloc(n ? n : 1);
    if (buf != NULL) {
        if (epw__envelope__pack(env, buf) != n)
            abort();
        free(buf);
    }
    epw__envelope__free_unpacked(env, NULL);
    return 0;
}
