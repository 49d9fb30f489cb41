/* rlog: rolling text log on plain stdio, so it behaves the same on Linux and Windows. */
#include "rlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_log.h"

struct rlog_s {
    char *path;
    size_t path_len;
    FILE *fp;
    uint64_t size;
    uint64_t max_bytes;
    unsigned keep;
    epw_complain_t rotate_fail;
};

/* errno from stdio as a libuv code. Mapped by name: on Windows UV_E* are not -errno. */
static int rlog__errno(int fallback)
{
    switch (errno) {
    case ENOENT:
        return UV_ENOENT;
    case EACCES:
        return UV_EACCES;
    case EPERM:
        return UV_EPERM;
    case EISDIR:
        return UV_EISDIR;
    case ENOTDIR:
        return UV_ENOTDIR;
    case ENOSPC:
        return UV_ENOSPC;
    case EROFS:
        return UV_EROFS;
    case EMFILE:
        return UV_EMFILE;
    case EBUSY:
        return UV_EBUSY;
    default:
        return fallback;
    }
}

static int rlog__reopen(rlog_t *r)
{
    long pos;

    errno = 0;
    r->fp = fopen(r->path, "ab");
    if (!r->fp)
        return rlog__errno(UV_EIO);
    /* "a" mode's initial position is unspecified until the first write: seek to learn the size. */
    if (fseek(r->fp, 0, SEEK_END) != 0 || (pos = ftell(r->fp)) < 0)
        return UV_EIO;
    r->size = (uint64_t)pos;
    return 0;
}

/* Writes "path.N" into buf (sized path_len + 12). */
static void rlog__numbered(const rlog_t *r, unsigned n, char *buf)
{
    if (n == 0)
        memcpy(buf, r->path, r->path_len + 1);
    else
        snprintf(buf, r->path_len + 12, "%s.%u", r->path, n);
}

/* Renames from -> to. Windows' rename() fails when `to` exists, so it is removed first; the
 * slot is normally already free because the oldest file was deleted before shifting. */
static int rlog__move(const char *from, const char *to)
{
    FILE *probe = fopen(from, "rb");

    if (!probe)
        return 0; /* a gap in the numbering (deleted by hand): nothing to move */
    fclose(probe);
    remove(to);
    errno = 0;
    if (rename(from, to) != 0)
        return rlog__errno(UV_EIO);
    return 0;
}

static int rlog__rotate(rlog_t *r)
{
    char *from = NULL, *to = NULL;
    unsigned i;
    int rc = 0;

    fclose(r->fp);
    r->fp = NULL;
    from = malloc(r->path_len + 12);
    to = malloc(r->path_len + 12);
    if (!from || !to) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (r->keep == 0) {
        /* Nothing to keep: start afresh. */
        errno = 0;
        if (remove(r->path) != 0)
            rc = rlog__errno(UV_EIO);
        goto out;
    }
    rlog__numbered(r, r->keep, to);
    remove(to); /* the oldest goes; absent is fine */
    for (i = r->keep; i >= 1; i--) {
        rlog__numbered(r, i - 1, from);
        rlog__numbered(r, i, to);
        rc = rlog__move(from, to);
        if (rc)
            goto out;
    }
out:
    free(from);
    free(to);
    /* Whatever happened, keep a file open so the pending write is not lost. */
    {
        int rc2 = rlog__reopen(r);

        if (!rc)
            rc = rc2;
    }
    return rc;
}

int rlog_open(const char *path, uint64_t max_bytes, unsigned keep, rlog_t **out)
{
    rlog_t *r = NULL;
    int rc;

    if (out)
        *out = NULL;
    if (!path || !*path || !out || max_bytes == 0)
        return UV_EINVAL;
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = UV_ENOMEM;
        goto out;
    }
    r->path_len = strlen(path);
    r->path = malloc(r->path_len + 1);
    if (!r->path) {
        rc = UV_ENOMEM;
        goto out;
    }
    memcpy(r->path, path, r->path_len + 1);
    r->max_bytes = max_bytes;
    r->keep = keep;
    rc = rlog__reopen(r);
    if (rc)
        goto out;
    *out = r;
    r = NULL;
out:
    rlog_close(r);
    return rc;
}

int rlog_write(rlog_t *r, const void *buf, size_t len)
{
    int rc;

    if (!r || (!buf && len))
        return UV_EINVAL;
    if (len == 0)
        return 0;
    if (r->size > 0 && r->size + len > r->max_bytes) {
        rc = rlog__rotate(r);
        if (rc)
            epw_complain(&r->rotate_fail, EPW_LOG_WARN, "rlog", "cannot rotate %s: %s", r->path,
                         uv_strerror(rc));
        else
            epw_complain_clear(&r->rotate_fail, "rlog", "rotation");
        if (!r->fp)
            return UV_EIO;
    }
    if (fwrite(buf, 1, len, r->fp) != len || fflush(r->fp) != 0)
        return UV_EIO;
    r->size += len;
    return 0;
}

uint64_t rlog_size(const rlog_t *r)
{
    return r ? r->size : 0;
}

void rlog_close(rlog_t *r)
{
    if (!r)
        return;
    if (r->fp)
        fclose(r->fp);
    free(r->path);
    free(r);
}
