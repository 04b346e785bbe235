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
 * after arming; a producer writes the eventfd only if it is the first to
 * publish since the arming.  A consumer that keeps up never arms, and its
 * producers never make the syscall.
 *
 * Waking producers: a producer that finds the ring full sleeps on the
 * `space` eventcount; pop wakes them only while some wait. */
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
    atomic_init(&r->armed, 0);
    atomic_init(&r->space.epoch, 0);
    atomic_init(&r->space.waiters, 0);
    for (uint32_t i = 0; i < SHM_EVC_IDS; i++)
        atomic_init(&r->waiting[i], 0);
    for (uint32_t i = 0; i < slots; i++)
        atomic_init(&r->slots[i].state, slot_state(i, SLOT_EMPTY, 0));
    return r;
}

/* ---- producers ------------------------------------------------------- */

/* Claims the slot at head for `id`.  0 with *slot and *pos set, or 1 when
 * the ring is full (the slot at head still holds the previous lap). */
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
        if (st == slot_state(h, SLOT_EMPTY, 0)) {
            /* acquire: reads EMPTY(h) from the consumer's release store, so
             * its copy-out of the record this slot held a lap ago happens
             * before our copy-in. */
            if (!atomic_compare_exchange_strong_explicit(
                    &s->state, &st, slot_state(h, SLOT_BUSY, id),
                    memory_order_acquire, memory_order_relaxed))
                continue;
            /* relaxed: a hint, as above.  Failure means a helper did it. */
            atomic_compare_exchange_strong_explicit(&r->head, &h, h + 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed);
            *slot = s;
            *pos = h;
            return 0;
        }
        if (slot_at(st, h)) {
            /* Reserved by a producer that has not moved head yet: help. */
            atomic_compare_exchange_strong_explicit(&r->head, &h, h + 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed);
            continue;
        }
        if (slot_at(st, h - r->capacity))
            return 1;
        /* head was stale: reload */
    }
}

/* 1 when the slot at head still holds the previous lap. */
static int looks_full(struct shm_replyring *r)
{
    /* relaxed: called after the eventcount fence, which orders it. */
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t st = atomic_load_explicit(&r->slots[h & r->mask].state, memory_order_relaxed);
    return slot_at(st, h - r->capacity);
}

static void wake_consumer(struct shm_replyring *r)
{
    /* seq_cst fence: the producer's half of a Dekker pair with arm(), which
     * stores armed = 1, fences, then looks at the slot at tail.  With both
     * fences in the single total order, either arm() sees our FULL store
     * (and does not sleep) or our load below sees armed == 1 (and we write
     * the eventfd).  Never neither. */
    atomic_thread_fence(memory_order_seq_cst);
    /* relaxed load first: while the consumer is awake the line stays shared
     * and the publish costs no write to it. */
    if (atomic_load_explicit(&r->armed, memory_order_relaxed) == 0)
        return;
    /* relaxed: the exchange only elects the one producer that writes; the
     * eventfd itself orders nothing (the consumer re-reads the slots). */
    if (atomic_exchange_explicit(&r->armed, 0, memory_order_relaxed) == 0)
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
            /* release: the consumer that acquires FULL(h) sees the bytes. */
            atomic_store_explicit(&s->state, slot_state(h, SLOT_FULL, (uint16_t)len),
                                  memory_order_release);
            wake_consumer(r);
            return 0;
        }
        if (deadline >= 0 && shm_now_ns() >= deadline)
            return -1;
        uint32_t e = shm_evc_prepare(&r->space, r->waiting, id);
        if (looks_full(r))
            shm_evc_wait_until(&r->space, e, deadline);
        shm_evc_finish(&r->space, r->waiting, id);
    }
}

/* ---- the consumer ---------------------------------------------------- */

/* Frees the slot at tail t for the producers of the next lap. */
static void release_slot(struct shm_replyring *r, struct reply_slot *s, uint64_t t)
{
    /* release: our copy-out happens before a producer's CAS (acquire) on
     * EMPTY(t + cap) lets it copy in. */
    atomic_store_explicit(&s->state, slot_state(t + r->capacity, SLOT_EMPTY, 0),
                          memory_order_release);
    /* relaxed: tail is written only here and read only for depth. */
    atomic_store_explicit(&r->tail, t + 1, memory_order_relaxed);
    /* Wake every waiting producer, not one: a waiter woken alone could be
     * leaving on its timeout and take the wake-up with it while another
     * sleeps on beside a free slot.  Waiting producers mean overload, when
     * the herd is the lesser cost. */
    shm_evc_notify(&r->space, INT_MAX);
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

int shm_replyring_arm(struct shm_replyring *r)
{
    /* relaxed store + seq_cst fence: the consumer's half of the Dekker pair
     * argued in wake_consumer(). */
    atomic_store_explicit(&r->armed, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t st = atomic_load_explicit(&r->slots[t & r->mask].state, memory_order_relaxed);
    enum slot_kind k = slot_kind(st);
    /* EMPTY(t): any later publish sees armed.  BUSY(t): its producer has yet
     * to publish, and will see armed then; records behind it wait for it
     * anyway. */
    if (!slot_at(st, t) || (k != SLOT_FULL && k != SLOT_TOMB))
        return 1;
    /* Something to pop.  If a producer already took the flag, it writes the
     * eventfd; the next ack consumes that spare wake-up. */
    atomic_exchange_explicit(&r->armed, 0, memory_order_relaxed);
    return 0;
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
