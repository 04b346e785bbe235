/* jobs_detach.c — detached jobs on /jobs (SPEC §5): `"detach":true` on a
 * submit, `attach`, and `cancel` by handle.  The job itself belongs to the
 * detached-job store (front/detach.h); an id on a connection only follows
 * it, and gets exactly one final event like any other id: the job's own
 * final event, `superseded` when a newer attach takes the job over, or an
 * error the attach is answered with at once. */
#include <stdlib.h>
#include <string.h>

#include "front/job_events.h"
#include "front/jobs_parts.h"
#include "wire/ws_frame.h"

static struct detach_store *store(const struct jobs_conn *jc) { return conn_detach(jc->c); }

/* An event framed as one message from two parts, the id's prefix and the
 * kept text after its brace: no copy of the event is built first.  The
 * prefix is written into prefix (JEV_ID_PREFIX_MAX(ID_MAX) bytes). */
static struct conn_msg2 with_body(struct conn_msg2 m, const char *json, size_t len)
{
    m.b = json + 1;
    m.blen = len - 1;
    return m;
}

static struct conn_msg2 kept_msg(const struct entry *e, const char *json, size_t len, char *prefix)
{
    int more = len > 2;
    struct conn_msg2 m = { .a = prefix, .alen = jev_id_prefix(prefix, e->id, e->idlen, more) };
    return more ? with_body(m, json, len) : m;
}

static void send_kept(struct entry *e, const char *json, size_t len)
{
    char prefix[JEV_ID_PREFIX_MAX(ID_MAX)];
    struct conn_msg2 m = kept_msg(e, json, len, prefix);
    conn_send_many(e->jc->c, WS_OP_TEXT, &m, 1);
}

/* Events of a detached job held here (detach_follow_fn), in one write. */
static int follow_local(void *arg, const struct detach_text *ev, size_t n, int final)
{
    struct entry *e = arg;
    struct conn *c = e->jc->c;
    char prefix[DETACH_TEXTS_MAX][JEV_ID_PREFIX_MAX(ID_MAX)];
    struct conn_msg2 m[DETACH_TEXTS_MAX];
    for (size_t i = 0; i < n; i++) {
        /* `accepted` and a short job's final event come together: the
         * second takes the first's prefix (the id quoted once, not twice). */
        if (i > 0 && m[0].blen && ev[i].len > 2)
            m[i] = with_body(m[0], ev[i].json, ev[i].len);
        else
            m[i] = kept_msg(e, ev[i].json, ev[i].len, prefix[i]);
    }
    conn_send_many(c, WS_OP_TEXT, m, n);
    if (final) {
        jobs_finish(e);
        return 0;
    }
    return conn_out_pending(c) > conn_stream_window(c);
}

enum job_error jobs_detach_submit(struct entry *e, const struct job_request *r, const char **why)
{
    struct detach_job *dj;
    enum job_error err = detach_submit(store(e->jc), r, follow_local, e, &dj, why);
    if (err != JE_NONE)
        return err;
    e->kind = ENTRY_DETACHED;
    e->dj = dj;   /* `accepted` comes from the store, before any other event */
    return JE_NONE;
}

/* ---- following a job held by another instance ------------------------------ */

/* The owner's stream is paced by nobody here, so a client that does not
 * read would make this connection's buffer grow without end: past its
 * stream window and a whole detach buffer unread, the attach ends (busy)
 * and the client may attach again from the seq it has. */
static int remote_client_too_slow(const struct entry *e)
{
    struct conn *c = e->jc->c;
    return conn_out_pending(c) > conn_stream_window(c) + detach_buffer_size(store(e->jc));
}

static void follow_remote(void *arg, const char *json, size_t len, int final)
{
    struct entry *e = arg;
    send_kept(e, json, len);
    if (final) {
        e->remote = NULL;       /* over: the store frees it */
        if (e->starting)
            e->ended = 1;       /* the attach frees the entry once the call returns */
        else
            jobs_finish(e);
        return;
    }
    if (!e->starting && remote_client_too_slow(e)) {
        detach_unfollow_remote(e->remote);
        e->remote = NULL;
        jobs_send_error(e->jc, e->id, e->idlen, JE_BUSY,
                        "the client reads too slowly for a job held by another instance; "
                        "attach again from the next seq");
        jobs_finish(e);
    }
}

static void attach_remote(struct entry *e, const char *handle, uint64_t from_seq)
{
    memcpy(e->handle, handle, DETACH_HANDLE_LEN);
    e->kind = ENTRY_REMOTE;
    jobs_link(e->jc, e);
    /* Events may come before the call returns, even the final one: the
     * entry stays until it has. */
    e->starting = 1;
    int rc = detach_follow_remote(store(e->jc), e->handle, from_seq, follow_remote, e, &e->remote);
    e->starting = 0;
    if (e->ended) {
        jobs_finish(e);
        return;
    }
    if (rc < 0) {
        e->remote = NULL;
        jobs_send_error(e->jc, e->id, e->idlen, JE_BUSY, "the result store cannot follow it now");
        jobs_finish(e);
    }
}

void jobs_attach(struct jobs_conn *jc, const struct jobs_request *r, const char *id, size_t idlen)
{
    const struct jr_field *from = &r->from_seq;
    if (r->handle.kind != JR_STRING) {
        jobs_send_error(jc, id, idlen, JE_BAD_REQUEST, "handle must be a string");
        return;
    }
    if (from->kind != JR_ABSENT && (from->kind != JR_INTEGER || from->i < 0)) {
        jobs_send_error(jc, id, idlen, JE_BAD_REQUEST, "from_seq must be an integer >= 0");
        return;
    }
    if (jobs_admit(jc, id, idlen) < 0)
        return;
    const char *handle = r->handle.s;
    size_t hlen = r->handle.n;
    uint64_t from_seq = from->kind == JR_INTEGER ? (uint64_t)from->i : 0;
    struct detach_store *ds = store(jc);
    struct detach_job *dj = detach_find(ds, handle, hlen);
    if (!dj && (!detach_has_mirror(ds) || !detach_handle_valid(handle, hlen))) {
        jobs_send_error(jc, id, idlen, JE_NOT_FOUND, "no detached job has this handle");
        return;
    }
    struct entry *e = jobs_new_entry(jc, id, idlen);
    if (!e) {
        jobs_send_error(jc, id, idlen, JE_BUSY, "out of memory");
        return;
    }
    if (!dj) {
        attach_remote(e, handle, from_seq);
        return;
    }
    e->kind = ENTRY_DETACHED;
    e->dj = dj;
    jobs_link(jc, e);
    detach_attach(dj, from_seq, follow_local, e);   /* may finish e */
}

/* ---- cancel, and the connection going ----------------------------------------- */

void jobs_cancel_handle(struct jobs_conn *jc, const struct jr_field *handle)
{
    /* Like a cancel by id, it answers nothing: whoever follows the job
     * gets its `cancelled`. */
    if (handle->kind == JR_STRING)
        detach_client_cancel(store(jc), handle->s, handle->n);
}

void jobs_detach_cancel(struct entry *e)
{
    if (e->kind == ENTRY_DETACHED)
        detach_cancel(e->dj);   /* may finish e */
    else
        detach_client_cancel(store(e->jc), e->handle, DETACH_HANDLE_LEN);
}

void jobs_detach_closed(struct entry *e)
{
    if (e->kind == ENTRY_DETACHED)
        detach_unfollow(e->dj, e);
    else if (e->remote)
        detach_unfollow_remote(e->remote);
}
