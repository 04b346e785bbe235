/* dispatch.c — admission, reply draining, deadlines, cancels, crash retries.
 *
 * A job's life in the front, by the fields of struct job_rec:
 *   FREE  -> LIVE (submit: slot filled, handle pushed to a job ring)
 *   LIVE  -> answered (done/error sent through the sink, exactly once)
 *   LIVE or answered -> FREE (the worker's final record arrived, or the
 *            worker died and the job was not re-run)
 * `answered` and the slot's lifetime are separate on purpose: a cancelled or
 * timed-out job is answered at once, but its slot (and input bytes) stay
 * until no worker can touch them any more. */
#include "pipeline/dispatch.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/timeval.h"
#include "handlers/handler_registry.h"
#include "base/histogram.h"
#include "base/log.h"

#define DRAIN_BATCH 4096   /* records per loop turn before yielding to sockets */
#define CLOCK_REUSE 64     /* events that may share one clock read */
/* Reply moderation bounds (see moderate()). */
#define MODERATE_MAX_NS 1000000
#define MODERATE_MIN_NS 50000
#define MODERATE_GAP_NS 10000     /* replies closer than this: no wake-ups to save */

enum rec_state { REC_FREE = 0, REC_LIVE = 1 };

struct job_rec {
    const struct job_sink *sink;   /* NULL once answered or detached */
    void     *cookie;
    uint32_t  gen;                 /* current handle generation */
    uint32_t  next_free;           /* free list link (index + 1, 0 ends) */
    uint8_t   state;               /* enum rec_state */
    uint8_t   cls;                 /* enum worker_class */
    uint8_t   retries;
    uint8_t   timer_armed;
    uint8_t   on_fifo;             /* in the default-deadline FIFO */
    uint16_t  type;
    uint32_t  fifo_prev, fifo_next; /* FIFO links (index + 1, 0 ends) */
    int64_t   deadline_ns;         /* while on_fifo */
    int64_t   heap_off;            /* -1: inline input */
    int64_t   submitted_ns;
    struct event timer;            /* own deadline, then cancel grace */
};

struct type_counts { uint64_t done, failed; };

struct dispatch {
    struct event_base *base;
    struct pipeline   *p;
    struct dispatch_params prm;
    struct shm_heap   *heap;
    struct job_rec    *recs;
    uint32_t           free_head;       /* index + 1, 0: none */
    struct event      *reply_ev;
    struct event      *poll_ev;         /* moderated look at the reply ring */
    uint32_t           live[2];         /* records in use, by worker class */
    int64_t            last_reply_ns;   /* when replies were last drained */
    int64_t            now_ns;          /* the clock as read for this batch */
    unsigned           now_left;        /* events it may still serve; 0: read again */
    int64_t            ns_per_reply;    /* moving average of the gap between replies */
    /* Jobs with the default deadline, oldest first: with one duration for
     * all, submit order is deadline order, so one timer for the head serves
     * them all and a job costs two list links instead of a libevent timer
     * added and deleted (13 % of the front's instructions per message in
     * the echo benchmark).  The timer may fire for a head that has since
     * finished; it then re-arms for the current one. */
    uint32_t           fifo_head, fifo_tail;
    struct event      *fifo_ev;
    struct dispatch_stats st;
    struct type_counts by_type[REGISTRY_MAX];
    struct histogram  *run_us;          /* per type, registry_count() of them */
    void (*on_room)(void *);
    void  *on_room_arg;
    int    room_wanted;
};

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void fifo_cb(evutil_socket_t fd, short what, void *arg);
static void fifo_to_timers(struct dispatch *d);
static void reply_cb(evutil_socket_t fd, short what, void *arg);

/* The clock for a job's submit and done times, read once per batch of
 * events instead of once per event: at a million echo jobs a second the two
 * reads per job were 6 % of the front's CPU (perf, cpu-clock samples).  A
 * batch is one socket read (dispatch_new_batch), one drain of the reply ring
 * or the rest of a loop turn, and at most CLOCK_REUSE events, so a stamp is
 * at most some tens of microseconds early, never a sleep old: the reading
 * is forgotten before the loop sleeps.  libevent's own timers count from
 * the start of the turn. */
static int64_t batch_now(struct dispatch *d)
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
    d->reply_ev = event_new(base, p->reply_efd, EV_READ | EV_PERSIST | EV_ET, reply_cb, d);
    d->poll_ev = evtimer_new(base, reply_cb, d);
    d->fifo_ev = evtimer_new(base, fifo_cb, d);
    if (!d->recs || !d->heap || !d->run_us || !d->reply_ev || !d->poll_ev || !d->fifo_ev ||
        event_add(d->reply_ev, NULL) < 0) {
        dispatch_free(d);
        return NULL;
    }
    for (uint32_t i = p->njobs; i > 0; i--) {
        struct job_rec *r = &d->recs[i - 1];
        evtimer_assign(&r->timer, base, timer_cb, d);
        r->next_free = d->free_head;
        d->free_head = i;
    }
    dispatch_set_params(d, dp);
    shm_replyring_arm(p->replies);
    return d;
}

void dispatch_set_params(struct dispatch *d, const struct dispatch_params *dp)
{
    /* A new default duration would break the FIFO's order: the jobs on it
     * keep their deadlines on timers of their own. */
    if (dp->job_timeout_ms != d->prm.job_timeout_ms)
        fifo_to_timers(d);
    d->prm = *dp;
}

void dispatch_free(struct dispatch *d)
{
    if (!d)
        return;
    if (d->recs)
        for (uint32_t i = 0; i < d->p->njobs; i++)
            if (d->recs[i].timer_armed)
                event_del(&d->recs[i].timer);
    if (d->reply_ev)
        event_free(d->reply_ev);
    if (d->poll_ev)
        event_free(d->poll_ev);
    if (d->fifo_ev)
        event_free(d->fifo_ev);
    shm_heap_delete(d->heap);
    free(d->run_us);
    free(d->recs);
    free(d);
}

void dispatch_on_room(struct dispatch *d, void (*fn)(void *), void *arg)
{
    d->on_room = fn;
    d->on_room_arg = arg;
}

const struct dispatch_stats *dispatch_stats(const struct dispatch *d) { return &d->st; }

const struct histogram *dispatch_type_run_us(const struct dispatch *d, int type)
{
    return type >= 0 && (size_t)type < registry_count() ? &d->run_us[type] : NULL;
}

uint64_t dispatch_type_count(const struct dispatch *d, int type, int failed)
{
    if (type < 0 || type >= REGISTRY_MAX)
        return 0;
    return failed ? d->by_type[type].failed : d->by_type[type].done;
}

static uint32_t rec_index(const struct dispatch *d, const struct job_rec *r)
{
    return (uint32_t)(r - d->recs);
}

static void want_room(struct dispatch *d) { d->room_wanted = 1; }

static struct job_rec *rec_at(struct dispatch *d, uint32_t idx1)
{
    return idx1 ? &d->recs[idx1 - 1] : NULL;
}

static void fifo_push(struct dispatch *d, struct job_rec *r, int64_t deadline_ns)
{
    uint32_t me = rec_index(d, r) + 1;
    r->deadline_ns = deadline_ns;
    r->on_fifo = 1;
    r->fifo_next = 0;
    r->fifo_prev = d->fifo_tail;
    if (d->fifo_tail)
        rec_at(d, d->fifo_tail)->fifo_next = me;
    else
        d->fifo_head = me;
    d->fifo_tail = me;
    if (!evtimer_pending(d->fifo_ev, NULL)) {
        struct timeval tv = tv_from_ms(d->prm.job_timeout_ms);
        evtimer_add(d->fifo_ev, &tv);
    }
}

static void fifo_unlink(struct dispatch *d, struct job_rec *r)
{
    if (!r->on_fifo)
        return;
    if (r->fifo_prev)
        rec_at(d, r->fifo_prev)->fifo_next = r->fifo_next;
    else
        d->fifo_head = r->fifo_next;
    if (r->fifo_next)
        rec_at(d, r->fifo_next)->fifo_prev = r->fifo_prev;
    else
        d->fifo_tail = r->fifo_prev;
    r->on_fifo = 0;
}

static void release(struct dispatch *d, struct job_rec *r)
{
    fifo_unlink(d, r);
    if (r->timer_armed) {
        event_del(&r->timer);
        r->timer_armed = 0;
    }
    if (r->heap_off >= 0)
        shm_heap_free(d->heap, r->heap_off);
    r->heap_off = -1;
    d->live[r->cls]--;
    r->state = REC_FREE;
    r->sink = NULL;
    r->gen++;
    r->next_free = d->free_head;
    d->free_head = rec_index(d, r) + 1;
    if (d->room_wanted && d->on_room) {
        d->room_wanted = 0;
        d->on_room(d->on_room_arg);
    }
}

/* The one place a final answer leaves dispatch: after it the sink is gone. */
static void answer_error(struct dispatch *d, struct job_rec *r, enum job_error code,
                         const char *msg)
{
    const struct job_sink *s = r->sink;
    if (!s)
        return;
    r->sink = NULL;
    d->st.in_flight--;
    d->st.failed++;
    d->by_type[r->type].failed++;
    if (code == JE_CANCELLED)
        d->st.cancelled++;
    else if (code == JE_TIMEOUT)
        d->st.timeouts++;
    s->error(r->cookie, rec_index(d, r), code, msg, strlen(msg));
}

static void arm_timer(struct job_rec *r, int64_t ms)
{
    struct timeval tv = tv_from_ms(ms);
    if (r->timer_armed)
        event_del(&r->timer);
    event_add(&r->timer, &tv);
    r->timer_armed = 1;
}

static enum job_error place_input(struct dispatch *d, struct job_rec *r, struct job_desc *slot,
                                  const void *in, size_t len)
{
    slot->input_len = (uint32_t)len;
    if (len <= JOB_INLINE) {
        if (len)
            memcpy(slot->input, in, len);
        slot->input_off = -1;
        r->heap_off = -1;
        return JE_NONE;
    }
    int64_t off = shm_heap_alloc(d->heap, len);
    if (off < 0)
        return JE_BUSY;
    memcpy(d->p->heap_base + off, in, len);
    slot->input_off = off;
    r->heap_off = off;
    return JE_NONE;
}

/* Pushes the job under its current generation.  The push's release store
 * publishes every slot field written before it. */
static int enqueue(struct dispatch *d, struct job_rec *r)
{
    uint32_t idx = rec_index(d, r);
    struct job_desc *slot = &d->p->jobs[idx];
    uint64_t h = job_handle(idx, r->gen);
    slot->handle = h;
    atomic_store_explicit(&slot->cancel, JOB_LIVE, memory_order_relaxed);
    atomic_store_explicit(&slot->acked, 0, memory_order_relaxed);
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
    struct job_desc *slot = &d->p->jobs[idx];
    if (place_input(d, r, slot, req->input, req->len) != JE_NONE) {
        want_room(d);
        return JE_BUSY;
    }
    d->free_head = r->next_free;
    r->cls = h->cls == WSJOB_IO ? CLASS_IO : CLASS_CPU;
    r->type = (uint16_t)req->type;
    r->retries = 0;
    r->state = REC_LIVE;
    d->live[r->cls]++;
    r->submitted_ns = batch_now(d);
    int64_t tmo = req->timeout_ms > 0 ? req->timeout_ms : d->prm.job_timeout_ms;
    slot->type = (uint16_t)req->type;
    slot->enqueued_ns = r->submitted_ns;
    slot->deadline_ns = r->submitted_ns + tmo * 1000000;
    if (enqueue(d, r) < 0) {
        release(d, r);
        want_room(d);
        return JE_BUSY;
    }
    r->sink = req->sink;
    r->cookie = req->cookie;
    if (req->timeout_ms > 0)
        arm_timer(r, tmo);
    else
        fifo_push(d, r, slot->deadline_ns);
    d->st.submitted++;
    d->st.in_flight++;
    *job = idx;
    return JE_NONE;
}

/* Tells a running handler to stop, and gives it cancel_grace_ms to do so. */
static void signal_stop(struct dispatch *d, struct job_rec *r, enum job_cancel why)
{
    struct job_desc *slot = &d->p->jobs[rec_index(d, r)];
    atomic_store_explicit(&slot->cancel, why, memory_order_relaxed);
    /* Release: a handler that sees the new wake value also sees cancel. */
    atomic_fetch_add_explicit(&slot->wake, 1, memory_order_release);
    shm_futex_wake(&slot->wake, 1 << 30);
    fifo_unlink(d, r);
    arm_timer(r, d->prm.cancel_grace_ms);
}

void dispatch_cancel(struct dispatch *d, uint32_t job)
{
    struct job_rec *r = &d->recs[job];
    if (r->state != REC_LIVE || !r->sink)
        return;
    signal_stop(d, r, JOB_CANCELLED);
    answer_error(d, r, JE_CANCELLED, "cancelled by client");
}

void dispatch_detach(struct dispatch *d, uint32_t job)
{
    struct job_rec *r = &d->recs[job];
    if (r->state != REC_LIVE || !r->sink)
        return;
    r->sink = NULL;
    d->st.in_flight--;
    d->st.cancelled++;
    d->st.failed++;
    d->by_type[r->type].failed++;
    signal_stop(d, r, JOB_CANCELLED);
}

void dispatch_ack(struct dispatch *d, uint32_t job, uint64_t bytes)
{
    struct job_desc *slot = &d->p->jobs[job];
    atomic_fetch_add_explicit(&slot->acked, bytes, memory_order_release);
    atomic_fetch_add_explicit(&slot->wake, 1, memory_order_release);
    shm_futex_wake(&slot->wake, 1);
}

void dispatch_fail_all(struct dispatch *d, enum job_error code, const char *msg)
{
    for (uint32_t i = 0; i < d->p->njobs; i++) {
        struct job_rec *r = &d->recs[i];
        if (r->state == REC_LIVE && r->sink) {
            signal_stop(d, r, JOB_CANCELLED);
            answer_error(d, r, code, msg);
        }
    }
}

/* A CPU worker that holds `h` past the grace period is killed: the only way
 * to stop a handler that never polls.  Its death is handled like any crash,
 * and since the job is answered it is not run again. */
static void kill_holder(struct dispatch *d, uint64_t h)
{
    for (uint32_t i = 0; i < d->p->ncpu; i++) {
        struct worker_desc *w = &d->p->workers[i];
        if (atomic_load_explicit(&w->claim, memory_order_acquire) != h)
            continue;
        pid_t pid = atomic_load(&w->pid);
        if (pid > 0) {
            log_warn("cpu worker %u (pid %d) ignored a cancel for %lld ms: killing it",
                     i + 1, (int)pid, (long long)d->prm.cancel_grace_ms);
            kill(pid, SIGKILL);
        }
    }
}

/* The deadline passed: the client hears `timeout` now, and the handler is
 * told to stop (then killed after the grace). */
static void expire(struct dispatch *d, struct job_rec *r)
{
    signal_stop(d, r, JOB_TIMED_OUT);
    answer_error(d, r, JE_TIMEOUT, "job deadline passed");
}

/* Whole milliseconds from now until deadline, rounded up (0 if past). */
static int64_t ms_until(int64_t deadline_ns, int64_t now)
{
    return deadline_ns > now ? (deadline_ns - now + 999999) / 1000000 : 0;
}

static void fifo_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dispatch *d = arg;
    int64_t now = shm_now_ns();
    struct job_rec *r;
    while ((r = rec_at(d, d->fifo_head)) && r->deadline_ns <= now) {
        fifo_unlink(d, r);
        if (r->sink)
            expire(d, r);
    }
    if (r) {
        struct timeval tv = tv_from_ms(ms_until(r->deadline_ns, now));
        evtimer_add(d->fifo_ev, &tv);
    }
}

static void fifo_to_timers(struct dispatch *d)
{
    int64_t now = shm_now_ns();
    struct job_rec *r;
    while ((r = rec_at(d, d->fifo_head))) {
        fifo_unlink(d, r);
        arm_timer(r, ms_until(r->deadline_ns, now));
    }
    evtimer_del(d->fifo_ev);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dispatch *d = arg;
    /* libevent passes the dispatch; find the record from the event. */
    struct event *ev = event_base_get_running_event(d->base);
    struct job_rec *r = (struct job_rec *)((char *)ev - offsetof(struct job_rec, timer));
    r->timer_armed = 0;
    if (r->state != REC_LIVE)
        return;
    if (r->sink) {
        expire(d, r);
        return;
    }
    kill_holder(d, job_handle(rec_index(d, r), r->gen));
}

void dispatch_worker_lost(struct dispatch *d, uint64_t h)
{
    uint32_t idx = handle_index(h);
    if (idx >= d->p->njobs)
        return;
    struct job_rec *r = &d->recs[idx];
    if (r->state != REC_LIVE || r->gen != handle_gen(h))
        return;
    if (!r->sink) {
        release(d, r);
        return;
    }
    if (r->retries < d->prm.crash_retries) {
        r->retries++;
        /* A new generation: anything the dead worker left in the reply ring
         * for this job is now recognisably stale. */
        r->gen++;
        if (enqueue(d, r) == 0) {
            d->st.retried++;
            return;
        }
    }
    d->st.crashed++;
    answer_error(d, r, JE_WORKER_CRASHED,
                 r->retries ? "the worker running this job died on every try"
                            : "the worker running this job died");
    release(d, r);
}

/* ---- the reply ring ---------------------------------------------------- */

static void handle_reply(struct dispatch *d, const struct reply *rp, const uint8_t *data)
{
    uint32_t idx = handle_index(rp->handle);
    if (idx >= d->p->njobs)
        return;
    struct job_rec *r = &d->recs[idx];
    if (r->state != REC_LIVE || r->gen != handle_gen(rp->handle))
        return;   /* from a worker that died, or for a job re-run since */
    const struct job_sink *s = r->sink;
    switch (rp->kind) {
    case REPLY_CHUNK:
        if (s)
            s->chunk(r->cookie, idx, data, rp->len);
        else
            dispatch_ack(d, idx, rp->len);
        return;
    case REPLY_PROGRESS:
        if (s && s->progress)
            s->progress(r->cookie, idx, rp->a, rp->b);
        return;
    case REPLY_DONE:
        if (s) {
            r->sink = NULL;
            d->st.in_flight--;
            d->st.done++;
            d->by_type[r->type].done++;
            int64_t start = d->p->jobs[idx].enqueued_ns;
            uint64_t total_us = (uint64_t)(batch_now(d) - start) / 1000;
            uint64_t run_us = rp->a;
            hist_record(&d->run_us[r->type], run_us);
            s->done(r->cookie, idx, data, rp->len, (int)rp->b,
                    total_us > run_us ? total_us - run_us : 0, run_us);
        }
        release(d, r);
        return;
    case REPLY_ERROR: {
        char msg[512];
        size_t n = rp->len < sizeof msg - 1 ? rp->len : sizeof msg - 1;
        memcpy(msg, data, n);
        msg[n] = 0;
        enum job_error code = rp->code > JE_NONE && rp->code < JE_COUNT ? rp->code : JE_HANDLER_ERROR;
        answer_error(d, r, code, msg);
        release(d, r);
        return;
    }
    }
}

size_t dispatch_drain(struct dispatch *d)
{
    struct pipeline *p = d->p;
    _Alignas(8) uint8_t buf[SHM_REPLY_REC];
    size_t n = 0;
    dispatch_new_batch(d);
    while (n < DRAIN_BATCH && shm_replyring_pop(p->replies, buf) > 0) {
        const struct reply *rp = (const struct reply *)buf;
        n++;
        d->st.replies_total++;
        if (rp->wid < 1 || rp->wid > p->nworkers)
            continue;
        struct worker_desc *w = pipeline_worker(p, rp->wid);
        int current = rp->incarnation == atomic_load_explicit(&w->incarnation, memory_order_relaxed);
        const uint8_t *data = rp->data;
        if (rp->pos >= 0) {
            if (!current)
                continue;   /* its bytes are in a bytering reset since */
            data = shm_bytering_ptr(w->out, rp->pos);
        }
        handle_reply(d, rp, data);
        if (rp->pos >= 0)
            shm_bytering_free(w->out, rp->pos, rp->len);
    }
    return n;
}

/* Keeps the moving average of the time between replies (weight 1/4). */
static void note_replies(struct dispatch *d, size_t n)
{
    int64_t now = shm_now_ns();
    int64_t gap = (now - d->last_reply_ns) / (int64_t)n;
    d->last_reply_ns = now;
    if (gap > MODERATE_MAX_NS)
        gap = MODERATE_MAX_NS;   /* an idle spell is not a slow rate */
    d->ns_per_reply += (gap - d->ns_per_reply) / 4;
}

/* Reply moderation.  A front woken for every reply spends far more on the
 * wake-up than on the record: on a 2-vCPU VM about 20 us of CPU each, and
 * with as many workers as cores that CPU is taken from the workers (sha256
 * x2000 on two workers: 1.44 times one worker's rate unmoderated).  So while
 * every class that has jobs out also has jobs waiting in its ring (all its
 * workers busy, so a reply read a little later holds no worker back), the
 * front leaves the eventfd unarmed and looks at the ring again after half
 * the time the waiting jobs take at the recent reply rate, at most
 * MODERATE_MAX_NS.  Any other wake-up of the front drains the ring too.  A
 * look that finds nothing, an empty ring or an interval too short to save
 * anything arms the eventfd as before: long jobs cost no periodic wake-ups
 * and a lone job's latency is untouched.  Returns 1 when a look is set. */
static int moderate(struct dispatch *d, size_t drained)
{
    if (drained == 0 || d->ns_per_reply < MODERATE_GAP_NS)
        return 0;
    uint64_t waiting = 0;
    for (int c = 0; c < 2; c++) {
        uint32_t depth = shm_jobring_depth(d->p->ring[c]);
        if (d->live[c] > 0 && depth == 0)
            return 0;
        waiting += depth;
    }
    int64_t ns = (int64_t)waiting * d->ns_per_reply / 2;
    if (ns > MODERATE_MAX_NS)
        ns = MODERATE_MAX_NS;
    if (ns < MODERATE_MIN_NS)
        return 0;
    struct timeval tv = { 0, (suseconds_t)(ns / 1000) };
    return evtimer_add(d->poll_ev, &tv) == 0;
}

void dispatch_before_sleep(struct dispatch *d)
{
    /* Without the moderation timer the eventfd is armed: a reply wakes the
     * loop itself, nothing to look at. */
    if (evtimer_pending(d->poll_ev, NULL)) {
        size_t n = dispatch_drain(d);
        if (n)
            note_replies(d, n);
        if (n == DRAIN_BATCH)
            event_active(d->reply_ev, EV_READ, 0);
    }
    /* The loop may sleep now: no stamp may come from before the sleep. */
    dispatch_new_batch(d);
}

/* The eventfd's and the moderation timer's callback. */
static void reply_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dispatch *d = arg;
    size_t total = 0;
    /* Edge-triggered: every eventfd write is a new edge, so the counter
     * never needs reading back (one syscall less per wake-up). */
    for (;;) {
        size_t n = dispatch_drain(d);
        if (n)
            note_replies(d, n);
        total += n;
        if (n == DRAIN_BATCH) {
            /* Let sockets have a turn; come back at once. */
            event_active(d->reply_ev, EV_READ, 0);
            return;
        }
        if (moderate(d, total) || shm_replyring_arm(d->p->replies))
            return;
    }
}
