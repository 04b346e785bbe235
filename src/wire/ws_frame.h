/* ws_frame.h — RFC 6455 §5 framing: header codec, masking, control-frame
 * builders, and a message reader that reassembles fragments and enforces the
 * protocol.  Pure: no I/O, no event loop.  Both roles are supported: the
 * daemon reads masked frames from clients and writes unmasked ones; the wsjob
 * client does the opposite.
 *
 * The reader's contract (ws_reader_feed):
 *  - The caller keeps a byte stream from the socket.  It passes the unread
 *    bytes in one contiguous, mutable buffer; feed returns how many it
 *    consumed.  The caller drops those and keeps the rest, appends newly
 *    received bytes after them, and calls feed again.
 *  - Consumed bytes may have been changed (unmasked in place).
 *  - feed may consume less than it was given: when a frame header is not
 *    complete, when a control frame or a data frame of at most
 *    WS_READER_WHOLE_FRAME bytes (header included) is not complete yet (it
 *    waits so the frame can be delivered without a copy), or when a callback
 *    asked it to stop.  So the caller must be able to present at least
 *    WS_READER_WHOLE_FRAME contiguous bytes when that many are buffered.
 *  - A larger frame is consumed as it arrives: its payload is copied into a
 *    buffer the reader owns, so a 64 MiB message never needs 64 MiB of
 *    contiguous input.  Work stays linear in the input however it is cut:
 *    a waiting frame is not re-parsed from its start on every call.
 *  - Text is checked for UTF-8 as it arrives, also inside a frame that is
 *    still waiting, so a bad byte fails the connection when it is received
 *    (RFC 6455 §8.1), not when its frame or message ends.
 *  - A single-frame message wholly in the caller's buffer is delivered
 *    zero-copy: on_message points into that buffer.  A fragmented message,
 *    or one consumed piece by piece, is delivered from the reader's buffer,
 *    which is freed right after on_message returns: an idle reader owns no
 *    heap memory.
 *  - Pointers given to callbacks are valid only during the call.
 *  - A callback returning non-zero makes feed return at once, having
 *    consumed the frame that triggered it (backpressure: stop reading).
 *  - After a close frame, on_close is called; the rest of that input, and
 *    all input to every later feed, is consumed and discarded (RFC 6455
 *    §5.5.1: nothing is read after Close).
 *  - Callbacks must not free or re-initialise the reader.
 *  - On a protocol violation feed returns -1, and keeps returning -1;
 *    ws_reader_fail_code() and ws_reader_fail_reason() say what to send in
 *    the closing frame (RFC 6455 §7.1.7 "Fail the WebSocket Connection"),
 *    and ws_reader_fail_frame() builds it.
 *
 * Decisions:
 *  - Length fields longer than needed (RFC 6455 §5.2 says the minimal
 *    encoding MUST be used) are accepted: nothing is ambiguous about them and
 *    refusing buys nothing.  A 64-bit length with its top bit set is 1002.
 *  - Close codes: see ws_close_code_valid(). */
#ifndef WSJOBD_WS_FRAME_H
#define WSJOBD_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT   = 0x0,
    WS_OP_TEXT   = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE  = 0x8,
    WS_OP_PING   = 0x9,
    WS_OP_PONG   = 0xA,
};

/* Close codes used by the daemon (RFC 6455 §7.4.1). */
enum ws_close_code {
    WS_CLOSE_NORMAL       = 1000,
    WS_CLOSE_GOING_AWAY   = 1001,
    WS_CLOSE_PROTOCOL     = 1002,
    WS_CLOSE_UNSUPPORTED  = 1003,
    WS_CLOSE_NO_STATUS    = 1005,  /* never sent: "the close had no code" */
    WS_CLOSE_ABNORMAL     = 1006,  /* never sent: "no close frame at all" */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY       = 1008,
    WS_CLOSE_TOO_BIG      = 1009,
    WS_CLOSE_INTERNAL     = 1011,
};

enum ws_role {
    WS_ROLE_SERVER,   /* reads masked frames, writes unmasked ones */
    WS_ROLE_CLIENT,   /* reads unmasked frames, writes masked ones */
};

#define WS_MAX_HEADER          14    /* 2 + 8-byte length + 4-byte mask */
#define WS_MAX_CONTROL_PAYLOAD 125   /* RFC 6455 §5.5 */
#define WS_CONTROL_FRAME_MAX   (WS_MAX_HEADER + WS_MAX_CONTROL_PAYLOAD)
#define WS_READER_WHOLE_FRAME  (16 * 1024)

struct ws_frame_header {
    bool     fin;
    uint8_t  rsv;          /* RSV1..RSV3 as bits 2..0 */
    uint8_t  opcode;
    bool     masked;
    uint8_t  mask[4];
    uint64_t payload_len;
};

/* Parses the header at buf.  Returns its length (2..14), 0 when more bytes
 * are needed, or -1 for a 64-bit length with the top bit set.  Judges
 * nothing else: opcodes, RSV bits and masking are the reader's business. */
int ws_frame_header_parse(const uint8_t *buf, size_t len, struct ws_frame_header *h);

/* Writes a header with the minimal length encoding into out (at least
 * WS_MAX_HEADER bytes).  mask NULL writes an unmasked (server) frame; a
 * client passes a fresh random key and then masks the payload with
 * ws_mask(payload, n, mask, 0).  Returns the header length. */
size_t ws_frame_header_write(uint8_t *out, bool fin, uint8_t opcode,
                             uint64_t payload_len, const uint8_t mask[4]);

/* XORs data with the key (RFC 6455 §5.3); `offset` is the position of
 * data[0] within the frame payload, so a payload masked in pieces comes out
 * the same as in one go.  Its own inverse. */
void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Builds a whole control frame (payload at most 125 bytes, else returns 0)
 * into out (at least WS_CONTROL_FRAME_MAX bytes); mask as above.  Returns
 * the frame length. */
size_t ws_build_control(uint8_t *out, uint8_t opcode, const void *payload,
                        size_t len, const uint8_t mask[4]);
size_t ws_build_ping(uint8_t *out, const void *payload, size_t len, const uint8_t mask[4]);
size_t ws_build_pong(uint8_t *out, const void *payload, size_t len, const uint8_t mask[4]);

/* Builds a close frame.  code WS_CLOSE_NO_STATUS (1005) gives an empty
 * payload, which is how "no status" is said on the wire.  The reason is cut
 * to fit 123 bytes at a UTF-8 character boundary. */
size_t ws_build_close(uint8_t *out, uint16_t code, const char *reason,
                      size_t reason_len, const uint8_t mask[4]);

/* True for a code a peer may send in a close frame: 1000-1003, 1007-1013
 * and 3000-4999.  1005, 1006 and 1015 never appear on the wire; 1004 and
 * 1016-2999 are reserved; 0-999 and 5000+ are not close codes.  1012 (Service
 * Restart) and 1013 (Try Again Later) are registered with IANA and accepted.
 * 1014 (Bad Gateway) is refused: the Autobahn conformance suite counts it as
 * invalid, and only a gateway sends it. */
bool ws_close_code_valid(uint16_t code);

/* What the reader calls.  Each may be NULL (ignored).  Return 0 to go on
 * reading, non-zero to make ws_reader_feed return after this frame. */
struct ws_reader_ops {
    int  (*on_message)(void *ctx, uint8_t opcode, uint8_t *data, size_t len);
    int  (*on_ping)(void *ctx, uint8_t *data, size_t len);
    int  (*on_pong)(void *ctx, uint8_t *data, size_t len);
    /* code is WS_CLOSE_NO_STATUS when the frame carried none; reason is
     * valid UTF-8. */
    void (*on_close)(void *ctx, uint16_t code, const uint8_t *reason, size_t len);
};

/* The fields are private to ws_frame.c; the struct is public only so that a
 * connection can embed it.  It is 88 bytes on LP64. */
struct ws_reader {
    const struct ws_reader_ops *ops;
    void       *ctx;
    const char *fail_reason;   /* static string, set when failed */
    uint8_t    *msg;           /* reassembly buffer; NULL between messages */
    size_t      msg_len;       /* bytes of the open message in msg */
    size_t      msg_cap;
    uint64_t    max_message;   /* largest reassembled message accepted */
    uint64_t    frame_left;    /* payload bytes still to come (streaming) */
    uint32_t    utf8;          /* validator state of the open text message */
    uint8_t     mask[4];       /* key of the frame being streamed */
    uint16_t    fail_code;     /* nonzero once failed */
    uint8_t     role;          /* enum ws_role */
    uint8_t     msg_opcode;    /* WS_OP_TEXT/BINARY while a message is open */
    uint8_t     mask_phase;    /* offset % 4 of the next streamed byte */
    uint8_t     state;         /* private */
    uint16_t    checked;       /* payload bytes of a waiting text frame
                                * already found valid ... */
    uint8_t     checked_utf8;  /* ... and the validator state after them */
};

void ws_reader_init(struct ws_reader *r, enum ws_role role, uint64_t max_message,
                    const struct ws_reader_ops *ops, void *ctx);

/* Frees what the reader owns; it may be initialised again afterwards. */
void ws_reader_free(struct ws_reader *r);

/* See the contract above.  Returns bytes consumed (<= len) or -1. */
ssize_t ws_reader_feed(struct ws_reader *r, uint8_t *buf, size_t len);

/* Heap bytes the reader holds right now (0 when idle). */
size_t ws_reader_buffered(const struct ws_reader *r);

uint16_t    ws_reader_fail_code(const struct ws_reader *r);
const char *ws_reader_fail_reason(const struct ws_reader *r);

/* The close frame that fails the connection; out as for ws_build_close. */
size_t ws_reader_fail_frame(const struct ws_reader *r, uint8_t *out, const uint8_t mask[4]);

#endif
