/* clock.h — the one clock of both programs: CLOCK_MONOTONIC in nanoseconds.
 *
 * It lives in shm/ because the rings need it and shm/ depends on nothing
 * above it; the front, the workers and the client read time through it too,
 * so deadlines written into shared memory by one process are compared with
 * the same clock by another. */
#ifndef WSJOBD_SHM_CLOCK_H
#define WSJOBD_SHM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t shm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
