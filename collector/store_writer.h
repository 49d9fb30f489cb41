/* store_writer: the table of functions a store backend implements (SQLite now, PostgreSQL later).
 */
#ifndef STORE_WRITER_H
#define STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * store_writer.c owns the queue, the writer thread, batching, completions and the retention
 * schedule; a backend only talks to its database. One store_db_t is one connection, used by one
 * thread at a time: the writer thread for a writer connection, the reader's caller for a reader.
 * Every function returns 0 or a code from epw_err.h (database failures logged by the backend and
 * returned as EPW_E_DB). Strings passed in are borrowed for the call.
 */
typedef struct store_db_s store_db_t;

struct store_backend_s {
    const char *name;
    /* Opens the write connection, creating or migrating the schema. */
    int (*open_writer)(const store_options_t *opts, store_db_t **out);
    int (*open_reader)(const char *target, store_db_t **out);
    void (*close)(store_db_t *db); /* finalises statements; NULL is a no-op */

    /* Writer side: begin/commit around a batch; rollback after any failure. */
    int (*begin)(store_db_t *db);
    int (*commit)(store_db_t *db);
    void (*rollback)(store_db_t *db);
    int (*upsert_host)(store_db_t *db, const store_hello_t *hello, int64_t now_ms,
                       uint64_t *out_last_seq);
    /* *out_new = 0 when (identity, netns, seq) was already stored; otherwise *out_id is the new
     * row's id. The host's row is not touched: see touch_host. */
    int (*insert_snapshot)(store_db_t *db, const char *identity, int64_t received_at_ms,
                           const store_summary_t *sum, const uint8_t *data, size_t len,
                           int *out_new, int64_t *out_id);
    /* Upserts the host's row after new snapshots: last_seen = max(last_seen, seen_ms), last_seq =
     * max(last_seq, sum->seq), and the latest snapshot (id, sum) replaces the stored one unless
     * that was taken later (sum->taken_at_ms >= stored: replace). The writer calls it once per
     * host per batch with the batch's maximum seen/seq and its latest snapshot, which gives the
     * same row as calling it after every insert. `max_seq` is the batch's highest seq. */
    int (*touch_host)(store_db_t *db, const char *identity, int64_t seen_ms, uint64_t max_seq,
                      int64_t latest_id, const store_summary_t *latest);
    int (*record_gap)(store_db_t *db, const char *identity, uint64_t after_seq, uint64_t dropped,
                      int64_t now_ms, int *out_new);
    /* Deletes at most `limit` snapshots and at most `limit` gaps older than the cutoff, in the
     * caller's transaction. *out_more = 1 when a limit was reached (call again). */
    int (*purge_chunk)(store_db_t *db, int64_t older_than_ms, unsigned limit, uint64_t *out_deleted,
                       int *out_more);
    /* Upserts one alert (store_alert_t semantics); *out_id = its id, 0 when the row was already
     * resolved and so left alone. */
    int (*upsert_alert)(store_db_t *db, const store_alert_t *a, int64_t *out_id);

    /* Reader side: the semantics of the store_reader_* function of the same name. */
    int (*last_seq)(store_db_t *db, const char *identity, uint64_t *out);
    int (*count)(store_db_t *db, const char *identity, uint64_t *out);
    int (*hosts)(store_db_t *db, store_host_list_t **out);
    int (*history)(store_db_t *db, const char *identity, int64_t from_ms, int64_t to_ms,
                   int64_t step_ms, store_point_t **out_points, size_t *out_n);
    int (*snapshot_at)(store_db_t *db, const char *identity, const char *netns, int64_t at_ms,
                       store_blob_t *out);
    int (*alerts)(store_db_t *db, const store_alert_query_t *q, store_alert_list_t **out);
};

/*
 * For backends building a store_host_list_t: copies `len` bytes of `s` (NULL: "") and a NUL into
 * the list's string blocks, which store_host_list_free releases at once. NULL when out of memory.
 * A 100,000-host fleet table has 700,000 strings: one malloc and one free each were a third of
 * building it.
 */
const char *store_host_list_str(store_host_list_t *list, const char *s, size_t len);

/* The default backend (store_sqlite.c). */
extern const store_backend_t store_sqlite_backend;
/* The PostgreSQL backend (store_pg.c). */
extern const store_backend_t store_pg_backend;

#endif
