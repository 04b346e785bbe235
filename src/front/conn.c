/* conn.c — one client connection's life on a libevent bufferevent: accept,
 * pausing, reading RFC 6455 frames, pings, the close handshake and freeing.
 * Its HTTP phase is conn_http.c, what it sends conn_send.c and
 * conn_flush.c; what it holds is counted in memory_budget.c (conn_parts.h
 * lists the parts).
 *
 * Nothing here blocks or runs job code.  Memory per idle connection is this
 * struct, the bufferevent and its two empty evbuffers: the frame reader
 * holds no heap memory between messages. */
#include "front/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/timeval.h"
#include "front/conn_accept.h"
#include "front/conn_parts.h"
#include "front/linger.h"
#include "front/stats.h"
#include "front/tls_conn.h"
#include "wire/ws_frame.h"

#define CLOSE_WAIT_MS  2000              /* after our close frame, wait this long for theirs */
#define PINGS_UNANSWERED_MAX 2

static void read_cb(struct bufferevent *bev, void *arg);

struct dispatch *conn_dispatch(const struct conn *c) { return c->f->d; }
struct detach_store *conn_detach(const struct conn *c) { return c->f->ds; }
struct jout *conn_scratch(const struct conn *c) { return &c->f->scratch; }
size_t conn_stream_window(const struct conn *c) { return c->f->p->stream_window; }
unsigned conn_max_inflight(const struct conn *c) { return c->f->cfg->max_inflight; }
int conn_draining(const struct conn *c) { return c->f->shutting_down; }
void conn_count_busy(struct conn *c) { c->f->busy_total++; }

size_t conn_out_pending(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void conn_limit_send_buffer(struct conn *c, int bytes)
{
    evutil_socket_t fd = c->tls ? -1 : bufferevent_getfd(c->bev);
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) < 0)
        log_debug("SO_SNDBUF: %s", strerror(errno));
}

void conn_set_timer(struct conn *c, unsigned ms)
{
    struct timeval tv = tv_from_ms(ms);
    evtimer_add(&c->timer, &tv);
}

/* ---- sending ----------------------------------------------------------- */

int conn_not_reading(const struct conn *c)
{
    return c->paused || c->out_paused || c->mem_paused;
}

void conn_update_reading(struct conn *c)
{
    if (conn_not_reading(c))
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}

/* Our last bytes are queued: the socket goes to the lingering close
 * (linger.c) and the connection is done.  A TLS connection's socket gets
 * there through tls_conn.c, after its close_notify. */
static void linger(struct conn *c)
{
    budget_unhook(c);
    flush_unhook(c);
    if (!c->tls && linger_start(c->bev) == 0)
        c->bev = NULL;
    conn_free(c);
}

void conn_close_when_flushed(struct conn *c)
{
    c->close_after_flush = 1;
    c->phase = PH_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
    if (conn_out_pending(c) == 0 && !c->in_read)
        linger(c);
}

void conn_drained(struct conn *c)
{
    if (c->close_after_flush) {
        linger(c);
        return;
    }
    if (c->out_paused) {
        c->out_paused = 0;
        conn_update_reading(c);
        conn_read_buffered_later(c);
    }
    /* All it held for the client is written: it is no big holder any more,
     * even while the budget is still reached. */
    budget_resume(c);
    if (c->phase == PH_WS && c->ops->drained)
        c->ops->drained(c, c->ps);
}

void conn_close(struct conn *c, uint16_t code, const char *reason)
{
    if (c->phase != PH_WS)
        return;
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    size_t n = ws_build_close(frame, code, reason, reason ? strlen(reason) : 0, NULL);
    conn_send_raw(c, frame, n);
    /* Keep reading for the peer's close frame (RFC 6455 §7.1.1: the server
     * closes TCP first, after the handshake), but not forever. */
    c->phase = PH_CLOSING;
    c->paused = 0;
    conn_update_reading(c);
    conn_set_timer(c, CLOSE_WAIT_MS);
}

void conn_pause(struct conn *c)
{
    if (c->paused)
        return;
    c->paused = 1;
    conn_update_reading(c);
}

/* Input left in the buffer when reading stopped gets no new read event;
 * read it on the next loop turn rather than re-entering the route from its
 * own callback. */
void conn_read_buffered_later(struct conn *c)
{
    if (!c->in_read && evbuffer_get_length(bufferevent_get_input(c->bev)))
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_resume(struct conn *c)
{
    if (!c->paused)
        return;
    c->paused = 0;
    conn_update_reading(c);
    conn_read_buffered_later(c);
}

/* ---- WebSocket reading --------------------------------------------------- */

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
    struct conn *c = ctx;
    if (c->phase == PH_WS)
        c->ops->message(c, c->ps, opcode, data, len);
    return c->paused || c->phase != PH_WS;
}

static int on_ping(void *ctx, uint8_t *data, size_t len)
{
    struct conn *c = ctx;
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    if (c->phase == PH_WS)
        conn_send_raw(c, frame, ws_build_pong(frame, data, len, NULL));
    return 0;
}

static void on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
    struct conn *c = ctx;
    (void)reason;
    (void)len;
    if (c->phase == PH_WS) {
        /* Echo the peer's code (RFC 6455 §5.5.1); "no status" is echoed as
         * an empty close. */
        uint8_t frame[WS_CONTROL_FRAME_MAX];
        conn_send_raw(c, frame, ws_build_close(frame, code, NULL, 0, NULL));
    }
    conn_close_when_flushed(c);
}

static const struct ws_reader_ops reader_ops = {
    .on_message = on_message, .on_ping = on_ping, .on_close = on_close,
};

void conn_start_ws(struct conn *c, const struct proto_ops *ops, void *ps)
{
    c->ops = ops;
    c->ps = ps;
    c->phase = PH_WS;
    /* The shared memory was sized for the limit the daemon started with; a
     * reload does not change it (see config_restart_changes). */
    ws_reader_init(&c->rd, WS_ROLE_SERVER, c->f->p->max_message, &reader_ops, c);
    evtimer_del(&c->timer);
    if (c->f->cfg->ping_interval_ms)
        conn_set_timer(c, c->f->cfg->ping_interval_ms);
    if (ops->opened)
        ops->opened(c, ps);
}

static void fail_ws(struct conn *c)
{
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    size_t n = ws_reader_fail_frame(&c->rd, frame, NULL);
    log_debug("websocket failed: %u %s", ws_reader_fail_code(&c->rd), ws_reader_fail_reason(&c->rd));
    if (c->phase == PH_WS)
        conn_send_raw(c, frame, n);
    conn_close_when_flushed(c);
}

static void read_ws_loop(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        size_t len = evbuffer_get_length(in);
        if (!len || c->paused || c->out_paused || c->mem_paused || c->doomed ||
            (c->phase != PH_WS && c->phase != PH_CLOSING))
            break;
        c->heard = 1;
        /* Present what is contiguous; if a small frame straddles chunks,
         * pull up to the reader's whole-frame size (its contract). */
        size_t want = evbuffer_get_contiguous_space(in);
        size_t floor = len < WS_READER_WHOLE_FRAME ? len : WS_READER_WHOLE_FRAME;
        if (want < floor)
            want = floor;
        uint8_t *p = evbuffer_pullup(in, (ssize_t)want);
        ssize_t n = ws_reader_feed(&c->rd, p, want);
        budget_account_reader(c);
        if (n < 0) {
            fail_ws(c);
            return;
        }
        evbuffer_drain(in, (size_t)n);
        if (n == 0 && want >= floor)
            break;   /* a partial frame: wait for more bytes */
    }
}

/* The reader calls back into routes, which may close the connection; the
 * struct and the reader must outlive the feed call, so a free asked for
 * meanwhile waits until the feed has returned. */
void conn_read_ws(struct conn *c)
{
    c->in_read = 1;
    read_ws_loop(c);
    c->in_read = 0;
    if (c->doomed)
        conn_free(c);
    else if (c->close_after_flush && conn_out_pending(c) == 0)
        linger(c);
}

/* ---- libevent callbacks -------------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    dispatch_new_batch(c->f->d);
    if (c->phase == PH_HTTP)
        conn_read_http(c);
    else
        conn_read_ws(c);
}

/* libevent wrote the last byte.  A plain connection's write event goes off
 * again first, so output added from here on is the flush pass's
 * (conn_flush.c) and not stranded with the event off. */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (!c->tls)
        bufferevent_disable(bev, EV_WRITE);
    conn_drained(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    (void)what;   /* EOF, error or TLS failure: the peer is gone either way */
    conn_free(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->phase != PH_WS) {
        /* Handshake timeout, or no close frame back after ours. */
        conn_free(c);
        return;
    }
    unsigned interval = c->f->cfg->ping_interval_ms;
    if (!interval)
        return;   /* pings were turned off by a reload */
    if (c->heard) {
        c->heard = 0;
        c->pings_out = 0;
    } else if (c->pings_out >= PINGS_UNANSWERED_MAX) {
        log_debug("peer did not answer %d pings: dropping it", PINGS_UNANSWERED_MAX);
        conn_free(c);
        return;
    } else {
        uint8_t frame[WS_CONTROL_FRAME_MAX];
        conn_send_raw(c, frame, ws_build_ping(frame, "wsjobd", 6, NULL));
        c->pings_out++;
    }
    conn_set_timer(c, interval);
}

/* ---- life cycle ---------------------------------------------------------- */

int conn_accept(struct front *f, int fd, const struct sockaddr *peer, socklen_t len, int tls)
{
    (void)len;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->f = f;
    c->tls = (uint8_t)tls;
    c->stats_ok = config_stats_allowed(f->cfg, peer);
    c->bev = tls ? tls_conn_new(f, fd) : bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        free(c);
        return -1;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    evtimer_assign(&c->timer, f->base, timer_cb, c);
    c->next = f->all;
    if (f->all)
        f->all->prev = c;
    f->all = c;
    f->conns.open++;
    stats_lag_wake();
    if (tls)
        f->conns.tls_open++;
    if (budget_hook(c) < 0 || flush_hook(c) < 0) {
        /* Unaccounted bytes would skew the budget for ever, and output
         * nobody lists would never leave: refuse. */
        log_warn("cannot watch a connection's buffers: out of memory");
        conn_free(c);   /* the fd goes with the bufferevent: it is ours now */
        return 0;
    }
    /* A plain socket's write event is on only while a write waits for room
     * (conn_flush.c); libevent starts every bufferevent with EV_WRITE on,
     * so it is turned off here.  TLS keeps libevent's way. */
    if (!tls)
        bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, tls ? EV_READ | EV_WRITE : EV_READ);
    conn_set_timer(c, f->cfg->handshake_timeout_ms);
    return 0;
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct front *f = arg;
    while (f->dead) {
        struct conn *c = f->dead;
        f->dead = c->next;
        free(c);
    }
}

void conn_init(struct front *f)
{
    event_assign(&f->reap, f->base, -1, 0, reap_cb, f);
}

void conn_fini(struct front *f)
{
    event_del(&f->reap);
    reap_cb(-1, 0, f);
}

void conn_free(struct conn *c)
{
    if (c->freed)
        return;
    if (c->in_read) {
        c->doomed = 1;
        return;
    }
    c->freed = 1;
    struct front *f = c->f;
    room_unlink(c);
    if (c->ops)
        c->ops->closed(c, c->ps);
    ws_reader_free(&c->rd);
    evtimer_del(&c->timer);
    flush_unhook(c);
    if (c->bev) {
        budget_unhook(c);
        bufferevent_free(c->bev);   /* NULL: the linger has it */
    }
    budget_forget(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        f->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    f->conns.open--;
    if (c->tls)
        f->conns.tls_open--;
    /* Callers up the stack (an HTTP route, a dispatch callback) may still
     * look at c->freed; the struct itself goes on the next loop turn.
     * (Activating an assigned event cannot fail, as a new one could.) */
    c->next = f->dead;
    f->dead = c;
    event_active(&f->reap, 0, 1);
}

void conn_shutdown_all(struct front *f)
{
    for (struct conn *c = f->all; c; c = c->next)
        if (c->phase == PH_WS && c->ops->shutdown)
            c->ops->shutdown(c, c->ps);
}

void conn_close_all(struct front *f, uint16_t code, const char *reason)
{
    struct conn *c = f->all;
    while (c) {
        struct conn *next = c->next;
        if (c->phase == PH_WS)
            conn_close(c, code, reason);
        else if (c->phase == PH_HTTP)
            conn_free(c);
        c = next;
    }
}
