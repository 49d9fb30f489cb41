/* http_router: (method, path pattern) -> handler, with {param} segments, 404/405 and bearer auth.
 */
#ifndef HTTP_ROUTER_H
#define HTTP_ROUTER_H

#include "http_req.h"
#include "http_resp.h"

/*
 * Patterns are absolute paths whose segments are literals or "{name}" (one whole, non-empty
 * segment, captured percent-decoded: http_ctx_param(ctx, "name")). At most 16 segments and 8
 * parameters. Literals match the decoded segment exactly; a trailing '/' is a different path.
 * "/" matches only "/". When several routes match, the first registered wins.
 *
 * Dispatch: no pattern matches the path -> 404; patterns match but none for the method -> 405
 * with "Allow"; a HEAD with no HEAD route runs the GET route (the reply drops the body); the
 * route needs a token (the router has one and the route is not HTTP_ROUTE_PUBLIC) and the
 * request does not carry it as "Authorization: Bearer" -> 401. The token is compared in
 * constant time. Errors are the JSON error shape of http_resp.h.
 *
 * Threads: loop thread. Register routes before dispatching; the router is then read-only.
 */

typedef struct http_router_s http_router_t;

/*
 * A handler. It owns `ctx` and must eventually call exactly one http_resp_send* on it, now or
 * later (from the loop thread). `ud` is the registration's.
 */
typedef void (*http_handler_cb)(http_ctx_t *ctx, void *ud);

enum {
    HTTP_ROUTE_PUBLIC = 1 << 0 /* no bearer token needed (e.g. /healthz) */
};

int http_router_create(http_router_t **out);
/* NULL is a no-op. */
void http_router_destroy(http_router_t *r);
/* Requires "Authorization: Bearer <token>" on non-public routes; copied. NULL or "": no auth. */
int http_router_set_token(http_router_t *r, const char *token);
/* 0, UV_EINVAL (bad pattern, NULL handler), UV_EEXIST (same method and pattern), UV_ENOMEM. */
int http_router_add(http_router_t *r, http_method_t method, const char *pattern, unsigned flags,
                    http_handler_cb handler, void *ud);
/*
 * Routes `ctx` (consumed either way). Returns 0 when a handler was called, else the HTTP status
 * the router answered with itself (400 for a context without request, 401, 404, 405, 500).
 */
int http_router_dispatch(const http_router_t *r, http_ctx_t *ctx);

#endif
