/* eventcount.h — sleep until a lock-free condition holds, without making the
 * side that changes the condition pay a syscall when nobody sleeps.
 *
 * Private to shm/.  The rings use it three ways: consumers of a jobring wait
 * for a value, producers of a replyring and of a bytering wait for space.
 *
 * Waiter:                                  Notifier:
 *   t = shm_evc_prepare(ev, flags, id);      make the condition true (a store);
 *   if (!condition)                          shm_evc_notify(ev, n);
 *       shm_evc_wait_until(ev, t, dl);
 *   shm_evc_finish(ev, flags, id);
 *   ...and look at the condition again
 *
 * The count word holds two numbers: waiters (between prepare and finish)
 * and wakes sent to them that no waiter has yet taken back in finish.  A
 * notify wakes only while waiters > wakes: a waiter already woken (but not
 * yet running) needs no second futex_wake.  That is safe because a woken
 * waiter looks at the condition again after finish, before it can sleep.
 * Every finish takes one wake back if there is one, so wakes <= waiters.
 *
 * No lost wake-up needs a store-load barrier on each side: the waiter's
 * "count itself ... read the condition" against the notifier's "write the
 * condition ... read the count" (Dekker).  The notifier is the hot side (a
 * push per job), so it should not pay one.  Two ways, chosen at init:
 *
 *  asymmetric  The notifier does a plain load of the count after its store
 *              (a compiler barrier keeps the order in the program).  The
 *              waiter, after counting itself, calls membarrier
 *              (GLOBAL_EXPEDITED), which runs a full barrier on every CPU
 *              that is running a registered process: either the notifier's
 *              store is visible to the re-check that follows, or its load
 *              comes after the barrier and sees the waiter.  Processes
 *              register in shm_evc_init, before fork (fork inherits it).
 *
 *  symmetric   When registering is refused (old kernel, seccomp), or
 *              SHM_BARRIER=symmetric is set at init (see eventcount.c): both
 *              sides read the count with an acq_rel RMW, prepare adding 1
 *              and notify adding 0.  RMWs on one word are totally ordered:
 *              if notify's comes first, prepare's reads from it, so the
 *              condition store happens before the waiter's re-check; if
 *              prepare's comes first, notify sees the waiter.
 *
 * Either way a waiter that sleeps on an epoch older than the notifier's
 * bump finds it changed (the kernel compares it under its bucket lock) or is
 * queued before the wake and is woken.  No C11 fences: ThreadSanitizer
 * cannot follow them.
 *
 * A waiter that dies between prepare and finish would leave itself counted
 * for ever, costing every later notify a futex_wake syscall.  So each
 * waiter also raises its own byte in `flags` (indexed by its ring id), and
 * whoever recovers a dead id calls finish for it: the exchange on the byte
 * decides who takes the count back, so it is never taken back twice. */
#ifndef WSJOBD_EVENTCOUNT_H
#define WSJOBD_EVENTCOUNT_H

#include <stdatomic.h>
#include <stdint.h>
#include "clock.h"
#include "shm.h"

#define SHM_EVC_IDS 65536u   /* one flag byte per possible 16-bit id */

#define SHM_EVC_WAITER UINT64_C(1)          /* low half: waiters */
#define SHM_EVC_WOKEN  (UINT64_C(1) << 32)  /* high half: wakes not taken back */

struct shm_evc {
    _Atomic uint32_t epoch;   /* futex word; bumped by every wake */
    uint32_t asym;            /* 1: asymmetric barriers (see above); set by
                                 init, before fork, read-only after */
    _Atomic uint64_t count;   /* waiters | wakes << 32 */
};

/* What a waiter needs to sleep: the epoch it saw, and whether it must poll
 * (its barrier call failed, so a wake-up may be missed: sleep in short
 * slices). */
struct shm_evc_ticket {
    uint32_t epoch;
    int poll;
};

/* Before fork. */
void shm_evc_init(struct shm_evc *ev);

/* flags may be NULL when the ring has a single waiter whose death is
 * handled by a reset. */
struct shm_evc_ticket shm_evc_prepare(struct shm_evc *ev, _Atomic uint8_t *flags,
                                      uint16_t id);

/* Sleeps while the epoch is still the ticket's, until deadline_ns
 * (CLOCK_MONOTONIC; < 0 forever).  1 when the deadline has passed, else 0
 * (woken, epoch changed, or signal: re-check either way). */
int shm_evc_wait_until(struct shm_evc *ev, struct shm_evc_ticket t, int64_t deadline_ns);

void shm_evc_finish(struct shm_evc *ev, _Atomic uint8_t *flags, uint16_t id);

/* Wakes up to n of the waiters not yet woken (bumping the epoch), if any. */
void shm_evc_wake(struct shm_evc *ev, uint32_t n);

/* Wakes every waiter, counted or about to sleep: shutdown. */
void shm_evc_wake_all(struct shm_evc *ev);

/* Forgets every waiter: the owner's reset after the only waiter died. */
void shm_evc_forget(struct shm_evc *ev);

/* Waiters between prepare and finish (tests and statistics). */
static inline uint32_t shm_evc_waiting(struct shm_evc *ev)
{
    return (uint32_t)atomic_load_explicit(&ev->count, memory_order_relaxed);
}

/* 1 when some waiter has not been woken yet.  Call it after the store that
 * makes the condition true. */
static inline int shm_evc_unwoken(struct shm_evc *ev)
{
    uint64_t c;
    if (ev->asym) {
        /* Compiler barrier only: the CPU's store-load reordering is what
         * the waiter's membarrier covers, but the compiler must not hoist
         * this load above the condition store. */
        atomic_signal_fence(memory_order_seq_cst);
        /* acquire: a waiter seen counted published what it stored before
         * counting itself (bytering's want) with its release RMW. */
        c = atomic_load_explicit(&ev->count, memory_order_acquire);
    } else {
        /* acq_rel: release so that a prepare reading from us sees the
         * condition store before it; acquire as above. */
        c = atomic_fetch_add_explicit(&ev->count, 0, memory_order_acq_rel);
    }
    return (uint32_t)c > (uint32_t)(c >> 32);
}

/* Called after the store that makes the condition true. */
static inline void shm_evc_notify(struct shm_evc *ev, uint32_t n)
{
    if (shm_evc_unwoken(ev))
        shm_evc_wake(ev, n);
}

/* ---- time and spinning, shared by the rings ---------------------------- */

/* timeout_ms < 0 means no deadline (returned as -1). */
static inline int64_t shm_deadline_ns(int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    return shm_now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Tells the core this is a spin-wait (lets the sibling hyperthread run and
 * avoids the memory-order mis-speculation penalty on exit). */
static inline void shm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
