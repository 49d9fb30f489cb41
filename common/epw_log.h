/* epw_log: the one logging module (levels, subsystem prefixes, rate limiting). */
#ifndef EPW_LOG_H
#define EPW_LOG_H

#include "epw_attr.h"

#include <stdarg.h>
#include <stdint.h>

typedef enum {
    EPW_LOG_ERROR = 0,
    EPW_LOG_WARN = 1,
    EPW_LOG_INFO = 2,
    EPW_LOG_DEBUG = 3
} epw_log_level_t;

/*
 * A sink receives each formatted line (no trailing newline). It is called with the log mutex held,
 * from whichever thread logged; it must not log itself. `line` is valid only during the call.
 */
typedef void (*epw_log_sink_cb)(void *ud, epw_log_level_t level, const char *line);

/* Threshold: messages above it are dropped before formatting. Default EPW_LOG_INFO. */
void epw_log_set_level(epw_log_level_t level);
epw_log_level_t epw_log_get_level(void);
/* Parses "error", "warn", "info", "debug". Returns 0 or EPW_E_CONFIG. */
int epw_log_parse_level(const char *text, epw_log_level_t *out);

/* Replaces the sink (NULL restores the default: stderr with a timestamp). Not thread-safe with
 * concurrent logging: call at start-up. */
void epw_log_set_sink(epw_log_sink_cb cb, void *ud);

/* Thread-safe. `subsys` is a short prefix such as "uplink"; may be NULL. */
void epw_log_write(epw_log_level_t level, const char *subsys, const char *fmt, ...)
    EPW_PRINTF(3, 4);
void epw_log_vwrite(epw_log_level_t level, const char *subsys, const char *fmt, va_list ap)
    EPW_PRINTF(3, 0);

#define EPW_LOG(lvl, sub, ...)                                                                     \
    do {                                                                                           \
        if ((int)(lvl) <= (int)epw_log_get_level())                                                \
            epw_log_write((lvl), (sub), __VA_ARGS__);                                              \
    } while (0)
#define EPW_ERROR(sub, ...) EPW_LOG(EPW_LOG_ERROR, sub, __VA_ARGS__)
#define EPW_WARN(sub, ...)  EPW_LOG(EPW_LOG_WARN, sub, __VA_ARGS__)
#define EPW_INFO(sub, ...)  EPW_LOG(EPW_LOG_INFO, sub, __VA_ARGS__)
#define EPW_DEBUG(sub, ...) EPW_LOG(EPW_LOG_DEBUG, sub, __VA_ARGS__)

/*
 * Rate limiting for repeated complaints (a reconnect loop must not flood the log). Embed one per
 * failure site; zero-initialise it. Not thread-safe: one owner thread per instance.
 * The first complaint is logged; repeats are suppressed for an interval that doubles up to one
 * day, and the next logged line says how many were suppressed. epw_complain_clear logs the
 * recovery once (at INFO) if a complaint had been logged.
 */
typedef struct epw_complain_s {
    uint64_t next_ms;
    uint64_t interval_ms;
    uint32_t suppressed;
    int active;
} epw_complain_t;

void epw_complain(epw_complain_t *c, epw_log_level_t level, const char *subsys, const char *fmt,
                  ...) EPW_PRINTF(4, 5);
void epw_complain_clear(epw_complain_t *c, const char *subsys, const char *what);

#endif
