/* cli_stats.c — `wsjob stats`: GET /stats over HTTP/1.1 (HTTPS for wss://) and show it
 * the way top shows processes: one summary line, then tables. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/tls_client.h"
#include "wire/http_request.h"

#define HTTP_TIMEOUT_MS 10000
#define BODY_MAX        (16u << 20)

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
    (void)sig;
    stop = 1;
}

/* ---- fetching ------------------------------------------------------------ */

struct http_body {
    char  *buf;     /* malloc'd: head and body; owned by the caller */
    size_t len;
    size_t body;    /* offset of the body in buf */
    int    status;
};

static int send_request(struct ws_stream *st, const struct ws_url *u, const char *extra)
{
    char req[2048];
    int n = snprintf(req, sizeof req, "GET /stats HTTP/1.1\r\nHost: %s\r\n%s"
                     "Accept: application/json\r\nConnection: close\r\n\r\n", u->authority, extra);
    if (n < 0 || (size_t)n >= sizeof req)
        return -1;
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = ws_stream_send(st, req + off, (size_t)n - off);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;   /* a blocking socket: TLS may still say EAGAIN once */
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* Reads until the body is complete (Content-Length) or the server closes. */
static int read_response(struct ws_stream *st, struct http_body *r, char *why, size_t whylen)
{
    size_t cap = 65536, want = 0;
    r->buf = malloc(cap);
    r->len = 0;
    while (r->buf) {
        struct pollfd p = { .fd = st->fd, .events = POLLIN };
        if (!ws_stream_pending(st) && poll(&p, 1, HTTP_TIMEOUT_MS) <= 0) {
            snprintf(why, whylen, "no answer to GET /stats");
            return -1;
        }
        if (r->len == cap) {
            char *nb = cap < BODY_MAX ? realloc(r->buf, cap * 2) : NULL;
            if (!nb)
                break;
            r->buf = nb;
            cap *= 2;
        }
        ssize_t n = ws_stream_recv(st, r->buf + r->len, cap - r->len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            snprintf(why, whylen, "read: %s", ws_stream_error(st, errno));
            return -1;
        }
        r->len += (size_t)n;
        struct http_response resp;
        int head = http_response_parse(r->buf, r->len, 16384, &resp);
        if (head > 0 && !want) {
            const struct http_str *cl = http_find_header(resp.headers, resp.num_headers,
                                                         "content-length");
            r->status = resp.status;
            r->body = (size_t)head;
            want = cl ? (size_t)head + strtoul(cl->p, NULL, 10) : 0;
        }
        if (head < HTTP_PARSE_INCOMPLETE || (n == 0 && head <= 0)) {
            snprintf(why, whylen, "malformed HTTP answer");
            return -1;
        }
        if ((want && r->len >= want) || n == 0) {
            if (want && r->len > want)
                r->len = want;
            return 0;
        }
    }
    snprintf(why, whylen, "answer too large");
    return -1;
}

/* The /stats object, or NULL after printing why. *raw gets the body text
 * when not NULL (malloc'd, NUL-terminated). */
static json_t *fetch(const struct cli_opts *o, const struct ws_url *u,
                     struct tls_client_ctx *tls, char **raw)
{
    char extra[1024], why[320] = "";
    struct ws_stream st = { .fd = -1 };
    struct http_body r = { 0 };
    json_t *root = NULL;
    if (cli_auth_header(o, extra, sizeof extra) < 0)
        return NULL;
    if (ws_stream_open(&st, u, tls, HTTP_TIMEOUT_MS, why, sizeof why) < 0 ||
        send_request(&st, u, extra) < 0 || read_response(&st, &r, why, sizeof why) < 0) {
        cli_error("%s", *why ? why : "cannot send GET /stats");
    } else if (r.status != 200) {
        cli_error("GET /stats: HTTP %d", r.status);
    } else {
        json_error_t err;
        root = json_loadb(r.buf + r.body, r.len - r.body, 0, &err);
        if (!json_is_object(root)) {
            cli_error("/stats is not a JSON object: %s", err.text);
            json_decref(root);
            root = NULL;
        } else if (raw && (*raw = strndup(r.buf + r.body, r.len - r.body)) == NULL) {
            json_decref(root);
            root = NULL;
        }
    }
    ws_stream_close(&st);
    free(r.buf);
    return root;
}

/* ---- the table ----------------------------------------------------------- */

static long long num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static const char *str(json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : dflt;
}

/* Microseconds the way a person reads them: 850us, 12.3ms, 4.1s. */
static const char *us_text(long long us, char *buf, size_t len)
{
    if (us < 1000)
        snprintf(buf, len, "%lldus", us);
    else if (us < 1000000)
        snprintf(buf, len, "%.1fms", (double)us / 1e3);
    else
        snprintf(buf, len, "%.1fs", (double)us / 1e6);
    return buf;
}

static void print_header(json_t *root)
{
    json_t *c = json_object_get(root, "connections"), *l = json_object_get(root, "loop");
    long long up = num(root, "uptime_s");
    char a[32], b[32], m[32];
    printf("wsjobd %s  pid %lld  up %lldd %02lld:%02lld:%02lld  "
           "conns %lld open (%lld tls) %lld accepted %lld rejected  "
           "loop lag p50 %s p99 %s max %s\n",
           str(root, "version", "?"), num(root, "pid"), up / 86400, up / 3600 % 24, up / 60 % 60,
           up % 60, num(c, "open"), num(c, "tls_open"), num(c, "accepted_total"),
           num(c, "rejected_total"), us_text(num(l, "lag_us_p50"), a, sizeof a),
           us_text(num(l, "lag_us_p99"), b, sizeof b), us_text(num(l, "lag_us_max"), m, sizeof m));
}

static void print_queues(json_t *root)
{
    static const char *const names[] = { "cpu", "io", "reply" };
    json_t *q = json_object_get(root, "queues");
    printf("\n%-6s %8s %9s %12s %8s\n", "QUEUE", "DEPTH", "CAPACITY", "ENQUEUED", "FULL");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *e = json_object_get(q, names[i]);
        if (e)
            printf("%-6s %8lld %9lld %12lld %8lld\n", names[i], num(e, "depth"),
                   num(e, "capacity"), num(e, "enqueued_total"), num(e, "full_total"));
    }
}

static void print_workers(json_t *root)
{
    json_t *ws = json_object_get(root, "workers"), *w;
    size_t i;
    printf("\n%-8s %-8s %-5s %-8s %-12s %11s %10s\n", "PID", "TID", "CLASS", "STATE", "JOB",
           "RUNTIME_MS", "JOBS_DONE");
    json_array_foreach(ws, i, w) {
        char tid[24] = "-";
        if (json_object_get(w, "tid"))
            snprintf(tid, sizeof tid, "%lld", num(w, "tid"));
        printf("%-8lld %-8s %-5s %-8s %-12.12s %11lld %10lld\n", num(w, "pid"), tid,
               str(w, "class", "?"), str(w, "state", "?"), str(w, "job_type", "-"),
               num(w, "job_runtime_ms"), num(w, "jobs_done"));
    }
    printf("workers restarted: %lld\n", num(root, "workers_restarted_total"));
}

static void print_jobs(json_t *root)
{
    json_t *j = json_object_get(root, "jobs"), *t;
    const char *name;
    printf("\njobs: %lld submitted  %lld done  %lld failed  %lld cancelled  %lld timed out  "
           "%lld in flight\n", num(j, "submitted_total"), num(j, "done_total"),
           num(j, "failed_total"), num(j, "cancelled_total"), num(j, "timeout_total"),
           num(j, "in_flight"));
    printf("%-16s %10s %8s %10s %10s\n", "TYPE", "DONE", "FAILED", "RUN_P50", "RUN_P99");
    json_object_foreach(json_object_get(j, "by_type"), name, t) {
        char a[32], b[32];
        printf("%-16.16s %10lld %8lld %10s %10s\n", name, num(t, "done"), num(t, "failed"),
               us_text(num(t, "run_us_p50"), a, sizeof a), us_text(num(t, "run_us_p99"), b, sizeof b));
    }
}

static int show(const struct cli_opts *o, const struct ws_url *u, struct tls_client_ctx *tls,
                bool json, bool clear)
{
    char *raw = NULL;
    json_t *root = fetch(o, u, tls, json ? &raw : NULL);
    if (!root)
        return CLI_FAIL;
    if (clear)
        fputs("\033[H\033[2J", stdout);
    if (json) {
        fputs(raw, stdout);
        if (!*raw || raw[strlen(raw) - 1] != '\n')
            putchar('\n');
    } else {
        print_header(root);
        print_queues(root);
        print_workers(root);
        print_jobs(root);
    }
    fflush(stdout);
    free(raw);
    json_decref(root);
    return CLI_OK;
}

/* Sleeps up to `seconds`, waking early on Ctrl-C. */
static void nap(double seconds)
{
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (!stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static const struct option opts[] = {
    CLI_COMMON_LONGOPTS,
    { "json", no_argument, NULL, 'j' },
    { "watch", required_argument, NULL, 'w' },
    { NULL, 0, NULL, 0 },
};

int cli_stats(struct cli_opts *o, int argc, char **argv)
{
    bool json = false;
    double watch = 0;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(o, opt, optarg))
            continue;
        if (opt == 'h')
            return CLI_HELP;
        if (opt == 'j')
            json = true;
        else if (opt != 'w' || cli_parse_seconds("--watch", optarg, &watch) < 0)
            return CLI_USAGE;
    }
    if (optind < argc) {
        cli_error("stats takes no arguments");
        return CLI_USAGE;
    }
    if (watch > 0 && watch < 0.1)
        watch = 0.1;
    struct ws_url u;
    struct tls_client_ctx *tls;
    if (cli_url(o, &u) < 0)
        return CLI_USAGE;
    if (cli_tls(o, &u, &tls) < 0)
        return CLI_FAIL;
    int rc = CLI_OK;
    if (watch <= 0) {
        rc = show(o, &u, tls, json, false);
    } else {
        struct sigaction sa = { .sa_handler = on_sigint };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        bool tty = isatty(1);
        /* Until Ctrl-C; a failed fetch is shown and retried, as top would. */
        while (!stop) {
            show(o, &u, tls, json, tty);
            nap(watch);
        }
    }
    tls_client_ctx_free(tls);
    return rc;
}
