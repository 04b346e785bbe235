/* python_types.h — Python job types (--python, --python-path), as the rest
 * of the daemon sees them.  No Python header here: the front and the worker
 * loop call these without knowing the interpreter exists. */
#ifndef WSJOBD_PYTHON_TYPES_H
#define WSJOBD_PYTHON_TYPES_H

#include <stddef.h>

#include "wsjob.h"

/* In the front, before the first fork: registers each TYPE=MODULE:FUNCTION
 * [,io] of specs and keeps copies of the --python-path dirs.  0, or -1 with
 * a reason. */
int python_types_register(char *const *specs, size_t n, char *const *dirs, size_t ndirs,
                          char *err, size_t errlen);

/* In the front, at start-up: forks a child that starts Python (as `user`
 * when running as root) and imports every module, and waits for it.  0, or
 * -1 with a one-line reason naming the module (the traceback is in the
 * log).  Nothing is started in the front itself. */
int python_check(const char *user, char *err, size_t errlen);

/* In a worker after the fork (io: the I/O worker, else a CPU worker):
 * starts the interpreter and imports the modules of that class, if it has
 * any.  0, or -1 (logged). */
int python_worker_start(int io);

/* The handler of every Python type. */
int handler_python(wsjob_ctx *ctx);

#endif
