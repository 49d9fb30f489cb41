/* sink_webhook: HTTP POST of alerts with libcurl's multi interface on the libuv loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "epw_err.h"
#include "epw_log.h"
#include "sink_internal.h"

#define WEBHOOK__BACKOFF_MAX_MS 300000u

/*
 * curl tells us which sockets to watch (socket callback -> one uv_poll_t each) and when to call
 * it back (timer callback -> curl_timer); we call curl_multi_socket_action from those handles and
 * then read finished transfers. curl calls are never made from inside curl's own callbacks.
 * One request at a time (alerts stay in order); between attempts the backoff timer runs.
 * Handles: two timers for the sink's life, one poll per socket curl opens; the sink is freed
 * when the last one is closed after sink_webhook_close.
 */
typedef struct webhook__sock_s {
    uv_poll_t poll; /* first: the close callback frees the struct through it */
    curl_socket_t fd;
    sink_webhook_t *w;
    struct webhook__sock_s *prev, *next; /* open polls, for a last sweep at close */
} webhook__sock_t;

struct sink_webhook_s {
    sinks_t *s;
    uv_loop_t *loop;
    char *url, *ca;
    struct curl_slist *headers;
    uint64_t timeout_ms, backoff_ms;
    int retries;
    CURLM *multi;
    uv_timer_t curl_timer, backoff;
    sink_queue_t q;
    sink_job_t *cur;
    CURL *easy; /* the current attempt, while in the multi */
    int attempt;
    long http_status;
    webhook__sock_t *socks; /* polls not yet closing */
    int open;               /* handles not yet closed */
    int global_init;
    char errbuf[CURL_ERROR_SIZE];
};

static void webhook__start_next(sink_webhook_t *w);
static void webhook__check(sink_webhook_t *w);

static size_t webhook__discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static void webhook__handle_closed(uv_handle_t *h)
{
    sink_webhook_t *w = h->data;

    if (h->type == UV_POLL)
        free(h); /* the poll is the first member of its webhook__sock_t */
    if (--w->open > 0)
        return;
    free(w->url);
    free(w->ca);
    if (w->global_init)
        curl_global_cleanup();
    {
        sinks_t *s = w->s;

        free(w);
        sinks__unref(s);
    }
}

static void webhook__poll_cb(uv_poll_t *p, int status, int events)
{
    webhook__sock_t *k = (webhook__sock_t *)p;
    sink_webhook_t *w = k->w;
    int flags = 0, running = 0;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* May close `k` (CURL_POLL_REMOVE): not touched afterwards. */
    curl_multi_socket_action(w->multi, k->fd, flags, &running);
    webhook__check(w);
}

static void webhook__sock_close(sink_webhook_t *w, webhook__sock_t *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        w->socks = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, webhook__handle_closed);
}

static int webhook__socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    sink_webhook_t *w = userp;
    webhook__sock_t *k = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        /* curl drops its socketp entry itself; it closes the fd after this returns. */
        if (k)
            webhook__sock_close(w, k);
        return 0;
    }
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k)
            return -1;
        if (uv_poll_init_socket(w->loop, &k->poll, fd)) {
            free(k);
            return -1;
        }
        k->poll.data = w;
        k->fd = fd;
        k->w = w;
        k->next = w->socks;
        if (w->socks)
            w->socks->prev = k;
        w->socks = k;
        w->open++;
        curl_multi_assign(w->multi, fd, k);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&k->poll, events, webhook__poll_cb) ? -1 : 0;
}

static void webhook__curl_timer_cb(uv_timer_t *t)
{
    sink_webhook_t *w = t->data;
    int running = 0;

    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    webhook__check(w);
}

static int webhook__timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    sink_webhook_t *w = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&w->curl_timer);
    else
        uv_timer_start(&w->curl_timer, webhook__curl_timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* Reports the current job with `status` and moves on. */
static void webhook__finish(sink_webhook_t *w, int status, const char *detail)
{
    sink_job_t *job = w->cur;
    sinks_result_t r;

    memset(&r, 0, sizeof(r));
    r.sink = SINKS_WEBHOOK;
    r.status = status;
    r.attempts = w->attempt;
    r.http_status = w->http_status;
    w->cur = NULL;
    if (status == 0)
        EPW_DEBUG("sinks", "webhook: alert %s (%s) delivered: HTTP %ld, attempt %d", job->key,
                  detect_transition_name(job->transition), w->http_status, w->attempt);
    sinks__report(w->s, job, &r, detail);
    sink_job_free(job);
}

/* Starts one attempt of the current job; on a setup failure the job is finished. */
static void webhook__attempt(sink_webhook_t *w)
{
    sink_job_t *job = w->cur;
    CURL *h;
    CURLMcode mc;

    w->attempt++;
    w->http_status = 0;
    w->errbuf[0] = '\0';
    h = curl_easy_init();
    if (!h) {
        webhook__finish(w, UV_ENOMEM, "curl_easy_init failed");
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, w->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, job->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->body_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "epwatch-collector/" EPW_VERSION);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, webhook__discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, w->errbuf);
    if (w->ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, w->ca);
    mc = curl_multi_add_handle(w->multi, h);
    if (mc != CURLM_OK) {
        curl_easy_cleanup(h);
        webhook__finish(w, EPW_E_INTERNAL, curl_multi_strerror(mc));
        return;
    }
    w->easy = h;
}

static void webhook__backoff_cb(uv_timer_t *t)
{
    sink_webhook_t *w = t->data;

    webhook__attempt(w);
    if (!w->cur)
        webhook__start_next(w);
    if (!w->cur)
        sinks__idle(w->s);
}

/* The outcome of one attempt: 0, or an error and whether another attempt may help. */
static int webhook__classify(CURLcode cc, long http, int *retry)
{
    *retry = 1;
    switch (cc) {
    case CURLE_OK:
        if (http >= 200 && http <= 299)
            return 0;
        *retry = http >= 500 || http == 408 || http == 429;
        return EPW_E_REJECTED;
    case CURLE_OPERATION_TIMEDOUT:
        return EPW_E_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return UV_ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return UV_EAI_NONAME;
    case CURLE_PEER_FAILED_VERIFICATION:
        *retry = 0;
        return EPW_E_TLS_VERIFY;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        *retry = cc == CURLE_SSL_CONNECT_ERROR;
        return EPW_E_TLS;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        *retry = 0;
        return EPW_E_CONFIG;
    case CURLE_OUT_OF_MEMORY:
        return UV_ENOMEM;
    default:
        return EPW_E_UNAVAILABLE;
    }
}

/* Reads finished transfers; called after every curl_multi_socket_action. */
static void webhook__check(sink_webhook_t *w)
{
    CURLMsg *msg;
    int left, retry, status;
    char detail[CURL_ERROR_SIZE + 64];

    while ((msg = curl_multi_info_read(w->multi, &left))) {
        CURL *h = msg->easy_handle;
        CURLcode cc = msg->data.result;

        if (msg->msg != CURLMSG_DONE || h != w->easy)
            continue;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &w->http_status);
        curl_multi_remove_handle(w->multi, h);
        curl_easy_cleanup(h);
        w->easy = NULL;
        status = webhook__classify(cc, w->http_status, &retry);
        if (cc == CURLE_OK)
            snprintf(detail, sizeof(detail), "HTTP %ld", w->http_status);
        else
            snprintf(detail, sizeof(detail), "%s",
                     w->errbuf[0] ? w->errbuf : curl_easy_strerror(cc));
        if (status == 0) {
            webhook__finish(w, 0, NULL);
        } else if (retry && w->attempt <= w->retries) {
            uint64_t delay = w->backoff_ms << (w->attempt - 1);

            if (delay > WEBHOOK__BACKOFF_MAX_MS)
                delay = WEBHOOK__BACKOFF_MAX_MS;
            EPW_DEBUG("sinks", "webhook: alert %s attempt %d failed (%s), retrying in %llu ms",
                      w->cur->key, w->attempt, detail, (unsigned long long)delay);
            sinks__count_retry(w->s);
            uv_timer_start(&w->backoff, webhook__backoff_cb, delay, 0);
        } else {
            webhook__finish(w, status, detail);
        }
    }
    webhook__start_next(w);
    if (!w->cur)
        sinks__idle(w->s);
}

static void webhook__start_next(sink_webhook_t *w)
{
    while (!w->cur && w->q.head) {
        w->cur = sink_queue_pop(&w->q);
        w->attempt = 0;
        webhook__attempt(w);
    }
}

int sink_webhook_create(sinks_t *s, uv_loop_t *loop, const sinks_conf_t *c, sink_webhook_t **out)
{
    sink_webhook_t *w;
    /* "Expect:" keeps curl from waiting for a 100-continue that simple receivers never send. */
    static const char *const fixed[] = {"Content-Type: application/json", "Expect:"};
    struct curl_slist *l;
    int rc = UV_ENOMEM;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (!w)
        return UV_ENOMEM;
    w->s = s;
    w->loop = loop;
    w->timeout_ms = c->webhook_timeout_ms;
    w->backoff_ms = c->webhook_backoff_ms;
    w->retries = c->webhook_retries;
    w->url = strdup(c->webhook_url);
    w->ca = c->webhook_ca ? strdup(c->webhook_ca) : NULL;
    if (!w->url || (c->webhook_ca && !w->ca))
        goto fail;
    for (size_t i = 0; i < 2; i++) {
        l = curl_slist_append(w->headers, fixed[i]);
        if (!l)
            goto fail;
        w->headers = l;
    }
    for (size_t i = 0; i < c->webhook_headers.count; i++) {
        l = curl_slist_append(w->headers, c->webhook_headers.items[i]);
        if (!l)
            goto fail;
        w->headers = l;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = EPW_E_INTERNAL;
        goto fail;
    }
    w->global_init = 1;
    w->multi = curl_multi_init();
    if (!w->multi) {
        rc = EPW_E_INTERNAL;
        goto fail;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, webhook__socket_fn);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, webhook__timer_fn);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    /* uv_timer_init cannot fail (libuv returns 0 unconditionally): no handle to undo. */
    (void)uv_timer_init(loop, &w->curl_timer);
    (void)uv_timer_init(loop, &w->backoff);
    w->curl_timer.data = w;
    w->backoff.data = w;
    w->open = 2;
    if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS))
        EPW_WARN("sinks", "webhook: this libcurl resolves names synchronously: use an IP "
                          "address in sink.webhook.url to keep the event loop responsive");
    *out = w;
    return 0;
fail:
    if (w->multi)
        curl_multi_cleanup(w->multi);
    if (w->global_init)
        curl_global_cleanup();
    curl_slist_free_all(w->headers);
    free(w->url);
    free(w->ca);
    free(w);
    return rc;
}

void sink_webhook_push(sink_webhook_t *w, sink_job_t *job)
{
    sink_queue_push(&w->q, job);
    webhook__start_next(w);
}

size_t sink_webhook_pending(const sink_webhook_t *w)
{
    return w->q.count + (w->cur ? 1 : 0);
}

void sink_webhook_cancel(sink_webhook_t *w)
{
    sink_job_t *job;

    uv_timer_stop(&w->backoff);
    if (w->easy) {
        curl_multi_remove_handle(w->multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
    }
    if (w->cur)
        webhook__finish(w, EPW_E_CLOSED, "aborted at shutdown");
    while ((job = sink_queue_pop(&w->q))) {
        sinks_result_t r;

        memset(&r, 0, sizeof(r));
        r.sink = SINKS_WEBHOOK;
        r.status = EPW_E_CLOSED;
        sinks__report(w->s, job, &r, "not sent: shutting down");
        sink_job_free(job);
    }
}

void sink_webhook_close(sink_webhook_t *w)
{
    /* Cleanup first: it may still call the socket callback (polls closed there) and the timer
     * callback (stops curl_timer, still open). */
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
    curl_slist_free_all(w->headers);
    w->headers = NULL;
    /* curl stops watching a socket when no transfer uses it (cached connections included), so
     * this finds none; it only guarantees that the loop can close. */
    while (w->socks)
        webhook__sock_close(w, w->socks);
    uv_close((uv_handle_t *)&w->curl_timer, webhook__handle_closed);
    uv_close((uv_handle_t *)&w->backoff, webhook__handle_closed);
}
