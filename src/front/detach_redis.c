/* detach_redis.c — see detach_redis.h.  The mirror's hooks are thin: the
 * detach store and the result store agree on event texts (JSON without
 * "id") and on handles, so each hook is one call. */
#include "front/detach_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "front/detach.h"
#include "store/result_store.h"

#define INSTANCE_BYTES 16

struct detach_redis {
    struct result_store *rs;
    struct detach_store *ds;
    char url[256];
    char instance[INSTANCE_BYTES * 2 + 1];
};

static int m_up(void *arg) { return result_store_up(((struct detach_redis *)arg)->rs); }

static const char *m_state(void *arg)
{
    return result_store_state(((struct detach_redis *)arg)->rs);
}

static void m_begin(void *arg, const char *handle)
{
    result_store_job_begin(((struct detach_redis *)arg)->rs, handle);
}

static void m_event(void *arg, const char *handle, uint64_t seq, const char *json, size_t len,
                    uint64_t keep_bytes)
{
    result_store_job_event(((struct detach_redis *)arg)->rs, handle, seq, json, len, keep_bytes);
}

static void m_final(void *arg, const char *handle, const char *json, size_t len)
{
    result_store_job_final(((struct detach_redis *)arg)->rs, handle, json, len);
}

static void m_cancel(void *arg, const char *handle)
{
    result_store_job_cancel(((struct detach_redis *)arg)->rs, handle);
}

static void *m_follow(void *arg, const char *handle, uint64_t from_seq,
                      void (*on_event)(void *cb_arg, const char *json, size_t len, int final),
                      void *cb_arg)
{
    return result_store_follow(((struct detach_redis *)arg)->rs, handle, from_seq, on_event,
                               cb_arg);
}

static void m_unfollow(void *follow) { result_store_unfollow(follow); }

/* Every instance hears every cancel; one that holds no such job ignores it
 * (detach_cancel_by_handle does). */
static void on_remote_cancel(void *arg, const char *handle)
{
    detach_cancel_by_handle(((struct detach_redis *)arg)->ds, handle);
}

/* Two daemons must never share an id: a follower tells a dead owner by
 * its heartbeat key, and a shared key would keep a dead one alive. */
static int make_instance(char *hex)
{
    unsigned char b[INSTANCE_BYTES];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    return 0;
}

struct detach_redis *detach_redis_start(struct event_base *base, struct detach_store *ds,
                                        const char *url, unsigned ttl_s,
                                        char *err, size_t errlen)
{
    struct detach_redis *dr = calloc(1, sizeof *dr);
    if (!dr) {
        snprintf(err, errlen, "--result-store: out of memory");
        return NULL;
    }
    dr->ds = ds;
    snprintf(dr->url, sizeof dr->url, "%s", url);
    if (make_instance(dr->instance) < 0) {
        snprintf(err, errlen, "--result-store: no randomness for the instance id");
        free(dr);
        return NULL;
    }
    dr->rs = result_store_new(base, url, dr->instance, ttl_s, err, errlen);
    if (!dr->rs) {
        free(dr);
        return NULL;
    }
    result_store_on_cancel(dr->rs, on_remote_cancel, dr);
    const struct detach_mirror m = {
        .arg = dr, .up = m_up, .state = m_state, .begin = m_begin, .event = m_event,
        .final = m_final, .cancel = m_cancel, .follow = m_follow, .unfollow = m_unfollow,
    };
    detach_set_mirror(ds, &m);
    return dr;
}

int detach_redis_pending(const struct detach_redis *dr)
{
    return dr && result_store_pending(dr->rs);
}

void detach_redis_info(const struct detach_redis *dr, struct detach_redis_info *out)
{
    struct rs_stats st;
    result_store_stats(dr->rs, &st);
    *out = (struct detach_redis_info){
        .url = dr->url, .instance = dr->instance, .state = st.state, .up = st.up,
        .writes_dropped_total = st.writes_dropped_total,
        .follows_active = st.follows_active, .reconnects_total = st.reconnects_total,
    };
}

void detach_redis_free(struct detach_redis *dr)
{
    if (!dr)
        return;
    result_store_free(dr->rs);
    detach_set_mirror(dr->ds, NULL);
    free(dr);
}
