/* ws_client.h — the client end of a WebSocket connection, for the wsjob CLI.
 *
 * It adds to the shared codec (ws_frame.h, ws_handshake.h) only what a
 * client needs around it: the opening handshake driven over a stream
 * (ws_client_io.h: URLs, connects, TCP or TLS) and masked frames.  Two ways
 * to use it:
 *
 *  - blocking, one connection (submit, ping): ws_client_open(), then
 *    ws_client_send() / ws_client_recv(); pings are answered inside recv.
 *  - pieces for an event loop (bench): ws_url_resolve() once, then per
 *    connection ws_tcp_connect() non-blocking (and ws_stream_start_tls()
 *    for wss://), ws_client_hs_init() for the
 *    request bytes, ws_client_hs_check() on what comes back, and
 *    ws_client_frame() for each frame sent.  The loop owns its buffers and
 *    a struct ws_reader in WS_ROLE_CLIENT role.
 *
 * Errors: a negative return and a reason written into the caller's buffer
 * (or kept in the blocking client, ws_client_error()). */
#ifndef WSJOBD_WS_CLIENT_H
#define WSJOBD_WS_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "client/ws_client_io.h"
#include "wire/ws_handshake.h"

/* The opening handshake of one connection: the request to send and the key
 * whose accept value the answer must carry. */
struct ws_client_hs {
    struct ws_client_key key;
    size_t len;            /* bytes of req */
    char   req[2048];
};

/* Draws a fresh key and writes the GET request for target (a path such as
 * "/run/echo"); extra is more header lines ending in CRLF, or NULL.  0, or
 * -1 with a reason. */
int ws_client_hs_init(struct ws_client_hs *hs, const struct ws_url *u, const char *target,
                      const char *extra, char *why, size_t whylen);

/* Judges the server's answer in buf[0..len) to the request made with key.  Returns the length of the
 * response head (frames may follow it), 0 when more bytes are needed, or -1
 * with a reason ("HTTP 404 Not Found", "bad Sec-WebSocket-Accept"). */
int ws_client_hs_check(const struct ws_client_key *key, const char *buf, size_t len,
                       char *why, size_t whylen);

/* Writes one final frame, masked with the given key (RFC 6455 §5.3: every
 * client frame is masked), into out, which has room for len +
 * WS_MAX_HEADER bytes.  Returns the frame length. */
size_t ws_client_frame(uint8_t *out, uint8_t opcode, const void *payload, size_t len,
                       const uint8_t mask[4]);

/* Fills buf from the kernel's random source (getrandom).  0, or -1. */
int ws_client_random(void *buf, size_t n);

/* ---- blocking connection ---- */

struct ws_client;

/* Connects to the URL's host (over TLS with the trust in tls for wss://;
 * NULL for ws://), upgrades on target, and returns the connection, or NULL
 * with a reason.  timeout_ms bounds each step. */
struct ws_client *ws_client_open(const struct ws_url *u, const char *target,
                                 const char *extra, struct tls_client_ctx *tls,
                                 int timeout_ms, char *why, size_t whylen);

/* Signals to let through while recv waits (the rest stay as they are):
 * a caller that blocks SIGINT and passes a mask without it gets SIGINT
 * only inside recv, where it is seen without a race (ppoll).  NULL: the
 * caller's mask. */
void ws_client_set_sigmask(struct ws_client *c, const sigset_t *mask);

/* Sends one message as a single masked frame.  0, or -1. */
int ws_client_send(struct ws_client *c, uint8_t opcode, const void *data, size_t len);

/* Sends a ping with up to 125 bytes of payload.  0, or -1. */
int ws_client_ping(struct ws_client *c, const void *data, size_t len);

struct ws_msg {
    uint8_t        opcode;      /* TEXT, BINARY, PONG or CLOSE */
    const uint8_t *data;        /* valid until the next recv */
    size_t         len;
    uint16_t       close_code;  /* CLOSE: the peer's code, 1005 for none */
};

#define WS_RECV_TIMEOUT     0
#define WS_RECV_INTERRUPTED (-2)   /* a signal came in while waiting */

/* Waits up to timeout_ms (-1: no limit) for the next message, pong or
 * close.  Returns 1 with *m filled, WS_RECV_TIMEOUT, WS_RECV_INTERRUPTED, or
 * -1 when the connection failed or ended (see ws_client_error()).  After a
 * CLOSE message the next recv returns -1. */
int ws_client_recv(struct ws_client *c, struct ws_msg *m, int timeout_ms);

const char *ws_client_error(const struct ws_client *c);

/* Says goodbye with a close frame (1000) when the connection is still
 * open, closes the socket and frees everything.  NULL is fine. */
void ws_client_close(struct ws_client *c);

#endif
