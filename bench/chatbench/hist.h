/*
 * hist: a log-linear latency histogram in microseconds (HdrHistogram's
 * layout): exact below 128 us, then 64 linear buckets per power of two, so
 * every reported value is within 1/64 (1.6%) of the true one, in a fixed
 * 18 KiB array with O(1) recording and no allocation.
 */
#ifndef CHATBENCH_HIST_H
#define CHATBENCH_HIST_H

#include <stdint.h>

#define HISTO_SUB_BITS 6
#define HISTO_SUB (1u << HISTO_SUB_BITS)
/* values are clamped below 2^HISTO_MAX_EXP us (about 12 days) */
#define HISTO_MAX_EXP 40
#define HISTO_BUCKETS (2 * HISTO_SUB + (HISTO_MAX_EXP - HISTO_SUB_BITS - 1) * HISTO_SUB)

typedef struct histo {
    uint64_t count;
    uint64_t min_us, max_us;
    uint64_t bucket[HISTO_BUCKETS];
} histo_t;

/** Empties `h`. Never fails. */
void histo_init(histo_t *h);

/** Counts one value. Never fails; values past the range count as the largest. */
void histo_record(histo_t *h, uint64_t us);

/**
 * The value at quantile `q` (0..1): the highest value of the bucket that
 * holds it, capped at the largest value recorded. 0 when `h` is empty.
 */
uint64_t histo_quantile(const histo_t *h, double q);

#endif
