/* python_types.c — the Python job types of --python, and the interpreter.
 *
 * The front parses each TYPE=MODULE:FUNCTION[,io] and registers the type
 * with the registry: name and class are all it needs.  The interpreter is
 * started only after a fork: in each worker process that has Python types
 * of its class (python_worker_start), and once at start-up in a short-lived
 * child of the front that imports every module (python_check), so a module
 * that fails to import stops the daemon with exit 2 and its traceback in the
 * log instead of leaving workers dying and respawning. */
#include "handlers/python_rt.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "handlers/handler_registry.h"
#include "handlers/python_types.h"

static struct py_type types[REGISTRY_MAX];
static size_t ntypes;
static char **paths;          /* --python-path, owned */
static size_t npaths;
static PyObject *format_exception;   /* traceback.format_exception */

const struct py_type *py_type_of(int reg)
{
    for (size_t i = 0; i < ntypes; i++)
        if (types[i].reg == reg)
            return &types[i];
    return NULL;
}

/* "TYPE=MODULE:FUNCTION[,io]", its syntax already checked by the option. */
static int parse_spec(const char *spec, struct py_type *t)
{
    const char *eq = strchr(spec, '=');
    const char *colon = eq ? strchr(eq, ':') : NULL;
    if (!eq || !colon)
        return -1;
    size_t fn_len = strcspn(colon + 1, ",");
    t->spec = strdup(spec);
    t->name = strndup(spec, (size_t)(eq - spec));
    t->module = strndup(eq + 1, (size_t)(colon - eq - 1));
    t->function = strndup(colon + 1, fn_len);
    t->io = strcmp(colon + 1 + fn_len, ",io") == 0;
    return t->spec && t->name && t->module && t->function ? 0 : -1;
}

int python_types_register(char *const *specs, size_t n, char *const *dirs, size_t ndirs,
                          char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (ntypes == REGISTRY_MAX) {
            snprintf(err, errlen, "--python: too many job types");
            return -1;
        }
        struct py_type *t = &types[ntypes];
        if (parse_spec(specs[i], t) < 0) {
            snprintf(err, errlen, "--python: cannot parse '%s'", specs[i]);
            return -1;
        }
        struct wsjob_handler h = { t->name, t->io ? WSJOB_IO : WSJOB_CPU, handler_python,
                                   WSJOB_API_VERSION };
        if (registry_add(&h, "--python", err, errlen) < 0)
            return -1;
        t->reg = registry_find(t->name, strlen(t->name));
        ntypes++;
    }
    paths = calloc(ndirs + 1, sizeof *paths);
    if (!paths)
        return -1;
    for (size_t i = 0; i < ndirs; i++)
        if (!(paths[npaths++] = strdup(dirs[i])))
            return -1;
    return 0;
}

static int has_class(int io)
{
    for (size_t i = 0; i < ntypes; i++)
        if (types[i].io == io)
            return 1;
    return 0;
}

/* ---- exceptions ---- */

static void log_traceback(PyObject *type, PyObject *val, PyObject *tb, const char *who)
{
    PyObject *lines = format_exception ?
        PyObject_CallFunctionObjArgs(format_exception, type, val ? val : Py_None,
                                     tb ? tb : Py_None, NULL) : NULL;
    PyObject *text = lines ? PyUnicode_Join(NULL, lines) : NULL;
    const char *s = text ? PyUnicode_AsUTF8(text) : NULL;
    if (!s) {
        PyErr_Clear();
        log_warn("%s: (no traceback)", who);
    }
    while (s && *s) {
        size_t n = strcspn(s, "\n");
        log_warn("%s: %.*s", who, (int)n, s);
        s += n + (s[n] == '\n');
    }
    Py_XDECREF(text);
    Py_XDECREF(lines);
}

void py_describe_exception(PyObject *type, PyObject *val, PyObject *tb, const char *who,
                           int with_traceback, char *msg, size_t len)
{
    const char *tname = PyExceptionClass_Check(type) ? PyExceptionClass_Name(type) : "exception";
    const char *dot = strrchr(tname, '.');
    tname = dot ? dot + 1 : tname;
    PyObject *str = val ? PyObject_Str(val) : NULL;
    const char *text = str ? PyUnicode_AsUTF8(str) : NULL;
    if (!text)
        PyErr_Clear();
    if (text && *text)
        snprintf(msg, len, "%s: %s", tname, text);
    else
        snprintf(msg, len, "%s", tname);
    Py_XDECREF(str);
    if (with_traceback)
        log_traceback(type, val, tb, who);
}

/* The pending exception, described and logged with its traceback. */
static void take_exception(const char *who, char *msg, size_t len)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    py_describe_exception(type, val, tb, who, 1, msg, len);
    Py_XDECREF(type);
    Py_XDECREF(val);
    Py_XDECREF(tb);
}

/* ---- the interpreter ---- */

static PyObject *init_wsjob(void) { return py_module_init(); }

static int add_paths(void)
{
    PyObject *sys_path = PySys_GetObject("path");   /* borrowed */
    if (!sys_path)
        return -1;
    for (size_t i = npaths; i-- > 0;) {
        PyObject *dir = PyUnicode_DecodeFSDefault(paths[i]);
        int rc = dir ? PyList_Insert(sys_path, 0, dir) : -1;
        Py_XDECREF(dir);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int start_interpreter(char *msg, size_t len)
{
    if (PyImport_AppendInittab("wsjob", init_wsjob) < 0) {
        snprintf(msg, len, "cannot register the wsjob module");
        return -1;
    }
    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    /* Our signals stay ours: SIGINT, SIGTERM and the stop request. */
    cfg.install_signal_handlers = 0;
    cfg.parse_argv = 0;
    /* A worker ends with _exit (recycling, the grace kill): what a handler
     * prints must not wait in a buffer for a flush that never comes. */
    cfg.buffered_stdio = 0;
    PyStatus st = Py_InitializeFromConfig(&cfg);
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(st)) {
        snprintf(msg, len, "cannot start Python: %s", st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    PyObject *tb = PyImport_ImportModule("traceback");
    format_exception = tb ? PyObject_GetAttrString(tb, "format_exception") : NULL;
    Py_XDECREF(tb);
    if (!format_exception || add_paths() < 0 || py_patch_sleep() < 0) {
        take_exception("python", msg, len);
        return -1;
    }
    return 0;
}

static int import_type(struct py_type *t, char *msg, size_t len)
{
    char who[96], why[384];
    snprintf(who, sizeof who, "python %s", t->name);
    PyObject *mod = PyImport_ImportModule(t->module);
    if (!mod) {
        take_exception(who, why, sizeof why);
        snprintf(msg, len, "--python %s: cannot import module '%s': %s", t->spec, t->module, why);
        return -1;
    }
    t->fn = PyObject_GetAttrString(mod, t->function);
    Py_DECREF(mod);
    if (!t->fn) {
        PyErr_Clear();
        snprintf(msg, len, "--python %s: module '%s' has no function '%s'", t->spec, t->module,
                 t->function);
        return -1;
    }
    if (!PyCallable_Check(t->fn)) {
        snprintf(msg, len, "--python %s: '%s.%s' is not callable", t->spec, t->module, t->function);
        return -1;
    }
    return 0;
}

/* Starts the interpreter and imports the modules of class io (or of both,
 * io < 0).  Holds the GIL on success. */
static int load(int io, char *msg, size_t len)
{
    if (start_interpreter(msg, len) < 0)
        return -1;
    for (size_t i = 0; i < ntypes; i++)
        if ((io < 0 || types[i].io == io) && import_type(&types[i], msg, len) < 0)
            return -1;
    return 0;
}

int python_worker_start(int io)
{
    if (!has_class(io))
        return 0;
    char msg[512];
    if (load(io, msg, sizeof msg) < 0) {
        log_error("%s", msg);
        return -1;
    }
    if (py_slot_adopt_main() < 0 || py_watch_start() < 0) {
        log_error("python: cannot set up the worker's threads");
        return -1;
    }
    /* From here each job takes the GIL for its own Python code only. */
    PyEval_SaveThread();
    return 0;
}

/* ---- the start-up check ---- */

static int become(const char *user, char *msg, size_t len)
{
    struct passwd *pw = getpwnam(user);
    if (!pw || setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(msg, len, "--python: cannot become '%s' to check the modules", user);
        return -1;
    }
    return 0;
}

static _Noreturn void checker(int fd, const char *user)
{
    char msg[512];
    log_set_role("python-check");
    int rc = (user && getuid() == 0 && become(user, msg, sizeof msg) < 0) || load(-1, msg, sizeof msg) < 0;
    if (rc) {
        size_t n = strlen(msg);
        if (write(fd, msg, n) != (ssize_t)n)
            log_error("%s", msg);
    }
    _exit(rc ? 2 : 0);
}

int python_check(const char *user, char *err, size_t errlen)
{
    if (!ntypes)
        return 0;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "--python: pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "--python: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        checker(fds[1], user);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got < errlen - 1 && (r = read(fds[0], err + got, errlen - 1 - got)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        got += (size_t)r;
    }
    err[got] = 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (!got)
        snprintf(err, errlen, "--python: the module check failed (status %d)", status);
    return -1;
}
