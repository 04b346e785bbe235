/* result_store_chan.c — the job channels this instance is subscribed to,
 * shared by every follow of one job.
 *
 * hiredis keeps one callback per channel, so two follows of one job cannot
 * each SUBSCRIBE: a channel record holds the job's follows and counts the
 * (UN)SUBSCRIBEs sent but not yet confirmed (Redis confirms them in order).
 * A follow starts its snapshot only when none is outstanding and the last one
 * sent was SUBSCRIBE: a confirmation still on its way from an earlier
 * SUBSCRIBE/UNSUBSCRIBE pair must not pass for this follow's, or an event
 * could fall between its snapshot and its subscription.  The record goes
 * when its last follow has left and the UNSUBSCRIBE is confirmed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/result_store_parts.h"

struct rs_chan {
    struct rs_entry e;             /* key: the handle */
    struct rs_follow *head;        /* follows on this channel */
    unsigned inflight;             /* (UN)SUBSCRIBEs sent, not yet confirmed */
    unsigned walk;                 /* the current walk's mark (next_unvisited) */
    uint8_t  subscribed;           /* the last one sent was SUBSCRIBE */
    uint8_t  walking;              /* being walked: rs_chan_leave must not free it */
};

static void forget(struct result_store *rs, struct rs_chan *c)
{
    rs_table_del(&rs->chans, &c->e);
    free(c);
}

int rs_chan_join(struct rs_follow *f)
{
    struct result_store *rs = f->rs;
    struct rs_chan *c = (struct rs_chan *)rs_table_find(&rs->chans, f->handle);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return -1;
        snprintf(c->e.key, sizeof c->e.key, "%s", f->handle);
        if (rs_table_add(&rs->chans, &c->e) < 0) {
            free(c);
            return -1;
        }
    }
    f->chan = c;
    f->chan_prev = NULL;
    f->chan_next = c->head;
    if (c->head)
        c->head->chan_prev = f;
    c->head = f;
    if (!c->subscribed) {
        char name[RS_KEY_MAX];
        rs_job_key(name, f->handle, "");
        if (rs_link_subscribe(rs, name, 1) < 0)
            return -1;             /* the caller ends f, and its leave frees c */
        c->subscribed = 1;
        c->inflight++;
    }
    return c->inflight == 0;
}

void rs_chan_leave(struct rs_follow *f)
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
    f->chan_prev = f->chan_next = NULL;
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
        forget(f->rs, c);
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
                forget(rs, c);
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
        if (confirm)
            rs_follow_subscribed(f);
        else
            rs_follow_message(f, text, len);
    }
    c->walking = 0;
    if (!c->head && !c->inflight && !c->subscribed)
        forget(rs, c);
}

static void forget_entry(struct rs_entry *e, void *arg)
{
    forget(arg, (struct rs_chan *)e);
}

void rs_chan_forget_all(struct result_store *rs)
{
    rs_table_each(&rs->chans, forget_entry, rs);
}
