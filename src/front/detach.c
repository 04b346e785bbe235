/* detach.c — the store of detached jobs: their handles, the map from
 * handle to record, admission, the TTL of finished jobs and the mirror's
 * hooks.  A job's own events are detach_events.c; detach.h tells the
 * rules. */
#include "front/detach.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/timeval.h"
#include "clock.h"
#include "front/detach_parts.h"

#define FIRST_BUCKETS 64

static void expire_cb(evutil_socket_t fd, short what, void *arg);

struct detach_store *detach_new(struct event_base *base, struct dispatch *d,
                                const struct detach_params *prm)
{
    struct detach_store *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->bucket = calloc(FIRST_BUCKETS, sizeof *ds->bucket);
    if (!ds->bucket) {
        free(ds);
        return NULL;
    }
    ds->nbucket = FIRST_BUCKETS;
    ds->base = base;
    ds->d = d;
    ds->prm = *prm;
    evtimer_assign(&ds->expire, base, expire_cb, ds);
    return ds;
}

static void free_job(struct detach_job *dj)
{
    detach_drop_kept(dj);
    if (dj->final_owned)
        free(dj->final);
    free(dj);
}

void detach_free(struct detach_store *ds)
{
    if (!ds)
        return;
    evtimer_del(&ds->expire);
    for (size_t i = 0; i < ds->nbucket; i++) {
        struct detach_job *dj = ds->bucket[i];
        while (dj) {
            struct detach_job *next = dj->hnext;
            free_job(dj);
            dj = next;
        }
    }
    explicit_bzero(ds->pool, sizeof ds->pool);
    free(ds->bucket);
    jout_free(&ds->ev);
    free(ds);
}

void detach_set_mirror(struct detach_store *ds, const struct detach_mirror *m)
{
    ds->has_mirror = m != NULL;
    if (m)
        ds->m = *m;
}

int detach_has_mirror(const struct detach_store *ds) { return ds->has_mirror; }

size_t detach_buffer_size(const struct detach_store *ds) { return ds->prm.buffer; }

const struct detach_stats *detach_stats(const struct detach_store *ds) { return &ds->st; }

const char *detach_handle(const struct detach_job *dj) { return dj->hex; }

/* ---- handles ------------------------------------------------------------- */

/* The key's first bytes are random already: they are the hash. */
static size_t bucket_of(const struct detach_store *ds, const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return (size_t)h & (ds->nbucket - 1);
}

/* In time that does not depend on where two keys differ: a handle is a
 * capability, and a lookup's timing must not tell a client how much of a
 * guess was right. */
static int key_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < DETACH_KEY_LEN; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Exactly DETACH_HANDLE_LEN lower-case hex digits, as handles are made. */
static int parse_handle(const char *h, size_t len, uint8_t *key)
{
    if (len != DETACH_HANDLE_LEN)
        return -1;
    for (size_t i = 0; i < DETACH_KEY_LEN; i++) {
        int hi = hex_digit(h[2 * i]), lo = hex_digit(h[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int detach_handle_valid(const char *handle, size_t len)
{
    uint8_t key[DETACH_KEY_LEN];
    return parse_handle(handle, len, key) == 0;
}

static struct detach_job *lookup(struct detach_store *ds, const uint8_t *key)
{
    for (struct detach_job *dj = ds->bucket[bucket_of(ds, key)]; dj; dj = dj->hnext)
        if (key_equal(dj->key, key))
            return dj;
    return NULL;
}

struct detach_job *detach_find(struct detach_store *ds, const char *handle, size_t len)
{
    uint8_t key[DETACH_KEY_LEN];
    return parse_handle(handle, len, key) == 0 ? lookup(ds, key) : NULL;
}

/* 128 bits from the kernel's CSPRNG, DETACH_RAND_POOL bytes per system
 * call.  Never blocks: before the kernel's pool is ready it fails, and the
 * submit is answered busy. */
static int random_key(struct detach_store *ds, uint8_t *key)
{
    if (ds->pool_left < DETACH_KEY_LEN) {
        if (getrandom(ds->pool, sizeof ds->pool, GRND_NONBLOCK) != (ssize_t)sizeof ds->pool)
            return -1;
        ds->pool_left = sizeof ds->pool;
    }
    uint8_t *p = ds->pool + sizeof ds->pool - ds->pool_left;
    memcpy(key, p, DETACH_KEY_LEN);
    explicit_bzero(p, DETACH_KEY_LEN);   /* a handle given out lives only in its record */
    ds->pool_left -= DETACH_KEY_LEN;
    return 0;
}

static void grow_map(struct detach_store *ds)
{
    size_t n = ds->nbucket * 2;
    struct detach_job **b = calloc(n, sizeof *b);
    if (!b)
        return;   /* longer chains, still correct */
    struct detach_job **old = ds->bucket;
    size_t oldn = ds->nbucket;
    ds->bucket = b;
    ds->nbucket = n;
    for (size_t i = 0; i < oldn; i++) {
        while (old[i]) {
            struct detach_job *dj = old[i];
            old[i] = dj->hnext;
            size_t k = bucket_of(ds, dj->key);
            dj->hnext = b[k];
            b[k] = dj;
        }
    }
    free(old);
}

static void map_remove(struct detach_store *ds, struct detach_job *dj)
{
    for (struct detach_job **pp = &ds->bucket[bucket_of(ds, dj->key)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == dj) {
            *pp = dj->hnext;
            return;
        }
    }
}

/* ---- admission ----------------------------------------------------------- */

static struct detach_job *new_job(struct detach_store *ds)
{
    struct detach_job *dj = calloc(1, sizeof *dj);
    if (!dj)
        return NULL;
    /* A collision of 128 random bits means the generator is broken. */
    if (random_key(ds, dj->key) < 0 || lookup(ds, dj->key)) {
        free(dj);
        return NULL;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < DETACH_KEY_LEN; i++) {
        dj->hex[2 * i] = hex[dj->key[i] >> 4];
        dj->hex[2 * i + 1] = hex[dj->key[i] & 15];
    }
    dj->ds = ds;
    dj->running = 1;
    return dj;
}

enum job_error detach_submit(struct detach_store *ds, const struct job_request *req,
                             detach_follow_fn *fn, void *arg, struct detach_job **out,
                             const char **why)
{
    *why = NULL;
    if (ds->st.held >= ds->prm.max_jobs) {
        *why = "too many detached jobs held (max-detached)";
        return JE_BUSY;
    }
    /* Its result could not be shared: refuse rather than keep it where
     * other instances cannot see it. */
    if (ds->has_mirror && !ds->m.up(ds->m.arg)) {
        *why = "the result store is not reachable";
        return JE_BUSY;
    }
    struct detach_job *dj = new_job(ds);
    if (!dj) {
        *why = "no handle could be made (out of memory or randomness)";
        return JE_BUSY;
    }
    struct job_request r = *req;
    r.sink = &detach_sink;
    r.cookie = dj;
    enum job_error err = dispatch_submit(ds->d, &r, &dj->job);
    if (err != JE_NONE) {
        free(dj);
        return err;
    }
    if (ds->st.held >= ds->nbucket)
        grow_map(ds);
    size_t k = bucket_of(ds, dj->key);
    dj->hnext = ds->bucket[k];
    ds->bucket[k] = dj;
    ds->st.held++;
    ds->st.running++;
    ds->st.accepted_total++;
    dj->follow = fn;
    dj->farg = arg;
    if (ds->has_mirror)
        ds->m.begin(ds->m.arg, dj->hex);
    *out = dj;
    return JE_NONE;
}

/* ---- cancel ------------------------------------------------------------------ */

void detach_cancel(struct detach_job *dj)
{
    if (dj->running)
        dispatch_cancel(dj->ds->d, dj->job);   /* answers through detach_sink at once */
}

void detach_cancel_by_handle(struct detach_store *ds, const char *handle)
{
    struct detach_job *dj = detach_find(ds, handle, strlen(handle));
    if (dj)
        detach_cancel(dj);
}

void detach_client_cancel(struct detach_store *ds, const char *handle, size_t len)
{
    uint8_t key[DETACH_KEY_LEN];
    if (parse_handle(handle, len, key) < 0)
        return;
    struct detach_job *dj = lookup(ds, key);
    if (dj) {
        detach_cancel(dj);
    } else if (ds->has_mirror) {
        char text[DETACH_HANDLE_LEN + 1];
        memcpy(text, handle, DETACH_HANDLE_LEN);
        text[DETACH_HANDLE_LEN] = 0;
        ds->m.cancel(ds->m.arg, text);
    }
}

/* ---- following a job held elsewhere -------------------------------------------- */

void *detach_follow_remote(struct detach_store *ds, const char *handle, uint64_t from_seq,
                           void (*on_event)(void *arg, const char *json, size_t len, int final),
                           void *arg)
{
    uint8_t key[DETACH_KEY_LEN];
    if (!ds->has_mirror || parse_handle(handle, strlen(handle), key) < 0)
        return NULL;
    return ds->m.follow(ds->m.arg, handle, from_seq, on_event, arg);
}

void detach_unfollow_remote(struct detach_store *ds, void *follow)
{
    if (ds->has_mirror && follow)
        ds->m.unfollow(follow);
}

/* ---- the TTL of finished jobs ---------------------------------------------------- */

static int64_t ttl_ns(const struct detach_store *ds)
{
    return (int64_t)ds->prm.ttl_s * 1000000000;
}

/* One timer for every finished job: they end in the order they finished,
 * since all share one TTL (a reload changes it for all at once). */
static void arm_expiry(struct detach_store *ds)
{
    if (!ds->fifo_head) {
        evtimer_del(&ds->expire);
        return;
    }
    int64_t left = ds->fifo_head->finished_ns + ttl_ns(ds) - shm_now_ns();
    struct timeval tv = tv_from_ms(left > 0 ? (left + 999999) / 1000000 : 0);
    evtimer_add(&ds->expire, &tv);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct detach_store *ds = arg;
    int64_t now = shm_now_ns();
    while (ds->fifo_head && ds->fifo_head->finished_ns + ttl_ns(ds) <= now) {
        struct detach_job *dj = ds->fifo_head;
        ds->fifo_head = dj->fnext;
        if (!ds->fifo_head)
            ds->fifo_tail = NULL;
        map_remove(ds, dj);
        ds->st.held--;
        ds->st.finished_kept--;
        ds->st.expired_total++;
        free_job(dj);
    }
    arm_expiry(ds);
}

void detach_finished(struct detach_job *dj)
{
    struct detach_store *ds = dj->ds;
    dj->finished_ns = shm_now_ns();
    dj->fnext = NULL;
    if (ds->fifo_tail)
        ds->fifo_tail->fnext = dj;
    else
        ds->fifo_head = dj;
    ds->fifo_tail = dj;
    ds->st.running--;
    ds->st.finished_kept++;
    if (ds->fifo_head == dj)
        arm_expiry(ds);
}

void detach_set_params(struct detach_store *ds, const struct detach_params *prm)
{
    int ttl_changed = prm->ttl_s != ds->prm.ttl_s;
    ds->prm = *prm;
    if (ttl_changed)
        arm_expiry(ds);
}
