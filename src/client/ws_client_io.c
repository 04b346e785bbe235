/* ws_client_io.c — URLs, TCP connects and the TCP-or-TLS stream of the
 * wsjob client; see ws_client_io.h. */
#include "client/ws_client_io.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client/tls_client.h"

static int reason(char *why, size_t whylen, const char *fmt, const char *arg)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, arg);
    return -1;
}

/* ---- URL ---------------------------------------------------------------- */

static int parse_port(const char *p, size_t n, char out[6])
{
    if (n == 0 || n > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    snprintf(out, 6, "%u", v);
    return 0;
}

/* Splits "host[:port]" or "[v6][:port]" (auth[0..n)). */
static int parse_authority(struct ws_url *u, const char *a, size_t n, char *why, size_t whylen)
{
    const char *host = a, *colon = NULL;
    size_t hlen;
    if (n && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return reason(why, whylen, "%s: missing ] after the IPv6 address", a);
        host = a + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < a + n) {
            if (close[1] != ':')
                return reason(why, whylen, "%s: junk after ]", a);
            colon = close + 1;
        }
    } else {
        colon = memchr(a, ':', n);
        hlen = colon ? (size_t)(colon - a) : n;
    }
    if (hlen == 0 || hlen >= sizeof u->host)
        return reason(why, whylen, "%s: bad host", a);
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    if (colon && parse_port(colon + 1, (size_t)(a + n - colon - 1), u->port) < 0)
        return reason(why, whylen, "%s: port must be 1..65535", a);
    if (!colon)
        snprintf(u->port, sizeof u->port, "%s", u->tls ? "443" : "80");
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(u->authority, sizeof u->authority, "%s%s%s:%s", v6 ? "[" : "", u->host,
             v6 ? "]" : "", u->port);
    return 0;
}

int ws_url_parse(struct ws_url *u, const char *s, char *why, size_t whylen)
{
    memset(u, 0, sizeof *u);
    const char *rest;
    if (strncasecmp(s, "ws://", 5) == 0) {
        rest = s + 5;
    } else if (strncasecmp(s, "wss://", 6) == 0) {
        u->tls = true;
        rest = s + 6;
    } else {
        return reason(why, whylen, "%s: the URL must start with ws:// or wss://", s);
    }
    if (strchr(rest, '#'))
        return reason(why, whylen, "%s: a WebSocket URL has no #fragment", s);
    size_t alen = strcspn(rest, "/?");
    if (memchr(rest, '@', alen))
        return reason(why, whylen, "%s: user info is not supported", s);
    if (parse_authority(u, rest, alen, why, whylen) < 0)
        return -1;
    const char *t = rest + alen;
    int n = snprintf(u->target, sizeof u->target, "%s%s", *t == '?' ? "/" : "", t);
    if (n < 0 || (size_t)n >= sizeof u->target)
        return reason(why, whylen, "%s: path too long", s);
    return 0;
}

/* ---- TCP ---------------------------------------------------------------- */

int ws_tcp_connect(const struct sockaddr *sa, socklen_t len, char *why, size_t whylen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return reason(why, whylen, "socket: %s", strerror(errno));
    int one = 1;
    /* Small frames must leave at once: Nagle would hold a pipelined
     * request behind the previous one's ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return reason(why, whylen, "connect: %s", strerror(e));
    }
    return fd;
}

static int wait_connected(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int n;
    do
        n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return ETIMEDOUT;
    if (n < 0)
        return errno;
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return errno;
    return err;
}

static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

int ws_url_resolve(const struct ws_url *u, int timeout_ms, struct sockaddr_storage *ss,
                   socklen_t *len, char *why, size_t whylen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV }, *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0)
        return reason(why, whylen, "%s", gai_strerror(rc));
    int err = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = ws_tcp_connect(ai->ai_addr, ai->ai_addrlen, NULL, 0);
        if (fd < 0)
            continue;
        err = wait_connected(fd, timeout_ms);
        if (err == 0 && set_blocking(fd) == 0) {
            memcpy(ss, ai->ai_addr, ai->ai_addrlen);
            *len = ai->ai_addrlen;
            freeaddrinfo(res);
            return fd;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (why && whylen)
        snprintf(why, whylen, "%s: %s", u->authority, strerror(err));
    return -1;
}

/* ---- the stream ------------------------------------------------------------ */

int ws_stream_start_tls(struct ws_stream *s, struct tls_client_ctx *ctx, const char *host,
                        int timeout_ms, char *why, size_t whylen)
{
    s->tls = tls_client_connect(ctx, s->fd, host, timeout_ms, why, whylen);
    return s->tls ? 0 : -1;
}

int ws_stream_open(struct ws_stream *s, const struct ws_url *u, struct tls_client_ctx *ctx,
                   int timeout_ms, char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    s->tls = NULL;
    s->fd = ws_url_resolve(u, timeout_ms, &ss, &len, why, whylen);
    if (s->fd < 0)
        return -1;
    if (u->tls && ws_stream_start_tls(s, ctx, u->host, timeout_ms, why, whylen) < 0) {
        ws_stream_close(s);
        return -1;
    }
    return 0;
}

ssize_t ws_stream_send(struct ws_stream *s, const void *buf, size_t len)
{
    if (s->tls)
        return tls_client_send(s->tls, buf, len);
    return send(s->fd, buf, len, MSG_NOSIGNAL);
}

ssize_t ws_stream_recv(struct ws_stream *s, void *buf, size_t len)
{
    if (s->tls)
        return tls_client_recv(s->tls, buf, len);
    return recv(s->fd, buf, len, 0);
}

size_t ws_stream_pending(const struct ws_stream *s)
{
    return s->tls ? tls_client_pending(s->tls) : 0;
}

const char *ws_stream_error(const struct ws_stream *s, int err)
{
    if (s->tls && err == EPROTO && *tls_client_error(s->tls))
        return tls_client_error(s->tls);
    return strerror(err);
}

void ws_stream_close(struct ws_stream *s)
{
    if (s->tls)
        tls_client_free(s->tls);
    if (s->fd >= 0)
        close(s->fd);
    s->tls = NULL;
    s->fd = -1;
}
