/* test_store: the history store on real SQLite files with a real libuv loop: the shared
 * scenarios (support/store_scenarios.c) and what only SQLite has (migration, checkpoints). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <uv.h>

#include "epw_err.h"
#include "store.h"
#include "support/store_scenarios.h"

/* ---- the SQLite backend fixture: a file in a temp dir, looked into with sqlite3 ---- */

/* Runs SQL on the file directly (outside the store); returns the first column of the first row
 * as an integer, or -1 when there is none. */
static int64_t sql_num(sx_fx_t *fx, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_open(fx->target, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void sql_exec(sx_fx_t *fx, const char *sql)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(fx->target, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static sx_backend_t sqlite_backend = {
    .fresh = sx_file_fresh,
    .remove = sx_file_remove,
    .sql_num = sql_num,
    .sql_exec = sql_exec,
    .bad_target = "/nonexistent-dir/x/history.db",
    .blob_type_sql = "SELECT count(*) FROM pragma_table_info('snapshots')"
                     " WHERE name = 'data' AND type = 'BLOB'",
};

/* ---- SQLite only ---- */

/* 1 when a step of the query's plan mentions `needle`. */
static int plan_has(sx_fx_t *fx, const char *sql, const char *needle)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char q[1024];
    int found = 0;

    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_open(fx->target, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW)
        if (strstr((const char *)sqlite3_column_text(s, 3), needle) != NULL)
            found = 1;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return found;
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
    sx_fx_t *fx = sx_new(&sqlite_backend);

    (void)state;
    sx_open(fx, &o);
    sx_submit_snap(fx, 0, 1, base + 1000, 1.0, "");
    sx_submit_snap(fx, 0, 2, base + 3000, 2.0, "");
    sx_submit_snap(fx, 0, 3, base + 2000, 3.0, "");     /* arrives last, taken before seq 2 */
    sx_submit_snap(fx, 0, 4, base + 3000, 4.0, "ns-b"); /* same taken_at: the last stored wins */
    sx_wait(fx, 4);
    assert_int_equal(sx_latest_seq(fx), 4);
    sx_close(fx);

    /* Back to version 2 as the previous build left it, then reopen. */
    sql_exec(fx, "DROP INDEX snapshots_host_time;"
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
                 "UPDATE meta SET value = '2' WHERE key = 'schema_version'");
    sx_open(fx, &o);
    assert_int_equal(sql_num(fx, "SELECT value FROM meta WHERE key = 'schema_version'"), 4);
    assert_int_equal(sx_latest_seq(fx), 4);
    /* The fleet table (as store_sqlite.c's Q_HOSTS) touches no snapshot row. */
    assert_false(plan_has(fx,
                          "SELECT identity, latest_id, latest_seq, latest_pressure_pct FROM hosts"
                          " ORDER BY identity",
                          "snapshots"));
    assert_int_equal(sql_num(fx, "SELECT count(*) FROM pragma_index_info("
                                 "'snapshots_host_time') WHERE name = 'pressure_pct'"),
                     1);
    /* The history query (as store_sqlite.c's Q_HISTORY) reads the index only. */
    assert_true(plan_has(fx,
                         "SELECT (taken_at / 300000) * 300000 AS bucket, max(pressure_pct),"
                         " avg(pressure_pct), count(*) FROM snapshots WHERE host = 'web1'"
                         " AND taken_at >= 0 AND taken_at < 9e15 GROUP BY bucket ORDER BY bucket",
                         "USING COVERING INDEX snapshots_host_time"));
    sx_submit_snap(fx, 0, 5, base + 500, 5.0, ""); /* older than the latest: not the latest */
    sx_wait(fx, 1);
    assert_int_equal(sx_latest_seq(fx), 4);

    /* Retention removes everything: no latest, and the next snapshot is the latest whatever its
     * time. */
    assert_int_equal(store_submit_purge(fx->st, 0, base + 10000), 0);
    sx_wait(fx, 2);
    assert_int_equal(sx_latest_seq(fx), -1);
    sx_submit_snap(fx, 0, 6, base + 100, 6.0, "");
    sx_wait(fx, 3);
    assert_int_equal(sx_latest_seq(fx), 6);
    sx_free(fx);
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
    sx_fx_t *fx = sx_new(&sqlite_backend);
    long long db_size = 0;
    uint64_t seq = 1;
    int round, i, waited;

    (void)state;
    sx_open(fx, NULL);
    for (round = 0; round < 6; round++) {
        fx->nres = 0;
        for (i = 0; i < 1000; i++, seq++)
            sx_submit_snap_ex(fx, seq, t + (int64_t)seq * 1000, 0, 4000);
        sx_wait(fx, 1000);
        assert_int_equal(fx->res[999].r.outcome, STORE_NEW);
    }
    /* Bounded: the checkpointer copies ~24 MiB; 20 s is far more than it needs. */
    for (waited = 0; waited < 2000; waited++) {
        db_size = file_size(fx->target);
        if (db_size > 16ll << 20)
            break;
        uv_sleep(10);
    }
    assert_true(db_size > 16ll << 20);
    sx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SX_SCENARIOS(&sqlite_backend),
        cmocka_unit_test(test_latest_and_migration),
        cmocka_unit_test(test_background_checkpoint),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
