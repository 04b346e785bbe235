/* spin.c — test plug-in: a CPU job that never returns.
 *
 *   spin (cpu)  loops forever and never polls for cancel, so only killing
 *               its worker after --cancel-grace ends it.  Input ignored. */
#include "wsjob.h"

static int spin(wsjob_ctx *ctx)
{
    (void)ctx;
    /* volatile: the loop must stay a loop, not be proven pointless. */
    volatile unsigned long n = 0;
    for (;;)
        n++;
    return WSJOB_OK;
}

__attribute__((visibility("default")))
const struct wsjob_handler wsjob_handlers[] = {
    { "spin", WSJOB_CPU, spin, WSJOB_API_VERSION },
    { 0 },
};
