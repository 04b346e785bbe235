/* test_ring_threads.c — the stress workloads of test_ring_stress.c with
 * threads in place of processes, so ThreadSanitizer can watch every access
 * (make SANITIZE=thread).  Also streams payloads through a bytering.
 *
 * Each test runs twice: with the barrier scheme the kernel allows, then
 * with the symmetric one forced.  RING_STRESS_MSGS sets the message count
 * (default 1,000,000). */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "ring_layout.h"
#include "ring_workload.h"

#define DEFAULT_MSGS 1000000u

static struct shm_region *region(size_t bytes)
{
    char err[128];
    struct shm_region *r = shm_region_create(bytes, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

/* ---- jobs: 1 producer -> 4 consumer threads ---------------------------- */

struct jobs_arg {
    struct wl_jobs *j;
    uint16_t id;
};

static void *jobs_thread(void *p)
{
    struct jobs_arg *a = p;
    wl_jobs_consume(a->j, a->id);
    return NULL;
}

START_TEST(jobs_one_producer_four_consumer_threads)
{
    wl_barrier_mode(_i);
    uint64_t n = wl_message_count(DEFAULT_MSGS);
    struct shm_region *reg = region(wl_jobs_region_bytes());
    struct wl_jobs *j = wl_jobs_setup(reg);
    ck_assert_ptr_nonnull(j);
    pthread_t t[WL_CONSUMERS];
    struct jobs_arg args[WL_CONSUMERS];
    for (int i = 0; i < WL_CONSUMERS; i++) {
        args[i] = (struct jobs_arg){ j, (uint16_t)(i + 1) };
        ck_assert_int_eq(pthread_create(&t[i], NULL, jobs_thread, &args[i]), 0);
    }
    struct wl_jobs_report rep;
    wl_jobs_produce(j, n, &rep);
    atomic_store(&j->stop, 1);
    shm_jobring_wake_all(j->ring);
    for (int i = 0; i < WL_CONSUMERS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(rep.timed_out, 0);
    ck_assert_uint_eq(rep.answered, n);
    ck_assert_uint_eq(rep.duplicates, 0);
    ck_assert_uint_eq(rep.missing, 0);
    ck_assert_uint_eq(rep.bad_answers, 0);
    ck_assert_uint_eq(rep.lost_wakeups, 0);
    ck_assert_uint_eq(atomic_load(&j->bad_sum), 0);
    ck_assert_uint_eq(atomic_load(&j->bad_push), 0);
    /* Every sleeper went back to work or left: nobody is still counted. */
    ck_assert_uint_eq(shm_evc_waiting(&j->ring->ready), 0);
    if (_i)
        ck_assert_uint_eq(j->ring->ready.asym, 0);
    shm_region_destroy(reg);
}
END_TEST

/* ---- replies: 4 producer threads -> 1 consumer ------------------------- */

struct replies_arg {
    struct wl_replies *w;
    uint16_t id;
    uint64_t count;
};

static void *replies_thread(void *p)
{
    struct replies_arg *a = p;
    wl_replies_produce(a->w, a->id, a->count);
    return NULL;
}

START_TEST(replies_four_producer_threads_one_consumer)
{
    wl_barrier_mode(_i);
    uint64_t per = (wl_message_count(DEFAULT_MSGS) + WL_PRODUCERS - 1) / WL_PRODUCERS;
    struct shm_region *reg = region(wl_replies_region_bytes());
    struct wl_replies *w = wl_replies_setup(reg);
    ck_assert_ptr_nonnull(w);
    pthread_t t[WL_PRODUCERS];
    struct replies_arg args[WL_PRODUCERS];
    for (int i = 0; i < WL_PRODUCERS; i++) {
        args[i] = (struct replies_arg){ w, (uint16_t)(i + 1), per };
        ck_assert_int_eq(pthread_create(&t[i], NULL, replies_thread, &args[i]), 0);
    }
    struct wl_replies_report rep;
    wl_replies_consume(w, WL_PRODUCERS, per * WL_PRODUCERS, &rep);
    for (int i = 0; i < WL_PRODUCERS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(rep.timed_out, 0);
    ck_assert_uint_eq(rep.received, per * WL_PRODUCERS);
    ck_assert_uint_eq(rep.out_of_order, 0);
    ck_assert_uint_eq(rep.bad_sum, 0);
    ck_assert_uint_eq(rep.bad_len, 0);
    ck_assert_uint_eq(rep.lost_wakeups, 0);
    ck_assert_uint_eq(shm_evc_waiting(&w->ring->space), 0);
    shm_region_destroy(reg);
}
END_TEST

/* ---- bytering: a producer thread streams payloads to the consumer ------ */

#define STREAM_BYTES (1u << 20)

struct stream {
    struct shm_bytering *bytes;
    struct shm_jobring *positions;   /* pos + 1 of each payload, in order */
    uint64_t count;
    alignas(64) _Atomic uint32_t failed;
};

struct stream_head {
    uint64_t len;
    uint64_t sum;
};

static void *stream_producer(void *p)
{
    struct stream *s = p;
    uint64_t rng = 5;
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    for (uint64_t i = 0; i < s->count; i++) {
        uint64_t x = wl_rand(&rng);
        size_t len = (x & 63) == 0 ? (size_t)(wl_rand(&rng) % (STREAM_BYTES / 2 - 16))
                                   : (size_t)(wl_rand(&rng) % 4096);
        int64_t pos = shm_bytering_alloc(s->bytes, sizeof(struct stream_head) + len, 10000);
        if (pos < 0) {
            atomic_store(&s->failed, 1);
            return NULL;
        }
        unsigned char *at = shm_bytering_ptr(s->bytes, pos);
        struct stream_head h = { len, 0 };
        wl_fill(at + sizeof h, len, i);
        h.sum = wl_sum(at + sizeof h, len);
        memcpy(at, &h, sizeof h);
        while (shm_jobring_push(s->positions, (uint64_t)pos + 1) < 0) {
            if (wl_now_ns() > deadline) {
                atomic_store(&s->failed, 1);
                return NULL;
            }
            sched_yield();
        }
    }
    return NULL;
}

START_TEST(bytering_stream_between_threads)
{
    wl_barrier_mode(_i);
    struct shm_region *reg = region(STREAM_BYTES + (2 << 20));
    struct stream *s = shm_region_alloc(reg, sizeof *s, 64);
    void *bm = shm_region_alloc(reg, shm_bytering_size(STREAM_BYTES), 64);
    void *jm = shm_region_alloc(reg, shm_jobring_size(256), 64);
    ck_assert(s != NULL && bm != NULL && jm != NULL);
    s->bytes = shm_bytering_init(bm, STREAM_BYTES);
    s->positions = shm_jobring_init(jm, 256);
    s->count = wl_message_count(DEFAULT_MSGS) / 4;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, stream_producer, s), 0);
    _Atomic uint64_t claim = 0;
    uint64_t got = 0, bad = 0;
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    while (got < s->count && !atomic_load(&s->failed) && wl_now_ns() < deadline) {
        uint64_t v;
        if (shm_jobring_take_wait(s->positions, 1, &claim, &v, 100) < 0)
            continue;
        int64_t pos = (int64_t)v - 1;
        const unsigned char *at = shm_bytering_ptr(s->bytes, pos);
        struct stream_head h;
        memcpy(&h, at, sizeof h);
        if (h.len > STREAM_BYTES || wl_sum(at + sizeof h, h.len) != h.sum)
            bad++;
        shm_bytering_free(s->bytes, pos, sizeof h + h.len);
        got++;
    }
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_uint_eq(atomic_load(&s->failed), 0);
    ck_assert_uint_eq(got, s->count);
    ck_assert_uint_eq(bad, 0);
    shm_region_destroy(reg);
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("ring_threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, jobs_one_producer_four_consumer_threads, 0, 2);
    tcase_add_loop_test(tc, replies_four_producer_threads_one_consumer, 0, 2);
    tcase_add_loop_test(tc, bytering_stream_between_threads, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(threads_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
