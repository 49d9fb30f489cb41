/* store_writer: the store's queue, writer thread, batching, completions and retention schedule. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_util.h"
#include "store_writer.h"

#define SUB "store"

/*
 * A decoded snapshot's memory: one block (rarely more) that protobuf-c allocates from, released at
 * once. A snapshot unpacks into ~100 small allocations; one by one they were malloc's hottest path
 * (and, when one thread made them and another freed them, its cross-thread arena lock).
 */
typedef struct arena_blk_s arena_blk_t;
struct arena_blk_s {
    arena_blk_t *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
};

/* Pushes an empty block of `cap` bytes on the arena. */
static arena_blk_t *arena_grow(arena_blk_t **head, size_t cap)
{
    arena_blk_t *b = malloc(sizeof(*b) + cap);

    if (!b)
        return NULL;
    b->next = *head;
    b->used = 0;
    b->cap = cap;
    *head = b;
    return b;
}

static void *arena_alloc(void *ud, size_t size)
{
    arena_blk_t **head = ud, *b = *head;
    size_t need = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    void *p;

    if (!b || b->cap - b->used < need) {
        b = arena_grow(head, b && b->cap * 2 > need ? b->cap * 2 : need > 4096 ? need : 4096);
        if (!b)
            return NULL;
    }
    p = (char *)b->data + b->used;
    b->used += need;
    return p;
}

static void arena_free_one(void *ud, void *ptr)
{
    (void)ud; /* released with the whole arena */
    (void)ptr;
}

static void arena_release(arena_blk_t **head)
{
    arena_blk_t *b = *head, *next;

    for (; b; b = next) {
        next = b->next;
        free(b);
    }
    *head = NULL;
}

typedef struct store_item_s store_item_t;
struct store_item_s {
    store_item_t *next;
    store_result_t res;     /* res.identity points into mem */
    int64_t received_at_ms; /* taken on the loop thread when the item was accepted */
    int64_t older_than_ms;  /* PURGE */
    uint64_t dropped;       /* GAP (after_seq is res.seq) */
    store_hello_t hello;    /* HELLO: strings point into mem */
    const uint8_t *data;    /* SNAPSHOT: points into mem */
    size_t len;
    size_t cost;         /* bytes counted in queue_bytes: len, plus the decoded snapshot */
    Epw__Snapshot *snap; /* SNAPSHOT: decoded at submit (see decode_item), or NULL */
    arena_blk_t *arena;  /* snap's memory, released after done_cb (deliver) */
    store_summary_t sum; /* SNAPSHOT: the summary columns; strings borrow snap and dest */
    char dest[STORE_DEST_LEN];
    store_alert_t alert; /* ALERT: strings point into mem */
    int forced;          /* accepted beyond the queue limits (ALERT) */
    char mem[];          /* identity, then the op's strings or bytes: one allocation per item */
};

/*
 * One host's row update for the running batch: hosts are touched once per batch (at its end, or
 * before a Hello that reads the row) with the maxima and the latest snapshot, not once per
 * snapshot. Under load a batch holds several snapshots per host, and the hosts upsert (19 columns
 * of the latest snapshot) was the costliest statement of the insert.
 */
typedef struct touch_s {
    const char *identity; /* the item's: valid until the batch is delivered */
    int64_t seen_ms;
    uint64_t max_seq;
    int64_t latest_id;
    const store_summary_t *latest; /* the item's */
} touch_t;

typedef struct store_list_s {
    store_item_t *head, *tail;
    size_t n;
} store_list_t;

struct store_s {
    uv_loop_t *loop;
    uv_async_t async; /* writer -> loop: results are waiting in `done` */
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond; /* loop -> writer: work queued, pause lifted, closing */
    const store_backend_t *be;
    store_options_t opts; /* defaults applied; target points at `target` */
    char *target;

    /* Under mu. */
    store_db_t *db; /* used only by the writer thread once it runs, and by store_close after */
    store_list_t queue;
    size_t queue_bytes;
    store_list_t done;
    int paused, closing;
    store_stats_t stats;

    /* Loop thread only. */
    int want_room; /* a submit was refused: call room_cb once the queue is half empty */
    int closed;    /* store_close has started: refuse submissions and room_cb */
    store_result_t *scratch;
    size_t scratch_cap;
    store_close_cb close_cb;
    void *close_ud;

    /* Writer thread only. */
    touch_t *touch;        /* the batch's host rows to update, open addressing (touch_add) */
    uint32_t *touch_order; /* their slots in first-seen order */
    size_t n_touch, touch_cap;
    uint64_t next_pass_ms; /* monotonic: when the next retention pass starts */
    int pass_active;       /* a pass is deleting chunk by chunk between batches */
    int64_t pass_cutoff_ms;
};

static void list_append(store_list_t *l, store_item_t *it)
{
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->n++;
}

static void list_concat(store_list_t *dst, store_list_t *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->n += src->n;
    memset(src, 0, sizeof(*src));
}

/* ---- summary ---------------------------------------------------------------------------- */

void store_summarize(const Epw__Snapshot *snap, store_summary_t *out, char dest[STORE_DEST_LEN])
{
    const Epw__DestinationUsage *worst = NULL;
    const Epw__ProcessUsage *top = NULL;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->seq = snap->seq;
    out->taken_at_ms = snap->taken_at_ms;
    out->netns = snap->netns ? snap->netns : "";
    out->pressure_pct = snap->pressure_pct;
    out->pressure_source = snap->pressure_source ? snap->pressure_source : "";
    out->tcp_in_use = out->tcp_max = out->udp_in_use = out->udp_max = -1;
    for (i = 0; i < snap->n_host; i++) {
        const Epw__HostUsage *h = snap->host[i];
        if (h->protocol == EPW__PROTOCOL__TCP) {
            out->tcp_in_use = h->ports_in_use;
            out->tcp_max = h->max_ports;
        } else if (h->protocol == EPW__PROTOCOL__UDP) {
            out->udp_in_use = h->ports_in_use;
            out->udp_max = h->max_ports;
        }
    }
    out->exclusive_ports = snap->exclusive_ports;
    out->kernel_ports = snap->kernel_ports;
    out->total_sockets = snap->total_sockets;

    /* The destination closest to EADDRNOTAVAIL: highest usage, then most connections. */
    for (i = 0; i < snap->n_destinations; i++) {
        const Epw__DestinationUsage *d = snap->destinations[i];
        if (!worst || d->usage_pct > worst->usage_pct ||
            (d->usage_pct == worst->usage_pct && d->connections > worst->connections))
            worst = d;
    }
    out->worst_dest_conns = -1;
    dest[0] = '\0';
    out->worst_dest = dest;
    if (worst) {
        const char *remote = worst->remote_address ? worst->remote_address : "";
        int v6 = strchr(remote, ':') != NULL;
        out->worst_dest_conns = worst->connections;
        snprintf(dest, STORE_DEST_LEN, "%s -> %s%s%s:%u/%s",
                 worst->local_address ? worst->local_address : "", v6 ? "[" : "", remote,
                 v6 ? "]" : "", (unsigned)worst->remote_port, epw_snap_proto_name(worst->protocol));
    }

    for (i = 0; i < snap->n_top_processes; i++) {
        const Epw__ProcessUsage *p = snap->top_processes[i];
        if (!p->other && (!top || p->ports > top->ports))
            top = p;
    }
    out->top_pid = out->top_ports = -1;
    out->top_name = "";
    if (top) {
        out->top_pid = top->pid;
        out->top_ports = top->ports;
        out->top_name = top->name ? top->name : "";
    }
    out->port_starved = snap->port_starved ? 1 : 0;
}

/* ---- backend selection ------------------------------------------------------------------ */

const store_backend_t *store_backend_for_target(const char *target)
{
    const char *p = target ? target : "";

    if (strncmp(p, "postgresql://", 13) == 0 || strncmp(p, "postgres://", 11) == 0)
        return &store_pg_backend;
    /* libpq's key=value form: a keyword (letters and '_') then '='; no file path looks so. */
    while ((*p >= 'a' && *p <= 'z') || *p == '_')
        p++;
    while (p != target && *p == ' ')
        p++;
    if (p != target && *p == '=')
        return &store_pg_backend;
    return &store_sqlite_backend;
}

const store_backend_t *store_backend_by_name(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "sqlite") == 0)
        return &store_sqlite_backend;
    if (strcmp(name, "postgresql") == 0 || strcmp(name, "postgres") == 0)
        return &store_pg_backend;
    return NULL;
}

/* ---- writer thread ---------------------------------------------------------------------- */

static void item_fail(store_item_t *it, int err)
{
    it->res.outcome = STORE_ERROR;
    it->res.err = err;
    it->res.snapshot = NULL;
    it->res.gap_new = 0;
}

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Writes the batch's pending host rows (in the batch's transaction) and empties the table. */
static int touch_flush(store_t *st)
{
    int rc = 0;
    size_t i;

    for (i = 0; i < st->n_touch; i++) {
        touch_t *t = &st->touch[st->touch_order[i]];
        if (!rc)
            rc = st->be->touch_host(st->db, t->identity, t->seen_ms, t->max_seq, t->latest_id,
                                    t->latest);
        t->identity = NULL;
    }
    st->n_touch = 0;
    return rc;
}

/* Drops the pending rows (the batch rolled back). */
static void touch_clear(store_t *st)
{
    size_t i;

    for (i = 0; i < st->n_touch; i++)
        st->touch[st->touch_order[i]].identity = NULL;
    st->n_touch = 0;
}

/* Folds a new snapshot (row `id`) into its host's pending row: the same result as the upsert's
 * rule applied after each insert (maxima; the latest by taken_at, ties to the later one). */
static int touch_add(store_t *st, store_item_t *it, int64_t id)
{
    const char *who = it->res.identity;
    uint32_t mask, i;
    touch_t *t;

    if (!st->touch) /* it holds batch_max hosts: a batch never fills it */
        return st->be->touch_host(st->db, who, it->received_at_ms, it->sum.seq, id, &it->sum);
    mask = (uint32_t)st->touch_cap - 1;
    for (i = str_hash(who) & mask;; i = (i + 1) & mask) {
        t = &st->touch[i];
        if (!t->identity) {
            t->identity = who;
            t->seen_ms = it->received_at_ms;
            t->max_seq = it->sum.seq;
            t->latest_id = id;
            t->latest = &it->sum;
            st->touch_order[st->n_touch++] = i;
            return 0;
        }
        if (strcmp(t->identity, who) == 0)
            break;
    }
    if (it->received_at_ms > t->seen_ms)
        t->seen_ms = it->received_at_ms;
    if (it->sum.seq > t->max_seq)
        t->max_seq = it->sum.seq;
    if (it->sum.taken_at_ms >= t->latest->taken_at_ms) {
        t->latest_id = id;
        t->latest = &it->sum;
    }
    return 0;
}

/* One item inside the batch transaction. Returns nonzero only for failures that doom the batch. */
static int run_item(store_t *st, store_item_t *it)
{
    store_db_t *db = st->db;
    int64_t id = 0;
    int rc = 0, fresh = 0;

    switch (it->res.op) {
    case STORE_OP_HELLO:
        /* It returns last_seq: the batch's snapshots so far must be in the row. */
        rc = touch_flush(st);
        if (!rc)
            rc = st->be->upsert_host(db, &it->hello, it->received_at_ms, &it->res.last_seq);
        break;
    case STORE_OP_SNAPSHOT:
        if (it->snap->dropped_before > 0) {
            uint64_t d = it->snap->dropped_before;
            uint64_t after = it->sum.seq > d ? it->sum.seq - d - 1 : 0;
            rc = st->be->record_gap(db, it->res.identity, after, d, it->received_at_ms, &fresh);
            if (rc)
                return rc;
            it->res.gap_new = fresh;
        }
        rc = st->be->insert_snapshot(db, it->res.identity, it->received_at_ms, &it->sum, it->data,
                                     it->len, &fresh, &id);
        if (!rc && fresh)
            rc = touch_add(st, it, id);
        if (!rc && fresh && st->opts.keep_decoded)
            it->res.snapshot = it->snap; /* released after done_cb (deliver) */
        it->res.outcome = fresh ? STORE_NEW : STORE_DUPLICATE;
        break;
    case STORE_OP_ALERT:
        rc = st->be->upsert_alert(db, &it->alert, &it->res.alert_id);
        break;
    case STORE_OP_GAP:
        rc = st->be->record_gap(db, it->res.identity, it->res.seq, it->dropped, it->received_at_ms,
                                &fresh);
        it->res.outcome = fresh ? STORE_NEW : STORE_DUPLICATE;
        break;
    case STORE_OP_PURGE:
        rc = EPW_E_INTERNAL; /* never batched: see take_batch */
        break;
    }
    return rc;
}

/* Runs one ingest batch in one transaction. On any failure everything is rolled back and every
 * item not already failed on its own is reported EPW_E_DB. */
static void run_batch(store_t *st, store_list_t *batch, uint64_t *out_us)
{
    uint64_t t0 = uv_hrtime();
    store_item_t *it;
    int rc;

    rc = st->be->begin(st->db);
    for (it = batch->head; !rc && it; it = it->next)
        rc = run_item(st, it);
    if (!rc)
        rc = touch_flush(st);
    if (!rc)
        rc = st->be->commit(st->db);
    if (rc) {
        touch_clear(st);
        st->be->rollback(st->db);
        for (it = batch->head; it; it = it->next)
            item_fail(it, EPW_E_DB);
    }
    *out_us = (uv_hrtime() - t0) / 1000;
}

/* One bounded chunk of deletion in its own transaction. */
static int purge_step(store_t *st, int64_t cutoff, uint64_t *deleted, int *more)
{
    int rc;

    *deleted = 0;
    *more = 0;
    rc = st->be->begin(st->db);
    if (rc)
        goto out;
    rc = st->be->purge_chunk(st->db, cutoff, st->opts.retention_chunk, deleted, more);
    if (rc)
        goto out;
    rc = st->be->commit(st->db);
out:
    if (rc) {
        st->be->rollback(st->db);
        *deleted = 0;
        *more = 0;
    }
    return rc;
}

/* An explicit purge runs to the end, chunk after chunk. */
static uint64_t run_purge(store_t *st, store_item_t *it)
{
    uint64_t total = 0, d;
    int more = 1, rc = 0;

    while (!rc && more) {
        rc = purge_step(st, it->older_than_ms, &d, &more);
        total += d;
    }
    it->res.count = total;
    if (rc)
        item_fail(it, EPW_E_DB);
    return total;
}

/* Periodic retention: one chunk per call, so a long pass interleaves with ingest batches. */
static uint64_t retention_step(store_t *st)
{
    uint64_t d = 0;
    int more = 0;

    if (!st->pass_active) {
        st->pass_active = 1;
        st->pass_cutoff_ms = epw_now_ms() - (int64_t)st->opts.retention_ms;
    }
    if (purge_step(st, st->pass_cutoff_ms, &d, &more) || !more) {
        st->pass_active = 0;
        st->next_pass_ms = epw_mono_ms() + st->opts.retention_every_ms;
    }
    return d;
}

/* Writer thread, mu held. 1 when a retention chunk should run now; else *wait_ms is how long
 * until one is due (0: none scheduled). */
static int retention_due(store_t *st, uint64_t *wait_ms)
{
    uint64_t now;

    *wait_ms = 0;
    if (!st->opts.retention_ms)
        return 0;
    if (st->pass_active)
        return 1;
    now = epw_mono_ms();
    if (now >= st->next_pass_ms)
        return 1;
    *wait_ms = st->next_pass_ms - now;
    return 0;
}

/* mu held. Up to batch_max items; a PURGE always travels alone. */
static void take_batch(store_t *st, store_list_t *batch)
{
    store_item_t *it;

    memset(batch, 0, sizeof(*batch));
    while ((it = st->queue.head) && batch->n < st->opts.batch_max) {
        if (it->res.op == STORE_OP_PURGE && batch->n)
            break;
        st->queue.head = it->next;
        if (!st->queue.head)
            st->queue.tail = NULL;
        st->queue.n--;
        st->queue_bytes -= it->cost;
        list_append(batch, it);
        if (it->res.op == STORE_OP_PURGE)
            break;
    }
}

static void writer_main(void *arg)
{
    store_t *st = arg;
    store_list_t batch;
    uint64_t wait_ms, commit_us, purged;
    size_t before;
    int due, closing;

    /* At most batch_max hosts per batch, kept under half full. Without it (no memory) every
     * snapshot touches its host's row at once: slower, same rows. */
    for (st->touch_cap = 16; st->touch_cap < 2 * st->opts.batch_max + 2;)
        st->touch_cap *= 2;
    st->touch = calloc(st->touch_cap, sizeof(*st->touch));
    st->touch_order = calloc(st->touch_cap, sizeof(*st->touch_order));
    if (!st->touch || !st->touch_order) {
        free(st->touch);
        free(st->touch_order);
        st->touch = NULL;
        st->touch_order = NULL;
    }

    uv_mutex_lock(&st->mu);
    for (;;) {
        due = 0;
        while (!st->closing) {
            wait_ms = 0;
            if (!st->paused) {
                due = retention_due(st, &wait_ms);
                if (st->queue.head || due)
                    break;
            }
            if (wait_ms)
                (void)uv_cond_timedwait(&st->cond, &st->mu, wait_ms * 1000000u);
            else
                uv_cond_wait(&st->cond, &st->mu);
        }
        closing = st->closing;
        if (closing && !st->queue.head)
            break;
        before = st->queue.n;
        take_batch(st, &batch);
        /* Crossing half the queue: let the loop report room now, so that the next batch fills
         * while this one commits (results alone would come when the queue is already empty). */
        if (before > st->opts.queue_max / 2 && st->queue.n <= st->opts.queue_max / 2)
            uv_async_send(&st->async);
        uv_mutex_unlock(&st->mu);

        commit_us = 0;
        purged = 0;
        if (batch.head && batch.head->res.op == STORE_OP_PURGE)
            purged = run_purge(st, batch.head);
        else if (batch.head)
            run_batch(st, &batch, &commit_us);
        if (due && !closing)
            purged += retention_step(st);

        uv_mutex_lock(&st->mu);
        st->stats.purged += purged;
        if (batch.head && batch.head->res.op != STORE_OP_PURGE) {
            st->stats.transactions++;
            st->stats.last_commit_us = commit_us;
        }
        if (batch.head) {
            store_item_t *it;
            for (it = batch.head; it; it = it->next)
                if (it->res.outcome == STORE_ERROR)
                    st->stats.failed++;
            st->stats.items += batch.n;
            list_concat(&st->done, &batch);
            uv_async_send(&st->async);
        }
    }
    uv_mutex_unlock(&st->mu);
    free(st->touch);
    free(st->touch_order);
    st->touch = NULL;
    st->touch_order = NULL;
}

/* ---- loop thread ------------------------------------------------------------------------ */

/* Hands finished results to done_cb, then reports room if a submit was refused. */
static void deliver(store_t *st)
{
    store_list_t done;
    store_item_t *it, *next;
    size_t i, depth, bytes;

    uv_mutex_lock(&st->mu);
    done = st->done;
    memset(&st->done, 0, sizeof(st->done));
    uv_mutex_unlock(&st->mu);

    if (done.n > st->scratch_cap) {
        store_result_t *grown = realloc(st->scratch, done.n * sizeof(*grown));
        if (grown) {
            st->scratch = grown;
            st->scratch_cap = done.n;
        }
    }
    if (done.n && done.n <= st->scratch_cap) {
        for (i = 0, it = done.head; it; it = it->next)
            st->scratch[i++] = it->res;
        st->opts.done_cb(st, st->scratch, done.n, st->opts.ud);
    } else {
        for (it = done.head; it; it = it->next) /* no memory for the array: one at a time */
            st->opts.done_cb(st, &it->res, 1, st->opts.ud);
    }
    for (it = done.head; it; it = next) {
        next = it->next;
        arena_release(&it->arena);
        free(it);
    }

    if (!st->want_room || st->closed || !st->opts.room_cb)
        return;
    uv_mutex_lock(&st->mu);
    depth = st->queue.n;
    bytes = st->queue_bytes;
    uv_mutex_unlock(&st->mu);
    if (depth <= st->opts.queue_max / 2 && bytes <= st->opts.queue_max_bytes / 2) {
        st->want_room = 0;
        st->opts.room_cb(st, st->opts.ud);
    }
}

static void on_async(uv_async_t *h)
{
    deliver(h->data);
}

static void on_closed(uv_handle_t *h)
{
    store_t *st = h->data;
    store_close_cb cb = st->close_cb;
    void *ud = st->close_ud;

    uv_cond_destroy(&st->cond);
    uv_mutex_destroy(&st->mu);
    free(st->scratch);
    free(st->target);
    free(st);
    if (cb)
        cb(ud);
}

int store_open(uv_loop_t *loop, const store_options_t *opts, store_t **out)
{
    store_t *st = NULL;
    int rc, have_sync = 0, have_async = 0;

    if (out)
        *out = NULL;
    if (!loop || !opts || !out || !opts->target || !opts->done_cb)
        return UV_EINVAL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return UV_ENOMEM;
    st->loop = loop;
    st->opts = *opts;
    st->be = opts->backend ? opts->backend : store_backend_for_target(opts->target);
    st->target = strdup(opts->target);
    if (!st->target) {
        rc = UV_ENOMEM;
        goto out;
    }
    st->opts.target = st->target;
    if (!st->opts.retention_every_ms)
        st->opts.retention_every_ms = 60000;
    if (!st->opts.retention_chunk)
        st->opts.retention_chunk = 2000;
    if (!st->opts.queue_max)
        st->opts.queue_max = 8192;
    if (!st->opts.queue_max_bytes)
        st->opts.queue_max_bytes = (size_t)128 << 20;
    if (!st->opts.batch_max)
        st->opts.batch_max = 4096;
    st->next_pass_ms = epw_mono_ms(); /* the first pass right away: catch up after downtime */

    rc = st->be->open_writer(&st->opts, &st->db);
    if (rc)
        goto out;
    rc = uv_mutex_init(&st->mu);
    if (rc)
        goto out;
    rc = uv_cond_init(&st->cond);
    if (rc) {
        uv_mutex_destroy(&st->mu);
        goto out;
    }
    have_sync = 1;
    rc = uv_async_init(loop, &st->async, on_async);
    if (rc)
        goto out;
    st->async.data = st;
    have_async = 1;
    rc = uv_thread_create(&st->thread, writer_main, st);
    if (rc)
        goto out;
    EPW_INFO(SUB, "opened %s database %s", st->be->name, st->target);
    *out = st;
out:
    if (rc) {
        if (st->db)
            st->be->close(st->db);
        if (have_async) {
            uv_close((uv_handle_t *)&st->async, on_closed); /* frees st later */
        } else {
            if (have_sync) {
                uv_cond_destroy(&st->cond);
                uv_mutex_destroy(&st->mu);
            }
            free(st->target);
            free(st);
        }
    }
    return rc;
}

void store_close(store_t *st, store_close_cb close_cb, void *ud)
{
    st->closed = 1;
    st->close_cb = close_cb;
    st->close_ud = ud;
    uv_mutex_lock(&st->mu);
    st->closing = 1;
    uv_cond_signal(&st->cond);
    uv_mutex_unlock(&st->mu);
    uv_thread_join(&st->thread); /* the writer drains the queue before it exits */
    deliver(st);
    st->be->close(st->db);
    st->db = NULL;
    uv_close((uv_handle_t *)&st->async, on_closed);
}

void store_set_paused(store_t *st, int paused)
{
    uv_mutex_lock(&st->mu);
    st->paused = paused ? 1 : 0;
    uv_cond_signal(&st->cond);
    uv_mutex_unlock(&st->mu);
}

void store_get_stats(store_t *st, store_stats_t *out)
{
    uv_mutex_lock(&st->mu);
    *out = st->stats;
    out->queue_depth = st->queue.n;
    out->queue_bytes = st->queue_bytes;
    uv_mutex_unlock(&st->mu);
}

/* One allocation holding the item, its identity and `extra` bytes after it. */
static store_item_t *item_new(store_op_t op, uint64_t tag, const char *identity, size_t extra)
{
    size_t idlen = strlen(identity) + 1;
    store_item_t *it = calloc(1, sizeof(*it) + idlen + extra);

    if (!it)
        return NULL;
    memcpy(it->mem, identity, idlen);
    it->res.op = op;
    it->res.tag = tag;
    it->res.identity = it->mem;
    it->received_at_ms = epw_now_ms();
    return it;
}

/* Under mu: whether the queue is too full for an item of `cost` bytes (an item larger than
 * queue_max_bytes alone still goes into an empty queue). */
static int refuses(const store_t *st, size_t cost)
{
    return st->queue.n >= st->opts.queue_max ||
           (st->queue.n && st->queue_bytes + cost > st->opts.queue_max_bytes);
}

static int submit(store_t *st, store_item_t *it)
{
    int rc = 0;

    if (!it)
        return UV_ENOMEM;
    uv_mutex_lock(&st->mu);
    if (st->closing) {
        rc = EPW_E_CLOSED;
    } else if (!it->forced && refuses(st, it->cost)) {
        rc = EPW_E_AGAIN;
    } else {
        list_append(&st->queue, it);
        st->queue_bytes += it->cost;
        uv_cond_signal(&st->cond);
    }
    uv_mutex_unlock(&st->mu);
    if (rc) {
        if (rc == EPW_E_AGAIN)
            st->want_room = 1;
        arena_release(&it->arena);
        free(it);
    }
    return rc;
}

/* A decoded snapshot takes about five times its encoding (protobuf-c structs, pointer arrays,
 * strings: 6.5 KB for the simulator's 1,150 bytes); its arena starts with this much, so one block
 * usually holds it. */
#define DECODED_GUESS(len) (6 * (len) + 512)

/* Loop thread. Whether a snapshot of `len` bytes would be refused for backpressure now: checked
 * before decoding it, so a full queue costs no decode. Only the loop thread adds to the queue, so
 * room seen here is still there at submit() (which checks the exact size again). */
static int queue_full(store_t *st, size_t len)
{
    int full;

    uv_mutex_lock(&st->mu);
    full = refuses(st, len + DECODED_GUESS(len));
    uv_mutex_unlock(&st->mu);
    if (full)
        st->want_room = 1;
    return full;
}

/*
 * Loop thread. Decodes the item's snapshot into its arena and fills the summary. Done here, not on
 * the writer thread: the writer is the one part that cannot run on two cores (one SQLite write
 * connection), so it gets nothing but database work; with the decode on it, it was the bottleneck
 * of a full-rate ingest (tests/bench/RESULTS.md).
 */
static int decode_item(store_item_t *it)
{
    ProtobufCAllocator alloc;
    arena_blk_t *b;

    if (!arena_grow(&it->arena, DECODED_GUESS(it->len)))
        return UV_ENOMEM;
    alloc.alloc = arena_alloc;
    alloc.free = arena_free_one;
    alloc.allocator_data = &it->arena;
    it->snap = epw__snapshot__unpack(&alloc, it->len, it->data);
    if (!it->snap) {
        arena_release(&it->arena);
        return EPW_E_PROTO;
    }
    /* The queue's byte limit bounds what queued snapshots take in memory, decoded ones included. */
    for (b = it->arena; b; b = b->next)
        it->cost += sizeof(*b) + b->cap;
    store_summarize(it->snap, &it->sum, it->dest);
    it->res.seq = it->sum.seq;
    return 0;
}

/* The tail of both snapshot submissions: `it` holds the encoded snapshot; decodes, queues. */
static int submit_snapshot_item(store_t *st, store_item_t *it)
{
    int rc = decode_item(it);

    if (rc) {
        free(it);
        return rc;
    }
    return submit(st, it);
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

int store_submit_hello(store_t *st, uint64_t tag, const store_hello_t *hello)
{
    size_t vlen, olen;
    store_item_t *it;
    char *p;

    if (st->closed)
        return EPW_E_CLOSED;
    if (!hello || !hello->identity || !*hello->identity)
        return UV_EINVAL;
    vlen = strlen(nz(hello->agent_version)) + 1;
    olen = strlen(nz(hello->os)) + 1;
    it = item_new(STORE_OP_HELLO, tag, hello->identity, vlen + olen);
    if (it) {
        it->res.interval_ms = hello->interval_ms;
        p = it->mem + strlen(it->mem) + 1;
        memcpy(p, nz(hello->agent_version), vlen);
        memcpy(p + vlen, nz(hello->os), olen);
        it->hello = *hello;
        it->hello.identity = it->mem;
        it->hello.agent_version = p;
        it->hello.os = p + vlen;
    }
    return submit(st, it);
}

int store_submit_snapshot(store_t *st, uint64_t tag, const char *identity, const uint8_t *data,
                          size_t len)
{
    store_item_t *it;
    char *p;

    if (st->closed)
        return EPW_E_CLOSED;
    if (!identity || !*identity || !data || !len)
        return UV_EINVAL;
    if (queue_full(st, len))
        return EPW_E_AGAIN;
    it = item_new(STORE_OP_SNAPSHOT, tag, identity, len);
    if (!it)
        return UV_ENOMEM;
    p = it->mem + strlen(it->mem) + 1;
    memcpy(p, data, len);
    it->data = (const uint8_t *)p;
    it->len = it->cost = len;
    return submit_snapshot_item(st, it);
}

int store_submit_snapshot_msg(store_t *st, uint64_t tag, const char *identity,
                              const Epw__Snapshot *snap)
{
    store_item_t *it;
    size_t len;
    char *p;

    if (st->closed)
        return EPW_E_CLOSED;
    if (!identity || !*identity || !snap)
        return UV_EINVAL;
    len = epw__snapshot__get_packed_size(snap);
    if (!len)
        return UV_EINVAL;
    if (queue_full(st, len))
        return EPW_E_AGAIN;
    it = item_new(STORE_OP_SNAPSHOT, tag, identity, len);
    if (!it)
        return UV_ENOMEM;
    p = it->mem + strlen(it->mem) + 1;
    epw__snapshot__pack(snap, (uint8_t *)p); /* straight into the item: no extra copy */
    it->data = (const uint8_t *)p;
    it->len = it->cost = len;
    /* The caller's message is borrowed; the item needs its own (summary strings, keep_decoded). */
    return submit_snapshot_item(st, it);
}

int store_submit_gap(store_t *st, uint64_t tag, const char *identity, uint64_t after_seq,
                     uint64_t dropped)
{
    store_item_t *it;

    if (st->closed)
        return EPW_E_CLOSED;
    if (!identity || !*identity)
        return UV_EINVAL;
    it = item_new(STORE_OP_GAP, tag, identity, 0);
    if (it) {
        it->res.seq = after_seq;
        it->dropped = dropped;
    }
    return submit(st, it);
}

/* Copies `s` ("" for NULL) to *p and advances it. */
static const char *put_str(char **p, const char *s)
{
    size_t n = strlen(nz(s)) + 1;
    char *dst = *p;

    memcpy(dst, nz(s), n);
    *p += n;
    return dst;
}

int store_submit_alert(store_t *st, uint64_t tag, const store_alert_t *a)
{
    const char *strs[9];
    size_t extra = 0, i;
    store_item_t *it;
    char *p;

    if (st->closed)
        return EPW_E_CLOSED;
    if (!a || !a->host || !*a->host || !a->kind || !a->key || !*a->key || !a->severity)
        return UV_EINVAL;
    strs[0] = a->netns;
    strs[1] = a->kind;
    strs[2] = a->subject;
    strs[3] = a->key;
    strs[4] = a->severity;
    strs[5] = a->summary;
    strs[6] = a->evidence;
    strs[7] = a->last_evidence;
    strs[8] = NULL;
    for (i = 0; i < 8; i++)
        extra += strlen(nz(strs[i])) + 1;
    it = item_new(STORE_OP_ALERT, tag, a->host, extra);
    if (!it)
        return UV_ENOMEM;
    p = it->mem + strlen(it->mem) + 1;
    it->alert = *a;
    it->alert.host = it->mem;
    it->alert.netns = put_str(&p, a->netns);
    it->alert.kind = put_str(&p, a->kind);
    it->alert.subject = put_str(&p, a->subject);
    it->alert.key = put_str(&p, a->key);
    it->alert.severity = put_str(&p, a->severity);
    it->alert.summary = put_str(&p, a->summary);
    it->alert.evidence = a->evidence ? put_str(&p, a->evidence) : NULL;
    it->alert.last_evidence = put_str(&p, a->last_evidence ? a->last_evidence : "{}");
    it->forced = 1;
    return submit(st, it);
}

int store_submit_purge(store_t *st, uint64_t tag, int64_t older_than_ms)
{
    store_item_t *it;

    if (st->closed)
        return EPW_E_CLOSED;
    it = item_new(STORE_OP_PURGE, tag, "", 0);
    if (it)
        it->older_than_ms = older_than_ms;
    return submit(st, it);
}

/* ---- read side -------------------------------------------------------------------------- */

struct store_reader_s {
    const store_backend_t *be;
    store_db_t *db;
};

int store_reader_open(const store_backend_t *backend, const char *target, store_reader_t **out)
{
    store_reader_t *rd;
    int rc;

    if (out)
        *out = NULL;
    if (!target || !out)
        return UV_EINVAL;
    rd = calloc(1, sizeof(*rd));
    if (!rd)
        return UV_ENOMEM;
    rd->be = backend ? backend : store_backend_for_target(target);
    rc = rd->be->open_reader(target, &rd->db);
    if (rc) {
        free(rd);
        return rc;
    }
    *out = rd;
    return 0;
}

int store_reader_open_for(const store_t *st, store_reader_t **out)
{
    return store_reader_open(st->be, st->target, out);
}

void store_reader_close(store_reader_t *rd)
{
    if (!rd)
        return;
    rd->be->close(rd->db);
    free(rd);
}

int store_reader_last_seq(store_reader_t *rd, const char *identity, uint64_t *out)
{
    *out = 0;
    if (!identity)
        return UV_EINVAL;
    return rd->be->last_seq(rd->db, identity, out);
}

int store_reader_count(store_reader_t *rd, const char *identity, uint64_t *out)
{
    *out = 0;
    if (!identity)
        return UV_EINVAL;
    return rd->be->count(rd->db, identity, out);
}

int store_reader_hosts(store_reader_t *rd, store_host_list_t **out)
{
    *out = NULL;
    return rd->be->hosts(rd->db, out);
}

struct store_strblk_s {
    struct store_strblk_s *next;
    size_t used, cap;
    char data[];
};

#define STRBLK_SIZE (256u << 10)

const char *store_host_list_str(store_host_list_t *list, const char *s, size_t len)
{
    struct store_strblk_s *b = list->strings;
    char *p;

    if (!s)
        s = "", len = 0;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > STRBLK_SIZE ? len + 1 : STRBLK_SIZE;
        b = malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = list->strings;
        list->strings = b;
    }
    p = b->data + b->used;
    memcpy(p, s, len);
    p[len] = '\0';
    b->used += len + 1;
    return p;
}

void store_host_list_free(store_host_list_t *list)
{
    struct store_strblk_s *b, *next;

    if (!list)
        return;
    for (b = list->strings; b; b = next) {
        next = b->next;
        free(b);
    }
    free(list->hosts);
    free(list);
}

int store_reader_history(store_reader_t *rd, const char *identity, int64_t from_ms, int64_t to_ms,
                         int64_t step_ms, store_point_t **out_points, size_t *out_n)
{
    *out_points = NULL;
    *out_n = 0;
    if (!identity || step_ms <= 0 || to_ms <= from_ms)
        return UV_EINVAL;
    if ((uint64_t)(to_ms - from_ms) / (uint64_t)step_ms >= STORE_HISTORY_MAX)
        return EPW_E_TOOBIG;
    return rd->be->history(rd->db, identity, from_ms, to_ms, step_ms, out_points, out_n);
}

int store_reader_snapshot_at(store_reader_t *rd, const char *identity, const char *netns,
                             int64_t at_ms, store_blob_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!identity)
        return UV_EINVAL;
    return rd->be->snapshot_at(rd->db, identity, netns, at_ms, out);
}

int store_reader_alerts(store_reader_t *rd, const store_alert_query_t *q, store_alert_list_t **out)
{
    *out = NULL;
    if (!q || q->active < -1 || q->active > 1)
        return UV_EINVAL;
    return rd->be->alerts(rd->db, q, out);
}

void store_alert_list_free(store_alert_list_t *list)
{
    size_t i;

    if (!list)
        return;
    for (i = 0; i < list->n; i++) {
        store_alert_t *a = &list->alerts[i];
        free((void *)a->host);
        free((void *)a->netns);
        free((void *)a->kind);
        free((void *)a->subject);
        free((void *)a->key);
        free((void *)a->severity);
        free((void *)a->summary);
        free((void *)a->evidence);
        free((void *)a->last_evidence);
    }
    free(list->alerts);
    free(list);
}
