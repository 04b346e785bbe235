/* eventcount.h — sleep until a lock-free condition holds, without making the
 * side that changes the condition pay a syscall when nobody sleeps.
 *
 * Private to shm/.  The rings use it three ways: consumers of a jobring wait
 * for a value, producers of a replyring and of a bytering wait for space.
 *
 * Waiter:                               Notifier:
 *   e = shm_evc_prepare(ev, flags, id);   make the condition true (a store);
 *   if (!condition)                       shm_evc_notify(ev, n);
 *       shm_evc_wait_until(ev, e, dl);
 *   shm_evc_finish(ev, flags, id);
 *
 * No lost wake-up: prepare is "waiters++; seq_cst fence; read epoch", notify
 * is "seq_cst fence; read waiters".  The two fences are ordered one way or
 * the other in the single total order of seq_cst operations.  If the
 * notifier's fence comes first, the waiter's re-check of the condition (after
 * its own fence) sees the notifier's store.  If the waiter's fence comes
 * first, the notifier reads waiters >= 1 and bumps the epoch; the waiter's
 * futex_wait then either finds the epoch already changed (the kernel compares
 * it under its bucket lock) or is queued before the wake and is woken.
 *
 * A waiter that dies between prepare and finish would leave waiters one too
 * high for ever, costing every later notify a futex_wake syscall.  So each
 * waiter also raises its own byte in `flags` (indexed by its ring id), and
 * whoever recovers a dead id calls finish for it: the exchange on the byte
 * decides who takes the count back, so it is never taken back twice. */
#ifndef WSJOBD_EVENTCOUNT_H
#define WSJOBD_EVENTCOUNT_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "shm.h"

#define SHM_EVC_IDS 65536u   /* one flag byte per possible 16-bit id */

struct shm_evc {
    _Atomic uint32_t epoch;   /* futex word; bumped by every wake */
    _Atomic uint32_t waiters; /* callers between prepare and finish */
};

/* Returns the epoch to pass to shm_evc_wait_until.  flags may be NULL when
 * the ring has a single waiter whose death is handled by a reset. */
uint32_t shm_evc_prepare(struct shm_evc *ev, _Atomic uint8_t *flags, uint16_t id);

/* Sleeps while the epoch is still `epoch`, until deadline_ns
 * (CLOCK_MONOTONIC; < 0 forever).  1 when the deadline has passed, else 0
 * (woken, epoch changed, or signal: re-check either way). */
int shm_evc_wait_until(struct shm_evc *ev, uint32_t epoch, int64_t deadline_ns);

void shm_evc_finish(struct shm_evc *ev, _Atomic uint8_t *flags, uint16_t id);

/* Bumps the epoch and wakes up to count sleepers, unconditionally. */
void shm_evc_wake(struct shm_evc *ev, int count);

/* Called after the store that makes the condition true.  The fast path is a
 * fence and a load of a line that stays shared while nobody sleeps. */
static inline void shm_evc_notify(struct shm_evc *ev, int count)
{
    /* seq_cst fence: the notifier's half of the Dekker pair described at
     * the top; without it the load of waiters could be satisfied before the
     * condition store is visible, and both sides would miss each other. */
    atomic_thread_fence(memory_order_seq_cst);
    /* relaxed: the fence above already orders this load. */
    if (atomic_load_explicit(&ev->waiters, memory_order_relaxed) != 0)
        shm_evc_wake(ev, count);
}

/* ---- time and spinning helpers shared by the rings ------------------- */

static inline int64_t shm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

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
