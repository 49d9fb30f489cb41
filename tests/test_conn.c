/* test_conn: the libuv connection layer over real TLS on 127.0.0.1 (port 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "epw_conn.h"
#include "epw_err.h"
#include "epw_frame.h"
#include "epw_log.h"
#include "epw_testcerts.h"

static char dir[256];

typedef struct ctx_s {
    uv_loop_t loop;
    uv_timer_t guard;
    epw_tls_config_t *scfg, *ccfg;
    epw_listener_t *l;
    epw_conn_t *client, *server;
    int ready, conns, fails, last_fail, snapshots, got_ack;
    int client_closed, client_status, server_closed, server_status, listener_closed;
    int send_big; /* on_ready sends an oversize snapshot instead of a Hello */
    int quiet;    /* on_ready sends nothing */
    /* A raw TCP client that does not speak TLS. */
    uv_tcp_t raw;
    uv_connect_t raw_connect;
    uv_write_t raw_write;
    const char *raw_send;
    int raw_ended;
    ssize_t raw_end_status;
    uint64_t start_ms, end_ms;
} ctx_t;

static char host_a[] = "host-a";

static int setup(void **state)
{
    (void)state;
    return epw_testcerts_make(dir, sizeof(dir));
}

static int teardown(void **state)
{
    (void)state;
    epw_testcerts_remove(dir);
    return 0;
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    fail_msg("the test loop did not finish in time");
}

static epw_tls_config_t *make_cfg(epw_tls_role_t role, const char *ca, const char *name)
{
    char pca[512], pcrt[512], pkey[512], f[128];
    epw_tls_config_t *cfg = NULL;

    epw_testcerts_path(pca, sizeof(pca), dir, ca);
    snprintf(f, sizeof(f), "%s.crt", name);
    epw_testcerts_path(pcrt, sizeof(pcrt), dir, f);
    snprintf(f, sizeof(f), "%s.key", name);
    epw_testcerts_path(pkey, sizeof(pkey), dir, f);
    assert_int_equal(epw_tls_config_create(role, pca, pcrt, pkey, NULL, &cfg), 0);
    return cfg;
}

/* ---- server side ---------------------------------------------------------------------------- */

static void on_listener_closed(epw_listener_t *l, void *ud)
{
    ctx_t *x = ud;

    (void)l;
    x->listener_closed = 1;
}

static void close_listener(ctx_t *x)
{
    if (x->l != NULL) {
        epw_listener_close(x->l, on_listener_closed, x);
        x->l = NULL;
    }
}

static void server_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    ctx_t *x = ud;
    Epw__Envelope out;
    Epw__HelloAck ack;
    Epw__Ack sack;

    epw__envelope__init(&out);
    if (env->msg_case == EPW__ENVELOPE__MSG_HELLO) {
        /* The identity comes from the certificate; the Hello must agree with it. */
        assert_string_equal(env->hello->hostname, epw_conn_peer_cn(c));
        epw__hello_ack__init(&ack);
        ack.protocol_version = 1;
        out.msg_case = EPW__ENVELOPE__MSG_HELLO_ACK;
        out.hello_ack = &ack;
        assert_int_equal(epw_conn_send(c, &out), 0);
    } else if (env->msg_case == EPW__ENVELOPE__MSG_SNAPSHOT) {
        x->snapshots++;
        assert_int_equal(env->snapshot->seq, (uint64_t)x->snapshots);
        if (env->snapshot->seq == 3) {
            epw__ack__init(&sack);
            sack.seq = 3;
            out.msg_case = EPW__ENVELOPE__MSG_ACK;
            out.ack = &sack;
            assert_int_equal(epw_conn_send(c, &out), 0);
        }
    }
    epw_frame_envelope_free(env);
}

static void server_closed(epw_conn_t *c, int status, void *ud)
{
    ctx_t *x = ud;

    (void)c;
    x->server_closed = 1;
    x->server_status = status;
    x->server = NULL;
    close_listener(x);
}

static void on_conn(epw_listener_t *l, epw_conn_t *c, void *ud)
{
    ctx_t *x = ud;
    epw_conn_cbs_t cbs = {.on_envelope = server_envelope, .on_close = server_closed, .ud = x};

    (void)l;
    x->conns++;
    assert_string_equal(epw_conn_peer_cn(c), "host-a");
    assert_string_equal(epw_conn_peer_ou(c), "agents");
    assert_false(epw_conn_peer_is_operator(c));
    assert_non_null(strstr(epw_conn_peer_addr(c), "127.0.0.1:"));
    x->server = c;
    epw_conn_set_callbacks(c, &cbs);
}

static void on_fail(epw_listener_t *l, int status, const char *addr, void *ud)
{
    ctx_t *x = ud;

    (void)l;
    (void)addr;
    x->fails++;
    x->last_fail = status;
    x->end_ms = uv_now(&x->loop);
    close_listener(x);
}

static void ctx_start(ctx_t *x, const epw_conn_opts_t *server_opts)
{
    epw_listener_opts_t lo = {.addr = "127.0.0.1", .on_conn = on_conn, .on_fail = on_fail};

    memset(x, 0, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    assert_int_equal(uv_timer_init(&x->loop, &x->guard), 0);
    assert_int_equal(uv_timer_start(&x->guard, on_guard, 10000, 0), 0);
    uv_unref((uv_handle_t *)&x->guard); /* the guard alone does not keep the loop running */
    x->scfg = make_cfg(EPW_TLS_SERVER, "ca.crt", "collector");
    if (server_opts != NULL)
        lo.conn = *server_opts;
    lo.ud = x;
    assert_int_equal(epw_listener_start(&x->loop, x->scfg, &lo, &x->l), 0);
    assert_true(epw_listener_port(x->l) > 0);
    x->start_ms = uv_now(&x->loop);
}

static void ctx_finish(ctx_t *x)
{
    assert_int_equal(uv_run(&x->loop, UV_RUN_DEFAULT), 0);
    assert_true(x->listener_closed);
    uv_close((uv_handle_t *)&x->guard, NULL);
    assert_int_equal(uv_run(&x->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    epw_tls_config_destroy(x->scfg);
    epw_tls_config_destroy(x->ccfg);
}

/* ---- client side ---------------------------------------------------------------------------- */

static void send_snapshot(epw_conn_t *c, uint64_t seq, char *hostname)
{
    Epw__Envelope env;
    Epw__Snapshot snap;

    epw__envelope__init(&env);
    epw__snapshot__init(&snap);
    snap.seq = seq;
    snap.hostname = hostname;
    env.msg_case = EPW__ENVELOPE__MSG_SNAPSHOT;
    env.snapshot = &snap;
    assert_int_equal(epw_conn_send(c, &env), 0);
}

static void client_ready(epw_conn_t *c, void *ud)
{
    ctx_t *x = ud;
    Epw__Envelope env;
    Epw__Hello hello;
    static char big[300];

    x->ready = 1;
    assert_string_equal(epw_conn_peer_cn(c), "collector");
    assert_int_equal(epw_conn_write_queue_size(c), 0);
    if (x->quiet)
        return;
    if (x->send_big) {
        memset(big, 'x', sizeof(big) - 1);
        send_snapshot(c, 1, big);
        return;
    }
    epw__envelope__init(&env);
    epw__hello__init(&hello);
    hello.protocol_version = 1;
    hello.hostname = host_a;
    env.msg_case = EPW__ENVELOPE__MSG_HELLO;
    env.hello = &hello;
    assert_int_equal(epw_conn_send(c, &env), 0);
}

static void client_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    ctx_t *x = ud;
    uint64_t seq;

    if (env->msg_case == EPW__ENVELOPE__MSG_HELLO_ACK) {
        for (seq = 1; seq <= 3; seq++) {
            assert_true(epw_conn_writable(c));
            send_snapshot(c, seq, host_a);
        }
    } else if (env->msg_case == EPW__ENVELOPE__MSG_ACK) {
        assert_int_equal(env->ack->seq, 3);
        x->got_ack = 1;
        epw_conn_close(c, 0);
        /* Closing is immediate for the API: sending is refused from now on. */
        assert_int_equal(epw_conn_send(c, env), EPW_E_CLOSED);
    }
    epw_frame_envelope_free(env);
}

static void client_closed(epw_conn_t *c, int status, void *ud)
{
    ctx_t *x = ud;

    (void)c;
    x->client_closed = 1;
    x->client_status = status;
    x->client = NULL;
}

static void start_client(ctx_t *x, const char *cert_ca, const char *cert)
{
    epw_conn_cbs_t cbs = {.on_ready = client_ready,
                          .on_envelope = client_envelope,
                          .on_close = client_closed,
                          .ud = x};

    x->ccfg = make_cfg(EPW_TLS_CLIENT, cert_ca, cert);
    assert_int_equal(epw_conn_connect(&x->loop, x->ccfg, "127.0.0.1", epw_listener_port(x->l),
                                      "collector", "127.0.0.1", NULL, &cbs, &x->client),
                     0);
    assert_non_null(x->client);
    /* Not connected yet. */
    assert_int_equal(epw_conn_send(x->client, NULL), UV_ENOTCONN);
}

/* ---- raw (non-TLS) client ------------------------------------------------------------------- */

static void raw_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char storage[4096];

    (void)h;
    (void)size;
    *buf = uv_buf_init(storage, sizeof(storage));
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ctx_t *x = s->data;

    (void)buf;
    if (nread >= 0)
        return; /* e.g. a TLS alert: ignored */
    x->raw_ended = 1;
    x->raw_end_status = nread;
    uv_close((uv_handle_t *)s, NULL);
}

static void raw_written(uv_write_t *req, int status)
{
    (void)req;
    assert_int_equal(status, 0);
}

static void raw_connected(uv_connect_t *req, int status)
{
    ctx_t *x = req->handle->data;
    uv_buf_t b;

    assert_int_equal(status, 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&x->raw, raw_alloc, raw_read), 0);
    if (x->raw_send != NULL) {
        b = uv_buf_init((char *)x->raw_send, (unsigned int)strlen(x->raw_send));
        assert_int_equal(uv_write(&x->raw_write, (uv_stream_t *)&x->raw, &b, 1, raw_written), 0);
    }
}

static void start_raw(ctx_t *x, const char *send)
{
    struct sockaddr_in sin;

    x->raw_send = send;
    assert_int_equal(uv_ip4_addr("127.0.0.1", epw_listener_port(x->l), &sin), 0);
    assert_int_equal(uv_tcp_init(&x->loop, &x->raw), 0);
    x->raw.data = x;
    assert_int_equal(
        uv_tcp_connect(&x->raw_connect, &x->raw, (const struct sockaddr *)&sin, raw_connected), 0);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_exchange(void **state)
{
    ctx_t x;

    (void)state;
    ctx_start(&x, NULL);
    start_client(&x, "ca.crt", "host-a");
    ctx_finish(&x);
    assert_true(x.ready);
    assert_int_equal(x.conns, 1);
    assert_int_equal(x.fails, 0);
    assert_int_equal(x.snapshots, 3);
    assert_true(x.got_ack);
    assert_true(x.client_closed);
    assert_int_equal(x.client_status, 0);
    assert_true(x.server_closed);
    /* The client closed politely: close_notify reached the server. */
    assert_int_equal(x.server_status, EPW_E_CLOSED);
}

static void test_plaintext_dropped(void **state)
{
    ctx_t x;

    (void)state;
    ctx_start(&x, NULL);
    start_raw(&x, "GET / HTTP/1.0\r\n\r\n");
    ctx_finish(&x);
    assert_int_equal(x.conns, 0);
    assert_int_equal(x.fails, 1);
    assert_int_equal(x.last_fail, EPW_E_TLS);
    assert_true(x.raw_ended);
}

static void test_handshake_timeout(void **state)
{
    ctx_t x;
    epw_conn_opts_t so = {.handshake_timeout_ms = 150};

    (void)state;
    ctx_start(&x, &so);
    start_raw(&x, NULL);
    ctx_finish(&x);
    assert_int_equal(x.conns, 0);
    assert_int_equal(x.fails, 1);
    assert_int_equal(x.last_fail, EPW_E_TIMEOUT);
    assert_true(x.end_ms - x.start_ms >= 150);
    assert_true(x.raw_ended);
    assert_int_equal(x.raw_end_status, UV_EOF);
}

static void test_oversize_frame(void **state)
{
    ctx_t x;
    epw_conn_opts_t so = {.max_frame = 64};

    (void)state;
    ctx_start(&x, &so);
    x.send_big = 1;
    start_client(&x, "ca.crt", "host-a");
    ctx_finish(&x);
    assert_int_equal(x.conns, 1);
    assert_true(x.server_closed);
    assert_int_equal(x.server_status, EPW_E_TOOBIG);
    assert_true(x.client_closed);
    assert_int_equal(x.client_status, EPW_E_CLOSED);
}

static void test_idle_timeout(void **state)
{
    ctx_t x;
    epw_conn_opts_t so = {.idle_timeout_ms = 150};

    (void)state;
    ctx_start(&x, &so);
    x.quiet = 1;
    start_client(&x, "ca.crt", "host-a");
    ctx_finish(&x);
    assert_true(x.ready);
    assert_int_equal(x.conns, 1);
    assert_int_equal(x.server_status, EPW_E_TIMEOUT);
    assert_true(x.client_closed);
}

static void test_untrusted_client(void **state)
{
    ctx_t x;

    (void)state;
    ctx_start(&x, NULL);
    start_client(&x, "ca.crt", "other/host-a");
    ctx_finish(&x);
    assert_false(x.ready);
    assert_int_equal(x.conns, 0);
    assert_int_equal(x.fails, 1);
    assert_int_equal(x.last_fail, EPW_E_TLS_VERIFY);
    assert_true(x.client_closed);
    assert_int_not_equal(x.client_status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange),          cmocka_unit_test(test_plaintext_dropped),
        cmocka_unit_test(test_handshake_timeout), cmocka_unit_test(test_oversize_frame),
        cmocka_unit_test(test_idle_timeout),      cmocka_unit_test(test_untrusted_client),
    };
    epw_log_set_level(EPW_LOG_ERROR);
    return cmocka_run_group_tests(tests, setup, teardown);
}
