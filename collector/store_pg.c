/* store_pg: the PostgreSQL backend of the history store; the only code that includes libpq-fe.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "store_writer.h"

#define SUB "store"

/*
 * Schema (version 3): the same tables, keys and semantics as store_sqlite.c (see its comment),
 * with PostgreSQL types: BIGINT for ms times, seqs and counters, DOUBLE PRECISION for pressure_pct,
 * BYTEA for the protobuf Snapshot, BIGINT GENERATED ALWAYS AS IDENTITY for snapshots.id. Query it
 * with psql, e.g.
 *   psql "$DB" -c "SELECT identity, last_seq, gaps, dropped FROM hosts"
 * The tables live in the connection's search_path (set `options=-csearch_path=epw` in the `db`
 * connection string to keep them in their own schema).
 *
 * Migrations: `migrations[v]` takes the schema from version v to v + 1 and must track the SQLite
 * list version for version (the two backends share meta.schema_version semantics). An open
 * applies the missing ones in one transaction under an advisory lock, so collectors starting
 * together against one database migrate it once; a database newer than this build is refused.
 *
 * Durability: a batch is acknowledged only after COMMIT returned, and the writer connection runs
 * with synchronous_commit on (the server's default; forced back on if the server's configuration
 * turned it off), so a committed batch is in the server's flushed WAL. relaxed_sync selects
 * synchronous_commit=off: a server crash may then lose the last commits, which the agents had
 * already deleted from their spools.
 *
 * Connections: the target is a libpq connection string ("postgresql://user@host/db" or
 * "host=... dbname=..."); connect_timeout defaults to 10 s and TCP keepalives are on. Keep the
 * password out of it (the collector logs its `db` setting): libpq reads ~/.pgpass, PGPASSFILE or
 * PGPASSWORD, and the PG* environment variables fill in whatever the string leaves out. A
 * connection found broken is reopened (statements prepared again) on the next use. The statement
 * that met the loss fails with EPW_E_DB, so the writer's batch rolls back and nothing in it is
 * acknowledged; only a BEGIN or a reader query, which have changed nothing yet, are retried once on
 * a fresh connection. Statements are prepared (PQprepare) with binary parameters and results.
 */
static const char *const migrations[] = {
    "CREATE TABLE hosts ("
    " identity TEXT PRIMARY KEY,"
    " first_seen BIGINT NOT NULL,"
    " last_seen BIGINT NOT NULL,"
    " agent_version TEXT,"
    " os TEXT,"
    " platform TEXT,"
    " interval_ms BIGINT,"
    " last_seq BIGINT NOT NULL DEFAULT 0,"
    " gaps BIGINT NOT NULL DEFAULT 0,"
    " dropped BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE snapshots ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " netns TEXT NOT NULL DEFAULT '',"
    " seq BIGINT NOT NULL,"
    " taken_at BIGINT NOT NULL,"
    " received_at BIGINT NOT NULL,"
    " pressure_pct DOUBLE PRECISION NOT NULL,"
    " pressure_source TEXT NOT NULL,"
    " tcp_in_use BIGINT, tcp_max BIGINT, udp_in_use BIGINT, udp_max BIGINT,"
    " exclusive_ports BIGINT NOT NULL,"
    " kernel_ports BIGINT NOT NULL,"
    " total_sockets BIGINT NOT NULL,"
    " worst_dest TEXT, worst_dest_conns BIGINT,"
    " top_pid BIGINT, top_name TEXT, top_ports BIGINT,"
    " port_starved INTEGER NOT NULL,"
    " data BYTEA NOT NULL,"
    " UNIQUE (host, netns, seq));"
    "CREATE INDEX snapshots_host_time ON snapshots(host, taken_at);"
    "CREATE INDEX snapshots_time ON snapshots(taken_at);"
    "CREATE TABLE gaps ("
    " host TEXT NOT NULL,"
    " after_seq BIGINT NOT NULL,"
    " dropped BIGINT NOT NULL,"
    " recorded_at BIGINT NOT NULL,"
    " PRIMARY KEY (host, after_seq));",
    /* 1 -> 2: alerts (issue 4). */
    "CREATE TABLE alerts ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " netns TEXT NOT NULL DEFAULT '',"
    " kind TEXT NOT NULL,"
    " subject TEXT NOT NULL DEFAULT '',"
    " key TEXT NOT NULL UNIQUE,"
    " severity TEXT NOT NULL,"
    " active INTEGER NOT NULL,"
    " raised_at BIGINT NOT NULL,"
    " resolved_at BIGINT,"
    " last_notified_at BIGINT NOT NULL,"
    " summary TEXT NOT NULL,"
    " evidence TEXT,"
    " last_evidence TEXT);"
    "CREATE INDEX alerts_active ON alerts(active, host);"
    "CREATE INDEX alerts_raised ON alerts(raised_at);",
    /* 2 -> 3: fleet-scale reads (issue 6), as in store_sqlite.c: the history index covers
     * pressure_pct (an index-only scan), hosts keeps its latest snapshot (one scan for the fleet
     * table). */
    "DROP INDEX snapshots_host_time;"
    "CREATE INDEX snapshots_host_time ON snapshots(host, taken_at, pressure_pct);"
    "ALTER TABLE hosts ADD COLUMN latest_id BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_taken_at BIGINT;"
    "UPDATE hosts SET latest_id = (SELECT id FROM snapshots WHERE host = hosts.identity"
    " ORDER BY taken_at DESC, id DESC LIMIT 1);"
    "UPDATE hosts SET latest_taken_at = (SELECT taken_at FROM snapshots s WHERE s.id = latest_id);",
    /* 3 -> 4: the latest snapshot's summary columns in hosts, as in store_sqlite.c. */
    "ALTER TABLE hosts ADD COLUMN latest_seq BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_netns TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_pressure_pct DOUBLE PRECISION;"
    "ALTER TABLE hosts ADD COLUMN latest_pressure_source TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_tcp_in_use BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_tcp_max BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_udp_in_use BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_udp_max BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_exclusive_ports BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_kernel_ports BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_total_sockets BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_worst_dest TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_worst_dest_conns BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_top_pid BIGINT;"
    "ALTER TABLE hosts ADD COLUMN latest_top_name TEXT;"
    "ALTER TABLE hosts ADD COLUMN latest_top_ports BIGINT;"
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

/* Serialises schema migrations of collectors sharing a database ("epwatch" in ASCII). */
#define MIGRATE_LOCK "6570776174636800"

/* Type OIDs of the parameters (pg_type.h is server-side; these values are fixed). */
#define OID_BYTEA  17
#define OID_INT8   20
#define OID_INT4   23
#define OID_TEXT   25
#define OID_FLOAT8 701

#define MAX_PARAMS 22

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
    Q_HISTORY,
    Q_SNAP_AT,
    Q_ALERTS,
    Q_N
};

typedef struct query_s {
    const char *sql;
    const char *types; /* one letter per parameter: T text, I int8, i int4, F float8, B bytea */
} query_t;

/* One column of the latest snapshot in hosts, as store_sqlite.c's LATEST. */
#define LATEST_PG(col)                                                                             \
    " " col " = CASE WHEN hosts.latest_taken_at IS NULL"                                           \
    " OR excluded.latest_taken_at >= hosts.latest_taken_at"                                        \
    " THEN excluded." col " ELSE hosts." col " END"
/* clang-format off */
#define LATEST_SET_PG \
    LATEST_PG("latest_id") "," \
    LATEST_PG("latest_taken_at") "," \
    LATEST_PG("latest_seq") "," \
    LATEST_PG("latest_netns") "," \
    LATEST_PG("latest_pressure_pct") "," \
    LATEST_PG("latest_pressure_source") "," \
    LATEST_PG("latest_tcp_in_use") "," \
    LATEST_PG("latest_tcp_max") "," \
    LATEST_PG("latest_udp_in_use") "," \
    LATEST_PG("latest_udp_max") "," \
    LATEST_PG("latest_exclusive_ports") "," \
    LATEST_PG("latest_kernel_ports") "," \
    LATEST_PG("latest_total_sockets") "," \
    LATEST_PG("latest_worst_dest") "," \
    LATEST_PG("latest_worst_dest_conns") "," \
    LATEST_PG("latest_top_pid") "," \
    LATEST_PG("latest_top_name") "," \
    LATEST_PG("latest_top_ports") "," \
    LATEST_PG("latest_port_starved")
/* clang-format on */

static const query_t queries[Q_N] = {
    [Q_BEGIN] = {"BEGIN", ""},
    [Q_COMMIT] = {"COMMIT", ""},
    [Q_ROLLBACK] = {"ROLLBACK", ""},
    [Q_UPSERT_HOST] = {"INSERT INTO hosts(identity, first_seen, last_seen, agent_version, os,"
                       " platform, interval_ms) VALUES($1, $2, $2, $3, $4, $5, $6)"
                       " ON CONFLICT(identity) DO UPDATE SET last_seen = excluded.last_seen,"
                       " agent_version = excluded.agent_version, os = excluded.os,"
                       " platform = excluded.platform, interval_ms = excluded.interval_ms"
                       " RETURNING hosts.last_seq",
                       "TITTTI"},
    [Q_INSERT_SNAP] = {"INSERT INTO snapshots(host, seq, taken_at, received_at, netns,"
                       " pressure_pct, pressure_source, tcp_in_use, tcp_max, udp_in_use, udp_max,"
                       " exclusive_ports, kernel_ports, total_sockets, worst_dest,"
                       " worst_dest_conns, top_pid, top_name, top_ports, port_starved, data)"
                       " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
                       " $16, $17, $18, $19, $20, $21)"
                       " ON CONFLICT(host, netns, seq) DO NOTHING RETURNING id",
                       "TIIITFTIIIIIIITIITIiB"},
    /* The latest snapshot as in store_sqlite.c: moves on unless this one was taken before it,
     * with its summary columns. */
    [Q_TOUCH_HOST] =
        {"INSERT INTO hosts(identity, first_seen, last_seen, last_seq, latest_id,"
         " latest_taken_at, latest_seq, latest_netns, latest_pressure_pct,"
         " latest_pressure_source, latest_tcp_in_use, latest_tcp_max, latest_udp_in_use,"
         " latest_udp_max, latest_exclusive_ports, latest_kernel_ports, latest_total_sockets,"
         " latest_worst_dest, latest_worst_dest_conns, latest_top_pid, latest_top_name,"
         " latest_top_ports, latest_port_starved)"
         " VALUES($1, $2, $2, $3, $4, $5, $22, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
         " $16, $17, $18, $19, $20, $21)"
         " ON CONFLICT(identity) DO UPDATE SET"
         " last_seen = GREATEST(hosts.last_seen, excluded.last_seen),"
         " last_seq = GREATEST(hosts.last_seq, excluded.last_seq)," LATEST_SET_PG,
         "TIIIITFTIIIIIIITIITIiI"},
    [Q_INSERT_GAP] = {"INSERT INTO gaps(host, after_seq, dropped, recorded_at)"
                      " VALUES($1, $2, $3, $4) ON CONFLICT(host, after_seq) DO NOTHING",
                      "TIII"},
    [Q_GAP_HOST] = {"INSERT INTO hosts(identity, first_seen, last_seen, gaps, dropped)"
                    " VALUES($1, $2, $2, 1, $3)"
                    " ON CONFLICT(identity) DO UPDATE SET gaps = hosts.gaps + 1,"
                    " dropped = hosts.dropped + excluded.dropped",
                    "TII"},
    [Q_PURGE_SNAP] = {"DELETE FROM snapshots WHERE id IN"
                      " (SELECT id FROM snapshots WHERE taken_at < $1 LIMIT $2)",
                      "II"},
    [Q_PURGE_GAP] = {"DELETE FROM gaps WHERE (host, after_seq) IN"
                     " (SELECT host, after_seq FROM gaps WHERE recorded_at < $1 LIMIT $2)",
                     "II"},
    [Q_PURGE_LATEST] = {"UPDATE hosts SET latest_id = NULL, latest_taken_at = NULL"
                        " WHERE latest_taken_at < $1",
                        "I"},
    [Q_UPSERT_ALERT] = {"INSERT INTO alerts(host, netns, kind, subject, key, severity, active,"
                        " raised_at, resolved_at, last_notified_at, summary, evidence,"
                        " last_evidence)"
                        " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                        " ON CONFLICT(key) DO UPDATE SET severity = excluded.severity,"
                        " active = excluded.active, resolved_at = excluded.resolved_at,"
                        " last_notified_at = excluded.last_notified_at,"
                        " summary = excluded.summary,"
                        " evidence = coalesce(excluded.evidence, alerts.evidence),"
                        " last_evidence = excluded.last_evidence"
                        " WHERE alerts.active = 1"
                        " RETURNING alerts.id",
                        "TTTTTTiIIITTT"},
    [Q_LAST_SEQ] = {"SELECT last_seq FROM hosts WHERE identity = $1", "T"},
    [Q_COUNT] = {"SELECT count(*) FROM snapshots WHERE host = $1", "T"},
    /* COLLATE "C": byte order, as SQLite's. hosts.latest_*: see Q_TOUCH_HOST. */
    [Q_HOSTS] =
        {"SELECT identity, first_seen, last_seen, agent_version, os, platform, interval_ms,"
         " last_seq, gaps, dropped, latest_id, latest_seq, latest_taken_at, latest_netns,"
         " latest_pressure_pct, latest_pressure_source, latest_tcp_in_use, latest_tcp_max,"
         " latest_udp_in_use, latest_udp_max, latest_exclusive_ports, latest_kernel_ports,"
         " latest_total_sockets, latest_worst_dest, latest_worst_dest_conns, latest_top_pid,"
         " latest_top_name, latest_top_ports, latest_port_starved"
         " FROM hosts ORDER BY identity COLLATE \"C\"",
         ""},
    /* Integer division truncates toward zero in both databases: the same buckets. */
    [Q_HISTORY] = {"SELECT (taken_at / $4) * $4 AS bucket, max(pressure_pct), avg(pressure_pct),"
                   " count(*) FROM snapshots"
                   " WHERE host = $1 AND taken_at >= $2 AND taken_at < $3"
                   " GROUP BY bucket ORDER BY bucket",
                   "TIII"},
    [Q_SNAP_AT] = {"SELECT data, seq, taken_at FROM snapshots"
                   " WHERE host = $1 AND taken_at <= $2 AND ($3::text IS NULL OR netns = $3)"
                   " ORDER BY taken_at DESC, id DESC LIMIT 1",
                   "TIT"},
    /* COLLATE-free: ordered by numbers only. LIMIT NULL is no limit. */
    [Q_ALERTS] = {"SELECT id, host, netns, kind, subject, key, severity, active, raised_at,"
                  " resolved_at, last_notified_at, summary,"
                  " coalesce(evidence, last_evidence, '{}'), coalesce(last_evidence, '{}')"
                  " FROM alerts WHERE ($1 < 0 OR active = $1) AND ($2::text IS NULL OR host = $2)"
                  " AND (active = 1 OR resolved_at >= $3)"
                  " ORDER BY raised_at DESC, id DESC LIMIT $4",
                  "iTII"},
};

struct store_db_s {
    PGconn *conn;
    char *conninfo;
    int first, last;         /* the prepared queries [first, last) */
    int in_tx;               /* a BEGIN succeeded and no COMMIT/ROLLBACK has ended it */
    int relaxed_sync;        /* writer: synchronous_commit=off */
    epw_complain_t complain; /* one per connection: a connection has one user thread at a time */
};

/* Parameters of one execution: text and bytea point at the caller's memory, numbers are kept
 * here in network byte order. */
typedef struct params_s {
    const char *v[MAX_PARAMS];
    int len[MAX_PARAMS];
    int fmt[MAX_PARAMS];
    unsigned char num[MAX_PARAMS][8];
    int n;
} params_t;

static void p_text(params_t *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

static void p_null(params_t *p)
{
    p_text(p, NULL);
}

static void p_be(params_t *p, uint64_t v, int bytes)
{
    int i;

    for (i = 0; i < bytes; i++)
        p->num[p->n][i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    p->v[p->n] = (const char *)p->num[p->n];
    p->len[p->n] = bytes;
    p->fmt[p->n] = 1;
    p->n++;
}

static void p_i64(params_t *p, int64_t v)
{
    p_be(p, (uint64_t)v, 8);
}

static void p_i32(params_t *p, int32_t v)
{
    p_be(p, (uint32_t)v, 4);
}

/* -1 (not reported) is stored as NULL. */
static void p_opt(params_t *p, int64_t v)
{
    if (v < 0)
        p_null(p);
    else
        p_i64(p, v);
}

static void p_f64(params_t *p, double d)
{
    uint64_t bits;

    memcpy(&bits, &d, sizeof(bits));
    p_be(p, bits, 8);
}

static void p_blob(params_t *p, const uint8_t *data, size_t len)
{
    p->v[p->n] = (const char *)data;
    p->len[p->n] = (int)len;
    p->fmt[p->n] = 1;
    p->n++;
}

/* ---- binary result columns ---- */

static int is_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col);
}

/* An integer column of any width (int2/int4/int8); 0 for NULL. */
static int64_t col_int(const PGresult *r, int row, int col)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col), i;
    uint64_t v = 0;

    if (is_null(r, row, col) || (len != 2 && len != 4 && len != 8))
        return 0;
    for (i = 0; i < len; i++)
        v = (v << 8) | b[i];
    if (len < 8 && (b[0] & 0x80)) /* sign-extend */
        v |= ~(uint64_t)0 << (8 * len);
    return (int64_t)v;
}

static int64_t col_opt(const PGresult *r, int row, int col)
{
    return is_null(r, row, col) ? -1 : col_int(r, row, col);
}

static double col_f64(const PGresult *r, int row, int col)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t bits = 0;
    double d = 0;
    int i;

    if (is_null(r, row, col) || PQgetlength(r, row, col) != 8)
        return 0;
    for (i = 0; i < 8; i++)
        bits = (bits << 8) | b[i];
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* A malloc'd copy of a text column ("" for NULL); NULL only when out of memory. libpq ends
 * every value, binary ones included, with a NUL. */
static char *col_dup(const PGresult *r, int row, int col)
{
    return strdup(is_null(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* A text column into the host list's strings ("" for NULL). */
static const char *col_str(store_host_list_t *l, const PGresult *r, int row, int col)
{
    if (is_null(r, row, col))
        return store_host_list_str(l, "", 0);
    return store_host_list_str(l, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

/* ---- connection ---- */

/* Logs a libpq failure (rate-limited) and translates it. `res` may be NULL. */
static int pg_fail(store_db_t *d, const PGresult *res, const char *what)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char line[512];
    size_t n = 0;

    if (!msg || !*msg)
        msg = d->conn ? PQerrorMessage(d->conn) : "no connection";
    /* libpq's messages span lines (hints, the query marker): one log line, blanks folded. */
    for (; *msg && n < sizeof(line) - 1; msg++) {
        char c = (*msg == '\n' || *msg == '\t' || *msg == '\r') ? ' ' : *msg;
        if (c != ' ' || (n && line[n - 1] != ' '))
            line[n++] = c;
    }
    while (n && line[n - 1] == ' ')
        n--;
    line[n] = '\0';
    epw_complain(&d->complain, EPW_LOG_ERROR, SUB, "postgresql: %s: (%s) %s", what,
                 state ? state : "-", line);
    return EPW_E_DB;
}

static int connection_ok(const store_db_t *d)
{
    return d->conn && PQstatus(d->conn) == CONNECTION_OK;
}

/* Runs one unprepared command that returns no rows (schema, settings). */
static int exec_sql(store_db_t *d, const char *sql)
{
    PGresult *r = PQexec(d->conn, sql);
    int rc = 0;

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = pg_fail(d, r, sql);
    PQclear(r);
    return rc;
}

static void pg_disconnect(store_db_t *d)
{
    if (d->conn)
        PQfinish(d->conn);
    d->conn = NULL;
    d->in_tx = 0;
}

/* Writer: synchronous_commit as documented above. */
static int set_sync(store_db_t *d)
{
    PGresult *r;
    int rc = 0;

    if (d->relaxed_sync)
        return exec_sql(d, "SET synchronous_commit = off");
    r = PQexec(d->conn, "SHOW synchronous_commit");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = pg_fail(d, r, "SHOW synchronous_commit");
    } else if (strcmp(PQgetvalue(r, 0, 0), "off") == 0) {
        EPW_WARN(SUB, "postgresql: the server runs with synchronous_commit=off: turning it on for"
                      " the collector's writes (acks must follow durable commits)");
        rc = exec_sql(d, "SET synchronous_commit = on");
    }
    PQclear(r);
    return rc;
}

/* Opens the connection and prepares the queries [d->first, d->last). */
static int pg_connect(store_db_t *d)
{
    /* Keywords are applied in order: the target (expanded as a connection string) overrides the
     * defaults before it, and fallback_application_name only fills in when it names none. The
     * defaults bound how long a vanished server (no RST) can hold the writer: keepalives
     * notice a dead peer while waiting for a reply, tcp_user_timeout while sending. */
    const char *const keys[] = {"connect_timeout",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "dbname",
                                "fallback_application_name",
                                NULL};
    const char *const vals[] = {
        "10", "1", "30", "10", "3", "60000", d->conninfo, "epwatch-collector", NULL};
    Oid types[MAX_PARAMS];
    char name[24];
    int rc = 0, i;
    size_t j;

    pg_disconnect(d);
    d->conn = PQconnectdbParams(keys, vals, 1);
    if (!d->conn)
        return UV_ENOMEM;
    if (PQstatus(d->conn) != CONNECTION_OK) {
        rc = pg_fail(d, NULL, "connect");
        goto out;
    }
    /* Binary int8 parameters and results, and the ms arithmetic, do not depend on these, but
     * text ones must arrive as UTF-8 as they do from SQLite. */
    if (PQsetClientEncoding(d->conn, "UTF8") != 0) {
        rc = pg_fail(d, NULL, "client_encoding");
        goto out;
    }
    if (d->first == 0) {
        rc = set_sync(d);
        if (rc)
            goto out;
    }
    for (i = d->first; i < d->last; i++) {
        PGresult *r;
        for (j = 0; queries[i].types[j]; j++) {
            switch (queries[i].types[j]) {
            case 'I':
                types[j] = OID_INT8;
                break;
            case 'i':
                types[j] = OID_INT4;
                break;
            case 'F':
                types[j] = OID_FLOAT8;
                break;
            case 'B':
                types[j] = OID_BYTEA;
                break;
            default:
                types[j] = OID_TEXT;
                break;
            }
        }
        snprintf(name, sizeof(name), "epw_q%d", i);
        r = PQprepare(d->conn, name, queries[i].sql, (int)j, types);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pg_fail(d, r, queries[i].sql);
        PQclear(r);
        if (rc)
            goto out;
    }
out:
    if (rc)
        pg_disconnect(d);
    return rc;
}

/*
 * Executes prepared query q with binary results. *out is the result (PQclear it) when 0 is
 * returned. A broken connection is reopened first; a loss met during the call is retried once on
 * a new connection only outside a transaction (`retry`), where nothing has been changed yet.
 */
static int run_q(store_db_t *d, int q, const params_t *p, int retry, PGresult **out)
{
    char name[24];
    PGresult *r = NULL;
    ExecStatusType st;
    int rc = 0, attempt;

    *out = NULL;
    snprintf(name, sizeof(name), "epw_q%d", q);
    for (attempt = 0; attempt < 2; attempt++) {
        if (!connection_ok(d)) {
            if (d->in_tx) {
                /* The transaction died with the connection: the caller rolls back. */
                d->in_tx = 0;
                return pg_fail(d, NULL, "connection lost in a transaction");
            }
            rc = pg_connect(d);
            if (rc)
                return rc;
        }
        r = PQexecPrepared(d->conn, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                           p ? p->fmt : NULL, 1);
        st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            *out = r;
            return 0;
        }
        if (connection_ok(d) || !retry || d->in_tx || attempt) {
            rc = pg_fail(d, r, queries[q].sql);
            PQclear(r);
            if (!connection_ok(d))
                d->in_tx = 0;
            return rc;
        }
        (void)pg_fail(d, r, "connection lost, reconnecting");
        PQclear(r);
    }
    return EPW_E_INTERNAL; /* not reached */
}

/* Runs q and discards its result; *out_changed (may be NULL) gets the rows affected. */
static int run_cmd(store_db_t *d, int q, const params_t *p, int retry, uint64_t *out_changed)
{
    PGresult *r;
    int rc = run_q(d, q, p, retry, &r);

    if (!rc && out_changed)
        *out_changed = strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return rc;
}

static void pg_close(store_db_t *d)
{
    if (!d)
        return;
    pg_disconnect(d);
    free(d->conninfo);
    free(d);
}

static int pg_new(const char *target, int first, int last, store_db_t **out)
{
    store_db_t *d;

    *out = NULL;
    if (!target)
        return UV_EINVAL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return UV_ENOMEM;
    d->conninfo = strdup(target);
    if (!d->conninfo) {
        free(d);
        return UV_ENOMEM;
    }
    d->first = first;
    d->last = last;
    *out = d;
    return 0;
}

/* Brings the schema to SCHEMA_VERSION in one transaction (the connection has nothing prepared
 * yet: the statements need the tables). */
static int migrate(store_db_t *d)
{
    PGresult *r = NULL;
    int rc, version = 0, v;

    rc = exec_sql(d, "BEGIN");
    if (rc)
        return rc;
    rc = exec_sql(d, "SELECT pg_advisory_xact_lock(x'" MIGRATE_LOCK "'::bigint)");
    if (rc)
        goto out;
    rc = exec_sql(d, "SET LOCAL client_min_messages = warning"); /* no NOTICE for IF NOT EXISTS */
    if (rc)
        goto out;
    rc = exec_sql(d, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    if (rc)
        goto out;
    r = PQexec(d->conn, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = pg_fail(d, r, "read schema_version");
        goto out;
    }
    if (PQntuples(r) == 1)
        version = atoi(PQgetvalue(r, 0, 0));
    if (version > SCHEMA_VERSION || version < 0) {
        EPW_ERROR(SUB, "postgresql: schema version %d is newer than this collector's (%d)", version,
                  SCHEMA_VERSION);
        rc = EPW_E_DB;
        goto out;
    }
    for (v = version; v < SCHEMA_VERSION && !rc; v++)
        rc = exec_sql(d, migrations[v]);
    if (rc)
        goto out;
    if (version != SCHEMA_VERSION) {
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO meta(key, value) VALUES('schema_version', '%d')"
                 " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 SCHEMA_VERSION);
        rc = exec_sql(d, sql);
        if (rc)
            goto out;
        EPW_INFO(SUB, "postgresql: schema version %d -> %d", version, SCHEMA_VERSION);
    }
    rc = exec_sql(d, "COMMIT");
out:
    PQclear(r);
    if (rc)
        PQclear(PQexec(d->conn, "ROLLBACK"));
    return rc;
}

static int pg_open_writer(const store_options_t *opts, store_db_t **out)
{
    store_db_t *d = NULL;
    int rc;

    *out = NULL;
    rc = pg_new(opts->target, 0, 0, &d);
    if (rc)
        return rc;
    d->relaxed_sync = opts->relaxed_sync;
    rc = pg_connect(d); /* with nothing to prepare */
    if (rc)
        goto out;
    rc = migrate(d);
    if (rc)
        goto out;
    d->last = Q_READER_FIRST;
    rc = pg_connect(d); /* again, now preparing the writer's statements */
    if (rc)
        goto out;
    *out = d;
out:
    if (rc)
        pg_close(d);
    return rc;
}

static int pg_open_reader(const char *target, store_db_t **out)
{
    store_db_t *d = NULL;
    int rc;

    *out = NULL;
    rc = pg_new(target, Q_READER_FIRST, Q_N, &d);
    if (rc)
        return rc;
    rc = pg_connect(d);
    if (rc) {
        pg_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

static int pg_begin(store_db_t *d)
{
    int rc;

    d->in_tx = 0;
    rc = run_cmd(d, Q_BEGIN, NULL, 1, NULL);
    if (!rc)
        d->in_tx = 1;
    return rc;
}

static int pg_commit(store_db_t *d)
{
    PGresult *r = NULL;
    int rc;

    /* COMMIT of a transaction in the aborted state succeeds and rolls back: never take that
     * for a commit. */
    if (!connection_ok(d) || PQtransactionStatus(d->conn) != PQTRANS_INTRANS) {
        rc = pg_fail(d, NULL, "commit: no healthy transaction");
        goto out;
    }
    rc = run_q(d, Q_COMMIT, NULL, 0, &r);
    if (!rc && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = pg_fail(d, r, "commit rolled back");
out:
    PQclear(r);
    d->in_tx = 0;
    if (!rc)
        epw_complain_clear(&d->complain, SUB, "database writes");
    return rc;
}

static void pg_rollback(store_db_t *d)
{
    PGresult *r;

    /* Also after a failed COMMIT: a transaction in the aborted state still needs its ROLLBACK.
     * On a lost connection there is nothing to roll back; the next BEGIN reconnects. */
    d->in_tx = 0;
    if (!connection_ok(d) || PQtransactionStatus(d->conn) == PQTRANS_IDLE)
        return;
    if (!run_q(d, Q_ROLLBACK, NULL, 0, &r))
        PQclear(r);
}

static int pg_upsert_host(store_db_t *d, const store_hello_t *h, int64_t now_ms,
                          uint64_t *out_last_seq)
{
    params_t p = {.n = 0};
    PGresult *r;
    int rc;

    *out_last_seq = 0;
    p_text(&p, h->identity);
    p_i64(&p, now_ms);
    p_text(&p, h->agent_version);
    p_text(&p, h->os);
    p_text(&p, epw_snap_platform_name(h->platform));
    p_i64(&p, (int64_t)h->interval_ms);
    rc = run_q(d, Q_UPSERT_HOST, &p, 0, &r);
    if (rc)
        return rc;
    if (PQntuples(r) == 1)
        *out_last_seq = (uint64_t)col_int(r, 0, 0);
    else
        rc = pg_fail(d, r, "upsert host: no row returned");
    PQclear(r);
    return rc;
}

/* The summary columns (netns ... port_starved), as Q_INSERT_SNAP and Q_TOUCH_HOST take them. */
static void p_summary(params_t *p, const store_summary_t *sum)
{
    p_text(p, sum->netns);
    p_f64(p, sum->pressure_pct);
    p_text(p, sum->pressure_source);
    p_opt(p, sum->tcp_in_use);
    p_opt(p, sum->tcp_max);
    p_opt(p, sum->udp_in_use);
    p_opt(p, sum->udp_max);
    p_i64(p, sum->exclusive_ports);
    p_i64(p, sum->kernel_ports);
    p_i64(p, sum->total_sockets);
    if (sum->worst_dest_conns >= 0)
        p_text(p, sum->worst_dest);
    else
        p_null(p);
    p_opt(p, sum->worst_dest_conns);
    p_opt(p, sum->top_pid);
    if (sum->top_pid >= 0)
        p_text(p, sum->top_name);
    else
        p_null(p);
    p_opt(p, sum->top_ports);
    p_i32(p, sum->port_starved);
}

static int pg_insert_snapshot(store_db_t *d, const char *identity, int64_t received_at_ms,
                              const store_summary_t *sum, const uint8_t *data, size_t len,
                              int *out_new, int64_t *out_id)
{
    params_t p = {.n = 0};
    PGresult *r = NULL;
    int rc;

    *out_new = 0;
    *out_id = 0;
    if (len > (size_t)0x3fffffff) /* a bytea holds at most 1 GiB; the wire limit is far below */
        return UV_EINVAL;
    p_text(&p, identity);
    p_i64(&p, (int64_t)sum->seq);
    p_i64(&p, sum->taken_at_ms);
    p_i64(&p, received_at_ms);
    p_summary(&p, sum);
    p_blob(&p, data, len);
    rc = run_q(d, Q_INSERT_SNAP, &p, 0, &r);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) { /* a duplicate: RETURNING yields nothing */
        PQclear(r);
        return 0;
    }
    *out_id = col_int(r, 0, 0);
    PQclear(r);
    *out_new = 1;
    return 0;
}

static int pg_touch_host(store_db_t *d, const char *identity, int64_t seen_ms, uint64_t max_seq,
                         int64_t latest_id, const store_summary_t *latest)
{
    params_t p = {.n = 0};

    p_text(&p, identity);
    p_i64(&p, seen_ms);
    p_i64(&p, (int64_t)max_seq);
    p_i64(&p, latest_id);
    p_i64(&p, latest->taken_at_ms);
    p_summary(&p, latest);
    p_i64(&p, (int64_t)latest->seq);
    return run_cmd(d, Q_TOUCH_HOST, &p, 0, NULL);
}

static int pg_record_gap(store_db_t *d, const char *identity, uint64_t after_seq, uint64_t dropped,
                         int64_t now_ms, int *out_new)
{
    params_t p = {.n = 0};
    uint64_t changed = 0;
    int rc;

    *out_new = 0;
    p_text(&p, identity);
    p_i64(&p, (int64_t)after_seq);
    p_i64(&p, (int64_t)dropped);
    p_i64(&p, now_ms);
    rc = run_cmd(d, Q_INSERT_GAP, &p, 0, &changed);
    if (rc || changed == 0)
        return rc;
    *out_new = 1;
    p.n = 0;
    p_text(&p, identity);
    p_i64(&p, now_ms);
    p_i64(&p, (int64_t)dropped);
    return run_cmd(d, Q_GAP_HOST, &p, 0, NULL);
}

static int pg_purge_chunk(store_db_t *d, int64_t older_than_ms, unsigned limit,
                          uint64_t *out_deleted, int *out_more)
{
    static const int qs[] = {Q_PURGE_SNAP, Q_PURGE_GAP};
    params_t p = {.n = 0};
    uint64_t n;
    int rc = 0;
    size_t i;

    *out_deleted = 0;
    *out_more = 0;
    for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        p.n = 0;
        p_i64(&p, older_than_ms);
        p_i64(&p, (int64_t)limit);
        rc = run_cmd(d, qs[i], &p, 0, &n);
        if (rc)
            break;
        *out_deleted += n;
        if (n >= limit)
            *out_more = 1;
    }
    if (!rc && !*out_more) { /* after a pass: see Q_PURGE_LATEST in store_sqlite.c */
        p.n = 0;
        p_i64(&p, older_than_ms);
        rc = run_cmd(d, Q_PURGE_LATEST, &p, 0, NULL);
    }
    return rc;
}

/* ---- read side ---- */

/* A single-value query bound to `identity`. EPW_E_NOTFOUND when it returns no row. */
static int one_int(store_db_t *d, int q, const char *identity, uint64_t *out)
{
    params_t p = {.n = 0};
    PGresult *r;
    int rc;

    *out = 0;
    p_text(&p, identity);
    rc = run_q(d, q, &p, 1, &r);
    if (rc)
        return rc;
    if (PQntuples(r) > 0)
        *out = (uint64_t)col_int(r, 0, 0);
    else
        rc = EPW_E_NOTFOUND;
    PQclear(r);
    return rc;
}

static int pg_last_seq(store_db_t *d, const char *identity, uint64_t *out)
{
    return one_int(d, Q_LAST_SEQ, identity, out);
}

static int pg_count(store_db_t *d, const char *identity, uint64_t *out)
{
    return one_int(d, Q_COUNT, identity, out);
}

static int pg_hosts(store_db_t *d, store_host_list_t **out)
{
    store_host_list_t *list = NULL;
    PGresult *r = NULL;
    int rc, n, i;

    *out = NULL;
    rc = run_q(d, Q_HOSTS, NULL, 1, &r);
    if (rc)
        return rc;
    n = PQntuples(r);
    list = calloc(1, sizeof(*list));
    if (!list || (n && !(list->hosts = calloc((size_t)n, sizeof(*list->hosts))))) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        store_host_t *h = &list->hosts[list->n++];
        store_summary_t *l = &h->latest;
        h->identity = col_str(list, r, i, 0);
        h->first_seen = col_int(r, i, 1);
        h->last_seen = col_int(r, i, 2);
        h->agent_version = col_str(list, r, i, 3);
        h->os = col_str(list, r, i, 4);
        h->platform = col_str(list, r, i, 5);
        h->interval_ms = (uint64_t)col_int(r, i, 6);
        h->last_seq = (uint64_t)col_int(r, i, 7);
        h->gaps = (uint64_t)col_int(r, i, 8);
        h->dropped = (uint64_t)col_int(r, i, 9);
        h->has_latest = !is_null(r, i, 10);
        l->seq = (uint64_t)col_int(r, i, 11);
        l->taken_at_ms = col_int(r, i, 12);
        l->netns = col_str(list, r, i, 13);
        l->pressure_pct = col_f64(r, i, 14);
        l->pressure_source = col_str(list, r, i, 15);
        l->tcp_in_use = col_opt(r, i, 16);
        l->tcp_max = col_opt(r, i, 17);
        l->udp_in_use = col_opt(r, i, 18);
        l->udp_max = col_opt(r, i, 19);
        l->exclusive_ports = col_opt(r, i, 20);
        l->kernel_ports = col_opt(r, i, 21);
        l->total_sockets = col_opt(r, i, 22);
        l->worst_dest = col_str(list, r, i, 23);
        l->worst_dest_conns = col_opt(r, i, 24);
        l->top_pid = col_opt(r, i, 25);
        l->top_name = col_str(list, r, i, 26);
        l->top_ports = col_opt(r, i, 27);
        l->port_starved = (int)col_int(r, i, 28);
        if (!h->identity || !h->agent_version || !h->os || !h->platform || !l->netns ||
            !l->pressure_source || !l->top_name || !l->worst_dest) {
            rc = UV_ENOMEM;
            goto out;
        }
    }
    *out = list;
    list = NULL;
out:
    PQclear(r);
    store_host_list_free(list);
    return rc;
}

static int pg_history(store_db_t *d, const char *identity, int64_t from_ms, int64_t to_ms,
                      int64_t step_ms, store_point_t **out_points, size_t *out_n)
{
    params_t p = {.n = 0};
    store_point_t *pts = NULL;
    PGresult *r;
    int rc, n, i;

    p_text(&p, identity);
    p_i64(&p, from_ms);
    p_i64(&p, to_ms);
    p_i64(&p, step_ms);
    rc = run_q(d, Q_HISTORY, &p, 1, &r);
    if (rc)
        return rc;
    n = PQntuples(r);
    if (n > 0) {
        pts = calloc((size_t)n, sizeof(*pts));
        if (!pts) {
            PQclear(r);
            return UV_ENOMEM;
        }
    }
    for (i = 0; i < n; i++) {
        pts[i].bucket_ms = col_int(r, i, 0);
        pts[i].max_pct = col_f64(r, i, 1);
        pts[i].avg_pct = col_f64(r, i, 2);
        pts[i].samples = (uint32_t)col_int(r, i, 3);
    }
    PQclear(r);
    *out_points = pts;
    *out_n = (size_t)n;
    return 0;
}

static int pg_snapshot_at(store_db_t *d, const char *identity, const char *netns, int64_t at_ms,
                          store_blob_t *out)
{
    params_t p = {.n = 0};
    PGresult *r;
    int rc, len;

    p_text(&p, identity);
    p_i64(&p, at_ms);
    p_text(&p, netns); /* NULL: any namespace */
    rc = run_q(d, Q_SNAP_AT, &p, 1, &r);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return EPW_E_NOTFOUND;
    }
    len = PQgetlength(r, 0, 0);
    out->data = malloc(len > 0 ? (size_t)len : 1);
    if (out->data) {
        if (len > 0)
            memcpy(out->data, PQgetvalue(r, 0, 0), (size_t)len);
        out->len = (size_t)len;
        out->seq = (uint64_t)col_int(r, 0, 1);
        out->taken_at_ms = col_int(r, 0, 2);
    }
    PQclear(r);
    return out->data ? 0 : UV_ENOMEM;
}

static int pg_upsert_alert(store_db_t *d, const store_alert_t *a, int64_t *out_id)
{
    params_t p = {.n = 0};
    PGresult *r;
    int rc;

    *out_id = 0;
    p_text(&p, a->host);
    p_text(&p, a->netns ? a->netns : "");
    p_text(&p, a->kind);
    p_text(&p, a->subject ? a->subject : "");
    p_text(&p, a->key);
    p_text(&p, a->severity);
    p_i32(&p, a->active ? 1 : 0);
    p_i64(&p, a->raised_at_ms);
    if (a->resolved_at_ms > 0)
        p_i64(&p, a->resolved_at_ms);
    else
        p_null(&p);
    p_i64(&p, a->last_notified_at_ms);
    p_text(&p, a->summary ? a->summary : "");
    p_text(&p, a->evidence); /* NULL keeps the stored one */
    p_text(&p, a->last_evidence ? a->last_evidence : "{}");
    rc = run_q(d, Q_UPSERT_ALERT, &p, 0, &r);
    if (rc)
        return rc;
    if (PQntuples(r) == 1)
        *out_id = col_int(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_alerts(store_db_t *d, const store_alert_query_t *q, store_alert_list_t **out)
{
    store_alert_list_t *list = NULL;
    params_t p = {.n = 0};
    PGresult *r = NULL;
    int rc, n, i;

    *out = NULL;
    p_i32(&p, q->active);
    p_text(&p, q->host);
    p_i64(&p, q->since_ms);
    if (q->limit)
        p_i64(&p, (int64_t)q->limit);
    else
        p_null(&p);
    rc = run_q(d, Q_ALERTS, &p, 1, &r);
    if (rc)
        return rc;
    n = PQntuples(r);
    list = calloc(1, sizeof(*list));
    if (!list || (n && !(list->alerts = calloc((size_t)n, sizeof(*list->alerts))))) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        store_alert_t *a = &list->alerts[list->n++];
        a->id = col_int(r, i, 0);
        a->host = col_dup(r, i, 1);
        a->netns = col_dup(r, i, 2);
        a->kind = col_dup(r, i, 3);
        a->subject = col_dup(r, i, 4);
        a->key = col_dup(r, i, 5);
        a->severity = col_dup(r, i, 6);
        a->active = (int)col_int(r, i, 7);
        a->raised_at_ms = col_int(r, i, 8);
        a->resolved_at_ms = col_int(r, i, 9); /* NULL reads as 0 */
        a->last_notified_at_ms = col_int(r, i, 10);
        a->summary = col_dup(r, i, 11);
        a->evidence = col_dup(r, i, 12);
        a->last_evidence = col_dup(r, i, 13);
        if (!a->host || !a->netns || !a->kind || !a->subject || !a->key || !a->severity ||
            !a->summary || !a->evidence || !a->last_evidence) {
            rc = UV_ENOMEM;
            goto out;
        }
    }
    *out = list;
    list = NULL;
out:
    PQclear(r);
    store_alert_list_free(list);
    return rc;
}

const store_backend_t store_pg_backend = {
    .name = "postgresql",
    .open_writer = pg_open_writer,
    .open_reader = pg_open_reader,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .upsert_host = pg_upsert_host,
    .insert_snapshot = pg_insert_snapshot,
    .touch_host = pg_touch_host,
    .record_gap = pg_record_gap,
    .purge_chunk = pg_purge_chunk,
    .upsert_alert = pg_upsert_alert,
    .last_seq = pg_last_seq,
    .count = pg_count,
    .hosts = pg_hosts,
    .history = pg_history,
    .snapshot_at = pg_snapshot_at,
    .alerts = pg_alerts,
};
