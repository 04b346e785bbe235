/* python_rt.h — Python job types (--python), what their files share.
 *
 *   python_types.c    the types named by the options; the interpreter of a
 *                     worker (started after the fork); the start-up import
 *                     check
 *   python_module.c   the `wsjob` module handlers import: Job, Cancelled,
 *                     BadInput, sleep
 *   python_watch.c    each thread's slot, and the watcher thread that raises
 *                     wsjob.Cancelled inside code that never polls
 *   handler_python.c  one job: call the function, convert, stream, map
 *                     exceptions to error codes
 *
 * Only worker processes (and the short-lived import checker the front forks)
 * ever initialise the interpreter; the front links libpython but never
 * calls into it.  Python.h comes first, as Python requires. */
#ifndef WSJOBD_PYTHON_RT_H
#define WSJOBD_PYTHON_RT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>
#include <stdint.h>

#include "pipeline/pipeline.h"
#include "wsjob.h"

struct py_type {
    char *spec;          /* the option's text, for messages */
    char *name;          /* job type */
    char *module;
    char *function;
    int   io;            /* runs on the I/O worker's threads */
    int   reg;           /* registry index */
    PyObject *fn;        /* in a worker: the function, owned */
};

/* The type behind registry index `reg`, or NULL. */
const struct py_type *py_type_of(int reg);

/* Writes "Type: message" of an exception into msg and, when asked, logs
 * its traceback line by line, each prefixed with `who`. */
void py_describe_exception(PyObject *type, PyObject *val, PyObject *tb, const char *who,
                           int with_traceback, char *msg, size_t len);

/* ---- python_module.c ---- */

/* Module init for PyImport_AppendInittab("wsjob", ...). */
PyObject *py_module_init(void);
extern PyObject *py_cancelled;       /* wsjob.Cancelled (BaseException) */
extern PyObject *py_bad_input;       /* wsjob.BadInput (ValueError) */

/* A wsjob.Job for this call; py_job_close() detaches it from ctx when the
 * call ends, so a handler that kept it gets an error, not a dangling ctx. */
PyObject *py_job_new(wsjob_ctx *ctx, const struct py_type *t);
void py_job_close(PyObject *job);

/* Saves the real time.sleep and puts wsjob.sleep in its place, so a sleep
 * inside a job wakes on cancel and deadline (time.sleep in a thread cannot
 * be interrupted otherwise).  0, or -1 with a Python exception set. */
int py_patch_sleep(void);

/* Bytes of a bytes-like object or the UTF-8 of a str.  0 and *view to
 * release with PyBuffer_Release, or -1 with TypeError set. */
int py_bytes_of(PyObject *o, Py_buffer *view, const char *what);

/* ---- python_watch.c ---- */

struct py_slot {
    PyThreadState *ts;           /* this thread's state, kept between jobs */
    unsigned long tid;           /* PyThread_get_thread_ident() */
    /* Read by the watcher without the GIL, as a hint. */
    _Atomic(struct job_desc *) job;
    _Atomic uint64_t seq;        /* bumped per job */
    uint64_t watch_fired;        /* watcher only: last seq it acted on */
    /* Under the GIL. */
    wsjob_ctx *ctx;              /* the job this thread runs, NULL between */
    uint64_t running;            /* seq of the job in Python now, 0 none */
    uint64_t raised;             /* seq for which Cancelled was raised */
};

/* This thread's slot, made (with its thread state) on first use.  The
 * thread that started the interpreter gets the main thread state.  NULL
 * when out of memory. */
struct py_slot *py_slot_self(void);
/* This thread's slot if it has one (a job thread), else NULL: a thread the
 * handler started itself gets none. */
struct py_slot *py_slot_peek(void);
/* Called by the thread that ran py_init, holding the GIL, before it
 * releases it for good. */
int py_slot_adopt_main(void);

/* Under the GIL: a job's Python code begins / ends on this thread. */
void py_watch_begin(struct py_slot *s, wsjob_ctx *ctx);
void py_watch_end(struct py_slot *s);

/* Under the GIL, for code that finds the job stopped itself (sleep, emit):
 * sets wsjob.Cancelled with the reason and returns NULL; any copy the
 * watcher already queued for this job is withdrawn. */
PyObject *py_raise_cancelled(struct py_slot *s);

/* Starts the watcher thread.  0 or -1. */
int py_watch_start(void);

#endif
