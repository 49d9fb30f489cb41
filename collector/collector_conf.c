/* collector_conf: the collector's configuration table (INI file + --key options) and deny lists. */
#include "epw_attr.h"
#include "collector_conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "epw_err.h"

#define DENY_FILE_MAX (4u << 20)
#define ID_MAX        64
#define CONF_FILE_MAX (1u << 20) /* as epw_config_parse_file */
#define OV_PREFIX     "alerts.override."
#define OV_NAME_MAX   40

EPW_PRINTF(3, 4)
static void append_err(char *err, size_t errlen, const char *fmt, ...);

static void append_err(char *err, size_t errlen, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    used = strnlen(err, errlen);
    if (used + 1 >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

#define C collector_conf_t
static const epw_cfg_key_t table[] = {
    EPW_CFG_HOSTPORT("listen", C, listen, "0.0.0.0:7443", 0,
                     "address and port the agents connect to (mutual TLS)"),
    EPW_CFG_STRING("db", C, db, "/var/lib/epwatch/epwatch.db", 0,
                   "SQLite history database, created if missing"),
    EPW_CFG_STRING("ca", C, ca, NULL, EPW_CFG_REQUIRED,
                   "CA certificate (PEM) that issued the agent certificates"),
    EPW_CFG_STRING("cert", C, cert, NULL, EPW_CFG_REQUIRED,
                   "the collector's certificate (PEM, EKU serverAuth)"),
    EPW_CFG_STRING("key", C, key, NULL, EPW_CFG_REQUIRED, "the collector's private key (PEM)"),
    EPW_CFG_DURATION("retention", C, retention_ms, "30d", 0, INT64_C(100) * 365 * 86400000,
                     "delete snapshots older than this; 0 keeps everything"),
    EPW_CFG_DURATION("retention_every", C, retention_every_ms, "1m", 1000, INT64_C(86400000),
                     "how often the retention pass runs"),
    EPW_CFG_INT("max_connections", C, max_connections, "20000", 1, 1000000,
                "agents connected at once; more get REJECT_OVERLOADED"),
    EPW_CFG_LIST("deny", C, deny, NULL, 0,
                 "revoked identities (certificate CNs), refused at the TLS handshake"),
    EPW_CFG_STRING("deny_file", C, deny_file, NULL, 0,
                   "file with more revoked identities, one per line; re-read on SIGHUP"),
    EPW_CFG_DURATION("handshake_timeout", C, handshake_timeout_ms, "10s", 100, 600000,
                     "time allowed for the TLS handshake"),
    EPW_CFG_DURATION(
        "idle_timeout", C, idle_timeout_ms, "5m", 0, INT64_C(86400000),
        "close an agent silent this long (about 3x the longest agent interval); 0: never"),
    EPW_CFG_ENUM("log_level", C, log_level, "info", log_levels, "error, warn, info or debug"),
    EPW_CFG_BOOL("relaxed_sync", C, relaxed_sync, "false",
                 "SQLite synchronous=NORMAL: survives a crash of the collector but not power loss"),
    EPW_CFG_SIZE("max_frame", C, max_frame, "4MiB", 1024, INT64_C(64) << 20,
                 "largest message accepted from an agent"),
    EPW_CFG_INT("queue_max", C, queue_max, "8192", 1, 1000000,
                "snapshots queued for the database writer before agents are paused"),
    EPW_CFG_SIZE("queue_max_bytes", C, queue_max_bytes, "128MiB", 1024, INT64_C(4) << 30,
                 "memory of the snapshots queued for the database writer (decoded: ~7x their size) "
                 "before agents are paused"),
    EPW_CFG_INT("batch_max", C, batch_max, "4096", 1, 100000,
                "most items per database transaction (a batch is what is queued, up to this)"),
    EPW_CFG_HOSTPORT("api_listen", C, api_listen, "0.0.0.0:7444", 0,
                     "operator API (HTTPS) address and port; empty or off: no API"),
    EPW_CFG_LIST("api_tokens", C, api_tokens, NULL, EPW_CFG_SECRET,
                 "bearer tokens accepted by the API besides operator certificates"),
    EPW_CFG_STRING("api_ca", C, api_ca, NULL, 0,
                   "CA (PEM) of the operator certificates; unset: ca"),
    EPW_CFG_STRING("api_cert", C, api_cert, NULL, 0,
                   "the API's server certificate (PEM); unset: cert"),
    EPW_CFG_STRING("api_key", C, api_key, NULL, 0, "the API's private key (PEM); unset: key"),
    EPW_CFG_END};

static const epw_cfg_key_t sink_rows[] = {SINKS_CONF_KEYS(C, sinks), EPW_CFG_END};
#undef C

#define TABLE_MAX 96
#define RULES_MAX 40

/* base + alerts.* + sink.*: built once (start-up, one thread), static afterwards. */
static epw_cfg_key_t full_table[TABLE_MAX];
static char rule_names[RULES_MAX][48];
static int table_built;

static size_t rows(const epw_cfg_key_t *t)
{
    size_t n = 0;

    while (t[n].name)
        n++;
    return n;
}

static void build_table(void)
{
    const epw_cfg_key_t *rules = detect_rules_keys();
    size_t n = 0, i, nr = rows(rules);

    if (rows(table) + nr + rows(sink_rows) + 1 > TABLE_MAX || nr > RULES_MAX) {
        /* A table bug: epw_config_defaults reports an empty table as broken soon enough. */
        full_table[0] = table[rows(table)];
        table_built = 1;
        return;
    }
    for (i = 0; table[i].name; i++)
        full_table[n++] = table[i];
    for (i = 0; i < nr; i++) {
        snprintf(rule_names[i], sizeof(rule_names[i]), "alerts.%s", rules[i].name);
        full_table[n] = rules[i];
        full_table[n].name = rule_names[i];
        full_table[n].offset += offsetof(collector_conf_t, rules);
        n++;
    }
    for (i = 0; sink_rows[i].name; i++)
        full_table[n++] = sink_rows[i];
    full_table[n] = table[rows(table)]; /* EPW_CFG_END */
    table_built = 1;
}

const epw_cfg_key_t *collector_conf_table(void)
{
    if (!table_built)
        build_table();
    return full_table;
}

/* ---- alert rule overrides ---------------------------------------------------------------------
 */

/* The table of one [alerts.override.NAME] section over a collector_override_t: `hosts` and every
 * rule, without defaults (the struct starts as a copy of [alerts]). Names are malloc'd. */
static epw_cfg_key_t *ov_table(const char *name)
{
    const epw_cfg_key_t *rules = detect_rules_keys();
    size_t nr = rows(rules), i, len;
    epw_cfg_key_t *t = calloc(nr + 2, sizeof(*t));
    char *nm;

    if (!t)
        return NULL;
    len = strlen(OV_PREFIX) + strlen(name) + 1 + 32;
    for (i = 0; i <= nr; i++) {
        const char *key = i == 0 ? "hosts" : rules[i - 1].name;
        nm = malloc(len);
        if (!nm)
            goto fail;
        snprintf(nm, len, OV_PREFIX "%s.%s", name, key);
        if (i == 0) {
            t[0] = (epw_cfg_key_t)EPW_CFG_LIST(
                NULL, collector_override_t, hosts, NULL, EPW_CFG_REQUIRED,
                "host patterns (fnmatch globs on the agent identity) these rules apply to");
        } else {
            t[i] = rules[i - 1];
            t[i].offset += offsetof(collector_override_t, rules);
            t[i].def = NULL; /* inherited from [alerts], not the built-in default */
        }
        t[i].name = nm;
    }
    return t;
fail:
    for (i = 0; i <= nr; i++)
        free((char *)t[i].name);
    free(t);
    return NULL;
}

static void ov_table_free(epw_cfg_key_t *t)
{
    size_t i;

    if (!t)
        return;
    for (i = 0; t[i].name; i++)
        free((char *)t[i].name);
    free(t);
}

static void list_free(epw_cfg_list_t *list)
{
    size_t i;

    for (i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static void overrides_free(collector_conf_t *conf)
{
    size_t i;

    for (i = 0; i < conf->n_overrides; i++) {
        free(conf->overrides[i].name);
        list_free(&conf->overrides[i].hosts);
    }
    free(conf->overrides);
    conf->overrides = NULL;
    conf->n_overrides = 0;
}

static int valid_ov_name(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > OV_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
            return 0;
    return 1;
}

/* Index of override NAME (lower-cased on creation), created when missing; -1 out of memory. */
static int ov_index(collector_conf_t *conf, const char *name, size_t len)
{
    collector_override_t *o;
    size_t i;

    for (i = 0; i < conf->n_overrides; i++)
        if (strlen(conf->overrides[i].name) == len &&
            strncasecmp(conf->overrides[i].name, name, len) == 0)
            return (int)i;
    o = realloc(conf->overrides, (conf->n_overrides + 1) * sizeof(*o));
    if (!o)
        return -1;
    conf->overrides = o;
    o = &conf->overrides[conf->n_overrides];
    memset(o, 0, sizeof(*o));
    o->name = malloc(len + 1);
    if (!o->name)
        return -1;
    for (i = 0; i < len; i++)
        o->name[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    o->name[len] = '\0';
    return (int)conf->n_overrides++;
}

/*
 * Splits INI text: `main` gets every line outside [alerts.override.*] sections, owner[line] says
 * which override (index) a line belongs to, -1 for main. Lines taken out become empty lines, so
 * line numbers stay. A top-level `api_listen = off` becomes `api_listen =` (unset).
 */
typedef struct split_s {
    char *main;
    size_t len;
    int *owner;
    size_t nlines;
} split_t;

/* A top-level `api_listen` line (any value). */
static int is_api_listen_line(const char *b, const char *e)
{
    size_t kl = strlen("api_listen");

    if ((size_t)(e - b) < kl || strncasecmp(b, "api_listen", kl) != 0)
        return 0;
    b += kl;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    return b < e && (*b == '=' || *b == ':');
}

static int is_off_api_listen(const char *b, const char *e)
{
    const char *k = "api_listen", *v, *ve;
    size_t kl = strlen(k);

    if ((size_t)(e - b) < kl || strncasecmp(b, k, kl) != 0)
        return 0;
    b += kl;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    if (b == e || (*b != '=' && *b != ':'))
        return 0;
    v = b + 1;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    ve = v;
    while (ve < e && *ve != ';' && *ve != '#' && *ve != '\r')
        ve++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    return ve - v == 3 && strncasecmp(v, "off", 3) == 0;
}

static int split_text(collector_conf_t *conf, const char *buf, size_t len, split_t *out)
{
    size_t pos = 0, line = 0, cap = 64, o = 0;
    int cur = -1, top = 1;

    memset(out, 0, sizeof(*out));
    out->main = malloc(len + 1);
    out->owner = malloc(cap * sizeof(int));
    if (!out->main || !out->owner)
        return UV_ENOMEM;
    while (pos < len) {
        size_t b = pos, e;
        while (pos < len && buf[pos] != '\n')
            pos++;
        e = pos;
        if (pos < len)
            pos++;
        if (line == 0 && e - b >= 3 && memcmp(buf + b, "\xEF\xBB\xBF", 3) == 0) {
            memcpy(out->main + o, buf + b, 3); /* keep the BOM for inih */
            o += 3;
            b += 3;
        }
        if (b < e && buf[b] == '[') {
            const char *nb = buf + b + 1, *ne = memchr(nb, ']', e - b - 1);
            size_t pl = strlen(OV_PREFIX);
            top = 0;
            cur = -1;
            if (ne) {
                while (nb < ne && (*nb == ' ' || *nb == '\t'))
                    nb++;
                while (ne > nb && (ne[-1] == ' ' || ne[-1] == '\t'))
                    ne--;
                if ((size_t)(ne - nb) > pl && strncasecmp(nb, OV_PREFIX, pl) == 0 &&
                    valid_ov_name(nb + pl, (size_t)(ne - nb) - pl)) {
                    cur = ov_index(conf, nb + pl, (size_t)(ne - nb) - pl);
                    if (cur < 0)
                        return UV_ENOMEM;
                }
            }
        }
        if (line == cap) {
            int *grown = realloc(out->owner, (cap *= 2) * sizeof(int));
            if (!grown)
                return UV_ENOMEM;
            out->owner = grown;
        }
        out->owner[line++] = cur;
        if (cur < 0 && top && is_api_listen_line(buf + b, buf + e))
            conf->api_listen_explicit = true;
        if (cur < 0 && top && is_off_api_listen(buf + b, buf + e)) {
            memcpy(out->main + o, "api_listen =", 12);
            o += 12;
        } else if (cur < 0) {
            memcpy(out->main + o, buf + b, e - b);
            o += e - b;
        }
        if (e < len)
            out->main[o++] = '\n';
    }
    out->len = o;
    out->nlines = line;
    return 0;
}

/* The text of override `idx` only: its lines, every other line empty. */
static char *ov_text(const char *buf, size_t len, const split_t *sp, int idx, size_t *out_len)
{
    char *t = malloc(len + 1);
    size_t pos = 0, line = 0, o = 0;

    if (!t)
        return NULL;
    while (pos < len) {
        size_t b = pos, e;
        while (pos < len && buf[pos] != '\n')
            pos++;
        e = pos;
        if (pos < len)
            pos++;
        if (line < sp->nlines && sp->owner[line] == idx) {
            if (line == 0 && e - b >= 3 && memcmp(buf + b, "\xEF\xBB\xBF", 3) == 0)
                b += 3;
            memcpy(t + o, buf + b, e - b);
            o += e - b;
        }
        line++;
        if (e < len)
            t[o++] = '\n';
    }
    *out_len = o;
    return t;
}

static int read_conf_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen);

/* `--api_listen off` (any spelling epw_config accepts) means unset. */
static char empty_value[1];

static int is_api_listen_opt(const char *a, size_t n)
{
    return n == 12 && strncmp(a, "--api", 5) == 0 && (a[5] == '_' || a[5] == '-') &&
           strncasecmp(a + 6, "listen", 6) == 0;
}

static void args_off(collector_conf_t *conf, int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (strcmp(argv[i], "--") == 0)
            return;
        if (is_api_listen_opt(argv[i], eq ? (size_t)(eq - argv[i]) : strlen(argv[i])))
            conf->api_listen_explicit = true;
        if (eq && is_api_listen_opt(argv[i], (size_t)(eq - argv[i])) &&
            strcasecmp(eq + 1, "off") == 0)
            argv[i][eq - argv[i] + 1] = '\0';
        else if (!eq && is_api_listen_opt(argv[i], strlen(argv[i])) && i + 1 < argc &&
                 strcasecmp(argv[i + 1], "off") == 0)
            argv[i + 1] = empty_value;
    }
}

/* Override names mentioned on the command line (`--alerts.override.NAME.KEY`). */
static int args_overrides(collector_conf_t *conf, int argc, char **argv)
{
    size_t pl = strlen("--" OV_PREFIX);
    int i;

    for (i = 1; i < argc; i++) {
        const char *n, *dot;
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncasecmp(argv[i], "--" OV_PREFIX, pl) != 0)
            continue;
        n = argv[i] + pl;
        dot = strchr(n, '.');
        if (dot && valid_ov_name(n, (size_t)(dot - n)) && ov_index(conf, n, (size_t)(dot - n)) < 0)
            return UV_ENOMEM;
    }
    return 0;
}

int collector_conf_overrides(const collector_conf_t *conf, detect_override_t **out, size_t *n)
{
    size_t i, j, total = 0, k = 0;
    detect_override_t *ov;

    *out = NULL;
    *n = 0;
    for (i = 0; i < conf->n_overrides; i++)
        total += conf->overrides[i].hosts.count;
    if (!total)
        return 0;
    ov = calloc(total, sizeof(*ov));
    if (!ov)
        return UV_ENOMEM;
    for (i = 0; i < conf->n_overrides; i++)
        for (j = 0; j < conf->overrides[i].hosts.count; j++) {
            ov[k].pattern = conf->overrides[i].hosts.items[j];
            ov[k].rules = conf->overrides[i].rules;
            k++;
        }
    *out = ov;
    *n = k;
    return 0;
}

char *collector_conf_format(const collector_conf_t *conf)
{
    char *text = epw_config_format(collector_conf_table(), conf), *part, *joined;
    size_t i;

    for (i = 0; text && i < conf->n_overrides; i++) {
        epw_cfg_key_t *t = ov_table(conf->overrides[i].name);
        part = t ? epw_config_format(t, &conf->overrides[i]) : NULL;
        ov_table_free(t);
        joined = part ? malloc(strlen(text) + strlen(part) + 2) : NULL;
        if (joined)
            sprintf(joined, "%s\n%s", text, part);
        free(part);
        free(text);
        text = joined;
    }
    return text;
}

/* Applies every override: a copy of [alerts], then its file lines, then its options. */
static int load_overrides(collector_conf_t *conf, const char *buf, size_t len, const split_t *sp,
                          const char *path, int *argc, char **argv, int check, char *err,
                          size_t errlen)
{
    size_t i, tl;
    int rc = 0, r;

    for (i = 0; i < conf->n_overrides; i++) {
        collector_override_t *o = &conf->overrides[i];
        epw_cfg_key_t *t = ov_table(o->name);
        char *text = NULL;

        if (!t)
            return UV_ENOMEM;
        char msg[1024] = "";
        o->rules = conf->rules;
        r = 0;
        /* Each step into its own buffer: the epw_config functions start theirs afresh. */
        if (buf) {
            text = ov_text(buf, len, sp, (int)i, &tl);
            r = text ? epw_config_parse_buf(t, o, text, tl, path, msg, sizeof(msg)) : UV_ENOMEM;
        }
        if (r == 0)
            r = epw_config_parse_args(t, o, *argc, argv, argc, msg, sizeof(msg));
        if (r == 0 && check)
            r = epw_config_check(t, o, msg, sizeof(msg));
        if (r == 0 && check) {
            r = detect_rules_check(&o->rules, msg, sizeof(msg));
            if (r)
                append_err(err, errlen, "[%s%s]: ", OV_PREFIX, o->name);
        }
        append_err(err, errlen, "%s", msg);
        free(text);
        ov_table_free(t);
        if (r == UV_ENOMEM)
            return r;
        if (r && !rc)
            rc = r;
    }
    return rc;
}

int collector_conf_load(collector_conf_t *conf, int argc, char **argv, int *out_argc, int check,
                        char *err, size_t errlen)
{
    const epw_cfg_key_t *tab = collector_conf_table();
    const char *path;
    char *buf = NULL, msg[2048];
    size_t len = 0;
    split_t sp;
    int rc, bad = 0;

    /* Every step reports into `msg`, appended to `err`, so that one report holds the problems of
     * the file, the command line and the override sections together. */
    memset(&sp, 0, sizeof(sp));
    *out_argc = argc;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    overrides_free(conf);
    conf->api_listen_explicit = false;
    rc = epw_config_defaults(tab, conf, err, errlen);
    if (rc)
        goto out;
    path = epw_config_arg_value(argc, argv, "config");
    if (path != NULL) {
        rc = read_conf_file(path, &buf, &len, err, errlen);
        if (rc)
            goto out;
        rc = split_text(conf, buf, len, &sp);
        if (rc)
            goto out;
        msg[0] = '\0';
        rc = epw_config_parse_buf(tab, conf, sp.main, sp.len, path, msg, sizeof(msg));
        append_err(err, errlen, "%s", msg);
        if (rc == UV_ENOMEM)
            goto out;
        bad |= rc != 0;
    }
    args_off(conf, argc, argv);
    rc = args_overrides(conf, argc, argv);
    if (rc)
        goto out;
    msg[0] = '\0';
    rc = epw_config_parse_args(tab, conf, argc, argv, out_argc, msg, sizeof(msg));
    append_err(err, errlen, "%s", msg);
    if (rc == UV_ENOMEM)
        goto out;
    bad |= rc != 0;
    rc = load_overrides(conf, buf, len, &sp, path, out_argc, argv, check, err, errlen);
    if (rc == UV_ENOMEM)
        goto out;
    bad |= rc != 0;
    if (check && !bad) {
        msg[0] = '\0';
        if (epw_config_check(tab, conf, msg, sizeof(msg)))
            bad = 1;
        append_err(err, errlen, "%s", msg);
        msg[0] = '\0';
        if (detect_rules_check(&conf->rules, msg, sizeof(msg))) {
            append_err(err, errlen, "[alerts]: %s", msg);
            bad = 1;
        }
        msg[0] = '\0';
        if (sinks_conf_check(&conf->sinks, msg, sizeof(msg))) {
            append_err(err, errlen, "%s", msg);
            bad = 1;
        }
    }
    rc = bad ? EPW_E_CONFIG : 0;
out:
    free(buf);
    free(sp.main);
    free(sp.owner);
    return rc;
}

void collector_conf_free(collector_conf_t *conf)
{
    epw_config_free(collector_conf_table(), conf);
    overrides_free(conf);
}

/* ---- deny lists ----------------------------------------------------------------------------- */

void collector_deny_free(epw_cfg_list_t *list)
{
    size_t i;

    for (i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static int list_add(epw_cfg_list_t *list, const char *s, size_t len)
{
    char **items = realloc(list->items, (list->count + 1) * sizeof(*items));
    char *copy;

    if (items == NULL)
        return UV_ENOMEM;
    list->items = items;
    copy = malloc(len + 1);
    if (copy == NULL)
        return UV_ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    list->items[list->count++] = copy;
    return 0;
}

static int valid_id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == '_';
}

int collector_deny_parse(const char *buf, size_t len, const char *filename, epw_cfg_list_t *out,
                         char *err, size_t errlen)
{
    size_t pos = 0, line = 0, b, e, i;
    int rc = 0, bad = 0;

    out->items = NULL;
    out->count = 0;
    while (pos < len) {
        line++;
        b = pos;
        while (pos < len && buf[pos] != '\n')
            pos++;
        e = pos;
        if (pos < len)
            pos++; /* the '\n' */
        if (line == 1 && e - b >= 3 && memcmp(buf + b, "\xEF\xBB\xBF", 3) == 0)
            b += 3; /* UTF-8 BOM */
        while (b < e && (buf[b] == ' ' || buf[b] == '\t'))
            b++;
        while (e > b && (buf[e - 1] == ' ' || buf[e - 1] == '\t' || buf[e - 1] == '\r'))
            e--;
        if (b == e || buf[b] == '#' || buf[b] == ';')
            continue;
        for (i = b; i < e && valid_id_char(buf[i]); i++)
            ;
        if (i < e || e - b > ID_MAX) {
            append_err(err, errlen,
                       "%s:%zu: invalid identity (letters, digits, '.', '-', '_'; "
                       "at most %d characters)\n",
                       filename, line, ID_MAX);
            bad = 1;
            continue;
        }
        rc = list_add(out, buf + b, e - b);
        if (rc)
            goto out;
    }
    if (bad)
        rc = EPW_E_CONFIG;
out:
    if (rc)
        collector_deny_free(out);
    return rc;
}

static int read_file_max(const char *path, size_t max, char **out, size_t *out_len, char *err,
                         size_t errlen)
{
    FILE *f;
    char *buf = NULL;
    size_t n;
    int rc = 0;

    *out = NULL;
    *out_len = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        append_err(err, errlen, "%s: cannot read: %s\n", path, strerror(errno));
        return EPW_E_CONFIG;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        rc = UV_ENOMEM;
        goto out;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f) || n > max) {
        append_err(err, errlen, "%s: cannot read: %s\n", path,
                   ferror(f) ? "read error" : "too large");
        rc = EPW_E_CONFIG;
        goto out;
    }
    *out = buf;
    *out_len = n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

int collector_deny_load(const collector_conf_t *conf, epw_cfg_list_t *out, char *err, size_t errlen)
{
    epw_cfg_list_t file = {NULL, 0};
    char *buf = NULL;
    size_t len, i;
    int rc = 0;

    out->items = NULL;
    out->count = 0;
    for (i = 0; i < conf->deny.count; i++) {
        rc = list_add(out, conf->deny.items[i], strlen(conf->deny.items[i]));
        if (rc)
            goto out;
    }
    if (conf->deny_file == NULL)
        goto out;
    rc = read_file_max(conf->deny_file, DENY_FILE_MAX, &buf, &len, err, errlen);
    if (rc)
        goto out;
    rc = collector_deny_parse(buf, len, conf->deny_file, &file, err, errlen);
    if (rc)
        goto out;
    for (i = 0; i < file.count; i++) {
        rc = list_add(out, file.items[i], strlen(file.items[i]));
        if (rc)
            goto out;
    }
out:
    free(buf);
    collector_deny_free(&file);
    if (rc)
        collector_deny_free(out);
    return rc;
}

static int read_conf_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
    return read_file_max(path, CONF_FILE_MAX, out, out_len, err, errlen);
}
