/* bench_queries: populates a large history database once and times the operator's read queries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_log.h"
#include "fleet_schema.h"
#include "fleet_snap.h"
#include "store.h"

/*
 * The database: --hosts hosts (default 100,000), of which --history (default 1,000) have --days
 * (default 7) of history at one snapshot per minute, and every other host has one recent snapshot.
 * It is created through store_open() (so the schema is the collector's own, whatever its version)
 * and then filled with raw SQL in time order (a minute of the whole fleet after another, as the
 * collector would write it, so each host's rows are spread through the file as in production),
 * synchronous=OFF and large transactions. A row in `meta` records the parameters; a database that
 * already carries them is reused as is (populating takes minutes and gigabytes).
 *
 * Then, through store_reader_* (the functions the operator API calls), it times --reps runs of
 * the fleet table (store_reader_hosts) and of one host's 7-day history at a 5-minute step
 * (store_reader_history), reporting the median and the maximum.
 */

#define MINUTE_MS 60000
#define BASE_MS   INT64_C(1760000000000)

static void die_sql(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench_queries: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

static int already_populated(sqlite3 *db, const char *key)
{
    sqlite3_stmt *s;
    int found = 0;

    if (sqlite3_prepare_v2(db, "SELECT 1 FROM meta WHERE key = 'bench_populated' AND value = ?1",
                           -1, &s, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

static void insert(sqlite3 *db, sqlite3_stmt *ins, fleet_snap_scratch_t *sc, uint32_t h,
                   uint64_t seq, int64_t at)
{
    char name[32];
    uint8_t buf[8192];
    Epw__Snapshot *s;
    store_summary_t sum;
    char dest[STORE_DEST_LEN];
    size_t len;

    snprintf(name, sizeof(name), "fleet-%06u", h);
    s = fleet_snap_build(sc, h, name, seq, at, 0);
    len = epw__snapshot__pack(s, buf);
    store_summarize(s, &sum, dest);
    sqlite3_bind_text(ins, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 2, (sqlite3_int64)seq);
    sqlite3_bind_int64(ins, 3, at);
    sqlite3_bind_double(ins, 4, sum.pressure_pct);
    sqlite3_bind_text(ins, 5, sum.pressure_source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 6, sum.tcp_in_use);
    sqlite3_bind_int64(ins, 7, sum.tcp_max);
    sqlite3_bind_int64(ins, 8, sum.udp_in_use);
    sqlite3_bind_int64(ins, 9, sum.udp_max);
    sqlite3_bind_int64(ins, 10, sum.exclusive_ports);
    sqlite3_bind_int64(ins, 11, sum.kernel_ports);
    sqlite3_bind_int64(ins, 12, sum.total_sockets);
    sqlite3_bind_text(ins, 13, sum.worst_dest, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 14, sum.worst_dest_conns);
    sqlite3_bind_int64(ins, 15, sum.top_pid);
    sqlite3_bind_text(ins, 16, sum.top_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 17, sum.top_ports);
    sqlite3_bind_blob(ins, 18, buf, (int)len, SQLITE_TRANSIENT);
    if (sqlite3_step(ins) != SQLITE_DONE)
        die_sql(db, "insert");
    sqlite3_reset(ins);
}

static void populate(const char *path, uint32_t hosts, uint32_t hist, uint32_t days,
                     const char *key)
{
    static fleet_snap_scratch_t sc;
    sqlite3 *db;
    sqlite3_stmt *ins, *host;
    uint64_t t0 = uv_hrtime(), minutes = (uint64_t)days * 1440u, m, rows = 0;
    int64_t end = BASE_MS + (int64_t)minutes * MINUTE_MS;
    uint32_t h;
    char name[32];

    if (sqlite3_open(path, &db) != SQLITE_OK)
        die_sql(db, "open");
    if (already_populated(db, key)) {
        fprintf(stderr, "bench_queries: reusing %s (%s)\n", path, key);
        sqlite3_close(db);
        return;
    }
    if (sqlite3_exec(db,
                     "PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;"
                     "DELETE FROM snapshots; DELETE FROM hosts; DELETE FROM gaps;",
                     NULL, NULL, NULL) != SQLITE_OK)
        die_sql(db, "pragmas");
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO snapshots(host, netns, seq, taken_at, received_at, pressure_pct,"
            " pressure_source, tcp_in_use, tcp_max, udp_in_use, udp_max, exclusive_ports,"
            " kernel_ports, total_sockets, worst_dest, worst_dest_conns, top_pid, top_name,"
            " top_ports, port_starved, data)"
            " VALUES(?1, '', ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
            " ?16, ?17, 0, ?18)",
            -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO hosts(identity, first_seen, last_seen, agent_version, os,"
                           " platform, interval_ms, last_seq) VALUES(?1, ?2, ?3, 'fleetsim',"
                           " 'Linux 6.1.0', 'linux', 60000, ?4)",
                           -1, &host, NULL) != SQLITE_OK)
        die_sql(db, "prepare");
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (h = 0; h < hosts; h++) {
        snprintf(name, sizeof(name), "fleet-%06u", h);
        sqlite3_bind_text(host, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(host, 2, h < hist ? BASE_MS : end - MINUTE_MS);
        sqlite3_bind_int64(host, 3, end);
        sqlite3_bind_int64(host, 4, h < hist ? (sqlite3_int64)minutes : 1);
        if (sqlite3_step(host) != SQLITE_DONE)
            die_sql(db, "insert host");
        sqlite3_reset(host);
        if (h >= hist)
            insert(db, ins, &sc, h, 1, end - MINUTE_MS + h % MINUTE_MS);
    }
    for (m = 0; m < minutes; m++) {
        for (h = 0; h < hist; h++)
            insert(db, ins, &sc, h, m + 1, BASE_MS + (int64_t)m * MINUTE_MS + h * 7);
        rows += hist;
        if (m % 60 == 59) {
            sqlite3_exec(db, "COMMIT; BEGIN", NULL, NULL, NULL);
            if (m % 1440 == 1439)
                fprintf(stderr, "bench_queries: day %llu of %u: %llu rows, %.0f s\n",
                        (unsigned long long)(m / 1440 + 1), days, (unsigned long long)rows,
                        (double)(uv_hrtime() - t0) / 1e9);
        }
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    {
        char sql[1536];
        snprintf(sql, sizeof(sql),
                 "INSERT OR REPLACE INTO meta(key, value) VALUES('bench_populated', '%s');"
                 /* What the writer keeps on every insert (schema version 4). */
                 "UPDATE hosts SET latest_id = (SELECT id FROM snapshots WHERE host ="
                 " hosts.identity ORDER BY taken_at DESC, id DESC LIMIT 1);"
                 "UPDATE hosts SET (latest_taken_at, latest_seq, latest_netns,"
                 " latest_pressure_pct, latest_pressure_source, latest_tcp_in_use, latest_tcp_max,"
                 " latest_udp_in_use, latest_udp_max, latest_exclusive_ports, latest_kernel_ports,"
                 " latest_total_sockets, latest_worst_dest, latest_worst_dest_conns,"
                 " latest_top_pid, latest_top_name, latest_top_ports, latest_port_starved)"
                 " = (SELECT taken_at, seq, netns, pressure_pct, pressure_source, tcp_in_use,"
                 " tcp_max, udp_in_use, udp_max, exclusive_ports, kernel_ports, total_sockets,"
                 " worst_dest, worst_dest_conns, top_pid, top_name, top_ports, port_starved"
                 " FROM snapshots WHERE id = latest_id);"
                 "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;",
                 key);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
            die_sql(db, "finish");
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(host);
    sqlite3_close(db);
    fprintf(stderr,
            "bench_queries: populated %s: %u hosts, %llu history rows + %u latest rows in %.0f s\n",
            path, hosts, (unsigned long long)rows, hosts - hist, (double)(uv_hrtime() - t0) / 1e9);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    uint32_t hosts = 100000, hist = 1000, days = 7, reps = 5, i;
    int json = 0, rc;
    char key[128], ident[32];
    store_reader_t *rd = NULL;
    store_host_list_t *list = NULL;
    store_point_t *pts = NULL;
    size_t npts = 0, nhosts = 0, nlatest = 0, k;
    uint64_t *th, *ts;
    int64_t end;

    for (i = 1; i < (uint32_t)argc; i++) {
        const char *v = i + 1 < (uint32_t)argc ? argv[i + 1] : "0";
        if (strcmp(argv[i], "--db") == 0)
            path = argv[++i];
        else if (strcmp(argv[i], "--hosts") == 0)
            hosts = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--history") == 0)
            hist = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--days") == 0)
            days = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--reps") == 0)
            reps = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: bench_queries --db FILE [--hosts N] [--history H] [--days D] "
                            "[--reps R] [--json]\n");
            return 2;
        }
    }
    if (path == NULL || hist > hosts || reps == 0 || days == 0) {
        fprintf(stderr, "bench_queries: --db is required; --history <= --hosts\n");
        return 2;
    }
    epw_log_set_level(EPW_LOG_WARN);
    snprintf(key, sizeof(key), "hosts=%u history=%u days=%u gen=1", hosts, hist, days);
    fleet_schema_create(path);
    populate(path, hosts, hist, days, key);

    th = calloc(reps, sizeof(*th));
    ts = calloc(reps, sizeof(*ts));
    rc = store_reader_open(store_backend_by_name("sqlite"), path, &rd);
    if (rc || th == NULL || ts == NULL) {
        fprintf(stderr, "bench_queries: reader: %s\n", epw_strerror(rc));
        return 1;
    }
    end = BASE_MS + (int64_t)days * 1440 * MINUTE_MS;
    for (i = 0; i < reps; i++) {
        uint64_t t0 = uv_hrtime();
        rc = store_reader_hosts(rd, &list);
        th[i] = uv_hrtime() - t0;
        if (rc) {
            fprintf(stderr, "bench_queries: hosts: %s\n", epw_strerror(rc));
            return 1;
        }
        nhosts = list->n;
        for (nlatest = 0, k = 0; k < list->n; k++)
            nlatest += list->hosts[k].has_latest != 0;
        store_host_list_free(list);
        snprintf(ident, sizeof(ident), "fleet-%06u", (i * 37u) % hist);
        t0 = uv_hrtime();
        rc = store_reader_history(rd, ident, end - (int64_t)days * 1440 * MINUTE_MS, end,
                                  5 * MINUTE_MS, &pts, &npts);
        ts[i] = uv_hrtime() - t0;
        if (rc) {
            fprintf(stderr, "bench_queries: history: %s\n", epw_strerror(rc));
            return 1;
        }
        free(pts);
    }
    store_reader_close(rd);
    qsort(th, reps, sizeof(*th), cmp_u64);
    qsort(ts, reps, sizeof(*ts), cmp_u64);
    if (json)
        printf("{\"hosts\":%zu,\"with_latest\":%zu,\"history_points\":%zu,\"reps\":%u,"
               "\"fleet_ms\":{\"median\":%.2f,\"max\":%.2f},"
               "\"history_ms\":{\"median\":%.2f,\"max\":%.2f}}\n",
               nhosts, nlatest, npts, reps, (double)th[reps / 2] / 1e6, (double)th[reps - 1] / 1e6,
               (double)ts[reps / 2] / 1e6, (double)ts[reps - 1] / 1e6);
    else
        printf("bench_queries: fleet table (%zu hosts): median %.1f ms, max %.1f ms; 7-day "
               "history at 5 min (%zu points): median %.1f ms, max %.1f ms (%u runs, "
               "store_reader_*)\n",
               nhosts, (double)th[reps / 2] / 1e6, (double)th[reps - 1] / 1e6, npts,
               (double)ts[reps / 2] / 1e6, (double)ts[reps - 1] / 1e6, reps);
    free(th);
    free(ts);
    return 0;
}
