/* worker.c — the loops that take jobs from a job ring and run them.
 *
 * Workers take one job at a time (no prefetch): a short job never waits
 * behind a long one while another worker is idle.  A worker's claim word
 * always names the job it holds, from the instant the job leaves the ring
 * until its final reply is in the reply ring, so the front can find and
 * re-run or fail it if the worker dies at any point. */
#include "worker/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"
#include "handlers/handler_registry.h"
#include "handlers/python_types.h"
#include "worker/job_ctx.h"

#define IDLE_POLL_MS 1000   /* how often an idle worker looks at exit_req */
#define CPU_WORKER_NICE 10
#define RSS_PERIOD_NS 1000000000ll   /* how often a worker publishes its RSS */

/* Closes descriptors lo..hi (hi < 0: every one above lo).  close_range
 * where the kernel has it (5.9); else one close per possible descriptor. */
static void close_fds(int lo, int hi)
{
    if (close_range((unsigned)lo, hi < 0 ? ~0u : (unsigned)hi, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > (1 << 20))
        max = 1 << 20;
    for (long fd = lo; fd <= (hi < 0 ? max - 1 : hi); fd++)
        close((int)fd);
}

/* The claim word of this process's job, for stop_request (CPU workers). */
static _Atomic uint64_t *own_claim;

/* SIGUSR2 from the front, with a job handle as its value: the handler
 * running that job ignored a cancel past the grace period.  The front can
 * read our claim and signal us, but not in one step: meanwhile the job may
 * have finished and the next one begun.  So the comparison is made here,
 * against our own claim, and a worker that moved on is spared. */
static void stop_request(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if (si->si_code != SI_QUEUE || !own_claim)
        return;
    uint64_t h = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
    if (h != 0 && atomic_load_explicit(own_claim, memory_order_relaxed) == h)
        raise(SIGKILL);
}

static void listen_for_stop_requests(_Atomic uint64_t *claim)
{
    own_claim = claim;
    struct sigaction sa = { .sa_sigaction = stop_request, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset(&sa.sa_mask);
    if (sigaction(WORKER_STOP_SIGNAL, &sa, NULL) < 0)
        log_warn("sigaction: %s: a stuck handler is stopped by SIGKILL only", strerror(errno));
}

void worker_detach(struct pipeline *p, pid_t front)
{
    /* PDEATHSIG is delivered when the forking thread exits; the front is
     * single-threaded, so that is the front's death.  Check the parent once
     * more after arming it: the front may have died just before. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != front)
        _exit(0);
    /* The front's handlers (libevent's signal pipe) mean nothing here, and
     * SIGTERM from an operator or systemd's KillMode must simply end us. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Client sockets and listeners must not stay open in a worker, or a
     * connection the front closes would not really close.  Keep stdio and
     * the reply eventfd. */
    int efd = p->reply_efd;
    if (efd > 3)
        close_fds(3, efd - 1);
    close_fds(efd + 1, -1);
}

static uint64_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, res = 0;
    int n = fscanf(f, "%lu %lu", &size, &res);
    fclose(f);
    return n == 2 ? (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

static void run_one(struct pipeline *p, uint16_t wid, uint64_t handle)
{
    struct worker_desc *w = pipeline_worker(p, wid);
    struct job_desc *job = &p->jobs[handle_index(handle)];
    atomic_store_explicit(&w->job_type, job->type, memory_order_relaxed);
    atomic_store_explicit(&w->job_start_ns, shm_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&w->state, WORKER_BUSY, memory_order_release);
    job_run(p, wid, handle, registry_get(job->type));
    /* The final reply is in the ring: only now may the claim go. */
    atomic_store_explicit(&w->claim, 0, memory_order_release);
    atomic_store_explicit(&w->state, WORKER_IDLE, memory_order_release);
    atomic_fetch_add_explicit(&w->jobs_done, 1, memory_order_relaxed);
}

/* Reading /proc costs a few microseconds: done at most once a period, so
 * a worker running thousands of tiny jobs a second does not pay it per job.
 * The front reads the figure from shared memory and never opens /proc. */
static void publish_rss(struct worker_desc *w, int64_t *next_ns)
{
    int64_t now = shm_now_ns();
    if (now < *next_ns)
        return;
    *next_ns = now + RSS_PERIOD_NS;
    atomic_store_explicit(&w->rss_kib, (uint32_t)(resident_bytes() >> 10), memory_order_relaxed);
}

/* Has this process passed a recycling limit?  `done` counts the jobs of the
 * whole process (all its threads). */
static int past_limits(const struct worker_limits *lim, uint64_t done)
{
    if (!lim)
        return 0;
    if (lim->max_jobs && done >= lim->max_jobs) {
        log_info("recycling after %llu jobs", (unsigned long long)done);
        return 1;
    }
    if (lim->max_rss) {
        uint64_t rss = resident_bytes();
        if (rss > lim->max_rss) {
            log_info("recycling at %llu resident bytes", (unsigned long long)rss);
            return 1;
        }
    }
    return 0;
}

/* Jobs finished by this process: one counter for a CPU worker, shared by
 * the threads of the I/O worker. */
static _Atomic uint64_t process_jobs;

/* Asks every worker descriptor of this process to stop taking jobs; each finishes
 * the one it holds (nothing is lost) and its loop ends. */
static void stop_process(struct pipeline *p, uint16_t first_wid, uint16_t n)
{
    for (uint16_t i = 0; i < n; i++)
        atomic_store_explicit(&pipeline_worker(p, (uint16_t)(first_wid + i))->exit_req, 1,
                              memory_order_release);
}

struct loop_args {
    struct pipeline *p;
    uint16_t wid, first_wid, nwids;
    enum worker_class cls;
    const struct worker_limits *lim;
};

/* Takes and runs jobs of ring `cls` until asked to exit or a limit is hit. */
static void job_loop(const struct loop_args *a)
{
    struct worker_desc *w = pipeline_worker(a->p, a->wid);
    int64_t rss_next_ns = 0;
    while (!atomic_load_explicit(&w->exit_req, memory_order_acquire)) {
        uint64_t handle;
        publish_rss(w, &rss_next_ns);
        if (shm_jobring_take_wait(a->p->ring[a->cls], a->wid, &w->claim, &handle, IDLE_POLL_MS) < 0)
            continue;
        run_one(a->p, a->wid, handle);
        uint64_t done = atomic_fetch_add(&process_jobs, 1) + 1;
        if (past_limits(a->lim, done)) {
            stop_process(a->p, a->first_wid, a->nwids);
            return;
        }
    }
}

static void announce(struct pipeline *p, uint16_t wid)
{
    struct worker_desc *w = pipeline_worker(p, wid);
    atomic_store(&w->pid, getpid());
    atomic_store(&w->tid, (int32_t)syscall(SYS_gettid));
    atomic_store(&w->job_start_ns, 0);
    atomic_store(&w->state, WORKER_IDLE);
}

/* CPU workers run batch-scheduled at a lower priority, like nginx's
 * worker_priority turned the other way: when the front wakes (a socket, a
 * reply, a timer) it should not wait behind a worker's time slice.  The
 * front only ever does short work, so this costs the workers little. */
static void lower_priority(void)
{
    struct sched_param sp = { .sched_priority = 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
        log_debug("SCHED_BATCH: %s", strerror(errno));
    if (setpriority(PRIO_PROCESS, 0, CPU_WORKER_NICE) < 0)
        log_debug("setpriority: %s", strerror(errno));
}

_Noreturn void cpu_worker_main(struct pipeline *p, uint16_t wid, const struct worker_limits *lim)
{
    lower_priority();
    char role[32];
    snprintf(role, sizeof role, "cpu-worker %u", wid);
    log_set_role(role);
    listen_for_stop_requests(&pipeline_worker(p, wid)->claim);
    /* Before announcing: the daemon is ready only once the modules are in. */
    if (python_worker_start(0) < 0)
        _exit(WORKER_EXIT_START);
    announce(p, wid);
    struct loop_args a = { .p = p, .wid = wid, .first_wid = wid, .nwids = 1,
                           .cls = CLASS_CPU, .lim = lim };
    job_loop(&a);
    _exit(0);
}

static void *io_thread_main(void *arg)
{
    const struct loop_args *a = arg;
    announce(a->p, a->wid);
    job_loop(a);
    return NULL;
}

_Noreturn void io_worker_main(struct pipeline *p, uint16_t first_wid, uint16_t nthreads,
                              const struct worker_limits *lim)
{
    log_set_role("io-worker");
    if (python_worker_start(1) < 0)
        _exit(WORKER_EXIT_START);
    struct loop_args *ts = calloc(nthreads, sizeof *ts);
    pthread_t *tids = calloc(nthreads, sizeof *tids);
    if (!ts || !tids) {
        log_error("out of memory starting %u I/O threads", nthreads);
        _exit(1);
    }
    for (uint16_t i = 0; i < nthreads; i++) {
        ts[i] = (struct loop_args){ .p = p, .wid = (uint16_t)(first_wid + i), .first_wid = first_wid,
                                    .nwids = nthreads, .cls = CLASS_IO, .lim = lim };
        int rc = pthread_create(&tids[i], NULL, io_thread_main, &ts[i]);
        if (rc != 0) {
            log_error("pthread_create: %s", strerror(rc));
            _exit(1);
        }
    }
    for (uint16_t i = 0; i < nthreads; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    free(ts);
    _exit(0);
}
