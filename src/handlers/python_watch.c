/* python_watch.c — cancel and deadline reach Python code that never polls.
 *
 * Each thread that runs Python jobs has a slot.  One watcher thread per
 * worker process looks at the slots' jobs; when one is cancelled or past its
 * deadline it takes the GIL and sets wsjob.Cancelled as an asynchronous
 * exception of that thread (PyThreadState_SetAsyncExc), which the
 * interpreter raises at the thread's next bytecode.  Pending calls would
 * need no GIL but run on the main thread only, and the I/O worker's jobs
 * run on other threads.  Code stuck in C never reaches a bytecode: in a CPU
 * worker the front's grace kill ends it.
 *
 * Costs per job: two atomic stores and one atomic add; a futex wake only
 * when the watcher had parked because no job was running.  While jobs run
 * the watcher sleeps on the first job's wake word (the front bumps it on
 * cancel), at most WATCH_SLICE_MS at a time, so a cancel is seen at once
 * for a CPU worker and within a slice for the I/O worker's other threads.
 *
 * Races are settled under the GIL: the watcher acts only if the slot still
 * runs the same job (`running` == the seq it saw) and no Cancelled was
 * raised for it yet; a job's end withdraws a Cancelled still pending. */
#include "handlers/python_rt.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "worker/job_ctx.h"

#define WATCH_SLICE_MS 20
#define PARK_MS 1000          /* a parked watcher still looks this often */
#define MAX_SLOTS 1100        /* io-threads is at most 1024, plus the main thread */

static struct py_slot *slots[MAX_SLOTS];
static _Atomic unsigned nslots;
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local struct py_slot *self_slot;
static PyInterpreterState *interp;
static _Atomic uint32_t activity;   /* futex word: bumped when a job starts */
static _Atomic int parked;

static struct py_slot *new_slot(PyThreadState *ts)
{
    struct py_slot *s = calloc(1, sizeof *s);   /* lives as long as the process */
    if (!s)
        return NULL;
    s->ts = ts;
    s->tid = PyThread_get_thread_ident();
    pthread_mutex_lock(&slots_lock);
    unsigned n = atomic_load(&nslots);
    if (n == MAX_SLOTS) {
        pthread_mutex_unlock(&slots_lock);
        free(s);
        return NULL;
    }
    slots[n] = s;
    atomic_store(&nslots, n + 1);
    pthread_mutex_unlock(&slots_lock);
    return s;
}

int py_slot_adopt_main(void)
{
    PyThreadState *ts = PyThreadState_Get();
    interp = PyThreadState_GetInterpreter(ts);
    self_slot = new_slot(ts);
    return self_slot ? 0 : -1;
}

struct py_slot *py_slot_peek(void) { return self_slot; }

struct py_slot *py_slot_self(void)
{
    if (self_slot)
        return self_slot;
    /* Made without the GIL: PyThreadState_New takes the runtime's lock. */
    PyThreadState *ts = PyThreadState_New(interp);
    if (!ts)
        return NULL;
    self_slot = new_slot(ts);
    return self_slot;
}

void py_watch_begin(struct py_slot *s, wsjob_ctx *ctx)
{
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed) + 1;
    s->ctx = ctx;
    s->running = seq;
    atomic_store(&s->seq, seq);
    atomic_store(&s->job, job_ctx_job(ctx));
    atomic_fetch_add(&activity, 1);
    if (atomic_load(&parked))
        shm_futex_wake(&activity, 1);
}

void py_watch_end(struct py_slot *s)
{
    atomic_store(&s->job, NULL);
    if (s->raised == s->running)
        PyThreadState_SetAsyncExc(s->tid, NULL);   /* not into the next job */
    s->running = 0;
    s->ctx = NULL;
}

static const char *stop_text(wsjob_ctx *ctx)
{
    uint32_t why = atomic_load_explicit(&job_ctx_job(ctx)->cancel, memory_order_relaxed);
    return why == JOB_CANCELLED ? "job cancelled" : "job deadline passed";
}

PyObject *py_raise_cancelled(struct py_slot *s)
{
    if (!s || !s->ctx) {
        PyErr_SetString(py_cancelled, "job stopped");
        return NULL;
    }
    if (s->raised == s->running)
        PyThreadState_SetAsyncExc(s->tid, NULL);
    s->raised = s->running;
    PyErr_SetString(py_cancelled, stop_text(s->ctx));
    return NULL;
}

static int stopped(const struct job_desc *job, int64_t now)
{
    return atomic_load_explicit(&job->cancel, memory_order_relaxed) != JOB_LIVE ||
           now >= job->deadline_ns;
}

/* The watcher, holding the GIL through its own thread state. */
static void fire(PyThreadState *mine, struct py_slot *s, uint64_t seq)
{
    s->watch_fired = seq;
    PyEval_RestoreThread(mine);
    log_debug("python: watcher sees job %llu stopped (running %llu, raised %llu)",
              (unsigned long long)seq, (unsigned long long)s->running, (unsigned long long)s->raised);
    if (s->running == seq && s->raised != seq && s->ctx && wsjob_cancelled(s->ctx)) {
        s->raised = seq;
        /* The class: the interpreter instantiates it when it raises. */
        PyThreadState_SetAsyncExc(s->tid, py_cancelled);
    }
    PyEval_SaveThread();
}

/* One look at every slot: fires where needed; returns the job to sleep on
 * (NULL if none) and lowers *next_ns to the nearest deadline.  *any is set
 * when some job runs. */
static struct job_desc *scan(PyThreadState *mine, int64_t *next_ns, int *any)
{
    struct job_desc *first = NULL;
    unsigned n = atomic_load(&nslots);
    for (unsigned i = 0; i < n; i++) {
        struct py_slot *s = slots[i];
        struct job_desc *job = atomic_load(&s->job);
        if (!job)
            continue;
        *any = 1;
        uint64_t seq = atomic_load(&s->seq);
        if (seq == s->watch_fired)
            continue;
        if (stopped(job, shm_now_ns())) {
            fire(mine, s, seq);
            continue;
        }
        if (!first)
            first = job;
        if (job->deadline_ns < *next_ns)
            *next_ns = job->deadline_ns;
    }
    return first;
}

static void park(void)
{
    atomic_store(&parked, 1);
    uint32_t seen = atomic_load(&activity);
    int busy = 0;
    unsigned n = atomic_load(&nslots);
    for (unsigned i = 0; i < n && !busy; i++)
        busy = atomic_load(&slots[i]->job) != NULL;
    if (!busy)
        shm_futex_wait(&activity, seen, PARK_MS);
    atomic_store(&parked, 0);
}

static void *watcher_main(void *arg)
{
    (void)arg;
    /* Made on this thread: a thread state records its creator's ident, and
     * SetAsyncExc picks the first state with the ident it is given. */
    PyThreadState *mine = PyThreadState_New(interp);
    if (!mine) {
        log_error("python: no thread state for the cancel watcher");
        return NULL;
    }
    for (;;) {
        int64_t now = shm_now_ns();
        int64_t next = now + (int64_t)WATCH_SLICE_MS * 1000000;
        int any = 0;
        uint32_t seen = 0;
        struct job_desc *first = scan(mine, &next, &any);
        if (!any) {
            park();
            continue;
        }
        if (first)
            seen = atomic_load_explicit(&first->wake, memory_order_acquire);
        int ms = (int)((next - shm_now_ns()) / 1000000) + 1;
        if (ms > WATCH_SLICE_MS)
            ms = WATCH_SLICE_MS;
        if (first && !stopped(first, shm_now_ns()))
            shm_futex_wait(&first->wake, seen, ms);
        else if (!first)
            shm_futex_wait(&activity, atomic_load(&activity), ms);
    }
    return NULL;
}

int py_watch_start(void)
{
    pthread_t t;
    sigset_t all, old;
    /* Signals for the process (the front's stop request) go to a job thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t, NULL, watcher_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("python: cannot start the cancel watcher: %s", strerror(rc));
        return -1;
    }
    pthread_detach(t);
    return 0;
}
