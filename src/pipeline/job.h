/* job.h — the life of a job, in one place.  Read this first.
 *
 * THE RECORDS OF ONE JOB, AND WHO OWNS EACH
 *
 *   route entry   front/jobs_proto.c `struct entry` (/jobs) or
 *                 front/raw_proto.c `struct raw_job` (/run/TYPE).  Owned by
 *                 the connection's route: the client's id, the stream's
 *                 sequence numbers and unacknowledged bytes.  It is the
 *                 dispatch *cookie*; dispatch calls back through the route's
 *                 `struct job_sink` with it and never frees it.  A detached
 *                 job's cookie is instead a record of the detached-job store
 *                 (front/detach.h), which outlives the connection and keeps
 *                 the final answer; ids on connections only follow it.
 *
 *   job record    `struct job_rec` below, in the front's memory.  Owned by
 *                 dispatch (pipeline/dispatch.c): the sink and cookie, the
 *                 handle's generation, the deadline, retries, the input's
 *                 place in the heap.
 *
 *   descriptor    `struct job_desc` (pipeline/pipeline.h), in shared memory,
 *                 at the same index as the record.  Written by the front
 *                 before the handle is pushed; read by one worker between
 *                 taking the handle and posting the final reply; the front
 *                 writes only `cancel`, `wake` and `acked` while it runs.
 *
 *   input bytes   inline in the descriptor (<= JOB_INLINE) or in the shared
 *                 input heap, allocated and freed by the front only.
 *
 * HOW THEY ARE JOINED
 *
 *   record index == descriptor index == the `job` number the route holds.
 *   handle = job_handle(index, generation): what travels in the rings (job
 *   ring to the worker, the worker's claim word, every reply record).  The
 *   record's `gen` is bumped when the record is freed and when a job is
 *   re-queued after a crash, so a reply naming an old handle — from a dead
 *   worker, or for a job re-run since — is recognised and dropped.
 *
 * STATES (of the record)
 *
 *   FREE ──submit──▶ LIVE, answerable   handle pushed to the cpu or io ring
 *   LIVE, answerable ──▶ LIVE, answered  the final answer went to the sink:
 *        DONE or ERROR reply (done / error), cancel (`cancelled`), deadline
 *        (`timeout`), shutdown (`shutting_down`); a closed connection
 *        detaches it (no answer: nobody is left to hear it)
 *   LIVE, either ──▶ FREE   the worker's final reply arrived, or the worker
 *        died and the job is not run again; input bytes freed, gen bumped
 *   LIVE, answerable ──worker died──▶ re-queued under a new generation
 *        (up to crash_retries), else answered `worker_crashed` and FREE.
 *        A reply whose payload was in the output ring of a worker reset
 *        since (it died or was recycled before the reply was drained) counts
 *        as the worker dying under that job (reply_drain.c).
 *
 *   "Answered" and "free" are separate on purpose: a cancelled or timed-out
 *   job is answered at once, but its record, descriptor and input stay
 *   until no worker can touch them any more (its final reply, or its death).
 *   A job answered while a worker still runs it gets cancel_grace_ms to
 *   stop; then the worker is killed and its death frees the record.
 *
 * THE EXACTLY-ONCE INVARIANT
 *
 *   Every submit dispatch admits gets exactly one done or error through its
 *   sink, unless the route detached it first.  It holds because the sink
 *   pointer is the answer's token: dispatch_answer_done() and
 *   dispatch_answer_error() (pipeline/dispatch.c) are the only places that
 *   call a sink's done or error, and each first takes the token with
 *   take_sink(), which clears it; a detach takes it too, answering nothing.
 *   Every later event for that job finds no sink.  A
 *   submit dispatch refuses (busy, unknown type, too large) is answered by
 *   the route at once and never gets a record.  Routes free their entry
 *   only after the final answer or after detaching.
 */
#ifndef WSJOBD_JOB_H
#define WSJOBD_JOB_H

#include <event2/event_struct.h>
#include <stdint.h>

struct job_sink;

enum rec_state { REC_FREE = 0, REC_LIVE = 1 };

struct job_rec {
    const struct job_sink *sink;   /* the answer's token: NULL once answered or detached */
    void     *cookie;              /* the route's entry; never dereferenced here */
    uint32_t  gen;                 /* current handle generation */
    uint32_t  next_free;           /* free list link (index + 1, 0 ends) */
    uint8_t   state;               /* enum rec_state */
    uint8_t   cls;                 /* enum worker_class: which ring */
    uint8_t   retries;             /* crash re-runs so far */
    uint8_t   timer_armed;         /* `timer` pending */
    uint8_t   on_fifo;             /* in the default-deadline FIFO (deadline.c) */
    uint8_t   stop_asked;          /* its worker was asked to die (deadline.c) */
    uint16_t  type;                /* handler registry index */
    uint32_t  fifo_prev, fifo_next; /* FIFO links (index + 1, 0 ends) */
    int64_t   deadline_ns;         /* while on_fifo */
    int64_t   heap_off;            /* input bytes in the heap; -1: inline */
    int64_t   submitted_ns;
    struct event timer;            /* its own deadline, then the cancel grace */
};

#endif
