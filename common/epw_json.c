/* epw_json: renders a Snapshot as a cJSON tree (see epw_json.h for the key contract). */
#include "epw_json.h"

#include <stddef.h>
#include <stdint.h>

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
