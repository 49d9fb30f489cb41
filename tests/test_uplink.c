/* test_uplink: the uplink's pure parts (reject delays, backoff, seq bookkeeping, prepare) and its
 * spooling on a real loop while the collector is unreachable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_snap.h"
#include "spool.h"
#include "uplink.h"

#ifdef EPW_CERTS_SCRIPT
#include "epw_testcerts.h"
#endif

static const uint32_t rnds[] = {0u, 1u, 0x7FFFFFFFu, 0x80000000u, 0xDEADBEEFu, UINT32_MAX};
#define NRNDS (sizeof(rnds) / sizeof(rnds[0]))

static void assert_in(uint64_t v, uint64_t lo, uint64_t hi)
{
    if (v < lo || v > hi)
        fail_msg("%llu not in [%llu, %llu]", (unsigned long long)v, (unsigned long long)lo,
                 (unsigned long long)hi);
}

static void test_reject_delays(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NRNDS; i++) {
        uint32_t r = rnds[i];

        assert_int_equal(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_NONE, r), 0);
        assert_int_equal(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_BAD_IDENTITY, r),
                         3600000);
        assert_int_equal(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_REVOKED, r), 3600000);
        assert_int_equal(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_UNSUPPORTED_VERSION, r),
                         3600000);
        assert_in(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_OVERLOADED, r), 60000, 300000);
        assert_in(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_REPLACED, r), 10000, 15000);
        assert_in(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_SHUTTING_DOWN, r), 2000, 10000);
        assert_in(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_PROTOCOL_ERROR, r), 48000,
                  72000);
        /* A reason newer than this build. */
        assert_in(uplink_reject_delay_ms(99, r), 240000, 360000);
    }
    /* The jitter really spreads: the extremes of rnd reach the extremes of the range. */
    assert_int_equal(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_OVERLOADED, 0), 60000);
    assert_int_equal(uplink_reject_delay_ms(EPW__REJECT_REASON__REJECT_OVERLOADED, UINT32_MAX),
                     300000);
}

static void test_backoff(void **state)
{
    uplink_backoff_t b;
    uint64_t base = 1000, d;
    int i;

    (void)state;
    uplink_backoff_init(&b, 1000, 300000);
    /* Doubling from 1 s, capped at 5 min, each within +-20 %. */
    for (i = 0; i < 20; i++) {
        d = uplink_backoff_next(&b, rnds[(size_t)i % NRNDS]);
        assert_in(d, base - base / 5, base + base / 5);
        base = base * 2 > 300000 ? 300000 : base * 2;
    }
    /* Midpoint rnd gives (about) the base itself. */
    uplink_backoff_reset(&b);
    assert_in(uplink_backoff_next(&b, 0x80000000u), 999, 1001);
    assert_in(uplink_backoff_next(&b, 0x80000000u), 1999, 2001);
    assert_int_equal(uplink_backoff_next(&b, 0), 3200);
    assert_int_equal(uplink_backoff_next(&b, UINT32_MAX), 9600);
    /* Reset: back to the minimum. */
    uplink_backoff_reset(&b);
    assert_in(uplink_backoff_next(&b, 0xDEADBEEFu), 800, 1200);
    /* Defaults (0) are 1 s .. 5 min; never above 1.2 * max however long it fails. */
    uplink_backoff_init(&b, 0, 0);
    for (i = 0; i < 100; i++)
        d = uplink_backoff_next(&b, UINT32_MAX);
    assert_int_equal(d, 360000);
    /* A max below min is raised to min. */
    uplink_backoff_init(&b, 5000, 10);
    assert_in(uplink_backoff_next(&b, 0x80000000u), 4999, 5001);
    assert_in(uplink_backoff_next(&b, 0x80000000u), 4999, 5001);
}

static void test_seqs(void **state)
{
    uplink_seqs_t s = {0, 0, 0};

    (void)state;
    /* Spool opened with 1..10 stored, 1..3 acked before. */
    s.last = 10;
    s.acked = 3;
    assert_int_equal(uplink_seqs_on_hello_ack(&s, 5), 0);
    assert_int_equal(s.sent, 5);
    assert_int_equal(s.acked, 5);
    assert_true(uplink_seqs_want_send(&s));
    /* Acks: beyond what was sent is a protocol error; old ones are stale. */
    assert_int_equal(uplink_seqs_on_ack(&s, 6), EPW_E_PROTO);
    s.sent = 8;
    assert_int_equal(uplink_seqs_on_ack(&s, 4), 1);
    assert_int_equal(uplink_seqs_on_ack(&s, 5), 1);
    assert_int_equal(uplink_seqs_on_ack(&s, 7), 0);
    assert_int_equal(s.acked, 7);
    assert_int_equal(uplink_seqs_on_ack(&s, 8), 0);
    s.sent = 10;
    assert_false(uplink_seqs_want_send(&s));
    assert_int_equal(uplink_seqs_on_ack(&s, 10), 0);
    /* A collector that lost recent history (restored backup): resend from its last_seq; acked
     * does not go backwards. */
    assert_int_equal(uplink_seqs_on_hello_ack(&s, 2), 0);
    assert_int_equal(s.sent, 2);
    assert_int_equal(s.acked, 10);
    /* The spool was reset but the collector remembers more: the caller must skip seqs. */
    assert_int_equal(uplink_seqs_on_hello_ack(&s, 50), 1);
}

static uint8_t *pack(const Epw__Snapshot *s, size_t *len)
{
    uint8_t *buf;

    *len = epw__snapshot__get_packed_size(s);
    buf = malloc(*len + 1);
    assert_non_null(buf);
    epw__snapshot__pack(s, buf);
    return buf;
}

static void test_prepare(void **state)
{
    Epw__Snapshot *s = epw_snap_new(), *out = NULL;
    uint8_t *buf, junk[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
    size_t len;

    (void)state;
    assert_non_null(s);
    s->seq = 7;
    s->pressure_pct = 42.5;
    s->port_starved = 1;
    buf = pack(s, &len);
    assert_int_equal(uplink_prepare(buf, len, 7, 3, 5, &out), 0);
    assert_non_null(out);
    assert_int_equal(out->seq, 7);
    assert_int_equal(out->dropped_before, 3);
    assert_int_equal(out->spooled, 5);
    assert_int_equal(out->port_starved, 1);
    assert_true(out->pressure_pct == 42.5);
    epw_snap_free(out);
    /* The spool's seq and the packed one must agree. */
    assert_int_equal(uplink_prepare(buf, len, 8, 0, 0, &out), EPW_E_PROTO);
    assert_null(out);
    assert_int_equal(uplink_prepare(junk, sizeof(junk), 7, 0, 0, &out), EPW_E_PROTO);
    assert_null(out);
    free(buf);
    epw_snap_free(s);
}

#ifdef EPW_CERTS_SCRIPT
/* ---- on a loop: the collector is unreachable; everything lands in the spool ---------------- */

typedef struct run_s {
    uv_loop_t loop;
    uv_timer_t timer;
    uplink_t *u;
    int stopped;
    uplink_stats_t st;
} run_t;

static void run_stopped(uplink_t *u, void *ud)
{
    run_t *r = ud;

    uplink_get_stats(u, &r->st);
    r->stopped = 1;
}

static void run_timer(uv_timer_t *t)
{
    run_t *r = t->data;

    uplink_stop(r->u, 1000, run_stopped, r);
    uv_close((uv_handle_t *)t, NULL);
}

/* Starts an uplink towards a closed port, submits n snapshots, stops after `ms`. */
static void run_offline(const char *certs, const char *spool_dir, uint64_t spool_max, int n,
                        uint64_t ms, uplink_stats_t *st)
{
    char ca[512], cert[512], key[512];
    uplink_opts_t o;
    run_t r;
    int i;

    memset(&r, 0, sizeof(r));
    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = 9; /* discard: nothing listens on loopback in the test environment */
    o.server_name = "collector";
    o.ca = epw_testcerts_path(ca, sizeof(ca), certs, "ca.crt");
    o.cert = epw_testcerts_path(cert, sizeof(cert), certs, "host-a.crt");
    o.key = epw_testcerts_path(key, sizeof(key), certs, "host-a.key");
    o.identity = "host-a";
    o.spool_dir = spool_dir;
    o.spool_max = spool_max;
    o.interval_ms = 1000;
    o.backoff_min_ms = 100;
    o.backoff_max_ms = 200;
    assert_int_equal(uv_loop_init(&r.loop), 0);
    assert_int_equal(uplink_start(&r.loop, &o, &r.u), 0);
    for (i = 0; i < n; i++) {
        Epw__Snapshot **snaps = calloc(1, sizeof(*snaps));

        assert_non_null(snaps);
        snaps[0] = epw_snap_new();
        assert_non_null(snaps[0]);
        snaps[0]->pressure_pct = i;
        assert_int_equal(uplink_submit(r.u, snaps, 1), 0);
    }
    uv_timer_init(&r.loop, &r.timer);
    r.timer.data = &r;
    uv_timer_start(&r.timer, run_timer, ms, 0);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_true(r.stopped);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    *st = r.st;
}

static void test_offline_spooling(void **state)
{
    char certs[256], dir[300];
    uplink_stats_t st;
    spool_t *sp = NULL;
    spool_entry_t e;
    uint64_t after = 0, want = 1;

    (void)state;
    assert_int_equal(epw_testcerts_make(certs, sizeof(certs)), 0);
    snprintf(dir, sizeof(dir), "%s/spool", certs);

    /* First run: 3 snapshots, seqs 1..3, nothing acked; a few failed connects meanwhile. */
    run_offline(certs, dir, 1u << 20, 3, 400, &st);
    assert_int_equal(st.submitted, 3);
    assert_int_equal(st.spooled, 3);
    assert_int_equal(st.last_seq, 3);
    assert_int_equal(st.acked_seq, 0);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.port_starved, 0);

    /* Second run (a restart): seqs continue, the first three are still there. */
    run_offline(certs, dir, 1u << 20, 2, 100, &st);
    assert_int_equal(st.spooled, 2);
    assert_int_equal(st.last_seq, 5);

    assert_int_equal(spool_open(dir, 1u << 20, &sp), 0);
    while (spool_peek(sp, after, &e) == 0) {
        Epw__Snapshot *s = epw__snapshot__unpack(NULL, e.len, e.data);

        assert_int_equal(e.seq, want);
        assert_int_equal(e.dropped_before, 0);
        assert_non_null(s);
        assert_int_equal(s->seq, e.seq); /* the seq is inside the stored bytes */
        epw_snap_free(s);
        after = e.seq;
        want++;
        spool_entry_free(&e);
    }
    assert_int_equal(want, 6);
    spool_close(sp);
    epw_testcerts_remove(certs);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reject_delays),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_seqs),
        cmocka_unit_test(test_prepare),
#ifdef EPW_CERTS_SCRIPT
        cmocka_unit_test(test_offline_spooling),
#endif
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
