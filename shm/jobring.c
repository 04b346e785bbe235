/* jobring.c — one producer, many consumers, non-zero 64-bit values.
 *
 * A slot goes round the cycle
 *
 *     EMPTY(p) --push--> FULL(p) --take: CAS--> BUSY(p, id)
 *         ^                                          |
 *         +------ take: value -> *claim, then -------+
 *                 store EMPTY(p + cap)
 *
 * The producer owns head and writes a slot only when it reads EMPTY(head).
 * Consumers race for the slot at tail with a CAS on its state; the winner
 * moves tail on, so the others need not wait for it to finish.  A consumer
 * that sees a slot already BUSY (or already recycled) moves tail on for
 * whoever claimed it, so a consumer that dies between its two CASes stalls
 * nobody.
 *
 * Where the value is: in the slot until the consumer's release store to
 * *claim, in both until the slot becomes EMPTY(p + cap), in *claim after.
 * A consumer that dies while its slot is BUSY leaves the value in the slot,
 * where shm_jobring_recover finds it by the consumer's id.
 *
 * Sleeping: consumers with nothing to take wait on the `ready` eventcount
 * (eventcount.h); the producer's push pays a fence and one load of a shared
 * line, and a futex_wake only while some consumer waits. */
#include "ring_layout.h"

#include <limits.h>

/* How long take_wait re-checks an empty ring before it sleeps.  Waking a
 * process asleep on another CPU costs tens of microseconds; a value handed
 * over through a cache line, tens of nanoseconds.  A consumer that finds the
 * ring empty while the producer is mid-burst would otherwise go to sleep
 * between consecutive values and make the producer pay a wake-up each time.
 * Bounded, so an idle consumer still costs no CPU. */
#define TAKE_SPIN_NS 4000

size_t shm_jobring_size(uint32_t slots)
{
    return sizeof(struct shm_jobring) + (size_t)slots * sizeof(struct job_slot);
}

struct shm_jobring *shm_jobring_init(void *mem, uint32_t slots)
{
    if (mem == NULL || ((uintptr_t)mem & 63u) != 0)
        return NULL;
    if (slots == 0 || (slots & (slots - 1)) != 0 || slots > (UINT32_C(1) << 30))
        return NULL;
    struct shm_jobring *r = mem;
    r->capacity = slots;
    r->mask = slots - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->ready.epoch, 0);
    atomic_init(&r->ready.waiters, 0);
    atomic_init(&r->wake_gen, 0);
    for (uint32_t i = 0; i < SHM_EVC_IDS; i++)
        atomic_init(&r->sleeping[i], 0);
    for (uint32_t i = 0; i < slots; i++) {
        atomic_init(&r->slots[i].state, slot_state(i, SLOT_EMPTY, 0));
        atomic_init(&r->slots[i].value, 0);
    }
    /* Other processes see these plain initialisations through fork(). */
    return r;
}

int shm_jobring_push(struct shm_jobring *r, uint64_t value)
{
    if (value == 0)
        return -1;
    /* relaxed: only this producer writes head. */
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    struct job_slot *s = &r->slots[h & r->mask];
    /* acquire: pairs with the consumer's release of EMPTY(h), so its read
     * of the value this slot held a lap ago happens before our overwrite. */
    uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (st != slot_state(h, SLOT_EMPTY, 0))
        return -1;   /* a lap behind: still FULL, or BUSY with a consumer */
    atomic_store_explicit(&s->value, value, memory_order_relaxed);
    /* release: a consumer whose CAS reads FULL(h) also reads the value. */
    atomic_store_explicit(&s->state, slot_state(h, SLOT_FULL, 0), memory_order_release);
    /* relaxed: head is read back only by this producer and by depth(). */
    atomic_store_explicit(&r->head, h + 1, memory_order_relaxed);
    shm_evc_notify(&r->ready, 1);
    return 0;
}

/* Moves tail from t to t + 1 if nobody has yet.  tail only ever moves past a
 * position whose slot has been claimed, so it never overtakes a value. */
static void advance_tail(struct shm_jobring *r, uint64_t t)
{
    /* relaxed: tail is a hint; the slot state words carry the ordering. */
    atomic_compare_exchange_strong_explicit(&r->tail, &t, t + 1,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
}

int shm_jobring_take(struct shm_jobring *r, uint16_t id,
                     _Atomic uint64_t *claim, uint64_t *value)
{
    if (id == 0 || claim == NULL)
        return -1;
    for (;;) {
        /* relaxed: a stale tail only sends us to a slot whose state shows a
         * later lap, and we look again; the state word decides. */
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        struct job_slot *s = &r->slots[t & r->mask];
        /* relaxed: this load only chooses what to try; the CAS below is
         * what acquires the producer's value. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (st == slot_state(t, SLOT_FULL, 0)) {
            /* acquire: reads FULL(t) from the producer's release store, so
             * the value load below sees what it wrote. */
            if (!atomic_compare_exchange_strong_explicit(
                    &s->state, &st, slot_state(t, SLOT_BUSY, id),
                    memory_order_acquire, memory_order_relaxed))
                continue;
            advance_tail(r, t);
            uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
            /* release: whoever reads *claim after our death sees the value,
             * and the store is ordered before the slot's release below, so
             * there is no instant when the value is in neither place. */
            atomic_store_explicit(claim, v, memory_order_release);
            /* release: our read of the value happens before the producer
             * (acquiring EMPTY(t + cap)) overwrites it. */
            atomic_store_explicit(&s->state, slot_state(t + r->capacity, SLOT_EMPTY, 0),
                                  memory_order_release);
            *value = v;
            return 0;
        }
        if (st == slot_state(t, SLOT_EMPTY, 0))
            return -1;
        if (slot_at(st, t) || st == slot_state(t + r->capacity, SLOT_EMPTY, 0))
            advance_tail(r, t);   /* claimed by someone who has not moved tail yet */
        /* otherwise tail was stale by a lap or more: reload it */
    }
}

/* True when the slot at tail is no longer waiting for the producer. */
static int looks_ready(struct shm_jobring *r)
{
    /* relaxed: a hint for the spin; take() re-reads everything. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t st = atomic_load_explicit(&r->slots[t & r->mask].state, memory_order_relaxed);
    return st != slot_state(t, SLOT_EMPTY, 0);
}

/* Re-checks the ring for at most TAKE_SPIN_NS (and not past the deadline).
 * 1 when a value may have arrived. */
static int spin_for_value(struct shm_jobring *r, int64_t deadline)
{
    int64_t until = shm_now_ns() + TAKE_SPIN_NS;
    if (deadline >= 0 && deadline < until)
        until = deadline;
    for (unsigned i = 1;; i++) {
        if (looks_ready(r))
            return 1;
        shm_cpu_relax();
        /* The clock costs more than a re-check; look at it now and then. */
        if ((i & 15u) == 0 && shm_now_ns() >= until)
            return 0;
    }
}

static int stopped(struct shm_jobring *r, uint32_t gen)
{
    /* acquire: pairs with the release bump in wake_all (also reached through
     * the epoch, see there). */
    return atomic_load_explicit(&r->wake_gen, memory_order_acquire) != gen;
}

static int expired(int64_t deadline)
{
    return deadline >= 0 && shm_now_ns() >= deadline;
}

/* A value is always preferred: -1 is returned only after a take found the
 * ring empty and either the deadline has passed or shm_jobring_wake_all was
 * called after this call began. */
int shm_jobring_take_wait(struct shm_jobring *r, uint16_t id,
                          _Atomic uint64_t *claim, uint64_t *value,
                          int timeout_ms)
{
    if (id == 0 || claim == NULL)
        return -1;
    uint32_t gen = atomic_load_explicit(&r->wake_gen, memory_order_acquire);
    int64_t deadline = shm_deadline_ns(timeout_ms);
    for (;;) {
        if (shm_jobring_take(r, id, claim, value) == 0)
            return 0;
        if (stopped(r, gen) || expired(deadline))
            return -1;
        if (spin_for_value(r, deadline))
            continue;
        uint32_t e = shm_evc_prepare(&r->ready, r->sleeping, id);
        /* The re-check after prepare's fence: a push that this take misses
         * is one whose notify sees us counted, and bumps e. */
        int got = shm_jobring_take(r, id, claim, value) == 0;
        if (!got && !stopped(r, gen))
            shm_evc_wait_until(&r->ready, e, deadline);
        shm_evc_finish(&r->ready, r->sleeping, id);
        if (got)
            return 0;
    }
}

void shm_jobring_wake_all(struct shm_jobring *r)
{
    /* release, and sequenced before the epoch bump (itself a release): a
     * consumer that reads the new epoch in prepare then sees the new
     * generation in stopped(); one that read the old epoch has its
     * futex_wait refused or woken by the wake below. */
    atomic_fetch_add_explicit(&r->wake_gen, 1, memory_order_release);
    shm_evc_wake(&r->ready, INT_MAX);
}

size_t shm_jobring_recover(struct shm_jobring *r, uint16_t id,
                           uint64_t *out, size_t max)
{
    size_t n = 0;
    for (uint32_t i = 0; i < r->capacity && n < max; i++) {
        struct job_slot *s = &r->slots[i];
        /* acquire: the BUSY state was written by the dead consumer's CAS,
         * which continues the release sequence of the producer's FULL
         * store, so the value load below sees the producer's value. */
        uint64_t st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (slot_kind(st) != SLOT_BUSY || slot_low(st) != id)
            continue;
        out[n++] = atomic_load_explicit(&s->value, memory_order_relaxed);
        uint64_t pos = st >> SLOT_POS_SHIFT;
        /* release: pairs with the producer's acquire in push, as a live
         * consumer's free would.  Nobody else writes a slot BUSY with a
         * dead id, so a plain store cannot race. */
        atomic_store_explicit(&s->state, slot_state(pos + r->capacity, SLOT_EMPTY, 0),
                              memory_order_release);
    }
    shm_evc_finish(&r->ready, r->sleeping, id);
    return n;
}

uint32_t shm_jobring_depth(const struct shm_jobring *r)
{
    /* relaxed: a statistic.  The two loads are not a snapshot, hence the
     * clamping. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h <= t)
        return 0;
    return h - t > r->capacity ? r->capacity : (uint32_t)(h - t);
}

uint32_t shm_jobring_capacity(const struct shm_jobring *r)
{
    return r->capacity;
}
