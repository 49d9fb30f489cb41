/* epw_holdconns: opens N loopback TCP connections to a listener of its own and holds them. */
/*
 * Usage: epw_holdconns -n N [-p PORT] [-a ADDR]
 * Listens on ADDR:PORT (default 127.0.0.1:999, below any usual ephemeral range), then worker
 * processes connect N times in all to it (ephemeral source ports, no bind) and accept each
 * connection, so 2N sockets are held. Each worker holds as many connections as the fd hard limit
 * allows (2 fds each); the parent prints "ready N" on stdout once every worker is done, and the
 * whole group holds the sockets until the parent is killed (workers die with it). Exit 1 with a
 * message on stderr on failure (e.g. EADDRNOTAVAIL when the port range is too small for N).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOLD_MAX 200000L

/* A worker: k connections to the listener, both ends kept. Reports on `done`, then holds. */
static void hold_failed(int done)
{
    char c = 0;

    /* The parent waits on the pipe: tell it, rather than leave it blocked. */
    if (write(done, &c, 1) != 1)
        _exit(1);
    _exit(1);
}

static void hold_worker(int lfd, const struct sockaddr_in *sa, long k, int done)
{
    long i;
    char c = 1;
    int fd;

    prctl(PR_SET_PDEATHSIG, SIGTERM);
    for (i = 0; i < k; i++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
            fprintf(stderr, "epw_holdconns: connection %ld: %s\n", i + 1, strerror(errno));
            hold_failed(done);
        }
        /* Loopback: the connection is queued on the listener by the time connect() returns. */
        if (accept(lfd, NULL, NULL) < 0) {
            fprintf(stderr, "epw_holdconns: accept %ld: %s\n", i + 1, strerror(errno));
            hold_failed(done);
        }
    }
    if (write(done, &c, 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct rlimit rl;
    const char *addr = "127.0.0.1";
    long n = 0, port = 999, left, per, k;
    int one = 1;
    int opt, lfd, status;
    int done[2];
    pid_t pid;
    char c;

    while ((opt = getopt(argc, argv, "n:p:a:")) != -1) {
        if (opt == 'n')
            n = strtol(optarg, NULL, 10);
        else if (opt == 'p')
            port = strtol(optarg, NULL, 10);
        else if (opt == 'a')
            addr = optarg;
        else
            return 1;
    }
    if (n <= 0 || n > HOLD_MAX || port <= 0 || port > 65535) {
        fprintf(stderr, "usage: epw_holdconns -n N (1..%ld) [-p PORT] [-a ADDR]\n", HOLD_MAX);
        return 1;
    }
    /* Without CAP_SYS_RESOURCE the hard limit cannot rise: use it all, and more processes. */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1;
    per = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 2 * HOLD_MAX + 64
              ? HOLD_MAX
              : ((long)rl.rlim_cur - 64) / 2;
    if (per < 1) {
        fprintf(stderr, "epw_holdconns: fd limit %ld too low\n", (long)rl.rlim_cur);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "epw_holdconns: bad address %s\n", addr);
        return 1;
    }
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0 ||
        pipe(done) != 0) {
        fprintf(stderr, "epw_holdconns: listener %s:%ld: %s\n", addr, port, strerror(errno));
        return 1;
    }
    /* One worker at a time, so each accepts exactly its own connections. */
    for (left = n; left > 0; left -= k) {
        k = left < per ? left : per;
        pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0)
            hold_worker(lfd, &sa, k, done[1]);
        if (read(done[0], &c, 1) != 1 || c != 1) {
            waitpid(pid, &status, 0);
            return 1;
        }
    }
    printf("ready %ld\n", n);
    fflush(stdout);
    for (;;)
        pause();
}
