/* config.c — options from the command line and a config file (see config.h).
 *
 * Every value, from any source, goes through store(): it checks the value,
 * converts it into the typed field of struct config and keeps the text for
 * config_values().  Sources are applied lowest precedence first (defaults,
 * file, command line), so a later source simply overwrites a scalar, and
 * the first value of a repeatable option from a new source drops the list
 * the earlier source built. */
#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

enum kind {
    K_UINT,     /* unsigned, min..max */
    K_CORES,    /* K_UINT, or "auto" for the CPUs this process may run on */
    K_SIZE,     /* size_t with k/M/G suffixes, min..max */
    K_STR,      /* char *, checked by opt_def.check */
    K_STRS,     /* struct config_strs, each checked by opt_def.check */
    K_ADDRS,    /* struct config_addrs */
    K_CIDRS,    /* struct config_cidrs */
    K_LEVEL,    /* int, enum log_level */
    K_FLAG,     /* bool, takes no value */
    K_HELP,
    K_VERSION
};

enum {
    F_REPEAT = 1 << 0,  /* a list: each occurrence appends */
    F_ARGS   = 1 << 1,  /* command line only */
    F_OFF    = 1 << 2,  /* 0 means off and is exempt from the minimum */
    F_POW2   = 1 << 3,  /* rounded up to a power of two */
    F_RESTART = 1 << 4  /* sizes or starts something once: a reload keeps it */
};

/* Where a value came from, lowest precedence first. */
enum { SRC_DEFAULT, SRC_FILE, SRC_ARGS };

typedef int check_fn(const char *v, char *why, size_t whylen);

struct opt_def {
    const char *name;       /* long option and config file key */
    char        letter;     /* short option, or 0 */
    enum kind   kind;
    unsigned    flags;
    size_t      field;      /* offset of the typed field in struct config */
    uint64_t    min, max;   /* K_UINT, K_CORES, K_SIZE */
    check_fn   *check;      /* K_STR, K_STRS: NULL accepts any text */
    const char *def[3];     /* default values, NULL-terminated */
    const char *arg;        /* what --help calls the value */
    const char *help;       /* for --help; '\n' continues the column */
};

static check_fn check_readable, check_user, check_token, check_origin,
                check_hostport;

#define KIB 1024ull
#define FIELD(f) offsetof(struct config, f)
#define DAY_MS 86400000u
#define HOUR_MS 3600000u

static const struct opt_def options[] = {
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
    { "handlers", 0, K_STRS, F_REPEAT | F_RESTART, FIELD(handlers), 0, 0, check_readable,
      {NULL}, "FILE.so", "load plug-in job types, repeatable" },
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

#define N_OPTIONS (sizeof options / sizeof options[0])
#define CONFIG_OPTION (&options[0])   /* -c, --config */

struct raw_value {
    char    *text;   /* owned */
    unsigned line;   /* config file line, 0 for other sources */
};

/* The texts behind each option's typed field, in the same order as a
 * list's entries, so entry i of a list came from raw.v[i]. */
struct raw {
    struct raw_value *v;
    size_t n;
    int    src;      /* SRC_* of every value in v */
};

struct config_priv {
    char **argv;     /* owned copy of the command line, for config_reload */
    int    argc;
    struct raw raw[N_OPTIONS];
};

/* ---- errors -------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CONFIG_ERR;
}

/* "wsjobd: FILE:LINE: key: why" or "wsjobd: --key: why". */
__attribute__((format(printf, 7, 8)))
static int fail_at(const struct config *c, const struct opt_def *o, int src,
                   unsigned line, char *err, size_t errlen, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (src == SRC_FILE)
        return fail(err, errlen, "wsjobd: %s:%u: %s: %s", c->path, line, o->name, why);
    return fail(err, errlen, "wsjobd: --%s: %s", o->name, why);
}

static int out_of_memory(char *err, size_t errlen)
{
    return fail(err, errlen, "wsjobd: out of memory");
}

/* ---- numbers ------------------------------------------------------------- */

/* Digits only: strtoull would accept a sign, leading blanks and hex. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]) || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Binary multiples, as memory is counted: 1k = 1024. */
static int parse_size(const char *s, uint64_t *out)
{
    size_t len = strlen(s);
    uint64_t unit = 1, v;
    const char *units = "kmg";
    const char *u = len ? strchr(units, tolower((unsigned char)s[len - 1])) : NULL;

    if (u && *u) {
        unit = 1ull << (10 * (u - units + 1));
        len--;
    }
    if (parse_u64(s, len, &v) < 0 || v > UINT64_MAX / unit)
        return -1;
    *out = v * unit;
    return 0;
}

static const char *size_text(uint64_t v, char *buf, size_t len)
{
    static const char suffix[] = "GMk";
    for (int i = 0; i < 3; i++) {
        uint64_t unit = 1ull << (10 * (3 - i));
        if (v && v % unit == 0) {
            snprintf(buf, len, "%llu%c", (unsigned long long)(v / unit), suffix[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

static void range_text(const struct opt_def *o, char *buf, size_t len)
{
    char lo[32], hi[32];
    if (o->kind == K_SIZE) {
        size_text(o->min, lo, sizeof lo);
        size_text(o->max, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%llu", (unsigned long long)o->min);
        snprintf(hi, sizeof hi, "%llu", (unsigned long long)o->max);
    }
    snprintf(buf, len, "%s%s to %s", o->flags & F_OFF ? "0 (off) or " : "", lo, hi);
}

/* CPUs in this process's affinity mask, which a container or systemd's
 * CPUAffinity= may narrow below the machine's online count. */
static uint64_t usable_cpus(const struct opt_def *o)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                      : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < (long)o->min)
        return o->min;
    return (uint64_t)n > o->max ? o->max : (uint64_t)n;
}

static uint64_t round_up_pow2(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static int parse_number(const struct opt_def *o, const char *v, uint64_t *n,
                        char *why, size_t whylen)
{
    char range[80];
    range_text(o, range, sizeof range);
    if (o->kind == K_CORES && strcmp(v, "auto") == 0) {
        *n = usable_cpus(o);
        return 0;
    }
    int bad = o->kind == K_SIZE ? parse_size(v, n) : parse_u64(v, strlen(v), n);
    if (bad < 0) {
        snprintf(why, whylen, "expected %s%s (%s), got '%s'",
                 o->kind == K_CORES ? "auto or " : "",
                 o->kind == K_SIZE ? "a size with an optional k, M or G suffix"
                                   : "a whole number", range, v);
        return -1;
    }
    if ((*n == 0 && (o->flags & F_OFF)) || (*n >= o->min && *n <= o->max))
        return 0;
    snprintf(why, whylen, "'%s' is out of range (%s)", v, range);
    return -1;
}

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

/* ---- typed fields -------------------------------------------------------- */

static void *field_of(struct config *c, const struct opt_def *o)
{
    return (char *)c + o->field;
}

static int grow(void **v, size_t n, size_t size)
{
    void *p = realloc(*v, (n + 1) * size);
    if (!p)
        return -1;
    *v = p;
    return 0;
}

static int set_string(char **dst, const struct opt_def *o, const char *v,
                      char *why, size_t whylen)
{
    if (o->check && o->check(v, why, whylen) < 0)
        return -1;
    char *copy = strdup(v);
    if (!copy) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    free(*dst);
    *dst = copy;
    return 0;
}

static int add_string(struct config_strs *l, const struct opt_def *o,
                      const char *v, char *why, size_t whylen)
{
    char *copy = NULL;
    if (set_string(&copy, o, v, why, whylen) < 0)
        return -1;
    if (grow((void **)&l->v, l->n, sizeof *l->v) < 0) {
        free(copy);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    l->v[l->n++] = copy;
    return 0;
}

static int add_addr(struct config_addrs *l, const char *v, char *why, size_t whylen)
{
    struct netaddr a;
    if (netaddr_parse(&a, v, why, whylen) < 0)
        return -1;
    if (grow((void **)&l->v, l->n, sizeof *l->v) < 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    l->v[l->n++] = a;
    return 0;
}

static int add_cidr(struct config_cidrs *l, const char *v, char *why, size_t whylen)
{
    struct netaddr_cidr r;
    if (netaddr_parse_cidr(&r, v, why, whylen) < 0)
        return -1;
    if (grow((void **)&l->v, l->n, sizeof *l->v) < 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    l->v[l->n++] = r;
    return 0;
}

static int set_level(int *dst, const char *v, char *why, size_t whylen)
{
    int level = log_parse_level(v);
    if (level < 0) {
        snprintf(why, whylen, "expected error, warn, info or debug, got '%s'", v);
        return -1;
    }
    *dst = level;
    return 0;
}

static int set_value(struct config *c, const struct opt_def *o, const char *v,
                     char *why, size_t whylen)
{
    void *f = field_of(c, o);
    uint64_t n;

    switch (o->kind) {
    case K_UINT:
    case K_CORES:
        if (parse_number(o, v, &n, why, whylen) < 0)
            return -1;
        *(unsigned *)f = (unsigned)(o->flags & F_POW2 ? round_up_pow2(n) : n);
        return 0;
    case K_SIZE:
        if (parse_number(o, v, &n, why, whylen) < 0)
            return -1;
        *(size_t *)f = (size_t)n;
        return 0;
    case K_STR:   return set_string(f, o, v, why, whylen);
    case K_STRS:  return add_string(f, o, v, why, whylen);
    case K_ADDRS: return add_addr(f, v, why, whylen);
    case K_CIDRS: return add_cidr(f, v, why, whylen);
    case K_LEVEL: return set_level(f, v, why, whylen);
    case K_FLAG:
    case K_HELP:
    case K_VERSION:
        break;
    }
    return 0;
}

/* Empties an option: its texts and its typed field (numbers are simply
 * overwritten by the next value). */
static void clear_option(struct config *c, const struct opt_def *o)
{
    struct raw *r = &c->priv->raw[o - options];
    void *f = field_of(c, o);

    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].text);
    free(r->v);
    r->v = NULL;
    r->n = 0;
    if (o->kind == K_STR) {
        free(*(char **)f);
        *(char **)f = NULL;
    } else if (o->kind == K_STRS) {
        struct config_strs *l = f;
        for (size_t i = 0; i < l->n; i++)
            free(l->v[i]);
        free(l->v);
        *l = (struct config_strs){0};
    } else if (o->kind == K_ADDRS) {
        free(((struct config_addrs *)f)->v);
        *(struct config_addrs *)f = (struct config_addrs){0};
    } else if (o->kind == K_CIDRS) {
        free(((struct config_cidrs *)f)->v);
        *(struct config_cidrs *)f = (struct config_cidrs){0};
    }
}

static int store(struct config *c, const struct opt_def *o, const char *v,
                 int src, unsigned line, char *err, size_t errlen)
{
    struct raw *r = &c->priv->raw[o - options];
    char why[512];

    if (o->kind == K_FLAG) {
        *(bool *)field_of(c, o) = true;
        return CONFIG_OK;
    }
    if (src == SRC_FILE && r->src == SRC_FILE && r->n && !(o->flags & F_REPEAT))
        return fail_at(c, o, src, line, err, errlen,
                       "already set on line %u", r->v[0].line);
    if (*v == '\0')
        return fail_at(c, o, src, line, err, errlen, "missing value");
    if (r->src != src || !(o->flags & F_REPEAT))
        clear_option(c, o);
    r->src = src;
    if (set_value(c, o, v, why, sizeof why) < 0)
        return fail_at(c, o, src, line, err, errlen, "%s", why);
    char *text = strdup(v);
    if (!text || grow((void **)&r->v, r->n, sizeof *r->v) < 0) {
        free(text);
        return out_of_memory(err, errlen);
    }
    r->v[r->n++] = (struct raw_value){ text, line };
    return CONFIG_OK;
}

/* ---- sources ------------------------------------------------------------- */

static const struct opt_def *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

static int apply_defaults(struct config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        for (size_t j = 0; options[i].def[j]; j++) {
            int rc = store(c, &options[i], options[i].def[j], SRC_DEFAULT, 0,
                           err, errlen);
            if (rc != CONFIG_OK)
                return rc;
        }
    return CONFIG_OK;
}

static char *trim(char *s)
{
    char *end = s + strlen(s);
    while (isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

__attribute__((format(printf, 5, 6)))
static int fail_line(const struct config *c, unsigned line, char *err,
                     size_t errlen, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return fail(err, errlen, "wsjobd: %s:%u: %s", c->path, line, why);
}

static int file_line(struct config *c, char *line, size_t len, unsigned no,
                     char *err, size_t errlen)
{
    if (strlen(line) != len)
        return fail_line(c, no, err, errlen, "contains a NUL byte");
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return CONFIG_OK;
    char *eq = strchr(s, '=');
    if (!eq || eq == s)
        return fail_line(c, no, err, errlen, "expected 'key = value', got '%s'", s);
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    const struct opt_def *o = find_option(key, strlen(key));
    if (!o && strncmp(key, "--", 2) == 0 && find_option(key + 2, strlen(key + 2)))
        return fail_line(c, no, err, errlen, "write the key without '--': '%s'", key + 2);
    if (!o)
        return fail_line(c, no, err, errlen, "unknown key '%s'", key);
    if (o->flags & F_ARGS)
        return fail_at(c, o, SRC_FILE, no, err, errlen,
                       "allowed on the command line only");
    return store(c, o, value, SRC_FILE, no, err, errlen);
}

static int read_file(struct config *c, char *err, size_t errlen)
{
    FILE *f = fopen(c->path, "re");
    if (!f)
        return fail(err, errlen, "wsjobd: %s: %s", c->path, strerror(errno));

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned no = 0;
    int rc = CONFIG_OK;
    errno = 0;
    while (rc == CONFIG_OK && (n = getline(&line, &cap, f)) >= 0)
        rc = file_line(c, line, (size_t)n, ++no, err, errlen);
    if (rc == CONFIG_OK && ferror(f))
        rc = fail(err, errlen, "wsjobd: %s: %s", c->path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

struct arg {
    const struct opt_def *o;
    const char *v;          /* points into argv; NULL for flags */
};

static bool takes_value(const struct opt_def *o)
{
    return o->kind != K_FLAG && o->kind != K_HELP && o->kind != K_VERSION;
}

static void print_usage(FILE *out);

/* Finds the option argv[*i] names and its value, if attached ("--name=v",
 * "-cFILE") or, for an option that takes one, the next argument. */
static int resolve_arg(int argc, char **argv, int *i, struct arg *out,
                       char *err, size_t errlen)
{
    const char *a = argv[*i], *v = NULL;
    const struct opt_def *o = NULL;

    if (a[0] == '-' && a[1] == '-' && a[2] != '\0') {
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (!(o = find_option(a + 2, len)))
            return fail(err, errlen, "wsjobd: --%.*s: unknown option (see --help)",
                        (int)len, a + 2);
        v = eq ? eq + 1 : NULL;
    } else if (a[0] == '-' && a[1] != '-' && a[1] != '\0') {
        for (size_t j = 0; j < N_OPTIONS && !o; j++)
            if (options[j].letter == a[1])
                o = &options[j];
        if (!o || (!takes_value(o) && a[2]))
            return fail(err, errlen, "wsjobd: %s: unknown option (see --help)", a);
        v = a[2] ? a + 2 : NULL;
    } else {
        return fail(err, errlen, "wsjobd: %s: unexpected argument", a);
    }

    if (!takes_value(o) && v)
        return fail(err, errlen, "wsjobd: --%s: takes no value", o->name);
    if (takes_value(o) && !v) {
        if (*i + 1 >= argc)
            return fail(err, errlen, "wsjobd: --%s: missing value", o->name);
        v = argv[++*i];
    }
    *out = (struct arg){ o, v };
    return CONFIG_OK;
}

/* Splits argv into options and values without judging the values, so the
 * config file (named anywhere on the line) can be read before them.
 * --help and --version act at once. */
static int scan_args(int argc, char **argv, struct arg *out, size_t *n,
                     char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        struct arg *a = &out[*n];
        int rc = resolve_arg(argc, argv, &i, a, err, errlen);
        if (rc != CONFIG_OK)
            return rc;
        if (a->o->kind == K_HELP) {
            print_usage(stdout);
            return CONFIG_EXIT;
        }
        if (a->o->kind == K_VERSION) {
            printf("wsjobd %s\n", WSJOBD_VERSION);
            fflush(stdout);
            return CONFIG_EXIT;
        }
        (*n)++;
    }
    return CONFIG_OK;
}

/* ---- cross-field checks -------------------------------------------------- */

static int fail_entry(const struct config *c, const struct opt_def *o, size_t i,
                      char *err, size_t errlen, const char *why)
{
    const struct raw *r = &c->priv->raw[o - options];
    return fail_at(c, o, r->src, r->v[i].line, err, errlen, "%s", why);
}

static unsigned port_of(const struct netaddr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* Port 0 lets the kernel pick a port per socket, so two of them never
 * collide. */
static bool same_addr(const struct netaddr *a, const struct netaddr *b)
{
    return a->len == b->len && port_of(a) != 0 && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Listeners are listen[] then tls_listen[]: each one is checked against all
 * that come before it. */
static int check_listeners(const struct config *c, char *err, size_t errlen)
{
    const struct opt_def *ol = find_option("listen", 6);
    const struct opt_def *ot = find_option("tls-listen", 10);
    size_t total = c->listen.n + c->tls_listen.n;
    char why[160];

    for (size_t i = 1; i < total; i++) {
        bool tls = i >= c->listen.n;
        size_t k = tls ? i - c->listen.n : i;
        const struct netaddr *a = tls ? &c->tls_listen.v[k] : &c->listen.v[i];
        for (size_t j = 0; j < i; j++) {
            const struct netaddr *b = j < c->listen.n ? &c->listen.v[j]
                                                      : &c->tls_listen.v[j - c->listen.n];
            if (!same_addr(a, b))
                continue;
            snprintf(why, sizeof why, "%s is already a listener", a->text);
            return fail_entry(c, tls ? ot : ol, k, err, errlen, why);
        }
    }
    return CONFIG_OK;
}

static int check_tls(const struct config *c, char *err, size_t errlen)
{
    const struct opt_def *ot = find_option("tls-listen", 10);
    const struct opt_def *oc = find_option("tls-cert", 8);
    const struct opt_def *ok = find_option("tls-key", 7);

    if (c->tls_listen.n && (!c->tls_cert || !c->tls_key))
        return fail_entry(c, ot, 0, err, errlen, "needs tls-cert and tls-key");
    if (c->tls_cert && !c->tls_key)
        return fail_entry(c, oc, 0, err, errlen, "needs tls-key");
    if (c->tls_key && !c->tls_cert)
        return fail_entry(c, ok, 0, err, errlen, "needs tls-cert");
    return CONFIG_OK;
}

static int validate(const struct config *c, char *err, size_t errlen)
{
    int rc = check_listeners(c, err, errlen);
    return rc != CONFIG_OK ? rc : check_tls(c, err, errlen);
}

/* ---- usage --------------------------------------------------------------- */

#define HELP_COLUMN 30
#define HELP_WIDTH  79

static void print_option(FILE *out, const struct opt_def *o)
{
    char left[64], dflt[80] = "";
    int n = snprintf(left, sizeof left, "  %c%c%s--%s%s%s", o->letter ? '-' : ' ',
                     o->letter ? o->letter : ' ', o->letter ? ", " : "  ", o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
    fputs(left, out);
    if (n >= HELP_COLUMN - 1) {
        fputc('\n', out);
        n = 0;
    }
    fprintf(out, "%*s", HELP_COLUMN - n, "");

    for (size_t j = 0, used = 0; o->def[j] && used < sizeof dflt; j++) {
        int w = snprintf(dflt + used, sizeof dflt - used, "%s%s%s",
                         j ? ", " : " (default: ", o->def[j], o->def[j + 1] ? "" : ")");
        used += w > 0 ? (size_t)w : 0;
    }

    const char *h = o->help, *nl;
    while ((nl = strchr(h, '\n'))) {
        fprintf(out, "%.*s\n%*s", (int)(nl - h), h, HELP_COLUMN, "");
        h = nl + 1;
    }
    if (HELP_COLUMN + strlen(h) + strlen(dflt) > HELP_WIDTH)
        fprintf(out, "%s\n%*s%s\n", h, HELP_COLUMN, "", dflt + 1);
    else
        fprintf(out, "%s%s\n", h, dflt);
}

static void print_usage(FILE *out)
{
    fputs("Usage: wsjobd [OPTION]...\n"
          "Runs jobs that WebSocket clients send in prefork worker processes and\n"
          "I/O threads, and streams the results back.  Stays in the foreground.\n"
          "\n", out);
    for (size_t i = 0; i < N_OPTIONS; i++)
        print_option(out, &options[i]);
    fputs("\n"
          "SIZE is bytes with an optional k, M or G suffix (1k = 1024); MS is\n"
          "milliseconds.\n"
          "\n"
          "The config file has one `key = value` per line, key being a long option\n"
          "without --; blank lines and lines starting with # are skipped.  The\n"
          "command line overrides the file: a value given there replaces the\n"
          "file's, and a repeatable option given there replaces the file's list.\n"
          "SIGHUP re-reads the file.\n"
          "\n"
          "Exit status: 0 on success, 2 for a bad option or configuration.\n", out);
    fflush(out);
}

/* ---- API ----------------------------------------------------------------- */

static int copy_argv(struct config_priv *p, int argc, char **argv)
{
    if (!(p->argv = calloc((size_t)argc + 1, sizeof *p->argv)))
        return -1;
    for (p->argc = 0; p->argc < argc; p->argc++)
        if (!(p->argv[p->argc] = strdup(argv[p->argc])))
            return -1;
    return 0;
}

static int apply_sources(struct config *c, int argc, char **argv,
                         char *err, size_t errlen)
{
    struct arg *args = calloc((size_t)argc + 1, sizeof *args);
    size_t n = 0;
    if (!args)
        return out_of_memory(err, errlen);

    int rc = scan_args(argc, argv, args, &n, err, errlen);
    if (rc == CONFIG_OK)
        rc = apply_defaults(c, err, errlen);
    /* -c first, wherever it stood, so the file sits under every other
     * command-line value. */
    for (size_t i = 0; rc == CONFIG_OK && i < n; i++)
        if (args[i].o == CONFIG_OPTION)
            rc = store(c, args[i].o, args[i].v, SRC_ARGS, 0, err, errlen);
    if (rc == CONFIG_OK && c->path)
        rc = read_file(c, err, errlen);
    for (size_t i = 0; rc == CONFIG_OK && i < n; i++)
        if (args[i].o != CONFIG_OPTION)
            rc = store(c, args[i].o, args[i].v, SRC_ARGS, 0, err, errlen);
    if (rc == CONFIG_OK)
        rc = validate(c, err, errlen);
    free(args);
    return rc;
}

int config_parse_args(struct config *c, int argc, char **argv,
                      char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (argc < 1)
        return fail(err, errlen, "wsjobd: no program name in argv");
    if (!(c->priv = calloc(1, sizeof *c->priv)) ||
        copy_argv(c->priv, argc, argv) < 0) {
        config_free(c);
        return out_of_memory(err, errlen);
    }
    int rc = apply_sources(c, argc, argv, err, errlen);
    if (rc != CONFIG_OK)
        config_free(c);
    return rc;
}

int config_reload(struct config *c, const struct config *current,
                  char *err, size_t errlen)
{
    if (c == current || !current->priv)
        return fail(err, errlen, "wsjobd: reload needs a loaded configuration");
    return config_parse_args(c, current->priv->argc, current->priv->argv,
                             err, errlen);
}

static bool same_values(const struct raw *a, const struct raw *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].text, b->v[i].text) != 0)
            return false;
    return true;
}

size_t config_restart_changes(const struct config *next, const struct config *current,
                              const char **names, size_t max)
{
    size_t n = 0;
    if (!next->priv || !current->priv)
        return 0;
    for (size_t i = 0; i < N_OPTIONS && n < max; i++)
        if ((options[i].flags & F_RESTART) &&
            !same_values(&next->priv->raw[i], &current->priv->raw[i]))
            names[n++] = options[i].name;
    return n;
}

void config_free(struct config *c)
{
    if (c->priv) {
        for (size_t i = 0; i < N_OPTIONS; i++)
            clear_option(c, &options[i]);
        for (int i = 0; c->priv->argv && i < c->priv->argc; i++)
            free(c->priv->argv[i]);
        free(c->priv->argv);
        free(c->priv);
    }
    memset(c, 0, sizeof *c);
}

const char *config_values(const struct config *c, const char *name,
                          unsigned index)
{
    const struct opt_def *o = find_option(name, strlen(name));
    if (!o || !c->priv)
        return NULL;
    const struct raw *r = &c->priv->raw[o - options];
    return index < r->n ? r->v[index].text : NULL;
}

bool config_stats_allowed(const struct config *c, const struct sockaddr *peer)
{
    return netaddr_cidr_match(c->stats_allow.v, c->stats_allow.n, peer);
}
