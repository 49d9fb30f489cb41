/* test_http: request parsing (chunking, pipelining, limits, decoding), responses and routing. */
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

#include "epw_err.h"
#include "http_req.h"
#include "http_resp.h"
#include "http_router.h"

static http_req_parser_t *mk(const http_req_limits_t *lim)
{
    http_req_parser_t *p = NULL;

    assert_int_equal(http_req_parser_create(lim, &p), 0);
    assert_non_null(p);
    return p;
}

static int feed_str(http_req_parser_t *p, const char *s)
{
    return http_req_feed(p, s, strlen(s));
}

/* Feeds one request and returns the parser holding it (asserts READY). */
static http_req_parser_t *parse_one(const char *text)
{
    http_req_parser_t *p = mk(NULL);

    assert_int_equal(feed_str(p, text), HTTP_REQ_READY);
    assert_non_null(http_req_parser_request(p));
    return p;
}

/* Feeds len bytes and expects an error with that status. */
static void expect_status_n(const char *text, size_t len, int status, const http_req_limits_t *lim)
{
    http_req_parser_t *p = mk(lim);
    int rc = http_req_feed(p, text, len);

    assert_true(rc < 0);
    assert_int_equal(http_req_parser_status(p), status);
    assert_null(http_req_parser_request(p));
    /* Sticky. */
    assert_int_equal(feed_str(p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), rc);
    assert_int_equal(http_req_parser_next(p), rc);
    assert_string_not_equal(http_req_parser_reason(p), "");
    http_req_parser_destroy(p);
}

/* A literal that may hold NULs. */
#define EXPECT_LIT(lit, status, lim) expect_status_n(lit, sizeof(lit) - 1, status, lim)

static void expect_status(const char *text, int status, const http_req_limits_t *lim)
{
    expect_status_n(text, strlen(text), status, lim);
}

static void test_simple_get(void **state)
{
    const char *text = "GET /api/v1/hosts?since=2026-01-01T00%3A00%3A00Z&limit=5 HTTP/1.1\r\n"
                       "Host: collector:7443\r\n"
                       "User-Agent: test\r\n"
                       "\r\n";
    http_req_parser_t *p = parse_one(text);
    const http_req_t *r = http_req_parser_request(p);
    size_t blen = 99;
    (void)state;

    assert_int_equal(http_req_method(r), HTTP_METHOD_GET);
    assert_string_equal(http_req_method_name(r), "GET");
    assert_string_equal(http_req_path(r), "/api/v1/hosts");
    assert_string_equal(http_req_target(r), "/api/v1/hosts?since=2026-01-01T00%3A00%3A00Z&limit=5");
    assert_string_equal(http_req_query(r, "since"), "2026-01-01T00:00:00Z");
    assert_string_equal(http_req_query(r, "limit"), "5");
    assert_null(http_req_query(r, "nope"));
    assert_int_equal(http_req_query_count(r), 2);
    assert_string_equal(http_req_header(r, "host"), "collector:7443");
    assert_int_equal(http_req_header_count(r), 2);
    assert_int_equal(http_req_keep_alive(r), 1);
    assert_int_equal(http_req_version(r), 11);
    assert_non_null(http_req_body(r, &blen));
    assert_int_equal(blen, 0);
    assert_null(http_req_bearer_token(r));
    http_req_parser_destroy(p);
}

static void test_byte_by_byte(void **state)
{
    const char *text = "POST /api/v1/silence/h%C3%A9?for=10m HTTP/1.1\r\n"
                       "Host: x\r\n"
                       "Content-Length: 11\r\n"
                       "X-Long:    spaced value  \r\n"
                       "\r\n"
                       "hello world";
    http_req_parser_t *p = mk(NULL);
    const http_req_t *r;
    size_t i, n = strlen(text), blen;
    (void)state;

    for (i = 0; i + 1 < n; i++) {
        assert_int_equal(http_req_feed(p, text + i, 1), HTTP_REQ_MORE);
        assert_null(http_req_parser_request(p));
    }
    assert_int_equal(http_req_feed(p, text + i, 1), HTTP_REQ_READY);
    r = http_req_parser_request(p);
    assert_int_equal(http_req_method(r), HTTP_METHOD_POST);
    assert_string_equal(http_req_path(r), "/api/v1/silence/h\xC3\xA9");
    assert_string_equal(http_req_raw_path(r), "/api/v1/silence/h%C3%A9");
    assert_string_equal(http_req_query(r, "for"), "10m");
    assert_string_equal(http_req_header(r, "x-long"), "spaced value");
    assert_memory_equal(http_req_body(r, &blen), "hello world", 12); /* NUL follows */
    assert_int_equal(blen, 11);
    http_req_parser_destroy(p);
}

static void test_pipelined(void **state)
{
    const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                      "GET /c HT";
    http_req_parser_t *p = mk(NULL);
    const http_req_t *r;
    size_t blen;
    (void)state;

    assert_int_equal(feed_str(p, two), HTTP_REQ_READY);
    r = http_req_parser_request(p);
    assert_string_equal(http_req_path(r), "/a");
    /* Bytes arriving while /a is held are queued, and do not report /a again. */
    assert_int_equal(feed_str(p, "TP/1.1\r\nHost: x\r\n"), HTTP_REQ_MORE);
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/a");

    assert_int_equal(http_req_parser_next(p), HTTP_REQ_READY);
    r = http_req_parser_request(p);
    assert_string_equal(http_req_path(r), "/b");
    assert_memory_equal(http_req_body(r, &blen), "xyz", 3);
    assert_int_equal(blen, 3);

    assert_int_equal(http_req_parser_next(p), HTTP_REQ_MORE);
    assert_null(http_req_parser_request(p));
    assert_int_equal(feed_str(p, "\r\n"), HTTP_REQ_READY);
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/c");
    assert_int_equal(http_req_parser_next(p), HTTP_REQ_MORE);

    /* A fourth, sequential request on the same connection. */
    assert_int_equal(feed_str(p, "GET /d HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_REQ_READY);
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/d");
    http_req_parser_destroy(p);
}

static void test_query_decoding(void **state)
{
    http_req_parser_t *p =
        parse_one("GET /q?a=one%20two&b=x+y&flag&empty=&&=skipped&c=%2B%26%3D&a=second "
                  "HTTP/1.1\r\nHost: x\r\n\r\n");
    const http_req_t *r = http_req_parser_request(p);
    const char *n, *v;
    (void)state;

    assert_string_equal(http_req_query(r, "a"), "one two");
    assert_string_equal(http_req_query(r, "b"), "x y");
    assert_string_equal(http_req_query(r, "flag"), "");
    assert_string_equal(http_req_query(r, "empty"), "");
    assert_string_equal(http_req_query(r, "c"), "+&=");
    assert_int_equal(http_req_query_count(r), 6);
    assert_int_equal(http_req_query_at(r, 5, &n, &v), 0);
    assert_string_equal(n, "a");
    assert_string_equal(v, "second");
    assert_int_equal(http_req_query_at(r, 6, &n, &v), UV_EINVAL);
    /* '+' is a space in the query only. */
    http_req_parser_destroy(p);
    p = parse_one("GET /a+b%20c HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/a+b c");
    http_req_parser_destroy(p);

    expect_status("GET /q?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_status("GET /q?a=%4 HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_status("GET /q?a=%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_status("GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
}

static void test_pct_decode(void **state)
{
    char out[16];
    size_t n;
    (void)state;

    assert_int_equal(http_pct_decode("a%41+", 5, 1, out, &n), 0);
    assert_string_equal(out, "aA ");
    assert_int_equal(n, 3);
    assert_int_equal(http_pct_decode("a%41+", 5, 0, out, &n), 0);
    assert_string_equal(out, "aA+");
    assert_int_equal(http_pct_decode("%", 1, 0, out, &n), EPW_E_PARSE);
    assert_int_equal(http_pct_decode("%g0", 3, 0, out, &n), EPW_E_PARSE);
}

static void test_headers_case_insensitive(void **state)
{
    http_req_parser_t *p = parse_one("GET / HTTP/1.1\r\nhOsT: x\r\nX-Trace-ID: abc\r\n"
                                     "x-trace-id: second\r\nEmpty:\r\n\r\n");
    const http_req_t *r = http_req_parser_request(p);
    const char *n, *v;
    (void)state;

    assert_string_equal(http_req_header(r, "HOST"), "x");
    assert_string_equal(http_req_header(r, "x-trace-id"), "abc");
    assert_string_equal(http_req_header(r, "X-TRACE-ID"), "abc");
    assert_string_equal(http_req_header(r, "empty"), "");
    assert_null(http_req_header(r, "x-trace"));
    assert_int_equal(http_req_header_at(r, 2, &n, &v), 0);
    assert_string_equal(n, "x-trace-id");
    assert_string_equal(v, "second");
    assert_string_equal(http_req_path(r), "/");
    http_req_parser_destroy(p);
}

static void test_bearer(void **state)
{
    static const struct {
        const char *header;
        const char *token;
    } cases[] = {
        {"Bearer abc.DEF-123_~+/==", "abc.DEF-123_~+/=="},
        {"bearer    tok  ", "tok"},
        {"BEARER tok", "tok"},
        {"Basic dXNlcjpwdw==", NULL},
        {"Bearer", NULL},
        {"Bearer ", NULL},
        {"Bearer a b", NULL},
        {"Bearertok", NULL},
        {"Bearer =abc", NULL},
        {"Bearer ab=c", NULL},
    };
    char req[256];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_req_parser_t *p;
        const char *tok;
        snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n",
                 cases[i].header);
        p = parse_one(req);
        tok = http_req_bearer_token(http_req_parser_request(p));
        if (cases[i].token) {
            assert_non_null(tok);
            assert_string_equal(tok, cases[i].token);
        } else {
            assert_null(tok);
        }
        http_req_parser_destroy(p);
    }
}

static void test_auth_and_token_equal(void **state)
{
    http_req_parser_t *p =
        parse_one("GET / HTTP/1.1\r\nHost: x\r\nauthorization: Bearer s3cret\r\n\r\n");
    const http_req_t *r = http_req_parser_request(p);
    (void)state;

    assert_int_equal(http_req_auth_bearer(r, "s3cret"), 1);
    assert_int_equal(http_req_auth_bearer(r, "s3cre"), 0);
    assert_int_equal(http_req_auth_bearer(r, "s3cret2"), 0);
    assert_int_equal(http_req_auth_bearer(r, "S3cret"), 0);
    assert_int_equal(http_req_auth_bearer(r, ""), 0);
    assert_int_equal(http_req_auth_bearer(r, NULL), 0);
    http_req_parser_destroy(p);
    p = parse_one("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(http_req_auth_bearer(http_req_parser_request(p), "s3cret"), 0);
    http_req_parser_destroy(p);

    assert_int_equal(http_token_equal("abc", 3, "abc", 3), 1);
    assert_int_equal(http_token_equal("abd", 3, "abc", 3), 0);
    assert_int_equal(http_token_equal("ab", 2, "abc", 3), 0);
    assert_int_equal(http_token_equal("abcd", 4, "abc", 3), 0);
    assert_int_equal(http_token_equal("", 0, "", 0), 1);
    /* Embedded NULs compare as bytes. */
    assert_int_equal(http_token_equal("a\0b", 3, "a\0c", 3), 0);
}

static char *big_header_request(size_t value_len)
{
    const char *pre = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ";
    size_t n = strlen(pre);
    char *s = malloc(n + value_len + 5);

    assert_non_null(s);
    memcpy(s, pre, n);
    memset(s + n, 'a', value_len);
    memcpy(s + n + value_len, "\r\n\r\n", 5);
    return s;
}

static void test_header_limit(void **state)
{
    http_req_limits_t lim = {.max_header_bytes = 1024};
    http_req_parser_t *p;
    char *s;
    size_t total, i;
    (void)state;

    /* Exactly at the limit is accepted... */
    s = big_header_request(10);
    total = strlen(s);
    free(s);
    s = big_header_request(1024 - total + 10);
    assert_int_equal(strlen(s), 1024);
    p = mk(&lim);
    assert_int_equal(feed_str(p, s), HTTP_REQ_READY);
    assert_int_equal(strlen(http_req_header(http_req_parser_request(p), "x-big")),
                     1024 - total + 10);
    http_req_parser_destroy(p);
    free(s);
    /* ...one byte more is 413, whether fed at once or byte by byte. */
    s = big_header_request(1024 - total + 11);
    expect_status(s, 413, &lim);
    p = mk(&lim);
    for (i = 0; s[i]; i++)
        if (http_req_feed(p, s + i, 1) < 0)
            break;
    assert_int_equal(http_req_parser_status(p), 413);
    http_req_parser_destroy(p);
    free(s);

    /* The default limit (16 KiB) with a long URL. */
    s = malloc(40000);
    assert_non_null(s);
    strcpy(s, "GET /");
    memset(s + 5, 'u', 30000);
    strcpy(s + 30005, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_status(s, 413, NULL);
    free(s);

    /* Too many header fields. */
    {
        http_req_limits_t few = {.max_headers = 3};
        expect_status("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 413, &few);
        p = mk(&few);
        assert_int_equal(feed_str(p, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"),
                         HTTP_REQ_READY);
        http_req_parser_destroy(p);
    }
}

static void test_body_limit(void **state)
{
    http_req_limits_t lim = {.max_body_bytes = 100};
    http_req_parser_t *p;
    char *s;
    size_t blen;
    (void)state;

    /* Refused on the Content-Length alone, before any body byte. */
    expect_status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413, &lim);
    expect_status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n", 413,
                  NULL);
    /* Chunked bodies are counted as they arrive. */
    s = malloc(400);
    assert_non_null(s);
    strcpy(s, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n");
    memset(s + strlen(s), 'b', 101);
    strcpy(s + strlen("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n") +
               101,
           "\r\n0\r\n\r\n");
    expect_status(s, 413, &lim);
    free(s);

    /* Within the limit, chunked, with a trailer that is not kept. */
    p = mk(&lim);
    assert_int_equal(feed_str(p, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"),
                     HTTP_REQ_READY);
    assert_memory_equal(http_req_body(http_req_parser_request(p), &blen), "hello world", 12);
    assert_int_equal(blen, 11);
    assert_null(http_req_header(http_req_parser_request(p), "x-trailer"));
    http_req_parser_destroy(p);
}

static void test_garbage_and_versions(void **state)
{
    http_req_parser_t *p;
    (void)state;

    EXPECT_LIT("\x00\x01\x02\x03 garbage\r\n\r\n", 400, NULL);
    expect_status("hello world\r\n\r\n", 400, NULL);
    expect_status("get / HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    expect_status("GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, NULL);
    expect_status("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                  400, NULL);
    expect_status("GET / HTTP/1.1\r\n\r\n", 400, NULL);                       /* no Host */
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, NULL); /* two */
    expect_status("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    EXPECT_LIT("GET / HTTP/1.1\r\nHost: x\r\nX: a\0z\r\n\r\n", 400, NULL);
    EXPECT_LIT("GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 400, NULL);
    /* Unknown or unsupported methods. */
    expect_status("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501, NULL);
    expect_status("TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 501, NULL);
    expect_status("CONNECT example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n", 501, NULL);
    /* Versions. */
    expect_status("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, NULL);
    expect_status("GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, NULL);
    expect_status("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505, NULL);
    expect_status("GET / FOO/1.1\r\nHost: x\r\n\r\n", 400, NULL);

    /* HTTP/1.0: no Host needed, keep-alive only when asked for. */
    p = parse_one("GET /old HTTP/1.0\r\n\r\n");
    assert_int_equal(http_req_version(http_req_parser_request(p)), 10);
    assert_int_equal(http_req_keep_alive(http_req_parser_request(p)), 0);
    http_req_parser_destroy(p);
    p = parse_one("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(http_req_keep_alive(http_req_parser_request(p)), 1);
    http_req_parser_destroy(p);
    /* Absolute-form targets are accepted. */
    p = parse_one("GET http://c.example:7443/api/v1/hosts?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/api/v1/hosts");
    assert_string_equal(http_req_query(http_req_parser_request(p), "x"), "1");
    http_req_parser_destroy(p);
}

static void test_connection_close(void **state)
{
    http_req_parser_t *p =
        parse_one("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n");
    (void)state;

    assert_int_equal(http_req_keep_alive(http_req_parser_request(p)), 0);
    assert_int_equal(http_req_parser_next(p), HTTP_REQ_MORE);
    /* Nothing more is parsed on a connection that is closing. */
    assert_int_equal(feed_str(p, "Host: x\r\n\r\n"), HTTP_REQ_MORE);
    assert_null(http_req_parser_request(p));
    assert_int_equal(http_req_parser_status(p), 0);
    http_req_parser_destroy(p);
}

static void test_upgrade_and_blank_lines(void **state)
{
    http_req_parser_t *p = mk(NULL);
    (void)state;

    /* Stray CRLFs between requests are tolerated (RFC 9112 2.2). */
    assert_int_equal(feed_str(p, "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n"), HTTP_REQ_READY);
    assert_int_equal(http_req_parser_next(p), HTTP_REQ_MORE);
    assert_int_equal(feed_str(p, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_REQ_READY);
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/b");
    assert_int_equal(http_req_parser_next(p), HTTP_REQ_MORE);
    /* An Upgrade is served as a plain request on a connection that then closes. */
    assert_int_equal(feed_str(p, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                 "Upgrade: websocket\r\n\r\n\x81\x05hello"),
                     HTTP_REQ_READY);
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/ws");
    assert_int_equal(http_req_keep_alive(http_req_parser_request(p)), 0);
    assert_int_equal(http_req_parser_next(p), HTTP_REQ_MORE);
    assert_null(http_req_parser_request(p));
    http_req_parser_destroy(p);
}

static void test_pending_limit(void **state)
{
    http_req_limits_t lim = {.max_pending = 64};
    http_req_parser_t *p = mk(&lim);
    char junk[65];
    (void)state;

    memset(junk, 'G', sizeof(junk));
    assert_int_equal(feed_str(p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_REQ_READY);
    assert_int_equal(http_req_feed(p, junk, 64), HTTP_REQ_MORE);
    assert_int_equal(http_req_feed(p, junk, 1), EPW_E_TOOBIG);
    assert_int_equal(http_req_parser_status(p), 413);
    http_req_parser_destroy(p);
}

/* ---- responses ---- */

/* Splits a response into status, a header lookup and the body; asserts Content-Length. */
static const char *resp_header(const char *resp, const char *name, char *buf, size_t len)
{
    char pat[64];
    const char *h, *e;

    snprintf(pat, sizeof(pat), "\r\n%s: ", name);
    h = strstr(resp, pat);
    if (!h || h > strstr(resp, "\r\n\r\n"))
        return NULL;
    h += strlen(pat);
    e = strstr(h, "\r\n");
    snprintf(buf, len, "%.*s", (int)(e - h), h);
    return buf;
}

static char *as_string(const uint8_t *b, size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memcpy(s, b, n);
    s[n] = '\0';
    return s;
}

static void test_resp_json_error(void **state)
{
    uint8_t *b;
    size_t n;
    char *s, hv[128];
    const char *body;
    cJSON *j, *e;
    (void)state;

    assert_int_equal(http_resp_error(404, "no such host \"x\"", 0, &b, &n), 0);
    s = as_string(b, n);
    assert_true(strncmp(s, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    assert_string_equal(resp_header(s, "Content-Type", hv, sizeof(hv)), HTTP_CT_JSON);
    assert_string_equal(resp_header(s, "Connection", hv, sizeof(hv)), "keep-alive");
    body = strstr(s, "\r\n\r\n") + 4;
    assert_int_equal(atoi(resp_header(s, "Content-Length", hv, sizeof(hv))), strlen(body));
    j = cJSON_Parse(body);
    assert_non_null(j);
    e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_true(cJSON_IsObject(e));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valueint, 404);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring,
                        "no such host \"x\"");
    assert_int_equal(cJSON_GetArraySize(j), 1);
    assert_int_equal(cJSON_GetArraySize(e), 2);
    cJSON_Delete(j);
    free(s);
    free(b);

    /* 401 names the scheme; close flag; default message. */
    assert_int_equal(http_resp_error(401, NULL, HTTP_RESP_CLOSE, &b, &n), 0);
    s = as_string(b, n);
    assert_non_null(resp_header(s, "WWW-Authenticate", hv, sizeof(hv)));
    assert_true(strncmp(hv, "Bearer", 6) == 0);
    assert_string_equal(resp_header(s, "Connection", hv, sizeof(hv)), "close");
    assert_non_null(strstr(s, "\"message\":\"Unauthorized\""));
    free(s);
    free(b);
}

static void test_resp_builders(void **state)
{
    uint8_t *b = (uint8_t *)"sentinel";
    size_t n = 7;
    char *s, hv[128];
    cJSON *j = cJSON_CreateObject();
    http_hdr_t bad = {"X-Evil", "a\r\nSet-Cookie: x"};
    (void)state;

    cJSON_AddStringToObject(j, "host", "web-01");
    cJSON_AddNumberToObject(j, "pct", 12.5);
    assert_int_equal(http_resp_json(200, j, 0, &b, &n), 0);
    s = as_string(b, n);
    assert_string_equal(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                           "Content-Length: 28\r\nConnection: keep-alive\r\n\r\n"
                           "{\"host\":\"web-01\",\"pct\":12.5}");
    free(s);
    free(b);
    /* HEAD keeps the length, drops the body. */
    assert_int_equal(http_resp_json(200, j, HTTP_RESP_HEAD | HTTP_RESP_CLOSE, &b, &n), 0);
    s = as_string(b, n);
    assert_string_equal(resp_header(s, "Content-Length", hv, sizeof(hv)), "28");
    assert_string_equal(strstr(s, "\r\n\r\n"), "\r\n\r\n");
    free(s);
    free(b);
    cJSON_Delete(j);

    assert_int_equal(http_resp_text(200, HTTP_CT_PROM, "a 1\n", 4, 0, &b, &n), 0);
    s = as_string(b, n);
    assert_string_equal(resp_header(s, "Content-Type", hv, sizeof(hv)),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(strstr(s, "\r\n\r\n") + 4, "a 1\n");
    free(s);
    free(b);

    /* 204 has neither body nor Content-Length. */
    assert_int_equal(http_resp_build(204, NULL, NULL, 0, NULL, 0, 0, &b, &n), 0);
    s = as_string(b, n);
    assert_string_equal(s, "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
    free(s);
    free(b);

    /* Header injection and bad statuses are refused; out-params cleared. */
    b = (uint8_t *)"x";
    assert_int_equal(http_resp_build(200, NULL, NULL, 0, &bad, 1, 0, &b, &n), UV_EINVAL);
    assert_null(b);
    assert_int_equal(n, 0);
    assert_int_equal(http_resp_build(200, "text/plain\r\nX: y", "", 0, NULL, 0, 0, &b, &n),
                     UV_EINVAL);
    assert_int_equal(http_resp_build(99, NULL, NULL, 0, NULL, 0, 0, &b, &n), UV_EINVAL);
    assert_int_equal(http_resp_build(600, NULL, NULL, 0, NULL, 0, 0, &b, &n), UV_EINVAL);
    assert_int_equal(http_resp_build(204, NULL, "x", 1, NULL, 0, 0, &b, &n), UV_EINVAL);
    assert_string_equal(http_status_text(413), "Content Too Large");
    assert_string_equal(http_status_text(299), "Unknown");
}

/* ---- reply contexts and the router ---- */

typedef struct sink_s {
    int calls;
    char *resp;
    int close_after;
} sink_t;

static void sink_cb(void *ud, uint8_t *bytes, size_t len, int close_after)
{
    sink_t *s = ud;

    s->calls++;
    free(s->resp);
    s->resp = bytes ? as_string(bytes, len) : NULL;
    s->close_after = close_after;
    free(bytes);
}

static int resp_status(const sink_t *s)
{
    return s->resp ? atoi(s->resp + 9) : -1;
}

static const char *resp_body(const sink_t *s)
{
    return strstr(s->resp, "\r\n\r\n") + 4;
}

typedef struct app_s {
    int calls;
    http_ctx_t *pending; /* an asynchronous handler's context */
    char host[64];
} app_t;

static void h_host(http_ctx_t *ctx, void *ud)
{
    app_t *app = ud;
    cJSON *j = cJSON_CreateObject();

    app->calls++;
    snprintf(app->host, sizeof(app->host), "%s", http_ctx_param(ctx, "host"));
    cJSON_AddStringToObject(j, "host", http_ctx_param(ctx, "host"));
    cJSON_AddStringToObject(j, "ns", http_ctx_param(ctx, "ns"));
    http_resp_send_json(ctx, 200, j);
    cJSON_Delete(j);
}

static void h_async(http_ctx_t *ctx, void *ud)
{
    app_t *app = ud;

    app->calls++;
    app->pending = ctx; /* answered later, as after a store read on a worker thread */
}

static void h_text(http_ctx_t *ctx, void *ud)
{
    app_t *app = ud;

    app->calls++;
    http_resp_send_text(ctx, 200, HTTP_CT_PROM, "up 1\n", 5);
}

/* Parses `text`, dispatches it and returns the router's result; the reply lands in *s. */
static int route(const http_router_t *r, const char *text, sink_t *s)
{
    http_req_parser_t *p = parse_one(text);
    http_ctx_t *ctx;
    int rc;

    assert_int_equal(http_ctx_create(http_req_parser_request(p), sink_cb, s, &ctx), 0);
    rc = http_router_dispatch(r, ctx);
    http_req_parser_destroy(p);
    return rc;
}

static http_router_t *mk_router(app_t *app)
{
    http_router_t *r;

    assert_int_equal(http_router_create(&r), 0);
    assert_int_equal(
        http_router_add(r, HTTP_METHOD_GET, "/api/v1/hosts/{host}/ns/{ns}", 0, h_host, app), 0);
    assert_int_equal(
        http_router_add(r, HTTP_METHOD_DELETE, "/api/v1/hosts/{host}/ns/{ns}", 0, h_host, app), 0);
    assert_int_equal(
        http_router_add(r, HTTP_METHOD_GET, "/metrics", HTTP_ROUTE_PUBLIC, h_text, app), 0);
    assert_int_equal(http_router_add(r, HTTP_METHOD_POST, "/api/v1/slow", 0, h_async, app), 0);
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "/", 0, h_text, app), 0);
    return r;
}

static void test_router_params_404_405(void **state)
{
    app_t app = {0};
    sink_t s = {0};
    http_router_t *r = mk_router(&app);
    char hv[64];
    cJSON *j;
    (void)state;

    /* Bad patterns and duplicates. */
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "/metrics", 0, h_text, &app), UV_EEXIST);
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "nope", 0, h_text, &app), UV_EINVAL);
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "/a//b", 0, h_text, &app), UV_EINVAL);
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "/a/{}", 0, h_text, &app), UV_EINVAL);
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "/a/{b-c}", 0, h_text, &app), UV_EINVAL);
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "/a/x{b}", 0, h_text, &app), UV_EINVAL);
    assert_int_equal(http_router_add(r, HTTP_METHOD_GET, "/a", 0, NULL, &app), UV_EINVAL);

    /* Params are decoded per segment: %2F stays inside its segment. */
    assert_int_equal(
        route(r, "GET /api/v1/hosts/web%2F01/ns/a%20b?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &s), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(resp_status(&s), 200);
    assert_int_equal(s.close_after, 0);
    j = cJSON_Parse(resp_body(&s));
    assert_string_equal(cJSON_GetObjectItem(j, "host")->valuestring, "web/01");
    assert_string_equal(cJSON_GetObjectItem(j, "ns")->valuestring, "a b");
    cJSON_Delete(j);

    /* 404s: unknown path, empty param, trailing slash, too deep. */
    assert_int_equal(route(r, "GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\n\r\n", &s), 404);
    assert_int_equal(resp_status(&s), 404);
    j = cJSON_Parse(resp_body(&s));
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valueint, 404);
    cJSON_Delete(j);
    assert_int_equal(route(r, "GET /api/v1/hosts//ns/b HTTP/1.1\r\nHost: x\r\n\r\n", &s), 404);
    assert_int_equal(route(r, "GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", &s), 404);
    assert_int_equal(
        route(r, "GET /a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r HTTP/1.1\r\nHost: x\r\n\r\n", &s), 404);

    /* 405 with Allow listing what the path supports (HEAD implied by GET). */
    assert_int_equal(route(r, "PUT /api/v1/hosts/h/ns/n HTTP/1.1\r\nHost: x\r\n\r\n", &s), 405);
    assert_int_equal(resp_status(&s), 405);
    assert_string_equal(resp_header(s.resp, "Allow", hv, sizeof(hv)), "GET, HEAD, DELETE");
    assert_int_equal(route(r, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &s), 405);
    assert_string_equal(resp_header(s.resp, "Allow", hv, sizeof(hv)), "GET, HEAD");

    /* HEAD runs the GET handler and the reply has no body. */
    app.calls = 0;
    assert_int_equal(route(r, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &s), 0);
    assert_int_equal(app.calls, 1);
    assert_string_equal(resp_header(s.resp, "Content-Length", hv, sizeof(hv)), "5");
    assert_string_equal(resp_body(&s), "");
    /* The root route and Connection: close. */
    assert_int_equal(route(r, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &s), 0);
    assert_int_equal(resp_status(&s), 200);
    assert_int_equal(s.close_after, 1);
    assert_string_equal(resp_header(s.resp, "Connection", hv, sizeof(hv)), "close");

    free(s.resp);
    http_router_destroy(r);
}

static void test_router_auth(void **state)
{
    app_t app = {0};
    sink_t s = {0};
    http_router_t *r = mk_router(&app);
    char hv[64];
    (void)state;

    assert_int_equal(http_router_set_token(r, "tok-123"), 0);
    assert_int_equal(route(r, "GET /api/v1/hosts/h/ns/n HTTP/1.1\r\nHost: x\r\n\r\n", &s), 401);
    assert_int_equal(resp_status(&s), 401);
    assert_non_null(resp_header(s.resp, "WWW-Authenticate", hv, sizeof(hv)));
    assert_int_equal(route(r,
                           "GET /api/v1/hosts/h/ns/n HTTP/1.1\r\nHost: x\r\n"
                           "Authorization: Bearer tok-124\r\n\r\n",
                           &s),
                     401);
    assert_int_equal(app.calls, 0);
    assert_int_equal(route(r,
                           "GET /api/v1/hosts/h/ns/n HTTP/1.1\r\nHost: x\r\n"
                           "Authorization: Bearer tok-123\r\n\r\n",
                           &s),
                     0);
    assert_int_equal(app.calls, 1);
    assert_string_equal(app.host, "h");
    /* Public routes need no token. */
    assert_int_equal(route(r, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &s), 0);
    assert_int_equal(resp_status(&s), 200);
    /* Clearing the token opens the API again. */
    assert_int_equal(http_router_set_token(r, NULL), 0);
    assert_int_equal(route(r, "GET /api/v1/hosts/h/ns/n HTTP/1.1\r\nHost: x\r\n\r\n", &s), 0);
    free(s.resp);
    http_router_destroy(r);
}

static void test_async_reply(void **state)
{
    app_t app = {0};
    sink_t s = {0};
    http_router_t *r = mk_router(&app);
    http_req_parser_t *p = mk(NULL);
    http_ctx_t *ctx;
    cJSON *j;
    (void)state;

    /* The request is held by the parser while the handler works; the pipelined one waits. */
    assert_int_equal(feed_str(p,
                              "POST /api/v1/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                              "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
                     HTTP_REQ_READY);
    assert_int_equal(http_ctx_create(http_req_parser_request(p), sink_cb, &s, &ctx), 0);
    assert_int_equal(http_router_dispatch(r, ctx), 0);
    assert_non_null(app.pending);
    assert_int_equal(s.calls, 0);
    assert_int_equal(http_ctx_abandoned(app.pending), 0);
    assert_non_null(http_ctx_req(app.pending));
    /* Later, on the loop thread: */
    j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "done", 1);
    assert_int_equal(http_resp_send_json(app.pending, 202, j), 0);
    cJSON_Delete(j);
    app.pending = NULL;
    assert_int_equal(s.calls, 1);
    assert_int_equal(resp_status(&s), 202);
    assert_string_equal(resp_body(&s), "{\"done\":true}");
    /* Then the server moves on to the next request. */
    assert_int_equal(http_req_parser_next(p), HTTP_REQ_READY);
    assert_string_equal(http_req_path(http_req_parser_request(p)), "/metrics");
    assert_int_equal(http_req_parser_next(p), HTTP_REQ_MORE);

    /* The connection closes while a handler is pending: its reply is dropped, nothing leaks. */
    assert_int_equal(feed_str(p, "POST /api/v1/slow HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_REQ_READY);
    assert_int_equal(http_ctx_create(http_req_parser_request(p), sink_cb, &s, &ctx), 0);
    assert_int_equal(http_router_dispatch(r, ctx), 0);
    http_ctx_abandon(app.pending);
    http_req_parser_destroy(p);
    assert_int_equal(http_ctx_abandoned(app.pending), 1);
    assert_null(http_ctx_req(app.pending));
    assert_int_equal(http_resp_send_error(app.pending, 500, "late"), 0);
    assert_int_equal(s.calls, 1);

    /* A reply to a request that failed to parse closes the connection. */
    assert_int_equal(http_ctx_create(NULL, sink_cb, &s, &ctx), 0);
    http_resp_send_error(ctx, 413, "request header too large");
    assert_int_equal(s.calls, 2);
    assert_int_equal(resp_status(&s), 413);
    assert_int_equal(s.close_after, 1);
    /* An undispatched context can be destroyed. */
    assert_int_equal(http_ctx_create(NULL, sink_cb, &s, &ctx), 0);
    http_ctx_destroy(ctx);
    http_ctx_destroy(NULL);
    free(s.resp);
    http_router_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_headers_case_insensitive),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_auth_and_token_equal),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_garbage_and_versions),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_upgrade_and_blank_lines),
        cmocka_unit_test(test_pending_limit),
        cmocka_unit_test(test_resp_json_error),
        cmocka_unit_test(test_resp_builders),
        cmocka_unit_test(test_router_params_404_405),
        cmocka_unit_test(test_router_auth),
        cmocka_unit_test(test_async_reply),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
