/* conn_http.c — a connection's HTTP phase (RFC 9112): one request head at
 * a time, the answers of the plain routes, and the upgrade to a WebSocket
 * on /jobs, /run/TYPE and /stats/live (RFC 6455 §4.2) behind the checks
 * that guard them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "base/config.h"
#include "front/conn_parts.h"
#include "front/dashboard_feed.h"
#include "front/http_routes.h"
#include "front/jobs_proto.h"
#include "front/raw_proto.h"
#include "handlers/handler_registry.h"
#include "wire/http_request.h"
#include "wire/ws_handshake.h"

#define HEADER_LIMIT   8192              /* SPEC §4: over 8 KiB is 431 */
/* Requests answered on one kept-alive connection; the last is answered with
 * Connection: close.  Each request re-arms the header timeout, so without a
 * cap one connection could pipeline requests for ever. */
#define KEEPALIVE_MAX  1000

#define NO_STORE "Cache-Control: no-store\r\n"

/* headers: the answer's own header lines, each ending CRLF (NULL: no-store);
 * extra: more of them. */
static void respond_with(struct conn *c, int status, const char *headers, const char *extra,
                         const char *ctype, const void *body, size_t len, int keep)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "%s%s%s\r\n",
                        status, http_status_text(status), ctype, len, headers ? headers : NO_STORE,
                        extra ? extra : "", keep ? "" : "Connection: close\r\n");
    evbuffer_add(out, body, len);
    conn_check_out_high_water(c);
    if (!keep)
        conn_close_when_flushed(c);
}

static void respond(struct conn *c, int status, const char *extra, const char *ctype,
                    const void *body, size_t len, int keep)
{
    respond_with(c, status, NULL, extra, ctype, body, len, keep);
}

static void respond_text(struct conn *c, int status, const char *extra, const char *text, int keep)
{
    respond(c, status, extra, "text/plain; charset=utf-8", text, strlen(text), keep);
}

/* Only heads are parsed (http_request.h): the bytes after a head are read
 * as the next request or, after an upgrade, as frames, so a body would be
 * taken for one.  A request that announces a body (RFC 9112 §6.3:
 * Transfer-Encoding, or a Content-Length other than one plain "0") is
 * answered and its connection closed instead; else a client could smuggle
 * requests past a proxy in front that forwards the body as a body. */
static int announces_body(const struct http_request *req)
{
    if (http_find_header(req->headers, req->num_headers, "Transfer-Encoding"))
        return 1;
    size_t n = http_count_headers(req->headers, req->num_headers, "Content-Length");
    if (n == 0)
        return 0;
    const struct http_str *v = http_find_header(req->headers, req->num_headers, "Content-Length");
    return n > 1 || v->len != 1 || v->p[0] != '0';
}

static int is_path(const struct http_str *path, const char *s)
{
    return path->len == strlen(s) && memcmp(path->p, s, path->len) == 0;
}

/* Answers a request the guard refused (401 or 403) and closes. */
static void refuse(struct conn *c, int why)
{
    respond_text(c, why, why == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL,
                 why == 401 ? "authorization required\n" : "forbidden\n", 0);
}

/* Upgrades to a WebSocket on /jobs, /run/TYPE or the dashboard's feed,
 * after the checks that guard it. */
static void upgrade(struct conn *c, const struct http_request *req, const struct http_str *path,
                    const struct http_str *query)
{
    const struct config *cfg = c->f->cfg;
    int type = -1;
    int feed = is_path(path, "/stats/live");
    static const char run[] = "/run/";
    if (path->len > sizeof run - 1 && memcmp(path->p, run, sizeof run - 1) == 0) {
        type = registry_find(path->p + 5, path->len - 5);
        if (type < 0) {
            respond_text(c, 404, NULL, "no such job type\n", 0);
            return;
        }
    }
    int why = feed ? http_route_admit_dashboard(cfg, req, *query, c->stats_ok)
                   : http_route_admit(cfg, req, *query);
    if (why) {
        refuse(c, why);
        return;
    }
    char head[512];
    struct ws_upgrade up;
    enum ws_handshake_status st = ws_handshake_check(req, NULL, &up);
    if (st != WS_HS_OK) {
        int n = ws_handshake_error_response(st, head, sizeof head);
        if (n > 0)
            conn_send_raw(c, head, (size_t)n);
        conn_close_when_flushed(c);
        return;
    }
    if (announces_body(req)) {
        respond_text(c, 400, NULL, "request body not allowed\n", 0);
        return;
    }
    int n = ws_handshake_response(&up, head, sizeof head);
    if (n < 0) {
        respond_text(c, 400, NULL, "bad WebSocket handshake\n", 0);
        return;
    }
    const struct proto_ops *ops = feed ? &feed_proto_ops : type < 0 ? &jobs_proto_ops : &raw_proto_ops;
    void *ps = feed ? feed_viewer_new(c) : type < 0 ? jobs_proto_new(c) : raw_proto_new(c, type);
    if (!ps) {
        respond_text(c, 503, NULL, "out of memory\n", 0);
        return;
    }
    conn_send_raw(c, head, (size_t)n);
    conn_start_ws(c, ops, ps);
}

static int is_ws_route(const struct http_str *path)
{
    return is_path(path, "/jobs") || is_path(path, "/stats/live") ||
           (path->len > 5 && memcmp(path->p, "/run/", 5) == 0);
}

/* One request; returns 1 to go on reading requests on this connection. */
static int route(struct conn *c, const struct http_request *req)
{
    struct http_str path, query;
    http_target_split(req->target, &path, &query);
    c->requests++;
    int keep = req->minor_version >= 1 && c->requests < KEEPALIVE_MAX && !announces_body(req) &&
               !http_headers_have_token(req->headers, req->num_headers, "Connection", "close");
    if (!(req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0)) {
        respond_text(c, 405, "Allow: GET\r\n", "method not allowed\n", 0);
        return 0;
    }
    if (is_ws_route(&path)) {
        upgrade(c, req, &path, &query);
        return 0;
    }
    if (is_path(&path, "/")) {
        int why = http_route_admit_dashboard(c->f->cfg, req, query, c->stats_ok);
        if (why) {
            refuse(c, why);
            return 0;
        }
    }
    struct http_reply r;
    http_route_plain(c->f, &path, c->stats_ok, &r);
    respond_with(c, r.status, r.headers, NULL, r.ctype, r.body, r.len, keep);
    http_reply_free(&r);
    return keep;
}

/* Stops between requests once the answers pile up past the output mark: a
 * pipelining client that never reads gets no more answered than that. */
void conn_read_http(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->phase == PH_HTTP && !c->out_paused && !c->mem_paused) {
        size_t len = evbuffer_get_length(in);
        if (!len)
            return;
        size_t take = len > HEADER_LIMIT + 1 ? HEADER_LIMIT + 1 : len;
        const char *p = (const char *)evbuffer_pullup(in, (ssize_t)take);
        /* The parser starts over on each call; a head can only complete with
         * a new LF, so a peer trickling bytes costs one scan per byte, not
         * one parse of the whole head per byte. */
        if (take <= HEADER_LIMIT && c->http_scanned && c->http_scanned < take &&
            !memchr(p + c->http_scanned, '\n', take - c->http_scanned)) {
            c->http_scanned = (uint16_t)take;
            return;
        }
        struct http_request req;
        int n = http_request_parse(p, take, HEADER_LIMIT, &req);
        if (n == HTTP_PARSE_INCOMPLETE) {
            c->http_scanned = (uint16_t)take;
            return;
        }
        c->http_scanned = 0;
        if (n == HTTP_PARSE_TOO_LARGE) {
            respond_text(c, 431, NULL, "request header fields too large\n", 0);
            return;
        }
        if (n < 0) {
            respond_text(c, 400, NULL, "bad request\n", 0);
            return;
        }
        int again = route(c, &req);
        if (c->freed)
            return;
        evbuffer_drain(in, (size_t)n);
        if (c->phase != PH_HTTP && c->phase != PH_WS)
            return;
        if (!again)
            break;
        /* A kept-alive connection gets a fresh header timeout per request. */
        conn_set_timer(c, c->f->cfg->handshake_timeout_ms);
    }
    if (c->phase == PH_WS)
        conn_read_ws(c);   /* frames sent right behind the upgrade request */
}
