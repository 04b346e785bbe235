/* chunks.c — test plug-in: a stream made of the input.
 *
 *   chunk_echo (cpu)  emits its input as one chunk, then ends with no
 *                     output, so the bytes reach the client in a chunk
 *                     event, with whatever encoding chunks get. */
#include "wsjob.h"

static int chunk_echo(wsjob_ctx *ctx)
{
    size_t len;
    const void *in = wsjob_input(ctx, &len);
    return wsjob_emit(ctx, in, len) == 0 ? WSJOB_OK : WSJOB_ERR;
}

__attribute__((visibility("default")))
const struct wsjob_handler wsjob_handlers[] = {
    { "chunk_echo", WSJOB_CPU, chunk_echo, WSJOB_API_VERSION },
    { 0 },
};
