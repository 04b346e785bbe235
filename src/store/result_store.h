/* result_store.h — detached jobs mirrored to Redis (--result-store), so that
 * `attach` on any instance sharing the store can follow a job another
 * instance runs, and `cancel` can reach it.
 *
 * Everything is asynchronous on the front's event loop (hiredis through its
 * libevent adapter, host names through evdns): no call here ever blocks, and
 * Redis going away only makes result_store_up() 0 until it comes back.
 *
 * KEYS (every one written with the store's TTL, renewed while the job lives)
 *   wsjobd:job:H:owner   the owning instance's id
 *   wsjobd:job:H:ev      list of chunk/progress event texts, oldest first,
 *                        trimmed to the newest ones whose texts add up to at
 *                        most keep_bytes (the newest one is always kept)
 *   wsjobd:job:H:final   the terminal event text
 *   wsjobd:inst:I        instance I's heartbeat: SET PX 3000 every second
 * CHANNELS
 *   wsjobd:job:H         each event and the final, as written
 *   wsjobd:cancel        handles whose cancel was asked on another instance
 *
 * An event text is the JSON object the front would send, without the "id"
 * member: {"event":"chunk","seq":3,"output":"..."}.  Whoever hands it to a
 * client inserts "id":ID, after the opening brace. */
#ifndef WSJOBD_RESULT_STORE_H
#define WSJOBD_RESULT_STORE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct result_store;                 /* opaque */
struct rs_follow;                    /* opaque: one attach following a remote job */

/* url: "redis://HOST[:PORT][/DB]" (HOST a name, an IPv4 address or [IPv6];
 * PORT 6379 when left out; DB 0); instance: this daemon's unique id (random
 * hex); ttl_s: the TTL of every key a job writes.  Returns NULL with a
 * message in err on a malformed URL or instance id (not on a down server:
 * connecting is asynchronous and retried with backoff, 100 ms doubling to
 * 5 s, forever). */
/* 0 when url is one result_store_new takes, else -1 with the reason in
 * err (the option's check: nothing is connected). */
int result_store_url_check(const char *url, char *err, size_t errlen);
struct result_store *result_store_new(struct event_base *base, const char *url,
                                      const char *instance, unsigned ttl_s,
                                      char *err, size_t errlen);
/* Follows still running get their final, {"event":"error","code":
 * "shutting_down",...}, from inside this call.  Not to be called from one of
 * the store's own callbacks. */
void result_store_free(struct result_store *rs);
/* 1 while writes sent to Redis are not all answered yet (or not all
 * written to the socket): at exit, the loop runs on a moment for them. */
int  result_store_pending(const struct result_store *rs);
/* 1 while connected and writable; detached submits answer `busy` while 0. */
int  result_store_up(const struct result_store *rs);
/* why it is down, for the log and /stats ("connecting", "connection refused",
 * "connect timed out", ...); "up" while up. */
const char *result_store_state(const struct result_store *rs);

struct rs_stats {
    const char *state;             /* result_store_state() */
    int         up;                /* result_store_up() */
    uint64_t    writes_dropped_total; /* owner writes not made: asked while
                                       * down, or lost with the connection */
    uint64_t    follows_active;    /* follows not yet ended */
    uint64_t    reconnects_total;  /* connection attempts after the first */
};
void result_store_stats(const struct result_store *rs, struct rs_stats *out);

/* The owner's writes; all asynchronous, never blocking, fire and forget.
 * While the store is down they are dropped and counted (a follower then
 * sees the chunks written meanwhile missing: seqs jump).  Between begin and
 * final the store remembers the handle (to trim its list and to renew its
 * keys' TTL, so a job that runs longer than the TTL without output does not
 * vanish); final forgets it.  seq is the chunk's sequence number (unused for
 * progress events, which carry none). */
void result_store_job_begin(struct result_store *rs, const char *handle);
void result_store_job_event(struct result_store *rs, const char *handle, uint64_t seq,
                            const char *json, size_t len, uint64_t keep_bytes);
void result_store_job_final(struct result_store *rs, const char *handle,
                            const char *json, size_t len);
/* cancel request for a job held by another instance (attach-side cancel). */
void result_store_job_cancel(struct result_store *rs, const char *handle);
/* the owner learns of remote cancels through this callback (set once).  Every
 * instance hears every cancel, its own included: one that holds no such job
 * ignores it. */
void result_store_on_cancel(struct result_store *rs,
                            void (*cb)(void *arg, const char *handle), void *arg);

/* Follow a job this instance does not hold.  Delivers every kept event with
 * seq >= from_seq once, in order, then live ones, then exactly one final
 * (final=1), after which the follow is finished (the callee frees it; do not
 * call unfollow after final).  on_event is only ever called from the event
 * loop, never from inside result_store_follow(); json is NUL-terminated and
 * valid during the call only.  It may call unfollow on its own follow.
 *
 * Progress events carry no seq: a follower is given the newest kept one and
 * the live ones after it, so it may miss one that raced its start.
 *
 * A handle unknown to the store ends with one final
 * {"event":"error","code":"not_found",...}; a job whose owner's heartbeat
 * stopped ends with one final {"event":"error","code":"worker_crashed",...};
 * a follow that loses the store (asked while it is down, or it goes away
 * during the follow) ends with {"event":"error","code":"busy","message":
 * "result store unavailable"}: the job may well still be running, so the
 * client's remedy is to attach again later from the next seq it needs.
 * Returns NULL only when out of memory. */
struct rs_follow *result_store_follow(struct result_store *rs, const char *handle,
        uint64_t from_seq,
        void (*on_event)(void *arg, const char *json, size_t len, int final),
        void *arg);
void result_store_unfollow(struct rs_follow *f);   /* the client went away first */

#endif
