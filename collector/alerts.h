/* alerts: the collector's alert bookkeeping: detection per source, transitions to store and sinks.
 */
#ifndef ALERTS_H
#define ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detect.h"
#include "epwatch.pb-c.h"
#include "sinks.h"
#include "store.h"

/*
 * One detect_state_t per monitored source, keyed by (identity, netns): an agent reporting several
 * network namespaces has one pressure series per namespace. Such a source's detect host name is
 * "IDENTITY[NETNS]" (plain IDENTITY for the agent's own namespace), so keys and summaries name it;
 * the store row and the API still carry the identity in `host` and the namespace apart.
 *
 * Flow of one transition (detect_ingest / detect_tick / adoption that failed):
 *   1. the in-memory active set is updated at once (alerts_host_status answers from it);
 *   2. it is upserted into the store (store_submit_alert: never refused for backpressure);
 *   3. when its store result arrives (alerts_store_done), committed or not, it goes to the sinks.
 *      So a webhook receiver never hears of an alert the database does not have yet, and a
 *      failing database still lets the alert out (logged). A submit that fails outright
 *      (closing, no memory) dispatches at once.
 *
 * Wiring: the program forwards every store result to alerts_store_done (as it does to ingest):
 * HELLO results feed the agent's interval (detect_state_set_interval), new SNAPSHOT results are
 * evaluated (the store must be opened with keep_decoded = 1: the writer thread's decoded snapshot
 * is used, nothing is decoded again on the loop thread; duplicates are not evaluated again), ALERT
 * results carrying this module's tags (INGEST_TAG_FOREIGN | ALERTS_TAG_BIT) are dispatched.
 * The program calls alerts_tick every few seconds (silence, re-notification).
 *
 * Restart: alerts_load, at start-up, adopts every alert the store says is active (detect_adopt),
 * so an episode is continued under its key and never raised twice; one that cannot be adopted
 * (its rule now disabled, an unknown kind) is resolved with reason "not continued after restart".
 * It also creates a source for every known host, so a host that never comes back goes silent
 * (its silence clock starts a minute late: agents reconnecting after the collector's own downtime
 * are not silent). While the store fails snapshots (EPW_E_DB), alerts_tick does nothing for 30 s
 * after the last failure: agents are not silent because the database is.
 *
 * Shutdown: alerts_stop (snapshots and ticks are ignored from then on: nothing new is submitted
 * to a closing store), store_close (pending alerts commit and are dispatched through
 * alerts_store_done), sinks_close, alerts_destroy.
 *
 * Threads: loop thread only, except alerts_load (start-up, blocking reads). Pointers given are
 * borrowed for the call unless said otherwise.
 */

typedef struct alerts_s alerts_t;

/* Bit of this module's store tags (always with INGEST_TAG_FOREIGN, so ingest ignores them). */
#define ALERTS_TAG_BIT (1ull << 62)

typedef struct alerts_opts_s {
    store_t *store;                     /* required, borrowed: outlives the alerts_t */
    sinks_t *sinks;                     /* may be NULL: no dispatch (alerts_set_sinks) */
    const detect_rules_t *rules;        /* base rules, copied; NULL: detect_rules_default */
    const detect_override_t *overrides; /* per-host-pattern rules, copied (patterns too) */
    size_t n_overrides;
    int64_t (*now_ms)(void); /* the collector clock; NULL: epw_now_ms */
} alerts_opts_t;

/* 0, UV_EINVAL or UV_ENOMEM; *out is NULL on failure. */
int alerts_create(const alerts_opts_t *opts, alerts_t **out);
/* NULL is a no-op. Alerts still waiting for their store result are dropped (not dispatched). */
void alerts_destroy(alerts_t *al);

/* Replaces the sink set (NULL: none, e.g. once sinks_close has been called). */
void alerts_set_sinks(alerts_t *al, sinks_t *sinks);

/* Start-up (blocking reads through `rd`): sources for known hosts, then adoption of the active
 * alerts. 0 or the reader's error (nothing adopted then: the caller should not start). */
int alerts_load(alerts_t *al, store_reader_t *rd);

/* Forwarded store results (see "Wiring"). */
void alerts_store_done(alerts_t *al, const store_result_t *results, size_t n);

/* Evaluates one snapshot of `identity` (what alerts_store_done does for a new one). 0 or
 * UV_ENOMEM (transitions of this call may be missing). */
int alerts_ingest(alerts_t *al, const char *identity, const Epw__Snapshot *snap);
/* The agent's sampling interval from its Hello (0: unknown), for every source of the identity. */
void alerts_set_interval(alerts_t *al, const char *identity, uint64_t interval_ms);
/* Periodic: silence and re-notification for every source. 0 or UV_ENOMEM. */
int alerts_tick(alerts_t *al);
/* Shutdown: from now on snapshots and ticks are ignored; store results are still dispatched. */
void alerts_stop(alerts_t *al);

/* What the operator API's host view needs. */
typedef struct alerts_host_s {
    size_t active;           /* active alerts, every namespace of the identity */
    detect_severity_t worst; /* 0 when none */
    bool silent;             /* a SILENT alert is active */
} alerts_host_t;

/* *out cleared first; an unknown identity has no alerts. */
void alerts_host_status(const alerts_t *al, const char *identity, alerts_host_t *out);

typedef struct alerts_stats_s {
    size_t sources;        /* (identity, netns) states */
    size_t active;         /* active alerts */
    size_t pending;        /* transitions waiting for their store result */
    uint64_t evaluated;    /* snapshots evaluated */
    uint64_t transitions;  /* transitions produced */
    uint64_t raised;       /* of which RAISED */
    uint64_t resolved;     /* of which RESOLVED */
    uint64_t adopted;      /* episodes continued after a restart */
    uint64_t store_errors; /* transitions the store failed to record (still dispatched) */
} alerts_stats_t;

void alerts_get_stats(const alerts_t *al, alerts_stats_t *out);

#endif
