/* winrange_win: the Windows dynamic and excluded port ranges, read from WMI and netsh. */
#define COBJMACROS
#include <winsock2.h>
#include <windows.h>
#include <objbase.h>
#include <oleauto.h>
#include <wbemcli.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "capture.h"
#include "epw_err.h"
#include "epw_log.h"
#include "winrange_win.h"

#define WINRANGE__SUB "sampler"
/* netsh prints a few hundred bytes; excluded ranges can list a few hundred lines (Hyper-V). */
#define WINRANGE__OUT_CAP    (64u * 1024u)
#define WINRANGE__TIMEOUT_MS 10000u
/* How long one WMI enumeration step may take. */
#define WINRANGE__WMI_NEXT_MS 10000

/* ---- WMI ---------------------------------------------------------------------------------- */

/* An integer property of a WMI object: 1 with the value, 0 when NULL or absent or not a number. */
static int winrange__wmi_uint(IWbemClassObject *obj, const wchar_t *name, uint32_t *v)
{
    VARIANT var;
    HRESULT hr;
    int ok = 1;

    VariantInit(&var);
    hr = IWbemClassObject_Get(obj, name, 0, &var, NULL, NULL);
    if (FAILED(hr))
        return 0;
    /* CIM uint16 arrives as VT_I4; accept any integer type that can carry a port number. */
    switch (V_VT(&var)) {
    case VT_I4:
        ok = V_I4(&var) >= 0;
        *v = (uint32_t)V_I4(&var);
        break;
    case VT_UI4:
        *v = (uint32_t)V_UI4(&var);
        break;
    case VT_I2:
        ok = V_I2(&var) >= 0;
        *v = (uint32_t)V_I2(&var);
        break;
    case VT_UI2:
        *v = (uint32_t)V_UI2(&var);
        break;
    default: /* VT_NULL: this instance does not set it */
        ok = 0;
        break;
    }
    VariantClear(&var);
    return ok;
}

/*
 * Queries one class. Several instances exist (by SettingName: Automatic, Internet, Datacenter,
 * Compat...); only one carries the dynamic range, the others have NULL. 0 with the range, or a
 * negative code with why.
 */
static int winrange__wmi_class(IWbemServices *svc, const wchar_t *wql, uint32_t *start,
                               uint32_t *count, char *why, size_t whylen)
{
    IEnumWbemClassObject *en = NULL;
    IWbemClassObject *obj = NULL;
    BSTR lang = NULL, query = NULL;
    ULONG got = 0;
    HRESULT hr;
    int rc = EPW_E_UNAVAILABLE, seen = 0;

    lang = SysAllocString(L"WQL");
    query = SysAllocString(wql);
    if (!lang || !query) {
        rc = UV_ENOMEM;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    hr = IWbemServices_ExecQuery(svc, lang, query,
                                 WBEM_FLAG_FORWARD_ONLY | WBEM_FLAG_RETURN_IMMEDIATELY, NULL, &en);
    if (FAILED(hr)) {
        snprintf(why, whylen, "ExecQuery failed 0x%08lX", (unsigned long)hr);
        goto out;
    }
    /* The enumerator is a proxy of its own: it needs the same blanket as the service. */
    CoSetProxyBlanket((IUnknown *)en, RPC_C_AUTHN_WINNT, RPC_C_AUTHZ_NONE, NULL,
                      RPC_C_AUTHN_LEVEL_CALL, RPC_C_IMP_LEVEL_IMPERSONATE, NULL, EOAC_NONE);
    for (;;) {
        uint32_t s = 0, c = 0;

        hr = IEnumWbemClassObject_Next(en, WINRANGE__WMI_NEXT_MS, 1, &obj, &got);
        if (hr == WBEM_S_TIMEDOUT) {
            snprintf(why, whylen, "query timed out");
            goto out;
        }
        if (FAILED(hr)) {
            snprintf(why, whylen, "enumeration failed 0x%08lX", (unsigned long)hr);
            goto out;
        }
        if (got == 0)
            break;
        seen++;
        if (winrange__wmi_uint(obj, L"DynamicPortRangeStartPort", &s) &&
            winrange__wmi_uint(obj, L"DynamicPortRangeNumberOfPorts", &c)) {
            *start = s;
            *count = c;
            rc = 0;
            goto out;
        }
        IWbemClassObject_Release(obj);
        obj = NULL;
    }
    if (seen)
        snprintf(why, whylen, "%d instance(s), none with a dynamic port range", seen);
    else
        snprintf(why, whylen, "no instances");
out:
    if (obj)
        IWbemClassObject_Release(obj);
    if (en)
        IEnumWbemClassObject_Release(en);
    SysFreeString(lang);
    SysFreeString(query);
    return rc;
}

void winrange_wmi(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans)
{
    static const wchar_t *const wql[2] = {
        L"SELECT SettingName, DynamicPortRangeStartPort, DynamicPortRangeNumberOfPorts "
        L"FROM MSFT_NetTCPSetting",
        L"SELECT SettingName, DynamicPortRangeStartPort, DynamicPortRangeNumberOfPorts "
        L"FROM MSFT_NetUDPSetting",
    };
    IWbemLocator *loc = NULL;
    IWbemServices *svc = NULL;
    BSTR ns = NULL;
    char why[96];
    HRESULT hr;
    int p, i, com_init = 0;

    (void)ud;
    why[0] = '\0';
    hr = CoInitializeEx(NULL, COINIT_MULTITHREADED);
    if (SUCCEEDED(hr))
        com_init = 1;                    /* S_OK or S_FALSE: balanced by CoUninitialize */
    else if (hr != RPC_E_CHANGED_MODE) { /* an STA thread can still make the calls */
        snprintf(why, sizeof(why), "CoInitializeEx failed 0x%08lX", (unsigned long)hr);
        goto out;
    }
    /* Process-wide; fails harmlessly (RPC_E_TOO_LATE) when someone already set it. WMI needs
     * impersonation, which the default security of a process may not grant. */
    CoInitializeSecurity(NULL, -1, NULL, NULL, RPC_C_AUTHN_LEVEL_DEFAULT,
                         RPC_C_IMP_LEVEL_IMPERSONATE, NULL, EOAC_NONE, NULL);
    hr = CoCreateInstance(&CLSID_WbemLocator, NULL, CLSCTX_INPROC_SERVER, &IID_IWbemLocator,
                          (void **)&loc);
    if (FAILED(hr)) {
        snprintf(why, sizeof(why), "no WMI locator (0x%08lX)", (unsigned long)hr);
        goto out;
    }
    ns = SysAllocString(L"ROOT\\StandardCimv2");
    if (!ns) {
        snprintf(why, sizeof(why), "out of memory");
        goto out;
    }
    hr = IWbemLocator_ConnectServer(loc, ns, NULL, NULL, NULL, 0, NULL, NULL, &svc);
    if (FAILED(hr)) {
        snprintf(why, sizeof(why), "ROOT\\StandardCimv2 not available (0x%08lX)",
                 (unsigned long)hr);
        goto out;
    }
    hr = CoSetProxyBlanket((IUnknown *)svc, RPC_C_AUTHN_WINNT, RPC_C_AUTHZ_NONE, NULL,
                           RPC_C_AUTHN_LEVEL_CALL, RPC_C_IMP_LEVEL_IMPERSONATE, NULL, EOAC_NONE);
    if (FAILED(hr)) {
        snprintf(why, sizeof(why), "CoSetProxyBlanket failed 0x%08lX", (unsigned long)hr);
        goto out;
    }
    for (p = 0; p < 2; p++) {
        uint32_t start = 0, count = 0;
        char pwhy[96];

        if (!want[p * 2] && !want[p * 2 + 1])
            continue;
        pwhy[0] = '\0';
        if (winrange__wmi_class(svc, wql[p], &start, &count, pwhy, sizeof(pwhy)) != 0) {
            EPW_DEBUG(WINRANGE__SUB, "WMI %s: %s", p ? "udp" : "tcp", pwhy);
            for (i = p * 2; i < p * 2 + 2; i++)
                snprintf(ans->why[i], sizeof(ans->why[i]), "%s", pwhy);
            continue;
        }
        /* One setting per protocol: IPv4 and IPv6 share the dynamic pool. */
        for (i = p * 2; i < p * 2 + 2; i++) {
            ans->start[i] = start;
            ans->count[i] = count;
            ans->have[i] = 1;
        }
    }
out:
    if (why[0]) {
        EPW_DEBUG(WINRANGE__SUB, "WMI: %s", why);
        for (i = 0; i < WINSRC_NRANGES; i++)
            if (want[i] && !ans->have[i])
                snprintf(ans->why[i], sizeof(ans->why[i]), "%s", why);
    }
    if (svc)
        IWbemServices_Release(svc);
    if (loc)
        IWbemLocator_Release(loc);
    SysFreeString(ns);
    if (com_init)
        CoUninitialize();
}

/* ---- netsh -------------------------------------------------------------------------------- */

int winrange_run(const wchar_t *exe, const wchar_t *args, uint8_t *buf, size_t cap, size_t *len,
                 uint32_t *exit_code, uint32_t timeout_ms, char *why, size_t whylen)
{
    SECURITY_ATTRIBUTES sa;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    HANDLE rd = NULL, wr = NULL, nul = INVALID_HANDLE_VALUE;
    wchar_t sysdir[MAX_PATH], *cmd = NULL;
    uint8_t scratch[4096];
    ULONGLONG deadline;
    size_t cmdlen;
    UINT sl;
    DWORD code = 0;
    int rc = 0, exited = 0;

    *len = 0;
    *exit_code = 0;
    memset(&pi, 0, sizeof(pi));
    /* The full path: never whatever netsh.exe the search path or the current directory has. */
    sl = GetSystemDirectoryW(sysdir, MAX_PATH);
    if (sl == 0 || sl >= MAX_PATH) {
        snprintf(why, whylen, "no system directory");
        rc = EPW_E_UNAVAILABLE;
        goto out;
    }
    cmdlen = wcslen(sysdir) + wcslen(exe) + wcslen(args) + 8;
    cmd = malloc(cmdlen * sizeof(*cmd));
    if (!cmd) {
        rc = UV_ENOMEM;
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    _snwprintf(cmd, cmdlen, L"\"%ls\\%ls\" %ls", sysdir, exe, args);
    cmd[cmdlen - 1] = L'\0';

    memset(&sa, 0, sizeof(sa));
    sa.nLength = sizeof(sa);
    sa.bInheritHandle = TRUE;
    if (!CreatePipe(&rd, &wr, &sa, 0) || !SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0)) {
        snprintf(why, whylen, "CreatePipe failed (%lu)", (unsigned long)GetLastError());
        rc = EPW_E_UNAVAILABLE;
        goto out;
    }
    nul = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING,
                      0, NULL);
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = nul == INVALID_HANDLE_VALUE ? NULL : nul;
    si.hStdOutput = wr;
    si.hStdError = wr;
    /* Inheritable handles other threads create meanwhile would leak into the child too; the
     * agent starts no other processes, so the plain inheritance is enough here. */
    if (!CreateProcessW(NULL, cmd, NULL, NULL, TRUE, CREATE_NO_WINDOW, NULL, NULL, &si, &pi)) {
        snprintf(why, whylen, "cannot start %ls (%lu)", exe, (unsigned long)GetLastError());
        rc = EPW_E_UNAVAILABLE;
        goto out;
    }
    /* Our copy of the write end must go, or the pipe never reports the end. */
    CloseHandle(wr);
    wr = NULL;
    deadline = GetTickCount64() + timeout_ms;
    for (;;) {
        DWORD avail = 0, got = 0, want;
        uint8_t *dst;

        if (!PeekNamedPipe(rd, NULL, 0, NULL, &avail, NULL))
            break; /* broken pipe: every writer is gone and everything was read */
        if (avail > 0) {
            /* Keep up to cap bytes, read the rest into scratch and drop it. */
            if (*len < cap) {
                dst = buf + *len;
                want = (DWORD)(cap - *len < avail ? cap - *len : avail);
            } else {
                dst = scratch;
                want = avail < sizeof(scratch) ? avail : (DWORD)sizeof(scratch);
            }
            if (!ReadFile(rd, dst, want, &got, NULL))
                break;
            if (dst != scratch)
                *len += got;
            continue;
        }
        if (exited)
            break; /* exited and drained (a grandchild may still hold the pipe: not our output) */
        if (WaitForSingleObject(pi.hProcess, 20) == WAIT_OBJECT_0) {
            exited = 1;
            continue;
        }
        if (GetTickCount64() >= deadline) {
            TerminateProcess(pi.hProcess, 1);
            WaitForSingleObject(pi.hProcess, 1000);
            snprintf(why, whylen, "%ls timed out after %lu ms", exe, (unsigned long)timeout_ms);
            rc = EPW_E_TIMEOUT;
            goto out;
        }
    }
    if (!exited)
        WaitForSingleObject(pi.hProcess, 1000);
    if (GetExitCodeProcess(pi.hProcess, &code))
        *exit_code = (uint32_t)code;
out:
    if (pi.hProcess)
        CloseHandle(pi.hProcess);
    if (pi.hThread)
        CloseHandle(pi.hThread);
    if (nul != INVALID_HANDLE_VALUE)
        CloseHandle(nul);
    if (wr)
        CloseHandle(wr);
    if (rd)
        CloseHandle(rd);
    free(cmd);
    return rc;
}

/* Runs netsh with args into a new buffer (*out, free()); 0 with some output, or negative + why. */
static int winrange__netsh(const wchar_t *args, uint8_t **out, size_t *len, char *why,
                           size_t whylen)
{
    uint8_t *buf;
    uint32_t code = 0;
    int rc;

    *out = NULL;
    *len = 0;
    buf = malloc(WINRANGE__OUT_CAP);
    if (!buf) {
        snprintf(why, whylen, "out of memory");
        return UV_ENOMEM;
    }
    rc = winrange_run(L"netsh.exe", args, buf, WINRANGE__OUT_CAP, len, &code, WINRANGE__TIMEOUT_MS,
                      why, whylen);
    if (rc == 0 && code != 0) {
        snprintf(why, whylen, "netsh exited with %lu", (unsigned long)code);
        rc = EPW_E_UNAVAILABLE;
    } else if (rc == 0 && *len == 0) {
        snprintf(why, whylen, "no output"); /* Wine's netsh is a stub */
        rc = EPW_E_UNAVAILABLE;
    }
    if (rc) {
        free(buf);
        *len = 0;
        return rc;
    }
    *out = buf;
    return 0;
}

void winrange_netsh(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans)
{
    static const wchar_t *const args[WINSRC_NRANGES] = {
        L"int ipv4 show dynamicport tcp", L"int ipv6 show dynamicport tcp",
        L"int ipv4 show dynamicport udp", L"int ipv6 show dynamicport udp"};
    int i;

    (void)ud;
    for (i = 0; i < WINSRC_NRANGES; i++) {
        uint8_t *out = NULL;
        size_t len = 0;
        uint32_t start = 0, count = 0;

        if (!want[i])
            continue;
        if (winrange__netsh(args[i], &out, &len, ans->why[i], sizeof(ans->why[i])) != 0)
            continue;
        /* The parser validates; an invalid answer is "unparsable" here, the resolver re-checks. */
        if (capture_parse_netsh(out, len, &start, &count) != 0) {
            snprintf(ans->why[i], sizeof(ans->why[i]), "output not understood (%zu bytes)", len);
        } else {
            ans->start[i] = start;
            ans->count[i] = count;
            ans->have[i] = 1;
        }
        free(out);
    }
}

int winrange_excluded(sockrow_proto_t proto, int family,
                      void (*cb)(void *ud, uint32_t first, uint32_t last), void *ud, char *why,
                      size_t whylen)
{
    wchar_t args[96];
    uint8_t *out = NULL;
    size_t len = 0;
    int rc;

    _snwprintf(args, sizeof(args) / sizeof(args[0]), L"int %ls show excludedportrange protocol=%ls",
               family == 6 ? L"ipv6" : L"ipv4", proto == SOCKROW_UDP ? L"udp" : L"tcp");
    args[sizeof(args) / sizeof(args[0]) - 1] = L'\0';
    rc = winrange__netsh(args, &out, &len, why, whylen);
    if (rc)
        return rc;
    rc = capture_parse_excluded(out, len, cb, ud);
    if (rc < 0)
        snprintf(why, whylen, "output not understood (%zu bytes)", len);
    free(out);
    return rc;
}
