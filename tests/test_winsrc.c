/* test_winsrc: the Windows sampler's pure parts on injected tables and fake sources (any OS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "analysis.h"
#include "epw_err.h"
#include "epw_snap.h"
#include "winsrc.h"

/* A port as the tables hold it: network order in the low 16 bits of a little-endian DWORD. */
static uint32_t mib_port(uint16_t p)
{
    return (uint32_t)(((p & 0xFFu) << 8) | (p >> 8));
}

/* An IPv4 address field: the address bytes in memory order. */
static uint32_t mib_addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    const uint8_t bytes[4] = {a, b, c, d};
    uint32_t v;

    memcpy(&v, bytes, 4);
    return v;
}

/* Collects converted rows. */
typedef struct rows_s {
    sockrow_t r[16];
    size_t n;
    int fail_at; /* return an error for this row index (-1: never) */
} rows_t;

static int collect(void *ud, const sockrow_t *row)
{
    rows_t *c = ud;

    if ((int)c->n == c->fail_at)
        return UV_ECANCELED;
    assert_true(c->n < 16);
    c->r[c->n++] = *row;
    return 0;
}

static void test_states(void **state)
{
    static const sockrow_state_t want[13] = {
        SOCKROW_ST_OTHER,      SOCKROW_ST_CLOSED,      SOCKROW_ST_LISTEN,    SOCKROW_ST_SYN_SENT,
        SOCKROW_ST_SYN_RECV,   SOCKROW_ST_ESTABLISHED, SOCKROW_ST_FIN_WAIT1, SOCKROW_ST_FIN_WAIT2,
        SOCKROW_ST_CLOSE_WAIT, SOCKROW_ST_CLOSING,     SOCKROW_ST_LAST_ACK,  SOCKROW_ST_TIME_WAIT,
        SOCKROW_ST_DELETE_TCB};
    uint32_t i;

    (void)state;
    for (i = 0; i < 13; i++)
        assert_int_equal(winsrc_tcp_state(i), want[i]);
    assert_int_equal(winsrc_tcp_state(13), SOCKROW_ST_OTHER);
    assert_int_equal(winsrc_tcp_state(0xFFFFFFFFu), SOCKROW_ST_OTHER);
    assert_string_equal(sockrow_state_name(winsrc_tcp_state(11)), "TIME_WAIT");
}

static void test_port(void **state)
{
    (void)state;
    assert_int_equal(winsrc_port(mib_port(49152)), 49152);
    assert_int_equal(winsrc_port(mib_port(80)), 80);
    assert_int_equal(winsrc_port(0x0050u), 0x5000); /* 0x0050 on the wire is port 20480 */
    assert_int_equal(winsrc_port(0x5000u), 80);
    /* Only the low 16 bits carry the port. */
    assert_int_equal(winsrc_port(0xABCD0000u | mib_port(443)), 443);
}

static void test_tcp4_rows(void **state)
{
    winsrc_tcp4_t t[3];
    rows_t c;
    size_t done = 99;

    (void)state;
    memset(t, 0, sizeof(t));
    memset(&c, 0, sizeof(c));
    c.fail_at = -1;
    /* A connection, a listener with a garbage remote port, a TIME_WAIT with PID 0. */
    t[0] = (winsrc_tcp4_t){
        5, mib_addr4(10, 0, 0, 1), mib_port(50001), mib_addr4(10, 0, 0, 9), mib_port(1433), 1236};
    t[1] = (winsrc_tcp4_t){2, mib_addr4(0, 0, 0, 0), mib_port(445), 0, 0x1234u, 4};
    t[2] = (winsrc_tcp4_t){
        11, mib_addr4(127, 0, 0, 1), mib_port(50002), mib_addr4(127, 0, 0, 1), mib_port(8080), 0};
    assert_int_equal(winsrc_convert(WINSRC_TCP4, t, 3, collect, &c, &done), 0);
    assert_int_equal(done, 3);
    assert_int_equal(c.n, 3);

    assert_int_equal(c.r[0].proto, SOCKROW_TCP);
    assert_int_equal(c.r[0].family, 4);
    assert_int_equal(c.r[0].state, SOCKROW_ST_ESTABLISHED);
    assert_int_equal(c.r[0].lport, 50001);
    assert_int_equal(c.r[0].rport, 1433);
    assert_memory_equal(c.r[0].laddr, ((const uint8_t[16]){10, 0, 0, 1}), 16);
    assert_memory_equal(c.r[0].raddr, ((const uint8_t[16]){10, 0, 0, 9}), 16);
    assert_int_equal(c.r[0].pid, 1236);
    assert_int_equal(c.r[0].flags & SOCKROW_F_PID_KNOWN, SOCKROW_F_PID_KNOWN);
    assert_int_equal(c.r[0].inode, 0);

    assert_int_equal(c.r[1].state, SOCKROW_ST_LISTEN);
    assert_int_equal(c.r[1].lport, 445);
    assert_int_equal(c.r[1].rport, 0);
    assert_int_equal(c.r[1].pid, SOCKROW_PID_SYSTEM_WIN);
    assert_true(sockrow_addr_is_any(4, c.r[1].laddr));

    assert_int_equal(c.r[2].state, SOCKROW_ST_TIME_WAIT);
    assert_int_equal(c.r[2].pid, 0);
    assert_int_equal(c.r[2].flags & SOCKROW_F_PID_KNOWN, SOCKROW_F_PID_KNOWN);
    assert_int_equal(c.r[2].rport, 8080);

    /* The callback's error stops the conversion and comes back; done counts what was handed. */
    memset(&c, 0, sizeof(c));
    c.fail_at = 1;
    assert_int_equal(winsrc_convert(WINSRC_TCP4, t, 3, collect, &c, &done), UV_ECANCELED);
    assert_int_equal(done, 1);
    assert_int_equal(winsrc_convert(WINSRC_TCP4, NULL, 1, collect, &c, &done), UV_EINVAL);
    assert_int_equal(winsrc_convert((winsrc_table_t)0, t, 1, collect, &c, &done), UV_EINVAL);
    assert_int_equal(winsrc_convert(WINSRC_TCP4, t, 1, NULL, &c, &done), UV_EINVAL);
    assert_int_equal(winsrc_convert(WINSRC_TCP4, NULL, 0, collect, &c, &done), 0);
    assert_int_equal(done, 0);
}

static void test_v6_and_udp_rows(void **state)
{
    static const uint8_t lo6[16] = {[15] = 1};
    static const uint8_t ll6[16] = {0xfe, 0x80, [15] = 0x42};
    winsrc_tcp6_t t6;
    winsrc_udp4_t u4;
    winsrc_udp6_t u6;
    rows_t c;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.fail_at = -1;
    memset(&t6, 0, sizeof(t6));
    memcpy(t6.laddr, ll6, 16);
    t6.lscope = 7;
    t6.lport = mib_port(61000);
    memcpy(t6.raddr, lo6, 16);
    t6.rport = mib_port(443);
    t6.state = 8; /* CLOSE_WAIT */
    t6.pid = 5000;
    assert_int_equal(winsrc_convert(WINSRC_TCP6, &t6, 1, collect, &c, NULL), 0);
    u4 = (winsrc_udp4_t){mib_addr4(192, 168, 1, 2), mib_port(53), 888};
    assert_int_equal(winsrc_convert(WINSRC_UDP4, &u4, 1, collect, &c, NULL), 0);
    memset(&u6, 0, sizeof(u6));
    memcpy(u6.laddr, lo6, 16);
    u6.lport = mib_port(50123);
    u6.pid = 4;
    assert_int_equal(winsrc_convert(WINSRC_UDP6, &u6, 1, collect, &c, NULL), 0);
    assert_int_equal(c.n, 3);

    assert_int_equal(c.r[0].family, 6);
    assert_int_equal(c.r[0].proto, SOCKROW_TCP);
    assert_int_equal(c.r[0].state, SOCKROW_ST_CLOSE_WAIT);
    assert_memory_equal(c.r[0].laddr, ll6, 16);
    assert_memory_equal(c.r[0].raddr, lo6, 16);
    assert_int_equal(c.r[0].lport, 61000);
    assert_int_equal(c.r[0].rport, 443);
    assert_int_equal(c.r[0].pid, 5000);

    assert_int_equal(c.r[1].proto, SOCKROW_UDP);
    assert_int_equal(c.r[1].family, 4);
    assert_int_equal(c.r[1].state, SOCKROW_ST_NONE);
    assert_memory_equal(c.r[1].laddr, ((const uint8_t[16]){192, 168, 1, 2}), 16);
    assert_int_equal(c.r[1].lport, 53);
    assert_int_equal(c.r[1].rport, 0);
    assert_int_equal(c.r[1].pid, 888);

    assert_int_equal(c.r[2].proto, SOCKROW_UDP);
    assert_int_equal(c.r[2].family, 6);
    assert_memory_equal(c.r[2].laddr, lo6, 16);
    assert_int_equal(c.r[2].lport, 50123);
    assert_int_equal(c.r[2].pid, 4);
}

static void test_bound_rows(void **state)
{
    winsrc_btcp4_t b4[2];
    winsrc_btcp6_t b6;
    rows_t c;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.fail_at = -1;
    memset(b4, 0, sizeof(b4));
    /* Whatever the state field says (CLOSED here), these are BOUND. */
    b4[0] = (winsrc_btcp4_t){1, mib_addr4(10, 1, 1, 1), mib_port(50500), 0, 0, 2468, 0};
    b4[1] = (winsrc_btcp4_t){0, 0, mib_port(50501), mib_addr4(1, 2, 3, 4), mib_port(99), 4, 0};
    memset(&b6, 0, sizeof(b6));
    b6.laddr[15] = 1;
    b6.lport = mib_port(50502);
    b6.state = 1;
    b6.pid = 1000;
    assert_int_equal(winsrc_convert(WINSRC_BOUND4, b4, 2, collect, &c, NULL), 0);
    assert_int_equal(winsrc_convert(WINSRC_BOUND6, &b6, 1, collect, &c, NULL), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.r[0].state, SOCKROW_ST_BOUND);
    assert_int_equal(c.r[0].proto, SOCKROW_TCP);
    assert_int_equal(c.r[0].family, 4);
    assert_int_equal(c.r[0].lport, 50500);
    assert_int_equal(c.r[0].pid, 2468);
    assert_memory_equal(c.r[0].laddr, ((const uint8_t[16]){10, 1, 1, 1}), 16);
    /* A BOUND socket has no peer, even if the fields hold something. */
    assert_int_equal(c.r[1].state, SOCKROW_ST_BOUND);
    assert_int_equal(c.r[1].rport, 0);
    assert_memory_equal(c.r[1].raddr, ((const uint8_t[16]){0}), 16);
    assert_int_equal(c.r[2].state, SOCKROW_ST_BOUND);
    assert_int_equal(c.r[2].family, 6);
    assert_int_equal(c.r[2].lport, 50502);
    assert_string_equal(sockrow_state_name((sockrow_state_t)c.r[2].state), "BOUND");
}

static void test_bound_check(void **state)
{
    winsrc_btcp4_t b4[2];
    winsrc_btcp6_t b6;
    char why[128];

    (void)state;
    memset(b4, 0, sizeof(b4));
    b4[0] = (winsrc_btcp4_t){1, 0, mib_port(50500), 0, 0, 2468, 0};
    b4[1] = (winsrc_btcp4_t){1, 0, mib_port(50501), 0, 0, 4, 0};
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, 2, 4 + sizeof(b4), why, sizeof(why)), 0);
    assert_string_equal(why, "");
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, 0, 4, why, sizeof(why)), 0);
    /* The heap block is smaller than the count claims. */
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, 2, 4 + sizeof(b4) - 1, why, sizeof(why)),
                     EPW_E_PARSE);
    assert_non_null(strstr(why, "do not fit"));
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, SIZE_MAX / 2, 1000, why, sizeof(why)),
                     EPW_E_PARSE);
    /* A port field with its high bits set: the layout is not what we think. */
    b4[1].lport = 0x00010000u | mib_port(50501);
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, 2, 4 + sizeof(b4), why, sizeof(why)),
                     EPW_E_PARSE);
    assert_non_null(strstr(why, "row 1"));
    b4[1].lport = mib_port(50501);
    b4[1].pid = 4 * 1000 + 2; /* Windows PIDs are multiples of 4 */
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, 2, 4 + sizeof(b4), why, sizeof(why)),
                     EPW_E_PARSE);
    b4[1].pid = 4;
    b4[1].lport = 0; /* a bound socket always has a port */
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, 2, 4 + sizeof(b4), why, sizeof(why)),
                     EPW_E_PARSE);
    b4[1].lport = mib_port(1);
    b4[1].rport = 0xFFFF0000u;
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND4, b4, 2, 4 + sizeof(b4), why, sizeof(why)),
                     EPW_E_PARSE);

    memset(&b6, 0, sizeof(b6));
    b6.lport = mib_port(50000);
    b6.pid = 8;
    assert_int_equal(winsrc_bound_check(WINSRC_BOUND6, &b6, 1, 4 + sizeof(b6), why, sizeof(why)),
                     0);
    /* Read as the IPv4 layout the same bytes would not fit: sizes are per layout. */
    assert_int_equal(
        winsrc_bound_check(WINSRC_BOUND6, &b6, 1, 4 + sizeof(winsrc_btcp4_t), why, sizeof(why)),
        EPW_E_PARSE);
    assert_int_equal(winsrc_bound_check(WINSRC_TCP4, &b6, 1, 1000, why, sizeof(why)), UV_EINVAL);
}

/* A fake process table: 1000 is "svc.exe", 1236 is protected (access denied), others exited. */
typedef struct names_s {
    int calls;
    uint32_t asked[8];
} names_t;

static int fake_lookup(void *ud, uint32_t pid, char *buf, size_t len)
{
    names_t *n = ud;

    if (n->calls < 8)
        n->asked[n->calls] = pid;
    n->calls++;
    if (pid == 1000) {
        snprintf(buf, len, "svc.exe");
        return 0;
    }
    if (pid == 2000) {
        buf[0] = '\0'; /* answered nothing */
        return 0;
    }
    return pid == 1236 ? UV_EACCES : UV_ESRCH;
}

static void test_names(void **state)
{
    names_t n;
    char buf[64];

    (void)state;
    memset(&n, 0, sizeof(n));
    winsrc_name(0, fake_lookup, &n, buf, sizeof(buf));
    assert_string_equal(buf, "Idle");
    winsrc_name(4, fake_lookup, &n, buf, sizeof(buf));
    assert_string_equal(buf, "System");
    assert_int_equal(n.calls, 0); /* PIDs 0 and 4 are never looked up (never opened) */
    winsrc_name(1236, fake_lookup, &n, buf, sizeof(buf));
    assert_string_equal(buf, "[pid 1236]");
    winsrc_name(1000, fake_lookup, &n, buf, sizeof(buf));
    assert_string_equal(buf, "svc.exe");
    winsrc_name(2000, fake_lookup, &n, buf, sizeof(buf));
    assert_string_equal(buf, "[pid 2000]");
    winsrc_name(77, NULL, NULL, buf, sizeof(buf));
    assert_string_equal(buf, "[pid 77]");
    assert_int_equal(n.calls, 3);
    assert_int_equal(n.asked[0], 1236);
    winsrc_name(1236, fake_lookup, &n, buf, 5);
    assert_string_equal(buf, "[pid");
    winsrc_name(1000, fake_lookup, &n, NULL, 0); /* no buffer: nothing happens */
}

/* PID attribution end to end: MIB rows -> analysis -> top processes named by winsrc_name. */
static void analysis_name(void *ud, uint32_t pid, char *buf, size_t len)
{
    winsrc_name(pid, fake_lookup, ud, buf, len);
}

static int add_to_analysis(void *ud, const sockrow_t *row)
{
    return analysis_add(ud, row);
}

static const Epw__ProcessUsage *find_proc(const Epw__Snapshot *s, uint32_t pid)
{
    size_t i;

    for (i = 0; i < s->n_top_processes; i++)
        if (!s->top_processes[i]->other && s->top_processes[i]->pid == pid)
            return s->top_processes[i];
    return NULL;
}

static void test_pid_attribution(void **state)
{
    winsrc_tcp4_t t[7];
    winsrc_btcp4_t b[1];
    analysis_opts_t ao;
    analysis_t *an = NULL;
    Epw__Snapshot *snap;
    const Epw__ProcessUsage *p;
    names_t n;
    int i;

    (void)state;
    memset(&n, 0, sizeof(n));
    memset(t, 0, sizeof(t));
    /* 1000: three connections; 1236 (protected): two; 4 (kernel): one LISTEN in the range;
     * 0: one TIME_WAIT. */
    for (i = 0; i < 3; i++)
        t[i] = (winsrc_tcp4_t){5,
                               mib_addr4(10, 0, 0, 1),
                               mib_port((uint16_t)(50000 + i)),
                               mib_addr4(10, 0, 0, 9),
                               mib_port(443),
                               1000};
    for (i = 3; i < 5; i++)
        t[i] = (winsrc_tcp4_t){5,
                               mib_addr4(10, 0, 0, 1),
                               mib_port((uint16_t)(50000 + i)),
                               mib_addr4(10, 0, 0, 9),
                               mib_port(443),
                               1236};
    t[5] = (winsrc_tcp4_t){2, 0, mib_port(50100), 0, 0, 4};
    t[6] = (winsrc_tcp4_t){
        11, mib_addr4(10, 0, 0, 1), mib_port(50200), mib_addr4(10, 0, 0, 9), mib_port(443), 0};
    b[0] = (winsrc_btcp4_t){1, mib_addr4(10, 0, 0, 1), mib_port(50300), 0, 0, 2000, 0};

    memset(&ao, 0, sizeof(ao));
    ao.model = ANALYSIS_MODEL_WINDOWS;
    ao.top_n = 10;
    assert_int_equal(analysis_create(&ao, &an), 0);
    assert_int_equal(
        analysis_set_range(an, SOCKROW_TCP, 4, 49152, 16384, EPW__RANGE_SOURCE__RANGE_DEFAULT), 0);
    assert_int_equal(winsrc_convert(WINSRC_TCP4, t, 7, add_to_analysis, an, NULL), 0);
    assert_int_equal(winsrc_convert(WINSRC_BOUND4, b, 1, add_to_analysis, an, NULL), 0);
    snap = epw_snap_new();
    assert_non_null(snap);
    assert_int_equal(analysis_finish(an, analysis_name, &n, snap), 0);
    analysis_destroy(an);

    p = find_proc(snap, 1000);
    assert_non_null(p);
    assert_string_equal(p->name, "svc.exe");
    assert_int_equal(p->ports, 3);
    p = find_proc(snap, 1236);
    assert_non_null(p);
    assert_string_equal(p->name, "[pid 1236]");
    assert_int_equal(p->ports, 2);
    p = find_proc(snap, 4);
    assert_non_null(p);
    assert_string_equal(p->name, "System");
    p = find_proc(snap, 2000); /* the BOUND socket's owner */
    assert_non_null(p);
    assert_string_equal(p->name, "[pid 2000]");
    assert_null(find_proc(snap, 0)); /* TIME_WAIT's PID 0 is nobody */
    for (i = 0; i < n.calls && i < 8; i++)
        assert_true(n.asked[i] != 0 && n.asked[i] != 4);
    /* The PID 4 listener is a kernel port; the BOUND port counts as in use. */
    assert_int_equal(snap->kernel_ports, 1);
    assert_int_equal(snap->n_host, 1);
    assert_int_equal(snap->host[0]->ports_in_use, 8);
    epw_snap_free(snap);
}

/* ---- range fallback ------------------------------------------------------------------------ */

/* A fake source: answers the ranges in `answers` (bit i) with start/count, fails the others. */
typedef struct fake_src_s {
    unsigned answers;
    uint32_t start, count;
    const char *why;
    int calls;
    uint8_t last_want[WINSRC_NRANGES];
} fake_src_t;

static void fake_range(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans)
{
    fake_src_t *f = ud;
    int i;

    f->calls++;
    memcpy(f->last_want, want, WINSRC_NRANGES);
    for (i = 0; i < WINSRC_NRANGES; i++) {
        /* The resolver hands a clean answer each time. */
        assert_int_equal(ans->have[i], 0);
        assert_string_equal(ans->why[i], "");
        if (!want[i])
            continue;
        if (f->answers & (1u << i)) {
            ans->start[i] = f->start;
            ans->count[i] = f->count;
            ans->have[i] = 1;
        } else {
            snprintf(ans->why[i], sizeof(ans->why[i]), "%s", f->why);
        }
    }
}

static void chain(winsrc_range_source_t srcs[3], fake_src_t *wmi, fake_src_t *netsh)
{
    srcs[0] = (winsrc_range_source_t){"WMI", EPW__RANGE_SOURCE__RANGE_WMI, fake_range, wmi};
    srcs[1] = (winsrc_range_source_t){"netsh", EPW__RANGE_SOURCE__RANGE_NETSH, fake_range, netsh};
    srcs[2] = (winsrc_range_source_t){"default", EPW__RANGE_SOURCE__RANGE_DEFAULT,
                                      winsrc_range_default, NULL};
}

static void test_range_wmi_first(void **state)
{
    winsrc_range_source_t srcs[3];
    fake_src_t wmi = {0xF, 10000, 20000, "", 0, {0}}, netsh = {0xF, 1, 1, "", 0, {0}};
    winsrc_ranges_t r;
    Epw__Snapshot *notes = epw_snap_new();
    int i;

    (void)state;
    chain(srcs, &wmi, &netsh);
    assert_int_equal(winsrc_ranges_resolve(srcs, 3, &r, notes), 0);
    assert_int_equal(wmi.calls, 1);
    assert_int_equal(netsh.calls, 0); /* never asked once WMI answered everything */
    for (i = 0; i < WINSRC_NRANGES; i++) {
        assert_int_equal(r.start[i], 10000);
        assert_int_equal(r.count[i], 20000);
        assert_int_equal(r.source[i], EPW__RANGE_SOURCE__RANGE_WMI);
    }
    assert_int_equal(notes->n_notes, 0); /* the supported source needs no explanation */
    epw_snap_free(notes);
}

static void test_range_netsh_second(void **state)
{
    winsrc_range_source_t srcs[3];
    fake_src_t wmi = {0, 0, 0, "ROOT\\StandardCimv2 not available (0x8004100E)", 0, {0}};
    fake_src_t netsh = {0xF, 50000, 10000, "", 0, {0}};
    winsrc_ranges_t r;
    Epw__Snapshot *notes = epw_snap_new();
    int i;

    (void)state;
    chain(srcs, &wmi, &netsh);
    assert_int_equal(winsrc_ranges_resolve(srcs, 3, &r, notes), 0);
    assert_int_equal(wmi.calls, 1);
    assert_int_equal(netsh.calls, 1);
    for (i = 0; i < WINSRC_NRANGES; i++) {
        assert_int_equal(r.start[i], 50000);
        assert_int_equal(r.count[i], 10000);
        assert_int_equal(r.source[i], EPW__RANGE_SOURCE__RANGE_NETSH);
        assert_int_equal(netsh.last_want[i], 1);
    }
    assert_int_equal(notes->n_notes, 1);
    assert_string_equal(notes->notes[0], "dynamic port range: WMI unavailable (WMI: "
                                         "ROOT\\StandardCimv2 not available (0x8004100E)); "
                                         "from netsh: 50000-59999");
    epw_snap_free(notes);
}

static void test_range_default_last(void **state)
{
    winsrc_range_source_t srcs[3];
    fake_src_t wmi = {0, 0, 0, "ROOT\\StandardCimv2 not available (0x8004100E)", 0, {0}};
    fake_src_t netsh = {0, 0, 0, "no output", 0, {0}};
    winsrc_ranges_t r;
    Epw__Snapshot *notes = epw_snap_new();
    int i;

    (void)state;
    chain(srcs, &wmi, &netsh);
    assert_int_equal(winsrc_ranges_resolve(srcs, 3, &r, notes), 0);
    assert_int_equal(wmi.calls, 1);
    assert_int_equal(netsh.calls, 1);
    for (i = 0; i < WINSRC_NRANGES; i++) {
        assert_int_equal(r.start[i], WINSRC_DEFAULT_START);
        assert_int_equal(r.count[i], WINSRC_DEFAULT_COUNT);
        assert_int_equal(r.source[i], EPW__RANGE_SOURCE__RANGE_DEFAULT);
    }
    /* One note for the four ranges, naming each failed source and why, then what was assumed. */
    assert_int_equal(notes->n_notes, 1);
    assert_string_equal(notes->notes[0],
                        "dynamic port range: WMI and netsh unavailable (WMI: ROOT\\StandardCimv2 "
                        "not available (0x8004100E); netsh: no output); assumed Windows default "
                        "49152-65535");
    epw_snap_free(notes);
}

/* WMI answers TCP with an invalid range (counts as no answer) and UDP not at all; netsh answers
 * udp/ipv4 only; the rest falls to the default. Ranges with the same story share a note. */
static void test_range_mixed(void **state)
{
    winsrc_range_source_t srcs[3];
    fake_src_t wmi = {0x3, 1024, 5000, "no instance", 0, {0}}; /* start 1024 is invalid */
    fake_src_t netsh = {0x4, 40000, 255, "no output", 0, {0}};
    winsrc_ranges_t r;
    Epw__Snapshot *notes = epw_snap_new();

    (void)state;
    chain(srcs, &wmi, &netsh);
    assert_int_equal(winsrc_ranges_resolve(srcs, 3, &r, notes), 0);
    assert_memory_equal(netsh.last_want, ((const uint8_t[4]){1, 1, 1, 1}), 4);
    assert_int_equal(r.source[0], EPW__RANGE_SOURCE__RANGE_DEFAULT);
    assert_int_equal(r.source[1], EPW__RANGE_SOURCE__RANGE_DEFAULT);
    assert_int_equal(r.source[2], EPW__RANGE_SOURCE__RANGE_NETSH);
    assert_int_equal(r.start[2], 40000);
    assert_int_equal(r.count[2], 255);
    assert_int_equal(r.source[3], EPW__RANGE_SOURCE__RANGE_DEFAULT);
    assert_int_equal(r.start[3], WINSRC_DEFAULT_START);
    assert_int_equal(notes->n_notes, 3);
    assert_string_equal(notes->notes[0],
                        "dynamic port range (tcp/ipv4, tcp/ipv6): WMI and netsh unavailable (WMI: "
                        "invalid range 1024+5000; netsh: no output); assumed Windows default "
                        "49152-65535");
    assert_string_equal(notes->notes[1], "dynamic port range (udp/ipv4): WMI unavailable (WMI: no "
                                         "instance); from netsh: 40000-40254");
    assert_string_equal(notes->notes[2],
                        "dynamic port range (udp/ipv6): WMI and netsh unavailable (WMI: no "
                        "instance; netsh: no output); assumed Windows default 49152-65535");
    epw_snap_free(notes);
}

static const char *note_with(const Epw__Snapshot *s, const char *needle)
{
    size_t i;

    for (i = 0; i < s->n_notes; i++)
        if (strstr(s->notes[i], needle))
            return s->notes[i];
    return NULL;
}

static void test_range_partial(void **state)
{
    winsrc_range_source_t srcs[3];
    fake_src_t wmi = {0x5, 20000, 30000, "no instance", 0, {0}}; /* tcp/ipv4 and udp/ipv4 */
    fake_src_t netsh = {0x2, 40000, 1000, "netsh exited with 1", 0, {0}}; /* tcp/ipv6 */
    winsrc_ranges_t r;
    Epw__Snapshot *notes = epw_snap_new();

    (void)state;
    chain(srcs, &wmi, &netsh);
    assert_int_equal(winsrc_ranges_resolve(srcs, 3, &r, notes), 0);
    assert_int_equal(r.source[0], EPW__RANGE_SOURCE__RANGE_WMI);
    assert_int_equal(r.source[1], EPW__RANGE_SOURCE__RANGE_NETSH);
    assert_int_equal(r.source[2], EPW__RANGE_SOURCE__RANGE_WMI);
    assert_int_equal(r.source[3], EPW__RANGE_SOURCE__RANGE_DEFAULT);
    /* netsh was asked only for the two WMI left. */
    assert_memory_equal(netsh.last_want, ((const uint8_t[4]){0, 1, 0, 1}), 4);
    assert_int_equal(notes->n_notes, 2);
    assert_string_equal(notes->notes[0], "dynamic port range (tcp/ipv6): WMI unavailable (WMI: no "
                                         "instance); from netsh: 40000-40999");
    assert_string_equal(notes->notes[1],
                        "dynamic port range (udp/ipv6): WMI and netsh unavailable (WMI: no "
                        "instance; netsh: netsh exited with 1); assumed Windows default "
                        "49152-65535");
    epw_snap_free(notes);
}

static void test_range_invalid(void **state)
{
    winsrc_range_source_t srcs[3];
    fake_src_t wmi = {0xF, 1024, 5000, "", 0, {0}};
    fake_src_t netsh = {0xF, 60000, 6000, "", 0, {0}}; /* ends past 65535 */
    winsrc_ranges_t r;
    Epw__Snapshot *notes = epw_snap_new();

    (void)state;
    chain(srcs, &wmi, &netsh);
    assert_int_equal(winsrc_ranges_resolve(srcs, 3, &r, notes), 0);
    assert_int_equal(r.source[0], EPW__RANGE_SOURCE__RANGE_DEFAULT);
    assert_int_equal(notes->n_notes, 1);
    assert_non_null(note_with(notes, "WMI: invalid range 1024+5000; netsh: invalid range "
                                     "60000+6000"));

    /* Without the default, nothing answers: UNAVAILABLE, sources UNKNOWN, and said so. */
    epw_snap_free(notes);
    notes = epw_snap_new();
    assert_int_equal(winsrc_ranges_resolve(srcs, 2, &r, notes), EPW_E_UNAVAILABLE);
    assert_int_equal(r.source[0], EPW__RANGE_SOURCE__RANGE_SOURCE_UNKNOWN);
    assert_non_null(note_with(notes, "range unknown"));
    assert_int_equal(winsrc_ranges_resolve(NULL, 1, &r, notes), UV_EINVAL);
    assert_int_equal(winsrc_ranges_resolve(srcs, 3, &r, NULL), UV_EINVAL);
    epw_snap_free(notes);
}

static void test_range_valid(void **state)
{
    (void)state;
    assert_true(winsrc_range_valid(49152, 16384));
    assert_true(winsrc_range_valid(1025, 255));
    assert_true(winsrc_range_valid(1025, 64511)); /* up to 65535 */
    assert_true(winsrc_range_valid(65281, 255));
    assert_false(winsrc_range_valid(1024, 1000));
    assert_false(winsrc_range_valid(10000, 254));
    assert_false(winsrc_range_valid(65282, 255));
    assert_false(winsrc_range_valid(1025, 64512));
    assert_false(winsrc_range_valid(2000, 0xFFFFFFFFu)); /* no wrap-around */
    assert_int_equal(winsrc_range_index(SOCKROW_TCP, 4), 0);
    assert_int_equal(winsrc_range_index(SOCKROW_TCP, 6), 1);
    assert_int_equal(winsrc_range_index(SOCKROW_UDP, 4), 2);
    assert_int_equal(winsrc_range_index(SOCKROW_UDP, 6), 3);
    assert_int_equal(winsrc_range_index(SOCKROW_UDP, 5), -1);
}

/* ---- events ---------------------------------------------------------------------------------- */

static void test_filetime(void **state)
{
    (void)state;
    assert_int_equal(winsrc_filetime_ms(116444736000000000ull), 0);
    assert_int_equal(winsrc_filetime_ms(116444736000000000ull + 10000u), 1);
    /* 2024-01-01T00:00:00Z */
    assert_int_equal(winsrc_filetime_ms(133485408000000000ull), 1704067200000ll);
    assert_int_equal(winsrc_filetime_ms(0), 0);
}

static const Epw__ExhaustionEvent *find_event(const Epw__Snapshot *s, uint32_t id)
{
    size_t i;

    for (i = 0; i < s->n_events; i++)
        if (s->events[i]->event_id == id)
            return s->events[i];
    return NULL;
}

static void test_events_count(void **state)
{
    winsrc_events_t *ev = NULL;
    Epw__Snapshot *snap;
    const Epw__ExhaustionEvent *e;

    (void)state;
    assert_int_equal(winsrc_events_create(&ev), 0);
    /* Out of order, as a resumed subscription may deliver them. */
    winsrc_events_add(ev, WINSRC_EV_TCP_EXHAUSTED, 3000);
    winsrc_events_add(ev, WINSRC_EV_TCP_EXHAUSTED, 1000);
    winsrc_events_add(ev, WINSRC_EV_TCP_EXHAUSTED, 2000);
    winsrc_events_add(ev, WINSRC_EV_TIME_WAIT_REUSE, 500);
    winsrc_events_add(ev, 4228, 600); /* not one of ours */
    winsrc_events_error(ev, 15011);
    snap = epw_snap_new();
    assert_int_equal(winsrc_events_drain(ev, snap), 0);
    assert_int_equal(snap->n_events, 2);
    assert_int_equal(snap->events[0]->event_id, 4227); /* ascending IDs */
    assert_int_equal(snap->events[1]->event_id, 4231);
    e = find_event(snap, 4231);
    assert_int_equal(e->count, 3);
    assert_int_equal(e->first_ms, 1000);
    assert_int_equal(e->last_ms, 3000);
    e = find_event(snap, 4227);
    assert_int_equal(e->count, 1);
    assert_int_equal(e->first_ms, 500);
    assert_int_equal(e->last_ms, 500);
    assert_null(find_event(snap, 4266));
    assert_null(find_event(snap, 4228));
    assert_int_equal(snap->n_notes, 2);
    assert_non_null(note_with(snap, "1 error(s), last 15011"));
    assert_non_null(note_with(snap, "1 event(s) with an unexpected ID"));
    epw_snap_free(snap);

    /* Drained: the next snapshot starts from nothing. */
    snap = epw_snap_new();
    assert_int_equal(winsrc_events_drain(ev, snap), 0);
    assert_int_equal(snap->n_events, 0);
    assert_int_equal(snap->n_notes, 0);
    winsrc_events_add(ev, WINSRC_EV_UDP_EXHAUSTED, 9000);
    assert_int_equal(winsrc_events_drain(ev, snap), 0);
    assert_int_equal(snap->n_events, 1);
    assert_int_equal(snap->events[0]->event_id, 4266);
    assert_int_equal(snap->events[0]->count, 1);
    epw_snap_free(snap);
    assert_int_equal(winsrc_events_drain(NULL, snap), UV_EINVAL);
    winsrc_events_add(NULL, 4231, 1);
    winsrc_events_destroy(ev);
    winsrc_events_destroy(NULL);
}

/* Adds from other threads (as the event log's pool threads do) while the main thread drains:
 * nothing is lost or counted twice. */
#define EV_PER_THREAD 20000

static void adder(void *arg)
{
    winsrc_events_t *ev = arg;
    int i;

    for (i = 0; i < EV_PER_THREAD; i++)
        winsrc_events_add(ev, WINSRC_EV_TCP_EXHAUSTED, 1000 + i);
}

/* Drains into the running totals. */
static void drain_into(winsrc_events_t *ev, uint64_t *total, int64_t *first, int64_t *last)
{
    Epw__Snapshot *snap = epw_snap_new();

    assert_non_null(snap);
    assert_int_equal(winsrc_events_drain(ev, snap), 0);
    assert_true(snap->n_events <= 1);
    if (snap->n_events) {
        *total += snap->events[0]->count;
        if (snap->events[0]->first_ms < *first)
            *first = snap->events[0]->first_ms;
        if (snap->events[0]->last_ms > *last)
            *last = snap->events[0]->last_ms;
    }
    epw_snap_free(snap);
}

static void test_events_threads(void **state)
{
    winsrc_events_t *ev = NULL;
    uv_thread_t t[2];
    uint64_t total = 0;
    int64_t first = INT64_MAX, last = 0;
    int i;

    (void)state;
    assert_int_equal(winsrc_events_create(&ev), 0);
    for (i = 0; i < 2; i++)
        assert_int_equal(uv_thread_create(&t[i], adder, ev), 0);
    /* Drains race with the adders; the one after the joins collects whatever is left. */
    for (i = 0; i < 200; i++)
        drain_into(ev, &total, &first, &last);
    for (i = 0; i < 2; i++)
        assert_int_equal(uv_thread_join(&t[i]), 0);
    drain_into(ev, &total, &first, &last);
    assert_int_equal(total, 2 * EV_PER_THREAD);
    assert_int_equal(first, 1000);
    assert_int_equal(last, 1000 + EV_PER_THREAD - 1);
    winsrc_events_destroy(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_tcp4_rows),
        cmocka_unit_test(test_v6_and_udp_rows),
        cmocka_unit_test(test_bound_rows),
        cmocka_unit_test(test_bound_check),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_pid_attribution),
        cmocka_unit_test(test_range_wmi_first),
        cmocka_unit_test(test_range_netsh_second),
        cmocka_unit_test(test_range_default_last),
        cmocka_unit_test(test_range_mixed),
        cmocka_unit_test(test_range_partial),
        cmocka_unit_test(test_range_invalid),
        cmocka_unit_test(test_range_valid),
        cmocka_unit_test(test_filetime),
        cmocka_unit_test(test_events_count),
        cmocka_unit_test(test_events_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
