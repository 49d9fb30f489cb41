/* epwatch: the operator CLI, a client of the collector's operator API (collector/API.md). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "epw_attr.h"
#include "cli_http.h"
#include "cli_render.h"
#include "epw_config.h"
#include "epw_err.h"
#include "epw_json.h"
#include "epw_snap.h"
#include "epw_table.h"
#include "epw_util.h"

/* Exit codes (documented in --help; scripts rely on them). */
#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1 /* runtime or API error: HTTP error, unknown host, bad answer */
#define CLI_EXIT_USAGE 2 /* bad command line or configuration */
#define CLI_EXIT_CONN  3 /* collector unreachable, or TLS refused by either side */

#define CLI_DEFAULT_SINCE "6h"

/* Connection settings: INI keys and --options alike (epw_config). */
typedef struct cli_conf_s {
    char *config;
    char *api, *ca, *cert, *key, *token, *server_name;
    uint64_t timeout_ms, connect_timeout_ms;
} cli_conf_t;

#define T cli_conf_t
static const epw_cfg_key_t cli_conf_table[] = {
    EPW_CFG_STRING("config", T, config, NULL, 0,
                   "configuration file; unset: $EPWATCH_CONFIG, else the first that exists of "
                   "~/.config/epwatch/epwatch.ini and /etc/epwatch/epwatch.ini"),
    EPW_CFG_STRING("api", T, api, NULL, 0, "collector operator API, https://HOST:PORT"),
    EPW_CFG_STRING("ca", T, ca, NULL, 0, "CA certificate (PEM) that signed the collector's"),
    EPW_CFG_STRING("cert", T, cert, NULL, 0, "operator client certificate (PEM)"),
    EPW_CFG_STRING("key", T, key, NULL, 0,
                   "operator private key (PEM); unset: read from the --cert file"),
    EPW_CFG_STRING("token", T, token, NULL, EPW_CFG_SECRET,
                   "bearer token, instead of a certificate; unset: $EPWATCH_TOKEN"),
    EPW_CFG_STRING("server_name", T, server_name, NULL, 0,
                   "name to verify in the collector's certificate when --api names another "
                   "address (e.g. api https://127.0.0.1:7444, server_name collector)"),
    EPW_CFG_DURATION("connect_timeout", T, connect_timeout_ms, "5s", 100, 600000,
                     "give up connecting after this long"),
    EPW_CFG_DURATION("timeout", T, timeout_ms, "30s", 100, 3600000,
                     "give up on a whole request after this long"),
    EPW_CFG_END,
};
#undef T

/* Per-command options (not configuration). */
typedef struct cli_args_s {
    const char *cmd;
    const char *host; /* positional HOST, or --host for alerts */
    const char *since, *until, *step, *at, *limit;
    bool json, ascii, all, help;
} cli_args_t;

typedef struct cli_cmd_s {
    const char *name;
    const char *usage;
    const char *help;
} cli_cmd_t;

static const cli_cmd_t cli_cmds[] = {
    {"hosts", "epwatch hosts [--json] [--ascii]",
     "The fleet, worst first (silent hosts first, then by pressure): HOST, PRESSURE, STATUS,\n"
     "TREND (arrow and slope over the last 15 minutes: ↑ >= +10 %/h, ↗ >= +1 %/h, → flat,\n"
     "↘ <= -1 %/h, ↓ <= -10 %/h; ASCII ^ / - \\ v), LAST SEEN, ALERTS (active), TOP PROCESS.\n"},
    {"history", "epwatch history HOST [--since 6h] [--until TIME] [--step 5m] [--json] [--ascii]",
     "Pressure of HOST over time, downsampled by the collector into buckets of --step\n"
     "(default: the span / 120): a sparkline of the bucket maxima on a 0-100 % scale, then\n"
     "a table. --since is a duration back from now or an RFC 3339 time (default 6h);\n"
     "--until is an RFC 3339 time or a duration back from now (default: now).\n"},
    {"top", "epwatch top HOST [--at TIME] [--json]",
     "HOST's latest snapshot (or the latest at or before --at, an RFC 3339 time or a\n"
     "duration back from now) as the agent console shows it: the classic per-address table,\n"
     "host-wide usage, top destinations, states, top processes and remote endpoints.\n"
     "--json prints the snapshot object of the API (the agent's --json format plus seq).\n"},
    {"alerts", "epwatch alerts [--all] [--host HOST] [--since DURATION|TIME] [--limit N] [--json]",
     "Active alerts, newest first. --all adds resolved ones (by default those resolved in\n"
     "the last 24 hours; widen with --since). --host keeps one host's alerts.\n"},
};

static const cli_cmd_t *cli_find_cmd(const char *name)
{
    size_t i;

    for (i = 0; name && i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++)
        if (strcmp(cli_cmds[i].name, name) == 0)
            return &cli_cmds[i];
    return NULL;
}

static void cli_print_help(const cli_cmd_t *cmd)
{
    char *conf_help;
    size_t i;

    if (cmd) {
        printf("Usage: %s\n\n%s\n", cmd->usage, cmd->help);
        printf("Common options: --json (print the API's JSON), --ascii (no Unicode glyphs; also\n"
               "automatic when LC_ALL/LC_CTYPE/LANG is not UTF-8), connection options as in\n"
               "'epwatch --help'.\n");
        return;
    }
    printf("Usage: epwatch [CONNECTION OPTIONS] COMMAND [ARGS]\n\n"
           "Asks the epwatch collector which hosts are running out of ephemeral ports.\n\n"
           "Commands:\n");
    for (i = 0; i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++)
        printf("  %s\n", cli_cmds[i].usage);
    printf("\n'epwatch COMMAND --help' describes a command.\n\n"
           "Connection options (also keys of the configuration file, '--key value' wins):\n");
    conf_help = epw_config_help(cli_conf_table);
    if (conf_help)
        fputs(conf_help, stdout);
    free(conf_help);
    printf("\n  --help, -h    this text          --version    print the version\n\n"
           "Exit status: 0 ok; 1 runtime or API error (HTTP error, unknown host);\n"
           "2 usage or configuration error; 3 collector unreachable or TLS refused.\n\n"
           "Examples:\n"
           "  epwatch --api https://collector:7444 --ca ca.crt --cert op.crt --key op.key hosts\n"
           "  epwatch history web-17 --since 24h --step 15m\n"
           "  epwatch top web-17 --at 2026-11-25T12:00:00Z\n"
           "  epwatch alerts --all --json | jq '.[] | select(.severity == \"critical\")'\n");
}

static void cli_err(const char *fmt, ...) EPW_PRINTF(1, 2);

static void cli_err(const char *fmt, ...)
{
    va_list ap;

    fputs("epwatch: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- command line ---- */

/* The value of option `name` at argv[*i] ("--name V" or "--name=V"); NULL when argv[*i] is not
 * that option. *bad is set when the option is there but its value is missing. */
static const char *cli_opt_value(int argc, char **argv, int *i, const char *name, bool *bad)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
        return NULL;
    if (a[2 + n] == '=')
        return a + 3 + n;
    if (a[2 + n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

/* Parses what epw_config_parse_args left: COMMAND, its positional HOST and its options. */
static int cli_parse_args(int argc, char **argv, cli_args_t *a)
{
    int i;

    memset(a, 0, sizeof(*a));
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **slot = NULL;
        const char *v;
        bool bad = false;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = true;
            continue;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (strcmp(arg, "--ascii") == 0) {
            a->ascii = true;
            continue;
        }
        if (strcmp(arg, "--all") == 0) {
            a->all = true;
            continue;
        }
        if ((v = cli_opt_value(argc, argv, &i, "since", &bad)) != NULL)
            slot = &a->since;
        else if (!bad && (v = cli_opt_value(argc, argv, &i, "until", &bad)) != NULL)
            slot = &a->until;
        else if (!bad && (v = cli_opt_value(argc, argv, &i, "step", &bad)) != NULL)
            slot = &a->step;
        else if (!bad && (v = cli_opt_value(argc, argv, &i, "at", &bad)) != NULL)
            slot = &a->at;
        else if (!bad && (v = cli_opt_value(argc, argv, &i, "limit", &bad)) != NULL)
            slot = &a->limit;
        else if (!bad && (v = cli_opt_value(argc, argv, &i, "host", &bad)) != NULL)
            slot = &a->host;
        if (bad) {
            cli_err("option '%s': missing value", arg);
            return EPW_E_USAGE;
        }
        if (slot) {
            *slot = v;
            continue;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            cli_err("unknown option '%s' (see 'epwatch%s%s --help')", arg, a->cmd ? " " : "",
                    a->cmd ? a->cmd : "");
            return EPW_E_USAGE;
        }
        if (!a->cmd) {
            a->cmd = arg;
        } else if (!a->host) {
            a->host = arg;
        } else {
            cli_err("unexpected argument '%s'", arg);
            return EPW_E_USAGE;
        }
    }
    return 0;
}

/* Checks that the options given make sense for the command, before anything is sent. */
static int cli_check_args(const cli_args_t *a)
{
    uint64_t ms;
    int64_t t;
    bool wants_host = strcmp(a->cmd, "history") == 0 || strcmp(a->cmd, "top") == 0;
    bool is_alerts = strcmp(a->cmd, "alerts") == 0;

    if (wants_host && (!a->host || !*a->host)) {
        cli_err("%s: missing HOST (usage: %s)", a->cmd, cli_find_cmd(a->cmd)->usage);
        return EPW_E_USAGE;
    }
    if (!wants_host && a->host && !is_alerts) {
        cli_err("%s: unexpected argument '%s'", a->cmd, a->host);
        return EPW_E_USAGE;
    }
    if ((a->since && strcmp(a->cmd, "history") && !is_alerts) ||
        ((a->until || a->step) && strcmp(a->cmd, "history")) || (a->at && strcmp(a->cmd, "top")) ||
        ((a->all || a->limit) && !is_alerts)) {
        cli_err("%s: option not valid for this command (see 'epwatch %s --help')", a->cmd, a->cmd);
        return EPW_E_USAGE;
    }
    if (a->since && epw_parse_duration(a->since, &ms) && epw_parse_rfc3339(a->since, &t)) {
        cli_err("--since: '%s' is neither a duration (6h, 90m, 7d) nor an RFC 3339 time", a->since);
        return EPW_E_USAGE;
    }
    if (a->until && epw_parse_duration(a->until, &ms) && epw_parse_rfc3339(a->until, &t)) {
        cli_err("--until: '%s' is neither an RFC 3339 time nor a duration back from now", a->until);
        return EPW_E_USAGE;
    }
    if (a->at && epw_parse_duration(a->at, &ms) && epw_parse_rfc3339(a->at, &t)) {
        cli_err("--at: '%s' is neither an RFC 3339 time nor a duration back from now", a->at);
        return EPW_E_USAGE;
    }
    if (a->step && (epw_parse_duration(a->step, &ms) || ms < 1000)) {
        cli_err("--step: '%s' is not a duration of at least 1s (e.g. 5m)", a->step);
        return EPW_E_USAGE;
    }
    if (a->limit) {
        char *end;
        long n = strtol(a->limit, &end, 10);

        if (*end || end == a->limit || n < 1 || n > 1000000) {
            cli_err("--limit: '%s' is not a number from 1 to 1000000", a->limit);
            return EPW_E_USAGE;
        }
    }
    return 0;
}

/* A time option as the API wants it: an RFC 3339 time as given, a duration as now minus it. */
static void cli_time_arg(const char *v, int64_t now_ms, char *buf, size_t len)
{
    uint64_t ms;

    if (!epw_parse_duration(v, &ms))
        epw_format_rfc3339(now_ms - (int64_t)ms, buf, len);
    else
        snprintf(buf, len, "%s", v);
}

/* Appends "?key=value" or "&key=value" (value escaped) to the request path in `buf`. A value
 * that does not fit truncates nothing silently: it is UV_ENOBUFS. */
static int cli_query_add(char *buf, size_t len, const char *key, const char *value)
{
    char *e = cli_url_escape(value);
    size_t used = strlen(buf);
    int n;

    if (!e)
        return UV_ENOMEM;
    n = snprintf(buf + used, len - used, "%c%s=%s", strchr(buf, '?') ? '&' : '?', key, e);
    free(e);
    return n < 0 || (size_t)n >= len - used ? UV_ENOBUFS : 0;
}

/* ---- configuration ---- */

static int cli_readable(const char *path)
{
    return path && access(path, R_OK) == 0;
}

/* Which file to read: --config, else $EPWATCH_CONFIG (both must exist), else the first of the
 * per-user and system files that exists; NULL for none. `buf` holds a built path. */
static const char *cli_config_path(int argc, char **argv, char *buf, size_t len)
{
    const char *p = epw_config_arg_value(argc, argv, "config");
    const char *home;

    if (p && *p)
        return p;
    p = getenv("EPWATCH_CONFIG");
    if (p && *p)
        return p;
    home = getenv("HOME");
    if (home && *home) {
        snprintf(buf, len, "%s/.config/epwatch/epwatch.ini", home);
        if (access(buf, F_OK) == 0)
            return buf;
    }
    if (access("/etc/epwatch/epwatch.ini", F_OK) == 0)
        return "/etc/epwatch/epwatch.ini";
    return NULL;
}

/* "~/x" in a file path means $HOME/x, as a shell would have it on the command line (the
 * configuration file has no shell). */
static int cli_expand_home(char **path)
{
    const char *home = getenv("HOME");
    char *p;
    size_t n;

    if (!*path || strncmp(*path, "~/", 2) != 0 || !home || !*home)
        return 0;
    n = strlen(home) + strlen(*path);
    p = malloc(n);
    if (!p)
        return UV_ENOMEM;
    snprintf(p, n, "%s%s", home, *path + 1);
    free(*path);
    *path = p;
    return 0;
}

static int cli_load_conf(int *argc, char **argv, cli_conf_t *c)
{
    char err[4096] = "", pathbuf[1024];
    const char *path;
    int rc;

    rc = epw_config_defaults(cli_conf_table, c, err, sizeof(err));
    if (rc)
        goto out;
    path = cli_config_path(*argc, argv, pathbuf, sizeof(pathbuf));
    if (path) {
        rc = epw_config_parse_file(cli_conf_table, c, path, err, sizeof(err));
        if (rc)
            goto out;
    }
    rc = epw_config_parse_args(cli_conf_table, c, *argc, argv, argc, err, sizeof(err));
    if (rc)
        goto out;
    rc = cli_expand_home(&c->ca);
    if (!rc)
        rc = cli_expand_home(&c->cert);
    if (!rc)
        rc = cli_expand_home(&c->key);
    if (rc)
        goto out;
    if (!c->token) {
        const char *t = getenv("EPWATCH_TOKEN");

        if (t && *t) {
            c->token = strdup(t);
            if (!c->token)
                rc = UV_ENOMEM;
        }
    }
out:
    if (rc && err[0])
        fprintf(stderr, "epwatch: %s", err[strlen(err) - 1] == '\n' ? err : strcat(err, "\n"));
    else if (rc)
        cli_err("configuration: %s", epw_strerror(rc));
    return rc;
}

/* The settings every request needs, checked before any network traffic. */
static int cli_check_conf(const cli_conf_t *c)
{
    if (!c->api) {
        cli_err("no collector address: give --api https://HOST:PORT or set 'api' in the "
                "configuration file (see 'epwatch --help')");
        return EPW_E_USAGE;
    }
    if (c->ca && !cli_readable(c->ca)) {
        cli_err("cannot read the CA certificate --ca %s", c->ca);
        return EPW_E_USAGE;
    }
    if (c->cert && !cli_readable(c->cert)) {
        cli_err("cannot read the client certificate --cert %s", c->cert);
        return EPW_E_USAGE;
    }
    if (c->key && !cli_readable(c->key)) {
        cli_err("cannot read the private key --key %s", c->key);
        return EPW_E_USAGE;
    }
    if (c->key && !c->cert) {
        cli_err("--key given without --cert");
        return EPW_E_USAGE;
    }
    return 0;
}

/* ---- requests ---- */

/* GETs `path` and parses the JSON answer into *out. HTTP errors print the API's message. */
static int cli_fetch(const cli_conf_t *c, const char *path, cJSON **out)
{
    cli_http_opts_t o = {
        c->api,       c->ca, c->cert, c->key, c->token, c->server_name, c->connect_timeout_ms,
        c->timeout_ms};
    cli_http_resp_t resp;
    char err[1024];
    cJSON *j = NULL;
    int rc;

    *out = NULL;
    rc = cli_http_get(&o, path, &resp, err, sizeof(err));
    if (rc) {
        if (err[0])
            cli_err("%s", err);
        else
            cli_err("request failed: %s", epw_strerror(rc));
        return rc;
    }
    j = cJSON_ParseWithLength(resp.body, resp.len);
    if (resp.status >= 400) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        const char *msg = cJSON_IsString(m) ? m->valuestring : NULL;

        if (resp.status == 401 || resp.status == 403)
            cli_err("the collector at %s refused this request (HTTP %ld): %s", c->api, resp.status,
                    msg ? msg : "not authorised");
        else
            cli_err("%s (HTTP %ld from %s)", msg ? msg : "request failed", resp.status, c->api);
        rc = resp.status == 404 ? EPW_E_NOTFOUND : EPW_E_REJECTED;
        goto out;
    }
    if (!j) {
        cli_err("the answer from %s to %s is not JSON (HTTP %ld)", c->api, path, resp.status);
        rc = EPW_E_PROTO;
        goto out;
    }
    *out = j;
    j = NULL;
out:
    cJSON_Delete(j);
    cli_http_resp_free(&resp);
    return rc;
}

static int cli_print_json(const cJSON *j)
{
    char *text = cJSON_Print(j);

    if (!text)
        return UV_ENOMEM;
    puts(text);
    cJSON_free(text);
    return 0;
}

static int cli_print_text(int rc, char *text)
{
    if (!rc)
        fputs(text, stdout);
    else
        cli_err("cannot render the answer: %s", epw_strerror(rc));
    free(text);
    return rc;
}

static int cli_bad_shape(const char *what)
{
    cli_err("unexpected answer from the collector: %s", what);
    return EPW_E_PROTO;
}

static int cmd_hosts(const cli_conf_t *c, const cli_args_t *a, const cli_style_t *st)
{
    cJSON *j = NULL;
    char *text = NULL;
    int rc;

    rc = cli_fetch(c, "/api/v1/hosts", &j);
    if (rc)
        goto out;
    if (!cJSON_IsArray(j)) {
        rc = cli_bad_shape("/api/v1/hosts is not an array");
        goto out;
    }
    rc = cli_hosts_sort(j);
    if (rc)
        goto out;
    if (a->json)
        rc = cli_print_json(j);
    else {
        rc = cli_render_hosts(j, st, &text);
        rc = cli_print_text(rc, text);
    }
out:
    cJSON_Delete(j);
    return rc;
}

static int cmd_history(const cli_conf_t *c, const cli_args_t *a, const cli_style_t *st)
{
    char path[2048], until[64] = "";
    char *host = cli_url_escape(a->host), *text = NULL;
    cJSON *j = NULL;
    int rc;

    if (!host) {
        rc = UV_ENOMEM;
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/hosts/%s/history", host);
    rc = cli_query_add(path, sizeof(path), "since", a->since ? a->since : CLI_DEFAULT_SINCE);
    if (!rc && a->until) {
        cli_time_arg(a->until, st->now_ms, until, sizeof(until));
        rc = cli_query_add(path, sizeof(path), "until", until);
    }
    if (!rc && a->step)
        rc = cli_query_add(path, sizeof(path), "step", a->step);
    if (rc)
        goto out;
    rc = cli_fetch(c, path, &j);
    if (rc)
        goto out;
    if (!cJSON_IsObject(j) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "points"))) {
        rc = cli_bad_shape("history without a points array");
        goto out;
    }
    if (a->json)
        rc = cli_print_json(j);
    else {
        rc = cli_render_history(j, st, &text);
        rc = cli_print_text(rc, text);
    }
out:
    cJSON_Delete(j);
    free(host);
    return rc;
}

static int cmd_top(const cli_conf_t *c, const cli_args_t *a, const cli_style_t *st)
{
    char path[2048], at[64] = "";
    char *host = cli_url_escape(a->host), *text = NULL;
    Epw__Snapshot *snap = NULL;
    size_t len = 0;
    cJSON *j = NULL;
    int rc = 0;

    if (!host) {
        rc = UV_ENOMEM;
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/hosts/%s/snapshot", host);
    if (a->at) {
        cli_time_arg(a->at, st->now_ms, at, sizeof(at));
        rc = cli_query_add(path, sizeof(path), "at", at);
    }
    if (rc)
        goto out;
    rc = cli_fetch(c, path, &j);
    if (rc)
        goto out;
    if (a->json) {
        rc = cli_print_json(j);
        goto out;
    }
    rc = epw_json_to_snapshot(j, &snap);
    if (rc) {
        rc = cli_bad_shape(rc == UV_ENOMEM ? "out of memory" : "the snapshot does not parse");
        goto out;
    }
    rc = epw_table_render(snap, 0, &text, &len);
    if (rc) {
        cli_err("cannot render the snapshot: %s", epw_strerror(rc));
        goto out;
    }
    fwrite(text, 1, len, stdout);
out:
    free(text);
    epw_snap_free(snap);
    cJSON_Delete(j);
    free(host);
    return rc;
}

static int cmd_alerts(const cli_conf_t *c, const cli_args_t *a, const cli_style_t *st)
{
    char path[2048] = "/api/v1/alerts", *text = NULL;
    cJSON *j = NULL, *it, *next;
    int rc = 0;

    /* No "active" parameter with --all: active=false would mean resolved ones only. */
    if (!a->all)
        rc = cli_query_add(path, sizeof(path), "active", "true");
    if (!rc && a->host)
        rc = cli_query_add(path, sizeof(path), "host", a->host);
    if (!rc && a->since)
        rc = cli_query_add(path, sizeof(path), "since", a->since);
    if (!rc && a->limit)
        rc = cli_query_add(path, sizeof(path), "limit", a->limit);
    if (rc)
        goto out;
    rc = cli_fetch(c, path, &j);
    if (rc)
        goto out;
    if (!cJSON_IsArray(j)) {
        rc = cli_bad_shape("/api/v1/alerts is not an array");
        goto out;
    }
    /* The filters again here, so the output means what the options say whatever the server
     * version does with the query. */
    for (it = j->child; it; it = next) {
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(it, "active");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(it, "host");

        next = it->next;
        if ((!a->all && !cJSON_IsTrue(act)) ||
            (a->host && (!cJSON_IsString(h) || strcmp(h->valuestring, a->host) != 0)))
            cJSON_Delete(cJSON_DetachItemViaPointer(j, it));
    }
    if (a->json)
        rc = cli_print_json(j);
    else {
        rc = cli_render_alerts(j, st, &text);
        rc = cli_print_text(rc, text);
    }
out:
    cJSON_Delete(j);
    return rc;
}

static int cli_exit_code(int rc)
{
    switch (rc) {
    case 0:
        return CLI_EXIT_OK;
    case EPW_E_USAGE:
    case EPW_E_CONFIG:
        return CLI_EXIT_USAGE;
    case EPW_E_UNAVAILABLE:
    case EPW_E_TLS:
    case EPW_E_TLS_VERIFY:
        return CLI_EXIT_CONN;
    default:
        return CLI_EXIT_FAIL;
    }
}

int main(int argc, char **argv)
{
    cli_conf_t conf = {0};
    cli_args_t args;
    cli_style_t st;
    const cli_cmd_t *cmd;
    bool http_up = false;
    int i, rc;

    /* --help and --version work whatever the configuration file says. */
    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("epwatch %s\n", EPW_VERSION);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            int k;

            for (k = 1, cmd = NULL; k < argc && !cmd; k++)
                cmd = cli_find_cmd(argv[k]);
            cli_print_help(cmd);
            return CLI_EXIT_OK;
        }
    }
    rc = cli_load_conf(&argc, argv, &conf);
    if (rc)
        goto out;
    rc = cli_parse_args(argc, argv, &args);
    if (rc)
        goto out;
    if (!args.cmd) {
        cli_err("missing COMMAND (hosts, history, top, alerts; see 'epwatch --help')");
        rc = EPW_E_USAGE;
        goto out;
    }
    cmd = cli_find_cmd(args.cmd);
    if (!cmd) {
        cli_err("unknown command '%s' (hosts, history, top, alerts; see 'epwatch --help')",
                args.cmd);
        rc = EPW_E_USAGE;
        goto out;
    }
    rc = cli_check_args(&args);
    if (rc)
        goto out;
    rc = cli_check_conf(&conf);
    if (rc)
        goto out;
    st.ascii = args.ascii || !cli_utf8_locale(getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG"));
    st.now_ms = epw_now_ms();
    rc = cli_http_global_init();
    if (rc) {
        cli_err("cannot initialise libcurl");
        goto out;
    }
    http_up = true;
    if (strcmp(cmd->name, "hosts") == 0)
        rc = cmd_hosts(&conf, &args, &st);
    else if (strcmp(cmd->name, "history") == 0)
        rc = cmd_history(&conf, &args, &st);
    else if (strcmp(cmd->name, "top") == 0)
        rc = cmd_top(&conf, &args, &st);
    else
        rc = cmd_alerts(&conf, &args, &st);
    if (!rc && (fflush(stdout) || ferror(stdout))) {
        cli_err("cannot write the output");
        rc = UV_EIO;
    }
out:
    if (http_up)
        cli_http_global_cleanup();
    epw_config_free(cli_conf_table, &conf);
    return cli_exit_code(rc);
}
