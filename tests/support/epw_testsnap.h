/* epw_testsnap: builds Snapshot messages for tests, one repeated-field row per call. */
#ifndef EPW_TESTSNAP_H
#define EPW_TESTSNAP_H

#include <stddef.h>
#include <stdint.h>

#include "epwatch.pb-c.h"

/*
 * For cmocka tests only: an allocation failure fails the running test (assert_non_null), so
 * callers never see NULL. `s` comes from epw_snap_new and owns everything added here (strings
 * copied with epw_snap_strdup), so epw_snap_free releases it. Each adder returns the new row so a
 * test can set a field the arguments do not cover. Not thread-safe per snapshot, like epw_snap.
 */

Epw__PortRange *epw_testsnap_range(Epw__Snapshot *s, Epw__Protocol proto, Epw__Family family,
                                   uint32_t start, uint32_t count, uint32_t excluded,
                                   Epw__RangeSource source);

Epw__AddressUsage *epw_testsnap_address(Epw__Snapshot *s, const char *addr, Epw__Protocol proto,
                                        Epw__Family family, uint32_t in_use, uint32_t max_ports,
                                        double pct, uint32_t listening, uint32_t pids);

Epw__HostUsage *epw_testsnap_host(Epw__Snapshot *s, Epw__Protocol proto, uint32_t in_use,
                                  uint32_t max_ports, double pct);

/* A TCP destination (every test so far); set ->protocol on the result for another. */
Epw__DestinationUsage *epw_testsnap_destination(Epw__Snapshot *s, const char *local,
                                                const char *remote, uint32_t remote_port,
                                                uint32_t connections, uint32_t free_ports,
                                                double pct);

Epw__StateCount *epw_testsnap_state(Epw__Snapshot *s, const char *state, uint32_t count);

/* name NULL leaves the default empty string (as a decoded message would have it). */
Epw__ProcessUsage *epw_testsnap_process(Epw__Snapshot *s, uint32_t pid, const char *name,
                                        uint32_t ports, int other);

/* addr NULL leaves the default empty string. */
Epw__RemoteUsage *epw_testsnap_remote(Epw__Snapshot *s, const char *addr, uint32_t port,
                                      uint32_t connections, int other);

Epw__ExhaustionEvent *epw_testsnap_event(Epw__Snapshot *s, uint32_t event_id, uint32_t count,
                                         int64_t first_ms, int64_t last_ms);

/* Replaces s->listening_ports with a copy of ports[0..n). */
void epw_testsnap_listening(Epw__Snapshot *s, const uint32_t *ports, size_t n);

/* The encoded snapshot, malloc'd (caller frees); *len receives its size. */
uint8_t *epw_testsnap_pack(const Epw__Snapshot *s, size_t *len);

#endif
