/* listener.c — accept loop and connection admission. */
#include "front/listener.h"

#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timeval.h"
#include "front/conn_accept.h"
#include "front/front.h"
#include "front/linger.h"

#define MAX_LISTENERS 64
#define EMFILE_PAUSE_MS 100

struct listeners {
    struct front *f;
    struct evconnlistener *l[MAX_LISTENERS];
    int tls[MAX_LISTENERS];
    size_t n;
    struct event *resume_ev;   /* re-enables accepting after EMFILE */
    int port;
};

static const char busy_503[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";

/* Over --max-connections: a short answer written straight to the fresh
 * socket (its send buffer is empty, so this cannot block), then the
 * lingering close, so that the answer is read before the socket is reset. */
static void refuse(struct listeners *ls, evutil_socket_t fd, int tls)
{
    ls->f->conns.rejected_total++;
    /* A TLS client cannot read a plaintext answer: it just sees the close. */
    if (!tls) {
        ssize_t n = send(fd, busy_503, sizeof busy_503 - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)n;
    }
    struct bufferevent *bev = bufferevent_socket_new(ls->f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        close(fd);
        return;
    }
    if (linger_start(bev) < 0)
        bufferevent_free(bev);
}

static void accept_cb(struct evconnlistener *el, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct listeners *ls = arg;
    struct front *f = ls->f;
    int tls = 0;
    for (size_t i = 0; i < ls->n; i++)
        if (ls->l[i] == el)
            tls = ls->tls[i];
    if (f->conns.open >= f->cfg->max_connections) {
        refuse(ls, fd, tls);
        return;
    }
    f->conns.accepted_total++;
    /* A job's events are small messages written as they happen.  With
     * Nagle's algorithm the second of two (a detached job's `accepted`,
     * then its `done`) waits for the client's delayed ACK of the first:
     * 40 ms, which held detached echo jobs to 22 a second on one
     * connection.  Replies drained together still leave in one write.
     * (Fails harmlessly on a Unix socket from systemd.) */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (conn_accept(f, fd, sa, (socklen_t)salen, tls) < 0)
        close(fd);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listeners *ls = arg;
    for (size_t i = 0; i < ls->n; i++)
        evconnlistener_enable(ls->l[i]);
}

/* EMFILE/ENFILE: the pending connection stays in the backlog, so accepting
 * again at once would spin.  Pause every listener briefly; closing
 * connections frees descriptors meanwhile. */
static void error_cb(struct evconnlistener *el, void *arg)
{
    struct listeners *ls = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)el;
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        log_warn("accept: %s", strerror(err));
        return;
    }
    log_warn("accept: %s: pausing for %d ms", strerror(err), EMFILE_PAUSE_MS);
    for (size_t i = 0; i < ls->n; i++)
        evconnlistener_disable(ls->l[i]);
    struct timeval tv = tv_from_ms(EMFILE_PAUSE_MS);
    event_add(ls->resume_ev, &tv);
}

int listener_bind(const struct netaddr *a, int backlog, char *err, size_t errlen)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", a->text, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* [::]:PORT means IPv6 only; IPv4 gets its own --listen line. */
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, backlog) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int listener_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static int add(struct listeners *ls, int fd, int tls, char *err, size_t errlen)
{
    if (ls->n == MAX_LISTENERS) {
        snprintf(err, errlen, "more than %d listeners", MAX_LISTENERS);
        close(fd);
        return -1;
    }
    evutil_make_socket_nonblocking(fd);
    struct evconnlistener *el = evconnlistener_new(ls->f->base, accept_cb, ls,
                                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED, -1, fd);
    if (!el) {
        snprintf(err, errlen, "evconnlistener_new failed");
        close(fd);
        return -1;
    }
    evconnlistener_set_error_cb(el, error_cb);
    if (!ls->port)
        ls->port = listener_port(fd);
    ls->tls[ls->n] = tls;
    ls->l[ls->n++] = el;
    return 0;
}

/* Socket activation: systemd passes listening sockets from fd 3 on.  Which
 * are TLS is told by their FileDescriptorName=tls (sd_listen_fds_with_names). */
static int open_activated(struct listeners *ls, int n, char *err, size_t errlen)
{
    char **names = NULL;
    sd_listen_fds_with_names(1, &names);
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        int tls = names && names[i] && strcmp(names[i], "tls") == 0;
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
            snprintf(err, errlen, "socket activation: fd %d is not a listening stream socket", fd);
            return -1;
        }
        if (add(ls, fd, tls, err, errlen) < 0)
            return -1;
        log_info("listening on activated socket %d (port %d)%s", fd, listener_port(fd), tls ? " (tls)" : "");
    }
    if (names) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
    }
    return 0;
}

struct listeners *listeners_open(struct front *f, char *err, size_t errlen)
{
    struct listeners *ls = calloc(1, sizeof *ls);
    if (!ls) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ls->f = f;
    ls->resume_ev = evtimer_new(f->base, resume_cb, ls);
    int n = sd_listen_fds(1);
    if (n > 0) {
        if (open_activated(ls, n, err, errlen) < 0)
            goto fail;
        return ls;
    }
    const struct config *c = f->cfg;
    for (int tls = 0; tls < 2; tls++) {
        const struct config_addrs *as = tls ? &c->tls_listen : &c->listen;
        for (size_t i = 0; i < as->n; i++) {
            int fd = listener_bind(&as->v[i], (int)c->backlog, err, errlen);
            if (fd < 0 || add(ls, fd, tls, err, errlen) < 0)
                goto fail;
            log_info("listening on %s%s (port %d)", tls ? "wss://" : "ws://",
                     as->v[i].text, listener_port(fd));
        }
    }
    return ls;
fail:
    listeners_close(ls);
    return NULL;
}

void listeners_enable(struct listeners *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        evconnlistener_enable(ls->l[i]);
}

void listeners_close(struct listeners *ls)
{
    if (!ls)
        return;
    for (size_t i = 0; i < ls->n; i++)
        evconnlistener_free(ls->l[i]);
    ls->n = 0;
    if (ls->resume_ev)
        event_free(ls->resume_ev);
    ls->resume_ev = NULL;
    free(ls);
}

int listeners_first_port(const struct listeners *ls) { return ls->port; }
