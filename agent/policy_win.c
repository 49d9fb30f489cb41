/* policy_win: Group Policy values (HKLM\Software\Policies\epwatch\Agent) over the agent's config.
 */
#include <stdarg.h>
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "epw_attr.h"
#include "epw_err.h"
#include "policy.h"

/* Kept in step with agent/windows/epwatch.admx: a test compares the two lists. */
static const policy_def_t policy__defs[] = {
    {"Collector", POLICY_T_STRING, "collector", NULL},
    {"ServerName", POLICY_T_STRING, "server_name", NULL},
    {"Interval", POLICY_T_DWORD, "interval", "s"},
    {"CaFile", POLICY_T_STRING, "ca", NULL},
    {"CertFile", POLICY_T_STRING, "cert", NULL},
    {"KeyFile", POLICY_T_STRING, "key", NULL},
    {"SpoolDir", POLICY_T_STRING, "spool_dir", NULL},
    {"SpoolMax", POLICY_T_DWORD, "spool_max", "M"},
    {"LogLevel", POLICY_T_STRING, "log_level", NULL},
    {NULL, (policy_type_t)0, NULL, NULL},
};

#define POLICY__LABEL "Group Policy HKLM\\" POLICY_KEY
/* Longer values are refused: every one of them is a path, an address or a word. */
#define POLICY__MAX_VALUE 1024

const policy_def_t *policy_table(void)
{
    return policy__defs;
}

static void policy__errf(char *err, size_t errlen, const char *fmt, ...) EPW_PRINTF(3, 4);
static void policy__errf(char *err, size_t errlen, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (!err || !errlen)
        return;
    used = strlen(err);
    if (used + 1 >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/*
 * Reads one value as the text its configuration key takes into out. Returns 0, EPW_E_NOTFOUND
 * (absent or empty: not set by policy), or EPW_E_CONFIG (wrong registry type, too long).
 */
static int policy__read(HKEY key, const policy_def_t *d, char *out, size_t outlen, const char **why)
{
    char raw[POLICY__MAX_VALUE + 1];
    DWORD type = 0, len = (DWORD)(sizeof(raw) - 1), dw;
    LONG r;

    *why = NULL;
    out[0] = '\0';
    r = RegQueryValueExA(key, d->value_name, NULL, &type, (BYTE *)raw, &len);
    if (r == ERROR_FILE_NOT_FOUND)
        return EPW_E_NOTFOUND;
    if (r == ERROR_MORE_DATA) {
        *why = "value too long";
        return EPW_E_CONFIG;
    }
    if (r != ERROR_SUCCESS) {
        *why = "cannot be read";
        return EPW_E_CONFIG;
    }
    if (d->type == POLICY_T_DWORD) {
        if (type != REG_DWORD || len != sizeof(DWORD)) {
            *why = "expected a REG_DWORD";
            return EPW_E_CONFIG;
        }
        memcpy(&dw, raw, sizeof(dw));
        snprintf(out, outlen, "%lu%s", (unsigned long)dw, d->unit ? d->unit : "");
        return 0;
    }
    if (type != REG_SZ && type != REG_EXPAND_SZ) {
        *why = "expected a REG_SZ or REG_EXPAND_SZ";
        return EPW_E_CONFIG;
    }
    raw[len] = '\0'; /* the stored string may lack its terminator */
    if (raw[0] == '\0')
        return EPW_E_NOTFOUND;
    if (type == REG_EXPAND_SZ) {
        DWORD n = ExpandEnvironmentStringsA(raw, out, (DWORD)outlen);

        if (n == 0 || n > outlen) {
            *why = "cannot expand the environment variables";
            return EPW_E_CONFIG;
        }
        return 0;
    }
    snprintf(out, outlen, "%s", raw);
    return 0;
}

/* Applies `--key=value` through the config module's command-line parser (its checks, its
 * ranges, no INI quoting rules to get wrong). */
static int policy__set(const epw_cfg_key_t *table, void *conf, const policy_def_t *d,
                       const char *value, char *err, size_t errlen)
{
    char sub[512], prog[] = "policy";
    char *opt, *argv[3];
    size_t n = strlen(d->conf_key) + strlen(value) + 4;
    int rest = 0, rc;

    opt = malloc(n);
    if (!opt)
        return UV_ENOMEM;
    snprintf(opt, n, "--%s=%s", d->conf_key, value);
    argv[0] = prog;
    argv[1] = opt;
    argv[2] = NULL;
    sub[0] = '\0';
    rc = epw_config_parse_args(table, conf, 2, argv, &rest, sub, sizeof(sub));
    if (rc == EPW_E_CONFIG) {
        /* "command line: option '--x': why\n" -> the part after the option. */
        const char *why = strstr(sub, "': ");
        char *nl;

        why = why ? why + 3 : sub;
        nl = strchr(why, '\n');
        if (nl)
            *nl = '\0';
        policy__errf(err, errlen, POLICY__LABEL " value '%s': %s\n", d->value_name, why);
    } else if (!rc && rest != 1) {
        /* The option was left over: the table and this list disagree (a bug here). */
        policy__errf(err, errlen, POLICY__LABEL " value '%s': %s\n", d->value_name,
                     "no such configuration key");
        rc = EPW_E_CONFIG;
    }
    free(opt);
    return rc;
}

int policy_apply(const epw_cfg_key_t *table, void *conf, unsigned *applied, char *err,
                 size_t errlen)
{
    char value[POLICY__MAX_VALUE + 64];
    const policy_def_t *d;
    const char *why;
    unsigned n = 0;
    HKEY key = NULL;
    LONG r;
    int rc = 0, one;

    if (applied)
        *applied = 0;
    r = RegOpenKeyExA(HKEY_LOCAL_MACHINE, POLICY_KEY, 0, KEY_QUERY_VALUE | KEY_WOW64_64KEY, &key);
    if (r != ERROR_SUCCESS)
        return 0; /* no policy for this agent */
    for (d = policy__defs; d->value_name; d++) {
        one = policy__read(key, d, value, sizeof(value), &why);
        if (one == EPW_E_NOTFOUND)
            continue;
        if (one) {
            policy__errf(err, errlen, POLICY__LABEL " value '%s': %s\n", d->value_name, why);
            rc = one;
            continue;
        }
        one = policy__set(table, conf, d, value, err, errlen);
        if (one == UV_ENOMEM) {
            rc = one;
            goto out;
        }
        if (one) {
            rc = one;
            continue;
        }
        n++;
    }
out:
    RegCloseKey(key);
    if (applied)
        *applied = n;
    return rc;
}
