/* fuzz_diag: the NETLINK_SOCK_DIAG datagram decoder diag_parse, with its contract as the oracle. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diag_linux.h"
#include "epw_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: a 5-byte header, then one datagram as recv() would give it.
 *   byte 0: bit 0 set = UDP (else TCP); bit 1 set = *cb_rc already non-zero on entry (the
 *           draining after a callback failure); bits 2..7 = the callback call (1-based) that
 *           returns FZ_STOP, 0 = never.
 *   bytes 1..4: the sequence number of the request, little-endian.
 * The datagram is copied to a buffer of exactly its size at an odd address: the decoder must
 * bounds-check every field and must not rely on alignment.
 */
#define FZ_HDR  5u
#define FZ_STOP (-23456)
/* Smallest message carrying a row: nlmsghdr (16) + inet_diag_msg (72). */
#define FZ_MIN_ROW_MSG 88u

typedef struct fz_state_s {
    sockrow_proto_t proto;
    uint32_t calls;
    uint32_t stop_at;
    int stopped;
} fz_state_t;

static int fz_row(void *ud, sockrow_t *row)
{
    fz_state_t *s = ud;
    size_t i;

    /* No call after the callback asked to stop. */
    if (s->stopped)
        abort();
    s->calls++;
    if (row->proto != (uint8_t)s->proto || (row->family != 4 && row->family != 6) ||
        row->state >= SOCKROW_ST_COUNT || row->pid != 0 || row->flags != 0)
        abort();
    /* UDP rows carry no state; a TCP row always has one. */
    if ((s->proto == SOCKROW_UDP) != (row->state == SOCKROW_ST_NONE))
        abort();
    /* An IPv4 row uses the first 4 address bytes only: the rest stays zero. */
    if (row->family == 4) {
        for (i = 4; i < 16; i++)
            if (row->laddr[i] || row->raddr[i])
                abort();
    }
    /* The callback may scribble on the row: it lives only for the call. */
    memset(row, 0xa5, sizeof(*row));
    if (s->stop_at && s->calls == s->stop_at) {
        s->stopped = 1;
        return FZ_STOP;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_state_t s;
    uint8_t *mem, *buf;
    uint32_t seq, n_rows = 0, n_rows2 = 0;
    size_t len;
    int cb_rc, cb_rc2, done = 0, done2 = 0, rc, rc2, pre_stopped;

    if (size < FZ_HDR)
        return 0;
    memset(&s, 0, sizeof(s));
    s.proto = (data[0] & 1u) ? SOCKROW_UDP : SOCKROW_TCP;
    pre_stopped = (data[0] & 2u) != 0;
    s.stop_at = (uint32_t)(data[0] >> 2);
    seq = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
          (uint32_t)data[4] << 24;
    len = size - FZ_HDR;
    mem = malloc(len + 1);
    if (!mem)
        return 0;
    buf = mem + 1;
    memcpy(buf, data + FZ_HDR, len);

    cb_rc = pre_stopped ? FZ_STOP : 0;
    rc = diag_parse(buf, len, seq, s.proto, fz_row, &s, &n_rows, &cb_rc, &done);

    /* Documented results: 0, a negative errno, EPW_E_PROTO or EPW_E_TRUNCATED; never positive. */
    if (rc > 0 || (done != 0 && done != 1))
        abort();
    /* An error message or DONE ends the dump; any other error is a truncation. */
    if (rc != 0 && rc != EPW_E_TRUNCATED && !done)
        abort();
    /* Rows counted are rows passed to the callback, each from a message of its own. */
    if (n_rows != s.calls || (size_t)n_rows * FZ_MIN_ROW_MSG > len)
        abort();
    /* The callback's first non-zero value is kept; no callback at all once it is set. */
    if (pre_stopped && (s.calls != 0 || cb_rc != FZ_STOP))
        abort();
    if (!pre_stopped && (cb_rc != (s.stopped ? FZ_STOP : 0)))
        abort();

    /* Pure: the same input gives the same answer (rows counted again without stopping). */
    s.calls = 0;
    s.stop_at = 0;
    s.stopped = 0;
    cb_rc2 = 0;
    rc2 = diag_parse(buf, len, seq, s.proto, fz_row, &s, &n_rows2, &cb_rc2, &done2);
    if (rc2 != rc || done2 != done || cb_rc2 != 0 || n_rows2 < n_rows ||
        (!pre_stopped && cb_rc == 0 && n_rows2 != n_rows))
        abort();
    free(mem);
    return 0;
}
