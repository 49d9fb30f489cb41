/* epwatch-agent: command-line entry point (one sample, or sampling forever on a libuv loop). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent_conf.h"
#include "agent_opts.h"
#include "capture.h"
#include "epw_err.h"
#include "epw_json.h"
#include "epw_log.h"
#include "epw_snap.h"
#include "epw_table.h"
#include "rlog.h"
#include "sampler.h"
#include "service.h"
#include "uplink.h"
#if defined(_WIN32)
#include "policy.h"
#endif

#define AGENT_EXIT_OK      0
#define AGENT_EXIT_FAILURE 1
#define AGENT_EXIT_USAGE   2

/* How long a stopping agent keeps its connection to let the collector acknowledge what was
 * sent: short on a signal (a service manager is waiting), longer after --count (the caller asked
 * for exactly these samples). Unacknowledged snapshots stay in the spool either way. */
#define AGENT_DRAIN_SIGNAL_MS 3000u
#define AGENT_DRAIN_COUNT_MS  10000u

/* What one program run shares between its samples. The sampler is created lazily on the thread
 * that first samples, because creating it blocks. */
typedef struct agent_s {
    const agent_opts_t *o;
    sampler_t *sampler;
    uint64_t seq;
} agent_t;

static void agent_free_snaps(Epw__Snapshot **snaps, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        epw_snap_free(snaps[i]);
    free(snaps);
}

/* Takes one sample (blocking): the captured files when given, else this host. */
static int agent_take(agent_t *a, Epw__Snapshot ***out, size_t *n_out)
{
    Epw__Snapshot **snaps = NULL;
    size_t n = 0, i;
    int rc;

    *out = NULL;
    *n_out = 0;
    if (a->o->netstat_path) {
        snaps = calloc(1, sizeof(*snaps));
        if (!snaps) {
            rc = UV_ENOMEM;
            goto out;
        }
        rc = capture_sample_files(a->o->netstat_path, a->o->netsh_path, a->o->top_n, &snaps[0]);
        if (rc)
            goto out;
        n = 1;
    } else {
        if (!a->sampler) {
            sampler_opts_t so;

            memset(&so, 0, sizeof(so));
            so.top_n = a->o->top_n;
            so.all_netns = a->o->all_netns;
            so.attribute_pids = a->o->attribute_pids;
            so.watch_events = !a->o->once;
            rc = sampler_create(&so, &a->sampler);
            if (rc)
                goto out;
        }
        rc = sampler_sample(a->sampler, &snaps, &n);
        if (rc)
            goto out;
    }
    a->seq++;
    for (i = 0; i < n; i++)
        snaps[i]->seq = a->seq;
    *out = snaps;
    *n_out = n;
    snaps = NULL;
    n = 0;
out:
    agent_free_snaps(snaps, n);
    return rc;
}

static int agent_append(char **buf, size_t *len, const char *s, size_t n)
{
    char *nb = realloc(*buf, *len + n + 1);

    if (!nb)
        return UV_ENOMEM;
    memcpy(nb + *len, s, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
    return 0;
}

/* JSON of one snapshot; with --all-netns the "netns" key is always present ("" = our own). */
static cJSON *agent_json(const agent_opts_t *o, const Epw__Snapshot *snap)
{
    cJSON *obj = epw_json_snapshot(snap);

    if (obj && o->all_netns && !cJSON_HasObjectItem(obj, "netns") &&
        !cJSON_AddStringToObject(obj, "netns", "")) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return obj;
}

/*
 * The text printed for one sample: table blocks; with --json and --once one pretty object (an
 * array with --all-netns); with --json when continuous one compact object per line.
 */
static int agent_render(const agent_opts_t *o, Epw__Snapshot **snaps, size_t n, char **out,
                        size_t *out_len)
{
    cJSON *arr = NULL, *obj = NULL;
    char *text = NULL, *buf = NULL;
    size_t len = 0, tlen, i;
    int rc = 0;

    *out = NULL;
    *out_len = 0;
    if (o->json && o->once && o->all_netns) {
        arr = cJSON_CreateArray();
        if (!arr) {
            rc = UV_ENOMEM;
            goto out;
        }
    }
    for (i = 0; i < n; i++) {
        if (!o->json) {
            rc = epw_table_render(snaps[i], 0, &text, &tlen);
            if (rc)
                goto out;
        } else {
            obj = agent_json(o, snaps[i]);
            if (!obj) {
                rc = UV_ENOMEM;
                goto out;
            }
            if (arr) {
                if (!cJSON_AddItemToArray(arr, obj)) {
                    rc = UV_ENOMEM;
                    goto out;
                }
                obj = NULL;
                continue;
            }
            text = o->once ? cJSON_Print(obj) : cJSON_PrintUnformatted(obj);
            cJSON_Delete(obj);
            obj = NULL;
            if (!text) {
                rc = UV_ENOMEM;
                goto out;
            }
            tlen = strlen(text);
        }
        rc = agent_append(&buf, &len, text, tlen);
        if (!rc && o->json)
            rc = agent_append(&buf, &len, "\n", 1);
        free(text);
        text = NULL;
        if (rc)
            goto out;
    }
    if (arr) {
        text = cJSON_Print(arr);
        if (!text) {
            rc = UV_ENOMEM;
            goto out;
        }
        rc = agent_append(&buf, &len, text, strlen(text));
        if (!rc)
            rc = agent_append(&buf, &len, "\n", 1);
        if (rc)
            goto out;
    }
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    cJSON_Delete(obj);
    cJSON_Delete(arr);
    free(text);
    free(buf);
    return rc;
}

static int agent_stdout(const char *text, size_t len)
{
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0)
        return UV_EIO;
    return 0;
}

static int run_once(const agent_opts_t *o)
{
    agent_t a;
    Epw__Snapshot **snaps = NULL;
    size_t n = 0, len = 0;
    char *text = NULL;
    int rc;

    memset(&a, 0, sizeof(a));
    a.o = o;
    rc = agent_take(&a, &snaps, &n);
    if (rc) {
        if (o->netstat_path)
            EPW_ERROR("agent", "cannot analyse %s%s%s: %s", o->netstat_path,
                      o->netsh_path ? " with " : "", o->netsh_path ? o->netsh_path : "",
                      epw_strerror(rc));
        else
            EPW_ERROR("agent", "sampling failed: %s", epw_strerror(rc));
        goto out;
    }
    rc = agent_render(o, snaps, n, &text, &len);
    if (!rc)
        rc = agent_stdout(text, len);
    if (rc)
        EPW_ERROR("agent", "cannot print the sample: %s", epw_strerror(rc));
out:
    free(text);
    agent_free_snaps(snaps, n);
    sampler_destroy(a.sampler);
    return rc;
}

/*
 * Continuous mode. Loop-thread state only, except the fields marked "work": those are written by
 * the work callback on a pool thread and read in the after-work callback on the loop thread
 * (libuv orders the two), while `busy` is set.
 */
typedef struct agent_loop_s {
    uv_loop_t loop;
    const agent_conf_t *conf;
    uplink_t *uplink; /* NULL: standalone, or once it has stopped */
    int uplink_stopping;
    uint64_t drain_ms;
    int print; /* samples go to stdout */
    uv_timer_t timer;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_async_t stop; /* woken by the service manager's stop control (Windows service) */
    uv_work_t work;
    agent_t agent;
    const agent_opts_t *o;
    rlog_t *rlog;
    int busy;
    int stopping;
    int failed;
    unsigned handles; /* LOOP_H_* of the handles initialised, each closed once by loop_stop */
    uint64_t samples;
    epw_complain_t sample_fail;
    epw_complain_t log_fail;
    epw_complain_t overrun;
    /* work */
    int work_rc;
    char *text;
    size_t text_len;
    Epw__Snapshot **snaps;
    size_t n_snaps;
} agent_loop_t;

#define LOOP_H_TIMER   0x01u
#define LOOP_H_SIGINT  0x02u
#define LOOP_H_SIGTERM 0x04u
#define LOOP_H_STOP    0x08u

static void loop_uplink_stopped(uplink_t *u, void *ud)
{
    agent_loop_t *l = ud;
    uplink_stats_t st;

    uplink_get_stats(u, &st);
    EPW_INFO("agent",
             "uplink stopped: %llu snapshot(s) spooled, last seq %llu, acknowledged up to %llu, "
             "%llu port-starved",
             (unsigned long long)st.spooled, (unsigned long long)st.last_seq,
             (unsigned long long)st.acked_seq, (unsigned long long)st.port_starved);
    l->uplink = NULL;
}

/* The uplink stops after the last sample was handed over (so that it is spooled too). */
static void loop_stop_uplink(agent_loop_t *l)
{
    if (!l->uplink || l->busy || l->uplink_stopping)
        return;
    l->uplink_stopping = 1;
    uplink_stop(l->uplink, l->drain_ms, loop_uplink_stopped, l);
}

/* Closes every handle; the loop then ends once a running sample has finished and the uplink has
 * stopped. The handles live in agent_loop_t, which outlives uv_run, so no close callback is
 * needed. */
static void loop_stop(agent_loop_t *l)
{
    if (l->stopping)
        return;
    l->stopping = 1;
    if (l->handles & LOOP_H_TIMER)
        uv_close((uv_handle_t *)&l->timer, NULL);
    if (l->handles & LOOP_H_SIGINT)
        uv_close((uv_handle_t *)&l->sigint, NULL);
    if (l->handles & LOOP_H_SIGTERM)
        uv_close((uv_handle_t *)&l->sigterm, NULL);
    if (l->handles & LOOP_H_STOP) {
        service_watch_stop(NULL); /* before closing: no send may reach a closing handle */
        uv_close((uv_handle_t *)&l->stop, NULL);
    }
    /* A queued sample that has not started is dropped; a running one is waited for. */
    if (l->busy)
        uv_cancel((uv_req_t *)&l->work);
    loop_stop_uplink(l);
}

static void loop_work_cb(uv_work_t *req)
{
    agent_loop_t *l = req->data;
    Epw__Snapshot **snaps = NULL;
    size_t n = 0;

    l->text = NULL;
    l->text_len = 0;
    l->work_rc = agent_take(&l->agent, &snaps, &n);
    if (!l->work_rc && (l->rlog || l->print))
        l->work_rc = agent_render(l->o, snaps, n, &l->text, &l->text_len);
    if (!l->work_rc && l->conf->collector.host) {
        /* Handed to the uplink on the loop thread. */
        l->snaps = snaps;
        l->n_snaps = n;
        snaps = NULL;
        n = 0;
    }
    agent_free_snaps(snaps, n);
}

static void loop_after_work_cb(uv_work_t *req, int status)
{
    agent_loop_t *l = req->data;
    int rc;

    l->busy = 0;
    if (status == UV_ECANCELED)
        goto out;
    if (l->n_snaps) {
        /* Ownership passes even on failure; the uplink logs its own problems. */
        rc = uplink_submit(l->uplink, l->snaps, l->n_snaps);
        l->snaps = NULL;
        l->n_snaps = 0;
        if (rc && rc != EPW_E_CLOSED)
            EPW_ERROR("agent", "cannot queue the sample for the collector: %s", epw_strerror(rc));
    }
    l->samples++;
    if (l->work_rc) {
        l->failed = 1;
        epw_complain(&l->sample_fail, EPW_LOG_ERROR, "agent", "sampling failed: %s",
                     epw_strerror(l->work_rc));
        goto done;
    }
    epw_complain_clear(&l->sample_fail, "agent", "sampling");
    if (l->rlog && l->text) {
        rc = rlog_write(l->rlog, l->text, l->text_len);
        if (rc) {
            l->failed = 1;
            epw_complain(&l->log_fail, EPW_LOG_ERROR, "agent", "cannot write %s: %s",
                         l->o->log_path, epw_strerror(rc));
        } else {
            epw_complain_clear(&l->log_fail, "agent", "log writing");
        }
    }
    if (l->print && l->text && agent_stdout(l->text, l->text_len)) {
        /* stdout gone (closed pipe): nobody is reading, so stop rather than spin. */
        EPW_ERROR("agent", "cannot write to standard output; stopping");
        l->failed = 1;
        loop_stop(l);
    }
done:
    if (l->o->count && l->samples >= l->o->count) {
        l->drain_ms = AGENT_DRAIN_COUNT_MS;
        loop_stop(l);
    }
out:
    free(l->text);
    l->text = NULL;
    agent_free_snaps(l->snaps, l->n_snaps);
    l->snaps = NULL;
    l->n_snaps = 0;
    if (l->stopping)
        loop_stop_uplink(l);
}

static void loop_timer_cb(uv_timer_t *t)
{
    agent_loop_t *l = t->data;
    int rc;

    if (l->busy) {
        /* A sample slower than the interval: skip a beat instead of queueing up behind it. */
        epw_complain(&l->overrun, EPW_LOG_WARN, "agent",
                     "previous sample still running; skipping this interval");
        return;
    }
    epw_complain_clear(&l->overrun, "agent", "sampling interval");
    l->work.data = l;
    rc = uv_queue_work(&l->loop, &l->work, loop_work_cb, loop_after_work_cb);
    if (rc) {
        EPW_ERROR("agent", "cannot queue a sample: %s", epw_strerror(rc));
        l->failed = 1;
        loop_stop(l);
        return;
    }
    l->busy = 1;
}

static void loop_signal_cb(uv_signal_t *s, int signum)
{
    agent_loop_t *l = s->data;

    EPW_INFO("agent", "signal %d: stopping after %llu sample(s)", signum,
             (unsigned long long)l->samples);
    loop_stop(l);
}

/* A service stop: the same orderly stop as SIGTERM (a running sample finishes and is spooled,
 * the uplink drains and closes its connection). */
static void loop_stop_cb(uv_async_t *a)
{
    agent_loop_t *l = a->data;

    EPW_INFO("agent", "service stop requested: stopping after %llu sample(s)",
             (unsigned long long)l->samples);
    loop_stop(l);
}

static int loop_start_uplink(agent_loop_t *l)
{
    const agent_conf_t *c = l->conf;
    uplink_opts_t uo;
    int rc;

    memset(&uo, 0, sizeof(uo));
    uo.host = c->collector.host;
    uo.port = c->collector.port;
    uo.server_name = c->server_name;
    uo.bind_addr = c->bind;
    uo.ca = c->ca;
    uo.cert = c->cert;
    uo.key = c->key;
    uo.identity = c->hostname;
    uo.spool_dir = c->spool_dir;
    uo.spool_max = c->spool_max;
    uo.interval_ms = l->o->interval_ms;
    uo.backoff_min_ms = c->reconnect_min_ms;
    uo.backoff_max_ms = c->reconnect_max_ms;
    uo.tls_debug = l->o->log_level >= EPW_LOG_DEBUG ? 1 : 0;
    rc = uplink_start(&l->loop, &uo, &l->uplink);
    if (rc)
        EPW_ERROR("agent", "cannot set up the connection to the collector: %s", epw_strerror(rc));
    else
        EPW_INFO("agent", "streaming to %s:%u as '%s' (spool %s)", c->collector.host,
                 (unsigned)c->collector.port, c->hostname, c->spool_dir);
    return rc;
}

static int run_loop(const agent_opts_t *o, const agent_conf_t *conf)
{
    agent_loop_t *l = calloc(1, sizeof(*l));
    int rc, loop_ready = 0;

    if (!l)
        return UV_ENOMEM;
    l->o = o;
    l->conf = conf;
    l->drain_ms = AGENT_DRAIN_SIGNAL_MS;
    /* With a collector the samples go there (and to the log); stdout stays for diagnostics. */
    l->print = !o->quiet && !conf->collector.host;
    l->agent.o = o;
    if (o->log_path) {
        rc = rlog_open(o->log_path, o->log_max_bytes, o->log_keep, &l->rlog);
        if (rc) {
            EPW_ERROR("agent", "cannot open log %s: %s", o->log_path, epw_strerror(rc));
            goto out;
        }
    }
    rc = uv_loop_init(&l->loop);
    if (rc)
        goto out;
    loop_ready = 1;
    rc = uv_timer_init(&l->loop, &l->timer);
    if (!rc) {
        l->handles |= LOOP_H_TIMER;
        rc = uv_signal_init(&l->loop, &l->sigint);
    }
    if (!rc) {
        l->handles |= LOOP_H_SIGINT;
        rc = uv_signal_init(&l->loop, &l->sigterm);
    }
    if (!rc) {
        l->handles |= LOOP_H_SIGTERM;
        rc = uv_async_init(&l->loop, &l->stop, loop_stop_cb);
    }
    if (rc) {
        EPW_ERROR("agent", "cannot set up the event loop: %s", epw_strerror(rc));
        goto out;
    }
    l->handles |= LOOP_H_STOP;
    l->timer.data = l->sigint.data = l->sigterm.data = l->stop.data = l;
    service_watch_stop(&l->stop);
    if (conf->collector.host) {
        rc = loop_start_uplink(l);
        if (rc)
            goto out;
    }
    rc = uv_signal_start(&l->sigint, loop_signal_cb, SIGINT);
    if (!rc && uv_signal_start(&l->sigterm, loop_signal_cb, SIGTERM))
        EPW_DEBUG("agent", "SIGTERM cannot be watched here; SIGINT stops the agent");
    if (!rc)
        rc = uv_timer_start(&l->timer, loop_timer_cb, 0, o->interval_ms);
    if (rc) {
        EPW_ERROR("agent", "cannot start the event loop: %s", epw_strerror(rc));
        loop_stop(l);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        goto out;
    }
    EPW_DEBUG("agent", "sampling every %llu ms%s%s", (unsigned long long)o->interval_ms,
              o->log_path ? ", logging to " : "", o->log_path ? o->log_path : "");
    uv_run(&l->loop, UV_RUN_DEFAULT);
    rc = l->failed ? EPW_E_INTERNAL : 0;
out:
    if (loop_ready) {
        /* Handles that were initialised but never closed (setup failure) are closed here so
         * that uv_loop_close can succeed. */
        if (!l->stopping) {
            loop_stop(l);
            uv_run(&l->loop, UV_RUN_DEFAULT);
        }
        if (uv_loop_close(&l->loop) != 0) {
            EPW_ERROR("agent", "event loop did not close cleanly");
            rc = rc ? rc : EPW_E_INTERNAL;
        }
    }
    sampler_destroy(l->agent.sampler);
    rlog_close(l->rlog);
    free(l);
    return rc;
}

/* Prints each line of a multi-line message with the program name (to the log when running as
 * a service: there is no stderr to read). */
static void print_errors(const char *err, int as_service)
{
    const char *p = err, *nl;

    while (*p) {
        nl = strchr(p, '\n');
        if (!nl)
            nl = p + strlen(p);
        if (as_service)
            EPW_ERROR("agent", "%.*s", (int)(nl - p), p);
        else
            fprintf(stderr, "epwatch-agent: %.*s\n", (int)(nl - p), p);
        p = *nl ? nl + 1 : nl;
    }
}

static int agent_main(int argc, char **argv, int as_service)
{
    agent_conf_t conf;
    agent_opts_t o;
    char err[4096];
    char *text;
    int rc, exit_code = AGENT_EXIT_OK;

    memset(&conf, 0, sizeof(conf));
    rc = agent_conf_load(argc, argv, &conf, &o, err, sizeof(err));
    if (rc == EPW_E_CONFIG) {
        print_errors(err, as_service);
        exit_code = AGENT_EXIT_USAGE;
        goto out;
    }
    if (rc && as_service) {
        EPW_ERROR("agent", "%s", rc == EPW_E_USAGE ? err : epw_strerror(rc));
        exit_code = rc == EPW_E_USAGE ? AGENT_EXIT_USAGE : AGENT_EXIT_FAILURE;
        goto out;
    }
    if (rc) {
        fprintf(stderr, "epwatch-agent: %s\nTry 'epwatch-agent --help' for more information.\n",
                rc == EPW_E_USAGE ? err : epw_strerror(rc));
        exit_code = rc == EPW_E_USAGE ? AGENT_EXIT_USAGE : AGENT_EXIT_FAILURE;
        goto out;
    }
    if (o.action == AGENT_ACTION_HELP) {
        fputs(agent_opts_usage(), stdout);
        text = agent_conf_help();
        if (text)
            printf("\nConfiguration keys (in the --config file, or as --key VALUE):\n%s", text);
        free(text);
        goto out;
    }
    if (o.action == AGENT_ACTION_VERSION) {
        printf("epwatch-agent %s\n", EPW_VERSION);
        goto out;
    }
    if (o.print_config) {
        text = agent_conf_format(&conf);
        if (!text || fputs(text, stdout) < 0)
            exit_code = AGENT_EXIT_FAILURE;
        free(text);
        goto out;
    }
    epw_log_set_level(o.log_level);
    if (as_service) {
        /* Nobody reads a service's stdout: samples go to the collector and the --log file. */
        o.once = 0;
        o.quiet = 1;
        if (!conf.collector.host)
            EPW_WARN("agent", "no collector configured (agent.ini or Group Policy): sampling "
                              "without streaming");
    }
    rc = o.once ? run_once(&o) : run_loop(&o, &conf);
    exit_code = rc ? AGENT_EXIT_FAILURE : AGENT_EXIT_OK;
out:
    agent_conf_free(&conf);
    return exit_code;
}

/* The body of the Windows service (see service.h). */
static int agent_service_body(int argc, char **argv)
{
    return agent_main(argc, argv, 1);
}

/* `epwatch-agent install [--config FILE]`, `uninstall`, `start`, `stop`. */
static int agent_service_command(service_cmd_t cmd, int argc, char **argv)
{
    const char *config = NULL;
    int rc;

    if (cmd == SERVICE_CMD_INSTALL && argc == 4 && strcmp(argv[2], "--config") == 0)
        config = argv[3];
    else if (argc != 2) {
        fprintf(stderr, "epwatch-agent: usage: epwatch-agent install [--config FILE] | uninstall "
                        "| start | stop\n");
        return AGENT_EXIT_USAGE;
    }
    rc = service_command(cmd, config);
    if (rc == UV_ENOTSUP) {
        fprintf(stderr,
                "epwatch-agent: '%s' is not supported on this system: run the agent "
                "under the system's service manager (e.g. a systemd unit)\n",
                argv[1]);
        return AGENT_EXIT_USAGE;
    }
    return rc ? AGENT_EXIT_FAILURE : AGENT_EXIT_OK;
}

int main(int argc, char **argv)
{
    service_cmd_t cmd = argc > 1 ? service_cmd_parse(argv[1]) : SERVICE_CMD_NONE;
    int rc, exit_code = AGENT_EXIT_OK;

#if !defined(_WIN32)
    /* A write to a connection the collector has just closed must fail with EPIPE, not kill the
     * agent silently (seen in stream_outage: exit 141 on the collector's SIGTERM). */
    signal(SIGPIPE, SIG_IGN);
#endif
    if (cmd != SERVICE_CMD_NONE)
        return agent_service_command(cmd, argc, argv);
#if defined(_WIN32)
    if (argc == 2 && strcmp(argv[1], "--list-policies") == 0) {
        const policy_def_t *d;

        /* The registry values read from HKLM\Software\Policies\epwatch\Agent (tests compare
         * this with the ADMX template). */
        for (d = policy_table(); d->value_name; d++)
            printf("%s %s %s\n", d->value_name, d->type == POLICY_T_DWORD ? "REG_DWORD" : "REG_SZ",
                   d->conf_key);
        return AGENT_EXIT_OK;
    }
#endif
    /* Started by the service manager: it runs the body on its own thread. From a console (or on
     * systems without one) this returns EPW_E_UNAVAILABLE at once: run in the foreground. */
    rc = service_dispatch(agent_service_body, argc, argv, &exit_code);
    if (rc == 0)
        return exit_code;
    if (rc != EPW_E_UNAVAILABLE)
        EPW_DEBUG("agent", "service dispatcher: %s; running in the foreground", epw_strerror(rc));
    return agent_main(argc, argv, 0);
}
