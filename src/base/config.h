/* config.h — the daemon's options, from the command line and a config file.
 *
 * One table (config_options.c) defines every option for both sources and for
 * --help.  Precedence, lowest first: built-in defaults, the config file
 * (-c FILE, wherever -c appears), the command line.  A scalar given on the
 * command line overrides the file's; a repeatable option (listen,
 * tls-listen, handlers, python, python-path, exec, stats-allow,
 * allow-origin, fetch-allow) given on the command line replaces the file's
 * whole list, and any occurrence in the file replaces the built-in default
 * list.
 *
 * Config file: `key = value` per line, key being the long option without
 * `--`; blank lines and lines whose first non-blank character is `#` are
 * skipped.  There are no trailing comments, so a value (a token, a path) may
 * contain `#`.  A key that is not repeatable may appear once per file: a
 * second occurrence is refused as the edit mistake it nearly always is.
 *
 * Errors are one line, without a newline, ready for the caller to print
 * before exiting 2:  `wsjobd: FILE:LINE: key: what is wrong`,
 * `wsjobd: --option: what is wrong`, or `wsjobd: FILE: No such file or
 * directory`. */
#ifndef WSJOBD_CONFIG_H
#define WSJOBD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "base/netaddr.h"
#include "base/version.h"

enum {
    CONFIG_OK   = 0,
    CONFIG_EXIT = 1,  /* --help or --version was printed: exit 0 */
    CONFIG_ERR  = 2   /* the reason is in err: exit 2 */
};

struct config_strs  { char **v; size_t n; };
struct config_addrs { struct netaddr *v; size_t n; };
struct config_cidrs { struct netaddr_cidr *v; size_t n; };

/* Everything is owned by the struct and freed by config_free().  Nothing
 * points back into the struct, so it may be copied by value as long as only
 * one copy is freed.  The numeric fields are already range-checked; ms
 * fields are milliseconds. */
struct config {
    struct config_addrs listen;         /* never empty: 127.0.0.1:8080 */
    struct config_addrs tls_listen;     /* non-empty implies tls_cert, tls_key */
    char *tls_cert, *tls_key;           /* both or neither; readable when set */
    char *user;                         /* NULL: keep the starting user; else
                                           a user that exists */
    unsigned cpu_workers;               /* 1..256 ("auto": online cores) */
    unsigned io_threads;                /* 1..1024 */
    unsigned queue_depth;               /* power of two 1..2^20, rounded up
                                           from the value given */
    size_t   max_message;               /* 1k..1G */
    unsigned max_connections;           /* 1..1000000 */
    unsigned max_inflight;              /* 1..65536 */
    unsigned job_timeout_ms;            /* 1..86400000 */
    unsigned cancel_grace_ms;           /* 0..3600000 */
    size_t   stream_window;             /* 1k..1G */
    unsigned ping_interval_ms;          /* 0 (off) or 100..86400000 */
    unsigned crash_retries;             /* 0..100 */
    unsigned worker_max_jobs;           /* 0 (off) or a count */
    size_t   worker_max_rss;            /* 0 (off) or 1M..1T */
    unsigned shutdown_timeout_ms;       /* 0..86400000 */
    unsigned backlog;                   /* 1..65535 */
    unsigned handshake_timeout_ms;      /* 100..3600000 */
    size_t   memory_budget;             /* 0 (off) or 1M..1T: client buffers
                                           of the front in all */
    unsigned result_ttl_s;              /* 1..604800: a detached job's final
                                           event is kept this long */
    size_t   detach_buffer;             /* 0..1G: a detached job's kept chunks */
    unsigned max_detached;              /* 1..1000000 detached jobs held */
    char *result_store;                 /* redis://HOST[:PORT][/DB]; NULL: none */
    struct config_strs  handlers;       /* readable files */
    struct config_strs  python;         /* TYPE=MODULE:FUNCTION[,io], syntax checked */
    struct config_strs  python_path;    /* directories */
    struct config_strs  exec;           /* TYPE=PATH[,io][,lines], PATH executable */
    struct config_addrs agent_listen;   /* at most one: HAProxy's agent check;
                                           empty: none */
    struct config_cidrs stats_allow;    /* default 127.0.0.0/8, ::1/128 */
    char *auth_token;                   /* NULL: no token needed */
    struct config_strs  allow_origin;   /* empty: any Origin */
    struct config_strs  fetch_allow;    /* HOST[:PORT]; empty: fetch refused */
    int  log_level;                     /* enum log_level */
    bool check_config;                  /* --check-config: validate and exit */
    char *path;                         /* the config file, NULL if none */
    struct config_priv *priv;           /* command line and raw values */
};

/* Fills c from argv (argv[0] is the program name) and the config file it
 * names.  CONFIG_OK: c is filled and the caller frees it with
 * config_free().  CONFIG_EXIT: --help or --version was printed on stdout.
 * CONFIG_ERR: the reason is in err.  After EXIT or ERR c holds nothing and
 * config_free() on it is a harmless no-op. */
int config_parse_args(struct config *c, int argc, char **argv,
                      char *err, size_t errlen);

/* SIGHUP: builds c afresh from current's command line, re-reading the
 * config file, so command-line values keep overriding it.  current is not
 * touched, so on CONFIG_ERR the caller keeps running on it.  Which changes
 * take effect without a restart (limits, log level, TLS files) is the
 * caller's business. */
int config_reload(struct config *c, const struct config *current,
                  char *err, size_t errlen);

/* The options whose value differs between two loaded configurations but
 * which only a restart applies (listeners, worker counts, shared memory
 * sizes): up to max names, stored in names; returns how many. */
size_t config_restart_changes(const struct config *next, const struct config *current,
                              const char **names, size_t max);

void config_free(struct config *c);

/* The text of occurrence `index` of option `name` (long name, no dashes) as
 * given or defaulted, e.g. ("fetch-allow", 1) for the second host; NULL when
 * there is no such occurrence or option.  Flags have no text.  The string
 * lives as long as c. */
const char *config_values(const struct config *c, const char *name,
                          unsigned index);

/* May this peer read /stats and /metrics? */
bool config_stats_allowed(const struct config *c, const struct sockaddr *peer);

#endif
