/* ring_workload.h — the stress workloads shared by test_ring_stress.c (run
 * as processes) and test_ring_threads.c (run as threads).  Each side of a
 * workload is a plain function over a context in the shared region, so the
 * same code runs forked or threaded.
 *
 *  jobs     one producer hands payloads of random size (placed in a shared
 *           heap with a checksum) to consumers through a jobring; consumers
 *           verify them and answer through a replyring; the producer marks
 *           each answer in a bitmap and frees the payload.  Every payload
 *           must come back exactly once, intact.
 *
 *  replies  producers push records (id, sequence, checksum) into one
 *           replyring; the consumer checks each producer's order and every
 *           checksum, so a lost, doubled or torn record is caught.
 *
 * Workers report problems through counters in shared memory and never call
 * Check themselves: an assertion in a forked worker could not reach the
 * runner.  Every wait is bounded by a deadline. */
#ifndef TEST_RING_WORKLOAD_H
#define TEST_RING_WORKLOAD_H

#include <poll.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "ring.h"
#include "shm.h"

#define WL_CONSUMERS   4
#define WL_PRODUCERS   4
#define WL_MAX_ID      8
#define WL_DEADLINE_S  240   /* no run may take longer; a hang fails the test */

static inline int64_t wl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* RING_STRESS_MSGS overrides the message count (sanitizer runs use fewer). */
static inline uint64_t wl_message_count(uint64_t dflt)
{
    const char *s = getenv("RING_STRESS_MSGS");
    if (s == NULL || *s == '\0')
        return dflt;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return (*end == '\0' && v > 0) ? (uint64_t)v : dflt;
}

/* Loop tests run twice: _i == 0 with the barrier scheme the kernel allows,
 * _i == 1 with the symmetric one forced (eventcount.h).  Before any ring
 * is initialised. */
static inline void wl_barrier_mode(int symmetric)
{
    if (symmetric)
        setenv("SHM_BARRIER", "symmetric", 1);
    else
        unsetenv("SHM_BARRIER");
}

static inline uint64_t wl_rand(uint64_t *s)
{
    /* xorshift64*: fast, and enough to vary sizes and timings. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* A checksum that a lost, swapped or stale word changes. */
static inline uint64_t wl_sum(const unsigned char *p, size_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * UINT64_C(0x100000001b3);
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

static inline void wl_fill(unsigned char *p, size_t len, uint64_t seed)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = seed + i * UINT64_C(0x9E3779B97F4A7C15);
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)
        p[i] = (unsigned char)(seed >> (i & 7) * 8);
}

/* Waits (bounded) for the replyring's eventfd, arming first.  1 when the
 * wait ran out. */
static inline int wl_sleep_on_replies(struct shm_replyring *r, int efd, int ms)
{
    int timed_out = 0;
    if (shm_replyring_arm(r)) {
        struct pollfd pfd = { .fd = efd, .events = POLLIN };
        timed_out = poll(&pfd, 1, ms) == 0;
    }
    shm_replyring_ack(r);
    return timed_out;
}

/* A wait that ran out although records were there to pop means a publish
 * did not wake the armed consumer: a lost wake-up.  The waits are long
 * (WL_WAKE_MS) so that a slow producer does not look like one. */
#define WL_WAKE_MS 2000

/* ---- jobs: one producer, WL_CONSUMERS consumers ----------------------- */

struct wl_payload {          /* at the start of each heap block */
    uint64_t seq;
    uint64_t len;            /* bytes of data[] */
    uint64_t sum;            /* wl_sum(data, len) */
    unsigned char data[];
};

struct wl_answer {           /* consumer -> producer, through the replyring */
    uint64_t seq;
    uint64_t off;            /* heap offset of the payload */
    uint32_t ok;             /* checksum matched */
    uint32_t consumer;
};

struct wl_jobs {
    struct shm_jobring *ring;
    struct shm_replyring *answers;
    int efd;
    unsigned char *heap_base;
    size_t heap_size;
    alignas(64) _Atomic uint32_t stop;
    alignas(64) _Atomic uint64_t bad_sum;        /* consumers: payload corrupt */
    _Atomic uint64_t bad_push;                   /* consumers: answer push failed */
    alignas(64) _Atomic uint64_t claim[WL_MAX_ID + 1][8]; /* [id][0], own line */
    alignas(64) _Atomic uint64_t taken[WL_MAX_ID + 1][8];
};

struct wl_jobs_report {
    uint64_t sent, answered, duplicates, missing, bad_answers, lost_wakeups;
    int timed_out;
};

#define WL_JOB_SLOTS    1024
#define WL_ANSWER_SLOTS 1024
#define WL_HEAP_BYTES   ((size_t)64 << 20)

static inline size_t wl_jobs_region_bytes(void)
{
    return sizeof(struct wl_jobs) + shm_jobring_size(WL_JOB_SLOTS) +
           shm_replyring_size(WL_ANSWER_SLOTS) + WL_HEAP_BYTES + (1 << 20);
}

/* Carves the workload out of r (before fork or thread start).  NULL on
 * failure. */
static inline struct wl_jobs *wl_jobs_setup(struct shm_region *r)
{
    struct wl_jobs *j = shm_region_alloc(r, sizeof *j, 64);
    void *rm = shm_region_alloc(r, shm_jobring_size(WL_JOB_SLOTS), 64);
    void *am = shm_region_alloc(r, shm_replyring_size(WL_ANSWER_SLOTS), 64);
    void *hm = shm_region_alloc(r, WL_HEAP_BYTES, 4096);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (j == NULL || rm == NULL || am == NULL || hm == NULL || efd < 0)
        return NULL;
    memset(j, 0, sizeof *j);
    j->efd = efd;
    j->ring = shm_jobring_init(rm, WL_JOB_SLOTS);
    j->answers = shm_replyring_init(am, WL_ANSWER_SLOTS, efd);
    j->heap_base = hm;
    j->heap_size = WL_HEAP_BYTES;
    return j->ring != NULL && j->answers != NULL ? j : NULL;
}

/* Consumer `id` (1..WL_CONSUMERS): takes, verifies, answers, until stop is
 * set and the ring is empty. */
static inline void wl_jobs_consume(struct wl_jobs *j, uint16_t id)
{
    _Atomic uint64_t *claim = &j->claim[id][0];
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    while (wl_now_ns() < deadline) {
        uint64_t v;
        if (shm_jobring_take_wait(j->ring, id, claim, &v, 100) < 0) {
            if (atomic_load(&j->stop))
                return;
            continue;
        }
        const struct wl_payload *p = (const void *)(j->heap_base + (v - 1));
        struct wl_answer a = { .seq = p->seq, .off = v - 1, .consumer = id };
        a.ok = p->len <= j->heap_size && wl_sum(p->data, p->len) == p->sum;
        if (!a.ok)
            atomic_fetch_add(&j->bad_sum, 1);
        if (shm_replyring_push(j->answers, id, &a, sizeof a, WL_DEADLINE_S * 1000) < 0)
            atomic_fetch_add(&j->bad_push, 1);
        atomic_fetch_add_explicit(&j->taken[id][0], 1, memory_order_relaxed);
        /* The answer is out: only now may the claim go. */
        atomic_store_explicit(claim, 0, memory_order_release);
    }
}

static inline size_t wl_payload_len(uint64_t *rng)
{
    uint64_t x = wl_rand(rng);
    if ((x & 8191) == 0)            /* about one in 8192: up to 1 MiB */
        return (size_t)(wl_rand(rng) % (1u << 20));
    return (size_t)(wl_rand(rng) % 2049);
}

/* Handles one answer: marks the bitmap, frees the payload. */
static inline void wl_jobs_answer(struct shm_heap *heap, uint8_t *seen, uint64_t n,
                                  const struct wl_answer *a, struct wl_jobs_report *rep)
{
    if (a->seq >= n || !a->ok) {
        rep->bad_answers++;
        return;
    }
    if (seen[a->seq / 8] & (1u << (a->seq % 8)))
        rep->duplicates++;
    seen[a->seq / 8] |= (uint8_t)(1u << (a->seq % 8));
    rep->answered++;
    shm_heap_free(heap, (int64_t)a->off);
}

/* The producer: sends n payloads and collects every answer (or gives up at
 * the deadline).  Runs in the test's own process or thread. */
static inline void wl_jobs_produce(struct wl_jobs *j, uint64_t n, struct wl_jobs_report *rep)
{
    memset(rep, 0, sizeof *rep);
    struct shm_heap *heap = shm_heap_new(j->heap_base, j->heap_size);
    uint8_t *seen = calloc(n / 8 + 1, 1);
    if (heap == NULL || seen == NULL) {
        rep->timed_out = 1;
        free(seen);
        shm_heap_delete(heap);
        return;
    }
    uint64_t rng = 0x1234567 ^ n, seq = 0;
    int64_t pending = -1;       /* a payload written but not yet pushed */
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    while (rep->answered + rep->bad_answers < n) {
        if (wl_now_ns() > deadline) {
            rep->timed_out = 1;
            break;
        }
        int progress = 0;
        while (seq < n) {
            if (pending < 0) {
                size_t len = wl_payload_len(&rng);
                pending = shm_heap_alloc(heap, sizeof(struct wl_payload) + len);
                if (pending < 0)
                    break;      /* heap full: wait for answers */
                struct wl_payload *p = (void *)(j->heap_base + pending);
                p->seq = seq;
                p->len = len;
                wl_fill(p->data, len, seq * UINT64_C(0x9E3779B97F4A7C15));
                p->sum = wl_sum(p->data, len);
            }
            if (shm_jobring_push(j->ring, (uint64_t)pending + 1) < 0)
                break;          /* ring full */
            pending = -1;
            seq++;
            rep->sent++;
            progress = 1;
        }
        unsigned char buf[SHM_REPLY_REC];
        size_t len;
        while ((len = shm_replyring_pop(j->answers, buf)) > 0) {
            struct wl_answer a;
            memcpy(&a, buf, sizeof a);
            if (len != sizeof a)
                rep->bad_answers++;
            else
                wl_jobs_answer(heap, seen, n, &a, rep);
            progress = 1;
        }
        if (!progress && wl_sleep_on_replies(j->answers, j->efd, WL_WAKE_MS) &&
            shm_replyring_depth(j->answers) > 0)
            rep->lost_wakeups++;
    }
    for (uint64_t i = 0; i < n; i++)
        if (!(seen[i / 8] & (1u << (i % 8))))
            rep->missing++;
    if (shm_heap_in_use(heap) != 0 && !rep->timed_out)
        rep->bad_answers++;     /* a payload never came back */
    free(seen);
    shm_heap_delete(heap);
}

/* ---- replies: WL_PRODUCERS producers, one consumer -------------------- */

struct wl_record {
    uint16_t producer;
    uint16_t len;            /* whole record bytes, header included */
    uint32_t pad;
    uint64_t seq;
    uint64_t sum;            /* wl_sum(data, len - header) */
    unsigned char data[SHM_REPLY_REC - 24];
};

struct wl_replies {
    struct shm_replyring *ring;
    int efd;
    alignas(64) _Atomic uint64_t push_failed;
};

struct wl_replies_report {
    uint64_t received, out_of_order, bad_sum, bad_len, lost_wakeups;
    int timed_out;
};

#define WL_REPLY_SLOTS 256

static inline size_t wl_replies_region_bytes(void)
{
    return sizeof(struct wl_replies) + shm_replyring_size(WL_REPLY_SLOTS) + (1 << 20);
}

static inline struct wl_replies *wl_replies_setup(struct shm_region *r)
{
    struct wl_replies *w = shm_region_alloc(r, sizeof *w, 64);
    void *rm = shm_region_alloc(r, shm_replyring_size(WL_REPLY_SLOTS), 64);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w == NULL || rm == NULL || efd < 0)
        return NULL;
    memset(w, 0, sizeof *w);
    w->efd = efd;
    w->ring = shm_replyring_init(rm, WL_REPLY_SLOTS, efd);
    return w->ring != NULL ? w : NULL;
}

static inline size_t wl_record_fill(struct wl_record *rec, uint16_t producer,
                                    uint64_t seq, uint64_t *rng)
{
    size_t len = 24 + (size_t)(wl_rand(rng) % (SHM_REPLY_REC - 24 + 1));
    rec->producer = producer;
    rec->len = (uint16_t)len;
    rec->pad = 0;
    rec->seq = seq;
    wl_fill(rec->data, len - 24, seq ^ ((uint64_t)producer << 48));
    rec->sum = wl_sum(rec->data, len - 24);
    return len;
}

/* Producer `id` (1..WL_PRODUCERS): pushes count records, seq 0..count-1. */
static inline void wl_replies_produce(struct wl_replies *w, uint16_t id, uint64_t count)
{
    uint64_t rng = 0x9876543u + id;
    for (uint64_t seq = 0; seq < count; seq++) {
        struct wl_record rec;
        size_t len = wl_record_fill(&rec, id, seq, &rng);
        if (shm_replyring_push(w->ring, id, &rec, len, WL_DEADLINE_S * 1000) < 0) {
            atomic_fetch_add(&w->push_failed, 1);
            return;
        }
    }
}

/* Checks one popped record against the next sequence expected of its
 * producer. */
static inline void wl_record_check(const unsigned char *buf, size_t len, uint64_t *next,
                                   unsigned producers, struct wl_replies_report *rep)
{
    struct wl_record rec;
    memset(&rec, 0, sizeof rec);
    memcpy(&rec, buf, len < sizeof rec ? len : sizeof rec);
    if (len < 24 || rec.len != len || rec.producer == 0 || rec.producer > producers) {
        rep->bad_len++;
        return;
    }
    if (wl_sum(rec.data, len - 24) != rec.sum)
        rep->bad_sum++;
    if (rec.seq != next[rec.producer])
        rep->out_of_order++;
    next[rec.producer] = rec.seq + 1;
    rep->received++;
}

/* The consumer: pops until `expect` records have arrived. */
static inline void wl_replies_consume(struct wl_replies *w, unsigned producers,
                                      uint64_t expect, struct wl_replies_report *rep)
{
    memset(rep, 0, sizeof *rep);
    uint64_t next[WL_MAX_ID + 1] = { 0 };
    int64_t deadline = wl_now_ns() + (int64_t)WL_DEADLINE_S * 1000000000;
    while (rep->received + rep->bad_len < expect) {
        if (wl_now_ns() > deadline || atomic_load(&w->push_failed) != 0) {
            rep->timed_out = 1;
            return;
        }
        unsigned char buf[SHM_REPLY_REC];
        size_t len;
        int got = 0;
        while ((len = shm_replyring_pop(w->ring, buf)) > 0) {
            wl_record_check(buf, len, next, producers, rep);
            got = 1;
        }
        if (!got && wl_sleep_on_replies(w->ring, w->efd, WL_WAKE_MS) &&
            shm_replyring_depth(w->ring) > 0)
            rep->lost_wakeups++;
    }
}

#endif
