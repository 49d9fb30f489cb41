/* test_sampler_linux: the Linux sampler on real sockets in network namespaces the test creates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <uv.h>

#include "diag_linux.h"
#include "epw_err.h"
#include "epw_snap.h"
#include "epw_util.h"
#include "procfd_linux.h"
#include "procparse_linux.h"
#include "sampler.h"

/* The namespace the test process moved into; the range every netns test relies on. */
#define T_RANGE_FIRST 40000u
#define T_RANGE_COUNT 100u
#define T_RESERVED    5u /* 40095-40099 */
#define T_PORT4       5000
#define T_PORT6       5001
#define T_BOUND_PORT  40050
#define T_UDP_PORT    40051
#define T_CONNS4      37
#define T_CONNS6      5
/* Usable ports for a new TCP connection: range - reserved - the bound-inactive socket's port. */
#define T_FREE_TCP (T_RANGE_COUNT - T_RESERVED - 1u)

static int g_netns;         /* 1 when the process got a namespace of its own */
static char g_why_not[160]; /* why not */
static int g_fds[1024];     /* sockets the namespace tests keep open until exit */
static size_t g_nfds;
static int g_client4; /* connections to 127.0.0.1:5000 made so far */

/* ---- pure parsers ---------------------------------------------------------------------- */

typedef struct spans_s {
    uint32_t v[16][2];
    size_t n;
} spans_t;

static int collect_span(void *ud, uint32_t first, uint32_t last)
{
    spans_t *s = ud;

    if (s->n == 16)
        return EPW_E_TOOBIG;
    s->v[s->n][0] = first;
    s->v[s->n][1] = last;
    s->n++;
    return 0;
}

static int reserved(const char *text, spans_t *s)
{
    memset(s, 0, sizeof(*s));
    return procparse_reserved_ports((const uint8_t *)text, strlen(text), collect_span, s);
}

static void test_reserved_ports(void **state)
{
    spans_t s;

    (void)state;
    assert_int_equal(reserved("", &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(reserved("\n", &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(reserved("8080\n", &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0][0], 8080);
    assert_int_equal(s.v[0][1], 8080);
    assert_int_equal(reserved("1,3-5,40095-40099,65535\n", &s), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.v[0][0], 1);
    assert_int_equal(s.v[1][0], 3);
    assert_int_equal(s.v[1][1], 5);
    assert_int_equal(s.v[2][0], 40095);
    assert_int_equal(s.v[2][1], 40099);
    assert_int_equal(s.v[3][0], 65535);
    assert_int_equal(s.v[3][1], 65535);
    assert_int_equal(reserved("0-65535", &s), 0);
    assert_int_equal(s.v[0][1], 65535);

    assert_int_equal(reserved("65536", &s), EPW_E_PARSE);
    assert_int_equal(reserved("99999999999999999999", &s), EPW_E_PARSE);
    assert_int_equal(reserved("5-3", &s), EPW_E_PARSE);
    assert_int_equal(reserved("1,,2", &s), EPW_E_PARSE);
    assert_int_equal(reserved("1,", &s), EPW_E_PARSE);
    assert_int_equal(reserved(",1", &s), EPW_E_PARSE);
    assert_int_equal(reserved("1-", &s), EPW_E_PARSE);
    assert_int_equal(reserved("-1", &s), EPW_E_PARSE);
    assert_int_equal(reserved("1 2", &s), EPW_E_PARSE);
    assert_int_equal(reserved("1;2", &s), EPW_E_PARSE);
    /* A callback failure stops the parse and is passed through. */
    assert_int_equal(reserved("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", &s), EPW_E_TOOBIG);
    assert_int_equal(s.n, 16);
    /* Bounded: only `len` bytes are read even when more follow. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(procparse_reserved_ports((const uint8_t *)"12,34", 2, collect_span, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0][0], 12);
}

static int port_range(const char *text, uint32_t *start, uint32_t *count)
{
    return procparse_port_range((const uint8_t *)text, strlen(text), start, count);
}

static void test_port_range(void **state)
{
    uint32_t start, count;

    (void)state;
    assert_int_equal(port_range("32768\t60999\n", &start, &count), 0);
    assert_int_equal(start, 32768);
    assert_int_equal(count, 28232);
    assert_int_equal(port_range("1024 65535", &start, &count), 0);
    assert_int_equal(count, 64512);
    assert_int_equal(port_range("40000 40000\n", &start, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(port_range("5 3", &start, &count), EPW_E_PARSE);
    assert_int_equal(start, 0);
    assert_int_equal(port_range("0 10", &start, &count), EPW_E_PARSE);
    assert_int_equal(port_range("1 65536", &start, &count), EPW_E_PARSE);
    assert_int_equal(port_range("32768", &start, &count), EPW_E_PARSE);
    assert_int_equal(port_range("32768\t60999 1", &start, &count), EPW_E_PARSE);
    assert_int_equal(port_range("a b", &start, &count), EPW_E_PARSE);
    assert_int_equal(port_range("", &start, &count), EPW_E_PARSE);
}

static void test_small_parsers(void **state)
{
    uint32_t v, major, minor;

    (void)state;
    assert_int_equal(procparse_uint((const uint8_t *)"2\n", 2, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(procparse_uint((const uint8_t *)"4294967295", 10, &v), 0);
    assert_int_equal(v, UINT32_MAX);
    assert_int_equal(procparse_uint((const uint8_t *)"4294967296", 10, &v), EPW_E_PARSE);
    assert_int_equal(procparse_uint((const uint8_t *)"1x", 2, &v), EPW_E_PARSE);
    assert_int_equal(procparse_uint((const uint8_t *)"", 0, &v), EPW_E_PARSE);

    assert_int_equal(procparse_socket_link("socket:[4026531]", 16, &v), 0);
    assert_int_equal(v, 4026531);
    assert_int_equal(procparse_socket_link("socket:[1]", 10, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(procparse_socket_link("socket:[]", 9, &v), EPW_E_PARSE);
    assert_int_equal(procparse_socket_link("socket:[12", 10, &v), EPW_E_PARSE);
    assert_int_equal(procparse_socket_link("socket:[12a]", 12, &v), EPW_E_PARSE);
    assert_int_equal(procparse_socket_link("socket:[12]x", 12, &v), EPW_E_PARSE);
    assert_int_equal(procparse_socket_link("socket:[4294967296]", 19, &v), EPW_E_PARSE);
    assert_int_equal(procparse_socket_link("pipe:[123]", 10, &v), EPW_E_PARSE);
    assert_int_equal(procparse_socket_link("/dev/null", 9, &v), EPW_E_PARSE);
    assert_int_equal(procparse_socket_link("anon_inode:[eventfd]", 20, &v), EPW_E_PARSE);
    /* The length is what counts, not a terminator. */
    assert_int_equal(procparse_socket_link("socket:[77]", 8, &v), EPW_E_PARSE);

    assert_int_equal(procparse_pid("1234", 4, &v), 0);
    assert_int_equal(v, 1234);
    assert_int_equal(procparse_pid("self", 4, &v), EPW_E_PARSE);
    assert_int_equal(procparse_pid("0", 1, &v), EPW_E_PARSE);
    assert_int_equal(procparse_pid("012", 3, &v), EPW_E_PARSE);
    assert_int_equal(procparse_pid("12a", 3, &v), EPW_E_PARSE);
    assert_int_equal(procparse_pid("", 0, &v), EPW_E_PARSE);

    assert_int_equal(procparse_kernel_version("6.18.44-fc-v769", 15, &major, &minor), 0);
    assert_int_equal(major, 6);
    assert_int_equal(minor, 18);
    assert_int_equal(procparse_kernel_version("5.4", 3, &major, &minor), 0);
    assert_int_equal(major, 5);
    assert_int_equal(minor, 4);
    assert_int_equal(procparse_kernel_version("6", 1, &major, &minor), EPW_E_PARSE);
    assert_int_equal(procparse_kernel_version("6.", 2, &major, &minor), EPW_E_PARSE);
    assert_int_equal(procparse_kernel_version("x.1", 3, &major, &minor), EPW_E_PARSE);
}

/* ---- the inode map ------------------------------------------------------------------------ */

static void test_map(void **state)
{
    procfd_map_t *m;
    uint32_t i;

    (void)state;
    assert_int_equal(procfd_map_create(0, &m), 0);
    /* Sequential inodes, as the kernel allocates them, through several growths. */
    for (i = 1; i <= 100000; i++)
        assert_int_equal(procfd_map_put(m, 5000000 + i, i % 977 + 1), 0);
    /* And scattered ones. */
    for (i = 1; i <= 1000; i++)
        assert_int_equal(procfd_map_put(m, i * 2654435u, 7), 0);
    assert_int_equal(procfd_map_count(m), 101000);
    for (i = 1; i <= 100000; i++)
        assert_int_equal(procfd_map_get(m, 5000000 + i), i % 977 + 1);
    for (i = 1; i <= 1000; i++)
        assert_int_equal(procfd_map_get(m, i * 2654435u), 7);
    assert_int_equal(procfd_map_get(m, 5000000), 0);
    assert_int_equal(procfd_map_get(m, 5100001), 0);
    assert_int_equal(procfd_map_get(m, 0), 0);
    /* The first holder wins; inode 0 is never stored. */
    assert_int_equal(procfd_map_put(m, 5000001, 999), 0);
    assert_int_equal(procfd_map_get(m, 5000001), 2);
    assert_int_equal(procfd_map_put(m, 0, 5), 0);
    assert_int_equal(procfd_map_count(m), 101000);
    procfd_map_destroy(m);
    procfd_map_destroy(NULL);
}

static void mkpath(const char *root, const char *rel, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", root, rel);
}

/* A fake /proc: the scan must read socket links, skip others and non-PID entries. */
static void test_scan_fake_proc(void **state)
{
    char root[] = "/tmp/epw-procfd-XXXXXX";
    static const char *const dirs[] = {"123",  "123/fd",  "456",  "456/fd", "789",
                                       "self", "self/fd", "0123", "0123/fd"};
    static const char *const links[][2] = {
        {"socket:[777]", "123/fd/3"},  {"/dev/null", "123/fd/0"},     {"pipe:[778]", "123/fd/1"},
        {"socket:[779]", "123/fd/4"},  {"socket:[777]", "456/fd/9"},  {"socket:[800]", "456/fd/10"},
        {"socket:[901]", "self/fd/3"}, {"socket:[902]", "0123/fd/3"}, {"socket:[12", "456/fd/11"},
    };
    procfd_stats_t st;
    procfd_map_t *m;
    char p[256];
    size_t i;

    (void)state;
    assert_non_null(mkdtemp(root));
    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        mkpath(root, dirs[i], p, sizeof(p));
        assert_int_equal(mkdir(p, 0700), 0);
    }
    for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        mkpath(root, links[i][1], p, sizeof(p));
        assert_int_equal(symlink(links[i][0], p), 0);
    }
    assert_int_equal(procfd_map_create(0, &m), 0);
    assert_int_equal(procfd_map_scan(m, root, 1, &st), 0);
    assert_int_equal(st.procs, 2); /* 789 has no fd directory: it vanished meanwhile */
    assert_int_equal(st.procs_denied, 0);
    assert_int_equal(st.sockets, 4);
    assert_int_equal(st.inodes, 3);
    assert_int_equal(procfd_map_get(m, 777), 123);
    assert_int_equal(procfd_map_get(m, 779), 123);
    assert_int_equal(procfd_map_get(m, 800), 456);
    assert_int_equal(procfd_map_get(m, 778), 0);
    assert_int_equal(procfd_map_get(m, 901), 0);
    assert_int_equal(procfd_map_get(m, 902), 0);
    assert_int_equal(procfd_map_scan(m, "/nonexistent-epw", 2, &st), UV_ENOENT);
    procfd_map_destroy(m);
    /* Threads share the processes out: the same map (777 is held by 123 and 456: 123 wins). */
    assert_int_equal(procfd_map_create(0, &m), 0);
    assert_int_equal(procfd_map_scan(m, root, 4, &st), 0);
    assert_int_equal(st.procs, 2);
    assert_int_equal(st.sockets, 4);
    assert_int_equal(st.inodes, 3);
    assert_int_equal(procfd_map_get(m, 777), 123);
    assert_int_equal(procfd_map_get(m, 779), 123);
    assert_int_equal(procfd_map_get(m, 800), 456);
    procfd_map_destroy(m);

    for (i = sizeof(links) / sizeof(links[0]); i-- > 0;) {
        mkpath(root, links[i][1], p, sizeof(p));
        unlink(p);
    }
    for (i = sizeof(dirs) / sizeof(dirs[0]); i-- > 0;) {
        mkpath(root, dirs[i], p, sizeof(p));
        rmdir(p);
    }
    assert_int_equal(rmdir(root), 0);
}

/* The real /proc: a socket of ours is attributed to us. */
static void test_scan_real_proc(void **state)
{
    procfd_stats_t st;
    procfd_map_t *m;
    struct stat sb;
    int fd;

    (void)state;
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(procfd_map_create(0, &m), 0);
    assert_int_equal(procfd_map_scan(m, "/proc", 2, &st), 0);
    assert_true(st.procs >= 1);
    assert_int_equal(procfd_map_get(m, (uint32_t)sb.st_ino), (uint32_t)getpid());
    procfd_map_destroy(m);
    close(fd);
}

/*
 * The real /proc with a big fd table (read by fd number) that also has a far, isolated fd (found
 * by listing the directory from where the probing stopped).
 */
static void test_scan_real_proc_big(void **state)
{
    enum { NSOCK = 300, FAR_FD = 4000 };
    uint32_t inodes[NSOCK], far_inode;
    procfd_stats_t st;
    procfd_map_t *m;
    struct stat sb;
    int fds[NSOCK], far;
    int i;

    (void)state;
    for (i = 0; i < NSOCK; i++) {
        fds[i] = socket(AF_UNIX, SOCK_DGRAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(fstat(fds[i], &sb), 0);
        inodes[i] = (uint32_t)sb.st_ino;
    }
    far = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(far >= 0);
    assert_int_equal(dup2(far, FAR_FD), FAR_FD);
    close(far);
    assert_int_equal(fstat(FAR_FD, &sb), 0);
    far_inode = (uint32_t)sb.st_ino;

    assert_int_equal(procfd_map_create(0, &m), 0);
    assert_int_equal(procfd_map_scan(m, "/proc", 2, &st), 0);
    for (i = 0; i < NSOCK; i++)
        assert_int_equal(procfd_map_get(m, inodes[i]), (uint32_t)getpid());
    assert_int_equal(procfd_map_get(m, far_inode), (uint32_t)getpid());
    procfd_map_destroy(m);
    for (i = 0; i < NSOCK; i++)
        close(fds[i]);
    close(FAR_FD);
}

/*
 * The threaded scan against the single-threaded one on the real /proc, with a fd table big enough
 * to be cut into units (dense runs read by number, a gap wider than a unit's miss budget, a far
 * fd listed): each of our sockets is found, by us, whatever the thread count.
 */
static void test_scan_threads(void **state)
{
    enum { NSOCK = 6000, GAP_FIRST = 2500, GAP_LAST = 3300, FAR_FD = NSOCK + 2000 };
    static uint32_t inodes[NSOCK];
    static int fds[NSOCK];
    static const unsigned threads[] = {1, 2, 3, PROCFD_MAX_THREADS + 5};
    uint32_t far_inode;
    procfd_stats_t st;
    procfd_map_t *m;
    struct rlimit rl;
    struct stat sb;
    int far, i;
    size_t t;

    (void)state;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < FAR_FD + 100) {
        print_message("skipped: RLIMIT_NOFILE hard limit %llu too low\n",
                      (unsigned long long)rl.rlim_max);
        skip();
    }
    rl.rlim_cur = FAR_FD + 100;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    for (i = 0; i < NSOCK; i++) {
        fds[i] = socket(AF_UNIX, SOCK_DGRAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(fstat(fds[i], &sb), 0);
        inodes[i] = (uint32_t)sb.st_ino;
    }
    /* A hole in the middle of the table, wider than a unit's miss budget. */
    for (i = GAP_FIRST; i < GAP_LAST; i++) {
        close(fds[i]);
        fds[i] = -1;
    }
    far = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(far >= 0);
    assert_int_equal(dup2(far, FAR_FD), FAR_FD);
    close(far);
    assert_int_equal(fstat(FAR_FD, &sb), 0);
    far_inode = (uint32_t)sb.st_ino;

    for (t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
        assert_int_equal(procfd_map_create(0, &m), 0);
        assert_int_equal(procfd_map_scan(m, "/proc", threads[t], &st), 0);
        assert_true(st.sockets >= NSOCK - (GAP_LAST - GAP_FIRST) + 1);
        for (i = 0; i < NSOCK; i++) {
            if (fds[i] >= 0)
                assert_int_equal(procfd_map_get(m, inodes[i]), (uint32_t)getpid());
        }
        assert_int_equal(procfd_map_get(m, far_inode), (uint32_t)getpid());
        procfd_map_destroy(m);
    }
    for (i = 0; i < NSOCK; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    close(FAR_FD);
}

/* The lowest PID holding an inode wins, in any insertion order (so any thread interleaving). */
static void test_map_lowest_pid(void **state)
{
    procfd_map_t *m;

    (void)state;
    assert_int_equal(procfd_map_create(0, &m), 0);
    assert_int_equal(procfd_map_put(m, 42, 900), 0);
    assert_int_equal(procfd_map_put(m, 42, 17), 0);
    assert_int_equal(procfd_map_put(m, 42, 300), 0);
    assert_int_equal(procfd_map_get(m, 42), 17);
    assert_int_equal(procfd_map_count(m), 1);
    procfd_map_destroy(m);
}

/* ---- the netlink decoder ------------------------------------------------------------------- */

typedef struct rows_s {
    sockrow_t v[8];
    size_t n;
    int fail_at; /* return UV_ENOMEM when this many rows were taken (0: never) */
} rows_t;

static int collect_row(void *ud, sockrow_t *row)
{
    rows_t *r = ud;

    if (r->fail_at && (int)r->n == r->fail_at)
        return UV_ENOMEM;
    if (r->n < 8)
        r->v[r->n++] = *row;
    return 0;
}

/* Appends one netlink message to buf at *off. */
static void put_msg(uint8_t *buf, size_t *off, uint16_t type, uint32_t seq, const void *body,
                    size_t blen)
{
    struct nlmsghdr h;

    memset(&h, 0, sizeof(h));
    h.nlmsg_len = (uint32_t)(sizeof(h) + blen);
    h.nlmsg_type = type;
    h.nlmsg_seq = seq;
    memcpy(buf + *off, &h, sizeof(h));
    memcpy(buf + *off + sizeof(h), body, blen);
    *off += NLMSG_ALIGN(h.nlmsg_len);
}

static void diag_msg(struct inet_diag_msg *m, int family, uint8_t state, const char *src,
                     uint16_t sport, const char *dst, uint16_t dport, uint32_t inode)
{
    memset(m, 0, sizeof(*m));
    m->idiag_family = (uint8_t)family;
    m->idiag_state = state;
    m->id.idiag_sport = htons(sport);
    m->id.idiag_dport = htons(dport);
    assert_int_equal(inet_pton(family, src, m->id.idiag_src), 1);
    assert_int_equal(inet_pton(family, dst, m->id.idiag_dst), 1);
    m->idiag_inode = inode;
}

static void test_diag_parse(void **state)
{
    static uint8_t buf[4096];
    struct inet_diag_msg m;
    struct nlmsgerr e;
    uint8_t v4[4], v6[16];
    uint32_t nrows = 0;
    int32_t zero = 0;
    size_t off = 0;
    int cb_rc = 0, done = 0;
    rows_t r;

    (void)state;
    memset(&r, 0, sizeof(r));
    diag_msg(&m, AF_INET, 1, "10.0.0.1", 40001, "10.0.0.9", 1433, 111);
    put_msg(buf, &off, SOCK_DIAG_BY_FAMILY, 7, &m, sizeof(m));
    diag_msg(&m, AF_INET6, DIAG_TCP_BOUND_INACTIVE, "::ffff:127.0.0.1", 40050, "::", 0, 112);
    put_msg(buf, &off, SOCK_DIAG_BY_FAMILY, 7, &m, sizeof(m));
    diag_msg(&m, AF_INET6, 10, "::1", 5001, "::", 0, 113);
    put_msg(buf, &off, SOCK_DIAG_BY_FAMILY, 6, &m, sizeof(m)); /* another request's: ignored */
    diag_msg(&m, AF_INET6, 6, "fe80::1", 40002, "fe80::2", 443, 0);
    put_msg(buf, &off, SOCK_DIAG_BY_FAMILY, 7, &m, sizeof(m));
    put_msg(buf, &off, NLMSG_DONE, 7, &zero, sizeof(zero));

    assert_int_equal(diag_parse(buf, off, 7, SOCKROW_TCP, collect_row, &r, &nrows, &cb_rc, &done),
                     0);
    assert_int_equal(done, 1);
    assert_int_equal(cb_rc, 0);
    assert_int_equal(nrows, 3);
    assert_int_equal(r.n, 3);
    inet_pton(AF_INET, "10.0.0.1", v4);
    assert_int_equal(r.v[0].family, 4);
    assert_int_equal(r.v[0].proto, SOCKROW_TCP);
    assert_int_equal(r.v[0].state, SOCKROW_ST_ESTABLISHED);
    assert_int_equal(r.v[0].lport, 40001);
    assert_int_equal(r.v[0].rport, 1433);
    assert_memory_equal(r.v[0].laddr, v4, 4);
    assert_int_equal(r.v[0].inode, 111);
    assert_int_equal(r.v[0].pid, 0);
    assert_int_equal(r.v[0].flags, 0);
    /* IPv4-mapped: reported as IPv4. */
    inet_pton(AF_INET, "127.0.0.1", v4);
    assert_int_equal(r.v[1].family, 4);
    assert_int_equal(r.v[1].state, SOCKROW_ST_BOUND);
    assert_memory_equal(r.v[1].laddr, v4, 4);
    assert_int_equal(r.v[1].laddr[4], 0);
    assert_true(sockrow_addr_is_any(4, r.v[1].raddr));
    inet_pton(AF_INET6, "fe80::2", v6);
    assert_int_equal(r.v[2].family, 6);
    assert_int_equal(r.v[2].state, SOCKROW_ST_TIME_WAIT);
    assert_memory_equal(r.v[2].raddr, v6, 16);

    /* UDP rows carry no state. */
    memset(&r, 0, sizeof(r));
    nrows = 0;
    done = 0;
    assert_int_equal(diag_parse(buf, off, 7, SOCKROW_UDP, collect_row, &r, &nrows, &cb_rc, &done),
                     0);
    assert_int_equal(r.v[0].proto, SOCKROW_UDP);
    assert_int_equal(r.v[0].state, SOCKROW_ST_NONE);

    /* A callback failure stops the callbacks, not the search for DONE. */
    memset(&r, 0, sizeof(r));
    r.fail_at = 1;
    nrows = 0;
    done = 0;
    assert_int_equal(diag_parse(buf, off, 7, SOCKROW_TCP, collect_row, &r, &nrows, &cb_rc, &done),
                     0);
    assert_int_equal(cb_rc, UV_ENOMEM);
    assert_int_equal(done, 1);
    assert_int_equal(r.n, 1);

    /* Truncated: the last message claims more than the buffer holds. */
    memset(&r, 0, sizeof(r));
    cb_rc = 0;
    done = 0;
    assert_int_equal(diag_parse(buf, 40, 7, SOCKROW_TCP, collect_row, &r, &nrows, &cb_rc, &done),
                     EPW_E_TRUNCATED);
    assert_int_equal(r.n, 0);

    /* The kernel's refusal (udp_diag missing) comes back as its errno. */
    off = 0;
    memset(&e, 0, sizeof(e));
    e.error = -ENOENT;
    put_msg(buf, &off, NLMSG_ERROR, 9, &e, sizeof(e));
    done = 0;
    assert_int_equal(diag_parse(buf, off, 9, SOCKROW_UDP, collect_row, &r, &nrows, &cb_rc, &done),
                     UV_ENOENT);
    assert_int_equal(done, 1);
    /* A dump that failed part-way: DONE carries the errno. */
    off = 0;
    zero = -EINTR;
    put_msg(buf, &off, NLMSG_DONE, 9, &zero, sizeof(zero));
    done = 0;
    assert_int_equal(diag_parse(buf, off, 9, SOCKROW_TCP, collect_row, &r, &nrows, &cb_rc, &done),
                     UV_EINTR);
}

static void test_diag_states(void **state)
{
    (void)state;
    assert_int_equal(diag_tcp_state(1), SOCKROW_ST_ESTABLISHED);
    assert_int_equal(diag_tcp_state(2), SOCKROW_ST_SYN_SENT);
    assert_int_equal(diag_tcp_state(3), SOCKROW_ST_SYN_RECV);
    assert_int_equal(diag_tcp_state(4), SOCKROW_ST_FIN_WAIT1);
    assert_int_equal(diag_tcp_state(5), SOCKROW_ST_FIN_WAIT2);
    assert_int_equal(diag_tcp_state(6), SOCKROW_ST_TIME_WAIT);
    assert_int_equal(diag_tcp_state(7), SOCKROW_ST_BOUND);
    assert_int_equal(diag_tcp_state(8), SOCKROW_ST_CLOSE_WAIT);
    assert_int_equal(diag_tcp_state(9), SOCKROW_ST_LAST_ACK);
    assert_int_equal(diag_tcp_state(10), SOCKROW_ST_LISTEN);
    assert_int_equal(diag_tcp_state(11), SOCKROW_ST_CLOSING);
    assert_int_equal(diag_tcp_state(12), SOCKROW_ST_SYN_RECV);
    assert_int_equal(diag_tcp_state(13), SOCKROW_ST_BOUND);
    assert_int_equal(diag_tcp_state(0), SOCKROW_ST_OTHER);
    assert_int_equal(diag_tcp_state(14), SOCKROW_ST_OTHER);
}

/* ---- namespace helpers ---------------------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = write(fd, text, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

static int lo_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc = -1;

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

static void keep(int fd)
{
    assert_true(fd >= 0);
    assert_true(g_nfds < sizeof(g_fds) / sizeof(g_fds[0]));
    g_fds[g_nfds++] = fd;
}

static socklen_t sockaddr_of(int family, const char *addr, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, addr, &a->sin_addr);
        return sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, addr, &a->sin6_addr);
        return sizeof(*a);
    }
}

static int bound_socket(int family, int type, const char *addr, int port)
{
    struct sockaddr_storage ss;
    socklen_t len = sockaddr_of(family, addr, port, &ss);
    int fd = socket(family, type | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        print_message("bind %s port %d: %s\n", addr, port, strerror(errno));
        fail();
    }
    return fd;
}

/* Connects to addr:port and accepts the other end from `lfd`. 0 or -errno of connect(). */
static int connect_pair(int family, const char *addr, int port, int lfd)
{
    struct sockaddr_storage ss;
    socklen_t len = sockaddr_of(family, addr, port, &ss);
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err;

    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    keep(fd);
    /* Loopback: the connection is already in the accept queue when connect() returns. */
    keep(accept4(lfd, NULL, NULL, SOCK_CLOEXEC));
    return 0;
}

static int sample(int all_netns, int attribute, Epw__Snapshot ***snaps, size_t *n)
{
    sampler_opts_t o;
    sampler_t *s = NULL;
    int rc;

    memset(&o, 0, sizeof(o));
    o.all_netns = all_netns;
    o.attribute_pids = attribute;
    rc = sampler_create(&o, &s);
    if (rc == 0)
        rc = sampler_sample(s, snaps, n);
    sampler_destroy(s);
    return rc;
}

static void free_snaps(Epw__Snapshot **snaps, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        epw_snap_free(snaps[i]);
    free(snaps);
}

static const Epw__DestinationUsage *find_dest(const Epw__Snapshot *s, const char *local,
                                              const char *remote, uint32_t port)
{
    size_t i;

    for (i = 0; i < s->n_destinations; i++) {
        const Epw__DestinationUsage *d = s->destinations[i];
        if (strcmp(d->local_address, local) == 0 && strcmp(d->remote_address, remote) == 0 &&
            d->remote_port == port)
            return d;
    }
    return NULL;
}

static uint32_t state_count(const Epw__Snapshot *s, const char *name)
{
    size_t i;

    for (i = 0; i < s->n_states; i++)
        if (strcmp(s->states[i]->state, name) == 0)
            return s->states[i]->count;
    return 0;
}

static int has_note(const Epw__Snapshot *s, const char *part)
{
    size_t i;

    for (i = 0; i < s->n_notes; i++)
        if (strstr(s->notes[i], part))
            return 1;
    return 0;
}

static int has_listening(const Epw__Snapshot *s, uint32_t port)
{
    size_t i;

    for (i = 0; i < s->n_listening_ports; i++)
        if (s->listening_ports[i] == port)
            return 1;
    return 0;
}

static void check_ranges(const Epw__Snapshot *s, uint32_t start, uint32_t count, uint32_t excluded)
{
    size_t i;

    assert_int_equal(s->n_ranges, 4);
    for (i = 0; i < s->n_ranges; i++) {
        assert_int_equal(s->ranges[i]->start, start);
        assert_int_equal(s->ranges[i]->count, count);
        assert_int_equal(s->ranges[i]->excluded, excluded);
        assert_int_equal(s->ranges[i]->source, EPW__RANGE_SOURCE__RANGE_SYSCTL);
    }
}

static void print_snap(const Epw__Snapshot *s)
{
    size_t i;

    print_message("netns='%s' pressure=%.1f source='%s' total=%u dests=%u\n", s->netns,
                  s->pressure_pct, s->pressure_source, s->total_sockets, s->destination_count);
    for (i = 0; i < s->n_states; i++)
        print_message("  state %s: %u\n", s->states[i]->state, s->states[i]->count);
    for (i = 0; i < s->n_notes; i++)
        print_message("  note: %s\n", s->notes[i]);
}

static int need_netns(void)
{
    if (!g_netns) {
        print_message("SKIPPED: cannot create a network namespace (%s); run as root\n", g_why_not);
        return 0;
    }
    return 1;
}

/* ---- namespace tests --------------------------------------------------------------------------
 */

static void test_counts(void **state)
{
    const Epw__DestinationUsage *d;
    Epw__Snapshot **snaps = NULL;
    Epw__Snapshot *s;
    char comm[64] = "", host[256];
    size_t n = 0, hlen = sizeof(host);
    int l4, l6, i, fd;
    ssize_t cl;

    (void)state;
    if (!need_netns()) {
        skip();
        return;
    }
    /* Bound, neither connected nor listening: holds its port exclusively. Bound first, so no
     * connection can have taken the port. */
    keep(bound_socket(AF_INET, SOCK_STREAM, "127.0.0.1", T_BOUND_PORT));
    keep(bound_socket(AF_INET, SOCK_DGRAM, "127.0.0.1", T_UDP_PORT));
    l4 = bound_socket(AF_INET, SOCK_STREAM, "127.0.0.1", T_PORT4);
    assert_int_equal(listen(l4, 512), 0);
    keep(l4);
    l6 = bound_socket(AF_INET6, SOCK_STREAM, "::1", T_PORT6);
    assert_int_equal(listen(l6, 512), 0);
    keep(l6);
    for (i = 0; i < T_CONNS4; i++)
        assert_int_equal(connect_pair(AF_INET, "127.0.0.1", T_PORT4, l4), 0);
    g_client4 = T_CONNS4;
    for (i = 0; i < T_CONNS6; i++)
        assert_int_equal(connect_pair(AF_INET6, "::1", T_PORT6, l6), 0);

    assert_int_equal(sample(0, 1, &snaps, &n), 0);
    assert_int_equal(n, 1);
    s = snaps[0];
    print_snap(s);
    assert_string_equal(s->netns, "");
    assert_int_equal(s->platform, EPW__PLATFORM__LINUX);
    assert_int_equal(uv_os_gethostname(host, &hlen), 0);
    assert_string_equal(s->hostname, host);
    assert_true(s->taken_at_ms > 1700000000000LL);
    assert_true(s->taken_at_ms <= epw_now_ms());
    assert_true(s->sample_duration_us > 0);
    assert_int_equal(s->time_wait->seconds, 60);
    assert_true(s->time_wait->is_default);
    assert_true(has_note(s, "tcp_tw_reuse"));
    check_ranges(s, T_RANGE_FIRST, T_RANGE_COUNT, T_RESERVED);

    /* Every socket of the namespace: both ends of each connection, listeners, bound, UDP. */
    assert_int_equal(s->total_sockets, 2 * (T_CONNS4 + T_CONNS6) + 2 + 1 + 1);
    d = find_dest(s, "127.0.0.1", "127.0.0.1", T_PORT4);
    assert_non_null(d);
    assert_int_equal(d->connections, T_CONNS4);
    assert_int_equal(d->free_ports, T_FREE_TCP);
    d = find_dest(s, "::1", "::1", T_PORT6);
    assert_non_null(d);
    assert_int_equal(d->connections, T_CONNS6);
    /* Accepted ends use the listener's port, outside the range: no destination of their own. */
    assert_int_equal(s->destination_count, 2);

    assert_int_equal(state_count(s, "ESTABLISHED"), T_CONNS4 + T_CONNS6);
    assert_int_equal(state_count(s, "BOUND"), 1);
    assert_int_equal(state_count(s, "UDP"), 1);
    assert_int_equal(state_count(s, "LISTEN"), 0);
    assert_int_equal(s->exclusive_ports, 2);
    assert_int_equal(s->kernel_ports, 0);
    assert_true(has_listening(s, T_PORT4));
    assert_true(has_listening(s, T_PORT6));

    assert_true(s->n_top_processes >= 1);
    assert_int_equal(s->top_processes[0]->pid, (uint32_t)getpid());
    assert_int_equal(s->top_processes[0]->ports, T_CONNS4 + T_CONNS6 + 2);
    assert_false(s->top_processes[0]->other);
    fd = open("/proc/self/comm", O_RDONLY);
    assert_true(fd >= 0);
    cl = read(fd, comm, sizeof(comm) - 1);
    close(fd);
    assert_true(cl > 1);
    comm[cl - 1] = '\0';
    assert_string_equal(s->top_processes[0]->name, comm);

    assert_true(s->pressure_pct > 39.0 && s->pressure_pct < 40.0); /* 37 / 94 */
    assert_non_null(strstr(s->pressure_source, "127.0.0.1 -> 127.0.0.1:5000"));
    free_snaps(snaps, n);

    /* Without attribution: no owners, every range socket counts as the kernel's, and a note. */
    assert_int_equal(sample(0, 0, &snaps, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(snaps[0]->n_top_processes, 0);
    assert_true(snaps[0]->kernel_ports > 0);
    assert_true(has_note(snaps[0], "attribution off"));
    free_snaps(snaps, n);
}

static void test_exhaustion(void **state)
{
    const Epw__DestinationUsage *d;
    Epw__Snapshot **snaps = NULL;
    size_t n = 0;
    int l4, rc = 0, i;

    (void)state;
    if (!need_netns()) {
        skip();
        return;
    }
    assert_int_equal(g_client4, T_CONNS4); /* test_counts left its sockets open */
    l4 = g_fds[2];
    for (i = 0; i < 500 && rc == 0; i++) {
        rc = connect_pair(AF_INET, "127.0.0.1", T_PORT4, l4);
        if (rc == 0)
            g_client4++;
    }
    assert_int_equal(rc, UV_EADDRNOTAVAIL);
    /* The kernel agrees with the model: range - reserved - exclusive TCP ports. */
    assert_int_equal(g_client4, T_FREE_TCP);

    assert_int_equal(sample(0, 1, &snaps, &n), 0);
    assert_int_equal(n, 1);
    print_snap(snaps[0]);
    d = find_dest(snaps[0], "127.0.0.1", "127.0.0.1", T_PORT4);
    assert_non_null(d);
    assert_int_equal(d->connections, T_FREE_TCP);
    assert_true(snaps[0]->pressure_pct == 100.0);
    assert_non_null(strstr(snaps[0]->pressure_source, "127.0.0.1 -> 127.0.0.1:5000"));
    /* IPv6 connections share ports with IPv4 ones freely: their destination is unaffected. */
    d = find_dest(snaps[0], "::1", "::1", T_PORT6);
    assert_non_null(d);
    assert_int_equal(d->connections, T_CONNS6);
    free_snaps(snaps, n);
}

static const Epw__Snapshot *find_netns(Epw__Snapshot **snaps, size_t n, uint64_t ino)
{
    char id[64];
    size_t i, len;

    len = (size_t)snprintf(id, sizeof(id), "net:[%llu]", (unsigned long long)ino);
    for (i = 0; i < n; i++)
        if (strncmp(snaps[i]->netns, id, len) == 0 &&
            (snaps[i]->netns[len] == '\0' || snaps[i]->netns[len] == ' '))
            return snaps[i];
    return NULL;
}

static void test_all_netns(void **state)
{
    const Epw__Snapshot *mine, *child;
    Epw__Snapshot **snaps = NULL;
    int ready[2], hold[2];
    char path[64], c = 0;
    struct stat self_ns, child_ns;
    uint32_t mine_total;
    size_t n = 0;
    pid_t pid;
    int status;

    (void)state;
    if (!need_netns()) {
        skip();
        return;
    }
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A second namespace with a range of its own, alive until the parent closes `hold`. */
        close(ready[0]);
        close(hold[1]);
        if (unshare(CLONE_NEWNET) == 0 &&
            write_file("/proc/sys/net/ipv4/ip_local_port_range", "50000 50199") == 0)
            c = 1;
        if (write(ready[1], &c, 1) != 1)
            _exit(2);
        while (read(hold[0], &c, 1) > 0) {
        }
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 1);
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    assert_int_equal(stat(path, &child_ns), 0);
    assert_int_equal(stat("/proc/self/ns/net", &self_ns), 0);
    assert_true(child_ns.st_ino != self_ns.st_ino);

    assert_int_equal(sample(1, 1, &snaps, &n), 0);
    close(hold[1]);
    close(ready[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(n >= 2); /* ours, the child's, and whatever else the host has */

    mine = find_netns(snaps, n, (uint64_t)self_ns.st_ino);
    child = find_netns(snaps, n, (uint64_t)child_ns.st_ino);
    assert_non_null(mine);
    assert_non_null(child);
    assert_ptr_equal(mine, snaps[0]); /* the sampling thread's own namespace comes first */
    print_snap(mine);
    print_snap(child);
    check_ranges(mine, T_RANGE_FIRST, T_RANGE_COUNT, T_RESERVED);
    check_ranges(child, 50000, 200, 0);
    mine_total = mine->total_sockets;
    assert_true(mine->total_sockets > 2 * T_FREE_TCP);
    assert_int_equal(child->total_sockets, 0);
    assert_int_equal(child->platform, EPW__PLATFORM__LINUX);
    assert_true(has_note(child, "tcp_tw_reuse"));
    free_snaps(snaps, n);

    /* The sampling thread is back home: a plain sample still sees our sockets. */
    assert_int_equal(sample(0, 1, &snaps, &n), 0);
    assert_int_equal(snaps[0]->total_sockets, mine_total);
    check_ranges(snaps[0], T_RANGE_FIRST, T_RANGE_COUNT, T_RESERVED);
    free_snaps(snaps, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_ports),     cmocka_unit_test(test_port_range),
        cmocka_unit_test(test_small_parsers),      cmocka_unit_test(test_map),
        cmocka_unit_test(test_scan_fake_proc),     cmocka_unit_test(test_scan_real_proc),
        cmocka_unit_test(test_scan_real_proc_big), cmocka_unit_test(test_scan_threads),
        cmocka_unit_test(test_map_lowest_pid),     cmocka_unit_test(test_diag_parse),
        cmocka_unit_test(test_diag_states),        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_exhaustion),         cmocka_unit_test(test_all_netns),
    };

    /* The whole process moves into a namespace of its own first, so the host is never touched. */
    if (unshare(CLONE_NEWNET) != 0)
        snprintf(g_why_not, sizeof(g_why_not), "unshare(CLONE_NEWNET): %s", strerror(errno));
    else if (lo_up() != 0)
        snprintf(g_why_not, sizeof(g_why_not), "bringing lo up: %s", strerror(errno));
    else if (write_file("/proc/sys/net/ipv4/ip_local_port_range", "40000 40099") != 0 ||
             write_file("/proc/sys/net/ipv4/ip_local_reserved_ports", "40095-40099") != 0)
        snprintf(g_why_not, sizeof(g_why_not), "writing the port sysctls: %s", strerror(errno));
    else
        g_netns = 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
