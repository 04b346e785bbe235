/* fuzz_http.c — libFuzzer target for the HTTP head parser and its helpers
 * (src/wire/http_request.c) and the server side of the handshake
 * (src/wire/ws_handshake.c).  Besides "no crash", it checks what the parser
 * promises: a result is a length within the input or a parse code; a head
 * found in a buffer is found again, at the same length, in exactly those
 * bytes; one byte less of it is still incomplete. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/http_request.h"
#include "wire/ws_handshake.h"

#define MAX_HEAD 8192

static void exercise_helpers(const struct http_request *req)
{
    static const char *const protocols[] = { "wsjob.v1", "chat", NULL };
    struct http_str path, query, value;
    char out[MAX_HEAD];

    for (size_t i = 0; i < req->num_headers; i++) {
        (void)http_list_has_token(req->headers[i].value, "upgrade");
        (void)http_list_has_token(req->headers[i].value, "websocket");
    }
    (void)http_find_header(req->headers, req->num_headers, "host");
    (void)http_headers_have_token(req->headers, req->num_headers, "connection", "upgrade");

    http_target_split(req->target, &path, &query);
    assert(path.len + query.len <= req->target.len);
    if (http_query_param(query, "token", &value)) {
        assert(value.p >= query.p && value.p + value.len <= query.p + query.len);
        ssize_t n = http_percent_decode(value.p, value.len, out, sizeof out, true);
        assert(n <= (ssize_t)value.len);
    }
    ssize_t n = http_percent_decode(path.p, path.len, out, sizeof out, false);
    assert(n <= (ssize_t)path.len);

    struct ws_upgrade up;
    enum ws_handshake_status st = ws_handshake_check(req, protocols, &up);
    if (st == WS_HS_OK) {
        int len = ws_handshake_response(&up, out, sizeof out);
        assert(len > 0);
        struct http_response resp;
        assert(http_response_parse(out, (size_t)len, MAX_HEAD, &resp) == len);
        assert(resp.status == 101);
    } else {
        int len = ws_handshake_error_response(st, out, sizeof out);
        assert(len > 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so a read past the end is caught. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);

    struct http_request req;
    int n = http_request_parse(buf, size, MAX_HEAD, &req);
    assert(n == HTTP_PARSE_INCOMPLETE || n == HTTP_PARSE_BAD || n == HTTP_PARSE_TOO_LARGE ||
           (n > 0 && (size_t)n <= size && n <= MAX_HEAD));
    if (n == HTTP_PARSE_TOO_LARGE)
        assert(size >= MAX_HEAD || req.num_headers == HTTP_MAX_HEADERS);
    if (n > 0) {
        struct http_request again;
        assert(http_request_parse(buf, (size_t)n, MAX_HEAD, &again) == n);
        assert(again.num_headers == req.num_headers);
        assert(http_request_parse(buf, (size_t)n - 1, MAX_HEAD, &again) == HTTP_PARSE_INCOMPLETE);
        exercise_helpers(&req);
    }

    struct http_response resp;
    int r = http_response_parse(buf, size, MAX_HEAD, &resp);
    assert(r < 0 || ((size_t)r <= size && resp.status >= 100 && resp.status <= 999));

    free(buf);
    return 0;
}
