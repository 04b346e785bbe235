/* test_http_request.c — the HTTP/1.1 head parser (src/wire/http_request.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wire/http_request.h"

#define MAX_HEAD 8192

static const char upgrade_req[] =
    "GET /run/echo?token=s3cr%2Bt&x=1 HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version:13\r\n"
    "X-Padded:   spaced value \t \r\n"
    "X-Empty:\r\n"
    "\r\n";

static int parse(const char *s, struct http_request *req)
{
    return http_request_parse(s, strlen(s), MAX_HEAD, req);
}

static bool str_eq(struct http_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

START_TEST(parses_websocket_upgrade)
{
    struct http_request req;
    int n = parse(upgrade_req, &req);
    ck_assert_int_eq(n, (int)strlen(upgrade_req));
    ck_assert(str_eq(req.method, "GET"));
    ck_assert(str_eq(req.target, "/run/echo?token=s3cr%2Bt&x=1"));
    ck_assert_int_eq(req.minor_version, 1);
    ck_assert_uint_eq(req.num_headers, 7);
    ck_assert(str_eq(req.headers[0].name, "Host"));
    ck_assert(str_eq(req.headers[0].value, "127.0.0.1:8080"));
    ck_assert(str_eq(req.headers[4].value, "13"));
    ck_assert(str_eq(req.headers[5].value, "spaced value"));
    ck_assert_uint_eq(req.headers[6].value.len, 0);
    /* Lookups ignore case. */
    const struct http_str *v = http_find_header(req.headers, req.num_headers, "sec-websocket-key");
    ck_assert_ptr_nonnull(v);
    ck_assert(str_eq(*v, "dGhlIHNhbXBsZSBub25jZQ=="));
    ck_assert_ptr_null(http_find_header(req.headers, req.num_headers, "origin"));
    ck_assert(http_headers_have_token(req.headers, req.num_headers, "CONNECTION", "upgrade"));
    ck_assert(http_headers_have_token(req.headers, req.num_headers, "upgrade", "WebSocket"));
    ck_assert(!http_headers_have_token(req.headers, req.num_headers, "connection", "close"));
}
END_TEST

START_TEST(stops_at_end_of_head)
{
    /* Bytes after the head (a pipelined request, or frames) are not part
     * of it. */
    char buf[sizeof upgrade_req + 8];
    memcpy(buf, upgrade_req, sizeof upgrade_req - 1);
    memcpy(buf + sizeof upgrade_req - 1, "\x81\x85xxxx", 7);
    struct http_request req;
    ck_assert_int_eq(http_request_parse(buf, sizeof upgrade_req - 1 + 7, MAX_HEAD, &req),
                     (int)sizeof upgrade_req - 1);
}
END_TEST

START_TEST(bare_lf_and_leading_empty_lines)
{
    struct http_request req;
    const char *s = "\r\n\nGET / HTTP/1.1\nHost: a\r\nX: y\n\n";
    ck_assert_int_eq(parse(s, &req), (int)strlen(s));
    ck_assert(str_eq(req.target, "/"));
    ck_assert_uint_eq(req.num_headers, 2);
    ck_assert(str_eq(req.headers[1].value, "y"));
}
END_TEST

START_TEST(http10_needs_no_host)
{
    struct http_request req;
    ck_assert_int_gt(parse("GET /healthz HTTP/1.0\r\n\r\n", &req), 0);
    ck_assert_int_eq(req.minor_version, 0);
    ck_assert_int_gt(parse("GET / HTTP/1.9\r\nHost: h\r\n\r\n", &req), 0);
    ck_assert_int_eq(req.minor_version, 9);
}
END_TEST

struct sample {
    const char *s;
    size_t      len;
};

#define M(lit) { lit, sizeof lit - 1 }

static const struct sample malformed[] = {
    M("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),           /* two spaces */
    M("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),           /* trailing space */
    M(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"),           /* leading space */
    M("GET /\r\nHost: a\r\n\r\n"),                      /* no version */
    M("GET / \r\nHost: a\r\n\r\n"),                     /* empty version */
    M("GET\r\n\r\n"),                                   /* no target */
    M("GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
    M("GET / HTTP/0.9\r\nHost: a\r\n\r\n"),
    M("GET / HTTP/1.x\r\nHost: a\r\n\r\n"),
    M("GET / http/1.1\r\nHost: a\r\n\r\n"),
    M("GET / HTTP/1.11\r\nHost: a\r\n\r\n"),
    M("GET /a\x01z HTTP/1.1\r\nHost: a\r\n\r\n"),       /* control char in target */
    M("GET /a\x7fz HTTP/1.1\r\nHost: a\r\n\r\n"),
    M("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"),     /* non-ASCII target */
    M("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    M("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"),             /* not a token */
    M("G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n"),
    M("GET / HTTP/1.1\rHost: a\r\n\r\n"),               /* bare CR */
    M("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"),
    M("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),            /* space before colon */
    M("GET / HTTP/1.1\r\nHost a\r\n\r\n"),              /* no colon */
    M("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"),      /* empty name */
    M("GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"),
    M("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  folded\r\n\r\n"),   /* obs-fold */
    M("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"),            /* whitespace before first field */
    M("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n"),        /* control char in value */
    M("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"),
    M("GET / HTTP/1.1\r\n\r\n"),                         /* HTTP/1.1 without Host */
    M("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),   /* two Hosts */
    M("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"),
};

START_TEST(malformed_is_bad)
{
    struct http_request req;
    ck_assert_msg(http_request_parse(malformed[_i].s, malformed[_i].len, MAX_HEAD, &req)
                      == HTTP_PARSE_BAD,
                  "case %d accepted: %s", _i, malformed[_i].s);
}
END_TEST

/* Every prefix of a malformed head is either still INCOMPLETE or already
 * BAD, and once BAD stays BAD. */
START_TEST(malformed_prefixes_never_succeed)
{
    struct http_request req;
    bool bad = false;
    for (size_t k = 0; k <= malformed[_i].len; k++) {
        int rc = http_request_parse(malformed[_i].s, k, MAX_HEAD, &req);
        ck_assert_msg(rc == HTTP_PARSE_INCOMPLETE || rc == HTTP_PARSE_BAD,
                      "case %d prefix %zu gave %d", _i, k, rc);
        ck_assert_msg(!bad || rc == HTTP_PARSE_BAD, "case %d recovered at %zu", _i, k);
        bad = rc == HTTP_PARSE_BAD;
    }
}
END_TEST

START_TEST(errors_reported_before_head_ends)
{
    struct http_request req;
    ck_assert_int_eq(http_request_parse("G(", 2, MAX_HEAD, &req), HTTP_PARSE_BAD);
    ck_assert_int_eq(http_request_parse("\x16\x03\x01", 3, MAX_HEAD, &req), HTTP_PARSE_BAD);
    ck_assert_int_eq(http_request_parse("GET / HTTP/2", 12, MAX_HEAD, &req), HTTP_PARSE_BAD);
}
END_TEST

/* The input ends right before an inaccessible page, so any read past the
 * length given crashes the test. */
START_TEST(every_split_point_at_a_guard_page)
{
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(mem, MAP_FAILED);
    ck_assert_int_eq(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    size_t n = strlen(upgrade_req);
    struct http_request req;
    for (size_t k = 0; k <= n; k++) {
        char *at = mem + page - k;
        memcpy(at, upgrade_req, k);
        int rc = http_request_parse(at, k, MAX_HEAD, &req);
        if (k < n)
            ck_assert_msg(rc == HTTP_PARSE_INCOMPLETE, "prefix %zu gave %d", k, rc);
        else
            ck_assert_int_eq(rc, (int)n);
    }
    ck_assert(str_eq(req.headers[2].value, "keep-alive, Upgrade"));
    munmap(mem, (size_t)page * 2);
}
END_TEST

/* A request whose head is exactly `total` bytes long. */
static char *sized_request(size_t total)
{
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
    static const char post[] = "\r\n\r\n";
    size_t fixed = sizeof pre - 1 + sizeof post - 1;
    ck_assert_uint_gt(total, fixed);
    char *s = malloc(total + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, pre, sizeof pre - 1);
    memset(s + sizeof pre - 1, 'p', total - fixed);
    memcpy(s + total - (sizeof post - 1), post, sizeof post);
    return s;
}

START_TEST(head_at_the_limit)
{
    struct http_request req;
    char *s = sized_request(MAX_HEAD);
    ck_assert_int_eq(http_request_parse(s, MAX_HEAD, MAX_HEAD, &req), MAX_HEAD);
    free(s);
    s = sized_request(MAX_HEAD + 1);
    /* Known too large once the limit is reached, before the head ends. */
    ck_assert_int_eq(http_request_parse(s, MAX_HEAD - 1, MAX_HEAD, &req), HTTP_PARSE_INCOMPLETE);
    ck_assert_int_eq(http_request_parse(s, MAX_HEAD, MAX_HEAD, &req), HTTP_PARSE_TOO_LARGE);
    ck_assert_int_eq(http_request_parse(s, MAX_HEAD + 1, MAX_HEAD, &req), HTTP_PARSE_TOO_LARGE);
    free(s);
}
END_TEST

START_TEST(endless_header_is_too_large)
{
    size_t n = 20000;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    memcpy(s, "GET / HTTP/1.1\r\nX: ", 19);
    memset(s + 19, 'a', n - 19);
    struct http_request req;
    ck_assert_int_eq(http_request_parse(s, n, MAX_HEAD, &req), HTTP_PARSE_TOO_LARGE);
    ck_assert_int_eq(http_request_parse(s, 4000, MAX_HEAD, &req), HTTP_PARSE_INCOMPLETE);
    free(s);
}
END_TEST

static int parse_with_headers(int count, struct http_request *req)
{
    static char buf[8192];
    int off = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < count; i++)
        off += snprintf(buf + off, sizeof buf - (size_t)off, "X-%d: v\r\n", i);
    off += snprintf(buf + off, sizeof buf - (size_t)off, "\r\n");
    return http_request_parse(buf, (size_t)off, MAX_HEAD, req);
}

START_TEST(header_count_limit)
{
    struct http_request req;
    ck_assert_int_gt(parse_with_headers(HTTP_MAX_HEADERS, &req), 0);
    ck_assert_uint_eq(req.num_headers, HTTP_MAX_HEADERS);
    ck_assert_int_eq(parse_with_headers(HTTP_MAX_HEADERS + 1, &req), HTTP_PARSE_TOO_LARGE);
}
END_TEST

START_TEST(token_lists)
{
    struct http_str v;
    v.p = "keep-alive,Upgrade "; v.len = strlen(v.p);
    ck_assert(http_list_has_token(v, "upgrade"));
    ck_assert(http_list_has_token(v, "Keep-Alive"));
    ck_assert(!http_list_has_token(v, "upgrad"));
    v.p = "Upgradex, , close"; v.len = strlen(v.p);
    ck_assert(!http_list_has_token(v, "upgrade"));
    ck_assert(http_list_has_token(v, "close"));
    v.p = ""; v.len = 0;
    ck_assert(!http_list_has_token(v, "upgrade"));
    v.p = NULL; v.len = 0;
    ck_assert(!http_list_has_token(v, "upgrade"));

    /* The field may be split over several lines. */
    struct http_request req;
    ck_assert_int_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n"
                           "Connection: Upgrade\r\n\r\n", &req), 0);
    ck_assert(http_headers_have_token(req.headers, req.num_headers, "connection", "upgrade"));
    ck_assert_uint_eq(http_count_headers(req.headers, req.num_headers, "Connection"), 2);
}
END_TEST

START_TEST(target_and_query)
{
    struct http_request req;
    struct http_str path, query, v;
    ck_assert_int_gt(parse(upgrade_req, &req), 0);
    http_target_split(req.target, &path, &query);
    ck_assert(str_eq(path, "/run/echo"));
    ck_assert(str_eq(query, "token=s3cr%2Bt&x=1"));
    ck_assert(http_query_param(query, "token", &v));
    ck_assert(str_eq(v, "s3cr%2Bt"));
    char out[32];
    ssize_t n = http_percent_decode(v.p, v.len, out, sizeof out, true);
    ck_assert_int_eq(n, 6);
    ck_assert(memcmp(out, "s3cr+t", 6) == 0);
    ck_assert(http_query_param(query, "x", &v));
    ck_assert(str_eq(v, "1"));
    ck_assert(!http_query_param(query, "tok", &v));

    struct http_str t = { "/jobs", 5 };
    http_target_split(t, &path, &query);
    ck_assert(str_eq(path, "/jobs"));
    ck_assert_uint_eq(query.len, 0);
    ck_assert(!http_query_param(query, "token", &v));

    t.p = "/a?%74oken=x+y&flag&empty=&&token=second";
    t.len = strlen(t.p);
    http_target_split(t, &path, &query);
    ck_assert(http_query_param(query, "token", &v));   /* key decoded */
    ck_assert(str_eq(v, "x+y"));
    ck_assert(http_query_param(query, "flag", &v));
    ck_assert_uint_eq(v.len, 0);
    ck_assert(http_query_param(query, "empty", &v));
    ck_assert_uint_eq(v.len, 0);

    t.p = "/?";
    t.len = 2;
    http_target_split(t, &path, &query);
    ck_assert(str_eq(path, "/"));
    ck_assert_uint_eq(query.len, 0);
}
END_TEST

START_TEST(percent_decoding)
{
    char out[16];
    ck_assert_int_eq(http_percent_decode("%41%62+c", 8, out, sizeof out, true), 4);
    ck_assert(memcmp(out, "Ab c", 4) == 0);
    ck_assert_int_eq(http_percent_decode("%41%62+c", 8, out, sizeof out, false), 4);
    ck_assert(memcmp(out, "Ab+c", 4) == 0);
    ck_assert_int_eq(http_percent_decode("%4", 2, out, sizeof out, false), -1);
    ck_assert_int_eq(http_percent_decode("a%zz", 4, out, sizeof out, false), -1);
    ck_assert_int_eq(http_percent_decode("%00", 3, out, sizeof out, false), 1);
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(http_percent_decode("abcd", 4, out, 3, false), -1);
    char inplace[] = "a%2Fb%2fc";
    ck_assert_int_eq(http_percent_decode(inplace, 9, inplace, 9, false), 5);
    ck_assert(memcmp(inplace, "a/b/c", 5) == 0);
}
END_TEST

START_TEST(response_heads)
{
    struct http_response resp;
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    ck_assert_int_eq(http_response_parse(ok, strlen(ok), MAX_HEAD, &resp), (int)strlen(ok));
    ck_assert_int_eq(resp.status, 101);
    ck_assert(str_eq(resp.reason, "Switching Protocols"));
    ck_assert_uint_eq(resp.num_headers, 1);
    const char *bare = "HTTP/1.1 404\r\n\r\n";
    ck_assert_int_eq(http_response_parse(bare, strlen(bare), MAX_HEAD, &resp), (int)strlen(bare));
    ck_assert_int_eq(resp.status, 404);
    ck_assert_uint_eq(resp.reason.len, 0);
    for (size_t k = 0; k < strlen(ok); k++)
        ck_assert_int_eq(http_response_parse(ok, k, MAX_HEAD, &resp), HTTP_PARSE_INCOMPLETE);
    ck_assert_int_eq(http_response_parse("HTTP/1.1 1x1 OK\r\n\r\n", 19, MAX_HEAD, &resp),
                     HTTP_PARSE_BAD);
    ck_assert_int_eq(http_response_parse("HTTP/1.1 099 OK\r\n\r\n", 19, MAX_HEAD, &resp),
                     HTTP_PARSE_BAD);
    ck_assert_int_eq(http_response_parse("HTTP/2 200 OK\r\n\r\n", 17, MAX_HEAD, &resp),
                     HTTP_PARSE_BAD);
    ck_assert_int_eq(http_response_parse("HTTP/1.1 2000 OK\r\n\r\n", 21, MAX_HEAD, &resp),
                     HTTP_PARSE_BAD);
    ck_assert_int_eq(http_response_parse("HTTP/1.1 200", 12, MAX_HEAD, &resp),
                     HTTP_PARSE_INCOMPLETE);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http_request");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, parses_websocket_upgrade);
    tcase_add_test(tc, stops_at_end_of_head);
    tcase_add_test(tc, bare_lf_and_leading_empty_lines);
    tcase_add_test(tc, http10_needs_no_host);
    tcase_add_loop_test(tc, malformed_is_bad, 0, (int)(sizeof malformed / sizeof *malformed));
    tcase_add_loop_test(tc, malformed_prefixes_never_succeed, 0,
                        (int)(sizeof malformed / sizeof *malformed));
    tcase_add_test(tc, errors_reported_before_head_ends);
    tcase_add_test(tc, every_split_point_at_a_guard_page);
    tcase_add_test(tc, head_at_the_limit);
    tcase_add_test(tc, endless_header_is_too_large);
    tcase_add_test(tc, header_count_limit);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("helpers");
    tcase_add_test(th, token_lists);
    tcase_add_test(th, target_and_query);
    tcase_add_test(th, percent_decoding);
    tcase_add_test(th, response_heads);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
