/* conn.h — one client connection as the protocol layers see it: a
 * WebSocket they can send messages on, pause, and close.  The HTTP phase,
 * frame decoding, pings and timeouts stay inside conn.c. */
#ifndef WSJOBD_CONN_H
#define WSJOBD_CONN_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct detach_store;
struct dispatch;
struct jout;

/* What a WebSocket route (/jobs, /run/TYPE) implements. */
struct proto_ops {
    /* The WebSocket is up: the route may send (optional). */
    void (*opened)(struct conn *c, void *state);
    /* One complete message (opcode WS_OP_TEXT or WS_OP_BINARY).  data is the
     * connection's buffer, valid only during the call. */
    void (*message)(struct conn *c, void *state, int opcode, uint8_t *data, size_t len);
    /* The output buffer drained (the client reads again). */
    void (*drained)(struct conn *c, void *state);
    /* Job capacity came back after a `busy` the route waited on (see
     * conn_wait_room).  -1: still none, keep waiting; 0: done waiting. */
    int (*room)(struct conn *c, void *state);
    /* The daemon is shutting down: refuse new work from now on. */
    void (*shutdown)(struct conn *c, void *state);
    /* The connection is gone: detach every job and free state. */
    void (*closed)(struct conn *c, void *state);
};

/* Sends one WebSocket message (unfragmented). */
void conn_send(struct conn *c, int opcode, const void *data, size_t len);
/* One message whose payload is a then b. */
void conn_send2(struct conn *c, int opcode, const void *a, size_t alen, const void *b, size_t blen);
/* n messages of two parts each, in order; small ones go into the output
 * with one add (each add runs the output's callbacks). */
struct conn_msg2 {
    const void *a, *b;
    size_t alen, blen;
};
void conn_send_many(struct conn *c, int opcode, const struct conn_msg2 *m, size_t n);

/* Starts the close handshake with code and reason (RFC 6455 §7.1.2). */
void conn_close(struct conn *c, uint16_t code, const char *reason);

/* Caps the kernel's send buffer of a plain-TCP connection at about bytes
 * (SO_SNDBUF; a TLS connection keeps its own).  For routes whose output
 * goes stale: what the kernel holds is sent, however old. */
void conn_limit_send_buffer(struct conn *c, int bytes);

/* Bytes queued for the client and not yet written to the socket. */
size_t conn_out_pending(const struct conn *c);

/* The route got `busy` from dispatch and waits for capacity: its room
 * callback is called when some comes back, in the order routes began to
 * wait, a bounded number per loop turn. */
void conn_wait_room(struct conn *c);

/* Stops / resumes reading the client's messages (backpressure). */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/* Bytes a route holds for this connection beyond its socket buffers
 * (outputs kept for ordering, a message waiting for room): counted in the
 * front's memory budget until given back. */
void conn_hold(struct conn *c, size_t bytes);
void conn_release(struct conn *c, size_t bytes);

/* The front's memory budget is reached: new work must wait or be refused.
 * conn_budget_refuse() also counts a submit answered busy for it. */
int conn_over_budget(const struct conn *c);
int conn_budget_refuse(struct conn *c);

/* A submit was answered busy (counted for /stats and the dashboard). */
void conn_count_busy(struct conn *c);

/* What a route needs of the front, and nothing more: routes never see the
 * front's struct. */
struct dispatch *conn_dispatch(const struct conn *c);
struct detach_store *conn_detach(const struct conn *c);   /* detached jobs */
struct jout *conn_scratch(const struct conn *c);   /* format one event at a time here */
size_t conn_stream_window(const struct conn *c);   /* bytes of a stream buffered per job */
unsigned conn_max_inflight(const struct conn *c);
int conn_draining(const struct conn *c);           /* the daemon is shutting down */

#endif
