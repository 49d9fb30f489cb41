/* procfd_linux: socket inode -> owning PID, from a scan of every /proc/<pid>/fd directory. */
#ifndef PROCFD_LINUX_H
#define PROCFD_LINUX_H

#include <stddef.h>
#include <stdint.h>

/*
 * The map is a compact open-addressing hash (8 bytes per slot, at most 7/8 full) from a socket
 * inode to the lowest PID holding it (usually the parent of a forked holder). Lowest rather than
 * first found: a threaded scan finds holders in no fixed order, and its map must not depend on
 * the scheduling. Socket inodes are unique host-wide (one sockfs), so one map serves every network
 * namespace. Heap object: one thread at a time; no internal locking (procfd_map_scan's helper
 * threads fill maps of their own, merged into `m` on the calling thread).
 */
typedef struct procfd_map_s procfd_map_t;

typedef struct procfd_stats_s {
    uint32_t procs;        /* processes whose fd directory was read */
    uint32_t procs_denied; /* processes whose fd directory could not be opened (EACCES/EPERM) */
    uint32_t sockets;      /* socket fds seen (an inode held by several fds counts each time) */
    uint32_t inodes;       /* distinct socket inodes in the map */
} procfd_stats_t;

/*
 * An empty map sized for about `hint` inodes (0: a small default); it grows as needed.
 * *out is NULL on failure. 0 or UV_ENOMEM.
 */
int procfd_map_create(uint32_t hint, procfd_map_t **out);
/* NULL is a no-op. */
void procfd_map_destroy(procfd_map_t *m);

/* Records inode -> pid, or lowers the PID of an inode already present (the lowest holder wins).
 * inode 0 is ignored. 0 or UV_ENOMEM (the map is unchanged then). */
int procfd_map_put(procfd_map_t *m, uint32_t inode, uint32_t pid);

/* The PID recorded for `inode`, or 0 when none (inode 0 always gives 0). */
uint32_t procfd_map_get(const procfd_map_t *m, uint32_t inode);

/* Distinct inodes recorded. */
uint32_t procfd_map_count(const procfd_map_t *m);

/* Most threads procfd_map_scan uses, whatever it is asked for. */
#define PROCFD_MAX_THREADS 8u

/*
 * Adds every socket fd of every process under `proc_root` (normally "/proc"). Opens each
 * <pid>/fd as a directory fd and reads links relative to it; non-socket links are skipped after
 * one readlinkat. Processes that exit during the scan are skipped silently; fd directories that
 * cannot be opened are counted in stats->procs_denied. On procfs that reports fd counts (Linux
 * 6.2+), processes without fds (kernel threads) are skipped unopened and not counted.
 *
 * The kernel's per-fd cost dominates, so the work is spread over `threads` threads (0 and 1: the
 * calling thread alone; capped at PROCFD_MAX_THREADS): the calling thread plus helpers it starts
 * and joins before returning. Units of work are whole processes, and fd-number ranges of big
 * ones, taken from a shared counter. Each helper fills a map of its own (bounded like `m`), merged
 * into `m` at the end; the result is the same for any thread count. Should a helper fail to
 * start, the others do its share.
 *
 * *stats (may be NULL) is cleared first. Returns 0, UV_ENOMEM, or the error opening proc_root.
 */
int procfd_map_scan(procfd_map_t *m, const char *proc_root, unsigned threads,
                    procfd_stats_t *stats);

#endif
