/* api: the collector's operator API server (HTTPS on its own listener: API.md and /metrics). */
#ifndef API_H
#define API_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "detect.h"
#include "http_req.h"
#include "store.h"

/*
 * Serves collector/API.md (the contract the epwatch CLI and scripts rely on) over HTTPS on a
 * second epw_listener in the collector's loop, using epw_conn's raw mode (no frames) and the
 * HTTP layer of http_req.h / http_resp.h / http_router.h / prom.h.
 *
 * Authorisation (per request): a connection whose client certificate carries OU=operators may
 * do everything; any other request must carry "Authorization: Bearer T" with T one of
 * api_tokens, else 401 (JSON, WWW-Authenticate: Bearer). The TLS layer refuses agent
 * certificates and foreign or expired ones at the handshake; a client without a certificate is
 * let through the handshake only when tokens are configured (EPW_TLS_PEER_OPERATOR_OR_NONE),
 * otherwise it is refused there too (EPW_TLS_PEER_OPERATOR). Every route needs authorisation,
 * /api/v1/health and /metrics included (Prometheus sends a bearer token with `authorization`).
 *
 * Threads. Everything here, and every provider callback, runs on the loop thread, except the
 * store reads: each request that reads the store runs them in uv_queue_work (libuv's thread
 * pool) and answers from the after-work callback. Readers (store_reader_t, one SQLite
 * connection each) are kept in a small pool guarded by a mutex: a work item takes one (opening a
 * new one when the pool is empty), uses it alone for the whole item, and puts it back, so a
 * reader is never used by two threads at once; at most max_readers idle readers are kept (the
 * rest are closed), and a reader that failed is closed instead of being reused.
 *
 * Connections: keep-alive and pipelining (one request answered at a time, in order); at most
 * max_connections at once (one more gets a 503 and is closed); a malformed request gets 400, an
 * oversized one 413 (then that connection closes: the byte stream cannot be trusted any more),
 * other connections are not affected.
 *
 * Lifetimes: the store must stay open until api_close's callback has run (work items open
 * readers from it and read its statistics): close the API first, then the store.
 */

typedef struct api_s api_t;

/* A host's status as /api/v1/hosts reports it. */
typedef enum {
    API_STATUS_OK = 0,
    API_STATUS_WARNING = 1,
    API_STATUS_CRITICAL = 2,
    API_STATUS_SILENT = 3 /* wins over every other status */
} api_status_t;

/* "ok", "warning", "critical", "silent". */
const char *api_status_name(api_status_t s);
/* The API's alert kind names: "threshold" (DETECT_PRESSURE and DETECT_PROTOCOL), "trend",
 * "leak", "kernel_leak", "os_event", "port_starved", "silent"; "unknown" otherwise. */
const char *api_alert_kind_name(detect_kind_t kind);

typedef struct api_host_alerts_s {
    size_t active;       /* active alerts of the host */
    api_status_t status; /* from the worst active alert; SILENT when a silent alert is active */
} api_host_alerts_t;

#define API_MAX_REJECT_REASONS 32

typedef struct api_counter_s {
    const char *label; /* e.g. "version_mismatch"; must stay valid until the callback returns */
    uint64_t value;
} api_counter_t;

/* The collector's own health for /metrics (store figures are read here from store_get_stats). */
typedef struct api_counters_s {
    uint64_t snapshots_ingested;                   /* snapshots committed as new rows */
    api_counter_t rejects[API_MAX_REJECT_REASONS]; /* connections refused, by reason */
    size_t n_rejects;
} api_counters_t;

/* One alert for /api/v1/alerts. Everything is borrowed for the duration of the done call. */
typedef struct api_alert_s {
    int64_t id;
    const char *host;
    const char *kind; /* api_alert_kind_name() */
    detect_severity_t severity;
    int active;
    int64_t raised_at_ms;
    int64_t resolved_at_ms;      /* ignored while active (null) */
    int64_t last_notified_at_ms; /* 0: raised_at */
    const char *summary;         /* NULL: "" */
    const cJSON *evidence;       /* NULL: {} */
} api_alert_t;

/*
 * An alert query. An alert matches `since_ms` when it was active at some time at or after it
 * (it is active, or resolved_at_ms >= since_ms).
 */
typedef struct api_alert_query_s {
    int active;       /* -1: both (the default), 1: active only, 0: resolved only */
    const char *host; /* NULL: every host */
    int64_t since_ms; /* default: now - 24 h */
    size_t limit;     /* 1..10000, default 500 */
} api_alert_query_t;

/* Completion of a list_alerts call: status 0 and the alerts (borrowed during the call), or a
 * negative code (the client gets 503). Loop thread; exactly once per call that returned 0. */
typedef void (*api_alerts_done_cb)(void *req, int status, const api_alert_t *alerts, size_t n);

/*
 * What the collector knows beyond the store: live counters and the alerts. Every member is
 * optional (NULL: 0, "ok" and no alerts). All calls on the loop thread; pointers passed in are
 * valid during the call only.
 */
typedef struct api_provider_s {
    /* Agents with an open, identified session. */
    size_t (*agents_connected)(void *ud);
    /* Fills *out (cleared before the call). */
    void (*counters)(void *ud, api_counters_t *out);
    /* Active alerts and status of one host (*out cleared before the call: 0, OK). */
    void (*host_alerts)(void *ud, const char *host, api_host_alerts_t *out);
    /*
     * Lists alerts for `q`, newest first. May answer now (calling done before returning) or
     * later (e.g. after its own database work). It should apply the query; the API applies it
     * again (filters, order, limit), so returning a superset is correct. Returns 0 (done will be
     * called exactly once, even while the API is closing: api_close waits for it) or a negative
     * code (done is never called; the client gets 503).
     */
    int (*list_alerts)(void *ud, const api_alert_query_t *q, api_alerts_done_cb done, void *req);
    void *ud;
} api_provider_t;

typedef struct api_opts_s {
    const char *addr; /* numeric address to bind ("0.0.0.0", "::", "127.0.0.1") */
    uint16_t port;    /* 0: pick one (api_port) */
    /* The server's TLS material (PEM files, read during api_start): the epwatch CA, and the
     * collector's certificate and key (the same as the agent port's). */
    const char *ca_path, *cert_path, *key_path;
    /* Bearer tokens (copied; empty strings are ignored). None: operator certificates only. */
    const char *const *tokens;
    size_t n_tokens;
    store_t *store;           /* borrowed, required; see "Lifetimes" */
    api_provider_t provider;  /* copied */
    size_t max_connections;   /* 0: 64 */
    size_t max_readers;       /* idle store readers kept; 0: 4 */
    uint64_t handshake_ms;    /* 0: epw_conn's default (10 s) */
    uint64_t idle_ms;         /* keep-alive idle timeout; 0: 60 s */
    http_req_limits_t limits; /* request size limits; zeros: http_req.h's defaults */
    int tls_debug;            /* mbedTLS debug level 0..4 */
} api_opts_t;

/*
 * Creates the TLS configuration, binds and listens. Returns 0, UV_EINVAL (missing address,
 * store or paths), EPW_E_CONFIG (unreadable certificate or key, logged), EPW_E_TLS, UV_ENOMEM
 * or a bind/listen error; then *out is NULL and nothing is left running.
 */
int api_start(uv_loop_t *loop, const api_opts_t *opts, api_t **out);
/* The bound port. */
uint16_t api_port(const api_t *api);

typedef struct api_stats_s {
    size_t connections;    /* open API connections */
    uint64_t accepted;     /* connections handed over after the TLS handshake */
    uint64_t refused_busy; /* closed with 503 because max_connections were open */
    uint64_t tls_failures; /* handshakes that failed (refused certificates included) */
    uint64_t requests;     /* requests answered (any status) */
    uint64_t unauthorised; /* 401 answers */
    uint64_t bad_requests; /* malformed or oversized requests (400, 413, 501, 505) */
} api_stats_t;

void api_get_stats(const api_t *api, api_stats_t *out);

/*
 * Stops listening, closes every connection (a request in progress is abandoned), waits for
 * work items and provider calls still running, closes the readers. cb (may be NULL) runs on a
 * later loop iteration once everything is released; `api` is freed right after it returns.
 */
void api_close(api_t *api, void (*cb)(void *ud), void *ud);

#endif
