/* stats.h — /stats (JSON) and /metrics (Prometheus text), and the
 * event-loop lag sampler behind both.  Reading stats takes a snapshot of
 * counters the loop keeps and of worker descriptors in shared memory: it never
 * stops a worker and never blocks the loop. */
#ifndef WSJOBD_STATS_H
#define WSJOBD_STATS_H

#include "wire/json_out.h"

struct front;

/* Starts the lag sampler on the front's loop.  0 or -1. */
int stats_start(struct front *f);
void stats_stop(void);
/* A connection opened: sample the loop's lag again if the sampler slept. */
void stats_lag_wake(void);

void stats_json(struct front *f, struct jout *j);
void stats_metrics(struct front *f, struct jout *j);

#endif
