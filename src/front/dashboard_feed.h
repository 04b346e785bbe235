/* dashboard_feed.h — GET /stats/live: the dashboard's live feed, a
 * WebSocket on which the front pushes one snapshot a second.
 *
 * One snapshot is built per second, by one timer that runs only while a
 * viewer is connected, and the same bytes go to every viewer (broadcast.h).
 * A viewer that has not written out what it was sent is skipped rather than
 * buffered for.  Viewers are ordinary connections: they count toward
 * --max-connections and the memory budget. */
#ifndef WSJOBD_DASHBOARD_FEED_H
#define WSJOBD_DASHBOARD_FEED_H

#include "front/conn.h"

struct front;

extern const struct proto_ops feed_proto_ops;

int  feed_init(struct front *f);   /* 0, or -1: out of memory */
void feed_fini(void);

/* State for a new viewer, or NULL (out of memory). */
void *feed_viewer_new(struct conn *c);

struct feed_counts {
    uint64_t viewers;              /* connected now */
    uint64_t snapshots_total;      /* snapshots built since start */
    uint64_t skipped_total;        /* sends skipped: the viewer was not reading */
};
void feed_counts(struct feed_counts *out);

#endif
