/* result_store_link.c — the result store's link to Redis: the URL, the
 * asynchronous resolve and connect, the heartbeat, and the retry with
 * backoff when any of it fails.
 *
 * The link is two hiredis connections made, lost and remade together: `cmd`
 * for commands and `sub` for SUBSCRIBE.  It is up once PING is answered on
 * `cmd` (after SELECT) and wsjobd:cancel is subscribed on `sub`; anything
 * going wrong on either drops both, ends every follow and retries after 100
 * ms, doubling to 5 s.  The state text changes (and is logged) only when the
 * reason changes, not on every try.
 *
 * hiredis calls back while it frees a connection (pending replies get NULL,
 * then the disconnect callback), and frees a connection itself after a failed
 * connect or a disconnect callback.  So the store forgets a connection
 * (rs->cmd / rs->sub = NULL) *before* freeing it or as soon as hiredis says
 * it will, every callback first checks that its connection is still the
 * store's, and a NULL reply is never acted on here. */
#include <arpa/inet.h>
#include <ctype.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/timeval.h"
#include "store/result_store_parts.h"

/* The evdns callback's argument: it outlives a cancelled resolve, so a late
 * callback finds rs == NULL instead of a freed store. */
struct rs_resolve {
    struct result_store *rs;
};

int64_t rs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- state --------------------------------------------------------------- */

static void set_state(struct result_store *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_state(struct result_store *rs, const char *fmt, ...)
{
    char text[sizeof rs->state_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* hiredis capitalises its messages ("Connection refused"); a command
     * name stays as it is. */
    if (text[0] && islower((unsigned char)text[1]))
        text[0] = (char)tolower((unsigned char)text[0]);
    if (strcmp(text, rs->state_buf) == 0)
        return;
    memcpy(rs->state_buf, text, sizeof text);
    rs->state = rs->state_buf;
    if (rs->up)
        log_info("result store %s: up", rs->url);
    else
        log_warn("result store %s: %s; retrying until it answers", rs->url, text);
}

/* ---- losing the link ----------------------------------------------------- */

static void cancel_resolve(struct result_store *rs)
{
    if (!rs->resolve)
        return;
    rs->resolve->rs = NULL;        /* the callback still comes, and frees it */
    rs->resolve = NULL;
    if (rs->dns_req) {
        struct evdns_getaddrinfo_request *req = rs->dns_req;
        rs->dns_req = NULL;
        evdns_getaddrinfo_cancel(req);
    }
}

/* Drops both connections (the caller has already forgotten one that hiredis
 * frees itself), ends every follow, and schedules the next try. */
static void link_fail(struct result_store *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void link_fail(struct result_store *rs, const char *fmt, ...)
{
    if (rs->closing)
        return;
    redisAsyncContext *cmd = rs->cmd, *sub = rs->sub;
    rs->cmd = rs->sub = NULL;
    rs->up = rs->cmd_ready = rs->sub_ready = rs->hb_inflight = 0;
    cancel_resolve(rs);
    event_del(&rs->tick);

    char why[sizeof rs->state_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    set_state(rs, "%s", why);

    /* Follows end before the connections go, so that none sees a half-torn
     * link; their replies still pending then come back NULL and only drop
     * references. */
    rs_follow_link_lost(rs);
    if (cmd)
        redisAsyncFree(cmd);       /* deferred by hiredis when inside its callback */
    if (sub)
        redisAsyncFree(sub);

    struct timeval tv = tv_from_ms(rs->backoff_ms);
    event_add(&rs->retry, &tv);
    rs->backoff_ms = rs->backoff_ms * 2 > RS_BACKOFF_MAX_MS ? RS_BACKOFF_MAX_MS : rs->backoff_ms * 2;
}

/* hiredis is about to free ac (after a failed connect, or after the
 * disconnect callback returns): forget it.  0 when it was not the store's. */
static int forget(struct result_store *rs, const redisAsyncContext *ac)
{
    if (ac == rs->cmd)
        rs->cmd = NULL;
    else if (ac == rs->sub)
        rs->sub = NULL;
    else
        return 0;
    return 1;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct result_store *rs = ac->data;
    if (status == REDIS_OK)
        return;                    /* up once the first replies say so */
    if (forget(rs, ac))
        link_fail(rs, "%s", ac->c.errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct result_store *rs = ac->data;
    if (forget(rs, ac))
        link_fail(rs, "%s", status == REDIS_OK ? "disconnected" : ac->c.errstr);
}

/* ---- heartbeat and coming up --------------------------------------------- */

static void on_heartbeat(redisAsyncContext *ac, void *r, void *arg)
{
    struct result_store *rs = arg;
    redisReply *reply = r;
    if (!reply || ac != rs->cmd)
        return;
    rs->hb_inflight = 0;
    if (reply->type == REDIS_REPLY_ERROR)
        link_fail(rs, "heartbeat refused: %s", reply->str);
}

static void send_heartbeat(struct result_store *rs)
{
    if (redisAsyncCommand(rs->cmd, on_heartbeat, rs, "SET wsjobd:inst:%s 1 PX %d",
                          rs->instance, RS_HEARTBEAT_MS) != REDIS_OK)
        return;
    rs->hb_inflight = 1;
    rs->hb_sent_ms = rs_now_ms();
}

static void maybe_up(struct result_store *rs)
{
    if (rs->up || !rs->cmd_ready || !rs->sub_ready)
        return;
    rs->up = 1;
    rs->backoff_ms = RS_BACKOFF_MIN_MS;
    set_state(rs, "up");
    send_heartbeat(rs);
    rs_owner_up(rs);
}

static void on_ping(redisAsyncContext *ac, void *r, void *arg)
{
    struct result_store *rs = arg;
    redisReply *reply = r;
    if (!reply || ac != rs->cmd)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        link_fail(rs, "%s", reply->str);   /* NOAUTH, LOADING, a bad SELECT, ... */
        return;
    }
    rs->cmd_ready = 1;
    maybe_up(rs);
}

static void on_select(redisAsyncContext *ac, void *r, void *arg)
{
    struct result_store *rs = arg;
    redisReply *reply = r;
    if (reply && ac == rs->cmd && reply->type == REDIS_REPLY_ERROR)
        link_fail(rs, "SELECT %d refused: %s", rs->db, reply->str);
}

/* Every reply on `sub`: (un)subscribe confirmations and messages, all
 * arrays of three: kind, channel, payload or count. */
static void on_sub(redisAsyncContext *ac, void *r, void *arg)
{
    static const char job_prefix[] = "wsjobd:job:";
    struct result_store *rs = arg;
    redisReply *reply = r;
    if (!reply || ac != rs->sub)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        link_fail(rs, "SUBSCRIBE refused: %s", reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str, *chan = reply->element[1]->str;
    const redisReply *payload = reply->element[2];
    int message = strcmp(kind, "message") == 0 && payload->type == REDIS_REPLY_STRING;

    if (strcmp(chan, "wsjobd:cancel") == 0) {
        if (strcmp(kind, "subscribe") == 0) {
            rs->sub_ready = 1;
            maybe_up(rs);
        } else if (message) {
            rs_on_cancel_message(rs, payload->str);
        }
    } else if (strncmp(chan, job_prefix, sizeof job_prefix - 1) == 0) {
        rs_follow_channel(rs, kind, chan + sizeof job_prefix - 1,
                          message ? payload->str : NULL, message ? payload->len : 0);
    }
}

/* ---- connecting ---------------------------------------------------------- */

static redisAsyncContext *connect_one(struct result_store *rs, const char *ip,
                                      char *why, size_t whylen)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, rs->port);
    if (!ac) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, whylen, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    /* The adapter's events first: setting the connect callback arms them. */
    if (redisLibeventAttach(ac, rs->base) != REDIS_OK) {
        snprintf(why, whylen, "cannot watch the connection");
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = rs;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void open_link(struct result_store *rs, const char *ip)
{
    char why[sizeof rs->state_buf];
    rs->cmd = connect_one(rs, ip, why, sizeof why);
    if (rs->cmd)
        rs->sub = connect_one(rs, ip, why, sizeof why);
    if (!rs->cmd || !rs->sub) {
        link_fail(rs, "%s", why);
        return;
    }
    /* Queued until the connection is made; pipelined, answered in order. */
    int ok = REDIS_OK;
    if (rs->db)
        ok |= redisAsyncCommand(rs->cmd, on_select, rs, "SELECT %d", rs->db);
    ok |= redisAsyncCommand(rs->cmd, on_ping, rs, "PING");
    ok |= redisAsyncCommand(rs->sub, on_sub, rs, "SUBSCRIBE wsjobd:cancel");
    if (ok != REDIS_OK)
        link_fail(rs, "cannot queue the first commands");
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct rs_resolve *r = arg;
    struct result_store *rs = r->rs;
    free(r);
    if (rs) {
        rs->resolve = NULL;
        rs->dns_req = NULL;
    }
    if (!rs || result == EVUTIL_EAI_CANCEL) {
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    if (result != 0 || !res) {
        link_fail(rs, "cannot resolve %s: %s", rs->host, evutil_gai_strerror(result));
        return;
    }
    /* IPv4 first, as hiredis itself does for a name it resolves. */
    const struct evutil_addrinfo *pick = res;
    for (const struct evutil_addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    char ip[INET6_ADDRSTRLEN];
    const void *addr = pick->ai_family == AF_INET6
        ? (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
        : (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr;
    const char *text = evutil_inet_ntop(pick->ai_family, addr, ip, sizeof ip);
    evutil_freeaddrinfo(res);
    if (!text) {
        link_fail(rs, "cannot resolve %s: no usable address", rs->host);
        return;
    }
    open_link(rs, ip);
}

static void resolve(struct result_store *rs)
{
    struct rs_resolve *r = malloc(sizeof *r);
    if (!r) {
        link_fail(rs, "out of memory");
        return;
    }
    r->rs = rs;
    rs->resolve = r;
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(rs->dns, rs->host, NULL, &hints, on_resolved, r);
    /* An answer from /etc/hosts comes inside the call, and then req is NULL. */
    if (rs->resolve == r)
        rs->dns_req = req;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct result_store *rs = arg;
    if (rs->attempt_ms)
        rs->reconnects++;
    rs->attempt_ms = rs_now_ms();
    struct timeval tv = tv_from_ms(RS_TICK_MS);
    event_add(&rs->tick, &tv);
    if (rs->dns)
        resolve(rs);
    else
        open_link(rs, rs->host);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct result_store *rs = arg;
    int64_t now = rs_now_ms();
    if (!rs->up) {
        if (now - rs->attempt_ms < RS_CONNECT_TIMEOUT_MS)
            return;
        if (rs->resolve)
            link_fail(rs, "cannot resolve %s: timed out", rs->host);
        else
            link_fail(rs, "connect timed out");
        return;
    }
    /* A server that stops answering without closing (a partition, a stop
     * signal) would otherwise keep the link "up" for as long as TCP waits,
     * and the writes queued for it would grow as long: 3 s bounds both. */
    if (rs->hb_inflight && now - rs->hb_sent_ms >= RS_REPLY_TIMEOUT_MS) {
        link_fail(rs, "no reply in %d ms", RS_REPLY_TIMEOUT_MS);
        return;
    }
    if (!rs->hb_inflight)
        send_heartbeat(rs);
    rs->ticks++;
    rs_owner_tick(rs);
    rs_follow_tick(rs);
}

int rs_link_init(struct result_store *rs, char *err, size_t errlen)
{
    rs->backoff_ms = RS_BACKOFF_MIN_MS;
    snprintf(rs->state_buf, sizeof rs->state_buf, "connecting");
    rs->state = rs->state_buf;
    if (!rs_host_is_numeric(rs->host)) {
        /* Reads resolv.conf and the hosts file now, at start-up; later
         * lookups never wait on a resolver.  Idle, it watches nothing. */
        rs->dns = evdns_base_new(rs->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                           EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!rs->dns) {
            snprintf(err, errlen, "result store %s: cannot start a resolver", rs->url);
            return -1;
        }
    }
    event_assign(&rs->retry, rs->base, -1, 0, on_retry, rs);
    event_assign(&rs->tick, rs->base, -1, EV_PERSIST, on_tick, rs);
    struct timeval now = { 0, 0 };
    event_add(&rs->retry, &now);
    return 0;
}

void rs_link_close(struct result_store *rs)
{
    event_del(&rs->retry);
    event_del(&rs->tick);
    cancel_resolve(rs);
    redisAsyncContext *cmd = rs->cmd, *sub = rs->sub;
    rs->cmd = rs->sub = NULL;
    rs->up = 0;
    if (cmd)
        redisAsyncFree(cmd);
    if (sub)
        redisAsyncFree(sub);
    if (rs->dns)
        evdns_base_free(rs->dns, 1);
    rs->dns = NULL;
}

int rs_link_subscribe(struct result_store *rs, const char *channel, int on)
{
    if (!rs->up || !rs->sub)
        return -1;
    return redisAsyncCommand(rs->sub, on_sub, rs, on ? "SUBSCRIBE %s" : "UNSUBSCRIBE %s",
                             channel) == REDIS_OK ? 0 : -1;
}
