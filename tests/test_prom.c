/* test_prom: the Prometheus text writer (escaping, names, order, values, a full exposition). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "prom.h"

/* The exposition the collector's /metrics will look like; also checked by promtool (http.cmake). */
static const char sample_text[] =
    "# HELP epw_up 1 when the collector is serving.\n"
    "# TYPE epw_up gauge\n"
    "epw_up 1\n"
    "# HELP epw_port_pressure_ratio Ephemeral ports in use / available, per host and protocol.\n"
    "# TYPE epw_port_pressure_ratio gauge\n"
    "epw_port_pressure_ratio{host=\"web-01\",proto=\"tcp\"} 0.8125\n"
    "epw_port_pressure_ratio{host=\"db \\\"primary\\\"\",proto=\"tcp\"} 0.1\n"
    "epw_port_pressure_ratio{host=\"C:\\\\temp\\nline2\",proto=\"udp\"} NaN\n"
    "# HELP epw_snapshots_received_total Snapshots stored, by agent.\\nMultiline \\\\ help.\n"
    "# TYPE epw_snapshots_received_total counter\n"
    "epw_snapshots_received_total{host=\"web-01\"} 18446744073709\n"
    "epw_snapshots_received_total{host=\"\"} 0\n"
    "# HELP epw_misc Odd values.\n"
    "# TYPE epw_misc untyped\n"
    "epw_misc{k=\"a\"} +Inf\n"
    "epw_misc{k=\"b\"} -Inf\n"
    "epw_misc{k=\"c\"} -2.5e-07\n"
    "epw_misc{k=\"d\"} 9223372036854775807\n";

static int write_sample(prom_t *w)
{
    const prom_label_t l1[] = {{"host", "web-01"}, {"proto", "tcp"}};
    const prom_label_t l2[] = {{"host", "db \"primary\""}, {"proto", "tcp"}};
    const prom_label_t l3[] = {{"host", "C:\\temp\nline2"}, {"proto", "udp"}};
    const prom_label_t c1[] = {{"host", "web-01"}};
    const prom_label_t c2[] = {{"host", ""}};
    const prom_label_t m[] = {{"k", "a"}, {"k", "b"}, {"k", "c"}, {"k", "d"}};
    int rc = 0;

    rc |= prom_family(w, "epw_up", PROM_GAUGE, "1 when the collector is serving.");
    rc |= prom_sample(w, NULL, 0, 1.0);
    rc |= prom_family(w, "epw_port_pressure_ratio", PROM_GAUGE,
                      "Ephemeral ports in use / available, per host and protocol.");
    rc |= prom_sample(w, l1, 2, 0.8125);
    rc |= prom_sample(w, l2, 2, 0.1);
    rc |= prom_sample(w, l3, 2, NAN);
    rc |= prom_family(w, "epw_snapshots_received_total", PROM_COUNTER,
                      "Snapshots stored, by agent.\nMultiline \\ help.");
    rc |= prom_sample_int(w, c1, 1, 18446744073709);
    rc |= prom_sample(w, c2, 1, 0.0);
    rc |= prom_family(w, "epw_misc", PROM_UNTYPED, "Odd values.");
    rc |= prom_sample(w, &m[0], 1, INFINITY);
    rc |= prom_sample(w, &m[1], 1, -INFINITY);
    rc |= prom_sample(w, &m[2], 1, -2.5e-7);
    rc |= prom_sample_int(w, &m[3], 1, INT64_MAX);
    return rc;
}

static void test_full_exposition(void **state)
{
    prom_t *w;
    size_t len;
    char *t;
    (void)state;

    assert_int_equal(prom_create(&w), 0);
    assert_int_equal(write_sample(w), 0);
    assert_string_equal(prom_text(w, &len), sample_text);
    assert_int_equal(len, strlen(sample_text));
    t = prom_take(w, &len);
    assert_string_equal(t, sample_text);
    free(t);
    /* Taken: the writer starts a new exposition, where the same families are allowed again. */
    assert_string_equal(prom_text(w, &len), "");
    assert_int_equal(len, 0);
    assert_int_equal(write_sample(w), 0);
    assert_string_equal(prom_text(w, NULL), sample_text);
    prom_destroy(w);
    prom_destroy(NULL);
}

static void test_values(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.0, "0"},
        {42.0, "42"},
        {-7.0, "-7"},
        {0.1, "0.1"},
        {1.0 / 3.0, "0.3333333333333333"},
        {12.5, "12.5"},
        {1e300, "1e+300"},
        {0.1 + 0.2, "0.30000000000000004"},
        {9007199254740991.0, "9007199254740991"},
        {9007199254740992.0, "9007199254740992"},
        {1e20, "1e+20"},
        {5e-324, "4.94065645841247e-324"},
    };
    char buf[40];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        prom_format_value(cases[i].v, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
        /* Whatever the form, it reads back exactly. */
        assert_true(strtod(buf, NULL) == cases[i].v);
    }
    prom_format_value(NAN, buf, sizeof(buf));
    assert_string_equal(buf, "NaN");
    prom_format_value(-INFINITY, buf, sizeof(buf));
    assert_string_equal(buf, "-Inf");
}

static void test_escaping(void **state)
{
    const prom_label_t l[] = {{"path", "a\\b\"c\nd\te"}};
    prom_t *w;
    (void)state;

    assert_int_equal(prom_create(&w), 0);
    assert_int_equal(prom_family(w, "x", PROM_GAUGE, "back\\slash \"quotes\" stay\nnewline"), 0);
    assert_int_equal(prom_sample(w, l, 1, 1), 0);
    /* HELP escapes \ and newline but not quotes; label values escape all three, not tabs. */
    assert_string_equal(prom_text(w, NULL), "# HELP x back\\\\slash \"quotes\" stay\\nnewline\n"
                                            "# TYPE x gauge\n"
                                            "x{path=\"a\\\\b\\\"c\\nd\te\"} 1\n");
    prom_destroy(w);
}

static void expect_einval(int (*step)(prom_t *w))
{
    prom_t *w;

    assert_int_equal(prom_create(&w), 0);
    assert_int_equal(prom_family(w, "ok_metric", PROM_GAUGE, "ok"), 0);
    assert_int_equal(step(w), UV_EINVAL);
    /* Sticky, and the text before the error is left intact. */
    assert_int_equal(prom_error(w), UV_EINVAL);
    assert_int_equal(prom_sample(w, NULL, 0, 1), UV_EINVAL);
    assert_true(strncmp(prom_text(w, NULL), "# HELP ok_metric ok\n# TYPE ok_metric gauge\n", 43) ==
                0);
    assert_null(prom_take(w, NULL));
    prom_destroy(w);
}

static int bad_metric_name(prom_t *w)
{
    return prom_family(w, "1abc", PROM_GAUGE, NULL);
}
static int bad_metric_char(prom_t *w)
{
    return prom_family(w, "a-b", PROM_GAUGE, NULL);
}
static int empty_metric(prom_t *w)
{
    return prom_family(w, "", PROM_GAUGE, NULL);
}
static int family_twice(prom_t *w)
{
    if (prom_family(w, "other", PROM_GAUGE, NULL))
        return -1;
    return prom_family(w, "ok_metric", PROM_GAUGE, NULL);
}
static int bad_label_name(prom_t *w)
{
    const prom_label_t l[] = {{"a:b", "x"}};
    return prom_sample(w, l, 1, 1);
}
static int reserved_label(prom_t *w)
{
    const prom_label_t l[] = {{"__name__", "x"}};
    return prom_sample(w, l, 1, 1);
}
static int duplicate_label(prom_t *w)
{
    const prom_label_t l[] = {{"a", "x"}, {"b", "y"}, {"a", "z"}};
    return prom_sample(w, l, 3, 1);
}
static int null_label_value(prom_t *w)
{
    const prom_label_t l[] = {{"a", NULL}};
    return prom_sample(w, l, 1, 1);
}

static void test_errors(void **state)
{
    prom_t *w;
    (void)state;

    expect_einval(bad_metric_name);
    expect_einval(bad_metric_char);
    expect_einval(empty_metric);
    expect_einval(family_twice);
    expect_einval(bad_label_name);
    expect_einval(reserved_label);
    expect_einval(duplicate_label);
    expect_einval(null_label_value);
    /* A sample before any family. */
    assert_int_equal(prom_create(&w), 0);
    assert_int_equal(prom_sample(w, NULL, 0, 1), UV_EINVAL);
    prom_destroy(w);
    /* Colons are allowed in metric names, digits after the first character. */
    assert_int_equal(prom_create(&w), 0);
    assert_int_equal(prom_family(w, "epw:rule_5m", PROM_GAUGE, NULL), 0);
    assert_int_equal(prom_family(w, "_x9", PROM_COUNTER, NULL), 0);
    prom_destroy(w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_exposition),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_errors),
    };

    /* `test_prom --emit`: print the sample exposition as the writer makes it (for promtool). */
    if (argc == 2 && strcmp(argv[1], "--emit") == 0) {
        prom_t *w;
        int rc;
        if (prom_create(&w))
            return 1;
        rc = write_sample(w);
        if (!rc)
            fputs(prom_text(w, NULL), stdout);
        prom_destroy(w);
        return rc ? 1 : 0;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
