/* room_wait.c — connections waiting for job capacity: a route that got
 * `busy` from dispatch joins a FIFO, and when capacity comes back
 * (dispatch's room callback, on a later turn of the loop) the oldest
 * waiters are offered it first. */
#include "front/conn_accept.h"
#include "front/conn_parts.h"

/* Waiters handed capacity per call.  Each one may submit jobs and take the
 * capacity back, so a bounded batch keeps one turn of the loop short; the
 * rest go on the next turn.  (Walking every connection from inside the
 * release of a job record, as before, made one turn cost O(connections x
 * records freed): /healthz waited up to 1.7 s behind 32 waiting raw
 * connections on a full 8-slot ring.) */
#define ROOM_BATCH 16

void room_unlink(struct conn *c)
{
    struct front *f = c->f;
    if (!c->room_queued)
        return;
    if (c->room_prev)
        c->room_prev->room_next = c->room_next;
    else
        f->room_head = c->room_next;
    if (c->room_next)
        c->room_next->room_prev = c->room_prev;
    else
        f->room_tail = c->room_prev;
    c->room_prev = c->room_next = NULL;
    c->room_queued = 0;
}

void conn_wait_room(struct conn *c)
{
    struct front *f = c->f;
    if (c->room_queued)
        return;
    c->room_queued = 1;
    c->room_next = NULL;
    c->room_prev = f->room_tail;
    if (f->room_tail)
        f->room_tail->room_next = c;
    else
        f->room_head = c;
    f->room_tail = c;
}

/* Back to the head: the oldest waiter stays first in line. */
static void room_requeue_first(struct conn *c)
{
    struct front *f = c->f;
    c->room_queued = 1;
    c->room_prev = NULL;
    c->room_next = f->room_head;
    if (f->room_head)
        f->room_head->room_prev = c;
    else
        f->room_tail = c;
    f->room_head = c;
}

int conn_room(void *arg)
{
    struct front *f = arg;
    for (unsigned i = 0; i < ROOM_BATCH && f->room_head; i++) {
        struct conn *c = f->room_head;
        room_unlink(c);
        if (c->phase != PH_WS || !c->ops->room)
            continue;
        if (c->ops->room(c, c->ps) < 0) {
            /* No capacity after all: dispatch calls again when a record
             * is freed (this refusal asked it to). */
            room_requeue_first(c);
            return 0;
        }
    }
    return f->room_head != NULL;
}
