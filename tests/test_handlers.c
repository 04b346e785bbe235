/* test_handlers.c — the built-in job types and the plug-ins, called
 * directly through a stand-in for the worker runtime.
 *
 * This file defines every wsjob_* function itself (a fake context that
 * records output, chunks, progress and the error, and can be told to cancel
 * after N polls, N chunks or at a time), so the handlers run here exactly
 * as in a worker without any other part of the daemon.  The executable
 * exports these symbols, so the plug-ins it dlopen()s resolve against them.
 *
 * Plug-ins are read from $WSJOBD_BUILD/plugins (default "build/plugins");
 * a missing one fails its test. */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "handlers/handlers_builtin.h"

/* ------------------------------------------------------------------ */
/* The stand-in runtime                                                */

struct chunk {
    char  *p;
    size_t len;
};

struct wsjob_ctx {
    const char *in;              /* borrowed from the test */
    size_t      in_len;
    char       *out;             /* owned; NULL until wsjob_output */
    size_t      out_len;
    int         has_out;
    struct chunk *chunks;        /* owned, n_chunks of them */
    size_t      n_chunks;
    int         code;            /* last wsjob_fail code, 0 = none */
    int         fails;           /* wsjob_fail calls */
    char        msg[512];
    int         cancelled;       /* latched */
    long        polls;           /* wsjob_cancelled calls */
    long        cancel_after_polls;  /* < 0: never */
    long        cancel_after_chunks; /* < 0: never */
    double      cancel_at;       /* monotonic seconds, 0: never */
    double      deadline;        /* monotonic seconds, 0: none */
    size_t      max_output;
    const char *const *allow;    /* fetch-allow values, NULL-terminated */
    long        progress_calls;
    uint64_t    last_done, last_total;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int stop_now(wsjob_ctx *c)
{
    double t = (c->cancel_at > 0 || c->deadline > 0) ? now_s() : 0;
    if ((c->cancel_after_polls >= 0 && c->polls > c->cancel_after_polls) ||
        (c->cancel_at > 0 && t >= c->cancel_at) ||
        (c->deadline > 0 && t >= c->deadline))
        c->cancelled = 1;
    return c->cancelled;
}

const void *wsjob_input(wsjob_ctx *c, size_t *len)
{
    *len = c->in_len;
    return c->in;
}

int wsjob_output(wsjob_ctx *c, const void *data, size_t len)
{
    if (len > c->max_output)
        return WSJOB_ERR;
    char *p = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(p);
    if (len)
        memcpy(p, data, len);
    free(c->out);
    c->out = p;
    c->out_len = len;
    c->has_out = 1;
    return WSJOB_OK;
}

int wsjob_emit(wsjob_ctx *c, const void *data, size_t len)
{
    if (stop_now(c) || len > c->max_output)
        return WSJOB_ERR;
    c->chunks = realloc(c->chunks, (c->n_chunks + 1) * sizeof *c->chunks);
    ck_assert_ptr_nonnull(c->chunks);
    char *p = malloc(len + 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, data, len);
    p[len] = '\0';
    c->chunks[c->n_chunks++] = (struct chunk){ p, len };
    if (c->cancel_after_chunks >= 0 && (long)c->n_chunks >= c->cancel_after_chunks)
        c->cancelled = 1;
    return WSJOB_OK;
}

void wsjob_progress(wsjob_ctx *c, uint64_t done, uint64_t total)
{
    c->progress_calls++;
    c->last_done = done;
    c->last_total = total;
}

int wsjob_cancelled(wsjob_ctx *c)
{
    c->polls++;
    return stop_now(c);
}

int64_t wsjob_remaining_ms(wsjob_ctx *c)
{
    if (c->deadline <= 0)
        return 30000;
    double left = (c->deadline - now_s()) * 1000;
    return left > 0 ? (int64_t)left : 0;
}

int wsjob_sleep(wsjob_ctx *c, int64_t ms)
{
    double end = now_s() + (double)ms / 1000;
    for (;;) {
        if (stop_now(c))
            return WSJOB_ERR;
        double left = end - now_s();
        if (left <= 0)
            return WSJOB_OK;
        double step = left < 0.001 ? left : 0.001;
        struct timespec ts = { 0, (long)(step * 1e9) };
        nanosleep(&ts, NULL);
    }
}

int wsjob_fail(wsjob_ctx *c, enum wsjob_error code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->code = (int)code;
    c->fails++;
    return WSJOB_ERR;
}

size_t wsjob_max_output(wsjob_ctx *c)
{
    return c->max_output;
}

const char *wsjob_option(wsjob_ctx *c, const char *name, unsigned index)
{
    if (strcmp(name, "fetch-allow") != 0 || !c->allow)
        return NULL;
    for (unsigned i = 0; c->allow[i]; i++)
        if (i == index)
            return c->allow[i];
    return NULL;
}

static void ctx_init(wsjob_ctx *c, const char *input)
{
    *c = (wsjob_ctx){ .in = input, .in_len = input ? strlen(input) : 0,
                      .cancel_after_polls = -1, .cancel_after_chunks = -1,
                      .max_output = 1 << 20 };
}

static void ctx_free(wsjob_ctx *c)
{
    for (size_t i = 0; i < c->n_chunks; i++)
        free(c->chunks[i].p);
    free(c->chunks);
    free(c->out);
}

/* Runs a job and checks the handler's side of the contract: an error is
 * recorded exactly once and only when the result says so. */
static int run_fn(wsjob_fn fn, wsjob_ctx *c)
{
    int rc = fn(c);
    ck_assert(rc == WSJOB_OK || rc == WSJOB_ERR);
    if (rc == WSJOB_OK)
        ck_assert_int_eq(c->fails, 0);
    else
        ck_assert_msg(c->fails == 1, "%d errors recorded", c->fails);
    return rc;
}

static wsjob_fn builtin(const char *name)
{
    for (const struct wsjob_handler *h = handlers_builtin(); h->name; h++)
        if (strcmp(h->name, name) == 0)
            return h->run;
    ck_abort_msg("no built-in %s", name);
    return NULL;
}

static int run(const char *type, wsjob_ctx *c)
{
    return run_fn(builtin(type), c);
}

/* Output of a successful job as a string (caller's ctx keeps it). */
static const char *output_of(const char *type, wsjob_ctx *c)
{
    int rc = run(type, c);
    ck_assert_msg(rc == WSJOB_OK, "%s failed: %d %s", type, c->code, c->msg);
    ck_assert(c->has_out);
    c->out = realloc(c->out, c->out_len + 1);
    c->out[c->out_len] = '\0';
    return c->out;
}

static void expect_error(const char *type, const char *input, int code)
{
    wsjob_ctx c;
    ctx_init(&c, input);
    int rc = run(type, &c);
    ck_assert_msg(rc == WSJOB_ERR && c.code == code,
                  "%s %s: rc %d code %d (want %d) %s", type, input, rc, c.code,
                  code, c.msg);
    ck_assert_msg(c.msg[0] != '\0', "%s %s: empty message", type, input);
    ctx_free(&c);
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

START_TEST(table_lists_six_builtins)
{
    static const char *const names[] = {
        "echo", "sha256", "modsum", "sleep", "frames", "fetch"
    };
    static const enum wsjob_class cls[] = {
        WSJOB_CPU, WSJOB_CPU, WSJOB_CPU, WSJOB_IO, WSJOB_CPU, WSJOB_IO
    };
    const struct wsjob_handler *h = handlers_builtin();
    for (int i = 0; i < 6; i++) {
        ck_assert_str_eq(h[i].name, names[i]);
        ck_assert_int_eq(h[i].cls, cls[i]);
        ck_assert_ptr_nonnull(h[i].run);
        ck_assert_uint_eq(h[i].api_version, WSJOB_API_VERSION);
    }
    ck_assert_ptr_null(h[6].name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* echo                                                                */

START_TEST(echo_returns_input_bytes)
{
    static const char in[] = "bin\0ary\xff";
    wsjob_ctx c;
    ctx_init(&c, NULL);
    c.in = in;
    c.in_len = sizeof in - 1;
    ck_assert_int_eq(run("echo", &c), WSJOB_OK);
    ck_assert_uint_eq(c.out_len, sizeof in - 1);
    ck_assert_mem_eq(c.out, in, sizeof in - 1);
    ctx_free(&c);
}
END_TEST

START_TEST(echo_empty_input_gives_empty_output)
{
    wsjob_ctx c;
    ctx_init(&c, "");
    ck_assert_str_eq(output_of("echo", &c), "");
    ctx_free(&c);
}
END_TEST

START_TEST(echo_over_limit_is_too_large)
{
    wsjob_ctx c;
    ctx_init(&c, "12345");
    c.max_output = 4;
    ck_assert_int_eq(run("echo", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_TOO_LARGE);
    ctx_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* sha256                                                              */

/* h_1..h_3 of "abc", from the shell:
 *   h=$(printf abc | sha256sum | cut -c1-64); printf %s "$h" | sha256sum ... */
static const char *const abc_chain[] = {
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "dfe7a23fefeea519e9bbfdd1a6be94c4b2e4529dd6b7cbea83f9959c2621b13c",
    "bbdb08dd3f8e0a2dbd9a4f45045fdf45cebee1ac6706de3353e753234b318e78",
};

START_TEST(sha256_abc_known_answers)
{
    char in[64];
    snprintf(in, sizeof in, "{\"data\":\"abc\",\"rounds\":%d}", _i + 1);
    wsjob_ctx c;
    ctx_init(&c, in);
    ck_assert_str_eq(output_of("sha256", &c), abc_chain[_i]);
    ctx_free(&c);
}
END_TEST

/* The reference: the chain computed with mbedTLS only, one call a round. */
static void reference_chain(const void *data, size_t len, long rounds, char hex[65])
{
    unsigned char d[32];
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    ck_assert_int_eq(mbedtls_sha256(data, len, d, 0), 0);
#else
    ck_assert_int_eq(mbedtls_sha256_ret(data, len, d, 0), 0);
#endif
    for (long r = 1; ; r++) {
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        if (r == rounds)
            return;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
        ck_assert_int_eq(mbedtls_sha256((unsigned char *)hex, 64, d, 0), 0);
#else
        ck_assert_int_eq(mbedtls_sha256_ret((unsigned char *)hex, 64, d, 0), 0);
#endif
    }
}

START_TEST(sha256_matches_reference_chain)
{
    /* Around the batch size (1024) and the benchmark's 2000. */
    static const long rounds[] = { 1, 2, 4, 100, 1023, 1024, 1025, 1026, 2000, 4097 };
    static const struct { const char *json; const char *raw; size_t len; } data[] = {
        { "\"\"", "", 0 },
        { "\"a\\u0000b\"", "a\0b", 3 },
        { "\"h\\u00e9llo\"", "h\xc3\xa9llo", 6 },
    };
    for (size_t d = 0; d < sizeof data / sizeof data[0]; d++) {
        for (size_t r = 0; r < sizeof rounds / sizeof rounds[0]; r++) {
            char in[128], want[65];
            snprintf(in, sizeof in, "{\"rounds\":%ld,\"data\":%s}",
                     rounds[r], data[d].json);
            reference_chain(data[d].raw, data[d].len, rounds[r], want);
            wsjob_ctx c;
            ctx_init(&c, in);
            ck_assert_msg(strcmp(output_of("sha256", &c), want) == 0,
                          "%s: %s, want %s", in, c.out, want);
            ctx_free(&c);
        }
    }
}
END_TEST

START_TEST(sha256_cancel_stops_within_a_batch)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"data\":\"x\",\"rounds\":100000000}");
    c.cancel_after_polls = 3;
    double t0 = now_s();
    ck_assert_int_eq(run("sha256", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_int_eq(c.polls, 4);
    ck_assert_msg(now_s() - t0 < 0.5, "took %.3f s", now_s() - t0);
    ctx_free(&c);
}
END_TEST

START_TEST(sha256_reports_progress_on_long_chains)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"data\":\"x\",\"rounds\":300000}");
    output_of("sha256", &c);
    ck_assert_int_ge(c.progress_calls, 2);
    ck_assert_uint_eq(c.last_total, 300000);
    ck_assert_uint_lt(c.last_done, 300000);
    ck_assert_uint_gt(c.last_done, 0);
    ctx_free(&c);
}
END_TEST

START_TEST(sha256_short_chain_reports_no_progress)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"data\":\"x\",\"rounds\":2000}");
    output_of("sha256", &c);
    ck_assert_int_eq(c.progress_calls, 0);
    ctx_free(&c);
}
END_TEST

static const char *const sha256_bad[] = {
    "", "abc", "[1,2]", "\"text\"", "{}", "{\"data\":\"x\"}", "{\"rounds\":1}",
    "{\"data\":1,\"rounds\":1}", "{\"data\":null,\"rounds\":1}",
    "{\"data\":\"x\",\"rounds\":\"1\"}", "{\"data\":\"x\",\"rounds\":true}",
    "{\"data\":\"x\",\"rounds\":1.0}", "{\"data\":\"x\",\"rounds\":0}",
    "{\"data\":\"x\",\"rounds\":-1}", "{\"data\":\"x\",\"rounds\":100000001}",
    "{\"data\":\"x\",\"rounds\":99999999999999999999}",
    "{\"data\":\"x\",\"rounds\":1,\"salt\":1}",
    "{\"data\":\"x\",\"data\":\"y\",\"rounds\":1}",
    "{\"data\":\"x\",\"rounds\":1", "{\"data\":\"x\",\"rounds\":1}}",
};

START_TEST(sha256_bad_input)
{
    expect_error("sha256", sha256_bad[_i], WSJOB_E_BAD_REQUEST);
}
END_TEST

START_TEST(sha256_bad_request_names_the_field)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"data\":\"x\",\"rounds\":0}");
    ck_assert_int_eq(run("sha256", &c), WSJOB_ERR);
    ck_assert_ptr_nonnull(strstr(c.msg, "rounds"));
    ctx_free(&c);
    ctx_init(&c, "{\"rounds\":3}");
    ck_assert_int_eq(run("sha256", &c), WSJOB_ERR);
    ck_assert_ptr_nonnull(strstr(c.msg, "data"));
    ctx_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* modsum                                                              */

static uint64_t modsum_reference(uint64_t n, uint64_t k)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < k; i++)
        sum += (uint64_t)(((unsigned __int128)i * n) % 97);
    return sum;
}

static void expect_modsum(uint64_t n, uint64_t k, uint64_t want)
{
    char in[96], out[24];
    snprintf(in, sizeof in, "{\"n\":%" PRIu64 ",\"iterations\":%" PRIu64 "}", n, k);
    snprintf(out, sizeof out, "%" PRIu64, want);
    wsjob_ctx c;
    ctx_init(&c, in);
    ck_assert_msg(strcmp(output_of("modsum", &c), out) == 0, "%s: %s, want %s",
                  in, c.out, out);
    ctx_free(&c);
}

START_TEST(modsum_known_answers)
{
    expect_modsum(1, 1000, 46995);
    expect_modsum(7, 1000000, 47999900);
    expect_modsum(5, 0, 0);
}
END_TEST

START_TEST(modsum_matches_brute_force)
{
    /* Large n: i*n overflows 64 bits; the reference multiplies in 128. */
    static const uint64_t ns[] = { 0, 1, 96, 97, 98, 123456789012ULL,
                                   (1ULL << 62) + 5, INT64_MAX };
    static const uint64_t ks[] = { 1, 96, 97, 98, 12345, 1 << 20, (1 << 20) + 3 };
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            expect_modsum(ns[i], ks[j], modsum_reference(ns[i], ks[j]));
}
END_TEST

START_TEST(modsum_cancel_stops_within_milliseconds)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"n\":3,\"iterations\":100000000000}");
    c.cancel_after_polls = 5;
    ck_assert_int_eq(run("modsum", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_int_eq(c.polls, 6);
    ctx_free(&c);

    /* Cancelled by the clock: the gap between polls bounds the latency
     * (a few ms of work); the bound leaves room for a busy host's
     * preemption and is still a thousandth of the job's length. */
    ctx_init(&c, "{\"n\":3,\"iterations\":100000000000}");
    c.cancel_at = now_s() + 0.05;
    ck_assert_int_eq(run("modsum", &c), WSJOB_ERR);
    double late = now_s() - c.cancel_at;
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_msg(late < 0.25, "stopped %.1f ms after cancel", late * 1000);
    ctx_free(&c);
}
END_TEST

START_TEST(modsum_reports_progress)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"n\":3,\"iterations\":100000000}");
    output_of("modsum", &c);
    ck_assert_int_ge(c.progress_calls, 1);
    ck_assert_uint_eq(c.last_total, 100000000);
    ck_assert_uint_le(c.last_done, 100000000);
    ctx_free(&c);
}
END_TEST

static const char *const modsum_bad[] = {
    "", "7", "{}", "{\"n\":1}", "{\"iterations\":1}", "{\"n\":-1,\"iterations\":1}",
    "{\"n\":1,\"iterations\":-1}", "{\"n\":1,\"iterations\":100000000001}",
    "{\"n\":\"1\",\"iterations\":1}", "{\"n\":1,\"iterations\":1e3}",
    "{\"n\":1.5,\"iterations\":1}", "{\"n\":18446744073709551615,\"iterations\":1}",
    "{\"n\":1,\"iterations\":1,\"k\":2}",
};

START_TEST(modsum_bad_input)
{
    expect_error("modsum", modsum_bad[_i], WSJOB_E_BAD_REQUEST);
}
END_TEST

/* ------------------------------------------------------------------ */
/* sleep                                                               */

START_TEST(sleep_sleeps_about_that_long)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"ms\":50}");
    double t0 = now_s();
    ck_assert_str_eq(output_of("sleep", &c), "slept 50");
    double took = now_s() - t0;
    ck_assert_msg(took >= 0.049 && took < 0.5, "took %.3f s", took);
    ctx_free(&c);

    ctx_init(&c, "{\"ms\":0}");
    ck_assert_str_eq(output_of("sleep", &c), "slept 0");
    ctx_free(&c);
}
END_TEST

START_TEST(sleep_cancel_cuts_it_short)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"ms\":5000}");
    double t0 = now_s();
    c.cancel_at = t0 + 0.03;
    ck_assert_int_eq(run("sleep", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_msg(now_s() - t0 < 0.5, "took %.3f s", now_s() - t0);
    ck_assert(!c.has_out);
    ctx_free(&c);
}
END_TEST

START_TEST(sleep_deadline_cuts_it_short)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"ms\":600000}");
    double t0 = now_s();
    c.deadline = t0 + 0.03;
    ck_assert_int_eq(run("sleep", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_msg(now_s() - t0 < 0.5, "took %.3f s", now_s() - t0);
    ctx_free(&c);
}
END_TEST

static const char *const sleep_bad[] = {
    "", "50", "{}", "{\"ms\":-1}", "{\"ms\":600001}", "{\"ms\":\"5\"}",
    "{\"ms\":0.5}", "{\"ms\":null}", "{\"ms\":5,\"s\":1}", "[{\"ms\":5}]",
};

START_TEST(sleep_bad_input)
{
    expect_error("sleep", sleep_bad[_i], WSJOB_E_BAD_REQUEST);
}
END_TEST

/* ------------------------------------------------------------------ */
/* frames                                                              */

/* Well-formed enough for a browser: one root <svg>, every other tag
 * self-closed or closed by its own name, in order; quotes balanced. */
static int svg_well_formed(const char *s, char *why, size_t n)
{
    char stack[16][16];
    int depth = 0, roots = 0;
    const char *p = s;
    while ((p = strchr(p, '<')) != NULL) {
        const char *end = strchr(p, '>');
        if (!end)
            return snprintf(why, n, "unterminated tag"), 0;
        size_t quotes = 0;
        for (const char *q = p; q < end; q++)
            quotes += *q == '"';
        if (quotes % 2)
            return snprintf(why, n, "unbalanced quotes"), 0;
        char name[16];
        int closing = p[1] == '/';
        if (sscanf(p + 1 + closing, "%15[a-zA-Z]", name) != 1)
            return snprintf(why, n, "bad tag name"), 0;
        if (closing) {
            if (depth == 0 || strcmp(stack[--depth], name) != 0)
                return snprintf(why, n, "stray </%s>", name), 0;
        } else if (end[-1] != '/') {
            if (depth == 0)
                roots++;
            if (depth == 16)
                return snprintf(why, n, "too deep"), 0;
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
        } else if (depth == 0) {
            return snprintf(why, n, "element outside <svg>"), 0;
        }
        p = end + 1;
    }
    if (depth != 0 || roots != 1)
        return snprintf(why, n, "depth %d roots %d", depth, roots), 0;
    return 1;
}

static void expect_svg(const struct chunk *ch, int width, int height)
{
    char why[64] = "", attr[48];
    ck_assert_msg(strncmp(ch->p, "<svg", 4) == 0, "starts %.20s", ch->p);
    size_t len = ch->len;
    while (len && ch->p[len - 1] == '\n')
        len--;
    ck_assert_msg(len >= 6 && memcmp(ch->p + len - 6, "</svg>", 6) == 0, "bad end");
    ck_assert_uint_eq(strlen(ch->p), ch->len);
    ck_assert_msg(svg_well_formed(ch->p, why, sizeof why), "%s", why);
    snprintf(attr, sizeof attr, "width=\"%d\" height=\"%d\"", width, height);
    ck_assert_ptr_nonnull(strstr(ch->p, attr));
    ck_assert_ptr_nonnull(strstr(ch->p, "<path"));
}

START_TEST(frames_streams_count_distinct_svgs)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"count\":3,\"interval_ms\":0}");
    ck_assert_int_eq(run("frames", &c), WSJOB_OK);
    ck_assert_uint_eq(c.n_chunks, 3);
    ck_assert(!c.has_out);
    for (size_t i = 0; i < 3; i++) {
        expect_svg(&c.chunks[i], 320, 240);
        ck_assert_msg(c.chunks[i].len < 40000, "frame of %zu bytes", c.chunks[i].len);
    }
    ck_assert_str_ne(c.chunks[0].p, c.chunks[1].p);
    ck_assert_str_ne(c.chunks[1].p, c.chunks[2].p);
    ck_assert_str_ne(c.chunks[0].p, c.chunks[2].p);
    ck_assert_uint_eq(c.last_done, 3);
    ck_assert_uint_eq(c.last_total, 3);
    ctx_free(&c);
}
END_TEST

START_TEST(frames_are_deterministic)
{
    wsjob_ctx a, b;
    ctx_init(&a, "{\"count\":2,\"interval_ms\":0,\"width\":200,\"height\":100}");
    ctx_init(&b, "{\"count\":2,\"interval_ms\":0,\"width\":200,\"height\":100}");
    ck_assert_int_eq(run("frames", &a), WSJOB_OK);
    ck_assert_int_eq(run("frames", &b), WSJOB_OK);
    ck_assert_uint_eq(a.n_chunks, 2);
    ck_assert_uint_eq(b.n_chunks, 2);
    expect_svg(&a.chunks[1], 200, 100);
    ck_assert_str_eq(a.chunks[1].p, b.chunks[1].p);
    ctx_free(&a);
    ctx_free(&b);
}
END_TEST

START_TEST(frames_defaults)
{
    wsjob_ctx c;
    ctx_init(&c, "{}");
    double t0 = now_s();
    ck_assert_int_eq(run("frames", &c), WSJOB_OK);
    double took = now_s() - t0;
    ck_assert_uint_eq(c.n_chunks, 10);
    expect_svg(&c.chunks[9], 320, 240);
    /* Nine 100 ms pauses between ten frames. */
    ck_assert_msg(took >= 0.89 && took < 5, "took %.3f s", took);
    ctx_free(&c);
}
END_TEST

START_TEST(frames_until_cancelled)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"count\":0,\"interval_ms\":0,\"width\":64,\"height\":64}");
    c.cancel_after_chunks = 5;
    ck_assert_int_eq(run("frames", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_uint_eq(c.n_chunks, 5);
    ctx_free(&c);
}
END_TEST

START_TEST(frames_cancel_during_interval)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"count\":100,\"interval_ms\":60000}");
    double t0 = now_s();
    c.cancel_at = t0 + 0.05;
    ck_assert_int_eq(run("frames", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_uint_eq(c.n_chunks, 1);
    ck_assert_msg(now_s() - t0 < 1, "took %.3f s", now_s() - t0);
    ctx_free(&c);
}
END_TEST

START_TEST(frames_largest_size_fits_a_megabyte)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"count\":2,\"interval_ms\":0,\"width\":4096,\"height\":4096}");
    ck_assert_int_eq(run("frames", &c), WSJOB_OK);
    ck_assert_uint_eq(c.n_chunks, 2);
    expect_svg(&c.chunks[1], 4096, 4096);
    ctx_free(&c);

    ctx_init(&c, "{\"count\":1,\"width\":16,\"height\":4096}");
    ck_assert_int_eq(run("frames", &c), WSJOB_OK);
    expect_svg(&c.chunks[0], 16, 4096);
    ctx_free(&c);
}
END_TEST

START_TEST(frames_over_limit_is_too_large)
{
    wsjob_ctx c;
    ctx_init(&c, "{\"count\":3}");
    c.max_output = 2000;
    ck_assert_int_eq(run("frames", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_TOO_LARGE);
    ck_assert_uint_eq(c.n_chunks, 0);
    ctx_free(&c);
}
END_TEST

static const char *const frames_bad[] = {
    "", "3", "{\"count\":-1}", "{\"count\":1000001}", "{\"width\":15}",
    "{\"width\":4097}", "{\"height\":0}", "{\"height\":5000}",
    "{\"interval_ms\":-1}", "{\"interval_ms\":60001}", "{\"width\":\"320\"}",
    "{\"count\":2.5}", "{\"fps\":10}", "{\"count\":null}",
};

START_TEST(frames_bad_input)
{
    expect_error("frames", frames_bad[_i], WSJOB_E_BAD_REQUEST);
}
END_TEST

/* ------------------------------------------------------------------ */
/* fetch, against a small HTTP server on loopback                      */

#define BIG_BODY 100000

static int server_fd = -1;
static int server_port;
static atomic_int server_stop;
static pthread_t server_thread;

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void send_response(int fd, const char *status, const char *body, size_t len,
                          int with_length)
{
    char head[256];
    int n = with_length
        ? snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n", status, len)
        : snprintf(head, sizeof head, "HTTP/1.1 %s\r\nConnection: close\r\n\r\n", status);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

/* Holds the connection open without answering until the peer goes. */
static void stall(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char b[64];
    while (!atomic_load(&server_stop) && poll(&p, 1, 50) >= 0)
        if ((p.revents & (POLLIN | POLLHUP)) && recv(fd, b, sizeof b, 0) <= 0)
            return;
}

static void serve(int fd)
{
    char req[2048] = "";
    size_t got = 0;
    while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            return;
        got += (size_t)r;
        req[got] = '\0';
    }
    char path[256] = "";
    sscanf(req, "GET %255s", path);
    static char big[BIG_BODY];
    memset(big, 'z', sizeof big);
    if (strcmp(path, "/hello") == 0)
        send_response(fd, "200 OK", "hello, world\n", 13, 1);
    else if (strcmp(path, "/big") == 0)
        send_response(fd, "200 OK", big, sizeof big, 1);
    else if (strcmp(path, "/big-unsized") == 0)
        send_response(fd, "200 OK", big, sizeof big, 0);
    else if (strcmp(path, "/moved") == 0)
        send_response(fd, "302 Found\r\nLocation: http://example.com/", "", 0, 1);
    else if (strcmp(path, "/slow") == 0)
        stall(fd);
    else
        send_response(fd, "404 Not Found", "no such page\n", 13, 1);
}

static void *server_main(void *arg)
{
    (void)arg;
    struct pollfd p = { .fd = server_fd, .events = POLLIN };
    while (!atomic_load(&server_stop)) {
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(server_fd, NULL, NULL);
        if (fd < 0)
            continue;
        serve(fd);
        close(fd);
    }
    return NULL;
}

static void server_start(void)
{
    server_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(server_fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(server_fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(server_fd, 16), 0);
    ck_assert_int_eq(getsockname(server_fd, (struct sockaddr *)&a, &alen), 0);
    server_port = ntohs(a.sin_port);
    atomic_store(&server_stop, 0);
    ck_assert_int_eq(pthread_create(&server_thread, NULL, server_main, NULL), 0);
}

static void server_end(void)
{
    atomic_store(&server_stop, 1);
    pthread_join(server_thread, NULL);
    close(server_fd);
}

/* Runs fetch of `path` on the test server with the given allow list. */
static int fetch(wsjob_ctx *c, const char *url_fmt, const char *extra,
                 const char *const *allow)
{
    static char in[512];
    char url[256];
    snprintf(url, sizeof url, url_fmt, server_port);
    snprintf(in, sizeof in, "{\"url\":\"%s\"%s}", url, extra ? extra : "");
    ctx_init(c, in);
    c->allow = allow;
    return run("fetch", c);
}

static const char *port_entry(void)
{
    static char e[32];
    snprintf(e, sizeof e, "127.0.0.1:%d", server_port);
    return e;
}

START_TEST(fetch_without_allow_list_is_forbidden)
{
    wsjob_ctx c;
    ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d/hello", NULL, NULL), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_FORBIDDEN);
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_unlisted_host_is_forbidden)
{
    const char *allow[] = { "example.com", "10.0.0.1:*", NULL };
    wsjob_ctx c;
    ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d/hello", NULL, allow), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_FORBIDDEN);
    ctx_free(&c);
    /* The host is what follows the '@', not what precedes it. */
    const char *allow_local[] = { "127.0.0.1:*", NULL };
    ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d@example.com/", NULL, allow_local),
                     WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_FORBIDDEN);
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_host_alone_allows_default_port_only)
{
    const char *allow[] = { "127.0.0.1", NULL };
    wsjob_ctx c;
    ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d/hello", NULL, allow), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_FORBIDDEN);
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_gets_the_body)
{
    const char *exact[] = { "example.com", port_entry(), NULL };
    const char *any[] = { "127.0.0.1:*", NULL };
    const char *const *lists[] = { exact, any };
    for (int i = 0; i < 2; i++) {
        wsjob_ctx c;
        ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d/hello", NULL, lists[i]),
                         WSJOB_OK);
        ck_assert_uint_eq(c.out_len, 13);
        ck_assert_mem_eq(c.out, "hello, world\n", 13);
        ctx_free(&c);
    }
}
END_TEST

START_TEST(fetch_body_up_to_max_bytes)
{
    const char *allow[] = { port_entry(), NULL };
    wsjob_ctx c;
    ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d/big", ",\"max_bytes\":100000", allow),
                     WSJOB_OK);
    ck_assert_uint_eq(c.out_len, BIG_BODY);
    ck_assert_int_eq(c.out[BIG_BODY - 1], 'z');
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_over_max_bytes_is_too_large)
{
    const char *allow[] = { port_entry(), NULL };
    static const char *const paths[] = { "http://127.0.0.1:%d/big",
                                         "http://127.0.0.1:%d/big-unsized" };
    for (int i = 0; i < 2; i++) {
        wsjob_ctx c;
        ck_assert_int_eq(fetch(&c, paths[i], ",\"max_bytes\":99999", allow), WSJOB_ERR);
        ck_assert_int_eq(c.code, WSJOB_E_TOO_LARGE);
        ctx_free(&c);
    }
    /* The default limit follows --max-message when that is smaller. */
    wsjob_ctx c;
    ck_assert_msg(fetch(&c, "http://127.0.0.1:%d/big-unsized", NULL, allow) == WSJOB_OK,
                  "%d %s", c.code, c.msg);
    ck_assert_uint_eq(c.out_len, BIG_BODY);
    ctx_free(&c);
    char in[128];
    snprintf(in, sizeof in, "{\"url\":\"http://127.0.0.1:%d/big\"}", server_port);
    ctx_init(&c, in);
    c.allow = allow;
    c.max_output = 5000;
    ck_assert_int_eq(run("fetch", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_TOO_LARGE);
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_http_error_is_handler_error)
{
    const char *allow[] = { port_entry(), NULL };
    wsjob_ctx c;
    ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d/nothing", NULL, allow), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_HANDLER_ERROR);
    ck_assert_ptr_nonnull(strstr(c.msg, "404"));
    ctx_free(&c);
    ck_assert_int_eq(fetch(&c, "http://127.0.0.1:%d/moved", NULL, allow), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_HANDLER_ERROR);
    ck_assert_ptr_nonnull(strstr(c.msg, "302"));
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_ipv6_entry_matches_bracketed_host)
{
    /* Port 1 on ::1 refuses: getting past the check to a connection error
     * shows the entry matched. */
    const char *allow[] = { "[::1]:1", NULL };
    wsjob_ctx c;
    ck_assert_int_eq(fetch(&c, "http://[::1]:1/", NULL, allow), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_HANDLER_ERROR);
    ctx_free(&c);
    ck_assert_int_eq(fetch(&c, "http://[::1]:2/", NULL, allow), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_FORBIDDEN);
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_cancel_stops_a_stalled_transfer)
{
    const char *allow[] = { port_entry(), NULL };
    wsjob_ctx c;
    char in[128];
    snprintf(in, sizeof in, "{\"url\":\"http://127.0.0.1:%d/slow\"}", server_port);
    ctx_init(&c, in);
    c.allow = allow;
    double t0 = now_s();
    c.cancel_at = t0 + 0.1;
    ck_assert_int_eq(run("fetch", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    /* libcurl polls its progress callback about once a second when idle. */
    ck_assert_msg(now_s() - t0 < 2.5, "took %.3f s", now_s() - t0);
    ctx_free(&c);
}
END_TEST

START_TEST(fetch_deadline_stops_a_stalled_transfer)
{
    const char *allow[] = { port_entry(), NULL };
    wsjob_ctx c;
    char in[128];
    snprintf(in, sizeof in, "{\"url\":\"http://127.0.0.1:%d/slow\"}", server_port);
    ctx_init(&c, in);
    c.allow = allow;
    double t0 = now_s();
    c.deadline = t0 + 0.2;
    ck_assert_int_eq(run("fetch", &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ck_assert_msg(now_s() - t0 < 1.0, "took %.3f s", now_s() - t0);
    ctx_free(&c);
}
END_TEST

static const char *const fetch_bad[] = {
    "", "{}", "{\"url\":1}", "{\"url\":\"not a url\"}", "{\"url\":\"ftp://127.0.0.1/\"}",
    "{\"url\":\"file:///etc/passwd\"}", "{\"url\":\"gopher://127.0.0.1/\"}",
    "{\"url\":\"http://127.0.0.1/\",\"max_bytes\":0}",
    "{\"url\":\"http://127.0.0.1/\",\"max_bytes\":1048577}",
    "{\"url\":\"http://127.0.0.1/\",\"max_bytes\":\"10\"}",
    "{\"url\":\"http://127.0.0.1/\\u0000x\"}",
    "{\"url\":\"http://127.0.0.1/\",\"method\":\"POST\"}",
};

START_TEST(fetch_bad_input)
{
    /* Bad input is refused before the allow list is consulted. */
    const char *allow[] = { "127.0.0.1:*", NULL };
    wsjob_ctx c;
    ctx_init(&c, fetch_bad[_i]);
    c.allow = allow;
    ck_assert_int_eq(run("fetch", &c), WSJOB_ERR);
    ck_assert_msg(c.code == WSJOB_E_BAD_REQUEST, "%s: %d %s", fetch_bad[_i],
                  c.code, c.msg);
    ctx_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Plug-ins                                                            */

static const struct wsjob_handler *plugin(const char *name)
{
    const char *dir = getenv("WSJOBD_BUILD");
    char path[1024];
    snprintf(path, sizeof path, "%s/plugins/%s.so", dir && *dir ? dir : "build", name);
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(so != NULL, "cannot load %s: %s", path, dlerror());
    const struct wsjob_handler *table = dlsym(so, "wsjob_handlers");
    ck_assert_msg(table != NULL, "%s exports no wsjob_handlers", path);
    ck_assert_uint_eq(table[0].api_version, WSJOB_API_VERSION);
    return table;
}

static const struct wsjob_handler *entry(const struct wsjob_handler *t, const char *name)
{
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    ck_abort_msg("no handler %s", name);
    return NULL;
}

START_TEST(example_wordcount)
{
    const struct wsjob_handler *h = entry(plugin("example"), "wordcount");
    ck_assert_int_eq(h->cls, WSJOB_CPU);
    static const struct { const char *in, *out; } cases[] = {
        { "", "{\"lines\":0,\"words\":0,\"bytes\":0}" },
        { "hello world\nfoo\n", "{\"lines\":2,\"words\":3,\"bytes\":16}" },
        { "  a\t\tb  \r\nc", "{\"lines\":1,\"words\":3,\"bytes\":11}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsjob_ctx c;
        ctx_init(&c, cases[i].in);
        ck_assert_int_eq(run_fn(h->run, &c), WSJOB_OK);
        ck_assert_uint_eq(c.out_len, strlen(cases[i].out));
        ck_assert_mem_eq(c.out, cases[i].out, c.out_len);
        ctx_free(&c);
    }
}
END_TEST

START_TEST(example_delay_echo)
{
    const struct wsjob_handler *h = entry(plugin("example"), "delay_echo");
    ck_assert_int_eq(h->cls, WSJOB_IO);
    wsjob_ctx c;
    ctx_init(&c, "30 hi there");
    double t0 = now_s();
    ck_assert_int_eq(run_fn(h->run, &c), WSJOB_OK);
    ck_assert_msg(now_s() - t0 >= 0.029, "took %.3f s", now_s() - t0);
    ck_assert_uint_eq(c.out_len, 8);
    ck_assert_mem_eq(c.out, "hi there", 8);
    ctx_free(&c);

    ctx_init(&c, "60000 never");
    c.cancel_at = now_s() + 0.02;
    ck_assert_int_eq(run_fn(h->run, &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_CANCELLED);
    ctx_free(&c);

    static const char *const bad[] = { "", "x", "10", "60001 x", "-5 x", " 5 x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ctx_init(&c, bad[i]);
        ck_assert_int_eq(run_fn(h->run, &c), WSJOB_ERR);
        ck_assert_msg(c.code == WSJOB_E_BAD_REQUEST, "\"%s\": %d", bad[i], c.code);
        ctx_free(&c);
    }
}
END_TEST

/* Runs fn in a child process and returns its wait status. */
static int in_child(wsjob_fn fn, const char *input, int wait_ms)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        wsjob_ctx c;
        ctx_init(&c, input);
        c.cancelled = 1;  /* a handler that polls would stop at once */
        _exit(fn(&c) == WSJOB_OK ? 0 : 1);
    }
    int status;
    if (wait_ms > 0) {
        struct timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);  /* still running */
        kill(pid, SIGKILL);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

START_TEST(crash_kills_its_worker)
{
    const struct wsjob_handler *h = entry(plugin("crash"), "crash");
    int status = in_child(h->run, "", 0);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGSEGV);
}
END_TEST

START_TEST(crash_once_crashes_then_survives)
{
    const struct wsjob_handler *h = entry(plugin("crash"), "crash_once");
    char path[] = "/tmp/wsjobd-crash-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(path);
    int status = in_child(h->run, path, 0);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGSEGV);
    wsjob_ctx c;
    ctx_init(&c, path);
    ck_assert_int_eq(run_fn(h->run, &c), WSJOB_OK);
    ck_assert_mem_eq(c.out, "survived", 8);
    ctx_free(&c);
    unlink(path);
}
END_TEST

START_TEST(spin_ignores_cancel)
{
    const struct wsjob_handler *h = entry(plugin("spin"), "spin");
    ck_assert_int_eq(h->cls, WSJOB_CPU);
    int status = in_child(h->run, "", 300);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGKILL);
}
END_TEST

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

START_TEST(leak_grows_the_resident_set)
{
    const struct wsjob_handler *h = entry(plugin("leak"), "leak");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Exit codes say which check failed; _exit skips leak reports. */
        long before = rss_kib();
        for (int job = 0; job < 2; job++) {
            wsjob_ctx c;
            ctx_init(&c, "24");
            if (h->run(&c) != WSJOB_OK)
                _exit(2);
            if (c.out_len != 13 || memcmp(c.out, "leaked 24 MiB", 13) != 0)
                _exit(3);
            ctx_free(&c);
        }
        _exit(rss_kib() - before >= 2 * 23 * 1024 ? 0 : 4);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);

    wsjob_ctx c;
    ctx_init(&c, "2000");
    ck_assert_int_eq(run_fn(h->run, &c), WSJOB_ERR);
    ck_assert_int_eq(c.code, WSJOB_E_BAD_REQUEST);
    ctx_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *builtin_suite(void)
{
    Suite *s = suite_create("handlers");
    TCase *t = tcase_create("echo");
    tcase_add_test(t, table_lists_six_builtins);
    tcase_add_test(t, echo_returns_input_bytes);
    tcase_add_test(t, echo_empty_input_gives_empty_output);
    tcase_add_test(t, echo_over_limit_is_too_large);
    suite_add_tcase(s, t);

    t = tcase_create("sha256");
    tcase_set_timeout(t, 60);
    tcase_add_loop_test(t, sha256_abc_known_answers, 0, N(abc_chain));
    tcase_add_test(t, sha256_matches_reference_chain);
    tcase_add_test(t, sha256_cancel_stops_within_a_batch);
    tcase_add_test(t, sha256_reports_progress_on_long_chains);
    tcase_add_test(t, sha256_short_chain_reports_no_progress);
    tcase_add_loop_test(t, sha256_bad_input, 0, N(sha256_bad));
    tcase_add_test(t, sha256_bad_request_names_the_field);
    suite_add_tcase(s, t);

    t = tcase_create("modsum");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, modsum_known_answers);
    tcase_add_test(t, modsum_matches_brute_force);
    tcase_add_test(t, modsum_cancel_stops_within_milliseconds);
    tcase_add_test(t, modsum_reports_progress);
    tcase_add_loop_test(t, modsum_bad_input, 0, N(modsum_bad));
    suite_add_tcase(s, t);

    t = tcase_create("sleep");
    tcase_set_timeout(t, 10);
    tcase_add_test(t, sleep_sleeps_about_that_long);
    tcase_add_test(t, sleep_cancel_cuts_it_short);
    tcase_add_test(t, sleep_deadline_cuts_it_short);
    tcase_add_loop_test(t, sleep_bad_input, 0, N(sleep_bad));
    suite_add_tcase(s, t);

    t = tcase_create("frames");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, frames_streams_count_distinct_svgs);
    tcase_add_test(t, frames_are_deterministic);
    tcase_add_test(t, frames_defaults);
    tcase_add_test(t, frames_until_cancelled);
    tcase_add_test(t, frames_cancel_during_interval);
    tcase_add_test(t, frames_largest_size_fits_a_megabyte);
    tcase_add_test(t, frames_over_limit_is_too_large);
    tcase_add_loop_test(t, frames_bad_input, 0, N(frames_bad));
    suite_add_tcase(s, t);

    t = tcase_create("fetch");
    tcase_set_timeout(t, 20);
    tcase_add_checked_fixture(t, server_start, server_end);
    tcase_add_test(t, fetch_without_allow_list_is_forbidden);
    tcase_add_test(t, fetch_unlisted_host_is_forbidden);
    tcase_add_test(t, fetch_host_alone_allows_default_port_only);
    tcase_add_test(t, fetch_gets_the_body);
    tcase_add_test(t, fetch_body_up_to_max_bytes);
    tcase_add_test(t, fetch_over_max_bytes_is_too_large);
    tcase_add_test(t, fetch_http_error_is_handler_error);
    tcase_add_test(t, fetch_ipv6_entry_matches_bracketed_host);
    tcase_add_test(t, fetch_cancel_stops_a_stalled_transfer);
    tcase_add_test(t, fetch_deadline_stops_a_stalled_transfer);
    tcase_add_loop_test(t, fetch_bad_input, 0, N(fetch_bad));
    suite_add_tcase(s, t);
    return s;
}

static Suite *plugin_suite(void)
{
    Suite *s = suite_create("plugins");
    TCase *t = tcase_create("example");
    tcase_add_test(t, example_wordcount);
    tcase_add_test(t, example_delay_echo);
    suite_add_tcase(s, t);

    t = tcase_create("test plug-ins");
    tcase_set_timeout(t, 20);
    tcase_add_test(t, crash_kills_its_worker);
    tcase_add_test(t, crash_once_crashes_then_survives);
    tcase_add_test(t, spin_ignores_cancel);
    tcase_add_test(t, leak_grows_the_resident_set);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(builtin_suite());
    srunner_add_suite(sr, plugin_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
