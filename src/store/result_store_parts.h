/* result_store_parts.h — what the result store's files share: the store
 * itself, the connection to Redis (result_store_link.c), the owner's side
 * (result_store.c), the follows (result_store_follow.c) and their
 * channels (result_store_chan.c), the tables of handles
 * (result_store_table.c) and the URL (result_store_url.c).
 * Nothing outside those files includes it. */
#ifndef WSJOBD_RESULT_STORE_PARTS_H
#define WSJOBD_RESULT_STORE_PARTS_H

#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <stdint.h>

#include "store/result_store.h"

struct evdns_base;
struct evdns_getaddrinfo_request;
struct rs_resolve;

/* Longest handle the store takes: handles are 32 hex digits today; one from
 * a client (attach) that is longer cannot name a job and is not_found. */
#define RS_HANDLE_MAX   128
#define RS_INSTANCE_MAX 64
#define RS_KEY_MAX      (RS_HANDLE_MAX + 32)

#define RS_HEARTBEAT_MS    3000   /* an instance is alive while its key lives */
#define RS_TICK_MS         1000   /* heartbeat, follows' owner checks, watchdog */
#define RS_CONNECT_TIMEOUT_MS 3000 /* resolve + connect + first replies */
#define RS_REPLY_TIMEOUT_MS   3000 /* a heartbeat unanswered this long: link dead */
#define RS_BACKOFF_MIN_MS   100
#define RS_BACKOFF_MAX_MS  5000

/* ---- tables of handles (result_store_table.c) --------------------------- */

/* The first member of a record kept by handle (an owned job, a channel). */
struct rs_entry {
    struct rs_entry *next;         /* bucket chain */
    uint32_t         hash;
    char             key[RS_HANDLE_MAX + 1];
};

struct rs_table {
    struct rs_entry **b;           /* nb buckets, a power of two; NULL while empty */
    size_t nb, n;
};

/* Handles longer than RS_HANDLE_MAX are never in a table. */
struct rs_entry *rs_table_find(const struct rs_table *t, const char *key);
/* e->key is set by the caller.  0, or -1 when out of memory (not added). */
int  rs_table_add(struct rs_table *t, struct rs_entry *e);
void rs_table_del(struct rs_table *t, struct rs_entry *e);
/* Visits every entry; fn may delete (and free) the entry it is given. */
void rs_table_each(struct rs_table *t, void (*fn)(struct rs_entry *e, void *arg), void *arg);
void rs_table_release(struct rs_table *t);   /* the buckets; entries are the caller's */

/* ---- the store ----------------------------------------------------------- */

struct result_store {
    struct event_base *base;
    char      url[256];            /* as given, for the log */
    char      host[256];           /* a name, or an address without brackets */
    int       port, db;
    char      instance[RS_INSTANCE_MAX + 1];
    unsigned  ttl_s;
    int       closing;             /* inside result_store_free */

    /* The link: two connections made, lost and remade together.  `cmd`
     * carries every command; `sub` only (UN)SUBSCRIBE, since a subscribed
     * connection takes no other.  Both NULL while down and between tries. */
    redisAsyncContext *cmd, *sub;
    uint8_t   cmd_ready;           /* PING (after SELECT) answered */
    uint8_t   sub_ready;           /* wsjobd:cancel subscribed */
    uint8_t   up;                  /* both ready: result_store_up() */
    uint8_t   hb_inflight;         /* a heartbeat's reply is awaited */
    int64_t   attempt_ms;          /* when the current try began */
    int64_t   hb_sent_ms;
    unsigned  backoff_ms;          /* wait before the next try */
    unsigned  ticks;
    const char *state;             /* points into state_buf */
    char      state_buf[160];
    struct event retry;            /* next try */
    struct event tick;             /* every RS_TICK_MS while a link exists */
    struct evdns_base *dns;        /* only for a HOST that is a name */
    struct rs_resolve *resolve;    /* the lookup under way, if any */
    struct evdns_getaddrinfo_request *dns_req;  /* its request, once known */

    /* The owner's side. */
    struct rs_table owned;         /* handle -> struct rs_owned, begin..final */
    void    (*on_cancel)(void *arg, const char *handle);
    void     *cancel_arg;

    /* The follower's side. */
    struct rs_table chans;         /* handle -> struct rs_chan */
    struct rs_follow *follows;     /* every follow not yet ended */
    struct event defer;            /* ends follows asked for while down */
    uint64_t  follows_active;

    uint64_t  writes_dropped, reconnects;
};

int64_t rs_now_ms(void);
/* Writes "wsjobd:job:HANDLE:SUFFIX" (SUFFIX "" gives the channel name). */
void rs_job_key(char *buf, const char *handle, const char *suffix);

/* result_store_url.c: sets url, host, port and db.  0, or -1 with a
 * message in err. */
int  rs_url_parse(struct result_store *rs, const char *url, char *err, size_t errlen);
int  rs_host_is_numeric(const char *host);   /* an address: nothing to resolve */

/* result_store_link.c */
/* Schedules the first try.  0, or -1 with a message in err. */
int  rs_link_init(struct result_store *rs, char *err, size_t errlen);
void rs_link_close(struct result_store *rs);  /* frees both connections for good */
/* (UN)SUBSCRIBE channel on `sub`; its confirmation and messages come to
 * rs_follow_channel().  0, or -1 when the link is not up. */
int  rs_link_subscribe(struct result_store *rs, const char *channel, int on);

/* result_store.c: called by the link */
void rs_owner_tick(struct result_store *rs);
void rs_owner_up(struct result_store *rs);
void rs_on_cancel_message(struct result_store *rs, const char *handle);

/* ---- follows (result_store_follow.c) and their channels
 * (result_store_chan.c) ------------------------------------------------- */

enum follow_state {
    F_WAIT_SUB,                    /* channel confirmation awaited */
    F_READING,                     /* snapshot awaited; messages queued */
    F_LIVE,                        /* delivering messages as they come */
    F_ENDED                        /* final delivered or unfollowed */
};

struct rs_msg {                    /* a message queued while F_READING */
    struct rs_msg *next;
    size_t len;
    char   text[];
};

struct rs_chan;

struct rs_follow {
    struct result_store *rs;
    struct rs_follow *prev, *next;           /* rs->follows, until ended */
    struct rs_follow *chan_prev, *chan_next; /* its channel's, until ended */
    struct rs_chan *chan;
    unsigned  visit;               /* the mark of the channel's last walk */
    enum follow_state state;
    unsigned  refs;                /* see result_store_follow.c, LIFETIME */
    uint8_t   checking;            /* an owner check is awaited */
    const char *pending_end;       /* final to give from `defer`, or NULL */
    uint64_t  next_seq;            /* lowest chunk seq not yet delivered */
    struct rs_msg *q_head, *q_tail;
    void    (*on_event)(void *arg, const char *json, size_t len, int final);
    void     *arg;
    char      handle[RS_HANDLE_MAX + 1];
    char      owner[RS_INSTANCE_MAX + 1];
};

/* result_store_follow.c */
void rs_follow_init(struct result_store *rs);
void rs_follow_tick(struct result_store *rs);
/* The link was lost: every follow ends (busy), every channel is forgotten. */
void rs_follow_link_lost(struct result_store *rs);
/* result_store_free: every follow ends (shutting_down). */
void rs_follow_close_all(struct result_store *rs);
/* From a channel walk: its subscription is confirmed; a message on it. */
void rs_follow_subscribed(struct rs_follow *f);
void rs_follow_message(struct rs_follow *f, const char *text, size_t len);

/* result_store_chan.c */
/* Puts f on its job's channel, subscribing if need be.  1 when the
 * subscription is already confirmed (f may read now), 0 when f must wait
 * for rs_follow_subscribed(), -1 when the link cannot take it. */
int  rs_chan_join(struct rs_follow *f);
void rs_chan_leave(struct rs_follow *f);
/* A (un)subscribe confirmation or a message on a job channel. */
void rs_follow_channel(struct result_store *rs, const char *kind, const char *handle,
                       const char *text, size_t len);
void rs_chan_forget_all(struct result_store *rs);   /* the link went */

#endif
