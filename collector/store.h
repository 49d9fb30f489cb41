/* store: the collector's history store (backend-neutral contract; SQLite by default). */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "epwatch.pb-c.h"

/*
 * Threads and ownership
 * ---------------------
 * A store has one writer thread that owns the write connection. The event-loop thread (the loop
 * given to store_open) submits work through a bounded queue; submit calls never block on the
 * database. Results come back on the loop thread through store_done_cb after the batch holding
 * them has committed: one call carries the results of one or more batches, one result per
 * submitted item, in submission order. So the network side can acknowledge the
 * highest committed seq per connection after the transaction that holds it has committed.
 *
 * Backpressure: when the queue is full (items or bytes) a submit returns EPW_E_AGAIN and stores
 * nothing; the caller should stop reading from that agent. Once the writer has drained the queue to
 * half of its limits (an item larger than queue_max_bytes alone is accepted into an empty
 * queue), store_room_cb runs on the loop thread (once per full episode), and the caller
 * resumes reading from every agent it paused.
 *
 * Durability: a result with outcome STORE_NEW or STORE_DUPLICATE means the row is committed. By
 * default the backend makes each commit durable across power loss, not only across a crash of this
 * process (see store_options_t.relaxed_sync), because the agent deletes its spooled copy once
 * acked.
 *
 * Errors: 0 or a negative code from epw_err.h. Database codes are logged by the backend and
 * returned as EPW_E_DB, never raw. When a batch fails, its transaction is rolled back and every
 * item in it is reported STORE_ERROR with EPW_E_DB: nothing of that batch was stored. A caller
 * seeing an error for a connection should stop acknowledging on it and drop it, so the agent
 * resends from its first unacknowledged seq.
 *
 * The read side (store_reader_*) is synchronous and blocking: call it from a uv work thread, never
 * from the loop thread. Each reader owns its own connection (WAL lets it read beside the writer).
 */

typedef struct store_s store_t;
typedef struct store_reader_s store_reader_t;
/* A backend implementation (see store_writer.h). NULL in the options selects one from the
 * target (store_backend_for_target). */
typedef struct store_backend_s store_backend_t;

/* Any thread. PostgreSQL (store_pg.c) when `target` is a libpq connection string: it starts with
 * "postgresql://" or "postgres://", or is in "key=value ..." form ("host=db1 dbname=epwatch");
 * SQLite (the `target` is a file path) otherwise. */
const store_backend_t *store_backend_for_target(const char *target);
/* Any thread. "sqlite", "postgresql" (or "postgres"); NULL for an unknown name. */
const store_backend_t *store_backend_by_name(const char *name);

typedef enum {
    STORE_OP_HELLO = 1,    /* upsert the host, report its last_seq */
    STORE_OP_SNAPSHOT = 2, /* store one snapshot (deduplicated on host, netns, seq) */
    STORE_OP_GAP = 3,      /* record snapshots lost by an agent (deduplicated on host, after_seq) */
    STORE_OP_PURGE = 4,    /* delete snapshots and gaps older than a cutoff */
    STORE_OP_ALERT = 5     /* upsert one alert transition (keyed by the episode key) */
} store_op_t;

typedef enum {
    STORE_NEW = 0,       /* committed (for HELLO and PURGE: done) */
    STORE_DUPLICATE = 1, /* already stored earlier: nothing changed, safe to acknowledge */
    STORE_ERROR = 2      /* not stored: see err */
} store_outcome_t;

/* One result. Valid only during the store_done_cb call (identity included). */
typedef struct store_result_s {
    store_op_t op;
    store_outcome_t outcome;
    int err;              /* 0 or EPW_E_DB (batch rolled back) */
    uint64_t tag;         /* the caller's cookie from the submit call, never interpreted */
    const char *identity; /* "" for PURGE */
    uint64_t seq;         /* SNAPSHOT: its seq (0 if undecodable); GAP: after_seq */
    uint64_t last_seq;    /* HELLO: highest seq stored for the identity (0: none yet) */
    uint64_t count;       /* PURGE: rows deleted */
    uint64_t interval_ms; /* HELLO: the Hello's sampling interval, as submitted */
    int64_t alert_id;     /* ALERT: the row's id (0 when the row was already resolved) */
    int gap_new;          /* SNAPSHOT: the gap it reports (dropped_before) was newly recorded */
    /* SNAPSHOT with outcome STORE_NEW, when store_options_t.keep_decoded is set: the snapshot as
     * the store decoded it at submit (so nobody decodes it again); NULL otherwise. Owned by the
     * store, valid during the store_done_cb call only. */
    const Epw__Snapshot *snapshot;
} store_result_t;

/* Loop thread. Results of one or more finished batches, in submission order. */
typedef void (*store_done_cb)(store_t *st, const store_result_t *results, size_t n, void *ud);
/* Loop thread. The queue has room again after a submit returned EPW_E_AGAIN. */
typedef void (*store_room_cb)(store_t *st, void *ud);
/* Loop thread. The store's memory has been released; `st` must not be used. */
typedef void (*store_close_cb)(void *ud);

typedef struct store_options_s {
    const store_backend_t *backend; /* NULL: store_backend_for_target(target) */
    const char *target;             /* SQLite: the database file, created if missing;
                                       PostgreSQL: a libpq connection string. Copied. */
    uint64_t retention_ms;          /* delete snapshots older than this; 0 keeps everything */
    uint64_t retention_every_ms;    /* how often a retention pass starts; 0: 60 s */
    unsigned retention_chunk;       /* rows deleted per transaction in a pass; 0: 2000 */
    size_t queue_max;               /* items accepted and not yet taken; 0: 8192 */
    size_t queue_max_bytes;         /* memory of the queued snapshots (encoded and decoded,
                                       about 7x the encoded size); 0: 128 MiB, so
                                       that queue_max (8,192 items, ~70 MiB) binds first */
    size_t batch_max;               /* most items per transaction; 0: 4096. The writer takes
                                       whatever is queued up to this: small batches when idle (low
                                       latency), large ones under load (one fsync per batch) */
    int relaxed_sync;               /* SQLite: 1 = synchronous=NORMAL (see store_sqlite.c) */
    int keep_decoded;               /* 1: hand new snapshots, decoded, to done_cb (see
                                       store_result_t.snapshot); free: they are decoded at
                                       submit either way, and released after done_cb */
    store_done_cb done_cb;          /* required */
    store_room_cb room_cb;          /* optional */
    void *ud;                       /* passed to both callbacks */
} store_options_t;

/* Upsert on Hello. `identity` is the client certificate's CN; the strings are copied. */
typedef struct store_hello_s {
    const char *identity;
    const char *agent_version;
    const char *os;
    Epw__Platform platform;
    uint64_t interval_ms;
} store_hello_t;

#define STORE_DEST_LEN 128

/*
 * The summary columns of one snapshot. Integer figures are -1 when the snapshot does not carry
 * them (stored as NULL). Strings point into whatever the summary was taken from (the snapshot and
 * the caller's buffer for store_summarize, the list for store_reader_hosts).
 */
typedef struct store_summary_s {
    uint64_t seq;
    int64_t taken_at_ms;
    const char *netns; /* "" = the agent's own namespace */
    double pressure_pct;
    const char *pressure_source;
    int64_t tcp_in_use, tcp_max, udp_in_use, udp_max; /* from Snapshot.host */
    int64_t exclusive_ports, kernel_ports, total_sockets;
    int64_t worst_dest_conns;   /* connections of the destination with the highest usage */
    const char *worst_dest;     /* "local -> remote:port/proto", "" if none */
    int64_t top_pid, top_ports; /* the process holding the most ports (not the "other" row) */
    const char *top_name;
    int port_starved;
} store_summary_t;

/* Pure: fills `out` from a snapshot. `out` borrows the snapshot's strings and `dest`, where the
 * worst destination is formatted (truncated to STORE_DEST_LEN - 1 bytes). */
void store_summarize(const Epw__Snapshot *snap, store_summary_t *out, char dest[STORE_DEST_LEN]);

/*
 * Opens (creating or migrating the schema) and starts the writer thread. Blocks on the database
 * while it opens: call at start-up. On failure nothing is left running and *out is NULL.
 */
int store_open(uv_loop_t *loop, const store_options_t *opts, store_t **out);

/*
 * Loop thread. Drains: waits until every accepted item is committed, and calls done_cb for them
 * before returning. Then stops the thread, finalises statements, closes the database, and closes
 * the async handle: memory is released in its close callback, which then calls close_cb (may be
 * NULL) on a later loop iteration. Do not call from inside a store callback; do not use `st`
 * afterwards. No done_cb or room_cb runs after store_close returns.
 */
void store_close(store_t *st, store_close_cb close_cb, void *ud);

/*
 * Submissions: loop thread. 0 (accepted; its result arrives through done_cb), EPW_E_AGAIN (queue
 * full, nothing kept), UV_EINVAL (empty identity, empty data), EPW_E_CLOSED (store closing),
 * UV_ENOMEM. All inputs are copied.
 */
int store_submit_hello(store_t *st, uint64_t tag, const store_hello_t *hello);
/*
 * `data` is one encoded Snapshot, stored as it is. It is decoded here, on the loop thread (the
 * summary columns, the gap, keep_decoded), so the writer thread does nothing but database work:
 * EPW_E_PROTO when it does not decode (nothing queued). EPW_E_AGAIN is decided before decoding.
 * A snapshot that reports lost predecessors (dropped_before > 0) also records that gap, as
 * store_submit_gap would (after_seq = seq - dropped_before - 1), in the same transaction.
 */
int store_submit_snapshot(store_t *st, uint64_t tag, const char *identity, const uint8_t *data,
                          size_t len);
/* The same for a decoded snapshot (borrowed): encoded straight into the queued item (and decoded
 * again into the item's own memory). UV_EINVAL for an empty one. */
int store_submit_snapshot_msg(store_t *st, uint64_t tag, const char *identity,
                              const Epw__Snapshot *snap);
int store_submit_gap(store_t *st, uint64_t tag, const char *identity, uint64_t after_seq,
                     uint64_t dropped);
/* Deletes snapshots with taken_at < older_than_ms and gaps recorded before it, in chunks. The
 * periodic retention pass does the same with now - retention_ms. */
int store_submit_purge(store_t *st, uint64_t tag, int64_t older_than_ms);

/*
 * One alert row (table `alerts`, see store_sqlite.c). Upsert (store_submit_alert): the row is keyed
 * by `key` (one detection episode); the first submit inserts it, later ones update severity,
 * active, resolved_at, last_notified_at, summary, last_evidence and, when `evidence` is not NULL,
 * evidence. A resolved row (active 0) is never updated again, so a late or repeated transition
 * cannot revive an episode. Times are ms since the Unix epoch; resolved_at_ms 0 = NULL.
 * Strings are borrowed by the submit call (copied) and owned by the list when read back.
 */
typedef struct store_alert_s {
    int64_t id;           /* read back: the row id; ignored by the upsert */
    const char *host;     /* the agent identity */
    const char *netns;    /* "" = the agent's own namespace */
    const char *kind;     /* detect_kind_name(): "pressure", "leak", ... */
    const char *subject;  /* "" for host-wide rules */
    const char *key;      /* the episode key, unique */
    const char *severity; /* "warning" or "critical" */
    int active;
    int64_t raised_at_ms, resolved_at_ms, last_notified_at_ms;
    const char *summary;
    const char *evidence;      /* JSON text: the figures that raised (or escalated) it */
    const char *last_evidence; /* JSON text: the figures of the latest transition */
} store_alert_t;

/*
 * Loop thread. Like the other submissions, but an alert is never refused for backpressure (it is
 * rare and small, and must not be lost to a queue full of snapshots): 0, UV_EINVAL (missing host,
 * kind, key or severity), EPW_E_CLOSED or UV_ENOMEM. Its result (op ALERT) carries alert_id.
 */
int store_submit_alert(store_t *st, uint64_t tag, const store_alert_t *a);

/*
 * Loop thread. While paused the writer takes nothing from the queue (submissions still queue up
 * to the limits) and skips retention; store_close still drains. For maintenance windows and for
 * tests that need a known batch.
 */
void store_set_paused(store_t *st, int paused);

typedef struct store_stats_s {
    size_t queue_depth;      /* items accepted, not yet taken by the writer */
    size_t queue_bytes;      /* their snapshot bytes */
    uint64_t last_commit_us; /* duration of the last BEGIN..COMMIT */
    uint64_t transactions;   /* ingest batches committed or rolled back (one transaction each) */
    uint64_t items;          /* items completed */
    uint64_t failed;         /* items reported STORE_ERROR */
    uint64_t purged;         /* snapshot and gap rows deleted by retention and purges */
} store_stats_t;

/* Any thread. A consistent copy. */
void store_get_stats(store_t *st, store_stats_t *out);

/*
 * Read side. Blocking. A reader is used by one thread at a time (any thread, not the loop's).
 * It has its own connection, independent of the store's lifetime.
 */
int store_reader_open(const store_backend_t *backend, const char *target, store_reader_t **out);
/* Same backend and target as a running store. */
int store_reader_open_for(const store_t *st, store_reader_t **out);
void store_reader_close(store_reader_t *rd); /* NULL is a no-op */

/* Highest stored seq for the identity. EPW_E_NOTFOUND for an unknown identity. */
int store_reader_last_seq(store_reader_t *rd, const char *identity, uint64_t *out);
/* Number of snapshots stored for the identity (0 for an unknown one). */
int store_reader_count(store_reader_t *rd, const char *identity, uint64_t *out);

typedef struct store_host_s {
    const char *identity, *agent_version, *os, *platform;
    int64_t first_seen, last_seen; /* ms since the Unix epoch, UTC */
    uint64_t interval_ms, last_seq, gaps, dropped;
    int has_latest;         /* 0: no snapshot retained */
    store_summary_t latest; /* the snapshot with the latest taken_at (any netns) */
} store_host_t;

typedef struct store_host_list_s {
    store_host_t *hosts; /* ordered by identity; all strings owned by the list */
    size_t n;
    struct store_strblk_s *strings; /* private: the strings, a few large blocks */
} store_host_list_t;

/* Every known host with its latest snapshot summary. Free with store_host_list_free. */
int store_reader_hosts(store_reader_t *rd, store_host_list_t **out);
void store_host_list_free(store_host_list_t *list); /* NULL is a no-op */

typedef struct store_point_s {
    int64_t bucket_ms; /* start of the bucket: taken_at rounded down to a multiple of step */
    double max_pct;    /* max(pressure_pct) in the bucket, across namespaces */
    double avg_pct;
    uint32_t samples;
} store_point_t;

#define STORE_HISTORY_MAX 100000 /* buckets per history query */

/*
 * Pressure history in [from_ms, to_ms), one point per non-empty bucket of step_ms, computed by the
 * database. *out_points is malloc'd (free()); NULL when *out_n is 0. UV_EINVAL for step 0 or an
 * empty range, EPW_E_TOOBIG for more than STORE_HISTORY_MAX buckets.
 */
int store_reader_history(store_reader_t *rd, const char *identity, int64_t from_ms, int64_t to_ms,
                         int64_t step_ms, store_point_t **out_points, size_t *out_n);

typedef struct store_blob_s {
    uint8_t *data; /* the encoded Snapshot, malloc'd: free() */
    size_t len;
    uint64_t seq;
    int64_t taken_at_ms;
} store_blob_t;

/* The latest snapshot with taken_at <= at_ms (netns NULL: any namespace). EPW_E_NOTFOUND. */
int store_reader_snapshot_at(store_reader_t *rd, const char *identity, const char *netns,
                             int64_t at_ms, store_blob_t *out);

/* An alert query: rows matching all of it, newest raised first (then highest id). */
typedef struct store_alert_query_s {
    int active;       /* -1: both, 1: active only, 0: resolved only */
    const char *host; /* NULL: every host */
    int64_t since_ms; /* rows active now, or resolved at or after this (0: all) */
    size_t limit;     /* 0: no limit */
} store_alert_query_t;

typedef struct store_alert_list_s {
    store_alert_t *alerts; /* strings owned by the list; evidence texts never NULL ("{}") */
    size_t n;
} store_alert_list_t;

/* Free with store_alert_list_free. */
int store_reader_alerts(store_reader_t *rd, const store_alert_query_t *q, store_alert_list_t **out);
void store_alert_list_free(store_alert_list_t *list); /* NULL is a no-op */

#endif
