/* epw_table: renders a Snapshot as aligned text blocks (see epw_table.h). */
#include "epw_attr.h"
#include "epw_table.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_snap.h"
#include "epw_util.h"

/* Counts are printed with %u: mingw checks formats as MSVCRT printf, which lacks %zu. */
/* Listening ports listed by number; the rest are counted, since a server can listen on hundreds. */
#define TABLE_MAX_LISTENERS 32

/* A growable text buffer. `failed` is sticky so rendering code need not check every append. */
typedef struct tbuf_s {
    char *p;
    size_t len;
    size_t cap;
    int failed;
} tbuf_t;

static void tbuf_reserve(tbuf_t *b, size_t extra)
{
    size_t cap;
    char *np;

    if (b->failed || b->len + extra + 1 <= b->cap)
        return;
    cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra + 1)
        cap *= 2;
    np = realloc(b->p, cap);
    if (!np) {
        b->failed = 1;
        return;
    }
    b->p = np;
    b->cap = cap;
}

static void tbuf_put(tbuf_t *b, const char *s, size_t n)
{
    tbuf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tbuf_fill(tbuf_t *b, char c, size_t n)
{
    tbuf_reserve(b, n);
    if (b->failed)
        return;
    memset(b->p + b->len, c, n);
    b->len += n;
    b->p[b->len] = '\0';
}

EPW_PRINTF(2, 3)
static void tbuf_printf(tbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    tbuf_reserve(b, (size_t)n);
    if (b->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/*
 * A table under construction: headers, per-column alignment, and cells added left to right, top
 * to bottom. Cells are copied, so callers may pass stack buffers.
 */
#define GRID_MAX_COLS 8

typedef struct grid_s {
    size_t ncols;
    const char *hdr[GRID_MAX_COLS];
    int right[GRID_MAX_COLS];
    char **cells;
    size_t n;
    size_t cap;
    int failed;
} grid_t;

/* `spec` is one char per column: 'l' left-aligned text, 'r' right-aligned number. */
static void grid_init(grid_t *g, const char *spec, ...)
{
    va_list ap;
    size_t i;

    memset(g, 0, sizeof(*g));
    g->ncols = strlen(spec);
    va_start(ap, spec);
    for (i = 0; i < g->ncols && i < GRID_MAX_COLS; i++) {
        g->hdr[i] = va_arg(ap, const char *);
        g->right[i] = spec[i] == 'r';
    }
    va_end(ap);
}

static void grid_free(grid_t *g)
{
    size_t i;

    for (i = 0; i < g->n; i++)
        free(g->cells[i]);
    free(g->cells);
    g->cells = NULL;
    g->n = g->cap = 0;
}

EPW_PRINTF(2, 3)
static void grid_cell(grid_t *g, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    char *c;

    if (g->failed)
        return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        char **nc = realloc(g->cells, cap * sizeof(*nc));

        if (!nc) {
            g->failed = 1;
            return;
        }
        g->cells = nc;
        g->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    c = malloc(strlen(tmp) + 1);
    if (!c) {
        g->failed = 1;
        return;
    }
    strcpy(c, tmp);
    g->cells[g->n++] = c;
}

/* A text cell: "-" stands for an empty value so columns never collapse. */
static void grid_text(grid_t *g, const char *s)
{
    grid_cell(g, "%s", s && *s ? s : "-");
}

static void grid_pad(tbuf_t *b, const char *s, size_t width, int right, int last)
{
    size_t n = strlen(s);

    if (right && n < width)
        tbuf_fill(b, ' ', width - n);
    tbuf_put(b, s, n);
    /* No trailing blanks at the end of a line: logs get diffed and grepped. */
    if (!right && !last && n < width)
        tbuf_fill(b, ' ', width - n);
}

static void grid_emit(grid_t *g, tbuf_t *b, size_t indent)
{
    size_t w[GRID_MAX_COLS];
    size_t c, r, nrows;

    if (g->failed) {
        b->failed = 1;
        return;
    }
    nrows = g->n / g->ncols;
    for (c = 0; c < g->ncols; c++) {
        w[c] = strlen(g->hdr[c]);
        for (r = 0; r < nrows; r++) {
            size_t n = strlen(g->cells[r * g->ncols + c]);

            if (n > w[c])
                w[c] = n;
        }
    }
    /* Header, dashed underline (as long as each header, like the classic script), rows. */
    for (r = 0; r < nrows + 2; r++) {
        tbuf_fill(b, ' ', indent);
        for (c = 0; c < g->ncols; c++) {
            int last = c + 1 == g->ncols;

            if (c)
                tbuf_put(b, " ", 1);
            if (r == 0) {
                grid_pad(b, g->hdr[c], w[c], 0, last);
            } else if (r == 1) {
                size_t n = strlen(g->hdr[c]);

                tbuf_fill(b, '-', n);
                if (!last)
                    tbuf_fill(b, ' ', w[c] - n);
            } else {
                grid_pad(b, g->cells[(r - 2) * g->ncols + c], w[c], g->right[c], last);
            }
        }
        tbuf_put(b, "\n", 1);
    }
}

static const char *table__model(Epw__Platform p)
{
    switch (p) {
    case EPW__PLATFORM__WINDOWS:
        return "windows: one port per outbound connection, host-wide pool per protocol";
    case EPW__PLATFORM__LINUX:
        return "linux: ports shared across destinations, unique 4-tuple per connection";
    default:
        return "unknown";
    }
}

/* The classic script's table for one protocol; returns the number of rows written. */
static size_t table__classic(tbuf_t *b, const Epw__Snapshot *snap, Epw__Protocol proto,
                             const char *when)
{
    grid_t g;
    size_t i, rows = 0;

    grid_init(&g, "lllrrrrr", "Computer", "DateTime", "LocalAddress", "#OfEPortsInUse",
              "Max#OfEPorts", "%EPortUsage", "#OfTcpListeningPorts", "#OfPids");
    for (i = 0; i < snap->n_addresses; i++) {
        const Epw__AddressUsage *a = snap->addresses[i];

        if (a->protocol != proto)
            continue;
        grid_text(&g, snap->hostname);
        grid_text(&g, when);
        grid_text(&g, a->local_address);
        grid_cell(&g, "%u", (unsigned)a->ports_in_use);
        grid_cell(&g, "%u", (unsigned)a->max_ports);
        grid_cell(&g, "%.1f", a->usage_pct);
        grid_cell(&g, "%u", (unsigned)a->listening_ports);
        grid_cell(&g, "%u", (unsigned)a->pids);
        rows++;
    }
    /* TCP is always shown, even empty, so every block starts with the same header line. */
    if (rows || proto == EPW__PROTOCOL__TCP) {
        if (proto == EPW__PROTOCOL__UDP)
            tbuf_printf(b, "\nUDP:\n");
        grid_emit(&g, b, 0);
    }
    grid_free(&g);
    return rows;
}

static void table__pressure(tbuf_t *b, const Epw__Snapshot *snap)
{
    grid_t g;
    size_t i;

    tbuf_printf(b, "\nPressure: %.1f%% (source: %s; model: %s)\n", snap->pressure_pct,
                snap->pressure_source && *snap->pressure_source ? snap->pressure_source : "-",
                table__model(snap->platform));
    if (!snap->n_host)
        return;
    tbuf_printf(b, "\nHost-wide:\n");
    grid_init(&g, "lrrr", "Protocol", "PortsInUse", "MaxPorts", "%Usage");
    for (i = 0; i < snap->n_host; i++) {
        grid_text(&g, epw_snap_proto_name(snap->host[i]->protocol));
        grid_cell(&g, "%u", (unsigned)snap->host[i]->ports_in_use);
        grid_cell(&g, "%u", (unsigned)snap->host[i]->max_ports);
        grid_cell(&g, "%.1f", snap->host[i]->usage_pct);
    }
    grid_emit(&g, b, 2);
    grid_free(&g);
}

static void table__destinations(tbuf_t *b, const Epw__Snapshot *snap)
{
    grid_t g;
    size_t i;

    if (!snap->n_destinations)
        return;
    tbuf_printf(b, "\nTop destinations (%u of %u):\n", (unsigned)snap->n_destinations,
                (unsigned)snap->destination_count);
    grid_init(&g, "llrlrrr", "LocalAddress", "RemoteAddress", "RemotePort", "Protocol",
              "Connections", "FreePorts", "%Usage");
    for (i = 0; i < snap->n_destinations; i++) {
        const Epw__DestinationUsage *d = snap->destinations[i];

        grid_text(&g, d->local_address);
        grid_text(&g, d->remote_address);
        grid_cell(&g, "%u", (unsigned)d->remote_port);
        grid_text(&g, epw_snap_proto_name(d->protocol));
        grid_cell(&g, "%u", (unsigned)d->connections);
        grid_cell(&g, "%u", (unsigned)d->free_ports);
        grid_cell(&g, "%.1f", d->usage_pct);
    }
    grid_emit(&g, b, 2);
    grid_free(&g);
}

static void table__states(tbuf_t *b, const Epw__Snapshot *snap)
{
    grid_t g;
    size_t i;

    if (!snap->n_states)
        return;
    tbuf_printf(b, "\nStates (sockets on range ports):\n");
    grid_init(&g, "lr", "State", "Count");
    for (i = 0; i < snap->n_states; i++) {
        grid_text(&g, snap->states[i]->state);
        grid_cell(&g, "%u", (unsigned)snap->states[i]->count);
    }
    grid_emit(&g, b, 2);
    grid_free(&g);
}

static void table__processes(tbuf_t *b, const Epw__Snapshot *snap)
{
    grid_t g;
    size_t i;

    if (!snap->n_top_processes)
        return;
    tbuf_printf(b, "\nTop processes:\n");
    grid_init(&g, "rlr", "PID", "Name", "Ports");
    for (i = 0; i < snap->n_top_processes; i++) {
        const Epw__ProcessUsage *p = snap->top_processes[i];

        if (p->other) {
            grid_cell(&g, "-");
            grid_cell(&g, "(other)");
        } else {
            grid_cell(&g, "%u", (unsigned)p->pid);
            grid_text(&g, p->name);
        }
        grid_cell(&g, "%u", (unsigned)p->ports);
    }
    grid_emit(&g, b, 2);
    grid_free(&g);
}

static void table__remotes(tbuf_t *b, const Epw__Snapshot *snap)
{
    grid_t g;
    size_t i;

    if (!snap->n_top_remotes)
        return;
    tbuf_printf(b, "\nTop remote endpoints:\n");
    grid_init(&g, "lrr", "RemoteAddress", "RemotePort", "Connections");
    for (i = 0; i < snap->n_top_remotes; i++) {
        const Epw__RemoteUsage *r = snap->top_remotes[i];

        if (r->other) {
            grid_cell(&g, "(other)");
            grid_cell(&g, "-");
        } else {
            grid_text(&g, r->remote_address);
            grid_cell(&g, "%u", (unsigned)r->remote_port);
        }
        grid_cell(&g, "%u", (unsigned)r->connections);
    }
    grid_emit(&g, b, 2);
    grid_free(&g);
}

static void table__counters(tbuf_t *b, const Epw__Snapshot *snap)
{
    size_t i;

    tbuf_printf(b, "\nKernel-owned ports: %u\n", (unsigned)snap->kernel_ports);
    tbuf_printf(b, "Listening ports (%u):", (unsigned)snap->n_listening_ports);
    for (i = 0; i < snap->n_listening_ports && i < TABLE_MAX_LISTENERS; i++)
        tbuf_printf(b, " %u", (unsigned)snap->listening_ports[i]);
    if (snap->n_listening_ports > TABLE_MAX_LISTENERS)
        tbuf_printf(b, " ... (%u more)", (unsigned)(snap->n_listening_ports - TABLE_MAX_LISTENERS));
    tbuf_printf(b, "\nProcesses: %u  Exclusive ports: %u  Sockets: %u  Sample took: %.1f ms\n",
                (unsigned)snap->pid_count, (unsigned)snap->exclusive_ports,
                (unsigned)snap->total_sockets, snap->sample_duration_us / 1000.0);
    /* 0 s is not a real setting (the minimum is 1 s on Windows, fixed 60 s on Linux): it means
     * the sampler could not tell, e.g. for a netstat capture. */
    if (snap->time_wait && snap->time_wait->seconds)
        tbuf_printf(b, "TIME_WAIT: %us%s\n", (unsigned)snap->time_wait->seconds,
                    snap->time_wait->is_default ? " (platform default)" : "");
    else
        tbuf_printf(b, "TIME_WAIT: unknown\n");
}

static void table__ranges(tbuf_t *b, const Epw__Snapshot *snap)
{
    grid_t g;
    size_t i;

    if (!snap->n_ranges)
        return;
    tbuf_printf(b, "\nRanges:\n");
    grid_init(&g, "llrrrrl", "Protocol", "Family", "Start", "End", "Count", "Excluded", "Source");
    for (i = 0; i < snap->n_ranges; i++) {
        const Epw__PortRange *r = snap->ranges[i];

        grid_text(&g, epw_snap_proto_name(r->protocol));
        grid_text(&g, epw_snap_family_name(r->family));
        grid_cell(&g, "%u", (unsigned)r->start);
        grid_cell(&g, "%u", (unsigned)(r->count ? r->start + r->count - 1 : r->start));
        grid_cell(&g, "%u", (unsigned)r->count);
        grid_cell(&g, "%u", (unsigned)r->excluded);
        grid_text(&g, epw_snap_range_source_name(r->source));
    }
    grid_emit(&g, b, 2);
    grid_free(&g);
}

static void table__events(tbuf_t *b, const Epw__Snapshot *snap)
{
    grid_t g;
    size_t i;
    char first[40], last[40];

    if (!snap->n_events)
        return;
    tbuf_printf(b, "\nExhaustion events:\n");
    grid_init(&g, "rllr", "EventId", "First", "Last", "Count");
    for (i = 0; i < snap->n_events; i++) {
        const Epw__ExhaustionEvent *e = snap->events[i];

        if (epw_format_rfc3339(e->first_ms, first, sizeof(first)))
            first[0] = '\0';
        if (epw_format_rfc3339(e->last_ms, last, sizeof(last)))
            last[0] = '\0';
        grid_cell(&g, "%u", (unsigned)e->event_id);
        grid_text(&g, first);
        grid_text(&g, last);
        grid_cell(&g, "%u", (unsigned)e->count);
    }
    grid_emit(&g, b, 2);
    grid_free(&g);
}

static void table__notes(tbuf_t *b, const Epw__Snapshot *snap)
{
    size_t i;

    if (!snap->n_notes)
        return;
    tbuf_printf(b, "\nNotes:\n");
    for (i = 0; i < snap->n_notes; i++)
        tbuf_printf(b, "  - %s\n", snap->notes[i] ? snap->notes[i] : "");
}

int epw_table_render(const Epw__Snapshot *snap, unsigned flags, char **out, size_t *out_len)
{
    tbuf_t b = {0};
    char when[40];
    int rc = 0;

    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!snap || !out || !out_len)
        return UV_EINVAL;
    if (epw_format_rfc3339(snap->taken_at_ms, when, sizeof(when)))
        when[0] = '\0';
    if (snap->netns && *snap->netns)
        tbuf_printf(&b, "Network namespace: %s\n", snap->netns);
    table__classic(&b, snap, EPW__PROTOCOL__TCP, when);
    table__classic(&b, snap, EPW__PROTOCOL__UDP, when);
    if (!(flags & EPW_TABLE_CLASSIC_ONLY)) {
        table__pressure(&b, snap);
        table__destinations(&b, snap);
        table__states(&b, snap);
        table__processes(&b, snap);
        table__remotes(&b, snap);
        table__counters(&b, snap);
        table__ranges(&b, snap);
        table__events(&b, snap);
        table__notes(&b, snap);
    }
    tbuf_put(&b, "\n", 1);
    if (b.failed) {
        rc = UV_ENOMEM;
        free(b.p);
        goto out;
    }
    *out = b.p;
    *out_len = b.len;
out:
    return rc;
}

int epw_table_snapshot(const Epw__Snapshot *snap, FILE *out)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = epw_table_render(snap, 0, &text, &len);
    if (rc)
        goto out;
    if (fwrite(text, 1, len, out) != len)
        rc = UV_EIO;
out:
    free(text);
    return rc;
}
