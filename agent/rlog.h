/* rlog: an append-only text log with a size cap and numbered rotation (path, path.1 ... path.N). */
#ifndef RLOG_H
#define RLOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rlog_s rlog_t;

/*
 * Opens (creating if needed) `path` for appending; existing content is kept and counts towards
 * the cap. `max_bytes` >= 1 caps the current file; `keep` is how many rotated files are kept
 * (0: the current file is simply started afresh when full). `path` is copied. Keep max_bytes
 * under 2 GiB: file offsets are a `long`, 32 bits on Windows.
 * *out is cleared on entry and set on success. 0, UV_EINVAL, UV_ENOMEM, or the open error
 * (UV_EACCES, UV_ENOENT for a missing directory, ...).
 * An rlog is used by one thread at a time; it does no locking.
 */
int rlog_open(const char *path, uint64_t max_bytes, unsigned keep, rlog_t **out);

/*
 * Appends len bytes and flushes them to the OS. When the file already holds data and the write
 * would take it past max_bytes, the files are rotated first: path.keep is deleted, path.i is
 * renamed to path.(i+1), path to path.1, and a new path is started. A write larger than
 * max_bytes still goes whole into a fresh file: a write is never split or dropped. If rotation
 * fails (the log is warned about, rate-limited) the data is appended to the current file anyway.
 * 0, UV_EINVAL, or UV_EIO when the data could not be written.
 */
int rlog_write(rlog_t *r, const void *buf, size_t len);

/* Bytes in the current file (after the last write). */
uint64_t rlog_size(const rlog_t *r);

/* Flushes and closes; NULL is a no-op. */
void rlog_close(rlog_t *r);

#endif
