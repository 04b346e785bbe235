/* bench_tcp_echo.c — the yardstick for `make bench`: the simplest
 * server that can answer the same load, a single-threaded epoll loop that
 * writes back whatever it reads.  What `wsjob bench --tcp-echo` gets from it
 * is what loopback TCP and one core allow; the WebSocket pipeline's figure
 * is read as a fraction of it.
 *
 *   bench_tcp_echo [PORT [SECONDS]]
 *
 * Listens on 127.0.0.1:PORT (0, the default, lets the kernel choose),
 * prints "port N" on stdout once listening, and exits on SIGTERM or SIGINT,
 * or after SECONDS (default 600) so a forgotten one does not linger. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE   (64 * 1024)
#define MAX_EVENTS 256

/* One client: bytes read and not yet written back.  Every client is on
 * one list, so that exit can free them all. */
struct client {
    struct client *prev, *next;
    int      fd;
    size_t   off, len;
    bool     polling_out;
    uint8_t  buf[BUF_SIZE];
};

static volatile sig_atomic_t stop;
static struct client *clients;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("bench_tcp_echo: listen");
        exit(1);
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

static void drop(struct client *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    free(c);
}

static int watch(int ep, struct client *c, bool out)
{
    struct epoll_event ev = { .events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c };
    c->polling_out = out;
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes back what is pending.  0 done, 1 the socket is full, -1 error. */
static int write_back(struct client *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 1 : -1;
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 0;
}

/* Reads, then echoes; while a write is stuck the client is not read, which
 * is the backpressure an echo server owes its peer. */
static void serve(int ep, struct client *c)
{
    int rc = c->len ? write_back(c) : 0;
    if (rc == 0 && !c->len) {
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(c);
            return;
        }
        c->len = n > 0 ? (size_t)n : 0;
        rc = write_back(c);
    }
    if (rc < 0 || ((rc == 1) != c->polling_out && watch(ep, c, rc == 1) < 0))
        drop(c);
}

static void accept_all(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct client *c = calloc(1, sizeof *c);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->next = clients;
        if (clients)
            clients->prev = c;
        clients = c;
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    long seconds = argc > 2 ? atol(argv[2]) : 600;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int lfd = listen_on(port), ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("bench_tcp_echo: epoll");
        return 1;
    }
    time_t end = time(NULL) + seconds;
    while (!stop && time(NULL) < end) {
        struct epoll_event evs[MAX_EVENTS];
        int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr)
                serve(ep, evs[i].data.ptr);
            else
                accept_all(ep, lfd);
        }
    }
    while (clients)
        drop(clients);
    close(ep);
    close(lfd);
    return 0;
}
