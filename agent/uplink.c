/* uplink: the agent's connection to the collector (loop thread) fed from the spool (pool thread).
 */
#include "uplink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epw_conn.h"
#include "epw_err.h"
#include "epw_frame.h"
#include "epw_log.h"
#include "epw_proto.h"
#include "epw_snap.h"
#include "epw_tls.h"
#include "epw_util.h"
#include "spool.h"

#define SUB "uplink"

#define UPLINK_BACKOFF_MIN_MS 1000u
#define UPLINK_BACKOFF_MAX_MS (5u * 60u * 1000u)
/* Entries read from the spool per worker request; the connection's high-water mark does the
 * real flow control. */
#define UPLINK_READ_BATCH 32u
/* A connection counts as healthy (the backoff restarts from its minimum) once it was accepted and
 * either got an Ack or stayed up this long. */
#define UPLINK_HEALTHY_MS 60000u

/* ---- pure parts -------------------------------------------------------------------------- */

/* rnd mapped onto [lo, hi]. */
static uint64_t up__between(uint64_t lo, uint64_t hi, uint32_t rnd)
{
    if (hi <= lo)
        return lo;
    return lo + (uint64_t)(((double)(hi - lo)) * ((double)rnd / (double)UINT32_MAX));
}

/* base * [0.8, 1.2] */
static uint64_t up__jitter(uint64_t base, uint32_t rnd)
{
    return up__between(base - base / 5, base + base / 5, rnd);
}

uint64_t uplink_reject_delay_ms(int reason, uint32_t rnd)
{
    switch (reason) {
    case EPW__REJECT_REASON__REJECT_NONE:
        return 0;
    case EPW__REJECT_REASON__REJECT_BAD_IDENTITY:
    case EPW__REJECT_REASON__REJECT_REVOKED:
    case EPW__REJECT_REASON__REJECT_UNSUPPORTED_VERSION:
        return 3600000u;
    case EPW__REJECT_REASON__REJECT_OVERLOADED:
        return up__between(60000u, 300000u, rnd);
    case EPW__REJECT_REASON__REJECT_REPLACED:
        return up__between(10000u, 15000u, rnd);
    case EPW__REJECT_REASON__REJECT_SHUTTING_DOWN:
        return up__between(2000u, 10000u, rnd);
    case EPW__REJECT_REASON__REJECT_PROTOCOL_ERROR:
        return up__jitter(60000u, rnd);
    default:
        return up__jitter(300000u, rnd);
    }
}

void uplink_backoff_init(uplink_backoff_t *b, uint64_t min_ms, uint64_t max_ms)
{
    b->min_ms = min_ms ? min_ms : UPLINK_BACKOFF_MIN_MS;
    b->max_ms = max_ms ? max_ms : UPLINK_BACKOFF_MAX_MS;
    if (b->max_ms < b->min_ms)
        b->max_ms = b->min_ms;
    b->cur_ms = 0;
}

void uplink_backoff_reset(uplink_backoff_t *b)
{
    b->cur_ms = 0;
}

uint64_t uplink_backoff_next(uplink_backoff_t *b, uint32_t rnd)
{
    uint64_t base = b->cur_ms ? b->cur_ms : b->min_ms;

    b->cur_ms = base >= b->max_ms / 2 ? b->max_ms : base * 2;
    if (base > b->max_ms)
        base = b->max_ms;
    return up__jitter(base, rnd);
}

int uplink_seqs_on_hello_ack(uplink_seqs_t *s, uint64_t last_seq)
{
    s->sent = last_seq;
    if (last_seq > s->acked)
        s->acked = last_seq;
    return last_seq > s->last ? 1 : 0;
}

int uplink_seqs_on_ack(uplink_seqs_t *s, uint64_t seq)
{
    if (seq > s->sent)
        return EPW_E_PROTO;
    if (seq <= s->acked)
        return 1;
    s->acked = seq;
    return 0;
}

int uplink_seqs_want_send(const uplink_seqs_t *s)
{
    return s->last > s->sent;
}

int uplink_prepare(const uint8_t *data, size_t len, uint64_t seq, uint64_t dropped_before,
                   uint32_t spooled, Epw__Snapshot **out)
{
    Epw__Snapshot *snap;

    *out = NULL;
    snap = epw__snapshot__unpack(NULL, len, data);
    if (!snap)
        return EPW_E_PROTO;
    if (snap->seq != seq) {
        epw_snap_free(snap);
        return EPW_E_PROTO;
    }
    snap->dropped_before = dropped_before;
    snap->spooled = spooled;
    *out = snap;
    return 0;
}

/* ---- the uplink ---------------------------------------------------------------------------- */

typedef enum {
    UP_IDLE = 0,   /* no connection; maybe a reconnect timer */
    UP_CONNECTING, /* TCP + TLS handshake */
    UP_HELLO,      /* Hello sent, waiting for HelloAck */
    UP_STREAMING,
    UP_CLOSING /* epw_conn_close called, waiting for on_close */
} up_state_t;

/*
 * One spool request. The loop thread fills the "in" part, the work callback (pool thread) runs
 * it and fills the "out" part, the after-work callback (loop thread) consumes it; libuv orders
 * the three, and only one request exists at a time.
 */
typedef struct up_job_s {
    /* in */
    int open;
    Epw__Snapshot **snaps; /* owned by the job */
    size_t n_snaps;
    uint64_t ack;     /* spool_ack(ack) when > 0 */
    uint64_t bump_to; /* make spool_next_seq exceed this */
    int read;
    uint64_t read_after;
    uint64_t gen; /* connection generation the read is for */
    /* out */
    int open_rc;
    uint64_t appended;
    uint64_t failed;
    int append_rc; /* the first failure */
    int ack_rc;
    int read_rc;
    Epw__Snapshot **rd;
    size_t n_rd;
    spool_stats_t st;
} up_job_t;

struct uplink_s {
    uv_loop_t *loop;
    char *host, *server_name, *bind_addr, *identity, *spool_dir, *os;
    uint16_t port;
    uint64_t spool_max;
    uint64_t interval_ms;
    uint64_t ack_timeout_ms;
    epw_tls_config_t *tls;
    spool_t *spool;  /* used by the work callback only (it is thread-safe anyway) */
    int spool_state; /* 0 opening, 1 open, -1 failed */

    epw_conn_t *conn;
    up_state_t state;
    uint64_t gen; /* increments per accepted connection; tags spool reads */
    uint64_t conn_accepted_at;
    int conn_acked;
    int conn_reject; /* reject reason of the current connection, 0 none */
    int starved;     /* the latest connect attempt failed for lack of local ports */

    uv_timer_t reconnect_timer;
    uv_timer_t ack_timer;
    uv_timer_t drain_timer;
    int handles_open;

    uplink_backoff_t backoff;
    uint64_t rng;
    uplink_seqs_t seqs;
    uint64_t first_unacked; /* for Hello */

    uv_work_t work;
    up_job_t job;
    int busy;
    Epw__Snapshot **pend; /* submitted, not yet handed to a job */
    size_t n_pend, cap_pend;
    uint64_t ack_want, ack_applied, bump_to;

    Epw__Snapshot **outbox; /* read from the spool, sent in order */
    size_t n_out, i_out;

    int stopping;
    int drain_expired;
    uplink_stop_cb stop_cb;
    void *stop_ud;

    epw_complain_t connect_fail;
    epw_complain_t spool_fail;
    uplink_stats_t st;
};

static void up__kick(uplink_t *u);
static void up__maybe_finish(uplink_t *u);
static void up__connect(uplink_t *u);

static uint32_t up__rand(uplink_t *u)
{
    /* xorshift64*: jitter only, no security role. */
    u->rng ^= u->rng >> 12;
    u->rng ^= u->rng << 25;
    u->rng ^= u->rng >> 27;
    return (uint32_t)((u->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static void up__free_snaps(Epw__Snapshot **snaps, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        epw_snap_free(snaps[i]);
    free(snaps);
}

static void up__clear_outbox(uplink_t *u)
{
    size_t i;

    for (i = u->i_out; i < u->n_out; i++)
        epw_snap_free(u->outbox[i]);
    free(u->outbox);
    u->outbox = NULL;
    u->n_out = u->i_out = 0;
}

static char *up__strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- worker side --------------------------------------------------------------------------- */

static void up__job_append(uplink_t *u, up_job_t *j)
{
    size_t i;

    for (i = 0; i < j->n_snaps; i++) {
        Epw__Snapshot *s = j->snaps[i];
        uint64_t seq = spool_next_seq(u->spool);
        size_t len;
        uint8_t *buf;
        int rc;

        s->seq = seq;
        len = epw__snapshot__get_packed_size(s);
        buf = malloc(len ? len : 1);
        if (!buf) {
            rc = UV_ENOMEM;
        } else {
            epw__snapshot__pack(s, buf);
            rc = spool_append(u->spool, seq, buf, len);
            free(buf);
        }
        if (rc) {
            j->failed++;
            if (!j->append_rc)
                j->append_rc = rc;
        } else {
            j->appended++;
        }
    }
}

static void up__job_read(uplink_t *u, up_job_t *j)
{
    uint64_t after = j->read_after;
    uint32_t count;
    int rc = 0;

    j->rd = calloc(UPLINK_READ_BATCH, sizeof(*j->rd));
    if (!j->rd) {
        j->read_rc = UV_ENOMEM;
        return;
    }
    count = (uint32_t)spool_count(u->spool);
    while (j->n_rd < UPLINK_READ_BATCH) {
        spool_entry_t e;
        Epw__Snapshot *snap;

        rc = spool_peek(u->spool, after, &e);
        if (rc == EPW_E_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc)
            break;
        after = e.seq;
        rc = uplink_prepare(e.data, e.len, e.seq, e.dropped_before, count, &snap);
        spool_entry_free(&e);
        if (rc == EPW_E_PROTO) {
            /* The CRC matched, so these are the bytes we stored: a bug, not disk damage. Skip
             * it rather than wedge the stream; the collector sees the gap in seqs. */
            EPW_ERROR(SUB, "spooled snapshot %llu cannot be decoded; skipping it",
                      (unsigned long long)after);
            rc = 0;
            continue;
        }
        if (rc)
            break;
        j->rd[j->n_rd++] = snap;
    }
    j->read_rc = rc;
}

static void up__work_cb(uv_work_t *req)
{
    uplink_t *u = req->data;
    up_job_t *j = &u->job;

    if (j->open) {
        j->open_rc = spool_open(u->spool_dir, u->spool_max, &u->spool);
        if (j->open_rc)
            return;
    }
    if (!u->spool)
        return;
    if (j->n_snaps)
        up__job_append(u, j);
    if (j->ack)
        j->ack_rc = spool_ack(u->spool, j->ack);
    if (j->bump_to) {
        /* The collector knows seqs this spool never issued (its directory was reset): skip past
         * them, or new snapshots would be taken for resends and ignored. */
        while (spool_next_seq(u->spool) <= j->bump_to)
            ;
    }
    if (j->read)
        up__job_read(u, j);
    spool_get_stats(u->spool, &j->st);
}

/* ---- loop side ---------------------------------------------------------------------------- */

static void up__send_snapshots(uplink_t *u);

static void up__after_work_cb(uv_work_t *req, int status)
{
    uplink_t *u = req->data;
    up_job_t j = u->job;

    (void)status; /* never cancelled: uv_cancel is not used on spool requests */
    memset(&u->job, 0, sizeof(u->job));
    u->busy = 0;
    up__free_snaps(j.snaps, j.n_snaps);
    if (j.open) {
        if (j.open_rc) {
            EPW_ERROR(SUB, "cannot open the spool %s: %s; nothing will be streamed", u->spool_dir,
                      epw_strerror(j.open_rc));
            u->spool_state = -1;
            up__free_snaps(u->pend, u->n_pend);
            u->pend = NULL;
            u->n_pend = u->cap_pend = 0;
            up__maybe_finish(u);
            return;
        }
        u->spool_state = 1;
        u->seqs.last = j.st.last_seq;
        u->seqs.acked = j.st.first_seq ? j.st.first_seq - 1 : j.st.last_seq;
        EPW_INFO(SUB, "spool %s: %llu snapshot(s) waiting (seq %llu..%llu)", u->spool_dir,
                 (unsigned long long)j.st.count, (unsigned long long)j.st.first_seq,
                 (unsigned long long)j.st.last_seq);
        if (!u->stopping)
            up__connect(u);
    }
    if (u->spool) {
        u->seqs.last = j.st.last_seq;
        u->first_unacked = j.st.count ? j.st.first_seq : j.st.last_seq + 1;
        u->st.last_seq = j.st.last_seq;
    }
    u->st.spooled += j.appended;
    u->st.spool_failed += j.failed;
    if (j.failed)
        epw_complain(&u->spool_fail, EPW_LOG_ERROR, SUB,
                     "%llu snapshot(s) could not be spooled: %s (counted as dropped)",
                     (unsigned long long)j.failed, epw_strerror(j.append_rc));
    else if (j.appended)
        epw_complain_clear(&u->spool_fail, SUB, "spooling");
    if (j.ack) {
        /* A failed ack is not retried on its own (that would spin on a broken disk): the next
         * Ack covers it, and at worst acknowledged entries are resent after a restart, which the
         * collector stores once. */
        if (j.ack_rc)
            EPW_WARN(SUB, "spool: acknowledging %llu failed: %s", (unsigned long long)j.ack,
                     epw_strerror(j.ack_rc));
        if (j.ack > u->ack_applied)
            u->ack_applied = j.ack;
    }
    if (j.bump_to && j.bump_to == u->bump_to)
        u->bump_to = 0;
    if (j.read) {
        if (j.read_rc)
            EPW_WARN(SUB, "reading the spool failed: %s", epw_strerror(j.read_rc));
        if (j.gen == u->gen && u->state == UP_STREAMING && u->n_out == 0 && j.n_rd) {
            u->outbox = j.rd;
            u->n_out = j.n_rd;
            u->i_out = 0;
            j.rd = NULL;
            j.n_rd = 0;
        }
        up__free_snaps(j.rd, j.n_rd);
    }
    up__send_snapshots(u);
    up__kick(u);
    up__maybe_finish(u);
}

/* Starts the next spool request when there is something to do and none is running. */
static void up__kick(uplink_t *u)
{
    up_job_t *j = &u->job;
    int rc;

    if (u->busy || u->spool_state < 0)
        return;
    memset(j, 0, sizeof(*j));
    if (u->spool_state == 0)
        j->open = 1;
    if (u->n_pend) {
        j->snaps = u->pend;
        j->n_snaps = u->n_pend;
    }
    if (u->ack_want > u->ack_applied)
        j->ack = u->ack_want;
    j->bump_to = u->bump_to;
    if (u->state == UP_STREAMING && u->n_out == 0 &&
        (uplink_seqs_want_send(&u->seqs) || j->n_snaps)) {
        j->read = 1;
        j->read_after = u->seqs.sent;
        j->gen = u->gen;
    }
    if (!j->open && !j->n_snaps && !j->ack && !j->bump_to && !j->read)
        return;
    u->work.data = u;
    rc = uv_queue_work(u->loop, &u->work, up__work_cb, up__after_work_cb);
    if (rc) {
        /* Only fails for invalid arguments: keep the snapshots pending and try on the next
         * event. */
        EPW_ERROR(SUB, "cannot queue spool work: %s", epw_strerror(rc));
        memset(j, 0, sizeof(*j));
        return;
    }
    if (j->n_snaps) {
        u->pend = NULL;
        u->n_pend = u->cap_pend = 0;
    }
    u->busy = 1;
}

static void up__ack_timer_cb(uv_timer_t *t)
{
    uplink_t *u = t->data;
    char d[32];

    if (u->conn && u->state == UP_STREAMING && u->seqs.sent > u->seqs.acked) {
        epw_format_duration(u->ack_timeout_ms, d, sizeof(d));
        EPW_WARN(SUB, "no acknowledgement from the collector for %s; reconnecting", d);
        u->state = UP_CLOSING;
        epw_conn_close(u->conn, EPW_E_TIMEOUT);
    }
}

/* (Re)arms the ack timeout while something sent is unacknowledged. */
static void up__ack_timer_update(uplink_t *u, int restart)
{
    if (u->state == UP_STREAMING && u->seqs.sent > u->seqs.acked) {
        if (restart || !uv_is_active((uv_handle_t *)&u->ack_timer))
            uv_timer_start(&u->ack_timer, up__ack_timer_cb, u->ack_timeout_ms, 0);
    } else {
        uv_timer_stop(&u->ack_timer);
    }
}

/* Sends outbox entries while the connection takes them. */
static void up__send_snapshots(uplink_t *u)
{
    while (u->conn && u->state == UP_STREAMING && u->i_out < u->n_out &&
           epw_conn_writable(u->conn)) {
        Epw__Envelope env = EPW__ENVELOPE__INIT;
        Epw__Snapshot *s = u->outbox[u->i_out];
        int rc;

        env.msg_case = EPW__ENVELOPE__MSG_SNAPSHOT;
        env.snapshot = s;
        rc = epw_conn_send(u->conn, &env);
        if (rc) {
            /* The connection is closing (on_close follows) or the entry cannot be framed. */
            EPW_WARN(SUB, "sending snapshot %llu failed: %s", (unsigned long long)s->seq,
                     epw_strerror(rc));
            if (rc == EPW_E_TOOBIG || rc == EPW_E_PROTO) {
                u->state = UP_CLOSING;
                epw_conn_close(u->conn, rc);
            }
            return;
        }
        u->seqs.sent = s->seq;
        u->st.sent++;
        epw_snap_free(s);
        u->outbox[u->i_out++] = NULL;
    }
    if (u->n_out && u->i_out == u->n_out) {
        free(u->outbox);
        u->outbox = NULL;
        u->n_out = u->i_out = 0;
        up__kick(u);
    }
    up__ack_timer_update(u, 0);
}

static int up__send_hello(uplink_t *u)
{
    static char version[] = EPW_VERSION;
    Epw__Envelope env = EPW__ENVELOPE__INIT;
    Epw__Hello h = EPW__HELLO__INIT;

    h.protocol_version = EPW_PROTOCOL_VERSION;
    h.capabilities = EPW_CAPS_THIS_BUILD;
    h.agent_version = version;
    h.os = u->os;
    h.hostname = u->identity;
#if defined(_WIN32)
    h.platform = EPW__PLATFORM__WINDOWS;
#else
    h.platform = EPW__PLATFORM__LINUX;
#endif
    h.interval_ms = u->interval_ms;
    h.first_unacked_seq = u->first_unacked;
    env.msg_case = EPW__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    return epw_conn_send(u->conn, &env);
}

static void up__on_ready(epw_conn_t *c, void *ud)
{
    uplink_t *u = ud;
    int rc;

    (void)c;
    u->st.connects++;
    if (u->starved) {
        EPW_INFO(SUB, "connected again after running out of local ports");
        u->starved = 0;
    }
    rc = up__send_hello(u);
    if (rc) {
        EPW_WARN(SUB, "cannot send Hello: %s", epw_strerror(rc));
        u->state = UP_CLOSING;
        epw_conn_close(u->conn, rc);
        return;
    }
    u->state = UP_HELLO;
}

static const char *up__reject_name(int reason)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&epw__reject_reason__descriptor, reason);

    return v ? v->name : "unknown";
}

static void up__protocol_error(uplink_t *u, const char *what)
{
    EPW_WARN(SUB, "collector broke the protocol: %s; reconnecting", what);
    u->state = UP_CLOSING;
    epw_conn_close(u->conn, EPW_E_PROTO);
}

static void up__on_hello_ack(uplink_t *u, const Epw__HelloAck *a)
{
    if (a->reject != EPW__REJECT_REASON__REJECT_NONE) {
        u->conn_reject = (int)a->reject;
        u->st.rejects++;
        EPW_WARN(SUB, "collector refused this agent: %s%s%s", up__reject_name((int)a->reject),
                 a->message && a->message[0] ? ": " : "", a->message ? a->message : "");
        u->state = UP_CLOSING;
        epw_conn_close(u->conn, EPW_E_REJECTED);
        return;
    }
    if (uplink_seqs_on_hello_ack(&u->seqs, a->last_seq)) {
        EPW_WARN(SUB,
                 "collector has seqs up to %llu but this spool only used %llu (spool directory "
                 "reset?); continuing after %llu",
                 (unsigned long long)a->last_seq, (unsigned long long)u->seqs.last,
                 (unsigned long long)a->last_seq);
        u->bump_to = a->last_seq;
        /* Nothing newer than last_seq exists yet; new entries will get seqs above it. */
        u->seqs.last = a->last_seq;
    }
    if (a->last_seq > u->ack_want)
        u->ack_want = a->last_seq;
    u->state = UP_STREAMING;
    u->gen++;
    u->conn_accepted_at = uv_now(u->loop);
    u->conn_acked = 0;
    epw_complain_clear(&u->connect_fail, SUB, "connection to the collector");
    EPW_INFO(SUB, "streaming to %s:%u as %s (collector has up to seq %llu, %llu waiting)", u->host,
             (unsigned)u->port, u->identity, (unsigned long long)a->last_seq,
             (unsigned long long)(u->seqs.last > a->last_seq ? u->seqs.last - a->last_seq : 0));
    up__kick(u);
}

static void up__on_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    uplink_t *u = ud;
    int rc;

    (void)c;
    if (u->state == UP_CLOSING)
        goto out;
    if (env->msg_case == EPW__ENVELOPE__MSG_HELLO_ACK && u->state == UP_HELLO) {
        up__on_hello_ack(u, env->hello_ack);
    } else if (env->msg_case == EPW__ENVELOPE__MSG_ACK && u->state == UP_STREAMING) {
        rc = uplink_seqs_on_ack(&u->seqs, env->ack->seq);
        if (rc < 0) {
            up__protocol_error(u, "ack for a seq never sent");
            goto out;
        }
        if (rc == 0) {
            u->ack_want = env->ack->seq;
            u->st.acked_seq = env->ack->seq;
            u->conn_acked = 1;
            uplink_backoff_reset(&u->backoff);
            up__ack_timer_update(u, 1);
            up__kick(u);
            up__maybe_finish(u);
        }
    } else {
        up__protocol_error(u, "unexpected message");
    }
out:
    epw_frame_envelope_free(env);
}

static void up__on_drain(epw_conn_t *c, void *ud)
{
    (void)c;
    up__send_snapshots(ud);
}

static void up__reconnect_cb(uv_timer_t *t)
{
    up__connect(t->data);
}

static void up__schedule(uplink_t *u, uint64_t delay)
{
    if (u->stopping)
        return;
    uv_timer_start(&u->reconnect_timer, up__reconnect_cb, delay, 0);
}

/*
 * Connecting failed for lack of local ports (the condition this host is watched for):
 * - connect() picking a port: EADDRNOTAVAIL (Windows: WSAENOBUFS, UV_ENOBUFS);
 * - with a bind address epw_conn binds port 0 first; Linux reports an exhausted range there as
 *   EADDRINUSE (libuv hands it over at connect time), which for port 0 cannot mean anything
 *   else. A synchronous EADDRNOTAVAIL is then that address not being local, not starvation.
 */
static void up__note_starved(uplink_t *u, int status, int sync)
{
    if (status != UV_EADDRNOTAVAIL && status != UV_ENOBUFS &&
        !(u->bind_addr && status == UV_EADDRINUSE))
        return;
    if (sync && u->bind_addr && status == UV_EADDRNOTAVAIL)
        return;
    if (!u->starved)
        EPW_WARN(SUB,
                 "cannot connect: no local port available (%s); marking snapshots "
                 "port-starved until a connection works",
                 epw_err_name(status));
    u->starved = 1;
    u->st.starved_errors++;
}

static void up__on_close(epw_conn_t *c, int status, void *ud)
{
    uplink_t *u = ud;
    int was_streaming = u->conn_accepted_at != 0;
    uint64_t delay;
    char d[32];

    (void)c;
    u->conn = NULL;
    u->state = UP_IDLE;
    up__clear_outbox(u);
    uv_timer_stop(&u->ack_timer);
    if (!was_streaming)
        up__note_starved(u, status, 0);
    if (was_streaming &&
        (u->conn_acked || uv_now(u->loop) - u->conn_accepted_at >= UPLINK_HEALTHY_MS))
        uplink_backoff_reset(&u->backoff);
    u->conn_accepted_at = 0;
    if (u->stopping) {
        up__maybe_finish(u);
        return;
    }
    if (u->conn_reject) {
        delay = uplink_reject_delay_ms(u->conn_reject, up__rand(u));
        u->conn_reject = 0;
        epw_format_duration(delay, d, sizeof(d));
        EPW_WARN(SUB, "reconnecting in %s", d);
    } else {
        delay = uplink_backoff_next(&u->backoff, up__rand(u));
        epw_format_duration(delay, d, sizeof(d));
        if (was_streaming)
            EPW_WARN(SUB, "connection to the collector lost: %s; reconnecting in %s",
                     epw_strerror(status), d);
        else
            epw_complain(&u->connect_fail, EPW_LOG_WARN, SUB,
                         "cannot connect to the collector %s:%u: %s; retrying in %s", u->host,
                         (unsigned)u->port, epw_strerror(status), d);
    }
    up__schedule(u, delay);
}

static void up__connect(uplink_t *u)
{
    epw_conn_cbs_t cbs;
    epw_conn_opts_t co;
    uint64_t delay;
    char d[32];
    int rc;

    if (u->stopping || u->conn || u->spool_state != 1)
        return;
    memset(&cbs, 0, sizeof(cbs));
    cbs.on_ready = up__on_ready;
    cbs.on_envelope = up__on_envelope;
    cbs.on_drain = up__on_drain;
    cbs.on_close = up__on_close;
    cbs.ud = u;
    memset(&co, 0, sizeof(co));
    u->conn_reject = 0;
    u->conn_accepted_at = 0;
    rc = epw_conn_connect(u->loop, u->tls, u->host, u->port, u->server_name, u->bind_addr, &co,
                          &cbs, &u->conn);
    if (rc) {
        u->conn = NULL;
        up__note_starved(u, rc, 1);
        delay = uplink_backoff_next(&u->backoff, up__rand(u));
        epw_format_duration(delay, d, sizeof(d));
        epw_complain(&u->connect_fail, EPW_LOG_WARN, SUB,
                     "cannot connect to the collector %s:%u: %s; retrying in %s", u->host,
                     (unsigned)u->port, epw_strerror(rc), d);
        up__schedule(u, delay);
        return;
    }
    u->state = UP_CONNECTING;
}

int uplink_submit(uplink_t *u, Epw__Snapshot **snaps, size_t n)
{
    size_t i;
    int rc = 0;

    if (u->stopping || u->spool_state < 0) {
        rc = EPW_E_CLOSED;
        goto out;
    }
    if (u->n_pend + n > u->cap_pend) {
        size_t cap = u->cap_pend ? u->cap_pend * 2 : 8;
        Epw__Snapshot **np;

        while (cap < u->n_pend + n)
            cap *= 2;
        np = realloc(u->pend, cap * sizeof(*np));
        if (!np) {
            rc = UV_ENOMEM;
            goto out;
        }
        u->pend = np;
        u->cap_pend = cap;
    }
    for (i = 0; i < n; i++) {
        if (u->starved) {
            snaps[i]->port_starved = 1;
            u->st.port_starved++;
        }
        u->pend[u->n_pend++] = snaps[i];
        snaps[i] = NULL;
    }
    u->st.submitted += n;
    up__kick(u);
out:
    up__free_snaps(snaps, n);
    return rc;
}

/* ---- start / stop -------------------------------------------------------------------------- */

static void up__free(uplink_t *u)
{
    up__free_snaps(u->pend, u->n_pend);
    up__clear_outbox(u);
    spool_close(u->spool);
    epw_tls_config_destroy(u->tls);
    free(u->host);
    free(u->server_name);
    free(u->bind_addr);
    free(u->identity);
    free(u->spool_dir);
    free(u->os);
    free(u);
}

static void up__handle_closed(uv_handle_t *h)
{
    uplink_t *u = h->data;

    if (--u->handles_open > 0)
        return;
    if (u->stop_cb)
        u->stop_cb(u, u->stop_ud);
    up__free(u);
}

static void up__drain_cb(uv_timer_t *t)
{
    uplink_t *u = t->data;

    u->drain_expired = 1;
    up__maybe_finish(u);
}

/* While stopping: closes the connection once everything is spooled and acknowledged (or the
 * drain time is over), then the timers; the last close callback frees the uplink. */
static void up__maybe_finish(uplink_t *u)
{
    int flushed;

    if (u->stopping != 1)
        return;
    flushed = !u->busy && u->n_pend == 0 && u->ack_applied >= u->ack_want;
    if (u->conn && u->state != UP_CLOSING) {
        int done = flushed && u->seqs.acked >= u->seqs.last;

        /* A connection still being set up gets the rest of the drain time as well: a short
         * run (--count 1) should still deliver. */
        if (done || u->drain_expired) {
            if (u->state == UP_STREAMING && !done)
                EPW_INFO(SUB,
                         "stopping with %llu snapshot(s) unacknowledged; they stay in the "
                         "spool",
                         (unsigned long long)(u->seqs.last - u->seqs.acked));
            u->state = UP_CLOSING;
            epw_conn_close(u->conn, 0);
        }
    }
    if (!flushed || u->conn)
        return;
    /* Everything released but the timers. */
    u->handles_open = 3;
    uv_close((uv_handle_t *)&u->reconnect_timer, up__handle_closed);
    uv_close((uv_handle_t *)&u->ack_timer, up__handle_closed);
    uv_close((uv_handle_t *)&u->drain_timer, up__handle_closed);
    /* Marks the closes as started (handles_open > 0 from here on, and never re-entered). */
    u->stopping = 2;
}

void uplink_stop(uplink_t *u, uint64_t drain_ms, uplink_stop_cb cb, void *ud)
{
    if (u->stopping == 2)
        return;
    if (!u->stopping) {
        u->stopping = 1;
        u->stop_cb = cb;
        u->stop_ud = ud;
        uv_timer_stop(&u->reconnect_timer);
        EPW_DEBUG(SUB, "stopping (%llu pending, seq %llu, acked %llu)",
                  (unsigned long long)u->n_pend, (unsigned long long)u->seqs.last,
                  (unsigned long long)u->seqs.acked);
        up__kick(u); /* spool what was submitted */
        uv_timer_start(&u->drain_timer, up__drain_cb, drain_ms, 0);
    } else {
        /* A second request: stop draining now. */
        u->drain_expired = 1;
    }
    up__maybe_finish(u);
}

void uplink_get_stats(const uplink_t *u, uplink_stats_t *out)
{
    *out = u->st;
    out->acked_seq = u->seqs.acked;
    out->last_seq = u->seqs.last;
}

int uplink_start(uv_loop_t *loop, const uplink_opts_t *o, uplink_t **out)
{
    uv_utsname_t un;
    epw_tls_opts_t to;
    uplink_t *u = NULL;
    uint64_t seed = 0;
    char os[sizeof(un.sysname) + sizeof(un.release) + 2];
    int rc;

    *out = NULL;
    if (!o->host || !o->port || !o->ca || !o->cert || !o->key || !o->identity || !o->spool_dir)
        return UV_EINVAL;
    u = calloc(1, sizeof(*u));
    if (!u)
        return UV_ENOMEM;
    u->loop = loop;
    u->port = o->port;
    u->spool_max = o->spool_max;
    u->interval_ms = o->interval_ms;
    u->ack_timeout_ms = o->ack_timeout_ms ? o->ack_timeout_ms : 2 * o->interval_ms + 30000u;
    uplink_backoff_init(&u->backoff, o->backoff_min_ms, o->backoff_max_ms);
    if (uv_os_uname(&un) == 0)
        snprintf(os, sizeof(os), "%s %s", un.sysname, un.release);
    else
        snprintf(os, sizeof(os), "unknown");
    u->host = up__strdup(o->host);
    u->server_name = up__strdup(o->server_name ? o->server_name : o->host);
    u->bind_addr = up__strdup(o->bind_addr);
    u->identity = up__strdup(o->identity);
    u->spool_dir = up__strdup(o->spool_dir);
    u->os = up__strdup(os);
    if (!u->host || !u->server_name || (o->bind_addr && !u->bind_addr) || !u->identity ||
        !u->spool_dir || !u->os) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (uv_random(NULL, NULL, &seed, sizeof(seed), 0, NULL) != 0 || seed == 0)
        seed = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    u->rng = seed ? seed : 1;
    memset(&to, 0, sizeof(to));
    to.debug_level = o->tls_debug;
    rc = epw_tls_config_create(EPW_TLS_CLIENT, o->ca, o->cert, o->key, &to, &u->tls);
    if (rc)
        goto out;
    /* From here the handles exist; failures below are impossible for timers on a valid loop. */
    uv_timer_init(loop, &u->reconnect_timer);
    uv_timer_init(loop, &u->ack_timer);
    uv_timer_init(loop, &u->drain_timer);
    u->reconnect_timer.data = u->ack_timer.data = u->drain_timer.data = u;
    up__kick(u); /* opens the spool, then connects */
    *out = u;
    u = NULL;
out:
    if (u)
        up__free(u);
    return rc;
}
