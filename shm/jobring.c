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
 * Consumers race for the oldest FULL slot with a CAS on its state: one
 * locked instruction per take.  tail is only where consumers start looking:
 * the winner stores t + 1 there with a plain store, and a consumer that
 * finds a slot already claimed (or recycled) walks on to the next, so a
 * consumer that dies before it moves tail stalls nobody.
 *
 * Where the value is: in the slot until the consumer's release store to
 * *claim, in both until the slot becomes EMPTY(p + cap), in *claim after.
 * A consumer that dies while its slot is BUSY leaves the value in the slot,
 * where shm_jobring_recover finds it by the consumer's id.
 *
 * Sleeping: consumers with nothing to take wait on the `ready` eventcount
 * (eventcount.h); the producer's push pays a plain load of a line that
 * stays shared while consumers are busy (or one locked add, where the
 * kernel refuses membarrier), and a futex_wake only while the consumers
 * waiting outnumber the wakes already sent to them. */
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
    shm_evc_init(&r->ready);
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

/* Where slot state st stands against position t of the same slot index:
 * < 0 a lap behind (t not produced yet), 0 at t, > 0 past t (t consumed
 * and the slot recycled).  On the 45 position bits the state keeps. */
static int64_t lap_offset(uint64_t st, uint64_t t)
{
    uint64_t d = ((st >> SLOT_POS_SHIFT) - t) & SLOT_POS_MASK;
    uint64_t sign = (SLOT_POS_MASK >> 1) + 1;
    return d & sign ? (int64_t)d - (int64_t)(SLOT_POS_MASK + 1) : (int64_t)d;
}

/* From position *t, steps over positions already claimed to the first one
 * that is not, and returns its state (*t is that position).  Every position
 * below any value tail has held was claimed (a claimer stores t + 1 only
 * after its CAS on t, and walks only over claimed positions), so the walk
 * skips no value.  It ends at FULL(t), at EMPTY(t), or at a slot still a
 * lap behind: the producer has not reached t. */
static uint64_t walk(struct shm_jobring *r, uint64_t *t)
{
    for (;;) {
        /* relaxed: this load only chooses what to try; the CAS in
         * claim_slot is what acquires the producer's value. */
        uint64_t st = atomic_load_explicit(&r->slots[*t & r->mask].state,
                                           memory_order_relaxed);
        if (st == slot_state(*t, SLOT_FULL, 0) || st == slot_state(*t, SLOT_EMPTY, 0))
            return st;
        if (lap_offset(st, *t) < 0)
            return st;
        ++*t;   /* BUSY(t, someone), or recycled past t */
    }
}

/* Moves the value of slot s, at position t, into *claim and frees the slot.
 * 0 when another consumer claimed it first. */
static int claim_slot(struct shm_jobring *r, struct job_slot *s, uint64_t t, uint16_t id,
                      _Atomic uint64_t *claim, uint64_t *value)
{
    uint64_t full = slot_state(t, SLOT_FULL, 0);
    /* acquire: reads FULL(t) from the producer's release store, so the
     * value load below sees what it wrote. */
    if (!atomic_compare_exchange_strong_explicit(&s->state, &full,
                                                 slot_state(t, SLOT_BUSY, id),
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        return 0;
    /* relaxed, and a plain store rather than a CAS: tail is only where the
     * next take starts its walk.  Two claimers may store out of order and
     * move it back a little; the walk steps over what lies between. */
    if (atomic_load_explicit(&r->tail, memory_order_relaxed) <= t)
        atomic_store_explicit(&r->tail, t + 1, memory_order_relaxed);
    uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
    /* release: whoever reads *claim after our death sees the value, and
     * the store is ordered before the slot's release below, so there is no
     * instant when the value is in neither place. */
    atomic_store_explicit(claim, v, memory_order_release);
    /* release: our read of the value happens before the producer
     * (acquiring EMPTY(t + cap)) overwrites it. */
    atomic_store_explicit(&s->state, slot_state(t + r->capacity, SLOT_EMPTY, 0),
                          memory_order_release);
    *value = v;
    return 1;
}

int shm_jobring_take(struct shm_jobring *r, uint16_t id,
                     _Atomic uint64_t *claim, uint64_t *value)
{
    if (id == 0 || claim == NULL)
        return -1;
    /* relaxed: where to start walking; the slot states decide. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        uint64_t st = walk(r, &t);
        if (st != slot_state(t, SLOT_FULL, 0))
            return -1;
        if (claim_slot(r, &r->slots[t & r->mask], t, id, claim, value))
            return 0;
        /* Lost the race for t: the walk goes on from it. */
    }
}

/* True when a take might find a value now. */
static int looks_ready(struct shm_jobring *r)
{
    /* relaxed: a hint for the spin; take() re-reads everything. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t st = walk(r, &t);
    return st == slot_state(t, SLOT_FULL, 0);
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
    if (shm_jobring_take(r, id, claim, value) == 0)
        return 0;   /* the busy case: no clock read, no syscall */
    int64_t deadline = shm_deadline_ns(timeout_ms);
    for (;;) {
        if (stopped(r, gen) || expired(deadline))
            return -1;
        if (!spin_for_value(r, deadline)) {
            struct shm_evc_ticket e = shm_evc_prepare(&r->ready, r->sleeping, id);
            /* The re-check after prepare: a push that this take misses is
             * one whose notify sees us counted (eventcount.h, fact 1), and
             * then wakes a consumer or finds every counted one, us
             * included, already released to go round (facts 2, 3). */
            int got = shm_jobring_take(r, id, claim, value) == 0;
            if (!got && !stopped(r, gen))
                shm_evc_wait_until(&r->ready, e, deadline);
            shm_evc_finish(&r->ready, r->sleeping, id);
            if (got)
                return 0;
        }
        if (shm_jobring_take(r, id, claim, value) == 0)
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
    shm_evc_wake_all(&r->ready);
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
    /* walk() only reads; it takes a non-const ring because take shares it. */
    struct shm_jobring *w = (struct shm_jobring *)r;
    /* relaxed: a statistic, and the loads are not a snapshot (hence the
     * clamping).  The walk skips what claimers took but did not yet (or,
     * racing, never) move tail past, so claimed values do not count. */
    uint64_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    walk(w, &t);
    uint64_t h = atomic_load_explicit(&w->head, memory_order_relaxed);
    if (h <= t)
        return 0;
    return h - t > r->capacity ? r->capacity : (uint32_t)(h - t);
}

uint32_t shm_jobring_capacity(const struct shm_jobring *r)
{
    return r->capacity;
}
