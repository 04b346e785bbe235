/* cli_bench_idle.c — `wsjob bench --idle N --pid PID`: what N idle
 * WebSocket connections cost.  PID's resident memory is read before the
 * connections open and after they are all up; the difference over N is the
 * cost per connection in that process.  The kernel's share is estimated
 * from the slab caches and the TCP buffer pages, divided over the 2N
 * sockets (both ends are on this host). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/cli_bench.h"

#define SETTLE_SECONDS 0.5   /* let the last upgrades' memory show */

struct mem_snapshot {
    long rss_kb;        /* VmRSS of the watched process, -1 unknown */
    long slab_kb;       /* /proc/meminfo Slab */
    long tcp_mem;       /* /proc/net/sockstat TCP mem, pages */
};

/* The number after `key` on the line of a /proc text file that starts
 * with `line`, or -1. */
static long proc_value(const char *path, const char *line, const char *key)
{
    FILE *f = fopen(path, "r");
    char buf[512];
    long v = -1;
    while (f && fgets(buf, sizeof buf, f)) {
        const char *k = strncmp(buf, line, strlen(line)) == 0 ? strstr(buf, key) : NULL;
        if (k) {
            v = strtol(k + strlen(key), NULL, 10);
            break;
        }
    }
    if (f)
        fclose(f);
    return v;
}

static void snapshot(long pid, struct mem_snapshot *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    s->rss_kb = pid > 0 ? proc_value(path, "VmRSS:", "VmRSS:") : -1;
    s->slab_kb = proc_value("/proc/meminfo", "Slab:", "Slab:");
    s->tcp_mem = proc_value("/proc/net/sockstat", "TCP:", " mem ");
}

static void nap(double seconds)
{
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void report(const struct bench_cfg *cfg, const struct mem_snapshot *b,
                   const struct mem_snapshot *a, double connect_s, uint64_t failed)
{
    double n = cfg->conns;
    double per_conn = b->rss_kb >= 0 && a->rss_kb >= 0 ? (double)(a->rss_kb - b->rss_kb) * 1024 / n : -1;
    double slab_sock = (double)(a->slab_kb - b->slab_kb) * 1024 / (2 * n);
    /* System-wide counters: other sockets on the host move them too, so a
     * small negative difference is noise around the idle sockets' zero. */
    double buf_sock = a->tcp_mem > b->tcp_mem ? (double)(a->tcp_mem - b->tcp_mem) * 4096 / (2 * n) : 0;
    fprintf(stderr, "bench idle: %u connections up in %.2f s\n", cfg->conns, connect_s);
    if (per_conn >= 0)
        fprintf(stderr, "  process %ld: VmRSS %ld -> %ld kB: %.0f bytes per connection\n",
                cfg->pid, b->rss_kb, a->rss_kb, per_conn);
    fprintf(stderr, "  kernel (approx.): slab %+ld kB, TCP buffers %+ld pages: "
            "%.0f + %.0f bytes per socket\n", a->slab_kb - b->slab_kb, a->tcp_mem - b->tcp_mem,
            slab_sock, buf_sock);
    json_t *o = bench_json_base(cfg, "idle");
    json_object_set_new(o, "conns", json_integer(cfg->conns));
    json_object_set_new(o, "connect_s", json_real((double)(int64_t)(connect_s * 1000) / 1000));
    if (per_conn >= 0) {
        json_object_set_new(o, "pid", json_integer(cfg->pid));
        json_object_set_new(o, "rss_before_kb", json_integer(b->rss_kb));
        json_object_set_new(o, "rss_after_kb", json_integer(a->rss_kb));
        json_object_set_new(o, "rss_per_conn_bytes", json_integer((json_int_t)per_conn));
    }
    json_object_set_new(o, "kernel_slab_per_socket_bytes", json_integer((json_int_t)slab_sock));
    json_object_set_new(o, "kernel_tcp_buf_per_socket_bytes", json_integer((json_int_t)buf_sock));
    json_object_set_new(o, "errors", json_integer((json_int_t)failed));
    bench_emit(o);
}

int bench_idle(const struct bench_cfg *cfg)
{
    struct bench_shared sh = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    struct bench_worker *ws = calloc(cfg->threads, sizeof *ws);
    struct mem_snapshot before, after;
    struct bench_stats total;
    if (!ws) {
        cli_error("out of memory");
        return CLI_FAIL;
    }
    snapshot(cfg->pid, &before);
    int64_t t0 = shm_now_ns();
    int rc = bench_start(cfg, &sh, ws);
    double connect_s = (double)(shm_now_ns() - t0) / 1e9;
    if (rc == 0) {
        nap(SETTLE_SECONDS);
        snapshot(cfg->pid, &after);
        nap(cfg->hold);
    }
    atomic_store(&sh.stop, 1);
    bench_join(cfg, ws, &total);
    free(ws);
    if (rc < 0) {
        cli_error("FAILED: not every connection could be made");
        return CLI_FAIL;
    }
    report(cfg, &before, &after, connect_s, total.conn_failed);
    return total.conn_failed ? CLI_FAIL : CLI_OK;
}
