/* result_store_follow.c — following a job another instance runs.
 *
 * ORDER, SO THAT NO EVENT FALLS BETWEEN THE READ AND THE SUBSCRIPTION
 *   1. SUBSCRIBE wsjobd:job:H on `sub`, and wait for its confirmation: from
 *      then on every PUBLISH of the owner reaches this instance.
 *   2. MULTI; GET owner; LRANGE ev 0 -1; GET final; EXEC on `cmd`: one
 *      snapshot, atomic with respect to the owner's MULTI/EXEC writes.
 *      Messages that arrive meanwhile (on the other connection, so in any
 *      order relative to the snapshot's reply) are queued: chunks and the
 *      final, not progress, which is a state and the snapshot has it.
 *   3. Deliver the snapshot's chunks with seq >= from_seq and its newest
 *      progress, then the queue, then live messages; a chunk is delivered
 *      only if its seq is past the last one delivered, so what the snapshot
 *      and the messages both have goes out once.
 *   4. One final: the owner's done/error (snapshot or message), not_found
 *      (no owner key and no final), worker_crashed (the owner's heartbeat
 *      key is gone and still no final), busy (the link to Redis is lost).
 *
 * Several follows of one job share one subscription (result_store_chan.c).
 *
 * LIFETIME.  A follow holds a reference for its caller (dropped at the final
 * or at unfollow), one per command whose reply is awaited (hiredis answers
 * every one, with NULL when the link goes), and one while its callback runs;
 * it is freed at zero. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/result_store_event.h"
#include "store/result_store_parts.h"

#define FINAL_BUSY     "{\"event\":\"error\",\"code\":\"busy\",\"message\":\"result store unavailable\"}"
#define FINAL_NOTFOUND "{\"event\":\"error\",\"code\":\"not_found\",\"message\":\"no such job\"}"
#define FINAL_CRASHED  "{\"event\":\"error\",\"code\":\"worker_crashed\",\"message\":\"the instance running the job stopped\"}"
#define FINAL_CLOSED   "{\"event\":\"error\",\"code\":\"shutting_down\",\"message\":\"result store closed\"}"

static void unref(struct rs_follow *f)
{
    if (--f->refs)
        return;
    for (struct rs_msg *m = f->q_head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    free(f);
}

/* ---- ending -------------------------------------------------------------- */

static void detach(struct rs_follow *f)
{
    struct result_store *rs = f->rs;
    f->state = F_ENDED;
    if (f->prev)
        f->prev->next = f->next;
    else
        rs->follows = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    rs_chan_leave(f);
    rs->follows_active--;
}

/* Delivers the final and drops the caller's reference. */
static void end_follow(struct rs_follow *f, const char *text, size_t len)
{
    if (f->state == F_ENDED)
        return;
    detach(f);
    f->on_event(f->arg, text, len, 1);
    unref(f);
}

static void end_with(struct rs_follow *f, const char *final)
{
    end_follow(f, final, strlen(final));
}

/* Delivers one non-final event.  0, or -1 when the follow ended inside. */
static int emit(struct rs_follow *f, const char *text, size_t len)
{
    f->refs++;
    f->on_event(f->arg, text, len, 0);
    int alive = f->state != F_ENDED;
    unref(f);
    return alive ? 0 : -1;
}

/* A chunk goes out once, in seq order: anything at or below the last seq
 * delivered (or below from_seq) was delivered already or not asked for. */
static int emit_chunk(struct rs_follow *f, uint64_t seq, const char *text, size_t len)
{
    if (seq < f->next_seq)
        return 0;
    f->next_seq = seq + 1;
    return emit(f, text, len);
}

/* ---- the snapshot -------------------------------------------------------- */

/* The list's chunks from from_seq and its newest progress.  0, or -1 when
 * the follow ended inside a callback. */
static int deliver_list(struct rs_follow *f, const redisReply *list)
{
    size_t last_other = SIZE_MAX;
    uint64_t seq;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type == REDIS_REPLY_STRING && rs_event_kind(e->str, e->len, &seq) == RS_EV_OTHER)
            last_other = i;
    }
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        enum rs_event_kind k = rs_event_kind(e->str, e->len, &seq);
        int r = 0;
        if (k == RS_EV_CHUNK)
            r = emit_chunk(f, seq, e->str, e->len);
        else if (k == RS_EV_OTHER && i == last_other)
            r = emit(f, e->str, e->len);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* What came on the channel while the snapshot was read. */
static void deliver_queue(struct rs_follow *f)
{
    struct rs_msg *m;
    while (f->state == F_READING && (m = f->q_head)) {
        f->q_head = m->next;
        if (!f->q_head)
            f->q_tail = NULL;
        uint64_t seq;
        if (rs_event_kind(m->text, m->len, &seq) == RS_EV_CHUNK)
            emit_chunk(f, seq, m->text, m->len);
        else
            end_follow(f, m->text, m->len);
        free(m);
    }
}

static void on_snapshot(redisAsyncContext *ac, void *r, void *arg)
{
    (void)ac;
    struct rs_follow *f = arg;
    redisReply *reply = r;
    if (f->state != F_READING) {
        unref(f);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        end_with(f, FINAL_BUSY);
        unref(f);
        return;
    }
    const redisReply *owner = reply->element[0], *final = reply->element[2];
    if (owner->type != REDIS_REPLY_STRING && final->type != REDIS_REPLY_STRING) {
        end_with(f, FINAL_NOTFOUND);
        unref(f);
        return;
    }
    if (owner->type == REDIS_REPLY_STRING)
        snprintf(f->owner, sizeof f->owner, "%s", owner->str);
    if (deliver_list(f, reply->element[1]) == 0) {
        if (final->type == REDIS_REPLY_STRING)
            end_follow(f, final->str, final->len);
        deliver_queue(f);
        if (f->state == F_READING)
            f->state = F_LIVE;
    }
    unref(f);
}

/* Sends the snapshot's commands.  0, or -1 when the link cannot take them
 * (the caller ends the follow: busy). */
static int start_read(struct rs_follow *f)
{
    struct result_store *rs = f->rs;
    char owner[RS_KEY_MAX], ev[RS_KEY_MAX], final[RS_KEY_MAX];
    rs_job_key(owner, f->handle, "owner");
    rs_job_key(ev, f->handle, "ev");
    rs_job_key(final, f->handle, "final");
    if (!rs->up || !rs->cmd)
        return -1;
    int ok = redisAsyncCommand(rs->cmd, NULL, NULL, "MULTI");
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "GET %s", owner);
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "LRANGE %s 0 -1", ev);
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "GET %s", final);
    if (ok != REDIS_OK || redisAsyncCommand(rs->cmd, on_snapshot, f, "EXEC") != REDIS_OK)
        return -1;
    f->refs++;
    f->state = F_READING;
    return 0;
}

/* ---- messages and confirmations ------------------------------------------ */

static void queue_message(struct rs_follow *f, const char *text, size_t len)
{
    struct rs_msg *m = malloc(sizeof *m + len + 1);
    if (!m) {
        end_with(f, FINAL_BUSY);   /* a gap would break "every event once" */
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->text, text, len);
    m->text[len] = 0;
    if (f->q_tail)
        f->q_tail->next = m;
    else
        f->q_head = m;
    f->q_tail = m;
}

void rs_follow_message(struct rs_follow *f, const char *text, size_t len)
{
    if (f->pending_end)
        return;                    /* `defer` ends it */
    uint64_t seq = 0;
    enum rs_event_kind k = rs_event_kind(text, len, &seq);
    if (f->state == F_READING) {
        if (k != RS_EV_OTHER)
            queue_message(f, text, len);
    } else if (f->state == F_LIVE) {
        if (k == RS_EV_CHUNK)
            emit_chunk(f, seq, text, len);
        else if (k == RS_EV_FINAL)
            end_follow(f, text, len);
        else
            emit(f, text, len);
    }
}

void rs_follow_subscribed(struct rs_follow *f)
{
    if (!f->pending_end && f->state == F_WAIT_SUB && start_read(f) < 0)
        end_with(f, FINAL_BUSY);
}

/* ---- the owner's heartbeat ----------------------------------------------- */

static void on_final_check(redisAsyncContext *ac, void *r, void *arg)
{
    (void)ac;
    struct rs_follow *f = arg;
    redisReply *reply = r;
    f->checking = 0;
    if (reply && f->state == F_LIVE) {
        if (reply->type == REDIS_REPLY_STRING)
            end_follow(f, reply->str, reply->len);   /* it ended as its owner left */
        else
            end_with(f, FINAL_CRASHED);
    }
    unref(f);
}

static void on_owner_check(redisAsyncContext *ac, void *r, void *arg)
{
    struct rs_follow *f = arg;
    redisReply *reply = r;
    f->checking = 0;
    /* Gone: its final may have been written just before it went. */
    if (reply && f->state == F_LIVE && reply->type == REDIS_REPLY_INTEGER &&
        reply->integer == 0) {
        char final[RS_KEY_MAX];
        rs_job_key(final, f->handle, "final");
        if (redisAsyncCommand(ac, on_final_check, f, "GET %s", final) == REDIS_OK) {
            f->refs++;
            f->checking = 1;
        }
    }
    unref(f);
}

void rs_follow_tick(struct result_store *rs)
{
    for (struct rs_follow *f = rs->follows; f; f = f->next) {
        if (f->state != F_LIVE || f->checking || !f->owner[0])
            continue;
        if (redisAsyncCommand(rs->cmd, on_owner_check, f, "EXISTS wsjobd:inst:%s",
                              f->owner) != REDIS_OK)
            continue;
        f->refs++;
        f->checking = 1;
    }
}

/* ---- following ----------------------------------------------------------- */

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct result_store *rs = arg;
    for (;;) {
        struct rs_follow *f = rs->follows;
        while (f && !f->pending_end)
            f = f->next;
        if (!f)
            return;
        end_with(f, f->pending_end);
    }
}

void rs_follow_init(struct result_store *rs)
{
    event_assign(&rs->defer, rs->base, -1, 0, on_defer, rs);
}

struct rs_follow *result_store_follow(struct result_store *rs, const char *handle,
        uint64_t from_seq,
        void (*on_event)(void *arg, const char *json, size_t len, int final),
        void *arg)
{
    if (rs->closing)
        return NULL;
    struct rs_follow *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->rs = rs;
    f->refs = 1;
    f->next_seq = from_seq;
    f->on_event = on_event;
    f->arg = arg;
    f->state = F_WAIT_SUB;
    f->next = rs->follows;
    if (rs->follows)
        rs->follows->prev = f;
    rs->follows = f;
    rs->follows_active++;

    /* Never a callback from inside this call: a final owed now is given from
     * the loop, after the caller has the pointer. */
    if (strlen(handle) > RS_HANDLE_MAX)
        f->pending_end = FINAL_NOTFOUND;
    else if (!rs->up)
        f->pending_end = FINAL_BUSY;
    else {
        snprintf(f->handle, sizeof f->handle, "%s", handle);
        int ready = rs_chan_join(f);
        /* Already subscribed and confirmed: nothing can fall in between. */
        if (ready < 0 || (ready == 1 && start_read(f) < 0))
            f->pending_end = FINAL_BUSY;
    }
    if (f->pending_end)
        event_active(&rs->defer, EV_TIMEOUT, 1);
    return f;
}

void result_store_unfollow(struct rs_follow *f)
{
    /* Inside its own final callback a follow is ended but still allocated:
     * unfollow there does nothing. */
    if (f->state == F_ENDED)
        return;
    detach(f);
    unref(f);
}

/* ---- the link goes ------------------------------------------------------- */

static void end_all(struct result_store *rs, const char *final)
{
    while (rs->follows)
        end_with(rs->follows, final);
    /* The subscriptions went with the connection: forget them all, with
     * their confirmations still owed. */
    rs_chan_forget_all(rs);
}

void rs_follow_link_lost(struct result_store *rs)
{
    end_all(rs, FINAL_BUSY);
}

void rs_follow_close_all(struct result_store *rs)
{
    end_all(rs, FINAL_CLOSED);
}
