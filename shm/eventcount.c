/* eventcount.c — the slow paths of eventcount.h: choosing the barrier
 * scheme, registering as a waiter, sleeping on the epoch futex, waking. */
#include "eventcount.h"

#include <limits.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A waiter whose barrier failed re-checks this often. */
#define POLL_SLICE_MS 1

static long membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

/* Registers this process (and so every child forked after) for
 * MEMBARRIER_CMD_GLOBAL_EXPEDITED, once.  1 when that worked. */
static int asymmetric_barriers(void)
{
    static _Atomic int state;   /* 0 not tried, 1 registered, -1 refused */
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (s == 0) {
        s = membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0 ? 1 : -1;
        atomic_store_explicit(&state, s, memory_order_relaxed);
    }
    return s > 0;
}

/* SHM_BARRIER=symmetric in the environment keeps the symmetric scheme
 * even where membarrier works: for tests of that path, and for hosts where
 * an IPI per consumer going to sleep costs more than a locked add per push
 * (many consumers that sleep and wake at a high rate). */
static int symmetric_wanted(void)
{
    const char *v = getenv("SHM_BARRIER");
    return v != NULL && strcmp(v, "symmetric") == 0;
}

void shm_evc_init(struct shm_evc *ev)
{
    atomic_init(&ev->epoch, 0);
    atomic_init(&ev->count, 0);
    ev->asym = !symmetric_wanted() && asymmetric_barriers();
}

struct shm_evc_ticket shm_evc_prepare(struct shm_evc *ev, _Atomic uint8_t *flags,
                                      uint16_t id)
{
    struct shm_evc_ticket t = { 0, 0 };
    /* The ticket first, before we are counted: fact 2 in eventcount.h.
     * acquire: pairs with the release bump in bump_and_wake.  Were this to
     * read a bump B (or a later one: bumps are RMWs, so they continue B's
     * release sequence), the credit CAS sequenced before B would happen
     * before our count below, so it came before it in count's order and
     * did not count us.  So a wake credited while we are counted bumps the
     * epoch past our ticket, and a futex_wait on the ticket is refused. */
    t.epoch = atomic_load_explicit(&ev->epoch, memory_order_acquire);
    /* acq_rel.  Release: publishes what the caller stored before (bytering's
     * want) to a notifier that acquires the count.  Acquire: the waiter's
     * half of the symmetric pair (fact 1): if a notify's RMW came first, we
     * read from its release sequence (every write to count after init is
     * an RMW, forget aside), so its condition store happens before our
     * re-check. */
    atomic_fetch_add_explicit(&ev->count, SHM_EVC_WAITER, memory_order_acq_rel);
    /* Count first, flag second: a waiter that dies between the two stays
     * counted (it only costs futex_wakes that wake nobody), whereas the
     * other order could let recovery take back a count never given, and a
     * count that is too low loses wake-ups.  relaxed: read only by
     * recovery, after this process's death was seen through waitpid. */
    if (flags != NULL)
        atomic_store_explicit(&flags[id], 1, memory_order_relaxed);
    /* The waiter's half of the asymmetric pair (fact 1): after this, a
     * notifier either has its condition store visible to our re-check or
     * sees us counted.  Should it fail, sleep in slices rather than trust
     * it. */
    if (ev->asym && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0)
        t.poll = 1;
    return t;
}

int shm_evc_wait_until(struct shm_evc *ev, struct shm_evc_ticket t, int64_t deadline_ns)
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
    if (t.poll && (timeout_ms < 0 || timeout_ms > POLL_SLICE_MS))
        timeout_ms = POLL_SLICE_MS;
    shm_futex_wait(&ev->epoch, t.epoch, timeout_ms);
    return deadline_ns >= 0 && shm_now_ns() >= deadline_ns;
}

void shm_evc_finish(struct shm_evc *ev, _Atomic uint8_t *flags, uint16_t id)
{
    /* relaxed throughout: the finish only has to come after our own P in
     * count's order (it does: an RMW sequenced after it) and before our
     * next P (likewise), which is what fact 3 uses.  Being seen counted a
     * little longer costs a notifier at most a spare wake. */
    if (flags != NULL &&
        atomic_exchange_explicit(&flags[id], 0, memory_order_relaxed) == 0)
        return;
    /* Leave, and take back one wake if any is credited: ours, or one
     * meant for a waiter still on its way out, which will find none.  Fact
     * 2 holds either way: the waiters released minus us still number at
     * least the wakes minus one. */
    uint64_t c = atomic_load_explicit(&ev->count, memory_order_relaxed);
    for (;;) {
        uint64_t next = c - SHM_EVC_WAITER;
        if (c >> 32 != 0)
            next -= SHM_EVC_WOKEN;
        if (atomic_compare_exchange_weak_explicit(&ev->count, &c, next,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

/* Bumps the epoch and wakes n queued sleepers. */
static void bump_and_wake(struct shm_evc *ev, int n)
{
    /* B.  release: pairs with the acquire ticket load in prepare (fact 2):
     * a waiter whose ticket reads this bump, or a later one, is not counted
     * at our credit CAS, which is sequenced before this.  Also makes S (and
     * wake_gen, for jobring's wake_all) visible to such a waiter. */
    atomic_fetch_add_explicit(&ev->epoch, 1, memory_order_release);
    /* After B: a futex_wait on an older ticket that has not yet compared
     * is refused; of those already queued, n wake. */
    shm_futex_wake(&ev->epoch, n);
}

void shm_evc_wake(struct shm_evc *ev, uint32_t n)
{
    /* relaxed: the caller's N is the half of fact 1; here only the count's
     * order matters (W is an RMW, after N since it is sequenced after it),
     * and bump_and_wake's release carries what must be seen. */
    uint64_t c = atomic_load_explicit(&ev->count, memory_order_relaxed);
    uint32_t k;
    do {
        uint32_t unwoken = (uint32_t)c - (uint32_t)(c >> 32);
        k = unwoken < n ? unwoken : n;
        if (k == 0)
            return;   /* waiters == wakes: all released (fact 2) */
    } while (!atomic_compare_exchange_weak_explicit(&ev->count, &c,
                                                    c + k * SHM_EVC_WOKEN,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    bump_and_wake(ev, k > INT_MAX ? INT_MAX : (int)k);
}

void shm_evc_wake_all(struct shm_evc *ev)
{
    uint64_t c = atomic_load_explicit(&ev->count, memory_order_relaxed);
    /* relaxed: as in wake.  W credits every counted waiter a wake: all of
     * them are released by the bump and futex_wake(INT_MAX) below. */
    while (!atomic_compare_exchange_weak_explicit(&ev->count, &c,
                                                  (c & 0xffffffffu) * (SHM_EVC_WOKEN + 1),
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    bump_and_wake(ev, INT_MAX);
}

void shm_evc_forget(struct shm_evc *ev)
{
    atomic_store_explicit(&ev->count, 0, memory_order_relaxed);
}
