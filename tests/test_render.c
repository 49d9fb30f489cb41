/* test_render: JSON and table rendering of hand-built snapshots. */
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

#include "epw_json.h"
#include "epw_snap.h"
#include "epw_table.h"
#include "support/epw_testsnap.h"

/* 2026-11-25T17:57:22Z */
#define T0 1795629442000LL

static const char classic_header[] = "Computer DateTime             LocalAddress #OfEPortsInUse "
                                     "Max#OfEPorts %EPortUsage #OfTcpListeningPorts #OfPids";

/* A Windows-like snapshot touching every field. */
static Epw__Snapshot *make_snap(void)
{
    static const uint32_t listening[] = {80, 445};
    Epw__Snapshot *s = epw_snap_new();

    assert_non_null(s);
    s->seq = 42;
    s->taken_at_ms = T0;
    s->sample_duration_us = 12500;
    s->hostname = epw_snap_strdup("ETCHED");
    s->platform = EPW__PLATFORM__WINDOWS;
    s->pressure_pct = 0.4;
    s->pressure_source = epw_snap_strdup("host tcp");

    epw_testsnap_range(s, EPW__PROTOCOL__TCP, EPW__FAMILY__IPV6, 49152, 16384, 100,
                       EPW__RANGE_SOURCE__RANGE_CAPTURED);

    epw_testsnap_address(s, "127.0.0.1", EPW__PROTOCOL__TCP, EPW__FAMILY__IPV4, 6, 16384, 0.0, 15,
                         11);
    epw_testsnap_address(s, "192.168.1.2", EPW__PROTOCOL__TCP, EPW__FAMILY__IPV4, 69, 16384, 0.4,
                         15, 17);
    epw_testsnap_address(s, "0.0.0.0", EPW__PROTOCOL__UDP, EPW__FAMILY__IPV4, 3, 16384, 0.0, 0, 2);

    epw_testsnap_host(s, EPW__PROTOCOL__TCP, 75, 16284, 0.5);

    epw_testsnap_destination(s, "192.168.1.2", "10.0.0.5", 1433, 60, 16000, 0.4);
    s->destination_count = 7;

    epw_testsnap_state(s, "TIME_WAIT", 50);
    epw_testsnap_state(s, "ESTABLISHED", 25);

    epw_testsnap_process(s, 1234, "sqlservr.exe", 60, 0);
    epw_testsnap_process(s, 0, "", 9, 1);

    epw_testsnap_remote(s, "10.0.0.5", 1433, 60, 0);
    epw_testsnap_remote(s, "", 0, 4, 1);

    s->kernel_ports = 3;
    epw_testsnap_listening(s, listening, 2);
    s->pid_count = 19;
    s->exclusive_ports = 5;
    s->total_sockets = 120;
    s->time_wait->seconds = 240;
    s->time_wait->is_default = 1;

    epw_testsnap_event(s, 4227, 3, T0 - 60000, T0 - 1500);

    assert_int_equal(epw_snap_add_note(s, "range from a %s capture", "netsh"), 0);
    return s;
}

static void assert_num(const cJSON *obj, const char *key, double want)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    assert_non_null(it);
    assert_true(cJSON_IsNumber(it));
    assert_true(it->valuedouble == want);
}

static void assert_str(const cJSON *obj, const char *key, const char *want)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    assert_non_null(it);
    assert_true(cJSON_IsString(it));
    assert_string_equal(it->valuestring, want);
}

static void assert_bool(const cJSON *obj, const char *key, int want)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    assert_non_null(it);
    assert_true(cJSON_IsBool(it));
    assert_int_equal(cJSON_IsTrue(it) ? 1 : 0, want);
}

static const cJSON *array_at(const cJSON *obj, const char *key, int n, int idx)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);

    assert_non_null(arr);
    assert_true(cJSON_IsArray(arr));
    assert_int_equal(cJSON_GetArraySize(arr), n);
    return idx < 0 ? arr : cJSON_GetArrayItem(arr, idx);
}

/* The string variant is parsed back, so the test covers what other tools will read. */
static void test_json_full(void **state)
{
    Epw__Snapshot *s = make_snap();
    char *text = epw_json_snapshot_string(s, 0);
    cJSON *j;
    const cJSON *o;

    (void)state;
    assert_non_null(text);
    assert_null(strchr(text, '\n'));
    j = cJSON_Parse(text);
    assert_non_null(j);

    assert_str(j, "hostname", "ETCHED");
    assert_str(j, "time", "2026-11-25T17:57:22Z");
    assert_str(j, "platform", "windows");
    assert_num(j, "seq", 42);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "netns"));
    assert_num(j, "sample_duration_ms", 12.5);
    assert_num(j, "pressure_pct", 0.4);
    assert_str(j, "pressure_source", "host tcp");

    o = array_at(j, "ranges", 1, 0);
    assert_str(o, "protocol", "tcp");
    assert_str(o, "family", "ipv6");
    assert_num(o, "start", 49152);
    assert_num(o, "count", 16384);
    assert_num(o, "excluded", 100);
    assert_str(o, "source", "captured");

    o = array_at(j, "addresses", 3, 1);
    assert_str(o, "local_address", "192.168.1.2");
    assert_str(o, "protocol", "tcp");
    assert_str(o, "family", "ipv4");
    assert_num(o, "ports_in_use", 69);
    assert_num(o, "max_ports", 16384);
    assert_num(o, "usage_pct", 0.4);
    assert_num(o, "listening_ports", 15);
    assert_num(o, "pids", 17);
    assert_str(array_at(j, "addresses", 3, 2), "protocol", "udp");

    o = array_at(j, "host", 1, 0);
    assert_str(o, "protocol", "tcp");
    assert_num(o, "ports_in_use", 75);
    assert_num(o, "max_ports", 16284);
    assert_num(o, "usage_pct", 0.5);

    o = array_at(j, "destinations", 1, 0);
    assert_str(o, "local_address", "192.168.1.2");
    assert_str(o, "remote_address", "10.0.0.5");
    assert_num(o, "remote_port", 1433);
    assert_str(o, "protocol", "tcp");
    assert_num(o, "connections", 60);
    assert_num(o, "free_ports", 16000);
    assert_num(o, "usage_pct", 0.4);
    assert_num(j, "destination_count", 7);

    o = cJSON_GetObjectItemCaseSensitive(j, "states");
    assert_true(cJSON_IsObject(o));
    assert_int_equal(cJSON_GetArraySize(o), 2);
    assert_num(o, "TIME_WAIT", 50);
    assert_num(o, "ESTABLISHED", 25);

    o = array_at(j, "top_processes", 2, 0);
    assert_num(o, "pid", 1234);
    assert_str(o, "name", "sqlservr.exe");
    assert_num(o, "ports", 60);
    assert_bool(o, "other", 0);
    assert_bool(array_at(j, "top_processes", 2, 1), "other", 1);
    assert_num(array_at(j, "top_processes", 2, 1), "ports", 9);

    o = array_at(j, "top_remotes", 2, 0);
    assert_str(o, "remote_address", "10.0.0.5");
    assert_num(o, "remote_port", 1433);
    assert_num(o, "connections", 60);
    assert_bool(o, "other", 0);
    assert_bool(array_at(j, "top_remotes", 2, 1), "other", 1);

    assert_num(j, "kernel_ports", 3);
    o = array_at(j, "listening_ports", 2, -1);
    assert_int_equal(cJSON_GetArrayItem(o, 0)->valueint, 80);
    assert_int_equal(cJSON_GetArrayItem(o, 1)->valueint, 445);
    assert_num(j, "pid_count", 19);
    assert_num(j, "exclusive_ports", 5);
    assert_num(j, "total_sockets", 120);

    o = cJSON_GetObjectItemCaseSensitive(j, "time_wait");
    assert_true(cJSON_IsObject(o));
    assert_num(o, "seconds", 240);
    assert_bool(o, "default", 1);

    o = array_at(j, "events", 1, 0);
    assert_num(o, "event_id", 4227);
    assert_str(o, "first", "2026-11-25T17:56:22.000Z");
    assert_str(o, "last", "2026-11-25T17:57:20.500Z");
    assert_num(o, "count", 3);

    o = array_at(j, "notes", 1, 0);
    assert_true(cJSON_IsString(o));
    assert_string_equal(o->valuestring, "range from a netsh capture");

    assert_num(j, "dropped_before", 0);
    assert_bool(j, "port_starved", 0);
    assert_num(j, "spooled", 0);

    cJSON_Delete(j);
    cJSON_free(text);
    epw_snap_free(s);
}

/* An empty snapshot still has every array, so consumers need no existence checks; netns shows
 * up only when set. */
static void test_json_empty_and_netns(void **state)
{
    Epw__Snapshot *s = epw_snap_new();
    cJSON *j;
    static const char *const arrays[] = {"ranges",          "addresses",     "host",
                                         "destinations",    "top_processes", "top_remotes",
                                         "listening_ports", "events",        "notes"};
    size_t i;

    (void)state;
    assert_non_null(s);
    s->platform = EPW__PLATFORM__LINUX;
    j = epw_json_snapshot(s);
    assert_non_null(j);
    assert_str(j, "hostname", "");
    assert_str(j, "time", "1970-01-01T00:00:00Z");
    assert_str(j, "platform", "linux");
    for (i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
        array_at(j, arrays[i], 0, -1);
    assert_true(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "states")));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "netns"));
    cJSON_Delete(j);

    s->netns = epw_snap_strdup("blue");
    j = epw_json_snapshot(s);
    assert_non_null(j);
    assert_str(j, "netns", "blue");
    cJSON_Delete(j);
    assert_null(epw_json_snapshot(NULL));
    epw_snap_free(s);
}

/* Returns a malloc'd copy of line `n` (0-based) of text, without the newline. */
static char *line_at(const char *text, int n)
{
    const char *end;
    char *line;

    while (n-- > 0) {
        text = strchr(text, '\n');
        assert_non_null(text);
        text++;
    }
    end = strchr(text, '\n');
    assert_non_null(end);
    line = malloc((size_t)(end - text) + 1);
    assert_non_null(line);
    memcpy(line, text, (size_t)(end - text));
    line[end - text] = '\0';
    return line;
}

static void test_table_classic(void **state)
{
    Epw__Snapshot *s = make_snap();
    char *text = NULL, *l0, *l1, *l2, *l3;
    size_t len = 0;

    (void)state;
    assert_int_equal(epw_table_render(s, 0, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);

    if (getenv("EPW_DUMP")) /* to eyeball the layout */
        fputs(text, stderr);
    l0 = line_at(text, 0);
    l1 = line_at(text, 1);
    l2 = line_at(text, 2);
    l3 = line_at(text, 3);
    /* Header first; numbers right-aligned under their (left-aligned) header. */
    assert_string_equal(l0, classic_header);
    assert_string_equal(l1, "-------- --------             ------------ -------------- "
                            "------------ ----------- -------------------- -------");
    assert_string_equal(l2, "ETCHED   2026-11-25T17:57:22Z 127.0.0.1                 6 "
                            "       16384         0.0                   15      11");
    assert_string_equal(l3, "ETCHED   2026-11-25T17:57:22Z 192.168.1.2              69 "
                            "       16384         0.4                   15      17");
    /* UDP rows in their own labelled table. */
    assert_non_null(strstr(text, "\nUDP:\n"));
    assert_non_null(strstr(text, "ETCHED   2026-11-25T17:57:22Z 0.0.0.0                   3"));
    free(l0);
    free(l1);
    free(l2);
    free(l3);
    free(text);
    epw_snap_free(s);
}

static void test_table_sections(void **state)
{
    Epw__Snapshot *s = make_snap();
    char *text = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(epw_table_render(s, 0, &text, &len), 0);
    assert_non_null(strstr(text, "\nPressure: 0.4% (source: host tcp; model: windows:"));
    assert_non_null(strstr(text, "\nHost-wide:\n  Protocol PortsInUse MaxPorts %Usage\n"));
    assert_non_null(strstr(text, "  tcp              75    16284    0.5\n"));
    assert_non_null(strstr(text, "\nTop destinations (1 of 7):\n"));
    assert_non_null(strstr(text, "  192.168.1.2  10.0.0.5            1433 tcp"));
    assert_non_null(strstr(text, "  TIME_WAIT      50\n"));
    assert_non_null(strstr(text, "\nTop processes:\n  PID  Name         Ports\n"));
    assert_non_null(strstr(text, "  1234 sqlservr.exe    60\n"));
    assert_non_null(strstr(text, "     - (other)          9\n"));
    assert_non_null(strstr(text, "  (other)                -           4\n"));
    assert_non_null(strstr(text, "\nKernel-owned ports: 3\n"));
    assert_non_null(strstr(text, "Listening ports (2): 80 445\n"));
    assert_non_null(strstr(text, "TIME_WAIT: 240s (platform default)\n"));
    assert_non_null(strstr(text, "  tcp      ipv6   49152 65535 16384      100 captured\n"));
    assert_non_null(strstr(text, "     4227 2026-11-25T17:56:22Z 2026-11-25T17:57:20Z     3\n"));
    assert_non_null(strstr(text, "\nNotes:\n  - range from a netsh capture\n"));
    /* A block ends with one empty line so blocks can be concatenated. */
    assert_true(len >= 2 && strcmp(text + len - 2, "\n\n") == 0);
    /* No trailing blanks on any line. */
    assert_null(strstr(text, " \n"));
    free(text);
    epw_snap_free(s);
}

static void test_table_minimal(void **state)
{
    Epw__Snapshot *s = epw_snap_new();
    char *text = NULL;
    size_t len = 0;
    FILE *fp;
    char buf[256];

    (void)state;
    assert_non_null(s);
    s->netns = epw_snap_strdup("red");
    assert_int_equal(epw_table_render(s, EPW_TABLE_CLASSIC_ONLY, &text, &len), 0);
    /* Namespace label, then the (empty) TCP table, no UDP table, no sections. */
    assert_string_equal(text, "Network namespace: red\n"
                              "Computer DateTime LocalAddress #OfEPortsInUse Max#OfEPorts "
                              "%EPortUsage #OfTcpListeningPorts #OfPids\n"
                              "-------- -------- ------------ -------------- ------------ "
                              "----------- -------------------- -------\n\n");
    free(text);
    assert_int_equal(epw_table_render(NULL, 0, &text, &len), UV_EINVAL);
    assert_null(text);
    assert_int_equal(len, 0);

    /* The FILE* variant writes the same block as the default render. */
    /* A named file in the working directory: tmpfile() needs rights on C:\ on Windows. */
    fp = fopen("test_render.out", "w+b");
    assert_non_null(fp);
    assert_int_equal(epw_table_snapshot(s, fp), 0);
    rewind(fp);
    assert_non_null(fgets(buf, sizeof(buf), fp));
    assert_string_equal(buf, "Network namespace: red\n");
    assert_non_null(fgets(buf, sizeof(buf), fp));
    assert_true(strncmp(buf, "Computer DateTime", 17) == 0);
    fclose(fp);
    remove("test_render.out");
    epw_snap_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_full),     cmocka_unit_test(test_json_empty_and_netns),
        cmocka_unit_test(test_table_classic), cmocka_unit_test(test_table_sections),
        cmocka_unit_test(test_table_minimal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
