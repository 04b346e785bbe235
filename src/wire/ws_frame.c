/* ws_frame.c — RFC 6455 §5 framing and the message reader; the contract is
 * in ws_frame.h.
 *
 * The reader is a loop over frames.  Each frame is either handled whole from
 * the caller's buffer (the common case, and the only zero-copy one), waited
 * for (small frames), or streamed into the reader's own buffer as it arrives
 * (large frames).  Every rule that can be judged from the first byte is
 * judged before the rest of the header arrives, and every rule that can be
 * judged from the header before any payload is buffered: that is what lets a
 * bad frame fail the connection at once and an oversized one cost nothing. */
#include "wire/ws_frame.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "wire/utf8.h"

static_assert(sizeof(struct ws_reader) <= 128, "a reader is embedded in every connection");
static_assert(WS_READER_WHOLE_FRAME <= UINT16_MAX, "ws_reader.checked is 16 bits");

enum reader_state {
    RS_FRAMES,       /* at a frame boundary */
    RS_STREAM,       /* inside the payload of a streamed non-final frame */
    RS_STREAM_FIN,   /* inside the payload of a streamed final frame */
    RS_CLOSED,       /* a close frame was read */
    RS_FAILED,
};

/* Step results inside the reader. */
enum { STEP_GO = 0, STEP_STOP = 1, STEP_FAIL = -1 };

static uint8_t empty_payload[1];

int ws_frame_header_parse(const uint8_t *buf, size_t len, struct ws_frame_header *h)
{
    if (len < 2)
        return 0;
    uint64_t plen = buf[1] & 0x7f;
    size_t ext = plen == 126 ? 2 : plen == 127 ? 8 : 0;
    bool masked = (buf[1] & 0x80) != 0;
    size_t need = 2 + ext + (masked ? 4 : 0);
    if (len < need)
        return 0;
    if (ext) {
        plen = 0;
        for (size_t i = 0; i < ext; i++)
            plen = plen << 8 | buf[2 + i];
    }
    if (plen >> 63)
        return -1;
    h->fin = (buf[0] & 0x80) != 0;
    h->rsv = (buf[0] >> 4) & 0x7;
    h->opcode = buf[0] & 0x0f;
    h->masked = masked;
    h->payload_len = plen;
    if (masked)
        memcpy(h->mask, buf + 2 + ext, 4);
    else
        memset(h->mask, 0, 4);
    return (int)need;
}

size_t ws_frame_header_write(uint8_t *out, bool fin, uint8_t opcode,
                             uint64_t payload_len, const uint8_t mask[4])
{
    size_t n = 0;
    uint8_t mask_bit = mask ? 0x80 : 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (payload_len < 126) {
        out[n++] = (uint8_t)(mask_bit | payload_len);
    } else if (payload_len <= 0xffff) {
        out[n++] = mask_bit | 126;
        out[n++] = (uint8_t)(payload_len >> 8);
        out[n++] = (uint8_t)payload_len;
    } else {
        out[n++] = mask_bit | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(payload_len >> shift);
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    /* The key repeated to 8 bytes and rotated to the offset: byte i of data
     * takes mask[(offset + i) % 4] == key[i % 8]. */
    uint8_t key[8];
    for (size_t i = 0; i < 8; i++)
        key[i] = mask[(offset + i) & 3];
    uint64_t k;
    memcpy(&k, key, sizeof k);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, sizeof w);
        w ^= k;
        memcpy(data + i, &w, sizeof w);
    }
    for (; i < len; i++)
        data[i] ^= key[i & 7];
}

size_t ws_build_control(uint8_t *out, uint8_t opcode, const void *payload,
                        size_t len, const uint8_t mask[4])
{
    if (len > WS_MAX_CONTROL_PAYLOAD)
        return 0;
    size_t n = ws_frame_header_write(out, true, opcode, len, mask);
    if (len)
        memcpy(out + n, payload, len);
    if (mask)
        ws_mask(out + n, len, mask, 0);
    return n + len;
}

size_t ws_build_ping(uint8_t *out, const void *payload, size_t len, const uint8_t mask[4])
{
    return ws_build_control(out, WS_OP_PING, payload, len, mask);
}

size_t ws_build_pong(uint8_t *out, const void *payload, size_t len, const uint8_t mask[4])
{
    return ws_build_control(out, WS_OP_PONG, payload, len, mask);
}

/* Longest prefix of s, at most max bytes, that does not split a character. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

size_t ws_build_close(uint8_t *out, uint16_t code, const char *reason,
                      size_t reason_len, const uint8_t mask[4])
{
    uint8_t payload[WS_MAX_CONTROL_PAYLOAD];
    size_t n = 0;
    /* RFC 6455 §7.4.1: these three only ever describe a close locally. */
    bool no_code = code == WS_CLOSE_NO_STATUS || code == WS_CLOSE_ABNORMAL || code == 1015;
    if (!no_code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        size_t r = reason ? utf8_cut(reason, reason_len, sizeof payload - 2) : 0;
        if (r)
            memcpy(payload + 2, reason, r);
        n = 2 + r;
    }
    return ws_build_control(out, WS_OP_CLOSE, payload, n, mask);
}

bool ws_close_code_valid(uint16_t code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1013);
}

/* ---- the reader ---- */

void ws_reader_init(struct ws_reader *r, enum ws_role role, uint64_t max_message,
                    const struct ws_reader_ops *ops, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->ops = ops;
    r->ctx = ctx;
    r->role = (uint8_t)role;
    r->max_message = max_message < SIZE_MAX ? max_message : SIZE_MAX;
    r->state = RS_FRAMES;
}

static void drop_message(struct ws_reader *r)
{
    free(r->msg);
    r->msg = NULL;
    r->msg_len = 0;
    r->msg_cap = 0;
    r->msg_opcode = 0;
}

void ws_reader_free(struct ws_reader *r)
{
    drop_message(r);
}

size_t ws_reader_buffered(const struct ws_reader *r)
{
    return r->msg_cap;
}

uint16_t ws_reader_fail_code(const struct ws_reader *r)
{
    return r->fail_code;
}

const char *ws_reader_fail_reason(const struct ws_reader *r)
{
    return r->fail_reason ? r->fail_reason : "";
}

size_t ws_reader_fail_frame(const struct ws_reader *r, uint8_t *out, const uint8_t mask[4])
{
    const char *why = ws_reader_fail_reason(r);
    return ws_build_close(out, r->fail_code ? r->fail_code : WS_CLOSE_PROTOCOL,
                          why, strlen(why), mask);
}

static int fail(struct ws_reader *r, uint16_t code, const char *why)
{
    drop_message(r);
    r->fail_code = code;
    r->fail_reason = why;
    r->state = RS_FAILED;
    return STEP_FAIL;
}

static bool is_control(uint8_t opcode)
{
    return (opcode & 0x8) != 0;
}

static bool is_known_opcode(uint8_t opcode)
{
    return opcode <= WS_OP_BINARY || (opcode >= WS_OP_CLOSE && opcode <= WS_OP_PONG);
}

/* Rules that the first byte alone decides (RFC 6455 §5.2, §5.4, §5.5). */
static int check_first_byte(struct ws_reader *r, uint8_t b0)
{
    uint8_t opcode = b0 & 0x0f;
    bool fin = (b0 & 0x80) != 0;
    if (b0 & 0x70)
        return fail(r, WS_CLOSE_PROTOCOL, "reserved bits set");
    if (!is_known_opcode(opcode))
        return fail(r, WS_CLOSE_PROTOCOL, "reserved opcode");
    if (is_control(opcode))
        return fin ? STEP_GO : fail(r, WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (opcode == WS_OP_CONT && !r->msg_opcode)
        return fail(r, WS_CLOSE_PROTOCOL, "continuation without a message");
    if (opcode != WS_OP_CONT && r->msg_opcode)
        return fail(r, WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
    return STEP_GO;
}

/* Rules the rest of the header decides, before any payload is kept. */
static int check_header(struct ws_reader *r, const struct ws_frame_header *h)
{
    if (h->masked != (r->role == WS_ROLE_SERVER))
        return fail(r, WS_CLOSE_PROTOCOL,
                    h->masked ? "masked frame from server" : "unmasked frame from client");
    if (is_control(h->opcode))
        return h->payload_len <= WS_MAX_CONTROL_PAYLOAD
                   ? STEP_GO : fail(r, WS_CLOSE_PROTOCOL, "control frame too long");
    uint64_t have = h->opcode == WS_OP_CONT ? r->msg_len : 0;
    if (h->payload_len > r->max_message - have)
        return fail(r, WS_CLOSE_TOO_BIG, "message too big");
    return STEP_GO;
}

static int verdict(int callback_result)
{
    return callback_result ? STEP_STOP : STEP_GO;
}

static int deliver(struct ws_reader *r, uint8_t opcode, uint8_t *data, size_t len)
{
    if (!r->ops || !r->ops->on_message)
        return STEP_GO;
    return verdict(r->ops->on_message(r->ctx, opcode, len ? data : empty_payload, len));
}

/* Hands the reassembled message over and frees it, so an idle reader holds
 * nothing.  The buffer is detached first: the callback sees a reader that is
 * already between messages. */
static int finish_message(struct ws_reader *r)
{
    if (r->msg_opcode == WS_OP_TEXT && r->utf8 != UTF8_ACCEPT)
        return fail(r, WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
    uint8_t opcode = r->msg_opcode;
    uint8_t *msg = r->msg;
    size_t len = r->msg_len;
    r->msg = NULL;
    r->msg_len = r->msg_cap = 0;
    r->msg_opcode = 0;
    int rc = deliver(r, opcode, msg, len);
    free(msg);
    return rc;
}

/* Makes room for `need` bytes, growing geometrically but never past
 * `limit`, the most this message can still become. */
static int reserve(struct ws_reader *r, size_t need, size_t limit)
{
    if (need <= r->msg_cap)
        return STEP_GO;
    size_t cap = r->msg_cap > SIZE_MAX / 2 ? SIZE_MAX : r->msg_cap * 2;
    if (cap < need)
        cap = need;
    if (cap > limit)
        cap = limit;
    uint8_t *p = realloc(r->msg, cap);
    if (!p)
        return fail(r, WS_CLOSE_INTERNAL, "out of memory");
    r->msg = p;
    r->msg_cap = cap;
    return STEP_GO;
}

static void open_message(struct ws_reader *r, uint8_t opcode)
{
    r->msg_opcode = opcode;
    r->msg_len = 0;
    r->utf8 = UTF8_ACCEPT;
}

/* Appends an unmasked fragment; UTF-8 is checked per fragment, so a bad byte
 * fails the message before its last fragment arrives (RFC 6455 §8.1). */
static int append(struct ws_reader *r, const uint8_t *data, size_t len)
{
    if (r->msg_opcode == WS_OP_TEXT) {
        r->utf8 = utf8_step(r->utf8, data, len);
        if (r->utf8 == UTF8_REJECT)
            return fail(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
    }
    if (len == 0)
        return STEP_GO;
    if (reserve(r, r->msg_len + len, r->max_message))
        return STEP_FAIL;
    memcpy(r->msg + r->msg_len, data, len);
    r->msg_len += len;
    return STEP_GO;
}

static int data_frame(struct ws_reader *r, const struct ws_frame_header *h,
                      uint8_t *payload, size_t len)
{
    if (h->opcode != WS_OP_CONT && h->fin) {
        if (h->opcode == WS_OP_TEXT && !utf8_valid(payload, len))
            return fail(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
        return deliver(r, h->opcode, payload, len);
    }
    if (h->opcode != WS_OP_CONT)
        open_message(r, h->opcode);
    if (append(r, payload, len))
        return STEP_FAIL;
    return h->fin ? finish_message(r) : STEP_GO;
}

/* RFC 6455 §5.5.1, §7.1.5, §7.4. */
static int close_frame(struct ws_reader *r, const uint8_t *payload, size_t len)
{
    uint16_t code = WS_CLOSE_NO_STATUS;
    if (len == 1)
        return fail(r, WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
    if (len >= 2) {
        code = (uint16_t)(payload[0] << 8 | payload[1]);
        if (!ws_close_code_valid(code))
            return fail(r, WS_CLOSE_PROTOCOL, "invalid close code");
        if (!utf8_valid(payload + 2, len - 2))
            return fail(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
    }
    drop_message(r);
    r->state = RS_CLOSED;
    if (r->ops && r->ops->on_close)
        r->ops->on_close(r->ctx, code, len >= 2 ? payload + 2 : empty_payload,
                         len >= 2 ? len - 2 : 0);
    return STEP_STOP;
}

static int control_frame(struct ws_reader *r, uint8_t opcode, uint8_t *payload, size_t len)
{
    uint8_t *data = len ? payload : empty_payload;
    if (opcode == WS_OP_CLOSE)
        return close_frame(r, payload, len);
    if (!r->ops)
        return STEP_GO;
    if (opcode == WS_OP_PING)
        return r->ops->on_ping ? verdict(r->ops->on_ping(r->ctx, data, len)) : STEP_GO;
    return r->ops->on_pong ? verdict(r->ops->on_pong(r->ctx, data, len)) : STEP_GO;
}

static int whole_frame(struct ws_reader *r, const struct ws_frame_header *h, uint8_t *payload)
{
    size_t len = (size_t)h->payload_len;
    if (h->masked)
        ws_mask(payload, len, h->mask, 0);
    if (is_control(h->opcode))
        return control_frame(r, h->opcode, payload, len);
    return data_frame(r, h, payload, len);
}

/* A text frame that is waited for is still checked as far as it has come,
 * without unmasking the caller's bytes (they are not consumed yet): a bad
 * byte fails at once, not when the rest of the frame arrives.  The caller
 * presents the same frame again with more bytes after it, so the check
 * resumes where it stopped: a frame trickled in byte by byte costs O(n),
 * not O(n^2).  This is only an early verdict; the whole frame is validated
 * again when it is consumed, so a caller breaking the contract cannot get
 * invalid text through. */
static int precheck_text(struct ws_reader *r, const struct ws_frame_header *h,
                         const uint8_t *payload, size_t avail)
{
    bool text = h->opcode == WS_OP_TEXT || (h->opcode == WS_OP_CONT && r->msg_opcode == WS_OP_TEXT);
    if (!text)
        return STEP_GO;
    size_t off = r->checked;
    uint32_t st = off ? r->checked_utf8 : (h->opcode == WS_OP_TEXT ? UTF8_ACCEPT : r->utf8);
    uint8_t chunk[64];
    while (off < avail && st != UTF8_REJECT) {
        size_t n = avail - off < sizeof chunk ? avail - off : sizeof chunk;
        memcpy(chunk, payload + off, n);
        if (h->masked)
            ws_mask(chunk, n, h->mask, off);
        st = utf8_step(st, chunk, n);
        off += n;
    }
    if (st == UTF8_REJECT)
        return fail(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
    r->checked = (uint16_t)off;
    r->checked_utf8 = (uint8_t)st;
    return STEP_GO;
}

static void start_stream(struct ws_reader *r, const struct ws_frame_header *h)
{
    if (h->opcode != WS_OP_CONT)
        open_message(r, h->opcode);
    memcpy(r->mask, h->mask, 4);
    r->mask_phase = 0;
    r->frame_left = h->payload_len;
    r->state = h->fin ? RS_STREAM_FIN : RS_STREAM;
}

/* Reads one frame at p, or its header when the frame is to be streamed.
 * *used stays 0 when the frame must wait for more bytes. */
static int next_frame(struct ws_reader *r, uint8_t *p, size_t n, size_t *used)
{
    if (check_first_byte(r, p[0]))
        return STEP_FAIL;
    struct ws_frame_header h;
    int hl = ws_frame_header_parse(p, n, &h);
    if (hl < 0)
        return fail(r, WS_CLOSE_PROTOCOL, "frame length has the top bit set");
    if (hl == 0)
        return STEP_GO;
    if (check_header(r, &h))
        return STEP_FAIL;
    size_t avail = n - (size_t)hl;
    if (h.payload_len <= avail) {
        r->checked = 0;
        *used = (size_t)hl + (size_t)h.payload_len;
        return whole_frame(r, &h, p + hl);
    }
    if (is_control(h.opcode) || (uint64_t)hl + h.payload_len <= WS_READER_WHOLE_FRAME)
        return precheck_text(r, &h, p + hl, avail);
    r->checked = 0;
    start_stream(r, &h);
    *used = (size_t)hl;
    return STEP_GO;
}

/* Copies payload bytes of a streamed frame into the message buffer. */
static int stream(struct ws_reader *r, const uint8_t *p, size_t n, size_t *used)
{
    size_t take = n < r->frame_left ? n : (size_t)r->frame_left;
    size_t limit = r->state == RS_STREAM_FIN ? r->msg_len + (size_t)r->frame_left : r->max_message;
    if (reserve(r, r->msg_len + take, limit))
        return STEP_FAIL;
    uint8_t *dst = r->msg + r->msg_len;
    memcpy(dst, p, take);
    if (r->role == WS_ROLE_SERVER)
        ws_mask(dst, take, r->mask, r->mask_phase);
    r->mask_phase = (uint8_t)((r->mask_phase + take) & 3);
    r->msg_len += take;
    r->frame_left -= take;
    *used = take;
    if (r->msg_opcode == WS_OP_TEXT) {
        r->utf8 = utf8_step(r->utf8, dst, take);
        if (r->utf8 == UTF8_REJECT)
            return fail(r, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
    }
    if (r->frame_left)
        return STEP_GO;
    bool fin = r->state == RS_STREAM_FIN;
    r->state = RS_FRAMES;
    return fin ? finish_message(r) : STEP_GO;
}

ssize_t ws_reader_feed(struct ws_reader *r, uint8_t *buf, size_t len)
{
    if (r->state == RS_FAILED)
        return -1;
    size_t off = 0;
    while (off < len && r->state != RS_CLOSED) {
        size_t used = 0;
        int rc = (r->state == RS_STREAM || r->state == RS_STREAM_FIN)
                     ? stream(r, buf + off, len - off, &used)
                     : next_frame(r, buf + off, len - off, &used);
        off += used;
        if (rc == STEP_FAIL)
            return -1;
        if (rc == STEP_STOP || used == 0)
            break;
    }
    /* Nothing after a close frame is read (RFC 6455 §5.5.1). */
    return r->state == RS_CLOSED ? (ssize_t)len : (ssize_t)off;
}
