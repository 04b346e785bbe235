/* jobs_proto.h — the JSON job protocol of /jobs (SPEC §5). */
#ifndef WSJOBD_JOBS_PROTO_H
#define WSJOBD_JOBS_PROTO_H

#include "front/conn.h"

extern const struct proto_ops jobs_proto_ops;

/* Per-connection state for a new /jobs WebSocket, or NULL (out of memory). */
void *jobs_proto_new(struct conn *c);

#endif
