/* api: the collector's operator API server (HTTPS on its own listener: API.md and /metrics). */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epw_conn.h"
#include "epw_err.h"
#include "epw_json.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_stats.h"
#include "epw_util.h"
#include "http_resp.h"
#include "http_router.h"
#include "prom.h"

#define SUB                 "api"
#define DEFAULT_MAX_CONNS   64
#define DEFAULT_MAX_READERS 4
#define DEFAULT_IDLE_MS     60000
#define TREND_WINDOW_MS     (15 * 60 * 1000)
#define HISTORY_DEFAULT_MS  (6 * 3600 * 1000)
#define ALERTS_SINCE_MS     (24 * 3600 * 1000)
#define ALERTS_LIMIT        500
#define ALERTS_LIMIT_MAX    10000
#define MAX_READERS_CAP     64

typedef struct api_conn_s api_conn_t;

struct api_s {
    uv_loop_t *loop;
    epw_tls_config_t *tls;
    epw_listener_t *listener;
    http_router_t *router;
    store_t *store;
    api_provider_t prov;
    char **tokens;
    size_t n_tokens;
    size_t max_conns;
    size_t max_readers;
    http_req_limits_t limits;
    uint16_t port;
    api_conn_t *conns;
    api_stats_t st;
    size_t inflight; /* work items and provider calls not yet completed */
    int closing;
    int listener_closed;
    void (*close_cb)(void *ud);
    void *close_ud;
    /* The reader pool (shared with the work threads). */
    uv_mutex_t rd_mu;
    store_reader_t *idle[MAX_READERS_CAP];
    size_t n_idle;
};

struct api_conn_s {
    api_t *api;
    epw_conn_t *conn;
    http_req_parser_t *parser;
    http_ctx_t *ctx; /* the request being answered, or NULL */
    int pstate;      /* the parser's last result: HTTP_REQ_MORE, HTTP_REQ_READY or an error */
    int pumping;     /* pump() is on the stack */
    int closing;
    int is_operator;
    api_conn_t *prev, *next;
};

static void api_maybe_finish(api_t *a);

/* ---- names ----------------------------------------------------------------------------------- */

const char *api_status_name(api_status_t s)
{
    switch (s) {
    case API_STATUS_OK:
        return "ok";
    case API_STATUS_WARNING:
        return "warning";
    case API_STATUS_CRITICAL:
        return "critical";
    case API_STATUS_SILENT:
        return "silent";
    }
    return "ok";
}

const char *api_alert_kind_name(detect_kind_t kind)
{
    /* The API says "threshold" for both level rules; every other kind keeps the rules' name. */
    if (kind == DETECT_PRESSURE || kind == DETECT_PROTOCOL)
        return "threshold";
    return detect_kind_name(kind);
}

/* ---- reader pool (any thread) ------------------------------------------------------------------
 */

static int reader_get(api_t *a, store_reader_t **out)
{
    *out = NULL;
    uv_mutex_lock(&a->rd_mu);
    if (a->n_idle > 0)
        *out = a->idle[--a->n_idle];
    uv_mutex_unlock(&a->rd_mu);
    if (*out != NULL)
        return 0;
    return store_reader_open_for(a->store, out);
}

/* Returns a reader to the pool; `failed` readers are closed (their connection may be broken). */
static void reader_put(api_t *a, store_reader_t *rd, int failed)
{
    if (rd == NULL)
        return;
    if (!failed) {
        uv_mutex_lock(&a->rd_mu);
        if (a->n_idle < a->max_readers) {
            a->idle[a->n_idle++] = rd;
            rd = NULL;
        }
        uv_mutex_unlock(&a->rd_mu);
    }
    store_reader_close(rd);
}

/* ---- small helpers ------------------------------------------------------------------------------
 */

static void fmt_time(int64_t ms, char *buf, size_t len)
{
    if (epw_format_rfc3339(ms, buf, len))
        buf[0] = '\0';
}

static cJSON *json_time(int64_t ms)
{
    char t[40];

    fmt_time(ms, t, sizeof(t));
    return cJSON_CreateString(t);
}

/* -1 (unknown) becomes null. */
static cJSON *json_int_or_null(int64_t v)
{
    return v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)v);
}

static int add(cJSON *obj, const char *key, cJSON *item)
{
    if (item == NULL)
        return UV_ENOMEM;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return UV_ENOMEM;
    }
    return 0;
}

static double round_to(double v, double unit)
{
    return round(v / unit) * unit;
}

/*
 * A time in a query string: a duration back from `now` ("6h") or an RFC 3339 time. 0 or
 * EPW_E_PARSE.
 */
static int parse_when(const char *text, int64_t now, int64_t *out)
{
    uint64_t d;

    *out = 0;
    if (text == NULL || text[0] == '\0')
        return EPW_E_PARSE;
    if (epw_parse_duration(text, &d) == 0) {
        if (d > (uint64_t)now)
            return EPW_E_PARSE;
        *out = now - (int64_t)d;
        return 0;
    }
    return epw_parse_rfc3339(text, out);
}

/* Least-squares slope of (t, pct) in percent per hour; 0 with fewer than two distinct times. */
static double slope_pct_per_hour(const store_point_t *p, size_t n)
{
    epw_linfit_t acc;
    epw_line_t line;
    size_t i;

    epw_linfit_init(&acc);
    for (i = 0; i < n; i++)
        epw_linfit_add(&acc, (double)(p[i].bucket_ms - p[0].bucket_ms) / 3600000.0, p[i].avg_pct);
    epw_linfit_line(&acc, &line);
    return isfinite(line.slope) ? line.slope : 0;
}

/* ---- the work items (store reads on the thread pool) ----------------------------------------- */

typedef enum { W_HOSTS, W_METRICS, W_HISTORY, W_SNAPSHOT } work_kind_t;

typedef struct api_work_s {
    uv_work_t req;
    api_t *api;
    http_ctx_t *ctx;
    work_kind_t kind;
    int64_t now, from, to, step, at;
    char *host;
    /* Results. */
    int rc;        /* 0, or the failure that decides the error answer */
    int status;    /* the HTTP status of an error answer */
    char msg[200]; /* its message */
    store_host_list_t *hosts;
    double *trends; /* per host (W_HOSTS) */
    char *body;     /* a JSON text built on the worker (W_HISTORY, W_SNAPSHOT) */
} api_work_t;

static void work_fail(api_work_t *w, int rc, int status, const char *msg)
{
    w->rc = rc;
    w->status = status;
    snprintf(w->msg, sizeof(w->msg), "%s", msg);
}

static void store_failed(api_work_t *w, int rc)
{
    EPW_WARN(SUB, "store read failed: %s", epw_strerror(rc));
    work_fail(w, rc, rc == UV_ENOMEM ? 500 : 503, "the history store is not available");
}

static void work_hosts(api_work_t *w, store_reader_t *rd)
{
    store_point_t *pts;
    size_t i, n;
    int rc;

    rc = store_reader_hosts(rd, &w->hosts);
    if (rc) {
        store_failed(w, rc);
        return;
    }
    if (w->kind != W_HOSTS || w->hosts->n == 0)
        return;
    w->trends = calloc(w->hosts->n, sizeof(*w->trends));
    if (w->trends == NULL) {
        store_failed(w, UV_ENOMEM);
        return;
    }
    /* One bucket per second: the raw samples (agents sample every few seconds at most). */
    for (i = 0; i < w->hosts->n; i++) {
        pts = NULL;
        n = 0;
        rc = store_reader_history(rd, w->hosts->hosts[i].identity, w->now - TREND_WINDOW_MS,
                                  w->now + 1, 1000, &pts, &n);
        if (rc) {
            store_failed(w, rc);
            return;
        }
        w->trends[i] = round_to(slope_pct_per_hour(pts, n), 0.01);
        free(pts);
    }
}

/* 404 unless the host is known. */
static int check_host(api_work_t *w, store_reader_t *rd)
{
    uint64_t seq;
    int rc;

    rc = store_reader_last_seq(rd, w->host, &seq);
    if (rc == EPW_E_NOTFOUND) {
        w->rc = rc;
        w->status = 404;
        snprintf(w->msg, sizeof(w->msg), "no such host: %s", w->host);
    } else if (rc)
        store_failed(w, rc);
    return rc;
}

static int history_json(api_work_t *w, const store_point_t *pts, size_t n)
{
    cJSON *root, *arr, *p;
    size_t i;
    int rc;

    root = cJSON_CreateObject();
    if (root == NULL)
        return UV_ENOMEM;
    rc = add(root, "host", cJSON_CreateString(w->host));
    if (rc == 0)
        rc = add(root, "from", json_time(w->from));
    if (rc == 0)
        rc = add(root, "to", json_time(w->to));
    if (rc == 0)
        rc = add(root, "step_s", cJSON_CreateNumber((double)(w->step / 1000)));
    arr = cJSON_CreateArray();
    if (rc == 0)
        rc = add(root, "points", arr);
    for (i = 0; rc == 0 && i < n; i++) {
        p = cJSON_CreateObject();
        if (p == NULL || !cJSON_AddItemToArray(arr, p)) {
            cJSON_Delete(p);
            rc = UV_ENOMEM;
            break;
        }
        rc = add(p, "t", json_time(pts[i].bucket_ms));
        if (rc == 0)
            rc = add(p, "max_pct", cJSON_CreateNumber(pts[i].max_pct));
        if (rc == 0)
            rc = add(p, "avg_pct", cJSON_CreateNumber(round_to(pts[i].avg_pct, 0.01)));
        if (rc == 0)
            rc = add(p, "samples", cJSON_CreateNumber((double)pts[i].samples));
    }
    if (rc == 0) {
        w->body = cJSON_PrintUnformatted(root);
        if (w->body == NULL)
            rc = UV_ENOMEM;
    }
    cJSON_Delete(root);
    return rc;
}

static void work_history(api_work_t *w, store_reader_t *rd)
{
    store_point_t *pts = NULL;
    size_t n = 0;
    int rc;

    if (check_host(w, rd))
        return;
    rc = store_reader_history(rd, w->host, w->from, w->to, w->step, &pts, &n);
    if (rc == EPW_E_TOOBIG || rc == UV_EINVAL) {
        work_fail(w, rc, 400, "step too small for the range (too many buckets)");
        return;
    }
    if (rc) {
        store_failed(w, rc);
        return;
    }
    rc = history_json(w, pts, n);
    free(pts);
    if (rc)
        store_failed(w, rc);
}

static void work_snapshot(api_work_t *w, store_reader_t *rd)
{
    store_blob_t blob;
    Epw__Snapshot *snap = NULL;
    cJSON *root = NULL;
    char t[40];
    int rc;

    memset(&blob, 0, sizeof(blob));
    if (check_host(w, rd))
        return;
    rc = store_reader_snapshot_at(rd, w->host, NULL, w->at, &blob);
    if (rc == EPW_E_NOTFOUND) {
        fmt_time(w->at, t, sizeof(t));
        w->rc = rc;
        w->status = 404;
        snprintf(w->msg, sizeof(w->msg), "no snapshot of %s at or before %s", w->host, t);
        return;
    }
    if (rc) {
        store_failed(w, rc);
        return;
    }
    snap = epw__snapshot__unpack(NULL, blob.len, blob.data);
    if (snap == NULL) {
        work_fail(w, EPW_E_PROTO, 500, "a stored snapshot could not be decoded");
        goto out;
    }
    root = epw_json_snapshot(snap);
    /* The stored seq is the row's key; the snapshot carries the same one. */
    if (root == NULL || !cJSON_ReplaceItemInObjectCaseSensitive(
                            root, "seq", cJSON_CreateNumber((double)blob.seq))) {
        store_failed(w, UV_ENOMEM);
        goto out;
    }
    w->body = cJSON_PrintUnformatted(root);
    if (w->body == NULL)
        store_failed(w, UV_ENOMEM);
out:
    cJSON_Delete(root);
    if (snap != NULL)
        epw__snapshot__free_unpacked(snap, NULL);
    free(blob.data);
}

static void on_work(uv_work_t *req)
{
    api_work_t *w = req->data;
    store_reader_t *rd = NULL;
    int rc;

    rc = reader_get(w->api, &rd);
    if (rc) {
        store_failed(w, rc);
        return;
    }
    switch (w->kind) {
    case W_HOSTS:
    case W_METRICS:
        work_hosts(w, rd);
        break;
    case W_HISTORY:
        work_history(w, rd);
        break;
    case W_SNAPSHOT:
        work_snapshot(w, rd);
        break;
    }
    /* A missing host is an answer, not a reader failure. */
    reader_put(w->api, rd, w->rc != 0 && w->rc != EPW_E_NOTFOUND && w->status != 400);
}

static void work_free(api_work_t *w)
{
    store_host_list_free(w->hosts);
    free(w->trends);
    free(w->host);
    cJSON_free(w->body);
    free(w);
}

/* ---- answers built on the loop thread -----------------------------------------------------------
 */

static void host_alerts(api_t *a, const char *host, api_host_alerts_t *out)
{
    memset(out, 0, sizeof(*out));
    if (a->prov.host_alerts != NULL)
        a->prov.host_alerts(a->prov.ud, host, out);
}

typedef struct host_row_s {
    const store_host_t *h;
    double trend;
    api_host_alerts_t al;
} host_row_t;

/* Silent hosts first, then by pressure descending, then by name. */
static int host_row_cmp(const void *pa, const void *pb)
{
    const host_row_t *a = pa, *b = pb;
    int sa = a->al.status == API_STATUS_SILENT, sb = b->al.status == API_STATUS_SILENT;
    double pa_ = a->h->has_latest ? a->h->latest.pressure_pct : -1;
    double pb_ = b->h->has_latest ? b->h->latest.pressure_pct : -1;

    if (sa != sb)
        return sb - sa;
    if (pa_ != pb_)
        return pa_ > pb_ ? -1 : 1;
    return strcmp(a->h->identity, b->h->identity);
}

static cJSON *host_json(const host_row_t *r)
{
    const store_host_t *h = r->h;
    const store_summary_t *s = &h->latest;
    cJSON *o = cJSON_CreateObject(), *tp;
    int rc;

    if (o == NULL)
        return NULL;
    rc = add(o, "host", cJSON_CreateString(h->identity));
    if (rc == 0)
        rc = add(o, "pressure_pct", cJSON_CreateNumber(h->has_latest ? s->pressure_pct : 0));
    if (rc == 0)
        rc = add(o, "pressure_source",
                 cJSON_CreateString(h->has_latest && s->pressure_source ? s->pressure_source : ""));
    if (rc == 0)
        rc = add(o, "status", cJSON_CreateString(api_status_name(r->al.status)));
    if (rc == 0)
        rc = add(o, "last_seen", json_time(h->last_seen));
    if (rc == 0)
        rc = add(o, "active_alerts", cJSON_CreateNumber((double)r->al.active));
    if (rc == 0)
        rc = add(o, "trend_pct_per_hour", cJSON_CreateNumber(r->trend));
    if (rc == 0)
        rc = add(o, "platform", cJSON_CreateString(h->platform ? h->platform : ""));
    if (rc == 0)
        rc = add(o, "os", cJSON_CreateString(h->os ? h->os : ""));
    if (rc == 0)
        rc = add(o, "agent_version", cJSON_CreateString(h->agent_version ? h->agent_version : ""));
    if (rc == 0)
        rc = add(o, "tcp_in_use", json_int_or_null(h->has_latest ? s->tcp_in_use : -1));
    if (rc == 0)
        rc = add(o, "tcp_max", json_int_or_null(h->has_latest ? s->tcp_max : -1));
    if (rc == 0)
        rc = add(o, "kernel_ports", json_int_or_null(h->has_latest ? s->kernel_ports : -1));
    if (rc == 0) {
        if (h->has_latest && s->top_pid >= 0) {
            tp = cJSON_CreateObject();
            rc = add(o, "top_process", tp);
            if (rc == 0)
                rc = add(tp, "pid", cJSON_CreateNumber((double)s->top_pid));
            if (rc == 0)
                rc = add(tp, "name", cJSON_CreateString(s->top_name ? s->top_name : ""));
            if (rc == 0)
                rc = add(tp, "ports", json_int_or_null(s->top_ports));
        } else {
            rc = add(o, "top_process", cJSON_CreateNull());
        }
    }
    if (rc) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void answer_hosts(api_work_t *w)
{
    api_t *a = w->api;
    host_row_t *rows;
    cJSON *arr = NULL, *o;
    size_t i, n = w->hosts->n;

    rows = calloc(n ? n : 1, sizeof(*rows));
    if (rows == NULL)
        goto fail;
    for (i = 0; i < n; i++) {
        rows[i].h = &w->hosts->hosts[i];
        rows[i].trend = w->trends ? w->trends[i] : 0;
        host_alerts(a, rows[i].h->identity, &rows[i].al);
    }
    qsort(rows, n, sizeof(*rows), host_row_cmp);
    arr = cJSON_CreateArray();
    if (arr == NULL)
        goto fail;
    for (i = 0; i < n; i++) {
        o = host_json(&rows[i]);
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            goto fail;
        }
    }
    http_resp_send_json(w->ctx, 200, arr);
    cJSON_Delete(arr);
    free(rows);
    return;
fail:
    cJSON_Delete(arr);
    free(rows);
    http_resp_send_error(w->ctx, 500, "out of memory");
}

/* The collector's own families, then the per-host ones. */
static int metrics_text(api_t *a, const store_host_list_t *hl, char **out, size_t *len)
{
    api_counters_t cnt;
    api_host_alerts_t al;
    store_stats_t ss;
    prom_t *w = NULL;
    prom_label_t lb[2];
    const store_host_t *h;
    size_t i;
    int rc;

    *out = NULL;
    memset(&cnt, 0, sizeof(cnt));
    if (a->prov.counters != NULL)
        a->prov.counters(a->prov.ud, &cnt);
    store_get_stats(a->store, &ss);
    rc = prom_create(&w);
    if (rc)
        return rc;

    prom_family(w, "epwatch_agents_connected", PROM_GAUGE,
                "Agents with an open, identified session.");
    prom_sample_int(w, NULL, 0,
                    (int64_t)(a->prov.agents_connected ? a->prov.agents_connected(a->prov.ud) : 0));
    prom_family(w, "epwatch_snapshots_ingested_total", PROM_COUNTER,
                "Snapshots committed to the history store as new rows.");
    prom_sample_int(w, NULL, 0, (int64_t)cnt.snapshots_ingested);
    prom_family(w, "epwatch_rejects_total", PROM_COUNTER, "Agent connections refused, by reason.");
    for (i = 0; i < cnt.n_rejects && i < API_MAX_REJECT_REASONS; i++) {
        lb[0].name = "reason";
        lb[0].value = cnt.rejects[i].label ? cnt.rejects[i].label : "unknown";
        prom_sample_int(w, lb, 1, (int64_t)cnt.rejects[i].value);
    }
    prom_family(w, "epwatch_store_queue_depth", PROM_GAUGE,
                "Items waiting for the history store's writer.");
    prom_sample_int(w, NULL, 0, (int64_t)ss.queue_depth);
    prom_family(w, "epwatch_store_commit_seconds", PROM_GAUGE,
                "Duration of the history store's last commit.");
    prom_sample(w, NULL, 0, (double)ss.last_commit_us / 1e6);

    prom_family(w, "epwatch_host_pressure_ratio", PROM_GAUGE,
                "Latest port pressure of the host (the alert figure), 0..1.");
    for (i = 0; i < hl->n; i++) {
        h = &hl->hosts[i];
        lb[0].name = "host";
        lb[0].value = h->identity;
        if (h->has_latest)
            prom_sample(w, lb, 1, h->latest.pressure_pct / 100.0);
    }
    prom_family(w, "epwatch_host_ports_in_use", PROM_GAUGE,
                "Ephemeral ports in use on the host, by protocol.");
    for (i = 0; i < hl->n; i++) {
        h = &hl->hosts[i];
        lb[0].name = "host";
        lb[0].value = h->identity;
        lb[1].name = "protocol";
        lb[1].value = "tcp";
        if (h->has_latest && h->latest.tcp_in_use >= 0)
            prom_sample_int(w, lb, 2, h->latest.tcp_in_use);
        lb[1].value = "udp";
        if (h->has_latest && h->latest.udp_in_use >= 0)
            prom_sample_int(w, lb, 2, h->latest.udp_in_use);
    }
    prom_family(w, "epwatch_host_ports_max", PROM_GAUGE,
                "Size of the host's ephemeral port range, by protocol.");
    for (i = 0; i < hl->n; i++) {
        h = &hl->hosts[i];
        lb[0].name = "host";
        lb[0].value = h->identity;
        lb[1].name = "protocol";
        lb[1].value = "tcp";
        if (h->has_latest && h->latest.tcp_max >= 0)
            prom_sample_int(w, lb, 2, h->latest.tcp_max);
        lb[1].value = "udp";
        if (h->has_latest && h->latest.udp_max >= 0)
            prom_sample_int(w, lb, 2, h->latest.udp_max);
    }
    prom_family(w, "epwatch_host_alert_active", PROM_GAUGE, "Active alerts of the host (0: none).");
    for (i = 0; i < hl->n; i++) {
        h = &hl->hosts[i];
        lb[0].name = "host";
        lb[0].value = h->identity;
        host_alerts(a, h->identity, &al);
        prom_sample_int(w, lb, 1, (int64_t)al.active);
    }
    prom_family(w, "epwatch_host_last_seen_timestamp_seconds", PROM_GAUGE,
                "When the host's latest data was received (Unix time).");
    for (i = 0; i < hl->n; i++) {
        h = &hl->hosts[i];
        lb[0].name = "host";
        lb[0].value = h->identity;
        prom_sample(w, lb, 1, (double)h->last_seen / 1000.0);
    }
    rc = prom_error(w);
    if (rc == 0) {
        *out = prom_take(w, len);
        if (*out == NULL)
            rc = UV_ENOMEM;
    }
    prom_destroy(w);
    return rc;
}

static void answer_metrics(api_work_t *w)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = metrics_text(w->api, w->hosts, &text, &len);
    if (rc) {
        EPW_ERROR(SUB, "/metrics: %s", epw_strerror(rc));
        http_resp_send_error(w->ctx, 500, "cannot render the metrics");
        return;
    }
    http_resp_send_text(w->ctx, 200, HTTP_CT_PROM, text, len);
    free(text);
}

static void on_work_done(uv_work_t *req, int status)
{
    api_work_t *w = req->data;
    api_t *a = w->api;

    if (status == UV_ECANCELED)
        work_fail(w, status, 503, "shutting down");
    if (http_ctx_abandoned(w->ctx)) {
        http_resp_send_error(w->ctx, 503, NULL); /* only frees the context */
    } else if (w->rc) {
        http_resp_send_error(w->ctx, w->status, w->msg);
    } else {
        switch (w->kind) {
        case W_HOSTS:
            answer_hosts(w);
            break;
        case W_METRICS:
            answer_metrics(w);
            break;
        case W_HISTORY:
        case W_SNAPSHOT:
            http_resp_send(w->ctx, 200, HTTP_CT_JSON, w->body, strlen(w->body), NULL, 0);
            break;
        }
    }
    work_free(w);
    a->inflight--;
    api_maybe_finish(a);
}

/* Queues `w` (taken either way); on failure answers 503 at once. */
static void work_start(api_t *a, api_work_t *w)
{
    int rc;

    w->req.data = w;
    rc = uv_queue_work(a->loop, &w->req, on_work, on_work_done);
    if (rc) {
        http_resp_send_error(w->ctx, 503, "cannot schedule the request");
        work_free(w);
        return;
    }
    a->inflight++;
}

static api_work_t *work_new(api_t *a, http_ctx_t *ctx, work_kind_t kind)
{
    api_work_t *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        http_resp_send_error(ctx, 500, "out of memory");
        return NULL;
    }
    w->api = a;
    w->ctx = ctx;
    w->kind = kind;
    w->now = epw_now_ms();
    return w;
}

/* ---- handlers (loop thread) --------------------------------------------------------------------
 */

static void h_health(http_ctx_t *ctx, void *ud)
{
    api_t *a = ud;
    cJSON *o = cJSON_CreateObject();
    size_t n = a->prov.agents_connected ? a->prov.agents_connected(a->prov.ud) : 0;

    if (o == NULL || add(o, "status", cJSON_CreateString("ok")) ||
        add(o, "version", cJSON_CreateString(EPW_VERSION)) ||
        add(o, "agents_connected", cJSON_CreateNumber((double)n))) {
        cJSON_Delete(o);
        http_resp_send_error(ctx, 500, "out of memory");
        return;
    }
    http_resp_send_json(ctx, 200, o);
    cJSON_Delete(o);
}

static void h_hosts(http_ctx_t *ctx, void *ud)
{
    api_work_t *w = work_new(ud, ctx, W_HOSTS);

    if (w != NULL)
        work_start(ud, w);
}

static void h_metrics(http_ctx_t *ctx, void *ud)
{
    api_work_t *w = work_new(ud, ctx, W_METRICS);

    if (w != NULL)
        work_start(ud, w);
}

/* Answers 400 and returns non-zero when a query parameter is malformed. */
static int bad_param(http_ctx_t *ctx, const char *name, const char *value, const char *want)
{
    char msg[300];

    snprintf(msg, sizeof(msg), "bad %s=%.100s: expected %s", name, value, want);
    http_resp_send_error(ctx, 400, msg);
    return 1;
}

static void h_history(http_ctx_t *ctx, void *ud)
{
    const http_req_t *req = http_ctx_req(ctx);
    const char *since = http_req_query(req, "since"), *until = http_req_query(req, "until");
    const char *step = http_req_query(req, "step");
    api_work_t *w = work_new(ud, ctx, W_HISTORY);
    uint64_t st = 0;

    if (w == NULL)
        return;
    w->to = w->now;
    w->from = w->now - HISTORY_DEFAULT_MS;
    if (until != NULL && parse_when(until, w->now, &w->to)) {
        bad_param(ctx, "until", until, "a duration (90s, 15m, 6h, 7d) or an RFC 3339 time");
        goto drop;
    }
    if (since != NULL && parse_when(since, w->now, &w->from)) {
        bad_param(ctx, "since", since, "a duration (90s, 15m, 6h, 7d) or an RFC 3339 time");
        goto drop;
    }
    if (w->from >= w->to) {
        http_resp_send_error(ctx, 400, "empty range: since must be before until");
        goto drop;
    }
    if (step != NULL) {
        if (epw_parse_duration(step, &st) || st < 1000 || st % 1000 != 0 ||
            st > (uint64_t)INT64_MAX / 2) {
            bad_param(ctx, "step", step, "a whole number of seconds, at least 1s (e.g. 5m)");
            goto drop;
        }
        w->step = (int64_t)st;
    } else {
        /* The span / 120, at least a minute, in whole seconds. */
        w->step = (w->to - w->from) / 120;
        w->step = (w->step + 999) / 1000 * 1000;
        if (w->step < 60000)
            w->step = 60000;
    }
    if ((w->to - w->from) / w->step >= STORE_HISTORY_MAX) {
        http_resp_send_error(ctx, 400, "step too small for the range (too many buckets)");
        goto drop;
    }
    w->host = strdup(http_ctx_param(ctx, "host"));
    if (w->host == NULL) {
        http_resp_send_error(ctx, 500, "out of memory");
        goto drop;
    }
    work_start(ud, w);
    return;
drop:
    work_free(w);
}

static void h_snapshot(http_ctx_t *ctx, void *ud)
{
    const char *at = http_req_query(http_ctx_req(ctx), "at");
    api_work_t *w = work_new(ud, ctx, W_SNAPSHOT);

    if (w == NULL)
        return;
    w->at = w->now;
    if (at != NULL && parse_when(at, w->now, &w->at)) {
        bad_param(ctx, "at", at, "an RFC 3339 time or a duration back from now");
        work_free(w);
        return;
    }
    w->host = strdup(http_ctx_param(ctx, "host"));
    if (w->host == NULL) {
        http_resp_send_error(ctx, 500, "out of memory");
        work_free(w);
        return;
    }
    work_start(ud, w);
}

/* ---- /api/v1/alerts
 * ------------------------------------------------------------------------------ */

typedef struct alerts_call_s {
    api_t *api;
    http_ctx_t *ctx;
    api_alert_query_t q;
    char *host;
} alerts_call_t;

static int alert_matches(const api_alert_query_t *q, const api_alert_t *al)
{
    if (q->active == 1 && !al->active)
        return 0;
    if (q->active == 0 && al->active)
        return 0;
    if (q->host != NULL && (al->host == NULL || strcmp(q->host, al->host) != 0))
        return 0;
    return al->active || al->resolved_at_ms >= q->since_ms;
}

/* Newest first: raised_at descending, then id descending. */
static int alert_ptr_cmp(const void *pa, const void *pb)
{
    const api_alert_t *a = *(const api_alert_t *const *)pa, *b = *(const api_alert_t *const *)pb;

    if (a->raised_at_ms != b->raised_at_ms)
        return a->raised_at_ms > b->raised_at_ms ? -1 : 1;
    if (a->id != b->id)
        return a->id > b->id ? -1 : 1;
    return 0;
}

static cJSON *alert_json(const api_alert_t *al)
{
    cJSON *o = cJSON_CreateObject();
    int rc;

    if (o == NULL)
        return NULL;
    rc = add(o, "id", cJSON_CreateNumber((double)al->id));
    if (rc == 0)
        rc = add(o, "host", cJSON_CreateString(al->host ? al->host : ""));
    if (rc == 0)
        rc = add(o, "kind", cJSON_CreateString(al->kind ? al->kind : "unknown"));
    if (rc == 0)
        rc = add(o, "severity", cJSON_CreateString(detect_severity_name(al->severity)));
    if (rc == 0)
        rc = add(o, "active", cJSON_CreateBool(al->active));
    if (rc == 0)
        rc = add(o, "raised_at", json_time(al->raised_at_ms));
    if (rc == 0)
        rc = add(o, "resolved_at", al->active ? cJSON_CreateNull() : json_time(al->resolved_at_ms));
    if (rc == 0)
        rc = add(o, "last_notified_at",
                 json_time(al->last_notified_at_ms ? al->last_notified_at_ms : al->raised_at_ms));
    if (rc == 0)
        rc = add(o, "summary", cJSON_CreateString(al->summary ? al->summary : ""));
    if (rc == 0)
        rc = add(o, "evidence",
                 al->evidence ? cJSON_Duplicate(al->evidence, 1) : cJSON_CreateObject());
    if (rc) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void alerts_done(void *req, int status, const api_alert_t *alerts, size_t n)
{
    alerts_call_t *call = req;
    api_t *a = call->api;
    const api_alert_t **sel = NULL;
    cJSON *arr = NULL, *o;
    size_t i, m = 0;

    if (http_ctx_abandoned(call->ctx)) {
        http_resp_send_error(call->ctx, 503, NULL); /* only frees the context */
        goto out;
    }
    if (status) {
        EPW_WARN(SUB, "alerts: the provider failed: %s", epw_strerror(status));
        http_resp_send_error(call->ctx, 503, "alerts are not available");
        goto out;
    }
    sel = calloc(n ? n : 1, sizeof(*sel));
    arr = cJSON_CreateArray();
    if (sel == NULL || arr == NULL)
        goto fail;
    for (i = 0; i < n; i++)
        if (alert_matches(&call->q, &alerts[i]))
            sel[m++] = &alerts[i];
    qsort(sel, m, sizeof(*sel), alert_ptr_cmp);
    for (i = 0; i < m && i < call->q.limit; i++) {
        o = alert_json(sel[i]);
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            goto fail;
        }
    }
    http_resp_send_json(call->ctx, 200, arr);
    goto out;
fail:
    http_resp_send_error(call->ctx, 500, "out of memory");
out:
    cJSON_Delete(arr);
    free(sel);
    free(call->host);
    free(call);
    a->inflight--;
    api_maybe_finish(a);
}

static void h_alerts(http_ctx_t *ctx, void *ud)
{
    api_t *a = ud;
    const http_req_t *req = http_ctx_req(ctx);
    const char *active = http_req_query(req, "active"), *host = http_req_query(req, "host");
    const char *since = http_req_query(req, "since"), *limit = http_req_query(req, "limit");
    alerts_call_t *call;
    char *end;
    unsigned long lim;
    int rc;

    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        http_resp_send_error(ctx, 500, "out of memory");
        return;
    }
    call->api = a;
    call->ctx = ctx;
    call->q.active = -1;
    call->q.since_ms = epw_now_ms() - ALERTS_SINCE_MS;
    call->q.limit = ALERTS_LIMIT;
    if (active != NULL) {
        if (strcmp(active, "true") == 0)
            call->q.active = 1;
        else if (strcmp(active, "false") == 0)
            call->q.active = 0;
        else {
            bad_param(ctx, "active", active, "true or false");
            goto drop;
        }
    }
    if (host != NULL) {
        if (host[0] == '\0') {
            bad_param(ctx, "host", host, "a host name");
            goto drop;
        }
        call->host = strdup(host);
        if (call->host == NULL) {
            http_resp_send_error(ctx, 500, "out of memory");
            goto drop;
        }
        call->q.host = call->host;
    }
    if (since != NULL && parse_when(since, epw_now_ms(), &call->q.since_ms)) {
        bad_param(ctx, "since", since, "a duration (90s, 15m, 6h, 7d) or an RFC 3339 time");
        goto drop;
    }
    if (limit != NULL) {
        lim = limit[0] >= '0' && limit[0] <= '9' ? strtoul(limit, &end, 10) : 0;
        if (lim == 0 || *end != '\0' || lim > ALERTS_LIMIT_MAX) {
            bad_param(ctx, "limit", limit, "an integer from 1 to 10000");
            goto drop;
        }
        call->q.limit = (size_t)lim;
    }
    if (a->prov.list_alerts == NULL) {
        /* No alert storage (yet): an empty list is the truth. */
        call->api->inflight++;
        alerts_done(call, 0, NULL, 0);
        return;
    }
    a->inflight++;
    rc = a->prov.list_alerts(a->prov.ud, &call->q, alerts_done, call);
    if (rc) {
        a->inflight--;
        EPW_WARN(SUB, "alerts: the provider refused the query: %s", epw_strerror(rc));
        http_resp_send_error(ctx, 503, "alerts are not available");
        goto drop;
    }
    return;
drop:
    free(call->host);
    free(call);
}

/* ---- connections -------------------------------------------------------------------------------
 */

static void pump(api_conn_t *ac);

/* 1 when the request may proceed: an operator certificate, or one of the bearer tokens. */
static int authorised(const api_conn_t *ac, const http_req_t *req)
{
    const api_t *a = ac->api;
    const char *tok;
    size_t i, tlen;
    int ok = 0;

    if (ac->is_operator)
        return 1;
    tok = http_req_bearer_token(req);
    if (tok == NULL)
        return 0;
    tlen = strlen(tok);
    /* Compare with every token, so the time does not tell which one matched. */
    for (i = 0; i < a->n_tokens; i++)
        ok |= http_token_equal(tok, tlen, a->tokens[i], strlen(a->tokens[i]));
    return ok;
}

static void conn_shut(api_conn_t *ac, int reason)
{
    if (ac->closing)
        return;
    ac->closing = 1;
    epw_conn_close(ac->conn, reason);
}

/* The reply sink of every context of this connection (see http_resp.h). */
static void sink(void *ud, uint8_t *bytes, size_t len, int close_after)
{
    api_conn_t *ac = ud;
    int rc = 0;

    ac->ctx = NULL;
    ac->api->st.requests++;
    if (bytes == NULL) {
        conn_shut(ac, UV_ENOMEM);
        return;
    }
    if (!ac->closing)
        rc = epw_conn_send_raw(ac->conn, bytes, len);
    free(bytes);
    if (rc || close_after) {
        conn_shut(ac, 0);
        return;
    }
    ac->pstate = http_req_parser_next(ac->parser);
    pump(ac);
}

static void dispatch(api_conn_t *ac)
{
    api_t *a = ac->api;
    const http_req_t *req = http_req_parser_request(ac->parser);
    http_ctx_t *ctx = NULL;

    if (http_ctx_create(req, sink, ac, &ctx)) {
        conn_shut(ac, UV_ENOMEM);
        return;
    }
    ac->ctx = ctx;
    EPW_DEBUG(SUB, "%s (%s): %s %s", epw_conn_peer_addr(ac->conn),
              ac->is_operator ? epw_conn_peer_cn(ac->conn) : "token", http_req_method_name(req),
              http_req_target(req));
    if (a->closing)
        http_ctx_set_close(ctx);
    if (!authorised(ac, req)) {
        a->st.unauthorised++;
        http_resp_send_error(ctx, 401,
                             "an operator certificate or a valid bearer token is required");
        return;
    }
    http_router_dispatch(a->router, ctx);
}

static void reply_bad_request(api_conn_t *ac)
{
    int status = http_req_parser_status(ac->parser);
    http_ctx_t *ctx = NULL;

    ac->api->st.bad_requests++;
    EPW_INFO(SUB, "%s: bad request: %s", epw_conn_peer_addr(ac->conn),
             http_req_parser_reason(ac->parser));
    if (http_ctx_create(NULL, sink, ac, &ctx)) {
        conn_shut(ac, UV_ENOMEM);
        return;
    }
    ac->ctx = ctx;
    /* A context without a request always closes the connection after the reply. */
    http_resp_send_error(ctx, status >= 400 ? status : 400, http_req_parser_reason(ac->parser));
}

/* Answers the requests the parser holds, one at a time, while the socket takes the output. */
static void pump(api_conn_t *ac)
{
    if (ac->pumping)
        return;
    ac->pumping = 1;
    while (!ac->closing && ac->ctx == NULL && epw_conn_writable(ac->conn)) {
        if (ac->pstate < 0) {
            reply_bad_request(ac);
            break;
        }
        if (ac->pstate != HTTP_REQ_READY)
            break;
        dispatch(ac);
    }
    ac->pumping = 0;
}

static void on_data(epw_conn_t *c, const uint8_t *buf, size_t len, void *ud)
{
    api_conn_t *ac = ud;
    int rc;

    (void)c;
    if (ac->closing)
        return;
    rc = http_req_feed(ac->parser, buf, len);
    /* While a request is held, the bytes are only queued: its READY state stays. */
    if (ac->ctx == NULL || rc < 0)
        ac->pstate = rc;
    pump(ac);
}

static void on_drain(epw_conn_t *c, void *ud)
{
    (void)c;
    pump(ud);
}

static void on_conn_close(epw_conn_t *c, int status, void *ud)
{
    api_conn_t *ac = ud;
    api_t *a = ac->api;

    (void)c;
    EPW_DEBUG(SUB, "%s: closed: %s", epw_conn_peer_addr(c), epw_strerror(status));
    if (ac->ctx != NULL)
        http_ctx_abandon(ac->ctx); /* its handler still answers it, which then only frees it */
    http_req_parser_destroy(ac->parser);
    if (ac->prev != NULL)
        ac->prev->next = ac->next;
    else
        a->conns = ac->next;
    if (ac->next != NULL)
        ac->next->prev = ac->prev;
    a->st.connections--;
    free(ac);
    api_maybe_finish(a);
}

static void refuse_busy(api_t *a, epw_conn_t *c)
{
    uint8_t *bytes = NULL;
    size_t len = 0;

    a->st.refused_busy++;
    EPW_WARN(SUB, "%s: %zu API connections open, refusing", epw_conn_peer_addr(c), a->max_conns);
    if (http_resp_error(503, "too many API connections", HTTP_RESP_CLOSE, &bytes, &len) == 0)
        epw_conn_send_raw(c, bytes, len);
    free(bytes);
    epw_conn_close(c, EPW_E_REJECTED);
}

static void on_listener_conn(epw_listener_t *l, epw_conn_t *c, void *ud)
{
    api_t *a = ud;
    api_conn_t *ac;
    epw_conn_cbs_t cbs;

    (void)l;
    if (a->closing) {
        epw_conn_close(c, EPW_E_CLOSED);
        return;
    }
    if (a->st.connections >= a->max_conns) {
        refuse_busy(a, c);
        return;
    }
    ac = calloc(1, sizeof(*ac));
    if (ac == NULL || http_req_parser_create(&a->limits, &ac->parser)) {
        free(ac);
        epw_conn_close(c, UV_ENOMEM);
        return;
    }
    ac->api = a;
    ac->conn = c;
    ac->is_operator = epw_conn_peer_is_operator(c);
    ac->next = a->conns;
    if (a->conns != NULL)
        a->conns->prev = ac;
    a->conns = ac;
    a->st.connections++;
    a->st.accepted++;
    memset(&cbs, 0, sizeof(cbs));
    cbs.on_data = on_data;
    cbs.on_drain = on_drain;
    cbs.on_close = on_conn_close;
    cbs.ud = ac;
    epw_conn_set_callbacks(c, &cbs);
    EPW_DEBUG(SUB, "%s: connected (%s)", epw_conn_peer_addr(c),
              ac->is_operator ? epw_conn_peer_cn(c) : "no certificate");
}

static void on_listener_fail(epw_listener_t *l, int status, const char *peer, void *ud)
{
    api_t *a = ud;

    (void)l;
    a->st.tls_failures++;
    EPW_DEBUG(SUB, "%s: refused before any request: %s", peer, epw_strerror(status));
}

/* ---- lifetime -----------------------------------------------------------------------------------
 */

static void api_free(api_t *a)
{
    size_t i;

    for (i = 0; i < a->n_idle; i++)
        store_reader_close(a->idle[i]);
    uv_mutex_destroy(&a->rd_mu);
    for (i = 0; i < a->n_tokens; i++)
        free(a->tokens[i]);
    free(a->tokens);
    http_router_destroy(a->router);
    epw_tls_config_destroy(a->tls);
    free(a);
}

static void api_maybe_finish(api_t *a)
{
    void (*cb)(void *ud);
    void *ud;

    if (!a->closing || !a->listener_closed || a->conns != NULL || a->inflight > 0)
        return;
    cb = a->close_cb;
    ud = a->close_ud;
    a->close_cb = NULL;
    if (cb != NULL)
        cb(ud);
    api_free(a);
}

static void on_listener_closed(epw_listener_t *l, void *ud)
{
    api_t *a = ud;

    (void)l;
    a->listener = NULL;
    a->listener_closed = 1;
    api_maybe_finish(a);
}

static int add_routes(api_t *a)
{
    static const struct {
        const char *pattern;
        http_handler_cb handler;
    } routes[] = {
        {"/api/v1/health", h_health},
        {"/api/v1/hosts", h_hosts},
        {"/api/v1/hosts/{host}/history", h_history},
        {"/api/v1/hosts/{host}/snapshot", h_snapshot},
        {"/api/v1/alerts", h_alerts},
        {"/metrics", h_metrics},
    };
    size_t i;
    int rc = 0;

    for (i = 0; rc == 0 && i < sizeof(routes) / sizeof(routes[0]); i++)
        rc =
            http_router_add(a->router, HTTP_METHOD_GET, routes[i].pattern, 0, routes[i].handler, a);
    return rc;
}

int api_start(uv_loop_t *loop, const api_opts_t *opts, api_t **out)
{
    epw_listener_opts_t lo;
    epw_tls_opts_t to;
    api_t *a;
    size_t i;
    int rc;

    *out = NULL;
    if (opts == NULL || opts->addr == NULL || opts->store == NULL || opts->ca_path == NULL ||
        opts->cert_path == NULL || opts->key_path == NULL ||
        (opts->n_tokens > 0 && opts->tokens == NULL))
        return UV_EINVAL;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return UV_ENOMEM;
    rc = uv_mutex_init(&a->rd_mu);
    if (rc) {
        free(a);
        return rc;
    }
    a->loop = loop;
    a->store = opts->store;
    a->prov = opts->provider;
    a->limits = opts->limits;
    a->max_conns = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNS;
    a->max_readers = opts->max_readers ? opts->max_readers : DEFAULT_MAX_READERS;
    if (a->max_readers > MAX_READERS_CAP)
        a->max_readers = MAX_READERS_CAP;
    a->listener_closed = 1; /* until the listener runs */

    a->tokens = calloc(opts->n_tokens ? opts->n_tokens : 1, sizeof(*a->tokens));
    if (a->tokens == NULL) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (i = 0; i < opts->n_tokens; i++) {
        if (opts->tokens[i] == NULL || opts->tokens[i][0] == '\0')
            continue; /* an empty token must never open the API */
        a->tokens[a->n_tokens] = strdup(opts->tokens[i]);
        if (a->tokens[a->n_tokens] == NULL) {
            rc = UV_ENOMEM;
            goto out;
        }
        a->n_tokens++;
    }

    memset(&to, 0, sizeof(to));
    to.accept = a->n_tokens > 0 ? EPW_TLS_PEER_OPERATOR_OR_NONE : EPW_TLS_PEER_OPERATOR;
    to.debug_level = opts->tls_debug;
    rc = epw_tls_config_create(EPW_TLS_SERVER, opts->ca_path, opts->cert_path, opts->key_path, &to,
                               &a->tls);
    if (rc)
        goto out;
    rc = http_router_create(&a->router);
    if (rc == 0)
        rc = add_routes(a);
    if (rc)
        goto out;

    memset(&lo, 0, sizeof(lo));
    lo.addr = opts->addr;
    lo.port = opts->port;
    lo.conn.handshake_timeout_ms = opts->handshake_ms;
    lo.conn.idle_timeout_ms = opts->idle_ms ? opts->idle_ms : DEFAULT_IDLE_MS;
    lo.on_conn = on_listener_conn;
    lo.on_fail = on_listener_fail;
    lo.ud = a;
    rc = epw_listener_start(loop, a->tls, &lo, &a->listener);
    if (rc) {
        EPW_ERROR(SUB, "cannot listen on %s port %u: %s", opts->addr, (unsigned)opts->port,
                  epw_strerror(rc));
        goto out;
    }
    a->listener_closed = 0;
    a->port = epw_listener_port(a->listener);
    EPW_INFO(SUB, "operator API on %s port %u (%s)", opts->addr, (unsigned)a->port,
             a->n_tokens > 0 ? "operator certificates or bearer tokens"
                             : "operator certificates only");
out:
    if (rc)
        api_free(a);
    else
        *out = a;
    return rc;
}

uint16_t api_port(const api_t *api)
{
    return api->port;
}

void api_get_stats(const api_t *api, api_stats_t *out)
{
    *out = api->st;
}

void api_close(api_t *api, void (*cb)(void *ud), void *ud)
{
    api_conn_t *ac;

    if (api->closing)
        return;
    api->closing = 1;
    api->close_cb = cb;
    api->close_ud = ud;
    for (ac = api->conns; ac != NULL; ac = ac->next)
        conn_shut(ac, EPW_E_CLOSED);
    /* The listener's close callback always runs later, so cb never runs inside this call. */
    epw_listener_close(api->listener, on_listener_closed, api);
}
