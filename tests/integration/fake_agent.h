/* fake_agent: a scripted agent on epw_conn (client side) and raw TCP/TLS clients, for collector
 * tests. */
#ifndef FAKE_AGENT_H
#define FAKE_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "epw_conn.h"
#include "epw_tls.h"

/*
 * Loop thread only. A fake agent connects with its own TLS client config, sends Hello (unless
 * told not to) and, once a HelloAck without reject arrives, streams snapshots first..last
 * (`per_tick` per 1 ms timer tick, 0 = all at once). With resume = 1 it starts after the
 * HelloAck's last_seq instead, like a real agent draining its spool.
 */
typedef struct fake_agent_s {
    /* set before fake_agent_connect */
    const char *hello_host; /* Hello.hostname */
    uint32_t version;       /* Hello.protocol_version; 0: EPW_PROTOCOL_VERSION */
    int no_hello;
    uint64_t first, last; /* seqs to send */
    int resume;
    unsigned per_tick;
    uint64_t dropped_before; /* put on the first snapshot sent */
    size_t pad;              /* extra bytes (a note) in each snapshot */
    epw_conn_opts_t opts;
    /* results */
    int ready, closed, close_status;
    int got_hello_ack, reject;
    uint64_t hello_last_seq;
    uint64_t acked, nacks, next, sent;
    /* private */
    uv_loop_t *loop;
    epw_tls_config_t *tls;
    epw_conn_t *conn;
    uv_timer_t tick;
    int tick_init;
} fake_agent_t;

/* cert/key NULL: no client certificate. Returns 0 or an epw error. */
int fake_agent_init(fake_agent_t *a, uv_loop_t *loop, const char *ca, const char *cert,
                    const char *key);
int fake_agent_connect(fake_agent_t *a, uint16_t port);
/* Streams seqs from..last now (after the HelloAck); a->first (if set) is the lowest seq and
 * carries dropped_before. */
void fake_agent_stream(fake_agent_t *a, uint64_t from, uint64_t last);
/* Sends one snapshot now (after the handshake). */
int fake_agent_send(fake_agent_t *a, uint64_t seq, uint64_t dropped_before);
void fake_agent_close(fake_agent_t *a);
/* After the connection is closed (or never made): releases the TLS config and the timer. */
void fake_agent_release(fake_agent_t *a);

/* A raw client: connects, sends `data` (plain TCP, or through TLS after the handshake when
 * tls != NULL), then waits for the server to close. */
typedef struct raw_client_s {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    epw_tls_t *tls;
    const uint8_t *data;
    size_t len;
    int sent, closed, eof, handshake_failed;
    uint8_t rbuf[16384];
    uint8_t *wbuf;
} raw_client_t;

int raw_client_start(raw_client_t *r, uv_loop_t *loop, uint16_t port, epw_tls_config_t *tls,
                     const uint8_t *data, size_t len);
void raw_client_close(raw_client_t *r);

/* Runs the loop until *flag becomes non-zero or timeout_ms passes; returns *flag. */
int run_until(uv_loop_t *loop, const int *flag, uint64_t timeout_ms);
/* Same with a predicate. */
int run_until_fn(uv_loop_t *loop, int (*pred)(void *), void *ud, uint64_t timeout_ms);

#endif
