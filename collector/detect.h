/* detect: the collector's judgement, pure: alert rules evaluated per host on each snapshot. */
#ifndef DETECT_H
#define DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "epw_config.h"
#include "epwatch.pb-c.h"

/*
 * One detect_state_t per monitored source (the collector's choice of identity: one per agent,
 * or one per (agent, netns) when an agent reports several namespaces: their pressure series must
 * not interleave). The module does no I/O, reads no clock and keeps no global state: every call
 * is given `now_ms` (the collector's wall clock), so a series of snapshots replays identically.
 * It returns alert transitions; storing and sending them is the caller's business.
 *
 * Two clocks. Series (trend, leaks, hits, quiet periods) run on the snapshot's taken_at_ms (the
 * agent's clock; spooled snapshots replayed in a burst still have their true spacing). Silence and
 * re-notification run on `now_ms`. A transition's at_ms is now_ms; data_ms is the snapshot time.
 *
 * Threads: a state is used by one thread at a time; distinct states are independent.
 *
 * The rules (every figure in percent of the pool is a whole number of points):
 *
 * 1. Thresholds on pressure_pct (kind PRESSURE), and when protocol_alerts is set on each
 *    host[] protocol's usage_pct (kind PROTOCOL, subject "tcp"/"udp"). With W = warning_pct,
 *    C = critical_pct, H = hysteresis_pct, and a sample "at or above" a level when value >= level:
 *    - inactive: `hits` consecutive samples >= C raise CRITICAL; otherwise `hits` consecutive
 *      samples >= W raise WARNING (a sample >= C also counts towards W).
 *    - WARNING: `hits` consecutive samples >= C escalate to CRITICAL (same episode and key);
 *      one sample < W - H resolves.
 *    - CRITICAL: one sample < W - H resolves; otherwise one sample < C - H de-escalates to
 *      WARNING. So with the defaults a critical episode survives any dip that stays >= 85, a
 *      warning one any dip that stays >= 65.
 *    A level set to 0 is disabled. An episode is raised once; severity changes are ESCALATED /
 *    DEESCALATED transitions of that episode.
 * 2. Trend (kind TREND, WARNING): least-squares line through the pressure samples of the last
 *    trend_window_ms, evaluated once there are >= trend_min_points spanning >= trend_min_span_ms.
 *    Projection = (100 - fitted value at the newest sample) / slope. Raises when slope > 0,
 *    R^2 >= trend_min_fit_pct / 100 and projection <= trend_horizon_ms (already at 100: 0).
 *    Resolves when slope <= 0 or projection > 1.5 x horizon. A flat series has slope 0 and R^2 0.
 * 3. Leaks (kind LEAK per process, subject "PID:NAME"; kind KERNEL_LEAK for kernel_ports; both
 *    WARNING): the port count over leak_window_ms, evaluated once there are >= leak_min_points
 *    spanning >= leak_min_span_ms. growth = fitted slope x span. Raises when all hold:
 *    - growth >= leak_min_growth;
 *    - R^2 >= leak_min_fit_pct / 100;
 *    - monotonic at a coarse scale: the span cut in 6 equal slices, the share of slice means not
 *      below the previous one >= leak_min_rising_pct (sample jitter of a real leak is ignored);
 *    - the fitted growth of each half of the span >= leak_min_growth / 4 (steady, not one step).
 *    A plateau (slope 0), a noisy drift (poor fit), a sawtooth whose rising phase is shorter
 *    than leak_min_span (poor fit, flat halves) and a single jump (one flat half) are not leaks.
 *    Resolves when slope <= 0 or growth falls below leak_min_growth / 2. A process is identified
 *    by (pid, name) among top_processes (the "other" bucket is ignored); when it is absent from
 *    a snapshot (exited, restarted, or out of the top N) its series is dropped and an active
 *    leak on it resolves.
 * 4. OS events (kind OS_EVENT) and port_starved (kind PORT_STARVED): CRITICAL at once. OS_EVENT
 *    is raised by Windows Tcpip events 4231 (TCP) or 4266 (UDP) port space exhausted; 4227
 *    (TIME_WAIT endpoint reuse, routine on busy healthy hosts) raises nothing but is counted in
 *    the evidence. Each resolves on the first snapshot taken >= event_quiet_ms after the last
 *    snapshot that carried one.
 * 5. Silent (kind SILENT, WARNING: the host may just be down; if it was starved, the snapshots
 *    it spooled raise PORT_STARVED when it is back): detect_tick raises it when more than
 *    silent_factor x interval has passed (now_ms) since the last snapshot was ingested (or since
 *    creation). interval = detect_state_set_interval's value, else default_interval_ms. The next
 *    snapshot resolves it.
 * Re-notification: detect_tick emits RENOTIFY for every active episode whose last raise or
 * re-notification is >= renotify_ms old (0 disables).
 * Clock steps: a snapshot older than the previous one clears the trend and leak series.
 */

typedef enum {
    DETECT_PRESSURE = 1, /* pressure_pct over thresholds */
    DETECT_PROTOCOL,     /* host[] usage_pct of one protocol over thresholds */
    DETECT_TREND,        /* pressure projected to reach 100% within the horizon */
    DETECT_LEAK,         /* one process's port count growing steadily */
    DETECT_KERNEL_LEAK,  /* kernel-owned ports growing steadily (a driver) */
    DETECT_OS_EVENT,     /* Windows Tcpip 4231/4266 */
    DETECT_PORT_STARVED, /* the agent could not connect for lack of ports */
    DETECT_SILENT        /* no snapshot for silent_factor intervals */
} detect_kind_t;

typedef enum { DETECT_WARNING = 1, DETECT_CRITICAL = 2 } detect_severity_t;

typedef enum {
    DETECT_RAISED = 1, /* a new episode (new key) */
    DETECT_ESCALATED,  /* WARNING -> CRITICAL within the episode */
    DETECT_DEESCALATED,
    DETECT_RENOTIFY, /* still active; evidence is the latest */
    DETECT_RESOLVED  /* the episode is over; its key is never used again */
} detect_transition_t;

/* "pressure", "protocol", "trend", "leak", "kernel_leak", "os_event", "port_starved", "silent". */
const char *detect_kind_name(detect_kind_t kind);
/* "warning", "critical". */
const char *detect_severity_name(detect_severity_t sev);
/* "raised", "escalated", "deescalated", "renotify", "resolved". */
const char *detect_transition_name(detect_transition_t t);

/*
 * One transition. All pointers are owned by the record (freed by detect_alerts_free).
 * key: "<host>/<kind>[/<subject>]@<started_ms>", unique per episode, identical in every
 * transition of the episode; started_ms increases strictly between episodes of one rule.
 * evidence: a JSON object naming the figures that triggered it (see detect.c's builders; every
 * object has "taken_at_ms" for ingest transitions, "reason" for RESOLVED, "active_for_ms" for
 * RENOTIFY).
 */
typedef struct detect_alert_s {
    detect_transition_t transition;
    detect_kind_t kind;
    detect_severity_t severity;      /* after the transition (RESOLVED: the last one) */
    detect_severity_t prev_severity; /* before it; equal to severity except on a change */
    char *host;
    char *subject; /* "" for host-wide rules, "tcp"/"udp", "PID:NAME", never NULL */
    char *key;
    char *summary;      /* one line for people */
    int64_t started_ms; /* the episode's first transition (its RAISED), collector clock */
    int64_t at_ms;      /* this transition, collector clock */
    int64_t data_ms;    /* taken_at_ms of the snapshot that caused it; 0 from detect_tick */
    cJSON *evidence;
} detect_alert_t;

/* A growable list; zero-initialise it. Transitions are appended in a fixed rule order. */
typedef struct detect_alerts_s {
    detect_alert_t *items;
    size_t count, cap;
} detect_alerts_t;

/* Frees every record and the array; leaves the list empty and reusable. NULL is a no-op. */
void detect_alerts_free(detect_alerts_t *list);

/* Rule parameters; plain values so epw_config can fill them (see detect_rules_keys). */
typedef struct detect_rules_s {
    int warning_pct;            /* 70; 0 disables the level */
    int critical_pct;           /* 90; 0 disables the level */
    int hits;                   /* 2 consecutive samples before raising or escalating */
    int hysteresis_pct;         /* 5 points below a level before leaving it */
    bool protocol_alerts;       /* false: pressure already is the worst protocol on Windows, and on
                                   Linux host[] is not what starves connect() */
    uint64_t trend_window_ms;   /* 15 min */
    int trend_min_points;       /* 5 */
    uint64_t trend_min_span_ms; /* 5 min */
    uint64_t trend_horizon_ms;  /* 30 min; 0 disables the trend rule */
    int trend_min_fit_pct;      /* 80: R^2 >= 0.80 */
    uint64_t leak_window_ms;    /* 1 h */
    int leak_min_points;        /* 6 */
    uint64_t leak_min_span_ms;  /* 30 min */
    int leak_min_growth;        /* 500 ports; 0 disables the leak rules */
    int leak_min_fit_pct;       /* 70 */
    int leak_min_rising_pct;    /* 75: share of rising steps between 6 slice means */
    uint64_t event_quiet_ms;    /* 10 min */
    int silent_factor;          /* 3; 0 disables the silent rule */
    uint64_t default_interval_ms; /* 60 s: the agent's default, when no Hello said otherwise */
    uint64_t renotify_ms;         /* 1 h; 0 disables re-notification */
} detect_rules_t;

/* Fills `r` with the defaults above. */
void detect_rules_default(detect_rules_t *r);

/*
 * The epw_config table for detect_rules_t, with bare names ("warning", "critical", "hits",
 * "hysteresis", "protocol_alerts", "trend_window", "trend_min_points", "trend_min_span",
 * "trend_horizon", "trend_min_fit", "leak_window", "leak_min_points", "leak_min_span",
 * "leak_min_growth", "leak_min_fit", "leak_min_rising", "event_quiet", "silent_factor",
 * "default_interval", "renotify"), defaults equal to detect_rules_default's, and bounds.
 * Per-host override sections can be parsed with epw_config_parse_buf into a copy of the base
 * rules. Static storage.
 */
const epw_cfg_key_t *detect_rules_keys(void);

/* Cross-field checks (warning < critical when both set, hysteresis < the lowest level, ...).
 * Returns 0, or EPW_E_CONFIG with one line per problem appended to `err` (may be NULL). */
int detect_rules_check(const detect_rules_t *r, char *err, size_t errlen);

/* A host-name pattern and its rules; the collector owns both. */
typedef struct detect_override_s {
    const char *pattern; /* fnmatch(3) glob, matched case-insensitively ("web-*", "db?.prod") */
    detect_rules_t rules;
} detect_override_t;

/* The rules of the first override whose pattern matches `host`, else `base`. Never NULL when
 * base is not NULL; the result points into `ov` or is `base`. */
const detect_rules_t *detect_rules_for_host(const detect_override_t *ov, size_t n, const char *host,
                                            const detect_rules_t *base);

typedef struct detect_state_s detect_state_t;

/* A state for `host` (copied), with a copy of `rules`. now_ms starts the silence clock.
 * *out is NULL on failure. 0, UV_EINVAL or UV_ENOMEM. */
int detect_state_create(const char *host, const detect_rules_t *rules, int64_t now_ms,
                        detect_state_t **out);
/* NULL is a no-op. Active episodes are forgotten (the caller decides what the store says). */
void detect_state_destroy(detect_state_t *st);

/* Replaces the rules (configuration reload); series and active episodes are kept. */
void detect_state_set_rules(detect_state_t *st, const detect_rules_t *rules);
/* The agent's sampling interval (Hello.interval_ms); 0 means "unknown, use the default". */
void detect_state_set_interval(detect_state_t *st, uint64_t interval_ms);

/*
 * Evaluates one snapshot (borrowed for the call) and appends transitions to `out` in this order:
 * silent, pressure, protocol (tcp, udp), trend, leaks (in top_processes order, then vanished
 * processes), kernel leak, os event, port starved. Returns 0, UV_EINVAL, or UV_ENOMEM (the state
 * stays usable; transitions of this call may be missing).
 */
int detect_ingest(detect_state_t *st, const Epw__Snapshot *snap, int64_t now_ms,
                  detect_alerts_t *out);

/* Periodic evaluation (call every few seconds): silent raise, then re-notifications. 0,
 * UV_EINVAL or UV_ENOMEM. */
int detect_tick(detect_state_t *st, int64_t now_ms, detect_alerts_t *out);

/* Number of active episodes. */
size_t detect_active_count(const detect_state_t *st);

/*
 * Re-adopts an episode the store says is active (after a collector restart), so it continues
 * under its key instead of being raised again. Uses a->kind, subject, severity, key, started_ms
 * and at_ms (last raise or re-notification). Series restart empty: the episode resolves or
 * continues by the rules as new snapshots arrive (an adopted LEAK resolves if its process is
 * absent from the next snapshot). Returns 0, UV_EINVAL (unknown kind, bad subject, or that
 * rule already active) or UV_ENOMEM.
 */
int detect_adopt(detect_state_t *st, const detect_alert_t *a);

#endif
