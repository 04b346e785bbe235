/* http_routes.c — see http_routes.h. */
#include "front/http_routes.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/config.h"
#include "front/dashboard_page.h"
#include "front/front.h"
#include "front/stats.h"
#include "pipeline/supervisor.h"

const char *http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default:  return "Error";
    }
}

/* Compares in time that depends only on the lengths, so a client cannot
 * find the token byte by byte from response times. */
static int token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int token_ok(const struct config *cfg, const struct http_request *req, struct http_str query)
{
    const char *want = cfg->auth_token;
    size_t wlen = strlen(want);
    const struct http_str *auth = http_find_header(req->headers, req->num_headers, "Authorization");
    static const char bearer[] = "Bearer ";
    if (auth && auth->len > sizeof bearer - 1 &&
        strncasecmp(auth->p, bearer, sizeof bearer - 1) == 0 &&
        token_equal(auth->p + 7, auth->len - 7, want, wlen))
        return 1;
    struct http_str raw;
    if (!http_query_param(query, "token", &raw))
        return 0;
    char buf[512];
    ssize_t n = http_percent_decode(raw.p, raw.len, buf, sizeof buf, false);
    return n >= 0 && token_equal(buf, (size_t)n, want, wlen);
}

static int origin_ok(const struct config *cfg, const struct http_request *req)
{
    if (!cfg->allow_origin.n)
        return 1;
    const struct http_str *o = http_find_header(req->headers, req->num_headers, "Origin");
    if (!o)
        return 1;   /* not a browser: Origin guards browsers against cross-site use */
    for (size_t i = 0; i < cfg->allow_origin.n; i++) {
        const char *a = cfg->allow_origin.v[i];
        if (strlen(a) == o->len && strncasecmp(a, o->p, o->len) == 0)
            return 1;
    }
    return 0;
}

int http_route_admit(const struct config *cfg, const struct http_request *req, struct http_str query)
{
    if (cfg->auth_token && !token_ok(cfg, req, query))
        return 401;
    if (!origin_ok(cfg, req))
        return 403;
    return 0;
}

int http_route_admit_dashboard(const struct config *cfg, const struct http_request *req,
                               struct http_str query, int stats_ok)
{
    return stats_ok ? http_route_admit(cfg, req, query) : 403;
}

static void fixed(struct http_reply *r, int status, const char *text)
{
    *r = (struct http_reply){ .status = status, .ctype = "text/plain; charset=utf-8",
                              .body = (char *)text, .len = strlen(text) };
}

static int is(const struct http_str *p, const char *s)
{
    return p->len == strlen(s) && memcmp(p->p, s, p->len) == 0;
}

void http_route_plain(struct front *f, const struct http_str *path, int stats_ok,
                      struct http_reply *r)
{
    if (is(path, "/")) {
        const struct dashboard_page *pg = dashboard_page();
        *r = (struct http_reply){ .status = 200, .ctype = "text/html; charset=utf-8",
                                  .body = (char *)pg->body, .len = pg->len, .headers = pg->headers };
        return;
    }
    if (is(path, "/healthz")) {
        int ok = !f->shutting_down && supervisor_alive(f->sup, CLASS_CPU) &&
                 (f->p->nworkers == f->p->ncpu || supervisor_alive(f->sup, CLASS_IO));
        fixed(r, ok ? 200 : 503, ok ? "ok\n" : "unavailable\n");
        return;
    }
    int json = is(path, "/stats");
    if (json || is(path, "/metrics")) {
        if (!stats_ok) {
            fixed(r, 403, "forbidden\n");
            return;
        }
        struct jout j = { 0 };
        if (json)
            stats_json(f, &j);
        else
            stats_metrics(f, &j);
        if (j.oom) {
            jout_free(&j);
            fixed(r, 503, "out of memory\n");
            return;
        }
        *r = (struct http_reply){ .status = 200, .body = j.p, .len = j.len, .owned = 1,
                                  .ctype = json ? "application/json"
                                                : "text/plain; version=0.0.4; charset=utf-8" };
        return;
    }
    fixed(r, 404, "not found\n");
}

void http_reply_free(struct http_reply *r)
{
    if (r->owned)
        free(r->body);
}
