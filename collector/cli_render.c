/* cli_render: tables, sparklines, trend arrows and relative times for the epwatch CLI. */
#include "epw_attr.h"
#include "cli_render.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "epw_util.h"

/* ---- a growable string ---- */

typedef struct rbuf_s {
    char *p;
    size_t len, cap;
    int oom;
} rbuf_t;

static void rbuf_add(rbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;

        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void rbuf_puts(rbuf_t *b, const char *s)
{
    rbuf_add(b, s, strlen(s));
}

EPW_PRINTF(2, 3)
static void rbuf_printf(rbuf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    rbuf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Hands the text over (an empty string when nothing was written). */
static int rbuf_take(rbuf_t *b, char **out)
{
    if (!b->oom && !b->p)
        rbuf_add(b, "", 0);
    if (b->oom) {
        free(b->p);
        return UV_ENOMEM;
    }
    *out = b->p;
    return 0;
}

/* ---- a grid of cells, aligned on output ---- */

#define GRID_MAX_COLS 10

typedef struct grid_s {
    size_t ncols;
    const char *head[GRID_MAX_COLS];
    int right[GRID_MAX_COLS]; /* right-align (numbers) */
    char **cells;             /* row-major, each malloc'd */
    size_t ncells, cap;
    int oom;
} grid_t;

static void grid_cell(grid_t *g, const char *text)
{
    char *copy;

    if (g->oom)
        return;
    if (g->ncells == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        char **nc = realloc(g->cells, cap * sizeof(*nc));

        if (!nc) {
            g->oom = 1;
            return;
        }
        g->cells = nc;
        g->cap = cap;
    }
    copy = strdup(text ? text : "-");
    if (!copy) {
        g->oom = 1;
        return;
    }
    g->cells[g->ncells++] = copy;
}

EPW_PRINTF(2, 3)
static void grid_cellf(grid_t *g, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    grid_cell(g, tmp);
}

static void grid_pad(rbuf_t *b, size_t n)
{
    static const char spaces[] = "                                ";

    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;

        rbuf_add(b, spaces, k);
        n -= k;
    }
}

static void grid_line(rbuf_t *b, const grid_t *g, const char *const *row, const size_t *w)
{
    size_t c;

    for (c = 0; c < g->ncols; c++) {
        size_t tw = cli_text_width(row[c]);
        size_t pad = w[c] > tw ? w[c] - tw : 0;
        int last = c + 1 == g->ncols;

        if (c)
            rbuf_add(b, "  ", 2);
        if (g->right[c])
            grid_pad(b, pad);
        rbuf_puts(b, row[c]);
        if (!g->right[c] && !last)
            grid_pad(b, pad);
    }
    rbuf_add(b, "\n", 1);
}

static void grid_render(const grid_t *g, rbuf_t *b)
{
    size_t w[GRID_MAX_COLS] = {0};
    size_t c, r, nrows = g->ncells / g->ncols;

    for (c = 0; c < g->ncols; c++)
        w[c] = cli_text_width(g->head[c]);
    for (r = 0; r < nrows; r++)
        for (c = 0; c < g->ncols; c++) {
            size_t tw = cli_text_width(g->cells[r * g->ncols + c]);

            if (tw > w[c])
                w[c] = tw;
        }
    grid_line(b, g, g->head, w);
    for (r = 0; r < nrows; r++)
        grid_line(b, g, (const char *const *)&g->cells[r * g->ncols], w);
}

static void grid_free(grid_t *g)
{
    size_t i;

    for (i = 0; i < g->ncells; i++)
        free(g->cells[i]);
    free(g->cells);
    g->cells = NULL;
    g->ncells = g->cap = 0;
}

/* Renders the grid after what `b` holds and hands the text to *out (0 or UV_ENOMEM). Releases the
 * grid and, on failure, the text: `b` is empty afterwards either way. */
static int grid_take(grid_t *g, rbuf_t *b, char **out)
{
    int rc = UV_ENOMEM;

    if (!g->oom) {
        grid_render(g, b);
        rc = rbuf_take(b, out);
    } else {
        free(b->p);
    }
    b->p = NULL;
    grid_free(g);
    return rc;
}

/* ---- JSON accessors that tolerate missing keys ---- */

static const char *j_str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int j_num(const cJSON *o, const char *key, double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsNumber(it))
        return 0;
    *v = it->valuedouble;
    return 1;
}

/* The time at `key` relative to now, or "-" when absent/null/unparsable. */
static void j_ago(const cJSON *o, const char *key, const cli_style_t *st, char *buf, size_t len)
{
    const char *t = j_str(o, key);
    int64_t ms;

    if (!t || epw_parse_rfc3339(t, &ms)) {
        snprintf(buf, len, "-");
        return;
    }
    cli_format_ago(st->now_ms, ms, buf, len);
}

/* A cell for the number at `key` with `decimals` digits and `unit` after it; "-" when absent. */
static void grid_num(grid_t *g, const cJSON *o, const char *key, int decimals, const char *unit)
{
    double v;

    if (j_num(o, key, &v))
        grid_cellf(g, "%.*f%s", decimals, v, unit);
    else
        grid_cell(g, NULL);
}

/* ---- small pieces ---- */

static int locale_is_utf8(const char *name)
{
    const char *dot = strchr(name, '.');
    const char *at;
    size_t n;

    if (!dot)
        return 0;
    dot++;
    at = strchr(dot, '@'); /* "en_US.UTF-8@euro" */
    n = at ? (size_t)(at - dot) : strlen(dot);
    return (n == 5 && strncasecmp(dot, "utf-8", 5) == 0) ||
           (n == 4 && strncasecmp(dot, "utf8", 4) == 0);
}

int cli_utf8_locale(const char *lc_all, const char *lc_ctype, const char *lang)
{
    if (lc_all && *lc_all)
        return locale_is_utf8(lc_all);
    if (lc_ctype && *lc_ctype)
        return locale_is_utf8(lc_ctype);
    if (lang && *lang)
        return locale_is_utf8(lang);
    return 0;
}

const char *cli_trend_arrow(double pct_per_hour, int ascii)
{
    double x = pct_per_hour;

    if (x >= CLI_TREND_STEEP)
        return ascii ? "^" : "\xe2\x86\x91"; /* ↑ */
    if (x >= CLI_TREND_FLAT)
        return ascii ? "/" : "\xe2\x86\x97"; /* ↗ */
    if (x <= -CLI_TREND_STEEP)
        return ascii ? "v" : "\xe2\x86\x93"; /* ↓ */
    if (x <= -CLI_TREND_FLAT)
        return ascii ? "\\" : "\xe2\x86\x98"; /* ↘ */
    return ascii ? "-" : "\xe2\x86\x92";      /* → (also NaN) */
}

void cli_format_ago(int64_t now_ms, int64_t then_ms, char *buf, size_t len)
{
    int64_t d = now_ms - then_ms;
    int future = d < 0;
    uint64_t s = (uint64_t)(future ? -d : d) / 1000;
    uint64_t v;
    char unit;

    if (!buf || !len)
        return;
    if (s < 60) {
        v = s;
        unit = 's';
    } else if (s < 3600) {
        v = s / 60;
        unit = 'm';
    } else if (s < 48 * 3600) {
        v = s / 3600;
        unit = 'h';
    } else {
        v = s / 86400;
        unit = 'd';
    }
    if (future)
        snprintf(buf, len, "in %llu%c", (unsigned long long)v, unit);
    else
        snprintf(buf, len, "%llu%c ago", (unsigned long long)v, unit);
}

size_t cli_text_width(const char *s)
{
    size_t n = 0;

    for (; s && *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) /* not a continuation byte */
            n++;
    return n;
}

int cli_sparkline(const double *v, size_t n, size_t width, double lo, double hi, int ascii,
                  char **out)
{
    static const char *const blocks[8] = {"\xe2\x96\x81", "\xe2\x96\x82", "\xe2\x96\x83",
                                          "\xe2\x96\x84", "\xe2\x96\x85", "\xe2\x96\x86",
                                          "\xe2\x96\x87", "\xe2\x96\x88"};
    static const char ascii_levels[] = "_.-:=+*#";
    rbuf_t b = {0};
    size_t cols, c;

    if (out)
        *out = NULL;
    if (!out || (n && !v))
        return UV_EINVAL;
    cols = width && n > width ? width : n;
    for (c = 0; c < cols; c++) {
        /* Column c covers values [c*n/cols, (c+1)*n/cols): every value lands in exactly one. */
        size_t i0 = c * n / cols, i1 = (c + 1) * n / cols, i;
        double m = NAN;
        int level;

        for (i = i0; i < i1; i++)
            if (!isnan(v[i]) && (isnan(m) || v[i] > m))
                m = v[i];
        if (isnan(m)) {
            rbuf_add(&b, " ", 1);
            continue;
        }
        if (hi > lo)
            level = m >= hi ? 7 : m <= lo ? 0 : (int)((m - lo) / (hi - lo) * 8.0);
        else
            level = 0;
        if (level > 7)
            level = 7;
        if (ascii)
            rbuf_add(&b, &ascii_levels[level], 1);
        else
            rbuf_puts(&b, blocks[level]);
    }
    return rbuf_take(&b, out);
}

/* ---- hosts ---- */

static int host_silent(const cJSON *o)
{
    const char *s = j_str(o, "status");

    return s && strcmp(s, "silent") == 0;
}

static int host_cmp(const void *pa, const void *pb)
{
    const cJSON *a = *(const cJSON *const *)pa, *b = *(const cJSON *const *)pb;
    double pa_pct = -1, pb_pct = -1;
    const char *ha, *hb;
    int oa = cJSON_IsObject(a), ob = cJSON_IsObject(b);

    if (oa != ob)
        return ob - oa;
    if (!oa)
        return 0;
    if (host_silent(a) != host_silent(b))
        return host_silent(b) - host_silent(a);
    j_num(a, "pressure_pct", &pa_pct);
    j_num(b, "pressure_pct", &pb_pct);
    if (pa_pct != pb_pct)
        return pa_pct < pb_pct ? 1 : -1;
    ha = j_str(a, "host");
    hb = j_str(b, "host");
    return strcmp(ha ? ha : "", hb ? hb : "");
}

int cli_hosts_sort(cJSON *arr)
{
    cJSON **items;
    size_t n, i;

    if (!cJSON_IsArray(arr))
        return UV_EINVAL;
    n = (size_t)cJSON_GetArraySize(arr);
    if (n < 2)
        return 0;
    items = malloc(n * sizeof(*items));
    if (!items)
        return UV_ENOMEM;
    for (i = 0; i < n; i++)
        items[i] = cJSON_DetachItemFromArray(arr, 0);
    qsort(items, n, sizeof(*items), host_cmp);
    for (i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, items[i]); /* cannot fail for a detached item */
    free(items);
    return 0;
}

int cli_render_hosts(const cJSON *arr, const cli_style_t *st, char **out)
{
    grid_t g = {7,
                {"HOST", "PRESSURE", "STATUS", "TREND", "LAST SEEN", "ALERTS", "TOP PROCESS"},
                {0, 1, 0, 0, 0, 1, 0},
                NULL,
                0,
                0,
                0};
    rbuf_t b = {0};
    const cJSON *o;

    if (out)
        *out = NULL;
    if (!out || !st || !cJSON_IsArray(arr))
        return UV_EINVAL;
    if (cJSON_GetArraySize(arr) == 0) {
        rbuf_puts(&b, "No host has reported to the collector yet.\n");
        return rbuf_take(&b, out);
    }
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(o, "top_process");
        char ago[32];
        double v;

        grid_cell(&g, j_str(o, "host"));
        grid_num(&g, o, "pressure_pct", 1, "%");
        grid_cell(&g, j_str(o, "status"));
        if (j_num(o, "trend_pct_per_hour", &v))
            grid_cellf(&g, "%s %+.1f%%/h", cli_trend_arrow(v, st->ascii), v);
        else
            grid_cell(&g, cli_trend_arrow(0, st->ascii));
        j_ago(o, "last_seen", st, ago, sizeof(ago));
        grid_cell(&g, ago);
        grid_num(&g, o, "active_alerts", 0, "");
        if (cJSON_IsObject(tp)) {
            const char *name = j_str(tp, "name");
            double pid = 0, ports = 0;

            j_num(tp, "pid", &pid);
            j_num(tp, "ports", &ports);
            grid_cellf(&g, "%s (pid %.0f): %.0f ports", name && *name ? name : "?", pid, ports);
        } else {
            grid_cell(&g, NULL);
        }
    }
    return grid_take(&g, &b, out);
}

/* ---- alerts ---- */

int cli_render_alerts(const cJSON *arr, const cli_style_t *st, char **out)
{
    grid_t g = {8,
                {"ID", "HOST", "KIND", "SEVERITY", "STATE", "RAISED", "RESOLVED", "SUMMARY"},
                {1, 0, 0, 0, 0, 0, 0, 0},
                NULL,
                0,
                0,
                0};
    rbuf_t b = {0};
    const cJSON *o;

    if (out)
        *out = NULL;
    if (!out || !st || !cJSON_IsArray(arr))
        return UV_EINVAL;
    if (cJSON_GetArraySize(arr) == 0) {
        rbuf_puts(&b, "No alerts.\n");
        return rbuf_take(&b, out);
    }
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *active = cJSON_GetObjectItemCaseSensitive(o, "active");
        char ago[32];

        grid_num(&g, o, "id", 0, "");
        grid_cell(&g, j_str(o, "host"));
        grid_cell(&g, j_str(o, "kind"));
        grid_cell(&g, j_str(o, "severity"));
        grid_cell(&g, !cJSON_IsBool(active) ? NULL : cJSON_IsTrue(active) ? "active" : "resolved");
        j_ago(o, "raised_at", st, ago, sizeof(ago));
        grid_cell(&g, ago);
        j_ago(o, "resolved_at", st, ago, sizeof(ago));
        grid_cell(&g, ago);
        grid_cell(&g, j_str(o, "summary"));
    }
    return grid_take(&g, &b, out);
}

/* ---- history ---- */

/* Sparklines wider than this are merged (max) so the line fits a terminal with its labels. */
#define HISTORY_SPARK_WIDTH 100
/* Above this many buckets the gaps are not reconstructed (a nonsensical step). */
#define HISTORY_MAX_SLOTS 100000

/* The max_pct series as sparkline input: one slot per step between from and to when the range
 * is known, so missing buckets show as gaps; otherwise the points in order. */
static int history_series(const cJSON *obj, const cJSON *points, double **out, size_t *n_out)
{
    const char *from = j_str(obj, "from"), *to = j_str(obj, "to");
    int64_t from_ms = 0, to_ms = 0;
    double step_s = 0;
    size_t n = (size_t)cJSON_GetArraySize(points), slots = n, i = 0;
    const cJSON *p;
    double *v;
    int by_time = 0;

    *out = NULL;
    *n_out = 0;
    if (from && to && !epw_parse_rfc3339(from, &from_ms) && !epw_parse_rfc3339(to, &to_ms) &&
        j_num(obj, "step_s", &step_s) && step_s >= 1 && to_ms > from_ms) {
        double s = ceil((double)(to_ms - from_ms) / (step_s * 1000.0));

        if (s >= 1 && s <= HISTORY_MAX_SLOTS) {
            slots = (size_t)s;
            by_time = 1;
        }
    }
    if (!slots)
        return 0;
    v = malloc(slots * sizeof(*v));
    if (!v)
        return UV_ENOMEM;
    for (i = 0; i < slots; i++)
        v[i] = by_time ? NAN : 0;
    i = 0;
    cJSON_ArrayForEach(p, points)
    {
        double m = NAN;
        const char *t = j_str(p, "t");
        int64_t t_ms;

        j_num(p, "max_pct", &m);
        if (!by_time) {
            v[i++] = m;
            continue;
        }
        if (t && !epw_parse_rfc3339(t, &t_ms) && t_ms >= from_ms && t_ms < to_ms) {
            size_t slot = (size_t)((double)(t_ms - from_ms) / (step_s * 1000.0));

            if (slot < slots && (isnan(v[slot]) || m > v[slot]))
                v[slot] = m;
        }
    }
    *out = v;
    *n_out = slots;
    return 0;
}

int cli_render_history(const cJSON *obj, const cli_style_t *st, char **out)
{
    grid_t g = {4, {"TIME", "MAX%", "AVG%", "SAMPLES"}, {0, 1, 1, 1}, NULL, 0, 0, 0};
    rbuf_t b = {0};
    const cJSON *points, *p;
    const char *host, *peak_t = NULL;
    double *series = NULL, step_s = 0, peak = NAN;
    size_t n = 0;
    char *spark = NULL, stepbuf[32] = "?";
    int rc;

    if (out)
        *out = NULL;
    if (!out || !st || !cJSON_IsObject(obj))
        return UV_EINVAL;
    points = cJSON_GetObjectItemCaseSensitive(obj, "points");
    if (!cJSON_IsArray(points))
        return UV_EINVAL;
    host = j_str(obj, "host");
    if (j_num(obj, "step_s", &step_s) && step_s > 0)
        epw_format_duration((uint64_t)(step_s * 1000.0), stepbuf, sizeof(stepbuf));
    rbuf_printf(&b, "%s  %s .. %s  step %s  %d point%s\n", host ? host : "?",
                j_str(obj, "from") ? j_str(obj, "from") : "?",
                j_str(obj, "to") ? j_str(obj, "to") : "?", stepbuf, cJSON_GetArraySize(points),
                cJSON_GetArraySize(points) == 1 ? "" : "s");
    if (cJSON_GetArraySize(points) == 0) {
        rbuf_puts(&b, "No samples in this range.\n");
        rc = rbuf_take(&b, out);
        b.p = NULL;
        goto out;
    }
    cJSON_ArrayForEach(p, points)
    {
        double m;

        grid_cell(&g, j_str(p, "t"));
        if (j_num(p, "max_pct", &m)) {
            grid_cellf(&g, "%.1f", m);
            if (isnan(peak) || m > peak) {
                peak = m;
                peak_t = j_str(p, "t");
            }
        } else {
            grid_cell(&g, NULL);
        }
        grid_num(&g, p, "avg_pct", 1, "");
        grid_num(&g, p, "samples", 0, "");
    }
    rc = history_series(obj, points, &series, &n);
    if (rc)
        goto out;
    rc = cli_sparkline(series, n, HISTORY_SPARK_WIDTH, 0.0, 100.0, st->ascii, &spark);
    if (rc)
        goto out;
    rbuf_puts(&b, "max% 0-100 |");
    rbuf_puts(&b, spark);
    rbuf_puts(&b, "|");
    if (!isnan(peak))
        rbuf_printf(&b, "  peak %.1f%% at %s", peak, peak_t ? peak_t : "?");
    rbuf_puts(&b, "\n\n");
    rc = grid_take(&g, &b, out);
out:
    free(b.p);
    free(spark);
    free(series);
    grid_free(&g);
    return rc;
}
