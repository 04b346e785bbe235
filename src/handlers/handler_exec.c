/* handler_exec.c — job types run by an executable (--exec TYPE=PATH[,io][,lines]).
 *
 * Each job runs PATH (no shell, no arguments) in a process group of its
 * own, the input on its stdin, WSJOB_ID, WSJOB_TYPE and WSJOB_DEADLINE_MS
 * in its environment.  Its stdout is the output; with `lines` each line is
 * a chunk as soon as it is written (the newline dropped).  Exit status 0 is
 * done; anything else is handler_error with the last line of stderr.
 *
 * The worker never blocks on the child without a timeout: it polls the
 * pipes in slices of POLL_MS and checks the job's cancel word and deadline
 * between them (a CPU worker has no other thread to notice a cancel).  On
 * cancel or timeout the group gets SIGTERM, then SIGKILL: after the cancel
 * grace for an I/O job, a little before it for a CPU job, so the front's
 * own grace kill does not have to take the worker down too.  The child is
 * always reaped before the job ends; it gets PR_SET_PDEATHSIG so a worker
 * that dies anyway takes it along, and only fds 0-2. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handlers/exec_types.h"
#include "handlers/handler_registry.h"
#include "worker/job_ctx.h"

#define POLL_MS 20
#define READ_SIZE 65536
#define ERRLINE_MAX 300
#define KILL_MARGIN_MS 100

extern char **environ;

struct exec_type {
    char *name, *path;
    int io, lines, reg;
};

static struct exec_type types[REGISTRY_MAX];
static size_t ntypes;
static int64_t grace_ms;

int exec_types_register(char *const *specs, size_t n, unsigned cancel_grace_ms,
                        char *err, size_t errlen)
{
    grace_ms = cancel_grace_ms;
    for (size_t i = 0; i < n && ntypes < REGISTRY_MAX; i++) {
        struct exec_type *t = &types[ntypes];
        const char *eq = strchr(specs[i], '=');
        if (!eq) {
            snprintf(err, errlen, "--exec: cannot parse '%s'", specs[i]);
            return -1;
        }
        size_t plen = strcspn(eq + 1, ",");
        const char *flags = eq + 1 + plen;
        t->name = strndup(specs[i], (size_t)(eq - specs[i]));
        t->path = strndup(eq + 1, plen);
        if (!t->name || !t->path) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        t->io = strstr(flags, ",io") != NULL;
        t->lines = strstr(flags, ",lines") != NULL;
        struct wsjob_handler h = { t->name, t->io ? WSJOB_IO : WSJOB_CPU, handler_exec,
                                   WSJOB_API_VERSION };
        if (registry_add(&h, "--exec", err, errlen) < 0)
            return -1;
        t->reg = registry_find(t->name, strlen(t->name));
        ntypes++;
    }
    return 0;
}

static const struct exec_type *type_of(int reg)
{
    for (size_t i = 0; i < ntypes; i++)
        if (types[i].reg == reg)
            return &types[i];
    return NULL;
}

/* ---- starting the child ---- */

/* environ plus the job's three variables; one malloc'd block the caller
 * frees (the strings live in it too). */
static char **job_env(wsjob_ctx *ctx, const struct exec_type *t)
{
    size_t n = 0;
    while (environ[n])
        n++;
    struct { char *v[4]; char text[3][96]; } *own;
    char **env = malloc((n + 4) * sizeof *env + sizeof *own);
    if (!env)
        return NULL;
    own = (void *)(env + n + 4);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "WSJOB_", 6) != 0)
            env[k++] = environ[i];
    char id[JOB_ID_MAX + 1];
    job_ctx_id(ctx, id);
    snprintf(own->text[0], sizeof own->text[0], "WSJOB_ID=%s", id);
    snprintf(own->text[1], sizeof own->text[1], "WSJOB_TYPE=%s", t->name);
    snprintf(own->text[2], sizeof own->text[2], "WSJOB_DEADLINE_MS=%" PRId64,
             wsjob_remaining_ms(ctx));
    for (int i = 0; i < 3; i++)
        env[k++] = own->text[i];
    env[k] = NULL;
    return env;
}

/* In the child: async-signal-safe calls only (the I/O worker has threads). */
static _Noreturn void child(const struct exec_type *t, char **env, int fds[3], pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            _exit(127);
    if (close_range(3, ~0u, 0) < 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigaction(SIGPIPE, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char *argv[] = { t->path, NULL };
    execve(t->path, argv, env);
    static const char msg[] = "exec failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
}

struct run {
    pid_t pid;
    int fd[3];                 /* our ends: stdin (write), stdout, stderr */
    const uint8_t *in;
    size_t in_len, in_off;
    uint8_t *out;              /* collected stdout (whole output, or a partial line) */
    size_t out_len, out_cap;
    char errline[ERRLINE_MAX]; /* last complete stderr line */
    char errcur[ERRLINE_MAX];  /* the line being read */
    size_t errcur_len;
    int stopping, killed, too_large, exited, status;
    int64_t kill_at_ns;
};

static int spawn(wsjob_ctx *ctx, const struct exec_type *t, struct run *r)
{
    int p[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
    char **env = job_env(ctx, t);
    int ok = env != NULL;
    for (int i = 0; i < 3 && ok; i++)
        ok = pipe2(p[i], O_CLOEXEC) == 0;
    pid_t parent = getpid();
    r->pid = ok ? fork() : -1;
    if (r->pid == 0) {
        int fds[3] = { p[0][0], p[1][1], p[2][1] };
        child(t, env, fds, parent);
    }
    int saved = errno;
    if (r->pid > 0)
        setpgid(r->pid, r->pid);   /* either side may win; both ask the same */
    free(env);
    for (int i = 0; i < 3; i++) {
        int keep = i == 0 ? p[i][1] : p[i][0];
        int give = i == 0 ? p[i][0] : p[i][1];
        if (give >= 0)
            close(give);
        r->fd[i] = keep;
        if (keep >= 0 && (r->pid < 0 || fcntl(keep, F_SETFL, O_NONBLOCK) < 0)) {
            close(keep);
            r->fd[i] = -1;
        }
    }
    errno = saved;
    return r->pid > 0 ? 0 : -1;
}

/* ---- the child's pipes ---- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void feed(struct run *r)
{
    while (r->in_off < r->in_len) {
        ssize_t n = write(r->fd[0], r->in + r->in_off, r->in_len - r->in_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0) {             /* EPIPE: it does not read its input */
            close_fd(&r->fd[0]);
            return;
        }
        r->in_off += (size_t)n;
    }
    close_fd(&r->fd[0]);         /* all written: EOF for the child */
}

static int append(struct run *r, const uint8_t *b, size_t n, size_t limit)
{
    if (r->out_len + n > limit)
        return -1;
    if (r->out_len + n > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap * 2 : READ_SIZE;
        while (cap < r->out_len + n)
            cap *= 2;
        uint8_t *grown = realloc(r->out, cap);
        if (!grown)
            return -1;
        r->out = grown;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, b, n);
    r->out_len += n;
    return 0;
}

/* Lines mode: each complete line in r->out goes out as a chunk. */
static int emit_lines(wsjob_ctx *ctx, struct run *r)
{
    size_t start = 0;
    for (size_t i = 0; i < r->out_len; i++) {
        if (r->out[i] != '\n')
            continue;
        if (wsjob_emit(ctx, r->out + start, i - start) != WSJOB_OK)
            return -1;
        start = i + 1;
    }
    memmove(r->out, r->out + start, r->out_len - start);
    r->out_len -= start;
    return 0;
}

static void on_stdout(wsjob_ctx *ctx, const struct exec_type *t, struct run *r)
{
    uint8_t buf[READ_SIZE];
    ssize_t n = read(r->fd[1], buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close_fd(&r->fd[1]);
        return;
    }
    /* A line, like a whole output, may not pass max-message. */
    if (append(r, buf, (size_t)n, wsjob_max_output(ctx) + (t->lines ? 1 : 0)) < 0) {
        r->too_large = 1;
        return;
    }
    if (t->lines && emit_lines(ctx, r) < 0)
        r->too_large = job_ctx_failed(ctx);
}

static void on_stderr(struct run *r)
{
    char buf[4096];
    ssize_t n = read(r->fd[2], buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close_fd(&r->fd[2]);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (r->errcur_len) {
                memcpy(r->errline, r->errcur, r->errcur_len);
                r->errline[r->errcur_len] = 0;
            }
            r->errcur_len = 0;
        } else if (r->errcur_len < sizeof r->errcur - 1) {
            r->errcur[r->errcur_len++] = buf[i];
        }
    }
}

/* ---- the loop ---- */

static int64_t kill_delay_ms(const struct exec_type *t)
{
    if (t->io || grace_ms <= 2 * KILL_MARGIN_MS)
        return t->io ? grace_ms : grace_ms / 2;
    return grace_ms - KILL_MARGIN_MS;
}

static void check_stop(wsjob_ctx *ctx, const struct exec_type *t, struct run *r)
{
    int64_t now = shm_now_ns();
    if (!r->stopping && (wsjob_cancelled(ctx) || r->too_large)) {
        r->stopping = 1;
        kill(-r->pid, SIGTERM);
        r->kill_at_ns = now + kill_delay_ms(t) * 1000000;
        close_fd(&r->fd[0]);
    }
    if (r->stopping && !r->killed && now >= r->kill_at_ns) {
        kill(-r->pid, SIGKILL);
        r->killed = 1;
    }
}

static void try_reap(struct run *r)
{
    if (r->exited)
        return;
    pid_t got = waitpid(r->pid, &r->status, WNOHANG);
    if (got == r->pid || (got < 0 && errno == ECHILD))
        r->exited = 1;
}

static void pump(wsjob_ctx *ctx, const struct exec_type *t, struct run *r)
{
    while (!r->exited || r->fd[1] >= 0 || r->fd[2] >= 0) {
        check_stop(ctx, t, r);
        struct pollfd pf[3];
        int map[3], n = 0;
        for (int i = 0; i < 3; i++) {
            if (r->fd[i] < 0 || (i == 1 && r->too_large))
                continue;
            pf[n] = (struct pollfd){ .fd = r->fd[i], .events = i == 0 ? POLLOUT : POLLIN };
            map[n++] = i;
        }
        /* With the pipes closed, the child may still run: keep polling it. */
        if (poll(pf, (nfds_t)n, POLL_MS) < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            if (!pf[k].revents)
                continue;
            if (map[k] == 0)
                feed(r);
            else if (map[k] == 1)
                on_stdout(ctx, t, r);
            else
                on_stderr(r);
        }
        try_reap(r);
        /* A grandchild may hold the pipes open after the child exited. */
        if (r->exited && r->stopping)
            break;
    }
    if (!r->exited) {
        kill(-r->pid, SIGKILL);
        while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
            ;
    }
    for (int i = 0; i < 3; i++)
        close_fd(&r->fd[i]);
}

static int finish(wsjob_ctx *ctx, const struct exec_type *t, struct run *r)
{
    if (job_ctx_failed(ctx))
        return WSJOB_ERR;
    if (r->too_large)
        return wsjob_fail(ctx, WSJOB_E_TOO_LARGE, "output larger than max-message");
    if (r->stopping)
        return wsjob_fail(ctx, WSJOB_E_CANCELLED, "cancelled");
    if (r->errcur_len && r->errcur_len < sizeof r->errline) {
        memcpy(r->errline, r->errcur, r->errcur_len);   /* a last line without newline */
        r->errline[r->errcur_len] = 0;
    }
    if (WIFSIGNALED(r->status))
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "%s%skilled by signal %d", r->errline,
                          r->errline[0] ? ": " : "", WTERMSIG(r->status));
    if (WEXITSTATUS(r->status) != 0) {
        if (r->errline[0])
            return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "%s", r->errline);
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "exited with status %d", WEXITSTATUS(r->status));
    }
    if (t->lines)
        return r->out_len ? wsjob_emit(ctx, r->out, r->out_len) : WSJOB_OK;
    return wsjob_output(ctx, r->out ? (void *)r->out : "", r->out_len);
}

int handler_exec(wsjob_ctx *ctx)
{
    const struct exec_type *t = type_of(job_ctx_type(ctx));
    if (!t)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "no such executable type");
    struct run r = { .fd = { -1, -1, -1 } };
    r.in = wsjob_input(ctx, &r.in_len);
    if (spawn(ctx, t, &r) < 0)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot run %s: %s", t->path, strerror(errno));
    if (r.in_len == 0)
        close_fd(&r.fd[0]);
    pump(ctx, t, &r);
    int rc = finish(ctx, t, &r);
    free(r.out);
    return rc;
}
