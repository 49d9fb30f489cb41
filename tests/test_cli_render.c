/* test_cli_render: the epwatch CLI's pure rendering, and the JSON -> Snapshot round trip. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cli_http.h"
#include "cli_render.h"
#include "epw_err.h"
#include "epw_json.h"
#include "epw_snap.h"
#include "epw_table.h"
#include "support/epw_testsnap.h"

/* 2026-11-25T17:57:22Z */
#define T0 1795629442000LL

/* ---- trend arrows, ages, locale, width ---- */

static void test_trend_arrow(void **state)
{
    (void)state;
    assert_string_equal(cli_trend_arrow(0, 0), "→");
    assert_string_equal(cli_trend_arrow(0.99, 0), "→");
    assert_string_equal(cli_trend_arrow(-0.99, 0), "→");
    assert_string_equal(cli_trend_arrow(NAN, 0), "→");
    assert_string_equal(cli_trend_arrow(CLI_TREND_FLAT, 0), "↗");
    assert_string_equal(cli_trend_arrow(9.99, 0), "↗");
    assert_string_equal(cli_trend_arrow(CLI_TREND_STEEP, 0), "↑");
    assert_string_equal(cli_trend_arrow(250, 0), "↑");
    assert_string_equal(cli_trend_arrow(-CLI_TREND_FLAT, 0), "↘");
    assert_string_equal(cli_trend_arrow(-9.99, 0), "↘");
    assert_string_equal(cli_trend_arrow(-CLI_TREND_STEEP, 0), "↓");

    assert_string_equal(cli_trend_arrow(0, 1), "-");
    assert_string_equal(cli_trend_arrow(5, 1), "/");
    assert_string_equal(cli_trend_arrow(50, 1), "^");
    assert_string_equal(cli_trend_arrow(-5, 1), "\\");
    assert_string_equal(cli_trend_arrow(-50, 1), "v");
}

static void check_ago(int64_t delta_ms, const char *want)
{
    char buf[32];

    cli_format_ago(T0, T0 - delta_ms, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_format_ago(void **state)
{
    char small[4];

    (void)state;
    check_ago(0, "0s ago");
    check_ago(12000, "12s ago");
    check_ago(12999, "12s ago"); /* truncated, never rounded up */
    check_ago(59999, "59s ago");
    check_ago(60000, "1m ago");
    check_ago(3599999, "59m ago");
    check_ago(3600000, "1h ago");
    check_ago(47 * 3600000LL + 3599999, "47h ago");
    check_ago(48 * 3600000LL, "2d ago");
    check_ago(400 * 86400000LL, "400d ago");
    check_ago(-5000, "in 5s");
    check_ago(-7200000, "in 2h");
    cli_format_ago(T0, T0 - 12000, small, sizeof(small));
    assert_string_equal(small, "12s"); /* truncated but terminated */
}

static void test_utf8_locale(void **state)
{
    (void)state;
    assert_int_equal(cli_utf8_locale(NULL, NULL, "en_US.UTF-8"), 1);
    assert_int_equal(cli_utf8_locale(NULL, NULL, "de_DE.utf8"), 1);
    assert_int_equal(cli_utf8_locale(NULL, NULL, "en_IE.UTF-8@euro"), 1);
    assert_int_equal(cli_utf8_locale("", "", "C.UTF-8"), 1);
    assert_int_equal(cli_utf8_locale(NULL, NULL, NULL), 0);
    assert_int_equal(cli_utf8_locale(NULL, NULL, "C"), 0);
    assert_int_equal(cli_utf8_locale(NULL, NULL, "POSIX"), 0);
    assert_int_equal(cli_utf8_locale(NULL, NULL, "en_US.ISO-8859-1"), 0);
    assert_int_equal(cli_utf8_locale(NULL, NULL, "en_US.UTF-88"), 0);
    /* Precedence: LC_ALL, then LC_CTYPE, then LANG. */
    assert_int_equal(cli_utf8_locale("C", "en_US.UTF-8", "en_US.UTF-8"), 0);
    assert_int_equal(cli_utf8_locale(NULL, "C", "en_US.UTF-8"), 0);
    assert_int_equal(cli_utf8_locale(NULL, "en_US.UTF-8", "C"), 1);
}

static void test_text_width(void **state)
{
    (void)state;
    assert_int_equal(cli_text_width(""), 0);
    assert_int_equal(cli_text_width("abc"), 3);
    assert_int_equal(cli_text_width("↗ +4.2%/h"), 9);
    assert_int_equal(cli_text_width("▁▂▃"), 3);
    assert_int_equal(cli_text_width(NULL), 0);
}

static void test_url_escape(void **state)
{
    char *e;

    (void)state;
    e = cli_url_escape("web-17.example_x~");
    assert_string_equal(e, "web-17.example_x~");
    free(e);
    e = cli_url_escape("a b/c?d&e=f+2026-11-25T12:00:00Z");
    assert_string_equal(e, "a%20b%2Fc%3Fd%26e%3Df%2B2026-11-25T12%3A00%3A00Z");
    free(e);
}

/* ---- sparklines ---- */

static void check_spark(const double *v, size_t n, size_t width, int ascii, const char *want)
{
    char *out = NULL;

    assert_int_equal(cli_sparkline(v, n, width, 0.0, 100.0, ascii, &out), 0);
    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
}

static void test_sparkline(void **state)
{
    /* Level = floor(v / 12.5), clamped to [0, 7]; NaN is a gap. */
    const double v[] = {0, 12.5, 50, 100, NAN, 150, -5, 87.4};
    const double ramp[] = {0, 13, 26, 38, 51, 63, 76, 88};
    const double peaks[] = {0, 0, 0, 100, 0, 0, 0, 0, 0, 50};
    char *out = (char *)"x";

    (void)state;
    check_spark(v, 8, 0, 0, "▁▂▅█ █▁▇");
    check_spark(v, 8, 0, 1, "_.=# #_*");
    check_spark(ramp, 8, 0, 0, "▁▂▃▄▅▆▇█");
    check_spark(ramp, 8, 8, 1, "_.-:=+*#");
    /* Ten values into five columns: pairs merged by their maximum, the spike survives. */
    check_spark(peaks, 10, 5, 0, "▁█▁▁▅");
    /* Three values into two columns: 0 | 1,2. */
    check_spark(peaks + 2, 3, 2, 1, "_#");
    check_spark(v, 0, 10, 0, "");
    assert_int_equal(cli_sparkline(v, 1, 0, 0, 100, 0, NULL), UV_EINVAL);
    assert_int_equal(cli_sparkline(NULL, 1, 0, 0, 100, 0, &out), UV_EINVAL);
    assert_null(out);
}

/* ---- hosts ---- */

static const char hosts_json[] =
    "[{\"host\":\"web-2\",\"pressure_pct\":41.5,\"status\":\"ok\","
    "\"last_seen\":\"2026-11-25T17:57:10Z\",\"active_alerts\":0,\"trend_pct_per_hour\":-2.5,"
    "\"top_process\":null},"
    " {\"host\":\"db-1\",\"pressure_pct\":93.2,\"status\":\"critical\","
    "\"last_seen\":\"2026-11-25T17:57:20Z\",\"active_alerts\":2,\"trend_pct_per_hour\":12.25,"
    "\"top_process\":{\"pid\":1234,\"name\":\"sqlservr.exe\",\"ports\":15000}},"
    " {\"host\":\"old-9\",\"pressure_pct\":5,\"status\":\"silent\","
    "\"last_seen\":\"2026-11-25T15:50:00Z\",\"active_alerts\":1,\"trend_pct_per_hour\":0,"
    "\"top_process\":null},"
    " {\"host\":\"app-3\",\"pressure_pct\":41.5,\"status\":\"warning\","
    "\"last_seen\":\"2026-11-25T17:56:22Z\",\"active_alerts\":1,\"trend_pct_per_hour\":3,"
    "\"top_process\":{\"pid\":77,\"name\":\"java\",\"ports\":9000}}]";

static void test_hosts_sort_and_table(void **state)
{
    cJSON *arr = cJSON_Parse(hosts_json);
    cli_style_t st = {0, T0};
    char *out = NULL;

    (void)state;
    assert_non_null(arr);
    assert_int_equal(cli_hosts_sort(arr), 0);
    /* Silent first; then pressure descending; equal pressure by name. */
    assert_string_equal(cJSON_GetArrayItem(arr, 0)->child->valuestring, "old-9");
    assert_string_equal(cJSON_GetArrayItem(arr, 1)->child->valuestring, "db-1");
    assert_string_equal(cJSON_GetArrayItem(arr, 2)->child->valuestring, "app-3");
    assert_string_equal(cJSON_GetArrayItem(arr, 3)->child->valuestring, "web-2");

    assert_int_equal(cli_render_hosts(arr, &st, &out), 0);
    if (getenv("EPW_DUMP"))
        fputs(out, stderr);
    /* Columns are aligned by display width (the arrows are 3 bytes, 1 column); numbers are
     * right-aligned; the last column has no trailing spaces. */
    assert_string_equal(
        out, "HOST   PRESSURE  STATUS    TREND       LAST SEEN  ALERTS  TOP PROCESS\n"
             "old-9      5.0%  silent    → +0.0%/h   2h ago          1  -\n"
             "db-1      93.2%  critical  ↑ +12.2%/h  2s ago          2  sqlservr.exe (pid "
             "1234): 15000 ports\n"
             "app-3     41.5%  warning   ↗ +3.0%/h   1m ago          1  java (pid 77): 9000 "
             "ports\n"
             "web-2     41.5%  ok        ↘ -2.5%/h   12s ago         0  -\n");
    free(out);

    st.ascii = 1;
    assert_int_equal(cli_render_hosts(arr, &st, &out), 0);
    assert_non_null(strstr(out, "\nold-9      5.0%  silent    - +0.0%/h   2h ago "));
    assert_non_null(strstr(out, "\ndb-1      93.2%  critical  ^ +12.2%/h  2s ago "));
    assert_non_null(strstr(out, "\nweb-2     41.5%  ok        \\ -2.5%/h   12s ago "));
    free(out);
    cJSON_Delete(arr);

    arr = cJSON_CreateArray();
    assert_int_equal(cli_render_hosts(arr, &st, &out), 0);
    assert_string_equal(out, "No host has reported to the collector yet.\n");
    free(out);
    assert_int_equal(cli_render_hosts(NULL, &st, &out), UV_EINVAL);
    assert_null(out);
    assert_int_equal(cli_hosts_sort(NULL), UV_EINVAL);
    cJSON_Delete(arr);
}

/* Keys missing (an older collector) show as "-" rather than failing. */
static void test_hosts_missing_keys(void **state)
{
    cJSON *arr = cJSON_Parse("[{\"host\":\"h\"}]");
    cli_style_t st = {1, T0};
    char *out = NULL;

    (void)state;
    assert_int_equal(cli_render_hosts(arr, &st, &out), 0);
    assert_string_equal(out, "HOST  PRESSURE  STATUS  TREND  LAST SEEN  ALERTS  TOP PROCESS\n"
                             "h            -  -       -      -               -  -\n");
    free(out);
    cJSON_Delete(arr);
}

/* ---- alerts ---- */

static void test_alerts_table(void **state)
{
    cJSON *arr = cJSON_Parse(
        "[{\"id\":12,\"host\":\"db-1\",\"kind\":\"threshold\",\"severity\":\"critical\","
        "\"active\":true,\"raised_at\":\"2026-11-25T17:50:22Z\",\"resolved_at\":null,"
        "\"summary\":\"pressure 93.2% >= 90%\",\"evidence\":{\"pressure_pct\":93.2}},"
        " {\"id\":7,\"host\":\"web-2\",\"kind\":\"leak\",\"severity\":\"warning\","
        "\"active\":false,\"raised_at\":\"2026-11-25T12:57:22Z\","
        "\"resolved_at\":\"2026-11-25T14:57:22Z\",\"summary\":\"java (pid 77) +900 ports/h\","
        "\"evidence\":{}}]");
    cli_style_t st = {0, T0};
    char *out = NULL;

    (void)state;
    assert_non_null(arr);
    assert_int_equal(cli_render_alerts(arr, &st, &out), 0);
    if (getenv("EPW_DUMP"))
        fputs(out, stderr);
    assert_string_equal(
        out, "ID  HOST   KIND       SEVERITY  STATE     RAISED  RESOLVED  SUMMARY\n"
             "12  db-1   threshold  critical  active    7m ago  -         pressure 93.2% >= 90%\n"
             " 7  web-2  leak       warning   resolved  5h ago  3h ago    java (pid 77) +900 "
             "ports/h\n");
    free(out);
    cJSON_Delete(arr);

    arr = cJSON_CreateArray();
    assert_int_equal(cli_render_alerts(arr, &st, &out), 0);
    assert_string_equal(out, "No alerts.\n");
    free(out);
    cJSON_Delete(arr);
}

/* ---- history ---- */

static void test_history(void **state)
{
    /* Six 5-minute buckets from 17:00; the 17:10 and 17:15 ones have no samples. */
    cJSON *obj = cJSON_Parse(
        "{\"host\":\"db-1\",\"from\":\"2026-11-25T17:00:00Z\",\"to\":\"2026-11-25T17:30:00Z\","
        "\"step_s\":300,\"points\":["
        "{\"t\":\"2026-11-25T17:00:00Z\",\"max_pct\":10,\"avg_pct\":8.25,\"samples\":5},"
        "{\"t\":\"2026-11-25T17:05:00Z\",\"max_pct\":40,\"avg_pct\":30,\"samples\":5},"
        "{\"t\":\"2026-11-25T17:20:00Z\",\"max_pct\":95.5,\"avg_pct\":90,\"samples\":4},"
        "{\"t\":\"2026-11-25T17:25:00Z\",\"max_pct\":60,\"avg_pct\":55,\"samples\":12}]}");
    cli_style_t st = {0, T0};
    char *out = NULL;

    (void)state;
    assert_non_null(obj);
    assert_int_equal(cli_render_history(obj, &st, &out), 0);
    if (getenv("EPW_DUMP"))
        fputs(out, stderr);
    assert_string_equal(out,
                        "db-1  2026-11-25T17:00:00Z .. 2026-11-25T17:30:00Z  step 5m  4 points\n"
                        "max% 0-100 |▁▄  █▅|  peak 95.5% at 2026-11-25T17:20:00Z\n"
                        "\n"
                        "TIME                  MAX%  AVG%  SAMPLES\n"
                        "2026-11-25T17:00:00Z  10.0   8.2        5\n"
                        "2026-11-25T17:05:00Z  40.0  30.0        5\n"
                        "2026-11-25T17:20:00Z  95.5  90.0        4\n"
                        "2026-11-25T17:25:00Z  60.0  55.0       12\n");
    free(out);
    st.ascii = 1;
    assert_int_equal(cli_render_history(obj, &st, &out), 0);
    assert_non_null(strstr(out, "\nmax% 0-100 |_:  #=|  peak 95.5%"));
    free(out);
    cJSON_Delete(obj);

    /* Without a usable range the points are drawn in order, without gaps. */
    obj = cJSON_Parse("{\"host\":\"h\",\"points\":[{\"t\":\"x\",\"max_pct\":0},"
                      "{\"t\":\"y\",\"max_pct\":100}]}");
    assert_int_equal(cli_render_history(obj, &st, &out), 0);
    assert_non_null(strstr(out, "\nmax% 0-100 |_#|  peak 100.0% at y\n"));
    free(out);
    cJSON_Delete(obj);

    obj = cJSON_Parse("{\"host\":\"h\",\"from\":\"2026-11-25T17:00:00Z\","
                      "\"to\":\"2026-11-25T17:30:00Z\",\"step_s\":300,\"points\":[]}");
    assert_int_equal(cli_render_history(obj, &st, &out), 0);
    assert_string_equal(out, "h  2026-11-25T17:00:00Z .. 2026-11-25T17:30:00Z  step 5m  0 points\n"
                             "No samples in this range.\n");
    free(out);
    cJSON_Delete(obj);

    obj = cJSON_Parse("{\"host\":\"h\"}");
    assert_int_equal(cli_render_history(obj, &st, &out), UV_EINVAL);
    assert_null(out);
    cJSON_Delete(obj);
}

/* ---- JSON -> Snapshot ---- */

static void add_address(Epw__Snapshot *s, const char *addr, Epw__Protocol proto, Epw__Family family,
                        uint32_t in_use, double pct)
{
    epw_testsnap_address(s, addr, proto, family, in_use, 28232, pct, 4, 9);
}

/* A snapshot with every field set, and values that stress the conversions (fractions, large
 * integers, a namespace, events with milliseconds, both protocols and families). */
static Epw__Snapshot *full_snap(void)
{
    Epw__Snapshot *s = epw_snap_new();
    static const char *const states[] = {"ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT"};
    static const uint32_t listening[] = {22, 5432, 40000};
    size_t i;

    assert_non_null(s);
    /* cJSON prints numbers with 15 significant digits when that reads back within an epsilon, so
     * integers beyond 15 digits do not survive any cJSON round trip; sequence numbers stay far
     * below that in practice. */
    s->seq = 123456789012345ULL;
    s->taken_at_ms = T0;
    s->sample_duration_us = 123457;
    s->hostname = epw_snap_strdup("db-1.example");
    s->platform = EPW__PLATFORM__LINUX;
    s->netns = epw_snap_strdup("blue");
    s->pressure_pct = 87.3;
    s->pressure_source = epw_snap_strdup("destination 10.0.0.5:5432");

    epw_testsnap_range(s, EPW__PROTOCOL__TCP, EPW__FAMILY__IPV4, 32768, 28232, 0,
                       EPW__RANGE_SOURCE__RANGE_SYSCTL);
    epw_testsnap_range(s, EPW__PROTOCOL__UDP, EPW__FAMILY__IPV6, 49152, 16384, 12,
                       EPW__RANGE_SOURCE__RANGE_DEFAULT);

    add_address(s, "10.0.0.2", EPW__PROTOCOL__TCP, EPW__FAMILY__IPV4, 24650, 87.3);
    add_address(s, "fe80::1", EPW__PROTOCOL__TCP, EPW__FAMILY__IPV6, 3, 0.01);
    add_address(s, "0.0.0.0", EPW__PROTOCOL__UDP, EPW__FAMILY__IPV4, 17, 0.06);

    epw_testsnap_host(s, EPW__PROTOCOL__TCP, 24653, 28232, 87.32);
    epw_testsnap_host(s, EPW__PROTOCOL__UDP, 17, 28232, 0.06);

    epw_testsnap_destination(s, "10.0.0.2", "10.0.0.5", 5432, 24600, 3632, 87.1);
    s->destination_count = 31;

    for (i = 0; i < 3; i++)
        epw_testsnap_state(s, states[i], (uint32_t)(1000 * (i + 1)));

    epw_testsnap_process(s, 4242, "pgbouncer", 24000, 0);
    epw_testsnap_process(s, 0, NULL, 653, 1);

    epw_testsnap_remote(s, "10.0.0.5", 5432, 24600, 0);
    epw_testsnap_remote(s, NULL, 0, 53, 1);

    s->kernel_ports = 2;
    epw_testsnap_listening(s, listening, 3);
    s->pid_count = 120;
    s->exclusive_ports = 6;
    s->total_sockets = 25000;
    s->time_wait->seconds = 60;
    s->time_wait->is_default = 1;

    epw_testsnap_event(s, 4231, 7, T0 - 61250, T0 - 1);

    assert_int_equal(epw_snap_add_note(s, "kernel ports %s", "estimated"), 0);
    assert_int_equal(epw_snap_add_note(s, "second note"), 0);
    s->dropped_before = 5;
    s->port_starved = 1;
    s->spooled = 3;
    return s;
}

static char *render(const Epw__Snapshot *s)
{
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(epw_table_render(s, 0, &text, &len), 0);
    return text;
}

/* snapshot -> JSON text -> parse -> snapshot: the same table and the same JSON. */
static void test_snapshot_round_trip(void **state)
{
    Epw__Snapshot *a = full_snap(), *b = NULL;
    char *json_a = epw_json_snapshot_string(a, 0), *json_b, *table_a, *table_b;
    cJSON *j;

    (void)state;
    assert_non_null(json_a);
    j = cJSON_Parse(json_a);
    assert_non_null(j);
    /* What the collector adds must not disturb the reader. */
    assert_non_null(cJSON_AddStringToObject(j, "collector_extra", "ignored"));
    b = (Epw__Snapshot *)(uintptr_t)1;
    assert_int_equal(epw_json_to_snapshot(j, &b), 0);
    assert_non_null(b);

    table_a = render(a);
    table_b = render(b);
    if (getenv("EPW_DUMP"))
        fputs(table_b, stderr);
    assert_string_equal(table_a, table_b);
    assert_non_null(strstr(table_b, "Network namespace: blue\n"));
    assert_non_null(strstr(table_b, "pgbouncer"));

    json_b = epw_json_snapshot_string(b, 0);
    assert_non_null(json_b);
    assert_string_equal(json_a, json_b);
    /* Fields the table does not show, checked directly. */
    assert_true(b->seq == 123456789012345ULL);
    assert_int_equal(b->sample_duration_us, 123457);
    assert_int_equal(b->events[0]->first_ms, T0 - 61250);
    assert_int_equal(b->events[0]->last_ms, T0 - 1);
    assert_int_equal(b->dropped_before, 5);
    assert_int_equal(b->port_starved, 1);
    assert_int_equal(b->spooled, 3);
    assert_int_equal(b->ranges[1]->family, EPW__FAMILY__IPV6);
    assert_int_equal(b->ranges[1]->source, EPW__RANGE_SOURCE__RANGE_DEFAULT);
    assert_string_equal(b->states[2]->state, "CLOSE_WAIT");

    cJSON_free(json_a);
    cJSON_free(json_b);
    free(table_a);
    free(table_b);
    cJSON_Delete(j);
    epw_snap_free(a);
    epw_snap_free(b);
}

/* The empty snapshot (and an object with no keys at all) come back as the defaults. */
static void test_snapshot_empty(void **state)
{
    Epw__Snapshot *a = epw_snap_new(), *b = NULL;
    cJSON *j = cJSON_CreateObject();
    char *ja, *jb;

    (void)state;
    assert_int_equal(epw_json_to_snapshot(j, &b), 0);
    ja = epw_json_snapshot_string(a, 0);
    jb = epw_json_snapshot_string(b, 0);
    assert_string_equal(ja, jb);
    cJSON_free(ja);
    cJSON_free(jb);
    cJSON_Delete(j);
    epw_snap_free(a);
    epw_snap_free(b);
}

static void check_bad(const char *text, int want)
{
    cJSON *j = cJSON_Parse(text);
    Epw__Snapshot *s = (Epw__Snapshot *)(uintptr_t)1;

    assert_non_null(j);
    assert_int_equal(epw_json_to_snapshot(j, &s), want);
    assert_null(s);
    cJSON_Delete(j);
}

static void test_snapshot_rejects(void **state)
{
    Epw__Snapshot *s = (Epw__Snapshot *)(uintptr_t)1;

    (void)state;
    check_bad("[]", UV_EINVAL);
    check_bad("{\"hostname\": 5}", EPW_E_PARSE);
    check_bad("{\"time\": \"yesterday\"}", EPW_E_PARSE);
    check_bad("{\"platform\": \"plan9\"}", EPW_E_PARSE);
    check_bad("{\"seq\": -1}", EPW_E_PARSE);
    check_bad("{\"seq\": 1.5}", EPW_E_PARSE);
    check_bad("{\"kernel_ports\": 4294967296}", EPW_E_PARSE);
    check_bad("{\"sample_duration_ms\": -3}", EPW_E_PARSE);
    check_bad("{\"addresses\": {}}", EPW_E_PARSE);
    check_bad("{\"addresses\": [5]}", EPW_E_PARSE);
    check_bad("{\"addresses\": [{\"protocol\": \"sctp\"}]}", EPW_E_PARSE);
    check_bad("{\"ranges\": [{\"source\": \"guess\"}]}", EPW_E_PARSE);
    check_bad("{\"states\": {\"ESTABLISHED\": \"many\"}}", EPW_E_PARSE);
    check_bad("{\"top_processes\": [{\"other\": 1}]}", EPW_E_PARSE);
    check_bad("{\"listening_ports\": [80, \"http\"]}", EPW_E_PARSE);
    check_bad("{\"notes\": [1]}", EPW_E_PARSE);
    check_bad("{\"time_wait\": 60}", EPW_E_PARSE);
    check_bad("{\"events\": [{\"first\": \"soon\"}]}", EPW_E_PARSE);
    assert_int_equal(epw_json_to_snapshot(NULL, &s), UV_EINVAL);
    assert_null(s);
    assert_int_equal(epw_json_to_snapshot(NULL, NULL), UV_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trend_arrow),          cmocka_unit_test(test_format_ago),
        cmocka_unit_test(test_utf8_locale),          cmocka_unit_test(test_text_width),
        cmocka_unit_test(test_url_escape),           cmocka_unit_test(test_sparkline),
        cmocka_unit_test(test_hosts_sort_and_table), cmocka_unit_test(test_hosts_missing_keys),
        cmocka_unit_test(test_alerts_table),         cmocka_unit_test(test_history),
        cmocka_unit_test(test_snapshot_round_trip),  cmocka_unit_test(test_snapshot_empty),
        cmocka_unit_test(test_snapshot_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
