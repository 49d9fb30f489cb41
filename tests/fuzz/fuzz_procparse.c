/* fuzz_procparse: the /proc text parsers of procparse_linux, one per first input byte. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epw_err.h"
#include "procparse_linux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: one control byte, then the text. The control byte modulo FZ_NPARSERS picks the parser;
 * the rest of it (byte / FZ_NPARSERS) is an option for the parsers that take one. The text is
 * copied into a buffer of exactly its size so ASan sees any read past `len`.
 */
#define FZ_NPARSERS 6u
/* What the reserved-ports callback returns to stop the parse: none of the parser's own codes. */
#define FZ_STOP      (-12345)
#define FZ_MAX_SPANS 256u

typedef struct fz_spans_s {
    uint32_t first[FZ_MAX_SPANS];
    uint32_t last[FZ_MAX_SPANS];
    size_t n;       /* spans stored (at most FZ_MAX_SPANS) */
    size_t calls;   /* callback calls */
    size_t stop_at; /* return FZ_STOP on this call (1-based); 0: never */
} fz_spans_t;

static int fz_span(void *ud, uint32_t first, uint32_t last)
{
    fz_spans_t *s = ud;

    /* Each span is an ordered pair of ports. */
    if (first > last || last > 65535)
        abort();
    s->calls++;
    if (s->n < FZ_MAX_SPANS) {
        s->first[s->n] = first;
        s->last[s->n] = last;
        s->n++;
    }
    return s->stop_at && s->calls == s->stop_at ? FZ_STOP : 0;
}

static void fz_rc_ok(int rc)
{
    if (rc != 0 && rc != EPW_E_PARSE)
        abort();
}

static void fz_port_range(const uint8_t *buf, size_t len)
{
    uint32_t start, count, start2, count2;
    char txt[32];
    int rc, n;

    rc = procparse_port_range(buf, len, &start, &count);
    fz_rc_ok(rc);
    if (rc) {
        if (start || count)
            abort();
        return;
    }
    /* Documented bounds: first port >= 1, at least one port, last port <= 65535. */
    if (start < 1 || count < 1 || (uint64_t)start + count - 1 > 65535)
        abort();
    /* What /proc would print for this range parses back to it. */
    n = snprintf(txt, sizeof(txt), "%u\t%u\n", start, start + count - 1);
    if (procparse_port_range((const uint8_t *)txt, (size_t)n, &start2, &count2) ||
        start2 != start || count2 != count)
        abort();
}

static void fz_reserved(const uint8_t *buf, size_t len, unsigned opt)
{
    static fz_spans_t s, s2;
    static char txt[FZ_MAX_SPANS * 12 + 2];
    size_t i, pos = 0;
    int rc, rc2;

    memset(&s, 0, sizeof(s));
    s.stop_at = opt; /* 0: never stop */
    rc = procparse_reserved_ports(buf, len, fz_span, &s);
    if (rc != 0 && rc != EPW_E_PARSE && rc != FZ_STOP)
        abort();
    /* The callback's value comes back as is, and only from the call that returned it. */
    if ((rc == FZ_STOP) != (s.stop_at && s.calls == s.stop_at))
        abort();
    if (s.calls > len)
        abort();
    if (rc != 0 || s.n == FZ_MAX_SPANS)
        return;
    /* Printed back the way the kernel prints the list, the spans parse to the same spans. */
    for (i = 0; i < s.n; i++) {
        int n = s.first[i] == s.last[i]
                    ? snprintf(txt + pos, sizeof(txt) - pos, "%s%u", i ? "," : "", s.first[i])
                    : snprintf(txt + pos, sizeof(txt) - pos, "%s%u-%u", i ? "," : "", s.first[i],
                               s.last[i]);
        pos += (size_t)n;
    }
    txt[pos++] = '\n';
    memset(&s2, 0, sizeof(s2));
    rc2 = procparse_reserved_ports((const uint8_t *)txt, pos, fz_span, &s2);
    if (rc2 != 0 || s2.n != s.n || memcmp(s2.first, s.first, s.n * sizeof(s.first[0])) != 0 ||
        memcmp(s2.last, s.last, s.n * sizeof(s.last[0])) != 0)
        abort();
}

static void fz_uint(const uint8_t *buf, size_t len)
{
    uint32_t v, v2;
    char txt[16];
    int rc, n;

    rc = procparse_uint(buf, len, &v);
    fz_rc_ok(rc);
    if (rc) {
        if (v)
            abort();
        return;
    }
    /* Accepted text holds a digit first (no sign, no leading blank). */
    if (len == 0 || buf[0] < '0' || buf[0] > '9')
        abort();
    n = snprintf(txt, sizeof(txt), "%u\n", v);
    if (procparse_uint((const uint8_t *)txt, (size_t)n, &v2) || v2 != v)
        abort();
}

static void fz_socket_link(const char *buf, size_t len)
{
    uint32_t inode, inode2;
    char txt[32];
    int rc, n;

    rc = procparse_socket_link(buf, len, &inode);
    fz_rc_ok(rc);
    if (rc) {
        if (inode)
            abort();
        return;
    }
    /* Only "socket:[digits]" is a socket link: the whole text, no newline (readlink gives none). */
    if (len < 10 || memcmp(buf, "socket:[", 8) != 0 || buf[len - 1] != ']')
        abort();
    n = snprintf(txt, sizeof(txt), "socket:[%u]", inode);
    if (procparse_socket_link(txt, (size_t)n, &inode2) || inode2 != inode)
        abort();
}

static void fz_pid(const char *buf, size_t len)
{
    uint32_t pid;
    char txt[16];
    int rc, n;

    rc = procparse_pid(buf, len, &pid);
    fz_rc_ok(rc);
    if (rc) {
        if (pid)
            abort();
        return;
    }
    /* A PID name is exactly its canonical decimal form: no leading zero, no blank, never 0. */
    n = snprintf(txt, sizeof(txt), "%u", pid);
    if (pid == 0 || (size_t)n != len || memcmp(txt, buf, len) != 0)
        abort();
}

static void fz_kernel(const char *buf, size_t len)
{
    uint32_t major, minor, major2, minor2;
    char txt[32];
    int rc, n;

    rc = procparse_kernel_version(buf, len, &major, &minor);
    fz_rc_ok(rc);
    if (rc) {
        if (major || minor)
            abort();
        return;
    }
    if (major > 65535 || minor > 65535)
        abort();
    n = snprintf(txt, sizeof(txt), "%u.%u.0-fuzz", major, minor);
    if (procparse_kernel_version(txt, (size_t)n, &major2, &minor2) || major2 != major ||
        minor2 != minor)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf;
    size_t len;
    unsigned which, opt;

    if (size < 1)
        return 0;
    which = data[0] % FZ_NPARSERS;
    opt = data[0] / FZ_NPARSERS;
    len = size - 1;
    /* malloc(0) may return NULL; the parsers must not read a zero-length buffer anyway. */
    buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, len);
    switch (which) {
    case 0:
        fz_port_range(buf, len);
        break;
    case 1:
        fz_reserved(buf, len, opt);
        break;
    case 2:
        fz_uint(buf, len);
        break;
    case 3:
        fz_socket_link((const char *)buf, len);
        break;
    case 4:
        fz_pid((const char *)buf, len);
        break;
    default:
        fz_kernel((const char *)buf, len);
        break;
    }
    free(buf);
    return 0;
}
