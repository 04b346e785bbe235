/* test_jobs_request.c — the /jobs request scan (src/wire/jobs_request.c)
 * against jansson: where the scan accepts a text, jansson's parse must give
 * the very same fields; the requests clients send must be accepted; what
 * the scan cannot vouch for must be declined (and so go to jansson). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/jobs_request.h"

static int scan(const char *text, struct jobs_request *r)
{
    return jobs_request_scan(text, strlen(text), r);
}

static void same_field(const struct jr_field *a, const struct jr_field *b, const char *name,
                       const char *text)
{
    ck_assert_msg(a->kind == b->kind, "%s: kind %d vs jansson %d in %s", name, a->kind, b->kind, text);
    if (a->kind == JR_STRING)
        ck_assert_msg(a->n == b->n && memcmp(a->s, b->s, a->n) == 0, "%s differs in %s", name, text);
    if (a->kind == JR_INTEGER)
        ck_assert_msg(a->i == b->i, "%s: %lld vs %lld in %s", name, (long long)a->i,
                      (long long)b->i, text);
}

/* If the scan accepts text, jansson must parse it to the same fields. */
static int agrees(const char *text)
{
    struct jobs_request r;
    if (!scan(text, &r))
        return 0;
    json_error_t err;
    json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    ck_assert_msg(obj && json_is_object(obj), "scan accepted what jansson refuses (%s): %s",
                  obj ? "not an object" : err.text, text);
    struct jobs_request j;
    jobs_request_from_json(obj, &j);
    same_field(&r.op, &j.op, "op", text);
    same_field(&r.id, &j.id, "id", text);
    same_field(&r.type, &j.type, "type", text);
    same_field(&r.input, &j.input, "input", text);
    same_field(&r.input_b64, &j.input_b64, "input_b64", text);
    same_field(&r.timeout_ms, &j.timeout_ms, "timeout_ms", text);
    same_field(&r.detach, &j.detach, "detach", text);
    same_field(&r.handle, &j.handle, "handle", text);
    same_field(&r.from_seq, &j.from_seq, "from_seq", text);
    if (r.input.kind != JR_ABSENT && r.input.kind != JR_STRING)
        ck_assert_msg(r.input_json_len == j.input_json_len &&
                      memcmp(r.input_json, j.input_json, r.input_json_len) == 0,
                      "input text '%.*s' vs jansson '%s' in %s", (int)r.input_json_len,
                      r.input_json, j.input_json, text);
    jobs_request_free(&r);
    jobs_request_free(&j);
    json_decref(obj);
    return 1;
}

START_TEST(what_clients_send_is_accepted)
{
    static const char *const texts[] = {
        "{\"op\":\"submit\",\"id\":\"1\",\"type\":\"echo\",\"input\":\"x\"}",
        "{\"op\":\"submit\",\"id\":\"j42\",\"type\":\"sha256\",\"input\":{\"data\":\"abc\",\"rounds\":2000}}",
        "{\"op\":\"submit\",\"id\":\"a\",\"type\":\"echo\",\"input\":\"x\",\"detach\":true}",
        "{\"op\":\"submit\",\"id\":\"a\",\"type\":\"frames\",\"input\":{\"count\":100},\"timeout_ms\":5000}",
        "{ \"op\" : \"submit\" , \"id\" : \"a\" , \"type\" : \"modsum\" ,\n \"input\" : { \"n\" : 7 , \"k\" : [ 1 , -2 , null , true , false , \"\" ] } }\r\n",
        "{\"op\":\"submit\",\"id\":\"a\",\"type\":\"echo\",\"input_b64\":\"eA==\"}",
        "{\"op\":\"cancel\",\"id\":\"a\"}",
        "{\"op\":\"cancel\",\"handle\":\"00000001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "{\"op\":\"attach\",\"id\":\"b\",\"handle\":\"00000001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"from_seq\":25}",
        "{\"op\":\"submit\",\"id\":\"\xc3\xa9t\xc3\xa9\",\"type\":\"echo\",\"input\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}",
        "{\"op\":\"submit\",\"id\":\"a\",\"type\":\"echo\",\"input\":-123456789012345678}",
        "{\"op\":\"submit\",\"id\":\"a\",\"type\":\"echo\",\"input\":null,\"detach\":false}",
        "{\"op\":\"submit\",\"id\":5,\"type\":true,\"input\":{},\"detach\":null}",
        "{}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        ck_assert_msg(agrees(texts[i]), "declined: %s", texts[i]);
}
END_TEST

START_TEST(whitespace_leaves_the_input_compact)
{
    struct jobs_request r;
    ck_assert(scan("{\"input\" : { \"a b\" : [ 1 ,\t2 ] ,\n\"c\":\" x \" } , \"op\":\"submit\"}", &r));
    ck_assert_uint_eq(r.input.kind, JR_OTHER);
    ck_assert_uint_eq(r.input_json_len, strlen("{\"a b\":[1,2],\"c\":\" x \"}"));
    ck_assert(memcmp(r.input_json, "{\"a b\":[1,2],\"c\":\" x \"}", r.input_json_len) == 0);
    ck_assert_ptr_nonnull(r.owned);
    jobs_request_free(&r);
    /* Without whitespace the text is the message's own bytes: no copy. */
    const char *t = "{\"input\":{\"a\":[1,2]}}";
    ck_assert(scan(t, &r));
    ck_assert_ptr_null(r.owned);
    ck_assert_ptr_eq(r.input_json, t + 9);
}
END_TEST

START_TEST(what_jansson_must_judge_is_declined)
{
    static const char *const texts[] = {
        "",
        "[]",
        "\"x\"",
        "{\"op\":\"submit\"",
        "{\"op\":\"submit\",}",
        "{\"op\":\"submit\"}x",
        "{\"op\":\"sub\\u006dit\"}",                    /* an escape */
        "{\"op\":\"a\tb\"}",                             /* a control byte */
        "{\"op\":\"\xc3\"}",                             /* invalid UTF-8 */
        "{\"op\":\"\xed\xa0\x80\"}",                     /* a surrogate */
        "{\"input\":1.5}",                               /* a real */
        "{\"input\":1e3}",
        "{\"input\":-0}",                                /* printed back as 0 */
        "{\"input\":0123}",
        "{\"input\":1234567890123456789}",               /* 19 digits */
        "{\"input\":[66666666666666666666666666666666666666666666666666661]}",   /* would overflow */
        "{\"timeout_ms\":-}",
        "{\"input\":tru}",
        "{\"input\":truex}",
        "{\"id\":\"a\",\"id\":\"b\"}",                   /* a duplicate at the top */
        "{\"input\":{\"a\":1,\"a\":2}}",                 /* a duplicate inside */
        "{\"colour\":\"red\"}",                          /* not the protocol's key */
        "{\"id\":{\"a\":1}}",                            /* an object where a scalar goes */
        "{\"type\":[]}",
        "{\"input\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}",   /* deeper than the scan goes */
        "{\"input\":[1 2]}",
        "{\"input\":{\"a\" 1}}",
        "{\"input\":{1:2}}",
        "\xef\xbb\xbf{}",                                /* a byte-order mark */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct jobs_request r;
        ck_assert_msg(!scan(texts[i], &r), "accepted: %s", texts[i]);
    }
}
END_TEST

/* ---- generated requests ----------------------------------------------------- */

static unsigned seed = 12345;
static unsigned rnd(unsigned n)
{
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) % n;
}

struct buf {
    char p[4096];
    size_t n;
};

static void put(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->n + n < sizeof b->p) {
        memcpy(b->p + b->n, s, n);
        b->n += n;
    }
    b->p[b->n] = 0;
}

static void ws(struct buf *b)
{
    static const char *const w[] = { "", "", "", " ", "\n", "\t", "\r\n ", "  " };
    put(b, w[rnd(8)]);
}

static void gen_string(struct buf *b)
{
    static const char *const parts[] = {
        "a", "Z", "0", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\n", "\\\"",
        "\\u00e9", "\\ud83d\\ude00", "/", "\\/", "{", "]", ":", ",",
    };
    put(b, "\"");
    for (unsigned i = rnd(6); i > 0; i--)
        put(b, parts[rnd(sizeof parts / sizeof parts[0])]);
    put(b, "\"");
}

static void gen_number(struct buf *b)
{
    static const char *const nums[] = {
        "0", "7", "-1", "42", "2000", "86400000", "-0", "1.5", "1e3", "-2E-2", "0.0",
        "123456789012345678", "-123456789012345678", "1234567890123456789", "00", "-",
    };
    put(b, nums[rnd(sizeof nums / sizeof nums[0])]);
}

static void gen_value(struct buf *b, int depth);

/* n members, with whitespace and commas; keyed ones (object members) take
 * a key from keys. */
static void gen_members(struct buf *b, unsigned n, const char *const *keys, unsigned nkeys,
                        int depth)
{
    for (unsigned i = n; i > 0; i--) {
        ws(b);
        if (keys) {
            put(b, keys[rnd(nkeys)]);
            ws(b);
            put(b, ":");
            ws(b);
        }
        gen_value(b, depth);
        ws(b);
        if (i > 1)
            put(b, ",");
    }
}

static void gen_value(struct buf *b, int depth)
{
    static const char *const keys[] = { "\"a\"", "\"b\"", "\"data\"", "\"rounds\"", "\"\"", "\"k\\u0041\"" };
    switch (rnd(depth > 3 ? 5 : 7)) {
    case 0: gen_string(b); break;
    case 1: gen_number(b); break;
    case 2: put(b, "true"); break;
    case 3: put(b, "null"); break;
    case 4: put(b, rnd(2) ? "false" : "nul"); break;
    case 5:
        put(b, "[");
        gen_members(b, rnd(4), NULL, 0, depth + 1);
        put(b, "]");
        break;
    default:
        put(b, "{");
        gen_members(b, rnd(4), keys, sizeof keys / sizeof keys[0], depth + 1);
        put(b, "}");
    }
}

static void gen_request(struct buf *b)
{
    static const char *const keys[] = {
        "\"op\"", "\"id\"", "\"type\"", "\"input\"", "\"input_b64\"", "\"timeout_ms\"",
        "\"detach\"", "\"handle\"", "\"from_seq\"", "\"other\"",
    };
    b->n = 0;
    ws(b);
    put(b, "{");
    gen_members(b, rnd(7), keys, sizeof keys / sizeof keys[0], 1);
    put(b, "}");
    ws(b);
}

START_TEST(generated_requests_agree_with_jansson)
{
    struct buf b;
    unsigned accepted = 0, n = 200000;
    for (unsigned i = 0; i < n; i++) {
        gen_request(&b);
        accepted += (unsigned)agrees(b.p);
        /* Every cut of it too: a truncated text must never be accepted
         * unless it is itself a whole request. */
        if (i % 16 == 0)
            for (size_t cut = 0; cut < b.n; cut++) {
                char t[sizeof b.p];
                memcpy(t, b.p, cut);
                t[cut] = 0;
                agrees(t);
            }
    }
    /* The generator is half valid: a scan that declined nearly everything
     * would pass the agreement above and be useless. */
    ck_assert_msg(accepted > n / 20, "only %u of %u accepted", accepted, n);
}
END_TEST

static Suite *jobs_request_suite(void)
{
    Suite *s = suite_create("jobs_request");
    TCase *tc = tcase_create("scan");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, what_clients_send_is_accepted);
    tcase_add_test(tc, whitespace_leaves_the_input_compact);
    tcase_add_test(tc, what_jansson_must_judge_is_declined);
    tcase_add_test(tc, generated_requests_agree_with_jansson);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jobs_request_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
