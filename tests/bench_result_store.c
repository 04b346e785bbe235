/* bench_result_store.c — what mirroring a detached job to Redis costs: an
 * owner store and a follower store on one loop and one Redis, as two
 * instances would be.
 *
 *   bench_result_store URL [EVENTS [RATE]]
 *
 * 1. throughput: the owner writes EVENTS chunk events (default 100000,
 *    about 100 bytes each) as fast as the loop takes them, while the
 *    follower follows live; the figure is events per second until the
 *    follower has the final.
 * 2. latency: RATE events per second (default 5000) for 2 s, each carrying
 *    its write time; the follower records write-to-delivery time.
 *
 * Prints one JSON line per figure.  Needs a Redis at URL (a scratch one:
 * it writes wsjobd:* keys that expire after 60 s). */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/histogram.h"
#include "base/log.h"
#include "store/result_store.h"

static struct event_base *base;
static struct histogram lat;
static uint64_t got;
static int ended;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_event(void *arg, const char *json, size_t len, int final)
{
    (void)arg; (void)len;
    if (final) {
        ended = 1;
        return;
    }
    got++;
    const char *t = strstr(json, "\"output\":\"");
    if (t)
        hist_record(&lat, (uint64_t)(now_ns() - strtoll(t + 10, NULL, 10)));
}

static void write_chunk(struct result_store *rs, const char *h, uint64_t seq)
{
    char text[160];
    int n = snprintf(text, sizeof text, "{\"event\":\"chunk\",\"seq\":%" PRIu64
                     ",\"output\":\"%" PRId64 " padding padding padding padding\"}",
                     seq, now_ns());
    result_store_job_event(rs, h, seq, text, (size_t)n, 1 << 20);
}

static int run_until_ended(int64_t limit_ns)
{
    int64_t end = now_ns() + limit_ns;
    while (!ended && now_ns() < end)
        event_base_loop(base, EVLOOP_ONCE);
    return ended;
}

static void wait_up(struct result_store *rs)
{
    int64_t end = now_ns() + 5000000000LL;
    while (!result_store_up(rs) && now_ns() < end) {
        struct timeval tv = { 0, 10000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    if (!result_store_up(rs)) {
        fprintf(stderr, "bench_result_store: %s\n", result_store_state(rs));
        exit(1);
    }
}

static void settle(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static struct rs_follow *start(struct result_store *owner, struct result_store *follower,
                               const char *h)
{
    result_store_job_begin(owner, h);
    settle(100);
    struct rs_follow *f = result_store_follow(follower, h, 0, on_event, NULL);
    settle(200);                   /* subscribed, snapshot read: live from here */
    got = 0;
    ended = 0;
    memset(&lat, 0, sizeof lat);
    return f;
}

static void finish(struct result_store *owner, const char *h)
{
    static const char done[] = "{\"event\":\"done\",\"queued_us\":0,\"run_us\":0}";
    result_store_job_final(owner, h, done, sizeof done - 1);
    if (!run_until_ended(60000000000LL)) {
        fprintf(stderr, "bench_result_store: no final\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_result_store URL [EVENTS [RATE]]\n");
        return 2;
    }
    uint64_t events = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
    unsigned rate = argc > 3 ? (unsigned)atoi(argv[3]) : 5000;
    char err[256], h1[40], h2[40];
    log_set_level(LOG_LEVEL_WARN);
    base = event_base_new();
    struct result_store *owner = result_store_new(base, argv[1], "benchowner", 60, err, sizeof err);
    struct result_store *follower = result_store_new(base, argv[1], "benchfollower", 60, err, sizeof err);
    if (!owner || !follower) {
        fprintf(stderr, "bench_result_store: %s\n", err);
        return 2;
    }
    wait_up(owner);
    wait_up(follower);
    snprintf(h1, sizeof h1, "bench%08x", (unsigned)now_ns());
    snprintf(h2, sizeof h2, "bench%08x", (unsigned)now_ns() + 1);

    start(owner, follower, h1);
    int64_t t0 = now_ns();
    for (uint64_t s = 0; s < events; s++) {
        write_chunk(owner, h1, s);
        if (s % 1000 == 999)
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
    finish(owner, h1);
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("{\"bench\":\"result_store_throughput\",\"events\":%" PRIu64 ",\"delivered\":%"
           PRIu64 ",\"seconds\":%.3f,\"events_per_s\":%.0f}\n", events, got, secs,
           (double)got / secs);

    start(owner, follower, h2);
    uint64_t seq = 0;
    int64_t begin = now_ns(), end = begin + 2000000000LL;
    for (int64_t t = now_ns(); t < end; t = now_ns()) {
        uint64_t due = (uint64_t)((t - begin) / 1000) * rate / 1000000;
        while (seq < due)
            write_chunk(owner, h2, seq++);
        struct timeval tv = { 0, 1000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    finish(owner, h2);
    printf("{\"bench\":\"result_store_latency\",\"rate\":%u,\"events\":%" PRIu64
           ",\"delivered\":%" PRIu64 ",\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f}\n",
           rate, seq, got, hist_percentile(&lat, 50) / 1e3, hist_percentile(&lat, 99) / 1e3,
           lat.max / 1e3);

    struct rs_stats st;
    result_store_stats(owner, &st);
    result_store_free(owner);
    result_store_free(follower);
    event_base_free(base);
    return st.writes_dropped_total ? 1 : 0;
}
