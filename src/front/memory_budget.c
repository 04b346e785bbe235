/* memory_budget.c — the memory budget.
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
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "base/timeval.h"
#include "front/conn_accept.h"
#include "front/conn_parts.h"

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
    conn_update_reading(c);
}

void budget_resume(struct conn *c)
{
    if (!c->mem_paused)
        return;
    c->mem_paused = 0;
    c->f->mem.paused--;
    conn_update_reading(c);
    conn_read_buffered_later(c);
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
        if (conn_not_reading(c) && peer_gone(c)) {
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
        budget_resume(c);
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
void budget_account_reader(struct conn *c)
{
    size_t now = ws_reader_buffered(&c->rd);
    if (now > c->rd_held)
        account(c, now - c->rd_held, 0);
    else if (now < c->rd_held)
        account(c, 0, c->rd_held - now);
    c->rd_held = now;
}

int budget_hook(struct conn *c)
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
void budget_unhook(struct conn *c)
{
    if (c->in_cb)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    if (c->out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    c->in_cb = c->out_cb = NULL;
}

void budget_forget(struct conn *c)
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
