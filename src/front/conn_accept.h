/* conn_accept.h — the listener's way into conn.c. */
#ifndef WSJOBD_CONN_ACCEPT_H
#define WSJOBD_CONN_ACCEPT_H

#include <stdint.h>
#include <sys/socket.h>

struct front;

/* Takes ownership of fd on success (0); -1 leaves fd to the caller. */
int conn_accept(struct front *f, int fd, const struct sockaddr *peer, socklen_t len, int tls);

/* Every open connection: shutting_down to its route, then close 1001. */
void conn_shutdown_all(struct front *f);
void conn_close_all(struct front *f, uint16_t code, const char *reason);

/* Tell routes waiting for job capacity that some came back. */
void conn_room(struct front *f);

/* The memory budget may have changed (a reload): re-judge it. */
void conn_budget_changed(struct front *f);

#endif
