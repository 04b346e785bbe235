/* cli.h — the wsjob command-line client: what its commands share.
 *
 * wsjob.c reads the options that come before the command, then hands the
 * rest of the command line to one of the cli_* entry points below, which
 * accept the same common options again (so `wsjob stats --url U` works as
 * well as `wsjob --url U stats`). */
#ifndef WSJOBD_CLI_H
#define WSJOBD_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/ws_client.h"
#include "clock.h"

#define CLI_DEFAULT_URL "ws://127.0.0.1:8080"

enum cli_exit {
    CLI_OK    = 0,
    CLI_FAIL  = 1,   /* the job failed, or the server could not be used */
    CLI_USAGE = 2,
    CLI_HELP  = -1,  /* not an exit status: the command saw --help, main
                      * prints the usage and exits 0 */
};

struct cli_opts {
    const char *url;      /* as given; CLI_DEFAULT_URL when not */
    const char *token;    /* --token, or NULL */
    const char *cafile;   /* --cafile, kept for wss:// */
    bool        insecure; /* --insecure, kept for wss:// */
};

/* getopt_long codes of the common options: beyond any char. */
enum { CLI_OPT_URL = 0x100, CLI_OPT_TOKEN, CLI_OPT_CAFILE, CLI_OPT_INSECURE, CLI_OPT_FIRST_FREE };

#define CLI_COMMON_LONGOPTS                                        \
    { "url", required_argument, NULL, CLI_OPT_URL },               \
    { "token", required_argument, NULL, CLI_OPT_TOKEN },           \
    { "cafile", required_argument, NULL, CLI_OPT_CAFILE },         \
    { "insecure", no_argument, NULL, CLI_OPT_INSECURE },           \
    { "help", no_argument, NULL, 'h' }

/* Takes a common option getopt_long returned: true when it was one. */
bool cli_common_option(struct cli_opts *o, int opt, const char *arg);

/* Parses o->url.  Prints "wsjob: ..." and returns -1 on failure. */
int cli_url(const struct cli_opts *o, struct ws_url *u);

/* The trust for a wss:// URL from --cafile / --insecure (tls_client.h);
 * *ctx stays NULL for ws://.  Free with tls_client_ctx_free().  0, or -1
 * after printing why. */
int cli_tls(const struct cli_opts *o, const struct ws_url *u, struct tls_client_ctx **ctx);

/* The request-target to use: the URL's own path when it has one beyond
 * "/", else dflt ("/jobs"). */
const char *cli_target(const struct ws_url *u, const char *dflt);

/* Writes "Authorization: Bearer TOKEN\r\n" (or "" without a token) into
 * buf.  -1 (after printing why) when it does not fit or the token holds a
 * control character, which would split the header. */
int cli_auth_header(const struct cli_opts *o, char *buf, size_t cap);

/* A job's input as submit sends it: *key is "input" with an object, array
 * or number when the text is one, else with the text as a JSON string; or
 * "input_b64" with base64 of the bytes when b64 is asked for or they are not
 * UTF-8.  A new reference, or NULL when out of memory. */
struct json_t;
struct json_t *cli_input(const uint8_t *bytes, size_t len, bool b64, const char **key);

/* "wsjob: " + message + newline on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Strict number parsers for option values: 0, or -1 after printing why. */
int cli_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);
int cli_parse_seconds(const char *opt, const char *s, double *out);


int cli_submit(struct cli_opts *o, int argc, char **argv);
int cli_attach(struct cli_opts *o, int argc, char **argv);
int cli_stats(struct cli_opts *o, int argc, char **argv);
int cli_bench(struct cli_opts *o, int argc, char **argv);

#endif
