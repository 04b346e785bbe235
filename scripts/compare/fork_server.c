/* fork_server.c — the oldest answer to "WebSocket jobs", for
 * scripts/compare.sh to measure wsjobd against: one process per connection,
 * forked at accept(), doing blocking reads and writes and running each job
 * inline.  It runs wsjobd's own code for everything but the event loop and
 * the worker pool: the HTTP parser, the upgrade, the frame reader, and the
 * handlers of handler_echo.c and handler_sha256.c through a wsjob_ctx of its
 * own (this file defines the wsjob_* API of include/wsjob.h, so job_ctx.c is
 * not linked).  So what differs from wsjobd is the process model alone.
 *
 *   /run/echo  raw ordered mode (SPEC §6) for echo
 *   /jobs      the JSON job protocol (SPEC §5), op "submit" only, job types
 *              echo, sha256 and modsum, answered in order of arrival
 *
 *   fork_server [PORT]      prints "port P" once it listens
 *
 * Built by scripts/compare.sh against $BUILD/libcore.a.  A child dies with
 * its parent (PR_SET_PDEATHSIG), so stopping the parent stops them all. */
#include <errno.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handlers/handlers_builtin.h"
#include "wire/http_request.h"
#include "wire/utf8.h"
#include "wire/ws_frame.h"
#include "wire/ws_handshake.h"

#define MAX_MESSAGE  (1u << 20)     /* as wsjobd's default --max-message */
#define HEAD_MAX     8192           /* as wsjobd: a longer head is refused */
#define IN_CAP       (64 * 1024)    /* at least WS_READER_WHOLE_FRAME */

/* ---- the handler API, for one job at a time -------------------------- */

struct wsjob_ctx {
    const uint8_t *in;        /* the job's input, owned by the caller */
    size_t         in_len;
    uint8_t       *out;       /* the output; grown, kept across jobs */
    size_t         out_len, out_cap;
    int            failed;    /* an enum wsjob_error, 0 when none */
    char           message[256];
};

static const char *const error_names[] = {
    [WSJOB_E_BAD_REQUEST] = "bad_request", [WSJOB_E_HANDLER_ERROR] = "handler_error",
    [WSJOB_E_FORBIDDEN] = "forbidden", [WSJOB_E_TOO_LARGE] = "too_large",
    [WSJOB_E_CANCELLED] = "cancelled",
};

const void *wsjob_input(wsjob_ctx *ctx, size_t *len)
{
    *len = ctx->in_len;
    return ctx->in;
}

int wsjob_output(wsjob_ctx *ctx, const void *data, size_t len)
{
    if (len > ctx->out_cap) {
        uint8_t *p = realloc(ctx->out, len);
        if (!p)
            return WSJOB_ERR;
        ctx->out = p;
        ctx->out_cap = len;
    }
    memcpy(ctx->out, data, len);
    ctx->out_len = len;
    return WSJOB_OK;
}

int wsjob_emit(wsjob_ctx *ctx, const void *data, size_t len)
{
    (void)data;
    (void)len;
    return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "streaming is not supported here");
}

void wsjob_progress(wsjob_ctx *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    (void)done;
    (void)total;
}

/* Nobody cancels, and the bench's jobs are far inside any deadline. */
int wsjob_cancelled(wsjob_ctx *ctx) { (void)ctx; return 0; }
int64_t wsjob_remaining_ms(wsjob_ctx *ctx) { (void)ctx; return 30000; }
size_t wsjob_max_output(wsjob_ctx *ctx) { (void)ctx; return MAX_MESSAGE; }

int wsjob_sleep(wsjob_ctx *ctx, int64_t ms)
{
    (void)ctx;
    usleep((useconds_t)ms * 1000);
    return 0;
}

const char *wsjob_option(wsjob_ctx *ctx, const char *name, unsigned index)
{
    (void)ctx;
    (void)name;
    (void)index;
    return NULL;
}

int wsjob_fail(wsjob_ctx *ctx, enum wsjob_error code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->message, sizeof ctx->message, fmt, ap);
    va_end(ap);
    ctx->failed = code;
    return WSJOB_ERR;
}

/* ---- one connection ---------------------------------------------------- */

enum route { ROUTE_ECHO, ROUTE_JOBS };

struct conn {
    int             fd;
    enum route      route;
    struct ws_reader reader;
    struct wsjob_ctx job;
    uint8_t        *out;       /* frames to write after this read's messages */
    size_t          out_len, out_cap;
    int             closing;   /* a close frame was queued: flush and exit */
};

static int out_reserve(struct conn *c, size_t n)
{
    if (c->out_len + n <= c->out_cap)
        return 0;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + n)
        cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p)
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static int queue_frame(struct conn *c, uint8_t opcode, const void *data, size_t len)
{
    if (out_reserve(c, WS_MAX_HEADER + len) < 0)
        return -1;
    c->out_len += ws_frame_header_write(c->out + c->out_len, true, opcode, len, NULL);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static void queue_close(struct conn *c, uint16_t code, const char *reason)
{
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    size_t n = ws_build_close(frame, code, reason, reason ? strlen(reason) : 0, NULL);
    if (out_reserve(c, n) == 0) {
        memcpy(c->out + c->out_len, frame, n);
        c->out_len += n;
    }
    c->closing = 1;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int run_handler(struct conn *c, wsjob_fn fn, const void *in, size_t len)
{
    c->job.in = in;
    c->job.in_len = len;
    c->job.out_len = 0;
    c->job.failed = 0;
    int rc = fn(&c->job);
    if (rc != WSJOB_OK && !c->job.failed)
        wsjob_fail(&c->job, WSJOB_E_HANDLER_ERROR, "handler failed");
    return rc;
}

static wsjob_fn handler_of(const char *type)
{
    if (strcmp(type, "echo") == 0)
        return handler_echo;
    if (strcmp(type, "sha256") == 0)
        return handler_sha256;
    if (strcmp(type, "modsum") == 0)
        return handler_modsum;
    return NULL;
}

static int queue_json(struct conn *c, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    int rc = s ? queue_frame(c, WS_OP_TEXT, s, strlen(s)) : -1;
    free(s);
    json_decref(o);
    return rc;
}

static int queue_error(struct conn *c, const char *id, const char *code, const char *msg)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "event", "error", "code", code, "message", msg);
    if (o && id)
        json_object_set_new(o, "id", json_string(id));
    return queue_json(c, o);
}

/* {"id":..,"event":"done","output":..} for the job just run. */
static int queue_done(struct conn *c, const char *id)
{
    const struct wsjob_ctx *j = &c->job;
    json_t *o = json_pack("{s:s,s:s}", "id", id, "event", "done");
    if (!o)
        return -1;
    if (utf8_valid(j->out, j->out_len)) {
        json_object_set_new(o, "output", json_stringn((const char *)j->out, j->out_len));
    } else {
        size_t n = 0;
        mbedtls_base64_encode(NULL, 0, &n, j->out, j->out_len);
        char *b64 = malloc(n);
        if (b64 && mbedtls_base64_encode((unsigned char *)b64, n, &n, j->out, j->out_len) == 0)
            json_object_set_new(o, "output_b64", json_stringn(b64, n));
        free(b64);
    }
    return queue_json(c, o);
}

/* One /jobs message: a submit, run at once; its events are queued. */
static int job_message(struct conn *c, const uint8_t *data, size_t len)
{
    json_error_t err;
    json_t *m = json_loadb((const char *)data, len, 0, &err);
    if (!json_is_object(m)) {
        json_decref(m);
        return queue_error(c, NULL, "bad_request", "not a JSON object");
    }
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *op = json_string_value(json_object_get(m, "op"));
    const char *type = json_string_value(json_object_get(m, "type"));
    json_t *input = json_object_get(m, "input");
    int rc;
    if (id && (!*id || strlen(id) > 64))
        id = NULL;
    if (!id || !op || strcmp(op, "submit") != 0) {
        rc = queue_error(c, id, "bad_request", "only op submit with an id");
    } else if (!type || !handler_of(type)) {
        rc = queue_error(c, id, "unknown_type", "no such job type");
    } else {
        /* A string input is its UTF-8 bytes, any other value its compact JSON. */
        char *text = json_is_string(input) || !input ? NULL
                   : json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *in = json_is_string(input) ? json_string_value(input) : text ? text : "";
        size_t in_len = json_is_string(input) ? json_string_length(input) : strlen(in);
        if (run_handler(c, handler_of(type), in, in_len) == WSJOB_OK)
            rc = queue_done(c, id);
        else
            rc = queue_error(c, id, error_names[c->job.failed], c->job.message);
        free(text);
    }
    json_decref(m);
    return rc;
}

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
    struct conn *c = ctx;
    if (c->route == ROUTE_JOBS) {
        if (job_message(c, data, len) < 0)
            queue_close(c, WS_CLOSE_INTERNAL, "out of memory");
        return 0;
    }
    /* Raw ordered mode: jobs run one after another, so replies are in order. */
    if (run_handler(c, handler_echo, data, len) != WSJOB_OK) {
        char reason[120];
        snprintf(reason, sizeof reason, "%s: %.100s", error_names[c->job.failed],
                 c->job.message);
        queue_close(c, WS_CLOSE_INTERNAL, reason);
        return 1;
    }
    uint8_t op = opcode == WS_OP_TEXT && !utf8_valid(c->job.out, c->job.out_len)
                     ? WS_OP_BINARY : opcode;
    if (queue_frame(c, op, c->job.out, c->job.out_len) < 0)
        queue_close(c, WS_CLOSE_INTERNAL, "out of memory");
    return 0;
}

static int on_ping(void *ctx, uint8_t *data, size_t len)
{
    return queue_frame(ctx, WS_OP_PONG, data, len) < 0;
}

static void on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
    (void)reason;
    (void)len;
    queue_close(ctx, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : code, NULL);
}

static const struct ws_reader_ops reader_ops = {
    .on_message = on_message, .on_ping = on_ping, .on_close = on_close,
};

static void refuse(int fd, const char *status)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf, "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n", status);
    write_all(fd, buf, (size_t)n);
}

/* Reads and answers the upgrade.  Leaves bytes that followed the head at
 * the start of in; returns their count, or -1 when the connection is done. */
static ssize_t upgrade(struct conn *c, uint8_t *in)
{
    char head[HEAD_MAX];
    size_t len = 0;
    struct http_request req;
    int hl;
    for (;;) {
        ssize_t n = read(c->fd, head + len, sizeof head - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        hl = http_request_parse(head, len, sizeof head, &req);
        if (hl > 0)
            break;
        if (hl != HTTP_PARSE_INCOMPLETE) {
            refuse(c->fd, hl == HTTP_PARSE_TOO_LARGE ? "431 Request Header Fields Too Large"
                                                      : "400 Bad Request");
            return -1;
        }
    }
    struct http_str path, query;
    http_target_split(req.target, &path, &query);
    if (path.len == 9 && memcmp(path.p, "/run/echo", 9) == 0)
        c->route = ROUTE_ECHO;
    else if (path.len == 5 && memcmp(path.p, "/jobs", 5) == 0)
        c->route = ROUTE_JOBS;
    else {
        refuse(c->fd, "404 Not Found");
        return -1;
    }
    struct ws_upgrade up;
    char resp[512];
    enum ws_handshake_status st = ws_handshake_check(&req, NULL, &up);
    int rn = st == WS_HS_OK ? ws_handshake_response(&up, resp, sizeof resp)
                            : ws_handshake_error_response(st, resp, sizeof resp);
    if (rn < 0 || write_all(c->fd, resp, (size_t)rn) < 0 || st != WS_HS_OK)
        return -1;
    memcpy(in, head + hl, len - (size_t)hl);
    return (ssize_t)(len - (size_t)hl);
}

static void serve(int fd)
{
    static uint8_t in[IN_CAP];
    struct conn c = { .fd = fd };
    ssize_t have = upgrade(&c, in);
    if (have < 0)
        return;
    size_t len = (size_t)have;
    ws_reader_init(&c.reader, WS_ROLE_SERVER, MAX_MESSAGE, &reader_ops, &c);
    for (;;) {
        /* Every message in this read is answered before the next read,
         * and all the answers go out in one write. */
        ssize_t used = ws_reader_feed(&c.reader, in, len);
        if (used < 0) {
            uint8_t frame[WS_CONTROL_FRAME_MAX];
            size_t n = ws_reader_fail_frame(&c.reader, frame, NULL);
            if (write_all(fd, c.out, c.out_len) == 0)
                write_all(fd, frame, n);
            return;
        }
        memmove(in, in + used, len - (size_t)used);
        len -= (size_t)used;
        if (c.out_len && write_all(fd, c.out, c.out_len) < 0)
            return;
        c.out_len = 0;
        if (c.closing)
            return;
        if (len && used > 0)
            continue;   /* the reader stopped early: give it the rest */
        ssize_t n = read(fd, in + len, sizeof in - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        len += (size_t)n;
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0, one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
        perror("fork_server: listen");
        return 1;
    }
    signal(SIGCHLD, SIG_IGN);   /* children are reaped by the kernel */
    signal(SIGPIPE, SIG_IGN);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    pid_t parent = getpid();
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                usleep(10000);
                continue;
            }
            perror("fork_server: accept");
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(0);
            close(lfd);
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            serve(fd);
            _exit(0);
        }
        if (pid < 0)
            perror("fork_server: fork");
        close(fd);
    }
}
