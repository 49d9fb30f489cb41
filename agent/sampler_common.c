/* sampler_common: snapshot bookkeeping that every platform's sampler does the same way. */
#include "sampler_common.h"

#include <stdlib.h>
#include <uv.h>

#include "epw_snap.h"

int sampler_common_move_notes(Epw__Snapshot *from, Epw__Snapshot *to)
{
    char **n;
    size_t i;

    if (from->n_notes == 0)
        return 0;
    n = realloc(to->notes, (to->n_notes + from->n_notes) * sizeof(*n));
    if (!n)
        return UV_ENOMEM;
    to->notes = n;
    for (i = 0; i < from->n_notes; i++)
        n[to->n_notes++] = from->notes[i];
    free(from->notes);
    from->notes = NULL;
    from->n_notes = 0;
    return 0;
}

int sampler_common_stamp(Epw__Snapshot *snap, Epw__Platform platform, int64_t taken_at_ms)
{
    char host[256];
    size_t hlen = sizeof(host);

    if (uv_os_gethostname(host, &hlen) != 0)
        host[0] = '\0';
    epw_snap_strfree(snap->hostname);
    snap->hostname = epw_snap_strdup(host);
    if (!snap->hostname)
        return UV_ENOMEM;
    snap->platform = platform;
    snap->taken_at_ms = taken_at_ms;
    return 0;
}

uint64_t sampler_common_finish_duration(Epw__Snapshot *snap, uint64_t t0)
{
    uint64_t dt = (uv_hrtime() - t0) / 1000u;

    snap->sample_duration_us = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    return dt;
}
