/* cli_http: blocking HTTPS GETs to the collector, with failures explained for operators. */
#include "cli_http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include "epw_err.h"

#define CLI_HTTP_CONNECT_TIMEOUT_MS 5000u
#define CLI_HTTP_TIMEOUT_MS         30000u

int cli_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : EPW_E_INTERNAL;
}

void cli_http_global_cleanup(void)
{
    curl_global_cleanup();
}

void cli_http_resp_free(cli_http_resp_t *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
    resp->status = 0;
}

char *cli_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i, j = 0;
    char *out = malloc(3 * n + 1);

    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out[j++] = (char)c;
        } else {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    out[j] = '\0';
    return out;
}

static int set(const char *s)
{
    return s && *s;
}

static size_t http__write(char *data, size_t size, size_t nmemb, void *user)
{
    cli_http_resp_t *r = user;
    size_t n = size * nmemb;
    char *nb;

    if (n > CLI_HTTP_MAX_BODY - r->len)
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    nb = realloc(r->body, r->len + n + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, data, n);
    r->len += n;
    nb[r->len] = '\0';
    r->body = nb;
    return n;
}

/* strerror text starting in lower case, to sit after a colon. */
static void http__errno_text(long os_errno, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror((int)os_errno));
    if (buf[0])
        buf[0] = (char)tolower((unsigned char)buf[0]);
}

/* Turns a failed transfer into one of the documented codes and a sentence in `err`. */
static int http__explain(CURL *h, CURLcode cc, const char *curlmsg, const cli_http_opts_t *o,
                         const char *host, char *err, size_t errlen)
{
    const char *detail = curlmsg && *curlmsg ? curlmsg : curl_easy_strerror(cc);
    const char *api = o->api;
    long os_errno = 0;
    char why[256];
    int has_alert = strstr(detail, "alert") != NULL;

    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(err, errlen, "cannot reach collector at %s: cannot resolve host name '%s'", api,
                 host);
        return EPW_E_UNAVAILABLE;
    case CURLE_COULDNT_CONNECT:
        if (os_errno)
            http__errno_text(os_errno, why, sizeof(why));
        else
            snprintf(why, sizeof(why), "%s", detail);
        snprintf(err, errlen, "cannot reach collector at %s: %s", api, why);
        return EPW_E_UNAVAILABLE;
    case CURLE_OPERATION_TIMEDOUT: {
        /* libcurl 7.88 reports no phase timings on a timeout, so say how long we waited and
         * pass its detail (connection, TLS handshake or answer) along. */
        double total_s = 0;

        curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &total_s);
        snprintf(err, errlen,
                 "cannot reach collector at %s: no answer within %.0f s (%s); see --timeout and "
                 "--connect-timeout",
                 api, total_s, detail);
        return EPW_E_UNAVAILABLE;
    }
    case CURLE_PEER_FAILED_VERIFICATION:
        if (strstr(detail, "name") || strstr(detail, "match"))
            snprintf(err, errlen,
                     "TLS: the collector's certificate at %s is not valid for the name '%s' (%s); "
                     "connect by a name in its certificate or set server_name / --server-name",
                     api, host, detail);
        else if (set(o->ca))
            snprintf(err, errlen,
                     "TLS: the collector's certificate at %s is not trusted by --ca %s (%s)", api,
                     o->ca, detail);
        else
            snprintf(err, errlen,
                     "TLS: the collector's certificate at %s is not trusted by the system CA "
                     "store (%s); give --ca with the epwatch CA certificate",
                     api, detail);
        return EPW_E_TLS_VERIFY;
    case CURLE_SSL_CERTPROBLEM:
        snprintf(err, errlen, "cannot use the client certificate %s / key %s: %s",
                 set(o->cert) ? o->cert : "-", set(o->key) ? o->key : o->cert, detail);
        return EPW_E_CONFIG;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(err, errlen, "cannot use the CA file %s: %s", set(o->ca) ? o->ca : "-", detail);
        return EPW_E_CONFIG;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(err, errlen, "invalid collector address '%s': %s", api, detail);
        return EPW_E_CONFIG;
    case CURLE_WRITE_ERROR:
        snprintf(err, errlen, "the answer from %s is larger than %u MiB or memory ran out", api,
                 CLI_HTTP_MAX_BODY / (1024u * 1024u));
        return EPW_E_TOOBIG;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        /* A TLS alert from the server during or right after the handshake is its verdict on
         * our certificate (or on its absence): the server side of a mutual-TLS refusal. */
        if (has_alert && set(o->cert))
            snprintf(err, errlen,
                     "TLS: the collector at %s refused our client certificate %s (%s); is it an "
                     "operator certificate issued by the collector's CA?",
                     api, o->cert, detail);
        else if (has_alert)
            snprintf(err, errlen,
                     "TLS: the collector at %s requires a client certificate (%s); give --cert and "
                     "--key (an operator certificate) or --token",
                     api, detail);
        else if (cc == CURLE_SSL_CONNECT_ERROR)
            snprintf(err, errlen, "TLS: handshake with the collector at %s failed: %s", api,
                     detail);
        else if (cc == CURLE_GOT_NOTHING)
            snprintf(err, errlen,
                     "the collector at %s closed the connection without answering (is it the "
                     "operator API port? was our certificate refused?)",
                     api);
        else
            snprintf(err, errlen, "connection to the collector at %s failed: %s", api, detail);
        return cc == CURLE_SSL_CONNECT_ERROR || has_alert ? EPW_E_TLS : EPW_E_UNAVAILABLE;
    default:
        snprintf(err, errlen, "request to the collector at %s failed: %s", api, detail);
        return EPW_E_PROTO;
    }
}

/*
 * Splits o->api into the URL to request and, with server_name, the CONNECT_TO entry that sends
 * the connection to the original host while curl verifies (and sends SNI for) server_name.
 */
static int http__url(const cli_http_opts_t *o, const char *path, char **url_out, char *connect_to,
                     size_t ctlen, char *host_out, size_t hostlen, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *base = NULL, *url = NULL;
    size_t blen;
    int rc = 0;

    *url_out = NULL;
    connect_to[0] = '\0';
    if (!u)
        return UV_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, o->api, 0) ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)) {
        snprintf(err, errlen, "invalid collector address '%s': expected https://HOST:PORT", o->api);
        rc = EPW_E_CONFIG;
        goto out;
    }
    if (strcmp(scheme, "https") != 0) {
        snprintf(err, errlen, "invalid collector address '%s': the operator API is https:// only",
                 o->api);
        rc = EPW_E_CONFIG;
        goto out;
    }
    snprintf(host_out, hostlen, "%s", set(o->server_name) ? o->server_name : host);
    if (set(o->server_name)) {
        snprintf(connect_to, ctlen, "%s:%s:%s:%s", o->server_name, port, host, port);
        if (curl_url_set(u, CURLUPART_HOST, o->server_name, 0)) {
            snprintf(err, errlen, "invalid server_name '%s'", o->server_name);
            rc = EPW_E_CONFIG;
            goto out;
        }
    }
    curl_url_set(u, CURLUPART_QUERY, NULL, 0);
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &base, 0)) {
        rc = UV_ENOMEM;
        goto out;
    }
    blen = strlen(base);
    while (blen && base[blen - 1] == '/') /* the path prefix, if any, without its last '/' */
        blen--;
    url = malloc(blen + strlen(path) + 1);
    if (!url) {
        rc = UV_ENOMEM;
        goto out;
    }
    memcpy(url, base, blen);
    strcpy(url + blen, path);
    *url_out = url;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(base);
    curl_url_cleanup(u);
    return rc;
}

int cli_http_get(const cli_http_opts_t *o, const char *path, cli_http_resp_t *resp, char *err,
                 size_t errlen)
{
    char curlmsg[CURL_ERROR_SIZE] = "";
    char connect_to[600], host[256] = "", *auth = NULL, *url = NULL;
    struct curl_slist *headers = NULL, *ct = NULL, *tmp;
    CURL *h = NULL;
    CURLcode cc;
    int rc;

    if (resp)
        memset(resp, 0, sizeof(*resp));
    if (err && errlen)
        err[0] = '\0';
    if (!o || !set(o->api) || !path || !resp || !err || !errlen)
        return UV_EINVAL;
    rc = http__url(o, path, &url, connect_to, sizeof(connect_to), host, sizeof(host), err, errlen);
    if (rc)
        goto out;
    h = curl_easy_init();
    if (!h) {
        rc = UV_ENOMEM;
        goto out;
    }
    tmp = curl_slist_append(headers, "Accept: application/json");
    if (!tmp) {
        rc = UV_ENOMEM;
        goto out;
    }
    headers = tmp;
    if (set(o->token)) {
        size_t n = strlen(o->token) + sizeof("Authorization: Bearer ");

        auth = malloc(n);
        if (!auth) {
            rc = UV_ENOMEM;
            goto out;
        }
        snprintf(auth, n, "Authorization: Bearer %s", o->token);
        tmp = curl_slist_append(headers, auth);
        if (!tmp) {
            rc = UV_ENOMEM;
            goto out;
        }
        headers = tmp;
    }
    if (connect_to[0]) {
        ct = curl_slist_append(NULL, connect_to);
        if (!ct) {
            rc = UV_ENOMEM;
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlmsg);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "epwatch/" EPW_VERSION);
    curl_easy_setopt(
        h, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(o->connect_timeout_ms ? o->connect_timeout_ms : CLI_HTTP_CONNECT_TIMEOUT_MS));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     (long)(o->timeout_ms ? o->timeout_ms : CLI_HTTP_TIMEOUT_MS));
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (set(o->ca))
        curl_easy_setopt(h, CURLOPT_CAINFO, o->ca);
    if (set(o->cert)) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, o->cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, set(o->key) ? o->key : o->cert);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http__write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        rc = http__explain(h, cc, curlmsg, o, host, err, errlen);
        cli_http_resp_free(resp);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (!resp->body) { /* an empty body still reads as a string */
        resp->body = calloc(1, 1);
        if (!resp->body) {
            rc = UV_ENOMEM;
            goto out;
        }
    }
out:
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    curl_slist_free_all(ct);
    if (auth) {
        /* The token is a credential: do not leave it in freed heap memory. */
        volatile char *p = auth;

        while (*p)
            *p++ = '\0';
        free(auth);
    }
    free(url);
    return rc;
}
