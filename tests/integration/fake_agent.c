/* fake_agent: a scripted agent on epw_conn (client side) and raw TCP/TLS clients, for collector
 * tests. */
#include "fake_agent.h"

#include <stdlib.h>
#include <string.h>

#include "epw_err.h"
#include "epw_frame.h"
#include "epw_proto.h"
#include "epw_util.h"

/* ---- fake agent ----------------------------------------------------------------------------- */

int fake_agent_init(fake_agent_t *a, uv_loop_t *loop, const char *ca, const char *cert,
                    const char *key)
{
    a->loop = loop;
    return epw_tls_config_create(EPW_TLS_CLIENT, ca, cert, key, NULL, &a->tls);
}

int fake_agent_send(fake_agent_t *a, uint64_t seq, uint64_t dropped_before)
{
    Epw__Envelope env = EPW__ENVELOPE__INIT;
    Epw__Snapshot s = EPW__SNAPSHOT__INIT;
    char *notes[1];
    char *pad = NULL;
    int rc;

    s.seq = seq;
    s.taken_at_ms = epw_now_ms();
    s.hostname = (char *)(a->hello_host ? a->hello_host : "");
    s.pressure_pct = (double)(seq % 100);
    s.pressure_source = (char *)"host tcp";
    s.dropped_before = dropped_before;
    if (a->pad > 0) {
        pad = malloc(a->pad + 1);
        if (pad == NULL)
            return UV_ENOMEM;
        memset(pad, 'x', a->pad);
        pad[a->pad] = '\0';
        notes[0] = pad;
        s.n_notes = 1;
        s.notes = notes;
    }
    env.msg_case = EPW__ENVELOPE__MSG_SNAPSHOT;
    env.snapshot = &s;
    rc = epw_conn_send(a->conn, &env);
    free(pad);
    if (rc == 0)
        a->sent++;
    return rc;
}

static void on_tick(uv_timer_t *t)
{
    fake_agent_t *a = t->data;
    unsigned i;

    for (i = 0; a->conn != NULL && a->next <= a->last && (a->per_tick == 0 || i < a->per_tick);
         i++) {
        if (fake_agent_send(a, a->next, a->next == a->first ? a->dropped_before : 0))
            break;
        a->next++;
    }
    if (a->next > a->last || a->conn == NULL)
        uv_timer_stop(t);
}

void fake_agent_stream(fake_agent_t *a, uint64_t from, uint64_t last)
{
    if (from < a->first || a->first == 0)
        from = a->first ? a->first : from;
    if (a->first == 0)
        a->first = from;
    a->next = from;
    a->last = last;
    if (!a->tick_init) {
        uv_timer_init(a->loop, &a->tick);
        a->tick.data = a;
        a->tick_init = 1;
    }
    uv_timer_start(&a->tick, on_tick, 0, 1);
}

static void send_hello(fake_agent_t *a)
{
    Epw__Envelope env = EPW__ENVELOPE__INIT;
    Epw__Hello h = EPW__HELLO__INIT;

    h.protocol_version = a->version ? a->version : EPW_PROTOCOL_VERSION;
    h.capabilities = EPW_CAPS_THIS_BUILD;
    h.agent_version = (char *)"test";
    h.os = (char *)"Linux test";
    h.hostname = (char *)(a->hello_host ? a->hello_host : "");
    h.platform = EPW__PLATFORM__LINUX;
    h.interval_ms = 1000;
    env.msg_case = EPW__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    epw_conn_send(a->conn, &env);
}

static void on_ready(epw_conn_t *c, void *ud)
{
    fake_agent_t *a = ud;

    (void)c;
    a->ready = 1;
    if (!a->no_hello)
        send_hello(a);
}

static void on_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    fake_agent_t *a = ud;

    (void)c;
    if (env->msg_case == EPW__ENVELOPE__MSG_HELLO_ACK) {
        a->got_hello_ack = 1;
        a->reject = env->hello_ack->reject;
        a->hello_last_seq = env->hello_ack->last_seq;
        if (a->reject == 0 && a->last > 0 && a->last >= a->first)
            fake_agent_stream(a, a->resume ? a->hello_last_seq + 1 : a->first, a->last);
    } else if (env->msg_case == EPW__ENVELOPE__MSG_ACK) {
        if (env->ack->seq > a->acked)
            a->acked = env->ack->seq;
        a->nacks++;
    }
    epw_frame_envelope_free(env);
}

static void on_close(epw_conn_t *c, int status, void *ud)
{
    fake_agent_t *a = ud;

    (void)c;
    a->conn = NULL;
    a->closed = 1;
    a->close_status = status;
    if (a->tick_init)
        uv_timer_stop(&a->tick);
}

int fake_agent_connect(fake_agent_t *a, uint16_t port)
{
    epw_conn_cbs_t cbs;

    memset(&cbs, 0, sizeof(cbs));
    cbs.on_ready = on_ready;
    cbs.on_envelope = on_envelope;
    cbs.on_close = on_close;
    cbs.ud = a;
    a->ready = a->closed = a->close_status = a->got_hello_ack = a->reject = 0;
    if (a->opts.handshake_timeout_ms == 0)
        a->opts.handshake_timeout_ms = 5000;
    return epw_conn_connect(a->loop, a->tls, "127.0.0.1", port, "collector", NULL, &a->opts, &cbs,
                            &a->conn);
}

void fake_agent_close(fake_agent_t *a)
{
    if (a->conn != NULL)
        epw_conn_close(a->conn, EPW_E_CLOSED);
}

void fake_agent_release(fake_agent_t *a)
{
    if (a->tick_init) {
        uv_close((uv_handle_t *)&a->tick, NULL);
        a->tick_init = 0;
    }
    epw_tls_config_destroy(a->tls);
    a->tls = NULL;
}

/* ---- raw clients ---------------------------------------------------------------------------- */

typedef struct raw_write_s {
    uv_write_t req;
    uint8_t *buf;
} raw_write_t;

static void on_raw_write(uv_write_t *req, int status)
{
    raw_write_t *w = (raw_write_t *)req;

    (void)status;
    free(w->buf);
    free(w);
}

/* Takes ownership of buf. */
static void raw_write(raw_client_t *r, uint8_t *buf, size_t len)
{
    raw_write_t *w;
    uv_buf_t b;

    if (len == 0 || r->closed || (w = malloc(sizeof(*w))) == NULL) {
        free(buf);
        return;
    }
    w->buf = buf;
    b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&r->tcp, &b, 1, on_raw_write)) {
        free(buf);
        free(w);
    }
}

static void raw_flush_tls(raw_client_t *r)
{
    uint8_t *buf;
    size_t len;

    epw_tls_take_out(r->tls, &buf, &len);
    raw_write(r, buf, len);
}

static void raw_send_data(raw_client_t *r)
{
    uint8_t *copy;

    if (r->sent || r->len == 0)
        return;
    r->sent = 1;
    if (r->tls != NULL) {
        epw_tls_write(r->tls, r->data, r->len);
        raw_flush_tls(r);
        return;
    }
    copy = malloc(r->len);
    if (copy == NULL)
        return;
    memcpy(copy, r->data, r->len);
    raw_write(r, copy, r->len);
}

static void on_raw_closed(uv_handle_t *h)
{
    raw_client_t *r = h->data;

    r->closed = 1;
    epw_tls_destroy(r->tls);
    r->tls = NULL;
}

void raw_client_close(raw_client_t *r)
{
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
        uv_close((uv_handle_t *)&r->tcp, on_raw_closed);
}

static void raw_handshake(raw_client_t *r)
{
    int rc = epw_tls_handshake(r->tls);

    raw_flush_tls(r);
    if (rc == 0)
        raw_send_data(r);
    else if (rc != EPW_E_AGAIN) {
        r->handshake_failed = 1;
        raw_client_close(r);
    }
}

static void on_raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    raw_client_t *r = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)r->rbuf, sizeof(r->rbuf));
}

static void on_raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    raw_client_t *r = s->data;

    (void)buf;
    if (n < 0) {
        r->eof = 1;
        raw_client_close(r);
        return;
    }
    if (n == 0 || r->tls == NULL)
        return;
    epw_tls_feed(r->tls, r->rbuf, (size_t)n);
    if (!epw_tls_handshake_done(r->tls))
        raw_handshake(r);
}

static void on_raw_connect(uv_connect_t *req, int status)
{
    raw_client_t *r = req->handle->data;

    if (status < 0) {
        raw_client_close(r);
        return;
    }
    uv_read_start((uv_stream_t *)&r->tcp, on_raw_alloc, on_raw_read);
    if (r->tls != NULL)
        raw_handshake(r);
    else
        raw_send_data(r);
}

int raw_client_start(raw_client_t *r, uv_loop_t *loop, uint16_t port, epw_tls_config_t *tls,
                     const uint8_t *data, size_t len)
{
    struct sockaddr_in sin;
    int rc;

    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->data = data;
    r->len = len;
    if (tls != NULL) {
        rc = epw_tls_create(tls, "collector", &r->tls);
        if (rc)
            return rc;
    }
    uv_ip4_addr("127.0.0.1", port, &sin);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    rc = uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&sin, on_raw_connect);
    if (rc)
        raw_client_close(r);
    return rc;
}

/* ---- running the loop ----------------------------------------------------------------------- */

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

int run_until_fn(uv_loop_t *loop, int (*pred)(void *), void *ud, uint64_t timeout_ms)
{
    uv_timer_t t;
    uint64_t end;
    int ok;

    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_wake, 5, 5);
    uv_update_time(loop);
    end = uv_now(loop) + timeout_ms;
    while (!(ok = pred(ud)) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static int flag_set(void *ud)
{
    return *(const int *)ud != 0;
}

int run_until(uv_loop_t *loop, const int *flag, uint64_t timeout_ms)
{
    return run_until_fn(loop, flag_set, (void *)(uintptr_t)flag, timeout_ms);
}
