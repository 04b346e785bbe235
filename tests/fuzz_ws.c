/* fuzz_ws.c — libFuzzer target for the WebSocket reader (src/wire/ws_frame.c)
 * and the UTF-8 validator (src/utf8.c).
 *
 * Input: two bytes of settings, then the wire bytes.  The wire bytes are fed
 * once whole and once split at a point the settings choose, through a
 * caller that keeps unconsumed bytes as a socket buffer would.  The reader
 * must report the same events and the same close code both ways: how TCP
 * cuts the stream must never change what the connection means.  The
 * validator must end in the same state whether the bytes come in one piece
 * or two. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/utf8.h"
#include "wire/ws_frame.h"

struct trace {
    uint64_t hash;     /* over every event, in order */
    size_t   events;
    uint16_t close_code;
};

static void mix(struct trace *t, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        t->hash = (t->hash ^ b[i]) * UINT64_C(0x100000001b3);
}

static void event(struct trace *t, uint8_t kind, const uint8_t *data, size_t len)
{
    assert(data != NULL);
    mix(t, &kind, 1);
    mix(t, &len, sizeof len);
    mix(t, data, len);
    t->events++;
}

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
    assert(opcode == WS_OP_TEXT || opcode == WS_OP_BINARY);
    if (opcode == WS_OP_TEXT)
        assert(utf8_valid(data, len));
    event(ctx, opcode, data, len);
    return 0;
}

static int on_ping(void *ctx, uint8_t *data, size_t len)
{
    assert(len <= WS_MAX_CONTROL_PAYLOAD);
    event(ctx, WS_OP_PING, data, len);
    return 0;
}

static int on_pong(void *ctx, uint8_t *data, size_t len)
{
    assert(len <= WS_MAX_CONTROL_PAYLOAD);
    event(ctx, WS_OP_PONG, data, len);
    return 0;
}

static void on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
    struct trace *t = ctx;
    assert(code == WS_CLOSE_NO_STATUS || ws_close_code_valid(code));
    assert(utf8_valid(reason, len));
    t->close_code = code;
    event(t, WS_OP_CLOSE, reason, len);
}

static const struct ws_reader_ops ops = { on_message, on_ping, on_pong, on_close };

/* Feeds pieces through a socket-like buffer; returns the fail code or 0. */
static uint16_t run(const uint8_t *wire, size_t n, size_t split, enum ws_role role,
                    uint64_t max_message, struct trace *t)
{
    struct ws_reader r;
    ws_reader_init(&r, role, max_message, &ops, t);
    uint8_t *pending = malloc(n ? n : 1);
    assert(pending);
    size_t have = 0;
    size_t cuts[2] = { split, n };
    size_t from = 0;
    uint16_t code = 0;
    for (int k = 0; k < 2 && !code; k++) {
        memcpy(pending + have, wire + from, cuts[k] - from);
        have += cuts[k] - from;
        from = cuts[k];
        for (;;) {
            ssize_t used = ws_reader_feed(&r, pending, have);
            if (used < 0) {
                code = ws_reader_fail_code(&r);
                assert(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_INVALID_DATA ||
                       code == WS_CLOSE_TOO_BIG);
                uint8_t frame[WS_CONTROL_FRAME_MAX];
                size_t fl = ws_reader_fail_frame(&r, frame, NULL);
                assert(fl >= 4 && fl <= sizeof frame);
                break;
            }
            assert((size_t)used <= have);
            memmove(pending, pending + used, have - (size_t)used);
            have -= (size_t)used;
            if (used == 0 || have == 0)
                break;
        }
    }
    /* Unconsumed bytes are at most one small frame waiting to complete. */
    assert(code || have <= WS_READER_WHOLE_FRAME);
    ws_reader_free(&r);
    assert(ws_reader_buffered(&r) == 0);
    free(pending);
    return code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t settings = data[0];
    const uint8_t *wire = data + 2;
    size_t n = size - 2;
    size_t split = n ? (size_t)(data[1] | (settings & 0xf0) << 4) % (n + 1) : 0;
    enum ws_role role = (settings & 1) ? WS_ROLE_CLIENT : WS_ROLE_SERVER;
    uint64_t max_message = (settings & 2) ? (1u << 20) : 64 + (settings >> 2);

    /* Each run unmasks in place, so each gets its own copy. */
    uint8_t *copy = malloc(n ? n : 1);
    assert(copy);
    struct trace whole = { UINT64_C(0xcbf29ce484222325), 0, 0 };
    struct trace cut = whole;
    memcpy(copy, wire, n);
    uint16_t code_whole = run(copy, n, n, role, max_message, &whole);
    memcpy(copy, wire, n);
    uint16_t code_cut = run(copy, n, split, role, max_message, &cut);
    free(copy);
    assert(code_whole == code_cut);
    assert(whole.events == cut.events && whole.hash == cut.hash);
    assert(whole.close_code == cut.close_code);

    uint32_t one = utf8_step(UTF8_ACCEPT, wire, n);
    uint32_t two = utf8_step(utf8_step(UTF8_ACCEPT, wire, split), wire + split, n - split);
    assert(one == two);
    assert(utf8_valid(wire, n) == (one == UTF8_ACCEPT));

    uint8_t frame[WS_CONTROL_FRAME_MAX];
    size_t fl = ws_build_close(frame, (uint16_t)(data[0] << 8 | data[1]), (const char *)wire, n, NULL);
    assert(fl >= 2 && fl <= sizeof frame);
    if (fl > 4 && utf8_valid(wire, n))
        assert(utf8_valid(frame + 4, fl - 4));
    return 0;
}
