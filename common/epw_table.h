/* epw_table: a Snapshot as aligned text for people (console, rolling log, operator CLI). */
#ifndef EPW_TABLE_H
#define EPW_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "epwatch.pb-c.h"

/* Flags for epw_table_render. */
#define EPW_TABLE_CLASSIC_ONLY 0x01u /* only the classic per-address table(s), no sections */

/*
 * Renders one snapshot as a text block. A pure function of `snap` (times are RFC 3339 UTC, so the
 * output does not depend on the local time zone). Layout:
 *   ["Network namespace: NAME" when snap->netns is non-empty]
 *   the classic table, one row per TCP local address, with the column headers
 *     Computer DateTime LocalAddress #OfEPortsInUse Max#OfEPorts %EPortUsage
 *     #OfTcpListeningPorts #OfPids
 *   then a dashed line under each header; then "UDP:" and the same table for UDP rows, if any;
 *   then (unless EPW_TABLE_CLASSIC_ONLY) the sections "Pressure:", "Host-wide:",
 *   "Top destinations", "States:", "Top processes:", "Top remote endpoints:", "Kernel-owned
 *   ports:" (with listeners, PIDs, sockets, TIME_WAIT), "Ranges:", "Events:" (if any), "Notes:"
 *   (if any). The block ends with an empty line, so blocks can be concatenated in a log.
 * Columns are padded with spaces; text columns are left-aligned, numbers right-aligned.
 *
 * *out receives a malloc'd NUL-terminated string (free with free()) and *out_len its length
 * (without the NUL); both are cleared on entry. Returns 0, UV_EINVAL (NULL argument) or
 * UV_ENOMEM. Thread-safe as long as `snap` is not modified meanwhile.
 */
int epw_table_render(const Epw__Snapshot *snap, unsigned flags, char **out, size_t *out_len);

/* Renders with flags 0 and writes the block to `out` (not flushed). 0, UV_ENOMEM, or UV_EIO when
 * the write fails. */
int epw_table_snapshot(const Epw__Snapshot *snap, FILE *out);

#endif
