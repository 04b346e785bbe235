/* test_ring_reply.c — unit tests of shm/replyring.c: records, the armed
 * eventfd wake-up, producers waiting for space, and the tombstones left
 * for a producer that died mid-write (forged through ring_layout.h). */
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>

#include "ring_fixture.h"

/* ---- replyring --------------------------------------------------------- */

static struct shm_region *rr_region;
static int rr_efd = -1;

static struct shm_replyring *replyring(uint32_t slots)
{
    rr_region = region(shm_replyring_size(slots) + (64 << 10));
    void *m = shm_region_alloc(rr_region, shm_replyring_size(slots), 64);
    rr_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert(m != NULL && rr_efd >= 0);
    struct shm_replyring *r = shm_replyring_init(m, slots, rr_efd);
    ck_assert_ptr_nonnull(r);
    return r;
}

static void replyring_done(void)
{
    close(rr_efd);
    shm_region_destroy(rr_region);
}

/* The eventfd counter, read and reset (0 when nobody wrote). */
static uint64_t efd_count(void)
{
    uint64_t n = 0;
    if (read(rr_efd, &n, sizeof n) != sizeof n)
        return 0;
    return n;
}

static void fill(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(seed * 31 + i * 7);
}

START_TEST(replyring_empty)
{
    struct shm_replyring *r = replyring(8);
    unsigned char buf[SHM_REPLY_REC];
    ck_assert_uint_eq(shm_replyring_pop(r, buf), 0);
    ck_assert_uint_eq(shm_replyring_depth(r), 0);
    ck_assert_uint_eq(shm_replyring_capacity(r), 8);
    ck_assert_int_eq(shm_replyring_arm(r), 1);
    replyring_done();
}
END_TEST

START_TEST(replyring_record_sizes)
{
    struct shm_replyring *r = replyring(8);
    unsigned char in[SHM_REPLY_REC + 1], out[SHM_REPLY_REC];
    fill(in, sizeof in, 1);
    /* 0 would pop as "empty"; 121 does not fit. */
    ck_assert_int_eq(shm_replyring_push(r, 1, in, 0, 0), -1);
    ck_assert_int_eq(shm_replyring_push(r, 1, in, SHM_REPLY_REC + 1, 0), -1);
    ck_assert_int_eq(shm_replyring_push(r, 0, in, 1, 0), -1);   /* id 0 */
    ck_assert_uint_eq(shm_replyring_depth(r), 0);
    const size_t sizes[] = { 1, 2, 55, 56, 57, SHM_REPLY_REC - 1, SHM_REPLY_REC };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fill(in, sizes[i], (unsigned)i);
        ck_assert_int_eq(shm_replyring_push(r, 1, in, sizes[i], 0), 0);
        memset(out, 0xee, sizeof out);
        ck_assert_uint_eq(shm_replyring_pop(r, out), sizes[i]);
        ck_assert_int_eq(memcmp(in, out, sizes[i]), 0);
    }
    ck_assert_uint_eq(shm_replyring_pop(r, out), 0);
    replyring_done();
}
END_TEST

START_TEST(replyring_full_and_wrap)
{
    barrier_mode(_i);
    struct shm_replyring *r = replyring(8);
    unsigned char in[SHM_REPLY_REC], out[SHM_REPLY_REC];
    for (unsigned i = 0; i < 8; i++) {
        fill(in, 40, i);
        ck_assert_int_eq(shm_replyring_push(r, 2, in, 40, 0), 0);
    }
    ck_assert_uint_eq(shm_replyring_depth(r), 8);
    ck_assert_int_eq(shm_replyring_push(r, 2, in, 40, 0), -1);
    int64_t t0 = now_ms();
    ck_assert_int_eq(shm_replyring_push(r, 2, in, 40, 50), -1);
    ck_assert_int_ge(now_ms() - t0, 50);
    ck_assert_uint_eq(shm_evc_waiting(&r->space), 0);
    /* Many laps, lengths varying, contents checked. */
    unsigned next_in = 8, next_out = 0;
    for (int round = 0; round < 3000; round++) {
        for (int i = 0; i < 1 + round % 5; i++) {
            size_t len = 1 + (next_in * 13) % SHM_REPLY_REC;
            fill(in, len, next_in);
            if (shm_replyring_push(r, (uint16_t)(1 + round % 4), in, len, 0) < 0)
                break;
            next_in++;
        }
        for (int i = 0; i < 1 + round % 6; i++) {
            size_t len = shm_replyring_pop(r, out);
            if (len == 0)
                break;
            unsigned char want[SHM_REPLY_REC];
            size_t wlen = next_out < 8 ? 40 : 1 + (next_out * 13) % SHM_REPLY_REC;
            fill(want, wlen, next_out);
            ck_assert_uint_eq(len, wlen);
            ck_assert_int_eq(memcmp(out, want, len), 0);
            next_out++;
        }
    }
    ck_assert_uint_gt(next_out, 8 * 500);
    replyring_done();
}
END_TEST

START_TEST(replyring_arm_and_eventfd)
{
    struct shm_replyring *r = replyring(16);
    unsigned char rec[8] = "record", out[SHM_REPLY_REC];
    /* Not armed: pushes write nothing. */
    ck_assert_int_eq(shm_replyring_push(r, 1, rec, sizeof rec, 0), 0);
    ck_assert_uint_eq(efd_count(), 0);
    /* A record is waiting: arm refuses (drain again) and marks nothing. */
    ck_assert_int_eq(shm_replyring_arm(r), 0);
    ck_assert(!slot_armed(atomic_load(&r->slots[0].state)));
    ck_assert_uint_eq(shm_replyring_pop(r, out), sizeof rec);
    /* Empty: armed, and several pushes make exactly one write. */
    ck_assert_int_eq(shm_replyring_arm(r), 1);
    ck_assert(slot_armed(atomic_load(&r->slots[1].state)));
    ck_assert_int_eq(shm_replyring_arm(r), 1);    /* arming twice is harmless */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(shm_replyring_push(r, (uint16_t)(1 + i), rec, sizeof rec, 0), 0);
    ck_assert_uint_eq(efd_count(), 1);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(shm_replyring_pop(r, out), sizeof rec);
    ck_assert_uint_eq(shm_replyring_pop(r, out), 0);
    /* ack consumes a pending wake-up and tolerates none. */
    ck_assert_int_eq(shm_replyring_arm(r), 1);
    ck_assert_int_eq(shm_replyring_push(r, 1, rec, sizeof rec, 0), 0);
    shm_replyring_ack(r);
    ck_assert_uint_eq(efd_count(), 0);
    shm_replyring_ack(r);
    replyring_done();
}
END_TEST

/* The consumer armed and asleep in poll() is woken by a producer process. */
START_TEST(replyring_push_wakes_an_armed_consumer)
{
    struct shm_replyring *r = replyring(8);
    unsigned char out[SHM_REPLY_REC];
    ck_assert_int_eq(shm_replyring_arm(r), 1);
    pid_t pid = fork_child();
    if (pid == 0) {
        usleep(50000);
        _exit(shm_replyring_push(r, 2, "wake", 5, 0) == 0 ? 0 : 1);
    }
    struct pollfd pfd = { .fd = rr_efd, .events = POLLIN };
    int64_t t0 = now_ms();
    ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
    ck_assert_int_lt(now_ms() - t0, 2000);
    shm_replyring_ack(r);
    ck_assert_uint_eq(shm_replyring_pop(r, out), 5);
    ck_assert_str_eq((char *)out, "wake");
    ck_assert_int_eq(reap(pid), 0);
    replyring_done();
}
END_TEST

/* A producer that died between reserving a slot and publishing it: pop
 * stops there until recover makes it a tombstone, then skips it. */
START_TEST(replyring_tombstone_after_recover)
{
    struct shm_replyring *r = replyring(8);
    unsigned char in[SHM_REPLY_REC], out[SHM_REPLY_REC];
    /* Forge the dead producer 5: slot 0 reserved, head moved past it. */
    uint64_t empty0 = slot_state(0, SLOT_EMPTY, 0);
    ck_assert(atomic_compare_exchange_strong(&r->slots[0].state, &empty0,
                                             slot_state(0, SLOT_BUSY, 5)));
    atomic_store(&r->head, 1);
    memset(r->slots[0].rec, 0xab, 30);   /* half a record */
    for (unsigned i = 0; i < 3; i++) {
        fill(in, 20, i);
        ck_assert_int_eq(shm_replyring_push(r, 2, in, 20, 0), 0);
    }
    ck_assert_uint_eq(shm_replyring_pop(r, out), 0);   /* blocked by slot 0 */
    ck_assert_int_eq(shm_replyring_arm(r), 1);         /* its writer would wake us */
    ck_assert_uint_eq(atomic_load(&r->slots[0].state),
                      slot_state(0, SLOT_BUSY, 5) | SLOT_ARMED);
    shm_replyring_recover(r, 4);                       /* someone else: no change */
    ck_assert_uint_eq(shm_replyring_pop(r, out), 0);
    shm_replyring_recover(r, 5);
    ck_assert_int_eq(shm_replyring_arm(r), 0);         /* a tombstone is work */
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(shm_replyring_pop(r, out), 20);
        fill(in, 20, i);
        ck_assert_int_eq(memcmp(in, out, 20), 0);
    }
    ck_assert_uint_eq(shm_replyring_pop(r, out), 0);
    /* The tombstoned slot is reused on the next lap. */
    for (unsigned i = 0; i < 8; i++)
        ck_assert_int_eq(shm_replyring_push(r, 2, in, 10, 0), 0);
    for (unsigned i = 0; i < 8; i++)
        ck_assert_uint_eq(shm_replyring_pop(r, out), 10);
    replyring_done();
}
END_TEST

/* A producer process waiting for space is woken once the consumer has
 * drained half the ring (not by every pop). */
START_TEST(replyring_full_producer_sleeps_until_pop)
{
    barrier_mode(_i);
    struct shm_replyring *r = replyring(4);
    unsigned char in[16] = "x", out[SHM_REPLY_REC];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(shm_replyring_push(r, 1, in, sizeof in, 0), 0);
    pid_t pid = fork_child();
    if (pid == 0) {
        unsigned char mine[16] = "mine";
        _exit(shm_replyring_push(r, 3, mine, sizeof mine, 10000) == 0 ? 0 : 1);
    }
    ck_assert_int_eq(wait_waiting(&r->space, 1, 5000), 0);
    uint32_t epoch = atomic_load(&r->space.epoch);
    ck_assert_uint_eq(shm_replyring_pop(r, out), sizeof in);
    usleep(20000);
    ck_assert_uint_eq(shm_evc_waiting(&r->space), 1);   /* still asleep */
    ck_assert_uint_eq(atomic_load(&r->space.epoch), epoch); /* no wake made */
    int64_t t0 = now_ms();
    ck_assert_uint_eq(shm_replyring_pop(r, out), sizeof in);
    ck_assert_int_eq(reap(pid), 0);
    ck_assert_int_lt(now_ms() - t0, 2000);
    for (int i = 0; i < 2; i++)
        ck_assert_uint_eq(shm_replyring_pop(r, out), sizeof in);
    ck_assert_uint_eq(shm_replyring_pop(r, out), sizeof in);
    ck_assert_str_eq((char *)out, "mine");
    replyring_done();
}
END_TEST

START_TEST(replyring_recover_forgets_a_dead_waiter)
{
    barrier_mode(_i);
    struct shm_replyring *r = replyring(2);
    unsigned char in[8] = "y";
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(shm_replyring_push(r, 1, in, sizeof in, 0), 0);
    pid_t pid = fork_child();
    if (pid == 0)
        _exit(shm_replyring_push(r, 6, in, sizeof in, 20000));
    ck_assert_int_eq(wait_waiting(&r->space, 1, 5000), 0);
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert_uint_eq(shm_evc_waiting(&r->space), 1);
    shm_replyring_recover(r, 6);
    ck_assert_uint_eq(shm_evc_waiting(&r->space), 0);
    replyring_done();
}
END_TEST

static Suite *reply_suite(void)
{
    Suite *s = suite_create("ring_reply");
    TCase *tp = tcase_create("replyring");
    tcase_set_timeout(tp, 30);
    tcase_add_test(tp, replyring_empty);
    tcase_add_test(tp, replyring_record_sizes);
    tcase_add_loop_test(tp, replyring_full_and_wrap, 0, 2);
    tcase_add_test(tp, replyring_arm_and_eventfd);
    tcase_add_test(tp, replyring_push_wakes_an_armed_consumer);
    tcase_add_test(tp, replyring_tombstone_after_recover);
    tcase_add_loop_test(tp, replyring_full_producer_sleeps_until_pop, 0, 2);
    tcase_add_loop_test(tp, replyring_recover_forgets_a_dead_waiter, 0, 2);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reply_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
