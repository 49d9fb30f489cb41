/* epw_testsnap: Snapshot builders shared by the tests (see epw_testsnap.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "epw_snap.h"
#include "epw_testsnap.h"

Epw__PortRange *epw_testsnap_range(Epw__Snapshot *s, Epw__Protocol proto, Epw__Family family,
                                   uint32_t start, uint32_t count, uint32_t excluded,
                                   Epw__RangeSource source)
{
    Epw__PortRange *r = EPW_SNAP_APPEND(s, ranges, epw__port_range__init);

    assert_non_null(r);
    r->protocol = proto;
    r->family = family;
    r->start = start;
    r->count = count;
    r->excluded = excluded;
    r->source = source;
    return r;
}

Epw__AddressUsage *epw_testsnap_address(Epw__Snapshot *s, const char *addr, Epw__Protocol proto,
                                        Epw__Family family, uint32_t in_use, uint32_t max_ports,
                                        double pct, uint32_t listening, uint32_t pids)
{
    Epw__AddressUsage *a = EPW_SNAP_APPEND(s, addresses, epw__address_usage__init);

    assert_non_null(a);
    a->local_address = epw_snap_strdup(addr);
    assert_non_null(a->local_address);
    a->protocol = proto;
    a->family = family;
    a->ports_in_use = in_use;
    a->max_ports = max_ports;
    a->usage_pct = pct;
    a->listening_ports = listening;
    a->pids = pids;
    return a;
}

Epw__HostUsage *epw_testsnap_host(Epw__Snapshot *s, Epw__Protocol proto, uint32_t in_use,
                                  uint32_t max_ports, double pct)
{
    Epw__HostUsage *h = EPW_SNAP_APPEND(s, host, epw__host_usage__init);

    assert_non_null(h);
    h->protocol = proto;
    h->ports_in_use = in_use;
    h->max_ports = max_ports;
    h->usage_pct = pct;
    return h;
}

Epw__DestinationUsage *epw_testsnap_destination(Epw__Snapshot *s, const char *local,
                                                const char *remote, uint32_t remote_port,
                                                uint32_t connections, uint32_t free_ports,
                                                double pct)
{
    Epw__DestinationUsage *d = EPW_SNAP_APPEND(s, destinations, epw__destination_usage__init);

    assert_non_null(d);
    d->local_address = epw_snap_strdup(local);
    d->remote_address = epw_snap_strdup(remote);
    assert_non_null(d->local_address);
    assert_non_null(d->remote_address);
    d->remote_port = remote_port;
    d->protocol = EPW__PROTOCOL__TCP;
    d->connections = connections;
    d->free_ports = free_ports;
    d->usage_pct = pct;
    return d;
}

Epw__StateCount *epw_testsnap_state(Epw__Snapshot *s, const char *state, uint32_t count)
{
    Epw__StateCount *st = EPW_SNAP_APPEND(s, states, epw__state_count__init);

    assert_non_null(st);
    st->state = epw_snap_strdup(state);
    assert_non_null(st->state);
    st->count = count;
    return st;
}

Epw__ProcessUsage *epw_testsnap_process(Epw__Snapshot *s, uint32_t pid, const char *name,
                                        uint32_t ports, int other)
{
    Epw__ProcessUsage *p = EPW_SNAP_APPEND(s, top_processes, epw__process_usage__init);

    assert_non_null(p);
    p->pid = pid;
    if (name) {
        p->name = epw_snap_strdup(name);
        assert_non_null(p->name);
    }
    p->ports = ports;
    p->other = other;
    return p;
}

Epw__RemoteUsage *epw_testsnap_remote(Epw__Snapshot *s, const char *addr, uint32_t port,
                                      uint32_t connections, int other)
{
    Epw__RemoteUsage *rm = EPW_SNAP_APPEND(s, top_remotes, epw__remote_usage__init);

    assert_non_null(rm);
    if (addr) {
        rm->remote_address = epw_snap_strdup(addr);
        assert_non_null(rm->remote_address);
    }
    rm->remote_port = port;
    rm->connections = connections;
    rm->other = other;
    return rm;
}

Epw__ExhaustionEvent *epw_testsnap_event(Epw__Snapshot *s, uint32_t event_id, uint32_t count,
                                         int64_t first_ms, int64_t last_ms)
{
    Epw__ExhaustionEvent *e = EPW_SNAP_APPEND(s, events, epw__exhaustion_event__init);

    assert_non_null(e);
    e->event_id = event_id;
    e->count = count;
    e->first_ms = first_ms;
    e->last_ms = last_ms;
    return e;
}

void epw_testsnap_listening(Epw__Snapshot *s, const uint32_t *ports, size_t n)
{
    free(s->listening_ports);
    s->listening_ports = NULL;
    s->n_listening_ports = 0;
    if (!n)
        return;
    s->listening_ports = malloc(n * sizeof(*s->listening_ports));
    assert_non_null(s->listening_ports);
    memcpy(s->listening_ports, ports, n * sizeof(*s->listening_ports));
    s->n_listening_ports = n;
}

uint8_t *epw_testsnap_pack(const Epw__Snapshot *s, size_t *len)
{
    uint8_t *buf;

    *len = epw__snapshot__get_packed_size(s);
    buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(epw__snapshot__pack(s, buf), *len);
    return buf;
}
