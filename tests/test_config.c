/* test_config: table-driven configuration (every type, bounds, errors with lines, overrides). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "epw_config.h"
#include "epw_err.h"

/* A small example table with every type, top-level keys and a section. */
typedef struct ex_conf_s {
    epw_cfg_hostport_t collector;
    char *ca;
    bool verbose;
    int top_n;
    uint64_t interval_ms;
    uint64_t spool_max;
    int source;
    epw_cfg_list_t tokens;
    char *webhook_url;
    uint64_t alert_after_ms;
    epw_cfg_list_t recipients;
} ex_conf_t;

static const char *const ex_sources[] = {"auto", "netstat", "proc", NULL};

static const epw_cfg_key_t ex_table[] = {
    EPW_CFG_HOSTPORT("collector", ex_conf_t, collector, "127.0.0.1:7050", EPW_CFG_REQUIRED,
                     "Collector address."),
    EPW_CFG_STRING("ca", ex_conf_t, ca, NULL, 0, "CA certificate file (PEM)."),
    EPW_CFG_BOOL("verbose", ex_conf_t, verbose, "false", "Log at debug level."),
    EPW_CFG_INT("top_n", ex_conf_t, top_n, "10", 1, 100, "Rows kept per ranking."),
    EPW_CFG_DURATION("interval", ex_conf_t, interval_ms, "10s", 1000, 3600000,
                     "Sampling interval."),
    EPW_CFG_SIZE("spool_max", ex_conf_t, spool_max, "64M", 1024, 1ll << 32,
                 "Largest spool on disk."),
    EPW_CFG_ENUM("source", ex_conf_t, source, "auto", ex_sources, "Socket table source."),
    EPW_CFG_LIST("api_tokens", ex_conf_t, tokens, NULL, EPW_CFG_SECRET, "Bearer tokens."),
    EPW_CFG_STRING("alerts.webhook_url", ex_conf_t, webhook_url, NULL, 0, "Webhook URL."),
    EPW_CFG_DURATION("alerts.after", ex_conf_t, alert_after_ms, "5m", 0, 0, "Alert delay."),
    EPW_CFG_LIST("alerts.recipients", ex_conf_t, recipients, "ops, dev", 0, "Who is told."),
    EPW_CFG_END};

static char err[2048];

static int parse(ex_conf_t *c, const char *text)
{
    return epw_config_parse_buf(ex_table, c, text, strlen(text), "t.ini", err, sizeof(err));
}

/* argv built from string literals (they are const under -Wwrite-strings). */
typedef struct args_s {
    int argc;
    char **argv; /* what parse_args compacts */
    char **orig; /* the copies, for freeing */
} args_t;

static args_t mkargs(const char *const *src, int n)
{
    args_t a;
    int i;

    a.argc = n;
    a.argv = calloc((size_t)n + 1, sizeof(char *));
    a.orig = calloc((size_t)n + 1, sizeof(char *));
    assert_non_null(a.argv);
    assert_non_null(a.orig);
    for (i = 0; i < n; i++) {
        a.orig[i] = malloc(strlen(src[i]) + 1);
        assert_non_null(a.orig[i]);
        strcpy(a.orig[i], src[i]);
        a.argv[i] = a.orig[i];
    }
    return a;
}

static void freeargs(args_t *a)
{
    int i;

    for (i = 0; i < a->argc; i++)
        free(a->orig[i]);
    free(a->orig);
    free(a->argv);
}

static int setup(void **state)
{
    ex_conf_t *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    assert_int_equal(epw_config_defaults(ex_table, c, err, sizeof(err)), 0);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ex_conf_t *c = *state;

    epw_config_free(ex_table, c);
    free(c);
    return 0;
}

static void test_defaults(void **state)
{
    ex_conf_t *c = *state;

    assert_string_equal(c->collector.host, "127.0.0.1");
    assert_int_equal(c->collector.port, 7050);
    assert_null(c->ca);
    assert_false(c->verbose);
    assert_int_equal(c->top_n, 10);
    assert_int_equal(c->interval_ms, 10000);
    assert_int_equal(c->spool_max, 64u << 20);
    assert_int_equal(c->source, 0);
    assert_int_equal(c->tokens.count, 0);
    assert_null(c->webhook_url);
    assert_int_equal(c->alert_after_ms, 300000);
    assert_int_equal(c->recipients.count, 2);
    assert_string_equal(c->recipients.items[0], "ops");
    assert_string_equal(c->recipients.items[1], "dev");
    assert_int_equal(epw_config_check(ex_table, c, err, sizeof(err)), 0);
}

static void test_every_type(void **state)
{
    ex_conf_t *c = *state;

    assert_int_equal(parse(c, "collector = [::1]:9000\n"
                              "ca = /etc/epw/ca.pem\n"
                              "verbose = Yes\n"
                              "top_n = 100\n"
                              "interval = 1m30s\n"
                              "spool_max = 10KiB\n"
                              "source = PROC\n"
                              "api_tokens = a1, b2,,c3 ,\n"
                              "[alerts]\n"
                              "webhook_url = https://x.example/hook?a=1#frag\n"
                              "after = 250ms\n"
                              "recipients = alice\n"),
                     0);
    assert_string_equal(err, "");
    assert_string_equal(c->collector.host, "::1");
    assert_int_equal(c->collector.port, 9000);
    assert_string_equal(c->ca, "/etc/epw/ca.pem");
    assert_true(c->verbose);
    assert_int_equal(c->top_n, 100);
    assert_int_equal(c->interval_ms, 90000);
    assert_int_equal(c->spool_max, 10240);
    assert_int_equal(c->source, 2);
    assert_int_equal(c->tokens.count, 3);
    assert_string_equal(c->tokens.items[0], "a1");
    assert_string_equal(c->tokens.items[1], "b2");
    assert_string_equal(c->tokens.items[2], "c3");
    assert_string_equal(c->webhook_url, "https://x.example/hook?a=1#frag");
    assert_int_equal(c->alert_after_ms, 250);
    assert_int_equal(c->recipients.count, 1);
    assert_string_equal(c->recipients.items[0], "alice");
}

static void test_dotted_name_and_colon(void **state)
{
    ex_conf_t *c = *state;

    /* A dotted name before any section is the same key; "name: value" is accepted too. */
    assert_int_equal(parse(c, "alerts.after: 2h\nTOP_N=7\n"), 0);
    assert_int_equal(c->alert_after_ms, 7200000);
    assert_int_equal(c->top_n, 7);
}

static void test_bad_values(void **state)
{
    ex_conf_t *c = *state;

    assert_int_equal(parse(c, "verbose = maybe\n"
                              "top_n = 0\n"
                              "top_n2 = 1\n"
                              "interval = 5x\n"
                              "interval2 = 1\n"
                              "spool_max = 512\n"
                              "source = kernel\n"
                              "collector = nohost\n"
                              "[alerts]\n"
                              "after = soon\n"),
                     EPW_E_CONFIG);
    assert_non_null(strstr(err, "t.ini:1: key 'verbose': bad boolean 'maybe'"));
    assert_non_null(strstr(err, "t.ini:2: key 'top_n': 0 out of range (1..100)\n"));
    assert_non_null(strstr(err, "t.ini:3: key 'top_n2': unknown key\n"));
    assert_non_null(strstr(err, "t.ini:4: key 'interval': bad duration '5x'"));
    assert_non_null(strstr(err, "t.ini:5: key 'interval2': unknown key\n"));
    assert_non_null(strstr(err, "t.ini:6: key 'spool_max': '512' out of range (1K..4G)\n"));
    assert_non_null(strstr(err, "t.ini:7: key 'source': bad value 'kernel' (one of: auto netstat "
                                "proc)\n"));
    assert_non_null(strstr(err, "t.ini:8: key 'collector': bad address 'nohost'"));
    assert_non_null(strstr(err, "t.ini:10: key 'alerts.after': bad duration 'soon'"));
    /* Bad values leave the previous (default) value in place. */
    assert_int_equal(c->top_n, 10);
    assert_int_equal(c->interval_ms, 10000);
}

static void test_int_bounds_edges(void **state)
{
    ex_conf_t *c = *state;

    assert_int_equal(parse(c, "top_n = 1\n"), 0);
    assert_int_equal(c->top_n, 1);
    assert_int_equal(parse(c, "top_n = 101\n"), EPW_E_CONFIG);
    assert_non_null(strstr(err, "101 out of range (1..100)"));
    assert_int_equal(parse(c, "top_n = 99999999999999999999\n"), EPW_E_CONFIG);
    assert_non_null(strstr(err, "bad integer"));
    assert_int_equal(parse(c, "top_n = 5abc\n"), EPW_E_CONFIG);
    assert_int_equal(parse(c, "interval = 1h\n"), 0);
    assert_int_equal(c->interval_ms, 3600000);
    assert_int_equal(parse(c, "interval = 999ms\n"), EPW_E_CONFIG);
    assert_non_null(strstr(err, "t.ini:1: key 'interval': '999ms' out of range (1s..1h)"));
    assert_int_equal(parse(c, "spool_max = 4G\n"), 0);
    assert_int_equal(c->spool_max, 1ull << 32);
    assert_int_equal(parse(c, "spool_max = 5G\n"), EPW_E_CONFIG);
}

static void test_unknown_key_and_section_lines(void **state)
{
    ex_conf_t *c = *state;

    assert_int_equal(parse(c, "; comment\n"
                              "\n"
                              "top_n = 5\n"
                              "[alerts]\n"
                              "# comment\n"
                              "webhook = x\n"
                              "[nosuch]\n"
                              "k = v\n"),
                     EPW_E_CONFIG);
    assert_string_equal(err, "t.ini:6: key 'alerts.webhook': unknown key\n"
                             "t.ini:8: key 'nosuch.k': unknown key\n");
    assert_int_equal(c->top_n, 5);
}

static void test_crlf_bom_comments(void **state)
{
    ex_conf_t *c = *state;

    assert_int_equal(parse(c, "\xEF\xBB\xBF"
                              "top_n = 42 ; the answer\r\n"
                              "# hash comment\r\n"
                              "; semicolon comment\r\n"
                              "\r\n"
                              "ca = C:\\certs\\ca.pem\r\n"
                              "[alerts]\r\n"
                              "webhook_url = http://h/a#b\r\n"
                              "after = 1m"),
                     0);
    assert_string_equal(err, "");
    assert_int_equal(c->top_n, 42);
    assert_string_equal(c->ca, "C:\\certs\\ca.pem");
    assert_string_equal(c->webhook_url, "http://h/a#b");
    assert_int_equal(c->alert_after_ms, 60000);
    /* Line numbers count CRLF lines correctly. */
    assert_int_equal(parse(c, "top_n = 1\r\n\r\nbogus = 1\r\n"), EPW_E_CONFIG);
    assert_string_equal(err, "t.ini:3: key 'bogus': unknown key\n");
}

static void test_empty_values(void **state)
{
    ex_conf_t *c = *state;

    assert_int_equal(parse(c, "ca = x\n"), 0);
    assert_string_equal(c->ca, "x");
    /* Empty string, host:port and list values mean "unset". */
    assert_int_equal(parse(c, "ca =\ncollector =\n[alerts]\nrecipients =\n"), 0);
    assert_null(c->ca);
    assert_null(c->collector.host);
    assert_int_equal(c->collector.port, 0);
    assert_int_equal(c->recipients.count, 0);
    /* ...which a REQUIRED key does not accept. */
    assert_int_equal(epw_config_check(ex_table, c, err, sizeof(err)), EPW_E_CONFIG);
    assert_non_null(strstr(err, "key 'collector': required but not set"));
    /* Scalars have no "unset". */
    assert_int_equal(parse(c, "top_n =\ninterval=\nverbose =\nsource=\n"), EPW_E_CONFIG);
    assert_non_null(strstr(err, "t.ini:1: key 'top_n': bad integer ''"));
    assert_non_null(strstr(err, "t.ini:2: key 'interval': bad duration ''"));
    assert_non_null(strstr(err, "t.ini:3: key 'verbose': bad boolean ''"));
    assert_non_null(strstr(err, "t.ini:4: key 'source': bad value ''"));
}

static void test_duplicate_and_syntax(void **state)
{
    ex_conf_t *c = *state;

    assert_int_equal(parse(c, "top_n = 5\n"
                              "just words\n"
                              "[alerts]\n"
                              "after = 1m\n"
                              "[alerts]\n"
                              "after = 2m\n"
                              "[]\n"
                              "top_n = 6\n"
                              "[broken\n"),
                     EPW_E_CONFIG);
    /* inih names only its first syntax error; ours are all listed, sorted by line. */
    assert_string_equal(err,
                        "t.ini:2: syntax error (expected 'key = value', '[section]' or a comment)\n"
                        "t.ini:6: key 'alerts.after': duplicate (first set on line 4)\n"
                        "t.ini:8: key 'top_n': duplicate (first set on line 1)\n");
    assert_int_equal(c->top_n, 5);
    assert_int_equal(c->alert_after_ms, 60000);
}

static void test_continuation_and_long_lines(void **state)
{
    ex_conf_t *c = *state;
    char text[600];

    /* Lists continue on indented lines; other keys refuse them. */
    assert_int_equal(parse(c, "api_tokens = t1,\n"
                              "    t2, t3\n"
                              "\tt4 ; inline comment\n"
                              "top_n = 3\n"
                              "  interval = 5s\n"),
                     EPW_E_CONFIG);
    assert_int_equal(c->tokens.count, 4);
    assert_string_equal(c->tokens.items[3], "t4");
    assert_string_equal(err, "t.ini:5: key 'top_n': unexpected indented line (only lists continue "
                             "on the next line; remove the indentation)\n");
    assert_int_equal(c->interval_ms, 10000);

    /* A continuation is a continuation even when it starts with '['. */
    assert_int_equal(parse(c, "api_tokens = a,\n  [b]\n"), 0);
    assert_int_equal(c->tokens.count, 2);
    assert_string_equal(c->tokens.items[1], "[b]");

    /* An indented first key of a section is an ordinary key. */
    assert_int_equal(parse(c, "[alerts]\n  after = 3m\n"), 0);
    assert_int_equal(c->alert_after_ms, 180000);

    /* A line beyond inih's buffer is an error, not two lines. */
    memset(text, 0, sizeof(text));
    strcpy(text, "ca = ");
    memset(text + 5, 'x', 300);
    strcat(text, "\ntop_n = 8\n");
    assert_int_equal(parse(c, text), EPW_E_CONFIG);
    assert_non_null(strstr(err, "t.ini:1: line longer than"));
    assert_null(strstr(err, "t.ini:2"));
    assert_int_equal(c->top_n, 8);
}

static void test_nul_byte(void **state)
{
    ex_conf_t *c = *state;
    static const char text[] = "top_n = 4\nca = a\0b\ninterval = 2s\n";

    assert_int_equal(
        epw_config_parse_buf(ex_table, c, text, sizeof(text) - 1, "n.ini", err, sizeof(err)),
        EPW_E_CONFIG);
    assert_string_equal(err, "n.ini:2: NUL byte in line\n");
    assert_int_equal(c->top_n, 4);
    assert_int_equal(c->interval_ms, 2000);
    assert_null(c->ca);
}

static void test_overrides(void **state)
{
    ex_conf_t *c = *state;
    static const char *const src[] = {
        "prog",      "--interval",     "30s", "pos1",  "--config", "/x.ini",  "--top-n=50",
        "--verbose", "--alerts.after", "2m",  "--ca=", "--",       "--top_n", "1"};
    args_t a = mkargs(src, 14);
    char **argv = a.argv;
    int argc = a.argc, nargc = -1;

    assert_int_equal(parse(c, "interval = 5s\ntop_n = 3\nca = /f\nverbose = false\n"), 0);
    assert_string_equal(epw_config_arg_value(argc, argv, "config"), "/x.ini");
    assert_null(epw_config_arg_value(argc, argv, "nope"));
    assert_int_equal(epw_config_parse_args(ex_table, c, argc, argv, &nargc, err, sizeof(err)), 0);
    assert_int_equal(c->interval_ms, 30000);
    assert_int_equal(c->top_n, 50);
    assert_true(c->verbose);
    assert_int_equal(c->alert_after_ms, 120000);
    assert_null(c->ca);
    /* What is not a key stays, in order; "--" and all after it too. */
    assert_int_equal(nargc, 7);
    assert_string_equal(argv[0], "prog");
    assert_string_equal(argv[1], "pos1");
    assert_string_equal(argv[2], "--config");
    assert_string_equal(argv[3], "/x.ini");
    assert_string_equal(argv[4], "--");
    assert_string_equal(argv[5], "--top_n");
    assert_string_equal(argv[6], "1");
    assert_null(argv[7]);
    freeargs(&a);
}

/* A boolean key takes a following boolean word ("--verbose false"), and only that. */
static void test_bool_flag_value(void **state)
{
    ex_conf_t *c = *state;
    static const char *const src[] = {"prog", "--verbose", "off"};
    static const char *const src2[] = {"prog", "--verbose", "pos1"};
    args_t a = mkargs(src, 3), b;
    int nargc = -1;

    assert_int_equal(parse(c, "verbose = true\n"), 0);
    assert_true(c->verbose);
    assert_int_equal(epw_config_parse_args(ex_table, c, a.argc, a.argv, &nargc, err, sizeof(err)),
                     0);
    assert_false(c->verbose);
    assert_int_equal(nargc, 1);
    freeargs(&a);
    b = mkargs(src2, 3);
    assert_int_equal(parse(c, "verbose = false\n"), 0);
    assert_int_equal(epw_config_parse_args(ex_table, c, b.argc, b.argv, &nargc, err, sizeof(err)),
                     0);
    assert_true(c->verbose);
    assert_int_equal(nargc, 2);
    assert_string_equal(b.argv[1], "pos1");
    freeargs(&b);
}

static void test_override_errors(void **state)
{
    ex_conf_t *c = *state;
    static const char *const src[] = {"prog",     "--top_n", "500",           "--verbose=perhaps",
                                      "--source", "proc",    "--source=auto", "--interval"};
    args_t a = mkargs(src, 8);
    int nargc = -1;

    assert_int_equal(epw_config_parse_args(ex_table, c, a.argc, a.argv, &nargc, err, sizeof(err)),
                     EPW_E_CONFIG);
    freeargs(&a);
    assert_string_equal(err, "command line: key 'top_n': 500 out of range (1..100)\n"
                             "command line: key 'verbose': bad boolean 'perhaps' (expected "
                             "true/false, yes/no, on/off, 1/0)\n"
                             "command line: key 'source': given twice\n"
                             "command line: key 'interval': missing value after --interval\n");
    assert_int_equal(nargc, 1);
    assert_int_equal(c->source, 2);
}

static void test_help_lists_every_key(void **state)
{
    char *help = epw_config_help(ex_table);
    const epw_cfg_key_t *k;
    char want[128];

    (void)state;
    assert_non_null(help);
    for (k = ex_table; k->name; k++) {
        snprintf(want, sizeof(want), "  --%s ", k->name);
        assert_non_null(strstr(help, want));
        assert_non_null(strstr(help, k->help));
    }
    assert_non_null(strstr(help, "  --interval DURATION\n        Sampling interval. (default: 10s) "
                                 "(range: 1s..1h)\n"));
    assert_non_null(strstr(help, "  --source auto|netstat|proc\n"));
    assert_non_null(strstr(help, "  --collector HOST:PORT\n        Collector address. (required)"));
    assert_non_null(strstr(help, "  --ca STRING\n        CA certificate file (PEM). (default: "
                                 "none)\n"));
    assert_non_null(strstr(help, "(range: 1K..4G)"));
    free(help);
}

static void test_format_round_trip(void **state)
{
    ex_conf_t *c = *state, *d;
    char *out, *out2;

    assert_int_equal(parse(c, "collector = [fe80::1]:1\nca = /a b/c\nverbose = on\n"
                              "api_tokens = secret1, secret2\nspool_max = 1536K\n"
                              "[alerts]\nwebhook_url = http://w\n"),
                     0);
    /* A long list (from the command line) is wrapped on continuation lines. */
    {
        static const char *const src[] = {
            "p", "--alerts.recipients",
            ("m00,m01,m02,m03,m04,m05,m06,m07,m08,m09,m10,m11,m12,m13,m14,m15,m16,m17,"
             "m18,m19,m20,m21,m22,m23,m24,m25,m26,m27,m28,m29")};
        args_t a = mkargs(src, 3);
        int n;

        assert_int_equal(epw_config_parse_args(ex_table, c, a.argc, a.argv, &n, err, sizeof(err)),
                         0);
        freeargs(&a);
    }
    out = epw_config_format(ex_table, c);
    assert_non_null(out);
    assert_non_null(strstr(out, "collector = [fe80::1]:1\n"));
    assert_non_null(strstr(out, "ca = /a b/c\n"));
    assert_non_null(strstr(out, "verbose = true\n"));
    assert_non_null(strstr(out, "interval = 10s\n"));
    assert_non_null(strstr(out, "spool_max = 1536K\n"));
    assert_non_null(strstr(out, "source = auto\n"));
    assert_non_null(strstr(out, "# api_tokens = (hidden)\n"));
    assert_null(strstr(out, "secret1"));
    assert_non_null(strstr(out, "\n[alerts]\nwebhook_url = http://w\nafter = 5m\nrecipients = "
                                "m00, m01,"));
    assert_non_null(strstr(out, ",\n    m"));
    /* Top-level keys come before the first section. */
    assert_true(strstr(out, "source = ") < strstr(out, "[alerts]"));

    d = calloc(1, sizeof(*d));
    assert_non_null(d);
    assert_int_equal(epw_config_defaults(ex_table, d, err, sizeof(err)), 0);
    assert_int_equal(epw_config_parse_buf(ex_table, d, out, strlen(out), "out", err, sizeof(err)),
                     0);
    assert_int_equal(d->recipients.count, 30);
    assert_string_equal(d->recipients.items[29], "m29");
    out2 = epw_config_format(ex_table, d);
    assert_non_null(out2);
    assert_string_equal(out, out2);
    free(out);
    free(out2);
    epw_config_free(ex_table, d);
    assert_null(d->ca);
    assert_null(d->recipients.items);
    free(d);
}

static void test_parse_file(void **state)
{
    ex_conf_t *c = *state;
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/test_config_tmp.ini", EPW_BINARY_DIR);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("top_n = 77\nbad = 1\n", f);
    fclose(f);
    assert_int_equal(epw_config_parse_file(ex_table, c, path, err, sizeof(err)), EPW_E_CONFIG);
    assert_int_equal(c->top_n, 77);
    assert_non_null(strstr(err, "test_config_tmp.ini:2: key 'bad': unknown key"));
    remove(path);
    assert_int_equal(epw_config_parse_file(ex_table, c, path, err, sizeof(err)), EPW_E_CONFIG);
    assert_non_null(strstr(err, "cannot read"));
}

static void test_small_err_buffer(void **state)
{
    ex_conf_t *c = *state;
    char small[24];

    assert_int_equal(epw_config_parse_buf(ex_table, c, "a=1\nb=2\n", 8, "long-file-name.ini", small,
                                          sizeof(small)),
                     EPW_E_CONFIG);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_string_equal(small + sizeof(small) - 5, "...\n");
    /* A NULL buffer is fine. */
    assert_int_equal(epw_config_parse_buf(ex_table, c, "a=1\n", 4, "x", NULL, 0), EPW_E_CONFIG);
}

typedef struct bad_conf_s {
    int a;
    int b;
} bad_conf_t;

static void test_broken_tables(void **state)
{
    static const epw_cfg_key_t dup[] = {EPW_CFG_INT("a", bad_conf_t, a, "1", 0, 0, "A."),
                                        EPW_CFG_INT("A", bad_conf_t, b, "1", 0, 0, "B."),
                                        EPW_CFG_END};
    static const epw_cfg_key_t baddef[] = {EPW_CFG_INT("a", bad_conf_t, a, "7", 1, 5, "A."),
                                           EPW_CFG_END};
    bad_conf_t b = {0, 0};

    (void)state;
    assert_int_equal(epw_config_defaults(dup, &b, err, sizeof(err)), EPW_E_INTERNAL);
    assert_non_null(strstr(err, "listed twice"));
    assert_int_equal(epw_config_defaults(baddef, &b, err, sizeof(err)), EPW_E_INTERNAL);
    assert_non_null(strstr(err, "config table: key 'a': default: 7 out of range (1..5)"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_every_type),
        T(test_dotted_name_and_colon),
        T(test_bad_values),
        T(test_int_bounds_edges),
        T(test_unknown_key_and_section_lines),
        T(test_crlf_bom_comments),
        T(test_empty_values),
        T(test_duplicate_and_syntax),
        T(test_continuation_and_long_lines),
        T(test_nul_byte),
        T(test_overrides),
        T(test_bool_flag_value),
        T(test_override_errors),
        T(test_help_lists_every_key),
        T(test_format_round_trip),
        T(test_parse_file),
        T(test_small_err_buffer),
        cmocka_unit_test(test_broken_tables),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
