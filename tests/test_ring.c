/* test_ring.c — unit tests of shm/shm.c (the region) and shm/jobring.c.
 * The states a dead peer leaves behind are forged through ring_layout.h.
 * (The replyring is tested in test_ring_reply.c, the byte arenas in
 * test_ring_arena.c.) */
#include <string.h>

#include "ring_fixture.h"

/* ---- region ------------------------------------------------------------ */

START_TEST(region_create_alloc_check)
{
    struct shm_region *r = region(1 << 20);
    char err[128];
    ck_assert_int_eq(shm_region_check(r, err, sizeof err), 0);
    ck_assert_uint_ge(shm_region_size(r), 1 << 20);
    size_t used0 = shm_region_used(r);
    unsigned char *a = shm_region_alloc(r, 100, 64);
    unsigned char *b = shm_region_alloc(r, 1, 64);
    unsigned char *c = shm_region_alloc(r, 10, 4096);
    ck_assert(a && b && c);
    ck_assert_uint_eq((uintptr_t)a % 64, 0);
    ck_assert_uint_eq((uintptr_t)c % 4096, 0);
    ck_assert(b >= a + 128);                 /* 100 bytes -> two cache lines */
    ck_assert(c > b);
    ck_assert_uint_gt(shm_region_used(r), used0 + 128);
    /* An alignment below 64 still gives a line of its own. */
    unsigned char *d = shm_region_alloc(r, 8, 8);
    ck_assert_uint_eq((uintptr_t)d % 64, 0);
    ck_assert_ptr_null(shm_region_alloc(r, 8, 48));          /* not a power of two */
    ck_assert_ptr_null(shm_region_alloc(r, 2 << 20, 64));    /* does not fit */
    /* The rest fits exactly, and then nothing more. */
    size_t left = shm_region_size(r) - shm_region_used(r);
    ck_assert_ptr_nonnull(shm_region_alloc(r, left, 64));
    ck_assert_ptr_null(shm_region_alloc(r, 1, 64));
    ck_assert_int_eq(shm_region_check(r, err, sizeof err), 0);
    shm_region_destroy(r);
}
END_TEST

START_TEST(region_check_detects_bad_header)
{
    struct shm_region *r = region(64 << 10);
    char err[128] = "";
    uint64_t *magic = (uint64_t *)r;   /* the header starts with the magic */
    uint64_t saved = *magic;
    *magic ^= 1;
    ck_assert_int_eq(shm_region_check(r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "magic"));
    *magic = saved;
    ck_assert_int_eq(shm_region_check(r, err, sizeof err), 0);
    uint32_t *version = (uint32_t *)((char *)r + 8);
    *version += 1;
    ck_assert_int_eq(shm_region_check(r, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "layout"));
    ck_assert_int_eq(shm_region_check(NULL, err, sizeof err), -1);
    ck_assert_ptr_null(shm_region_create(0, err, sizeof err));
    *version -= 1;
    shm_region_destroy(r);
}
END_TEST

START_TEST(region_is_shared_across_fork)
{
    struct shm_region *r = region(64 << 10);
    _Atomic uint32_t *w = shm_region_alloc(r, sizeof *w, 64);
    atomic_store(w, 1);
    pid_t pid = fork_child();
    if (pid == 0) {
        char err[64];
        _exit(shm_region_check(r, err, sizeof err) == 0 && atomic_load(w) == 1 &&
              (atomic_store(w, 2), 1) ? 0 : 1);
    }
    ck_assert_int_eq(reap(pid), 0);
    ck_assert_uint_eq(atomic_load(w), 2);
    shm_region_destroy(r);
}
END_TEST

/* ---- jobring ----------------------------------------------------------- */

static struct shm_region *jr_region;

static struct shm_jobring *jobring(uint32_t slots)
{
    jr_region = region(shm_jobring_size(slots) + (64 << 10));
    void *m = shm_region_alloc(jr_region, shm_jobring_size(slots), 64);
    ck_assert_ptr_nonnull(m);
    struct shm_jobring *r = shm_jobring_init(m, slots);
    ck_assert_ptr_nonnull(r);
    return r;
}

START_TEST(jobring_init_rejects_bad_sizes)
{
    static alignas(64) unsigned char mem[1 << 20];
    ck_assert_ptr_null(shm_jobring_init(mem, 0));
    ck_assert_ptr_null(shm_jobring_init(mem, 3));
    ck_assert_ptr_null(shm_jobring_init(mem + 8, 4));
    ck_assert_ptr_nonnull(shm_jobring_init(mem, 4));
}
END_TEST

START_TEST(jobring_empty)
{
    struct shm_jobring *r = jobring(8);
    _Atomic uint64_t claim = 0;
    uint64_t v = 77;
    ck_assert_int_eq(shm_jobring_take(r, 1, &claim, &v), -1);
    ck_assert_uint_eq(v, 77);
    ck_assert_uint_eq(claim, 0);
    ck_assert_uint_eq(shm_jobring_depth(r), 0);
    ck_assert_uint_eq(shm_jobring_capacity(r), 8);
    ck_assert_int_eq(shm_jobring_push(r, 0), -1);   /* 0 is not a value */
    ck_assert_int_eq(shm_jobring_take(r, 0, &claim, &v), -1); /* nor 0 an id */
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_full)
{
    struct shm_jobring *r = jobring(8);
    for (uint64_t v = 1; v <= 8; v++)
        ck_assert_int_eq(shm_jobring_push(r, v), 0);
    ck_assert_uint_eq(shm_jobring_depth(r), 8);
    ck_assert_int_eq(shm_jobring_push(r, 9), -1);
    _Atomic uint64_t claim = 0;
    uint64_t v;
    ck_assert_int_eq(shm_jobring_take(r, 1, &claim, &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_uint_eq(atomic_load(&claim), 1);
    ck_assert_int_eq(shm_jobring_push(r, 9), 0);
    ck_assert_int_eq(shm_jobring_push(r, 10), -1);
    ck_assert_uint_eq(shm_jobring_depth(r), 8);
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_fifo_over_many_laps)
{
    struct shm_jobring *r = jobring(8);
    _Atomic uint64_t claim = 0;
    uint64_t next_in = 1, next_out = 1;
    for (int round = 0; round < 5000; round++) {
        int burst = 1 + round % 8;
        for (int i = 0; i < burst; i++)
            if (shm_jobring_push(r, next_in) == 0)
                next_in++;
        int drain = 1 + (round * 7) % 8;
        for (int i = 0; i < drain; i++) {
            uint64_t v;
            if (shm_jobring_take(r, (uint16_t)(1 + i % 3), &claim, &v) < 0)
                break;
            ck_assert_uint_eq(v, next_out);
            ck_assert_uint_eq(atomic_load(&claim), v);
            next_out++;
        }
        ck_assert_uint_eq(shm_jobring_depth(r), next_in - next_out);
    }
    ck_assert_uint_gt(next_out, 8 * 1000);   /* well over a thousand laps */
    shm_region_destroy(jr_region);
}
END_TEST

/* A consumer that died between its CAS on the slot and moving tail: the
 * next consumer must step over it, and recover must give the value back. */
START_TEST(jobring_recover_after_death_mid_take)
{
    struct shm_jobring *r = jobring(4);
    for (uint64_t v = 1; v <= 4; v++)
        ck_assert_int_eq(shm_jobring_push(r, v * 10), 0);
    struct job_slot *s0 = &r->slots[0];
    uint64_t full0 = slot_state(0, SLOT_FULL, 0);
    ck_assert(atomic_compare_exchange_strong(&s0->state, &full0, slot_state(0, SLOT_BUSY, 7)));
    _Atomic uint64_t claim = 0;
    uint64_t v;
    ck_assert_int_eq(shm_jobring_take(r, 2, &claim, &v), 0);
    ck_assert_uint_eq(v, 20);
    ck_assert_int_eq(shm_jobring_take(r, 2, &claim, &v), 0);
    ck_assert_int_eq(shm_jobring_take(r, 2, &claim, &v), 0);
    ck_assert_uint_eq(v, 40);
    /* The dead consumer's slot still blocks the producer at the next lap. */
    ck_assert_int_eq(shm_jobring_push(r, 50), -1);
    uint64_t out[4];
    ck_assert_uint_eq(shm_jobring_recover(r, 9, out, 4), 0);   /* not its slot */
    ck_assert_uint_eq(shm_jobring_recover(r, 7, out, 4), 1);
    ck_assert_uint_eq(out[0], 10);
    ck_assert_uint_eq(shm_jobring_recover(r, 7, out, 4), 0);   /* only once */
    /* Freed: the ring goes round again. */
    for (uint64_t x = 50; x <= 80; x += 10)
        ck_assert_int_eq(shm_jobring_push(r, x), 0);
    for (uint64_t x = 50; x <= 80; x += 10) {
        ck_assert_int_eq(shm_jobring_take(r, 3, &claim, &v), 0);
        ck_assert_uint_eq(v, x);
    }
    shm_region_destroy(jr_region);
}
END_TEST

/* A consumer that died after its release of the slot: the value is in its
 * claim word only, and recover finds nothing. */
START_TEST(jobring_recover_after_death_with_claim)
{
    struct shm_jobring *r = jobring(4);
    ck_assert_int_eq(shm_jobring_push(r, 5), 0);
    _Atomic uint64_t claim = 0;
    uint64_t v, out[2];
    ck_assert_int_eq(shm_jobring_take(r, 4, &claim, &v), 0);
    ck_assert_uint_eq(shm_jobring_recover(r, 4, out, 2), 0);
    ck_assert_uint_eq(atomic_load(&claim), 5);
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_take_wait_times_out)
{
    barrier_mode(_i);
    struct shm_jobring *r = jobring(4);
    _Atomic uint64_t claim = 0;
    uint64_t v;
    int64_t t0 = now_ms();
    ck_assert_int_eq(shm_jobring_take_wait(r, 1, &claim, &v, 60), -1);
    int64_t took = now_ms() - t0;
    ck_assert_int_ge(took, 60);
    ck_assert_int_lt(took, 1000);
    ck_assert_int_eq(shm_jobring_take_wait(r, 1, &claim, &v, 0), -1);
    ck_assert_uint_eq(shm_evc_waiting(&r->ready), 0);
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_barrier_scheme_can_be_forced)
{
    barrier_mode(1);
    struct shm_jobring *r = jobring(4);
    ck_assert_uint_eq(r->ready.asym, 0);
    shm_region_destroy(jr_region);
    barrier_mode(0);
    r = jobring(4);
    ck_assert_uint_le(r->ready.asym, 1);   /* 1 where membarrier is allowed */
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_push_without_sleepers_makes_no_wake)
{
    barrier_mode(_i);
    struct shm_jobring *r = jobring(64);
    uint32_t epoch = atomic_load(&r->ready.epoch);
    for (uint64_t v = 1; v <= 64; v++)
        ck_assert_int_eq(shm_jobring_push(r, v), 0);
    ck_assert_uint_eq(atomic_load(&r->ready.epoch), epoch);
    shm_region_destroy(jr_region);
}
END_TEST

/* A consumer process asleep in take_wait is woken by a push. */
START_TEST(jobring_push_wakes_a_sleeping_process)
{
    barrier_mode(_i);
    struct shm_jobring *r = jobring(4);
    _Atomic uint64_t *claim = shm_region_alloc(jr_region, 64, 64);
    pid_t pid = fork_child();
    if (pid == 0) {
        uint64_t v = 0;
        int rc = shm_jobring_take_wait(r, 1, claim, &v, 10000);
        _exit(rc == 0 && v == 99 ? 0 : 1);
    }
    ck_assert_int_eq(wait_waiting(&r->ready, 1, 5000), 0);   /* asleep */
    int64_t t0 = now_ms();
    ck_assert_int_eq(shm_jobring_push(r, 99), 0);
    ck_assert_int_eq(reap(pid), 0);
    ck_assert_int_lt(now_ms() - t0, 2000);
    ck_assert_uint_eq(atomic_load(claim), 99);
    ck_assert_uint_eq(shm_evc_waiting(&r->ready), 0);
    shm_region_destroy(jr_region);
}
END_TEST

/* A consumer already woken needs no second futex_wake: the count keeps
 * waiters and wakes sent apart (eventcount.h).  Driven by hand, so no
 * timing is involved. */
START_TEST(eventcount_wakes_a_waiter_once)
{
    barrier_mode(_i);
    struct shm_jobring *r = jobring(4);
    struct shm_evc *ev = &r->ready;
    uint32_t e0 = atomic_load(&ev->epoch);
    shm_evc_notify(ev, 1);                       /* nobody waits: nothing */
    ck_assert_uint_eq(atomic_load(&ev->epoch), e0);
    shm_evc_prepare(ev, r->sleeping, 3);
    shm_evc_prepare(ev, r->sleeping, 4);
    ck_assert_uint_eq(shm_evc_waiting(ev), 2);
    shm_evc_notify(ev, 1);                       /* wakes one */
    shm_evc_notify(ev, 1);                       /* wakes the other */
    ck_assert_uint_eq(atomic_load(&ev->epoch), e0 + 2);
    shm_evc_notify(ev, 1);                       /* both already woken */
    shm_evc_notify(ev, UINT32_MAX);
    ck_assert_uint_eq(atomic_load(&ev->epoch), e0 + 2);
    shm_evc_finish(ev, r->sleeping, 3);
    ck_assert_uint_eq(shm_evc_waiting(ev), 1);
    shm_evc_notify(ev, 1);                       /* 4 still has its wake */
    ck_assert_uint_eq(atomic_load(&ev->epoch), e0 + 2);
    shm_evc_finish(ev, r->sleeping, 4);
    shm_evc_finish(ev, r->sleeping, 4);          /* twice: the flag says no */
    ck_assert_uint_eq(shm_evc_waiting(ev), 0);
    ck_assert_uint_eq(atomic_load(&ev->count), 0);
    shm_region_destroy(jr_region);
}
END_TEST

/* A burst of pushes reaches a sleeping consumer process, every value of
 * it.  How many wakes it takes depends on timing (the rule is checked by
 * eventcount_wakes_a_waiter_once); at least one, at most one per push. */
START_TEST(jobring_burst_reaches_a_sleeper)
{
    barrier_mode(_i);
    struct shm_jobring *r = jobring(16);
    _Atomic uint64_t *claim = shm_region_alloc(jr_region, 64, 64);
    pid_t pid = fork_child();
    if (pid == 0) {
        uint64_t v, sum = 0;
        int got = 0;
        while (got < 8 && shm_jobring_take_wait(r, 1, claim, &v, 10000) == 0) {
            sum += v;
            got++;
        }
        _exit(got == 8 && sum == 36 ? 0 : 1);
    }
    ck_assert_int_eq(wait_waiting(&r->ready, 1, 5000), 0);
    uint32_t epoch = atomic_load(&r->ready.epoch);
    int failed = 0;   /* no ck_assert inside the burst: each one is a write() */
    for (uint64_t v = 1; v <= 8; v++)
        failed += shm_jobring_push(r, v) != 0;
    uint32_t wakes = atomic_load(&r->ready.epoch) - epoch;
    ck_assert_int_eq(failed, 0);
    ck_assert_int_eq(reap(pid), 0);
    ck_assert_uint_ge(wakes, 1);
    ck_assert_uint_le(wakes, 8);
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_wake_all_ends_take_wait)
{
    barrier_mode(_i);
    struct shm_jobring *r = jobring(4);
    _Atomic uint64_t *claim = shm_region_alloc(jr_region, 128, 64);
    pid_t pid[2];
    for (int i = 0; i < 2; i++) {
        pid[i] = fork_child();
        if (pid[i] == 0) {
            uint64_t v;
            int rc = shm_jobring_take_wait(r, (uint16_t)(i + 1), &claim[i * 8], &v, 20000);
            _exit(rc == -1 ? 0 : 1);
        }
    }
    ck_assert_int_eq(wait_waiting(&r->ready, 2, 5000), 0);
    int64_t t0 = now_ms();
    shm_jobring_wake_all(r);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(reap(pid[i]), 0);
    ck_assert_int_lt(now_ms() - t0, 2000);
    /* A wake_all before the call does not affect it: it waits again. */
    uint64_t v;
    ck_assert_int_eq(shm_jobring_take_wait(r, 1, &claim[0], &v, 30), -1);
    ck_assert_int_eq(shm_jobring_push(r, 3), 0);
    ck_assert_int_eq(shm_jobring_take_wait(r, 1, &claim[0], &v, 30), 0);
    ck_assert_uint_eq(v, 3);
    shm_region_destroy(jr_region);
}
END_TEST

/* A consumer killed in its sleep leaves its count behind; recover takes it
 * back, so the producer stops paying for wake-ups. */
START_TEST(jobring_recover_forgets_a_dead_sleeper)
{
    barrier_mode(_i);
    struct shm_jobring *r = jobring(4);
    _Atomic uint64_t *claim = shm_region_alloc(jr_region, 64, 64);
    pid_t pid = fork_child();
    if (pid == 0) {
        uint64_t v;
        shm_jobring_take_wait(r, 5, claim, &v, 20000);
        _exit(0);
    }
    ck_assert_int_eq(wait_waiting(&r->ready, 1, 5000), 0);
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert_uint_eq(shm_evc_waiting(&r->ready), 1);
    uint64_t out[1];
    ck_assert_uint_eq(shm_jobring_recover(r, 5, out, 1), 0);
    ck_assert_uint_eq(shm_evc_waiting(&r->ready), 0);
    uint32_t epoch = atomic_load(&r->ready.epoch);
    ck_assert_int_eq(shm_jobring_push(r, 1), 0);
    ck_assert_uint_eq(atomic_load(&r->ready.epoch), epoch);
    shm_region_destroy(jr_region);
}
END_TEST

static Suite *ring_suite(void)
{
    Suite *s = suite_create("ring");
    TCase *tr = tcase_create("region");
    tcase_add_test(tr, region_create_alloc_check);
    tcase_add_test(tr, region_check_detects_bad_header);
    tcase_add_test(tr, region_is_shared_across_fork);
    suite_add_tcase(s, tr);

    TCase *tj = tcase_create("jobring");
    tcase_set_timeout(tj, 30);
    tcase_add_test(tj, jobring_init_rejects_bad_sizes);
    tcase_add_test(tj, jobring_empty);
    tcase_add_test(tj, jobring_full);
    tcase_add_test(tj, jobring_fifo_over_many_laps);
    tcase_add_test(tj, jobring_recover_after_death_mid_take);
    tcase_add_test(tj, jobring_recover_after_death_with_claim);
    tcase_add_test(tj, jobring_barrier_scheme_can_be_forced);
    tcase_add_loop_test(tj, jobring_take_wait_times_out, 0, 2);
    tcase_add_loop_test(tj, jobring_push_without_sleepers_makes_no_wake, 0, 2);
    tcase_add_loop_test(tj, jobring_push_wakes_a_sleeping_process, 0, 2);
    tcase_add_loop_test(tj, eventcount_wakes_a_waiter_once, 0, 2);
    tcase_add_loop_test(tj, jobring_burst_reaches_a_sleeper, 0, 2);
    tcase_add_loop_test(tj, jobring_wake_all_ends_take_wait, 0, 2);
    tcase_add_loop_test(tj, jobring_recover_forgets_a_dead_sleeper, 0, 2);
    suite_add_tcase(s, tj);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ring_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
