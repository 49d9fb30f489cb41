/* capture: pure parsers for text captured on a Windows host (netstat -ano[q], netsh) and the
 * sampler that analyses such captures with the Windows model. */
#ifndef CAPTURE_H
#define CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "epwatch.pb-c.h"
#include "sockrow.h"

/* Counts of what a netstat parse met, for honest reporting. */
typedef struct capture_netstat_stats_s {
    uint32_t rows;          /* rows accepted */
    uint32_t skipped_lines; /* lines that were neither header nor a valid row */
    uint32_t unknown_state; /* rows whose state word was not recognised (counted as OTHER) */
} capture_netstat_stats_t;

/*
 * Parses `netstat -ano`, `netstat -ano -p tcp|udp` or `netstat -anoq` output (English or German
 * state words; CRLF or LF; IPv6 in brackets with optional %scope; UDP rows with "*:*"; BOUND rows
 * from -q). Pure: reads buf[0..len), no NUL needed, bounded line length. Rows are appended to
 * `rows` (pid from the last column; missing PID column means PID_NONE without F_PID_KNOWN).
 * Malformed lines are skipped and counted, never fatal. 0, or UV_ENOMEM.
 */
int capture_parse_netstat(const uint8_t *buf, size_t len, sockrow_vec_t *rows,
                          capture_netstat_stats_t *stats);

/*
 * Parses `netsh int ipv4|ipv6 show dynamicportrange tcp|udp` output in any language: the first
 * two integers that each follow a ':' are start and count. Validates start >= 1025, count >= 255,
 * start + count <= 65536. 0, or EPW_E_PARSE (empty or invalid: the caller falls back).
 */
int capture_parse_netsh(const uint8_t *buf, size_t len, uint32_t *start, uint32_t *count);

/*
 * Parses `netsh int ipv4 show excludedportrange protocol=tcp` output: lines of two integers
 * (start, end). Calls cb for each valid range; returns the number of ranges, or EPW_E_PARSE.
 */
int capture_parse_excluded(const uint8_t *buf, size_t len,
                           void (*cb)(void *ud, uint32_t first, uint32_t last), void *ud);

/*
 * Analyses captured files with the Windows model into a new snapshot (*out, free with
 * epw_snap_free). netsh_path may be NULL or name an empty file: the Windows default range
 * (49152, 16384) is then used and a note says so. Reads files (blocking).
 */
int capture_sample_files(const char *netstat_path, const char *netsh_path, uint32_t top_n,
                         Epw__Snapshot **out);

#endif
