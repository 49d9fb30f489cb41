/* procfd_linux: inode -> PID map built from /proc/<pid>/fd with dirfd-relative readlinkat. */
#include "procfd_linux.h"

#include <dirent.h>
#include <errno.h>
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
        if (slots[i].inode == inode)
            return;
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

static int procfd__grow(procfd_map_t *m)
{
    uint32_t nbits = m->bits + 1u;
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

/* Records fd `name` of `pid` when it is a socket. 1 when the fd exists, 0 when not, or
 * UV_ENOMEM. */
static int procfd__one_fd(procfd_map_t *m, int dfd, const char *name, uint32_t pid,
                          procfd_stats_t *st)
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
    st->sockets++;
    rc = procfd_map_put(m, inode, pid);
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

/*
 * Reads the socket fds of one process through its open fd directory.
 *
 * Listing the directory costs the kernel about as much per fd as reading the link, so for big fd
 * tables the links are read by number instead: since Linux 6.2 the directory's st_size is the
 * number of open fds, so probing 0, 1, 2... stops once that many were found. Fd tables of busy
 * processes are dense; a sparse one exhausts the miss budget and the rest is listed normally,
 * from the fd reached (the directory offset of fd n is n + 2). Both facts hold for procfs only:
 * `probe` is 0 elsewhere (test fixtures on tmpfs).
 */
static int procfd__scan_fds(procfd_map_t *m, int dfd, uint32_t pid, int probe, char *dents,
                            procfd_stats_t *st)
{
    struct stat ds;
    uint32_t want = 0, found = 0, misses = 0, budget, fd = 0;
    char name[12];
    ssize_t n, off;
    int rc;

    if (probe && fstat(dfd, &ds) == 0 && ds.st_size >= PROCFD__PROBE_MIN &&
        ds.st_size <= UINT32_MAX)
        want = (uint32_t)ds.st_size;
    budget = want / 8u + 16u;
    while (found < want && misses <= budget) {
        procfd__fd_name(fd++, name);
        rc = procfd__one_fd(m, dfd, name, pid, st);
        if (rc < 0)
            return rc;
        if (rc)
            found++;
        else
            misses++;
    }
    if (want && found >= want)
        return 0;
    if (fd > 0 && lseek(dfd, (off_t)fd + 2, SEEK_SET) < 0)
        return 0;
    for (;;) {
        n = getdents64(dfd, dents, PROCFD__DENTS_BUF);
        if (n <= 0)
            return 0; /* end, or the process went away: what was read stays */
        for (off = 0; off < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(const void *)(dents + off);

            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9')
                continue; /* "." and ".." */
            rc = procfd__one_fd(m, dfd, d->d_name, pid, st);
            if (rc < 0)
                return rc;
        }
    }
}

int procfd_map_scan(procfd_map_t *m, const char *proc_root, procfd_stats_t *stats)
{
    procfd_stats_t local;
    procfd_stats_t *st = stats ? stats : &local;
    char *dents = NULL;
    char path[32];
    struct statfs sfs;
    uint32_t pid;
    ssize_t n, off;
    int pfd, dfd, probe;
    int rc = 0;

    memset(st, 0, sizeof(*st));
    pfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
        return -errno;
    probe = fstatfs(pfd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC;
    /* One buffer for the /proc listing, one for the fd directory being read. */
    dents = malloc(2u * PROCFD__DENTS_BUF);
    if (!dents) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (;;) {
        n = getdents64(pfd, dents, PROCFD__DENTS_BUF);
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        for (off = 0; off < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(const void *)(dents + off);

            off += d->d_reclen;
            if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
                continue;
            if (procparse_pid(d->d_name, strlen(d->d_name), &pid))
                continue;
            snprintf(path, sizeof(path), "%u/fd", (unsigned)pid);
            dfd = openat(pfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd < 0) {
                if (errno == EACCES || errno == EPERM)
                    st->procs_denied++;
                continue; /* ENOENT: exited meanwhile */
            }
            st->procs++;
            rc = procfd__scan_fds(m, dfd, pid, probe, dents + PROCFD__DENTS_BUF, st);
            close(dfd);
            if (rc)
                goto out;
        }
    }
out:
    st->inodes = m->count;
    free(dents);
    close(pfd);
    return rc;
}
