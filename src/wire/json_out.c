/* json_out.c — see json_out.h. */
#include "wire/json_out.h"

#include <mbedtls/base64.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct jout *j, size_t more)
{
    if (j->oom)
        return -1;
    if (j->len + more + 1 <= j->cap)
        return 0;
    size_t cap = j->cap ? j->cap : 256;
    while (cap < j->len + more + 1)
        cap *= 2;
    char *p = realloc(j->p, cap);
    if (!p) {
        j->oom = 1;
        return -1;
    }
    j->p = p;
    j->cap = cap;
    return 0;
}

void jout_reset(struct jout *j)
{
    j->len = 0;
    j->oom = 0;
    if (j->p)
        j->p[0] = 0;
}

void jout_free(struct jout *j)
{
    free(j->p);
    *j = (struct jout){ 0 };
}

void jout_raw(struct jout *j, const char *s, size_t n)
{
    if (reserve(j, n) < 0)
        return;
    memcpy(j->p + j->len, s, n);
    j->len += n;
    j->p[j->len] = 0;
}

/* RFC 8259 §7: '"', '\\' and control characters must be escaped; everything
 * else, including valid multi-byte UTF-8, may go through as is. */
size_t json_quote(char *dst, const void *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = src;
    char *d = dst;
    *d++ = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (i > run)
            memcpy(d, s + run, i - run);
        d += i - run;
        run = i + 1;
        *d++ = '\\';
        switch (c) {
        case '"':  *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '\n': *d++ = 'n'; break;
        case '\r': *d++ = 'r'; break;
        case '\t': *d++ = 't'; break;
        default:
            memcpy(d, "u00", 3);
            d[3] = hex[c >> 4];
            d[4] = hex[c & 15];
            d += 5;
        }
    }
    if (n > run)
        memcpy(d, s + run, n - run);
    d += n - run;
    *d++ = '"';
    return (size_t)(d - dst);
}

void jout_str(struct jout *j, const void *src, size_t n)
{
    if (reserve(j, jout_str_size(src, n)) < 0)
        return;
    j->len += json_quote(j->p + j->len, src, n);
    j->p[j->len] = 0;
}

size_t jout_str_size(const void *src, size_t n)
{
    const unsigned char *s = src;
    size_t size = n + 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        /* The same choice as jout_str: two-byte escapes, else \u00XX. */
        size += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 1 : 5;
    }
    return size;
}

size_t jout_b64_size(size_t n)
{
    return 4 * ((n + 2) / 3) + 2;
}

void jout_b64(struct jout *j, const void *s, size_t n)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    if (reserve(j, need + 2) < 0)
        return;
    j->p[j->len++] = '"';
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)j->p + j->len, j->cap - j->len, &olen, s, n) != 0) {
        j->oom = 1;
        return;
    }
    j->len += olen;
    jout_raw(j, "\"", 1);
}

/* By hand: snprintf's format machinery was a fifth of the front's work
 * per job (two numbers in every done event). */
void jout_u64(struct jout *j, uint64_t v)
{
    char buf[20];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jout_raw(j, buf + i, sizeof buf - i);
}
