/* bench_sqlite_baseline: the bare SQLite insert loop the collector's durable ingest rate is
 * compared with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "fleet_schema.h"
#include "fleet_snap.h"
#include "store.h"

/*
 * What a plain program storing the collector's rows would do, without anything around it: the
 * same schema (created by the collector's store code), the collector's two statements (INSERT ...
 * ON CONFLICT DO NOTHING into snapshots, then the hosts upsert of last_seen, last_seq and the
 * latest snapshot with its summary) run after every row, the same batch size per transaction, WAL
 * and synchronous=FULL (or NORMAL with --relaxed), the writer's 64 MiB page cache, and SQLite's
 * defaults otherwise (auto-checkpoint in this thread). The rows are the fleet simulator's
 * snapshots (tests/bench/fleet_snap.c) for --hosts hosts, seq advancing round-robin like a fleet
 * streaming at once; their summary columns come from store_summarize(), computed before the clock
 * starts. With --decode the loop also unpacks and summarizes each snapshot.
 *
 * No network, no queue, no thread hand-off: the ratio of the collector's acknowledged rate to this
 * rate is what the rest of the collector costs, less what its writer saves (it updates each
 * host's row once per batch and checkpoints on another thread).
 */

#define POOL 4096u

static const char *const q_insert =
    "INSERT INTO snapshots(host, seq, taken_at, received_at, netns, pressure_pct,"
    " pressure_source, tcp_in_use, tcp_max, udp_in_use, udp_max, exclusive_ports,"
    " kernel_ports, total_sockets, worst_dest, worst_dest_conns, top_pid, top_name,"
    " top_ports, port_starved, data)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
    " ?18, ?19, ?20, ?21)"
    " ON CONFLICT(host, netns, seq) DO NOTHING";
/* Copied from collector/store_sqlite.c (Q_INSERT_SNAP, Q_TOUCH_HOST): the baseline runs the
 * collector's statements without its code. Keep them in step. */
#define LATEST(col)                                                                                \
    " " col " = CASE WHEN latest_taken_at IS NULL OR excluded.latest_taken_at >= latest_taken_at"  \
    " THEN excluded." col " ELSE " col " END"
/* clang-format off */
static const char *const q_touch =
    "INSERT INTO hosts(identity, first_seen, last_seen, last_seq, latest_id,"
    " latest_taken_at, latest_seq, latest_netns, latest_pressure_pct,"
    " latest_pressure_source, latest_tcp_in_use, latest_tcp_max, latest_udp_in_use,"
    " latest_udp_max, latest_exclusive_ports, latest_kernel_ports, latest_total_sockets,"
    " latest_worst_dest, latest_worst_dest_conns, latest_top_pid, latest_top_name,"
    " latest_top_ports, latest_port_starved)"
    " VALUES(?1, ?2, ?2, ?3, ?4, ?5, ?22, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
    " ?16, ?17, ?18, ?19, ?20, ?21)"
    " ON CONFLICT(identity) DO UPDATE SET"
    " last_seen = max(last_seen, excluded.last_seen),"
    " last_seq = max(last_seq, excluded.last_seq),"
    LATEST("latest_id") "," LATEST("latest_taken_at") "," LATEST("latest_seq") ","
    LATEST("latest_netns") "," LATEST("latest_pressure_pct") "," LATEST("latest_pressure_source") ","
    LATEST("latest_tcp_in_use") "," LATEST("latest_tcp_max") "," LATEST("latest_udp_in_use") ","
    LATEST("latest_udp_max") "," LATEST("latest_exclusive_ports") "," LATEST("latest_kernel_ports") ","
    LATEST("latest_total_sockets") "," LATEST("latest_worst_dest") ","
    LATEST("latest_worst_dest_conns") "," LATEST("latest_top_pid") "," LATEST("latest_top_name") ","
    LATEST("latest_top_ports") "," LATEST("latest_port_starved");
/* clang-format on */
static const char *const q_hello =
    "INSERT INTO hosts(identity, first_seen, last_seen, agent_version, os, platform,"
    " interval_ms) VALUES(?1, ?2, ?2, 'fleetsim', 'Linux', 'linux', 1000)";

typedef struct row_s {
    uint8_t *data;
    size_t len;
    Epw__Snapshot *snap; /* unpacked, owns the strings the summary points to */
    store_summary_t sum;
    char dest[STORE_DEST_LEN];
} row_t;

static int check(sqlite3 *db, int rc, const char *what)
{
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    fprintf(stderr, "bench_sqlite_baseline: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

static void bind_opt(sqlite3_stmt *s, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_int64(s, i, v);
}

/* As store_sqlite.c binds the summary columns (netns ... port_starved) from parameter i on. */
static void bind_summary(sqlite3_stmt *s, int i, const store_summary_t *sum)
{
    sqlite3_bind_text(s, i, sum->netns, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, i + 1, sum->pressure_pct);
    sqlite3_bind_text(s, i + 2, sum->pressure_source, -1, SQLITE_STATIC);
    bind_opt(s, i + 3, sum->tcp_in_use);
    bind_opt(s, i + 4, sum->tcp_max);
    bind_opt(s, i + 5, sum->udp_in_use);
    bind_opt(s, i + 6, sum->udp_max);
    sqlite3_bind_int64(s, i + 7, sum->exclusive_ports);
    sqlite3_bind_int64(s, i + 8, sum->kernel_ports);
    sqlite3_bind_int64(s, i + 9, sum->total_sockets);
    if (sum->worst_dest_conns >= 0)
        sqlite3_bind_text(s, i + 10, sum->worst_dest, -1, SQLITE_STATIC);
    bind_opt(s, i + 11, sum->worst_dest_conns);
    bind_opt(s, i + 12, sum->top_pid);
    if (sum->top_pid >= 0)
        sqlite3_bind_text(s, i + 13, sum->top_name, -1, SQLITE_STATIC);
    bind_opt(s, i + 14, sum->top_ports);
    sqlite3_bind_int(s, i + 15, sum->port_starved);
}

static void insert_row(sqlite3 *db, sqlite3_stmt *ins, sqlite3_stmt *touch, const char *host,
                       uint64_t seq, int64_t now, const store_summary_t *sum, const uint8_t *data,
                       size_t len)
{
    sqlite3_bind_text(ins, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 2, (sqlite3_int64)seq);
    sqlite3_bind_int64(ins, 3, now);
    sqlite3_bind_int64(ins, 4, now);
    bind_summary(ins, 5, sum);
    sqlite3_bind_blob64(ins, 21, data, len, SQLITE_STATIC);
    check(db, sqlite3_step(ins), "insert snapshot");
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    if (sqlite3_changes(db) == 0)
        return;
    sqlite3_bind_text(touch, 1, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(touch, 2, now);
    sqlite3_bind_int64(touch, 3, (sqlite3_int64)seq);
    sqlite3_bind_int64(touch, 4, sqlite3_last_insert_rowid(db));
    sqlite3_bind_int64(touch, 5, now);
    bind_summary(touch, 6, sum);
    sqlite3_bind_int64(touch, 22, (sqlite3_int64)seq);
    check(db, sqlite3_step(touch), "touch host");
    sqlite3_reset(touch);
    sqlite3_clear_bindings(touch);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    unsigned long rows = 200000, hosts = 1000, batch = 512;
    int relaxed = 0, json = 0, decode = 0, i;
    static fleet_snap_scratch_t scratch;
    row_t *pool;
    sqlite3 *db;
    sqlite3_stmt *ins, *touch, *hello, *begin, *commit;
    char name[64];
    uint64_t t0, t1;
    unsigned long r, h;
    double secs, bytes = 0;

    for (i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(argv[i], "--db") == 0)
            path = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0)
            rows = strtoul(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--hosts") == 0)
            hosts = strtoul(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--batch") == 0)
            batch = strtoul(v, NULL, 10), i++;
        else if (strcmp(argv[i], "--relaxed") == 0)
            relaxed = 1;
        else if (strcmp(argv[i], "--decode") == 0)
            decode = 1;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: bench_sqlite_baseline --db NEWFILE [--rows N] [--hosts H] "
                            "[--batch B] [--relaxed] [--decode] [--json]\n");
            return 2;
        }
    }
    if (path == NULL || rows == 0 || hosts == 0 || batch == 0) {
        fprintf(stderr, "bench_sqlite_baseline: --db is required (a new file)\n");
        return 2;
    }
    unlink(path);
    /* The collector's own tables and indexes (created by its store code, not timed). */
    fleet_schema_create(path);

    /* The rows, encoded and summarized before the clock starts. */
    pool = calloc(POOL, sizeof(*pool));
    if (pool == NULL)
        return 1;
    for (r = 0; r < POOL; r++) {
        Epw__Snapshot *s;
        snprintf(name, sizeof(name), "fleet-%05lu", r % hosts);
        s = fleet_snap_build(&scratch, (uint32_t)(r % hosts), name, r / hosts + 1,
                             (int64_t)1700000000000 + (int64_t)r, 0);
        pool[r].len = epw__snapshot__get_packed_size(s);
        pool[r].data = malloc(pool[r].len);
        if (pool[r].data == NULL)
            return 1;
        epw__snapshot__pack(s, pool[r].data);
        pool[r].snap = epw__snapshot__unpack(NULL, pool[r].len, pool[r].data);
        if (pool[r].snap == NULL)
            return 1;
        store_summarize(pool[r].snap, &pool[r].sum, pool[r].dest);
    }

    check(NULL, sqlite3_open(path, &db), "open");
    check(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), "wal");
    check(db,
          sqlite3_exec(db, relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", NULL,
                       NULL, NULL),
          "synchronous");
    check(db, sqlite3_exec(db, "PRAGMA cache_size=-65536", NULL, NULL, NULL), "cache_size");
    check(db, sqlite3_prepare_v2(db, q_insert, -1, &ins, NULL), "prepare");
    check(db, sqlite3_prepare_v2(db, q_touch, -1, &touch, NULL), "prepare");
    check(db, sqlite3_prepare_v2(db, q_hello, -1, &hello, NULL), "prepare");
    check(db, sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL), "prepare");
    check(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), "prepare");
    /* The hosts said Hello before streaming. */
    check(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), "begin");
    for (h = 0; h < hosts; h++) {
        snprintf(name, sizeof(name), "fleet-%05lu", h);
        sqlite3_bind_text(hello, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(hello, 2, 1700000000000);
        check(db, sqlite3_step(hello), "hello");
        sqlite3_reset(hello);
    }
    check(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");

    t0 = uv_hrtime();
    for (r = 0; r < rows;) {
        unsigned long b;
        check(db, sqlite3_step(begin), "begin");
        sqlite3_reset(begin);
        for (b = 0; b < batch && r < rows; b++, r++) {
            const row_t *row = &pool[r % POOL];
            int64_t now = (int64_t)1700000000000 + (int64_t)r;
            snprintf(name, sizeof(name), "fleet-%05lu", r % hosts);
            if (decode) {
                Epw__Snapshot *s = epw__snapshot__unpack(NULL, row->len, row->data);
                store_summary_t sum;
                char dest[STORE_DEST_LEN];
                store_summarize(s, &sum, dest);
                insert_row(db, ins, touch, name, r / hosts + 1, now, &sum, row->data, row->len);
                epw__snapshot__free_unpacked(s, NULL);
            } else {
                insert_row(db, ins, touch, name, r / hosts + 1, now, &row->sum, row->data,
                           row->len);
            }
            bytes += (double)row->len;
        }
        check(db, sqlite3_step(commit), "commit");
        sqlite3_reset(commit);
    }
    t1 = uv_hrtime();
    secs = (double)(t1 - t0) / 1e9;
    if (json)
        printf("{\"rows\":%lu,\"hosts\":%lu,\"batch\":%lu,\"synchronous\":\"%s\",\"decode\":%s,"
               "\"seconds\":%.3f,\"rows_per_s\":%.1f,\"mean_bytes\":%.0f}\n",
               rows, hosts, batch, relaxed ? "NORMAL" : "FULL", decode ? "true" : "false", secs,
               (double)rows / secs, bytes / (double)rows);
    else
        printf("bench_sqlite_baseline: %lu rows (%lu hosts, batch %lu, WAL, synchronous=%s%s) in "
               "%.2f s: %.0f rows/s, mean blob %.0f bytes\n",
               rows, hosts, batch, relaxed ? "NORMAL" : "FULL", decode ? ", decode" : "", secs,
               (double)rows / secs, bytes / (double)rows);
    sqlite3_finalize(ins);
    sqlite3_finalize(touch);
    sqlite3_finalize(hello);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    for (r = 0; r < POOL; r++) {
        free(pool[r].data);
        epw__snapshot__free_unpacked(pool[r].snap, NULL);
    }
    free(pool);
    return 0;
}
