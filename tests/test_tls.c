/* test_tls.c — TLS both ways: loading certificates (and the exact reason a
 * bad one is refused), then the daemon's bufferevent against the CLI's
 * client over a socketpair — handshake, data both ways, verification,
 * non-blocking use, close_notify after a final answer (long or short),
 * garbage, a stalled handshake, backpressure, reload.
 *
 * The server side runs on a libevent loop in the test's thread; the client
 * runs blocking in a second thread, as the CLI would. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "client/tls_client.h"
#include "front/front.h"
#include "front/tls_conn.h"

static char dir[64];   /* the certificates, made once for the whole run */

static const char *path(const char *name)
{
    static char buf[4][128];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void make_certs(void)
{
    strcpy(dir, "/tmp/test_tls.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char src[256], cmd[512];
    snprintf(src, sizeof src, "%s", __FILE__);
    snprintf(cmd, sizeof cmd, "sh %s/certs/make_certs.sh %s", dirname(src), dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void remove_certs(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *p, const char *text)
{
    FILE *fp = fopen(p, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

/* ---- loading ------------------------------------------------------------- */

START_TEST(good_pairs_load)
{
    char err[512] = "";
    ck_assert_int_eq(tls_server_load(path("server.pem"), path("server.key"), err, sizeof err), 0);
    ck_assert_int_eq(tls_server_load(path("rsa.pem"), path("rsa.key"), err, sizeof err), 0);
    ck_assert_int_eq(tls_server_load(path("self.pem"), path("self.key"), err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    tls_server_free();
}
END_TEST

START_TEST(missing_file_says_which_and_why)
{
    char err[512], want[512];
    ck_assert_int_eq(tls_server_load(path("nope.pem"), path("server.key"), err, sizeof err), -1);
    snprintf(want, sizeof want, "cannot read %s: No such file or directory", path("nope.pem"));
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(tls_server_load(path("server.pem"), path("nope.key"), err, sizeof err), -1);
    snprintf(want, sizeof want, "cannot read %s: No such file or directory", path("nope.key"));
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(garbage_cert_is_not_a_certificate)
{
    char err[512], want[512];
    write_file(path("junk.pem"), "this is not a certificate\n");
    ck_assert_int_eq(tls_server_load(path("junk.pem"), path("server.key"), err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: no PEM certificate in the file", path("junk.pem"));
    ck_assert_str_eq(err, want);

    /* A PEM block whose body is not a certificate: mbedTLS's own words. */
    write_file(path("bad.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    ck_assert_int_eq(tls_server_load(path("bad.pem"), path("server.key"), err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: X509 - ", path("bad.pem"));
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
}
END_TEST

START_TEST(garbage_key_is_refused)
{
    char err[512], want[512];
    write_file(path("junk.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    ck_assert_int_eq(tls_server_load(path("server.pem"), path("junk.key"), err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: PK - ", path("junk.key"));
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "(-0x"));
}
END_TEST

START_TEST(key_must_match_the_certificate)
{
    char err[512], want[512];
    ck_assert_int_eq(tls_server_load(path("server.pem"), path("other.key"), err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: the key does not match the certificate in %s",
             path("other.key"), path("server.pem"));
    ck_assert_str_eq(err, want);
    /* The key of the chain's second certificate (the CA) is no match either. */
    ck_assert_int_eq(tls_server_load(path("server.pem"), path("ca.key"), err, sizeof err), -1);
}
END_TEST

/* ---- a server on a loop, a client in a thread --------------------------------- */

struct peer;

struct srv {                        /* one server-side connection */
    struct peer *p;
    struct bufferevent *bev;        /* NULL once freed */
    short last_event;               /* what its event callback saw */
    int writes;                     /* write callbacks (each with the output empty) */
    int in_read;                    /* inside srv_read: no write callback may come now */
};

struct peer {
    struct event_base *base;
    struct front f;
    struct event *tick;
    struct srv s[2];
    int client_fd[2];
    int server_fd[2];               /* owned by the server bufferevents */
    const char *mode;               /* server behaviour: "echo", "bye", "flood" */
    size_t pending_seen;            /* "flood": plaintext still queued while the client slept */
    void (*client)(struct peer *);  /* runs in the client thread */
    void (*on_tick)(struct peer *); /* runs on the loop every 5 ms */
    const char *cafile, *host, *expect;   /* verification cases */
    atomic_int stage;               /* client <-> loop hand-over */
    atomic_int done;
};

#define FLOOD (8u << 20)
#define LAST_WORDS ((4u << 20) + 40000)

static void add_bytes(struct evbuffer *out, char c, size_t total)
{
    static char block[1 << 16];
    memset(block, c, sizeof block);
    for (size_t n = 0; n < total; n += sizeof block)
        evbuffer_add(out, block, total - n < sizeof block ? total - n : sizeof block);
}

static void srv_read(struct bufferevent *bev, void *arg)
{
    struct srv *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    s->in_read = 1;
    if (strcmp(s->p->mode, "echo") == 0) {
        evbuffer_add_buffer(out, in);
    } else if (strcmp(s->p->mode, "bye") == 0) {
        evbuffer_add(out, "bye", 3);
        s->p->mode = "closing";
    } else if (strcmp(s->p->mode, "last words") == 0) {
        add_bytes(out, 'w', LAST_WORDS);
        s->p->mode = "closing";
    } else if (strcmp(s->p->mode, "flood") == 0) {
        add_bytes(out, 'f', FLOOD);
        s->p->mode = "flooding";
    }
    evbuffer_drain(in, evbuffer_get_length(in));
    s->in_read = 0;
}

static void srv_write(struct bufferevent *bev, void *arg)
{
    struct srv *s = arg;
    ck_assert_uint_eq(evbuffer_get_length(bufferevent_get_output(bev)), 0);
    ck_assert_msg(!s->in_read, "write callback from inside the reader's evbuffer_add");
    s->writes++;
    if (strcmp(s->p->mode, "closing") == 0) {   /* as conn.c does after a final response */
        bufferevent_free(bev);
        s->bev = NULL;
    }
}

static void srv_event(struct bufferevent *bev, short what, void *arg)
{
    struct srv *s = arg;
    s->last_event = what;
    bufferevent_free(bev);
    s->bev = NULL;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    (void)fd;
    (void)what;
    if (p->on_tick)
        p->on_tick(p);
    if (atomic_load(&p->done))
        event_base_loopexit(p->base, NULL);
}

static void serve(struct peer *p, int i, int fd)
{
    struct srv *s = &p->s[i];
    s->p = p;
    s->bev = tls_conn_new(&p->f, fd);
    ck_assert_ptr_nonnull(s->bev);
    bufferevent_setcb(s->bev, srv_read, srv_write, srv_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* Connection i's server end goes on the loop now (or later: serve_later). */
static int pair(struct peer *p, int i)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    p->client_fd[i] = sv[1];
    p->server_fd[i] = sv[0];
    return sv[0];
}

static void peer_open(struct peer *p, const char *mode, void (*client)(struct peer *))
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->client = client;
    p->client_fd[0] = p->client_fd[1] = -1;
    p->base = event_base_new();
    ck_assert_ptr_nonnull(p->base);
    p->f.base = p->base;
    serve(p, 0, pair(p, 0));
    p->tick = event_new(p->base, -1, EV_PERSIST, tick_cb, p);
    struct timeval tv = { 0, 5000 };
    event_add(p->tick, &tv);
}

static void *client_thread(void *arg)
{
    struct peer *p = arg;
    p->client(p);
    atomic_store(&p->done, 1);
    return NULL;
}

/* Runs the loop until the client thread is done (or 20 s). */
static void peer_run(struct peer *p)
{
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, client_thread, p), 0);
    struct timeval limit = { 20, 0 };
    event_base_loopexit(p->base, &limit);
    event_base_dispatch(p->base);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(atomic_load(&p->done), "client did not finish in time");
}

static void peer_close(struct peer *p)
{
    for (int i = 0; i < 2; i++) {
        if (p->s[i].bev)
            bufferevent_free(p->s[i].bev);
        if (p->client_fd[i] >= 0)
            close(p->client_fd[i]);
    }
    event_free(p->tick);
    tls_server_free();
    event_base_free(p->base);
}

static void wait_stage(struct peer *p, int stage)
{
    while (atomic_load(&p->stage) < stage)
        usleep(1000);
}

static struct tls_client_ctx *trust(const char *cafile)
{
    char err[512];
    struct tls_client_ctx *ctx = tls_client_ctx_new(cafile ? path(cafile) : NULL, !cafile, err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    return ctx;
}

static struct tls_client *dial(struct tls_client_ctx *ctx, int fd, const char *host)
{
    char err[512];
    struct tls_client *c = tls_client_connect(ctx, fd, host, 5000, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static void load(const char *cert, const char *key)
{
    char err[512];
    ck_assert_msg(tls_server_load(path(cert), path(key), err, sizeof err) == 0, "%s", err);
}

static void send_all(struct tls_client *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = tls_client_send(c, p, len);
        ck_assert_msg(n > 0, "send: %s", tls_client_error(c));
        p += n;
        len -= (size_t)n;
    }
}

static void recv_all(struct tls_client *c, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = tls_client_recv(c, p, len);
        ck_assert_msg(n > 0, "recv %zd: %s", n, tls_client_error(c));
        p += n;
        len -= (size_t)n;
    }
}

static void echo_once(struct tls_client *c, const char *text)
{
    char back[64];
    size_t n = strlen(text);
    send_all(c, text, n);
    recv_all(c, back, n);
    ck_assert(memcmp(back, text, n) == 0);
}

/* The raw socket reads EOF: the server closed it. */
static void expect_closed(int fd)
{
    char junk[4096];
    ssize_t n;
    while ((n = recv(fd, junk, sizeof junk, 0)) > 0)
        ;
    ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
}

/* ---- handshake and echo ------------------------------------------------------- */

#define BIG (1u << 20)

static void echo_client(struct peer *p)
{
    struct tls_client_ctx *ctx = trust("ca.pem");
    struct tls_client *c = dial(ctx, p->client_fd[0], "localhost");
    echo_once(c, "hello");
    /* A megabyte: many records each way, more than the wire holds at once. */
    unsigned char *out = malloc(BIG), *in = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        out[i] = (unsigned char)(i * 7 + (i >> 10));
    send_all(c, out, BIG);
    recv_all(c, in, BIG);
    ck_assert(memcmp(in, out, BIG) == 0);
    ck_assert_uint_eq(tls_client_pending(c), 0);
    free(out);
    free(in);
    tls_client_free(c);
    tls_client_ctx_free(ctx);
}

START_TEST(handshake_and_echo_both_ways)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "echo", echo_client);
    peer_run(&p);
    ck_assert_int_gt(p.s[0].writes, 0);
    peer_close(&p);
}
END_TEST

START_TEST(rsa_certificate_serves_too)
{
    struct peer p;
    load("rsa.pem", "rsa.key");
    peer_open(&p, "echo", echo_client);
    peer_run(&p);
    peer_close(&p);
}
END_TEST

START_TEST(failed_load_keeps_the_pair_in_use)
{
    struct peer p;
    char err[512];
    load("server.pem", "server.key");
    ck_assert_int_eq(tls_server_load(path("nope.pem"), path("server.key"), err, sizeof err), -1);
    peer_open(&p, "echo", echo_client);
    peer_run(&p);
    peer_close(&p);
}
END_TEST

/* ---- verification: the client's side -------------------------------------------- */

static void verify_client(struct peer *p)
{
    struct tls_client_ctx *ctx = trust(p->cafile);
    char err[512] = "";
    struct tls_client *c = tls_client_connect(ctx, p->client_fd[0], p->host, 5000, err, sizeof err);
    if (!p->expect) {
        ck_assert_msg(c != NULL, "%s: %s", p->host, err);
        echo_once(c, "verified");
    } else {
        ck_assert_msg(c == NULL, "%s: accepted", p->host);
        ck_assert_msg(strstr(err, p->expect) != NULL, "%s: %s", p->host, err);
        expect_closed(p->client_fd[0]);
    }
    tls_client_free(c);
    tls_client_ctx_free(ctx);
}

static void verdict(const char *cafile, const char *host, const char *expect)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "echo", verify_client);
    p.cafile = cafile;
    p.host = host;
    p.expect = expect;
    peer_run(&p);
    if (expect)   /* the client's fatal alert ended the server's side too */
        ck_assert_int_ne(p.s[0].last_event & BEV_EVENT_ERROR, 0);
    peer_close(&p);
}

START_TEST(names_and_addresses_are_verified)
{
    static const char mismatch[] = "certificate verification failed: The certificate Common Name (CN) does not match";
    verdict("ca.pem", "localhost", NULL);
    verdict("ca.pem", "127.0.0.1", NULL);
    verdict("ca.pem", "[::1]", NULL);
    verdict("ca.pem", "example.com", mismatch);
    verdict("ca.pem", "10.1.2.3", mismatch);
    verdict("ca.pem", "::2", mismatch);
}
END_TEST

START_TEST(untrusted_signer_is_refused)
{
    verdict("self.pem", "localhost",
            "certificate verification failed: The certificate is not correctly signed by the trusted CA");
}
END_TEST

START_TEST(insecure_accepts_any_name)
{
    verdict(NULL, "example.com", NULL);
}
END_TEST

START_TEST(missing_cafile_is_named)
{
    char err[512], want[512];
    ck_assert_ptr_null(tls_client_ctx_new(path("nope.pem"), 0, err, sizeof err));
    snprintf(want, sizeof want, "cannot read %s: No such file or directory", path("nope.pem"));
    ck_assert_str_eq(err, want);
}
END_TEST

/* ---- the client on a non-blocking socket ------------------------------------------ */

static void nonblocking_client(struct peer *p)
{
    int fd = p->client_fd[0];
    ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    struct tls_client_ctx *ctx = trust("ca.pem");
    struct tls_client *c = dial(ctx, fd, "localhost");
    char buf[100];
    errno = 0;
    ck_assert_int_eq(tls_client_recv(c, buf, sizeof buf), -1);   /* the server said nothing yet */
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(tls_client_send(c, "0123456789abcdefghij", 20), 20);

    /* Wait for the echo, then read it in pieces: after the first piece the
     * socket is empty and the rest is inside TLS, where only
     * tls_client_pending sees it. */
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(tls_client_recv(c, buf, 5), 5);
    ck_assert_uint_eq(tls_client_pending(c), 15);
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    ck_assert_int_eq(tls_client_recv(c, buf + 5, sizeof buf - 5), 15);
    ck_assert(memcmp(buf, "0123456789abcdefghij", 20) == 0);
    ck_assert_uint_eq(tls_client_pending(c), 0);
    tls_client_free(c);
    tls_client_ctx_free(ctx);
}

START_TEST(nonblocking_client_says_eagain_and_pending)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "echo", nonblocking_client);
    peer_run(&p);
    peer_close(&p);
}
END_TEST

START_TEST(client_handshake_times_out)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);   /* nobody answers sv[0] */
    ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    struct tls_client_ctx *ctx = trust("ca.pem");
    char err[512];
    ck_assert_ptr_null(tls_client_connect(ctx, sv[1], "localhost", 200, err, sizeof err));
    ck_assert_str_eq(err, "TLS handshake: Connection timed out");
    tls_client_ctx_free(ctx);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- the end of a connection ------------------------------------------------------ */

/* The server answers and frees its bufferevent from the write callback, as
 * conn.c does after "Connection: close": the answer still arrives, then
 * close_notify, then the socket closes. */
static void bye_client(struct peer *p)
{
    struct tls_client_ctx *ctx = trust("ca.pem");
    struct tls_client *c = dial(ctx, p->client_fd[0], "localhost");
    send_all(c, "x", 1);
    char buf[8];
    recv_all(c, buf, 3);
    ck_assert(memcmp(buf, "bye", 3) == 0);
    ck_assert_int_eq(tls_client_recv(c, buf, sizeof buf), 0);   /* close_notify */
    expect_closed(p->client_fd[0]);
    tls_client_free(c);
    tls_client_ctx_free(ctx);
}

START_TEST(final_answer_then_close_notify_then_close)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "bye", bye_client);
    peer_run(&p);
    ck_assert_ptr_null(p.s[0].bev);
    peer_close(&p);
}
END_TEST

/* A long final answer through small socket buffers: when the server frees
 * its bufferevent, tens of KiB are still encrypted on the wire and the
 * socket cannot take them at once, so the wire lingers until they are out;
 * the client still gets every byte, then close_notify. */
static void last_words_client(struct peer *p)
{
    int small = 4096;
    ck_assert_int_eq(setsockopt(p->client_fd[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    struct tls_client_ctx *ctx = trust("ca.pem");
    struct tls_client *c = dial(ctx, p->client_fd[0], "localhost");
    send_all(c, "x", 1);
    static char buf[1 << 16];
    size_t got = 0;
    ssize_t n;
    while ((n = tls_client_recv(c, buf, sizeof buf)) > 0) {
        got += (size_t)n;
        if (got < LAST_WORDS / 2)
            usleep(100);   /* a slow reader: the wire fills */
    }
    ck_assert_msg(n == 0, "%s", tls_client_error(c));
    ck_assert_uint_eq(got, LAST_WORDS);
    expect_closed(p->client_fd[0]);
    tls_client_free(c);
    tls_client_ctx_free(ctx);
}

START_TEST(long_final_answer_is_flushed_before_close)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "last words", last_words_client);
    int small = 4096;
    ck_assert_int_eq(setsockopt(p.server_fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    peer_run(&p);
    ck_assert_ptr_null(p.s[0].bev);
    peer_close(&p);
}
END_TEST

static void garbage_client(struct peer *p)
{
    static const char req[] = "GET /stats HTTP/1.1\r\nHost: localhost\r\n\r\n";
    ck_assert_int_eq(send(p->client_fd[0], req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
    expect_closed(p->client_fd[0]);
}

START_TEST(garbage_fails_the_connection)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "echo", garbage_client);
    peer_run(&p);
    ck_assert_int_ne(p.s[0].last_event & BEV_EVENT_ERROR, 0);
    ck_assert_ptr_null(p.s[0].bev);
    peer_close(&p);
}
END_TEST

/* Half a ClientHello, then the owner's timer gives up (conn.c's handshake
 * timeout): freeing closes the socket at once, with nothing sent. */
static void stall_client(struct peer *p)
{
    static const unsigned char half[] = { 0x16, 0x03, 0x01, 0x00 };
    ck_assert_int_eq(send(p->client_fd[0], half, sizeof half, 0), (ssize_t)sizeof half);
    atomic_store(&p->stage, 1);
    char buf[64];
    ck_assert_int_eq(recv(p->client_fd[0], buf, sizeof buf, 0), 0);
}

static void give_up(struct peer *p)
{
    if (atomic_load(&p->stage) == 1 && p->s[0].bev) {
        bufferevent_free(p->s[0].bev);
        p->s[0].bev = NULL;
    }
}

START_TEST(stalled_handshake_is_closed_by_its_owner)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "echo", stall_client);
    p.on_tick = give_up;
    peer_run(&p);
    peer_close(&p);
}
END_TEST

/* ---- backpressure ----------------------------------------------------------------- */

/* While the client reads nothing, the plaintext the server queued stays in
 * its output buffer (where conn.c measures it), not encrypted onto the
 * wire without bound. */
static void slow_client(struct peer *p)
{
    struct tls_client_ctx *ctx = trust("ca.pem");
    struct tls_client *c = dial(ctx, p->client_fd[0], "localhost");
    send_all(c, "go", 2);
    usleep(300 * 1000);
    atomic_store(&p->stage, 1);
    wait_stage(p, 2);
    static char buf[1 << 16];
    size_t got = 0;
    while (got < FLOOD) {
        ssize_t n = tls_client_recv(c, buf, sizeof buf);
        ck_assert_msg(n > 0, "%s", tls_client_error(c));
        got += (size_t)n;
    }
    ck_assert_uint_eq(got, FLOOD);
    tls_client_free(c);
    tls_client_ctx_free(ctx);
}

static void measure_pending(struct peer *p)
{
    if (atomic_load(&p->stage) == 1) {
        p->pending_seen = evbuffer_get_length(bufferevent_get_output(p->s[0].bev));
        atomic_store(&p->stage, 2);
    }
}

START_TEST(unread_output_stays_plaintext)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "flood", slow_client);
    p.on_tick = measure_pending;
    peer_run(&p);
    /* What left: the wire's 64 KiB and what the socket buffers took. */
    ck_assert_uint_gt(p.pending_seen, FLOOD - (2u << 20));
    ck_assert_int_gt(p.s[0].writes, 0);
    peer_close(&p);
}
END_TEST

/* ---- reload ----------------------------------------------------------------------- */

/* A connection made before a reload keeps its certificate; one made after
 * gets the new one (self-signed here, so only a client trusting it gets
 * through). */
static void reload_client(struct peer *p)
{
    struct tls_client_ctx *ca = trust("ca.pem"), *self = trust("self.pem");
    struct tls_client *old = dial(ca, p->client_fd[0], "localhost");
    echo_once(old, "before");
    atomic_store(&p->stage, 1);
    wait_stage(p, 2);
    struct tls_client *fresh = dial(self, p->client_fd[1], "localhost");
    echo_once(fresh, "new certificate");
    echo_once(old, "old certificate, still");
    tls_client_free(fresh);
    tls_client_free(old);
    tls_client_ctx_free(ca);
    tls_client_ctx_free(self);
}

static void rotate(struct peer *p)
{
    if (atomic_load(&p->stage) != 1)
        return;
    load("self.pem", "self.key");
    serve(p, 1, pair(p, 1));
    atomic_store(&p->stage, 2);
}

START_TEST(reload_serves_new_connections_only)
{
    struct peer p;
    load("server.pem", "server.key");
    peer_open(&p, "echo", reload_client);
    p.on_tick = rotate;
    peer_run(&p);
    peer_close(&p);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *t = tcase_create("tls");
    tcase_add_unchecked_fixture(t, make_certs, remove_certs);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, good_pairs_load);
    tcase_add_test(t, missing_file_says_which_and_why);
    tcase_add_test(t, garbage_cert_is_not_a_certificate);
    tcase_add_test(t, garbage_key_is_refused);
    tcase_add_test(t, key_must_match_the_certificate);
    tcase_add_test(t, handshake_and_echo_both_ways);
    tcase_add_test(t, rsa_certificate_serves_too);
    tcase_add_test(t, failed_load_keeps_the_pair_in_use);
    tcase_add_test(t, names_and_addresses_are_verified);
    tcase_add_test(t, untrusted_signer_is_refused);
    tcase_add_test(t, insecure_accepts_any_name);
    tcase_add_test(t, missing_cafile_is_named);
    tcase_add_test(t, nonblocking_client_says_eagain_and_pending);
    tcase_add_test(t, client_handshake_times_out);
    tcase_add_test(t, final_answer_then_close_notify_then_close);
    tcase_add_test(t, long_final_answer_is_flushed_before_close);
    tcase_add_test(t, garbage_fails_the_connection);
    tcase_add_test(t, stalled_handshake_is_closed_by_its_owner);
    tcase_add_test(t, unread_output_stays_plaintext);
    tcase_add_test(t, reload_serves_new_connections_only);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);   /* as the daemon does: a closed peer is an error, not a signal */
    log_set_level(LOG_LEVEL_WARN);
    SRunner *sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
