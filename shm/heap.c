/* heap.c — a buddy allocator over a shared byte range.  The owner allocates
 * and frees; other processes only read the bytes.  All bookkeeping lives in
 * the owner's private memory, so nothing another process writes (or
 * scribbles) can corrupt it.
 *
 * Blocks are 2^k units of 64 bytes, aligned to their size from the base.
 * The bookkeeping is a complete binary tree over 2^top units: node 1 is the
 * whole range, node i has children 2i and 2i+1, leaves are single units.
 * tree[i] is 0 when nothing below node i is free, else k + 1 where 2^k units
 * is the largest free block below it; k + 1 equal to the node's own order
 * plus one means the node's whole block is free.  Units past the end of a
 * range that is not a power of two are leaves marked 0 from the start.
 *
 * alloc walks down from the root to the leftmost node of the wanted order
 * that is wholly free and marks it 0; free walks up from the unit's leaf to
 * the first node marked 0 (the block's descendants still hold the "wholly
 * free" values they had when it was handed out), restores it and merges
 * upward.  Both are O(log units).  Internal fragmentation is up to half a
 * block: the price of O(log n) coalescing with no per-block header in the
 * shared bytes.  The tree costs 2 bytes of private memory per 64 shared. */
#include "ring.h"

#include <stdio.h>
#include <stdlib.h>

#define HEAP_UNIT_SHIFT 6   /* 64-byte units: a cache line, and the alignment */

struct shm_heap {
    unsigned char *base; /* the shared bytes (not owned) */
    size_t units;        /* whole 64-byte units in the range */
    unsigned top;        /* the root covers 2^top units */
    size_t in_use;       /* bytes in allocated blocks (rounded sizes) */
    uint8_t *tree;       /* 2^(top+1) entries; index 0 unused */
};

static unsigned ceil_log2(size_t n)
{
    unsigned k = 0;
    while (((size_t)1 << k) < n)
        k++;
    return k;
}

/* The value of a node of order `order` from its children's values. */
static uint8_t merged(uint8_t l, uint8_t r, unsigned order)
{
    uint8_t whole_child = (uint8_t)order;   /* (order - 1) + 1 */
    if (l == whole_child && r == whole_child)
        return (uint8_t)(order + 1);
    return l > r ? l : r;
}

struct shm_heap *shm_heap_new(void *base, size_t size)
{
    size_t units = size >> HEAP_UNIT_SHIFT;
    if (base == NULL || units == 0 || units > ((size_t)1 << 40))
        return NULL;
    struct shm_heap *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->base = base;
    h->units = units;
    h->top = ceil_log2(units);
    size_t leaves = (size_t)1 << h->top;
    h->tree = calloc(2 * leaves, 1);
    if (h->tree == NULL) {
        free(h);
        return NULL;
    }
    for (size_t u = 0; u < units; u++)
        h->tree[leaves + u] = 1;
    for (unsigned order = 1; order <= h->top; order++) {
        size_t first = (size_t)1 << (h->top - order);
        for (size_t i = first; i < 2 * first; i++)
            h->tree[i] = merged(h->tree[2 * i], h->tree[2 * i + 1], order);
    }
    return h;
}

void shm_heap_delete(struct shm_heap *h)
{
    if (h == NULL)
        return;
    free(h->tree);
    free(h);
}

/* Recomputes the ancestors of node i (of order `order`), stopping where a
 * value does not change: nothing above it can change either. */
static void update_up(struct shm_heap *h, size_t i, unsigned order)
{
    while (i > 1) {
        i >>= 1;
        order++;
        uint8_t v = merged(h->tree[2 * i], h->tree[2 * i + 1], order);
        if (h->tree[i] == v)
            return;
        h->tree[i] = v;
    }
}

int64_t shm_heap_alloc(struct shm_heap *h, size_t len)
{
    if (len > h->units << HEAP_UNIT_SHIFT)
        return -1;
    size_t need = (len + ((size_t)1 << HEAP_UNIT_SHIFT) - 1) >> HEAP_UNIT_SHIFT;
    unsigned k = ceil_log2(need ? need : 1);
    if (k > h->top || h->tree[1] < k + 1)
        return -1;
    size_t i = 1;
    for (unsigned order = h->top; order > k; order--) {
        i *= 2;
        if (h->tree[i] < k + 1)
            i++;   /* the root's value promises the right child has it */
    }
    h->tree[i] = 0;
    update_up(h, i, k);
    h->in_use += (size_t)1 << (k + HEAP_UNIT_SHIFT);
    size_t unit = (i - ((size_t)1 << (h->top - k))) << k;
    return (int64_t)(unit << HEAP_UNIT_SHIFT);
}

static void bad_free(int64_t off)
{
    /* Freeing what was not allocated means the caller's bookkeeping is
     * broken; carrying on would hand one block to two jobs. */
    fprintf(stderr, "shm_heap_free: %lld is not an allocated block\n", (long long)off);
    abort();
}

void shm_heap_free(struct shm_heap *h, int64_t off)
{
    if (off < 0 || ((uint64_t)off & ((1u << HEAP_UNIT_SHIFT) - 1)) != 0 ||
        (uint64_t)off >> HEAP_UNIT_SHIFT >= h->units)
        bad_free(off);
    size_t unit = (size_t)off >> HEAP_UNIT_SHIFT;
    size_t i = ((size_t)1 << h->top) + unit;
    unsigned k = 0;
    while (h->tree[i] != 0) {
        if (i == 1)
            bad_free(off);
        i >>= 1;
        k++;
    }
    if (((i - ((size_t)1 << (h->top - k))) << k) != unit)
        bad_free(off);
    h->tree[i] = (uint8_t)(k + 1);
    update_up(h, i, k);
    h->in_use -= (size_t)1 << (k + HEAP_UNIT_SHIFT);
}

size_t shm_heap_in_use(const struct shm_heap *h)
{
    return h->in_use;
}
