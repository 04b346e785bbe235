/* test_ring_evc.c — lost wake-ups in the eventcount (shm/eventcount.h), as
 * jobring consumers meet them.
 *
 * A sleeper thread takes with take_wait and a long timeout (as a worker's
 * idle poll).  The test thread is the producer and a second consumer: it
 * pushes while the sleeper is in prepare, counted as a waiter but not yet
 * through, and takes the value back itself at once, so the sleeper's
 * re-check finds the ring empty.  The sleeper must then either not sleep
 * or be woken by the next push.
 *
 * Each round ends with a probe: the test stops taking, lets the sleeper
 * fall asleep, and pushes one value that only the sleeper can take.  A
 * probe still in the ring STALL_MS later is a lost wake-up: the sleeper
 * would lie there until its timeout with a value waiting.
 *
 * How the push lands inside prepare.  With the asymmetric barrier, prepare
 * calls membarrier through syscall(); this executable defines syscall(),
 * which the library's calls reach first, and it holds the sleeper just
 * after its membarrier returns until the test has pushed and taken back.
 * Before the fix that was between counting the waiter and reading the
 * epoch: every held push lost the sleeper's wake-up.  With the symmetric
 * barrier there is no call to hold it in, and the test only races: it
 * pushes as soon as it sees the sleeper counted.  That lost a wake-up in
 * about one round in three hundred before the fix (on 2 CPUs).
 *
 * Rounds are bounded in number and in time.  RING_EVC_ROUNDS overrides the
 * number of rounds. */
#include <dlfcn.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "ring_fixture.h"

#define SLEEPER_ID        1
#define STEALER_ID        2    /* the test thread */
#define SLEEP_TIMEOUT_MS  2000     /* the sleeper's take_wait timeout */
#define STALL_MS          200      /* a probe waiting this long is a stall */
#define RACE_PUSHES       50       /* pushes per round, at most */
#define DEFAULT_ROUNDS    200
#define BUDGET_S          15       /* per barrier mode, stalls included */

struct evc_race {
    struct shm_jobring *ring;
    alignas(64) _Atomic uint32_t stop;
    _Atomic uint32_t arm;            /* test -> syscall(): hold the sleeper */
    _Atomic uint32_t held;           /* syscall() holds the sleeper */
    _Atomic uint32_t release;        /* test -> syscall(): let it go */
    alignas(64) _Atomic uint64_t sleeper_last;   /* last value it took */
    _Atomic uint64_t sleeper_takes;
    alignas(64) _Atomic uint64_t claim[3][8];    /* [id][0], own line */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct evc_race *holding;
static _Thread_local int is_sleeper;

/* Holds the calling thread, if it is the sleeper and the test armed the
 * hold, until the test releases it (bounded). */
static void hold_here(void)
{
    struct evc_race *e = holding;
    if (e == NULL || !is_sleeper || !atomic_load(&e->arm))
        return;
    atomic_store(&e->held, 1);
    int64_t until = now_ns() + 20000000;
    while (!atomic_load(&e->release) && now_ns() < until)
        sched_yield();   /* the test thread may be on this CPU */
    atomic_store(&e->release, 0);
    atomic_store(&e->held, 0);
}

/* The library's syscall() calls come here first (this executable defines
 * the symbol); everything goes on to the C library's, and a membarrier
 * made by the sleeper may then be held. */
long syscall(long nr, ...)
{
    /* Atomic: the first calls may come from two threads at once. */
    static _Atomic(void *) found;
    void *f = atomic_load_explicit(&found, memory_order_acquire);
    if (f == NULL) {
        f = dlsym(RTLD_NEXT, "syscall");
        atomic_store_explicit(&found, f, memory_order_release);
    }
    long (*next)(long, ...) = (long (*)(long, ...))f;
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);   /* as the C library's: six registers */
    va_end(ap);
    long rc = next(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (nr == SYS_membarrier && a[0] == MEMBARRIER_CMD_GLOBAL_EXPEDITED) {
        int saved = errno;
        hold_here();
        errno = saved;
    }
    return rc;
}

static void *sleeper(void *p)
{
    struct evc_race *e = p;
    _Atomic uint64_t *claim = &e->claim[SLEEPER_ID][0];
    is_sleeper = 1;
    while (!atomic_load(&e->stop)) {
        uint64_t v;
        if (shm_jobring_take_wait(e->ring, SLEEPER_ID, claim, &v, SLEEP_TIMEOUT_MS) < 0)
            continue;
        atomic_fetch_add(&e->sleeper_takes, 1);
        atomic_store(&e->sleeper_last, v);
        atomic_store(claim, 0);
    }
    return NULL;
}

/* Waits (bounded) until the ring is empty.  0, or -1 on timeout. */
static int wait_empty(struct shm_jobring *r, int ms)
{
    int64_t until = now_ms() + ms;
    while (shm_jobring_depth(r) != 0) {
        if (now_ms() > until)
            return -1;
        sched_yield();
    }
    return 0;
}

/* Polls (bounded, without sleeping) until the count word of ev is c
 * (waiters | wakes << 32).  0, or -1 on timeout. */
static int wait_count(struct shm_evc *ev, uint64_t c, int ms)
{
    int64_t until = now_ns() + (int64_t)ms * 1000000;
    while (atomic_load_explicit(&ev->count, memory_order_relaxed) != c)
        if (now_ns() > until)
            return -1;
    return 0;
}

/* Waits (bounded, yielding: the sleeper may be on this CPU) until *f is
 * v.  0, or -1 on timeout. */
static int wait_flag(_Atomic uint32_t *f, uint32_t v, int ms)
{
    int64_t until = now_ns() + (int64_t)ms * 1000000;
    while (atomic_load(f) != v) {
        if (now_ns() > until)
            return -1;
        sched_yield();
    }
    return 0;
}

static unsigned rounds_wanted(void)
{
    const char *s = getenv("RING_EVC_ROUNDS");
    if (s == NULL || *s == '\0')
        return DEFAULT_ROUNDS;
    int n = atoi(s);
    return n > 0 ? (unsigned)n : DEFAULT_ROUNDS;
}

/* A value pushed while a consumer sleeps reaches it, however pushes race
 * the consumer's way into its sleep and other consumers take values from
 * under it. */
START_TEST(jobring_sleeper_is_never_left_asleep_by_a_stolen_wake)
{
    barrier_mode(_i);
    struct shm_region *reg = region(shm_jobring_size(64) + (1 << 20));
    struct evc_race *e = shm_region_alloc(reg, sizeof *e, 64);
    void *rm = shm_region_alloc(reg, shm_jobring_size(64), 64);
    ck_assert(e != NULL && rm != NULL);
    memset(e, 0, sizeof *e);
    e->ring = shm_jobring_init(rm, 64);
    ck_assert_ptr_nonnull(e->ring);
    struct shm_evc *ev = &e->ring->ready;
    _Atomic uint64_t *claim = &e->claim[STEALER_ID][0];
    holding = e;
    uint32_t hold = ev->asym;   /* see the top of the file */
    pthread_t ts;
    ck_assert_int_eq(pthread_create(&ts, NULL, sleeper, e), 0);

    unsigned want = rounds_wanted(), rounds = 0, stalls = 0, not_asleep = 0;
    uint64_t value = 0, stolen = 0, held = 0;
    int64_t worst_ns = 0, budget = now_ns() + (int64_t)BUDGET_S * 1000000000;
    while (rounds < want && now_ns() < budget) {
        /* The race.  The sleeper is asleep, or about to be. */
        atomic_store(&e->arm, hold);
        for (int i = 0; i < RACE_PUSHES; i++) {
            if (hold && i > 0) {
                /* Woken by the last push, finding nothing, it goes round
                 * and is held in prepare.  If it does not come, the last
                 * push did not wake it: go and see (the probe). */
                if (wait_flag(&e->held, 1, 20) < 0)
                    break;
            } else if (wait_count(ev, 1, 2) < 0) {
                /* Push when it is counted and has no wake credited: asleep,
                 * or (after the first push) woken by the last push and
                 * counted again on its way back.  If that does not come,
                 * the last push did not wake it: go and see. */
                break;
            }
            ck_assert_int_eq(shm_jobring_push(e->ring, ++value), 0);
            uint64_t v;
            if (shm_jobring_take(e->ring, STEALER_ID, claim, &v) == 0) {
                stolen++;
                atomic_store(claim, 0);
            }
            if (hold && i > 0) {
                held++;
                atomic_store(&e->release, 1);
                wait_flag(&e->held, 0, 20);
            }
        }
        atomic_store(&e->arm, 0);
        atomic_store(&e->release, 1);   /* should it be held still */
        wait_flag(&e->held, 0, 20);
        atomic_store(&e->release, 0);
        /* The probe: only the sleeper takes it, once asleep. */
        if (wait_empty(e->ring, 1000) < 0 || wait_waiting(ev, 1, 1000) < 0) {
            not_asleep++;   /* a value left over from the race, or no sleeper */
            shm_jobring_wake_all(e->ring);
            wait_empty(e->ring, 1000);
            continue;
        }
        usleep(1000);   /* from counted to asleep in the futex */
        uint64_t probe = ++value;
        int64_t t0 = now_ns();
        ck_assert_int_eq(shm_jobring_push(e->ring, probe), 0);
        int64_t stall_at = t0 + (int64_t)STALL_MS * 1000000;
        while (atomic_load(&e->sleeper_last) != probe && now_ns() < stall_at)
            usleep(50);
        int64_t took = now_ns() - t0;
        rounds++;
        if (atomic_load(&e->sleeper_last) != probe) {
            stalls++;
            /* Unstick the sleeper (wake_all marks every waiter woken and
             * bumps the epoch) so that the next round starts clean. */
            shm_jobring_wake_all(e->ring);
            int64_t until = now_ms() + 5000;
            while (atomic_load(&e->sleeper_last) != probe && now_ms() < until)
                usleep(100);
            ck_assert_uint_eq(atomic_load(&e->sleeper_last), probe);
        } else if (took > worst_ns) {
            worst_ns = took;
        }
    }
    atomic_store(&e->stop, 1);
    shm_jobring_wake_all(e->ring);
    ck_assert_int_eq(pthread_join(ts, NULL), 0);
    printf("evc race (%s barriers): %u rounds, %u stalled (probe still in the ring "
           "after %d ms, sleeper asleep), slowest probe otherwise %.0f us; "
           "%llu pushes (%llu with the sleeper held), %llu taken back by the "
           "test, %llu by the sleeper; %u rounds without a probe\n",
           ev->asym ? "asymmetric" : "symmetric", rounds, stalls, STALL_MS,
           worst_ns / 1e3, (unsigned long long)value, (unsigned long long)held,
           (unsigned long long)stolen,
           (unsigned long long)atomic_load(&e->sleeper_takes), not_asleep);
    fflush(stdout);
    ck_assert_uint_eq(stalls, 0);
    ck_assert_uint_eq(not_asleep, 0);
    ck_assert_uint_gt(rounds, 0);
    ck_assert_uint_eq(shm_evc_waiting(ev), 0);
    shm_region_destroy(reg);
}
END_TEST

static Suite *evc_suite(void)
{
    Suite *s = suite_create("ring_evc");
    TCase *tc = tcase_create("evc");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, jobring_sleeper_is_never_left_asleep_by_a_stolen_wake, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(evc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
