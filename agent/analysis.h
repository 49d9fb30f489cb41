/* analysis: pure, platform-independent ephemeral-port accounting over a stream of socket rows. */
#ifndef ANALYSIS_H
#define ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "epwatch.pb-c.h"
#include "sockrow.h"

/*
 * Which allocation rules the host follows (shared/notes/port-exhaustion-facts.md):
 * - WINDOWS: every outbound connection takes a distinct port whatever its destination; the pool
 *   is host-wide per protocol, IPv4 and IPv6 share it. Pressure = max over protocols of
 *   distinct range ports in use (any state, LISTEN, TIME_WAIT and BOUND included) / usable ports.
 * - LINUX: connect() needs a unique 4-tuple, so one port serves many destinations. Exclusive use
 *   (TCP: LISTEN and BOUND; UDP: every socket) removes ports from everyone's pool; per destination
 *   (local IP, remote IP, remote port) the TCP sockets in any non-LISTEN state (TIME_WAIT
 *   included) with a range port compete for the ports left. Pressure = max(worst destination's
 *   connections / TCP free ports, TCP exclusive / usable, UDP exclusive / usable).
 * "Usable" = range count minus excluded (Windows excludedportrange) or reserved (Linux
 * ip_local_reserved_ports) ports inside the range. "In the range" = start <= port < start+count
 * and not excluded.
 */
typedef enum { ANALYSIS_MODEL_WINDOWS = 1, ANALYSIS_MODEL_LINUX = 2 } analysis_model_t;

typedef struct analysis_opts_s {
    analysis_model_t model;
    uint32_t top_n;            /* top processes and top remotes; 0 means 5 */
    uint32_t top_destinations; /* destinations listed in the snapshot; 0 means 10 */
    uint32_t max_addresses;    /* per-address rows kept; 0 means 256 (the rest noted) */
} analysis_opts_t;

typedef struct analysis_s analysis_t;

/* Creates an empty accumulator. *out is NULL on failure. 0, UV_EINVAL or UV_ENOMEM. */
int analysis_create(const analysis_opts_t *opts, analysis_t **out);
/* NULL is a no-op. */
void analysis_destroy(analysis_t *an);

/*
 * Declares the dynamic range for one protocol and family (Linux: call it for all four with the
 * same values). count >= 1, start + count <= 65536, else UV_EINVAL. A later call replaces it.
 * Rows of a protocol/family with no declared range have no port "in the range".
 * Ranges and exclusions are applied as rows stream in, so both must be declared before the first
 * analysis_add: afterwards these calls return UV_EINVAL.
 */
int analysis_set_range(analysis_t *an, sockrow_proto_t proto, int family, uint32_t start,
                       uint32_t count, Epw__RangeSource source);
/* Marks ports first..last (inclusive) excluded/reserved for proto/family. May be called before or
 * after analysis_set_range, any number of times; overlaps are fine. first <= last <= 65535. */
int analysis_exclude(analysis_t *an, sockrow_proto_t proto, int family, uint32_t first,
                     uint32_t last);

/*
 * Accounts one socket. Memory use does not grow with the number of rows, only with the number
 * of distinct local addresses, destinations, remotes and PIDs. The row is not retained.
 * 0, UV_EINVAL (proto not TCP/UDP, family not 4/6, or after analysis_finish) or UV_ENOMEM.
 */
int analysis_add(analysis_t *an, const sockrow_t *row);

/* Fills `buf` with a process name for `pid`; called for the top N PIDs only. */
typedef void (*analysis_name_cb)(void *ud, uint32_t pid, char *buf, size_t len);

/*
 * Writes the figures into `snap` (which must come from epw_snap_new and own what is added):
 * pressure_pct, pressure_source, ranges, addresses, host, destinations, destination_count,
 * states, top_processes, top_remotes, kernel_ports, listening_ports, pid_count, exclusive_ports,
 * total_sockets, and notes where something was capped. `name_cb` may be NULL (names become
 * "[pid N]"). The accumulator may be destroyed afterwards; it cannot be reused.
 *
 * Definitions, shared by both models:
 * - addresses: one row per (protocol, family, local address) seen, wildcard included. A port held
 *   on the wildcard address counts on every address of its family and protocol. ports_in_use =
 *   distinct range ports (a port in TIME_WAIT and live counts once); max_ports = usable ports;
 *   listening_ports = distinct TCP LISTEN ports (any number); pids = distinct non-zero PIDs of
 *   its sockets (any port; the wildcard's count too, as for ports).
 *   Only max_addresses non-wildcard addresses get a row (wildcards always do); a note counts the
 *   sockets left out of this breakdown (they still count everywhere else).
 * - host: per protocol, distinct range ports across families and addresses, any state;
 *   max_ports = usable ports of the IPv4 range (IPv6's when only that one is declared).
 * - destinations (both models; pressure only on Linux): TCP range sockets with a remote port,
 *   not LISTEN or BOUND, per (local address, remote address, remote port); free_ports = usable
 *   TCP ports, minus TCP exclusive ports on Linux. Top `top_destinations` by connections.
 * - pressure_source: "tcp host-wide 312/16384 ports" (Windows), "destination 10.0.0.5 ->
 *   10.0.0.9:1433 (99/100 free ports)" or "tcp|udp exclusive use 5/28232 ports" (Linux); on a tie
 *   the first in that order wins. Without any declared range: 0, empty source and a note.
 * - states: sockets whose local port is in the range, by state name (UDP sockets as "UDP").
 * - top_processes: range sockets per owning PID (PID 0 excluded; Linux: PID_KNOWN rows only), top
 *   N by count, then one entry with other=true (pid 0, name "other") holding the rest, if any.
 *   pid_count = distinct owning PIDs of all sockets.
 * - top_remotes: the destination sockets per (remote address, remote port), top N + other.
 * - exclusive_ports (Linux only, 0 on Windows): distinct exclusive range ports, TCP + UDP.
 * - kernel_ports: distinct range ports of non-TIME_WAIT sockets owned by the kernel: Windows
 *   PID 4, or PID 0 outside TIME_WAIT when the source reports owners (SOCKROW_F_PID_KNOWN); Linux
 * sockets without SOCKROW_F_PID_KNOWN. TCP + UDP. 0, UV_EINVAL (NULL, or finished twice) or
 * UV_ENOMEM (snap is then partly filled; free it).
 */
int analysis_finish(analysis_t *an, analysis_name_cb name_cb, void *ud, Epw__Snapshot *snap);

#endif
