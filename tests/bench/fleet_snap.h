/* fleet_snap: builds realistic agent Snapshots for the fleet simulator and the SQLite benchmarks.
 */
#ifndef FLEET_SNAP_H
#define FLEET_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "epwatch.pb-c.h"

/*
 * A snapshot shaped like the Linux agent's (agent/analysis.c, top_n = 5): four port ranges, per
 * address rows, host usage per protocol, eight busiest destinations, socket states, top processes
 * and remotes with their "other" rows, listening ports, TIME_WAIT, a note. Its pressure is a pure
 * function of (host index, seq), so a resent seq is byte-for-byte the same snapshot: a slow drift
 * around a per-host base, and on leaking hosts (about one in twenty) a climb that restarts at the
 * base every 2,000 snapshots, like a service that leaks until it is restarted.
 *
 * Everything lives in the caller's scratch (no allocation); the returned snapshot points into it
 * and stays valid until the scratch is reused. Any thread; one scratch per thread.
 */
#define FLEET_SNAP_DESTS  8
#define FLEET_SNAP_ADDRS  4
#define FLEET_SNAP_STATES 8
#define FLEET_SNAP_TOP    6 /* 5 + the "other" row */
#define FLEET_SNAP_LISTEN 12
#define FLEET_SNAP_RANGES 4
#define FLEET_SNAP_STRLEN 64

typedef struct fleet_snap_scratch_s {
    Epw__Snapshot snap;
    Epw__PortRange ranges[FLEET_SNAP_RANGES];
    Epw__PortRange *ranges_p[FLEET_SNAP_RANGES];
    Epw__AddressUsage addrs[FLEET_SNAP_ADDRS];
    Epw__AddressUsage *addrs_p[FLEET_SNAP_ADDRS];
    Epw__HostUsage host[2];
    Epw__HostUsage *host_p[2];
    Epw__DestinationUsage dests[FLEET_SNAP_DESTS];
    Epw__DestinationUsage *dests_p[FLEET_SNAP_DESTS];
    Epw__StateCount states[FLEET_SNAP_STATES];
    Epw__StateCount *states_p[FLEET_SNAP_STATES];
    Epw__ProcessUsage procs[FLEET_SNAP_TOP];
    Epw__ProcessUsage *procs_p[FLEET_SNAP_TOP];
    Epw__RemoteUsage remotes[FLEET_SNAP_TOP];
    Epw__RemoteUsage *remotes_p[FLEET_SNAP_TOP];
    Epw__TimeWait tw;
    uint32_t listen[FLEET_SNAP_LISTEN];
    char *notes[1];
    char hostname[FLEET_SNAP_STRLEN];
    char local[FLEET_SNAP_ADDRS][FLEET_SNAP_STRLEN];
    char remote[FLEET_SNAP_DESTS][FLEET_SNAP_STRLEN];
    char source[2 * FLEET_SNAP_STRLEN];
} fleet_snap_scratch_t;

/* 1 for the hosts that leak (a fixed, deterministic subset). */
int fleet_snap_is_leaking(uint32_t host_index);
/* The pressure (percent) the host reports at this seq. */
double fleet_snap_pressure(uint32_t host_index, uint64_t seq);

/*
 * Fills the scratch for host `host_index` named `hostname` (copied, truncated to 63 bytes), at
 * `seq` taken at `taken_at_ms`, with `dropped_before` (0 normally) and returns the snapshot.
 */
Epw__Snapshot *fleet_snap_build(fleet_snap_scratch_t *s, uint32_t host_index, const char *hostname,
                                uint64_t seq, int64_t taken_at_ms, uint64_t dropped_before);

#endif
