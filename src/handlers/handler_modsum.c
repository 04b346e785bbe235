/* handler_modsum.c — `modsum`: the CPU-burning job (SPEC §7).
 *
 * Input {"n":N,"iterations":K}, 0 <= N <= 2^63-1, 0 <= K <= 10^11.  The
 * output is the decimal sum over i < K of (i*N) mod 97.
 *
 * The residue is exact: (i*N) mod 97 is carried from one i to the next as
 * r += N mod 97, never as the 64-bit product, which would wrap for large N
 * and change the answer.  The sum fits 64 bits (at most 96 * 10^11).  A
 * negative N is a bad_request rather than a choice between C's and the
 * mathematician's remainder.
 *
 * The job exists to burn CPU predictably (saturating workers, testing
 * cancel), so it really loops, one step per i; there is deliberately no
 * closed form.  It polls cancel every 2^20 steps, about a millisecond. */
#include <inttypes.h>
#include <stdio.h>

#include "handlers/handler_args.h"
#include "handlers/handlers_builtin.h"

#define MODSUM_MOD 97
#define MODSUM_MAX_ITERATIONS 100000000000LL
#define BATCH (1u << 20)
/* Batches between progress reports: ~64 ms, past the front's rate limit
 * anyway, and no report at all for jobs shorter than that. */
#define PROGRESS_BATCHES 64

/* Adds `count` terms starting with residue *r, stepping by step (< 97).
 * The conditional subtract compiles to a cmov: ~1 ns a step, no branch to
 * mispredict. */
static uint64_t sum_batch(unsigned *r, unsigned step, uint64_t count)
{
    unsigned res = *r;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < count; i++) {
        sum += res;
        res += step;
        res = res >= MODSUM_MOD ? res - MODSUM_MOD : res;
    }
    *r = res;
    return sum;
}

static int read_args(wsjob_ctx *ctx, int64_t *n, int64_t *k)
{
    static const char *const known[] = { "n", "iterations", NULL };
    json_t *obj = args_object(ctx, known);
    if (!obj)
        return WSJOB_ERR;
    int rc = args_int(ctx, obj, "n", 0, INT64_MAX, n);
    if (rc == WSJOB_OK)
        rc = args_int(ctx, obj, "iterations", 0, MODSUM_MAX_ITERATIONS, k);
    json_decref(obj);
    return rc;
}

int handler_modsum(wsjob_ctx *ctx)
{
    int64_t n, k;
    if (read_args(ctx, &n, &k) != WSJOB_OK)
        return WSJOB_ERR;
    const uint64_t total = (uint64_t)k;
    const unsigned step = (unsigned)(n % MODSUM_MOD);
    unsigned r = 0; /* (i * N) mod 97 for the next i */
    uint64_t sum = 0, done = 0, batches = 0;
    while (done < total) {
        uint64_t count = total - done < BATCH ? total - done : BATCH;
        sum += sum_batch(&r, step, count);
        done += count;
        if (wsjob_cancelled(ctx))
            return wsjob_fail(ctx, WSJOB_E_CANCELLED,
                              "cancelled after %" PRIu64 " iterations", done);
        if (++batches % PROGRESS_BATCHES == 0)
            wsjob_progress(ctx, done, total);
    }
    char out[24];
    int len = snprintf(out, sizeof out, "%" PRIu64, sum);
    if (wsjob_output(ctx, out, (size_t)len) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}
