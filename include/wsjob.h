/* wsjob.h — the wsjobd handler API (see wsjob-handler(3)).
 *
 * A handler is a plain C function that computes one job: it reads its input
 * bytes, may emit chunks of a stream and report progress, sets its output,
 * polls for cancellation and its deadline between steps, and returns
 * WSJOB_OK or an error made with wsjob_fail().
 *
 * A plug-in is a shared object passed to wsjobd with --handlers FILE.so.  It
 * exports one symbol, `wsjob_handlers`: an array of struct wsjob_handler
 * ended by an entry whose name is NULL, whose first entry's api_version is
 * WSJOB_API_VERSION.  Plug-ins are loaded before the workers are forked, so
 * every worker has them.  CPU handlers run one job at a time in a worker
 * process; I/O handlers run on one of many threads of the I/O worker process
 * and must therefore be thread-safe.
 *
 * The functions below are provided by the wsjobd executable; a plug-in links
 * against nothing. */
#ifndef WSJOB_H
#define WSJOB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WSJOB_API_VERSION 1

enum wsjob_class {
    WSJOB_CPU = 0,   /* CPU-bound: a prefork worker process */
    WSJOB_IO  = 1    /* blocking I/O: a thread of the I/O worker process */
};

/* Handler results. */
#define WSJOB_OK 0
#define WSJOB_ERR (-1)

/* Error codes a handler may fail with (the client sees the string). */
enum wsjob_error {
    WSJOB_E_BAD_REQUEST   = 1, /* "bad_request": input the handler rejects */
    WSJOB_E_HANDLER_ERROR = 2, /* "handler_error": failure on valid input */
    WSJOB_E_FORBIDDEN     = 3, /* "forbidden": not allowed by configuration */
    WSJOB_E_TOO_LARGE     = 4, /* "too_large": output over --max-message */
    WSJOB_E_CANCELLED     = 5, /* "cancelled": return this when wsjob_cancelled() */
};

typedef struct wsjob_ctx wsjob_ctx;
typedef int (*wsjob_fn)(wsjob_ctx *ctx);

struct wsjob_handler {
    const char      *name;        /* job type, [a-z0-9_-]{1,32}; NULL ends the table */
    enum wsjob_class cls;
    wsjob_fn         run;
    unsigned         api_version; /* WSJOB_API_VERSION */
};

/* Input bytes of the job (valid until the handler returns).  For a JSON
 * input that is not a string, the compact JSON text. */
const void *wsjob_input(wsjob_ctx *ctx, size_t *len);

/* Sets the final output (copied).  The last call wins. */
int wsjob_output(wsjob_ctx *ctx, const void *data, size_t len);

/* Emits one chunk of a stream (copied).  Blocks while the client's stream
 * window is full, still honouring cancel and deadline.  Returns 0, or
 * WSJOB_ERR when the job was cancelled or timed out while waiting (return
 * from the handler then) or the chunk is over --max-message. */
int wsjob_emit(wsjob_ctx *ctx, const void *data, size_t len);

/* Reports progress; cheap to call often (rate-limited to ~10/s). */
void wsjob_progress(wsjob_ctx *ctx, uint64_t done, uint64_t total);

/* Non-zero once the job was cancelled or its deadline passed.  Cheap: one
 * atomic load and one vDSO clock read.  Poll it between steps. */
int wsjob_cancelled(wsjob_ctx *ctx);

/* Milliseconds left until the job's deadline (0 when past it). */
int64_t wsjob_remaining_ms(wsjob_ctx *ctx);

/* Sleeps up to ms milliseconds, waking at once on cancel or deadline.
 * Returns 0 after the full sleep, WSJOB_ERR when cut short. */
int wsjob_sleep(wsjob_ctx *ctx, int64_t ms);

/* Records an error for the job and returns WSJOB_ERR, so a handler can
 * `return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "rounds must be 1..%d", n);` */
int wsjob_fail(wsjob_ctx *ctx, enum wsjob_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Largest output or chunk the client accepts (--max-message). */
size_t wsjob_max_output(wsjob_ctx *ctx);

/* Handler-private configuration: the value of a daemon option by its long
 * name ("fetch-allow"), one call per occurrence (index 0, 1, ...); NULL when
 * there is no such occurrence. */
const char *wsjob_option(wsjob_ctx *ctx, const char *name, unsigned index);

#ifdef __cplusplus
}
#endif
#endif
