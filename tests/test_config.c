/* test_config.c — options from argv and a config file: defaults, every
 * option from both sources, precedence, the exact error lines operators see,
 * --help/--version, SIGHUP reload and the /stats access rules. */
#include <check.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"

#define ARGV(...) ((char *[]){ "wsjobd", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "wsjobd", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(c, ...) config_parse_args((c), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), \
                                        err, sizeof err)

static char dir[64];
static char conf[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], plugin[PATH_MAX];
static char err[1024];
static struct config c;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void setup(void)
{
    strcpy(dir, "/tmp/test_config.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof conf, "%s/wsjobd.conf", dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(plugin, sizeof plugin, "%s/plugin.so", dir);
    write_file(cert, "cert\n");
    write_file(key, "key\n");
    write_file(plugin, "so\n");
    memset(&c, 0, sizeof c);
    err[0] = '\0';
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    config_free(&c);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes conf from a printf format; returns its path. */
__attribute__((format(printf, 1, 2)))
static char *conf_file(const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    write_file(conf, text);
    return conf;
}

/* Parses one option from the command line and expects it refused with
 * exactly `want`. */
static void expect_arg_error(const char *opt, const char *value, const char *want)
{
    struct config x;
    int rc = config_parse_args(&x, 3, (char *[]){ "wsjobd", (char *)opt, (char *)value, NULL },
                               err, sizeof err);
    ck_assert_int_eq(rc, CONFIG_ERR);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(x.priv);
}

static void expect_arg_ok(const char *opt, const char *value)
{
    struct config x;
    int rc = config_parse_args(&x, 3, (char *[]){ "wsjobd", (char *)opt, (char *)value, NULL },
                               err, sizeof err);
    ck_assert_msg(rc == CONFIG_OK, "%s %s: %s", opt, value, err);
    config_free(&x);
}

static void expect_prefix(const char *s, const char *prefix)
{
    ck_assert_msg(strncmp(s, prefix, strlen(prefix)) == 0,
                  "'%s' does not start with '%s'", s, prefix);
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(1) };
    ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(1) };
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return sin6;
}

static bool allowed4(const struct config *cfg, const char *ip)
{
    struct sockaddr_in sin = v4(ip);
    return config_stats_allowed(cfg, (struct sockaddr *)&sin);
}

static bool allowed6(const struct config *cfg, const char *ip)
{
    struct sockaddr_in6 sin6 = v6(ip);
    return config_stats_allowed(cfg, (struct sockaddr *)&sin6);
}

/* ---- defaults ------------------------------------------------------------ */

START_TEST(defaults_match_the_spec)
{
    ck_assert_int_eq(config_parse_args(&c, 1, (char *[]){ "wsjobd", NULL }, err, sizeof err),
                     CONFIG_OK);
    ck_assert_uint_eq(c.listen.n, 1);
    ck_assert_str_eq(c.listen.v[0].text, "127.0.0.1:8080");
    ck_assert_int_eq(c.listen.v[0].ss.ss_family, AF_INET);
    ck_assert_uint_eq(c.listen.v[0].len, sizeof(struct sockaddr_in));
    ck_assert_uint_eq(c.tls_listen.n, 0);
    ck_assert_ptr_null(c.tls_cert);
    ck_assert_ptr_null(c.tls_key);
    ck_assert_ptr_null(c.user);
    ck_assert_uint_ge(c.cpu_workers, 1);
    ck_assert_uint_le(c.cpu_workers, 256);
    ck_assert_uint_eq(c.io_threads, 16);
    ck_assert_uint_eq(c.queue_depth, 4096);
    ck_assert_uint_eq(c.max_message, 1 << 20);
    ck_assert_uint_eq(c.max_connections, 10000);
    ck_assert_uint_eq(c.max_inflight, 256);
    ck_assert_uint_eq(c.job_timeout_ms, 30000);
    ck_assert_uint_eq(c.cancel_grace_ms, 1000);
    ck_assert_uint_eq(c.stream_window, 1 << 20);
    ck_assert_uint_eq(c.ping_interval_ms, 30000);
    ck_assert_uint_eq(c.crash_retries, 1);
    ck_assert_uint_eq(c.worker_max_jobs, 0);
    ck_assert_uint_eq(c.worker_max_rss, 0);
    ck_assert_uint_eq(c.shutdown_timeout_ms, 30000);
    ck_assert_uint_eq(c.backlog, 511);
    ck_assert_uint_eq(c.handshake_timeout_ms, 10000);
    ck_assert_uint_eq(c.handlers.n, 0);
    ck_assert_uint_eq(c.stats_allow.n, 2);
    ck_assert_ptr_null(c.auth_token);
    ck_assert_uint_eq(c.allow_origin.n, 0);
    ck_assert_uint_eq(c.fetch_allow.n, 0);
    ck_assert_int_eq(c.log_level, LOG_LEVEL_INFO);
    ck_assert(!c.check_config);
    ck_assert_ptr_null(c.path);
}
END_TEST

START_TEST(cpu_workers_auto_is_the_usable_cpus)
{
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    unsigned want = (unsigned)CPU_COUNT(&set);
    ck_assert_int_eq(PARSE(&c, "--cpu-workers", "auto"), CONFIG_OK);
    ck_assert_uint_eq(c.cpu_workers, want > 256 ? 256 : want);
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--cpu-workers", "7"), CONFIG_OK);
    ck_assert_uint_eq(c.cpu_workers, 7);
}
END_TEST

START_TEST(memory_budget_auto_and_its_floor)
{
    /* auto: a share of memory within 16M..64M, at least four messages. */
    ck_assert_int_eq(PARSE(&c, "--log-level", "info"), CONFIG_OK);
    ck_assert_uint_ge(c.memory_budget, (size_t)16 << 20);
    ck_assert_uint_le(c.memory_budget, (size_t)64 << 20);
    ck_assert_str_eq(config_values(&c, "memory-budget", 0), "auto");
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--max-message", "64M"), CONFIG_OK);
    ck_assert_uint_eq(c.memory_budget, (size_t)256 << 20);
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--memory-budget", "0"), CONFIG_OK);
    ck_assert_uint_eq(c.memory_budget, 0);
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--memory-budget", "3M"), CONFIG_OK);
    ck_assert_uint_eq(c.memory_budget, (size_t)3 << 20);
    config_free(&c);
    /* A budget one message fills would refuse that very message. */
    ck_assert_int_eq(PARSE(&c, "--memory-budget", "1M"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --memory-budget: must be 0 (off) or at least twice "
                          "max-message (2097152 bytes)");
    ck_assert_int_eq(PARSE(&c, "--memory-budget", "lots"), CONFIG_ERR);
    expect_prefix(err, "wsjobd: --memory-budget: expected auto or a size");
}
END_TEST

START_TEST(config_values_gives_texts_and_defaults)
{
    ck_assert_int_eq(PARSE(&c, "--fetch-allow", "a.example", "--fetch-allow=b.example:81"),
                     CONFIG_OK);
    ck_assert_str_eq(config_values(&c, "fetch-allow", 0), "a.example");
    ck_assert_str_eq(config_values(&c, "fetch-allow", 1), "b.example:81");
    ck_assert_ptr_null(config_values(&c, "fetch-allow", 2));
    ck_assert_str_eq(config_values(&c, "listen", 0), "127.0.0.1:8080");
    ck_assert_str_eq(config_values(&c, "stats-allow", 1), "::1/128");
    ck_assert_str_eq(config_values(&c, "max-message", 0), "1M");
    ck_assert_ptr_null(config_values(&c, "auth-token", 0));
    ck_assert_ptr_null(config_values(&c, "no-such-option", 0));
    ck_assert_ptr_null(config_values(&c, "check-config", 0));
}
END_TEST

/* ---- every option, from either source ------------------------------------- */

static void assert_every_option(const struct config *x)
{
    ck_assert_uint_eq(x->listen.n, 2);
    ck_assert_str_eq(x->listen.v[0].text, "0.0.0.0:80");
    ck_assert_str_eq(x->listen.v[1].text, "[::1]:8081");
    ck_assert_uint_eq(x->tls_listen.n, 1);
    ck_assert_str_eq(x->tls_listen.v[0].text, "127.0.0.1:8443");
    ck_assert_str_eq(x->tls_cert, cert);
    ck_assert_str_eq(x->tls_key, key);
    ck_assert_str_eq(x->user, "root");
    ck_assert_uint_eq(x->cpu_workers, 3);
    ck_assert_uint_eq(x->io_threads, 5);
    ck_assert_uint_eq(x->queue_depth, 128);
    ck_assert_uint_eq(x->max_message, 64u << 20);
    ck_assert_uint_eq(x->max_connections, 77);
    ck_assert_uint_eq(x->max_inflight, 9);
    ck_assert_uint_eq(x->job_timeout_ms, 1500);
    ck_assert_uint_eq(x->cancel_grace_ms, 0);
    ck_assert_uint_eq(x->stream_window, 64u << 10);
    ck_assert_uint_eq(x->ping_interval_ms, 0);
    ck_assert_uint_eq(x->crash_retries, 3);
    ck_assert_uint_eq(x->worker_max_jobs, 1000);
    ck_assert_uint_eq(x->worker_max_rss, (size_t)2 << 30);
    ck_assert_uint_eq(x->shutdown_timeout_ms, 5000);
    ck_assert_uint_eq(x->backlog, 128);
    ck_assert_uint_eq(x->handshake_timeout_ms, 2500);
    ck_assert_uint_eq(x->handlers.n, 1);
    ck_assert_str_eq(x->handlers.v[0], plugin);
    ck_assert_uint_eq(x->stats_allow.n, 2);
    ck_assert(allowed4(x, "10.1.2.3"));
    ck_assert(allowed6(x, "fd00::7"));
    ck_assert(!allowed4(x, "127.0.0.1"));
    ck_assert_str_eq(x->auth_token, "s3cret#token");
    ck_assert_uint_eq(x->allow_origin.n, 2);
    ck_assert_str_eq(x->allow_origin.v[0], "https://example.com");
    ck_assert_str_eq(x->allow_origin.v[1], "http://localhost:3000");
    ck_assert_uint_eq(x->fetch_allow.n, 2);
    ck_assert_str_eq(x->fetch_allow.v[0], "127.0.0.1:9000");
    ck_assert_str_eq(x->fetch_allow.v[1], "example.org");
    ck_assert_int_eq(x->log_level, LOG_LEVEL_DEBUG);
}

START_TEST(every_option_from_the_command_line)
{
    char *argv[] = { "wsjobd",
        "--listen", "0.0.0.0:80", "--listen=[::1]:8081", "--tls-listen", "127.0.0.1:8443",
        "--tls-cert", cert, "--tls-key", key, "--user", "root", "--cpu-workers", "3",
        "--io-threads", "5", "--queue-depth", "100", "--max-message", "64M",
        "--max-connections", "77", "--max-inflight", "9", "--job-timeout", "1500",
        "--cancel-grace", "0", "--stream-window", "64k", "--ping-interval", "0",
        "--crash-retries", "3", "--worker-max-jobs", "1000", "--worker-max-rss", "2G",
        "--shutdown-timeout", "5000", "--backlog", "128", "--handshake-timeout", "2500",
        "--handlers", plugin, "--stats-allow", "10.0.0.0/8", "--stats-allow", "fd00::/8",
        "--auth-token", "s3cret#token", "--allow-origin", "https://example.com",
        "--allow-origin", "http://localhost:3000", "--fetch-allow", "127.0.0.1:9000",
        "--fetch-allow", "example.org", "--log-level", "debug", "--check-config", NULL };
    int rc = config_parse_args(&c, (int)(sizeof argv / sizeof *argv) - 1, argv, err, sizeof err);
    ck_assert_msg(rc == CONFIG_OK, "%s", err);
    assert_every_option(&c);
    ck_assert(c.check_config);
}
END_TEST

START_TEST(every_option_from_the_config_file)
{
    conf_file("# wsjobd test configuration\n"
              "\n"
              "listen = 0.0.0.0:80\n"
              "listen=[::1]:8081\n"
              "  tls-listen   =   127.0.0.1:8443   \n"
              "tls-cert = %s\n"
              "tls-key = %s\n"
              "user = root\n"
              "cpu-workers = 3\n"
              "io-threads = 5\n"
              "queue-depth = 100\n"
              "max-message = 64M\n"
              "max-connections = 77\n"
              "max-inflight = 9\n"
              "job-timeout = 1500\n"
              "cancel-grace = 0\n"
              "stream-window = 64k\n"
              "ping-interval = 0\n"
              "crash-retries = 3\n"
              "worker-max-jobs = 1000\n"
              "worker-max-rss = 2G\n"
              "shutdown-timeout = 5000\n"
              "backlog = 128\n"
              "handshake-timeout = 2500\n"
              "handlers = %s\n"
              "stats-allow = 10.0.0.0/8\n"
              "stats-allow = fd00::/8\n"
              "auth-token = s3cret#token\n"
              "   # an indented comment\n"
              "allow-origin = https://example.com\n"
              "allow-origin = http://localhost:3000\n"
              "fetch-allow = 127.0.0.1:9000\r\n"
              "fetch-allow = example.org\n"
              "log-level = DEBUG\n", cert, key, plugin);
    int rc = PARSE(&c, "-c", conf);
    ck_assert_msg(rc == CONFIG_OK, "%s", err);
    assert_every_option(&c);
    ck_assert(!c.check_config);
    ck_assert_str_eq(c.path, conf);
    ck_assert_str_eq(config_values(&c, "queue-depth", 0), "100");
}
END_TEST

START_TEST(config_option_forms)
{
    conf_file("io-threads = 3\n");
    char attached[PATH_MAX + 3];
    snprintf(attached, sizeof attached, "-c%s", conf);
    ck_assert_int_eq(PARSE(&c, attached), CONFIG_OK);
    ck_assert_uint_eq(c.io_threads, 3);
    config_free(&c);

    char eq[PATH_MAX + 10];
    snprintf(eq, sizeof eq, "--config=%s", conf);
    ck_assert_int_eq(PARSE(&c, eq), CONFIG_OK);
    ck_assert_uint_eq(c.io_threads, 3);
    ck_assert_str_eq(config_values(&c, "config", 0), conf);
}
END_TEST

/* ---- values -------------------------------------------------------------- */

START_TEST(sizes_take_binary_suffixes)
{
    static const struct { const char *text; size_t bytes; } ok[] = {
        { "1k", 1024 }, { "1K", 1024 }, { "2048", 2048 }, { "64M", 64u << 20 },
        { "3m", 3u << 20 }, { "1G", 1u << 30 }, { "1g", 1u << 30 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct config x;
        int rc = config_parse_args(&x, 3, ARGV("--max-message", (char *)ok[i].text),
                                   err, sizeof err);
        ck_assert_msg(rc == CONFIG_OK, "%s: %s", ok[i].text, err);
        ck_assert_uint_eq(x.max_message, ok[i].bytes);
        config_free(&x);
    }
    static const char *const bad[] = {
        "12x", "1T", "-1", " 1", "1kk", "0x10", "1.5M", "k", "99999999999999999999M",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[256];
        snprintf(want, sizeof want, "wsjobd: --max-message: expected a size with an "
                 "optional k, M or G suffix (1k to 1G), got '%s'", bad[i]);
        expect_arg_error("--max-message", bad[i], want);
    }
    expect_arg_error("--max-message", "512",
                     "wsjobd: --max-message: '512' is out of range (1k to 1G)");
    expect_arg_error("--max-message", "2G",
                     "wsjobd: --max-message: '2G' is out of range (1k to 1G)");
    expect_arg_error("--worker-max-rss", "512k",
                     "wsjobd: --worker-max-rss: '512k' is out of range (0 (off) or 1M to 1024G)");
    expect_arg_ok("--worker-max-rss", "0");
    expect_arg_error("--stream-window", "1023",
                     "wsjobd: --stream-window: '1023' is out of range (1k to 1G)");
}
END_TEST

START_TEST(numbers_are_range_checked)
{
    expect_arg_error("--cpu-workers", "12x",
                     "wsjobd: --cpu-workers: expected auto or a whole number (1 to 256), got '12x'");
    expect_arg_error("--cpu-workers", "0",
                     "wsjobd: --cpu-workers: '0' is out of range (1 to 256)");
    expect_arg_error("--cpu-workers", "257",
                     "wsjobd: --cpu-workers: '257' is out of range (1 to 256)");
    expect_arg_error("--io-threads", "1025",
                     "wsjobd: --io-threads: '1025' is out of range (1 to 1024)");
    expect_arg_error("--max-connections", "1000001",
                     "wsjobd: --max-connections: '1000001' is out of range (1 to 1000000)");
    expect_arg_error("--max-inflight", "65537",
                     "wsjobd: --max-inflight: '65537' is out of range (1 to 65536)");
    expect_arg_error("--job-timeout", "0",
                     "wsjobd: --job-timeout: '0' is out of range (1 to 86400000)");
    expect_arg_error("--ping-interval", "50",
                     "wsjobd: --ping-interval: '50' is out of range (0 (off) or 100 to 86400000)");
    expect_arg_error("--handshake-timeout", "99",
                     "wsjobd: --handshake-timeout: '99' is out of range (100 to 3600000)");
    expect_arg_error("--backlog", "-1",
                     "wsjobd: --backlog: expected a whole number (1 to 65535), got '-1'");
    expect_arg_error("--crash-retries", "101",
                     "wsjobd: --crash-retries: '101' is out of range (0 to 100)");
    expect_arg_error("--io-threads", "+4",
                     "wsjobd: --io-threads: expected a whole number (1 to 1024), got '+4'");
    expect_arg_ok("--ping-interval", "100");
    expect_arg_ok("--crash-retries", "0");
    expect_arg_ok("--shutdown-timeout", "0");
}
END_TEST

START_TEST(queue_depth_rounds_up_to_a_power_of_two)
{
    static const struct { const char *text; unsigned depth; } cases[] = {
        { "1", 1 }, { "3", 4 }, { "1000", 1024 }, { "4096", 4096 }, { "4097", 8192 },
        { "1048576", 1048576 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct config x;
        ck_assert_int_eq(config_parse_args(&x, 3, ARGV("--queue-depth", (char *)cases[i].text),
                                           err, sizeof err), CONFIG_OK);
        ck_assert_uint_eq(x.queue_depth, cases[i].depth);
        ck_assert_str_eq(config_values(&x, "queue-depth", 0), cases[i].text);
        config_free(&x);
    }
    expect_arg_error("--queue-depth", "1048577",
                     "wsjobd: --queue-depth: '1048577' is out of range (1 to 1048576)");
    expect_arg_error("--queue-depth", "0",
                     "wsjobd: --queue-depth: '0' is out of range (1 to 1048576)");
}
END_TEST

START_TEST(listen_addresses_ipv4_and_ipv6)
{
    ck_assert_int_eq(PARSE(&c, "--listen", "*:8080", "--listen", "[::]:9000",
                           "--listen", "localhost:81", "--listen", "[::1]:0",
                           "--listen", "192.168.1.10:65535"), CONFIG_OK);
    ck_assert_uint_eq(c.listen.n, 5);
    ck_assert_str_eq(c.listen.v[0].text, "0.0.0.0:8080");
    const struct sockaddr_in *any = (const struct sockaddr_in *)&c.listen.v[0].ss;
    ck_assert_uint_eq(any->sin_addr.s_addr, htonl(INADDR_ANY));
    ck_assert_uint_eq(ntohs(any->sin_port), 8080);

    ck_assert_str_eq(c.listen.v[1].text, "[::]:9000");
    const struct sockaddr_in6 *any6 = (const struct sockaddr_in6 *)&c.listen.v[1].ss;
    ck_assert_int_eq(any6->sin6_family, AF_INET6);
    ck_assert(IN6_IS_ADDR_UNSPECIFIED(&any6->sin6_addr));
    ck_assert_uint_eq(ntohs(any6->sin6_port), 9000);
    ck_assert_uint_eq(c.listen.v[1].len, sizeof(struct sockaddr_in6));

    ck_assert_str_eq(c.listen.v[2].text, "127.0.0.1:81");
    ck_assert_str_eq(c.listen.v[3].text, "[::1]:0");
    ck_assert_str_eq(c.listen.v[4].text, "192.168.1.10:65535");
    ck_assert_str_eq(config_values(&c, "listen", 0), "*:8080");
}
END_TEST

START_TEST(bad_listen_addresses_are_refused)
{
    expect_arg_error("--listen", "::1:8080", "wsjobd: --listen: '::1:8080': an IPv6 "
                     "address goes in brackets, as in [::1]:8080");
    expect_arg_error("--listen", "127.0.0.1",
                     "wsjobd: --listen: expected ADDR:PORT, got '127.0.0.1'");
    expect_arg_error("--listen", "127.0.0.1:65536",
                     "wsjobd: --listen: '65536' is not a port (0..65535)");
    expect_arg_error("--listen", "127.0.0.1:80x",
                     "wsjobd: --listen: '80x' is not a port (0..65535)");
    expect_arg_error("--listen", "example.com:80", "wsjobd: --listen: 'example.com' is "
                     "not a numeric IPv4 address, * or localhost");
    expect_arg_error("--listen", "1.2.3:80", "wsjobd: --listen: '1.2.3' is not a "
                     "numeric IPv4 address, * or localhost");
    expect_arg_error("--listen", "[::1]8080",
                     "wsjobd: --listen: expected [IPv6]:PORT, got '[::1]8080'");
    expect_arg_error("--listen", "[zz::1]:80",
                     "wsjobd: --listen: 'zz::1' is not a numeric IPv6 address");
    expect_arg_error("--listen", ":80", "wsjobd: --listen: expected ADDR:PORT, got ':80'");
    expect_arg_error("--listen", "[]:80", "wsjobd: --listen: expected ADDR:PORT, got '[]:80'");
}
END_TEST

START_TEST(strings_are_checked)
{
    expect_arg_error("--log-level", "verbose",
                     "wsjobd: --log-level: expected error, warn, info or debug, got 'verbose'");
    expect_arg_error("--tls-cert", "/nonexistent/cert.pem",
                     "wsjobd: --tls-cert: /nonexistent/cert.pem: No such file or directory");
    expect_arg_error("--handlers", "/nonexistent/x.so",
                     "wsjobd: --handlers: /nonexistent/x.so: No such file or directory");
    expect_arg_error("--user", "no-such-user-wsjobd",
                     "wsjobd: --user: no such user 'no-such-user-wsjobd'");
    expect_arg_error("--auth-token", "a b",
                     "wsjobd: --auth-token: only printable ASCII without spaces is allowed");
    static const char *const bad_origins[] = {
        "https://example.com/", "https://Example.com", "example.com", "HTTPS://a.b",
        "https://", "https://a.b:0", "https://a.b/path",
    };
    for (size_t i = 0; i < sizeof bad_origins / sizeof *bad_origins; i++) {
        char want[256];
        snprintf(want, sizeof want, "wsjobd: --allow-origin: expected SCHEME://HOST[:PORT] "
                 "in lower case with no path, as browsers send it (https://example.com), "
                 "got '%s'", bad_origins[i]);
        expect_arg_error("--allow-origin", bad_origins[i], want);
    }
    expect_arg_ok("--allow-origin", "https://[::1]:8443");
    static const char *const bad_hosts[] = {
        "http://x", "example.com:0", "example.com:", "a b", "[::1", "host/path",
    };
    for (size_t i = 0; i < sizeof bad_hosts / sizeof *bad_hosts; i++) {
        char want[256];
        snprintf(want, sizeof want, "wsjobd: --fetch-allow: expected HOST[:PORT] or HOST:* (a name, "
                 "an IPv4 address or [IPv6]), got '%s'", bad_hosts[i]);
        expect_arg_error("--fetch-allow", bad_hosts[i], want);
    }
    expect_arg_ok("--fetch-allow", "[::1]:80");
    expect_arg_ok("--fetch-allow", "my-host_1.internal:65535");
}
END_TEST

/* ---- command-line errors ------------------------------------------------- */

START_TEST(command_line_errors_name_the_option)
{
    ck_assert_int_eq(PARSE(&c, "--bogus", "1"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --bogus: unknown option (see --help)");
    ck_assert_int_eq(PARSE(&c, "--bogus=1"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --bogus: unknown option (see --help)");
    ck_assert_int_eq(PARSE(&c, "-x"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: -x: unknown option (see --help)");
    ck_assert_int_eq(PARSE(&c, "--max-inflight"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --max-inflight: missing value");
    ck_assert_int_eq(PARSE(&c, "-c"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --config: missing value");
    ck_assert_int_eq(PARSE(&c, "--listen="), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --listen: missing value");
    ck_assert_int_eq(PARSE(&c, "--check-config=yes"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --check-config: takes no value");
    ck_assert_int_eq(PARSE(&c, "serve"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: serve: unexpected argument");
    ck_assert_int_eq(PARSE(&c, "--max-inflight", "8", "--", "x"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --: unexpected argument");
    ck_assert_ptr_null(c.priv);
}
END_TEST

START_TEST(missing_config_file)
{
    char missing[PATH_MAX];
    snprintf(missing, sizeof missing, "%s/none.conf", dir);
    ck_assert_int_eq(PARSE(&c, "-c", missing), CONFIG_ERR);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "wsjobd: %s: No such file or directory", missing);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(PARSE(&c, "--config", dir), CONFIG_ERR);
    snprintf(want, sizeof want, "wsjobd: %s: Is a directory", dir);
    ck_assert_str_eq(err, want);
}
END_TEST

/* ---- config file errors -------------------------------------------------- */

static void expect_file_error(const char *text, const char *want_after_path)
{
    char want[PATH_MAX + 256];
    struct config x;
    write_file(conf, text);
    ck_assert_int_eq(config_parse_args(&x, 3, ARGV("-c", conf), err, sizeof err), CONFIG_ERR);
    snprintf(want, sizeof want, "wsjobd: %s:%s", conf, want_after_path);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(x.priv);
}

START_TEST(config_file_errors_give_file_and_line)
{
    expect_file_error("# workers\n\ncpu-workers = 12x\n",
                      "3: cpu-workers: expected auto or a whole number (1 to 256), got '12x'");
    expect_file_error("io-threads = 4\ncpu-worker = 2\n", "2: unknown key 'cpu-worker'");
    expect_file_error("listen =\n", "1: listen: missing value");
    expect_file_error("listen\n", "1: expected 'key = value', got 'listen'");
    expect_file_error("= 4\n", "1: expected 'key = value', got '= 4'");
    expect_file_error("io-threads = 4\nbacklog = 9\nio-threads = 5\n",
                      "3: io-threads: already set on line 1");
    expect_file_error("--io-threads = 4\n", "1: write the key without '--': 'io-threads'");
    expect_file_error("check-config = 1\n", "1: check-config: allowed on the command line only");
    expect_file_error("config = /etc/other.conf\n", "1: config: allowed on the command line only");
    expect_file_error("max-message = 1M # one mebibyte\n", "1: max-message: expected a size "
                      "with an optional k, M or G suffix (1k to 1G), got '1M # one mebibyte'");
    expect_file_error("auth-token = a b\n",
                      "1: auth-token: only printable ASCII without spaces is allowed");
    expect_file_error("\n\ntls-listen = 127.0.0.1:8443\n", "3: tls-listen: needs tls-cert and tls-key");
    expect_file_error("listen = 127.0.0.1:9000\nlisten = 127.0.0.1:9001\n"
                      "tls-listen = 127.0.0.1:9001\n",
                      "3: tls-listen: 127.0.0.1:9001 is already a listener");
    expect_file_error("listen = 127.0.0.1:9000\nagent-listen = 127.0.0.1:9000\n",
                      "2: agent-listen: 127.0.0.1:9000 is already a listener");
    expect_file_error("agent-listen = 127.0.0.1:9000\nagent-listen = 127.0.0.1:9001\n",
                      "2: agent-listen: already set on line 1");
    expect_file_error("agent-listen = 127.0.0.1\n",
                      "1: agent-listen: expected ADDR:PORT, got '127.0.0.1'");
}
END_TEST

START_TEST(file_with_nul_byte_is_refused)
{
    int fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "io-threads = 4\nbacklog\0 = 3\n", 28), 28);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(PARSE(&c, "-c", conf), CONFIG_ERR);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "wsjobd: %s:2: contains a NUL byte", conf);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(cross_field_checks)
{
    ck_assert_int_eq(PARSE(&c, "--tls-listen", "127.0.0.1:8443", "--tls-cert", cert),
                     CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --tls-listen: needs tls-cert and tls-key");
    ck_assert_int_eq(PARSE(&c, "--tls-cert", cert), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --tls-cert: needs tls-key");
    ck_assert_int_eq(PARSE(&c, "--tls-key", key), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --tls-key: needs tls-cert");
    ck_assert_int_eq(PARSE(&c, "--listen", "[::1]:80", "--listen", "[::1]:80"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --listen: [::1]:80 is already a listener");
    ck_assert_int_eq(PARSE(&c, "--listen", "*:80", "--listen", "0.0.0.0:80"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --listen: 0.0.0.0:80 is already a listener");
    ck_assert_int_eq(PARSE(&c, "--listen", "127.0.0.1:80", "--listen", "[::1]:80",
                           "--listen", "127.0.0.1:81"), CONFIG_OK);
    config_free(&c);
    /* Port 0 is the kernel's choice, per socket: no clash. */
    ck_assert_int_eq(PARSE(&c, "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"),
                     CONFIG_OK);
    ck_assert_uint_eq(c.agent_listen.n, 1);
    config_free(&c);
    ck_assert_int_eq(PARSE(&c, "--tls-listen", "[::1]:443", "--tls-cert", cert, "--tls-key", key,
                           "--agent-listen", "[::1]:443"), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --agent-listen: [::1]:443 is already a listener");
}
END_TEST

/* ---- lists and precedence ------------------------------------------------ */

START_TEST(repeatable_keys_accumulate)
{
    conf_file("fetch-allow = a.example\nlisten = 127.0.0.1:1\nfetch-allow = b.example\n"
              "listen = 127.0.0.1:2\nfetch-allow = c.example:8080\n");
    ck_assert_int_eq(PARSE(&c, "-c", conf), CONFIG_OK);
    ck_assert_uint_eq(c.fetch_allow.n, 3);
    ck_assert_str_eq(c.fetch_allow.v[2], "c.example:8080");
    ck_assert_uint_eq(c.listen.n, 2);
    ck_assert_str_eq(c.listen.v[1].text, "127.0.0.1:2");
    ck_assert_str_eq(config_values(&c, "fetch-allow", 1), "b.example");
    ck_assert_str_eq(config_values(&c, "listen", 0), "127.0.0.1:1");
    ck_assert_ptr_null(config_values(&c, "listen", 2));
}
END_TEST

START_TEST(command_line_overrides_the_file)
{
    conf_file("io-threads = 4\nbacklog = 9\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n"
              "fetch-allow = a.example\nlog-level = warn\n");
    /* -c comes last: the file is still read first. */
    ck_assert_int_eq(PARSE(&c, "--io-threads", "8", "--listen", "127.0.0.1:3",
                           "--io-threads", "6", "-c", conf), CONFIG_OK);
    ck_assert_uint_eq(c.io_threads, 6);
    ck_assert_uint_eq(c.backlog, 9);
    ck_assert_uint_eq(c.listen.n, 1);
    ck_assert_str_eq(c.listen.v[0].text, "127.0.0.1:3");
    ck_assert_str_eq(config_values(&c, "listen", 0), "127.0.0.1:3");
    ck_assert_ptr_null(config_values(&c, "listen", 1));
    ck_assert_uint_eq(c.fetch_allow.n, 1);
    ck_assert_int_eq(c.log_level, LOG_LEVEL_WARN);
    ck_assert_str_eq(config_values(&c, "io-threads", 0), "6");
}
END_TEST

START_TEST(file_values_are_checked_even_when_overridden)
{
    conf_file("io-threads = lots\n");
    ck_assert_int_eq(PARSE(&c, "-c", conf, "--io-threads", "8"), CONFIG_ERR);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "wsjobd: %s:1: io-threads: expected a whole number "
             "(1 to 1024), got 'lots'", conf);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(stats_allow_in_file_replaces_loopback_default)
{
    conf_file("stats-allow = 10.0.0.0/8\n");
    ck_assert_int_eq(PARSE(&c, "-c", conf), CONFIG_OK);
    ck_assert_uint_eq(c.stats_allow.n, 1);
    ck_assert(allowed4(&c, "10.200.0.1"));
    ck_assert(!allowed4(&c, "127.0.0.1"));
    ck_assert(!allowed6(&c, "::1"));
}
END_TEST

/* ---- /stats access ------------------------------------------------------- */

START_TEST(cidr_matching)
{
    ck_assert_int_eq(config_parse_args(&c, 1, ARGV(NULL), err, sizeof err), CONFIG_OK);
    ck_assert(allowed4(&c, "127.0.0.1"));
    ck_assert(allowed4(&c, "127.255.0.9"));
    ck_assert(!allowed4(&c, "128.0.0.1"));
    ck_assert(!allowed4(&c, "10.0.0.1"));
    ck_assert(allowed6(&c, "::1"));
    ck_assert(!allowed6(&c, "::2"));
    ck_assert(allowed6(&c, "::ffff:127.0.0.1"));
    ck_assert(!allowed6(&c, "::ffff:10.0.0.1"));
    struct sockaddr un = { .sa_family = AF_UNIX };
    ck_assert(!config_stats_allowed(&c, &un));
    config_free(&c);

    ck_assert_int_eq(PARSE(&c, "--stats-allow", "192.168.4.0/22", "--stats-allow",
                           "2001:db8::/33", "--stats-allow", "203.0.113.7",
                           "--stats-allow", "fe80::1"), CONFIG_OK);
    ck_assert(allowed4(&c, "192.168.7.255"));
    ck_assert(!allowed4(&c, "192.168.8.0"));
    ck_assert(allowed6(&c, "::ffff:192.168.4.1"));
    ck_assert(allowed6(&c, "2001:db8:7fff::1"));
    ck_assert(!allowed6(&c, "2001:db8:8000::1"));
    ck_assert(allowed4(&c, "203.0.113.7"));
    ck_assert(!allowed4(&c, "203.0.113.8"));
    ck_assert(allowed6(&c, "fe80::1"));
    ck_assert(!allowed6(&c, "fe80::2"));
    ck_assert(!allowed4(&c, "127.0.0.1"));
    config_free(&c);

    ck_assert_int_eq(PARSE(&c, "--stats-allow", "0.0.0.0/0"), CONFIG_OK);
    ck_assert(allowed4(&c, "8.8.8.8"));
    ck_assert(allowed6(&c, "::ffff:8.8.8.8"));
    ck_assert(!allowed6(&c, "2001:db8::1"));
}
END_TEST

START_TEST(bad_cidrs_are_refused)
{
    expect_arg_error("--stats-allow", "10.1.2.3/8",
                     "wsjobd: --stats-allow: '10.1.2.3/8' has host bits set; did you mean 10.0.0.0/8?");
    expect_arg_error("--stats-allow", "2001:db8::1/32",
                     "wsjobd: --stats-allow: '2001:db8::1/32' has host bits set; did you mean 2001:db8::/32?");
    expect_arg_error("--stats-allow", "10.0.0.0/33",
                     "wsjobd: --stats-allow: '10.0.0.0/33': the prefix length is out of range");
    expect_arg_error("--stats-allow", "::/129",
                     "wsjobd: --stats-allow: '::/129': the prefix length is out of range");
    expect_arg_error("--stats-allow", "10.0.0.0/",
                     "wsjobd: --stats-allow: '10.0.0.0/': the prefix length is out of range");
    expect_arg_error("--stats-allow", "localhost",
                     "wsjobd: --stats-allow: 'localhost' is not a numeric IP address");
    expect_arg_error("--stats-allow", "/8",
                     "wsjobd: --stats-allow: expected ADDRESS[/PREFIX], got '/8'");
}
END_TEST

/* ---- --help and --version ------------------------------------------------- */

/* Runs the parser with stdout going to a file; returns what it printed. */
static int capture_stdout(int argc, char **argv, char *out, size_t outlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/stdout", dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(dup2(fd, STDOUT_FILENO), 0);
    int rc = config_parse_args(&c, argc, argv, err, sizeof err);
    fflush(stdout);
    ck_assert_int_ge(dup2(saved, STDOUT_FILENO), 0);
    close(saved);
    ssize_t n = pread(fd, out, outlen - 1, 0);
    ck_assert_int_ge(n, 0);
    out[n] = '\0';
    close(fd);
    return rc;
}

START_TEST(help_lists_every_option_with_defaults)
{
    static char out[16384];
    static const char *const names[] = {
        "-c, --config FILE", "--listen ADDR:PORT", "--tls-listen ADDR:PORT",
        "--tls-cert FILE", "--tls-key FILE", "--user NAME", "--cpu-workers N",
        "--io-threads N", "--queue-depth N", "--max-message SIZE", "--max-connections N",
        "--max-inflight N", "--job-timeout MS", "--cancel-grace MS", "--stream-window SIZE",
        "--ping-interval MS", "--crash-retries N", "--worker-max-jobs N",
        "--worker-max-rss SIZE", "--shutdown-timeout MS", "--backlog N",
        "--handshake-timeout MS", "--handlers FILE.so", "--stats-allow CIDR",
        "--auth-token TOKEN", "--allow-origin ORIGIN", "--fetch-allow HOST[:PORT]",
        "--log-level LEVEL", "--check-config", "-h, --help", "-V, --version",
        "(default: 127.0.0.1:8080)", "(default: 127.0.0.0/8, ::1/128)", "(default: 1M)",
        "(default: 4096)", "(default: auto)", "(default: info)", "(default: 511)",
    };
    ck_assert_int_eq(capture_stdout(2, ARGV("--help"), out, sizeof out), CONFIG_EXIT);
    expect_prefix(out, "Usage: wsjobd [OPTION]...\n");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ck_assert_msg(strstr(out, names[i]), "--help lacks '%s'", names[i]);
    for (char *line = out, *nl; (nl = strchr(line, '\n')); line = nl + 1)
        ck_assert_msg(nl - line <= 79, "help line over 79 columns: %.*s",
                      (int)(nl - line), line);
    ck_assert_ptr_null(c.priv);

    ck_assert_int_eq(capture_stdout(4, ARGV("--max-inflight", "4", "-h"), out, sizeof out),
                     CONFIG_EXIT);
    expect_prefix(out, "Usage: wsjobd");
}
END_TEST

START_TEST(version_prints_the_version)
{
    char out[256];
    ck_assert_int_eq(capture_stdout(2, ARGV("--version"), out, sizeof out), CONFIG_EXIT);
    ck_assert_str_eq(out, "wsjobd " WSJOBD_VERSION "\n");
    ck_assert_int_eq(capture_stdout(2, ARGV("-V"), out, sizeof out), CONFIG_EXIT);
    ck_assert_str_eq(out, "wsjobd " WSJOBD_VERSION "\n");
    ck_assert_int_eq(capture_stdout(2, ARGV("--version=2"), out, sizeof out), CONFIG_ERR);
    ck_assert_str_eq(err, "wsjobd: --version: takes no value");
}
END_TEST

/* ---- SIGHUP reload -------------------------------------------------------- */

START_TEST(reload_rereads_the_file_and_keeps_command_line_overrides)
{
    conf_file("max-message = 2M\ncpu-workers = 2\n");
    char **argv = ARGV("-c", conf, "--cpu-workers", "3");
    ck_assert_int_eq(config_parse_args(&c, 5, argv, err, sizeof err), CONFIG_OK);
    /* The command line is copied: the caller's argv may change. */
    argv[4] = "99";
    ck_assert_uint_eq(c.max_message, 2u << 20);
    ck_assert_uint_eq(c.cpu_workers, 3);

    conf_file("max-message = 4M\ncpu-workers = 5\nlog-level = debug\n");
    struct config next;
    ck_assert_int_eq(config_reload(&next, &c, err, sizeof err), CONFIG_OK);
    ck_assert_uint_eq(next.max_message, 4u << 20);
    ck_assert_uint_eq(next.cpu_workers, 3);
    ck_assert_int_eq(next.log_level, LOG_LEVEL_DEBUG);
    ck_assert_str_eq(next.path, conf);
    ck_assert_uint_eq(c.max_message, 2u << 20);

    /* and again from the reloaded config */
    struct config third;
    ck_assert_int_eq(config_reload(&third, &next, err, sizeof err), CONFIG_OK);
    ck_assert_uint_eq(third.max_message, 4u << 20);
    config_free(&third);
    config_free(&next);
}
END_TEST

START_TEST(reload_refuses_a_bad_file_and_keeps_the_old_config)
{
    conf_file("max-message = 2M\n");
    ck_assert_int_eq(PARSE(&c, "-c", conf), CONFIG_OK);

    conf_file("max-message = 4M\nmax-inflight = 0\n");
    struct config next;
    ck_assert_int_eq(config_reload(&next, &c, err, sizeof err), CONFIG_ERR);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "wsjobd: %s:2: max-inflight: '0' is out of range "
             "(1 to 65536)", conf);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(next.priv);
    config_free(&next);

    ck_assert_int_eq(unlink(conf), 0);
    ck_assert_int_eq(config_reload(&next, &c, err, sizeof err), CONFIG_ERR);
    expect_prefix(err, "wsjobd: ");
    ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));

    ck_assert_uint_eq(c.max_message, 2u << 20);
    ck_assert_str_eq(c.path, conf);
    ck_assert_str_eq(config_values(&c, "max-message", 0), "2M");
    ck_assert_int_eq(config_reload(&c, &c, err, sizeof err), CONFIG_ERR);
    ck_assert_uint_eq(c.max_message, 2u << 20);
}
END_TEST

START_TEST(reload_lists_the_changes_only_a_restart_applies)
{
    conf_file("max-message = 2M\nlisten = 127.0.0.1:1\nlisten = [::1]:2\njob-timeout = 100\n");
    ck_assert_int_eq(PARSE(&c, "-c", conf, "--io-threads", "4"), CONFIG_OK);
    const char *names[16];
    struct config next;

    /* limits read per job or connection apply: nothing to list */
    conf_file("max-message = 2M\nlisten = 127.0.0.1:1\nlisten = [::1]:2\njob-timeout = 900\n"
              "max-inflight = 7\n");
    ck_assert_int_eq(config_reload(&next, &c, err, sizeof err), CONFIG_OK);
    ck_assert_uint_eq(config_restart_changes(&next, &c, names, 16), 0);
    config_free(&next);

    /* one listener fewer and another size are listed; the default backlog
     * written out is no change, nor is io-threads, which the command line
     * sets over the file */
    conf_file("max-message = 3M\nlisten = 127.0.0.1:1\nbacklog = 511\nio-threads = 9\n");
    ck_assert_int_eq(config_reload(&next, &c, err, sizeof err), CONFIG_OK);
    size_t n = config_restart_changes(&next, &c, names, 16);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(names[0], "listen");
    ck_assert_str_eq(names[1], "max-message");
    ck_assert_uint_eq(next.io_threads, 4);
    ck_assert_uint_eq(config_restart_changes(&next, &c, names, 1), 1);
    config_free(&next);
}
END_TEST

START_TEST(free_is_safe_on_an_empty_config)
{
    struct config x;
    memset(&x, 0, sizeof x);
    config_free(&x);
    config_free(&x);
    ck_assert_ptr_null(x.priv);
    ck_assert_ptr_null(config_values(&x, "listen", 0));
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("config");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, defaults_match_the_spec);
    tcase_add_test(t, cpu_workers_auto_is_the_usable_cpus);
    tcase_add_test(t, memory_budget_auto_and_its_floor);
    tcase_add_test(t, config_values_gives_texts_and_defaults);
    tcase_add_test(t, every_option_from_the_command_line);
    tcase_add_test(t, every_option_from_the_config_file);
    tcase_add_test(t, config_option_forms);
    tcase_add_test(t, sizes_take_binary_suffixes);
    tcase_add_test(t, numbers_are_range_checked);
    tcase_add_test(t, queue_depth_rounds_up_to_a_power_of_two);
    tcase_add_test(t, listen_addresses_ipv4_and_ipv6);
    tcase_add_test(t, bad_listen_addresses_are_refused);
    tcase_add_test(t, strings_are_checked);
    tcase_add_test(t, command_line_errors_name_the_option);
    tcase_add_test(t, missing_config_file);
    tcase_add_test(t, config_file_errors_give_file_and_line);
    tcase_add_test(t, file_with_nul_byte_is_refused);
    tcase_add_test(t, cross_field_checks);
    tcase_add_test(t, repeatable_keys_accumulate);
    tcase_add_test(t, command_line_overrides_the_file);
    tcase_add_test(t, file_values_are_checked_even_when_overridden);
    tcase_add_test(t, stats_allow_in_file_replaces_loopback_default);
    tcase_add_test(t, cidr_matching);
    tcase_add_test(t, bad_cidrs_are_refused);
    tcase_add_test(t, help_lists_every_option_with_defaults);
    tcase_add_test(t, version_prints_the_version);
    tcase_add_test(t, reload_rereads_the_file_and_keeps_command_line_overrides);
    tcase_add_test(t, reload_refuses_a_bad_file_and_keeps_the_old_config);
    tcase_add_test(t, reload_lists_the_changes_only_a_restart_applies);
    tcase_add_test(t, free_is_safe_on_an_empty_config);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
