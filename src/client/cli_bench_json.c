/* cli_bench_json.c — just enough JSON reading for the bench to check the
 * server's events without building a tree per reply: the string fields of a
 * flat object, found in place, and their escapes decoded on demand.  Full
 * parsing (jansson) stays in submit and stats, where a reply a second
 * costs nothing. */
#include <stddef.h>
#include <string.h>

#include "client/cli_bench.h"

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p is at a '"'; returns the position after the closing one, or NULL. */
static const char *string_end(const char *p, const char *e, bool *esc)
{
    for (p++; p < e; p++) {
        if (*p == '\\') {
            *esc = true;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* End of the value at p: a string, an object or array (skipped whole), or
 * a scalar, which ends at a delimiter. */
static const char *value_end(const char *p, const char *e)
{
    bool esc = false;
    int depth = 0;
    for (; p < e; p++) {
        char ch = *p;
        if (ch == '"') {
            if (!(p = string_end(p, e, &esc)))
                return NULL;
            if (depth == 0)
                return p;
            p--;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return p;
            if (--depth == 0)
                return p + 1;
        } else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')) {
            return p;
        }
    }
    return depth == 0 ? p : NULL;
}

static void keep(struct bench_reply *r, const char *key, size_t klen, struct bench_span v)
{
    static const struct { const char *name; size_t off; } fields[] = {
        { "id", offsetof(struct bench_reply, id) },
        { "event", offsetof(struct bench_reply, event) },
        { "output", offsetof(struct bench_reply, output) },
        { "output_b64", offsetof(struct bench_reply, output_b64) },
        { "code", offsetof(struct bench_reply, code) },
        { "message", offsetof(struct bench_reply, message) },
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strlen(fields[i].name) == klen && memcmp(fields[i].name, key, klen) == 0)
            *(struct bench_span *)((char *)r + fields[i].off) = v;
}

/* Finds the string fields of a flat JSON object.  0, or -1 if malformed. */
int bench_scan_reply(const char *p, size_t n, struct bench_reply *r)
{
    const char *e = p + n;
    memset(r, 0, sizeof *r);
    p = skip_ws(p, e);
    if (p == e || *p++ != '{')
        return -1;
    for (;;) {
        p = skip_ws(p, e);
        if (p < e && *p == '}')
            return 0;
        bool kesc = false;
        const char *k = p, *kend = p < e && *p == '"' ? string_end(p, e, &kesc) : NULL;
        if (!kend)
            return -1;
        p = skip_ws(kend, e);
        if (p == e || *p++ != ':')
            return -1;
        p = skip_ws(p, e);
        if (p == e)
            return -1;
        struct bench_span v = { p + 1, 0, false };
        const char *vend = *p == '"' ? string_end(p, e, &v.esc) : value_end(p, e);
        if (!vend || vend == p)
            return -1;
        if (*p == '"') {
            v.n = (size_t)(vend - p - 2);
            keep(r, k + 1, (size_t)(kend - k - 2), v);
        }
        p = skip_ws(vend, e);
        if (p < e && *p == ',')
            p++;
        else if (p == e || *p != '}')
            return -1;
    }
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* The \uXXXX escape at p[0..n) (p at the 'u'), a surrogate pair taking
 * the escape after it too.  Returns the characters used, or 0. */
static size_t unicode_escape(const char *p, size_t n, uint32_t *cp)
{
    uint32_t lo;
    if (n < 5 || hex4(p + 1, cp) < 0)
        return 0;
    if (*cp < 0xd800 || *cp > 0xdbff)
        return 5;
    if (n < 11 || p[5] != '\\' || p[6] != 'u' || hex4(p + 7, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
        return 0;
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    return 11;
}

/* Decodes JSON string contents into out (cap bytes).  Length, or -1 when
 * malformed or longer than cap (either way not the expected output). */
long bench_unescape(const char *p, size_t n, uint8_t *out, size_t cap)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 4 > cap)
            return -1;
        if (p[i] != '\\') {
            out[o++] = (uint8_t)p[i];
            continue;
        }
        if (++i == n)
            return -1;
        const char *k = strchr(from, p[i]);
        if (k && p[i]) {
            out[o++] = (uint8_t)to[k - from];
            continue;
        }
        uint32_t cp;
        size_t used = p[i] == 'u' ? unicode_escape(p + i, n - i, &cp) : 0;
        if (!used)
            return -1;
        o += put_utf8(out + o, cp);
        i += used - 1;
    }
    return (long)o;
}
