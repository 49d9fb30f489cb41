/* test_store_pg: the history store's PostgreSQL backend against a real server (pg_server.sh): the
 * shared scenarios (support/store_scenarios.c) and what only PostgreSQL has (connections). */
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
#include "support/store_scenarios.h"

/*
 * The server comes from the CTest fixture (tests/store_pg.cmake): EPW_PG_STATE names the
 * directory where tests/support/pg_server.sh wrote `conninfo` (no dbname) and `psql`. Each test
 * gets a fresh database, created and dropped through psql (only store_pg.c uses libpq). Without
 * a server the tests are skipped (exit 77), except under CI=true, where that is a failure.
 */

#define DBNAME "epw_store_test"

static char g_conninfo[256]; /* server, user, no dbname */
static char g_psql[256];

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

/* ---- the PostgreSQL backend fixture: a fresh database, looked into with psql ---- */

static void pg_fresh(sx_fx_t *fx)
{
    fresh_db();
    snprintf(fx->target, sizeof(fx->target), "%s dbname=" DBNAME " application_name=epw-writer",
             g_conninfo);
    snprintf(fx->rd_target, sizeof(fx->rd_target),
             "%s dbname=" DBNAME " application_name=epw-reader", g_conninfo);
}

static int64_t pg_sql_num(sx_fx_t *fx, const char *sql)
{
    char out[64];

    (void)fx;
    assert_int_equal(psql(DBNAME, sql, out, sizeof(out)), 0);
    return out[0] ? strtoll(out, NULL, 10) : -1;
}

static void pg_sql_exec(sx_fx_t *fx, const char *sql)
{
    (void)fx;
    assert_int_equal(psql(DBNAME, sql, NULL, 0), 0);
}

/* The URI form of the connection string reaches the same database. */
static void pg_uri(sx_fx_t *fx, char *buf, size_t len)
{
    int port = 0;

    (void)fx;
    assert_non_null(strstr(g_conninfo, "port="));
    assert_int_equal(sscanf(strstr(g_conninfo, "port=") + 5, "%d", &port), 1);
    snprintf(buf, len, "postgresql://postgres@127.0.0.1:%d/" DBNAME "?application_name=epw-reader",
             port);
}

static sx_backend_t pg_backend = {
    .fresh = pg_fresh,
    .sql_num = pg_sql_num,
    .sql_exec = pg_sql_exec,
    /* Nothing listens on port 1: refused at once. */
    .bad_target = "host=127.0.0.1 port=1 user=postgres dbname=x connect_timeout=5",
    .blob_type_sql = "SELECT count(*) FROM information_schema.columns WHERE table_name ="
                     " 'snapshots' AND column_name = 'data' AND data_type = 'bytea'",
    .alt_rd_target = pg_uri,
};

/* An SQLite file beside it, for the comparison. */
static sx_backend_t sqlite_files = {
    .fresh = sx_file_fresh,
    .remove = sx_file_remove,
};

/* ---- PostgreSQL only ---- */

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

/* The same submissions into SQLite and PostgreSQL read back identically. */
static void feed(store_t *st, int64_t base)
{
    static const char *const ids[] = {"web1", "B-host", "a-host", "db-2"};
    size_t k;
    int i;

    for (k = 0; k < 4; k++) {
        if (k != 3)
            sx_submit_hello_as(st, ids[k], k);
        for (i = 1; i <= 40; i++)
            sx_submit_snap_as(st, ids[k], k, (uint64_t)i, base + i * 733 + (int64_t)k * 97,
                              (double)((i * 37 + (int)k * 11) % 101) / 3.0, i % 4 ? "" : "ns-x");
        if (k == 1)
            assert_int_equal(store_submit_gap(st, 0, ids[k], 12, 7), 0);
    }
    /* The latest snapshot is by taken_at, not arrival; a tie goes to the last stored (both
     * backends keep it in hosts, schema version 3). */
    sx_submit_snap_as(st, "a-host", 2, 41, base + 5 * 733, 50.0, "");
    sx_submit_snap_as(st, "a-host", 2, 42, base + 40 * 733 + 2 * 97, 60.0, "ns-y");
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
    sx_fx_t *fx = sx_new(&pg_backend), *sq = sx_new(&sqlite_files);
    store_options_t o = {.batch_max = 37};
    store_reader_t *a, *b;

    (void)state;
    sx_open(sq, &o);
    sx_open(fx, &o);
    assert_ptr_equal(store_backend_for_target(sq->target), store_backend_by_name("sqlite"));
    feed(sq->st, base);
    feed(fx->st, base);
    sx_wait(sq, 4 * 40 + 3 + 1 + 2);
    sx_wait(fx, 4 * 40 + 3 + 1 + 2);
    a = sx_reader(sq);
    b = sx_reader(fx);
    compare_readers(a, b, base);
    store_reader_close(a);
    store_reader_close(b);
    sx_free(fx);
    sx_free(sq);
}

#define KILL_WRITER                                                                                \
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"                                \
    " WHERE application_name = 'epw-writer'"

/* An idle connection killed under the store: the next batch and read reconnect transparently
 * (BEGIN and reads have changed nothing, so they are retried once). */
static void test_connection_lost_idle(void **state)
{
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(&pg_backend);
    store_reader_t *rd;
    store_stats_t stats;
    uint64_t v;
    int i;

    (void)state;
    sx_open(fx, NULL);
    rd = sx_reader(fx);
    for (i = 1; i <= 5; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    sx_wait(fx, 5);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(psql_num("postgres", KILL_WRITER), 1);
    assert_int_equal(psql_num("postgres", "SELECT count(pg_terminate_backend(pid))"
                                          " FROM pg_stat_activity"
                                          " WHERE application_name = 'epw-reader'"),
                     1);
    psql_until("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'epw-%'", 0);
    for (i = 6; i <= 10; i++)
        sx_submit_snap(fx, 0, (uint64_t)i, t + i, 1.0, "");
    sx_wait(fx, 10);
    for (i = 5; i < 10; i++)
        assert_int_equal(fx->res[i].r.outcome, STORE_NEW);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 10);
    store_get_stats(fx->st, &stats);
    assert_int_equal(stats.failed, 0);
    store_reader_close(rd);
    sx_free(fx);
}

/* The connection dies in the middle of a batch: every item of it fails with EPW_E_DB and nothing
 * of it is stored; a later batch reconnects and succeeds. */
static void test_connection_lost_mid_batch(void **state)
{
    int64_t t = epw_now_ms();
    sx_fx_t *fx = sx_new(&pg_backend);
    store_reader_t *rd;
    store_stats_t stats;
    char cmd[768];
    FILE *locker;
    uint64_t v;
    int i;

    (void)state;
    sx_open(fx, NULL);
    sx_submit_hello_as(fx->st, "web1", 0);
    sx_wait(fx, 1);

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
        sx_submit_snap(fx, 10 + (uint64_t)i, (uint64_t)i, t + i, 1.0, "");
    store_set_paused(fx->st, 0);
    psql_until("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'epw-writer'"
               " AND wait_event_type = 'Lock'",
               1);
    assert_int_equal(psql_num("postgres", KILL_WRITER), 1);
    sx_wait(fx, 6);
    fputs("ROLLBACK;\n\\q\n", locker);
    assert_int_equal(pclose(locker), 0);
    for (i = 1; i <= 5; i++) {
        assert_int_equal(fx->res[i].r.outcome, STORE_ERROR);
        assert_int_equal(fx->res[i].r.err, EPW_E_DB);
        assert_int_equal(fx->res[i].r.tag, 10 + (uint64_t)i);
    }
    rd = sx_reader(fx);
    assert_int_equal(store_reader_count(rd, "web1", &v), 0);
    assert_int_equal(v, 0);

    /* The agent resends: the next batch reconnects and stores all of it. */
    for (i = 1; i <= 5; i++)
        sx_submit_snap(fx, 20 + (uint64_t)i, (uint64_t)i, t + i, 1.0, "");
    sx_wait(fx, 11);
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
    sx_free(fx);
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
        SX_SCENARIOS(&pg_backend),
        cmocka_unit_test(test_same_results_as_sqlite),
        cmocka_unit_test(test_connection_lost_idle),
        cmocka_unit_test(test_connection_lost_mid_batch),
    };
    int rc = load_server();

    if (rc)
        return rc;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
