/* ws_client.c — the client end of a WebSocket connection; see ws_client.h.
 *
 * The first half is the pieces (handshake, frames) that the event-loop
 * client in the bench uses directly; the second half builds the blocking
 * connection of `wsjob submit` from the same pieces. */
#include "client/ws_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "wire/ws_frame.h"

#define IN_BUF_SIZE (64 * 1024)   /* >= WS_READER_WHOLE_FRAME, see ws_frame.h */
#define GOODBYE_MS  500           /* how long close waits for the server's close */

static int reason(char *why, size_t whylen, const char *fmt, const char *arg)
{
    if (why && whylen)
        snprintf(why, whylen, fmt, arg);
    return -1;
}

/* ---- handshake and frames ------------------------------------------------ */

int ws_client_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int ws_client_hs_init(struct ws_client_hs *hs, const struct ws_url *u, const char *target,
                      const char *extra, char *why, size_t whylen)
{
    uint8_t nonce[16];
    if (ws_client_random(nonce, sizeof nonce) < 0 || ws_client_key_init(&hs->key, nonce) < 0)
        return reason(why, whylen, "%s", "cannot make a WebSocket key");
    int n = ws_client_request(hs->req, sizeof hs->req, u->authority, target, &hs->key,
                              NULL, extra);
    if (n < 0)
        return reason(why, whylen, "%s: request too long or holds a control character", target);
    hs->len = (size_t)n;
    return 0;
}

int ws_client_hs_check(const struct ws_client_key *key, const char *buf, size_t len,
                       char *why, size_t whylen)
{
    int status = 0;
    int n = ws_client_verify(buf, len, key, NULL, &status, NULL);
    if (n > 0)
        return n;
    switch (n) {
    case HTTP_PARSE_INCOMPLETE:
        return 0;
    case WS_CLIENT_REFUSED: {
        struct http_response r;
        char st[200];
        if (http_response_parse(buf, len, WS_CLIENT_MAX_RESPONSE, &r) > 0)
            snprintf(st, sizeof st, "HTTP %d %.*s", r.status, (int)r.reason.len, r.reason.p);
        else
            snprintf(st, sizeof st, "HTTP %d", status);
        return reason(why, whylen, "%s", st);
    }
    case WS_CLIENT_BAD_UPGRADE:
        return reason(why, whylen, "%s", "the server did not upgrade to WebSocket");
    case WS_CLIENT_BAD_ACCEPT:
        return reason(why, whylen, "%s", "bad Sec-WebSocket-Accept in the answer");
    case WS_CLIENT_BAD_NEGOTIATION:
        return reason(why, whylen, "%s", "the server chose an extension or subprotocol not offered");
    default:
        return reason(why, whylen, "%s", "malformed HTTP answer");
    }
}

size_t ws_client_frame(uint8_t *out, uint8_t opcode, const void *payload, size_t len,
                       const uint8_t mask[4])
{
    size_t h = ws_frame_header_write(out, true, opcode, len, mask);
    if (len)
        memcpy(out + h, payload, len);
    ws_mask(out + h, len, mask, 0);
    return h + len;
}

/* ---- blocking connection ------------------------------------------------- */

struct ws_client {
    struct ws_stream s;      /* owned */
    struct ws_reader rd;
    uint8_t *in;             /* IN_BUF_SIZE bytes, owned; in_len unread */
    size_t   in_len;
    uint8_t *out;            /* frame being sent, owned, grown as needed */
    size_t   out_cap;
    uint8_t *msg;            /* copy of the message recv hands out, owned */
    size_t   msg_len, msg_cap;
    struct ws_msg pending;
    bool     have_msg;
    bool     closed;         /* a close frame was read or sent: no more I/O */
    bool     close_sent;     /* ours went out: nothing may follow it */
    bool     peer_closed;    /* theirs came in */
    bool     use_mask;
    sigset_t mask;           /* signal mask while waiting in recv */
    char     why[256];
};

static int64_t now_ms(void)
{
    return shm_now_ns() / 1000000;
}

static int left_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t d = deadline - now_ms();
    return d < 0 ? 0 : d > 1000000000 ? 1000000000 : (int)d;
}

static int fail_with(struct ws_client *c, const char *fmt, const char *arg)
{
    snprintf(c->why, sizeof c->why, fmt, arg);
    return -1;
}

/* Writes everything; a full socket (TLS can say EAGAIN even on a blocking
 * one) is waited for and the same bytes offered again, as TLS requires. */
static int send_all(struct ws_client *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t n = ws_stream_send(&c->s, p, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            struct pollfd pf = { .fd = c->s.fd, .events = POLLOUT };
            poll(&pf, 1, 1000);
            continue;
        }
        if (n < 0)
            return fail_with(c, "send: %s", ws_stream_error(&c->s, errno));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_frame(struct ws_client *c, uint8_t opcode, const void *data, size_t len)
{
    if (c->closed)
        return fail_with(c, "%s", "the connection is closed");
    if (len + WS_MAX_HEADER > c->out_cap) {
        uint8_t *p = realloc(c->out, len + WS_MAX_HEADER);
        if (!p)
            return fail_with(c, "%s", "out of memory");
        c->out = p;
        c->out_cap = len + WS_MAX_HEADER;
    }
    uint8_t mask[4];
    if (ws_client_random(mask, sizeof mask) < 0)
        return fail_with(c, "%s", "no random bytes for the mask");
    return send_all(c, c->out, ws_client_frame(c->out, opcode, data, len, mask));
}

static int keep_message(struct ws_client *c, uint8_t opcode, const uint8_t *data, size_t len)
{
    if (len > c->msg_cap) {
        uint8_t *p = realloc(c->msg, len);
        if (!p)
            return fail_with(c, "%s", "out of memory");
        c->msg = p;
        c->msg_cap = len;
    }
    if (len)
        memcpy(c->msg, data, len);
    c->pending = (struct ws_msg){ .opcode = opcode, .data = c->msg, .len = len };
    c->have_msg = true;
    return 0;
}

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
    keep_message(ctx, opcode, data, len);
    return 1;   /* one message per recv: stop here */
}

static void send_control(struct ws_client *c, uint8_t opcode, uint16_t code,
                         const uint8_t *data, size_t len)
{
    uint8_t f[WS_CONTROL_FRAME_MAX], mask[4];
    if (c->close_sent || ws_client_random(mask, sizeof mask) < 0)
        return;
    size_t n = opcode == WS_OP_CLOSE ? ws_build_close(f, code, NULL, 0, mask)
                                     : ws_build_control(f, opcode, data, len, mask);
    c->close_sent = opcode == WS_OP_CLOSE;
    send_all(c, f, n);
}

static int on_ping(void *ctx, uint8_t *data, size_t len)
{
    send_control(ctx, WS_OP_PONG, 0, data, len);
    return 0;
}

static int on_pong(void *ctx, uint8_t *data, size_t len)
{
    keep_message(ctx, WS_OP_PONG, data, len);
    return 1;
}

/* RFC 6455 §5.5.1: answer a close with a close carrying the same code. */
static void on_close(void *ctx, uint16_t code, const uint8_t *why, size_t len)
{
    struct ws_client *c = ctx;
    if (keep_message(c, WS_OP_CLOSE, why, len) == 0)
        c->pending.close_code = code;
    send_control(c, WS_OP_CLOSE, code, NULL, 0);
    c->closed = c->peer_closed = true;
}

static const struct ws_reader_ops reader_ops = {
    .on_message = on_message, .on_ping = on_ping, .on_pong = on_pong, .on_close = on_close,
};

/* Waits for readability: 1 ready, 0 timed out, WS_RECV_INTERRUPTED, -1. */
static int wait_readable(struct ws_client *c, int timeout_ms)
{
    if (ws_stream_pending(&c->s))
        return 1;   /* decrypted already: poll would not see it */
    struct pollfd p = { .fd = c->s.fd, .events = POLLIN };
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };
    int n = ppoll(&p, 1, timeout_ms < 0 ? NULL : &ts, c->use_mask ? &c->mask : NULL);
    if (n < 0 && errno == EINTR)
        return WS_RECV_INTERRUPTED;
    if (n < 0)
        return fail_with(c, "poll: %s", strerror(errno));
    return n > 0;
}

/* Reads what the socket has: 1 got bytes, -1 error or end of stream. */
static int fill(struct ws_client *c)
{
    if (c->in_len == IN_BUF_SIZE)
        return fail_with(c, "%s", "input buffer full");
    ssize_t n;
    do
        n = ws_stream_recv(&c->s, c->in + c->in_len, IN_BUF_SIZE - c->in_len);
    while (n < 0 && (errno == EINTR || errno == EAGAIN));
    if (n == 0)
        return fail_with(c, "%s", "the server closed the connection without a close frame");
    if (n < 0)
        return fail_with(c, "read: %s", ws_stream_error(&c->s, errno));
    c->in_len += (size_t)n;
    return 1;
}

/* Feeds buffered bytes to the reader: 1 a message is pending, 0 need more. */
static int feed(struct ws_client *c)
{
    ssize_t used = ws_reader_feed(&c->rd, c->in, c->in_len);
    if (used < 0) {
        uint8_t f[WS_CONTROL_FRAME_MAX], mask[4];
        if (!c->close_sent && ws_client_random(mask, sizeof mask) == 0)
            send_all(c, f, ws_reader_fail_frame(&c->rd, f, mask));
        c->closed = c->close_sent = true;
        return fail_with(c, "protocol error from the server: %s", ws_reader_fail_reason(&c->rd));
    }
    memmove(c->in, c->in + used, c->in_len - (size_t)used);
    c->in_len -= (size_t)used;
    return c->have_msg;
}

int ws_client_recv(struct ws_client *c, struct ws_msg *m, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    c->have_msg = false;
    for (;;) {
        if (c->in_len) {
            int rc = feed(c);
            if (rc != 0) {
                if (rc > 0)
                    *m = c->pending;
                return rc;
            }
        }
        if (c->closed)
            return fail_with(c, "%s", "the connection is closed");
        int ready = wait_readable(c, left_ms(deadline));
        if (ready <= 0)
            return ready == 0 ? WS_RECV_TIMEOUT : ready;
        if (fill(c) < 0)
            return -1;
    }
}

static int handshake(struct ws_client *c, const struct ws_url *u, const char *target,
                     const char *extra, int64_t deadline)
{
    struct ws_client_hs hs;
    if (ws_client_hs_init(&hs, u, target, extra, c->why, sizeof c->why) < 0 ||
        send_all(c, hs.req, hs.len) < 0)
        return -1;
    for (;;) {
        int ready = wait_readable(c, left_ms(deadline));
        if (ready == 0)
            return fail_with(c, "%.200s: no answer to the WebSocket upgrade", u->authority);
        if (ready < 0 || fill(c) < 0)
            return -1;
        int head = ws_client_hs_check(&hs.key, (const char *)c->in, c->in_len, c->why, sizeof c->why);
        if (head < 0)
            return -1;
        if (head > 0) {
            memmove(c->in, c->in + head, c->in_len - (size_t)head);
            c->in_len -= (size_t)head;
            return 0;
        }
    }
}

struct ws_client *ws_client_open(const struct ws_url *u, const char *target,
                                 const char *extra, struct tls_client_ctx *tls,
                                 int timeout_ms, char *why, size_t whylen)
{
    struct ws_client *c = calloc(1, sizeof *c);
    if (!c) {
        reason(why, whylen, "%s", "out of memory");
        return NULL;
    }
    c->s.fd = -1;
    c->in = malloc(IN_BUF_SIZE);
    ws_reader_init(&c->rd, WS_ROLE_CLIENT, UINT64_MAX, &reader_ops, c);
    int64_t deadline = now_ms() + timeout_ms;
    int rc = -1;
    if (!c->in)
        snprintf(c->why, sizeof c->why, "out of memory");
    else
        rc = ws_stream_open(&c->s, u, tls, timeout_ms, c->why, sizeof c->why);
    if (rc < 0 || handshake(c, u, target, extra, deadline) < 0) {
        reason(why, whylen, "%s", c->why);
        c->closed = true;
        ws_client_close(c);
        return NULL;
    }
    return c;
}

void ws_client_set_sigmask(struct ws_client *c, const sigset_t *mask)
{
    c->use_mask = mask != NULL;
    if (mask)
        c->mask = *mask;
}

int ws_client_send(struct ws_client *c, uint8_t opcode, const void *data, size_t len)
{
    return send_frame(c, opcode, data, len);
}

int ws_client_ping(struct ws_client *c, const void *data, size_t len)
{
    if (len > WS_MAX_CONTROL_PAYLOAD)
        return fail_with(c, "%s", "ping payload over 125 bytes");
    return send_frame(c, WS_OP_PING, data, len);
}

const char *ws_client_error(const struct ws_client *c)
{
    return c->why;
}

/* Sends a close and waits briefly for the server's: closing the socket
 * before its close frame arrives would answer that frame with a reset. */
static void say_goodbye(struct ws_client *c)
{
    send_control(c, WS_OP_CLOSE, WS_CLOSE_NORMAL, NULL, 0);
    c->closed = true;
    c->use_mask = false;
    int64_t deadline = now_ms() + GOODBYE_MS;
    while (!c->peer_closed && c->close_sent) {
        size_t before = c->in_len;
        if (before && feed(c) < 0)
            return;
        if (c->peer_closed || c->in_len < before)
            continue;   /* consumed something: feed the rest first */
        if (wait_readable(c, left_ms(deadline)) <= 0 || fill(c) < 0)
            return;
    }
}

void ws_client_close(struct ws_client *c)
{
    if (!c)
        return;
    if (c->s.fd >= 0 && !c->closed)
        say_goodbye(c);
    ws_stream_close(&c->s);
    ws_reader_free(&c->rd);
    free(c->in);
    free(c->out);
    free(c->msg);
    free(c);
}
