/* result_store_url.c — the --result-store URL, redis://HOST[:PORT][/DB],
 * read once at start-up into the host, port and database the link uses.
 * Refused with a reason: another scheme (rediss:// included: no TLS to
 * Redis), a user or password, a query, a port out of range, a path that is
 * not a database number. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/result_store_parts.h"

static int parse_number(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int host_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
            return 0;
    return 1;
}

static int url_error(char *err, size_t errlen, const char *url, const char *why)
{
    snprintf(err, errlen, "bad result store URL '%s': %s "
             "(expected redis://HOST[:PORT][/DB])", url, why);
    return -1;
}

int rs_url_parse(struct result_store *rs, const char *url, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    size_t n = strlen(url);
    if (n >= sizeof rs->url)
        return url_error(err, errlen, "...", "too long");
    memcpy(rs->url, url, n + 1);
    if (strncmp(url, "rediss://", 9) == 0)
        return url_error(err, errlen, url, "TLS to Redis is not supported");
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return url_error(err, errlen, url, "the scheme must be redis://");
    const char *a = url + sizeof scheme - 1;
    if (strpbrk(a, "@?#"))
        return url_error(err, errlen, url, "user, password, query and fragment are not supported");

    const char *path = strchr(a, '/');
    size_t alen = path ? (size_t)(path - a) : strlen(a);
    const char *port = NULL;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close || close - a - 1 >= (long)sizeof rs->host)
            return url_error(err, errlen, url, "unclosed [IPv6] address");
        memcpy(rs->host, a + 1, (size_t)(close - a - 1));
        rs->host[close - a - 1] = 0;
        unsigned char bin[16];
        if (inet_pton(AF_INET6, rs->host, bin) != 1)
            return url_error(err, errlen, url, "not an IPv6 address in [ ]");
        if (close + 1 < a + alen && close[1] != ':')
            return url_error(err, errlen, url, "junk after ]");
        port = close + 1 < a + alen ? close + 2 : NULL;
    } else {
        const char *colon = memchr(a, ':', alen);
        size_t hlen = colon ? (size_t)(colon - a) : alen;
        if (!host_name_ok(a, hlen))
            return url_error(err, errlen, url, "no host, or a host that is not a name or an address");
        memcpy(rs->host, a, hlen);
        rs->host[hlen] = 0;
        port = colon ? colon + 1 : NULL;
    }

    long v = 6379;
    if (port && parse_number(port, (size_t)(a + alen - port), 65535, &v) < 0)
        return url_error(err, errlen, url, "the port must be 1-65535");
    if (v == 0)
        return url_error(err, errlen, url, "the port must be 1-65535");
    rs->port = (int)v;

    v = 0;
    if (path && path[1] && parse_number(path + 1, strlen(path + 1), 0x7fffffff, &v) < 0)
        return url_error(err, errlen, url, "the path must be a database number");
    rs->db = (int)v;
    return 0;
}

int rs_host_is_numeric(const char *host)
{
    unsigned char bin[16];
    return inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
}

/* The option's check at start-up and on reload: the same parser, so a bad
 * URL is refused with the file and line, never later by the loop. */
int result_store_url_check(const char *url, char *err, size_t errlen)
{
    struct result_store *rs = calloc(1, sizeof *rs);
    if (!rs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = rs_url_parse(rs, url, err, errlen);
    free(rs);
    return rc;
}
