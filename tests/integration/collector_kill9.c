/* collector_kill9: runs epwatch-collector, kill -9s it mid-stream, restarts it, and checks with
 * sqlite3 that every acknowledged snapshot is stored exactly once (and every sent one in the end).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <uv.h>

#include "epw_log.h"
#include "epw_testcerts.h"
#include "fake_agent.h"

#define N 3000

static uv_loop_t loop;
static uv_process_t proc;
static int proc_running, proc_exited, exit_status, term_signal;
static char certs[256], dir[] = "/tmp/epw-kill9-XXXXXX", conf[300], db[300];
static fake_agent_t agent;
static char logpath[300];
static int logfd = -1;

static void show_log(void)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "tail -n 40 '%s' >&2", logpath);
    if (logpath[0] && system(cmd) != 0)
        fprintf(stderr, "(no collector log)\n");
}

/* Never leaves a collector behind: it would outlive the test. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "collector_kill9: " __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                                       \
        if (proc_running)                                                                          \
            uv_process_kill(&proc, SIGKILL);                                                       \
        show_log();                                                                                \
        exit(1);                                                                                   \
    } while (0)

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    exit_status = (int)status;
    term_signal = sig;
    proc_running = 0;
    proc_exited = 1;
    uv_close((uv_handle_t *)p, NULL);
}

static void start_collector(void)
{
    uv_process_options_t o;
    uv_stdio_container_t io[3];
    char *args[] = {(char *)EPW_COLLECTOR_EXE, (char *)"--config", conf, NULL};
    int rc;

    memset(&o, 0, sizeof(o));
    io[0].flags = UV_IGNORE;
    /* A file, not our stdout: a pipe held open by the child would keep a reader waiting. */
    io[1].flags = UV_INHERIT_FD;
    io[1].data.fd = logfd;
    io[2].flags = UV_INHERIT_FD;
    io[2].data.fd = logfd;
    o.file = EPW_COLLECTOR_EXE;
    o.args = args;
    o.exit_cb = on_exit_cb;
    o.stdio = io;
    o.stdio_count = 3;
    proc_exited = 0;
    rc = uv_spawn(&loop, &proc, &o);
    if (rc)
        FAIL("spawn %s: %s", EPW_COLLECTOR_EXE, uv_strerror(rc));
    proc_running = 1;
}

static uint16_t free_port(void)
{
    uv_tcp_t t;
    struct sockaddr_in sin;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uint16_t port;

    uv_tcp_init(&loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &sin);
    uv_tcp_bind(&t, (const struct sockaddr *)&sin, 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return port;
}

static int hello_done(void *ud)
{
    (void)ud;
    return agent.got_hello_ack || agent.closed;
}

/* Connects until a HelloAck arrives (the collector may still be starting). */
static void connect_agent(uint16_t port)
{
    int tries;

    for (tries = 0; tries < 200; tries++) {
        int never = 0;
        if (fake_agent_connect(&agent, port) == 0) {
            run_until_fn(&loop, hello_done, NULL, 3000);
            if (agent.got_hello_ack && agent.reject == 0)
                return;
            if (!agent.closed) {
                fake_agent_close(&agent);
                run_until(&loop, &agent.closed, 3000);
            }
        }
        run_until(&loop, &never, 50);
    }
    FAIL("agent could not connect");
}

static int acked_third(void *ud)
{
    (void)ud;
    return agent.acked >= N / 3 || agent.closed;
}

static int all_acked(void *ud)
{
    (void)ud;
    return agent.acked >= N || agent.closed;
}

static void check_db(uint64_t want)
{
    char cmd[600], line[256], expect[128];
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "sqlite3 '%s' \"SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM "
             "snapshots WHERE host = 'host-a'\"",
             db);
    p = popen(cmd, "r");
    if (p == NULL || fgets(line, sizeof(line), p) == NULL)
        FAIL("sqlite3 query failed");
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    snprintf(expect, sizeof(expect), "%llu|%llu|1|%llu", (unsigned long long)want,
             (unsigned long long)want, (unsigned long long)want);
    if (strcmp(line, expect) != 0)
        FAIL("database holds '%s' (count|distinct|min|max), expected '%s'", line, expect);
}

int main(void)
{
    char path[300];
    uint64_t acked_before_kill;
    uint16_t port;
    FILE *f;
    int never = 0;

    signal(SIGPIPE, SIG_IGN);
    epw_log_set_level(EPW_LOG_ERROR);
    if (uv_loop_init(&loop) || epw_testcerts_make(certs, sizeof(certs)) || !mkdtemp(dir))
        FAIL("setup");
    port = free_port();
    snprintf(conf, sizeof(conf), "%s/collector.ini", dir);
    snprintf(logpath, sizeof(logpath), "%s/collector.log", dir);
    logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (logfd < 0)
        FAIL("cannot create %s", logpath);
    snprintf(db, sizeof(db), "%s/epwatch.db", dir);
    f = fopen(conf, "w");
    if (f == NULL)
        FAIL("cannot write %s", conf);
    fprintf(f,
            "; written by collector_kill9\nlisten = 127.0.0.1:%u\ndb = %s\nca = %s/ca.crt\n"
            "cert = %s/collector.crt\nkey = %s/collector.key\nlog_level = warn\n"
            "handshake_timeout = 2s\n",
            (unsigned)port, db, certs, certs, certs);
    fclose(f);

    {
        char ca[300], crt[300], key[300];
        if (fake_agent_init(&agent, &loop, epw_testcerts_path(ca, sizeof(ca), certs, "ca.crt"),
                            epw_testcerts_path(crt, sizeof(crt), certs, "host-a.crt"),
                            epw_testcerts_path(key, sizeof(key), certs, "host-a.key")))
            FAIL("agent TLS config");
    }
    agent.hello_host = "host-a";
    agent.first = 1;
    agent.last = N;
    agent.resume = 1;
    agent.per_tick = 3;

    /* Phase 1: stream until a third is acknowledged, then kill -9 mid-stream. */
    start_collector();
    connect_agent(port);
    if (!run_until_fn(&loop, acked_third, NULL, 20000) || agent.closed)
        FAIL("phase 1: acked %llu", (unsigned long long)agent.acked);
    acked_before_kill = agent.acked;
    uv_process_kill(&proc, SIGKILL);
    run_until(&loop, &proc_exited, 5000);
    if (term_signal != SIGKILL)
        FAIL("collector did not die by SIGKILL");
    run_until(&loop, &agent.closed, 5000);
    if (agent.acked < acked_before_kill)
        FAIL("acknowledgements went backwards");
    fprintf(stderr, "collector_kill9: killed with %llu acked, %llu sent\n",
            (unsigned long long)agent.acked, (unsigned long long)agent.sent);
    /* Every acknowledged snapshot must be on disk right now. */
    {
        char cmd[600], line[64];
        FILE *p;
        snprintf(cmd, sizeof(cmd),
                 "sqlite3 '%s' \"SELECT count(*) FROM snapshots WHERE host='host-a' AND seq <= "
                 "%llu\"",
                 db, (unsigned long long)agent.acked);
        p = popen(cmd, "r");
        if (p == NULL || fgets(line, sizeof(line), p) == NULL)
            FAIL("sqlite3 after kill");
        pclose(p);
        if (strtoull(line, NULL, 10) != agent.acked)
            FAIL("after kill -9: %s rows for %llu acknowledged seqs", line,
                 (unsigned long long)agent.acked);
    }

    /* Phase 2: restart; the agent resumes after HelloAck.last_seq. */
    acked_before_kill = agent.acked;
    start_collector();
    connect_agent(port);
    if (agent.hello_last_seq < acked_before_kill)
        FAIL("restart: last_seq %llu < acknowledged %llu", (unsigned long long)agent.hello_last_seq,
             (unsigned long long)acked_before_kill);
    if (!run_until_fn(&loop, all_acked, NULL, 30000) || agent.acked != N)
        FAIL("phase 2: acked %llu of %d", (unsigned long long)agent.acked, N);

    /* Graceful stop: exit 0. */
    uv_process_kill(&proc, SIGTERM);
    run_until(&loop, &proc_exited, 10000);
    if (!proc_exited || exit_status != 0 || term_signal != 0)
        FAIL("SIGTERM: exit status %d signal %d", exit_status, term_signal);
    run_until(&loop, &agent.closed, 5000);
    fake_agent_release(&agent);
    run_until(&loop, &never, 20);
    check_db(N);
    if (uv_loop_close(&loop) != 0)
        FAIL("loop not empty");
    close(logfd);
    epw_testcerts_remove(certs);
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);
    if (system(path) != 0)
        FAIL("cleanup");
    fprintf(stderr, "collector_kill9: ok, %d snapshots stored exactly once\n", N);
    return 0;
}
