/*
 * hist: log-linear latency histogram (see hist.h).
 */
#include "hist.h"

#include <math.h>
#include <string.h>

void histo_init(histo_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min_us = UINT64_MAX;
}

static unsigned histo_index(uint64_t v)
{
    if (v < 2 * HISTO_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HISTO_SUB_BITS + 1 */
    unsigned shift = e - HISTO_SUB_BITS;
    unsigned mant = (unsigned)(v >> shift); /* HISTO_SUB .. 2 * HISTO_SUB - 1 */
    return 2 * HISTO_SUB + (shift - 1) * HISTO_SUB + (mant - HISTO_SUB);
}

/* The highest value that falls in bucket `i`. */
static uint64_t histo_upper(unsigned i)
{
    if (i < 2 * HISTO_SUB)
        return i;
    unsigned k = i - 2 * HISTO_SUB;
    unsigned shift = k / HISTO_SUB + 1;
    uint64_t mant = HISTO_SUB + k % HISTO_SUB;
    return ((mant + 1) << shift) - 1;
}

void histo_record(histo_t *h, uint64_t us)
{
    if (us >= (1ull << HISTO_MAX_EXP))
        us = (1ull << HISTO_MAX_EXP) - 1;
    h->bucket[histo_index(us)]++;
    h->count++;
    if (us < h->min_us)
        h->min_us = us;
    if (us > h->max_us)
        h->max_us = us;
}

uint64_t histo_quantile(const histo_t *h, double q)
{
    if (h->count == 0)
        return 0;
    /* the rank of the value, 1-based, as "nearest rank" percentiles define it */
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTO_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = histo_upper(i);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}
