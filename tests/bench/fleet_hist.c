/* fleet_hist: a log-linear latency histogram (HDR-style, ~3% resolution) for the fleet benchmarks.
 */
#include "fleet_hist.h"

#include <string.h>

/* Bucket of v: values below FLEET_HIST_SUB are exact; above, the top FLEET_HIST_SUB_BITS + 1
 * bits (the leading one and the next SUB_BITS) select the bucket within its power of two. */
static unsigned bucket_of(uint64_t v)
{
    unsigned msb, shift;

    if (v < FLEET_HIST_SUB)
        return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - FLEET_HIST_SUB_BITS;
    return (shift + 1u) * FLEET_HIST_SUB + (unsigned)((v >> shift) & (FLEET_HIST_SUB - 1u));
}

/* The largest value that falls into bucket b. */
static uint64_t bucket_top(unsigned b)
{
    unsigned shift;
    uint64_t sub;

    if (b < FLEET_HIST_SUB)
        return b;
    shift = b / FLEET_HIST_SUB - 1u;
    sub = b % FLEET_HIST_SUB;
    return (((uint64_t)FLEET_HIST_SUB + sub + 1u) << shift) - 1u;
}

void fleet_hist_reset(fleet_hist_t *h)
{
    memset(h, 0, sizeof(*h));
}

void fleet_hist_add(fleet_hist_t *h, uint64_t us)
{
    unsigned b = bucket_of(us);

    if (b >= FLEET_HIST_BUCKETS)
        b = FLEET_HIST_BUCKETS - 1u;
    h->counts[b]++;
    h->n++;
    h->sum += us;
    if (us > h->max)
        h->max = us;
}

uint64_t fleet_hist_quantile(const fleet_hist_t *h, double q)
{
    uint64_t want, seen = 0, top;
    unsigned b;

    if (h->n == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    for (b = 0; b < FLEET_HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen > want) {
            top = bucket_top(b);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
