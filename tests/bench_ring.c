/* bench_ring.c — throughput and wake-up latency of the shm rings between
 * processes, beside the usual alternatives on the same machine in the same
 * run.  One JSON object per line:
 *
 *   {"bench":"ring","impl":..,"producers":P,"consumers":C,"msg_bytes":64,"msgs_per_s":X}
 *   {"bench":"wake","impl":..,"p50_ns":..,"p99_ns":..}
 *
 * Throughput: the producers send for BENCH_SECONDS, then a stop message;
 * the rate is messages received over the time until the last consumer got
 * its stop.  1 -> 1 runs pin the producer and the consumer to different
 * CPUs.  Implementations:
 *
 *   jobring         a jobring value naming a 64-byte payload in shared
 *                   memory, which the consumer reads; consumers in
 *                   shm_jobring_take_wait (they sleep when idle)
 *   replyring       64-byte records through shm_replyring_push/pop; the
 *                   consumer sleeps on the eventfd when idle
 *   mutex_condvar   a process-shared pthread mutex and two condvars around a
 *                   ring of 64-byte slots
 *   pipe            one write() per 64-byte message; the reader reads up to
 *                   64 KiB at a time
 *   busy_poll_spsc  a two-process single-producer single-consumer ring of
 *                   64-byte slots, both sides spinning: the machine's limit
 *
 * Wake-up latency: two processes on different CPUs pass a timestamp back
 * and forth; each waits 200 us before answering, so its peer has gone to
 * sleep (past take_wait's short spin) and the figure is a real cross-CPU
 * wake-up.  "jobring_handoff" answers at once instead: the peer is still
 * in its spin, which is what a busy worker sees.
 *
 * `bench_ring jobring pipe` runs only the benchmarks named (jobring,
 * jobring2, replyring, mutex, pipe, spsc, wake). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "shm.h"

#define BENCH_SECONDS 1.0
#define MSG_BYTES     64
#define RING_SLOTS    1024
#define POOL          (4 * RING_SLOTS)   /* jobring payloads, reused round-robin */
#define STOP          UINT64_MAX
#define WAKE_ROUNDS   2000
#define WAKE_GAP_US   200

struct msg {
    uint64_t w[MSG_BYTES / 8];
};

/* Start line and results, shared with the children. */
struct sync {
    alignas(64) _Atomic uint32_t ready;
    alignas(64) _Atomic uint32_t go;
    alignas(64) _Atomic uint64_t received;
    _Atomic int64_t last_done_ns;
    _Atomic uint64_t sink;   /* keeps the consumers' reads alive */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0) {
        for (int i = 0; i < CPU_SETSIZE; i++)
            CPU_SET(i, &set);
    } else {
        CPU_SET(cpu, &set);
    }
    sched_setaffinity(0, sizeof set, &set);
}

static void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* A full ring: spin a little, then let others run. */
static void relax(unsigned *spins)
{
    if (++*spins < 64) {
        cpu_pause();
        return;
    }
    *spins = 0;
    sched_yield();
}

static void wait_start(struct sync *s)
{
    atomic_fetch_add(&s->ready, 1);
    unsigned spins = 0;
    while (atomic_load_explicit(&s->go, memory_order_acquire) == 0)
        relax(&spins);
}

/* A consumer reports what it got and when it got its stop. */
static void finish(struct sync *s, uint64_t received, uint64_t sink)
{
    atomic_fetch_add(&s->received, received);
    atomic_fetch_add(&s->sink, sink);
    int64_t t = now_ns(), last = atomic_load(&s->last_done_ns);
    while (t > last && !atomic_compare_exchange_weak(&s->last_done_ns, &last, t))
        ;
}

typedef void (*role_fn)(void *ctx, struct sync *s, int index);

static pid_t spawn(role_fn fn, void *ctx, struct sync *s, int index, int cpu)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pin(cpu);
    wait_start(s);
    fn(ctx, s, index);
    _exit(0);
}

/* Forks the children, runs the parent's role, reports msgs/s. */
static void run(const char *impl, int producers, int consumers, role_fn child,
                role_fn parent, void *ctx, struct sync *s, int nchildren, int pinned)
{
    memset(s, 0, sizeof *s);
    pin(pinned ? 0 : -1);
    pid_t pid[4];
    for (int i = 0; i < nchildren; i++)
        pid[i] = spawn(child, ctx, s, i, pinned ? 1 : -1);
    while (atomic_load(&s->ready) != (uint32_t)nchildren)
        usleep(100);
    int64_t t0 = now_ns();
    atomic_store_explicit(&s->go, 1, memory_order_release);
    parent(ctx, s, -1);
    for (int i = 0; i < nchildren; i++)
        waitpid(pid[i], NULL, 0);
    double secs = (double)(atomic_load(&s->last_done_ns) - t0) / 1e9;
    printf("{\"bench\":\"ring\",\"impl\":\"%s\",\"producers\":%d,\"consumers\":%d,"
           "\"msg_bytes\":%d,\"msgs_per_s\":%.0f}\n", impl, producers, consumers,
           MSG_BYTES, (double)atomic_load(&s->received) / secs);
    fflush(stdout);
    pin(-1);
}

static struct shm_region *region;

static void *carve(size_t bytes)
{
    void *p = shm_region_alloc(region, bytes, 64);
    if (p == NULL) {
        fprintf(stderr, "bench_ring: shared region too small\n");
        exit(1);
    }
    return p;
}

/* ---- jobring: the value names a payload in a shared pool --------------- */

struct jobring_ctx {
    struct shm_jobring *ring;
    struct msg *pool;
    _Atomic uint64_t *claims;   /* one line per consumer */
    int consumers;
};

static void jobring_consumer(void *p, struct sync *s, int index)
{
    struct jobring_ctx *c = p;
    uint16_t id = (uint16_t)(index + 1);
    _Atomic uint64_t *claim = &c->claims[index * 8];
    uint64_t n = 0, sink = 0, v;
    for (;;) {
        /* A second with nothing: the producer is gone; end the run. */
        if (shm_jobring_take_wait(c->ring, id, claim, &v, 1000) < 0)
            break;
        if (v == STOP)
            break;
        const struct msg *m = &c->pool[v - 1];
        for (int i = 0; i < MSG_BYTES / 8; i++)
            sink += m->w[i];
        atomic_store_explicit(claim, 0, memory_order_release);
        n++;
    }
    finish(s, n, sink);
}

static void jobring_push_spinning(struct shm_jobring *r, uint64_t v)
{
    unsigned spins = 0;
    while (shm_jobring_push(r, v) < 0)
        relax(&spins);
}

static void jobring_producer(void *p, struct sync *s, int index)
{
    (void)s, (void)index;
    struct jobring_ctx *c = p;
    int64_t end = now_ns() + (int64_t)(BENCH_SECONDS * 1e9);
    for (uint64_t seq = 0;; seq++) {
        if ((seq & 1023) == 0 && now_ns() >= end)
            break;
        struct msg *m = &c->pool[seq % POOL];
        for (int i = 0; i < MSG_BYTES / 8; i++)
            m->w[i] = seq + (uint64_t)i;
        jobring_push_spinning(c->ring, seq % POOL + 1);
    }
    for (int i = 0; i < c->consumers; i++)
        jobring_push_spinning(c->ring, STOP);
}

static void bench_jobring(struct sync *s, int consumers)
{
    struct jobring_ctx c = {
        .ring = shm_jobring_init(carve(shm_jobring_size(RING_SLOTS)), RING_SLOTS),
        .pool = carve(POOL * sizeof(struct msg)),
        .claims = carve(4 * 64),
        .consumers = consumers,
    };
    run("jobring", 1, consumers, jobring_consumer, jobring_producer, &c, s,
        consumers, consumers == 1);
}

/* ---- replyring: 2 producers -> 1 consumer ------------------------------ */

struct replyring_ctx {
    struct shm_replyring *ring;
    int efd;
};

static void replyring_producer(void *p, struct sync *s, int index)
{
    (void)s;
    struct replyring_ctx *c = p;
    uint16_t id = (uint16_t)(index + 1);
    struct msg m;
    int64_t end = now_ns() + (int64_t)(BENCH_SECONDS * 1e9);
    for (uint64_t seq = 0;; seq++) {
        if ((seq & 1023) == 0 && now_ns() >= end)
            break;
        for (int i = 0; i < MSG_BYTES / 8; i++)
            m.w[i] = seq + (uint64_t)i;
        shm_replyring_push(c->ring, id, &m, sizeof m, -1);
    }
    m.w[0] = STOP;
    shm_replyring_push(c->ring, id, &m, sizeof m, -1);
}

static void replyring_consumer(void *p, struct sync *s, int index)
{
    (void)index;
    struct replyring_ctx *c = p;
    unsigned char buf[SHM_REPLY_REC];
    uint64_t n = 0, sink = 0;
    for (int stops = 0; stops < 2;) {
        if (shm_replyring_pop(c->ring, buf) == 0) {
            int idle = 0;
            if (shm_replyring_arm(c->ring)) {
                struct pollfd pfd = { .fd = c->efd, .events = POLLIN };
                idle = poll(&pfd, 1, 1000) == 0;
            }
            shm_replyring_ack(c->ring);
            if (idle)
                break;   /* a second with nothing: the producers are gone */
            continue;
        }
        struct msg m;
        memcpy(&m, buf, sizeof m);
        if (m.w[0] == STOP) {
            stops++;
            continue;
        }
        sink += m.w[1];
        n++;
    }
    finish(s, n, sink);
}

static void bench_replyring(struct sync *s)
{
    struct replyring_ctx c;
    c.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c.ring = shm_replyring_init(carve(shm_replyring_size(RING_SLOTS)), RING_SLOTS, c.efd);
    run("replyring", 2, 1, replyring_producer, replyring_consumer, &c, s, 2, 0);
    close(c.efd);
}

/* ---- a process-shared mutex + condvar queue ---------------------------- */

struct mutex_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    uint64_t head, tail;
    struct msg slot[RING_SLOTS];
};

static void mutex_queue_init(struct mutex_queue *q)
{
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&q->lock, &ma);
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_cond_init(&q->not_full, &ca);
    q->head = q->tail = 0;
}

static void mutex_queue_put(struct mutex_queue *q, const struct msg *m)
{
    pthread_mutex_lock(&q->lock);
    while (q->head - q->tail == RING_SLOTS)
        pthread_cond_wait(&q->not_full, &q->lock);
    q->slot[q->head++ % RING_SLOTS] = *m;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

static void mutex_queue_get(struct mutex_queue *q, struct msg *m)
{
    pthread_mutex_lock(&q->lock);
    while (q->head == q->tail)
        pthread_cond_wait(&q->not_empty, &q->lock);
    *m = q->slot[q->tail++ % RING_SLOTS];
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

static void mutex_producer(void *p, struct sync *s, int index)
{
    (void)s, (void)index;
    struct msg m;
    int64_t end = now_ns() + (int64_t)(BENCH_SECONDS * 1e9);
    for (uint64_t seq = 0;; seq++) {
        if ((seq & 1023) == 0 && now_ns() >= end)
            break;
        for (int i = 0; i < MSG_BYTES / 8; i++)
            m.w[i] = seq + (uint64_t)i;
        mutex_queue_put(p, &m);
    }
    m.w[0] = STOP;
    mutex_queue_put(p, &m);
}

static void mutex_consumer(void *p, struct sync *s, int index)
{
    (void)index;
    uint64_t n = 0, sink = 0;
    for (;;) {
        struct msg m;
        mutex_queue_get(p, &m);
        if (m.w[0] == STOP)
            break;
        sink += m.w[1];
        n++;
    }
    finish(s, n, sink);
}

static void bench_mutex(struct sync *s)
{
    struct mutex_queue *q = carve(sizeof *q);
    mutex_queue_init(q);
    run("mutex_condvar", 1, 1, mutex_consumer, mutex_producer, q, s, 1, 1);
}

/* ---- a pipe ------------------------------------------------------------ */

static int pipe_fd[2];

static void pipe_producer(void *p, struct sync *s, int index)
{
    (void)p, (void)s, (void)index;
    close(pipe_fd[0]);
    struct msg m;
    int64_t end = now_ns() + (int64_t)(BENCH_SECONDS * 1e9);
    for (uint64_t seq = 0;; seq++) {
        if ((seq & 1023) == 0 && now_ns() >= end)
            break;
        for (int i = 0; i < MSG_BYTES / 8; i++)
            m.w[i] = seq + (uint64_t)i;
        if (write(pipe_fd[1], &m, sizeof m) != (ssize_t)sizeof m)
            break;
    }
    close(pipe_fd[1]);   /* the reader's EOF is the stop */
}

static void pipe_consumer(void *p, struct sync *s, int index)
{
    (void)p, (void)index;
    static unsigned char buf[65536];
    uint64_t bytes = 0, sink = 0;
    for (;;) {
        ssize_t n = read(pipe_fd[0], buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
        if (n > 0) {
            bytes += (uint64_t)n;
            sink += buf[0];
        }
    }
    finish(s, bytes / MSG_BYTES, sink);
}

static void bench_pipe(struct sync *s)
{
    if (pipe(pipe_fd) < 0)
        return;
    /* The child writes; the parent reads, so it holds no write end. */
    memset(s, 0, sizeof *s);
    pin(0);
    pid_t pid = spawn(pipe_producer, NULL, s, 0, 1);
    close(pipe_fd[1]);
    while (atomic_load(&s->ready) != 1)
        usleep(100);
    int64_t t0 = now_ns();
    atomic_store_explicit(&s->go, 1, memory_order_release);
    pipe_consumer(NULL, s, 0);
    waitpid(pid, NULL, 0);
    close(pipe_fd[0]);
    double secs = (double)(atomic_load(&s->last_done_ns) - t0) / 1e9;
    printf("{\"bench\":\"ring\",\"impl\":\"pipe\",\"producers\":1,\"consumers\":1,"
           "\"msg_bytes\":%d,\"msgs_per_s\":%.0f}\n", MSG_BYTES,
           (double)atomic_load(&s->received) / secs);
    fflush(stdout);
    pin(-1);
}

/* ---- a busy-polling SPSC ring: the machine's limit --------------------- */

struct spsc {
    alignas(64) _Atomic uint64_t head;   /* producer's */
    alignas(64) _Atomic uint64_t tail;   /* consumer's */
    alignas(64) struct msg slot[RING_SLOTS];
};

static void spsc_put(struct spsc *q, const struct msg *m, uint64_t seq, uint64_t *tail_seen)
{
    /* Re-read the consumer's index only when the cached one says full. */
    while (seq - *tail_seen == RING_SLOTS) {
        *tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
        cpu_pause();
    }
    q->slot[seq % RING_SLOTS] = *m;
    atomic_store_explicit(&q->head, seq + 1, memory_order_release);
}

static void spsc_producer(void *p, struct sync *s, int index)
{
    (void)s, (void)index;
    struct spsc *q = p;
    struct msg m;
    uint64_t tail_seen = 0, seq = 0;
    int64_t end = now_ns() + (int64_t)(BENCH_SECONDS * 1e9);
    for (;; seq++) {
        if ((seq & 1023) == 0 && now_ns() >= end)
            break;
        for (int i = 0; i < MSG_BYTES / 8; i++)
            m.w[i] = seq + (uint64_t)i;
        spsc_put(q, &m, seq, &tail_seen);
    }
    m.w[0] = STOP;
    spsc_put(q, &m, seq, &tail_seen);
}

static void spsc_consumer(void *p, struct sync *s, int index)
{
    (void)index;
    struct spsc *q = p;
    uint64_t head_seen = 0, n = 0, sink = 0;
    int64_t give_up = now_ns() + (int64_t)(BENCH_SECONDS * 1e9) + 5000000000;
    for (uint64_t seq = 0;; seq++) {
        for (unsigned spins = 1; seq == head_seen; spins++) {
            head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
            cpu_pause();
            if ((spins & 0xfffff) == 0 && now_ns() > give_up)
                goto out;   /* the producer is gone */
        }
        struct msg m = q->slot[seq % RING_SLOTS];
        atomic_store_explicit(&q->tail, seq + 1, memory_order_release);
        if (m.w[0] == STOP)
            break;
        sink += m.w[1];
        n++;
    }
out:
    finish(s, n, sink);
}

static void bench_spsc(struct sync *s)
{
    struct spsc *q = carve(sizeof *q);
    atomic_store(&q->head, 0);
    atomic_store(&q->tail, 0);
    run("busy_poll_spsc", 1, 1, spsc_consumer, spsc_producer, q, s, 1, 1);
}

/* ---- wake-up latency ---------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void report_wake(const char *impl, int64_t *lat, int n)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    printf("{\"bench\":\"wake\",\"impl\":\"%s\",\"p50_ns\":%lld,\"p99_ns\":%lld}\n", impl,
           (long long)lat[n / 2], (long long)lat[(int)((long long)n * 99 / 100)]);
    fflush(stdout);
}

struct pingpong {
    struct shm_jobring *to[2];          /* to[i]: ring that side i takes from */
    _Atomic uint64_t claim[2][8];
    int efd[2];                         /* eventfd side i reads */
    _Atomic int64_t stamp[2][8];        /* timestamp for side i */
    int64_t lat[2][WAKE_ROUNDS];        /* side i's measured wake-ups */
    int done[2];                        /* how many side i measured */
    int gap_us;
};

/* Side `me` of the jobring ping-pong: take, note the latency, wait, answer. */
static void jobring_side(struct pingpong *pp, int me)
{
    int peer = 1 - me;
    if (me == 0)
        shm_jobring_push(pp->to[peer], (uint64_t)now_ns());
    for (int i = 0; i < WAKE_ROUNDS; i++) {
        uint64_t v;
        /* A peer that does not answer within a second has died. */
        if (shm_jobring_take_wait(pp->to[me], (uint16_t)(me + 1), &pp->claim[me][0],
                                  &v, 1000) < 0)
            return;
        pp->lat[me][i] = now_ns() - (int64_t)v;
        pp->done[me] = i + 1;
        if (pp->gap_us > 0)
            usleep((useconds_t)pp->gap_us);
        if (me == 1 || i + 1 < WAKE_ROUNDS)
            shm_jobring_push(pp->to[peer], (uint64_t)now_ns());
    }
}

static void eventfd_side(struct pingpong *pp, int me)
{
    int peer = 1 - me;
    uint64_t one = 1, got;
    if (me == 0) {
        atomic_store(&pp->stamp[peer][0], now_ns());
        if (write(pp->efd[peer], &one, sizeof one) < 0)
            return;
    }
    for (int i = 0; i < WAKE_ROUNDS; i++) {
        struct pollfd pfd = { .fd = pp->efd[me], .events = POLLIN };
        if (poll(&pfd, 1, 1000) != 1 || read(pp->efd[me], &got, sizeof got) != sizeof got)
            return;
        pp->lat[me][i] = now_ns() - atomic_load(&pp->stamp[me][0]);
        pp->done[me] = i + 1;
        usleep(WAKE_GAP_US);
        if (me == 1 || i + 1 < WAKE_ROUNDS) {
            atomic_store(&pp->stamp[peer][0], now_ns());
            if (write(pp->efd[peer], &one, sizeof one) < 0)
                return;
        }
    }
}

static void bench_wake(const char *impl, struct pingpong *pp, void (*side)(struct pingpong *, int))
{
    pp->done[0] = pp->done[1] = 0;
    pin(0);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pin(1);
        side(pp, 1);
        _exit(0);
    }
    side(pp, 0);
    waitpid(pid, NULL, 0);
    pin(-1);
    if (pp->done[0] < WAKE_ROUNDS / 2 || pp->done[1] < WAKE_ROUNDS / 2) {
        fprintf(stderr, "bench_ring: %s ping-pong stalled\n", impl);
        return;
    }
    static int64_t all[2 * WAKE_ROUNDS];
    memcpy(all, pp->lat[0], (size_t)pp->done[0] * sizeof all[0]);
    memcpy(all + pp->done[0], pp->lat[1], (size_t)pp->done[1] * sizeof all[0]);
    report_wake(impl, all, pp->done[0] + pp->done[1]);
}

static void bench_wakes(void)
{
    struct pingpong *pp = carve(sizeof *pp);
    for (int i = 0; i < 2; i++) {
        pp->to[i] = shm_jobring_init(carve(shm_jobring_size(16)), 16);
        pp->efd[i] = eventfd(0, EFD_CLOEXEC);   /* blocking: read sleeps */
    }
    pp->gap_us = WAKE_GAP_US;
    bench_wake("jobring", pp, jobring_side);
    bench_wake("eventfd", pp, eventfd_side);
    for (int i = 0; i < 2; i++)
        pp->to[i] = shm_jobring_init(carve(shm_jobring_size(16)), 16);
    pp->gap_us = 0;
    bench_wake("jobring_handoff", pp, jobring_side);
}

/* With arguments, only the benchmarks named (jobring, jobring2, replyring,
 * mutex, pipe, spsc, wake) run. */
static int wanted(int argc, char **argv, const char *name)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    char err[128];
    region = shm_region_create((size_t)64 << 20, err, sizeof err);
    if (region == NULL) {
        fprintf(stderr, "bench_ring: %s\n", err);
        return 1;
    }
    struct sync *s = carve(sizeof *s);
    if (wanted(argc, argv, "jobring"))
        bench_jobring(s, 1);
    if (wanted(argc, argv, "jobring2"))
        bench_jobring(s, 2);
    if (wanted(argc, argv, "replyring"))
        bench_replyring(s);
    if (wanted(argc, argv, "mutex"))
        bench_mutex(s);
    if (wanted(argc, argv, "pipe"))
        bench_pipe(s);
    if (wanted(argc, argv, "spsc"))
        bench_spsc(s);
    if (wanted(argc, argv, "wake"))
        bench_wakes();
    shm_region_destroy(region);
    return 0;
}
