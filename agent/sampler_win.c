/* sampler_win: the Windows sampler: the IP Helper socket tables analysed with the Windows model. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <iphlpapi.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "analysis.h"
#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_util.h"
#include "sampler.h"
#include "sockrow.h"

#define SAMPLER__SUB "sampler"
/* The documented default dynamic range since Vista (netsh ... show dynamicportrange). */
#define SAMPLER__WIN_DEFAULT_START 49152u
#define SAMPLER__WIN_DEFAULT_COUNT 16384u
/* TcpTimedWaitDelay when the registry value is absent (Microsoft's pages say 120 or 240). */
#define SAMPLER__TIME_WAIT_DEFAULT_S 120u
/* Tables grow between the size query and the copy: ask again this many times. */
#define SAMPLER__TABLE_TRIES 5

struct sampler_s {
    sampler_opts_t opts;
};

/* One dynamic range per protocol, as Windows keeps them (IPv4 and IPv6 share the pool). */
typedef struct sampler__ranges_s {
    uint32_t start[2]; /* [0] TCP, [1] UDP */
    uint32_t count[2];
    Epw__RangeSource source;
} sampler__ranges_t;

/*
 * A source of the dynamic port range. Returns 0 and fills *r, or a negative code when it has no
 * answer; `why` then says why in a few words for the snapshot's notes. Tried in table order.
 */
typedef int (*sampler__range_fn)(sampler_t *s, sampler__ranges_t *r, char *why, size_t whylen);

static int sampler__range_default(sampler_t *s, sampler__ranges_t *r, char *why, size_t whylen)
{
    int i;

    (void)s;
    (void)why;
    (void)whylen;
    for (i = 0; i < 2; i++) {
        r->start[i] = SAMPLER__WIN_DEFAULT_START;
        r->count[i] = SAMPLER__WIN_DEFAULT_COUNT;
    }
    r->source = EPW__RANGE_SOURCE__RANGE_DEFAULT;
    return 0;
}

/* WMI (MSFT_NetTCPSetting / MSFT_NetUDPSetting) and netsh come first once they exist; the
 * default is the last resort and always answers. */
static const struct {
    const char *name;
    sampler__range_fn fn;
} sampler__range_sources[] = {
    {"default", sampler__range_default},
};

static int sampler__ranges(sampler_t *s, analysis_t *an, Epw__Snapshot *notes)
{
    static const sockrow_proto_t protos[2] = {SOCKROW_TCP, SOCKROW_UDP};
    sampler__ranges_t r;
    char why[128];
    size_t i;
    int rc = UV_ENOENT, p, fam;

    memset(&r, 0, sizeof(r));
    for (i = 0; i < sizeof(sampler__range_sources) / sizeof(sampler__range_sources[0]); i++) {
        why[0] = '\0';
        rc = sampler__range_sources[i].fn(s, &r, why, sizeof(why));
        if (rc == 0)
            break;
        EPW_DEBUG(SAMPLER__SUB, "range source %s: %s", sampler__range_sources[i].name, why);
    }
    if (rc)
        return rc;
    if (r.source == EPW__RANGE_SOURCE__RANGE_DEFAULT) {
        rc = epw_snap_add_note(notes,
                               "dynamic port range: WMI and netsh unavailable, assumed "
                               "Windows default %u-%u",
                               (unsigned)r.start[0], (unsigned)(r.start[0] + r.count[0] - 1));
        if (rc)
            return rc;
    }
    for (p = 0; p < 2; p++) {
        for (fam = 4; fam <= 6; fam += 2) {
            rc = analysis_set_range(an, protos[p], fam, r.start[p], r.count[p], r.source);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* MIB_TCP_STATE_* (1-12) in the neutral vocabulary. */
static sockrow_state_t sampler__tcp_state(DWORD st)
{
    switch (st) {
    case MIB_TCP_STATE_CLOSED:
        return SOCKROW_ST_CLOSED;
    case MIB_TCP_STATE_LISTEN:
        return SOCKROW_ST_LISTEN;
    case MIB_TCP_STATE_SYN_SENT:
        return SOCKROW_ST_SYN_SENT;
    case MIB_TCP_STATE_SYN_RCVD:
        return SOCKROW_ST_SYN_RECV;
    case MIB_TCP_STATE_ESTAB:
        return SOCKROW_ST_ESTABLISHED;
    case MIB_TCP_STATE_FIN_WAIT1:
        return SOCKROW_ST_FIN_WAIT1;
    case MIB_TCP_STATE_FIN_WAIT2:
        return SOCKROW_ST_FIN_WAIT2;
    case MIB_TCP_STATE_CLOSE_WAIT:
        return SOCKROW_ST_CLOSE_WAIT;
    case MIB_TCP_STATE_CLOSING:
        return SOCKROW_ST_CLOSING;
    case MIB_TCP_STATE_LAST_ACK:
        return SOCKROW_ST_LAST_ACK;
    case MIB_TCP_STATE_TIME_WAIT:
        return SOCKROW_ST_TIME_WAIT;
    case MIB_TCP_STATE_DELETE_TCB:
        return SOCKROW_ST_DELETE_TCB;
    default:
        return SOCKROW_ST_OTHER;
    }
}

/* The tables hold ports in network byte order in the low 16 bits of a DWORD. */
static uint16_t sampler__port(DWORD p)
{
    return ntohs((u_short)(p & 0xFFFFu));
}

/*
 * Fetches one table into a malloc'd buffer (*out, free()). The size query and the copy race with
 * new sockets, so the buffer gets headroom and the call is retried when it still comes up short.
 */
static int sampler__table(int tcp, ULONG af, void **out)
{
    void *buf = NULL;
    DWORD size = 0, ret = ERROR_INSUFFICIENT_BUFFER;
    int tries, rc = 0;

    *out = NULL;
    for (tries = 0; tries < SAMPLER__TABLE_TRIES; tries++) {
        if (tcp)
            ret = GetExtendedTcpTable(buf, &size, FALSE, af, TCP_TABLE_OWNER_PID_ALL, 0);
        else
            ret = GetExtendedUdpTable(buf, &size, FALSE, af, UDP_TABLE_OWNER_PID, 0);
        if (ret == NO_ERROR && buf)
            break;
        if (ret != NO_ERROR && ret != ERROR_INSUFFICIENT_BUFFER)
            break;
        free(buf);
        size += size / 4 + 4096;
        buf = malloc(size);
        if (!buf) {
            rc = UV_ENOMEM;
            goto out;
        }
    }
    if (ret == ERROR_INSUFFICIENT_BUFFER)
        rc = UV_ENOBUFS; /* still growing after every retry */
    else if (ret != NO_ERROR)
        rc = uv_translate_sys_error((int)ret);
    if (rc)
        goto out;
    *out = buf;
    buf = NULL;
out:
    free(buf);
    return rc;
}

static void sampler__row_init(sockrow_t *r, sockrow_proto_t proto, int family, DWORD pid)
{
    memset(r, 0, sizeof(*r));
    r->proto = (uint8_t)proto;
    r->family = (uint8_t)family;
    r->pid = (uint32_t)pid;
    /* The tables always report an owner: PID 0 there means the idle/unknown owner of TIME_WAIT. */
    r->flags = SOCKROW_F_PID_KNOWN;
}

/* Streams one table into the analysis. *nrows counts the rows added. */
static int sampler__add_table(analysis_t *an, int tcp, int family, const void *table,
                              uint32_t *nrows)
{
    sockrow_t r;
    DWORD i, n;
    int rc = 0;

    if (tcp && family == 4) {
        const MIB_TCPTABLE_OWNER_PID *t = table;

        n = t->dwNumEntries;
        for (i = 0; i < n && rc == 0; i++) {
            const MIB_TCPROW_OWNER_PID *row = &t->table[i];

            sampler__row_init(&r, SOCKROW_TCP, 4, row->dwOwningPid);
            r.state = (uint8_t)sampler__tcp_state(row->dwState);
            memcpy(r.laddr, &row->dwLocalAddr, 4);
            memcpy(r.raddr, &row->dwRemoteAddr, 4);
            r.lport = sampler__port(row->dwLocalPort);
            /* A listener's remote port is garbage on some versions: keep it zero. */
            if (r.state != SOCKROW_ST_LISTEN)
                r.rport = sampler__port(row->dwRemotePort);
            rc = analysis_add(an, &r);
        }
    } else if (tcp) {
        const MIB_TCP6TABLE_OWNER_PID *t = table;

        n = t->dwNumEntries;
        for (i = 0; i < n && rc == 0; i++) {
            const MIB_TCP6ROW_OWNER_PID *row = &t->table[i];

            sampler__row_init(&r, SOCKROW_TCP, 6, row->dwOwningPid);
            r.state = (uint8_t)sampler__tcp_state(row->dwState);
            memcpy(r.laddr, row->ucLocalAddr, 16);
            memcpy(r.raddr, row->ucRemoteAddr, 16);
            r.lport = sampler__port(row->dwLocalPort);
            if (r.state != SOCKROW_ST_LISTEN)
                r.rport = sampler__port(row->dwRemotePort);
            rc = analysis_add(an, &r);
        }
    } else if (family == 4) {
        const MIB_UDPTABLE_OWNER_PID *t = table;

        n = t->dwNumEntries;
        for (i = 0; i < n && rc == 0; i++) {
            const MIB_UDPROW_OWNER_PID *row = &t->table[i];

            sampler__row_init(&r, SOCKROW_UDP, 4, row->dwOwningPid);
            memcpy(r.laddr, &row->dwLocalAddr, 4);
            r.lport = sampler__port(row->dwLocalPort);
            rc = analysis_add(an, &r);
        }
    } else {
        const MIB_UDP6TABLE_OWNER_PID *t = table;

        n = t->dwNumEntries;
        for (i = 0; i < n && rc == 0; i++) {
            const MIB_UDP6ROW_OWNER_PID *row = &t->table[i];

            sampler__row_init(&r, SOCKROW_UDP, 6, row->dwOwningPid);
            memcpy(r.laddr, row->ucLocalAddr, 16);
            r.lport = sampler__port(row->dwLocalPort);
            rc = analysis_add(an, &r);
        }
    }
    *nrows += (uint32_t)i;
    return rc;
}

/*
 * Process names for the top PIDs: the image's file name in UTF-8. PIDs 0 and 4 are never opened
 * (they are not real processes); anything that cannot be opened (access denied, exited) keeps the
 * "[pid N]" placeholder.
 */
static void sampler__name(void *ud, uint32_t pid, char *buf, size_t len)
{
    WCHAR path[MAX_PATH * 2];
    DWORD plen = (DWORD)(sizeof(path) / sizeof(path[0]));
    const WCHAR *base;
    HANDLE h;
    int n;

    (void)ud;
    if (!len)
        return;
    if (pid == 0) {
        snprintf(buf, len, "Idle");
        return;
    }
    if (pid == SOCKROW_PID_SYSTEM_WIN) {
        snprintf(buf, len, "System");
        return;
    }
    snprintf(buf, len, "[pid %lu]", (unsigned long)pid);
    h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (!h)
        return;
    if (QueryFullProcessImageNameW(h, 0, path, &plen) && plen > 0) {
        base = wcsrchr(path, L'\\');
        base = base ? base + 1 : path;
        n = WideCharToMultiByte(CP_UTF8, 0, base, -1, buf, (int)(len > INT32_MAX ? INT32_MAX : len),
                                NULL, NULL);
        if (n <= 0) /* too long or unconvertible: back to the placeholder */
            snprintf(buf, len, "[pid %lu]", (unsigned long)pid);
    }
    CloseHandle(h);
}

/* TcpTimedWaitDelay from the registry, or the default. */
static void sampler__time_wait(Epw__TimeWait *tw)
{
    DWORD v = 0, sz = sizeof(v);
    LSTATUS st;

    st = RegGetValueW(HKEY_LOCAL_MACHINE, L"SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters",
                      L"TcpTimedWaitDelay", RRF_RT_REG_DWORD, NULL, &v, &sz);
    if (st == ERROR_SUCCESS && v > 0) {
        tw->seconds = (uint32_t)v;
        tw->is_default = 0;
    } else {
        tw->seconds = SAMPLER__TIME_WAIT_DEFAULT_S;
        tw->is_default = 1;
    }
}

int sampler_create(const sampler_opts_t *opts, sampler_t **out)
{
    sampler_t *s;

    if (!out)
        return UV_EINVAL;
    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return UV_ENOMEM;
    if (opts)
        s->opts = *opts;
    *out = s;
    return 0;
}

void sampler_destroy(sampler_t *s)
{
    free(s);
}

static int sampler__move_notes(Epw__Snapshot *from, Epw__Snapshot *to)
{
    char **n;
    size_t i;

    if (from->n_notes == 0)
        return 0;
    n = realloc(to->notes, (to->n_notes + from->n_notes) * sizeof(*n));
    if (!n)
        return UV_ENOMEM;
    to->notes = n;
    for (i = 0; i < from->n_notes; i++)
        n[to->n_notes++] = from->notes[i];
    free(from->notes);
    from->notes = NULL;
    from->n_notes = 0;
    return 0;
}

int sampler_sample(sampler_t *s, Epw__Snapshot ***out, size_t *n_out)
{
    static const struct {
        int tcp;
        int family;
    } tables[4] = {{1, 4}, {1, 6}, {0, 4}, {0, 6}};
    analysis_opts_t ao;
    analysis_t *an = NULL;
    Epw__Snapshot *snap = NULL, *notes = NULL, **arr = NULL;
    void *table = NULL;
    char host[256];
    size_t hlen = sizeof(host);
    uint64_t t0 = uv_hrtime(), dt;
    uint32_t nrows = 0;
    int64_t taken = epw_now_ms();
    size_t i;
    int rc;

    if (out)
        *out = NULL;
    if (n_out)
        *n_out = 0;
    if (!s || !out || !n_out)
        return UV_EINVAL;
    memset(&ao, 0, sizeof(ao));
    ao.model = ANALYSIS_MODEL_WINDOWS;
    ao.top_n = s->opts.top_n;
    ao.top_destinations = s->opts.top_destinations;
    /* Our own notes go to a scratch snapshot first: analysis_finish writes the figures. */
    notes = epw_snap_new();
    snap = epw_snap_new();
    arr = calloc(1, sizeof(*arr));
    if (!notes || !snap || !arr) {
        rc = UV_ENOMEM;
        goto out;
    }
    rc = analysis_create(&ao, &an);
    if (rc)
        goto out;
    rc = sampler__ranges(s, an, notes);
    if (rc)
        goto out;
    for (i = 0; i < 4; i++) {
        const char *what = tables[i].tcp ? "tcp" : "udp";
        const char *fam = tables[i].family == 6 ? "ipv6" : "ipv4";

        rc = sampler__table(tables[i].tcp, tables[i].family == 6 ? AF_INET6 : AF_INET, &table);
        if (rc == UV_ENOMEM)
            goto out;
        if (rc) {
            /* IPv6 off or a transient failure: the rest of the sample is still worth having. */
            EPW_WARN(SAMPLER__SUB, "%s/%s table: %s", what, fam, epw_strerror(rc));
            rc = epw_snap_add_note(notes, "%s/%s sockets unavailable (%s)", what, fam,
                                   epw_strerror(rc));
            if (rc)
                goto out;
            continue;
        }
        rc = sampler__add_table(an, tables[i].tcp, tables[i].family, table, &nrows);
        free(table);
        table = NULL;
        if (rc)
            goto out;
    }
    rc = epw_snap_add_note(notes, "TCP sockets bound but neither connected nor listening (netstat "
                                  "-q BOUND) are not counted yet");
    if (rc)
        goto out;
    rc = analysis_finish(an, s->opts.attribute_pids ? sampler__name : NULL, s, snap);
    if (rc)
        goto out;

    if (uv_os_gethostname(host, &hlen) != 0)
        host[0] = '\0';
    epw_snap_strfree(snap->hostname);
    snap->hostname = epw_snap_strdup(host);
    if (!snap->hostname) {
        rc = UV_ENOMEM;
        goto out;
    }
    snap->platform = EPW__PLATFORM__WINDOWS;
    snap->taken_at_ms = taken;
    sampler__time_wait(snap->time_wait);
    rc = sampler__move_notes(notes, snap);
    if (rc)
        goto out;
    dt = (uv_hrtime() - t0) / 1000u;
    snap->sample_duration_us = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    EPW_DEBUG(SAMPLER__SUB, "%lu rows in %lu us", (unsigned long)nrows, (unsigned long)dt);
    arr[0] = snap;
    snap = NULL;
    *out = arr;
    arr = NULL;
    *n_out = 1;
out:
    free(table);
    free(arr);
    analysis_destroy(an);
    epw_snap_free(notes);
    epw_snap_free(snap);
    return rc;
}
