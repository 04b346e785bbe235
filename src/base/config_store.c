/* config_store.c — one option value, from any source, into struct config.
 *
 * Every value goes through cfg_store(): it checks the value, converts it
 * into the typed field of struct config and keeps the text for
 * config_values().  A later source overwrites a scalar, and the first value
 * of a repeatable option from a new source drops the list the earlier
 * source built. */
#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config_parts.h"
#include "base/log.h"

/* ---- errors -------------------------------------------------------------- */

int cfg_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CONFIG_ERR;
}

int cfg_fail_at(const struct config *c, const struct opt_def *o, int src,
                   unsigned line, char *err, size_t errlen, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (src == SRC_FILE)
        return cfg_fail(err, errlen, "wsjobd: %s:%u: %s: %s", c->path, line, o->name, why);
    return cfg_fail(err, errlen, "wsjobd: --%s: %s", o->name, why);
}

int cfg_out_of_memory(char *err, size_t errlen)
{
    return cfg_fail(err, errlen, "wsjobd: out of memory");
}


/* ---- numbers ------------------------------------------------------------- */

/* Digits only: strtoull would accept a sign, leading blanks and hex. */
static int cfg_parse_u64(const char *s, size_t len, uint64_t *out)
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
static int cfg_parse_size(const char *s, uint64_t *out)
{
    size_t len = strlen(s);
    uint64_t unit = 1, v;
    const char *units = "kmg";
    const char *u = len ? strchr(units, tolower((unsigned char)s[len - 1])) : NULL;

    if (u && *u) {
        unit = 1ull << (10 * (u - units + 1));
        len--;
    }
    if (cfg_parse_u64(s, len, &v) < 0 || v > UINT64_MAX / unit)
        return -1;
    *out = v * unit;
    return 0;
}

static const char *cfg_size_text(uint64_t v, char *buf, size_t len)
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

static void cfg_range_text(const struct opt_def *o, char *buf, size_t len)
{
    char lo[32], hi[32];
    if (o->kind == K_SIZE || o->kind == K_MEMORY) {
        cfg_size_text(o->min, lo, sizeof lo);
        cfg_size_text(o->max, hi, sizeof hi);
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

/* The memory budget's "auto": a share of what this process may use, so
 * the client buffers of a crowd that does not read cost a bounded slice of
 * it.  Capped because only clients that fall behind by more than their
 * socket's kernel buffers fill the front's buffers: a bigger budget buys
 * them room, not anyone throughput.  The allocator's overhead on large
 * messages comes on top (see wsjobd(8)). */
#define MEMORY_SHARE    8
#define MEMORY_AUTO_MIN (16ull << 20)
#define MEMORY_AUTO_MAX (64ull << 20)

/* memory.max of one cgroup v2 directory; 0 when unlimited or unreadable. */
static uint64_t cgroup_max_at(const char *dir)
{
    char path[4200], buf[32];
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char *line = fgets(buf, sizeof buf, f);
    fclose(f);
    uint64_t v;
    if (!line || cfg_parse_u64(buf, strcspn(buf, "\n"), &v) < 0)
        return 0;   /* "max" */
    return v;
}

/* The tightest memory.max on the way from our cgroup (systemd's
 * MemoryMax=, a container's limit) up to the root; 0 when none. */
static uint64_t cgroup_memory_max(void)
{
    char line[4096] = "";
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f) && strncmp(line, "0::", 3) != 0)
        line[0] = 0;
    fclose(f);
    if (strncmp(line, "0::", 3) != 0)
        return 0;   /* no cgroup v2 */
    char *dir = line + 3;
    dir[strcspn(dir, "\n")] = 0;
    uint64_t best = 0;
    for (;;) {
        uint64_t v = cgroup_max_at(strcmp(dir, "/") == 0 ? "" : dir);
        if (v && (!best || v < best))
            best = v;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            break;
        *slash = 0;
    }
    uint64_t root = cgroup_max_at("");
    return root && (!best || root < best) ? root : best;
}

uint64_t cfg_auto_memory_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t mem = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t cap = cgroup_memory_max();
    if (cap && (!mem || cap < mem))
        mem = cap;
    uint64_t share = mem / MEMORY_SHARE;
    if (share < MEMORY_AUTO_MIN)
        return MEMORY_AUTO_MIN;
    return share > MEMORY_AUTO_MAX ? MEMORY_AUTO_MAX : share;
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
    cfg_range_text(o, range, sizeof range);
    if (o->kind == K_CORES && strcmp(v, "auto") == 0) {
        *n = usable_cpus(o);
        return 0;
    }
    if (o->kind == K_MEMORY && strcmp(v, "auto") == 0) {
        *n = cfg_auto_memory_budget();
        return 0;
    }
    int size = o->kind == K_SIZE || o->kind == K_MEMORY;
    int bad = size ? cfg_parse_size(v, n) : cfg_parse_u64(v, strlen(v), n);
    if (bad < 0) {
        snprintf(why, whylen, "expected %s%s (%s), got '%s'",
                 o->kind == K_CORES || o->kind == K_MEMORY ? "auto or " : "",
                 size ? "a size with an optional k, M or G suffix"
                      : "a whole number", range, v);
        return -1;
    }
    if ((*n == 0 && (o->flags & F_OFF)) || (*n >= o->min && *n <= o->max))
        return 0;
    snprintf(why, whylen, "'%s' is out of range (%s)", v, range);
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
    case K_MEMORY:
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
void cfg_clear_option(struct config *c, const struct opt_def *o)
{
    struct raw *r = &c->priv->raw[o - cfg_options];
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

int cfg_store(struct config *c, const struct opt_def *o, const char *v,
                 int src, unsigned line, char *err, size_t errlen)
{
    struct raw *r = &c->priv->raw[o - cfg_options];
    char why[512];

    if (o->kind == K_FLAG) {
        *(bool *)field_of(c, o) = true;
        return CONFIG_OK;
    }
    if (src == SRC_FILE && r->src == SRC_FILE && r->n && !(o->flags & F_REPEAT))
        return cfg_fail_at(c, o, src, line, err, errlen,
                       "already set on line %u", r->v[0].line);
    if (*v == '\0')
        return cfg_fail_at(c, o, src, line, err, errlen, "missing value");
    if (r->src != src || !(o->flags & F_REPEAT))
        cfg_clear_option(c, o);
    r->src = src;
    if (set_value(c, o, v, why, sizeof why) < 0)
        return cfg_fail_at(c, o, src, line, err, errlen, "%s", why);
    char *text = strdup(v);
    if (!text || grow((void **)&r->v, r->n, sizeof *r->v) < 0) {
        free(text);
        return cfg_out_of_memory(err, errlen);
    }
    r->v[r->n++] = (struct raw_value){ text, line };
    return CONFIG_OK;
}

