/* worker.h — the job-running processes: a CPU worker (one job at a time,
 * single-threaded) and the I/O worker (one thread per I/O slot).  Both are
 * entered in a freshly forked child and never return. */
#ifndef WSJOBD_WORKER_H
#define WSJOBD_WORKER_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "pipeline/pipeline.h"

/* The front asks a CPU worker to die if it still runs a job: this signal,
 * sent with sigqueue, the job's handle as its value (see stop_request). */
#define WORKER_STOP_SIGNAL SIGUSR2

/* Exit status of a worker that could not start its job types (a Python
 * module that no longer imports): logged, and respawned with backoff. */
#define WORKER_EXIT_START 3

struct worker_limits {
    uint64_t max_jobs;     /* exit after this many jobs (0: never) */
    uint64_t max_rss;      /* exit when resident bytes pass this after a job (0: never) */
};

/* Common set-up of a forked child: dies with the front, drops the front's
 * descriptors and signal dispositions. */
void worker_detach(struct pipeline *p, pid_t front);

_Noreturn void cpu_worker_main(struct pipeline *p, uint16_t wid, const struct worker_limits *lim);
_Noreturn void io_worker_main(struct pipeline *p, uint16_t first_wid, uint16_t nthreads,
                              const struct worker_limits *lim);

#endif
