/* test_result_store.c — the Redis result store against a real redis-server
 * on a free loopback port: an owner store and a follower store (two
 * "instances") on one server; replay, live and mid-stream follows; unknown
 * handles; an owner that stops heartbeating; remote cancel; trimming, TTLs
 * and SELECT; a server that never answers; Redis killed and restarted.
 *
 * The stores run on a libevent loop in the test's thread, always for a
 * bounded time; a blocking hiredis client looks at the keys. */
#include <check.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "store/result_store.h"
#include "store/result_store_event.h"

static struct event_base *base;
static int port;                   /* the server of the "store" test case */
static pid_t redis_pid;
static char url[64];
static char err[256];

/* ---- redis-server --------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

static redisContext *sync_client(int p)
{
    struct timeval tv = { 0, 200000 };
    return redisConnectWithTimeout("127.0.0.1", p, tv);
}

static pid_t redis_start(int p)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", p);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a failed test leaves no server behind */
        /* "-::1": IPv6 loopback too where there is one (the [IPv6] test). */
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "-::1",
               "--save", "", "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    for (int64_t end = now_ms() + 10000; now_ms() < end; usleep(20000)) {
        redisContext *c = sync_client(p);
        int ok = c && !c->err;
        redisFree(c);
        if (ok)
            return pid;
    }
    ck_abort_msg("redis-server did not start on port %d", p);
    return -1;
}

static void redis_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void server_up(void)
{
    port = free_port();
    redis_pid = redis_start(port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
}

static void server_down(void)
{
    redis_kill(redis_pid);
}

static void loop_setup(void)
{
    base = event_base_new();
}

static void loop_teardown(void)
{
    event_base_free(base);
}

/* ---- running the loop for a bounded time ---------------------------------- */

static int run_until(int (*pred)(void *), void *arg, int ms)
{
    for (int64_t end = now_ms() + ms; !pred(arg);) {
        if (now_ms() >= end)
            return 0;
        struct timeval tv = { 0, 10000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return 1;
}

static void turn(void)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
}

static int never(void *arg) { (void)arg; return 0; }
static void run_for(int ms) { run_until(never, NULL, ms); }
static int is_up(void *rs) { return result_store_up(rs); }
static int is_down(void *rs) { return !result_store_up(rs); }

static struct result_store *store(const char *instance)
{
    struct result_store *rs = result_store_new(base, url, instance, 60, err, sizeof err);
    ck_assert_msg(rs != NULL, "%s", err);
    ck_assert_msg(run_until(is_up, rs, 5000), "not up: %s", result_store_state(rs));
    ck_assert_str_eq(result_store_state(rs), "up");
    return rs;
}

/* Waits until the blocking client sees key (the async writes landed). */
static void wait_key(const char *key)
{
    redisContext *c = sync_client(port);
    ck_assert(c && !c->err);
    int64_t end = now_ms() + 3000;
    for (;;) {
        redisReply *r = redisCommand(c, "EXISTS %s", key);
        int found = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        if (found)
            break;
        ck_assert_msg(now_ms() < end, "%s never written", key);
        run_for(10);
    }
    redisFree(c);
}

/* ---- what a follower hears ------------------------------------------------ */

struct rec {
    char   *ev[256];
    size_t  n;
    int     finals;
    char   *final;
};

static void rec_on(void *arg, const char *json, size_t len, int final)
{
    struct rec *r = arg;
    ck_assert_uint_eq(strlen(json), len);
    ck_assert_msg(r->finals == 0, "an event after the final: %s", json);
    if (final) {
        r->finals++;
        r->final = strdup(json);
        return;
    }
    ck_assert_uint_lt(r->n, 256);
    r->ev[r->n++] = strdup(json);
}

static int has_final(void *arg) { return ((struct rec *)arg)->finals > 0; }
static int has_one(void *arg) { return ((struct rec *)arg)->n > 0; }

static void rec_free(struct rec *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->ev[i]);
    free(r->final);
    memset(r, 0, sizeof *r);
}

/* The final came, alone, and nothing follows it for a while. */
static void expect_final(struct rec *r, const char *code_or_text, int ms)
{
    ck_assert_msg(run_until(has_final, r, ms), "no final within %d ms", ms);
    run_for(200);
    ck_assert_int_eq(r->finals, 1);
    ck_assert_msg(strstr(r->final, code_or_text), "final %s lacks %s", r->final, code_or_text);
}

static char *chunk(int seq)
{
    static char buf[8][96];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, sizeof buf[0], "{\"event\":\"chunk\",\"seq\":%d,\"output\":\"part %d, \\\"q\\\"}\"}",
             seq, seq);
    return b;
}

#define PROGRESS "{\"event\":\"progress\",\"done\":2,\"total\":5}"
#define DONE     "{\"event\":\"done\",\"output\":\"all\",\"queued_us\":1,\"run_us\":2}"

static void emit_chunk(struct result_store *rs, const char *h, int seq)
{
    const char *c = chunk(seq);
    result_store_job_event(rs, h, (uint64_t)seq, c, strlen(c), 1 << 20);
}

static void emit_text(struct result_store *rs, const char *h, const char *t)
{
    result_store_job_event(rs, h, 0, t, strlen(t), 1 << 20);
}

static void expect_chunks(const struct rec *r, size_t at, int from, int to)
{
    for (int s = from; s <= to; s++, at++) {
        ck_assert_uint_lt(at, r->n);
        ck_assert_str_eq(r->ev[at], chunk(s));
    }
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(event_kinds_are_read_from_the_top_level)
{
    uint64_t seq = 99;
    const char *t = "{\"output\":\"{\\\"seq\\\":7,\\\"event\\\":\\\"done\\\"}\",\"seq\":12,"
                    "\"x\":[1,{\"seq\":3}],\"event\":\"chunk\"}";
    ck_assert_int_eq(rs_event_kind(t, strlen(t), &seq), RS_EV_CHUNK);
    ck_assert_uint_eq(seq, 12);
    t = " { \"event\" : \"error\" , \"code\":\"cancelled\"}";
    ck_assert_int_eq(rs_event_kind(t, strlen(t), &seq), RS_EV_FINAL);
    ck_assert_int_eq(rs_event_kind(PROGRESS, strlen(PROGRESS), &seq), RS_EV_OTHER);
    ck_assert_int_eq(rs_event_kind(DONE, strlen(DONE), &seq), RS_EV_FINAL);
    t = "{\"event\":\"chunk\"}";                              /* no seq */
    ck_assert_int_eq(rs_event_kind(t, strlen(t), &seq), RS_EV_OTHER);
    t = "{\"event\":\"chunk\",\"seq\":-1}";
    ck_assert_int_eq(rs_event_kind(t, strlen(t), &seq), RS_EV_OTHER);
    t = "{\"event\":\"chunk\",\"seq\":4";                     /* cut short: still read */
    ck_assert_int_eq(rs_event_kind(t, strlen(t), &seq), RS_EV_CHUNK);
    t = "{\"event\":\"chu";
    ck_assert_int_eq(rs_event_kind(t, strlen(t), &seq), RS_EV_OTHER);
    ck_assert_int_eq(rs_event_kind("[1]", 3, &seq), RS_EV_OTHER);
    ck_assert_int_eq(rs_event_kind("", 0, &seq), RS_EV_OTHER);
}
END_TEST

START_TEST(malformed_urls_are_refused_with_a_reason)
{
    static const char *const bad[][2] = {
        { "http://127.0.0.1:6379", "scheme" },
        { "redis://", "host" },
        { "redis://:6379", "host" },
        { "redis://h:0", "port" },
        { "redis://h:65536", "port" },
        { "redis://h:", "port" },
        { "redis://h:12x", "port" },
        { "redis://h:6379/abc", "database" },
        { "redis://user:pw@h:6379", "password" },
        { "redis://h:6379?db=1", "query" },
        { "rediss://h:6379", "TLS" },
        { "redis://[::1:6379", "IPv6" },
        { "redis://[nope]:6379", "IPv6" },
        { "redis://ho st:6379", "host" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        ck_assert_ptr_null(result_store_new(base, bad[i][0], "i1", 60, err, sizeof err));
        ck_assert_msg(strstr(err, bad[i][1]) && strstr(err, bad[i][0]),
                      "%s: %s", bad[i][0], err);
    }
    ck_assert_ptr_null(result_store_new(base, "redis://h", "has space", 60, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "instance"));
    ck_assert_ptr_null(result_store_new(base, "redis://h", "i1", 0, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "TTL"));

    static const char *const good[] = {
        "redis://127.0.0.1:6379/2", "redis://[::1]:6380", "redis://[::1]",
        "redis://localhost", "redis://redis.example:7000/", "redis://10.0.0.1",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct result_store *rs = result_store_new(base, good[i], "i1", 60, err, sizeof err);
        ck_assert_msg(rs != NULL, "%s: %s", good[i], err);
        ck_assert_int_eq(result_store_up(rs), 0);
        ck_assert_str_eq(result_store_state(rs), "connecting");
        result_store_free(rs);
    }
}
END_TEST

START_TEST(replay_from_zero_and_from_n)
{
    struct result_store *a = store("owner1"), *b = store("other1");
    const char *h = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0";
    result_store_job_begin(a, h);
    emit_chunk(a, h, 0);
    emit_chunk(a, h, 1);
    emit_text(a, h, PROGRESS);
    for (int s = 2; s <= 4; s++)
        emit_chunk(a, h, s);
    result_store_job_final(a, h, DONE, strlen(DONE));
    wait_key("wsjobd:job:a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0:final");

    struct rec r = { 0 };
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &r));
    ck_assert_int_eq(r.n + (size_t)r.finals, 0);     /* nothing from inside the call */
    expect_final(&r, DONE, 3000);
    ck_assert_uint_eq(r.n, 6);
    expect_chunks(&r, 0, 0, 1);
    ck_assert_str_eq(r.ev[2], PROGRESS);
    expect_chunks(&r, 3, 2, 4);
    ck_assert_str_eq(r.final, DONE);
    rec_free(&r);

    /* From seq 3: the newest progress (a state, not a stream), then 3 and 4. */
    ck_assert_ptr_nonnull(result_store_follow(b, h, 3, rec_on, &r));
    expect_final(&r, DONE, 3000);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_str_eq(r.ev[0], PROGRESS);
    expect_chunks(&r, 1, 3, 4);
    rec_free(&r);

    /* Past the end: only the final. */
    ck_assert_ptr_nonnull(result_store_follow(b, h, 9, rec_on, &r));
    expect_final(&r, DONE, 3000);
    ck_assert_uint_eq(r.n, 1);                       /* the progress */
    rec_free(&r);

    struct rs_stats st;
    result_store_stats(b, &st);
    ck_assert_uint_eq(st.follows_active, 0);
    ck_assert_uint_eq(st.writes_dropped_total, 0);
    result_store_free(a);
    result_store_free(b);
}
END_TEST

START_TEST(live_follow_gets_every_event_once_then_the_final)
{
    struct result_store *a = store("owner2"), *b = store("other2");
    const char *h = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
    result_store_job_begin(a, h);
    wait_key("wsjobd:job:b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1:owner");

    struct rec r = { 0 };
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &r));
    run_for(300);                                    /* subscribed, snapshot read */
    ck_assert_uint_eq(r.n + (size_t)r.finals, 0);
    for (int s = 0; s < 20; s++) {
        emit_chunk(a, h, s);
        if (s == 10)
            emit_text(a, h, PROGRESS);
        if (s % 5 == 0)
            run_for(20);                             /* some live, some in batches */
    }
    result_store_job_final(a, h, DONE, strlen(DONE));
    expect_final(&r, DONE, 3000);
    ck_assert_uint_eq(r.n, 21);
    expect_chunks(&r, 0, 0, 10);
    ck_assert_str_eq(r.ev[11], PROGRESS);
    expect_chunks(&r, 12, 11, 19);
    rec_free(&r);
    result_store_free(a);
    result_store_free(b);
}
END_TEST

START_TEST(follows_started_mid_stream_share_a_channel)
{
    struct result_store *a = store("owner3"), *b = store("other3");
    const char *h = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2";
    result_store_job_begin(a, h);
    for (int s = 0; s < 3; s++)
        emit_chunk(a, h, s);
    struct rec r0 = { 0 }, r2 = { 0 }, gone = { 0 };
    /* Started in the same turn as the writes: the snapshot and the messages
     * overlap, and dedupe by seq must leave each chunk once. */
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &r0));
    ck_assert_ptr_nonnull(result_store_follow(b, h, 2, rec_on, &r2));
    struct rs_follow *g = result_store_follow(b, h, 0, rec_on, &gone);
    ck_assert_ptr_nonnull(g);
    for (int s = 3; s < 6; s++)
        emit_chunk(a, h, s);
    run_for(100);
    result_store_unfollow(g);                        /* its client left */
    for (int s = 6; s < 9; s++)
        emit_chunk(a, h, s);
    result_store_job_final(a, h, DONE, strlen(DONE));
    expect_final(&r0, DONE, 3000);
    expect_final(&r2, DONE, 3000);
    ck_assert_uint_eq(r0.n, 9);
    expect_chunks(&r0, 0, 0, 8);
    ck_assert_uint_eq(r2.n, 7);
    expect_chunks(&r2, 0, 2, 8);
    ck_assert_int_eq(gone.finals, 0);
    ck_assert_uint_le(gone.n, 6);
    struct rs_stats st;
    result_store_stats(b, &st);
    ck_assert_uint_eq(st.follows_active, 0);
    rec_free(&r0);
    rec_free(&r2);
    rec_free(&gone);
    result_store_free(a);
    result_store_free(b);
}
END_TEST

START_TEST(unknown_handle_is_one_not_found)
{
    struct result_store *b = store("other4");
    struct rec r = { 0 };
    ck_assert_ptr_nonnull(result_store_follow(b, "ffffffffffffffffffffffffffffffff", 0, rec_on, &r));
    ck_assert_int_eq(r.finals, 0);
    expect_final(&r, "\"code\":\"not_found\"", 3000);
    ck_assert_uint_eq(r.n, 0);
    rec_free(&r);

    char longh[300];
    memset(longh, 'a', sizeof longh - 1);
    longh[sizeof longh - 1] = 0;
    ck_assert_ptr_nonnull(result_store_follow(b, longh, 0, rec_on, &r));
    ck_assert_int_eq(r.finals, 0);
    expect_final(&r, "\"code\":\"not_found\"", 3000);
    rec_free(&r);
    result_store_free(b);
}
END_TEST

START_TEST(owner_gone_without_a_final_is_worker_crashed)
{
    struct result_store *a = store("owner5"), *b = store("other5");
    const char *h = "d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3";
    result_store_job_begin(a, h);
    emit_chunk(a, h, 0);
    wait_key("wsjobd:job:d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3:ev");
    struct rec r = { 0 };
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &r));
    ck_assert(run_until(has_one, &r, 3000));       /* the snapshot's chunk */
    run_for(100);
    ck_assert_uint_eq(r.n, 1);
    int64_t t0 = now_ms();
    result_store_free(a);                            /* no more heartbeats */
    expect_final(&r, "\"code\":\"worker_crashed\"", 8000);
    int64_t took = now_ms() - t0;
    /* The heartbeat key lives 3 s; checks are 1 s apart. */
    ck_assert_msg(took < 6000, "took %lld ms", (long long)took);
    ck_assert_uint_eq(r.n, 1);
    rec_free(&r);
    result_store_free(b);
}
END_TEST

struct cancels {
    int  n;
    char last[64];
};

static void on_cancel(void *arg, const char *handle)
{
    struct cancels *c = arg;
    c->n++;
    snprintf(c->last, sizeof c->last, "%s", handle);
}

static int got_cancel(void *arg) { return ((struct cancels *)arg)->n > 0; }

START_TEST(remote_cancel_reaches_the_owner)
{
    struct result_store *a = store("owner6"), *b = store("other6");
    struct cancels ca = { 0 };
    result_store_on_cancel(a, on_cancel, &ca);
    result_store_job_cancel(b, "e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4");
    ck_assert(run_until(got_cancel, &ca, 3000));
    run_for(100);
    ck_assert_int_eq(ca.n, 1);
    ck_assert_str_eq(ca.last, "e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4");
    result_store_free(a);
    result_store_free(b);
}
END_TEST

static long long int_reply(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER, "%s", cmd);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

START_TEST(list_is_trimmed_by_bytes_and_keys_expire)
{
    struct result_store *a = store("owner7");
    const char *h = "f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5";
    size_t one = strlen(chunk(10));                  /* seqs 10..29: same length */
    for (int s = 10; s < 30; s++) {
        const char *c = chunk(s);
        result_store_job_event(a, h, (uint64_t)s, c, strlen(c), 5 * one + one / 2);
    }
    result_store_job_final(a, h, DONE, strlen(DONE));
    wait_key("wsjobd:job:f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5:final");
    redisContext *c = sync_client(port);
    ck_assert(c && !c->err);
    ck_assert_int_eq(int_reply(c, "LLEN wsjobd:job:f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5:ev"), 5);
    redisReply *r = redisCommand(c, "LINDEX wsjobd:job:f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5:ev 0");
    ck_assert_str_eq(r->str, chunk(25));
    freeReplyObject(r);
    static const char *const keys[] = { "ev", "owner", "final" };
    for (int i = 0; i < 3; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "PTTL wsjobd:job:%s:%s", h, keys[i]);
        long long ttl = int_reply(c, cmd);
        ck_assert_msg(ttl > 50000 && ttl <= 60000, "%s: %lld", cmd, ttl);
    }
    long long hb = int_reply(c, "PTTL wsjobd:inst:owner7");
    ck_assert_msg(hb > 0 && hb <= 3000, "heartbeat PTTL %lld", hb);
    r = redisCommand(c, "GET wsjobd:job:f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5:owner");
    ck_assert_str_eq(r->str, "owner7");
    freeReplyObject(r);
    redisFree(c);
    result_store_free(a);
}
END_TEST

START_TEST(database_number_selects_the_database)
{
    snprintf(url, sizeof url, "redis://localhost:%d/3", port);   /* a name: evdns */
    struct result_store *a = store("owner8");
    result_store_job_begin(a, "0123");
    redisContext *c = sync_client(port);
    ck_assert(c && !c->err);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    int64_t end = now_ms() + 3000;
    while (int_reply(c, "EXISTS wsjobd:job:0123:owner") == 0) {
        ck_assert(now_ms() < end);
        run_for(10);
    }
    freeReplyObject(redisCommand(c, "SELECT 0"));
    ck_assert_int_eq(int_reply(c, "EXISTS wsjobd:job:0123:owner"), 0);
    redisFree(c);
    result_store_free(a);
}
END_TEST

START_TEST(bad_database_keeps_it_down_and_says_why)
{
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/999", port);
    struct result_store *a = result_store_new(base, url, "owner9", 60, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    run_for(1500);
    ck_assert_int_eq(result_store_up(a), 0);
    ck_assert_msg(strstr(result_store_state(a), "SELECT"), "%s", result_store_state(a));
    result_store_free(a);
}
END_TEST

/* A peer that completes the TCP handshake (the kernel does, from the
 * backlog) and never says a word. */
START_TEST(silent_server_times_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(sin.sin_port));
    struct result_store *a = result_store_new(base, url, "owner10", 60, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    run_for(4500);
    ck_assert_int_eq(result_store_up(a), 0);
    ck_assert_str_eq(result_store_state(a), "connect timed out");
    struct rs_stats st;
    result_store_stats(a, &st);
    ck_assert_uint_ge(st.reconnects_total, 1);
    result_store_free(a);
    close(fd);
}
END_TEST

/* Its own server: it is killed and started again. */
START_TEST(redis_killed_and_restarted)
{
    port = free_port();
    pid_t pid = redis_start(port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    struct result_store *a = store("owner11"), *b = store("other11");
    const char *h = "a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6";
    result_store_job_begin(a, h);
    emit_chunk(a, h, 0);
    wait_key("wsjobd:job:a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6:ev");
    struct rec r = { 0 };
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &r));
    ck_assert(run_until(has_one, &r, 3000));       /* the snapshot's chunk */
    run_for(100);
    ck_assert_uint_eq(r.n, 1);

    redis_kill(pid);
    ck_assert(run_until(is_down, a, 5000));
    ck_assert(run_until(is_down, b, 5000));
    expect_final(&r, "\"code\":\"busy\"", 3000);
    ck_assert_ptr_nonnull(strstr(r.final, "result store unavailable"));
    rec_free(&r);
    ck_assert_str_ne(result_store_state(a), "up");

    /* Writes while down are dropped and counted; a follow ends busy, from
     * the loop. */
    struct rs_stats st;
    result_store_stats(a, &st);
    uint64_t dropped = st.writes_dropped_total;
    emit_chunk(a, h, 1);
    emit_chunk(a, h, 2);
    result_store_job_final(a, h, DONE, strlen(DONE));
    result_store_stats(a, &st);
    ck_assert_uint_eq(st.writes_dropped_total, dropped + 3);
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &r));
    ck_assert_int_eq(r.finals, 0);
    expect_final(&r, "\"code\":\"busy\"", 1000);
    rec_free(&r);
    run_for(1500);                                   /* some retries, refused */
    ck_assert_int_eq(result_store_up(a), 0);

    pid = redis_start(port);
    ck_assert_msg(run_until(is_up, a, 8000), "%s", result_store_state(a));
    ck_assert(run_until(is_up, b, 8000));
    result_store_stats(a, &st);
    ck_assert_uint_ge(st.reconnects_total, 2);
    ck_assert_str_eq(st.state, "up");

    /* And it works again. */
    const char *h2 = "b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7";
    result_store_job_begin(a, h2);
    emit_chunk(a, h2, 0);
    result_store_job_final(a, h2, DONE, strlen(DONE));
    wait_key("wsjobd:job:b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7:final");
    ck_assert_ptr_nonnull(result_store_follow(b, h2, 0, rec_on, &r));
    expect_final(&r, DONE, 3000);
    ck_assert_uint_eq(r.n, 1);
    rec_free(&r);
    result_store_free(a);
    result_store_free(b);
    redis_kill(pid);
}
END_TEST

/* Follows start while chunks stream out one per loop turn, so some start
 * with messages arriving between their subscription and their snapshot:
 * each must still see every chunk from its from_seq once, in order. */
START_TEST(follows_racing_a_fast_writer)
{
    struct result_store *a = store("owner13"), *b = store("other13");
    const char *h = "d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9";
    enum { CHUNKS = 160, FOLLOWS = 8 };
    struct rec r[FOLLOWS] = { 0 };
    int from[FOLLOWS];
    result_store_job_begin(a, h);
    for (int s = 0; s < CHUNKS; s++) {
        emit_chunk(a, h, s);
        if (s % 20 == 10) {
            int i = s / 20;
            from[i] = s - 8 + (i % 4) * 4;           /* behind, at, ahead of the writer */
            ck_assert_ptr_nonnull(result_store_follow(b, h, (uint64_t)from[i], rec_on, &r[i]));
        }
        turn();
        turn();
    }
    result_store_job_final(a, h, DONE, strlen(DONE));
    for (int i = 0; i < FOLLOWS; i++) {
        expect_final(&r[i], DONE, 3000);
        ck_assert_uint_eq(r[i].n, (size_t)(CHUNKS - from[i]));
        expect_chunks(&r[i], 0, from[i], CHUNKS - 1);
        rec_free(&r[i]);
    }
    result_store_free(a);
    result_store_free(b);
}
END_TEST

START_TEST(ipv6_address_in_brackets)
{
    snprintf(url, sizeof url, "redis://[::1]:%d", port);
    struct result_store *a = store("owner14");
    result_store_job_begin(a, "0124");
    wait_key("wsjobd:job:0124:owner");
    result_store_free(a);
}
END_TEST

/* Subscribing, unsubscribing and subscribing the same channel again before
 * any confirmation: the later follows must wait for the last one. */
START_TEST(resubscribe_before_confirmation)
{
    struct result_store *a = store("owner15"), *b = store("other15");
    const char *h = "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1";
    result_store_job_begin(a, h);
    wait_key("wsjobd:job:e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1:owner");
    struct rec r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
    struct rs_follow *f1 = result_store_follow(b, h, 0, rec_on, &r1);
    result_store_unfollow(f1);                       /* SUBSCRIBE, UNSUBSCRIBE */
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &r2));   /* SUBSCRIBE */
    run_for(200);
    struct rs_follow *f3 = result_store_follow(b, h, 0, rec_on, &r3);  /* shares it */
    run_for(100);
    result_store_unfollow(f3);
    for (int s = 0; s < 4; s++)
        emit_chunk(a, h, s);
    result_store_job_final(a, h, DONE, strlen(DONE));
    expect_final(&r2, DONE, 3000);
    ck_assert_uint_eq(r2.n, 4);
    expect_chunks(&r2, 0, 0, 3);
    ck_assert_int_eq(r1.finals + r3.finals, 0);
    ck_assert_uint_eq(r1.n, 0);
    struct rs_stats st;
    result_store_stats(b, &st);
    ck_assert_uint_eq(st.follows_active, 0);
    rec_free(&r1);
    rec_free(&r2);
    rec_free(&r3);
    result_store_free(a);
    result_store_free(b);
}
END_TEST

/* A client that leaves from inside its own callback (its send failed). */
struct quitter {
    struct rec r;
    struct rs_follow *f;
    size_t after;
};

static void quit_on(void *arg, const char *json, size_t len, int final)
{
    struct quitter *q = arg;
    rec_on(&q->r, json, len, final);
    if (!final && q->r.n == q->after)
        result_store_unfollow(q->f);
}

START_TEST(unfollow_inside_the_callback)
{
    struct result_store *a = store("owner16"), *b = store("other16");
    const char *h = "f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2";
    result_store_job_begin(a, h);
    for (int s = 0; s < 5; s++)
        emit_chunk(a, h, s);
    wait_key("wsjobd:job:f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2:ev");
    run_for(50);
    struct quitter replay = { .after = 2 }, live = { .after = 6 };
    struct rec stays = { 0 };
    replay.f = result_store_follow(b, h, 0, quit_on, &replay);   /* leaves in the snapshot */
    live.f = result_store_follow(b, h, 0, quit_on, &live);       /* leaves live */
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &stays));
    run_for(300);
    for (int s = 5; s < 10; s++)
        emit_chunk(a, h, s);
    result_store_job_final(a, h, DONE, strlen(DONE));
    expect_final(&stays, DONE, 3000);
    ck_assert_uint_eq(stays.n, 10);
    ck_assert_uint_eq(replay.r.n, 2);
    ck_assert_uint_eq(live.r.n, 6);
    ck_assert_int_eq(replay.r.finals + live.r.finals, 0);
    struct rs_stats st;
    result_store_stats(b, &st);
    ck_assert_uint_eq(st.follows_active, 0);
    rec_free(&replay.r);
    rec_free(&live.r);
    rec_free(&stays);
    result_store_free(a);
    result_store_free(b);
}
END_TEST

START_TEST(free_ends_open_follows)
{
    struct result_store *a = store("owner12"), *b = store("other12");
    const char *h = "c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8";
    result_store_job_begin(a, h);
    wait_key("wsjobd:job:c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8:owner");
    struct rec live = { 0 }, fresh = { 0 };
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &live));
    run_for(200);
    ck_assert_ptr_nonnull(result_store_follow(b, h, 0, rec_on, &fresh));  /* reading */
    result_store_free(b);
    ck_assert_int_eq(live.finals, 1);
    ck_assert_int_eq(fresh.finals, 1);
    ck_assert_ptr_nonnull(strstr(live.final, "shutting_down"));
    rec_free(&live);
    rec_free(&fresh);
    result_store_free(a);
}
END_TEST

static Suite *result_store_suite(void)
{
    Suite *s = suite_create("result_store");
    TCase *u = tcase_create("offline");
    tcase_add_checked_fixture(u, loop_setup, loop_teardown);
    tcase_add_test(u, event_kinds_are_read_from_the_top_level);
    tcase_add_test(u, malformed_urls_are_refused_with_a_reason);
    tcase_add_test(u, silent_server_times_out);
    tcase_set_timeout(u, 60);
    suite_add_tcase(s, u);

    TCase *t = tcase_create("store");
    tcase_add_unchecked_fixture(t, server_up, server_down);
    tcase_add_checked_fixture(t, loop_setup, loop_teardown);
    tcase_add_test(t, replay_from_zero_and_from_n);
    tcase_add_test(t, live_follow_gets_every_event_once_then_the_final);
    tcase_add_test(t, follows_started_mid_stream_share_a_channel);
    tcase_add_test(t, unknown_handle_is_one_not_found);
    tcase_add_test(t, owner_gone_without_a_final_is_worker_crashed);
    tcase_add_test(t, remote_cancel_reaches_the_owner);
    tcase_add_test(t, list_is_trimmed_by_bytes_and_keys_expire);
    tcase_add_test(t, database_number_selects_the_database);
    tcase_add_test(t, bad_database_keeps_it_down_and_says_why);
    tcase_add_test(t, free_ends_open_follows);
    tcase_add_test(t, follows_racing_a_fast_writer);
    tcase_add_test(t, ipv6_address_in_brackets);
    tcase_add_test(t, resubscribe_before_confirmation);
    tcase_add_test(t, unfollow_inside_the_callback);
    tcase_set_timeout(t, 60);
    suite_add_tcase(s, t);

    TCase *o = tcase_create("outage");
    tcase_add_checked_fixture(o, loop_setup, loop_teardown);
    tcase_add_test(o, redis_killed_and_restarted);
    tcase_set_timeout(o, 90);
    suite_add_tcase(s, o);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_WARN);
    SRunner *sr = srunner_create(result_store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
