/* store_scenarios: the history store's contract tests, written once and run on every backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <uv.h>

#include "epw_err.h"
#include "epw_util.h"
#include "store.h"
#include "store_scenarios.h"

/* ---- the fixture ---- */

void sx_on_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    sx_fx_t *fx = ud;
    size_t i;

    assert_ptr_equal(st, fx->st);
    assert_true(n > 0);
    fx->done_calls++;
    for (i = 0; i < n; i++) {
        assert_true(fx->nres < SX_MAX_RES);
        fx->res[fx->nres].r = r[i];
        snprintf(fx->res[fx->nres].identity, sizeof(fx->res[0].identity), "%s", r[i].identity);
        fx->res[fx->nres].r.identity = fx->res[fx->nres].identity;
        fx->nres++;
    }
}

static void on_room(store_t *st, void *ud)
{
    sx_fx_t *fx = ud;

    assert_ptr_equal(st, fx->st);
    fx->rooms++;
}

static void on_closed(void *ud)
{
    ((sx_fx_t *)ud)->closed = 1;
}

sx_fx_t *sx_new(const sx_backend_t *be)
{
    sx_fx_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->be = be;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    be->fresh(fx);
    return fx;
}

void sx_open(sx_fx_t *fx, const store_options_t *o)
{
    store_options_t opts;

    if (o)
        opts = *o;
    else
        memset(&opts, 0, sizeof(opts));
    opts.target = fx->target;
    opts.done_cb = sx_on_done;
    opts.room_cb = on_room;
    opts.ud = fx;
    fx->nres = 0;
    fx->done_calls = 0;
    fx->rooms = 0;
    fx->closed = 0;
    assert_int_equal(store_open(&fx->loop, &opts, &fx->st), 0);
    assert_non_null(fx->st);
}

void sx_wait(sx_fx_t *fx, size_t n)
{
    while (fx->nres < n)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->nres, n);
}

void sx_close(sx_fx_t *fx)
{
    store_close(fx->st, on_closed, fx);
    while (!fx->closed)
        uv_run(&fx->loop, UV_RUN_ONCE);
    fx->st = NULL;
}

void sx_free(sx_fx_t *fx)
{
    if (fx->st)
        sx_close(fx);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    if (fx->be->remove)
        fx->be->remove(fx);
    free(fx);
}

store_reader_t *sx_reader(sx_fx_t *fx)
{
    store_reader_t *rd = NULL;

    assert_int_equal(store_reader_open(NULL, fx->rd_target, &rd), 0);
    return rd;
}

void sx_file_fresh(sx_fx_t *fx)
{
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/epw-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->target, sizeof(fx->target), "%s/history.db", fx->dir);
    snprintf(fx->rd_target, sizeof(fx->rd_target), "%s", fx->target);
}

void sx_file_remove(sx_fx_t *fx)
{
    char p[sizeof(fx->target) + 8];

    unlink(fx->target);
    snprintf(p, sizeof(p), "%s-wal", fx->target);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", fx->target);
    unlink(p);
    assert_int_equal(rmdir(fx->dir), 0);
}

/* ---- snapshots ---- */

uint8_t *sx_make_snap(uint64_t seq, int64_t taken_at, double pct, const char *netns, size_t *len)
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
    s.n_host = seq % 3 ? 2 : 1; /* every third without UDP: NULL columns */
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
    s.total_sockets = 1500 + (int64_t)seq;
    s.port_starved = seq % 2;
    *len = epw__snapshot__get_packed_size(&s);
    buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(epw__snapshot__pack(&s, buf), *len);
    return buf;
}

void sx_submit_snap_as(store_t *st, const char *id, uint64_t tag, uint64_t seq, int64_t taken_at,
                       double pct, const char *netns)
{
    size_t len;
    uint8_t *b = sx_make_snap(seq, taken_at, pct, netns, &len);

    assert_int_equal(store_submit_snapshot(st, tag, id, b, len), 0);
    free(b);
}

void sx_submit_snap(sx_fx_t *fx, uint64_t tag, uint64_t seq, int64_t taken_at, double pct,
                    const char *netns)
{
    sx_submit_snap_as(fx->st, "web1", tag, seq, taken_at, pct, netns);
}

void sx_submit_hello_as(store_t *st, const char *id, uint64_t tag)
{
    store_hello_t h = {.identity = id,
                       .agent_version = "0.1.0",
                       .os = "Linux 6.1.0",
                       .platform = EPW__PLATFORM__LINUX,
                       .interval_ms = 10000};

    assert_int_equal(store_submit_hello(st, tag, &h), 0);
}

void sx_submit_hello(sx_fx_t *fx, uint64_t tag)
{
    sx_submit_hello_as(fx->st, "web1", tag);
}

void sx_submit_snap_ex(sx_fx_t *fx, uint64_t seq, int64_t taken_at, uint64_t dropped, size_t pad)
{
    size_t len, n;
    uint8_t *b = sx_make_snap(seq, taken_at, 1.0, "", &len), *out;
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

int64_t sx_latest_seq(sx_fx_t *fx)
{
    store_reader_t *rd = sx_reader(fx);
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

/* ---- the scenarios ---- */

void sx_test_store_and_read_back(void **state)
{
    const sx_backend_t *be = *state;
    const int N = 100;
    int64_t t0 = epw_now_ms() - 1000000;
    sx_fx_t *fx = sx_new(be);
    store_reader_t *rd = NULL;
    store_host_list_t *hl = NULL;
    store_blob_t blob;
    Epw__Snapshot *snap;
    char alt[512];
    uint64_t v;
    int i;

    sx_open(fx, NULL);
    sx_submit_hello(fx, 7);
    for (i = 1; i <= N; i++)
        sx_submit_snap(fx, 7, (uint64_t)i, t0 + i * 1000, i * 0.5, "");
    sx_wait(fx, (size_t)N + 1);
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
    /* Stored as documented: the blob's type, NULL for what was not reported. */
    assert_int_equal(be->sql_num(fx, "SELECT count(*) FROM snapshots WHERE udp_in_use IS NULL"),
                     N / 3);
    assert_int_equal(be->sql_num(fx, "SELECT value FROM meta WHERE key = 'schema_version'"), 4);
    assert_int_equal(be->sql_num(fx, be->blob_type_sql), 1);

    if (be->alt_rd_target) {
        be->alt_rd_target(fx, alt, sizeof(alt));
        assert_int_equal(store_reader_open(NULL, alt, &rd), 0);
    } else {
        rd = sx_reader(fx);
    }
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
    assert_int_equal(hl->hosts[0].latest.total_sockets, 1500 + N);
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
    assert_int_equal(store_reader_snapshot_at(rd, "web1", "", t0 + 50500, &blob), 0);
    assert_int_equal(blob.seq, 50);
    free(blob.data);
    assert_int_equal(store_reader_snapshot_at(rd, "web1", NULL, t0, &blob), EPW_E_NOTFOUND);
    assert_null(blob.data);
    assert_int_equal(store_reader_snapshot_at(rd, "web1", "other", t0 + 50500, &blob),
                     EPW_E_NOTFOUND);
    store_reader_close(rd);
    sx_free(fx);
}

void sx_test_duplicates(void **state)
{
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(*state);
    store_reader_t *rd;
    uint64_t v;

    sx_open(fx, NULL);
    store_set_paused(fx->st, 1); /* one batch: the duplicate is inside the same transaction */
    sx_submit_snap(fx, 1, 1, t, 1.0, "");
    sx_submit_snap(fx, 1, 2, t + 1, 1.0, "");
    sx_submit_snap(fx, 1, 1, t, 1.0, "");
    store_set_paused(fx->st, 0);
    sx_wait(fx, 3);
    sx_submit_snap(fx, 2, 2, t + 1, 1.0, "");     /* a resend in a later transaction */
    sx_submit_snap(fx, 2, 2, t + 1, 1.0, "ns-a"); /* same seq, another namespace: a new row */
    sx_wait(fx, 5);
    assert_int_equal(fx->res[0].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[2].r.outcome, STORE_DUPLICATE);
    assert_int_equal(fx->res[2].r.seq, 1);
    assert_int_equal(fx->res[3].r.outcome, STORE_DUPLICATE);
    assert_int_equal(fx->res[3].r.seq, 2);
    assert_int_equal(fx->res[4].r.outcome, STORE_NEW);
    rd = sx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 3);
    store_reader_close(rd);
    sx_free(fx);
}

void sx_test_batching(void **state)
{
    const sx_backend_t *be = *state;
    store_options_t o = {.batch_max = 100};
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(be);
    store_stats_t stats;
    size_t len, bytes = 0;
    int i;

    sx_open(fx, &o);
    store_set_paused(fx->st, 1);
    for (i = 1; i <= 300; i++) {
        sx_submit_snap(fx, (uint64_t)i, (uint64_t)i, t + i, 2.0, "");
        free(sx_make_snap((uint64_t)i, t + i, 2.0, "", &len));
        bytes += len + sizeof(Epw__Snapshot);
    }
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.queue_depth, 300);
    /* Counted: each encoded snapshot and its decoded copy (at least the message struct). */
    assert_true(stats.queue_bytes >= bytes);
    assert_int_equal(stats.transactions, 0);
    store_set_paused(fx->st, 0);
    sx_wait(fx, 300);
    for (i = 0; i < 300; i++) {
        assert_int_equal(fx->res[i].r.seq, (uint64_t)i + 1);
        assert_int_equal(fx->res[i].r.tag, (uint64_t)i + 1);
        assert_int_equal(fx->res[i].r.outcome, STORE_NEW);
    }
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.transactions, 3); /* 300 items, batch_max 100 */
    assert_int_equal(stats.items, 300);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(stats.queue_depth, 0);
    assert_int_equal(stats.queue_bytes, 0);
    assert_true(stats.last_commit_us > 0);
    assert_true(fx->done_calls <= 3);
    assert_int_equal(be->sql_num(fx, "SELECT count(*) FROM snapshots"), 300);
    sx_free(fx);
}

void sx_test_backpressure(void **state)
{
    store_options_t o = {.queue_max = 8};
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(*state);
    size_t len;
    uint8_t *b;
    int i;

    sx_open(fx, &o);
    store_set_paused(fx->st, 1);
    for (i = 1; i <= 8; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    b = sx_make_snap(9, t + 9, 1.0, "", &len);
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
    sx_wait(fx, 9);
    assert_int_equal(fx->res[8].r.seq, 9);
    assert_int_equal(fx->res[8].r.outcome, STORE_NEW);
    assert_int_equal(fx->rooms, 1); /* once per full episode */
    free(b);
    sx_free(fx);
}

void sx_test_close_drains_and_reopen(void **state)
{
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(*state);
    store_reader_t *rd;
    uint64_t v;
    int i;

    sx_open(fx, NULL);
    sx_submit_hello(fx, 0);
    store_set_paused(fx->st, 1); /* still queued when close starts */
    for (i = 1; i <= 50; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
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

    sx_open(fx, NULL); /* the schema is there: no migration, same data */
    sx_submit_hello(fx, 0);
    sx_wait(fx, 1);
    assert_int_equal(fx->res[0].r.last_seq, 50);
    rd = sx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 50);
    store_reader_close(rd);
    sx_free(fx);
}

void sx_test_retention(void **state)
{
    const sx_backend_t *be = *state;
    store_options_t o = {.retention_chunk = 2}; /* several chunks per purge */
    int64_t now = epw_now_ms();
    sx_fx_t *fx = sx_new(be);
    store_reader_t *rd;
    store_blob_t blob;
    store_stats_t stats;
    uint64_t v;
    int i;

    sx_open(fx, &o);
    for (i = 1; i <= 5; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, now - 10 * SX_DAY_MS + i, 1.0, "");
    for (i = 6; i <= 10; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, now - 1000 + i, 1.0, "");
    assert_int_equal(store_submit_purge(fx->st, 99, now - SX_DAY_MS), 0);
    sx_wait(fx, 11);
    assert_int_equal(fx->res[10].r.op, STORE_OP_PURGE);
    assert_int_equal(fx->res[10].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[10].r.tag, 99);
    assert_int_equal(fx->res[10].r.count, 5);
    rd = sx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(store_reader_snapshot_at(rd, "web1", NULL, now - 5 * SX_DAY_MS, &blob),
                     EPW_E_NOTFOUND);
    assert_int_equal(store_reader_last_seq(rd, "web1", &v), 0); /* survives retention */
    assert_int_equal(v, 10);

    /* Old gaps go too (the recorded_at is the store's clock: backdate them in the database). */
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 3, 2), 0);
    sx_wait(fx, 12);
    be->sql_exec(fx, "UPDATE gaps SET recorded_at = recorded_at - 864000000");

    /* The periodic pass: put old rows back, reopen with a retention period. */
    for (i = 1; i <= 3; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, now - 10 * SX_DAY_MS + i, 1.0, "");
    sx_wait(fx, 15);
    sx_close(fx);
    o.retention_ms = SX_DAY_MS;
    o.retention_chunk = 100;
    sx_open(fx, &o);
    /* The first pass starts at open; its chunk is done before the writer reports any later
     * batch (it runs before this hello's batch or in the same writer round, before the
     * results are posted). */
    sx_submit_hello(fx, 0);
    sx_wait(fx, 1);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.purged, 4); /* 3 snapshots and the gap */
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(be->sql_num(fx, "SELECT count(*) FROM gaps"), 0);
    store_reader_close(rd);
    sx_free(fx);
}

void sx_test_gaps(void **state)
{
    sx_fx_t *fx = sx_new(*state);
    store_reader_t *rd;
    store_host_list_t *hl;

    sx_open(fx, NULL);
    sx_submit_hello(fx, 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 10, 3), 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 10, 3), 0); /* reported twice */
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 20, 2), 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "", 20, 2), UV_EINVAL);
    sx_wait(fx, 4);
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
    sx_free(fx);
}

/* A snapshot that reports lost predecessors records the gap with it, once. */
void sx_test_gap_from_snapshot(void **state)
{
    int64_t t = 1700000000000LL;
    sx_fx_t *fx = sx_new(*state);
    store_reader_t *rd;
    store_host_list_t *hl;

    sx_open(fx, NULL);
    sx_submit_snap_ex(fx, 1, t, 0, 0);
    sx_submit_snap_ex(fx, 5, t + 4000, 3, 0); /* 2, 3, 4 lost on the agent */
    sx_submit_snap_ex(fx, 5, t + 4000, 3, 0); /* resent after a reconnect */
    sx_wait(fx, 3);
    assert_int_equal(fx->res[0].r.gap_new, 0);
    assert_int_equal(fx->res[1].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.gap_new, 1);
    assert_int_equal(fx->res[2].r.outcome, STORE_DUPLICATE);
    assert_int_equal(fx->res[2].r.gap_new, 0);
    rd = sx_reader(fx);
    assert_int_equal(store_reader_hosts(rd, &hl), 0);
    assert_int_equal(hl->n, 1);
    assert_int_equal(hl->hosts[0].gaps, 1);
    assert_int_equal(hl->hosts[0].dropped, 3);
    assert_int_equal(hl->hosts[0].last_seq, 5);
    store_host_list_free(hl);
    store_reader_close(rd);
    sx_free(fx);
}

void sx_test_history(void **state)
{
    const int64_t base = 1700000000000LL; /* a multiple of the 5 s step */
    sx_fx_t *fx = sx_new(*state);
    store_reader_t *rd;
    store_point_t *p;
    size_t n;
    int i;

    sx_open(fx, NULL);
    for (i = 0; i < 20; i++)
        sx_submit_snap(fx, 0, (uint64_t)i + 1, base + i * 1000, (double)i, "");
    sx_submit_snap(fx, 0, 100, base + 2000, 90.0, "ns-b"); /* another namespace: max counts it */
    sx_wait(fx, 21);
    rd = sx_reader(fx);
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
    sx_free(fx);
}

/* One batch with several snapshots of a host and a Hello among them: the host's row is updated
 * once per batch (and before the Hello, which reads last_seq) with the same result as after every
 * snapshot. */
void sx_test_touch_coalesced(void **state)
{
    const int64_t base = 1700000000000LL;
    sx_fx_t *fx = sx_new(*state);
    store_reader_t *rd;
    uint64_t last = 0;

    sx_open(fx, NULL);
    store_set_paused(fx->st, 1);
    sx_submit_snap(fx, 0, 1, base + 1000, 1.0, "");
    sx_submit_snap(fx, 0, 2, base + 3000, 2.0, "");
    sx_submit_snap(fx, 0, 3, base + 2000, 3.0, ""); /* taken before seq 2 */
    sx_submit_hello(fx, 0);
    sx_submit_snap(fx, 0, 4, base + 3000, 4.0, "ns-b"); /* same taken_at as seq 2: the later wins */
    sx_submit_snap(fx, 0, 5, base + 500, 5.0, "");      /* older than the latest */
    store_set_paused(fx->st, 0);
    sx_wait(fx, 6);
    assert_int_equal(fx->res[3].r.op, STORE_OP_HELLO);
    assert_int_equal(fx->res[3].r.last_seq, 3);
    assert_int_equal(sx_latest_seq(fx), 4);
    rd = sx_reader(fx);
    assert_int_equal(store_reader_last_seq(rd, "web1", &last), 0);
    assert_int_equal(last, 5);
    store_reader_close(rd);
    sx_free(fx);
}

void sx_test_bad_snapshot(void **state)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(*state);
    store_stats_t stats;

    sx_open(fx, NULL);
    store_set_paused(fx->st, 1);
    sx_submit_snap(fx, 0, 1, t, 1.0, "");
    /* Refused at submit (decoded on the caller's thread): nothing queued, the rest unaffected. */
    assert_int_equal(store_submit_snapshot(fx->st, 5, "web1", junk, sizeof(junk)), EPW_E_PROTO);
    sx_submit_snap(fx, 0, 2, t + 1, 1.0, "");
    assert_int_equal(store_submit_snapshot(fx->st, 5, "web1", junk, 0), UV_EINVAL);
    store_set_paused(fx->st, 0);
    sx_wait(fx, 2);
    assert_int_equal(fx->res[0].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[1].r.seq, 2);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(stats.items, 2);
    sx_free(fx);
}

typedef struct reader_ctx_s {
    const char *target;
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

    if (store_reader_open(NULL, c->target, &rd)) {
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

void sx_test_concurrent_reader(void **state)
{
    store_options_t o = {.batch_max = 10};
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(*state);
    reader_ctx_t c;
    uv_thread_t th;
    int i;

    sx_open(fx, &o); /* creates the schema before the reader opens */
    memset(&c, 0, sizeof(c));
    c.target = fx->rd_target;
    assert_int_equal(uv_mutex_init(&c.mu), 0);
    assert_int_equal(uv_thread_create(&th, reader_main, &c), 0);
    for (i = 1; i <= 400; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    sx_wait(fx, 400);
    uv_mutex_lock(&c.mu);
    c.stop = 1;
    uv_mutex_unlock(&c.mu);
    assert_int_equal(uv_thread_join(&th), 0);
    uv_mutex_destroy(&c.mu);
    assert_int_equal(c.errors, 0);
    assert_int_equal(c.backwards, 0);
    assert_true(c.reads > 0);
    assert_int_equal(c.final, 400);
    sx_free(fx);
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

void sx_test_alerts_table(void **state)
{
    store_options_t o = {.queue_max = 2, .keep_decoded = 1};
    int64_t t = epw_now_ms();
    store_alert_query_t q = {-1, NULL, 0, 0};
    store_alert_list_t *l = NULL;
    store_reader_t *rd;
    store_alert_t a;
    sx_fx_t *fx = sx_new(*state);

    sx_open(fx, &o);
    /* keep_decoded: the new snapshot comes decoded, its resend does not. */
    sx_submit_snap(fx, 1, 1, t, 97.0, "");
    sx_wait(fx, 1);
    assert_non_null(fx->res[0].r.snapshot);
    sx_submit_snap(fx, 1, 1, t, 97.0, "");
    sx_wait(fx, 2);
    assert_int_equal(fx->res[1].r.outcome, STORE_DUPLICATE);
    assert_null(fx->res[1].r.snapshot);

    store_set_paused(fx->st, 1);
    sx_submit_snap(fx, 0, 2, t + 1, 1.0, "");
    sx_submit_snap(fx, 0, 3, t + 2, 1.0, "");
    alert_row(&a, "web1", "web1/pressure@1", 1, t, 0, "{\"value_pct\":97}");
    assert_int_equal(store_submit_alert(fx->st, 9, &a), 0);  /* the queue is full: still taken */
    alert_row(&a, "web1", "web1/pressure@1", 1, t, 0, NULL); /* renotify: evidence kept */
    assert_int_equal(store_submit_alert(fx->st, 10, &a), 0);
    alert_row(&a, "web2", "web2/pressure@2", 1, t + 10, 0, "{\"value_pct\":91}");
    assert_int_equal(store_submit_alert(fx->st, 11, &a), 0);
    store_set_paused(fx->st, 0);
    sx_wait(fx, 7);
    assert_int_equal(fx->res[4].r.op, STORE_OP_ALERT);
    assert_int_equal(fx->res[4].r.outcome, STORE_NEW);
    assert_true(fx->res[4].r.alert_id > 0);
    assert_int_equal(fx->res[5].r.alert_id, fx->res[4].r.alert_id);

    alert_row(&a, "web1", "web1/pressure@1", 0, t, t + 100, "{\"value_pct\":3}");
    a.evidence = NULL;
    assert_int_equal(store_submit_alert(fx->st, 12, &a), 0);
    alert_row(&a, "web1", "web1/pressure@1", 1, t, 0, "{\"late\":1}"); /* never revived */
    assert_int_equal(store_submit_alert(fx->st, 13, &a), 0);
    sx_wait(fx, 9);
    assert_int_equal(fx->res[8].r.alert_id, 0);
    a.key = "";
    assert_int_equal(store_submit_alert(fx->st, 14, &a), UV_EINVAL);

    rd = sx_reader(fx);
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
    sx_free(fx);
}

void sx_test_open_errors(void **state)
{
    const sx_backend_t *be = *state;
    sx_fx_t *fx = sx_new(be);
    store_options_t o;
    store_t *st = (store_t *)&o;
    store_reader_t *rd = (store_reader_t *)&o;

    memset(&o, 0, sizeof(o));
    o.target = be->bad_target;
    o.done_cb = sx_on_done;
    assert_int_equal(store_open(&fx->loop, &o, &st), EPW_E_DB);
    assert_null(st);
    o.done_cb = NULL;
    assert_int_equal(store_open(&fx->loop, &o, &st), UV_EINVAL);
    assert_int_equal(store_reader_open(NULL, be->bad_target, &rd), EPW_E_DB);
    assert_null(rd);

    /* A database whose schema is newer than this build is refused, not downgraded. */
    be->sql_exec(fx, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     " INSERT INTO meta VALUES ('schema_version', '99');");
    o.target = fx->target;
    o.done_cb = sx_on_done;
    st = (store_t *)&o;
    assert_int_equal(store_open(&fx->loop, &o, &st), EPW_E_DB);
    assert_null(st);
    /* The reader needs the tables its statements name. */
    rd = (store_reader_t *)&o;
    assert_int_equal(store_reader_open(NULL, fx->rd_target, &rd), EPW_E_DB);
    assert_null(rd);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    sx_free(fx);
}
