/* agent_check.c — see agent_check.h.
 *
 * One connection, one line: the answer is written straight into the fresh
 * socket (its send buffer is empty, so a few bytes can neither block nor go
 * short), then the socket goes through the lingering close, because HAProxy
 * may have sent an agent-send string we never read, and closing over
 * unread bytes would send RST and could destroy the answer before HAProxy
 * reads it (linger.c).  At most AGENT_MAX answers linger at once; past
 * that the port stops accepting until one ends, and further checks wait in
 * the backlog (HAProxy does not count an agent that does not answer as a
 * failure: its health check decides up and down). */
#include "front/agent_check.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/netaddr.h"
#include "base/timeval.h"
#include "front/front.h"
#include "front/linger.h"
#include "front/listener.h"

#define AGENT_MAX        64    /* answers lingering at once */
#define AGENT_BACKLOG    64    /* HAProxy checks once per agent-inter per server */
#define AGENT_PAUSE_MS   100   /* after EMFILE, before accepting again */
#define HIGH_TENTHS      9     /* drain at 90% ... */
#define LOW_QUARTERS     3     /* ... until under 75% */

struct agent_check {
    struct front *f;
    struct evconnlistener *l;
    struct event *resume_ev;   /* accepting again after EMFILE */
    int port;
    int high;                  /* past the high-water mark (hysteresis) */
    int enabled;               /* started: accepting whenever below AGENT_MAX */
    unsigned lingering;        /* answers not yet closed, <= AGENT_MAX */
    uint64_t answers, drains;
    unsigned weight;           /* of the last answer, 0 for drain */
    char last[AGENT_LINE_MAX];
};

size_t agent_answer(const struct agent_load *load, int *high, char *buf)
{
    /* Each share is used / of; comparing products keeps it exact. */
    const uint64_t used[3] = { load->depth[0], load->depth[1], load->open };
    const uint64_t of[3] = { load->capacity[0], load->capacity[1], load->max_connections };
    unsigned weight = 100;
    int any_high = 0, all_low = 1;
    for (int i = 0; i < 3; i++) {
        if (of[i] == 0)
            continue;
        /* 100 x the free share, to the nearest (one connection of 10000
         * is not worth a point) */
        unsigned w = used[i] >= of[i] ? 0
                   : (unsigned)((200 * (of[i] - used[i]) + of[i]) / (2 * of[i]));
        weight = w < weight ? w : weight;
        any_high |= 10 * used[i] >= HIGH_TENTHS * of[i];
        all_low &= 4 * used[i] < LOW_QUARTERS * of[i];
    }
    if (any_high)
        *high = 1;
    else if (all_low)
        *high = 0;
    if (load->shutting_down || *high)
        return (size_t)snprintf(buf, AGENT_LINE_MAX, "drain\n");
    return (size_t)snprintf(buf, AGENT_LINE_MAX, "ready %u%%\n", weight);
}

static void snapshot(const struct front *f, struct agent_load *load)
{
    for (int c = 0; c < 2; c++) {
        load->depth[c] = shm_jobring_depth(f->p->ring[c]);
        load->capacity[c] = shm_jobring_capacity(f->p->ring[c]);
    }
    load->open = f->conns.open;
    load->max_connections = f->cfg->max_connections;
    load->shutting_down = f->shutting_down;
}

static void set_accepting(struct agent_check *a, int on)
{
    if (on)
        evconnlistener_enable(a->l);
    else
        evconnlistener_disable(a->l);
}

static void linger_ended(void *arg)
{
    struct agent_check *a = arg;
    if (a->lingering-- == AGENT_MAX && a->enabled)
        set_accepting(a, 1);
}

static void note(struct agent_check *a, const char *line, size_t len)
{
    int drain = line[0] == 'd';
    int was_drain = a->last[0] == 'd';
    a->answers++;
    a->drains += (uint64_t)drain;
    a->weight = drain ? 0 : (unsigned)atoi(line + 6);   /* "ready N%" */
    if (drain != was_drain)
        log_info("agent check: now answering %.*s", (int)len - 1, line);
    snprintf(a->last, sizeof a->last, "%.*s", (int)len - 1, line);
}

static void accept_cb(struct evconnlistener *el, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct agent_check *a = arg;
    (void)el;
    (void)sa;
    (void)salen;
    struct agent_load load;
    char line[AGENT_LINE_MAX];
    snapshot(a->f, &load);
    size_t len = agent_answer(&load, &a->high, line);
    if (send(fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
        note(a, line, len);
    struct bufferevent *bev = bufferevent_socket_new(a->f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        close(fd);
        return;
    }
    if (linger_start_notify(bev, linger_ended, a) < 0) {
        bufferevent_free(bev);
        return;
    }
    if (++a->lingering == AGENT_MAX)
        set_accepting(a, 0);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct agent_check *a = arg;
    (void)fd;
    (void)what;
    if (a->enabled && a->lingering < AGENT_MAX)
        set_accepting(a, 1);
}

/* EMFILE and the like leave the connection in the backlog, so accepting
 * again at once would spin: pause, as the main listeners do. */
static void error_cb(struct evconnlistener *el, void *arg)
{
    struct agent_check *a = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)el;
    log_warn("agent check: accept: %s", strerror(err));
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return;
    set_accepting(a, 0);
    struct timeval tv = tv_from_ms(AGENT_PAUSE_MS);
    event_add(a->resume_ev, &tv);
}

struct agent_check *agent_check_open(struct front *f, const struct netaddr *addr,
                                     char *err, size_t errlen)
{
    struct agent_check *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->f = f;
    a->resume_ev = evtimer_new(f->base, resume_cb, a);
    int fd = a->resume_ev ? listener_bind(addr, AGENT_BACKLOG, err, errlen) : -1;
    if (fd < 0) {
        if (!a->resume_ev)
            snprintf(err, errlen, "out of memory");
        agent_check_close(a);
        return NULL;
    }
    a->port = listener_port(fd);
    a->l = evconnlistener_new(f->base, accept_cb, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED,
                              -1, fd);
    if (!a->l) {
        snprintf(err, errlen, "evconnlistener_new failed");
        close(fd);
        agent_check_close(a);
        return NULL;
    }
    evconnlistener_set_error_cb(a->l, error_cb);
    log_info("agent check on %s (port %d)", addr->text, a->port);
    return a;
}

void agent_check_enable(struct agent_check *a)
{
    if (!a)
        return;
    a->enabled = 1;
    if (a->lingering < AGENT_MAX)
        set_accepting(a, 1);
}

void agent_check_close(struct agent_check *a)
{
    if (!a)
        return;
    if (a->l)
        evconnlistener_free(a->l);
    if (a->resume_ev)
        event_free(a->resume_ev);
    free(a);
}

void agent_check_counts(const struct agent_check *a, struct agent_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!a)
        return;
    out->port = a->port;
    out->answers_total = a->answers;
    out->drain_total = a->drains;
    out->lingering = a->lingering;
    out->weight = a->weight;
    memcpy(out->last, a->last, sizeof out->last);
}
