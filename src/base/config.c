/* config.c — options from the command line and a config file (see config.h).
 *
 * Sources are applied lowest precedence first (defaults,
 * file, command line), so a later source simply overwrites a scalar, and
 * the first value of a repeatable option from a new source drops the list
 * the earlier source built. */
#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config_parts.h"

/* ---- sources ------------------------------------------------------------- */

static int apply_defaults(struct config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg_n_options; i++)
        for (size_t j = 0; cfg_options[i].def[j]; j++) {
            int rc = cfg_store(c, &cfg_options[i], cfg_options[i].def[j], SRC_DEFAULT, 0,
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
    return cfg_fail(err, errlen, "wsjobd: %s:%u: %s", c->path, line, why);
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
    const struct opt_def *o = cfg_find_option(key, strlen(key));
    if (!o && strncmp(key, "--", 2) == 0 && cfg_find_option(key + 2, strlen(key + 2)))
        return fail_line(c, no, err, errlen, "write the key without '--': '%s'", key + 2);
    if (!o)
        return fail_line(c, no, err, errlen, "unknown key '%s'", key);
    if (o->flags & F_ARGS)
        return cfg_fail_at(c, o, SRC_FILE, no, err, errlen,
                       "allowed on the command line only");
    return cfg_store(c, o, value, SRC_FILE, no, err, errlen);
}

static int read_file(struct config *c, char *err, size_t errlen)
{
    FILE *f = fopen(c->path, "re");
    if (!f)
        return cfg_fail(err, errlen, "wsjobd: %s: %s", c->path, strerror(errno));

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned no = 0;
    int rc = CONFIG_OK;
    errno = 0;
    while (rc == CONFIG_OK && (n = getline(&line, &cap, f)) >= 0)
        rc = file_line(c, line, (size_t)n, ++no, err, errlen);
    if (rc == CONFIG_OK && ferror(f))
        rc = cfg_fail(err, errlen, "wsjobd: %s: %s", c->path, strerror(errno));
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
        if (!(o = cfg_find_option(a + 2, len)))
            return cfg_fail(err, errlen, "wsjobd: --%.*s: unknown option (see --help)",
                        (int)len, a + 2);
        v = eq ? eq + 1 : NULL;
    } else if (a[0] == '-' && a[1] != '-' && a[1] != '\0') {
        for (size_t j = 0; j < cfg_n_options && !o; j++)
            if (cfg_options[j].letter == a[1])
                o = &cfg_options[j];
        if (!o || (!takes_value(o) && a[2]))
            return cfg_fail(err, errlen, "wsjobd: %s: unknown option (see --help)", a);
        v = a[2] ? a + 2 : NULL;
    } else {
        return cfg_fail(err, errlen, "wsjobd: %s: unexpected argument", a);
    }

    if (!takes_value(o) && v)
        return cfg_fail(err, errlen, "wsjobd: --%s: takes no value", o->name);
    if (takes_value(o) && !v) {
        if (*i + 1 >= argc)
            return cfg_fail(err, errlen, "wsjobd: --%s: missing value", o->name);
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
    const struct raw *r = &c->priv->raw[o - cfg_options];
    return cfg_fail_at(c, o, r->src, r->v[i].line, err, errlen, "%s", why);
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

/* The address of listening socket i, counting listen[], then
 * tls_listen[], then agent_listen[]; its option and index in *o and *k. */
static const struct netaddr *listener_at(const struct config *c, size_t i,
                                         const struct opt_def **o, size_t *k)
{
    static const char *const names[] = { "listen", "tls-listen", "agent-listen" };
    const struct config_addrs *lists[] = { &c->listen, &c->tls_listen, &c->agent_listen };
    for (size_t l = 0; l < 3; l++) {
        if (i < lists[l]->n) {
            *o = cfg_find_option(names[l], strlen(names[l]));
            *k = i;
            return &lists[l]->v[i];
        }
        i -= lists[l]->n;
    }
    return NULL;
}

/* Each listening socket is checked against all that come before it: two
 * binds of one address would fail at start-up with a vaguer message. */
static int check_listeners(const struct config *c, char *err, size_t errlen)
{
    size_t total = c->listen.n + c->tls_listen.n + c->agent_listen.n;
    const struct opt_def *o, *ob;
    size_t k, kb;
    char why[160];

    for (size_t i = 1; i < total; i++) {
        const struct netaddr *a = listener_at(c, i, &o, &k);
        for (size_t j = 0; j < i; j++) {
            if (!same_addr(a, listener_at(c, j, &ob, &kb)))
                continue;
            snprintf(why, sizeof why, "%s is already a listener", a->text);
            return fail_entry(c, o, k, err, errlen, why);
        }
    }
    return CONFIG_OK;
}

static int check_tls(const struct config *c, char *err, size_t errlen)
{
    const struct opt_def *ot = cfg_find_option("tls-listen", 10);
    const struct opt_def *oc = cfg_find_option("tls-cert", 8);
    const struct opt_def *ok = cfg_find_option("tls-key", 7);

    if (c->tls_listen.n && (!c->tls_cert || !c->tls_key))
        return fail_entry(c, ot, 0, err, errlen, "needs tls-cert and tls-key");
    if (c->tls_cert && !c->tls_key)
        return fail_entry(c, oc, 0, err, errlen, "needs tls-key");
    if (c->tls_key && !c->tls_cert)
        return fail_entry(c, ok, 0, err, errlen, "needs tls-cert");
    return CONFIG_OK;
}

/* A budget under two messages would answer busy to the very submit whose
 * bytes filled it.  "auto" rises to four messages instead of failing: the
 * operator asked for a sane value, not a particular one. */
static int settle_memory_budget(struct config *c, char *err, size_t errlen)
{
    const struct opt_def *o = cfg_find_option("memory-budget", 13);
    const char *text = config_values(c, "memory-budget", 0);
    if (!c->memory_budget || c->memory_budget / 2 >= c->max_message)
        return CONFIG_OK;
    if (text && strcmp(text, "auto") == 0) {
        c->memory_budget = 4 * c->max_message;
        return CONFIG_OK;
    }
    char why[160];
    snprintf(why, sizeof why, "must be 0 (off) or at least twice max-message (%zu bytes)",
             2 * c->max_message);
    return fail_entry(c, o, 0, err, errlen, why);
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
    for (size_t i = 0; i < cfg_n_options; i++)
        print_option(out, &cfg_options[i]);
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
        return cfg_out_of_memory(err, errlen);

    int rc = scan_args(argc, argv, args, &n, err, errlen);
    if (rc == CONFIG_OK)
        rc = apply_defaults(c, err, errlen);
    /* -c first, wherever it stood, so the file sits under every other
     * command-line value. */
    for (size_t i = 0; rc == CONFIG_OK && i < n; i++)
        if (args[i].o == CONFIG_OPTION)
            rc = cfg_store(c, args[i].o, args[i].v, SRC_ARGS, 0, err, errlen);
    if (rc == CONFIG_OK && c->path)
        rc = read_file(c, err, errlen);
    for (size_t i = 0; rc == CONFIG_OK && i < n; i++)
        if (args[i].o != CONFIG_OPTION)
            rc = cfg_store(c, args[i].o, args[i].v, SRC_ARGS, 0, err, errlen);
    if (rc == CONFIG_OK)
        rc = settle_memory_budget(c, err, errlen);
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
        return cfg_fail(err, errlen, "wsjobd: no program name in argv");
    if (!(c->priv = calloc(1, sizeof *c->priv + cfg_n_options * sizeof c->priv->raw[0])) ||
        copy_argv(c->priv, argc, argv) < 0) {
        config_free(c);
        return cfg_out_of_memory(err, errlen);
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
        return cfg_fail(err, errlen, "wsjobd: reload needs a loaded configuration");
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
    for (size_t i = 0; i < cfg_n_options && n < max; i++)
        if ((cfg_options[i].flags & F_RESTART) &&
            !same_values(&next->priv->raw[i], &current->priv->raw[i]))
            names[n++] = cfg_options[i].name;
    return n;
}

void config_free(struct config *c)
{
    if (c->priv) {
        for (size_t i = 0; i < cfg_n_options; i++)
            cfg_clear_option(c, &cfg_options[i]);
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
    const struct opt_def *o = cfg_find_option(name, strlen(name));
    if (!o || !c->priv)
        return NULL;
    const struct raw *r = &c->priv->raw[o - cfg_options];
    return index < r->n ? r->v[index].text : NULL;
}

bool config_stats_allowed(const struct config *c, const struct sockaddr *peer)
{
    return netaddr_cidr_match(c->stats_allow.v, c->stats_allow.n, peer);
}
