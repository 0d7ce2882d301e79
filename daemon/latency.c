/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Latency histograms: 16 linear sub-buckets per power of two, so a
 * quantile is exact below 16 ns and within 1/16 above, in constant memory
 * and O(1) per sample (the ack path records one per event). */

#include "kvmid.h"

static size_t bucket_of(uint64_t ns) {
        if (ns < 16)
                return (size_t) ns;
        unsigned e = 63U - (unsigned) __builtin_clzll(ns);  /* 4..63 */
        uint64_t m = (ns >> (e - 4)) & 15;
        return 16 + (size_t) (e - 4) * 16 + (size_t) m;
}

/* The largest value that lands in bucket b. */
static uint64_t bucket_upper(size_t b) {
        if (b < 16)
                return b;
        unsigned e = (unsigned) ((b - 16) / 16) + 4;
        uint64_t m = (b - 16) % 16;
        uint64_t lo = (16 + m) << (e - 4);
        return lo + (1ULL << (e - 4)) - 1;
}

void latency_add(Latency *l, uint64_t ns) {
        l->bucket[bucket_of(ns)]++;
        l->count++;
        l->sum_ns += ns;
        if (ns > l->max_ns)
                l->max_ns = ns;
}

uint64_t latency_quantile(const Latency *l, double q) {
        uint64_t rank, seen = 0;

        if (l->count == 0)
                return 0;
        rank = (uint64_t) (q * (double) l->count);
        if (rank >= l->count)
                rank = l->count - 1;
        for (size_t b = 0; b < LATENCY_BUCKETS; b++) {
                seen += l->bucket[b];
                if (seen > rank)
                        return MIN(bucket_upper(b), l->max_ns);
        }
        return l->max_ns;
}
