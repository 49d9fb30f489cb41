/* test_store_pg: the history store's PostgreSQL backend against a real server (pg_server.sh). */
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

/*
 * The server comes from the CTest fixture (tests/store_pg.cmake): EPW_PG_STATE names the
 * directory where tests/support/pg_server.sh wrote `conninfo` (no dbname) and `psql`. Each test
 * gets a fresh database, created and dropped through psql (only store_pg.c uses libpq). Without
 * a server the tests are skipped (exit 77), except under CI=true, where that is a failure.
 */

#define MAX_RES 2048
#define DAY_MS  86400000LL
#define DBNAME  "epw_store_test"

static char g_conninfo[256]; /* server, user, no dbname */
static char g_psql[256];

typedef struct rec_s {
    store_result_t r;
    char identity[64];
} rec_t;

typedef struct fx_s {
    uv_loop_t loop;
    char target[512];    /* the writer's connection string */
    char rd_target[512]; /* the readers' (another application_name) */
    store_t *st;
    rec_t res[MAX_RES];
    size_t nres;
    int closed;
} fx_t;

/* ---- psql, for what the tests do beside the store ---- */

/* Runs `sql` on database `db` through psql; its output (-At) goes to out (may be NULL). */
static int psql(const char *db, const char *sql, char *out, size_t outlen)
{
    char cmd[1024], tmp[] = "/tmp/epw-pgsql-XXXXXX";
    FILE *f;
    int fd, rc;
    size_t n = 0;

    fd = mkstemp(tmp);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, sql, strlen(sql)), (ssize_t)strlen(sql));
    close(fd);
    snprintf(cmd, sizeof(cmd), "\"%s\" -X -q -At -v ON_ERROR_STOP=1 \"%s dbname=%s\" -f %s 2>&1",
             g_psql, g_conninfo, db, tmp);
    f = popen(cmd, "r");
    assert_non_null(f);
    if (out && outlen) {
        n = fread(out, 1, outlen - 1, f);
        out[n] = '\0';
        while (n && (out[n - 1] == '\n'))
            out[--n] = '\0';
    } else {
        char sink[512];
        while (fread(sink, 1, sizeof(sink), f) > 0)
            ;
    }
    rc = pclose(f);
    unlink(tmp);
    return rc;
}

static long psql_num(const char *db, const char *sql)
{
    char out[64];

    assert_int_equal(psql(db, sql, out, sizeof(out)), 0);
    return strtol(out, NULL, 10);
}

static void fresh_db(void)
{
    char out[512];
    int rc = psql("postgres",
                  "DROP DATABASE IF EXISTS " DBNAME " WITH (FORCE);"
                  /* A natural-language collation, as production servers have, so the
                   * byte-order listing of hosts is tested. */
                  " CREATE DATABASE " DBNAME " TEMPLATE template0 LOCALE_PROVIDER icu"
                  " ICU_LOCALE 'en-US' LOCALE 'C.UTF-8';",
                  out, sizeof(out));
    if (rc)
        fprintf(stderr, "psql: %s\n", out);
    assert_int_equal(rc, 0);
}

/* Waits (bounded) until `sql` returns `want`. */
static void psql_until(const char *sql, long want)
{
    int i;

    for (i = 0; i < 1000; i++) {
        if (psql_num("postgres", sql) == want)
            return;
        uv_sleep(10);
    }
    fail_msg("timed out waiting for: %s", sql);
}

/* ---- the store fixture ---- */

static void on_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    fx_t *fx = ud;
    size_t i;

    assert_ptr_equal(st, fx->st);
    for (i = 0; i < n; i++) {
        assert_true(fx->nres < MAX_RES);
        fx->res[fx->nres].r = r[i];
        snprintf(fx->res[fx->nres].identity, sizeof(fx->res[0].identity), "%s", r[i].identity);
        fx->res[fx->nres].r.identity = fx->res[fx->nres].identity;
        fx->nres++;
    }
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
    fresh_db();
    snprintf(fx->target, sizeof(fx->target), "%s dbname=" DBNAME " application_name=epw-writer",
             g_conninfo);
    snprintf(fx->rd_target, sizeof(fx->rd_target),
             "%s dbname=" DBNAME " application_name=epw-reader", g_conninfo);
    return fx;
}

static void fx_open(fx_t *fx, const store_options_t *o)
{
    store_options_t opts;

    if (o)
        opts = *o;
    else
        memset(&opts, 0, sizeof(opts));
    opts.target = fx->target;
    opts.done_cb = on_done;
    opts.ud = fx;
    fx->nres = 0;
    fx->closed = 0;
    assert_int_equal(store_open(&fx->loop, &opts, &fx->st), 0);
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
    if (fx->st)
        fx_close(fx);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
}

static store_reader_t *fx_reader(fx_t *fx)
{
    store_reader_t *rd = NULL;

    assert_int_equal(store_reader_open(NULL, fx->rd_target, &rd), 0);
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

static void submit_snap_as(store_t *st, const char *id, uint64_t tag, uint64_t seq,
                           int64_t taken_at, double pct, const char *netns)
{
    size_t len;
    uint8_t *b = make_snap(seq, taken_at, pct, netns, &len);

    assert_int_equal(store_submit_snapshot(st, tag, id, b, len), 0);
    free(b);
}

static void submit_snap(fx_t *fx, uint64_t tag, uint64_t seq, int64_t taken_at, double pct,
                        const char *netns)
{
    submit_snap_as(fx->st, "web1", tag, seq, taken_at, pct, netns);
}

static void submit_hello_as(store_t *st, const char *id, uint64_t tag)
{
    store_hello_t h = {.identity = id,
                       .agent_version = "0.1.0",
                       .os = "Linux 6.1.0",
                       .platform = EPW__PLATFORM__LINUX,
                       .interval_ms = 10000};

    assert_int_equal(store_submit_hello(st, tag, &h), 0);
}

/* ---- tests ---- */

static void test_backend_selection(void **state)
{
    const store_backend_t *pg = store_backend_by_name("postgresql");
    const store_backend_t *sq = store_backend_by_name("sqlite");

    (void)state;
    assert_non_null(pg);
    assert_non_null(sq);
    assert_ptr_not_equal(pg, sq);
    assert_ptr_equal(store_backend_for_target("postgresql://u@db1/epw"), pg);
    assert_ptr_equal(store_backend_for_target("postgres://db1"), pg);
    assert_ptr_equal(store_backend_for_target("host=db1 dbname=epw"), pg);
    assert_ptr_equal(store_backend_for_target("dbname = epw"), pg);
    assert_ptr_equal(store_backend_for_target("/var/lib/epwatch/epwatch.db"), sq);
    assert_ptr_equal(store_backend_for_target("history.db"), sq);
    assert_ptr_equal(store_backend_for_target("=x"), sq);
    assert_ptr_equal(store_backend_by_name("postgres"), pg);
    assert_null(store_backend_by_name("mysql"));
    assert_null(store_backend_by_name(NULL));
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
    char uri[256];
    uint64_t v;
    int i, port = 0;

    (void)state;
    fx_open(fx, NULL);
    submit_hello_as(fx->st, "web1", 7);
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
    /* Stored as documented: BYTEA blob, BIGINT times, NULL for what was not reported. */
    assert_int_equal(psql_num(DBNAME, "SELECT count(*) FROM snapshots WHERE udp_in_use IS NULL"),
                     N / 3);
    assert_int_equal(psql_num(DBNAME, "SELECT value FROM meta WHERE key = 'schema_version'"), 4);
    assert_int_equal(psql_num(DBNAME, "SELECT count(*) FROM information_schema.columns"
                                      " WHERE table_name = 'snapshots' AND column_name = 'data'"
                                      " AND data_type = 'bytea'"),
                     1);

    /* The URI form of the connection string reaches the same database. */
    assert_non_null(strstr(g_conninfo, "port="));
    assert_int_equal(sscanf(strstr(g_conninfo, "port=") + 5, "%d", &port), 1);
    snprintf(uri, sizeof(uri),
             "postgresql://postgres@127.0.0.1:%d/" DBNAME "?application_name=epw-reader", port);
    assert_int_equal(store_reader_open(NULL, uri, &rd), 0);
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
    assert_string_equal(hl->hosts[0].latest.worst_dest, "10.0.0.5 -> [fd00::1]:5432/tcp");
    assert_int_equal(hl->hosts[0].latest.worst_dest_conns, 300);
    assert_int_equal(hl->hosts[0].latest.top_pid, 20);
    assert_string_equal(hl->hosts[0].latest.top_name, "java");
    assert_int_equal(hl->hosts[0].latest.top_ports, 700);
    assert_int_equal(hl->hosts[0].latest.port_starved, N % 2);
    store_host_list_free(hl);

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
    store_set_paused(fx->st, 0);
    fx_wait(fx, 300);
    for (i = 0; i < 300; i++) {
        assert_int_equal(fx->res[i].r.seq, (uint64_t)i + 1);
        assert_int_equal(fx->res[i].r.tag, (uint64_t)i + 1);
        assert_int_equal(fx->res[i].r.outcome, STORE_NEW);
    }
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.transactions, 3); /* 300 items, batch_max 100 */
    assert_int_equal(stats.items, 300);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(psql_num(DBNAME, "SELECT count(*) FROM snapshots"), 300);
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
    submit_hello_as(fx->st, "web1", 0);
    store_set_paused(fx->st, 1);
    for (i = 1; i <= 50; i++)
        submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 50, 4), 0);
    store_close(fx->st, on_closed, fx);
    assert_int_equal(fx->nres, 52); /* drained before store_close returned */
    assert_int_equal(fx->res[50].r.seq, 50);
    assert_int_equal(fx->res[50].r.outcome, STORE_NEW);
    assert_int_equal(fx->res[51].r.op, STORE_OP_GAP);
    while (!fx->closed)
        uv_run(&fx->loop, UV_RUN_ONCE);
    fx->st = NULL;

    fx_open(fx, NULL); /* the schema is there: no migration, same data */
    submit_hello_as(fx->st, "web1", 0);
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

    /* Old gaps go too (the recorded_at is the store's clock: backdate them in the database). */
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 3, 2), 0);
    fx_wait(fx, 12);
    assert_int_equal(psql(DBNAME, "UPDATE gaps SET recorded_at = recorded_at - 864000000", NULL, 0),
                     0);

    /* The periodic pass: put old rows back, reopen with a retention period. */
    for (i = 1; i <= 3; i++)
        submit_snap(fx, 0, (uint64_t)i, now - 10 * DAY_MS + i, 1.0, "");
    fx_wait(fx, 15);
    fx_close(fx);
    o.retention_ms = DAY_MS;
    o.retention_chunk = 100;
    fx_open(fx, &o);
    submit_hello_as(fx->st, "web1", 0);
    fx_wait(fx, 1);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.purged, 4); /* 3 snapshots and the gap */
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(psql_num(DBNAME, "SELECT count(*) FROM gaps"), 0);
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
    submit_hello_as(fx->st, "web1", 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 10, 3), 0);
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 10, 3), 0); /* reported twice */
    assert_int_equal(store_submit_gap(fx->st, 0, "web1", 20, 2), 0);
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
    assert_int_equal(p[0].samples, 4);
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
    assert_int_equal(p[3].samples, 2); /* `to` is exclusive */
    assert_true(p[3].max_pct == 16.0);
    assert_true(p[3].avg_pct == 15.5);
    free(p);
    assert_int_equal(store_reader_history(rd, "web1", base - 100000, base - 1, 1000, &p, &n), 0);
    assert_int_equal(n, 0);
    assert_null(p);
    assert_int_equal(store_reader_history(rd, "web1", base, base + 1000, 0, &p, &n), UV_EINVAL);
    store_reader_close(rd);
    fx_free(fx);
}

/* The same submissions into SQLite and PostgreSQL read back identically. */
static void feed(store_t *st, int64_t base)
{
    static const char *const ids[] = {"web1", "B-host", "a-host", "db-2"};
    size_t k;
    int i;

    for (k = 0; k < 4; k++) {
        if (k != 3)
            submit_hello_as(st, ids[k], k);
        for (i = 1; i <= 40; i++)
            submit_snap_as(st, ids[k], k, (uint64_t)i, base + i * 733 + (int64_t)k * 97,
                           (double)((i * 37 + (int)k * 11) % 101) / 3.0, i % 4 ? "" : "ns-x");
        if (k == 1)
            assert_int_equal(store_submit_gap(st, 0, ids[k], 12, 7), 0);
    }
    /* The latest snapshot is by taken_at, not arrival; a tie goes to the last stored (both
     * backends keep it in hosts, schema version 3). */
    submit_snap_as(st, "a-host", 2, 41, base + 5 * 733, 50.0, "");
    submit_snap_as(st, "a-host", 2, 42, base + 40 * 733 + 2 * 97, 60.0, "ns-y");
}

static void compare_readers(store_reader_t *a, store_reader_t *b, int64_t base)
{
    static const int64_t steps[] = {1000, 2500, 7000, 60000};
    static const char *const ids[] = {"web1", "B-host", "a-host", "db-2", "none"};
    store_host_list_t *ha, *hb;
    store_point_t *pa, *pb;
    store_blob_t ba, bb;
    size_t na, nb, i, k, s;
    uint64_t va, vb;
    int ra, rb;

    assert_int_equal(store_reader_hosts(a, &ha), 0);
    assert_int_equal(store_reader_hosts(b, &hb), 0);
    assert_int_equal(ha->n, 4);
    assert_int_equal(ha->n, hb->n);
    assert_string_equal(ha->hosts[0].identity, "B-host"); /* byte order, as SQLite */
    for (i = 0; i < ha->n; i++) {
        const store_host_t *x = &ha->hosts[i], *y = &hb->hosts[i];
        assert_string_equal(x->identity, y->identity);
        assert_string_equal(x->agent_version, y->agent_version);
        assert_string_equal(x->os, y->os);
        assert_string_equal(x->platform, y->platform);
        assert_int_equal(x->interval_ms, y->interval_ms);
        assert_int_equal(x->last_seq, y->last_seq);
        assert_int_equal(x->gaps, y->gaps);
        assert_int_equal(x->dropped, y->dropped);
        assert_int_equal(x->has_latest, y->has_latest);
        assert_int_equal(x->latest.seq, y->latest.seq);
        if (strcmp(x->identity, "a-host") == 0)
            assert_int_equal(x->latest.seq, 42);
        assert_int_equal(x->latest.taken_at_ms, y->latest.taken_at_ms);
        assert_string_equal(x->latest.netns, y->latest.netns);
        assert_true(x->latest.pressure_pct == y->latest.pressure_pct);
        assert_string_equal(x->latest.pressure_source, y->latest.pressure_source);
        assert_int_equal(x->latest.tcp_in_use, y->latest.tcp_in_use);
        assert_int_equal(x->latest.udp_in_use, y->latest.udp_in_use);
        assert_int_equal(x->latest.udp_max, y->latest.udp_max);
        assert_int_equal(x->latest.total_sockets, y->latest.total_sockets);
        assert_string_equal(x->latest.worst_dest, y->latest.worst_dest);
        assert_int_equal(x->latest.worst_dest_conns, y->latest.worst_dest_conns);
        assert_int_equal(x->latest.top_pid, y->latest.top_pid);
        assert_string_equal(x->latest.top_name, y->latest.top_name);
        assert_int_equal(x->latest.port_starved, y->latest.port_starved);
    }
    store_host_list_free(ha);
    store_host_list_free(hb);

    for (k = 0; k < 5; k++) {
        assert_int_equal(store_reader_count(a, ids[k], &va), store_reader_count(b, ids[k], &vb));
        assert_int_equal(va, vb);
        assert_int_equal(store_reader_last_seq(a, ids[k], &va),
                         store_reader_last_seq(b, ids[k], &vb));
        assert_int_equal(va, vb);
        for (s = 0; s < 4; s++) {
            assert_int_equal(
                store_reader_history(a, ids[k], base - 5000, base + 40000, steps[s], &pa, &na), 0);
            assert_int_equal(
                store_reader_history(b, ids[k], base - 5000, base + 40000, steps[s], &pb, &nb), 0);
            assert_int_equal(na, nb);
            for (i = 0; i < na; i++) {
                assert_int_equal(pa[i].bucket_ms, pb[i].bucket_ms);
                assert_int_equal(pa[i].samples, pb[i].samples);
                assert_true(pa[i].max_pct == pb[i].max_pct);
                assert_true(pa[i].avg_pct == pb[i].avg_pct);
            }
            free(pa);
            free(pb);
        }
        for (s = 0; s < 6; s++) {
            int64_t at = base + (int64_t)s * 6100;
            const char *ns = s % 2 ? NULL : s == 2 ? "ns-x" : "";
            ra = store_reader_snapshot_at(a, ids[k], ns, at, &ba);
            rb = store_reader_snapshot_at(b, ids[k], ns, at, &bb);
            assert_int_equal(ra, rb);
            assert_int_equal(ba.seq, bb.seq);
            assert_int_equal(ba.taken_at_ms, bb.taken_at_ms);
            assert_int_equal(ba.len, bb.len);
            if (ba.len)
                assert_memory_equal(ba.data, bb.data, ba.len);
            free(ba.data);
            free(bb.data);
        }
    }
}

static void test_same_results_as_sqlite(void **state)
{
    const int64_t base = 1700000003000LL;
    fx_t *fx = fx_new(), *sq = calloc(1, sizeof(*sq));
    store_options_t o = {.batch_max = 37};
    store_reader_t *a, *b;
    char dir[] = "/tmp/epw-store-pg-XXXXXX", path[128], p[160];

    (void)state;
    assert_non_null(sq);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/history.db", dir);
    assert_int_equal(uv_loop_init(&sq->loop), 0);
    snprintf(sq->target, sizeof(sq->target), "%s", path);
    fx_open(sq, &o);
    fx_open(fx, &o);
    assert_ptr_equal(store_backend_for_target(sq->target), store_backend_by_name("sqlite"));
    feed(sq->st, base);
    feed(fx->st, base);
    fx_wait(sq, 4 * 40 + 3 + 1 + 2);
    fx_wait(fx, 4 * 40 + 3 + 1 + 2);
    assert_int_equal(store_reader_open(NULL, path, &a), 0);
    b = fx_reader(fx);
    compare_readers(a, b, base);
    store_reader_close(a);
    store_reader_close(b);
    fx_free(fx);
    fx_free(sq);
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    assert_int_equal(rmdir(dir), 0);
}

#define KILL_WRITER                                                                                \
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"                                \
    " WHERE application_name = 'epw-writer'"

/* An idle connection killed under the store: the next batch and read reconnect transparently
 * (BEGIN and reads have changed nothing, so they are retried once). */
static void test_connection_lost_idle(void **state)
{
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    store_reader_t *rd;
    store_stats_t stats;
    uint64_t v;
    int i;

    (void)state;
    fx_open(fx, NULL);
    rd = fx_reader(fx);
    for (i = 1; i <= 5; i++)
        submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    fx_wait(fx, 5);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(psql_num("postgres", KILL_WRITER), 1);
    assert_int_equal(psql_num("postgres", "SELECT count(pg_terminate_backend(pid))"
                                          " FROM pg_stat_activity"
                                          " WHERE application_name = 'epw-reader'"),
                     1);
    psql_until("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'epw-%'", 0);
    for (i = 6; i <= 10; i++)
        submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    fx_wait(fx, 10);
    for (i = 5; i < 10; i++)
        assert_int_equal(fx->res[i].r.outcome, STORE_NEW);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 10);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.failed, 0);
    store_reader_close(rd);
    fx_free(fx);
}

/* The connection dies in the middle of a batch: every item of it fails with EPW_E_DB and nothing
 * of it is stored; a later batch reconnects and succeeds. */
static void test_connection_lost_mid_batch(void **state)
{
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    store_reader_t *rd;
    store_stats_t stats;
    char cmd[768];
    FILE *locker;
    uint64_t v;
    int i;

    (void)state;
    fx_open(fx, NULL);
    submit_hello_as(fx->st, "web1", 0);
    fx_wait(fx, 1);

    /* Another session holds a lock the batch's INSERT waits for, so the batch is certainly in
     * flight when its connection is terminated. */
    snprintf(cmd, sizeof(cmd),
             "\"%s\" -X -q -v ON_ERROR_STOP=1 \"%s dbname=" DBNAME
             " application_name=epw-locker\" >/dev/null 2>&1",
             g_psql, g_conninfo);
    locker = popen(cmd, "w");
    assert_non_null(locker);
    fputs("BEGIN;\nLOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE;\n", locker);
    fflush(locker);
    psql_until("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
               " WHERE a.application_name = 'epw-locker' AND l.mode = 'AccessExclusiveLock'"
               " AND l.granted",
               1);

    store_set_paused(fx->st, 1);
    for (i = 1; i <= 5; i++)
        submit_snap(fx, 10 + (uint64_t)i, (uint64_t)i, t + i, 1.0, "");
    store_set_paused(fx->st, 0);
    psql_until("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'epw-writer'"
               " AND wait_event_type = 'Lock'",
               1);
    assert_int_equal(psql_num("postgres", KILL_WRITER), 1);
    fx_wait(fx, 6);
    fputs("ROLLBACK;\n\\q\n", locker);
    assert_int_equal(pclose(locker), 0);
    for (i = 1; i <= 5; i++) {
        assert_int_equal(fx->res[i].r.outcome, STORE_ERROR);
        assert_int_equal(fx->res[i].r.err, EPW_E_DB);
        assert_int_equal(fx->res[i].r.tag, 10 + (uint64_t)i);
    }
    rd = fx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 0);

    /* The agent resends: the next batch reconnects and stores all of it. */
    for (i = 1; i <= 5; i++)
        submit_snap(fx, 20 + (uint64_t)i, (uint64_t)i, t + i, 1.0, "");
    fx_wait(fx, 11);
    for (i = 6; i <= 10; i++) {
        assert_int_equal(fx->res[i].r.outcome, STORE_NEW);
        assert_int_equal(fx->res[i].r.err, 0);
    }
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(store_reader_last_seq(rd, "web1", &v), 0);
    assert_int_equal(v, 5);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.failed, 5);
    store_reader_close(rd);
    fx_free(fx);
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

static void test_concurrent_reader(void **state)
{
    store_options_t o = {.batch_max = 10};
    int64_t t = epw_now_ms();
    fx_t *fx = fx_new();
    reader_ctx_t c;
    uv_thread_t th;
    int i;

    (void)state;
    fx_open(fx, &o);
    memset(&c, 0, sizeof(c));
    c.target = fx->rd_target;
    assert_int_equal(uv_mutex_init(&c.mu), 0);
    assert_int_equal(uv_thread_create(&th, reader_main, &c), 0);
    for (i = 1; i <= 200; i++)
        submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    fx_wait(fx, 200);
    uv_mutex_lock(&c.mu);
    c.stop = 1;
    uv_mutex_unlock(&c.mu);
    assert_int_equal(uv_thread_join(&th), 0);
    uv_mutex_destroy(&c.mu);
    assert_int_equal(c.errors, 0);
    assert_int_equal(c.backwards, 0);
    assert_true(c.reads > 0);
    assert_int_equal(c.final, 200);
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
    char target[512];

    (void)state;
    fresh_db();
    memset(&o, 0, sizeof(o));
    assert_int_equal(uv_loop_init(&loop), 0);
    o.done_cb = on_done;
    /* Nothing listens on port 1: refused at once. */
    o.target = "host=127.0.0.1 port=1 user=postgres dbname=x connect_timeout=5";
    assert_int_equal(store_open(&loop, &o, &st), EPW_E_DB);
    assert_null(st);
    assert_int_equal(store_reader_open(NULL, o.target, &rd), EPW_E_DB);
    assert_null(rd);
    /* A database whose schema is newer than this build is refused, not downgraded. */
    assert_int_equal(psql(DBNAME,
                          "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                          " INSERT INTO meta VALUES ('schema_version', '99');",
                          NULL, 0),
                     0);
    snprintf(target, sizeof(target), "%s dbname=" DBNAME, g_conninfo);
    o.target = target;
    st = (store_t *)&o;
    assert_int_equal(store_open(&loop, &o, &st), EPW_E_DB);
    assert_null(st);
    /* The reader needs the tables its statements name. */
    assert_int_equal(store_reader_open(NULL, target, &rd), EPW_E_DB);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Reads the fixture's files; 0, or 77 to skip. */
static int load_server(void)
{
    const char *dir = getenv("EPW_PG_STATE");
    const char *ci = getenv("CI");
    char path[512];
    FILE *f;
    int ok = 0;

    if (dir) {
        snprintf(path, sizeof(path), "%s/conninfo", dir);
        f = fopen(path, "r");
        if (f) {
            ok = fgets(g_conninfo, sizeof(g_conninfo), f) != NULL;
            fclose(f);
        }
        snprintf(path, sizeof(path), "%s/psql", dir);
        f = fopen(path, "r");
        if (f) {
            ok = ok && fgets(g_psql, sizeof(g_psql), f) != NULL;
            fclose(f);
        } else {
            ok = 0;
        }
    }
    if (!ok) {
        fprintf(stderr, "test_store_pg: no PostgreSQL server (EPW_PG_STATE=%s)\n",
                dir ? dir : "(unset)");
        return ci && strcmp(ci, "true") == 0 ? 1 : 77;
    }
    g_conninfo[strcspn(g_conninfo, "\r\n")] = '\0';
    g_psql[strcspn(g_psql, "\r\n")] = '\0';
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_selection),
        cmocka_unit_test(test_store_and_read_back),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_close_drains_and_reopen),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_same_results_as_sqlite),
        cmocka_unit_test(test_connection_lost_idle),
        cmocka_unit_test(test_connection_lost_mid_batch),
        cmocka_unit_test(test_concurrent_reader),
        cmocka_unit_test(test_alerts_table),
        cmocka_unit_test(test_open_errors),
    };
    int rc = load_server();

    if (rc)
        return rc;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
