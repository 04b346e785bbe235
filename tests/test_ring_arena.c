/* test_ring_arena.c — unit tests of the byte arenas: shm/bytering.c and
 * shm/heap.c. */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "ring_fixture.h"

/* ---- bytering ---------------------------------------------------------- */

static void *br_mem;
static size_t br_bytes;

static struct shm_bytering *bytering(size_t capacity)
{
    br_bytes = shm_bytering_size(capacity);
    ck_assert_int_eq(posix_memalign(&br_mem, 64, br_bytes), 0);
    struct shm_bytering *r = shm_bytering_init(br_mem, capacity);
    ck_assert_ptr_nonnull(r);
    return r;
}

START_TEST(bytering_sizes)
{
    struct shm_bytering *r = bytering(1024);
    int64_t a = shm_bytering_alloc(r, 0, 0);
    ck_assert_int_ge(a, 0);
    int64_t b = shm_bytering_alloc(r, 1, 0);
    ck_assert_int_ge(b, a);
    int64_t c = shm_bytering_alloc(r, 3, 0);
    ck_assert_int_eq(c % 8, 0);                /* allocations start aligned */
    ck_assert_int_ge(c, b + 1);
    ck_assert_int_eq(shm_bytering_alloc(r, 513, 0), -1);   /* over capacity / 2 */
    shm_bytering_free(r, c, 3);
    int64_t d = shm_bytering_alloc(r, 512, 0);
    ck_assert_int_ge(d, 0);
    memset(shm_bytering_ptr(r, d), 0x5a, 512);
    shm_bytering_free(r, d, 512);
    free(br_mem);
}
END_TEST

START_TEST(bytering_capacity_rounds_up)
{
    /* 1000 bytes become 1024: capacity / 2 of what was asked always fits. */
    struct shm_bytering *r = bytering(1000);
    ck_assert_uint_ge(br_bytes, sizeof(struct shm_bytering) + 1024);
    for (int i = 0; i < 100; i++) {
        int64_t p = shm_bytering_alloc(r, 500, 0);
        ck_assert_int_ge(p, 0);
        shm_bytering_free(r, p, 500);
    }
    free(br_mem);
}
END_TEST

START_TEST(bytering_wraps_with_skip)
{
    struct shm_bytering *r = bytering(1024);
    int64_t a = shm_bytering_alloc(r, 400, 0);
    int64_t b = shm_bytering_alloc(r, 400, 0);
    ck_assert_int_eq(a, 0);
    ck_assert_int_eq(b, 400);
    ck_assert_int_eq(shm_bytering_alloc(r, 400, 0), -1);   /* 224 left, split */
    shm_bytering_free(r, a, 400);
    /* 800 + 400 would run past the end: skip to 1024, the buffer start. */
    int64_t c = shm_bytering_alloc(r, 400, 0);
    ck_assert_int_eq(c, 1024);
    ck_assert_ptr_eq(shm_bytering_ptr(r, c), shm_bytering_ptr(r, 0));
    ck_assert_int_eq(shm_bytering_alloc(r, 1, 0), -1);     /* b not freed yet */
    shm_bytering_free(r, b, 400);
    /* Freeing c covers the skipped 224 bytes too: all is free again. */
    shm_bytering_free(r, c, 400);
    int64_t d = shm_bytering_alloc(r, 512, 0);
    ck_assert_int_eq(d, 1424);
    shm_bytering_free(r, d, 512);
    /* 1936 leaves 112 bytes before the end: skipped again. */
    ck_assert_int_eq(shm_bytering_alloc(r, 512, 0), 2048);
    free(br_mem);
}
END_TEST

START_TEST(bytering_contents_survive_many_laps)
{
    struct shm_bytering *r = bytering(4096);
    int64_t pos[8];
    size_t len[8];
    unsigned head = 0, tail = 0, seed = 1;
    for (int i = 0; i < 20000; i++) {
        if (head - tail < 8) {
            size_t n = (size_t)(seed * 2654435761u) % 2049;
            int64_t p = shm_bytering_alloc(r, n, 0);
            if (p >= 0) {
                unsigned char *at = shm_bytering_ptr(r, p);
                for (size_t k = 0; k < n; k++)
                    at[k] = (unsigned char)(seed + k);
                pos[head % 8] = p;
                len[head % 8] = n;
                head++;
                seed++;
                continue;
            }
        }
        ck_assert_uint_gt(head, tail);
        const unsigned char *at = shm_bytering_ptr(r, pos[tail % 8]);
        unsigned s = seed - (head - tail);
        size_t bad = 0;   /* one assertion per block: Check logs each one */
        for (size_t k = 0; k < len[tail % 8]; k++)
            bad += at[k] != (unsigned char)(s + k);
        ck_assert_uint_eq(bad, 0);
        shm_bytering_free(r, pos[tail % 8], len[tail % 8]);
        tail++;
    }
    ck_assert_uint_gt(tail, 5000);
    free(br_mem);
}
END_TEST

START_TEST(bytering_alloc_times_out)
{
    barrier_mode(_i);
    struct shm_bytering *r = bytering(1024);
    ck_assert_int_ge(shm_bytering_alloc(r, 512, 0), 0);
    ck_assert_int_ge(shm_bytering_alloc(r, 512, 0), 0);
    int64_t t0 = now_ms();
    ck_assert_int_eq(shm_bytering_alloc(r, 8, 50), -1);
    ck_assert_int_ge(now_ms() - t0, 50);
    ck_assert_uint_eq(shm_evc_waiting(&r->space), 0);
    free(br_mem);
}
END_TEST

struct waiter {
    struct shm_bytering *r;
    int64_t pos;
    _Atomic int done;
};

static void *alloc_waiting(void *p)
{
    struct waiter *w = p;
    w->pos = shm_bytering_alloc(w->r, 300, 10000);
    atomic_store(&w->done, 1);
    return NULL;
}

START_TEST(bytering_producer_sleeps_until_free)
{
    barrier_mode(_i);
    struct shm_bytering *r = bytering(1024);
    int64_t a = shm_bytering_alloc(r, 500, 0);
    int64_t b = shm_bytering_alloc(r, 500, 0);
    ck_assert(a >= 0 && b >= 0);
    struct waiter w = { .r = r, .pos = -2 };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, alloc_waiting, &w), 0);
    int64_t until = now_ms() + 5000;
    while (shm_evc_waiting(&r->space) == 0 && now_ms() < until)
        usleep(200);
    ck_assert_uint_eq(shm_evc_waiting(&r->space), 1);
    usleep(20000);
    ck_assert_int_eq(atomic_load(&w.done), 0);       /* still asleep */
    uint32_t epoch = atomic_load(&r->space.epoch);
    int64_t t0 = now_ms();
    shm_bytering_free(r, a, 500);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_lt(now_ms() - t0, 2000);
    ck_assert_int_eq(w.pos, 1024);                    /* wrapped past b */
    ck_assert_uint_ne(atomic_load(&r->space.epoch), epoch);
    /* Nobody waits now: a free makes no wake-up. */
    epoch = atomic_load(&r->space.epoch);
    shm_bytering_free(r, b, 500);
    ck_assert_uint_eq(atomic_load(&r->space.epoch), epoch);
    free(br_mem);
}
END_TEST

START_TEST(bytering_reset_forgets_everything)
{
    struct shm_bytering *r = bytering(1024);
    int64_t a = shm_bytering_alloc(r, 512, 0);
    ck_assert_int_ge(shm_bytering_alloc(r, 512, 0), 0);
    ck_assert_int_eq(shm_bytering_alloc(r, 8, 0), -1);
    shm_bytering_reset(r);
    int64_t c = shm_bytering_alloc(r, 512, 0);
    ck_assert_int_ge(c, 1024);
    /* A late free of an allocation from before the reset changes nothing. */
    shm_bytering_free(r, a, 512);
    ck_assert_int_ge(shm_bytering_alloc(r, 512, 0), 0);
    ck_assert_int_eq(shm_bytering_alloc(r, 8, 0), -1);
    free(br_mem);
}
END_TEST

/* ---- heap -------------------------------------------------------------- */

static unsigned char *heap_mem;
static size_t heap_bytes;

/* Untouched pages cost nothing: the tests can afford a 96 MiB range. */
static struct shm_heap *heap(size_t size)
{
    heap_bytes = size;
    heap_mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ck_assert_ptr_ne(heap_mem, MAP_FAILED);
    struct shm_heap *h = shm_heap_new(heap_mem, size);
    ck_assert_ptr_nonnull(h);
    return h;
}

static void heap_done(struct shm_heap *h)
{
    shm_heap_delete(h);
    munmap(heap_mem, heap_bytes);
}

START_TEST(heap_rejects_too_small)
{
    ck_assert_ptr_null(shm_heap_new(NULL, 1 << 20));
    static unsigned char tiny[63];
    ck_assert_ptr_null(shm_heap_new(tiny, sizeof tiny));
}
END_TEST

START_TEST(heap_random_pattern_never_overlaps)
{
    struct shm_heap *h = heap(1 << 20);
    enum { SLOTS = 512 };
    int64_t off[SLOTS];
    size_t len[SLOTS];
    for (int i = 0; i < SLOTS; i++)
        off[i] = -1;
    unsigned x = 12345;
    size_t expect_in_use = 0;
    for (int step = 0; step < 100000; step++) {
        x = x * 1103515245u + 12345u;
        int i = (int)((x >> 8) % SLOTS);
        if (off[i] >= 0) {
            /* The block still holds what was written into it. */
            unsigned char *p = heap_mem + off[i];
            ck_assert_uint_eq(p[0], (unsigned char)i);
            ck_assert_uint_eq(p[len[i] - 1], (unsigned char)i);
            shm_heap_free(h, off[i]);
            size_t blk = 64;
            while (blk < len[i])
                blk *= 2;
            expect_in_use -= blk;
            off[i] = -1;
            continue;
        }
        len[i] = 1 + (x >> 4) % ((x & 1) ? 200 : 9000);
        off[i] = shm_heap_alloc(h, len[i]);
        if (off[i] < 0)
            continue;
        ck_assert_int_eq(off[i] % 64, 0);
        ck_assert_uint_le((size_t)off[i] + len[i], heap_bytes);
        memset(heap_mem + off[i], i, len[i]);
        size_t blk = 64;
        while (blk < len[i])
            blk *= 2;
        expect_in_use += blk;
        ck_assert_uint_eq(shm_heap_in_use(h), expect_in_use);
    }
    for (int i = 0; i < SLOTS; i++)
        if (off[i] >= 0)
            shm_heap_free(h, off[i]);
    ck_assert_uint_eq(shm_heap_in_use(h), 0);
    heap_done(h);
}
END_TEST

START_TEST(heap_coalesces_back_to_one_block)
{
    struct shm_heap *h = heap(1 << 20);
    enum { N = (1 << 20) / 64 };
    static int64_t off[N];
    for (int i = 0; i < N; i++) {
        off[i] = shm_heap_alloc(h, 64);
        ck_assert_int_ge(off[i], 0);
    }
    ck_assert_int_eq(shm_heap_alloc(h, 1), -1);          /* exhausted */
    ck_assert_uint_eq(shm_heap_in_use(h), 1 << 20);
    ck_assert_int_eq(shm_heap_alloc(h, 128), -1);
    /* Free the odd ones: half the space, but no two neighbours. */
    for (int i = 1; i < N; i += 2)
        shm_heap_free(h, off[i]);
    int64_t extra = shm_heap_alloc(h, 64);
    ck_assert_int_ge(extra, 0);
    ck_assert_int_eq(shm_heap_alloc(h, 128), -1);
    for (int i = 0; i < N; i += 2)
        shm_heap_free(h, off[i]);
    ck_assert_uint_eq(shm_heap_in_use(h), 64);
    ck_assert_int_eq(shm_heap_alloc(h, 1 << 20), -1);   /* extra still splits it */
    shm_heap_free(h, extra);
    /* All merged: the whole range in one piece again. */
    ck_assert_int_eq(shm_heap_alloc(h, 1 << 20), 0);
    ck_assert_int_eq(shm_heap_alloc(h, 1), -1);
    heap_done(h);
}
END_TEST

START_TEST(heap_64_mib_blocks)
{
    /* 96 MiB: not a power of two; the 64 MiB block must still fit. */
    struct shm_heap *h = heap((size_t)96 << 20);
    int64_t big = shm_heap_alloc(h, (size_t)64 << 20);
    ck_assert_int_ge(big, 0);
    heap_mem[big] = 1;
    heap_mem[big + ((int64_t)64 << 20) - 1] = 2;
    ck_assert_int_eq(shm_heap_alloc(h, (size_t)64 << 20), -1);
    int64_t rest = shm_heap_alloc(h, (size_t)32 << 20);
    ck_assert_int_ge(rest, 0);
    ck_assert_int_eq(shm_heap_alloc(h, 1), -1);          /* the tail is not ours */
    shm_heap_free(h, big);
    int64_t small = shm_heap_alloc(h, 100);
    ck_assert_int_ge(small, 0);
    ck_assert_int_lt(small, (int64_t)64 << 20);
    ck_assert_int_eq(shm_heap_alloc(h, (size_t)64 << 20), -1);   /* split now */
    shm_heap_free(h, small);
    ck_assert_int_eq(shm_heap_alloc(h, (size_t)64 << 20), big);
    ck_assert_int_eq(shm_heap_alloc(h, (size_t)96 << 20), -1);   /* never fits */
    ck_assert_int_eq(shm_heap_alloc(h, (size_t)1 << 40), -1);
    heap_done(h);
}
END_TEST

START_TEST(heap_many_small_blocks)
{
    struct shm_heap *h = heap((size_t)64 << 20);
    enum { N = 200000 };
    int64_t *off = malloc(N * sizeof *off);
    ck_assert_ptr_nonnull(off);
    for (int i = 0; i < N; i++) {
        off[i] = shm_heap_alloc(h, (size_t)(i % 3) * 50);
        ck_assert_int_ge(off[i], 0);
    }
    ck_assert_uint_eq(shm_heap_in_use(h), (size_t)N * 64 + (size_t)(N / 3) * 64);
    for (int i = N - 1; i >= 0; i -= 2)
        shm_heap_free(h, off[i]);
    for (int i = N - 2; i >= 0; i -= 2)
        shm_heap_free(h, off[i]);
    ck_assert_uint_eq(shm_heap_in_use(h), 0);
    ck_assert_int_eq(shm_heap_alloc(h, (size_t)64 << 20), 0);
    free(off);
    heap_done(h);
}
END_TEST

START_TEST(heap_bad_free_aborts)
{
    struct shm_heap *h = heap(1 << 20);
    int64_t a = shm_heap_alloc(h, 100);
    shm_heap_free(h, a + 64);   /* inside a block, not its start */
}
END_TEST

static Suite *arena_suite(void)
{
    Suite *s = suite_create("ring_arena");
    TCase *tb = tcase_create("bytering");
    tcase_set_timeout(tb, 30);
    tcase_add_test(tb, bytering_sizes);
    tcase_add_test(tb, bytering_capacity_rounds_up);
    tcase_add_test(tb, bytering_wraps_with_skip);
    tcase_add_test(tb, bytering_contents_survive_many_laps);
    tcase_add_loop_test(tb, bytering_alloc_times_out, 0, 2);
    tcase_add_loop_test(tb, bytering_producer_sleeps_until_free, 0, 2);
    tcase_add_test(tb, bytering_reset_forgets_everything);
    suite_add_tcase(s, tb);

    TCase *th = tcase_create("heap");
    tcase_set_timeout(th, 60);
    tcase_add_test(th, heap_rejects_too_small);
    tcase_add_test(th, heap_random_pattern_never_overlaps);
    tcase_add_test(th, heap_coalesces_back_to_one_block);
    tcase_add_test(th, heap_64_mib_blocks);
    tcase_add_test(th, heap_many_small_blocks);
    tcase_add_test_raise_signal(th, heap_bad_free_aborts, SIGABRT);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(arena_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
