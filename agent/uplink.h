/* uplink: streams the agent's snapshots to the collector over mutual TLS, through the spool. */
#ifndef UPLINK_H
#define UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "epwatch.pb-c.h"

/*
 * Delivery (issue 3): every snapshot handed to uplink_submit gets the spool's next persistent
 * seq, is packed and appended to the on-disk spool (durable) and only then sent, read back from
 * the spool in seq order. Nothing is sent that is not spooled, and nothing leaves the spool before
 * the collector's cumulative Ack covers it, so a crash of either side loses nothing: after a
 * reconnect HelloAck.last_seq says where to resume, and a resend is stored once by the collector.
 *
 * Bookkeeping decided here:
 * - seq is assigned when the snapshot is packed (worker thread, spool_next_seq), so it is inside
 *   the stored bytes and never changes. With all_netns each namespace's snapshot is an entry with
 *   its own seq.
 * - dropped_before comes from the spool entry (written in its header at append time, or counted
 *   by the spool when it drops the oldest) and is set when the entry is read for sending; the
 *   same entry therefore carries the same value on every resend and across restarts.
 * - spooled is the spool's entry count when the entry is read for sending (informative).
 * - port_starved is set at submit time when the latest connection attempt failed for lack of
 *   local ports (UV_EADDRNOTAVAIL; UV_ENOBUFS = WSAENOBUFS on Windows; with bind_addr also
 *   UV_EADDRINUSE, binding port 0 of an exhausted range on Linux); such snapshots are
 *   spooled and delivered once a connection works again.
 *
 * The connection: one long-lived TLS connection (a port-starved host cannot open new ones, so
 * the uplink never opens a second one while the first works). Hello carries the identity
 * (`identity`, which must equal the client certificate's CN). A rejected HelloAck maps to a
 * reconnect delay (uplink_reject_delay_ms); other failures use jittered exponential backoff
 * (uplink_backoff_*), reset once a connection has been accepted and has delivered (acked)
 * something. Reconnect failures are logged rate-limited (epw_complain).
 *
 * Threads: every function and callback here runs on the loop thread. Spool I/O (open, append,
 * read, ack) runs on libuv's pool through uv_queue_work, one request at a time, so the spool is
 * used by one thread at a time and never blocks the loop.
 *
 * Lifetimes: uplink_start creates the uplink; uplink_stop ends it (the callback runs once
 * everything is released; the pointer is invalid after it returns). The loop must run until then.
 */

typedef struct uplink_s uplink_t;

typedef struct uplink_opts_s {
    const char *host; /* collector host name or numeric address */
    uint16_t port;
    const char *server_name; /* name checked in the collector certificate; NULL: host */
    const char *bind_addr;   /* numeric local address; NULL: any */
    const char *ca, *cert, *key;
    const char *identity; /* Hello.hostname: must equal the certificate CN */
    const char *spool_dir;
    uint64_t spool_max;
    uint64_t interval_ms;    /* sent in Hello (silent-agent detection); also sizes timeouts */
    uint64_t backoff_min_ms; /* 0: 1 s */
    uint64_t backoff_max_ms; /* 0: 5 min */
    uint64_t ack_timeout_ms; /* 0: 2 * interval + 30 s without an Ack while some are unacked */
    int tls_debug;           /* mbedTLS debug level 0..4 */
} uplink_opts_t;

/* Counters for logs and tests (loop thread). */
typedef struct uplink_stats_s {
    uint64_t submitted;      /* snapshots handed to uplink_submit */
    uint64_t spooled;        /* appended to the spool */
    uint64_t spool_failed;   /* appends that failed (counted by the spool as dropped) */
    uint64_t sent;           /* snapshot frames sent (resends included) */
    uint64_t acked_seq;      /* highest seq acknowledged by the collector */
    uint64_t last_seq;       /* highest seq appended */
    uint64_t connects;       /* connections that completed the TLS handshake */
    uint64_t rejects;        /* HelloAcks with a reject reason */
    uint64_t port_starved;   /* snapshots marked port_starved */
    uint64_t starved_errors; /* connect attempts that failed for lack of ports */
} uplink_stats_t;

/*
 * Loads the TLS configuration (certificate files are read now: blocking, call at start-up),
 * opens the spool on a worker thread and starts connecting once it is open. All strings are
 * copied. Returns 0 and *out, or EPW_E_CONFIG (a certificate or key that cannot be used, logged
 * by the TLS layer), UV_EINVAL, UV_ENOMEM. A spool that cannot be opened is logged and ends the
 * uplink's usefulness: submits then fail with EPW_E_CLOSED and the uplink only waits for stop.
 */
int uplink_start(uv_loop_t *loop, const uplink_opts_t *opts, uplink_t **out);

/*
 * Takes ownership of snaps[0..n) (each freed with epw_snap_free, the array with free()), even on
 * failure. They are spooled in order and sent when possible. Returns 0, or EPW_E_CLOSED after
 * uplink_stop or when the spool could not be opened.
 */
int uplink_submit(uplink_t *u, Epw__Snapshot **snaps, size_t n);

/*
 * Stops: no more submits; snapshots submitted so far are still spooled (the running and queued
 * spool writes are waited for); while connected, sending continues for up to drain_ms so that
 * what was sent can be acknowledged; then the connection is closed gracefully (TLS close_notify)
 * and timers are released. Unacknowledged snapshots stay in the spool for the next start. cb
 * (may be NULL) runs once when everything is released; `u` is freed right after it returns.
 * Calling it again only shortens the drain (the callback given first is kept).
 */
typedef void (*uplink_stop_cb)(uplink_t *u, void *ud);
void uplink_stop(uplink_t *u, uint64_t drain_ms, uplink_stop_cb cb, void *ud);

void uplink_get_stats(const uplink_t *u, uplink_stats_t *out);

/* ---- pure parts (unit-tested) ------------------------------------------------------------ */

/*
 * Reconnect delay after HelloAck.reject = `reason` (Epw__RejectReason), with `rnd` a uniform
 * random 32-bit value for the jitter: BAD_IDENTITY, REVOKED and UNSUPPORTED_VERSION 1 h (a
 * configuration problem: retrying sooner only fills logs), OVERLOADED 1-5 min (spreads a crowd
 * of agents), REPLACED 10-15 s, SHUTTING_DOWN 2-10 s (the collector is restarting),
 * PROTOCOL_ERROR 1 min +-20 %, anything else (a reason newer than this build) 5 min +-20 %.
 * REJECT_NONE returns 0.
 */
uint64_t uplink_reject_delay_ms(int reason, uint32_t rnd);

/* Jittered exponential backoff: the n-th consecutive failure waits about min * 2^(n-1), capped
 * at max, each delay multiplied by a factor in [0.8, 1.2] drawn from rnd. */
typedef struct uplink_backoff_s {
    uint64_t min_ms;
    uint64_t max_ms;
    uint64_t cur_ms; /* the next base delay; 0 after a reset */
} uplink_backoff_t;

void uplink_backoff_init(uplink_backoff_t *b, uint64_t min_ms, uint64_t max_ms);
void uplink_backoff_reset(uplink_backoff_t *b);
uint64_t uplink_backoff_next(uplink_backoff_t *b, uint32_t rnd);

/*
 * Sequence bookkeeping of one agent: `last` is the highest seq appended to the spool, `acked`
 * the collector's cumulative ack, `sent` the highest seq sent on the current connection.
 */
typedef struct uplink_seqs_s {
    uint64_t last;
    uint64_t acked;
    uint64_t sent;
} uplink_seqs_t;

/*
 * HelloAck{last_seq}: sending resumes after last_seq. Returns 0, or 1 when last_seq is beyond
 * every seq this spool has used (the spool directory was reset while the collector kept its
 * history): the caller must move the spool's seq past it or new snapshots would be taken for
 * resends and ignored.
 */
int uplink_seqs_on_hello_ack(uplink_seqs_t *s, uint64_t last_seq);
/* Ack{seq}: 0 when it advances `acked`, 1 when stale (ignored), EPW_E_PROTO when it covers a seq
 * never sent on this connection nor stored before it (a broken collector). */
int uplink_seqs_on_ack(uplink_seqs_t *s, uint64_t seq);
/* Whether spooled entries wait to be sent on the current connection. */
int uplink_seqs_want_send(const uplink_seqs_t *s);

/*
 * Decodes a spooled entry and sets the delivery fields: seq (checked: the packed seq must match
 * the spool's, else EPW_E_PROTO), dropped_before, spooled. *out is owned by the caller
 * (epw_snap_free). Returns 0, EPW_E_PROTO (undecodable) or UV_ENOMEM.
 */
int uplink_prepare(const uint8_t *data, size_t len, uint64_t seq, uint64_t dropped_before,
                   uint32_t spooled, Epw__Snapshot **out);

#endif
