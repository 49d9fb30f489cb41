/* epw_snap: ownership helpers for the protobuf Snapshot message shared by all programs. */
#ifndef EPW_SNAP_H
#define EPW_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "epw_attr.h"
#include "epwatch.pb-c.h"

/*
 * Ownership rule: every Snapshot built by the project (agent or collector) owns all of its
 * strings, repeated arrays and sub-messages, each allocated with malloc. It is then released with
 * epw_snap_free, which is protobuf-c's free_unpacked with the default allocator, so a built and a
 * decoded snapshot are freed the same way. Empty strings point at protobuf_c_empty_string.
 */

/* A zeroed, initialised Snapshot (with time_wait allocated), or NULL on allocation failure. */
Epw__Snapshot *epw_snap_new(void);
/* Releases a Snapshot built or decoded by the project. NULL is a no-op. */
void epw_snap_free(Epw__Snapshot *snap);

/* malloc'd copy of s ("" → protobuf_c_empty_string). NULL on allocation failure. */
char *epw_snap_strdup(const char *s);
/* Frees a string set by epw_snap_strdup (leaves protobuf_c_empty_string alone). */
void epw_snap_strfree(char *s);

/* Appends a formatted note to snap->notes. 0 or UV_ENOMEM. */
int epw_snap_add_note(Epw__Snapshot *snap, const char *fmt, ...) EPW_PRINTF(2, 3);

/*
 * Appends one zero-initialised element to a repeated sub-message field and returns it, e.g.
 *   Epw__AddressUsage *a = EPW_SNAP_APPEND(snap, addresses, epw__address_usage__init);
 * NULL on allocation failure (the field is unchanged).
 */
void *epw_snap_append(void ***arr, size_t *n, size_t elem_size, void (*init)(void *));
#define EPW_SNAP_APPEND(msg, field, initfn)                                                        \
    epw_snap_append((void ***)&(msg)->field, &(msg)->n_##field, sizeof(**(msg)->field),            \
                    (void (*)(void *))(initfn))

/* Names used in JSON and tables: "tcp"/"udp", "ipv4"/"ipv6", "linux"/"windows". */
const char *epw_snap_proto_name(Epw__Protocol p);
const char *epw_snap_family_name(Epw__Family f);
const char *epw_snap_platform_name(Epw__Platform p);
const char *epw_snap_range_source_name(Epw__RangeSource s);

#endif
