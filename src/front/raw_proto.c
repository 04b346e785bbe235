/* raw_proto.c — /run/TYPE: each message is the input of one job; outputs go
 * back in input order.
 *
 * Jobs of one connection run in parallel, so their answers arrive in any
 * order.  Entries sit in a ring by input sequence; the head's output goes
 * straight to the socket, later jobs' output is held until every earlier job
 * has finished.  Instead of answering `busy`, this mode stops reading the
 * socket (the client's TCP window then pushes back) while max_inflight jobs
 * are in flight, the daemon has no room or the front's memory budget is
 * reached.  Held outputs and a waiting message count in that budget. */
#include "front/raw_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handler_registry.h"
#include "pipeline/dispatch.h"
#include "wire/utf8.h"
#include "wire/ws_frame.h"

struct raw_conn;

struct held {                 /* an output kept until its job is the head */
    struct held *next;
    int opcode;
    size_t len;
    uint8_t data[];
};

struct raw_job {
    struct raw_conn *rc;
    uint32_t job;
    int      opcode;          /* of the input; the output goes back with it */
    int      finished;        /* final answer received */
    enum job_error code;      /* JE_NONE: done */
    char    *errmsg;          /* malloc'd, for a failed job */
    struct held *first, *last;
    uint64_t unacked;
    struct raw_job *next_spare;
};

struct raw_conn {
    struct conn *c;
    int type;
    struct raw_job **ring;    /* by input sequence modulo cap */
    unsigned cap;
    uint64_t head, tail;      /* oldest unanswered, next to admit */
    int closing;              /* a job failed: nothing more is read or sent */
    int shutting_down;
    uint8_t *pending;         /* a message refused with busy, to retry */
    size_t pending_len;
    int pending_opcode;
    /* Finished jobs kept for the next admits (at most max_inflight of
     * them): a connection streaming small messages allocates nothing per
     * message once warm. */
    struct raw_job *spare;
    unsigned nspare;
};

static const struct job_sink sink;

void *raw_proto_new(struct conn *c, int type)
{
    struct raw_conn *rc = calloc(1, sizeof *rc);
    if (!rc)
        return NULL;
    rc->c = c;
    rc->type = type;
    return rc;
}

static unsigned inflight(const struct raw_conn *rc) { return (unsigned)(rc->tail - rc->head); }

static unsigned max_inflight(const struct raw_conn *rc)
{
    return conn_max_inflight(rc->c);
}

/* Rings start small and double, so an idle connection holds no ring at all. */
static int grow(struct raw_conn *rc)
{
    unsigned cap = rc->cap ? rc->cap * 2 : 16;
    struct raw_job **ring = calloc(cap, sizeof *ring);
    if (!ring)
        return -1;
    for (uint64_t s = rc->head; s < rc->tail; s++)
        ring[s % cap] = rc->ring[s % rc->cap];
    free(rc->ring);
    rc->ring = ring;
    rc->cap = cap;
    return 0;
}

static int out_opcode(int opcode, const uint8_t *data, size_t len)
{
    if (opcode == WS_OP_TEXT && !utf8_valid(data, len))
        return WS_OP_BINARY;
    return opcode;
}

static void ack(struct raw_job *j)
{
    if (j->unacked && !j->finished)
        dispatch_ack(conn_dispatch(j->rc->c), j->job, j->unacked);
    j->unacked = 0;
}

static int is_head(const struct raw_job *j)
{
    const struct raw_conn *rc = j->rc;
    return rc->tail > rc->head && rc->ring[rc->head % rc->cap] == j;
}

static void hold(struct raw_job *j, int opcode, const uint8_t *data, size_t len)
{
    struct held *h = malloc(sizeof *h + len);
    if (!h) {
        conn_close(j->rc->c, 1011, "out of memory");
        return;
    }
    conn_hold(j->rc->c, len);
    h->next = NULL;
    h->opcode = opcode;
    h->len = len;
    memcpy(h->data, data, len);
    if (j->last)
        j->last->next = h;
    else
        j->first = h;
    j->last = h;
}

static void emit(struct raw_job *j, const uint8_t *data, size_t len)
{
    int op = out_opcode(j->opcode, data, len);
    if (!is_head(j)) {
        hold(j, op, data, len);
        return;
    }
    conn_send(j->rc->c, op, data, len);
}

static void free_held(struct raw_job *j)
{
    struct held *h = j->first;
    while (h) {
        struct held *next = h->next;
        conn_release(j->rc->c, h->len);
        free(h);
        h = next;
    }
    j->first = j->last = NULL;
}

static void free_pending(struct raw_conn *rc)
{
    if (rc->pending)
        conn_release(rc->c, rc->pending_len);
    free(rc->pending);
    rc->pending = NULL;
}

static void free_job(struct raw_job *j)
{
    struct raw_conn *rc = j->rc;
    free_held(j);
    free(j->errmsg);
    if (rc->nspare < max_inflight(rc)) {
        j->next_spare = rc->spare;
        rc->spare = j;
        rc->nspare++;
        return;
    }
    free(j);
}

static struct raw_job *new_job(struct raw_conn *rc)
{
    struct raw_job *j = rc->spare;
    if (!j)
        return calloc(1, sizeof *j);
    rc->spare = j->next_spare;
    rc->nspare--;
    *j = (struct raw_job){ 0 };
    return j;
}

static int try_pending(struct raw_conn *rc);

/* Sends everything that is now in order: the head's held output, and each
 * finished job after it. */
static void advance(struct raw_conn *rc)
{
    while (!rc->closing && rc->head < rc->tail) {
        struct raw_job *j = rc->ring[rc->head % rc->cap];
        for (struct held *h = j->first; h; h = h->next)
            conn_send(rc->c, h->opcode, h->data, h->len);
        free_held(j);
        if (!j->finished) {
            ack(j);
            return;
        }
        if (j->code != JE_NONE) {
            char reason[124];
            snprintf(reason, sizeof reason, "%s: %s", job_error_name(j->code),
                     j->errmsg ? j->errmsg : "");
            /* A close reason must be valid UTF-8 (RFC 6455 §5.5.1). */
            size_t n = strlen(reason);
            while (n && !utf8_valid((const uint8_t *)reason, n))
                reason[--n] = 0;
            rc->closing = 1;
            conn_close(rc->c, 1011, reason);
        }
        rc->ring[rc->head % rc->cap] = NULL;
        rc->head++;
        free_job(j);
    }
    if (try_pending(rc) < 0)
        conn_wait_room(rc->c);
    if (!rc->pending && !rc->closing && inflight(rc) < max_inflight(rc))
        conn_resume(rc->c);
}

static void on_chunk(void *cookie, uint32_t job, const uint8_t *data, size_t len)
{
    struct raw_job *j = cookie;
    (void)job;
    emit(j, data, len);
    j->unacked += len;
    if (is_head(j) && conn_out_pending(j->rc->c) <= conn_stream_window(j->rc->c))
        ack(j);
}

static void on_done(void *cookie, uint32_t job, const uint8_t *data, size_t len,
                    int has_output, uint64_t queued_us, uint64_t run_us)
{
    struct raw_job *j = cookie;
    (void)job;
    (void)queued_us;
    (void)run_us;
    /* A streaming job's output was its chunks; a done without output then
     * adds no message. */
    if (has_output)
        emit(j, data, len);
    j->finished = 1;
    if (is_head(j))
        advance(j->rc);
}

static void on_error(void *cookie, uint32_t job, enum job_error code, const char *msg, size_t len)
{
    struct raw_job *j = cookie;
    (void)job;
    j->finished = 1;
    j->code = code;
    j->errmsg = strndup(msg, len);
    if (is_head(j))
        advance(j->rc);
}

static const struct job_sink sink = { .chunk = on_chunk, .done = on_done, .error = on_error };

/* Admits one message as a job.  Returns 0 when admitted (or answered), -1
 * when the daemon is busy and the message must wait. */
static int admit(struct raw_conn *rc, int opcode, const uint8_t *data, size_t len)
{
    if (!conn_draining(rc->c) && conn_over_budget(rc->c))
        return -1;   /* like busy: wait, unread, until the budget has room */
    if (inflight(rc) == rc->cap && grow(rc) < 0) {
        conn_close(rc->c, 1011, "out of memory");
        return 0;
    }
    struct raw_job *j = new_job(rc);
    if (!j) {
        conn_close(rc->c, 1011, "out of memory");
        return 0;
    }
    j->rc = rc;
    j->opcode = opcode;
    struct job_request r = { .type = rc->type, .input = data, .len = len, .sink = &sink, .cookie = j };
    enum job_error err = conn_draining(rc->c) ? JE_SHUTTING_DOWN
                                               : dispatch_submit(conn_dispatch(rc->c), &r, &j->job);
    if (err == JE_BUSY) {
        free(j);
        return -1;
    }
    rc->ring[rc->tail % rc->cap] = j;
    rc->tail++;
    if (err != JE_NONE) {
        j->finished = 1;
        j->code = err;
        j->errmsg = strdup(err == JE_TOO_LARGE ? "input exceeds max-message" : "refused");
        if (is_head(j))
            advance(rc);
    }
    if (inflight(rc) >= max_inflight(rc))
        conn_pause(rc->c);
    return 0;
}

/* Admits the message kept back, if its turn has come.  -1: the daemon is
 * still busy (the message stays kept, reading stays paused). */
static int try_pending(struct raw_conn *rc)
{
    if (!rc->pending || rc->closing || inflight(rc) >= max_inflight(rc))
        return 0;
    /* Taken off first: admitting may answer at once and come back here. */
    uint8_t *msg = rc->pending;
    rc->pending = NULL;
    if (admit(rc, rc->pending_opcode, msg, rc->pending_len) < 0) {
        rc->pending = msg;
        return -1;
    }
    conn_release(rc->c, rc->pending_len);
    free(msg);
    if (inflight(rc) < max_inflight(rc))
        conn_resume(rc->c);
    return 0;
}

static void on_message(struct conn *c, void *state, int opcode, uint8_t *data, size_t len)
{
    struct raw_conn *rc = state;
    if (rc->closing)
        return;
    int busy = 0;
    if (inflight(rc) < max_inflight(rc)) {
        if (admit(rc, opcode, data, len) == 0)
            return;
        busy = 1;
    }
    /* Busy, or a reader that ignored the pause for one more message: keep
     * it and stop reading until there is room. */
    rc->pending = malloc(len ? len : 1);
    if (!rc->pending) {
        conn_close(c, 1011, "out of memory");
        return;
    }
    memcpy(rc->pending, data, len);
    conn_hold(c, len);
    rc->pending_len = len;
    rc->pending_opcode = opcode;
    conn_pause(c);
    if (busy)
        conn_wait_room(c);
}

static void on_drained(struct conn *c, void *state)
{
    struct raw_conn *rc = state;
    (void)c;
    if (rc->head < rc->tail)
        ack(rc->ring[rc->head % rc->cap]);
}

static int on_room(struct conn *c, void *state)
{
    (void)c;
    return try_pending(state);
}

static void on_shutdown(struct conn *c, void *state)
{
    (void)c;
    ((struct raw_conn *)state)->shutting_down = 1;
}

static void on_closed(struct conn *c, void *state)
{
    struct raw_conn *rc = state;
    struct dispatch *d = conn_dispatch(c);
    for (uint64_t s = rc->head; s < rc->tail; s++) {
        struct raw_job *j = rc->ring[s % rc->cap];
        if (!j->finished)
            dispatch_detach(d, j->job);
        free_job(j);
    }
    while (rc->spare) {
        struct raw_job *j = rc->spare;
        rc->spare = j->next_spare;
        free(j);
    }
    free(rc->ring);
    free_pending(rc);
    free(rc);
}

const struct proto_ops raw_proto_ops = {
    .message = on_message, .drained = on_drained, .room = on_room,
    .shutdown = on_shutdown, .closed = on_closed,
};
