/* histogram.h — log-linear latency histogram (HDR-style): 16 sub-buckets
 * per power of two, so any percentile is within ~6% of the true value,
 * in a fixed 5 KiB with O(1) recording. */
#ifndef WSJOBD_HISTOGRAM_H
#define WSJOBD_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB     16
#define HIST_BUCKETS (HIST_SUB * 40)

struct histogram {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t b[HIST_BUCKETS];
};

void     hist_record(struct histogram *h, uint64_t v);
uint64_t hist_percentile(const struct histogram *h, double p);   /* p in 0..100 */
uint64_t hist_count_le(const struct histogram *h, uint64_t v);   /* values <= v (bucket-exact) */
void     hist_merge(struct histogram *into, const struct histogram *from);

#endif
