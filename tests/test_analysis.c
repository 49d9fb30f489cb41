/* test_analysis: port accounting of both models on injected socket rows, with exact figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "analysis.h"
#include "epw_snap.h"
#include "sockrow.h"

#define TCP   SOCKROW_TCP
#define UDP   SOCKROW_UDP
#define KNOWN SOCKROW_F_PID_KNOWN

/* ---- helpers ---- */

static sockrow_t mk(int proto, const char *laddr, uint16_t lport, const char *raddr, uint16_t rport,
                    int state, uint32_t pid, uint8_t flags)
{
    sockrow_t r;
    int fam = strchr(laddr, ':') ? 6 : 4;

    memset(&r, 0, sizeof(r));
    r.proto = (uint8_t)proto;
    r.family = (uint8_t)fam;
    r.state = (uint8_t)(proto == UDP ? SOCKROW_ST_NONE : state);
    r.flags = flags;
    r.lport = lport;
    r.rport = rport;
    r.pid = pid;
    assert_int_equal(uv_inet_pton(fam == 6 ? AF_INET6 : AF_INET, laddr, r.laddr), 0);
    if (raddr)
        assert_int_equal(uv_inet_pton(fam == 6 ? AF_INET6 : AF_INET, raddr, r.raddr), 0);
    return r;
}

static void add(analysis_t *an, int proto, const char *laddr, uint16_t lport, const char *raddr,
                uint16_t rport, int state, uint32_t pid, uint8_t flags)
{
    sockrow_t r = mk(proto, laddr, lport, raddr, rport, state, pid, flags);

    assert_int_equal(analysis_add(an, &r), 0);
}

static analysis_t *new_an(analysis_model_t model, uint32_t top_n, uint32_t top_dest,
                          uint32_t max_addr)
{
    analysis_opts_t o;
    analysis_t *an = NULL;

    memset(&o, 0, sizeof(o));
    o.model = model;
    o.top_n = top_n;
    o.top_destinations = top_dest;
    o.max_addresses = max_addr;
    assert_int_equal(analysis_create(&o, &an), 0);
    assert_non_null(an);
    return an;
}

/* Declares the same range for every protocol and family, as the Linux sampler does. */
static void range_all(analysis_t *an, uint32_t start, uint32_t count)
{
    int p, f;

    for (p = TCP; p <= UDP; p++)
        for (f = 4; f <= 6; f += 2)
            assert_int_equal(analysis_set_range(an, (sockrow_proto_t)p, f, start, count,
                                                EPW__RANGE_SOURCE__RANGE_SYSCTL),
                             0);
}

static Epw__Snapshot *finish(analysis_t *an, analysis_name_cb cb, void *ud)
{
    Epw__Snapshot *snap = epw_snap_new();

    assert_non_null(snap);
    assert_int_equal(analysis_finish(an, cb, ud, snap), 0);
    analysis_destroy(an);
    return snap;
}

static const Epw__AddressUsage *addr_row(const Epw__Snapshot *s, Epw__Protocol p, const char *a)
{
    size_t i;

    for (i = 0; i < s->n_addresses; i++)
        if (s->addresses[i]->protocol == p && strcmp(s->addresses[i]->local_address, a) == 0)
            return s->addresses[i];
    return NULL;
}

static void check_addr(const Epw__Snapshot *s, Epw__Protocol p, const char *a, uint32_t in_use,
                       uint32_t max, uint32_t listening, uint32_t pids)
{
    const Epw__AddressUsage *u = addr_row(s, p, a);

    assert_non_null(u);
    assert_int_equal(u->ports_in_use, in_use);
    assert_int_equal(u->max_ports, max);
    assert_int_equal(u->listening_ports, listening);
    assert_int_equal(u->pids, pids);
}

static const Epw__HostUsage *host_row(const Epw__Snapshot *s, Epw__Protocol p)
{
    size_t i;

    for (i = 0; i < s->n_host; i++)
        if (s->host[i]->protocol == p)
            return s->host[i];
    return NULL;
}

static uint32_t state_count(const Epw__Snapshot *s, const char *name)
{
    size_t i;

    for (i = 0; i < s->n_states; i++)
        if (strcmp(s->states[i]->state, name) == 0)
            return s->states[i]->count;
    return 0;
}

static int has_note(const Epw__Snapshot *s, const char *needle)
{
    size_t i;

    for (i = 0; i < s->n_notes; i++)
        if (strstr(s->notes[i], needle))
            return 1;
    return 0;
}

typedef struct names_s {
    uint32_t calls;
    uint32_t pids[16];
} names_t;

static void name_cb(void *ud, uint32_t pid, char *buf, size_t len)
{
    names_t *n = ud;

    if (n->calls < 16)
        n->pids[n->calls] = pid;
    n->calls++;
    snprintf(buf, len, "proc%u", (unsigned)pid);
}

/* ---- Windows model ---- */

static void test_windows_mixed(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_WINDOWS, 2, 0, 0);
    names_t names;
    Epw__Snapshot *s;
    size_t i;

    (void)state;
    assert_int_equal(analysis_set_range(an, TCP, 4, 49152, 16384, EPW__RANGE_SOURCE__RANGE_WMI), 0);
    assert_int_equal(analysis_set_range(an, TCP, 6, 49152, 16384, EPW__RANGE_SOURCE__RANGE_WMI), 0);
    /* A listener on the wildcard in the range, in both families: one port of the shared pool. */
    add(an, TCP, "0.0.0.0", 49200, NULL, 0, SOCKROW_ST_LISTEN, 100, KNOWN);
    add(an, TCP, "::", 49200, NULL, 0, SOCKROW_ST_LISTEN, 100, KNOWN);
    /* A live connection and a TIME_WAIT one on the same port: counted once. */
    add(an, TCP, "10.0.0.5", 49300, "10.0.0.9", 1433, SOCKROW_ST_ESTABLISHED, 200, KNOWN);
    add(an, TCP, "10.0.0.5", 49300, "10.0.0.9", 1433, SOCKROW_ST_TIME_WAIT, 0, KNOWN);
    add(an, TCP, "10.0.0.6", 49301, "10.0.0.9", 443, SOCKROW_ST_ESTABLISHED, 200, KNOWN);
    /* Accepted on the wildcard listener's port: already counted through the wildcard. */
    add(an, TCP, "10.0.0.6", 49200, "10.0.0.20", 55555, SOCKROW_ST_ESTABLISHED, 100, KNOWN);
    add(an, TCP, "10.0.0.5", 80, NULL, 0, SOCKROW_ST_LISTEN, 300, KNOWN);
    add(an, TCP, "0.0.0.0", 445, NULL, 0, SOCKROW_ST_LISTEN, 4, KNOWN);
    add(an, TCP, "2001:db8::1", 49400, "2001:db8::9", 443, SOCKROW_ST_ESTABLISHED, 200, KNOWN);
    add(an, TCP, "10.0.0.5", 49500, NULL, 0, SOCKROW_ST_BOUND, 300, KNOWN);
    add(an, TCP, "10.0.0.5", 49600, "10.0.0.9", 445, SOCKROW_ST_ESTABLISHED, 4, KNOWN);
    add(an, TCP, "10.0.0.5", 49601, "10.0.0.9", 1433, SOCKROW_ST_SYN_SENT, 0, KNOWN);
    add(an, TCP, "10.0.0.5", 49602, "10.0.0.9", 80, SOCKROW_ST_TIME_WAIT, 0, KNOWN);
    /* A client connection from outside the range: no range port. */
    add(an, TCP, "10.0.0.5", 1025, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 300, KNOWN);

    memset(&names, 0, sizeof(names));
    s = finish(an, name_cb, &names);

    assert_int_equal(s->total_sockets, 14);
    assert_int_equal(s->n_host, 1);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 8);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->max_ports, 16384);
    assert_string_equal(s->pressure_source, "tcp host-wide 8/16384 ports");
    assert_true(s->pressure_pct == 0.0);

    assert_int_equal(s->n_ranges, 2);
    assert_int_equal(s->ranges[0]->protocol, EPW__PROTOCOL__TCP);
    assert_int_equal(s->ranges[0]->family, EPW__FAMILY__IPV4);
    assert_int_equal(s->ranges[1]->family, EPW__FAMILY__IPV6);
    assert_int_equal(s->ranges[1]->start, 49152);
    assert_int_equal(s->ranges[1]->count, 16384);
    assert_int_equal(s->ranges[1]->excluded, 0);
    assert_int_equal(s->ranges[1]->source, EPW__RANGE_SOURCE__RANGE_WMI);

    /* Sorted by family, then address bytes. */
    assert_int_equal(s->n_addresses, 5);
    assert_string_equal(s->addresses[0]->local_address, "0.0.0.0");
    assert_string_equal(s->addresses[1]->local_address, "10.0.0.5");
    assert_string_equal(s->addresses[2]->local_address, "10.0.0.6");
    assert_string_equal(s->addresses[3]->local_address, "::");
    assert_string_equal(s->addresses[4]->local_address, "2001:db8::1");
    assert_int_equal(s->addresses[4]->family, EPW__FAMILY__IPV6);
    check_addr(s, EPW__PROTOCOL__TCP, "0.0.0.0", 1, 16384, 2, 2);
    /* own 49300, 49500, 49600-49602 plus the wildcard's 49200; listeners 80 + 49200, 445;
     * PIDs 200, 300, 4 plus the wildcard's 100. */
    check_addr(s, EPW__PROTOCOL__TCP, "10.0.0.5", 6, 16384, 3, 4);
    check_addr(s, EPW__PROTOCOL__TCP, "10.0.0.6", 2, 16384, 2, 3);
    check_addr(s, EPW__PROTOCOL__TCP, "::", 1, 16384, 1, 1);
    check_addr(s, EPW__PROTOCOL__TCP, "2001:db8::1", 2, 16384, 1, 2);
    assert_true(addr_row(s, EPW__PROTOCOL__TCP, "10.0.0.5")->usage_pct == 0.0);

    assert_int_equal(state_count(s, "LISTEN"), 2);
    assert_int_equal(state_count(s, "ESTABLISHED"), 5);
    assert_int_equal(state_count(s, "TIME_WAIT"), 2);
    assert_int_equal(state_count(s, "BOUND"), 1);
    assert_int_equal(state_count(s, "SYN_SENT"), 1);
    assert_int_equal(s->n_states, 5);

    /* PID 4's 49600 and PID 0's SYN_SENT 49601; not the PID 0 TIME_WAIT ones; not 445. */
    assert_int_equal(s->kernel_ports, 2);
    assert_int_equal(s->exclusive_ports, 0);
    assert_int_equal(s->n_listening_ports, 3);
    assert_int_equal(s->listening_ports[0], 80);
    assert_int_equal(s->listening_ports[1], 445);
    assert_int_equal(s->listening_ports[2], 49200);
    assert_int_equal(s->pid_count, 4);

    /* Range sockets: 100 x3, 200 x3, 4 x1, 300 x1. Top 2, then the rest. */
    assert_int_equal(s->n_top_processes, 3);
    assert_int_equal(s->top_processes[0]->pid, 100);
    assert_int_equal(s->top_processes[0]->ports, 3);
    assert_string_equal(s->top_processes[0]->name, "proc100");
    assert_int_equal(s->top_processes[1]->pid, 200);
    assert_int_equal(s->top_processes[1]->ports, 3);
    assert_true(s->top_processes[2]->other);
    assert_int_equal(s->top_processes[2]->ports, 2);
    assert_int_equal(names.calls, 2);
    assert_int_equal(names.pids[0], 100);
    assert_int_equal(names.pids[1], 200);

    /* Destinations: 10.0.0.5 -> 10.0.0.9:1433 x3 (ESTABLISHED, TIME_WAIT, SYN_SENT), five x1. */
    assert_int_equal(s->destination_count, 6);
    assert_int_equal(s->n_destinations, 6);
    assert_string_equal(s->destinations[0]->local_address, "10.0.0.5");
    assert_string_equal(s->destinations[0]->remote_address, "10.0.0.9");
    assert_int_equal(s->destinations[0]->remote_port, 1433);
    assert_int_equal(s->destinations[0]->connections, 3);
    assert_int_equal(s->destinations[0]->free_ports, 16384);
    for (i = 1; i < s->n_destinations; i++)
        assert_int_equal(s->destinations[i]->connections, 1);

    /* Remotes: 10.0.0.9:1433 x3, then 10.0.0.9:80 first of the ties, then 4 more. */
    assert_int_equal(s->n_top_remotes, 3);
    assert_string_equal(s->top_remotes[0]->remote_address, "10.0.0.9");
    assert_int_equal(s->top_remotes[0]->remote_port, 1433);
    assert_int_equal(s->top_remotes[0]->connections, 3);
    assert_int_equal(s->top_remotes[1]->remote_port, 80);
    assert_int_equal(s->top_remotes[1]->connections, 1);
    assert_true(s->top_remotes[2]->other);
    assert_int_equal(s->top_remotes[2]->connections, 4);
    epw_snap_free(s);
}

static void test_windows_shared_pool_and_udp(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_WINDOWS, 0, 0, 0);
    Epw__Snapshot *s;

    (void)state;
    range_all(an, 49152, 16384);
    /* TCP: the same port in both families is one port of the host pool. */
    add(an, TCP, "10.0.0.5", 49160, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 10, 0);
    add(an, TCP, "2001:db8::1", 49160, "2001:db8::9", 80, SOCKROW_ST_ESTABLISHED, 10, 0);
    add(an, TCP, "2001:db8::1", 49161, "2001:db8::9", 80, SOCKROW_ST_ESTABLISHED, 10, 0);
    /* UDP is its own pool; TCP 49160 does not count for it. */
    add(an, UDP, "0.0.0.0", 50000, NULL, 0, 0, 500, 0);
    add(an, UDP, "10.0.0.5", 50001, NULL, 0, 0, 500, 0);
    add(an, UDP, "10.0.0.5", 50000, NULL, 0, 0, 501, 0);
    add(an, UDP, "::", 50002, NULL, 0, 0, 502, 0);
    add(an, UDP, "::", 49160, NULL, 0, 0, 502, 0);
    add(an, UDP, "10.0.0.5", 53, NULL, 0, 0, 503, 0);
    s = finish(an, NULL, NULL);

    assert_int_equal(s->n_host, 2);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 2);
    assert_int_equal(host_row(s, EPW__PROTOCOL__UDP)->ports_in_use, 4);
    assert_int_equal(host_row(s, EPW__PROTOCOL__UDP)->max_ports, 16384);
    assert_string_equal(s->pressure_source, "udp host-wide 4/16384 ports");
    assert_int_equal(state_count(s, "UDP"), 5);
    assert_int_equal(state_count(s, "ESTABLISHED"), 3);
    assert_int_equal(s->n_ranges, 4);
    /* TCP before UDP on the same address; UDP counts no listeners. */
    assert_int_equal(s->n_addresses, 5);
    assert_string_equal(s->addresses[1]->local_address, "10.0.0.5");
    assert_int_equal(s->addresses[1]->protocol, EPW__PROTOCOL__TCP);
    assert_string_equal(s->addresses[2]->local_address, "10.0.0.5");
    assert_int_equal(s->addresses[2]->protocol, EPW__PROTOCOL__UDP);
    check_addr(s, EPW__PROTOCOL__UDP, "10.0.0.5", 2, 16384, 0, 3);
    check_addr(s, EPW__PROTOCOL__UDP, "0.0.0.0", 1, 16384, 0, 1);
    check_addr(s, EPW__PROTOCOL__TCP, "2001:db8::1", 2, 16384, 0, 1);
    /* Without a name callback names are "[pid N]". */
    assert_int_equal(s->top_processes[0]->pid, 10);
    assert_int_equal(s->top_processes[0]->ports, 3);
    assert_string_equal(s->top_processes[0]->name, "[pid 10]");
    assert_int_equal(s->n_top_processes, 4);
    assert_false(s->top_processes[3]->other);
    assert_int_equal(s->pid_count, 5);
    epw_snap_free(s);
}

static void test_excluded_and_outside(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_WINDOWS, 0, 0, 0);
    Epw__Snapshot *s;

    (void)state;
    /* Exclusions before and after the range, overlapping, and one outside it. */
    assert_int_equal(analysis_exclude(an, TCP, 4, 50100, 50199), 0);
    assert_int_equal(analysis_set_range(an, TCP, 4, 50000, 1000, EPW__RANGE_SOURCE__RANGE_NETSH),
                     0);
    assert_int_equal(analysis_exclude(an, TCP, 4, 50150, 50249), 0);
    assert_int_equal(analysis_exclude(an, TCP, 4, 60000, 60010), 0);
    add(an, TCP, "10.0.0.5", 50120, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 7, 0);
    add(an, TCP, "10.0.0.5", 50300, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 7, 0);
    add(an, TCP, "10.0.0.5", 49999, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 7, 0);
    add(an, TCP, "10.0.0.5", 51000, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 7, 0);
    add(an, TCP, "10.0.0.5", 50999, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 7, 0);
    /* No UDP range declared: nothing of UDP is in a range. */
    add(an, UDP, "10.0.0.5", 50500, NULL, 0, 0, 7, 0);
    /* Too late to change the range once rows streamed in. */
    assert_int_equal(analysis_exclude(an, TCP, 4, 50300, 50300), UV_EINVAL);
    assert_int_equal(analysis_set_range(an, TCP, 4, 1025, 100, EPW__RANGE_SOURCE__RANGE_NETSH),
                     UV_EINVAL);
    s = finish(an, NULL, NULL);

    assert_int_equal(s->n_ranges, 1);
    assert_int_equal(s->ranges[0]->excluded, 150);
    assert_int_equal(s->ranges[0]->source, EPW__RANGE_SOURCE__RANGE_NETSH);
    assert_int_equal(s->n_host, 1);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 2);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->max_ports, 850);
    assert_true(host_row(s, EPW__PROTOCOL__TCP)->usage_pct == 0.2);
    assert_string_equal(s->pressure_source, "tcp host-wide 2/850 ports");
    assert_true(s->pressure_pct == 0.2);
    check_addr(s, EPW__PROTOCOL__TCP, "10.0.0.5", 2, 850, 0, 1);
    check_addr(s, EPW__PROTOCOL__UDP, "10.0.0.5", 0, 0, 0, 1);
    assert_int_equal(state_count(s, "ESTABLISHED"), 2);
    assert_int_equal(state_count(s, "UDP"), 0);
    assert_int_equal(s->top_processes[0]->ports, 2);
    assert_int_equal(s->total_sockets, 6);
    assert_int_equal(s->destination_count, 1);
    assert_int_equal(s->destinations[0]->connections, 2);
    assert_int_equal(s->destinations[0]->free_ports, 850);
    epw_snap_free(s);
}

static void test_windows_kernel_pids(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_WINDOWS, 0, 0, KNOWN);
    Epw__Snapshot *s;

    (void)state;
    range_all(an, 49152, 16384);
    add(an, TCP, "10.0.0.5", 50001, "10.0.0.9", 445, SOCKROW_ST_ESTABLISHED, 4, KNOWN);
    add(an, TCP, "10.0.0.5", 50001, "10.0.0.8", 445, SOCKROW_ST_ESTABLISHED, 4, KNOWN);
    add(an, TCP, "0.0.0.0", 50002, NULL, 0, SOCKROW_ST_LISTEN, 4, KNOWN);
    add(an, TCP, "10.0.0.5", 50003, "10.0.0.9", 80, SOCKROW_ST_TIME_WAIT, 0, KNOWN);
    add(an, TCP, "10.0.0.5", 50004, "10.0.0.9", 80, SOCKROW_ST_CLOSE_WAIT, 0, KNOWN);
    add(an, UDP, "0.0.0.0", 50004, NULL, 0, 0, 0, KNOWN);
    add(an, TCP, "10.0.0.5", 50005, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 900, KNOWN);
    add(an, TCP, "10.0.0.5", 50006, "10.0.0.9", 80, SOCKROW_ST_TIME_WAIT, 4, KNOWN);
    add(an, TCP, "0.0.0.0", 445, NULL, 0, SOCKROW_ST_LISTEN, 4, KNOWN);
    s = finish(an, NULL, NULL);

    /* TCP: 50001, 50002 (PID 4), 50004 (PID 0 live); UDP: 50004 (PID 0). No TIME_WAIT port,
     * whoever owns it. */
    assert_int_equal(s->kernel_ports, 4);
    /* PID 0 is no process; PID 4 is "System". */
    assert_int_equal(s->n_top_processes, 2);
    assert_int_equal(s->top_processes[0]->pid, 4);
    assert_int_equal(s->top_processes[0]->ports, 4);
    assert_int_equal(s->top_processes[1]->pid, 900);
    assert_int_equal(s->pid_count, 2);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 6);
    epw_snap_free(s);

    /* A source without owners (netstat capture lacking the PID column): PID 0 is unknown, not
     * the kernel; PID 4 still is. */
    an = new_an(ANALYSIS_MODEL_WINDOWS, 0, 0, 0);
    range_all(an, 49152, 16384);
    add(an, TCP, "10.0.0.5", 50004, "10.0.0.9", 80, SOCKROW_ST_CLOSE_WAIT, 0, 0);
    add(an, TCP, "10.0.0.5", 50007, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 0, 0);
    add(an, TCP, "10.0.0.5", 50008, "10.0.0.9", 445, SOCKROW_ST_ESTABLISHED, 4, KNOWN);
    s = finish(an, NULL, NULL);
    assert_int_equal(s->kernel_ports, 1);
    epw_snap_free(s);
}

/* ---- Linux model ---- */

static void test_linux_kernel_without_pid(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    Epw__Snapshot *s;

    (void)state;
    range_all(an, 32768, 28232);
    add(an, TCP, "10.0.0.5", 40000, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 1234, KNOWN);
    add(an, TCP, "10.0.0.5", 40001, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 0, 0);
    add(an, TCP, "10.0.0.5", 40002, "10.0.0.9", 80, SOCKROW_ST_TIME_WAIT, 0, 0);
    /* A PID without the flag is not trusted: no owner. */
    add(an, TCP, "10.0.0.5", 40003, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 77, 0);
    add(an, UDP, "0.0.0.0", 40004, NULL, 0, 0, 0, 0);
    add(an, TCP, "0.0.0.0", 22, NULL, 0, SOCKROW_ST_LISTEN, 0, 0);
    s = finish(an, NULL, NULL);

    assert_int_equal(s->kernel_ports, 3);
    assert_int_equal(s->pid_count, 1);
    assert_int_equal(s->n_top_processes, 1);
    assert_int_equal(s->top_processes[0]->pid, 1234);
    assert_int_equal(s->top_processes[0]->ports, 1);
    assert_int_equal(s->exclusive_ports, 1);
    check_addr(s, EPW__PROTOCOL__TCP, "10.0.0.5", 4, 28232, 1, 1);
    epw_snap_free(s);
}

static void test_linux_destinations_share_ports(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_LINUX, 0, 3, 0);
    Epw__Snapshot *s;
    char raddr[32];
    uint32_t k, i;

    (void)state;
    range_all(an, 32768, 28232);
    /* Ten destinations with 100 connections each on distinct ports: 1000 ports host-wide. */
    for (k = 0; k < 10; k++) {
        snprintf(raddr, sizeof(raddr), "10.0.1.%u", (unsigned)k);
        for (i = 0; i < 100; i++)
            add(an, TCP, "10.0.0.5", (uint16_t)(40000 + k * 100 + i), raddr, 443,
                SOCKROW_ST_ESTABLISHED, 42, KNOWN);
    }
    /* One destination with 300 connections reusing ports the others use, half in TIME_WAIT. */
    for (i = 0; i < 300; i++)
        add(an, TCP, "10.0.0.5", (uint16_t)(40000 + i), "10.0.0.9", 1433,
            i % 2 ? SOCKROW_ST_TIME_WAIT : SOCKROW_ST_ESTABLISHED, i % 2 ? 0 : 42,
            i % 2 ? 0 : KNOWN);
    /* Exclusive use: a listener, a bound socket, a UDP socket. The LISTEN row has no remote. */
    add(an, TCP, "0.0.0.0", 33000, NULL, 0, SOCKROW_ST_LISTEN, 42, KNOWN);
    add(an, TCP, "10.0.0.5", 33001, NULL, 0, SOCKROW_ST_BOUND, 42, KNOWN);
    add(an, UDP, "0.0.0.0", 33002, NULL, 0, 0, 43, KNOWN);
    s = finish(an, NULL, NULL);

    assert_int_equal(s->exclusive_ports, 3);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 1002);
    /* Pressure is the worst destination against free ports (28232 - 2), not host-wide. */
    assert_string_equal(s->pressure_source,
                        "destination 10.0.0.5 -> 10.0.0.9:1433 (300/28230 free ports)");
    assert_true(s->pressure_pct == 1.1);
    assert_int_equal(s->destination_count, 11);
    assert_int_equal(s->n_destinations, 3);
    assert_string_equal(s->destinations[0]->remote_address, "10.0.0.9");
    assert_int_equal(s->destinations[0]->connections, 300);
    assert_int_equal(s->destinations[0]->free_ports, 28230);
    assert_true(s->destinations[0]->usage_pct == 1.1);
    assert_string_equal(s->destinations[1]->remote_address, "10.0.1.0");
    assert_int_equal(s->destinations[1]->connections, 100);
    assert_true(s->destinations[1]->usage_pct == 0.4);
    assert_string_equal(s->destinations[2]->remote_address, "10.0.1.1");
    assert_int_equal(s->destinations[2]->remote_port, 443);
    /* Default top_n 5: one 300, four 100s, and the six other 100s. */
    assert_int_equal(s->n_top_remotes, 6);
    assert_int_equal(s->top_remotes[0]->connections, 300);
    assert_string_equal(s->top_remotes[4]->remote_address, "10.0.1.3");
    assert_true(s->top_remotes[5]->other);
    assert_int_equal(s->top_remotes[5]->connections, 600);
    assert_int_equal(state_count(s, "TIME_WAIT"), 150);
    assert_int_equal(state_count(s, "ESTABLISHED"), 1150);
    /* 40000..40299 + UDP/TCP: PID 42 holds 1150 + listener + bound = 1152 range sockets. */
    assert_int_equal(s->top_processes[0]->pid, 42);
    assert_int_equal(s->top_processes[0]->ports, 1152);
    assert_int_equal(s->kernel_ports, 0);
    check_addr(s, EPW__PROTOCOL__TCP, "10.0.0.5", 1002, 28232, 1, 1);
    epw_snap_free(s);
}

static void test_linux_exclusive_reduces_free(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    Epw__Snapshot *s;
    uint32_t i;

    (void)state;
    range_all(an, 50000, 100);
    for (i = 0; i < 60; i++)
        add(an, TCP, "0.0.0.0", (uint16_t)(50000 + i), NULL, 0, SOCKROW_ST_LISTEN, 5, KNOWN);
    for (i = 0; i < 30; i++)
        add(an, TCP, "10.0.0.5", (uint16_t)(50060 + i), "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 6,
            KNOWN);
    s = finish(an, NULL, NULL);

    /* 30 of the 40 ports left: 75%, more than exclusive use's 60%. */
    assert_string_equal(s->pressure_source,
                        "destination 10.0.0.5 -> 10.0.0.9:80 (30/40 free ports)");
    assert_true(s->pressure_pct == 75.0);
    assert_int_equal(s->destinations[0]->free_ports, 40);
    assert_int_equal(s->exclusive_ports, 60);
    epw_snap_free(s);

    /* Exclusive use alone. */
    an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    range_all(an, 50000, 100);
    for (i = 0; i < 60; i++)
        add(an, TCP, "0.0.0.0", (uint16_t)(50000 + i), NULL, 0, SOCKROW_ST_LISTEN, 5, KNOWN);
    for (i = 0; i < 70; i++)
        add(an, UDP, "0.0.0.0", (uint16_t)(50000 + i), NULL, 0, 0, 5, KNOWN);
    add(an, TCP, "10.0.0.5", 50099, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 6, KNOWN);
    s = finish(an, NULL, NULL);
    assert_string_equal(s->pressure_source, "udp exclusive use 70/100 ports");
    assert_true(s->pressure_pct == 70.0);
    assert_int_equal(s->exclusive_ports, 130);
    epw_snap_free(s);
}

static void test_linux_exhaustion(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    Epw__Snapshot *s;
    uint32_t i;

    (void)state;
    range_all(an, 50000, 100);
    assert_int_equal(analysis_exclude(an, TCP, 4, 50090, 50099), 0);
    assert_int_equal(analysis_exclude(an, TCP, 6, 50090, 50099), 0);
    for (i = 0; i < 50; i++)
        add(an, TCP, "10.0.0.5", (uint16_t)(50000 + i), NULL, 0, SOCKROW_ST_BOUND, 5, KNOWN);
    /* 40 connections to one destination fill the 90 - 50 ports left. */
    for (i = 0; i < 40; i++)
        add(an, TCP, "10.0.0.5", (uint16_t)(50050 + i), "10.0.0.9", 5432,
            i < 20 ? SOCKROW_ST_TIME_WAIT : SOCKROW_ST_ESTABLISHED, 6, KNOWN);
    s = finish(an, NULL, NULL);
    assert_true(s->pressure_pct == 100.0);
    assert_string_equal(s->pressure_source,
                        "destination 10.0.0.5 -> 10.0.0.9:5432 (40/40 free ports)");
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 90);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->max_ports, 90);
    assert_true(host_row(s, EPW__PROTOCOL__TCP)->usage_pct == 100.0);
    epw_snap_free(s);
}

static void test_windows_exhaustion(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_WINDOWS, 0, 0, 0);
    Epw__Snapshot *s;
    uint32_t i;

    (void)state;
    assert_int_equal(analysis_set_range(an, TCP, 4, 50000, 255, EPW__RANGE_SOURCE__RANGE_WMI), 0);
    assert_int_equal(analysis_set_range(an, TCP, 6, 50000, 255, EPW__RANGE_SOURCE__RANGE_WMI), 0);
    /* Every port taken, split across families and destinations, TIME_WAIT included. */
    for (i = 0; i < 255; i++) {
        if (i % 2)
            add(an, TCP, "2001:db8::1", (uint16_t)(50000 + i), "2001:db8::9", 443,
                SOCKROW_ST_TIME_WAIT, 0, 0);
        else
            add(an, TCP, "10.0.0.5", (uint16_t)(50000 + i), i % 4 ? "10.0.0.9" : "10.0.0.10", 443,
                SOCKROW_ST_ESTABLISHED, 99, 0);
    }
    s = finish(an, NULL, NULL);
    assert_true(s->pressure_pct == 100.0);
    assert_string_equal(s->pressure_source, "tcp host-wide 255/255 ports");
    assert_int_equal(s->destination_count, 3);
    /* On Windows no destination has more than its own ports; free_ports is the usable pool. */
    assert_int_equal(s->destinations[0]->free_ports, 255);
    check_addr(s, EPW__PROTOCOL__TCP, "10.0.0.5", 128, 255, 0, 1);
    check_addr(s, EPW__PROTOCOL__TCP, "2001:db8::1", 127, 255, 0, 0);
    assert_true(addr_row(s, EPW__PROTOCOL__TCP, "10.0.0.5")->usage_pct == 50.2);
    epw_snap_free(s);
}

/* ---- caps and limits ---- */

static void test_top_n_other_and_names(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_WINDOWS, 3, 0, 0);
    names_t names;
    Epw__Snapshot *s;
    uint32_t pid, i;
    uint16_t port = 50000;

    (void)state;
    range_all(an, 49152, 16384);
    /* PID 101 holds 1 socket, 102 holds 2, ... 108 holds 8; plus sockets outside the range. */
    for (pid = 101; pid <= 108; pid++) {
        for (i = 0; i < pid - 100; i++)
            add(an, TCP, "10.0.0.5", port++, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, pid, 0);
        add(an, TCP, "10.0.0.5", (uint16_t)(1000 + pid), "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED,
            pid, 0);
    }
    add(an, TCP, "10.0.0.5", 2000, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 200, 0);
    memset(&names, 0, sizeof(names));
    s = finish(an, name_cb, &names);
    assert_int_equal(s->n_top_processes, 4);
    assert_int_equal(s->top_processes[0]->pid, 108);
    assert_int_equal(s->top_processes[0]->ports, 8);
    assert_int_equal(s->top_processes[1]->pid, 107);
    assert_int_equal(s->top_processes[2]->pid, 106);
    assert_string_equal(s->top_processes[2]->name, "proc106");
    assert_true(s->top_processes[3]->other);
    assert_int_equal(s->top_processes[3]->pid, 0);
    assert_int_equal(s->top_processes[3]->ports, 15);
    assert_string_equal(s->top_processes[3]->name, "other");
    /* Names asked for the top N only. */
    assert_int_equal(names.calls, 3);
    assert_int_equal(names.pids[0], 108);
    assert_int_equal(names.pids[1], 107);
    assert_int_equal(names.pids[2], 106);
    assert_int_equal(s->pid_count, 9);
    assert_int_equal(s->total_sockets, 45);
    epw_snap_free(s);
}

static void test_address_cap(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_WINDOWS, 0, 0, 2);
    Epw__Snapshot *s;

    (void)state;
    range_all(an, 49152, 16384);
    add(an, TCP, "10.0.0.1", 50001, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 1, 0);
    add(an, TCP, "10.0.0.2", 50002, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 1, 0);
    add(an, TCP, "10.0.0.3", 50003, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 1, 0);
    add(an, TCP, "10.0.0.3", 50004, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 1, 0);
    add(an, TCP, "0.0.0.0", 50005, NULL, 0, SOCKROW_ST_LISTEN, 1, 0);
    s = finish(an, NULL, NULL);
    assert_int_equal(s->n_addresses, 3);
    assert_string_equal(s->addresses[0]->local_address, "0.0.0.0");
    assert_string_equal(s->addresses[2]->local_address, "10.0.0.2");
    assert_null(addr_row(s, EPW__PROTOCOL__TCP, "10.0.0.3"));
    assert_true(has_note(s, "2 sockets on further addresses"));
    /* Hidden addresses still count host-wide and per destination. */
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 5);
    assert_int_equal(s->destination_count, 3);
    epw_snap_free(s);
}

static void test_no_range(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    Epw__Snapshot *s;

    (void)state;
    add(an, TCP, "10.0.0.5", 40000, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 1, KNOWN);
    s = finish(an, NULL, NULL);
    assert_true(s->pressure_pct == 0.0);
    assert_string_equal(s->pressure_source, "");
    assert_true(has_note(s, "no port range declared"));
    assert_int_equal(s->n_host, 0);
    assert_int_equal(s->n_states, 0);
    assert_int_equal(s->destination_count, 0);
    assert_int_equal(s->total_sockets, 1);
    check_addr(s, EPW__PROTOCOL__TCP, "10.0.0.5", 0, 0, 0, 1);
    epw_snap_free(s);
}

static void test_invalid_arguments(void **state)
{
    analysis_opts_t o;
    analysis_t *an = (analysis_t *)&o;
    Epw__Snapshot *s;
    sockrow_t r;

    (void)state;
    memset(&o, 0, sizeof(o));
    assert_int_equal(analysis_create(NULL, &an), UV_EINVAL);
    assert_null(an);
    an = (analysis_t *)&o;
    assert_int_equal(analysis_create(&o, &an), UV_EINVAL); /* model 0 */
    assert_null(an);
    o.model = (analysis_model_t)3;
    assert_int_equal(analysis_create(&o, &an), UV_EINVAL);
    analysis_destroy(NULL);

    an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    assert_int_equal(analysis_set_range(an, TCP, 4, 32768, 0, EPW__RANGE_SOURCE__RANGE_SYSCTL),
                     UV_EINVAL);
    assert_int_equal(analysis_set_range(an, TCP, 4, 65000, 537, EPW__RANGE_SOURCE__RANGE_SYSCTL),
                     UV_EINVAL);
    assert_int_equal(analysis_set_range(an, TCP, 4, 70000, 1, EPW__RANGE_SOURCE__RANGE_SYSCTL),
                     UV_EINVAL);
    assert_int_equal(analysis_set_range(an, TCP, 5, 32768, 100, EPW__RANGE_SOURCE__RANGE_SYSCTL),
                     UV_EINVAL);
    assert_int_equal(
        analysis_set_range(an, (sockrow_proto_t)3, 4, 32768, 100, EPW__RANGE_SOURCE__RANGE_SYSCTL),
        UV_EINVAL);
    assert_int_equal(analysis_exclude(an, TCP, 4, 100, 99), UV_EINVAL);
    assert_int_equal(analysis_exclude(an, TCP, 4, 100, 65536), UV_EINVAL);
    /* The edges are fine: the top port alone, and the whole space. */
    assert_int_equal(analysis_set_range(an, UDP, 6, 65535, 1, EPW__RANGE_SOURCE__RANGE_SYSCTL), 0);
    assert_int_equal(analysis_set_range(an, TCP, 6, 0, 65536, EPW__RANGE_SOURCE__RANGE_SYSCTL), 0);
    assert_int_equal(analysis_exclude(an, TCP, 6, 0, 65535), 0);

    r = mk(TCP, "10.0.0.5", 40000, "10.0.0.9", 80, SOCKROW_ST_ESTABLISHED, 1, KNOWN);
    r.family = 5;
    assert_int_equal(analysis_add(an, &r), UV_EINVAL);
    r.family = 4;
    r.proto = 0;
    assert_int_equal(analysis_add(an, &r), UV_EINVAL);
    assert_int_equal(analysis_add(an, NULL), UV_EINVAL);
    assert_int_equal(analysis_finish(an, NULL, NULL, NULL), UV_EINVAL);

    /* A state number from nowhere counts as OTHER. */
    add(an, TCP, "::1", 65535, "::1", 80, SOCKROW_ST_COUNT + 7, 1, KNOWN);
    s = epw_snap_new();
    assert_non_null(s);
    assert_int_equal(analysis_finish(an, NULL, NULL, s), 0);
    assert_int_equal(analysis_finish(an, NULL, NULL, s), UV_EINVAL);
    assert_int_equal(analysis_add(an, &r), UV_EINVAL);
    analysis_destroy(an);
    /* The whole TCP v6 space excluded: the row counts nowhere; usable 0. */
    assert_int_equal(s->n_states, 0);
    assert_int_equal(s->n_ranges, 2);
    assert_int_equal(s->ranges[0]->excluded, 65536);
    assert_int_equal(s->total_sockets, 1);
    epw_snap_free(s);

    an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    range_all(an, 65535, 1);
    add(an, TCP, "::1", 65535, "::1", 80, SOCKROW_ST_COUNT + 7, 1, KNOWN);
    add(an, TCP, "::1", 65535, "::1", 81, SOCKROW_ST_NONE, 1, KNOWN);
    s = finish(an, NULL, NULL);
    assert_int_equal(state_count(s, "OTHER"), 2);
    assert_int_equal(state_count(s, "UDP"), 0);
    /* Of equal destinations the first in address order is named. */
    assert_string_equal(s->pressure_source, "destination ::1 -> [::1]:80 (1/1 free ports)");
    assert_true(s->pressure_pct == 100.0);
    assert_int_equal(s->destination_count, 2);
    epw_snap_free(s);
}

static void test_large_stream(void **state)
{
    analysis_t *an = new_an(ANALYSIS_MODEL_LINUX, 0, 0, 0);
    Epw__Snapshot *s;
    sockrow_t r;
    uint32_t i;

    (void)state;
    range_all(an, 32768, 28232);
    r = mk(TCP, "10.0.0.5", 0, "10.0.2.0", 0, SOCKROW_ST_ESTABLISHED, 0, KNOWN);
    /* 200k connections over 50 destinations and 100 processes, ports reused across them. */
    for (i = 0; i < 200000; i++) {
        r.lport = (uint16_t)(32768 + i % 28232);
        r.raddr[3] = (uint8_t)(i % 50);
        r.rport = 443;
        r.pid = 1000 + i % 100;
        r.state = i % 3 ? SOCKROW_ST_ESTABLISHED : SOCKROW_ST_TIME_WAIT;
        assert_int_equal(analysis_add(an, &r), 0);
    }
    s = finish(an, NULL, NULL);
    assert_int_equal(s->total_sockets, 200000);
    assert_int_equal(host_row(s, EPW__PROTOCOL__TCP)->ports_in_use, 28232);
    assert_int_equal(s->destination_count, 50);
    assert_int_equal(s->destinations[0]->connections, 4000);
    assert_int_equal(s->pid_count, 100);
    assert_int_equal(s->top_processes[0]->ports, 2000);
    assert_true(s->top_processes[5]->other);
    assert_int_equal(s->top_processes[5]->ports, 190000);
    assert_int_equal(state_count(s, "TIME_WAIT"), 66667);
    assert_true(s->pressure_pct == 14.2); /* 4000 / 28232 */
    epw_snap_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_mixed),
        cmocka_unit_test(test_windows_shared_pool_and_udp),
        cmocka_unit_test(test_excluded_and_outside),
        cmocka_unit_test(test_windows_kernel_pids),
        cmocka_unit_test(test_linux_kernel_without_pid),
        cmocka_unit_test(test_linux_destinations_share_ports),
        cmocka_unit_test(test_linux_exclusive_reduces_free),
        cmocka_unit_test(test_linux_exhaustion),
        cmocka_unit_test(test_windows_exhaustion),
        cmocka_unit_test(test_top_n_other_and_names),
        cmocka_unit_test(test_address_cap),
        cmocka_unit_test(test_no_range),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_large_stream),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
