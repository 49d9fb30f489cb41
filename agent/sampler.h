/* sampler: takes one snapshot of the host's sockets and ranges (one implementation per OS). */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "epwatch.pb-c.h"

typedef struct sampler_opts_s {
    uint32_t top_n;            /* 0: default */
    uint32_t top_destinations; /* 0: default */
    int all_netns;             /* Linux: sample every network namespace on the host */
    int attribute_pids;        /* look up owning processes (default on) */
    int watch_events;          /* Windows: subscribe to the OS exhaustion events and persist the
                                * event-log bookmark. Only the long-running agent sets it, so a
                                * one-shot run never takes events the service has not reported. */
} sampler_opts_t;

typedef struct sampler_s sampler_t;

/*
 * Creates a sampler for this host. Blocking: never call on an event-loop thread (use a work
 * request). A sampler is used by one thread at a time.
 */
int sampler_create(const sampler_opts_t *opts, sampler_t **out);
void sampler_destroy(sampler_t *s);

/*
 * Takes one sample. *out receives an array of *n_out snapshots (one per network namespace with
 * all_netns, else exactly one), each owned by the caller: free each with epw_snap_free and the
 * array with free(). Fills hostname, platform, taken_at_ms, sample_duration_us, netns, every
 * analysis figure, time_wait, events and notes. seq is left 0 for the caller.
 */
int sampler_sample(sampler_t *s, Epw__Snapshot ***out, size_t *n_out);

#endif
