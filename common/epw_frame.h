/* epw_frame: wire framing (4-byte big-endian length + one protobuf Envelope); pure, no I/O. */
#ifndef EPW_FRAME_H
#define EPW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "epwatch.pb-c.h"

#define EPW_FRAME_HDR 4
/* Default limit on one frame's payload; a full Snapshot is far below this. */
#define EPW_FRAME_MAX_DEFAULT (4u << 20)

/*
 * Incremental decoder: accumulates bytes from a stream and yields one complete frame at a time.
 * The length prefix is checked against `max_len` before any memory is reserved for the payload.
 * Not thread-safe; one decoder per connection.
 */
typedef struct epw_frame_decoder_s epw_frame_decoder_t;

/* max_len 0 means EPW_FRAME_MAX_DEFAULT. Returns 0 or UV_ENOMEM; *out is NULL on failure. */
int epw_frame_decoder_create(size_t max_len, epw_frame_decoder_t **out);
/* NULL is a no-op. */
void epw_frame_decoder_destroy(epw_frame_decoder_t *d);

/*
 * Consumes bytes from buf[0..len) up to the end of the next complete frame and sets *used to the
 * number consumed (always > 0 when len > 0 and 0 is returned). When a frame completed, *frame and
 * *frame_len describe its payload (without the header); otherwise *frame is NULL and all of buf
 * was consumed. The payload points either into `buf` or into the decoder: it is valid until the
 * next call on this decoder or until `buf` is released, whichever comes first. Call repeatedly
 * until all of `buf` is used.
 * Errors (sticky: every later call returns the same error):
 *   EPW_E_TOOBIG  the announced length exceeds max_len (nothing was allocated)
 *   EPW_E_PROTO   a zero-length frame
 *   UV_ENOMEM
 */
int epw_frame_decoder_feed(epw_frame_decoder_t *d, const uint8_t *buf, size_t len, size_t *used,
                           const uint8_t **frame, size_t *frame_len);

/* Bytes held for an incomplete frame (header included); 0 at a frame boundary. */
size_t epw_frame_decoder_pending(const epw_frame_decoder_t *d);

/*
 * Encodes env as one frame (header + packed Envelope) into a new malloc'd buffer that the caller
 * owns (*out, *out_len; free with free()). max_len 0 means EPW_FRAME_MAX_DEFAULT.
 * Returns 0, EPW_E_PROTO (no message set in the oneof), EPW_E_TOOBIG, or UV_ENOMEM.
 */
int epw_frame_encode(const Epw__Envelope *env, size_t max_len, uint8_t **out, size_t *out_len);

/* Writes the 4-byte big-endian header for a payload of `len` bytes. */
void epw_frame_put_header(uint8_t hdr[EPW_FRAME_HDR], uint32_t len);

/*
 * Unpacks one frame payload into a new Envelope owned by the caller (free it with
 * epw_frame_envelope_free). Returns 0 or EPW_E_PROTO (malformed or truncated protobuf, or no
 * message set in the oneof: also the case for a message type newer than this build).
 */
int epw_frame_decode_envelope(const uint8_t *payload, size_t len, Epw__Envelope **out);
/* NULL is a no-op. */
void epw_frame_envelope_free(Epw__Envelope *env);

/*
 * Pure, bounded: 1 when the payload is an Envelope holding only a Snapshot in its canonical
 * encoding (one field 3, length-delimited, spanning exactly the rest of the payload, non-empty),
 * with *snap / *snap_len set to the Snapshot's own encoding inside `payload`; 0 otherwise (any
 * other message, another layout, a malformed length), with *snap NULL and *snap_len 0.
 * Nothing is decoded: the collector passes these bytes to its store writer, which decodes them once
 * (a decode on the event loop thread, an encode into the queue and a second decode were half of
 * the loop thread's time at full ingest). A payload for which this returns 0 is decoded as usual.
 * 1 says nothing about whether the Snapshot bytes themselves decode.
 */
int epw_frame_peek_snapshot(const uint8_t *payload, size_t len, const uint8_t **snap,
                            size_t *snap_len);

#endif
