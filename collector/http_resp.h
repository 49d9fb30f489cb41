/* http_resp: HTTP/1.1 response bytes (JSON, text, JSON errors) and the per-request reply context.
 */
#ifndef HTTP_RESP_H
#define HTTP_RESP_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "http_req.h"

/*
 * Two layers.
 *
 * 1. Pure builders: status line + headers + body into one malloc'ed buffer the caller frees with
 *    free(). Every response carries Content-Length and "Connection: keep-alive" or "close".
 *    Errors are JSON: {"error": {"code": 404, "message": "..."}}; a 401 also carries
 *    "WWW-Authenticate: Bearer", a 405 from the router an "Allow" header.
 *
 * 2. http_ctx_t: one request's reply, so a handler can answer now or later. The server creates a
 *    context for each request with a sink (its write function), dispatches it (http_router.h),
 *    and the handler eventually calls exactly one http_resp_send* on it. That call builds the
 *    bytes, hands them to the sink, and frees the context: the context must not be used after.
 *    If the connection closes first, the server calls http_ctx_abandon(): the handler's later
 *    send then only frees the context (a handler may poll http_ctx_abandoned() to skip work).
 *
 * Threads: all of it runs on the loop thread. A handler that works on a uv work thread sends
 * from the after-work callback (or another loop-thread callback), never from the worker.
 */

/* Builder flags. */
enum {
    HTTP_RESP_CLOSE = 1 << 0, /* "Connection: close" (default keep-alive) */
    HTTP_RESP_HEAD = 1 << 1   /* answer to HEAD: headers only, Content-Length of the body */
};

/* An extra header. Name and value must not contain CR, LF or NUL (UV_EINVAL). */
typedef struct http_hdr_s {
    const char *name;
    const char *value;
} http_hdr_t;

#define HTTP_CT_JSON "application/json; charset=utf-8"
/* The Prometheus text exposition format, version 0.0.4. */
#define HTTP_CT_PROM "text/plain; version=0.0.4; charset=utf-8"

/* "Not Found" for 404, ...; "Unknown" for codes not listed. Static storage. */
const char *http_status_text(int status);

/*
 * The general builder. `body` may be NULL when body_len is 0; content_type NULL omits the
 * header. Returns 0 (*out, *out_len set; free(*out)), UV_EINVAL (status outside 100..599, bad
 * header text), UV_ENOMEM. Out-params are cleared on entry.
 */
int http_resp_build(int status, const char *content_type, const void *body, size_t body_len,
                    const http_hdr_t *hdrs, size_t n_hdrs, unsigned flags, uint8_t **out,
                    size_t *out_len);
/* JSON body printed unformatted from `json` (not taken). */
int http_resp_json(int status, const cJSON *json, unsigned flags, uint8_t **out, size_t *out_len);
/* A text body, e.g. HTTP_CT_PROM for /metrics. */
int http_resp_text(int status, const char *content_type, const void *body, size_t body_len,
                   unsigned flags, uint8_t **out, size_t *out_len);
/* {"error": {"code": status, "message": message}}; message NULL: http_status_text(status). */
int http_resp_error(int status, const char *message, unsigned flags, uint8_t **out,
                    size_t *out_len);
/* The error object itself (the caller owns it), or NULL on allocation failure. */
cJSON *http_resp_error_json(int status, const char *message);

typedef struct http_ctx_s http_ctx_t;

/*
 * The server's write function. `bytes` (owned by the sink from here: free() it) is one whole
 * response, or NULL with len 0 when it could not be built for lack of memory. `close_after` is 1
 * when the connection must be closed once the bytes are written (then also when bytes is NULL).
 * Otherwise, after writing, the server calls http_req_parser_next() for the next request.
 * Called from inside http_resp_send*, so it must not call back into the same context.
 */
typedef void (*http_sink_cb)(void *sink_ud, uint8_t *bytes, size_t len, int close_after);

/*
 * Creates the reply context of `req` (borrowed: the parser keeps it until http_req_parser_next,
 * which the server calls only after the sink ran, or destroys with the connection after
 * http_ctx_abandon). `req` may be NULL for a reply to a request that failed to parse: the reply
 * then closes the connection. 0 or UV_ENOMEM.
 */
int http_ctx_create(const http_req_t *req, http_sink_cb sink, void *sink_ud, http_ctx_t **out);
/* The request, or NULL after http_ctx_abandon (handlers copy what they need before going async). */
const http_req_t *http_ctx_req(const http_ctx_t *ctx);
/* A {param} captured by the router (percent-decoded), or NULL. */
const char *http_ctx_param(const http_ctx_t *ctx, const char *name);
/* For the router: records a captured parameter (both copied). 0, UV_ENOMEM or UV_E2BIG. */
int http_ctx_add_param(http_ctx_t *ctx, const char *name, const char *value);
/* Forces "Connection: close" on the reply (e.g. the server is shutting down). */
void http_ctx_set_close(http_ctx_t *ctx);
/* Server side: the connection is gone. A send still to come only frees the context. */
void http_ctx_abandon(http_ctx_t *ctx);
int http_ctx_abandoned(const http_ctx_t *ctx);
/* Server side: frees a context that was never dispatched. NULL is a no-op. */
void http_ctx_destroy(http_ctx_t *ctx);

/*
 * Replies, exactly one per context, each consumes the context (see above). Inputs are not
 * taken. The return value is for logging only: 0, or the build error (the sink then got NULL
 * and must close the connection).
 */
int http_resp_send(http_ctx_t *ctx, int status, const char *content_type, const void *body,
                   size_t body_len, const http_hdr_t *hdrs, size_t n_hdrs);
int http_resp_send_json(http_ctx_t *ctx, int status, const cJSON *json);
int http_resp_send_text(http_ctx_t *ctx, int status, const char *content_type, const void *body,
                        size_t body_len);
int http_resp_send_error(http_ctx_t *ctx, int status, const char *message);
/* An error with extra headers (e.g. Allow for 405); a 401 without them gets WWW-Authenticate. */
int http_resp_send_error_hdrs(http_ctx_t *ctx, int status, const char *message,
                              const http_hdr_t *hdrs, size_t n_hdrs);

#endif
