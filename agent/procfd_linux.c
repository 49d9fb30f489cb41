/* procfd_linux: inode -> PID map built from /proc/<pid>/fd with dirfd-relative readlinkat. */
#include "procfd_linux.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <uv.h>

#include "procparse_linux.h"

typedef struct procfd__slot_s {
    uint32_t inode; /* 0: empty (no socket has inode 0) */
    uint32_t pid;
} procfd__slot_t;

struct procfd_map_s {
    procfd__slot_t *slots;
    uint32_t bits; /* capacity = 1 << bits */
    uint32_t count;
};

#define PROCFD__MIN_BITS 10u
/* getdents64 buffer for /proc itself and for each fd directory: big enough that a process with
 * tens of thousands of fds needs few calls, small enough not to matter for RSS. */
#define PROCFD__DENTS_BUF (32u * 1024u)
/* Fd tables at least this big are read by fd number rather than listed (see scan_fds). */
#define PROCFD__PROBE_MIN 64
/* With helper threads, fd tables of at least PROCFD__SPLIT_MIN fds are cut into units of
 * PROCFD__CHUNK fd numbers (about 3 ms of kernel time each), so that a few big holders still
 * spread over every thread; smaller tables are one unit, and no unit is much longer than this. */
#define PROCFD__CHUNK     2048u
#define PROCFD__SPLIT_MIN (2u * PROCFD__CHUNK)
/* Presizing from the fd count stops here (a 2 MiB table): beyond, the maps grow as needed. */
#define PROCFD__PRESIZE_MAX 229376u

/* Fibonacci hashing spreads the kernel's runs of consecutive inode numbers evenly. (Keeping
 * their locality instead, to spare cache misses, was tried: with linear probing the runs merge
 * into long clusters and the scan got four times slower.) */
static uint32_t procfd__hash(uint32_t inode, uint32_t bits)
{
    return (uint32_t)(inode * 2654435769u) >> (32u - bits);
}

static uint32_t procfd__bits_for(uint32_t n)
{
    uint32_t bits = PROCFD__MIN_BITS;

    /* Keep the table at most 7/8 full. */
    while (bits < 31u && (uint64_t)n * 8u > ((uint64_t)1u << bits) * 7u)
        bits++;
    return bits;
}

static void procfd__insert(procfd__slot_t *slots, uint32_t bits, uint32_t inode, uint32_t pid,
                           uint32_t *count)
{
    uint32_t mask = (1u << bits) - 1u;
    uint32_t i = procfd__hash(inode, bits);

    for (;;) {
        if (slots[i].inode == 0) {
            slots[i].inode = inode;
            slots[i].pid = pid;
            (*count)++;
            return;
        }
        if (slots[i].inode == inode) {
            if (pid < slots[i].pid)
                slots[i].pid = pid;
            return;
        }
        i = (i + 1u) & mask;
    }
}

int procfd_map_create(uint32_t hint, procfd_map_t **out)
{
    procfd_map_t *m;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return UV_ENOMEM;
    m->bits = procfd__bits_for(hint);
    m->slots = calloc((size_t)1u << m->bits, sizeof(*m->slots));
    if (!m->slots) {
        free(m);
        return UV_ENOMEM;
    }
    *out = m;
    return 0;
}

void procfd_map_destroy(procfd_map_t *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

/* Rehashes into a table of 1 << nbits slots (nbits > m->bits): one allocation however far. */
static int procfd__resize(procfd_map_t *m, uint32_t nbits)
{
    uint32_t cap = 1u << m->bits;
    uint32_t count = 0;
    procfd__slot_t *ns;
    uint32_t i;

    if (nbits > 31u)
        return UV_ENOMEM;
    ns = calloc((size_t)1u << nbits, sizeof(*ns));
    if (!ns)
        return UV_ENOMEM;
    for (i = 0; i < cap; i++)
        if (m->slots[i].inode)
            procfd__insert(ns, nbits, m->slots[i].inode, m->slots[i].pid, &count);
    free(m->slots);
    m->slots = ns;
    m->bits = nbits;
    return 0;
}

static int procfd__grow(procfd_map_t *m)
{
    return procfd__resize(m, m->bits + 1u);
}

/* Makes room for `n` inodes in all. */
static int procfd__reserve(procfd_map_t *m, uint64_t n)
{
    uint32_t nbits = procfd__bits_for(n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);

    return nbits > m->bits ? procfd__resize(m, nbits) : 0;
}

int procfd_map_put(procfd_map_t *m, uint32_t inode, uint32_t pid)
{
    int rc;

    if (inode == 0)
        return 0;
    if ((uint64_t)(m->count + 1u) * 8u > ((uint64_t)1u << m->bits) * 7u) {
        rc = procfd__grow(m);
        if (rc)
            return rc;
    }
    procfd__insert(m->slots, m->bits, inode, pid, &m->count);
    return 0;
}

uint32_t procfd_map_get(const procfd_map_t *m, uint32_t inode)
{
    uint32_t mask = (1u << m->bits) - 1u;
    uint32_t i;

    if (inode == 0)
        return 0;
    i = procfd__hash(inode, m->bits);
    /* Terminates: the table always has empty slots (at most 7/8 full). */
    for (;;) {
        if (m->slots[i].inode == inode)
            return m->slots[i].pid;
        if (m->slots[i].inode == 0)
            return 0;
        i = (i + 1u) & mask;
    }
}

uint32_t procfd_map_count(const procfd_map_t *m)
{
    return m->count;
}

/* Adds every entry of `src` to `dst` (lowest PID wins, as for put). 0 or UV_ENOMEM. */
static int procfd__merge(procfd_map_t *dst, const procfd_map_t *src)
{
    uint32_t cap = 1u << src->bits;
    uint32_t i;
    int rc;

    /* One growth up front rather than several during the loop. */
    rc = procfd__reserve(dst, (uint64_t)dst->count + src->count);
    if (rc)
        return rc;
    for (i = 0; i < cap; i++) {
        if (src->slots[i].inode) {
            rc = procfd_map_put(dst, src->slots[i].inode, src->slots[i].pid);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* One process to read. */
typedef struct procfd__proc_s {
    uint32_t pid;
    uint32_t want;          /* open fds (the fd directory's st_size on procfs 6.2+), else 0 */
    _Atomic uint32_t found; /* fds found so far by all the units of this process */
} procfd__proc_t;

/* One unit of work: the fds numbered first..end-1 of one process (end UINT32_MAX: no bound). */
typedef struct procfd__unit_s {
    uint32_t proc; /* index in procfd__scan_t.procs */
    uint32_t first;
    uint32_t end;
} procfd__unit_t;

/* A scan in progress: the work list is built by the calling thread before any helper starts and
 * is read-only afterwards, but for the atomics. */
typedef struct procfd__scan_s {
    int pfd;   /* proc_root */
    int probe; /* procfs: fd counts and fd-number offsets hold (see scan_fds) */
    uint32_t self_pid;
    unsigned threads;
    procfd__proc_t *procs;
    size_t n_procs, cap_procs;
    procfd__unit_t *units;
    size_t n_units, cap_units;
    _Atomic size_t next; /* next unit to take */
    _Atomic int stop;    /* a worker failed (UV_ENOMEM): the others stop too */
} procfd__scan_t;

/* One thread's share: its own map, stats and buffer, so no locking is needed. */
typedef struct procfd__worker_s {
    procfd__scan_t *sc;
    procfd_map_t *map;
    procfd_stats_t st;
    char *dents; /* PROCFD__DENTS_BUF bytes */
    int rc;
    int started; /* a helper thread runs it (joined before the merge) */
    uv_thread_t tid;
} procfd__worker_t;

/* Records fd `name` of `pid` when it is a socket. 1 when the fd exists, 0 when not, or
 * UV_ENOMEM. */
static int procfd__one_fd(procfd__worker_t *w, int dfd, const char *name, uint32_t pid)
{
    char link[32];
    uint32_t inode;
    ssize_t ln;
    int rc;

    ln = readlinkat(dfd, name, link, sizeof(link));
    if (ln <= 0)
        return 0; /* closed meanwhile, or never open */
    if ((size_t)ln >= sizeof(link))
        return 1; /* too long to be "socket:[N]" */
    /* Cheap reject before parsing: socket links all start with 's' and end with ']'. */
    if (link[0] != 's' || link[ln - 1] != ']' || procparse_socket_link(link, (size_t)ln, &inode))
        return 1;
    w->st.sockets++;
    rc = procfd_map_put(w->map, inode, pid);
    return rc ? rc : 1;
}

/* Formats fd number n as a decimal name. */
static void procfd__fd_name(uint32_t n, char *buf)
{
    char tmp[12];
    size_t i = 0, j = 0;

    do {
        tmp[i++] = (char)('0' + n % 10u);
        n /= 10u;
    } while (n);
    while (i)
        buf[j++] = tmp[--i];
    buf[j] = '\0';
}

/* The fd number of a directory entry name; UINT32_MAX when it is not one ("." and ".."). */
static uint32_t procfd__fd_number(const char *name)
{
    uint64_t v = 0;
    size_t i;

    if (name[0] < '0' || name[0] > '9')
        return UINT32_MAX;
    for (i = 0; name[i] >= '0' && name[i] <= '9' && i < 10; i++)
        v = v * 10u + (uint64_t)(name[i] - '0');
    return name[i] == '\0' && v < UINT32_MAX ? (uint32_t)v : UINT32_MAX;
}

/*
 * Reads the socket fds numbered first..end-1 of one process through its open fd directory.
 *
 * Listing the directory costs the kernel about as much per fd as reading the link, so for big fd
 * tables the links are read by number instead: since Linux 6.2 the directory's st_size is the
 * number of open fds, so probing first, first+1... stops once that many were found (by every
 * unit of the process together). Fd tables of busy processes are dense; a sparse stretch exhausts
 * the miss budget and the rest of the range is listed normally, from the fd reached (the
 * directory offset of fd n is n + 2). Both facts hold for procfs only: p->want is 0 elsewhere
 * (test fixtures on tmpfs), and the range is then listed whole.
 */
static int procfd__scan_fds(procfd__worker_t *w, int dfd, procfd__proc_t *p, uint32_t first,
                            uint32_t end)
{
    uint32_t want = p->want, misses = 0, budget, span, fd = first, num;
    char name[12];
    ssize_t n, off;
    int rc;

    span = end - first;
    budget = (want < span ? want : span) / 8u + 16u;
    if (want >= PROCFD__PROBE_MIN) {
        while (fd < end && misses <= budget &&
               atomic_load_explicit(&p->found, memory_order_relaxed) < want) {
            procfd__fd_name(fd++, name);
            rc = procfd__one_fd(w, dfd, name, p->pid);
            if (rc < 0)
                return rc;
            if (rc)
                atomic_fetch_add_explicit(&p->found, 1u, memory_order_relaxed);
            else
                misses++;
        }
        if (fd >= end || atomic_load_explicit(&p->found, memory_order_relaxed) >= want)
            return 0;
    }
    if (fd > 0 && lseek(dfd, (off_t)fd + 2, SEEK_SET) < 0)
        return 0;
    for (;;) {
        n = getdents64(dfd, w->dents, PROCFD__DENTS_BUF);
        if (n <= 0)
            return 0; /* end, or the process went away: what was read stays */
        for (off = 0; off < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(const void *)(w->dents + off);

            off += d->d_reclen;
            num = procfd__fd_number(d->d_name);
            if (num == UINT32_MAX)
                continue; /* "." and ".." */
            if (num >= end)
                return 0; /* listed in fd order: the rest belongs to the next unit */
            rc = procfd__one_fd(w, dfd, d->d_name, p->pid);
            if (rc < 0)
                return rc;
        }
    }
}

static int procfd__scan_unit(procfd__worker_t *w, const procfd__unit_t *u)
{
    procfd__proc_t *p = &w->sc->procs[u->proc];
    char path[32];
    int dfd, rc;

    snprintf(path, sizeof(path), "%u/fd", (unsigned)p->pid);
    dfd = openat(w->sc->pfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        /* Each process has exactly one unit starting at fd 0: count it there only. */
        if (u->first == 0 && (errno == EACCES || errno == EPERM))
            w->st.procs_denied++;
        return 0; /* ENOENT: exited meanwhile */
    }
    if (u->first == 0)
        w->st.procs++;
    rc = procfd__scan_fds(w, dfd, p, u->first, u->end);
    close(dfd);
    return rc;
}

static void procfd__work(void *arg)
{
    procfd__worker_t *w = arg;
    procfd__scan_t *sc = w->sc;
    size_t i;

    while (!atomic_load_explicit(&sc->stop, memory_order_relaxed)) {
        i = atomic_fetch_add_explicit(&sc->next, 1u, memory_order_relaxed);
        if (i >= sc->n_units)
            break;
        w->rc = procfd__scan_unit(w, &sc->units[i]);
        if (w->rc) {
            atomic_store_explicit(&sc->stop, 1, memory_order_relaxed);
            break;
        }
    }
}

static int procfd__add_unit(procfd__scan_t *sc, uint32_t proc, uint32_t first, uint32_t end)
{
    procfd__unit_t *nu;
    size_t ncap;

    if (sc->n_units == sc->cap_units) {
        ncap = sc->cap_units ? sc->cap_units * 2u : 256u;
        nu = realloc(sc->units, ncap * sizeof(*nu));
        if (!nu)
            return UV_ENOMEM;
        sc->units = nu;
        sc->cap_units = ncap;
    }
    nu = &sc->units[sc->n_units++];
    nu->proc = proc;
    nu->first = first;
    nu->end = end;
    return 0;
}

/*
 * Adds process `pid` to the work list: one unit, or with helpers (`split`) one per
 * PROCFD__CHUNK fd numbers of a big table, the last one unbounded so that fds opened beyond the
 * count are still found. `skip_empty`: fd counts are real, and a process without fds (a kernel
 * thread) owns no socket.
 */
static int procfd__add_proc(procfd__scan_t *sc, uint32_t pid, int split, int skip_empty)
{
    procfd__proc_t *np;
    struct stat ds;
    uint32_t want = 0, first, idx;
    char path[32];
    size_t ncap;
    int rc;

    if (sc->probe) {
        snprintf(path, sizeof(path), "%u/fd", (unsigned)pid);
        if (fstatat(sc->pfd, path, &ds, 0) == 0) {
            if (ds.st_size == 0 && skip_empty)
                return 0;
            want = ds.st_size > 0 && ds.st_size < UINT32_MAX - 64u ? (uint32_t)ds.st_size : 0;
            /* Our own table changes under the scan: every thread opens a directory fd of its
             * own. Counting those could end the probing before a real fd is reached, so the
             * count is raised by as many (the probing then ends on misses, and the rest is
             * listed). */
            if (want && pid == sc->self_pid)
                want += sc->threads;
        } else if (errno == ENOENT) {
            return 0; /* exited */
        }
        /* Other errors: the unit's open reports them (EACCES counts as denied). */
    }
    if (sc->n_procs == sc->cap_procs) {
        ncap = sc->cap_procs ? sc->cap_procs * 2u : 256u;
        np = realloc(sc->procs, ncap * sizeof(*np));
        if (!np)
            return UV_ENOMEM;
        sc->procs = np;
        sc->cap_procs = ncap;
    }
    idx = (uint32_t)sc->n_procs++;
    np = &sc->procs[idx];
    np->pid = pid;
    np->want = want;
    atomic_init(&np->found, 0u);
    if (!split || want < PROCFD__SPLIT_MIN)
        return procfd__add_unit(sc, idx, 0, UINT32_MAX);
    for (first = 0; want - first > PROCFD__CHUNK; first += PROCFD__CHUNK) {
        rc = procfd__add_unit(sc, idx, first, first + PROCFD__CHUNK);
        if (rc)
            return rc;
    }
    return procfd__add_unit(sc, idx, first, UINT32_MAX);
}

/* Lists the PIDs under proc_root into the work list. */
static int procfd__list(procfd__scan_t *sc, char *dents, int split)
{
    struct stat ds;
    uint32_t pid;
    ssize_t n, off;
    int skip_empty;
    int rc;

    /* Our own fd table is never empty (pfd is open): a zero size means sizes are not counts. */
    skip_empty = sc->probe && fstatat(sc->pfd, "self/fd", &ds, 0) == 0 && ds.st_size > 0;
    /* Our own PID as this procfs numbers it (it may belong to another PID namespace). */
    n = readlinkat(sc->pfd, "self", dents, 16);
    if (n <= 0 || procparse_pid(dents, (size_t)n, &sc->self_pid))
        sc->self_pid = 0;
    for (;;) {
        n = getdents64(sc->pfd, dents, PROCFD__DENTS_BUF);
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        for (off = 0; off < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(const void *)(dents + off);

            off += d->d_reclen;
            if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
                continue;
            if (procparse_pid(d->d_name, strlen(d->d_name), &pid))
                continue;
            rc = procfd__add_proc(sc, pid, split, skip_empty);
            if (rc)
                return rc;
        }
    }
}

int procfd_map_scan(procfd_map_t *m, const char *proc_root, unsigned threads, procfd_stats_t *stats)
{
    procfd__worker_t w[PROCFD_MAX_THREADS];
    procfd_stats_t local;
    procfd_stats_t *st = stats ? stats : &local;
    procfd__scan_t sc;
    struct statfs sfs;
    uint64_t fds;
    uint32_t hint;
    unsigned nw, i;
    int rc = 0;

    memset(st, 0, sizeof(*st));
    memset(w, 0, sizeof(w));
    memset(&sc, 0, sizeof(sc));
    atomic_init(&sc.next, 0u);
    atomic_init(&sc.stop, 0);
    nw = threads == 0 ? 1u : threads > PROCFD_MAX_THREADS ? PROCFD_MAX_THREADS : threads;
    sc.pfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sc.pfd < 0)
        return -errno;
    sc.probe = fstatfs(sc.pfd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC;
    for (i = 0; i < nw; i++) {
        w[i].sc = &sc;
        w[i].dents = malloc(PROCFD__DENTS_BUF);
        if (!w[i].dents) {
            rc = UV_ENOMEM;
            goto out;
        }
    }
    sc.threads = nw;
    rc = procfd__list(&sc, w[0].dents, nw > 1);
    if (rc)
        goto out;
    /* No more threads than units. */
    if (nw > sc.n_units)
        nw = sc.n_units ? (unsigned)sc.n_units : 1u;
    /* Size the maps once rather than grow them step by step (each growth rehashes): the open fds
     * bound the sockets to find, up to a cap beyond which they may well be mostly files. Each
     * helper's map starts at its share. */
    fds = 0;
    for (i = 0; i < sc.n_procs; i++)
        fds += sc.procs[i].want;
    if (fds > PROCFD__PRESIZE_MAX)
        fds = PROCFD__PRESIZE_MAX;
    rc = procfd__reserve(m, fds);
    if (rc)
        goto out;
    w[0].map = m;
    hint = (uint32_t)(((uint64_t)1u << m->bits) * 7u / 8u / nw);
    for (i = 1; i < nw; i++) {
        rc = procfd_map_create(hint, &w[i].map);
        if (rc)
            goto out;
    }
    /* Helpers are started only once the work list is complete and never touch it but through
     * the atomics, so thread creation is the only synchronisation needed before the join. */
    for (i = 1; i < nw; i++)
        w[i].started = uv_thread_create(&w[i].tid, procfd__work, &w[i]) == 0;
    procfd__work(&w[0]);
    for (i = 1; i < nw; i++) {
        if (!w[i].started)
            continue;
        uv_thread_join(&w[i].tid);
        w[i].started = 0;
    }
    /* A helper that never started left its units to the others (they take from one counter). */
    for (i = 0; i < nw; i++) {
        if (rc == 0)
            rc = w[i].rc;
        st->procs += w[i].st.procs;
        st->procs_denied += w[i].st.procs_denied;
        st->sockets += w[i].st.sockets;
    }
    for (i = 1; rc == 0 && i < nw; i++)
        rc = procfd__merge(m, w[i].map);
out:
    for (i = 0; i < PROCFD_MAX_THREADS; i++) {
        if (i > 0)
            procfd_map_destroy(w[i].map);
        free(w[i].dents);
    }
    free(sc.units);
    free(sc.procs);
    st->inodes = m->count;
    close(sc.pfd);
    return rc;
}
