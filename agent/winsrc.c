/* winsrc: the pure parts of the Windows sampler (row conversion, names, range fallback, events). */
#include "epw_attr.h"
#include "winsrc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_snap.h"

sockrow_state_t winsrc_tcp_state(uint32_t st)
{
    /* MIB_TCP_STATE_CLOSED = 1 ... MIB_TCP_STATE_DELETE_TCB = 12, in the same order as ours. */
    static const sockrow_state_t map[13] = {
        SOCKROW_ST_OTHER,      SOCKROW_ST_CLOSED,      SOCKROW_ST_LISTEN,    SOCKROW_ST_SYN_SENT,
        SOCKROW_ST_SYN_RECV,   SOCKROW_ST_ESTABLISHED, SOCKROW_ST_FIN_WAIT1, SOCKROW_ST_FIN_WAIT2,
        SOCKROW_ST_CLOSE_WAIT, SOCKROW_ST_CLOSING,     SOCKROW_ST_LAST_ACK,  SOCKROW_ST_TIME_WAIT,
        SOCKROW_ST_DELETE_TCB,
    };

    return st < 13 ? map[st] : SOCKROW_ST_OTHER;
}

uint16_t winsrc_port(uint32_t field)
{
    /* The port's two wire bytes sit first in the DWORD's memory; Windows is little-endian, so
     * the value's low byte is the port's high byte. Written on the value (not ntohs) so the
     * unit tests mean the same on any host. */
    return (uint16_t)(((field & 0xFFu) << 8) | ((field >> 8) & 0xFFu));
}

/* The DWORD holds the address bytes in memory order: copy the memory, not the value. */
static void winsrc__addr4(uint8_t dst[16], const uint32_t *field)
{
    memcpy(dst, field, 4);
}

static void winsrc__row(sockrow_t *r, sockrow_proto_t proto, int family, uint32_t pid)
{
    memset(r, 0, sizeof(*r));
    r->proto = (uint8_t)proto;
    r->family = (uint8_t)family;
    r->pid = pid;
    r->flags = SOCKROW_F_PID_KNOWN;
}

static void winsrc__tcp_ports(sockrow_t *r, uint32_t lport, uint32_t rport)
{
    r->lport = winsrc_port(lport);
    /* A listener's remote port field is garbage on some versions. */
    if (r->state != SOCKROW_ST_LISTEN && r->state != SOCKROW_ST_BOUND)
        r->rport = winsrc_port(rport);
}

static void winsrc__convert_one(winsrc_table_t kind, const void *rows, size_t i, sockrow_t *r)
{
    switch (kind) {
    case WINSRC_TCP4: {
        const winsrc_tcp4_t *t = (const winsrc_tcp4_t *)rows + i;

        winsrc__row(r, SOCKROW_TCP, 4, t->pid);
        winsrc__addr4(r->laddr, &t->laddr);
        winsrc__addr4(r->raddr, &t->raddr);
        r->state = (uint8_t)winsrc_tcp_state(t->state);
        winsrc__tcp_ports(r, t->lport, t->rport);
        break;
    }
    case WINSRC_BOUND4: {
        /* Only the local end means anything: the socket is neither connected nor listening. */
        const winsrc_btcp4_t *b = (const winsrc_btcp4_t *)rows + i;

        winsrc__row(r, SOCKROW_TCP, 4, b->pid);
        winsrc__addr4(r->laddr, &b->laddr);
        r->state = SOCKROW_ST_BOUND;
        winsrc__tcp_ports(r, b->lport, 0);
        break;
    }
    case WINSRC_TCP6: {
        const winsrc_tcp6_t *t = (const winsrc_tcp6_t *)rows + i;

        winsrc__row(r, SOCKROW_TCP, 6, t->pid);
        memcpy(r->laddr, t->laddr, 16);
        memcpy(r->raddr, t->raddr, 16);
        r->state = (uint8_t)winsrc_tcp_state(t->state);
        winsrc__tcp_ports(r, t->lport, t->rport);
        break;
    }
    case WINSRC_BOUND6: {
        const winsrc_btcp6_t *b = (const winsrc_btcp6_t *)rows + i;

        winsrc__row(r, SOCKROW_TCP, 6, b->pid);
        memcpy(r->laddr, b->laddr, 16);
        r->state = SOCKROW_ST_BOUND;
        winsrc__tcp_ports(r, b->lport, 0);
        break;
    }
    case WINSRC_UDP4: {
        const winsrc_udp4_t *u = (const winsrc_udp4_t *)rows + i;

        winsrc__row(r, SOCKROW_UDP, 4, u->pid);
        winsrc__addr4(r->laddr, &u->laddr);
        r->lport = winsrc_port(u->lport);
        break;
    }
    case WINSRC_UDP6: {
        const winsrc_udp6_t *u = (const winsrc_udp6_t *)rows + i;

        winsrc__row(r, SOCKROW_UDP, 6, u->pid);
        memcpy(r->laddr, u->laddr, 16);
        r->lport = winsrc_port(u->lport);
        break;
    }
    }
}

int winsrc_convert(winsrc_table_t kind, const void *rows, size_t n, winsrc_row_cb cb, void *ud,
                   size_t *n_done)
{
    sockrow_t r;
    size_t i = 0;
    int rc = 0;

    if (n_done)
        *n_done = 0;
    if (!cb || (n && !rows) || kind < WINSRC_TCP4 || kind > WINSRC_BOUND6)
        return UV_EINVAL;
    for (i = 0; i < n; i++) {
        winsrc__convert_one(kind, rows, i, &r);
        rc = cb(ud, &r);
        if (rc)
            break;
    }
    if (n_done)
        *n_done = i;
    return rc;
}

int winsrc_bound_check(winsrc_table_t kind, const void *rows, size_t n, size_t avail, char *why,
                       size_t whylen)
{
    /* The tables are a DWORD count followed by the rows (4-byte aligned, so no padding). */
    size_t rowsz = kind == WINSRC_BOUND4 ? sizeof(winsrc_btcp4_t) : sizeof(winsrc_btcp6_t);
    size_t i;

    if (whylen)
        why[0] = '\0';
    if (kind != WINSRC_BOUND4 && kind != WINSRC_BOUND6) {
        snprintf(why, whylen, "not a BOUND table");
        return UV_EINVAL;
    }
    if (n > (SIZE_MAX - 4) / rowsz || avail < 4 + n * rowsz) {
        snprintf(why, whylen, "%zu rows do not fit in the %zu bytes returned", n, avail);
        return EPW_E_PARSE;
    }
    for (i = 0; i < n; i++) {
        uint32_t lport, rport, pid;

        if (kind == WINSRC_BOUND4) {
            const winsrc_btcp4_t *b = (const winsrc_btcp4_t *)rows + i;

            lport = b->lport, rport = b->rport, pid = b->pid;
        } else {
            const winsrc_btcp6_t *b = (const winsrc_btcp6_t *)rows + i;

            lport = b->lport, rport = b->rport, pid = b->pid;
        }
        if ((lport & 0xFFFF0000u) || (lport & 0xFFFFu) == 0 || (rport & 0xFFFF0000u) ||
            (pid & 3u)) {
            snprintf(why, whylen,
                     "row %zu is not as expected (port fields 0x%08lx/0x%08lx, pid %lu)", i,
                     (unsigned long)lport, (unsigned long)rport, (unsigned long)pid);
            return EPW_E_PARSE;
        }
    }
    return 0;
}

void winsrc_name(uint32_t pid, winsrc_name_fn lookup, void *ud, char *buf, size_t len)
{
    if (!buf || !len)
        return;
    if (pid == 0) {
        snprintf(buf, len, "Idle");
        return;
    }
    if (pid == SOCKROW_PID_SYSTEM_WIN) {
        snprintf(buf, len, "System");
        return;
    }
    buf[0] = '\0';
    if (lookup && lookup(ud, pid, buf, len) == 0 && buf[0] != '\0') {
        buf[len - 1] = '\0'; /* whatever the resolver did */
        return;
    }
    snprintf(buf, len, "[pid %lu]", (unsigned long)pid);
}

/* ---- dynamic port ranges ------------------------------------------------------------------ */

int winsrc_range_index(sockrow_proto_t proto, int family)
{
    if ((proto != SOCKROW_TCP && proto != SOCKROW_UDP) || (family != 4 && family != 6))
        return -1;
    return (proto == SOCKROW_UDP ? 2 : 0) + (family == 6 ? 1 : 0);
}

static const char *const winsrc__range_label[WINSRC_NRANGES] = {"tcp/ipv4", "tcp/ipv6", "udp/ipv4",
                                                                "udp/ipv6"};

void winsrc_range_default(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans)
{
    int i;

    (void)ud;
    for (i = 0; i < WINSRC_NRANGES; i++) {
        if (!want[i])
            continue;
        ans->start[i] = WINSRC_DEFAULT_START;
        ans->count[i] = WINSRC_DEFAULT_COUNT;
        ans->have[i] = 1;
    }
}

int winsrc_range_valid(uint32_t start, uint32_t count)
{
    return start >= 1025 && count >= 255 && count <= 65536u && start <= 65536u - count;
}

/* Appends printf output to buf[*pos..len), truncating silently (notes are bounded). */
static void winsrc__cat(char *buf, size_t len, size_t *pos, const char *fmt, ...) EPW_PRINTF(4, 5);

static void winsrc__cat(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*pos >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *pos += (size_t)n < len - *pos ? (size_t)n : len - *pos - 1;
}

#define WINSRC__STORY 512

/*
 * The story of range i: which sources failed and why, then what was used. Empty when the first
 * source answered (nothing to explain).
 */
static void winsrc__story(const winsrc_range_source_t *srcs, size_t used, size_t nsrc,
                          const winsrc_ranges_t *out, int i, char (*whys)[WINSRC_NRANGES][96],
                          char *buf, size_t len)
{
    size_t k, pos = 0, nfail = used < nsrc ? used : nsrc;

    buf[0] = '\0';
    if (used == 0)
        return;
    for (k = 0; k < nfail; k++)
        winsrc__cat(buf, len, &pos, "%s%s", k == 0 ? "" : (k + 1 == nfail ? " and " : ", "),
                    srcs[k].name);
    winsrc__cat(buf, len, &pos, " unavailable (");
    for (k = 0; k < nfail; k++)
        winsrc__cat(buf, len, &pos, "%s%s: %s", k ? "; " : "", srcs[k].name,
                    whys[k][i][0] ? whys[k][i] : "no answer");
    winsrc__cat(buf, len, &pos, "); ");
    if (used >= nsrc)
        winsrc__cat(buf, len, &pos, "range unknown");
    else if (out->source[i] == EPW__RANGE_SOURCE__RANGE_DEFAULT)
        winsrc__cat(buf, len, &pos, "assumed Windows default %lu-%lu", (unsigned long)out->start[i],
                    (unsigned long)(out->start[i] + out->count[i] - 1));
    else
        winsrc__cat(buf, len, &pos, "from %s: %lu-%lu", srcs[used].name,
                    (unsigned long)out->start[i],
                    (unsigned long)(out->start[i] + out->count[i] - 1));
}

int winsrc_ranges_resolve(const winsrc_range_source_t *srcs, size_t n, winsrc_ranges_t *out,
                          Epw__Snapshot *notes)
{
    winsrc_answer_t *ans = NULL;
    char(*whys)[WINSRC_NRANGES][96] = NULL; /* whys[source][range] */
    char(*story)[WINSRC__STORY] = NULL;
    size_t used[WINSRC_NRANGES], k;
    uint8_t want[WINSRC_NRANGES], emitted[WINSRC_NRANGES];
    int i, j, missing = WINSRC_NRANGES, rc = 0;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!out || !notes || (n && !srcs))
        return UV_EINVAL;
    ans = malloc(sizeof(*ans));
    whys = calloc(n ? n : 1, sizeof(*whys));
    story = calloc(WINSRC_NRANGES, sizeof(*story));
    if (!ans || !whys || !story) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (i = 0; i < WINSRC_NRANGES; i++) {
        want[i] = 1;
        used[i] = n; /* n: no source answered */
    }
    for (k = 0; k < n && missing > 0; k++) {
        memset(ans, 0, sizeof(*ans));
        if (srcs[k].fn)
            srcs[k].fn(srcs[k].ud, want, ans);
        for (i = 0; i < WINSRC_NRANGES; i++) {
            if (!want[i])
                continue;
            if (ans->have[i] && !winsrc_range_valid(ans->start[i], ans->count[i])) {
                snprintf(whys[k][i], sizeof(whys[k][i]), "invalid range %lu+%lu",
                         (unsigned long)ans->start[i], (unsigned long)ans->count[i]);
                continue;
            }
            if (!ans->have[i]) {
                memcpy(whys[k][i], ans->why[i], sizeof(whys[k][i]));
                whys[k][i][sizeof(whys[k][i]) - 1] = '\0';
                continue;
            }
            out->start[i] = ans->start[i];
            out->count[i] = ans->count[i];
            out->source[i] = srcs[k].source;
            used[i] = k;
            want[i] = 0;
            missing--;
        }
    }
    for (i = 0; i < WINSRC_NRANGES; i++) {
        winsrc__story(srcs, used[i], n, out, i, whys, story[i], sizeof(story[i]));
        emitted[i] = story[i][0] == '\0';
    }
    /* One note per distinct story; it names its ranges unless it tells all four. */
    for (i = 0; i < WINSRC_NRANGES; i++) {
        char label[64];
        size_t pos = 0;
        int members = 0;

        if (emitted[i])
            continue;
        label[0] = '\0';
        for (j = i; j < WINSRC_NRANGES; j++) {
            if (emitted[j] || strcmp(story[i], story[j]) != 0)
                continue;
            winsrc__cat(label, sizeof(label), &pos, "%s%s", members ? ", " : "",
                        winsrc__range_label[j]);
            members++;
            if (j != i)
                emitted[j] = 1;
        }
        emitted[i] = 1;
        if (members == WINSRC_NRANGES)
            rc = epw_snap_add_note(notes, "dynamic port range: %s", story[i]);
        else
            rc = epw_snap_add_note(notes, "dynamic port range (%s): %s", label, story[i]);
        if (rc)
            goto out;
    }
    if (missing)
        rc = EPW_E_UNAVAILABLE;
out:
    free(ans);
    free(whys);
    free(story);
    return rc;
}

/* ---- exhaustion events -------------------------------------------------------------------- */

/* FILETIME of 1970-01-01T00:00:00Z. */
#define WINSRC__FT_EPOCH 116444736000000000ull

int64_t winsrc_filetime_ms(uint64_t ft)
{
    if (ft < WINSRC__FT_EPOCH)
        return 0;
    return (int64_t)((ft - WINSRC__FT_EPOCH) / 10000u);
}

static const uint32_t winsrc__event_ids[3] = {WINSRC_EV_TIME_WAIT_REUSE, WINSRC_EV_TCP_EXHAUSTED,
                                              WINSRC_EV_UDP_EXHAUSTED};

typedef struct winsrc__evslot_s {
    uint32_t count;
    int64_t first_ms;
    int64_t last_ms;
} winsrc__evslot_t;

struct winsrc_events_s {
    uv_mutex_t lock; /* guards everything below: adds come from the event log's pool thread */
    winsrc__evslot_t slot[3];
    uint32_t ignored;
    uint32_t errors;
    uint32_t last_error;
};

int winsrc_events_create(winsrc_events_t **out)
{
    winsrc_events_t *ev;

    if (!out)
        return UV_EINVAL;
    *out = NULL;
    ev = calloc(1, sizeof(*ev));
    if (!ev)
        return UV_ENOMEM;
    if (uv_mutex_init(&ev->lock) != 0) {
        free(ev);
        return UV_ENOMEM;
    }
    *out = ev;
    return 0;
}

void winsrc_events_destroy(winsrc_events_t *ev)
{
    if (!ev)
        return;
    uv_mutex_destroy(&ev->lock);
    free(ev);
}

void winsrc_events_add(winsrc_events_t *ev, uint32_t event_id, int64_t time_ms)
{
    winsrc__evslot_t *s = NULL;
    int i;

    if (!ev)
        return;
    for (i = 0; i < 3; i++)
        if (winsrc__event_ids[i] == event_id)
            s = &ev->slot[i];
    uv_mutex_lock(&ev->lock);
    if (!s) {
        if (ev->ignored < UINT32_MAX)
            ev->ignored++;
    } else {
        /* Delivery order is not time order (a resumed subscription, clock steps): keep bounds. */
        if (s->count == 0 || time_ms < s->first_ms)
            s->first_ms = time_ms;
        if (s->count == 0 || time_ms > s->last_ms)
            s->last_ms = time_ms;
        if (s->count < UINT32_MAX)
            s->count++;
    }
    uv_mutex_unlock(&ev->lock);
}

void winsrc_events_error(winsrc_events_t *ev, uint32_t code)
{
    if (!ev)
        return;
    uv_mutex_lock(&ev->lock);
    if (ev->errors < UINT32_MAX)
        ev->errors++;
    ev->last_error = code;
    uv_mutex_unlock(&ev->lock);
}

int winsrc_events_drain(winsrc_events_t *ev, Epw__Snapshot *snap)
{
    Epw__ExhaustionEvent *e;
    int i, rc = 0;

    if (!ev || !snap)
        return UV_EINVAL;
    uv_mutex_lock(&ev->lock);
    for (i = 0; i < 3; i++) {
        if (ev->slot[i].count == 0)
            continue;
        e = EPW_SNAP_APPEND(snap, events, epw__exhaustion_event__init);
        if (!e) {
            rc = UV_ENOMEM;
            goto out;
        }
        e->event_id = winsrc__event_ids[i];
        e->count = ev->slot[i].count;
        e->first_ms = ev->slot[i].first_ms;
        e->last_ms = ev->slot[i].last_ms;
    }
    if (ev->errors) {
        rc = epw_snap_add_note(snap,
                               "event log: the subscription reported %lu error(s), last %lu "
                               "(events may have been missed)",
                               (unsigned long)ev->errors, (unsigned long)ev->last_error);
        if (rc)
            goto out;
    }
    if (ev->ignored) {
        rc = epw_snap_add_note(snap, "event log: %lu event(s) with an unexpected ID ignored",
                               (unsigned long)ev->ignored);
        if (rc)
            goto out;
    }
    memset(ev->slot, 0, sizeof(ev->slot));
    ev->ignored = ev->errors = ev->last_error = 0;
out:
    uv_mutex_unlock(&ev->lock);
    return rc;
}
