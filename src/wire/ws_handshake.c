/* ws_handshake.c — RFC 6455 §4 opening handshake; see ws_handshake.h. */
#include "wire/ws_handshake.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <mbedtls/version.h>

/* RFC 6455 §1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int sha1(const unsigned char *in, size_t n, unsigned char out[20])
{
#if MBEDTLS_VERSION_MAJOR >= 3
    return mbedtls_sha1(in, n, out);
#else
    return mbedtls_sha1_ret(in, n, out);
#endif
}

int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char buf[128];
    unsigned char digest[20];
    size_t guid_len = sizeof ws_guid - 1, olen = 0;
    if (key_len > sizeof buf - guid_len)
        return -1;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, ws_guid, guid_len);
    if (sha1(buf, key_len + guid_len, digest))
        return -1;
    if (mbedtls_base64_encode((unsigned char *)out, WS_ACCEPT_LEN + 1, &olen,
                              digest, sizeof digest) || olen != WS_ACCEPT_LEN)
        return -1;
    return 0;
}

static bool is_base64_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* §4.2.1 5: "when decoded, is 16 bytes in length": 22 characters and "==". */
static bool key_valid(struct http_str key)
{
    unsigned char raw[18];
    size_t olen = 0;
    if (key.len != WS_KEY_LEN || key.p[22] != '=' || key.p[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char(key.p[i]))
            return false;
    if (mbedtls_base64_decode(raw, sizeof raw, &olen, (const unsigned char *)key.p, key.len))
        return false;
    return olen == 16;
}

static bool str_is(struct http_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static const char *pick_protocol(const struct http_request *req, const char *const *protocols)
{
    for (; protocols && *protocols; protocols++)
        if (http_headers_have_token(req->headers, req->num_headers,
                                    "sec-websocket-protocol", *protocols))
            return *protocols;
    return NULL;
}

enum ws_handshake_status ws_handshake_check(const struct http_request *req,
                                            const char *const *protocols,
                                            struct ws_upgrade *up)
{
    const struct http_header *h = req->headers;
    size_t n = req->num_headers;
    if (!str_is(req->method, "GET"))
        return WS_HS_BAD_METHOD;
    if (!http_headers_have_token(h, n, "upgrade", "websocket"))
        return WS_HS_NOT_WEBSOCKET;
    if (req->minor_version < 1 || !http_find_header(h, n, "host") ||
        !http_headers_have_token(h, n, "connection", "upgrade"))
        return WS_HS_BAD_REQUEST;
    const struct http_str *version = http_find_header(h, n, "sec-websocket-version");
    if (!version || http_count_headers(h, n, "sec-websocket-version") != 1 ||
        !str_is(*version, "13"))
        return WS_HS_BAD_VERSION;
    const struct http_str *key = http_find_header(h, n, "sec-websocket-key");
    if (!key || http_count_headers(h, n, "sec-websocket-key") != 1 || !key_valid(*key))
        return WS_HS_BAD_REQUEST;
    up->key = *key;
    up->protocol = pick_protocol(req, protocols);
    return WS_HS_OK;
}

static int fitted(int n, size_t cap)
{
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

int ws_handshake_response(const struct ws_upgrade *up, char *out, size_t cap)
{
    char accept[WS_ACCEPT_LEN + 1];
    if (ws_accept_key(up->key.p, up->key.len, accept))
        return -1;
    bool proto = up->protocol != NULL;
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%s%s"
                     "\r\n",
                     accept,
                     proto ? "Sec-WebSocket-Protocol: " : "",
                     proto ? up->protocol : "",
                     proto ? "\r\n" : "");
    return fitted(n, cap);
}

int ws_handshake_error_response(enum ws_handshake_status st, char *out, size_t cap)
{
    const char *status, *headers, *body;
    switch (st) {
    case WS_HS_BAD_METHOD:
        status = "405 Method Not Allowed";
        headers = "Allow: GET\r\n";
        body = "method not allowed\n";
        break;
    case WS_HS_NOT_WEBSOCKET:
    case WS_HS_BAD_VERSION:
        /* RFC 9110 §15.5.22: a 426 names the protocol in Upgrade, which
         * must then be listed in Connection; RFC 6455 §4.4 adds the
         * version the server speaks. */
        status = "426 Upgrade Required";
        headers = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
        body = "WebSocket version 13 required\n";
        break;
    case WS_HS_BAD_REQUEST:
        status = "400 Bad Request";
        headers = "";
        body = "bad WebSocket handshake\n";
        break;
    default:
        return -1;
    }
    int n = snprintf(out, cap,
                     "HTTP/1.1 %s\r\n%s"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: %sclose\r\n"
                     "\r\n%s",
                     status, headers, strlen(body),
                     st == WS_HS_NOT_WEBSOCKET || st == WS_HS_BAD_VERSION ? "Upgrade, " : "",
                     body);
    return fitted(n, cap);
}

/* ---- client side ---- */

int ws_client_key_init(struct ws_client_key *k, const uint8_t nonce[16])
{
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)k->key, sizeof k->key, &olen, nonce, 16) ||
        olen != WS_KEY_LEN)
        return -1;
    return ws_accept_key(k->key, WS_KEY_LEN, k->accept);
}

static bool has_control_char(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int ws_client_request(char *out, size_t cap, const char *host, const char *target,
                      const struct ws_client_key *k, const char *protocols,
                      const char *extra)
{
    if (has_control_char(host) || has_control_char(target) || has_control_char(protocols))
        return -1;
    bool proto = protocols && *protocols;
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s%s"
                     "\r\n",
                     target, host, k->key,
                     proto ? "Sec-WebSocket-Protocol: " : "",
                     proto ? protocols : "",
                     proto ? "\r\n" : "",
                     extra ? extra : "");
    return fitted(n, cap);
}

/* §4.1: a subprotocol in the answer must be one value the client offered. */
static bool protocol_ok(const struct http_response *resp, const char *offered,
                        struct http_str *chosen)
{
    const struct http_str *p = http_find_header(resp->headers, resp->num_headers,
                                                "sec-websocket-protocol");
    chosen->p = "";
    chosen->len = 0;
    if (!p)
        return true;
    if (http_count_headers(resp->headers, resp->num_headers, "sec-websocket-protocol") != 1 ||
        !offered || p->len == 0 || memchr(p->p, ',', p->len))
        return false;
    char value[128];
    if (p->len >= sizeof value)
        return false;
    memcpy(value, p->p, p->len);
    value[p->len] = '\0';
    struct http_str list = { offered, strlen(offered) };
    if (!http_list_has_token(list, value))
        return false;
    *chosen = *p;
    return true;
}

int ws_client_verify(const char *buf, size_t len, const struct ws_client_key *k,
                     const char *protocols, int *status, struct http_str *protocol)
{
    struct http_response resp;
    struct http_str chosen;
    int n = http_response_parse(buf, len, WS_CLIENT_MAX_RESPONSE, &resp);
    if (n < 0)
        return n;
    if (status)
        *status = resp.status;
    if (resp.status != 101)
        return WS_CLIENT_REFUSED;
    const struct http_header *h = resp.headers;
    size_t nh = resp.num_headers;
    if (resp.minor_version < 1 || !http_headers_have_token(h, nh, "upgrade", "websocket") ||
        !http_headers_have_token(h, nh, "connection", "upgrade"))
        return WS_CLIENT_BAD_UPGRADE;
    const struct http_str *accept = http_find_header(h, nh, "sec-websocket-accept");
    if (!accept || http_count_headers(h, nh, "sec-websocket-accept") != 1 ||
        accept->len != WS_ACCEPT_LEN || memcmp(accept->p, k->accept, WS_ACCEPT_LEN) != 0)
        return WS_CLIENT_BAD_ACCEPT;
    /* No extension is ever offered, so any in the answer is a failure. */
    if (http_find_header(h, nh, "sec-websocket-extensions") || !protocol_ok(&resp, protocols, &chosen))
        return WS_CLIENT_BAD_NEGOTIATION;
    if (protocol)
        *protocol = chosen;
    return n;
}
