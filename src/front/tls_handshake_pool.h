/* tls_handshake_pool.h — a few threads that run the public-key steps of TLS
 * handshakes, so the front's event loop never does (tls_conn.c uses it).
 *
 * A job belongs to the loop until hs_pool_submit(), to the pool until its
 * done callback runs (on the loop), and to the loop again from then on.
 * Nothing here calls into libevent from a thread. */
#ifndef WSJOBD_TLS_HANDSHAKE_POOL_H
#define WSJOBD_TLS_HANDSHAKE_POOL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

struct hs_job {
    void (*run)(struct hs_job *j);              /* on a pool thread */
    /* On the loop.  dropped: the pool stopped first, run may not have run. */
    void (*done)(struct hs_job *j, int dropped);
    struct hs_job *prev, *next;                 /* pool-private, under its lock */
    uint8_t where;                              /* pool-private, under its lock */
};

/* Starts the threads (how many: see hs_pool_threads) and watches for
 * finished jobs on base.  0, or -1 with a reason.  Idempotent. */
int hs_pool_start(struct event_base *base, char *err, size_t errlen);
int hs_pool_running(void);

/* Queues j (loop only).  j must not be queued already. */
void hs_pool_submit(struct hs_job *j);

/* Jobs waiting for a thread (not those running): what admission looks at. */
size_t hs_pool_waiting(void);

/* Takes j back if no thread has started it: 1, and j is the caller's again
 * (its done callback will not run).  0: a thread has it or has finished it;
 * its done callback runs later, on the loop. */
int hs_pool_cancel(struct hs_job *j);

/* Joins the threads after the jobs they are running, then calls done(j, 1)
 * for every job still queued or finished.  Before event_base_free(). */
void hs_pool_stop(void);

unsigned hs_pool_threads(void);

#endif
