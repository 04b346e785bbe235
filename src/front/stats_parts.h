/* stats_parts.h — what stats.c shares with stats_store.c: the JSON and
 * Prometheus formatting helpers.  Nothing else includes it. */
#ifndef WSJOBD_STATS_PARTS_H
#define WSJOBD_STATS_PARTS_H

#include <stdint.h>

#include "wire/json_out.h"

struct detach_redis;

/* "key":v, and the comma when comma is set. */
void stats_kv(struct jout *j, const char *key, uint64_t v, int comma);
/* A metric with no labels: its HELP, TYPE and value. */
void stats_one(struct jout *j, const char *name, const char *type, const char *help, uint64_t v);

/* stats_store.c: "result_store":{...}, (null without --result-store). */
void stats_store_json(struct jout *j, const struct detach_redis *dr);
/* stats_store.c: nothing without --result-store. */
void stats_store_metrics(struct jout *j, const struct detach_redis *dr);

#endif
