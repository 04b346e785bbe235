/* test_ws_handshake.c — the RFC 6455 §4 opening handshake (src/wire/ws_handshake.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/ws_handshake.h"

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static struct http_request req;
static char raw[2048];

/* Parses a request made of the given header lines (each with CRLF). */
static void make_request(const char *request_line, const char *headers)
{
    snprintf(raw, sizeof raw, "%s\r\n%s\r\n", request_line, headers);
    ck_assert_int_gt(http_request_parse(raw, strlen(raw), 8192, &req), 0);
}

#define GOOD_HEADERS \
    "Host: server.example.com\r\n" \
    "Upgrade: websocket\r\n" \
    "Connection: Upgrade\r\n" \
    "Sec-WebSocket-Key: " RFC_KEY "\r\n" \
    "Sec-WebSocket-Version: 13\r\n"

static enum ws_handshake_status check(const char *headers)
{
    struct ws_upgrade up;
    make_request("GET /chat HTTP/1.1", headers);
    return ws_handshake_check(&req, NULL, &up);
}

START_TEST(rfc_example_accept)
{
    char out[WS_ACCEPT_LEN + 1];
    ck_assert_int_eq(ws_accept_key(RFC_KEY, strlen(RFC_KEY), out), 0);
    ck_assert_str_eq(out, RFC_ACCEPT);
}
END_TEST

START_TEST(valid_upgrade_gets_101)
{
    struct ws_upgrade up;
    make_request("GET /chat HTTP/1.1", GOOD_HEADERS);
    ck_assert_int_eq(ws_handshake_check(&req, NULL, &up), WS_HS_OK);
    ck_assert_ptr_null(up.protocol);
    char out[256];
    int n = ws_handshake_response(&up, out, sizeof out);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                          "\r\n");
    ck_assert_int_eq(ws_handshake_response(&up, out, (size_t)n), -1);   /* no room for NUL */
}
END_TEST

START_TEST(names_and_tokens_ignore_case)
{
    ck_assert_int_eq(check("host: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
                           "sec-websocket-key: " RFC_KEY "\r\nSEC-WEBSOCKET-VERSION: 13\r\n"),
                     WS_HS_OK);
}
END_TEST

START_TEST(subprotocol_choice)
{
    static const char *const ours[] = { "superchat", "chat", NULL };
    static const char *const other[] = { "mqtt", NULL };
    struct ws_upgrade up;
    make_request("GET /chat HTTP/1.1", GOOD_HEADERS "Sec-WebSocket-Protocol: chat, superchat\r\n");
    ck_assert_int_eq(ws_handshake_check(&req, ours, &up), WS_HS_OK);
    ck_assert_str_eq(up.protocol, "superchat");
    char out[256];
    ck_assert_int_gt(ws_handshake_response(&up, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Protocol: superchat\r\n"));
    ck_assert_int_eq(ws_handshake_check(&req, other, &up), WS_HS_OK);
    ck_assert_ptr_null(up.protocol);
    ck_assert_int_gt(ws_handshake_response(&up, out, sizeof out), 0);
    ck_assert_ptr_null(strstr(out, "Sec-WebSocket-Protocol"));
}
END_TEST

START_TEST(method_and_version)
{
    struct ws_upgrade up;
    make_request("POST /chat HTTP/1.1", GOOD_HEADERS);
    ck_assert_int_eq(ws_handshake_check(&req, NULL, &up), WS_HS_BAD_METHOD);
    make_request("get /chat HTTP/1.1", GOOD_HEADERS);
    ck_assert_int_eq(ws_handshake_check(&req, NULL, &up), WS_HS_BAD_METHOD);
    make_request("GET /chat HTTP/1.0", GOOD_HEADERS);
    ck_assert_int_eq(ws_handshake_check(&req, NULL, &up), WS_HS_BAD_REQUEST);
}
END_TEST

START_TEST(missing_or_wrong_headers)
{
    ck_assert_int_eq(check("Host: h\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                           "\r\nSec-WebSocket-Version: 13\r\n"), WS_HS_NOT_WEBSOCKET);
    ck_assert_int_eq(check("Host: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"), WS_HS_NOT_WEBSOCKET);
    ck_assert_int_eq(check("Host: h\r\nUpgrade: websocket\r\nSec-WebSocket-Key: " RFC_KEY
                           "\r\nSec-WebSocket-Version: 13\r\n"), WS_HS_BAD_REQUEST);
    ck_assert_int_eq(check("Host: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                           "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n"),
                     WS_HS_BAD_REQUEST);
    ck_assert_int_eq(check("Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\n"), WS_HS_BAD_REQUEST);
}
END_TEST

START_TEST(bad_keys)
{
    static const char *keys[] = {
        "dGhlIHNhbXBsZSBub25jZQ",       /* no padding */
        "dGhlIHNhbXBsZSBub25jZQ=",      /* short */
        "dGhlIHNhbXBsZSBub25jZQ===",    /* long */
        "dGhlIHNhbXBsZSBub25j*Q==",     /* not base64 */
        "dGhlIHNhbXBsZSBub25jZ===",     /* 15 bytes */
        "dGhlIHNhbXBsZSBub25jZSBub25jZQ==",
        "",
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char headers[512];
        snprintf(headers, sizeof headers,
                 "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", keys[i]);
        ck_assert_msg(check(headers) == WS_HS_BAD_REQUEST, "key %s accepted", keys[i]);
    }
    ck_assert_int_eq(check(GOOD_HEADERS "Sec-WebSocket-Key: " RFC_KEY "\r\n"), WS_HS_BAD_REQUEST);
}
END_TEST

START_TEST(version_not_13_is_426)
{
    ck_assert_int_eq(check("Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 8\r\n"),
                     WS_HS_BAD_VERSION);
    ck_assert_int_eq(check("Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: " RFC_KEY "\r\n"), WS_HS_BAD_VERSION);
    ck_assert_int_eq(check(GOOD_HEADERS "Sec-WebSocket-Version: 8\r\n"), WS_HS_BAD_VERSION);

    char out[256];
    int n = ws_handshake_error_response(WS_HS_BAD_VERSION, out, sizeof out);
    ck_assert_int_gt(n, 0);
    struct http_response resp;
    int head = http_response_parse(out, (size_t)n, 8192, &resp);
    ck_assert_int_gt(head, 0);
    ck_assert_int_eq(resp.status, 426);
    const struct http_str *v = http_find_header(resp.headers, resp.num_headers, "sec-websocket-version");
    ck_assert_ptr_nonnull(v);
    ck_assert(v->len == 2 && memcmp(v->p, "13", 2) == 0);
    ck_assert(http_headers_have_token(resp.headers, resp.num_headers, "connection", "upgrade"));
    ck_assert(http_headers_have_token(resp.headers, resp.num_headers, "connection", "close"));
    const struct http_str *cl = http_find_header(resp.headers, resp.num_headers, "content-length");
    ck_assert_ptr_nonnull(cl);
    ck_assert_int_eq(atoi(cl->p), n - head);
}
END_TEST

START_TEST(error_responses)
{
    char out[256];
    struct http_response resp;
    int n = ws_handshake_error_response(WS_HS_BAD_METHOD, out, sizeof out);
    ck_assert_int_gt(http_response_parse(out, (size_t)n, 8192, &resp), 0);
    ck_assert_int_eq(resp.status, 405);
    ck_assert_ptr_nonnull(http_find_header(resp.headers, resp.num_headers, "allow"));
    n = ws_handshake_error_response(WS_HS_BAD_REQUEST, out, sizeof out);
    ck_assert_int_gt(http_response_parse(out, (size_t)n, 8192, &resp), 0);
    ck_assert_int_eq(resp.status, 400);
    ck_assert_int_eq(ws_handshake_error_response(WS_HS_OK, out, sizeof out), -1);
    ck_assert_int_eq(ws_handshake_error_response(WS_HS_BAD_REQUEST, out, 20), -1);
}
END_TEST

/* ---- client side ---- */

static struct ws_client_key ckey;

static void client_setup(void)
{
    ck_assert_int_eq(ws_client_key_init(&ckey, (const uint8_t *)"the sample nonce"), 0);
}

START_TEST(client_key_from_nonce)
{
    ck_assert_str_eq(ckey.key, RFC_KEY);
    ck_assert_str_eq(ckey.accept, RFC_ACCEPT);
}
END_TEST

START_TEST(client_request_is_accepted_by_server_side)
{
    static const char *const ours[] = { "wsjob.v1", NULL };
    char out[512];
    int n = ws_client_request(out, sizeof out, "127.0.0.1:8080", "/run/echo?token=t",
                              &ckey, "wsjob.v1", "Authorization: Bearer t\r\n");
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(http_request_parse(out, (size_t)n, 8192, &req), n);
    struct ws_upgrade up;
    ck_assert_int_eq(ws_handshake_check(&req, ours, &up), WS_HS_OK);
    ck_assert_str_eq(up.protocol, "wsjob.v1");
    ck_assert_ptr_nonnull(http_find_header(req.headers, req.num_headers, "authorization"));

    /* ... and the server's answer satisfies the client. */
    char resp[256];
    int rn = ws_handshake_response(&up, resp, sizeof resp);
    ck_assert_int_gt(rn, 0);
    struct http_str proto;
    int status = 0;
    ck_assert_int_eq(ws_client_verify(resp, (size_t)rn, &ckey, "wsjob.v1", &status, &proto), rn);
    ck_assert_int_eq(status, 101);
    ck_assert(proto.len == 8 && memcmp(proto.p, "wsjob.v1", 8) == 0);

    ck_assert_int_eq(ws_client_request(out, 40, "h", "/", &ckey, NULL, NULL), -1);
    ck_assert_int_eq(ws_client_request(out, sizeof out, "h\r\nX: y", "/", &ckey, NULL, NULL), -1);
    ck_assert_int_eq(ws_client_request(out, sizeof out, "h", "/\n", &ckey, NULL, NULL), -1);
}
END_TEST

#define GOOD_101 \
    "HTTP/1.1 101 Switching Protocols\r\n" \
    "Upgrade: websocket\r\n" \
    "Connection: Upgrade\r\n" \
    "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"

static int verify(const char *resp, const char *offered)
{
    return ws_client_verify(resp, strlen(resp), &ckey, offered, NULL, NULL);
}

START_TEST(client_verifies_response)
{
    const char *ok = GOOD_101 "\r\n\x81\x02hi";
    int n = ws_client_verify(ok, strlen(ok), &ckey, NULL, NULL, NULL);
    ck_assert_int_eq(n, (int)strlen(ok) - 4);   /* the frame after is not part of it */
    for (size_t k = 0; k < (size_t)n; k++)
        ck_assert_int_eq(ws_client_verify(ok, k, &ckey, NULL, NULL, NULL), HTTP_PARSE_INCOMPLETE);

    int status = 0;
    const char *refused = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    ck_assert_int_eq(ws_client_verify(refused, strlen(refused), &ckey, NULL, &status, NULL),
                     WS_CLIENT_REFUSED);
    ck_assert_int_eq(status, 403);

    ck_assert_int_eq(verify("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                            "s3pPLMBiTxaQ9kYGzzhZRbK+xOX=\r\n\r\n", NULL), WS_CLIENT_BAD_ACCEPT);
    ck_assert_int_eq(verify("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n\r\n", NULL), WS_CLIENT_BAD_ACCEPT);
    ck_assert_int_eq(verify("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n", NULL),
                     WS_CLIENT_BAD_UPGRADE);
    ck_assert_int_eq(verify("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n", NULL),
                     WS_CLIENT_BAD_UPGRADE);
    ck_assert_int_eq(verify(GOOD_101 "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", NULL),
                     WS_CLIENT_BAD_NEGOTIATION);
    ck_assert_int_eq(verify(GOOD_101 "Sec-WebSocket-Protocol: chat\r\n\r\n", NULL),
                     WS_CLIENT_BAD_NEGOTIATION);
    ck_assert_int_eq(verify(GOOD_101 "Sec-WebSocket-Protocol: chat\r\n\r\n", "mqtt, xmpp"),
                     WS_CLIENT_BAD_NEGOTIATION);
    ck_assert_int_gt(verify(GOOD_101 "Sec-WebSocket-Protocol: xmpp\r\n\r\n", "mqtt, xmpp"), 0);
    ck_assert_int_eq(verify("HTTP/1.1 101\r\nbroken\r\n\r\n", NULL), HTTP_PARSE_BAD);
}
END_TEST

static Suite *handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");
    TCase *ts = tcase_create("server");
    tcase_add_test(ts, rfc_example_accept);
    tcase_add_test(ts, valid_upgrade_gets_101);
    tcase_add_test(ts, names_and_tokens_ignore_case);
    tcase_add_test(ts, subprotocol_choice);
    tcase_add_test(ts, method_and_version);
    tcase_add_test(ts, missing_or_wrong_headers);
    tcase_add_test(ts, bad_keys);
    tcase_add_test(ts, version_not_13_is_426);
    tcase_add_test(ts, error_responses);
    suite_add_tcase(s, ts);
    TCase *tc = tcase_create("client");
    tcase_add_checked_fixture(tc, client_setup, NULL);
    tcase_add_test(tc, client_key_from_nonce);
    tcase_add_test(tc, client_request_is_accepted_by_server_side);
    tcase_add_test(tc, client_verifies_response);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(handshake_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
