/* epw_conn: libuv connection layer carrying framed Envelopes over the epw_tls engine. */
#ifndef EPW_CONN_H
#define EPW_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "epw_tls.h"
#include "epwatch.pb-c.h"

/*
 * Moves bytes between a uv_tcp_t and an epw_tls_t engine, decodes frames (epw_frame) and hands
 * out Envelopes. Used by the agent uplink (epw_conn_connect) and by the collector
 * (epw_listener_start).
 *
 * Threads: every function here and every callback runs on the loop thread only. Several loops
 * may run in one process, each on its own thread: the socket read buffer and the plaintext
 * buffer are thread-local and shared by all connections of that thread, so a connection must
 * only ever be touched from the thread running its loop. This relies on libuv handing out a read
 * buffer (alloc_cb) and calling read_cb for it before it allocates again, and on every read being
 * consumed synchronously; re-entrant use (a callback resuming another connection) falls back to
 * a temporary heap buffer. Nothing outside this module may keep a pointer into those buffers:
 * on_data's `buf` is valid during the call only.
 *
 * Memory: an idle connection holds no read buffer of its own; a connection paused with
 * undelivered plaintext keeps a copy of just that rest (at most one read chunk) until resumed.
 *
 * Lifetimes:
 * - An epw_conn_t is owned by this layer. Once created (connect returned 0, or the listener handed
 *   it over) it delivers exactly one on_close, after which the pointer is invalid: the memory
 *   (which embeds the libuv handles) is freed right after on_close returns. Calling
 *   epw_conn_close() any number of times before that is fine; calling anything after on_close
 *   is not.
 * - If a function that takes callbacks fails, none of its callbacks is ever called.
 * - The epw_tls_config_t passed in must stay alive until it is destroyed by its owner; engines
 *   hold a reference, so destroying the config early is safe.
 */

typedef struct epw_conn_s epw_conn_t;
typedef struct epw_listener_s epw_listener_t;

typedef struct epw_conn_cbs_s {
    /* Client side only: the TLS handshake succeeded; sending is now possible. Optional. */
    void (*on_ready)(epw_conn_t *c, void *ud);
    /* One decoded Envelope. Ownership passes to the callee: free it with
     * epw_frame_envelope_free(). May call epw_conn_close(); no further envelope follows then. */
    void (*on_envelope)(epw_conn_t *c, Epw__Envelope *env, void *ud);
    /* The write queue fell below the low-water mark after epw_conn_writable() returned 0.
     * Optional. */
    void (*on_drain)(epw_conn_t *c, void *ud);
    /* The connection is gone; `status` says why: the reason given to epw_conn_close(), UV_EOF
     * (peer closed), EPW_E_CLOSED (peer sent close_notify), EPW_E_TIMEOUT (handshake or idle
     * timeout), EPW_E_TOOBIG (oversize frame), EPW_E_PROTO (bad frame or protobuf),
     * EPW_E_TLS / EPW_E_TLS_VERIFY (handshake or record failure), or a UV_E* code (resolve,
     * connect, read, write). Required. */
    void (*on_close)(epw_conn_t *c, int status, void *ud);
    void *ud;
    /* Raw mode, optional (the operator API speaks HTTP over the same TLS code). When set, the
     * plaintext is handed over as it is decrypted, in arbitrary chunks, and no frame is decoded:
     * on_envelope is not called and max_frame does not apply. `buf` is valid during the call
     * only. The callee may call epw_conn_send_raw(), epw_conn_close() (no further data follows)
     * or epw_conn_set_reading(c, 0) (further data waits until reading is on again). The mode is
     * chosen with the callbacks: set it in the listener's on_conn or before connecting. */
    void (*on_data)(epw_conn_t *c, const uint8_t *buf, size_t len, void *ud);
    /* Optional, framed mode only: each frame's payload before it is decoded. Returns 1 when the
     * callee took it (no on_envelope for it), 0 to have it decoded and handed to on_envelope as
     * usual. `payload` is valid during the call only. The same calls are allowed as in
     * on_envelope (close, pause reading). The collector uses it to pass snapshots to its store
     * undecoded (epw_frame_peek_snapshot). */
    int (*on_frame)(epw_conn_t *c, const uint8_t *payload, size_t len, void *ud);
} epw_conn_cbs_t;

typedef struct epw_conn_opts_s {
    uint64_t handshake_timeout_ms; /* 0: 10 s. Client: from connect start (covers DNS + TCP). */
    uint64_t idle_timeout_ms;      /* 0: none. Closes when nothing was received for this long. */
    /* 0: none. Closes (EPW_E_TIMEOUT) unless a whole Envelope (raw mode: any data) arrived
     * within this long after the handshake: a server waiting for the peer's Hello. Like the idle
     * timeout it restarts while reading is paused. */
    uint64_t first_timeout_ms;
    size_t max_frame;   /* 0: EPW_FRAME_MAX_DEFAULT (checked before allocating) */
    size_t high_water;  /* 0: 1 MiB of unsent bytes makes epw_conn_writable() 0 */
    uint64_t linger_ms; /* 0: 2 s to flush queued data on close before dropping it */
} epw_conn_opts_t;

/*
 * Client: resolves host (uv_getaddrinfo; numeric addresses work too), connects, optionally binds
 * to bind_addr first (numeric IPv4/IPv6, may be NULL), runs the TLS handshake checking the server
 * certificate against server_name (NULL: use host). cfg must be an EPW_TLS_CLIENT config. All
 * strings are copied. opts may be NULL. On success *out is set and on_ready/on_close follow;
 * on failure (UV_EINVAL, UV_ENOMEM, bind/resolve setup errors) *out is NULL and nothing follows.
 */
int epw_conn_connect(uv_loop_t *loop, epw_tls_config_t *cfg, const char *host, uint16_t port,
                     const char *server_name, const char *bind_addr, const epw_conn_opts_t *opts,
                     const epw_conn_cbs_t *cbs, epw_conn_t **out);

/*
 * Encodes env as one frame and queues it (after the handshake only). Never refuses for
 * backpressure: check epw_conn_writable() first. env stays owned by the caller.
 * Returns 0, UV_ENOTCONN (handshake not done), EPW_E_CLOSED (closing), EPW_E_TOOBIG, EPW_E_PROTO,
 * EPW_E_TLS, UV_ENOMEM, or a uv_write error (the connection is then closing).
 */
int epw_conn_send(epw_conn_t *c, const Epw__Envelope *env);

/*
 * Raw mode's send: encrypts `len` bytes of `buf` (not kept) and queues them, no framing. Same
 * rules and results as epw_conn_send (after the handshake only, never refuses for backpressure;
 * 0, UV_ENOTCONN, EPW_E_CLOSED, EPW_E_TLS, UV_ENOMEM or a uv_write error). len 0 is a no-op.
 */
int epw_conn_send_raw(epw_conn_t *c, const void *buf, size_t len);

/* Bytes handed to libuv but not yet written to the socket. */
size_t epw_conn_write_queue_size(const epw_conn_t *c);
/* 1 while the write queue is below the high-water mark; when it returns 0, on_drain follows
 * once the queue is down to half the high-water mark. */
int epw_conn_writable(epw_conn_t *c);

/*
 * Starts closing (idempotent). Queued data, then a TLS close_notify, are flushed for up to
 * linger_ms before the socket is closed; on_close(status = reason) follows asynchronously. No
 * envelope is delivered after this call.
 */
void epw_conn_close(epw_conn_t *c, int reason);

/*
 * Flow control on the receive side (loop thread). on = 0 stops reading from the socket
 * (uv_read_stop), so the peer's TCP window fills up and it stops sending: the collector uses this
 * while its store queue is full. It also pauses delivery: once it returns (even when called from
 * on_envelope) no further on_envelope runs until reading is switched on again; bytes already
 * received stay buffered (at most one read chunk plus one partial frame). The idle timeout does
 * not fire while paused. on = 1 restarts reading and delivers what was buffered; when called from
 * outside this connection's callbacks that delivery happens before it returns. Idempotent.
 * Only once the connection is open (after on_ready / the listener's handover). Returns 0,
 * UV_ENOTCONN (handshake not done), EPW_E_CLOSED (closing: nothing to do) or a uv_read_start
 * error (the connection is then closing).
 */
int epw_conn_set_reading(epw_conn_t *c, int on);
/* 1 while reading is on (the default). */
int epw_conn_reading(const epw_conn_t *c);

/* Replaces the callbacks (the listener's on_conn must call this). */
void epw_conn_set_callbacks(epw_conn_t *c, const epw_conn_cbs_t *cbs);

/* Peer identity from its certificate (valid after the handshake until on_close returns; "" before).
 * The collector takes the identity from here, never from a message. */
const char *epw_conn_peer_cn(const epw_conn_t *c);
const char *epw_conn_peer_ou(const epw_conn_t *c);
int epw_conn_peer_is_operator(const epw_conn_t *c);
/* "192.0.2.7:51234" / "[2001:db8::1]:443"; "" when unknown. Valid until on_close returns. */
const char *epw_conn_peer_addr(const epw_conn_t *c);
uv_loop_t *epw_conn_loop(const epw_conn_t *c);

/* ---- server side -------------------------------------------------------------------------- */

/*
 * Called once per accepted connection whose TLS handshake succeeded (failures are logged and
 * counted, never reported here). The callee must call epw_conn_set_callbacks(c, ...) to take the
 * connection, or epw_conn_close(c, ...) to refuse it; otherwise the connection is closed with
 * EPW_E_INTERNAL. From then on the connection belongs to the callee's callbacks, independent of
 * the listener.
 */
typedef void (*epw_listener_conn_cb)(epw_listener_t *l, epw_conn_t *c, void *ud);
/* Optional: a connection failed before it was handed over (status as for on_close; the reason
 * as an epw_tls_fail_t comes from epw_listener_fail_reason() during the call). */
typedef void (*epw_listener_fail_cb)(epw_listener_t *l, int status, const char *peer_addr,
                                     void *ud);
typedef void (*epw_listener_close_cb)(epw_listener_t *l, void *ud);

typedef struct epw_listener_opts_s {
    const char *addr; /* numeric IPv4/IPv6 address to bind, e.g. "0.0.0.0", "::", "127.0.0.1" */
    uint16_t port;    /* 0: pick one (read it back with epw_listener_port) */
    int backlog;      /* 0: 128 */
    epw_conn_opts_t conn;
    epw_listener_conn_cb on_conn; /* required */
    epw_listener_fail_cb on_fail; /* optional */
    void *ud;
} epw_listener_opts_t;

/* Binds and listens. cfg must be an EPW_TLS_SERVER config. Returns 0 or a UV_E* code (then *out
 * is NULL and no callback follows). */
int epw_listener_start(uv_loop_t *loop, epw_tls_config_t *cfg, const epw_listener_opts_t *opts,
                       epw_listener_t **out);
/* The bound port. */
uint16_t epw_listener_port(const epw_listener_t *l);
/* Connections accepted but not yet handed over, and handshake failures so far. */
size_t epw_listener_pending(const epw_listener_t *l);
uint64_t epw_listener_failures(const epw_listener_t *l);
/* Only during on_fail: why that connection failed (EPW_TLS_FAIL_NO_CERT ... from the engine,
 * EPW_TLS_FAIL_TIMEOUT for the handshake timeout, EPW_TLS_FAIL_ABORTED when the peer closed or
 * the socket failed first, EPW_TLS_FAIL_OTHER for local errors). EPW_TLS_FAIL_NONE otherwise. */
epw_tls_fail_t epw_listener_fail_reason(const epw_listener_t *l);
/*
 * Stops listening and closes connections not yet handed over (connections already handed over
 * are not touched). cb (may be NULL) runs once everything is released; the listener is freed
 * right after it returns.
 */
void epw_listener_close(epw_listener_t *l, epw_listener_close_cb cb, void *ud);

#endif
