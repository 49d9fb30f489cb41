/* cli_render: pure text rendering for the epwatch operator CLI (tables, sparklines, arrows, ages).
 */
#ifndef CLI_RENDER_H
#define CLI_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/*
 * Everything here is a pure function of its arguments: no clock (the caller passes "now"), no
 * environment (the caller passes the locale variables), no I/O. Thread-safe. Text results are
 * malloc'd NUL-terminated strings owned by the caller (free with free()); out-parameters are
 * cleared on entry. Errors: 0, UV_EINVAL (NULL argument or JSON of the wrong shape), UV_ENOMEM.
 */

/* How to draw: `ascii` replaces every non-ASCII glyph (arrows, sparkline blocks) with an ASCII
 * stand-in; `now_ms` is the reference for relative times ("12s ago"). */
typedef struct cli_style_s {
    int ascii;
    int64_t now_ms;
} cli_style_t;

/* 1 when the locale named by the usual precedence (LC_ALL, then LC_CTYPE, then LANG; the first
 * non-empty one wins) is UTF-8 ("*.UTF-8", "*.utf8", case-insensitive). Unset or "C"/"POSIX": 0. */
int cli_utf8_locale(const char *lc_all, const char *lc_ctype, const char *lang);

/*
 * Trend arrow for a pressure slope in percentage points per hour:
 *   >= +CLI_TREND_STEEP  "↑" (ASCII "^")     rising fast: 10 points/h fills half a range in 5 h
 *   >= +CLI_TREND_FLAT   "↗" (ASCII "/")
 *   otherwise            "→" (ASCII "-")     includes 0 = unknown, and NaN
 *   <= -CLI_TREND_FLAT   "↘" (ASCII "\")
 *   <= -CLI_TREND_STEEP  "↓" (ASCII "v")
 * Static storage.
 */
#define CLI_TREND_FLAT  1.0
#define CLI_TREND_STEEP 10.0
const char *cli_trend_arrow(double pct_per_hour, int ascii);

/* "12s ago", "5m ago", "3h ago", "2d ago" (whole units, truncated: seconds below a minute,
 * minutes below an hour, hours below 48 h, then days); "in 5s" for a time in the future (clock
 * skew). Always NUL-terminates a non-empty `buf`. */
void cli_format_ago(int64_t now_ms, int64_t then_ms, char *buf, size_t len);

/*
 * A sparkline of `n` values scaled linearly from `lo` (lowest block) to `hi` (full block), one
 * glyph per value from "▁▂▃▄▅▆▇█" (ASCII "_.-:=+*#"); values outside [lo, hi] are clamped; NaN is a
 * gap (a space). When n > width (width > 0), consecutive values are merged by their maximum so the
 * line is at most `width` glyphs (a peak is never averaged away). n == 0 gives "".
 */
int cli_sparkline(const double *v, size_t n, size_t width, double lo, double hi, int ascii,
                  char **out);

/* Display columns of a UTF-8 string (one per code point; the glyphs used here are all narrow). */
size_t cli_text_width(const char *s);

/*
 * Reorders an /api/v1/hosts array in place the way the table shows it: silent hosts first, then by
 * pressure_pct descending, then by host name; elements that are not objects go last. UV_EINVAL
 * when `arr` is not an array.
 */
int cli_hosts_sort(cJSON *arr);

/*
 * Tables, one header line then one line per element, columns separated by two spaces, text
 * left-aligned and numbers right-aligned, no trailing spaces. Missing keys show as "-".
 *   hosts:   HOST PRESSURE STATUS TREND LAST SEEN ALERTS TOP PROCESS   (order as given: sort first)
 *   alerts:  ID HOST KIND SEVERITY STATE RAISED RESOLVED SUMMARY
 *   history: a title line (host, range, step), a sparkline line of max_pct on a 0-100 % scale with
 *            the peak, a blank line, then TIME MAX% AVG% SAMPLES. Buckets without points inside
 *            [from, to) are gaps in the sparkline.
 * An empty array gives a one-line explanation instead of a bare header.
 */
int cli_render_hosts(const cJSON *arr, const cli_style_t *st, char **out);
int cli_render_alerts(const cJSON *arr, const cli_style_t *st, char **out);
int cli_render_history(const cJSON *obj, const cli_style_t *st, char **out);

#endif
