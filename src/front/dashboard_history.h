/* dashboard_history.h — the front's last five minutes, one sample a
 * second (jobs done and failed, busy answers, queue depths), kept in a
 * small ring so a dashboard that connects can draw its charts at once. */
#ifndef WSJOBD_DASHBOARD_HISTORY_H
#define WSJOBD_DASHBOARD_HISTORY_H

#include <stdint.h>

#include "wire/json_out.h"

#define HISTORY_SAMPLES 300

struct front;

/* Called on every wake-up of the loop-lag timer (stats.c): takes a sample
 * when a second has passed since the last, so the history costs no wake-up
 * of its own. */
void history_tick(struct front *f, int64_t now_ns);

/* The loop-lag timer slept from the last sample to now_ns, which it does
 * only while nothing can change (no connection, no job in flight): records
 * the quiet seconds in between as they were, zero everywhere. */
void history_fill_quiet(struct front *f, int64_t now_ns);

/* Samples taken since start; a new value means a new sample. */
uint64_t history_seq(void);

/* The field names of a sample, as a JSON array. */
void history_fields_json(struct jout *j);
/* Every sample kept, oldest first, each an array of numbers. */
void history_json(struct jout *j);
/* The newest sample, or null before the first. */
void history_last_json(struct jout *j);

#endif
