/* collector_conf: the collector's configuration table (INI file + --key options) and deny lists. */
#include "collector_conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "epw_err.h"

#define DENY_FILE_MAX (4u << 20)
#define ID_MAX        64

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
    EPW_CFG_INT("queue_max", C, queue_max, "4096", 1, 1000000,
                "snapshots queued for the database writer before agents are paused"),
    EPW_CFG_SIZE("queue_max_bytes", C, queue_max_bytes, "64MiB", 1024, INT64_C(4) << 30,
                 "bytes queued for the database writer before agents are paused"),
    EPW_CFG_INT("batch_max", C, batch_max, "512", 1, 100000, "items per database transaction"),
    EPW_CFG_END};
#undef C

const epw_cfg_key_t *collector_conf_table(void)
{
    return table;
}

int collector_conf_load(collector_conf_t *conf, int argc, char **argv, int *out_argc, int check,
                        char *err, size_t errlen)
{
    const char *path;
    int rc;

    *out_argc = argc;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    rc = epw_config_defaults(table, conf, err, errlen);
    if (rc)
        goto out;
    path = epw_config_arg_value(argc, argv, "config");
    if (path != NULL) {
        rc = epw_config_parse_file(table, conf, path, err, errlen);
        if (rc)
            goto out;
    }
    rc = epw_config_parse_args(table, conf, argc, argv, out_argc, err, errlen);
    if (rc)
        goto out;
    if (check)
        rc = epw_config_check(table, conf, err, errlen);
out:
    return rc;
}

void collector_conf_free(collector_conf_t *conf)
{
    epw_config_free(table, conf);
}

/* ---- deny lists ----------------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
append_err(char *err, size_t errlen, const char *fmt, ...);

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

static int read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
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
    buf = malloc(DENY_FILE_MAX + 1);
    if (buf == NULL) {
        rc = UV_ENOMEM;
        goto out;
    }
    n = fread(buf, 1, DENY_FILE_MAX + 1, f);
    if (ferror(f) || n > DENY_FILE_MAX) {
        append_err(err, errlen, "%s: cannot read: %s\n", path,
                   ferror(f) ? "read error" : "larger than 4 MiB");
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
    rc = read_file(conf->deny_file, &buf, &len, err, errlen);
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
