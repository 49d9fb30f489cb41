/* test_sinks: the alert sinks on a real loop: a loopback webhook receiver, /bin/sh children. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_util.h"
#include "sinks.h"

static char tmpdir[] = "/tmp/epw-sinks-XXXXXX";

/* ---- a tiny HTTP receiver: reads one request per connection, answers a scripted status ---- */

#define SRV_MAXREQ 8

typedef struct srv_conn_s {
    uv_tcp_t tcp;
    struct srv_s *srv;
    struct srv_conn_s *next;
    char buf[16384];
    size_t len;
    int answered;
    uv_write_t wr;
    char resp[160];
} srv_conn_t;

typedef struct srv_s {
    uv_tcp_t tcp;
    uint16_t port;
    int statuses[4]; /* answer to request i (the last one repeats); 0 = never answer */
    int nstatus;
    int nreq;
    char head[SRV_MAXREQ][2048];
    char body[SRV_MAXREQ][4096];
    srv_conn_t *conns;
} srv_t;

static void srv_conn_closed(uv_handle_t *h)
{
    srv_conn_t *c = h->data;
    srv_conn_t **pp = &c->srv->conns;

    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    free(c);
}

static void srv_conn_close(srv_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, srv_conn_closed);
}

static void srv_written(uv_write_t *req, int status)
{
    (void)status;
    srv_conn_close(req->data);
}

/* Content-Length of a header block (bounded: `head` is NUL-terminated), -1 when absent. */
static long srv_content_length(const char *head)
{
    const char *p = head;

    while ((p = strstr(p, "\r\n"))) {
        p += 2;
        if (!strncasecmp(p, "content-length:", 15))
            return strtol(p + 15, NULL, 10);
    }
    return -1;
}

static void srv_try_answer(srv_conn_t *c)
{
    srv_t *s = c->srv;
    char *end;
    size_t headlen;
    long cl;
    int idx, status;
    uv_buf_t b;
    char head[2048];

    if (c->answered)
        return;
    end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return;
    headlen = (size_t)(end - c->buf) + 4;
    if (headlen >= sizeof(head))
        return;
    memcpy(head, c->buf, headlen);
    head[headlen] = '\0';
    cl = srv_content_length(head);
    if (cl < 0 || (size_t)cl >= sizeof(s->body[0]) || c->len < headlen + (size_t)cl)
        return;
    c->answered = 1;
    idx = s->nreq++;
    if (idx < SRV_MAXREQ) {
        memcpy(s->head[idx], head, headlen + 1);
        memcpy(s->body[idx], c->buf + headlen, (size_t)cl);
        s->body[idx][cl] = '\0';
    }
    status = s->statuses[idx < s->nstatus ? idx : s->nstatus - 1];
    if (!status)
        return; /* a receiver that hangs */
    snprintf(c->resp, sizeof(c->resp),
             "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    b = uv_buf_init(c->resp, (unsigned int)strlen(c->resp));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, srv_written))
        srv_conn_close(c);
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    srv_conn_t *c = h->data;

    (void)hint;
    *buf = uv_buf_init(c->buf + c->len, (unsigned int)(sizeof(c->buf) - c->len));
}

static void srv_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    srv_conn_t *c = st->data;

    (void)buf;
    if (nread < 0) {
        srv_conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    srv_try_answer(c);
}

static void srv_on_conn(uv_stream_t *server, int status)
{
    srv_t *s = server->data;
    srv_conn_t *c;

    assert_int_equal(status, 0);
    c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->srv = s;
    c->tcp.data = c;
    assert_int_equal(uv_tcp_init(server->loop, &c->tcp), 0);
    c->next = s->conns;
    s->conns = c;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read), 0);
}

static uint16_t bound_port(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_start(uv_loop_t *loop, srv_t *s, int nstatus, ...)
{
    struct sockaddr_in sa;
    va_list ap;

    memset(s, 0, sizeof(*s));
    va_start(ap, nstatus);
    for (int i = 0; i < nstatus; i++)
        s->statuses[i] = va_arg(ap, int);
    va_end(ap);
    s->nstatus = nstatus;
    assert_int_equal(uv_tcp_init(loop, &s->tcp), 0);
    s->tcp.data = s;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 16, srv_on_conn), 0);
    s->port = bound_port(&s->tcp);
}

static void srv_stop(srv_t *s)
{
    for (srv_conn_t *c = s->conns; c; c = c->next)
        srv_conn_close(c);
    uv_close((uv_handle_t *)&s->tcp, NULL);
}

/* A port on 127.0.0.1 where nothing listens: bound once, then released. */
static uint16_t closed_port(uv_loop_t *loop)
{
    uv_tcp_t t;
    struct sockaddr_in sa;
    uint16_t port;

    assert_int_equal(uv_tcp_init(loop, &t), 0);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0), 0);
    port = bound_port(&t);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return port;
}

/* ---- fixture: one loop, one sink set, the results it reported ---- */

#define MAXRES 16

typedef struct fx_s {
    uv_loop_t loop;
    sinks_t *s;
    sinks_conf_t conf;
    sinks_result_t res[MAXRES];
    char res_key[MAXRES][128];
    int nres;
    int closed;
    uv_timer_t watchdog;
    int expired;
} fx_t;

static void on_result(void *ud, const sinks_result_t *r)
{
    fx_t *f = ud;

    assert_true(f->nres < MAXRES);
    f->res[f->nres] = *r;
    snprintf(f->res_key[f->nres], sizeof(f->res_key[0]), "%s", r->key);
    f->res[f->nres].key = f->res_key[f->nres];
    f->nres++;
}

static void on_closed(void *ud)
{
    ((fx_t *)ud)->closed = 1;
}

static void on_watchdog(uv_timer_t *t)
{
    ((fx_t *)t->data)->expired = 1;
}

/* Runs the loop until `cond` holds; fails after `ms`. */
#define RUN_UNTIL(f, cond, ms)                                                                     \
    do {                                                                                           \
        (f)->expired = 0;                                                                          \
        uv_timer_start(&(f)->watchdog, on_watchdog, (ms), 0);                                      \
        while (!(cond) && !(f)->expired)                                                           \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->watchdog);                                                             \
        assert_false((f)->expired);                                                                \
    } while (0)

static void fx_conf(fx_t *f, const char *ini)
{
    char err[1024] = "";

    assert_int_equal(epw_config_defaults(sinks_conf_keys(), &f->conf, err, sizeof(err)), 0);
    if (ini)
        assert_int_equal(epw_config_parse_buf(sinks_conf_keys(), &f->conf, ini, strlen(ini),
                                              "test.ini", err, sizeof(err)),
                         0);
    assert_string_equal(err, "");
}

static void fx_init(fx_t *f)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->watchdog), 0);
    f->watchdog.data = f;
}

static void fx_create(fx_t *f)
{
    assert_int_equal(sinks_create(&f->loop, &f->conf, on_result, f, &f->s), 0);
}

static void fx_end(fx_t *f, srv_t *srv)
{
    if (f->s) {
        sinks_close(f->s, on_closed);
        RUN_UNTIL(f, f->closed, 10000);
    }
    if (srv)
        srv_stop(srv);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    epw_config_free(sinks_conf_keys(), &f->conf);
}

/* ---- alerts ---- */

static char a_host[] = "web-1";
static char a_subject[] = "";
static char a_summary[] = "pressure 93% of 16384 ports";

typedef struct alert_buf_s {
    detect_alert_t a;
    char key[64];
} alert_buf_t;

static detect_alert_t *mk_alert(alert_buf_t *b, detect_transition_t t, detect_kind_t kind,
                                detect_severity_t sev, detect_severity_t prev, const char *key)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->key, sizeof(b->key), "%s", key);
    b->a.transition = t;
    b->a.kind = kind;
    b->a.severity = sev;
    b->a.prev_severity = prev;
    b->a.host = a_host;
    b->a.subject = a_subject;
    b->a.key = b->key;
    b->a.summary = a_summary;
    b->a.started_ms = INT64_C(1700000000000);
    b->a.at_ms = INT64_C(1700000060500);
    b->a.evidence = cJSON_CreateObject();
    assert_non_null(b->a.evidence);
    cJSON_AddNumberToObject(b->a.evidence, "pressure_pct", 93);
    cJSON_AddNumberToObject(b->a.evidence, "taken_at_ms", 1700000060000.0);
    return &b->a;
}

static void dispatch(fx_t *f, detect_transition_t t, detect_kind_t kind, detect_severity_t sev,
                     detect_severity_t prev, const char *key)
{
    alert_buf_t b;

    assert_int_equal(sinks_dispatch(f->s, mk_alert(&b, t, kind, sev, prev, key)), 0);
    cJSON_Delete(b.a.evidence);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    size_t n;

    assert_non_null(fp);
    buf = calloc(1, 65536);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* ---- tests ---- */

static void test_alert_json(void **state)
{
    alert_buf_t b;
    cJSON *o;
    const cJSON *ev;

    (void)state;
    o = sinks_alert_json(
        mk_alert(&b, DETECT_RAISED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_CRITICAL, "k1"));
    assert_non_null(o);
    assert_string_equal(jstr(o, "host"), "web-1");
    assert_string_equal(jstr(o, "kind"), "pressure");
    assert_string_equal(jstr(o, "severity"), "critical");
    assert_string_equal(jstr(o, "transition"), "raised");
    assert_string_equal(jstr(o, "key"), "k1");
    assert_string_equal(jstr(o, "summary"), a_summary);
    assert_string_equal(jstr(o, "raised_at"), "2023-11-14T22:13:20Z");
    assert_string_equal(jstr(o, "at"), "2023-11-14T22:14:20Z");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "active")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "resolved_at")));
    ev = cJSON_GetObjectItemCaseSensitive(o, "evidence");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(ev, "pressure_pct")->valueint, 93);
    cJSON_Delete(o);
    cJSON_Delete(b.a.evidence);

    o = sinks_alert_json(
        mk_alert(&b, DETECT_RESOLVED, DETECT_LEAK, DETECT_WARNING, DETECT_WARNING, "k2"));
    assert_non_null(o);
    assert_string_equal(jstr(o, "transition"), "resolved");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "active")));
    assert_string_equal(jstr(o, "resolved_at"), "2023-11-14T22:14:20Z");
    cJSON_Delete(o);
    cJSON_Delete(b.a.evidence);
    b.a.evidence = NULL;
    o = sinks_alert_json(&b.a);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "evidence")));
    cJSON_Delete(o);
    assert_null(sinks_alert_json(NULL));
}

static void test_conf(void **state)
{
    sinks_conf_t c;
    char err[1024] = "";
    static const char ini[] = "[sink.webhook]\n"
                              "url = https://hooks.example/epw\n"
                              "min_severity = critical\n"
                              "kinds = pressure, leak\n"
                              "timeout = 3s\n"
                              "retries = 4\n"
                              "headers = Authorization: Bearer abc\n"
                              "    X-Team: ops\n"
                              "[sink.exec]\n"
                              "command = /usr/local/bin/page-me\n"
                              "timeout = 2m\n"
                              "[sink.syslog]\n"
                              "enabled = yes\n"
                              "facility = local3\n";
    static const char bad[] = "[sink.webhook]\n"
                              "url = ftp://x/\n"
                              "headers = NoColon\n"
                              "kinds = pressure, nonsense\n";

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(epw_config_defaults(sinks_conf_keys(), &c, err, sizeof(err)), 0);
    assert_int_equal(c.webhook_retries, 2);
    assert_int_equal(c.webhook_timeout_ms, 10000);
    assert_int_equal(c.exec_timeout_ms, 30000);
    assert_int_equal(c.queue_max, 256);
    assert_null(c.webhook_url);
    assert_false(c.syslog_enabled);
    assert_int_equal(sinks_conf_check(&c, err, sizeof(err)), 0);
    assert_int_equal(
        epw_config_parse_buf(sinks_conf_keys(), &c, ini, strlen(ini), "t.ini", err, sizeof(err)),
        0);
    assert_string_equal(c.webhook_url, "https://hooks.example/epw");
    assert_int_equal(c.webhook_min_severity, 1);
    assert_int_equal(c.webhook_kinds.count, 2);
    assert_int_equal(c.webhook_timeout_ms, 3000);
    assert_int_equal(c.webhook_retries, 4);
    assert_int_equal(c.webhook_headers.count, 2);
    assert_string_equal(c.webhook_headers.items[1], "X-Team: ops");
    assert_string_equal(c.exec_command, "/usr/local/bin/page-me");
    assert_int_equal(c.exec_timeout_ms, 120000);
    assert_true(c.syslog_enabled);
    assert_string_equal(sinks_facility_choices[c.syslog_facility], "local3");
    assert_int_equal(sinks_conf_check(&c, err, sizeof(err)), 0);

    assert_int_equal(epw_config_defaults(sinks_conf_keys(), &c, err, sizeof(err)), 0);
    assert_int_equal(
        epw_config_parse_buf(sinks_conf_keys(), &c, bad, strlen(bad), "t.ini", err, sizeof(err)),
        0);
    assert_int_equal(sinks_conf_check(&c, err, sizeof(err)), EPW_E_CONFIG);
    assert_non_null(strstr(err, "key 'sink.webhook.kinds': unknown alert kind 'nonsense'"));
    assert_non_null(strstr(err, "key 'sink.webhook.url'"));
    assert_non_null(strstr(err, "key 'sink.webhook.headers': item 1"));
    epw_config_free(sinks_conf_keys(), &c);
}

static char logged[4][512];
static int nlogged;

static void log_capture(void *ud, epw_log_level_t level, const char *line)
{
    (void)ud;
    (void)level;
    if (strstr(line, "alert ") && nlogged < 4)
        snprintf(logged[nlogged++], sizeof(logged[0]), "%s", line);
}

static void test_log_always(void **state)
{
    fx_t f;
    sinks_stats_t st;

    (void)state;
    fx_init(&f);
    fx_conf(&f, NULL);
    fx_create(&f);
    nlogged = 0;
    epw_log_set_level(EPW_LOG_INFO); /* resolutions are logged at INFO */
    epw_log_set_sink(log_capture, NULL);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_CRITICAL, "web-1/p@1");
    dispatch(&f, DETECT_RESOLVED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "web-1/p@1");
    epw_log_set_sink(NULL, NULL);
    epw_log_set_level(EPW_LOG_WARN);
    assert_int_equal(nlogged, 2);
    assert_non_null(strstr(logged[0], "alert raised: web-1 critical pressure"));
    assert_non_null(strstr(logged[0], "[web-1/p@1]"));
    assert_non_null(strstr(logged[1], "alert resolved: web-1"));
    sinks_stats(f.s, SINKS_LOG, &st);
    assert_true(st.enabled);
    assert_int_equal(st.sent, 2);
    sinks_stats(f.s, SINKS_WEBHOOK, &st);
    assert_false(st.enabled);
    assert_int_equal(f.nres, 0);
    fx_end(&f, NULL);
}

static void webhook_conf(fx_t *f, uint16_t port, const char *extra)
{
    char ini[1024];

    snprintf(ini, sizeof(ini), "[sink.webhook]\nurl = http://127.0.0.1:%u/hook\nbackoff = 20ms\n%s",
             port, extra ? extra : "");
    fx_conf(f, ini);
}

static void test_webhook_delivers(void **state)
{
    fx_t f;
    srv_t srv;
    cJSON *o;
    sinks_stats_t st;

    (void)state;
    fx_init(&f);
    srv_start(&f.loop, &srv, 1, 200);
    webhook_conf(&f, srv.port, "headers = Authorization: Bearer s3cret, X-Epw-Test: 1\n");
    fx_create(&f);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_CRITICAL, "web-1/p@7");
    RUN_UNTIL(&f, f.nres == 1, 10000);
    assert_int_equal(f.res[0].sink, SINKS_WEBHOOK);
    assert_int_equal(f.res[0].status, 0);
    assert_int_equal(f.res[0].attempts, 1);
    assert_int_equal(f.res[0].http_status, 200);
    assert_string_equal(f.res[0].key, "web-1/p@7");
    assert_int_equal(f.res[0].transition, DETECT_RAISED);
    assert_int_equal(srv.nreq, 1);
    assert_true(!strncmp(srv.head[0], "POST /hook HTTP/1.1\r\n", 21));
    assert_non_null(strcasestr(srv.head[0], "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(srv.head[0], "\r\nAuthorization: Bearer s3cret\r\n"));
    assert_non_null(strstr(srv.head[0], "\r\nX-Epw-Test: 1\r\n"));
    o = cJSON_Parse(srv.body[0]);
    assert_non_null(o);
    assert_string_equal(jstr(o, "host"), "web-1");
    assert_string_equal(jstr(o, "kind"), "pressure");
    assert_string_equal(jstr(o, "severity"), "critical");
    assert_string_equal(jstr(o, "transition"), "raised");
    assert_string_equal(jstr(o, "key"), "web-1/p@7");
    assert_string_equal(jstr(o, "raised_at"), "2023-11-14T22:13:20Z");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "active")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "resolved_at")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(o, "evidence"), "pressure_pct")
                         ->valueint,
                     93);
    cJSON_Delete(o);
    sinks_stats(f.s, SINKS_WEBHOOK, &st);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.queued, 0);
    fx_end(&f, &srv);
}

static void test_webhook_retry_after_500(void **state)
{
    fx_t f;
    srv_t srv;
    sinks_stats_t st;

    (void)state;
    fx_init(&f);
    srv_start(&f.loop, &srv, 2, 500, 200);
    webhook_conf(&f, srv.port, NULL);
    fx_create(&f);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "web-1/p@8");
    RUN_UNTIL(&f, f.nres == 1, 10000);
    assert_int_equal(f.res[0].status, 0);
    assert_int_equal(f.res[0].attempts, 2);
    assert_int_equal(f.res[0].http_status, 200);
    assert_int_equal(srv.nreq, 2);
    assert_string_equal(srv.body[0], srv.body[1]); /* the same alert, resent */
    sinks_stats(f.s, SINKS_WEBHOOK, &st);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.failed, 0);
    fx_end(&f, &srv);
}

static void test_webhook_4xx_not_retried(void **state)
{
    fx_t f;
    srv_t srv;

    (void)state;
    fx_init(&f);
    srv_start(&f.loop, &srv, 1, 404);
    webhook_conf(&f, srv.port, NULL);
    fx_create(&f);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "web-1/p@9");
    RUN_UNTIL(&f, f.nres == 1, 10000);
    assert_int_equal(f.res[0].status, EPW_E_REJECTED);
    assert_int_equal(f.res[0].attempts, 1);
    assert_int_equal(f.res[0].http_status, 404);
    assert_int_equal(srv.nreq, 1);
    fx_end(&f, &srv);
}

static void test_webhook_unreachable_others_deliver(void **state)
{
    fx_t f;
    char ini[512], out[256], *text;
    cJSON *o;
    sinks_stats_t st;
    const sinks_result_t *wh = NULL, *ex = NULL;

    (void)state;
    fx_init(&f);
    snprintf(out, sizeof(out), "%s/unreach.json", tmpdir);
    snprintf(ini, sizeof(ini),
             "[sink.webhook]\nurl = http://127.0.0.1:%u/hook\nretries = 2\nbackoff = 20ms\n"
             "[sink.exec]\ncommand = cat > %s\n[sink.syslog]\nenabled = true\n",
             closed_port(&f.loop), out);
    fx_conf(&f, ini);
    fx_create(&f);
    dispatch(&f, DETECT_RAISED, DETECT_OS_EVENT, DETECT_CRITICAL, DETECT_CRITICAL, "web-1/os@1");
    RUN_UNTIL(&f, f.nres == 2, 10000);
    for (int i = 0; i < 2; i++) {
        if (f.res[i].sink == SINKS_WEBHOOK)
            wh = &f.res[i];
        if (f.res[i].sink == SINKS_EXEC)
            ex = &f.res[i];
    }
    assert_non_null(wh);
    assert_non_null(ex);
    assert_int_equal(wh->status, UV_ECONNREFUSED);
    assert_int_equal(wh->attempts, 3);
    assert_int_equal(wh->http_status, 0);
    assert_int_equal(ex->status, 0);
    text = slurp(out);
    o = cJSON_Parse(text);
    assert_non_null(o);
    assert_string_equal(jstr(o, "kind"), "os_event");
    cJSON_Delete(o);
    free(text);
    sinks_stats(f.s, SINKS_WEBHOOK, &st);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.sent, 0);
    sinks_stats(f.s, SINKS_EXEC, &st);
    assert_int_equal(st.sent, 1);
    sinks_stats(f.s, SINKS_SYSLOG, &st);
    assert_int_equal(st.sent, 1);
    fx_end(&f, NULL);
}

static void exec_fx(fx_t *f, const char *command, const char *extra)
{
    fx_conf(f, extra);
    free(f->conf.exec_command);
    f->conf.exec_command = strdup(command); /* may be longer than an INI line */
    assert_non_null(f->conf.exec_command);
    fx_create(f);
}

static void test_exec_stdin_and_env(void **state)
{
    fx_t f;
    char cmd[1024], json[256], env[256], *text;
    cJSON *o;

    (void)state;
    snprintf(json, sizeof(json), "%s/exec.json", tmpdir);
    snprintf(env, sizeof(env), "%s/exec.env", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "cat > %s && printf '%%s\\n' \"$EPWATCH_HOST\" \"$EPWATCH_KIND\" "
             "\"$EPWATCH_SEVERITY\" \"$EPWATCH_TRANSITION\" \"$EPWATCH_SUMMARY\" \"$EPWATCH_KEY\" "
             "> %s",
             json, env);
    setenv("EPWATCH_KIND", "stale", 1); /* the collector's own value must not leak through */
    fx_init(&f);
    exec_fx(&f, cmd, NULL);
    dispatch(&f, DETECT_ESCALATED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_WARNING, "web-1/p@42");
    RUN_UNTIL(&f, f.nres == 1, 10000);
    unsetenv("EPWATCH_KIND");
    assert_int_equal(f.res[0].sink, SINKS_EXEC);
    assert_int_equal(f.res[0].status, 0);
    assert_int_equal(f.res[0].exit_status, 0);
    text = slurp(json);
    o = cJSON_Parse(text);
    assert_non_null(o);
    assert_string_equal(jstr(o, "transition"), "escalated");
    assert_string_equal(jstr(o, "prev_severity"), "warning");
    assert_string_equal(jstr(o, "key"), "web-1/p@42");
    cJSON_Delete(o);
    free(text);
    text = slurp(env);
    assert_string_equal(text, "web-1\npressure\ncritical\nescalated\npressure 93% of 16384 "
                              "ports\nweb-1/p@42\n");
    free(text);
    fx_end(&f, NULL);
}

static void test_exec_order_and_exit_status(void **state)
{
    fx_t f;
    char cmd[512], out[256], *text;

    (void)state;
    snprintf(out, sizeof(out), "%s/order.txt", tmpdir);
    /* Appends the transition, then fails for the escalation only. */
    snprintf(cmd, sizeof(cmd),
             "cat > /dev/null; echo \"$EPWATCH_TRANSITION\" >> %s; "
             "[ \"$EPWATCH_TRANSITION\" != escalated ] || exit 3",
             out);
    fx_init(&f);
    exec_fx(&f, cmd, NULL);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "o@1");
    dispatch(&f, DETECT_ESCALATED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_WARNING, "o@1");
    dispatch(&f, DETECT_RESOLVED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_CRITICAL, "o@1");
    RUN_UNTIL(&f, f.nres == 3, 10000);
    text = slurp(out);
    assert_string_equal(text, "raised\nescalated\nresolved\n");
    free(text);
    assert_int_equal(f.res[0].status, 0);
    assert_int_equal(f.res[1].status, EPW_E_REJECTED);
    assert_int_equal(f.res[1].exit_status, 3);
    assert_int_equal(f.res[1].transition, DETECT_ESCALATED);
    assert_int_equal(f.res[2].status, 0);
    fx_end(&f, NULL);
}

/* Whether /proc says `pid` is gone or a zombie. */
static int proc_dead(long pid)
{
    char path[64], buf[512], *p;
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    fp = fopen(path, "r");
    if (!fp)
        return 1;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && (p[2] == 'Z' || p[2] == 'X');
}

static void test_exec_timeout_kills(void **state)
{
    fx_t f;
    char cmd[512], pidfile[256], *text;
    long pid;
    uint64_t t0;

    (void)state;
    snprintf(pidfile, sizeof(pidfile), "%s/sleep.pid", tmpdir);
    /* The shell waits for a background sleep: only a group kill ends both. */
    snprintf(cmd, sizeof(cmd), "sleep 100 & echo $! > %s; wait", pidfile);
    fx_init(&f);
    exec_fx(&f, cmd, "[sink.exec]\ntimeout = 300ms\n");
    t0 = epw_mono_ms();
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "t@1");
    RUN_UNTIL(&f, f.nres == 1, 10000);
    assert_int_equal(f.res[0].status, EPW_E_TIMEOUT);
    assert_int_equal(f.res[0].term_signal, SIGKILL);
    assert_true(epw_mono_ms() - t0 >= 250);
    assert_true(epw_mono_ms() - t0 < 5000);
    text = slurp(pidfile);
    pid = strtol(text, NULL, 10);
    free(text);
    assert_true(pid > 1);
    /* SIGKILL was sent to the group; give the kernel a bounded moment to finish it. */
    for (int i = 0; i < 200 && !proc_dead(pid); i++)
        uv_sleep(10);
    assert_true(proc_dead(pid));
    fx_end(&f, NULL);
}

static void test_severity_and_kind_filters(void **state)
{
    fx_t f;
    srv_t srv;
    sinks_stats_t st;
    cJSON *o;
    static const char *const want[] = {"raised", "deescalated", "resolved"};

    (void)state;
    fx_init(&f);
    srv_start(&f.loop, &srv, 1, 200);
    webhook_conf(&f, srv.port, "min_severity = critical\nkinds = pressure, leak\n");
    fx_create(&f);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "A"); /* no */
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_CRITICAL, "B");
    dispatch(&f, DETECT_RAISED, DETECT_TREND, DETECT_CRITICAL, DETECT_CRITICAL, "C"); /* kind */
    dispatch(&f, DETECT_DEESCALATED, DETECT_PRESSURE, DETECT_WARNING, DETECT_CRITICAL, "B");
    dispatch(&f, DETECT_RENOTIFY, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "B"); /* no */
    dispatch(&f, DETECT_RESOLVED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "B");
    dispatch(&f, DETECT_RESOLVED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "A"); /* no */
    sinks_stats(f.s, SINKS_WEBHOOK, &st);
    assert_int_equal(st.filtered, 4);
    RUN_UNTIL(&f, f.nres == 3, 10000);
    assert_int_equal(srv.nreq, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.res[i].status, 0);
        assert_string_equal(f.res[i].key, "B");
        o = cJSON_Parse(srv.body[i]);
        assert_non_null(o);
        assert_string_equal(jstr(o, "transition"), want[i]);
        cJSON_Delete(o);
    }
    sinks_stats(f.s, SINKS_WEBHOOK, &st);
    assert_int_equal(st.sent, 3);
    fx_end(&f, &srv);
}

static int ticks;

static void on_tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

static void test_loop_responsive_during_webhook_timeout(void **state)
{
    fx_t f;
    srv_t srv;
    uv_timer_t tick;
    uint64_t t0, took;

    (void)state;
    fx_init(&f);
    srv_start(&f.loop, &srv, 1, 0); /* reads the request, never answers */
    webhook_conf(&f, srv.port, "timeout = 600ms\nretries = 0\n");
    fx_create(&f);
    ticks = 0;
    assert_int_equal(uv_timer_init(&f.loop, &tick), 0);
    assert_int_equal(uv_timer_start(&tick, on_tick, 20, 20), 0);
    t0 = epw_mono_ms();
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "r@1");
    assert_true(epw_mono_ms() - t0 < 100); /* fire and forget */
    RUN_UNTIL(&f, f.nres == 1, 10000);
    took = epw_mono_ms() - t0;
    assert_int_equal(f.res[0].status, EPW_E_TIMEOUT);
    assert_int_equal(srv.nreq, 1);
    assert_true(took >= 550);
    /* 30 ticks would fit; a loop blocked in curl would see at most one or two. */
    assert_true(ticks >= 15);
    uv_close((uv_handle_t *)&tick, NULL);
    fx_end(&f, &srv);
}

static void test_close_cancels_after_grace(void **state)
{
    fx_t f;
    srv_t srv;
    alert_buf_t b;
    char ini[512];
    uint64_t t0;
    sinks_stats_t st;

    (void)state;
    fx_init(&f);
    srv_start(&f.loop, &srv, 1, 0);
    snprintf(ini, sizeof(ini),
             "[sink]\nclose_grace = 200ms\n[sink.webhook]\nurl = http://127.0.0.1:%u/\n"
             "timeout = 30s\n[sink.exec]\ncommand = exec sleep 100\ntimeout = 60s\n",
             srv.port);
    fx_conf(&f, ini);
    fx_create(&f);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "c@1");
    dispatch(&f, DETECT_RESOLVED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "c@1");
    RUN_UNTIL(&f, srv.nreq == 1, 10000); /* the request is in flight */
    sinks_stats(f.s, SINKS_EXEC, &st);
    assert_int_equal(st.queued, 2);
    t0 = epw_mono_ms();
    sinks_close(f.s, on_closed);
    assert_int_equal(sinks_dispatch(f.s, mk_alert(&b, DETECT_RAISED, DETECT_PRESSURE,
                                                  DETECT_WARNING, DETECT_WARNING, "c@2")),
                     EPW_E_CLOSED);
    cJSON_Delete(b.a.evidence);
    RUN_UNTIL(&f, f.closed, 10000);
    assert_true(epw_mono_ms() - t0 >= 150);
    assert_true(epw_mono_ms() - t0 < 5000);
    assert_int_equal(f.nres, 4); /* two per sink, each cancelled */
    for (int i = 0; i < 4; i++)
        assert_int_equal(f.res[i].status, EPW_E_CLOSED);
    f.s = NULL;
    fx_end(&f, &srv);
}

static void test_close_lets_deliveries_finish(void **state)
{
    fx_t f;

    (void)state;
    fx_init(&f);
    exec_fx(&f, "cat > /dev/null", NULL);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "g@1");
    dispatch(&f, DETECT_RESOLVED, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "g@1");
    sinks_close(f.s, on_closed);
    f.s = NULL;
    RUN_UNTIL(&f, f.closed, 10000);
    assert_int_equal(f.nres, 2);
    assert_int_equal(f.res[0].status, 0);
    assert_int_equal(f.res[1].status, 0);
    fx_end(&f, NULL);
}

static void test_queue_full_drops(void **state)
{
    fx_t f;
    sinks_stats_t st;

    (void)state;
    fx_init(&f);
    exec_fx(&f, "cat > /dev/null", "[sink]\nqueue_max = 2\n");
    for (int i = 0; i < 4; i++)
        dispatch(&f, DETECT_RENOTIFY, DETECT_PRESSURE, DETECT_WARNING, DETECT_WARNING, "q@1");
    /* The two beyond the limit are reported at once. */
    assert_int_equal(f.nres, 2);
    assert_int_equal(f.res[0].status, EPW_E_TOOBIG);
    assert_int_equal(f.res[1].status, EPW_E_TOOBIG);
    RUN_UNTIL(&f, f.nres == 4, 10000);
    assert_int_equal(f.res[2].status, 0);
    assert_int_equal(f.res[3].status, 0);
    sinks_stats(f.s, SINKS_EXEC, &st);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.sent, 2);
    assert_int_equal(st.failed, 0);
    fx_end(&f, NULL);
}

static void test_syslog_exercised(void **state)
{
    fx_t f;
    sinks_stats_t st;

    (void)state;
    fx_init(&f);
    fx_conf(&f, "[sink.syslog]\nenabled = on\nident = epwatch-test\nfacility = local0\n"
                "min_severity = critical\n");
    fx_create(&f);
    dispatch(&f, DETECT_RAISED, DETECT_PRESSURE, DETECT_CRITICAL, DETECT_CRITICAL, "s@1");
    dispatch(&f, DETECT_RAISED, DETECT_LEAK, DETECT_WARNING, DETECT_WARNING, "s@2");
    dispatch(&f, DETECT_RESOLVED, DETECT_PRESSURE, DETECT_WARNING, DETECT_CRITICAL, "s@1");
    sinks_stats(f.s, SINKS_SYSLOG, &st);
    assert_true(st.enabled);
    assert_int_equal(st.sent, 2);
    assert_int_equal(st.filtered, 1);
    assert_int_equal(f.nres, 0); /* syslog only counts */
    fx_end(&f, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as epwatch-collector does */
    epw_log_set_level(EPW_LOG_WARN);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alert_json),
        cmocka_unit_test(test_conf),
        cmocka_unit_test(test_log_always),
        cmocka_unit_test(test_webhook_delivers),
        cmocka_unit_test(test_webhook_retry_after_500),
        cmocka_unit_test(test_webhook_4xx_not_retried),
        cmocka_unit_test(test_webhook_unreachable_others_deliver),
        cmocka_unit_test(test_exec_stdin_and_env),
        cmocka_unit_test(test_exec_order_and_exit_status),
        cmocka_unit_test(test_exec_timeout_kills),
        cmocka_unit_test(test_severity_and_kind_filters),
        cmocka_unit_test(test_loop_responsive_during_webhook_timeout),
        cmocka_unit_test(test_close_cancels_after_grace),
        cmocka_unit_test(test_close_lets_deliveries_finish),
        cmocka_unit_test(test_queue_full_drops),
        cmocka_unit_test(test_syslog_exercised),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
