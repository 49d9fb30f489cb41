/* service_win: epwatch-agent under the Windows service control manager, and its registration. */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <shlobj.h>
#include <tlhelp32.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_err.h"
#include "epw_log.h"
#include "eventlog.h"
#include "service.h"

#define SERVICE__SUB "service"
/* How long install/uninstall/start/stop wait for the service to change state. */
#define SERVICE__WAIT_MS 30000u
/* Promised to the SCM per STOP_PENDING checkpoint (the loop drains for up to 3 s). */
#define SERVICE__STOP_HINT_MS 5000u
/* SYSTEM and Administrators only, inherited by everything below, nothing from the parent. */
#define SERVICE__CERTS_SDDL "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

/*
 * The SCM calls back through plain functions without a user pointer, so the service's state is
 * one static. `lock` guards status, stop and stop_requested: the control handler (main thread),
 * the ServiceMain thread, the checkpoint thread and the loop thread (service_watch_stop) meet here.
 */
static struct {
    CRITICAL_SECTION lock;
    SERVICE_STATUS_HANDLE handle;
    SERVICE_STATUS status;
    uv_async_t *stop;
    int stop_requested;
    HANDLE done;       /* set when the body has returned: ends the checkpoint thread */
    HANDLE checkpoint; /* thread bumping dwCheckPoint while stopping; NULL until a stop */
    service_body_cb body;
    int argc;
    char **argv;
    int exit_code;
} service__g;

/* ---- paths ------------------------------------------------------------------------------- */

int service_data_dir(char *buf, size_t len)
{
    PWSTR known = NULL;
    char base[MAX_PATH];
    const char *env;
    int n;

    base[0] = '\0';
    if (SUCCEEDED(SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &known)) &&
        WideCharToMultiByte(CP_ACP, 0, known, -1, base, (int)sizeof(base), NULL, NULL) <= 0)
        base[0] = '\0';
    CoTaskMemFree(known);
    if (!base[0]) {
        env = getenv("ProgramData");
        snprintf(base, sizeof(base), "%s", env && env[0] ? env : "C:\\ProgramData");
    }
    n = snprintf(buf, len, "%s\\epwatch", base);
    return n < 0 || (size_t)n >= len ? UV_ENOBUFS : 0;
}

static int service__data_path(const char *leaf, char *buf, size_t len)
{
    char dir[MAX_PATH];
    int n, rc;

    rc = service_data_dir(dir, sizeof(dir));
    if (rc)
        return rc;
    n = snprintf(buf, len, "%s\\%s", dir, leaf);
    return n < 0 || (size_t)n >= len ? UV_ENOBUFS : 0;
}

int service_default_config(char *buf, size_t len)
{
    return service__data_path("agent.ini", buf, len);
}

static int service__mkdir(const char *path)
{
    if (CreateDirectoryA(path, NULL) || GetLastError() == ERROR_ALREADY_EXISTS)
        return 0;
    return uv_translate_sys_error((int)GetLastError());
}

int service_prepare_data_dir(void)
{
    char dir[MAX_PATH], sub[MAX_PATH];
    PSECURITY_DESCRIPTOR sd = NULL;
    PACL dacl = NULL;
    BOOL present = FALSE, defaulted = FALSE;
    DWORD r;
    int rc;

    rc = service_data_dir(dir, sizeof(dir));
    if (rc)
        goto out;
    rc = service__mkdir(dir);
    if (!rc)
        rc = service__data_path("spool", sub, sizeof(sub));
    if (!rc)
        rc = service__mkdir(sub);
    if (!rc)
        rc = service__data_path("certs", sub, sizeof(sub));
    if (!rc)
        rc = service__mkdir(sub);
    if (rc) {
        EPW_ERROR(SERVICE__SUB, "cannot create the data directory %s: %s", dir, epw_strerror(rc));
        goto out;
    }
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(SERVICE__CERTS_SDDL, SDDL_REVISION_1,
                                                              &sd, NULL) ||
        !GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) || !present) {
        rc = uv_translate_sys_error((int)GetLastError());
        EPW_ERROR(SERVICE__SUB, "cannot build the certificate directory's ACL: %s",
                  epw_strerror(rc ? rc : EPW_E_INTERNAL));
        rc = rc ? rc : EPW_E_INTERNAL;
        goto out;
    }
    /* PROTECTED: no ACEs inherited from ProgramData (where Users may read). */
    r = SetNamedSecurityInfoA(sub, SE_FILE_OBJECT,
                              DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL,
                              NULL, dacl, NULL);
    if (r != ERROR_SUCCESS) {
        rc = uv_translate_sys_error((int)r);
        EPW_ERROR(SERVICE__SUB, "cannot restrict %s to SYSTEM and Administrators: %s", sub,
                  epw_strerror(rc));
    }
out:
    if (sd)
        LocalFree(sd);
    return rc;
}

/* ---- the running service ----------------------------------------------------------------- */

/* With the lock held. */
static void service__report(DWORD state, DWORD exit_code, DWORD hint_ms)
{
    SERVICE_STATUS *s = &service__g.status;

    s->dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    s->dwCurrentState = state;
    s->dwControlsAccepted =
        state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
    s->dwWin32ExitCode = exit_code ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
    s->dwServiceSpecificExitCode = exit_code;
    s->dwCheckPoint = state == SERVICE_RUNNING || state == SERVICE_STOPPED ? 0 : 1;
    s->dwWaitHint = hint_ms;
    if (service__g.handle)
        SetServiceStatus(service__g.handle, s);
}

/* Keeps the SCM patient while the loop drains: one checkpoint a second until the body returns. */
static DWORD WINAPI service__checkpoint_thread(LPVOID arg)
{
    (void)arg;
    while (WaitForSingleObject(service__g.done, 1000) == WAIT_TIMEOUT) {
        EnterCriticalSection(&service__g.lock);
        if (service__g.status.dwCurrentState == SERVICE_STOP_PENDING) {
            service__g.status.dwCheckPoint++;
            SetServiceStatus(service__g.handle, &service__g.status);
        }
        LeaveCriticalSection(&service__g.lock);
    }
    return 0;
}

static DWORD WINAPI service__control(DWORD control, DWORD type, LPVOID data, LPVOID ctx)
{
    (void)type;
    (void)data;
    (void)ctx;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        EnterCriticalSection(&service__g.lock);
        if (!service__g.stop_requested) {
            service__g.stop_requested = 1;
            service__report(SERVICE_STOP_PENDING, 0, SERVICE__STOP_HINT_MS);
            if (service__g.stop)
                uv_async_send(service__g.stop);
            if (!service__g.checkpoint)
                service__g.checkpoint =
                    CreateThread(NULL, 0, service__checkpoint_thread, NULL, 0, NULL);
        }
        LeaveCriticalSection(&service__g.lock);
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

/* Restart on failure (5 s, 30 s, then every 60 s; the count resets after a day) and the
 * description: set here on every start too, since the MSI's ServiceInstall has no failure
 * actions. Best effort. */
static void service__configure(SC_HANDLE svc)
{
    SC_ACTION actions[3] = {
        {SC_ACTION_RESTART, 5000},
        {SC_ACTION_RESTART, 30000},
        {SC_ACTION_RESTART, 60000},
    };
    SERVICE_FAILURE_ACTIONSA fa;
    SERVICE_DESCRIPTIONA desc;
    char text[] = SERVICE_DESCRIPTION;

    memset(&fa, 0, sizeof(fa));
    fa.dwResetPeriod = 86400;
    fa.cActions = 3;
    fa.lpsaActions = actions;
    desc.lpDescription = text;
    if (!ChangeServiceConfig2A(svc, SERVICE_CONFIG_DESCRIPTION, &desc))
        EPW_DEBUG(SERVICE__SUB, "cannot set the service description (error %lu)",
                  (unsigned long)GetLastError());
    if (!ChangeServiceConfig2A(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa))
        EPW_DEBUG(SERVICE__SUB, "cannot set the restart-on-failure actions (error %lu)",
                  (unsigned long)GetLastError());
}

static void service__configure_self(void)
{
    SC_HANDLE scm = OpenSCManagerA(NULL, NULL, SC_MANAGER_CONNECT), svc = NULL;

    if (scm)
        svc = OpenServiceA(scm, SERVICE_NAME, SERVICE_CHANGE_CONFIG);
    if (svc)
        service__configure(svc);
    if (svc)
        CloseServiceHandle(svc);
    if (scm)
        CloseServiceHandle(scm);
}

static void WINAPI service__main(DWORD argc, LPSTR *argv)
{
    char log_path[MAX_PATH];
    eventlog_t *el = NULL;
    HANDLE cp;
    int code;

    (void)argc;
    (void)argv;
    service__g.handle = RegisterServiceCtrlHandlerExA(SERVICE_NAME, service__control, NULL);
    if (!service__g.handle)
        return;
    EnterCriticalSection(&service__g.lock);
    service__report(SERVICE_START_PENDING, 0, 10000);
    LeaveCriticalSection(&service__g.lock);

    /* No console here: the log goes to the event log and a file. Set before anything logs. */
    if (service__data_path("epwatch-agent.log", log_path, sizeof(log_path)) == 0) {
        service_prepare_data_dir(); /* before opening the file inside it */
        if (eventlog_open(SERVICE_NAME, log_path, &el) == 0)
            epw_log_set_sink(eventlog_sink, el);
    }
    service__configure_self();

    EnterCriticalSection(&service__g.lock);
    if (!service__g.stop_requested)
        service__report(SERVICE_RUNNING, 0, 0);
    LeaveCriticalSection(&service__g.lock);

    /* The process's own arguments: the SCM passes StartService's (usually none) to ServiceMain,
     * while --config comes from the binPath. */
    code = service__g.body(service__g.argc, service__g.argv);
    service__g.exit_code = code;

    SetEvent(service__g.done);
    EnterCriticalSection(&service__g.lock);
    service__g.stop_requested = 1; /* a late stop control starts no checkpoint thread */
    cp = service__g.checkpoint;
    service__g.checkpoint = NULL;
    LeaveCriticalSection(&service__g.lock);
    if (cp) {
        WaitForSingleObject(cp, INFINITE);
        CloseHandle(cp);
    }
    EPW_INFO(SERVICE__SUB, "stopped (exit code %d)", code);
    epw_log_set_sink(NULL, NULL);
    eventlog_close(el);
    EnterCriticalSection(&service__g.lock);
    service__report(SERVICE_STOPPED, (DWORD)code, 0);
    LeaveCriticalSection(&service__g.lock);
}

/*
 * Whether our parent is services.exe, the only program that starts services. Checked before
 * StartServiceCtrlDispatcher because that call, from a console, fails at once on Windows but
 * waits 10 s for the SCM's pipe under Wine (every `--once` would pay it). When the snapshot
 * cannot be taken the answer is "maybe" (1): the dispatcher then decides.
 */
static int service__parent_is_scm(void)
{
    PROCESSENTRY32 pe;
    DWORD self = GetCurrentProcessId(), parent = 0;
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    int found = 0, rc = 1;

    if (snap == INVALID_HANDLE_VALUE)
        return 1;
    pe.dwSize = sizeof(pe);
    for (BOOL ok = Process32First(snap, &pe); ok; ok = Process32Next(snap, &pe)) {
        if (pe.th32ProcessID == self) {
            parent = pe.th32ParentProcessID;
            found = 1;
            break;
        }
    }
    if (!found)
        goto out;
    rc = 0;
    pe.dwSize = sizeof(pe);
    for (BOOL ok = Process32First(snap, &pe); ok; ok = Process32Next(snap, &pe)) {
        if (pe.th32ProcessID == parent) {
            rc = _stricmp(pe.szExeFile, "services.exe") == 0;
            break;
        }
    }
out:
    CloseHandle(snap);
    return rc;
}

int service_dispatch(service_body_cb body, int argc, char **argv, int *exit_code)
{
    char name[] = SERVICE_NAME;
    SERVICE_TABLE_ENTRYA table[] = {{name, service__main}, {NULL, NULL}};
    DWORD err;
    int rc = 0;

    *exit_code = 0;
    if (!service__parent_is_scm())
        return EPW_E_UNAVAILABLE;
    InitializeCriticalSection(&service__g.lock);
    service__g.body = body;
    service__g.argc = argc;
    service__g.argv = argv;
    service__g.done = CreateEventA(NULL, TRUE, FALSE, NULL);
    if (!service__g.done) {
        rc = uv_translate_sys_error((int)GetLastError());
        goto out;
    }
    if (!StartServiceCtrlDispatcherA(table)) {
        err = GetLastError();
        rc = err == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT ? EPW_E_UNAVAILABLE
                                                            : uv_translate_sys_error((int)err);
        goto out;
    }
    *exit_code = service__g.exit_code;
out:
    if (service__g.done)
        CloseHandle(service__g.done);
    service__g.done = NULL;
    DeleteCriticalSection(&service__g.lock);
    return rc;
}

void service_watch_stop(uv_async_t *stop)
{
    if (!service__g.handle)
        return; /* not a service: nobody will send */
    EnterCriticalSection(&service__g.lock);
    service__g.stop = stop;
    if (stop && service__g.stop_requested)
        uv_async_send(stop);
    LeaveCriticalSection(&service__g.lock);
}

/* ---- management commands ----------------------------------------------------------------- */

static int service__last_error(const char *what)
{
    DWORD err = GetLastError();
    int rc;

    if (err == ERROR_SERVICE_DOES_NOT_EXIST) {
        EPW_ERROR(SERVICE__SUB, "%s: the service %s is not installed", what, SERVICE_NAME);
        return EPW_E_NOTFOUND;
    }
    rc = uv_translate_sys_error((int)err);
    if (err == ERROR_ACCESS_DENIED)
        EPW_ERROR(SERVICE__SUB, "%s: access denied (run as Administrator)", what);
    else
        EPW_ERROR(SERVICE__SUB, "%s: error %lu (%s)", what, (unsigned long)err, epw_strerror(rc));
    return rc;
}

/* Polls the service's state until `want` or the deadline (the SCM has no "wait for state"). */
static int service__wait(SC_HANDLE svc, DWORD want)
{
    SERVICE_STATUS st;
    DWORD waited = 0;

    for (;;) {
        if (!QueryServiceStatus(svc, &st))
            return service__last_error("querying the service");
        if (st.dwCurrentState == want)
            return 0;
        if (want == SERVICE_RUNNING && st.dwCurrentState == SERVICE_STOPPED && waited > 0) {
            EPW_ERROR(SERVICE__SUB, "the service stopped while starting (exit code %lu/%lu)",
                      (unsigned long)st.dwWin32ExitCode,
                      (unsigned long)st.dwServiceSpecificExitCode);
            return EPW_E_INTERNAL;
        }
        if (waited >= SERVICE__WAIT_MS) {
            EPW_ERROR(SERVICE__SUB, "the service did not reach state %lu in %u s (state %lu)",
                      (unsigned long)want, SERVICE__WAIT_MS / 1000u,
                      (unsigned long)st.dwCurrentState);
            return EPW_E_TIMEOUT;
        }
        Sleep(250);
        waited += 250;
    }
}

static int service__stop(SC_HANDLE svc)
{
    SERVICE_STATUS st;

    if (!QueryServiceStatus(svc, &st))
        return service__last_error("querying the service");
    if (st.dwCurrentState == SERVICE_STOPPED)
        return 0;
    if (st.dwCurrentState != SERVICE_STOP_PENDING &&
        !ControlService(svc, SERVICE_CONTROL_STOP, &st) &&
        GetLastError() != ERROR_SERVICE_NOT_ACTIVE)
        return service__last_error("stopping the service");
    return service__wait(svc, SERVICE_STOPPED);
}

static int service__install(SC_HANDLE scm, const char *config_path)
{
    char exe[MAX_PATH], cfg[MAX_PATH], cmd[2 * MAX_PATH + 32];
    SC_HANDLE svc = NULL;
    DWORD n;
    int rc = 0;

    n = GetModuleFileNameA(NULL, exe, (DWORD)sizeof(exe));
    if (n == 0 || n >= sizeof(exe))
        return service__last_error("finding this program's path");
    if (config_path) {
        n = GetFullPathNameA(config_path, (DWORD)sizeof(cfg), cfg, NULL);
        if (n == 0 || n >= sizeof(cfg))
            return service__last_error("resolving the --config path");
        snprintf(cmd, sizeof(cmd), "\"%s\" --config \"%s\"", exe, cfg);
    } else {
        snprintf(cmd, sizeof(cmd), "\"%s\"", exe);
    }
    svc = CreateServiceA(scm, SERVICE_NAME, SERVICE_DISPLAY_NAME, SERVICE_ALL_ACCESS,
                         SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd,
                         NULL, NULL, NULL, NULL, NULL);
    if (!svc) {
        if (GetLastError() == ERROR_SERVICE_EXISTS) {
            EPW_ERROR(SERVICE__SUB, "the service %s is already installed (uninstall it first)",
                      SERVICE_NAME);
            return UV_EEXIST;
        }
        return service__last_error("creating the service");
    }
    service__configure(svc);
    CloseServiceHandle(svc);
    rc = eventlog_register_source(SERVICE_NAME);
    if (rc)
        EPW_WARN(SERVICE__SUB, "cannot register the event log source: %s", epw_strerror(rc));
    rc = service_prepare_data_dir();
    printf("installed service %s: %s\n", SERVICE_NAME, cmd);
    return rc;
}

int service_command(service_cmd_t cmd, const char *config_path)
{
    SC_HANDLE scm = NULL, svc = NULL;
    DWORD access;
    int rc = 0;

    scm = OpenSCManagerA(
        NULL, NULL, cmd == SERVICE_CMD_INSTALL ? SC_MANAGER_CREATE_SERVICE : SC_MANAGER_CONNECT);
    if (!scm) {
        rc = service__last_error("opening the service control manager");
        goto out;
    }
    if (cmd == SERVICE_CMD_INSTALL) {
        rc = service__install(scm, config_path);
        goto out;
    }
    access = SERVICE_QUERY_STATUS | SERVICE_START | SERVICE_STOP |
             (cmd == SERVICE_CMD_UNINSTALL ? DELETE : 0);
    svc = OpenServiceA(scm, SERVICE_NAME, access);
    if (!svc) {
        rc = service__last_error("opening the service");
        goto out;
    }
    switch (cmd) {
    case SERVICE_CMD_START:
        if (!StartServiceA(svc, 0, NULL) && GetLastError() != ERROR_SERVICE_ALREADY_RUNNING) {
            rc = service__last_error("starting the service");
            goto out;
        }
        rc = service__wait(svc, SERVICE_RUNNING);
        if (!rc)
            printf("service %s is running\n", SERVICE_NAME);
        break;
    case SERVICE_CMD_STOP:
        rc = service__stop(svc);
        if (!rc)
            printf("service %s is stopped\n", SERVICE_NAME);
        break;
    case SERVICE_CMD_UNINSTALL:
        rc = service__stop(svc);
        if (rc)
            goto out;
        if (!DeleteService(svc) && GetLastError() != ERROR_SERVICE_MARKED_FOR_DELETE) {
            rc = service__last_error("deleting the service");
            goto out;
        }
        rc = eventlog_unregister_source(SERVICE_NAME);
        if (rc)
            EPW_WARN(SERVICE__SUB, "cannot remove the event log source: %s", epw_strerror(rc));
        rc = 0;
        printf("uninstalled service %s (the data in the epwatch ProgramData directory is kept)\n",
               SERVICE_NAME);
        break;
    default:
        rc = EPW_E_USAGE;
        break;
    }
out:
    if (svc)
        CloseServiceHandle(svc);
    if (scm)
        CloseServiceHandle(scm);
    return rc;
}
