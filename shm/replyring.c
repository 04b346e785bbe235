/* replyring.c — many producers, one consumer, records of up to
 * SHM_REPLY_REC bytes copied into 128-byte slots.
 *
 * A slot goes round the cycle
 *
 *     EMPTY(p) --reserve: CAS--> BUSY(p, id) --copy, store--> FULL(p, len)
 *         ^                          |                             |
 *         |                    recover(id)                         |
 *         |                          v                             |
 *         +------- pop: skip ---- TOMB(p)          pop: copy out --+
 *                  store EMPTY(p + cap)
 *
 * Producers race for the slot at head with a CAS on its state and then move
 * head on; one that finds the slot at head already taken moves head on for
 * whoever took it, so a producer that dies between its two CASes stalls
 * nobody.  A producer that dies between reserving and publishing leaves its
 * slot BUSY: the consumer stops there (it must keep order), until the
 * supervisor's shm_replyring_recover turns the slot into a tombstone.
 *
 * Waking the consumer: it sleeps on an eventfd (in its event loop) only
 * after arming the slot at its tail, which is EMPTY or BUSY then; the
 * producer that publishes that slot sees the mark in the state its exchange
 * replaces and writes the eventfd.  One write per arming, by the one
 * producer whose record the consumer is waiting for; a consumer that keeps
 * up never arms, and its producers never make the syscall.  No lost
 * wake-up: the mark and the publish are RMWs on the same word, so one of
 * them sees the other (arm finds FULL and refuses, or the exchange finds
 * the mark).
 *
 * Waking producers: a producer that finds the ring full sleeps on the
 * `space` eventcount until tail reaches the next multiple of half the
 * capacity past the slot it wants.  pop wakes them when tail reaches such a
 * multiple and some wait: a consumer that is the bottleneck pays one
 * futex_wake per half ring, not one per record. */
#include "ring_layout.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

size_t shm_replyring_size(uint32_t slots)
{
    return sizeof(struct shm_replyring) + (size_t)slots * sizeof(struct reply_slot);
}

struct shm_replyring *shm_replyring_init(void *mem, uint32_t slots, int efd)
{
    if (mem == NULL || ((uintptr_t)mem & 63u) != 0)
        return NULL;
    if (slots == 0 || (slots & (slots - 1)) != 0 || slots > (UINT32_C(1) << 30))
        return NULL;
    struct shm_replyring *r = mem;
    r->capacity = slots;
    r->mask = slots - 1;
    r->efd = efd;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    shm_evc_init(&r->space);
    for (uint32_t i = 0; i < SHM_EVC_IDS; i++)
        atomic_init(&r->waiting[i], 0);
    for (uint32_t i = 0; i < slots; i++)
        atomic_init(&r->slots[i].state, slot_state(i, SLOT_EMPTY, 0));
    return r;
}

/* ---- producers ------------------------------------------------------- */

/* Moves head from h to h + 1 if nobody has yet.  head only moves past a
 * slot already reserved, so it never skips a free one. */
static void advance_head(struct shm_replyring *r, uint64_t h)
{
    /* relaxed: head is a hint; the slot state words carry the ordering.  h
     * is our copy: a failed CAS overwrites it, and the caller's h must stay
     * the position it reserved. */
    atomic_compare_exchange_strong_explicit(&r->head, &h, h + 1,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
}

/* Claims the slot at head for `id`.  0 with *slot and *pos set, or 1 when
 * the ring is full (the slot at head, *pos, still holds the previous lap). */
static int reserve(struct shm_replyring *r, uint16_t id,
                   struct reply_slot **slot, uint64_t *pos)
{
    for (;;) {
        /* relaxed: head is a hint; a stale one leads to a slot whose state
         * shows a later lap, and we reload. */
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        struct reply_slot *s = &r->slots[h & r->mask];
        /* relaxed: only chooses what to try; the CAS acquires. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if ((st & ~SLOT_ARMED) == slot_state(h, SLOT_EMPTY, 0)) {
            /* The consumer's mark, if any, stays on for the publish. */
            uint64_t busy = slot_state(h, SLOT_BUSY, id) | (st & SLOT_ARMED);
            /* acquire: reads EMPTY(h) from the consumer's release store
             * (the release sequence includes its arming CAS), so its
             * copy-out of the record this slot held a lap ago happens
             * before our copy-in. */
            if (!atomic_compare_exchange_strong_explicit(&s->state, &st, busy,
                                                         memory_order_acquire,
                                                         memory_order_relaxed))
                continue;
            advance_head(r, h);
            *slot = s;
            *pos = h;
            return 0;
        }
        if (slot_at(st, h)) {
            advance_head(r, h);   /* reserved by one who has not moved head yet */
            continue;
        }
        if (slot_at(st, h - r->capacity)) {
            *pos = h;
            return 1;
        }
        /* head was stale: reload */
    }
}

/* Positions at which pop wakes waiting producers: every half ring. */
static uint64_t wake_step(const struct shm_replyring *r)
{
    return r->capacity > 1 ? r->capacity / 2 : 1;
}

/* The tail a producer that found slot h full waits for: the first wake
 * point at which that slot is free (tail > h - cap).  It is at most half a
 * ring past it, and the records before it are in the ring, so the consumer,
 * which drains to empty, gets there. */
static uint64_t space_target(const struct shm_replyring *r, uint64_t h)
{
    uint64_t step = wake_step(r);
    uint64_t need = h - r->capacity + 1;
    return (need + step - 1) / step * step;
}

static int tail_before(struct shm_replyring *r, uint64_t target, memory_order mo)
{
    return atomic_load_explicit(&r->tail, mo) < target;
}

/* Makes the record in slot s, reserved at h, visible to the consumer, and
 * wakes the consumer if it armed this slot. */
static void publish(struct shm_replyring *r, struct reply_slot *s, uint64_t h, size_t len)
{
    /* release: the consumer that acquires FULL(h) sees the record bytes.
     * An exchange, not a store: it must read the armed mark the consumer
     * may have set since we reserved the slot. */
    uint64_t was = atomic_exchange_explicit(&s->state,
                                            slot_state(h, SLOT_FULL, (uint16_t)len),
                                            memory_order_release);
    if (!slot_armed(was))
        return;
    uint64_t one = 1;
    /* EAGAIN would mean the counter is near 2^64: the consumer is awake. */
    ssize_t n = write(r->efd, &one, sizeof one);
    (void)n;
}

int shm_replyring_push(struct shm_replyring *r, uint16_t id,
                       const void *rec, size_t len, int timeout_ms)
{
    /* A zero-length record would pop as 0, which means "empty". */
    if (id == 0 || len == 0 || len > SHM_REPLY_REC || rec == NULL)
        return -1;
    int64_t deadline = shm_deadline_ns(timeout_ms);
    for (;;) {
        struct reply_slot *s;
        uint64_t h;
        if (reserve(r, id, &s, &h) == 0) {
            memcpy(s->rec, rec, len);
            publish(r, s, h, len);
            return 0;
        }
        /* Retrying before this check means a producer woken just as its
         * deadline passes still uses the slot it was woken for. */
        if (deadline >= 0 && shm_now_ns() >= deadline)
            return -1;
        uint64_t target = space_target(r, h);
        struct shm_evc_ticket e = shm_evc_prepare(&r->space, r->waiting, id);
        /* relaxed: ordered after prepare (the pair with release_slot's
         * notify; eventcount.h). */
        if (tail_before(r, target, memory_order_relaxed))
            shm_evc_wait_until(&r->space, e, deadline);
        shm_evc_finish(&r->space, r->waiting, id);
    }
}

/* ---- the consumer ---------------------------------------------------- */

/* Frees the slot at tail t for the producers of the next lap. */
static void release_slot(struct shm_replyring *r, struct reply_slot *s, uint64_t t)
{
    /* release: our copy-out happens before a producer's CAS (acquire) on
     * EMPTY(t + cap) lets it copy in.  A plain store: nobody else writes a
     * slot that is FULL or TOMB. */
    atomic_store_explicit(&s->state, slot_state(t + r->capacity, SLOT_EMPTY, 0),
                          memory_order_release);
    /* relaxed: producers read tail only to decide whether to sleep; the
     * slot state above is what hands the slot over. */
    atomic_store_explicit(&r->tail, t + 1, memory_order_relaxed);
    /* Every producer waiting for this wake point may go: half a ring is
     * free for them, so wake them all. */
    if (((t + 1) & (wake_step(r) - 1)) == 0)
        shm_evc_notify(&r->space, UINT32_MAX);
}

size_t shm_replyring_pop(struct shm_replyring *r, void *rec)
{
    for (;;) {
        /* relaxed: the consumer is the only writer of tail. */
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        struct reply_slot *s = &r->slots[t & r->mask];
        /* acquire: pairs with the producer's release of FULL(t), so the
         * record bytes are complete when we copy them. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (!slot_at(st, t))
            return 0;
        enum slot_kind k = slot_kind(st);
        if (k == SLOT_FULL) {
            size_t len = slot_low(st);
            memcpy(rec, s->rec, len);
            release_slot(r, s, t);
            return len;
        }
        if (k != SLOT_TOMB)
            return 0;   /* EMPTY(t), or BUSY(t): a producer is still copying */
        release_slot(r, s, t);
    }
}

/* Marks the slot at tail.  It is EMPTY(t) or BUSY(t) when there is nothing
 * to pop, and records behind it cannot be popped before it, so its
 * publisher is the one producer whose record the consumer waits for.  At
 * most two failed CASes (EMPTY -> BUSY -> FULL), then it answers. */
int shm_replyring_arm(struct shm_replyring *r)
{
    /* relaxed: the consumer is the only writer of tail. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    struct reply_slot *s = &r->slots[t & r->mask];
    /* relaxed throughout: the mark carries no data; what matters is that
     * the mark and the publish are RMWs on this one word. */
    uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        enum slot_kind k = slot_kind(st);
        if (k == SLOT_FULL || k == SLOT_TOMB)
            return 0;          /* something to pop: drain again */
        if (slot_armed(st))
            return 1;
        if (atomic_compare_exchange_strong_explicit(&s->state, &st, st | SLOT_ARMED,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed))
            return 1;
    }
}

void shm_replyring_ack(struct shm_replyring *r)
{
    uint64_t n;
    /* Non-blocking eventfd: EAGAIN just means nobody wrote. */
    ssize_t rc = read(r->efd, &n, sizeof n);
    (void)rc;
}

void shm_replyring_recover(struct shm_replyring *r, uint16_t id)
{
    for (uint32_t i = 0; i < r->capacity; i++) {
        struct reply_slot *s = &r->slots[i];
        /* relaxed: no data moves with a tombstone, and the dead producer
         * writes nothing more (its death was observed through waitpid). */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (slot_kind(st) != SLOT_BUSY || slot_low(st) != id)
            continue;
        /* The mark, if any, goes: the dead producer will write nothing. */
        uint64_t tomb = slot_state(st >> SLOT_POS_SHIFT, SLOT_TOMB, 0);
        atomic_compare_exchange_strong_explicit(&s->state, &st, tomb,
                                                memory_order_relaxed,
                                                memory_order_relaxed);
    }
    shm_evc_finish(&r->space, r->waiting, id);
}

uint32_t shm_replyring_depth(const struct shm_replyring *r)
{
    /* relaxed: a statistic; head counts slots reserved but not yet filled. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h <= t)
        return 0;
    return h - t > r->capacity ? r->capacity : (uint32_t)(h - t);
}

uint32_t shm_replyring_capacity(const struct shm_replyring *r)
{
    return r->capacity;
}
