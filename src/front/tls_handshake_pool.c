/* tls_handshake_pool.c — threads for the expensive part of TLS handshakes.
 *
 * A TLS 1.2 server handshake costs two elliptic-curve operations per flight
 * (an ECDHE key pair and the certificate's signature, then the shared
 * secret): about a millisecond each on one core.  Done on the event loop, a
 * storm of new wss:// connections delays every other client's pings by tens
 * of milliseconds.  So the loop hands the session to one of these threads
 * for each mbedtls_ssl_handshake() call and takes it back when it is done.
 *
 * Design, the simplest that is correct:
 *  - One mutex-protected list of waiting jobs, a condition variable the idle
 *    threads sleep on, and a list of finished jobs the loop drains.  Threads
 *    hold the mutex only to link and unlink, never while working, so the
 *    loop's lock never waits on a handshake.
 *  - A thread tells the loop through an eventfd the loop watches (a write
 *    only when the finished list was empty: the loop drains it all), never
 *    through libevent, which is not thread-enabled in this process.
 *  - The mutex hand-off is the only synchronisation the jobs need: whatever
 *    a job's owner wrote before handing it over is visible to the next owner.
 *  - The loop takes at most DONE_BATCH finished jobs per turn; if more are
 *    left it makes the event active again, so other clients get their turn.
 *
 * Threads: one fewer than the cores, at least one, at most THREADS_MAX: a
 * core stays free for the loop, which is what keeps its latency low; and
 * they run batch-scheduled at nice 5, so a waking loop preempts them.  The
 * daemon forks workers while these threads exist; the children never touch
 * this pool or mbedTLS's locks, and glibc keeps malloc usable across fork. */
#include "front/tls_handshake_pool.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/log.h"

#define THREADS_MAX 4
#define DONE_BATCH  32    /* finished handshakes the loop takes back per turn */
#define THREAD_NICE 5     /* between the loop (0) and the CPU workers (10) */

enum { W_LOOP, W_WAITING, W_RUNNING, W_DONE };

struct list {
    struct hs_job *head, *tail;
    size_t n;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;          /* a job is waiting, or stop */
    struct list waiting, done;
    int stop;
    int efd;                      /* threads -> loop: something is done */
    struct event *ev;
    pthread_t tids[THREADS_MAX];
    unsigned nthreads;
    int running;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .efd = -1,
};

static void list_push(struct list *l, struct hs_job *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static void list_unlink(struct list *l, struct hs_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
    l->n--;
}

static struct hs_job *list_pop(struct list *l)
{
    struct hs_job *j = l->head;
    if (j)
        list_unlink(l, j);
    return j;
}

unsigned hs_pool_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores <= 2)
        return 1;
    return cores - 1 > THREADS_MAX ? THREADS_MAX : (unsigned)(cores - 1);
}

/* ---- the threads ------------------------------------------------------------ */

static void notify_loop(void)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the loop wakes anyway. */
    ssize_t n = write(pool.efd, &one, sizeof one);
    (void)n;
}

/* Like the CPU workers (worker.c), batch-scheduled at a lower priority:
 * when the loop wakes it must not wait behind a handshake's time slice.
 * Above the workers' nice 10, so a connection's setup still goes ahead of
 * bulk jobs.  On Linux both calls apply to the calling thread only. */
static void lower_priority(void)
{
    struct sched_param sp = { .sched_priority = 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &sp) < 0)
        log_debug("tls: SCHED_BATCH for a handshake thread: %s", strerror(errno));
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), THREAD_NICE) < 0)
        log_debug("tls: nice for a handshake thread: %s", strerror(errno));
}

static void *thread_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "tls-handshake");   /* for top -H and ps -L */
    lower_priority();
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && !pool.waiting.head)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stop)
            break;
        struct hs_job *j = list_pop(&pool.waiting);
        j->where = W_RUNNING;
        pthread_mutex_unlock(&pool.lock);
        j->run(j);
        pthread_mutex_lock(&pool.lock);
        j->where = W_DONE;
        int first = pool.done.head == NULL;
        list_push(&pool.done, j);
        if (first)
            notify_loop();
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* ---- the loop's side ------------------------------------------------------------ */

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t count;
    ssize_t n = read(fd, &count, sizeof count);   /* reset before looking: no wake-up lost */
    (void)n;
    struct hs_job *batch[DONE_BATCH];
    size_t got = 0;
    pthread_mutex_lock(&pool.lock);
    while (got < DONE_BATCH && pool.done.head) {
        struct hs_job *j = list_pop(&pool.done);
        j->where = W_LOOP;
        batch[got++] = j;
    }
    int more = pool.done.head != NULL;
    pthread_mutex_unlock(&pool.lock);
    for (size_t i = 0; i < got; i++)
        batch[i]->done(batch[i], 0);
    if (more)
        event_active(pool.ev, EV_READ, 0);   /* the rest next turn */
}

/* The threads start with every signal blocked, so signals reach the loop's
 * thread, where libevent handles them, and never interrupt a handshake. */
static int start_threads(char *err, size_t errlen)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    unsigned want = hs_pool_threads();
    int rc = 0;
    for (pool.nthreads = 0; pool.nthreads < want && rc == 0; pool.nthreads++) {
        rc = pthread_create(&pool.tids[pool.nthreads], NULL, thread_main, NULL);
        if (rc) {
            snprintf(err, errlen, "cannot start a TLS handshake thread: %s", strerror(rc));
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc ? -1 : 0;
}

int hs_pool_running(void)
{
    return pool.running;
}

int hs_pool_start(struct event_base *base, char *err, size_t errlen)
{
    if (pool.running)
        return 0;
    pool.stop = 0;
    pool.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pool.efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    pool.ev = event_new(base, pool.efd, EV_READ | EV_PERSIST, done_cb, NULL);
    if (!pool.ev || event_add(pool.ev, NULL) < 0) {
        snprintf(err, errlen, "cannot watch the TLS handshake threads");
        hs_pool_stop();
        return -1;
    }
    pool.running = 1;
    if (start_threads(err, errlen) < 0) {
        hs_pool_stop();
        return -1;
    }
    return 0;
}

void hs_pool_submit(struct hs_job *j)
{
    pthread_mutex_lock(&pool.lock);
    j->where = W_WAITING;
    list_push(&pool.waiting, j);
    pthread_cond_signal(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
}

size_t hs_pool_waiting(void)
{
    pthread_mutex_lock(&pool.lock);
    size_t n = pool.waiting.n;
    pthread_mutex_unlock(&pool.lock);
    return n;
}

int hs_pool_cancel(struct hs_job *j)
{
    pthread_mutex_lock(&pool.lock);
    int taken = j->where == W_WAITING;
    if (taken) {
        list_unlink(&pool.waiting, j);
        j->where = W_LOOP;
    }
    pthread_mutex_unlock(&pool.lock);
    return taken;
}

/* After the join: the loop is the only thread left. */
static void drop_all(struct list *l)
{
    struct hs_job *j;
    while ((j = list_pop(l))) {
        j->where = W_LOOP;
        j->done(j, 1);
    }
}

void hs_pool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < pool.nthreads; i++)
        pthread_join(pool.tids[i], NULL);
    pool.nthreads = 0;
    drop_all(&pool.waiting);
    drop_all(&pool.done);
    if (pool.ev)
        event_free(pool.ev);
    pool.ev = NULL;
    if (pool.efd >= 0)
        close(pool.efd);
    pool.efd = -1;
    pool.running = 0;
}
