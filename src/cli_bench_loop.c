/* cli_bench_loop.c — one bench thread: a level-triggered epoll loop over
 * its share of the connections, in four phases: connect and upgrade them
 * all, wait for the others at the start line, run (or sit idle), close.
 *
 * The run phase is a pipeline per connection: after each read, the
 * replies are checked and the jobs they ended are replaced at once, all new
 * frames of the connection going out in one send().  Nothing allocates
 * after the connect phase. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli_bench.h"

#define MAX_EVENTS        256
#define MAX_PENDING       128               /* connects in progress per thread */
#define TICK_MS           100               /* longest sleep: clocks are checked */
#define CONNECT_LIMIT_NS  30000000000ll     /* every connection up within 30 s */
#define DRAIN_LIMIT_NS    15000000000ll     /* replies after the end: 15 s */
#define CLOSE_LIMIT_NS    2000000000ll      /* close handshakes: 2 s */
#define IDLE_IN_CAP       2048              /* idle connections read only control frames */

/* ---- connection plumbing ------------------------------------------------- */

static int poll_set(struct bench_worker *w, struct bconn *c, int op, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    c->polling_out = (events & EPOLLOUT) != 0;
    return epoll_ctl(w->epfd, op, c->fd, &ev);
}

/* Closes the socket; the connection takes no further part. */
static void finish(struct bconn *c)
{
    if (c->state == BC_DONE)
        return;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = BC_DONE;
    c->w->live--;
}

/* The connection broke: what it had in flight is lost, and said so. */
static void fail(struct bconn *c, const char *what, const char *detail)
{
    struct bench_worker *w = c->w;
    if (c->state != BC_CLOSING) {
        w->st.conn_failed++;
        bench_complain(w, "connection %u: %s%s%s", c->id, what, detail ? ": " : "",
                       detail ? detail : "");
    }
    bench_jobs_lost(c);
    finish(c);
}

static int flush(struct bconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            fail(c, "send", strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    bool want = c->out_len > 0;
    if (want != c->polling_out &&
        poll_set(c->w, c, EPOLL_CTL_MOD, EPOLLIN | (want ? EPOLLOUT : 0)) < 0) {
        fail(c, "epoll_ctl", strerror(errno));
        return -1;
    }
    return 0;
}

/* Queues a control frame; one that does not fit is dropped, which for a
 * pong only means the server pings again. */
static void queue_control(struct bconn *c, uint8_t opcode, uint16_t code,
                          const uint8_t *data, size_t len)
{
    uint8_t mask[4];
    uint32_t m = (uint32_t)bench_rand(&c->w->rng);
    memcpy(mask, &m, 4);
    if (c->out_len + WS_CONTROL_FRAME_MAX > c->out_cap)
        return;
    c->out_len += opcode == WS_OP_CLOSE
                      ? ws_build_close(c->out + c->out_len, code, NULL, 0, mask)
                      : ws_build_control(c->out + c->out_len, opcode, data, len, mask);
}

/* ---- the reader's callbacks ---------------------------------------------- */

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
    bench_jobs_reply(ctx, opcode, data, len);
    return 0;
}

static int on_ping(void *ctx, uint8_t *data, size_t len)
{
    queue_control(ctx, WS_OP_PONG, 0, data, len);
    return 0;
}

static void on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
    struct bconn *c = ctx;
    c->peer_closed = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%.*s", (int)len, (const char *)reason);
}

static const struct ws_reader_ops reader_ops = {
    .on_message = on_message, .on_ping = on_ping, .on_close = on_close,
};

/* ---- reading ------------------------------------------------------------- */

/* The server closed the WebSocket.  In raw mode a job error does that
 * (1011 "CODE: message"), which is counted as the job's error. */
static void peer_closed(struct bconn *c)
{
    struct bench_worker *w = c->w;
    if (c->state == BC_CLOSING) {
        finish(c);
        return;
    }
    if (c->close_code == WS_CLOSE_INTERNAL && c->count)
        w->st.job_errors++;
    char detail[96];
    snprintf(detail, sizeof detail, "%u %s", c->close_code, c->close_reason);
    queue_control(c, WS_OP_CLOSE, c->close_code, NULL, 0);
    c->out_off = 0;
    send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    fail(c, "the server closed the connection", detail);
}

/* Hands the buffered bytes to the reader (or the TCP echo check). */
static int consume(struct bconn *c)
{
    size_t used;
    if (c->w->cfg->mode == BENCH_TCP) {
        used = bench_jobs_tcp(c, c->in, c->in_len);
    } else {
        ssize_t n = ws_reader_feed(&c->rd, c->in, c->in_len);
        if (n < 0) {
            fail(c, "protocol error from the server", ws_reader_fail_reason(&c->rd));
            return -1;
        }
        used = (size_t)n;
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->peer_closed) {
        peer_closed(c);
        return -1;
    }
    return 0;
}

static void on_readable(struct bconn *c)
{
    /* A few reads at most: one busy connection must not starve the rest. */
    for (int i = 0; i < 4; i++) {
        size_t space = c->w->in_cap - c->in_len;
        ssize_t n = recv(c->fd, c->in + c->in_len, space, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            fail(c, n == 0 ? "the server closed the connection without a close frame"
                           : "recv", n == 0 ? NULL : strerror(errno));
            return;
        }
        c->in_len += (size_t)n;
        if (consume(c) < 0 || (size_t)n < space)
            return;
    }
}

/* ---- connecting ---------------------------------------------------------- */

static void opened(struct bconn *c)
{
    c->state = BC_OPEN;
    if (c->w->cfg->mode != BENCH_TCP)
        ws_reader_init(&c->rd, WS_ROLE_CLIENT, UINT64_MAX, &reader_ops, c);
}

static void start_connect(struct bconn *c)
{
    const struct bench_cfg *cfg = c->w->cfg;
    char why[256];
    c->fd = ws_tcp_connect((const struct sockaddr *)&cfg->addr, cfg->addrlen, why, sizeof why);
    c->state = BC_CONNECTING;
    if (c->fd < 0)
        fail(c, "cannot connect", why);
    else if (poll_set(c->w, c, EPOLL_CTL_ADD, EPOLLOUT) < 0)
        fail(c, "epoll_ctl", strerror(errno));
}

static void connected(struct bconn *c)
{
    const struct bench_cfg *cfg = c->w->cfg;
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (err) {
        fail(c, "cannot connect", strerror(err));
        return;
    }
    if (poll_set(c->w, c, EPOLL_CTL_MOD, EPOLLIN) < 0) {
        fail(c, "epoll_ctl", strerror(errno));
        return;
    }
    if (cfg->mode == BENCH_TCP) {
        opened(c);
        return;
    }
    struct ws_client_hs hs;
    char why[256];
    if (ws_client_hs_init(&hs, &cfg->url, cfg->target, cfg->extra, why, sizeof why) < 0) {
        fail(c, "upgrade", why);
        return;
    }
    c->key = hs.key;
    c->state = BC_UPGRADING;
    /* A fresh socket's buffer takes a 2 KiB request whole. */
    if (send(c->fd, hs.req, hs.len, MSG_NOSIGNAL) != (ssize_t)hs.len)
        fail(c, "cannot send the upgrade request", NULL);
}

static void upgrade_answer(struct bconn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, c->w->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        fail(c, "no answer to the upgrade", n < 0 ? strerror(errno) : "connection closed");
        return;
    }
    c->in_len += (size_t)n;
    char why[256];
    int head = ws_client_hs_check(&c->key, (const char *)c->in, c->in_len, why, sizeof why);
    if (head == 0 && c->in_len == c->w->in_cap)
        snprintf(why, sizeof why, "upgrade answer too long");
    if (head < 0 || (head == 0 && c->in_len == c->w->in_cap)) {
        fail(c, "upgrade refused", why);
        return;
    }
    if (head == 0)
        return;
    memmove(c->in, c->in + head, c->in_len - (size_t)head);
    c->in_len -= (size_t)head;
    opened(c);
    if (c->in_len)
        consume(c);
}

/* One event in any phase. */
static void handle(struct bconn *c, uint32_t events)
{
    switch (c->state) {
    case BC_CONNECTING:
        connected(c);
        return;
    case BC_UPGRADING:
        upgrade_answer(c);
        return;
    case BC_OPEN:
    case BC_CLOSING:
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(c);
        if (c->state == BC_OPEN)
            bench_jobs_fill(c);
        if (c->state != BC_DONE && c->out_len)
            flush(c);
        return;
    default:
        return;
    }
}

static int wait_events(struct bench_worker *w, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(w->epfd, ev, MAX_EVENTS, timeout_ms);
    w->now = cli_now_ns();
    for (int i = 0; i < n; i++)
        handle(ev[i].data.ptr, ev[i].events);
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
    int64_t deadline = cli_now_ns() + CONNECT_LIMIT_NS;
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
            start_connect(&w->conns[next++]);
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
        flush(&w->conns[i]);
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
    int64_t deadline = cli_now_ns() + CLOSE_LIMIT_NS;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        if (c->state != BC_OPEN || w->cfg->mode == BENCH_TCP) {
            finish(c);
            continue;
        }
        c->state = BC_CLOSING;
        queue_control(c, WS_OP_CLOSE, WS_CLOSE_NORMAL, NULL, 0);
        flush(c);
    }
    while (w->live > 0 && w->now < deadline && wait_events(w, ms_until(w->now, deadline)) == 0)
        ;
    for (unsigned i = 0; i < w->nconns; i++)
        finish(&w->conns[i]);
}

/* ---- the thread ---------------------------------------------------------- */

static int setup(struct bench_worker *w)
{
    const struct bench_cfg *cfg = w->cfg;
    w->in_cap = cfg->mode == BENCH_IDLE ? IDLE_IN_CAP : BENCH_IN_CAP;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->conns = calloc(w->nconns, sizeof *w->conns);
    if (w->epfd < 0 || !w->conns)
        return -1;
    if (cfg->has_expect && !(w->scratch = malloc(w->scratch_cap = cfg->expect_len + 8)))
        return -1;
    for (unsigned i = 0; i < w->nconns; i++) {
        struct bconn *c = &w->conns[i];
        unsigned id = w->first_conn + i * cfg->threads;
        *c = (struct bconn){ .w = w, .fd = -1, .id = id, .state = BC_IDLE };
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
        if (c->fd >= 0)
            close(c->fd);
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
    w->now = cli_now_ns();
    w->stopping = true;   /* until the start line */
    int rc = setup(w);
    if (rc < 0)
        bench_complain(w, "out of memory or file descriptors setting up connections");
    else
        rc = connect_all(w);
    if (rc < 0)
        atomic_store(&w->sh->failed, 1);
    bench_start_line(w->sh);
    w->now = cli_now_ns();
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
