/* cli_bench_ping.c — `wsjob bench --ping`: WebSocket ping → pong round
 * trips on one otherwise idle connection, at a fixed rate.  The front
 * answers pings itself, so this is the figure that shows whether its loop
 * stays responsive while every worker is busy. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "client/cli_bench.h"

#define GRACE_NS 5000000000ll   /* how long the last pong may take */

struct ping_run {
    struct histogram rtt_us;
    uint64_t sent, got, wrong;
};

static int send_ping(struct ws_client *c, struct ping_run *r)
{
    uint64_t payload[2] = { r->sent, (uint64_t)shm_now_ns() };
    if (ws_client_ping(c, payload, sizeof payload) < 0)
        return -1;
    r->sent++;
    return 0;
}

/* Pongs come back in order (RFC 6455 §5.5.3 allows skipping some, but the
 * front answers every one), each carrying its ping's send time. */
static void got_pong(struct ping_run *r, const struct ws_msg *m)
{
    uint64_t payload[2];
    if (m->len != sizeof payload) {
        r->wrong++;
        return;
    }
    memcpy(payload, m->data, sizeof payload);
    if (payload[0] != r->got)
        r->wrong++;
    hist_record(&r->rtt_us, ((uint64_t)shm_now_ns() - payload[1]) / 1000);
    r->got++;
}

static int exchange(const struct bench_cfg *cfg, struct ws_client *c, struct ping_run *r,
                    uint64_t count)
{
    int64_t interval = (int64_t)(1e9 / cfg->rate), next = shm_now_ns();
    int64_t end = next + interval * (int64_t)count + GRACE_NS;
    while (r->got + r->wrong < count) {
        int64_t now = shm_now_ns();
        if (r->sent < count && now >= next) {
            if (send_ping(c, r) < 0)
                break;
            next += interval;
            continue;
        }
        int64_t until = r->sent < count ? next : end;
        if (now >= end)
            break;
        struct ws_msg m;
        int got = ws_client_recv(c, &m, (int)((until - now + 999999) / 1000000));
        if (got > 0 && m.opcode == WS_OP_PONG)
            got_pong(r, &m);
        else if (got < 0 || (got > 0 && m.opcode == WS_OP_CLOSE))
            break;
    }
    return r->got == count && r->wrong == 0 ? 0 : -1;
}

int bench_ping(const struct bench_cfg *cfg)
{
    char why[256];
    struct ping_run r = { 0 };
    uint64_t count = cfg->total ? cfg->total : (uint64_t)(cfg->seconds * cfg->rate);
    if (count == 0)
        count = 1;
    struct ws_client *c = ws_client_open(&cfg->url, cfg->target, cfg->extra, cfg->tls, 10000,
                                         why, sizeof why);
    if (!c) {
        cli_error("%s", why);
        return CLI_FAIL;
    }
    int rc = exchange(cfg, c, &r, count);
    if (rc < 0)
        cli_error("FAILED: %llu of %llu pongs came back (%llu wrong)%s%s",
                  (unsigned long long)r.got, (unsigned long long)count,
                  (unsigned long long)r.wrong, *ws_client_error(c) ? ": " : "", ws_client_error(c));
    ws_client_close(c);
    const struct histogram *h = &r.rtt_us;
    fprintf(stderr, "bench ping: %llu pings at %.0f/s: rtt us p50 %llu  p99 %llu  max %llu\n",
            (unsigned long long)r.got, cfg->rate, (unsigned long long)hist_percentile(h, 50),
            (unsigned long long)hist_percentile(h, 99), (unsigned long long)h->max);
    json_t *o = bench_json_base(cfg, "ping");
    json_object_set_new(o, "rate", json_integer((json_int_t)cfg->rate));
    json_object_set_new(o, "pings", json_integer((json_int_t)r.got));
    json_object_set_new(o, "p50_us", json_integer((json_int_t)hist_percentile(h, 50)));
    json_object_set_new(o, "p99_us", json_integer((json_int_t)hist_percentile(h, 99)));
    json_object_set_new(o, "p999_us", json_integer((json_int_t)hist_percentile(h, 99.9)));
    json_object_set_new(o, "max_us", json_integer((json_int_t)h->max));
    json_object_set_new(o, "errors", json_integer((json_int_t)(count - r.got + r.wrong)));
    bench_emit(o);
    return rc < 0 ? CLI_FAIL : CLI_OK;
}
