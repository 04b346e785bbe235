/* jobs_proto.c — /jobs: one JSON object per text message in, one JSON event
 * per message out.
 *
 * The no-loss invariant lives here and in dispatch: every submit whose id
 * could be read gets exactly one final event.  A submit refused before it
 * reaches dispatch is answered here at once; one admitted is answered by
 * dispatch through the sink below, exactly once, and only then is its
 * entry freed.  A detached job's final answer goes to the detached-job
 * store instead, which passes it on to whichever id follows the job
 * (jobs_detach.c). */
#include "front/jobs_proto.h"

#include <jansson.h>
#include <mbedtls/base64.h>
#include <stdlib.h>
#include <string.h>

#include "front/job_events.h"
#include "front/jobs_parts.h"
#include "handlers/handler_registry.h"
#include "pipeline/dispatch.h"
#include "wire/jobs_request.h"
#include "wire/json_out.h"
#include "wire/ws_frame.h"

static const struct job_sink sink;

void *jobs_proto_new(struct conn *c)
{
    struct jobs_conn *jc = calloc(1, sizeof *jc);
    if (jc)
        jc->c = c;
    return jc;
}

struct jout *jobs_scratch(struct jobs_conn *jc)
{
    struct jout *j = conn_scratch(jc->c);
    jout_reset(j);
    return j;
}

void jobs_send(struct jobs_conn *jc, struct jout *j)
{
    if (!j->oom)
        conn_send(jc->c, WS_OP_TEXT, j->p, j->len);
}

static void send_error(struct jobs_conn *jc, const char *id, size_t idlen,
                       enum job_error code, const char *msg, size_t msglen)
{
    if (code == JE_BUSY)
        conn_count_busy(jc->c);
    struct jout *j = jobs_scratch(jc);
    jev_error(j, id, idlen, code, msg, msglen);
    jobs_send(jc, j);
}

void jobs_send_error(struct jobs_conn *jc, const char *id, size_t idlen,
                     enum job_error code, const char *msg)
{
    send_error(jc, id, idlen, code, msg, strlen(msg));
}

static struct entry *find(struct jobs_conn *jc, const char *id, size_t idlen)
{
    for (struct entry *e = jc->jobs; e; e = e->next)
        if (e->idlen == idlen && memcmp(e->id, id, idlen) == 0)
            return e;
    return NULL;
}

static void unlink_entry(struct jobs_conn *jc, struct entry *e)
{
    for (struct entry **pp = &jc->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            jc->n--;
            return;
        }
    }
}

void jobs_link(struct jobs_conn *jc, struct entry *e)
{
    e->next = jc->jobs;
    jc->jobs = e;
    jc->n++;
}

void jobs_finish(struct entry *e)
{
    struct jobs_conn *jc = e->jc;
    unlink_entry(jc, e);
    free(e);
    conn_resume(jc->c);
}

struct entry *jobs_new_entry(struct jobs_conn *jc, const char *id, size_t idlen)
{
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->jc = jc;
    e->idlen = (uint8_t)idlen;
    memcpy(e->id, id, idlen);
    return e;
}

int jobs_admit(struct jobs_conn *jc, const char *id, size_t idlen)
{
    if (find(jc, id, idlen)) {
        jobs_send_error(jc, id, idlen, JE_DUPLICATE_ID, "a job with this id is in flight");
        return -1;
    }
    if (jc->n >= conn_max_inflight(jc->c)) {
        jobs_send_error(jc, id, idlen, JE_BUSY, "too many jobs in flight on this connection");
        return -1;
    }
    /* Its output would add to what the front already holds past its
     * budget; refused before the input is even decoded. */
    if (conn_budget_refuse(jc->c)) {
        jobs_send_error(jc, id, idlen, JE_BUSY, "server memory budget reached");
        return -1;
    }
    return 0;
}

static void ack_entry(struct entry *e)
{
    if (!e->unacked)
        return;
    dispatch_ack(conn_dispatch(e->jc->c), e->job, e->unacked);
    e->unacked = 0;
}

/* ---- events from dispatch --------------------------------------------- */

static void on_chunk(void *cookie, uint32_t job, const uint8_t *data, size_t len)
{
    struct entry *e = cookie;
    struct jobs_conn *jc = e->jc;
    (void)job;
    struct jout *j = jobs_scratch(jc);
    jev_chunk(j, e->id, e->idlen, e->chunk_seq++, data, len);
    jobs_send(jc, j);
    e->unacked += len;
    /* While the socket keeps up, acknowledge at once; otherwise the bytes
     * stay unacknowledged until the buffer drains (see drained()), which is
     * what makes the handler's emit wait for a client that does not read. */
    if (conn_out_pending(jc->c) <= conn_stream_window(jc->c))
        ack_entry(e);
}

static void on_progress(void *cookie, uint32_t job, uint64_t done, uint64_t total)
{
    struct entry *e = cookie;
    (void)job;
    int64_t now = shm_now_ns();
    if (now - e->last_progress_ns < JEV_PROGRESS_MIN_NS)
        return;
    e->last_progress_ns = now;
    struct jout *j = jobs_scratch(e->jc);
    jev_progress(j, e->id, e->idlen, done, total);
    jobs_send(e->jc, j);
}

static void on_done(void *cookie, uint32_t job, const uint8_t *data, size_t len,
                    int has_output, uint64_t queued_us, uint64_t run_us)
{
    struct entry *e = cookie;
    (void)job;
    struct jout *j = jobs_scratch(e->jc);
    jev_done(j, e->id, e->idlen, data, len, has_output, queued_us, run_us);
    jobs_send(e->jc, j);
    jobs_finish(e);
}

static void on_error(void *cookie, uint32_t job, enum job_error code, const char *msg, size_t len)
{
    struct entry *e = cookie;
    (void)job;
    send_error(e->jc, e->id, e->idlen, code, msg, len);
    jobs_finish(e);
}

static const struct job_sink sink = {
    .chunk = on_chunk, .progress = on_progress, .done = on_done, .error = on_error,
};

/* ---- requests from the client ------------------------------------------ */

/* The input bytes a handler receives: a JSON string's UTF-8 bytes, any other
 * value's compact JSON text, or input_b64 decoded.  *owned is malloc'd when
 * set.  JE_NONE or JE_BAD_REQUEST with a message. */
static enum job_error read_input(const struct jobs_request *r, const uint8_t **in, size_t *len,
                                 uint8_t **owned, const char **why)
{
    const struct jr_field *v = &r->input, *b = &r->input_b64;
    *owned = NULL;
    if (v->kind != JR_ABSENT && b->kind != JR_ABSENT) {
        *why = "give input or input_b64, not both";
        return JE_BAD_REQUEST;
    }
    if (b->kind != JR_ABSENT) {
        if (b->kind != JR_STRING) {
            *why = "input_b64 must be a string";
            return JE_BAD_REQUEST;
        }
        size_t cap = b->n / 4 * 3 + 3, olen = 0;
        *owned = malloc(cap);
        if (!*owned || mbedtls_base64_decode(*owned, cap, &olen, (const unsigned char *)b->s, b->n) != 0) {
            free(*owned);
            *owned = NULL;
            *why = "input_b64 is not valid base64";
            return JE_BAD_REQUEST;
        }
        *in = *owned;
        *len = olen;
        return JE_NONE;
    }
    if (v->kind == JR_ABSENT) {
        *in = (const uint8_t *)"";
        *len = 0;
        return JE_NONE;
    }
    if (v->kind == JR_STRING) {
        *in = (const uint8_t *)v->s;
        *len = v->n;
        return JE_NONE;
    }
    if (!r->input_json) {
        *why = "input cannot be encoded";
        return JE_BAD_REQUEST;
    }
    *in = (const uint8_t *)r->input_json;
    *len = r->input_json_len;
    return JE_NONE;
}

static void submit(struct jobs_conn *jc, const struct jobs_request *rq, const char *id, size_t idlen)
{
    if (jc->shutting_down || conn_draining(jc->c)) {
        jobs_send_error(jc, id, idlen, JE_SHUTTING_DOWN, "the server is shutting down");
        return;
    }
    if (rq->type.kind != JR_STRING) {
        jobs_send_error(jc, id, idlen, JE_BAD_REQUEST, "type must be a string");
        return;
    }
    int t = registry_find(rq->type.s, rq->type.n);
    if (t < 0) {
        jobs_send_error(jc, id, idlen, JE_UNKNOWN_TYPE, "no such job type");
        return;
    }
    const struct jr_field *tmo = &rq->timeout_ms;
    if (tmo->kind != JR_ABSENT && (tmo->kind != JR_INTEGER || tmo->i < 1 || tmo->i > 86400000)) {
        jobs_send_error(jc, id, idlen, JE_BAD_REQUEST, "timeout_ms must be an integer 1..86400000");
        return;
    }
    const struct jr_field *detach = &rq->detach;
    if (detach->kind != JR_ABSENT && detach->kind != JR_TRUE && detach->kind != JR_FALSE) {
        jobs_send_error(jc, id, idlen, JE_BAD_REQUEST, "detach must be true or false");
        return;
    }
    if (jobs_admit(jc, id, idlen) < 0)
        return;
    const uint8_t *in;
    size_t len;
    uint8_t *owned;
    const char *why = NULL;
    if (read_input(rq, &in, &len, &owned, &why) != JE_NONE) {
        jobs_send_error(jc, id, idlen, JE_BAD_REQUEST, why);
        return;
    }
    struct entry *e = jobs_new_entry(jc, id, idlen);
    if (!e) {
        free(owned);
        jobs_send_error(jc, id, idlen, JE_BUSY, "out of memory");
        return;
    }
    struct job_request r = {
        .type = t, .input = in, .len = len,
        .timeout_ms = tmo->kind == JR_INTEGER ? tmo->i : 0,
        .id = e->id, .id_len = e->idlen,
        .sink = &sink, .cookie = e,
    };
    enum job_error err = detach->kind == JR_TRUE ? jobs_detach_submit(e, &r, &why)
                                                 : dispatch_submit(conn_dispatch(jc->c), &r, &e->job);
    free(owned);
    if (err != JE_NONE) {
        free(e);
        jobs_send_error(jc, id, idlen, err, why ? why : err == JE_BUSY ? "queue full" :
                        err == JE_TOO_LARGE ? "input exceeds max-message" : "rejected");
        return;
    }
    jobs_link(jc, e);
}

static void cancel(struct jobs_conn *jc, const char *id, size_t idlen)
{
    /* Not in flight (unknown, or answered already): ignored, so a cancel
     * racing a done is harmless. */
    struct entry *e = find(jc, id, idlen);
    if (!e)
        return;
    if (e->kind == ENTRY_JOB)
        dispatch_cancel(conn_dispatch(jc->c), e->job);
    else
        jobs_detach_cancel(e);
}

static int op_is(const struct jobs_request *r, const char *name)
{
    size_t n = strlen(name);
    return r->op.kind == JR_STRING && r->op.n == n && memcmp(r->op.s, name, n) == 0;
}

static void route(struct jobs_conn *jc, const struct jobs_request *r)
{
    /* A cancel by handle needs no id: nothing is answered to it. */
    if (op_is(r, "cancel") && r->handle.kind != JR_ABSENT) {
        jobs_cancel_handle(jc, &r->handle);
        return;
    }
    const char *id = r->id.kind == JR_STRING ? r->id.s : NULL;
    size_t idlen = id ? r->id.n : 0;
    if (!id || idlen < 1 || idlen > ID_MAX) {
        jobs_send_error(jc, NULL, 0, JE_BAD_REQUEST, "id must be a string of 1 to 64 bytes");
        return;
    }
    if (op_is(r, "submit"))
        submit(jc, r, id, idlen);
    else if (op_is(r, "cancel"))
        cancel(jc, id, idlen);
    else if (op_is(r, "attach"))
        jobs_attach(jc, r, id, idlen);
    else
        jobs_send_error(jc, id, idlen, JE_BAD_REQUEST, "op must be submit, cancel or attach");
}

static void on_message(struct conn *c, void *state, int opcode, uint8_t *data, size_t len)
{
    struct jobs_conn *jc = state;
    (void)c;
    if (opcode != WS_OP_TEXT) {
        jobs_send_error(jc, NULL, 0, JE_BAD_REQUEST, "send JSON text messages");
        return;
    }
    struct jobs_request r;
    json_t *req = NULL;
    if (!jobs_request_scan((const char *)data, len, &r)) {
        json_error_t jerr;
        req = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req || !json_is_object(req)) {
            jobs_send_error(jc, NULL, 0, JE_BAD_REQUEST, req ? "not a JSON object" : jerr.text);
            json_decref(req);
            return;
        }
        jobs_request_from_json(req, &r);
    }
    route(jc, &r);
    jobs_request_free(&r);
    json_decref(req);
}

static void on_drained(struct conn *c, void *state)
{
    struct jobs_conn *jc = state;
    (void)c;
    for (struct entry *e = jc->jobs; e; e = e->next) {
        if (e->kind == ENTRY_JOB)
            ack_entry(e);
        else if (e->kind == ENTRY_DETACHED)
            detach_drained(e->dj);
    }
}

static int on_room(struct conn *c, void *state)
{
    (void)c;
    (void)state;   /* /jobs answers busy instead of waiting: never called */
    return 0;
}

static void on_shutdown(struct conn *c, void *state)
{
    (void)c;
    ((struct jobs_conn *)state)->shutting_down = 1;
}

static void on_closed(struct conn *c, void *state)
{
    struct jobs_conn *jc = state;
    struct dispatch *d = conn_dispatch(c);
    struct entry *e = jc->jobs;
    while (e) {
        struct entry *next = e->next;
        if (e->kind == ENTRY_JOB)
            dispatch_detach(d, e->job);
        else
            jobs_detach_closed(e);
        free(e);
        e = next;
    }
    free(jc);
}

const struct proto_ops jobs_proto_ops = {
    .message = on_message, .drained = on_drained, .room = on_room,
    .shutdown = on_shutdown, .closed = on_closed,
};
