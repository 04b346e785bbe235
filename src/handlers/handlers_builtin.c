/* handlers_builtin.c — the table of built-in job types. */
#include "handlers/handlers_builtin.h"

static const struct wsjob_handler builtin[] = {
    { "echo",   WSJOB_CPU, handler_echo,   WSJOB_API_VERSION },
    { "sha256", WSJOB_CPU, handler_sha256, WSJOB_API_VERSION },
    { "modsum", WSJOB_CPU, handler_modsum, WSJOB_API_VERSION },
    { "sleep",  WSJOB_IO,  handler_sleep,  WSJOB_API_VERSION },
    { "frames", WSJOB_CPU, handler_frames, WSJOB_API_VERSION },
    { "fetch",  WSJOB_IO,  handler_fetch,  WSJOB_API_VERSION },
    { 0 },
};

const struct wsjob_handler *handlers_builtin(void)
{
    return builtin;
}
