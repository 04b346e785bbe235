/* test_netaddr.c — address text in and out, interface scopes, and CIDR
 * edges the config tests do not reach. */
#include <check.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/netaddr.h"

static char why[256];

START_TEST(format_round_trips)
{
    static const char *const texts[] = {
        "127.0.0.1:8080", "0.0.0.0:0", "[::1]:443", "[2001:db8::1]:65535",
        "[::ffff:10.0.0.1]:80",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        struct netaddr a;
        char buf[NETADDR_TEXT_MAX];
        ck_assert_msg(netaddr_parse(&a, texts[i], why, sizeof why) == 0, "%s", why);
        ck_assert_str_eq(a.text, texts[i]);
        ck_assert_str_eq(netaddr_format((struct sockaddr *)&a.ss, buf, sizeof buf), texts[i]);
    }
    struct sockaddr un = { .sa_family = AF_UNIX };
    char buf[8];
    ck_assert_str_eq(netaddr_format(&un, buf, sizeof buf), "?");
}
END_TEST

START_TEST(ipv6_scope_by_name_or_number)
{
    unsigned lo = if_nametoindex("lo");
    ck_assert_uint_ne(lo, 0);
    struct netaddr a;
    ck_assert_int_eq(netaddr_parse(&a, "[fe80::1%lo]:80", why, sizeof why), 0);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.ss;
    ck_assert_uint_eq(sin6->sin6_scope_id, lo);
    ck_assert_str_eq(a.text, "[fe80::1%lo]:80");

    char numeric[64];
    snprintf(numeric, sizeof numeric, "[fe80::1%%%u]:80", lo);
    ck_assert_int_eq(netaddr_parse(&a, numeric, why, sizeof why), 0);
    ck_assert_str_eq(a.text, "[fe80::1%lo]:80");

    ck_assert_int_eq(netaddr_parse(&a, "[fe80::1%nosuchif0]:80", why, sizeof why), -1);
    ck_assert_str_eq(why, "unknown network interface 'nosuchif0'");
}
END_TEST

START_TEST(overlong_host_is_refused)
{
    char s[300];
    memset(s, '1', sizeof s);
    strcpy(s + 250, ":80");
    struct netaddr a;
    ck_assert_int_eq(netaddr_parse(&a, s, why, sizeof why), -1);
    ck_assert_int_eq(strncmp(why, "expected ADDR:PORT", 18), 0);
}
END_TEST

static bool match6(const struct netaddr_cidr *r, size_t n, const char *ip)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return netaddr_cidr_match(r, n, (struct sockaddr *)&sin6);
}

static bool match4(const struct netaddr_cidr *r, size_t n, const char *ip)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return netaddr_cidr_match(r, n, (struct sockaddr *)&sin);
}

START_TEST(cidr_edges)
{
    struct netaddr_cidr r[2] = {0};
    ck_assert(!match4(r, 0, "127.0.0.1"));

    ck_assert_int_eq(netaddr_parse_cidr(&r[0], "::ffff:0:0/96", why, sizeof why), 0);
    ck_assert(match6(r, 1, "::ffff:1.2.3.4"));
    ck_assert(!match4(r, 1, "1.2.3.4"));

    ck_assert_int_eq(netaddr_parse_cidr(&r[1], "10.0.0.0/7", why, sizeof why), 0);
    ck_assert(match4(&r[1], 1, "11.255.0.1"));
    ck_assert(!match4(&r[1], 1, "12.0.0.1"));
    ck_assert_int_eq(netaddr_parse_cidr(&r[1], "11.0.0.0/7", why, sizeof why), -1);
    ck_assert_str_eq(why, "'11.0.0.0/7' has host bits set; did you mean 10.0.0.0/7?");
}
END_TEST

START_TEST(cidr_prefix_boundaries)
{
    struct netaddr_cidr r;
    ck_assert_int_eq(netaddr_parse_cidr(&r, "192.168.1.128/25", why, sizeof why), 0);
    ck_assert_uint_eq(r.prefix, 25);
    ck_assert(match4(&r, 1, "192.168.1.128"));
    ck_assert(match4(&r, 1, "192.168.1.255"));
    ck_assert(!match4(&r, 1, "192.168.1.127"));

    ck_assert_int_eq(netaddr_parse_cidr(&r, "2001:db8::/127", why, sizeof why), 0);
    ck_assert(match6(&r, 1, "2001:db8::1"));
    ck_assert(!match6(&r, 1, "2001:db8::2"));

    ck_assert_int_eq(netaddr_parse_cidr(&r, "::/0", why, sizeof why), 0);
    ck_assert(match6(&r, 1, "2001:db8::2"));
    ck_assert(!match4(&r, 1, "1.2.3.4"));

    ck_assert_int_eq(netaddr_parse_cidr(&r, "1.2.3.4", why, sizeof why), 0);
    ck_assert_uint_eq(r.prefix, 32);
    ck_assert_int_eq(netaddr_parse_cidr(&r, "::1", why, sizeof why), 0);
    ck_assert_uint_eq(r.prefix, 128);
}
END_TEST

START_TEST(host_and_origin_syntax)
{
    ck_assert(netaddr_valid_hostport("example.org"));
    ck_assert(netaddr_valid_hostport("10.0.0.1:8080"));
    ck_assert(netaddr_valid_hostport("[2001:db8::1]:443"));
    ck_assert(!netaddr_valid_hostport(""));
    ck_assert(!netaddr_valid_hostport("[]:80"));
    ck_assert(!netaddr_valid_hostport("a.b:65536"));
    ck_assert(!netaddr_valid_hostport("a.b:"));
    ck_assert(!netaddr_valid_hostport("a.b/x"));

    ck_assert(netaddr_valid_origin("https://example.com"));
    ck_assert(netaddr_valid_origin("http://localhost:3000"));
    ck_assert(netaddr_valid_origin("chrome-extension://abcdef"));
    ck_assert(!netaddr_valid_origin("https://example.com/"));
    ck_assert(!netaddr_valid_origin("https://EXAMPLE.com"));
    ck_assert(!netaddr_valid_origin("null"));
    ck_assert(!netaddr_valid_origin("://example.com"));
}
END_TEST

static Suite *netaddr_suite(void)
{
    Suite *s = suite_create("netaddr");
    TCase *t = tcase_create("netaddr");
    tcase_add_test(t, format_round_trips);
    tcase_add_test(t, ipv6_scope_by_name_or_number);
    tcase_add_test(t, overlong_host_is_refused);
    tcase_add_test(t, cidr_edges);
    tcase_add_test(t, cidr_prefix_boundaries);
    tcase_add_test(t, host_and_origin_syntax);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(netaddr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
