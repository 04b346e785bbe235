/* wsjob.c — the wsjob command: sends jobs to a wsjobd server, prints its
 * statistics, and generates load for benchmarks.  This file only reads the
 * options that come before the command and hands over; each command lives
 * in its own cli_*.c. */
#include <stdio.h>
#include <string.h>

#include "base/version.h"
#include "client/cli.h"

static const char usage_text[] =
    "Usage: wsjob [--url URL] COMMAND [OPTION]... [ARG]...\n"
    "Sends jobs to a wsjobd server over WebSocket, shows its statistics, and\n"
    "measures it under load.\n"
    "\n"
    "Commands:\n"
    "  submit TYPE [INPUT|-]   run one job; print its output (chunks as they\n"
    "                          arrive); exit 0 when done, 1 on an error\n"
    "  attach HANDLE           follow a detached job as submit does\n"
    "  stats                   the server's queues, workers and jobs as a table\n"
    "  bench                   load generator: throughput and latency\n"
    "\n"
    "Options of every command:\n"
    "      --url URL           ws://HOST:PORT[/PATH] (default " CLI_DEFAULT_URL ");\n"
    "                          [::1] for IPv6.  submit and attach use PATH\n"
    "                          or /jobs\n"
    "      --token TOKEN       send Authorization: Bearer TOKEN\n"
    "      --cafile FILE       CA certificates (PEM) that wss:// servers are\n"
    "                          checked against (default: the system's)\n"
    "      --insecure          wss:// without verifying the certificate\n"
    "  -h, --help              this text\n"
    "\n"
    "submit TYPE [INPUT|-]:\n"
    "  INPUT that is a JSON object, array or number is sent as that value,\n"
    "  anything else as a JSON string; - reads standard input the same way\n"
    "  (bytes that are not UTF-8 go as input_b64).  No INPUT: empty input.\n"
    "      --b64               send the bytes of INPUT as input_b64\n"
    "      --timeout MS        the job's deadline (timeout_ms)\n"
    "      --detach            run it detached: print its handle and exit 0\n"
    "                          once it is accepted; the job goes on\n"
    "  Progress is drawn on stderr when it is a terminal.  Ctrl-C cancels the\n"
    "  job and waits for its answer; a second Ctrl-C quits at once.\n"
    "\n"
    "attach HANDLE:\n"
    "      --from-seq N        replay kept chunks from seq N (default 0)\n"
    "  Output and exit status as for submit; an unknown or expired handle\n"
    "  exits 1 with not_found.  Ctrl-C stops following; the job goes on.\n"
    "\n"
    "stats:\n"
    "      --json              print the /stats object as it came\n"
    "      --watch SECONDS     refresh every SECONDS until Ctrl-C\n"
    "\n"
    "bench (one JSON line on stdout at the end, a summary on stderr):\n"
    "  -c N                    connections (default 1)\n"
    "  -p N                    jobs in flight per connection (default 1)\n"
    "  -d SECONDS              measure for SECONDS (default 5), or\n"
    "  -n N                    run N jobs in all, then stop (-d: at most\n"
    "                          that long; default 600)\n"
    "      --warmup SECONDS    run before measuring (with -d; default 0)\n"
    "  -t N                    client threads; connections are split (default 1)\n"
    "      --raw TYPE          raw mode on /run/TYPE: one message per job,\n"
    "                          replies in order (default: --raw echo)\n"
    "      --type TYPE         JSON mode on /jobs, ids matched per reply\n"
    "      --detach            --type: submit detached jobs (accepted, then\n"
    "                          the final event on the same connection)\n"
    "      --input TEXT        job input (as for submit); raw: the message\n"
    "      --size BYTES        raw echo: random messages of BYTES (default 64)\n"
    "      --expect OUTPUT     every output must equal OUTPUT\n"
    "      --allow-errors      job errors are counted, not fatal\n"
    "      --ping              ping/pong round trips on one idle connection\n"
    "      --rate N            --ping: pings per second (default 100)\n"
    "      --tcp-echo          plain TCP: --size messages to an echo server\n"
    "      --idle N            open N WebSocket connections and hold them\n"
    "      --hold SECONDS      --idle: stay connected this long (default 0)\n"
    "      --pid PID           --idle: report PID's resident memory growth\n"
    "      --label NAME        add \"case\":NAME to the JSON line\n"
    "  Any reply missing, duplicated, out of order or wrong, and any job\n"
    "  error (unless --allow-errors), makes bench exit 1.\n";

static const struct option global_opts[] = {
    CLI_COMMON_LONGOPTS,
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static int run(struct cli_opts *o, const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "submit") == 0)
        return cli_submit(o, argc, argv);
    if (strcmp(cmd, "attach") == 0)
        return cli_attach(o, argc, argv);
    if (strcmp(cmd, "stats") == 0)
        return cli_stats(o, argc, argv);
    if (strcmp(cmd, "bench") == 0)
        return cli_bench(o, argc, argv);
    if (strcmp(cmd, "help") == 0)
        return CLI_HELP;
    cli_error("unknown command '%s' (submit, attach, stats or bench)", cmd);
    return CLI_USAGE;
}

int main(int argc, char **argv)
{
    struct cli_opts o = { .url = CLI_DEFAULT_URL };
    int opt;
    /* '+': stop at the command, whose own options follow it. */
    while ((opt = getopt_long(argc, argv, "+hV", global_opts, NULL)) != -1) {
        if (cli_common_option(&o, opt, optarg))
            continue;
        if (opt == 'h') {
            fputs(usage_text, stdout);
            return CLI_OK;
        }
        if (opt == 'V') {
            puts("wsjob " WSJOBD_VERSION);
            return CLI_OK;
        }
        fputs("Try 'wsjob --help'.\n", stderr);
        return CLI_USAGE;
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    int rc = run(&o, argv[optind], argc - optind, argv + optind);
    if (rc == CLI_HELP) {
        fputs(usage_text, stdout);
        return CLI_OK;
    }
    if (rc == CLI_USAGE)
        fputs("Try 'wsjob --help'.\n", stderr);
    return rc;
}
