/* cli_http: the epwatch CLI's HTTPS client for the collector's operator API (libcurl, blocking). */
#ifndef CLI_HTTP_H
#define CLI_HTTP_H

#include <stddef.h>
#include <stdint.h>

/*
 * One blocking GET per call, on the calling thread; the only file of the CLI that includes curl.
 * Call cli_http_global_init once before any other thread starts and cli_http_global_cleanup at
 * the end (libcurl's global state is not thread-safe).
 */

/* Connection settings. Every string is borrowed for the duration of the call; NULL/"" = unset. */
typedef struct cli_http_opts_s {
    const char *api;         /* "https://HOST:PORT", optionally with a path prefix */
    const char *ca;          /* PEM bundle that must have signed the collector's certificate */
    const char *cert, *key;  /* operator client certificate and key (PEM); key defaults to cert */
    const char *token;       /* bearer token (alternative to cert/key) */
    const char *server_name; /* name to verify in the collector's certificate (and send as SNI)
                              * while connecting to the host of `api`: "collector" when api is
                              * https://127.0.0.1:7444 and the certificate says DNS:collector */
    uint64_t connect_timeout_ms, timeout_ms; /* 0: 5 s and 30 s */
} cli_http_opts_t;

/* An HTTP answer: any status (the caller reads the API's error object for >= 400). */
typedef struct cli_http_resp_s {
    long status;
    char *body; /* malloc'd, NUL-terminated (len excludes the NUL); free with cli_http_resp_free */
    size_t len;
} cli_http_resp_t;

/* Answers larger than this are refused (EPW_E_TOOBIG): a fleet of snapshots stays far below. */
#define CLI_HTTP_MAX_BODY (64u * 1024u * 1024u)

int cli_http_global_init(void);
void cli_http_global_cleanup(void);

/*
 * GETs `path` ("/api/v1/hosts?x=y", already escaped) below o->api. *resp is cleared on entry and
 * filled on success. On failure `err` receives one complete sentence for the operator, naming the
 * collector's address and, for TLS, which side refused (e.g. "cannot reach collector at
 * https://127.0.0.1:7444: connection refused"; "the collector's certificate is not trusted by --ca
 * ca.crt (...)"; "the collector refused our client certificate op.crt (TLS alert ...)"). Returns:
 *   0                  an HTTP answer arrived (status in resp->status)
 *   EPW_E_UNAVAILABLE  not reachable: name not resolved, connection refused, timeout, closed
 *   EPW_E_TLS_VERIFY   the collector's certificate was not accepted (trust or name)
 *   EPW_E_TLS          the handshake failed otherwise, including our certificate being refused
 *   EPW_E_CONFIG       local settings unusable: bad URL, unreadable CA/cert/key file
 *   EPW_E_TOOBIG       answer above CLI_HTTP_MAX_BODY
 *   EPW_E_PROTO        any other transfer failure
 *   UV_EINVAL, UV_ENOMEM
 */
int cli_http_get(const cli_http_opts_t *o, const char *path, cli_http_resp_t *resp, char *err,
                 size_t errlen);

void cli_http_resp_free(cli_http_resp_t *resp);

/* Percent-encodes `s` for one URL path segment or query value (RFC 3986 unreserved characters
 * kept). Returns a malloc'd string (caller frees) or NULL when out of memory. */
char *cli_url_escape(const char *s);

#endif
