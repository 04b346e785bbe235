/* conn_flush.c — write-through output for plain connections.
 *
 * libevent's socket bufferevent arms the write event whenever bytes are
 * added to an output it may write: one epoll_ctl to add EPOLLOUT, one more
 * turn of the loop to learn the socket is writable (it nearly always is),
 * the write, and one more epoll_ctl to take EPOLLOUT off once the buffer is
 * empty.  Per reply, that was two epoll_ctl and half an epoll_wait more than
 * the write itself (strace -c of the front, sha256 8 x 1).  As Redis does
 * (handleClientsWithPendingWrites), a plain connection's write event stays
 * off while nothing waits on the socket; adding output puts the connection
 * on the front's flush list, and before the loop sleeps each listed
 * connection gets one write.  Only what the socket does not take at once
 * (a partial write, EAGAIN, an error) turns the write event on, and libevent
 * finishes the buffer as before; conn.c's write_cb turns it off again.
 *
 * TLS connections are not listed: their bufferevent is a filter whose
 * socket is tls_conn.c's, which keeps libevent's way. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "front/conn_accept.h"
#include "front/conn_parts.h"

/* Bytes one connection may write per pass.  A bigger answer leaves the
 * rest to the write event, 16 KiB a turn (libevent's own cap), so one
 * client owed megabytes cannot stretch a turn of the loop for the others
 * (Redis caps a client's write per event at 64 KiB too). */
#define FLUSH_WRITE_MAX (64 << 10)

/* A turn with more connections to write than this writes them in the next
 * turn instead, at its end: under load the next turn's replies join them,
 * and clients answer bigger batches.  Written at once, raw echo 64 B at
 * 50 x 16 ran ~15 % slower (7 alternating pairs against libevent's write
 * events alone, unpinned: medians 1.30 M against 1.53 M msgs/s); with this
 * bound, level (3 pairs: 1.47-1.60 M against 1.53-1.63 M; with 8: 1.26-1.64
 * M against 1.37-1.68 M), while a few closed-loop clients keep the
 * write-through.  The connections wait on the list, not on write events:
 * arming and disarming EPOLLOUT for a write the next turn makes anyway was
 * two epoll_ctl a write (5.5 % of the front's time at 50 x 16, perf). */
#define FLUSH_BUSY_CONNS 4

static void list_append(struct conn *c)
{
    struct front *f = c->f;
    c->flush_listed = 1;
    c->flush_waited = 0;
    c->flush_next = NULL;
    c->flush_prev = f->flush_tail;
    if (f->flush_tail)
        f->flush_tail->flush_next = c;
    else
        f->flush_head = c;
    f->flush_tail = c;
    f->flush_count++;
}

static void list_unlink(struct conn *c)
{
    struct front *f = c->f;
    if (!c->flush_listed)
        return;
    if (c->flush_prev)
        c->flush_prev->flush_next = c->flush_next;
    else
        f->flush_head = c->flush_next;
    if (c->flush_next)
        c->flush_next->flush_prev = c->flush_prev;
    else
        f->flush_tail = c->flush_prev;
    c->flush_prev = c->flush_next = NULL;
    c->flush_listed = 0;
    f->flush_count--;
}

static int writing(const struct conn *c)
{
    return (bufferevent_get_enabled(c->bev) & EV_WRITE) != 0;
}

/* Runs on every change to the output, from whatever added it: conn_send,
 * HTTP answers, broadcast references, close frames.  While the write
 * event is on, libevent has the buffer and writes what comes. */
static void output_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    (void)b;
    if (info->n_added && !c->flush_listed && !writing(c))
        list_append(c);
}

int flush_hook(struct conn *c)
{
    if (c->tls)
        return 0;
    c->flush_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), output_cb, c);
    return c->flush_cb ? 0 : -1;
}

/* Before the buffer leaves with the socket (the linger) or is freed, and
 * before the struct goes: the flush pass never meets a freed connection. */
void flush_unhook(struct conn *c)
{
    if (c->flush_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->flush_cb);
    c->flush_cb = NULL;
    list_unlink(c);
}

static void flush_one(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (writing(c) || evbuffer_get_length(out) == 0)
        return;
    /* A socket bufferevent keeps its output's front frozen between its own
     * writes; draining a frozen front fails, and the bytes would go twice. */
    evbuffer_unfreeze(out, 1);
    (void)evbuffer_write_atmost(out, bufferevent_getfd(c->bev), FLUSH_WRITE_MAX);
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) == 0)
        conn_drained(c);   /* may free c */
    else
        bufferevent_enable(c->bev, EV_WRITE);   /* errors, too, reach event_cb from there */
}

/* A connection's drained callback may add output again (to itself or to
 * another): it goes on the list's tail, and the pass stops after as many
 * connections as were listed when it began, so it always ends.  In a busy
 * turn a connection listed since this turn goes back on the tail, marked,
 * and the next pass writes it whatever that turn is: no output waits more
 * than one turn, and the caller makes that turn poll without sleeping
 * (the return value).  Connections freed meanwhile have left the list
 * (flush_unhook). */
int conn_flush_all(struct front *f)
{
    int busy = f->flush_count > FLUSH_BUSY_CONNS;   /* see FLUSH_BUSY_CONNS */
    for (unsigned n = f->flush_count; n && f->flush_head; n--) {
        struct conn *c = f->flush_head;
        list_unlink(c);
        if (busy && !c->flush_waited) {
            list_append(c);
            c->flush_waited = 1;
            continue;
        }
        flush_one(c);
    }
    return f->flush_head != NULL;
}
