/* test_ring.c — unit tests of shm/shm.c, shm/jobring.c and shm/replyring.c.
 * The states a dead peer leaves behind are forged through ring_layout.h.
 * (The byte arenas are tested in test_ring_arena.c.) */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring_layout.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct shm_region *region(size_t bytes)
{
    char err[128];
    struct shm_region *r = shm_region_create(bytes, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

/* Waits (bounded) until *w reads want. */
static int wait_u32(_Atomic uint32_t *w, uint32_t want, int ms)
{
    int64_t until = now_ms() + ms;
    while (atomic_load(w) != want) {
        if (now_ms() > until)
            return -1;
        usleep(200);
    }
    return 0;
}

static pid_t fork_child(void)
{
    pid_t pid = fork();
    if (pid == 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    return pid;
}

static int reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

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
    struct shm_jobring *r = jobring(4);
    _Atomic uint64_t claim = 0;
    uint64_t v;
    int64_t t0 = now_ms();
    ck_assert_int_eq(shm_jobring_take_wait(r, 1, &claim, &v, 60), -1);
    int64_t took = now_ms() - t0;
    ck_assert_int_ge(took, 60);
    ck_assert_int_lt(took, 1000);
    ck_assert_int_eq(shm_jobring_take_wait(r, 1, &claim, &v, 0), -1);
    ck_assert_uint_eq(atomic_load(&r->ready.waiters), 0);
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_push_without_sleepers_makes_no_wake)
{
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
    struct shm_jobring *r = jobring(4);
    _Atomic uint64_t *claim = shm_region_alloc(jr_region, 64, 64);
    pid_t pid = fork_child();
    if (pid == 0) {
        uint64_t v = 0;
        int rc = shm_jobring_take_wait(r, 1, claim, &v, 10000);
        _exit(rc == 0 && v == 99 ? 0 : 1);
    }
    ck_assert_int_eq(wait_u32(&r->ready.waiters, 1, 5000), 0);   /* asleep */
    int64_t t0 = now_ms();
    ck_assert_int_eq(shm_jobring_push(r, 99), 0);
    ck_assert_int_eq(reap(pid), 0);
    ck_assert_int_lt(now_ms() - t0, 2000);
    ck_assert_uint_eq(atomic_load(claim), 99);
    ck_assert_uint_eq(atomic_load(&r->ready.waiters), 0);
    shm_region_destroy(jr_region);
}
END_TEST

START_TEST(jobring_wake_all_ends_take_wait)
{
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
    ck_assert_int_eq(wait_u32(&r->ready.waiters, 2, 5000), 0);
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
    struct shm_jobring *r = jobring(4);
    _Atomic uint64_t *claim = shm_region_alloc(jr_region, 64, 64);
    pid_t pid = fork_child();
    if (pid == 0) {
        uint64_t v;
        shm_jobring_take_wait(r, 5, claim, &v, 20000);
        _exit(0);
    }
    ck_assert_int_eq(wait_u32(&r->ready.waiters, 1, 5000), 0);
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert_uint_eq(atomic_load(&r->ready.waiters), 1);
    uint64_t out[1];
    ck_assert_uint_eq(shm_jobring_recover(r, 5, out, 1), 0);
    ck_assert_uint_eq(atomic_load(&r->ready.waiters), 0);
    uint32_t epoch = atomic_load(&r->ready.epoch);
    ck_assert_int_eq(shm_jobring_push(r, 1), 0);
    ck_assert_uint_eq(atomic_load(&r->ready.epoch), epoch);
    shm_region_destroy(jr_region);
}
END_TEST

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
    ck_assert_uint_eq(atomic_load(&r->space.waiters), 0);
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
    struct shm_replyring *r = replyring(4);
    unsigned char in[16] = "x", out[SHM_REPLY_REC];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(shm_replyring_push(r, 1, in, sizeof in, 0), 0);
    pid_t pid = fork_child();
    if (pid == 0) {
        unsigned char mine[16] = "mine";
        _exit(shm_replyring_push(r, 3, mine, sizeof mine, 10000) == 0 ? 0 : 1);
    }
    ck_assert_int_eq(wait_u32(&r->space.waiters, 1, 5000), 0);
    uint32_t epoch = atomic_load(&r->space.epoch);
    ck_assert_uint_eq(shm_replyring_pop(r, out), sizeof in);
    usleep(20000);
    ck_assert_uint_eq(atomic_load(&r->space.waiters), 1);   /* still asleep */
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
    struct shm_replyring *r = replyring(2);
    unsigned char in[8] = "y";
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(shm_replyring_push(r, 1, in, sizeof in, 0), 0);
    pid_t pid = fork_child();
    if (pid == 0)
        _exit(shm_replyring_push(r, 6, in, sizeof in, 20000));
    ck_assert_int_eq(wait_u32(&r->space.waiters, 1, 5000), 0);
    kill(pid, SIGKILL);
    ck_assert_int_eq(reap(pid), 128 + SIGKILL);
    ck_assert_uint_eq(atomic_load(&r->space.waiters), 1);
    shm_replyring_recover(r, 6);
    ck_assert_uint_eq(atomic_load(&r->space.waiters), 0);
    replyring_done();
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
    tcase_add_test(tj, jobring_take_wait_times_out);
    tcase_add_test(tj, jobring_push_without_sleepers_makes_no_wake);
    tcase_add_test(tj, jobring_push_wakes_a_sleeping_process);
    tcase_add_test(tj, jobring_wake_all_ends_take_wait);
    tcase_add_test(tj, jobring_recover_forgets_a_dead_sleeper);
    suite_add_tcase(s, tj);

    TCase *tp = tcase_create("replyring");
    tcase_set_timeout(tp, 30);
    tcase_add_test(tp, replyring_empty);
    tcase_add_test(tp, replyring_record_sizes);
    tcase_add_test(tp, replyring_full_and_wrap);
    tcase_add_test(tp, replyring_arm_and_eventfd);
    tcase_add_test(tp, replyring_push_wakes_an_armed_consumer);
    tcase_add_test(tp, replyring_tombstone_after_recover);
    tcase_add_test(tp, replyring_full_producer_sleeps_until_pop);
    tcase_add_test(tp, replyring_recover_forgets_a_dead_waiter);
    suite_add_tcase(s, tp);
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
