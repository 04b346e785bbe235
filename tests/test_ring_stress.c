/* test_ring_stress.c — the rings between real processes, as wsjobd uses
 * them: forked workers sharing one anonymous MAP_SHARED region, some of
 * them killed with SIGKILL mid-stream.
 *
 * RING_STRESS_MSGS sets the message count of the two throughput workloads
 * (default 5,000,000 each); each runs again with the symmetric barrier
 * scheme forced (eventcount.h), on a fifth of the count. */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring_layout.h"
#include "ring_workload.h"

#define DEFAULT_MSGS 5000000u

/* ---- child processes --------------------------------------------------- */

typedef void (*child_fn)(void *arg, uint16_t id);

static pid_t spawn(child_fn fn, void *arg, uint16_t id)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* A child outliving a failed or timed-out test would spin on. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fn(arg, id);
    _exit(0);
}

/* Waits for pid up to ms; kills it if it is still there.  Its exit status,
 * or -1 when it had to be killed. */
static int reap(pid_t pid, int ms)
{
    int status;
    int64_t until = wl_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        pid_t rc = waitpid(pid, &status, WNOHANG);
        if (rc == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (wl_now_ns() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(1000);
    }
}

static void kill_and_reap(pid_t pid)
{
    int status;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

static struct shm_region *region(size_t bytes)
{
    char err[128];
    struct shm_region *r = shm_region_create(bytes, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

/* ---- (a) jobring: 1 producer -> 4 consumer processes ------------------ */

static void jobs_child(void *arg, uint16_t id)
{
    wl_jobs_consume(arg, id);
}

START_TEST(jobs_one_producer_four_consumer_processes)
{
    wl_barrier_mode(_i);
    uint64_t n = wl_message_count(DEFAULT_MSGS) / (_i ? 5 : 1);
    struct shm_region *reg = region(wl_jobs_region_bytes());
    struct wl_jobs *j = wl_jobs_setup(reg);
    ck_assert_ptr_nonnull(j);
    pid_t pid[WL_CONSUMERS];
    for (uint16_t i = 0; i < WL_CONSUMERS; i++) {
        pid[i] = spawn(jobs_child, j, (uint16_t)(i + 1));
        ck_assert_int_gt(pid[i], 0);
    }
    struct wl_jobs_report rep;
    int64_t t0 = wl_now_ns();
    wl_jobs_produce(j, n, &rep);
    double s = (double)(wl_now_ns() - t0) / 1e9;
    atomic_store(&j->stop, 1);
    shm_jobring_wake_all(j->ring);
    for (int i = 0; i < WL_CONSUMERS; i++)
        ck_assert_int_eq(reap(pid[i], 10000), 0);
    printf("jobs/processes%s: %llu payloads in %.2f s (%.0f/s); taken %llu %llu %llu %llu\n",
           _i ? " (symmetric)" : "", (unsigned long long)n, s, n / s,
           (unsigned long long)j->taken[1][0], (unsigned long long)j->taken[2][0],
           (unsigned long long)j->taken[3][0], (unsigned long long)j->taken[4][0]);
    ck_assert_int_eq(rep.timed_out, 0);
    ck_assert_uint_eq(rep.sent, n);
    ck_assert_uint_eq(rep.answered, n);
    ck_assert_uint_eq(rep.duplicates, 0);
    ck_assert_uint_eq(rep.missing, 0);
    ck_assert_uint_eq(rep.bad_answers, 0);
    ck_assert_uint_eq(rep.lost_wakeups, 0);
    ck_assert_uint_eq(atomic_load(&j->bad_sum), 0);
    ck_assert_uint_eq(atomic_load(&j->bad_push), 0);
    ck_assert_uint_eq(shm_jobring_depth(j->ring), 0);
    shm_region_destroy(reg);
}
END_TEST

/* ---- (b) replyring: 4 producer processes -> 1 consumer ---------------- */

static uint64_t replies_per_producer;

static void replies_child(void *arg, uint16_t id)
{
    wl_replies_produce(arg, id, replies_per_producer);
}

START_TEST(replies_four_producer_processes_one_consumer)
{
    wl_barrier_mode(_i);
    uint64_t n = wl_message_count(DEFAULT_MSGS) / (_i ? 5 : 1);
    replies_per_producer = (n + WL_PRODUCERS - 1) / WL_PRODUCERS;
    uint64_t total = replies_per_producer * WL_PRODUCERS;
    struct shm_region *reg = region(wl_replies_region_bytes());
    struct wl_replies *w = wl_replies_setup(reg);
    ck_assert_ptr_nonnull(w);
    pid_t pid[WL_PRODUCERS];
    int64_t t0 = wl_now_ns();
    for (uint16_t i = 0; i < WL_PRODUCERS; i++) {
        pid[i] = spawn(replies_child, w, (uint16_t)(i + 1));
        ck_assert_int_gt(pid[i], 0);
    }
    struct wl_replies_report rep;
    wl_replies_consume(w, WL_PRODUCERS, total, &rep);
    double s = (double)(wl_now_ns() - t0) / 1e9;
    for (int i = 0; i < WL_PRODUCERS; i++)
        ck_assert_int_eq(reap(pid[i], 10000), 0);
    printf("replies/processes%s: %llu records in %.2f s (%.0f/s)\n",
           _i ? " (symmetric)" : "", (unsigned long long)total, s, total / s);
    ck_assert_int_eq(rep.timed_out, 0);
    ck_assert_uint_eq(rep.received, total);
    ck_assert_uint_eq(rep.out_of_order, 0);
    ck_assert_uint_eq(rep.bad_sum, 0);
    ck_assert_uint_eq(rep.bad_len, 0);
    ck_assert_uint_eq(rep.lost_wakeups, 0);
    ck_assert_uint_eq(atomic_load(&w->push_failed), 0);
    unsigned char buf[SHM_REPLY_REC];
    ck_assert_uint_eq(shm_replyring_pop(w->ring, buf), 0);
    shm_region_destroy(reg);
}
END_TEST

/* ---- (c) consumers killed mid-stream ---------------------------------- */

#define KILL_RING_SLOTS 64
#define KILL_MAX_VALUES (8u << 20)
#define KILL_ROUNDS     60
#define VICTIM          3   /* consumer ids 1 and 2 live throughout */

struct kill_ctx {
    struct shm_jobring *ring;
    _Atomic uint8_t *done;                 /* done[v - 1]: times v was finished */
    alignas(64) _Atomic uint32_t stop;
    alignas(64) _Atomic uint32_t started;  /* victim incarnation that took a value */
    _Atomic uint32_t busy;                 /* victim incarnation holding one now */
    alignas(64) _Atomic uint32_t holding;  /* victim stalled with a claim */
    alignas(64) _Atomic uint64_t claim[4][8];
};

static struct kill_ctx *kill_setup(struct shm_region *reg, uint32_t values)
{
    struct kill_ctx *k = shm_region_alloc(reg, sizeof *k, 64);
    void *rm = shm_region_alloc(reg, shm_jobring_size(KILL_RING_SLOTS), 64);
    k->done = shm_region_alloc(reg, values, 64);
    ck_assert(k != NULL && rm != NULL && k->done != NULL);
    k->ring = shm_jobring_init(rm, KILL_RING_SLOTS);
    ck_assert_ptr_nonnull(k->ring);
    return k;
}

static uint32_t incarnation;   /* set by the parent before each fork */

/* Finishes values until stopped; the victim announces its first take. */
static void kill_consumer(void *arg, uint16_t id)
{
    struct kill_ctx *k = arg;
    _Atomic uint64_t *claim = &k->claim[id][0];
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    while (wl_now_ns() < deadline) {
        uint64_t v;
        if (shm_jobring_take_wait(k->ring, id, claim, &v, 100) < 0) {
            if (atomic_load(&k->stop))
                return;
            continue;
        }
        if (id == VICTIM) {
            atomic_store(&k->started, incarnation);
            atomic_store(&k->busy, incarnation);
        }
        /* Work per value: the live consumers' keeps the ring from running
         * dry, the victim's longer one means it is mostly caught holding an
         * unfinished value when it is killed. */
        int64_t busy_until = wl_now_ns() + (id == VICTIM ? 20000 : 1000);
        while (wl_now_ns() < busy_until)
            ;
        atomic_fetch_add(&k->done[v - 1], 1);
        atomic_store_explicit(claim, 0, memory_order_release);
        if (id == VICTIM)
            atomic_store(&k->busy, 0);
    }
}

/* Takes one value and stalls holding it. */
static void stalling_consumer(void *arg, uint16_t id)
{
    struct kill_ctx *k = arg;
    uint64_t v;
    int64_t deadline = wl_now_ns() + 10 * 1000000000LL;
    while (shm_jobring_take(k->ring, id, &k->claim[id][0], &v) < 0 && wl_now_ns() < deadline)
        usleep(100);
    atomic_store(&k->holding, 1);
    while (wl_now_ns() < deadline)
        usleep(1000);   /* until killed */
}

static int wait_flag(_Atomic uint32_t *flag, uint32_t want, int ms)
{
    int64_t until = wl_now_ns() + (int64_t)ms * 1000000;
    while (atomic_load(flag) != want)
        if (wl_now_ns() > until)
            return -1;
    return 0;
}

START_TEST(jobring_consumer_killed_while_holding_a_claim)
{
    struct shm_region *reg = region(4 << 20);
    struct kill_ctx *k = kill_setup(reg, 100);
    for (uint64_t v = 1; v <= 10; v++)
        ck_assert_int_eq(shm_jobring_push(k->ring, v), 0);
    pid_t victim = spawn(stalling_consumer, k, VICTIM);
    ck_assert_int_eq(wait_flag(&k->holding, 1, 5000), 0);
    kill_and_reap(victim);
    /* Its slot is already free; the value is in its claim word alone. */
    uint64_t out[4];
    ck_assert_uint_eq(shm_jobring_recover(k->ring, VICTIM, out, 4), 0);
    ck_assert_uint_eq(atomic_load(&k->claim[VICTIM][0]), 1);
    /* The ring flows on to a live consumer: 2..10, in order. */
    for (uint64_t v = 2; v <= 10; v++) {
        uint64_t got;
        ck_assert_int_eq(shm_jobring_take(k->ring, 1, &k->claim[1][0], &got), 0);
        ck_assert_uint_eq(got, v);
    }
    shm_region_destroy(reg);
}
END_TEST

struct kill_stats {
    unsigned from_slot, from_claim, finished_unacked, repushed;
};

/* After the victim died: what it held goes back into the stream unless it
 * was finished.  Returns the number of distinct values it held. */
static unsigned reclaim(struct kill_ctx *k, uint64_t *repush, size_t *nrepush,
                        struct kill_stats *st)
{
    uint64_t held[4];
    size_t n = shm_jobring_recover(k->ring, VICTIM, held, 4);
    st->from_slot += (unsigned)n;
    uint64_t c = atomic_exchange(&k->claim[VICTIM][0], 0);
    if (c != 0 && !(n == 1 && held[0] == c)) {
        held[n++] = c;
        st->from_claim++;
    }
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&k->done[held[i] - 1]) == 0) {
            repush[(*nrepush)++] = held[i];
            st->repushed++;
        } else {
            st->finished_unacked++;   /* died after finishing, before clearing */
        }
    }
    return (unsigned)n;
}

/* Three kills in four land within 10 us of the victim taking a value (it
 * works 20 us on each), so most catch it holding one; the rest land at any
 * moment up to 0.5 ms, asleep or between values. */
static int64_t pick_kill_time(struct kill_ctx *k, uint64_t *rng)
{
    uint64_t x = wl_rand(rng);
    if (x % 4 != 0) {
        int64_t until = wl_now_ns() + 200000000;
        while (atomic_load(&k->busy) != incarnation && wl_now_ns() < until)
            ;
        return wl_now_ns() + (int64_t)(x >> 8) % 10000;
    }
    return wl_now_ns() + (int64_t)(x >> 8) % 500000;
}

START_TEST(jobring_consumers_killed_at_random_moments)
{
    uint32_t min_values = (uint32_t)wl_message_count(DEFAULT_MSGS) / 10;
    if (min_values > 500000)
        min_values = 500000;
    struct shm_region *reg = region((size_t)KILL_MAX_VALUES + (4 << 20));
    struct kill_ctx *k = kill_setup(reg, KILL_MAX_VALUES);
    pid_t live[2];
    for (uint16_t i = 0; i < 2; i++)
        live[i] = spawn(kill_consumer, k, (uint16_t)(i + 1));
    incarnation = 1;
    pid_t victim = spawn(kill_consumer, k, VICTIM);
    uint64_t repush[64];
    size_t nrepush = 0;
    uint64_t next = 1;
    unsigned kills = 0, most_held = 0;
    struct kill_stats st = { 0 };
    uint64_t rng = 42;
    int64_t kill_at = -1;
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    while (kills < KILL_ROUNDS || next <= min_values || nrepush > 0) {
        ck_assert_msg(wl_now_ns() < deadline, "stuck after %u kills", kills);
        while (nrepush > 0 && shm_jobring_push(k->ring, repush[nrepush - 1]) == 0)
            nrepush--;
        while (next < KILL_MAX_VALUES && shm_jobring_push(k->ring, next) == 0)
            next++;
        if (kills < KILL_ROUNDS) {
            if (kill_at < 0 && atomic_load(&k->started) == incarnation)
                kill_at = pick_kill_time(k, &rng);
            if (kill_at >= 0 && wl_now_ns() >= kill_at) {
                kill_and_reap(victim);
                unsigned held = reclaim(k, repush, &nrepush, &st);
                most_held = held > most_held ? held : most_held;
                kills++;
                kill_at = -1;
                incarnation++;
                if (kills < KILL_ROUNDS)
                    victim = spawn(kill_consumer, k, VICTIM);
            }
        }
        sched_yield();
    }
    ck_assert_uint_lt(next, KILL_MAX_VALUES);
    atomic_store(&k->stop, 1);
    shm_jobring_wake_all(k->ring);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(reap(live[i], 10000), 0);
    printf("jobring kills: %u kills over %llu values; held in slot %u, in claim %u, "
           "finished but unacked %u, re-pushed %u\n", kills, (unsigned long long)(next - 1),
           st.from_slot, st.from_claim, st.finished_unacked, st.repushed);
    /* One job at a time: a dead consumer held at most one value; and the
     * kills did catch it holding some. */
    ck_assert_uint_le(most_held, 1);
    ck_assert_uint_gt(st.from_slot + st.from_claim, 0);
    uint64_t wrong = 0, first_wrong = 0;
    for (uint64_t v = 1; v < next; v++)
        if (atomic_load(&k->done[v - 1]) != 1 && wrong++ == 0)
            first_wrong = v;
    ck_assert_msg(wrong == 0, "%llu values not finished exactly once (first %llu: %u)",
                  (unsigned long long)wrong, (unsigned long long)first_wrong,
                  first_wrong ? atomic_load(&k->done[first_wrong - 1]) : 0);
    ck_assert_uint_eq(shm_jobring_depth(k->ring), 0);
    shm_region_destroy(reg);
}
END_TEST

/* ---- (c) reply producers killed mid-stream ----------------------------- */

#define RKILL_SLOTS 16
#define RKILL_ROUNDS 60
#define RKILL_VICTIM 3   /* producers 1 and 2 live throughout */

struct rkill_ctx {
    struct shm_replyring *ring;
    int efd;
    uint64_t live_count;
    alignas(64) _Atomic uint32_t started;   /* victim incarnation that pushed */
};

/* Victim records carry their incarnation in `pad`, so each incarnation's
 * stream can be checked on its own. */
static void rkill_producer(void *arg, uint16_t id)
{
    struct rkill_ctx *k = arg;
    uint64_t rng = 7 + id + incarnation;
    uint64_t count = id == RKILL_VICTIM ? UINT64_MAX : k->live_count;
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    for (uint64_t seq = 0; seq < count && wl_now_ns() < deadline; seq++) {
        struct wl_record rec;
        size_t len = wl_record_fill(&rec, id, seq, &rng);
        rec.pad = id == RKILL_VICTIM ? incarnation : 0;
        if (shm_replyring_push(k->ring, id, &rec, len, 20000) < 0)
            _exit(3);
        if (id == RKILL_VICTIM && seq == 0)
            atomic_store(&k->started, incarnation);
    }
}

struct rkill_check {
    uint64_t next[3];        /* live producers 1, 2 */
    uint32_t incarnation;    /* victim incarnation last seen */
    uint64_t victim_next;
    uint64_t received, bad;
};

static void rkill_check(struct rkill_check *c, const unsigned char *buf, size_t len)
{
    struct wl_record rec;
    memcpy(&rec, buf, len < sizeof rec ? len : sizeof rec);
    c->received++;
    if (len < 24 || rec.len != len || wl_sum(rec.data, len - 24) != rec.sum) {
        c->bad++;
        return;
    }
    if (rec.producer == RKILL_VICTIM) {
        /* A new incarnation starts at 0; the old one's records all came
         * before it, each a contiguous prefix. */
        if (rec.pad != c->incarnation) {
            if (rec.pad < c->incarnation || rec.seq != 0)
                c->bad++;
            c->incarnation = rec.pad;
            c->victim_next = 0;
        }
        if (rec.seq != c->victim_next)
            c->bad++;
        c->victim_next = rec.seq + 1;
        return;
    }
    if (rec.producer < 1 || rec.producer > 2 || rec.seq != c->next[rec.producer])
        c->bad++;
    else
        c->next[rec.producer]++;
}

static void rkill_drain(struct rkill_ctx *k, struct rkill_check *c)
{
    unsigned char buf[SHM_REPLY_REC];
    size_t len;
    while ((len = shm_replyring_pop(k->ring, buf)) > 0)
        rkill_check(c, buf, len);
}

START_TEST(replyring_producers_killed_at_random_moments)
{
    struct shm_region *reg = region(4 << 20);
    struct rkill_ctx *k = shm_region_alloc(reg, sizeof *k, 64);
    void *rm = shm_region_alloc(reg, shm_replyring_size(RKILL_SLOTS), 64);
    ck_assert(k != NULL && rm != NULL);
    k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    k->ring = shm_replyring_init(rm, RKILL_SLOTS, k->efd);
    k->live_count = wl_message_count(DEFAULT_MSGS) / 20;
    if (k->live_count > 200000)
        k->live_count = 200000;
    pid_t live[2];
    for (uint16_t i = 0; i < 2; i++)
        live[i] = spawn(rkill_producer, k, (uint16_t)(i + 1));
    incarnation = 1;
    pid_t victim = spawn(rkill_producer, k, RKILL_VICTIM);
    struct rkill_check c = { .incarnation = 0 };
    unsigned kills = 0;
    uint64_t rng = 99;
    int64_t kill_at = -1;
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    while (kills < RKILL_ROUNDS || c.next[1] < k->live_count || c.next[2] < k->live_count) {
        ck_assert_msg(wl_now_ns() < deadline, "stuck after %u kills: %llu %llu", kills,
                      (unsigned long long)c.next[1], (unsigned long long)c.next[2]);
        rkill_drain(k, &c);
        if (kills < RKILL_ROUNDS) {
            if (kill_at < 0 && atomic_load(&k->started) == incarnation)
                kill_at = wl_now_ns() + (int64_t)(wl_rand(&rng) % 500000);
            if (kill_at >= 0 && wl_now_ns() >= kill_at) {
                kill_and_reap(victim);
                shm_replyring_recover(k->ring, RKILL_VICTIM);
                kills++;
                kill_at = -1;
                incarnation++;
                if (kills < RKILL_ROUNDS)
                    victim = spawn(rkill_producer, k, RKILL_VICTIM);
                continue;
            }
        }
        wl_sleep_on_replies(k->ring, k->efd, 1);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(reap(live[i], 10000), 0);
    rkill_drain(k, &c);
    struct shm_replyring *r = k->ring;
    printf("replyring kills: %u kills, %llu records, space waiters left %u\n", kills,
           (unsigned long long)c.received, shm_evc_waiting(&r->space));
    ck_assert_uint_eq(c.bad, 0);
    ck_assert_uint_eq(c.next[1], k->live_count);
    ck_assert_uint_eq(c.next[2], k->live_count);
    ck_assert_uint_eq(shm_replyring_depth(r), 0);
    close(k->efd);
    shm_region_destroy(reg);
}
END_TEST

static Suite *stress_suite(void)
{
    Suite *s = suite_create("ring_stress");
    TCase *tc = tcase_create("processes");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, jobs_one_producer_four_consumer_processes, 0, 2);
    tcase_add_loop_test(tc, replies_four_producer_processes_one_consumer, 0, 2);
    tcase_add_test(tc, jobring_consumer_killed_while_holding_a_claim);
    tcase_add_test(tc, jobring_consumers_killed_at_random_moments);
    tcase_add_test(tc, replyring_producers_killed_at_random_moments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
