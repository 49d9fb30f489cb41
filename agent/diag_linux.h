/* diag_linux: NETLINK_SOCK_DIAG dumps of TCP and UDP sockets, streamed one row at a time. */
#ifndef DIAG_LINUX_H
#define DIAG_LINUX_H

#include <stddef.h>
#include <stdint.h>

#include "sockrow.h"

/* Kernel TCP states (include/net/tcp_states.h); the last two are missing from older uapi headers.
 * Requesting the TCP_BOUND_INACTIVE bit (6.8+) adds the sockets bound but neither connected nor
 * listening to a dump; older kernels ignore the bit. */
#define DIAG_TCP_NEW_SYN_RECV   12u
#define DIAG_TCP_BOUND_INACTIVE 13u
/* Every state bit including bound-inactive: older kernels ignore bits they do not know. */
#define DIAG_STATES_ALL 0xffffffffu

/*
 * Called once per socket, in dump order, on the thread calling diag_dump. The row is filled but
 * for pid/flags (zero); the callback may change those and must copy what it keeps: the row lives
 * only during the call. A non-zero return stops the dump; diag_dump drains the rest of it and
 * returns that value.
 */
typedef int (*diag_row_cb)(void *ud, sockrow_t *row);

typedef struct diag_s diag_t;

/*
 * Opens a NETLINK_SOCK_DIAG socket in the calling thread's current network namespace (the
 * namespace is fixed at creation: setns() afterwards does not move it). Blocking I/O. *out is
 * NULL on failure. 0, UV_ENOMEM or the socket error.
 */
int diag_open(diag_t **out);
/* NULL is a no-op. */
void diag_close(diag_t *d);

/*
 * Dumps every socket of one protocol (SOCKROW_TCP, SOCKROW_UDP) and family (4 or 6) whose kernel
 * state bit is in `states` (1u << state). Family 0 (TCP only) dumps IPv4 and IPv6 together in one
 * pass over the kernel's tables, through the older TCPDIAG_GETSOCK request; should a kernel
 * refuse it (an error is returned before any row), dump each family instead. Memory is constant
 * (one 32 KiB receive buffer): rows go straight to `cb`. *n_rows (may be NULL) receives the rows
 * passed to cb, also when the dump fails. Returns 0, the callback's non-zero value, or a negative
 * errno reported by the kernel (e.g. UV_ENOENT when udp_diag is missing, UV_EAFNOSUPPORT without
 * IPv6).
 */
int diag_dump(diag_t *d, sockrow_proto_t proto, int family, uint32_t states, diag_row_cb cb,
              void *ud, uint32_t *n_rows);

/*
 * diag_dump in steps, so that a dump can be read partly by one thread and finished later by
 * another (one thread at a time; the handover needs the usual synchronisation, e.g. a join).
 * diag_dump_start sends the request (same arguments and errors as diag_dump). Each
 * diag_dump_read then reads one datagram of the answer, at most DIAG_DGRAM_ROWS rows passed to cb
 * (*n_rows, may be NULL), and sets *done once the dump is over, whether it ended normally or
 * failed; it returns what diag_dump would (the callback's first non-zero value once done), or
 * UV_EINVAL when no dump is in progress. Starting a new dump abandons one in progress only if
 * its answer was read to the end: otherwise close the diag_t instead.
 */
int diag_dump_start(diag_t *d, sockrow_proto_t proto, int family, uint32_t states);
int diag_dump_read(diag_t *d, diag_row_cb cb, void *ud, uint32_t *n_rows, int *done);

/* Most rows one datagram can carry: 32 KiB of messages of at least 88 bytes. */
#define DIAG_DGRAM_ROWS 373u

/*
 * Pure: decodes one datagram of a dump (one or more netlink messages of SOCK_DIAG_BY_FAMILY or
 * TCPDIAG_GETSOCK answers) from buf[0..len). Messages whose sequence number differs from `seq` are
 * ignored. Calls cb per row while *cb_rc is 0 and stores its first non-zero return in *cb_rc (later
 * rows are skipped, not counted). Sets *done to 1 at NLMSG_DONE or NLMSG_ERROR. *n_rows counts the
 * rows passed to cb. Returns 0, a negative errno from an NLMSG_ERROR message, EPW_E_PROTO for an
 * error message without an errno, or EPW_E_TRUNCATED when a message overruns the buffer.
 * Exposed for tests.
 */
int diag_parse(const uint8_t *buf, size_t len, uint32_t seq, sockrow_proto_t proto, diag_row_cb cb,
               void *ud, uint32_t *n_rows, int *cb_rc, int *done);

/*
 * Maps a kernel TCP state (1..13) of a dumped socket to the sockrow vocabulary; unknown ->
 * SOCKROW_ST_OTHER. TCP_CLOSE (7) and TCP_BOUND_INACTIVE (13) both map to SOCKROW_ST_BOUND: the
 * only closed sockets a dump returns are those of the bind table walk, and kernel 6.18 reports
 * them as TCP_CLOSE (observed) although they are requested with bit 13.
 */
sockrow_state_t diag_tcp_state(uint32_t kstate);

#endif
