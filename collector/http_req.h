/* http_req: an incremental, bounded HTTP/1.x request parser for the operator API (pure, no I/O). */
#ifndef HTTP_REQ_H
#define HTTP_REQ_H

#include <stddef.h>
#include <stdint.h>

/*
 * Use
 * ---
 * One parser per connection. Feed it the plaintext bytes as they come out of TLS, in any chunking:
 *
 *     rc = http_req_feed(p, buf, len);
 *     for (;;) {
 *         if (rc < 0) { send http_req_parser_status(p) as an error with Connection: close; close; }
 *         if (rc != HTTP_REQ_READY) break;        (HTTP_REQ_MORE: wait for more bytes)
 *         handle http_req_parser_request(p);      (may finish later, see http_resp.h)
 *         ...once the response has been written:
 *         rc = http_req_parser_next(p);           (parses pipelined bytes already fed)
 *     }
 *
 * The parser keeps every byte it was fed: bytes that arrive while a request is held (after
 * HTTP_REQ_READY and before http_req_parser_next) are queued, bounded by max_pending, and parsed
 * by http_req_parser_next. So pipelined and sequential keep-alive requests need nothing from the
 * caller but the loop above.
 *
 * After a request whose http_req_keep_alive() is 0 (HTTP/1.0 without keep-alive, "Connection:
 * close", an Upgrade), the caller closes the connection after the response; the parser then
 * ignores further bytes and http_req_parser_next returns HTTP_REQ_MORE.
 *
 * Errors are sticky: once feed or next returned a negative code, every later call returns it
 * again. The HTTP status to answer with is http_req_parser_status():
 *   400 malformed (bad syntax, bad percent-encoding, %00 in the path or query, NUL in a header,
 *       missing Host on HTTP/1.1, a request-target that is not an absolute path)
 *   413 too large (request line + headers > max_header_bytes, more than max_headers fields, body
 *       > max_body_bytes, raw bytes after the header incl. chunk framing > 4 x max_body_bytes +
 *       4 KiB, bytes queued behind a held request > max_pending)
 *   501 method not implemented (only GET HEAD POST PUT DELETE PATCH OPTIONS are accepted; an
 *       unknown token of upper-case letters is also 501, anything else there is 400)
 *   505 HTTP version other than 1.0 and 1.1
 * Return codes: EPW_E_PARSE (400, 501, 505), EPW_E_TOOBIG (413), UV_ENOMEM (status 500).
 *
 * Threads: a parser and its requests are used by one thread at a time (the loop thread).
 * Text: every string returned is NUL-terminated and never contains a NUL byte (inputs that
 * would produce one are rejected), except the body, which is binary and has an explicit length
 * (a NUL is appended after it for convenience).
 */

typedef struct http_req_parser_s http_req_parser_t;
typedef struct http_req_s http_req_t;

enum {
    HTTP_REQ_MORE = 0, /* no complete request (yet): feed more bytes */
    HTTP_REQ_READY = 1 /* a complete request is available from http_req_parser_request */
};

typedef enum {
    HTTP_METHOD_GET = 1,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_DELETE,
    HTTP_METHOD_PATCH,
    HTTP_METHOD_OPTIONS
} http_method_t;

typedef struct http_req_limits_s {
    size_t max_header_bytes; /* request line + header fields, raw bytes; 0: 16 KiB */
    size_t max_body_bytes;   /* decoded body bytes; 0: 64 KiB */
    size_t max_headers;      /* header fields per request; 0: 64 */
    size_t max_pending;      /* bytes queued behind a held request; 0: header + body limits */
} http_req_limits_t;

/* Creates a parser. `limits` may be NULL (all defaults); it is copied. 0 or UV_ENOMEM. */
int http_req_parser_create(const http_req_limits_t *limits, http_req_parser_t **out);
/* NULL is a no-op. Invalidates the request it holds. */
void http_req_parser_destroy(http_req_parser_t *p);

/*
 * Feeds `len` bytes (`buf` is not kept). Returns HTTP_REQ_MORE, HTTP_REQ_READY or a negative
 * error (see above). While a request is held, the bytes are only queued and the result is
 * HTTP_REQ_MORE: the held request was already reported.
 */
int http_req_feed(http_req_parser_t *p, const void *buf, size_t len);
/*
 * Releases the held request (its pointers become invalid) and parses queued bytes.
 * Same results as http_req_feed. Without a held request it only returns the current state.
 */
int http_req_parser_next(http_req_parser_t *p);
/* The complete request after HTTP_REQ_READY, else NULL. Owned by the parser. */
const http_req_t *http_req_parser_request(const http_req_parser_t *p);
/* After a negative result: the HTTP status to answer (400, 413, 500, 501, 505); else 0. */
int http_req_parser_status(const http_req_parser_t *p);
/* After a negative result: a short static reason for the error body and the log; else "". */
const char *http_req_parser_reason(const http_req_parser_t *p);

/* Accessors. `req` must be a request returned above and still held. */
http_method_t http_req_method(const http_req_t *req);
/* "GET", "HEAD", ... Static storage. */
const char *http_req_method_name(const http_req_t *req);
/* The percent-decoded path without the query ("/api/v1/hosts/a b"). Starts with '/'. */
const char *http_req_path(const http_req_t *req);
/* The path exactly as sent, still percent-encoded (the router splits this one on '/'). */
const char *http_req_raw_path(const http_req_t *req);
/* The request-target as sent, path and query (for logs). */
const char *http_req_target(const http_req_t *req);
/*
 * Query parameters, decoded ('+' is a space). `http_req_query` returns the first value of
 * `name` (compared exactly), "" for "?name" or "?name=", NULL when absent.
 */
const char *http_req_query(const http_req_t *req, const char *name);
size_t http_req_query_count(const http_req_t *req);
/* i < count; either out pointer may be NULL. Returns 0 or UV_EINVAL. */
int http_req_query_at(const http_req_t *req, size_t i, const char **name, const char **value);
/* First header named `name`, compared case-insensitively; value trimmed of spaces; or NULL. */
const char *http_req_header(const http_req_t *req, const char *name);
size_t http_req_header_count(const http_req_t *req);
int http_req_header_at(const http_req_t *req, size_t i, const char **name, const char **value);
/* The body (may be empty, never NULL) and its length; a NUL follows it. */
const uint8_t *http_req_body(const http_req_t *req, size_t *len);
/* 1 when the connection may carry another request after the response, else 0. */
int http_req_keep_alive(const http_req_t *req);
/* 10 for HTTP/1.0, 11 for HTTP/1.1. */
int http_req_version(const http_req_t *req);

/*
 * The token of "Authorization: Bearer <token>" (scheme case-insensitive; the token must be
 * token68 characters), or NULL when the header is missing or is not a well-formed bearer token.
 */
const char *http_req_bearer_token(const http_req_t *req);

/*
 * 1 when the request carries exactly `expected` as bearer token, else 0. The comparison's time
 * depends only on the lengths, not on where the tokens differ. An empty or NULL `expected` never
 * matches (a misconfiguration must not open the API).
 */
int http_req_auth_bearer(const http_req_t *req, const char *expected);

/* Constant-time equality of two byte strings (time depends only on the lengths). 1 or 0. */
int http_token_equal(const void *a, size_t alen, const void *b, size_t blen);

/*
 * Percent-decodes `in` (len bytes) into `out` (at least len + 1 bytes), '+' as space when
 * `plus_is_space`; NUL-terminates. EPW_E_PARSE on a bad escape or a decoded NUL. Pure.
 */
int http_pct_decode(const char *in, size_t len, int plus_is_space, char *out, size_t *out_len);

#endif
