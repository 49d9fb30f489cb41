/* spool: the agent's on-disk queue of snapshots the collector has not acknowledged yet. */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <stdint.h>

/*
 * What it guarantees. Every snapshot handed to spool_append that returned 0 survives a crash or a
 * restart of the agent until spool_ack covers its seq, or until the size limit forces it out
 * (then the loss is counted, see "Drops"). Sequence numbers never go backwards across restarts:
 * the first is 1, and a seq that was ever stored (hence possibly sent) is never handed out again.
 *
 * On-disk layout (one directory, one process: a second agent on the same directory is not
 * detected and would corrupt the accounting):
 *   NNNNNNNNNNNNNNNNNNNN.ent  one file per snapshot, the seq in 20 zero-padded digits so names
 *                             sort numerically. A 32-byte little-endian header ("EPWS", version
 *                             1, seq, dropped_before at append time, payload length, CRC-32 of
 *                             header+payload) and the encoded Snapshot.
 *   spool.state               44 bytes, CRC-protected: floor (every seq <= floor is gone: acked or
 *                             dropped), the highest seq used, and the drop counts not yet carried
 *                             by an entry file.
 *   *.tmp                     a write in progress.
 * Why a file per entry, written to a temp name and renamed: each append and each state change
 * becomes visible atomically (rename), so a crash mid-write leaves only a *.tmp that the next
 * open deletes; acks and drops are plain unlinks of whole files with no compaction of segment
 * files; and the state file, written the same way before any unlink, is the single commit point
 * of an ack or a drop. The CRC still guards against a file system that reorders or loses data
 * behind a rename (power loss without ordered metadata): a damaged file is discarded on open,
 * counted, and logged. Files are fsynced before the rename, and on POSIX the directory after it.
 * At one snapshot per interval (10 s by default), a file per entry costs little; spool_bytes
 * counts header + payload of the entry files, which is what max_bytes limits.
 *
 * Drops. When an append would push spool_bytes above max_bytes, the OLDEST entries are removed
 * until it fits. A snapshot larger than max_bytes on its own is refused (EPW_E_TOOBIG), and a
 * snapshot whose write fails is lost too; both count as dropped. Each entry reports, in
 * spool_entry_t.dropped_before, how many snapshots were lost immediately before it (the seqs
 * between it and the previous surviving entry); the uplink copies it into
 * Snapshot.dropped_before when sending, so the collector records the gap. Entries found damaged
 * when the spool is opened (or read) are discarded and added to the following entry's
 * dropped_before as well (best effort for damage in the middle of the spool; exact at the head and
 * the tail, which is where a crash leaves damage).
 *
 * Threads: every function is thread-safe (one internal mutex) and, except spool_next_seq,
 * spool_count, spool_bytes and spool_get_stats, does blocking file I/O (synchronous uv_fs_*
 * calls): call them from a worker thread (uv_queue_work) or at start-up, never from the loop
 * thread. Portable to Windows: uv_fs_rename replaces an existing target there (MoveFileEx with
 * MOVEFILE_REPLACE_EXISTING); a transient sharing violation (antivirus, indexer) is retried.
 */

typedef struct spool_s spool_t;

/* One stored snapshot, filled by spool_peek. `data` is malloc'd and owned by the caller until
 * spool_entry_free. */
typedef struct spool_entry_s {
    uint64_t seq;
    uint64_t dropped_before; /* snapshots lost immediately before this one */
    uint8_t *data;           /* the encoded Snapshot exactly as appended */
    size_t len;
} spool_entry_t;

typedef struct spool_stats_s {
    uint64_t count;       /* entries stored */
    uint64_t bytes;       /* their size on disk (headers included) */
    uint64_t first_seq;   /* oldest stored seq, 0 when empty */
    uint64_t last_seq;    /* highest seq stored or dropped so far, 0 before the first */
    uint64_t dropped;     /* snapshots dropped since open (size limit, refused, failed) */
    uint64_t discarded;   /* damaged entry files deleted since open (counted in dropped too) */
    uint64_t tmp_removed; /* interrupted writes (*.tmp) deleted by open */
} spool_stats_t;

/*
 * Opens (creating `dir` and its parents if needed) and recovers the spool: deletes *.tmp files,
 * drops entries at or below the recorded floor (an ack or drop interrupted before its unlinks),
 * verifies every entry file, and enforces `max_bytes` (a lower limit than last time drops the
 * oldest entries). Findings are logged ("spool: ...") and counted in spool_get_stats.
 * Returns 0 and *out, or a negative error (UV_E* from the file system, UV_ENOMEM). *out is NULL on
 * failure.
 */
int spool_open(const char *dir, uint64_t max_bytes, spool_t **out);

/* Closes the spool and frees it; everything stored stays on disk. NULL is a no-op. */
void spool_close(spool_t *sp);

/* The next sequence number (1 for a new spool), strictly greater than any seq used before, even
 * across restarts. No I/O: a seq handed out but never appended may be handed out again after a
 * restart, which is harmless because it was never stored or sent. */
uint64_t spool_next_seq(spool_t *sp);

/*
 * Durably stores `len` bytes (copied) under `seq`, which must exceed every seq appended before
 * (UV_EINVAL otherwise); normally the value spool_next_seq returned. Drops the oldest entries if
 * needed to stay within max_bytes. Returns 0 once the entry is on disk; EPW_E_TOOBIG when the
 * entry alone exceeds max_bytes; or a file-system error. On any failure the snapshot is counted
 * as dropped (the next stored entry carries it in dropped_before).
 */
int spool_append(spool_t *sp, uint64_t seq, const void *data, size_t len);

/*
 * Reads the oldest stored entry with seq > after_seq into *out, without removing it. Iterate with
 * `after_seq = out->seq`. Returns 0, EPW_E_NOTFOUND when there is none, or an error (out is then
 * cleared). A file found damaged or missing is discarded (logged, counted) and the next one is
 * returned instead.
 */
int spool_peek(spool_t *sp, uint64_t after_seq, spool_entry_t *out);

/* Frees out->data and clears the entry. NULL is a no-op. */
void spool_entry_free(spool_entry_t *e);

/* Cumulative acknowledgement: removes every entry with seq <= `seq` (values above the highest
 * seq used are clamped to it). Returns 0 or a file-system error. */
int spool_ack(spool_t *sp, uint64_t seq);

uint64_t spool_count(spool_t *sp);
uint64_t spool_bytes(spool_t *sp);
void spool_get_stats(spool_t *sp, spool_stats_t *out);

/* CRC-32 (IEEE 802.3, as zlib's crc32): start with crc = 0; chain calls for pieces. */
uint32_t spool_crc32(uint32_t crc, const void *buf, size_t len);

#endif
