/* json_out.c — see json_out.h. */
#include "wire/json_out.h"

#include <mbedtls/base64.h>
#include <stdio.h>
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

void jout_lit(struct jout *j, const char *s) { jout_raw(j, s, strlen(s)); }

/* RFC 8259 §7: '"', '\\' and control characters must be escaped; everything
 * else, including valid multi-byte UTF-8, may go through as is. */
void jout_str(struct jout *j, const void *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = src;
    if (reserve(j, n + 2) < 0)
        return;
    j->p[j->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jout_raw(j, (const char *)s + run, i - run);
        run = i + 1;
        char esc[6] = { '\\', 0 };
        size_t elen = 2;
        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            elen = 6;
        }
        jout_raw(j, esc, elen);
    }
    jout_raw(j, (const char *)s + run, n - run);
    jout_raw(j, "\"", 1);
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

void jout_u64(struct jout *j, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    jout_raw(j, buf, (size_t)n);
}
