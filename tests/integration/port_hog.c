/* port_hog: holds every port of this network namespace's ephemeral range (for starve_test.sh). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

/*
 * Usage: port_hog READY_FILE
 * Binds (without connecting) a TCP socket to every port of net.ipv4.ip_local_port_range, on
 * 0.0.0.0. Linux's connect() never auto-binds a port that was bound explicitly, whatever the
 * destination, so while this runs every outgoing TCP connection of the namespace fails with
 * EADDRNOTAVAIL: the port exhaustion epwatch watches for. Connecting sockets to a listener would
 * not do: an auto-bound port is shared between different destinations.
 * A port still held by a closing connection cannot be bound yet, so binding is retried for up to
 * 15 s. Once every port is held, writes the count to READY_FILE and waits for SIGTERM/SIGINT
 * (exit 0, the kernel frees the ports). Exit 1 when the range could not be taken.
 */

#define MAX_PORTS 64 /* the test narrows the range to a handful */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int read_range(unsigned *lo, unsigned *hi)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int n;

    if (f == NULL)
        return -1;
    n = fscanf(f, "%u %u", lo, hi);
    fclose(f);
    return n == 2 && *lo <= *hi && *hi < 65536 ? 0 : -1;
}

static int bind_port(unsigned port)
{
    struct sockaddr_in sin;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    /* Lets the bind succeed beside TIME_WAIT leftovers; connect() still skips the port. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    sigset_t block, old;
    struct timespec pause_ts = {0, 50 * 1000 * 1000};
    unsigned lo, hi, p, held = 0, total;
    int fds[MAX_PORTS];
    int tries;
    FILE *f;

    if (argc != 2) {
        fprintf(stderr, "usage: port_hog READY_FILE\n");
        return 2;
    }
    if (read_range(&lo, &hi) != 0 || hi - lo + 1 > MAX_PORTS) {
        fprintf(stderr, "port_hog: cannot use ip_local_port_range (at most %d ports)\n", MAX_PORTS);
        return 1;
    }
    total = hi - lo + 1;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Blocked until sigsuspend, so a signal cannot slip in between the check and the wait. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    for (p = 0; p < total; p++)
        fds[p] = -1;
    for (tries = 0; tries < 300 && held < total; tries++) {
        for (p = 0; p < total; p++) {
            if (fds[p] < 0 && (fds[p] = bind_port(lo + p)) >= 0)
                held++;
        }
        if (held < total)
            nanosleep(&pause_ts, NULL);
    }
    if (held < total) {
        fprintf(stderr, "port_hog: only %u of %u ports could be bound (%s)\n", held, total,
                strerror(errno));
        return 1;
    }
    f = fopen(argv[1], "w");
    if (f == NULL || fprintf(f, "%u\n", held) < 0 || fclose(f) != 0) {
        fprintf(stderr, "port_hog: cannot write %s\n", argv[1]);
        return 1;
    }
    while (!stop)
        sigsuspend(&old);
    return 0;
}
