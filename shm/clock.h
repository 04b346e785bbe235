/* clock.h — the one clock of both programs: CLOCK_MONOTONIC in
 * nanoseconds; and the hint for the spin-waits that look at it.
 *
 * It lives in shm/ because the rings need it and shm/ depends on nothing
 * above it; the front, the workers and the client read time through it too,
 * so deadlines written into shared memory by one process are compared with
 * the same clock by another. */
#ifndef WSJOBD_SHM_CLOCK_H
#define WSJOBD_SHM_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static inline int64_t shm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
