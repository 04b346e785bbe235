/* eventcount.h — sleep until a lock-free condition holds, without making the
 * side that changes the condition pay a syscall when nobody sleeps.
 *
 * Private to shm/.  The rings use it three ways: consumers of a jobring wait
 * for a value, producers of a replyring and of a bytering wait for space.
 *
 * Waiter:                                  Notifier:
 *   t = shm_evc_prepare(ev, flags, id);      make the condition true (S);
 *   if (!condition)          (re-check)      shm_evc_notify(ev, n);
 *       shm_evc_wait_until(ev, t, dl);
 *   shm_evc_finish(ev, flags, id);
 *   ...look at the condition again, and prepare again before any new sleep
 *
 * What the code does.  `epoch` is the futex word.  `count` holds two
 * numbers: waiters (between prepare and finish) and wakes (credited by a
 * wake, not yet taken back by a finish).
 *   prepare  loads the epoch into the ticket, then adds a waiter (RMW P),
 *            then, in the asymmetric scheme, calls membarrier.
 *   wait     futex_wait on the ticket: the kernel refuses to sleep once the
 *            epoch differs from it, and the sleep ends at the deadline.
 *   finish   removes its waiter, and one wake if any is credited (CAS).
 *   notify   reads the count (N); only while waiters > wakes does it call
 *            wake, so with nobody unwoken it makes no syscall.
 *   wake     credits k = min(n, waiters - wakes) wakes (CAS W), bumps the
 *            epoch (RMW B), then futex_wakes k sleepers (all, for wake_all,
 *            which credits every waiter).
 * A finish removes a wake only with its waiter, and W never credits more
 * than waiters, so wakes <= waiters: notify skips only at waiters == wakes.
 * The wakes are not tied to waiters: any finish may take back any wake.
 *
 * What is guaranteed.  After S and its notify, if any waiter is counted at
 * N or later, one of them looks at the condition after S (or reaches its
 * deadline first): no waiter is left asleep with S missed and nobody sent
 * to look.  A waiter that looks may find the condition false again
 * (another consumer took the value); it prepares again.  Three facts:
 *
 * (1) Dekker.  For a prepare's P and a notify's N: N reads P (or a later
 *     value of count), or the re-check after P sees S.  That needs a
 *     store-load barrier on each side; the notifier is the hot side (a push
 *     per job), so it should not pay one.  Two schemes, chosen at init:
 *
 *     asymmetric  N is a plain load (a compiler barrier keeps it after S in
 *                 the program).  After P the waiter calls membarrier
 *                 (GLOBAL_EXPEDITED), which runs a full barrier on every
 *                 CPU running a registered process: either S is visible to
 *                 the re-check that follows, or N comes after the barrier
 *                 and reads P.  Processes register in shm_evc_init, before
 *                 fork (fork inherits it).  Should the call fail, the
 *                 waiter sleeps in 1 ms slices.
 *
 *     symmetric   When registering is refused (old kernel, seccomp), or
 *                 SHM_BARRIER=symmetric is set at init (see eventcount.c):
 *                 N is an acq_rel RMW adding 0 and P an acq_rel RMW.  RMWs
 *                 on one word are totally ordered: if N is first, P reads
 *                 from N's release sequence, so S happens before the
 *                 re-check; if P is first, N reads it.
 *
 * (2) Ticket before count.  A waiter counted at a wake's W read its ticket
 *     before that wake's B (argued at the load, in prepare).  So after B
 *     none of them can start to sleep on its ticket (the kernel orders a
 *     futex_wait against a futex_wake called after B: either the wait's
 *     comparison sees B, or the sleeper is queued before the wake looks),
 *     and of those already asleep futex_wake wakes k, or all.  Hence, at
 *     all times, wakes <= the counted waiters that will not sleep again
 *     before they finish ("released"): W adds k, and then either every
 *     waiter counted at W is released or k more sleepers are; a finish
 *     removes at most one wake, with its waiter.  Were the ticket read
 *     after the count, a waiter counted at W could read B's epoch and sleep
 *     on it, unreleased, with a wake credited: every later notify would
 *     see waiters == wakes and wake nobody until its deadline.
 *
 * (3) Going round.  A waiter counted at N (its P before N in count's order,
 *     its finish after) that sleeps again must first finish and prepare
 *     again; that prepare comes after its finish, so after N, so N does not
 *     read it and, by (1), its re-check sees S.
 *
 * The guarantee from these.  If N saw waiters == wakes, every waiter
 * counted at N is released (2) and goes round (3).  If N saw waiters >
 * wakes, notify calls wake, whose W comes after N: with k >= 1 it releases
 * every waiter counted at W or wakes k sleepers; with k == 0 waiters ==
 * wakes at W and every waiter counted at W is already released (2).  Those
 * waiters go round (3), since W is after N.  Waiters counted after N see S
 * by (1).
 *
 * Limits.  A notifier that dies between W and B leaves wakes credited that
 * no bump backs: waiters may sleep to their deadlines until finishes take
 * those wakes back.  The epoch is 32 bits: a waiter held between its
 * ticket and its sleep while 2^32 bumps go by would sleep on a matching
 * epoch.  A waiter that reads its ticket and is then passed by a bump
 * meant for others goes round once for nothing.  Besides the atomics, only
 * the kernel's ordering of futex_wait against futex_wake is relied on.  No
 * C11 fences: ThreadSanitizer cannot follow them.
 *
 * A waiter that dies between prepare and finish would stay counted for
 * ever, so notifies would keep crediting it a wake and calling futex_wake
 * for nobody, each time a live waiter's finish took that wake back.  So
 * each waiter also raises its own byte in `flags` (indexed by its ring id),
 * and whoever recovers a dead id calls finish for it: the exchange on the
 * byte decides who takes the count back, so it is never taken back twice. */
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

/* Credits min(n, waiters - wakes) wakes; if that is not 0, bumps the epoch
 * and futex_wakes as many sleepers. */
void shm_evc_wake(struct shm_evc *ev, uint32_t n);

/* Credits every counted waiter a wake, bumps the epoch and futex_wakes
 * every sleeper: a waiter counted, or with its ticket read, does not sleep
 * on (shutdown). */
void shm_evc_wake_all(struct shm_evc *ev);

/* Forgets every waiter: the owner's reset after the only waiter died. */
void shm_evc_forget(struct shm_evc *ev);

/* Waiters between prepare and finish (tests and statistics). */
static inline uint32_t shm_evc_waiting(struct shm_evc *ev)
{
    return (uint32_t)atomic_load_explicit(&ev->count, memory_order_relaxed);
}

/* N in the comment above: 1 when waiters > wakes, some counted waiter has
 * no wake credited.  Call it after the store that makes the condition true
 * (S). */
static inline int shm_evc_unwoken(struct shm_evc *ev)
{
    uint64_t c;
    if (ev->asym) {
        /* Compiler barrier only: S-then-N is half of fact 1; the CPU's
         * store-load reordering is what the waiter's membarrier covers, but
         * the compiler must not hoist this load above S. */
        atomic_signal_fence(memory_order_seq_cst);
        /* acquire: a waiter seen counted published what it stored before
         * counting itself (bytering's want) with its release RMW. */
        c = atomic_load_explicit(&ev->count, memory_order_acquire);
    } else {
        /* acq_rel: release so that a prepare whose RMW reads from ours (or
         * from a later RMW, continuing our release sequence) has S happen
         * before its re-check (fact 1); acquire as above. */
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

#endif
