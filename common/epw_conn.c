/* epw_conn: libuv connection layer carrying framed Envelopes over the epw_tls engine. */
#include "epw_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epw_err.h"
#include "epw_frame.h"
#include "epw_log.h"

#define SUB                  "conn"
#define DEFAULT_HANDSHAKE_MS 10000
#define DEFAULT_HIGH_WATER   (1u << 20)
#define DEFAULT_LINGER_MS    2000
#define DEFAULT_BACKLOG      128
#define IO_CHUNK             16384

enum { ST_RESOLVING, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN };

struct epw_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake timeout, then idle timeout, then linger while closing */
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    uv_loop_t *loop;
    epw_tls_t *tls;
    epw_frame_decoder_t *dec;
    epw_conn_cbs_t cbs;
    int cbs_set;
    epw_conn_opts_t opts;
    epw_listener_t *listener; /* set while accepted but not yet handed over */
    epw_conn_t *prev, *next;  /* the listener's list of such connections */
    char *host;
    uint16_t port;
    char peer_addr[72];
    int state;
    int refs;      /* open handles + a getaddrinfo in flight; freed at 0 once closing */
    int connected; /* the socket can still be written (shutdown makes sense) */
    int closing;
    int handles_closed;
    int silent; /* setup failed: no on_close */
    int close_status;
    int above_high;
    int paused;      /* epw_conn_set_reading(c, 0): no socket reads, no delivery */
    int in_process;  /* process() is on the stack (re-entrancy guard for set_reading) */
    uint8_t *held;   /* plaintext not yet delivered because reading was paused (malloc'd) */
    size_t held_off; /* where the undelivered part starts in held */
    size_t held_len;
    uint64_t last_rx;
    uint64_t open_at; /* handshake done (restarted while paused), for first_timeout_ms */
    int got_first;    /* an Envelope (raw mode: data) was delivered */
};

/*
 * Buffers shared by every connection of the calling thread (its loop), so that an idle
 * connection costs no buffer of ours (20,000 agents: 32 KiB each would be 640 MiB).
 * - rx: the socket read buffer. libuv calls on_alloc and then on_read for one stream before it
 *   allocates again, and on_read copies the bytes into the TLS engine (epw_tls_feed) before it
 *   returns, so one buffer serves all connections. rx_busy guards the assumption: an alloc while
 *   it is out gets a malloc'd buffer instead, freed by on_read.
 * - plain: decrypted plaintext being delivered. Delivery runs user callbacks, which may resume
 *   another connection and so process() it re-entrantly: a nested process() that finds it busy
 *   uses a malloc'd buffer for its duration. When reading is paused with plaintext undelivered,
 *   that rest is copied into the connection's own `held` buffer, freed once delivered.
 * Thread-local because several loops may run in one process (tests, agent + collector).
 */
static _Thread_local uint8_t tl_rx[IO_CHUNK];
static _Thread_local int tl_rx_busy;
static _Thread_local uint8_t tl_plain[IO_CHUNK];
static _Thread_local int tl_plain_busy;

struct epw_listener_s {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    epw_tls_config_t *cfg;
    epw_listener_opts_t opts;
    epw_conn_t *pending;
    size_t npending;
    uint64_t failures;
    epw_tls_fail_t fail_reason; /* of the failure on_fail is reporting; NONE outside it */
    uint16_t port;
    int closing;
    int handle_closed;
    epw_listener_close_cb close_cb;
    void *close_ud;
    epw_complain_t accept_complaint;
};

typedef struct write_req_s {
    uv_write_t req;
    uint8_t *buf;
} write_req_t;

static void conn_close(epw_conn_t *c, int status);
static void listener_conn_gone(epw_listener_t *l, epw_conn_t *c, int status);

/* ---- lifetime ------------------------------------------------------------------------------ */

static void conn_free(epw_conn_t *c)
{
    epw_tls_destroy(c->tls);
    epw_frame_decoder_destroy(c->dec);
    free(c->held);
    free(c->host);
    free(c);
}

static void conn_maybe_finish(epw_conn_t *c)
{
    epw_listener_t *l = c->listener;

    if (!c->closing || c->refs > 0)
        return;
    if (l != NULL)
        listener_conn_gone(l, c, c->close_status);
    else if (!c->silent && c->cbs.on_close != NULL)
        c->cbs.on_close(c, c->close_status, c->cbs.ud);
    conn_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    epw_conn_t *c = h->data;

    c->refs--;
    conn_maybe_finish(c);
}

static void close_handles(epw_conn_t *c)
{
    if (c->handles_closed)
        return;
    c->handles_closed = 1;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static epw_conn_t *conn_new(uv_loop_t *loop, const epw_conn_opts_t *opts)
{
    epw_conn_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->loop = loop;
    if (opts != NULL)
        c->opts = *opts;
    if (c->opts.handshake_timeout_ms == 0)
        c->opts.handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
    if (c->opts.max_frame == 0)
        c->opts.max_frame = EPW_FRAME_MAX_DEFAULT;
    if (c->opts.high_water == 0)
        c->opts.high_water = DEFAULT_HIGH_WATER;
    if (c->opts.linger_ms == 0)
        c->opts.linger_ms = DEFAULT_LINGER_MS;
    return c;
}

/* Initialises both handles; from here on the memory is released through close_handles. On
 * failure c is released (now or in a close callback) without any user callback. */
static int conn_init_handles(epw_conn_t *c)
{
    int rc;

    rc = uv_tcp_init(c->loop, &c->tcp);
    if (rc) {
        conn_free(c);
        return rc;
    }
    c->tcp.data = c;
    c->refs++;
    rc = uv_timer_init(c->loop, &c->timer);
    if (rc) {
        /* Only the tcp handle exists: close it alone. */
        c->closing = c->silent = c->handles_closed = 1;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return rc;
    }
    c->timer.data = c;
    c->refs++;
    return 0;
}

/* ---- output --------------------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    epw_conn_t *c = req->handle->data;

    free(w->buf);
    free(w);
    if (status < 0) {
        if (!c->closing) {
            c->connected = 0;
            conn_close(c, status);
        }
        return;
    }
    if (c->above_high && !c->closing &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= c->opts.high_water / 2) {
        c->above_high = 0;
        if (c->cbs.on_drain != NULL)
            c->cbs.on_drain(c, c->cbs.ud);
    }
}

/* Hands the engine's pending ciphertext to libuv. */
static int flush(epw_conn_t *c)
{
    write_req_t *w;
    uv_buf_t b;
    size_t len;
    uint8_t *buf;
    int rc;

    if (!c->connected || epw_tls_out_pending(c->tls) == 0)
        return 0;
    w = malloc(sizeof(*w));
    if (w == NULL)
        return UV_ENOMEM;
    epw_tls_take_out(c->tls, &buf, &len);
    w->buf = buf;
    b = uv_buf_init((char *)buf, (unsigned int)len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc) {
        free(buf);
        free(w);
        c->connected = 0;
    }
    return rc;
}

/* ---- closing -------------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    close_handles(req->handle->data);
}

static void on_timer(uv_timer_t *t);

static void conn_close(epw_conn_t *c, int status)
{
    int rc;

    if (c->closing)
        return;
    c->closing = 1;
    c->close_status = status;
    uv_timer_stop(&c->timer);
    if (c->state == ST_RESOLVING)
        uv_cancel((uv_req_t *)&c->gai); /* its callback still runs and drops its reference */
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (!c->connected) {
        close_handles(c);
        return;
    }
    /* Send what is queued plus close_notify (or a pending alert), then FIN, within linger_ms. */
    if (c->state == ST_OPEN)
        epw_tls_close_notify(c->tls);
    flush(c);
    rc = c->connected ? uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown)
                      : UV_ENOTCONN;
    if (rc) {
        close_handles(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, c->opts.linger_ms, 0);
}

void epw_conn_close(epw_conn_t *c, int reason)
{
    conn_close(c, reason);
}

/* Once open: the timer serves the first-message and the idle timeouts, whichever is due
 * first. */
static void arm_open_timer(epw_conn_t *c, uint64_t now)
{
    uint64_t due = 0, d;

    if (!c->got_first && c->opts.first_timeout_ms > 0)
        due = c->open_at + c->opts.first_timeout_ms;
    if (c->opts.idle_timeout_ms > 0) {
        d = c->last_rx + c->opts.idle_timeout_ms;
        if (due == 0 || d < due)
            due = d;
    }
    if (due == 0)
        return;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    epw_conn_t *c = t->data;
    uint64_t now, idle;

    if (c->closing) {
        close_handles(c); /* linger expired: drop what the peer did not take */
        return;
    }
    if (c->state != ST_OPEN) {
        EPW_DEBUG(SUB, "%s: handshake timeout", c->peer_addr[0] ? c->peer_addr : c->host);
        conn_close(c, EPW_E_TIMEOUT);
        return;
    }
    now = uv_now(c->loop);
    if (c->paused)
        c->last_rx = c->open_at = now; /* we chose not to read: the peer is not late */
    if (!c->got_first && c->opts.first_timeout_ms > 0 &&
        now - c->open_at >= c->opts.first_timeout_ms) {
        EPW_INFO(SUB, "%s (%s): nothing received %llu ms after the handshake, closing",
                 c->peer_addr, epw_tls_peer_cn(c->tls), (unsigned long long)(now - c->open_at));
        conn_close(c, EPW_E_TIMEOUT);
        return;
    }
    idle = now - c->last_rx;
    if (c->opts.idle_timeout_ms > 0 && idle >= c->opts.idle_timeout_ms) {
        EPW_INFO(SUB, "%s (%s): idle for %llu ms, closing", c->peer_addr, epw_tls_peer_cn(c->tls),
                 (unsigned long long)idle);
        conn_close(c, EPW_E_TIMEOUT);
        return;
    }
    arm_open_timer(c, now);
}

/* ---- input ---------------------------------------------------------------------------------- */

static void handed_over(epw_conn_t *c);

/* Decodes plaintext into frames and delivers Envelopes until it runs out or the conn closes.
 * from_held: data lies in c->held (a resumed delivery), not in a buffer that is reused. */
static void deliver(epw_conn_t *c, const uint8_t *data, size_t n, int from_held)
{
    const uint8_t *frame;
    size_t used, flen;
    Epw__Envelope *env;
    int rc;

    while (n > 0 && !c->closing) {
        if (c->paused) {
            /* Keep the rest for epw_conn_set_reading(c, 1): it already lies in held when this
             * is a resumed delivery, otherwise in a shared buffer that is reused next time. */
            if (from_held) {
                c->held_off = (size_t)(data - c->held);
            } else {
                free(c->held);
                c->held = malloc(n);
                if (c->held == NULL) {
                    c->held_off = c->held_len = 0;
                    conn_close(c, UV_ENOMEM);
                    return;
                }
                memcpy(c->held, data, n);
                c->held_off = 0;
            }
            c->held_len = n;
            return;
        }
        if (c->cbs.on_data != NULL) {
            /* Raw mode: the callee parses the bytes itself and takes them all. */
            c->got_first = 1;
            c->cbs.on_data(c, data, n, c->cbs.ud);
            return;
        }
        rc = epw_frame_decoder_feed(c->dec, data, n, &used, &frame, &flen);
        if (rc) {
            EPW_WARN(SUB, "%s (%s): bad frame: %s", c->peer_addr, epw_tls_peer_cn(c->tls),
                     epw_strerror(rc));
            conn_close(c, rc);
            return;
        }
        data += used;
        n -= used;
        if (frame == NULL)
            continue;
        if (c->cbs.on_frame != NULL && c->cbs.on_frame(c, frame, flen, c->cbs.ud)) {
            c->got_first = 1;
            continue;
        }
        rc = epw_frame_decode_envelope(frame, flen, &env);
        if (rc) {
            EPW_WARN(SUB, "%s (%s): undecodable message (%zu bytes)", c->peer_addr,
                     epw_tls_peer_cn(c->tls), flen);
            conn_close(c, rc);
            return;
        }
        c->got_first = 1;
        if (c->cbs.on_envelope != NULL)
            c->cbs.on_envelope(c, env, c->cbs.ud);
        else
            epw_frame_envelope_free(env);
    }
}

static void process(epw_conn_t *c)
{
    uint8_t *buf = NULL;
    int own_plain = 0;
    size_t n;
    int rc;

    if (c->state == ST_HANDSHAKE) {
        rc = epw_tls_handshake(c->tls);
        flush(c); /* the next flight, or an alert explaining a failure */
        if (rc == EPW_E_AGAIN)
            return;
        if (rc) {
            conn_close(c, rc);
            return;
        }
        c->state = ST_OPEN;
        /* The handshake's public-key work may have taken a while since the loop last read the
         * clock: the peer's time to speak starts now, not then. */
        uv_update_time(c->loop);
        c->open_at = c->last_rx = uv_now(c->loop);
        uv_timer_stop(&c->timer);
        arm_open_timer(c, c->open_at);
        if (c->listener != NULL)
            handed_over(c);
        else if (c->cbs.on_ready != NULL)
            c->cbs.on_ready(c, c->cbs.ud);
        if (c->closing)
            return;
    }
    if (c->state != ST_OPEN)
        return;
    c->in_process++;
    if (c->held_len > 0 && !c->paused) {
        n = c->held_len;
        c->held_len = 0;
        deliver(c, c->held + c->held_off, n, 1);
        if (c->held_len == 0) {
            free(c->held);
            c->held = NULL;
            c->held_off = 0;
        }
    }
    rc = 0;
    while (!c->closing && !c->paused && c->held_len == 0) {
        if (buf == NULL) {
            if (!tl_plain_busy) {
                tl_plain_busy = own_plain = 1;
                buf = tl_plain;
            } else {
                buf = malloc(IO_CHUNK); /* nested in another connection's delivery */
                if (buf == NULL) {
                    rc = UV_ENOMEM;
                    break;
                }
            }
        }
        rc = epw_tls_read(c->tls, buf, IO_CHUNK, &n);
        if (rc == EPW_E_AGAIN) {
            rc = 0;
            break;
        }
        if (rc)
            break;
        deliver(c, buf, n, 0);
    }
    if (own_plain)
        tl_plain_busy = 0;
    else
        free(buf);
    c->in_process--;
    if (rc) {
        conn_close(c, rc);
        return;
    }
    if (!c->closing) {
        rc = flush(c);
        if (rc)
            conn_close(c, rc);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    char *p;

    (void)h;
    (void)suggested;
    if (!tl_rx_busy) {
        tl_rx_busy = 1;
        *buf = uv_buf_init((char *)tl_rx, sizeof(tl_rx));
        return;
    }
    /* Not expected (see tl_rx): stay correct anyway. Length 0 makes libuv report UV_ENOBUFS. */
    p = malloc(IO_CHUNK);
    *buf = uv_buf_init(p, p != NULL ? IO_CHUNK : 0);
}

/* Gives back what on_alloc handed out; called once the bytes are in the engine. */
static void release_rx(const uv_buf_t *buf)
{
    if (buf->base == (char *)tl_rx)
        tl_rx_busy = 0;
    else
        free(buf->base);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    epw_conn_t *c = s->data;
    int rc;

    if (nread == 0 || c->closing) {
        release_rx(buf);
        return;
    }
    if (nread < 0) {
        release_rx(buf);
        if (nread != UV_EOF)
            c->connected = 0; /* reset or error: nothing more can be written */
        conn_close(c, (int)nread);
        return;
    }
    c->last_rx = uv_now(c->loop);
    rc = epw_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
    /* Before any callback runs: nothing keeps a pointer into it. */
    release_rx(buf);
    /* Paused: the engine keeps the ciphertext until reading is switched on again. */
    if (rc == 0 && c->paused)
        return;
    if (rc) {
        conn_close(c, rc);
        return;
    }
    process(c);
}

static void fill_peer_addr(epw_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[48];
    const uint8_t *p;

    c->peer_addr[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len))
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof(ip));
        p = (const uint8_t *)&sin->sin_port;
        snprintf(c->peer_addr, sizeof(c->peer_addr), "%s:%u", ip, (unsigned)(p[0] << 8 | p[1]));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, ip, sizeof(ip));
        p = (const uint8_t *)&sin6->sin6_port;
        snprintf(c->peer_addr, sizeof(c->peer_addr), "[%s]:%u", ip, (unsigned)(p[0] << 8 | p[1]));
    }
}

/* The socket is connected: start reading and run the handshake. */
static void start_session(epw_conn_t *c)
{
    int rc;

    c->connected = 1;
    c->state = ST_HANDSHAKE;
    c->last_rx = uv_now(c->loop);
    fill_peer_addr(c);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc) {
        conn_close(c, rc);
        return;
    }
    process(c);
}

/* ---- client ------------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    epw_conn_t *c = req->handle->data;

    if (c->closing)
        return;
    if (status < 0) {
        EPW_DEBUG(SUB, "connect to %s:%u failed: %s", c->host, (unsigned)c->port,
                  uv_strerror(status));
        conn_close(c, status);
        return;
    }
    start_session(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    epw_conn_t *c = req->data;
    int rc;

    c->refs--;
    if (c->closing) {
        uv_freeaddrinfo(res);
        conn_maybe_finish(c);
        return;
    }
    if (status < 0 || res == NULL) {
        EPW_DEBUG(SUB, "cannot resolve %s: %s", c->host, uv_strerror(status));
        conn_close(c, status < 0 ? status : UV_EAI_NONAME);
        uv_freeaddrinfo(res);
        return;
    }
    c->state = ST_CONNECTING;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc)
        conn_close(c, rc);
}

static int parse_addr(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(text, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(text, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return UV_EINVAL;
}

int epw_conn_connect(uv_loop_t *loop, epw_tls_config_t *cfg, const char *host, uint16_t port,
                     const char *server_name, const char *bind_addr, const epw_conn_opts_t *opts,
                     const epw_conn_cbs_t *cbs, epw_conn_t **out)
{
    struct addrinfo hints;
    struct sockaddr_storage bind_ss;
    char portstr[8];
    epw_conn_t *c = NULL;
    int rc;

    *out = NULL;
    if (host == NULL || host[0] == '\0' || port == 0 || cbs == NULL || cbs->on_close == NULL ||
        epw_tls_config_role(cfg) != EPW_TLS_CLIENT)
        return UV_EINVAL;
    if (bind_addr != NULL && parse_addr(bind_addr, 0, &bind_ss))
        return UV_EINVAL;
    c = conn_new(loop, opts);
    if (c == NULL)
        return UV_ENOMEM;
    c->cbs = *cbs;
    c->cbs_set = 1;
    c->port = port;
    c->state = ST_RESOLVING;
    c->host = strdup(host);
    if (c->host == NULL) {
        rc = UV_ENOMEM;
        goto fail_free;
    }
    rc = epw_tls_create(cfg, server_name ? server_name : host, &c->tls);
    if (rc)
        goto fail_free;
    rc = epw_frame_decoder_create(c->opts.max_frame, &c->dec);
    if (rc)
        goto fail_free;

    rc = conn_init_handles(c);
    if (rc)
        goto out; /* c is already released */
    if (bind_addr != NULL) {
        rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&bind_ss, 0);
        if (rc)
            goto fail_close;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    c->gai.data = c;
    rc = uv_getaddrinfo(loop, &c->gai, on_resolved, host, portstr, &hints);
    if (rc)
        goto fail_close;
    c->refs++;
    uv_timer_start(&c->timer, on_timer, c->opts.handshake_timeout_ms, 0);
    *out = c;
    return 0;

fail_close:
    c->silent = 1;
    c->closing = 1;
    close_handles(c);
    goto out;
fail_free:
    conn_free(c);
out:
    return rc;
}

/* ---- sending -------------------------------------------------------------------------------- */

int epw_conn_send(epw_conn_t *c, const Epw__Envelope *env)
{
    uint8_t *frame = NULL;
    size_t len;
    int rc;

    if (c->closing)
        return EPW_E_CLOSED;
    if (c->state != ST_OPEN)
        return UV_ENOTCONN;
    rc = epw_frame_encode(env, c->opts.max_frame, &frame, &len);
    if (rc)
        goto out;
    rc = epw_tls_write(c->tls, frame, len);
    if (rc) {
        conn_close(c, rc);
        goto out;
    }
    rc = flush(c);
    if (rc)
        conn_close(c, rc);
out:
    free(frame);
    return rc;
}

int epw_conn_send_raw(epw_conn_t *c, const void *buf, size_t len)
{
    int rc;

    if (c->closing)
        return EPW_E_CLOSED;
    if (c->state != ST_OPEN)
        return UV_ENOTCONN;
    if (len == 0)
        return 0;
    rc = epw_tls_write(c->tls, buf, len);
    if (rc == 0)
        rc = flush(c);
    if (rc)
        conn_close(c, rc);
    return rc;
}

size_t epw_conn_write_queue_size(const epw_conn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

int epw_conn_writable(epw_conn_t *c)
{
    if (epw_conn_write_queue_size(c) >= c->opts.high_water) {
        c->above_high = 1;
        return 0;
    }
    return 1;
}

/* ---- flow control --------------------------------------------------------------------------- */

int epw_conn_set_reading(epw_conn_t *c, int on)
{
    int rc;

    if (c->closing)
        return EPW_E_CLOSED;
    if (c->state != ST_OPEN)
        return UV_ENOTCONN;
    if (!on) {
        if (!c->paused) {
            c->paused = 1;
            uv_read_stop((uv_stream_t *)&c->tcp);
        }
        return 0;
    }
    if (!c->paused)
        return 0;
    c->paused = 0;
    c->last_rx = uv_now(c->loop);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc) {
        conn_close(c, rc);
        return rc;
    }
    /* Called from inside this connection's delivery: its loops simply continue. */
    if (c->in_process == 0)
        process(c);
    return 0;
}

int epw_conn_reading(const epw_conn_t *c)
{
    return !c->paused;
}

/* ---- accessors ------------------------------------------------------------------------------ */

void epw_conn_set_callbacks(epw_conn_t *c, const epw_conn_cbs_t *cbs)
{
    c->cbs = *cbs;
    c->cbs_set = 1;
}

const char *epw_conn_peer_cn(const epw_conn_t *c)
{
    return epw_tls_peer_cn(c->tls);
}

const char *epw_conn_peer_ou(const epw_conn_t *c)
{
    return epw_tls_peer_ou(c->tls);
}

int epw_conn_peer_is_operator(const epw_conn_t *c)
{
    return epw_tls_peer_is_operator(c->tls);
}

const char *epw_conn_peer_addr(const epw_conn_t *c)
{
    return c->peer_addr;
}

uv_loop_t *epw_conn_loop(const epw_conn_t *c)
{
    return c->loop;
}

/* ---- listener ------------------------------------------------------------------------------- */

static void list_remove(epw_listener_t *l, epw_conn_t *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->pending = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->listener = NULL;
    l->npending--;
}

static void listener_maybe_finish(epw_listener_t *l)
{
    if (!l->closing || !l->handle_closed || l->npending > 0)
        return;
    if (l->close_cb != NULL)
        l->close_cb(l, l->close_ud);
    free(l);
}

static void handed_over(epw_conn_t *c)
{
    epw_listener_t *l = c->listener;

    list_remove(l, c);
    EPW_DEBUG(SUB, "%s: accepted %s (OU=%s)", c->peer_addr, epw_tls_peer_cn(c->tls),
              epw_tls_peer_ou(c->tls));
    l->opts.on_conn(l, c, l->opts.ud);
    if (!c->cbs_set && !c->closing) {
        EPW_ERROR(SUB, "%s: connection not taken by the listener callback", c->peer_addr);
        conn_close(c, EPW_E_INTERNAL);
    }
}

/* Why a connection failed before handover: the engine knows the TLS reasons, we know the
 * clock and the socket. */
static epw_tls_fail_t conn_fail_reason(const epw_conn_t *c, int status)
{
    epw_tls_fail_t r;

    switch (status) {
    case EPW_E_TIMEOUT:
        return EPW_TLS_FAIL_TIMEOUT;
    case EPW_E_TLS:
    case EPW_E_TLS_VERIFY:
        r = epw_tls_fail_reason(c->tls);
        return r != EPW_TLS_FAIL_NONE ? r : EPW_TLS_FAIL_PROTOCOL;
    case UV_ENOMEM:
    case EPW_E_INTERNAL:
        return EPW_TLS_FAIL_OTHER;
    default:
        return EPW_TLS_FAIL_ABORTED; /* UV_EOF, resets and other socket errors */
    }
}

static void listener_conn_gone(epw_listener_t *l, epw_conn_t *c, int status)
{
    char addr[sizeof(c->peer_addr)];
    epw_tls_fail_t reason = conn_fail_reason(c, status);

    memcpy(addr, c->peer_addr, sizeof(addr));
    list_remove(l, c);
    if (!l->closing) {
        l->failures++;
        EPW_DEBUG(SUB, "%s: dropped before handover (%s): %s", addr, epw_tls_fail_name(reason),
                  epw_strerror(status));
        if (l->opts.on_fail != NULL) {
            l->fail_reason = reason;
            l->opts.on_fail(l, status, addr, l->opts.ud);
            l->fail_reason = EPW_TLS_FAIL_NONE;
        }
    }
    listener_maybe_finish(l);
}

static void on_connection(uv_stream_t *server, int status)
{
    epw_listener_t *l = server->data;
    epw_conn_t *c;
    int rc;

    if (status < 0) {
        epw_complain(&l->accept_complaint, EPW_LOG_WARN, SUB, "accept failed: %s",
                     uv_strerror(status));
        return;
    }
    c = conn_new(l->loop, &l->opts.conn);
    if (c == NULL)
        return;
    rc = epw_tls_create(l->cfg, NULL, &c->tls);
    if (rc == 0)
        rc = epw_frame_decoder_create(c->opts.max_frame, &c->dec);
    if (rc) {
        conn_free(c);
        return;
    }
    if (conn_init_handles(c))
        return;
    rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc) {
        epw_complain(&l->accept_complaint, EPW_LOG_WARN, SUB, "accept failed: %s", uv_strerror(rc));
        c->silent = c->closing = 1;
        close_handles(c);
        return;
    }
    epw_complain_clear(&l->accept_complaint, SUB, "accept");
    c->listener = l;
    c->next = l->pending;
    if (l->pending != NULL)
        l->pending->prev = c;
    l->pending = c;
    l->npending++;
    uv_timer_start(&c->timer, on_timer, c->opts.handshake_timeout_ms, 0);
    start_session(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    epw_listener_t *l = h->data;

    l->handle_closed = 1;
    listener_maybe_finish(l);
}

int epw_listener_start(uv_loop_t *loop, epw_tls_config_t *cfg, const epw_listener_opts_t *opts,
                       epw_listener_t **out)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    epw_listener_t *l;
    int rc;

    *out = NULL;
    if (opts == NULL || opts->addr == NULL || opts->on_conn == NULL ||
        epw_tls_config_role(cfg) != EPW_TLS_SERVER)
        return UV_EINVAL;
    rc = parse_addr(opts->addr, opts->port, &ss);
    if (rc)
        return rc;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return UV_ENOMEM;
    l->loop = loop;
    l->cfg = cfg;
    l->opts = *opts;
    l->opts.addr = NULL; /* not kept */
    rc = uv_tcp_init(loop, &l->tcp);
    if (rc) {
        free(l);
        return rc;
    }
    l->tcp.data = l;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, opts->backlog > 0 ? opts->backlog : DEFAULT_BACKLOG,
                       on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    if (rc) {
        /* No user callback follows; the memory goes in the close callback. */
        l->closing = 1;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    if (ss.ss_family == AF_INET6) {
        const uint8_t *p = (const uint8_t *)&((struct sockaddr_in6 *)&ss)->sin6_port;
        l->port = (uint16_t)(p[0] << 8 | p[1]);
    } else {
        const uint8_t *p = (const uint8_t *)&((struct sockaddr_in *)&ss)->sin_port;
        l->port = (uint16_t)(p[0] << 8 | p[1]);
    }
    *out = l;
    return 0;
}

uint16_t epw_listener_port(const epw_listener_t *l)
{
    return l->port;
}

size_t epw_listener_pending(const epw_listener_t *l)
{
    return l->npending;
}

uint64_t epw_listener_failures(const epw_listener_t *l)
{
    return l->failures;
}

epw_tls_fail_t epw_listener_fail_reason(const epw_listener_t *l)
{
    return l->fail_reason;
}

void epw_listener_close(epw_listener_t *l, epw_listener_close_cb cb, void *ud)
{
    epw_conn_t *c, *next;

    if (l->closing)
        return;
    l->closing = 1;
    l->close_cb = cb;
    l->close_ud = ud;
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    for (c = l->pending; c != NULL; c = next) {
        next = c->next;
        conn_close(c, EPW_E_CLOSED);
    }
}
