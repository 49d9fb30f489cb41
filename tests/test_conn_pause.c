/* test_conn_pause: epw_conn's receive-side pause/resume with plaintext still buffered, including
 * one connection resuming another from inside its own delivery (the shared-buffer case). */
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
#include "epw_testcerts.h"

#define NCONN     2
#define NSNAP     300  /* per connection */
#define PAUSE_GAP 7    /* pause after every PAUSE_GAP-th envelope */
#define NAME_LEN  900  /* ~1 KiB frames */
#define PIECE     5003 /* bytes per epw_conn_send_raw: several frames, some split */

static char dir[256];
static char big_name[NAME_LEN + 1];

typedef struct ctx_s ctx_t;

typedef struct side_s {
    ctx_t *x;
    int idx;
    epw_conn_t *server;
    uv_timer_t resume; /* resumes a paused server connection from outside any callback */
    uint64_t got;      /* envelopes received in order */
    int paused;
    int closed;
    int client_closed;
    int client_status;
} side_t;

struct ctx_s {
    uv_loop_t loop;
    uv_timer_t guard;
    epw_tls_config_t *scfg, *ccfg;
    epw_listener_t *l;
    side_t side[NCONN];
    int accepted;
    int cross_resumes; /* resumed from the other connection's on_envelope */
    int timer_resumes;
    int listener_closed;
};

static int setup(void **state)
{
    (void)state;
    memset(big_name, 'n', NAME_LEN);
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

static epw_tls_config_t *make_cfg(epw_tls_role_t role, const char *name)
{
    char pca[512], pcrt[512], pkey[512], f[128];
    epw_tls_config_t *cfg = NULL;

    epw_testcerts_path(pca, sizeof(pca), dir, "ca.crt");
    snprintf(f, sizeof(f), "%s.crt", name);
    epw_testcerts_path(pcrt, sizeof(pcrt), dir, f);
    snprintf(f, sizeof(f), "%s.key", name);
    epw_testcerts_path(pkey, sizeof(pkey), dir, f);
    assert_int_equal(epw_tls_config_create(role, pca, pcrt, pkey, NULL, &cfg), 0);
    return cfg;
}

static void on_listener_closed(epw_listener_t *l, void *ud)
{
    ctx_t *x = ud;

    (void)l;
    x->listener_closed = 1;
}

static void resume(side_t *s)
{
    s->paused = 0;
    uv_timer_stop(&s->resume);
    assert_int_equal(epw_conn_set_reading(s->server, 1), 0);
    assert_true(epw_conn_reading(s->server) || s->paused);
}

static void on_resume_timer(uv_timer_t *t)
{
    side_t *s = t->data;

    if (!s->paused || s->server == NULL)
        return;
    s->x->timer_resumes++;
    resume(s);
}

static void server_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    side_t *s = ud;
    side_t *other = &s->x->side[1 - s->idx];

    /* Nothing is delivered while paused, and nothing is lost or reordered across a pause. */
    assert_false(s->paused);
    assert_int_equal(env->msg_case, EPW__ENVELOPE__MSG_SNAPSHOT);
    assert_int_equal(env->snapshot->seq, s->got + 1);
    assert_int_equal(strlen(env->snapshot->hostname), NAME_LEN);
    s->got++;
    epw_frame_envelope_free(env);
    if (s->got == NSNAP) {
        epw_conn_close(c, 0);
        return;
    }
    /* The other connection is paused with data buffered: resume it from in here, so its
     * delivery runs nested inside this one's. */
    if (other->paused && other->server != NULL && s->got % 2 == 0) {
        s->x->cross_resumes++;
        resume(other);
    }
    /* Two pauses close together: the second often comes while delivering what the first held. */
    if (s->got % PAUSE_GAP == 0 || s->got % PAUSE_GAP == 2) {
        assert_int_equal(epw_conn_set_reading(c, 0), 0);
        assert_int_equal(epw_conn_set_reading(c, 0), 0); /* idempotent */
        assert_false(epw_conn_reading(c));
        s->paused = 1;
        assert_int_equal(uv_timer_start(&s->resume, on_resume_timer, 1, 0), 0);
    }
}

static void server_closed(epw_conn_t *c, int status, void *ud)
{
    side_t *s = ud;
    ctx_t *x = s->x;
    int i, all = 1;

    (void)c;
    (void)status;
    s->closed = 1;
    s->server = NULL;
    uv_timer_stop(&s->resume);
    for (i = 0; i < NCONN; i++)
        all = all && x->side[i].closed;
    if (all && x->l != NULL) {
        epw_listener_close(x->l, on_listener_closed, x);
        x->l = NULL;
    }
}

static void on_conn(epw_listener_t *l, epw_conn_t *c, void *ud)
{
    ctx_t *x = ud;
    side_t *s;
    epw_conn_cbs_t cbs = {.on_envelope = server_envelope, .on_close = server_closed};

    (void)l;
    assert_true(x->accepted < NCONN);
    s = &x->side[x->accepted++];
    s->server = c;
    cbs.ud = s;
    epw_conn_set_callbacks(c, &cbs);
}

static void client_ready(epw_conn_t *c, void *ud)
{
    Epw__Envelope env;
    Epw__Snapshot snap;
    uint8_t *stream = NULL, *frame;
    size_t len = 0, flen, off, n;
    uint64_t seq;

    (void)ud;
    epw__envelope__init(&env);
    epw__snapshot__init(&snap);
    snap.hostname = big_name;
    env.msg_case = EPW__ENVELOPE__MSG_SNAPSHOT;
    env.snapshot = &snap;
    /* All frames back to back, sent in odd-sized pieces: one TLS record then carries several
     * frames and splits others, so a pause usually leaves plaintext undelivered. */
    for (seq = 1; seq <= NSNAP; seq++) {
        snap.seq = seq;
        assert_int_equal(epw_frame_encode(&env, 0, &frame, &flen), 0);
        stream = realloc(stream, len + flen);
        assert_non_null(stream);
        memcpy(stream + len, frame, flen);
        len += flen;
        free(frame);
    }
    for (off = 0; off < len; off += n) {
        n = len - off < PIECE ? len - off : PIECE;
        assert_int_equal(epw_conn_send_raw(c, stream + off, n), 0);
    }
    free(stream);
}

static void client_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    (void)c;
    (void)ud;
    epw_frame_envelope_free(env);
}

static void client_closed(epw_conn_t *c, int status, void *ud)
{
    side_t *s = ud;

    (void)c;
    s->client_closed = 1;
    s->client_status = status;
}

static void test_pause_resume_buffered(void **state)
{
    ctx_t x;
    epw_listener_opts_t lo = {.addr = "127.0.0.1", .on_conn = on_conn};
    epw_conn_cbs_t cbs = {
        .on_ready = client_ready, .on_envelope = client_envelope, .on_close = client_closed};
    epw_conn_t *cc;
    int i;

    (void)state;
    memset(&x, 0, sizeof(x));
    assert_int_equal(uv_loop_init(&x.loop), 0);
    assert_int_equal(uv_timer_init(&x.loop, &x.guard), 0);
    assert_int_equal(uv_timer_start(&x.guard, on_guard, 30000, 0), 0);
    uv_unref((uv_handle_t *)&x.guard);
    x.scfg = make_cfg(EPW_TLS_SERVER, "collector");
    x.ccfg = make_cfg(EPW_TLS_CLIENT, "host-a");
    lo.ud = &x;
    assert_int_equal(epw_listener_start(&x.loop, x.scfg, &lo, &x.l), 0);
    for (i = 0; i < NCONN; i++) {
        x.side[i].x = &x;
        x.side[i].idx = i;
        assert_int_equal(uv_timer_init(&x.loop, &x.side[i].resume), 0);
        x.side[i].resume.data = &x.side[i];
        cbs.ud = &x.side[i];
        assert_int_equal(epw_conn_connect(&x.loop, x.ccfg, "127.0.0.1", epw_listener_port(x.l),
                                          "collector", NULL, NULL, &cbs, &cc),
                         0);
    }
    /* The resume timers do not keep the loop alive once everything is closed. */
    for (i = 0; i < NCONN; i++)
        uv_unref((uv_handle_t *)&x.side[i].resume);
    assert_int_equal(uv_run(&x.loop, UV_RUN_DEFAULT), 0);

    assert_true(x.listener_closed);
    assert_int_equal(x.accepted, NCONN);
    for (i = 0; i < NCONN; i++) {
        assert_int_equal(x.side[i].got, NSNAP);
        assert_true(x.side[i].closed);
        assert_true(x.side[i].client_closed);
        assert_int_equal(x.side[i].client_status, EPW_E_CLOSED);
    }
    assert_true(x.timer_resumes > 0);
    assert_true(x.cross_resumes > 0);

    for (i = 0; i < NCONN; i++)
        uv_close((uv_handle_t *)&x.side[i].resume, NULL);
    uv_close((uv_handle_t *)&x.guard, NULL);
    assert_int_equal(uv_run(&x.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&x.loop), 0);
    epw_tls_config_destroy(x.scfg);
    epw_tls_config_destroy(x.ccfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_resume_buffered),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
