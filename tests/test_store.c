/* test_store: the history store on real SQLite files with a real libuv loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_util.h"
#include "store.h"

#define MAX_RES 2048
#define DAY_MS  86400000LL

typedef struct rec_s {
    store_result_t r;
    char identity[64];
} rec_t;

typedef struct fx_s {
    uv_loop_t loop;
    char dir[64];
    char path[128];
    store_t *st;
    rec_t res[MAX_RES];
    size_t nres;
    unsigned done_calls;
    unsigned rooms;
    int closed;
} fx_t;

static void on_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    fx_t *fx = ud;
    size_t i;

    assert_ptr_equal(st, fx->st);
    assert_true(n > 0);
    fx->done_calls++;
    for (i = 0; i < n; i++) {
        assert_true(fx->nres < MAX_RES);
        fx->res[fx->nres].r = r[i];
        snprintf(fx->res[fx->nres].identity, sizeof(fx->res[0].identity), "%s", r[i].identity);
        fx->res[fx->nres].r.identity = fx->res[fx->nres].identity;
        fx->nres++;
    }
}

static void on_room(store_t *st, void *ud)
{
    fx_t *fx = ud;

    assert_ptr_equal(st, fx->st);
    fx->rooms++;
}

static void on_closed(void *ud)
{
    ((fx_t *)ud)->closed = 1;
}

static fx_t *fx_new(void)
{
    fx_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/epw-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/history.db", fx->dir);
    return fx;
}

/* Opens the store on fx->path; `o` may be NULL for defaults. */
static void fx_open(fx_t *fx, const store_options_t *o)
{
    store_options_t opts;

    if (o)
        opts = *o;
    else
        memset(&opts, 0, sizeof(opts));
    opts.target = fx->path;
    opts.done_cb = on_done;
    opts.room_cb = on_room;
    opts.ud = fx;
    fx->nres = 0;
    fx->done_calls = 0;
    fx->rooms = 0;
    fx->closed = 0;
    assert_int_equal(store_open(&fx->loop, &opts, &fx->st), 0);
    assert_non_null(fx->st);
}

static void fx_wait(fx_t *fx, size_t n)
{
    while (fx->nres < n)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->nres, n);
}

static void fx_close(fx_t *fx)
{
    store_close(fx->st, on_closed, fx);
    while (!fx->closed)
        uv_run(&fx->loop, UV_RUN_ONCE);
    fx->st = NULL;
}

static void fx_free(fx_t *fx)
{
    char p[160];

    if (fx->st)
        fx_close(fx);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    unlink(fx->path);
    snprintf(p, sizeof(p), "%s-wal", fx->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", fx->path);
    unlink(p);
    assert_int_equal(rmdir(fx->dir), 0);
    free(fx);
}

static store_reader_t *fx_reader(fx_t *fx)
{
    store_reader_t *rd = NULL;

    assert_int_equal(store_reader_open(NULL, fx->path, &rd), 0);
    return rd;
}

/* Encodes a snapshot with known summary figures; *len set, buffer malloc'd. */
static uint8_t *make_snap(uint64_t seq, int64_t taken_at, double pct, const char *netns,
                          size_t *len)
{
    Epw__Snapshot s;
    Epw__HostUsage tcp, udp, *hosts[2] = {&tcp, &udp};
    Epw__DestinationUsage d1, d2, *dests[2] = {&d1, &d2};
    Epw__ProcessUsage p1, p2, p3, *procs[3] = {&p1, &p2, &p3};
    char host[] = "web1", src[] = "host tcp", ns[32], l[] = "10.0.0.5", r1[] = "10.0.0.9",
         r2[] = "fd00::1", n1[] = "nginx", n2[] = "java", n3[] = "";
    uint8_t *buf;

    snprintf(ns, sizeof(ns), "%s", netns);
    epw__snapshot__init(&s);
    epw__host_usage__init(&tcp);
    epw__host_usage__init(&udp);
    epw__destination_usage__init(&d1);
    epw__destination_usage__init(&d2);
    epw__process_usage__init(&p1);
    epw__process_usage__init(&p2);
    epw__process_usage__init(&p3);
    s.seq = seq;
    s.taken_at_ms = taken_at;
    s.hostname = host;
    s.platform = EPW__PLATFORM__LINUX;
    s.netns = ns;
    s.pressure_pct = pct;
    s.pressure_source = src;
    tcp.protocol = EPW__PROTOCOL__TCP;
    tcp.ports_in_use = 1200;
    tcp.max_ports = 28232;
    udp.protocol = EPW__PROTOCOL__UDP;
    udp.ports_in_use = 7;
    udp.max_ports = 28232;
    s.host = hosts;
    s.n_host = 2;
    d1.local_address = l;
    d1.remote_address = r1;
    d1.remote_port = 443;
    d1.protocol = EPW__PROTOCOL__TCP;
    d1.connections = 900;
    d1.usage_pct = 3.2;
    d2.local_address = l;
    d2.remote_address = r2;
    d2.remote_port = 5432;
    d2.protocol = EPW__PROTOCOL__TCP;
    d2.connections = 300;
    d2.usage_pct = 40.5;
    s.destinations = dests;
    s.n_destinations = 2;
    p1.pid = 10;
    p1.name = n1;
    p1.ports = 50;
    p2.pid = 20;
    p2.name = n2;
    p2.ports = 700;
    p3.other = 1;
    p3.name = n3;
    p3.ports = 5000;
    s.top_processes = procs;
    s.n_top_processes = 3;
    s.exclusive_ports = 42;
    s.kernel_ports = 3;
    s.total_sockets = 1500;
    s.port_starved = seq % 2;
    *len = epw__snapshot__get_packed_size(&s);
    buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(epw__snapshot__pack(&s, buf), *len);
    return buf;
}

static void submit_snap(fx_t *fx, uint64_t tag, uint64_t seq, int64_t taken_at, double pct,
                        const char *netns)
{
    size_t len;
    uint8_t *b = make_snap(seq, taken_at, pct, netns, &len);

    assert_int_equal(store_submit_snapshot(fx->st, tag, "web1", b, len), 0);
    free(b);
}

static void submit_hello(fx_t *fx, uint64_t tag)
{
    store_hello_t h = {.identity = "web1",
                       .agent_version = "0.1.0",
                       .os = "Linux 6.1.0",
                       .platform = EPW__PLATFORM__LINUX,
                       .interval_ms = 10000};

    assert_int_equal(store_submit_hello(fx->st, tag, &h), 0);
}

static void test_store_and_read_back(void **state)
{
    const int N = 100;
    int64_t t0 = epw_now_ms() - 1000000;
    fx_t *fx = fx_new();
    store_reader_t *rd;
    store_host_list_t *hl = NULL;
    store_blob_t blob;
    Epw__Snapshot *snap;
    uint64_t v;
    int i;

    (void)state;
    fx_open(fx, NULL);
    submit_hello(fx, 7);
    for (i = 1; i <= N; i++)
        submit_snap(fx, 7, (uint64_t)i, t0 + i * 1000, i * 0.5, "");
    fx_wait(fx, (size_t)N + 1);
    assert_int_equal(fx->res[0].r.op, STORE_OP_HELLO);
    assert_int_equal(fx->res[0].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[0].r.last_seq, 0);
    for (i = 1; i <= N; i++) {
        assert_int_equal(fx->res[i].r.op, STORE_OP_SNAPSHOT);
        assert_int_equal(fx->res[i].r.outcome, STORE_NEW);
        assert_int_equal(fx->res[i].r.err, 0);
        assert_int_equal(fx->res[i].r.seq, (uint64_t)i);
        assert_int_equal(fx->res[i].r.tag, 7);
        assert_string_equal(fx->res[i].identity, "web1");
    }

    rd = fx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, (uint64_t)N);
    assert_int_equal(store_reader_count(rd, "nobody", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(store_reader_last_seq(rd, "web1", &v), 0);
    assert_int_equal(v, (uint64_t)N);
    assert_int_equal(store_reader_last_seq(rd, "nobody", &v), EPW_E_NOTFOUND);

    assert_int_equal(store_reader_hosts(rd, &hl), 0);
    assert_int_equal(hl->n, 1);
    assert_string_equal(hl->hosts[0].identity, "web1");
    assert_string_equal(hl->hosts[0].agent_version, "0.1.0");
    assert_string_equal(hl->hosts[0].os, "Linux 6.1.0");
    assert_string_equal(hl->hosts[0].platform, "linux");
    assert_int_equal(hl->hosts[0].interval_ms, 10000);
    assert_int_equal(hl->hosts[0].last_seq, (uint64_t)N);
    assert_true(hl->hosts[0].has_latest);
    assert_int_equal(hl->hosts[0].latest.seq, (uint64_t)N);
    assert_int_equal(hl->hosts[0].latest.taken_at_ms, t0 + N * 1000);
    assert_true(hl->hosts[0].latest.pressure_pct == N * 0.5);
    assert_string_equal(hl->hosts[0].latest.pressure_source, "host tcp");
    assert_string_equal(hl->hosts[0].latest.netns, "");
    assert_int_equal(hl->hosts[0].latest.tcp_in_use, 1200);
    assert_int_equal(hl->hosts[0].latest.tcp_max, 28232);
    assert_int_equal(hl->hosts[0].latest.udp_in_use, 7);
    assert_int_equal(hl->hosts[0].latest.exclusive_ports, 42);
    assert_int_equal(hl->hosts[0].latest.kernel_ports, 3);
    assert_int_equal(hl->hosts[0].latest.total_sockets, 1500);
    /* Worst destination is the one with the highest usage, not the most connections. */
    assert_string_equal(hl->hosts[0].latest.worst_dest, "10.0.0.5 -> [fd00::1]:5432/tcp");
    assert_int_equal(hl->hosts[0].latest.worst_dest_conns, 300);
    /* The "other" bucket is never the top process. */
    assert_int_equal(hl->hosts[0].latest.top_pid, 20);
    assert_string_equal(hl->hosts[0].latest.top_name, "java");
    assert_int_equal(hl->hosts[0].latest.top_ports, 700);
    assert_int_equal(hl->hosts[0].latest.port_starved, N % 2);
    store_host_list_free(hl);

    /* The latest at or before t, with the full blob. */
    assert_int_equal(store_reader_snapshot_at(rd, "web1", NULL, t0 + 50500, &blob), 0);
    assert_int_equal(blob.seq, 50);
    assert_int_equal(blob.taken_at_ms, t0 + 50000);
    snap = epw__snapshot__unpack(NULL, blob.len, blob.data);
    assert_non_null(snap);
    assert_int_equal(snap->seq, 50);
    assert_int_equal(snap->n_destinations, 2);
    epw__snapshot__free_unpacked(snap, NULL);
    free(blob.data);
    assert_int_equal(store_reader_snapshot_at(rd, "web1", NULL, t0, &blob), EPW_E_NOTFOUND);
    assert_null(blob.data);
    assert_int_equal(store_reader_snapshot_at(rd, "web1", "other", t0 + 50500, &blob),
                     EPW_E_NOTFOUND);
    store_reader_close(rd);
    fx_free(fx);
}

static void test_duplicates(void **state)
{
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    store_reader_t *rd;
    uint64_t v;

    (void)state;
    fx_open(fx, NULL);
    store_set_paused(fx->st, 1); /* one batch: the duplicate is inside the same transaction */
    submit_snap(fx, 1, 1, t, 1.0, "");
    submit_snap(fx, 1, 2, t + 1, 1.0, "");
    submit_snap(fx, 1, 1, t, 1.0, "");
    store_set_paused(fx->st, 0);
    fx_wait(fx, 3);
    submit_snap(fx, 2, 2, t + 1, 1.0, "");     /* a resend in a later transaction */
    submit_snap(fx, 2, 2, t + 1, 1.0, "ns-a"); /* same seq, another namespace: a new row */
    fx_wait(fx, 5);
    assert_int_equal(fx->res[0].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[2].r.outcome, STORE_DUPLICATE);
    assert_int_equal(fx->res[2].r.seq, 1);
    assert_int_equal(fx->res[3].r.outcome, STORE_DUPLICATE);
    assert_int_equal(fx->res[3].r.seq, 2);
    assert_int_equal(fx->res[4].r.outcome, STORE_NEW);
    rd = fx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 3);
    store_reader_close(rd);
    fx_free(fx);
}

static void test_batching(void **state)
{
    store_options_t o = {.batch_max = 100};
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    store_stats_t stats;
    int i;

    (void)state;
    fx_open(fx, &o);
    store_set_paused(fx->st, 1);
    for (i = 1; i <= 300; i++)
        submit_snap(fx, (uint64_t)i, (uint64_t)i, t + i, 2.0, "");
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.queue_depth, 300);
    {
        /* Counted: each encoded snapshot and its decoded copy (at least the message struct). */
        size_t len;
        free(make_snap(1, t, 2.0, "", &len));
        assert_true(stats.queue_bytes >= 300 * (len + sizeof(Epw__Snapshot)));
    }
    assert_int_equal(stats.transactions, 0);
    store_set_paused(fx->st, 0);
    fx_wait(fx, 300);
    for (i = 0; i < 300; i++) {
        assert_int_equal(fx->res[i].r.seq, (uint64_t)i + 1);
        assert_int_equal(fx->res[i].r.tag, (uint64_t)i + 1);
    }
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.transactions, 3); /* 300 items, batch_max 100 */
    assert_int_equal(stats.items, 300);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(stats.queue_depth, 0);
    assert_int_equal(stats.queue_bytes, 0);
    assert_true(stats.last_commit_us > 0);
    assert_true(fx->done_calls <= 3);
    fx_free(fx);
}

static void test_backpressure(void **state)
{
    store_options_t o = {.queue_max = 8};
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    size_t len;
    uint8_t *b;
    int i;

    (void)state;
    fx_open(fx, &o);
    store_set_paused(fx->st, 1);
    for (i = 1; i <= 8; i++)
        submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    b = make_snap(9, t + 9, 1.0, "", &len);
    assert_int_equal(store_submit_snapshot(fx->st, 0, "web1", b, len), EPW_E_AGAIN);
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 3, 1), EPW_E_AGAIN);
    assert_int_equal(fx->rooms, 0);
    store_set_paused(fx->st, 0);
    while (!fx->rooms)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->rooms, 1);
    /* Room is reported once the writer has taken the queue, before its commit finishes: the
     * next batch can fill meanwhile. Results still come in submission order. */
    assert_int_equal(store_submit_snapshot(fx->st, 0, "web1", b, len), 0);
    fx_wait(fx, 9);
    assert_int_equal(fx->res[8].r.seq, 9);
    assert_int_equal(fx->res[8].r.outcome, STORE_NEW);
    assert_int_equal(fx->rooms, 1); /* once per full episode */
    free(b);
    fx_free(fx);
}

static void test_close_drains_and_reopen(void **state)
{
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    store_reader_t *rd;
    uint64_t v;
    int i;

    (void)state;
    fx_open(fx, NULL);
    submit_hello(fx, 0);
    store_set_paused(fx->st, 1); /* still queued when close starts */
    for (i = 1; i <= 50; i++)
        submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 50, 4), 0);
    store_close(fx->st, on_closed, fx);
    /* Every accepted item was committed and reported before store_close returned. */
    assert_int_equal(fx->nres, 52);
    assert_int_equal(fx->res[50].r.seq, 50);
    assert_int_equal(fx->res[50].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[51].r.op, STORE_OP_GAP);
    assert_int_equal(fx->closed, 0); /* memory is released from the close callback */
    while (!fx->closed)
        uv_run(&fx->loop, UV_RUN_ONCE);
    fx->st = NULL;

    fx_open(fx, NULL);
    submit_hello(fx, 0);
    fx_wait(fx, 1);
    assert_int_equal(fx->res[0].r.last_seq, 50);
    rd = fx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 50);
    store_reader_close(rd);
    fx_free(fx);
}

static void test_retention(void **state)
{
    store_options_t o = {.retention_chunk = 2}; /* several chunks per purge */
    int64_t now = epw_now_ms();
    fx_t *fx = fx_new();
    store_reader_t *rd;
    store_blob_t blob;
    store_stats_t stats;
    uint64_t v;
    int i;

    (void)state;
    fx_open(fx, &o);
    for (i = 1; i <= 5; i++)
        submit_snap(fx, 0, (uint64_t)i, now - 10 * DAY_MS + i, 1.0, "");
    for (i = 6; i <= 10; i++)
        submit_snap(fx, 0, (uint64_t)i, now - 1000 + i, 1.0, "");
    assert_int_equal(store_submit_purge(fx->st, 99, now - DAY_MS), 0);
    fx_wait(fx, 11);
    assert_int_equal(fx->res[10].r.op, STORE_OP_PURGE);
    assert_int_equal(fx->res[10].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[10].r.tag, 99);
    assert_int_equal(fx->res[10].r.count, 5);
    rd = fx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(store_reader_snapshot_at(rd, "web1", NULL, now - 5 * DAY_MS, &blob),
                     EPW_E_NOTFOUND);
    assert_int_equal(store_reader_last_seq(rd, "web1", &v), 0); /* survives retention */
    assert_int_equal(v, 10);

    /* The periodic pass: put old rows back, reopen with a retention period. */
    for (i = 1; i <= 3; i++)
        submit_snap(fx, 0, (uint64_t)i, now - 10 * DAY_MS + i, 1.0, "");
    fx_wait(fx, 14);
    fx_close(fx);
    o.retention_ms = DAY_MS;
    o.retention_chunk = 100;
    fx_open(fx, &o);
    /* The first pass starts at open; its chunk is done before the writer reports any later
     * batch (it runs before this hello's batch or in the same writer round, before the
     * results are posted). */
    submit_hello(fx, 0);
    fx_wait(fx, 1);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.purged, 3);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 5);
    store_reader_close(rd);
    fx_free(fx);
}

static void test_gaps(void **state)
{
    fx_t *fx = fx_new();
    store_reader_t *rd;
    store_host_list_t *hl;

    (void)state;
    fx_open(fx, NULL);
    submit_hello(fx, 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 10, 3), 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 10, 3), 0); /* reported twice */
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 20, 2), 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "", 20, 2), UV_EINVAL);
    fx_wait(fx, 4);
    assert_int_equal(fx->res[1].r.op, STORE_OP_GAP);
    assert_int_equal(fx->res[1].r.seq, 10);
    assert_int_equal(fx->res[1].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[2].r.outcome, STORE_DUPLICATE);
    assert_int_equal(fx->res[3].r.outcome, STORE_NEW);
    assert_int_equal(store_reader_open_for(fx->st, &rd), 0);
    assert_int_equal(store_reader_hosts(rd, &hl), 0);
    assert_int_equal(hl->n, 1);
    assert_int_equal(hl->hosts[0].gaps, 2);
    assert_int_equal(hl->hosts[0].dropped, 5);
    assert_false(hl->hosts[0].has_latest);
    store_host_list_free(hl);
    store_reader_close(rd);
    fx_free(fx);
}

/* A snapshot re-encoded with dropped_before and, when `pad` > 0, a note of that many bytes. */
static void submit_snap_ex(fx_t *fx, uint64_t seq, int64_t taken_at, uint64_t dropped, size_t pad)
{
    size_t len, n;
    uint8_t *b = make_snap(seq, taken_at, 1.0, "", &len), *out;
    Epw__Snapshot *s = epw__snapshot__unpack(NULL, len, b);
    char *note = NULL, **notes_was;
    size_t n_notes_was;

    assert_non_null(s);
    s->dropped_before = dropped;
    notes_was = s->notes;
    n_notes_was = s->n_notes;
    if (pad) {
        note = malloc(pad + 1);
        assert_non_null(note);
        memset(note, 'x', pad);
        note[pad] = '\0';
        s->notes = &note;
        s->n_notes = 1;
    }
    n = epw__snapshot__get_packed_size(s);
    out = malloc(n);
    assert_non_null(out);
    assert_int_equal(epw__snapshot__pack(s, out), n);
    assert_int_equal(store_submit_snapshot(fx->st, 0, "web1", out, n), 0);
    s->notes = notes_was;
    s->n_notes = n_notes_was;
    epw__snapshot__free_unpacked(s, NULL);
    free(note);
    free(out);
    free(b);
}

/* A snapshot that reports lost predecessors records the gap with it, once. */
static void test_gap_from_snapshot(void **state)
{
    int64_t t = 1700000000000LL;
    fx_t *fx = fx_new();
    store_reader_t *rd;
    store_host_list_t *hl;

    (void)state;
    fx_open(fx, NULL);
    submit_snap_ex(fx, 1, t, 0, 0);
    submit_snap_ex(fx, 5, t + 4000, 3, 0); /* 2, 3, 4 lost on the agent */
    submit_snap_ex(fx, 5, t + 4000, 3, 0); /* resent after a reconnect */
    fx_wait(fx, 3);
    assert_int_equal(fx->res[0].r.gap_new, 0);
    assert_int_equal(fx->res[1].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.gap_new, 1);
    assert_int_equal(fx->res[2].r.outcome, STORE_DUPLICATE);
    assert_int_equal(fx->res[2].r.gap_new, 0);
    rd = fx_reader(fx);
    assert_int_equal(store_reader_hosts(rd, &hl), 0);
    assert_int_equal(hl->n, 1);
    assert_int_equal(hl->hosts[0].gaps, 1);
    assert_int_equal(hl->hosts[0].dropped, 3);
    assert_int_equal(hl->hosts[0].last_seq, 5);
    store_host_list_free(hl);
    store_reader_close(rd);
    fx_free(fx);
}

static long long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    long long n = -1;

    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (f)
        fclose(f);
    return n;
}

/* SQLite's own auto-checkpoint is replaced by the background checkpointer: with the store open
 * and idle after ~24 MiB of WAL, the pages must reach the database file. */
static void test_background_checkpoint(void **state)
{
    int64_t t = 1700000000000LL;
    fx_t *fx = fx_new();
    long long db_size = 0;
    uint64_t seq = 1;
    int round, i, waited;

    (void)state;
    fx_open(fx, NULL);
    for (round = 0; round < 6; round++) {
        fx->nres = 0;
        for (i = 0; i < 1000; i++, seq++)
            submit_snap_ex(fx, seq, t + (int64_t)seq * 1000, 0, 4000);
        fx_wait(fx, 1000);
        assert_int_equal(fx->res[999].r.outcome, STORE_NEW);
    }
    /* Bounded: the checkpointer copies ~24 MiB; 20 s is far more than it needs. */
    for (waited = 0; waited < 2000; waited++) {
        db_size = file_size(fx->path);
        if (db_size > 16ll << 20)
            break;
        uv_sleep(10);
    }
    assert_true(db_size > 16ll << 20);
    fx_free(fx);
}

static void test_history(void **state)
{
    const int64_t base = 1700000000000LL; /* a multiple of the 5 s step */
    fx_t *fx = fx_new();
    store_reader_t *rd;
    store_point_t *p;
    size_t n;
    int i;

    (void)state;
    fx_open(fx, NULL);
    for (i = 0; i < 20; i++)
        submit_snap(fx, 0, (uint64_t)i + 1, base + i * 1000, (double)i, "");
    submit_snap(fx, 0, 100, base + 2000, 90.0, "ns-b"); /* another namespace: max counts it */
    fx_wait(fx, 21);
    rd = fx_reader(fx);
    assert_int_equal(store_reader_history(rd, "web1", base + 2000, base + 17000, 5000, &p, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(p[0].bucket_ms, base);
    assert_int_equal(p[0].samples, 4); /* i = 2, 3, 4 and the ns-b row */
    assert_true(p[0].max_pct == 90.0);
    assert_true(p[0].avg_pct == (2.0 + 3 + 4 + 90) / 4);
    assert_int_equal(p[1].bucket_ms, base + 5000);
    assert_int_equal(p[1].samples, 5);
    assert_true(p[1].max_pct == 9.0);
    assert_true(p[1].avg_pct == 7.0);
    assert_int_equal(p[2].bucket_ms, base + 10000);
    assert_true(p[2].max_pct == 14.0);
    assert_true(p[2].avg_pct == 12.0);
    assert_int_equal(p[3].bucket_ms, base + 15000);
    assert_int_equal(p[3].samples, 2); /* i = 15, 16: `to` is exclusive */
    assert_true(p[3].max_pct == 16.0);
    assert_true(p[3].avg_pct == 15.5);
    free(p);
    assert_int_equal(store_reader_history(rd, "web1", base - 100000, base - 1, 1000, &p, &n), 0);
    assert_int_equal(n, 0);
    assert_null(p);
    assert_int_equal(store_reader_history(rd, "web1", base, base + 1000, 0, &p, &n), UV_EINVAL);
    assert_int_equal(store_reader_history(rd, "web1", base, base + 1000000000, 1, &p, &n),
                     EPW_E_TOOBIG);
    store_reader_close(rd);
    fx_free(fx);
}

/* Runs SQL on the file directly (outside the store); returns the first column of the first row
 * as an integer, or -1 when there is none. */
static int64_t sql_num(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* 1 when a step of the query's plan mentions `needle`. */
static int plan_has(const char *path, const char *sql, const char *needle)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char q[1024];
    int found = 0;

    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW)
        if (strstr((const char *)sqlite3_column_text(s, 3), needle) != NULL)
            found = 1;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return found;
}

/* The fleet table's latest seq for web1 (-1: none); also checks that its summary is the one of
 * that snapshot as submit_snap made it (pressure = seq, netns "ns-b" for seq 4 only). */
static int64_t latest_seq(fx_t *fx)
{
    store_reader_t *rd = fx_reader(fx);
    store_host_list_t *hl = NULL;
    int64_t seq = -1;

    assert_int_equal(store_reader_hosts(rd, &hl), 0);
    assert_int_equal(hl->n, 1);
    if (hl->hosts[0].has_latest) {
        const store_summary_t *l = &hl->hosts[0].latest;
        seq = (int64_t)l->seq;
        assert_true(l->pressure_pct == (double)seq);
        assert_string_equal(l->netns, seq == 4 ? "ns-b" : "");
        assert_string_equal(l->worst_dest, "10.0.0.5 -> [fd00::1]:5432/tcp");
        assert_int_equal(l->top_pid, 20);
        assert_string_equal(l->top_name, "java");
        assert_int_equal(l->exclusive_ports, 42);
    }
    store_host_list_free(hl);
    store_reader_close(rd);
    return seq;
}

/*
 * Schema versions 3 and 4 (issue 6): hosts keeps its latest snapshot (by taken_at, not by arrival)
 * with its summary columns, a version 2 database is migrated (latest and its summary filled in,
 * the history index made covering), the fleet table reads hosts alone, and retention clears a
 * latest it removed.
 */
static void test_latest_and_migration(void **state)
{
    const int64_t base = 1700000000000LL;
    store_options_t o = {.batch_max = 1};
    fx_t *fx = fx_new();
    sqlite3 *db = NULL;

    (void)state;
    fx_open(fx, &o);
    submit_snap(fx, 0, 1, base + 1000, 1.0, "");
    submit_snap(fx, 0, 2, base + 3000, 2.0, "");
    submit_snap(fx, 0, 3, base + 2000, 3.0, "");     /* arrives last, taken before seq 2 */
    submit_snap(fx, 0, 4, base + 3000, 4.0, "ns-b"); /* same taken_at: the last stored wins */
    fx_wait(fx, 4);
    assert_int_equal(latest_seq(fx), 4);
    fx_close(fx);

    /* Back to version 2 as the previous build left it, then reopen. */
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP INDEX snapshots_host_time;"
                                  "CREATE INDEX snapshots_host_time ON snapshots(host, taken_at);"
                                  "ALTER TABLE hosts DROP COLUMN latest_id;"
                                  "ALTER TABLE hosts DROP COLUMN latest_taken_at;"
                                  "ALTER TABLE hosts DROP COLUMN latest_seq;"
                                  "ALTER TABLE hosts DROP COLUMN latest_netns;"
                                  "ALTER TABLE hosts DROP COLUMN latest_pressure_pct;"
                                  "ALTER TABLE hosts DROP COLUMN latest_pressure_source;"
                                  "ALTER TABLE hosts DROP COLUMN latest_tcp_in_use;"
                                  "ALTER TABLE hosts DROP COLUMN latest_tcp_max;"
                                  "ALTER TABLE hosts DROP COLUMN latest_udp_in_use;"
                                  "ALTER TABLE hosts DROP COLUMN latest_udp_max;"
                                  "ALTER TABLE hosts DROP COLUMN latest_exclusive_ports;"
                                  "ALTER TABLE hosts DROP COLUMN latest_kernel_ports;"
                                  "ALTER TABLE hosts DROP COLUMN latest_total_sockets;"
                                  "ALTER TABLE hosts DROP COLUMN latest_worst_dest;"
                                  "ALTER TABLE hosts DROP COLUMN latest_worst_dest_conns;"
                                  "ALTER TABLE hosts DROP COLUMN latest_top_pid;"
                                  "ALTER TABLE hosts DROP COLUMN latest_top_name;"
                                  "ALTER TABLE hosts DROP COLUMN latest_top_ports;"
                                  "ALTER TABLE hosts DROP COLUMN latest_port_starved;"
                                  "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    fx_open(fx, &o);
    assert_int_equal(sql_num(fx->path, "SELECT value FROM meta WHERE key = 'schema_version'"), 4);
    assert_int_equal(latest_seq(fx), 4);
    /* The fleet table (as store_sqlite.c's Q_HOSTS) touches no snapshot row. */
    assert_false(plan_has(fx->path,
                          "SELECT identity, latest_id, latest_seq, latest_pressure_pct FROM hosts"
                          " ORDER BY identity",
                          "snapshots"));
    assert_int_equal(sql_num(fx->path, "SELECT count(*) FROM pragma_index_info("
                                       "'snapshots_host_time') WHERE name = 'pressure_pct'"),
                     1);
    /* The history query (as store_sqlite.c's Q_HISTORY) reads the index only. */
    assert_true(plan_has(fx->path,
                         "SELECT (taken_at / 300000) * 300000 AS bucket, max(pressure_pct),"
                         " avg(pressure_pct), count(*) FROM snapshots WHERE host = 'web1'"
                         " AND taken_at >= 0 AND taken_at < 9e15 GROUP BY bucket ORDER BY bucket",
                         "USING COVERING INDEX snapshots_host_time"));
    submit_snap(fx, 0, 5, base + 500, 5.0, ""); /* older than the latest: not the latest */
    fx_wait(fx, 1);
    assert_int_equal(latest_seq(fx), 4);

    /* Retention removes everything: no latest, and the next snapshot is the latest whatever its
     * time. */
    assert_int_equal(store_submit_purge(fx->st, 0, base + 10000), 0);
    fx_wait(fx, 2);
    assert_int_equal(latest_seq(fx), -1);
    submit_snap(fx, 0, 6, base + 100, 6.0, "");
    fx_wait(fx, 3);
    assert_int_equal(latest_seq(fx), 6);
    fx_free(fx);
}

/* One batch with several snapshots of a host and a Hello among them: the host's row is updated
 * once per batch (and before the Hello, which reads last_seq) with the same result as after every
 * snapshot. */
static void test_touch_coalesced(void **state)
{
    const int64_t base = 1700000000000LL;
    fx_t *fx = fx_new();
    store_reader_t *rd;
    uint64_t last = 0;

    (void)state;
    fx_open(fx, NULL);
    store_set_paused(fx->st, 1);
    submit_snap(fx, 0, 1, base + 1000, 1.0, "");
    submit_snap(fx, 0, 2, base + 3000, 2.0, "");
    submit_snap(fx, 0, 3, base + 2000, 3.0, ""); /* taken before seq 2 */
    submit_hello(fx, 0);
    submit_snap(fx, 0, 4, base + 3000, 4.0, "ns-b"); /* same taken_at as seq 2: the later wins */
    submit_snap(fx, 0, 5, base + 500, 5.0, "");      /* older than the latest */
    store_set_paused(fx->st, 0);
    fx_wait(fx, 6);
    assert_int_equal(fx->res[3].r.op, STORE_OP_HELLO);
    assert_int_equal(fx->res[3].r.last_seq, 3);
    assert_int_equal(latest_seq(fx), 4);
    rd = fx_reader(fx);
    assert_int_equal(store_reader_last_seq(rd, "web1", &last), 0);
    assert_int_equal(last, 5);
    store_reader_close(rd);
    fx_free(fx);
}

static void test_bad_snapshot(void **state)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    store_stats_t stats;

    (void)state;
    fx_open(fx, NULL);
    store_set_paused(fx->st, 1);
    submit_snap(fx, 0, 1, t, 1.0, "");
    /* Refused at submit (decoded on the caller's thread): nothing queued, the rest unaffected. */
    assert_int_equal(store_submit_snapshot(fx->st, 5, "web1", junk, sizeof(junk)), EPW_E_PROTO);
    submit_snap(fx, 0, 2, t + 1, 1.0, "");
    assert_int_equal(store_submit_snapshot(fx->st, 5, "web1", junk, 0), UV_EINVAL);
    store_set_paused(fx->st, 0);
    fx_wait(fx, 2);
    assert_int_equal(fx->res[0].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.seq, 2);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(stats.items, 2);
    fx_free(fx);
}

typedef struct reader_ctx_s {
    const char *path;
    uv_mutex_t mu;
    int stop;
    uint64_t reads, final, errors, backwards;
} reader_ctx_t;

static void reader_main(void *arg)
{
    reader_ctx_t *c = arg;
    store_reader_t *rd = NULL;
    uint64_t v, last = 0;
    int stop = 0;

    if (store_reader_open(NULL, c->path, &rd)) {
        c->errors++;
        return;
    }
    while (!stop) {
        uv_mutex_lock(&c->mu);
        stop = c->stop; /* read before the count: the final read sees everything committed */
        uv_mutex_unlock(&c->mu);
        if (store_reader_count(rd, "web1", &v)) {
            c->errors++;
            break;
        }
        if (v < last)
            c->backwards++;
        last = v;
        c->reads++;
    }
    c->final = last;
    store_reader_close(rd);
}

static void test_concurrent_reader(void **state)
{
    store_options_t o = {.batch_max = 10};
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    reader_ctx_t c;
    uv_thread_t th;
    int i;

    (void)state;
    fx_open(fx, &o); /* creates the schema before the reader opens */
    memset(&c, 0, sizeof(c));
    c.path = fx->path;
    assert_int_equal(uv_mutex_init(&c.mu), 0);
    assert_int_equal(uv_thread_create(&th, reader_main, &c), 0);
    for (i = 1; i <= 400; i++)
        submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    fx_wait(fx, 400);
    uv_mutex_lock(&c.mu);
    c.stop = 1;
    uv_mutex_unlock(&c.mu);
    assert_int_equal(uv_thread_join(&th), 0);
    uv_mutex_destroy(&c.mu);
    assert_int_equal(c.errors, 0);
    assert_int_equal(c.backwards, 0);
    assert_true(c.reads > 0);
    assert_int_equal(c.final, 400);
    fx_free(fx);
}

/* Alerts (issue 4): upsert by episode key, a resolved row is final, queries filter and order;
 * an alert is accepted while snapshots fill the queue; keep_decoded hands new snapshots over. */
static void alert_row(store_alert_t *a, const char *host, const char *key, int active,
                      int64_t raised, int64_t resolved, const char *ev)
{
    memset(a, 0, sizeof(*a));
    a->host = host;
    a->netns = "";
    a->kind = "pressure";
    a->subject = "";
    a->key = key;
    a->severity = "critical";
    a->active = active;
    a->raised_at_ms = raised;
    a->resolved_at_ms = resolved;
    a->last_notified_at_ms = resolved ? raised : raised + 5;
    a->summary = active ? "high" : "back";
    a->evidence = ev;
    a->last_evidence = ev ? ev : "{\"last\":1}";
}

static void test_alerts_table(void **state)
{
    store_options_t o = {.queue_max = 2, .keep_decoded = 1};
    int64_t t = epw_now_ms();
    store_alert_query_t q = {-1, NULL, 0, 0};
    store_alert_list_t *l = NULL;
    store_reader_t *rd;
    store_alert_t a;
    fx_t *fx = fx_new();

    (void)state;
    fx_open(fx, &o);
    /* keep_decoded: the new snapshot comes decoded, its resend does not. */
    submit_snap(fx, 1, 1, t, 97.0, "");
    fx_wait(fx, 1);
    assert_non_null(fx->res[0].r.snapshot);
    submit_snap(fx, 1, 1, t, 97.0, "");
    fx_wait(fx, 2);
    assert_int_equal(fx->res[1].r.outcome, STORE_DUPLICATE);
    assert_null(fx->res[1].r.snapshot);

    store_set_paused(fx->st, 1);
    submit_snap(fx, 0, 2, t + 1, 1.0, "");
    submit_snap(fx, 0, 3, t + 2, 1.0, "");
    alert_row(&a, "web1", "web1/pressure@1", 1, t, 0, "{\"value_pct\":97}");
    assert_int_equal(store_submit_alert(fx->st, 9, &a), 0);  /* the queue is full: still taken */
    alert_row(&a, "web1", "web1/pressure@1", 1, t, 0, NULL); /* renotify: evidence kept */
    assert_int_equal(store_submit_alert(fx->st, 10, &a), 0);
    alert_row(&a, "web2", "web2/pressure@2", 1, t + 10, 0, "{\"value_pct\":91}");
    assert_int_equal(store_submit_alert(fx->st, 11, &a), 0);
    store_set_paused(fx->st, 0);
    fx_wait(fx, 7);
    assert_int_equal(fx->res[4].r.op, STORE_OP_ALERT);
    assert_int_equal(fx->res[4].r.outcome, STORE_NEW);
    assert_true(fx->res[4].r.alert_id > 0);
    assert_int_equal(fx->res[5].r.alert_id, fx->res[4].r.alert_id);

    alert_row(&a, "web1", "web1/pressure@1", 0, t, t + 100, "{\"value_pct\":3}");
    a.evidence = NULL;
    assert_int_equal(store_submit_alert(fx->st, 12, &a), 0);
    alert_row(&a, "web1", "web1/pressure@1", 1, t, 0, "{\"late\":1}"); /* never revived */
    assert_int_equal(store_submit_alert(fx->st, 13, &a), 0);
    fx_wait(fx, 9);
    assert_int_equal(fx->res[8].r.alert_id, 0);
    a.key = "";
    assert_int_equal(store_submit_alert(fx->st, 14, &a), UV_EINVAL);

    rd = fx_reader(fx);
    assert_int_equal(store_reader_alerts(rd, &q, &l), 0);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->alerts[0].host, "web2"); /* newest raised first */
    assert_string_equal(l->alerts[1].key, "web1/pressure@1");
    assert_int_equal(l->alerts[1].active, 0);
    assert_int_equal(l->alerts[1].resolved_at_ms, t + 100);
    assert_int_equal(l->alerts[1].raised_at_ms, t);
    assert_string_equal(l->alerts[1].evidence, "{\"value_pct\":97}");
    assert_string_equal(l->alerts[1].last_evidence, "{\"value_pct\":3}");
    assert_string_equal(l->alerts[1].summary, "back");
    assert_string_equal(l->alerts[1].severity, "critical");
    assert_string_equal(l->alerts[0].kind, "pressure");
    assert_int_equal(l->alerts[0].resolved_at_ms, 0);
    store_alert_list_free(l);
    q.active = 1;
    assert_int_equal(store_reader_alerts(rd, &q, &l), 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->alerts[0].host, "web2");
    store_alert_list_free(l);
    q.active = -1;
    q.host = "web1";
    assert_int_equal(store_reader_alerts(rd, &q, &l), 0);
    assert_int_equal(l->n, 1);
    store_alert_list_free(l);
    q.host = NULL;
    q.since_ms = t + 101; /* web1 ended before: only the active one */
    assert_int_equal(store_reader_alerts(rd, &q, &l), 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->alerts[0].host, "web2");
    store_alert_list_free(l);
    q.since_ms = 0;
    q.limit = 1;
    assert_int_equal(store_reader_alerts(rd, &q, &l), 0);
    assert_int_equal(l->n, 1);
    store_alert_list_free(l);
    store_reader_close(rd);
    fx_free(fx);
}

static void test_open_errors(void **state)
{
    store_options_t o;
    uv_loop_t loop;
    store_t *st = (store_t *)&o;
    store_reader_t *rd = (store_reader_t *)&o;

    (void)state;
    memset(&o, 0, sizeof(o));
    assert_int_equal(uv_loop_init(&loop), 0);
    o.target = "/nonexistent-dir/x/history.db";
    o.done_cb = on_done;
    assert_int_equal(store_open(&loop, &o, &st), EPW_E_DB);
    assert_null(st);
    o.done_cb = NULL;
    assert_int_equal(store_open(&loop, &o, &st), UV_EINVAL);
    assert_int_equal(store_reader_open(NULL, "/nonexistent-dir/x/history.db", &rd), EPW_E_DB);
    assert_null(rd);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_and_read_back),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_close_drains_and_reopen),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_latest_and_migration),
        cmocka_unit_test(test_bad_snapshot),
        cmocka_unit_test(test_concurrent_reader),
        cmocka_unit_test(test_alerts_table),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_gap_from_snapshot),
        cmocka_unit_test(test_touch_coalesced),
        cmocka_unit_test(test_background_checkpoint),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
