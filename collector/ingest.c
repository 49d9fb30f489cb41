/* ingest: the collector's agent-facing protocol server (Hello, Snapshots, Acks over mutual TLS). */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "epw_conn.h"
#include "epw_err.h"
#include "epw_frame.h"
#include "epw_log.h"
#include "epw_proto.h"

#define SUB              "ingest"
#define DEFAULT_MAX_CONN 20000u
#define DEFAULT_HELLO_MS 10000u /* epw_conn's default handshake timeout */
#define SLOT_NONE        UINT32_MAX
#define GEN_MASK         0x7fffffffu

enum { IC_AWAIT_HELLO, IC_HELLO_PENDING, IC_STREAMING, IC_CLOSING };

typedef struct ic_s ic_t;

/* One accepted connection. Owned by ingest; freed in its on_close. */
struct ic_s {
    ingest_t *ig;
    epw_conn_t *conn;
    uint32_t slot;
    int state;
    char *identity; /* the certificate's CN, set once the Hello was accepted */
    ic_t *hnext;    /* identity hash chain while `hashed` */
    int hashed;
    ic_t *pprev, *pnext; /* paused list while `paused` */
    int paused;
    Epw__Envelope *pending; /* the envelope the full store refused (paused only), or */
    uint8_t *pending_raw;   /* the undecoded snapshot it refused (malloc'd copy) */
    size_t pending_raw_len;
    uint64_t committed; /* highest seq the store reported committed (new or duplicate) */
    int ack_due;        /* committed changed or a resend was confirmed: Ack owed */
    ic_t *due_next;     /* list built during one ingest_store_done call */
    int on_due;
};

/* Generation-checked table entry: a store tag is (gen << 32 | index). */
typedef struct slot_s {
    uint32_t gen;
    uint32_t next_free;
    ic_t *ic;
} slot_t;

struct ingest_s {
    uv_loop_t *loop;
    epw_listener_t *listener;
    epw_tls_config_t *tls;
    store_t *store;
    size_t max_conn;
    slot_t *slots;
    uint32_t nslots, free_head;
    ic_t **buckets;
    size_t nbuckets; /* power of two */
    char **deny;     /* sorted, case-insensitive */
    size_t ndeny;
    ic_t *paused_head, *paused_tail;
    ingest_stats_t st;
    int stopping, closing, listener_closed;
    void (*close_cb)(void *ud);
    void *close_ud;
    epw_complain_t fail_complaint;
};

static const char *const reject_names[INGEST_REJECT_COUNT] = {
    "none",    "bad_identity", "unsupported_version", "overloaded",
    "revoked", "replaced",     "shutting_down",       "protocol_error"};
static const char *const fail_names[INGEST_FAIL_COUNT] = {"tls_verify", "tls", "handshake_timeout",
                                                          "protocol", "other"};

const char *ingest_reject_name(int reason)
{
    return reason >= 0 && reason < INGEST_REJECT_COUNT ? reject_names[reason] : "unknown";
}

const char *ingest_fail_name(ingest_fail_t f)
{
    return (int)f >= 0 && f < INGEST_FAIL_COUNT ? fail_names[f] : "unknown";
}

const char *ingest_reason_name(int reason)
{
    return reason == INGEST_REASON_HELLO_TIMEOUT ? "hello_timeout" : epw_tls_fail_name(reason);
}

/* ---- connection table ---------------------------------------------------------------------- */

static int slot_alloc(ingest_t *ig, ic_t *ic)
{
    uint32_t i;

    if (ig->free_head == SLOT_NONE) {
        uint32_t n = ig->nslots ? ig->nslots * 2 : 64;
        slot_t *s = realloc(ig->slots, n * sizeof(*s));
        if (s == NULL)
            return UV_ENOMEM;
        for (i = ig->nslots; i < n; i++) {
            s[i].gen = 1;
            s[i].ic = NULL;
            s[i].next_free = i + 1 < n ? i + 1 : SLOT_NONE;
        }
        ig->free_head = ig->nslots;
        ig->slots = s;
        ig->nslots = n;
    }
    i = ig->free_head;
    ig->free_head = ig->slots[i].next_free;
    ig->slots[i].ic = ic;
    ic->slot = i;
    return 0;
}

static void slot_free(ingest_t *ig, ic_t *ic)
{
    slot_t *s = &ig->slots[ic->slot];

    s->ic = NULL;
    s->gen = ((s->gen + 1) & GEN_MASK) ? (s->gen + 1) & GEN_MASK : 1;
    s->next_free = ig->free_head;
    ig->free_head = ic->slot;
}

static uint64_t ic_tag(const ic_t *ic)
{
    return (uint64_t)ic->ig->slots[ic->slot].gen << 32 | ic->slot;
}

static ic_t *ic_from_tag(ingest_t *ig, uint64_t tag)
{
    uint32_t idx = (uint32_t)(tag & 0xffffffffu);

    if (idx >= ig->nslots || ig->slots[idx].ic == NULL || ig->slots[idx].gen != (tag >> 32))
        return NULL;
    return ig->slots[idx].ic;
}

/* ---- identity hash (live agents by CN) ------------------------------------------------------ */

static size_t hash_of(const ingest_t *ig, const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)h & (ig->nbuckets - 1);
}

static ic_t *hash_find(ingest_t *ig, const char *id)
{
    ic_t *ic;

    for (ic = ig->buckets[hash_of(ig, id)]; ic != NULL; ic = ic->hnext)
        if (strcmp(ic->identity, id) == 0)
            return ic;
    return NULL;
}

static void hash_insert(ingest_t *ig, ic_t *ic)
{
    size_t b = hash_of(ig, ic->identity);

    ic->hnext = ig->buckets[b];
    ig->buckets[b] = ic;
    ic->hashed = 1;
    ig->st.agents++;
}

static void hash_remove(ingest_t *ig, ic_t *ic)
{
    ic_t **pp;

    if (!ic->hashed)
        return;
    for (pp = &ig->buckets[hash_of(ig, ic->identity)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == ic) {
            *pp = ic->hnext;
            break;
        }
    }
    ic->hnext = NULL;
    ic->hashed = 0;
    ig->st.agents--;
}

/* ---- deny list ------------------------------------------------------------------------------ */

static int cmp_id(const void *a, const void *b)
{
    return strcasecmp(*(char *const *)a, *(char *const *)b);
}

int ingest_is_denied(const ingest_t *ig, const char *identity)
{
    if (ig->ndeny == 0 || identity == NULL)
        return 0;
    return bsearch(&identity, ig->deny, ig->ndeny, sizeof(char *), cmp_id) != NULL;
}

static int deny_hook(void *ud, const char *cn)
{
    ingest_t *ig = ud;

    if (!ingest_is_denied(ig, cn))
        return 0;
    ig->st.denied_tls++;
    return 1;
}

static void free_deny(char **list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* ---- sending -------------------------------------------------------------------------------- */

static void ic_close(ic_t *ic, int reason)
{
    ic->state = IC_CLOSING;
    epw_conn_close(ic->conn, reason);
}

static void send_hello_ack(ic_t *ic, Epw__RejectReason reject, const char *msg, uint64_t last_seq)
{
    Epw__Envelope env = EPW__ENVELOPE__INIT;
    Epw__HelloAck ack = EPW__HELLO_ACK__INIT;

    ack.protocol_version = EPW_PROTOCOL_VERSION;
    ack.capabilities = EPW_CAPS_THIS_BUILD;
    ack.reject = reject;
    ack.message = (char *)(msg ? msg : ""); /* protobuf-c wants char *; never written */
    ack.last_seq = last_seq;
    env.msg_case = EPW__ENVELOPE__MSG_HELLO_ACK;
    env.hello_ack = &ack;
    epw_conn_send(ic->conn, &env); /* a failure closes the connection: nothing else to do */
}

/* Answers a Hello with a reject and closes (the agent maps the reason to a reconnect delay). */
static void reject(ic_t *ic, Epw__RejectReason reason, const char *msg)
{
    ingest_t *ig = ic->ig;

    if ((int)reason >= 0 && (int)reason < INGEST_REJECT_COUNT)
        ig->st.rejects[reason]++;
    send_hello_ack(ic, reason, msg, 0);
    ic_close(ic, EPW_E_REJECTED);
}

static void send_ack(ic_t *ic)
{
    Epw__Envelope env = EPW__ENVELOPE__INIT;
    Epw__Ack ack = EPW__ACK__INIT;

    if (ic->state != IC_STREAMING || !ic->ack_due)
        return;
    /* A slow reader gets one coalesced Ack when its queue drains (on_drain). */
    if (!epw_conn_writable(ic->conn))
        return;
    ack.seq = ic->committed;
    env.msg_case = EPW__ENVELOPE__MSG_ACK;
    env.ack = &ack;
    if (epw_conn_send(ic->conn, &env) == 0)
        ic->ig->st.acks++;
    ic->ack_due = 0;
}

/* ---- receiving ------------------------------------------------------------------------------ */

static int on_hello(ic_t *ic, const Epw__Hello *h)
{
    ingest_t *ig = ic->ig;
    const char *cn = epw_conn_peer_cn(ic->conn);
    const char *addr = epw_conn_peer_addr(ic->conn);
    store_hello_t sh;
    ic_t *old;
    char msg[160];
    int rc;

    if (h->protocol_version != EPW_PROTOCOL_VERSION) {
        EPW_INFO(SUB, "%s (%s): protocol version %u not supported", addr, cn,
                 (unsigned)h->protocol_version);
        snprintf(msg, sizeof(msg), "protocol version %u not supported; this collector speaks %u",
                 (unsigned)h->protocol_version, EPW_PROTOCOL_VERSION);
        reject(ic, EPW__REJECT_REASON__REJECT_UNSUPPORTED_VERSION, msg);
        return 0;
    }
    if (ingest_is_denied(ig, cn)) {
        EPW_WARN(SUB, "%s: CN=%s is on the deny list", addr, cn);
        reject(ic, EPW__REJECT_REASON__REJECT_REVOKED, "identity revoked");
        return 0;
    }
    /* Case-insensitive: Windows reports host names in upper case, certificates often lower. */
    if (h->hostname == NULL || strcasecmp(h->hostname, cn) != 0) {
        EPW_WARN(SUB, "%s: Hello names host '%s' but the certificate says CN=%s: rejected", addr,
                 h->hostname ? h->hostname : "", cn);
        snprintf(msg, sizeof(msg), "certificate CN=%.64s does not match hostname", cn);
        reject(ic, EPW__REJECT_REASON__REJECT_BAD_IDENTITY, msg);
        return 0;
    }
    old = hash_find(ig, cn);
    if (old == NULL && ig->st.agents >= ig->max_conn) {
        EPW_WARN(SUB, "%s (%s): %zu agents connected, refusing (max_connections)", addr, cn,
                 ig->st.agents);
        reject(ic, EPW__REJECT_REASON__REJECT_OVERLOADED, "too many agents connected");
        return 0;
    }

    memset(&sh, 0, sizeof(sh));
    sh.identity = cn;
    sh.agent_version = h->agent_version;
    sh.os = h->os;
    sh.platform = h->platform;
    sh.interval_ms = h->interval_ms;
    rc = store_submit_hello(ig->store, ic_tag(ic), &sh);
    if (rc == EPW_E_AGAIN)
        return rc;
    if (rc) {
        EPW_ERROR(SUB, "%s (%s): cannot submit hello: %s", addr, cn, epw_strerror(rc));
        reject(ic, EPW__REJECT_REASON__REJECT_OVERLOADED, "store unavailable");
        return 0;
    }
    if (old != NULL) {
        /* The newer connection wins: the old one may be a half-open leftover. */
        EPW_INFO(SUB, "%s: CN=%s connected again, closing its connection from %s", addr, cn,
                 epw_conn_peer_addr(old->conn));
        hash_remove(ig, old);
        ig->st.replaced++;
        ig->st.rejects[EPW__REJECT_REASON__REJECT_REPLACED]++;
        ic_close(old, EPW_E_REJECTED);
    }
    ic->identity = strdup(cn);
    if (ic->identity == NULL) {
        ic_close(ic, UV_ENOMEM);
        return 0;
    }
    hash_insert(ig, ic);
    ic->state = IC_HELLO_PENDING;
    EPW_DEBUG(SUB, "%s: hello from %s (agent %s, %s, caps 0x%llx)", addr, cn,
              h->agent_version ? h->agent_version : "", h->os ? h->os : "",
              (unsigned long long)h->capabilities);
    return 0;
}

/* What a snapshot submission's result means for the connection: EPW_E_AGAIN is passed back (the
 * caller parks the snapshot); any other failure closes the connection; otherwise 0. */
static int snapshot_submitted(ic_t *ic, int rc)
{
    if (rc == EPW_E_AGAIN)
        return rc;
    if (rc == EPW_E_PROTO)
        EPW_WARN(SUB, "%s (%s): undecodable snapshot, closing", epw_conn_peer_addr(ic->conn),
                 ic->identity);
    else if (rc)
        EPW_ERROR(SUB, "%s (%s): cannot submit a snapshot: %s", epw_conn_peer_addr(ic->conn),
                  ic->identity, epw_strerror(rc));
    if (rc)
        ic_close(ic, rc);
    return 0;
}

/* The store records the gap a snapshot reports (dropped_before) when it stores the snapshot. */
static int on_snapshot(ic_t *ic, const Epw__Snapshot *s)
{
    return snapshot_submitted(
        ic, store_submit_snapshot_msg(ic->ig->store, ic_tag(ic), ic->identity, s));
}

/* The same for a snapshot still encoded (epw_frame_peek_snapshot): the store decodes it. */
static int on_snapshot_raw(ic_t *ic, const uint8_t *data, size_t len)
{
    return snapshot_submitted(
        ic, store_submit_snapshot(ic->ig->store, ic_tag(ic), ic->identity, data, len));
}

/* Handles one envelope. Returns EPW_E_AGAIN when the store is full (env is kept by the caller),
 * otherwise 0 (env may be freed; the connection may be closing). */
static int handle(ic_t *ic, const Epw__Envelope *env)
{
    switch (env->msg_case) {
    case EPW__ENVELOPE__MSG_HELLO:
        if (ic->state == IC_AWAIT_HELLO)
            return on_hello(ic, env->hello);
        break;
    case EPW__ENVELOPE__MSG_SNAPSHOT:
        if (ic->state == IC_HELLO_PENDING || ic->state == IC_STREAMING)
            return on_snapshot(ic, env->snapshot);
        break;
    default:
        break;
    }
    EPW_WARN(SUB, "%s (%s): unexpected message %d, closing", epw_conn_peer_addr(ic->conn),
             epw_conn_peer_cn(ic->conn), (int)env->msg_case);
    ic_close(ic, EPW_E_PROTO);
    return 0;
}

static void paused_remove(ingest_t *ig, ic_t *ic)
{
    if (!ic->paused)
        return;
    if (ic->pprev)
        ic->pprev->pnext = ic->pnext;
    else
        ig->paused_head = ic->pnext;
    if (ic->pnext)
        ic->pnext->pprev = ic->pprev;
    else
        ig->paused_tail = ic->pprev;
    ic->pprev = ic->pnext = NULL;
    ic->paused = 0;
    ig->st.paused--;
}

/* Parks `env` and stops reading from the agent: at the tail of the paused list, or at its head
 * when `head` (the oldest waiter keeps its place after the store refused it again). */
static void pause_ic(ic_t *ic, Epw__Envelope *env, int head)
{
    ingest_t *ig = ic->ig;

    if (env != NULL)
        ic->pending = env;
    epw_conn_set_reading(ic->conn, 0);
    if (ic->paused)
        return;
    ic->paused = 1;
    if (head) {
        ic->pprev = NULL;
        ic->pnext = ig->paused_head;
        if (ig->paused_head)
            ig->paused_head->pprev = ic;
        else
            ig->paused_tail = ic;
        ig->paused_head = ic;
    } else {
        ic->pnext = NULL;
        ic->pprev = ig->paused_tail;
        if (ig->paused_tail)
            ig->paused_tail->pnext = ic;
        else
            ig->paused_head = ic;
        ig->paused_tail = ic;
    }
    ig->st.paused++;
    EPW_DEBUG(SUB, "%s: store queue full, pausing", ic->identity ? ic->identity : "?");
}

static void on_envelope(epw_conn_t *c, Epw__Envelope *env, void *ud)
{
    ic_t *ic = ud;
    int rc;

    (void)c;
    if (ic->ig->stopping || ic->state == IC_CLOSING) {
        epw_frame_envelope_free(env);
        return;
    }
    if (ic->pending != NULL || ic->pending_raw != NULL) {
        /* Cannot happen: epw_conn_set_reading(0) stops delivery at once. */
        EPW_ERROR(SUB, "%s: envelope while paused", epw_conn_peer_addr(ic->conn));
        epw_frame_envelope_free(env);
        ic_close(ic, EPW_E_INTERNAL);
        return;
    }
    if (ic->ig->paused_head != NULL) {
        /* Agents are already waiting for room: queue behind them instead of taking the room
         * they wait for (otherwise the agents that never paused win every race). */
        pause_ic(ic, env, 0);
        return;
    }
    rc = handle(ic, env);
    if (rc == EPW_E_AGAIN) {
        ic->ig->st.store_full++;
        pause_ic(ic, env, 0);
        return;
    }
    epw_frame_envelope_free(env);
}

/* Forgets what the store refused (never submitted, never acknowledged: the agent resends it). */
static void drop_pending(ic_t *ic)
{
    epw_frame_envelope_free(ic->pending);
    ic->pending = NULL;
    free(ic->pending_raw);
    ic->pending_raw = NULL;
    ic->pending_raw_len = 0;
}

/* Parks a copy of an undecoded snapshot the store cannot take yet (see pause_ic). */
static void pause_ic_raw(ic_t *ic, const uint8_t *data, size_t len)
{
    ic->pending_raw = malloc(len);
    if (ic->pending_raw == NULL) {
        ic_close(ic, UV_ENOMEM);
        return;
    }
    memcpy(ic->pending_raw, data, len);
    ic->pending_raw_len = len;
    pause_ic(ic, NULL, 0);
}

/*
 * Snapshots skip the Envelope decode: their bytes go to the store as they came, which decodes them
 * once into the queued item's own memory (summary columns, the gap it reports and, through
 * keep_decoded, detection) instead of decode here + encode into the item + decode by the writer.
 * Everything else, and a snapshot before the Hello, takes on_envelope's path.
 */
static int on_frame(epw_conn_t *c, const uint8_t *payload, size_t len, void *ud)
{
    ic_t *ic = ud;
    const uint8_t *snap;
    size_t n;
    int rc;

    (void)c;
    if (!epw_frame_peek_snapshot(payload, len, &snap, &n))
        return 0;
    if (ic->ig->stopping || ic->state == IC_CLOSING)
        return 1;
    if ((ic->state != IC_HELLO_PENDING && ic->state != IC_STREAMING) || ic->pending != NULL ||
        ic->pending_raw != NULL)
        return 0; /* on_envelope reports it */
    if (ic->ig->paused_head != NULL) {
        pause_ic_raw(ic, snap, n);
        return 1;
    }
    rc = on_snapshot_raw(ic, snap, n);
    if (rc == EPW_E_AGAIN) {
        ic->ig->st.store_full++;
        pause_ic_raw(ic, snap, n);
    }
    return 1;
}

/*
 * Round robin, oldest waiter first: the head's parked envelope is submitted, then the agent reads
 * again, and whatever it sends next joins the tail (on_envelope) while others wait. So each agent
 * gets one envelope in per turn, and only as many turns are given as the queue takes: the first
 * EPW_E_AGAIN ends the pass (the store calls again once it has drained to half).
 */
void ingest_store_room(ingest_t *ig)
{
    ic_t *ic;
    Epw__Envelope *env;
    int rc;

    while (!ig->stopping && (ic = ig->paused_head) != NULL) {
        env = ic->pending;
        ic->pending = NULL;
        paused_remove(ig, ic);
        if (env != NULL && ic->state != IC_CLOSING) {
            rc = handle(ic, env);
            if (rc == EPW_E_AGAIN) {
                ig->st.store_full++;
                pause_ic(ic, env, 1); /* still full: keeps its turn, the store calls us again */
                return;
            }
        } else if (ic->pending_raw != NULL && ic->state != IC_CLOSING) {
            rc = on_snapshot_raw(ic, ic->pending_raw, ic->pending_raw_len);
            if (rc == EPW_E_AGAIN) {
                ig->st.store_full++;
                pause_ic(ic, NULL, 1);
                return;
            }
        }
        drop_pending(ic);
        epw_frame_envelope_free(env);
        /* May deliver buffered envelopes right away: they queue behind the other waiters. */
        if (ic->state != IC_CLOSING)
            epw_conn_set_reading(ic->conn, 1);
    }
}

/* ---- store results -------------------------------------------------------------------------- */

static void hello_result(ic_t *ic, const store_result_t *r)
{
    ingest_t *ig = ic->ig;

    if (ic->state != IC_HELLO_PENDING)
        return;
    if (r->outcome == STORE_ERROR) {
        reject(ic, EPW__REJECT_REASON__REJECT_OVERLOADED, "store error");
        return;
    }
    if (ig->stopping) {
        reject(ic, EPW__REJECT_REASON__REJECT_SHUTTING_DOWN, "collector shutting down");
        return;
    }
    send_hello_ack(ic, EPW__REJECT_REASON__REJECT_NONE, NULL, r->last_seq);
    ic->state = IC_STREAMING;
    EPW_INFO(SUB, "%s: agent %s connected (last stored seq %llu)", epw_conn_peer_addr(ic->conn),
             ic->identity, (unsigned long long)r->last_seq);
}

void ingest_store_done(ingest_t *ig, const store_result_t *results, size_t n)
{
    ic_t *due = NULL, *ic;
    size_t i;

    for (i = 0; i < n; i++) {
        const store_result_t *r = &results[i];
        if (r->tag & INGEST_TAG_FOREIGN)
            continue;
        if (r->outcome == STORE_ERROR)
            ig->st.store_errors++;
        else if (r->op == STORE_OP_SNAPSHOT)
            r->outcome == STORE_NEW ? ig->st.snapshots++ : ig->st.duplicates++;
        else if (r->op == STORE_OP_GAP && r->outcome == STORE_NEW)
            ig->st.gaps++;
        if (r->op == STORE_OP_SNAPSHOT && r->gap_new)
            ig->st.gaps++;
        ic = ic_from_tag(ig, r->tag);
        if (ic == NULL || ic->state == IC_CLOSING)
            continue; /* gone or replaced: its agent learns last_seq from the next HelloAck */
        if (r->op == STORE_OP_HELLO) {
            hello_result(ic, r);
            continue;
        }
        if (r->outcome == STORE_ERROR) {
            /* Nothing of that batch was stored: stop acknowledging; the agent resends. */
            EPW_WARN(SUB, "%s: store failed (%s), dropping the connection", ic->identity,
                     epw_strerror(r->err));
            ic_close(ic, r->err ? r->err : EPW_E_DB);
            continue;
        }
        if (r->op != STORE_OP_SNAPSHOT)
            continue;
        if (r->seq > ic->committed)
            ic->committed = r->seq;
        ic->ack_due = 1;
        if (!ic->on_due) {
            ic->on_due = 1;
            ic->due_next = due;
            due = ic;
        }
    }
    /* One cumulative Ack per connection per call. Closing is asynchronous: pointers stay valid. */
    while (due != NULL) {
        ic = due;
        due = ic->due_next;
        ic->on_due = 0;
        ic->due_next = NULL;
        send_ack(ic);
    }
}

/* ---- connection lifecycle ------------------------------------------------------------------- */

static void maybe_finish(ingest_t *ig);

static void on_drain(epw_conn_t *c, void *ud)
{
    (void)c;
    send_ack(ud);
}

static void on_close(epw_conn_t *c, int status, void *ud)
{
    ic_t *ic = ud;
    ingest_t *ig = ic->ig;

    (void)c;
    if (status == EPW_E_PROTO || status == EPW_E_TOOBIG) {
        ig->st.fails[INGEST_FAIL_PROTO]++;
    } else if (status == EPW_E_TIMEOUT && ic->state == IC_AWAIT_HELLO) {
        /* epw_conn's first_timeout_ms: TLS done, but no Hello (nor anything else) came. */
        ig->st.fails[INGEST_FAIL_PROTO]++;
        ig->st.fail_reasons[INGEST_REASON_HELLO_TIMEOUT]++;
        EPW_INFO(SUB, "%s (%s): no Hello in time, closed", epw_conn_peer_addr(c),
                 epw_conn_peer_cn(c));
    } else if (status == EPW_E_TIMEOUT) {
        ig->st.idle_closed++;
    }
    if (ic->identity != NULL && ic->hashed)
        EPW_INFO(SUB, "agent %s disconnected: %s", ic->identity, epw_strerror(status));
    else
        EPW_DEBUG(SUB, "%s (%s): closed: %s", epw_conn_peer_addr(c), epw_conn_peer_cn(c),
                  epw_strerror(status));
    hash_remove(ig, ic);
    paused_remove(ig, ic);
    drop_pending(ic);
    slot_free(ig, ic);
    ig->st.connections--;
    free(ic->identity);
    free(ic);
    maybe_finish(ig);
}

static void on_conn(epw_listener_t *l, epw_conn_t *c, void *ud)
{
    ingest_t *ig = ud;
    epw_conn_cbs_t cbs;
    ic_t *ic;

    (void)l;
    if (ig->stopping) {
        epw_conn_close(c, EPW_E_CLOSED);
        return;
    }
    /* Connections not yet identified may exceed max_connections (they get REJECT_OVERLOADED at
     * Hello), but not without bound. */
    if (ig->st.connections >= 2 * ig->max_conn + 64) {
        ig->st.rejects[EPW__REJECT_REASON__REJECT_OVERLOADED]++;
        epw_complain(&ig->fail_complaint, EPW_LOG_WARN, SUB, "%zu connections open, refusing %s",
                     ig->st.connections, epw_conn_peer_addr(c));
        epw_conn_close(c, EPW_E_REJECTED);
        return;
    }
    if (epw_conn_peer_is_operator(c)) {
        /* The TLS config should refuse these already (EPW_TLS_PEER_AGENT); never ingest them. */
        ig->st.fails[INGEST_FAIL_TLS_VERIFY]++;
        ig->st.fail_reasons[EPW_TLS_FAIL_WRONG_ROLE]++;
        EPW_WARN(SUB, "%s: operator certificate CN=%s on the agent port", epw_conn_peer_addr(c),
                 epw_conn_peer_cn(c));
        epw_conn_close(c, EPW_E_TLS_VERIFY);
        return;
    }
    ic = calloc(1, sizeof(*ic));
    if (ic == NULL || slot_alloc(ig, ic)) {
        free(ic);
        epw_conn_close(c, UV_ENOMEM);
        return;
    }
    ic->ig = ig;
    ic->conn = c;
    ic->state = IC_AWAIT_HELLO;
    memset(&cbs, 0, sizeof(cbs));
    cbs.on_envelope = on_envelope;
    cbs.on_frame = on_frame;
    cbs.on_drain = on_drain;
    cbs.on_close = on_close;
    cbs.ud = ic;
    epw_conn_set_callbacks(c, &cbs);
    ig->st.connections++;
    ig->st.accepted++;
}

static void on_fail(epw_listener_t *l, int status, const char *peer_addr, void *ud)
{
    ingest_t *ig = ud;
    epw_tls_fail_t reason = epw_listener_fail_reason(l);
    ingest_fail_t f;

    switch (status) {
    case EPW_E_TLS_VERIFY:
        f = INGEST_FAIL_TLS_VERIFY;
        break;
    case EPW_E_TLS:
        f = INGEST_FAIL_TLS;
        break;
    case EPW_E_TIMEOUT:
        f = INGEST_FAIL_TIMEOUT;
        break;
    case EPW_E_PROTO:
    case EPW_E_TOOBIG:
        f = INGEST_FAIL_PROTO;
        break;
    default:
        f = INGEST_FAIL_OTHER;
        break;
    }
    ig->st.fails[f]++;
    ig->st.fail_reasons[(int)reason >= 0 && reason < EPW_TLS_FAIL_COUNT ? reason
                                                                        : EPW_TLS_FAIL_OTHER]++;
    /* The TLS layer logs the details; a scan or a broken agent must not flood the log. */
    epw_complain(&ig->fail_complaint, EPW_LOG_INFO, SUB, "%s: handshake failed (%s): %s", peer_addr,
                 epw_tls_fail_name(reason), epw_strerror(status));
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static void on_listener_closed(epw_listener_t *l, void *ud)
{
    ingest_t *ig = ud;

    (void)l;
    ig->listener = NULL;
    ig->listener_closed = 1;
    maybe_finish(ig);
}

static void maybe_finish(ingest_t *ig)
{
    if (!ig->closing || !ig->listener_closed || ig->st.connections > 0)
        return;
    if (ig->close_cb != NULL)
        ig->close_cb(ig->close_ud);
    free_deny(ig->deny, ig->ndeny);
    free(ig->slots);
    free(ig->buckets);
    free(ig);
}

int ingest_start(uv_loop_t *loop, const ingest_opts_t *opts, ingest_t **out)
{
    epw_listener_opts_t lo;
    ingest_t *ig;
    int rc;

    *out = NULL;
    if (opts == NULL || opts->addr == NULL || opts->tls == NULL || opts->store == NULL)
        return UV_EINVAL;
    ig = calloc(1, sizeof(*ig));
    if (ig == NULL)
        return UV_ENOMEM;
    ig->loop = loop;
    ig->tls = opts->tls;
    ig->store = opts->store;
    ig->max_conn = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONN;
    ig->free_head = SLOT_NONE;
    for (ig->nbuckets = 64; ig->nbuckets < ig->max_conn && ig->nbuckets < (1u << 20);)
        ig->nbuckets *= 2;
    ig->buckets = calloc(ig->nbuckets, sizeof(*ig->buckets));
    if (ig->buckets == NULL) {
        rc = UV_ENOMEM;
        goto fail;
    }

    memset(&lo, 0, sizeof(lo));
    lo.addr = opts->addr;
    lo.port = opts->port;
    lo.backlog = opts->backlog > 0 ? opts->backlog : 511;
    lo.conn.handshake_timeout_ms = opts->handshake_ms;
    lo.conn.idle_timeout_ms = opts->idle_ms;
    /* Without it a client that completes TLS and stays silent holds a connection (and, before
     * its Hello, an unbounded share of the 2 * max_connections + 64 allowance) until idle_ms. */
    lo.conn.first_timeout_ms = opts->hello_ms       ? opts->hello_ms
                               : opts->handshake_ms ? opts->handshake_ms
                                                    : DEFAULT_HELLO_MS;
    lo.conn.max_frame = opts->max_frame;
    lo.on_conn = on_conn;
    lo.on_fail = on_fail;
    lo.ud = ig;
    rc = epw_listener_start(loop, opts->tls, &lo, &ig->listener);
    if (rc) {
        EPW_ERROR(SUB, "cannot listen on %s port %u: %s", opts->addr, (unsigned)opts->port,
                  epw_strerror(rc));
        goto fail;
    }
    epw_tls_config_set_deny(opts->tls, deny_hook, ig);
    EPW_INFO(SUB, "listening for agents on %s port %u (max %zu agents)", opts->addr,
             (unsigned)epw_listener_port(ig->listener), ig->max_conn);
    *out = ig;
    return 0;
fail:
    free(ig->buckets);
    free(ig);
    return rc;
}

uint16_t ingest_port(const ingest_t *ig)
{
    return ig->listener ? epw_listener_port(ig->listener) : 0;
}

int ingest_set_deny(ingest_t *ig, const char *const *identities, size_t n)
{
    char **list = NULL;
    uint32_t i;
    size_t k;

    if (n > 0) {
        list = calloc(n, sizeof(*list));
        if (list == NULL)
            return UV_ENOMEM;
        for (k = 0; k < n; k++) {
            list[k] = strdup(identities[k]);
            if (list[k] == NULL) {
                free_deny(list, n);
                return UV_ENOMEM;
            }
        }
        qsort(list, n, sizeof(*list), cmp_id);
    }
    free_deny(ig->deny, ig->ndeny);
    ig->deny = list;
    ig->ndeny = n;
    /* Revocation takes effect now, not at the agent's next reconnect. */
    for (i = 0; i < ig->nslots; i++) {
        ic_t *ic = ig->slots[i].ic;
        if (ic == NULL || ic->state == IC_CLOSING ||
            !ingest_is_denied(ig, epw_conn_peer_cn(ic->conn)))
            continue;
        EPW_WARN(SUB, "CN=%s is now on the deny list: closing its connection",
                 epw_conn_peer_cn(ic->conn));
        if (ic->state == IC_AWAIT_HELLO) {
            reject(ic, EPW__REJECT_REASON__REJECT_REVOKED, "identity revoked");
        } else {
            ig->st.rejects[EPW__REJECT_REASON__REJECT_REVOKED]++;
            hash_remove(ig, ic);
            ic_close(ic, EPW_E_REJECTED);
        }
    }
    EPW_INFO(SUB, "deny list: %zu identities", n);
    return 0;
}

void ingest_get_stats(const ingest_t *ig, ingest_stats_t *out)
{
    store_stats_t ss;

    *out = ig->st;
    out->queue_depth = 0;
    if (ig->stopping)
        return; /* the store may be closed by now */
    store_get_stats(ig->store, &ss);
    out->queue_depth = ss.queue_depth;
}

void ingest_stop(ingest_t *ig)
{
    ic_t *ic;
    uint32_t i;

    if (ig->stopping)
        return;
    ig->stopping = 1;
    if (ig->listener != NULL && !ig->listener_closed)
        epw_listener_close(ig->listener, on_listener_closed, ig);
    while ((ic = ig->paused_head) != NULL) {
        drop_pending(ic);
        paused_remove(ig, ic);
    }
    for (i = 0; i < ig->nslots; i++) {
        ic = ig->slots[i].ic;
        if (ic != NULL && ic->state != IC_CLOSING)
            epw_conn_set_reading(ic->conn, 0);
    }
}

void ingest_close(ingest_t *ig, void (*cb)(void *ud), void *ud)
{
    uint32_t i;

    if (ig->closing)
        return;
    ingest_stop(ig);
    ig->closing = 1;
    ig->close_cb = cb;
    ig->close_ud = ud;
    epw_tls_config_set_deny(ig->tls, NULL, NULL);
    for (i = 0; i < ig->nslots; i++) {
        ic_t *ic = ig->slots[i].ic;
        if (ic != NULL)
            ic_close(ic, EPW_E_CLOSED);
    }
    maybe_finish(ig);
}
