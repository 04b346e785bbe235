/* histogram.c — see histogram.h.  Values below HIST_SUB get a bucket each;
 * above, bucket = (exponent, top four bits after the leading one). */
#include "base/histogram.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);          /* >= 4 */
    unsigned sub = (unsigned)(v >> (e - 4)) & (HIST_SUB - 1);
    unsigned b = (e - 3) * HIST_SUB + sub;
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/* The largest value that falls in bucket b. */
static uint64_t bucket_top(unsigned b)
{
    if (b < HIST_SUB)
        return b;
    unsigned e = b / HIST_SUB + 3, sub = b % HIST_SUB;
    uint64_t base = (1ull << e) | ((uint64_t)sub << (e - 4));
    return base + (1ull << (e - 4)) - 1;
}

void hist_record(struct histogram *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t hist_percentile(const struct histogram *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->b[b];
        if (seen >= rank) {
            uint64_t top = bucket_top(b);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

uint64_t hist_count_le(const struct histogram *h, uint64_t v)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < HIST_BUCKETS && bucket_top(b) <= v; b++)
        n += h->b[b];
    return n;
}

void hist_merge(struct histogram *into, const struct histogram *from)
{
    into->count += from->count;
    into->sum += from->sum;
    if (from->max > into->max)
        into->max = from->max;
    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        into->b[b] += from->b[b];
}
