/* epw_err: the project's single error space. */
#ifndef EPW_ERR_H
#define EPW_ERR_H

/*
 * Every function that can fail returns int: 0 on success, negative on failure.
 * - libuv codes (UV_E*, i.e. negated errno on Unix) pass through unchanged.
 * - Project codes live in the block below, far from errno and from libuv's range.
 * - mbedTLS and SQLite codes never escape their wrappers: they are logged there with their own
 *   text and translated to one of these (their numeric ranges overlap -errno).
 */
enum {
    EPW_ERR_FIRST = -40099,
    EPW_E_PARSE = -40001,       /* malformed input text */
    EPW_E_TRUNCATED = -40002,   /* input ended in the middle of a field */
    EPW_E_TOOBIG = -40003,      /* a size limit was exceeded */
    EPW_E_PROTO = -40004,       /* a peer broke the wire protocol */
    EPW_E_TLS = -40005,         /* TLS failure (details logged by the TLS wrapper) */
    EPW_E_TLS_VERIFY = -40006,  /* the peer's certificate was not accepted */
    EPW_E_DB = -40007,          /* database failure (details logged by the store) */
    EPW_E_CONFIG = -40008,      /* invalid configuration (details logged with file:line) */
    EPW_E_UNAVAILABLE = -40009, /* a data source is not available on this host */
    EPW_E_REJECTED = -40010,    /* the collector refused this agent */
    EPW_E_USAGE = -40011,       /* bad command-line usage */
    EPW_E_TIMEOUT = -40012,
    EPW_E_CLOSED = -40013, /* the connection or object was closed */
    EPW_E_AGAIN = -40014,  /* try again later (would block) */
    EPW_E_NOTFOUND = -40015,
    EPW_E_INTERNAL = -40016,
    EPW_ERR_LAST = -40000
};

/* Text for any error code of this space (project or libuv). Never NULL; static storage. */
const char *epw_strerror(int err);

/* Short symbolic name ("EPW_E_PARSE", "ECONNREFUSED"). Never NULL; static storage. */
const char *epw_err_name(int err);

#endif
