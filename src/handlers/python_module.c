/* python_module.c — the `wsjob` module that Python handlers import.
 *
 * It exists only inside a worker's interpreter (registered with
 * PyImport_AppendInittab before Py_Initialize).  A Job object wraps the C
 * wsjob_ctx of one call; every method goes straight to the C API of
 * include/wsjob.h, dropping the GIL wherever that API may wait. */
#include "handlers/python_rt.h"

#include <stdio.h>

#include "worker/job_ctx.h"

PyObject *py_cancelled;
PyObject *py_bad_input;
static PyObject *real_sleep;      /* time.sleep as Python built it */

typedef struct {
    PyObject_HEAD
    wsjob_ctx *ctx;               /* NULL once the call has ended */
    const struct py_type *type;
} JobObject;

static wsjob_ctx *live_ctx(JobObject *j)
{
    if (!j->ctx)
        PyErr_SetString(PyExc_RuntimeError, "this job has finished; a Job is valid only during its call");
    return j->ctx;
}

int py_bytes_of(PyObject *o, Py_buffer *view, const char *what)
{
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s)
            return -1;
        /* The str keeps the UTF-8 alive; the view holds a reference. */
        return PyBuffer_FillInfo(view, o, (void *)s, n, 1, PyBUF_SIMPLE);
    }
    if (PyObject_CheckBuffer(o))
        return PyObject_GetBuffer(o, view, PyBUF_SIMPLE);
    PyErr_Format(PyExc_TypeError, "%s must be bytes, str or None, not %.100s",
                 what, Py_TYPE(o)->tp_name);
    return -1;
}

/* ---- Job methods ---- */

static PyObject *job_emit(JobObject *self, PyObject *chunk)
{
    wsjob_ctx *ctx = live_ctx(self);
    if (!ctx)
        return NULL;
    Py_buffer view;
    if (py_bytes_of(chunk, &view, "a chunk") < 0)
        return NULL;
    int rc;
    /* emit waits while the client's window is full: let other threads run. */
    Py_BEGIN_ALLOW_THREADS
    rc = wsjob_emit(ctx, view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (rc == WSJOB_OK)
        Py_RETURN_NONE;
    if (job_ctx_failed(ctx)) {
        PyErr_SetString(PyExc_ValueError, "chunk larger than the daemon's max-message");
        return NULL;
    }
    return py_raise_cancelled(py_slot_peek());
}

static PyObject *job_progress(JobObject *self, PyObject *args)
{
    unsigned long long done, total;
    if (!PyArg_ParseTuple(args, "KK:progress", &done, &total))
        return NULL;
    wsjob_ctx *ctx = live_ctx(self);
    if (!ctx)
        return NULL;
    wsjob_progress(ctx, done, total);
    Py_RETURN_NONE;
}

static PyObject *job_get_cancelled(JobObject *self, void *closure)
{
    (void)closure;
    wsjob_ctx *ctx = live_ctx(self);
    return ctx ? PyBool_FromLong(wsjob_cancelled(ctx)) : NULL;
}

static PyObject *job_get_deadline(JobObject *self, void *closure)
{
    (void)closure;
    wsjob_ctx *ctx = live_ctx(self);
    /* CLOCK_MONOTONIC, the clock of time.monotonic() on Linux. */
    return ctx ? PyFloat_FromDouble((double)job_ctx_job(ctx)->deadline_ns / 1e9) : NULL;
}

static PyObject *job_get_id(JobObject *self, void *closure)
{
    (void)closure;
    wsjob_ctx *ctx = live_ctx(self);
    if (!ctx)
        return NULL;
    char id[JOB_ID_MAX + 1];
    job_ctx_id(ctx, id);
    /* The client's id was a JSON string, so it is UTF-8; replace rather
     * than fail should a NUL have cut it short of a whole character. */
    return PyUnicode_DecodeUTF8(id, (Py_ssize_t)strlen(id), "replace");
}

static PyObject *job_get_type(JobObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(self->type->name);
}

static PyMethodDef job_methods[] = {
    { "emit", (PyCFunction)job_emit, METH_O,
      "emit(chunk)\n--\n\nSend one chunk of a stream (bytes or str).  Waits while the "
      "client's stream window is full; raises Cancelled if the job is stopped meanwhile." },
    { "progress", (PyCFunction)job_progress, METH_VARARGS,
      "progress(done, total)\n--\n\nReport progress; cheap, rate-limited to about 10 per second." },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef job_getset[] = {
    { "cancelled", (getter)job_get_cancelled, NULL,
      "True once the job was cancelled or its deadline passed.", NULL },
    { "deadline", (getter)job_get_deadline, NULL,
      "The job's deadline as a time.monotonic() value.", NULL },
    { "id", (getter)job_get_id, NULL,
      "This run of the job, as 16 hex digits, unique within the daemon (for logs).", NULL },
    { "type", (getter)job_get_type, NULL, "The job type's name.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject JobType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsjob.Job",
    .tp_basicsize = sizeof(JobObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The running job, passed to a handler as its second argument.\n\n"
              "Valid only during the call: emit, progress, cancelled, deadline, id, type.",
    .tp_methods = job_methods,
    .tp_getset = job_getset,
};

PyObject *py_job_new(wsjob_ctx *ctx, const struct py_type *t)
{
    JobObject *j = PyObject_New(JobObject, &JobType);
    if (!j)
        return NULL;
    j->ctx = ctx;
    j->type = t;
    return (PyObject *)j;
}

void py_job_close(PyObject *job)
{
    ((JobObject *)job)->ctx = NULL;
    Py_DECREF(job);
}

/* ---- module functions ---- */

/* Inside a job: a sleep that wakes on cancel and deadline, without the GIL.
 * Elsewhere (import time, a thread of the handler's own): the real one. */
static PyObject *mod_sleep(PyObject *mod, PyObject *arg)
{
    (void)mod;
    double secs = PyFloat_AsDouble(arg);
    if (secs == -1.0 && PyErr_Occurred())
        return NULL;
    if (secs < 0) {
        PyErr_SetString(PyExc_ValueError, "sleep length must be non-negative");
        return NULL;
    }
    struct py_slot *s = py_slot_peek();
    if (!s || !s->running || !s->ctx)
        return PyObject_CallOneArg(real_sleep, arg);
    wsjob_ctx *ctx = s->ctx;
    int64_t ms = (int64_t)(secs * 1000.0 + 0.5);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = wsjob_sleep(ctx, ms);
    Py_END_ALLOW_THREADS
    if (rc != WSJOB_OK)
        return py_raise_cancelled(s);
    Py_RETURN_NONE;
}

static PyMethodDef mod_methods[] = {
    { "sleep", mod_sleep, METH_O,
      "sleep(seconds)\n--\n\nLike time.sleep (which it replaces in workers), but inside a "
      "job it ends at once with Cancelled when the job is cancelled or its deadline passes." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsjob",
    .m_doc = "The runtime of wsjobd's Python job types (see wsjob-python(3)).\n\n"
             "A handler is FUNCTION(data: bytes, job) returning bytes, str or None, or a\n"
             "generator yielding one chunk per item.  Raise BadInput for input it rejects.",
    .m_size = -1,
    .m_methods = mod_methods,
};

static int add_exception(PyObject *m, const char *name, PyObject **slot, PyObject *base,
                         const char *doc)
{
    char full[64];
    snprintf(full, sizeof full, "wsjob.%s", name);
    *slot = PyErr_NewExceptionWithDoc(full, doc, base, NULL);
    if (!*slot)
        return -1;
    Py_INCREF(*slot);   /* one for the module, one for our global */
    return PyModule_AddObject(m, name, *slot);
}

PyObject *py_module_init(void)
{
    if (PyType_Ready(&JobType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    Py_INCREF(&JobType);
    if (PyModule_AddObject(m, "Job", (PyObject *)&JobType) < 0 ||
        add_exception(m, "Cancelled", &py_cancelled, PyExc_BaseException,
                      "The job was cancelled or its deadline passed.  Raised inside the running "
                      "handler at its next bytecode; a BaseException, so `except Exception` does "
                      "not swallow it.  Clean up and let it propagate.") < 0 ||
        add_exception(m, "BadInput", &py_bad_input, PyExc_ValueError,
                      "Raise it to reject the input: the client gets bad_request with the "
                      "message.") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

int py_patch_sleep(void)
{
    PyObject *time = PyImport_ImportModule("time");
    PyObject *wsjob = time ? PyImport_ImportModule("wsjob") : NULL;
    PyObject *ours = wsjob ? PyObject_GetAttrString(wsjob, "sleep") : NULL;
    real_sleep = ours ? PyObject_GetAttrString(time, "sleep") : NULL;
    int rc = real_sleep ? PyObject_SetAttrString(time, "sleep", ours) : -1;
    Py_XDECREF(ours);
    Py_XDECREF(wsjob);
    Py_XDECREF(time);
    return rc;
}
