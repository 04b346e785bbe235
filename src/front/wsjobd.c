/* wsjobd.c — the daemon's main: configuration, shared memory, workers,
 * listeners, then the front's event loop until a signal ends it. */
#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/timeval.h"
#include "front/agent_check.h"
#include "front/conn_accept.h"
#include "front/dashboard_feed.h"
#include "front/dashboard_page.h"
#include "front/detach.h"
#include "front/detach_redis.h"
#include "front/front.h"
#include "front/linger.h"
#include "front/listener.h"
#include "front/stats.h"
#include "front/tls_conn.h"
#include "handlers/exec_types.h"
#include "handlers/handler_registry.h"
#include "handlers/python_types.h"
#include "pipeline/dispatch.h"
#include "pipeline/pipeline.h"
#include "pipeline/supervisor.h"
#include "worker/job_ctx.h"

#define SHUTDOWN_TICK_MS 50
#define STATUS_PERIOD_S 2
#define STARTUP_TICK_MS 5
#define STARTUP_WAIT_MS 10000
/* After close 1001, how long peers may take to answer, and the result
 * store its writes (detached jobs' finals) that Redis has not answered. */
#define CLOSE_WAIT_MS 1000

static struct front front;
static struct listeners *listeners;
static struct event *shutdown_tick;
static int64_t shutdown_deadline_ns, close_deadline_ns;
static int shutdown_phase;            /* 0 serving, 1 draining jobs, 2 closing sockets */
static int64_t startup_deadline_ns;   /* READY waits for the workers until then */

static const char *option_source(const char *name, unsigned index)
{
    return config_values(front.cfg, name, index);
}

static struct dispatch_params dispatch_params_of(const struct config *c)
{
    return (struct dispatch_params){
        .job_timeout_ms = c->job_timeout_ms,
        .cancel_grace_ms = c->cancel_grace_ms,
        .crash_retries = c->crash_retries,
    };
}

static struct detach_params detach_params_of(const struct config *c)
{
    return (struct detach_params){
        .buffer = c->detach_buffer, .ttl_s = c->result_ttl_s, .max_jobs = c->max_detached,
    };
}

static struct worker_limits limits_of(const struct config *c)
{
    return (struct worker_limits){ .max_jobs = c->worker_max_jobs, .max_rss = c->worker_max_rss };
}

static void notify_status(void)
{
    sd_notifyf(0, "STATUS=%llu connections, %llu jobs in flight",
               (unsigned long long)front.conns.open,
               (unsigned long long)dispatch_stats(front.d)->in_flight);
}

static void shutdown_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    int64_t now = shm_now_ns();
    if (shutdown_phase == 1) {
        if (dispatch_stats(front.d)->in_flight > 0 && now < shutdown_deadline_ns)
            return;
        dispatch_fail_all(front.d, JE_SHUTTING_DOWN, "the server is shutting down");
        conn_close_all(&front, 1001, "server shutting down");
        shutdown_phase = 2;
        close_deadline_ns = now + (int64_t)CLOSE_WAIT_MS * 1000000;
        return;
    }
    if ((front.conns.open == 0 && !detach_redis_pending(front.redis)) || now >= close_deadline_ns)
        event_base_loopexit(front.base, NULL);
}

static void begin_shutdown(void)
{
    if (shutdown_phase)
        return;
    sd_notify(0, "STOPPING=1");
    log_info("shutting down: %llu jobs in flight, %llu connections",
             (unsigned long long)dispatch_stats(front.d)->in_flight,
             (unsigned long long)front.conns.open);
    /* Refuse new connections at once, so a load balancer moves on.  The
     * agent port stays open until we exit: it answers "drain" meanwhile. */
    listeners_close(listeners);
    listeners = NULL;
    front.shutting_down = 1;
    conn_shutdown_all(&front);
    shutdown_phase = 1;
    shutdown_deadline_ns = shm_now_ns() + (int64_t)front.cfg->shutdown_timeout_ms * 1000000;
    struct timeval tv = tv_from_ms(SHUTDOWN_TICK_MS);
    shutdown_tick = event_new(front.base, -1, EV_PERSIST, shutdown_tick_cb, NULL);
    event_add(shutdown_tick, &tv);
    shutdown_tick_cb(-1, 0, NULL);
}

/* A reload that changes what only a restart applies says so, rather than
 * leaving the operator to believe the new value is in force. */
static void warn_restart_changes(const struct config *next, const struct config *cur)
{
    const char *names[16];
    size_t n = config_restart_changes(next, cur, names, sizeof names / sizeof names[0]);
    char list[256] = "";
    for (size_t i = 0, used = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    if (n)
        log_warn("reload: %s changed; the running value%s stay%s until a restart", list,
                 n > 1 ? "s" : "", n > 1 ? "" : "s");
}

static void reload(void)
{
    sd_notify(0, "RELOADING=1");
    struct config *next = calloc(1, sizeof *next);
    char err[512];
    if (!next || config_reload(next, front.cfg, err, sizeof err) != CONFIG_OK) {
        log_error("reload refused, keeping the running configuration: %s", next ? err : "out of memory");
        free(next);
        sd_notify(0, "READY=1");
        return;
    }
    warn_restart_changes(next, front.cfg);
    config_free(front.cfg);
    free(front.cfg);
    front.cfg = next;
    log_set_level(next->log_level);
    struct dispatch_params dp = dispatch_params_of(next);
    dispatch_set_params(front.d, &dp);
    struct detach_params dtp = detach_params_of(next);
    detach_set_params(front.ds, &dtp);
    struct worker_limits lim = limits_of(next);
    supervisor_set_limits(front.sup, &lim);
    conn_budget_changed(&front);
    if (next->tls_cert && tls_server_load(next->tls_cert, next->tls_key, err, sizeof err) < 0)
        log_error("TLS certificate not reloaded, keeping the one in use: %s", err);
    log_info("configuration reloaded");
    sd_notify(0, "READY=1");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGHUP)
        reload();
    else
        begin_shutdown();
}

static int all_workers_up(void)
{
    for (uint32_t i = 0; i < front.p->nworkers; i++)
        if (atomic_load(&front.p->workers[i].state) == WORKER_DEAD)
            return 0;
    return 1;
}

/* READY=1 (and accepting) only once every worker has announced itself, so
 * the first client never meets a half-started pool.  A worker that cannot
 * start does not hold the daemon back forever: its jobs wait in the ring
 * and /healthz tells. */
static void startup_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct event *self = event_base_get_running_event(front.base);
    int up = all_workers_up();
    if (!up && shm_now_ns() < startup_deadline_ns)
        return;
    event_del(self);
    if (!up)
        log_warn("not every worker started within %d ms; serving anyway", STARTUP_WAIT_MS);
    if (shutdown_phase)
        return;
    listeners_enable(listeners);
    agent_check_enable(front.agent);
    log_info("wsjobd %s ready: %u cpu workers, %u io threads, port %d", WSJOBD_VERSION,
             front.cfg->cpu_workers, front.cfg->io_threads, listeners_first_port(listeners));
    sd_notify(0, "READY=1");
    notify_status();
}

static void status_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    notify_status();
}

/* systemd's watchdog is fed from the loop itself, so a loop that blocks is
 * what gets caught. */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        fprintf(stderr, "wsjobd: --user: no such user '%s'\n", user);
        return -1;
    }
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        fprintf(stderr, "wsjobd: --user: cannot become '%s': %s\n", user, strerror(errno));
        return -1;
    }
    return 0;
}

static int start(void)
{
    char err[512];
    struct config *c = front.cfg;
    if (registry_load(c->handlers.v, c->handlers.n, err, sizeof err) < 0) {
        fprintf(stderr, "wsjobd: --handlers: %s\n", err);
        return 2;
    }
    /* Python modules are imported in a child, never in the front. */
    if (python_types_register(c->python.v, c->python.n, c->python_path.v, c->python_path.n,
                              err, sizeof err) < 0 ||
        exec_types_register(c->exec.v, c->exec.n, c->cancel_grace_ms, err, sizeof err) < 0 ||
        python_check(c->user, err, sizeof err) < 0) {
        fprintf(stderr, "wsjobd: %s\n", err);
        return 2;
    }
    if ((c->tls_listen.n || c->tls_cert) && tls_server_load(c->tls_cert, c->tls_key, err, sizeof err) < 0) {
        fprintf(stderr, "wsjobd: --tls-cert: %s\n", err);
        return 2;
    }
    if (c->check_config)
        return 0;
    if (dashboard_page_init(err, sizeof err) < 0) {
        fprintf(stderr, "wsjobd: %s\n", err);
        return 1;
    }
    job_ctx_set_option_source(option_source);
    struct pipeline_params pp = {
        .cpu_workers = c->cpu_workers, .io_threads = c->io_threads,
        .queue_depth = c->queue_depth, .max_message = c->max_message,
        .stream_window = c->stream_window,
    };
    front.p = pipeline_create(&pp, err, sizeof err);
    if (!front.p) {
        fprintf(stderr, "wsjobd: shared memory: %s\n", err);
        return 1;
    }
    front.base = event_base_new();
    struct dispatch_params dp = dispatch_params_of(c);
    front.d = front.base ? dispatch_new(front.base, front.p, &dp) : NULL;
    struct detach_params dtp = detach_params_of(c);
    front.ds = front.d ? detach_new(front.base, front.d, &dtp) : NULL;
    if (!front.ds) {
        fprintf(stderr, "wsjobd: cannot set up the event loop\n");
        return 1;
    }
    if (c->result_store && !(front.redis = detach_redis_start(front.base, front.ds, c->result_store,
                                                              c->result_ttl_s, err, sizeof err))) {
        fprintf(stderr, "wsjobd: %s\n", err);
        return 1;
    }
    front.started_ns = shm_now_ns();
    conn_init(&front);
    if (stats_start(&front) < 0 || feed_init(&front) < 0) {
        fprintf(stderr, "wsjobd: cannot start the loop-lag sampler and the live feed\n");
        return 1;
    }
    dispatch_on_room(front.d, conn_room, &front);
    listeners = listeners_open(&front, err, sizeof err);
    if (!listeners) {
        fprintf(stderr, "wsjobd: %s\n", err);
        return 1;
    }
    if (c->agent_listen.n && !(front.agent = agent_check_open(&front, &c->agent_listen.v[0],
                                                             err, sizeof err))) {
        fprintf(stderr, "wsjobd: --agent-listen: %s\n", err);
        return 1;
    }
    if (c->user && getuid() == 0 && drop_privileges(c->user) < 0)
        return 1;
    struct worker_limits lim = limits_of(c);
    front.sup = supervisor_start(front.base, front.p, front.d, &lim, err, sizeof err);
    if (!front.sup) {
        fprintf(stderr, "wsjobd: %s\n", err);
        return 1;
    }
    return -1;
}

int main(int argc, char **argv)
{
    static struct config cfg;
    char err[512];
    int rc = config_parse_args(&cfg, argc, argv, err, sizeof err);
    if (rc == CONFIG_EXIT)
        return 0;
    if (rc != CONFIG_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    front.cfg = calloc(1, sizeof *front.cfg);
    *front.cfg = cfg;
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    rc = start();
    if (rc >= 0)
        return rc;

    struct event *sigs[3] = {
        evsignal_new(front.base, SIGTERM, signal_cb, NULL),
        evsignal_new(front.base, SIGINT, signal_cb, NULL),
        evsignal_new(front.base, SIGHUP, signal_cb, NULL),
    };
    for (int i = 0; i < 3; i++)
        event_add(sigs[i], NULL);
    uint64_t wd_usec = 0;
    struct event *wd = NULL;
    if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec) {
        struct timeval tv = tv_from_ms((int64_t)(wd_usec / 2 / 1000));
        wd = event_new(front.base, -1, EV_PERSIST, watchdog_cb, NULL);
        event_add(wd, &tv);
    }

    /* STATUS= with live counts, for `systemctl status`. */
    struct event *status_ev = NULL;
    if (getenv("NOTIFY_SOCKET")) {
        struct timeval tv = tv_from_ms(STATUS_PERIOD_S * 1000);
        status_ev = event_new(front.base, -1, EV_PERSIST, status_cb, NULL);
        event_add(status_ev, &tv);
    }
    struct event *startup_ev = event_new(front.base, -1, EV_PERSIST, startup_cb, NULL);
    struct timeval tick = tv_from_ms(STARTUP_TICK_MS);
    startup_deadline_ns = shm_now_ns() + (int64_t)STARTUP_WAIT_MS * 1000000;
    event_add(startup_ev, &tick);

    /* One turn at a time, so the front gets its look before the loop sleeps
     * (libevent 2.1 has no prepare hook): the turn's output is written, then
     * dispatch forgets its clock reading (the flush calls routes, which may
     * stamp).  Output listed again during the flush makes the next turn
     * poll without sleeping. */
    int flags = EVLOOP_ONCE;
    while (event_base_loop(front.base, flags) == 0 && !event_base_got_exit(front.base)) {
        flags = conn_flush_all(&front) ? EVLOOP_ONCE | EVLOOP_NONBLOCK : EVLOOP_ONCE;
        dispatch_before_sleep(front.d);
    }

    supervisor_stop(front.sup, 2000);
    log_info("stopped");
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    if (wd)
        event_free(wd);
    if (status_ev)
        event_free(status_ev);
    event_free(startup_ev);
    if (shutdown_tick)
        event_free(shutdown_tick);
    supervisor_free(front.sup);
    stats_stop();
    /* The store first: its follows' last events go to detach's followers. */
    detach_redis_free(front.redis);
    detach_free(front.ds);
    dispatch_free(front.d);
    tls_server_free();
    linger_end_all();
    agent_check_close(front.agent);
    conn_fini(&front);
    feed_fini();
    dashboard_page_fini();
    event_base_free(front.base);
    pipeline_destroy(front.p);
    jout_free(&front.scratch);
    config_free(front.cfg);
    free(front.cfg);
    return 0;
}
