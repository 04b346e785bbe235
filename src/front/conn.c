/* conn.c — one client connection: the HTTP request, the upgrade, then
 * RFC 6455 framing, pings and the close handshake, on a libevent
 * bufferevent.
 *
 * Nothing here blocks or runs job code.  Memory per idle connection is this
 * struct, the bufferevent and its two empty evbuffers: the frame reader
 * holds no heap memory between messages. */
#include "front/conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/timeval.h"
#include "front/conn_accept.h"
#include "front/front.h"
#include "front/http_routes.h"
#include "front/jobs_proto.h"
#include "front/linger.h"
#include "front/raw_proto.h"
#include "front/tls_conn.h"
#include "handlers/handler_registry.h"
#include "wire/http_request.h"
#include "wire/ws_frame.h"
#include "wire/ws_handshake.h"

#define HEADER_LIMIT   8192              /* SPEC §4: over 8 KiB is 431 */
/* Requests answered on one kept-alive connection; the last is answered with
 * Connection: close.  Each request re-arms the header timeout, so without a
 * cap one connection could pipeline requests for ever. */
#define KEEPALIVE_MAX  1000
/* Output queued for a client past which nothing more is read from it.
 * Everything we send counts against it: data messages, pongs, close frames,
 * HTTP answers.  All of them answer input, so a client that never reads
 * makes us queue at most this plus the answers to one chunk of its input. */
#define OUT_HIGH_WATER (4u << 20)
#define CLOSE_WAIT_MS  2000              /* after our close frame, wait this long for theirs */
#define PINGS_UNANSWERED_MAX 2
#define SMALL_FRAME    256               /* payloads copied next to their header */
#define EXACT_BLOCK_MIN (64u << 10)      /* payloads in a block of their own size */

/* PH_CLOSING: our last bytes are queued (an HTTP answer with close, our
 * close frame); once they are written the socket lingers (linger.c). */
enum phase { PH_HTTP, PH_WS, PH_CLOSING };

struct conn {
    struct front *f;
    struct conn *prev, *next;      /* front->all */
    struct conn *room_prev, *room_next;   /* front->room_head: waiting for job capacity */
    struct bufferevent *bev;
    struct event timer;            /* handshake timeout, then pings, then close wait */
    const struct proto_ops *ops;   /* the route, once upgraded */
    void *ps;                      /* the route's state, owned by the route */
    struct ws_reader rd;
    struct evbuffer_cb_entry *in_cb, *out_cb;   /* the memory budget's counters */
    uint64_t held;                 /* bytes counted against the budget */
    size_t   rd_held;              /* of which in the frame reader's buffer */
    uint16_t http_scanned;         /* head bytes known to hold no new LF */
    uint16_t requests;             /* HTTP requests routed, at most KEEPALIVE_MAX */
    uint8_t phase;
    uint8_t stats_ok;              /* peer within --stats-allow */
    uint8_t tls;
    uint8_t paused;                /* the route asked to stop reading */
    uint8_t out_paused;            /* output over the high-water mark */
    uint8_t mem_paused;            /* among the biggest holders past the budget */
    uint8_t in_read;               /* inside read_ws (re-entrancy guard) */
    uint8_t close_after_flush;     /* free once the output is written */
    uint8_t pings_out;             /* pings sent since the peer last spoke */
    uint8_t heard;                 /* the peer sent something this interval */
    uint8_t doomed;                /* conn_free asked for while in_read */
    uint8_t freed;
    uint8_t room_queued;           /* on the front's room FIFO */
};

static void conn_free(struct conn *c);
static void room_unlink(struct conn *c);
static void read_cb(struct bufferevent *bev, void *arg);
static void unhook_buffers(struct conn *c);

struct dispatch *conn_dispatch(const struct conn *c) { return c->f->d; }
struct jout *conn_scratch(const struct conn *c) { return &c->f->scratch; }
size_t conn_stream_window(const struct conn *c) { return c->f->p->stream_window; }
unsigned conn_max_inflight(const struct conn *c) { return c->f->cfg->max_inflight; }
int conn_draining(const struct conn *c) { return c->f->shutting_down; }

size_t conn_out_pending(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void set_timer(struct conn *c, unsigned ms)
{
    struct timeval tv = tv_from_ms(ms);
    evtimer_add(&c->timer, &tv);
}

/* ---- sending ----------------------------------------------------------- */

static int not_reading(const struct conn *c)
{
    return c->paused || c->out_paused || c->mem_paused;
}

static void update_reading(struct conn *c)
{
    if (not_reading(c))
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}

static void check_out_high_water(struct conn *c)
{
    if (!c->out_paused && conn_out_pending(c) > OUT_HIGH_WATER) {
        c->out_paused = 1;
        update_reading(c);
    }
}

static void free_block(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* evbuffer_add rounds a new chunk up to a power of two: a 600 KiB message
 * would take 1 MiB, memory the budget (which counts bytes) never sees.  A
 * large payload gets a block of its own size instead. */
static void add_payload(struct evbuffer *out, const void *data, size_t len)
{
    uint8_t *block = len >= EXACT_BLOCK_MIN ? malloc(len) : NULL;
    if (block) {
        memcpy(block, data, len);
        if (evbuffer_add_reference(out, block, len, free_block, NULL) == 0)
            return;
        free(block);
    }
    evbuffer_add(out, data, len);
}

void conn_send(struct conn *c, int opcode, const void *data, size_t len)
{
    if (c->phase != PH_WS)
        return;
    /* A small frame goes in with one evbuffer_add: each add runs the
     * buffer's callbacks, which cost more than copying a few hundred bytes. */
    uint8_t frame[WS_MAX_HEADER + SMALL_FRAME];
    size_t hl = ws_frame_header_write(frame, true, (uint8_t)opcode, len, NULL);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (len <= SMALL_FRAME) {
        if (len)
            memcpy(frame + hl, data, len);
        evbuffer_add(out, frame, hl + len);
    } else {
        evbuffer_add(out, frame, hl);
        add_payload(out, data, len);
    }
    check_out_high_water(c);
}

static void send_raw(struct conn *c, const void *data, size_t len)
{
    evbuffer_add(bufferevent_get_output(c->bev), data, len);
    check_out_high_water(c);
}

/* Our last bytes are queued: the socket goes to the lingering close
 * (linger.c) and the connection is done.  A TLS connection's socket gets
 * there through tls_conn.c, after its close_notify. */
static void linger(struct conn *c)
{
    unhook_buffers(c);
    if (!c->tls && linger_start(c->bev) == 0)
        c->bev = NULL;
    conn_free(c);
}

static void close_when_flushed(struct conn *c)
{
    c->close_after_flush = 1;
    c->phase = PH_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
    if (conn_out_pending(c) == 0 && !c->in_read)
        linger(c);
}

void conn_close(struct conn *c, uint16_t code, const char *reason)
{
    if (c->phase != PH_WS)
        return;
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    size_t n = ws_build_close(frame, code, reason, reason ? strlen(reason) : 0, NULL);
    send_raw(c, frame, n);
    /* Keep reading for the peer's close frame (RFC 6455 §7.1.1: the server
     * closes TCP first, after the handshake), but not forever. */
    c->phase = PH_CLOSING;
    c->paused = 0;
    update_reading(c);
    set_timer(c, CLOSE_WAIT_MS);
}

void conn_pause(struct conn *c)
{
    if (c->paused)
        return;
    c->paused = 1;
    update_reading(c);
}

/* Input left in the buffer when reading stopped gets no new read event;
 * read it on the next loop turn rather than re-entering the route from its
 * own callback. */
static void read_buffered_later(struct conn *c)
{
    if (!c->in_read && evbuffer_get_length(bufferevent_get_input(c->bev)))
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_resume(struct conn *c)
{
    if (!c->paused)
        return;
    c->paused = 0;
    update_reading(c);
    read_buffered_later(c);
}

/* ---- the memory budget ----------------------------------------------------
 *
 * Each connection is bounded on its own (OUT_HIGH_WATER, the stream window,
 * max_message), but nothing else bounded the sum: a crowd of clients that
 * submit and never read made the front hold the per-connection bound times
 * their number.  Every change to what a connection holds passes through
 * account() with its size (evbuffer callbacks on both buffers, the frame
 * reader's buffer after each feed, conn_hold for routes): O(1) each.  Past
 * the budget the connections holding the most stop being read and routes
 * refuse (/jobs: busy) or hold back (/run: backpressure) new work; under
 * the low-water mark every connection is read again.  A scan of all
 * connections happens only when the budget is reached or left. */

#define BUDGET_LOW_PERCENT 90
#define BUDGET_LOG_NS      10000000000ll   /* one "reached" line per 10 s at most */
#define BUDGET_SWEEP_MS    250

static uint64_t budget_of(const struct front *f) { return f->cfg->memory_budget; }

static uint64_t budget_low(const struct front *f)
{
    return budget_of(f) / 100 * BUDGET_LOW_PERCENT;
}

static void mem_pause(struct conn *c)
{
    if (c->mem_paused)
        return;
    c->mem_paused = 1;
    c->f->mem.paused++;
    c->f->mem.paused_total++;
    update_reading(c);
}

static void mem_resume(struct conn *c)
{
    if (!c->mem_paused)
        return;
    c->mem_paused = 0;
    c->f->mem.paused--;
    update_reading(c);
    read_buffered_later(c);
}

/* Among "the biggest holders": holding at least the average of those that
 * hold anything.  The biggest always is; one holding little never is, so a
 * quiet client keeps being read however many others pile up. */
static int holds_most(const struct conn *c)
{
    const struct front_memory *m = &c->f->mem;
    return c->held && m->holders && c->held >= m->used / m->holders;
}

/* Has the peer of a connection we do not read gone?  Closing with our
 * bytes unread, it sent a reset that only a read or a write would meet. */
static int peer_gone(struct conn *c)
{
    struct pollfd p = { .fd = bufferevent_getfd(c->bev), .events = POLLRDHUP };
    if (p.fd < 0 || poll(&p, 1, 0) != 1)
        return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void schedule_sweep(struct front *f);

/* A connection not being read learns that its client left only from a
 * write error or the ping timeout, holding its buffers meanwhile: while
 * the budget is reached that would make everyone else wait, so the
 * connections not read are looked at a few times a second.  A client that
 * half-closes counts as gone, as when its EOF is read. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct front *f = arg;
    (void)fd;
    (void)what;
    f->mem.sweep_pending = 0;
    if (!f->mem.over)
        return;
    struct conn *c = f->all;
    while (c) {
        struct conn *next = c->next;
        if (not_reading(c) && peer_gone(c)) {
            log_debug("a client not being read has gone");
            conn_free(c);
        }
        c = next;
    }
    schedule_sweep(f);
}

static void schedule_sweep(struct front *f)
{
    struct timeval tv = tv_from_ms(BUDGET_SWEEP_MS);
    if (f->mem.over && !f->mem.sweep_pending &&
        event_base_once(f->base, -1, EV_TIMEOUT, sweep_cb, f, &tv) == 0)
        f->mem.sweep_pending = 1;
}

static void budget_reached(struct front *f)
{
    f->mem.over = 1;
    schedule_sweep(f);
    for (struct conn *c = f->all; c; c = c->next)
        if (holds_most(c))
            mem_pause(c);
    int64_t now = shm_now_ns();
    if (now - f->mem.logged_ns < BUDGET_LOG_NS)
        return;
    f->mem.logged_ns = now;
    log_warn("memory budget reached: %llu bytes held for clients, %u connections not read, "
             "new submits answered busy", (unsigned long long)f->mem.used, f->mem.paused);
}

/* On the next loop turn: this runs inside buffer callbacks, and resuming
 * calls back into routes. */
static void resume_all_cb(evutil_socket_t fd, short what, void *arg)
{
    struct front *f = arg;
    (void)fd;
    (void)what;
    f->mem.resume_pending = 0;
    if (f->mem.over)
        return;   /* reached again meanwhile */
    for (struct conn *c = f->all; c; c = c->next)
        mem_resume(c);
    conn_room(f);   /* raw routes holding a message back for room */
}

static void budget_check_down(struct front *f)
{
    if (!f->mem.over || (budget_of(f) && f->mem.used >= budget_low(f)))
        return;
    if (!f->mem.resume_pending) {
        if (event_base_once(f->base, -1, EV_TIMEOUT, resume_all_cb, f, NULL) < 0)
            return;   /* stay over; the next drain tries again */
        f->mem.resume_pending = 1;
    }
    f->mem.over = 0;
}

static void budget_check_up(struct conn *c)
{
    struct front *f = c->f;
    if (!budget_of(f))
        return;
    if (!f->mem.over) {
        if (f->mem.used > budget_of(f))
            budget_reached(f);
        return;
    }
    if (holds_most(c))
        mem_pause(c);
}

static void account(struct conn *c, uint64_t added, uint64_t deleted)
{
    struct front_memory *m = &c->f->mem;
    int had = c->held != 0;
    /* Unsigned arithmetic wraps, so the order of the terms does not matter. */
    c->held = c->held + added - deleted;
    m->used = m->used + added - deleted;
    m->holders = m->holders + (c->held != 0) - had;
    if (m->used > m->used_max)
        m->used_max = m->used;
    if (added > deleted)
        budget_check_up(c);
    else if (deleted > added)
        budget_check_down(c->f);
}

static void buffer_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    account(arg, info->n_added, info->n_deleted);
}

/* The reader's reassembly buffer grows and is freed inside feed. */
static void account_reader(struct conn *c)
{
    size_t now = ws_reader_buffered(&c->rd);
    if (now > c->rd_held)
        account(c, now - c->rd_held, 0);
    else if (now < c->rd_held)
        account(c, 0, c->rd_held - now);
    c->rd_held = now;
}

static int hook_buffers(struct conn *c)
{
    c->in_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), buffer_cb, c);
    c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), buffer_cb, c);
    if (!c->in_cb || !c->out_cb)
        return -1;
    account(c, evbuffer_get_length(bufferevent_get_input(c->bev)) +
               evbuffer_get_length(bufferevent_get_output(c->bev)), 0);
    return 0;
}

/* Before the buffers leave with the socket (the linger) or are freed; what
 * they hold stops counting in conn_free, with everything else. */
static void unhook_buffers(struct conn *c)
{
    if (c->in_cb)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    if (c->out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    c->in_cb = c->out_cb = NULL;
}

static void budget_forget(struct conn *c)
{
    if (c->mem_paused) {
        c->mem_paused = 0;
        c->f->mem.paused--;
    }
    c->rd_held = 0;
    account(c, 0, c->held);
}

void conn_hold(struct conn *c, size_t bytes) { account(c, bytes, 0); }
void conn_release(struct conn *c, size_t bytes) { account(c, 0, bytes); }

int conn_over_budget(const struct conn *c) { return c->f->mem.over; }

int conn_budget_refuse(struct conn *c)
{
    if (!c->f->mem.over)
        return 0;
    c->f->mem.busy_total++;
    return 1;
}

void conn_budget_changed(struct front *f)
{
    budget_check_down(f);
    if (!f->mem.over && budget_of(f) && f->mem.used > budget_of(f))
        budget_reached(f);
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
        send_raw(c, frame, ws_build_pong(frame, data, len, NULL));
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
        send_raw(c, frame, ws_build_close(frame, code, NULL, 0, NULL));
    }
    close_when_flushed(c);
}

static const struct ws_reader_ops reader_ops = {
    .on_message = on_message, .on_ping = on_ping, .on_close = on_close,
};

static void fail_ws(struct conn *c)
{
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    size_t n = ws_reader_fail_frame(&c->rd, frame, NULL);
    log_debug("websocket failed: %u %s", ws_reader_fail_code(&c->rd), ws_reader_fail_reason(&c->rd));
    if (c->phase == PH_WS)
        send_raw(c, frame, n);
    close_when_flushed(c);
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
        account_reader(c);
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
static void read_ws(struct conn *c)
{
    c->in_read = 1;
    read_ws_loop(c);
    c->in_read = 0;
    if (c->doomed)
        conn_free(c);
    else if (c->close_after_flush && conn_out_pending(c) == 0)
        linger(c);
}

/* ---- HTTP ---------------------------------------------------------------- */

static void respond(struct conn *c, int status, const char *extra, const char *ctype,
                    const void *body, size_t len, int keep)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n%s%s\r\n",
                        status, http_status_text(status), ctype, len, extra ? extra : "",
                        keep ? "" : "Connection: close\r\n");
    evbuffer_add(out, body, len);
    check_out_high_water(c);
    if (!keep)
        close_when_flushed(c);
}

static void respond_text(struct conn *c, int status, const char *extra, const char *text, int keep)
{
    respond(c, status, extra, "text/plain; charset=utf-8", text, strlen(text), keep);
}

/* Only heads are parsed (http_request.h): the bytes after a head are read
 * as the next request or, after an upgrade, as frames, so a body would be
 * taken for one.  A request that announces a body (RFC 9112 §6.3:
 * Transfer-Encoding, or a Content-Length other than one plain "0") is
 * answered and its connection closed instead; else a client could smuggle
 * requests past a proxy in front that forwards the body as a body. */
static int announces_body(const struct http_request *req)
{
    if (http_find_header(req->headers, req->num_headers, "Transfer-Encoding"))
        return 1;
    size_t n = http_count_headers(req->headers, req->num_headers, "Content-Length");
    if (n == 0)
        return 0;
    const struct http_str *v = http_find_header(req->headers, req->num_headers, "Content-Length");
    return n > 1 || v->len != 1 || v->p[0] != '0';
}

static void start_ws(struct conn *c, const struct proto_ops *ops, void *ps)
{
    c->ops = ops;
    c->ps = ps;
    c->phase = PH_WS;
    /* The shared memory was sized for the limit the daemon started with; a
     * reload does not change it (see config_restart_changes). */
    ws_reader_init(&c->rd, WS_ROLE_SERVER, c->f->p->max_message, &reader_ops, c);
    evtimer_del(&c->timer);
    if (c->f->cfg->ping_interval_ms)
        set_timer(c, c->f->cfg->ping_interval_ms);
}

/* Upgrades to a WebSocket on a job route, after the checks that guard it. */
static void upgrade(struct conn *c, const struct http_request *req, const struct http_str *path,
                    const struct http_str *query)
{
    const struct config *cfg = c->f->cfg;
    int type = -1;
    static const char run[] = "/run/";
    if (path->len > sizeof run - 1 && memcmp(path->p, run, sizeof run - 1) == 0) {
        type = registry_find(path->p + 5, path->len - 5);
        if (type < 0) {
            respond_text(c, 404, NULL, "no such job type\n", 0);
            return;
        }
    }
    int why = http_route_admit(cfg, req, *query);
    if (why) {
        respond_text(c, why, why == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL,
                     why == 401 ? "authorization required\n" : "origin not allowed\n", 0);
        return;
    }
    char head[512];
    struct ws_upgrade up;
    enum ws_handshake_status st = ws_handshake_check(req, NULL, &up);
    if (st != WS_HS_OK) {
        int n = ws_handshake_error_response(st, head, sizeof head);
        if (n > 0)
            send_raw(c, head, (size_t)n);
        close_when_flushed(c);
        return;
    }
    if (announces_body(req)) {
        respond_text(c, 400, NULL, "request body not allowed\n", 0);
        return;
    }
    int n = ws_handshake_response(&up, head, sizeof head);
    if (n < 0) {
        respond_text(c, 400, NULL, "bad WebSocket handshake\n", 0);
        return;
    }
    void *ps = type < 0 ? jobs_proto_new(c) : raw_proto_new(c, type);
    if (!ps) {
        respond_text(c, 503, NULL, "out of memory\n", 0);
        return;
    }
    send_raw(c, head, (size_t)n);
    start_ws(c, type < 0 ? &jobs_proto_ops : &raw_proto_ops, ps);
}

static int is_job_route(const struct http_str *path)
{
    return (path->len == 5 && memcmp(path->p, "/jobs", 5) == 0) ||
           (path->len > 5 && memcmp(path->p, "/run/", 5) == 0);
}

/* One request; returns 1 to go on reading requests on this connection. */
static int route(struct conn *c, const struct http_request *req)
{
    struct http_str path, query;
    http_target_split(req->target, &path, &query);
    c->requests++;
    int keep = req->minor_version >= 1 && c->requests < KEEPALIVE_MAX && !announces_body(req) &&
               !http_headers_have_token(req->headers, req->num_headers, "Connection", "close");
    if (!(req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0)) {
        respond_text(c, 405, "Allow: GET\r\n", "method not allowed\n", 0);
        return 0;
    }
    if (is_job_route(&path)) {
        upgrade(c, req, &path, &query);
        return 0;
    }
    struct http_reply r;
    http_route_plain(c->f, &path, c->stats_ok, &r);
    respond(c, r.status, NULL, r.ctype, r.body, r.len, keep);
    http_reply_free(&r);
    return keep;
}

/* Stops between requests once the answers pile up past the output mark: a
 * pipelining client that never reads gets no more answered than that. */
static void read_http(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->phase == PH_HTTP && !c->out_paused && !c->mem_paused) {
        size_t len = evbuffer_get_length(in);
        if (!len)
            return;
        size_t take = len > HEADER_LIMIT + 1 ? HEADER_LIMIT + 1 : len;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)take);
        /* The parser starts over on each call; a head can only complete with
         * a new LF, so a peer trickling bytes costs one scan per byte, not
         * one parse of the whole head per byte. */
        if (take <= HEADER_LIMIT && c->http_scanned && c->http_scanned < take &&
            !memchr(p + c->http_scanned, '\n', take - c->http_scanned)) {
            c->http_scanned = (uint16_t)take;
            return;
        }
        struct http_request req;
        int n = http_request_parse(p, take, HEADER_LIMIT, &req);
        if (n == HTTP_PARSE_INCOMPLETE) {
            c->http_scanned = (uint16_t)take;
            return;
        }
        c->http_scanned = 0;
        if (n == HTTP_PARSE_TOO_LARGE) {
            respond_text(c, 431, NULL, "request header fields too large\n", 0);
            return;
        }
        if (n < 0) {
            respond_text(c, 400, NULL, "bad request\n", 0);
            return;
        }
        int again = route(c, &req);
        if (c->freed)
            return;
        evbuffer_drain(in, (size_t)n);
        if (c->phase != PH_HTTP && c->phase != PH_WS)
            return;
        if (!again)
            break;
        /* A kept-alive connection gets a fresh header timeout per request. */
        set_timer(c, c->f->cfg->handshake_timeout_ms);
    }
    if (c->phase == PH_WS)
        read_ws(c);   /* frames sent right behind the upgrade request */
}

/* ---- libevent callbacks -------------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    dispatch_new_batch(c->f->d);
    if (c->phase == PH_HTTP)
        read_http(c);
    else
        read_ws(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (c->close_after_flush) {
        linger(c);
        return;
    }
    if (c->out_paused) {
        c->out_paused = 0;
        update_reading(c);
        read_buffered_later(c);
    }
    /* All it held for the client is written: it is no big holder any more,
     * even while the budget is still reached. */
    mem_resume(c);
    if (c->phase == PH_WS && c->ops->drained)
        c->ops->drained(c, c->ps);
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
        send_raw(c, frame, ws_build_ping(frame, "wsjobd", 6, NULL));
        c->pings_out++;
    }
    set_timer(c, interval);
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
    if (tls)
        f->conns.tls_open++;
    if (hook_buffers(c) < 0) {
        /* Unaccounted bytes would skew the budget for ever: refuse. */
        log_warn("cannot count a connection's buffers: out of memory");
        conn_free(c);   /* the fd goes with the bufferevent: it is ours now */
        return 0;
    }
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    set_timer(c, f->cfg->handshake_timeout_ms);
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

static void conn_free(struct conn *c)
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
    if (c->bev) {
        unhook_buffers(c);
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

/* ---- waiting for job capacity -------------------------------------------- */

/* Waiters handed capacity per call.  Each one may submit jobs and take the
 * capacity back, so a bounded batch keeps one turn of the loop short; the
 * rest go on the next turn.  (Walking every connection from inside the
 * release of a job record, as before, made one turn cost O(connections x
 * records freed): /healthz waited up to 1.7 s behind 32 waiting raw
 * connections on a full 8-slot ring.) */
#define ROOM_BATCH 16

static void room_unlink(struct conn *c)
{
    struct front *f = c->f;
    if (!c->room_queued)
        return;
    if (c->room_prev)
        c->room_prev->room_next = c->room_next;
    else
        f->room_head = c->room_next;
    if (c->room_next)
        c->room_next->room_prev = c->room_prev;
    else
        f->room_tail = c->room_prev;
    c->room_prev = c->room_next = NULL;
    c->room_queued = 0;
}

void conn_wait_room(struct conn *c)
{
    struct front *f = c->f;
    if (c->room_queued)
        return;
    c->room_queued = 1;
    c->room_next = NULL;
    c->room_prev = f->room_tail;
    if (f->room_tail)
        f->room_tail->room_next = c;
    else
        f->room_head = c;
    f->room_tail = c;
}

/* Back to the head: the oldest waiter stays first in line. */
static void room_requeue_first(struct conn *c)
{
    struct front *f = c->f;
    c->room_queued = 1;
    c->room_prev = NULL;
    c->room_next = f->room_head;
    if (f->room_head)
        f->room_head->room_prev = c;
    else
        f->room_tail = c;
    f->room_head = c;
}

int conn_room(void *arg)
{
    struct front *f = arg;
    for (unsigned i = 0; i < ROOM_BATCH && f->room_head; i++) {
        struct conn *c = f->room_head;
        room_unlink(c);
        if (c->phase != PH_WS || !c->ops->room)
            continue;
        if (c->ops->room(c, c->ps) < 0) {
            /* No capacity after all: dispatch calls again when a record
             * is freed (this refusal asked it to). */
            room_requeue_first(c);
            return 0;
        }
    }
    return f->room_head != NULL;
}
