/* epw_snap: allocation helpers for Snapshot messages. */
#include "epw_snap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

Epw__Snapshot *epw_snap_new(void)
{
    Epw__Snapshot *snap = malloc(sizeof(*snap));

    if (!snap)
        return NULL;
    epw__snapshot__init(snap);
    snap->time_wait = malloc(sizeof(*snap->time_wait));
    if (!snap->time_wait) {
        free(snap);
        return NULL;
    }
    epw__time_wait__init(snap->time_wait);
    return snap;
}

void epw_snap_free(Epw__Snapshot *snap)
{
    if (snap)
        protobuf_c_message_free_unpacked(&snap->base, NULL);
}

char *epw_snap_strdup(const char *s)
{
    size_t n;
    char *d;

    if (!s || !*s)
        return (char *)protobuf_c_empty_string;
    n = strlen(s) + 1;
    d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void epw_snap_strfree(char *s)
{
    if (s && s != protobuf_c_empty_string)
        free(s);
}

int epw_snap_add_note(Epw__Snapshot *snap, const char *fmt, ...)
{
    char buf[512];
    char **n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    n = realloc(snap->notes, (snap->n_notes + 1) * sizeof(*n));
    if (!n)
        return UV_ENOMEM;
    snap->notes = n;
    n[snap->n_notes] = epw_snap_strdup(buf);
    if (!n[snap->n_notes])
        return UV_ENOMEM;
    snap->n_notes++;
    return 0;
}

void *epw_snap_append(void ***arr, size_t *n, size_t elem_size, void (*init)(void *))
{
    void **na;
    void *elem = malloc(elem_size);

    if (!elem)
        return NULL;
    na = realloc(*arr, (*n + 1) * sizeof(*na));
    if (!na) {
        free(elem);
        return NULL;
    }
    init(elem);
    na[*n] = elem;
    *arr = na;
    (*n)++;
    return elem;
}

const char *epw_snap_proto_name(Epw__Protocol p)
{
    return p == EPW__PROTOCOL__UDP ? "udp" : p == EPW__PROTOCOL__TCP ? "tcp" : "unknown";
}

const char *epw_snap_family_name(Epw__Family f)
{
    return f == EPW__FAMILY__IPV6 ? "ipv6" : f == EPW__FAMILY__IPV4 ? "ipv4" : "unknown";
}

const char *epw_snap_platform_name(Epw__Platform p)
{
    return p == EPW__PLATFORM__WINDOWS ? "windows"
           : p == EPW__PLATFORM__LINUX ? "linux"
                                       : "unknown";
}

const char *epw_snap_range_source_name(Epw__RangeSource s)
{
    switch (s) {
    case EPW__RANGE_SOURCE__RANGE_DEFAULT:
        return "default";
    case EPW__RANGE_SOURCE__RANGE_SYSCTL:
        return "sysctl";
    case EPW__RANGE_SOURCE__RANGE_WMI:
        return "wmi";
    case EPW__RANGE_SOURCE__RANGE_NETSH:
        return "netsh";
    case EPW__RANGE_SOURCE__RANGE_CAPTURED:
        return "captured";
    default:
        return "unknown";
    }
}
