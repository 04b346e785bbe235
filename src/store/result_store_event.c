/* result_store_event.c — what a stored event text is (chunk with its seq,
 * progress, final), read from its top-level "event" and "seq" members
 * without parsing the rest: a chunk's output may be megabytes that a
 * follower only forwards. */
#include <string.h>

#include "store/result_store_event.h"

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p is at the opening quote; returns just past the closing one. */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *e)
{
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                if (!(p = skip_string(p, e)))
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
           *p != '\t' && *p != '\r')
        p++;
    return p;
}

/* The raw text of a top-level member's value (a string keeps its quotes),
 * or NULL when the object has no such member or is not an object. */
static const char *member(const char *s, size_t n, const char *name, size_t *vlen)
{
    const char *p = skip_ws(s, s + n), *e = s + n;
    size_t want = strlen(name);
    if (p >= e || *p != '{')
        return NULL;
    for (p++;;) {
        p = skip_ws(p, e);
        if (p >= e || *p != '"')
            return NULL;
        const char *k = p + 1;
        if (!(p = skip_string(p, e)))
            return NULL;
        size_t klen = (size_t)(p - 1 - k);
        p = skip_ws(p, e);
        if (p >= e || *p != ':')
            return NULL;
        const char *v = skip_ws(p + 1, e);
        if (!(p = skip_value(v, e)))
            return NULL;
        if (klen == want && memcmp(k, name, want) == 0) {
            *vlen = (size_t)(p - v);
            return v;
        }
        p = skip_ws(p, e);
        if (p >= e || *p != ',')
            return NULL;
        p++;
    }
}

static int is(const char *v, size_t n, const char *quoted)
{
    return n == strlen(quoted) && memcmp(v, quoted, n) == 0;
}

enum rs_event_kind rs_event_kind(const char *text, size_t len, uint64_t *seq)
{
    size_t n;
    const char *v = member(text, len, "event", &n);
    if (!v)
        return RS_EV_OTHER;
    if (is(v, n, "\"done\"") || is(v, n, "\"error\""))
        return RS_EV_FINAL;
    if (!is(v, n, "\"chunk\""))
        return RS_EV_OTHER;
    v = member(text, len, "seq", &n);
    if (!v || n == 0 || n > 19)
        return RS_EV_OTHER;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return RS_EV_OTHER;
        s = s * 10 + (uint64_t)(v[i] - '0');
    }
    *seq = s;
    return RS_EV_CHUNK;
}
