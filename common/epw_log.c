/* epw_log: formatting, the default stderr sink, and complaint rate limiting. */
#include "epw_log.h"
#include "epw_err.h"
#include "epw_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static epw_log_level_t epw__log_level = EPW_LOG_INFO;
static epw_log_sink_cb epw__log_sink;
static void *epw__log_sink_ud;
static uv_once_t epw__log_once = UV_ONCE_INIT;
static uv_mutex_t epw__log_mutex;

static const char *const epw__level_names[] = {"error", "warn", "info", "debug"};

static void epw__log_init(void)
{
    if (uv_mutex_init(&epw__log_mutex) != 0)
        abort();
}

void epw_log_set_level(epw_log_level_t level)
{
    epw__log_level = level;
}

epw_log_level_t epw_log_get_level(void)
{
    return epw__log_level;
}

int epw_log_parse_level(const char *text, epw_log_level_t *out)
{
    size_t i;

    for (i = 0; i < sizeof(epw__level_names) / sizeof(epw__level_names[0]); i++) {
        if (text && strcmp(text, epw__level_names[i]) == 0) {
            *out = (epw_log_level_t)i;
            return 0;
        }
    }
    return EPW_E_CONFIG;
}

void epw_log_set_sink(epw_log_sink_cb cb, void *ud)
{
    epw__log_sink = cb;
    epw__log_sink_ud = ud;
}

void epw_log_vwrite(epw_log_level_t level, const char *subsys, const char *fmt, va_list ap)
{
    char line[1024];
    char ts[40];
    int n = 0;

    if ((int)level > (int)epw__log_level)
        return;
    uv_once(&epw__log_once, epw__log_init);
    if (subsys)
        n = snprintf(line, sizeof(line), "%s: ", subsys);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);

    uv_mutex_lock(&epw__log_mutex);
    if (epw__log_sink) {
        epw__log_sink(epw__log_sink_ud, level, line);
    } else {
        epw_format_rfc3339(epw_now_ms(), ts, sizeof(ts));
        fprintf(stderr, "%s %-5s %s\n", ts, epw__level_names[level], line);
        fflush(stderr);
    }
    uv_mutex_unlock(&epw__log_mutex);
}

void epw_log_write(epw_log_level_t level, const char *subsys, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    epw_log_vwrite(level, subsys, fmt, ap);
    va_end(ap);
}

void epw_complain(epw_complain_t *c, epw_log_level_t level, const char *subsys, const char *fmt,
                  ...)
{
    uint64_t now = epw_mono_ms();
    char msg[768];
    va_list ap;

    if (c->active && now < c->next_ms) {
        c->suppressed++;
        return;
    }
    c->interval_ms = c->interval_ms ? c->interval_ms * 2 : 10000;
    if (c->interval_ms > 86400000u)
        c->interval_ms = 86400000u;
    c->next_ms = now + c->interval_ms;
    c->active = 1;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->suppressed)
        epw_log_write(level, subsys, "%s (repeated %u times since last report)", msg,
                      c->suppressed);
    else
        epw_log_write(level, subsys, "%s", msg);
    c->suppressed = 0;
}

void epw_complain_clear(epw_complain_t *c, const char *subsys, const char *what)
{
    if (c->active)
        epw_log_write(EPW_LOG_INFO, subsys, "%s: recovered", what ? what : "condition");
    memset(c, 0, sizeof(*c));
}
