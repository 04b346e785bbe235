/* supervisor.c — worker processes: start, reap, recover, respawn.
 *
 * One "child" is a CPU worker (one worker id) or the I/O worker process (one
 * worker id per thread).  Recovery after a death, in this order:
 *   1. the child's half-written reply slots become tombstones, so the reply
 *      ring cannot stall on them;
 *   2. the reply ring is drained (for at most RECOVER_SPIN_NS: see
 *      drain_all), so the replies the child finished are seen before its
 *      jobs are judged (a job whose final reply arrived is done, not lost);
 *   3. each job it held (claim words, and ring slots claimed but not yet
 *      released) goes back to dispatch: re-run or answered worker_crashed;
 *   4. its output rings are reset, its incarnation bumped, and a new child
 *      forked. */
#include "pipeline/supervisor.h"

#include <errno.h>
#include <event2/event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timeval.h"
#include "pipeline/dispatch.h"

#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   5000
#define YOUNG_DEATH_MS   1000   /* dying sooner than this after start counts against it */
#define RECOVER_SPIN_NS  5000000

struct child {
    struct supervisor *sup;
    pid_t    pid;            /* 0 while not running */
    uint16_t first_wid, nwids;
    uint8_t  cls;
    int64_t  started_ns;
    uint64_t jobs_at_start;  /* jobs_done of its first worker descriptor at fork */
    int      backoff_ms;
    struct event *respawn_ev;
};

struct supervisor {
    struct event_base *base;
    struct pipeline   *p;
    struct dispatch   *d;
    struct worker_limits lim;
    struct child      *children;
    unsigned           nchildren;
    struct event      *sigchld_ev;
    uint64_t           restarts;
    int                stopping;
    pid_t              front;
};

static int spawn(struct child *c)
{
    struct supervisor *s = c->sup;
    for (uint16_t i = 0; i < c->nwids; i++) {
        struct worker_desc *w = pipeline_worker(s->p, (uint16_t)(c->first_wid + i));
        atomic_store(&w->exit_req, 0);
        atomic_store(&w->claim, 0);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        worker_detach(s->p, s->front);
        if (c->cls == CLASS_CPU)
            cpu_worker_main(s->p, c->first_wid, &s->lim);
        io_worker_main(s->p, c->first_wid, c->nwids, &s->lim);
    }
    c->pid = pid;
    c->started_ns = shm_now_ns();
    c->jobs_at_start = atomic_load(&pipeline_worker(s->p, c->first_wid)->jobs_done);
    log_debug("started %s (pid %d)", c->cls == CLASS_CPU ? "cpu worker" : "io worker", (int)pid);
    return 0;
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct child *c = arg;
    if (c->sup->stopping || c->pid)
        return;
    if (spawn(c) < 0) {
        struct timeval tv = tv_from_ms(1000);
        event_add(c->respawn_ev, &tv);
        return;
    }
    c->sup->restarts++;
}

/* Step 2 of recovery: drain until the ring is empty or RECOVER_SPIN_NS
 * pass, whichever comes first.  A live producer may be mid-write in a slot
 * ahead of the dead child's records, and popping stops at that slot; the
 * write is a memcpy of one record, but the producer can be preempted inside
 * it, so the wait is cut off rather than promised short.  A dead child's
 * record still behind such a slot when the wait ends comes out later: by
 * then its job was re-run under a new generation or answered (step 3), so
 * the record is stale and dropped, and one whose payload lived in the reset
 * output ring is dropped by its incarnation (reply_drain.c).  Under steady
 * load the ring is rarely empty, so this can hold the loop the whole
 * RECOVER_SPIN_NS. */
static void drain_all(struct supervisor *s)
{
    int64_t until = shm_now_ns() + RECOVER_SPIN_NS;
    for (;;) {
        dispatch_drain(s->d);
        if (shm_replyring_depth(s->p->replies) == 0 || shm_now_ns() > until)
            return;
        sched_yield();
    }
}

static void recover(struct supervisor *s, struct child *c)
{
    struct pipeline *p = s->p;
    for (uint16_t i = 0; i < c->nwids; i++)
        shm_replyring_recover(p->replies, (uint16_t)(c->first_wid + i));
    drain_all(s);
    for (uint16_t i = 0; i < c->nwids; i++) {
        uint16_t wid = (uint16_t)(c->first_wid + i);
        struct worker_desc *w = pipeline_worker(p, wid);
        uint64_t held[16];
        size_t n = shm_jobring_recover(p->ring[c->cls], wid, held, 16);
        uint64_t h = atomic_exchange(&w->claim, 0);
        if (h)
            dispatch_worker_lost(s->d, h);
        for (size_t k = 0; k < n; k++)
            dispatch_worker_lost(s->d, held[k]);
        shm_bytering_reset(w->out);
        atomic_fetch_add(&w->incarnation, 1);
        atomic_store(&w->state, WORKER_DEAD);
        atomic_store(&w->pid, 0);
        atomic_store(&w->tid, 0);
        atomic_store(&w->rss_kib, 0);
    }
}

static void describe_exit(const struct child *c, int status, char *buf, size_t len)
{
    const char *what = c->cls == CLASS_CPU ? "cpu worker" : "io worker";
    if (WIFSIGNALED(status))
        snprintf(buf, len, "%s %u (pid %d) killed by signal %d", what, c->first_wid,
                 (int)c->pid, WTERMSIG(status));
    else
        snprintf(buf, len, "%s %u (pid %d) exited with status %d", what, c->first_wid,
                 (int)c->pid, WEXITSTATUS(status));
}

static void child_died(struct supervisor *s, struct child *c, int status)
{
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    char msg[128];
    describe_exit(c, status, msg, sizeof msg);
    if (clean)
        log_info("%s (recycled)", msg);
    else
        log_warn("%s", msg);
    int64_t lived_ms = (shm_now_ns() - c->started_ns) / 1000000;
    int did_work = atomic_load(&pipeline_worker(s->p, c->first_wid)->jobs_done) != c->jobs_at_start;
    recover(s, c);
    c->pid = 0;
    if (s->stopping)
        return;
    /* A child that keeps dying young without finishing a job waits longer
     * each time, so a broken plug-in or a poison job cannot turn the front
     * into a fork loop; one that was doing useful work comes back at once. */
    if (!clean && lived_ms < YOUNG_DEATH_MS && !did_work)
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    else
        c->backoff_ms = 0;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    if (!c->backoff_ms) {
        respawn_cb(-1, 0, c);
        return;
    }
    struct timeval tv = tv_from_ms(c->backoff_ms);
    event_add(c->respawn_ev, &tv);
}

static struct child *find_child(struct supervisor *s, pid_t pid)
{
    for (unsigned i = 0; i < s->nchildren; i++)
        if (s->children[i].pid == pid)
            return &s->children[i];
    return NULL;
}

static void reap(struct supervisor *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = find_child(s, pid);
        if (c)
            child_died(s, c, status);
    }
}

static void sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reap(arg);
}

struct supervisor *supervisor_start(struct event_base *base, struct pipeline *p,
                                    struct dispatch *d, const struct worker_limits *lim,
                                    char *err, size_t errlen)
{
    struct supervisor *s = calloc(1, sizeof *s);
    unsigned nio = p->nworkers - p->ncpu;
    unsigned n = p->ncpu + (nio ? 1 : 0);
    if (!s || !(s->children = calloc(n, sizeof *s->children))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->p = p;
    s->d = d;
    s->lim = *lim;
    s->front = getpid();
    s->nchildren = n;
    for (unsigned i = 0; i < n; i++) {
        struct child *c = &s->children[i];
        c->sup = s;
        c->cls = i < p->ncpu ? CLASS_CPU : CLASS_IO;
        c->first_wid = (uint16_t)(i + 1);
        c->nwids = c->cls == CLASS_CPU ? 1 : (uint16_t)nio;
        c->respawn_ev = evtimer_new(base, respawn_cb, c);
        if (!c->respawn_ev) {
            snprintf(err, errlen, "out of memory");
            supervisor_free(s);
            return NULL;
        }
    }
    s->sigchld_ev = evsignal_new(base, SIGCHLD, sigchld_cb, s);
    if (!s->sigchld_ev || event_add(s->sigchld_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot watch SIGCHLD");
        supervisor_free(s);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        if (spawn(&s->children[i]) < 0) {
            snprintf(err, errlen, "cannot fork workers: %s", strerror(errno));
            supervisor_stop(s, 0);
            supervisor_free(s);
            return NULL;
        }
    }
    return s;
}

void supervisor_set_limits(struct supervisor *s, const struct worker_limits *lim)
{
    s->lim = *lim;   /* applies to workers forked from now on */
}

int supervisor_alive(const struct supervisor *s, enum worker_class cls)
{
    for (unsigned i = 0; i < s->nchildren; i++)
        if (s->children[i].cls == cls && s->children[i].pid > 0)
            return 1;
    return 0;
}

uint64_t supervisor_restarts(const struct supervisor *s) { return s->restarts; }

static unsigned running(const struct supervisor *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->nchildren; i++)
        n += s->children[i].pid > 0;
    return n;
}

void supervisor_stop(struct supervisor *s, int timeout_ms)
{
    s->stopping = 1;
    for (uint32_t i = 0; i < s->p->nworkers; i++)
        atomic_store(&s->p->workers[i].exit_req, 1);
    shm_jobring_wake_all(s->p->ring[CLASS_CPU]);
    shm_jobring_wake_all(s->p->ring[CLASS_IO]);
    for (unsigned i = 0; i < s->nchildren; i++)
        if (s->children[i].pid > 0)
            kill(s->children[i].pid, SIGTERM);
    int64_t until = shm_now_ns() + (int64_t)timeout_ms * 1000000;
    while (running(s)) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            struct child *c = find_child(s, pid);
            if (c)
                c->pid = 0;
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        if (shm_now_ns() > until) {
            for (unsigned i = 0; i < s->nchildren; i++)
                if (s->children[i].pid > 0)
                    kill(s->children[i].pid, SIGKILL);
            until = INT64_MAX;
        }
        usleep(2000);
    }
}

void supervisor_free(struct supervisor *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nchildren; i++)
        if (s->children[i].respawn_ev)
            event_free(s->children[i].respawn_ev);
    if (s->sigchld_ev)
        event_free(s->sigchld_ev);
    free(s->children);
    free(s);
}
