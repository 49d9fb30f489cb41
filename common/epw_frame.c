/* epw_frame: wire framing (4-byte big-endian length + one protobuf Envelope). */
#include "epw_frame.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "epw_err.h"

struct epw_frame_decoder_s {
    size_t max_len;
    uint8_t hdr[EPW_FRAME_HDR];
    size_t hdr_have;
    uint8_t *body; /* allocated once the header is complete and checked */
    size_t body_len;
    size_t body_have;
    int error; /* sticky */
};

int epw_frame_decoder_create(size_t max_len, epw_frame_decoder_t **out)
{
    epw_frame_decoder_t *d;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return UV_ENOMEM;
    d->max_len = max_len ? max_len : EPW_FRAME_MAX_DEFAULT;
    *out = d;
    return 0;
}

void epw_frame_decoder_destroy(epw_frame_decoder_t *d)
{
    if (d == NULL)
        return;
    free(d->body);
    free(d);
}

size_t epw_frame_decoder_pending(const epw_frame_decoder_t *d)
{
    /* A frame already handed out (header reset, body kept until the next call) is not pending. */
    return d->hdr_have == EPW_FRAME_HDR ? EPW_FRAME_HDR + d->body_have : d->hdr_have;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void epw_frame_put_header(uint8_t hdr[EPW_FRAME_HDR], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}

/* Validates the announced length; the only place a peer-controlled size enters. */
static int check_len(const epw_frame_decoder_t *d, uint32_t n)
{
    if (n == 0)
        return EPW_E_PROTO;
    if (n > d->max_len)
        return EPW_E_TOOBIG;
    return 0;
}

int epw_frame_decoder_feed(epw_frame_decoder_t *d, const uint8_t *buf, size_t len, size_t *used,
                           const uint8_t **frame, size_t *frame_len)
{
    size_t pos = 0, n;
    uint32_t flen;
    int rc = 0;

    *used = 0;
    *frame = NULL;
    *frame_len = 0;
    if (d->error)
        return d->error;

    /* A previous frame handed out from the decoder's buffer is released now. */
    if (d->body != NULL && d->body_have == d->body_len) {
        free(d->body);
        d->body = NULL;
        d->body_len = d->body_have = 0;
    }

    /* Fast path: at a boundary with the whole frame in buf, hand out a pointer into buf. */
    if (d->hdr_have == 0 && len >= EPW_FRAME_HDR) {
        flen = get_be32(buf);
        rc = check_len(d, flen);
        if (rc)
            goto out;
        if (len - EPW_FRAME_HDR >= flen) {
            *frame = buf + EPW_FRAME_HDR;
            *frame_len = flen;
            *used = EPW_FRAME_HDR + (size_t)flen;
            return 0;
        }
    }

    if (d->hdr_have < EPW_FRAME_HDR) {
        n = EPW_FRAME_HDR - d->hdr_have;
        if (n > len)
            n = len;
        memcpy(d->hdr + d->hdr_have, buf, n);
        d->hdr_have += n;
        pos += n;
        if (d->hdr_have < EPW_FRAME_HDR)
            goto out;
        flen = get_be32(d->hdr);
        rc = check_len(d, flen);
        if (rc)
            goto out;
        d->body = malloc(flen);
        if (d->body == NULL) {
            rc = UV_ENOMEM;
            goto out;
        }
        d->body_len = flen;
        d->body_have = 0;
    }

    n = d->body_len - d->body_have;
    if (n > len - pos)
        n = len - pos;
    if (n > 0) {
        memcpy(d->body + d->body_have, buf + pos, n);
        d->body_have += n;
        pos += n;
    }
    if (d->body_have == d->body_len) {
        *frame = d->body;
        *frame_len = d->body_len;
        d->hdr_have = 0; /* the body is freed on the next call */
    }

out:
    if (rc)
        d->error = rc;
    else
        *used = pos;
    return rc;
}

int epw_frame_encode(const Epw__Envelope *env, size_t max_len, uint8_t **out, size_t *out_len)
{
    size_t n;
    uint8_t *buf;

    *out = NULL;
    *out_len = 0;
    if (max_len == 0)
        max_len = EPW_FRAME_MAX_DEFAULT;
    if (env->msg_case == EPW__ENVELOPE__MSG__NOT_SET)
        return EPW_E_PROTO;
    n = epw__envelope__get_packed_size(env);
    if (n == 0)
        return EPW_E_PROTO;
    if (n > max_len || n > UINT32_MAX)
        return EPW_E_TOOBIG;
    buf = malloc(EPW_FRAME_HDR + n);
    if (buf == NULL)
        return UV_ENOMEM;
    epw_frame_put_header(buf, (uint32_t)n);
    epw__envelope__pack(env, buf + EPW_FRAME_HDR);
    *out = buf;
    *out_len = EPW_FRAME_HDR + n;
    return 0;
}

int epw_frame_decode_envelope(const uint8_t *payload, size_t len, Epw__Envelope **out)
{
    Epw__Envelope *env;

    *out = NULL;
    env = epw__envelope__unpack(NULL, len, payload);
    if (env == NULL)
        return EPW_E_PROTO;
    if (env->msg_case == EPW__ENVELOPE__MSG__NOT_SET) {
        epw__envelope__free_unpacked(env, NULL);
        return EPW_E_PROTO;
    }
    *out = env;
    return 0;
}

void epw_frame_envelope_free(Epw__Envelope *env)
{
    if (env != NULL)
        epw__envelope__free_unpacked(env, NULL);
}

/* The Envelope's `snapshot` field (number 3) with wire type 2 (length-delimited). */
#define SNAPSHOT_TAG ((3u << 3) | 2u)

int epw_frame_peek_snapshot(const uint8_t *payload, size_t len, const uint8_t **snap,
                            size_t *snap_len)
{
    uint64_t n = 0;
    size_t i;

    *snap = NULL;
    *snap_len = 0;
    if (len < 2 || payload[0] != SNAPSHOT_TAG)
        return 0;
    /* A varint: at most 10 bytes; anything longer than the payload is malformed anyway. */
    for (i = 1; i < len && i <= 10; i++) {
        n |= (uint64_t)(payload[i] & 0x7f) << (7 * (i - 1));
        if ((payload[i] & 0x80) == 0)
            break;
    }
    if (i >= len || i > 10 || (payload[i] & 0x80) != 0)
        return 0;
    i++;
    if (n == 0 || n != (uint64_t)(len - i))
        return 0;
    *snap = payload + i;
    *snap_len = (size_t)n;
    return 1;
}
