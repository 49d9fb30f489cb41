/* epw_config: table-driven configuration on top of inih; pure parsers, printer and help. */
#include "epw_attr.h"
#include "epw_config.h"
#include "epw_err.h"
#include "epw_util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>
#include <uv.h>

#define EPW__CFG_FIELD(conf, k, T) ((T *)(void *)((char *)(conf) + (k)->offset))
#define EPW__CFG_MSG               256 /* one value's error message */
#define EPW__CFG_HOST              256 /* longest host accepted in host:port */
#define EPW__CFG_MAX_FILE          (1u << 20)
#define EPW__CFG_WRAP              96 /* the printer wraps lists well below the inih line limit */

/* ---- small helpers ---------------------------------------------------------------------- */

/* Growable string for the printer and help; `oom` sticks so callers check once at the end. */
typedef struct epw__sb_s {
    char *p;
    size_t len, cap;
    int oom;
} epw__sb_t;

EPW_PRINTF(2, 3)
static void epw__sb_printf(epw__sb_t *sb, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (sb->oom)
        return;
    for (;;) {
        size_t room = sb->cap - sb->len;

        va_start(ap, fmt);
        n = vsnprintf(sb->p ? sb->p + sb->len : NULL, sb->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->oom = 1;
            return;
        }
        if (sb->p && (size_t)n < room) {
            sb->len += (size_t)n;
            return;
        }
        {
            size_t ncap = sb->cap ? sb->cap * 2 : 256;
            char *np;

            while (ncap < sb->len + (size_t)n + 1)
                ncap *= 2;
            np = realloc(sb->p, ncap);
            if (!np) {
                sb->oom = 1;
                return;
            }
            sb->p = np;
            sb->cap = ncap;
        }
    }
}

static char *epw__sb_take(epw__sb_t *sb)
{
    if (sb->oom || !sb->p) {
        free(sb->p);
        if (sb->oom)
            return NULL;
        return calloc(1, 1);
    }
    return sb->p;
}

/* Appends one line to the caller's error buffer; marks truncation with "...". */
EPW_PRINTF(3, 4)
static void epw__err_add(char *err, size_t errlen, const char *fmt, ...)
{
    size_t used;
    va_list ap;
    int n;

    if (!err || errlen == 0)
        return;
    used = strlen(err);
    if (used + 1 >= errlen)
        return;
    va_start(ap, fmt);
    n = vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 1 < errlen - used) {
        err[used + (size_t)n] = '\n';
        err[used + (size_t)n + 1] = '\0';
    } else if (errlen >= 5) {
        memcpy(err + errlen - 5, "...\n", 5);
    }
}

static int epw__lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* ASCII, case-insensitive; with `cli`, '-' equals '_'. Compares `a` (n bytes) to NUL-ended `b`. */
static int epw__name_eq(const char *a, size_t n, const char *b, int cli)
{
    size_t i;

    for (i = 0; i < n; i++) {
        int ca = epw__lower((unsigned char)a[i]), cb = epw__lower((unsigned char)b[i]);

        if (cb == '\0')
            return 0;
        if (cli) {
            ca = ca == '-' ? '_' : ca;
            cb = cb == '-' ? '_' : cb;
        }
        if (ca != cb)
            return 0;
    }
    return b[n] == '\0';
}

static const epw_cfg_key_t *epw__find(const epw_cfg_key_t *table, const char *name, size_t n,
                                      int cli)
{
    for (; table->name; table++) {
        if (epw__name_eq(name, n, table->name, cli))
            return table;
    }
    return NULL;
}

static size_t epw__nkeys(const epw_cfg_key_t *table)
{
    size_t n = 0;

    while (table[n].name)
        n++;
    return n;
}

static char *epw__strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void epw__list_clear(epw_cfg_list_t *l)
{
    size_t i;

    for (i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void epw__free_key(const epw_cfg_key_t *k, void *conf)
{
    switch (k->type) {
    case EPW_CFG_T_STRING: {
        char **s = EPW__CFG_FIELD(conf, k, char *);

        free(*s);
        *s = NULL;
        break;
    }
    case EPW_CFG_T_HOSTPORT: {
        epw_cfg_hostport_t *hp = EPW__CFG_FIELD(conf, k, epw_cfg_hostport_t);

        free(hp->host);
        hp->host = NULL;
        hp->port = 0;
        break;
    }
    case EPW_CFG_T_LIST:
        epw__list_clear(EPW__CFG_FIELD(conf, k, epw_cfg_list_t));
        break;
    default:
        break;
    }
}

static void epw__format_size(uint64_t v, char *buf, size_t len)
{
    if (v && v % (1ull << 30) == 0)
        snprintf(buf, len, "%" PRIu64 "G", v >> 30);
    else if (v && v % (1ull << 20) == 0)
        snprintf(buf, len, "%" PRIu64 "M", v >> 20);
    else if (v && v % (1ull << 10) == 0)
        snprintf(buf, len, "%" PRIu64 "K", v >> 10);
    else
        snprintf(buf, len, "%" PRIu64, v);
}

/* The range of a key as text ("1s..1h"), for errors and help. */
static void epw__format_range(const epw_cfg_key_t *k, char *buf, size_t len)
{
    char lo[32], hi[32];

    if (k->type == EPW_CFG_T_DURATION) {
        epw_format_duration((uint64_t)k->min, lo, sizeof(lo));
        epw_format_duration((uint64_t)k->max, hi, sizeof(hi));
    } else if (k->type == EPW_CFG_T_SIZE) {
        epw__format_size((uint64_t)k->min, lo, sizeof(lo));
        epw__format_size((uint64_t)k->max, hi, sizeof(hi));
    } else {
        snprintf(lo, sizeof(lo), "%" PRId64, k->min);
        snprintf(hi, sizeof(hi), "%" PRId64, k->max);
    }
    snprintf(buf, len, "%s..%s", lo, hi);
}

/* ---- setting one value ----------------------------------------------------------------- */

static int epw__parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    size_t i, n = strlen(v);

    for (i = 0; i < 4; i++) {
        if (epw__name_eq(v, n, yes[i], 0)) {
            *out = true;
            return 0;
        }
        if (epw__name_eq(v, n, no[i], 0)) {
            *out = false;
            return 0;
        }
    }
    return EPW_E_PARSE;
}

/* Appends the comma-separated items of `v` to `l` (items trimmed, empty ones skipped). */
static int epw__list_add(epw_cfg_list_t *l, const char *v)
{
    const char *p = v;

    while (*p) {
        const char *s = p, *e;
        char **ni;

        while (*p && *p != ',')
            p++;
        e = p;
        if (*p == ',')
            p++;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (e == s)
            continue;
        ni = realloc(l->items, (l->count + 1) * sizeof(*ni));
        if (!ni)
            return UV_ENOMEM;
        l->items = ni;
        l->items[l->count] = epw__strndup(s, (size_t)(e - s));
        if (!l->items[l->count])
            return UV_ENOMEM;
        l->count++;
    }
    return 0;
}

/*
 * Parses `v` for key `k` and stores it in `conf`; with `append` (a list continuation line) list
 * items are added instead of replacing. Returns 0, UV_ENOMEM, or EPW_E_CONFIG with a message (no
 * location) in msg.
 */
static int epw__set(const epw_cfg_key_t *k, void *conf, const char *v, int append, char *msg,
                    size_t msglen)
{
    char range[80];
    int rc = 0;

    msg[0] = '\0';
    snprintf(range, sizeof(range), "?");
    if (k->max > k->min)
        epw__format_range(k, range, sizeof(range));

    switch (k->type) {
    case EPW_CFG_T_STRING: {
        char **s = EPW__CFG_FIELD(conf, k, char *);
        char *copy = NULL;

        if (*v) {
            copy = epw__strndup(v, strlen(v));
            if (!copy)
                return UV_ENOMEM;
        }
        free(*s);
        *s = copy;
        break;
    }
    case EPW_CFG_T_BOOL: {
        bool b;

        if (epw__parse_bool(v, &b)) {
            snprintf(msg, msglen, "bad boolean '%.60s' (expected true/false, yes/no, on/off, 1/0)",
                     v);
            return EPW_E_CONFIG;
        }
        *EPW__CFG_FIELD(conf, k, bool) = b;
        break;
    }
    case EPW_CFG_T_INT: {
        int64_t lo = k->max > k->min ? k->min : INT_MIN, hi = k->max > k->min ? k->max : INT_MAX;
        long long x;
        char *end;

        errno = 0;
        x = strtoll(v, &end, 10);
        if (!*v || isspace((unsigned char)*v) || *end || errno == ERANGE) {
            snprintf(msg, msglen, "bad integer '%.60s'", v);
            return EPW_E_CONFIG;
        }
        if (x < lo || x > hi || x < INT_MIN || x > INT_MAX) {
            snprintf(msg, msglen, "%" PRId64 " out of range (%" PRId64 "..%" PRId64 ")", (int64_t)x,
                     lo, hi);
            return EPW_E_CONFIG;
        }
        *EPW__CFG_FIELD(conf, k, int) = (int)x;
        break;
    }
    case EPW_CFG_T_DURATION:
    case EPW_CFG_T_SIZE: {
        int dur = k->type == EPW_CFG_T_DURATION;
        uint64_t x;

        if (dur ? epw_parse_duration(v, &x) : epw_parse_size(v, &x)) {
            if (dur)
                snprintf(msg, msglen, "bad duration '%.60s' (expected e.g. 250ms, 10s, 5m, 2h, 7d)",
                         v);
            else
                snprintf(msg, msglen, "bad size '%.60s' (expected e.g. 4096, 512K, 64M, 1G)", v);
            return EPW_E_CONFIG;
        }
        if (k->max > k->min && (x < (uint64_t)k->min || x > (uint64_t)k->max)) {
            snprintf(msg, msglen, "'%.60s' out of range (%s)", v, range);
            return EPW_E_CONFIG;
        }
        *EPW__CFG_FIELD(conf, k, uint64_t) = x;
        break;
    }
    case EPW_CFG_T_HOSTPORT: {
        epw_cfg_hostport_t *hp = EPW__CFG_FIELD(conf, k, epw_cfg_hostport_t);
        char host[EPW__CFG_HOST];
        uint16_t port = 0;
        char *copy = NULL;

        if (*v) {
            if (epw_parse_hostport(v, host, sizeof(host), &port)) {
                snprintf(msg, msglen,
                         "bad address '%.60s' (expected host:port, [v6addr]:port or :port)", v);
                return EPW_E_CONFIG;
            }
            copy = epw__strndup(host, strlen(host));
            if (!copy)
                return UV_ENOMEM;
        }
        free(hp->host);
        hp->host = copy;
        hp->port = port;
        break;
    }
    case EPW_CFG_T_ENUM: {
        size_t i, n = strlen(v);

        for (i = 0; k->choices && k->choices[i]; i++) {
            if (epw__name_eq(v, n, k->choices[i], 0)) {
                *EPW__CFG_FIELD(conf, k, int) = (int)i;
                return 0;
            }
        }
        {
            size_t used = (size_t)snprintf(msg, msglen, "bad value '%.60s' (one of:", v);

            for (i = 0; k->choices && k->choices[i] && used < msglen; i++)
                used += (size_t)snprintf(msg + used, msglen - used, " %s", k->choices[i]);
            if (used < msglen)
                snprintf(msg + used, msglen - used, ")");
        }
        return EPW_E_CONFIG;
    }
    case EPW_CFG_T_LIST: {
        epw_cfg_list_t *l = EPW__CFG_FIELD(conf, k, epw_cfg_list_t);

        if (!append)
            epw__list_clear(l);
        rc = epw__list_add(l, v);
        break;
    }
    default:
        snprintf(msg, msglen, "bad key type %d in the table", (int)k->type);
        return EPW_E_INTERNAL;
    }
    return rc;
}

/* ---- defaults, free, check ------------------------------------------------------------- */

int epw_config_defaults(const epw_cfg_key_t *table, void *conf, char *err, size_t errlen)
{
    char msg[EPW__CFG_MSG];
    const epw_cfg_key_t *k;
    int rc = 0, r;

    if (err && errlen)
        err[0] = '\0';
    for (k = table; k->name; k++) {
        const epw_cfg_key_t *dup = epw__find(table, k->name, strlen(k->name), 0);

        epw__free_key(k, conf);
        if (dup != k) {
            epw__err_add(err, errlen, "config table: key '%s': listed twice", k->name);
            rc = EPW_E_INTERNAL;
            continue;
        }
        if (k->type < EPW_CFG_T_STRING || k->type > EPW_CFG_T_LIST ||
            (k->type == EPW_CFG_T_ENUM && (!k->choices || !k->choices[0]))) {
            epw__err_add(err, errlen, "config table: key '%s': bad type or no choices", k->name);
            rc = EPW_E_INTERNAL;
            continue;
        }
        if (!k->def) {
            /* Unset: NULL strings/lists were freed above; scalars become zero. */
            switch (k->type) {
            case EPW_CFG_T_BOOL:
                *EPW__CFG_FIELD(conf, k, bool) = false;
                break;
            case EPW_CFG_T_INT:
            case EPW_CFG_T_ENUM:
                *EPW__CFG_FIELD(conf, k, int) = 0;
                break;
            case EPW_CFG_T_DURATION:
            case EPW_CFG_T_SIZE:
                *EPW__CFG_FIELD(conf, k, uint64_t) = 0;
                break;
            default:
                break;
            }
            continue;
        }
        r = epw__set(k, conf, k->def, 0, msg, sizeof(msg));
        if (r == UV_ENOMEM)
            return r;
        if (r) {
            epw__err_add(err, errlen, "config table: key '%s': default: %s", k->name, msg);
            rc = EPW_E_INTERNAL;
        }
    }
    return rc;
}

void epw_config_free(const epw_cfg_key_t *table, void *conf)
{
    for (; table && table->name; table++)
        epw__free_key(table, conf);
}

int epw_config_check(const epw_cfg_key_t *table, const void *conf, char *err, size_t errlen)
{
    const epw_cfg_key_t *k;
    int rc = 0;

    if (err && errlen)
        err[0] = '\0';
    for (k = table; k->name; k++) {
        int unset = 0;

        if (!(k->flags & EPW_CFG_REQUIRED))
            continue;
        if (k->type == EPW_CFG_T_STRING)
            unset = *EPW__CFG_FIELD(conf, k, char *const) == NULL;
        else if (k->type == EPW_CFG_T_HOSTPORT)
            unset = EPW__CFG_FIELD(conf, k, const epw_cfg_hostport_t)->host == NULL;
        else if (k->type == EPW_CFG_T_LIST)
            unset = EPW__CFG_FIELD(conf, k, const epw_cfg_list_t)->count == 0;
        if (unset) {
            epw__err_add(err, errlen,
                         "key '%s': required but not set (in the config file or with --%s)",
                         k->name, k->name);
            rc = EPW_E_CONFIG;
        }
    }
    return rc;
}

/* ---- INI parsing ----------------------------------------------------------------------- */

typedef struct epw__cfg_err_s {
    int line;
    size_t order;
    char *text;
} epw__cfg_err_t;

typedef struct epw__parse_s {
    const epw_cfg_key_t *table;
    void *conf;
    const char *filename;
    const char *buf;
    size_t len, pos;
    int lineno;
    int indented;              /* the current line starts with whitespace */
    const epw_cfg_key_t *last; /* key of the previous `name = value` line (continuations) */
    int have_last;             /* a previous `name = value` line exists in this section */
    int *seen;                 /* per key: line where the file set it, 0 if not */
    epw__cfg_err_t *errs;
    size_t nerrs;
    int oom;
} epw__parse_t;

EPW_PRINTF(3, 4)
static void epw__perr(epw__parse_t *ps, int line, const char *fmt, ...)
{
    char text[EPW__CFG_MSG + 200];
    epw__cfg_err_t *ne;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ne = realloc(ps->errs, (ps->nerrs + 1) * sizeof(*ne));
    if (!ne) {
        ps->oom = 1;
        return;
    }
    ps->errs = ne;
    ne[ps->nerrs].line = line;
    ne[ps->nerrs].order = ps->nerrs;
    ne[ps->nerrs].text = epw__strndup(text, strlen(text));
    if (!ne[ps->nerrs].text) {
        ps->oom = 1;
        return;
    }
    ps->nerrs++;
}

static int epw__errcmp(const void *a, const void *b)
{
    const epw__cfg_err_t *x = a, *y = b;

    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

/*
 * inih line reader over the buffer. Counting lines here gives the handler its line number (the
 * Debian build has INI_HANDLER_LINENO off), and lets us refuse lines that inih would otherwise
 * split at INI_MAX_LINE and NUL bytes that would silently cut a line short.
 */
static char *epw__reader(char *str, int num, void *stream)
{
    epw__parse_t *ps = stream;
    const char *line, *nl, *p;
    size_t n, content, limit;

    if (ps->pos >= ps->len || num < 4)
        return NULL;
    line = ps->buf + ps->pos;
    nl = memchr(line, '\n', ps->len - ps->pos);
    n = nl ? (size_t)(nl - line) + 1 : ps->len - ps->pos;
    ps->pos += n;
    ps->lineno++;
    ps->indented = 0;

    content = n;
    if (content && line[content - 1] == '\n')
        content--;
    if (content && line[content - 1] == '\r')
        content--;
    limit = (size_t)num - 3;
    if (memchr(line, '\0', n)) {
        epw__perr(ps, ps->lineno, "%s:%d: NUL byte in line", ps->filename, ps->lineno);
        memcpy(str, "\n", 2);
        return str;
    }
    if (content > limit) {
        epw__perr(ps, ps->lineno,
                  "%s:%d: line longer than %u characters (split list values over "
                  "indented lines)",
                  ps->filename, ps->lineno, (unsigned)limit);
        memcpy(str, "\n", 2);
        return str;
    }
    memcpy(str, line, n);
    str[n] = '\0';

    p = str;
    if (ps->lineno == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF)
        p += 3;
    ps->indented = isspace((unsigned char)*p) != 0;
    while (isspace((unsigned char)*p))
        p++;
    /* inih forgets the previous name at a section header, but an indented line after a name is
     * a continuation first, even when it starts with '['. */
    if (*p == '[' && !(ps->indented && ps->have_last))
        ps->have_last = 0;
    return str;
}

static int epw__handler(void *user, const char *section, const char *name, const char *value)
{
    epw__parse_t *ps = user;
    char full[160], msg[EPW__CFG_MSG];
    const epw_cfg_key_t *k;
    int r, n;

    if (ps->oom)
        return 1;
    n = snprintf(full, sizeof(full), "%s%s%s", section, *section ? "." : "", name);
    if (n < 0 || (size_t)n >= sizeof(full))
        n = (int)strlen(full);

    if (ps->indented && ps->have_last) {
        /* inih treats an indented line after `name = value` as a continuation of that name. */
        k = ps->last;
        if (!k)
            return 1; /* continuing an unknown key: already reported */
        if (k->type != EPW_CFG_T_LIST) {
            epw__perr(ps, ps->lineno,
                      "%s:%d: key '%s': unexpected indented line (only lists continue on the "
                      "next line; remove the indentation)",
                      ps->filename, ps->lineno, k->name);
            return 1;
        }
        {
            /* inih (r55) does not strip inline comments on continuation lines; do it here so a
             * value means the same wherever it sits. */
            char cont[512];
            size_t i, n2 = strlen(value);

            if (n2 >= sizeof(cont))
                n2 = sizeof(cont) - 1;
            memcpy(cont, value, n2);
            cont[n2] = '\0';
            for (i = 1; i < n2; i++) {
                if (cont[i] == ';' && isspace((unsigned char)cont[i - 1])) {
                    cont[i] = '\0';
                    break;
                }
            }
            r = epw__set(k, ps->conf, cont, 1, msg, sizeof(msg));
        }
    } else {
        k = epw__find(ps->table, full, (size_t)n, 0);
        ps->last = k;
        ps->have_last = 1;
        if (!k) {
            epw__perr(ps, ps->lineno, "%s:%d: key '%s': unknown key", ps->filename, ps->lineno,
                      full);
            return 1;
        }
        if (ps->seen[k - ps->table]) {
            epw__perr(ps, ps->lineno, "%s:%d: key '%s': duplicate (first set on line %d)",
                      ps->filename, ps->lineno, k->name, ps->seen[k - ps->table]);
            ps->last = NULL; /* do not let continuation lines extend the ignored duplicate */
            return 1;
        }
        ps->seen[k - ps->table] = ps->lineno;
        r = epw__set(k, ps->conf, value, 0, msg, sizeof(msg));
    }
    if (r == UV_ENOMEM)
        ps->oom = 1;
    else if (r)
        epw__perr(ps, ps->lineno, "%s:%d: key '%s': %s", ps->filename, ps->lineno, k->name, msg);
    /* Always "success" for inih: our errors are collected above, so inih's own result names
     * only lines that are not key/value pairs at all. */
    return 1;
}

int epw_config_parse_buf(const epw_cfg_key_t *table, void *conf, const char *buf, size_t len,
                         const char *filename, char *err, size_t errlen)
{
    epw__parse_t ps;
    size_t i;
    int rc = 0, r;

    if (err && errlen)
        err[0] = '\0';
    memset(&ps, 0, sizeof(ps));
    ps.table = table;
    ps.conf = conf;
    ps.filename = filename ? filename : "<config>";
    ps.buf = buf;
    ps.len = buf ? len : 0;
    ps.seen = calloc(epw__nkeys(table) + 1, sizeof(*ps.seen));
    if (!ps.seen)
        return UV_ENOMEM;

    r = ini_parse_stream(epw__reader, &ps, epw__handler, &ps);
    if (r == -2 || ps.oom) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (r > 0)
        epw__perr(&ps, r, "%s:%d: syntax error (expected 'key = value', '[section]' or a comment)",
                  ps.filename, r);
    if (ps.oom) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (ps.nerrs) {
        qsort(ps.errs, ps.nerrs, sizeof(*ps.errs), epw__errcmp);
        for (i = 0; i < ps.nerrs; i++)
            epw__err_add(err, errlen, "%s", ps.errs[i].text);
        rc = EPW_E_CONFIG;
    }

out:
    for (i = 0; i < ps.nerrs; i++)
        free(ps.errs[i].text);
    free(ps.errs);
    free(ps.seen);
    return rc;
}

int epw_config_parse_file(const epw_cfg_key_t *table, void *conf, const char *path, char *err,
                          size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    f = fopen(path, "rb");
    if (!f) {
        epw__err_add(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return EPW_E_CONFIG;
    }
    buf = malloc(EPW__CFG_MAX_FILE + 1);
    if (!buf) {
        rc = UV_ENOMEM;
        goto out;
    }
    len = fread(buf, 1, EPW__CFG_MAX_FILE + 1, f);
    if (ferror(f)) {
        epw__err_add(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = EPW_E_CONFIG;
        goto out;
    }
    if (len > EPW__CFG_MAX_FILE) {
        epw__err_add(err, errlen, "%s: larger than %u bytes", path, EPW__CFG_MAX_FILE);
        rc = EPW_E_CONFIG;
        goto out;
    }
    rc = epw_config_parse_buf(table, conf, buf, len, path, err, errlen);

out:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- command line ---------------------------------------------------------------------- */

int epw_config_parse_args(const epw_cfg_key_t *table, void *conf, int argc, char **argv,
                          int *out_argc, char *err, size_t errlen)
{
    char msg[EPW__CFG_MSG];
    int i, w = argc > 0 ? 1 : 0, rc = 0, r;
    unsigned char *seen;

    if (err && errlen)
        err[0] = '\0';
    *out_argc = argc;
    seen = calloc(epw__nkeys(table) + 1, 1);
    if (!seen)
        return UV_ENOMEM;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *v;
        const epw_cfg_key_t *k;
        size_t n;

        if (strcmp(a, "--") == 0) {
            while (i < argc)
                argv[w++] = argv[i++];
            break;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            argv[w++] = argv[i];
            continue;
        }
        name = a + 2;
        eq = strchr(name, '=');
        n = eq ? (size_t)(eq - name) : strlen(name);
        k = epw__find(table, name, n, 1);
        if (!k) {
            argv[w++] = argv[i];
            continue;
        }
        if (eq) {
            v = eq + 1;
        } else if (k->type == EPW_CFG_T_BOOL) {
            /* "--flag" alone means true; "--flag false" (as --help's "--flag BOOL" suggests)
             * takes the word when it is a boolean, so a file's true can be overridden. */
            bool ignored;
            v = "true";
            if (i + 1 < argc && epw__parse_bool(argv[i + 1], &ignored) == 0)
                v = argv[++i];
        } else if (i + 1 < argc)
            v = argv[++i];
        else {
            epw__err_add(err, errlen, "command line: key '%s': missing value after --%.*s", k->name,
                         (int)n, name);
            rc = EPW_E_CONFIG;
            continue;
        }
        if (seen[k - table]) {
            epw__err_add(err, errlen, "command line: key '%s': given twice", k->name);
            rc = EPW_E_CONFIG;
            continue;
        }
        seen[k - table] = 1;
        r = epw__set(k, conf, v, 0, msg, sizeof(msg));
        if (r == UV_ENOMEM) {
            rc = r;
            break;
        }
        if (r) {
            epw__err_add(err, errlen, "command line: key '%s': %s", k->name, msg);
            rc = EPW_E_CONFIG;
        }
    }
    if (rc == UV_ENOMEM) {
        /* Keep the argv contract even on this path: pass the unprocessed rest through. */
        for (i++; i < argc; i++)
            argv[w++] = argv[i];
    }
    if (w < argc)
        argv[w] = NULL;
    *out_argc = w;
    free(seen);
    return rc;
}

const char *epw_config_arg_value(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--") == 0)
            break;
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
            continue;
        if (a[2 + n] == '=')
            return a + 3 + n;
        if (a[2 + n] == '\0' && i + 1 < argc)
            return argv[i + 1];
    }
    return NULL;
}

/* ---- printer and help ------------------------------------------------------------------ */

static void epw__print_value(epw__sb_t *sb, const epw_cfg_key_t *k, const void *conf, size_t col)
{
    char buf[64];

    switch (k->type) {
    case EPW_CFG_T_STRING: {
        const char *s = *EPW__CFG_FIELD(conf, k, char *const);

        epw__sb_printf(sb, "%s", s ? s : "");
        break;
    }
    case EPW_CFG_T_BOOL:
        epw__sb_printf(sb, "%s", *EPW__CFG_FIELD(conf, k, const bool) ? "true" : "false");
        break;
    case EPW_CFG_T_INT:
        epw__sb_printf(sb, "%d", *EPW__CFG_FIELD(conf, k, const int));
        break;
    case EPW_CFG_T_DURATION:
        epw_format_duration(*EPW__CFG_FIELD(conf, k, const uint64_t), buf, sizeof(buf));
        epw__sb_printf(sb, "%s", buf);
        break;
    case EPW_CFG_T_SIZE:
        epw__format_size(*EPW__CFG_FIELD(conf, k, const uint64_t), buf, sizeof(buf));
        epw__sb_printf(sb, "%s", buf);
        break;
    case EPW_CFG_T_HOSTPORT: {
        const epw_cfg_hostport_t *hp = EPW__CFG_FIELD(conf, k, const epw_cfg_hostport_t);

        if (!hp->host)
            break;
        /* Brackets when the host itself would confuse the parser (IPv6, a leading '['). */
        if (strchr(hp->host, ':') || hp->host[0] == '[')
            epw__sb_printf(sb, "[%s]:%u", hp->host, (unsigned)hp->port);
        else
            epw__sb_printf(sb, "%s:%u", hp->host, (unsigned)hp->port);
        break;
    }
    case EPW_CFG_T_ENUM: {
        int v = *EPW__CFG_FIELD(conf, k, const int);
        int i;

        for (i = 0; k->choices[i] && i < v; i++)
            ;
        if (v >= 0 && k->choices[i])
            epw__sb_printf(sb, "%s", k->choices[i]);
        else
            epw__sb_printf(sb, "%d", v);
        break;
    }
    case EPW_CFG_T_LIST: {
        const epw_cfg_list_t *l = EPW__CFG_FIELD(conf, k, const epw_cfg_list_t);
        size_t i;

        /* Long lists wrap onto indented continuation lines, which the parser reads back. */
        for (i = 0; i < l->count; i++) {
            size_t ilen = strlen(l->items[i]);

            /* Never " ;" (an inline comment) nor a continuation line starting with ';' or '#'
             * (a comment line): such items follow a bare comma. */
            int quiet = l->items[i][0] == ';' || l->items[i][0] == '#';

            if (i && col + ilen + 2 > EPW__CFG_WRAP && !quiet) {
                epw__sb_printf(sb, ",\n    ");
                col = 4;
            } else if (i) {
                epw__sb_printf(sb, quiet ? "," : ", ");
                col += 2;
            }
            epw__sb_printf(sb, "%s", l->items[i]);
            col += ilen;
        }
        break;
    }
    default:
        break;
    }
}

static void epw__print_key(epw__sb_t *sb, const epw_cfg_key_t *k, const void *conf,
                           const char *shown)
{
    if (k->flags & EPW_CFG_SECRET) {
        epw__sb_printf(sb, "# %s = (hidden)\n", shown);
        return;
    }
    {
        epw__sb_t v = {NULL, 0, 0, 0};

        epw__print_value(&v, k, conf, strlen(shown) + 3);
        if (v.oom)
            sb->oom = 1;
        /* "key = ;x" would read back as a comment; "key =;x" is the value ";x". */
        epw__sb_printf(sb, "%s =%s%s\n", shown, v.p && v.p[0] == ';' ? "" : " ", v.p ? v.p : "");
        free(v.p);
    }
}

char *epw_config_format(const epw_cfg_key_t *table, const void *conf)
{
    epw__sb_t sb = {NULL, 0, 0, 0};
    const epw_cfg_key_t *k, *j;

    epw__sb_printf(&sb, "# effective configuration\n");
    for (k = table; k->name; k++) {
        if (!strrchr(k->name, '.'))
            epw__print_key(&sb, k, conf, k->name);
    }
    for (k = table; k->name; k++) {
        const char *dot = strrchr(k->name, '.');
        size_t slen;
        int printed = 0;

        if (!dot)
            continue;
        slen = (size_t)(dot - k->name);
        /* A section is printed once, at its first key in table order. */
        for (j = table; j < k; j++) {
            const char *jd = strrchr(j->name, '.');

            if (jd && (size_t)(jd - j->name) == slen && strncmp(j->name, k->name, slen) == 0)
                printed = 1;
        }
        if (printed)
            continue;
        epw__sb_printf(&sb, "\n[%.*s]\n", (int)slen, k->name);
        for (j = k; j->name; j++) {
            const char *jd = strrchr(j->name, '.');

            if (jd && (size_t)(jd - j->name) == slen && strncmp(j->name, k->name, slen) == 0)
                epw__print_key(&sb, j, conf, jd + 1);
        }
    }
    return epw__sb_take(&sb);
}

char *epw_config_help(const epw_cfg_key_t *table)
{
    static const char *const meta[] = {"",     "STRING",    "BOOL", "INT", "DURATION",
                                       "SIZE", "HOST:PORT", "",     "LIST"};
    epw__sb_t sb = {NULL, 0, 0, 0};
    const epw_cfg_key_t *k;

    for (k = table; k->name; k++) {
        char range[80];
        int i;

        epw__sb_printf(&sb, "  --%s ", k->name);
        if (k->type == EPW_CFG_T_ENUM) {
            for (i = 0; k->choices && k->choices[i]; i++)
                epw__sb_printf(&sb, "%s%s", i ? "|" : "", k->choices[i]);
        } else if (k->type >= EPW_CFG_T_STRING && k->type <= EPW_CFG_T_LIST) {
            epw__sb_printf(&sb, "%s", meta[k->type]);
        }
        epw__sb_printf(&sb, "\n        %s", k->help ? k->help : "");
        if (k->flags & EPW_CFG_REQUIRED)
            epw__sb_printf(&sb, " (required)");
        else if (k->def && *k->def)
            epw__sb_printf(&sb, " (default: %s)", k->def);
        else
            epw__sb_printf(&sb, " (default: none)");
        if (k->max > k->min && (k->type == EPW_CFG_T_INT || k->type == EPW_CFG_T_DURATION ||
                                k->type == EPW_CFG_T_SIZE)) {
            epw__format_range(k, range, sizeof(range));
            epw__sb_printf(&sb, " (range: %s)", range);
        }
        epw__sb_printf(&sb, "\n");
    }
    return epw__sb_take(&sb);
}
