/* jobs_request.c — see jobs_request.h.
 *
 * The scan accepts a subset of JSON (RFC 8259) chosen so that what it
 * accepts jansson would parse to the same fields:
 *   - strings without escapes or control bytes, valid UTF-8 (jansson
 *     decodes the same bytes; an escape would need decoding, left to it);
 *   - integers of at most 18 digits, not "-0" (jansson reads them as the
 *     same long long; it prints "-0" as "0", and rejects the too big);
 *   - true, false, null; objects and arrays only as the input, at most
 *     MAX_DEPTH deep and MAX_KEYS keys an object, no key twice (jansson
 *     was asked to reject duplicates);
 *   - at the top, only the protocol's keys, each at most once.
 * A real number is declined: jansson prints it back in its own format.
 * Within that subset jansson's compact dump of a value is the value's text
 * without whitespace, which is what the input's text becomes. */
#include "wire/jobs_request.h"

#include <stdlib.h>
#include <string.h>

#include "wire/utf8.h"

#define MAX_DEPTH   16
#define MAX_KEYS    16
#define MAX_DIGITS  18      /* below 2^63: no overflow to check */

struct scan {
    const char *end;
    int         spaced;     /* whitespace was skipped inside the input */
};

struct span {
    const char *s;
    size_t      n;
};

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static const char *skip_ws(struct scan *sc, const char *p)
{
    const char *q = p;
    while (q < sc->end && is_ws(*q))
        q++;
    if (q != p)
        sc->spaced = 1;
    return q;
}

/* p at the opening quote.  Returns the byte after the closing one. */
static const char *string(struct scan *sc, const char *p, struct span *out)
{
    const char *s = p + 1;
    int high = 0;
    for (const char *q = s; q < sc->end; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            if (high && !utf8_valid((const uint8_t *)s, (size_t)(q - s)))
                return NULL;
            *out = (struct span){ s, (size_t)(q - s) };
            return q + 1;
        }
        if (c < 0x20 || c == '\\')
            return NULL;
        high |= c >= 0x80;
    }
    return NULL;
}

static const char *integer(struct scan *sc, const char *p, int64_t *v)
{
    const char *q = p;
    int neg = q < sc->end && *q == '-';
    q += neg;
    const char *digits = q;
    int64_t n = 0;
    /* Past MAX_DIGITS only counted: the number is declined, and more
     * digits would overflow n. */
    for (; q < sc->end && *q >= '0' && *q <= '9'; q++)
        if (q - digits < MAX_DIGITS)
            n = n * 10 + (*q - '0');
    size_t nd = (size_t)(q - digits);
    if (nd == 0 || nd > MAX_DIGITS || (nd > 1 && *digits == '0') || (neg && n == 0))
        return NULL;
    if (q < sc->end && (*q == '.' || *q == 'e' || *q == 'E'))
        return NULL;   /* a real */
    *v = neg ? -n : n;
    return q;
}

static const char *literal_n(struct scan *sc, const char *p, const char *word, size_t n)
{
    return (size_t)(sc->end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}
#define literal(sc, p, word) literal_n(sc, p, word, sizeof word - 1)

static const char *value(struct scan *sc, const char *p, int depth);

static int seen(const struct span *keys, unsigned n, struct span k)
{
    for (unsigned i = 0; i < n; i++)
        if (keys[i].n == k.n && memcmp(keys[i].s, k.s, k.n) == 0)
            return 1;
    return 0;
}

static const char *object(struct scan *sc, const char *p, int depth)
{
    struct span keys[MAX_KEYS];
    unsigned n = 0;
    p = skip_ws(sc, p + 1);
    if (p < sc->end && *p == '}')
        return p + 1;
    for (;;) {
        if (p >= sc->end || *p != '"' || n == MAX_KEYS)
            return NULL;
        struct span k;
        if (!(p = string(sc, p, &k)) || seen(keys, n, k))
            return NULL;
        keys[n++] = k;
        p = skip_ws(sc, p);
        if (p >= sc->end || *p != ':')
            return NULL;
        if (!(p = value(sc, skip_ws(sc, p + 1), depth + 1)))
            return NULL;
        p = skip_ws(sc, p);
        if (p < sc->end && *p == ',') {
            p = skip_ws(sc, p + 1);
            continue;
        }
        return p < sc->end && *p == '}' ? p + 1 : NULL;
    }
}

static const char *array(struct scan *sc, const char *p, int depth)
{
    p = skip_ws(sc, p + 1);
    if (p < sc->end && *p == ']')
        return p + 1;
    for (;;) {
        if (!(p = value(sc, p, depth + 1)))
            return NULL;
        p = skip_ws(sc, p);
        if (p < sc->end && *p == ',') {
            p = skip_ws(sc, p + 1);
            continue;
        }
        return p < sc->end && *p == ']' ? p + 1 : NULL;
    }
}

/* Any value of the subset, nested within depth. */
static const char *value(struct scan *sc, const char *p, int depth)
{
    struct span s;
    int64_t i;
    if (p >= sc->end || depth > MAX_DEPTH)
        return NULL;
    switch (*p) {
    case '{': return object(sc, p, depth);
    case '[': return array(sc, p, depth);
    case '"': return string(sc, p, &s);
    case 't': return literal(sc, p, "true");
    case 'f': return literal(sc, p, "false");
    case 'n': return literal(sc, p, "null");
    default:  return integer(sc, p, &i);
    }
}

/* A top-level value: scalars into f; an object or array only for the
 * input, whose text is kept in *whole. */
static const char *field_value(struct scan *sc, const char *p, struct jr_field *f,
                               struct span *whole)
{
    const char *start = p, *q;
    struct span s;
    if (p >= sc->end)
        return NULL;
    switch (*p) {
    case '"':
        if (!(q = string(sc, p, &s)))
            return NULL;
        *f = (struct jr_field){ .kind = JR_STRING, .s = s.s, .n = s.n };
        break;
    case 't': f->kind = JR_TRUE;  q = literal(sc, p, "true");  break;
    case 'f': f->kind = JR_FALSE; q = literal(sc, p, "false"); break;
    case 'n': f->kind = JR_NULL;  q = literal(sc, p, "null");  break;
    case '{':
    case '[':
        if (!whole)
            return NULL;
        f->kind = JR_OTHER;
        q = value(sc, p, 1);
        break;
    default:
        f->kind = JR_INTEGER;
        q = integer(sc, p, &f->i);
    }
    if (q && whole)
        *whole = (struct span){ start, (size_t)(q - start) };
    return q;
}

/* By length first, then the bytes: one comparison of a constant length
 * (inlined, no call) per key, where a walk of a key table compared lengths
 * down the table and called memcmp (callgrind of the front, echo at
 * 50 x 16, four keys a job: 184 instructions a job less). */
static struct jr_field *field_named(struct jobs_request *r, struct span k)
{
#define IS(name) (memcmp(k.s, name, sizeof name - 1) == 0)
    switch (k.n) {
    case 2:  return IS("op") ? &r->op : IS("id") ? &r->id : NULL;
    case 4:  return IS("type") ? &r->type : NULL;
    case 5:  return IS("input") ? &r->input : NULL;
    case 6:  return IS("detach") ? &r->detach : IS("handle") ? &r->handle : NULL;
    case 8:  return IS("from_seq") ? &r->from_seq : NULL;
    case 9:  return IS("input_b64") ? &r->input_b64 : NULL;
    case 10: return IS("timeout_ms") ? &r->timeout_ms : NULL;
    default: return NULL;
    }
#undef IS
}

/* The input's text without whitespace: strings hold no escapes, so every
 * quote opens or closes one. */
static char *compact(struct span v, size_t *len)
{
    char *out = malloc(v.n ? v.n : 1);
    if (!out)
        return NULL;
    size_t n = 0;
    int in_string = 0;
    for (size_t i = 0; i < v.n; i++) {
        char c = v.s[i];
        if (c == '"')
            in_string = !in_string;
        else if (!in_string && is_ws(c))
            continue;
        out[n++] = c;
    }
    *len = n;
    return out;
}

static int set_input_json(struct jobs_request *r, struct span v, int spaced)
{
    if (!spaced) {
        r->input_json = v.s;
        r->input_json_len = v.n;
        return 0;
    }
    r->owned = compact(v, &r->input_json_len);
    r->input_json = r->owned;
    return r->owned ? 0 : -1;
}

int jobs_request_scan(const char *text, size_t len, struct jobs_request *out)
{
    struct scan sc = { .end = text + len };
    struct jobs_request r = { 0 };
    struct span input = { 0 };
    int input_spaced = 0;
    const char *p = skip_ws(&sc, text);
    if (p >= sc.end || *p != '{')
        return 0;
    p = skip_ws(&sc, p + 1);
    if (p < sc.end && *p == '}')
        p++;
    else
        for (;;) {
            struct span k;
            struct jr_field *f;
            if (p >= sc.end || *p != '"' || !(p = string(&sc, p, &k)) ||
                !(f = field_named(&r, k)) || f->kind != JR_ABSENT)
                return 0;
            p = skip_ws(&sc, p);
            if (p >= sc.end || *p != ':')
                return 0;
            p = skip_ws(&sc, p + 1);
            int is_input = f == &r.input;
            sc.spaced = 0;
            if (!(p = field_value(&sc, p, f, is_input ? &input : NULL)))
                return 0;
            if (is_input)
                input_spaced = sc.spaced;
            p = skip_ws(&sc, p);
            if (p < sc.end && *p == ',') {
                p = skip_ws(&sc, p + 1);
                continue;
            }
            if (p >= sc.end || *p != '}')
                return 0;
            p++;
            break;
        }
    if (skip_ws(&sc, p) != sc.end)
        return 0;
    if (r.input.kind != JR_ABSENT && r.input.kind != JR_STRING &&
        set_input_json(&r, input, input_spaced) < 0)
        return 0;   /* out of memory: jansson's path tells the client */
    *out = r;
    return 1;
}

/* ---- the same fields from jansson ------------------------------------------- */

static void from_value(json_t *v, struct jr_field *f)
{
    if (!v)
        f->kind = JR_ABSENT;
    else if (json_is_string(v))
        *f = (struct jr_field){ .kind = JR_STRING, .s = json_string_value(v),
                                .n = json_string_length(v) };
    else if (json_is_integer(v))
        *f = (struct jr_field){ .kind = JR_INTEGER, .i = json_integer_value(v) };
    else if (json_is_true(v))
        f->kind = JR_TRUE;
    else if (json_is_false(v))
        f->kind = JR_FALSE;
    else if (json_is_null(v))
        f->kind = JR_NULL;
    else
        f->kind = JR_OTHER;
}

void jobs_request_from_json(json_t *obj, struct jobs_request *r)
{
    *r = (struct jobs_request){ 0 };
    from_value(json_object_get(obj, "op"), &r->op);
    from_value(json_object_get(obj, "id"), &r->id);
    from_value(json_object_get(obj, "type"), &r->type);
    from_value(json_object_get(obj, "input_b64"), &r->input_b64);
    from_value(json_object_get(obj, "timeout_ms"), &r->timeout_ms);
    from_value(json_object_get(obj, "detach"), &r->detach);
    from_value(json_object_get(obj, "handle"), &r->handle);
    from_value(json_object_get(obj, "from_seq"), &r->from_seq);
    json_t *input = json_object_get(obj, "input");
    from_value(input, &r->input);
    if (!input || json_is_string(input))
        return;
    r->owned = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!r->owned)
        return;   /* input_json stays NULL: no memory to encode it */
    r->input_json = r->owned;
    r->input_json_len = strlen(r->owned);
}

void jobs_request_free(struct jobs_request *r)
{
    free(r->owned);
    r->owned = NULL;
}
