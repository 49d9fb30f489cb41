/* winsrc: the pure parts of the Windows sampler, portable so they are unit-tested on Linux too. */
#ifndef WINSRC_H
#define WINSRC_H

#include <stddef.h>
#include <stdint.h>

#include "epwatch.pb-c.h"
#include "sockrow.h"

/*
 * Row layouts of the IP Helper tables, as plain integers so that tests can build tables on any
 * platform. Field for field the same as the Windows types named beside them; sampler_win.c
 * checks that with static assertions on offsets and sizes before casting the real tables.
 * Ports are in network byte order in the low 16 bits; IPv4 addresses are in network byte order
 * (their bytes in memory are the address), IPv6 addresses are 16 bytes in network order.
 */
typedef struct winsrc_tcp4_s { /* MIB_TCPROW_OWNER_PID */
    uint32_t state;            /* MIB_TCP_STATE_* 1-12 */
    uint32_t laddr;
    uint32_t lport;
    uint32_t raddr;
    uint32_t rport;
    uint32_t pid;
} winsrc_tcp4_t;

typedef struct winsrc_tcp6_s { /* MIB_TCP6ROW_OWNER_PID */
    uint8_t laddr[16];
    uint32_t lscope;
    uint32_t lport;
    uint8_t raddr[16];
    uint32_t rscope;
    uint32_t rport;
    uint32_t state;
    uint32_t pid;
} winsrc_tcp6_t;

typedef struct winsrc_udp4_s { /* MIB_UDPROW_OWNER_PID */
    uint32_t laddr;
    uint32_t lport;
    uint32_t pid;
} winsrc_udp4_t;

typedef struct winsrc_udp6_s { /* MIB_UDP6ROW_OWNER_PID */
    uint8_t laddr[16];
    uint32_t lscope;
    uint32_t lport;
    uint32_t pid;
} winsrc_udp6_t;

/* The rows InternalGetBoundTcpEndpointTable / InternalGetBoundTcp6EndpointTable return:
 * MIB_TCPROW2 and MIB_TCP6ROW2 (documented types; only the functions are undocumented). */
typedef struct winsrc_btcp4_s { /* MIB_TCPROW2 */
    uint32_t state;
    uint32_t laddr;
    uint32_t lport;
    uint32_t raddr;
    uint32_t rport;
    uint32_t pid;
    uint32_t offload;
} winsrc_btcp4_t;

typedef struct winsrc_btcp6_s { /* MIB_TCP6ROW2 */
    uint8_t laddr[16];
    uint32_t lscope;
    uint32_t lport;
    uint8_t raddr[16];
    uint32_t rscope;
    uint32_t rport;
    uint32_t state;
    uint32_t pid;
    uint32_t offload;
} winsrc_btcp6_t;

/* Which of the layouts above a table holds. */
typedef enum {
    WINSRC_TCP4 = 1,
    WINSRC_TCP6,
    WINSRC_UDP4,
    WINSRC_UDP6,
    WINSRC_BOUND4, /* rows become SOCKROW_ST_BOUND whatever their state field says */
    WINSRC_BOUND6
} winsrc_table_t;

/* MIB_TCP_STATE_* (1 CLOSED ... 12 DELETE_TCB) in the neutral vocabulary; anything else OTHER. */
sockrow_state_t winsrc_tcp_state(uint32_t mib_state);

/* A port field of the tables (network order in the low 16 bits) in host order. */
uint16_t winsrc_port(uint32_t field);

/* Receives each converted row; a non-zero return stops the conversion and is passed back. */
typedef int (*winsrc_row_cb)(void *ud, const sockrow_t *row);

/*
 * Converts n rows of the given layout (`rows` points at the first row, suitably aligned) and
 * hands each to cb. Every row gets SOCKROW_F_PID_KNOWN (the tables always name an owner; PID 0
 * is the idle owner of TIME_WAIT). A listener's remote port is left 0. *n_done (may be NULL)
 * receives the number of rows handed over. 0, UV_EINVAL or cb's error.
 */
int winsrc_convert(winsrc_table_t kind, const void *rows, size_t n, winsrc_row_cb cb, void *ud,
                   size_t *n_done);

/*
 * Checks what can be checked of an undocumented BOUND table before trusting it: `avail` is the
 * size in bytes of the memory block that holds the table (HeapSize), which must cover the count
 * field and n rows; every row must have a non-zero local port with the high 16 bits clear, remote
 * port fields with the high bits clear, and a PID that is a multiple of 4 (Windows' PIDs are).
 * 0 when the table looks as assumed; EPW_E_PARSE with the first problem in why otherwise.
 */
int winsrc_bound_check(winsrc_table_t kind, const void *rows, size_t n, size_t avail, char *why,
                       size_t whylen);

/* Looks a PID up: 0 with a name in buf, or negative (e.g. UV_EACCES) when it cannot. */
typedef int (*winsrc_name_fn)(void *ud, uint32_t pid, char *buf, size_t len);

/*
 * The name shown for pid: "Idle" for 0 and "System" for 4 without calling `lookup` (they are
 * not processes that can be opened); otherwise lookup's answer, or "[pid N]" when lookup is NULL,
 * fails, or answers an empty name. buf is always NUL-terminated when len > 0.
 */
void winsrc_name(uint32_t pid, winsrc_name_fn lookup, void *ud, char *buf, size_t len);

/* ---- dynamic port ranges ---------------------------------------------------------------- */

/* The four ranges Windows keeps, indexed tcp/ipv4, tcp/ipv6, udp/ipv4, udp/ipv6. */
#define WINSRC_NRANGES 4
/* Index of proto (SOCKROW_TCP/UDP) and family (4/6), or -1. */
int winsrc_range_index(sockrow_proto_t proto, int family);

/* The documented default since Vista / Server 2008. */
#define WINSRC_DEFAULT_START 49152u
#define WINSRC_DEFAULT_COUNT 16384u

/* What one source answered. The resolver clears it before each call. */
typedef struct winsrc_answer_s {
    uint32_t start[WINSRC_NRANGES];
    uint32_t count[WINSRC_NRANGES];
    uint8_t have[WINSRC_NRANGES]; /* set for each range answered */
    char why[WINSRC_NRANGES][96]; /* for each wanted range not answered: a few words why */
} winsrc_answer_t;

/* A source of ranges. want[i] says which ranges are still needed; the source fills `have`,
 * start and count for those it knows, and why for those it does not. Blocking is fine. */
typedef void (*winsrc_range_fn)(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans);

typedef struct winsrc_range_source_s {
    const char *name;        /* for notes: "WMI", "netsh" */
    Epw__RangeSource source; /* recorded with each range it answers */
    winsrc_range_fn fn;
    void *ud;
} winsrc_range_source_t;

typedef struct winsrc_ranges_s {
    uint32_t start[WINSRC_NRANGES];
    uint32_t count[WINSRC_NRANGES];
    Epw__RangeSource source[WINSRC_NRANGES]; /* RANGE_SOURCE_UNKNOWN: no source answered */
} winsrc_ranges_t;

/* A source that always answers the documented default, the last resort of every chain. */
void winsrc_range_default(void *ud, const uint8_t want[WINSRC_NRANGES], winsrc_answer_t *ans);

/* Valid as a Windows dynamic range: start >= 1025, count >= 255, start + count <= 65536. */
int winsrc_range_valid(uint32_t start, uint32_t count);

/*
 * Asks the sources in order, each only for the ranges still missing; an answer that is not a
 * valid range counts as no answer ("invalid range S+C"). When a range did not come from the
 * first source, a note in `notes` says why each earlier source failed and what was used, e.g.
 *   "dynamic port range: WMI and netsh unavailable (WMI: error 0x8004100E; netsh: no output);
 *    assumed Windows default 49152-65535"
 * Ranges with the same story share one note; otherwise the note names them ("dynamic port range
 * (udp/ipv4, udp/ipv6): ..."). 0 when every range was answered; EPW_E_UNAVAILABLE when some
 * were not (their source stays UNKNOWN and a note says so); UV_ENOMEM.
 */
int winsrc_ranges_resolve(const winsrc_range_source_t *srcs, size_t n, winsrc_ranges_t *out,
                          Epw__Snapshot *notes);

/* ---- exhaustion events ------------------------------------------------------------------ */

/* The Tcpip events the agent counts (mingw's netevent.h lacks 4231 and 4266). */
#define WINSRC_EV_TIME_WAIT_REUSE 4227u /* a recently used endpoint was picked (TIME_WAIT) */
#define WINSRC_EV_TCP_EXHAUSTED   4231u /* TCP global ephemeral port space exhausted */
#define WINSRC_EV_UDP_EXHAUSTED   4266u /* UDP equivalent */

/* Unix milliseconds of a FILETIME (100 ns ticks since 1601-01-01 UTC); 0 before 1970. */
int64_t winsrc_filetime_ms(uint64_t filetime);

/*
 * Counts events between snapshots. Thread-safe: winsrc_events_add and winsrc_events_error may be
 * called from any thread (the event log's pool thread) while another drains.
 */
typedef struct winsrc_events_s winsrc_events_t;

int winsrc_events_create(winsrc_events_t **out);
void winsrc_events_destroy(winsrc_events_t *ev); /* NULL is a no-op */

/* Counts one event at time_ms. IDs other than the three above are counted as ignored. */
void winsrc_events_add(winsrc_events_t *ev, uint32_t event_id, int64_t time_ms);
/* Records a subscription error (e.g. missed events); reported by the next drain as a note. */
void winsrc_events_error(winsrc_events_t *ev, uint32_t code);

/*
 * Appends one ExhaustionEvent per ID seen since the last drain (ascending ID; count, first_ms,
 * last_ms) to snap->events and notes for errors and ignored IDs, then starts over. On UV_ENOMEM
 * nothing is reset, so the next drain reports the same events again.
 */
int winsrc_events_drain(winsrc_events_t *ev, Epw__Snapshot *snap);

#endif
