/* eventlog_win: the service's log sink: the Application event log (own source) and a file. */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_util.h"
#include "eventlog.h"

#define EVENTLOG__FILE_MAX (4u * 1024u * 1024u)
#define EVENTLOG__KEY      "SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\"

struct eventlog_s {
    HANDLE source; /* NULL: the event log is unavailable */
    FILE *f;       /* NULL: no file */
    char *path;
    char *rotated; /* path + ".1" */
};

int eventlog_open(const char *source, const char *file_path, eventlog_t **out)
{
    eventlog_t *el;
    size_t n;

    *out = NULL;
    el = calloc(1, sizeof(*el));
    if (!el)
        return UV_ENOMEM;
    el->source = RegisterEventSourceA(NULL, source);
    if (file_path) {
        n = strlen(file_path);
        el->path = malloc(n + 1);
        el->rotated = malloc(n + 3);
        if (!el->path || !el->rotated) {
            eventlog_close(el);
            return UV_ENOMEM;
        }
        memcpy(el->path, file_path, n + 1);
        snprintf(el->rotated, n + 3, "%s.1", file_path);
        el->f = fopen(file_path, "ab");
    }
    *out = el;
    return 0;
}

/* Keeps the file bounded: one rotated copy. Called with epw_log's mutex held. */
static void eventlog__rotate(eventlog_t *el)
{
    long pos = ftell(el->f);

    if (pos < 0 || (unsigned long)pos < EVENTLOG__FILE_MAX)
        return;
    fclose(el->f);
    MoveFileExA(el->path, el->rotated, MOVEFILE_REPLACE_EXISTING);
    el->f = fopen(el->path, "ab");
}

void eventlog_sink(void *ud, epw_log_level_t level, const char *line)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    eventlog_t *el = ud;
    char ts[64];
    WORD type;

    if (el->f) {
        epw_format_rfc3339(epw_now_ms(), ts, sizeof(ts));
        fprintf(el->f, "%s %s %s\r\n", ts, (unsigned)level < 4 ? names[level] : "?", line);
        fflush(el->f);
        eventlog__rotate(el);
    }
    if (!el->source || level == EPW_LOG_DEBUG)
        return; /* debug lines would flood the event log */
    type = level == EPW_LOG_ERROR  ? EVENTLOG_ERROR_TYPE
           : level == EPW_LOG_WARN ? EVENTLOG_WARNING_TYPE
                                   : EVENTLOG_INFORMATION_TYPE;
    ReportEventA(el->source, type, 0, 1, NULL, 1, 0, &line, NULL);
}

void eventlog_close(eventlog_t *el)
{
    if (!el)
        return;
    if (el->source)
        DeregisterEventSource(el->source);
    if (el->f)
        fclose(el->f);
    free(el->path);
    free(el->rotated);
    free(el);
}

int eventlog_register_source(const char *source)
{
    char path[256];
    DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
    HKEY key = NULL;
    LONG r;

    snprintf(path, sizeof(path), EVENTLOG__KEY "%s", source);
    r = RegCreateKeyExA(HKEY_LOCAL_MACHINE, path, 0, NULL, REG_OPTION_NON_VOLATILE, KEY_SET_VALUE,
                        NULL, &key, NULL);
    if (r != ERROR_SUCCESS)
        return uv_translate_sys_error((int)r);
    r = RegSetValueExA(key, "TypesSupported", 0, REG_DWORD, (const BYTE *)&types, sizeof(types));
    RegCloseKey(key);
    return r == ERROR_SUCCESS ? 0 : uv_translate_sys_error((int)r);
}

int eventlog_unregister_source(const char *source)
{
    char path[256];
    LONG r;

    snprintf(path, sizeof(path), EVENTLOG__KEY "%s", source);
    r = RegDeleteKeyA(HKEY_LOCAL_MACHINE, path);
    if (r == ERROR_SUCCESS || r == ERROR_FILE_NOT_FOUND)
        return 0;
    return uv_translate_sys_error((int)r);
}
