/* store_sqlite: the SQLite backend of the history store; the only code that includes sqlite3.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "store_writer.h"

#define SUB "store"

/*
 * Schema (version 4). Times are ms since the Unix epoch, UTC. Query it with the sqlite3 CLI, e.g.
 *   sqlite3 history.db "SELECT identity, last_seq, gaps, dropped FROM hosts"
 *
 *   meta      (key TEXT PRIMARY KEY, value TEXT NOT NULL)        -- ('schema_version', '1')
 *   hosts     (identity TEXT PRIMARY KEY,  -- the client certificate's CN
 *              first_seen, last_seen INTEGER NOT NULL,
 *              agent_version, os, platform TEXT ('linux'|'windows'|'unknown'), interval_ms INTEGER,
 *              last_seq INTEGER NOT NULL DEFAULT 0,  -- highest seq stored; kept by retention
 *              gaps INTEGER NOT NULL DEFAULT 0,      -- gap events recorded
 *              dropped INTEGER NOT NULL DEFAULT 0,   -- snapshots lost in total
 *            latest_id INTEGER,       -- snapshots.id of the latest taken_at (ties: last stored),
 *            latest_taken_at INTEGER, -- kept by the writer; NULL once retention removed it
 *            latest_seq ... latest_port_starved) -- that snapshot's summary columns (version 4:
 *                                     -- the fleet table reads hosts alone, no seek per host)
 *   snapshots (id INTEGER PRIMARY KEY, host TEXT, netns TEXT ('' = the agent's own), seq,
 *              taken_at, received_at INTEGER, pressure_pct REAL, pressure_source TEXT,
 *              tcp_in_use, tcp_max, udp_in_use, udp_max INTEGER (NULL: not reported),
 *              exclusive_ports, kernel_ports, total_sockets INTEGER,
 *              worst_dest TEXT ('local -> remote:port/proto'), worst_dest_conns INTEGER,
 *              top_pid INTEGER, top_name TEXT, top_ports INTEGER, port_starved INTEGER (0/1),
 *              data BLOB  -- the Snapshot as the agent encoded it (epw__snapshot__unpack)
 *              UNIQUE (host, netns, seq))
 *              INDEX snapshots_host_time (host, taken_at, pressure_pct)
 *                 -- history, snapshot at t; covering for the history query (version 3: a
 *                 -- week of one host is an index range, not 10,000 scattered table rows)
 *              INDEX snapshots_time (taken_at)              -- retention across hosts
 *   gaps      (host TEXT, after_seq INTEGER, dropped INTEGER, recorded_at INTEGER,
 *              PRIMARY KEY (host, after_seq))
 *   alerts    (id INTEGER PRIMARY KEY, host TEXT (identity), netns TEXT, kind TEXT (detect kind
 *              name), subject TEXT ('' | 'tcp' | 'PID:NAME'), key TEXT UNIQUE (the episode),
 *              severity TEXT ('warning'|'critical'), active INTEGER (0/1), raised_at INTEGER,
 *              resolved_at INTEGER (NULL while active), last_notified_at INTEGER, summary TEXT,
 *              evidence TEXT (JSON: the figures that raised it), last_evidence TEXT (JSON: the
 *              latest transition's))                    -- version 2 (issue 4)
 *              INDEX alerts_active (active, host), INDEX alerts_raised (raised_at)
 *              Not touched by retention: alerts are few and are the record.
 *
 * Migrations: `migrations[v]` takes the schema from version v to v + 1; an open applies the
 * missing ones in one transaction and refuses a database newer than this build. Issue 4 (alerts)
 * appends its tables as migrations[1].
 *
 * Durability: WAL with synchronous=FULL by default. An ack tells the agent to delete its spooled
 * copy, so a committed batch must survive not only kill -9 of the collector (WAL with NORMAL
 * already does: the commit is in the WAL file, in the OS page cache) but also power loss or a
 * kernel crash, which with NORMAL can lose the last transactions before a checkpoint. FULL costs
 * one fsync of the WAL per commit, and the writer batches, so it is one fsync per batch, not per
 * snapshot. relaxed_sync selects NORMAL for operators who accept that risk on slow disks.
 *
 * Uniqueness: inserts use ON CONFLICT (...) DO NOTHING rather than INSERT OR IGNORE, so only the
 * duplicate key is ignored; a NOT NULL violation is still an error and not taken for a resend.
 */
static const char *const migrations[] = {
    "CREATE TABLE hosts ("
    " identity TEXT PRIMARY KEY,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " agent_version TEXT,"
    " os TEXT,"
    " platform TEXT,"
    " interval_ms INTEGER,"
    " last_seq INTEGER NOT NULL DEFAULT 0,"
    " gaps INTEGER NOT NULL DEFAULT 0,"
    " dropped INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE snapshots ("
    " id INTEGER PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " netns TEXT NOT NULL DEFAULT '',"
    " seq INTEGER NOT NULL,"
    " taken_at INTEGER NOT NULL,"
    " received_at INTEGER NOT NULL,"
    " pressure_pct REAL NOT NULL,"
    " pressure_source TEXT NOT NULL,"
    " tcp_in_use INTEGER, tcp_max INTEGER, udp_in_use INTEGER, udp_max INTEGER,"
    " exclusive_ports INTEGER NOT NULL,"
    " kernel_ports INTEGER NOT NULL,"
    " total_sockets INTEGER NOT NULL,"
    " worst_dest TEXT, worst_dest_conns INTEGER,"
    " top_pid INTEGER, top_name TEXT, top_ports INTEGER,"
    " port_starved INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " UNIQUE (host, netns, seq));"
    "CREATE INDEX snapshots_host_time ON snapshots(host, taken_at);"
    "CREATE INDEX snapshots_time ON snapshots(taken_at);"
    "CREATE TABLE gaps ("
    " host TEXT NOT NULL,"
    " after_seq INTEGER NOT NULL,"
    " dropped INTEGER NOT NULL,"
    " recorded_at INTEGER NOT NULL,"
    " PRIMARY KEY (host, after_seq));",
    /* 1 -> 2: alerts (issue 4). */
    "CREATE TABLE alerts ("
    " id INTEGER PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " netns TEXT NOT NULL DEFAULT '',"
    " kind TEXT NOT NULL,"
    " subject TEXT NOT NULL DEFAULT '',"
    " key TEXT NOT NULL UNIQUE,"
    " severity TEXT NOT NULL,"
    " active INTEGER NOT NULL,"
    " raised_at INTEGER NOT NULL,"
    " resolved_at INTEGER,"
    " last_notified_at INTEGER NOT NULL,"
    " summary TEXT NOT NULL,"
    " evidence TEXT,"
    " last_evidence TEXT);"
    "CREATE INDEX alerts_active ON alerts(active, host);"
    "CREATE INDEX alerts_raised ON alerts(raised_at);",
    /* 2 -> 3: fleet-scale reads (issue 6). Rebuilding the index reads the table once. */
    "DROP INDEX snapshots_host_time;"
    "CREATE INDEX snapshots_host_time ON snapshots(host, taken_at, pressure_pct);"
    "ALTER TABLE hosts ADD COLUMN latest_id INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_taken_at INTEGER;"
    "UPDATE hosts SET latest_id = (SELECT id FROM snapshots WHERE host = hosts.identity"
    " ORDER BY taken_at DESC, id DESC LIMIT 1);"
    "UPDATE hosts SET latest_taken_at = (SELECT taken_at FROM snapshots WHERE id = latest_id);",
    /* 3 -> 4: the latest snapshot's summary columns copied into hosts (issue 6), so the fleet
     * table reads hosts alone: 100,000 rowid fetches into the snapshots table (each latest row
     * on its own page of a multi-gigabyte file) were most of its time. */
    "ALTER TABLE hosts ADD COLUMN latest_seq INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_netns TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_pressure_pct REAL;"
    "ALTER TABLE hosts ADD COLUMN latest_pressure_source TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_tcp_in_use INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_tcp_max INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_udp_in_use INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_udp_max INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_exclusive_ports INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_kernel_ports INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_total_sockets INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_worst_dest TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_worst_dest_conns INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_top_pid INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_top_name TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_top_ports INTEGER;"
    "ALTER TABLE hosts ADD COLUMN latest_port_starved INTEGER;"
    "UPDATE hosts SET (latest_seq, latest_netns, latest_pressure_pct,"
    " latest_pressure_source, latest_tcp_in_use, latest_tcp_max, latest_udp_in_use,"
    " latest_udp_max, latest_exclusive_ports, latest_kernel_ports, latest_total_sockets,"
    " latest_worst_dest, latest_worst_dest_conns, latest_top_pid, latest_top_name,"
    " latest_top_ports, latest_port_starved)"
    " = (SELECT seq, netns, pressure_pct, pressure_source, tcp_in_use, tcp_max,"
    " udp_in_use, udp_max, exclusive_ports, kernel_ports, total_sockets, worst_dest,"
    " worst_dest_conns, top_pid, top_name, top_ports, port_starved FROM snapshots s"
    " WHERE s.id = hosts.latest_id) WHERE latest_id IS NOT NULL;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_UPSERT_HOST,
    Q_INSERT_SNAP,
    Q_TOUCH_HOST,
    Q_INSERT_GAP,
    Q_GAP_HOST,
    Q_PURGE_SNAP,
    Q_PURGE_GAP,
    Q_PURGE_LATEST,
    Q_UPSERT_ALERT,
    Q_READER_FIRST,
    Q_LAST_SEQ = Q_READER_FIRST,
    Q_COUNT,
    Q_HOSTS,
    Q_HOSTS_COUNT,
    Q_HISTORY,
    Q_SNAP_AT,
    Q_ALERTS,
    Q_N
};

/* One column of the latest snapshot in hosts: replaced unless the stored one was taken later
 * (the right-hand sides see the row as it was, so every column tests the same old time). */
#define LATEST(col)                                                                                \
    " " col " = CASE WHEN latest_taken_at IS NULL OR excluded.latest_taken_at >= latest_taken_at"  \
    " THEN excluded." col " ELSE " col " END"
/* clang-format off */
#define LATEST_SET \
    LATEST("latest_id") "," \
    LATEST("latest_taken_at") "," \
    LATEST("latest_seq") "," \
    LATEST("latest_netns") "," \
    LATEST("latest_pressure_pct") "," \
    LATEST("latest_pressure_source") "," \
    LATEST("latest_tcp_in_use") "," \
    LATEST("latest_tcp_max") "," \
    LATEST("latest_udp_in_use") "," \
    LATEST("latest_udp_max") "," \
    LATEST("latest_exclusive_ports") "," \
    LATEST("latest_kernel_ports") "," \
    LATEST("latest_total_sockets") "," \
    LATEST("latest_worst_dest") "," \
    LATEST("latest_worst_dest_conns") "," \
    LATEST("latest_top_pid") "," \
    LATEST("latest_top_name") "," \
    LATEST("latest_top_ports") "," \
    LATEST("latest_port_starved")
/* clang-format on */

static const char *const queries[Q_N] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_UPSERT_HOST] =
        "INSERT INTO hosts(identity, first_seen, last_seen, agent_version, os, platform,"
        " interval_ms) VALUES(?1, ?2, ?2, ?3, ?4, ?5, ?6)"
        " ON CONFLICT(identity) DO UPDATE SET last_seen = excluded.last_seen,"
        " agent_version = excluded.agent_version, os = excluded.os,"
        " platform = excluded.platform, interval_ms = excluded.interval_ms"
        " RETURNING last_seq",
    [Q_INSERT_SNAP] =
        "INSERT INTO snapshots(host, seq, taken_at, received_at, netns, pressure_pct,"
        " pressure_source, tcp_in_use, tcp_max, udp_in_use, udp_max, exclusive_ports,"
        " kernel_ports, total_sockets, worst_dest, worst_dest_conns, top_pid, top_name,"
        " top_ports, port_starved, data)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
        " ?18, ?19, ?20, ?21)"
        " ON CONFLICT(host, netns, seq) DO NOTHING",
    /* The latest snapshot moves on unless this one was taken before it (a resend of old data):
     * among equal taken_at the last stored wins, as the history's descending walk would pick.
     * Its summary columns move with it (LATEST), so the fleet table reads hosts alone. */
    [Q_TOUCH_HOST] =
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
        " last_seq = max(last_seq, excluded.last_seq)," LATEST_SET,
    [Q_INSERT_GAP] = "INSERT INTO gaps(host, after_seq, dropped, recorded_at)"
                     " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(host, after_seq) DO NOTHING",
    [Q_GAP_HOST] = "INSERT INTO hosts(identity, first_seen, last_seen, gaps, dropped)"
                   " VALUES(?1, ?2, ?2, 1, ?3)"
                   " ON CONFLICT(identity) DO UPDATE SET gaps = gaps + 1,"
                   " dropped = dropped + excluded.dropped",
    [Q_PURGE_SNAP] = "DELETE FROM snapshots WHERE id IN"
                     " (SELECT id FROM snapshots WHERE taken_at < ?1 LIMIT ?2)",
    [Q_PURGE_GAP] = "DELETE FROM gaps WHERE rowid IN"
                    " (SELECT rowid FROM gaps WHERE recorded_at < ?1 LIMIT ?2)",
    /* After a pass: a host whose latest snapshot is older than the cutoff has none left. */
    [Q_PURGE_LATEST] = "UPDATE hosts SET latest_id = NULL, latest_taken_at = NULL"
                       " WHERE latest_taken_at < ?1",
    [Q_UPSERT_ALERT] =
        "INSERT INTO alerts(host, netns, kind, subject, key, severity, active, raised_at,"
        " resolved_at, last_notified_at, summary, evidence, last_evidence)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        " ON CONFLICT(key) DO UPDATE SET severity = excluded.severity,"
        " active = excluded.active, resolved_at = excluded.resolved_at,"
        " last_notified_at = excluded.last_notified_at, summary = excluded.summary,"
        " evidence = coalesce(excluded.evidence, alerts.evidence),"
        " last_evidence = excluded.last_evidence"
        " WHERE alerts.active = 1"
        " RETURNING id",
    [Q_LAST_SEQ] = "SELECT last_seq FROM hosts WHERE identity = ?1",
    [Q_COUNT] = "SELECT count(*) FROM snapshots WHERE host = ?1",
    [Q_HOSTS] = "SELECT identity, first_seen, last_seen, agent_version, os, platform, interval_ms,"
                " last_seq, gaps, dropped, latest_id, latest_seq, latest_taken_at, latest_netns,"
                " latest_pressure_pct, latest_pressure_source, latest_tcp_in_use, latest_tcp_max,"
                " latest_udp_in_use, latest_udp_max, latest_exclusive_ports, latest_kernel_ports,"
                " latest_total_sockets, latest_worst_dest, latest_worst_dest_conns, latest_top_pid,"
                " latest_top_name, latest_top_ports, latest_port_starved"
                " FROM hosts ORDER BY identity",
    [Q_HOSTS_COUNT] = "SELECT count(*) FROM hosts",
    [Q_HISTORY] = "SELECT (taken_at / ?4) * ?4 AS bucket, max(pressure_pct), avg(pressure_pct),"
                  " count(*) FROM snapshots"
                  " WHERE host = ?1 AND taken_at >= ?2 AND taken_at < ?3"
                  " GROUP BY bucket ORDER BY bucket",
    [Q_SNAP_AT] = "SELECT data, seq, taken_at FROM snapshots"
                  " WHERE host = ?1 AND taken_at <= ?2 AND (?3 IS NULL OR netns = ?3)"
                  " ORDER BY taken_at DESC LIMIT 1",
    [Q_ALERTS] = "SELECT id, host, netns, kind, subject, key, severity, active, raised_at,"
                 " resolved_at, last_notified_at, summary,"
                 " coalesce(evidence, last_evidence, '{}'), coalesce(last_evidence, '{}')"
                 " FROM alerts WHERE (?1 < 0 OR active = ?1) AND (?2 IS NULL OR host = ?2)"
                 " AND (active = 1 OR resolved_at >= ?3)"
                 " ORDER BY raised_at DESC, id DESC LIMIT ?4",
};

typedef struct ckpt_s ckpt_t;

struct store_db_s {
    sqlite3 *db;
    sqlite3_stmt *q[Q_N];
    epw_complain_t complain; /* one per connection: a connection has one user thread at a time */
    ckpt_t *ck;              /* the writer's background checkpointer; NULL for readers */
};

/*
 * Checkpoints off the writer thread. With SQLite's default, the committing thread copies the WAL
 * into the database (and fsyncs both) every 1,000 pages; at full ingest that was a quarter of the
 * writer's time, and the writer is the one stage that cannot use a second core. Here the writer's
 * commits only signal (wal hook) a thread with its own connection, which runs PASSIVE
 * checkpoints: they never block the writer. A checkpoint that runs while the writer keeps
 * committing cannot finish the WAL, and SQLite only restarts the WAL from its start once a
 * checkpoint has caught up; so when the WAL passes CKPT_CATCHUP_PAGES the writer itself does one
 * catch-up checkpoint between two batches (copying only what the thread has not), which bounds
 * the WAL file.
 */
#define CKPT_PAGES         4096u  /* ~16 MiB of WAL (4 KiB pages): wake the checkpointer */
#define CKPT_CATCHUP_PAGES 32768u /* ~128 MiB: the writer catches up itself */

struct ckpt_s {
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    sqlite3 *db;    /* the checkpointer's own connection, used by its thread only */
    int want, stop; /* under mu */
    int catchup;    /* writer thread only: the last commit left a WAL past CKPT_CATCHUP_PAGES */
    uint64_t runs, pages; /* checkpointer thread only (logged at debug level on close) */
    epw_complain_t complain;
};

/* Logs an SQLite failure (rate-limited) and translates it. */
static int sq_fail(store_db_t *d, int rc, const char *what)
{
    epw_complain(&d->complain, EPW_LOG_ERROR, SUB, "sqlite: %s: (%d) %s: %s", what, rc,
                 sqlite3_errstr(rc), d->db ? sqlite3_errmsg(d->db) : "no connection");
    return EPW_E_DB;
}

/* Runs a statement that returns no rows (or ignores them), then resets it. */
static int run(store_db_t *d, int q)
{
    sqlite3_stmt *s = d->q[q];
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sq_fail(d, rc, queries[q]);
    return 0;
}

static int exec_sql(store_db_t *d, const char *sql)
{
    int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : sq_fail(d, rc, sql);
}

static void bind_opt(sqlite3_stmt *s, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_int64(s, i, v);
}

static void ckpt_main(void *arg)
{
    ckpt_t *ck = arg;
    int rc, logged, done;

    uv_mutex_lock(&ck->mu);
    for (;;) {
        while (!ck->want && !ck->stop)
            uv_cond_wait(&ck->cond, &ck->mu);
        if (ck->stop)
            break;
        ck->want = 0;
        uv_mutex_unlock(&ck->mu);
        rc = sqlite3_wal_checkpoint_v2(ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            epw_complain(&ck->complain, EPW_LOG_WARN, SUB, "sqlite: background checkpoint: %s",
                         sqlite3_errmsg(ck->db));
        else if (rc == SQLITE_OK && done > 0) {
            ck->runs++;
            ck->pages += (uint64_t)done;
        }
        uv_mutex_lock(&ck->mu);
    }
    uv_mutex_unlock(&ck->mu);
}

/* Writer thread, after each commit: `frames` is the WAL's size in pages. */
static int ckpt_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    ckpt_t *ck = ud;

    (void)db;
    (void)name;
    if ((unsigned)frames >= CKPT_CATCHUP_PAGES) {
        ck->catchup = 1;
    } else if ((unsigned)frames >= CKPT_PAGES) {
        uv_mutex_lock(&ck->mu);
        ck->want = 1;
        uv_cond_signal(&ck->cond);
        uv_mutex_unlock(&ck->mu);
    }
    return SQLITE_OK;
}

static void ckpt_stop(ckpt_t *ck)
{
    if (!ck)
        return;
    uv_mutex_lock(&ck->mu);
    ck->stop = 1;
    uv_cond_signal(&ck->cond);
    uv_mutex_unlock(&ck->mu);
    uv_thread_join(&ck->thread);
    EPW_DEBUG(SUB, "background checkpoints: %llu runs, %llu pages", (unsigned long long)ck->runs,
              (unsigned long long)ck->pages);
    sqlite3_close(ck->db);
    uv_cond_destroy(&ck->cond);
    uv_mutex_destroy(&ck->mu);
    free(ck);
}

/* Starts the checkpointer for the writer connection `d` (after journal_mode=WAL). */
static int ckpt_start(store_db_t *d, const char *path, int relaxed_sync)
{
    ckpt_t *ck;
    int rc, have_mu = 0, have_cond = 0;

    ck = calloc(1, sizeof(*ck));
    if (!ck)
        return UV_ENOMEM;
    rc = sqlite3_open_v2(path, &ck->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(ck->db, 5000);
    /* The checkpoint's fsyncs follow its connection's setting: the same as the writer's. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(ck->db,
                          relaxed_sync ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(d, rc, "checkpointer connection");
        goto out;
    }
    rc = uv_mutex_init(&ck->mu);
    if (rc)
        goto out;
    have_mu = 1;
    rc = uv_cond_init(&ck->cond);
    if (rc)
        goto out;
    have_cond = 1;
    rc = uv_thread_create(&ck->thread, ckpt_main, ck);
    if (rc)
        goto out;
    d->ck = ck;
    /* Replaces SQLite's own auto-checkpoint (which is a wal hook too). */
    sqlite3_wal_hook(d->db, ckpt_hook, ck);
out:
    if (rc) {
        if (have_cond)
            uv_cond_destroy(&ck->cond);
        if (have_mu)
            uv_mutex_destroy(&ck->mu);
        sqlite3_close(ck->db);
        free(ck);
    }
    return rc;
}

static void sq_close(store_db_t *d)
{
    int i;

    if (!d)
        return;
    if (d->ck) {
        sqlite3_wal_hook(d->db, NULL, NULL);
        ckpt_stop(d->ck);
        d->ck = NULL;
    }
    for (i = 0; i < Q_N; i++)
        sqlite3_finalize(d->q[i]);
    if (d->db && sqlite3_close(d->db) != SQLITE_OK)
        EPW_ERROR(SUB, "sqlite: close: %s", sqlite3_errmsg(d->db));
    free(d);
}

/* Opens the connection and prepares queries [first, last). */
static int sq_open(const char *path, int flags, int first, int last, store_db_t **out)
{
    store_db_t *d;
    int rc, i;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return UV_ENOMEM;
    /* NOMUTEX: a connection is used by one thread at a time (the writer's, or a reader's user,
     * see store.h), so SQLite's per-call connection mutex is pure cost: it was a fifth of the
     * fleet table's time (100,000 rows, a dozen column calls each). */
    rc = sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(d, rc, path);
        goto out;
    }
    sqlite3_extended_result_codes(d->db, 1);
    /* Another process (the sqlite3 CLI, a backup) may hold a lock briefly: wait rather than fail.
     */
    rc = sqlite3_busy_timeout(d->db, 5000);
    if (rc != SQLITE_OK) {
        rc = sq_fail(d, rc, "busy_timeout");
        goto out;
    }
    for (i = first; i < last; i++) {
        if (!queries[i])
            continue;
        rc = sqlite3_prepare_v3(d->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &d->q[i], NULL);
        if (rc != SQLITE_OK) {
            rc = sq_fail(d, rc, queries[i]);
            goto out;
        }
    }
    *out = d;
    rc = 0;
out:
    if (rc)
        sq_close(d);
    return rc;
}

/* Brings the schema to SCHEMA_VERSION in one transaction. */
static int migrate(store_db_t *d, const char *path)
{
    sqlite3_stmt *s = NULL;
    int rc, version = 0, v;

    rc = exec_sql(d, "BEGIN IMMEDIATE;"
                     "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    if (rc)
        return rc;
    rc = sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &s,
                            NULL);
    if (rc != SQLITE_OK) {
        rc = sq_fail(d, rc, "read schema_version");
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        version = sqlite3_column_int(s, 0);
    } else if (rc != SQLITE_DONE) {
        rc = sq_fail(d, rc, "read schema_version");
        goto out;
    }
    /* Done with it: an open statement would make DROP INDEX fail (SQLITE_LOCKED). */
    sqlite3_finalize(s);
    s = NULL;
    rc = 0;
    if (version > SCHEMA_VERSION || version < 0) {
        EPW_ERROR(SUB, "%s: schema version %d is newer than this collector's (%d)", path, version,
                  SCHEMA_VERSION);
        rc = EPW_E_DB;
        goto out;
    }
    for (v = version; v < SCHEMA_VERSION && !rc; v++)
        rc = exec_sql(d, migrations[v]);
    if (rc)
        goto out;
    if (version != SCHEMA_VERSION) {
        char sql[128];
        snprintf(sql, sizeof(sql),
                 "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '%d')",
                 SCHEMA_VERSION);
        rc = exec_sql(d, sql);
        if (rc)
            goto out;
        EPW_INFO(SUB, "%s: schema version %d -> %d", path, version, SCHEMA_VERSION);
    }
    rc = exec_sql(d, "COMMIT");
out:
    sqlite3_finalize(s);
    if (rc)
        (void)sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sq_open_writer(const store_options_t *opts, store_db_t **out)
{
    store_db_t *d = NULL;
    sqlite3_stmt *s = NULL;
    int rc;

    *out = NULL;
    rc = sq_open(opts->target, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0, 0, &d);
    if (rc)
        return rc;
    /* WAL: readers run beside the writer; the mode is persistent in the file. */
    rc = sqlite3_prepare_v2(d->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        if (!mode || strcmp(mode, "wal") != 0)
            EPW_WARN(SUB, "%s: journal mode is %s, not wal: readers will block the writer",
                     opts->target, mode ? mode : "?");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK) {
        rc = sq_fail(d, rc, "PRAGMA journal_mode=WAL");
        goto out;
    }
    rc = exec_sql(d, opts->relaxed_sync ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
    if (rc)
        goto out;
    /* The inserts touch every host's place in three indexes: with SQLite's default 2 MB cache
     * those pages were read back from the OS (a pread copy each) on almost every row; the
     * kernel's copy was the largest single cost of a 10,000/s ingest profile. 64 MiB at most,
     * used as the database grows. */
    rc = exec_sql(d, "PRAGMA cache_size=-65536");
    if (rc)
        goto out;
    rc = migrate(d, opts->target);
    if (rc)
        goto out;
    rc = ckpt_start(d, opts->target, opts->relaxed_sync);
    if (rc)
        goto out;
    /* Prepared after the migration: the statements need the tables. */
    for (int i = 0; i < Q_READER_FIRST; i++) {
        rc = sqlite3_prepare_v3(d->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &d->q[i], NULL);
        if (rc != SQLITE_OK) {
            rc = sq_fail(d, rc, queries[i]);
            goto out;
        }
    }
    rc = 0;
    *out = d;
out:
    if (rc)
        sq_close(d);
    return rc;
}

static int sq_open_reader(const char *target, store_db_t **out)
{
    return sq_open(target, SQLITE_OPEN_READONLY, Q_READER_FIRST, Q_N, out);
}

static int sq_begin(store_db_t *d)
{
    return run(d, Q_BEGIN);
}

static int sq_commit(store_db_t *d)
{
    int rc = run(d, Q_COMMIT), logged, done;

    if (!rc)
        epw_complain_clear(&d->complain, SUB, "database writes");
    if (!rc && d->ck && d->ck->catchup) {
        /* Between batches, nothing of ours in flight: this one can reach the WAL's end, so the
         * next transaction starts the WAL over. BUSY: the thread is at it; try after the next. */
        d->ck->catchup = 0;
        int c = sqlite3_wal_checkpoint_v2(d->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged, &done);
        if (c != SQLITE_OK && c != SQLITE_BUSY)
            (void)sq_fail(d, c, "catch-up checkpoint");
    }
    return rc;
}

static void sq_rollback(store_db_t *d)
{
    /* After some errors SQLite has already rolled back; ROLLBACK then fails harmlessly. */
    if (!sqlite3_get_autocommit(d->db))
        (void)run(d, Q_ROLLBACK);
}

static int sq_upsert_host(store_db_t *d, const store_hello_t *h, int64_t now_ms,
                          uint64_t *out_last_seq)
{
    sqlite3_stmt *s = d->q[Q_UPSERT_HOST];
    int rc;

    *out_last_seq = 0;
    sqlite3_bind_text(s, 1, h->identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_text(s, 3, h->agent_version, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, h->os, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, epw_snap_platform_name(h->platform), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)h->interval_ms);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out_last_seq = (uint64_t)sqlite3_column_int64(s, 0);
        rc = sqlite3_step(s); /* RETURNING: finish the statement */
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : sq_fail(d, rc, "upsert host");
}

/* The summary columns after (netns ... port_starved) from parameter `i` on, as Q_TOUCH_HOST's. */
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

static int sq_insert_snapshot(store_db_t *d, const char *identity, int64_t received_at_ms,
                              const store_summary_t *sum, const uint8_t *data, size_t len,
                              int *out_new, int64_t *out_id)
{
    sqlite3_stmt *s = d->q[Q_INSERT_SNAP];
    int rc;

    *out_new = 0;
    *out_id = 0;
    sqlite3_bind_text(s, 1, identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)sum->seq);
    sqlite3_bind_int64(s, 3, sum->taken_at_ms);
    sqlite3_bind_int64(s, 4, received_at_ms);
    bind_summary(s, 5, sum);
    sqlite3_bind_blob64(s, 21, data, len, SQLITE_STATIC);
    rc = run(d, Q_INSERT_SNAP);
    if (rc || sqlite3_changes(d->db) == 0)
        return rc;
    *out_new = 1;
    *out_id = sqlite3_last_insert_rowid(d->db);
    return 0;
}

static int sq_touch_host(store_db_t *d, const char *identity, int64_t seen_ms, uint64_t max_seq,
                         int64_t latest_id, const store_summary_t *latest)
{
    sqlite3_stmt *s = d->q[Q_TOUCH_HOST];

    sqlite3_bind_text(s, 1, identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, seen_ms);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)max_seq);
    sqlite3_bind_int64(s, 4, latest_id);
    sqlite3_bind_int64(s, 5, latest->taken_at_ms);
    bind_summary(s, 6, latest);
    sqlite3_bind_int64(s, 22, (sqlite3_int64)latest->seq);
    return run(d, Q_TOUCH_HOST);
}

static int sq_record_gap(store_db_t *d, const char *identity, uint64_t after_seq, uint64_t dropped,
                         int64_t now_ms, int *out_new)
{
    sqlite3_stmt *s = d->q[Q_INSERT_GAP];
    int rc;

    *out_new = 0;
    sqlite3_bind_text(s, 1, identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)after_seq);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)dropped);
    sqlite3_bind_int64(s, 4, now_ms);
    rc = run(d, Q_INSERT_GAP);
    if (rc || sqlite3_changes(d->db) == 0)
        return rc;
    *out_new = 1;
    s = d->q[Q_GAP_HOST];
    sqlite3_bind_text(s, 1, identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)dropped);
    return run(d, Q_GAP_HOST);
}

static int sq_purge_chunk(store_db_t *d, int64_t older_than_ms, unsigned limit,
                          uint64_t *out_deleted, int *out_more)
{
    static const int qs[] = {Q_PURGE_SNAP, Q_PURGE_GAP};
    int rc = 0, n;
    size_t i;

    *out_deleted = 0;
    *out_more = 0;
    for (i = 0; i < sizeof(qs) / sizeof(qs[0]) && !rc; i++) {
        sqlite3_bind_int64(d->q[qs[i]], 1, older_than_ms);
        sqlite3_bind_int64(d->q[qs[i]], 2, limit);
        rc = run(d, qs[i]);
        if (rc)
            break;
        n = sqlite3_changes(d->db);
        *out_deleted += (uint64_t)n;
        if ((unsigned)n >= limit)
            *out_more = 1;
    }
    if (!rc && !*out_more) {
        sqlite3_bind_int64(d->q[Q_PURGE_LATEST], 1, older_than_ms);
        rc = run(d, Q_PURGE_LATEST);
    }
    return rc;
}

/* ---- read side ---- */

/* Steps a single-value query bound to `identity`. EPW_E_NOTFOUND when it returns no row. */
static int one_int(store_db_t *d, int q, const char *identity, uint64_t *out)
{
    sqlite3_stmt *s = d->q[q];
    int rc;

    *out = 0;
    sqlite3_bind_text(s, 1, identity, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? EPW_E_NOTFOUND : sq_fail(d, rc, queries[q]);
}

static int sq_last_seq(store_db_t *d, const char *identity, uint64_t *out)
{
    return one_int(d, Q_LAST_SEQ, identity, out);
}

static int sq_count(store_db_t *d, const char *identity, uint64_t *out)
{
    return one_int(d, Q_COUNT, identity, out);
}

/* A malloc'd copy of a text column ("" for NULL); NULL only when out of memory. */
static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);

    return strdup(t ? (const char *)t : "");
}

/* A text column into the host list's strings ("" for NULL). */
static const char *col_str(store_host_list_t *l, sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);

    return store_host_list_str(l, t, t ? (size_t)sqlite3_column_bytes(s, i) : 0);
}

static int64_t col_opt(sqlite3_stmt *s, int i)
{
    sqlite3_value *v = sqlite3_column_value(s, i); /* one column lookup for type and value */

    return sqlite3_value_type(v) == SQLITE_NULL ? -1 : sqlite3_value_int64(v);
}

static int sq_hosts(store_db_t *d, store_host_list_t **out)
{
    sqlite3_stmt *s = d->q[Q_HOSTS];
    store_host_list_t *list;
    size_t cap = 0;
    int rc;

    *out = NULL;
    list = calloc(1, sizeof(*list));
    if (!list)
        return UV_ENOMEM;
    /* Sized once (100,000 hosts are ~35 MiB of records: growing by doubling copied and faulted
     * in twice that); hosts added meanwhile still fit, by growing. */
    if (sqlite3_step(d->q[Q_HOSTS_COUNT]) == SQLITE_ROW)
        cap = (size_t)sqlite3_column_int64(d->q[Q_HOSTS_COUNT], 0) + 16;
    sqlite3_reset(d->q[Q_HOSTS_COUNT]);
    list->hosts = malloc(cap * sizeof(*list->hosts));
    if (cap && !list->hosts)
        cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_host_t *h;
        store_summary_t *l;
        if (list->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_host_t *grown = realloc(list->hosts, ncap * sizeof(*grown));
            if (!grown) {
                rc = UV_ENOMEM;
                break;
            }
            list->hosts = grown;
            cap = ncap;
        }
        h = &list->hosts[list->n++];
        memset(h, 0, sizeof(*h));
        l = &h->latest;
        h->identity = col_str(list, s, 0);
        h->first_seen = sqlite3_column_int64(s, 1);
        h->last_seen = sqlite3_column_int64(s, 2);
        h->agent_version = col_str(list, s, 3);
        h->os = col_str(list, s, 4);
        h->platform = col_str(list, s, 5);
        h->interval_ms = (uint64_t)sqlite3_column_int64(s, 6);
        h->last_seq = (uint64_t)sqlite3_column_int64(s, 7);
        h->gaps = (uint64_t)sqlite3_column_int64(s, 8);
        h->dropped = (uint64_t)sqlite3_column_int64(s, 9);
        h->has_latest = sqlite3_column_type(s, 10) != SQLITE_NULL;
        l->seq = (uint64_t)sqlite3_column_int64(s, 11);
        l->taken_at_ms = sqlite3_column_int64(s, 12);
        l->netns = col_str(list, s, 13);
        l->pressure_pct = sqlite3_column_double(s, 14);
        l->pressure_source = col_str(list, s, 15);
        l->tcp_in_use = col_opt(s, 16);
        l->tcp_max = col_opt(s, 17);
        l->udp_in_use = col_opt(s, 18);
        l->udp_max = col_opt(s, 19);
        l->exclusive_ports = col_opt(s, 20);
        l->kernel_ports = col_opt(s, 21);
        l->total_sockets = col_opt(s, 22);
        l->worst_dest = col_str(list, s, 23);
        l->worst_dest_conns = col_opt(s, 24);
        l->top_pid = col_opt(s, 25);
        l->top_name = col_str(list, s, 26);
        l->top_ports = col_opt(s, 27);
        l->port_starved = sqlite3_column_int(s, 28);
        if (!h->identity || !h->agent_version || !h->os || !h->platform || !l->netns ||
            !l->pressure_source || !l->top_name || !l->worst_dest) {
            rc = UV_ENOMEM;
            break;
        }
    }
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) {
        *out = list;
        return 0;
    }
    if (rc != UV_ENOMEM)
        rc = sq_fail(d, rc, "list hosts");
    store_host_list_free(list);
    return rc;
}

static int sq_history(store_db_t *d, const char *identity, int64_t from_ms, int64_t to_ms,
                      int64_t step_ms, store_point_t **out_points, size_t *out_n)
{
    sqlite3_stmt *s = d->q[Q_HISTORY];
    store_point_t *pts = NULL;
    size_t n = 0, cap = 0;
    int rc;

    sqlite3_bind_text(s, 1, identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, from_ms);
    sqlite3_bind_int64(s, 3, to_ms);
    sqlite3_bind_int64(s, 4, step_ms);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            store_point_t *grown = realloc(pts, ncap * sizeof(*grown));
            if (!grown) {
                rc = UV_ENOMEM;
                break;
            }
            pts = grown;
            cap = ncap;
        }
        pts[n].bucket_ms = sqlite3_column_int64(s, 0);
        pts[n].max_pct = sqlite3_column_double(s, 1);
        pts[n].avg_pct = sqlite3_column_double(s, 2);
        pts[n].samples = (uint32_t)sqlite3_column_int64(s, 3);
        n++;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_DONE) {
        *out_points = n ? pts : NULL;
        *out_n = n;
        if (!n)
            free(pts);
        return 0;
    }
    free(pts);
    return rc == UV_ENOMEM ? rc : sq_fail(d, rc, "history");
}

static int sq_snapshot_at(store_db_t *d, const char *identity, const char *netns, int64_t at_ms,
                          store_blob_t *out)
{
    sqlite3_stmt *s = d->q[Q_SNAP_AT];
    int rc;

    sqlite3_bind_text(s, 1, identity, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, at_ms);
    if (netns)
        sqlite3_bind_text(s, 3, netns, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        int len = sqlite3_column_bytes(s, 0);
        const void *blob = sqlite3_column_blob(s, 0);
        out->data = malloc(len > 0 ? (size_t)len : 1);
        if (out->data) {
            if (len > 0)
                memcpy(out->data, blob, (size_t)len);
            out->len = (size_t)len;
            out->seq = (uint64_t)sqlite3_column_int64(s, 1);
            out->taken_at_ms = sqlite3_column_int64(s, 2);
        }
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_ROW)
        return out->data ? 0 : UV_ENOMEM;
    return rc == SQLITE_DONE ? EPW_E_NOTFOUND : sq_fail(d, rc, "snapshot at");
}

static int sq_upsert_alert(store_db_t *d, const store_alert_t *a, int64_t *out_id)
{
    sqlite3_stmt *s = d->q[Q_UPSERT_ALERT];
    int rc;

    *out_id = 0;
    sqlite3_bind_text(s, 1, a->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, a->netns ? a->netns : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, a->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, a->subject ? a->subject : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, a->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, a->severity, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 7, a->active ? 1 : 0);
    sqlite3_bind_int64(s, 8, a->raised_at_ms);
    if (a->resolved_at_ms > 0)
        sqlite3_bind_int64(s, 9, a->resolved_at_ms);
    sqlite3_bind_int64(s, 10, a->last_notified_at_ms);
    sqlite3_bind_text(s, 11, a->summary ? a->summary : "", -1, SQLITE_STATIC);
    if (a->evidence)
        sqlite3_bind_text(s, 12, a->evidence, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 13, a->last_evidence ? a->last_evidence : "{}", -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out_id = sqlite3_column_int64(s, 0);
        rc = sqlite3_step(s); /* RETURNING: finish the statement */
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : sq_fail(d, rc, "upsert alert");
}

static int sq_alerts(store_db_t *d, const store_alert_query_t *q, store_alert_list_t **out)
{
    sqlite3_stmt *s = d->q[Q_ALERTS];
    store_alert_list_t *list;
    size_t cap = 0;
    int rc;

    *out = NULL;
    list = calloc(1, sizeof(*list));
    if (!list)
        return UV_ENOMEM;
    sqlite3_bind_int(s, 1, q->active);
    if (q->host)
        sqlite3_bind_text(s, 2, q->host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, q->since_ms);
    sqlite3_bind_int64(s, 4, q->limit ? (sqlite3_int64)q->limit : -1);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_alert_t *a;
        if (list->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_alert_t *grown = realloc(list->alerts, ncap * sizeof(*grown));
            if (!grown) {
                rc = UV_ENOMEM;
                break;
            }
            list->alerts = grown;
            cap = ncap;
        }
        a = &list->alerts[list->n++];
        memset(a, 0, sizeof(*a));
        a->id = sqlite3_column_int64(s, 0);
        a->host = col_dup(s, 1);
        a->netns = col_dup(s, 2);
        a->kind = col_dup(s, 3);
        a->subject = col_dup(s, 4);
        a->key = col_dup(s, 5);
        a->severity = col_dup(s, 6);
        a->active = sqlite3_column_int(s, 7);
        a->raised_at_ms = sqlite3_column_int64(s, 8);
        a->resolved_at_ms = sqlite3_column_int64(s, 9); /* NULL reads as 0 */
        a->last_notified_at_ms = sqlite3_column_int64(s, 10);
        a->summary = col_dup(s, 11);
        a->evidence = col_dup(s, 12);
        a->last_evidence = col_dup(s, 13);
        if (!a->host || !a->netns || !a->kind || !a->subject || !a->key || !a->severity ||
            !a->summary || !a->evidence || !a->last_evidence) {
            rc = UV_ENOMEM;
            break;
        }
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_DONE) {
        *out = list;
        return 0;
    }
    if (rc != UV_ENOMEM)
        rc = sq_fail(d, rc, "list alerts");
    store_alert_list_free(list);
    return rc;
}

const store_backend_t store_sqlite_backend = {
    .name = "sqlite",
    .open_writer = sq_open_writer,
    .open_reader = sq_open_reader,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .upsert_host = sq_upsert_host,
    .insert_snapshot = sq_insert_snapshot,
    .touch_host = sq_touch_host,
    .record_gap = sq_record_gap,
    .purge_chunk = sq_purge_chunk,
    .upsert_alert = sq_upsert_alert,
    .last_seq = sq_last_seq,
    .count = sq_count,
    .hosts = sq_hosts,
    .history = sq_history,
    .snapshot_at = sq_snapshot_at,
    .alerts = sq_alerts,
};
