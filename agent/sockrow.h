/* sockrow: one socket as every sampler reports it, whatever the platform or source. */
#ifndef SOCKROW_H
#define SOCKROW_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SOCKROW_TCP = 1, SOCKROW_UDP = 2 } sockrow_proto_t;

/* States, in a platform-neutral vocabulary. UDP sockets carry SOCKROW_ST_NONE. */
typedef enum {
    SOCKROW_ST_NONE = 0,
    SOCKROW_ST_CLOSED,
    SOCKROW_ST_LISTEN,
    SOCKROW_ST_SYN_SENT,
    SOCKROW_ST_SYN_RECV,
    SOCKROW_ST_ESTABLISHED,
    SOCKROW_ST_FIN_WAIT1,
    SOCKROW_ST_FIN_WAIT2,
    SOCKROW_ST_CLOSE_WAIT,
    SOCKROW_ST_CLOSING,
    SOCKROW_ST_LAST_ACK,
    SOCKROW_ST_TIME_WAIT,
    SOCKROW_ST_DELETE_TCB,
    SOCKROW_ST_BOUND, /* bind() without connect()/listen(): holds a port exclusively */
    SOCKROW_ST_OTHER, /* a state word or number we do not know */
    SOCKROW_ST_COUNT
} sockrow_state_t;

/* No owning process known (Linux: no fd found; Windows: PID 0). */
#define SOCKROW_PID_NONE 0u
/* Windows' "System" process: kernel-mode sockets (SMB, http.sys, drivers). */
#define SOCKROW_PID_SYSTEM_WIN 4u

/*
 * Addresses are in network byte order: IPv4 in the first 4 bytes of the array (rest zero), IPv6 in
 * all 16. Ports are in host byte order. Kept compact: the Linux sampler streams tens of thousands.
 */
typedef struct sockrow_s {
    uint8_t proto;  /* sockrow_proto_t */
    uint8_t family; /* 4 or 6 */
    uint8_t state;  /* sockrow_state_t */
    uint8_t flags;  /* SOCKROW_F_* */
    uint16_t lport;
    uint16_t rport;
    uint8_t laddr[16];
    uint8_t raddr[16];
    uint32_t pid;   /* SOCKROW_PID_NONE when unknown */
    uint32_t inode; /* Linux socket inode (0 for TIME_WAIT and on Windows) */
} sockrow_t;

/* The owning PID was attributed (Linux: an fd was found). Lets "no owner" differ from PID 0. */
#define SOCKROW_F_PID_KNOWN 0x01u

/* Canonical name of a state ("ESTABLISHED", "TIME_WAIT", "LISTEN", "BOUND", "UDP" for NONE...). */
const char *sockrow_state_name(sockrow_state_t st);

/* 1 when the address is the wildcard (0.0.0.0 or ::) of its family. */
int sockrow_addr_is_any(int family, const uint8_t addr[16]);

/* A growable array of rows, for sources that produce a table (Windows, captured netstat).
 * Zero-initialise; sockrow_vec_free releases. */
typedef struct sockrow_vec_s {
    sockrow_t *rows;
    size_t len;
    size_t cap;
} sockrow_vec_t;

/* Appends a copy of *row. 0 or UV_ENOMEM. */
int sockrow_vec_push(sockrow_vec_t *v, const sockrow_t *row);
void sockrow_vec_free(sockrow_vec_t *v);

#endif
