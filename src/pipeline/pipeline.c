/* pipeline.c — lays out the shared region: job rings, reply ring, job
 * descriptors, input heap, worker descriptors and their output byterings. */
#include "pipeline/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static const char *const error_names[JE_COUNT] = {
    [JE_NONE] = "none",
    [JE_BAD_REQUEST] = "bad_request",
    [JE_UNKNOWN_TYPE] = "unknown_type",
    [JE_TOO_LARGE] = "too_large",
    [JE_DUPLICATE_ID] = "duplicate_id",
    [JE_BUSY] = "busy",
    [JE_TIMEOUT] = "timeout",
    [JE_CANCELLED] = "cancelled",
    [JE_WORKER_CRASHED] = "worker_crashed",
    [JE_HANDLER_ERROR] = "handler_error",
    [JE_FORBIDDEN] = "forbidden",
    [JE_SHUTTING_DOWN] = "shutting_down",
    [JE_NOT_FOUND] = "not_found",
    [JE_SUPERSEDED] = "superseded",
};

const char *job_error_name(enum job_error e)
{
    return (e > JE_NONE && e < JE_COUNT) ? error_names[e] : "handler_error";
}

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n && p < (1u << 30))
        p <<= 1;
    return p;
}

/* A worker's output ring must hold one largest message plus its framing at
 * any fill level, and bytering_alloc accepts up to capacity/2. */
static size_t out_ring_bytes(size_t max_message)
{
    return 2 * (max_message + 65536);
}

/* The input heap bounds the input bytes of all jobs in flight: when it is
 * full, submits are answered `busy`.  Four largest messages, at least 64 MiB:
 * the pages are only committed when touched. */
static size_t input_heap_bytes(size_t max_message)
{
    size_t n = 4 * max_message;
    return n < ((size_t)64 << 20) ? ((size_t)64 << 20) : n;
}

struct pipeline *pipeline_create(const struct pipeline_params *pp, char *err, size_t errlen)
{
    uint32_t depth = pow2_at_least(pp->queue_depth);
    uint32_t nworkers = pp->cpu_workers + pp->io_threads;
    if (nworkers > WORKER_MAX) {
        snprintf(err, errlen, "too many workers (%u > %u)", nworkers, WORKER_MAX);
        return NULL;
    }
    /* Every queued or running job and every job whose final reply is still
     * in the reply ring holds a slot: two rings' worth plus one per worker
     * is more than can be in flight at once. */
    uint32_t njobs = 2 * depth + nworkers;
    uint32_t nreplies = pow2_at_least(depth < 1024 ? 1024 : depth);
    size_t out_bytes = out_ring_bytes(pp->max_message);
    size_t heap_bytes = input_heap_bytes(pp->max_message);

    size_t total = 1 << 20;
    total += 2 * shm_jobring_size(depth) + shm_replyring_size(nreplies);
    total += (size_t)njobs * sizeof(struct job_desc);
    total += (size_t)nworkers * (sizeof(struct worker_desc) + shm_bytering_size(out_bytes) + 256);
    total += heap_bytes;

    struct pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->reply_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->reply_efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(p);
        return NULL;
    }
    p->region = shm_region_create(total, err, errlen);
    if (!p->region)
        goto fail;

    for (int c = 0; c < 2; c++) {
        void *m = shm_region_alloc(p->region, shm_jobring_size(depth), 64);
        if (!m || !(p->ring[c] = shm_jobring_init(m, depth)))
            goto full;
    }
    void *m = shm_region_alloc(p->region, shm_replyring_size(nreplies), 64);
    if (!m || !(p->replies = shm_replyring_init(m, nreplies, p->reply_efd)))
        goto full;
    p->jobs = shm_region_alloc(p->region, (size_t)njobs * sizeof(struct job_desc), 64);
    p->workers = shm_region_alloc(p->region, (size_t)nworkers * sizeof(struct worker_desc), 64);
    p->heap_base = shm_region_alloc(p->region, heap_bytes, 4096);
    if (!p->jobs || !p->workers || !p->heap_base)
        goto full;
    p->njobs = njobs;
    p->heap_size = heap_bytes;
    p->nworkers = nworkers;
    p->ncpu = pp->cpu_workers;
    p->max_message = pp->max_message;
    p->stream_window = pp->stream_window;
    for (uint32_t i = 0; i < nworkers; i++) {
        struct worker_desc *w = &p->workers[i];
        w->cls = i < pp->cpu_workers ? CLASS_CPU : CLASS_IO;
        void *om = shm_region_alloc(p->region, shm_bytering_size(out_bytes), 4096);
        if (!om || !(w->out = shm_bytering_init(om, out_bytes)))
            goto full;
        atomic_store(&w->state, WORKER_DEAD);
    }
    return p;
full:
    snprintf(err, errlen, "shared memory layout does not fit (%zu bytes)", total);
fail:
    pipeline_destroy(p);
    return NULL;
}

void pipeline_destroy(struct pipeline *p)
{
    if (!p)
        return;
    if (p->region)
        shm_region_destroy(p->region);
    if (p->reply_efd >= 0)
        close(p->reply_efd);
    free(p);
}
