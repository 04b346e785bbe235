/* eventcount.c — the slow paths of eventcount.h: registering as a waiter,
 * sleeping on the epoch futex, and waking. */
#include "eventcount.h"

#include <limits.h>

uint32_t shm_evc_prepare(struct shm_evc *ev, _Atomic uint8_t *flags, uint16_t id)
{
    /* Count first, flag second: a waiter that dies between the two leaves
     * the count one high (harmless: one futex_wake per notify), whereas the
     * other order could let recovery take back a count never given, and a
     * count that is too low loses wake-ups. */
    atomic_fetch_add_explicit(&ev->waiters, 1, memory_order_relaxed);
    if (flags != NULL)
        atomic_store_explicit(&flags[id], 1, memory_order_relaxed);
    /* seq_cst fence: the waiter's half of the Dekker pair (see the header).
     * It orders the increment above before the condition re-check the
     * caller makes after we return. */
    atomic_thread_fence(memory_order_seq_cst);
    /* acquire: pairs with the release bump in shm_evc_wake, so a waiter
     * that reads the new epoch also sees the condition store that preceded
     * the bump, and will not sleep on an epoch that no wake will change. */
    return atomic_load_explicit(&ev->epoch, memory_order_acquire);
}

int shm_evc_wait_until(struct shm_evc *ev, uint32_t epoch, int64_t deadline_ns)
{
    int timeout_ms = -1;
    if (deadline_ns >= 0) {
        int64_t left = deadline_ns - shm_now_ns();
        if (left <= 0)
            return 1;
        /* Round up so a wait never ends just short of the deadline and spins
         * through zero-length sleeps. */
        int64_t ms = (left + 999999) / 1000000;
        timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
    }
    shm_futex_wait(&ev->epoch, epoch, timeout_ms);
    return deadline_ns >= 0 && shm_now_ns() >= deadline_ns;
}

void shm_evc_finish(struct shm_evc *ev, _Atomic uint8_t *flags, uint16_t id)
{
    /* relaxed throughout: a waiter that has stopped waiting does not care
     * whether a notifier still sees it counted (a spare wake is harmless). */
    if (flags != NULL &&
        atomic_exchange_explicit(&flags[id], 0, memory_order_relaxed) == 0)
        return;
    atomic_fetch_sub_explicit(&ev->waiters, 1, memory_order_relaxed);
}

void shm_evc_wake(struct shm_evc *ev, int count)
{
    /* release: a waiter that reads this epoch in prepare also sees the
     * condition store made before the notify. */
    atomic_fetch_add_explicit(&ev->epoch, 1, memory_order_release);
    shm_futex_wake(&ev->epoch, count);
}
