/* handler_python.c — one job of a Python type: FUNCTION(data, job).
 *
 * The thread takes the GIL for the job's Python code only and gives it
 * back before the final reply, so the I/O worker's other threads run while
 * this one waits in emit or sleep.  The result becomes the output (bytes,
 * str, None) or, for an iterator such as a generator, a stream of one chunk
 * per item.  Exceptions map to the protocol's codes: wsjob.Cancelled to
 * cancelled/timeout, wsjob.BadInput to bad_request, anything else to
 * handler_error "Type: message" with the traceback in the log. */
#include "handlers/python_rt.h"

#include <stdio.h>

#include "handlers/python_types.h"
#include "worker/job_ctx.h"

static int fail_from_exception(wsjob_ctx *ctx, const struct py_type *t)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    char msg[400], who[64];
    snprintf(who, sizeof who, "python %s", t->name);
    int rc;
    if (job_ctx_failed(ctx)) {
        rc = WSJOB_ERR;                      /* emit recorded too_large */
    } else if (PyErr_GivenExceptionMatches(type, py_cancelled) && wsjob_cancelled(ctx)) {
        rc = wsjob_fail(ctx, WSJOB_E_CANCELLED, "cancelled");
    } else if (PyErr_GivenExceptionMatches(type, py_bad_input)) {
        py_describe_exception(type, val, tb, who, 0, msg, sizeof msg);
        const char *why = strchr(msg, ':');
        rc = wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "%s", why ? why + 2 : "bad input");
    } else {
        py_describe_exception(type, val, tb, who, 1, msg, sizeof msg);
        rc = wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "%s", msg);
    }
    Py_XDECREF(type);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    return rc;
}

static int set_output(wsjob_ctx *ctx, PyObject *res)
{
    if (res == Py_None)
        return WSJOB_OK;
    Py_buffer view;
    if (py_bytes_of(res, &view, "the result") < 0)
        return -1;
    int rc = wsjob_output(ctx, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return rc;
}

/* One chunk per item; None items are skipped.  Returns WSJOB_OK, WSJOB_ERR
 * (an error recorded in ctx), or -1 with a Python exception set. */
static int stream(wsjob_ctx *ctx, struct py_slot *s, PyObject *it)
{
    PyObject *item;
    while ((item = PyIter_Next(it))) {
        Py_buffer view;
        int got = item == Py_None ? 1 : py_bytes_of(item, &view, "a yielded chunk");
        Py_DECREF(item);
        if (got < 0)
            return -1;
        if (got == 1)
            continue;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = wsjob_emit(ctx, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
        PyBuffer_Release(&view);
        if (rc != WSJOB_OK && job_ctx_failed(ctx))
            return WSJOB_ERR;
        /* A generator that yields fast is stopped between items too. */
        if (rc != WSJOB_OK || wsjob_cancelled(ctx)) {
            py_raise_cancelled(s);
            return -1;
        }
    }
    return PyErr_Occurred() ? -1 : WSJOB_OK;
}

static int call(wsjob_ctx *ctx, struct py_slot *s, const struct py_type *t)
{
    size_t len;
    const void *in = wsjob_input(ctx, &len);
    PyObject *data = PyBytes_FromStringAndSize(in, (Py_ssize_t)len);
    PyObject *job = data ? py_job_new(ctx, t) : NULL;
    PyObject *res = job ? PyObject_CallFunctionObjArgs(t->fn, data, job, NULL) : NULL;
    int rc = res ? WSJOB_OK : -1;
    if (res && PyIter_Check(res))
        rc = stream(ctx, s, res);
    else if (res)
        rc = set_output(ctx, res);
    if (rc == -1)
        rc = fail_from_exception(ctx, t);
    /* Dropping a stopped generator runs its finally blocks: still watched. */
    Py_XDECREF(res);
    if (job)
        py_job_close(job);
    Py_XDECREF(data);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        if (rc == WSJOB_OK)
            rc = wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "error while finishing the job");
    }
    return rc;
}

int handler_python(wsjob_ctx *ctx)
{
    const struct py_type *t = py_type_of(job_ctx_type(ctx));
    if (!t || !t->fn)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "Python type not loaded in this worker");
    struct py_slot *s = py_slot_self();
    if (!s)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot set up a Python thread");
    PyEval_RestoreThread(s->ts);
    py_watch_begin(s, ctx);
    int rc = call(ctx, s, t);
    py_watch_end(s);
    PyEval_SaveThread();
    return rc;
}
