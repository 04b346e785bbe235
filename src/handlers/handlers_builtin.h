/* handlers_builtin.h — the job types wsjobd ships (SPEC §7).
 *
 * The built-ins are written against include/wsjob.h exactly like a plug-in,
 * so the worker runs both the same way. */
#ifndef HANDLERS_BUILTIN_H
#define HANDLERS_BUILTIN_H

#include "wsjob.h"

/* The table of built-in job types, ended by an entry whose name is NULL.
 * Static storage: never freed, safe to read from any thread. */
const struct wsjob_handler *handlers_builtin(void);

/* One per handler_NAME.c; the table above is their only caller. */
int handler_echo(wsjob_ctx *ctx);
int handler_sha256(wsjob_ctx *ctx);
int handler_modsum(wsjob_ctx *ctx);
int handler_sleep(wsjob_ctx *ctx);
int handler_frames(wsjob_ctx *ctx);
int handler_fetch(wsjob_ctx *ctx);

#endif
