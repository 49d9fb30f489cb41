/* spool: one file per unacknowledged snapshot plus a small state file (see spool.h). */
#include "spool.h"
#include "epw_err.h"
#include "epw_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SPOOL__HDR        32
#define SPOOL__STATE_LEN  44
#define SPOOL__VERSION    1u
#define SPOOL__DIGITS     20
#define SPOOL__STATE_NAME "spool.state"

/* One stored entry, in memory (the payload stays on disk). */
typedef struct spool__ent_s {
    uint64_t seq;
    uint64_t size;    /* file size: header + payload */
    uint64_t hdr;     /* dropped_before recorded in the file header */
    uint64_t dropped; /* effective dropped_before (hdr + drops attributed since) */
} spool__ent_t;

struct spool_s {
    uv_mutex_t mu;
    char *dir;
    uint64_t max_bytes;
    spool__ent_t *ents; /* sorted by seq */
    size_t count, cap;
    uint64_t bytes;
    uint64_t floor;    /* every seq <= floor is gone (acked or dropped) */
    uint64_t last_seq; /* highest seq stored or dropped */
    uint64_t next_seq; /* what spool_next_seq hands out next */
    uint64_t pending;  /* snapshots lost just before the next appended entry */
    spool_stats_t st;
};

/* ---- CRC-32 ---------------------------------------------------------------------------- */

uint32_t spool_crc32(uint32_t crc, const void *buf, size_t len)
{
    static uint32_t table[256];
    static int ready; /* benign race: every thread computes identical values */
    const uint8_t *p = buf;
    size_t i;

    if (!ready) {
        uint32_t n, c;
        int k;

        for (n = 0; n < 256; n++) {
            c = n;
            for (k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        ready = 1;
    }
    crc = ~crc;
    for (i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---- little-endian fields -------------------------------------------------------------- */

static void spool__put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void spool__put64(uint8_t *p, uint64_t v)
{
    spool__put32(p, (uint32_t)v);
    spool__put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t spool__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t spool__get64(const uint8_t *p)
{
    return (uint64_t)spool__get32(p) | (uint64_t)spool__get32(p + 4) << 32;
}

/* ---- synchronous file helpers (uv_fs_* with no loop and no callback) -------------------- */

static char *spool__path(const spool_t *sp, const char *name)
{
    size_t n = strlen(sp->dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s", sp->dir, name);
    return p;
}

static void spool__ent_name(uint64_t seq, const char *ext, char *buf, size_t len)
{
    snprintf(buf, len, "%020" PRIu64 "%s", seq, ext);
}

static int spool__unlink(const char *path)
{
    uv_fs_t req;
    int r = uv_fs_unlink(NULL, &req, path, NULL);

    uv_fs_req_cleanup(&req);
    return r == UV_ENOENT ? 0 : r;
}

static int spool__unlink_name(const spool_t *sp, const char *name)
{
    char *path = spool__path(sp, name);
    int r;

    if (!path)
        return UV_ENOMEM;
    r = spool__unlink(path);
    if (r)
        EPW_WARN("spool", "cannot delete %s: %s", path, uv_strerror(r));
    free(path);
    return r;
}

static int spool__unlink_seq(const spool_t *sp, uint64_t seq)
{
    char name[40];

    spool__ent_name(seq, ".ent", name, sizeof(name));
    return spool__unlink_name(sp, name);
}

/* Makes renames durable on POSIX. Windows has no directory handles through uv_fs_open; NTFS
 * journals the rename itself. */
static int spool__sync_dir(const spool_t *sp)
{
#ifdef _WIN32
    (void)sp;
    return 0;
#else
    uv_fs_t req;
    int fd, r;

    fd = uv_fs_open(NULL, &req, sp->dir, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0)
        return fd;
    r = uv_fs_fsync(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return r;
#endif
}

static int spool__rename(const char *from, const char *to)
{
    uv_fs_t req;
    int r, tries = 0;

    for (;;) {
        r = uv_fs_rename(NULL, &req, from, to, NULL);
        uv_fs_req_cleanup(&req);
#ifdef _WIN32
        /* Antivirus and indexers briefly open new files without FILE_SHARE_DELETE. */
        if ((r == UV_EPERM || r == UV_EACCES || r == UV_EBUSY) && ++tries < 5) {
            uv_sleep(20);
            continue;
        }
#endif
        (void)tries;
        return r;
    }
}

/* Writes two buffers to `dir/tmpname`, fsyncs, then renames it to `dir/name`. */
static int spool__write_file(const spool_t *sp, const char *tmpname, const char *name,
                             const void *a, size_t alen, const void *b, size_t blen)
{
    char *tmp = spool__path(sp, tmpname), *dst = spool__path(sp, name);
    uv_buf_t bufs[2];
    unsigned nbufs = blen ? 2 : 1, first = 0;
    uv_fs_t req;
    int fd = -1, rc = 0, r;
    int64_t off = 0;

    if (!tmp || !dst) {
        rc = UV_ENOMEM;
        goto out;
    }
    bufs[0] = uv_buf_init((char *)(uintptr_t)a, (unsigned)alen);
    bufs[1] = uv_buf_init((char *)(uintptr_t)b, (unsigned)blen);
    fd = uv_fs_open(NULL, &req, tmp, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_TRUNC, 0644, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    while (first < nbufs) {
        r = uv_fs_write(NULL, &req, fd, bufs + first, nbufs - first, off, NULL);
        uv_fs_req_cleanup(&req);
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r == 0) {
            rc = UV_EIO;
            goto out;
        }
        off += r;
        /* Short write: advance through the buffers. */
        while (first < nbufs && (size_t)r >= bufs[first].len) {
            r -= (int)bufs[first].len;
            first++;
        }
        if (first < nbufs) {
            bufs[first].base += r;
            bufs[first].len -= (unsigned)r;
        }
    }
    rc = uv_fs_fsync(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    if (rc)
        goto out;
    r = uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    fd = -1;
    if (r) {
        rc = r;
        goto out;
    }
    rc = spool__rename(tmp, dst);
    if (rc)
        goto out;
    rc = spool__sync_dir(sp);

out:
    if (fd >= 0) {
        uv_fs_close(NULL, &req, fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    if (rc && tmp)
        spool__unlink(tmp);
    free(tmp);
    free(dst);
    return rc;
}

/* Reads a whole file of at most `max` bytes. *out is malloc'd (at least 1 byte). */
static int spool__read_file(const char *path, uint64_t max, uint8_t **out, size_t *out_len)
{
    uv_fs_t req;
    uint8_t *buf = NULL;
    uint64_t size;
    size_t got = 0;
    int fd, rc = 0, r;

    *out = NULL;
    *out_len = 0;
    fd = uv_fs_open(NULL, &req, path, UV_FS_O_RDONLY, 0, NULL);
    uv_fs_req_cleanup(&req);
    if (fd < 0)
        return fd;
    r = uv_fs_fstat(NULL, &req, fd, NULL);
    size = req.statbuf.st_size;
    uv_fs_req_cleanup(&req);
    if (r) {
        rc = r;
        goto out;
    }
    if (size > max || size > SIZE_MAX - 1) {
        rc = EPW_E_TOOBIG;
        goto out;
    }
    buf = malloc((size_t)size + 1);
    if (!buf) {
        rc = UV_ENOMEM;
        goto out;
    }
    while (got < size) {
        uv_buf_t b = uv_buf_init((char *)buf + got, (unsigned)(size - got));

        r = uv_fs_read(NULL, &req, fd, &b, 1, (int64_t)got, NULL);
        uv_fs_req_cleanup(&req);
        if (r < 0) {
            rc = r;
            goto out;
        }
        if (r == 0)
            break; /* shrank under us: the caller's length checks catch it */
        got += (size_t)r;
    }
    *out = buf;
    *out_len = got;
    buf = NULL;

out:
    free(buf);
    uv_fs_close(NULL, &req, fd, NULL);
    uv_fs_req_cleanup(&req);
    return rc;
}

/* mkdir -p. */
static int spool__mkdirs(const char *dir)
{
    uv_fs_t req;
    char *parent;
    size_t n;
    int r;

    r = uv_fs_mkdir(NULL, &req, dir, 0755, NULL);
    uv_fs_req_cleanup(&req);
    if (r == 0 || r == UV_EEXIST)
        return 0;
    if (r != UV_ENOENT)
        return r;
    n = strlen(dir);
    while (n > 0 && (dir[n - 1] == '/' || dir[n - 1] == '\\'))
        n--;
    while (n > 0 && dir[n - 1] != '/' && dir[n - 1] != '\\')
        n--;
    while (n > 1 && (dir[n - 1] == '/' || dir[n - 1] == '\\'))
        n--;
    if (n == 0)
        return r;
    parent = malloc(n + 1);
    if (!parent)
        return UV_ENOMEM;
    memcpy(parent, dir, n);
    parent[n] = '\0';
    r = strcmp(parent, dir) ? spool__mkdirs(parent) : r;
    free(parent);
    if (r)
        return r;
    r = uv_fs_mkdir(NULL, &req, dir, 0755, NULL);
    uv_fs_req_cleanup(&req);
    return r == UV_EEXIST ? 0 : r;
}

/* ---- entry files ----------------------------------------------------------------------- */

static void spool__make_hdr(uint8_t *h, uint64_t seq, uint64_t dropped, const void *data,
                            size_t len)
{
    memcpy(h, "EPWS", 4);
    spool__put32(h + 4, SPOOL__VERSION);
    spool__put64(h + 8, seq);
    spool__put64(h + 16, dropped);
    spool__put32(h + 24, (uint32_t)len);
    spool__put32(h + 28, spool_crc32(spool_crc32(0, h, 28), data, len));
}

/* Checks a whole entry file read into buf. Returns NULL or why it is damaged. */
static const char *spool__check(const uint8_t *buf, size_t n, uint64_t seq, uint64_t *dropped)
{
    if (n < SPOOL__HDR)
        return "truncated header";
    if (memcmp(buf, "EPWS", 4) != 0)
        return "bad magic";
    if (spool__get32(buf + 4) != SPOOL__VERSION)
        return "unknown version";
    if (spool__get64(buf + 8) != seq)
        return "seq does not match the file name";
    if ((uint64_t)spool__get32(buf + 24) != (uint64_t)(n - SPOOL__HDR))
        return "truncated or padded payload";
    if (spool_crc32(spool_crc32(0, buf, 28), buf + SPOOL__HDR, n - SPOOL__HDR) !=
        spool__get32(buf + 28))
        return "CRC mismatch";
    *dropped = spool__get64(buf + 16);
    return NULL;
}

/* ---- state ----------------------------------------------------------------------------- */

/* The commit point of acks and drops: written (atomically) before any entry file is deleted. */
static int spool__commit(spool_t *sp)
{
    uint8_t b[SPOOL__STATE_LEN];
    uint64_t head_extra = sp->count ? sp->ents[0].dropped - sp->ents[0].hdr : 0;
    int r;

    memcpy(b, "EPWQ", 4);
    spool__put32(b + 4, SPOOL__VERSION);
    spool__put64(b + 8, sp->floor);
    spool__put64(b + 16, sp->last_seq);
    spool__put64(b + 24, head_extra);
    spool__put64(b + 32, sp->pending);
    spool__put32(b + 40, spool_crc32(0, b, 40));
    r = spool__write_file(sp, SPOOL__STATE_NAME ".tmp", SPOOL__STATE_NAME, b, sizeof(b), NULL, 0);
    if (r)
        EPW_ERROR("spool", "cannot write %s/%s: %s", sp->dir, SPOOL__STATE_NAME, uv_strerror(r));
    return r;
}

/* ---- index ----------------------------------------------------------------------------- */

static int spool__push(spool_t *sp, const spool__ent_t *e)
{
    if (sp->count == sp->cap) {
        size_t ncap = sp->cap ? sp->cap * 2 : 64;
        spool__ent_t *n = realloc(sp->ents, ncap * sizeof(*n));

        if (!n)
            return UV_ENOMEM;
        sp->ents = n;
        sp->cap = ncap;
    }
    sp->ents[sp->count++] = *e;
    sp->bytes += e->size;
    return 0;
}

/* Removes ents[i] from the index; its loss (1 + its own gap) moves to the entry after it, or to
 * the next appended entry when it was the last. */
static void spool__lose(spool_t *sp, size_t i)
{
    uint64_t gap = sp->ents[i].dropped + 1;

    sp->bytes -= sp->ents[i].size;
    if (i + 1 < sp->count)
        sp->ents[i + 1].dropped += gap;
    else
        sp->pending += gap;
    memmove(sp->ents + i, sp->ents + i + 1, (sp->count - i - 1) * sizeof(*sp->ents));
    sp->count--;
    sp->st.dropped++;
}

/* Drops oldest entries until `extra` more bytes fit; commits, then deletes their files. */
static int spool__make_room(spool_t *sp, uint64_t extra)
{
    uint64_t *gone = NULL;
    size_t n = 0, i;
    int rc;

    while (sp->count && sp->bytes + extra > sp->max_bytes) {
        uint64_t *g = realloc(gone, (n + 1) * sizeof(*g));

        if (!g) {
            free(gone);
            return UV_ENOMEM;
        }
        gone = g;
        gone[n++] = sp->ents[0].seq;
        if (sp->ents[0].seq > sp->floor)
            sp->floor = sp->ents[0].seq;
        spool__lose(sp, 0);
    }
    if (!n)
        return 0;
    EPW_WARN("spool",
             "size limit %" PRIu64 " bytes reached: dropped %" PRIu64 " oldest snapshot(s), seq "
             "%" PRIu64 "..%" PRIu64,
             sp->max_bytes, (uint64_t)n, gone[0], gone[n - 1]);
    rc = spool__commit(sp);
    /* Even when the commit failed, the index no longer has these entries; deleting them keeps
     * disk and memory in agreement (a restart then sees a plain gap). */
    for (i = 0; i < n; i++)
        spool__unlink_seq(sp, gone[i]);
    free(gone);
    return rc;
}

/* ---- open ------------------------------------------------------------------------------ */

static int spool__is_ent(const char *name, uint64_t *seq)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < SPOOL__DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        if (v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    if (strcmp(name + SPOOL__DIGITS, ".ent") != 0)
        return 0;
    *seq = v;
    return 1;
}

static int spool__cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

typedef struct spool__saved_s {
    uint64_t floor, last_seq, head_extra, pending;
} spool__saved_t;

static void spool__load_state(spool_t *sp, spool__saved_t *s)
{
    char *path = spool__path(sp, SPOOL__STATE_NAME);
    uint8_t *b = NULL;
    size_t n = 0;
    int r;

    memset(s, 0, sizeof(*s));
    if (!path)
        return;
    r = spool__read_file(path, 4096, &b, &n);
    if (r == UV_ENOENT) {
        /* A new spool, or one whose state was lost: entry names still give the last seq. */
    } else if (r) {
        EPW_WARN("spool", "cannot read %s: %s; recovering from the entry files", path,
                 epw_strerror(r));
    } else if (n != SPOOL__STATE_LEN || memcmp(b, "EPWQ", 4) != 0 ||
               spool__get32(b + 4) != SPOOL__VERSION ||
               spool_crc32(0, b, 40) != spool__get32(b + 40)) {
        EPW_WARN("spool", "%s is damaged; recovering from the entry files", path);
    } else {
        s->floor = spool__get64(b + 8);
        s->last_seq = spool__get64(b + 16);
        s->head_extra = spool__get64(b + 24);
        s->pending = spool__get64(b + 32);
    }
    free(b);
    free(path);
}

/* Scans the directory: deletes *.tmp, collects entry seqs (sorted). */
static int spool__scan(spool_t *sp, uint64_t **out, size_t *out_n)
{
    uv_fs_t req;
    uv_dirent_t d;
    uint64_t *seqs = NULL, seq;
    size_t n = 0;
    int r, rc = 0;

    *out = NULL;
    *out_n = 0;
    r = uv_fs_scandir(NULL, &req, sp->dir, 0, NULL);
    if (r < 0) {
        uv_fs_req_cleanup(&req);
        return r;
    }
    while (uv_fs_scandir_next(&req, &d) != UV_EOF) {
        size_t len = strlen(d.name);

        if (len > 4 && strcmp(d.name + len - 4, ".tmp") == 0) {
            EPW_WARN("spool", "removing %s/%s left by an interrupted write", sp->dir, d.name);
            if (spool__unlink_name(sp, d.name) == 0)
                sp->st.tmp_removed++;
        } else if (spool__is_ent(d.name, &seq)) {
            uint64_t *g = realloc(seqs, (n + 1) * sizeof(*g));

            if (!g) {
                rc = UV_ENOMEM;
                break;
            }
            seqs = g;
            seqs[n++] = seq;
        }
    }
    uv_fs_req_cleanup(&req);
    if (rc) {
        free(seqs);
        return rc;
    }
    if (n)
        qsort(seqs, n, sizeof(*seqs), spool__cmp_u64);
    *out = seqs;
    *out_n = n;
    return 0;
}

static int spool__recover(spool_t *sp)
{
    spool__saved_t s;
    uint64_t *seqs = NULL, carry = 0;
    size_t n = 0, i;
    int rc, first = 1, pending_used = 0, dirty = 0;

    spool__load_state(sp, &s);
    rc = spool__scan(sp, &seqs, &n);
    if (rc)
        goto out;
    sp->floor = s.floor;
    sp->last_seq = s.last_seq > s.floor ? s.last_seq : s.floor;

    for (i = 0; i < n; i++) {
        uint64_t seq = seqs[i], hdr = 0;
        char name[40], *path;
        uint8_t *buf = NULL;
        size_t len = 0;
        const char *why = NULL;

        if (seq > sp->last_seq)
            sp->last_seq = seq; /* even a damaged entry's seq may have been sent: never reuse */
        if (seq <= s.floor) {
            /* An ack or drop committed its state but was interrupted before this unlink. */
            spool__unlink_seq(sp, seq);
            continue;
        }
        spool__ent_name(seq, ".ent", name, sizeof(name));
        path = spool__path(sp, name);
        if (!path) {
            rc = UV_ENOMEM;
            goto out;
        }
        rc = spool__read_file(path, UINT32_MAX + (uint64_t)SPOOL__HDR, &buf, &len);
        if (rc == UV_ENOMEM) {
            free(path);
            goto out;
        }
        if (rc)
            why = epw_strerror(rc);
        else
            why = spool__check(buf, len, seq, &hdr);
        rc = 0;
        free(buf);
        /* The state's counts belong to the first entry after the floor (head_extra) and to the
         * first entry appended after the state was written (pending), whatever their fate. */
        if (first) {
            carry += s.head_extra;
            first = 0;
        }
        if (!pending_used && seq > s.last_seq) {
            pending_used = 1;
            if (why)
                carry += s.pending; /* a damaged entry took it down with it */
        }
        if (why) {
            EPW_WARN("spool", "discarding damaged %s: %s", path, why);
            spool__unlink(path);
            free(path);
            sp->st.discarded++;
            sp->st.dropped++;
            carry++;
            dirty = 1;
            continue;
        }
        free(path);
        {
            spool__ent_t e;

            e.seq = seq;
            e.size = (uint64_t)len;
            e.hdr = hdr;
            e.dropped = hdr + carry;
            carry = 0;
            rc = spool__push(sp, &e);
            if (rc)
                goto out;
        }
    }
    if (first)
        carry += s.head_extra;
    sp->pending = (pending_used ? 0 : s.pending) + carry;
    sp->next_seq = sp->last_seq + 1;

    if (sp->bytes > sp->max_bytes) {
        rc = spool__make_room(sp, 0); /* commits */
        goto out;
    }
    if (dirty)
        rc = spool__commit(sp);

out:
    free(seqs);
    return rc;
}

int spool_open(const char *dir, uint64_t max_bytes, spool_t **out)
{
    spool_t *sp;
    int rc;

    *out = NULL;
    sp = calloc(1, sizeof(*sp));
    if (!sp)
        return UV_ENOMEM;
    rc = uv_mutex_init(&sp->mu);
    if (rc) {
        free(sp);
        return rc;
    }
    sp->max_bytes = max_bytes;
    sp->dir = malloc(strlen(dir) + 1);
    if (!sp->dir) {
        rc = UV_ENOMEM;
        goto out;
    }
    strcpy(sp->dir, dir);
    rc = spool__mkdirs(dir);
    if (rc) {
        EPW_ERROR("spool", "cannot create %s: %s", dir, uv_strerror(rc));
        goto out;
    }
    rc = spool__recover(sp);
    if (rc)
        goto out;
    if (sp->st.discarded || sp->st.tmp_removed || sp->count)
        EPW_INFO("spool",
                 "%s: %" PRIu64 " snapshot(s) waiting (%" PRIu64 " bytes), next seq %" PRIu64
                 ", %" PRIu64 " damaged discarded",
                 dir, (uint64_t)sp->count, sp->bytes, sp->next_seq, sp->st.discarded);
    *out = sp;
    sp = NULL;

out:
    spool_close(sp);
    return rc;
}

void spool_close(spool_t *sp)
{
    if (!sp)
        return;
    uv_mutex_destroy(&sp->mu);
    free(sp->ents);
    free(sp->dir);
    free(sp);
}

uint64_t spool_next_seq(spool_t *sp)
{
    uint64_t s;

    uv_mutex_lock(&sp->mu);
    s = sp->next_seq++;
    uv_mutex_unlock(&sp->mu);
    return s;
}

/* A snapshot that will not be stored: counted for the next entry, and remembered durably. */
static void spool__refuse(spool_t *sp, uint64_t seq)
{
    sp->pending++;
    sp->last_seq = seq;
    sp->st.dropped++;
    spool__commit(sp);
}

int spool_append(spool_t *sp, uint64_t seq, const void *data, size_t len)
{
    uint8_t hdr[SPOOL__HDR];
    char name[40], tmpname[40];
    uint64_t size = (uint64_t)len + SPOOL__HDR;
    spool__ent_t e;
    int rc;

    uv_mutex_lock(&sp->mu);
    if (seq <= sp->last_seq || seq == 0) {
        rc = UV_EINVAL;
        goto out;
    }
    if (sp->next_seq <= seq)
        sp->next_seq = seq + 1;
    if (len > UINT32_MAX || size > sp->max_bytes) {
        EPW_WARN("spool",
                 "snapshot seq %" PRIu64 " (%" PRIu64 " bytes) exceeds the spool limit of %" PRIu64
                 " bytes: dropped",
                 seq, (uint64_t)len, sp->max_bytes);
        spool__refuse(sp, seq);
        rc = EPW_E_TOOBIG;
        goto out;
    }
    rc = spool__make_room(sp, size);
    if (rc == UV_ENOMEM)
        goto fail;
    spool__make_hdr(hdr, seq, sp->pending, data, len);
    spool__ent_name(seq, ".ent", name, sizeof(name));
    spool__ent_name(seq, ".tmp", tmpname, sizeof(tmpname));
    rc = spool__write_file(sp, tmpname, name, hdr, sizeof(hdr), data, len);
    if (rc) {
        EPW_ERROR("spool", "cannot store seq %" PRIu64 " in %s: %s", seq, sp->dir, uv_strerror(rc));
        goto fail;
    }
    e.seq = seq;
    e.size = size;
    e.hdr = sp->pending;
    e.dropped = sp->pending;
    rc = spool__push(sp, &e);
    if (rc) {
        /* Not in the index, so it must not stay on disk either. */
        spool__unlink_seq(sp, seq);
        goto fail;
    }
    sp->pending = 0;
    sp->last_seq = seq;
    goto out;

fail:
    spool__refuse(sp, seq);
out:
    uv_mutex_unlock(&sp->mu);
    return rc;
}

/* First index position with seq > after. */
static size_t spool__upper(const spool_t *sp, uint64_t after)
{
    size_t lo = 0, hi = sp->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (sp->ents[mid].seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int spool_peek(spool_t *sp, uint64_t after_seq, spool_entry_t *out)
{
    int rc = EPW_E_NOTFOUND;
    size_t i;

    memset(out, 0, sizeof(*out));
    uv_mutex_lock(&sp->mu);
    for (i = spool__upper(sp, after_seq); i < sp->count;) {
        spool__ent_t *e = &sp->ents[i];
        char name[40], *path;
        uint8_t *buf = NULL;
        size_t len = 0;
        uint64_t hdr = 0;
        const char *why;
        int r;

        spool__ent_name(e->seq, ".ent", name, sizeof(name));
        path = spool__path(sp, name);
        if (!path) {
            rc = UV_ENOMEM;
            break;
        }
        r = spool__read_file(path, e->size, &buf, &len);
        if (r == UV_ENOMEM) {
            free(path);
            rc = r;
            break;
        }
        why = r ? epw_strerror(r) : spool__check(buf, len, e->seq, &hdr);
        if (!why) {
            free(path);
            /* The payload moves to the front of the buffer the caller owns. */
            memmove(buf, buf + SPOOL__HDR, len - SPOOL__HDR);
            out->seq = e->seq;
            out->dropped_before = e->dropped;
            out->data = buf;
            out->len = len - SPOOL__HDR;
            rc = 0;
            break;
        }
        EPW_ERROR("spool", "discarding damaged %s: %s", path, why);
        free(buf);
        spool__unlink(path);
        free(path);
        sp->st.discarded++;
        if (i == 0 && e->seq > sp->floor)
            sp->floor = e->seq;
        spool__lose(sp, i);
        spool__commit(sp);
    }
    uv_mutex_unlock(&sp->mu);
    return rc;
}

void spool_entry_free(spool_entry_t *e)
{
    if (!e)
        return;
    free(e->data);
    memset(e, 0, sizeof(*e));
}

int spool_ack(spool_t *sp, uint64_t seq)
{
    size_t n, i;
    int rc = 0;

    uv_mutex_lock(&sp->mu);
    if (seq > sp->last_seq)
        seq = sp->last_seq;
    n = spool__upper(sp, seq);
    if (n == 0)
        goto out;
    if (seq > sp->floor)
        sp->floor = seq;
    /* Keep the removed seqs' files until the new floor is durable; then unlink. */
    {
        uint64_t *gone = malloc(n * sizeof(*gone));

        if (!gone) {
            rc = UV_ENOMEM;
            goto out;
        }
        for (i = 0; i < n; i++) {
            gone[i] = sp->ents[i].seq;
            sp->bytes -= sp->ents[i].size;
        }
        memmove(sp->ents, sp->ents + n, (sp->count - n) * sizeof(*sp->ents));
        sp->count -= n;
        rc = spool__commit(sp);
        for (i = 0; i < n; i++)
            spool__unlink_seq(sp, gone[i]);
        free(gone);
    }

out:
    uv_mutex_unlock(&sp->mu);
    return rc;
}

uint64_t spool_count(spool_t *sp)
{
    uint64_t n;

    uv_mutex_lock(&sp->mu);
    n = sp->count;
    uv_mutex_unlock(&sp->mu);
    return n;
}

uint64_t spool_bytes(spool_t *sp)
{
    uint64_t n;

    uv_mutex_lock(&sp->mu);
    n = sp->bytes;
    uv_mutex_unlock(&sp->mu);
    return n;
}

void spool_get_stats(spool_t *sp, spool_stats_t *out)
{
    uv_mutex_lock(&sp->mu);
    *out = sp->st;
    out->count = sp->count;
    out->bytes = sp->bytes;
    out->first_seq = sp->count ? sp->ents[0].seq : 0;
    out->last_seq = sp->last_seq;
    uv_mutex_unlock(&sp->mu);
}
