/* example.c — a plug-in for wsjobd, and the model for writing one.
 *
 * Build:  cc -shared -fPIC -Iinclude -o example.so src/plugins/example.c
 * Load:   wsjobd --handlers ./example.so
 *
 * Job types:
 *
 *   wordcount (cpu)   input: any text.  Output: {"lines":L,"words":W,"bytes":B}
 *                     counted as wc(1) does in the C locale: lines are
 *                     newline characters, words are runs of non-space bytes.
 *
 *   delay_echo (io)   input: "MS TEXT", a decimal delay of 0..60000
 *                     milliseconds, one space, then any bytes.  Waits MS ms
 *                     (cancellable) and outputs TEXT.  `wsjob submit
 *                     delay_echo "250 hello"` prints hello a quarter second
 *                     later.
 *
 * A plug-in links against nothing: the wsjob_* functions come from the
 * daemon when the object is loaded.  CPU handlers run in a worker process
 * one job at a time; I/O handlers share a process with other threads, so
 * they keep no mutable global state.  Both poll wsjob_cancelled() (or use
 * wsjob_sleep()) so that a cancel stops them quickly. */
#include <stdio.h>

#include "wsjob.h"

/* Bytes between cancel polls in wordcount: a few microseconds of work. */
#define WC_POLL_BYTES 65536
#define DELAY_MAX_MS 60000

static int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int wordcount(wsjob_ctx *ctx)
{
    size_t len;
    const unsigned char *in = wsjob_input(ctx, &len);
    unsigned long long lines = 0, words = 0;
    int in_word = 0;
    for (size_t i = 0; i < len; i++) {
        if (i % WC_POLL_BYTES == 0 && wsjob_cancelled(ctx))
            return wsjob_fail(ctx, WSJOB_E_CANCELLED, "cancelled");
        lines += in[i] == '\n';
        if (is_space(in[i])) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    char out[96];
    int n = snprintf(out, sizeof out, "{\"lines\":%llu,\"words\":%llu,\"bytes\":%zu}",
                     lines, words, len);
    if (n < 0 || (size_t)n >= sizeof out || wsjob_output(ctx, out, (size_t)n) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}

/* Reads "MS " at the start of the input; returns the offset of TEXT. */
static int parse_delay(const char *in, size_t len, long *ms, size_t *text)
{
    long v = 0;
    size_t i = 0;
    for (; i < len && in[i] >= '0' && in[i] <= '9'; i++) {
        v = v * 10 + (in[i] - '0');
        if (v > DELAY_MAX_MS)
            return -1;
    }
    if (i == 0 || i == len || in[i] != ' ')
        return -1;
    *ms = v;
    *text = i + 1;
    return 0;
}

static int delay_echo(wsjob_ctx *ctx)
{
    size_t len, text;
    const char *in = wsjob_input(ctx, &len);
    long ms;
    if (parse_delay(in, len, &ms, &text) != 0)
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST,
                          "input must be \"MS TEXT\" with MS 0..%d", DELAY_MAX_MS);
    if (wsjob_sleep(ctx, ms) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_CANCELLED, "cancelled while waiting");
    if (wsjob_output(ctx, in + text, len - text) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}

/* The one symbol wsjobd looks for.  The first entry carries the API
 * version the plug-in was built against; a NULL name ends the table. */
__attribute__((visibility("default")))
const struct wsjob_handler wsjob_handlers[] = {
    { "wordcount",  WSJOB_CPU, wordcount,  WSJOB_API_VERSION },
    { "delay_echo", WSJOB_IO,  delay_echo, WSJOB_API_VERSION },
    { 0 },
};
