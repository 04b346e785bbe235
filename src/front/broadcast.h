/* broadcast.h — one WebSocket message built once and sent to many
 * connections.  Its frame (header and payload) is one block shared by
 * reference among their output buffers, so a hundred viewers cost one
 * copy, and the block is freed when the last of them has written it. */
#ifndef WSJOBD_BROADCAST_H
#define WSJOBD_BROADCAST_H

#include <stddef.h>

struct broadcast;
struct conn;

/* A frame of opcode carrying data, with one reference (the caller's).
 * NULL when out of memory. */
struct broadcast *broadcast_new(int opcode, const void *data, size_t len);

/* Queues the frame on c (a WebSocket; nothing otherwise).  The output mark
 * applies as to any send. */
void broadcast_send(struct broadcast *b, struct conn *c);

/* Drops the caller's reference; NULL is ignored. */
void broadcast_put(struct broadcast *b);

/* Frame bytes, header included. */
size_t broadcast_size(const struct broadcast *b);

#endif
