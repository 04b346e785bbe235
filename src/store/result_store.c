/* result_store.c — the result store's life and the owner's side: what an
 * instance writes to Redis for the detached jobs it runs, and the cancels
 * other instances send it.
 *
 * Every write is one MULTI/EXEC, so a follower's snapshot (itself one
 * MULTI/EXEC, result_store_follow.c) sees an event in the list exactly when
 * its PUBLISH has happened, and a link lost mid-write leaves nothing half
 * written.  Each also re-sets the owner key and renews the TTL of the keys it
 * touches: a job whose begin was dropped while the store was down, or whose
 * keys a restarted Redis lost, reappears with its next write.
 *
 * The event list is trimmed by bytes, not by count: the store keeps, per
 * owned job, the length of every event still in the list, and after each
 * RPUSH keeps only the newest ones whose texts add up to at most keep_bytes
 * (LTRIM -k -1; the newest is always kept).  Trimming to "the newest k"
 * rather than "drop the oldest n" stays right when the list in Redis is
 * shorter than the store thinks (a write lost with the link, a restart). */
#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "store/result_store_parts.h"

/* A job this instance owns, from begin (or its first event) to its final. */
struct rs_owned {
    struct rs_entry e;             /* key: the handle */
    uint32_t *lens;                /* ring of the kept events' lengths, oldest first */
    uint32_t  cap, head, count;
    uint64_t  bytes;               /* sum of lens */
};

void rs_job_key(char *buf, const char *handle, const char *suffix)
{
    snprintf(buf, RS_KEY_MAX, "wsjobd:job:%s%s%s", handle, *suffix ? ":" : "", suffix);
}

static unsigned long long ttl_ms(const struct result_store *rs)
{
    return (unsigned long long)rs->ttl_s * 1000;
}

/* ---- life ---------------------------------------------------------------- */

static int instance_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RS_INSTANCE_MAX)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return 0;
    return 1;
}

struct result_store *result_store_new(struct event_base *base, const char *url,
                                      const char *instance, unsigned ttl_s,
                                      char *err, size_t errlen)
{
    if (!instance_ok(instance)) {
        snprintf(err, errlen, "result store: bad instance id '%.80s' (1-%d letters, "
                 "digits, - or _)", instance, RS_INSTANCE_MAX);
        return NULL;
    }
    if (ttl_s == 0) {
        snprintf(err, errlen, "result store: the TTL must be at least 1 s");
        return NULL;
    }
    struct result_store *rs = calloc(1, sizeof *rs);
    if (!rs) {
        snprintf(err, errlen, "result store: out of memory");
        return NULL;
    }
    rs->base = base;
    rs->ttl_s = ttl_s;
    snprintf(rs->instance, sizeof rs->instance, "%s", instance);
    if (rs_url_parse(rs, url, err, errlen) < 0 || rs_link_init(rs, err, errlen) < 0) {
        free(rs);
        return NULL;
    }
    rs_follow_init(rs);
    return rs;
}

static void free_owned(struct rs_entry *e, void *arg)
{
    (void)arg;
    struct rs_owned *o = (struct rs_owned *)e;
    free(o->lens);
    free(o);
}

void result_store_free(struct result_store *rs)
{
    if (!rs)
        return;
    rs->closing = 1;
    rs_follow_close_all(rs);
    rs_link_close(rs);             /* replies still pending come back NULL now */
    rs_table_each(&rs->owned, free_owned, NULL);
    rs_table_release(&rs->owned);
    rs_table_release(&rs->chans);
    event_del(&rs->defer);
    free(rs);
}

/* hiredis queues a callback for every command, even one with none, and
 * keeps what the socket has not taken in obuf (an sds: NUL-terminated). */
int result_store_pending(const struct result_store *rs)
{
    const redisAsyncContext *c = rs->cmd;
    return c && (c->replies.head || (c->c.obuf && c->c.obuf[0]));
}

int result_store_up(const struct result_store *rs)
{
    return rs->up;
}

const char *result_store_state(const struct result_store *rs)
{
    return rs->state;
}

void result_store_stats(const struct result_store *rs, struct rs_stats *out)
{
    out->state = rs->state;
    out->up = rs->up;
    out->writes_dropped_total = rs->writes_dropped;
    out->follows_active = rs->follows_active;
    out->reconnects_total = rs->reconnects;
}

/* ---- owned jobs ---------------------------------------------------------- */

static struct rs_owned *owned_get(struct result_store *rs, const char *handle)
{
    struct rs_owned *o = (struct rs_owned *)rs_table_find(&rs->owned, handle);
    if (o || strlen(handle) > RS_HANDLE_MAX)
        return o;
    o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    snprintf(o->e.key, sizeof o->e.key, "%s", handle);
    if (rs_table_add(&rs->owned, &o->e) < 0) {
        free(o);
        return NULL;
    }
    return o;
}

/* Records one more event of len bytes and drops the oldest ones past
 * keep_bytes.  Returns how many the list keeps, 0 when nothing was dropped
 * (no LTRIM needed), or -1 when out of memory (then the list is not
 * trimmed for this event, only later). */
static long owned_push(struct rs_owned *o, size_t len, uint64_t keep_bytes)
{
    if (o->count == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 8;
        uint32_t *lens = malloc(cap * sizeof *lens);
        if (!lens)
            return -1;
        for (uint32_t i = 0; i < o->count; i++)
            lens[i] = o->lens[(o->head + i) % o->cap];
        free(o->lens);
        o->lens = lens;
        o->cap = cap;
        o->head = 0;
    }
    uint32_t l = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    o->lens[(o->head + o->count) % o->cap] = l;
    o->count++;
    o->bytes += l;
    int dropped = 0;
    while (o->count > 1 && o->bytes > keep_bytes) {
        o->bytes -= o->lens[o->head];
        o->head = (o->head + 1) % o->cap;
        o->count--;
        dropped = 1;
    }
    return dropped ? (long)o->count : 0;
}

static void owned_forget(struct result_store *rs, const char *handle)
{
    struct rs_entry *e = rs_table_find(&rs->owned, handle);
    if (!e)
        return;
    rs_table_del(&rs->owned, e);
    free_owned(e, NULL);
}

/* ---- writes -------------------------------------------------------------- */

/* EXEC's reply: NULL when the link went before it was answered. */
static void on_written(redisAsyncContext *ac, void *r, void *arg)
{
    (void)ac;
    struct result_store *rs = arg;
    redisReply *reply = r;
    if (reply && reply->type != REDIS_REPLY_ERROR && reply->type != REDIS_REPLY_NIL)
        return;
    rs->writes_dropped++;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_debug("result store: write refused: %s", reply->str);
}

/* 0 when the write can go out now; else it is counted as dropped. */
static int writable(struct result_store *rs, const char *handle)
{
    if (rs->up && strlen(handle) <= RS_HANDLE_MAX)
        return 0;
    rs->writes_dropped++;
    return -1;
}

static int multi(struct result_store *rs)
{
    return redisAsyncCommand(rs->cmd, NULL, NULL, "MULTI");
}

/* Queues the owner key's SET and EXEC: the end of every job write. */
static void claim_and_exec(struct result_store *rs, const char *handle, int ok)
{
    char key[RS_KEY_MAX];
    rs_job_key(key, handle, "owner");
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "SET %s %s PX %llu", key, rs->instance,
                            ttl_ms(rs));
    ok |= redisAsyncCommand(rs->cmd, on_written, rs, "EXEC");
    if (ok != REDIS_OK)
        rs->writes_dropped++;
}

void result_store_job_begin(struct result_store *rs, const char *handle)
{
    owned_get(rs, handle);
    if (writable(rs, handle) < 0)
        return;
    claim_and_exec(rs, handle, multi(rs));
}

void result_store_job_event(struct result_store *rs, const char *handle, uint64_t seq,
                            const char *json, size_t len, uint64_t keep_bytes)
{
    (void)seq;                     /* followers read it from the text */
    struct rs_owned *o = owned_get(rs, handle);
    if (writable(rs, handle) < 0)
        return;
    char ev[RS_KEY_MAX], chan[RS_KEY_MAX];
    rs_job_key(ev, handle, "ev");
    rs_job_key(chan, handle, "");
    long keep = o ? owned_push(o, len, keep_bytes) : 0;
    int ok = multi(rs);
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "RPUSH %s %b", ev, json, len);
    if (keep > 0)
        ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "LTRIM %s %ld -1", ev, -keep);
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "PEXPIRE %s %llu", ev, ttl_ms(rs));
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "PUBLISH %s %b", chan, json, len);
    claim_and_exec(rs, handle, ok);
}

void result_store_job_final(struct result_store *rs, const char *handle,
                            const char *json, size_t len)
{
    owned_forget(rs, handle);
    if (writable(rs, handle) < 0)
        return;
    char ev[RS_KEY_MAX], final[RS_KEY_MAX], chan[RS_KEY_MAX];
    rs_job_key(ev, handle, "ev");
    rs_job_key(final, handle, "final");
    rs_job_key(chan, handle, "");
    int ok = multi(rs);
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "SET %s %b PX %llu", final, json, len,
                            ttl_ms(rs));
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "PEXPIRE %s %llu", ev, ttl_ms(rs));
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "PUBLISH %s %b", chan, json, len);
    claim_and_exec(rs, handle, ok);
}

void result_store_job_cancel(struct result_store *rs, const char *handle)
{
    if (writable(rs, handle) < 0)
        return;
    if (redisAsyncCommand(rs->cmd, on_written, rs, "PUBLISH wsjobd:cancel %s", handle) != REDIS_OK)
        rs->writes_dropped++;
}

void result_store_on_cancel(struct result_store *rs,
                            void (*cb)(void *arg, const char *handle), void *arg)
{
    rs->on_cancel = cb;
    rs->cancel_arg = arg;
}

void rs_on_cancel_message(struct result_store *rs, const char *handle)
{
    if (rs->on_cancel)
        rs->on_cancel(rs->cancel_arg, handle);
}

/* ---- keeping owned jobs' keys alive -------------------------------------- */

static void renew(struct rs_entry *e, void *arg)
{
    struct result_store *rs = arg;
    char ev[RS_KEY_MAX];
    rs_job_key(ev, e->key, "ev");
    int ok = multi(rs);
    ok |= redisAsyncCommand(rs->cmd, NULL, NULL, "PEXPIRE %s %llu", ev, ttl_ms(rs));
    claim_and_exec(rs, e->key, ok);
}

/* Just up: Redis may have restarted empty, so every running job's owner key
 * is written again now rather than at its next event. */
void rs_owner_up(struct result_store *rs)
{
    rs_table_each(&rs->owned, renew, rs);
}

/* A job may run longer than the TTL without a word: its keys are renewed a
 * third of the TTL apart, so they never lapse while it runs. */
void rs_owner_tick(struct result_store *rs)
{
    unsigned every = rs->ttl_s * 1000 / 3 / RS_TICK_MS;
    if (every == 0 || rs->ticks % every == 0)
        rs_table_each(&rs->owned, renew, rs);
}
