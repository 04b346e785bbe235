/* handler_sleep.c — `sleep`: a blocking wait on an I/O thread (SPEC §7).
 *
 * Input {"ms":M}, 0 <= M <= 600000; output "slept M".  It stands in for a
 * handler blocked on a slow disk or peer: it holds its thread the whole
 * time, yet wakes at once on cancel or deadline. */
#include <inttypes.h>
#include <stdio.h>

#include "handlers/handler_args.h"
#include "handlers/handlers_builtin.h"

#define SLEEP_MAX_MS 600000

int handler_sleep(wsjob_ctx *ctx)
{
    static const char *const known[] = { "ms", NULL };
    json_t *obj = args_object(ctx, known);
    if (!obj)
        return WSJOB_ERR;
    int64_t ms;
    int rc = args_int(ctx, obj, "ms", 0, SLEEP_MAX_MS, &ms);
    json_decref(obj);
    if (rc != WSJOB_OK)
        return WSJOB_ERR;
    /* The runtime tells a timeout from a cancel; the handler only has to
     * stop and say it was cut short. */
    if (wsjob_sleep(ctx, ms) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_CANCELLED, "sleep cut short");
    char out[32];
    int len = snprintf(out, sizeof out, "slept %" PRId64, ms);
    if (wsjob_output(ctx, out, (size_t)len) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}
