/* diag_linux: inet_diag_req_v2 dumps over NETLINK_SOCK_DIAG, decoded into sockrow_t. */
#include "diag_linux.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <uv.h>

#include "epw_err.h"

/* The kernel fills at most 32 KiB per dump datagram (netlink_recvmsg caps max_recvmsg_len). */
#define DIAG__BUF_SIZE (32u * 1024u)

struct diag_s {
    int fd;
    uint32_t seq;
    uint8_t *buf; /* DIAG__BUF_SIZE bytes, 8-byte aligned (malloc) */
    /* The dump in progress (diag_dump_start .. done). */
    sockrow_proto_t proto;
    int active;
    int cb_rc; /* first non-zero callback return: later rows are drained, not passed */
};

sockrow_state_t diag_tcp_state(uint32_t kstate)
{
    switch (kstate) {
    case 1:
        return SOCKROW_ST_ESTABLISHED;
    case 2:
        return SOCKROW_ST_SYN_SENT;
    case 3:
    case DIAG_TCP_NEW_SYN_RECV: /* request sockets of a listener */
        return SOCKROW_ST_SYN_RECV;
    case 4:
        return SOCKROW_ST_FIN_WAIT1;
    case 5:
        return SOCKROW_ST_FIN_WAIT2;
    case 6:
        return SOCKROW_ST_TIME_WAIT;
    case 7:
        /* A dump holds no closed socket but bound-inactive ones, which the kernel (6.8+)
         * returns from its bind table with their real state, TCP_CLOSE, not 13. */
        return SOCKROW_ST_BOUND;
    case 8:
        return SOCKROW_ST_CLOSE_WAIT;
    case 9:
        return SOCKROW_ST_LAST_ACK;
    case 10:
        return SOCKROW_ST_LISTEN;
    case 11:
        return SOCKROW_ST_CLOSING;
    case DIAG_TCP_BOUND_INACTIVE:
        return SOCKROW_ST_BOUND;
    default:
        return SOCKROW_ST_OTHER;
    }
}

int diag_open(diag_t **out)
{
    struct sockaddr_nl sa;
    diag_t *d;
    int rc = 0;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return UV_ENOMEM;
    d->fd = -1;
    d->buf = malloc(DIAG__BUF_SIZE);
    if (!d->buf) {
        rc = UV_ENOMEM;
        goto out;
    }
    d->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (d->fd < 0) {
        rc = -errno;
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    if (bind(d->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        goto out;
    }
    *out = d;
    d = NULL;
out:
    diag_close(d);
    return rc;
}

void diag_close(diag_t *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d->buf);
    free(d);
}

static const uint8_t diag__v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Fills row from one inet_diag_msg. IPv4-mapped IPv6 sockets are reported as IPv4: they draw
 * from the same port space and reach the same destinations as IPv4 sockets. */
static void diag__fill_row(const struct inet_diag_msg *m, sockrow_proto_t proto, sockrow_t *row)
{
    memset(row, 0, sizeof(*row));
    row->proto = (uint8_t)proto;
    row->lport = ntohs(m->id.idiag_sport);
    row->rport = ntohs(m->id.idiag_dport);
    row->inode = m->idiag_inode;
    row->state = (uint8_t)(proto == SOCKROW_TCP ? diag_tcp_state(m->idiag_state) : SOCKROW_ST_NONE);
    if (m->idiag_family == AF_INET6 && memcmp(m->id.idiag_src, diag__v4mapped, 12) == 0) {
        row->family = 4;
        memcpy(row->laddr, (const uint8_t *)m->id.idiag_src + 12, 4);
        if (memcmp(m->id.idiag_dst, diag__v4mapped, 12) == 0)
            memcpy(row->raddr, (const uint8_t *)m->id.idiag_dst + 12, 4);
    } else if (m->idiag_family == AF_INET6) {
        row->family = 6;
        memcpy(row->laddr, m->id.idiag_src, 16);
        memcpy(row->raddr, m->id.idiag_dst, 16);
    } else {
        row->family = 4;
        memcpy(row->laddr, m->id.idiag_src, 4);
        memcpy(row->raddr, m->id.idiag_dst, 4);
    }
}

int diag_parse(const uint8_t *buf, size_t len, uint32_t seq, sockrow_proto_t proto, diag_row_cb cb,
               void *ud, uint32_t *n_rows, int *cb_rc, int *done)
{
    struct nlmsghdr h;
    struct inet_diag_msg m;
    struct nlmsgerr e;
    sockrow_t row;
    size_t off = 0;

    while (len - off >= sizeof(h)) {
        /* memcpy: netlink only guarantees 4-byte alignment, and this buffer may come from a test.
         */
        memcpy(&h, buf + off, sizeof(h));
        if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len - off)
            return EPW_E_TRUNCATED;
        if (h.nlmsg_seq == seq) {
            if (h.nlmsg_type == NLMSG_DONE) {
                int32_t derr = 0;

                /* A dump that failed part-way ends with DONE carrying a negative errno. */
                if (h.nlmsg_len >= sizeof(h) + sizeof(derr))
                    memcpy(&derr, buf + off + sizeof(h), sizeof(derr));
                *done = 1;
                return derr < 0 ? (int)derr : 0;
            }
            if (h.nlmsg_type == NLMSG_ERROR) {
                if (h.nlmsg_len < sizeof(h) + sizeof(e))
                    return EPW_E_TRUNCATED;
                memcpy(&e, buf + off + sizeof(h), sizeof(e));
                *done = 1;
                return e.error < 0 ? e.error : EPW_E_PROTO;
            }
            if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY || h.nlmsg_type == TCPDIAG_GETSOCK) {
                if (h.nlmsg_len < sizeof(h) + sizeof(m))
                    return EPW_E_TRUNCATED;
                memcpy(&m, buf + off + sizeof(h), sizeof(m));
                if (*cb_rc == 0) {
                    diag__fill_row(&m, proto, &row);
                    if (n_rows)
                        (*n_rows)++;
                    *cb_rc = cb(ud, &row);
                }
            }
        }
        off += NLMSG_ALIGN(h.nlmsg_len);
        if (off >= len)
            break;
    }
    return 0;
}

/*
 * Both families in one walk of the kernel's tables: only the original TCPDIAG_GETSOCK request
 * (struct inet_diag_req) can ask for that (the kernel turns it into an AF_UNSPEC dump). Each
 * sock_diag request walks every TCP socket of the host, whatever its family or namespace, so one
 * walk instead of two saves a large part of the dump time on a busy host.
 */
static int diag__send_both(diag_t *d, uint32_t states)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req r;
    } req;
    struct sockaddr_nl sa;
    ssize_t n;

    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = TCPDIAG_GETSOCK;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nlh.nlmsg_seq = ++d->seq;
    req.r.idiag_family = AF_INET; /* ignored by the kernel for dumps */
    req.r.idiag_states = states;
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    do
        n = sendto(d->fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(req) ? 0 : EPW_E_INTERNAL;
}

static int diag__send(diag_t *d, sockrow_proto_t proto, int family, uint32_t states)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    struct sockaddr_nl sa;
    ssize_t n;

    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nlh.nlmsg_seq = ++d->seq;
    req.r.sdiag_family = (uint8_t)(family == 6 ? AF_INET6 : AF_INET);
    req.r.sdiag_protocol = (uint8_t)(proto == SOCKROW_UDP ? IPPROTO_UDP : IPPROTO_TCP);
    req.r.idiag_states = states;
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    do
        n = sendto(d->fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(req) ? 0 : EPW_E_INTERNAL;
}

int diag_dump_start(diag_t *d, sockrow_proto_t proto, int family, uint32_t states)
{
    int rc;

    if (family == 0 && proto != SOCKROW_TCP)
        return UV_EINVAL;
    d->active = 0;
    d->cb_rc = 0;
    d->proto = proto;
    rc = family == 0 ? diag__send_both(d, states) : diag__send(d, proto, family, states);
    if (rc == 0)
        d->active = 1;
    return rc;
}

int diag_dump_read(diag_t *d, diag_row_cb cb, void *ud, uint32_t *n_rows, int *done)
{
    uint32_t rows = 0;
    ssize_t n;
    int rc;

    if (n_rows)
        *n_rows = 0;
    *done = 0;
    if (!d->active)
        return UV_EINVAL;
    do
        n = recv(d->fd, d->buf, DIAG__BUF_SIZE, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        /* The dump is lost: the socket must not be read again for it. */
        d->active = 0;
        *done = 1;
        return n < 0 ? -errno : EPW_E_CLOSED;
    }
    /* After a callback failure the parse goes on without callbacks until NLMSG_DONE, so the
     * socket is left ready for the next request. */
    rc = diag_parse(d->buf, (size_t)n, d->seq, d->proto, cb, ud, &rows, &d->cb_rc, done);
    if (n_rows)
        *n_rows = rows;
    if (rc)
        *done = 1;
    if (*done) {
        d->active = 0;
        if (rc == 0)
            rc = d->cb_rc;
    }
    return rc;
}

int diag_dump(diag_t *d, sockrow_proto_t proto, int family, uint32_t states, diag_row_cb cb,
              void *ud, uint32_t *n_rows)
{
    uint32_t rows = 0, got;
    int done = 0;
    int rc;

    if (n_rows)
        *n_rows = 0;
    rc = diag_dump_start(d, proto, family, states);
    while (rc == 0 && !done) {
        rc = diag_dump_read(d, cb, ud, &got, &done);
        rows += got;
    }
    /* Also after a failure: the caller must know whether rows reached the callback already. */
    if (n_rows)
        *n_rows = rows;
    return rc;
}
