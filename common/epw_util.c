/* epw_util: time, duration, size and address helpers. Pure except for the clocks. */
#include "epw_util.h"
#include "epw_err.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

int64_t epw_now_ms(void)
{
    uv_timeval64_t tv;

    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

uint64_t epw_mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), Howard Hinnant's algorithm: no timegm()
 * on Windows and no dependence on the TZ environment. */
static int64_t epw__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void epw__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    *y = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y += *m <= 2;
}

static int epw__format_time(int64_t ms, char *buf, size_t len, int with_ms)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    int64_t y;
    unsigned mo, d;
    int n;

    epw__civil_from_days(days, &y, &mo, &d);
    if (with_ms)
        n = snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, mo, d,
                     (int)(rem / 3600), (int)(rem % 3600 / 60), (int)(rem % 60),
                     (int)(ms - secs * 1000));
    else
        n = snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, mo, d,
                     (int)(rem / 3600), (int)(rem % 3600 / 60), (int)(rem % 60));
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
        return UV_ENOBUFS;
    }
    return 0;
}

int epw_format_rfc3339(int64_t ms, char *buf, size_t len)
{
    return epw__format_time(ms, buf, len, 0);
}

int epw_format_rfc3339_ms(int64_t ms, char *buf, size_t len)
{
    return epw__format_time(ms, buf, len, 1);
}

static int epw__digits(const char **p, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return EPW_E_PARSE;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int epw_parse_rfc3339(const char *text, int64_t *out_ms)
{
    const char *p = text;
    int y, mo, d, h, mi, s, frac = 0, scale = 1000, off = 0;

    *out_ms = 0;
    if (!text)
        return EPW_E_PARSE;
    if (epw__digits(&p, 4, &y) || *p++ != '-' || epw__digits(&p, 2, &mo) || *p++ != '-' ||
        epw__digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return EPW_E_PARSE;
    p++;
    if (epw__digits(&p, 2, &h) || *p++ != ':' || epw__digits(&p, 2, &mi) || *p++ != ':' ||
        epw__digits(&p, 2, &s))
        return EPW_E_PARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return EPW_E_PARSE;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return EPW_E_PARSE;
        while (isdigit((unsigned char)*p)) {
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (epw__digits(&p, 2, &oh) || *p++ != ':' || epw__digits(&p, 2, &om) || oh > 23 || om > 59)
            return EPW_E_PARSE;
        off = sign * (oh * 60 + om);
    } else {
        return EPW_E_PARSE;
    }
    if (*p != '\0')
        return EPW_E_PARSE;
    *out_ms = (epw__days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s -
               (int64_t)off * 60) *
                  1000 +
              frac;
    return 0;
}

int epw_parse_duration(const char *text, uint64_t *out_ms)
{
    const char *p = text;
    uint64_t total = 0;

    *out_ms = 0;
    if (!text || !*text)
        return EPW_E_PARSE;
    while (*p) {
        uint64_t v = 0, mult;
        int any = 0;

        while (isdigit((unsigned char)*p)) {
            if (v > (UINT64_MAX - 9) / 10)
                return EPW_E_PARSE;
            v = v * 10 + (uint64_t)(*p - '0');
            p++;
            any = 1;
        }
        if (!any)
            return EPW_E_PARSE;
        if (strncmp(p, "ms", 2) == 0) {
            mult = 1;
            p += 2;
        } else if (*p == 's') {
            mult = 1000;
            p++;
        } else if (*p == 'm') {
            mult = 60000;
            p++;
        } else if (*p == 'h') {
            mult = 3600000;
            p++;
        } else if (*p == 'd') {
            mult = 86400000;
            p++;
        } else if (*p == '\0' && p == text + strlen(text) && total == 0) {
            mult = 1000; /* a bare number means seconds */
        } else {
            return EPW_E_PARSE;
        }
        if (v > (UINT64_MAX - total) / mult)
            return EPW_E_PARSE;
        total += v * mult;
    }
    *out_ms = total;
    return 0;
}

void epw_format_duration(uint64_t ms, char *buf, size_t len)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    size_t i;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms && ms % units[i].ms == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%llums", (unsigned long long)ms);
}

int epw_parse_size(const char *text, uint64_t *out_bytes)
{
    const char *p = text;
    uint64_t v = 0, mult = 1;
    int any = 0;

    *out_bytes = 0;
    if (!text)
        return EPW_E_PARSE;
    while (isdigit((unsigned char)*p)) {
        if (v > (UINT64_MAX - 9) / 10)
            return EPW_E_PARSE;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        any = 1;
    }
    if (!any)
        return EPW_E_PARSE;
    switch (toupper((unsigned char)*p)) {
    case 'K':
        mult = 1024;
        p++;
        break;
    case 'M':
        mult = 1024 * 1024;
        p++;
        break;
    case 'G':
        mult = 1024 * 1024 * 1024;
        p++;
        break;
    default:
        break;
    }
    if (mult > 1 && (*p == 'i' || *p == 'I'))
        p++;
    if (*p == 'B' || *p == 'b')
        p++;
    if (*p != '\0' || v > UINT64_MAX / mult)
        return EPW_E_PARSE;
    *out_bytes = v * mult;
    return 0;
}

int epw_parse_hostport(const char *text, char *host_buf, size_t host_len, uint16_t *out_port)
{
    const char *colon, *host = text;
    size_t hlen;
    char *end;
    long port;

    *out_port = 0;
    if (host_len)
        host_buf[0] = '\0';
    if (!text)
        return EPW_E_PARSE;
    if (text[0] == '[') {
        const char *rb = strchr(text, ']');
        if (!rb || rb[1] != ':')
            return EPW_E_PARSE;
        host = text + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || memchr(text, ':', (size_t)(colon - text)))
            return EPW_E_PARSE; /* no port, or an unbracketed IPv6 address */
        hlen = (size_t)(colon - text);
    }
    if (hlen >= host_len)
        return EPW_E_PARSE;
    /* No host name or address has blanks, control bytes or brackets; accepting them would let a
     * value through that prints back as a different one (found by fuzz_config). */
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '[' || ch == ']')
            return EPW_E_PARSE;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || port < 1 || port > 65535)
        return EPW_E_PARSE;
    memcpy(host_buf, host, hlen);
    host_buf[hlen] = '\0';
    *out_port = (uint16_t)port;
    return 0;
}

void epw_format_addr(int family, const uint8_t *addr, char *buf, size_t len)
{
    if (uv_inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, buf, len) != 0 && len)
        snprintf(buf, len, "?");
}

double epw_pct(uint64_t num, uint64_t den)
{
    if (den == 0)
        return num ? 100.0 : 0.0;
    return round((double)num * 1000.0 / (double)den) / 10.0;
}
