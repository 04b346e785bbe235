/* stats.c — see stats.h.
 *
 * Loop lag: a timer asks to fire every LAG_PERIOD_MS; how late it actually
 * fires is time the loop spent on something else (a callback that ran long,
 * or the process not being scheduled).  Resolution is the clock's (ns)
 * bounded by libevent's timer precision (µs, epoll_wait's ms rounded up
 * means lateness under 1 ms can come from the kernel as well).  Samples go
 * into one histogram per 10 s slice; the last six slices make "last 60 s".
 *
 * With no connection open and no job in flight the loop has nothing to be
 * late for, and a 20 ms timer would be the only thing waking an idle daemon
 * (50 wake-ups a second): the sampler stops re-arming and the next
 * connection restarts it. */
#include "front/stats.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/histogram.h"
#include "base/timeval.h"
#include "front/agent_check.h"
#include "front/dashboard_feed.h"
#include "front/dashboard_history.h"
#include "front/detach.h"
#include "front/front.h"
#include "front/stats_parts.h"
#include "handlers/handler_registry.h"
#include "pipeline/dispatch.h"
#include "pipeline/supervisor.h"

#define LAG_PERIOD_MS 20
#define SLICE_NS      10000000000ll
#define SLICES        6

static struct {
    struct event *ev;
    struct front *f;
    int asleep;
    int64_t expected_ns;
    struct histogram slice[SLICES];
    int64_t slice_start_ns[SLICES];
    unsigned cur;
    struct histogram total;
} lag;

static void lag_arm(int64_t now)
{
    lag.expected_ns = now + (int64_t)LAG_PERIOD_MS * 1000000;
    struct timeval tv = tv_from_ms(LAG_PERIOD_MS);
    event_add(lag.ev, &tv);
}

static void lag_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    int64_t now = shm_now_ns();
    history_tick(arg, now);
    uint64_t late_us = now > lag.expected_ns ? (uint64_t)(now - lag.expected_ns) / 1000 : 0;
    if (now - lag.slice_start_ns[lag.cur] >= SLICE_NS) {
        lag.cur = (lag.cur + 1) % SLICES;
        memset(&lag.slice[lag.cur], 0, sizeof lag.slice[lag.cur]);
        lag.slice_start_ns[lag.cur] = now;
    }
    hist_record(&lag.slice[lag.cur], late_us);
    hist_record(&lag.total, late_us);
    if (lag.f->conns.open == 0 && dispatch_stats(lag.f->d)->in_flight == 0) {
        lag.asleep = 1;
        return;
    }
    lag_arm(now);
}

void stats_lag_wake(void)
{
    if (!lag.ev || !lag.asleep)
        return;
    lag.asleep = 0;
    int64_t now = shm_now_ns();
    /* Asleep, nothing could change: no connection to submit, no job to end. */
    history_fill_quiet(lag.f, now);
    lag_arm(now);
}

int stats_start(struct front *f)
{
    lag.ev = evtimer_new(f->base, lag_cb, f);
    if (!lag.ev)
        return -1;
    lag.f = f;
    int64_t now = shm_now_ns();
    for (unsigned i = 0; i < SLICES; i++)
        lag.slice_start_ns[i] = now;
    lag_arm(now);
    return 0;
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

void stats_kv(struct jout *j, const char *key, uint64_t v, int comma)
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
    stats_kv(j, "depth", depth, 1);
    stats_kv(j, "capacity", cap, 1);
    stats_kv(j, "enqueued_total", enq, 1);
    stats_kv(j, "full_total", full, 0);
    jout_lit(j, comma ? "}," : "}");
}

static void worker_json(struct jout *j, const struct worker_desc *w, int64_t now)
{
    uint32_t state = atomic_load_explicit(&w->state, memory_order_acquire);
    jout_lit(j, "{");
    stats_kv(j, "pid", (uint64_t)atomic_load(&w->pid), 1);
    if (w->cls == CLASS_IO)
        stats_kv(j, "tid", (uint64_t)atomic_load(&w->tid), 1);
    jout_lit(j, w->cls == CLASS_CPU ? "\"class\":\"cpu\"," : "\"class\":\"io\",");
    jout_lit(j, state == WORKER_BUSY ? "\"state\":\"busy\"," :
                state == WORKER_IDLE ? "\"state\":\"idle\"," : "\"state\":\"starting\",");
    const struct wsjob_handler *h = registry_get((int)atomic_load(&w->job_type));
    if (state == WORKER_BUSY && h) {
        jout_lit(j, "\"job_type\":");
        jout_str(j, h->name, strlen(h->name));
        jout_lit(j, ",");
        int64_t started = atomic_load(&w->job_start_ns);
        stats_kv(j, "job_runtime_ms", started && now > started ? (uint64_t)(now - started) / 1000000 : 0, 1);
    } else {
        jout_lit(j, "\"job_type\":null,\"job_runtime_ms\":0,");
    }
    stats_kv(j, "jobs_done", atomic_load(&w->jobs_done), 1);
    stats_kv(j, "rss_bytes", (uint64_t)atomic_load_explicit(&w->rss_kib, memory_order_relaxed) << 10, 1);
    stats_kv(j, "restarts", atomic_load_explicit(&w->incarnation, memory_order_relaxed), 0);
    jout_lit(j, "}");
}

/* Workers running a job of each type now (from their descriptors). */
static void running_by_type(const struct pipeline *p, uint32_t *running)
{
    memset(running, 0, REGISTRY_MAX * sizeof *running);
    for (uint32_t i = 0; i < p->nworkers; i++) {
        const struct worker_desc *w = &p->workers[i];
        uint32_t t = atomic_load_explicit(&w->job_type, memory_order_relaxed);
        if (atomic_load_explicit(&w->state, memory_order_acquire) == WORKER_BUSY && t < REGISTRY_MAX)
            running[t]++;
    }
}

static void type_json(struct jout *j, const struct dispatch *d, int t, uint32_t running)
{
    const struct wsjob_handler *h = registry_get(t);
    const struct type_counts *tc = dispatch_type_counts(d, t);
    const struct histogram *rh = dispatch_type_run_us(d, t);
    jout_str(j, h->name, strlen(h->name));
    jout_lit(j, h->cls == WSJOB_IO ? ":{\"class\":\"io\"," : ":{\"class\":\"cpu\",");
    stats_kv(j, "submitted", tc->submitted, 1);
    stats_kv(j, "done", tc->done, 1);
    stats_kv(j, "failed", tc->failed, 1);
    stats_kv(j, "running", running, 1);
    stats_kv(j, "in_flight", tc->submitted - tc->done - tc->failed, 1);
    jout_lit(j, "\"errors\":{");
    int first = 1;
    for (int e = JE_NONE + 1; e < JE_COUNT; e++) {
        if (!tc->errors[e])
            continue;
        if (!first)
            jout_lit(j, ",");
        first = 0;
        stats_kv(j, job_error_name((enum job_error)e), tc->errors[e], 0);
    }
    jout_lit(j, "},");
    stats_kv(j, "run_us_p50", hist_percentile(rh, 50), 1);
    stats_kv(j, "run_us_p99", hist_percentile(rh, 99), 0);
    jout_lit(j, "}");
}

/* "agent":{...}, — port 0 and last null without --agent-listen. */
static void agent_json(struct jout *j, const struct front *f)
{
    struct agent_counts ac;
    agent_check_counts(f->agent, &ac);
    jout_lit(j, "\"agent\":{");
    stats_kv(j, "port", (uint64_t)ac.port, 1);
    stats_kv(j, "answers_total", ac.answers_total, 1);
    stats_kv(j, "drain_total", ac.drain_total, 1);
    stats_kv(j, "lingering", ac.lingering, 1);
    jout_lit(j, "\"last\":");
    if (ac.last[0])
        jout_str(j, ac.last, strlen(ac.last));
    else
        jout_lit(j, "null");
    jout_lit(j, "},");
}

static void detached_json(struct jout *j, const struct detach_stats *ds)
{
    jout_lit(j, "\"detached\":{");
    stats_kv(j, "held", ds->held, 1);
    stats_kv(j, "running", ds->running, 1);
    stats_kv(j, "finished_kept", ds->finished_kept, 1);
    stats_kv(j, "kept_bytes", ds->kept_bytes, 1);
    stats_kv(j, "accepted_total", ds->accepted_total, 1);
    stats_kv(j, "dropped_events_total", ds->dropped_events_total, 1);
    stats_kv(j, "expired_total", ds->expired_total, 1);
    stats_kv(j, "attach_total", ds->attach_total, 1);
    stats_kv(j, "superseded_total", ds->superseded_total, 0);
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
    stats_kv(j, "pid", (uint64_t)getpid(), 1);
    stats_kv(j, "uptime_s", (uint64_t)(now - f->started_ns) / 1000000000, 1);
    jout_lit(j, "\"connections\":{");
    stats_kv(j, "open", f->conns.open, 1);
    stats_kv(j, "accepted_total", f->conns.accepted_total, 1);
    stats_kv(j, "rejected_total", f->conns.rejected_total, 1);
    stats_kv(j, "tls_open", f->conns.tls_open, 0);
    jout_lit(j, "},\"memory\":{");
    stats_kv(j, "budget", f->cfg->memory_budget, 1);
    stats_kv(j, "used", f->mem.used, 1);
    stats_kv(j, "used_max", f->mem.used_max, 1);
    stats_kv(j, "reached", f->mem.over, 1);
    stats_kv(j, "paused_connections", f->mem.paused, 1);
    stats_kv(j, "paused_total", f->mem.paused_total, 1);
    stats_kv(j, "busy_total", f->mem.busy_total, 0);
    jout_lit(j, "},\"loop\":{");
    stats_kv(j, "lag_us_p50", hist_percentile(&recent, 50), 1);
    stats_kv(j, "lag_us_p99", hist_percentile(&recent, 99), 1);
    stats_kv(j, "lag_us_max", recent.max, 1);
    stats_kv(j, "lag_us_max_since_start", lag.total.max, 1);
    stats_kv(j, "samples", recent.count, 1);
    stats_kv(j, "period_ms", LAG_PERIOD_MS, 0);
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
    stats_kv(j, "workers_restarted_total", supervisor_restarts(f->sup), 1);
    agent_json(j, f);
    detached_json(j, detach_stats(f->ds));
    stats_store_json(j, f->redis);
    jout_lit(j, "\"jobs\":{");
    stats_kv(j, "submitted_total", st->submitted, 1);
    stats_kv(j, "done_total", st->done, 1);
    stats_kv(j, "failed_total", st->failed, 1);
    stats_kv(j, "cancelled_total", st->cancelled, 1);
    stats_kv(j, "timeout_total", st->timeouts, 1);
    stats_kv(j, "retried_total", st->retried, 1);
    stats_kv(j, "in_flight", st->in_flight, 1);
    stats_kv(j, "busy_total", f->busy_total, 1);
    jout_lit(j, "\"by_type\":{");
    uint32_t running[REGISTRY_MAX];
    running_by_type(p, running);
    for (size_t t = 0; t < registry_count(); t++) {
        if (t)
            jout_lit(j, ",");
        type_json(j, f->d, (int)t, running[t]);
    }
    struct feed_counts fc;
    feed_counts(&fc);
    jout_lit(j, "}},\"dashboard\":{");
    stats_kv(j, "viewers", fc.viewers, 1);
    stats_kv(j, "snapshots_total", fc.snapshots_total, 1);
    stats_kv(j, "skipped_total", fc.skipped_total, 0);
    jout_lit(j, "}}\n");
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

void stats_one(struct jout *j, const char *name, const char *type, const char *help, uint64_t v)
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

/* One series per worker process, labelled by slot: a CPU worker is one
 * slot; the I/O threads share one process, shown once as worker="io". */
static void per_process(struct jout *j, const struct pipeline *p, const char *name, int rss)
{
    char lb[32];
    for (uint32_t i = 0; i < p->nworkers; i++) {
        const struct worker_desc *w = &p->workers[i];
        if (i > p->ncpu)
            break;
        if (i < p->ncpu)
            snprintf(lb, sizeof lb, "worker=\"%u\"", i + 1);
        else
            snprintf(lb, sizeof lb, "worker=\"io\"");
        metric(j, name, lb, rss ? (uint64_t)atomic_load(&w->rss_kib) << 10 : atomic_load(&w->incarnation));
    }
}

static void worker_process_metrics(struct jout *j, const struct pipeline *p)
{
    metric_head(j, "worker_resident_bytes", "gauge", "Resident memory of a worker process.");
    per_process(j, p, "worker_resident_bytes", 1);
    metric_head(j, "worker_restarts_total", "counter", "Times the process in a worker slot ended.");
    per_process(j, p, "worker_restarts_total", 0);
}

static void detached_metrics(struct jout *j, const struct detach_stats *ds)
{
    stats_one(j, "detached_held", "gauge", "Detached jobs held: running, or finished and kept.", ds->held);
    stats_one(j, "detached_running", "gauge", "Detached jobs running.", ds->running);
    stats_one(j, "detached_finished_kept", "gauge", "Finished detached jobs whose final event is kept.",
        ds->finished_kept);
    stats_one(j, "detached_kept_bytes", "gauge", "Bytes of event text kept for detached jobs.",
        ds->kept_bytes);
    stats_one(j, "detached_accepted_total", "counter", "Detached jobs accepted.", ds->accepted_total);
    stats_one(j, "detached_dropped_events_total", "counter",
        "Chunk events of detached jobs dropped past --detach-buffer.", ds->dropped_events_total);
    stats_one(j, "detached_expired_total", "counter", "Finished detached jobs forgotten after --result-ttl.",
        ds->expired_total);
    stats_one(j, "detached_attach_total", "counter", "Attaches that found their detached job.",
        ds->attach_total);
    stats_one(j, "detached_superseded_total", "counter", "Followers displaced by a newer attach.",
        ds->superseded_total);
}

void stats_metrics(struct front *f, struct jout *j)
{
    const struct dispatch_stats *st = dispatch_stats(f->d);
    struct pipeline *p = f->p;
    char lb[160];
    stats_one(j, "uptime_seconds", "gauge", "Seconds since start.",
        (uint64_t)(shm_now_ns() - f->started_ns) / 1000000000);
    stats_one(j, "connections_open", "gauge", "Open client connections.", f->conns.open);
    stats_one(j, "connections_tls_open", "gauge", "Open TLS client connections.", f->conns.tls_open);
    stats_one(j, "connections_accepted_total", "counter", "Connections accepted.", f->conns.accepted_total);
    stats_one(j, "connections_rejected_total", "counter", "Connections refused at max-connections.",
        f->conns.rejected_total);
    stats_one(j, "memory_budget_bytes", "gauge", "Bytes the front may hold in client buffers (0: no limit).",
        f->cfg->memory_budget);
    stats_one(j, "memory_used_bytes", "gauge", "Bytes the front holds in client buffers.", f->mem.used);
    stats_one(j, "memory_used_max_bytes", "gauge", "The most bytes held in client buffers at once.",
        f->mem.used_max);
    stats_one(j, "memory_budget_reached", "gauge", "1 while the memory budget is reached.", f->mem.over);
    stats_one(j, "memory_paused_connections", "gauge",
        "Connections not read because they hold the most past the budget.", f->mem.paused);
    stats_one(j, "memory_paused_total", "counter", "Times a connection stopped being read for the budget.",
        f->mem.paused_total);
    stats_one(j, "memory_busy_total", "counter", "Submits answered busy because the budget was reached.",
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
    stats_one(j, "workers_restarted_total", "counter", "Worker processes forked again after one ended.",
        supervisor_restarts(f->sup));
    struct agent_counts ac;
    agent_check_counts(f->agent, &ac);
    metric_head(j, "agent_answers_total", "counter", "Lines the agent-check port answered.");
    metric(j, "agent_answers_total", "answer=\"ready\"", ac.answers_total - ac.drain_total);
    metric(j, "agent_answers_total", "answer=\"drain\"", ac.drain_total);
    stats_one(j, "agent_weight_percent", "gauge", "N of the agent's last ready N% (0 after drain).",
        ac.weight);
    worker_process_metrics(j, p);
    stats_one(j, "jobs_submitted_total", "counter", "Jobs admitted.", st->submitted);
    stats_one(j, "jobs_cancelled_total", "counter", "Jobs cancelled.", st->cancelled);
    stats_one(j, "jobs_timeout_total", "counter", "Jobs past their deadline.", st->timeouts);
    stats_one(j, "jobs_retried_total", "counter", "Jobs run again after their worker died.", st->retried);
    stats_one(j, "jobs_in_flight", "gauge", "Jobs admitted and not yet answered.", st->in_flight);
    stats_one(j, "jobs_busy_total", "counter", "Submits answered busy, for any reason.", f->busy_total);
    uint32_t running[REGISTRY_MAX];
    running_by_type(p, running);
    metric_head(j, "jobs_done_total", "counter", "Jobs answered done, by type.");
    for (size_t t = 0; t < registry_count(); t++) {
        snprintf(lb, sizeof lb, "type=\"%s\"", registry_get((int)t)->name);
        metric(j, "jobs_done_total", lb, dispatch_type_counts(f->d, (int)t)->done);
    }
    metric_head(j, "jobs_failed_total", "counter", "Jobs answered with an error, by type.");
    for (size_t t = 0; t < registry_count(); t++) {
        snprintf(lb, sizeof lb, "type=\"%s\"", registry_get((int)t)->name);
        metric(j, "jobs_failed_total", lb, dispatch_type_counts(f->d, (int)t)->failed);
    }
    metric_head(j, "jobs_errors_total", "counter", "Jobs answered with an error, by type and code.");
    for (size_t t = 0; t < registry_count(); t++) {
        const struct type_counts *tc = dispatch_type_counts(f->d, (int)t);
        for (int e = JE_NONE + 1; e < JE_COUNT; e++) {
            snprintf(lb, sizeof lb, "type=\"%s\",code=\"%s\"", registry_get((int)t)->name,
                     job_error_name((enum job_error)e));
            metric(j, "jobs_errors_total", lb, tc->errors[e]);
        }
    }
    metric_head(j, "jobs_running", "gauge", "Jobs a worker is running now, by type.");
    for (size_t t = 0; t < registry_count(); t++) {
        snprintf(lb, sizeof lb, "type=\"%s\"", registry_get((int)t)->name);
        metric(j, "jobs_running", lb, running[t]);
    }
    detached_metrics(j, detach_stats(f->ds));
    stats_store_metrics(j, f->redis);
    metric_head(j, "job_run_seconds", "histogram", "Handler run time of jobs answered done.");
    for (size_t t = 0; t < registry_count(); t++) {
        snprintf(lb, sizeof lb, "type=\"%s\"", registry_get((int)t)->name);
        hist_metric(j, "job_run_seconds", lb, dispatch_type_run_us(f->d, (int)t));
    }
    metric_head(j, "loop_lag_seconds", "histogram", "How late the front's periodic timer fired, since start.");
    hist_metric(j, "loop_lag_seconds", NULL, &lag.total);
    struct feed_counts fc;
    feed_counts(&fc);
    stats_one(j, "dashboard_viewers", "gauge", "Dashboards connected to the live feed.", fc.viewers);
    stats_one(j, "dashboard_snapshots_total", "counter", "Live-feed snapshots built (one a second while viewed).",
        fc.snapshots_total);
    stats_one(j, "dashboard_skipped_total", "counter", "Live-feed sends skipped: the viewer was not reading.",
        fc.skipped_total);
}
