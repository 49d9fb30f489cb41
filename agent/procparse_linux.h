/* procparse_linux: pure parsers for the /proc and /proc/sys texts the Linux sampler reads. */
#ifndef PROCPARSE_LINUX_H
#define PROCPARSE_LINUX_H

#include <stddef.h>
#include <stdint.h>

/*
 * Every parser here is pure: it reads exactly `len` bytes of `buf` (no NUL needed), checks the
 * bounds before each field, allocates nothing and does no I/O. Trailing whitespace (the newline
 * /proc puts at the end) is accepted. They return 0 or EPW_E_PARSE, and clear out-parameters on
 * entry. Any thread.
 */

/*
 * net.ipv4.ip_local_port_range: "32768\t60999\n" (two integers separated by blanks). Gives the
 * first port and the number of ports (last - first + 1). Rejects first > last, a port above
 * 65535, first 0, or anything else on the line.
 */
int procparse_port_range(const uint8_t *buf, size_t len, uint32_t *start, uint32_t *count);

/*
 * Called once per element of a port list: a single port gives first == last. A non-zero return
 * stops the parse and is returned as is.
 */
typedef int (*procparse_span_cb)(void *ud, uint32_t first, uint32_t last);

/*
 * net.ipv4.ip_local_reserved_ports: a comma-separated list of ports and inclusive ranges
 * ("1,3-5,8080\n"); empty (or only whitespace) means none. Calls `cb` for each element in order,
 * at most one call per input byte. Rejects empty elements, ranges with first > last, ports above
 * 65535 and any other character. On a parse error some spans may already have been reported.
 */
int procparse_reserved_ports(const uint8_t *buf, size_t len, procparse_span_cb cb, void *ud);

/* A single unsigned decimal integer (e.g. net.ipv4.tcp_tw_reuse), at most UINT32_MAX. */
int procparse_uint(const uint8_t *buf, size_t len, uint32_t *out);

/*
 * The target of a /proc/<pid>/fd/<n> link when it is a socket: "socket:[12345]" gives 12345.
 * Anything else (files, pipes, "anon_inode:...", an inode above UINT32_MAX) is EPW_E_PARSE, so a
 * caller can skip non-socket links with one call.
 */
int procparse_socket_link(const char *buf, size_t len, uint32_t *inode);

/* A /proc directory entry name that is a PID ("1234"; not "self", not "0", not "01"). */
int procparse_pid(const char *name, size_t len, uint32_t *pid);

/* The major and minor numbers of a kernel release string ("6.18.44-fc-v769" -> 6, 18). */
int procparse_kernel_version(const char *release, size_t len, uint32_t *major, uint32_t *minor);

#endif
