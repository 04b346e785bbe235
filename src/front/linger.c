/* linger.c — the lingering close.
 *
 * Closing a socket while the peer's bytes are still unread makes the kernel
 * send RST, and an RST can destroy our last answer (a 400, a 503, a close
 * frame, a TLS close_notify) in the peer's receive buffer before it reads it
 * (RFC 9112 §9.6).  So a connection we end sends what is queued, then our
 * FIN, then reads and drops until the peer's FIN, and only then closes: at
 * most LINGER_MS, and at most LINGER_MAX sockets at once, because
 * descriptors are finite and a peer that never closes must not keep one. */
#include "front/linger.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "base/timeval.h"

#define LINGER_MS  1000   /* sending the rest, then waiting for the peer's FIN */
#define LINGER_MAX 4096   /* sockets lingering at once */

struct lingering {
    struct bufferevent *bev;    /* owned: freed (fd closed) at the end */
    struct event deadline;
    struct lingering *prev, *next;
    void (*ended)(void *arg);   /* told once the socket is closed, or NULL */
    void *arg;
    uint8_t shut;               /* all sent, our FIN is out */
};

static struct lingering *all;      /* every linger, so none outlives the loop */
static unsigned n_all;          /* length of that list, at most LINGER_MAX */

static void linger_end(struct lingering *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        all = l->next;
    if (l->next)
        l->next->prev = l->prev;
    n_all--;
    evtimer_del(&l->deadline);
    bufferevent_free(l->bev);
    void (*ended)(void *) = l->ended;
    void *arg = l->arg;
    free(l);
    if (ended)
        ended(arg);
}

static void shut(struct lingering *l)
{
    if (l->shut)
        return;
    l->shut = 1;
    if (shutdown(bufferevent_getfd(l->bev), SHUT_WR) < 0)
        linger_end(l);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    (void)arg;
    evbuffer_drain(in, evbuffer_get_length(in));   /* a late request: nobody wants it */
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    /* A write callback deferred from before the hand-over may come early. */
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        shut(arg);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;   /* the peer's FIN, or an error: done either way */
    linger_end(arg);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    linger_end(arg);
}

int linger_start(struct bufferevent *bev)
{
    return linger_start_notify(bev, NULL, NULL);
}

int linger_start_notify(struct bufferevent *bev, void (*ended)(void *arg), void *arg)
{
    struct event_base *base = bufferevent_get_base(bev);
    if (n_all >= LINGER_MAX || bufferevent_getfd(bev) < 0 ||
        event_base_got_exit(base) || event_base_got_break(base))
        return -1;
    struct lingering *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    l->bev = bev;
    l->ended = ended;
    l->arg = arg;
    evtimer_assign(&l->deadline, base, deadline_cb, l);
    struct timeval tv = tv_from_ms(LINGER_MS);
    if (evtimer_add(&l->deadline, &tv) < 0) {
        free(l);
        return -1;
    }
    l->next = all;
    if (all)
        all->prev = l;
    all = l;
    n_all++;
    bufferevent_setwatermark(bev, EV_WRITE, 0, 0);   /* the write callback means "all sent" */
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, l);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        shut(l);
    return 0;
}

void linger_end_all(void)
{
    while (all)
        linger_end(all);
}
