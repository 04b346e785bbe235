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
struct agent_check;
struct detach_store;
struct detach_redis;

struct front_counters {
    uint64_t open, accepted_total, rejected_total, tls_open;
};

/* The one budget of bytes held for clients (--memory-budget), kept by
 * conn.c: every connection's input and output buffers, its frame
 * reassembly and what its route holds for it. */
struct front_memory {
    uint64_t used;                 /* bytes held now, in all */
    uint64_t used_max;             /* the most ever held at once */
    uint64_t busy_total;           /* submits answered busy because of it */
    uint64_t paused_total;         /* times a connection stopped being read */
    unsigned paused;               /* connections not read because of it now */
    unsigned holders;              /* connections holding any byte */
    uint8_t  over;                 /* past the budget, until under the low mark */
    uint8_t  resume_pending;       /* a resume of every connection is queued */
    uint8_t  sweep_pending;        /* a look for clients gone is queued */
    int64_t  logged_ns;            /* last time reaching it was logged */
};

struct front {
    struct event_base *base;
    struct config     *cfg;        /* current config; replaced on reload */
    struct pipeline   *p;
    struct dispatch   *d;
    struct detach_store *ds;       /* detached jobs (front/detach.h) */
    struct detach_redis *redis;    /* their mirror in Redis; NULL without
                                      --result-store */
    struct supervisor *sup;
    struct agent_check *agent;     /* NULL without --agent-listen */
    struct front_counters conns;
    uint64_t           busy_total; /* submits answered busy, for any reason */
    struct jout        scratch;    /* one event at a time is formatted here */
    int                shutting_down;
    int64_t            started_ns;
    struct conn       *all;        /* every open connection (list head) */
    /* Connections waiting for job capacity, oldest first (conn.c). */
    struct conn       *room_head, *room_tail;
    /* Plain connections with output added since their last write, oldest
     * first: written before the loop sleeps (conn_flush.c). */
    struct conn       *flush_head, *flush_tail;
    unsigned           flush_count;
    /* Connections closed this turn, freed on the next (conn.c). */
    struct conn       *dead;
    struct event       reap;
    struct front_memory mem;
};

#endif
