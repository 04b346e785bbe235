/* dispatch.h — the front's side of the job pipeline: admits jobs into the
 * shared job rings, drains the reply ring, enforces deadlines and cancels,
 * and guarantees that every admitted job gets exactly one final answer
 * through its sink, whatever happens to the worker running it
 * (pipeline/job.h tells how).
 *
 * The protocol layers (/jobs, /run/TYPE) own connections and job ids; they
 * hand dispatch a sink and a cookie per job and get the job's events back
 * through the sink.  Dispatch never touches a socket. */
#ifndef WSJOBD_DISPATCH_H
#define WSJOBD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/pipeline.h"

struct event_base;
struct dispatch;

/* Events of one job, called from the front's loop.  After `done` or `error`
 * (the final answer) the cookie is never used again. */
struct job_sink {
    void (*chunk)(void *cookie, uint32_t job, const uint8_t *data, size_t len);
    void (*progress)(void *cookie, uint32_t job, uint64_t done, uint64_t total);
    void (*done)(void *cookie, uint32_t job, const uint8_t *data, size_t len,
                 int has_output, uint64_t queued_us, uint64_t run_us);
    void (*error)(void *cookie, uint32_t job, enum job_error code,
                  const char *msg, size_t len);
};

struct job_request {
    int         type;          /* registry index */
    const void *input;
    size_t      len;
    int64_t     timeout_ms;    /* <= 0: the default */
    const char *id;            /* the client's id (handlers see it); NULL: none */
    size_t      id_len;        /* at most JOB_ID_MAX */
    const struct job_sink *sink;
    void       *cookie;
};

struct dispatch_params {
    int64_t  job_timeout_ms;
    int64_t  cancel_grace_ms;
    unsigned crash_retries;
};

struct dispatch_stats {
    uint64_t submitted, done, failed, cancelled, timeouts, in_flight;
    uint64_t full[2], enqueued[2];          /* by worker class */
    uint64_t retried, crashed;
    uint64_t replies_total;                 /* reply-ring records drained */
};

struct dispatch *dispatch_new(struct event_base *base, struct pipeline *p,
                              const struct dispatch_params *dp);
void dispatch_free(struct dispatch *d);
void dispatch_set_params(struct dispatch *d, const struct dispatch_params *dp);

/* Admits a job.  JE_NONE and *job set, or the error to answer at once
 * (JE_BUSY when the ring, the job table or the input heap is full). */
enum job_error dispatch_submit(struct dispatch *d, const struct job_request *req, uint32_t *job);

/* The client cancelled: the job is answered `cancelled` through its sink now
 * (exactly once), and a running CPU job that ignores the cancel past the
 * grace period has its worker killed. */
void dispatch_cancel(struct dispatch *d, uint32_t job);

/* The owner is gone (connection closed): cancel without answering. */
void dispatch_detach(struct dispatch *d, uint32_t job);

/* The owner no longer buffers `bytes` of this job's stream. */
void dispatch_ack(struct dispatch *d, uint32_t job, uint64_t bytes);

/* Answers every unanswered job `shutting_down`. */
void dispatch_fail_all(struct dispatch *d, enum job_error code, const char *msg);

/* Call after each turn of the loop, before it sleeps: job stamps read the
 * clock afresh after a sleep. */
void dispatch_before_sleep(struct dispatch *d);

/* A new batch of events begins (a socket read): job stamps read the clock
 * afresh (they share one reading within a batch). */
void dispatch_new_batch(struct dispatch *d);

/* Drains the reply ring; returns records handled. */
size_t dispatch_drain(struct dispatch *d);

/* A worker died holding `handle`: re-run it (up to crash_retries) or answer
 * it worker_crashed. */
void dispatch_worker_lost(struct dispatch *d, uint64_t handle);

/* fn is called when the ring, job table or heap gains room after a submit
 * was refused `busy` (backpressured readers retry): never from inside a
 * dispatch call, always from a later turn of the loop, so it may submit.
 * It returns 1 to be called again on the next turn (it had more waiters
 * than it served in one).  Set by the front. */
void dispatch_on_room(struct dispatch *d, int (*fn)(void *arg), void *arg);

/* Per job type, over the jobs dispatch admitted (a submit refused before
 * it has a record is not counted here).  failed == the sum of errors[];
 * a job whose connection went away counts as cancelled. */
struct type_counts {
    uint64_t submitted, done, failed;
    uint64_t errors[JE_COUNT];              /* by enum job_error */
};

const struct dispatch_stats *dispatch_stats(const struct dispatch *d);
/* NULL for a type outside the registry. */
const struct type_counts *dispatch_type_counts(const struct dispatch *d, int type);
struct histogram;
const struct histogram *dispatch_type_run_us(const struct dispatch *d, int type);

#endif
