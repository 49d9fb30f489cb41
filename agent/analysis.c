/* analysis: streaming ephemeral-port accounting (bitmaps and small hash tables, no rows kept). */
#include "analysis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_snap.h"
#include "epw_util.h"

#define AN__WORDS   1024 /* 65536 bits */
#define AN__NAMELEN 256

/* Index helpers: p = protocol - 1 (0 TCP, 1 UDP), f = 0 for IPv4, 1 for IPv6. */
#define AN__TCP 0
#define AN__UDP 1

/*
 * A keyed table: entries live densely in insertion order (so an index is stable and memory is
 * about one entry per key), found through an open-addressing array of indices. The key is the
 * first ksz bytes of an entry, compared bytewise, so keys are built from zeroed structs.
 */
typedef struct an__tab_s {
    char *ents;
    size_t esz;
    size_t ksz;
    size_t n;
    size_t ecap;
    uint32_t *slots; /* 0 = empty, else entry index + 1 */
    size_t scap;     /* power of two */
} an__tab_t;

typedef struct an__range_s {
    uint32_t start;
    uint32_t count;
    Epw__RangeSource source;
    int declared;
} an__range_t;

/* One local address of one protocol and family. */
typedef struct an__addr_s {
    uint8_t proto; /* sockrow_proto_t */
    uint8_t family;
    uint8_t pad[2];
    uint8_t addr[16];
    uint32_t pad2;
    uint64_t *ports; /* range ports in use, bit i = range start + i; NULL until one is seen */
} an__addr_t;
#define AN__ADDR_KEY offsetof(an__addr_t, pad2)

/* (address index, pid) and (address index, listening port) sets. */
typedef struct an__pair_s {
    uint32_t aidx;
    uint32_t val;
} an__pair_t;

typedef struct an__pid_s {
    uint32_t pid;
    uint32_t ranged; /* range sockets owned */
} an__pid_t;
#define AN__PID_KEY offsetof(an__pid_t, ranged)

/* Local addresses of destinations, interned so a destination entry stays small. */
typedef struct an__local_s {
    uint8_t family;
    uint8_t pad[3];
    uint8_t addr[16];
} an__local_t;
#define AN__LOCAL_MAX 65535u

/* A destination (local address, remote address, remote port); after aggregation, a remote. */
typedef struct an__dest_s {
    uint8_t raddr[16];
    uint16_t lidx;
    uint16_t rport;
    uint8_t family;
    uint8_t pad[3];
    uint32_t count;
} an__dest_t;
#define AN__DEST_KEY offsetof(an__dest_t, count)

struct analysis_s {
    analysis_opts_t opts;
    int started;
    int finished;
    an__range_t range[2][2];
    uint64_t excluded[2][2][AN__WORDS];
    uint64_t host[2][AN__WORDS];
    uint64_t exclusive[2][AN__WORDS];
    uint64_t kernel[2][AN__WORDS];
    uint64_t listening[AN__WORDS];
    uint64_t states[SOCKROW_ST_COUNT];
    uint64_t total;
    uint64_t hidden_sockets; /* sockets on local addresses beyond max_addresses */
    uint64_t dest_skipped;   /* destination sockets whose local address could not be interned */
    int64_t wild[2][2];      /* address index of the wildcard entry, -1 if none */
    uint32_t n_named;        /* non-wildcard address entries */
    an__tab_t addrs;
    an__tab_t addr_pids;
    an__tab_t addr_listen;
    an__tab_t pids;
    an__tab_t locals;
    an__tab_t dests;
};

/* ---- bitmaps ---- */

static void an__bm_set(uint64_t *bm, uint32_t i)
{
    bm[i >> 6] |= (uint64_t)1 << (i & 63);
}

static int an__bm_get(const uint64_t *bm, uint32_t i)
{
    return (int)((bm[i >> 6] >> (i & 63)) & 1);
}

static uint32_t an__popcount(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

static uint32_t an__bm_count(const uint64_t *bm, size_t words)
{
    uint32_t n = 0;
    size_t i;

    for (i = 0; i < words; i++)
        n += an__popcount(bm[i]);
    return n;
}

/* ---- keyed table ---- */

static void an__tab_init(an__tab_t *t, size_t esz, size_t ksz)
{
    memset(t, 0, sizeof(*t));
    t->esz = esz;
    t->ksz = ksz;
}

static void an__tab_free(an__tab_t *t)
{
    free(t->ents);
    free(t->slots);
    t->ents = NULL;
    t->slots = NULL;
    t->n = t->ecap = t->scap = 0;
}

static void *an__tab_at(const an__tab_t *t, size_t idx)
{
    return t->ents + idx * t->esz;
}

static uint32_t an__hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    /* FNV's low bits are weak for short keys; mix before masking. */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

static int an__tab_rehash(an__tab_t *t, size_t scap)
{
    uint32_t *slots = calloc(scap, sizeof(*slots));
    size_t i;

    if (!slots)
        return UV_ENOMEM;
    for (i = 0; i < t->n; i++) {
        size_t s = an__hash(an__tab_at(t, i), t->ksz) & (scap - 1);

        while (slots[s])
            s = (s + 1) & (scap - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->scap = scap;
    return 0;
}

/* Finds `key`; with `create`, adds a zeroed entry holding it. 1 found or created (*idx set),
 * 0 absent, UV_ENOMEM. Entry pointers are invalidated by a later creation. */
static int an__tab_get(an__tab_t *t, const void *key, int create, size_t *idx)
{
    size_t s;
    int rc;

    if (create && (t->n + 1) * 2 > t->scap) {
        if (t->n >= UINT32_MAX - 1)
            return UV_ENOMEM;
        rc = an__tab_rehash(t, t->scap ? t->scap * 2 : 64);
        if (rc)
            return rc;
    }
    if (!t->scap)
        return 0;
    s = an__hash(key, t->ksz) & (t->scap - 1);
    while (t->slots[s]) {
        if (memcmp(an__tab_at(t, t->slots[s] - 1), key, t->ksz) == 0) {
            *idx = t->slots[s] - 1;
            return 1;
        }
        s = (s + 1) & (t->scap - 1);
    }
    if (!create)
        return 0;
    if (t->n == t->ecap) {
        /* Grow by half, not double: the destination table is the big one on busy hosts. */
        size_t ncap = t->ecap ? t->ecap + t->ecap / 2 : 16;
        char *ne = realloc(t->ents, ncap * t->esz);

        if (!ne)
            return UV_ENOMEM;
        t->ents = ne;
        t->ecap = ncap;
    }
    memset(an__tab_at(t, t->n), 0, t->esz);
    memcpy(an__tab_at(t, t->n), key, t->ksz);
    t->slots[s] = (uint32_t)(t->n + 1);
    *idx = t->n++;
    return 1;
}

/* ---- lifecycle and configuration ---- */

int analysis_create(const analysis_opts_t *opts, analysis_t **out)
{
    analysis_t *an;
    int p, f;

    if (out)
        *out = NULL;
    if (!opts || !out)
        return UV_EINVAL;
    if (opts->model != ANALYSIS_MODEL_WINDOWS && opts->model != ANALYSIS_MODEL_LINUX)
        return UV_EINVAL;
    an = calloc(1, sizeof(*an));
    if (!an)
        return UV_ENOMEM;
    an->opts = *opts;
    if (!an->opts.top_n)
        an->opts.top_n = 5;
    if (!an->opts.top_destinations)
        an->opts.top_destinations = 10;
    if (!an->opts.max_addresses)
        an->opts.max_addresses = 256;
    for (p = 0; p < 2; p++)
        for (f = 0; f < 2; f++)
            an->wild[p][f] = -1;
    an__tab_init(&an->addrs, sizeof(an__addr_t), AN__ADDR_KEY);
    an__tab_init(&an->addr_pids, sizeof(an__pair_t), sizeof(an__pair_t));
    an__tab_init(&an->addr_listen, sizeof(an__pair_t), sizeof(an__pair_t));
    an__tab_init(&an->pids, sizeof(an__pid_t), AN__PID_KEY);
    an__tab_init(&an->locals, sizeof(an__local_t), sizeof(an__local_t));
    an__tab_init(&an->dests, sizeof(an__dest_t), AN__DEST_KEY);
    *out = an;
    return 0;
}

void analysis_destroy(analysis_t *an)
{
    size_t i;

    if (!an)
        return;
    for (i = 0; i < an->addrs.n; i++)
        free(((an__addr_t *)an__tab_at(&an->addrs, i))->ports);
    an__tab_free(&an->addrs);
    an__tab_free(&an->addr_pids);
    an__tab_free(&an->addr_listen);
    an__tab_free(&an->pids);
    an__tab_free(&an->locals);
    an__tab_free(&an->dests);
    free(an);
}

/* Maps proto/family to indices; -1 when invalid. */
static int an__pf(int proto, int family, int *p, int *f)
{
    if ((proto != SOCKROW_TCP && proto != SOCKROW_UDP) || (family != 4 && family != 6))
        return -1;
    *p = proto == SOCKROW_TCP ? AN__TCP : AN__UDP;
    *f = family == 6;
    return 0;
}

int analysis_set_range(analysis_t *an, sockrow_proto_t proto, int family, uint32_t start,
                       uint32_t count, Epw__RangeSource source)
{
    an__range_t *r;
    int p, f;

    if (!an || an->started || an->finished || an__pf((int)proto, family, &p, &f))
        return UV_EINVAL;
    if (count < 1 || start > 65535 || count > 65536 - start)
        return UV_EINVAL;
    r = &an->range[p][f];
    r->start = start;
    r->count = count;
    r->source = source;
    r->declared = 1;
    return 0;
}

int analysis_exclude(analysis_t *an, sockrow_proto_t proto, int family, uint32_t first,
                     uint32_t last)
{
    uint32_t port;
    int p, f;

    if (!an || an->started || an->finished || an__pf((int)proto, family, &p, &f))
        return UV_EINVAL;
    if (first > last || last > 65535)
        return UV_EINVAL;
    for (port = first; port <= last; port++)
        an__bm_set(an->excluded[p][f], port);
    return 0;
}

static int an__in_range(const analysis_t *an, int p, int f, uint32_t port)
{
    const an__range_t *r = &an->range[p][f];

    return r->declared && port >= r->start && port - r->start < r->count &&
           !an__bm_get(an->excluded[p][f], port);
}

/* Range count minus excluded ports inside it; 0 when undeclared. */
static uint32_t an__usable(const analysis_t *an, int p, int f)
{
    const an__range_t *r = &an->range[p][f];
    uint32_t n = 0, port;

    if (!r->declared)
        return 0;
    for (port = r->start; port - r->start < r->count; port++)
        n += !an__bm_get(an->excluded[p][f], port);
    return n;
}

/* The protocol's pool size: IPv4's range, or IPv6's when only that one is declared. */
static int an__proto_family(const analysis_t *an, int p)
{
    return an->range[p][0].declared ? 0 : an->range[p][1].declared ? 1 : -1;
}

/* ---- accounting ---- */

static int an__account_addr(analysis_t *an, int p, int f, const sockrow_t *row, uint8_t st,
                            uint32_t pid, int inr)
{
    an__addr_t key, *a;
    an__pair_t pair;
    size_t idx, tmp;
    int wild, rc;

    memset(&key, 0, sizeof(key));
    key.proto = row->proto;
    key.family = row->family;
    memcpy(key.addr, row->laddr, f ? 16 : 4);
    wild = sockrow_addr_is_any(row->family, row->laddr);
    rc = an__tab_get(&an->addrs, &key, 0, &idx);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        /* Wildcard rows are never capped: their ports count on every other address. */
        if (!wild && an->n_named >= an->opts.max_addresses) {
            an->hidden_sockets++;
            return 0;
        }
        rc = an__tab_get(&an->addrs, &key, 1, &idx);
        if (rc < 0)
            return rc;
        if (wild)
            an->wild[p][f] = (int64_t)idx;
        else
            an->n_named++;
    }
    a = an__tab_at(&an->addrs, idx);
    if (inr) {
        const an__range_t *r = &an->range[p][f];

        if (!a->ports) {
            a->ports = calloc((r->count + 63) / 64, sizeof(uint64_t));
            if (!a->ports)
                return UV_ENOMEM;
        }
        an__bm_set(a->ports, row->lport - r->start);
    }
    if (p == AN__TCP && st == SOCKROW_ST_LISTEN) {
        pair.aidx = (uint32_t)idx;
        pair.val = row->lport;
        rc = an__tab_get(&an->addr_listen, &pair, 1, &tmp);
        if (rc < 0)
            return rc;
    }
    if (pid) {
        pair.aidx = (uint32_t)idx;
        pair.val = pid;
        rc = an__tab_get(&an->addr_pids, &pair, 1, &tmp);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int an__account_dest(analysis_t *an, int f, const sockrow_t *row)
{
    an__local_t lkey;
    an__dest_t dkey;
    size_t lidx, didx;
    int rc;

    memset(&lkey, 0, sizeof(lkey));
    lkey.family = row->family;
    memcpy(lkey.addr, row->laddr, f ? 16 : 4);
    rc = an__tab_get(&an->locals, &lkey, 0, &lidx);
    if (rc == 0 && an->locals.n >= AN__LOCAL_MAX) {
        an->dest_skipped++;
        return 0;
    }
    if (rc == 0)
        rc = an__tab_get(&an->locals, &lkey, 1, &lidx);
    if (rc < 0)
        return rc;
    memset(&dkey, 0, sizeof(dkey));
    memcpy(dkey.raddr, row->raddr, f ? 16 : 4);
    dkey.lidx = (uint16_t)lidx;
    dkey.rport = row->rport;
    dkey.family = row->family;
    rc = an__tab_get(&an->dests, &dkey, 1, &didx);
    if (rc < 0)
        return rc;
    ((an__dest_t *)an__tab_at(&an->dests, didx))->count++;
    return 0;
}

int analysis_add(analysis_t *an, const sockrow_t *row)
{
    uint8_t st;
    uint32_t pid;
    size_t idx;
    int p, f, inr, kernel, rc;

    if (!an || !row || an->finished || an__pf(row->proto, row->family, &p, &f))
        return UV_EINVAL;
    an->started = 1;
    /* NONE names UDP sockets: a TCP row without a known state is OTHER. */
    st = row->state;
    if (p == AN__UDP)
        st = SOCKROW_ST_NONE;
    else if (st == SOCKROW_ST_NONE || st >= SOCKROW_ST_COUNT)
        st = SOCKROW_ST_OTHER;
    if (an->opts.model == ANALYSIS_MODEL_LINUX) {
        pid = (row->flags & SOCKROW_F_PID_KNOWN) ? row->pid : SOCKROW_PID_NONE;
        kernel = !(row->flags & SOCKROW_F_PID_KNOWN) && st != SOCKROW_ST_TIME_WAIT;
    } else {
        pid = row->pid;
        /* PID 0 means "idle/kernel" only when the source really reported owners: a netstat
         * capture without a PID column must not turn every socket into a kernel socket. */
        kernel = (pid == SOCKROW_PID_SYSTEM_WIN ||
                  (pid == SOCKROW_PID_NONE && (row->flags & SOCKROW_F_PID_KNOWN))) &&
                 st != SOCKROW_ST_TIME_WAIT;
    }
    inr = an__in_range(an, p, f, row->lport);
    an->total++;

    rc = an__account_addr(an, p, f, row, st, pid, inr);
    if (rc)
        goto out;
    if (p == AN__TCP && st == SOCKROW_ST_LISTEN)
        an__bm_set(an->listening, row->lport);
    if (pid) {
        rc = an__tab_get(&an->pids, &pid, 1, &idx);
        if (rc < 0)
            goto out;
        rc = 0;
        if (inr)
            ((an__pid_t *)an__tab_at(&an->pids, idx))->ranged++;
    }
    if (!inr)
        goto out;
    an__bm_set(an->host[p], row->lport);
    an->states[st]++;
    if (kernel)
        an__bm_set(an->kernel[p], row->lport);
    if (an->opts.model == ANALYSIS_MODEL_LINUX &&
        (p == AN__UDP || st == SOCKROW_ST_LISTEN || st == SOCKROW_ST_BOUND))
        an__bm_set(an->exclusive[p], row->lport);
    /* A connection has a remote end: LISTEN and BOUND sockets (and rows without a remote port)
     * compete for no destination. */
    if (p == AN__TCP && st != SOCKROW_ST_LISTEN && st != SOCKROW_ST_BOUND && row->rport != 0)
        rc = an__account_dest(an, f, row);
out:
    return rc;
}

/* ---- finish ---- */

static int an__set_str(char **field, const char *s)
{
    char *d = epw_snap_strdup(s);

    if (!d)
        return UV_ENOMEM;
    epw_snap_strfree(*field);
    *field = d;
    return 0;
}

static Epw__Protocol an__proto_enum(int p)
{
    return p == AN__TCP ? EPW__PROTOCOL__TCP : EPW__PROTOCOL__UDP;
}

static Epw__Family an__family_enum(int family)
{
    return family == 6 ? EPW__FAMILY__IPV6 : EPW__FAMILY__IPV4;
}

static uint32_t an__clamp32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* "addr:port", bracketing IPv6. */
static void an__format_endpoint(int family, const uint8_t *addr, uint32_t port, char *buf,
                                size_t len)
{
    char a[64];

    epw_format_addr(family, addr, a, sizeof(a));
    snprintf(buf, len, family == 6 ? "[%s]:%u" : "%s:%u", a, (unsigned)port);
}

static int an__cmp_dest_count(const void *x, const void *y)
{
    const an__dest_t *a = x, *b = y;
    int c;

    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    if (a->lidx != b->lidx)
        return a->lidx < b->lidx ? -1 : 1;
    c = memcmp(a->raddr, b->raddr, sizeof(a->raddr));
    if (c)
        return c;
    return (int)a->rport - (int)b->rport;
}

static int an__cmp_remote(const void *x, const void *y)
{
    const an__dest_t *a = x, *b = y;
    int c;

    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    c = memcmp(a->raddr, b->raddr, sizeof(a->raddr));
    if (c)
        return c;
    return (int)a->rport - (int)b->rport;
}

static int an__cmp_remote_count(const void *x, const void *y)
{
    const an__dest_t *a = x, *b = y;

    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return an__cmp_remote(x, y);
}

static int an__cmp_pid(const void *x, const void *y)
{
    const an__pid_t *a = x, *b = y;

    if (a->ranged != b->ranged)
        return a->ranged > b->ranged ? -1 : 1;
    return a->pid < b->pid ? -1 : a->pid > b->pid;
}

/* Address rows sort by family, then address bytes, then protocol. */
typedef struct an__addr_order_s {
    uint8_t family;
    uint8_t proto;
    uint8_t addr[16];
    uint32_t idx;
} an__addr_order_t;

static int an__cmp_addr(const void *x, const void *y)
{
    const an__addr_order_t *a = x, *b = y;
    int c;

    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    c = memcmp(a->addr, b->addr, sizeof(a->addr));
    if (c)
        return c;
    return (int)a->proto - (int)b->proto;
}

static int an__finish_ranges(analysis_t *an, Epw__Snapshot *snap)
{
    int p, f;

    for (p = 0; p < 2; p++) {
        for (f = 0; f < 2; f++) {
            const an__range_t *r = &an->range[p][f];
            Epw__PortRange *pr;

            if (!r->declared)
                continue;
            pr = EPW_SNAP_APPEND(snap, ranges, epw__port_range__init);
            if (!pr)
                return UV_ENOMEM;
            pr->protocol = an__proto_enum(p);
            pr->family = f ? EPW__FAMILY__IPV6 : EPW__FAMILY__IPV4;
            pr->start = r->start;
            pr->count = r->count;
            pr->excluded = r->count - an__usable(an, p, f);
            pr->source = r->source;
        }
    }
    return 0;
}

/* Adds to cnt[a] the values of the wildcard's pairs that address a lacks (set union). */
static void an__union_wild(analysis_t *an, an__tab_t *pairs, uint32_t *cnt)
{
    size_t i, j, tmp;

    for (i = 0; i < pairs->n; i++) {
        const an__pair_t *w = an__tab_at(pairs, i);
        const an__addr_t *wa = an__tab_at(&an->addrs, w->aidx);
        int p = wa->proto == SOCKROW_TCP ? AN__TCP : AN__UDP;

        if (an->wild[p][wa->family == 6] != (int64_t)w->aidx)
            continue;
        for (j = 0; j < an->addrs.n; j++) {
            const an__addr_t *a = an__tab_at(&an->addrs, j);
            an__pair_t key;

            if (j == w->aidx || a->proto != wa->proto || a->family != wa->family)
                continue;
            key.aidx = (uint32_t)j;
            key.val = w->val;
            if (an__tab_get(pairs, &key, 0, &tmp) == 0)
                cnt[j]++;
        }
    }
}

static int an__finish_addresses(analysis_t *an, Epw__Snapshot *snap)
{
    an__addr_order_t *order = NULL;
    uint32_t *pidc = NULL, *listc = NULL;
    uint64_t *merged = NULL;
    size_t n = an->addrs.n, i, w;
    int rc = 0;

    if (!n)
        goto out;
    order = calloc(n, sizeof(*order));
    pidc = calloc(n, sizeof(*pidc));
    listc = calloc(n, sizeof(*listc));
    merged = calloc(AN__WORDS, sizeof(*merged));
    if (!order || !pidc || !listc || !merged) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (i = 0; i < an->addr_pids.n; i++)
        pidc[((an__pair_t *)an__tab_at(&an->addr_pids, i))->aidx]++;
    for (i = 0; i < an->addr_listen.n; i++)
        listc[((an__pair_t *)an__tab_at(&an->addr_listen, i))->aidx]++;
    an__union_wild(an, &an->addr_pids, pidc);
    an__union_wild(an, &an->addr_listen, listc);

    for (i = 0; i < n; i++) {
        const an__addr_t *a = an__tab_at(&an->addrs, i);

        order[i].family = a->family;
        order[i].proto = a->proto;
        memcpy(order[i].addr, a->addr, sizeof(a->addr));
        order[i].idx = (uint32_t)i;
    }
    qsort(order, n, sizeof(*order), an__cmp_addr);

    for (i = 0; i < n; i++) {
        const an__addr_t *a = an__tab_at(&an->addrs, order[i].idx);
        int p = a->proto == SOCKROW_TCP ? AN__TCP : AN__UDP, f = a->family == 6;
        const an__range_t *r = &an->range[p][f];
        size_t nw = (r->count + 63) / 64;
        int64_t wi = an->wild[p][f];
        const an__addr_t *wa =
            wi >= 0 && wi != (int64_t)order[i].idx ? an__tab_at(&an->addrs, (size_t)wi) : NULL;
        Epw__AddressUsage *u;
        char buf[64];
        uint32_t inuse = 0;

        if (a->ports || (wa && wa->ports)) {
            for (w = 0; w < nw; w++)
                merged[w] = (a->ports ? a->ports[w] : 0) | (wa && wa->ports ? wa->ports[w] : 0);
            inuse = an__bm_count(merged, nw);
        }
        u = EPW_SNAP_APPEND(snap, addresses, epw__address_usage__init);
        if (!u) {
            rc = UV_ENOMEM;
            goto out;
        }
        epw_format_addr(a->family, a->addr, buf, sizeof(buf));
        rc = an__set_str(&u->local_address, buf);
        if (rc)
            goto out;
        u->family = an__family_enum(a->family);
        u->protocol = an__proto_enum(p);
        u->ports_in_use = inuse;
        u->max_ports = an__usable(an, p, f);
        u->usage_pct = epw_pct(inuse, u->max_ports);
        u->listening_ports = listc[order[i].idx];
        u->pids = pidc[order[i].idx];
    }
    if (an->hidden_sockets) {
        rc = epw_snap_add_note(snap,
                               "analysis: only %u local addresses listed; %llu sockets on further "
                               "addresses are counted in host and destination figures only",
                               (unsigned)an->opts.max_addresses,
                               (unsigned long long)an->hidden_sockets);
        if (rc)
            goto out;
    }
out:
    free(order);
    free(pidc);
    free(listc);
    free(merged);
    return rc;
}

/* The figure behind pressure_pct: the highest num/den offered, the first of equal ones kept. */
typedef struct an__pressure_s {
    uint64_t num;
    uint64_t den;
    int set;
    char text[200];
} an__pressure_t;

/* Compares exactly (cross-multiplied); a zero pool with something in use is full, as epw_pct
 * says. 1 when the offer was taken: the caller then writes the text. */
static int an__pressure_offer(an__pressure_t *pr, uint64_t num, uint64_t den)
{
    uint64_t a = den ? num : (num ? 1 : 0), b = den ? den : 1;
    uint64_t pa = pr->den ? pr->num : (pr->num ? 1 : 0), pb = pr->den ? pr->den : 1;

    if (pr->set && a * pb <= pa * b)
        return 0;
    pr->num = num;
    pr->den = den;
    pr->set = 1;
    return 1;
}

static int an__finish_host(analysis_t *an, Epw__Snapshot *snap, an__pressure_t *pr)
{
    int p;

    for (p = 0; p < 2; p++) {
        int f = an__proto_family(an, p);
        Epw__HostUsage *h;
        uint32_t inuse, max;

        if (f < 0)
            continue;
        inuse = an__bm_count(an->host[p], AN__WORDS);
        max = an__usable(an, p, f);
        h = EPW_SNAP_APPEND(snap, host, epw__host_usage__init);
        if (!h)
            return UV_ENOMEM;
        h->protocol = an__proto_enum(p);
        h->ports_in_use = inuse;
        h->max_ports = max;
        h->usage_pct = epw_pct(inuse, max);
        if (an->opts.model == ANALYSIS_MODEL_WINDOWS && an__pressure_offer(pr, inuse, max))
            snprintf(pr->text, sizeof(pr->text), "%s host-wide %u/%u ports",
                     epw_snap_proto_name(an__proto_enum(p)), (unsigned)inuse, (unsigned)max);
    }
    return 0;
}

static int an__finish_destinations(analysis_t *an, Epw__Snapshot *snap, an__pressure_t *pr,
                                   uint32_t free_tcp)
{
    an__dest_t *d = (an__dest_t *)(void *)an->dests.ents;
    size_t n = an->dests.n, i, m;
    char lbuf[64], rbuf[80];
    int rc;

    snap->destination_count = an__clamp32(n);
    if (!n)
        return 0;
    qsort(d, n, sizeof(*d), an__cmp_dest_count);
    if (an->opts.model == ANALYSIS_MODEL_LINUX && an__pressure_offer(pr, d[0].count, free_tcp)) {
        const an__local_t *l = an__tab_at(&an->locals, d[0].lidx);

        epw_format_addr(l->family, l->addr, lbuf, sizeof(lbuf));
        an__format_endpoint(d[0].family, d[0].raddr, d[0].rport, rbuf, sizeof(rbuf));
        snprintf(pr->text, sizeof(pr->text), "destination %s -> %s (%u/%u free ports)", lbuf, rbuf,
                 (unsigned)d[0].count, (unsigned)free_tcp);
    }
    for (i = 0; i < n && i < an->opts.top_destinations; i++) {
        const an__local_t *l = an__tab_at(&an->locals, d[i].lidx);
        Epw__DestinationUsage *u;

        epw_format_addr(l->family, l->addr, lbuf, sizeof(lbuf));
        u = EPW_SNAP_APPEND(snap, destinations, epw__destination_usage__init);
        if (!u)
            return UV_ENOMEM;
        rc = an__set_str(&u->local_address, lbuf);
        if (rc)
            return rc;
        epw_format_addr(d[i].family, d[i].raddr, rbuf, sizeof(rbuf));
        rc = an__set_str(&u->remote_address, rbuf);
        if (rc)
            return rc;
        u->remote_port = d[i].rport;
        u->protocol = EPW__PROTOCOL__TCP;
        u->connections = d[i].count;
        u->free_ports = free_tcp;
        u->usage_pct = epw_pct(d[i].count, free_tcp);
    }

    /* Remotes: the same sockets summed over local addresses, aggregated in place. */
    qsort(d, n, sizeof(*d), an__cmp_remote);
    for (i = 1, m = 0; i < n; i++) {
        if (an__cmp_remote(&d[m], &d[i]) == 0) {
            d[m].count += d[i].count;
        } else {
            d[++m] = d[i];
        }
    }
    m++;
    qsort(d, m, sizeof(*d), an__cmp_remote_count);
    for (i = 0; i < m; i++) {
        Epw__RemoteUsage *u;
        uint64_t rest = 0;

        if (i == an->opts.top_n) {
            for (; i < m; i++)
                rest += d[i].count;
            u = EPW_SNAP_APPEND(snap, top_remotes, epw__remote_usage__init);
            if (!u)
                return UV_ENOMEM;
            u->connections = an__clamp32(rest);
            u->other = 1;
            break;
        }
        u = EPW_SNAP_APPEND(snap, top_remotes, epw__remote_usage__init);
        if (!u)
            return UV_ENOMEM;
        epw_format_addr(d[i].family, d[i].raddr, rbuf, sizeof(rbuf));
        rc = an__set_str(&u->remote_address, rbuf);
        if (rc)
            return rc;
        u->remote_port = d[i].rport;
        u->connections = d[i].count;
    }
    if (an->dest_skipped) {
        rc = epw_snap_add_note(snap,
                               "analysis: more than %u local addresses; %llu connections left out "
                               "of destination figures",
                               AN__LOCAL_MAX, (unsigned long long)an->dest_skipped);
        if (rc)
            return rc;
    }
    return 0;
}

static int an__finish_processes(analysis_t *an, analysis_name_cb name_cb, void *ud,
                                Epw__Snapshot *snap)
{
    an__pid_t *pv = (an__pid_t *)(void *)an->pids.ents;
    size_t n = an->pids.n, i;
    char name[AN__NAMELEN];
    int rc;

    snap->pid_count = an__clamp32(n);
    if (!n)
        return 0;
    qsort(pv, n, sizeof(*pv), an__cmp_pid);
    for (i = 0; i < n && pv[i].ranged; i++) {
        Epw__ProcessUsage *u;
        uint64_t rest = 0;

        if (i == an->opts.top_n) {
            for (; i < n; i++)
                rest += pv[i].ranged;
            u = EPW_SNAP_APPEND(snap, top_processes, epw__process_usage__init);
            if (!u)
                return UV_ENOMEM;
            rc = an__set_str(&u->name, "other");
            if (rc)
                return rc;
            u->ports = an__clamp32(rest);
            u->other = 1;
            break;
        }
        u = EPW_SNAP_APPEND(snap, top_processes, epw__process_usage__init);
        if (!u)
            return UV_ENOMEM;
        name[0] = '\0';
        if (name_cb)
            name_cb(ud, pv[i].pid, name, sizeof(name));
        name[sizeof(name) - 1] = '\0';
        if (!name[0])
            snprintf(name, sizeof(name), "[pid %u]", (unsigned)pv[i].pid);
        rc = an__set_str(&u->name, name);
        if (rc)
            return rc;
        u->pid = pv[i].pid;
        u->ports = pv[i].ranged;
    }
    return 0;
}

static int an__finish_states(analysis_t *an, Epw__Snapshot *snap)
{
    int st, rc;

    for (st = 0; st < SOCKROW_ST_COUNT; st++) {
        Epw__StateCount *s;

        if (!an->states[st])
            continue;
        s = EPW_SNAP_APPEND(snap, states, epw__state_count__init);
        if (!s)
            return UV_ENOMEM;
        rc = an__set_str(&s->state, sockrow_state_name((sockrow_state_t)st));
        if (rc)
            return rc;
        s->count = an__clamp32(an->states[st]);
    }
    return 0;
}

static int an__finish_listening(analysis_t *an, Epw__Snapshot *snap)
{
    uint32_t n = an__bm_count(an->listening, AN__WORDS), port;
    uint32_t *v;

    if (!n)
        return 0;
    v = realloc(snap->listening_ports, (snap->n_listening_ports + n) * sizeof(*v));
    if (!v)
        return UV_ENOMEM;
    snap->listening_ports = v;
    for (port = 0; port < 65536; port++)
        if (an__bm_get(an->listening, port))
            v[snap->n_listening_ports++] = port;
    return 0;
}

int analysis_finish(analysis_t *an, analysis_name_cb name_cb, void *ud, Epw__Snapshot *snap)
{
    an__pressure_t pr;
    uint32_t usable_tcp = 0, excl_tcp, excl_udp, free_tcp;
    int ftcp, fudp, rc;

    if (!an || !snap || an->finished)
        return UV_EINVAL;
    /* Finishing sorts the tables in place: no further use. */
    an->finished = 1;
    memset(&pr, 0, sizeof(pr));
    ftcp = an__proto_family(an, AN__TCP);
    fudp = an__proto_family(an, AN__UDP);
    if (ftcp >= 0)
        usable_tcp = an__usable(an, AN__TCP, ftcp);
    excl_tcp = an__bm_count(an->exclusive[AN__TCP], AN__WORDS);
    excl_udp = an__bm_count(an->exclusive[AN__UDP], AN__WORDS);
    free_tcp = usable_tcp;
    if (an->opts.model == ANALYSIS_MODEL_LINUX)
        free_tcp = excl_tcp < usable_tcp ? usable_tcp - excl_tcp : 0;

    rc = an__finish_ranges(an, snap);
    if (rc)
        goto out;
    rc = an__finish_addresses(an, snap);
    if (rc)
        goto out;
    rc = an__finish_host(an, snap, &pr);
    if (rc)
        goto out;
    rc = an__finish_destinations(an, snap, &pr, free_tcp);
    if (rc)
        goto out;
    if (an->opts.model == ANALYSIS_MODEL_LINUX) {
        if (ftcp >= 0 && an__pressure_offer(&pr, excl_tcp, usable_tcp))
            snprintf(pr.text, sizeof(pr.text), "tcp exclusive use %u/%u ports", (unsigned)excl_tcp,
                     (unsigned)usable_tcp);
        if (fudp >= 0) {
            uint32_t usable_udp = an__usable(an, AN__UDP, fudp);

            if (an__pressure_offer(&pr, excl_udp, usable_udp))
                snprintf(pr.text, sizeof(pr.text), "udp exclusive use %u/%u ports",
                         (unsigned)excl_udp, (unsigned)usable_udp);
        }
        snap->exclusive_ports = excl_tcp + excl_udp;
    }
    rc = an__finish_states(an, snap);
    if (rc)
        goto out;
    rc = an__finish_processes(an, name_cb, ud, snap);
    if (rc)
        goto out;
    rc = an__finish_listening(an, snap);
    if (rc)
        goto out;
    snap->kernel_ports =
        an__bm_count(an->kernel[AN__TCP], AN__WORDS) + an__bm_count(an->kernel[AN__UDP], AN__WORDS);
    snap->total_sockets = an__clamp32(an->total);
    if (pr.set) {
        snap->pressure_pct = epw_pct(pr.num, pr.den);
        rc = an__set_str(&snap->pressure_source, pr.text);
        if (rc)
            goto out;
    } else {
        snap->pressure_pct = 0;
        rc = epw_snap_add_note(snap, "analysis: no port range declared, nothing counted");
        if (rc)
            goto out;
    }
out:
    return rc;
}
