/* conn_send.c — what a connection sends, framed into its output buffer
 * (RFC 6455 §5.2 headers from ws_frame.c); conn_flush.c writes it.  All
 * of it counts against the output's high-water mark, past which nothing
 * more is read from the client (conn_parts.h). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdlib.h>
#include <string.h>

#include "front/conn_parts.h"
#include "wire/ws_frame.h"

#define SMALL_FRAME    256               /* payloads copied next to their header */
#define EXACT_BLOCK_MIN (64u << 10)      /* payloads in a block of their own size */

void conn_check_out_high_water(struct conn *c)
{
    if (!c->out_paused && conn_out_pending(c) > OUT_HIGH_WATER) {
        c->out_paused = 1;
        conn_update_reading(c);
    }
}

static void free_block(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
}

/* evbuffer_add rounds a new chunk up to a power of two: a 600 KiB message
 * would take 1 MiB, memory the budget (which counts bytes) never sees.  A
 * large payload gets a block of its own size instead. */
static void add_payload(struct evbuffer *out, const void *data, size_t len)
{
    uint8_t *block = len >= EXACT_BLOCK_MIN ? malloc(len) : NULL;
    if (block) {
        memcpy(block, data, len);
        if (evbuffer_add_reference(out, block, len, free_block, NULL) == 0)
            return;
        free(block);
    }
    evbuffer_add(out, data, len);
}

/* A message too big to copy next to its header: the header, then each
 * part added as it is (add_payload). */
static void add_large(struct evbuffer *out, int opcode, const struct conn_msg2 *m)
{
    uint8_t head[WS_MAX_HEADER];
    evbuffer_add(out, head, ws_frame_header_write(head, true, (uint8_t)opcode, m->alen + m->blen, NULL));
    if (m->alen)
        add_payload(out, m->a, m->alen);
    if (m->blen)
        add_payload(out, m->b, m->blen);
}

/* Small messages are framed into one buffer and go in with one
 * evbuffer_add: each add runs the output's callbacks, which cost more than
 * copying a few hundred bytes. */
void conn_send_many(struct conn *c, int opcode, const struct conn_msg2 *m, size_t n)
{
    if (c->phase != PH_WS)
        return;
    uint8_t buf[2 * (WS_MAX_HEADER + SMALL_FRAME)];
    size_t used = 0;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (size_t i = 0; i < n; i++) {
        size_t len = m[i].alen + m[i].blen;
        if (used && (len > SMALL_FRAME || used + WS_MAX_HEADER + len > sizeof buf)) {
            evbuffer_add(out, buf, used);
            used = 0;
        }
        if (len > SMALL_FRAME) {
            add_large(out, opcode, &m[i]);
            continue;
        }
        used += ws_frame_header_write(buf + used, true, (uint8_t)opcode, len, NULL);
        if (m[i].alen)
            memcpy(buf + used, m[i].a, m[i].alen);
        if (m[i].blen)
            memcpy(buf + used + m[i].alen, m[i].b, m[i].blen);
        used += len;
    }
    if (used)
        evbuffer_add(out, buf, used);
    conn_check_out_high_water(c);
}

void conn_send2(struct conn *c, int opcode, const void *a, size_t alen, const void *b, size_t blen)
{
    struct conn_msg2 m = { .a = a, .alen = alen, .b = b, .blen = blen };
    conn_send_many(c, opcode, &m, 1);
}

void conn_send(struct conn *c, int opcode, const void *data, size_t len)
{
    conn_send2(c, opcode, data, len, NULL, 0);
}

void conn_send_raw(struct conn *c, const void *data, size_t len)
{
    evbuffer_add(bufferevent_get_output(c->bev), data, len);
    conn_check_out_high_water(c);
}
