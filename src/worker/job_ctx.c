/* job_ctx.c — the handler API of include/wsjob.h, as a worker provides it.
 *
 * A handler runs in a worker process (cpu) or an I/O thread (io); its ctx
 * lives on that thread's stack for the duration of one job.  Everything it
 * sends to the front goes through the reply ring: chunks and progress as
 * they happen, then exactly one final DONE or ERROR record. */
#include "worker/job_ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRESS_INTERVAL_NS 100000000   /* the front shows at most ~10/s */
#define WAIT_SLICE_MS 100                /* re-check cancel this often while blocked */

struct wsjob_ctx {
    struct pipeline *p;
    struct job_desc *job;
    uint64_t handle;
    uint16_t wid;
    const uint8_t *input;
    size_t input_len;
    uint8_t *output;            /* malloc'd; last wsjob_output wins */
    size_t output_len;
    int has_output;
    enum job_error err;
    char errmsg[256];
    uint64_t emitted;           /* stream bytes posted so far */
    int64_t last_progress_ns;
};

static job_option_fn option_source;

void job_ctx_set_option_source(job_option_fn fn) { option_source = fn; }

int reply_post(struct pipeline *p, uint16_t wid, struct reply *r,
               const void *payload, size_t len)
{
    struct worker_desc *w = pipeline_worker(p, wid);
    r->wid = wid;
    r->len = (uint32_t)len;
    r->incarnation = atomic_load_explicit(&w->incarnation, memory_order_relaxed);
    r->pos = -1;
    if (len <= REPLY_INLINE) {
        if (len)
            memcpy(r->data, payload, len);
    } else {
        if (len > p->max_message + 65536)
            return -1;
        int64_t pos;
        /* The front frees output space as fast as it drains the reply ring,
         * so this waits only while the front is behind; a dead front kills
         * us through PR_SET_PDEATHSIG. */
        while ((pos = shm_bytering_alloc(w->out, len, 1000)) < 0)
            ;
        memcpy(shm_bytering_ptr(w->out, pos), payload, len);
        r->pos = pos;
    }
    while (shm_replyring_push(p->replies, wid, r, sizeof *r, 1000) < 0)
        ;
    return 0;
}

/* ---- the API of wsjob.h ----------------------------------------------- */

const void *wsjob_input(wsjob_ctx *ctx, size_t *len)
{
    *len = ctx->input_len;
    return ctx->input;
}

int wsjob_output(wsjob_ctx *ctx, const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "out of memory for %zu output bytes", len);
    if (len)
        memcpy(copy, data, len);
    free(ctx->output);
    ctx->output = copy;
    ctx->output_len = len;
    ctx->has_output = 1;
    return WSJOB_OK;
}

int wsjob_cancelled(wsjob_ctx *ctx)
{
    if (atomic_load_explicit(&ctx->job->cancel, memory_order_relaxed) != JOB_LIVE)
        return 1;
    return shm_now_ns() >= ctx->job->deadline_ns;
}

int64_t wsjob_remaining_ms(wsjob_ctx *ctx)
{
    int64_t left = ctx->job->deadline_ns - shm_now_ns();
    return left > 0 ? left / 1000000 : 0;
}

/* Waits on the job's wake word (bumped by the front on cancel and on stream
 * acknowledgements) until `until_ns`, the deadline, or a cancel. */
static void wait_wake(wsjob_ctx *ctx, uint32_t seen, int64_t until_ns)
{
    int64_t left = until_ns - shm_now_ns();
    if (left <= 0)
        return;
    int ms = (int)(left / 1000000) + 1;
    shm_futex_wait(&ctx->job->wake, seen, ms > WAIT_SLICE_MS ? WAIT_SLICE_MS : ms);
}

int wsjob_sleep(wsjob_ctx *ctx, int64_t ms)
{
    int64_t until = shm_now_ns() + (ms > 0 ? ms : 0) * 1000000;
    if (until > ctx->job->deadline_ns)
        until = ctx->job->deadline_ns;
    for (;;) {
        uint32_t seen = atomic_load_explicit(&ctx->job->wake, memory_order_acquire);
        if (wsjob_cancelled(ctx))
            return WSJOB_ERR;
        if (shm_now_ns() >= until)
            break;
        wait_wake(ctx, seen, until);
    }
    return WSJOB_OK;
}

int wsjob_emit(wsjob_ctx *ctx, const void *data, size_t len)
{
    if (len > ctx->p->max_message)
        return wsjob_fail(ctx, WSJOB_E_TOO_LARGE, "chunk of %zu bytes exceeds max-message", len);
    /* Flow control: at most one window of this stream may sit unacknowledged
     * in the front; a client that does not read stalls only its own jobs. */
    for (;;) {
        uint32_t seen = atomic_load_explicit(&ctx->job->wake, memory_order_acquire);
        if (wsjob_cancelled(ctx))
            return WSJOB_ERR;
        uint64_t acked = atomic_load_explicit(&ctx->job->acked, memory_order_acquire);
        if (ctx->emitted - acked < ctx->p->stream_window)
            break;
        wait_wake(ctx, seen, ctx->job->deadline_ns);
    }
    struct reply r = { .handle = ctx->handle, .kind = REPLY_CHUNK };
    if (reply_post(ctx->p, ctx->wid, &r, data, len) < 0)
        return wsjob_fail(ctx, WSJOB_E_TOO_LARGE, "chunk of %zu bytes too large", len);
    ctx->emitted += len;
    return WSJOB_OK;
}

void wsjob_progress(wsjob_ctx *ctx, uint64_t done, uint64_t total)
{
    int64_t now = shm_now_ns();
    if (now - ctx->last_progress_ns < PROGRESS_INTERVAL_NS)
        return;
    ctx->last_progress_ns = now;
    struct reply r = { .handle = ctx->handle, .kind = REPLY_PROGRESS, .a = done, .b = total };
    reply_post(ctx->p, ctx->wid, &r, NULL, 0);
}

static enum job_error map_error(enum wsjob_error e)
{
    switch (e) {
    case WSJOB_E_BAD_REQUEST: return JE_BAD_REQUEST;
    case WSJOB_E_FORBIDDEN:   return JE_FORBIDDEN;
    case WSJOB_E_TOO_LARGE:   return JE_TOO_LARGE;
    case WSJOB_E_CANCELLED:   return JE_CANCELLED;
    case WSJOB_E_HANDLER_ERROR:
    default:                  return JE_HANDLER_ERROR;
    }
}

int wsjob_fail(wsjob_ctx *ctx, enum wsjob_error code, const char *fmt, ...)
{
    ctx->err = map_error(code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
    return WSJOB_ERR;
}

size_t wsjob_max_output(wsjob_ctx *ctx) { return ctx->p->max_message; }

const char *wsjob_option(wsjob_ctx *ctx, const char *name, unsigned index)
{
    (void)ctx;
    return option_source ? option_source(name, index) : NULL;
}

int job_ctx_type(const wsjob_ctx *ctx) { return ctx->job->type; }

void job_ctx_id(const wsjob_ctx *ctx, char buf[JOB_ID_MAX + 1])
{
    /* Stable while the job runs: written before its handle was pushed. */
    size_t n = ctx->job->id_len;
    if (n == 0) {
        snprintf(buf, JOB_ID_MAX + 1, "%016llx", (unsigned long long)ctx->handle);
        return;
    }
    memcpy(buf, ctx->job->id, n);
    buf[n] = 0;
}
struct job_desc *job_ctx_job(const wsjob_ctx *ctx) { return ctx->job; }
int job_ctx_failed(const wsjob_ctx *ctx) { return ctx->err != JE_NONE; }

/* ---- running one job -------------------------------------------------- */

static void post_error(wsjob_ctx *ctx, enum job_error code, const char *msg)
{
    struct reply r = { .handle = ctx->handle, .kind = REPLY_ERROR, .code = (uint8_t)code };
    reply_post(ctx->p, ctx->wid, &r, msg, strlen(msg));
}

/* A handler that stops because wsjob_cancelled() said so cannot tell a
 * cancel from its deadline; the slot can. */
static enum job_error stop_reason(const wsjob_ctx *ctx)
{
    uint32_t why = atomic_load_explicit(&ctx->job->cancel, memory_order_relaxed);
    return why == JOB_CANCELLED ? JE_CANCELLED : JE_TIMEOUT;
}

static void post_final(wsjob_ctx *ctx, int rc, int64_t started_ns)
{
    if (ctx->err == JE_CANCELLED) {
        ctx->err = stop_reason(ctx);
        if (ctx->err == JE_TIMEOUT)
            snprintf(ctx->errmsg, sizeof ctx->errmsg, "job deadline passed");
    }
    if (rc != WSJOB_OK || ctx->err != JE_NONE) {
        if (ctx->err == JE_NONE) {
            ctx->err = wsjob_cancelled(ctx) ? stop_reason(ctx) : JE_HANDLER_ERROR;
            snprintf(ctx->errmsg, sizeof ctx->errmsg, "%s",
                     ctx->err == JE_CANCELLED ? "cancelled" :
                     ctx->err == JE_TIMEOUT ? "job deadline passed" : "handler failed");
        }
        post_error(ctx, ctx->err, ctx->errmsg);
        return;
    }
    if (ctx->output_len > ctx->p->max_message) {
        char msg[96];
        snprintf(msg, sizeof msg, "output of %zu bytes exceeds max-message", ctx->output_len);
        post_error(ctx, JE_TOO_LARGE, msg);
        return;
    }
    struct reply r = { .handle = ctx->handle, .kind = REPLY_DONE,
                       .a = (uint64_t)((shm_now_ns() - started_ns) / 1000),
                       .b = ctx->has_output };
    reply_post(ctx->p, ctx->wid, &r, ctx->output, ctx->output_len);
}

void job_run(struct pipeline *p, uint16_t wid, uint64_t handle, const struct wsjob_handler *h)
{
    struct job_desc *job = &p->jobs[handle_index(handle)];
    wsjob_ctx ctx = { .p = p, .job = job, .handle = handle, .wid = wid };
    ctx.input_len = job->input_len;
    ctx.input = job->input_off < 0 ? job->input : p->heap_base + job->input_off;

    int64_t started = shm_now_ns();
    if (atomic_load_explicit(&job->cancel, memory_order_relaxed) != JOB_LIVE) {
        /* Cancelled or timed out while queued: the front has answered the
         * client already and waits only for this record to free the slot. */
        post_error(&ctx, JE_CANCELLED, "cancelled before start");
        return;
    }
    int rc = h ? h->run(&ctx) : wsjob_fail(&ctx, WSJOB_E_HANDLER_ERROR, "no handler");
    post_final(&ctx, rc, started);
    free(ctx.output);
}
