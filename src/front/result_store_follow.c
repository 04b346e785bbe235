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
 * CHANNELS.  Several follows of one job share one subscription: a channel
 * record counts the (UN)SUBSCRIBEs sent but not yet confirmed, and a follow
 * that joins starts its snapshot only when none is outstanding and the last
 * one sent was SUBSCRIBE — a confirmation still on its way from an earlier
 * SUBSCRIBE/UNSUBSCRIBE pair must not pass for this follow's.
 *
 * LIFETIME.  A follow holds a reference for its caller (dropped at the final
 * or at unfollow), one per command whose reply is awaited (hiredis answers
 * every one, with NULL when the link goes), and one while its callback runs;
 * it is freed at zero. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/result_store_event.h"
#include "front/result_store_parts.h"

enum follow_state {
    F_WAIT_SUB,                    /* channel confirmation awaited */
    F_READING,                     /* snapshot awaited; messages queued */
    F_LIVE,                        /* delivering messages as they come */
    F_ENDED                        /* final delivered or unfollowed */
};

struct rs_msg {                    /* a message queued while F_READING */
    struct rs_msg *next;
    size_t len;
    char   text[];
};

struct rs_chan {
    struct rs_entry e;             /* key: the handle */
    struct rs_follow *head;        /* follows on this channel */
    unsigned inflight;             /* (UN)SUBSCRIBEs sent, not yet confirmed */
    unsigned walk;                 /* the current walk's mark (next_unvisited) */
    uint8_t  subscribed;           /* the last one sent was SUBSCRIBE */
    uint8_t  walking;              /* being walked: chan_leave must not free it */
};

struct rs_follow {
    struct result_store *rs;
    struct rs_follow *prev, *next;           /* rs->follows, until ended */
    struct rs_follow *chan_prev, *chan_next; /* chan->head, until ended */
    struct rs_chan *chan;
    enum follow_state state;
    unsigned  refs;
    uint8_t   checking;            /* an owner check is awaited */
    unsigned  visit;               /* the mark of the last walk that saw it */
    const char *pending_end;       /* final to give from `defer`, or NULL */
    uint64_t  next_seq;            /* lowest chunk seq not yet delivered */
    struct rs_msg *q_head, *q_tail;
    void    (*on_event)(void *arg, const char *json, size_t len, int final);
    void     *arg;
    char      handle[RS_HANDLE_MAX + 1];
    char      owner[RS_INSTANCE_MAX + 1];
};

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

/* ---- channels ------------------------------------------------------------ */

static void chan_forget(struct result_store *rs, struct rs_chan *c)
{
    rs_table_del(&rs->chans, &c->e);
    free(c);
}

static void chan_leave(struct rs_follow *f)
{
    struct rs_chan *c = f->chan;
    if (!c)
        return;
    if (f->chan_prev)
        f->chan_prev->chan_next = f->chan_next;
    else
        c->head = f->chan_next;
    if (f->chan_next)
        f->chan_next->chan_prev = f->chan_prev;
    f->chan = NULL;
    if (c->head)
        return;
    if (c->subscribed) {
        char name[RS_KEY_MAX];
        rs_job_key(name, c->e.key, "");
        c->subscribed = 0;
        if (rs_link_subscribe(f->rs, name, 0) == 0)
            c->inflight++;
    }
    if (c->inflight == 0 && !c->walking)
        chan_forget(f->rs, c);
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
    chan_leave(f);
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

static void on_message(struct rs_follow *f, const char *text, size_t len)
{
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

/* The next follow of the channel this walk has not visited.  Callbacks may
 * end any follow, or add one, while the channel is walked, so the walk
 * starts again from the head each time rather than keep a pointer that may
 * be freed; a channel has few follows (the clients of one instance attached
 * to one job). */
static struct rs_follow *next_unvisited(const struct rs_chan *c)
{
    for (struct rs_follow *f = c->head; f; f = f->chan_next)
        if (f->visit != c->walk)
            return f;
    return NULL;
}

void rs_follow_channel(struct result_store *rs, const char *kind, const char *handle,
                       const char *text, size_t len)
{
    struct rs_chan *c = (struct rs_chan *)rs_table_find(&rs->chans, handle);
    if (!c)
        return;
    int confirm = strcmp(kind, "subscribe") == 0 || strcmp(kind, "unsubscribe") == 0;
    if (confirm) {
        if (c->inflight == 0 || --c->inflight > 0)
            return;
        if (!c->subscribed) {
            if (!c->head)
                chan_forget(rs, c);
            return;
        }
    } else if (!text) {
        return;
    }
    c->walking = 1;
    c->walk++;
    struct rs_follow *f;
    while ((f = next_unvisited(c))) {
        f->visit = c->walk;
        if (f->pending_end)
            continue;              /* `defer` ends it */
        if (!confirm)
            on_message(f, text, len);
        else if (f->state == F_WAIT_SUB && start_read(f) < 0)
            end_with(f, FINAL_BUSY);
    }
    c->walking = 0;
    if (!c->head && !c->inflight && !c->subscribed)
        chan_forget(rs, c);
}

/* ---- the owner's heartbeat ----------------------------------------------- */

static void on_final_check(redisAsyncContext *ac, void *r, void *arg)
{
    (void)ac;
    struct rs_follow *f = arg;
    redisReply *reply = r;
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
    if (reply && f->state == F_LIVE && reply->type == REDIS_REPLY_INTEGER &&
        reply->integer == 0) {
        char final[RS_KEY_MAX];
        rs_job_key(final, f->handle, "final");
        if (redisAsyncCommand(ac, on_final_check, f, "GET %s", final) == REDIS_OK)
            f->refs++;
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

static void join(struct rs_follow *f)
{
    struct result_store *rs = f->rs;
    struct rs_chan *c = (struct rs_chan *)rs_table_find(&rs->chans, f->handle);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) {
            f->pending_end = FINAL_BUSY;
            return;
        }
        snprintf(c->e.key, sizeof c->e.key, "%s", f->handle);
        if (rs_table_add(&rs->chans, &c->e) < 0) {
            free(c);
            f->pending_end = FINAL_BUSY;
            return;
        }
    }
    f->chan = c;
    f->chan_next = c->head;
    if (c->head)
        c->head->chan_prev = f;
    c->head = f;
    if (!c->subscribed) {
        char name[RS_KEY_MAX];
        rs_job_key(name, f->handle, "");
        if (rs_link_subscribe(rs, name, 1) < 0) {
            f->pending_end = FINAL_BUSY;
            return;
        }
        c->subscribed = 1;
        c->inflight++;
    }
    /* Already subscribed and confirmed: nothing can fall in between. */
    if (c->inflight == 0 && start_read(f) < 0)
        f->pending_end = FINAL_BUSY;
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
        join(f);
    }
    if (f->pending_end)
        event_active(&rs->defer, EV_TIMEOUT, 1);
    return f;
}

void result_store_unfollow(struct rs_follow *f)
{
    /* Only from inside its own callback can a caller still hold an ended
     * follow (the reference the walk holds keeps it allocated). */
    if (f->state == F_ENDED)
        return;
    detach(f);
    unref(f);
}

/* ---- the link goes ------------------------------------------------------- */

static void forget_chan(struct rs_entry *e, void *arg)
{
    chan_forget(arg, (struct rs_chan *)e);
}

static void end_all(struct result_store *rs, const char *final)
{
    while (rs->follows)
        end_with(rs->follows, final);
    /* The subscriptions went with the connection: forget them all, with
     * their confirmations still owed. */
    rs_table_each(&rs->chans, forget_chan, rs);
}

void rs_follow_link_lost(struct result_store *rs)
{
    end_all(rs, FINAL_BUSY);
}

void rs_follow_close_all(struct result_store *rs)
{
    end_all(rs, FINAL_CLOSED);
}
