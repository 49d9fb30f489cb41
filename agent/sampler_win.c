/* sampler_win: the Windows sampler: the IP Helper socket tables analysed with the Windows model. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <iphlpapi.h>

#include <stddef.h>
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
#include "sampler_common.h"
#include "sockrow.h"
#include "winevents_win.h"
#include "winrange_win.h"
#include "winsrc.h"

#define SAMPLER__SUB "sampler"
/* TcpTimedWaitDelay when the registry value is absent (Microsoft's pages say 120 or 240). */
#define SAMPLER__TIME_WAIT_DEFAULT_S 120u
/* Tables grow between the size query and the copy: ask again this many times. */
#define SAMPLER__TABLE_TRIES 5
/* Ranges and exclusions change rarely and cost a WMI call and several netsh runs: reread them
 * this often (nanoseconds, uv_hrtime). */
#define SAMPLER__RANGES_TTL_NS (300ull * 1000000000ull)
/* How often a failed event log subscription is tried again. */
#define SAMPLER__EVENTS_RETRY_NS (300ull * 1000000000ull)

/* The winsrc row layouts are the IP Helper ones: checked here, where both are visible, so the
 * conversion (tested on any platform) can read the real tables. */
#define SAMPLER__SAME(a, fa, b, fb) _Static_assert(offsetof(a, fa) == offsetof(b, fb), #a "." #fa)
SAMPLER__SAME(winsrc_tcp4_t, state, MIB_TCPROW_OWNER_PID, dwState);
SAMPLER__SAME(winsrc_tcp4_t, laddr, MIB_TCPROW_OWNER_PID, dwLocalAddr);
SAMPLER__SAME(winsrc_tcp4_t, lport, MIB_TCPROW_OWNER_PID, dwLocalPort);
SAMPLER__SAME(winsrc_tcp4_t, raddr, MIB_TCPROW_OWNER_PID, dwRemoteAddr);
SAMPLER__SAME(winsrc_tcp4_t, rport, MIB_TCPROW_OWNER_PID, dwRemotePort);
SAMPLER__SAME(winsrc_tcp4_t, pid, MIB_TCPROW_OWNER_PID, dwOwningPid);
_Static_assert(sizeof(winsrc_tcp4_t) == sizeof(MIB_TCPROW_OWNER_PID), "tcp4 row size");
SAMPLER__SAME(winsrc_tcp6_t, laddr, MIB_TCP6ROW_OWNER_PID, ucLocalAddr);
SAMPLER__SAME(winsrc_tcp6_t, lport, MIB_TCP6ROW_OWNER_PID, dwLocalPort);
SAMPLER__SAME(winsrc_tcp6_t, raddr, MIB_TCP6ROW_OWNER_PID, ucRemoteAddr);
SAMPLER__SAME(winsrc_tcp6_t, rport, MIB_TCP6ROW_OWNER_PID, dwRemotePort);
SAMPLER__SAME(winsrc_tcp6_t, state, MIB_TCP6ROW_OWNER_PID, dwState);
SAMPLER__SAME(winsrc_tcp6_t, pid, MIB_TCP6ROW_OWNER_PID, dwOwningPid);
_Static_assert(sizeof(winsrc_tcp6_t) == sizeof(MIB_TCP6ROW_OWNER_PID), "tcp6 row size");
SAMPLER__SAME(winsrc_udp4_t, laddr, MIB_UDPROW_OWNER_PID, dwLocalAddr);
SAMPLER__SAME(winsrc_udp4_t, lport, MIB_UDPROW_OWNER_PID, dwLocalPort);
SAMPLER__SAME(winsrc_udp4_t, pid, MIB_UDPROW_OWNER_PID, dwOwningPid);
_Static_assert(sizeof(winsrc_udp4_t) == sizeof(MIB_UDPROW_OWNER_PID), "udp4 row size");
SAMPLER__SAME(winsrc_udp6_t, laddr, MIB_UDP6ROW_OWNER_PID, ucLocalAddr);
SAMPLER__SAME(winsrc_udp6_t, lport, MIB_UDP6ROW_OWNER_PID, dwLocalPort);
SAMPLER__SAME(winsrc_udp6_t, pid, MIB_UDP6ROW_OWNER_PID, dwOwningPid);
_Static_assert(sizeof(winsrc_udp6_t) == sizeof(MIB_UDP6ROW_OWNER_PID), "udp6 row size");
SAMPLER__SAME(winsrc_btcp4_t, lport, MIB_TCPROW2, dwLocalPort);
SAMPLER__SAME(winsrc_btcp4_t, pid, MIB_TCPROW2, dwOwningPid);
_Static_assert(sizeof(winsrc_btcp4_t) == sizeof(MIB_TCPROW2), "bound tcp4 row size");
SAMPLER__SAME(winsrc_btcp6_t, laddr, MIB_TCP6ROW2, LocalAddr);
SAMPLER__SAME(winsrc_btcp6_t, lport, MIB_TCP6ROW2, dwLocalPort);
SAMPLER__SAME(winsrc_btcp6_t, rport, MIB_TCP6ROW2, dwRemotePort);
SAMPLER__SAME(winsrc_btcp6_t, pid, MIB_TCP6ROW2, dwOwningPid);
_Static_assert(sizeof(winsrc_btcp6_t) == sizeof(MIB_TCP6ROW2), "bound tcp6 row size");
/* Every table is a DWORD count followed by the rows. */
_Static_assert(offsetof(MIB_TCPTABLE_OWNER_PID, table) == 4, "tcp4 table");
_Static_assert(offsetof(MIB_TCP6TABLE_OWNER_PID, table) == 4, "tcp6 table");
_Static_assert(offsetof(MIB_UDPTABLE_OWNER_PID, table) == 4, "udp4 table");
_Static_assert(offsetof(MIB_UDP6TABLE_OWNER_PID, table) == 4, "udp6 table");
_Static_assert(offsetof(MIB_TCPTABLE2, table) == 4, "bound tcp4 table");
_Static_assert(offsetof(MIB_TCP6TABLE2, table) == 4, "bound tcp6 table");

/*
 * InternalGetBoundTcpEndpointTable / InternalGetBoundTcp6EndpointTable (iphlpapi.dll, undocumented;
 * netstat -q uses them): allocate a MIB_TCPTABLE2 / MIB_TCP6TABLE2 from `heap` with `flags` and
 * store its address in *table; the caller frees it with HeapFree. NO_ERROR on success.
 */
typedef ULONG(WINAPI *sampler__bound_fn)(PVOID *table, PVOID heap, ULONG flags);

/* One excluded range, as netsh reported it. */
typedef struct sampler__excl_s {
    uint8_t ri; /* winsrc range index */
    uint16_t first;
    uint16_t last;
} sampler__excl_t;

struct sampler_s {
    sampler_opts_t opts;
    sampler__bound_fn bound[2]; /* [0] IPv4, [1] IPv6; NULL when iphlpapi has none */
    /* Ranges, exclusions and the notes explaining them, reread every SAMPLER__RANGES_TTL_NS. */
    int have_ranges;
    uint64_t ranges_at;
    winsrc_ranges_t ranges;
    Epw__Snapshot *range_notes; /* only its notes are used */
    sampler__excl_t *excl;
    size_t n_excl, cap_excl;
    int excl_oom;
    /* The event log subscription, or why there is none. */
    winevents_t *events;
    char events_why[128];
    uint64_t events_retry_at;
};

/* What sampler__excl_cb collects into: the sampler and the range the netsh run is about. */
typedef struct sampler__excl_ctx_s {
    sampler_t *s;
    int ri;
} sampler__excl_ctx_t;

static void sampler__excl_cb(void *ud, uint32_t first, uint32_t last)
{
    sampler__excl_ctx_t *c = ud;
    sampler_t *s = c->s;
    sampler__excl_t *n;

    if (s->n_excl == s->cap_excl) {
        size_t cap = s->cap_excl ? s->cap_excl * 2 : 32;

        n = realloc(s->excl, cap * sizeof(*n));
        if (!n) {
            s->excl_oom = 1;
            return;
        }
        s->excl = n;
        s->cap_excl = cap;
    }
    s->excl[s->n_excl].ri = (uint8_t)c->ri;
    s->excl[s->n_excl].first = (uint16_t)first;
    s->excl[s->n_excl].last = (uint16_t)last;
    s->n_excl++;
}

static const char *const sampler__range_label[WINSRC_NRANGES] = {"tcp/ipv4", "tcp/ipv6", "udp/ipv4",
                                                                 "udp/ipv6"};

/* Rereads the excluded ranges; failures become notes in `notes` (one when all four agree). */
static int sampler__read_excluded(sampler_t *s, Epw__Snapshot *notes)
{
    static const sockrow_proto_t proto[WINSRC_NRANGES] = {SOCKROW_TCP, SOCKROW_TCP, SOCKROW_UDP,
                                                          SOCKROW_UDP};
    static const int family[WINSRC_NRANGES] = {4, 6, 4, 6};
    char why[WINSRC_NRANGES][96];
    int ok[WINSRC_NRANGES], i, same = 1, rc = 0;

    s->n_excl = 0;
    s->excl_oom = 0;
    for (i = 0; i < WINSRC_NRANGES; i++) {
        sampler__excl_ctx_t c = {s, i};

        why[i][0] = '\0';
        ok[i] = winrange_excluded(proto[i], family[i], sampler__excl_cb, &c, why[i],
                                  sizeof(why[i])) >= 0;
        if (s->excl_oom)
            return UV_ENOMEM;
        if (i > 0 && (ok[i] != ok[0] || strcmp(why[i], why[0]) != 0))
            same = 0;
    }
    if (same && !ok[0])
        return epw_snap_add_note(notes,
                                 "excluded port ranges: netsh unavailable (%s); none "
                                 "assumed",
                                 why[0]);
    for (i = 0; i < WINSRC_NRANGES && rc == 0; i++)
        if (!ok[i])
            rc = epw_snap_add_note(notes,
                                   "excluded port ranges (%s): netsh unavailable (%s); "
                                   "none assumed",
                                   sampler__range_label[i], why[i]);
    return rc;
}

/* Rereads ranges and exclusions when the cached ones are older than the TTL. */
static int sampler__refresh_ranges(sampler_t *s)
{
    /* WMI is the supported surface; netsh covers hosts where WMI is broken; the documented
     * default is the last resort and always answers. */
    static const winsrc_range_source_t srcs[] = {
        {"WMI", EPW__RANGE_SOURCE__RANGE_WMI, winrange_wmi, NULL},
        {"netsh", EPW__RANGE_SOURCE__RANGE_NETSH, winrange_netsh, NULL},
        {"default", EPW__RANGE_SOURCE__RANGE_DEFAULT, winsrc_range_default, NULL},
    };
    Epw__Snapshot *notes;
    uint64_t now = uv_hrtime();
    int rc;

    if (s->have_ranges && now - s->ranges_at < SAMPLER__RANGES_TTL_NS)
        return 0;
    notes = epw_snap_new();
    if (!notes)
        return UV_ENOMEM;
    rc = winsrc_ranges_resolve(srcs, sizeof(srcs) / sizeof(srcs[0]), &s->ranges, notes);
    if (rc == 0)
        rc = sampler__read_excluded(s, notes);
    if (rc) {
        epw_snap_free(notes);
        s->have_ranges = 0;
        return rc;
    }
    epw_snap_free(s->range_notes);
    s->range_notes = notes;
    s->have_ranges = 1;
    s->ranges_at = now;
    return 0;
}

/* Declares the cached ranges and exclusions to the analysis and copies their notes. */
static int sampler__apply_ranges(sampler_t *s, analysis_t *an, Epw__Snapshot *notes)
{
    static const sockrow_proto_t proto[WINSRC_NRANGES] = {SOCKROW_TCP, SOCKROW_TCP, SOCKROW_UDP,
                                                          SOCKROW_UDP};
    static const int family[WINSRC_NRANGES] = {4, 6, 4, 6};
    size_t i;
    int rc;

    for (i = 0; i < WINSRC_NRANGES; i++) {
        rc = analysis_set_range(an, proto[i], family[i], s->ranges.start[i], s->ranges.count[i],
                                s->ranges.source[i]);
        if (rc)
            return rc;
    }
    for (i = 0; i < s->n_excl; i++) {
        const sampler__excl_t *e = &s->excl[i];

        rc = analysis_exclude(an, proto[e->ri], family[e->ri], e->first, e->last);
        if (rc)
            return rc;
    }
    for (i = 0; i < s->range_notes->n_notes; i++) {
        rc = epw_snap_add_note(notes, "%s", s->range_notes->notes[i]);
        if (rc)
            return rc;
    }
    return 0;
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

static int sampler__add_row(void *ud, const sockrow_t *row)
{
    return analysis_add(ud, row);
}

/* Streams one table (a DWORD count, then rows) into the analysis. */
static int sampler__add_table(analysis_t *an, winsrc_table_t kind, const void *table,
                              uint32_t *nrows)
{
    size_t n = *(const DWORD *)table, done = 0;
    int rc;

    rc = winsrc_convert(kind, (const uint8_t *)table + 4, n, sampler__add_row, an, &done);
    *nrows += (uint32_t)done;
    return rc;
}

/*
 * BOUND sockets from the undocumented exports. Anything unexpected (absent export, failure, a
 * table that does not look like MIB_TCPTABLE2) becomes a note and the rows are left out: a wrong
 * guess about an undocumented layout must never turn into wrong figures.
 */
static int sampler__add_bound(sampler_t *s, analysis_t *an, Epw__Snapshot *notes, uint32_t *nrows)
{
    static const char *const fname[2] = {"InternalGetBoundTcpEndpointTable",
                                         "InternalGetBoundTcp6EndpointTable"};
    HANDLE heap = GetProcessHeap();
    char why[128];
    int f, rc = 0;

    if (!s->bound[0] && !s->bound[1])
        return epw_snap_add_note(notes, "BOUND sockets (bound, neither connected nor listening) "
                                        "not counted: iphlpapi.dll has no "
                                        "InternalGetBoundTcpEndpointTable");
    for (f = 0; f < 2 && rc == 0; f++) {
        winsrc_table_t kind = f ? WINSRC_BOUND6 : WINSRC_BOUND4;
        PVOID table = NULL;
        ULONG ret;
        SIZE_T avail;
        size_t n;

        if (!s->bound[f]) {
            rc = epw_snap_add_note(notes, "BOUND sockets (%s) not counted: iphlpapi.dll has no %s",
                                   f ? "ipv6" : "ipv4", fname[f]);
            continue;
        }
        ret = s->bound[f](&table, heap, 0);
        if (ret != NO_ERROR || !table) {
            rc = epw_snap_add_note(notes, "BOUND sockets (%s) not counted: %s failed (error %lu)",
                                   f ? "ipv6" : "ipv4", fname[f], (unsigned long)ret);
            continue;
        }
        avail = HeapSize(heap, 0, table);
        n = *(const DWORD *)table;
        why[0] = '\0';
        if (avail == (SIZE_T)-1 || winsrc_bound_check(kind, (const uint8_t *)table + 4, n,
                                                      (size_t)avail, why, sizeof(why)) != 0) {
            EPW_WARN(SAMPLER__SUB, "%s: unexpected table: %s", fname[f], why);
            rc = epw_snap_add_note(notes,
                                   "BOUND sockets (%s) not counted: %s returned a table "
                                   "not laid out as expected (%s)",
                                   f ? "ipv6" : "ipv4", fname[f], why[0] ? why : "no size");
        } else {
            rc = sampler__add_table(an, kind, table, nrows);
        }
        HeapFree(heap, 0, table);
    }
    return rc;
}

/* The name of a PID other than 0 and 4 (winsrc_name never asks for those): the image's file name
 * in UTF-8. Access denied is normal for protected processes. */
static int sampler__lookup(void *ud, uint32_t pid, char *buf, size_t len)
{
    WCHAR path[MAX_PATH * 2];
    DWORD plen = (DWORD)(sizeof(path) / sizeof(path[0]));
    const WCHAR *base;
    HANDLE h;
    int n, rc = 0;

    (void)ud;
    h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (!h)
        return uv_translate_sys_error((int)GetLastError());
    if (!QueryFullProcessImageNameW(h, 0, path, &plen) || plen == 0) {
        rc = uv_translate_sys_error((int)GetLastError());
        goto out;
    }
    base = wcsrchr(path, L'\\');
    base = base ? base + 1 : path;
    n = WideCharToMultiByte(CP_UTF8, 0, base, -1, buf, (int)(len > INT32_MAX ? INT32_MAX : len),
                            NULL, NULL);
    if (n <= 0) /* too long or unconvertible */
        rc = UV_ENOBUFS;
out:
    CloseHandle(h);
    return rc;
}

static void sampler__name(void *ud, uint32_t pid, char *buf, size_t len)
{
    winsrc_name(pid, sampler__lookup, ud, buf, len);
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

/* Subscribes to the event log when not subscribed and the retry time has come. */
static void sampler__events_try(sampler_t *s)
{
    wchar_t path[MAX_PATH];
    uint64_t now = uv_hrtime();
    int rc;

    if (s->events || (s->events_why[0] && now < s->events_retry_at))
        return;
    rc = winevents_default_path(path, MAX_PATH);
    if (rc == 0)
        rc = winevents_start(path, &s->events, s->events_why, sizeof(s->events_why));
    else
        snprintf(s->events_why, sizeof(s->events_why), "no path for the bookmark");
    if (rc) {
        EPW_WARN(SAMPLER__SUB, "event log unavailable: %s", s->events_why);
        s->events_retry_at = now + SAMPLER__EVENTS_RETRY_NS;
    } else {
        s->events_why[0] = '\0';
    }
}

/* Hands the counted events to the snapshot, or says why there are none. */
static int sampler__events(sampler_t *s, Epw__Snapshot *snap)
{
    if (!s->opts.watch_events)
        return epw_snap_add_note(snap, "Tcpip events 4227, 4231 and 4266 are counted by the "
                                       "long-running agent (service), not by a one-shot sample");
    sampler__events_try(s);
    if (!s->events)
        return epw_snap_add_note(snap,
                                 "event log unavailable: %s; Tcpip events 4227, 4231 and 4266 "
                                 "are not counted",
                                 s->events_why);
    return winevents_drain(s->events, snap);
}

int sampler_create(const sampler_opts_t *opts, sampler_t **out)
{
    sampler_t *s;
    HMODULE h;

    if (!out)
        return UV_EINVAL;
    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return UV_ENOMEM;
    if (opts)
        s->opts = *opts;
    /* Linked, so already loaded; the exports are looked up because they are undocumented. */
    h = GetModuleHandleW(L"iphlpapi.dll");
    if (h) {
        s->bound[0] = (sampler__bound_fn)(void (*)(void))GetProcAddress(
            h, "InternalGetBoundTcpEndpointTable");
        s->bound[1] = (sampler__bound_fn)(void (*)(void))GetProcAddress(
            h, "InternalGetBoundTcp6EndpointTable");
    }
    /* Subscribing now counts events from the start, not from the first sample. */
    sampler__events_try(s);
    *out = s;
    return 0;
}

void sampler_destroy(sampler_t *s)
{
    if (!s)
        return;
    winevents_stop(s->events);
    epw_snap_free(s->range_notes);
    free(s->excl);
    free(s);
}

int sampler_sample(sampler_t *s, Epw__Snapshot ***out, size_t *n_out)
{
    static const struct {
        int tcp;
        int family;
        winsrc_table_t kind;
    } tables[4] = {
        {1, 4, WINSRC_TCP4}, {1, 6, WINSRC_TCP6}, {0, 4, WINSRC_UDP4}, {0, 6, WINSRC_UDP6}};
    analysis_opts_t ao;
    analysis_t *an = NULL;
    Epw__Snapshot *snap = NULL, *notes = NULL, **arr = NULL;
    void *table = NULL;
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
    rc = sampler__refresh_ranges(s);
    if (rc)
        goto out;
    rc = sampler__apply_ranges(s, an, notes);
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
        rc = sampler__add_table(an, tables[i].kind, table, &nrows);
        free(table);
        table = NULL;
        if (rc)
            goto out;
    }
    rc = sampler__add_bound(s, an, notes, &nrows);
    if (rc)
        goto out;
    rc = analysis_finish(an, s->opts.attribute_pids ? sampler__name : NULL, s, snap);
    if (rc)
        goto out;

    rc = sampler_common_stamp(snap, EPW__PLATFORM__WINDOWS, taken);
    if (rc)
        goto out;
    sampler__time_wait(snap->time_wait);
    rc = sampler_common_move_notes(notes, snap);
    if (rc)
        goto out;
    rc = sampler__events(s, snap);
    if (rc)
        goto out;
    dt = sampler_common_finish_duration(snap, t0);
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
