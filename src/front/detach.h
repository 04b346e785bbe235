/* detach.h — detached jobs (SPEC §5): jobs that outlive the connection
 * that submitted them, found again by a handle: the job's slot here and
 * 128 random bits, in hex.
 *
 * The store is the dispatch sink of every detached job, so it, not a
 * connection, gets the job's one final answer (pipeline/job.h), whatever
 * happens: a connection that goes only stops following.  Per job it keeps
 *
 *   the chunk events, as JSON text without "id", oldest dropped once they
 *     pass --detach-buffer bytes (counted in dropped_events_total);
 *   the latest progress event only, while the job runs;
 *   the final event, for --result-ttl seconds after the job ended; then
 *     the record and its handle are gone (expired_total).
 *
 * A job counts against --max-detached from `accepted` until that TTL ends,
 * whether or not anyone fetched its final event.
 *
 * The submitter is given `{"event":"accepted","handle":H}` before any
 * other event: with the job's first event when that comes within 10 ms
 * (so a short job's two leave in one write), else alone after them.
 *
 * At most one client follows a job at a time.  Following replays the kept
 * chunks with seq >= from_seq, then the latest progress, then live events,
 * then the final one.  A newer follower takes over: the older one gets the
 * final event `superseded`, so each id still gets exactly one.
 *
 * Flow control: with nobody following, a chunk is acknowledged to the
 * worker at once (its stream never waits for a reader that is not there);
 * with a follower, as for any job — once the follower's client has no more
 * than its stream window unread.
 *
 * With a mirror (a shared result store, set at start-up) every job is also
 * written through it, so that other instances can follow it, and a handle
 * this instance does not hold is followed through it. */
#ifndef WSJOBD_DETACH_H
#define WSJOBD_DETACH_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/dispatch.h"

struct event_base;
struct detach_store;
struct detach_job;

/* Hex digits of a handle: a slot (8) and 128 random bits (32). */
#define DETACH_HANDLE_LEN 40

struct detach_params {
    size_t   buffer;                /* --detach-buffer: kept chunk bytes per job */
    unsigned ttl_s;                 /* --result-ttl */
    unsigned max_jobs;              /* --max-detached */
};

struct detach_stats {
    uint64_t held;                  /* records: running + finished_kept */
    uint64_t running;
    uint64_t finished_kept;
    uint64_t kept_bytes;            /* kept event texts, every job */
    uint64_t accepted_total;
    uint64_t dropped_events_total;  /* chunks dropped past --detach-buffer */
    uint64_t expired_total;         /* records ended by their TTL */
    uint64_t attach_total;          /* attach requests that found their job */
    uint64_t superseded_total;      /* followers displaced by a newer attach */
};

/* The shared result store's side, plugged in at start-up (NULL: none).
 * Event texts are JSON objects without "id".  Every call is asynchronous
 * and must never block. */
struct detach_mirror {
    void *arg;
    int  (*up)(void *arg);          /* 0: detached submits answer busy */
    const char *(*state)(void *arg); /* why it is down, for that busy's message */
    void (*begin)(void *arg, const char *handle);
    /* A chunk (seq: its own) or a progress event (seq: the next chunk's). */
    void (*event)(void *arg, const char *handle, uint64_t seq, const char *json,
                  size_t len, uint64_t keep_bytes);
    void (*final)(void *arg, const char *handle, const char *json, size_t len);
    /* A client's cancel of a job no local record holds. */
    void (*cancel)(void *arg, const char *handle);
    /* Follow a job held elsewhere: kept events with seq >= from_seq, live
     * ones, then exactly one with final = 1, after which the follow is
     * finished and freed by the callee.  NULL: it could not start. */
    void *(*follow)(void *arg, const char *handle, uint64_t from_seq,
                    void (*on_event)(void *cb_arg, const char *json, size_t len, int final),
                    void *cb_arg);
    void (*unfollow)(void *follow);  /* the client left before the final */
};

/* One event's text: JSON without "id". */
struct detach_text {
    const char *json;
    size_t      len;
};
#define DETACH_TEXTS_MAX 2
/* A client following a job (jobs_proto): 1 to DETACH_TEXTS_MAX events at
 * once, in order, to go out as one write (a job that ends before its
 * `accepted` was given gives both together).  final = 1: the last of them is the job's final
 * event, after which the store forgets the follower.  Returns 1 when the
 * client has more than its stream window unread: the job's stream then
 * waits for detach_drained(). */
typedef int detach_follow_fn(void *arg, const struct detach_text *ev, size_t n, int final);

struct detach_store *detach_new(struct event_base *base, struct dispatch *d,
                                const struct detach_params *prm);
/* Frees every record; followers are not told (the daemon is exiting). */
void detach_free(struct detach_store *ds);
/* A reload: a new TTL applies to finished jobs kept already; a new buffer
 * or maximum to what comes next. */
void detach_set_params(struct detach_store *ds, const struct detach_params *prm);
void detach_set_mirror(struct detach_store *ds, const struct detach_mirror *m);

/* Admits a detached job (req's sink and cookie are the store's own) with
 * fn(arg) following it, which is given `accepted` first.  JE_NONE with
 * *out set, or the error to answer: busy past --max-detached, while the
 * mirror is down, or without randomness for a handle (*why says which);
 * or dispatch_submit's (*why NULL). */
enum job_error detach_submit(struct detach_store *ds, const struct job_request *req,
                             detach_follow_fn *fn, void *arg, struct detach_job **out,
                             const char **why);
/* The job's handle as text: DETACH_HANDLE_LEN digits and a NUL into hex. */
void detach_handle(const struct detach_job *dj, char *hex);

/* Is this text shaped like a handle (DETACH_HANDLE_LEN lower-case hex
 * digits)? */
int detach_handle_valid(const char *handle, size_t len);
/* The job with this handle; NULL when unknown or expired here. */
struct detach_job *detach_find(struct detach_store *ds, const char *handle, size_t len);

/* An attach: fn(arg) follows the job from from_seq, replacing any earlier
 * follower.  Returns 1 while it follows, 0 when the job had ended and its
 * final event was already delivered. */
int detach_attach(struct detach_job *dj, uint64_t from_seq, detach_follow_fn *fn, void *arg);
/* The follower arg goes away (its connection closed). */
void detach_unfollow(struct detach_job *dj, void *arg);
/* The follower's client has read what it was sent. */
void detach_drained(struct detach_job *dj);
/* Answers a running job `cancelled` (to whoever follows); ignored once it
 * has ended. */
void detach_cancel(struct detach_job *dj);

/* A client's cancel by handle: the local job, else through the mirror to
 * the instance that holds it.  Unknown handles are ignored. */
void detach_client_cancel(struct detach_store *ds, const char *handle, size_t len);
/* A cancel another instance passed on: only a local job is cancelled. */
void detach_cancel_by_handle(struct detach_store *ds, const char *handle);

/* Following, through the mirror, a job another instance holds: events
 * as the mirror gives them (kept ones from from_seq, live ones, then one
 * with final = 1), JSON without "id". */
struct detach_remote;
typedef void detach_remote_fn(void *arg, const char *json, size_t len, int final);
/* *out is set before the mirror is asked, and events may come before this
 * returns (even the final one).  0: following (or done already, the final
 * given); -1 without a mirror, for a malformed handle, or when it could
 * not start (no event given). */
int  detach_follow_remote(struct detach_store *ds, const char *handle, uint64_t from_seq,
                          detach_remote_fn *on_event, void *arg, struct detach_remote **out);
/* Stop following, from anywhere, even inside one of its events: no event
 * comes after it.  Not after the final event. */
void detach_unfollow_remote(struct detach_remote *r);
int detach_has_mirror(const struct detach_store *ds);
size_t detach_buffer_size(const struct detach_store *ds);   /* --detach-buffer */

const struct detach_stats *detach_stats(const struct detach_store *ds);

#endif
