/* sampler_linux: sock_diag dumps, /proc/sys ranges and /proc/<pid>/fd owners, per netns. */
#include "sampler.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <uv.h>

#include "analysis.h"
#include "diag_linux.h"
#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_util.h"
#include "procfd_linux.h"
#include "procparse_linux.h"
#include "sampler_common.h"

#define SAMPLER__SUB "sampler"
/* More namespaces than this in one pass are left out (with a note): bounds time and memory. */
#define SAMPLER__MAX_NETNS 4096u
/* /proc/sys files are short; the reserved-ports list is the longest (a list of single ports). */
#define SAMPLER__MAX_SYSCTL (1024u * 1024u)
/* Linux defaults, used when the sysctl cannot be read (reported as RANGE_DEFAULT). */
#define SAMPLER__DEFAULT_START 32768u
#define SAMPLER__DEFAULT_COUNT 28232u
/* TCP_TIMEWAIT_LEN: fixed in the kernel, not tunable. */
#define SAMPLER__TIME_WAIT_S 60u
/* Threads for the /proc owner scan (kernel-bound, about 1.7 us per fd): two halve it on a busy
 * host; more would take cores from the workload the agent watches. */
#define SAMPLER__SCAN_THREADS 2u

struct sampler_s {
    sampler_opts_t opts;
    uint32_t map_hint;     /* inodes found by the previous scan: sizes the next map */
    unsigned scan_threads; /* for procfd_map_scan */
    int bound_inactive;    /* the kernel reports TCP_BOUND_INACTIVE (6.8+) */
    char release[65];      /* uname -r */
};

/* One network namespace to sample. */
typedef struct sampler__ns_s {
    uint64_t dev;
    uint64_t ino;
    uint32_t pid;  /* a process inside it; 0 when known only from /run/netns */
    int self;      /* the namespace the sampling thread runs in */
    char name[64]; /* its /run/netns name, "" when none */
} sampler__ns_t;

typedef struct sampler__nslist_s {
    sampler__ns_t *v;
    size_t len;
    size_t cap;
    uint32_t dropped; /* beyond SAMPLER__MAX_NETNS */
} sampler__nslist_t;

/* State shared by the rows of one namespace's dumps. */
typedef struct sampler__pass_s {
    analysis_t *an;
    const procfd_map_t *map; /* NULL: no attribution */
} sampler__pass_t;

/*
 * The TCP dump of the agent's own namespace, read ahead by a helper thread while the owner scan
 * runs: both are kernel-bound, so on two cores they overlap. Rows wait in a compact buffer (20
 * bytes for IPv4, 44 for IPv6, against 124 on the wire) until the owners are known; the buffer
 * stops growing at SAMPLER__PREFETCH_MAX and the rest of the dump is then read afterwards, as
 * without read-ahead, so memory stays bounded on any host. The helper only touches this struct
 * and its diag_t until it is joined.
 */
#define SAMPLER__PREFETCH_MAX (1024u * 1024u)
#define SAMPLER__PACKED_V4    20u
#define SAMPLER__PACKED_V6    44u

typedef struct sampler__prefetch_s {
    diag_t *diag;  /* the dump in progress; NULL: no read-ahead */
    uint8_t *buf;  /* packed rows */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated: SAMPLER__PREFETCH_MAX */
    uint32_t rows; /* rows in buf */
    int rc;        /* the dump's result so far (0 while unfinished) */
    int done;      /* the dump was read to its end */
    int started;   /* the helper thread runs (joined by sampler__prefetch_join) */
    uv_thread_t tid;
} sampler__prefetch_t;

int sampler_create(const sampler_opts_t *opts, sampler_t **out)
{
    struct utsname u;
    uint32_t major = 0, minor = 0;
    sampler_t *s;

    *out = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return UV_ENOMEM;
    if (opts)
        s->opts = *opts;
    else
        s->opts.attribute_pids = 1;
    s->scan_threads = uv_available_parallelism();
    if (s->scan_threads > SAMPLER__SCAN_THREADS)
        s->scan_threads = SAMPLER__SCAN_THREADS;
    /* TCP_BOUND_INACTIVE appeared in 6.8; older kernels ignore the state bit and simply do not
     * report bound-only sockets, so the request is the same and only the note differs. */
    if (uname(&u) == 0) {
        snprintf(s->release, sizeof(s->release), "%s", u.release);
        if (procparse_kernel_version(u.release, strlen(u.release), &major, &minor) == 0)
            s->bound_inactive = major > 6 || (major == 6 && minor >= 8);
    }
    *out = s;
    return 0;
}

void sampler_destroy(sampler_t *s)
{
    free(s);
}

/*
 * Reads a whole /proc/sys file into a malloc'd buffer (*buf, *len). Bounded by
 * SAMPLER__MAX_SYSCTL. 0 or a negative errno.
 */
static int sampler__read_file(const char *path, uint8_t **buf, size_t *len)
{
    size_t cap = 256, n = 0;
    uint8_t *b = NULL, *nb;
    ssize_t r;
    int fd;
    int rc = 0;

    *buf = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    b = malloc(cap);
    if (!b) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= SAMPLER__MAX_SYSCTL) {
                rc = EPW_E_TOOBIG;
                goto out;
            }
            nb = realloc(b, cap * 2);
            if (!nb) {
                rc = UV_ENOMEM;
                goto out;
            }
            b = nb;
            cap *= 2;
        }
        r = read(fd, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *buf = b;
    *len = n;
    b = NULL;
out:
    free(b);
    close(fd);
    return rc;
}

static int sampler__row(void *ud, sockrow_t *row)
{
    sampler__pass_t *p = ud;
    uint32_t pid;

    if (p->map && row->inode) {
        pid = procfd_map_get(p->map, row->inode);
        if (pid) {
            row->pid = pid;
            row->flags |= SOCKROW_F_PID_KNOWN;
        }
    }
    return analysis_add(p->an, row);
}

/* Appends a row to the read-ahead buffer; the reader leaves room for a datagram beforehand. */
static int sampler__pack(void *ud, sockrow_t *row)
{
    sampler__prefetch_t *pf = ud;
    uint8_t *p = pf->buf + pf->len;
    size_t alen = row->family == 6 ? 16u : 4u;

    p[0] = row->proto;
    p[1] = row->family;
    p[2] = row->state;
    p[3] = 0;
    memcpy(p + 4, &row->lport, 2);
    memcpy(p + 6, &row->rport, 2);
    memcpy(p + 8, &row->inode, 4);
    memcpy(p + 12, row->laddr, alen);
    memcpy(p + 12 + alen, row->raddr, alen);
    pf->len += 12u + 2u * alen;
    pf->rows++;
    return 0;
}

/* Reads the packed row at buf[*off], advancing *off. */
static void sampler__unpack(const uint8_t *buf, size_t *off, sockrow_t *row)
{
    const uint8_t *p = buf + *off;
    size_t alen = p[1] == 6 ? 16u : 4u;

    memset(row, 0, sizeof(*row));
    row->proto = p[0];
    row->family = p[1];
    row->state = p[2];
    memcpy(&row->lport, p + 4, 2);
    memcpy(&row->rport, p + 6, 2);
    memcpy(&row->inode, p + 8, 4);
    memcpy(row->laddr, p + 12, alen);
    memcpy(row->raddr, p + 12 + alen, alen);
    *off += 12u + 2u * alen;
}

/* The helper thread: reads datagrams while a whole one surely fits in the buffer. */
static void sampler__prefetch_run(void *arg)
{
    sampler__prefetch_t *pf = arg;
    const size_t room = (size_t)DIAG_DGRAM_ROWS * SAMPLER__PACKED_V6;

    /* Once full, the rest is read after the scan. */
    while (!pf->done && pf->cap - pf->len >= room)
        pf->rc = diag_dump_read(pf->diag, sampler__pack, pf, NULL, &pf->done);
}

/* Starts the read-ahead of the TCP dump of the calling thread's namespace. Failures only mean
 * no read-ahead (the dump is then made as usual and reports its own errors). */
static void sampler__prefetch_start(sampler__prefetch_t *pf)
{
    memset(pf, 0, sizeof(*pf));
    /* Allocated whole (pages are only touched as rows arrive) rather than grown: growth in steps
     * leaves freed blocks in the heap that count in the peak RSS. */
    pf->buf = malloc(SAMPLER__PREFETCH_MAX);
    if (!pf->buf)
        return;
    pf->cap = SAMPLER__PREFETCH_MAX;
    if (diag_open(&pf->diag))
        return;
    if (diag_dump_start(pf->diag, SOCKROW_TCP, 0, DIAG_STATES_ALL) == 0 &&
        uv_thread_create(&pf->tid, sampler__prefetch_run, pf) == 0) {
        pf->started = 1;
        return;
    }
    diag_close(pf->diag);
    pf->diag = NULL;
}

static void sampler__prefetch_join(sampler__prefetch_t *pf)
{
    if (pf->started) {
        uv_thread_join(&pf->tid);
        pf->started = 0;
    }
}

static void sampler__prefetch_free(sampler__prefetch_t *pf)
{
    sampler__prefetch_join(pf);
    diag_close(pf->diag);
    free(pf->buf);
    memset(pf, 0, sizeof(*pf));
}

/*
 * The TCP dump of both families through the read-ahead: the buffered rows, then the rest of the
 * dump. Same contract as diag_dump with sampler__row (*n_rows: rows passed on).
 */
static int sampler__prefetch_finish(sampler__prefetch_t *pf, sampler__pass_t *pass,
                                    uint32_t *n_rows)
{
    sockrow_t row;
    size_t off = 0;
    uint32_t got;
    int rc = 0;

    *n_rows = 0;
    sampler__prefetch_join(pf);
    while (rc == 0 && off < pf->len) {
        sampler__unpack(pf->buf, &off, &row);
        (*n_rows)++;
        rc = sampler__row(pass, &row);
    }
    if (rc == 0)
        rc = pf->rc;
    while (rc == 0 && !pf->done) {
        rc = diag_dump_read(pf->diag, sampler__row, pass, &got, &pf->done);
        *n_rows += got;
    }
    /* Whatever happened, the dump is over or abandoned: release the memory now. */
    free(pf->buf);
    pf->buf = NULL;
    pf->len = pf->cap = 0;
    diag_close(pf->diag);
    pf->diag = NULL;
    return rc;
}

static void sampler__name(void *ud, uint32_t pid, char *buf, size_t len)
{
    char path[40];
    ssize_t n;
    int fd;

    (void)ud;
    if (len == 0)
        return;
    buf[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%u/comm", (unsigned)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    buf[n] = '\0';
    if (buf[n - 1] == '\n')
        buf[n - 1] = '\0';
}

typedef struct sampler__exclude_s {
    analysis_t *an;
    uint32_t spans;
} sampler__exclude_t;

static int sampler__exclude_span(void *ud, uint32_t first, uint32_t last)
{
    sampler__exclude_t *x = ud;
    static const sockrow_proto_t protos[2] = {SOCKROW_TCP, SOCKROW_UDP};
    size_t i;
    int fam;
    int rc;

    for (i = 0; i < 2; i++) {
        for (fam = 4; fam <= 6; fam += 2) {
            rc = analysis_exclude(x->an, protos[i], fam, first, last);
            if (rc)
                return rc;
        }
    }
    x->spans++;
    return 0;
}

/*
 * Declares the range and reserved ports of the current namespace (read through /proc/sys, which
 * answers for the reading thread's network namespace) and notes tcp_tw_reuse.
 */
static int sampler__ranges(analysis_t *an, Epw__Snapshot *notes)
{
    static const sockrow_proto_t protos[2] = {SOCKROW_TCP, SOCKROW_UDP};
    Epw__RangeSource src = EPW__RANGE_SOURCE__RANGE_SYSCTL;
    uint32_t start = 0, count = 0, twr = 0;
    sampler__exclude_t x = {an, 0};
    uint8_t *buf = NULL;
    size_t len = 0, i;
    int fam;
    int rc;

    rc = sampler__read_file("/proc/sys/net/ipv4/ip_local_port_range", &buf, &len);
    if (rc == 0)
        rc = procparse_port_range(buf, len, &start, &count);
    free(buf);
    buf = NULL;
    if (rc) {
        src = EPW__RANGE_SOURCE__RANGE_DEFAULT;
        start = SAMPLER__DEFAULT_START;
        count = SAMPLER__DEFAULT_COUNT;
        rc = epw_snap_add_note(notes,
                               "net.ipv4.ip_local_port_range unreadable (%s): assumed the "
                               "default 32768-60999",
                               epw_strerror(rc));
        if (rc)
            return rc;
    }
    for (i = 0; i < 2; i++) {
        for (fam = 4; fam <= 6; fam += 2) {
            rc = analysis_set_range(an, protos[i], fam, start, count, src);
            if (rc)
                return rc;
        }
    }

    rc = sampler__read_file("/proc/sys/net/ipv4/ip_local_reserved_ports", &buf, &len);
    if (rc == 0)
        rc = procparse_reserved_ports(buf, len, sampler__exclude_span, &x);
    free(buf);
    buf = NULL;
    if (rc == UV_ENOMEM)
        return rc;
    if (rc) {
        rc = epw_snap_add_note(notes,
                               "net.ipv4.ip_local_reserved_ports unreadable (%s): none assumed",
                               epw_strerror(rc));
        if (rc)
            return rc;
    }

    rc = sampler__read_file("/proc/sys/net/ipv4/tcp_tw_reuse", &buf, &len);
    if (rc == 0)
        rc = procparse_uint(buf, len, &twr);
    free(buf);
    if (rc == 0)
        rc = epw_snap_add_note(notes, "net.ipv4.tcp_tw_reuse = %u (%s)", (unsigned)twr,
                               twr == 0   ? "TIME_WAIT ports are not reused"
                               : twr == 1 ? "outgoing connections may reuse TIME_WAIT ports"
                               : twr == 2 ? "TIME_WAIT ports reused for loopback only"
                                          : "unknown value");
    else if (rc != UV_ENOMEM)
        rc = 0; /* informational only */
    return rc;
}

/*
 * Samples the network namespace the calling thread is in. `pre` holds notes gathered before
 * (moved into the snapshot). `t0` is when the whole sample began (uv_hrtime), so the duration
 * includes the shared /proc scan. `pf` (may be NULL): the read-ahead of this namespace's TCP dump.
 */
static int sampler__sample_ns(sampler_t *s, const procfd_map_t *map, const char *netns, uint64_t t0,
                              sampler__prefetch_t *pf, Epw__Snapshot *pre, Epw__Snapshot **out)
{
    /* TCP of both families in one pass first; {TCP, 4} and {TCP, 6} only if that is refused. */
    static const struct {
        sockrow_proto_t proto;
        int family;
    } dumps[5] = {
        {SOCKROW_TCP, 0}, {SOCKROW_TCP, 4}, {SOCKROW_TCP, 6}, {SOCKROW_UDP, 4}, {SOCKROW_UDP, 6}};
    int tcp_both = 0;
    analysis_opts_t ao;
    sampler__pass_t pass;
    Epw__Snapshot *snap = NULL;
    Epw__Snapshot *notes = NULL;
    diag_t *diag = NULL;
    int64_t taken;
    size_t i;
    int rc;

    *out = NULL;
    memset(&pass, 0, sizeof(pass));
    memset(&ao, 0, sizeof(ao));
    ao.model = ANALYSIS_MODEL_LINUX;
    ao.top_n = s->opts.top_n;
    ao.top_destinations = s->opts.top_destinations;
    taken = epw_now_ms();
    /* Notes of our own go to a scratch snapshot first: analysis_finish writes the figures. */
    notes = epw_snap_new();
    snap = epw_snap_new();
    if (!notes || !snap) {
        rc = UV_ENOMEM;
        goto out;
    }
    rc = analysis_create(&ao, &pass.an);
    if (rc)
        goto out;
    pass.map = map;
    rc = sampler__ranges(pass.an, notes);
    if (rc)
        goto out;
    rc = diag_open(&diag);
    if (rc) {
        EPW_WARN(SAMPLER__SUB, "sock_diag socket: %s", epw_strerror(rc));
        goto out;
    }
    for (i = 0; i < 5; i++) {
        uint64_t td = uv_hrtime();
        uint32_t rows = 0;

        if (dumps[i].proto == SOCKROW_TCP && dumps[i].family != 0 && tcp_both)
            continue;
        /* UDP has no states of its own (7 = unconnected, 1 = connected): ask for all. */
        if (dumps[i].family == 0 && pf && pf->diag)
            rc = sampler__prefetch_finish(pf, &pass, &rows);
        else
            rc = diag_dump(diag, dumps[i].proto, dumps[i].family, DIAG_STATES_ALL, sampler__row,
                           &pass, &rows);
        EPW_DEBUG(SAMPLER__SUB, "%s/%s dump: %u rows in %.1f ms, %s",
                  dumps[i].proto == SOCKROW_TCP ? "tcp" : "udp",
                  dumps[i].family == 0   ? "any"
                  : dumps[i].family == 4 ? "ipv4"
                                         : "ipv6",
                  (unsigned)rows, (double)(uv_hrtime() - td) / 1e6, epw_strerror(rc));
        if (rc == UV_ENOMEM)
            goto out;
        if (dumps[i].family == 0) {
            if (rc == 0)
                tcp_both = 1;
            else if (rows)
                goto out; /* failed half-way: the rows already counted cannot be taken back */
            continue;
        }
        if (rc) {
            /* IPv6 disabled or udp_diag missing: the rest of the sample is still worth having. */
            rc = epw_snap_add_note(notes, "%s/%s sockets unavailable from sock_diag (%s)",
                                   dumps[i].proto == SOCKROW_TCP ? "tcp" : "udp",
                                   dumps[i].family == 6 ? "ipv6" : "ipv4", epw_strerror(rc));
            if (rc)
                goto out;
        }
    }
    rc = analysis_finish(pass.an, sampler__name, s, snap);
    if (rc)
        goto out;

    rc = sampler_common_stamp(snap, EPW__PLATFORM__LINUX, taken);
    if (rc)
        goto out;
    epw_snap_strfree(snap->netns);
    snap->netns = epw_snap_strdup(netns);
    if (!snap->netns) {
        rc = UV_ENOMEM;
        goto out;
    }
    snap->time_wait->seconds = SAMPLER__TIME_WAIT_S;
    snap->time_wait->is_default = 1;
    if (!s->bound_inactive) {
        rc = epw_snap_add_note(snap,
                               "kernel %s predates 6.8: TCP sockets bound but neither connected "
                               "nor listening are invisible to sock_diag",
                               s->release);
        if (rc)
            goto out;
    }
    rc = sampler_common_move_notes(pre, snap);
    if (rc == 0)
        rc = sampler_common_move_notes(notes, snap);
    if (rc)
        goto out;
    sampler_common_finish_duration(snap, t0);
    *out = snap;
    snap = NULL;
out:
    diag_close(diag);
    analysis_destroy(pass.an);
    epw_snap_free(notes);
    epw_snap_free(snap);
    return rc;
}

/* Notes about process attribution, added to every snapshot of the pass. */
static int sampler__attribution_notes(const sampler_t *s, const procfd_stats_t *st, int scan_rc,
                                      Epw__Snapshot *pre)
{
    if (!s->opts.attribute_pids)
        return epw_snap_add_note(pre, "process attribution off: owners unknown, so every range "
                                      "socket counts as kernel-owned");
    if (scan_rc)
        return epw_snap_add_note(pre, "process attribution failed: /proc unreadable (%s)",
                                 epw_strerror(scan_rc));
    if (st->procs_denied)
        return epw_snap_add_note(pre,
                                 "process attribution incomplete: the fd tables of %u of %u "
                                 "processes are unreadable (needs root or CAP_SYS_PTRACE)",
                                 (unsigned)st->procs_denied,
                                 (unsigned)(st->procs + st->procs_denied));
    /* hidepid hides other users' processes instead of refusing access. */
    if (geteuid() != 0 && access("/proc/1", F_OK) != 0)
        return epw_snap_add_note(pre, "process attribution incomplete: /proc is mounted with "
                                      "hidepid, other users' processes are invisible");
    return 0;
}

static int sampler__ns_add(sampler__nslist_t *l, const struct stat *st, uint32_t pid,
                           const char *name)
{
    sampler__ns_t *n;
    size_t i;

    for (i = 0; i < l->len; i++) {
        if (l->v[i].ino == (uint64_t)st->st_ino && l->v[i].dev == (uint64_t)st->st_dev) {
            if (name && !l->v[i].name[0])
                snprintf(l->v[i].name, sizeof(l->v[i].name), "%s", name);
            return 0;
        }
    }
    if (l->len >= SAMPLER__MAX_NETNS) {
        l->dropped++;
        return 0;
    }
    if (l->len == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        n = realloc(l->v, ncap * sizeof(*n));
        if (!n)
            return UV_ENOMEM;
        l->v = n;
        l->cap = ncap;
    }
    n = &l->v[l->len++];
    memset(n, 0, sizeof(*n));
    n->dev = (uint64_t)st->st_dev;
    n->ino = (uint64_t)st->st_ino;
    n->pid = pid;
    if (name)
        snprintf(n->name, sizeof(n->name), "%s", name);
    return 0;
}

/*
 * Every distinct network namespace: the sampling thread's own first, then those of processes
 * (/proc/<pid>/ns/net), then bind mounts under /run/netns that no process uses (`ip netns add`).
 */
static int sampler__list_netns(sampler__nslist_t *l)
{
    char path[300];
    struct stat st;
    struct dirent *d;
    uint32_t pid;
    DIR *dir;
    int rc = 0;

    if (stat("/proc/thread-self/ns/net", &st) != 0)
        return -errno;
    rc = sampler__ns_add(l, &st, 0, NULL);
    if (rc)
        return rc;
    l->v[0].self = 1;
    dir = opendir("/proc");
    if (!dir)
        return -errno;
    while ((d = readdir(dir)) != NULL) {
        if (procparse_pid(d->d_name, strlen(d->d_name), &pid))
            continue;
        snprintf(path, sizeof(path), "/proc/%u/ns/net", (unsigned)pid);
        if (stat(path, &st) != 0)
            continue; /* exited, or a kernel thread without namespaces, or not ours to see */
        rc = sampler__ns_add(l, &st, pid, NULL);
        if (rc)
            break;
    }
    closedir(dir);
    if (rc)
        return rc;
    dir = opendir("/run/netns");
    if (!dir)
        return 0; /* no named namespaces */
    while ((d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/run/netns/%s", d->d_name);
        /* Only bind mounts of namespace files count: they live on nsfs, like our own
         * namespace's file; a name whose mount is gone is a plain file on the tmpfs. */
        if (stat(path, &st) != 0 || (uint64_t)st.st_dev != l->v[0].dev)
            continue;
        rc = sampler__ns_add(l, &st, 0, d->d_name);
        if (rc)
            break;
    }
    closedir(dir);
    return rc;
}

/* Opens the namespace file of `ns` and checks it is still the same namespace. -1 when gone. */
static int sampler__open_ns(const sampler__ns_t *ns)
{
    char path[300];
    struct stat st;
    int fd;

    if (ns->name[0] && ns->pid == 0)
        snprintf(path, sizeof(path), "/run/netns/%s", ns->name);
    else
        snprintf(path, sizeof(path), "/proc/%u/ns/net", (unsigned)ns->pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != ns->ino || (uint64_t)st.st_dev != ns->dev) {
        close(fd);
        return -1;
    }
    return fd;
}

static void sampler__ns_label(const sampler__ns_t *ns, char *buf, size_t len)
{
    if (ns->name[0])
        snprintf(buf, len, "net:[%llu] %s", (unsigned long long)ns->ino, ns->name);
    else
        snprintf(buf, len, "net:[%llu]", (unsigned long long)ns->ino);
}

/* Appends snap to the growing result array. Takes snap in every case. */
static int sampler__push(Epw__Snapshot ***arr, size_t *n, Epw__Snapshot *snap)
{
    Epw__Snapshot **na = realloc(*arr, (*n + 1) * sizeof(*na));

    if (!na) {
        epw_snap_free(snap);
        return UV_ENOMEM;
    }
    na[(*n)++] = snap;
    *arr = na;
    return 0;
}

static int sampler__all_netns(sampler_t *s, const procfd_map_t *map, uint64_t t0,
                              sampler__prefetch_t *pf, Epw__Snapshot *pre, Epw__Snapshot ***arr,
                              size_t *n)
{
    sampler__nslist_t l;
    Epw__Snapshot *skipped = NULL; /* notes about namespaces that could not be sampled */
    Epw__Snapshot *pre_copy = NULL;
    Epw__Snapshot *snap = NULL;
    char label[128];
    size_t i, k;
    int self_fd = -1;
    int fd;
    int rc;

    memset(&l, 0, sizeof(l));
    skipped = epw_snap_new();
    if (!skipped) {
        rc = UV_ENOMEM;
        goto out;
    }
    rc = sampler__list_netns(&l);
    if (rc)
        goto out;
    self_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_fd < 0) {
        rc = -errno;
        goto out;
    }
    if (l.dropped) {
        rc = epw_snap_add_note(skipped, "%u network namespaces beyond the first %u not sampled",
                               (unsigned)l.dropped, SAMPLER__MAX_NETNS);
        if (rc)
            goto out;
    }
    for (i = 0; i < l.len; i++) {
        sampler__ns_label(&l.v[i], label, sizeof(label));
        fd = -1;
        if (!l.v[i].self) {
            fd = sampler__open_ns(&l.v[i]);
            if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
                if (fd >= 0)
                    close(fd);
                rc = epw_snap_add_note(skipped, "%s vanished or not enterable: not sampled", label);
                if (rc)
                    goto out;
                continue;
            }
        }
        /* Every snapshot carries the pass-wide notes; the first also the skipped list. */
        pre_copy = epw_snap_new();
        rc = pre_copy ? 0 : UV_ENOMEM;
        for (k = 0; rc == 0 && k < pre->n_notes; k++)
            rc = epw_snap_add_note(pre_copy, "%s", pre->notes[k]);
        if (rc == 0)
            rc = sampler__sample_ns(s, map, label, t0, l.v[i].self ? pf : NULL, pre_copy, &snap);
        if (fd >= 0) {
            close(fd);
            /* Back home: this thread must not stay in another namespace whatever happened. */
            if (setns(self_fd, CLONE_NEWNET) != 0) {
                int err = -errno;
                EPW_ERROR(SAMPLER__SUB, "cannot return to the agent's network namespace: %s",
                          epw_strerror(err));
                if (rc == 0)
                    rc = err;
            }
        }
        epw_snap_free(pre_copy);
        pre_copy = NULL;
        if (rc)
            goto out;
        rc = sampler__push(arr, n, snap);
        snap = NULL;
        if (rc)
            goto out;
    }
    if (*n > 0)
        rc = sampler_common_move_notes(skipped, (*arr)[0]);
out:
    if (self_fd >= 0)
        close(self_fd);
    free(l.v);
    epw_snap_free(pre_copy);
    epw_snap_free(skipped);
    return rc;
}

int sampler_sample(sampler_t *s, Epw__Snapshot ***out, size_t *n_out)
{
    Epw__Snapshot **arr = NULL;
    Epw__Snapshot *pre = NULL; /* notes that apply to every snapshot of this pass */
    Epw__Snapshot *snap = NULL;
    procfd_map_t *map = NULL;
    sampler__prefetch_t pf;
    procfd_stats_t st;
    uint64_t t0 = uv_hrtime();
    size_t n = 0, i;
    int scan_rc = 0;
    int rc;

    *out = NULL;
    *n_out = 0;
    memset(&st, 0, sizeof(st));
    memset(&pf, 0, sizeof(pf));
    pre = epw_snap_new();
    if (!pre) {
        rc = UV_ENOMEM;
        goto out;
    }
    /* Owners first, so rows are attributed as they stream past and none has to be stored. */
    if (s->opts.attribute_pids) {
        /* Without a second core the read-ahead would only take turns with the scan. */
        if (s->scan_threads > 1)
            sampler__prefetch_start(&pf);
        rc = procfd_map_create(s->map_hint, &map);
        if (rc)
            goto out;
        scan_rc = procfd_map_scan(map, "/proc", s->scan_threads, &st);
        if (scan_rc == UV_ENOMEM) {
            rc = scan_rc;
            goto out;
        }
        /* Room for some growth, so the next scan rarely rehashes. */
        s->map_hint = st.inodes + st.inodes / 8u;
        EPW_DEBUG(SAMPLER__SUB, "owner scan: %u processes, %u socket fds, %u inodes in %.1f ms",
                  (unsigned)st.procs, (unsigned)st.sockets, (unsigned)st.inodes,
                  (double)(uv_hrtime() - t0) / 1e6);
    }
    rc = sampler__attribution_notes(s, &st, scan_rc, pre);
    if (rc)
        goto out;
    if (s->opts.all_netns) {
        rc = sampler__all_netns(s, map, t0, &pf, pre, &arr, &n);
    } else {
        rc = sampler__sample_ns(s, map, "", t0, &pf, pre, &snap);
        if (rc == 0) {
            rc = sampler__push(&arr, &n, snap);
            snap = NULL;
        }
    }
    if (rc)
        goto out;
    *out = arr;
    *n_out = n;
    arr = NULL;
    n = 0;
out:
    for (i = 0; i < n; i++)
        epw_snap_free(arr[i]);
    free(arr);
    sampler__prefetch_free(&pf);
    procfd_map_destroy(map);
    epw_snap_free(pre);
    return rc;
}
