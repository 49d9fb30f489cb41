/* test_ingest: the collector's ingest server on a real loop, real TLS and real SQLite files. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector_conf.h"
#include "epw_err.h"
#include "epw_frame.h"
#include "epw_log.h"
#include "epw_testcerts.h"
#include "fake_agent.h"
#include "ingest.h"
#include "store.h"

static char certs[256];
static char dbdir[] = "/tmp/epw-ingest-XXXXXX";

/* One collector per test: loop, store, ingest. */
typedef struct fx_s {
    uv_loop_t loop;
    store_t *st;
    ingest_t *ig;
    epw_tls_config_t *tls;
    char db[300];
    uint16_t port;
    int closed;
} fx_t;

static const char *cpath(char *buf, size_t len, const char *name)
{
    return epw_testcerts_path(buf, len, certs, name);
}

static void on_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    fx_t *f = ud;

    (void)st;
    ingest_store_done(f->ig, r, n);
}

static void on_room(store_t *st, void *ud)
{
    fx_t *f = ud;

    (void)st;
    ingest_store_room(f->ig);
}

static int db_counter;
/* hello_ms for the next fx_start: generous, so that a loaded machine's stall between a client's
 * handshake and its Hello never turns into a hello timeout; test_hello_timeout shortens it. */
static uint64_t fx_hello_ms = 5000;

static void fx_start(fx_t *f, size_t queue_max, size_t max_conn, size_t max_frame)
{
    store_options_t so;
    ingest_opts_t io;
    char ca[300], crt[300], key[300];
    epw_tls_opts_t to;

    memset(f, 0, sizeof(*f));
    memset(&to, 0, sizeof(to));
    to.accept = EPW_TLS_PEER_AGENT; /* as epwatch-collector configures it */
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->db, sizeof(f->db), "%s/t%d.db", dbdir, ++db_counter);
    assert_int_equal(epw_tls_config_create(EPW_TLS_SERVER, cpath(ca, sizeof(ca), "ca.crt"),
                                           cpath(crt, sizeof(crt), "collector.crt"),
                                           cpath(key, sizeof(key), "collector.key"), &to, &f->tls),
                     0);
    memset(&so, 0, sizeof(so));
    so.target = f->db;
    so.queue_max = queue_max;
    so.relaxed_sync = 1; /* durability is the process test's business; keep this one fast */
    so.done_cb = on_done;
    so.room_cb = on_room;
    so.ud = f;
    assert_int_equal(store_open(&f->loop, &so, &f->st), 0);
    memset(&io, 0, sizeof(io));
    io.addr = "127.0.0.1";
    io.tls = f->tls;
    io.store = f->st;
    io.max_connections = max_conn;
    io.handshake_ms = 300;
    io.hello_ms = fx_hello_ms;
    io.max_frame = max_frame;
    assert_int_equal(ingest_start(&f->loop, &io, &f->ig), 0);
    f->port = ingest_port(f->ig);
    assert_true(f->port > 0);
}

static void on_ig_closed(void *ud)
{
    ((fx_t *)ud)->closed = 1;
}

static void fx_stop(fx_t *f)
{
    ingest_stop(f->ig);
    store_close(f->st, NULL, NULL);
    ingest_close(f->ig, on_ig_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    epw_tls_config_destroy(f->tls);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void agent_init(fx_t *f, fake_agent_t *a, const char *certname, const char *hello_host)
{
    char ca[300], crt[300], key[300], c1[64], k1[64];

    memset(a, 0, sizeof(*a));
    snprintf(c1, sizeof(c1), "%s.crt", certname);
    snprintf(k1, sizeof(k1), "%s.key", certname);
    assert_int_equal(fake_agent_init(a, &f->loop, cpath(ca, sizeof(ca), "ca.crt"),
                                     certname ? cpath(crt, sizeof(crt), c1) : NULL,
                                     certname ? cpath(key, sizeof(key), k1) : NULL),
                     0);
    a->hello_host = hello_host;
}

static uint64_t stored(fx_t *f, const char *host, uint64_t *last)
{
    store_reader_t *rd;
    uint64_t n = 0;

    assert_int_equal(store_reader_open(NULL, f->db, &rd), 0);
    assert_int_equal(store_reader_count(rd, host, &n), 0);
    *last = 0;
    store_reader_last_seq(rd, host, last);
    store_reader_close(rd);
    return n;
}

typedef struct acked_s {
    fake_agent_t *a;
    uint64_t want;
} acked_t;

static int is_acked(void *ud)
{
    acked_t *w = ud;
    return w->a->acked >= w->want;
}

static int wait_acked(fx_t *f, fake_agent_t *a, uint64_t want)
{
    acked_t w = {a, want};
    return run_until_fn(&f->loop, is_acked, &w, 20000);
}

/* ---- streaming ------------------------------------------------------------------------------ */

static void test_stream_n(void **state)
{
    fx_t f;
    fake_agent_t a;
    ingest_stats_t s;
    uint64_t last;

    (void)state;
    fx_start(&f, 0, 0, 0);
    agent_init(&f, &a, "host-a", "host-a");
    a.first = 1;
    a.last = 300;
    a.per_tick = 20;
    assert_int_equal(fake_agent_connect(&a, f.port), 0);
    assert_true(wait_acked(&f, &a, 300));
    assert_int_equal(a.reject, 0);
    assert_int_equal(a.hello_last_seq, 0);
    assert_int_equal(a.sent, 300);
    assert_int_equal(stored(&f, "host-a", &last), 300); /* seqs 1..300 sent, 300 rows */
    assert_int_equal(last, 300);
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.snapshots, 300);
    assert_int_equal(s.duplicates, 0);
    assert_int_equal(s.agents, 1);
    assert_true(s.acks >= 1);

    /* Reconnect: HelloAck reports what is stored; resending the same seqs stores nothing new
     * and is acknowledged. */
    fake_agent_close(&a);
    assert_true(run_until(&f.loop, &a.closed, 5000));
    a.acked = 0;
    a.sent = 0;
    a.first = 101;
    a.last = 200;
    a.per_tick = 0;
    assert_int_equal(fake_agent_connect(&a, f.port), 0);
    assert_true(wait_acked(&f, &a, 200));
    assert_int_equal(a.hello_last_seq, 300);
    assert_int_equal(a.acked, 200); /* the highest seq committed on this connection */
    assert_int_equal(stored(&f, "host-a", &last), 300);
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.snapshots, 300);
    assert_int_equal(s.duplicates, 100);

    fake_agent_close(&a);
    fake_agent_release(&a);
    fx_stop(&f);
}

static void test_gap_recorded(void **state)
{
    fx_t f;
    fake_agent_t a;
    ingest_stats_t s;
    uint64_t last;

    (void)state;
    fx_start(&f, 0, 0, 0);
    agent_init(&f, &a, "host-a", "HOST-A"); /* case-insensitive: Windows upper-cases names */
    a.first = 11;
    a.last = 20;
    a.dropped_before = 10;
    assert_int_equal(fake_agent_connect(&a, f.port), 0);
    assert_true(wait_acked(&f, &a, 20));
    assert_int_equal(stored(&f, "host-a", &last), 10);
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.gaps, 1);
    fake_agent_close(&a);
    fake_agent_release(&a);
    fx_stop(&f);
}

/* ---- rejects while another agent streams ---------------------------------------------------- */

typedef struct rej_case_s {
    const char *name;
    fx_t *f;
    ingest_fail_t fail; /* expected counter, or -1 with reject set */
    int reject;
} rej_case_t;

static uint64_t fail_count(fx_t *f, ingest_fail_t k)
{
    ingest_stats_t s;
    ingest_get_stats(f->ig, &s);
    return s.fails[k];
}

/* A frame shaped like Envelope{snapshot} whose snapshot bytes do not decode: ingest passes such
 * frames to the store undecoded (epw_frame_peek_snapshot), and the store's decode refuses it: the
 * connection is closed as a protocol failure and nothing is stored or acknowledged. */
static void test_undecodable_snapshot(void **state)
{
    static const uint8_t body[] = {0x1a, 0x05, 0xff, 0xff, 0xff, 0xff, 0x0f};
    uint8_t frame[EPW_FRAME_HDR + sizeof(body)];
    fx_t f;
    fake_agent_t a;
    ingest_stats_t s;
    uint64_t last, before;
    int never = 0;

    (void)state;
    fx_start(&f, 0, 0, 0);
    agent_init(&f, &a, "host-a", "host-a");
    a.first = 1;
    a.last = 3;
    assert_int_equal(fake_agent_connect(&a, f.port), 0);
    assert_true(wait_acked(&f, &a, 3));
    before = fail_count(&f, INGEST_FAIL_PROTO);
    epw_frame_put_header(frame, sizeof(body));
    memcpy(frame + EPW_FRAME_HDR, body, sizeof(body));
    assert_int_equal(epw_conn_send_raw(a.conn, frame, sizeof(frame)), 0);
    assert_true(run_until(&f.loop, &a.closed, 5000));
    while (fail_count(&f, INGEST_FAIL_PROTO) == before)
        run_until(&f.loop, &never, 20);
    assert_int_equal(fail_count(&f, INGEST_FAIL_PROTO), before + 1);
    assert_int_equal(stored(&f, "host-a", &last), 3);
    assert_int_equal(last, 3);
    assert_int_equal(a.acked, 3);
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.snapshots, 3);
    assert_int_equal(s.store_errors, 0);
    fake_agent_release(&a);
    fx_stop(&f);
}

static uint64_t reject_count(fx_t *f, int k)
{
    ingest_stats_t s;
    ingest_get_stats(f->ig, &s);
    return s.rejects[k];
}

/* Asserts that, since `before`, exactly the counter of `reason` (-1: none at all) went up by
 * one in fail_reasons. */
static void assert_one_reason(fx_t *f, const ingest_stats_t *before, int reason)
{
    ingest_stats_t s;
    int i;

    ingest_get_stats(f->ig, &s);
    for (i = 0; i < INGEST_REASON_COUNT; i++) {
        uint64_t want = before->fail_reasons[i] + (i == reason ? 1 : 0);
        if (s.fail_reasons[i] != want)
            fail_msg("reason %s: %llu, expected %llu (the case is %s)", ingest_reason_name(i),
                     (unsigned long long)s.fail_reasons[i], (unsigned long long)want,
                     reason < 0 ? "none" : ingest_reason_name(reason));
    }
}

/* A TLS agent with the given certificate that is refused during the handshake, counted under
 * `reason` alone. */
static void expect_tls_refused(fx_t *f, const char *cert, int reason)
{
    fake_agent_t a;
    uint64_t before = fail_count(f, INGEST_FAIL_TLS_VERIFY);
    ingest_stats_t s0;
    char ca[300], crt[300], key[300], c1[96], k1[96];

    ingest_get_stats(f->ig, &s0);
    memset(&a, 0, sizeof(a));
    if (cert != NULL) {
        snprintf(c1, sizeof(c1), "%s.crt", cert);
        snprintf(k1, sizeof(k1), "%s.key", cert);
    }
    assert_int_equal(fake_agent_init(&a, &f->loop, cpath(ca, sizeof(ca), "ca.crt"),
                                     cert ? cpath(crt, sizeof(crt), c1) : NULL,
                                     cert ? cpath(key, sizeof(key), k1) : NULL),
                     0);
    a.hello_host = "host-a";
    assert_int_equal(fake_agent_connect(&a, f->port), 0);
    assert_true(run_until(&f->loop, &a.closed, 5000));
    assert_false(a.got_hello_ack);
    fake_agent_release(&a);
    /* The server notices after the client gave up: wait for the counter. */
    while (fail_count(f, INGEST_FAIL_TLS_VERIFY) == before) {
        int never = 0;
        run_until(&f->loop, &never, 20);
    }
    assert_int_equal(fail_count(f, INGEST_FAIL_TLS_VERIFY), before + 1);
    assert_one_reason(f, &s0, reason);
}

static void expect_hello_reject(fx_t *f, const char *cert, const char *host, uint32_t version,
                                int reason)
{
    fake_agent_t a;
    uint64_t before = reject_count(f, reason);

    agent_init(f, &a, cert, host);
    a.version = version;
    assert_int_equal(fake_agent_connect(&a, f->port), 0);
    assert_true(run_until(&f->loop, &a.closed, 5000));
    assert_true(a.got_hello_ack);
    assert_int_equal(a.reject, reason);
    assert_int_equal(reject_count(f, reason), before + 1);
    fake_agent_release(&a);
}

/* reason: the fail_reasons counter expected to go up, -1 for failures after the handshake
 * (which count under `kind` only). */
static void expect_raw_fail(fx_t *f, epw_tls_config_t *tls, const uint8_t *data, size_t len,
                            ingest_fail_t kind, int reason)
{
    raw_client_t r;
    uint64_t before = fail_count(f, kind);
    ingest_stats_t s0;

    ingest_get_stats(f->ig, &s0);
    assert_int_equal(raw_client_start(&r, &f->loop, f->port, tls, data, len), 0);
    assert_true(run_until(&f->loop, &r.eof, 5000)); /* the server closed on us */
    assert_true(run_until(&f->loop, &r.closed, 5000));
    while (fail_count(f, kind) == before) {
        int never = 0;
        run_until(&f->loop, &never, 20);
    }
    assert_int_equal(fail_count(f, kind), before + 1);
    assert_one_reason(f, &s0, reason);
}

static void test_rejects_counted(void **state)
{
    fx_t f;
    fake_agent_t b, big;
    epw_tls_config_t *tls;
    const char *deny[] = {"host-revoked"};
    char ca[300], crt[300], key[300];
    uint8_t garbage[300], frame[16];
    const char plain[] = "GET / HTTP/1.1\r\nHost: collector\r\n\r\n";
    ingest_stats_t s;
    uint64_t last;
    size_t i;

    (void)state;
    fx_start(&f, 0, 0, 64 * 1024);
    assert_int_equal(ingest_set_deny(f.ig, deny, 1), 0);
    /* host-b streams through all of it. */
    agent_init(&f, &b, "host-b", "host-b");
    b.first = 1;
    b.last = 2000;
    b.per_tick = 2;
    assert_int_equal(fake_agent_connect(&b, f.port), 0);
    assert_true(run_until(&f.loop, &b.got_hello_ack, 5000));

    expect_tls_refused(&f, NULL, EPW_TLS_FAIL_NO_CERT);
    expect_tls_refused(&f, "other/host-a", EPW_TLS_FAIL_UNTRUSTED); /* another CA */
    expect_tls_refused(&f, "host-old", EPW_TLS_FAIL_EXPIRED);
    /* An operator certificate on the agent port. */
    expect_tls_refused(&f, "op1", EPW_TLS_FAIL_WRONG_ROLE);
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.denied_tls, 0);
    expect_tls_refused(&f, "host-revoked", EPW_TLS_FAIL_REVOKED); /* on the deny list */
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.denied_tls, 1);

    expect_hello_reject(&f, "host-a", "host-b", 0, EPW__REJECT_REASON__REJECT_BAD_IDENTITY);
    expect_hello_reject(&f, "host-a", "host-a", 99, EPW__REJECT_REASON__REJECT_UNSUPPORTED_VERSION);

    expect_raw_fail(&f, NULL, (const uint8_t *)plain, sizeof(plain) - 1, INGEST_FAIL_TLS,
                    EPW_TLS_FAIL_PROTOCOL);
    srand(7);
    for (i = 0; i < sizeof(garbage); i++)
        garbage[i] = (uint8_t)rand();
    garbage[0] = 0x16; /* looks like a handshake record, then nonsense */
    expect_raw_fail(&f, NULL, garbage, sizeof(garbage), INGEST_FAIL_TLS, EPW_TLS_FAIL_PROTOCOL);
    /* Connects, says nothing. */
    expect_raw_fail(&f, NULL, NULL, 0, INGEST_FAIL_TIMEOUT, EPW_TLS_FAIL_TIMEOUT);

    /* After a good handshake: a truncated protobuf, then a frame over the limit, then a
     * snapshot before any Hello. */
    assert_int_equal(epw_tls_config_create(EPW_TLS_CLIENT, cpath(ca, sizeof(ca), "ca.crt"),
                                           cpath(crt, sizeof(crt), "host-a.crt"),
                                           cpath(key, sizeof(key), "host-a.key"), NULL, &tls),
                     0);
    /* Envelope field 3 (snapshot), length 40, but only 8 bytes follow. */
    epw_frame_put_header(frame, 10);
    frame[4] = 0x1a;
    frame[5] = 40;
    memset(frame + 6, 0x08, 8);
    expect_raw_fail(&f, tls, frame, 14, INGEST_FAIL_PROTO, -1);
    epw_frame_put_header(frame, 1u << 20); /* announces 1 MiB against a 64 KiB limit */
    expect_raw_fail(&f, tls, frame, 4, INGEST_FAIL_PROTO, -1);
    epw_tls_config_destroy(tls);

    agent_init(&f, &big, "host-a", "host-a");
    big.no_hello = 1;
    assert_int_equal(fake_agent_connect(&big, f.port), 0);
    assert_true(run_until(&f.loop, &big.ready, 5000));
    {
        uint64_t before = fail_count(&f, INGEST_FAIL_PROTO);
        fake_agent_send(&big, 1, 0);
        assert_true(run_until(&f.loop, &big.closed, 5000));
        while (fail_count(&f, INGEST_FAIL_PROTO) == before) {
            int never = 0;
            run_until(&f.loop, &never, 20);
        }
    }
    fake_agent_release(&big);

    /* The streaming agent was never disturbed. */
    assert_false(b.closed);
    assert_true(wait_acked(&f, &b, 2000));
    assert_int_equal(stored(&f, "host-b", &last), 2000);
    assert_int_equal(stored(&f, "host-a", &last), 0);
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.fails[INGEST_FAIL_TLS_VERIFY], 5);
    assert_int_equal(s.fails[INGEST_FAIL_TLS], 2);
    assert_int_equal(s.fails[INGEST_FAIL_TIMEOUT], 1);
    assert_int_equal(s.fails[INGEST_FAIL_PROTO], 3);
    assert_int_equal(s.rejects[EPW__REJECT_REASON__REJECT_BAD_IDENTITY], 1);
    assert_int_equal(s.rejects[EPW__REJECT_REASON__REJECT_UNSUPPORTED_VERSION], 1);
    assert_int_equal(s.agents, 1);
    /* Each refusal under its own reason, nothing else. */
    for (i = 0; i < INGEST_REASON_COUNT; i++) {
        uint64_t want;
        switch (i) {
        case EPW_TLS_FAIL_NO_CERT:
        case EPW_TLS_FAIL_UNTRUSTED:
        case EPW_TLS_FAIL_EXPIRED:
        case EPW_TLS_FAIL_WRONG_ROLE:
        case EPW_TLS_FAIL_REVOKED:
        case EPW_TLS_FAIL_TIMEOUT:
            want = 1;
            break;
        case EPW_TLS_FAIL_PROTOCOL:
            want = 2; /* plaintext, garbage */
            break;
        default:
            want = 0;
            break;
        }
        if (s.fail_reasons[i] != want)
            fail_msg("reason %s counted %llu, expected %llu", ingest_reason_name((int)i),
                     (unsigned long long)s.fail_reasons[i], (unsigned long long)want);
    }
    assert_string_equal(ingest_reason_name(EPW_TLS_FAIL_EXPIRED), "expired");
    assert_string_equal(ingest_reason_name(INGEST_REASON_HELLO_TIMEOUT), "hello_timeout");

    fake_agent_close(&b);
    fake_agent_release(&b);
    fx_stop(&f);
}

/* TLS done, no Hello: closed after hello_ms (300 ms), not after idle_ms (none here); an agent
 * that said Hello is not affected. */
static void test_hello_timeout(void **state)
{
    fx_t f;
    fake_agent_t quiet, good;
    ingest_stats_t s;
    uint64_t t0, waited, last;

    (void)state;
    fx_hello_ms = 300;
    fx_start(&f, 0, 0, 0);
    fx_hello_ms = 5000;
    agent_init(&f, &good, "host-b", "host-b");
    assert_int_equal(fake_agent_connect(&good, f.port), 0);
    assert_true(run_until(&f.loop, &good.got_hello_ack, 5000));
    agent_init(&f, &quiet, "host-a", "host-a");
    quiet.no_hello = 1;
    t0 = uv_now(&f.loop); /* loop time: the server's handshake cannot end before this */
    assert_int_equal(fake_agent_connect(&quiet, f.port), 0);
    assert_true(run_until(&f.loop, &quiet.ready, 5000));
    assert_true(run_until(&f.loop, &quiet.closed, 5000));
    waited = uv_now(&f.loop) - t0;
    assert_true(waited >= 300); /* the timer, not an immediate refusal */
    ingest_get_stats(f.ig, &s);
    while (s.fail_reasons[INGEST_REASON_HELLO_TIMEOUT] == 0) { /* the server side may lag */
        int never = 0;
        run_until(&f.loop, &never, 20);
        ingest_get_stats(f.ig, &s);
    }
    assert_int_equal(s.fail_reasons[INGEST_REASON_HELLO_TIMEOUT], 1);
    assert_int_equal(s.fails[INGEST_FAIL_PROTO], 1);
    assert_int_equal(s.idle_closed, 0);
    assert_int_equal(s.connections, 1);
    /* Well past hello_ms, the identified agent still streams on the same connection. */
    assert_false(good.closed);
    fake_agent_stream(&good, 1, 5);
    assert_true(wait_acked(&f, &good, 5));
    assert_false(good.closed);
    assert_int_equal(stored(&f, "host-b", &last), 5);
    fake_agent_close(&good);
    fake_agent_release(&good);
    fake_agent_release(&quiet);
    fx_stop(&f);
}

static void test_oversize_snapshot(void **state)
{
    fx_t f;
    fake_agent_t a;

    (void)state;
    fx_start(&f, 0, 0, 16 * 1024);
    agent_init(&f, &a, "host-a", "host-a");
    a.first = 1;
    a.last = 1;
    a.pad = 40 * 1024;
    assert_int_equal(fake_agent_connect(&a, f.port), 0);
    assert_true(run_until(&f.loop, &a.closed, 5000));
    assert_int_equal(a.acked, 0);
    /* The server's on_close may run after the client saw the close. */
    {
        uint64_t t0 = uv_now(&f.loop);
        while (fail_count(&f, INGEST_FAIL_PROTO) == 0 && uv_now(&f.loop) - t0 < 5000) {
            int never = 0;
            run_until(&f.loop, &never, 20);
        }
    }
    assert_int_equal(fail_count(&f, INGEST_FAIL_PROTO), 1);
    fake_agent_release(&a);
    fx_stop(&f);
}

static void test_overloaded_and_revoked_live(void **state)
{
    fx_t f;
    fake_agent_t a, b;
    const char *deny[] = {"host-b"};
    ingest_stats_t s;

    (void)state;
    fx_start(&f, 0, 1, 0);
    agent_init(&f, &b, "host-b", "host-b");
    assert_int_equal(fake_agent_connect(&b, f.port), 0);
    assert_true(run_until(&f.loop, &b.got_hello_ack, 5000));
    expect_hello_reject(&f, "host-a", "host-a", 0, EPW__REJECT_REASON__REJECT_OVERLOADED);
    /* Revoking a connected identity closes it now. */
    assert_int_equal(ingest_set_deny(f.ig, deny, 1), 0);
    assert_true(ingest_is_denied(f.ig, "HOST-B"));
    assert_true(run_until(&f.loop, &b.closed, 5000));
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.rejects[EPW__REJECT_REASON__REJECT_REVOKED], 1);
    assert_int_equal(s.agents, 0);
    fake_agent_release(&b);
    fx_stop(&f);
    (void)a;
}

static void test_second_connection_replaces(void **state)
{
    fx_t f;
    fake_agent_t a1, a2;
    ingest_stats_t s;
    uint64_t last;

    (void)state;
    fx_start(&f, 0, 0, 0);
    agent_init(&f, &a1, "host-a", "host-a");
    a1.first = 1;
    a1.last = 10;
    assert_int_equal(fake_agent_connect(&a1, f.port), 0);
    assert_true(wait_acked(&f, &a1, 10));
    agent_init(&f, &a2, "host-a", "host-a");
    a2.first = 1;
    a2.last = 30;
    a2.resume = 1;
    assert_int_equal(fake_agent_connect(&a2, f.port), 0);
    assert_true(run_until(&f.loop, &a1.closed, 5000)); /* the old one is closed */
    assert_true(wait_acked(&f, &a2, 30));
    assert_int_equal(a2.hello_last_seq, 10);
    assert_int_equal(a2.sent, 20); /* resumed after last_seq */
    assert_false(a2.closed);
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.replaced, 1);
    assert_int_equal(s.agents, 1);
    assert_int_equal(stored(&f, "host-a", &last), 30);
    fake_agent_close(&a2);
    fake_agent_release(&a1);
    fake_agent_release(&a2);
    fx_stop(&f);
}

/* ---- backpressure --------------------------------------------------------------------------- */

typedef struct paused_s {
    fx_t *f;
} paused_t;

static int is_paused(void *ud)
{
    ingest_stats_t s;
    ingest_get_stats(((paused_t *)ud)->f->ig, &s);
    return s.paused > 0;
}

static void test_backpressure(void **state)
{
    fx_t f;
    fake_agent_t a, b;
    paused_t p = {&f};
    ingest_stats_t s;
    uint64_t last;

    (void)state;
    fx_start(&f, 4, 0, 0); /* a tiny store queue */
    agent_init(&f, &a, "host-a", "host-a");
    agent_init(&f, &b, "host-b", "host-b");
    assert_int_equal(fake_agent_connect(&a, f.port), 0);
    assert_int_equal(fake_agent_connect(&b, f.port), 0);
    assert_true(run_until(&f.loop, &a.got_hello_ack, 5000));
    assert_true(run_until(&f.loop, &b.got_hello_ack, 5000));
    store_set_paused(f.st, 1); /* the writer takes nothing: the queue fills up */
    fake_agent_stream(&a, 1, 500);
    fake_agent_stream(&b, 1, 500);
    assert_true(run_until_fn(&f.loop, is_paused, &p, 5000));
    /* While the writer is stopped nothing grows beyond the queue limit. */
    {
        int never = 0;
        run_until(&f.loop, &never, 100);
    }
    ingest_get_stats(f.ig, &s);
    assert_true(s.queue_depth <= 4);
    assert_true(s.paused >= 1);
    assert_int_equal(a.acked, 0);
    store_set_paused(f.st, 0);
    assert_true(wait_acked(&f, &a, 500));
    assert_true(wait_acked(&f, &b, 500));
    assert_int_equal(stored(&f, "host-a", &last), 500);
    assert_int_equal(last, 500);
    assert_int_equal(stored(&f, "host-b", &last), 500);
    ingest_get_stats(f.ig, &s);
    assert_true(s.store_full > 0);
    assert_int_equal(s.paused, 0);
    assert_int_equal(s.snapshots, 1000);
    fake_agent_close(&a);
    fake_agent_close(&b);
    fake_agent_release(&a);
    fake_agent_release(&b);
    fx_stop(&f);
}

/*
 * Fairness under sustained backpressure: the store takes one agent's envelope per turn, round
 * robin, so no agent waiting for room gets far ahead of another (before, the agent read first took
 * all the room each time the queue drained).
 */
typedef struct fair_s {
    fake_agent_t *ag;
    size_t n;
    uint64_t want;
} fair_t;

static int any_acked(void *ud)
{
    fair_t *w = ud;
    size_t i;

    for (i = 0; i < w->n; i++)
        if (w->ag[i].acked >= w->want)
            return 1;
    return 0;
}

static void test_backpressure_fair(void **state)
{
    static const char *const names[] = {"host-a", "host-b", "host-c", "host-d"};
    fake_agent_t ag[4];
    fx_t f;
    fair_t w = {ag, 4, 300};
    ingest_stats_t s;
    uint64_t last;
    size_t i;

    (void)state;
    fx_start(&f, 8, 0, 0);
    for (i = 0; i < 4; i++) {
        agent_init(&f, &ag[i], names[i], names[i]);
        assert_int_equal(fake_agent_connect(&ag[i], f.port), 0);
        assert_true(run_until(&f.loop, &ag[i].got_hello_ack, 5000));
    }
    store_set_paused(f.st, 1);
    for (i = 0; i < 4; i++)
        fake_agent_stream(&ag[i], 1, 1000);
    {
        int never = 0;
        run_until(&f.loop, &never, 200); /* every agent has sent and is waiting */
    }
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.paused, 4);
    store_set_paused(f.st, 0);
    /* When the first agent has 300 acknowledged, a fair share for the others is 300 too; the
     * store's batches and the 8-item queue allow a few turns of slack, never hundreds. */
    assert_true(run_until_fn(&f.loop, any_acked, &w, 20000));
    for (i = 0; i < 4; i++)
        assert_true(ag[i].acked >= 250);
    for (i = 0; i < 4; i++)
        assert_true(wait_acked(&f, &ag[i], 1000));
    for (i = 0; i < 4; i++) {
        assert_int_equal(stored(&f, names[i], &last), 1000);
        assert_int_equal(last, 1000);
    }
    ingest_get_stats(f.ig, &s);
    assert_int_equal(s.paused, 0);
    assert_int_equal(s.snapshots, 4000);
    for (i = 0; i < 4; i++) {
        fake_agent_close(&ag[i]);
        fake_agent_release(&ag[i]);
    }
    fx_stop(&f);
}

/* Graceful stop: everything submitted is committed and acknowledged before connections close. */
static void test_stop_acks_everything_accepted(void **state)
{
    fx_t f;
    fake_agent_t a;
    ingest_stats_t s;
    uint64_t last, n;

    (void)state;
    fx_start(&f, 0, 0, 0);
    agent_init(&f, &a, "host-a", "host-a");
    assert_int_equal(fake_agent_connect(&a, f.port), 0);
    assert_true(run_until(&f.loop, &a.got_hello_ack, 5000));
    store_set_paused(f.st, 1); /* results held back until the drain */
    fake_agent_stream(&a, 1, 50);
    {
        int never = 0;
        run_until(&f.loop, &never, 200);
    }
    assert_int_equal(a.acked, 0);
    ingest_stop(f.ig);
    store_close(f.st, NULL, NULL);
    ingest_get_stats(f.ig, &s);
    ingest_close(f.ig, on_ig_closed, &f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_true(f.closed);
    fake_agent_release(&a);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    epw_tls_config_destroy(f.tls);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    n = stored(&f, "host-a", &last);
    /* The agent received an Ack for every stored snapshot, and nothing beyond. */
    assert_true(a.closed);
    assert_true(last > 0);
    assert_int_equal(a.acked, last);
    assert_int_equal(n, last);
}

/* ---- config and deny files ------------------------------------------------------------------ */

static void test_deny_parse(void **state)
{
    const char good[] = "\xEF\xBB\xBF# revoked\nhost-1\r\n  host_2.example  \n\n; old\n";
    const char bad[] = "ok\nbad name\nx/y\n";
    epw_cfg_list_t l;
    char err[512] = "";

    (void)state;
    assert_int_equal(collector_deny_parse(good, sizeof(good) - 1, "deny", &l, err, sizeof(err)), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0], "host-1");
    assert_string_equal(l.items[1], "host_2.example");
    collector_deny_free(&l);
    assert_int_equal(collector_deny_parse(bad, sizeof(bad) - 1, "deny", &l, err, sizeof(err)),
                     EPW_E_CONFIG);
    assert_int_equal(l.count, 0);
    assert_non_null(strstr(err, "deny:2: invalid identity"));
    assert_non_null(strstr(err, "deny:3: invalid identity"));
}

static void test_conf_load(void **state)
{
    collector_conf_t c;
    char path[300], err[1024] = "";
    char a0[] = "epwatch-collector", a1[] = "--config", a3[] = "--max-connections", a4[] = "7",
         a5[] = "--print-config";
    char *argv[] = {a0, a1, path, a3, a4, a5, NULL};
    int argc = 6, rest;
    FILE *fp;

    (void)state;
    snprintf(path, sizeof(path), "%s/c.ini", dbdir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("listen = 127.0.0.1:9000\nca = /x/ca.crt\ncert = c\nkey = k\nretention = 7d\n"
          "max_connections = 5\ndeny = a, b\nidle_timeout = 0\n",
          fp);
    fclose(fp);
    memset(&c, 0, sizeof(c));
    assert_int_equal(collector_conf_load(&c, argc, argv, &rest, 1, err, sizeof(err)), 0);
    assert_string_equal(c.listen.host, "127.0.0.1");
    assert_int_equal(c.listen.port, 9000);
    assert_int_equal(c.retention_ms, 7ull * 86400000);
    assert_int_equal(c.max_connections, 7); /* the command line wins */
    assert_int_equal(c.deny.count, 2);
    assert_int_equal(c.idle_timeout_ms, 0);
    assert_string_equal(c.db, "/var/lib/epwatch/epwatch.db");
    assert_false(c.relaxed_sync);
    assert_int_equal(rest, 4); /* argv[0], --config FILE, --print-config are the program's */
    collector_conf_free(&c);

    /* Errors name file, line and key. */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("ca = a\ncert = b\nkey = c\nmax_connections = 0\n", fp);
    fclose(fp);
    argc = 3;
    argv[3] = NULL;
    memset(&c, 0, sizeof(c));
    assert_int_equal(collector_conf_load(&c, argc, argv, &rest, 1, err, sizeof(err)), EPW_E_CONFIG);
    assert_non_null(strstr(err, "c.ini:4: key 'max_connections'"));
    collector_conf_free(&c);
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    char cmd[1024];

    (void)state;
    epw_log_set_level(getenv("EPW_TEST_DEBUG") ? EPW_LOG_DEBUG : EPW_LOG_ERROR);
    if (epw_testcerts_make(certs, sizeof(certs)) != 0)
        return -1;
    /* More agent identities for the tests that need several. */
    snprintf(cmd, sizeof(cmd),
             "S='%s'; D='%s'; exec >/dev/null;"
             "$S agent $D host-b && $S agent $D host-c && $S agent $D host-d",
             EPW_CERTS_SCRIPT, certs);
    if (system(cmd) != 0)
        return -1;
    if (mkdtemp(dbdir) == NULL)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[600];

    (void)state;
    epw_testcerts_remove(certs);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dbdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deny_parse),
        cmocka_unit_test(test_conf_load),
        cmocka_unit_test(test_stream_n),
        cmocka_unit_test(test_gap_recorded),
        cmocka_unit_test(test_undecodable_snapshot),
        cmocka_unit_test(test_rejects_counted),
        cmocka_unit_test(test_hello_timeout),
        cmocka_unit_test(test_oversize_snapshot),
        cmocka_unit_test(test_overloaded_and_revoked_live),
        cmocka_unit_test(test_second_connection_replaces),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_backpressure_fair),
        cmocka_unit_test(test_stop_acks_everything_accepted),
    };
    signal(SIGPIPE, SIG_IGN); /* a peer closing on us must be an error code, not a signal */
    if (getenv("EPW_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("EPW_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
