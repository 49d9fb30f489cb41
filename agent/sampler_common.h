/* sampler_common: snapshot bookkeeping that every platform's sampler does the same way. */
#ifndef SAMPLER_COMMON_H
#define SAMPLER_COMMON_H

#include <stdint.h>

#include "epwatch.pb-c.h"

/*
 * Internal to the samplers (sampler_linux.c, sampler_win.c); portable, so it lives in the agent
 * core and is tested on every platform. Called on the sampling thread; no state of its own.
 */

/*
 * Moves every note of `from` to the end of `to`, in order: the strings change owner, `from` is
 * left with none. 0, or UV_ENOMEM with both snapshots unchanged.
 */
int sampler_common_move_notes(Epw__Snapshot *from, Epw__Snapshot *to);

/*
 * Sets what identifies a snapshot: hostname (uv_os_gethostname; "" when it fails), platform and
 * taken_at_ms (the wall clock when the sample began). 0, or UV_ENOMEM.
 */
int sampler_common_stamp(Epw__Snapshot *snap, Epw__Platform platform, int64_t taken_at_ms);

/*
 * Sets sample_duration_us to the time since t0 (uv_hrtime), saturated at UINT32_MAX, and returns
 * the unsaturated duration in microseconds.
 */
uint64_t sampler_common_finish_duration(Epw__Snapshot *snap, uint64_t t0);

#endif
