/* alerts: the collector's alert bookkeeping: detection per source, transitions to store and sinks.
 */
#include "alerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_util.h"
#include "ingest.h"

#define SUB "alerts"

/* Sources made at start-up for hosts known from the database start their silence clock this much
 * later: after a collector restart every agent reconnects at once, with backoff, and must not be
 * called silent for the collector's own downtime. */
#define SEED_GRACE_MS 60000
/* While the store reports failures, silence is the collector's fault, not the agents': no tick
 * (silence, re-notification) until this long after the last failure. */
#define STORE_TROUBLE_MS 30000

/* One (identity, netns) source. */
typedef struct src_s {
    char *netns;
    detect_state_t *st;
} src_t;

/* One active episode, as the API's host view and the store rows need it. */
typedef struct act_s {
    char *key;
    char *netns;
    detect_kind_t kind;
    detect_severity_t sev;
    int64_t notified_ms; /* last raise, escalation or re-notification */
} act_t;

/* One identity: its sources (one per namespace) and active episodes. */
typedef struct host_s {
    struct host_s *next; /* hash chain */
    char *identity;
    uint64_t interval_ms;
    src_t *srcs;
    size_t nsrc, capsrc;
    act_t *act;
    size_t nact, capact;
} host_t;

/* A transition waiting for its store result before it goes to the sinks. */
typedef struct pend_s {
    struct pend_s *next;
    uint64_t tag;
    detect_alert_t a;
} pend_t;

struct alerts_s {
    store_t *store;
    sinks_t *sinks;
    detect_rules_t rules;
    detect_override_t *ov;
    size_t n_ov;
    int64_t (*now_ms)(void);
    host_t **buckets;
    size_t nbuckets, nhosts;
    pend_t *pend_head, *pend_tail;
    uint64_t next_tag;
    int64_t last_store_error_ms; /* a snapshot result with STORE_ERROR (0: none) */
    int stopped;
    alerts_stats_t stats;
};

/* ---- small helpers -------------------------------------------------------------------------- */

static char *dupstr(const char *s)
{
    return strdup(s ? s : "");
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void alert_release(detect_alert_t *a)
{
    free(a->host);
    free(a->subject);
    free(a->key);
    free(a->summary);
    cJSON_Delete(a->evidence);
    memset(a, 0, sizeof(*a));
}

static int kind_from_name(const char *name, detect_kind_t *out)
{
    int k;

    for (k = DETECT_PRESSURE; k <= DETECT_SILENT; k++)
        if (strcmp(detect_kind_name((detect_kind_t)k), name) == 0) {
            *out = (detect_kind_t)k;
            return 0;
        }
    return UV_EINVAL;
}

static detect_severity_t severity_from_name(const char *name)
{
    return strcmp(name, "critical") == 0 ? DETECT_CRITICAL : DETECT_WARNING;
}

/* ---- hosts and sources ---------------------------------------------------------------------- */

static host_t *host_find(const alerts_t *al, const char *identity)
{
    host_t *h;

    for (h = al->buckets[hash_str(identity) & (al->nbuckets - 1)]; h; h = h->next)
        if (strcmp(h->identity, identity) == 0)
            return h;
    return NULL;
}

static void grow_buckets(alerts_t *al)
{
    size_t n = al->nbuckets * 2, i;
    host_t **b = calloc(n, sizeof(*b)), *h, *next;

    if (!b)
        return; /* longer chains, still correct */
    for (i = 0; i < al->nbuckets; i++)
        for (h = al->buckets[i]; h; h = next) {
            size_t j = hash_str(h->identity) & (n - 1);
            next = h->next;
            h->next = b[j];
            b[j] = h;
        }
    free(al->buckets);
    al->buckets = b;
    al->nbuckets = n;
}

static host_t *host_get(alerts_t *al, const char *identity)
{
    host_t *h = host_find(al, identity);
    size_t j;

    if (h)
        return h;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->identity = strdup(identity))) {
        free(h);
        return NULL;
    }
    if (al->nhosts >= al->nbuckets * 2)
        grow_buckets(al);
    j = hash_str(identity) & (al->nbuckets - 1);
    h->next = al->buckets[j];
    al->buckets[j] = h;
    al->nhosts++;
    return h;
}

static void host_free(host_t *h)
{
    size_t i;

    for (i = 0; i < h->nsrc; i++) {
        detect_state_destroy(h->srcs[i].st);
        free(h->srcs[i].netns);
    }
    for (i = 0; i < h->nact; i++) {
        free(h->act[i].key);
        free(h->act[i].netns);
    }
    free(h->srcs);
    free(h->act);
    free(h->identity);
    free(h);
}

/* The source of (h, netns), created with the identity's rules and interval when missing; its
 * silence clock starts `delay_ms` from now. */
static src_t *src_get_delayed(alerts_t *al, host_t *h, const char *netns, int64_t delay_ms)
{
    const detect_rules_t *rules;
    char *name = NULL, *ns = NULL;
    detect_state_t *st = NULL;
    size_t i, len;
    src_t *s;

    for (i = 0; i < h->nsrc; i++)
        if (strcmp(h->srcs[i].netns, netns) == 0)
            return &h->srcs[i];
    if (h->nsrc == h->capsrc) {
        size_t cap = h->capsrc ? h->capsrc * 2 : 1;
        s = realloc(h->srcs, cap * sizeof(*s));
        if (!s)
            return NULL;
        h->srcs = s;
        h->capsrc = cap;
    }
    len = strlen(h->identity) + strlen(netns) + 3;
    name = malloc(len);
    ns = strdup(netns);
    if (!name || !ns)
        goto fail;
    if (netns[0])
        snprintf(name, len, "%s[%s]", h->identity, netns);
    else
        snprintf(name, len, "%s", h->identity);
    rules = detect_rules_for_host(al->ov, al->n_ov, h->identity, &al->rules);
    if (detect_state_create(name, rules, al->now_ms() + delay_ms, &st))
        goto fail;
    detect_state_set_interval(st, h->interval_ms);
    free(name);
    s = &h->srcs[h->nsrc++];
    s->netns = ns;
    s->st = st;
    al->stats.sources++;
    return s;
fail:
    free(name);
    free(ns);
    return NULL;
}

static src_t *src_get(alerts_t *al, host_t *h, const char *netns)
{
    return src_get_delayed(al, h, netns, 0);
}

static act_t *act_find(host_t *h, const char *key)
{
    size_t i;

    for (i = 0; i < h->nact; i++)
        if (strcmp(h->act[i].key, key) == 0)
            return &h->act[i];
    return NULL;
}

static int act_add(alerts_t *al, host_t *h, const char *netns, const char *key, detect_kind_t kind,
                   detect_severity_t sev, int64_t notified_ms)
{
    act_t *a;

    if (h->nact == h->capact) {
        size_t cap = h->capact ? h->capact * 2 : 4;
        a = realloc(h->act, cap * sizeof(*a));
        if (!a)
            return UV_ENOMEM;
        h->act = a;
        h->capact = cap;
    }
    a = &h->act[h->nact];
    a->key = strdup(key);
    a->netns = strdup(netns);
    if (!a->key || !a->netns) {
        free(a->key);
        free(a->netns);
        return UV_ENOMEM;
    }
    a->kind = kind;
    a->sev = sev;
    a->notified_ms = notified_ms;
    h->nact++;
    al->stats.active++;
    return 0;
}

static void act_remove(alerts_t *al, host_t *h, act_t *a)
{
    free(a->key);
    free(a->netns);
    *a = h->act[--h->nact];
    al->stats.active--;
}

/* ---- transitions ---------------------------------------------------------------------------- */

static void dispatch(alerts_t *al, const detect_alert_t *a)
{
    int rc;

    if (!al->sinks)
        return;
    rc = sinks_dispatch(al->sinks, a);
    if (rc)
        EPW_WARN(SUB, "%s %s: not sent to the sinks: %s", a->key,
                 detect_transition_name(a->transition), epw_strerror(rc));
}

/*
 * Applies one transition of source (h, netns): the active set now, the store, then (on the store
 * result) the sinks. Takes *a (its fields are moved out and cleared).
 */
static void apply(alerts_t *al, host_t *h, const char *netns, detect_alert_t *a)
{
    store_alert_t row;
    act_t *act = act_find(h, a->key);
    char *ev_text = NULL;
    pend_t *p;
    int rc;

    al->stats.transitions++;
    memset(&row, 0, sizeof(row));
    row.last_notified_at_ms = act ? act->notified_ms : a->started_ms;
    switch (a->transition) {
    case DETECT_RAISED:
        al->stats.raised++;
        row.last_notified_at_ms = a->at_ms;
        if (!act && act_add(al, h, netns, a->key, a->kind, a->severity, a->at_ms))
            EPW_WARN(SUB, "%s: out of memory: the API will not count it", a->key);
        break;
    case DETECT_ESCALATED:
    case DETECT_RENOTIFY:
        row.last_notified_at_ms = a->at_ms;
        /* fall through */
    case DETECT_DEESCALATED:
        if (act) {
            act->sev = a->severity;
            act->notified_ms = row.last_notified_at_ms;
        }
        break;
    case DETECT_RESOLVED:
        al->stats.resolved++;
        row.resolved_at_ms = a->at_ms;
        if (act)
            act_remove(al, h, act);
        break;
    }

    if (a->evidence)
        ev_text = cJSON_PrintUnformatted(a->evidence);
    row.host = h->identity;
    row.netns = netns;
    row.kind = detect_kind_name(a->kind);
    row.subject = a->subject;
    row.key = a->key;
    row.severity = detect_severity_name(a->severity);
    row.active = a->transition != DETECT_RESOLVED;
    row.raised_at_ms = a->started_ms;
    row.summary = a->summary;
    row.last_evidence = ev_text ? ev_text : "{}";
    row.evidence = (a->transition == DETECT_RAISED || a->transition == DETECT_ESCALATED)
                       ? row.last_evidence
                       : NULL;

    p = calloc(1, sizeof(*p));
    if (!p) {
        rc = UV_ENOMEM;
    } else {
        p->tag = INGEST_TAG_FOREIGN | ALERTS_TAG_BIT | (al->next_tag++ & (ALERTS_TAG_BIT - 1));
        rc = store_submit_alert(al->store, p->tag, &row);
    }
    cJSON_free(ev_text);
    if (rc) {
        al->stats.store_errors++;
        EPW_ERROR(SUB, "%s %s: not stored: %s", a->key, detect_transition_name(a->transition),
                  epw_strerror(rc));
        dispatch(al, a);
        alert_release(a);
        free(p);
        return;
    }
    p->a = *a;
    memset(a, 0, sizeof(*a));
    if (al->pend_tail)
        al->pend_tail->next = p;
    else
        al->pend_head = p;
    al->pend_tail = p;
    al->stats.pending++;
}

static void apply_list(alerts_t *al, host_t *h, const char *netns, detect_alerts_t *list)
{
    size_t i;

    for (i = 0; i < list->count; i++)
        apply(al, h, netns, &list->items[i]);
    detect_alerts_free(list);
}

/* ---- public -----------------------------------------------------------------------------------
 */

static int64_t default_now(void)
{
    return epw_now_ms();
}

int alerts_create(const alerts_opts_t *opts, alerts_t **out)
{
    alerts_t *al;
    size_t i;
    int rc = UV_ENOMEM;

    if (out)
        *out = NULL;
    if (!opts || !opts->store || !out || (opts->n_overrides && !opts->overrides))
        return UV_EINVAL;
    al = calloc(1, sizeof(*al));
    if (!al)
        return UV_ENOMEM;
    al->store = opts->store;
    al->sinks = opts->sinks;
    al->now_ms = opts->now_ms ? opts->now_ms : default_now;
    if (opts->rules)
        al->rules = *opts->rules;
    else
        detect_rules_default(&al->rules);
    al->nbuckets = 256;
    al->buckets = calloc(al->nbuckets, sizeof(*al->buckets));
    if (!al->buckets)
        goto out;
    if (opts->n_overrides) {
        al->ov = calloc(opts->n_overrides, sizeof(*al->ov));
        if (!al->ov)
            goto out;
        for (i = 0; i < opts->n_overrides; i++) {
            al->ov[i].rules = opts->overrides[i].rules;
            al->ov[i].pattern =
                strdup(opts->overrides[i].pattern ? opts->overrides[i].pattern : "");
            al->n_ov = i + 1;
            if (!al->ov[i].pattern)
                goto out;
        }
    }
    rc = 0;
    *out = al;
out:
    if (rc)
        alerts_destroy(al);
    return rc;
}

void alerts_destroy(alerts_t *al)
{
    host_t *h, *next;
    pend_t *p, *pn;
    size_t i;

    if (!al)
        return;
    for (i = 0; al->buckets && i < al->nbuckets; i++)
        for (h = al->buckets[i]; h; h = next) {
            next = h->next;
            host_free(h);
        }
    for (p = al->pend_head; p; p = pn) {
        pn = p->next;
        alert_release(&p->a);
        free(p);
    }
    for (i = 0; i < al->n_ov; i++)
        free((char *)al->ov[i].pattern);
    free(al->ov);
    free(al->buckets);
    free(al);
}

void alerts_set_sinks(alerts_t *al, sinks_t *sinks)
{
    al->sinks = sinks;
}

void alerts_stop(alerts_t *al)
{
    al->stopped = 1;
}

void alerts_set_interval(alerts_t *al, const char *identity, uint64_t interval_ms)
{
    host_t *h = host_get(al, identity);
    size_t i;

    if (!h)
        return;
    h->interval_ms = interval_ms;
    for (i = 0; i < h->nsrc; i++)
        detect_state_set_interval(h->srcs[i].st, interval_ms);
}

int alerts_ingest(alerts_t *al, const char *identity, const Epw__Snapshot *snap)
{
    detect_alerts_t list = {NULL, 0, 0};
    const char *netns = snap->netns ? snap->netns : "";
    host_t *h;
    src_t *s;
    int rc;

    if (al->stopped)
        return 0;
    h = host_get(al, identity);
    s = h ? src_get(al, h, netns) : NULL;
    if (!s) {
        EPW_ERROR(SUB, "%s: out of memory: snapshot %llu not evaluated", identity,
                  (unsigned long long)snap->seq);
        return UV_ENOMEM;
    }
    al->stats.evaluated++;
    rc = detect_ingest(s->st, snap, al->now_ms(), &list);
    if (rc)
        EPW_ERROR(SUB, "%s: evaluating snapshot %llu: %s", identity, (unsigned long long)snap->seq,
                  epw_strerror(rc));
    apply_list(al, h, netns, &list);
    return rc;
}

int alerts_tick(alerts_t *al)
{
    detect_alerts_t list = {NULL, 0, 0};
    int64_t now = al->now_ms();
    size_t i, j;
    host_t *h;
    int rc = 0, r;

    if (al->stopped)
        return 0;
    if (al->last_store_error_ms && now - al->last_store_error_ms < STORE_TROUBLE_MS)
        return 0;
    for (i = 0; i < al->nbuckets; i++)
        for (h = al->buckets[i]; h; h = h->next)
            for (j = 0; j < h->nsrc; j++) {
                r = detect_tick(h->srcs[j].st, now, &list);
                if (r && !rc)
                    rc = r;
                apply_list(al, h, h->srcs[j].netns, &list);
            }
    return rc;
}

/* The store result of the oldest pending transition: it goes to the sinks now. */
static void alert_done(alerts_t *al, const store_result_t *r)
{
    pend_t *p = al->pend_head;

    if (!p || p->tag != r->tag) {
        EPW_ERROR(SUB, "store result for an unknown alert (tag %llx): ignored",
                  (unsigned long long)r->tag);
        return;
    }
    al->pend_head = p->next;
    if (!al->pend_head)
        al->pend_tail = NULL;
    al->stats.pending--;
    if (r->outcome == STORE_ERROR) {
        al->stats.store_errors++;
        EPW_ERROR(SUB, "%s %s: the database did not record it: %s (sent to the sinks anyway)",
                  p->a.key, detect_transition_name(p->a.transition), epw_strerror(r->err));
    }
    dispatch(al, &p->a);
    alert_release(&p->a);
    free(p);
}

void alerts_store_done(alerts_t *al, const store_result_t *results, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const store_result_t *r = &results[i];
        switch (r->op) {
        case STORE_OP_HELLO:
            if (r->outcome == STORE_NEW && !(r->tag & INGEST_TAG_FOREIGN))
                alerts_set_interval(al, r->identity, r->interval_ms);
            break;
        case STORE_OP_SNAPSHOT:
            if (r->outcome == STORE_ERROR && r->err == EPW_E_DB)
                al->last_store_error_ms = al->now_ms();
            /* Duplicates were evaluated when they were new. */
            if (r->outcome == STORE_NEW && r->snapshot)
                (void)alerts_ingest(al, r->identity, r->snapshot);
            break;
        case STORE_OP_ALERT:
            if ((r->tag & (INGEST_TAG_FOREIGN | ALERTS_TAG_BIT)) ==
                (INGEST_TAG_FOREIGN | ALERTS_TAG_BIT))
                alert_done(al, r);
            break;
        default:
            break;
        }
    }
}

/* Resolves a stored active alert that could not be adopted. */
static void resolve_unadoptable(alerts_t *al, host_t *h, const store_alert_t *row,
                                detect_kind_t kind, int known_kind, const char *why)
{
    detect_alert_t a;
    bool bad = false;
    size_t len;

    memset(&a, 0, sizeof(a));
    a.transition = DETECT_RESOLVED;
    a.kind = known_kind ? kind : DETECT_PRESSURE;
    a.severity = a.prev_severity = severity_from_name(row->severity);
    a.started_ms = row->raised_at_ms;
    a.at_ms = al->now_ms();
    len = strlen(row->host) + strlen(row->netns) + 3;
    a.host = malloc(len);
    if (a.host)
        snprintf(a.host, len, row->netns[0] ? "%s[%s]" : "%s%s", row->host, row->netns);
    a.subject = dupstr(row->subject);
    a.key = dupstr(row->key);
    a.summary = dupstr("not continued after a collector restart");
    a.evidence = cJSON_CreateObject();
    if (!a.evidence || !cJSON_AddStringToObject(a.evidence, "reason", why))
        bad = true;
    if (bad || !a.host || !a.subject || !a.key || !a.summary) {
        EPW_ERROR(SUB, "%s: out of memory: left active in the database", row->key);
        alert_release(&a);
        return;
    }
    /* An unknown kind goes to the sinks as "pressure"; the row keeps its own (not updated). */
    EPW_WARN(SUB, "%s: active in the database but not continued (%s): resolving it", row->key, why);
    apply(al, h, row->netns, &a);
}

int alerts_load(alerts_t *al, store_reader_t *rd)
{
    store_host_list_t *hosts = NULL;
    store_alert_list_t *active = NULL;
    store_alert_query_t q;
    size_t i;
    int rc;

    rc = store_reader_hosts(rd, &hosts);
    if (rc)
        goto out;
    for (i = 0; i < hosts->n; i++) {
        host_t *h = host_get(al, hosts->hosts[i].identity);
        if (!h || (h->interval_ms = hosts->hosts[i].interval_ms,
                   !src_get_delayed(al, h, "", SEED_GRACE_MS))) {
            rc = UV_ENOMEM;
            goto out;
        }
    }
    memset(&q, 0, sizeof(q));
    q.active = 1;
    rc = store_reader_alerts(rd, &q, &active);
    if (rc)
        goto out;
    /* Oldest first: when two rows claim one rule (should not happen), the newer one wins. */
    for (i = active->n; i-- > 0;) {
        const store_alert_t *row = &active->alerts[i];
        detect_alert_t a;
        detect_kind_t kind = DETECT_PRESSURE;
        int known = kind_from_name(row->kind, &kind) == 0;
        host_t *h = host_get(al, row->host);
        src_t *s = h ? src_get(al, h, row->netns) : NULL;

        if (!s) {
            rc = UV_ENOMEM;
            goto out;
        }
        memset(&a, 0, sizeof(a));
        a.transition = DETECT_RAISED;
        a.kind = kind;
        a.severity = a.prev_severity = severity_from_name(row->severity);
        a.host = (char *)row->host;
        a.subject = (char *)row->subject;
        a.key = (char *)row->key;
        a.summary = (char *)row->summary;
        a.started_ms = row->raised_at_ms;
        a.at_ms = row->last_notified_at_ms ? row->last_notified_at_ms : row->raised_at_ms;
        rc = known ? detect_adopt(s->st, &a) : UV_EINVAL;
        if (rc == 0) {
            if (act_add(al, h, row->netns, row->key, kind, a.severity, a.at_ms)) {
                rc = UV_ENOMEM;
                goto out;
            }
            al->stats.adopted++;
            EPW_INFO(SUB, "%s: still active after the restart: continued", row->key);
        } else if (rc == UV_ENOMEM) {
            goto out;
        } else {
            rc = 0;
            resolve_unadoptable(al, h, row, kind, known,
                                known ? "its rule is disabled or already active"
                                      : "unknown alert kind");
        }
    }
out:
    store_host_list_free(hosts);
    store_alert_list_free(active);
    return rc;
}

void alerts_host_status(const alerts_t *al, const char *identity, alerts_host_t *out)
{
    const host_t *h = host_find(al, identity);
    size_t i;

    memset(out, 0, sizeof(*out));
    if (!h)
        return;
    out->active = h->nact;
    for (i = 0; i < h->nact; i++) {
        if (h->act[i].sev > out->worst)
            out->worst = h->act[i].sev;
        if (h->act[i].kind == DETECT_SILENT)
            out->silent = true;
    }
}

void alerts_get_stats(const alerts_t *al, alerts_stats_t *out)
{
    *out = al->stats;
}
