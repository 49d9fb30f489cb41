/* sinks: where alert transitions go (log, exec, webhook, syslog), never blocking the loop. */
#ifndef SINKS_H
#define SINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "detect.h"
#include "epw_config.h"

/*
 * The collector hands each transition detect_ingest/detect_tick produced to sinks_dispatch(),
 * after storing it (the database is the record; a sink failing loses nothing there). One sink of
 * each type, all optional but the log:
 *
 *   log      always on, unfiltered: one line per transition through epw_log ("sinks: ...").
 *   syslog   syslog(3) with a configured ident and facility (openlog is process-global: one
 *            sinks_t with syslog enabled per process). Priority LOG_CRIT for critical raised/
 *            escalated/renotify, LOG_WARNING for warning ones, LOG_NOTICE for de-escalated and
 *            resolved. The glibc syslog() writes one datagram to /dev/log; it is called on the
 *            loop thread (a stuck local syslogd is the only way it could stall).
 *   exec     `/bin/sh -c COMMAND` via uv_spawn, in its own process group (setsid), with the alert
 *            JSON on stdin and EPWATCH_HOST, EPWATCH_KIND, EPWATCH_SEVERITY, EPWATCH_TRANSITION,
 *            EPWATCH_SUMMARY, EPWATCH_KEY, EPWATCH_SUBJECT added to the collector's environment;
 *            stdout is discarded, stderr inherited. After `timeout` the whole group is SIGKILLed.
 *            Exit status 0 is success; the status is logged either way.
 *   webhook  HTTP(S) POST of the alert JSON (Content-Type: application/json, plus the configured
 *            headers) with libcurl's multi interface driven by this loop (curl_multi_socket_action
 *            with uv_poll_t and uv_timer_t): no thread, no blocking call; curl resolves names on
 *            its own resolver thread. Why not a worker thread: deliveries are rare, the loop
 *            already owns every other timer and the shutdown bound, and one thread less means one
 *            queue and one lock less. A 2xx answer is success; anything else, a transport error
 *            or `timeout` (whole request) is a failure. Retried after `backoff`, doubling each
 *            time, `retries` times (so retries = 2 means three attempts) for transport errors,
 *            timeouts, 5xx, 408 and 429; other answers (4xx, 3xx: redirects are not followed) and
 *            TLS verification failures fail at once. `ca` replaces the system CA bundle.
 *
 * Order: exec and webhook each deliver one alert at a time, in dispatch order (a receiver sees an
 * episode's RAISED before its RESOLVED), from a FIFO of at most `queue_max` alerts; when full the
 * new alert is dropped for that sink and counted. A failing sink never delays another.
 *
 * Filters (exec, webhook, syslog): `min_severity` (warning|critical) and `kinds` (detect kind
 * names; empty = all). A transition passes when its kind is listed and either its severity or its
 * previous severity reaches the minimum; the RESOLVED of an episode the sink was told about always
 * passes, so a critical-only receiver hears the end of an episode that de-escalated first.
 *
 * Threads: everything runs on the loop thread: create, dispatch, stats, close, and the result
 * callback. The process must ignore SIGPIPE (an exec child that exits without reading its stdin
 * would otherwise kill the collector); epwatch-collector does.
 */

typedef struct sinks_s sinks_t;

typedef enum { SINKS_LOG = 0, SINKS_EXEC, SINKS_WEBHOOK, SINKS_SYSLOG, SINKS_COUNT } sinks_id_t;

/* "log", "exec", "webhook", "syslog" ("?" otherwise). Static storage. */
const char *sinks_id_name(sinks_id_t id);

/*
 * Settings, filled by epw_config. In the collector's INI:
 *
 *   [sink]           queue_max (256, queued + in progress per sink), close_grace (5s)
 *   [sink.webhook]   url (unset = off), min_severity (warning), kinds, timeout (10s),
 *                    retries (2), backoff (1s), headers ("Name: value" items, e.g.
 *                    "Authorization: Bearer abc"; a long one goes on its own indented line),
 *                    ca (PEM file)
 *   [sink.exec]      command (unset = off), min_severity (warning), kinds, timeout (30s)
 *   [sink.syslog]    enabled (false), ident (epwatch-collector), facility (daemon: user, daemon,
 *                    local0..local7), min_severity (warning), kinds
 *
 * Severities are stored as enum indexes: 0 = warning, 1 = critical.
 */
typedef struct sinks_conf_s {
    int queue_max;
    uint64_t close_grace_ms;
    char *webhook_url;
    int webhook_min_severity;
    epw_cfg_list_t webhook_kinds;
    uint64_t webhook_timeout_ms;
    int webhook_retries;
    uint64_t webhook_backoff_ms;
    epw_cfg_list_t webhook_headers;
    char *webhook_ca;
    char *exec_command;
    int exec_min_severity;
    epw_cfg_list_t exec_kinds;
    uint64_t exec_timeout_ms;
    bool syslog_enabled;
    char *syslog_ident;
    int syslog_facility;
    int syslog_min_severity;
    epw_cfg_list_t syslog_kinds;
} sinks_conf_t;

/* Choices of the ENUM keys (NULL-terminated; static storage). */
extern const char *const sinks_severity_choices[];
extern const char *const sinks_facility_choices[];

/*
 * The rows for a sinks_conf_t embedded as member `m` of the caller's config struct `T`, for
 * inclusion in the caller's table (collector_conf.c):
 *     static const epw_cfg_key_t tab[] = { ..., SINKS_CONF_KEYS(collector_conf_t, sinks), ... };
 */
#define SINKS_CONF_KEYS(T, m)                                                                      \
    EPW_CFG_INT("sink.queue_max", T, m.queue_max, "256", 1, 100000,                                \
                "alerts queued or in progress per exec/webhook sink; more are dropped"),           \
        EPW_CFG_DURATION("sink.close_grace", T, m.close_grace_ms, "5s", 0, 300000,                 \
                         "at shutdown, how long deliveries in progress may finish"),               \
        EPW_CFG_STRING("sink.webhook.url", T, m.webhook_url, NULL, 0,                              \
                       "http:// or https:// URL the alert JSON is POSTed to (unset: no webhook)"), \
        EPW_CFG_ENUM("sink.webhook.min_severity", T, m.webhook_min_severity, "warning",            \
                     sinks_severity_choices, "warning or critical"),                               \
        EPW_CFG_LIST("sink.webhook.kinds", T, m.webhook_kinds, NULL, 0,                            \
                     "alert kinds sent (pressure, trend, leak, ...); empty: all"),                 \
        EPW_CFG_DURATION("sink.webhook.timeout", T, m.webhook_timeout_ms, "10s", 100, 600000,      \
                         "limit for one whole HTTP request"),                                      \
        EPW_CFG_INT("sink.webhook.retries", T, m.webhook_retries, "2", 0, 10,                      \
                    "attempts after the first one"),                                               \
        EPW_CFG_DURATION("sink.webhook.backoff", T, m.webhook_backoff_ms, "1s", 10, 300000,        \
                         "delay before the first retry, doubled for each further one"),            \
        EPW_CFG_LIST("sink.webhook.headers", T, m.webhook_headers, NULL, EPW_CFG_SECRET,           \
                     "extra request headers, 'Name: value' each"),                                 \
        EPW_CFG_STRING("sink.webhook.ca", T, m.webhook_ca, NULL, 0,                                \
                       "CA certificates (PEM) for an https URL instead of the system bundle"),     \
        EPW_CFG_STRING("sink.exec.command", T, m.exec_command, NULL, 0,                            \
                       "shell command run per alert, JSON on stdin (unset: no exec sink)"),        \
        EPW_CFG_ENUM("sink.exec.min_severity", T, m.exec_min_severity, "warning",                  \
                     sinks_severity_choices, "warning or critical"),                               \
        EPW_CFG_LIST("sink.exec.kinds", T, m.exec_kinds, NULL, 0,                                  \
                     "alert kinds passed to the command; empty: all"),                             \
        EPW_CFG_DURATION("sink.exec.timeout", T, m.exec_timeout_ms, "30s", 100, 3600000,           \
                         "the command's process group is killed after this"),                      \
        EPW_CFG_BOOL("sink.syslog.enabled", T, m.syslog_enabled, "false",                          \
                     "send alerts to syslog(3)"),                                                  \
        EPW_CFG_STRING("sink.syslog.ident", T, m.syslog_ident, "epwatch-collector", 0,             \
                       "syslog identity"),                                                         \
        EPW_CFG_ENUM("sink.syslog.facility", T, m.syslog_facility, "daemon",                       \
                     sinks_facility_choices, "user, daemon or local0..local7"),                    \
        EPW_CFG_ENUM("sink.syslog.min_severity", T, m.syslog_min_severity, "warning",              \
                     sinks_severity_choices, "warning or critical"),                               \
        EPW_CFG_LIST("sink.syslog.kinds", T, m.syslog_kinds, NULL, 0,                              \
                     "alert kinds sent to syslog; empty: all")

/* A table of just these keys for a bare sinks_conf_t (tests, tools). Static storage. */
const epw_cfg_key_t *sinks_conf_keys(void);

/* Cross-field checks: kind names, "Name: value" headers without CR/LF, the URL scheme. Returns 0,
 * or EPW_E_CONFIG with one "key 'x': message" line per problem appended to `err` (may be NULL). */
int sinks_conf_check(const sinks_conf_t *c, char *err, size_t errlen);

/*
 * The alert as a JSON object (caller owns; NULL when out of memory): host, kind, severity,
 * prev_severity, transition, active (false only for RESOLVED), key, subject, summary, raised_at
 * (started_ms), at (at_ms), resolved_at (at_ms for RESOLVED, else null) as RFC 3339 UTC to the
 * second like the operator API, at_ms (milliseconds), and evidence (a copy; null when none).
 */
cJSON *sinks_alert_json(const detect_alert_t *a);

/* The outcome of one exec or webhook delivery (log and syslog only count). */
typedef struct sinks_result_s {
    sinks_id_t sink;
    const char *key; /* the alert's episode key; valid during the callback only */
    detect_transition_t transition;
    int status;          /* 0 delivered; EPW_E_TIMEOUT; EPW_E_REJECTED (non-2xx answer, non-zero
                            exit or killed by a signal); EPW_E_TLS, EPW_E_TLS_VERIFY; UV_E* from the
                            transport or uv_spawn; EPW_E_TOOBIG (dropped: queue full); EPW_E_CLOSED
                            (cancelled by sinks_close) */
    int attempts;        /* webhook: requests made (1 + retries used); exec: 1 */
    long http_status;    /* webhook: the last answer's status, 0 when none */
    int64_t exit_status; /* exec: the child's exit code (when it exited) */
    int term_signal;     /* exec: the signal that ended it, 0 when none */
    uint64_t elapsed_ms; /* from dispatch to the outcome */
} sinks_result_t;

/* Called on the loop thread once per exec/webhook alert that passed the filters (delivered,
 * failed, dropped or cancelled). It must not call sinks_close; it may call sinks_dispatch. */
typedef void (*sinks_result_cb)(void *ud, const sinks_result_t *r);
typedef void (*sinks_close_cb)(void *ud);

/*
 * A sink set on `loop` (borrowed; must outlive the set). Checks `conf` (sinks_conf_check, errors
 * logged) and copies what it needs: `conf` may be freed afterwards. `cb` may be NULL; `ud` is
 * passed to it and to the close callback. With a webhook it calls curl_global_init (not
 * thread-safe against other threads using curl at that moment: call it at start-up).
 * Returns 0, EPW_E_CONFIG, EPW_E_INTERNAL (curl refused to initialise) or UV_ENOMEM; *out is
 * NULL on failure (handles already made are then closed: run the loop before uv_loop_close).
 */
int sinks_create(uv_loop_t *loop, const sinks_conf_t *conf, sinks_result_cb cb, void *ud,
                 sinks_t **out);

/*
 * Sends one transition to every sink whose filters pass. `a` is borrowed for the call only: what
 * the deliveries need is copied. Returns at once (the log and syslog lines are written now, exec
 * and webhook deliveries are queued). Returns 0, UV_EINVAL, EPW_E_CLOSED (after sinks_close) or
 * UV_ENOMEM (counted as a failure of the sinks that missed it). A sink's failure is never
 * returned here: see sinks_stats and the result callback.
 */
int sinks_dispatch(sinks_t *s, const detect_alert_t *a);

/* Counters of one sink since creation. */
typedef struct sinks_stats_s {
    bool enabled;
    uint64_t sent;     /* delivered (log/syslog: written) */
    uint64_t failed;   /* gave up (after retries), including cancelled at close */
    uint64_t dropped;  /* queue full */
    uint64_t filtered; /* not for this sink (severity, kinds) */
    uint64_t retries;  /* webhook: extra attempts made */
    size_t queued;     /* waiting or in progress now */
} sinks_stats_t;

/* Fills *out (cleared first; all zero for an unknown id). */
void sinks_stats(const sinks_t *s, sinks_id_t id, sinks_stats_t *out);

/*
 * Stops accepting alerts, lets queued and in-progress deliveries finish for up to close_grace,
 * then cancels the rest (the webhook request is aborted, the exec process group SIGKILLed and
 * reaped; each cancelled alert is reported with EPW_E_CLOSED), closes every handle and calls
 * `cb(ud)` (may be NULL) from a close callback, after which `s` is freed. Call once.
 */
void sinks_close(sinks_t *s, sinks_close_cb cb);

#endif
