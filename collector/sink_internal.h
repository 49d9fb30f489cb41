/* sink_internal: what sinks.c shares with the exec and webhook sinks (not a public header). */
#ifndef SINK_INTERNAL_H
#define SINK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sinks.h"

/*
 * One alert queued for an asynchronous sink: everything a delivery needs, owned by the job.
 * Threads: the loop thread only, like the whole module.
 */
typedef struct sink_job_s {
    struct sink_job_s *next;
    char *body; /* the alert JSON, NUL-terminated */
    size_t body_len;
    char *key;
    detect_transition_t transition;
    char *env[8];       /* exec only: "EPWATCH_X=value" strings, NULL-terminated */
    uint64_t queued_ms; /* epw_mono_ms at dispatch */
} sink_job_t;

typedef struct sink_queue_s {
    sink_job_t *head, *tail;
    size_t count;
} sink_queue_t;

void sink_job_free(sink_job_t *job);
void sink_queue_push(sink_queue_t *q, sink_job_t *job);
sink_job_t *sink_queue_pop(sink_queue_t *q);

/* Called by a sink for each finished job (r->sink, status, details filled; key, transition and
 * elapsed are filled here). Counts, logs failures rate-limited with `detail` (may be NULL), calls
 * the user's callback. Does not free the job. */
void sinks__report(sinks_t *s, const sink_job_t *job, sinks_result_t *r, const char *detail);
/* Counts one webhook retry. */
void sinks__count_retry(sinks_t *s);
/* A sink finished a job and has nothing left: during sinks_close this may end the grace period
 * (deferred to the next loop iteration, never re-entering the caller). */
void sinks__idle(sinks_t *s);
/* A sink freed itself after sink_*_close: the set's memory goes when the last one does. */
void sinks__unref(sinks_t *s);

/* The exec sink. create: 0, UV_ENOMEM or a uv_timer_init error. push: takes the job; starts it
 * when idle. pending: queued + running. cancel: reports queued jobs as EPW_E_CLOSED and kills a
 * running child (its result follows when it is reaped). close: only when pending is 0; frees
 * itself in its last close callback, then calls sinks__unref. */
typedef struct sink_exec_s sink_exec_t;
int sink_exec_create(sinks_t *s, uv_loop_t *loop, const sinks_conf_t *c, sink_exec_t **out);
void sink_exec_push(sink_exec_t *e, sink_job_t *job);
size_t sink_exec_pending(const sink_exec_t *e);
void sink_exec_cancel(sink_exec_t *e);
void sink_exec_close(sink_exec_t *e);

/* The webhook sink, same contract; cancel aborts the request at once. create also returns
 * EPW_E_INTERNAL when curl fails to initialise. */
typedef struct sink_webhook_s sink_webhook_t;
int sink_webhook_create(sinks_t *s, uv_loop_t *loop, const sinks_conf_t *c, sink_webhook_t **out);
void sink_webhook_push(sink_webhook_t *w, sink_job_t *job);
size_t sink_webhook_pending(const sink_webhook_t *w);
void sink_webhook_cancel(sink_webhook_t *w);
void sink_webhook_close(sink_webhook_t *w);

#endif
