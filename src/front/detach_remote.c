/* detach_remote.c — following, through the mirror, a detached job another
 * instance holds.
 *
 * The mirror's follow is wrapped so that a client may stop following from
 * anywhere, even from inside one of the follow's own events (a client too
 * slow for the stream): the wrapper is marked dead at once, so no event
 * reaches the client after that, and the mirror is told on the next turn
 * of the loop, outside its own callback. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "front/detach_parts.h"

struct detach_remote {
    struct detach_store *ds;
    struct detach_remote *prev, *next;   /* the store's list of them all */
    void *follow;                 /* the mirror's; NULL until its follow returned */
    detach_remote_fn *on_event;
    void *arg;
    uint8_t starting;             /* inside the mirror's follow call */
    uint8_t dead;                 /* unfollowed: its events go nowhere */
    uint8_t finished;             /* the mirror gave its final event: its follow is gone */
};

static void unlink_remote(struct detach_remote *r)
{
    struct detach_store *ds = r->ds;
    if (r->prev)
        r->prev->next = r->next;
    else
        ds->remotes = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
}

/* The mirror's events.  After the final one the mirror has freed its
 * follow; the wrapper goes too, unless a call still holds it. */
static void remote_event(void *arg, const char *json, size_t len, int final)
{
    struct detach_remote *r = arg;
    if (r->finished)
        return;
    r->finished = (uint8_t)final;
    if (!r->dead)
        r->on_event(r->arg, json, len, final);
    if (final && !r->starting && !r->dead)
        unlink_remote(r);
}

int detach_follow_remote(struct detach_store *ds, const char *handle, uint64_t from_seq,
                         detach_remote_fn *on_event, void *arg, struct detach_remote **out)
{
    if (!ds->has_mirror || !detach_handle_valid(handle, strlen(handle)))
        return -1;
    struct detach_remote *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->ds = ds;
    r->on_event = on_event;
    r->arg = arg;
    r->next = ds->remotes;
    if (r->next)
        r->next->prev = r;
    ds->remotes = r;
    *out = r;
    r->starting = 1;
    void *f = ds->m.follow(ds->m.arg, handle, from_seq, remote_event, r);
    r->starting = 0;
    if (r->finished || (!f && !r->dead)) {
        /* Ended within the call (its final came: the client has it), or it
         * could not start (the client has nothing, and is told so). */
        int started = r->finished;
        if (!r->dead || r->finished)
            unlink_remote(r);
        return started ? 0 : -1;
    }
    r->follow = f;
    return 0;
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct detach_store *ds = arg;
    struct detach_remote *r = ds->remotes;
    while (r) {
        struct detach_remote *next = r->next;
        if (r->dead && !r->starting) {
            if (!r->finished && r->follow)
                ds->m.unfollow(r->follow);
            unlink_remote(r);
        }
        r = next;
    }
}

void detach_unfollow_remote(struct detach_remote *r)
{
    if (!r || r->dead)
        return;
    r->dead = 1;
    if (r->finished && !r->starting) {
        unlink_remote(r);
        return;
    }
    event_active(&r->ds->reap, 0, 1);
}

void detach_remote_init(struct detach_store *ds)
{
    event_assign(&ds->reap, ds->base, -1, 0, reap_cb, ds);
}

/* At exit: the mirror may be gone already, so it is not told. */
void detach_remote_free(struct detach_store *ds)
{
    event_del(&ds->reap);
    while (ds->remotes) {
        struct detach_remote *r = ds->remotes;
        ds->remotes = r->next;
        free(r);
    }
}
