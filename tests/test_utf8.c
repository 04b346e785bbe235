/* test_utf8.c — the incremental UTF-8 validator (src/utf8.c). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/utf8.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* Encodes any value up to 0x7FFFFFFF the way the original (pre-RFC 3629)
 * scheme would, so surrogates and values past U+10FFFF can be produced. */
static size_t encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* A plain decoder written from RFC 3629 §3, used as the oracle: returns the
 * index of the first byte that makes s invalid, n if s is valid, or n + 1 if
 * s is valid but ends inside a sequence. */
static size_t reference_first_error(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) { i++; continue; }
        else if (b >= 0xc2 && b <= 0xdf) { len = 2; cp = b & 0x1f; min = 0x80; }
        else if (b >= 0xe0 && b <= 0xef) { len = 3; cp = b & 0x0f; min = 0x800; }
        else if (b >= 0xf0 && b <= 0xf4) { len = 4; cp = b & 0x07; min = 0x10000; }
        else return i;
        for (size_t k = 1; k < len; k++) {
            if (i + k == n)
                return n + 1;
            uint8_t c = s[i + k];
            if ((c & 0xc0) != 0x80)
                return i + k;
            cp = cp << 6 | (c & 0x3f);
            /* The earliest byte at which the value is known to be bad. */
            uint32_t shift = (uint32_t)(6 * (len - 1 - k));
            uint32_t lo = cp << shift, hi = lo | ((1u << shift) - 1);
            if (hi < min || lo > 0x10ffff || (lo >= 0xd800 && hi <= 0xdfff))
                return i + k;
        }
        i += len;
    }
    return n;
}

/* Index of the first byte at which utf8_step says REJECT, fed byte by byte;
 * n when it never does. */
static size_t first_reject(const uint8_t *s, size_t n)
{
    uint32_t st = UTF8_ACCEPT;
    for (size_t i = 0; i < n; i++) {
        st = utf8_step(st, s + i, 1);
        if (st == UTF8_REJECT)
            return i;
    }
    return n;
}

START_TEST(every_scalar_value_is_valid)
{
    uint8_t buf[4];
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        if (cp == 0xd800)
            cp = 0xe000;
        size_t n = encode(cp, buf);
        ck_assert_msg(utf8_valid(buf, n), "U+%04X rejected", cp);
    }
}
END_TEST

START_TEST(surrogates_are_invalid)
{
    uint8_t buf[4];
    for (uint32_t cp = 0xd800; cp <= 0xdfff; cp++) {
        size_t n = encode(cp, buf);
        ck_assert_msg(!utf8_valid(buf, n), "surrogate U+%04X accepted", cp);
        /* Known bad at the second byte (ED A0..BF). */
        ck_assert_uint_eq(first_reject(buf, n), 1);
    }
    ck_assert(!utf8_valid(S("\xed\xa0\x80\xed\xb0\x80")));   /* a paired surrogate */
}
END_TEST

START_TEST(boundary_code_points)
{
    ck_assert(utf8_valid(S("\x00")));
    ck_assert(utf8_valid(S("\x7f")));
    ck_assert(utf8_valid(S("\xc2\x80")));              /* U+0080 */
    ck_assert(utf8_valid(S("\xdf\xbf")));              /* U+07FF */
    ck_assert(utf8_valid(S("\xe0\xa0\x80")));          /* U+0800 */
    ck_assert(utf8_valid(S("\xed\x9f\xbf")));          /* U+D7FF */
    ck_assert(utf8_valid(S("\xee\x80\x80")));          /* U+E000 */
    ck_assert(utf8_valid(S("\xef\xbf\xbf")));          /* U+FFFF, a noncharacter */
    ck_assert(utf8_valid(S("\xef\xbf\xbe")));          /* U+FFFE */
    ck_assert(utf8_valid(S("\xf0\x90\x80\x80")));      /* U+10000 */
    ck_assert(utf8_valid(S("\xf4\x8f\xbf\xbf")));      /* U+10FFFF */
    ck_assert(utf8_valid(NULL, 0));
}
END_TEST

START_TEST(overlongs_are_invalid)
{
    ck_assert(!utf8_valid(S("\xc0\x80")));
    ck_assert(!utf8_valid(S("\xc0\xaf")));
    ck_assert(!utf8_valid(S("\xc1\xbf")));
    ck_assert(!utf8_valid(S("\xe0\x80\x80")));
    ck_assert(!utf8_valid(S("\xe0\x9f\xbf")));
    ck_assert(!utf8_valid(S("\xf0\x80\x80\x80")));
    ck_assert(!utf8_valid(S("\xf0\x8f\xbf\xbf")));
    ck_assert(!utf8_valid(S("\xf8\x88\x80\x80\x80")));
    ck_assert(!utf8_valid(S("\xfc\x84\x80\x80\x80\x80")));
    /* C0 and C1 can start nothing: rejected at the first byte. */
    ck_assert_uint_eq(first_reject(S("\xc0\x80")), 0);
    ck_assert_uint_eq(first_reject(S("\xe0\x9f\xbf")), 1);
}
END_TEST

START_TEST(beyond_u10ffff_is_invalid)
{
    ck_assert(!utf8_valid(S("\xf4\x90\x80\x80")));      /* U+110000 */
    ck_assert(!utf8_valid(S("\xf7\xbf\xbf\xbf")));
    ck_assert_uint_eq(first_reject(S("\xf4\x90\x80\x80")), 1);
    for (unsigned b = 0xf5; b <= 0xff; b++) {
        uint8_t c = (uint8_t)b;
        ck_assert_msg(utf8_step(UTF8_ACCEPT, &c, 1) == UTF8_REJECT, "lead %02X", b);
    }
}
END_TEST

START_TEST(truncated_sequences_wait_then_fail)
{
    static const char *prefixes[] = { "\xc2", "\xe2\x82", "\xe2", "\xf0\x9f\x98", "\xf4\x8f" };
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        const uint8_t *p = (const uint8_t *)prefixes[i];
        uint32_t st = utf8_step(UTF8_ACCEPT, p, strlen(prefixes[i]));
        ck_assert_msg(st != UTF8_ACCEPT && st != UTF8_REJECT, "prefix %zu", i);
        ck_assert(!utf8_valid(p, strlen(prefixes[i])));
        /* Completing it with ASCII is an error at that byte. */
        ck_assert_uint_eq(utf8_step(st, (const uint8_t *)"a", 1), UTF8_REJECT);
    }
    /* A lone continuation byte fails at once. */
    ck_assert_uint_eq(first_reject(S("ab\x80")), 2);
}
END_TEST

START_TEST(reject_is_sticky)
{
    uint32_t st = utf8_step(UTF8_ACCEPT, S("\xff"));
    ck_assert_uint_eq(st, UTF8_REJECT);
    ck_assert_uint_eq(utf8_step(st, S("hello")), UTF8_REJECT);
    ck_assert_uint_eq(utf8_step(st, NULL, 0), UTF8_REJECT);
    ck_assert_uint_eq(utf8_step(12345, S("a")), UTF8_REJECT);   /* not a state */
}
END_TEST

static const char mixed[] =
    "plain ASCII long enough for the 8-byte path, "
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80 \xe2\x82\xac \xc2\xa2 end";

START_TEST(invalid_byte_at_every_position)
{
    size_t n = sizeof mixed - 1;
    uint8_t buf[sizeof mixed];
    ck_assert(utf8_valid((const uint8_t *)mixed, n));
    for (size_t i = 0; i < n; i++) {
        memcpy(buf, mixed, n);
        buf[i] = 0xff;
        ck_assert_msg(!utf8_valid(buf, n), "0xFF at %zu accepted", i);
        ck_assert_uint_eq(first_reject(buf, n), i);
        /* Fed in one call up to and including the bad byte: REJECT. */
        ck_assert_uint_eq(utf8_step(UTF8_ACCEPT, buf, i + 1), UTF8_REJECT);
        ck_assert_uint_ne(utf8_step(UTF8_ACCEPT, buf, i), UTF8_REJECT);
    }
}
END_TEST

/* Checks that splitting s at the cut points gives the one-shot answer, and
 * that the first fragment to say REJECT is the one holding the bad byte. */
static void check_split(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts)
{
    size_t bad = first_reject(s, n);
    uint32_t st = UTF8_ACCEPT;
    size_t start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n;
        uint32_t next = utf8_step(st, s + start, end - start);
        bool holds_bad = bad >= start && bad < end;
        if (st != UTF8_REJECT) {
            ck_assert_msg((next == UTF8_REJECT) == holds_bad,
                          "fragment [%zu,%zu) of %zu, bad byte at %zu", start, end, n, bad);
        }
        st = next;
        start = end;
    }
    ck_assert_int_eq(st == UTF8_ACCEPT, utf8_valid(s, n));
}

static const char *split_samples[] = {
    mixed,
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64",
    "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
    "abc\xf0\x9f\x98",
    "\x80\xbf",
    "0123456789abcdef\xe0\x80\xaf" "0123456789",
};

START_TEST(split_in_two_at_every_position)
{
    for (size_t s = 0; s < sizeof split_samples / sizeof *split_samples; s++) {
        const uint8_t *p = (const uint8_t *)split_samples[s];
        size_t n = strlen(split_samples[s]);
        for (size_t i = 0; i <= n; i++)
            check_split(p, n, &i, 1);
    }
}
END_TEST

START_TEST(split_in_three_at_every_position)
{
    for (size_t s = 0; s < sizeof split_samples / sizeof *split_samples; s++) {
        const uint8_t *p = (const uint8_t *)split_samples[s];
        size_t n = strlen(split_samples[s]);
        for (size_t i = 0; i <= n; i++)
            for (size_t j = i; j <= n; j++) {
                size_t cuts[2] = { i, j };
                check_split(p, n, cuts, 2);
            }
    }
}
END_TEST

/* Random byte strings drawn mostly from bytes that make near-valid UTF-8,
 * compared with the reference decoder. */
START_TEST(agrees_with_reference_decoder)
{
    static const uint8_t alphabet[] = {
        'a', 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
        0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
    };
    uint8_t buf[24];
    srand(6455);
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = (size_t)(rand() % (int)sizeof buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = alphabet[rand() % (int)sizeof alphabet];
        size_t ref = reference_first_error(buf, n);
        size_t got = first_reject(buf, n);
        if (ref < n) {
            ck_assert_msg(got == ref, "iter %d: reference says byte %zu, got %zu", iter, ref, got);
        } else {
            ck_assert_msg(got == n, "iter %d: rejected a valid prefix at %zu", iter, got);
            ck_assert_int_eq(utf8_valid(buf, n), ref == n);
        }
    }
}
END_TEST

START_TEST(long_ascii_runs_then_error)
{
    uint8_t buf[1000];
    memset(buf, 'x', sizeof buf);
    ck_assert(utf8_valid(buf, sizeof buf));
    for (size_t i = 990; i < sizeof buf; i++) {
        buf[i] = 0x80;
        ck_assert_uint_eq(first_reject(buf, sizeof buf), i);
        ck_assert_uint_eq(utf8_step(UTF8_ACCEPT, buf, sizeof buf), UTF8_REJECT);
        buf[i] = 'x';
    }
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("validator");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_scalar_value_is_valid);
    tcase_add_test(tc, surrogates_are_invalid);
    tcase_add_test(tc, boundary_code_points);
    tcase_add_test(tc, overlongs_are_invalid);
    tcase_add_test(tc, beyond_u10ffff_is_invalid);
    tcase_add_test(tc, truncated_sequences_wait_then_fail);
    tcase_add_test(tc, reject_is_sticky);
    tcase_add_test(tc, invalid_byte_at_every_position);
    tcase_add_test(tc, split_in_two_at_every_position);
    tcase_add_test(tc, split_in_three_at_every_position);
    tcase_add_test(tc, agrees_with_reference_decoder);
    tcase_add_test(tc, long_ascii_runs_then_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
