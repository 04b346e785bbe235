/* netaddr.h — network addresses as operators write them: listen addresses
 * and CIDR rules parsed once into the binary forms bind() and an access
 * check need, and the syntax of host and origin entries.
 *
 * Listen addresses and rules are numeric (plus `*` and `localhost`), so
 * parsing never waits on a resolver and a bad address is a config error at
 * start-up, not a failed bind later. */
#ifndef WSJOBD_NETADDR_H
#define WSJOBD_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "[" + IPv6 text + "%" + interface name + "]:" + port, with room to spare. */
#define NETADDR_TEXT_MAX 80

struct netaddr {
    struct sockaddr_storage ss;    /* AF_INET or AF_INET6, port set */
    socklen_t               len;   /* the length bind() wants for ss */
    char text[NETADDR_TEXT_MAX];   /* normal form for logs: "127.0.0.1:8080",
                                      "[::1]:8080" */
};

struct netaddr_cidr {
    int           family;     /* AF_INET or AF_INET6 */
    unsigned char addr[16];   /* network address, host bits zero; 4 bytes
                                 used for AF_INET */
    unsigned      prefix;     /* 0..32 or 0..128 */
};

/* Parses ADDR:PORT: `127.0.0.1:8080`, `*:8080` (every IPv4 address),
 * `localhost:8080` (127.0.0.1), `[::1]:8080`, `[::]:8080`,
 * `[fe80::1%eth0]:8080`.  Port 0 lets the kernel pick one.  0, or -1 with
 * a reason in why. */
int netaddr_parse(struct netaddr *a, const char *s, char *why, size_t whylen);

/* Writes the normal form of an AF_INET or AF_INET6 address with its port
 * ("?" for any other family).  Returns buf. */
const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len);

/* Parses `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
 * Host bits set below the prefix are refused: `10.1.2.3/8` is more often a
 * typo for a narrower rule than a request for the whole /8.  0, or -1 with
 * a reason in why. */
int netaddr_parse_cidr(struct netaddr_cidr *c, const char *s,
                       char *why, size_t whylen);

/* True when sa falls inside one of the n rules.  An IPv4-mapped IPv6 peer
 * (::ffff:a.b.c.d, what a dual-stack [::] listener reports for IPv4
 * clients) is checked against IPv4 rules as a.b.c.d as well. */
bool netaddr_cidr_match(const struct netaddr_cidr *rules, size_t n,
                        const struct sockaddr *sa);

/* A --fetch-allow entry: a host name, IPv4 address or [IPv6], then
 * optionally :PORT (1..65535). */
bool netaddr_valid_hostport(const char *s);

/* A web origin as browsers serialize it in the Origin header (RFC 6454
 * §6.1): lower-case SCHEME://HOST, optionally :PORT, no path. */
bool netaddr_valid_origin(const char *s);

#endif
