/* bytering.c — one producer, one consumer, contiguous byte ranges freed in
 * the order they were allocated.
 *
 * head and tail are monotonic 64-bit byte positions; the byte at position p
 * lives at data[p % capacity].  [tail, head) is allocated, the rest free.
 * An allocation starts at head rounded up to 8 (so the producer can lay a
 * struct there); when it would run past the end of the buffer, it starts at
 * the next multiple of capacity instead, and the bytes skipped (alignment or
 * the end of the buffer) belong to nobody.  free(pos, len) moves tail to
 * pos + len, which also frees whatever was skipped before pos: frees come in
 * allocation order, so every skipped byte lies before a later allocation.
 *
 * Why len <= capacity / 2 always fits once everything is freed (tail ==
 * head): without a wrap it ends at most 7 + len <= cap bytes past head.  A
 * wrap happens only when round8(head % cap) > cap - len >= cap / 2; both
 * sides are multiples of 8 (cap is a multiple of 64), so head % cap >
 * cap / 2 >= len, and the allocation ends cap - head % cap + len <= cap
 * bytes past head. */
#include "ring_layout.h"

static uint64_t capacity_of(size_t capacity)
{
    return ((uint64_t)capacity + 63u) & ~(uint64_t)63u;
}

size_t shm_bytering_size(size_t capacity)
{
    return sizeof(struct shm_bytering) + (size_t)capacity_of(capacity);
}

struct shm_bytering *shm_bytering_init(void *mem, size_t capacity)
{
    if (mem == NULL || ((uintptr_t)mem & 63u) != 0 || capacity == 0)
        return NULL;
    struct shm_bytering *r = mem;
    r->capacity = capacity_of(capacity);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    shm_evc_init(&r->space);
    atomic_init(&r->want, 0);
    return r;
}

/* Where an allocation of len bytes made now would start. */
static uint64_t place(const struct shm_bytering *r, uint64_t head, size_t len)
{
    uint64_t start = (head + 7u) & ~(uint64_t)7u;
    uint64_t off = start % r->capacity;
    if (off + len > r->capacity)
        start += r->capacity - off;
    return start;
}

static int fits(struct shm_bytering *r, uint64_t start, size_t len, memory_order mo)
{
    uint64_t tail = atomic_load_explicit(&r->tail, mo);
    return start + len - tail <= r->capacity;
}

int64_t shm_bytering_alloc(struct shm_bytering *r, size_t len, int timeout_ms)
{
    if (len > r->capacity / 2)
        return -1;
    /* relaxed: only the producer writes head. */
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t start = place(r, head, len);
    int64_t deadline = shm_deadline_ns(timeout_ms);
    /* acquire: pairs with the release in free, so the consumer's reads of
     * the bytes it freed happen before we hand them out again. */
    while (!fits(r, start, len, memory_order_acquire)) {
        if (deadline >= 0 && shm_now_ns() >= deadline)
            return -1;
        /* relaxed: published by prepare's release RMW, which the consumer
         * acquires (reading the count) before it reads want. */
        atomic_store_explicit(&r->want, start + len - r->capacity, memory_order_relaxed);
        struct shm_evc_ticket e = shm_evc_prepare(&r->space, NULL, 0);
        /* relaxed: ordered after prepare (the pair with the notify in
         * free; eventcount.h); the loop condition re-acquires. */
        if (!fits(r, start, len, memory_order_relaxed))
            shm_evc_wait_until(&r->space, e, deadline);
        shm_evc_finish(&r->space, NULL, 0);
    }
    /* relaxed: read back only by this producer, by reset (after the
     * producer's death was observed) and for statistics. */
    atomic_store_explicit(&r->head, start + len, memory_order_relaxed);
    return (int64_t)start;
}

void *shm_bytering_ptr(struct shm_bytering *r, int64_t pos)
{
    return r->data + (uint64_t)pos % r->capacity;
}

/* Moves tail up to `to`, never down: a free that arrives after a reset (or
 * twice) is then harmless.  1 when tail moved. */
static int raise_tail(struct shm_bytering *r, uint64_t to)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    while (t < to) {
        /* release: the consumer's reads of the bytes below `to` happen
         * before the producer's acquire of the new tail lets it reuse them. */
        if (atomic_compare_exchange_weak_explicit(&r->tail, &t, to,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            return 1;
    }
    return 0;
}

void shm_bytering_free(struct shm_bytering *r, int64_t pos, size_t len)
{
    if (pos < 0)
        return;
    uint64_t to = (uint64_t)pos + len;
    if (!raise_tail(r, to))
        return;
    /* Either the producer's re-check after prepare sees the new tail, or we
     * see it counted here, and then (acquire) the want it stored before
     * counting itself (eventcount.h). */
    if (!shm_evc_unwoken(&r->space))
        return;
    /* Wake only once enough is free: a producer waiting for a large piece
     * would otherwise be woken by every small free on the way. */
    if (to >= atomic_load_explicit(&r->want, memory_order_relaxed))
        shm_evc_wake(&r->space, 1);
}

void shm_bytering_reset(struct shm_bytering *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    raise_tail(r, head);
    /* The dead producer was the only possible waiter; forget its count. */
    shm_evc_forget(&r->space);
}
