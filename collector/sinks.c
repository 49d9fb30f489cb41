/* sinks: alert fan-out: configuration, JSON, filters, log and syslog, queues and shutdown. */
#include "epw_attr.h"
#include "sinks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_util.h"
#include "sink_internal.h"

#define SINKS__SEEN_MAX 4096 /* episode keys remembered per sink (active episodes told about) */
#define SINKS__KIND_MAX 8    /* detect_kind_t values are 1..8 */

const char *const sinks_severity_choices[] = {"warning", "critical", NULL};
const char *const sinks_facility_choices[] = {"user",   "daemon", "local0", "local1",
                                              "local2", "local3", "local4", "local5",
                                              "local6", "local7", NULL};
static const int sinks__facilities[] = {LOG_USER,   LOG_DAEMON, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2,
                                        LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};

/* A bare sinks_conf_t seen through the embedding macro (member at offset 0). */
typedef struct sinks__wrap_s {
    sinks_conf_t c;
} sinks__wrap_t;

static const epw_cfg_key_t sinks__keys[] = {SINKS_CONF_KEYS(sinks__wrap_t, c), EPW_CFG_END};

typedef struct sinks__filter_s {
    bool enabled;
    detect_severity_t min;
    unsigned kinds; /* bit (1 << kind); 0 = every kind */
    char **seen;    /* keys of active episodes this sink was sent, oldest first */
    size_t nseen;
} sinks__filter_t;

struct sinks_s {
    uv_loop_t *loop;
    sinks_result_cb cb;
    void *ud;
    sinks_close_cb close_cb;
    size_t queue_max;
    uint64_t close_grace_ms;
    sinks__filter_t filter[SINKS_COUNT];
    sinks_stats_t stats[SINKS_COUNT];
    epw_complain_t complain[SINKS_COUNT];
    sink_exec_t *exec;
    sink_webhook_t *webhook;
    char *syslog_ident; /* openlog keeps the pointer: lives until the set is freed */
    int syslog_facility;
    uv_timer_t timer; /* the grace period, then the deferred finish */
    int closing;      /* sinks_close was called */
    int finished;     /* handles are closing */
    int refs;         /* the timer and each sub-sink not yet freed */
};

const char *sinks_id_name(sinks_id_t id)
{
    switch (id) {
    case SINKS_LOG:
        return "log";
    case SINKS_EXEC:
        return "exec";
    case SINKS_WEBHOOK:
        return "webhook";
    case SINKS_SYSLOG:
        return "syslog";
    default:
        return "?";
    }
}

const epw_cfg_key_t *sinks_conf_keys(void)
{
    return sinks__keys;
}

static void sinks__errf(char *err, size_t errlen, const char *fmt, ...) EPW_PRINTF(3, 4);

static void sinks__errf(char *err, size_t errlen, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (!err || !errlen)
        return;
    used = strnlen(err, errlen);
    if (used + 1 >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/* Kind names to a bit mask; -1 (and `bad` set) for an unknown name. */
static int sinks__kinds_mask(const epw_cfg_list_t *l, unsigned *mask, const char **bad)
{
    *mask = 0;
    *bad = NULL;
    for (size_t i = 0; i < l->count; i++) {
        int found = 0;

        for (int k = 1; k <= SINKS__KIND_MAX; k++) {
            if (!strcasecmp(l->items[i], detect_kind_name((detect_kind_t)k))) {
                *mask |= 1u << k;
                found = 1;
            }
        }
        if (!found) {
            *bad = l->items[i];
            return -1;
        }
    }
    return 0;
}

int sinks_conf_check(const sinks_conf_t *c, char *err, size_t errlen)
{
    static const char *const names[] = {"sink.exec.kinds", "sink.webhook.kinds",
                                        "sink.syslog.kinds"};
    const epw_cfg_list_t *lists[3];
    int rc = 0;
    unsigned mask;
    const char *bad;

    if (!c)
        return UV_EINVAL;
    lists[0] = &c->exec_kinds;
    lists[1] = &c->webhook_kinds;
    lists[2] = &c->syslog_kinds;
    for (int i = 0; i < 3; i++) {
        if (sinks__kinds_mask(lists[i], &mask, &bad)) {
            sinks__errf(err, errlen, "key '%s': unknown alert kind '%s'\n", names[i], bad);
            rc = EPW_E_CONFIG;
        }
    }
    if (c->webhook_url && strncasecmp(c->webhook_url, "http://", 7) &&
        strncasecmp(c->webhook_url, "https://", 8)) {
        sinks__errf(err, errlen, "key 'sink.webhook.url': not an http:// or https:// URL\n");
        rc = EPW_E_CONFIG;
    }
    if (c->webhook_url && strpbrk(c->webhook_url, "\r\n \t")) {
        sinks__errf(err, errlen, "key 'sink.webhook.url': contains white space\n");
        rc = EPW_E_CONFIG;
    }
    for (size_t i = 0; i < c->webhook_headers.count; i++) {
        const char *h = c->webhook_headers.items[i];
        const char *colon = strchr(h, ':');

        /* Header values are secrets: name the item by position, never print it. */
        if (!colon || colon == h || strpbrk(h, "\r\n") || memchr(h, ' ', (size_t)(colon - h))) {
            sinks__errf(err, errlen, "key 'sink.webhook.headers': item %zu is not 'Name: value'\n",
                        i + 1);
            rc = EPW_E_CONFIG;
        }
    }
    if (c->queue_max < 1) {
        sinks__errf(err, errlen, "key 'sink.queue_max': must be at least 1\n");
        rc = EPW_E_CONFIG;
    }
    if (c->syslog_facility < 0 ||
        c->syslog_facility >= (int)(sizeof(sinks__facilities) / sizeof(sinks__facilities[0]))) {
        sinks__errf(err, errlen, "key 'sink.syslog.facility': out of range\n");
        rc = EPW_E_CONFIG;
    }
    return rc;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static int sinks__add_time(cJSON *o, const char *name, int64_t ms)
{
    char buf[48];

    if (epw_format_rfc3339(ms, buf, sizeof(buf)))
        return cJSON_AddNullToObject(o, name) ? 0 : UV_ENOMEM;
    return cJSON_AddStringToObject(o, name, buf) ? 0 : UV_ENOMEM;
}

cJSON *sinks_alert_json(const detect_alert_t *a)
{
    cJSON *o = NULL, *ev;
    int resolved;

    if (!a)
        return NULL;
    resolved = a->transition == DETECT_RESOLVED;
    o = cJSON_CreateObject();
    if (!o)
        goto fail;
    if (!cJSON_AddStringToObject(o, "host", a->host ? a->host : "") ||
        !cJSON_AddStringToObject(o, "kind", detect_kind_name(a->kind)) ||
        !cJSON_AddStringToObject(o, "severity", detect_severity_name(a->severity)) ||
        !cJSON_AddStringToObject(o, "prev_severity", detect_severity_name(a->prev_severity)) ||
        !cJSON_AddStringToObject(o, "transition", detect_transition_name(a->transition)) ||
        !cJSON_AddBoolToObject(o, "active", !resolved) ||
        !cJSON_AddStringToObject(o, "key", a->key ? a->key : "") ||
        !cJSON_AddStringToObject(o, "subject", a->subject ? a->subject : "") ||
        !cJSON_AddStringToObject(o, "summary", a->summary ? a->summary : ""))
        goto fail;
    if (sinks__add_time(o, "raised_at", a->started_ms) || sinks__add_time(o, "at", a->at_ms))
        goto fail;
    if (resolved ? sinks__add_time(o, "resolved_at", a->at_ms)
                 : !cJSON_AddNullToObject(o, "resolved_at"))
        goto fail;
    if (!cJSON_AddNumberToObject(o, "at_ms", (double)a->at_ms))
        goto fail;
    if (a->evidence) {
        ev = cJSON_Duplicate(a->evidence, 1);
        if (!ev)
            goto fail;
        cJSON_AddItemToObject(o, "evidence", ev);
    } else if (!cJSON_AddNullToObject(o, "evidence")) {
        goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* ---- filters ------------------------------------------------------------------------------- */

static int sinks__seen_find(const sinks__filter_t *f, const char *key)
{
    for (size_t i = 0; i < f->nseen; i++)
        if (!strcmp(f->seen[i], key))
            return (int)i;
    return -1;
}

static void sinks__seen_remove(sinks__filter_t *f, size_t i)
{
    free(f->seen[i]);
    memmove(&f->seen[i], &f->seen[i + 1], (f->nseen - i - 1) * sizeof(f->seen[0]));
    f->nseen--;
}

/* Whether `a` goes to this sink; remembers the episodes it was told about. */
static bool sinks__filter_pass(sinks__filter_t *f, const detect_alert_t *a)
{
    int idx = sinks__seen_find(f, a->key);
    bool pass;

    if (f->kinds && !(f->kinds & (1u << (unsigned)a->kind)))
        return false;
    pass = a->severity >= f->min || a->prev_severity >= f->min ||
           (idx >= 0 && a->transition == DETECT_RESOLVED);
    if (!pass)
        return false;
    if (a->transition == DETECT_RESOLVED) {
        if (idx >= 0)
            sinks__seen_remove(f, (size_t)idx);
    } else if (idx < 0) {
        char *k = strdup(a->key);

        /* Out of memory or full: forgetting only costs that episode's unconditional RESOLVED. */
        if (k && f->nseen == SINKS__SEEN_MAX)
            sinks__seen_remove(f, 0);
        if (k)
            f->seen[f->nseen++] = k;
    }
    return true;
}

static void sinks__filter_free(sinks__filter_t *f)
{
    for (size_t i = 0; i < f->nseen; i++)
        free(f->seen[i]);
    free(f->seen);
    f->seen = NULL;
    f->nseen = 0;
}

static int sinks__filter_init(sinks__filter_t *f, int min_index, const epw_cfg_list_t *kinds)
{
    const char *bad;

    f->enabled = true;
    f->min = min_index == 1 ? DETECT_CRITICAL : DETECT_WARNING;
    if (sinks__kinds_mask(kinds, &f->kinds, &bad))
        return EPW_E_CONFIG;
    f->seen = calloc(SINKS__SEEN_MAX, sizeof(f->seen[0]));
    return f->seen ? 0 : UV_ENOMEM;
}

/* ---- jobs ---------------------------------------------------------------------------------- */

void sink_job_free(sink_job_t *job)
{
    if (!job)
        return;
    free(job->body);
    free(job->key);
    for (size_t i = 0; i < sizeof(job->env) / sizeof(job->env[0]); i++)
        free(job->env[i]);
    free(job);
}

void sink_queue_push(sink_queue_t *q, sink_job_t *job)
{
    job->next = NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->count++;
}

sink_job_t *sink_queue_pop(sink_queue_t *q)
{
    sink_job_t *job = q->head;

    if (!job)
        return NULL;
    q->head = job->next;
    if (!q->head)
        q->tail = NULL;
    q->count--;
    job->next = NULL;
    return job;
}

static char *sinks__env(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s=%s", name, value);
    return s;
}

static sink_job_t *sinks__job_new(const detect_alert_t *a, const char *body, int with_env)
{
    sink_job_t *job = calloc(1, sizeof(*job));

    if (!job)
        return NULL;
    job->body_len = strlen(body);
    job->body = strdup(body);
    job->key = strdup(a->key);
    job->transition = a->transition;
    job->queued_ms = epw_mono_ms();
    if (!job->body || !job->key)
        goto fail;
    if (with_env) {
        job->env[0] = sinks__env("EPWATCH_HOST", a->host);
        job->env[1] = sinks__env("EPWATCH_KIND", detect_kind_name(a->kind));
        job->env[2] = sinks__env("EPWATCH_SEVERITY", detect_severity_name(a->severity));
        job->env[3] = sinks__env("EPWATCH_TRANSITION", detect_transition_name(a->transition));
        job->env[4] = sinks__env("EPWATCH_SUMMARY", a->summary ? a->summary : "");
        job->env[5] = sinks__env("EPWATCH_KEY", a->key);
        job->env[6] = sinks__env("EPWATCH_SUBJECT", a->subject ? a->subject : "");
        for (int i = 0; i < 7; i++)
            if (!job->env[i])
                goto fail;
    }
    return job;
fail:
    sink_job_free(job);
    return NULL;
}

/* ---- reporting ----------------------------------------------------------------------------- */

void sinks__report(sinks_t *s, const sink_job_t *job, sinks_result_t *r, const char *detail)
{
    sinks_stats_t *st = &s->stats[r->sink];
    const char *name = sinks_id_name(r->sink);

    r->key = job->key;
    r->transition = job->transition;
    r->elapsed_ms = epw_mono_ms() - job->queued_ms;
    if (r->status == 0) {
        st->sent++;
        epw_complain_clear(&s->complain[r->sink], "sinks", name);
    } else if (r->status == EPW_E_TOOBIG) {
        st->dropped++;
        epw_complain(&s->complain[r->sink], EPW_LOG_WARN, "sinks",
                     "%s: queue full (%zu alerts), alert %s (%s) dropped", name, s->queue_max,
                     job->key, detect_transition_name(job->transition));
    } else {
        st->failed++;
        char tries[48] = "";

        if (r->attempts > 0)
            snprintf(tries, sizeof(tries), " after %d attempt%s", r->attempts,
                     r->attempts == 1 ? "" : "s");
        epw_complain(&s->complain[r->sink], EPW_LOG_WARN, "sinks",
                     "%s: alert %s (%s) not delivered%s: %s%s%s", name, job->key,
                     detect_transition_name(job->transition), tries, epw_strerror(r->status),
                     detail ? ": " : "", detail ? detail : "");
    }
    if (s->cb)
        s->cb(s->ud, r);
}

void sinks__count_retry(sinks_t *s)
{
    s->stats[SINKS_WEBHOOK].retries++;
}

static size_t sinks__pending(const sinks_t *s)
{
    return (s->exec ? sink_exec_pending(s->exec) : 0) +
           (s->webhook ? sink_webhook_pending(s->webhook) : 0);
}

/* ---- create / dispatch --------------------------------------------------------------------- */

static void sinks__free(sinks_t *s)
{
    for (int i = 0; i < SINKS_COUNT; i++)
        sinks__filter_free(&s->filter[i]);
    free(s->syslog_ident);
    free(s);
}

int sinks_create(uv_loop_t *loop, const sinks_conf_t *conf, sinks_result_cb cb, void *ud,
                 sinks_t **out)
{
    char err[1024] = "";
    sinks_t *s = NULL;
    int rc;

    if (out)
        *out = NULL;
    if (!loop || !conf || !out)
        return UV_EINVAL;
    rc = sinks_conf_check(conf, err, sizeof(err));
    if (rc) {
        EPW_ERROR("sinks", "invalid configuration:\n%s", err);
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        rc = UV_ENOMEM;
        goto out;
    }
    s->loop = loop;
    s->cb = cb;
    s->ud = ud;
    s->queue_max = (size_t)conf->queue_max;
    s->close_grace_ms = conf->close_grace_ms;
    s->filter[SINKS_LOG].enabled = true;
    if (conf->exec_command) {
        rc = sinks__filter_init(&s->filter[SINKS_EXEC], conf->exec_min_severity, &conf->exec_kinds);
        if (rc)
            goto out;
    }
    if (conf->webhook_url) {
        rc = sinks__filter_init(&s->filter[SINKS_WEBHOOK], conf->webhook_min_severity,
                                &conf->webhook_kinds);
        if (rc)
            goto out;
    }
    if (conf->syslog_enabled) {
        rc = sinks__filter_init(&s->filter[SINKS_SYSLOG], conf->syslog_min_severity,
                                &conf->syslog_kinds);
        if (rc)
            goto out;
        s->syslog_ident = strdup(conf->syslog_ident ? conf->syslog_ident : "epwatch-collector");
        if (!s->syslog_ident) {
            rc = UV_ENOMEM;
            goto out;
        }
        s->syslog_facility = sinks__facilities[conf->syslog_facility];
    }
    rc = uv_timer_init(loop, &s->timer);
    if (rc)
        goto out;
    s->timer.data = s;
    s->refs = 1;
    /* From here the set only goes away through sinks_close. */
    if (conf->exec_command) {
        rc = sink_exec_create(s, loop, conf, &s->exec);
        if (rc)
            goto undo;
        s->refs++;
    }
    if (conf->webhook_url) {
        rc = sink_webhook_create(s, loop, conf, &s->webhook);
        if (rc)
            goto undo;
        s->refs++;
    }
    if (s->syslog_ident)
        openlog(s->syslog_ident, LOG_PID | LOG_NDELAY, s->syslog_facility);
    for (int i = 0; i < SINKS_COUNT; i++)
        s->stats[i].enabled = s->filter[i].enabled;
    EPW_INFO("sinks", "alert sinks: log%s%s%s", s->exec ? ", exec" : "",
             s->webhook ? ", webhook" : "", s->syslog_ident ? ", syslog" : "");
    *out = s;
    return 0;
undo:
    /* Sub-sinks created so far close asynchronously; the loop's next run frees everything. */
    free(s->syslog_ident);
    s->syslog_ident = NULL;
    sinks_close(s, NULL);
    return rc;
out:
    if (s)
        sinks__free(s);
    return rc;
}

static const char *sinks__line(const detect_alert_t *a, char *buf, size_t len)
{
    const char *subj = a->subject ? a->subject : "";

    snprintf(buf, len, "alert %s: %s %s %s%s%s: %s [%s]", detect_transition_name(a->transition),
             a->host, detect_severity_name(a->severity), detect_kind_name(a->kind),
             *subj ? " " : "", subj, a->summary ? a->summary : "", a->key);
    return buf;
}

static int sinks__syslog_priority(const detect_alert_t *a)
{
    if (a->transition == DETECT_RESOLVED || a->transition == DETECT_DEESCALATED)
        return LOG_NOTICE;
    return a->severity == DETECT_CRITICAL ? LOG_CRIT : LOG_WARNING;
}

static void sinks__enqueue(sinks_t *s, sinks_id_t id, const detect_alert_t *a, const char *body)
{
    size_t pending =
        id == SINKS_EXEC ? sink_exec_pending(s->exec) : sink_webhook_pending(s->webhook);
    sinks_result_t r;
    sink_job_t *job = sinks__job_new(a, body, id == SINKS_EXEC);

    memset(&r, 0, sizeof(r));
    r.sink = id;
    if (!job) {
        s->stats[id].failed++;
        epw_complain(&s->complain[id], EPW_LOG_WARN, "sinks", "%s: alert %s lost: out of memory",
                     sinks_id_name(id), a->key);
        return;
    }
    if (pending >= s->queue_max) {
        r.status = EPW_E_TOOBIG;
        sinks__report(s, job, &r, NULL);
        sink_job_free(job);
        return;
    }
    if (id == SINKS_EXEC)
        sink_exec_push(s->exec, job);
    else
        sink_webhook_push(s->webhook, job);
}

int sinks_dispatch(sinks_t *s, const detect_alert_t *a)
{
    char line[1024];
    bool pass[SINKS_COUNT] = {false};
    cJSON *j = NULL;
    char *body = NULL;
    int rc = 0;

    if (!s || !a || !a->host || !a->key)
        return UV_EINVAL;
    if (s->closing)
        return EPW_E_CLOSED;
    sinks__line(a, line, sizeof(line));
    if (a->transition == DETECT_RESOLVED || a->transition == DETECT_DEESCALATED)
        EPW_INFO("sinks", "%s", line);
    else
        EPW_WARN("sinks", "%s", line);
    s->stats[SINKS_LOG].sent++;

    for (int id = SINKS_EXEC; id < SINKS_COUNT; id++) {
        if (!s->filter[id].enabled)
            continue;
        pass[id] = sinks__filter_pass(&s->filter[id], a);
        if (!pass[id])
            s->stats[id].filtered++;
    }
    if (pass[SINKS_SYSLOG]) {
        syslog(sinks__syslog_priority(a), "%s", line);
        s->stats[SINKS_SYSLOG].sent++;
    }
    if (!pass[SINKS_EXEC] && !pass[SINKS_WEBHOOK])
        goto out;
    j = sinks_alert_json(a);
    body = j ? cJSON_PrintUnformatted(j) : NULL;
    if (!body) {
        rc = UV_ENOMEM;
        for (int id = SINKS_EXEC; id <= SINKS_WEBHOOK; id++) {
            if (!pass[id])
                continue;
            s->stats[id].failed++;
            epw_complain(&s->complain[id], EPW_LOG_WARN, "sinks",
                         "%s: alert %s lost: out of memory", sinks_id_name(id), a->key);
        }
        goto out;
    }
    if (pass[SINKS_EXEC])
        sinks__enqueue(s, SINKS_EXEC, a, body);
    /* A result callback above may have closed nothing (it must not call sinks_close), so the
     * webhook is still there. */
    if (pass[SINKS_WEBHOOK])
        sinks__enqueue(s, SINKS_WEBHOOK, a, body);
out:
    cJSON_free(body);
    cJSON_Delete(j);
    return rc;
}

void sinks_stats(const sinks_t *s, sinks_id_t id, sinks_stats_t *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!s || (int)id < 0 || id >= SINKS_COUNT)
        return;
    *out = s->stats[id];
    if (id == SINKS_EXEC && s->exec)
        out->queued = sink_exec_pending(s->exec);
    if (id == SINKS_WEBHOOK && s->webhook)
        out->queued = sink_webhook_pending(s->webhook);
}

/* ---- shutdown ------------------------------------------------------------------------------ */

void sinks__unref(sinks_t *s)
{
    sinks_close_cb cb;
    void *ud;

    if (--s->refs > 0)
        return;
    cb = s->close_cb;
    ud = s->ud;
    if (s->syslog_ident)
        closelog();
    sinks__free(s);
    if (cb)
        cb(ud);
}

static void sinks__timer_closed(uv_handle_t *h)
{
    sinks__unref(h->data);
}

static void sinks__finish_cb(uv_timer_t *t)
{
    sinks_t *s = t->data;

    if (s->finished || sinks__pending(s))
        return;
    s->finished = 1;
    if (s->exec)
        sink_exec_close(s->exec);
    if (s->webhook)
        sink_webhook_close(s->webhook);
    uv_close((uv_handle_t *)&s->timer, sinks__timer_closed);
}

static void sinks__grace_cb(uv_timer_t *t)
{
    sinks_t *s = t->data;

    if (sinks__pending(s))
        EPW_WARN("sinks", "shutdown: cancelling %zu alert deliver%s still in progress",
                 sinks__pending(s), sinks__pending(s) == 1 ? "y" : "ies");
    /* Reports EPW_E_CLOSED for what never ran; a killed child reports when it is reaped, and
     * its sink's sinks__idle then ends the wait. */
    if (s->webhook)
        sink_webhook_cancel(s->webhook);
    if (s->exec)
        sink_exec_cancel(s->exec);
    sinks__finish_cb(t);
}

void sinks__idle(sinks_t *s)
{
    if (s->closing && !s->finished && !sinks__pending(s))
        uv_timer_start(&s->timer, sinks__finish_cb, 0, 0);
}

void sinks_close(sinks_t *s, sinks_close_cb cb)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    /* Always through the timer, so the close callback never runs inside sinks_close. */
    if (sinks__pending(s))
        uv_timer_start(&s->timer, sinks__grace_cb, s->close_grace_ms, 0);
    else
        uv_timer_start(&s->timer, sinks__finish_cb, 0, 0);
}
