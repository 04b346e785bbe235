/* conn_parts.h — what the files of one client connection share, and
 * nobody else:
 *
 *   conn.c           the connection's life: accept, timers, pausing,
 *                    reading WebSocket frames, closing, freeing
 *   conn_http.c      the HTTP phase: one request at a time, the plain
 *                    routes' answers, the upgrade
 *   conn_send.c      messages framed into the output, the output mark
 *   conn_flush.c     plain connections' output, written before the loop
 *                    sleeps rather than on a write event
 *   memory_budget.c  what every connection holds, and the one budget for
 *                    the sum (--memory-budget)
 *   room_wait.c      connections waiting for job capacity
 *   broadcast.c      one frame queued on many connections by reference
 *
 * Routes see a connection only through conn.h. */
#ifndef WSJOBD_CONN_PARTS_H
#define WSJOBD_CONN_PARTS_H

#include <event2/event_struct.h>
#include <stddef.h>
#include <stdint.h>

#include "front/conn.h"
#include "front/front.h"
#include "wire/ws_frame.h"

struct http_request;

/* Output queued for a client past which nothing more is read from it.
 * Everything we send counts against it: data messages, pongs, close frames,
 * HTTP answers.  All of them answer input, so a client that never reads
 * makes us queue at most this plus the answers to one chunk of its input. */
#define OUT_HIGH_WATER (4u << 20)

/* PH_CLOSING: our last bytes are queued (an HTTP answer with close, our
 * close frame); once they are written the socket lingers (linger.c). */
enum phase { PH_HTTP, PH_WS, PH_CLOSING };

struct conn {
    struct front *f;
    struct conn *prev, *next;      /* front->all */
    struct conn *room_prev, *room_next;   /* front->room_head: waiting for job capacity */
    struct conn *flush_prev, *flush_next; /* front->flush_head: output to write this turn */
    struct bufferevent *bev;
    struct event timer;            /* handshake timeout, then pings, then close wait */
    const struct proto_ops *ops;   /* the route, once upgraded */
    void *ps;                      /* the route's state, owned by the route */
    struct ws_reader rd;
    struct evbuffer_cb_entry *in_cb, *out_cb;   /* the memory budget's counters */
    struct evbuffer_cb_entry *flush_cb;  /* lists it for the flush; NULL for TLS */
    uint64_t held;                 /* bytes counted against the budget */
    size_t   rd_held;              /* of which in the frame reader's buffer */
    uint16_t http_scanned;         /* head bytes known to hold no new LF */
    uint16_t requests;             /* HTTP requests routed, at most KEEPALIVE_MAX */
    uint8_t phase;
    uint8_t stats_ok;              /* peer within --stats-allow */
    uint8_t tls;
    uint8_t paused;                /* the route asked to stop reading */
    uint8_t out_paused;            /* output over the high-water mark */
    uint8_t mem_paused;            /* among the biggest holders past the budget */
    uint8_t in_read;               /* inside read_ws (re-entrancy guard) */
    uint8_t close_after_flush;     /* free once the output is written */
    uint8_t pings_out;             /* pings sent since the peer last spoke */
    uint8_t heard;                 /* the peer sent something this interval */
    uint8_t doomed;                /* conn_free asked for while in_read */
    uint8_t freed;
    uint8_t room_queued;           /* on the front's room FIFO */
    uint8_t flush_listed;          /* on the front's flush list (never while freed) */
    uint8_t flush_waited;          /* listed through one busy turn: written at the next pass */
};

/* conn.c */
void conn_set_timer(struct conn *c, unsigned ms);
int  conn_not_reading(const struct conn *c);
void conn_update_reading(struct conn *c);
void conn_read_buffered_later(struct conn *c);
void conn_send_raw(struct conn *c, const void *data, size_t len);
void conn_check_out_high_water(struct conn *c);
void conn_close_when_flushed(struct conn *c);
void conn_free(struct conn *c);
void conn_start_ws(struct conn *c, const struct proto_ops *ops, void *ps);
void conn_read_ws(struct conn *c);
/* Its output is all written: linger if closing, else read again and tell
 * the route.  May free c. */
void conn_drained(struct conn *c);

/* conn_flush.c (plain connections; both are no-ops on TLS ones) */
int  flush_hook(struct conn *c);           /* 0, or -1: no memory */
void flush_unhook(struct conn *c);         /* off the list, the buffer unwatched */

/* conn_http.c */
void conn_read_http(struct conn *c);

/* memory_budget.c */
int  budget_hook(struct conn *c);          /* 0, or -1: no memory */
void budget_unhook(struct conn *c);
void budget_forget(struct conn *c);        /* the connection is going */
void budget_account_reader(struct conn *c);
/* Reading it again: all it held for the client is written. */
void budget_resume(struct conn *c);

/* room_wait.c */
void room_unlink(struct conn *c);

#endif
