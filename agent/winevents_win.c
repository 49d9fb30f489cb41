/* winevents_win: Tcpip exhaustion events (4227, 4231, 4266) from the System log, with a bookmark.
 */
#include <winsock2.h>
#include <windows.h>
#include <winevt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_util.h"
#include "winevents_win.h"
#include "winsrc.h"

#define WINEVENTS__SUB "events"
/* A bookmark is one short XML element; anything much larger is not ours. */
#define WINEVENTS__BOOKMARK_MAX (16u * 1024u)

static const wchar_t winevents__query[] =
    L"*[System[Provider[@Name='Tcpip'] and (EventID=4227 or EventID=4231 or EventID=4266)]]";

struct winevents_s {
    CRITICAL_SECTION lock; /* one event's count and its bookmark move together */
    winsrc_events_t *acc;
    EVT_HANDLE sub;
    EVT_HANDLE bookmark;
    EVT_HANDLE render; /* values context: EventID, TimeCreated (made on the first event) */
    int moved;         /* the bookmark moved since the last save */
    wchar_t *path;
    char start_note[160]; /* why an existing bookmark could not be used, once */
};

static const wchar_t *const winevents__paths[2] = {L"Event/System/EventID",
                                                   L"Event/System/TimeCreated/@SystemTime"};

/*
 * Pool thread. Counts the event and moves the bookmark past it, both under the lock. The render
 * context and a fresh bookmark are made here, on the first event, not before subscribing: Wine's
 * wevtapi aborts the process in EvtCreateRenderContext, while its EvtSubscribe fails cleanly.
 */
static DWORD WINAPI winevents__cb(EVT_SUBSCRIBE_NOTIFY_ACTION action, PVOID ctx, EVT_HANDLE ev)
{
    winevents_t *we = ctx;
    EVT_VARIANT vals[8];
    DWORD used = 0, nprops = 0, err = 0;
    uint32_t id = 0;
    int64_t ms = 0;

    if (action == EvtSubscribeActionError) {
        /* `ev` is then a Win32 error code, e.g. ERROR_EVT_QUERY_RESULT_STALE: events missed. */
        winsrc_events_error(we->acc, (uint32_t)(uintptr_t)ev);
        return 0;
    }
    if (action != EvtSubscribeActionDeliver)
        return 0;
    EnterCriticalSection(&we->lock);
    if (!we->render)
        we->render = EvtCreateRenderContext(2, (LPCWSTR *)winevents__paths, EvtRenderContextValues);
    if (!we->bookmark)
        we->bookmark = EvtCreateBookmark(NULL);
    memset(vals, 0, sizeof(vals));
    if (!we->render || !we->bookmark ||
        !EvtRender(we->render, ev, EvtRenderEventValues, (DWORD)sizeof(vals), vals, &used,
                   &nprops) ||
        nprops < 2) {
        err = GetLastError();
        winsrc_events_error(we->acc, err ? (uint32_t)err : 1u);
        goto out;
    }
    if (vals[0].Type == EvtVarTypeUInt16)
        id = vals[0].UInt16Val;
    if (vals[1].Type == EvtVarTypeFileTime)
        ms = winsrc_filetime_ms(vals[1].FileTimeVal);
    if (ms == 0)
        ms = epw_now_ms(); /* no usable time: when we saw it */
    winsrc_events_add(we->acc, id, ms);
    if (EvtUpdateBookmark(we->bookmark, ev))
        we->moved = 1;
out:
    LeaveCriticalSection(&we->lock);
    return 0;
}

/* Reads the bookmark file into a new wide string (*out, free()); 0, or negative when absent. */
static int winevents__load(const wchar_t *path, wchar_t **out)
{
    HANDLE f;
    char *buf = NULL;
    wchar_t *w = NULL;
    DWORD got = 0;
    LARGE_INTEGER sz;
    int n, rc = 0;

    *out = NULL;
    f = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    if (f == INVALID_HANDLE_VALUE)
        return UV_ENOENT;
    if (!GetFileSizeEx(f, &sz) || sz.QuadPart <= 0 || sz.QuadPart > WINEVENTS__BOOKMARK_MAX) {
        rc = EPW_E_PARSE;
        goto out;
    }
    buf = malloc((size_t)sz.QuadPart);
    w = malloc(((size_t)sz.QuadPart + 1) * sizeof(*w));
    if (!buf || !w) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (!ReadFile(f, buf, (DWORD)sz.QuadPart, &got, NULL) || got != (DWORD)sz.QuadPart) {
        rc = UV_EIO;
        goto out;
    }
    n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, buf, (int)got, w, (int)got);
    if (n <= 0) {
        rc = EPW_E_PARSE;
        goto out;
    }
    w[n] = L'\0';
    *out = w;
    w = NULL;
out:
    CloseHandle(f);
    free(buf);
    free(w);
    return rc;
}

/* Creates the directory that holds path (one level: the data dir's parent must exist). */
static void winevents__mkdir_for(const wchar_t *path)
{
    wchar_t dir[MAX_PATH];
    wchar_t *slash;

    if (wcslen(path) >= MAX_PATH)
        return;
    wcscpy(dir, path);
    slash = wcsrchr(dir, L'\\');
    if (!slash || slash == dir)
        return;
    *slash = L'\0';
    CreateDirectoryW(dir, NULL); /* ERROR_ALREADY_EXISTS is the normal case */
}

/* Writes the bookmark XML atomically (a temporary file, then a replacing rename). */
static int winevents__save(const wchar_t *path, const wchar_t *xml, char *why, size_t whylen)
{
    wchar_t tmp[MAX_PATH + 8];
    char *utf8 = NULL;
    HANDLE f = INVALID_HANDLE_VALUE;
    DWORD put = 0;
    int n, rc = 0;

    if (wcslen(path) >= MAX_PATH) {
        snprintf(why, whylen, "path too long");
        return UV_ENAMETOOLONG;
    }
    _snwprintf(tmp, sizeof(tmp) / sizeof(tmp[0]), L"%ls.tmp", path);
    tmp[sizeof(tmp) / sizeof(tmp[0]) - 1] = L'\0';
    n = WideCharToMultiByte(CP_UTF8, 0, xml, -1, NULL, 0, NULL, NULL);
    if (n <= 1) {
        snprintf(why, whylen, "empty bookmark");
        return EPW_E_INTERNAL;
    }
    utf8 = malloc((size_t)n);
    if (!utf8) {
        snprintf(why, whylen, "out of memory");
        return UV_ENOMEM;
    }
    WideCharToMultiByte(CP_UTF8, 0, xml, -1, utf8, n, NULL, NULL);
    winevents__mkdir_for(path);
    f = CreateFileW(tmp, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) {
        snprintf(why, whylen, "cannot create the file (error %lu)", (unsigned long)GetLastError());
        rc = UV_EIO;
        goto out;
    }
    if (!WriteFile(f, utf8, (DWORD)(n - 1), &put, NULL) || put != (DWORD)(n - 1) ||
        !FlushFileBuffers(f)) {
        snprintf(why, whylen, "write failed (error %lu)", (unsigned long)GetLastError());
        rc = UV_EIO;
        goto out;
    }
    CloseHandle(f);
    f = INVALID_HANDLE_VALUE;
    if (!MoveFileExW(tmp, path, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
        snprintf(why, whylen, "rename failed (error %lu)", (unsigned long)GetLastError());
        rc = UV_EIO;
    }
out:
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
    if (rc)
        DeleteFileW(tmp);
    free(utf8);
    return rc;
}

int winevents_default_path(wchar_t *buf, size_t len)
{
    wchar_t base[MAX_PATH];
    DWORD n;
    int w;

    if (!buf || !len)
        return UV_EINVAL;
    buf[0] = L'\0';
    n = GetEnvironmentVariableW(L"ProgramData", base, MAX_PATH);
    if (n == 0 || n >= MAX_PATH)
        wcscpy(base, L"C:\\ProgramData");
    w = _snwprintf(buf, len, L"%ls\\epwatch\\events.bookmark", base);
    if (w < 0 || (size_t)w >= len) {
        buf[0] = L'\0';
        return UV_ENOBUFS;
    }
    return 0;
}

int winevents_start(const wchar_t *bookmark_path, winevents_t **out, char *why, size_t whylen)
{
    winevents_t *we = NULL;
    wchar_t *xml = NULL;
    DWORD flags = EvtSubscribeToFutureEvents;
    size_t plen;
    int rc = 0, lrc;

    if (whylen)
        why[0] = '\0';
    if (!out || !bookmark_path)
        return UV_EINVAL;
    *out = NULL;
    we = calloc(1, sizeof(*we));
    plen = wcslen(bookmark_path) + 1;
    if (we)
        we->path = malloc(plen * sizeof(wchar_t));
    if (!we || !we->path) {
        if (we)
            free(we->path);
        free(we);
        snprintf(why, whylen, "out of memory");
        return UV_ENOMEM;
    }
    memcpy(we->path, bookmark_path, plen * sizeof(wchar_t));
    InitializeCriticalSection(&we->lock);
    rc = winsrc_events_create(&we->acc);
    if (rc) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    lrc = winevents__load(bookmark_path, &xml);
    if (lrc == 0) {
        we->bookmark = EvtCreateBookmark(xml);
        if (we->bookmark)
            flags = EvtSubscribeStartAfterBookmark;
        else
            snprintf(we->start_note, sizeof(we->start_note),
                     "event log: the saved bookmark was not usable (error %lu); events before "
                     "this start may be missed",
                     (unsigned long)GetLastError());
    } else if (lrc != UV_ENOENT) {
        snprintf(we->start_note, sizeof(we->start_note),
                 "event log: the saved bookmark could not be read (%s); events before this start "
                 "may be missed",
                 epw_strerror(lrc));
    }
    /* Without a usable bookmark the callback makes a fresh one on the first event. */
    we->sub = EvtSubscribe(NULL, NULL, L"System", winevents__query,
                           flags == EvtSubscribeStartAfterBookmark ? we->bookmark : NULL, we,
                           winevents__cb, flags);
    if (!we->sub && flags == EvtSubscribeStartAfterBookmark) {
        /* The bookmark names a log position that no longer works: go on with future events. */
        snprintf(we->start_note, sizeof(we->start_note),
                 "event log: resuming after the saved bookmark failed (error %lu); events before "
                 "this start may be missed",
                 (unsigned long)GetLastError());
        we->sub = EvtSubscribe(NULL, NULL, L"System", winevents__query, NULL, we, winevents__cb,
                               EvtSubscribeToFutureEvents);
    }
    if (!we->sub) {
        snprintf(why, whylen, "EvtSubscribe failed (error %lu)", (unsigned long)GetLastError());
        rc = EPW_E_UNAVAILABLE;
        goto out;
    }
    EPW_INFO(WINEVENTS__SUB, "subscribed to Tcpip events 4227, 4231, 4266 (%s)",
             flags == EvtSubscribeStartAfterBookmark ? "after the saved bookmark"
                                                     : "future events");
    *out = we;
    we = NULL;
out:
    free(xml);
    winevents_stop(we);
    return rc;
}

int winevents_drain(winevents_t *we, Epw__Snapshot *snap)
{
    wchar_t *xml = NULL;
    DWORD used = 0, nprops = 0, size;
    char why[96];
    int rc = 0;

    if (!we || !snap)
        return UV_EINVAL;
    if (we->start_note[0]) {
        rc = epw_snap_add_note(snap, "%s", we->start_note);
        if (rc)
            return rc;
        we->start_note[0] = '\0';
    }
    EnterCriticalSection(&we->lock);
    rc = winsrc_events_drain(we->acc, snap);
    if (rc == 0 && we->moved && we->bookmark) {
        /* Render the bookmark with the counts it belongs to, under the same lock. */
        if (!EvtRender(NULL, we->bookmark, EvtRenderBookmark, 0, NULL, &used, &nprops) &&
            GetLastError() == ERROR_INSUFFICIENT_BUFFER && used > 0 &&
            used <= WINEVENTS__BOOKMARK_MAX * sizeof(wchar_t)) {
            size = used;
            xml = malloc(size);
            if (xml &&
                !EvtRender(NULL, we->bookmark, EvtRenderBookmark, size, xml, &used, &nprops)) {
                free(xml);
                xml = NULL;
            }
        }
        if (xml)
            we->moved = 0; /* else try again next time */
    }
    LeaveCriticalSection(&we->lock);
    if (rc)
        goto out;
    if (xml) {
        why[0] = '\0';
        if (winevents__save(we->path, xml, why, sizeof(why)) != 0) {
            EPW_WARN(WINEVENTS__SUB, "bookmark not saved: %s", why);
            rc = epw_snap_add_note(snap,
                                   "event log: bookmark not saved (%s); these events may be "
                                   "counted again after a restart",
                                   why);
        }
    }
out:
    free(xml);
    return rc;
}

void winevents_stop(winevents_t *we)
{
    if (!we)
        return;
    /* Closing the subscription waits for a callback in progress; none runs afterwards. */
    if (we->sub)
        EvtClose(we->sub);
    if (we->bookmark)
        EvtClose(we->bookmark);
    if (we->render)
        EvtClose(we->render);
    winsrc_events_destroy(we->acc);
    DeleteCriticalSection(&we->lock);
    free(we->path);
    free(we);
}
