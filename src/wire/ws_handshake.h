/* ws_handshake.h — the RFC 6455 §4 opening handshake, both sides.
 *
 * Server: ws_handshake_check() judges a parsed request (§4.2.1),
 * ws_handshake_response() writes the 101 answer (§4.2.2), and
 * ws_handshake_error_response() the 400 / 405 / 426 answers.
 * Client (the wsjob CLI): ws_client_key_init(), ws_client_request() and
 * ws_client_verify() (§4.1).  Pure: the caller supplies the random nonce. */
#ifndef WSJOBD_WS_HANDSHAKE_H
#define WSJOBD_WS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "wire/http_request.h"

#define WS_KEY_LEN    24   /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28   /* base64 of a SHA-1 digest */

enum ws_handshake_status {
    WS_HS_OK = 0,
    WS_HS_BAD_METHOD,     /* not GET: 405 */
    WS_HS_NOT_WEBSOCKET,  /* no "Upgrade: websocket": 426 on a WebSocket-only path */
    WS_HS_BAD_REQUEST,    /* HTTP/1.0, no Host, no "Connection: Upgrade", bad key: 400 */
    WS_HS_BAD_VERSION,    /* Sec-WebSocket-Version missing or not 13: 426 (§4.4) */
};

struct ws_upgrade {
    struct http_str key;       /* Sec-WebSocket-Key, into the request buffer */
    const char     *protocol;  /* the subprotocol chosen, from the server's
                                * list, or NULL: then no header is sent */
};

/* Judges a WebSocket upgrade request.  protocols is the server's supported
 * subprotocols in order of preference, NULL-terminated, or NULL for none;
 * the first one the client also offered is chosen.  Fills *up on WS_HS_OK. */
enum ws_handshake_status ws_handshake_check(const struct http_request *req,
                                            const char *const *protocols,
                                            struct ws_upgrade *up);

/* Writes the "101 Switching Protocols" head.  Returns its length, or -1 when
 * cap is too small (256 bytes is always enough with a short subprotocol). */
int ws_handshake_response(const struct ws_upgrade *up, char *out, size_t cap);

/* Writes a whole error response for a status other than WS_HS_OK, with
 * "Connection: close".  Returns its length, or -1 when cap is too small
 * (256 bytes is always enough). */
int ws_handshake_error_response(enum ws_handshake_status st, char *out, size_t cap);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)) (§4.2.2 5.4).
 * Writes WS_ACCEPT_LEN characters and a NUL.  Returns 0, or -1. */
int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

/* ---- client side ---- */

struct ws_client_key {
    char key[WS_KEY_LEN + 1];        /* the Sec-WebSocket-Key sent */
    char accept[WS_ACCEPT_LEN + 1];  /* the Sec-WebSocket-Accept expected */
};

/* Makes a key from 16 bytes the caller drew from a good random source
 * (§4.1: "randomly selected", fresh for each connection).  0, or -1. */
int ws_client_key_init(struct ws_client_key *k, const uint8_t nonce[16]);

/* Writes a GET upgrade request.  host is the Host value ("h:8080"), target
 * the request-target ("/run/echo?token=x"), protocols a comma-separated
 * offer or NULL, extra more header lines each ending in CRLF, or NULL.
 * Returns the length, or -1 when cap is too small or host, target or
 * protocols hold a control character. */
int ws_client_request(char *out, size_t cap, const char *host, const char *target,
                      const struct ws_client_key *k, const char *protocols,
                      const char *extra);

#define WS_CLIENT_MAX_RESPONSE   16384
#define WS_CLIENT_REFUSED        (-10)  /* status is not 101: *status says which */
#define WS_CLIENT_BAD_UPGRADE    (-11)  /* no Upgrade: websocket / Connection: Upgrade */
#define WS_CLIENT_BAD_ACCEPT     (-12)  /* Sec-WebSocket-Accept missing or wrong */
#define WS_CLIENT_BAD_NEGOTIATION (-13) /* an extension, or a subprotocol not offered */

/* Checks the server's answer to ws_client_request() (§4.1, "the client MUST
 * validate the server's response").  Returns the length of the response
 * head (frames may follow it in buf), one of HTTP_PARSE_*, or one of
 * WS_CLIENT_*.  *status (if not NULL) gets the status code once the status
 * line is read; *protocol (if not NULL) the subprotocol chosen, empty if
 * none. */
int ws_client_verify(const char *buf, size_t len, const struct ws_client_key *k,
                     const char *protocols, int *status, struct http_str *protocol);

#endif
