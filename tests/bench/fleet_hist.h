/* fleet_hist: a log-linear latency histogram (HDR-style, ~3% resolution) for the fleet benchmarks.
 */
#ifndef FLEET_HIST_H
#define FLEET_HIST_H

#include <stddef.h>
#include <stdint.h>

/*
 * Values are microseconds. Each power of two is split into FLEET_HIST_SUB linear sub-buckets, so a
 * reported percentile is within 1/FLEET_HIST_SUB (about 3%) of the true value; the maximum is
 * exact. Fixed size, no allocation; one thread at a time.
 */
#define FLEET_HIST_SUB_BITS 5
#define FLEET_HIST_SUB      (1u << FLEET_HIST_SUB_BITS)
#define FLEET_HIST_BUCKETS  (64u * FLEET_HIST_SUB)

typedef struct fleet_hist_s {
    uint64_t counts[FLEET_HIST_BUCKETS];
    uint64_t n, max, sum;
} fleet_hist_t;

void fleet_hist_reset(fleet_hist_t *h);
void fleet_hist_add(fleet_hist_t *h, uint64_t us);
/* The value at quantile q (0..1): the upper edge of the bucket holding it (the max for q = 1).
 * 0 when empty. */
uint64_t fleet_hist_quantile(const fleet_hist_t *h, double q);

#endif
