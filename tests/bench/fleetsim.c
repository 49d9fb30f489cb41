/* epwatch-fleetsim: simulates a fleet of agents over real mutual TLS from one libuv loop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <uv.h>

#include "epw_conn.h"
#include "epw_err.h"
#include "epw_frame.h"
#include "epw_log.h"
#include "epw_proto.h"
#include "epw_tls.h"
#include "epw_util.h"
#include "fleet_hist.h"
#include "fleet_snap.h"

/*
 * Each simulated agent has its own client certificate (CERTS/agents/<name>.crt, CN = <name>; all
 * share CERTS/agent.key, see tests/bench/fleetcerts.sh) and its own TLS configuration, connects
 * from one of several 127.0.0.x source addresses, says Hello, resumes after HelloAck.last_seq like
 * a real agent draining its spool, and sends snapshots:
 *   --window W       as fast as acks allow, W unacknowledged snapshots per agent; or
 *   --rate R         R snapshots/s in total, round-robin over the agents; or
 *   --interval-ms I  every agent once per I ms (the same as --rate N*1000/I).
 * Ack latency is the time from handing a snapshot to the connection until the cumulative Ack
 * covering it arrives. Throughput and latency are measured from the moment every agent is
 * streaming and --warmup seconds have passed, until --duration seconds after the start.
 *
 * Faults: SIGUSR1 closes --storm-frac of the connections at once and reconnects them immediately
 * (a reconnect storm); with --gap-frac F a fraction F of reconnects skips a few seqs and reports
 * them with dropped_before, like an agent whose spool overflowed. --acked-log FILE lists at exit,
 * per agent, the highest acknowledged seq and the gaps it reported; every seq up to it that is not
 * in a gap must be in the database exactly once (tests/bench/soak.sh checks this).
 *
 * One thread (the loop); SIGINT/SIGTERM stop early with the same summary.
 */

#define SUB      "fleetsim"
#define RING     256u /* per agent: send times of the last RING seqs (also the in-flight cap) */
#define TICK_MS  2u
#define MAX_SRC  64u
#define NAME_LEN 48u

typedef enum { A_IDLE = 0, A_CONNECTING, A_STREAMING, A_CLOSING } agent_state_t;

typedef struct gap_s {
    uint64_t after, dropped;
} gap_t;

typedef struct fleet_s fleet_t;

typedef struct agent_s {
    fleet_t *f;
    uint32_t idx;
    agent_state_t state;
    int storm; /* closed by a storm: reconnect at once */
    int queued;
    unsigned fails;
    epw_tls_config_t *tls;
    epw_conn_t *conn;
    uint64_t next_seq;             /* next seq to send */
    uint64_t acked;                /* highest seq known committed */
    uint64_t conn_first;           /* first seq sent on the current connection */
    uint64_t not_before;           /* uv_now() before which no reconnect */
    uint64_t gap_seq, gap_dropped; /* pending gap: carried by snapshot gap_seq */
    gap_t *gaps;
    size_t n_gaps;
    uint64_t ts[RING]; /* uv_hrtime() at send, by seq % RING */
} agent_t;

typedef struct opts_s {
    const char *certs, *host, *server_name, *prefix, *acked_log, *status_file;
    uint16_t port;
    uint32_t n, first;
    double duration_s, warmup_s, rate, storm_frac, gap_frac;
    unsigned window, src_addrs, max_connecting;
    uint64_t backoff_max_ms;
    int json, quiet;
} opts_t;

struct fleet_s {
    opts_t o;
    uv_loop_t *loop;
    agent_t *agents;
    uint32_t *queue; /* connect queue (ring of agent indices) */
    uint32_t q_head, q_len;
    char src[MAX_SRC][48];
    uv_timer_t tick, status;
    uv_signal_t sig_int, sig_term, sig_usr1;
    uint64_t t0_ns, meas_start_ns, meas_end_ns, rate_sent_slots;
    int stopping, measuring;
    size_t connecting, streaming, open, max_streaming;
    fleet_hist_t lat;
    uint64_t sent, acked, acked_meas, sent_meas, bytes_sent, skipped_full, lost_acked;
    uint64_t connects, connect_fail, closes, handshakes_ok, storms, resends, gaps_made;
    uint64_t rejects[8];
    uint64_t last_status_acked, last_status_ns;
    fleet_snap_scratch_t scratch;
};

static void fill_window(agent_t *a);

static uint32_t rnd(void)
{
    return (uint32_t)random();
}

/* Uniform in [0, 1). random() yields 31 bits. */
static double rnd01(void)
{
    return (double)rnd() / 2147483648.0;
}

static void agent_name(const fleet_t *f, uint32_t idx, char *buf, size_t len)
{
    snprintf(buf, len, "%s%05u", f->o.prefix, f->o.first + idx);
}

static void queue_push(fleet_t *f, agent_t *a, uint64_t delay_ms)
{
    a->not_before = uv_now(f->loop) + delay_ms;
    if (a->queued || f->stopping)
        return;
    a->queued = 1;
    f->queue[(f->q_head + f->q_len) % f->o.n] = a->idx;
    f->q_len++;
}

/* ---- measurement ---------------------------------------------------------------------------- */

static void maybe_start_measuring(fleet_t *f)
{
    uint64_t now = uv_hrtime();

    if (f->measuring || f->stopping)
        return;
    if (f->streaming < f->o.n && now - f->t0_ns < (uint64_t)(f->o.duration_s * 0.5e9))
        return; /* wait for the whole fleet, but never for more than half the run */
    if (now - f->t0_ns < (uint64_t)(f->o.warmup_s * 1e9))
        return;
    f->measuring = 1;
    f->meas_start_ns = now;
    f->acked_meas = f->sent_meas = 0;
    fleet_hist_reset(&f->lat);
    if (!f->o.quiet)
        fprintf(stderr, "fleetsim: measuring from t=%.1fs with %zu agents streaming\n",
                (double)(now - f->t0_ns) / 1e9, f->streaming);
}

/* ---- sending -------------------------------------------------------------------------------- */

static int send_one(agent_t *a)
{
    fleet_t *f = a->f;
    Epw__Envelope env = EPW__ENVELOPE__INIT;
    char name[NAME_LEN];
    uint64_t seq = a->next_seq;
    int rc;

    agent_name(f, a->idx, name, sizeof(name));
    env.msg_case = EPW__ENVELOPE__MSG_SNAPSHOT;
    env.snapshot = fleet_snap_build(&f->scratch, f->o.first + a->idx, name, seq, epw_now_ms(),
                                    seq == a->gap_seq ? a->gap_dropped : 0);
    rc = epw_conn_send(a->conn, &env);
    if (rc)
        return rc;
    a->ts[seq % RING] = uv_hrtime();
    a->next_seq++;
    f->sent++;
    f->bytes_sent += epw__snapshot__get_packed_size(env.snapshot);
    if (f->measuring)
        f->sent_meas++;
    return 0;
}

/* In flight: sent on this connection and not yet acknowledged (a gap's seqs are never sent). */
static uint64_t in_flight(const agent_t *a)
{
    uint64_t from = a->acked + 1 > a->conn_first ? a->acked + 1 : a->conn_first;

    return a->next_seq > from ? a->next_seq - from : 0;
}

static int can_send(agent_t *a, unsigned window)
{
    return a->state == A_STREAMING && in_flight(a) < window && epw_conn_writable(a->conn);
}

static void fill_window(agent_t *a)
{
    fleet_t *f = a->f;

    if (f->o.window == 0 || f->stopping)
        return;
    while (can_send(a, f->o.window))
        if (send_one(a))
            break;
}

/* Rate mode: hands out the snapshots due since the start, round-robin over the fleet. */
static void rate_sends(fleet_t *f)
{
    uint64_t due = (uint64_t)((double)(uv_hrtime() - f->t0_ns) / 1e9 * f->o.rate), budget = 20000;

    while (f->rate_sent_slots < due && budget-- > 0) {
        agent_t *a = &f->agents[f->rate_sent_slots % f->o.n];
        f->rate_sent_slots++;
        if (a->state != A_STREAMING)
            continue; /* a real agent would spool it; here the slot simply passes */
        if (!can_send(a, RING)) {
            f->skipped_full++;
            continue;
        }
        (void)send_one(a);
    }
    if (f->rate_sent_slots < due)
        f->rate_sent_slots = due; /* fell behind: do not build up a burst */
}

/* ---- connection callbacks ------------------------------------------------------------------- */

static void send_hello(agent_t *a)
{
    Epw__Envelope env = EPW__ENVELOPE__INIT;
    Epw__Hello h = EPW__HELLO__INIT;
    char name[NAME_LEN];

    agent_name(a->f, a->idx, name, sizeof(name));
    h.protocol_version = EPW_PROTOCOL_VERSION;
    h.capabilities = EPW_CAPS_THIS_BUILD;
    h.agent_version = (char *)"fleetsim";
    h.os = (char *)"Linux 6.1.0-fleetsim";
    h.hostname = name;
    h.platform = EPW__PLATFORM__LINUX;
    h.interval_ms = a->f->o.rate > 0 ? (uint64_t)(1000.0 * a->f->o.n / a->f->o.rate) : 1000;
    h.first_unacked_seq = a->acked + 1;
    env.msg_case = EPW__ENVELOPE__MSG_HELLO;
    env.hello = &h;
    (void)epw_conn_send(a->conn, &env);
}

static void on_ready(epw_conn_t *c, void *ud)
{
    agent_t *a = ud;

    (void)c;
    a->f->handshakes_ok++;
    send_hello(a);
}

static void on_hello_ack(agent_t *a, const Epw__HelloAck *ack)
{
    fleet_t *f = a->f;
    char name[NAME_LEN];

    if (ack->reject != EPW__REJECT_REASON__REJECT_NONE) {
        if ((unsigned)ack->reject < 8)
            f->rejects[ack->reject]++;
        return; /* the collector closes; on_close schedules the retry */
    }
    if (ack->last_seq < a->acked) {
        agent_name(f, a->idx, name, sizeof(name));
        f->lost_acked++;
        EPW_ERROR(SUB, "%s: collector reports last_seq %llu below acknowledged %llu", name,
                  (unsigned long long)ack->last_seq, (unsigned long long)a->acked);
    } else {
        a->acked = ack->last_seq;
    }
    a->fails = 0;
    if (a->next_seq > a->acked + 1)
        f->resends += a->next_seq - (a->acked + 1);
    a->next_seq = a->acked + 1;
    if (a->gap_seq > a->acked) {
        a->next_seq = a->gap_seq; /* the pending gap's seqs stay dropped */
    } else if (f->o.gap_frac > 0 && rnd01() < f->o.gap_frac) {
        gap_t *g = realloc(a->gaps, (a->n_gaps + 1) * sizeof(*g));
        if (g != NULL) {
            a->gaps = g;
            a->gap_dropped = 1 + rnd() % 20u;
            g[a->n_gaps].after = a->acked;
            g[a->n_gaps].dropped = a->gap_dropped;
            a->n_gaps++;
            a->gap_seq = a->acked + a->gap_dropped + 1;
            a->next_seq = a->gap_seq;
            f->gaps_made++;
        }
    }
    a->conn_first = a->next_seq;
    a->state = A_STREAMING;
    f->connecting--;
    f->streaming++;
    if (f->streaming > f->max_streaming)
        f->max_streaming = f->streaming;
    fill_window(a);
}

static void on_ack(agent_t *a, uint64_t seq)
{
    fleet_t *f = a->f;
    uint64_t now = uv_hrtime(), s, from;

    if (seq <= a->acked)
        return;
    if (seq >= a->next_seq) {
        EPW_ERROR(SUB, "agent %u: ack %llu beyond sent %llu", a->idx, (unsigned long long)seq,
                  (unsigned long long)(a->next_seq - 1));
        seq = a->next_seq - 1;
    }
    from = a->acked + 1 > a->conn_first ? a->acked + 1 : a->conn_first;
    if (seq >= RING && from < seq - RING + 1)
        from = seq - RING + 1;
    if (f->measuring)
        for (s = from; s <= seq; s++)
            fleet_hist_add(&f->lat, (now - a->ts[s % RING]) / 1000u);
    f->acked += seq - a->acked;
    if (f->measuring)
        f->acked_meas += seq - a->acked;
    a->acked = seq;
    fill_window(a);
}

static void on_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    agent_t *a = ud;

    (void)c;
    if (env->msg_case == EPW__ENVELOPE__MSG_HELLO_ACK && a->state == A_CONNECTING)
        on_hello_ack(a, env->hello_ack);
    else if (env->msg_case == EPW__ENVELOPE__MSG_ACK && a->state == A_STREAMING)
        on_ack(a, env->ack->seq);
    epw_frame_envelope_free(env);
}

static void on_drain(epw_conn_t *c, void *ud)
{
    (void)c;
    fill_window(ud);
}

static void on_close(epw_conn_t *c, int status, void *ud)
{
    agent_t *a = ud;
    fleet_t *f = a->f;
    uint64_t delay, d;

    (void)c;
    (void)status;
    if (a->state == A_STREAMING)
        f->streaming--;
    else if (a->state == A_CONNECTING) {
        f->connecting--;
        f->connect_fail++;
    }
    a->state = A_IDLE;
    a->conn = NULL;
    f->open--;
    f->closes++;
    if (a->storm) {
        delay = rnd() % 50u;
        a->storm = 0;
    } else {
        /* jittered exponential backoff, like the agent's uplink: 0.5..1.5 x 250 ms x 2^fails */
        d = (uint64_t)250u << (a->fails < 10 ? a->fails : 10);
        if (d > f->o.backoff_max_ms)
            d = f->o.backoff_max_ms;
        delay = d / 2u + rnd() % (d + 1u);
        a->fails++;
    }
    queue_push(f, a, delay);
}

static void agent_connect(fleet_t *f, agent_t *a)
{
    epw_conn_cbs_t cbs;
    epw_conn_opts_t co;
    char path[4096], name[NAME_LEN], ca[4096], key[4096];
    int rc;

    agent_name(f, a->idx, name, sizeof(name));
    if (a->tls == NULL) {
        snprintf(ca, sizeof(ca), "%s/ca.crt", f->o.certs);
        snprintf(key, sizeof(key), "%s/agent.key", f->o.certs);
        snprintf(path, sizeof(path), "%s/agents/%s.crt", f->o.certs, name);
        rc = epw_tls_config_create(EPW_TLS_CLIENT, ca, path, key, NULL, &a->tls);
        if (rc) {
            EPW_ERROR(SUB, "%s: TLS config: %s (run tests/bench/fleetcerts.sh?)", path,
                      epw_strerror(rc));
            f->connect_fail++;
            queue_push(f, a, 5000);
            return;
        }
    }
    memset(&cbs, 0, sizeof(cbs));
    cbs.on_ready = on_ready;
    cbs.on_envelope = on_envelope;
    cbs.on_drain = on_drain;
    cbs.on_close = on_close;
    cbs.ud = a;
    memset(&co, 0, sizeof(co));
    co.handshake_timeout_ms = 30000;
    co.linger_ms = 500;
    rc = epw_conn_connect(f->loop, a->tls, f->o.host, f->o.port, f->o.server_name,
                          f->src[a->idx % f->o.src_addrs], &co, &cbs, &a->conn);
    f->connects++;
    if (rc) {
        f->connect_fail++;
        queue_push(f, a, 1000);
        return;
    }
    a->state = A_CONNECTING;
    f->connecting++;
    f->open++;
}

/* ---- timers, signals, stopping -------------------------------------------------------------- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void stop_all(fleet_t *f)
{
    uint32_t i;

    if (f->stopping)
        return;
    f->stopping = 1;
    f->meas_end_ns = uv_hrtime();
    close_handle((uv_handle_t *)&f->tick);
    close_handle((uv_handle_t *)&f->status);
    close_handle((uv_handle_t *)&f->sig_int);
    close_handle((uv_handle_t *)&f->sig_term);
    close_handle((uv_handle_t *)&f->sig_usr1);
    for (i = 0; i < f->o.n; i++) {
        agent_t *a = &f->agents[i];
        if (a->conn == NULL || a->state == A_CLOSING)
            continue;
        if (a->state == A_STREAMING)
            f->streaming--;
        else if (a->state == A_CONNECTING)
            f->connecting--;
        a->state = A_CLOSING;
        epw_conn_close(a->conn, EPW_E_CLOSED);
    }
}

static void on_tick(uv_timer_t *t)
{
    fleet_t *f = t->data;
    uint64_t now = uv_now(f->loop);

    if ((double)(uv_hrtime() - f->t0_ns) >= f->o.duration_s * 1e9) {
        stop_all(f);
        return;
    }
    while (f->q_len > 0 && f->connecting < f->o.max_connecting) {
        agent_t *a = &f->agents[f->queue[f->q_head]];
        if (a->not_before > now)
            break;
        f->q_head = (f->q_head + 1) % f->o.n;
        f->q_len--;
        a->queued = 0;
        agent_connect(f, a);
    }
    maybe_start_measuring(f);
    if (f->o.rate > 0)
        rate_sends(f);
}

static void write_status(fleet_t *f)
{
    char tmp[4200];
    FILE *fp;
    uint64_t now = uv_hrtime();
    double dt = (double)(now - f->last_status_ns) / 1e9;
    double rate = dt > 0 ? (double)(f->acked - f->last_status_acked) / dt : 0;

    f->last_status_ns = now;
    f->last_status_acked = f->acked;
    if (!f->o.quiet)
        fprintf(stderr,
                "fleetsim: t=%5.1fs open=%zu streaming=%zu connecting=%zu sent=%llu acked=%llu "
                "(%.0f/s) closes=%llu\n",
                (double)(now - f->t0_ns) / 1e9, f->open, f->streaming, f->connecting,
                (unsigned long long)f->sent, (unsigned long long)f->acked, rate,
                (unsigned long long)f->closes);
    if (f->o.status_file == NULL)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->o.status_file);
    fp = fopen(tmp, "w");
    if (fp == NULL)
        return;
    fprintf(fp,
            "t=%.1f open=%zu streaming=%zu connecting=%zu sent=%llu acked=%llu rate=%.0f "
            "closes=%llu lost_acked=%llu\n",
            (double)(now - f->t0_ns) / 1e9, f->open, f->streaming, f->connecting,
            (unsigned long long)f->sent, (unsigned long long)f->acked, rate,
            (unsigned long long)f->closes, (unsigned long long)f->lost_acked);
    fclose(fp);
    rename(tmp, f->o.status_file);
}

static void on_status(uv_timer_t *t)
{
    write_status(t->data);
}

static void storm(fleet_t *f)
{
    uint32_t i, n = 0;

    f->storms++;
    for (i = 0; i < f->o.n; i++) {
        agent_t *a = &f->agents[i];
        if (a->state != A_STREAMING || rnd01() >= f->o.storm_frac)
            continue;
        a->storm = 1;
        a->state = A_CLOSING;
        f->streaming--;
        epw_conn_close(a->conn, EPW_E_CLOSED);
        n++;
    }
    if (!f->o.quiet)
        fprintf(stderr, "fleetsim: storm: %u connections dropped, reconnecting at once\n", n);
}

static void on_signal(uv_signal_t *s, int signum)
{
    fleet_t *f = s->data;

    if (signum == SIGUSR1)
        storm(f);
    else
        stop_all(f);
}

/* ---- results -------------------------------------------------------------------------------- */

static int write_acked_log(fleet_t *f)
{
    char name[NAME_LEN];
    FILE *fp;
    uint32_t i;
    size_t g;

    fp = fopen(f->o.acked_log, "w");
    if (fp == NULL) {
        fprintf(stderr, "fleetsim: %s: %s\n", f->o.acked_log, strerror(errno));
        return 1;
    }
    for (i = 0; i < f->o.n; i++) {
        agent_t *a = &f->agents[i];
        agent_name(f, i, name, sizeof(name));
        fprintf(fp, "A %s %llu\n", name, (unsigned long long)a->acked);
        for (g = 0; g < a->n_gaps; g++)
            if (a->gaps[g].after + a->gaps[g].dropped + 1 <= a->acked)
                fprintf(fp, "G %s %llu %llu\n", name, (unsigned long long)a->gaps[g].after,
                        (unsigned long long)a->gaps[g].dropped);
    }
    return fclose(fp) ? 1 : 0;
}

static void print_summary(fleet_t *f)
{
    double meas = f->measuring ? (double)(f->meas_end_ns - f->meas_start_ns) / 1e9 : 0;
    double rate = meas > 0 ? (double)f->acked_meas / meas : 0;
    double mean_size = f->sent ? (double)f->bytes_sent / (double)f->sent : 0;
    double p50 = (double)fleet_hist_quantile(&f->lat, 0.50) / 1000.0;
    double p99 = (double)fleet_hist_quantile(&f->lat, 0.99) / 1000.0;
    double p999 = (double)fleet_hist_quantile(&f->lat, 0.999) / 1000.0;
    double mx = (double)f->lat.max / 1000.0;
    uint64_t rej = 0;
    int i;

    for (i = 1; i < 8; i++)
        rej += f->rejects[i];
    if (f->o.json) {
        printf("{\"agents\":%u,\"max_streaming\":%zu,\"duration_s\":%.1f,\"measured_s\":%.2f,"
               "\"mode\":\"%s\",\"window\":%u,\"target_rate\":%.1f,"
               "\"sent\":%llu,\"acked\":%llu,\"acked_measured\":%llu,\"acked_per_s\":%.1f,"
               "\"mean_snapshot_bytes\":%.0f,\"latency_ms\":{\"samples\":%llu,\"p50\":%.3f,"
               "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},\"connects\":%llu,"
               "\"connect_failures\":%llu,\"handshakes\":%llu,\"closes\":%llu,\"rejects\":%llu,"
               "\"storms\":%llu,\"resent\":%llu,\"gaps\":%llu,\"skipped_full\":%llu,"
               "\"lost_acked\":%llu}\n",
               f->o.n, f->max_streaming, f->o.duration_s, meas, f->o.window ? "window" : "rate",
               f->o.window, f->o.rate, (unsigned long long)f->sent, (unsigned long long)f->acked,
               (unsigned long long)f->acked_meas, rate, mean_size, (unsigned long long)f->lat.n,
               p50, p99, p999, mx, (unsigned long long)f->connects,
               (unsigned long long)f->connect_fail, (unsigned long long)f->handshakes_ok,
               (unsigned long long)f->closes, (unsigned long long)rej,
               (unsigned long long)f->storms, (unsigned long long)f->resends,
               (unsigned long long)f->gaps_made, (unsigned long long)f->skipped_full,
               (unsigned long long)f->lost_acked);
        return;
    }
    printf("fleetsim: %u agents (%zu streaming at most), %.1f s run, %.1f s measured\n", f->o.n,
           f->max_streaming, f->o.duration_s, meas);
    if (f->o.window)
        printf("  mode: as fast as acks allow, window %u per agent\n", f->o.window);
    else
        printf("  mode: %.0f snapshots/s in total\n", f->o.rate);
    printf("  snapshots: sent %llu, acknowledged %llu (%llu measured): %.0f acked/s, mean %.0f "
           "bytes\n",
           (unsigned long long)f->sent, (unsigned long long)f->acked,
           (unsigned long long)f->acked_meas, rate, mean_size);
    printf("  ack latency (ms, %llu samples): p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
           (unsigned long long)f->lat.n, p50, p99, p999, mx);
    printf("  connections: %llu attempts, %llu failed, %llu handshakes, %llu closed, %llu "
           "rejected; storms %llu, resent %llu, gaps %llu, skipped (window full) %llu\n",
           (unsigned long long)f->connects, (unsigned long long)f->connect_fail,
           (unsigned long long)f->handshakes_ok, (unsigned long long)f->closes,
           (unsigned long long)rej, (unsigned long long)f->storms, (unsigned long long)f->resends,
           (unsigned long long)f->gaps_made, (unsigned long long)f->skipped_full);
    if (f->lost_acked)
        printf("  ERROR: %llu HelloAcks reported less than was acknowledged\n",
               (unsigned long long)f->lost_acked);
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: epwatch-fleetsim --certs DIR [options]\n"
            "  --certs DIR          ca.crt, agent.key, agents/<prefix><NNNNN>.crt "
            "(tests/bench/fleetcerts.sh)\n"
            "  --connect HOST:PORT  collector (default 127.0.0.1:7443)\n"
            "  --server-name NAME   DNS name to verify in the collector certificate (collector)\n"
            "  --agents N           simulated agents (default 100)\n"
            "  --first I            index of the first agent (to split a fleet over processes)\n"
            "  --prefix TEXT        host name prefix (default fleet-)\n"
            "  --window W           as fast as acks allow, W unacked snapshots per agent\n"
            "  --rate R             R snapshots/s in total\n"
            "  --interval-ms I      each agent every I ms\n"
            "  --duration S         stop after S seconds (default 30)\n"
            "  --warmup S           measure from S seconds after the start at the earliest "
            "(default 5)\n"
            "  --src-addrs K        spread over source addresses 127.0.0.2 .. 127.0.0.(K+1) "
            "(default 8)\n"
            "  --connecting C       TLS handshakes in flight at most (default 64)\n"
            "  --backoff-max-ms M   cap of the reconnect backoff (default 8000)\n"
            "  --storm-frac F       SIGUSR1 drops this fraction of connections (default 0.25)\n"
            "  --gap-frac F         fraction of reconnects that report a spool gap (default 0)\n"
            "  --acked-log FILE     at exit: 'A host acked' and 'G host after dropped' lines\n"
            "  --status FILE        rewritten every second with the current counters\n"
            "  --json               summary as one JSON object\n"
            "  --quiet              no progress on stderr\n");
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    static char host[256];
    int i;

    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = EPW_DEFAULT_AGENT_PORT;
    o->server_name = "collector";
    o->prefix = "fleet-";
    o->n = 100;
    o->duration_s = 30;
    o->warmup_s = 5;
    o->src_addrs = 8;
    o->max_connecting = 64;
    o->storm_frac = 0.25;
    o->backoff_max_ms = 8000;
    for (i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(k, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        if (strcmp(k, "--help") == 0 || strcmp(k, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            fprintf(stderr, "fleetsim: %s needs a value\n", k);
            return 2;
        }
        i++;
        if (strcmp(k, "--certs") == 0)
            o->certs = v;
        else if (strcmp(k, "--connect") == 0) {
            if (epw_parse_hostport(v, host, sizeof(host), &o->port)) {
                fprintf(stderr, "fleetsim: bad --connect '%s'\n", v);
                return 2;
            }
            o->host = host;
        } else if (strcmp(k, "--server-name") == 0)
            o->server_name = v;
        else if (strcmp(k, "--agents") == 0)
            o->n = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--first") == 0)
            o->first = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "--prefix") == 0)
            o->prefix = v;
        else if (strcmp(k, "--window") == 0)
            o->window = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "--rate") == 0)
            o->rate = strtod(v, NULL);
        else if (strcmp(k, "--interval-ms") == 0)
            o->rate = -strtod(v, NULL); /* resolved below, once N is known */
        else if (strcmp(k, "--duration") == 0)
            o->duration_s = strtod(v, NULL);
        else if (strcmp(k, "--warmup") == 0)
            o->warmup_s = strtod(v, NULL);
        else if (strcmp(k, "--src-addrs") == 0)
            o->src_addrs = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "--connecting") == 0)
            o->max_connecting = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(k, "--backoff-max-ms") == 0)
            o->backoff_max_ms = strtoull(v, NULL, 10);
        else if (strcmp(k, "--storm-frac") == 0)
            o->storm_frac = strtod(v, NULL);
        else if (strcmp(k, "--gap-frac") == 0)
            o->gap_frac = strtod(v, NULL);
        else if (strcmp(k, "--acked-log") == 0)
            o->acked_log = v;
        else if (strcmp(k, "--status") == 0)
            o->status_file = v;
        else {
            fprintf(stderr, "fleetsim: unknown option '%s' (see --help)\n", k);
            return 2;
        }
    }
    if (o->rate < 0)
        o->rate = 1000.0 * o->n / -o->rate;
    if (o->certs == NULL || o->n == 0 || o->duration_s <= 0 || o->src_addrs == 0 ||
        o->src_addrs > MAX_SRC || o->max_connecting == 0 || o->backoff_max_ms == 0 ||
        o->window > RING || (o->window == 0) == (o->rate <= 0)) {
        fprintf(stderr,
                "fleetsim: need --certs, N > 0, exactly one of --window (1..%u) or "
                "--rate/--interval-ms, --src-addrs 1..%u\n",
                RING, MAX_SRC);
        return 2;
    }
    return 0;
}

/* Raises the soft descriptor limit to what N connections need (one socket each, plus slack). */
static int raise_nofile(uint32_t n)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)n + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl))
        return -1;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max < need) {
        fprintf(stderr,
                "fleetsim: %u agents need %llu descriptors but the hard limit is %llu: split the "
                "fleet over several processes (--first/--agents)\n",
                n, (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

int main(int argc, char **argv)
{
    static fleet_t fl;
    fleet_t *f = &fl;
    uv_loop_t loop;
    uint32_t i;
    int rc, ret = 0;

    signal(SIGPIPE, SIG_IGN);
    rc = parse_args(argc, argv, &f->o);
    if (rc)
        return rc;
    if (raise_nofile(f->o.n))
        return 1;
    epw_log_set_level(EPW_LOG_ERROR);
    srandom((unsigned)(uv_hrtime() ^ (uint64_t)getpid()));
    for (i = 0; i < f->o.src_addrs; i++)
        snprintf(f->src[i], sizeof(f->src[i]), "127.0.0.%u", 2u + i);
    f->agents = calloc(f->o.n, sizeof(*f->agents));
    f->queue = calloc(f->o.n, sizeof(*f->queue));
    if (f->agents == NULL || f->queue == NULL) {
        fprintf(stderr, "fleetsim: out of memory\n");
        free(f->agents);
        free(f->queue);
        return 1;
    }
    uv_loop_init(&loop);
    f->loop = &loop;
    for (i = 0; i < f->o.n; i++) {
        f->agents[i].f = f;
        f->agents[i].idx = i;
        f->agents[i].next_seq = 1;
        queue_push(f, &f->agents[i], 0);
    }
    uv_timer_init(&loop, &f->tick);
    uv_timer_init(&loop, &f->status);
    f->tick.data = f->status.data = f;
    uv_signal_init(&loop, &f->sig_int);
    uv_signal_init(&loop, &f->sig_term);
    uv_signal_init(&loop, &f->sig_usr1);
    f->sig_int.data = f->sig_term.data = f->sig_usr1.data = f;
    uv_signal_start(&f->sig_int, on_signal, SIGINT);
    uv_signal_start(&f->sig_term, on_signal, SIGTERM);
    uv_signal_start(&f->sig_usr1, on_signal, SIGUSR1);
    f->t0_ns = f->last_status_ns = uv_hrtime();
    uv_timer_start(&f->tick, on_tick, 0, TICK_MS);
    uv_timer_start(&f->status, on_status, 1000, 1000);
    uv_run(&loop, UV_RUN_DEFAULT);

    print_summary(f);
    if (f->o.acked_log != NULL && write_acked_log(f))
        ret = 1;
    if (f->lost_acked)
        ret = 3;
    for (i = 0; i < f->o.n; i++) {
        epw_tls_config_destroy(f->agents[i].tls);
        free(f->agents[i].gaps);
    }
    if (uv_loop_close(&loop)) {
        fprintf(stderr, "fleetsim: handles left open at exit\n");
        ret = ret ? ret : 1;
    }
    free(f->agents);
    free(f->queue);
    return ret;
}
