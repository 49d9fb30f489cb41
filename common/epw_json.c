/* epw_json: renders a Snapshot as a cJSON tree (see epw_json.h for the key contract). */
#include "epw_json.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_snap.h"
#include "epw_util.h"

/* protobuf-c leaves strings NULL in hand-built messages that never set them. */
static const char *json__str(const char *s)
{
    return s ? s : "";
}

/* Adders that report failure as 0 so a whole object can be built with one `&&` chain. */
static int json__num(cJSON *obj, const char *key, double v)
{
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

static int json__text(cJSON *obj, const char *key, const char *v)
{
    return cJSON_AddStringToObject(obj, key, json__str(v)) != NULL;
}

static int json__bool(cJSON *obj, const char *key, int v)
{
    return cJSON_AddBoolToObject(obj, key, v ? 1 : 0) != NULL;
}

static int json__time(cJSON *obj, const char *key, int64_t ms, int with_ms)
{
    char buf[40];
    int rc = with_ms ? epw_format_rfc3339_ms(ms, buf, sizeof(buf))
                     : epw_format_rfc3339(ms, buf, sizeof(buf));

    if (rc)
        buf[0] = '\0';
    return json__text(obj, key, buf);
}

/* Appends a new object to `arr`; NULL on allocation failure. */
static cJSON *json__push_obj(cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();

    if (o && !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static int json__ranges(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "ranges");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_ranges; i++) {
        const Epw__PortRange *r = snap->ranges[i];
        cJSON *o = json__push_obj(arr);

        if (!o || !json__text(o, "protocol", epw_snap_proto_name(r->protocol)) ||
            !json__text(o, "family", epw_snap_family_name(r->family)) ||
            !json__num(o, "start", r->start) || !json__num(o, "count", r->count) ||
            !json__num(o, "excluded", r->excluded) ||
            !json__text(o, "source", epw_snap_range_source_name(r->source)))
            return 0;
    }
    return 1;
}

static int json__addresses(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "addresses");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_addresses; i++) {
        const Epw__AddressUsage *a = snap->addresses[i];
        cJSON *o = json__push_obj(arr);

        if (!o || !json__text(o, "local_address", a->local_address) ||
            !json__text(o, "protocol", epw_snap_proto_name(a->protocol)) ||
            !json__text(o, "family", epw_snap_family_name(a->family)) ||
            !json__num(o, "ports_in_use", a->ports_in_use) ||
            !json__num(o, "max_ports", a->max_ports) || !json__num(o, "usage_pct", a->usage_pct) ||
            !json__num(o, "listening_ports", a->listening_ports) || !json__num(o, "pids", a->pids))
            return 0;
    }
    return 1;
}

static int json__host(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "host");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_host; i++) {
        const Epw__HostUsage *h = snap->host[i];
        cJSON *o = json__push_obj(arr);

        if (!o || !json__text(o, "protocol", epw_snap_proto_name(h->protocol)) ||
            !json__num(o, "ports_in_use", h->ports_in_use) ||
            !json__num(o, "max_ports", h->max_ports) || !json__num(o, "usage_pct", h->usage_pct))
            return 0;
    }
    return 1;
}

static int json__destinations(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "destinations");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_destinations; i++) {
        const Epw__DestinationUsage *d = snap->destinations[i];
        cJSON *o = json__push_obj(arr);

        if (!o || !json__text(o, "local_address", d->local_address) ||
            !json__text(o, "remote_address", d->remote_address) ||
            !json__num(o, "remote_port", d->remote_port) ||
            !json__text(o, "protocol", epw_snap_proto_name(d->protocol)) ||
            !json__num(o, "connections", d->connections) ||
            !json__num(o, "free_ports", d->free_ports) || !json__num(o, "usage_pct", d->usage_pct))
            return 0;
    }
    return 1;
}

static int json__states(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *obj = cJSON_AddObjectToObject(root, "states");
    size_t i;

    if (!obj)
        return 0;
    for (i = 0; i < snap->n_states; i++) {
        if (!json__num(obj, json__str(snap->states[i]->state), snap->states[i]->count))
            return 0;
    }
    return 1;
}

static int json__processes(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "top_processes");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_top_processes; i++) {
        const Epw__ProcessUsage *p = snap->top_processes[i];
        cJSON *o = json__push_obj(arr);

        if (!o || !json__num(o, "pid", p->pid) || !json__text(o, "name", p->name) ||
            !json__num(o, "ports", p->ports) || !json__bool(o, "other", p->other))
            return 0;
    }
    return 1;
}

static int json__remotes(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "top_remotes");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_top_remotes; i++) {
        const Epw__RemoteUsage *r = snap->top_remotes[i];
        cJSON *o = json__push_obj(arr);

        if (!o || !json__text(o, "remote_address", r->remote_address) ||
            !json__num(o, "remote_port", r->remote_port) ||
            !json__num(o, "connections", r->connections) || !json__bool(o, "other", r->other))
            return 0;
    }
    return 1;
}

static int json__listening(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "listening_ports");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_listening_ports; i++) {
        cJSON *n = cJSON_CreateNumber(snap->listening_ports[i]);

        if (!n)
            return 0;
        if (!cJSON_AddItemToArray(arr, n)) {
            cJSON_Delete(n);
            return 0;
        }
    }
    return 1;
}

static int json__time_wait(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *o = cJSON_AddObjectToObject(root, "time_wait");
    uint32_t seconds = snap->time_wait ? snap->time_wait->seconds : 0;
    int is_default = snap->time_wait ? snap->time_wait->is_default : 0;

    return o && json__num(o, "seconds", seconds) && json__bool(o, "default", is_default);
}

static int json__events(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "events");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_events; i++) {
        const Epw__ExhaustionEvent *e = snap->events[i];
        cJSON *o = json__push_obj(arr);

        if (!o || !json__num(o, "event_id", e->event_id) ||
            !json__time(o, "first", e->first_ms, 1) || !json__time(o, "last", e->last_ms, 1) ||
            !json__num(o, "count", e->count))
            return 0;
    }
    return 1;
}

static int json__notes(cJSON *root, const Epw__Snapshot *snap)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "notes");
    size_t i;

    if (!arr)
        return 0;
    for (i = 0; i < snap->n_notes; i++) {
        cJSON *s = cJSON_CreateString(json__str(snap->notes[i]));

        if (!s)
            return 0;
        if (!cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return 0;
        }
    }
    return 1;
}

cJSON *epw_json_snapshot(const Epw__Snapshot *snap)
{
    cJSON *root;
    int ok;

    if (!snap)
        return NULL;
    root = cJSON_CreateObject();
    if (!root)
        return NULL;
    /* Key order is part of what a human reads in --json output: identity first, then the figure
     * alerts use, then the detail. */
    ok = json__text(root, "hostname", snap->hostname) &&
         json__time(root, "time", snap->taken_at_ms, 0) &&
         json__text(root, "platform", epw_snap_platform_name(snap->platform)) &&
         json__num(root, "seq", (double)snap->seq);
    if (ok && snap->netns && snap->netns[0])
        ok = json__text(root, "netns", snap->netns);
    ok = ok && json__num(root, "sample_duration_ms", snap->sample_duration_us / 1000.0) &&
         json__num(root, "pressure_pct", snap->pressure_pct) &&
         json__text(root, "pressure_source", snap->pressure_source) && json__ranges(root, snap) &&
         json__addresses(root, snap) && json__host(root, snap) && json__destinations(root, snap) &&
         json__num(root, "destination_count", snap->destination_count) &&
         json__states(root, snap) && json__processes(root, snap) && json__remotes(root, snap) &&
         json__num(root, "kernel_ports", snap->kernel_ports) && json__listening(root, snap) &&
         json__num(root, "pid_count", snap->pid_count) &&
         json__num(root, "exclusive_ports", snap->exclusive_ports) &&
         json__num(root, "total_sockets", snap->total_sockets) && json__time_wait(root, snap) &&
         json__events(root, snap) && json__notes(root, snap) &&
         json__num(root, "dropped_before", (double)snap->dropped_before) &&
         json__bool(root, "port_starved", snap->port_starved) &&
         json__num(root, "spooled", snap->spooled);
    if (!ok) {
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

char *epw_json_snapshot_string(const Epw__Snapshot *snap, int pretty)
{
    cJSON *root = epw_json_snapshot(snap);
    char *text;

    if (!root)
        return NULL;
    text = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* ---- JSON -> Snapshot (epw_json_to_snapshot) ----
 * Each reader leaves its field alone when the key is absent, so a producer that predates a key
 * still parses; a present key must have the right type and fit its field. */

static const cJSON *rj__item(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static int rj__double(const cJSON *obj, const char *key, double *out)
{
    const cJSON *it = rj__item(obj, key);

    if (!it)
        return 0;
    if (!cJSON_IsNumber(it))
        return EPW_E_PARSE;
    *out = it->valuedouble;
    return 0;
}

static int rj__u64(const cJSON *obj, const char *key, uint64_t *out)
{
    const cJSON *it = rj__item(obj, key);
    double v;

    if (!it)
        return 0;
    if (!cJSON_IsNumber(it))
        return EPW_E_PARSE;
    v = it->valuedouble;
    /* 2^64 is exact as a double; the round trip rejects fractions and NaN. */
    if (!(v >= 0 && v < 18446744073709551616.0) || (double)(uint64_t)v != v)
        return EPW_E_PARSE;
    *out = (uint64_t)v;
    return 0;
}

static int rj__u32(const cJSON *obj, const char *key, uint32_t *out)
{
    uint64_t v = *out;
    int rc = rj__u64(obj, key, &v);

    if (rc)
        return rc;
    if (v > UINT32_MAX)
        return EPW_E_PARSE;
    *out = (uint32_t)v;
    return 0;
}

static int rj__bool(const cJSON *obj, const char *key, protobuf_c_boolean *out)
{
    const cJSON *it = rj__item(obj, key);

    if (!it)
        return 0;
    if (!cJSON_IsBool(it))
        return EPW_E_PARSE;
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

/* Replaces *field (a string owned by the message) with a copy of the value. */
static int rj__text(const cJSON *obj, const char *key, char **field)
{
    const cJSON *it = rj__item(obj, key);
    char *copy;

    if (!it)
        return 0;
    if (!cJSON_IsString(it))
        return EPW_E_PARSE;
    copy = epw_snap_strdup(it->valuestring);
    if (!copy)
        return UV_ENOMEM;
    epw_snap_strfree(*field);
    *field = copy;
    return 0;
}

/* "" stands for a time the producer could not format (json__time). */
static int rj__time(const cJSON *obj, const char *key, int64_t *out)
{
    const cJSON *it = rj__item(obj, key);

    if (!it)
        return 0;
    if (!cJSON_IsString(it))
        return EPW_E_PARSE;
    if (!it->valuestring[0])
        return 0;
    return epw_parse_rfc3339(it->valuestring, out) ? EPW_E_PARSE : 0;
}

/* Enum by name: tries every value of [0, max] through the same naming function the writer
 * uses, so the two directions cannot drift apart. */
static const char *rj__proto_name(int v)
{
    return epw_snap_proto_name((Epw__Protocol)v);
}
static const char *rj__family_name(int v)
{
    return epw_snap_family_name((Epw__Family)v);
}
static const char *rj__platform_name(int v)
{
    return epw_snap_platform_name((Epw__Platform)v);
}
static const char *rj__source_name(int v)
{
    return epw_snap_range_source_name((Epw__RangeSource)v);
}

static int rj__enum(const cJSON *obj, const char *key, const char *(*name)(int), int max, int *out)
{
    const cJSON *it = rj__item(obj, key);
    int v;

    if (!it)
        return 0;
    if (!cJSON_IsString(it))
        return EPW_E_PARSE;
    for (v = 0; v <= max; v++) {
        if (strcmp(name(v), it->valuestring) == 0) {
            *out = v;
            return 0;
        }
    }
    return EPW_E_PARSE;
}

/* The array at `key` (NULL when absent), or EPW_E_PARSE when it is something else. */
static int rj__array(const cJSON *obj, const char *key, const cJSON **arr)
{
    const cJSON *it = rj__item(obj, key);

    *arr = NULL;
    if (!it)
        return 0;
    if (!cJSON_IsArray(it))
        return EPW_E_PARSE;
    *arr = it;
    return 0;
}

/* Enum fields are C enums of unspecified width: go through int. */
#define RJ_ENUM(obj, key, namefn, max, field)                                                      \
    do {                                                                                           \
        int v_ = (int)(field);                                                                     \
        rc = rj__enum(obj, key, namefn, max, &v_);                                                 \
        if (rc)                                                                                    \
            goto out;                                                                              \
        (field) = v_;                                                                              \
    } while (0)

#define RJ_TRY(expr)                                                                               \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc)                                                                                    \
            goto out;                                                                              \
    } while (0)

/* Appends one element to a repeated field, or fails with UV_ENOMEM. */
#define RJ_APPEND(var, msg, field, initfn)                                                         \
    do {                                                                                           \
        (var) = EPW_SNAP_APPEND(msg, field, initfn);                                               \
        if (!(var)) {                                                                              \
            rc = UV_ENOMEM;                                                                        \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int rj__ranges(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *o;
    Epw__PortRange *r;
    int rc;

    RJ_TRY(rj__array(root, "ranges", &arr));
    cJSON_ArrayForEach(o, arr)
    {
        if (!cJSON_IsObject(o))
            return EPW_E_PARSE;
        RJ_APPEND(r, s, ranges, epw__port_range__init);
        RJ_ENUM(o, "protocol", rj__proto_name, EPW__PROTOCOL__UDP, r->protocol);
        RJ_ENUM(o, "family", rj__family_name, EPW__FAMILY__IPV6, r->family);
        RJ_TRY(rj__u32(o, "start", &r->start));
        RJ_TRY(rj__u32(o, "count", &r->count));
        RJ_TRY(rj__u32(o, "excluded", &r->excluded));
        RJ_ENUM(o, "source", rj__source_name, EPW__RANGE_SOURCE__RANGE_CAPTURED, r->source);
    }
    rc = 0;
out:
    return rc;
}

static int rj__addresses(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *o;
    Epw__AddressUsage *a;
    int rc;

    RJ_TRY(rj__array(root, "addresses", &arr));
    cJSON_ArrayForEach(o, arr)
    {
        if (!cJSON_IsObject(o))
            return EPW_E_PARSE;
        RJ_APPEND(a, s, addresses, epw__address_usage__init);
        RJ_TRY(rj__text(o, "local_address", &a->local_address));
        RJ_ENUM(o, "protocol", rj__proto_name, EPW__PROTOCOL__UDP, a->protocol);
        RJ_ENUM(o, "family", rj__family_name, EPW__FAMILY__IPV6, a->family);
        RJ_TRY(rj__u32(o, "ports_in_use", &a->ports_in_use));
        RJ_TRY(rj__u32(o, "max_ports", &a->max_ports));
        RJ_TRY(rj__double(o, "usage_pct", &a->usage_pct));
        RJ_TRY(rj__u32(o, "listening_ports", &a->listening_ports));
        RJ_TRY(rj__u32(o, "pids", &a->pids));
    }
    rc = 0;
out:
    return rc;
}

static int rj__host(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *o;
    Epw__HostUsage *h;
    int rc;

    RJ_TRY(rj__array(root, "host", &arr));
    cJSON_ArrayForEach(o, arr)
    {
        if (!cJSON_IsObject(o))
            return EPW_E_PARSE;
        RJ_APPEND(h, s, host, epw__host_usage__init);
        RJ_ENUM(o, "protocol", rj__proto_name, EPW__PROTOCOL__UDP, h->protocol);
        RJ_TRY(rj__u32(o, "ports_in_use", &h->ports_in_use));
        RJ_TRY(rj__u32(o, "max_ports", &h->max_ports));
        RJ_TRY(rj__double(o, "usage_pct", &h->usage_pct));
    }
    rc = 0;
out:
    return rc;
}

static int rj__destinations(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *o;
    Epw__DestinationUsage *d;
    int rc;

    RJ_TRY(rj__array(root, "destinations", &arr));
    cJSON_ArrayForEach(o, arr)
    {
        if (!cJSON_IsObject(o))
            return EPW_E_PARSE;
        RJ_APPEND(d, s, destinations, epw__destination_usage__init);
        RJ_TRY(rj__text(o, "local_address", &d->local_address));
        RJ_TRY(rj__text(o, "remote_address", &d->remote_address));
        RJ_TRY(rj__u32(o, "remote_port", &d->remote_port));
        RJ_ENUM(o, "protocol", rj__proto_name, EPW__PROTOCOL__UDP, d->protocol);
        RJ_TRY(rj__u32(o, "connections", &d->connections));
        RJ_TRY(rj__u32(o, "free_ports", &d->free_ports));
        RJ_TRY(rj__double(o, "usage_pct", &d->usage_pct));
    }
    rc = 0;
out:
    return rc;
}

/* "states" is an object whose key order is the snapshot's order. */
static int rj__states(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *obj = rj__item(root, "states"), *it;
    Epw__StateCount *st;
    int rc;

    if (!obj)
        return 0;
    if (!cJSON_IsObject(obj))
        return EPW_E_PARSE;
    cJSON_ArrayForEach(it, obj)
    {
        RJ_APPEND(st, s, states, epw__state_count__init);
        st->state = epw_snap_strdup(it->string);
        if (!st->state) {
            rc = UV_ENOMEM;
            goto out;
        }
        RJ_TRY(rj__u32(obj, it->string, &st->count));
    }
    rc = 0;
out:
    return rc;
}

static int rj__processes(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *o;
    Epw__ProcessUsage *p;
    int rc;

    RJ_TRY(rj__array(root, "top_processes", &arr));
    cJSON_ArrayForEach(o, arr)
    {
        if (!cJSON_IsObject(o))
            return EPW_E_PARSE;
        RJ_APPEND(p, s, top_processes, epw__process_usage__init);
        RJ_TRY(rj__u32(o, "pid", &p->pid));
        RJ_TRY(rj__text(o, "name", &p->name));
        RJ_TRY(rj__u32(o, "ports", &p->ports));
        RJ_TRY(rj__bool(o, "other", &p->other));
    }
    rc = 0;
out:
    return rc;
}

static int rj__remotes(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *o;
    Epw__RemoteUsage *r;
    int rc;

    RJ_TRY(rj__array(root, "top_remotes", &arr));
    cJSON_ArrayForEach(o, arr)
    {
        if (!cJSON_IsObject(o))
            return EPW_E_PARSE;
        RJ_APPEND(r, s, top_remotes, epw__remote_usage__init);
        RJ_TRY(rj__text(o, "remote_address", &r->remote_address));
        RJ_TRY(rj__u32(o, "remote_port", &r->remote_port));
        RJ_TRY(rj__u32(o, "connections", &r->connections));
        RJ_TRY(rj__bool(o, "other", &r->other));
    }
    rc = 0;
out:
    return rc;
}

static int rj__listening(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *it;
    size_t n;
    int rc;

    RJ_TRY(rj__array(root, "listening_ports", &arr));
    n = arr ? (size_t)cJSON_GetArraySize(arr) : 0;
    if (!n)
        return 0;
    s->listening_ports = malloc(n * sizeof(*s->listening_ports));
    if (!s->listening_ports)
        return UV_ENOMEM;
    cJSON_ArrayForEach(it, arr)
    {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;

        if (!(v >= 0 && v <= UINT32_MAX) || (double)(uint32_t)v != v)
            return EPW_E_PARSE;
        s->listening_ports[s->n_listening_ports++] = (uint32_t)v;
    }
    rc = 0;
out:
    return rc;
}

static int rj__time_wait(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *o = rj__item(root, "time_wait");
    int rc;

    if (!o)
        return 0;
    if (!cJSON_IsObject(o))
        return EPW_E_PARSE;
    RJ_TRY(rj__u32(o, "seconds", &s->time_wait->seconds));
    RJ_TRY(rj__bool(o, "default", &s->time_wait->is_default));
out:
    return rc;
}

static int rj__events(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *o;
    Epw__ExhaustionEvent *e;
    int rc;

    RJ_TRY(rj__array(root, "events", &arr));
    cJSON_ArrayForEach(o, arr)
    {
        if (!cJSON_IsObject(o))
            return EPW_E_PARSE;
        RJ_APPEND(e, s, events, epw__exhaustion_event__init);
        RJ_TRY(rj__u32(o, "event_id", &e->event_id));
        RJ_TRY(rj__time(o, "first", &e->first_ms));
        RJ_TRY(rj__time(o, "last", &e->last_ms));
        RJ_TRY(rj__u32(o, "count", &e->count));
    }
    rc = 0;
out:
    return rc;
}

static int rj__notes(const cJSON *root, Epw__Snapshot *s)
{
    const cJSON *arr, *it;
    int rc;

    RJ_TRY(rj__array(root, "notes", &arr));
    cJSON_ArrayForEach(it, arr)
    {
        char **n;

        if (!cJSON_IsString(it))
            return EPW_E_PARSE;
        n = realloc(s->notes, (s->n_notes + 1) * sizeof(*n));
        if (!n)
            return UV_ENOMEM;
        s->notes = n;
        n[s->n_notes] = epw_snap_strdup(it->valuestring);
        if (!n[s->n_notes])
            return UV_ENOMEM;
        s->n_notes++;
    }
    rc = 0;
out:
    return rc;
}

int epw_json_to_snapshot(const cJSON *obj, Epw__Snapshot **out)
{
    Epw__Snapshot *s = NULL;
    double duration_ms = 0;
    int rc;

    if (out)
        *out = NULL;
    if (!obj || !out || !cJSON_IsObject(obj))
        return UV_EINVAL;
    s = epw_snap_new();
    if (!s)
        return UV_ENOMEM;
    RJ_TRY(rj__text(obj, "hostname", &s->hostname));
    RJ_TRY(rj__time(obj, "time", &s->taken_at_ms));
    RJ_ENUM(obj, "platform", rj__platform_name, EPW__PLATFORM__WINDOWS, s->platform);
    RJ_TRY(rj__u64(obj, "seq", &s->seq));
    RJ_TRY(rj__text(obj, "netns", &s->netns));
    RJ_TRY(rj__double(obj, "sample_duration_ms", &duration_ms));
    /* Written as us / 1000.0: rounding to the nearest microsecond undoes that exactly. */
    if (!(duration_ms >= 0 && duration_ms * 1000.0 <= UINT32_MAX)) {
        rc = EPW_E_PARSE;
        goto out;
    }
    s->sample_duration_us = (uint32_t)(duration_ms * 1000.0 + 0.5);
    RJ_TRY(rj__double(obj, "pressure_pct", &s->pressure_pct));
    RJ_TRY(rj__text(obj, "pressure_source", &s->pressure_source));
    RJ_TRY(rj__ranges(obj, s));
    RJ_TRY(rj__addresses(obj, s));
    RJ_TRY(rj__host(obj, s));
    RJ_TRY(rj__destinations(obj, s));
    RJ_TRY(rj__u32(obj, "destination_count", &s->destination_count));
    RJ_TRY(rj__states(obj, s));
    RJ_TRY(rj__processes(obj, s));
    RJ_TRY(rj__remotes(obj, s));
    RJ_TRY(rj__u32(obj, "kernel_ports", &s->kernel_ports));
    RJ_TRY(rj__listening(obj, s));
    RJ_TRY(rj__u32(obj, "pid_count", &s->pid_count));
    RJ_TRY(rj__u32(obj, "exclusive_ports", &s->exclusive_ports));
    RJ_TRY(rj__u32(obj, "total_sockets", &s->total_sockets));
    RJ_TRY(rj__time_wait(obj, s));
    RJ_TRY(rj__events(obj, s));
    RJ_TRY(rj__notes(obj, s));
    RJ_TRY(rj__u64(obj, "dropped_before", &s->dropped_before));
    RJ_TRY(rj__bool(obj, "port_starved", &s->port_starved));
    RJ_TRY(rj__u32(obj, "spooled", &s->spooled));
    *out = s;
    s = NULL;
out:
    epw_snap_free(s);
    return rc;
}
