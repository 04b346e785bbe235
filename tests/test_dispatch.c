/* test_dispatch.c — the exactly-once answer where it is kept
 * (src/pipeline/dispatch.c and its parts; pipeline/job.h tells the rules),
 * without a daemon: a real pipeline in shared memory and a real event base,
 * with the test playing the worker (it takes handles from the job ring and
 * posts replies through the worker's reply path) and the supervisor (it
 * recovers a "dead" worker's output ring).
 *
 * Each test checks what the client would see — how many final answers,
 * which — and that the job's record comes back (nothing in flight, the
 * table refills to the brim). */
#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handler_registry.h"
#include "pipeline/dispatch.h"
#include "pipeline/pipeline.h"
#include "worker/job_ctx.h"

#define WID 1          /* the one cpu worker the test plays */
#define MAX_EVENTS 64

struct answer {
    int      finals;        /* done + error events */
    int      dones, chunks;
    enum job_error code;    /* of the last error */
    char     output[256];
    size_t   output_len;
};

static struct event_base *base;
static struct pipeline *p;
static struct dispatch *d;
static struct answer answers[MAX_EVENTS];
static int echo_type;
static int room_calls;
static int in_release;     /* set while the test drains: room must not be called then */

static struct answer *of(void *cookie) { return cookie; }

static void on_chunk(void *cookie, uint32_t job, const uint8_t *data, size_t len)
{
    (void)job;
    (void)data;
    (void)len;
    of(cookie)->chunks++;
}

static void on_done(void *cookie, uint32_t job, const uint8_t *data, size_t len, int has_output,
                    uint64_t queued_us, uint64_t run_us)
{
    (void)job;
    (void)has_output;
    (void)queued_us;
    (void)run_us;
    struct answer *a = of(cookie);
    a->finals++;
    a->dones++;
    a->output_len = len < sizeof a->output ? len : sizeof a->output;
    memcpy(a->output, data, a->output_len);
}

static void on_error(void *cookie, uint32_t job, enum job_error code, const char *msg, size_t len)
{
    (void)job;
    (void)msg;
    (void)len;
    of(cookie)->finals++;
    of(cookie)->code = code;
}

static const struct job_sink sink = { .chunk = on_chunk, .done = on_done, .error = on_error };

static int on_room(void *arg)
{
    (void)arg;
    ck_assert_int_eq(in_release, 0);
    room_calls++;
    return 0;
}

static void setup_with(unsigned crash_retries)
{
    char err[256];
    ck_assert_int_eq(registry_load(NULL, 0, err, sizeof err), 0);
    echo_type = registry_find("echo", 4);
    ck_assert_int_ge(echo_type, 0);
    struct pipeline_params pp = { .cpu_workers = 1, .io_threads = 1, .queue_depth = 8,
                                  .max_message = 1 << 20, .stream_window = 1 << 20 };
    p = pipeline_create(&pp, err, sizeof err);
    ck_assert_msg(p != NULL, "%s", err);
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    struct dispatch_params dp = { .job_timeout_ms = 10000, .cancel_grace_ms = 20,
                                  .crash_retries = crash_retries };
    d = dispatch_new(base, p, &dp);
    ck_assert_ptr_nonnull(d);
    dispatch_on_room(d, on_room, NULL);
    memset(answers, 0, sizeof answers);
    room_calls = 0;
}

static void setup(void) { setup_with(1); }
static void setup_no_retry(void) { setup_with(0); }

static void teardown(void)
{
    dispatch_free(d);
    event_base_free(base);
    pipeline_destroy(p);
}

static uint32_t submit(int i, int64_t timeout_ms)
{
    uint32_t job;
    struct job_request r = { .type = echo_type, .input = "x", .len = 1,
                             .timeout_ms = timeout_ms, .sink = &sink, .cookie = &answers[i] };
    ck_assert_int_eq(dispatch_submit(d, &r, &job), JE_NONE);
    return job;
}

/* The worker takes the oldest job: its handle. */
static uint64_t take(void)
{
    uint64_t h = 0;
    struct worker_desc *w = pipeline_worker(p, WID);
    ck_assert_int_eq(shm_jobring_take(p->ring[CLASS_CPU], WID, &w->claim, &h), 0);
    return h;
}

static void post(uint64_t h, enum reply_kind kind, enum job_error code, const char *payload,
                 size_t len)
{
    struct reply r = { .handle = h, .kind = (uint8_t)kind, .code = (uint8_t)code, .b = 1 };
    ck_assert_int_eq(reply_post(p, WID, &r, payload, len), 0);
    if (kind == REPLY_DONE || kind == REPLY_ERROR)
        atomic_store(&pipeline_worker(p, WID)->claim, 0);
}

static void drain(void)
{
    in_release = 1;
    dispatch_drain(d);
    in_release = 0;
}

/* What the supervisor does to a worker that died: its output ring is reset
 * and its incarnation bumped (supervisor.c, recover). */
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

static void run_loop_for(int ms, const struct answer *until)
{
    int64_t end = shm_now_ns() + (int64_t)ms * 1000000;
    while (shm_now_ns() < end && (!until || until->finals == 0))
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Every record is back: the table takes as many jobs as it has. */
static void assert_all_records_free(void)
{
    const struct dispatch_stats *st = dispatch_stats(d);
    ck_assert_uint_eq(st->in_flight, 0);
    uint32_t job;
    struct job_request r = { .type = echo_type, .input = "x", .len = 1, .sink = &sink,
                             .cookie = &answers[MAX_EVENTS - 1] };
    /* The cpu ring holds 8: drain it as it fills, so only the table limits. */
    for (uint32_t i = 0; i < p->njobs; i++) {
        ck_assert_msg(dispatch_submit(d, &r, &job) == JE_NONE, "record %u of %u is taken", i,
                      p->njobs);
        uint64_t h = take();
        post(h, REPLY_DONE, JE_NONE, "", 0);
        drain();
    }
}

START_TEST(done_is_answered_once_and_frees_the_record)
{
    submit(0, 0);
    uint64_t h = take();
    post(h, REPLY_CHUNK, JE_NONE, "part", 4);
    post(h, REPLY_DONE, JE_NONE, "whole", 5);
    drain();
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[0].dones, 1);
    ck_assert_int_eq(answers[0].chunks, 1);
    ck_assert_int_eq((int)answers[0].output_len, 5);
    ck_assert_int_eq(memcmp(answers[0].output, "whole", 5), 0);
    assert_all_records_free();
}
END_TEST

START_TEST(cancel_answers_at_once_and_the_late_reply_answers_nothing)
{
    uint32_t job = submit(0, 0);
    uint64_t h = take();
    dispatch_cancel(d, job);
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[0].code, JE_CANCELLED);
    dispatch_cancel(d, job);                      /* a second cancel: ignored */
    post(h, REPLY_DONE, JE_NONE, "late", 4);
    drain();
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[0].dones, 0);
    assert_all_records_free();
}
END_TEST

START_TEST(detach_answers_nothing_and_frees_on_the_final_reply)
{
    uint32_t job = submit(0, 0);
    uint64_t h = take();
    dispatch_detach(d, job);
    post(h, REPLY_ERROR, JE_CANCELLED, "stopped", 7);
    drain();
    ck_assert_int_eq(answers[0].finals, 0);
    assert_all_records_free();
}
END_TEST

START_TEST(a_crash_reruns_the_job_and_the_dead_workers_reply_is_stale)
{
    submit(0, 0);
    uint64_t h1 = take();
    post(h1, REPLY_CHUNK, JE_NONE, "from the first try", 18);
    worker_died();                                /* crash_retries 1: queued again */
    ck_assert_uint_eq(dispatch_stats(d)->retried, 1);
    uint64_t h2 = take();
    ck_assert_uint_ne(h1, h2);
    post(h1, REPLY_DONE, JE_NONE, "stale", 5);    /* an old handle: dropped */
    post(h2, REPLY_DONE, JE_NONE, "fresh", 5);
    drain();
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(memcmp(answers[0].output, "fresh", 5), 0);
    assert_all_records_free();
}
END_TEST

START_TEST(a_crash_past_the_retries_is_worker_crashed_once)
{
    submit(0, 0);
    take();
    worker_died();
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[0].code, JE_WORKER_CRASHED);
    assert_all_records_free();
}
END_TEST

/* A final reply whose payload was in the output ring of a worker that was
 * reset before the reply was drained cannot be delivered: the job must be
 * treated as lost (run again, or worker_crashed), not left unanswered with
 * its record held for ever. */
START_TEST(a_final_reply_lost_with_its_workers_output_ring_is_a_lost_worker)
{
    char big[200];
    memset(big, 'o', sizeof big);
    submit(0, 0);
    uint64_t h1 = take();
    post(h1, REPLY_DONE, JE_NONE, big, sizeof big);   /* over REPLY_INLINE: out of line */
    worker_died();                                     /* before the front drained it */
    drain();
    ck_assert_int_eq(answers[0].finals, 0);            /* not answered: queued again */
    uint64_t h2 = take();
    post(h2, REPLY_DONE, JE_NONE, big, sizeof big);
    drain();
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[0].dones, 1);
    ck_assert_int_eq((int)answers[0].output_len, (int)sizeof big);
    assert_all_records_free();
}
END_TEST

START_TEST(a_lost_final_reply_past_the_retries_is_worker_crashed)
{
    char big[200] = { 0 };
    submit(0, 0);
    uint64_t h = take();
    post(h, REPLY_ERROR, JE_HANDLER_ERROR, big, sizeof big);
    worker_died();
    drain();
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[0].code, JE_WORKER_CRASHED);
    assert_all_records_free();
}
END_TEST

START_TEST(a_deadline_answers_timeout_once_and_the_record_waits_for_the_worker)
{
    submit(0, 30);
    submit(1, 0);                                 /* the default deadline: 10 s */
    uint64_t h = take();
    run_loop_for(2000, &answers[0]);
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[0].code, JE_TIMEOUT);
    ck_assert_int_eq(answers[1].finals, 0);
    ck_assert_uint_eq(dispatch_stats(d)->in_flight, 1);
    run_loop_for(100, NULL);                      /* past the grace: no second answer */
    ck_assert_int_eq(answers[0].finals, 1);
    post(h, REPLY_ERROR, JE_TIMEOUT, "stopped", 7);
    post(take(), REPLY_DONE, JE_NONE, "", 0);
    drain();
    ck_assert_int_eq(answers[0].finals, 1);
    ck_assert_int_eq(answers[1].finals, 1);
    assert_all_records_free();
}
END_TEST

START_TEST(room_is_offered_on_a_later_turn_never_inside_a_release)
{
    uint32_t job;
    struct job_request r = { .type = echo_type, .input = "x", .len = 1, .sink = &sink,
                             .cookie = &answers[0] };
    int admitted = 0;
    while (dispatch_submit(d, &r, &job) == JE_NONE)
        admitted++;
    ck_assert_int_eq(admitted, (int)shm_jobring_capacity(p->ring[CLASS_CPU]));
    post(take(), REPLY_DONE, JE_NONE, "", 0);
    drain();                                      /* on_room asserts it is not called here */
    ck_assert_int_eq(room_calls, 0);
    run_loop_for(50, NULL);
    ck_assert_int_eq(room_calls, 1);
    ck_assert_int_eq(dispatch_submit(d, &r, &job), JE_NONE);
}
END_TEST

START_TEST(fail_all_answers_every_job_once)
{
    for (int i = 0; i < 5; i++)
        submit(i, 0);
    uint64_t h = take();
    dispatch_fail_all(d, JE_SHUTTING_DOWN, "bye");
    dispatch_fail_all(d, JE_SHUTTING_DOWN, "bye");
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(answers[i].finals, 1);
        ck_assert_int_eq(answers[i].code, JE_SHUTTING_DOWN);
    }
    post(h, REPLY_DONE, JE_NONE, "", 0);
    for (int i = 0; i < 4; i++)
        post(take(), REPLY_ERROR, JE_CANCELLED, "", 0);
    drain();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(answers[i].finals, 1);
    assert_all_records_free();
}
END_TEST

static Suite *dispatch_suite(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("answers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, done_is_answered_once_and_frees_the_record);
    tcase_add_test(tc, cancel_answers_at_once_and_the_late_reply_answers_nothing);
    tcase_add_test(tc, detach_answers_nothing_and_frees_on_the_final_reply);
    tcase_add_test(tc, a_crash_reruns_the_job_and_the_dead_workers_reply_is_stale);
    tcase_add_test(tc, a_final_reply_lost_with_its_workers_output_ring_is_a_lost_worker);
    tcase_add_test(tc, a_deadline_answers_timeout_once_and_the_record_waits_for_the_worker);
    tcase_add_test(tc, room_is_offered_on_a_later_turn_never_inside_a_release);
    tcase_add_test(tc, fail_all_answers_every_job_once);
    suite_add_tcase(s, tc);
    TCase *nr = tcase_create("no retries");
    tcase_add_checked_fixture(nr, setup_no_retry, teardown);
    tcase_add_test(nr, a_crash_past_the_retries_is_worker_crashed_once);
    tcase_add_test(nr, a_lost_final_reply_past_the_retries_is_worker_crashed);
    suite_add_tcase(s, nr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dispatch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
