/* cli_bench_conn.c — one bench connection through its life: a
 * non-blocking connect, the upgrade (and TLS for wss://), reads fed to the
 * frame reader, batched writes, and the close.  Errors end the connection
 * and are counted; the jobs it had in flight are counted missing.
 * cli_bench_loop.c drives these from its epoll loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "client/cli_bench.h"

#define TLS_LIMIT_MS 10000   /* one TLS handshake */

/* ---- connection plumbing ------------------------------------------------- */

static int poll_set(struct bench_worker *w, struct bconn *c, int op, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    c->polling_out = (events & EPOLLOUT) != 0;
    return epoll_ctl(w->epfd, op, c->s.fd, &ev);
}

void bench_conn_finish(struct bconn *c)
{
    if (c->state == BC_DONE)
        return;
    ws_stream_close(&c->s);
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
    bench_conn_finish(c);
}

int bench_conn_flush(struct bconn *c)
{
    while (c->out_off < c->out_len) {
        size_t len = c->tls_stuck ? c->tls_stuck : c->out_len - c->out_off;
        ssize_t n = ws_stream_send(&c->s, c->out + c->out_off, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->tls_stuck = c->s.tls ? len : 0;
            break;
        }
        if (n < 0) {
            fail(c, "send", ws_stream_error(&c->s, errno));
            return -1;
        }
        c->tls_stuck = 0;
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
        bench_conn_finish(c);
        return;
    }
    if (c->close_code == WS_CLOSE_INTERNAL && c->count && w->cfg->mode == BENCH_RAW) {
        /* The oldest job failed: its answer is this close, not missing. */
        w->st.job_errors++;
        w->st.replies++;
        c->head = (c->head + 1) % w->cfg->depth;
        c->count--;
        w->in_flight--;
    }
    char detail[96];
    snprintf(detail, sizeof detail, "%u %s", c->close_code, c->close_reason);
    /* Echo the close (RFC 6455 §5.5.1), unless a frame is half written:
     * then the server gets the TCP close alone. */
    uint8_t f[WS_CONTROL_FRAME_MAX], mask[4];
    uint32_t m = (uint32_t)bench_rand(&w->rng);
    memcpy(mask, &m, 4);
    if (c->out_off == c->out_len)
        ws_stream_send(&c->s, f, ws_build_close(f, c->close_code, NULL, 0, mask));
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
    /* A few reads at most, so one busy connection does not starve the
     * rest; but bytes TLS has decrypted already are read now, as no epoll
     * event would announce them. */
    for (int i = 0;; i++) {
        size_t space = c->w->in_cap - c->in_len;
        ssize_t n = ws_stream_recv(&c->s, c->in + c->in_len, space);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            fail(c, n == 0 ? "the server closed the connection without a close frame"
                           : "recv", n == 0 ? NULL : ws_stream_error(&c->s, errno));
            return;
        }
        c->in_len += (size_t)n;
        if (consume(c) < 0)
            return;
        if (ws_stream_pending(&c->s))
            continue;
        if ((size_t)n < space || i >= 3)
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

void bench_conn_start(struct bconn *c)
{
    const struct bench_cfg *cfg = c->w->cfg;
    char why[256];
    c->s.fd = ws_tcp_connect((const struct sockaddr *)&cfg->addr, cfg->addrlen, why, sizeof why);
    c->state = BC_CONNECTING;
    if (c->s.fd < 0)
        fail(c, "cannot connect", why);
    else if (poll_set(c->w, c, EPOLL_CTL_ADD, EPOLLOUT) < 0)
        fail(c, "epoll_ctl", strerror(errno));
}

static void connected(struct bconn *c)
{
    const struct bench_cfg *cfg = c->w->cfg;
    int err = 0;
    socklen_t elen = sizeof err;
    char why[320];
    if (getsockopt(c->s.fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (err) {
        fail(c, "cannot connect", strerror(err));
        return;
    }
    /* The TLS handshake waits in poll: it holds up this thread's other
     * connections for a few milliseconds, and only while connecting. */
    if (cfg->tls && ws_stream_start_tls(&c->s, cfg->tls, cfg->url.host, TLS_LIMIT_MS,
                                        why, sizeof why) < 0) {
        fail(c, "TLS", why);
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
    if (ws_client_hs_init(&hs, &cfg->url, cfg->target, cfg->extra, why, sizeof why) < 0) {
        fail(c, "upgrade", why);
        return;
    }
    c->key = hs.key;
    c->state = BC_UPGRADING;
    /* A fresh socket's buffer takes a 2 KiB request whole. */
    if (ws_stream_send(&c->s, hs.req, hs.len) != (ssize_t)hs.len)
        fail(c, "cannot send the upgrade request", NULL);
}

static void upgrade_answer(struct bconn *c)
{
    ssize_t n = ws_stream_recv(&c->s, c->in + c->in_len, c->w->in_cap - c->in_len);
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
    if (c->in_len && consume(c) < 0)
        return;
    if (ws_stream_pending(&c->s))
        on_readable(c);
}

/* One event in any phase. */
void bench_conn_event(struct bconn *c, uint32_t events)
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
            bench_conn_flush(c);
        return;
    default:
        return;
    }
}

void bench_conn_goodbye(struct bconn *c)
{
    if (c->state != BC_OPEN || c->w->cfg->mode == BENCH_TCP) {
        bench_conn_finish(c);
        return;
    }
    c->state = BC_CLOSING;
    queue_control(c, WS_OP_CLOSE, WS_CLOSE_NORMAL, NULL, 0);
    bench_conn_flush(c);
}
