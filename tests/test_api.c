/* test_api: the operator API server over real TLS on 127.0.0.1 with a real SQLite store. */
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

#include <curl/curl.h>
#include <uv.h>

#include "api.h"
#include "epw_conn.h"
#include "epw_err.h"
#include "epw_json.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_testcerts.h"
#include "epw_util.h"
#include "store.h"
#include "support/epw_testsnap.h"

#define MIN_MS 60000
#define TOKEN  "s3cr3t-token_1"
#define TOKEN2 "another.token"

static char certdir[256];

/* ---- fixture: loop, store with known data, API, fake provider -------------------------------- */

typedef struct fx_s {
    uv_loop_t loop;
    uv_timer_t guard;
    uv_timer_t defer; /* the fake provider answers alert queries from here (asynchronously) */
    char dir[64], db[128];
    store_t *st;
    size_t results;
    int store_closed, api_closed;
    api_t *api;
    uint16_t port;
    int64_t base; /* web1's series starts here (a multiple of 2 minutes) */
    int64_t now0; /* when the fixture was made */
    /* fake provider */
    api_alerts_done_cb pending_done;
    void *pending_req;
    api_alert_query_t last_q;
    int alert_calls;
    int hold_alerts; /* the test answers alert queries itself (fp_answer) */
    cJSON *evidence;
} fx_t;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    fail_msg("the test loop did not finish in time");
}

static void on_store_done(store_t *st, const store_result_t *r, size_t n, void *ud)
{
    fx_t *fx = ud;
    size_t i;

    (void)st;
    for (i = 0; i < n; i++)
        assert_int_equal(r[i].outcome, STORE_NEW);
    fx->results += n;
}

static void on_store_closed(void *ud)
{
    ((fx_t *)ud)->store_closed = 1;
}

static void on_api_closed(void *ud)
{
    ((fx_t *)ud)->api_closed = 1;
}

static void run_until(fx_t *fx, const int *flag)
{
    while (!*flag)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static char *cert(char *buf, size_t len, const char *name)
{
    return (char *)epw_testcerts_path(buf, len, certdir, name);
}

/* A snapshot with known figures; pct sets the pressure. *len set, buffer malloc'd. */
static uint8_t *make_snap(const char *hostname, uint64_t seq, int64_t taken_at, double pct,
                          size_t *len)
{
    Epw__Snapshot *s = epw_snap_new();
    uint8_t *buf;

    assert_non_null(s);
    s->seq = seq;
    s->taken_at_ms = taken_at;
    s->hostname = epw_snap_strdup(hostname);
    s->platform = EPW__PLATFORM__LINUX;
    s->pressure_pct = pct;
    s->pressure_source = epw_snap_strdup("host tcp");
    epw_testsnap_host(s, EPW__PROTOCOL__TCP, 1200 + (uint32_t)seq, 28232, 4.3);
    epw_testsnap_host(s, EPW__PROTOCOL__UDP, 7, 28232, 0);
    epw_testsnap_destination(s, "10.0.0.5", "10.0.0.9", 443, 900, 0, pct);
    s->destination_count = 1;
    epw_testsnap_state(s, "ESTABLISHED", 1100);
    epw_testsnap_process(s, 10, "nginx", 50, 0);
    epw_testsnap_process(s, 20, "java", 700, 0);
    s->kernel_ports = 3;
    s->total_sockets = 1500;
    assert_int_equal(epw_snap_add_note(s, "a note"), 0);
    buf = epw_testsnap_pack(s, len);
    epw_snap_free(s);
    return buf;
}

static void submit_snap(fx_t *fx, const char *host, uint64_t seq, int64_t t, double pct)
{
    size_t len;
    uint8_t *b = make_snap(host, seq, t, pct, &len);

    assert_int_equal(store_submit_snapshot(fx->st, 1, host, b, len), 0);
    free(b);
}

static void submit_hello(fx_t *fx, const char *host, const char *version)
{
    store_hello_t h = {.identity = host,
                       .agent_version = version,
                       .os = "Linux 6.1.0",
                       .platform = EPW__PLATFORM__LINUX,
                       .interval_ms = 10000};

    assert_int_equal(store_submit_hello(fx->st, 1, &h), 0);
}

/* Fake provider: web1 has a warning, db2 two alerts with a critical, edge3 is silent. */
static size_t fp_agents(void *ud)
{
    (void)ud;
    return 2;
}

static void fp_counters(void *ud, api_counters_t *out)
{
    (void)ud;
    out->snapshots_ingested = 13;
    out->rejects[0].label = "version_mismatch";
    out->rejects[0].value = 1;
    out->rejects[1].label = "overloaded";
    out->rejects[1].value = 0;
    out->n_rejects = 2;
}

static void fp_host_alerts(void *ud, const char *host, api_host_alerts_t *out)
{
    (void)ud;
    if (strcmp(host, "web1") == 0) {
        out->active = 1;
        out->status = API_STATUS_WARNING;
    } else if (strcmp(host, "db2") == 0) {
        out->active = 2;
        out->status = API_STATUS_CRITICAL;
    } else if (strcmp(host, "edge3") == 0) {
        out->active = 1;
        out->status = API_STATUS_SILENT;
    }
}

static void fp_answer(uv_timer_t *t)
{
    fx_t *fx = t->data;
    /* Deliberately unordered, and a superset: the API filters, orders and limits. */
    api_alert_t al[4] = {
        {.id = 1,
         .host = "db2",
         .kind = "threshold",
         .severity = DETECT_WARNING,
         .active = 0,
         .raised_at_ms = fx->now0 - 48 * 3600000LL,
         .resolved_at_ms = fx->now0 - 47 * 3600000LL,
         .summary = "old one"},
        {.id = 2,
         .host = "db2",
         .kind = "threshold",
         .severity = DETECT_CRITICAL,
         .active = 1,
         .raised_at_ms = fx->base,
         .last_notified_at_ms = fx->base + 5 * MIN_MS,
         .summary = "pressure 80% >= 70%",
         .evidence = fx->evidence},
        {.id = 4,
         .host = "web1",
         .kind = "trend",
         .severity = DETECT_WARNING,
         .active = 1,
         .raised_at_ms = fx->base + 3 * MIN_MS,
         .summary = "full in 50 min"},
        {.id = 3,
         .host = "web1",
         .kind = "leak",
         .severity = DETECT_WARNING,
         .active = 0,
         .raised_at_ms = fx->base + MIN_MS,
         .resolved_at_ms = fx->base + 2 * MIN_MS,
         .summary = "java leaking"},
    };

    fx->pending_done(fx->pending_req, 0, al, 4);
    fx->pending_done = NULL;
}

static int fp_list_alerts(void *ud, const api_alert_query_t *q, api_alerts_done_cb done, void *req)
{
    fx_t *fx = ud;

    assert_null(fx->pending_done);
    fx->alert_calls++;
    fx->last_q = *q;
    fx->last_q.host = NULL; /* valid during the call only */
    fx->pending_done = done;
    fx->pending_req = req;
    if (fx->hold_alerts)
        return 0;
    return uv_timer_start(&fx->defer, fp_answer, 0, 0);
}

static fx_t *fx_new(const char *const *tokens, size_t n_tokens, size_t max_conns)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    store_options_t so;
    api_opts_t ao;
    char ca[300], crt[300], key[300];
    int i;

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->guard), 0);
    assert_int_equal(uv_timer_start(&fx->guard, on_guard, 30000, 0), 0);
    uv_unref((uv_handle_t *)&fx->guard);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->defer), 0);
    fx->defer.data = fx;
    fx->evidence = cJSON_Parse("{\"pressure_pct\":80,\"taken_at_ms\":1}");
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/epw-api-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof(fx->db), "%s/history.db", fx->dir);

    memset(&so, 0, sizeof(so));
    so.target = fx->db;
    so.relaxed_sync = 1;
    so.done_cb = on_store_done;
    so.ud = fx;
    assert_int_equal(store_open(&fx->loop, &so, &fx->st), 0);

    /* web1: 41..50 % one minute apart, inside the last 15 minutes: +60 %/h. db2: 80 %, two
     * hours ago (no trend). edge3: a Hello, no snapshot. */
    fx->now0 = epw_now_ms();
    fx->base = (fx->now0 - 11 * MIN_MS) / (2 * MIN_MS) * (2 * MIN_MS);
    submit_hello(fx, "web1", "0.1.0");
    submit_hello(fx, "db2", "0.0.9");
    submit_hello(fx, "edge3", "0.1.0");
    for (i = 1; i <= 10; i++)
        submit_snap(fx, "web1", (uint64_t)i, fx->base + i * MIN_MS, 40 + i);
    for (i = 1; i <= 3; i++)
        submit_snap(fx, "db2", (uint64_t)i, fx->now0 - 2 * 3600000LL + i * MIN_MS, 80);
    while (fx->results < 16)
        uv_run(&fx->loop, UV_RUN_ONCE);

    memset(&ao, 0, sizeof(ao));
    ao.addr = "127.0.0.1";
    ao.ca_path = cert(ca, sizeof(ca), "ca.crt");
    ao.cert_path = cert(crt, sizeof(crt), "collector.crt");
    ao.key_path = cert(key, sizeof(key), "collector.key");
    ao.tokens = tokens;
    ao.n_tokens = n_tokens;
    ao.store = fx->st;
    ao.max_connections = max_conns;
    ao.max_readers = 2;
    ao.handshake_ms = 5000;
    ao.limits.max_header_bytes = 8192;
    ao.provider.agents_connected = fp_agents;
    ao.provider.counters = fp_counters;
    ao.provider.host_alerts = fp_host_alerts;
    ao.provider.list_alerts = fp_list_alerts;
    ao.provider.ud = fx;
    assert_int_equal(api_start(&fx->loop, &ao, &fx->api), 0);
    fx->port = api_port(fx->api);
    assert_true(fx->port > 0);
    return fx;
}

static void fx_free(fx_t *fx)
{
    char p[200];

    if (!fx->api_closed) {
        api_close(fx->api, on_api_closed, fx);
        run_until(fx, &fx->api_closed);
    }
    store_close(fx->st, on_store_closed, fx);
    run_until(fx, &fx->store_closed);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_close((uv_handle_t *)&fx->defer, NULL);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    cJSON_Delete(fx->evidence);
    unlink(fx->db);
    snprintf(p, sizeof(p), "%s-wal", fx->db);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", fx->db);
    unlink(p);
    assert_int_equal(rmdir(fx->dir), 0);
    free(fx);
}

/* ---- an HTTPS client on the same loop: epw_conn in raw mode ---------------------------------- */

typedef struct cl_s {
    fx_t *fx;
    epw_tls_config_t *cfg;
    epw_conn_t *c;
    char *pending; /* sent once the handshake is done */
    size_t pending_len;
    char *in;
    size_t in_len, in_cap, off;
    int ready, closed, status;
} cl_t;

typedef struct resp_s {
    int status;
    char head[2048];
    char *body; /* NUL-terminated */
    size_t body_len;
} resp_t;

static void cl_send(cl_t *cl, const char *text, size_t len)
{
    if (cl->ready) {
        assert_int_equal(epw_conn_send_raw(cl->c, text, len), 0);
        return;
    }
    cl->pending = realloc(cl->pending, cl->pending_len + len);
    assert_non_null(cl->pending);
    memcpy(cl->pending + cl->pending_len, text, len);
    cl->pending_len += len;
}

static void cl_sends(cl_t *cl, const char *text)
{
    cl_send(cl, text, strlen(text));
}

static void cl_ready(epw_conn_t *c, void *ud)
{
    cl_t *cl = ud;

    cl->ready = 1;
    if (cl->pending_len > 0)
        assert_int_equal(epw_conn_send_raw(c, cl->pending, cl->pending_len), 0);
    free(cl->pending);
    cl->pending = NULL;
    cl->pending_len = 0;
}

static void cl_data(epw_conn_t *c, const uint8_t *buf, size_t len, void *ud)
{
    cl_t *cl = ud;

    (void)c;
    if (cl->in_len + len + 1 > cl->in_cap) {
        cl->in_cap = (cl->in_len + len + 1) * 2;
        cl->in = realloc(cl->in, cl->in_cap);
        assert_non_null(cl->in);
    }
    memcpy(cl->in + cl->in_len, buf, len);
    cl->in_len += len;
    cl->in[cl->in_len] = '\0';
}

static void cl_closed(epw_conn_t *c, int status, void *ud)
{
    cl_t *cl = ud;

    (void)c;
    cl->closed = 1;
    cl->status = status;
    cl->c = NULL;
}

/* name: "op1", "host-a", "other/host-a" or NULL (no certificate). */
static void cl_open(fx_t *fx, cl_t *cl, const char *name)
{
    char ca[300], crt[300], key[300], f[64];
    epw_conn_cbs_t cbs;

    memset(cl, 0, sizeof(*cl));
    cl->fx = fx;
    if (name != NULL) {
        snprintf(f, sizeof(f), "%s.crt", name);
        cert(crt, sizeof(crt), f);
        snprintf(f, sizeof(f), "%s.key", name);
        cert(key, sizeof(key), f);
    }
    assert_int_equal(epw_tls_config_create(EPW_TLS_CLIENT, cert(ca, sizeof(ca), "ca.crt"),
                                           name ? crt : NULL, name ? key : NULL, NULL, &cl->cfg),
                     0);
    memset(&cbs, 0, sizeof(cbs));
    cbs.on_ready = cl_ready;
    cbs.on_data = cl_data;
    cbs.on_close = cl_closed;
    cbs.ud = cl;
    assert_int_equal(epw_conn_connect(&fx->loop, cl->cfg, "127.0.0.1", fx->port, "collector", NULL,
                                      NULL, &cbs, &cl->c),
                     0);
}

static void cl_close(cl_t *cl)
{
    if (!cl->closed)
        epw_conn_close(cl->c, 0);
    run_until(cl->fx, &cl->closed);
    epw_tls_config_destroy(cl->cfg);
    free(cl->pending);
    free(cl->in);
    cl->in = cl->pending = NULL;
}

static void resp_free(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* Takes one complete response from the received bytes; 1 when there was one. */
static int cl_take(cl_t *cl, resp_t *r)
{
    const char *p = cl->in ? cl->in + cl->off : NULL, *end, *cl_hdr;
    size_t hlen, clen = 0;

    if (p == NULL || (end = strstr(p, "\r\n\r\n")) == NULL)
        return 0;
    hlen = (size_t)(end - p) + 4;
    assert_true(hlen < sizeof(r->head));
    memcpy(r->head, p, hlen);
    r->head[hlen] = '\0';
    cl_hdr = strcasestr(r->head, "\r\nContent-Length:");
    assert_non_null(cl_hdr);
    clen = strtoul(cl_hdr + 17, NULL, 10);
    if (cl->in_len - cl->off < hlen + clen)
        return 0;
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    r->body = malloc(clen + 1);
    assert_non_null(r->body);
    memcpy(r->body, p + hlen, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    cl->off += hlen + clen;
    return 1;
}

/* Runs the loop until a response arrived (1) or the connection closed without one (0). */
static int cl_wait(cl_t *cl, resp_t *r)
{
    memset(r, 0, sizeof(*r));
    for (;;) {
        if (cl_take(cl, r))
            return 1;
        if (cl->closed)
            return 0;
        uv_run(&cl->fx->loop, UV_RUN_ONCE);
    }
}

static void cl_get(cl_t *cl, const char *path, const char *token)
{
    char req[1024];
    int n;

    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: collector\r\n%s%s%s\r\n", path,
                 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    cl_send(cl, req, (size_t)n);
}

/* One GET on a new connection. Returns 1 with a response, 0 when refused without one. */
static int get(fx_t *fx, const char *certname, const char *token, const char *path, resp_t *r)
{
    cl_t cl;
    int got;

    cl_open(fx, &cl, certname);
    cl_get(&cl, path, token);
    got = cl_wait(&cl, r);
    cl_close(&cl);
    return got;
}

/* GET with the operator certificate; asserts the status and parses the JSON body. */
static cJSON *get_json(fx_t *fx, const char *path, int status)
{
    resp_t r;
    cJSON *j;

    assert_true(get(fx, "op1", NULL, path, &r));
    if (r.status != status)
        fail_msg("%s: status %d, expected %d: %s", path, r.status, status, r.body);
    assert_non_null(strstr(r.head, "Content-Type: application/json; charset=utf-8\r\n"));
    j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_non_null(j);
    resp_free(&r);
    return j;
}

/* Asserts that `actual` equals the JSON text `expected` (key order matters not). */
static void assert_json(const cJSON *actual, const char *expected)
{
    cJSON *e = cJSON_Parse(expected);
    char *a;

    assert_non_null(e);
    if (!cJSON_Compare(actual, e, 1)) {
        a = cJSON_PrintUnformatted(actual);
        fail_msg("JSON differs\n  actual:   %s\n  expected: %s", a, expected);
    }
    cJSON_Delete(e);
}

static void assert_error(const cJSON *j, int code, const char *message)
{
    char want[600];

    snprintf(want, sizeof(want), "{\"error\": {\"code\": %d, \"message\": \"%s\"}}", code, message);
    assert_json(j, want);
}

static void time_str(int64_t ms, char *buf, size_t len)
{
    assert_int_equal(epw_format_rfc3339(ms, buf, len), 0);
}

/* ---- authorisation --------------------------------------------------------------------------- */

static void test_operator_certificate(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    cJSON *j;
    api_stats_t st;

    (void)state;
    j = get_json(fx, "/api/v1/health", 200);
    assert_json(j,
                "{\"status\": \"ok\", \"version\": \"" EPW_VERSION "\", \"agents_connected\": 2}");
    cJSON_Delete(j);
    api_get_stats(fx->api, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.requests, 1);
    fx_free(fx);
}

/* Without tokens only operator certificates pass the handshake. */
static void test_refused_without_tokens(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    resp_t r;
    cl_t cl;
    api_stats_t st;

    (void)state;
    /* Agent certificate. */
    cl_open(fx, &cl, "host-a");
    cl_get(&cl, "/api/v1/health", NULL);
    assert_false(cl_wait(&cl, &r));
    assert_false(cl.ready);
    assert_true(cl.status == EPW_E_TLS || cl.status == EPW_E_TLS_VERIFY);
    cl_close(&cl);
    /* No certificate, with and without a token. */
    assert_false(get(fx, NULL, NULL, "/api/v1/health", &r));
    assert_false(get(fx, NULL, TOKEN, "/api/v1/health", &r));
    api_get_stats(fx->api, &st);
    assert_int_equal(st.accepted, 0);
    assert_int_equal(st.tls_failures, 3);
    /* The server still serves operators. */
    assert_true(get(fx, "op1", NULL, "/api/v1/health", &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    fx_free(fx);
}

static void test_tokens(void **state)
{
    static const char *const tokens[] = {TOKEN, "", TOKEN2};
    fx_t *fx = fx_new(tokens, 3, 0);
    resp_t r;
    cJSON *j;
    api_stats_t st;

    (void)state;
    /* No certificate + a valid token: accepted (either token). */
    assert_true(get(fx, NULL, TOKEN, "/api/v1/health", &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(get(fx, NULL, TOKEN2, "/api/v1/hosts", &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* Bad token, empty-looking token, no token: 401 JSON with WWW-Authenticate. */
    assert_true(get(fx, NULL, "wrong", "/api/v1/health", &r));
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.head, "WWW-Authenticate: Bearer"));
    j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_error(j, 401, "an operator certificate or a valid bearer token is required");
    cJSON_Delete(j);
    resp_free(&r);
    assert_true(get(fx, NULL, TOKEN "x", "/metrics", &r));
    assert_int_equal(r.status, 401);
    resp_free(&r);
    assert_true(get(fx, NULL, NULL, "/api/v1/alerts", &r));
    assert_int_equal(r.status, 401);
    resp_free(&r);
    /* 401 before routing: an unknown path does not reveal itself. */
    assert_true(get(fx, NULL, NULL, "/nope", &r));
    assert_int_equal(r.status, 401);
    resp_free(&r);
    /* Operators need no token. */
    assert_true(get(fx, "op1", NULL, "/api/v1/health", &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* An agent certificate, or one from another CA, is refused even though certificates are
     * optional here: no HTTP answer at all. */
    assert_false(get(fx, "host-a", TOKEN, "/api/v1/health", &r));
    assert_false(get(fx, "other/host-a", TOKEN, "/api/v1/health", &r));
    api_get_stats(fx->api, &st);
    assert_int_equal(st.unauthorised, 4);
    assert_int_equal(st.tls_failures, 2);
    assert_int_equal(st.accepted, 7);
    fx_free(fx);
}

/* ---- endpoints --------------------------------------------------------------------------------
 */

/* Checks last_seen (the store's receive time) lies in [lo, hi] and removes it. */
static void take_last_seen(cJSON *o, int64_t lo, int64_t hi)
{
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(o, "last_seen");
    int64_t t;

    assert_true(cJSON_IsString(ls));
    assert_int_equal(epw_parse_rfc3339(ls->valuestring, &t), 0);
    assert_true(t >= lo / 1000 * 1000 && t <= hi);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "last_seen");
}

static void test_hosts(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    cJSON *j, *o;
    int64_t hi = epw_now_ms();

    (void)state;
    j = get_json(fx, "/api/v1/hosts", 200);
    assert_int_equal(cJSON_GetArraySize(j), 3);
    cJSON_ArrayForEach(o, j) take_last_seen(o, fx->now0, hi);
    /* Silent first, then by pressure. */
    assert_json(j,
                "["
                "{\"host\": \"edge3\", \"pressure_pct\": 0, \"pressure_source\": \"\","
                " \"status\": \"silent\", \"active_alerts\": 1, \"trend_pct_per_hour\": 0,"
                " \"platform\": \"linux\", \"os\": \"Linux 6.1.0\", \"agent_version\": \"0.1.0\","
                " \"tcp_in_use\": null, \"tcp_max\": null, \"kernel_ports\": null,"
                " \"top_process\": null},"
                "{\"host\": \"db2\", \"pressure_pct\": 80, \"pressure_source\": \"host tcp\","
                " \"status\": \"critical\", \"active_alerts\": 2, \"trend_pct_per_hour\": 0,"
                " \"platform\": \"linux\", \"os\": \"Linux 6.1.0\", \"agent_version\": \"0.0.9\","
                " \"tcp_in_use\": 1203, \"tcp_max\": 28232, \"kernel_ports\": 3,"
                " \"top_process\": {\"pid\": 20, \"name\": \"java\", \"ports\": 700}},"
                "{\"host\": \"web1\", \"pressure_pct\": 50, \"pressure_source\": \"host tcp\","
                " \"status\": \"warning\", \"active_alerts\": 1, \"trend_pct_per_hour\": 60,"
                " \"platform\": \"linux\", \"os\": \"Linux 6.1.0\", \"agent_version\": \"0.1.0\","
                " \"tcp_in_use\": 1210, \"tcp_max\": 28232, \"kernel_ports\": 3,"
                " \"top_process\": {\"pid\": 20, \"name\": \"java\", \"ports\": 700}}"
                "]");
    cJSON_Delete(j);
    fx_free(fx);
}

static void test_history(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    char from[40], to[40], path[300], want[2048], t[6][40];
    cJSON *j, *p;
    int i, samples = 0;

    (void)state;
    time_str(fx->base, from, sizeof(from));
    time_str(fx->base + 10 * MIN_MS + 1000, to, sizeof(to));
    for (i = 0; i < 6; i++)
        time_str(fx->base + i * 2 * MIN_MS, t[i], sizeof(t[i]));
    snprintf(path, sizeof(path), "/api/v1/hosts/web1/history?since=%s&until=%s&step=2m", from, to);
    j = get_json(fx, path, 200);
    snprintf(want, sizeof(want),
             "{\"host\": \"web1\", \"from\": \"%s\", \"to\": \"%s\", \"step_s\": 120, \"points\": ["
             "{\"t\": \"%s\", \"max_pct\": 41, \"avg_pct\": 41, \"samples\": 1},"
             "{\"t\": \"%s\", \"max_pct\": 43, \"avg_pct\": 42.5, \"samples\": 2},"
             "{\"t\": \"%s\", \"max_pct\": 45, \"avg_pct\": 44.5, \"samples\": 2},"
             "{\"t\": \"%s\", \"max_pct\": 47, \"avg_pct\": 46.5, \"samples\": 2},"
             "{\"t\": \"%s\", \"max_pct\": 49, \"avg_pct\": 48.5, \"samples\": 2},"
             "{\"t\": \"%s\", \"max_pct\": 50, \"avg_pct\": 50, \"samples\": 1}]}",
             from, to, t[0], t[1], t[2], t[3], t[4], t[5]);
    assert_json(j, want);
    cJSON_Delete(j);

    /* Defaults: the last 6 hours in steps of 6h / 120 = 3 minutes. */
    j = get_json(fx, "/api/v1/hosts/web1/history", 200);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "step_s")->valueint, 180);
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "points")) samples +=
        cJSON_GetObjectItemCaseSensitive(p, "samples")->valueint;
    assert_int_equal(samples, 10);
    cJSON_Delete(j);
    /* A duration for since, host name percent-encoded. */
    j = get_json(fx, "/api/v1/hosts/%77eb1/history?since=15m&step=1m", 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "points")), 10);
    cJSON_Delete(j);

    /* Validation. */
    j = get_json(fx, "/api/v1/hosts/web1/history?since=yesterday", 400);
    assert_error(j, 400,
                 "bad since=yesterday: expected a duration (90s, 15m, 6h, 7d) or an RFC 3339 time");
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/hosts/web1/history?step=0", 400);
    assert_error(j, 400, "bad step=0: expected a whole number of seconds, at least 1s (e.g. 5m)");
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/hosts/web1/history?since=1h&until=2h", 400);
    assert_error(j, 400, "empty range: since must be before until");
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/hosts/web1/history?since=30d&step=1s", 400);
    assert_error(j, 400, "step too small for the range (too many buckets)");
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/hosts/nope/history", 404);
    assert_error(j, 404, "no such host: nope");
    cJSON_Delete(j);
    fx_free(fx);
}

static void expect_snapshot(const cJSON *j, fx_t *fx, uint64_t seq)
{
    size_t len;
    uint8_t *b = make_snap("web1", seq, fx->base + (int64_t)seq * MIN_MS, 40 + (double)seq, &len);
    Epw__Snapshot *s = epw__snapshot__unpack(NULL, len, b);
    cJSON *want;

    assert_non_null(s);
    want = epw_json_snapshot(s);
    assert_non_null(want);
    if (!cJSON_Compare(j, want, 1))
        fail_msg("snapshot %llu differs: %s", (unsigned long long)seq, cJSON_PrintUnformatted(j));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "seq")->valuedouble, (double)seq);
    cJSON_Delete(want);
    epw__snapshot__free_unpacked(s, NULL);
    free(b);
}

static void test_snapshot(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    char at[40], path[200], msg[200];
    cJSON *j;

    (void)state;
    j = get_json(fx, "/api/v1/hosts/web1/snapshot", 200);
    expect_snapshot(j, fx, 10);
    cJSON_Delete(j);
    time_str(fx->base + 5 * MIN_MS + 30000, at, sizeof(at));
    snprintf(path, sizeof(path), "/api/v1/hosts/web1/snapshot?at=%s", at);
    j = get_json(fx, path, 200);
    expect_snapshot(j, fx, 5);
    cJSON_Delete(j);

    time_str(fx->base, at, sizeof(at));
    snprintf(path, sizeof(path), "/api/v1/hosts/web1/snapshot?at=%s", at);
    j = get_json(fx, path, 404);
    snprintf(msg, sizeof(msg), "no snapshot of web1 at or before %s", at);
    assert_error(j, 404, msg);
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/hosts/edge3/snapshot", 404);
    assert_true(strncmp(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(j, "error"), "message")
                            ->valuestring,
                        "no snapshot of edge3", 20) == 0);
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/hosts/web-17/snapshot", 404);
    assert_error(j, 404, "no such host: web-17");
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/hosts/web1/snapshot?at=noon", 400);
    assert_error(j, 400, "bad at=noon: expected an RFC 3339 time or a duration back from now");
    cJSON_Delete(j);
    /* Unknown route and wrong method. */
    j = get_json(fx, "/api/v1/hosts/web1/nothing", 404);
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "code")
            ->valueint,
        404);
    cJSON_Delete(j);
    fx_free(fx);
}

static void test_alerts(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    char raised2[40], notified2[40], raised4[40], raised3[40], resolved3[40], want[3000];
    cJSON *j;

    (void)state;
    time_str(fx->base, raised2, sizeof(raised2));
    time_str(fx->base + 5 * MIN_MS, notified2, sizeof(notified2));
    time_str(fx->base + 3 * MIN_MS, raised4, sizeof(raised4));
    time_str(fx->base + MIN_MS, raised3, sizeof(raised3));
    time_str(fx->base + 2 * MIN_MS, resolved3, sizeof(resolved3));

    /* Default: active ones and those resolved in the last 24 h, newest first. */
    j = get_json(fx, "/api/v1/alerts", 200);
    snprintf(want, sizeof(want),
             "["
             "{\"id\": 4, \"host\": \"web1\", \"kind\": \"trend\", \"severity\": \"warning\","
             " \"active\": true, \"raised_at\": \"%s\", \"resolved_at\": null,"
             " \"last_notified_at\": \"%s\", \"summary\": \"full in 50 min\", \"evidence\": {}},"
             "{\"id\": 3, \"host\": \"web1\", \"kind\": \"leak\", \"severity\": \"warning\","
             " \"active\": false, \"raised_at\": \"%s\", \"resolved_at\": \"%s\","
             " \"last_notified_at\": \"%s\", \"summary\": \"java leaking\", \"evidence\": {}},"
             "{\"id\": 2, \"host\": \"db2\", \"kind\": \"threshold\", \"severity\": \"critical\","
             " \"active\": true, \"raised_at\": \"%s\", \"resolved_at\": null,"
             " \"last_notified_at\": \"%s\", \"summary\": \"pressure 80%% >= 70%%\","
             " \"evidence\": {\"pressure_pct\": 80, \"taken_at_ms\": 1}}"
             "]",
             raised4, raised4, raised3, resolved3, raised3, raised2, notified2);
    assert_json(j, want);
    cJSON_Delete(j);
    assert_int_equal(fx->last_q.active, -1);
    assert_int_equal(fx->last_q.limit, 500);
    assert_true(fx->last_q.since_ms >= fx->now0 - 24 * 3600000LL - 1000);

    j = get_json(fx, "/api/v1/alerts?active=true", 200);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 1), "id")->valueint, 2);
    cJSON_Delete(j);
    assert_int_equal(fx->last_q.active, 1);
    /* Resolved ones since 3 days: includes the old one. */
    j = get_json(fx, "/api/v1/alerts?active=false&since=3d", 200);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 0), "id")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 1), "id")->valueint, 1);
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/alerts?host=db2&limit=1", 200);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 0), "id")->valueint, 2);
    cJSON_Delete(j);
    assert_int_equal(fx->last_q.limit, 1);

    j = get_json(fx, "/api/v1/alerts?active=maybe", 400);
    assert_error(j, 400, "bad active=maybe: expected true or false");
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/alerts?limit=0", 400);
    assert_error(j, 400, "bad limit=0: expected an integer from 1 to 10000");
    cJSON_Delete(j);
    j = get_json(fx, "/api/v1/alerts?limit=5x", 400);
    assert_error(j, 400, "bad limit=5x: expected an integer from 1 to 10000");
    cJSON_Delete(j);
    assert_int_equal(fx->alert_calls, 4);
    fx_free(fx);
}

static void test_metrics(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    static const char *const lines[] = {
        "\nepwatch_agents_connected 2\n",
        "\nepwatch_snapshots_ingested_total 13\n",
        "\nepwatch_rejects_total{reason=\"version_mismatch\"} 1\n",
        "\nepwatch_rejects_total{reason=\"overloaded\"} 0\n",
        "\nepwatch_store_queue_depth 0\n",
        "\nepwatch_store_commit_seconds ",
        "\nepwatch_host_pressure_ratio{host=\"web1\"} 0.5\n",
        "\nepwatch_host_pressure_ratio{host=\"db2\"} 0.8\n",
        "\nepwatch_host_ports_in_use{host=\"web1\",protocol=\"tcp\"} 1210\n",
        "\nepwatch_host_ports_in_use{host=\"web1\",protocol=\"udp\"} 7\n",
        "\nepwatch_host_ports_max{host=\"db2\",protocol=\"tcp\"} 28232\n",
        "\nepwatch_host_alert_active{host=\"db2\"} 2\n",
        "\nepwatch_host_alert_active{host=\"edge3\"} 1\n",
        "\nepwatch_host_last_seen_timestamp_seconds{host=\"edge3\"} ",
        "# TYPE epwatch_rejects_total counter\n",
        "# TYPE epwatch_host_pressure_ratio gauge\n",
    };
    char path[200], cmd[400];
    resp_t r;
    FILE *f;
    size_t i;

    (void)state;
    assert_true(get(fx, "op1", NULL, "/metrics", &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        if (strstr(r.body, lines[i]) == NULL)
            fail_msg("/metrics lacks %s:\n%s", lines[i], r.body);
    /* edge3 has no snapshot: no pressure sample invented for it. */
    assert_null(strstr(r.body, "epwatch_host_pressure_ratio{host=\"edge3\"}"));

    /* promtool must accept it; a missing promtool is a failure, not a skip. */
    assert_int_equal(system("command -v promtool >/dev/null"), 0);
    snprintf(path, sizeof(path), "%s/metrics.txt", fx->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(r.body, 1, r.body_len, f), r.body_len);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
    assert_int_equal(system(cmd), 0);
    unlink(path);
    resp_free(&r);
    fx_free(fx);
}

/* ---- HTTP robustness ------------------------------------------------------------------------- */

static void test_keepalive_pipelining(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    static const char post[] =
        "POST /api/v1/hosts HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\n\r\n{}";
    static const char two[] = "GET /api/v1/health HTTP/1.1\r\nHost: c\r\n\r\n"
                              "GET /api/v1/hosts/nope/snapshot HTTP/1.1\r\nHost: c\r\n\r\n";
    cl_t cl;
    resp_t r;

    (void)state;
    cl_open(fx, &cl, "op1");
    cl_send(&cl, two, sizeof(two) - 1);
    assert_true(cl_wait(&cl, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Connection: keep-alive"));
    resp_free(&r);
    assert_true(cl_wait(&cl, &r)); /* the second, answered after the first, in order */
    assert_int_equal(r.status, 404);
    resp_free(&r);
    /* A third on the same connection, later. */
    cl_get(&cl, "/api/v1/hosts", NULL);
    assert_true(cl_wait(&cl, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* A POST: 405 with Allow, the connection stays. */
    cl_send(&cl, post, sizeof(post) - 1);
    assert_true(cl_wait(&cl, &r));
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "Allow: GET"));
    resp_free(&r);
    assert_false(cl.closed);
    cl_close(&cl);
    fx_free(fx);
}

static void test_malformed_and_oversized(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    cl_t cl, other;
    resp_t r;
    cJSON *j;
    char *big;
    int n;

    (void)state;
    /* Another client is mid-way through a request the whole time. */
    cl_open(fx, &other, "op1");
    cl_sends(&other, "GET /api/v1/health HTTP/1.1\r\n");

    cl_open(fx, &cl, "op1");
    cl_sends(&cl, "GET no-slash HTTP/1.1\r\nHost: c\r\n\r\n");
    assert_true(cl_wait(&cl, &r));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.head, "Connection: close"));
    j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "code")
            ->valueint,
        400);
    cJSON_Delete(j);
    resp_free(&r);
    run_until(fx, &cl.closed); /* the server closed it */
    cl_close(&cl);

    /* Headers beyond max_header_bytes (8 KiB here): 413. */
    big = malloc(20000);
    assert_non_null(big);
    n = snprintf(big, 20000, "GET /api/v1/health HTTP/1.1\r\nHost: c\r\nX-Big: ");
    memset(big + n, 'a', 12000);
    memcpy(big + n + 12000, "\r\n\r\n", 4);
    cl_open(fx, &cl, "op1");
    cl_send(&cl, big, (size_t)n + 12004);
    free(big);
    assert_true(cl_wait(&cl, &r));
    assert_int_equal(r.status, 413);
    j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_int_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "code")
            ->valueint,
        413);
    cJSON_Delete(j);
    resp_free(&r);
    run_until(fx, &cl.closed);
    cl_close(&cl);

    /* A missing Host on HTTP/1.1 is malformed too. */
    cl_open(fx, &cl, "op1");
    cl_sends(&cl, "GET /api/v1/health HTTP/1.1\r\n\r\n");
    assert_true(cl_wait(&cl, &r));
    assert_int_equal(r.status, 400);
    resp_free(&r);
    cl_close(&cl);

    /* The server kept serving: the other client finishes its request. */
    cl_sends(&other, "Host: c\r\n\r\n");
    assert_true(cl_wait(&other, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cl_close(&other);
    fx_free(fx);
}

static void test_max_connections(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 1);
    cl_t a;
    resp_t r;
    cJSON *j;
    api_stats_t st;

    (void)state;
    cl_open(fx, &a, "op1");
    cl_get(&a, "/api/v1/health", NULL);
    assert_true(cl_wait(&a, &r));
    resp_free(&r);
    /* A second connection gets 503 and is closed. */
    assert_true(get(fx, "op1", NULL, "/api/v1/health", &r));
    assert_int_equal(r.status, 503);
    j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_error(j, 503, "too many API connections");
    cJSON_Delete(j);
    resp_free(&r);
    /* The first still works; once it is gone, a new one is served. */
    cl_get(&a, "/api/v1/health", NULL);
    assert_true(cl_wait(&a, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cl_close(&a);
    api_get_stats(fx->api, &st);
    while (st.connections > 0) {
        uv_run(&fx->loop, UV_RUN_ONCE);
        api_get_stats(fx->api, &st);
    }
    assert_int_equal(st.refused_busy, 1);
    assert_true(get(fx, "op1", NULL, "/api/v1/health", &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    fx_free(fx);
}

/* api_close while requests are in flight: they are abandoned, api_close waits for the provider
 * call and the store work, nothing leaks (ASan) and the loop ends clean. */
static void test_close_with_requests_in_flight(void **state)
{
    fx_t *fx = fx_new(NULL, 0, 0);
    cl_t a, b;

    (void)state;
    fx->hold_alerts = 1;
    cl_open(fx, &a, "op1");
    cl_get(&a, "/api/v1/alerts", NULL);
    while (fx->alert_calls == 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    cl_open(fx, &b, "op1");
    cl_get(&b, "/api/v1/hosts", NULL);
    api_close(fx->api, on_api_closed, fx);
    /* Every connection goes; the API waits for the provider's answer. */
    run_until(fx, &a.closed);
    run_until(fx, &b.closed);
    assert_false(fx->api_closed);
    fp_answer(&fx->defer);
    assert_int_equal(a.in_len, 0);
    cl_close(&a);
    cl_close(&b);
    fx_free(fx);
}

/* ---- epw_conn raw mode ------------------------------------------------------------------------
 */

typedef struct echo_s {
    uv_loop_t loop;
    epw_tls_config_t *scfg, *ccfg;
    epw_listener_t *l;
    int listener_closed, server_closed, server_status;
    size_t server_got;
} echo_t;

static void echo_data(epw_conn_t *c, const uint8_t *buf, size_t len, void *ud)
{
    echo_t *e = ud;

    e->server_got += len;
    assert_int_equal(epw_conn_send_raw(c, buf, len), 0);
}

static void echo_closed(epw_conn_t *c, int status, void *ud)
{
    echo_t *e = ud;

    (void)c;
    e->server_closed = 1;
    e->server_status = status;
}

static void echo_conn(epw_listener_t *l, epw_conn_t *c, void *ud)
{
    epw_conn_cbs_t cbs;

    (void)l;
    memset(&cbs, 0, sizeof(cbs));
    cbs.on_data = echo_data;
    cbs.on_close = echo_closed;
    cbs.ud = ud;
    epw_conn_set_callbacks(c, &cbs);
}

static void echo_listener_closed(epw_listener_t *l, void *ud)
{
    (void)l;
    ((echo_t *)ud)->listener_closed = 1;
}

/* Bytes that would be an oversize frame go through untouched both ways, in any chunking. */
static void test_conn_raw_mode(void **state)
{
    echo_t e;
    fx_t shim;
    cl_t cl;
    char ca[300], crt[300], key[300];
    epw_listener_opts_t lo;
    static const char msg[] = "\xff\xff\xff\xff not a frame \x00\x01 at all";
    char *big;
    size_t i, total;

    (void)state;
    memset(&e, 0, sizeof(e));
    assert_int_equal(uv_loop_init(&e.loop), 0);
    assert_int_equal(epw_tls_config_create(EPW_TLS_SERVER, cert(ca, sizeof(ca), "ca.crt"),
                                           cert(crt, sizeof(crt), "collector.crt"),
                                           cert(key, sizeof(key), "collector.key"), NULL, &e.scfg),
                     0);
    memset(&lo, 0, sizeof(lo));
    lo.addr = "127.0.0.1";
    lo.conn.max_frame = 16; /* would reject any frame header above; raw mode ignores it */
    lo.on_conn = echo_conn;
    lo.ud = &e;
    assert_int_equal(epw_listener_start(&e.loop, e.scfg, &lo, &e.l), 0);

    /* Reuse the client of the API tests on this loop. */
    memset(&shim, 0, sizeof(shim));
    shim.port = epw_listener_port(e.l);
    {
        /* cl_open needs an fx for the loop and port: point it at the echo loop. */
        fx_t *fx = &shim;
        char f1[300], f2[300];
        epw_conn_cbs_t cbs;

        memset(&cl, 0, sizeof(cl));
        cl.fx = fx;
        assert_int_equal(epw_tls_config_create(EPW_TLS_CLIENT, ca, cert(f1, sizeof(f1), "op1.crt"),
                                               cert(f2, sizeof(f2), "op1.key"), NULL, &cl.cfg),
                         0);
        memset(&cbs, 0, sizeof(cbs));
        cbs.on_ready = cl_ready;
        cbs.on_data = cl_data;
        cbs.on_close = cl_closed;
        cbs.ud = &cl;
        assert_int_equal(epw_conn_connect(&e.loop, cl.cfg, "127.0.0.1", shim.port, "collector",
                                          NULL, NULL, &cbs, &cl.c),
                         0);
    }
    /* Before the handshake, send_raw refuses. */
    assert_int_equal(epw_conn_send_raw(cl.c, "x", 1), UV_ENOTCONN);
    cl_send(&cl, msg, sizeof(msg) - 1);
    while (cl.in_len < sizeof(msg) - 1 && !cl.closed)
        uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(cl.in_len, sizeof(msg) - 1);
    assert_memory_equal(cl.in, msg, sizeof(msg) - 1);
    /* 200 KB in one call: arrives in several chunks, all of it, in order. */
    big = malloc(200000);
    assert_non_null(big);
    for (i = 0; i < 200000; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(epw_conn_send_raw(cl.c, big, 200000), 0);
    assert_int_equal(epw_conn_send_raw(cl.c, big, 0), 0);
    total = sizeof(msg) - 1 + 200000;
    while (cl.in_len < total && !cl.closed)
        uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(cl.in_len, total);
    assert_memory_equal(cl.in + sizeof(msg) - 1, big, 200000);
    assert_int_equal(e.server_got, total);
    free(big);

    epw_conn_close(cl.c, 0);
    while (!cl.closed || !e.server_closed)
        uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(cl.status, 0);
    assert_true(e.server_status == EPW_E_CLOSED || e.server_status == UV_EOF);
    assert_int_equal(epw_listener_failures(e.l), 0);
    epw_listener_close(e.l, echo_listener_closed, &e);
    assert_int_equal(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
    assert_true(e.listener_closed);
    assert_int_equal(uv_loop_close(&e.loop), 0);
    epw_tls_config_destroy(cl.cfg);
    epw_tls_config_destroy(e.scfg);
    free(cl.in);
}

/* ---- interoperability: libcurl (OpenSSL) as the client, on its own thread ---------------------
 */

typedef struct curl_job_s {
    uv_async_t done;
    uv_thread_t thread;
    const char *url, *ca, *cert, *key, *token;
    char resolve[64];
    long status;
    CURLcode rc;
    char body[4096];
    size_t body_len;
    int finished, closed;
} curl_job_t;

static size_t curl_write(char *p, size_t size, size_t n, void *ud)
{
    curl_job_t *job = ud;
    size_t len = size * n;

    if (job->body_len + len >= sizeof(job->body))
        return 0;
    memcpy(job->body + job->body_len, p, len);
    job->body_len += len;
    job->body[job->body_len] = '\0';
    return len;
}

static void curl_thread(void *arg)
{
    curl_job_t *job = arg;
    struct curl_slist *res = curl_slist_append(NULL, job->resolve), *hdrs = NULL;
    char auth[128];
    CURL *h = curl_easy_init();

    curl_easy_setopt(h, CURLOPT_URL, job->url);
    curl_easy_setopt(h, CURLOPT_RESOLVE, res);
    curl_easy_setopt(h, CURLOPT_CAINFO, job->ca);
    if (job->cert != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, job->cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, job->key);
    }
    if (job->token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", job->token);
        hdrs = curl_slist_append(NULL, auth);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    job->rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &job->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(res);
    curl_slist_free_all(hdrs);
    uv_async_send(&job->done);
}

static void curl_done(uv_async_t *a)
{
    curl_job_t *job = a->data;

    job->finished = 1;
}

static void curl_closed(uv_handle_t *h)
{
    ((curl_job_t *)h->data)->closed = 1;
}

static void run_curl(fx_t *fx, curl_job_t *job, const char *path, const char *certname,
                     const char *token)
{
    char url[200], ca[300], crt[300], key[300], f[64];

    snprintf(url, sizeof(url), "https://collector:%u%s", (unsigned)fx->port, path);
    snprintf(job->resolve, sizeof(job->resolve), "collector:%u:127.0.0.1", (unsigned)fx->port);
    job->url = url;
    job->ca = cert(ca, sizeof(ca), "ca.crt");
    if (certname != NULL) {
        snprintf(f, sizeof(f), "%s.crt", certname);
        job->cert = cert(crt, sizeof(crt), f);
        snprintf(f, sizeof(f), "%s.key", certname);
        job->key = cert(key, sizeof(key), f);
    }
    job->token = token;
    assert_int_equal(uv_async_init(&fx->loop, &job->done, curl_done), 0);
    job->done.data = job;
    assert_int_equal(uv_thread_create(&job->thread, curl_thread, job), 0);
    run_until(fx, &job->finished);
    assert_int_equal(uv_thread_join(&job->thread), 0);
    uv_close((uv_handle_t *)&job->done, curl_closed);
    run_until(fx, &job->closed);
}

static void test_curl_client(void **state)
{
    static const char *const tokens[] = {TOKEN};
    fx_t *fx = fx_new(tokens, 1, 0);
    curl_job_t job;
    cJSON *j;

    (void)state;
    memset(&job, 0, sizeof(job));
    run_curl(fx, &job, "/api/v1/hosts", "op1", NULL);
    assert_int_equal(job.rc, CURLE_OK);
    assert_int_equal(job.status, 200);
    j = cJSON_Parse(job.body);
    assert_int_equal(cJSON_GetArraySize(j), 3);
    cJSON_Delete(j);

    memset(&job, 0, sizeof(job));
    run_curl(fx, &job, "/api/v1/health", NULL, TOKEN);
    assert_int_equal(job.rc, CURLE_OK);
    assert_int_equal(job.status, 200);

    memset(&job, 0, sizeof(job));
    run_curl(fx, &job, "/api/v1/health", NULL, "bad");
    assert_int_equal(job.rc, CURLE_OK);
    assert_int_equal(job.status, 401);

    /* An agent certificate: the transfer fails, no HTTP status. */
    memset(&job, 0, sizeof(job));
    run_curl(fx, &job, "/api/v1/health", "host-a", TOKEN);
    assert_int_not_equal(job.rc, CURLE_OK);
    assert_int_equal(job.status, 0);
    fx_free(fx);
}

/* ---- main -------------------------------------------------------------------------------------
 */

static int setup(void **state)
{
    (void)state;
    epw_log_set_level(getenv("EPW_TEST_DEBUG") ? EPW_LOG_DEBUG : EPW_LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return epw_testcerts_make(certdir, sizeof(certdir));
}

static int teardown(void **state)
{
    (void)state;
    epw_testcerts_remove(certdir);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operator_certificate),
        cmocka_unit_test(test_refused_without_tokens),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_alerts),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_keepalive_pipelining),
        cmocka_unit_test(test_malformed_and_oversized),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_close_with_requests_in_flight),
        cmocka_unit_test(test_conn_raw_mode),
        cmocka_unit_test(test_curl_client),
    };

    signal(SIGPIPE, SIG_IGN); /* as epwatch-collector does: a peer closing on us is an error code */
    return cmocka_run_group_tests(tests, setup, teardown);
}
