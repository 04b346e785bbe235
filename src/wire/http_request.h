/* http_request.h — HTTP/1.1 message-head parser (RFC 9112), stateless and
 * zero-copy: every string is a pointer into the caller's buffer plus a length,
 * valid while that buffer is.  Call it again with more bytes when it says
 * HTTP_PARSE_INCOMPLETE; it keeps nothing between calls.
 *
 * What it accepts, and why:
 *  - Lines end in CRLF or a bare LF (RFC 9112 §2.2 lets a recipient accept a
 *    bare LF).  A CR not followed by LF is an error (§2.2).
 *  - Empty lines before the request line are skipped (§2.2, SHOULD).
 *  - Request line: token SP request-target SP "HTTP/1." DIGIT, single spaces,
 *    target of visible ASCII only.  HTTP/2.0, HTTP/0.9, a missing version
 *    and any control character are HTTP_PARSE_BAD.
 *  - Header lines: token ":" OWS value OWS.  Whitespace before the colon
 *    (§5.1, MUST reject), obs-fold continuation lines (§5.2: we reject with
 *    400, which the RFC allows) and control characters other than HTAB in a
 *    value are HTTP_PARSE_BAD.  Values may hold obs-text (bytes >= 0x80).
 *  - More than HTTP_MAX_HEADERS header lines is HTTP_PARSE_TOO_LARGE (431:
 *    "too many fields" is the case RFC 6585 §5 names).
 *  - Requests only: an HTTP/1.1 request without Host, or any request with
 *    two Host lines, is HTTP_PARSE_BAD (RFC 9112 §3.2, MUST).
 *  - Message bodies are not parsed: the head is all wsjobd reads.  A caller
 *    that gets a request announcing a body (Transfer-Encoding, or a
 *    Content-Length other than 0) answers it and closes the connection
 *    rather than skipping the body (front/conn.c, announces_body). */
#ifndef WSJOBD_HTTP_REQUEST_H
#define WSJOBD_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HTTP_MAX_HEADERS 64

/* Parse results other than a head length (> 0). */
#define HTTP_PARSE_INCOMPLETE (-1)  /* need more bytes */
#define HTTP_PARSE_BAD        (-2)  /* malformed: answer 400 and close */
#define HTTP_PARSE_TOO_LARGE  (-3)  /* head over the limit: answer 431 */

struct http_str {
    const char *p;      /* into the parsed buffer, even when len == 0; not
                         * NUL-terminated */
    size_t      len;
};

struct http_header {
    struct http_str name;   /* a token, case as sent */
    struct http_str value;  /* leading and trailing OWS removed */
};

struct http_request {
    struct http_str method;
    struct http_str target;        /* request-target as sent: path?query */
    int             minor_version; /* HTTP/1.x */
    size_t          num_headers;
    struct http_header headers[HTTP_MAX_HEADERS];
};

struct http_response {
    int             minor_version;
    int             status;        /* 100..999 */
    struct http_str reason;
    size_t          num_headers;
    struct http_header headers[HTTP_MAX_HEADERS];
};

/* Parses a request head in buf[0..len).  Returns the head's length in bytes,
 * through the empty line, or one of HTTP_PARSE_*.  A head longer than
 * max_header_bytes (or than INT_MAX) is HTTP_PARSE_TOO_LARGE, reported as
 * soon as len reaches the limit without the head ending, so a caller never
 * buffers more than max_header_bytes.  A syntax error within the bytes seen
 * is reported at once, before the head is complete.
 *
 * Each call reads from the start, so a client sending one byte at a time
 * costs O(n^2) over the head.  A caller bounds that by calling again only
 * when the new bytes hold a LF (a head can only end at one) or when len has
 * reached the limit; errors are then found at the end of their line. */
int http_request_parse(const char *buf, size_t len, size_t max_header_bytes,
                       struct http_request *req);

/* The same for a response head ("HTTP/1.1 101 Switching Protocols"). */
int http_response_parse(const char *buf, size_t len, size_t max_header_bytes,
                        struct http_response *resp);

/* First header named `name` (ASCII case-insensitive), or NULL. */
const struct http_str *http_find_header(const struct http_header *h, size_t n,
                                        const char *name);

/* How many header lines are named `name`. */
size_t http_count_headers(const struct http_header *h, size_t n, const char *name);

/* True when the comma-separated list `value` holds `token` (ASCII case-
 * insensitive, OWS around elements ignored): "keep-alive, Upgrade". */
bool http_list_has_token(struct http_str value, const char *token);

/* True when any header named `name` lists `token` (a field may repeat, and
 * repeated lines form one list: RFC 9110 §5.3). */
bool http_headers_have_token(const struct http_header *h, size_t n,
                             const char *name, const char *token);

/* Splits a request-target at the first '?'.  query excludes the '?' and is
 * empty when there is none. */
void http_target_split(struct http_str target, struct http_str *path,
                       struct http_str *query);

/* Finds parameter `name` in a query string (a=1&b=2; keys compared after
 * percent-decoding, '+' read as space).  On success *raw_value is the value
 * as sent, still encoded: decode it with http_percent_decode. */
bool http_query_param(struct http_str query, const char *name,
                      struct http_str *raw_value);

/* Percent-decodes in[0..n) into out (at most cap bytes; out may equal in, as
 * decoding never grows).  With plus_is_space, '+' becomes ' ' (form
 * encoding, as in query strings).  Returns the decoded length, or -1 for a
 * malformed %-escape or when out is too small. */
ssize_t http_percent_decode(const char *in, size_t n, char *out, size_t cap,
                            bool plus_is_space);

#endif
