/* cli_submit.c — `wsjob submit TYPE [INPUT|-]` and `wsjob attach HANDLE`:
 * one job over /jobs, its output on stdout as it arrives.  `submit
 * --detach` stops at the job's handle instead; `attach` follows a detached
 * job by its handle from any connection.
 *
 * For submit, SIGINT is blocked except while waiting for the server (ppoll
 * inside ws_client_recv), so a Ctrl-C is seen exactly there and turned into
 * a cancel; the job's own terminal event still ends the command, which is
 * how the user learns whether the cancel won the race with a done.  attach
 * leaves SIGINT alone: a Ctrl-C stops following, and the detached job goes
 * on. */
#include <errno.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/tls_client.h"
#include "wire/ws_frame.h"

#define CONNECT_TIMEOUT_MS 10000
#define STDIN_MAX          ((size_t)1 << 30)
#define BAR_WIDTH          30

struct submit {
    const char *type;       /* submit: the job type */
    const char *handle;     /* attach: the job to follow */
    uint64_t from_seq;      /* attach: the first chunk wanted */
    bool detach;            /* submit --detach: print the handle and stop */
    const uint8_t *input;   /* NULL: no input */
    size_t input_len;
    bool b64;
    uint64_t timeout_ms;    /* 0: the server's default */
    char id[32];
    bool bar_shown;         /* a progress line is on stderr */
    bool tty_out;           /* stdout is a terminal */
    int last_byte;          /* last byte written to stdout, -1 none */
};

static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
    (void)sig;
    if (++interrupts >= 2)
        _exit(130);
}

/* ---- input --------------------------------------------------------------- */

static uint8_t *read_stdin(size_t *len)
{
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            uint8_t *p = cap < STDIN_MAX ? realloc(buf, cap * 2) : NULL;
            if (!p)
                break;
            buf = p;
            cap *= 2;
        }
        ssize_t got = read(0, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        if (got == 0) {
            *len = n;
            return buf;
        }
        n += (size_t)got;
    }
    free(buf);
    cli_error("cannot read standard input");
    return NULL;
}

/* Adds "input" or "input_b64" to req following the rules in the usage. */
static int add_input(json_t *req, const struct submit *s)
{
    const char *key;
    if (!s->input)
        return 0;
    json_t *v = cli_input(s->input, s->input_len, s->b64, &key);
    return v ? json_object_set_new(req, key, v) : -1;
}

static int add_submit(json_t *req, const struct submit *s)
{
    if (json_object_set_new(req, "op", json_string("submit")) < 0 ||
        json_object_set_new(req, "type", json_string(s->type)) < 0 || add_input(req, s) < 0)
        return -1;
    if (s->timeout_ms &&
        json_object_set_new(req, "timeout_ms", json_integer((json_int_t)s->timeout_ms)) < 0)
        return -1;
    return s->detach ? json_object_set_new(req, "detach", json_true()) : 0;
}

static int add_attach(json_t *req, const struct submit *s)
{
    if (json_object_set_new(req, "op", json_string("attach")) < 0 ||
        json_object_set_new(req, "handle", json_string(s->handle)) < 0)
        return -1;
    return json_object_set_new(req, "from_seq", json_integer((json_int_t)s->from_seq));
}

static char *build_request(const struct submit *s)
{
    json_t *req = json_object();
    char *text = NULL;
    if (req && json_object_set_new(req, "id", json_string(s->id)) == 0 &&
        (s->handle ? add_attach(req, s) : add_submit(req, s)) == 0)
        text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text)
        cli_error("cannot encode the request (is %s valid UTF-8?)", s->handle ? "HANDLE" : "TYPE");
    return text;
}

/* ---- output -------------------------------------------------------------- */

static void clear_bar(struct submit *s)
{
    if (!s->bar_shown)
        return;
    fputs("\r\033[K", stderr);
    s->bar_shown = false;
}

static void draw_bar(struct submit *s, json_t *ev)
{
    json_int_t done = json_integer_value(json_object_get(ev, "done"));
    json_int_t total = json_integer_value(json_object_get(ev, "total"));
    if (total <= 0 || done < 0)
        return;
    double f = done >= total ? 1.0 : (double)done / (double)total;
    char bar[BAR_WIDTH + 1];
    int filled = (int)(f * BAR_WIDTH);
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(BAR_WIDTH - filled));
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r\033[K[%s] %3d%%  %lld/%lld", bar, (int)(f * 100),
            (long long)done, (long long)total);
    s->bar_shown = true;
}

static int write_out(struct submit *s, const uint8_t *p, size_t len)
{
    clear_bar(s);
    if (len)
        s->last_byte = p[len - 1];
    while (len) {
        ssize_t n = write(1, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_error("writing the output: %s", strerror(errno));
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes the "output" or "output_b64" of an event, if it has one. */
static int print_output(struct submit *s, json_t *ev)
{
    json_t *o = json_object_get(ev, "output");
    if (json_is_string(o))
        return write_out(s, (const uint8_t *)json_string_value(o), json_string_length(o));
    o = json_object_get(ev, "output_b64");
    if (!json_is_string(o))
        return 0;
    size_t olen = 0, slen = json_string_length(o);
    uint8_t *buf = malloc(slen / 4 * 3 + 3);
    int rc = -1;
    if (buf && mbedtls_base64_decode(buf, slen / 4 * 3 + 3, &olen,
                                     (const unsigned char *)json_string_value(o), slen) == 0)
        rc = write_out(s, buf, olen);
    else
        cli_error("the server sent output_b64 that is not base64");
    free(buf);
    return rc;
}

static const char *field(json_t *ev, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(ev, key));
    return v ? v : dflt;
}

/* The handle is all a detached submit waits for. */
static int print_handle(struct submit *s, json_t *ev)
{
    const char *h = field(ev, "handle", NULL);
    if (!h) {
        cli_error("the server accepted the job without a handle");
        return CLI_FAIL;
    }
    if (write_out(s, (const uint8_t *)h, strlen(h)) < 0 || write_out(s, (const uint8_t *)"\n", 1) < 0)
        return CLI_FAIL;
    return CLI_OK;
}

/* One event: CLI_OK or CLI_FAIL when it ends the job, -1 to go on. */
static int handle_event(struct submit *s, const uint8_t *data, size_t len)
{
    json_t *ev = json_loadb((const char *)data, len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(ev)) {
        json_decref(ev);
        clear_bar(s);
        cli_error("the server sent something that is not a JSON object");
        return CLI_FAIL;
    }
    const char *id = field(ev, "id", NULL), *event = field(ev, "event", "");
    int rc = -1;
    if (id && strcmp(id, s->id) != 0) {
        rc = -1;   /* not ours: this connection carries only our job */
    } else if (strcmp(event, "error") == 0) {
        clear_bar(s);
        cli_error("%s: %s", field(ev, "code", "error"), field(ev, "message", ""));
        rc = CLI_FAIL;
    } else if (!id) {
        rc = -1;
    } else if (strcmp(event, "accepted") == 0) {
        if (s->detach)
            rc = print_handle(s, ev);
    } else if (strcmp(event, "progress") == 0) {
        if (isatty(2))
            draw_bar(s, ev);
    } else if (strcmp(event, "chunk") == 0) {
        rc = print_output(s, ev) < 0 ? CLI_FAIL : -1;
    } else if (strcmp(event, "done") == 0) {
        rc = print_output(s, ev) < 0 ? CLI_FAIL : CLI_OK;
        if (rc == CLI_OK && s->tty_out && s->last_byte >= 0 && s->last_byte != '\n')
            write_out(s, (const uint8_t *)"\n", 1);
    }
    json_decref(ev);
    return rc;
}

/* ---- the conversation ---------------------------------------------------- */

static int send_cancel(struct submit *s, struct ws_client *c)
{
    char msg[96];
    int n = snprintf(msg, sizeof msg, "{\"op\":\"cancel\",\"id\":\"%s\"}", s->id);
    clear_bar(s);
    fputs("wsjob: cancelling (Ctrl-C again to quit at once)\n", stderr);
    if (ws_client_send(c, WS_OP_TEXT, msg, (size_t)n) < 0) {
        cli_error("%s", ws_client_error(c));
        return CLI_FAIL;
    }
    return -1;
}

static int converse(struct submit *s, struct ws_client *c, const char *request)
{
    if (ws_client_send(c, WS_OP_TEXT, request, strlen(request)) < 0) {
        cli_error("%s", ws_client_error(c));
        return CLI_FAIL;
    }
    bool cancelled = false;
    for (;;) {
        struct ws_msg m;
        int got = ws_client_recv(c, &m, -1);
        int rc = -1;
        if (got == WS_RECV_INTERRUPTED && !cancelled) {
            cancelled = true;
            rc = send_cancel(s, c);
        } else if (got < 0 && got != WS_RECV_INTERRUPTED) {
            clear_bar(s);
            cli_error("%s", ws_client_error(c));
            return CLI_FAIL;
        } else if (got > 0 && m.opcode == WS_OP_CLOSE) {
            clear_bar(s);
            cli_error("the server closed the connection (%u %.*s)", m.close_code,
                      (int)m.len, (const char *)m.data);
            return CLI_FAIL;
        } else if (got > 0 && m.opcode == WS_OP_TEXT) {
            rc = handle_event(s, m.data, m.len);
        }
        if (rc >= 0)
            return rc;
    }
}

/* Ctrl-C is let through only while recv waits; see the top of the file. */
static void catch_sigint(struct ws_client *c)
{
    sigset_t block, waiting;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waiting);
    sigdelset(&waiting, SIGINT);
    struct sigaction sa = { .sa_handler = on_sigint };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    ws_client_set_sigmask(c, &waiting);
}

static int run(struct cli_opts *o, struct submit *s)
{
    struct ws_url u;
    struct tls_client_ctx *tls = NULL;
    char extra[1024], why[320];
    if (cli_url(o, &u) < 0 || cli_auth_header(o, extra, sizeof extra) < 0)
        return CLI_USAGE;
    if (cli_tls(o, &u, &tls) < 0)
        return CLI_FAIL;
    int rc = CLI_FAIL;
    char *request = build_request(s);
    struct ws_client *c = request ? ws_client_open(&u, cli_target(&u, "/jobs"), extra, tls,
                                                   CONNECT_TIMEOUT_MS, why, sizeof why) : NULL;
    if (request && !c)
        cli_error("%s", why);
    if (c) {
        if (!s->handle)
            catch_sigint(c);
        rc = converse(s, c, request);
        ws_client_close(c);
    }
    free(request);
    tls_client_ctx_free(tls);
    return rc;
}

static const struct option opts[] = {
    CLI_COMMON_LONGOPTS,
    { "b64", no_argument, NULL, 'b' },
    { "timeout", required_argument, NULL, 't' },
    { "detach", no_argument, NULL, 'D' },
    { NULL, 0, NULL, 0 },
};

int cli_submit(struct cli_opts *o, int argc, char **argv)
{
    struct submit s = { .last_byte = -1, .tty_out = isatty(1) };
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (cli_common_option(o, opt, optarg))
            continue;
        if (opt == 'h')
            return CLI_HELP;
        if (opt == 'b')
            s.b64 = true;
        else if (opt == 'D')
            s.detach = true;
        else if (opt != 't' || cli_parse_u64("--timeout", optarg, 1, 86400000, &s.timeout_ms) < 0)
            return CLI_USAGE;
    }
    if (optind >= argc || argc - optind > 2) {
        cli_error("submit takes TYPE and at most one INPUT");
        return CLI_USAGE;
    }
    s.type = argv[optind];
    snprintf(s.id, sizeof s.id, "wsjob-%ld", (long)getpid());
    uint8_t *owned = NULL;
    if (optind + 1 < argc && strcmp(argv[optind + 1], "-") == 0) {
        if (!(owned = read_stdin(&s.input_len)))
            return CLI_FAIL;
        s.input = owned;
    } else if (optind + 1 < argc) {
        s.input = (const uint8_t *)argv[optind + 1];
        s.input_len = strlen(argv[optind + 1]);
    }
    int rc = run(o, &s);
    free(owned);
    return rc;
}

static const struct option attach_opts[] = {
    CLI_COMMON_LONGOPTS,
    { "from-seq", required_argument, NULL, 'f' },
    { NULL, 0, NULL, 0 },
};

int cli_attach(struct cli_opts *o, int argc, char **argv)
{
    struct submit s = { .last_byte = -1, .tty_out = isatty(1) };
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", attach_opts, NULL)) != -1) {
        if (cli_common_option(o, opt, optarg))
            continue;
        if (opt == 'h')
            return CLI_HELP;
        if (opt != 'f' || cli_parse_u64("--from-seq", optarg, 0, (uint64_t)INT64_MAX, &s.from_seq) < 0)
            return CLI_USAGE;
    }
    if (argc - optind != 1) {
        cli_error("attach takes one HANDLE");
        return CLI_USAGE;
    }
    s.handle = argv[optind];
    snprintf(s.id, sizeof s.id, "wsjob-%ld", (long)getpid());
    return run(o, &s);
}
