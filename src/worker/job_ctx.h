/* job_ctx.h — the worker side of one job: what a handler's wsjob_ctx is,
 * and how a worker runs a handler and posts its replies. */
#ifndef WSJOBD_JOB_CTX_H
#define WSJOBD_JOB_CTX_H

#include <stdint.h>

#include "pipeline/pipeline.h"
#include "wsjob.h"

/* Options a handler may read with wsjob_option(); set once before fork. */
typedef const char *(*job_option_fn)(const char *name, unsigned index);
void job_ctx_set_option_source(job_option_fn fn);

/* Runs the job behind `handle` (taken from a job ring by worker `wid`) with
 * `h`, and posts its final reply (and any chunks and progress before it).
 * Returns when the final reply is in the reply ring. */
void job_run(struct pipeline *p, uint16_t wid, uint64_t handle,
             const struct wsjob_handler *h);

/* Posts a reply record whose payload (len bytes) is copied inline or into
 * the worker's output ring.  0, or -1 when the payload cannot be placed
 * (over the output ring's limit). */
int reply_post(struct pipeline *p, uint16_t wid, struct reply *r,
               const void *payload, size_t len);

#endif
