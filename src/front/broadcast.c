/* broadcast.c — see broadcast.h.
 *
 * The count needs no atomics: the front is one thread, and libevent calls
 * the cleanup of a reference from that thread when the bytes are drained
 * or the buffer is freed. */
#include "front/broadcast.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "front/conn_parts.h"
#include "wire/ws_frame.h"

struct broadcast {
    unsigned refs;      /* the builder's, plus one per output buffer holding it */
    size_t   len;       /* bytes[] in use: the whole frame */
    uint8_t  bytes[];
};

struct broadcast *broadcast_new(int opcode, const void *data, size_t len)
{
    if (len > SIZE_MAX - sizeof(struct broadcast) - WS_MAX_HEADER)
        return NULL;
    struct broadcast *b = malloc(sizeof *b + WS_MAX_HEADER + len);
    if (!b)
        return NULL;
    size_t hl = ws_frame_header_write(b->bytes, true, (uint8_t)opcode, len, NULL);
    if (len)
        memcpy(b->bytes + hl, data, len);
    b->len = hl + len;
    b->refs = 1;
    return b;
}

void broadcast_put(struct broadcast *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static void unref(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    broadcast_put(arg);
}

void broadcast_send(struct broadcast *b, struct conn *c)
{
    if (c->phase != PH_WS)
        return;
    b->refs++;
    if (evbuffer_add_reference(bufferevent_get_output(c->bev), b->bytes, b->len, unref, b) < 0) {
        b->refs--;
        return;
    }
    conn_check_out_high_water(c);
}

size_t broadcast_size(const struct broadcast *b)
{
    return b->len;
}
