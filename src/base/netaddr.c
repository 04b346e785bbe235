/* netaddr.c — listen addresses and CIDR rules (see netaddr.h). */
#include "base/netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Longest host part we accept: IPv6 text, '%', interface name. */
#define HOST_MAX (INET6_ADDRSTRLEN + 1 + IF_NAMESIZE)

__attribute__((format(printf, 3, 4)))
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Decimal 0..max, digits only: strtoul would take signs, spaces and hex. */
static int parse_small_uint(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

static int parse_scope(const char *name, uint32_t *scope)
{
    unsigned long v;
    if (parse_small_uint(name, UINT32_MAX, &v) == 0) {
        *scope = (uint32_t)v;
        return 0;
    }
    *scope = if_nametoindex(name);
    return *scope ? 0 : -1;
}

static int set_v4(struct netaddr *a, const char *host, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (strcmp(host, "*") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -1;
    a->len = sizeof *sin;
    return 0;
}

/* host is writable: the scope suffix is cut off in place. */
static int set_v6(struct netaddr *a, char *host, uint16_t port,
                  char *why, size_t whylen)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
    char *pct = strchr(host, '%');
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (pct) {
        *pct = '\0';
        if (parse_scope(pct + 1, &sin6->sin6_scope_id) < 0)
            return fail(why, whylen, "unknown network interface '%s'", pct + 1);
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return fail(why, whylen, "'%s' is not a numeric IPv6 address", host);
    a->len = sizeof *sin6;
    return 0;
}

int netaddr_parse(struct netaddr *a, const char *s, char *why, size_t whylen)
{
    char host[HOST_MAX + 1];
    const char *port_text, *colon, *start = s;
    bool v6 = s[0] == '[';
    unsigned long port;
    size_t hostlen;

    memset(a, 0, sizeof *a);
    if (v6) {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return fail(why, whylen, "expected [IPv6]:PORT, got '%s'", s);
        start = s + 1;
        hostlen = (size_t)(close - start);
        port_text = close + 2;
    } else {
        colon = strchr(s, ':');
        if (!colon)
            return fail(why, whylen, "expected ADDR:PORT, got '%s'", s);
        if (strchr(colon + 1, ':'))
            return fail(why, whylen,
                        "'%s': an IPv6 address goes in brackets, as in [::1]:8080", s);
        hostlen = (size_t)(colon - s);
        port_text = colon + 1;
    }
    if (hostlen == 0 || hostlen > HOST_MAX)
        return fail(why, whylen, "expected ADDR:PORT, got '%s'", s);
    memcpy(host, start, hostlen);
    host[hostlen] = '\0';
    if (parse_small_uint(port_text, 65535, &port) < 0)
        return fail(why, whylen, "'%s' is not a port (0..65535)", port_text);
    if (v6 && set_v6(a, host, (uint16_t)port, why, whylen) < 0)
        return -1;
    if (!v6 && set_v4(a, host, (uint16_t)port) < 0)
        return fail(why, whylen,
                    "'%s' is not a numeric IPv4 address, * or localhost", host);
    netaddr_format((struct sockaddr *)&a->ss, a->text, sizeof a->text);
    return 0;
}

const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN], scope[IF_NAMESIZE + 12] = "";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
        return buf;
    }
    if (sa->sa_family != AF_INET6) {
        snprintf(buf, len, "?");
        return buf;
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    char ifname[IF_NAMESIZE];
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
    if (sin6->sin6_scope_id && if_indextoname(sin6->sin6_scope_id, ifname))
        snprintf(scope, sizeof scope, "%%%s", ifname);
    else if (sin6->sin6_scope_id)
        snprintf(scope, sizeof scope, "%%%u", (unsigned)sin6->sin6_scope_id);
    snprintf(buf, len, "[%s%s]:%u", ip, scope, (unsigned)ntohs(sin6->sin6_port));
    return buf;
}

/* ---- CIDR rules ---------------------------------------------------------- */

static bool prefix_equal(const unsigned char *a, const unsigned char *b,
                         unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static void mask_host_bits(unsigned char *addr, size_t bytes, unsigned prefix)
{
    for (size_t i = 0; i < bytes; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8
                      : prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;
        addr[i] &= (unsigned char)(0xff << (8 - keep));
    }
}

int netaddr_parse_cidr(struct netaddr_cidr *c, const char *s,
                       char *why, size_t whylen)
{
    char ip[INET6_ADDRSTRLEN + 1], net[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
    unsigned long prefix;

    memset(c, 0, sizeof *c);
    if (iplen == 0 || iplen >= sizeof ip)
        return fail(why, whylen, "expected ADDRESS[/PREFIX], got '%s'", s);
    memcpy(ip, s, iplen);
    ip[iplen] = '\0';
    c->family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(c->family, ip, c->addr) != 1)
        return fail(why, whylen, "'%s' is not a numeric IP address", ip);

    unsigned max = c->family == AF_INET ? 32 : 128;
    if (!slash)
        prefix = max;
    else if (parse_small_uint(slash + 1, max, &prefix) < 0)
        return fail(why, whylen, "'%s': the prefix length is out of range", s);
    c->prefix = (unsigned)prefix;

    unsigned char masked[16];
    memcpy(masked, c->addr, sizeof masked);
    mask_host_bits(masked, max / 8, c->prefix);
    if (memcmp(masked, c->addr, max / 8) == 0)
        return 0;
    inet_ntop(c->family, masked, net, sizeof net);
    snprintf(why, whylen, "'%s' has host bits set; did you mean %s/%u?",
             s, net, c->prefix);
    return -1;
}

static bool match_family(const struct netaddr_cidr *rules, size_t n,
                         int family, const unsigned char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (rules[i].family == family &&
            prefix_equal(rules[i].addr, addr, rules[i].prefix))
            return true;
    return false;
}

bool netaddr_cidr_match(const struct netaddr_cidr *rules, size_t n,
                        const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return match_family(rules, n, AF_INET,
                            (const unsigned char *)&sin->sin_addr);
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    const unsigned char *a6 = sin6->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
        match_family(rules, n, AF_INET, a6 + 12))
        return true;
    return match_family(rules, n, AF_INET6, a6);
}

/* ---- host names and origins ---------------------------------------------- */

static bool host_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_';
}

/* A host name, IPv4 address or [IPv6]; returns what follows it, or NULL. */
static const char *skip_host(const char *s)
{
    const char *p = s;
    if (*p == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1)
            return NULL;
        for (p = s + 1; p < close; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return NULL;
        return close + 1;
    }
    while (host_char(*p))
        p++;
    return p == s ? NULL : p;
}

/* Nothing, or ":PORT" with PORT 1..65535. */
static bool valid_port_suffix(const char *p)
{
    unsigned long port;
    if (*p == '\0')
        return true;
    return *p == ':' && parse_small_uint(p + 1, 65535, &port) == 0 && port > 0;
}

bool netaddr_valid_hostport(const char *s)
{
    const char *rest = skip_host(s);
    return rest && valid_port_suffix(rest);
}

bool netaddr_valid_origin(const char *s)
{
    const char *p = s, *rest;
    if (!islower((unsigned char)*p))
        return false;
    while (islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3) != 0 || !(rest = skip_host(p + 3)) ||
        !valid_port_suffix(rest))
        return false;
    for (p += 3; p < rest; p++)
        if (isupper((unsigned char)*p))
            return false;
    return true;
}
