/* epw_proto: the agent <-> collector conversation, its version, capability bits and delays. */
#ifndef EPW_PROTO_H
#define EPW_PROTO_H

#include <stdint.h>

#include "epwatch.pb-c.h"

/*
 * The conversation (one long-lived TLS connection per agent, frames from epw_frame):
 *
 *   agent                                   collector
 *   Hello{version, caps, hostname, ...} ->
 *                                       <-  HelloAck{version, caps, reject, last_seq}
 *   Snapshot{seq=n} ...                 ->
 *                                       <-  Ack{seq=m}   (every seq <= m is durably committed)
 *
 * - The collector takes the host's identity from the client certificate's CN. A Hello whose
 *   hostname differs from it is answered with REJECT_BAD_IDENTITY and the connection is closed.
 *   A revoked CN never completes the TLS handshake; a CN on the deny list that somehow reaches
 *   Hello gets REJECT_REVOKED.
 * - HelloAck.last_seq is the highest seq durably stored for this identity; the agent drops its
 *   spooled entries up to it and sends the rest in order.
 * - Acks are cumulative and sent only after the store committed every seq up to and including
 *   the acknowledged one. A resent snapshot (same host, netns, seq) is stored once and still
 *   acknowledged.
 * - Snapshot.dropped_before > 0 tells the collector that the agent's spool overflowed and that
 *   many snapshots were lost immediately before this one; the collector records the gap.
 * - A second live connection with the same identity replaces the first (the old one is closed
 *   with REJECT_REPLACED in a HelloAck-less close).
 */
#define EPW_PROTOCOL_VERSION 1u

/* Capability bits: append-only, a bit is never reused for another meaning. */
#define EPW_CAP_SPOOL_GAPS   (1ull << 0) /* Snapshot.dropped_before is meaningful */
#define EPW_CAP_NETNS        (1ull << 1) /* several snapshots per sample, one per netns */
#define EPW_CAP_PORT_STARVED (1ull << 2) /* Snapshot.port_starved is meaningful */
#define EPW_CAP_EVENTS       (1ull << 3) /* Snapshot.events carries OS exhaustion events */

#define EPW_CAPS_THIS_BUILD                                                                        \
    (EPW_CAP_SPOOL_GAPS | EPW_CAP_NETNS | EPW_CAP_PORT_STARVED | EPW_CAP_EVENTS)

/* Default TCP port of the collector's agent listener and of its operator API. */
#define EPW_DEFAULT_AGENT_PORT 7443
#define EPW_DEFAULT_API_PORT   7444

#endif
