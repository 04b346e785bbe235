/* deadline.c — a job's deadline, and the grace a handler told to stop gets.
 *
 * A job with its own timeout_ms has a libevent timer of its own.  Jobs with
 * the default deadline share one: with one duration for all, submit order
 * is deadline order, so one timer for the head of a FIFO serves them all
 * and a job costs two list links instead of a timer added and deleted (13 %
 * of the front's instructions per message in the echo benchmark).  The
 * FIFO's timer may fire for a head that has since finished; it then
 * re-arms for the current one.
 *
 * When a deadline passes the client hears `timeout` at once and the handler
 * is told to stop; a CPU handler still running cancel_grace_ms later has
 * its worker killed, the only way to stop one that never polls. */
#include <event2/event.h>
#include <signal.h>
#include <stdint.h>

#include "base/log.h"
#include "base/timeval.h"
#include "pipeline/dispatch_parts.h"
#include "worker/worker.h"

static void arm_timer(struct job_rec *r, int64_t ms)
{
    struct timeval tv = tv_from_ms(ms);
    if (r->timer_armed)
        event_del(&r->timer);
    event_add(&r->timer, &tv);
    r->timer_armed = 1;
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

void deadline_start(struct dispatch *d, struct job_rec *r, int64_t timeout_ms, int64_t deadline_ns)
{
    if (timeout_ms > 0)
        arm_timer(r, timeout_ms);
    else
        fifo_push(d, r, deadline_ns);
}

void deadline_forget(struct dispatch *d, struct job_rec *r)
{
    fifo_unlink(d, r);
    if (r->timer_armed) {
        event_del(&r->timer);
        r->timer_armed = 0;
    }
}

void deadline_stop_handler(struct dispatch *d, struct job_rec *r, enum job_cancel why)
{
    struct job_desc *desc = &d->p->jobs[rec_index(d, r)];
    atomic_store_explicit(&desc->cancel, why, memory_order_relaxed);
    /* Release: a handler that sees the new wake value also sees cancel. */
    atomic_fetch_add_explicit(&desc->wake, 1, memory_order_release);
    shm_futex_wake(&desc->wake, 1 << 30);
    fifo_unlink(d, r);
    arm_timer(r, d->prm.cancel_grace_ms);
}

/* The grace is over and a CPU worker still runs the job: the only way to
 * stop a handler that never polls is to end its worker.  First it is asked
 * to die if it still runs this job (worker.c, stop_request: the check is
 * made there, because reading its claim here and killing it is not one
 * step, and it may have moved on to the next job meanwhile).  If it still
 * holds the job one grace later, its handler took the signal for itself:
 * SIGKILL.  The death is handled like any crash; the job is answered, so it
 * is not run again. */
static void stop_holder(struct dispatch *d, struct job_rec *r)
{
    uint64_t h = job_handle(rec_index(d, r), r->gen);
    for (uint32_t i = 0; i < d->p->ncpu; i++) {
        struct worker_desc *w = &d->p->workers[i];
        if (atomic_load_explicit(&w->claim, memory_order_acquire) != h)
            continue;
        pid_t pid = atomic_load(&w->pid);
        if (pid <= 0)
            continue;
        if (!r->stop_asked) {
            log_warn("cpu worker %u (pid %d) ignored a cancel for %lld ms: stopping it",
                     i + 1, (int)pid, (long long)d->prm.cancel_grace_ms);
            r->stop_asked = 1;
            union sigval v = { .sival_ptr = (void *)(uintptr_t)h };
            if (sigqueue(pid, WORKER_STOP_SIGNAL, v) == 0) {
                arm_timer(r, d->prm.cancel_grace_ms);
                return;
            }
        }
        log_warn("cpu worker %u (pid %d) did not stop: killing it", i + 1, (int)pid);
        kill(pid, SIGKILL);
    }
}

static void expire(struct dispatch *d, struct job_rec *r)
{
    deadline_stop_handler(d, r, JOB_TIMED_OUT);
    dispatch_answer_error(d, r, JE_TIMEOUT, "job deadline passed");
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

void deadline_default_changed(struct dispatch *d)
{
    int64_t now = shm_now_ns();
    struct job_rec *r;
    while ((r = rec_at(d, d->fifo_head))) {
        fifo_unlink(d, r);
        arm_timer(r, ms_until(r->deadline_ns, now));
    }
    evtimer_del(d->fifo_ev);
}

/* A job's own timer: its deadline while it is answerable, then the end of
 * the grace its handler got to stop. */
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
    stop_holder(d, r);
}

int deadline_init(struct dispatch *d)
{
    d->fifo_ev = evtimer_new(d->base, fifo_cb, d);
    if (!d->fifo_ev)
        return -1;
    for (uint32_t i = 0; i < d->p->njobs; i++)
        evtimer_assign(&d->recs[i].timer, d->base, timer_cb, d);
    return 0;
}

void deadline_free(struct dispatch *d)
{
    if (d->recs)
        for (uint32_t i = 0; i < d->p->njobs; i++)
            if (d->recs[i].timer_armed)
                event_del(&d->recs[i].timer);
    if (d->fifo_ev)
        event_free(d->fifo_ev);
}
