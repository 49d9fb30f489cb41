/* test_detect: alert rules on synthetic snapshot series with known answers (collector/detect). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "detect.h"
#include "epw_config.h"
#include "epw_err.h"
#include "epw_snap.h"
#include "support/epw_testsnap.h"

#define T0     1700000000000LL /* 2023-11-14T22:13:20Z */
#define SEC    1000LL
#define MINUTE 60000LL

/* ---- snapshot builders ---- */

static Epw__Snapshot *snap_at(int64_t t, double pressure)
{
    Epw__Snapshot *s = epw_snap_new();

    assert_non_null(s);
    s->taken_at_ms = t;
    s->hostname = epw_snap_strdup("web01");
    s->pressure_pct = pressure;
    s->pressure_source = epw_snap_strdup("tcp host-wide");
    return s;
}

static void add_proc(Epw__Snapshot *s, uint32_t pid, const char *name, uint32_t ports)
{
    epw_testsnap_process(s, pid, name, ports, 0);
}

static void add_other(Epw__Snapshot *s, uint32_t ports)
{
    epw_testsnap_process(s, 0, "other", ports, true);
}

static void add_host(Epw__Snapshot *s, Epw__Protocol proto, double pct)
{
    epw_testsnap_host(s, proto, 0, 0, pct);
}

static void add_dest(Epw__Snapshot *s, const char *remote, uint32_t port, uint32_t conns,
                     double pct)
{
    epw_testsnap_destination(s, "10.0.0.5", remote, port, conns, 0, pct);
}

/* Ingests `s` (freed here) at collector time `now`; `out` holds only this call's transitions. */
static size_t feed_at(detect_state_t *st, Epw__Snapshot *s, int64_t now, detect_alerts_t *out)
{
    detect_alerts_free(out);
    assert_int_equal(detect_ingest(st, s, now, out), 0);
    epw_snap_free(s);
    return out->count;
}

static size_t feed(detect_state_t *st, Epw__Snapshot *s, detect_alerts_t *out)
{
    return feed_at(st, s, s->taken_at_ms, out);
}

static size_t tick(detect_state_t *st, int64_t now, detect_alerts_t *out)
{
    detect_alerts_free(out);
    assert_int_equal(detect_tick(st, now, out), 0);
    return out->count;
}

static detect_state_t *mkstate(const detect_rules_t *r)
{
    detect_state_t *st = NULL;
    detect_rules_t def;

    if (!r) {
        detect_rules_default(&def);
        r = &def;
    }
    assert_int_equal(detect_state_create("web01", r, T0, &st), 0);
    assert_non_null(st);
    return st;
}

static double evnum(const detect_alert_t *a, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(a->evidence, k);

    if (!cJSON_IsNumber(j))
        fail_msg("evidence has no number '%s'", k);
    return cJSON_GetNumberValue(j);
}

static const char *evstr(const detect_alert_t *a, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(a->evidence, k);

    if (!cJSON_IsString(j))
        fail_msg("evidence has no string '%s'", k);
    return cJSON_GetStringValue(j);
}

static const cJSON *evobj(const detect_alert_t *a, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(a->evidence, k);

    if (!cJSON_IsObject(j) && !cJSON_IsArray(j))
        fail_msg("evidence has no object '%s'", k);
    return j;
}

static double subnum(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);

    if (!cJSON_IsNumber(j))
        fail_msg("no number '%s'", k);
    return cJSON_GetNumberValue(j);
}

static size_t count_kind(const detect_alerts_t *out, detect_kind_t kind)
{
    size_t i, n = 0;

    for (i = 0; i < out->count; i++)
        n += out->items[i].kind == kind;
    return n;
}

static const detect_alert_t *find_kind(const detect_alerts_t *out, detect_kind_t kind)
{
    size_t i;

    for (i = 0; i < out->count; i++) {
        if (out->items[i].kind == kind)
            return &out->items[i];
    }
    return NULL;
}

/* ---- rule 1: thresholds ---- */

/* Exhaustion at sample k is critical at sample k+1 (hits = 2); the evidence names the figures. */
static void test_threshold_hits_raise(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    Epw__Snapshot *s;
    const detect_alert_t *a;
    const cJSON *tp, *dest;
    char key[64];

    (void)state;
    assert_int_equal(feed(st, snap_at(T0, 50), &out), 0);
    s = snap_at(T0 + MINUTE, 100);
    add_proc(s, 4242, "java.exe", 15000);
    assert_int_equal(feed(st, s, &out), 0); /* first hit */
    s = snap_at(T0 + 2 * MINUTE, 100);
    add_proc(s, 7, "svc.exe", 30);
    add_proc(s, 4242, "java.exe", 16000);
    add_other(s, 99999);
    add_dest(s, "10.0.0.9", 1433, 100, 40.0);
    add_dest(s, "10.0.0.8", 443, 9000, 97.5);
    assert_int_equal(feed(st, s, &out), 1);
    a = &out.items[0];
    assert_int_equal(a->transition, DETECT_RAISED);
    assert_int_equal(a->kind, DETECT_PRESSURE);
    assert_int_equal(a->severity, DETECT_CRITICAL);
    assert_int_equal(a->prev_severity, DETECT_CRITICAL);
    assert_string_equal(a->host, "web01");
    assert_string_equal(a->subject, "");
    snprintf(key, sizeof key, "web01/pressure@%lld", (long long)(T0 + 2 * MINUTE));
    assert_string_equal(a->key, key);
    assert_int_equal(a->started_ms, T0 + 2 * MINUTE);
    assert_int_equal(a->at_ms, T0 + 2 * MINUTE);
    assert_int_equal(a->data_ms, T0 + 2 * MINUTE);
    assert_true(evnum(a, "value_pct") == 100.0);
    assert_true(evnum(a, "threshold_pct") == 90.0);
    assert_true(evnum(a, "hysteresis_pct") == 5.0);
    assert_true(evnum(a, "leave_below_pct") == 85.0);
    assert_true(evnum(a, "hits") == 2.0);
    assert_string_equal(evstr(a, "pressure_source"), "tcp host-wide");
    tp = evobj(a, "top_process"); /* the biggest real process, not the "other" bucket */
    assert_true(subnum(tp, "pid") == 4242);
    assert_true(subnum(tp, "ports") == 16000);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(tp, "name")), "java.exe");
    dest = evobj(a, "destination");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(dest, "remote_address")),
                        "10.0.0.8");
    assert_true(subnum(dest, "remote_port") == 443);
    assert_non_null(strstr(a->summary, "critical 90%"));
    assert_non_null(strstr(a->summary, "java.exe"));
    /* Never raised twice for the same episode. */
    assert_int_equal(feed(st, snap_at(T0 + 3 * MINUTE, 100), &out), 0);
    assert_int_equal(detect_active_count(st), 1);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* Single spikes never reach `hits`. */
static void test_threshold_spikes_do_not_raise(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    const double v[] = {50, 95, 50, 95, 60, 72, 40, 99, 10};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(feed(st, snap_at(T0 + (int64_t)i * MINUTE, v[i]), &out), 0);
    assert_int_equal(detect_active_count(st), 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* Critical at 90 with hysteresis 5: dips down to 85 keep it critical; 84.9 de-escalates to warning;
 * warning survives down to 65 and resolves at 64.9. One key throughout. */
static void test_threshold_hysteresis(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    const double noise[] = {88, 92, 89, 86, 91, 87, 90, 85, 89.5, 92};
    const double warn_noise[] = {80, 70, 66, 65, 69, 72};
    int64_t t = T0;
    char key[64];
    size_t i;

    (void)state;
    assert_int_equal(feed(st, snap_at(t, 91), &out), 0);
    t += MINUTE;
    assert_int_equal(feed(st, snap_at(t, 92), &out), 1);
    assert_int_equal(out.items[0].severity, DETECT_CRITICAL);
    snprintf(key, sizeof key, "%s", out.items[0].key);
    for (i = 0; i < sizeof noise / sizeof noise[0]; i++) {
        t += MINUTE;
        assert_int_equal(feed(st, snap_at(t, noise[i]), &out), 0);
    }
    t += MINUTE;
    assert_int_equal(feed(st, snap_at(t, 84.9), &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_DEESCALATED);
    assert_int_equal(out.items[0].severity, DETECT_WARNING);
    assert_int_equal(out.items[0].prev_severity, DETECT_CRITICAL);
    assert_string_equal(out.items[0].key, key);
    assert_true(evnum(&out.items[0], "leave_below_pct") == 65.0);
    for (i = 0; i < sizeof warn_noise / sizeof warn_noise[0]; i++) {
        t += MINUTE;
        assert_int_equal(feed(st, snap_at(t, warn_noise[i]), &out), 0);
    }
    t += MINUTE;
    assert_int_equal(feed(st, snap_at(t, 64.9), &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    assert_int_equal(out.items[0].severity, DETECT_WARNING);
    assert_string_equal(out.items[0].key, key);
    assert_string_equal(evstr(&out.items[0], "reason"), "below level - hysteresis");
    assert_int_equal(detect_active_count(st), 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* Warning first, escalation needs `hits` samples >= critical, one resolve from critical; the next
 * episode gets a new key. */
static void test_threshold_escalation(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    char key[64];

    (void)state;
    assert_int_equal(feed(st, snap_at(T0, 72), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + MINUTE, 95), &out), 1); /* 95 counts as >= warning */
    assert_int_equal(out.items[0].transition, DETECT_RAISED);
    assert_int_equal(out.items[0].severity, DETECT_WARNING);
    assert_true(evnum(&out.items[0], "threshold_pct") == 70.0);
    snprintf(key, sizeof key, "%s", out.items[0].key);
    assert_int_equal(feed(st, snap_at(T0 + 2 * MINUTE, 89), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + 3 * MINUTE, 91), &out), 0); /* one hit */
    assert_int_equal(feed(st, snap_at(T0 + 4 * MINUTE, 93), &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_ESCALATED);
    assert_int_equal(out.items[0].severity, DETECT_CRITICAL);
    assert_int_equal(out.items[0].prev_severity, DETECT_WARNING);
    assert_string_equal(out.items[0].key, key);
    assert_int_equal(out.items[0].started_ms, T0 + MINUTE);
    assert_true(evnum(&out.items[0], "threshold_pct") == 90.0);
    assert_int_equal(feed(st, snap_at(T0 + 5 * MINUTE, 50), &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    assert_int_equal(out.items[0].severity, DETECT_CRITICAL);
    assert_string_equal(out.items[0].key, key);
    assert_int_equal(feed(st, snap_at(T0 + 6 * MINUTE, 75), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + 7 * MINUTE, 76), &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RAISED);
    assert_string_not_equal(out.items[0].key, key);
    assert_int_equal(out.items[0].started_ms, T0 + 7 * MINUTE);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* hits = 1 raises on the first sample; a disabled warning level leaves only critical. */
static void test_threshold_options(void **state)
{
    detect_rules_t r;
    detect_state_t *st;
    detect_alerts_t out = {0};

    (void)state;
    detect_rules_default(&r);
    r.hits = 1;
    r.warning_pct = 0;
    st = mkstate(&r);
    assert_int_equal(feed(st, snap_at(T0, 80), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + MINUTE, 90), &out), 1);
    assert_int_equal(out.items[0].severity, DETECT_CRITICAL);
    /* Without a warning level, leaving critical means resolving below 85. */
    assert_int_equal(feed(st, snap_at(T0 + 2 * MINUTE, 85), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + 3 * MINUTE, 84), &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* Per-protocol thresholds from host[] when enabled (subject "tcp"/"udp"); off by default. */
static void test_protocol_alerts(void **state)
{
    detect_rules_t r;
    detect_state_t *st;
    detect_alerts_t out = {0};
    Epw__Snapshot *s;
    int i;

    (void)state;
    st = mkstate(NULL);
    for (i = 0; i < 3; i++) {
        s = snap_at(T0 + i * MINUTE, 10);
        add_host(s, EPW__PROTOCOL__UDP, 95);
        assert_int_equal(feed(st, s, &out), 0);
    }
    detect_state_destroy(st);

    detect_rules_default(&r);
    r.protocol_alerts = true;
    st = mkstate(&r);
    for (i = 0; i < 2; i++) {
        s = snap_at(T0 + i * MINUTE, 10);
        add_host(s, EPW__PROTOCOL__TCP, 10);
        add_host(s, EPW__PROTOCOL__UDP, 95);
        feed(st, s, &out);
    }
    assert_int_equal(out.count, 1);
    assert_int_equal(out.items[0].kind, DETECT_PROTOCOL);
    assert_string_equal(out.items[0].subject, "udp");
    assert_string_equal(evstr(&out.items[0], "figure"), "udp");
    assert_true(evnum(&out.items[0], "value_pct") == 95.0);
    assert_non_null(strstr(out.items[0].key, "web01/protocol/udp@"));
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* ---- rule 2: trend ---- */

/* 40% rising 2 points/min, one sample a minute: the fit is ready at 6 points spanning 5 min
 * (50%, projection (100-50)/2 = 25 min <= 30 min horizon). At the end of the ramp (70% after
 * 15 min) the evidence projects 15 min. */
static void test_trend_ramp(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    const detect_alert_t *a;
    int m;

    (void)state;
    for (m = 0; m < 5; m++)
        assert_int_equal(feed(st, snap_at(T0 + m * MINUTE, 40 + 2 * m), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + 5 * MINUTE, 50), &out), 1);
    a = &out.items[0];
    assert_int_equal(a->kind, DETECT_TREND);
    assert_int_equal(a->transition, DETECT_RAISED);
    assert_int_equal(a->severity, DETECT_WARNING);
    assert_int_equal((int64_t)evnum(a, "projected_ms"), 25 * MINUTE);
    assert_int_equal((int64_t)evnum(a, "projected_at_ms"), T0 + 30 * MINUTE);
    assert_string_equal(evstr(a, "projected_at"), "2023-11-14T22:43:20Z");
    assert_true(evnum(a, "slope_pct_per_min") > 1.999999 &&
                evnum(a, "slope_pct_per_min") < 2.000001);
    assert_true(evnum(a, "r2") > 0.999999);
    assert_true(evnum(a, "points") == 6);
    assert_non_null(strstr(a->summary, "about 25m"));
    /* No new transition up to 70% (the warning level's first hit, not yet a raise). */
    for (m = 6; m <= 15; m++)
        assert_int_equal(feed(st, snap_at(T0 + m * MINUTE, 40 + 2 * m), &out), 0);
    /* The re-notification carries the latest fit: 70%, 15 min to go. */
    tick(st, T0 + 65 * MINUTE, &out);
    a = find_kind(&out, DETECT_TREND);
    assert_non_null(a);
    assert_int_equal(a->transition, DETECT_RENOTIFY);
    assert_int_equal((int64_t)evnum(a, "projected_ms"), 15 * MINUTE);
    assert_true(evnum(a, "pressure_pct") == 70);
    assert_true(evnum(a, "points") == 16);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* With a 15 min horizon the same ramp raises exactly at 70% with a projection of 15 min. */
static void test_trend_projection_15min(void **state)
{
    detect_rules_t r;
    detect_state_t *st;
    detect_alerts_t out = {0};
    const detect_alert_t *a;
    int m;

    (void)state;
    detect_rules_default(&r);
    r.trend_horizon_ms = 15 * MINUTE;
    r.warning_pct = 80; /* keep the threshold rule out of the way */
    st = mkstate(&r);
    for (m = 0; m < 15; m++)
        assert_int_equal(feed(st, snap_at(T0 + m * MINUTE, 40 + 2 * m), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + 15 * MINUTE, 70), &out), 1);
    a = &out.items[0];
    assert_int_equal(a->kind, DETECT_TREND);
    assert_int_equal((int64_t)evnum(a, "projected_ms"), 15 * MINUTE);
    assert_true(evnum(a, "points") == 16);
    assert_true(evnum(a, "span_ms") == 15 * MINUTE);
    assert_true(evnum(a, "pressure_pct") == 70);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* A rise that levels off resolves once the projection passes 1.5 x horizon, once. */
static void test_trend_resolves(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    int m, raised = 0, resolved = 0;
    const detect_alert_t *a;

    (void)state;
    for (m = 0; m <= 60; m++) {
        double v = m <= 5 ? 40 + 2 * m : 50;

        feed(st, snap_at(T0 + m * MINUTE, v), &out);
        a = find_kind(&out, DETECT_TREND);
        if (a && a->transition == DETECT_RAISED) {
            raised++;
            assert_int_equal(m, 5);
        }
        if (a && a->transition == DETECT_RESOLVED) {
            resolved++;
            assert_true(m > 5);
            assert_true(cJSON_GetObjectItem(a->evidence, "projected_ms") == NULL ||
                        evnum(a, "projected_ms") > 45 * MINUTE);
        }
    }
    assert_int_equal(raised, 1);
    assert_int_equal(resolved, 1);
    assert_int_equal(detect_active_count(st), 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

/* A flat 80% plateau, noise around 80% and a falling series never raise a trend. */
static void test_trend_no_alert(void **state)
{
    detect_state_t *st;
    detect_alerts_t out = {0};
    uint32_t seed = 12345;
    int i, trends = 0, pressure = 0;

    (void)state;
    st = mkstate(NULL);
    for (i = 0; i <= 60; i++) {
        feed(st, snap_at(T0 + i * 30 * SEC, 80), &out);
        trends += (int)count_kind(&out, DETECT_TREND);
        pressure += (int)count_kind(&out, DETECT_PRESSURE);
    }
    assert_int_equal(trends, 0);
    assert_int_equal(pressure, 1); /* the plateau is a warning, raised once */
    detect_state_destroy(st);

    st = mkstate(NULL);
    for (i = 0; i <= 120; i++) {
        double v = 80.0 + (double)(lcg(&seed) % 601) / 100.0 - 3.0; /* 77..83 */

        feed(st, snap_at(T0 + i * 30 * SEC, v), &out);
        trends += (int)count_kind(&out, DETECT_TREND);
    }
    assert_int_equal(trends, 0);
    detect_state_destroy(st);

    st = mkstate(NULL);
    for (i = 0; i <= 30; i++) {
        feed(st, snap_at(T0 + i * MINUTE, 80 - 1.5 * i), &out);
        trends += (int)count_kind(&out, DETECT_TREND);
    }
    assert_int_equal(trends, 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* ---- rule 3: leaks ---- */

/* +20 ports/min from 100: ready after 30 min (31 points), growth 600 >= 500, both halves +300:
 * raised then, naming PID and image. A flat 3000-port process beside it never is. When the
 * process is gone the episode resolves. */
static void test_leak_process(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    const detect_alert_t *a;
    Epw__Snapshot *s;
    char key[80];
    int m;

    (void)state;
    for (m = 0; m <= 60; m++) {
        s = snap_at(T0 + m * MINUTE, 10);
        add_proc(s, 7, "sqlservr.exe", 3000);
        add_proc(s, 4242, "leaky.exe", 100 + 20 * (uint32_t)m);
        add_other(s, 5000);
        feed(st, s, &out);
        if (m != 30) {
            assert_int_equal(out.count, 0);
            continue;
        }
        assert_int_equal(out.count, 1);
        a = &out.items[0];
        assert_int_equal(a->kind, DETECT_LEAK);
        assert_int_equal(a->transition, DETECT_RAISED);
        assert_int_equal(a->severity, DETECT_WARNING);
        assert_string_equal(a->subject, "4242:leaky.exe");
        snprintf(key, sizeof key, "web01/leak/4242:leaky.exe@%lld", (long long)(T0 + 30 * MINUTE));
        assert_string_equal(a->key, key);
        assert_true(evnum(a, "pid") == 4242);
        assert_string_equal(evstr(a, "name"), "leaky.exe");
        assert_true(evnum(a, "ports") == 700);
        assert_true(evnum(a, "first_ports") == 100);
        assert_true(evnum(a, "growth_ports") > 599.999 && evnum(a, "growth_ports") < 600.001);
        assert_true(evnum(a, "slope_ports_per_min") > 19.9999 &&
                    evnum(a, "slope_ports_per_min") < 20.0001);
        assert_true(evnum(a, "points") == 31);
        assert_non_null(strstr(a->summary, "process 4242 (leaky.exe) is leaking ports"));
    }
    /* Restarted under a new PID: the old episode resolves, the new series starts empty. */
    s = snap_at(T0 + 61 * MINUTE, 10);
    add_proc(s, 7, "sqlservr.exe", 3000);
    add_proc(s, 5555, "leaky.exe", 10);
    assert_int_equal(feed(st, s, &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    assert_string_equal(out.items[0].key, key);
    assert_string_equal(evstr(&out.items[0], "reason"), "absent from the top processes");
    assert_int_equal(detect_active_count(st), 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* A plateau, sawtooths (grow for 12-28 min, drop, repeat) and a single step are not leaks. A
 * sawtooth whose rising phase outlasts leak_min_span is, while it rises, a leak by any measure. */
static void test_leak_no_alert(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    Epw__Snapshot *s;
    int m, leaks = 0;

    (void)state;
    for (m = 0; m <= 180; m++) {
        s = snap_at(T0 + m * MINUTE, 10);
        add_proc(s, 1, "plateau", 5000);
        add_proc(s, 2, "sawtooth", 40 * (uint32_t)(m % 20));
        add_proc(s, 3, "step", m < 90 ? 100 : 1600);
        add_proc(s, 4, "saw25", 40 * (uint32_t)(m % 25));
        add_proc(s, 5, "saw12", 60 * (uint32_t)(m % 12));
        add_proc(s, 6, "saw28", 60 * (uint32_t)(m % 28));
        s->kernel_ports = 8000;
        feed(st, s, &out);
        leaks += (int)(count_kind(&out, DETECT_LEAK) + count_kind(&out, DETECT_KERNEL_LEAK));
    }
    assert_int_equal(leaks, 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* A drift under heavy noise (+12/min, uniform +-500: R^2 about 0.3) is not called a leak. */
static void test_leak_noisy_drift(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    Epw__Snapshot *s;
    uint32_t seed = 777;
    int m, leaks = 0;

    (void)state;
    for (m = 0; m <= 120; m++) {
        s = snap_at(T0 + m * MINUTE, 10);
        add_proc(s, 41, "noisy", 2000 + 12 * (uint32_t)m + lcg(&seed) % 1001 - 500);
        feed(st, s, &out);
        leaks += (int)count_kind(&out, DETECT_LEAK);
    }
    assert_int_equal(leaks, 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* A real leak with sample jitter (+10/min, alternately +-12 around the line) is still one: it is
 * raised once its fitted growth reaches 500 ports. */
static void test_leak_jitter(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    Epw__Snapshot *s;
    int m, raised_at = -1;

    (void)state;
    for (m = 0; m <= 90; m++) {
        s = snap_at(T0 + m * MINUTE, 10);
        add_proc(s, 31, "jitter", 1000 + 10 * (uint32_t)m + (m % 2 ? 12 : 0) - (m % 2 ? 0 : 12));
        feed(st, s, &out);
        if (count_kind(&out, DETECT_LEAK)) {
            assert_int_equal(raised_at, -1);
            raised_at = m;
            assert_true(evnum(&out.items[0], "growth_ports") >= 500);
        }
    }
    assert_int_equal(raised_at, 50);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* A leak that stops resolves (growth over the window under half the threshold), once. */
static void test_leak_stops(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    Epw__Snapshot *s;
    int m, raised = 0, resolved = 0;

    (void)state;
    for (m = 0; m <= 150; m++) {
        const detect_alert_t *a;

        s = snap_at(T0 + m * MINUTE, 10);
        add_proc(s, 4242, "leaky.exe", m <= 40 ? 100 + 20 * (uint32_t)m : 900);
        feed(st, s, &out);
        a = find_kind(&out, DETECT_LEAK);
        if (a && a->transition == DETECT_RAISED)
            raised++;
        if (a && a->transition == DETECT_RESOLVED) {
            resolved++;
            assert_true(m > 40);
            assert_true(evnum(a, "growth_ports") < 250);
            assert_string_equal(evstr(a, "reason"), "growth stopped");
        }
    }
    assert_int_equal(raised, 1);
    assert_int_equal(resolved, 1);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* Kernel-owned ports growing +20/min: KERNEL_LEAK after 30 min. */
static void test_kernel_leak(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    Epw__Snapshot *s;
    int m;

    (void)state;
    for (m = 0; m <= 30; m++) {
        s = snap_at(T0 + m * MINUTE, 10);
        s->kernel_ports = 200 + 20 * (uint32_t)m;
        feed(st, s, &out);
        assert_int_equal(out.count, m == 30 ? 1 : 0);
    }
    assert_int_equal(out.items[0].kind, DETECT_KERNEL_LEAK);
    assert_string_equal(out.items[0].subject, "");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(out.items[0].evidence, "kernel")));
    assert_true(evnum(&out.items[0], "ports") == 800);
    assert_non_null(strstr(out.items[0].summary, "kernel"));
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* ---- rule 4: OS events and port starvation ---- */

static void test_os_events(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    const detect_alert_t *a;
    const cJSON *ids;
    Epw__Snapshot *s;

    (void)state;
    /* 4227 alone is routine: nothing. */
    s = snap_at(T0, 10);
    epw_testsnap_event(s, 4227, 5, T0 - 30 * SEC, T0 - SEC);
    assert_int_equal(feed(st, s, &out), 0);
    /* One 4231: critical at once. */
    s = snap_at(T0 + MINUTE, 10);
    epw_testsnap_event(s, 4231, 3, T0 + 20 * SEC, T0 + 50 * SEC);
    epw_testsnap_event(s, 4227, 2, T0 + 10 * SEC, T0 + 40 * SEC);
    assert_int_equal(feed(st, s, &out), 1);
    a = &out.items[0];
    assert_int_equal(a->kind, DETECT_OS_EVENT);
    assert_int_equal(a->transition, DETECT_RAISED);
    assert_int_equal(a->severity, DETECT_CRITICAL);
    ids = evobj(a, "event_ids");
    assert_int_equal(cJSON_GetArraySize(ids), 1);
    assert_true(cJSON_GetNumberValue(cJSON_GetArrayItem(ids, 0)) == 4231);
    assert_true(subnum(evobj(a, "counts"), "4231") == 3);
    assert_true(subnum(evobj(a, "counts"), "4227") == 2);
    assert_true(subnum(evobj(a, "counts"), "4266") == 0);
    assert_true(evnum(a, "first_ms") == (double)(T0 + 20 * SEC));
    assert_true(evnum(a, "last_ms") == (double)(T0 + 50 * SEC));
    /* A 4266 later in the episode: no new raise; the quiet period restarts. */
    s = snap_at(T0 + 3 * MINUTE, 10);
    epw_testsnap_event(s, 4266, 1, T0 + 170 * SEC, T0 + 170 * SEC);
    assert_int_equal(feed(st, s, &out), 0);
    s = snap_at(T0 + 12 * MINUTE, 10);
    epw_testsnap_event(s, 4227, 1, T0 + 700 * SEC, T0 + 700 * SEC);
    assert_int_equal(feed(st, s, &out), 0); /* 9 min quiet */
    assert_int_equal(feed(st, snap_at(T0 + 13 * MINUTE - 1, 10), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + 13 * MINUTE, 10), &out), 1); /* 10 min quiet */
    a = &out.items[0];
    assert_int_equal(a->transition, DETECT_RESOLVED);
    assert_int_equal(a->severity, DETECT_CRITICAL);
    assert_true(subnum(evobj(a, "episode_counts"), "4231") == 3);
    assert_true(subnum(evobj(a, "episode_counts"), "4266") == 1);
    assert_true(subnum(evobj(a, "episode_counts"), "4227") == 3);
    assert_true(evnum(a, "last_event_taken_at_ms") == (double)(T0 + 3 * MINUTE));
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

static void test_port_starved(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    Epw__Snapshot *s;

    (void)state;
    s = snap_at(T0, 12);
    s->port_starved = true;
    s->spooled = 4;
    assert_int_equal(feed_at(st, s, T0 + 5 * MINUTE, &out), 1); /* spooled: arrives late */
    assert_int_equal(out.items[0].kind, DETECT_PORT_STARVED);
    assert_int_equal(out.items[0].transition, DETECT_RAISED);
    assert_int_equal(out.items[0].severity, DETECT_CRITICAL);
    assert_int_equal(out.items[0].data_ms, T0);
    assert_int_equal(out.items[0].at_ms, T0 + 5 * MINUTE);
    assert_true(evnum(&out.items[0], "spooled") == 4);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(out.items[0].evidence, "port_starved")));
    s = snap_at(T0 + MINUTE, 12);
    s->port_starved = true;
    assert_int_equal(feed_at(st, s, T0 + 5 * MINUTE, &out), 0);
    assert_int_equal(feed_at(st, snap_at(T0 + 10 * MINUTE, 12), T0 + 10 * MINUTE, &out), 0);
    assert_int_equal(feed_at(st, snap_at(T0 + 11 * MINUTE, 12), T0 + 11 * MINUTE, &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    assert_true(evnum(&out.items[0], "starved_snapshots") == 2);
    assert_int_equal(detect_active_count(st), 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* ---- rule 5: silence, and re-notification ---- */

static void test_silent(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    const detect_alert_t *a;

    (void)state;
    detect_state_set_interval(st, 10 * SEC);
    assert_int_equal(feed(st, snap_at(T0, 10), &out), 0);
    assert_int_equal(tick(st, T0 + 30 * SEC, &out), 0);
    assert_int_equal(tick(st, T0 + 30 * SEC + 1, &out), 1);
    a = &out.items[0];
    assert_int_equal(a->kind, DETECT_SILENT);
    assert_int_equal(a->transition, DETECT_RAISED);
    assert_int_equal(a->severity, DETECT_WARNING);
    assert_int_equal(a->data_ms, 0);
    assert_true(evnum(a, "last_seen_ms") == (double)T0);
    assert_string_equal(evstr(a, "last_seen"), "2023-11-14T22:13:20Z");
    assert_true(evnum(a, "silent_for_ms") == 30001);
    assert_true(evnum(a, "limit_ms") == 30000);
    assert_int_equal(tick(st, T0 + 40 * SEC, &out), 0);
    assert_int_equal(feed_at(st, snap_at(T0 + 50 * SEC, 10), T0 + 50 * SEC, &out), 1);
    assert_int_equal(out.items[0].kind, DETECT_SILENT);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    assert_true(evnum(&out.items[0], "silent_for_ms") == 50000);
    assert_int_equal(tick(st, T0 + 80 * SEC, &out), 0);
    detect_state_destroy(st);

    /* Never heard from: the default interval (60 s) from creation. */
    st = mkstate(NULL);
    assert_int_equal(tick(st, T0 + 180 * SEC, &out), 0);
    assert_int_equal(tick(st, T0 + 180 * SEC + 1, &out), 1);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(out.items[0].evidence, "ever_seen")));
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

static void test_renotify(void **state)
{
    detect_rules_t r;
    detect_state_t *st;
    detect_alerts_t out = {0};
    int64_t raised_at = T0 + MINUTE;
    char key[64];

    (void)state;
    detect_rules_default(&r);
    r.silent_factor = 0;
    st = mkstate(&r);
    feed(st, snap_at(T0, 95), &out);
    assert_int_equal(feed(st, snap_at(raised_at, 96), &out), 1);
    snprintf(key, sizeof key, "%s", out.items[0].key);
    feed(st, snap_at(raised_at + MINUTE, 97), &out);
    assert_int_equal(tick(st, raised_at + 60 * MINUTE - 1, &out), 0);
    assert_int_equal(tick(st, raised_at + 60 * MINUTE, &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RENOTIFY);
    assert_int_equal(out.items[0].severity, DETECT_CRITICAL);
    assert_string_equal(out.items[0].key, key);
    assert_int_equal(out.items[0].started_ms, raised_at);
    assert_true(evnum(&out.items[0], "value_pct") == 97); /* the latest figures */
    assert_true(evnum(&out.items[0], "active_for_ms") == 60 * MINUTE);
    assert_int_equal(tick(st, raised_at + 119 * MINUTE, &out), 0);
    assert_int_equal(tick(st, raised_at + 120 * MINUTE, &out), 1);
    detect_state_destroy(st);

    r.renotify_ms = 0;
    st = mkstate(&r);
    feed(st, snap_at(T0, 95), &out);
    assert_int_equal(feed(st, snap_at(T0 + MINUTE, 96), &out), 1);
    assert_int_equal(tick(st, T0 + 10 * 60 * MINUTE, &out), 0);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

/* ---- configuration ---- */

static void test_rules_for_host(void **state)
{
    detect_rules_t base;
    detect_override_t ov[3];

    (void)state;
    detect_rules_default(&base);
    ov[0].pattern = "db-*";
    ov[0].rules = base;
    ov[0].rules.warning_pct = 50;
    ov[1].pattern = "WEB-?.prod";
    ov[1].rules = base;
    ov[1].rules.warning_pct = 60;
    ov[2].pattern = "db-0*"; /* shadowed by ov[0]: first match wins */
    ov[2].rules = base;
    assert_ptr_equal(detect_rules_for_host(ov, 3, "db-01", &base), &ov[0].rules);
    assert_ptr_equal(detect_rules_for_host(ov, 3, "web-1.prod", &base), &ov[1].rules);
    assert_ptr_equal(detect_rules_for_host(ov, 3, "web-12.prod", &base), &base);
    assert_ptr_equal(detect_rules_for_host(ov, 3, "mail", &base), &base);
    assert_ptr_equal(detect_rules_for_host(NULL, 0, "db-01", &base), &base);
    assert_int_equal(detect_rules_for_host(ov, 3, "DB-7", &base)->warning_pct, 50);
}

static void test_rules_config(void **state)
{
    detect_rules_t def, viat, ov;
    char err[512] = "";
    static const char text[] = "warning = 60\ncritical = 80\ntrend_horizon = 0\nrenotify = 4h\n";

    (void)state;
    detect_rules_default(&def);
    memset(&viat, 0xff, sizeof viat);
    assert_int_equal(epw_config_defaults(detect_rules_keys(), &viat, err, sizeof err), 0);
    assert_int_equal(viat.warning_pct, def.warning_pct);
    assert_int_equal(viat.critical_pct, def.critical_pct);
    assert_int_equal(viat.hits, def.hits);
    assert_int_equal(viat.hysteresis_pct, def.hysteresis_pct);
    assert_int_equal(viat.protocol_alerts, def.protocol_alerts);
    assert_int_equal(viat.trend_window_ms, def.trend_window_ms);
    assert_int_equal(viat.trend_min_points, def.trend_min_points);
    assert_int_equal(viat.trend_min_span_ms, def.trend_min_span_ms);
    assert_int_equal(viat.trend_horizon_ms, def.trend_horizon_ms);
    assert_int_equal(viat.trend_min_fit_pct, def.trend_min_fit_pct);
    assert_int_equal(viat.leak_window_ms, def.leak_window_ms);
    assert_int_equal(viat.leak_min_points, def.leak_min_points);
    assert_int_equal(viat.leak_min_span_ms, def.leak_min_span_ms);
    assert_int_equal(viat.leak_min_growth, def.leak_min_growth);
    assert_int_equal(viat.leak_min_fit_pct, def.leak_min_fit_pct);
    assert_int_equal(viat.leak_min_rising_pct, def.leak_min_rising_pct);
    assert_int_equal(viat.event_quiet_ms, def.event_quiet_ms);
    assert_int_equal(viat.silent_factor, def.silent_factor);
    assert_int_equal(viat.default_interval_ms, def.default_interval_ms);
    assert_int_equal(viat.renotify_ms, def.renotify_ms);
    assert_int_equal(detect_rules_check(&def, err, sizeof err), 0);

    /* An override section parsed over a copy of the base rules. */
    ov = def;
    assert_int_equal(epw_config_parse_buf(detect_rules_keys(), &ov, text, strlen(text), "o.ini",
                                          err, sizeof err),
                     0);
    assert_int_equal(ov.warning_pct, 60);
    assert_int_equal(ov.critical_pct, 80);
    assert_int_equal(ov.trend_horizon_ms, 0);
    assert_int_equal(ov.renotify_ms, 4 * 60 * MINUTE);
    assert_int_equal(ov.hits, 2);
    assert_int_equal(detect_rules_check(&ov, err, sizeof err), 0);

    ov.warning_pct = 90;
    ov.hysteresis_pct = 95;
    err[0] = '\0';
    assert_int_equal(detect_rules_check(&ov, err, sizeof err), EPW_E_CONFIG);
    assert_string_equal(err, "warning must be below critical\n"
                             "hysteresis must be below the lowest level\n");
}

/* ---- restart: an adopted episode continues under its key ---- */

static void test_adopt(void **state)
{
    detect_state_t *st = mkstate(NULL);
    detect_alerts_t out = {0};
    detect_alert_t a;

    (void)state;
    memset(&a, 0, sizeof a);
    a.kind = DETECT_PRESSURE;
    a.severity = DETECT_CRITICAL;
    a.subject = (char *)"";
    a.key = (char *)"web01/pressure@1699990000000";
    a.started_ms = 1699990000000LL;
    a.at_ms = 1699990000000LL;
    assert_int_equal(detect_adopt(st, &a), 0);
    assert_int_equal(detect_adopt(st, &a), UV_EINVAL); /* already active */
    assert_int_equal(detect_active_count(st), 1);
    assert_int_equal(feed(st, snap_at(T0, 95), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + MINUTE, 95), &out), 0);
    assert_int_equal(feed(st, snap_at(T0 + 2 * MINUTE, 40), &out), 1);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    assert_string_equal(out.items[0].key, "web01/pressure@1699990000000");

    a.kind = DETECT_LEAK;
    a.severity = DETECT_WARNING;
    a.subject = (char *)"4242:leaky.exe";
    a.key = (char *)"web01/leak/4242:leaky.exe@1699990000000";
    assert_int_equal(detect_adopt(st, &a), 0);
    assert_int_equal(feed(st, snap_at(T0 + 3 * MINUTE, 40), &out), 1);
    assert_int_equal(out.items[0].kind, DETECT_LEAK);
    assert_int_equal(out.items[0].transition, DETECT_RESOLVED);
    assert_string_equal(out.items[0].key, "web01/leak/4242:leaky.exe@1699990000000");
    a.subject = (char *)"nopid";
    assert_int_equal(detect_adopt(st, &a), UV_EINVAL);
    detect_alerts_free(&out);
    detect_state_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_hits_raise),
        cmocka_unit_test(test_threshold_spikes_do_not_raise),
        cmocka_unit_test(test_threshold_hysteresis),
        cmocka_unit_test(test_threshold_escalation),
        cmocka_unit_test(test_threshold_options),
        cmocka_unit_test(test_protocol_alerts),
        cmocka_unit_test(test_trend_ramp),
        cmocka_unit_test(test_trend_projection_15min),
        cmocka_unit_test(test_trend_resolves),
        cmocka_unit_test(test_trend_no_alert),
        cmocka_unit_test(test_leak_process),
        cmocka_unit_test(test_leak_no_alert),
        cmocka_unit_test(test_leak_noisy_drift),
        cmocka_unit_test(test_leak_jitter),
        cmocka_unit_test(test_leak_stops),
        cmocka_unit_test(test_kernel_leak),
        cmocka_unit_test(test_os_events),
        cmocka_unit_test(test_port_starved),
        cmocka_unit_test(test_silent),
        cmocka_unit_test(test_renotify),
        cmocka_unit_test(test_rules_for_host),
        cmocka_unit_test(test_rules_config),
        cmocka_unit_test(test_adopt),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
