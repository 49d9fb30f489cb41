/* http_router: a small table of routes matched segment by segment. */
#include "http_router.h"

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define MAX_SEGS   16
#define MAX_PARAMS 8

typedef struct route_s {
    http_method_t method;
    unsigned flags;
    http_handler_cb handler;
    void *ud;
    char *pattern;
    size_t n_segs;
    char *segs[MAX_SEGS]; /* literal text, or the parameter name when is_param */
    int is_param[MAX_SEGS];
} route_t;

struct http_router_s {
    route_t *routes;
    size_t n_routes;
    size_t cap;
    char *token;
};

int http_router_create(http_router_t **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : UV_ENOMEM;
}

static void route_free(route_t *rt)
{
    size_t i;

    for (i = 0; i < rt->n_segs; i++)
        free(rt->segs[i]);
    free(rt->pattern);
}

void http_router_destroy(http_router_t *r)
{
    size_t i;

    if (!r)
        return;
    for (i = 0; i < r->n_routes; i++)
        route_free(&r->routes[i]);
    free(r->routes);
    free(r->token);
    free(r);
}

int http_router_set_token(http_router_t *r, const char *token)
{
    char *t = NULL;

    if (token && *token) {
        t = strdup(token);
        if (!t)
            return UV_ENOMEM;
    }
    free(r->token);
    r->token = t;
    return 0;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Splits a pattern into rt->segs. */
static int parse_pattern(route_t *rt, const char *pattern)
{
    const char *s = pattern + 1;
    size_t params = 0;

    if (pattern[0] != '/')
        return UV_EINVAL;
    if (*s == '\0')
        return 0; /* "/" */
    for (;;) {
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        int param = len >= 2 && s[0] == '{' && s[len - 1] == '}';
        size_t i;
        if (len == 0 || rt->n_segs >= MAX_SEGS)
            return UV_EINVAL;
        if (param) {
            if (len == 2 || ++params > MAX_PARAMS)
                return UV_EINVAL;
            for (i = 1; i + 1 < len; i++)
                if (!is_name_char(s[i]))
                    return UV_EINVAL;
            rt->segs[rt->n_segs] = strndup(s + 1, len - 2);
        } else {
            if (memchr(s, '{', len) || memchr(s, '}', len))
                return UV_EINVAL;
            rt->segs[rt->n_segs] = strndup(s, len);
        }
        if (!rt->segs[rt->n_segs])
            return UV_ENOMEM;
        rt->is_param[rt->n_segs] = param;
        rt->n_segs++;
        if (!end)
            return 0;
        s = end + 1;
    }
}

int http_router_add(http_router_t *r, http_method_t method, const char *pattern, unsigned flags,
                    http_handler_cb handler, void *ud)
{
    route_t rt;
    size_t i;
    int rc;

    memset(&rt, 0, sizeof(rt));
    if (!handler || !pattern || method < HTTP_METHOD_GET || method > HTTP_METHOD_OPTIONS)
        return UV_EINVAL;
    for (i = 0; i < r->n_routes; i++)
        if (r->routes[i].method == method && strcmp(r->routes[i].pattern, pattern) == 0)
            return UV_EEXIST;
    rc = parse_pattern(&rt, pattern);
    if (rc)
        goto out;
    rt.pattern = strdup(pattern);
    if (!rt.pattern) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (r->n_routes == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        route_t *nr = realloc(r->routes, cap * sizeof(*nr));
        if (!nr) {
            rc = UV_ENOMEM;
            goto out;
        }
        r->routes = nr;
        r->cap = cap;
    }
    rt.method = method;
    rt.flags = flags;
    rt.handler = handler;
    rt.ud = ud;
    r->routes[r->n_routes++] = rt;
    return 0;
out:
    route_free(&rt);
    return rc;
}

/* The decoded segments of a raw path, in one buffer. n = MAX_SEGS + 1 when there are too many. */
typedef struct segs_s {
    char *buf;
    size_t n;
    char *seg[MAX_SEGS];
} segs_t;

static int split_path(const char *raw, segs_t *sg)
{
    size_t len = strlen(raw);
    const char *s = raw + 1;
    char *o;

    sg->n = 0;
    sg->buf = malloc(len + 1);
    if (!sg->buf)
        return UV_ENOMEM;
    o = sg->buf;
    if (*s == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(s, '/');
        size_t slen = end ? (size_t)(end - s) : strlen(s), dl;
        if (sg->n == MAX_SEGS) {
            sg->n = MAX_SEGS + 1;
            return 0;
        }
        /* The parser already decoded the whole path once, so this cannot fail. */
        if (http_pct_decode(s, slen, 0, o, &dl))
            return UV_EINVAL;
        sg->seg[sg->n++] = o;
        o += dl + 1;
        if (!end)
            return 0;
        s = end + 1;
    }
}

static int route_matches(const route_t *rt, const segs_t *sg)
{
    size_t i;

    if (sg->n != rt->n_segs)
        return 0;
    for (i = 0; i < rt->n_segs; i++) {
        if (rt->is_param[i] ? sg->seg[i][0] == '\0' : strcmp(rt->segs[i], sg->seg[i]) != 0)
            return 0;
    }
    return 1;
}

static const char *const method_text[] = {"",    "GET",    "HEAD",  "POST",
                                          "PUT", "DELETE", "PATCH", "OPTIONS"};

static int send_405(const http_router_t *r, const segs_t *sg, http_ctx_t *ctx)
{
    char allow[80] = "";
    int seen[HTTP_METHOD_OPTIONS + 1] = {0};
    http_hdr_t hdr = {"Allow", allow};
    size_t i;
    int m;

    for (i = 0; i < r->n_routes; i++)
        if (route_matches(&r->routes[i], sg))
            seen[r->routes[i].method] = 1;
    if (seen[HTTP_METHOD_GET])
        seen[HTTP_METHOD_HEAD] = 1;
    for (m = HTTP_METHOD_GET; m <= HTTP_METHOD_OPTIONS; m++) {
        if (!seen[m])
            continue;
        if (allow[0])
            strcat(allow, ", ");
        strcat(allow, method_text[m]); /* 7 names, at most 44 bytes with separators */
    }
    http_resp_send_error_hdrs(ctx, 405, "method not allowed", &hdr, 1);
    return 405;
}

int http_router_dispatch(const http_router_t *r, http_ctx_t *ctx)
{
    const http_req_t *req = http_ctx_req(ctx);
    const route_t *hit = NULL, *get_hit = NULL;
    int path_hit = 0, status = 0, rc;
    segs_t sg = {0};
    size_t i;

    if (!req) {
        http_resp_send_error(ctx, 400, NULL);
        return 400;
    }
    rc = split_path(http_req_raw_path(req), &sg);
    if (rc) {
        status = rc == UV_ENOMEM ? 500 : 400;
        http_resp_send_error(ctx, status, NULL);
        goto out;
    }
    for (i = 0; i < r->n_routes && !hit; i++) {
        const route_t *rt = &r->routes[i];
        if (!route_matches(rt, &sg))
            continue;
        path_hit = 1;
        if (rt->method == http_req_method(req))
            hit = rt;
        else if (rt->method == HTTP_METHOD_GET && http_req_method(req) == HTTP_METHOD_HEAD &&
                 !get_hit)
            get_hit = rt;
    }
    if (!hit)
        hit = get_hit;
    if (!hit) {
        if (path_hit) {
            status = send_405(r, &sg, ctx);
        } else {
            status = 404;
            http_resp_send_error(ctx, 404, "no such resource");
        }
        goto out;
    }
    if (r->token && !(hit->flags & HTTP_ROUTE_PUBLIC) && !http_req_auth_bearer(req, r->token)) {
        status = 401;
        http_resp_send_error(ctx, 401, "missing or invalid bearer token");
        goto out;
    }
    for (i = 0; i < hit->n_segs; i++) {
        if (!hit->is_param[i])
            continue;
        rc = http_ctx_add_param(ctx, hit->segs[i], sg.seg[i]);
        if (rc) {
            status = 500;
            http_resp_send_error(ctx, 500, NULL);
            goto out;
        }
    }
    free(sg.buf);
    sg.buf = NULL;
    hit->handler(ctx, hit->ud);
out:
    free(sg.buf);
    return status;
}
