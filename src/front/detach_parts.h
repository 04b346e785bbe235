/* detach_parts.h — what the files of the detached-job store share, and
 * nobody else:
 *
 *   detach.c          the store: admission, `accepted`, cancels, the TTL
 *                     of finished jobs, the mirror's hooks, stats
 *   detach_handles.c  handles, and the table they index
 *   detach_events.c   one job's events: the dispatch sink, the kept
 *                     chunks, and the client following it
 *   detach_remote.c   following a job another instance holds
 *
 * detach.h tells the rules. */
#ifndef WSJOBD_DETACH_PARTS_H
#define WSJOBD_DETACH_PARTS_H

#include <event2/event_struct.h>
#include <stddef.h>
#include <stdint.h>

#include "front/detach.h"
#include "wire/json_out.h"

#define DETACH_KEY_LEN   16          /* a handle's random bytes: 128 bits */
#define DETACH_RAND_POOL 4096        /* random bytes read at once: 256 handles */
/* A short job's final event (sha256: ~115 bytes) is kept in the record
 * itself: no allocation of its own.  Two u64s of progress fit too. */
#define DETACH_INLINE    160

/* One kept chunk event, its text without "id". */
struct detach_kept {
    struct detach_kept *next;
    uint64_t seq;
    size_t   len;
    char     json[];
};

struct detach_job {
    struct detach_store *ds;
    struct detach_job *fnext;       /* finished FIFO, oldest first */
    struct detach_job *aprev, *anext;   /* the store's accept_pending list */
    uint32_t slot;                  /* in the store's table */
    uint8_t  key[DETACH_KEY_LEN];   /* the handle's random part; its text is
                                       made where it is needed (detach_handle) */
    uint8_t  running;               /* 1 until the final answer came */
    uint8_t  final_owned;           /* final is malloc'd (else in text, or static) */
    uint8_t  accept_pending;        /* `accepted` not yet given to the submitter */
    uint8_t  progress_len;          /* while running: the latest progress
                                       event is in text; 0: none yet */
    uint32_t job;                   /* dispatch's job number, while running */
    uint64_t next_seq;              /* the next chunk's seq */
    struct detach_kept *kept_head, *kept_tail;
    size_t   kept_bytes;
    int64_t  last_progress_ns;
    char    *final;                 /* the final event, once not running */
    size_t   final_len;
    int64_t  finished_ns;
    /* The one client following it, or none; its unacknowledged stream
     * bytes wait for detach_drained. */
    detach_follow_fn *follow;
    void    *farg;
    uint64_t unacked;
    /* Last, and not cleared when the record is made: only what is
     * written in it is ever read. */
    char     text[DETACH_INLINE];   /* progress while running, then the final
                                       event when it fits */
};

/* The table of jobs by slot (detach_handles.c). */
struct detach_table {
    struct detach_job **job;        /* cap slots, NULL: free */
    uint32_t *free;                 /* free slots, a stack: last freed on top */
    uint32_t  nfree, cap;
};

struct detach_keys {
    uint8_t pool[DETACH_RAND_POOL];
    size_t  left;                   /* unused bytes at the pool's end */
};

struct detach_store {
    struct event_base *base;
    struct dispatch   *d;
    struct detach_params prm;
    struct detach_mirror m;
    int      has_mirror;
    struct detach_table tab;
    struct detach_job *fifo_head, *fifo_tail;   /* finished, by finish time */
    struct event expire;            /* at the FIFO head's end of TTL */
    struct detach_job *accept_head; /* accept_pending jobs */
    struct event accept_ev;         /* gives them their `accepted` */
    struct detach_remote *remotes;  /* every follow through the mirror */
    struct event reap;              /* tells the mirror of those unfollowed */
    struct detach_keys keys;
    /* Records of expired jobs, kept for the next ones (linked by fnext):
     * glibc's malloc of a record cost more than anything else a detached
     * submit does, once expiries had freed records in thousands.  Those
     * no job took for SPARE_DECAY_MS are freed (detach.c). */
    struct detach_job *spare;
    uint64_t nspare;
    uint64_t spare_low;             /* fewest spares since the decay timer was armed */
    struct event decay;
    struct jout ev;                 /* one event text at a time */
    struct detach_stats st;
    char     busy_why[192];         /* a busy's message naming the mirror's state */
};

/* detach.c: the job has its final event now; its TTL starts. */
void detach_finished(struct detach_job *dj);
/* detach.c: gives the follower its pending `accepted` now, if it has one;
 * before any other event it is given. */
void detach_give_accepted(struct detach_job *dj);
/* detach.c: the pending `accepted`'s text into text (JEV_ACCEPTED_MAX
 * bytes), for the caller to give with the next event; its length, 0 when
 * none is owed.  It is not owed any more. */
size_t detach_take_accepted(struct detach_job *dj, char *text);
/* detach.c: the follower left without it. */
void detach_drop_accepted(struct detach_job *dj);

/* detach_handles.c */
int  detach_parse_handle(const char *h, size_t len, uint32_t *slot, uint8_t *key); /* 0, -1 */
void detach_format_handle(uint32_t slot, const uint8_t *key, char *hex); /* LEN + 1 bytes */
int  detach_random_key(struct detach_keys *k, uint8_t *key);   /* 0 or -1 */
void dtab_free(struct detach_table *t);
int  dtab_insert(struct detach_table *t, struct detach_job *dj);   /* sets dj->slot; 0 or -1 */
void dtab_remove(struct detach_table *t, struct detach_job *dj);
struct detach_job *dtab_find(const struct detach_table *t, uint32_t slot, const uint8_t *key);

/* detach_remote.c */
void detach_remote_init(struct detach_store *ds);
void detach_remote_free(struct detach_store *ds);

/* detach_events.c */
extern const struct job_sink detach_sink;
void detach_drop_kept(struct detach_job *dj);

#endif
