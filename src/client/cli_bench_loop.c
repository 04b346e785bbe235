/* cli_bench_loop.c — one bench thread: a level-triggered epoll loop over
 * its share of the connections, in four phases: connect and upgrade them
 * all, wait for the others at the start line, run (or sit idle), close.
 *
 * The run phase is a pipeline per connection: after each read, the
 * replies are checked and the jobs they ended are replaced at once, all
 * new frames of the connection going out in one send() (one TLS write).
 * Nothing allocates after the connect phase. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "client/cli_bench.h"

#define MAX_EVENTS        256
#define MAX_PENDING       128               /* connects in progress per thread */
#define TICK_MS           100               /* longest sleep: clocks are checked */
#define CONNECT_LIMIT_NS  30000000000ll     /* every connection up within 30 s */
#define DRAIN_LIMIT_NS    15000000000ll     /* replies after the end: 15 s */
#define CLOSE_LIMIT_NS    2000000000ll      /* close handshakes: 2 s */
#define IDLE_IN_CAP       2048              /* idle connections read only control frames */

static int wait_events(struct bench_worker *w, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(w->epfd, ev, MAX_EVENTS, timeout_ms);
    w->now = shm_now_ns();
    for (int i = 0; i < n; i++)
        bench_conn_event(ev[i].data.ptr, ev[i].events);
    return n < 0 && errno != EINTR ? -1 : 0;
}

static int ms_until(int64_t now, int64_t t)
{
    if (t <= now)
        return 0;
    int64_t ms = (t - now + 999999) / 1000000;
    return ms < TICK_MS ? (int)ms : TICK_MS;
}

/* ---- the phases ---------------------------------------------------------- */

static int connect_all(struct bench_worker *w)
{
    int64_t deadline = shm_now_ns() + CONNECT_LIMIT_NS;
    unsigned next = 0;
    for (;;) {
        unsigned pending = 0, open = 0;
        for (unsigned i = 0; i < next; i++) {
            pending += w->conns[i].state == BC_CONNECTING || w->conns[i].state == BC_UPGRADING;
            open += w->conns[i].state == BC_OPEN;
        }
        if (open + (w->nconns - w->live) == w->nconns)
            return w->live == w->nconns ? 0 : -1;
        while (pending < MAX_PENDING && next < w->nconns) {
            bench_conn_start(&w->conns[next++]);
            pending++;
        }
        if (w->now > deadline || wait_events(w, TICK_MS) < 0) {
            bench_complain(w, "connections not up within %lld s", CONNECT_LIMIT_NS / 1000000000);
            return -1;
        }
    }
}

static void run(struct bench_worker *w)
{
    int64_t drain_deadline = INT64_MAX;
    for (unsigned i = 0; i < w->nconns; i++) {
        bench_jobs_fill(&w->conns[i]);
        bench_conn_flush(&w->conns[i]);
    }
    while (w->in_flight > 0 || (!w->stopping && w->sending > 0)) {
        if (!w->stopping && w->now >= w->stop_ns) {
            w->stopping = true;
            drain_deadline = w->now + DRAIN_LIMIT_NS;
        }
        if (w->now >= drain_deadline) {
            bench_complain(w, "%llu replies still missing %lld s after the end",
                           (unsigned long long)w->in_flight, DRAIN_LIMIT_NS / 1000000000);
            for (unsigned i = 0; i < w->nconns; i++)
                bench_jobs_lost(&w->conns[i]);
            return;
        }
        int64_t until = w->stopping ? drain_deadline : w->stop_ns;
        if (wait_events(w, ms_until(w->now, until)) < 0)
            return;
    }
}

static void idle(struct bench_worker *w)
{
    while (!atomic_load(&w->sh->stop) && wait_events(w, TICK_MS) == 0)
        ;
}

/* Says goodbye on every open WebSocket and waits briefly for the answers
 * (RFC 6455 §7.1.1: the server should close TCP first). */
static void close_all(struct bench_worker *w)
{
    int64_t deadline = shm_now_ns() + CLOSE_LIMIT_NS;
    for (unsigned i = 0; i < w->nconns; i++)
        bench_conn_goodbye(&w->conns[i]);
    while (w->live > 0 && w->now < deadline && wait_events(w, ms_until(w->now, deadline)) == 0)
        ;
    for (unsigned i = 0; i < w->nconns; i++)
        bench_conn_finish(&w->conns[i]);
}

/* ---- the thread ---------------------------------------------------------- */

static int setup(struct bench_worker *w)
{
    const struct bench_cfg *cfg = w->cfg;
    w->in_cap = cfg->mode == BENCH_IDLE ? IDLE_IN_CAP : BENCH_IN_CAP;
    if (cfg->mode == BENCH_TCP && cfg->size > w->in_cap)
        w->in_cap = cfg->size;   /* an echo is checked whole, in place */
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->conns = calloc(w->nconns, sizeof *w->conns);
    if (w->epfd < 0 || !w->conns)
        return -1;
    if (cfg->has_expect && !(w->scratch = malloc(w->scratch_cap = cfg->expect_len + 8)))
        return -1;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        unsigned id = w->first_conn + i * cfg->threads;
        *c = (struct bconn){ .w = w, .s.fd = -1, .id = id, .state = BC_IDLE };
        c->quota = cfg->mode == BENCH_IDLE ? 0 : !cfg->total ? UINT64_MAX
                 : cfg->total / cfg->conns + (id < cfg->total % cfg->conns);
        w->sending += c->quota > 0;
        w->live++;
        if (!(c->in = malloc(w->in_cap)) || bench_jobs_init(c) < 0)
            return -1;
    }
    return 0;
}

static void teardown(struct bench_worker *w)
{
    for (unsigned i = 0; w->conns && i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        ws_stream_close(&c->s);
        ws_reader_free(&c->rd);
        bench_jobs_free(c);
        free(c->in);
    }
    free(w->conns);
    free(w->scratch);
    if (w->epfd >= 0)
        close(w->epfd);
    w->conns = NULL;
    w->scratch = NULL;
}

void bench_start_line(struct bench_shared *sh)
{
    pthread_mutex_lock(&sh->mu);
    sh->ready++;
    pthread_cond_broadcast(&sh->cv);
    while (!sh->go)
        pthread_cond_wait(&sh->cv, &sh->mu);
    pthread_mutex_unlock(&sh->mu);
}

void *bench_worker_main(void *arg)
{
    struct bench_worker *w = arg;
    const struct bench_cfg *cfg = w->cfg;
    w->now = shm_now_ns();
    w->stopping = true;   /* until the start line */
    int rc = setup(w);
    if (rc < 0)
        bench_complain(w, "out of memory or file descriptors setting up connections");
    else
        rc = connect_all(w);
    if (rc < 0)
        atomic_store(&w->sh->failed, 1);
    bench_start_line(w->sh);
    w->now = shm_now_ns();
    w->measure_ns = w->sh->start_ns + (cfg->total ? 0 : (int64_t)(cfg->warmup * 1e9));
    w->stop_ns = w->measure_ns + (int64_t)(cfg->seconds * 1e9);
    w->stopping = false;
    if (!atomic_load(&w->sh->failed))
        cfg->mode == BENCH_IDLE ? idle(w) : run(w);
    w->stopping = true;
    if (w->conns)
        close_all(w);
    w->rc = rc;
    teardown(w);
    return NULL;
}
