/* fuzz_http: the HTTP request parser, router and replies, fed in input-chosen chunk sizes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_req.h"
#include "http_resp.h"
#include "http_router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sink(void *ud, uint8_t *bytes, size_t len, int close_after)
{
    size_t *total = ud;

    (void)close_after;
    *total += len;
    free(bytes);
}

static void handler(http_ctx_t *ctx, void *ud)
{
    const http_req_t *req = http_ctx_req(ctx);
    const char *id = http_ctx_param(ctx, "id");
    size_t blen;
    cJSON *j = cJSON_CreateObject();

    (void)ud;
    cJSON_AddStringToObject(j, "id", id ? id : "");
    cJSON_AddStringToObject(j, "since", http_req_query(req, "since") ? "y" : "n");
    http_req_body(req, &blen);
    cJSON_AddNumberToObject(j, "body", (double)blen);
    http_resp_send_json(ctx, 200, j);
    cJSON_Delete(j);
}

/* Reads every accessor so the sanitizers see each string end where it claims to. */
static void touch(const http_req_t *req)
{
    size_t i, n = 0, blen;
    const char *a, *b;
    const uint8_t *body;

    n += strlen(http_req_path(req)) + strlen(http_req_raw_path(req));
    n += strlen(http_req_target(req)) + strlen(http_req_method_name(req));
    for (i = 0; http_req_query_at(req, i, &a, &b) == 0; i++)
        n += strlen(a) + strlen(b);
    for (i = 0; http_req_header_at(req, i, &a, &b) == 0; i++)
        n += strlen(a) + strlen(b);
    if (http_req_bearer_token(req))
        n += strlen(http_req_bearer_token(req));
    n += (size_t)http_req_auth_bearer(req, "fuzz-token");
    body = http_req_body(req, &blen);
    if (body[blen] != 0)
        abort();
    if (n == (size_t)-1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_req_limits_t lim = {
        .max_header_bytes = 1024, .max_body_bytes = 512, .max_headers = 16, .max_pending = 2048};
    http_req_parser_t *p = NULL;
    http_router_t *r = NULL;
    uint32_t seed;
    size_t pos = 0, total = 0;
    int rc = 0;

    if (size < 4)
        return 0;
    /* The first 4 bytes seed the chunk sizes, so fragmentation paths are explored too. */
    seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
           (uint32_t)data[3] << 24;
    data += 4;
    size -= 4;
    if (http_req_parser_create(&lim, &p) || http_router_create(&r))
        goto out;
    if (http_router_add(r, HTTP_METHOD_GET, "/api/v1/hosts/{id}", 0, handler, NULL) ||
        http_router_add(r, HTTP_METHOD_POST, "/api/v1/hosts/{id}/silence", 0, handler, NULL) ||
        http_router_add(r, HTTP_METHOD_GET, "/metrics", HTTP_ROUTE_PUBLIC, handler, NULL) ||
        http_router_set_token(r, "fuzz-token"))
        goto out;
    while (pos < size && rc >= 0) {
        size_t chunk;
        seed = seed * 1103515245u + 12345u;
        chunk = (seed >> 16) % 64 == 0 ? size - pos : 1 + (seed >> 16) % 97;
        if (chunk > size - pos)
            chunk = size - pos;
        rc = http_req_feed(p, data + pos, chunk);
        pos += chunk;
        while (rc == HTTP_REQ_READY) {
            const http_req_t *req = http_req_parser_request(p);
            http_ctx_t *ctx;
            if (!req)
                abort();
            touch(req);
            if (http_ctx_create(req, sink, &total, &ctx) == 0)
                http_router_dispatch(r, ctx);
            rc = http_req_parser_next(p);
        }
    }
    if (rc < 0) {
        uint8_t *b;
        size_t n;
        int st = http_req_parser_status(p);
        if (st < 400 || st > 599 || http_req_parser_request(p))
            abort();
        if (http_resp_error(st, http_req_parser_reason(p), HTTP_RESP_CLOSE, &b, &n) == 0)
            free(b);
    }
out:
    http_router_destroy(r);
    http_req_parser_destroy(p);
    return 0;
}
