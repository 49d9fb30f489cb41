/* ingest: the collector's agent-facing protocol server (Hello, Snapshots, Acks over mutual TLS). */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "epw_tls.h"
#include "store.h"

/*
 * Accepts agents on an epw_listener, checks each one's identity (the certificate's CN, never the
 * message), submits Hellos, Snapshots and gaps to a store_t, and acknowledges a seq only once the
 * store reports it committed (conversation: common/epw_proto.h).
 *
 * Threads: every function here runs on the loop thread, and so do all callbacks.
 *
 * Store wiring. The store is owned by the caller (the program opens it, others may share it) and
 * borrowed here. Its callbacks must be forwarded: the store's done_cb calls
 * ingest_store_done() with every result, its room_cb calls ingest_store_room(). Ingest tags have
 * bit 63 clear (INGEST_TAG_FOREIGN); ingest_store_done() ignores results carrying that bit, so
 * other users of the same store set it on their own tags.
 * Tags name a slot of a generation-checked connection table: a result for a connection that has
 * meanwhile gone (or been replaced) is dropped, never dereferenced.
 *
 * Backpressure: when a submit returns EPW_E_AGAIN, ingest stops reading from that agent
 * (epw_conn_set_reading), keeps the one envelope it could not submit, and puts the agent on a
 * FIFO of paused agents; while that FIFO is not empty, any agent's next envelope joins its tail
 * instead of being submitted. ingest_store_room() then serves the FIFO round robin, oldest first,
 * one envelope per agent per turn, until the store refuses again. So under sustained overload
 * every agent gets an equal share of the store, whoever happens to be read first. Memory per agent
 * is bounded by one envelope plus what epw_conn buffers.
 *
 * Shutdown (graceful, in this order):
 *   ingest_stop(ig);          stop accepting and reading; drops envelopes not yet submitted
 *   store_close(st, ...);     drains: every accepted item commits; its results arrive through
 *                             ingest_store_done() and the final Acks go out
 *   ingest_close(ig, cb, ud); closes every connection (queued Acks are flushed within the
 *                             linger time), then the listener; cb runs when all is released
 */

typedef struct ingest_s ingest_t;

#define INGEST_TAG_FOREIGN (1ull << 63)

typedef struct ingest_opts_s {
    const char *addr;       /* numeric address to bind ("0.0.0.0", "::", "127.0.0.1") */
    uint16_t port;          /* 0: pick one (ingest_port) */
    epw_tls_config_t *tls;  /* EPW_TLS_SERVER config, borrowed; its deny hook is set here */
    store_t *store;         /* borrowed; see "Store wiring" */
    size_t max_connections; /* identified agents at once; 0: 20000 */
    uint64_t handshake_ms;  /* 0: epw_conn's default (10 s) */
    uint64_t idle_ms;       /* 0: no idle timeout */
    uint64_t hello_ms;      /* Hello due this long after the handshake; 0: as handshake_ms */
    size_t max_frame;       /* 0: EPW_FRAME_MAX_DEFAULT */
    int backlog;            /* 0: epw_conn's default */
} ingest_opts_t;

/* Why connections ended without (or before) a successful Hello, beyond HelloAck rejects. */
typedef enum {
    INGEST_FAIL_TLS_VERIFY =
        0,               /* certificate refused: none, unknown CA, expired, wrong kind, denied */
    INGEST_FAIL_TLS = 1, /* not TLS or broken TLS: plaintext, garbage */
    INGEST_FAIL_TIMEOUT = 2, /* TLS handshake not finished within handshake_ms */
    INGEST_FAIL_PROTO = 3,   /* after TLS: bad or oversize frame, undecodable message, no Hello
                                (a snapshot first, or nothing within hello_ms) */
    INGEST_FAIL_OTHER = 4,   /* peer went away during the handshake, socket errors */
    INGEST_FAIL_COUNT
} ingest_fail_t;

#define INGEST_REJECT_COUNT 8 /* RejectReason values 0..7, indexed by EPW__REJECT_REASON__* */

/*
 * Connections refused before a Hello, by precise reason (the metric label): the epw_tls_fail_t
 * values (no_cert, untrusted, expired, not_yet_valid, revoked, wrong_role, protocol, timeout,
 * aborted, ...), then ingest's own. Each refused connection counts under exactly one reason.
 */
#define INGEST_REASON_HELLO_TIMEOUT EPW_TLS_FAIL_COUNT /* TLS done, no Hello within hello_ms */
#define INGEST_REASON_COUNT         (EPW_TLS_FAIL_COUNT + 1)

typedef struct ingest_stats_s {
    size_t connections;    /* open connections after TLS (identified or not) */
    size_t agents;         /* connections whose Hello was accepted */
    size_t paused;         /* connections not being read because the store queue is full */
    uint64_t accepted;     /* TLS handshakes completed */
    uint64_t snapshots;    /* snapshots committed as new rows */
    uint64_t duplicates;   /* resent snapshots already stored (acknowledged again) */
    uint64_t gaps;         /* gaps (spool overflows) reported by agents */
    uint64_t acks;         /* Ack messages sent */
    uint64_t replaced;     /* connections closed because the same identity connected again */
    uint64_t store_errors; /* results with STORE_ERROR (the connection is dropped) */
    uint64_t store_full;   /* submits refused with EPW_E_AGAIN */
    uint64_t denied_tls;   /* handshakes refused by the deny list (also in TLS_VERIFY) */
    uint64_t idle_closed;  /* connections closed by the idle timeout */
    uint64_t rejects[INGEST_REJECT_COUNT]; /* HelloAck rejects by RejectReason */
    uint64_t fails[INGEST_FAIL_COUNT];
    uint64_t fail_reasons[INGEST_REASON_COUNT]; /* see INGEST_REASON_COUNT */
    size_t queue_depth;                         /* store_get_stats().queue_depth (0 once stopped) */
} ingest_stats_t;

/* Binds and starts accepting. Returns 0, UV_EINVAL, UV_ENOMEM or a bind/listen error (then *out
 * is NULL and nothing is left running). */
int ingest_start(uv_loop_t *loop, const ingest_opts_t *opts, ingest_t **out);

/* The bound port. */
uint16_t ingest_port(const ingest_t *ig);

/*
 * Replaces the deny list (revoked identities; copied). Applies to later handshakes (through the
 * TLS deny hook) and Hellos; live connections of a now denied identity are closed. Returns 0 or
 * UV_ENOMEM (the old list stays).
 */
int ingest_set_deny(ingest_t *ig, const char *const *identities, size_t n);
/* 1 when the identity is on the deny list. */
int ingest_is_denied(const ingest_t *ig, const char *identity);

/* Forwarded store callbacks (see "Store wiring"). */
void ingest_store_done(ingest_t *ig, const store_result_t *results, size_t n);
void ingest_store_room(ingest_t *ig);

void ingest_get_stats(const ingest_t *ig, ingest_stats_t *out);
/* Static name of a RejectReason or ingest_fail_t value, for logs and metrics. */
const char *ingest_reject_name(int reason);
const char *ingest_fail_name(ingest_fail_t f);
/* Static name of a fail_reasons index ("expired", "hello_timeout", ...). */
const char *ingest_reason_name(int reason);

/* Stops accepting and reading (idempotent). The store is not touched afterwards (no submit, no
 * stats), so it may be closed; results keep being accepted through ingest_store_done(). */
void ingest_stop(ingest_t *ig);
/* Stops (if not yet) and closes every connection and the listener; cb (may be NULL) runs once
 * everything is released (already during this call when nothing was left open), and `ig` is
 * freed right after it returns. */
void ingest_close(ingest_t *ig, void (*cb)(void *ud), void *ud);

#endif
