/* timeval.h — milliseconds as the struct timeval libevent's timers take. */
#ifndef WSJOBD_TIMEVAL_H
#define WSJOBD_TIMEVAL_H

#include <stdint.h>
#include <sys/time.h>

static inline struct timeval tv_from_ms(int64_t ms)
{
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

#endif
