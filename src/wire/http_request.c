/* http_request.c — see http_request.h for what is accepted and why.
 *
 * One pass over the bytes with a cursor; every step returns 0 (done, cursor
 * moved past what it read), HTTP_PARSE_INCOMPLETE (ran out of bytes while
 * everything so far was valid) or HTTP_PARSE_BAD.  Running out of bytes is
 * turned into HTTP_PARSE_TOO_LARGE by the entry points once the caller's
 * buffer has reached the limit, since more bytes could only make it longer. */
#include "wire/http_request.h"

#include <limits.h>
#include <string.h>

struct cursor {
    const char *p;
    const char *end;
};

static bool is_tchar(unsigned char ch)
{
    /* token = 1*tchar (RFC 9110 §5.6.2) */
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* field-vchar, SP and HTAB: what a field value may hold (RFC 9110 §5.5). */
static bool is_value_char(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static unsigned char ascii_lower(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + ('a' - 'A')) : ch;
}

static bool str_ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)lit[i]))
            return false;
    return true;
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* CRLF or a bare LF. */
static int take_eol(struct cursor *c)
{
    if (c->p == c->end)
        return HTTP_PARSE_INCOMPLETE;
    if (*c->p == '\r') {
        c->p++;
        if (c->p == c->end)
            return HTTP_PARSE_INCOMPLETE;
    }
    if (*c->p != '\n')
        return HTTP_PARSE_BAD;
    c->p++;
    return 0;
}

/* Matches a literal byte by byte, so a prefix of it is INCOMPLETE, not BAD. */
static int take_literal(struct cursor *c, const char *lit)
{
    for (; *lit; lit++, c->p++) {
        if (c->p == c->end)
            return HTTP_PARSE_INCOMPLETE;
        if (*c->p != *lit)
            return HTTP_PARSE_BAD;
    }
    return 0;
}

/* A non-empty token ended by `stop`, which is consumed. */
static int take_token(struct cursor *c, char stop, struct http_str *out)
{
    const char *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    if (c->p == c->end)
        return HTTP_PARSE_INCOMPLETE;
    if (*c->p != stop || c->p == start)
        return HTTP_PARSE_BAD;
    out->p = start;
    out->len = (size_t)(c->p - start);
    c->p++;
    return 0;
}

/* "HTTP/1." DIGIT: HTTP/2 never arrives as text, HTTP/0.9 has no headers. */
static int take_version(struct cursor *c, int *minor)
{
    int rc = take_literal(c, "HTTP/1.");
    if (rc)
        return rc;
    if (c->p == c->end)
        return HTTP_PARSE_INCOMPLETE;
    if (*c->p < '0' || *c->p > '9')
        return HTTP_PARSE_BAD;
    *minor = *c->p - '0';
    c->p++;
    return 0;
}

static int skip_empty_lines(struct cursor *c)
{
    while (c->p < c->end && (*c->p == '\r' || *c->p == '\n')) {
        int rc = take_eol(c);
        if (rc)
            return rc;
    }
    return 0;
}

static int take_target(struct cursor *c, struct http_str *out)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p > 0x20 && *c->p < 0x7f)
        c->p++;
    if (c->p == c->end)
        return HTTP_PARSE_INCOMPLETE;
    if (*c->p != ' ' || c->p == start)
        return HTTP_PARSE_BAD;
    out->p = start;
    out->len = (size_t)(c->p - start);
    c->p++;
    return 0;
}

/* name ":" OWS value OWS EOL */
static int take_field(struct cursor *c, struct http_header *h)
{
    int rc = take_token(c, ':', &h->name);
    if (rc)
        return rc;
    while (c->p < c->end && is_ows(*c->p))
        c->p++;
    const char *start = c->p;
    while (c->p < c->end && is_value_char((unsigned char)*c->p))
        c->p++;
    if (c->p == c->end)
        return HTTP_PARSE_INCOMPLETE;
    if (*c->p != '\r' && *c->p != '\n')
        return HTTP_PARSE_BAD;
    const char *stop = c->p;
    while (stop > start && is_ows(stop[-1]))
        stop--;
    h->value.p = start;
    h->value.len = (size_t)(stop - start);
    return take_eol(c);
}

static int take_fields(struct cursor *c, struct http_header *h, size_t *n)
{
    *n = 0;
    for (;;) {
        if (c->p == c->end)
            return HTTP_PARSE_INCOMPLETE;
        if (*c->p == '\r' || *c->p == '\n')
            return take_eol(c);
        /* A line starting with whitespace is obs-fold (RFC 9112 §5.2), or
         * whitespace between the start line and the first field (§2.2):
         * both are rejected rather than guessed at. */
        if (is_ows(*c->p))
            return HTTP_PARSE_BAD;
        if (*n == HTTP_MAX_HEADERS)
            return HTTP_PARSE_TOO_LARGE;
        int rc = take_field(c, &h[*n]);
        if (rc)
            return rc;
        (*n)++;
    }
}

static int take_request_head(struct cursor *c, struct http_request *req)
{
    int rc = skip_empty_lines(c);
    if (!rc)
        rc = take_token(c, ' ', &req->method);
    if (!rc)
        rc = take_target(c, &req->target);
    if (!rc)
        rc = take_version(c, &req->minor_version);
    if (!rc)
        rc = take_eol(c);
    if (!rc)
        rc = take_fields(c, req->headers, &req->num_headers);
    return rc;
}

/* RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one before. */
static int check_host(const struct http_request *req)
{
    size_t hosts = http_count_headers(req->headers, req->num_headers, "host");
    if (hosts > 1 || (hosts == 0 && req->minor_version >= 1))
        return HTTP_PARSE_BAD;
    return 0;
}

/* The head may not be longer than this; the result must fit an int. */
static size_t head_limit(size_t max_header_bytes)
{
    return max_header_bytes < (size_t)INT_MAX ? max_header_bytes : (size_t)INT_MAX;
}

static struct cursor head_cursor(const char *buf, size_t len, size_t max_header_bytes)
{
    size_t limit = head_limit(max_header_bytes);
    struct cursor c = { buf, buf + (len < limit ? len : limit) };
    return c;
}

/* Running out of bytes once the buffer holds `limit` of them can only end in
 * a head longer than the limit. */
static int finish(int rc, const char *buf, const struct cursor *c, size_t len,
                  size_t max_header_bytes)
{
    if (rc == HTTP_PARSE_INCOMPLETE && len >= head_limit(max_header_bytes))
        return HTTP_PARSE_TOO_LARGE;
    if (rc)
        return rc;
    return (int)(c->p - buf);
}

int http_request_parse(const char *buf, size_t len, size_t max_header_bytes,
                       struct http_request *req)
{
    struct cursor c = head_cursor(buf, len, max_header_bytes);
    req->num_headers = 0;
    int rc = take_request_head(&c, req);
    if (!rc)
        rc = check_host(req);
    return finish(rc, buf, &c, len, max_header_bytes);
}

/* status-line = HTTP-version SP 3DIGIT SP [reason-phrase]; the SP before an
 * empty reason is often left out, so it is optional here. */
static int take_status_line(struct cursor *c, struct http_response *resp)
{
    int rc = take_version(c, &resp->minor_version);
    if (!rc)
        rc = take_literal(c, " ");
    if (rc)
        return rc;
    resp->status = 0;
    for (int i = 0; i < 3; i++, c->p++) {
        if (c->p == c->end)
            return HTTP_PARSE_INCOMPLETE;
        if (*c->p < '0' || *c->p > '9')
            return HTTP_PARSE_BAD;
        resp->status = resp->status * 10 + (*c->p - '0');
    }
    if (resp->status < 100)
        return HTTP_PARSE_BAD;
    if (c->p == c->end)
        return HTTP_PARSE_INCOMPLETE;
    if (*c->p == ' ')
        c->p++;
    else if (*c->p != '\r' && *c->p != '\n')
        return HTTP_PARSE_BAD;
    const char *start = c->p;
    while (c->p < c->end && is_value_char((unsigned char)*c->p))
        c->p++;
    resp->reason.p = start;
    resp->reason.len = (size_t)(c->p - start);
    return take_eol(c);
}

int http_response_parse(const char *buf, size_t len, size_t max_header_bytes,
                        struct http_response *resp)
{
    struct cursor c = head_cursor(buf, len, max_header_bytes);
    resp->num_headers = 0;
    int rc = take_status_line(&c, resp);
    if (!rc)
        rc = take_fields(&c, resp->headers, &resp->num_headers);
    return finish(rc, buf, &c, len, max_header_bytes);
}

const struct http_str *http_find_header(const struct http_header *h, size_t n,
                                        const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (str_ieq(h[i].name.p, h[i].name.len, name))
            return &h[i].value;
    return NULL;
}

size_t http_count_headers(const struct http_header *h, size_t n, const char *name)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (str_ieq(h[i].name.p, h[i].name.len, name))
            count++;
    return count;
}

bool http_list_has_token(struct http_str value, const char *token)
{
    if (value.len == 0)
        return false;
    const char *p = value.p, *end = value.p + value.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *a = p, *b = stop;
        while (a < b && is_ows(*a))
            a++;
        while (b > a && is_ows(b[-1]))
            b--;
        if (str_ieq(a, (size_t)(b - a), token))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

bool http_headers_have_token(const struct http_header *h, size_t n,
                             const char *name, const char *token)
{
    for (size_t i = 0; i < n; i++)
        if (str_ieq(h[i].name.p, h[i].name.len, name) && http_list_has_token(h[i].value, token))
            return true;
    return false;
}

void http_target_split(struct http_str target, struct http_str *path,
                       struct http_str *query)
{
    const char *q = target.len ? memchr(target.p, '?', target.len) : NULL;
    *path = target;
    query->p = target.len ? target.p + target.len : target.p;
    query->len = 0;
    if (!q)
        return;
    path->len = (size_t)(q - target.p);
    query->p = q + 1;
    query->len = target.len - path->len - 1;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)ascii_lower((unsigned char)ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Decodes one byte at in[*i]; -1 for a malformed escape. */
static int decode_one(const char *in, size_t n, size_t *i, bool plus_is_space)
{
    char ch = in[*i];
    if (ch == '+' && plus_is_space) {
        (*i)++;
        return ' ';
    }
    if (ch != '%') {
        (*i)++;
        return (unsigned char)ch;
    }
    if (n - *i < 3)
        return -1;
    int hi = hex_value(in[*i + 1]), lo = hex_value(in[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 3;
    return hi * 16 + lo;
}

ssize_t http_percent_decode(const char *in, size_t n, char *out, size_t cap,
                            bool plus_is_space)
{
    size_t i = 0, o = 0;
    while (i < n) {
        int ch = decode_one(in, n, &i, plus_is_space);
        if (ch < 0 || o == cap)
            return -1;
        out[o++] = (char)ch;
    }
    return (ssize_t)o;
}

/* Compares an encoded key with a plain name without a scratch buffer. */
static bool key_equals(const char *key, size_t n, const char *name)
{
    size_t i = 0, j = 0;
    while (i < n) {
        int ch = decode_one(key, n, &i, true);
        if (ch < 0 || name[j] == '\0' || (unsigned char)name[j] != ch)
            return false;
        j++;
    }
    return name[j] == '\0';
}

bool http_query_param(struct http_str query, const char *name,
                      struct http_str *raw_value)
{
    if (query.len == 0)
        return false;
    const char *p = query.p, *end = query.p + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *key_end = eq ? eq : stop;
        if (key_equals(p, (size_t)(key_end - p), name)) {
            raw_value->p = eq ? eq + 1 : stop;
            raw_value->len = (size_t)(stop - raw_value->p);
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}
