/* epwatch-collector: ingests agents over mutual TLS, stores history, alerts, serves the API. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "alerts.h"
#include "api.h"
#include "collector_conf.h"
#include "epw_err.h"
#include "epw_log.h"
#include "epw_tls.h"
#include "ingest.h"
#include "sinks.h"
#include "store.h"

#define SUB            "collector"
#define STATS_EVERY_MS (5 * 60 * 1000)
#define TICK_EVERY_MS  5000 /* silence and re-notification: well below any silent threshold */

#ifndef EPW_VERSION
#define EPW_VERSION "0"
#endif

/*
 * Start-up: TLS, store (keep_decoded: detection uses the store's decoded snapshot), sinks,
 * alerts (adopting what the database says is active), ingest, API, signals and timers.
 *
 * Graceful stop, in this order and each step after the previous one finished:
 *   ingest_stop        no new agents, no more reading
 *   api_close          (async) no request reads the store any more
 *   alerts_stop        nothing new is submitted to the closing store
 *   store_close        drains: accepted snapshots commit and are acked, pending alert
 *                      transitions commit and go to the sinks (alerts_store_done)
 *   sinks_close        (async) deliveries in progress get close_grace, then are cancelled
 *   ingest_close       (async) the final Acks are flushed, connections closed
 * Sinks close after the store, not before: the transitions committed by the drain must still
 * reach them. Then the loop has nothing left and uv_loop_close() returns 0.
 */
typedef struct app_s {
    uv_loop_t loop;
    collector_conf_t conf;
    epw_tls_config_t *tls;
    store_t *store;
    ingest_t *ingest;
    sinks_t *sinks;
    alerts_t *alerts;
    api_t *api;
    detect_override_t *ov;
    size_t n_ov;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t stats_timer, tick_timer;
    int handles; /* signals and timers initialised */
    int stopping;

    /* The alerts reader of the API provider: work threads, one at a time (rd_mu). */
    uv_mutex_t rd_mu;
    store_reader_t *rd;
} app_t;

static app_t app;

static void usage(FILE *f)
{
    char *help = epw_config_help(collector_conf_table());

    fprintf(f,
            "Usage: epwatch-collector [--config FILE] [--KEY VALUE]... [--print-config]\n"
            "       epwatch-collector --help | --version\n\n"
            "Accepts epwatch agents over mutual TLS, stores their snapshots (SQLite or\n"
            "PostgreSQL), raises alerts ([alerts] rules, [sink.*] destinations) and serves the\n"
            "operator API (api_listen; collector/API.md).\n"
            "Every key can be set in the INI file given by --config or as --KEY VALUE\n"
            "(command line wins). Per-host rule overrides: [alerts.override.NAME] sections with\n"
            "hosts = PATTERN, ... and any alerts key (--alerts.override.NAME.KEY VALUE).\n"
            "SIGINT/SIGTERM: graceful stop; SIGHUP: re-read deny_file.\n\n"
            "Keys:\n%s",
            help ? help : "");
    free(help);
}

static void log_stats(const char *when)
{
    ingest_stats_t s;
    alerts_stats_t as;
    char rej[256] = "", fail[192] = "";
    size_t off = 0;
    int i;

    if (app.ingest == NULL)
        return;
    ingest_get_stats(app.ingest, &s);
    for (i = 1; i < INGEST_REJECT_COUNT; i++)
        off += (size_t)snprintf(rej + off, off < sizeof(rej) ? sizeof(rej) - off : 0, " %s=%llu",
                                ingest_reject_name(i), (unsigned long long)s.rejects[i]);
    off = 0;
    for (i = 0; i < INGEST_FAIL_COUNT; i++)
        off += (size_t)snprintf(fail + off, off < sizeof(fail) ? sizeof(fail) - off : 0, " %s=%llu",
                                ingest_fail_name((ingest_fail_t)i), (unsigned long long)s.fails[i]);
    EPW_INFO(SUB,
             "%s: agents=%zu connections=%zu snapshots=%llu duplicates=%llu gaps=%llu acks=%llu "
             "queue=%zu paused=%zu store_errors=%llu; rejects:%s; failed handshakes:%s",
             when, s.agents, s.connections, (unsigned long long)s.snapshots,
             (unsigned long long)s.duplicates, (unsigned long long)s.gaps,
             (unsigned long long)s.acks, s.queue_depth, s.paused,
             (unsigned long long)s.store_errors, rej, fail);
    if (app.alerts != NULL) {
        alerts_get_stats(app.alerts, &as);
        EPW_INFO(SUB,
                 "%s: alerts: sources=%zu active=%zu raised=%llu resolved=%llu transitions=%llu "
                 "adopted=%llu unrecorded=%llu",
                 when, as.sources, as.active, (unsigned long long)as.raised,
                 (unsigned long long)as.resolved, (unsigned long long)as.transitions,
                 (unsigned long long)as.adopted, (unsigned long long)as.store_errors);
    }
}

static void on_stats_timer(uv_timer_t *t)
{
    (void)t;
    log_stats("stats");
}

static void on_tick_timer(uv_timer_t *t)
{
    (void)t;
    if (app.alerts != NULL)
        (void)alerts_tick(app.alerts);
}

/* Store callbacks: ingest acknowledges, alerts evaluates new snapshots and dispatches its own
 * committed transitions (each ignores the other's results by tag). */
static void on_store_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    (void)st;
    (void)ud;
    if (app.ingest != NULL)
        ingest_store_done(app.ingest, r, n);
    if (app.alerts != NULL)
        alerts_store_done(app.alerts, r, n);
}

static void on_store_room(store_t *st, void *ud)
{
    (void)st;
    (void)ud;
    if (app.ingest != NULL)
        ingest_store_room(app.ingest);
}

static int apply_deny(void)
{
    epw_cfg_list_t list = {NULL, 0};
    char err[2048] = "";
    int rc;

    rc = collector_deny_load(&app.conf, &list, err, sizeof(err));
    if (rc) {
        EPW_ERROR(SUB, "deny list not loaded: %s%s", err[0] ? "\n" : "", err);
        return rc;
    }
    if (app.ingest != NULL)
        rc = ingest_set_deny(app.ingest, (const char *const *)list.items, list.count);
    collector_deny_free(&list);
    return rc;
}

/* ---- the API provider --------------------------------------------------------------------- */

static size_t prov_agents(void *ud)
{
    ingest_stats_t s;

    (void)ud;
    if (app.ingest == NULL)
        return 0;
    ingest_get_stats(app.ingest, &s);
    return s.agents;
}

static void prov_counters(void *ud, api_counters_t *out)
{
    ingest_stats_t s;
    int i;

    (void)ud;
    if (app.ingest == NULL)
        return;
    ingest_get_stats(app.ingest, &s);
    out->snapshots_ingested = s.snapshots;
    for (i = 1; i < INGEST_REJECT_COUNT && out->n_rejects < API_MAX_REJECT_REASONS; i++) {
        out->rejects[out->n_rejects].label = ingest_reject_name(i);
        out->rejects[out->n_rejects++].value = s.rejects[i];
    }
    for (i = 0; i < INGEST_FAIL_COUNT && out->n_rejects < API_MAX_REJECT_REASONS; i++) {
        out->rejects[out->n_rejects].label = ingest_fail_name((ingest_fail_t)i);
        out->rejects[out->n_rejects++].value = s.fails[i];
    }
}

static void prov_host_alerts(void *ud, const char *host, api_host_alerts_t *out)
{
    alerts_host_t h;

    (void)ud;
    if (app.alerts == NULL)
        return;
    alerts_host_status(app.alerts, host, &h);
    out->active = h.active;
    if (h.silent)
        out->status = API_STATUS_SILENT;
    else if (h.worst == DETECT_CRITICAL)
        out->status = API_STATUS_CRITICAL;
    else if (h.worst == DETECT_WARNING)
        out->status = API_STATUS_WARNING;
}

/* One list_alerts call: the query runs on a work thread, the answer on the loop thread. */
typedef struct alerts_req_s {
    uv_work_t work;
    store_alert_query_t q;
    char *host;
    api_alerts_done_cb done;
    void *req;
    store_alert_list_t *list;
    int rc;
} alerts_req_t;

static void alerts_work(uv_work_t *w)
{
    alerts_req_t *r = w->data;

    uv_mutex_lock(&app.rd_mu);
    r->rc = 0;
    if (app.rd == NULL)
        r->rc = store_reader_open_for(app.store, &app.rd);
    if (r->rc == 0)
        r->rc = store_reader_alerts(app.rd, &r->q, &r->list);
    if (r->rc && r->rc != UV_ENOMEM) {
        /* A failed connection is not reused. */
        store_reader_close(app.rd);
        app.rd = NULL;
    }
    uv_mutex_unlock(&app.rd_mu);
}

static void alerts_after(uv_work_t *w, int status)
{
    alerts_req_t *r = w->data;
    api_alert_t *items = NULL;
    cJSON **ev = NULL;
    size_t i, n = 0;
    int rc = status ? status : r->rc;
    detect_kind_t kind;
    int k;

    if (rc == 0 && r->list->n) {
        n = r->list->n;
        items = calloc(n, sizeof(*items));
        ev = calloc(n, sizeof(*ev));
        if (items == NULL || ev == NULL)
            rc = UV_ENOMEM;
    }
    for (i = 0; rc == 0 && i < n; i++) {
        const store_alert_t *a = &r->list->alerts[i];
        kind = (detect_kind_t)0;
        for (k = DETECT_PRESSURE; k <= DETECT_SILENT; k++)
            if (strcmp(detect_kind_name((detect_kind_t)k), a->kind) == 0)
                kind = (detect_kind_t)k;
        ev[i] = cJSON_Parse(a->evidence);
        items[i].id = a->id;
        items[i].host = a->host;
        items[i].kind = api_alert_kind_name(kind);
        items[i].severity = strcmp(a->severity, "critical") == 0 ? DETECT_CRITICAL : DETECT_WARNING;
        items[i].active = a->active;
        items[i].raised_at_ms = a->raised_at_ms;
        items[i].resolved_at_ms = a->resolved_at_ms;
        items[i].last_notified_at_ms = a->last_notified_at_ms;
        items[i].summary = a->summary;
        items[i].evidence = ev[i];
    }
    if (rc)
        EPW_WARN(SUB, "alerts query failed: %s", epw_strerror(rc));
    r->done(r->req, rc, rc ? NULL : items, rc ? 0 : n);
    for (i = 0; ev != NULL && i < n; i++)
        cJSON_Delete(ev[i]);
    free(ev);
    free(items);
    store_alert_list_free(r->list);
    free(r->host);
    free(r);
}

static int prov_list_alerts(void *ud, const api_alert_query_t *q, api_alerts_done_cb done,
                            void *req)
{
    alerts_req_t *r;
    int rc;

    (void)ud;
    if (app.store == NULL)
        return EPW_E_CLOSED;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    r->q.active = q->active;
    r->q.since_ms = q->since_ms;
    r->q.limit = q->limit;
    if (q->host != NULL) {
        r->host = strdup(q->host);
        if (r->host == NULL) {
            free(r);
            return UV_ENOMEM;
        }
        r->q.host = r->host;
    }
    r->done = done;
    r->req = req;
    r->work.data = r;
    rc = uv_queue_work(&app.loop, &r->work, alerts_work, alerts_after);
    if (rc) {
        free(r->host);
        free(r);
    }
    return rc;
}

/* ---- shutdown ------------------------------------------------------------------------------ */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_ingest_closed(void *ud)
{
    (void)ud;
    app.ingest = NULL;
    epw_tls_config_destroy(app.tls);
    app.tls = NULL;
    alerts_destroy(app.alerts);
    app.alerts = NULL;
    EPW_INFO(SUB, "stopped");
}

static void on_sinks_closed(void *ud)
{
    (void)ud;
    app.sinks = NULL;
    if (app.ingest != NULL)
        ingest_close(app.ingest, on_ingest_closed, NULL);
    else
        on_ingest_closed(NULL);
}

static void on_api_closed(void *ud)
{
    (void)ud;
    app.api = NULL;
    if (app.alerts != NULL)
        alerts_stop(app.alerts);
    if (app.store != NULL) {
        /* Drains: the final Acks go out, pending alerts commit and reach the sinks. */
        store_close(app.store, NULL, NULL);
        app.store = NULL;
    }
    log_stats("final");
    if (app.alerts != NULL)
        alerts_set_sinks(app.alerts, NULL);
    if (app.sinks != NULL)
        sinks_close(app.sinks, on_sinks_closed);
    else
        on_sinks_closed(NULL);
}

/* Graceful stop (see the order above). Also undoes a start() that failed half way. */
static void shutdown_all(void)
{
    if (app.stopping)
        return;
    app.stopping = 1;
    EPW_INFO(SUB, "shutting down: committing what was accepted");
    if (app.handles) {
        close_handle((uv_handle_t *)&app.sig_int);
        close_handle((uv_handle_t *)&app.sig_term);
        close_handle((uv_handle_t *)&app.sig_hup);
        close_handle((uv_handle_t *)&app.stats_timer);
        close_handle((uv_handle_t *)&app.tick_timer);
    }
    if (app.ingest != NULL)
        ingest_stop(app.ingest);
    if (app.api != NULL)
        api_close(app.api, on_api_closed, NULL);
    else
        on_api_closed(NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (signum == SIGHUP) {
        EPW_INFO(SUB, "SIGHUP: reloading the deny list");
        apply_deny();
        return;
    }
    EPW_INFO(SUB, "%s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown_all();
}

/* Leftover arguments after the config parser: our flags, or a usage error. */
static int scan_flags(int argc, char **argv, int *help, int *print, int *version)
{
    int i;

    *help = *print = *version = 0;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            *help = 1;
        else if (strcmp(argv[i], "--print-config") == 0)
            *print = 1;
        else if (strcmp(argv[i], "--version") == 0)
            *version = 1;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            i++;
        else if (strncmp(argv[i], "--config=", 9) == 0)
            continue;
        else {
            fprintf(stderr, "epwatch-collector: unknown argument '%s' (see --help)\n", argv[i]);
            return EPW_E_USAGE;
        }
    }
    return 0;
}

/* ---- start-up ------------------------------------------------------------------------------ */

static int start_alerts(void)
{
    alerts_opts_t ao;
    store_reader_t *rd = NULL;
    int rc;

    rc = sinks_create(&app.loop, &app.conf.sinks, NULL, NULL, &app.sinks);
    if (rc) {
        EPW_ERROR(SUB, "alert sinks: %s", epw_strerror(rc));
        return rc;
    }
    rc = collector_conf_overrides(&app.conf, &app.ov, &app.n_ov);
    if (rc)
        return rc;
    memset(&ao, 0, sizeof(ao));
    ao.store = app.store;
    ao.sinks = app.sinks;
    ao.rules = &app.conf.rules;
    ao.overrides = app.ov;
    ao.n_overrides = app.n_ov;
    rc = alerts_create(&ao, &app.alerts);
    if (rc)
        return rc;
    rc = store_reader_open_for(app.store, &rd);
    if (rc == 0)
        rc = alerts_load(app.alerts, rd);
    store_reader_close(rd);
    if (rc)
        EPW_ERROR(SUB, "cannot read the active alerts from the database: %s", epw_strerror(rc));
    return rc;
}

static int start_api(void)
{
    api_opts_t o;
    int rc;

    if (app.conf.api_listen.host == NULL) {
        EPW_INFO(SUB, "operator API disabled (api_listen unset)");
        return 0;
    }
    memset(&o, 0, sizeof(o));
    o.addr = app.conf.api_listen.host[0] ? app.conf.api_listen.host : "0.0.0.0";
    o.port = app.conf.api_listen.port;
    o.ca_path = app.conf.api_ca ? app.conf.api_ca : app.conf.ca;
    o.cert_path = app.conf.api_cert ? app.conf.api_cert : app.conf.cert;
    o.key_path = app.conf.api_key ? app.conf.api_key : app.conf.key;
    o.tokens = (const char *const *)app.conf.api_tokens.items;
    o.n_tokens = app.conf.api_tokens.count;
    o.store = app.store;
    o.provider.agents_connected = prov_agents;
    o.provider.counters = prov_counters;
    o.provider.host_alerts = prov_host_alerts;
    o.provider.list_alerts = prov_list_alerts;
    rc = api_start(&app.loop, &o, &app.api);
    if (rc && !app.conf.api_listen_explicit && (rc == UV_EADDRINUSE || rc == UV_EACCES)) {
        /* The default address is taken (another collector on this host, a test): agents are
         * still served; an operator who wants the API sets api_listen (then this is fatal). */
        EPW_WARN(SUB, "operator API NOT started: the default api_listen %s:%u: %s (set api_listen)",
                 o.addr, (unsigned)o.port, epw_strerror(rc));
        return 0;
    }
    if (rc)
        EPW_ERROR(SUB, "operator API on %s:%u: %s", o.addr, (unsigned)o.port, epw_strerror(rc));
    else
        EPW_INFO(SUB, "operator API on %s:%u (%zu bearer tokens)", o.addr,
                 (unsigned)api_port(app.api), o.n_tokens);
    return rc;
}

static int start(void)
{
    store_options_t so;
    ingest_opts_t io;
    epw_tls_opts_t to;
    int rc;

    memset(&to, 0, sizeof(to));
    to.accept = EPW_TLS_PEER_AGENT;
    rc = epw_tls_config_create(EPW_TLS_SERVER, app.conf.ca, app.conf.cert, app.conf.key, &to,
                               &app.tls);
    if (rc) {
        EPW_ERROR(SUB, "TLS setup failed: %s", epw_strerror(rc));
        return rc;
    }

    memset(&so, 0, sizeof(so));
    so.target = app.conf.db;
    so.retention_ms = app.conf.retention_ms;
    so.retention_every_ms = app.conf.retention_every_ms;
    so.queue_max = (size_t)app.conf.queue_max;
    so.queue_max_bytes = (size_t)app.conf.queue_max_bytes;
    so.batch_max = (size_t)app.conf.batch_max;
    so.relaxed_sync = app.conf.relaxed_sync;
    so.keep_decoded = 1;
    so.done_cb = on_store_done;
    so.room_cb = on_store_room;
    rc = store_open(&app.loop, &so, &app.store);
    if (rc) {
        EPW_ERROR(SUB, "cannot open the database %s: %s", app.conf.db, epw_strerror(rc));
        return rc;
    }
    rc = start_alerts();
    if (rc)
        return rc;

    memset(&io, 0, sizeof(io));
    io.addr = app.conf.listen.host && app.conf.listen.host[0] ? app.conf.listen.host : "0.0.0.0";
    io.port = app.conf.listen.port;
    io.tls = app.tls;
    io.store = app.store;
    io.max_connections = (size_t)app.conf.max_connections;
    io.handshake_ms = app.conf.handshake_timeout_ms;
    io.idle_ms = app.conf.idle_timeout_ms;
    io.max_frame = (size_t)app.conf.max_frame;
    rc = ingest_start(&app.loop, &io, &app.ingest);
    if (rc) {
        EPW_ERROR(SUB, "cannot listen on %s:%u: %s", io.addr, (unsigned)io.port, epw_strerror(rc));
        return rc;
    }
    rc = apply_deny();
    if (rc)
        return rc;
    rc = start_api();
    if (rc)
        return rc;

    uv_signal_init(&app.loop, &app.sig_int);
    uv_signal_init(&app.loop, &app.sig_term);
    uv_signal_init(&app.loop, &app.sig_hup);
    uv_timer_init(&app.loop, &app.stats_timer);
    uv_timer_init(&app.loop, &app.tick_timer);
    app.handles = 1;
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_hup, on_signal, SIGHUP);
    uv_timer_start(&app.stats_timer, on_stats_timer, STATS_EVERY_MS, STATS_EVERY_MS);
    uv_timer_start(&app.tick_timer, on_tick_timer, TICK_EVERY_MS, TICK_EVERY_MS);
    EPW_INFO(SUB,
             "epwatch-collector %s: agents on %s:%u, database %s (%s sync), retention %llu ms, %s",
             EPW_VERSION, io.addr, (unsigned)ingest_port(app.ingest), app.conf.db,
             app.conf.relaxed_sync ? "relaxed" : "full", (unsigned long long)app.conf.retention_ms,
             epw_tls_library_version());
    return 0;
}

int main(int argc, char **argv)
{
    char err[8192];
    int help, print, version, rest = argc, exit_code = 0, check, i, rc;

    signal(SIGPIPE, SIG_IGN);
    /* --help and --print-config must work without the required keys. */
    check = 1;
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
            strcmp(argv[i], "--print-config") == 0 || strcmp(argv[i], "--version") == 0)
            check = 0;
    rc = collector_conf_load(&app.conf, argc, argv, &rest, check, err, sizeof(err));
    if (rc == 0)
        rc = scan_flags(rest, argv, &help, &print, &version);
    if (rc) {
        if (rc != EPW_E_USAGE)
            fprintf(stderr, "epwatch-collector: configuration error:\n%s", err);
        collector_conf_free(&app.conf);
        return 2;
    }
    if (help || version || print) {
        if (help)
            usage(stdout);
        else if (version)
            printf("epwatch-collector %s\n", EPW_VERSION);
        else {
            char *text = collector_conf_format(&app.conf);
            fputs(text ? text : "", stdout);
            free(text);
        }
        collector_conf_free(&app.conf);
        return 0;
    }
    epw_log_set_level((epw_log_level_t)app.conf.log_level);

    rc = uv_loop_init(&app.loop);
    if (rc == 0) {
        rc = uv_mutex_init(&app.rd_mu);
        if (rc)
            uv_loop_close(&app.loop);
    }
    if (rc) {
        fprintf(stderr, "epwatch-collector: %s\n", uv_strerror(rc));
        collector_conf_free(&app.conf);
        return 1;
    }
    rc = start();
    if (rc) {
        exit_code = 1;
        shutdown_all(); /* closes only what start() made */
    }
    uv_run(&app.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&app.loop);
    if (rc) {
        EPW_ERROR(SUB, "loop still has handles at exit: %s", uv_strerror(rc));
        exit_code = 1;
    }
    store_reader_close(app.rd);
    uv_mutex_destroy(&app.rd_mu);
    free(app.ov);
    collector_conf_free(&app.conf);
    return exit_code;
}
