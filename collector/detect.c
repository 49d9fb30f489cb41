/* detect: alert rules over a host's snapshot series (thresholds, trend, leaks, events, silence). */
#include "epw_attr.h"
#include "detect.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "epw_err.h"
#include "epw_snap.h"
#include "epw_stats.h"
#include "epw_util.h"

/* A series keeps at most about this many points per window: denser samples overwrite the newest
 * point, so memory is bounded whatever the agent's interval. */
#define SERIES_RESOLUTION 512

enum { EV_4227, EV_4231, EV_4266, EV_N };
static const uint32_t ev_ids[EV_N] = {4227, 4231, 4266};

typedef struct pt_s {
    int64_t t;
    double v;
} pt_t;

typedef struct series_s {
    pt_t *p;
    size_t n, cap;
} series_t;

/* One rule's episode. sev == 0: inactive. */
typedef struct ep_s {
    detect_kind_t kind;
    const char *subject; /* static, or owned by the track */
    detect_severity_t sev;
    int64_t started_ms;
    int64_t last_started_ms; /* kept across episodes so keys never repeat */
    int64_t notified_ms;
    char *key;
    char *summary;   /* latest */
    cJSON *evidence; /* latest */
} ep_t;

typedef struct thr_s {
    ep_t ep;
    int warn_run, crit_run;
} thr_t;

typedef struct track_s {
    uint32_t pid;
    char *name;
    char *subject; /* "PID:NAME" */
    bool seen;
    series_t s;
    ep_t ep;
} track_t;

struct detect_state_s {
    char *host;
    detect_rules_t rules;
    uint64_t interval_ms;
    int64_t last_seen_ms; /* collector clock */
    int64_t last_data_ms; /* agent clock of the newest snapshot; 0 before the first */
    bool seen_any;
    thr_t pressure;
    thr_t proto[2]; /* tcp, udp */
    series_t trend_s;
    ep_t trend;
    series_t kernel_s;
    ep_t kernel;
    track_t *tracks;
    size_t n_tracks, cap_tracks;
    ep_t event;
    int64_t last_event_ms; /* data time of the last snapshot with 4231/4266; -1: next one */
    uint64_t ev_total[EV_N];
    ep_t starved;
    int64_t last_starved_ms;
    uint64_t starved_total;
    ep_t silent;
};

/* ---- names ---- */

const char *detect_kind_name(detect_kind_t kind)
{
    switch (kind) {
    case DETECT_PRESSURE:
        return "pressure";
    case DETECT_PROTOCOL:
        return "protocol";
    case DETECT_TREND:
        return "trend";
    case DETECT_LEAK:
        return "leak";
    case DETECT_KERNEL_LEAK:
        return "kernel_leak";
    case DETECT_OS_EVENT:
        return "os_event";
    case DETECT_PORT_STARVED:
        return "port_starved";
    case DETECT_SILENT:
        return "silent";
    }
    return "unknown";
}

const char *detect_severity_name(detect_severity_t sev)
{
    return sev == DETECT_CRITICAL ? "critical" : sev == DETECT_WARNING ? "warning" : "none";
}

const char *detect_transition_name(detect_transition_t t)
{
    switch (t) {
    case DETECT_RAISED:
        return "raised";
    case DETECT_ESCALATED:
        return "escalated";
    case DETECT_DEESCALATED:
        return "deescalated";
    case DETECT_RENOTIFY:
        return "renotify";
    case DETECT_RESOLVED:
        return "resolved";
    }
    return "unknown";
}

/* ---- rules ---- */

void detect_rules_default(detect_rules_t *r)
{
    memset(r, 0, sizeof(*r));
    r->warning_pct = 70;
    r->critical_pct = 90;
    r->hits = 2;
    r->hysteresis_pct = 5;
    r->protocol_alerts = false;
    r->trend_window_ms = 15 * 60000;
    r->trend_min_points = 5;
    r->trend_min_span_ms = 5 * 60000;
    r->trend_horizon_ms = 30 * 60000;
    r->trend_min_fit_pct = 80;
    r->leak_window_ms = 60 * 60000;
    r->leak_min_points = 6;
    r->leak_min_span_ms = 30 * 60000;
    r->leak_min_growth = 500;
    r->leak_min_fit_pct = 70;
    r->leak_min_rising_pct = 75;
    r->event_quiet_ms = 10 * 60000;
    r->silent_factor = 3;
    r->default_interval_ms = 60000;
    r->renotify_ms = 60 * 60000;
}

#define DAY_MS (24 * 3600 * 1000LL)
static const epw_cfg_key_t rules_keys[] = {
    EPW_CFG_INT("warning", detect_rules_t, warning_pct, "70", 0, 100,
                "Warning level of the pressure figure, percent (0: off)."),
    EPW_CFG_INT("critical", detect_rules_t, critical_pct, "90", 0, 100,
                "Critical level of the pressure figure, percent (0: off)."),
    EPW_CFG_INT("hits", detect_rules_t, hits, "2", 1, 100,
                "Consecutive samples at or above a level before raising or escalating."),
    EPW_CFG_INT("hysteresis", detect_rules_t, hysteresis_pct, "5", 0, 50,
                "Points below a level the pressure must fall before the level is left."),
    EPW_CFG_BOOL("protocol_alerts", detect_rules_t, protocol_alerts, "false",
                 "Also apply the levels to each protocol's host-wide usage."),
    EPW_CFG_DURATION("trend_window", detect_rules_t, trend_window_ms, "15m", 60000, DAY_MS,
                     "Pressure history fitted by the trend rule."),
    EPW_CFG_INT("trend_min_points", detect_rules_t, trend_min_points, "5", 3, 10000,
                "Samples needed before the trend rule judges."),
    EPW_CFG_DURATION("trend_min_span", detect_rules_t, trend_min_span_ms, "5m", 1000, DAY_MS,
                     "Time the samples must span before the trend rule judges."),
    EPW_CFG_DURATION("trend_horizon", detect_rules_t, trend_horizon_ms, "30m", 0, DAY_MS,
                     "Warn when pressure is projected to reach 100% sooner (0: off)."),
    EPW_CFG_INT("trend_min_fit", detect_rules_t, trend_min_fit_pct, "80", 0, 100,
                "Minimum R^2 of the trend line, percent."),
    EPW_CFG_DURATION("leak_window", detect_rules_t, leak_window_ms, "1h", 60000, 7 * DAY_MS,
                     "Port-count history examined for leaks."),
    EPW_CFG_INT("leak_min_points", detect_rules_t, leak_min_points, "6", 3, 100000,
                "Samples needed before the leak rules judge."),
    EPW_CFG_DURATION("leak_min_span", detect_rules_t, leak_min_span_ms, "30m", 1000, 7 * DAY_MS,
                     "Time the samples must span before the leak rules judge."),
    EPW_CFG_INT("leak_min_growth", detect_rules_t, leak_min_growth, "500", 0, 1000000,
                "Ports a process or the kernel must gain steadily to be called leaking (0: off)."),
    EPW_CFG_INT("leak_min_fit", detect_rules_t, leak_min_fit_pct, "70", 0, 100,
                "Minimum R^2 of a leak's growth line, percent."),
    EPW_CFG_INT(
        "leak_min_rising", detect_rules_t, leak_min_rising_pct, "75", 0, 100,
        "Minimum share of rising steps between the means of six equal time slices, percent."),
    EPW_CFG_DURATION("event_quiet", detect_rules_t, event_quiet_ms, "10m", 0, DAY_MS,
                     "Quiet time before an OS event or port-starved alert resolves."),
    EPW_CFG_INT("silent_factor", detect_rules_t, silent_factor, "3", 0, 1000,
                "Missed intervals before an agent is called silent (0: off)."),
    EPW_CFG_DURATION("default_interval", detect_rules_t, default_interval_ms, "1m", 100, DAY_MS,
                     "Agent interval assumed when the agent did not say."),
    EPW_CFG_DURATION("renotify", detect_rules_t, renotify_ms, "1h", 0, 30 * DAY_MS,
                     "Re-notify an active alert this often (0: never)."),
    EPW_CFG_END,
};

const epw_cfg_key_t *detect_rules_keys(void)
{
    return rules_keys;
}

static void append_err(char *err, size_t errlen, const char *msg)
{
    size_t used;

    if (!err || !errlen)
        return;
    used = strnlen(err, errlen);
    if (used + 1 >= errlen)
        return;
    snprintf(err + used, errlen - used, "%s\n", msg);
}

int detect_rules_check(const detect_rules_t *r, char *err, size_t errlen)
{
    int rc = 0;
    int lowest;

    if (r->warning_pct < 0 || r->warning_pct > 100 || r->critical_pct < 0 ||
        r->critical_pct > 100) {
        append_err(err, errlen, "alert levels must be within 0..100");
        rc = EPW_E_CONFIG;
    }
    if (r->warning_pct > 0 && r->critical_pct > 0 && r->warning_pct >= r->critical_pct) {
        append_err(err, errlen, "warning must be below critical");
        rc = EPW_E_CONFIG;
    }
    lowest = r->warning_pct > 0 ? r->warning_pct : r->critical_pct;
    if (r->hysteresis_pct < 0 || (lowest > 0 && r->hysteresis_pct >= lowest)) {
        append_err(err, errlen, "hysteresis must be below the lowest level");
        rc = EPW_E_CONFIG;
    }
    if (r->hits < 1) {
        append_err(err, errlen, "hits must be at least 1");
        rc = EPW_E_CONFIG;
    }
    if (r->trend_min_points < 3 || r->leak_min_points < 3) {
        append_err(err, errlen, "a fit needs at least 3 points");
        rc = EPW_E_CONFIG;
    }
    if (r->trend_min_span_ms > r->trend_window_ms) {
        append_err(err, errlen, "trend_min_span must not exceed trend_window");
        rc = EPW_E_CONFIG;
    }
    if (r->leak_min_span_ms > r->leak_window_ms) {
        append_err(err, errlen, "leak_min_span must not exceed leak_window");
        rc = EPW_E_CONFIG;
    }
    if (r->leak_min_growth < 0 || r->silent_factor < 0 || r->default_interval_ms == 0) {
        append_err(err, errlen,
                   "leak_min_growth and silent_factor must be >= 0, "
                   "default_interval > 0");
        rc = EPW_E_CONFIG;
    }
    return rc;
}

const detect_rules_t *detect_rules_for_host(const detect_override_t *ov, size_t n, const char *host,
                                            const detect_rules_t *base)
{
    size_t i;

    for (i = 0; host && ov && i < n; i++) {
        if (ov[i].pattern && fnmatch(ov[i].pattern, host, FNM_CASEFOLD) == 0)
            return &ov[i].rules;
    }
    return base;
}

/* ---- small helpers ---- */

static char *dupstr(const char *s)
{
    size_t len = strlen(s ? s : "");
    char *d = malloc(len + 1);

    if (d)
        memcpy(d, s ? s : "", len + 1);
    return d;
}

EPW_PRINTF(1, 2)
static char *fmtstr(const char *fmt, ...)
{
    va_list ap;
    int len;
    char *s;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* JSON builders that remember an allocation failure instead of checking each call. */
static void jnum(cJSON *o, const char *k, double v, bool *bad)
{
    if (!o || !cJSON_AddNumberToObject(o, k, v))
        *bad = true;
}

static void jstr(cJSON *o, const char *k, const char *v, bool *bad)
{
    if (!o || !cJSON_AddStringToObject(o, k, v ? v : ""))
        *bad = true;
}

static void jbool(cJSON *o, const char *k, bool v, bool *bad)
{
    if (!o || !cJSON_AddBoolToObject(o, k, v))
        *bad = true;
}

static void jtime(cJSON *o, const char *k, int64_t ms, bool *bad)
{
    char buf[40];

    if (epw_format_rfc3339(ms, buf, sizeof buf) != 0)
        buf[0] = '\0';
    jstr(o, k, buf, bad);
}

static cJSON *jobj(cJSON *parent, const char *k, bool *bad)
{
    cJSON *o = parent ? cJSON_AddObjectToObject(parent, k) : NULL;

    if (!o)
        *bad = true;
    return o;
}

static int64_t round_ms(double ms)
{
    return (int64_t)llround(ms);
}

/* ---- series and least squares ---- */

static void series_clear(series_t *s)
{
    s->n = 0;
}

static void series_free(series_t *s)
{
    free(s->p);
    s->p = NULL;
    s->n = s->cap = 0;
}

static int series_add(series_t *s, int64_t t, double v, uint64_t window_ms)
{
    size_t drop = 0;
    int64_t spacing = (int64_t)(window_ms / SERIES_RESOLUTION);

    while (drop < s->n && s->p[drop].t < t - (int64_t)window_ms)
        drop++;
    if (drop) {
        memmove(s->p, s->p + drop, (s->n - drop) * sizeof(*s->p));
        s->n -= drop;
    }
    if (s->n >= 2 && t - s->p[s->n - 2].t < spacing) {
        s->p[s->n - 1].t = t;
        s->p[s->n - 1].v = v;
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        pt_t *p = realloc(s->p, cap * sizeof(*p));

        if (!p)
            return UV_ENOMEM;
        s->p = p;
        s->cap = cap;
    }
    s->p[s->n].t = t;
    s->p[s->n].v = v;
    s->n++;
    return 0;
}

typedef struct fit_s {
    double slope_per_min; /* units per minute */
    double at_last;       /* fitted value at the newest point */
    double r2;            /* 0 when either variance is 0 */
    int64_t span_ms;
} fit_t;

/* Least squares over p[0..n-1], n >= 1. */
static void fit_points(const pt_t *p, size_t n, fit_t *f)
{
    epw_linfit_t acc;
    epw_line_t line;
    size_t i;
    int64_t tl = p[n - 1].t;

    memset(f, 0, sizeof(*f));
    f->span_ms = tl - p[0].t;
    /* x in minutes relative to the newest point: small numbers, and at_last is the intercept. */
    epw_linfit_init(&acc);
    for (i = 0; i < n; i++)
        epw_linfit_add(&acc, (double)(p[i].t - tl) / 60000.0, p[i].v);
    epw_linfit_line(&acc, &line);
    f->slope_per_min = line.slope;
    f->at_last = line.intercept;
    f->r2 = line.r2;
}

static void fit_series(const series_t *s, fit_t *f)
{
    fit_points(s->p, s->n, f);
}

/* ---- transitions ---- */

static void ep_clear(ep_t *ep)
{
    free(ep->key);
    free(ep->summary);
    cJSON_Delete(ep->evidence);
    ep->key = NULL;
    ep->summary = NULL;
    ep->evidence = NULL;
    ep->sev = 0;
}

static void alert_free(detect_alert_t *a)
{
    free(a->host);
    free(a->subject);
    free(a->key);
    free(a->summary);
    cJSON_Delete(a->evidence);
}

void detect_alerts_free(detect_alerts_t *list)
{
    size_t i;

    if (!list)
        return;
    for (i = 0; i < list->count; i++)
        alert_free(&list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = list->cap = 0;
}

/* Replaces the episode's latest evidence and summary (both taken; NULL is an allocation failure
 * of the builder, reported as UV_ENOMEM with the old ones kept). */
static int ep_refresh(ep_t *ep, cJSON *ev, char *summary)
{
    if (!ev || !summary) {
        cJSON_Delete(ev);
        free(summary);
        return UV_ENOMEM;
    }
    cJSON_Delete(ep->evidence);
    free(ep->summary);
    ep->evidence = ev;
    ep->summary = summary;
    return 0;
}

/*
 * Records a transition of `ep` and applies it. `ev` and `summary` are taken (NULL counts as an
 * allocation failure). On failure the state is left as it was, so the next evaluation retries.
 */
static int emit(detect_state_t *st, detect_alerts_t *out, ep_t *ep, detect_transition_t tr,
                detect_severity_t sev, int64_t now, int64_t data_ms, cJSON *ev, char *summary)
{
    int rc = UV_ENOMEM;
    detect_alert_t a;
    cJSON *keep_ev = NULL;
    char *keep_sum = NULL, *key = NULL;
    int64_t started = ep->started_ms;

    memset(&a, 0, sizeof(a));
    if (!ev || !summary)
        goto out;
    if (tr == DETECT_RAISED) {
        started = data_ms > 0 ? data_ms : now;
        if (started <= ep->last_started_ms)
            started = ep->last_started_ms + 1;
        key = fmtstr("%s/%s%s%s@%" PRId64, st->host, detect_kind_name(ep->kind),
                     ep->subject[0] ? "/" : "", ep->subject, started);
        if (!key)
            goto out;
    }
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 8;
        detect_alert_t *items = realloc(out->items, cap * sizeof(*items));

        if (!items)
            goto out;
        out->items = items;
        out->cap = cap;
    }
    a.transition = tr;
    a.kind = ep->kind;
    a.severity = sev;
    a.prev_severity = tr == DETECT_RAISED ? sev : ep->sev;
    a.started_ms = started;
    a.at_ms = now;
    a.data_ms = data_ms;
    a.host = dupstr(st->host);
    a.subject = dupstr(ep->subject);
    a.key = dupstr(key ? key : ep->key);
    if (!a.host || !a.subject || !a.key)
        goto out;
    if (tr != DETECT_RESOLVED) {
        keep_ev = cJSON_Duplicate(ev, 1);
        keep_sum = dupstr(summary);
        if (!keep_ev || !keep_sum)
            goto out;
    }
    a.summary = summary;
    a.evidence = ev;
    summary = NULL;
    ev = NULL;
    out->items[out->count++] = a;
    memset(&a, 0, sizeof(a));

    /* Apply. */
    if (tr == DETECT_RESOLVED) {
        ep_clear(ep);
    } else {
        ep_refresh(ep, keep_ev, keep_sum);
        keep_ev = NULL;
        keep_sum = NULL;
        ep->sev = sev;
        if (tr == DETECT_RAISED) {
            free(ep->key);
            ep->key = key;
            key = NULL;
            ep->started_ms = started;
            ep->last_started_ms = started;
        }
        if (tr == DETECT_RAISED || tr == DETECT_RENOTIFY)
            ep->notified_ms = now;
    }
    rc = 0;
out:
    alert_free(&a);
    cJSON_Delete(ev);
    cJSON_Delete(keep_ev);
    free(summary);
    free(keep_sum);
    free(key);
    return rc;
}

/* ---- what a snapshot says ---- */

static const Epw__ProcessUsage *top_process(const Epw__Snapshot *snap)
{
    const Epw__ProcessUsage *best = NULL;
    size_t i;

    for (i = 0; i < snap->n_top_processes; i++) {
        const Epw__ProcessUsage *p = snap->top_processes[i];

        if (p && !p->other && (!best || p->ports > best->ports))
            best = p;
    }
    return best;
}

static const Epw__DestinationUsage *worst_destination(const Epw__Snapshot *snap)
{
    const Epw__DestinationUsage *best = NULL;
    size_t i;

    for (i = 0; i < snap->n_destinations; i++) {
        const Epw__DestinationUsage *d = snap->destinations[i];

        if (!d)
            continue;
        if (!best || d->usage_pct > best->usage_pct ||
            (d->usage_pct == best->usage_pct && d->connections > best->connections))
            best = d;
    }
    return best;
}

static void add_process(cJSON *o, const char *k, const Epw__ProcessUsage *p, bool *bad)
{
    cJSON *j;

    if (!p)
        return;
    j = jobj(o, k, bad);
    jnum(j, "pid", p->pid, bad);
    jstr(j, "name", p->name, bad);
    jnum(j, "ports", p->ports, bad);
}

static void add_destination(cJSON *o, const Epw__DestinationUsage *d, bool *bad)
{
    cJSON *j;

    if (!d)
        return;
    j = jobj(o, "destination", bad);
    jstr(j, "local_address", d->local_address, bad);
    jstr(j, "remote_address", d->remote_address, bad);
    jnum(j, "remote_port", d->remote_port, bad);
    jstr(j, "protocol", epw_snap_proto_name(d->protocol), bad);
    jnum(j, "connections", d->connections, bad);
    jnum(j, "free_ports", d->free_ports, bad);
    jnum(j, "usage_pct", d->usage_pct, bad);
}

static cJSON *finish(cJSON *o, bool bad)
{
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- rule 1: thresholds ---- */

static int thr_update(detect_state_t *st, thr_t *th, double v, const char *figure,
                      const Epw__Snapshot *snap, int64_t t, int64_t now, detect_alerts_t *out)
{
    const detect_rules_t *r = &st->rules;
    int w = r->warning_pct, c = r->critical_pct, h = r->hysteresis_pct;
    int hits = r->hits > 0 ? r->hits : 1;
    bool at_w = w > 0 && v >= w, at_c = c > 0 && v >= c;
    detect_severity_t cur = th->ep.sev, next = cur;
    detect_transition_t tr = 0;
    double lowest = (double)(w > 0 ? w : c) - h;
    int level, leave_below;
    bool bad = false;
    cJSON *ev;
    const Epw__ProcessUsage *tp = top_process(snap);
    const Epw__DestinationUsage *dest = worst_destination(snap);
    char *summary = NULL;
    int rc;

    th->warn_run = (at_w || at_c) ? th->warn_run + 1 : 0;
    th->crit_run = at_c ? th->crit_run + 1 : 0;
    if (!cur) {
        if (c > 0 && th->crit_run >= hits)
            next = DETECT_CRITICAL;
        else if (w > 0 && th->warn_run >= hits)
            next = DETECT_WARNING;
        if (next)
            tr = DETECT_RAISED;
    } else if ((w <= 0 && c <= 0) || v < lowest) {
        tr = DETECT_RESOLVED;
    } else if (cur == DETECT_WARNING && c > 0 && th->crit_run >= hits) {
        tr = DETECT_ESCALATED;
        next = DETECT_CRITICAL;
    } else if (cur == DETECT_CRITICAL && w > 0 && v < (double)(c - h)) {
        tr = DETECT_DEESCALATED;
        next = DETECT_WARNING;
    }
    if (!next)
        return 0;

    level = next == DETECT_CRITICAL ? c : w;
    leave_below = (tr == DETECT_RESOLVED || next == DETECT_WARNING || w <= 0) ? (int)lowest : c - h;
    ev = cJSON_CreateObject();
    jstr(ev, "figure", figure, &bad);
    jnum(ev, "value_pct", v, &bad);
    jnum(ev, "threshold_pct", level, &bad);
    jnum(ev, "warning_pct", w, &bad);
    jnum(ev, "critical_pct", c, &bad);
    jnum(ev, "hysteresis_pct", h, &bad);
    jnum(ev, "hits", hits, &bad);
    jnum(ev, "leave_below_pct", leave_below, &bad);
    jstr(ev, "pressure_source", snap->pressure_source, &bad);
    add_destination(ev, dest, &bad);
    add_process(ev, "top_process", tp, &bad);
    jnum(ev, "taken_at_ms", (double)t, &bad);
    if (tr == DETECT_RESOLVED)
        jstr(ev, "reason", (w <= 0 && c <= 0) ? "levels disabled" : "below level - hysteresis",
             &bad);
    ev = finish(ev, bad);

    switch (tr) {
    case DETECT_RAISED:
    case DETECT_ESCALATED:
        if (tp)
            summary = fmtstr("%s %.1f%% >= %s %d%% (%s); top process %" PRIu32 " (%s) with %" PRIu32
                             " ports",
                             figure, v, detect_severity_name(next), level,
                             snap->pressure_source ? snap->pressure_source : "", tp->pid,
                             tp->name ? tp->name : "", tp->ports);
        else
            summary = fmtstr("%s %.1f%% >= %s %d%% (%s)", figure, v, detect_severity_name(next),
                             level, snap->pressure_source ? snap->pressure_source : "");
        break;
    case DETECT_DEESCALATED:
        summary = fmtstr("%s %.1f%% below %d%%: down to warning", figure, v, c - h);
        break;
    case DETECT_RESOLVED:
        summary = fmtstr("%s %.1f%% back below %d%%", figure, v, (int)lowest);
        break;
    default:
        summary = fmtstr("%s %.1f%% (%s)", figure, v, detect_severity_name(cur));
        break;
    }
    if (!tr)
        return ep_refresh(&th->ep, ev, summary);
    rc = emit(st, out, &th->ep, tr, tr == DETECT_RESOLVED ? cur : next, now, t, ev, summary);
    if (rc && tr != DETECT_RESOLVED) {
        /* Not recorded: forget the runs' last step so the next sample can retry. */
        th->crit_run = th->crit_run > 0 ? th->crit_run - 1 : 0;
        th->warn_run = th->warn_run > 0 ? th->warn_run - 1 : 0;
    }
    return rc;
}

/* ---- rule 2: trend ---- */

static int trend_update(detect_state_t *st, const Epw__Snapshot *snap, int64_t t, int64_t now,
                        detect_alerts_t *out)
{
    const detect_rules_t *r = &st->rules;
    ep_t *ep = &st->trend;
    fit_t f;
    int64_t proj_ms = -1;
    detect_transition_t tr = 0;
    bool bad = false;
    cJSON *ev;
    char *summary;
    char dur[32], when[40];
    int rc;

    if (r->trend_horizon_ms == 0) {
        series_clear(&st->trend_s);
        if (!ep->sev)
            return 0;
        ev = cJSON_CreateObject();
        jstr(ev, "reason", "rule disabled", &bad);
        return emit(st, out, ep, DETECT_RESOLVED, ep->sev, now, t, finish(ev, bad),
                    fmtstr("pressure trend: rule disabled"));
    }
    rc = series_add(&st->trend_s, t, snap->pressure_pct, r->trend_window_ms);
    if (rc)
        return rc;
    if (st->trend_s.n < (size_t)r->trend_min_points || st->trend_s.n < 2)
        return 0;
    fit_series(&st->trend_s, &f);
    if (f.span_ms < (int64_t)r->trend_min_span_ms)
        return 0;
    if (f.slope_per_min > 0) {
        double left = 100.0 - f.at_last;

        proj_ms = left <= 0 ? 0 : round_ms(left / f.slope_per_min * 60000.0);
    }
    if (!ep->sev) {
        if (proj_ms >= 0 && f.r2 * 100.0 >= r->trend_min_fit_pct &&
            proj_ms <= (int64_t)r->trend_horizon_ms)
            tr = DETECT_RAISED;
        else
            return 0;
    } else if (proj_ms < 0 || (double)proj_ms > 1.5 * (double)r->trend_horizon_ms) {
        tr = DETECT_RESOLVED;
    }

    ev = cJSON_CreateObject();
    jnum(ev, "pressure_pct", snap->pressure_pct, &bad);
    jnum(ev, "fitted_pct", f.at_last, &bad);
    jnum(ev, "slope_pct_per_min", f.slope_per_min, &bad);
    jnum(ev, "r2", f.r2, &bad);
    jnum(ev, "points", (double)st->trend_s.n, &bad);
    jnum(ev, "span_ms", (double)f.span_ms, &bad);
    jnum(ev, "window_ms", (double)r->trend_window_ms, &bad);
    jnum(ev, "horizon_ms", (double)r->trend_horizon_ms, &bad);
    if (proj_ms >= 0) {
        jnum(ev, "projected_ms", (double)proj_ms, &bad);
        jnum(ev, "projected_at_ms", (double)(t + proj_ms), &bad);
        jtime(ev, "projected_at", t + proj_ms, &bad);
    }
    jstr(ev, "pressure_source", snap->pressure_source, &bad);
    jnum(ev, "taken_at_ms", (double)t, &bad);
    if (tr == DETECT_RESOLVED)
        jstr(ev, "reason", proj_ms < 0 ? "pressure no longer rising" : "projection beyond horizon",
             &bad);
    ev = finish(ev, bad);

    if (proj_ms >= 0) {
        epw_format_duration((uint64_t)((proj_ms + 500) / 1000 * 1000), dur, sizeof dur);
        if (epw_format_rfc3339(t + proj_ms, when, sizeof when) != 0)
            when[0] = '\0';
        summary = fmtstr("pressure %.1f%% rising %.2f points/min: 100%% in about %s (%s)",
                         snap->pressure_pct, f.slope_per_min, dur, when);
    } else {
        summary = fmtstr("pressure %.1f%% no longer rising (%.2f points/min)", snap->pressure_pct,
                         f.slope_per_min);
    }
    if (!tr)
        return ep_refresh(ep, ev, summary);
    return emit(st, out, ep, tr, DETECT_WARNING, now, t, ev, summary);
}

/* ---- rule 3: leaks ---- */

typedef struct leak_eval_s {
    bool ready, leak, stop;
    fit_t f;
    double growth, rising_pct, half1, half2;
} leak_eval_t;

/* Monotonic at the scale that matters: the span is cut into this many equal segments and their
 * means compared, so sample-to-sample jitter of a real leak does not count against it. */
#define LEAK_SEGMENTS 6

static void leak_eval(const detect_rules_t *r, const series_t *s, leak_eval_t *e)
{
    size_t i, mid = 0;
    int64_t tmid;
    double g = r->leak_min_growth;
    double sum[LEAK_SEGMENTS] = {0}, prev = 0;
    size_t cnt[LEAK_SEGMENTS] = {0};
    int k, deltas = 0, rising = 0;
    fit_t h;
    bool have_prev = false;

    memset(e, 0, sizeof(*e));
    if (s->n < 2 || s->n < (size_t)r->leak_min_points)
        return;
    fit_series(s, &e->f);
    if (e->f.span_ms < (int64_t)r->leak_min_span_ms || e->f.span_ms <= 0)
        return;
    e->ready = true;
    e->growth = e->f.slope_per_min * (double)e->f.span_ms / 60000.0;
    tmid = s->p[0].t + e->f.span_ms / 2;
    for (i = 0; i < s->n; i++) {
        int64_t off = s->p[i].t - s->p[0].t;

        k = (int)(off * LEAK_SEGMENTS / (e->f.span_ms + 1));
        sum[k] += s->p[i].v;
        cnt[k]++;
        if (s->p[i].t <= tmid)
            mid = i;
    }
    for (k = 0; k < LEAK_SEGMENTS; k++) {
        double mean;

        if (!cnt[k])
            continue; /* a gap in the data */
        mean = sum[k] / (double)cnt[k];
        if (have_prev) {
            deltas++;
            rising += mean >= prev;
        }
        prev = mean;
        have_prev = true;
    }
    e->rising_pct = deltas ? 100.0 * rising / deltas : 0;
    /* Fitted growth of each half (the middle point in both): a step shows as one flat half. */
    fit_points(s->p, mid + 1, &h);
    e->half1 = h.slope_per_min * (double)h.span_ms / 60000.0;
    fit_points(s->p + mid, s->n - mid, &h);
    e->half2 = h.slope_per_min * (double)h.span_ms / 60000.0;
    e->leak = e->f.slope_per_min > 0 && e->growth >= g && e->f.r2 * 100.0 >= r->leak_min_fit_pct &&
              e->rising_pct >= r->leak_min_rising_pct && e->half1 >= g / 4 && e->half2 >= g / 4;
    e->stop = e->f.slope_per_min <= 0 || e->growth < g / 2;
}

static void add_leak_figures(cJSON *ev, const detect_rules_t *r, const series_t *s,
                             const leak_eval_t *e, bool *bad)
{
    jnum(ev, "ports", s->p[s->n - 1].v, bad);
    jnum(ev, "first_ports", s->p[0].v, bad);
    jnum(ev, "growth_ports", e->growth, bad);
    jnum(ev, "slope_ports_per_min", e->f.slope_per_min, bad);
    jnum(ev, "r2", e->f.r2, bad);
    jnum(ev, "rising_pct", e->rising_pct, bad);
    jnum(ev, "points", (double)s->n, bad);
    jnum(ev, "span_ms", (double)e->f.span_ms, bad);
    jnum(ev, "window_ms", (double)r->leak_window_ms, bad);
    jnum(ev, "min_growth", r->leak_min_growth, bad);
}

/* Judges one series; `who` names it in summaries ("process 1234 (x.exe)", "kernel"). */
static int leak_judge(detect_state_t *st, ep_t *ep, const series_t *s, const char *who,
                      const Epw__ProcessUsage *p, int64_t t, int64_t now, detect_alerts_t *out)
{
    leak_eval_t e;
    detect_transition_t tr = 0;
    bool bad = false;
    cJSON *ev;
    char *summary;
    char dur[32];

    leak_eval(&st->rules, s, &e);
    if (!e.ready)
        return 0;
    if (!ep->sev && e.leak)
        tr = DETECT_RAISED;
    else if (ep->sev && e.stop)
        tr = DETECT_RESOLVED;
    else if (!ep->sev)
        return 0;

    ev = cJSON_CreateObject();
    if (p) {
        jnum(ev, "pid", p->pid, &bad);
        jstr(ev, "name", p->name, &bad);
    } else {
        jbool(ev, "kernel", true, &bad);
    }
    add_leak_figures(ev, &st->rules, s, &e, &bad);
    jnum(ev, "taken_at_ms", (double)t, &bad);
    if (tr == DETECT_RESOLVED)
        jstr(ev, "reason", "growth stopped", &bad);
    ev = finish(ev, bad);
    epw_format_duration((uint64_t)e.f.span_ms, dur, sizeof dur);
    if (tr == DETECT_RESOLVED)
        summary = fmtstr("%s stopped leaking: %+.0f ports in %s, now %.0f", who, e.growth, dur,
                         s->p[s->n - 1].v);
    else
        summary = fmtstr("%s is leaking ports: %+.0f in %s (%.1f/min), now %.0f", who, e.growth,
                         dur, e.f.slope_per_min, s->p[s->n - 1].v);
    if (!tr)
        return ep_refresh(ep, ev, summary);
    return emit(st, out, ep, tr, DETECT_WARNING, now, t, ev, summary);
}

static void track_free(track_t *tr)
{
    series_free(&tr->s);
    ep_clear(&tr->ep);
    free(tr->name);
    free(tr->subject);
}

static track_t *track_find(detect_state_t *st, uint32_t pid, const char *name)
{
    size_t i;

    for (i = 0; i < st->n_tracks; i++) {
        if (st->tracks[i].pid == pid && strcmp(st->tracks[i].name, name) == 0)
            return &st->tracks[i];
    }
    return NULL;
}

static track_t *track_add(detect_state_t *st, uint32_t pid, const char *name)
{
    track_t *tr;

    if (st->n_tracks == st->cap_tracks) {
        size_t cap = st->cap_tracks ? st->cap_tracks * 2 : 8;
        track_t *v = realloc(st->tracks, cap * sizeof(*v));

        if (!v)
            return NULL;
        st->tracks = v;
        st->cap_tracks = cap;
    }
    tr = &st->tracks[st->n_tracks];
    memset(tr, 0, sizeof(*tr));
    tr->pid = pid;
    tr->name = dupstr(name);
    tr->subject = fmtstr("%" PRIu32 ":%s", pid, name);
    if (!tr->name || !tr->subject) {
        free(tr->name);
        free(tr->subject);
        return NULL;
    }
    tr->ep.kind = DETECT_LEAK;
    tr->ep.subject = tr->subject;
    st->n_tracks++;
    return tr;
}

static int resolve_vanished(detect_state_t *st, track_t *tr, int64_t t, int64_t now,
                            const char *reason, detect_alerts_t *out)
{
    bool bad = false;
    cJSON *ev = cJSON_CreateObject();

    jnum(ev, "pid", tr->pid, &bad);
    jstr(ev, "name", tr->name, &bad);
    if (tr->s.n)
        jnum(ev, "last_ports", tr->s.p[tr->s.n - 1].v, &bad);
    jnum(ev, "taken_at_ms", (double)t, &bad);
    jstr(ev, "reason", reason, &bad);
    return emit(st, out, &tr->ep, DETECT_RESOLVED, tr->ep.sev, now, t, finish(ev, bad),
                fmtstr("process %" PRIu32 " (%s) %s", tr->pid, tr->name, reason));
}

static int leaks_update(detect_state_t *st, const Epw__Snapshot *snap, int64_t t, int64_t now,
                        detect_alerts_t *out)
{
    const detect_rules_t *r = &st->rules;
    bool off = r->leak_min_growth <= 0;
    size_t i, j;
    int rc = 0, rc2;

    for (i = 0; i < st->n_tracks; i++)
        st->tracks[i].seen = false;
    for (i = 0; !off && i < snap->n_top_processes; i++) {
        const Epw__ProcessUsage *p = snap->top_processes[i];
        const char *name;
        track_t *tr;
        char *who;

        if (!p || p->other)
            continue;
        name = p->name ? p->name : "";
        tr = track_find(st, p->pid, name);
        if (tr && tr->seen)
            continue; /* the same process listed twice: the first entry counts */
        if (!tr)
            tr = track_add(st, p->pid, name);
        if (!tr) {
            rc = UV_ENOMEM;
            continue;
        }
        tr->seen = true;
        rc2 = series_add(&tr->s, t, p->ports, r->leak_window_ms);
        if (rc2) {
            rc = rc2;
            continue;
        }
        who = fmtstr("process %" PRIu32 " (%s)", p->pid, name);
        if (!who) {
            rc = UV_ENOMEM;
            continue;
        }
        rc2 = leak_judge(st, &tr->ep, &tr->s, who, p, t, now, out);
        free(who);
        if (rc2)
            rc = rc2;
    }
    /* Absent processes: their series end here. */
    for (i = j = 0; i < st->n_tracks; i++) {
        track_t *tr = &st->tracks[i];

        if (!tr->seen && tr->ep.sev) {
            rc2 = resolve_vanished(st, tr, t, now,
                                   off ? "rule disabled" : "absent from the top processes", out);
            if (rc2)
                rc = rc2;
        }
        if (!tr->seen && !tr->ep.sev) {
            track_free(tr);
            continue;
        }
        if (i != j)
            st->tracks[j] = *tr;
        j++;
    }
    st->n_tracks = j;
    /* Moving tracks invalidated nothing but ep.subject, which points at the track's own string. */

    if (off) {
        series_clear(&st->kernel_s);
        if (st->kernel.sev) {
            bool bad = false;
            cJSON *ev = cJSON_CreateObject();

            jstr(ev, "reason", "rule disabled", &bad);
            rc2 = emit(st, out, &st->kernel, DETECT_RESOLVED, st->kernel.sev, now, t,
                       finish(ev, bad), fmtstr("kernel leak: rule disabled"));
            if (rc2)
                rc = rc2;
        }
        return rc;
    }
    rc2 = series_add(&st->kernel_s, t, snap->kernel_ports, r->leak_window_ms);
    if (!rc2)
        rc2 =
            leak_judge(st, &st->kernel, &st->kernel_s, "the kernel (a driver)", NULL, t, now, out);
    return rc2 ? rc2 : rc;
}

/* ---- rule 4: OS events and port starvation ---- */

static void add_counts(cJSON *ev, const char *k, const uint64_t *c, bool *bad)
{
    cJSON *o = jobj(ev, k, bad);
    int i;
    char id[16];

    for (i = 0; i < EV_N; i++) {
        snprintf(id, sizeof id, "%" PRIu32, ev_ids[i]);
        jnum(o, id, (double)c[i], bad);
    }
}

static int events_update(detect_state_t *st, const Epw__Snapshot *snap, int64_t t, int64_t now,
                         detect_alerts_t *out)
{
    uint64_t c[EV_N] = {0};
    int64_t first = 0, last = 0;
    size_t i;
    int k;
    bool exhausted, bad = false;
    detect_transition_t tr = 0;
    cJSON *ev, *ids;
    char *summary;

    for (i = 0; i < snap->n_events; i++) {
        const Epw__ExhaustionEvent *e = snap->events[i];

        if (!e)
            continue;
        for (k = 0; k < EV_N; k++) {
            if (e->event_id != ev_ids[k])
                continue;
            c[k] += e->count ? e->count : 1;
            if (k != EV_4227) {
                if (e->first_ms && (!first || e->first_ms < first))
                    first = e->first_ms;
                if (e->last_ms > last)
                    last = e->last_ms;
            }
        }
    }
    exhausted = c[EV_4231] + c[EV_4266] > 0;
    if (st->event.sev && st->last_event_ms < 0)
        st->last_event_ms = t; /* adopted: the quiet period starts now */
    if (!exhausted && !st->event.sev)
        return 0;
    if (exhausted && !st->event.sev) {
        tr = DETECT_RAISED;
        memset(st->ev_total, 0, sizeof(st->ev_total));
    }
    for (k = 0; k < EV_N; k++)
        st->ev_total[k] += c[k];
    if (exhausted) {
        st->last_event_ms = t;
    } else if (t - st->last_event_ms >= (int64_t)st->rules.event_quiet_ms) {
        tr = DETECT_RESOLVED;
    } else {
        return 0;
    }

    ev = cJSON_CreateObject();
    ids = cJSON_AddArrayToObject(ev, "event_ids");
    if (!ids)
        bad = true;
    for (k = EV_4231; ids && k < EV_N; k++) {
        cJSON *n = c[k] ? cJSON_CreateNumber(ev_ids[k]) : NULL;

        if (c[k] && (!n || !cJSON_AddItemToArray(ids, n)))
            bad = true;
    }
    add_counts(ev, "counts", c, &bad);
    add_counts(ev, "episode_counts", st->ev_total, &bad);
    if (first)
        jnum(ev, "first_ms", (double)first, &bad);
    if (last)
        jnum(ev, "last_ms", (double)last, &bad);
    jnum(ev, "quiet_ms", (double)st->rules.event_quiet_ms, &bad);
    jnum(ev, "last_event_taken_at_ms", (double)st->last_event_ms, &bad);
    jnum(ev, "taken_at_ms", (double)t, &bad);
    if (tr == DETECT_RESOLVED)
        jstr(ev, "reason", "quiet period passed", &bad);
    ev = finish(ev, bad);
    if (tr == DETECT_RESOLVED)
        summary =
            fmtstr("no port-exhaustion event for %" PRId64 "s", (t - st->last_event_ms) / 1000);
    else
        summary = fmtstr("Windows reports the port space exhausted: 4231 x%" PRIu64
                         ", 4266 x%" PRIu64 " (4227 x%" PRIu64 ")",
                         c[EV_4231], c[EV_4266], c[EV_4227]);
    if (!tr)
        return ep_refresh(&st->event, ev, summary);
    return emit(st, out, &st->event, tr, DETECT_CRITICAL, now, t, ev, summary);
}

static int starved_update(detect_state_t *st, const Epw__Snapshot *snap, int64_t t, int64_t now,
                          detect_alerts_t *out)
{
    detect_transition_t tr = 0;
    bool bad = false;
    cJSON *ev;
    char *summary;
    int rc = 0;

    if (st->starved.sev && st->last_starved_ms < 0)
        st->last_starved_ms = t;
    if (snap->port_starved) {
        if (!st->starved.sev) {
            tr = DETECT_RAISED;
            st->starved_total = 0;
        }
    } else if (!st->starved.sev) {
        return 0;
    } else if (t - st->last_starved_ms >= (int64_t)st->rules.event_quiet_ms) {
        tr = DETECT_RESOLVED;
    } else {
        return 0;
    }
    ev = cJSON_CreateObject();
    jbool(ev, "port_starved", snap->port_starved, &bad);
    jnum(ev, "starved_snapshots", (double)(st->starved_total + (snap->port_starved ? 1 : 0)), &bad);
    jnum(ev, "pressure_pct", snap->pressure_pct, &bad);
    jstr(ev, "pressure_source", snap->pressure_source, &bad);
    add_process(ev, "top_process", top_process(snap), &bad);
    jnum(ev, "spooled", snap->spooled, &bad);
    jnum(ev, "dropped_before", (double)snap->dropped_before, &bad);
    jnum(ev, "quiet_ms", (double)st->rules.event_quiet_ms, &bad);
    jnum(ev, "last_starved_taken_at_ms", (double)(snap->port_starved ? t : st->last_starved_ms),
         &bad);
    jnum(ev, "taken_at_ms", (double)t, &bad);
    if (tr == DETECT_RESOLVED)
        jstr(ev, "reason", "quiet period passed", &bad);
    ev = finish(ev, bad);
    if (tr == DETECT_RESOLVED)
        summary =
            fmtstr("agent connected normally for %" PRId64 "s", (t - st->last_starved_ms) / 1000);
    else
        summary = fmtstr("agent could not connect for lack of ports (pressure %.1f%%, %s)",
                         snap->pressure_pct, snap->pressure_source ? snap->pressure_source : "");
    if (tr)
        rc = emit(st, out, &st->starved, tr, DETECT_CRITICAL, now, t, ev, summary);
    else
        rc = ep_refresh(&st->starved, ev, summary);
    if (!rc && snap->port_starved) {
        st->starved_total++;
        st->last_starved_ms = t;
    }
    return rc;
}

/* ---- rule 5: silence ---- */

static uint64_t silent_limit(const detect_state_t *st)
{
    uint64_t iv = st->interval_ms ? st->interval_ms : st->rules.default_interval_ms;

    return (uint64_t)st->rules.silent_factor * iv;
}

static cJSON *silent_evidence(const detect_state_t *st, int64_t now)
{
    bool bad = false;
    cJSON *ev = cJSON_CreateObject();

    jnum(ev, "last_seen_ms", (double)st->last_seen_ms, &bad);
    jtime(ev, "last_seen", st->last_seen_ms, &bad);
    jbool(ev, "ever_seen", st->seen_any, &bad);
    jnum(ev, "silent_for_ms", (double)(now - st->last_seen_ms), &bad);
    jnum(ev, "interval_ms",
         (double)(st->interval_ms ? st->interval_ms : st->rules.default_interval_ms), &bad);
    jnum(ev, "silent_factor", st->rules.silent_factor, &bad);
    jnum(ev, "limit_ms", (double)silent_limit(st), &bad);
    if (st->last_data_ms)
        jnum(ev, "last_taken_at_ms", (double)st->last_data_ms, &bad);
    return finish(ev, bad);
}

/* ---- state ---- */

static void ep_init(ep_t *ep, detect_kind_t kind, const char *subject)
{
    memset(ep, 0, sizeof(*ep));
    ep->kind = kind;
    ep->subject = subject;
}

int detect_state_create(const char *host, const detect_rules_t *rules, int64_t now_ms,
                        detect_state_t **out)
{
    detect_state_t *st;

    if (!out)
        return UV_EINVAL;
    *out = NULL;
    if (!host || !rules)
        return UV_EINVAL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return UV_ENOMEM;
    st->host = dupstr(host);
    if (!st->host) {
        free(st);
        return UV_ENOMEM;
    }
    st->rules = *rules;
    st->last_seen_ms = now_ms;
    ep_init(&st->pressure.ep, DETECT_PRESSURE, "");
    ep_init(&st->proto[0].ep, DETECT_PROTOCOL, "tcp");
    ep_init(&st->proto[1].ep, DETECT_PROTOCOL, "udp");
    ep_init(&st->trend, DETECT_TREND, "");
    ep_init(&st->kernel, DETECT_KERNEL_LEAK, "");
    ep_init(&st->event, DETECT_OS_EVENT, "");
    ep_init(&st->starved, DETECT_PORT_STARVED, "");
    ep_init(&st->silent, DETECT_SILENT, "");
    *out = st;
    return 0;
}

void detect_state_destroy(detect_state_t *st)
{
    size_t i;

    if (!st)
        return;
    ep_clear(&st->pressure.ep);
    ep_clear(&st->proto[0].ep);
    ep_clear(&st->proto[1].ep);
    ep_clear(&st->trend);
    ep_clear(&st->kernel);
    ep_clear(&st->event);
    ep_clear(&st->starved);
    ep_clear(&st->silent);
    series_free(&st->trend_s);
    series_free(&st->kernel_s);
    for (i = 0; i < st->n_tracks; i++)
        track_free(&st->tracks[i]);
    free(st->tracks);
    free(st->host);
    free(st);
}

void detect_state_set_rules(detect_state_t *st, const detect_rules_t *rules)
{
    if (st && rules)
        st->rules = *rules;
}

void detect_state_set_interval(detect_state_t *st, uint64_t interval_ms)
{
    if (st)
        st->interval_ms = interval_ms;
}

/* Every episode of the state, in the order transitions are reported. Returns the count. */
static size_t all_eps(detect_state_t *st, ep_t **v, size_t max)
{
    size_t n = 0, i;
    ep_t *fixed[] = {&st->silent, &st->pressure.ep, &st->proto[0].ep, &st->proto[1].ep,
                     &st->trend,  &st->kernel,      &st->event,       &st->starved};

    for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]) && n < max; i++)
        v[n++] = fixed[i];
    for (i = 0; i < st->n_tracks && n < max; i++)
        v[n++] = &st->tracks[i].ep;
    return n;
}

size_t detect_active_count(const detect_state_t *st)
{
    ep_t *v[8];
    size_t n, i, count = 0;
    detect_state_t *s = (detect_state_t *)st; /* all_eps only reads */

    if (!st)
        return 0;
    n = all_eps(s, v, 8);
    for (i = 0; i < n; i++)
        count += v[i]->sev != 0;
    for (i = 0; i < st->n_tracks; i++)
        count += st->tracks[i].ep.sev != 0;
    return count;
}

int detect_ingest(detect_state_t *st, const Epw__Snapshot *snap, int64_t now_ms,
                  detect_alerts_t *out)
{
    int64_t t;
    int rc = 0, rc2;
    size_t i;

    if (!st || !snap || !out)
        return UV_EINVAL;
    t = snap->taken_at_ms > 0 ? snap->taken_at_ms : now_ms;
    if (st->last_data_ms && t < st->last_data_ms) {
        /* The agent's clock stepped back: the series' time axis is broken. */
        series_clear(&st->trend_s);
        series_clear(&st->kernel_s);
        for (i = 0; i < st->n_tracks; i++)
            series_clear(&st->tracks[i].s);
        if (st->last_event_ms > t)
            st->last_event_ms = t;
        if (st->last_starved_ms > t)
            st->last_starved_ms = t;
    }

    if (st->silent.sev) {
        rc2 = emit(
            st, out, &st->silent, DETECT_RESOLVED, st->silent.sev, now_ms, t,
            silent_evidence(st, now_ms),
            fmtstr("agent reporting again after %" PRId64 "s", (now_ms - st->last_seen_ms) / 1000));
        if (rc2)
            rc = rc2;
    }
    st->last_seen_ms = now_ms;
    st->last_data_ms = t;
    st->seen_any = true;

    rc2 = thr_update(st, &st->pressure, snap->pressure_pct, "pressure", snap, t, now_ms, out);
    if (rc2)
        rc = rc2;
    for (i = 0; i < 2; i++) {
        Epw__Protocol want = i == 0 ? EPW__PROTOCOL__TCP : EPW__PROTOCOL__UDP;
        size_t k;
        thr_t *th = &st->proto[i];

        if (!st->rules.protocol_alerts) {
            if (th->ep.sev) {
                bool bad = false;
                cJSON *ev = cJSON_CreateObject();

                jstr(ev, "reason", "rule disabled", &bad);
                rc2 = emit(st, out, &th->ep, DETECT_RESOLVED, th->ep.sev, now_ms, t,
                           finish(ev, bad), fmtstr("%s usage: rule disabled", th->ep.subject));
                if (rc2)
                    rc = rc2;
            }
            th->warn_run = th->crit_run = 0;
            continue;
        }
        for (k = 0; k < snap->n_host; k++) {
            if (snap->host[k] && snap->host[k]->protocol == want)
                break;
        }
        if (k == snap->n_host)
            continue; /* not measured: no sample */
        rc2 = thr_update(st, th, snap->host[k]->usage_pct, th->ep.subject, snap, t, now_ms, out);
        if (rc2)
            rc = rc2;
    }
    rc2 = trend_update(st, snap, t, now_ms, out);
    if (rc2)
        rc = rc2;
    rc2 = leaks_update(st, snap, t, now_ms, out);
    if (rc2)
        rc = rc2;
    rc2 = events_update(st, snap, t, now_ms, out);
    if (rc2)
        rc = rc2;
    rc2 = starved_update(st, snap, t, now_ms, out);
    if (rc2)
        rc = rc2;
    return rc;
}

int detect_tick(detect_state_t *st, int64_t now_ms, detect_alerts_t *out)
{
    int rc = 0, rc2;
    size_t i;

    if (!st || !out)
        return UV_EINVAL;
    if (!st->silent.sev && st->rules.silent_factor > 0 &&
        now_ms - st->last_seen_ms > (int64_t)silent_limit(st)) {
        char dur[32];

        epw_format_duration((uint64_t)(now_ms - st->last_seen_ms), dur, sizeof dur);
        rc2 = emit(st, out, &st->silent, DETECT_RAISED, DETECT_WARNING, now_ms, 0,
                   silent_evidence(st, now_ms),
                   fmtstr("no snapshot for %s (%d x %" PRIu64 "ms interval)", dur,
                          st->rules.silent_factor,
                          st->interval_ms ? st->interval_ms : st->rules.default_interval_ms));
        if (rc2)
            rc = rc2;
    }
    if (st->rules.renotify_ms == 0)
        return rc;
    for (i = 0;; i++) {
        ep_t *v[8];
        ep_t *ep;
        size_t n = all_eps(st, v, 8);
        cJSON *ev;
        bool bad = false;

        if (i < n)
            ep = v[i];
        else if (i - n < st->n_tracks)
            ep = &st->tracks[i - n].ep;
        else
            break;
        if (!ep->sev || now_ms - ep->notified_ms < (int64_t)st->rules.renotify_ms)
            continue;
        ev = ep->evidence ? cJSON_Duplicate(ep->evidence, 1) : cJSON_CreateObject();
        jnum(ev, "active_for_ms", (double)(now_ms - ep->started_ms), &bad);
        rc2 = emit(st, out, ep, DETECT_RENOTIFY, ep->sev, now_ms, 0, finish(ev, bad),
                   dupstr(ep->summary ? ep->summary : detect_kind_name(ep->kind)));
        if (rc2)
            rc = rc2;
    }
    return rc;
}

int detect_adopt(detect_state_t *st, const detect_alert_t *a)
{
    ep_t *ep = NULL;
    track_t *tr = NULL;
    bool bad = false;
    const char *subject;

    if (!st || !a || !a->key || (a->severity != DETECT_WARNING && a->severity != DETECT_CRITICAL))
        return UV_EINVAL;
    subject = a->subject ? a->subject : "";
    switch (a->kind) {
    case DETECT_PRESSURE:
        ep = &st->pressure.ep;
        break;
    case DETECT_PROTOCOL:
        ep = strcmp(subject, "tcp") == 0   ? &st->proto[0].ep
             : strcmp(subject, "udp") == 0 ? &st->proto[1].ep
                                           : NULL;
        break;
    case DETECT_TREND:
        ep = &st->trend;
        break;
    case DETECT_KERNEL_LEAK:
        ep = &st->kernel;
        break;
    case DETECT_OS_EVENT:
        ep = &st->event;
        st->last_event_ms = -1;
        break;
    case DETECT_PORT_STARVED:
        ep = &st->starved;
        st->last_starved_ms = -1;
        break;
    case DETECT_SILENT:
        ep = &st->silent;
        break;
    case DETECT_LEAK: {
        char *end = NULL;
        unsigned long pid = strtoul(subject, &end, 10);

        if (end == subject || *end != ':' || pid > UINT32_MAX)
            return UV_EINVAL;
        tr = track_find(st, (uint32_t)pid, end + 1);
        if (!tr)
            tr = track_add(st, (uint32_t)pid, end + 1);
        if (!tr)
            return UV_ENOMEM;
        /* Unseen: absent from the next snapshot means gone, as for any track. */
        ep = &tr->ep;
        break;
    }
    }
    if (!ep || ep->sev)
        return UV_EINVAL;
    ep->key = dupstr(a->key);
    ep->summary = dupstr(a->summary ? a->summary : "");
    ep->evidence = cJSON_CreateObject();
    jbool(ep->evidence, "adopted", true, &bad);
    if (!ep->key || !ep->summary || bad) {
        ep_clear(ep);
        return UV_ENOMEM;
    }
    ep->sev = a->severity;
    ep->started_ms = a->started_ms;
    if (a->started_ms > ep->last_started_ms)
        ep->last_started_ms = a->started_ms;
    ep->notified_ms = a->at_ms;
    return 0;
}
