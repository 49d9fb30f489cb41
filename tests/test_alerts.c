/* test_alerts: the collector's alert bookkeeping on a real loop and SQLite store
 * (collector/alerts). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <uv.h>

#include "alerts.h"
#include "collector_conf.h"
#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "ingest.h"
#include "store.h"
#include "support/epw_testsnap.h"

#define T0  1700000000000LL
#define SEC 1000LL

static char dir[] = "/tmp/epw-alerts-XXXXXX";
static int64_t fake_now = T0;

static int64_t clock_now(void)
{
    return fake_now;
}

/* ---- fixture: loop + store + alerts, results forwarded as the collector does ---------------- */

typedef struct fx_s {
    uv_loop_t loop;
    store_t *store;
    alerts_t *al;
    sinks_t *sinks;
    char db[300];
    uint64_t snapshots_done; /* SNAPSHOT results seen */
    uint64_t alerts_done;    /* ALERT results seen */
    uint64_t pause_at;       /* pause the writer when this snapshot seq is done (0: never) */
    int sinks_closed;
} fx_t;

static void on_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    fx_t *fx = ud;
    size_t i;

    (void)st;
    for (i = 0; i < n; i++) {
        if (r[i].op == STORE_OP_SNAPSHOT)
            fx->snapshots_done++;
        /* Before alerts_store_done submits what this result raises. */
        if (r[i].op == STORE_OP_SNAPSHOT && fx->pause_at && r[i].seq == fx->pause_at)
            store_set_paused(fx->store, 1);
        if (r[i].op == STORE_OP_ALERT) {
            assert_int_equal(r[i].outcome, STORE_NEW);
            fx->alerts_done++;
        }
    }
    if (fx->al)
        alerts_store_done(fx->al, r, n);
}

static void fx_open(fx_t *fx, const char *name, const detect_rules_t *rules, const char *exec_cmd)
{
    store_options_t so;
    alerts_opts_t ao;
    store_reader_t *rd = NULL;

    memset(fx, 0, sizeof(*fx));
    snprintf(fx->db, sizeof(fx->db), "%s/%s.db", dir, name);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    memset(&so, 0, sizeof(so));
    so.target = fx->db;
    so.keep_decoded = 1;
    so.relaxed_sync = 1;
    so.done_cb = on_done;
    so.ud = fx;
    assert_int_equal(store_open(&fx->loop, &so, &fx->store), 0);
    if (exec_cmd) {
        sinks_conf_t sc;
        memset(&sc, 0, sizeof(sc));
        assert_int_equal(epw_config_defaults(sinks_conf_keys(), &sc, NULL, 0), 0);
        sc.exec_command = strdup(exec_cmd);
        assert_int_equal(sinks_create(&fx->loop, &sc, NULL, fx, &fx->sinks), 0);
        epw_config_free(sinks_conf_keys(), &sc);
    }
    memset(&ao, 0, sizeof(ao));
    ao.store = fx->store;
    ao.sinks = fx->sinks;
    ao.rules = rules;
    ao.now_ms = clock_now;
    assert_int_equal(alerts_create(&ao, &fx->al), 0);
    assert_int_equal(store_reader_open_for(fx->store, &rd), 0);
    assert_int_equal(alerts_load(fx->al, rd), 0);
    store_reader_close(rd);
}

static void on_sinks_closed(void *ud)
{
    ((fx_t *)ud)->sinks_closed = 1;
}

/* The collector's order: stop evaluating, drain the store (pending alerts reach the sinks), then
 * close the sinks (deliveries in progress finish within close_grace). */
static void fx_close(fx_t *fx)
{
    alerts_stop(fx->al);
    store_close(fx->store, NULL, NULL);
    alerts_set_sinks(fx->al, NULL);
    if (fx->sinks)
        sinks_close(fx->sinks, on_sinks_closed);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    if (fx->sinks)
        assert_true(fx->sinks_closed);
    alerts_destroy(fx->al);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

/* Runs the loop until *counter >= want (bounded: 5 s). */
static void on_guard(uv_timer_t *t)
{
    (void)t;
}

static void run_until(fx_t *fx, const uint64_t *counter, uint64_t want)
{
    uv_timer_t guard;
    uint64_t start = uv_now(&fx->loop);

    uv_timer_init(&fx->loop, &guard);
    uv_timer_start(&guard, on_guard, 10, 10);
    while (*counter < want && uv_now(&fx->loop) - start < 5000)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_true(*counter >= want);
}

static Epw__Snapshot *mk_snap(uint64_t seq, int64_t t, double pressure)
{
    Epw__Snapshot *s = epw_snap_new();

    assert_non_null(s);
    s->seq = seq;
    s->taken_at_ms = t;
    s->hostname = epw_snap_strdup("web01");
    s->pressure_pct = pressure;
    s->pressure_source = epw_snap_strdup("destination 127.0.0.1 -> 127.0.0.1:8080");
    epw_testsnap_destination(s, "127.0.0.1", "127.0.0.1", 8080, (uint32_t)(pressure / 2), 50,
                             pressure);
    epw_testsnap_process(s, 4242, "python3", (uint32_t)(pressure / 2), 0);
    return s;
}

/* Submits one snapshot of web01 as an agent would, and waits for its result. */
static void feed(fx_t *fx, uint64_t seq, int64_t t, double pressure)
{
    Epw__Snapshot *s = mk_snap(seq, t, pressure);
    size_t len;
    uint8_t *buf = epw_testsnap_pack(s, &len);
    uint64_t want = fx->snapshots_done + 1;

    assert_int_equal(store_submit_snapshot(fx->store, INGEST_TAG_FOREIGN | seq, "web01", buf, len),
                     0);
    free(buf);
    epw_snap_free(s);
    run_until(fx, &fx->snapshots_done, want);
}

static store_alert_list_t *read_alerts(fx_t *fx, int active)
{
    store_reader_t *rd = NULL;
    store_alert_list_t *l = NULL;
    store_alert_query_t q = {active, NULL, 0, 0};

    assert_int_equal(store_reader_open_for(fx->store, &rd), 0);
    assert_int_equal(store_reader_alerts(rd, &q, &l), 0);
    store_reader_close(rd);
    return l;
}

static void fast_rules(detect_rules_t *r)
{
    detect_rules_default(r);
    r->trend_horizon_ms = 0; /* only the threshold rule in these series */
    r->leak_min_growth = 0;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

/* Raised after `hits` samples, stored with evidence, resolved once, visible to the host view. */
static void test_raise_store_resolve(void **state)
{
    detect_rules_t r;
    store_alert_list_t *l;
    alerts_host_t hs;
    alerts_stats_t st;
    fx_t fx;

    (void)state;
    fast_rules(&r);
    fake_now = T0;
    fx_open(&fx, "raise", &r, NULL);
    feed(&fx, 1, T0, 95);
    alerts_host_status(fx.al, "web01", &hs);
    assert_int_equal(hs.active, 0); /* one sample: hits = 2 */
    feed(&fx, 2, T0 + SEC, 96);
    alerts_host_status(fx.al, "web01", &hs);
    assert_int_equal(hs.active, 1);
    assert_int_equal(hs.worst, DETECT_CRITICAL);
    assert_false(hs.silent);
    run_until(&fx, &fx.alerts_done, 1);

    l = read_alerts(&fx, 1);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->alerts[0].host, "web01");
    assert_string_equal(l->alerts[0].kind, "pressure");
    assert_string_equal(l->alerts[0].severity, "critical");
    assert_int_equal(l->alerts[0].active, 1);
    assert_int_equal(l->alerts[0].resolved_at_ms, 0);
    assert_non_null(strstr(l->alerts[0].evidence, "\"remote_port\":8080"));
    assert_non_null(strstr(l->alerts[0].evidence, "\"python3\""));
    store_alert_list_free(l);

    feed(&fx, 3, T0 + 2 * SEC, 97); /* still active: no new row, no new transition */
    fake_now = T0 + 3 * SEC;
    feed(&fx, 4, T0 + 3 * SEC, 10);
    run_until(&fx, &fx.alerts_done, 2);
    alerts_host_status(fx.al, "web01", &hs);
    assert_int_equal(hs.active, 0);
    l = read_alerts(&fx, -1);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->alerts[0].active, 0);
    assert_int_equal(l->alerts[0].resolved_at_ms, T0 + 3 * SEC);
    /* The raise's evidence is kept; the resolution's figures are the latest. */
    assert_non_null(strstr(l->alerts[0].evidence, "\"value_pct\":96"));
    assert_non_null(strstr(l->alerts[0].last_evidence, "\"value_pct\":10"));
    store_alert_list_free(l);

    alerts_get_stats(fx.al, &st);
    assert_int_equal(st.raised, 1);
    assert_int_equal(st.resolved, 1);
    assert_int_equal(st.transitions, 2);
    assert_int_equal(st.evaluated, 4);
    assert_int_equal(st.store_errors, 0);
    fx_close(&fx);
}

/* A resent snapshot (same seq) is stored once and evaluated once. */
static void test_duplicate_not_evaluated(void **state)
{
    detect_rules_t r;
    alerts_stats_t st;
    fx_t fx;

    (void)state;
    fast_rules(&r);
    r.hits = 2;
    fx_open(&fx, "dup", &r, NULL);
    feed(&fx, 1, T0, 95);
    feed(&fx, 1, T0, 95); /* the resend must not count as the second hit */
    alerts_get_stats(fx.al, &st);
    assert_int_equal(st.evaluated, 1);
    assert_int_equal(st.raised, 0);
    feed(&fx, 2, T0 + SEC, 95);
    alerts_get_stats(fx.al, &st);
    assert_int_equal(st.evaluated, 2);
    assert_int_equal(st.raised, 1);
    run_until(&fx, &fx.alerts_done, 1);
    fx_close(&fx);
}

/* After a restart the active episode is adopted: not raised again, resolved under its key. */
static void test_adopt_after_restart(void **state)
{
    detect_rules_t r;
    store_alert_list_t *l;
    alerts_stats_t st;
    alerts_host_t hs;
    char key[256];
    fx_t fx;

    (void)state;
    fast_rules(&r);
    fx_open(&fx, "adopt", &r, NULL);
    feed(&fx, 1, T0, 95);
    feed(&fx, 2, T0 + SEC, 95);
    run_until(&fx, &fx.alerts_done, 1);
    fx_close(&fx);

    fx_open(&fx, "adopt", &r, NULL); /* the same database */
    alerts_get_stats(fx.al, &st);
    assert_int_equal(st.adopted, 1);
    alerts_host_status(fx.al, "web01", &hs);
    assert_int_equal(hs.active, 1);
    assert_int_equal(hs.worst, DETECT_CRITICAL);
    feed(&fx, 3, T0 + 2 * SEC, 95);
    feed(&fx, 4, T0 + 3 * SEC, 95);
    alerts_get_stats(fx.al, &st);
    assert_int_equal(st.raised, 0);
    l = read_alerts(&fx, -1);
    assert_int_equal(l->n, 1);
    snprintf(key, sizeof(key), "%s", l->alerts[0].key);
    store_alert_list_free(l);
    feed(&fx, 5, T0 + 4 * SEC, 5);
    run_until(&fx, &fx.alerts_done, 1);
    l = read_alerts(&fx, -1);
    assert_int_equal(l->n, 1); /* one episode, one row */
    assert_string_equal(l->alerts[0].key, key);
    assert_int_equal(l->alerts[0].active, 0);
    store_alert_list_free(l);
    fx_close(&fx);
}

/* A stored active alert of a kind this build does not know is resolved at start-up. */
static void test_unadoptable_resolved(void **state)
{
    detect_rules_t r;
    store_alert_list_t *l;
    store_alert_t row;
    alerts_stats_t st;
    fx_t fx;

    (void)state;
    fast_rules(&r);
    fx_open(&fx, "unadopt", &r, NULL);
    memset(&row, 0, sizeof(row));
    row.host = "web01";
    row.netns = "";
    row.kind = "future_kind";
    row.subject = "";
    row.key = "web01/future_kind@1";
    row.severity = "warning";
    row.active = 1;
    row.raised_at_ms = row.last_notified_at_ms = T0;
    row.summary = "x";
    row.evidence = row.last_evidence = "{\"a\":1}";
    assert_int_equal(store_submit_alert(fx.store, INGEST_TAG_FOREIGN, &row), 0);
    run_until(&fx, &fx.alerts_done, 1);
    fx_close(&fx);

    fx_open(&fx, "unadopt", &r, NULL);
    alerts_get_stats(fx.al, &st);
    assert_int_equal(st.adopted, 0);
    assert_int_equal(st.resolved, 1);
    run_until(&fx, &fx.alerts_done, 1);
    l = read_alerts(&fx, -1);
    assert_int_equal(l->n, 1);
    assert_int_equal(l->alerts[0].active, 0);
    assert_string_equal(l->alerts[0].kind, "future_kind"); /* the row keeps its kind */
    assert_non_null(strstr(l->alerts[0].last_evidence, "reason"));
    store_alert_list_free(l);
    fx_close(&fx);
}

/* The Hello's interval drives the silent rule; the tick raises it, the next snapshot resolves. */
static void test_silent_from_hello_interval(void **state)
{
    detect_rules_t r;
    store_hello_t h;
    alerts_host_t hs;
    uint64_t want;
    fx_t fx;

    (void)state;
    fast_rules(&r);
    r.silent_factor = 3;
    fake_now = T0;
    fx_open(&fx, "silent", &r, NULL);
    memset(&h, 0, sizeof(h));
    h.identity = "web01";
    h.agent_version = "1";
    h.os = "linux";
    h.interval_ms = 1000;
    assert_int_equal(store_submit_hello(fx.store, 7, &h), 0); /* an ingest tag: its Hello */
    feed(&fx, 1, T0, 5);
    fake_now = T0 + 2500;
    assert_int_equal(alerts_tick(fx.al), 0);
    alerts_host_status(fx.al, "web01", &hs);
    assert_false(hs.silent);
    fake_now = T0 + 3500; /* > 3 x 1 s (the default interval would be 60 s) */
    assert_int_equal(alerts_tick(fx.al), 0);
    alerts_host_status(fx.al, "web01", &hs);
    assert_true(hs.silent);
    assert_int_equal(hs.active, 1);
    want = fx.alerts_done + 1;
    run_until(&fx, &fx.alerts_done, want);
    feed(&fx, 2, T0 + 3600, 5);
    alerts_host_status(fx.al, "web01", &hs);
    assert_false(hs.silent);
    assert_int_equal(hs.active, 0);
    run_until(&fx, &fx.alerts_done, want + 1);
    fx_close(&fx);
}

/* The sinks get the transition only after the store committed it. */
static void test_dispatch_after_commit(void **state)
{
    detect_rules_t r;
    char out[200], cmd[600], buf[4096];
    FILE *f;
    size_t n = 0;
    int i;
    fx_t fx;

    (void)state;
    fast_rules(&r);
    snprintf(out, sizeof(out), "%s/exec.out", dir);
    snprintf(cmd, sizeof(cmd), "cat >> '%s'; echo >> '%s'", out, out);
    fx_open(&fx, "sinks", &r, cmd);
    fx.pause_at = 2;
    feed(&fx, 1, T0, 99);
    feed(&fx, 2, T0 + SEC, 99); /* raises; the writer is paused before the alert is queued */
    for (i = 0; i < 20; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
    assert_int_equal(fx.alerts_done, 0);
    assert_int_equal(access(out, F_OK), -1); /* not committed: not sent */
    store_set_paused(fx.store, 0);
    run_until(&fx, &fx.alerts_done, 1);
    fx_close(&fx); /* sinks_close lets the delivery finish */
    f = fopen(out, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"transition\":\"raised\""));
    assert_non_null(strstr(buf, "\"host\":\"web01\""));
}

/* ---- configuration ----------------------------------------------------------------------------
 */

static int load_conf(collector_conf_t *c, const char *text, char **extra, int nextra, char *err,
                     size_t errlen)
{
    char path[300], a0[] = "epwatch-collector", a1[] = "--config";
    char *argv[16];
    int argc = 0, rest, i;
    FILE *f;

    snprintf(path, sizeof(path), "%s/c.ini", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    argv[argc++] = a0;
    argv[argc++] = a1;
    argv[argc++] = path;
    for (i = 0; i < nextra; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    memset(c, 0, sizeof(*c));
    return collector_conf_load(c, argc, argv, &rest, 1, err, errlen);
}

static void test_conf_rules_and_overrides(void **state)
{
    collector_conf_t c;
    detect_override_t *ov = NULL;
    size_t n = 0;
    char err[2048] = "";
    char o1[] = "--alerts.override.web.hosts", o2[] = "web-*", o3[] = "--alerts.override.web.hits",
         o4[] = "1", o5[] = "--api-listen", o6[] = "off";
    char *extra[] = {o1, o2, o3, o4, o5, o6};

    (void)state;
    assert_int_equal(
        load_conf(&c,
                  "ca = a\ncert = b\nkey = c\napi_tokens = t1, t2\n"
                  "[alerts]\nwarning = 60\nhits = 3\n"
                  "[alerts.override.db]\nhosts = db-*, PG?\ncritical = 80\n"
                  "[sink.webhook]\nurl = http://127.0.0.1:9/x\nmin_severity = critical\n",
                  extra, 6, err, sizeof(err)),
        0);
    assert_int_equal(c.rules.warning_pct, 60);
    assert_int_equal(c.rules.hits, 3);
    assert_int_equal(c.rules.critical_pct, 90);
    assert_null(c.api_listen.host); /* off */
    assert_true(c.api_listen_explicit);
    assert_int_equal(c.api_tokens.count, 2);
    assert_string_equal(c.sinks.webhook_url, "http://127.0.0.1:9/x");
    assert_int_equal(c.sinks.webhook_min_severity, 1);
    assert_int_equal(c.n_overrides, 2);
    assert_int_equal(collector_conf_overrides(&c, &ov, &n), 0);
    assert_int_equal(n, 3);
    /* db: critical from its section, the rest inherited from [alerts]. */
    assert_ptr_equal(detect_rules_for_host(ov, n, "db-1", &c.rules), &ov[0].rules);
    assert_int_equal(ov[0].rules.critical_pct, 80);
    assert_int_equal(ov[0].rules.warning_pct, 60);
    assert_int_equal(ov[0].rules.hits, 3);
    assert_int_equal(detect_rules_for_host(ov, n, "pg1", &c.rules)->critical_pct, 80);
    /* web: from the command line only. */
    assert_int_equal(detect_rules_for_host(ov, n, "web-7", &c.rules)->hits, 1);
    assert_ptr_equal(detect_rules_for_host(ov, n, "app1", &c.rules), &c.rules);
    free(ov);
    collector_conf_free(&c);

    /* Defaults: the API listens on 7444. */
    assert_int_equal(load_conf(&c, "ca = a\ncert = b\nkey = c\n", NULL, 0, err, sizeof(err)), 0);
    assert_string_equal(c.api_listen.host, "0.0.0.0");
    assert_int_equal(c.api_listen.port, 7444);
    assert_false(c.api_listen_explicit); /* defaulted: a busy port is only a warning */
    assert_int_equal(c.n_overrides, 0);
    collector_conf_free(&c);
}

static void test_conf_errors_name_file_line_key(void **state)
{
    collector_conf_t c;
    char err[2048] = "";

    (void)state;
    assert_int_equal(load_conf(&c,
                               "ca = a\ncert = b\nkey = c\n[alerts.override.db]\nhosts = db-*\n"
                               "critical = lots\n[alerts]\nhits = 0\n",
                               NULL, 0, err, sizeof(err)),
                     EPW_E_CONFIG);
    assert_non_null(strstr(err, "c.ini:6: key 'alerts.override.db.critical'"));
    assert_non_null(strstr(err, "c.ini:8: key 'alerts.hits'"));
    collector_conf_free(&c);

    err[0] = '\0';
    assert_int_equal(load_conf(&c, "ca = a\ncert = b\nkey = c\n[alerts.override.x]\nwarning = 5\n",
                               NULL, 0, err, sizeof(err)),
                     EPW_E_CONFIG);
    assert_non_null(strstr(err, "alerts.override.x.hosts"));
    collector_conf_free(&c);

    err[0] = '\0';
    assert_int_equal(load_conf(&c, "ca = a\ncert = b\nkey = c\n[alerts]\nwarning = 95\n", NULL, 0,
                               err, sizeof(err)),
                     EPW_E_CONFIG);
    assert_non_null(strstr(err, "[alerts]"));
    collector_conf_free(&c);
}

static int group_setup(void **state)
{
    (void)state;
    epw_log_set_level(getenv("EPW_TEST_DEBUG") ? EPW_LOG_DEBUG : EPW_LOG_ERROR);
    return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raise_store_resolve),
        cmocka_unit_test(test_duplicate_not_evaluated),
        cmocka_unit_test(test_adopt_after_restart),
        cmocka_unit_test(test_unadoptable_resolved),
        cmocka_unit_test(test_silent_from_hello_interval),
        cmocka_unit_test(test_dispatch_after_commit),
        cmocka_unit_test(test_conf_rules_and_overrides),
        cmocka_unit_test(test_conf_errors_name_file_line_key),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
