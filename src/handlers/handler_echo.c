/* handler_echo.c — `echo`: the output is the input, byte for byte. */
#include "handlers/handlers_builtin.h"

int handler_echo(wsjob_ctx *ctx)
{
    size_t len;
    const void *in = wsjob_input(ctx, &len);
    /* An input may be over --max-message when it arrived as input_b64 text
     * that the front decoded; answer that case precisely. */
    if (len > wsjob_max_output(ctx))
        return wsjob_fail(ctx, WSJOB_E_TOO_LARGE,
                          "output of %zu bytes is over the %zu-byte limit",
                          len, wsjob_max_output(ctx));
    if (wsjob_output(ctx, in, len) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}
