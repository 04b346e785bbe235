/* crash.c — test plug-in: jobs that kill their worker.
 *
 *   crash (cpu)       dies of SIGSEGV, whatever the input.
 *   crash_once (cpu)  input: a file path.  Creates the file and dies; when
 *                     the file already exists, outputs "survived".  So the
 *                     first run crashes and a retry succeeds, across
 *                     processes, which is what --crash-retries needs.
 *
 * The handler is reset and the signal unblocked first, so the worker
 * really dies of SIGSEGV, even under a sanitizer that would otherwise catch
 * it and exit. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsjob.h"

static int die(void)
{
    sigset_t segv;
    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    signal(SIGSEGV, SIG_DFL);
    sigprocmask(SIG_UNBLOCK, &segv, NULL);
    raise(SIGSEGV);
    abort();   /* not reached: the default action of SIGSEGV ends us */
}

static int crash(wsjob_ctx *ctx)
{
    (void)ctx;
    return die();
}

static int crash_once(wsjob_ctx *ctx)
{
    size_t len;
    const char *in = wsjob_input(ctx, &len);
    char path[PATH_MAX];
    if (len == 0 || len >= sizeof path || memchr(in, '\0', len))
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "input must be a file path");
    memcpy(path, in, len);
    path[len] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
        close(fd);
        return die();
    }
    if (wsjob_output(ctx, "survived", 8) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}

__attribute__((visibility("default")))
const struct wsjob_handler wsjob_handlers[] = {
    { "crash",      WSJOB_CPU, crash,      WSJOB_API_VERSION },
    { "crash_once", WSJOB_CPU, crash_once, WSJOB_API_VERSION },
    { 0 },
};
