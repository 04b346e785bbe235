/* leak.c — test plug-in: a CPU job that leaks memory on purpose.
 *
 *   leak (cpu)  input: decimal N, 1..1024 (empty: 16).  Allocates N MiB,
 *               writes to every page so it counts in the resident set, and
 *               never frees it; outputs "leaked N MiB".  Each job grows
 *               the worker, which is what --worker-max-rss recycling needs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsjob.h"

#define LEAK_DEFAULT_MIB 16
#define LEAK_MAX_MIB 1024

/* Every block ever leaked, chained through its first word.  Reachable on
 * purpose: the resident set grows as it should, yet a worker built with
 * LeakSanitizer does not report the blocks when it exits. */
static void *leaked;

static long parse_mib(const char *in, size_t len)
{
    if (len == 0)
        return LEAK_DEFAULT_MIB;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] < '0' || in[i] > '9')
            return -1;
        v = v * 10 + (in[i] - '0');
        if (v > LEAK_MAX_MIB)
            return -1;
    }
    return v;
}

static int leak(wsjob_ctx *ctx)
{
    size_t len;
    const char *in = wsjob_input(ctx, &len);
    long mib = parse_mib(in, len);
    if (mib < 1)
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "input must be 1..%d (MiB)",
                          LEAK_MAX_MIB);
    size_t bytes = (size_t)mib << 20;
    char *p = malloc(bytes);
    if (!p)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "out of memory");
    long page = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < bytes; off += (size_t)(page > 0 ? page : 4096))
        p[off] = 1;
    memcpy(p, &leaked, sizeof leaked);
    leaked = p;
    char out[32];
    int n = snprintf(out, sizeof out, "leaked %ld MiB", mib);
    if (wsjob_output(ctx, out, (size_t)n) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}

__attribute__((visibility("default")))
const struct wsjob_handler wsjob_handlers[] = {
    { "leak", WSJOB_CPU, leak, WSJOB_API_VERSION },
    { 0 },
};
