/* test_detach.c — the store of detached jobs (src/front/detach*.c;
 * front/detach.h tells the rules), without a daemon: a
 * real pipeline and dispatch as in test_dispatch.c, the test playing the
 * worker, a follower that records what a client would be sent, and a
 * mirror that records what a shared result store would be told. */
#include <check.h>
#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/detach.h"
#include "front/detach_parts.h"
#include "handlers/handler_registry.h"
#include "pipeline/dispatch.h"
#include "pipeline/pipeline.h"
#include "worker/job_ctx.h"

#define WID 1
#define MAX_SEEN 16

/* What a follower (a client) or the mirror was given. */
struct seen {
    int  n, finals;
    char text[MAX_SEEN][160];
};

struct follower {
    struct seen got;
    int over;                 /* answer "past my window" */
    int calls;                /* follow() calls: events given at once count once */
};

static struct event_base *base;
static struct pipeline *p;
static struct dispatch *d;
static struct detach_store *ds;
static int echo_type;

static struct {
    int up, begins, cancels, follows, unfollows;
    struct seen events, finals;
    uint64_t seqs[MAX_SEEN];
    char cancelled[64], followed[64];
    uint64_t follow_from;
    /* the last follow: how to reach its client, and what follow() does */
    void (*on_event)(void *, const char *, size_t, int);
    void *cb_arg;
    int final_at_once;        /* deliver the final inside follow() */
    int refuse;               /* follow() returns NULL */
} mirror;

static void record(struct seen *s, const char *json, size_t len, int final)
{
    ck_assert_int_lt(s->n, MAX_SEEN);
    snprintf(s->text[s->n++], sizeof s->text[0], "%.*s", (int)len, json);
    s->finals += final;
}

static int follow_fn(void *arg, const struct detach_text *ev, size_t n, int final)
{
    struct follower *f = arg;
    ck_assert_uint_ge(n, 1);
    f->calls++;
    for (size_t i = 0; i < n; i++)
        record(&f->got, ev[i].json, ev[i].len, final && i == n - 1);
    return f->over;
}

/* ---- the mirror -------------------------------------------------------------- */

static int m_up(void *arg) { (void)arg; return mirror.up; }
static void m_begin(void *arg, const char *h) { (void)arg; (void)h; mirror.begins++; }

static void m_event(void *arg, const char *h, uint64_t seq, const char *json, size_t len,
                    uint64_t keep)
{
    (void)arg;
    (void)h;
    (void)keep;
    mirror.seqs[mirror.events.n] = seq;
    record(&mirror.events, json, len, 0);
}

static void m_final(void *arg, const char *h, const char *json, size_t len)
{
    (void)arg;
    (void)h;
    record(&mirror.finals, json, len, 1);
}

static void m_cancel(void *arg, const char *h)
{
    (void)arg;
    mirror.cancels++;
    snprintf(mirror.cancelled, sizeof mirror.cancelled, "%s", h);
}

static const char remote_final[] = "{\"event\":\"error\",\"code\":\"not_found\",\"message\":\"x\"}";

static void *m_follow(void *arg, const char *h, uint64_t from,
                      void (*on_event)(void *, const char *, size_t, int), void *cb_arg)
{
    (void)arg;
    mirror.follows++;
    mirror.follow_from = from;
    mirror.on_event = on_event;
    mirror.cb_arg = cb_arg;
    snprintf(mirror.followed, sizeof mirror.followed, "%s", h);
    if (mirror.refuse)
        return NULL;
    if (mirror.final_at_once) {
        on_event(cb_arg, remote_final, sizeof remote_final - 1, 1);
        return NULL;   /* finished: nothing to unfollow */
    }
    return &mirror;
}

static void m_unfollow(void *f)
{
    ck_assert_ptr_eq(f, &mirror);
    mirror.unfollows++;
}

static const struct detach_mirror fake_mirror = {
    .up = m_up, .begin = m_begin, .event = m_event, .final = m_final, .cancel = m_cancel,
    .follow = m_follow, .unfollow = m_unfollow,
};

/* ---- fixture --------------------------------------------------------------------- */

static void setup_with(unsigned crash_retries, size_t buffer, unsigned max_jobs)
{
    char err[256];
    ck_assert_int_eq(registry_load(NULL, 0, err, sizeof err), 0);
    echo_type = registry_find("echo", 4);
    struct pipeline_params pp = { .cpu_workers = 1, .io_threads = 1, .queue_depth = 8,
                                  .max_message = 1 << 20, .stream_window = 1 << 20 };
    p = pipeline_create(&pp, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    base = event_base_new();
    struct dispatch_params dp = { .job_timeout_ms = 10000, .cancel_grace_ms = 20,
                                  .crash_retries = crash_retries };
    d = dispatch_new(base, p, &dp);
    ck_assert_ptr_nonnull(d);
    struct detach_params prm = { .buffer = buffer, .ttl_s = 1, .max_jobs = max_jobs };
    ds = detach_new(base, d, &prm);
    ck_assert_ptr_nonnull(ds);
    memset(&mirror, 0, sizeof mirror);
    mirror.up = 1;
}

static void setup(void) { setup_with(0, 1 << 20, 4); }
/* Room for two of the test's chunk events (41 bytes each), not three. */
static void setup_small(void) { setup_with(0, 100, 4); }

static void teardown(void)
{
    detach_free(ds);
    dispatch_free(d);
    event_base_free(base);
    pipeline_destroy(p);
}

static struct detach_job *submit(struct follower *f)
{
    struct job_request r = { .type = echo_type, .input = "x", .len = 1 };
    struct detach_job *dj = NULL;
    const char *why;
    ck_assert_int_eq(detach_submit(ds, &r, f ? follow_fn : NULL, f, &dj, &why), JE_NONE);
    return dj;
}

static uint64_t take(void)
{
    uint64_t h = 0;
    struct worker_desc *w = pipeline_worker(p, WID);
    ck_assert_int_eq(shm_jobring_take(p->ring[CLASS_CPU], WID, &w->claim, &h), 0);
    return h;
}

static void post(uint64_t h, enum reply_kind kind, enum job_error code, const char *payload)
{
    struct reply r = { .handle = h, .kind = (uint8_t)kind, .code = (uint8_t)code, .b = 1 };
    ck_assert_int_eq(reply_post(p, WID, &r, payload, strlen(payload)), 0);
    if (kind == REPLY_DONE || kind == REPLY_ERROR)
        atomic_store(&pipeline_worker(p, WID)->claim, 0);
    dispatch_drain(d);
}

static void worker_died(void)
{
    struct worker_desc *w = pipeline_worker(p, WID);
    shm_replyring_recover(p->replies, WID);
    uint64_t held = atomic_exchange(&w->claim, 0);
    if (held)
        dispatch_worker_lost(d, held);
    shm_bytering_reset(w->out);
    atomic_fetch_add(&w->incarnation, 1);
}

static uint64_t acked(uint64_t h)
{
    return atomic_load(&p->jobs[handle_index(h)].acked);
}

static void chunk_text(char *buf, size_t len, int seq, const char *out)
{
    snprintf(buf, len, "{\"event\":\"chunk\",\"seq\":%d,\"output\":\"%s\"}", seq, out);
}

static void assert_chunk(const struct seen *s, int i, int seq, const char *out)
{
    char want[160];
    chunk_text(want, sizeof want, seq, out);
    ck_assert_str_eq(s->text[i], want);
}

static void run_loop_for(int ms)
{
    int64_t end = shm_now_ns() + (int64_t)ms * 1000000;
    while (shm_now_ns() < end)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* ---- tests ------------------------------------------------------------------------------ */

START_TEST(handles_are_a_slot_and_128_random_bits_in_lower_case_hex)
{
    struct detach_job *a = submit(NULL), *b = submit(NULL);
    char ha[41], hb[41];
    detach_handle(a, ha);
    detach_handle(b, hb);
    ck_assert_int_eq((int)strlen(ha), 40);
    ck_assert_int_eq((int)strspn(ha, "0123456789abcdef"), 40);
    ck_assert_int_ne(memcmp(ha + 8, hb + 8, 32), 0);
    ck_assert_ptr_eq(detach_find(ds, ha, 40), a);
    ck_assert_ptr_eq(detach_find(ds, hb, 40), b);
    char upper[41], wrong[41];
    for (int i = 0; i < 41; i++)
        upper[i] = (char)toupper((unsigned char)ha[i]);
    if (strcmp(upper, ha) != 0)
        ck_assert_ptr_null(detach_find(ds, upper, 40));
    ck_assert_ptr_null(detach_find(ds, ha, 39));
    /* the right slot with one random bit wrong, and a slot never used */
    memcpy(wrong, ha, sizeof wrong);
    wrong[39] = wrong[39] == '0' ? '1' : '0';
    ck_assert_ptr_null(detach_find(ds, wrong, 40));
    memcpy(wrong, "7fffffff", 8);
    ck_assert_ptr_null(detach_find(ds, wrong, 40));
}
END_TEST

/* The word-at-a-time formatting against printf's, over every nibble value
 * in every position, and back through the parser. */
START_TEST(a_handle_formats_as_printf_would_and_parses_back)
{
    uint32_t seed = 12345;
    for (int round = 0; round < 4096; round++) {
        uint32_t slot = round < 16 ? 0x11111111u * (uint32_t)round : (seed = seed * 1103515245u + 12345u);
        uint8_t key[DETACH_KEY_LEN];
        for (size_t i = 0; i < sizeof key; i++)
            key[i] = round < 16 ? (uint8_t)(0x11 * round) : (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
        char got[DETACH_HANDLE_LEN + 1], want[DETACH_HANDLE_LEN + 1];
        detach_format_handle(slot, key, got);
        int n = snprintf(want, sizeof want, "%08x", slot);
        for (size_t i = 0; i < sizeof key; i++)
            n += snprintf(want + n, sizeof want - (size_t)n, "%02x", key[i]);
        ck_assert_str_eq(got, want);
        uint32_t s2;
        uint8_t k2[DETACH_KEY_LEN];
        ck_assert_int_eq(detach_parse_handle(got, DETACH_HANDLE_LEN, &s2, k2), 0);
        ck_assert_uint_eq(s2, slot);
        ck_assert_int_eq(memcmp(k2, key, sizeof key), 0);
    }
}
END_TEST

START_TEST(accepted_leaves_with_the_first_event_or_alone_soon_after)
{
    struct follower f = { 0 }, g = { 0 };
    struct detach_job *dj = submit(&f);
    ck_assert_int_eq(f.got.n, 0);                  /* not yet: it may go with the first event */
    uint64_t h = take();
    post(h, REPLY_CHUNK, JE_NONE, "a");
    ck_assert_int_eq(f.got.n, 2);
    char want[80], hex[41];
    detach_handle(dj, hex);
    snprintf(want, sizeof want, "{\"event\":\"accepted\",\"handle\":\"%s\"}", hex);
    ck_assert_str_eq(f.got.text[0], want);
    assert_chunk(&f.got, 1, 0, "a");
    struct detach_job *quiet = submit(&g);
    run_loop_for(200);                              /* no event comes: it goes alone */
    ck_assert_int_eq(g.got.n, 1);
    detach_handle(quiet, hex);
    snprintf(want, sizeof want, "{\"event\":\"accepted\",\"handle\":\"%s\"}", hex);
    ck_assert_str_eq(g.got.text[0], want);
    ck_assert_int_eq(f.got.n, 2);                   /* and only once */
    post(h, REPLY_DONE, JE_NONE, "");
}
END_TEST

START_TEST(a_job_done_before_its_accepted_gives_both_at_once)
{
    struct follower f = { 0 };
    struct detach_job *dj = submit(&f);
    char want[80], hex[41];
    detach_handle(dj, hex);
    snprintf(want, sizeof want, "{\"event\":\"accepted\",\"handle\":\"%s\"}", hex);
    post(take(), REPLY_DONE, JE_NONE, "x");
    ck_assert_int_eq(f.calls, 1);                   /* one write for both */
    ck_assert_int_eq(f.got.n, 2);
    ck_assert_str_eq(f.got.text[0], want);
    ck_assert_ptr_nonnull(strstr(f.got.text[1], "\"event\":\"done\""));
    ck_assert_int_eq(f.got.finals, 1);
    run_loop_for(200);                              /* and the timer gives nothing more */
    ck_assert_int_eq(f.got.n, 2);
}
END_TEST

START_TEST(a_slot_is_reused_and_the_old_handle_is_not_found)
{
    struct detach_job *a = submit(NULL);
    char old[41], hb[41];
    detach_handle(a, old);
    post(take(), REPLY_DONE, JE_NONE, "");
    run_loop_for(1300);                             /* TTL 1 s, expiry at most 100 ms late */
    ck_assert_uint_eq(detach_stats(ds)->expired_total, 1);
    struct detach_job *b = submit(NULL);
    detach_handle(b, hb);
    ck_assert_int_eq(memcmp(hb, old, 8), 0);   /* the same slot */
    ck_assert_ptr_null(detach_find(ds, old, 40));
    ck_assert_ptr_eq(detach_find(ds, hb, 40), b);
    post(take(), REPLY_DONE, JE_NONE, "");
}
END_TEST

START_TEST(the_follower_and_the_mirror_get_every_event_and_one_final)
{
    struct follower f = { 0 };
    detach_set_mirror(ds, &fake_mirror);
    struct detach_job *dj = submit(&f);
    ck_assert_int_eq(mirror.begins, 1);
    uint64_t h = take();
    post(h, REPLY_CHUNK, JE_NONE, "a");
    post(h, REPLY_CHUNK, JE_NONE, "b");
    post(h, REPLY_DONE, JE_NONE, "whole");
    ck_assert_int_eq(f.got.n, 4);
    ck_assert_ptr_nonnull(strstr(f.got.text[0], "{\"event\":\"accepted\""));
    assert_chunk(&f.got, 1, 0, "a");
    assert_chunk(&f.got, 2, 1, "b");
    ck_assert_int_eq(f.got.finals, 1);
    ck_assert_ptr_nonnull(strstr(f.got.text[3], "{\"event\":\"done\",\"output\":\"whole\""));
    ck_assert_int_eq(mirror.events.n, 2);
    ck_assert_uint_eq(mirror.seqs[1], 1);
    ck_assert_str_eq(mirror.events.text[1], f.got.text[2]);
    ck_assert_int_eq(mirror.finals.n, 1);
    ck_assert_str_eq(mirror.finals.text[0], f.got.text[3]);
    const struct detach_stats *st = detach_stats(ds);
    ck_assert_uint_eq(st->held, 1);
    ck_assert_uint_eq(st->running, 0);
    ck_assert_uint_eq(st->finished_kept, 1);
    /* An attach after the end: the replay, then the final, and no follow. */
    struct follower late = { 0 };
    ck_assert_int_eq(detach_attach(dj, 1, follow_fn, &late), 0);
    ck_assert_int_eq(late.got.n, 2);
    assert_chunk(&late.got, 0, 1, "b");
    ck_assert_str_eq(late.got.text[1], f.got.text[3]);
    ck_assert_int_eq(late.got.finals, 1);
    ck_assert_int_eq(f.got.finals, 1);
}
END_TEST

START_TEST(a_crash_with_nobody_following_is_answered_to_the_store_once)
{
    struct follower f = { 0 };
    struct detach_job *dj = submit(&f);
    uint64_t h = take();
    detach_unfollow(dj, &f);                  /* the connection went */
    post(h, REPLY_CHUNK, JE_NONE, "a");
    worker_died();                            /* crash_retries 0 */
    ck_assert_int_eq(f.got.n, 0);
    struct follower later = { 0 };
    ck_assert_int_eq(detach_attach(dj, 0, follow_fn, &later), 0);
    ck_assert_int_eq(later.got.n, 2);
    assert_chunk(&later.got, 0, 0, "a");
    ck_assert_ptr_nonnull(strstr(later.got.text[1], "\"code\":\"worker_crashed\""));
    ck_assert_int_eq(later.got.finals, 1);
    ck_assert_uint_eq(dispatch_stats(d)->in_flight, 0);
}
END_TEST

START_TEST(the_buffer_keeps_the_newest_chunks_and_a_newer_attach_takes_over)
{
    struct follower first = { 0 }, second = { 0 };
    struct detach_job *dj = submit(&first);
    uint64_t h = take();
    for (int i = 0; i < 5; i++)
        post(h, REPLY_CHUNK, JE_NONE, "abc");
    ck_assert_uint_eq(detach_stats(ds)->dropped_events_total, 3);
    ck_assert_int_eq(detach_attach(dj, 0, follow_fn, &second), 1);
    ck_assert_int_eq(first.got.n, 7);                /* accepted, 5 chunks, superseded */
    ck_assert_int_eq(first.got.finals, 1);
    ck_assert_ptr_nonnull(strstr(first.got.text[6], "\"code\":\"superseded\""));
    ck_assert_int_eq(second.got.n, 2);              /* the kept tail: seq 3 and 4 */
    assert_chunk(&second.got, 0, 3, "abc");
    assert_chunk(&second.got, 1, 4, "abc");
    post(h, REPLY_CHUNK, JE_NONE, "abc");           /* live, right after the replay */
    assert_chunk(&second.got, 2, 5, "abc");
    post(h, REPLY_DONE, JE_NONE, "");
    ck_assert_int_eq(second.got.finals, 1);
    ck_assert_int_eq(first.got.finals, 1);
    ck_assert_uint_eq(detach_stats(ds)->superseded_total, 1);
}
END_TEST

START_TEST(the_stream_waits_for_a_slow_follower_only)
{
    struct follower f = { .over = 1 };
    struct detach_job *dj = submit(&f);
    uint64_t h = take();
    post(h, REPLY_CHUNK, JE_NONE, "0123456789");
    ck_assert_uint_eq(acked(h), 0);                /* past its window: held */
    detach_drained(dj);
    ck_assert_uint_eq(acked(h), 10);
    post(h, REPLY_CHUNK, JE_NONE, "0123456789");
    ck_assert_uint_eq(acked(h), 10);
    detach_unfollow(dj, &f);                        /* nobody reads now: let it go */
    ck_assert_uint_eq(acked(h), 20);
    post(h, REPLY_CHUNK, JE_NONE, "0123456789");    /* no follower: at once */
    ck_assert_uint_eq(acked(h), 30);
    f.over = 0;
    ck_assert_int_eq(detach_attach(dj, 3, follow_fn, &f), 1);
    post(h, REPLY_CHUNK, JE_NONE, "0123456789");
    ck_assert_uint_eq(acked(h), 40);
    post(h, REPLY_DONE, JE_NONE, "");
}
END_TEST

START_TEST(a_finished_job_is_forgotten_after_its_ttl)
{
    struct detach_job *dj = submit(NULL);
    char handle[41];
    detach_handle(dj, handle);
    post(take(), REPLY_DONE, JE_NONE, "x");
    run_loop_for(500);
    ck_assert_ptr_eq(detach_find(ds, handle, 40), dj);
    run_loop_for(900);                              /* TTL 1 s, at most 100 ms late */
    ck_assert_ptr_null(detach_find(ds, handle, 40));
    const struct detach_stats *st = detach_stats(ds);
    ck_assert_uint_eq(st->expired_total, 1);
    ck_assert_uint_eq(st->held, 0);
    ck_assert_uint_eq(st->kept_bytes, 0);
}
END_TEST

START_TEST(max_detached_and_a_down_mirror_answer_busy)
{
    for (int i = 0; i < 4; i++)
        submit(NULL);
    struct job_request r = { .type = echo_type, .input = "x", .len = 1 };
    struct detach_job *dj = NULL;
    const char *why = NULL;
    ck_assert_int_eq(detach_submit(ds, &r, NULL, NULL, &dj, &why), JE_BUSY);
    ck_assert_ptr_nonnull(strstr(why, "max-detached"));
    for (int i = 0; i < 4; i++)
        post(take(), REPLY_DONE, JE_NONE, "");
    /* Finished but kept: they still count until their TTL ends. */
    ck_assert_int_eq(detach_submit(ds, &r, NULL, NULL, &dj, &why), JE_BUSY);
    run_loop_for(1300);
    detach_set_mirror(ds, &fake_mirror);
    mirror.up = 0;
    ck_assert_int_eq(detach_submit(ds, &r, NULL, NULL, &dj, &why), JE_BUSY);
    ck_assert_ptr_nonnull(strstr(why, "result store"));
    mirror.up = 1;
    ck_assert_int_eq(detach_submit(ds, &r, NULL, NULL, &dj, &why), JE_NONE);
}
END_TEST

START_TEST(cancels_by_handle_here_and_elsewhere)
{
    struct follower f = { 0 };
    struct detach_job *dj = submit(&f);
    char handle[41];
    detach_handle(dj, handle);
    uint64_t h = take();
    detach_set_mirror(ds, &fake_mirror);
    detach_cancel_by_handle(ds, handle);            /* from another instance */
    ck_assert_int_eq(f.got.finals, 1);
    ck_assert_ptr_nonnull(strstr(f.got.text[1], "\"code\":\"cancelled\""));
    ck_assert_int_eq(mirror.finals.n, 1);
    detach_client_cancel(ds, handle, 40);           /* ended already: nothing */
    ck_assert_int_eq(mirror.cancels, 0);
    ck_assert_int_eq(f.got.finals, 1);
    post(h, REPLY_ERROR, JE_CANCELLED, "stopped");
    ck_assert_int_eq(f.got.finals, 1);
    /* A handle held nowhere here goes to the mirror; a malformed one nowhere. */
    static const char elsewhere[] = "0000000700112233445566778899aabbccddeeff";
    detach_client_cancel(ds, elsewhere, 40);
    ck_assert_int_eq(mirror.cancels, 1);
    ck_assert_str_eq(mirror.cancelled, elsewhere);
    detach_client_cancel(ds, "0011", 4);
    ck_assert_int_eq(mirror.cancels, 1);
}
END_TEST

/* A client following a job another instance holds (jobs_detach.c's part). */
struct remote_client {
    struct seen got;
    struct detach_remote *r;
    int stop_at;              /* unfollow from inside its event number stop_at (1-based) */
};

static void remote_fn(void *arg, const char *json, size_t len, int final)
{
    struct remote_client *c = arg;
    record(&c->got, json, len, final);
    if (c->stop_at && c->got.n == c->stop_at)
        detach_unfollow_remote(c->r);
}

static void mirror_says(const char *json, int final)
{
    mirror.on_event(mirror.cb_arg, json, strlen(json), final);
}

START_TEST(remote_follows_go_through_the_mirror_and_stop_safely)
{
    static const char elsewhere[] = "0000000700112233445566778899aabbccddeeff";
    struct remote_client a = { 0 };
    ck_assert_int_eq(detach_follow_remote(ds, elsewhere, 0, remote_fn, &a, &a.r), -1);  /* no mirror */
    detach_set_mirror(ds, &fake_mirror);
    ck_assert_int_eq(detach_follow_remote(ds, "0011", 4, remote_fn, &a, &a.r), -1);
    ck_assert_int_eq(mirror.follows, 0);
    /* events, then the final: the client has them all, nothing to unfollow */
    ck_assert_int_eq(detach_follow_remote(ds, elsewhere, 7, remote_fn, &a, &a.r), 0);
    ck_assert_uint_eq(mirror.follow_from, 7);
    ck_assert_str_eq(mirror.followed, elsewhere);
    mirror_says("{\"event\":\"chunk\",\"seq\":7,\"output\":\"x\"}", 0);
    mirror_says(remote_final, 1);
    ck_assert_int_eq(a.got.n, 2);
    ck_assert_int_eq(a.got.finals, 1);
    /* a client too slow stops inside its own event: nothing after it, and
     * the mirror is told on the next turn, outside its callback */
    struct remote_client b = { .stop_at = 1 };
    ck_assert_int_eq(detach_follow_remote(ds, elsewhere, 0, remote_fn, &b, &b.r), 0);
    mirror_says("{\"event\":\"chunk\",\"seq\":0,\"output\":\"x\"}", 0);
    mirror_says("{\"event\":\"chunk\",\"seq\":1,\"output\":\"x\"}", 0);
    ck_assert_int_eq(b.got.n, 1);
    ck_assert_int_eq(mirror.unfollows, 0);
    run_loop_for(20);
    ck_assert_int_eq(mirror.unfollows, 1);
    /* a client that leaves, and the final that comes before the mirror is
     * told: not passed on, and the finished follow is not unfollowed */
    struct remote_client c = { 0 };
    ck_assert_int_eq(detach_follow_remote(ds, elsewhere, 0, remote_fn, &c, &c.r), 0);
    detach_unfollow_remote(c.r);
    mirror_says(remote_final, 1);
    run_loop_for(20);
    ck_assert_int_eq(c.got.n, 0);
    ck_assert_int_eq(mirror.unfollows, 1);
    /* the final within the follow call, and a follow that cannot start */
    struct remote_client d = { 0 }, e = { 0 };
    mirror.final_at_once = 1;
    ck_assert_int_eq(detach_follow_remote(ds, elsewhere, 0, remote_fn, &d, &d.r), 0);
    ck_assert_int_eq(d.got.finals, 1);
    mirror.final_at_once = 0;
    mirror.refuse = 1;
    ck_assert_int_eq(detach_follow_remote(ds, elsewhere, 0, remote_fn, &e, &e.r), -1);
    ck_assert_int_eq(e.got.n, 0);
    run_loop_for(20);
    ck_assert_int_eq(mirror.unfollows, 1);
    /* one still followed when the store goes: freed without a word (ASan) */
    mirror.refuse = 0;
    struct remote_client f = { 0 };
    ck_assert_int_eq(detach_follow_remote(ds, elsewhere, 0, remote_fn, &f, &f.r), 0);
}
END_TEST

static Suite *detach_suite(void)
{
    Suite *s = suite_create("detach");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, handles_are_a_slot_and_128_random_bits_in_lower_case_hex);
    tcase_add_test(tc, a_handle_formats_as_printf_would_and_parses_back);
    tcase_add_test(tc, accepted_leaves_with_the_first_event_or_alone_soon_after);
    tcase_add_test(tc, a_job_done_before_its_accepted_gives_both_at_once);
    tcase_add_test(tc, a_slot_is_reused_and_the_old_handle_is_not_found);
    tcase_add_test(tc, the_follower_and_the_mirror_get_every_event_and_one_final);
    tcase_add_test(tc, a_crash_with_nobody_following_is_answered_to_the_store_once);
    tcase_add_test(tc, the_stream_waits_for_a_slow_follower_only);
    tcase_add_test(tc, a_finished_job_is_forgotten_after_its_ttl);
    tcase_add_test(tc, max_detached_and_a_down_mirror_answer_busy);
    tcase_add_test(tc, cancels_by_handle_here_and_elsewhere);
    tcase_add_test(tc, remote_follows_go_through_the_mirror_and_stop_safely);
    suite_add_tcase(s, tc);
    TCase *small = tcase_create("small buffer");
    tcase_add_checked_fixture(small, setup_small, teardown);
    tcase_add_test(small, the_buffer_keeps_the_newest_chunks_and_a_newer_attach_takes_over);
    suite_add_tcase(s, small);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(detach_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
