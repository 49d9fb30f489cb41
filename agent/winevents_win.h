/* winevents_win: Tcpip exhaustion events (4227, 4231, 4266) from the System log, with a bookmark.
 */
#ifndef WINEVENTS_WIN_H
#define WINEVENTS_WIN_H

#include <stddef.h>
#include <wchar.h>

#include "epwatch.pb-c.h"

/*
 * A subscription to the System log for provider Tcpip, events 4227, 4231 and 4266. The event
 * log calls back on one of its pool threads; each event is counted into a mutex-protected
 * winsrc_events_t and recorded in a bookmark under the same lock.
 *
 * No replay, no miss: the bookmark is written to its file only by winevents_drain, together with
 * handing the counts over to a snapshot. After a crash or a stop, the events counted but not yet
 * drained are delivered again on the next start (resumed after the saved bookmark); drained ones
 * are not. Without a bookmark file the subscription starts with future events (no history).
 */
typedef struct winevents_s winevents_t;

/*
 * Subscribes. bookmark_path (copied) names the bookmark file; its directory is created when
 * missing. 0 with *out; otherwise a negative code, *out NULL and a few words in why (e.g.
 * "EvtSubscribe failed (error 1717)": the caller reports the event log as unavailable).
 * A bookmark file that cannot be used is not fatal: the subscription then starts with future
 * events and winevents_drain's first call adds a note saying so.
 */
int winevents_start(const wchar_t *bookmark_path, winevents_t **out, char *why, size_t whylen);

/*
 * Moves the events counted since the last drain into snap->events (notes for subscription
 * errors), then saves the bookmark when it moved. Call from one thread (the sampler's).
 * 0 or UV_ENOMEM; a bookmark that cannot be saved is a note, not an error.
 */
int winevents_drain(winevents_t *we, Epw__Snapshot *snap);

/* Cancels the subscription (waits for a running callback) and frees. NULL is a no-op. */
void winevents_stop(winevents_t *we);

/* %ProgramData%\epwatch\events.bookmark into buf (wide chars). 0, or UV_ENOBUFS. */
int winevents_default_path(wchar_t *buf, size_t len);

#endif
