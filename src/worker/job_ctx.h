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

/* What the runners built into wsjobd (Python, executables) need beyond
 * the public API: the job's registry type, its handle, its descriptor (for
 * the cancel word and the deadline), and whether an error was recorded
 * through wsjob_fail(). */
int job_ctx_type(const wsjob_ctx *ctx);
/* The job's id as handlers see it: the client's id on /jobs; on /run/TYPE,
 * where clients give none, this run's handle as 16 hex digits.  Written
 * into buf (NUL-terminated, at most JOB_ID_MAX bytes before the NUL). */
void job_ctx_id(const wsjob_ctx *ctx, char buf[JOB_ID_MAX + 1]);
struct job_desc *job_ctx_job(const wsjob_ctx *ctx);
int job_ctx_failed(const wsjob_ctx *ctx);

/* Posts a reply record whose payload (len bytes) is copied inline or into
 * the worker's output ring.  0, or -1 when the payload cannot be placed
 * (over the output ring's limit). */
int reply_post(struct pipeline *p, uint16_t wid, struct reply *r,
               const void *payload, size_t len);

#endif
