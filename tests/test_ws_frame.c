/* test_ws_frame.c — RFC 6455 framing and the message reader (src/wire/ws_frame.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "wire/utf8.h"
#include "wire/ws_frame.h"

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10
#define MAX_MSG (1u << 20)

static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* ---- building wire bytes the way a peer would ---- */

struct wire {
    uint8_t *p;
    size_t   len, cap;
};

static void wire_put(struct wire *w, const void *data, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
        ck_assert_ptr_nonnull(w->p);
    }
    if (n)
        memcpy(w->p + w->len, data, n);
    w->len += n;
}

/* One frame with first byte b0 (FIN, RSV and opcode bits as given), masked
 * when `masked` (what a client sends). */
static void wire_frame(struct wire *w, uint8_t b0, const void *payload, size_t len, bool masked)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_frame_header_write(hdr, false, 0, len, masked ? key : NULL);
    hdr[0] = b0;
    wire_put(w, hdr, hl);
    size_t at = w->len;
    wire_put(w, payload, len);
    if (masked)
        ws_mask(w->p + at, len, key, 0);
}

static void cframe(struct wire *w, uint8_t b0, const char *s)
{
    wire_frame(w, b0, s, strlen(s), true);
}

/* ---- recording what the reader reports ---- */

enum kind { EV_MESSAGE, EV_PING, EV_PONG, EV_CLOSE };

struct event {
    enum kind kind;
    uint8_t   opcode;
    uint16_t  code;
    uint8_t  *data;        /* a copy */
    size_t    len;
    const uint8_t *where;  /* the pointer the reader passed */
};

struct recorder {
    struct event ev[32];
    int          n;
    int          stop_on;  /* return non-zero from the callback of event #stop_on */
};

static int record(struct recorder *rec, enum kind kind, uint8_t opcode, uint16_t code,
                  const uint8_t *data, size_t len)
{
    ck_assert_int_lt(rec->n, 32);
    struct event *e = &rec->ev[rec->n];
    e->kind = kind;
    e->opcode = opcode;
    e->code = code;
    e->len = len;
    e->where = data;
    ck_assert_ptr_nonnull(data);
    e->data = malloc(len + 1);
    ck_assert_ptr_nonnull(e->data);
    memcpy(e->data, data, len);
    return rec->n++ == rec->stop_on;
}

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len)
{
    return record(ctx, EV_MESSAGE, opcode, 0, data, len);
}

static int on_ping(void *ctx, uint8_t *data, size_t len)
{
    return record(ctx, EV_PING, WS_OP_PING, 0, data, len);
}

static int on_pong(void *ctx, uint8_t *data, size_t len)
{
    return record(ctx, EV_PONG, WS_OP_PONG, 0, data, len);
}

static void on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
    record(ctx, EV_CLOSE, WS_OP_CLOSE, code, reason, len);
}

static const struct ws_reader_ops ops = { on_message, on_ping, on_pong, on_close };

static void rec_free(struct recorder *rec)
{
    for (int i = 0; i < rec->n; i++)
        free(rec->ev[i].data);
    rec->n = 0;
}

static bool ev_is(const struct event *e, enum kind kind, const char *data)
{
    return e->kind == kind && e->len == strlen(data) && memcmp(e->data, data, e->len) == 0;
}

/* A caller that keeps unconsumed bytes and appends new ones, like a socket
 * input buffer.  Records the most it ever had to hold. */
struct feeder {
    uint8_t *buf;
    size_t   len, cap, peak;
};

static ssize_t feed_piece(struct ws_reader *r, struct feeder *f, const uint8_t *p, size_t n)
{
    if (f->len + n > f->cap) {
        f->cap = (f->len + n) * 2;
        f->buf = realloc(f->buf, f->cap);
        ck_assert_ptr_nonnull(f->buf);
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
    if (f->len > f->peak)
        f->peak = f->len;
    for (;;) {
        ssize_t used = ws_reader_feed(r, f->buf, f->len);
        if (used < 0)
            return -1;
        ck_assert_uint_le((size_t)used, f->len);
        memmove(f->buf, f->buf + used, f->len - (size_t)used);
        f->len -= (size_t)used;
        if (used == 0 || f->len == 0)
            return 0;
    }
}

/* Feeds all of w in pieces of `step` bytes (0: all at once). */
static ssize_t feed_all(struct ws_reader *r, const struct wire *w, size_t step)
{
    struct feeder f = { 0 };
    ssize_t rc = 0;
    if (step == 0)
        step = w->len;
    for (size_t off = 0; off < w->len && rc == 0; off += step)
        rc = feed_piece(r, &f, w->p + off, w->len - off < step ? w->len - off : step);
    free(f.buf);
    return rc;
}

static struct ws_reader reader;
static struct recorder rec;

static void setup(void)
{
    memset(&rec, 0, sizeof rec);
    rec.stop_on = -1;
    ws_reader_init(&reader, WS_ROLE_SERVER, MAX_MSG, &ops, &rec);
}

static void teardown(void)
{
    ws_reader_free(&reader);
    rec_free(&rec);
}

/* ---- header codec ---- */

START_TEST(header_round_trip)
{
    static const uint64_t lengths[] = { 0, 1, 125, 126, 127, 65535, 65536,
                                        UINT64_C(0x100000005), (UINT64_C(1) << 63) - 1 };
    static const int expect_len[] = { 2, 2, 2, 4, 4, 4, 10, 10, 10 };
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        for (int masked = 0; masked < 2; masked++) {
            uint8_t buf[WS_MAX_HEADER];
            struct ws_frame_header h;
            size_t n = ws_frame_header_write(buf, i % 2, WS_OP_BINARY, lengths[i],
                                             masked ? key : NULL);
            ck_assert_uint_eq(n, (size_t)expect_len[i] + (masked ? 4 : 0));
            for (size_t k = 0; k < n; k++)
                ck_assert_int_eq(ws_frame_header_parse(buf, k, &h), 0);
            ck_assert_int_eq(ws_frame_header_parse(buf, n, &h), (int)n);
            ck_assert_uint_eq(h.payload_len, lengths[i]);
            ck_assert_int_eq(h.fin, i % 2);
            ck_assert_uint_eq(h.opcode, WS_OP_BINARY);
            ck_assert_uint_eq(h.rsv, 0);
            ck_assert_int_eq(h.masked, masked);
            if (masked)
                ck_assert(memcmp(h.mask, key, 4) == 0);
        }
    }
}
END_TEST

START_TEST(payload_round_trip_through_reader)
{
    static const size_t lengths[] = { 0, 125, 126, 127, 65535, 65536 };
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        struct wire w = { 0 };
        uint8_t *payload = malloc(lengths[i] + 1);
        ck_assert_ptr_nonnull(payload);
        for (size_t k = 0; k < lengths[i]; k++)
            payload[k] = (uint8_t)(k * 7 + i);
        wire_frame(&w, FIN | WS_OP_BINARY, payload, lengths[i], true);
        ck_assert_int_eq(feed_all(&reader, &w, 0), 0);
        ck_assert_int_eq(rec.n, 1);
        ck_assert_uint_eq(rec.ev[0].len, lengths[i]);
        ck_assert(memcmp(rec.ev[0].data, payload, lengths[i]) == 0);
        ck_assert_uint_eq(rec.ev[0].opcode, WS_OP_BINARY);
        rec_free(&rec);
        free(payload);
        free(w.p);
    }
}
END_TEST

START_TEST(top_bit_length_refused)
{
    uint8_t buf[] = { FIN | WS_OP_BINARY, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
    struct ws_frame_header h;
    ck_assert_int_eq(ws_frame_header_parse(buf, sizeof buf, &h), -1);
    ck_assert_int_eq(ws_reader_feed(&reader, buf, sizeof buf), -1);
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_PROTOCOL);
}
END_TEST

START_TEST(non_minimal_length_accepted)
{
    uint8_t buf[] = { FIN | WS_OP_TEXT, 0x80 | 126, 0, 2, 0, 0, 0, 0, 'h', 'i' };
    ck_assert_int_eq(ws_reader_feed(&reader, buf, sizeof buf), (ssize_t)sizeof buf);
    ck_assert_int_eq(rec.n, 1);
    ck_assert(ev_is(&rec.ev[0], EV_MESSAGE, "hi"));
}
END_TEST

START_TEST(mask_in_pieces_equals_mask_at_once)
{
    uint8_t a[300], b[300];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (uint8_t)(i * 13);
    ws_mask(a, sizeof a, key, 0);
    for (size_t cut1 = 0; cut1 < 20; cut1++) {
        for (size_t cut2 = cut1; cut2 < 40; cut2 += 3) {
            uint8_t c[300];
            memcpy(c, b, sizeof c);
            ws_mask(c, cut1, key, 0);
            ws_mask(c + cut1, cut2 - cut1, key, cut1);
            ws_mask(c + cut2, sizeof c - cut2, key, cut2);
            ck_assert(memcmp(a, c, sizeof a) == 0);
        }
    }
    ws_mask(a, sizeof a, key, 0);
    ck_assert(memcmp(a, b, sizeof a) == 0);
}
END_TEST

/* ---- opcodes and sequencing ---- */

START_TEST(every_opcode)
{
    for (uint8_t op = 0; op < 16; op++) {
        setup();
        struct wire w = { 0 };
        cframe(&w, FIN | op, "ab");
        ssize_t rc = feed_all(&reader, &w, 0);
        switch (op) {
        case WS_OP_TEXT:
        case WS_OP_BINARY:
            ck_assert_int_eq(rc, 0);
            ck_assert(ev_is(&rec.ev[0], EV_MESSAGE, "ab"));
            ck_assert_uint_eq(rec.ev[0].opcode, op);
            break;
        case WS_OP_PING:
            ck_assert(ev_is(&rec.ev[0], EV_PING, "ab"));
            break;
        case WS_OP_PONG:
            ck_assert(ev_is(&rec.ev[0], EV_PONG, "ab"));
            break;
        case WS_OP_CLOSE:   /* "ab" is code 0x6162: not a close code */
        case WS_OP_CONT:    /* nothing to continue */
        default:            /* 3-7, B-F reserved */
            ck_assert_msg(rc == -1, "opcode %u accepted", op);
            ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_PROTOCOL);
            ck_assert_int_eq(rec.n, 0);
        }
        free(w.p);
        teardown();
    }
}
END_TEST

START_TEST(reserved_opcode_fails_at_first_byte)
{
    uint8_t b = FIN | 0x3;
    ck_assert_int_eq(ws_reader_feed(&reader, &b, 1), -1);
    ck_assert_str_eq(ws_reader_fail_reason(&reader), "reserved opcode");
}
END_TEST

START_TEST(fragments_with_interleaved_control)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_TEXT, "Hel");
    cframe(&w, FIN | WS_OP_PING, "p1");
    cframe(&w, WS_OP_CONT, "lo ");
    cframe(&w, FIN | WS_OP_PONG, "");
    cframe(&w, WS_OP_CONT, "");
    cframe(&w, FIN | WS_OP_CONT, "world");
    cframe(&w, FIN | WS_OP_BINARY, "next");
    for (size_t step = 0; step < 8; step++) {
        setup();
        ck_assert_int_eq(feed_all(&reader, &w, step), 0);
        ck_assert_int_eq(rec.n, 4);
        ck_assert(ev_is(&rec.ev[0], EV_PING, "p1"));
        ck_assert(ev_is(&rec.ev[1], EV_PONG, ""));
        ck_assert(ev_is(&rec.ev[2], EV_MESSAGE, "Hello world"));
        ck_assert_uint_eq(rec.ev[2].opcode, WS_OP_TEXT);
        ck_assert(ev_is(&rec.ev[3], EV_MESSAGE, "next"));
        /* The reassembly buffer is gone once the message is delivered. */
        ck_assert_uint_eq(ws_reader_buffered(&reader), 0);
        teardown();
    }
    free(w.p);
}
END_TEST

START_TEST(empty_fragments_make_empty_message)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_TEXT, "");
    cframe(&w, WS_OP_CONT, "");
    cframe(&w, FIN | WS_OP_CONT, "");
    ck_assert_int_eq(feed_all(&reader, &w, 0), 0);
    ck_assert_int_eq(rec.n, 1);
    ck_assert(ev_is(&rec.ev[0], EV_MESSAGE, ""));
    free(w.p);
}
END_TEST

static void expect_protocol_error(struct wire *w, const char *why)
{
    ck_assert_int_eq(feed_all(&reader, w, 0), -1);
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_PROTOCOL);
    ck_assert_str_eq(ws_reader_fail_reason(&reader), why);
    free(w->p);
}

START_TEST(fragmented_control_refused)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_PING, "frag");
    expect_protocol_error(&w, "fragmented control frame");
}
END_TEST

START_TEST(long_control_refused)
{
    struct wire w = { 0 };
    uint8_t big[126] = { 0 };
    wire_frame(&w, FIN | WS_OP_PING, big, sizeof big, true);
    expect_protocol_error(&w, "control frame too long");
}
END_TEST

START_TEST(continuation_without_message_refused)
{
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_CONT, "x");
    expect_protocol_error(&w, "continuation without a message");
}
END_TEST

START_TEST(new_message_inside_fragmented_refused)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_TEXT, "a");
    cframe(&w, FIN | WS_OP_TEXT, "b");
    expect_protocol_error(&w, "new message inside a fragmented one");
}
END_TEST

START_TEST(reserved_bits_refused)
{
    static const uint8_t bits[] = { RSV1, RSV2, RSV3, RSV1 | RSV3 };
    for (size_t i = 0; i < sizeof bits; i++) {
        setup();
        /* Judged from the first byte alone. */
        uint8_t b0 = FIN | bits[i] | WS_OP_TEXT;
        ck_assert_int_eq(ws_reader_feed(&reader, &b0, 1), -1);
        ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_PROTOCOL);
        ck_assert_str_eq(ws_reader_fail_reason(&reader), "reserved bits set");
        teardown();
    }
}
END_TEST

START_TEST(unmasked_client_frame_refused)
{
    struct wire w = { 0 };
    wire_frame(&w, FIN | WS_OP_TEXT, "hi", 2, false);
    expect_protocol_error(&w, "unmasked frame from client");
}
END_TEST

START_TEST(client_role)
{
    ws_reader_free(&reader);
    ws_reader_init(&reader, WS_ROLE_CLIENT, MAX_MSG, &ops, &rec);
    struct wire w = { 0 };
    wire_frame(&w, FIN | WS_OP_TEXT, "from server", 11, false);
    ck_assert_int_eq(feed_all(&reader, &w, 1), 0);
    ck_assert(ev_is(&rec.ev[0], EV_MESSAGE, "from server"));
    wire_frame(&w, FIN | WS_OP_TEXT, "masked", 6, true);
    expect_protocol_error(&w, "masked frame from server");
}
END_TEST

/* ---- UTF-8 ---- */

static void expect_invalid_data(ssize_t rc)
{
    ck_assert_int_eq(rc, -1);
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_INVALID_DATA);
}

START_TEST(invalid_utf8_single_frame)
{
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_TEXT, "ok \xed\xa0\x80 surrogate");
    expect_invalid_data(feed_all(&reader, &w, 0));
    ck_assert_int_eq(rec.n, 0);
    free(w.p);
}
END_TEST

START_TEST(binary_is_not_utf8_checked)
{
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_BINARY, "\xff\xfe");
    ck_assert_int_eq(feed_all(&reader, &w, 0), 0);
    ck_assert_int_eq(rec.n, 1);
    free(w.p);
}
END_TEST

START_TEST(utf8_split_across_fragments)
{
    /* κόσμε cut inside code points: valid. */
    const char *s = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        setup();
        struct wire w = { 0 };
        wire_frame(&w, WS_OP_TEXT, s, cut, true);
        wire_frame(&w, FIN | WS_OP_CONT, s + cut, n - cut, true);
        ck_assert_int_eq(feed_all(&reader, &w, 0), 0);
        ck_assert(ev_is(&rec.ev[0], EV_MESSAGE, s));
        free(w.p);
        teardown();
    }
}
END_TEST

START_TEST(bad_utf8_fails_before_fin)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4");
    ck_assert_int_eq(feed_all(&reader, &w, 0), 0);   /* valid so far */
    free(w.p);
    memset(&w, 0, sizeof w);
    cframe(&w, WS_OP_CONT, "\x90");                  /* F4 90: beyond U+10FFFF */
    expect_invalid_data(feed_all(&reader, &w, 0));   /* no FIN yet */
    ck_assert_int_eq(rec.n, 0);
    free(w.p);
}
END_TEST

START_TEST(bad_utf8_in_first_fragment_fails_at_once)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_TEXT, "abc\xc0\xaf");
    expect_invalid_data(feed_all(&reader, &w, 0));
    free(w.p);
}
END_TEST

/* A text frame that has only partly arrived is checked as far as it goes. */
START_TEST(bad_utf8_in_partial_frame_fails_at_once)
{
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_TEXT, "valid start \xff and more text after it");
    size_t bad_at = w.len - strlen(" and more text after it") ;
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, bad_at - 1), 0);   /* waits */
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, bad_at), -1);
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_INVALID_DATA);
    free(w.p);
}
END_TEST

/* Byte by byte, as a slow client sends it: the early check resumes where it
 * stopped and still finds the bad byte the moment it arrives. */
START_TEST(trickled_text_frame)
{
    char text[12000];
    for (size_t i = 0; i + 1 < sizeof text; i += 2)
        memcpy(text + i, "\xc3\xa9", 2);
    struct wire w = { 0 };
    wire_frame(&w, FIN | WS_OP_TEXT, text, sizeof text, true);
    struct feeder f = { 0 };
    for (size_t i = 0; i < w.len; i++)
        ck_assert_int_eq(feed_piece(&reader, &f, w.p + i, 1), 0);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_uint_eq(rec.ev[0].len, sizeof text);
    free(f.buf);
    free(w.p);

    text[9001] = 'x';   /* cuts a 2-byte character: C3 'x' */
    memset(&w, 0, sizeof w);
    memset(&f, 0, sizeof f);
    wire_frame(&w, FIN | WS_OP_TEXT, text, sizeof text, true);
    size_t hl = 4 + 4, i = 0;
    ssize_t rc = 0;
    for (; i < w.len && rc == 0; i++)
        rc = feed_piece(&reader, &f, w.p + i, 1);
    ck_assert_int_eq(rc, -1);
    ck_assert_uint_eq(i, hl + 9001 + 1);
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_INVALID_DATA);
    free(f.buf);
    free(w.p);
}
END_TEST

/* The early check trusts that the caller presents the same frame again; one
 * that does not still cannot get invalid text through. */
START_TEST(early_check_is_not_trusted)
{
    struct wire good = { 0 }, bad = { 0 };
    cframe(&good, FIN | WS_OP_TEXT, "all valid text, but only half of it arrives");
    ck_assert_int_eq(ws_reader_feed(&reader, good.p, good.len - 10), 0);
    cframe(&bad, FIN | WS_OP_TEXT, "all valid text, but only half of it \xff\xfe\xfd\xfc\xfb\xfa");
    expect_invalid_data(ws_reader_feed(&reader, bad.p, bad.len));
    free(good.p);
    free(bad.p);
}
END_TEST

START_TEST(text_ending_inside_sequence_fails)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_TEXT, "abc\xe2\x82");
    cframe(&w, FIN | WS_OP_CONT, "");
    expect_invalid_data(feed_all(&reader, &w, 0));
    free(w.p);
}
END_TEST

/* ---- close frames ---- */

static ssize_t feed_close(const uint8_t *payload, size_t len)
{
    struct wire w = { 0 };
    wire_frame(&w, FIN | WS_OP_CLOSE, payload, len, true);
    ssize_t rc = feed_all(&reader, &w, 0);
    free(w.p);
    return rc;
}

static ssize_t feed_close_code(uint16_t code, const char *reason)
{
    uint8_t p[125] = { (uint8_t)(code >> 8), (uint8_t)code };
    size_t n = strlen(reason);
    memcpy(p + 2, reason, n);
    return feed_close(p, 2 + n);
}

START_TEST(close_code_classes)
{
    static const uint16_t valid[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                      1011, 1012, 1013, 3000, 3999, 4000, 4999 };
    static const uint16_t invalid[] = { 0, 1, 999, 1004, 1005, 1006, 1014, 1015, 1016,
                                        1100, 2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        setup();
        ck_assert_int_eq(feed_close_code(valid[i], "bye"), 0);
        ck_assert_int_eq(rec.n, 1);
        ck_assert(ev_is(&rec.ev[0], EV_CLOSE, "bye"));
        ck_assert_uint_eq(rec.ev[0].code, valid[i]);
        teardown();
    }
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        setup();
        ck_assert_msg(feed_close_code(invalid[i], "") == -1, "code %u accepted", invalid[i]);
        ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_PROTOCOL);
        ck_assert_int_eq(rec.n, 0);
        teardown();
    }
}
END_TEST

START_TEST(close_code_valid_table)
{
    for (uint32_t c = 0; c <= 65535; c++) {
        bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1013) ||
                    (c >= 3000 && c <= 4999);
        ck_assert_msg(ws_close_code_valid((uint16_t)c) == want, "code %u", c);
    }
}
END_TEST

START_TEST(close_without_code)
{
    ck_assert_int_eq(feed_close(NULL, 0), 0);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_uint_eq(rec.ev[0].code, WS_CLOSE_NO_STATUS);
    ck_assert_uint_eq(rec.ev[0].len, 0);
}
END_TEST

START_TEST(close_with_one_byte_refused)
{
    uint8_t b = 0x03;
    ck_assert_int_eq(feed_close(&b, 1), -1);
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_PROTOCOL);
}
END_TEST

START_TEST(close_reason_must_be_utf8)
{
    expect_invalid_data(feed_close_code(1000, "\xce\xba\xed\xa0\x80"));
}
END_TEST

START_TEST(nothing_read_after_close)
{
    struct wire w = { 0 };
    uint8_t code[2] = { 0x03, 0xe8 };
    wire_frame(&w, FIN | WS_OP_CLOSE, code, 2, true);
    cframe(&w, FIN | WS_OP_TEXT, "after");
    wire_put(&w, "\xff\xff garbage", 10);
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, w.len), (ssize_t)w.len);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_int_eq(rec.ev[0].kind, EV_CLOSE);
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, 3), 3);
    ck_assert_int_eq(rec.n, 1);
    free(w.p);
}
END_TEST

START_TEST(close_during_fragmented_message_frees_it)
{
    struct wire w = { 0 };
    cframe(&w, WS_OP_BINARY, "part");
    ck_assert_int_eq(feed_all(&reader, &w, 0), 0);
    ck_assert_uint_gt(ws_reader_buffered(&reader), 0);
    ck_assert_int_eq(feed_close_code(1001, ""), 0);
    ck_assert_uint_eq(ws_reader_buffered(&reader), 0);
    free(w.p);
}
END_TEST

/* ---- limits and streaming ---- */

START_TEST(message_at_max_and_one_over)
{
    size_t max = 70000;
    uint8_t *big = calloc(1, max + 1);
    ck_assert_ptr_nonnull(big);
    ws_reader_free(&reader);
    ws_reader_init(&reader, WS_ROLE_SERVER, max, &ops, &rec);
    struct wire w = { 0 };
    wire_frame(&w, FIN | WS_OP_BINARY, big, max, true);
    ck_assert_int_eq(feed_all(&reader, &w, 4096), 0);
    ck_assert_uint_eq(rec.ev[0].len, max);
    free(w.p);

    /* One over: refused from the header, before any payload arrives. */
    memset(&w, 0, sizeof w);
    wire_frame(&w, FIN | WS_OP_BINARY, big, max + 1, true);
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, 14), -1);
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_TOO_BIG);
    free(w.p);
    free(big);
}
END_TEST

START_TEST(fragmented_message_at_max_and_one_over)
{
    ws_reader_free(&reader);
    ws_reader_init(&reader, WS_ROLE_SERVER, 10, &ops, &rec);
    struct wire w = { 0 };
    cframe(&w, WS_OP_TEXT, "01234");
    cframe(&w, FIN | WS_OP_PING, "");
    cframe(&w, FIN | WS_OP_CONT, "56789");
    ck_assert_int_eq(feed_all(&reader, &w, 0), 0);
    ck_assert(ev_is(&rec.ev[1], EV_MESSAGE, "0123456789"));
    free(w.p);

    memset(&w, 0, sizeof w);
    cframe(&w, WS_OP_TEXT, "01234");
    cframe(&w, WS_OP_CONT, "5678");
    ck_assert_int_eq(feed_all(&reader, &w, 0), 0);
    free(w.p);
    memset(&w, 0, sizeof w);
    cframe(&w, FIN | WS_OP_CONT, "9X");
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, 6), -1);   /* header only */
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_TOO_BIG);
    ck_assert_uint_eq(ws_reader_buffered(&reader), 0);
    free(w.p);
}
END_TEST

static void big_message_in_pieces(uint8_t opcode, size_t piece)
{
    size_t n = 5u << 20;
    uint8_t *msg = malloc(n);
    ck_assert_ptr_nonnull(msg);
    /* "é" (2 bytes) and ASCII, so pieces cut through characters. */
    for (size_t i = 0; i < n; i += 3) {
        msg[i] = 'a';
        if (i + 2 < n) {
            msg[i + 1] = 0xc3;
            msg[i + 2] = 0xa9;
        }
    }
    if (n % 3 == 2)
        msg[n - 1] = 'z';
    ws_reader_free(&reader);
    ws_reader_init(&reader, WS_ROLE_SERVER, 64u << 20, &ops, &rec);
    struct wire w = { 0 };
    wire_frame(&w, FIN | opcode, msg, n, true);
    struct feeder f = { 0 };
    for (size_t off = 0; off < w.len; off += piece)
        ck_assert_int_eq(feed_piece(&reader, &f, w.p + off, w.len - off < piece ? w.len - off : piece), 0);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_uint_eq(rec.ev[0].len, n);
    ck_assert(memcmp(rec.ev[0].data, msg, n) == 0);
    /* The caller never had to hold more than a small window. */
    ck_assert_uint_le(f.peak, WS_READER_WHOLE_FRAME + piece);
    ck_assert_uint_eq(ws_reader_buffered(&reader), 0);
    free(f.buf);
    free(w.p);
    free(msg);
}

START_TEST(big_binary_frame_in_small_pieces)
{
    big_message_in_pieces(WS_OP_BINARY, 1000);
}
END_TEST

START_TEST(big_text_frame_in_odd_pieces)
{
    big_message_in_pieces(WS_OP_TEXT, 4093);
}
END_TEST

START_TEST(big_fragments_with_ping_between)
{
    size_t half = 100000;
    uint8_t *part = malloc(half);
    ck_assert_ptr_nonnull(part);
    memset(part, 'q', half);
    struct wire w = { 0 };
    wire_frame(&w, WS_OP_TEXT, part, half, true);
    cframe(&w, FIN | WS_OP_PING, "mid");
    wire_frame(&w, FIN | WS_OP_CONT, part, half, true);
    ck_assert_int_eq(feed_all(&reader, &w, 777), 0);
    ck_assert_int_eq(rec.n, 2);
    ck_assert(ev_is(&rec.ev[0], EV_PING, "mid"));
    ck_assert_uint_eq(rec.ev[1].len, 2 * half);
    free(part);
    free(w.p);
}
END_TEST

START_TEST(streamed_text_fails_fast)
{
    size_t n = 200000;
    uint8_t *msg = malloc(n);
    ck_assert_ptr_nonnull(msg);
    memset(msg, 'x', n);
    msg[50000] = 0xff;
    struct wire w = { 0 };
    wire_frame(&w, FIN | WS_OP_TEXT, msg, n, true);
    struct feeder f = { 0 };
    ssize_t rc = 0;
    size_t off = 0;
    for (; off < w.len && rc == 0; off += 1000)
        rc = feed_piece(&reader, &f, w.p + off, 1000);
    ck_assert_int_eq(rc, -1);
    ck_assert_uint_le(off, 52000);   /* failed with the piece holding the byte */
    ck_assert_uint_eq(ws_reader_fail_code(&reader), WS_CLOSE_INVALID_DATA);
    ck_assert_uint_eq(ws_reader_buffered(&reader), 0);
    free(f.buf);
    free(w.p);
    free(msg);
}
END_TEST

START_TEST(whole_frame_is_zero_copy)
{
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_TEXT, "in place");
    cframe(&w, WS_OP_TEXT, "frag");
    cframe(&w, FIN | WS_OP_CONT, "mented");
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, w.len), (ssize_t)w.len);
    ck_assert_int_eq(rec.n, 2);
    ck_assert(ev_is(&rec.ev[0], EV_MESSAGE, "in place"));
    ck_assert(rec.ev[0].where >= w.p && rec.ev[0].where < w.p + w.len);
    ck_assert(ev_is(&rec.ev[1], EV_MESSAGE, "fragmented"));
    ck_assert(rec.ev[1].where < w.p || rec.ev[1].where >= w.p + w.len);
    free(w.p);
}
END_TEST

START_TEST(small_frame_waits_without_consuming)
{
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_BINARY, "0123456789");
    for (size_t k = 0; k < w.len; k++)
        ck_assert_int_eq(ws_reader_feed(&reader, w.p, k), 0);
    ck_assert_int_eq(rec.n, 0);
    ck_assert_uint_eq(ws_reader_buffered(&reader), 0);
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, w.len), (ssize_t)w.len);
    ck_assert_int_eq(rec.n, 1);
    free(w.p);
}
END_TEST

START_TEST(callback_can_stop_the_feed)
{
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_TEXT, "one");
    size_t first = w.len;
    cframe(&w, FIN | WS_OP_TEXT, "two");
    rec.stop_on = 0;
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, w.len), (ssize_t)first);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_int_eq(ws_reader_feed(&reader, w.p + first, w.len - first), (ssize_t)(w.len - first));
    ck_assert(ev_is(&rec.ev[1], EV_MESSAGE, "two"));
    free(w.p);
}
END_TEST

START_TEST(failure_is_sticky)
{
    uint8_t b = FIN | RSV1 | WS_OP_TEXT;
    ck_assert_int_eq(ws_reader_feed(&reader, &b, 1), -1);
    struct wire w = { 0 };
    cframe(&w, FIN | WS_OP_TEXT, "fine");
    ck_assert_int_eq(ws_reader_feed(&reader, w.p, w.len), -1);
    ck_assert_int_eq(rec.n, 0);
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    size_t n = ws_reader_fail_frame(&reader, frame, NULL);
    ck_assert_uint_eq(n, 2 + 2 + strlen("reserved bits set"));
    ck_assert_uint_eq(frame[0], FIN | WS_OP_CLOSE);
    ck_assert_uint_eq(frame[2] << 8 | frame[3], WS_CLOSE_PROTOCOL);
    free(w.p);
}
END_TEST

START_TEST(reader_is_small_and_idle_owns_nothing)
{
    ck_assert_uint_le(sizeof(struct ws_reader), 128);
    ck_assert_uint_eq(ws_reader_buffered(&reader), 0);
}
END_TEST

/* ---- builders ---- */

START_TEST(close_builder)
{
    uint8_t out[WS_CONTROL_FRAME_MAX];
    size_t n = ws_build_close(out, 1000, "done", 4, NULL);
    ck_assert_uint_eq(n, 8);
    ck_assert(memcmp(out, "\x88\x06\x03\xe8" "done", 8) == 0);
    ck_assert_uint_eq(ws_build_close(out, WS_CLOSE_NO_STATUS, "x", 1, NULL), 2);
    ck_assert(memcmp(out, "\x88\x00", 2) == 0);
    ck_assert_uint_eq(ws_build_close(out, WS_CLOSE_ABNORMAL, NULL, 0, NULL), 2);

    /* A long reason is cut at a character boundary, to at most 123 bytes. */
    char reason[200];
    memset(reason, 'a', 122);
    memcpy(reason + 122, "\xe2\x82\xac\xe2\x82\xac", 6);   /* euro signs straddle 123 */
    n = ws_build_close(out, 1011, reason, 128, NULL);
    ck_assert_uint_eq(n, 2 + 2 + 122);
    ck_assert(utf8_valid(out + 4, n - 4));

    /* A masked close reads back through a server-role reader. */
    n = ws_build_close(out, 4001, "app", 3, key);
    ck_assert_int_eq(ws_reader_feed(&reader, out, n), (ssize_t)n);
    ck_assert_uint_eq(rec.ev[0].code, 4001);
    ck_assert(ev_is(&rec.ev[0], EV_CLOSE, "app"));
}
END_TEST

START_TEST(ping_pong_builders)
{
    uint8_t out[WS_CONTROL_FRAME_MAX], big[126] = { 0 };
    ck_assert_uint_eq(ws_build_ping(out, big, 126, NULL), 0);
    size_t n = ws_build_ping(out, "hello", 5, key);
    ck_assert_uint_eq(n, 2 + 4 + 5);
    size_t m = ws_build_pong(out + n, "", 0, key);
    ck_assert_uint_eq(m, 6);
    ck_assert_int_eq(ws_reader_feed(&reader, out, n + m), (ssize_t)(n + m));
    ck_assert(ev_is(&rec.ev[0], EV_PING, "hello"));
    ck_assert(ev_is(&rec.ev[1], EV_PONG, ""));
    n = ws_build_pong(out, "abc", 3, NULL);
    ck_assert(memcmp(out, "\x8a\x03" "abc", 5) == 0);
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *tc = tcase_create("codec");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, header_round_trip);
    tcase_add_test(tc, payload_round_trip_through_reader);
    tcase_add_test(tc, top_bit_length_refused);
    tcase_add_test(tc, non_minimal_length_accepted);
    tcase_add_test(tc, mask_in_pieces_equals_mask_at_once);
    tcase_add_test(tc, close_builder);
    tcase_add_test(tc, ping_pong_builders);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("protocol");
    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_add_test(tp, every_opcode);
    tcase_add_test(tp, reserved_opcode_fails_at_first_byte);
    tcase_add_test(tp, fragments_with_interleaved_control);
    tcase_add_test(tp, empty_fragments_make_empty_message);
    tcase_add_test(tp, fragmented_control_refused);
    tcase_add_test(tp, long_control_refused);
    tcase_add_test(tp, continuation_without_message_refused);
    tcase_add_test(tp, new_message_inside_fragmented_refused);
    tcase_add_test(tp, reserved_bits_refused);
    tcase_add_test(tp, unmasked_client_frame_refused);
    tcase_add_test(tp, client_role);
    tcase_add_test(tp, failure_is_sticky);
    suite_add_tcase(s, tp);

    TCase *tu = tcase_create("utf8");
    tcase_add_checked_fixture(tu, setup, teardown);
    tcase_add_test(tu, invalid_utf8_single_frame);
    tcase_add_test(tu, binary_is_not_utf8_checked);
    tcase_add_test(tu, utf8_split_across_fragments);
    tcase_add_test(tu, bad_utf8_fails_before_fin);
    tcase_add_test(tu, bad_utf8_in_first_fragment_fails_at_once);
    tcase_add_test(tu, bad_utf8_in_partial_frame_fails_at_once);
    tcase_add_test(tu, text_ending_inside_sequence_fails);
    tcase_add_test(tu, trickled_text_frame);
    tcase_add_test(tu, early_check_is_not_trusted);
    suite_add_tcase(s, tu);

    TCase *tcl = tcase_create("close");
    tcase_add_checked_fixture(tcl, setup, teardown);
    tcase_add_test(tcl, close_code_classes);
    tcase_add_test(tcl, close_code_valid_table);
    tcase_add_test(tcl, close_without_code);
    tcase_add_test(tcl, close_with_one_byte_refused);
    tcase_add_test(tcl, close_reason_must_be_utf8);
    tcase_add_test(tcl, nothing_read_after_close);
    tcase_add_test(tcl, close_during_fragmented_message_frees_it);
    suite_add_tcase(s, tcl);

    TCase *tl = tcase_create("limits");
    tcase_set_timeout(tl, 60);
    tcase_add_checked_fixture(tl, setup, teardown);
    tcase_add_test(tl, message_at_max_and_one_over);
    tcase_add_test(tl, fragmented_message_at_max_and_one_over);
    tcase_add_test(tl, big_binary_frame_in_small_pieces);
    tcase_add_test(tl, big_text_frame_in_odd_pieces);
    tcase_add_test(tl, big_fragments_with_ping_between);
    tcase_add_test(tl, streamed_text_fails_fast);
    tcase_add_test(tl, whole_frame_is_zero_copy);
    tcase_add_test(tl, small_frame_waits_without_consuming);
    tcase_add_test(tl, callback_can_stop_the_feed);
    tcase_add_test(tl, reader_is_small_and_idle_owns_nothing);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
