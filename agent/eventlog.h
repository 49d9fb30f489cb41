/* eventlog: a log sink writing to the Windows Event Log (own source) and to a text file. */
#ifndef EVENTLOG_H
#define EVENTLOG_H

#include "epw_log.h"

/*
 * Windows only (eventlog_win.c). Used by the service, which has no console: every line at the
 * current log level goes to the file (appended, with a timestamp and level; rotated once to
 * FILE.1 when it passes 4 MiB); ERROR, WARN and INFO lines also go to the Application event log
 * under `source` (error, warning, information events, event ID 1, the line as the only string).
 * The source is registered at install (eventlog_register_source) with no message file, so Event
 * Viewer shows the text after its "description ... cannot be found" preamble.
 *
 * Threads: eventlog_sink may be called from any thread; epw_log calls it with its mutex held,
 * which also serialises the file writes. open/close at start-up and shut-down.
 */
typedef struct eventlog_s eventlog_t;

/* source: event source name; file_path: log file (NULL: event log only). Neither is fatal when
 * unavailable: the sink writes to whatever opened. Returns 0 or UV_ENOMEM. */
int eventlog_open(const char *source, const char *file_path, eventlog_t **out);

/* An epw_log_sink_cb; ud is the eventlog_t. */
void eventlog_sink(void *ud, epw_log_level_t level, const char *line);

/* NULL is a no-op. Unset the sink (epw_log_set_sink(NULL, NULL)) first. */
void eventlog_close(eventlog_t *el);

/* HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\<source> with TypesSupported.
 * Returns 0 or a negative code. unregister: 0 also when absent. */
int eventlog_register_source(const char *source);
int eventlog_unregister_source(const char *source);

#endif
