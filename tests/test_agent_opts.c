/* test_agent_opts: epwatch-agent's command-line parsing (defaults, values, combinations). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "agent_opts.h"
#include "epw_err.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char err[256];

/* Literals are const under -Wwrite-strings; the parser never writes to argv. */
static int parse(int argc, const char *const argv[], agent_opts_t *o)
{
    return agent_opts_parse(argc, (char *const *)argv, o, err, sizeof(err));
}

/* Asserts a usage error whose message contains `want`. */
static void assert_usage(int argc, const char *const argv[], const char *want)
{
    agent_opts_t o;

    assert_int_equal(parse(argc, argv, &o), EPW_E_USAGE);
    if (!strstr(err, want))
        fail_msg("message '%s' lacks '%s'", err, want);
}

static void test_defaults(void **state)
{
    const char *argv[] = {"epwatch-agent"};
    agent_opts_t o;

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &o), 0);
    assert_int_equal(err[0], '\0');
    assert_int_equal(o.action, AGENT_ACTION_RUN);
    assert_int_equal(o.once, 0);
    assert_int_equal(o.json, 0);
    assert_null(o.netstat_path);
    assert_null(o.log_path);
    assert_int_equal(o.interval_ms, 60000);
    assert_int_equal(o.log_max_bytes, 10u * 1024 * 1024);
    assert_int_equal(o.log_keep, 5);
    assert_int_equal(o.count, 0);
    assert_int_equal(o.top_n, 0);
    assert_int_equal(o.attribute_pids, 1);
    assert_int_equal(o.log_level, EPW_LOG_INFO);
}

static void test_values(void **state)
{
    const char *argv[] = {"a",         "--log",       "/tmp/x.log", "--interval=1m30s",
                          "--log-max", "64K",         "--log-keep", "0",
                          "--count",   "3",           "--quiet",    "--top=12",
                          "--no-pids", "--all-netns", "--json",     "--log-level",
                          "debug"};
    agent_opts_t o;

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &o), 0);
    assert_string_equal(o.log_path, "/tmp/x.log");
    assert_int_equal(o.interval_ms, 90000);
    assert_int_equal(o.log_max_bytes, 65536);
    assert_int_equal(o.log_keep, 0);
    assert_int_equal(o.count, 3);
    assert_int_equal(o.quiet, 1);
    assert_int_equal(o.top_n, 12);
    assert_int_equal(o.attribute_pids, 0);
    assert_int_equal(o.all_netns, 1);
    assert_int_equal(o.json, 1);
    assert_int_equal(o.log_level, EPW_LOG_DEBUG);
}

static void test_netstat_implies_once(void **state)
{
    const char *argv[] = {"a", "--netstat", "n.txt", "--netsh", "s.txt", "--json"};
    const char *argv2[] = {"a", "--once", "--interval", "200ms"};
    agent_opts_t o;

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv, &o), 0);
    assert_int_equal(o.once, 1);
    assert_string_equal(o.netstat_path, "n.txt");
    assert_string_equal(o.netsh_path, "s.txt");
    assert_usage(ARGC(argv2), argv2, "--interval");
}

static void test_actions(void **state)
{
    const char *help[] = {"a", "--once", "--help", "--bogus"};
    const char *h[] = {"a", "-h"};
    const char *ver[] = {"a", "--version"};
    agent_opts_t o;

    (void)state;
    assert_int_equal(parse(ARGC(help), help, &o), 0);
    assert_int_equal(o.action, AGENT_ACTION_HELP);
    assert_int_equal(parse(ARGC(h), h, &o), 0);
    assert_int_equal(o.action, AGENT_ACTION_HELP);
    assert_int_equal(parse(ARGC(ver), ver, &o), 0);
    assert_int_equal(o.action, AGENT_ACTION_VERSION);
}

static void test_bad_values(void **state)
{
    const char *a1[] = {"a", "--interval", "5x"};
    const char *a2[] = {"a", "--interval", "50ms"};
    const char *a3[] = {"a", "--log-max", "10Q"};
    const char *a4[] = {"a", "--top", "-3"};
    const char *a5[] = {"a", "--top", "0"};
    const char *a6[] = {"a", "--log-keep", "12abc"};
    const char *a7[] = {"a", "--log-level", "loud"};
    const char *a8[] = {"a", "--count"};
    const char *a9[] = {"a", "--log="};
    const char *a10[] = {"a", "--once=yes"};
    const char *a11[] = {"a", "--bogus"};
    const char *a12[] = {"a", "stray"};
    const char *a13[] = {"a", "--top", "99999999999999999999999"};

    (void)state;
    assert_usage(ARGC(a1), a1, "--interval: invalid duration '5x'");
    assert_usage(ARGC(a2), a2, "--interval: '50ms' is out of range");
    assert_usage(ARGC(a3), a3, "--log-max: invalid size '10Q'");
    assert_usage(ARGC(a4), a4, "--top: '-3' is not a whole number");
    assert_usage(ARGC(a5), a5, "--top: '0' is out of range");
    assert_usage(ARGC(a6), a6, "--log-keep");
    assert_usage(ARGC(a7), a7, "--log-level: unknown level 'loud'");
    assert_usage(ARGC(a8), a8, "--count: missing value");
    assert_usage(ARGC(a9), a9, "--log: empty file name");
    assert_usage(ARGC(a10), a10, "--once: takes no value");
    assert_usage(ARGC(a11), a11, "unknown option '--bogus'");
    assert_usage(ARGC(a12), a12, "unexpected argument 'stray'");
    assert_usage(ARGC(a13), a13, "--top");
}

static void test_combinations(void **state)
{
    const char *a1[] = {"a", "--netsh", "s.txt"};
    const char *a2[] = {"a", "--netstat", "n.txt", "--all-netns"};
    const char *a3[] = {"a", "--netstat", "n.txt", "--log", "x.log"};
    const char *a4[] = {"a", "--quiet"};
    const char *a5[] = {"a", "--once", "--count", "2"};

    (void)state;
    assert_usage(ARGC(a1), a1, "--netsh: needs --netstat");
    assert_usage(ARGC(a2), a2, "--all-netns");
    assert_usage(ARGC(a3), a3, "--log: --netstat");
    assert_usage(ARGC(a4), a4, "--quiet: needs --log");
    assert_usage(ARGC(a5), a5, "--count: only for continuous");
}

/* The help text documents every option the parser accepts. */
static void test_usage_complete(void **state)
{
    static const char *const names[] = {
        "--once",    "--json",      "--netstat",  "--netsh",   "--all-netns", "--top",
        "--no-pids", "--log ",      "--interval", "--log-max", "--log-keep",  "--count",
        "--quiet",   "--log-level", "--help",     "--version", "Examples:",   "Exit status:"};
    const char *u = agent_opts_usage();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strstr(u, names[i]))
            fail_msg("usage lacks %s", names[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_netstat_implies_once),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_combinations),
        cmocka_unit_test(test_usage_complete),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
