/* reply_drain.c — the reply ring, from the front's side: every record the
 * workers post (chunk, progress, done, error) reaches its job's sink here,
 * and here the front decides when to look at the ring again. */
#include <event2/event.h>
#include <string.h>

#include "pipeline/dispatch_parts.h"

#define DRAIN_BATCH 4096   /* records per loop turn before yielding to sockets */
/* Reply moderation bounds (see moderate()). */
#define MODERATE_MAX_NS 1000000
#define MODERATE_MIN_NS 50000
#define MODERATE_GAP_NS 10000     /* replies closer than this: no wake-ups to save */

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
            dispatch_ack(d, idx, rp->len);   /* nobody buffers it: let the handler go on */
        return;
    case REPLY_PROGRESS:
        if (s && s->progress)
            s->progress(r->cookie, idx, rp->a, rp->b);
        return;
    case REPLY_DONE:
        dispatch_answer_done(d, r, data, rp->len, (int)rp->b, rp->a);
        dispatch_release(d, r);
        return;
    case REPLY_ERROR: {
        char msg[512];
        size_t n = rp->len < sizeof msg - 1 ? rp->len : sizeof msg - 1;
        memcpy(msg, data, n);
        msg[n] = 0;
        enum job_error code = rp->code > JE_NONE && rp->code < JE_COUNT ? rp->code : JE_HANDLER_ERROR;
        dispatch_answer_error(d, r, code, msg);
        dispatch_release(d, r);
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
            if (!current) {
                /* Its bytes were in an output ring reset since: the worker
                 * died, or was recycled, before this record was drained
                 * (supervisor.c cuts its drain short).  Undeliverable, the
                 * record is a lost worker for its job: run it again or
                 * answer worker_crashed, never wait for its deadline. */
                dispatch_worker_lost(d, rp->handle);
                continue;
            }
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

int reply_drain_init(struct dispatch *d)
{
    d->reply_ev = event_new(d->base, d->p->reply_efd, EV_READ | EV_PERSIST | EV_ET, reply_cb, d);
    d->poll_ev = evtimer_new(d->base, reply_cb, d);
    if (!d->reply_ev || !d->poll_ev || event_add(d->reply_ev, NULL) < 0)
        return -1;
    shm_replyring_arm(d->p->replies);
    return 0;
}

void reply_drain_free(struct dispatch *d)
{
    if (d->reply_ev)
        event_free(d->reply_ev);
    if (d->poll_ev)
        event_free(d->poll_ev);
}
