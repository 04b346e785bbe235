/* ws_client_io.h — where a wsjob client's bytes go: ws:// and wss:// URLs,
 * the TCP connect, and a stream that is plain TCP or TLS over it
 * (tls_client.h), with send/recv shaped like the system calls so one code
 * path serves both.
 *
 * Errors: a negative return and a reason written into the caller's buffer. */
#ifndef WSJOBD_WS_CLIENT_IO_H
#define WSJOBD_WS_CLIENT_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct tls_client_ctx;
struct tls_client;

struct ws_url {
    bool tls;              /* wss:// */
    char host[256];        /* name or address; an IPv6 address without [] */
    char port[6];          /* decimal, 1..65535; 80 or 443 when not given */
    char authority[272];   /* the Host header value: "h:p" or "[v6]:p" */
    char target[1024];     /* path and query as written; "" when absent */
};

/* Parses ws://HOST[:PORT][/PATH][?QUERY] and the wss:// form.  HOST may be
 * an [IPv6] literal.  User info and fragments are refused: RFC 6455 §3
 * allows neither in a WebSocket URI.  0, or -1 with a reason. */
int ws_url_parse(struct ws_url *u, const char *s, char *why, size_t whylen);

/* Finds the address of the URL's host that accepts a TCP connection (a
 * name like localhost may have several), trying each in turn with a
 * blocking connect of at most timeout_ms.  Returns the connected socket
 * (blocking, TCP_NODELAY) and fills *ss / *len, or -1 with a reason. */
int ws_url_resolve(const struct ws_url *u, int timeout_ms, struct sockaddr_storage *ss,
                   socklen_t *len, char *why, size_t whylen);

/* A non-blocking TCP socket with TCP_NODELAY, connect() started.  The
 * caller waits for writability and then reads SO_ERROR.  -1 with a reason
 * when even starting fails. */
int ws_tcp_connect(const struct sockaddr *sa, socklen_t len, char *why, size_t whylen);

/* A connected byte stream to the server. */
struct ws_stream {
    int fd;                    /* owned; -1 when closed */
    struct tls_client *tls;    /* owned; NULL for ws:// */
};

/* Connects (blocking) to the URL's host and, for wss://, does the TLS
 * handshake with the trust in ctx; timeout_ms bounds each step.  0, or -1
 * with a reason (s is then closed). */
int ws_stream_open(struct ws_stream *s, const struct ws_url *u, struct tls_client_ctx *ctx,
                   int timeout_ms, char *why, size_t whylen);

/* TLS over s->fd, connected already (blocking or not): the handshake for
 * at most timeout_ms.  0, or -1 with a reason. */
int ws_stream_start_tls(struct ws_stream *s, struct tls_client_ctx *ctx, const char *host,
                        int timeout_ms, char *why, size_t whylen);

/* Like send(2) (never SIGPIPE) and recv(2).  With TLS, a send that failed
 * with EAGAIN must be repeated with the same buf and len. */
ssize_t ws_stream_send(struct ws_stream *s, const void *buf, size_t len);
ssize_t ws_stream_recv(struct ws_stream *s, void *buf, size_t len);

/* Bytes TLS has decrypted already: poll(2) cannot see them, so a reader
 * drains them before it waits. */
size_t ws_stream_pending(const struct ws_stream *s);

/* What the last failure was: the TLS layer's words, or errno's. */
const char *ws_stream_error(const struct ws_stream *s, int err);

/* Ends TLS (close_notify when it can go without blocking), closes the
 * socket.  A closed stream may be closed again. */
void ws_stream_close(struct ws_stream *s);

#endif
