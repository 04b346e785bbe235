/* detach_parts.h — what the two files of the detached-job store share,
 * and nobody else:
 *
 *   detach.c         the store: handles, the handle map, admission, the
 *                    TTL of finished jobs, the mirror's hooks, stats
 *   detach_events.c  one job's events: the dispatch sink, the kept
 *                    chunks, and the client following it
 *
 * detach.h tells the rules. */
#ifndef WSJOBD_DETACH_PARTS_H
#define WSJOBD_DETACH_PARTS_H

#include <event2/event_struct.h>
#include <stddef.h>
#include <stdint.h>

#include "front/detach.h"
#include "wire/json_out.h"

#define DETACH_KEY_LEN   16          /* handle bytes: 128 random bits */
#define DETACH_RAND_POOL 256         /* getrandom(2) reads at most 256 bytes
                                        whole, never cut short by a signal */

/* One kept chunk event, its text without "id". */
struct detach_kept {
    struct detach_kept *next;
    uint64_t seq;
    size_t   len;
    char     json[];
};

struct detach_job {
    struct detach_store *ds;
    struct detach_job *hnext;       /* handle map chain */
    struct detach_job *fnext;       /* finished FIFO, oldest first */
    uint8_t  key[DETACH_KEY_LEN];
    char     hex[DETACH_HANDLE_LEN + 1];
    uint8_t  running;               /* 1 until the final answer came */
    uint8_t  final_owned;           /* final is malloc'd (else a static text) */
    uint8_t  progress_len;          /* 0: no progress yet */
    uint32_t job;                   /* dispatch's job number, while running */
    uint64_t next_seq;              /* the next chunk's seq */
    struct detach_kept *kept_head, *kept_tail;
    size_t   kept_bytes;
    int64_t  last_progress_ns;
    char     progress[96];          /* the latest progress event: two u64s fit */
    char    *final;                 /* the final event, once not running */
    size_t   final_len;
    int64_t  finished_ns;
    /* The one client following it, or none; its unacknowledged stream
     * bytes wait for detach_drained. */
    detach_follow_fn *follow;
    void    *farg;
    uint64_t unacked;
};

struct detach_store {
    struct event_base *base;
    struct dispatch   *d;
    struct detach_params prm;
    struct detach_mirror m;
    int      has_mirror;
    struct detach_job **bucket;     /* the handle map, nbucket chains */
    size_t   nbucket;               /* a power of two */
    struct detach_job *fifo_head, *fifo_tail;   /* finished, by finish time */
    struct event expire;            /* at the FIFO head's end of TTL */
    uint8_t  pool[DETACH_RAND_POOL];
    size_t   pool_left;             /* unused bytes at the pool's end */
    struct jout ev;                 /* one event text at a time */
    struct detach_stats st;
};

/* detach.c: the job has its final event now; its TTL starts. */
void detach_finished(struct detach_job *dj);

/* detach_events.c */
extern const struct job_sink detach_sink;
void detach_drop_kept(struct detach_job *dj);

#endif
