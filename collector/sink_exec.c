/* sink_exec: runs the configured command per alert (uv_spawn, JSON on stdin, a kill timeout). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epw_err.h"
#include "epw_log.h"
#include "epw_util.h"
#include "sink_internal.h"

extern char **environ;

/*
 * One child at a time, so alerts reach the command in order. A run owns two handles (the process
 * and its stdin pipe), initialised per run and closed before the next one starts; the timeout
 * timer lives as long as the sink. A run is over when both run handles are closed.
 */
struct sink_exec_s {
    sinks_t *s;
    uv_loop_t *loop;
    char *command;
    uint64_t timeout_ms;
    sink_queue_t q;
    sink_job_t *cur;
    uv_process_t proc;
    uv_pipe_t in;
    uv_write_t wr;
    uv_timer_t timer;
    int run_open; /* run handles not yet closed */
    int spawn_err;
    int exited, timed_out, cancelled;
    int64_t exit_status;
    int term_signal;
    int pid;
};

static void exec__start_next(sink_exec_t *e);

static void exec__run_done(sink_exec_t *e)
{
    sink_job_t *job = e->cur;
    sinks_result_t r;
    char detail[96] = "";

    memset(&r, 0, sizeof(r));
    r.sink = SINKS_EXEC;
    r.attempts = 1;
    r.exit_status = e->exit_status;
    r.term_signal = e->term_signal;
    if (e->spawn_err) {
        r.status = e->spawn_err;
        snprintf(detail, sizeof(detail), "cannot start /bin/sh");
    } else if (e->timed_out) {
        r.status = EPW_E_TIMEOUT;
        snprintf(detail, sizeof(detail), "killed after %llu ms", (unsigned long long)e->timeout_ms);
    } else if (e->cancelled) {
        r.status = EPW_E_CLOSED;
        snprintf(detail, sizeof(detail), "killed at shutdown");
    } else if (e->term_signal) {
        r.status = EPW_E_REJECTED;
        snprintf(detail, sizeof(detail), "killed by signal %d", e->term_signal);
    } else if (e->exit_status) {
        r.status = EPW_E_REJECTED;
        snprintf(detail, sizeof(detail), "exit status %lld", (long long)e->exit_status);
    } else {
        EPW_INFO("sinks", "exec: alert %s (%s): exit status 0 in %llu ms", job->key,
                 detect_transition_name(job->transition),
                 (unsigned long long)(epw_mono_ms() - job->queued_ms));
    }
    e->cur = NULL;
    sinks__report(e->s, job, &r, detail[0] ? detail : NULL);
    sink_job_free(job);
    exec__start_next(e);
    if (!e->cur)
        sinks__idle(e->s);
}

static void exec__run_closed(uv_handle_t *h)
{
    sink_exec_t *e = h->data;

    if (--e->run_open == 0)
        exec__run_done(e);
}

static void exec__close_pipe(sink_exec_t *e)
{
    if (!uv_is_closing((uv_handle_t *)&e->in))
        uv_close((uv_handle_t *)&e->in, exec__run_closed);
}

static void exec__written(uv_write_t *req, int status)
{
    sink_exec_t *e = req->data;

    /* EPIPE when the command does not read its stdin: not a failure, its exit status decides. */
    if (status && status != UV_ECANCELED)
        EPW_DEBUG("sinks", "exec: writing the alert to stdin: %s", uv_strerror(status));
    exec__close_pipe(e); /* EOF for the child */
}

static void exec__exited(uv_process_t *p, int64_t exit_status, int term_signal)
{
    sink_exec_t *e = p->data;

    e->exited = 1;
    e->exit_status = exit_status;
    e->term_signal = term_signal;
    uv_timer_stop(&e->timer);
    uv_close((uv_handle_t *)p, exec__run_closed);
    exec__close_pipe(e); /* cancels a write still pending */
}

/* The child is a session leader (UV_PROCESS_DETACHED): killing its group also ends whatever the
 * shell started, which killing the shell alone would orphan. */
static void exec__kill(sink_exec_t *e)
{
    if (e->exited || e->pid <= 0)
        return;
    if (kill(-e->pid, SIGKILL) != 0)
        uv_process_kill(&e->proc, SIGKILL);
}

static void exec__timeout(uv_timer_t *t)
{
    sink_exec_t *e = t->data;

    e->timed_out = 1;
    exec__kill(e);
}

/* The collector's environment without EPWATCH_* entries, then the job's. NULL when out of
 * memory. The strings are borrowed: the array only has to outlive uv_spawn. */
static char **exec__environment(const sink_job_t *job)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ && environ[n])
        n++;
    env = calloc(n + sizeof(job->env) / sizeof(job->env[0]) + 1, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "EPWATCH_", 8))
            env[k++] = environ[i];
    for (size_t i = 0; job->env[i]; i++)
        env[k++] = job->env[i];
    env[k] = NULL;
    return env;
}

/* Starts the next queued job, if idle. A job that cannot start is reported (through the usual
 * close path when handles were initialised, directly otherwise) and the next one tried. */
static void exec__start_next(sink_exec_t *e)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    char *args[4];
    char **env;
    uv_buf_t buf;
    sink_job_t *job;
    int rc;

    while (!e->cur && e->q.head) {
        job = sink_queue_pop(&e->q);
        e->cur = job;
        e->spawn_err = 0;
        e->exited = e->timed_out = e->cancelled = 0;
        e->exit_status = 0;
        e->term_signal = 0;
        e->pid = 0;
        env = exec__environment(job);
        rc = env ? uv_pipe_init(e->loop, &e->in, 0) : UV_ENOMEM;
        if (rc) {
            sinks_result_t r;

            free(env);
            memset(&r, 0, sizeof(r));
            r.sink = SINKS_EXEC;
            r.attempts = 1;
            r.status = rc;
            e->cur = NULL;
            sinks__report(e->s, job, &r, "cannot prepare the command");
            sink_job_free(job);
            continue;
        }
        e->in.data = e;
        e->run_open++;

        args[0] = (char *)"/bin/sh";
        args[1] = (char *)"-c";
        args[2] = e->command;
        args[3] = NULL;
        memset(&o, 0, sizeof(o));
        memset(stdio, 0, sizeof(stdio));
        stdio[0].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_READABLE_PIPE);
        stdio[0].data.stream = (uv_stream_t *)&e->in;
        stdio[1].flags = UV_IGNORE;
        stdio[2].flags = UV_INHERIT_FD;
        stdio[2].data.fd = 2;
        o.file = args[0];
        o.args = args;
        o.env = env;
        o.stdio = stdio;
        o.stdio_count = 3;
        o.exit_cb = exec__exited;
        o.flags = UV_PROCESS_DETACHED;
        e->proc.data = e;
        rc = uv_spawn(e->loop, &e->proc, &o);
        free(env);
        /* uv_spawn initialises the handle even when it fails: it is closed either way. */
        e->run_open++;
        if (rc) {
            e->spawn_err = rc;
            uv_close((uv_handle_t *)&e->proc, exec__run_closed);
            exec__close_pipe(e);
            return;
        }
        e->pid = e->proc.pid;
        buf = uv_buf_init(job->body, (unsigned int)job->body_len);
        e->wr.data = e;
        if (uv_write(&e->wr, (uv_stream_t *)&e->in, &buf, 1, exec__written))
            exec__close_pipe(e);
        uv_timer_start(&e->timer, exec__timeout, e->timeout_ms, 0);
    }
}

int sink_exec_create(sinks_t *s, uv_loop_t *loop, const sinks_conf_t *c, sink_exec_t **out)
{
    sink_exec_t *e;
    int rc;

    *out = NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return UV_ENOMEM;
    e->s = s;
    e->loop = loop;
    e->timeout_ms = c->exec_timeout_ms;
    e->command = strdup(c->exec_command);
    if (!e->command) {
        rc = UV_ENOMEM;
        goto fail;
    }
    rc = uv_timer_init(loop, &e->timer);
    if (rc)
        goto fail;
    e->timer.data = e;
    *out = e;
    return 0;
fail:
    free(e->command);
    free(e);
    return rc;
}

void sink_exec_push(sink_exec_t *e, sink_job_t *job)
{
    sink_queue_push(&e->q, job);
    exec__start_next(e);
}

size_t sink_exec_pending(const sink_exec_t *e)
{
    return e->q.count + (e->cur ? 1 : 0);
}

void sink_exec_cancel(sink_exec_t *e)
{
    sink_job_t *job;

    while ((job = sink_queue_pop(&e->q))) {
        sinks_result_t r;

        memset(&r, 0, sizeof(r));
        r.sink = SINKS_EXEC;
        r.status = EPW_E_CLOSED;
        sinks__report(e->s, job, &r, "not run: shutting down");
        sink_job_free(job);
    }
    if (e->cur && !e->spawn_err && !e->exited) {
        e->cancelled = 1;
        exec__kill(e);
    }
}

static void exec__timer_closed(uv_handle_t *h)
{
    sink_exec_t *e = h->data;
    sinks_t *s = e->s;

    free(e->command);
    free(e);
    sinks__unref(s);
}

void sink_exec_close(sink_exec_t *e)
{
    uv_close((uv_handle_t *)&e->timer, exec__timer_closed);
}
