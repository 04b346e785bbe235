/* tls_conn.c — the server side of wss://: a libevent filter bufferevent
 * with mbedTLS between the socket and conn.c, so conn.c reads and writes
 * plaintext exactly as it does on a plain socket.
 *
 *     socket <-> wire (bufferevent_socket, ciphertext)
 *            <-> bev  (bufferevent_filter, plaintext) <-> conn.c
 *
 * mbedTLS's BIO callbacks never touch the socket: they take ciphertext from
 * the wire's input buffer and append to the wire's output buffer.  Sending
 * therefore never blocks (mbedTLS never sees WANT_WRITE), and all socket
 * I/O stays libevent's.  Plain connections never come through this file.
 *
 * The handshake runs on the handshake pool's threads
 * (tls_handshake_pool.c), not on the loop: its public-key steps cost about
 * a millisecond each, and a storm of new connections would otherwise stall
 * every other client.  The hand-off is by copy, the simplest way that keeps
 * libevent single-threaded: the loop moves the ciphertext that arrived into
 * the connection's own `in` bytes and queues one mbedtls_ssl_handshake()
 * call; the thread's BIO reads `in` and appends the reply flight to `out`;
 * the loop takes the job back, appends `out` to the wire and either queues
 * the next step when more bytes come, or finds the session established.
 * While a job is queued or running (on_pool), the thread alone may touch
 * ssl, in, out and hs_rc, and the loop touches only the bufferevents; bytes
 * that arrive meanwhile wait in the wire's input (bounded by its read
 * watermark).  A connection closed meanwhile (timeout, EOF, shutdown) is
 * taken back from the queue if no thread has started it, else orphaned: its
 * socket closes at once and the session is freed when the thread returns.
 * The shared config, certificate and key are read-only after loading; the
 * random generator is mbedTLS's CTR_DRBG, which locks itself (see
 * tls_config.c); the credentials' reference count is only touched by the
 * loop.  Admission: while HS_WAITING_MAX handshakes wait for a thread, new
 * TLS connections are closed before any work is spent on them (see
 * pool_full); the ones let in keep conn.c's handshake timeout.
 *
 * Memory per connection: this struct, mbedTLS's two record buffers
 * (MBEDTLS_SSL_IN/OUT_CONTENT_LEN, 16 KiB each in Debian's 2.28, allocated
 * at accept), its cipher state, and two bufferevents whose buffers are
 * empty when idle: about 39 KiB measured, against 1.3 KiB for plain.
 * During the handshake, a few KiB more for the hand-off copies. */
#include "front/tls_conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <mbedtls/ssl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "clock.h"
#include "front/front.h"
#include "front/linger.h"
#include "front/tls_handshake_pool.h"
#include "wire/tls_config.h"

#define RECORD_MAX MBEDTLS_SSL_OUT_CONTENT_LEN   /* plaintext per TLS record */
/* Ciphertext queued on the wire before we stop encrypting and leave the rest
 * as plaintext in conn.c's output buffer, where conn_out_pending() sees it
 * and its backpressure works as on a plain socket. */
#define WIRE_HIGH (4 * RECORD_MAX)
#define WIRE_LOW  RECORD_MAX                     /* refill before the socket idles */
/* Ciphertext read from a client during its handshake and not yet handed to
 * a thread: the wire stops reading past it.  Far above a client's flight
 * (mbedTLS reads records of at most 16 KiB + 2 KiB). */
#define HS_IN_MAX  (64u << 10)
/* Our flights: the chain goes in one record, so a few records at most. */
#define HS_OUT_MAX (128u << 10)
/* Handshakes queued for a thread past which new TLS connections are closed
 * unserved (see pool_full).  At about 2 ms of work each, a full queue is well under a
 * second of waiting per thread, far inside --handshake-timeout. */
#define HS_WAITING_MAX 128
#define REFUSED_LOG_NS 10000000000ll             /* at most one warning per 10 s */

/* Bytes handed between the loop and a handshake thread. */
struct bytes {
    unsigned char *p;
    size_t len, off, cap;   /* off: read so far (in), unused (out) */
};

struct tls_conn {
    mbedtls_ssl_context ssl;
    struct hs_job job;           /* one mbedtls_ssl_handshake() on the pool */
    struct bytes in, out;        /* the hand-off copies (see the top) */
    int hs_rc;                   /* what the thread's handshake call returned */
    struct tls_creds *creds;     /* a reference: ssl points into its config */
    struct bufferevent *wire;    /* the socket; ours again when the filter dies */
    struct bufferevent *bev;     /* the filter conn.c holds */
    uint8_t established;         /* handshake done: records flow both ways */
    uint8_t failed;              /* fatal TLS error: nothing more is read or sent */
    uint8_t peer_closed;         /* close_notify received */
    uint8_t added;               /* conn.c is inside evbuffer_add (see plain_added) */
    uint8_t on_pool;             /* the pool owns ssl, in, out and hs_rc (loop's flag) */
    uint8_t orphaned;            /* released while on the pool: free on return */
    uint8_t fed;                 /* a step went to the pool: past admission */
    struct evbuffer_cb_entry *on_add;   /* plain_added on the filter's output */
};

static struct tls_creds *current;       /* what new connections get; one reference */
static int shutting_down;               /* tls_server_free ran: close at once from now on */
static uint64_t refused;                /* connections closed unserved: the pool was full */
static int64_t refused_logged_ns;

int tls_server_load(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    struct tls_creds *next = tls_creds_load(cert_file, key_file, err, errlen);
    if (!next)
        return -1;
    char what[400];
    tls_creds_describe(next, what, sizeof what);
    log_info("tls: certificate %s: %s", cert_file, what);
    /* Open connections hold their own references: the old pair lives on
     * until the last of them closes. */
    tls_creds_unref(current);
    current = next;
    shutting_down = 0;
    return 0;
}

/* ---- the hand-off bytes ------------------------------------------------------- */

static int bytes_reserve(struct bytes *b, size_t more, size_t max)
{
    if (b->len + more <= b->cap)
        return 0;
    if (b->len + more > max)
        return -1;
    size_t cap = b->cap ? b->cap : 2048;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    *b = (struct bytes){ 0 };
}

/* ---- mbedTLS's transport ------------------------------------------------------ *
 * Until the session is established these run on a pool thread and see only
 * the hand-off bytes; from then on on the loop, with the wire's buffers.
 * established only changes on the loop while no thread has the session. */

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
    struct tls_conn *t = arg;
    if (!t->established) {
        if (bytes_reserve(&t->out, len, HS_OUT_MAX) < 0)
            return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        memcpy(t->out.p + t->out.len, buf, len);
        t->out.len += len;
        return (int)len;
    }
    if (evbuffer_add(bufferevent_get_output(t->wire), buf, len) < 0)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;   /* at most one record buffer */
}

/* Never 0: the end of the stream reaches conn.c as the wire's EOF event.
 * Bytes the handshake left unread (a record the client sent right behind
 * its Finished) come first. */
static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
    struct tls_conn *t = arg;
    if (t->in.off < t->in.len) {
        size_t n = t->in.len - t->in.off;
        if (n > len)
            n = len;
        memcpy(buf, t->in.p + t->in.off, n);
        t->in.off += n;
        if (t->established && t->in.off == t->in.len)
            bytes_free(&t->in);
        return (int)n;
    }
    if (!t->established)
        return MBEDTLS_ERR_SSL_WANT_READ;
    int n = evbuffer_remove(bufferevent_get_input(t->wire), buf, len);
    return n > 0 ? n : MBEDTLS_ERR_SSL_WANT_READ;
}

/* ---- failures -------------------------------------------------------------- */

/* libevent ignores what a filter returns, so the failure is told to conn.c
 * as an event of our own.  Deferred: it must not free the connection under
 * the filter call that is running. */
static void end_with_error(struct tls_conn *t)
{
    t->failed = 1;
    bufferevent_disable(t->wire, EV_READ);
    bufferevent_trigger_event(t->bev, BEV_EVENT_ERROR | BEV_EVENT_READING, BEV_TRIG_DEFER_CALLBACKS);
}

static void fail(struct tls_conn *t, const char *what, int rc)
{
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char why[200];
        tls_strerror(rc, why, sizeof why);
        log_debug("tls: %s failed: %s", what, why);
    }
    end_with_error(t);
}

/* ---- admission ------------------------------------------------------------- */

/* The cheap refusal while the threads are behind: the connection is closed
 * before any handshake work is spent on it.  Checked at accept (before even
 * the session is set up) and again when a connection's first step would be
 * queued, since the connections one loop turn accepts are all let in before
 * any of their ClientHellos is read.  Later steps always queue: their
 * work is half done.  So the queue holds at most HS_WAITING_MAX first steps
 * plus one later step per handshake under way, and those are bounded by
 * --max-connections and cut by --handshake-timeout. */
static int pool_full(void)
{
    if (hs_pool_waiting() < HS_WAITING_MAX)
        return 0;
    refused++;
    int64_t now = shm_now_ns();
    if (now - refused_logged_ns >= REFUSED_LOG_NS) {
        refused_logged_ns = now;
        log_warn("tls: %d handshakes wait for a thread: closing new TLS connections "
                 "(%llu so far)", HS_WAITING_MAX, (unsigned long long)refused);
    }
    return 1;
}

/* ---- the handshake, on the pool ---------------------------------------------- */

static struct tls_conn *of_job(struct hs_job *j)
{
    return (struct tls_conn *)(void *)((char *)j - offsetof(struct tls_conn, job));
}

/* On a pool thread: as far as the bytes handed over take it.  mbedTLS reads
 * all it is given before it answers WANT_READ. */
static void hs_run(struct hs_job *j)
{
    struct tls_conn *t = of_job(j);
    t->hs_rc = mbedtls_ssl_handshake(&t->ssl);
}

/* Hands what arrived on the wire to a thread, if anything did. */
static void hs_feed(struct tls_conn *t)
{
    struct evbuffer *wire_in = bufferevent_get_input(t->wire);
    size_t n = evbuffer_get_length(wire_in);
    if (!n)
        return;
    if (!t->fed && pool_full()) {
        end_with_error(t);
        return;
    }
    size_t left = t->in.len - t->in.off;
    if (left)
        memmove(t->in.p, t->in.p + t->in.off, left);
    t->in.len = left;
    t->in.off = 0;
    if (n > HS_IN_MAX - left)
        n = HS_IN_MAX - left;
    if (n == 0 || bytes_reserve(&t->in, n, HS_IN_MAX) < 0 ||
        evbuffer_remove(wire_in, t->in.p + left, n) != (int)n) {
        fail(t, "handshake", MBEDTLS_ERR_SSL_ALLOC_FAILED);
        return;
    }
    t->in.len += n;
    t->fed = 1;
    t->on_pool = 1;
    hs_pool_submit(&t->job);
}

static void hs_established(struct tls_conn *t)
{
    t->established = 1;
    bytes_free(&t->out);
    if (t->in.off == t->in.len)
        bytes_free(&t->in);
    bufferevent_setwatermark(t->wire, EV_READ, 0, 0);
    /* libevent calls the filter again only for new bytes: records that came
     * behind the handshake are read on this kick. */
    bufferevent_trigger(t->wire, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* On the loop: the thread is done with the session. */
static void session_free(struct tls_conn *t);

static void hs_done(struct hs_job *j, int dropped)
{
    struct tls_conn *t = of_job(j);
    t->on_pool = 0;
    if (t->orphaned) {
        session_free(t);
        return;
    }
    if (dropped)
        return;   /* the loop is ending: nothing more is sent */
    /* Our flight, or the alert that says why the handshake failed. */
    if (t->out.len && evbuffer_add(bufferevent_get_output(t->wire), t->out.p, t->out.len) < 0) {
        fail(t, "handshake", MBEDTLS_ERR_SSL_ALLOC_FAILED);
        return;
    }
    t->out.len = 0;
    int rc = t->hs_rc;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        hs_feed(t);   /* what came meanwhile, if anything */
    else if (rc)
        fail(t, "handshake", rc);
    else
        hs_established(t);
}

/* ---- the filters ----------------------------------------------------------- */

/* Ciphertext in the wire's input -> plaintext in conn.c's input.  Drains
 * everything mbedTLS can decrypt: libevent calls again only when more
 * bytes arrive, so a record left inside mbedTLS would stall the reader. */
static enum bufferevent_filter_result read_records(struct tls_conn *t, struct evbuffer *plain,
                                                   ev_ssize_t limit)
{
    size_t got = 0;
    while (limit < 0 || got < (size_t)limit) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(plain, RECORD_MAX, &v, 1) < 1) {
            fail(t, "read", MBEDTLS_ERR_SSL_ALLOC_FAILED);
            return BEV_ERROR;
        }
        int n = mbedtls_ssl_read(&t->ssl, v.iov_base, v.iov_len);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(plain, &v, 1);
            got += (size_t)n;
            continue;
        }
        /* Nothing committed: the reservation lapses. */
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == 0) {
            /* After the plaintext read above: conn.c's read callback runs
             * now, the deferred EOF after it. */
            t->peer_closed = 1;
            bufferevent_trigger_event(t->bev, BEV_EVENT_EOF | BEV_EVENT_READING,
                                      BEV_TRIG_DEFER_CALLBACKS);
            break;
        }
        fail(t, "read", n);
        return got ? BEV_OK : BEV_ERROR;
    }
    return got ? BEV_OK : BEV_NEED_MORE;
}

static enum bufferevent_filter_result rx_filter(struct evbuffer *wire_in, struct evbuffer *plain,
                                                ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                void *arg)
{
    struct tls_conn *t = arg;
    (void)mode;
    if (t->failed || t->peer_closed) {
        evbuffer_drain(wire_in, evbuffer_get_length(wire_in));
        return BEV_ERROR;
    }
    if (!t->established) {
        /* The client speaks first, so the handshake is driven from here
         * and from hs_done alone; a stalled one is cut by conn.c's
         * handshake timer.  While a thread has the session, the bytes wait
         * in wire_in for hs_done. */
        if (!t->on_pool)
            hs_feed(t);
        return t->failed ? BEV_ERROR : BEV_NEED_MORE;
    }
    return read_records(t, plain, limit);
}

/* conn.c added plaintext.  Our callback on its output buffer is called
 * just before the filter's own (libevent runs a buffer's callbacks newest
 * first), so tx_filter learns that the call it is about to get comes from
 * inside conn.c's evbuffer_add. */
static void plain_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct tls_conn *t = arg;
    (void)buf;
    if (info->n_added)
        t->added = 1;
}

/* Encrypting from inside evbuffer_add would make one record per add (a
 * WebSocket header alone in one) and could call conn.c's write callback
 * inside its own send, which a socket never does.  So that call only
 * schedules the wire's write callback, deferred: libevent runs it from the
 * loop, it calls back here, and everything conn.c added meanwhile goes out
 * in full records.  The wire's callbacks are cleared when the filter is
 * freed, so a kick still pending then does nothing. */
static int defer_to_loop(struct tls_conn *t)
{
    if (!t->added)
        return 0;
    t->added = 0;
    bufferevent_trigger(t->wire, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    return 1;
}

/* Plaintext from conn.c's output -> records on the wire, up to the wire's
 * room: the rest stays in conn.c's buffer, and the wire's write callback
 * (at WIRE_LOW) brings us back for it. */
static enum bufferevent_filter_result tx_filter(struct evbuffer *plain, struct evbuffer *wire_out,
                                                ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                void *arg)
{
    struct tls_conn *t = arg;
    (void)mode;
    if (t->failed)
        return BEV_ERROR;
    if (!t->established || defer_to_loop(t))
        return BEV_NEED_MORE;   /* before the handshake ends, plaintext waits */
    size_t room = limit < 0 ? WIRE_HIGH : (size_t)limit;
    size_t start = evbuffer_get_length(wire_out);
    int moved = 0;
    while (evbuffer_get_length(plain) && evbuffer_get_length(wire_out) - start < room) {
        size_t n = evbuffer_get_length(plain);
        if (n > RECORD_MAX)
            n = RECORD_MAX;
        unsigned char *p = evbuffer_pullup(plain, (ev_ssize_t)n);
        int w = p ? mbedtls_ssl_write(&t->ssl, p, n) : MBEDTLS_ERR_SSL_ALLOC_FAILED;
        if (w < 0) {   /* never WANT_WRITE: bio_send takes everything */
            fail(t, "write", w);
            return BEV_ERROR;
        }
        evbuffer_drain(plain, (size_t)w);
        moved = 1;
    }
    return moved ? BEV_OK : BEV_NEED_MORE;
}

/* ---- the session ---------------------------------------------------------- */

/* The TLS session, before any socket is involved. */
static struct tls_conn *session_new(void)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    mbedtls_ssl_init(&t->ssl);
    int rc = mbedtls_ssl_setup(&t->ssl, tls_creds_conf(current));
    if (rc) {
        char why[200];
        tls_strerror(rc, why, sizeof why);
        log_warn("tls: cannot set up a connection: %s", why);
        mbedtls_ssl_free(&t->ssl);
        free(t);
        return NULL;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    t->job.run = hs_run;
    t->job.done = hs_done;
    t->creds = tls_creds_ref(current);
    return t;
}

static void session_free(struct tls_conn *t)
{
    mbedtls_ssl_free(&t->ssl);
    bytes_free(&t->in);
    bytes_free(&t->out);
    tls_creds_unref(t->creds);
    free(t);
}

/* ---- the end: close_notify, flush, lingering close ---------------------------- */

/* One non-blocking write of what is queued, then close: for a failed
 * handshake that is mbedTLS's alert, which tells a client offering an old
 * version or the wrong suites why, instead of a bare EOF. */
static void wire_close_now(struct bufferevent *wire)
{
    struct evbuffer *out = bufferevent_get_output(wire);
    if (evbuffer_get_length(out)) {
        /* A socket bufferevent keeps its output's front frozen except
         * while it writes; do as it does. */
        evbuffer_unfreeze(out, 1);
        (void)evbuffer_write(out, bufferevent_getfd(wire));   /* best effort */
        evbuffer_freeze(out, 1);
    }
    bufferevent_free(wire);
}

/* What is already encrypted still goes out, then a lingering close.  A
 * failed connection closes at once: the peer is not speaking TLS, or not
 * well.  Nor while the loop is ending: nothing would run the linger. */
static void wire_finish(struct bufferevent *wire, int orderly)
{
    if (!orderly || shutting_down || linger_start(wire) < 0)
        wire_close_now(wire);
}

/* The filter's free_context: libevent calls it once conn.c's
 * bufferevent_free() has taken the filter down (from the loop, later).  The
 * filter still holds a reference on the wire until this returns; whoever
 * frees the wire after that (here or the linger) closes fd. */
static void tls_conn_release(void *arg)
{
    struct tls_conn *t = arg;
    struct bufferevent *wire = t->wire;
    if (t->on_add)
        evbuffer_remove_cb_entry(bufferevent_get_output(t->bev), t->on_add);
    if (t->on_pool && !hs_pool_cancel(&t->job)) {
        /* A thread has the session: hs_done frees it.  The socket needs
         * nothing from it: a handshake cut short just closes. */
        t->orphaned = 1;
        t->wire = t->bev = NULL;
        wire_finish(wire, 0);
        return;
    }
    t->on_pool = 0;
    int orderly = t->established && !t->failed;
    if (orderly)
        mbedtls_ssl_close_notify(&t->ssl);   /* one alert record, appended to the wire */
    session_free(t);
    wire_finish(wire, orderly);
}

/* ---- life cycle ---------------------------------------------------------------- */

/* Started with the first connection, when the loop exists: its threads
 * then also never see the daemon's first forks. */
static int pool_ready(struct front *f)
{
    if (hs_pool_running())
        return 1;
    char err[200];
    if (hs_pool_start(f->base, err, sizeof err) < 0) {
        log_error("tls: %s", err);
        return 0;
    }
    log_info("tls: %u handshake thread%s", hs_pool_threads(), hs_pool_threads() > 1 ? "s" : "");
    return 1;
}

struct bufferevent *tls_conn_new(struct front *f, int fd)
{
    if (!current) {
        log_warn("tls: connection on a TLS listener, but no certificate is loaded");
        return NULL;
    }
    if (!pool_ready(f) || pool_full())
        return NULL;
    struct tls_conn *t = session_new();
    if (!t)
        return NULL;
    evutil_make_socket_nonblocking(fd);
    t->wire = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (t->wire) {
        bufferevent_setwatermark(t->wire, EV_WRITE, WIRE_LOW, WIRE_HIGH);
        bufferevent_setwatermark(t->wire, EV_READ, 0, HS_IN_MAX);   /* until established */
        /* Not CLOSE_ON_FREE: the wire must outlive the filter to send
         * close_notify; tls_conn_release frees it. */
        t->bev = bufferevent_filter_new(t->wire, rx_filter, tx_filter, 0, tls_conn_release, t);
    }
    if (!t->bev) {
        if (t->wire) {
            bufferevent_setfd(t->wire, -1);   /* fd stays the caller's */
            bufferevent_free(t->wire);
        }
        session_free(t);
        return NULL;
    }
    t->on_add = evbuffer_add_cb(bufferevent_get_output(t->bev), plain_added, t);
    if (!t->on_add) {
        /* The filter owns t now: its release frees t and the wire. */
        bufferevent_setfd(t->wire, -1);
        bufferevent_free(t->bev);
        return NULL;
    }
    return t->bev;
}

void tls_server_free(void)
{
    shutting_down = 1;
    if (hs_pool_running())
        hs_pool_stop();   /* joins; frees the sessions orphaned on it */
    tls_creds_unref(current);
    current = NULL;
}
