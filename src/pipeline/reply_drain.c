/* reply_drain.c — the reply ring, from the front's side: every record the
 * workers post (chunk, progress, done, error) reaches its job's sink here,
 * and here the front decides when to look at the ring again. */
#include <event2/event.h>
#include <string.h>

#include "pipeline/dispatch_parts.h"

#define DRAIN_BATCH 4096   /* records per loop turn before yielding to sockets */

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

/* Replies reach their clients as soon as the front sees them: no timer
 * holds one back.  (Collecting them on a short timer while jobs queued
 * saved the front a wake-up per reply, but a closed-loop client waits for
 * each reply before it sends its next job, so the ring ran dry meanwhile:
 * 4 clients x 1 job each on one worker got 1 262 sha256 x2000 jobs/s
 * instead of 4 896, `make bench` sweep, same run.)  What saves wake-ups is
 * that one drains everything there is.  A spin before sleeping while
 * replies came closer together than a wake-up costs was tried and measured
 * no better (sha256 2 workers 8 x 1: 7 434-7 603 jobs/s with it,
 * 8 079-8 408 without, alternating runs): on two cores the spin takes the
 * CPU the workers need. */
void dispatch_before_sleep(struct dispatch *d)
{
    /* The loop may sleep now: no stamp may come from before the sleep. */
    dispatch_new_batch(d);
}

/* The eventfd's callback: drains until the ring is empty, then arms the
 * eventfd (a producer that finds it armed writes it, which wakes the
 * loop).  Edge-triggered: every eventfd write is a new edge, so the counter
 * never needs reading back (one syscall less per wake-up). */
static void reply_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dispatch *d = arg;
    for (;;) {
        if (dispatch_drain(d) == DRAIN_BATCH) {
            /* Let sockets have a turn; come back at once. */
            event_active(d->reply_ev, EV_READ, 0);
            return;
        }
        if (shm_replyring_arm(d->p->replies))
            return;
    }
}

int reply_drain_init(struct dispatch *d)
{
    d->reply_ev = event_new(d->base, d->p->reply_efd, EV_READ | EV_PERSIST | EV_ET, reply_cb, d);
    if (!d->reply_ev || event_add(d->reply_ev, NULL) < 0)
        return -1;
    shm_replyring_arm(d->p->replies);
    return 0;
}

void reply_drain_free(struct dispatch *d)
{
    if (d->reply_ev)
        event_free(d->reply_ev);
}
