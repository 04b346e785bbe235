/* exec_types.h — job types run by an executable (--exec). */
#ifndef WSJOBD_EXEC_TYPES_H
#define WSJOBD_EXEC_TYPES_H

#include <stddef.h>

#include "wsjob.h"

/* In the front, before the first fork: registers each TYPE=PATH[,io]
 * [,lines] of specs.  cancel_grace_ms sets when a child that ignores
 * SIGTERM gets SIGKILL.  0, or -1 with a reason. */
int exec_types_register(char *const *specs, size_t n, unsigned cancel_grace_ms,
                        char *err, size_t errlen);

/* The handler of every executable type. */
int handler_exec(wsjob_ctx *ctx);

#endif
