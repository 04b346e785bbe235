/* pipeline.h — the daemon's shared memory: what the front and the workers
 * both see.  Made once, before the first fork, in one shm region; every
 * pointer in here is valid in every process because children inherit the
 * mapping at the same address.
 *
 * Ownership, in one place (pipeline/job.h tells a job's whole life):
 *   job descriptors  allocated and freed by the front only; a worker reads
 *                  one between taking its handle from a job ring and posting
 *                  the job's final reply, and writes only `wake`-guarded
 *                  fields listed below.
 *   input heap     the front allocates a job's input bytes and frees them
 *                  when the descriptor is released; workers only read them.
 *   worker descriptors  each written by its worker (state, claim) and read
 *                  by the front (stats, supervision); `exit_req` written by
 *                  the front.
 *   output rings   one bytering per worker: the worker allocates its replies'
 *                  payloads, the front frees them in order after copying. */
#ifndef WSJOBD_PIPELINE_H
#define WSJOBD_PIPELINE_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "ring.h"
#include "shm.h"

#define JOB_INLINE   96     /* input bytes kept in the descriptor itself (no heap) */
#define JOB_ID_MAX   64     /* the client's id of a job (SPEC §5: 1-64 bytes) */
#define REPLY_INLINE 72     /* payload bytes carried in the reply record */
#define WORKER_MAX   1280   /* cpu workers + io threads; worker ids 1..WORKER_MAX */

/* A job handle: (generation << 32) | (descriptor index + 1).  Never 0.  The
 * generation changes whenever a descriptor is released or a job is re-queued after
 * a crash, so a reply that names an old handle is recognised and dropped. */
static inline uint64_t job_handle(uint32_t idx, uint32_t gen)
{
    return ((uint64_t)gen << 32) | (uint64_t)(idx + 1);
}
static inline uint32_t handle_index(uint64_t h) { return (uint32_t)h - 1; }
static inline uint32_t handle_gen(uint64_t h) { return (uint32_t)(h >> 32); }

enum job_cancel { JOB_LIVE = 0, JOB_CANCELLED = 1, JOB_TIMED_OUT = 2 };

struct job_desc {
    /* Written by the front before the handle is pushed (the push's release
     * store publishes them; the worker's take acquires them). */
    uint16_t type;          /* handler index */
    uint16_t pad;
    uint32_t input_len;
    int64_t  input_off;     /* offset in the input heap, -1: inline */
    int64_t  deadline_ns;   /* CLOCK_MONOTONIC */
    int64_t  enqueued_ns;
    uint64_t handle;        /* the handle this descriptor was last pushed under */
    uint8_t  id_len;        /* the client's id, for handlers (0: none, raw mode) */
    char     id[JOB_ID_MAX];
    /* Written by the front while the job runs; read by the worker. */
    _Atomic uint32_t cancel;  /* enum job_cancel */
    _Atomic uint32_t wake;    /* futex: bumped on cancel and on stream ack */
    _Atomic uint64_t acked;   /* stream bytes the front no longer buffers */
    uint8_t  input[JOB_INLINE];
};

enum worker_state { WORKER_IDLE = 0, WORKER_BUSY = 1, WORKER_DEAD = 2 };
enum worker_class { CLASS_CPU = 0, CLASS_IO = 1 };

struct worker_desc {
    _Atomic uint64_t claim;       /* job handle held, 0 when none (ring claim word) */
    _Atomic int32_t  pid;
    _Atomic int32_t  tid;
    _Atomic uint32_t state;       /* enum worker_state */
    _Atomic uint32_t job_type;
    _Atomic int64_t  job_start_ns;
    _Atomic uint64_t jobs_done;
    _Atomic uint32_t exit_req;    /* front asks the worker to exit between jobs */
    _Atomic uint32_t incarnation; /* bumped by the front each time it dies */
    uint32_t cls;                 /* enum worker_class, fixed at start-up */
    _Atomic uint32_t rss_kib;     /* resident KiB of its process, by the worker
                                     (worker.c: at most a second old while idle,
                                     else as of its last job) */
    struct shm_bytering *out;     /* this worker's reply payloads */
};
/* One cache line each (the array is 64-aligned): a worker's stores to its
 * state and claim never contend with another worker's line. */
_Static_assert(sizeof(struct worker_desc) == 64, "worker_desc is not one cache line");

enum reply_kind { REPLY_CHUNK = 1, REPLY_PROGRESS = 2, REPLY_DONE = 3, REPLY_ERROR = 4 };

/* Error codes of the JSON protocol (SPEC §5), shared by front and workers. */
enum job_error {
    JE_NONE = 0,
    JE_BAD_REQUEST, JE_UNKNOWN_TYPE, JE_TOO_LARGE, JE_DUPLICATE_ID, JE_BUSY,
    JE_TIMEOUT, JE_CANCELLED, JE_WORKER_CRASHED, JE_HANDLER_ERROR, JE_FORBIDDEN,
    JE_SHUTTING_DOWN,
    JE_NOT_FOUND,           /* a detached job's handle unknown or expired */
    JE_SUPERSEDED,          /* a newer attach follows the detached job now */
    JE_COUNT
};
const char *job_error_name(enum job_error e);

/* One reply-ring record.  Payload (chunk/output bytes, or an error message)
 * is inline when it fits, else in the worker's output bytering at `pos`. */
struct reply {
    uint64_t handle;
    uint8_t  kind;          /* enum reply_kind */
    uint8_t  code;          /* enum job_error, for REPLY_ERROR */
    uint16_t wid;           /* producing worker */
    uint32_t len;           /* payload bytes */
    int64_t  pos;           /* bytering position, -1: inline */
    uint32_t incarnation;   /* of the producing worker: a payload of an old
                               incarnation lives in a bytering since reset */
    uint32_t pad;
    uint64_t a, b;          /* PROGRESS: done, total; DONE: run_us */
    uint8_t  data[REPLY_INLINE];
};
_Static_assert(sizeof(struct reply) <= SHM_REPLY_REC, "reply record exceeds a ring slot");

struct pipeline {
    struct shm_region   *region;
    struct shm_jobring  *ring[2];     /* by enum worker_class */
    struct shm_replyring *replies;
    struct job_desc     *jobs;
    uint32_t             njobs;
    uint8_t             *heap_base;   /* input bytes */
    size_t               heap_size;
    struct worker_desc  *workers;     /* index wid - 1 */
    uint32_t             nworkers;    /* cpu workers first, then io threads */
    uint32_t             ncpu;
    size_t               max_message;
    size_t               stream_window;
    int                  reply_efd;
};

struct pipeline_params {
    uint32_t cpu_workers, io_threads, queue_depth;
    size_t   max_message, stream_window;
};

/* Builds the region and everything in it; NULL with a reason on failure. */
struct pipeline *pipeline_create(const struct pipeline_params *p, char *err, size_t errlen);
void pipeline_destroy(struct pipeline *p);

static inline struct worker_desc *pipeline_worker(struct pipeline *p, uint16_t wid)
{
    return &p->workers[wid - 1];
}

#endif
