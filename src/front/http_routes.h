/* http_routes.h — the plain HTTP endpoints (/healthz, /stats, /metrics,
 * the dashboard at /) and the access checks of the WebSocket routes. */
#ifndef WSJOBD_HTTP_ROUTES_H
#define WSJOBD_HTTP_ROUTES_H

#include <stddef.h>

#include "wire/http_request.h"

struct config;
struct front;

struct http_reply {
    int status;
    const char *ctype;
    char *body;        /* malloc'd or static, see owned */
    size_t len;
    int owned;
    const char *headers;   /* header lines (CRLF each), static; NULL: Cache-Control: no-store */
};

const char *http_status_text(int status);

/* 0 when a job route may be upgraded; else 401 (token) or 403 (origin). */
int http_route_admit(const struct config *cfg, const struct http_request *req,
                     struct http_str query);

/* 0 when the dashboard (/ and its feed /stats/live) may be served: the
 * peer is within --stats-allow (else 403) and passes http_route_admit. */
int http_route_admit_dashboard(const struct config *cfg, const struct http_request *req,
                               struct http_str query, int stats_ok);

/* The answer to a plain GET of path, admitted already when it is the
 * dashboard. */
void http_route_plain(struct front *f, const struct http_str *path, int stats_ok,
                      struct http_reply *r);
void http_reply_free(struct http_reply *r);

#endif
