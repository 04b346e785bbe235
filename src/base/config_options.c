/* config_options.c — every option of wsjobd: its name, kind, limits,
 * default and help, in the order --help lists them; and the checks of the
 * options whose values are strings. */
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config_parts.h"
#include "base/log.h"
#include "base/netaddr.h"
#include "store/result_store.h"

/* ---- strings ------------------------------------------------------------- */

static int check_readable(const char *v, char *why, size_t whylen)
{
    if (access(v, R_OK) == 0)
        return 0;
    snprintf(why, whylen, "%s: %s", v, strerror(errno));
    return -1;
}

/* Looked up again when privileges are dropped; this only turns a typo into
 * a start-up error with a line number. */
static int check_user(const char *v, char *why, size_t whylen)
{
    if (getpwnam(v))
        return 0;
    snprintf(why, whylen, "no such user '%s'", v);
    return -1;
}

/* It travels in an HTTP header and a query string. */
static int check_token(const char *v, char *why, size_t whylen)
{
    for (const char *p = v; *p; p++) {
        if (*p <= ' ' || *p > '~') {
            snprintf(why, whylen, "only printable ASCII without spaces is allowed");
            return -1;
        }
    }
    return 0;
}

static int check_hostport(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    /* HOST:* allows every port of HOST (the fetch job's rule). */
    if (n > 2 && strcmp(v + n - 2, ":*") == 0) {
        char host[256];
        if (n - 2 < sizeof host) {
            memcpy(host, v, n - 2);
            host[n - 2] = 0;
            if (netaddr_valid_hostport(host) && !strchr(host + (host[0] == '[' ? strcspn(host, "]") : 0), ':'))
                return 0;
        }
    }
    if (netaddr_valid_hostport(v))
        return 0;
    snprintf(why, whylen, "expected HOST[:PORT] or HOST:* (a name, an IPv4 address or "
             "[IPv6]), got '%s'", v);
    return -1;
}

/* The front compares Origin headers byte for byte, so a form no browser
 * sends could never match: refuse it here rather than deny every browser
 * later. */
static int check_origin(const char *v, char *why, size_t whylen)
{
    if (netaddr_valid_origin(v))
        return 0;
    snprintf(why, whylen, "expected SCHEME://HOST[:PORT] in lower case with no "
             "path, as browsers send it (https://example.com), got '%s'", v);
    return -1;
}

static int check_dir(const char *v, char *why, size_t whylen)
{
    struct stat st;
    if (stat(v, &st) < 0) {
        snprintf(why, whylen, "%s: %s", v, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        return 0;
    snprintf(why, whylen, "%s: not a directory", v);
    return -1;
}

/* TYPE=REST: the job type's name, as the registry will demand it, so a
 * typo stops start-up with the option's line rather than later. */
static const char *type_prefix(const char *v, char *why, size_t whylen)
{
    const char *eq = strchr(v, '=');
    size_t n = eq ? (size_t)(eq - v) : 0;
    if (!eq || n == 0 || n > 32 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n) {
        snprintf(why, whylen, "expected TYPE=..., TYPE being 1 to 32 of a-z 0-9 _ -, got '%s'", v);
        return NULL;
    }
    return eq + 1;
}

/* Trailing ",flag" words: only those in `allowed` (space-separated). */
static int check_flags(const char *flags, const char *allowed, char *why, size_t whylen)
{
    while (flags && *flags == ',') {
        flags++;
        size_t n = strcspn(flags, ",");
        const char *a = allowed;
        int ok = 0;
        while (*a && !ok) {
            size_t m = strcspn(a, " ");
            ok = m == n && n > 0 && strncmp(a, flags, n) == 0;
            a += m + (a[m] == ' ');
        }
        if (!ok) {
            snprintf(why, whylen, "unknown flag '%.*s' (allowed: %s)", (int)n, flags, allowed);
            return -1;
        }
        flags += n;
    }
    return 0;
}

static int check_python(const char *v, char *why, size_t whylen)
{
    const char *spec = type_prefix(v, why, whylen);
    if (!spec)
        return -1;
    const char *colon = strchr(spec, ':');
    const char *comma = strchr(spec, ',');
    if (!colon || colon == spec || (comma && comma < colon) || colon[1] == 0 || colon[1] == ',') {
        snprintf(why, whylen, "expected TYPE=MODULE:FUNCTION[,io], got '%s'", v);
        return -1;
    }
    return check_flags(comma, "io", why, whylen);
}

static int check_exec(const char *v, char *why, size_t whylen)
{
    const char *spec = type_prefix(v, why, whylen);
    if (!spec)
        return -1;
    size_t n = strcspn(spec, ",");
    char path[4096];
    if (n == 0 || n >= sizeof path) {
        snprintf(why, whylen, "expected TYPE=PATH[,io][,lines], got '%s'", v);
        return -1;
    }
    memcpy(path, spec, n);
    path[n] = 0;
    if (access(path, X_OK) < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return check_flags(spec + n, "io lines", why, whylen);
}

static int check_result_store(const char *v, char *why, size_t whylen)
{
    return result_store_url_check(v, why, whylen);
}

#define KIB 1024ull
#define FIELD(f) offsetof(struct config, f)
#define DAY_MS 86400000u
#define HOUR_MS 3600000u
#define WEEK_S 604800u

const struct opt_def cfg_options[] = {
    { "config", 'c', K_STR, F_ARGS, FIELD(path), 0, 0, NULL, {NULL}, "FILE",
      "read options from FILE first; the command line\noverrides it" },
    { "listen", 0, K_ADDRS, F_REPEAT | F_RESTART, FIELD(listen), 0, 0, NULL,
      {"127.0.0.1:8080"}, "ADDR:PORT",
      "plain (ws://) listener, repeatable; [::1]:8080\n"
      "for IPv6, *:8080 for every IPv4 address" },
    { "tls-listen", 0, K_ADDRS, F_REPEAT | F_RESTART, FIELD(tls_listen), 0, 0, NULL, {NULL},
      "ADDR:PORT", "TLS (wss://) listener, repeatable; needs\n--tls-cert and --tls-key" },
    { "tls-cert", 0, K_STR, 0, FIELD(tls_cert), 0, 0, check_readable, {NULL},
      "FILE", "PEM certificate chain, re-read on SIGHUP" },
    { "tls-key", 0, K_STR, 0, FIELD(tls_key), 0, 0, check_readable, {NULL},
      "FILE", "PEM private key, re-read on SIGHUP" },
    { "user", 0, K_STR, F_RESTART, FIELD(user), 0, 0, check_user, {NULL}, "NAME",
      "when started as root, become NAME after binding" },
    { "cpu-workers", 0, K_CORES, F_RESTART, FIELD(cpu_workers), 1, 256, NULL, {"auto"},
      "N", "prefork CPU worker processes; auto: one per\nCPU this process may use" },
    { "io-threads", 0, K_UINT, F_RESTART, FIELD(io_threads), 1, 1024, NULL, {"16"}, "N",
      "threads of the I/O worker process" },
    { "queue-depth", 0, K_UINT, F_POW2 | F_RESTART, FIELD(queue_depth), 1, 1u << 20, NULL,
      {"4096"}, "N", "slots per job ring, rounded up to a power of 2" },
    { "max-message", 0, K_SIZE, F_RESTART, FIELD(max_message), KIB, KIB * KIB * KIB, NULL, {"1M"},
      "SIZE", "largest WebSocket message, and largest job\noutput or chunk" },
    { "max-connections", 0, K_UINT, 0, FIELD(max_connections), 1, 1000000, NULL,
      {"10000"}, "N", "open client connections; more get HTTP 503" },
    { "max-inflight", 0, K_UINT, 0, FIELD(max_inflight), 1, 65536, NULL, {"256"},
      "N", "jobs in flight per connection" },
    { "job-timeout", 0, K_UINT, 0, FIELD(job_timeout_ms), 1, DAY_MS, NULL,
      {"30000"}, "MS", "deadline of a job that sets no timeout_ms" },
    { "cancel-grace", 0, K_UINT, 0, FIELD(cancel_grace_ms), 0, HOUR_MS, NULL,
      {"1000"}, "MS", "how long a cancelled or timed-out CPU job may\n"
      "run on before its worker is killed" },
    { "stream-window", 0, K_SIZE, F_RESTART, FIELD(stream_window), KIB, KIB * KIB * KIB, NULL,
      {"1M"}, "SIZE", "stream bytes held for a client that is not\n"
      "reading before the handler's emit waits" },
    { "ping-interval", 0, K_UINT, F_OFF, FIELD(ping_interval_ms), 100, DAY_MS,
      NULL, {"30000"}, "MS", "ping idle connections this often, drop them\n"
      "after two unanswered pings; 0: off" },
    { "crash-retries", 0, K_UINT, 0, FIELD(crash_retries), 0, 100, NULL, {"1"},
      "N", "reruns of a job whose worker died, before it\nfails with worker_crashed" },
    { "worker-max-jobs", 0, K_UINT, F_OFF, FIELD(worker_max_jobs), 1,
      1000000000, NULL, {"0"}, "N", "recycle a worker after N jobs; 0: never" },
    { "worker-max-rss", 0, K_SIZE, F_OFF, FIELD(worker_max_rss), KIB * KIB,
      KIB * KIB * KIB * KIB, NULL, {"0"}, "SIZE",
      "recycle a worker whose resident memory passes\nSIZE after a job; 0: never" },
    { "shutdown-timeout", 0, K_UINT, 0, FIELD(shutdown_timeout_ms), 0, DAY_MS,
      NULL, {"30000"}, "MS", "on SIGTERM, how long jobs in flight may finish" },
    { "backlog", 0, K_UINT, F_RESTART, FIELD(backlog), 1, 65535, NULL, {"511"}, "N",
      "listen backlog (capped by net.core.somaxconn)" },
    { "handshake-timeout", 0, K_UINT, 0, FIELD(handshake_timeout_ms), 100,
      HOUR_MS, NULL, {"10000"}, "MS",
      "close a connection that has not completed its\nHTTP request and upgrade by then" },
    { "memory-budget", 0, K_MEMORY, F_OFF, FIELD(memory_budget), KIB * KIB,
      KIB * KIB * KIB * KIB, NULL, {"auto"}, "SIZE",
      "bytes the front may hold in client buffers in\n"
      "all; past it the biggest holders are not read\n"
      "and new submits get busy; auto: 1/8 of RAM (or\n"
      "of the cgroup's limit), 16M to 64M, and at\n"
      "least 4 x --max-message; 0: off" },
    { "result-ttl", 0, K_UINT, 0, FIELD(result_ttl_s), 1, WEEK_S, NULL, {"300"}, "S",
      "seconds a detached job's final event is kept\nafter it ends" },
    { "detach-buffer", 0, K_SIZE, F_OFF, FIELD(detach_buffer), KIB, KIB * KIB * KIB, NULL,
      {"1M"}, "SIZE", "a detached job's kept chunk events, oldest\n"
      "dropped past it; 0: keep none" },
    { "max-detached", 0, K_UINT, 0, FIELD(max_detached), 1, 1000000, NULL, {"10000"}, "N",
      "detached jobs held at once, running or kept\nfinished; busy past it" },
    { "result-store", 0, K_STR, F_RESTART, FIELD(result_store), 0, 0, check_result_store,
      {NULL}, "redis://HOST[:PORT][/DB]", "mirror detached jobs to this Redis, so that\n"
      "every instance sharing it can attach to them\nand cancel them" },
    { "handlers", 0, K_STRS, F_REPEAT | F_RESTART, FIELD(handlers), 0, 0, check_readable,
      {NULL}, "FILE.so", "load plug-in job types, repeatable" },
    { "python", 0, K_STRS, F_REPEAT | F_RESTART, FIELD(python), 0, 0, check_python,
      {NULL}, "TYPE=MODULE:FUNCTION[,io]", "a job type run by a Python function,\n"
      "repeatable; io: on the I/O worker's threads" },
    { "python-path", 0, K_STRS, F_REPEAT | F_RESTART, FIELD(python_path), 0, 0, check_dir,
      {NULL}, "DIR", "put DIR first on the handlers' sys.path,\nrepeatable" },
    { "exec", 0, K_STRS, F_REPEAT | F_RESTART, FIELD(exec), 0, 0, check_exec,
      {NULL}, "TYPE=PATH[,io][,lines]", "a job type run by an executable: input on\n"
      "stdin, output from stdout, repeatable" },
    { "agent-listen", 0, K_ADDRS, F_RESTART, FIELD(agent_listen), 0, 0, NULL, {NULL},
      "ADDR:PORT", "HAProxy agent-check port: each connection gets\n"
      "one line, ready N% or drain, then the close" },
    { "stats-allow", 0, K_CIDRS, F_REPEAT, FIELD(stats_allow), 0, 0, NULL,
      {"127.0.0.0/8", "::1/128"}, "CIDR",
      "who may read /stats and /metrics, repeatable;\n"
      "the first one given replaces the default" },
    { "auth-token", 0, K_STR, 0, FIELD(auth_token), 0, 0, check_token, {NULL},
      "TOKEN", "require Authorization: Bearer TOKEN (or\n"
      "?token=TOKEN) on /jobs and /run/*" },
    { "allow-origin", 0, K_STRS, F_REPEAT, FIELD(allow_origin), 0, 0,
      check_origin, {NULL}, "ORIGIN", "browser Origin allowed, repeatable; when any\n"
      "is given, others get 403 (default: any)" },
    { "fetch-allow", 0, K_STRS, F_REPEAT, FIELD(fetch_allow), 0, 0,
      check_hostport, {NULL}, "HOST[:PORT]", "a host the fetch job may reach, repeatable;\n"
      "none: fetch is refused" },
    { "log-level", 0, K_LEVEL, 0, FIELD(log_level), 0, 0, NULL, {"info"},
      "LEVEL", "error, warn, info or debug" },
    { "check-config", 0, K_FLAG, F_ARGS, FIELD(check_config), 0, 0, NULL, {NULL},
      NULL, "check the configuration, print any problem,\nexit 0 (valid) or 2" },
    { "help", 'h', K_HELP, F_ARGS, 0, 0, 0, NULL, {NULL}, NULL,
      "print this help and exit" },
    { "version", 'V', K_VERSION, F_ARGS, 0, 0, 0, NULL, {NULL}, NULL,
      "print the version and exit" },
};

const size_t cfg_n_options = sizeof cfg_options / sizeof cfg_options[0];

const struct opt_def *cfg_find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < cfg_n_options; i++)
        if (strlen(cfg_options[i].name) == len && memcmp(cfg_options[i].name, name, len) == 0)
            return &cfg_options[i];
    return NULL;
}
