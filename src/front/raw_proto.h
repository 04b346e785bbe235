/* raw_proto.h — raw ordered mode of /run/TYPE (SPEC §6). */
#ifndef WSJOBD_RAW_PROTO_H
#define WSJOBD_RAW_PROTO_H

#include "front/conn.h"

extern const struct proto_ops raw_proto_ops;

/* Per-connection state for a new /run/TYPE WebSocket, or NULL. */
void *raw_proto_new(struct conn *c, int type);

#endif
