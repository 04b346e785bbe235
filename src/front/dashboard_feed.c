/* dashboard_feed.c — see dashboard_feed.h.
 *
 * Messages, one JSON object each:
 *   {"kind":"history","fields":[...],"samples":[[...],...]}
 *       once, on connect: the last HISTORY_SAMPLES seconds
 *   {"kind":"tick","sample":[...],"stats":{the /stats object}}
 *       every second; sample is the newest history sample (its "t" tells
 *       whether the viewer has it already)
 *
 * Cost per second with V viewers: one /stats build, one copy into a shared
 * frame, and V evbuffer references.  A history message is built at most
 * once per sample, however many viewers connect. */
#include "front/dashboard_feed.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/timeval.h"
#include "front/broadcast.h"
#include "front/dashboard_history.h"
#include "front/front.h"
#include "front/stats.h"
#include "wire/ws_frame.h"

#define TICK_MS 1000
/* Output a viewer may still have unwritten and be sent a new snapshot:
 * a few snapshots of a daemon with a hundred workers.  Past it the viewer
 * is skipped that second, so what the front holds for one that does not
 * read stays under this plus one snapshot. */
#define BACKLOG_MAX (64u << 10)
/* The kernel's share (Linux doubles it).  Left alone it grows to
 * megabytes, and a viewer that lags would see figures minutes old rather
 * than skip to the newest. */
#define SNDBUF_BYTES (32 << 10)

struct viewer {
    struct conn *c;
    struct viewer *prev, *next;    /* feed.all, once opened */
    int listed;
};

static struct {
    struct front *f;
    struct event *tick;            /* pending exactly while there are viewers */
    struct viewer *all;
    unsigned n;
    struct broadcast *snap;        /* the newest snapshot, while there are viewers */
    struct broadcast *hist;        /* the history message of sample hist_seq */
    uint64_t hist_seq;
    struct jout buf;               /* where messages are built */
    uint64_t snapshots_total, skipped_total;
} feed;

/* ---- building ------------------------------------------------------------ */

static struct broadcast *build_snapshot(void)
{
    struct jout *j = &feed.buf;
    jout_reset(j);
    jout_lit(j, "{\"kind\":\"tick\",\"sample\":");
    history_last_json(j);
    jout_lit(j, ",\"stats\":");
    stats_json(feed.f, j);
    jout_lit(j, "}");
    feed.snapshots_total++;
    return j->oom ? NULL : broadcast_new(WS_OP_TEXT, j->p, j->len);
}

static struct broadcast *history_message(void)
{
    if (feed.hist && feed.hist_seq == history_seq())
        return feed.hist;
    broadcast_put(feed.hist);
    struct jout *j = &feed.buf;
    jout_reset(j);
    jout_lit(j, "{\"kind\":\"history\",\"fields\":");
    history_fields_json(j);
    jout_lit(j, ",\"samples\":");
    history_json(j);
    jout_lit(j, "}");
    feed.hist = j->oom ? NULL : broadcast_new(WS_OP_TEXT, j->p, j->len);
    feed.hist_seq = history_seq();
    return feed.hist;
}

/* ---- sending ------------------------------------------------------------- */

static void send_to(struct viewer *v, struct broadcast *b)
{
    if (!b)
        return;
    if (conn_out_pending(v->c) > BACKLOG_MAX) {
        feed.skipped_total++;
        return;
    }
    broadcast_send(b, v->c);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct broadcast *b = build_snapshot();
    for (struct viewer *v = feed.all; v; v = v->next)
        send_to(v, b);
    broadcast_put(feed.snap);
    feed.snap = b;
}

int feed_init(struct front *f)
{
    feed.f = f;
    feed.tick = event_new(f->base, -1, EV_PERSIST, tick_cb, NULL);
    return feed.tick ? 0 : -1;
}

static void drop_cached(void)
{
    broadcast_put(feed.snap);
    broadcast_put(feed.hist);
    feed.snap = feed.hist = NULL;
}

void feed_fini(void)
{
    if (feed.tick)
        event_free(feed.tick);
    feed.tick = NULL;
    drop_cached();
    jout_free(&feed.buf);
}

/* ---- the route ----------------------------------------------------------- */

void *feed_viewer_new(struct conn *c)
{
    struct viewer *v = calloc(1, sizeof *v);
    if (v)
        v->c = c;
    return v;
}

/* The first viewer starts the timer, with a snapshot of its own so the
 * page fills at once; later ones get the newest snapshot as it is. */
static void on_opened(struct conn *c, void *state)
{
    struct viewer *v = state;
    conn_limit_send_buffer(c, SNDBUF_BYTES);
    v->listed = 1;
    v->next = feed.all;
    if (feed.all)
        feed.all->prev = v;
    feed.all = v;
    if (feed.n++ == 0) {
        struct timeval tv = tv_from_ms(TICK_MS);
        event_add(feed.tick, &tv);
        feed.snap = build_snapshot();
    }
    send_to(v, history_message());
    send_to(v, feed.snap);
}

static void on_message(struct conn *c, void *state, int opcode, uint8_t *data, size_t len)
{
    /* Viewers have nothing to say; what they send is read and dropped. */
    (void)c;
    (void)state;
    (void)opcode;
    (void)data;
    (void)len;
}

static void on_closed(struct conn *c, void *state)
{
    struct viewer *v = state;
    (void)c;
    if (v->listed) {
        if (v->prev)
            v->prev->next = v->next;
        else
            feed.all = v->next;
        if (v->next)
            v->next->prev = v->prev;
        if (--feed.n == 0) {
            event_del(feed.tick);
            drop_cached();
        }
    }
    free(v);
}

const struct proto_ops feed_proto_ops = {
    .opened = on_opened, .message = on_message, .closed = on_closed,
};

/* ---- its own figures ----------------------------------------------------- */

void feed_counts(struct feed_counts *out)
{
    *out = (struct feed_counts){ .viewers = feed.n, .snapshots_total = feed.snapshots_total,
                                 .skipped_total = feed.skipped_total };
}
