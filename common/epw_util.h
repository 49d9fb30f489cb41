/* epw_util: small pure helpers shared by every program (time, durations, sizes, addresses). */
#ifndef EPW_UTIL_H
#define EPW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock, milliseconds since the Unix epoch (UTC). Thread-safe. */
int64_t epw_now_ms(void);
/* Monotonic clock in milliseconds, for intervals and timeouts. Thread-safe. */
uint64_t epw_mono_ms(void);

/* Writes "2026-11-25T17:57:22Z" (or with ".123" when ms % 1000 != 0 and `with_ms`) into buf.
 * Returns 0, or UV_ENOBUFS when buf is too small (buf then holds ""). */
int epw_format_rfc3339(int64_t ms, char *buf, size_t len);
int epw_format_rfc3339_ms(int64_t ms, char *buf, size_t len);
/* Parses RFC 3339 UTC ("...Z" or "+00:00"; fractional seconds allowed) into ms. 0 or EPW_E_PARSE.
 */
int epw_parse_rfc3339(const char *text, int64_t *out_ms);

/*
 * Durations: a non-negative integer followed by a unit: ms, s, m, h, d (a bare number is seconds).
 * "1m30s" style sums are accepted. Returns 0, or EPW_E_PARSE (empty, unknown unit, overflow).
 */
int epw_parse_duration(const char *text, uint64_t *out_ms);
/* Formats ms as the shortest exact form ("90s", "5m", "250ms"). */
void epw_format_duration(uint64_t ms, char *buf, size_t len);

/* Sizes: integer with optional K, M, G (powers of 1024, optional trailing "B"/"iB"). */
int epw_parse_size(const char *text, uint64_t *out_bytes);

/*
 * "host:port", "[v6]:port" or ":port". host is copied into host_buf (may be "" for ":port").
 * Returns 0, or EPW_E_PARSE (missing port, port out of 1..65535, host too long, or a host with
 * blanks, control characters or brackets in it).
 */
int epw_parse_hostport(const char *text, char *host_buf, size_t host_len, uint16_t *out_port);

/* Formats a binary address (4 bytes for family 4, 16 for family 6) as text. `buf` >= 46 bytes. */
void epw_format_addr(int family, const uint8_t *addr, char *buf, size_t len);

/* Percentage with guard against a zero denominator, rounded to 0.1. */
double epw_pct(uint64_t num, uint64_t den);

#endif
