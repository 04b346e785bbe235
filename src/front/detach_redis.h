/* detach_redis.h — detached jobs mirrored to Redis (--result-store): the
 * result store (store/result_store.h) plugged into the detach store as its
 * mirror (front/detach.h).  This pair of files is the only place that
 * knows both. */
#ifndef WSJOBD_DETACH_REDIS_H
#define WSJOBD_DETACH_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct detach_store;
struct detach_redis;

/* What /stats and /metrics show of it. */
struct detach_redis_info {
    const char *url;               /* as configured: the URL takes no password */
    const char *instance;          /* this daemon's id in the store */
    const char *state;             /* "up", or why it is down */
    int         up;
    uint64_t    writes_dropped_total;
    uint64_t    follows_active;
    uint64_t    reconnects_total;
};

/* Makes this daemon's instance id (128 random bits, hex), starts the store
 * (connecting in the background) and sets it as ds's mirror.  NULL with a
 * message in err. */
struct detach_redis *detach_redis_start(struct event_base *base, struct detach_store *ds,
                                        const char *url, unsigned ttl_s,
                                        char *err, size_t errlen);
/* Writes sent and not yet answered: the exit waits a moment for them. */
int  detach_redis_pending(const struct detach_redis *dr);
void detach_redis_info(const struct detach_redis *dr, struct detach_redis_info *out);
/* Before detach_free: follows still running end (shutting_down), and the
 * detach store is left without a mirror. */
void detach_redis_free(struct detach_redis *dr);

#endif
