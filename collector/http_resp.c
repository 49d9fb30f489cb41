/* http_resp: response bytes and the reply context that lets a handler answer now or later. */
#include "http_resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "epw_err.h"

#define CTX_MAX_PARAMS 8

struct http_ctx_s {
    const http_req_t *req;
    http_sink_cb sink;
    void *sink_ud;
    int force_close;
    int abandoned;
    size_t n_params;
    char *param_names[CTX_MAX_PARAMS];
    char *param_values[CTX_MAX_PARAMS];
};

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Header text must not smuggle a line break (response splitting) or a NUL. */
static int header_text_ok(const char *s)
{
    return s && *s && strpbrk(s, "\r\n") == NULL;
}

static int status_has_no_body(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

int http_resp_build(int status, const char *content_type, const void *body, size_t body_len,
                    const http_hdr_t *hdrs, size_t n_hdrs, unsigned flags, uint8_t **out,
                    size_t *out_len)
{
    char line[160];
    size_t need, i, o = 0;
    uint8_t *buf;
    int n, no_body = status_has_no_body(status);
    int send_body = !(flags & HTTP_RESP_HEAD) && !no_body;

    *out = NULL;
    *out_len = 0;
    if (status < 100 || status > 599 || (body_len > 0 && !body) || (no_body && body_len > 0))
        return UV_EINVAL;
    if (content_type && !header_text_ok(content_type))
        return UV_EINVAL;
    for (i = 0; i < n_hdrs; i++)
        if (!header_text_ok(hdrs[i].name) || !header_text_ok(hdrs[i].value) ||
            strchr(hdrs[i].name, ':'))
            return UV_EINVAL;

    n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    need = (size_t)n;
    if (content_type)
        need += strlen("Content-Type: \r\n") + strlen(content_type);
    need += strlen("Content-Length: \r\n") + 20;
    need += strlen("Connection: keep-alive\r\n");
    for (i = 0; i < n_hdrs; i++)
        need += strlen(hdrs[i].name) + 2 + strlen(hdrs[i].value) + 2;
    need += 2 + (send_body ? body_len : 0) + 1;

    buf = malloc(need);
    if (!buf)
        return UV_ENOMEM;
    /* Each piece below was counted in `need`; snprintf bounds every write anyway. */
    o += (size_t)snprintf((char *)buf + o, need - o, "%s", line);
    if (content_type)
        o += (size_t)snprintf((char *)buf + o, need - o, "Content-Type: %s\r\n", content_type);
    if (!no_body)
        o += (size_t)snprintf((char *)buf + o, need - o, "Content-Length: %zu\r\n", body_len);
    o += (size_t)snprintf((char *)buf + o, need - o, "Connection: %s\r\n",
                          (flags & HTTP_RESP_CLOSE) ? "close" : "keep-alive");
    for (i = 0; i < n_hdrs; i++)
        o += (size_t)snprintf((char *)buf + o, need - o, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
    o += (size_t)snprintf((char *)buf + o, need - o, "\r\n");
    if (send_body && body_len > 0) {
        memcpy(buf + o, body, body_len);
        o += body_len;
    }
    *out = buf;
    *out_len = o;
    return 0;
}

int http_resp_json(int status, const cJSON *json, unsigned flags, uint8_t **out, size_t *out_len)
{
    char *text;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (!json)
        return UV_EINVAL;
    text = cJSON_PrintUnformatted(json);
    if (!text)
        return UV_ENOMEM;
    rc = http_resp_build(status, HTTP_CT_JSON, text, strlen(text), NULL, 0, flags, out, out_len);
    cJSON_free(text);
    return rc;
}

int http_resp_text(int status, const char *content_type, const void *body, size_t body_len,
                   unsigned flags, uint8_t **out, size_t *out_len)
{
    return http_resp_build(status, content_type, body, body_len, NULL, 0, flags, out, out_len);
}

cJSON *http_resp_error_json(int status, const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_CreateObject();

    if (!root || !err || !cJSON_AddNumberToObject(err, "code", status) ||
        !cJSON_AddStringToObject(err, "message", message ? message : http_status_text(status))) {
        cJSON_Delete(root);
        cJSON_Delete(err);
        return NULL;
    }
    cJSON_AddItemToObject(root, "error", err);
    return root;
}

/* Error replies with the headers their status requires. */
static int build_error(int status, const char *message, const http_hdr_t *hdrs, size_t n_hdrs,
                       unsigned flags, uint8_t **out, size_t *out_len)
{
    static const http_hdr_t auth = {"WWW-Authenticate", "Bearer realm=\"epwatch\""};
    cJSON *json = http_resp_error_json(status, message);
    char *text = NULL;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (!json) {
        rc = UV_ENOMEM;
        goto out;
    }
    text = cJSON_PrintUnformatted(json);
    if (!text) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (status == 401 && n_hdrs == 0) {
        hdrs = &auth;
        n_hdrs = 1;
    }
    rc = http_resp_build(status, HTTP_CT_JSON, text, strlen(text), hdrs, n_hdrs, flags, out,
                         out_len);
out:
    cJSON_free(text);
    cJSON_Delete(json);
    return rc;
}

int http_resp_error(int status, const char *message, unsigned flags, uint8_t **out, size_t *out_len)
{
    return build_error(status, message, NULL, 0, flags, out, out_len);
}

int http_ctx_create(const http_req_t *req, http_sink_cb sink, void *sink_ud, http_ctx_t **out)
{
    http_ctx_t *ctx;

    *out = NULL;
    if (!sink)
        return UV_EINVAL;
    ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return UV_ENOMEM;
    ctx->req = req;
    ctx->sink = sink;
    ctx->sink_ud = sink_ud;
    ctx->force_close = req == NULL;
    *out = ctx;
    return 0;
}

const http_req_t *http_ctx_req(const http_ctx_t *ctx)
{
    return ctx->abandoned ? NULL : ctx->req;
}

const char *http_ctx_param(const http_ctx_t *ctx, const char *name)
{
    size_t i;

    for (i = 0; i < ctx->n_params; i++)
        if (strcmp(ctx->param_names[i], name) == 0)
            return ctx->param_values[i];
    return NULL;
}

int http_ctx_add_param(http_ctx_t *ctx, const char *name, const char *value)
{
    char *n, *v;

    if (ctx->n_params >= CTX_MAX_PARAMS)
        return UV_E2BIG;
    n = strdup(name);
    v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return UV_ENOMEM;
    }
    ctx->param_names[ctx->n_params] = n;
    ctx->param_values[ctx->n_params] = v;
    ctx->n_params++;
    return 0;
}

void http_ctx_set_close(http_ctx_t *ctx)
{
    ctx->force_close = 1;
}

void http_ctx_abandon(http_ctx_t *ctx)
{
    ctx->abandoned = 1;
    ctx->req = NULL;
}

int http_ctx_abandoned(const http_ctx_t *ctx)
{
    return ctx->abandoned;
}

void http_ctx_destroy(http_ctx_t *ctx)
{
    size_t i;

    if (!ctx)
        return;
    for (i = 0; i < ctx->n_params; i++) {
        free(ctx->param_names[i]);
        free(ctx->param_values[i]);
    }
    free(ctx);
}

static unsigned ctx_flags(const http_ctx_t *ctx)
{
    unsigned flags = 0;

    if (ctx->force_close || !ctx->req || !http_req_keep_alive(ctx->req))
        flags |= HTTP_RESP_CLOSE;
    if (ctx->req && http_req_method(ctx->req) == HTTP_METHOD_HEAD)
        flags |= HTTP_RESP_HEAD;
    return flags;
}

/* Hands the built bytes (or the build failure) to the sink and ends the context. */
static int deliver(http_ctx_t *ctx, int rc, uint8_t *bytes, size_t len, unsigned flags)
{
    if (ctx->abandoned) {
        free(bytes);
    } else if (rc) {
        free(bytes);
        ctx->sink(ctx->sink_ud, NULL, 0, 1);
    } else {
        ctx->sink(ctx->sink_ud, bytes, len, (flags & HTTP_RESP_CLOSE) != 0);
    }
    http_ctx_destroy(ctx);
    return rc;
}

int http_resp_send(http_ctx_t *ctx, int status, const char *content_type, const void *body,
                   size_t body_len, const http_hdr_t *hdrs, size_t n_hdrs)
{
    unsigned flags = ctx_flags(ctx);
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = 0;

    if (!ctx->abandoned)
        rc = http_resp_build(status, content_type, body, body_len, hdrs, n_hdrs, flags, &bytes,
                             &len);
    return deliver(ctx, rc, bytes, len, flags);
}

int http_resp_send_json(http_ctx_t *ctx, int status, const cJSON *json)
{
    unsigned flags = ctx_flags(ctx);
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = 0;

    if (!ctx->abandoned)
        rc = http_resp_json(status, json, flags, &bytes, &len);
    return deliver(ctx, rc, bytes, len, flags);
}

int http_resp_send_text(http_ctx_t *ctx, int status, const char *content_type, const void *body,
                        size_t body_len)
{
    return http_resp_send(ctx, status, content_type, body, body_len, NULL, 0);
}

int http_resp_send_error(http_ctx_t *ctx, int status, const char *message)
{
    unsigned flags = ctx_flags(ctx);
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = 0;

    if (!ctx->abandoned)
        rc = build_error(status, message, NULL, 0, flags, &bytes, &len);
    return deliver(ctx, rc, bytes, len, flags);
}

int http_resp_send_error_hdrs(http_ctx_t *ctx, int status, const char *message,
                              const http_hdr_t *hdrs, size_t n_hdrs)
{
    unsigned flags = ctx_flags(ctx);
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = 0;

    if (!ctx->abandoned)
        rc = build_error(status, message, hdrs, n_hdrs, flags, &bytes, &len);
    return deliver(ctx, rc, bytes, len, flags);
}
