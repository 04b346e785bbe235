/* detach.c — the store of detached jobs: admission, the submitter's
 * `accepted`, cancels, the TTL of finished jobs and the mirror's hooks.
 * Handles and the table they index are detach_handles.c, a job's own
 * events detach_events.c, following jobs held elsewhere detach_remote.c;
 * detach.h tells the rules. */
#include "front/detach.h"

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/timeval.h"
#include "front/detach_parts.h"
#include "front/job_events.h"

/* How long a submitter's `accepted` may wait for the job's first event,
 * to leave in the same write.  Sent alone it cost a write and a wake-up of
 * the client per job: one client with one echo job at a time did 18 000
 * detached jobs a second against 27 000 plain ones.  Nor may the wait be
 * short: a timer due before the scheduler's next tick makes every sleep of
 * the loop reprogram the timer hardware, dear in a virtual machine (1 ms:
 * 17 000 a second; 10 ms, the timer deleted once nothing waits: as many
 * as plain jobs). */
#define ACCEPT_DELAY_MS 10
/* Results end at most EXPIRE_SLACK_MS late, at most EXPIRE_BATCH per turn
 * of the loop: a timer due at each result's end fired every millisecond
 * under load, and freeing a whole second's results at once would stall
 * the loop. */
#define EXPIRE_SLACK_MS 100
#define EXPIRE_BATCH    4096
/* Spare records kept even when few are held: a burst's worth. */
#define SPARE_MIN       1024
/* Spare records that stayed unused a whole SPARE_DECAY_MS go back to
 * malloc; until then the next burst reuses them.  Freed as soon as fewer
 * were held, a burst's records had glibc give the heap's top back to the
 * kernel, and the next burst's records and output buffers took a page
 * fault every 30 detached jobs (`perf stat -e page-faults`, echo 50 x 16,
 * bursts of 600 000 jobs 1.3 s apart; plain jobs: none).  jemalloc lets
 * its unused pages decay over 10 s too. */
#define SPARE_DECAY_MS  10000

static void expire_cb(evutil_socket_t fd, short what, void *arg);
static void accept_cb(evutil_socket_t fd, short what, void *arg);
static void decay_cb(evutil_socket_t fd, short what, void *arg);

struct detach_store *detach_new(struct event_base *base, struct dispatch *d,
                                const struct detach_params *prm)
{
    struct detach_store *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->base = base;
    ds->d = d;
    ds->prm = *prm;
    evtimer_assign(&ds->expire, base, expire_cb, ds);
    evtimer_assign(&ds->accept_ev, base, accept_cb, ds);
    evtimer_assign(&ds->decay, base, decay_cb, ds);
    detach_remote_init(ds);
    return ds;
}

static void drop_contents(struct detach_job *dj)
{
    detach_drop_kept(dj);
    if (dj->final_owned)
        free(dj->final);
}

static void free_job(struct detach_job *dj)
{
    drop_contents(dj);
    free(dj);
}

static void give_back_record(struct detach_store *ds, struct detach_job *dj)
{
    dj->fnext = ds->spare;
    ds->spare = dj;
    ds->nspare++;
}

static void trim_spares(struct detach_store *ds, uint64_t keep)
{
    while (ds->nspare > keep) {
        struct detach_job *dj = ds->spare;
        ds->spare = dj->fnext;
        ds->nspare--;
        free(dj);
    }
}

/* Runs only while there are spares past SPARE_MIN: an idle daemon wakes
 * for it at most twice after its last result expired. */
static void arm_decay(struct detach_store *ds)
{
    if (ds->nspare <= SPARE_MIN || evtimer_pending(&ds->decay, NULL))
        return;
    ds->spare_low = ds->nspare;
    struct timeval tv = tv_from_ms(SPARE_DECAY_MS);
    evtimer_add(&ds->decay, &tv);
}

/* The spares no job took since the last decay go (but SPARE_MIN). */
static void decay_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct detach_store *ds = arg;
    uint64_t unused = ds->spare_low > SPARE_MIN ? ds->spare_low - SPARE_MIN : 0;
    trim_spares(ds, ds->nspare - unused);
    arm_decay(ds);
}

/* A record's end: its contents go, the record waits for the next job.
 * Records held and spare together are never more than were held at once
 * since the last decay. */
static void recycle_job(struct detach_store *ds, struct detach_job *dj)
{
    drop_contents(dj);
    give_back_record(ds, dj);
}

void detach_free(struct detach_store *ds)
{
    if (!ds)
        return;
    evtimer_del(&ds->expire);
    evtimer_del(&ds->accept_ev);
    evtimer_del(&ds->decay);
    detach_remote_free(ds);
    for (uint32_t i = 0; i < ds->tab.cap; i++)
        if (ds->tab.job[i])
            free_job(ds->tab.job[i]);
    trim_spares(ds, 0);
    explicit_bzero(&ds->keys, sizeof ds->keys);
    dtab_free(&ds->tab);
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

void detach_handle(const struct detach_job *dj, char *hex)
{
    detach_format_handle(dj->slot, dj->key, hex);
}

struct detach_job *detach_find(struct detach_store *ds, const char *handle, size_t len)
{
    uint32_t slot;
    uint8_t key[DETACH_KEY_LEN];
    return detach_parse_handle(handle, len, &slot, key) == 0 ? dtab_find(&ds->tab, slot, key)
                                                             : NULL;
}

/* ---- accepted ----------------------------------------------------------- */

static void unlink_pending(struct detach_job *dj)
{
    if (!dj->accept_pending)
        return;
    struct detach_store *ds = dj->ds;
    dj->accept_pending = 0;
    if (dj->aprev)
        dj->aprev->anext = dj->anext;
    else
        ds->accept_head = dj->anext;
    if (dj->anext)
        dj->anext->aprev = dj->aprev;
    dj->aprev = dj->anext = NULL;
    /* A timer left to fire with nothing to do is a wake-up for nothing. */
    if (!ds->accept_head)
        evtimer_del(&ds->accept_ev);
}

void detach_drop_accepted(struct detach_job *dj)
{
    unlink_pending(dj);
}

size_t detach_take_accepted(struct detach_job *dj, char *text)
{
    if (!dj->accept_pending)
        return 0;
    unlink_pending(dj);
    if (!dj->follow)
        return 0;
    char hex[DETACH_HANDLE_LEN + 1];
    detach_handle(dj, hex);
    return jev_accepted(text, JEV_ACCEPTED_MAX, hex, DETACH_HANDLE_LEN);
}

void detach_give_accepted(struct detach_job *dj)
{
    char text[JEV_ACCEPTED_MAX];
    struct detach_text ev = { text, detach_take_accepted(dj, text) };
    if (ev.len)
        dj->follow(dj->farg, &ev, 1, 0);
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct detach_store *ds = arg;
    while (ds->accept_head)
        detach_give_accepted(ds->accept_head);
}

static void accept_later(struct detach_job *dj)
{
    struct detach_store *ds = dj->ds;
    dj->accept_pending = 1;
    dj->aprev = NULL;
    dj->anext = ds->accept_head;
    if (ds->accept_head)
        ds->accept_head->aprev = dj;
    ds->accept_head = dj;
    if (!evtimer_pending(&ds->accept_ev, NULL)) {
        struct timeval tv = tv_from_ms(ACCEPT_DELAY_MS);
        evtimer_add(&ds->accept_ev, &tv);
    }
}

/* ---- admission ----------------------------------------------------------- */

/* A spare was last touched when its job expired, a TTL ago: out of every
 * cache.  The next submit will clear it, so its lines are fetched now, while
 * this job is parsed and queued, not then (perf annotate: the load of a
 * cold spare's link and the clearing of its lines were 85 % of
 * detach_submit's samples, echo 50 x 16 with 300 000 jobs held). */
static void prefetch_record(const struct detach_job *dj)
{
    /* Unconditional and unrolled: a prefetch never faults, so NULL (no
     * spare left) needs no test, and GCC 12 drops prefetches it finds in
     * a loop or in a branch of their own as code without effect.  The
     * addresses are integers: arithmetic on a null pointer would be
     * undefined. */
    uintptr_t p = (uintptr_t)dj;
    _Static_assert(offsetof(struct detach_job, text) <= 3 * 64, "three lines and a tail");
    __builtin_prefetch((const void *)p, 1);
    __builtin_prefetch((const void *)(p + 64), 1);
    __builtin_prefetch((const void *)(p + 128), 1);
    /* malloc aligns to 16, not to a line */
    __builtin_prefetch((const void *)(p + offsetof(struct detach_job, text) - 1), 1);
}

static struct detach_job *take_record(struct detach_store *ds)
{
    struct detach_job *dj = ds->spare;
    if (!dj)
        return malloc(sizeof *dj);
    ds->spare = dj->fnext;
    prefetch_record(ds->spare);
    ds->nspare--;
    if (ds->nspare < ds->spare_low)
        ds->spare_low = ds->nspare;
    return dj;
}

static struct detach_job *new_job(struct detach_store *ds)
{
    struct detach_job *dj = take_record(ds);
    if (!dj)
        return NULL;
    memset(dj, 0, offsetof(struct detach_job, text));
    if (detach_random_key(&ds->keys, dj->key) < 0 || dtab_insert(&ds->tab, dj) < 0) {
        give_back_record(ds, dj);
        return NULL;
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
        snprintf(ds->busy_why, sizeof ds->busy_why, "the result store is down (%s)",
                 ds->m.state ? ds->m.state(ds->m.arg) : "not reachable");
        *why = ds->busy_why;
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
        dtab_remove(&ds->tab, dj);
        give_back_record(ds, dj);
        return err;
    }
    ds->st.held++;
    ds->st.running++;
    ds->st.accepted_total++;
    dj->follow = fn;
    dj->farg = arg;
    accept_later(dj);
    if (ds->has_mirror) {
        char hex[DETACH_HANDLE_LEN + 1];
        detach_handle(dj, hex);
        ds->m.begin(ds->m.arg, hex);
    }
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
    uint32_t slot;
    uint8_t key[DETACH_KEY_LEN];
    if (detach_parse_handle(handle, len, &slot, key) < 0)
        return;
    struct detach_job *dj = dtab_find(&ds->tab, slot, key);
    if (dj) {
        detach_cancel(dj);
    } else if (ds->has_mirror) {
        char text[DETACH_HANDLE_LEN + 1];
        memcpy(text, handle, DETACH_HANDLE_LEN);
        text[DETACH_HANDLE_LEN] = 0;
        ds->m.cancel(ds->m.arg, text);
    }
}

/* ---- the TTL of finished jobs ---------------------------------------------------- */

static int64_t ttl_ns(const struct detach_store *ds)
{
    return (int64_t)ds->prm.ttl_s * 1000000000;
}

/* A TTL counts in seconds: the coarse clock (a jiffy's resolution, a
 * plain read of the vDSO page) does, and every job reads it once. */
static int64_t coarse_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One timer for every finished job: they end in the order they finished,
 * since all share one TTL (a reload changes it for all at once). */
static void arm_expiry(struct detach_store *ds, int more)
{
    if (!ds->fifo_head) {
        evtimer_del(&ds->expire);
        return;
    }
    int64_t left_ms = (ds->fifo_head->finished_ns + ttl_ns(ds) - coarse_now_ns()) / 1000000;
    struct timeval tv = tv_from_ms(more ? 0 : left_ms > 0 ? left_ms + EXPIRE_SLACK_MS : EXPIRE_SLACK_MS);
    evtimer_add(&ds->expire, &tv);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct detach_store *ds = arg;
    int64_t now = coarse_now_ns();
    unsigned n = 0;
    for (; n < EXPIRE_BATCH && ds->fifo_head && ds->fifo_head->finished_ns + ttl_ns(ds) <= now; n++) {
        struct detach_job *dj = ds->fifo_head;
        ds->fifo_head = dj->fnext;
        /* The next one is as cold as this one was: fetch what is read of
         * it here (its link and finishing time) meanwhile. */
        __builtin_prefetch(dj->fnext, 1);
        __builtin_prefetch((const void *)((uintptr_t)dj->fnext + offsetof(struct detach_job, finished_ns)), 1);
        if (!ds->fifo_head)
            ds->fifo_tail = NULL;
        dtab_remove(&ds->tab, dj);
        ds->st.held--;
        ds->st.finished_kept--;
        ds->st.expired_total++;
        recycle_job(ds, dj);
    }
    arm_decay(ds);
    arm_expiry(ds, n == EXPIRE_BATCH);
}

void detach_finished(struct detach_job *dj)
{
    struct detach_store *ds = dj->ds;
    dj->finished_ns = coarse_now_ns();
    dj->fnext = NULL;
    if (ds->fifo_tail)
        ds->fifo_tail->fnext = dj;
    else
        ds->fifo_head = dj;
    ds->fifo_tail = dj;
    ds->st.running--;
    ds->st.finished_kept++;
    if (ds->fifo_head == dj)
        arm_expiry(ds, 0);
}

void detach_set_params(struct detach_store *ds, const struct detach_params *prm)
{
    int ttl_changed = prm->ttl_s != ds->prm.ttl_s;
    ds->prm = *prm;
    if (ttl_changed)
        arm_expiry(ds, 0);
}
