/* log.c — syslog-prefixed lines on stderr (see log.h). */
#include "base/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A whole line stays well under PIPE_BUF (4096 on Linux): the kernel writes
 * at most that much to a pipe atomically, and journald's stderr is a pipe
 * shared by every process of the service. */
#define MSG_MAX  1024
#define LINE_MAX_BYTES 1280
#define ROLE_MAX 48
_Static_assert(LINE_MAX_BYTES <= PIPE_BUF, "a log line must fit one atomic pipe write");

_Atomic int log_max_level = LOG_LEVEL_INFO;

/* Written once per process before it has threads; read-only afterwards. */
static char role[ROLE_MAX];

static const char *const names[8] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN]  = "warn",
    [LOG_LEVEL_INFO]  = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

void log_set_level(int level)
{
    if (log_level_name(level))
        atomic_store_explicit(&log_max_level, level, memory_order_relaxed);
}

int log_parse_level(const char *name)
{
    for (int level = 0; level < 8; level++)
        if (names[level] && strcasecmp(name, names[level]) == 0)
            return level;
    return -1;
}

const char *log_level_name(int level)
{
    return level >= 0 && level < 8 ? names[level] : NULL;
}

void log_set_role(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(role, sizeof role, fmt, ap);
    va_end(ap);
}

/* Copies msg into line from len on, escaping control bytes, and keeps room
 * for "...\n".  Returns the new length; *cut is set when msg did not fit. */
static size_t append_escaped(char *line, size_t len, const char *msg, bool *cut)
{
    static const char hex[] = "0123456789abcdef";
    const size_t room = LINE_MAX_BYTES - sizeof "...\n";

    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        bool control = *p < 0x20 || *p == 0x7f;
        if (len + (control ? 4 : 1) > room) {
            *cut = true;
            break;
        }
        if (!control) {
            line[len++] = (char)*p;
            continue;
        }
        line[len++] = '\\';
        line[len++] = 'x';
        line[len++] = hex[*p >> 4];
        line[len++] = hex[*p & 0xf];
    }
    return len;
}

/* A line is dropped rather than retried forever: logging must never be the
 * reason the front stalls. */
static void write_line(const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        line += n;
        len -= (size_t)n;
    }
}

void log_write(int level, const char *fmt, ...)
{
    int saved_errno = errno;
    char msg[MSG_MAX], line[LINE_MAX_BYTES];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(msg, sizeof msg, "(log message could not be formatted: %s)", fmt);
    bool cut = n >= (int)sizeof msg;

    int head = snprintf(line, sizeof line, "<%d>%s%s", level & 7, role,
                        role[0] ? ": " : "");
    size_t len = append_escaped(line, (size_t)head, msg, &cut);
    if (cut) {
        memcpy(line + len, "...", 3);
        len += 3;
    }
    line[len++] = '\n';
    write_line(line, len);
    errno = saved_errno;
}
