/* front.h — the front process: one event loop that owns every client
 * connection and never runs job code. */
#ifndef WSJOBD_FRONT_H
#define WSJOBD_FRONT_H

#include <event2/event_struct.h>
#include <stdint.h>

#include "base/config.h"
#include "pipeline/dispatch.h"
#include "pipeline/pipeline.h"
#include "wire/json_out.h"

struct event_base;
struct supervisor;
struct conn;

struct front_counters {
    uint64_t open, accepted_total, rejected_total, tls_open;
};

struct front {
    struct event_base *base;
    struct config     *cfg;        /* current config; replaced on reload */
    struct pipeline   *p;
    struct dispatch   *d;
    struct supervisor *sup;
    struct front_counters conns;
    struct jout        scratch;    /* one event at a time is formatted here */
    int                shutting_down;
    int64_t            started_ns;
    struct conn       *all;        /* every open connection (list head) */
    /* Connections waiting for job capacity, oldest first (conn.c). */
    struct conn       *room_head, *room_tail;
    /* Connections closed this turn, freed on the next (conn.c). */
    struct conn       *dead;
    struct event       reap;
};

#endif
