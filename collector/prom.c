/* prom: Prometheus text exposition format writer (escaping, name checks, value formatting). */
#include "prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

struct prom_s {
    char *buf;
    size_t len;
    size_t cap;
    int err;
    char **families; /* names started so far, to refuse a family written twice */
    size_t n_families;
    size_t cap_families;
    int in_family;
};

int prom_create(prom_t **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : UV_ENOMEM;
}

static void forget_families(prom_t *w)
{
    size_t i;

    for (i = 0; i < w->n_families; i++)
        free(w->families[i]);
    w->n_families = 0;
    w->in_family = 0;
}

void prom_destroy(prom_t *w)
{
    if (!w)
        return;
    forget_families(w);
    free(w->families);
    free(w->buf);
    free(w);
}

static int fail(prom_t *w, int err)
{
    if (!w->err)
        w->err = err;
    return w->err;
}

static int put(prom_t *w, const char *s, size_t n)
{
    if (w->err)
        return w->err;
    if (n + 1 > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 1024;
        char *nb;
        while (n + 1 > cap - w->len)
            cap *= 2;
        nb = realloc(w->buf, cap);
        if (!nb)
            return fail(w, UV_ENOMEM);
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
    return 0;
}

static int puts_(prom_t *w, const char *s)
{
    return put(w, s, strlen(s));
}

/* Escapes '\' and newline, and '"' too when `quote` (label values). */
static int put_escaped(prom_t *w, const char *s, int quote)
{
    const char *run = s;
    int rc = 0;

    for (; *s && !rc; s++) {
        const char *esc = *s == '\\'             ? "\\\\"
                          : *s == '\n'           ? "\\n"
                          : (*s == '"' && quote) ? "\\\""
                                                 : NULL;
        if (!esc)
            continue;
        rc = put(w, run, (size_t)(s - run));
        if (!rc)
            rc = puts_(w, esc);
        run = s + 1;
    }
    return rc ? rc : puts_(w, run);
}

static int valid_name(const char *s, int metric)
{
    size_t i;

    if (!s || !*s)
        return 0;
    if (!metric && s[0] == '_' && s[1] == '_')
        return 0; /* reserved for Prometheus' own labels */
    for (i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (metric && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

int prom_family(prom_t *w, const char *name, prom_type_t type, const char *help)
{
    static const char *const types[] = {"gauge", "counter", "untyped"};
    char **nf;
    size_t i;
    int rc;

    if (w->err)
        return w->err;
    if (!valid_name(name, 1) || type < PROM_GAUGE || type > PROM_UNTYPED)
        return fail(w, UV_EINVAL);
    for (i = 0; i < w->n_families; i++)
        if (strcmp(w->families[i], name) == 0)
            return fail(w, UV_EINVAL);
    if (w->n_families == w->cap_families) {
        size_t cap = w->cap_families ? w->cap_families * 2 : 16;
        nf = realloc(w->families, cap * sizeof(*nf));
        if (!nf)
            return fail(w, UV_ENOMEM);
        w->families = nf;
        w->cap_families = cap;
    }
    w->families[w->n_families] = strdup(name);
    if (!w->families[w->n_families])
        return fail(w, UV_ENOMEM);
    w->n_families++;
    w->in_family = 1;
    rc = 0;
    if (help) {
        rc = puts_(w, "# HELP ");
        if (!rc)
            rc = puts_(w, name);
        if (!rc)
            rc = puts_(w, " ");
        if (!rc)
            rc = put_escaped(w, help, 0);
        if (!rc)
            rc = puts_(w, "\n");
    }
    if (!rc)
        rc = puts_(w, "# TYPE ");
    if (!rc)
        rc = puts_(w, name);
    if (!rc)
        rc = puts_(w, " ");
    if (!rc)
        rc = puts_(w, types[type]);
    if (!rc)
        rc = puts_(w, "\n");
    return rc;
}

void prom_format_value(double v, char *buf, size_t len)
{
    int prec;
    char *c;

    if (isnan(v)) {
        snprintf(buf, len, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, len, "%.0f", v);
        return;
    }
    for (prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* A locale with a decimal comma would break the format; %g has no other ','. */
    for (c = buf; *c; c++)
        if (*c == ',')
            *c = '.';
}

static int sample_head(prom_t *w, const prom_label_t *labels, size_t n)
{
    size_t i, j;
    int rc;

    if (w->err)
        return w->err;
    if (!w->in_family || (n > 0 && !labels))
        return fail(w, UV_EINVAL);
    for (i = 0; i < n; i++) {
        if (!valid_name(labels[i].name, 0) || !labels[i].value)
            return fail(w, UV_EINVAL);
        for (j = 0; j < i; j++)
            if (strcmp(labels[i].name, labels[j].name) == 0)
                return fail(w, UV_EINVAL);
    }
    rc = puts_(w, w->families[w->n_families - 1]);
    for (i = 0; i < n && !rc; i++) {
        rc = puts_(w, i == 0 ? "{" : ",");
        if (!rc)
            rc = puts_(w, labels[i].name);
        if (!rc)
            rc = puts_(w, "=\"");
        if (!rc)
            rc = put_escaped(w, labels[i].value, 1);
        if (!rc)
            rc = puts_(w, "\"");
    }
    if (!rc && n > 0)
        rc = puts_(w, "}");
    return rc ? rc : puts_(w, " ");
}

int prom_sample(prom_t *w, const prom_label_t *labels, size_t n_labels, double value)
{
    char num[40];
    int rc = sample_head(w, labels, n_labels);

    if (rc)
        return rc;
    prom_format_value(value, num, sizeof(num));
    rc = puts_(w, num);
    return rc ? rc : puts_(w, "\n");
}

int prom_sample_int(prom_t *w, const prom_label_t *labels, size_t n_labels, int64_t value)
{
    char num[32];
    int rc = sample_head(w, labels, n_labels);

    if (rc)
        return rc;
    snprintf(num, sizeof(num), "%" PRId64, value);
    rc = puts_(w, num);
    return rc ? rc : puts_(w, "\n");
}

const char *prom_text(const prom_t *w, size_t *len)
{
    if (len)
        *len = w->len;
    return w->buf ? w->buf : "";
}

char *prom_take(prom_t *w, size_t *len)
{
    char *t;

    if (len)
        *len = 0;
    if (w->err)
        return NULL;
    t = w->buf ? w->buf : strdup("");
    if (!t)
        return NULL;
    if (len)
        *len = w->len;
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    forget_families(w);
    return t;
}

int prom_error(const prom_t *w)
{
    return w->err;
}
