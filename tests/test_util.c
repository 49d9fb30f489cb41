/* test_util: durations, sizes, RFC 3339 times, host:port, error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "epw_err.h"
#include "epw_util.h"

#include <uv.h>

static void test_duration(void **state)
{
    uint64_t ms;
    char buf[32];

    (void)state;
    assert_int_equal(epw_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(epw_parse_duration("10s", &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(epw_parse_duration("1m30s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(epw_parse_duration("2h", &ms), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(epw_parse_duration("30d", &ms), 0);
    assert_int_equal(ms, 30ull * 86400000);
    assert_int_equal(epw_parse_duration("45", &ms), 0);
    assert_int_equal(ms, 45000);
    assert_int_equal(epw_parse_duration("", &ms), EPW_E_PARSE);
    assert_int_equal(epw_parse_duration("5x", &ms), EPW_E_PARSE);
    assert_int_equal(epw_parse_duration("m", &ms), EPW_E_PARSE);
    assert_int_equal(epw_parse_duration("-5s", &ms), EPW_E_PARSE);
    assert_int_equal(epw_parse_duration("1s5", &ms), EPW_E_PARSE);
    assert_int_equal(epw_parse_duration("99999999999999999999999s", &ms), EPW_E_PARSE);
    epw_format_duration(90000, buf, sizeof(buf));
    assert_string_equal(buf, "90s");
    epw_format_duration(300000, buf, sizeof(buf));
    assert_string_equal(buf, "5m");
    epw_format_duration(1500, buf, sizeof(buf));
    assert_string_equal(buf, "1500ms");
}

static void test_size(void **state)
{
    uint64_t b;

    (void)state;
    assert_int_equal(epw_parse_size("64M", &b), 0);
    assert_int_equal(b, 64ull << 20);
    assert_int_equal(epw_parse_size("10KiB", &b), 0);
    assert_int_equal(b, 10240);
    assert_int_equal(epw_parse_size("1G", &b), 0);
    assert_int_equal(b, 1ull << 30);
    assert_int_equal(epw_parse_size("4096", &b), 0);
    assert_int_equal(b, 4096);
    assert_int_equal(epw_parse_size("12Q", &b), EPW_E_PARSE);
    assert_int_equal(epw_parse_size("", &b), EPW_E_PARSE);
}

static void test_rfc3339(void **state)
{
    char buf[40];
    int64_t ms;

    (void)state;
    assert_int_equal(epw_format_rfc3339(0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(epw_format_rfc3339(1795629442000LL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2026-11-25T17:57:22Z");
    assert_int_equal(epw_format_rfc3339_ms(951782400123LL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2000-02-29T00:00:00.123Z");
    assert_int_equal(epw_parse_rfc3339("2026-11-25T17:57:22Z", &ms), 0);
    assert_int_equal(ms, 1795629442000LL);
    assert_int_equal(epw_parse_rfc3339("2026-11-25T18:57:22.5+01:00", &ms), 0);
    assert_int_equal(ms, 1795629442500LL);
    assert_int_equal(epw_parse_rfc3339("2026-13-25T17:57:22Z", &ms), EPW_E_PARSE);
    assert_int_equal(epw_parse_rfc3339("2026-11-25T17:57:22", &ms), EPW_E_PARSE);
    assert_int_equal(epw_format_rfc3339(0, buf, 5), UV_ENOBUFS);
}

static void test_hostport(void **state)
{
    char host[64];
    uint16_t port;

    (void)state;
    assert_int_equal(epw_parse_hostport("collector.example:7443", host, sizeof(host), &port), 0);
    assert_string_equal(host, "collector.example");
    assert_int_equal(port, 7443);
    assert_int_equal(epw_parse_hostport("[::1]:9", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    assert_int_equal(epw_parse_hostport(":8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(epw_parse_hostport("host", host, sizeof(host), &port), EPW_E_PARSE);
    assert_int_equal(epw_parse_hostport("host:0", host, sizeof(host), &port), EPW_E_PARSE);
    assert_int_equal(epw_parse_hostport("host:65536", host, sizeof(host), &port), EPW_E_PARSE);
    assert_int_equal(epw_parse_hostport("::1:80", host, sizeof(host), &port), EPW_E_PARSE);
    assert_int_equal(epw_parse_hostport("h:80", host, 1, &port), EPW_E_PARSE);
    /* fuzz_config: such hosts printed back as other values. */
    assert_int_equal(epw_parse_hostport("[ \0011]:1", host, sizeof(host), &port), EPW_E_PARSE);
    assert_int_equal(epw_parse_hostport("a b:1", host, sizeof(host), &port), EPW_E_PARSE);
    assert_int_equal(epw_parse_hostport("[[::1]:1", host, sizeof(host), &port), EPW_E_PARSE);
    assert_int_equal(epw_parse_hostport("h\tx:1", host, sizeof(host), &port), EPW_E_PARSE);
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(epw_strerror(EPW_E_PARSE), "malformed input");
    assert_string_equal(epw_err_name(EPW_E_DB), "EPW_E_DB");
    assert_string_equal(epw_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(epw_err_name(-40090), "EPW_E_UNKNOWN");
    assert_true(epw_pct(1, 3) > 33.2 && epw_pct(1, 3) < 33.4);
    assert_true(epw_pct(0, 0) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration), cmocka_unit_test(test_size),
        cmocka_unit_test(test_rfc3339),  cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
