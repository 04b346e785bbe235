/* conn_accept.h — the listener's way into conn.c. */
#ifndef WSJOBD_CONN_ACCEPT_H
#define WSJOBD_CONN_ACCEPT_H

#include <stdint.h>
#include <sys/socket.h>

struct front;

/* Takes ownership of fd on success (0); -1 leaves fd to the caller. */
int conn_accept(struct front *f, int fd, const struct sockaddr *peer, socklen_t len, int tls);

/* Before the first connection: connections are freed through an event of
 * the front's base (see conn_free). */
void conn_init(struct front *f);
/* After the loop: frees what conn_init's event had still to free. */
void conn_fini(struct front *f);

/* Before the loop sleeps: one write for each plain connection with output
 * added since its last.  Returns 1 when some were listed again meanwhile
 * (the loop must then not sleep). */
int conn_flush_all(struct front *f);

/* Every open connection: shutting_down to its route, then close 1001. */
void conn_shutdown_all(struct front *f);
void conn_close_all(struct front *f, uint16_t code, const char *reason);

/* Job capacity came back (dispatch's room callback; arg: the front).
 * Offers it to at most ROOM_BATCH waiting connections, oldest first;
 * returns 1 when waiters remain that were not offered any. */
int conn_room(void *arg);

/* The memory budget may have changed (a reload): re-judge it. */
void conn_budget_changed(struct front *f);

#endif
