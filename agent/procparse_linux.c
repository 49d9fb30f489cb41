/* procparse_linux: pure parsers for /proc texts (port range, reserved ports, fd links). */
#include "procparse_linux.h"

#include <string.h>

#include "epw_err.h"

static int procparse__is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Length of buf without trailing whitespace. */
static size_t procparse__trim_len(const uint8_t *buf, size_t len)
{
    while (len > 0 && procparse__is_blank(buf[len - 1]))
        len--;
    return len;
}

/*
 * Reads a decimal number at buf[*pos] (at least one digit, value <= max). Advances *pos past it.
 * Returns 0 or EPW_E_PARSE.
 */
static int procparse__number(const uint8_t *buf, size_t len, size_t *pos, uint64_t max,
                             uint64_t *out)
{
    uint64_t v = 0;
    size_t i = *pos;

    *out = 0;
    if (i >= len || buf[i] < '0' || buf[i] > '9')
        return EPW_E_PARSE;
    while (i < len && buf[i] >= '0' && buf[i] <= '9') {
        v = v * 10 + (uint64_t)(buf[i] - '0');
        if (v > max)
            return EPW_E_PARSE;
        i++;
    }
    *pos = i;
    *out = v;
    return 0;
}

int procparse_port_range(const uint8_t *buf, size_t len, uint32_t *start, uint32_t *count)
{
    uint64_t lo, hi;
    size_t pos = 0;
    int rc;

    *start = 0;
    *count = 0;
    len = procparse__trim_len(buf, len);
    while (pos < len && procparse__is_blank(buf[pos]))
        pos++;
    rc = procparse__number(buf, len, &pos, 65535, &lo);
    if (rc)
        return rc;
    if (pos >= len || !procparse__is_blank(buf[pos]))
        return EPW_E_PARSE;
    while (pos < len && procparse__is_blank(buf[pos]))
        pos++;
    rc = procparse__number(buf, len, &pos, 65535, &hi);
    if (rc)
        return rc;
    if (pos != len || lo == 0 || lo > hi)
        return EPW_E_PARSE;
    *start = (uint32_t)lo;
    *count = (uint32_t)(hi - lo + 1);
    return 0;
}

int procparse_reserved_ports(const uint8_t *buf, size_t len, procparse_span_cb cb, void *ud)
{
    uint64_t first, last;
    size_t pos = 0;
    int rc;

    len = procparse__trim_len(buf, len);
    while (pos < len && procparse__is_blank(buf[pos]))
        pos++;
    if (pos == len)
        return 0;
    for (;;) {
        rc = procparse__number(buf, len, &pos, 65535, &first);
        if (rc)
            return rc;
        last = first;
        if (pos < len && buf[pos] == '-') {
            pos++;
            rc = procparse__number(buf, len, &pos, 65535, &last);
            if (rc)
                return rc;
            if (last < first)
                return EPW_E_PARSE;
        }
        rc = cb(ud, (uint32_t)first, (uint32_t)last);
        if (rc)
            return rc;
        if (pos == len)
            return 0;
        if (buf[pos] != ',')
            return EPW_E_PARSE;
        pos++;
    }
}

int procparse_uint(const uint8_t *buf, size_t len, uint32_t *out)
{
    uint64_t v;
    size_t pos = 0;
    int rc;

    *out = 0;
    len = procparse__trim_len(buf, len);
    rc = procparse__number(buf, len, &pos, UINT32_MAX, &v);
    if (rc)
        return rc;
    if (pos != len)
        return EPW_E_PARSE;
    *out = (uint32_t)v;
    return 0;
}

int procparse_socket_link(const char *buf, size_t len, uint32_t *inode)
{
    static const char prefix[] = "socket:[";
    const size_t plen = sizeof(prefix) - 1;
    uint64_t v;
    size_t pos = plen;
    int rc;

    *inode = 0;
    /* The shortest socket link is "socket:[N]". */
    if (len < plen + 2 || memcmp(buf, prefix, plen) != 0)
        return EPW_E_PARSE;
    rc = procparse__number((const uint8_t *)buf, len, &pos, UINT32_MAX, &v);
    if (rc)
        return rc;
    if (pos + 1 != len || buf[pos] != ']')
        return EPW_E_PARSE;
    *inode = (uint32_t)v;
    return 0;
}

int procparse_pid(const char *name, size_t len, uint32_t *pid)
{
    uint64_t v;
    size_t pos = 0;
    int rc;

    *pid = 0;
    if (len == 0 || name[0] == '0')
        return EPW_E_PARSE;
    rc = procparse__number((const uint8_t *)name, len, &pos, UINT32_MAX, &v);
    if (rc)
        return rc;
    if (pos != len)
        return EPW_E_PARSE;
    *pid = (uint32_t)v;
    return 0;
}

int procparse_kernel_version(const char *release, size_t len, uint32_t *major, uint32_t *minor)
{
    const uint8_t *b = (const uint8_t *)release;
    uint64_t ma, mi;
    size_t pos = 0;
    int rc;

    *major = 0;
    *minor = 0;
    rc = procparse__number(b, len, &pos, 65535, &ma);
    if (rc)
        return rc;
    if (pos >= len || b[pos] != '.')
        return EPW_E_PARSE;
    pos++;
    rc = procparse__number(b, len, &pos, 65535, &mi);
    if (rc)
        return rc;
    *major = (uint32_t)ma;
    *minor = (uint32_t)mi;
    return 0;
}
