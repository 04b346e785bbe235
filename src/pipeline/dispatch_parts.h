/* dispatch_parts.h — what the four files of dispatch share, and nobody else:
 *
 *   dispatch.c     the record table, admission, the final answers, release
 *   deadline.c     deadlines, and the grace a stopped handler gets
 *   crash_retry.c  a job whose worker died: run again, or worker_crashed
 *   reply_drain.c  the reply ring: draining it, and when to look at it
 *
 * pipeline/job.h tells the life of a job these files keep. */
#ifndef WSJOBD_DISPATCH_PARTS_H
#define WSJOBD_DISPATCH_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "handlers/handler_registry.h"
#include "pipeline/dispatch.h"
#include "pipeline/job.h"

struct event;
struct histogram;
struct shm_heap;

struct dispatch {
    struct event_base *base;
    struct pipeline   *p;
    struct dispatch_params prm;
    struct shm_heap   *heap;
    struct job_rec    *recs;            /* p->njobs, at the descriptors' indexes */
    uint32_t           free_head;       /* index + 1, 0: none */
    int64_t            now_ns;          /* the clock as read for this batch */
    unsigned           now_left;        /* events it may still serve; 0: read again */
    /* reply_drain.c */
    struct event      *reply_ev;        /* the reply eventfd */
    /* deadline.c: jobs with the default deadline, oldest first */
    uint32_t           fifo_head, fifo_tail;
    struct event      *fifo_ev;
    struct dispatch_stats st;
    struct type_counts by_type[REGISTRY_MAX];
    struct histogram  *run_us;          /* per type, registry_count() of them */
    int  (*on_room)(void *);            /* 1: call again next turn */
    void  *on_room_arg;
    int    room_wanted;                 /* a submit was refused for want of room */
    struct event *room_ev;              /* calls on_room on the next turn */
};

static inline uint32_t rec_index(const struct dispatch *d, const struct job_rec *r)
{
    return (uint32_t)(r - d->recs);
}

/* idx1: index + 1, as the free list and the FIFO link records; 0: none. */
static inline struct job_rec *rec_at(struct dispatch *d, uint32_t idx1)
{
    return idx1 ? &d->recs[idx1 - 1] : NULL;
}

/* dispatch.c */
int64_t dispatch_batch_now(struct dispatch *d);
int  dispatch_enqueue(struct dispatch *d, struct job_rec *r);
void dispatch_release(struct dispatch *d, struct job_rec *r);
void dispatch_answer_done(struct dispatch *d, struct job_rec *r, const uint8_t *data,
                          size_t len, int has_output, uint64_t run_us);
void dispatch_answer_error(struct dispatch *d, struct job_rec *r, enum job_error code,
                           const char *msg);

/* deadline.c */
int  deadline_init(struct dispatch *d);
void deadline_free(struct dispatch *d);
/* A new default duration breaks the FIFO's order: its jobs move to timers. */
void deadline_default_changed(struct dispatch *d);
/* timeout_ms > 0: the job's own; else the default (the FIFO). */
void deadline_start(struct dispatch *d, struct job_rec *r, int64_t timeout_ms, int64_t deadline_ns);
/* Tell a running handler to stop (cancel or timeout) and give it the grace. */
void deadline_stop_handler(struct dispatch *d, struct job_rec *r, enum job_cancel why);
/* The record is being freed: no timer of its may fire. */
void deadline_forget(struct dispatch *d, struct job_rec *r);

/* reply_drain.c */
int  reply_drain_init(struct dispatch *d);
void reply_drain_free(struct dispatch *d);

#endif
