/* cli_bench.h — the parts of `wsjob bench` and how they meet.
 *
 *   cli_bench.c        options, threads, the report
 *   cli_bench_loop.c   one thread: an epoll loop over many non-blocking
 *                      connections, in phases (connect, run, close)
 *   cli_bench_conn.c   one connection: connect, upgrade, read, write, close
 *   cli_bench_jobs.c   what a job is in each mode: the frames sent and the
 *                      check of every reply
 *   cli_bench_json.c   the fields of a JSON reply, read in place
 *   cli_bench_ping.c   ping round trips on one idle connection
 *   cli_bench_idle.c   memory of many idle connections
 *
 * Everything a thread touches in its run is its own (its connections,
 * buffers, histogram and counters); threads meet only at the start line
 * and at the end, when the main thread merges their results. */
#ifndef WSJOBD_CLI_BENCH_H
#define WSJOBD_CLI_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/histogram.h"
#include "client/cli.h"
#include "client/ws_client.h"
#include "wire/ws_frame.h"

enum bench_mode {
    BENCH_RAW,    /* /run/TYPE: each message a job, replies in order */
    BENCH_JSON,   /* /jobs: submits with ids, replies matched by id */
    BENCH_TCP,    /* plain TCP echo: the loopback yardstick */
    BENCH_IDLE,   /* connections that upgrade and then do nothing */
    BENCH_PING,   /* ping/pong on one connection */
};

/* Read-only once the threads start. */
struct bench_cfg {
    enum bench_mode mode;
    struct ws_url   url;
    struct sockaddr_storage addr;   /* resolved once, used by every connect */
    socklen_t       addrlen;
    struct tls_client_ctx *tls;     /* wss:// trust (owned), or NULL */
    char            target[1024];   /* request-target of the upgrade */
    char            extra[1024];    /* extra header lines (Authorization) */
    const char     *type;
    const char     *label;          /* --label, or NULL */
    unsigned        conns, depth, threads;
    uint64_t        total;          /* -n; 0 when running for a time */
    double          seconds;        /* -d: measured time, or the cap with -n */
    double          warmup;
    double          rate;           /* --ping: pings per second */
    double          hold;           /* --idle: seconds to stay connected */
    long            pid;            /* --idle: process whose memory to watch */
    bool            allow_errors;
    bool            detach;         /* json: "detach":true on every submit */
    size_t          size;           /* generated messages: bytes */
    bool            generated;      /* messages are random bytes with a
                                     * sequence number, replies must echo them */
    uint8_t        *message;        /* raw: the message of every job (owned) */
    size_t          message_len;
    uint8_t         message_op;     /* WS_OP_TEXT or WS_OP_BINARY */
    char           *json_tail;      /* json: the submit after its id (owned) */
    size_t          json_tail_len;
    uint8_t        *expect;         /* output every reply must carry (owned) */
    size_t          expect_len;
    bool            has_expect;
    size_t          frame_max;      /* largest frame a job sends */
};

/* One thread's counts; merged by adding. */
struct bench_stats {
    struct histogram lat_us;        /* jobs sent inside the measured window */
    uint64_t measured;              /* replies to jobs sent inside it */
    uint64_t replies;               /* every final reply, checked */
    uint64_t sent;
    uint64_t job_errors;            /* error events / 1011 closes */
    uint64_t wrong;                 /* output differs from the expected */
    uint64_t unexpected;            /* duplicated, unknown or out of order */
    uint64_t missing;               /* never answered */
    uint64_t conn_failed;           /* connections that failed or closed early */
    int64_t  last_reply_ns;
};

/* The start line: each thread counts itself in `ready` once its
 * connections are up, then waits for `go`; the main thread sets start_ns
 * and `go` when every thread it started is ready.  All under mu. */
struct bench_shared {
    pthread_mutex_t   mu;
    pthread_cond_t    cv;
    unsigned          ready;
    bool              go;
    int64_t           start_ns;     /* set with go, read after it */
    atomic_int        failed;       /* a connection could not be made */
    atomic_int        stop;         /* idle: the main thread lets go */
    atomic_int        complaints;   /* error lines printed so far */
};

struct bench_worker;

enum bconn_state { BC_IDLE, BC_CONNECTING, BC_UPGRADING, BC_OPEN, BC_CLOSING, BC_DONE };

/* One connection of a thread. */
struct bconn {
    struct bench_worker *w;
    struct ws_stream s;             /* TCP, or TLS for wss:// */
    size_t    tls_stuck;            /* bytes of a TLS send that said EAGAIN:
                                     * offered again, as they were */
    uint8_t   state;                /* enum bconn_state */
    bool      polling_out;          /* EPOLLOUT is registered */
    uint32_t  id;                   /* connection number, for messages */
    struct ws_client_key key;       /* while upgrading */
    struct ws_reader rd;
    uint8_t  *in;                   /* BENCH_IN_CAP bytes, in_len unread */
    size_t    in_len;
    uint8_t  *out;                  /* out_off..out_len not yet written */
    size_t    out_off, out_len, out_cap;
    uint64_t  quota;                /* jobs still to send */
    /* Jobs in flight.  raw, tcp: a FIFO (head, count) of sequence numbers
     * and send times, as replies come back in order.  json: slots named
     * by the id, a slot's seq telling a reply to this job from a stale or
     * duplicated one; free slots on a stack. */
    uint64_t *seq;
    int64_t  *sent_ns;
    uint32_t *free_slot;
    uint32_t  head, count, nfree;
    uint64_t  next_seq;
    uint8_t  *tmpl;                 /* generated message template (size bytes) */
    bool      peer_closed;          /* the server's close frame came in */
    uint16_t  close_code;           /* ... with this code */
    char      close_reason[64];     /* ... and reason, cut */
};

#define BENCH_IN_CAP (64 * 1024)    /* >= WS_READER_WHOLE_FRAME (ws_frame.h) */

struct bench_worker {
    const struct bench_cfg *cfg;
    struct bench_shared    *sh;
    pthread_t  thread;
    unsigned   index;
    unsigned   first_conn, nconns;  /* connections first_conn, +threads, ... */
    struct bconn *conns;
    int        epfd;
    int64_t    now;                 /* clock at the last wake-up */
    int64_t    measure_ns, stop_ns; /* window of jobs whose latency counts */
    bool       stopping;            /* no more jobs are sent */
    uint64_t   in_flight;           /* over all connections */
    unsigned   sending;             /* connections with jobs still to send */
    uint64_t   rng;                 /* xorshift state for masks and payloads */
    size_t     in_cap;              /* bytes of each connection's in */
    unsigned   live;                /* connections not BC_DONE */
    uint8_t   *scratch;             /* decoded outputs; scratch_cap bytes */
    size_t     scratch_cap;
    struct bench_stats st;
    int        rc;                  /* 0, or -1 when the thread failed */
};

/* cli_bench_json.c: the string fields of a server event, found in place. */
struct bench_span {
    const char *p;     /* string contents, between the quotes; NULL: absent */
    size_t      n;
    bool        esc;   /* holds a backslash escape */
};

struct bench_reply {
    struct bench_span id, event, output, output_b64, code, message;
};

/* Fills r from a flat JSON object.  0, or -1 if it is malformed. */
int  bench_scan_reply(const char *p, size_t n, struct bench_reply *r);

/* Decodes string contents into out (cap bytes).  Length, or -1 when
 * malformed or longer than cap. */
long bench_unescape(const char *p, size_t n, uint8_t *out, size_t cap);

/* cli_bench_conn.c: a connection's steps, called from the loop. */
void bench_conn_start(struct bconn *c);                  /* connect */
void bench_conn_event(struct bconn *c, uint32_t events); /* epoll said */
int  bench_conn_flush(struct bconn *c);                  /* write out; -1 failed */
void bench_conn_goodbye(struct bconn *c);                /* close frame */
void bench_conn_finish(struct bconn *c);                 /* close the socket */

/* cli_bench_loop.c: the thread body (a pthread start routine). */
void *bench_worker_main(void *arg);
/* Counts the calling thread in at the start line and waits for the go. */
void bench_start_line(struct bench_shared *sh);

/* cli_bench_jobs.c */
int      bench_jobs_init(struct bconn *c);
void     bench_jobs_free(struct bconn *c);
unsigned bench_jobs_fill(struct bconn *c);   /* frames appended to out */
void     bench_jobs_reply(struct bconn *c, uint8_t opcode, const uint8_t *data, size_t len);
size_t   bench_jobs_tcp(struct bconn *c, const uint8_t *data, size_t len);
void     bench_jobs_lost(struct bconn *c);   /* the connection died */
uint64_t bench_rand(uint64_t *state);

/* Prints one "wsjob: ..." line unless enough were printed already. */
void bench_complain(struct bench_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_bench.c: starts the threads, waits until every connection is up
 * (or one failed: -1), sets the start time and lets them run. */
int  bench_start(const struct bench_cfg *cfg, struct bench_shared *sh, struct bench_worker *ws);
/* Waits for the threads and adds up their counts into *total. */
void bench_join(const struct bench_cfg *cfg, struct bench_worker *ws, struct bench_stats *total);
/* The report line: starts {"bench":NAME,"case":LABEL}; bench_emit prints
 * it compact on stdout and frees it. */
struct json_t *bench_json_base(const struct bench_cfg *cfg, const char *name);
void bench_emit(struct json_t *obj);

/* cli_bench_ping.c, cli_bench_idle.c: whole modes; exit statuses. */
int bench_ping(const struct bench_cfg *cfg);
int bench_idle(const struct bench_cfg *cfg);

#endif
