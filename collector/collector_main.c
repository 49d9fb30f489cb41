/* epwatch-collector: accepts agents over mutual TLS and stores their snapshots in SQLite. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "collector_conf.h"
#include "epw_err.h"
#include "epw_log.h"
#include "epw_tls.h"
#include "ingest.h"
#include "store.h"

#define SUB            "collector"
#define STATS_EVERY_MS (5 * 60 * 1000)

#ifndef EPW_VERSION
#define EPW_VERSION "0"
#endif

/* Everything the program holds; one instance, loop thread only. */
typedef struct app_s {
    uv_loop_t loop;
    collector_conf_t conf;
    epw_tls_config_t *tls;
    store_t *store;
    ingest_t *ingest;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t stats_timer;
    int stopping;
} app_t;

static app_t app;

static void usage(FILE *f)
{
    char *help = epw_config_help(collector_conf_table());

    fprintf(f,
            "Usage: epwatch-collector [--config FILE] [--KEY VALUE]... [--print-config]\n"
            "       epwatch-collector --help | --version\n\n"
            "Accepts epwatch agents over mutual TLS and stores their snapshots in SQLite\n"
            "(schema: collector/store_sqlite.c, README \"Running the collector\").\n"
            "Every key can be set in the INI file given by --config or as --KEY VALUE\n"
            "(command line wins). SIGINT/SIGTERM: graceful stop; SIGHUP: re-read deny_file.\n\n"
            "Keys:\n%s",
            help ? help : "");
    free(help);
}

static void log_stats(const char *when)
{
    ingest_stats_t s;
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
}

static void on_stats_timer(uv_timer_t *t)
{
    (void)t;
    log_stats("stats");
}

/* Store callbacks, forwarded to ingest (the only submitter here). */
static void on_store_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    (void)st;
    (void)ud;
    if (app.ingest != NULL)
        ingest_store_done(app.ingest, r, n);
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

static void on_ingest_closed(void *ud)
{
    (void)ud;
    app.ingest = NULL;
    epw_tls_config_destroy(app.tls);
    app.tls = NULL;
    EPW_INFO(SUB, "stopped");
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Graceful stop: no new agents, no more reading; everything accepted commits and is acked. */
static void shutdown_all(void)
{
    if (app.stopping)
        return;
    app.stopping = 1;
    EPW_INFO(SUB, "shutting down: committing what was accepted");
    close_handle((uv_handle_t *)&app.sig_int);
    close_handle((uv_handle_t *)&app.sig_term);
    close_handle((uv_handle_t *)&app.sig_hup);
    close_handle((uv_handle_t *)&app.stats_timer);
    if (app.ingest != NULL)
        ingest_stop(app.ingest);
    if (app.store != NULL) {
        store_close(app.store, NULL, NULL); /* drains; the final Acks go out from here */
        app.store = NULL;
    }
    log_stats("final");
    if (app.ingest != NULL)
        ingest_close(app.ingest, on_ingest_closed, NULL);
    else {
        epw_tls_config_destroy(app.tls);
        app.tls = NULL;
    }
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
    so.done_cb = on_store_done;
    so.room_cb = on_store_room;
    rc = store_open(&app.loop, &so, &app.store);
    if (rc) {
        EPW_ERROR(SUB, "cannot open the database %s: %s", app.conf.db, epw_strerror(rc));
        return rc;
    }

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
    if (rc)
        return rc;
    rc = apply_deny();
    if (rc)
        return rc;

    uv_signal_init(&app.loop, &app.sig_int);
    uv_signal_init(&app.loop, &app.sig_term);
    uv_signal_init(&app.loop, &app.sig_hup);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_hup, on_signal, SIGHUP);
    uv_timer_init(&app.loop, &app.stats_timer);
    uv_timer_start(&app.stats_timer, on_stats_timer, STATS_EVERY_MS, STATS_EVERY_MS);
    EPW_INFO(SUB, "epwatch-collector %s: database %s (%s sync), retention %llu ms, %s", EPW_VERSION,
             app.conf.db, app.conf.relaxed_sync ? "relaxed" : "full",
             (unsigned long long)app.conf.retention_ms, epw_tls_library_version());
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
    rc = collector_conf_load(&app.conf, argc, argv, &rest, 0, err, sizeof(err));
    if (rc == 0)
        rc = scan_flags(rest, argv, &help, &print, &version);
    if (rc == 0 && check)
        rc = epw_config_check(collector_conf_table(), &app.conf, err, sizeof(err));
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
            char *text = epw_config_format(collector_conf_table(), &app.conf);
            fputs(text ? text : "", stdout);
            free(text);
        }
        collector_conf_free(&app.conf);
        return 0;
    }
    epw_log_set_level((epw_log_level_t)app.conf.log_level);

    rc = uv_loop_init(&app.loop);
    if (rc) {
        fprintf(stderr, "epwatch-collector: %s\n", uv_strerror(rc));
        collector_conf_free(&app.conf);
        return 1;
    }
    rc = start();
    if (rc) {
        exit_code = 1;
        if (!app.stopping) {
            /* Handles not yet initialised must not be closed: only close what start() made. */
            app.stopping = 1;
            if (app.ingest != NULL)
                ingest_stop(app.ingest);
            if (app.store != NULL)
                store_close(app.store, NULL, NULL);
            app.store = NULL;
            if (app.ingest != NULL)
                ingest_close(app.ingest, on_ingest_closed, NULL);
            else
                epw_tls_config_destroy(app.tls);
        }
    }
    uv_run(&app.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&app.loop);
    if (rc) {
        EPW_ERROR(SUB, "loop still has handles at exit: %s", uv_strerror(rc));
        exit_code = 1;
    }
    collector_conf_free(&app.conf);
    return exit_code;
}
