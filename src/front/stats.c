/* stats.c — see stats.h.
 *
 * Loop lag: a timer asks to fire every LAG_PERIOD_MS; how late it actually
 * fires is time the loop spent on something else (a callback that ran long,
 * or the process not being scheduled).  Resolution is the clock's (ns)
 * bounded by libevent's timer precision (µs, epoll_wait's ms rounded up
 * means lateness under 1 ms can come from the kernel as well).  Samples go
 * into one histogram per 10 s slice; the last six slices make "last 60 s". */
#include "front/stats.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/histogram.h"
#include "base/timeval.h"
#include "front/detach.h"
#include "front/front.h"
#include "handlers/handler_registry.h"
#include "pipeline/dispatch.h"
#include "pipeline/supervisor.h"

#define LAG_PERIOD_MS 20
#define SLICE_NS      10000000000ll
#define SLICES        6

static struct {
    struct event *ev;
    int64_t expected_ns;
    struct histogram slice[SLICES];
    int64_t slice_start_ns[SLICES];
    unsigned cur;
    struct histogram total;
} lag;

static void lag_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    int64_t now = shm_now_ns();
    uint64_t late_us = now > lag.expected_ns ? (uint64_t)(now - lag.expected_ns) / 1000 : 0;
    if (now - lag.slice_start_ns[lag.cur] >= SLICE_NS) {
        lag.cur = (lag.cur + 1) % SLICES;
        memset(&lag.slice[lag.cur], 0, sizeof lag.slice[lag.cur]);
        lag.slice_start_ns[lag.cur] = now;
    }
    hist_record(&lag.slice[lag.cur], late_us);
    hist_record(&lag.total, late_us);
    lag.expected_ns = now + (int64_t)LAG_PERIOD_MS * 1000000;
    struct timeval tv = tv_from_ms(LAG_PERIOD_MS);
    event_add(lag.ev, &tv);
}

int stats_start(struct front *f)
{
    lag.ev = evtimer_new(f->base, lag_cb, NULL);
    if (!lag.ev)
        return -1;
    int64_t now = shm_now_ns();
    for (unsigned i = 0; i < SLICES; i++)
        lag.slice_start_ns[i] = now;
    lag.expected_ns = now + (int64_t)LAG_PERIOD_MS * 1000000;
    struct timeval tv = tv_from_ms(LAG_PERIOD_MS);
    return event_add(lag.ev, &tv);
}

void stats_stop(void)
{
    if (lag.ev)
        event_free(lag.ev);
    lag.ev = NULL;
}

static void recent_lag(struct histogram *h)
{
    memset(h, 0, sizeof *h);
    int64_t now = shm_now_ns();
    for (unsigned i = 0; i < SLICES; i++)
        if (now - lag.slice_start_ns[i] < SLICES * SLICE_NS)
            hist_merge(h, &lag.slice[i]);
}

static void kv(struct jout *j, const char *key, uint64_t v, int comma)
{
    jout_lit(j, "\"");
    jout_lit(j, key);
    jout_lit(j, "\":");
    jout_u64(j, v);
    if (comma)
        jout_lit(j, ",");
}

static void queue_json(struct jout *j, const char *name, uint64_t depth, uint64_t cap,
                       uint64_t enq, uint64_t full, int comma)
{
    jout_lit(j, "\"");
    jout_lit(j, name);
    jout_lit(j, "\":{");
    kv(j, "depth", depth, 1);
    kv(j, "capacity", cap, 1);
    kv(j, "enqueued_total", enq, 1);
    kv(j, "full_total", full, 0);
    jout_lit(j, comma ? "}," : "}");
}

static void worker_json(struct jout *j, const struct worker_desc *w, int64_t now)
{
    uint32_t state = atomic_load_explicit(&w->state, memory_order_acquire);
    jout_lit(j, "{");
    kv(j, "pid", (uint64_t)atomic_load(&w->pid), 1);
    if (w->cls == CLASS_IO)
        kv(j, "tid", (uint64_t)atomic_load(&w->tid), 1);
    jout_lit(j, w->cls == CLASS_CPU ? "\"class\":\"cpu\"," : "\"class\":\"io\",");
    jout_lit(j, state == WORKER_BUSY ? "\"state\":\"busy\"," :
                state == WORKER_IDLE ? "\"state\":\"idle\"," : "\"state\":\"starting\",");
    const struct wsjob_handler *h = registry_get((int)atomic_load(&w->job_type));
    if (state == WORKER_BUSY && h) {
        jout_lit(j, "\"job_type\":");
        jout_str(j, h->name, strlen(h->name));
        jout_lit(j, ",");
        int64_t started = atomic_load(&w->job_start_ns);
        kv(j, "job_runtime_ms", started && now > started ? (uint64_t)(now - started) / 1000000 : 0, 1);
    } else {
        jout_lit(j, "\"job_type\":null,\"job_runtime_ms\":0,");
    }
    kv(j, "jobs_done", atomic_load(&w->jobs_done), 0);
    jout_lit(j, "}");
}

static void detached_json(struct jout *j, const struct detach_stats *ds)
{
    jout_lit(j, "\"detached\":{");
    kv(j, "held", ds->held, 1);
    kv(j, "running", ds->running, 1);
    kv(j, "finished_kept", ds->finished_kept, 1);
    kv(j, "kept_bytes", ds->kept_bytes, 1);
    kv(j, "accepted_total", ds->accepted_total, 1);
    kv(j, "dropped_events_total", ds->dropped_events_total, 1);
    kv(j, "expired_total", ds->expired_total, 1);
    kv(j, "attach_total", ds->attach_total, 1);
    kv(j, "superseded_total", ds->superseded_total, 0);
    jout_lit(j, "},");
}

void stats_json(struct front *f, struct jout *j)
{
    const struct dispatch_stats *st = dispatch_stats(f->d);
    struct pipeline *p = f->p;
    int64_t now = shm_now_ns();
    struct histogram recent;
    recent_lag(&recent);

    jout_lit(j, "{\"version\":\"" WSJOBD_VERSION "\",");
    kv(j, "pid", (uint64_t)getpid(), 1);
    kv(j, "uptime_s", (uint64_t)(now - f->started_ns) / 1000000000, 1);
    jout_lit(j, "\"connections\":{");
    kv(j, "open", f->conns.open, 1);
    kv(j, "accepted_total", f->conns.accepted_total, 1);
    kv(j, "rejected_total", f->conns.rejected_total, 1);
    kv(j, "tls_open", f->conns.tls_open, 0);
    jout_lit(j, "},\"memory\":{");
    kv(j, "budget", f->cfg->memory_budget, 1);
    kv(j, "used", f->mem.used, 1);
    kv(j, "used_max", f->mem.used_max, 1);
    kv(j, "reached", f->mem.over, 1);
    kv(j, "paused_connections", f->mem.paused, 1);
    kv(j, "paused_total", f->mem.paused_total, 1);
    kv(j, "busy_total", f->mem.busy_total, 0);
    jout_lit(j, "},\"loop\":{");
    kv(j, "lag_us_p50", hist_percentile(&recent, 50), 1);
    kv(j, "lag_us_p99", hist_percentile(&recent, 99), 1);
    kv(j, "lag_us_max", recent.max, 1);
    kv(j, "lag_us_max_since_start", lag.total.max, 1);
    kv(j, "samples", recent.count, 1);
    kv(j, "period_ms", LAG_PERIOD_MS, 0);
    jout_lit(j, "},\"queues\":{");
    queue_json(j, "cpu", shm_jobring_depth(p->ring[CLASS_CPU]), shm_jobring_capacity(p->ring[CLASS_CPU]),
               st->enqueued[CLASS_CPU], st->full[CLASS_CPU], 1);
    queue_json(j, "io", shm_jobring_depth(p->ring[CLASS_IO]), shm_jobring_capacity(p->ring[CLASS_IO]),
               st->enqueued[CLASS_IO], st->full[CLASS_IO], 1);
    queue_json(j, "reply", shm_replyring_depth(p->replies), shm_replyring_capacity(p->replies),
               st->replies_total, 0, 0);
    jout_lit(j, "},\"workers\":[");
    for (uint32_t i = 0; i < p->nworkers; i++) {
        if (i)
            jout_lit(j, ",");
        worker_json(j, &p->workers[i], now);
    }
    jout_lit(j, "],");
    kv(j, "workers_restarted_total", supervisor_restarts(f->sup), 1);
    detached_json(j, detach_stats(f->ds));
    jout_lit(j, "\"jobs\":{");
    kv(j, "submitted_total", st->submitted, 1);
    kv(j, "done_total", st->done, 1);
    kv(j, "failed_total", st->failed, 1);
    kv(j, "cancelled_total", st->cancelled, 1);
    kv(j, "timeout_total", st->timeouts, 1);
    kv(j, "retried_total", st->retried, 1);
    kv(j, "in_flight", st->in_flight, 1);
    jout_lit(j, "\"by_type\":{");
    for (size_t t = 0; t < registry_count(); t++) {
        const struct wsjob_handler *h = registry_get((int)t);
        const struct histogram *rh = dispatch_type_run_us(f->d, (int)t);
        if (t)
            jout_lit(j, ",");
        jout_str(j, h->name, strlen(h->name));
        jout_lit(j, ":{");
        kv(j, "done", dispatch_type_count(f->d, (int)t, 0), 1);
        kv(j, "failed", dispatch_type_count(f->d, (int)t, 1), 1);
        kv(j, "run_us_p50", hist_percentile(rh, 50), 1);
        kv(j, "run_us_p99", hist_percentile(rh, 99), 0);
        jout_lit(j, "}");
    }
    jout_lit(j, "}}}\n");
}

/* ---- Prometheus text exposition ------------------------------------------ */

static void metric_head(struct jout *j, const char *name, const char *type, const char *help)
{
    char buf[256];
    snprintf(buf, sizeof buf, "# HELP wsjobd_%s %s\n# TYPE wsjobd_%s %s\n", name, help, name, type);
    jout_lit(j, buf);
}

static void metric(struct jout *j, const char *name, const char *labels, uint64_t v)
{
    char buf[256];
    snprintf(buf, sizeof buf, "wsjobd_%s%s%s%s %llu\n", name, labels ? "{" : "", labels ? labels : "",
             labels ? "}" : "", (unsigned long long)v);
    jout_lit(j, buf);
}

static void one(struct jout *j, const char *name, const char *type, const char *help, uint64_t v)
{
    metric_head(j, name, type, help);
    metric(j, name, NULL, v);
}

/* Histogram in seconds with fixed bucket bounds (µs values inside). */
static void hist_metric(struct jout *j, const char *name, const char *label,
                        const struct histogram *h)
{
    static const uint64_t le_us[] = { 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
                                      100000, 250000, 500000, 1000000, 2500000, 5000000,
                                      10000000, 30000000, 60000000 };
    char buf[320];
    for (size_t i = 0; i < sizeof le_us / sizeof le_us[0]; i++) {
        snprintf(buf, sizeof buf, "wsjobd_%s_bucket{%s%sle=\"%g\"} %llu\n", name, label ? label : "",
                 label ? "," : "", (double)le_us[i] / 1e6, (unsigned long long)hist_count_le(h, le_us[i]));
        jout_lit(j, buf);
    }
    snprintf(buf, sizeof buf, "wsjobd_%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label ? label : "",
             label ? "," : "", (unsigned long long)h->count);
    jout_lit(j, buf);
    snprintf(buf, sizeof buf, "wsjobd_%s_sum%s%s%s %g\n", name, label ? "{" : "", label ? label : "",
             label ? "}" : "", (double)h->sum / 1e6);
    jout_lit(j, buf);
    snprintf(buf, sizeof buf, "wsjobd_%s_count%s%s%s %llu\n", name, label ? "{" : "", label ? label : "",
             label ? "}" : "", (unsigned long long)h->count);
    jout_lit(j, buf);
}

static void detached_metrics(struct jout *j, const struct detach_stats *ds)
{
    one(j, "detached_held", "gauge", "Detached jobs held: running, or finished and kept.", ds->held);
    one(j, "detached_running", "gauge", "Detached jobs running.", ds->running);
    one(j, "detached_finished_kept", "gauge", "Finished detached jobs whose final event is kept.",
        ds->finished_kept);
    one(j, "detached_kept_bytes", "gauge", "Bytes of event text kept for detached jobs.",
        ds->kept_bytes);
    one(j, "detached_accepted_total", "counter", "Detached jobs accepted.", ds->accepted_total);
    one(j, "detached_dropped_events_total", "counter",
        "Chunk events of detached jobs dropped past --detach-buffer.", ds->dropped_events_total);
    one(j, "detached_expired_total", "counter", "Finished detached jobs forgotten after --result-ttl.",
        ds->expired_total);
    one(j, "detached_attach_total", "counter", "Attaches that found their detached job.",
        ds->attach_total);
    one(j, "detached_superseded_total", "counter", "Followers displaced by a newer attach.",
        ds->superseded_total);
}

void stats_metrics(struct front *f, struct jout *j)
{
    const struct dispatch_stats *st = dispatch_stats(f->d);
    struct pipeline *p = f->p;
    char lb[160];
    one(j, "uptime_seconds", "gauge", "Seconds since start.",
        (uint64_t)(shm_now_ns() - f->started_ns) / 1000000000);
    one(j, "connections_open", "gauge", "Open client connections.", f->conns.open);
    one(j, "connections_tls_open", "gauge", "Open TLS client connections.", f->conns.tls_open);
    one(j, "connections_accepted_total", "counter", "Connections accepted.", f->conns.accepted_total);
    one(j, "connections_rejected_total", "counter", "Connections refused at max-connections.",
        f->conns.rejected_total);
    one(j, "memory_budget_bytes", "gauge", "Bytes the front may hold in client buffers (0: no limit).",
        f->cfg->memory_budget);
    one(j, "memory_used_bytes", "gauge", "Bytes the front holds in client buffers.", f->mem.used);
    one(j, "memory_used_max_bytes", "gauge", "The most bytes held in client buffers at once.",
        f->mem.used_max);
    one(j, "memory_budget_reached", "gauge", "1 while the memory budget is reached.", f->mem.over);
    one(j, "memory_paused_connections", "gauge",
        "Connections not read because they hold the most past the budget.", f->mem.paused);
    one(j, "memory_paused_total", "counter", "Times a connection stopped being read for the budget.",
        f->mem.paused_total);
    one(j, "memory_busy_total", "counter", "Submits answered busy because the budget was reached.",
        f->mem.busy_total);
    metric_head(j, "queue_depth", "gauge", "Jobs waiting in a ring (not running).");
    metric(j, "queue_depth", "queue=\"cpu\"", shm_jobring_depth(p->ring[CLASS_CPU]));
    metric(j, "queue_depth", "queue=\"io\"", shm_jobring_depth(p->ring[CLASS_IO]));
    metric(j, "queue_depth", "queue=\"reply\"", shm_replyring_depth(p->replies));
    metric_head(j, "queue_capacity", "gauge", "Slots per ring.");
    metric(j, "queue_capacity", "queue=\"cpu\"", shm_jobring_capacity(p->ring[CLASS_CPU]));
    metric(j, "queue_capacity", "queue=\"io\"", shm_jobring_capacity(p->ring[CLASS_IO]));
    metric(j, "queue_capacity", "queue=\"reply\"", shm_replyring_capacity(p->replies));
    metric_head(j, "queue_enqueued_total", "counter", "Jobs put into a ring.");
    metric(j, "queue_enqueued_total", "queue=\"cpu\"", st->enqueued[CLASS_CPU]);
    metric(j, "queue_enqueued_total", "queue=\"io\"", st->enqueued[CLASS_IO]);
    metric_head(j, "queue_full_total", "counter", "Jobs refused because a ring was full.");
    metric(j, "queue_full_total", "queue=\"cpu\"", st->full[CLASS_CPU]);
    metric(j, "queue_full_total", "queue=\"io\"", st->full[CLASS_IO]);
    unsigned busy[2] = { 0, 0 }, all[2] = { 0, 0 };
    for (uint32_t i = 0; i < p->nworkers; i++) {
        all[p->workers[i].cls]++;
        busy[p->workers[i].cls] += atomic_load(&p->workers[i].state) == WORKER_BUSY;
    }
    metric_head(j, "workers", "gauge", "Worker slots (cpu processes, io threads).");
    metric(j, "workers", "class=\"cpu\"", all[CLASS_CPU]);
    metric(j, "workers", "class=\"io\"", all[CLASS_IO]);
    metric_head(j, "workers_busy", "gauge", "Workers running a job.");
    metric(j, "workers_busy", "class=\"cpu\"", busy[CLASS_CPU]);
    metric(j, "workers_busy", "class=\"io\"", busy[CLASS_IO]);
    one(j, "workers_restarted_total", "counter", "Worker processes forked again after one ended.",
        supervisor_restarts(f->sup));
    one(j, "jobs_submitted_total", "counter", "Jobs admitted.", st->submitted);
    one(j, "jobs_cancelled_total", "counter", "Jobs cancelled.", st->cancelled);
    one(j, "jobs_timeout_total", "counter", "Jobs past their deadline.", st->timeouts);
    one(j, "jobs_retried_total", "counter", "Jobs run again after their worker died.", st->retried);
    one(j, "jobs_in_flight", "gauge", "Jobs admitted and not yet answered.", st->in_flight);
    metric_head(j, "jobs_done_total", "counter", "Jobs answered done, by type.");
    for (size_t t = 0; t < registry_count(); t++) {
        snprintf(lb, sizeof lb, "type=\"%s\"", registry_get((int)t)->name);
        metric(j, "jobs_done_total", lb, dispatch_type_count(f->d, (int)t, 0));
    }
    metric_head(j, "jobs_failed_total", "counter", "Jobs answered with an error, by type.");
    for (size_t t = 0; t < registry_count(); t++) {
        snprintf(lb, sizeof lb, "type=\"%s\"", registry_get((int)t)->name);
        metric(j, "jobs_failed_total", lb, dispatch_type_count(f->d, (int)t, 1));
    }
    detached_metrics(j, detach_stats(f->ds));
    metric_head(j, "job_run_seconds", "histogram", "Handler run time of jobs answered done.");
    for (size_t t = 0; t < registry_count(); t++) {
        snprintf(lb, sizeof lb, "type=\"%s\"", registry_get((int)t)->name);
        hist_metric(j, "job_run_seconds", lb, dispatch_type_run_us(f->d, (int)t));
    }
    metric_head(j, "loop_lag_seconds", "histogram", "How late the front's periodic timer fired, since start.");
    hist_metric(j, "loop_lag_seconds", NULL, &lag.total);
}
