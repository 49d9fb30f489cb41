/* epw_json: a Snapshot as JSON, the contract that scripts, the operator CLI and the collector's
 * HTTP API share. */
#ifndef EPW_JSON_H
#define EPW_JSON_H

#include <cjson/cJSON.h>

#include "epwatch.pb-c.h"

/*
 * Builds the JSON object for one snapshot. A pure function of `snap` (no clock, no host lookup), so
 * the agent and the collector produce the same text for the same snapshot. Thread-safe as long as
 * `snap` is not modified meanwhile. Returns a new tree owned by the caller (free with
 * cJSON_Delete), or NULL when allocation fails or `snap` is NULL.
 *
 * Keys (stable; new keys may be appended, none are removed or renamed):
 *   hostname, time (RFC 3339 UTC, whole seconds), platform ("linux"/"windows"/"unknown"), seq,
 *   netns (only when non-empty), sample_duration_ms (number, may be fractional),
 *   pressure_pct, pressure_source,
 *   ranges[]        {protocol "tcp"/"udp", family "ipv4"/"ipv6", start, count, excluded, source}
 *                   (source: "default", "sysctl", "wmi", "netsh", "captured", "unknown"),
 *   addresses[]     {local_address, protocol, family, ports_in_use, max_ports, usage_pct,
 *                    listening_ports, pids},
 *   host[]          {protocol, ports_in_use, max_ports, usage_pct},
 *   destinations[]  {local_address, remote_address, remote_port, protocol, connections,
 *                    free_ports, usage_pct},
 *   destination_count,
 *   states          {"ESTABLISHED": n, ...} (in snapshot order),
 *   top_processes[] {pid, name, ports, other (bool)},
 *   top_remotes[]   {remote_address, remote_port, connections, other (bool)},
 *   kernel_ports, listening_ports [n, ...], pid_count, exclusive_ports, total_sockets,
 *   time_wait       {seconds, default (bool)},
 *   events[]        {event_id, first, last (RFC 3339 UTC with milliseconds), count},
 *   notes [string, ...],
 *   dropped_before, port_starved (bool), spooled (delivery bookkeeping; 0/false on the agent).
 * Every array key is present, possibly empty.
 */
cJSON *epw_json_snapshot(const Epw__Snapshot *snap);

/*
 * The same as text: pretty-printed (indented, multi-line) when `pretty`, else one line without a
 * trailing newline. Returns a malloc'd NUL-terminated string owned by the caller (free with
 * cJSON_free), or NULL on allocation failure.
 */
char *epw_json_snapshot_string(const Epw__Snapshot *snap, int pretty);

/*
 * The reverse of epw_json_snapshot: rebuilds a Snapshot from an object with the keys above (the
 * agent's --json output, or the collector's /api/v1/hosts/{host}/snapshot answer, whose extra keys
 * are ignored), so a consumer can render it with epw_table_render exactly as the agent console
 * does. Missing keys leave their field at its default (a newer or older producer may differ);
 * a key of the wrong type, a number out of its field's range, an unknown enum name or a bad time
 * is EPW_E_PARSE. Pure (no clock, no I/O); thread-safe as long as `obj` is not modified meanwhile.
 *
 * *out is cleared on entry; on success it receives a new Snapshot owned by the caller (free with
 * epw_snap_free). Returns 0, UV_EINVAL (NULL argument or `obj` not an object), EPW_E_PARSE or
 * UV_ENOMEM; nothing is handed over on failure.
 */
int epw_json_to_snapshot(const cJSON *obj, Epw__Snapshot **out);

#endif
