/* dispatch.c — the front's job table: admission into the job rings, the
 * one place a final answer leaves, and the release of a finished job's
 * record, descriptor and input.  pipeline/job.h tells the whole life. */
#include "pipeline/dispatch.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "base/histogram.h"
#include "pipeline/dispatch_parts.h"

#define CLOCK_REUSE 64     /* events that may share one clock read */

static void room_cb(evutil_socket_t fd, short what, void *arg);

/* The clock for a job's submit and done times, read once per batch of
 * events instead of once per event: at a million echo jobs a second the two
 * reads per job were 6 % of the front's CPU (perf, cpu-clock samples).  A
 * batch is one socket read (dispatch_new_batch), one drain of the reply ring
 * or the rest of a loop turn, and at most CLOCK_REUSE events, so a stamp is
 * at most some tens of microseconds early, never a sleep old: the reading
 * is forgotten before the loop sleeps.  libevent's own timers count from
 * the start of the turn. */
int64_t dispatch_batch_now(struct dispatch *d)
{
    if (d->now_left == 0) {
        d->now_ns = shm_now_ns();
        d->now_left = CLOCK_REUSE;
    }
    d->now_left--;
    return d->now_ns;
}

void dispatch_new_batch(struct dispatch *d)
{
    d->now_left = 0;
}

struct dispatch *dispatch_new(struct event_base *base, struct pipeline *p,
                              const struct dispatch_params *dp)
{
    struct dispatch *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->base = base;
    d->p = p;
    d->recs = calloc(p->njobs, sizeof *d->recs);
    d->heap = shm_heap_new(p->heap_base, p->heap_size);
    d->run_us = calloc(registry_count() ? registry_count() : 1, sizeof *d->run_us);
    d->room_ev = evtimer_new(base, room_cb, d);
    if (!d->recs || !d->heap || !d->run_us || !d->room_ev || deadline_init(d) < 0 ||
        reply_drain_init(d) < 0) {
        dispatch_free(d);
        return NULL;
    }
    for (uint32_t i = p->njobs; i > 0; i--) {
        struct job_rec *r = &d->recs[i - 1];
        r->next_free = d->free_head;
        d->free_head = i;
    }
    d->prm = *dp;
    return d;
}

void dispatch_set_params(struct dispatch *d, const struct dispatch_params *dp)
{
    if (dp->job_timeout_ms != d->prm.job_timeout_ms)
        deadline_default_changed(d);
    d->prm = *dp;
}

void dispatch_free(struct dispatch *d)
{
    if (!d)
        return;
    reply_drain_free(d);
    deadline_free(d);
    if (d->room_ev)
        event_free(d->room_ev);
    shm_heap_delete(d->heap);
    free(d->run_us);
    free(d->recs);
    free(d);
}

void dispatch_on_room(struct dispatch *d, int (*fn)(void *), void *arg)
{
    d->on_room = fn;
    d->on_room_arg = arg;
}

/* Room comes back inside release(), deep in a reply's or a timer's
 * callback; waiters submit again, which can fail and free nothing, so they
 * are called on the next turn instead, once for every record freed
 * meanwhile. */
static void room_later(struct dispatch *d)
{
    static const struct timeval next_turn = { 0, 0 };
    evtimer_add(d->room_ev, &next_turn);
}

static void room_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dispatch *d = arg;
    if (d->on_room && d->on_room(d->on_room_arg))
        room_later(d);
}

const struct dispatch_stats *dispatch_stats(const struct dispatch *d) { return &d->st; }

const struct histogram *dispatch_type_run_us(const struct dispatch *d, int type)
{
    return type >= 0 && (size_t)type < registry_count() ? &d->run_us[type] : NULL;
}

const struct type_counts *dispatch_type_counts(const struct dispatch *d, int type)
{
    return type >= 0 && (size_t)type < registry_count() ? &d->by_type[type] : NULL;
}

static void want_room(struct dispatch *d) { d->room_wanted = 1; }

void dispatch_release(struct dispatch *d, struct job_rec *r)
{
    deadline_forget(d, r);
    if (r->heap_off >= 0)
        shm_heap_free(d->heap, r->heap_off);
    r->heap_off = -1;
    r->state = REC_FREE;
    r->sink = NULL;
    r->gen++;
    r->next_free = d->free_head;
    d->free_head = rec_index(d, r) + 1;
    if (d->room_wanted) {
        d->room_wanted = 0;
        room_later(d);
    }
}

/* Takes the answer's token (job.h): whatever comes later for this job
 * finds no sink, so no second answer can leave. */
static const struct job_sink *take_sink(struct dispatch *d, struct job_rec *r)
{
    const struct job_sink *s = r->sink;
    if (s) {
        r->sink = NULL;
        d->st.in_flight--;
    }
    return s;
}

/* The two places a final answer leaves dispatch. */
void dispatch_answer_error(struct dispatch *d, struct job_rec *r, enum job_error code,
                           const char *msg)
{
    const struct job_sink *s = take_sink(d, r);
    if (!s)
        return;
    d->st.failed++;
    d->by_type[r->type].failed++;
    d->by_type[r->type].errors[code < JE_COUNT ? code : JE_HANDLER_ERROR]++;
    if (code == JE_CANCELLED)
        d->st.cancelled++;
    else if (code == JE_TIMEOUT)
        d->st.timeouts++;
    s->error(r->cookie, rec_index(d, r), code, msg, strlen(msg));
}

void dispatch_answer_done(struct dispatch *d, struct job_rec *r, const uint8_t *data,
                          size_t len, int has_output, uint64_t run_us)
{
    const struct job_sink *s = take_sink(d, r);
    if (!s)
        return;
    d->st.done++;
    d->by_type[r->type].done++;
    uint32_t idx = rec_index(d, r);
    int64_t start = d->p->jobs[idx].enqueued_ns;
    uint64_t total_us = (uint64_t)(dispatch_batch_now(d) - start) / 1000;
    hist_record(&d->run_us[r->type], run_us);
    s->done(r->cookie, idx, data, len, has_output, total_us > run_us ? total_us - run_us : 0,
            run_us);
}

static enum job_error place_input(struct dispatch *d, struct job_rec *r, struct job_desc *desc,
                                  const void *in, size_t len)
{
    desc->input_len = (uint32_t)len;
    if (len <= JOB_INLINE) {
        if (len)
            memcpy(desc->input, in, len);
        desc->input_off = -1;
        r->heap_off = -1;
        return JE_NONE;
    }
    int64_t off = shm_heap_alloc(d->heap, len);
    if (off < 0)
        return JE_BUSY;
    memcpy(d->p->heap_base + off, in, len);
    desc->input_off = off;
    r->heap_off = off;
    return JE_NONE;
}

/* Pushes the job under its current generation.  The push's release store
 * publishes every descriptor field written before it. */
int dispatch_enqueue(struct dispatch *d, struct job_rec *r)
{
    uint32_t idx = rec_index(d, r);
    struct job_desc *desc = &d->p->jobs[idx];
    uint64_t h = job_handle(idx, r->gen);
    desc->handle = h;
    r->stop_asked = 0;
    atomic_store_explicit(&desc->cancel, JOB_LIVE, memory_order_relaxed);
    atomic_store_explicit(&desc->acked, 0, memory_order_relaxed);
    if (shm_jobring_push(d->p->ring[r->cls], h) < 0) {
        d->st.full[r->cls]++;
        return -1;
    }
    d->st.enqueued[r->cls]++;
    return 0;
}

enum job_error dispatch_submit(struct dispatch *d, const struct job_request *req, uint32_t *job)
{
    const struct wsjob_handler *h = registry_get(req->type);
    if (!h)
        return JE_UNKNOWN_TYPE;
    if (req->len > d->p->max_message)
        return JE_TOO_LARGE;
    if (!d->free_head) {
        want_room(d);
        return JE_BUSY;
    }
    uint32_t idx = d->free_head - 1;
    struct job_rec *r = &d->recs[idx];
    struct job_desc *desc = &d->p->jobs[idx];
    if (place_input(d, r, desc, req->input, req->len) != JE_NONE) {
        want_room(d);
        return JE_BUSY;
    }
    d->free_head = r->next_free;
    r->cls = h->cls == WSJOB_IO ? CLASS_IO : CLASS_CPU;
    r->type = (uint16_t)req->type;
    r->retries = 0;
    r->state = REC_LIVE;
    r->submitted_ns = dispatch_batch_now(d);
    int64_t tmo = req->timeout_ms > 0 ? req->timeout_ms : d->prm.job_timeout_ms;
    desc->type = (uint16_t)req->type;
    desc->id_len = (uint8_t)(req->id && req->id_len <= JOB_ID_MAX ? req->id_len : 0);
    if (desc->id_len)
        memcpy(desc->id, req->id, desc->id_len);
    desc->enqueued_ns = r->submitted_ns;
    desc->deadline_ns = r->submitted_ns + tmo * 1000000;
    if (dispatch_enqueue(d, r) < 0) {
        dispatch_release(d, r);
        want_room(d);
        return JE_BUSY;
    }
    r->sink = req->sink;
    r->cookie = req->cookie;
    deadline_start(d, r, req->timeout_ms, desc->deadline_ns);
    d->st.submitted++;
    d->st.in_flight++;
    d->by_type[r->type].submitted++;
    *job = idx;
    return JE_NONE;
}

void dispatch_cancel(struct dispatch *d, uint32_t job)
{
    struct job_rec *r = &d->recs[job];
    if (r->state != REC_LIVE || !r->sink)
        return;
    deadline_stop_handler(d, r, JOB_CANCELLED);
    dispatch_answer_error(d, r, JE_CANCELLED, "cancelled by client");
}

void dispatch_detach(struct dispatch *d, uint32_t job)
{
    struct job_rec *r = &d->recs[job];
    if (r->state != REC_LIVE || !take_sink(d, r))
        return;
    d->st.cancelled++;
    d->st.failed++;
    d->by_type[r->type].failed++;
    d->by_type[r->type].errors[JE_CANCELLED]++;
    deadline_stop_handler(d, r, JOB_CANCELLED);
}

void dispatch_ack(struct dispatch *d, uint32_t job, uint64_t bytes)
{
    struct job_desc *desc = &d->p->jobs[job];
    atomic_fetch_add_explicit(&desc->acked, bytes, memory_order_release);
    atomic_fetch_add_explicit(&desc->wake, 1, memory_order_release);
    shm_futex_wake(&desc->wake, 1);
}

void dispatch_fail_all(struct dispatch *d, enum job_error code, const char *msg)
{
    for (uint32_t i = 0; i < d->p->njobs; i++) {
        struct job_rec *r = &d->recs[i];
        if (r->state == REC_LIVE && r->sink) {
            deadline_stop_handler(d, r, JOB_CANCELLED);
            dispatch_answer_error(d, r, code, msg);
        }
    }
}
