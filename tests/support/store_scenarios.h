/* store_scenarios: the history store's contract tests, written once and run on every backend. */
#ifndef EPW_STORE_SCENARIOS_H
#define EPW_STORE_SCENARIOS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store.h"

/*
 * For cmocka tests only: a failed step fails the running test, so no call here returns an error.
 * A backend fixture (sx_backend_t) says how to make a fresh, empty target for one test and how to
 * look into it with SQL beside the store. The scenarios (sx_test_*) take that fixture as their
 * cmocka state: a test file registers them with SX_SCENARIOS(&its_backend) (its file includes
 * <cmocka.h> first) next to its backend's own tests. Everything runs on the test's thread, except
 * the reader thread sx_test_concurrent_reader starts and joins.
 *
 * The snapshots made here have fixed summary figures (see sx_make_snap), which the scenarios and
 * the backend tests assert on.
 */

#define SX_MAX_RES 2048
#define SX_DAY_MS  86400000LL

typedef struct sx_fx_s sx_fx_t;

typedef struct sx_backend_s {
    /* Makes an empty target for one test: fills fx->target (the writer's connection string or
     * path) and fx->rd_target (the readers'); fx->dir is free for its use. */
    void (*fresh)(sx_fx_t *fx);
    /* Removes what fresh made, once the store is closed; NULL: nothing to remove. */
    void (*remove)(sx_fx_t *fx);
    /* Runs `sql` on the target outside the store: the first column of the first row as an
     * integer, -1 when there is no row. */
    int64_t (*sql_num)(sx_fx_t *fx, const char *sql);
    /* Runs statements that return nothing. */
    void (*sql_exec)(sx_fx_t *fx, const char *sql);
    /* A target that cannot be opened at all (no such directory, nothing listening). */
    const char *bad_target;
    /* A query returning 1 when the snapshot blob column has the backend's documented type. */
    const char *blob_type_sql;
    /* Optional: another spelling of the readers' target (PostgreSQL: the URI form), which
     * sx_test_store_and_read_back reads through; NULL: fx->rd_target. */
    void (*alt_rd_target)(sx_fx_t *fx, char *buf, size_t len);
} sx_backend_t;

typedef struct sx_rec_s {
    store_result_t r; /* r.identity points at identity below */
    char identity[64];
} sx_rec_t;

/* One test's store, its loop and every result the store reported, in order. */
struct sx_fx_s {
    const sx_backend_t *be;
    uv_loop_t loop;
    char dir[64];        /* a file backend's temp dir */
    char target[512];    /* the writer's */
    char rd_target[512]; /* the readers' */
    store_t *st;         /* NULL when closed */
    sx_rec_t res[SX_MAX_RES];
    size_t nres; /* reset by sx_open */
    unsigned done_calls, rooms;
    int closed;
};

/* A fresh target on `be` and a loop; freed (store closed, target removed) by sx_free. */
sx_fx_t *sx_new(const sx_backend_t *be);
/* Opens the store on fx->target with `o` (NULL: defaults) and this fixture's callbacks. */
void sx_open(sx_fx_t *fx, const store_options_t *o);
/* Runs the loop until fx->nres == n (and fails when more came). */
void sx_wait(sx_fx_t *fx, size_t n);
void sx_close(sx_fx_t *fx);
void sx_free(sx_fx_t *fx);
/* A reader on fx->rd_target; the caller closes it. */
store_reader_t *sx_reader(sx_fx_t *fx);
/* The done_cb sx_open installs (ud: the fixture). */
void sx_on_done(store_t *st, const store_result_t *r, size_t n, void *ud);

/* A temp dir with history.db in it: fresh/remove for file-backed (SQLite) targets. */
void sx_file_fresh(sx_fx_t *fx);
void sx_file_remove(sx_fx_t *fx);

/* An encoded snapshot of host "web1": TCP 1200/28232 and UDP 7/28232 (no UDP when seq is a
 * multiple of 3), destinations 10.0.0.9:443 (900 connections, 3.2 %) and [fd00::1]:5432 (300,
 * 40.5 %), processes nginx 10 (50 ports), java 20 (700) and "other" (5000), exclusive 42, kernel
 * 3, total sockets 1500 + seq, port_starved seq % 2. *len set; the buffer is malloc'd. */
uint8_t *sx_make_snap(uint64_t seq, int64_t taken_at, double pct, const char *netns, size_t *len);
void sx_submit_snap_as(store_t *st, const char *id, uint64_t tag, uint64_t seq, int64_t taken_at,
                       double pct, const char *netns);
void sx_submit_snap(sx_fx_t *fx, uint64_t tag, uint64_t seq, int64_t taken_at, double pct,
                    const char *netns);
void sx_submit_hello_as(store_t *st, const char *id, uint64_t tag);
void sx_submit_hello(sx_fx_t *fx, uint64_t tag);
/* sx_make_snap(seq, taken_at, 1.0, "") with dropped_before and, when `pad` > 0, a note of that
 * many bytes, submitted for "web1" with tag 0. */
void sx_submit_snap_ex(sx_fx_t *fx, uint64_t seq, int64_t taken_at, uint64_t dropped, size_t pad);
/* The fleet table's latest seq for web1 (-1: none); also checks that its summary is that
 * snapshot's as sx_make_snap made it with pressure = seq, netns "ns-b" for seq 4 only. */
int64_t sx_latest_seq(sx_fx_t *fx);

/* The scenarios; *state is the sx_backend_t. */
void sx_test_store_and_read_back(void **state);
void sx_test_duplicates(void **state);
void sx_test_batching(void **state);
void sx_test_backpressure(void **state);
void sx_test_close_drains_and_reopen(void **state);
void sx_test_retention(void **state);
void sx_test_gaps(void **state);
void sx_test_gap_from_snapshot(void **state);
void sx_test_history(void **state);
void sx_test_touch_coalesced(void **state);
void sx_test_bad_snapshot(void **state);
void sx_test_concurrent_reader(void **state);
void sx_test_alerts_table(void **state);
void sx_test_open_errors(void **state);

/* Every scenario on backend `be` (an sx_backend_t *, not const), for a CMUnitTest array. */
#define SX_SCENARIOS(be)                                                                           \
    cmocka_unit_test_prestate(sx_test_store_and_read_back, (be)),                                  \
        cmocka_unit_test_prestate(sx_test_duplicates, (be)),                                       \
        cmocka_unit_test_prestate(sx_test_batching, (be)),                                         \
        cmocka_unit_test_prestate(sx_test_backpressure, (be)),                                     \
        cmocka_unit_test_prestate(sx_test_close_drains_and_reopen, (be)),                          \
        cmocka_unit_test_prestate(sx_test_retention, (be)),                                        \
        cmocka_unit_test_prestate(sx_test_gaps, (be)),                                             \
        cmocka_unit_test_prestate(sx_test_gap_from_snapshot, (be)),                                \
        cmocka_unit_test_prestate(sx_test_history, (be)),                                          \
        cmocka_unit_test_prestate(sx_test_touch_coalesced, (be)),                                  \
        cmocka_unit_test_prestate(sx_test_bad_snapshot, (be)),                                     \
        cmocka_unit_test_prestate(sx_test_concurrent_reader, (be)),                                \
        cmocka_unit_test_prestate(sx_test_alerts_table, (be)),                                     \
        cmocka_unit_test_prestate(sx_test_open_errors, (be))

#endif
