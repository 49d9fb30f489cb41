/* agent_conf: the agent's configuration table and its merge with the command line. */
#include "agent_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#if defined(_WIN32)
#include <windows.h>
#endif

#include "epw_err.h"
#include "epw_util.h"
#include "policy.h"
#include "service.h"

static const char *const conf_levels[] = {"error", "warn", "info", "debug", NULL};

#define T agent_conf_t

static const epw_cfg_key_t conf_table[] = {
    EPW_CFG_HOSTPORT("collector", T, collector, NULL, 0,
                     "collector address HOST:PORT; unset: standalone, nothing is streamed"),
    EPW_CFG_STRING("server_name", T, server_name, NULL, 0,
                   "DNS name expected in the collector certificate (default: the collector host)"),
    EPW_CFG_STRING("hostname", T, hostname, NULL, 0,
                   "identity sent to the collector; must equal the CN of this host's certificate "
                   "(default: the OS hostname)"),
    EPW_CFG_STRING("bind", T, bind, NULL, 0,
                   "numeric local address to connect from (default: chosen by the OS)"),
    EPW_CFG_STRING("ca", T, ca, NULL, 0, "CA certificate (PEM) that signed the collector's"),
    EPW_CFG_STRING("cert", T, cert, NULL, 0, "this host's client certificate (PEM)"),
    EPW_CFG_STRING("key", T, key, NULL, 0, "this host's private key (PEM)"),
    EPW_CFG_DURATION("interval", T, interval_ms, "60s", AGENT_MIN_INTERVAL_MS, 7ll * 86400000,
                     "time between samples"),
    EPW_CFG_STRING("spool_dir", T, spool_dir, AGENT_DEFAULT_SPOOL_DIR, 0,
                   "directory keeping snapshots until the collector acknowledges them"),
    EPW_CFG_SIZE("spool_max", T, spool_max, "64M", 1024, 1ll << 40,
                 "spool size limit; when full the oldest snapshots are dropped (and reported)"),
    EPW_CFG_DURATION("reconnect_min", T, reconnect_min_ms, "1s", 100, 3600000,
                     "first reconnect delay after a failure (doubles, with +-20% jitter)"),
    EPW_CFG_DURATION("reconnect_max", T, reconnect_max_ms, "5m", 100, 86400000,
                     "longest reconnect delay after failures"),
    EPW_CFG_STRING("log_file", T, log_file, NULL, 0,
                   "rolling text log of every sample (the classic table; --log)"),
    EPW_CFG_SIZE("log_max", T, log_max, "10M", AGENT_MIN_LOG_MAX, 1ll << 30,
                 "rotate log_file before it exceeds this size"),
    EPW_CFG_INT("log_keep", T, log_keep, "5", 0, AGENT_MAX_LOG_KEEP, "rotated log files kept"),
    EPW_CFG_INT("top_n", T, top_n, "5", 1, AGENT_MAX_TOP_N,
                "processes and remote endpoints listed per snapshot (--top)"),
    EPW_CFG_BOOL("all_netns", T, all_netns, "false",
                 "Linux: sample every network namespace (one snapshot and seq per namespace)"),
    EPW_CFG_ENUM("log_level", T, log_level, "info", conf_levels, "diagnostics on stderr"),
    EPW_CFG_END,
};

#undef T

/* Keys whose command-line form agent_opts parses (see agent_conf.h). */
static const char *const conf_opts_keys[] = {"interval",  "log_max",   "log_keep",
                                             "all_netns", "log_level", NULL};

const epw_cfg_key_t *agent_conf_table(void)
{
    return conf_table;
}

static int conf__is_opts_key(const char *name)
{
    size_t i;

    for (i = 0; conf_opts_keys[i]; i++) {
        if (strcmp(conf_opts_keys[i], name) == 0)
            return 1;
    }
    return 0;
}

/* '-' and '_' are the same on the command line. */
static int conf__cli_name_eq(const char *a, size_t n, const char *b)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char ca = a[i] == '-' ? '_' : a[i], cb = b[i] == '-' ? '_' : b[i];

        if (cb == '\0' || ca != cb)
            return 0;
    }
    return b[n] == '\0';
}

/* Whether `--name` or `--name=...` appears in argv (before "--"). */
static int conf__on_cmdline(int argc, char **argv, const char *name)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq;
        size_t n;

        if (strcmp(a, "--") == 0)
            break;
        if (strncmp(a, "--", 2) != 0)
            continue;
        eq = strchr(a + 2, '=');
        n = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (conf__cli_name_eq(a + 2, n, name))
            return 1;
    }
    return 0;
}

static int conf__set_string(char **field, const char *v)
{
    char *copy = NULL;

    if (v) {
        copy = strdup(v);
        if (!copy)
            return UV_ENOMEM;
    }
    free(*field);
    *field = copy;
    return 0;
}

/* Defaults that depend on other keys or on the host. */
static int conf__resolve(agent_conf_t *c, char *err, size_t errlen)
{
    static const char *const need[] = {"ca", "cert", "key"};
    const char *have[3];
    char host[256];
    size_t len = sizeof(host), i;
    int rc = 0;

    if (!c->hostname) {
        if (uv_os_gethostname(host, &len) == 0) {
            rc = conf__set_string(&c->hostname, host);
            if (rc)
                return rc;
        }
    }
    if (!c->collector.host)
        return 0;
    if (c->collector.host[0] == '\0' || c->collector.port == 0) {
        snprintf(err, errlen, "key 'collector': needs HOST:PORT\n");
        return EPW_E_CONFIG;
    }
    if (!c->server_name) {
        rc = conf__set_string(&c->server_name, c->collector.host);
        if (rc)
            return rc;
    }
    have[0] = c->ca;
    have[1] = c->cert;
    have[2] = c->key;
    for (i = 0; i < 3; i++) {
        if (!have[i]) {
            size_t used = strlen(err);

            snprintf(err + used, errlen - used, "key '%s': required when 'collector' is set\n",
                     need[i]);
            rc = EPW_E_CONFIG;
        }
    }
    if (!c->hostname && !rc) {
        snprintf(err, errlen, "key 'hostname': the OS hostname is unavailable; set it\n");
        rc = EPW_E_CONFIG;
    }
    if (c->reconnect_max_ms < c->reconnect_min_ms && !rc) {
        snprintf(err, errlen, "key 'reconnect_max': below reconnect_min\n");
        rc = EPW_E_CONFIG;
    }
    return rc;
}

#if defined(_WIN32)
/* The data directory is %ProgramData%\epwatch wherever ProgramData really is (the header's
 * spool default is the usual place). Returns the default config file when it exists, so that the
 * service, installed without --config (the MSI), finds it; else NULL. Static storage: the path
 * outlives the call as agent_opts_t.config_path. */
static const char *conf__windows_defaults(agent_conf_t *c)
{
    static char cfg[1024];
    char spool[1024];
    DWORD attr;

    if (service_data_dir(spool, sizeof(spool) - 6) == 0 &&
        strcmp(c->spool_dir ? c->spool_dir : "", AGENT_DEFAULT_SPOOL_DIR) == 0) {
        strcat(spool, "\\spool");
        if (conf__set_string(&c->spool_dir, spool))
            return NULL; /* out of memory: the next allocation reports it */
    }
    if (service_default_config(cfg, sizeof(cfg)))
        return NULL;
    attr = GetFileAttributesA(cfg);
    if (attr == INVALID_FILE_ATTRIBUTES || (attr & FILE_ATTRIBUTE_DIRECTORY))
        return NULL;
    return cfg;
}
#endif

int agent_conf_load(int argc, char **argv, agent_conf_t *c, agent_opts_t *o, char *err,
                    size_t errlen)
{
    epw_cfg_key_t *cli = NULL;
    char **args = NULL;
    const char *path, *continuous = NULL;
    size_t i, n = 0;
    int nargs = 0, rc;

    if (err && errlen)
        err[0] = '\0';
    agent_opts_defaults(o);
    rc = epw_config_defaults(conf_table, c, err, errlen);
    if (rc)
        goto out;
    /* --help and --version answer without touching files, and before any error of the file. */
    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            o->action = AGENT_ACTION_HELP;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            o->action = AGENT_ACTION_VERSION;
            goto out;
        }
    }
    path = epw_config_arg_value(argc, argv, "config");
#if defined(_WIN32)
    if (!path)
        path = conf__windows_defaults(c);
#endif
    if (path) {
        rc = epw_config_parse_file(conf_table, c, path, err, errlen);
        if (rc)
            goto out;
    }
    /* Group Policy (Windows) overrides the file; the command line still overrides both. */
    rc = policy_apply(conf_table, c, NULL, err, errlen);
    if (rc)
        goto out;

    /* The command-line table: every key but those agent_opts parses. */
    while (conf_table[n].name)
        n++;
    cli = calloc(n + 1, sizeof(*cli));
    args = calloc((size_t)argc + 1, sizeof(*args));
    if (!cli || !args) {
        rc = UV_ENOMEM;
        goto out;
    }
    n = 0;
    for (i = 0; conf_table[i].name; i++) {
        if (!conf__is_opts_key(conf_table[i].name))
            cli[n++] = conf_table[i];
    }
    memcpy(args, argv, (size_t)argc * sizeof(*args));
    rc = epw_config_parse_args(cli, c, argc, args, &nargs, err, errlen);
    if (rc)
        goto out;

    /* agent_opts reads the rest over the file's values. */
    o->interval_ms = c->interval_ms;
    o->log_max_bytes = c->log_max;
    o->log_keep = (uint32_t)c->log_keep;
    o->log_level = (epw_log_level_t)c->log_level;
    o->top_n = (uint32_t)c->top_n;
    o->log_path = c->log_file;
    /* all_netns from the file is applied afterwards, so that a one-off --netstat analysis is
     * not refused because the file asks for every namespace. */
    o->all_netns = 0;
    if (conf__on_cmdline(argc, argv, "log_file"))
        continuous = "log-file";
    rc = agent_opts_parse_over(nargs, args, o, continuous, err, errlen);
    if (rc)
        goto out;
    if (o->action != AGENT_ACTION_RUN)
        goto out;
    if (!o->netstat_path && c->all_netns)
        o->all_netns = 1;

    /* Write the effective values back: this struct is what --print-config shows. */
    c->interval_ms = o->interval_ms;
    c->log_max = o->log_max_bytes;
    c->log_keep = (int)o->log_keep;
    c->log_level = (int)o->log_level;
    c->top_n = (int)o->top_n;
    c->all_netns = o->all_netns != 0;
    if (o->log_path != c->log_file) {
        rc = conf__set_string(&c->log_file, o->log_path);
        if (rc)
            goto out;
        o->log_path = c->log_file;
    }
    o->config_path = path;
    rc = conf__resolve(c, err, errlen);
out:
    free(cli);
    free(args);
    return rc;
}

char *agent_conf_format(const agent_conf_t *c)
{
    return epw_config_format(conf_table, c);
}

char *agent_conf_help(void)
{
    return epw_config_help(conf_table);
}

void agent_conf_free(agent_conf_t *c)
{
    epw_config_free(conf_table, c);
}
