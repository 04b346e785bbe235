/* cli_bench.c — `wsjob bench`: reads the options into a bench_cfg, runs
 * the threads of cli_bench_loop.c (or the ping and idle modes), and
 * reports: a few lines for people on stderr, one JSON line on stdout. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "client/cli_bench.h"
#include "client/tls_client.h"
#include "wire/utf8.h"

#define N_CAP_SECONDS 600   /* -n without -d: give up after this long */

enum {
    OPT_WARMUP = CLI_OPT_FIRST_FREE, OPT_RAW, OPT_TYPE, OPT_INPUT, OPT_SIZE, OPT_EXPECT,
    OPT_ALLOW_ERRORS, OPT_PING, OPT_RATE, OPT_TCP, OPT_IDLE, OPT_HOLD, OPT_PID, OPT_LABEL,
    OPT_DETACH,
};

static const struct option opts[] = {
    CLI_COMMON_LONGOPTS,
    { "warmup", required_argument, NULL, OPT_WARMUP },
    { "raw", required_argument, NULL, OPT_RAW },
    { "type", required_argument, NULL, OPT_TYPE },
    { "input", required_argument, NULL, OPT_INPUT },
    { "size", required_argument, NULL, OPT_SIZE },
    { "expect", required_argument, NULL, OPT_EXPECT },
    { "allow-errors", no_argument, NULL, OPT_ALLOW_ERRORS },
    { "ping", no_argument, NULL, OPT_PING },
    { "rate", required_argument, NULL, OPT_RATE },
    { "tcp-echo", no_argument, NULL, OPT_TCP },
    { "idle", required_argument, NULL, OPT_IDLE },
    { "hold", required_argument, NULL, OPT_HOLD },
    { "pid", required_argument, NULL, OPT_PID },
    { "label", required_argument, NULL, OPT_LABEL },
    { "detach", no_argument, NULL, OPT_DETACH },
    { NULL, 0, NULL, 0 },
};

/* What the command line said, before it is turned into a bench_cfg. */
struct bench_args {
    const char *raw, *type, *input, *expect;
    bool ping, tcp, has_d;
    uint64_t idle;
};

/* Options with a number: 0 taken, -1 bad value (said), 1 not one of them. */
static int take_number(int opt, const char *arg, struct bench_cfg *cfg, struct bench_args *a)
{
    uint64_t v = 0;
    int rc = 0;
    switch (opt) {
    case 'n':
        return cli_parse_u64("-n", arg, 1, UINT64_MAX / 2, &cfg->total);
    case OPT_IDLE:
        return cli_parse_u64("--idle", arg, 1, 1000000, &a->idle);
    case 'd':
        a->has_d = true;
        return cli_parse_seconds("-d", arg, &cfg->seconds);
    case OPT_WARMUP:
        return cli_parse_seconds("--warmup", arg, &cfg->warmup);
    case OPT_HOLD:
        return cli_parse_seconds("--hold", arg, &cfg->hold);
    case 'c':
        rc = cli_parse_u64("-c", arg, 1, 100000, &v);
        cfg->conns = (unsigned)v;
        break;
    case 'p':
        rc = cli_parse_u64("-p", arg, 1, 65536, &v);
        cfg->depth = (unsigned)v;
        break;
    case 't':
        rc = cli_parse_u64("-t", arg, 1, 256, &v);
        cfg->threads = (unsigned)v;
        break;
    case OPT_SIZE:
        rc = cli_parse_u64("--size", arg, 1, 64u << 20, &v);
        cfg->size = (size_t)v;
        break;
    case OPT_RATE:
        rc = cli_parse_u64("--rate", arg, 1, 100000, &v);
        cfg->rate = (double)v;
        break;
    case OPT_PID:
        rc = cli_parse_u64("--pid", arg, 1, 1u << 22, &v);
        cfg->pid = (long)v;
        break;
    default:
        return 1;
    }
    return rc;
}

/* 0 parsed, CLI_HELP, or CLI_USAGE. */
static int parse(struct cli_opts *o, int argc, char **argv, struct bench_cfg *cfg,
                 struct bench_args *a)
{
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "hc:p:d:n:t:", opts, NULL)) != -1) {
        if (cli_common_option(o, opt, optarg))
            continue;
        int rc = take_number(opt, optarg, cfg, a);
        if (rc < 0)
            return CLI_USAGE;
        if (rc == 0)
            continue;
        switch (opt) {
        case 'h': return CLI_HELP;
        case OPT_RAW: a->raw = optarg; break;
        case OPT_TYPE: a->type = optarg; break;
        case OPT_INPUT: a->input = optarg; break;
        case OPT_EXPECT: a->expect = optarg; break;
        case OPT_ALLOW_ERRORS: cfg->allow_errors = true; break;
        case OPT_PING: a->ping = true; break;
        case OPT_TCP: a->tcp = true; break;
        case OPT_LABEL: cfg->label = optarg; break;
        case OPT_DETACH: cfg->detach = true; break;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("bench takes no arguments");
        return CLI_USAGE;
    }
    return 0;
}

/* ---- turning the options into a configuration ----------------------------- */

static uint8_t *copy_bytes(const char *s, size_t *len)
{
    *len = strlen(s);
    uint8_t *p = malloc(*len + 1);
    if (p)
        memcpy(p, s, *len + 1);
    return p;
}

/* ,"type":T[,"input":V][,"detach":true]} — what follows the id in every
 * submit.  A detached job is answered `accepted` first, which the reply
 * check passes over like a chunk. */
static int json_tail(struct bench_cfg *cfg, const char *input, bool detach)
{
    const char *key = "";
    json_t *t = json_string(cfg->type);
    json_t *v = input ? cli_input((const uint8_t *)input, strlen(input), false, &key) : NULL;
    char *ts = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
    char *vs = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    size_t cap = (ts ? strlen(ts) : 0) + (vs ? strlen(vs) : 0) + 48;
    int rc = -1;
    if (ts && (vs || !input) && (cfg->json_tail = malloc(cap))) {
        int n = snprintf(cfg->json_tail, cap, ",\"type\":%s%s%s%s%s%s}", ts, vs ? ",\"" : "",
                         key, vs ? "\":" : "", vs ? vs : "", detach ? ",\"detach\":true" : "");
        cfg->json_tail_len = (size_t)n;
        rc = 0;
    }
    json_decref(t);
    json_decref(v);
    free(ts);
    free(vs);
    return rc;
}

static int configure_jobs(struct bench_cfg *cfg, const struct bench_args *a)
{
    if (a->expect && !(cfg->expect = copy_bytes(a->expect, &cfg->expect_len)))
        return -1;
    cfg->has_expect = a->expect != NULL;
    if (cfg->mode == BENCH_JSON) {
        if (json_tail(cfg, a->input, cfg->detach) < 0) {
            cli_error("--type must be UTF-8");
            return -1;
        }
        cfg->frame_max = WS_MAX_HEADER + 64 + cfg->json_tail_len;
        return 0;
    }
    if (cfg->mode == BENCH_RAW && a->input) {
        if (!(cfg->message = copy_bytes(a->input, &cfg->message_len)))
            return -1;
        cfg->message_op = utf8_valid(cfg->message, cfg->message_len) ? WS_OP_TEXT : WS_OP_BINARY;
        if (!cfg->has_expect && strcmp(cfg->type, "echo") == 0) {
            cfg->expect = copy_bytes(a->input, &cfg->expect_len);
            cfg->has_expect = cfg->expect != NULL;
        }
        cfg->frame_max = WS_MAX_HEADER + cfg->message_len;
        return 0;
    }
    if (cfg->mode == BENCH_RAW && strcmp(cfg->type, "echo") != 0) {
        cli_error("--raw %s needs --input (random messages are for echo)", cfg->type);
        return -1;
    }
    cfg->generated = cfg->mode == BENCH_RAW || cfg->mode == BENCH_TCP;
    cfg->frame_max = WS_MAX_HEADER + cfg->size;
    return 0;
}

static int choose_mode(struct bench_cfg *cfg, const struct bench_args *a)
{
    int modes = a->ping + a->tcp + (a->idle > 0) + (a->type != NULL) + (a->raw != NULL);
    if (modes > 1) {
        cli_error("choose one of --raw, --type, --ping, --tcp-echo and --idle");
        return -1;
    }
    cfg->mode = a->ping ? BENCH_PING : a->tcp ? BENCH_TCP : a->idle ? BENCH_IDLE
              : a->type ? BENCH_JSON : BENCH_RAW;
    cfg->type = a->type ? a->type : a->raw ? a->raw : "echo";
    if (cfg->detach && cfg->mode != BENCH_JSON) {
        cli_error("--detach goes with --type (detached jobs are a /jobs feature)");
        return -1;
    }
    if (cfg->mode == BENCH_IDLE) {
        cfg->conns = (unsigned)a->idle;
        cfg->depth = 1;
    }
    if (cfg->threads > cfg->conns)
        cfg->threads = cfg->conns;
    if (cfg->total && !a->has_d)
        cfg->seconds = N_CAP_SECONDS;
    if (cfg->total && cfg->total < cfg->conns) {
        cli_error("-n %llu is fewer than one job per connection", (unsigned long long)cfg->total);
        return -1;
    }
    return 0;
}

/* CLI_OK, or the exit status after saying why. */
static int configure_target(const struct cli_opts *o, struct bench_cfg *cfg)
{
    char why[256], path[300];
    if (cli_url(o, &cfg->url) < 0 || cli_auth_header(o, cfg->extra, sizeof cfg->extra) < 0)
        return CLI_USAGE;
    if (cfg->mode == BENCH_TCP && cfg->url.tls) {
        cli_error("--tcp-echo speaks plain TCP: give a ws:// URL");
        return CLI_USAGE;
    }
    if (cli_tls(o, &cfg->url, &cfg->tls) < 0)
        return CLI_FAIL;
    snprintf(path, sizeof path, "/run/%s", cfg->type);
    const char *dflt = cfg->mode == BENCH_RAW ? path
                     : cfg->mode == BENCH_IDLE ? "/run/echo" : "/jobs";
    snprintf(cfg->target, sizeof cfg->target, "%s", cli_target(&cfg->url, dflt));
    int fd = ws_url_resolve(&cfg->url, 5000, &cfg->addr, &cfg->addrlen, why, sizeof why);
    if (fd < 0) {
        cli_error("%s", why);
        return CLI_FAIL;
    }
    close(fd);
    return CLI_OK;
}

/* Many connections need many descriptors: take what the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void cfg_free(struct bench_cfg *cfg)
{
    tls_client_ctx_free(cfg->tls);
    free(cfg->message);
    free(cfg->json_tail);
    free(cfg->expect);
}

/* ---- threads ----------------------------------------------------------------- */

int bench_start(const struct bench_cfg *cfg, struct bench_shared *sh, struct bench_worker *ws)
{
    unsigned started = 0;
    for (unsigned i = 0; i < cfg->threads; i++) {
        struct bench_worker *w = &ws[i];
        *w = (struct bench_worker){ .cfg = cfg, .sh = sh, .index = i, .first_conn = i, .epfd = -1,
                                    .nconns = cfg->conns / cfg->threads + (i < cfg->conns % cfg->threads) };
        if (ws_client_random(&w->rng, sizeof w->rng) < 0 || w->rng == 0)
            w->rng = 0x9e3779b97f4a7c15ull + i;
        if (pthread_create(&w->thread, NULL, bench_worker_main, w) != 0) {
            w->cfg = NULL;   /* not started: nothing to join */
            atomic_store(&sh->failed, 1);
            cli_error("cannot start %u threads", cfg->threads);
            break;
        }
        started++;
    }
    pthread_mutex_lock(&sh->mu);
    while (sh->ready < started)
        pthread_cond_wait(&sh->cv, &sh->mu);
    sh->start_ns = shm_now_ns();
    sh->go = true;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return atomic_load(&sh->failed) ? -1 : 0;
}

void bench_join(const struct bench_cfg *cfg, struct bench_worker *ws, struct bench_stats *t)
{
    memset(t, 0, sizeof *t);
    for (unsigned i = 0; i < cfg->threads; i++) {
        struct bench_worker *w = &ws[i];
        if (!w->cfg)
            continue;
        pthread_join(w->thread, NULL);
        const struct bench_stats *s = &w->st;
        hist_merge(&t->lat_us, &s->lat_us);
        t->measured += s->measured;
        t->replies += s->replies;
        t->sent += s->sent;
        t->job_errors += s->job_errors;
        t->wrong += s->wrong;
        t->unexpected += s->unexpected;
        t->missing += s->missing;
        t->conn_failed += s->conn_failed;
        if (s->last_reply_ns > t->last_reply_ns)
            t->last_reply_ns = s->last_reply_ns;
    }
}

/* ---- report ------------------------------------------------------------------- */

json_t *bench_json_base(const struct bench_cfg *cfg, const char *name)
{
    json_t *o = json_object();
    json_object_set_new(o, "bench", json_string(name));
    if (cfg->label)
        json_object_set_new(o, "case", json_string(cfg->label));
    return o;
}

void bench_emit(json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (s)
        printf("%s\n", s);
    else
        cli_error("cannot encode the report");
    fflush(stdout);
    free(s);
    json_decref(obj);
}

static void set_u64(json_t *o, const char *k, uint64_t v)
{
    json_object_set_new(o, k, json_integer((json_int_t)v));
}

static const char *mode_name(enum bench_mode m)
{
    return m == BENCH_JSON ? "json" : m == BENCH_TCP ? "tcp" : "raw";
}

/* elapsed: start to last reply, the time of a -n run. */
static int report(const struct bench_cfg *cfg, const struct bench_stats *t, double elapsed)
{
    double secs = cfg->total ? elapsed : cfg->seconds;
    uint64_t jobs = cfg->total ? t->replies : t->measured;
    uint64_t broken = t->wrong + t->unexpected + t->missing;
    uint64_t unsent = cfg->total > t->replies + t->missing ? cfg->total - t->replies - t->missing : 0;
    double rate = secs > 0 ? (double)jobs / secs : 0;
    const struct histogram *h = &t->lat_us;
    fprintf(stderr, "bench %s %s: %u conns x %u deep, %u thread%s, %.2f s: %llu jobs, %.0f jobs/s\n",
            mode_name(cfg->mode), cfg->mode == BENCH_TCP ? "echo" : cfg->type, cfg->conns,
            cfg->depth, cfg->threads, cfg->threads == 1 ? "" : "s", secs,
            (unsigned long long)jobs, rate);
    fprintf(stderr, "  latency us: p50 %llu  p99 %llu  p99.9 %llu  max %llu\n",
            (unsigned long long)hist_percentile(h, 50), (unsigned long long)hist_percentile(h, 99),
            (unsigned long long)hist_percentile(h, 99.9), (unsigned long long)h->max);
    fprintf(stderr, "  replies %llu of %llu sent; job errors %llu, wrong %llu, unexpected %llu, "
            "missing %llu, connections failed %llu\n", (unsigned long long)t->replies,
            (unsigned long long)t->sent, (unsigned long long)t->job_errors,
            (unsigned long long)t->wrong, (unsigned long long)t->unexpected,
            (unsigned long long)t->missing, (unsigned long long)t->conn_failed);
    json_t *o = bench_json_base(cfg, cfg->mode == BENCH_TCP ? "tcp_echo" : "e2e");
    json_object_set_new(o, "mode", json_string(mode_name(cfg->mode)));
    if (cfg->mode != BENCH_TCP)
        json_object_set_new(o, "type", json_string(cfg->type));
    if (cfg->detach)
        json_object_set_new(o, "detach", json_true());
    if (cfg->generated)
        set_u64(o, "size", cfg->size);
    set_u64(o, "conns", cfg->conns);
    set_u64(o, "depth", cfg->depth);
    set_u64(o, "threads", cfg->threads);
    json_object_set_new(o, "seconds", json_real((double)(int64_t)(secs * 1000) / 1000));
    set_u64(o, "jobs", jobs);
    json_object_set_new(o, "jobs_per_s", json_integer((json_int_t)(rate + 0.5)));
    set_u64(o, "p50_us", hist_percentile(h, 50));
    set_u64(o, "p99_us", hist_percentile(h, 99));
    set_u64(o, "p999_us", hist_percentile(h, 99.9));
    set_u64(o, "max_us", h->max);
    set_u64(o, "job_errors", t->job_errors);
    set_u64(o, "errors", broken + t->job_errors + unsent);
    bench_emit(o);
    if (unsent && !broken && !t->conn_failed)
        cli_error("only %llu of %llu jobs were answered in %.0f s",
                  (unsigned long long)t->replies, (unsigned long long)cfg->total, cfg->seconds);
    if (broken || unsent || t->conn_failed || (t->job_errors && !cfg->allow_errors)) {
        cli_error("FAILED: replies missing, wrong, out of order, or jobs failed");
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int run_threads(const struct bench_cfg *cfg)
{
    struct bench_shared sh = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    struct bench_worker *ws = calloc(cfg->threads, sizeof *ws);
    struct bench_stats total;
    if (!ws) {
        cli_error("out of memory");
        return CLI_FAIL;
    }
    int started = bench_start(cfg, &sh, ws);
    bench_join(cfg, ws, &total);
    free(ws);
    if (started < 0) {
        cli_error("FAILED: not every connection could be made");
        return CLI_FAIL;
    }
    double elapsed = total.last_reply_ns > sh.start_ns
                         ? (double)(total.last_reply_ns - sh.start_ns) / 1e9 : 0;
    return report(cfg, &total, elapsed);
}

int cli_bench(struct cli_opts *o, int argc, char **argv)
{
    struct bench_cfg cfg = { .conns = 1, .depth = 1, .threads = 1, .seconds = 5, .size = 64,
                             .rate = 100 };
    struct bench_args a = { 0 };
    int rc = parse(o, argc, argv, &cfg, &a);
    if (rc != 0)
        return rc;
    if (choose_mode(&cfg, &a) < 0)
        return CLI_USAGE;
    raise_fd_limit();
    rc = configure_jobs(&cfg, &a) < 0 ? CLI_USAGE : configure_target(o, &cfg);
    if (rc != CLI_OK) {
        cfg_free(&cfg);
        return rc;
    }
    if (cfg.mode == BENCH_PING)
        rc = bench_ping(&cfg);
    else if (cfg.mode == BENCH_IDLE)
        rc = bench_idle(&cfg);
    else
        rc = run_threads(&cfg);
    cfg_free(&cfg);
    return rc;
}
