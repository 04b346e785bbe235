/* log.h — one line per event on stderr, prefixed with its syslog priority
 * ("<6>listening on 127.0.0.1:8080") so journald keeps the level.
 *
 * Every process and thread may log at any time: a line is formatted on the
 * caller's stack and handed to the kernel in a single write(2), so lines from
 * the front, the workers and the I/O threads never interleave.  A disabled
 * level costs one relaxed atomic load; its arguments are not evaluated. */
#ifndef WSJOBD_LOG_H
#define WSJOBD_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

/* The values are the syslog priorities journald reads from the prefix. */
enum log_level {
    LOG_LEVEL_ERROR = 3,
    LOG_LEVEL_WARN  = 4,
    LOG_LEVEL_INFO  = 6,
    LOG_LEVEL_DEBUG = 7
};

/* Most verbose level written.  Read it through log_enabled(), set it through
 * log_set_level(): it is shared with threads that never lock. */
extern _Atomic int log_max_level;

static inline bool log_enabled(int level)
{
    return level <= atomic_load_explicit(&log_max_level, memory_order_relaxed);
}

/* Ignores a value that is not one of enum log_level. */
void log_set_level(int level);

/* "error", "warn", "info", "debug" (any case) to a level; -1 otherwise. */
int log_parse_level(const char *name);
const char *log_level_name(int level);

/* Names this process in every line it writes ("cpu-worker 3" gives
 * "<6>cpu-worker 3: ..."); empty (the default) for the front process.  Call
 * it right after fork, before the process starts threads. */
void log_set_role(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes one line whatever the level; use the macros below.  Newlines and
 * other control characters in the message are escaped (\x0a) so a client-
 * or plug-in-supplied string cannot forge a line; a line longer than about
 * 1 KiB is cut and ends in "...".  Keeps errno. */
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(level, ...)                                 \
    do {                                                   \
        if (log_enabled(level))                            \
            log_write((level), __VA_ARGS__);               \
    } while (0)

#define log_error(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
