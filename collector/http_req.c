/* http_req: incremental HTTP/1.x request parsing on top of http-parser, with hard limits. */
#include "http_req.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <uv.h>

#include "epw_err.h"

#define DEF_MAX_HEADER (16u * 1024u)
#define DEF_MAX_BODY   (64u * 1024u)
#define DEF_MAX_HDRS   64u
/* Leading bytes of a message kept to tell an unknown method (501) from garbage (400). */
#define SNIFF_LEN 24u

enum { P_PARSING, P_HELD, P_CLOSED, P_ERROR };
enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

typedef struct off_pair_s {
    size_t name;  /* offset of the NUL-terminated name */
    size_t value; /* offset of the NUL-terminated value */
} off_pair_t;

struct http_req_s {
    http_method_t method;
    int version;
    int keep_alive;
    /* Raw head: the request-target, then name\0value\0 per header field. Fixed capacity. */
    char *head;
    size_t head_len;
    size_t head_cap;
    off_pair_t *hdrs; /* offsets into head */
    size_t n_hdrs;
    /* Decoded path, raw path and decoded query strings (allocated per request). */
    char *dec;
    size_t path_off;
    size_t raw_path_off;
    off_pair_t *query; /* offsets into dec */
    size_t n_query;
    uint8_t *body;
    size_t body_len;
    size_t body_cap;
};

struct http_req_parser_s {
    http_parser hp;
    http_req_limits_t lim;
    http_req_t req;
    int state;
    int err;
    int status;
    const char *reason;
    /* Per message. */
    int headers_done;
    int last_cb;
    size_t hdr_raw;  /* raw bytes up to the end of the header */
    size_t body_raw; /* raw bytes after it (chunk framing included) */
    uint8_t sniff[SNIFF_LEN];
    /* A callback's verdict, used when http-parser then stops with a callback error. */
    int cb_status;
    int cb_err;
    const char *cb_reason;
    /* Bytes fed while a request is held. */
    uint8_t *pend;
    size_t pend_len;
    size_t pend_cap;
};

static const char *const method_names[] = {"",    "GET",    "HEAD",  "POST",
                                           "PUT", "DELETE", "PATCH", "OPTIONS"};

static int map_method(unsigned m, http_method_t *out)
{
    switch (m) {
    case HTTP_GET:
        *out = HTTP_METHOD_GET;
        return 0;
    case HTTP_HEAD:
        *out = HTTP_METHOD_HEAD;
        return 0;
    case HTTP_POST:
        *out = HTTP_METHOD_POST;
        return 0;
    case HTTP_PUT:
        *out = HTTP_METHOD_PUT;
        return 0;
    case HTTP_DELETE:
        *out = HTTP_METHOD_DELETE;
        return 0;
    case HTTP_PATCH:
        *out = HTTP_METHOD_PATCH;
        return 0;
    case HTTP_OPTIONS:
        *out = HTTP_METHOD_OPTIONS;
        return 0;
    default:
        return -1;
    }
}

/* Records why a callback refused; http-parser then fails with HPE_CB_* and we report this. */
static int cb_fail(http_req_parser_t *p, int err, int status, const char *reason)
{
    if (!p->cb_status) {
        p->cb_err = err;
        p->cb_status = status;
        p->cb_reason = reason;
    }
    return -1;
}

static int head_append(http_req_parser_t *p, const char *at, size_t len)
{
    http_req_t *r = &p->req;

    /* Cannot happen while the raw header budget holds (each NUL replaces a delimiter byte);
     * checked anyway. */
    if (len > r->head_cap - r->head_len)
        return cb_fail(p, EPW_E_TOOBIG, 413, "request header too large");
    memcpy(r->head + r->head_len, at, len);
    r->head_len += len;
    return 0;
}

static int head_terminate(http_req_parser_t *p)
{
    return head_append(p, "", 1);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Ends the value being collected: trailing spaces dropped, NUL appended. */
static int end_value(http_req_parser_t *p)
{
    http_req_t *r = &p->req;
    size_t start = r->hdrs[r->n_hdrs - 1].value;

    while (r->head_len > start && is_ows(r->head[r->head_len - 1]))
        r->head_len--;
    return head_terminate(p);
}

static int on_message_begin(http_parser *hp)
{
    (void)hp;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    http_req_parser_t *p = hp->data;
    http_method_t m;

    if (map_method(hp->method, &m))
        return cb_fail(p, EPW_E_PARSE, 501, "method not implemented");
    p->last_cb = CB_URL;
    return head_append(p, at, len);
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    http_req_parser_t *p = hp->data;
    http_req_t *r = &p->req;
    int rc = 0;

    if (p->headers_done)
        return 0; /* a chunked trailer: counted in body_raw, not kept */
    if (p->last_cb != CB_FIELD) {
        if (p->last_cb == CB_VALUE)
            rc = end_value(p);
        else if (p->last_cb == CB_URL)
            rc = head_terminate(p);
        if (rc)
            return rc;
        if (r->n_hdrs >= p->lim.max_headers)
            return cb_fail(p, EPW_E_TOOBIG, 413, "too many header fields");
        r->hdrs[r->n_hdrs].name = r->head_len;
        r->hdrs[r->n_hdrs].value = r->head_len;
        r->n_hdrs++;
        p->last_cb = CB_FIELD;
    }
    return head_append(p, at, len);
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    http_req_parser_t *p = hp->data;
    http_req_t *r = &p->req;
    int rc;

    if (p->headers_done)
        return 0;
    if (memchr(at, '\0', len))
        return cb_fail(p, EPW_E_PARSE, 400, "NUL in a header value");
    if (p->last_cb == CB_FIELD) {
        rc = head_terminate(p);
        if (rc)
            return rc;
        r->hdrs[r->n_hdrs - 1].value = r->head_len;
        p->last_cb = CB_VALUE;
        /* Leading spaces are skipped by http-parser; be sure. */
        while (len > 0 && is_ows(*at) && r->head_len == r->hdrs[r->n_hdrs - 1].value) {
            at++;
            len--;
        }
    }
    return head_append(p, at, len);
}

int http_pct_decode(const char *in, size_t len, int plus_is_space, char *out, size_t *out_len)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                goto bad;
            hi = (unsigned char)in[i + 1];
            lo = (unsigned char)in[i + 2];
            hi = hi >= '0' && hi <= '9'   ? hi - '0'
                 : hi >= 'a' && hi <= 'f' ? hi - 'a' + 10
                 : hi >= 'A' && hi <= 'F' ? hi - 'A' + 10
                                          : -1;
            lo = lo >= '0' && lo <= '9'   ? lo - '0'
                 : lo >= 'a' && lo <= 'f' ? lo - 'a' + 10
                 : lo >= 'A' && lo <= 'F' ? lo - 'A' + 10
                                          : -1;
            if (hi < 0 || lo < 0)
                goto bad;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            goto bad;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return 0;
bad:
    out[0] = '\0';
    if (out_len)
        *out_len = 0;
    return EPW_E_PARSE;
}

/* Splits "a=1&b&c=" into decoded pairs stored after the path in r->dec (from `o`). */
static int parse_query(http_req_parser_t *p, const char *q, size_t qlen, size_t o)
{
    http_req_t *r = &p->req;
    size_t i, n = 1, start = 0;

    for (i = 0; i < qlen; i++)
        n += q[i] == '&';
    r->query = calloc(n, sizeof(*r->query));
    if (!r->query)
        return cb_fail(p, UV_ENOMEM, 500, "out of memory");
    for (i = 0; i <= qlen; i++) {
        const char *seg, *eq;
        size_t slen, nlen, dl;
        if (i < qlen && q[i] != '&')
            continue;
        seg = q + start;
        slen = i - start;
        start = i + 1;
        if (slen == 0)
            continue;
        eq = memchr(seg, '=', slen);
        nlen = eq ? (size_t)(eq - seg) : slen;
        if (nlen == 0)
            continue; /* "=x": no name, nothing to look up by */
        r->query[r->n_query].name = o;
        if (http_pct_decode(seg, nlen, 1, r->dec + o, &dl))
            return cb_fail(p, EPW_E_PARSE, 400, "bad percent-encoding in the query");
        o += dl + 1;
        r->query[r->n_query].value = o;
        if (eq) {
            if (http_pct_decode(eq + 1, slen - nlen - 1, 1, r->dec + o, &dl))
                return cb_fail(p, EPW_E_PARSE, 400, "bad percent-encoding in the query");
        } else {
            r->dec[o] = '\0';
            dl = 0;
        }
        o += dl + 1;
        r->n_query++;
    }
    return 0;
}

/* Splits the request-target (r->head from 0) into the decoded path, the raw path and the query. */
static int parse_target(http_req_parser_t *p)
{
    http_req_t *r = &p->req;
    struct http_parser_url u;
    const char *url = r->head;
    size_t ulen = strlen(url);
    const char *path = "/";
    size_t plen = 1, o = 0, dl;

    if (ulen == 0 || ulen > 65535)
        return cb_fail(p, EPW_E_PARSE, 400, "bad request-target");
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, ulen, 0, &u))
        return cb_fail(p, EPW_E_PARSE, 400, "bad request-target");
    /* origin-form "/p?q", or absolute-form "http://host/p?q" (which servers must accept). */
    if (url[0] != '/' && !(u.field_set & (1u << UF_SCHEMA)))
        return cb_fail(p, EPW_E_PARSE, 400, "bad request-target");
    if (u.field_set & (1u << UF_PATH)) {
        path = url + u.field_data[UF_PATH].off;
        plen = u.field_data[UF_PATH].len;
    }
    if (plen == 0 || path[0] != '/')
        return cb_fail(p, EPW_E_PARSE, 400, "bad request-target");
    /* Decoded path + raw path + query pairs: each at most its raw length plus NULs. */
    r->dec = malloc(3 * ulen + 8);
    if (!r->dec)
        return cb_fail(p, UV_ENOMEM, 500, "out of memory");
    r->path_off = o;
    if (http_pct_decode(path, plen, 0, r->dec + o, &dl))
        return cb_fail(p, EPW_E_PARSE, 400, "bad percent-encoding in the path");
    o += dl + 1;
    r->raw_path_off = o;
    memcpy(r->dec + o, path, plen);
    r->dec[o + plen] = '\0';
    o += plen + 1;
    if (u.field_set & (1u << UF_QUERY))
        return parse_query(p, url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len, o);
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    http_req_parser_t *p = hp->data;
    http_req_t *r = &p->req;
    size_t i, hosts = 0;
    int rc;

    if (p->last_cb == CB_VALUE)
        rc = end_value(p);
    else if (p->last_cb == CB_URL)
        rc = head_terminate(p);
    else
        rc = cb_fail(p, EPW_E_PARSE, 400, "malformed request");
    if (rc)
        return rc;
    p->last_cb = CB_NONE;
    if (map_method(hp->method, &r->method))
        return cb_fail(p, EPW_E_PARSE, 501, "method not implemented");
    if (hp->http_major != 1 || hp->http_minor > 1)
        return cb_fail(p, EPW_E_PARSE, 505, "HTTP version not supported");
    r->version = 10 + hp->http_minor;
    for (i = 0; i < r->n_hdrs; i++)
        hosts += strcasecmp(r->head + r->hdrs[i].name, "host") == 0;
    if (hosts > 1 || (hosts == 0 && r->version == 11))
        return cb_fail(p, EPW_E_PARSE, 400, "HTTP/1.1 needs exactly one Host header");
    rc = parse_target(p);
    if (rc)
        return rc;
    /* http-parser leaves content_length at ULLONG_MAX when there is none. */
    if (hp->content_length != (uint64_t)-1 && hp->content_length > p->lim.max_body_bytes)
        return cb_fail(p, EPW_E_TOOBIG, 413, "request body too large");
    p->headers_done = 1;
    /* Stop here so the caller's byte count splits exactly between header and body. */
    http_parser_pause(hp, 1);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    http_req_parser_t *p = hp->data;
    http_req_t *r = &p->req;

    if (len > p->lim.max_body_bytes - r->body_len)
        return cb_fail(p, EPW_E_TOOBIG, 413, "request body too large");
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap * 2 : 1024;
        uint8_t *nb;
        if (cap < r->body_len + len + 1)
            cap = r->body_len + len + 1;
        if (cap > p->lim.max_body_bytes + 1)
            cap = p->lim.max_body_bytes + 1;
        nb = realloc(r->body, cap);
        if (!nb)
            return cb_fail(p, UV_ENOMEM, 500, "out of memory");
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    http_req_parser_t *p = hp->data;

    /* After an Upgrade, http-parser treats the rest as another protocol: close instead. */
    p->req.keep_alive = http_should_keep_alive(hp) && !hp->upgrade;
    if (p->req.body)
        p->req.body[p->req.body_len] = 0; /* room reserved by on_body */
    http_parser_pause(hp, 1);
    p->state = P_HELD;
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static int set_error(http_req_parser_t *p, int err, int status, const char *reason)
{
    p->state = P_ERROR;
    p->err = err;
    p->status = status;
    p->reason = reason;
    p->pend_len = 0;
    return err;
}

/* An unknown method made of upper-case letters is "not implemented"; anything else is garbage. */
static int sniff_method_status(const http_req_parser_t *p)
{
    size_t i = 0, n = p->hdr_raw < SNIFF_LEN ? p->hdr_raw : SNIFF_LEN, letters = 0;

    while (i < n && (p->sniff[i] == '\r' || p->sniff[i] == '\n'))
        i++;
    for (; i < n; i++) {
        if (p->sniff[i] == ' ')
            break;
        if (p->sniff[i] < 'A' || p->sniff[i] > 'Z')
            return 400;
        letters++;
    }
    return letters > 0 ? 501 : 400;
}

static int parse_error(http_req_parser_t *p)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);

    if (p->cb_status)
        return set_error(p, p->cb_err, p->cb_status, p->cb_reason);
    switch (e) {
    case HPE_INVALID_METHOD:
        if (sniff_method_status(p) == 501)
            return set_error(p, EPW_E_PARSE, 501, "method not implemented");
        return set_error(p, EPW_E_PARSE, 400, "malformed request");
    case HPE_HEADER_OVERFLOW:
        return set_error(p, EPW_E_TOOBIG, 413, "request header too large");
    default:
        return set_error(p, EPW_E_PARSE, 400, "malformed request");
    }
}

/* Parses from data until it is used up, a request completes, or an error. *used: bytes taken. */
static int parse_some(http_req_parser_t *p, const uint8_t *data, size_t len, size_t *used)
{
    const size_t body_raw_max = 4 * p->lim.max_body_bytes + 4096;

    *used = 0;
    while (*used < len && p->state == P_PARSING) {
        size_t chunk = len - *used, budget, n;
        int was_header = !p->headers_done;

        budget = was_header ? p->lim.max_header_bytes - p->hdr_raw : body_raw_max - p->body_raw;
        if (budget == 0)
            return was_header ? set_error(p, EPW_E_TOOBIG, 413, "request header too large")
                              : set_error(p, EPW_E_TOOBIG, 413, "request body too large");
        if (chunk > budget)
            chunk = budget;
        if (was_header && p->hdr_raw < SNIFF_LEN) {
            size_t k = SNIFF_LEN - p->hdr_raw < chunk ? SNIFF_LEN - p->hdr_raw : chunk;
            memcpy(p->sniff + p->hdr_raw, data + *used, k);
        }
        n = http_parser_execute(&p->hp, &settings, (const char *)data + *used, chunk);
        if (n > chunk)
            n = chunk;
        if (was_header)
            p->hdr_raw += n;
        else
            p->body_raw += n;
        *used += n;
        if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) {
            http_parser_pause(&p->hp, 0);
            continue;
        }
        if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK)
            return parse_error(p);
        if (n < chunk) /* no error, no pause, yet stopped: never loop without progress */
            return set_error(p, EPW_E_PARSE, 400, "malformed request");
    }
    return 0;
}

static void req_reset(http_req_parser_t *p)
{
    http_req_t *r = &p->req;

    free(r->dec);
    free(r->query);
    free(r->body);
    r->dec = NULL;
    r->query = NULL;
    r->body = NULL;
    r->n_query = 0;
    r->body_len = 0;
    r->body_cap = 0;
    r->head_len = 0;
    r->n_hdrs = 0;
    r->keep_alive = 0;
    r->version = 0;
    r->method = 0;
    p->headers_done = 0;
    p->last_cb = CB_NONE;
    p->hdr_raw = 0;
    p->body_raw = 0;
    p->cb_status = 0;
    p->cb_err = 0;
    p->cb_reason = NULL;
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
}

int http_req_parser_create(const http_req_limits_t *limits, http_req_parser_t **out)
{
    http_req_parser_t *p;

    *out = NULL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return UV_ENOMEM;
    if (limits)
        p->lim = *limits;
    if (!p->lim.max_header_bytes)
        p->lim.max_header_bytes = DEF_MAX_HEADER;
    if (!p->lim.max_body_bytes)
        p->lim.max_body_bytes = DEF_MAX_BODY;
    if (!p->lim.max_headers)
        p->lim.max_headers = DEF_MAX_HDRS;
    if (!p->lim.max_pending)
        p->lim.max_pending = p->lim.max_header_bytes + p->lim.max_body_bytes;
    p->req.head_cap = p->lim.max_header_bytes + 2;
    p->req.head = malloc(p->req.head_cap);
    p->req.hdrs = calloc(p->lim.max_headers, sizeof(*p->req.hdrs));
    if (!p->req.head || !p->req.hdrs) {
        http_req_parser_destroy(p);
        return UV_ENOMEM;
    }
    p->state = P_PARSING;
    req_reset(p);
    *out = p;
    return 0;
}

void http_req_parser_destroy(http_req_parser_t *p)
{
    if (!p)
        return;
    free(p->req.dec);
    free(p->req.query);
    free(p->req.body);
    free(p->req.head);
    free(p->req.hdrs);
    free(p->pend);
    free(p);
}

static int pend_append(http_req_parser_t *p, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    if (len > p->lim.max_pending - p->pend_len)
        return set_error(p, EPW_E_TOOBIG, 413, "too many pipelined bytes");
    if (p->pend_len + len > p->pend_cap) {
        size_t cap = p->pend_cap ? p->pend_cap * 2 : 4096;
        uint8_t *nb;
        if (cap < p->pend_len + len)
            cap = p->pend_len + len;
        if (cap > p->lim.max_pending)
            cap = p->lim.max_pending;
        nb = realloc(p->pend, cap);
        if (!nb)
            return set_error(p, UV_ENOMEM, 500, "out of memory");
        p->pend = nb;
        p->pend_cap = cap;
    }
    memcpy(p->pend + p->pend_len, data, len);
    p->pend_len += len;
    return 0;
}

static int result(const http_req_parser_t *p)
{
    if (p->state == P_ERROR)
        return p->err;
    return p->state == P_HELD ? HTTP_REQ_READY : HTTP_REQ_MORE;
}

int http_req_feed(http_req_parser_t *p, const void *buf, size_t len)
{
    size_t used;
    int rc;

    switch (p->state) {
    case P_ERROR:
        return p->err;
    case P_CLOSED:
        return HTTP_REQ_MORE;
    case P_HELD:
        rc = pend_append(p, buf, len);
        return rc ? rc : HTTP_REQ_MORE;
    default:
        break;
    }
    rc = parse_some(p, buf, len, &used);
    if (rc)
        return rc;
    if (p->state == P_HELD) {
        rc = pend_append(p, (const uint8_t *)buf + used, len - used);
        if (rc)
            return rc;
    }
    return result(p);
}

int http_req_parser_next(http_req_parser_t *p)
{
    size_t used;
    int rc;

    if (p->state != P_HELD)
        return result(p);
    if (!p->req.keep_alive) {
        req_reset(p);
        p->state = P_CLOSED;
        p->pend_len = 0;
        return HTTP_REQ_MORE;
    }
    req_reset(p);
    p->state = P_PARSING;
    if (p->pend_len == 0)
        return HTTP_REQ_MORE;
    rc = parse_some(p, p->pend, p->pend_len, &used);
    if (rc)
        return rc;
    memmove(p->pend, p->pend + used, p->pend_len - used);
    p->pend_len -= used;
    return result(p);
}

const http_req_t *http_req_parser_request(const http_req_parser_t *p)
{
    return p->state == P_HELD ? &p->req : NULL;
}

int http_req_parser_status(const http_req_parser_t *p)
{
    return p->state == P_ERROR ? p->status : 0;
}

const char *http_req_parser_reason(const http_req_parser_t *p)
{
    return p->state == P_ERROR ? p->reason : "";
}

http_method_t http_req_method(const http_req_t *req)
{
    return req->method;
}

const char *http_req_method_name(const http_req_t *req)
{
    return method_names[req->method];
}

const char *http_req_path(const http_req_t *req)
{
    return req->dec + req->path_off;
}

const char *http_req_raw_path(const http_req_t *req)
{
    return req->dec + req->raw_path_off;
}

const char *http_req_target(const http_req_t *req)
{
    return req->head;
}

const char *http_req_query(const http_req_t *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->n_query; i++)
        if (strcmp(req->dec + req->query[i].name, name) == 0)
            return req->dec + req->query[i].value;
    return NULL;
}

size_t http_req_query_count(const http_req_t *req)
{
    return req->n_query;
}

int http_req_query_at(const http_req_t *req, size_t i, const char **name, const char **value)
{
    if (i >= req->n_query)
        return UV_EINVAL;
    if (name)
        *name = req->dec + req->query[i].name;
    if (value)
        *value = req->dec + req->query[i].value;
    return 0;
}

const char *http_req_header(const http_req_t *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->n_hdrs; i++)
        if (strcasecmp(req->head + req->hdrs[i].name, name) == 0)
            return req->head + req->hdrs[i].value;
    return NULL;
}

size_t http_req_header_count(const http_req_t *req)
{
    return req->n_hdrs;
}

int http_req_header_at(const http_req_t *req, size_t i, const char **name, const char **value)
{
    if (i >= req->n_hdrs)
        return UV_EINVAL;
    if (name)
        *name = req->head + req->hdrs[i].name;
    if (value)
        *value = req->head + req->hdrs[i].value;
    return 0;
}

const uint8_t *http_req_body(const http_req_t *req, size_t *len)
{
    static const uint8_t empty[1] = {0};

    if (len)
        *len = req->body_len;
    return req->body ? req->body : empty;
}

int http_req_keep_alive(const http_req_t *req)
{
    return req->keep_alive;
}

int http_req_version(const http_req_t *req)
{
    return req->version;
}

static int is_token68(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

const char *http_req_bearer_token(const http_req_t *req)
{
    const char *v = http_req_header(req, "authorization");
    const char *tok, *s;

    if (!v || strncasecmp(v, "bearer", 6) != 0 || !is_ows(v[6]))
        return NULL;
    tok = v + 6;
    while (is_ows(*tok))
        tok++;
    for (s = tok; is_token68(*s); s++)
        ;
    if (s == tok)
        return NULL;
    while (*s == '=')
        s++;
    return *s == '\0' ? tok : NULL; /* trailing spaces were trimmed when stored */
}

int http_token_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    volatile unsigned char diff = (unsigned char)(alen != blen);
    size_t i;

    /* Walks all of b whatever a holds; the branch on alen only depends on a length. */
    for (i = 0; i < blen; i++) {
        unsigned char c = i < alen ? x[i] : 0;
        diff |= (unsigned char)(c ^ y[i]);
    }
    return diff == 0;
}

int http_req_auth_bearer(const http_req_t *req, const char *expected)
{
    const char *tok;

    if (!expected || !*expected)
        return 0;
    tok = http_req_bearer_token(req);
    if (!tok)
        return 0;
    return http_token_equal(tok, strlen(tok), expected, strlen(expected));
}
