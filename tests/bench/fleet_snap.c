/* fleet_snap: builds realistic agent Snapshots for the fleet simulator and the SQLite benchmarks.
 */
#include "fleet_snap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define RANGE_START 32768u
#define RANGE_COUNT 28232u /* Linux default 32768-60999 */

static const char *const state_names[FLEET_SNAP_STATES] = {"ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT",
                                                           "SYN_SENT",    "FIN_WAIT1", "FIN_WAIT2",
                                                           "LAST_ACK",    "LISTEN"};
static const char *const proc_names[FLEET_SNAP_TOP - 1] = {"java", "nginx", "envoy", "python3",
                                                           "node"};
static const uint32_t dest_ports[FLEET_SNAP_DESTS] = {443, 5432, 6379, 9092, 8080, 3306, 53, 11211};
static const uint32_t listen_ports[FLEET_SNAP_LISTEN] = {22,   80,   443,  3000, 5432,  6379,
                                                         8080, 8443, 9090, 9100, 10250, 33000};
static char note_text[] = "process names from /proc/PID/comm; 3 sockets without an owner";

/* A 32-bit mix (splitmix-style): deterministic per-host constants without any global state. */
static uint32_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)(x ^ (x >> 31));
}

int fleet_snap_is_leaking(uint32_t host_index)
{
    return mix(host_index ^ 0x1eafull) % 20u == 0;
}

double fleet_snap_pressure(uint32_t host_index, uint64_t seq)
{
    uint32_t h = mix(host_index);
    double base = 2.0 + (double)(h % 3000u) / 100.0; /* 2 .. 32 % */
    double phase = (double)(h >> 16) / 65536.0 * 6.283;
    double p = base + 6.0 * sin((double)seq / 180.0 + phase) + 2.0 * sin((double)seq / 17.0);

    if (fleet_snap_is_leaking(host_index))
        p += 60.0 * (double)(seq % 2000u) / 2000.0;
    if (p < 0.5)
        p = 0.5;
    if (p > 99.5)
        p = 99.5;
    return p;
}

Epw__Snapshot *fleet_snap_build(fleet_snap_scratch_t *s, uint32_t host_index, const char *hostname,
                                uint64_t seq, int64_t taken_at_ms, uint64_t dropped_before)
{
    Epw__Snapshot *snap = &s->snap;
    uint32_t h = mix(host_index), r = mix(((uint64_t)host_index << 32) ^ seq);
    double p = fleet_snap_pressure(host_index, seq);
    uint32_t in_use = (uint32_t)(p * RANGE_COUNT / 100.0), worst = 0, total = 0, i;

    epw__snapshot__init(snap);
    snprintf(s->hostname, sizeof(s->hostname), "%s", hostname);
    snap->seq = seq;
    snap->taken_at_ms = taken_at_ms;
    snap->sample_duration_us = 3000u + r % 4000u;
    snap->hostname = s->hostname;
    snap->platform = EPW__PLATFORM__LINUX;
    snap->netns = (char *)"";
    snap->pressure_pct = p;

    for (i = 0; i < FLEET_SNAP_RANGES; i++) {
        Epw__PortRange *pr = &s->ranges[i];
        epw__port_range__init(pr);
        pr->protocol = i < 2 ? EPW__PROTOCOL__TCP : EPW__PROTOCOL__UDP;
        pr->family = i % 2 ? EPW__FAMILY__IPV6 : EPW__FAMILY__IPV4;
        pr->start = RANGE_START;
        pr->count = RANGE_COUNT;
        pr->source = EPW__RANGE_SOURCE__RANGE_SYSCTL;
        s->ranges_p[i] = pr;
    }
    snap->n_ranges = FLEET_SNAP_RANGES;
    snap->ranges = s->ranges_p;

    for (i = 0; i < FLEET_SNAP_ADDRS; i++) {
        Epw__AddressUsage *a = &s->addrs[i];
        epw__address_usage__init(a);
        if (i == 0 || i == 3)
            snprintf(s->local[i], FLEET_SNAP_STRLEN, "10.%u.%u.%u", (h >> 8) & 255u,
                     (h >> 16) & 255u, (h >> 24) | 1u);
        else if (i == 1)
            snprintf(s->local[i], FLEET_SNAP_STRLEN, "127.0.0.1");
        else
            snprintf(s->local[i], FLEET_SNAP_STRLEN, "fd00:%x:%x::%x", h & 0xffffu, h >> 16,
                     (h >> 4) & 0xfffu);
        a->local_address = s->local[i];
        a->family = i == 2 ? EPW__FAMILY__IPV6 : EPW__FAMILY__IPV4;
        a->protocol = i == 3 ? EPW__PROTOCOL__UDP : EPW__PROTOCOL__TCP;
        a->ports_in_use = i == 0 ? in_use : (in_use / (4u + i * 3u)) + r % 17u;
        a->max_ports = RANGE_COUNT;
        a->usage_pct = 100.0 * a->ports_in_use / RANGE_COUNT;
        a->listening_ports = i == 0 ? FLEET_SNAP_LISTEN : 2;
        a->pids = 12u + h % 40u;
        s->addrs_p[i] = a;
    }
    snap->n_addresses = FLEET_SNAP_ADDRS;
    snap->addresses = s->addrs_p;

    for (i = 0; i < 2; i++) {
        Epw__HostUsage *hu = &s->host[i];
        epw__host_usage__init(hu);
        hu->protocol = i == 0 ? EPW__PROTOCOL__TCP : EPW__PROTOCOL__UDP;
        hu->ports_in_use = i == 0 ? in_use : in_use / 20u + r % 31u;
        hu->max_ports = RANGE_COUNT;
        hu->usage_pct = 100.0 * hu->ports_in_use / RANGE_COUNT;
        s->host_p[i] = hu;
    }
    snap->n_host = 2;
    snap->host = s->host_p;

    /* Destinations share the host's connections, busiest first. */
    for (i = 0; i < FLEET_SNAP_DESTS; i++) {
        Epw__DestinationUsage *d = &s->dests[i];
        uint32_t conns = in_use / (2u << i) + (r >> i) % 7u;
        epw__destination_usage__init(d);
        snprintf(s->remote[i], FLEET_SNAP_STRLEN, "10.%u.%u.%u", 1u + i, (h >> (i + 3)) & 255u,
                 ((h >> 11) + i * 7u) & 255u);
        d->local_address = s->local[0];
        d->remote_address = s->remote[i];
        d->remote_port = dest_ports[i];
        d->protocol = EPW__PROTOCOL__TCP;
        d->connections = conns;
        d->free_ports = RANGE_COUNT > conns ? RANGE_COUNT - conns : 0;
        d->usage_pct = 100.0 * conns / RANGE_COUNT;
        if (conns > worst)
            worst = conns;
        total += conns;
        s->dests_p[i] = d;
    }
    snap->n_destinations = FLEET_SNAP_DESTS;
    snap->destinations = s->dests_p;
    snap->destination_count = FLEET_SNAP_DESTS + h % 40u;
    snprintf(s->source, sizeof(s->source), "%s", "host tcp");
    snap->pressure_source = s->source;

    for (i = 0; i < FLEET_SNAP_STATES; i++) {
        Epw__StateCount *st = &s->states[i];
        epw__state_count__init(st);
        st->state = (char *)state_names[i];
        st->count = i == 0 ? in_use / 2u : i == 1 ? in_use / 3u : (r >> (i * 3)) % 40u;
        if (i == FLEET_SNAP_STATES - 1)
            st->count = FLEET_SNAP_LISTEN + 2;
        s->states_p[i] = st;
    }
    snap->n_states = FLEET_SNAP_STATES;
    snap->states = s->states_p;

    for (i = 0; i < FLEET_SNAP_TOP; i++) {
        Epw__ProcessUsage *pu = &s->procs[i];
        Epw__RemoteUsage *ru = &s->remotes[i];
        epw__process_usage__init(pu);
        epw__remote_usage__init(ru);
        if (i < FLEET_SNAP_TOP - 1) {
            pu->pid = 1000u + (h >> (i * 2)) % 60000u;
            pu->name = (char *)proc_names[i];
            pu->ports = in_use / (2u << i);
            ru->remote_address = s->remote[i];
            ru->remote_port = dest_ports[i];
            ru->connections = s->dests[i].connections;
        } else {
            pu->name = (char *)"";
            pu->ports = in_use / 64u;
            pu->other = 1;
            ru->remote_address = (char *)"";
            ru->connections = total / 16u;
            ru->other = 1;
        }
        s->procs_p[i] = pu;
        s->remotes_p[i] = ru;
    }
    snap->n_top_processes = FLEET_SNAP_TOP;
    snap->top_processes = s->procs_p;
    snap->n_top_remotes = FLEET_SNAP_TOP;
    snap->top_remotes = s->remotes_p;

    snap->kernel_ports = r % 5u;
    memcpy(s->listen, listen_ports, sizeof(s->listen));
    snap->n_listening_ports = FLEET_SNAP_LISTEN;
    snap->listening_ports = s->listen;
    snap->pid_count = 40u + h % 200u;
    snap->exclusive_ports = FLEET_SNAP_LISTEN + r % 9u;
    snap->total_sockets = in_use + in_use / 20u + 40u;
    epw__time_wait__init(&s->tw);
    s->tw.seconds = 60;
    s->tw.is_default = 1;
    snap->time_wait = &s->tw;
    s->notes[0] = note_text;
    snap->n_notes = 1;
    snap->notes = s->notes;
    snap->dropped_before = dropped_before;
    return snap;
}
