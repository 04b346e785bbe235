/* cli_bench_jobs.c — what one job is in each bench mode: the frame that
 * submits it, and the check of the reply that ends it.
 *
 * Nothing here allocates per job.  Frames are written straight into the
 * connection's output buffer (header, payload, mask in place); replies are
 * checked where the reader delivered them.  JSON replies are not parsed
 * into a tree: the server's events are flat objects, so a scanner that
 * finds the few fields we need is enough, and it is what keeps the client
 * from being the bottleneck. */
#include <mbedtls/base64.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli_bench.h"

#define FREE_SLOT UINT64_MAX   /* seq of a json slot with no job */

uint64_t bench_rand(uint64_t *state)
{
    /* xorshift64*: masks need only be unpredictable to intermediaries
     * (RFC 6455 §10.3), not secret, and this costs a few cycles. */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int bench_jobs_init(struct bconn *c)
{
    const struct bench_cfg *cfg = c->w->cfg;
    unsigned depth = cfg->depth;
    c->seq = malloc(depth * sizeof *c->seq);
    c->sent_ns = malloc(depth * sizeof *c->sent_ns);
    c->out_cap = (size_t)depth * cfg->frame_max + 4 * WS_CONTROL_FRAME_MAX;
    c->out = malloc(c->out_cap);
    if (!c->seq || !c->sent_ns || !c->out)
        return -1;
    if (cfg->mode == BENCH_JSON) {
        if (!(c->free_slot = malloc(depth * sizeof *c->free_slot)))
            return -1;
        for (unsigned i = 0; i < depth; i++) {
            c->free_slot[i] = depth - 1 - i;
            c->seq[i] = FREE_SLOT;
        }
        c->nfree = depth;
    }
    if (cfg->generated) {
        if (!(c->tmpl = malloc(cfg->size)))
            return -1;
        for (size_t i = 0; i < cfg->size; i++)
            c->tmpl[i] = (uint8_t)bench_rand(&c->w->rng);
    }
    return 0;
}

void bench_jobs_free(struct bconn *c)
{
    free(c->seq);
    free(c->sent_ns);
    free(c->free_slot);
    free(c->out);
    free(c->tmpl);
    c->seq = NULL;
    c->sent_ns = NULL;
    c->free_slot = NULL;
    c->out = NULL;
    c->tmpl = NULL;
}

/* ---- sending ------------------------------------------------------------- */

/* Writes a frame header with a fresh mask at the end of out; returns where
 * the payload goes. */
static uint8_t *frame_start(struct bconn *c, uint8_t opcode, size_t len, uint8_t mask[4])
{
    uint32_t m = (uint32_t)bench_rand(&c->w->rng);
    memcpy(mask, &m, 4);
    c->out_len += ws_frame_header_write(c->out + c->out_len, true, opcode, len, mask);
    return c->out + c->out_len;
}

/* The generated message of job seq: the template with seq in front, so an
 * echo that comes back out of order or twice is told from the right one. */
static void put_generated(const struct bconn *c, uint8_t *p, uint64_t seq)
{
    size_t size = c->w->cfg->size;
    memcpy(p, c->tmpl, size);
    memcpy(p, &seq, size < sizeof seq ? size : sizeof seq);
}

static void fifo_push(struct bconn *c, uint64_t seq)
{
    uint32_t i = (c->head + c->count) % c->w->cfg->depth;
    c->seq[i] = seq;
    c->sent_ns[i] = c->w->now;
}

static void raw_job(struct bconn *c, uint64_t seq)
{
    const struct bench_cfg *cfg = c->w->cfg;
    uint8_t mask[4];
    size_t len = cfg->generated ? cfg->size : cfg->message_len;
    uint8_t *p = frame_start(c, cfg->generated ? WS_OP_BINARY : cfg->message_op, len, mask);
    if (cfg->generated)
        put_generated(c, p, seq);
    else
        memcpy(p, cfg->message, len);
    ws_mask(p, len, mask, 0);
    c->out_len += len;
    fifo_push(c, seq);
}

static void tcp_job(struct bconn *c, uint64_t seq)
{
    put_generated(c, c->out + c->out_len, seq);
    c->out_len += c->w->cfg->size;
    fifo_push(c, seq);
}

static void json_job(struct bconn *c, uint64_t seq)
{
    static const char head[] = "{\"op\":\"submit\",\"id\":\"";
    const struct bench_cfg *cfg = c->w->cfg;
    uint32_t slot = c->free_slot[--c->nfree];
    char id[48];
    int idlen = snprintf(id, sizeof id, "%u.%llu\"", slot, (unsigned long long)seq);
    size_t len = sizeof head - 1 + (size_t)idlen + cfg->json_tail_len;
    uint8_t mask[4];
    uint8_t *p = frame_start(c, WS_OP_TEXT, len, mask);
    memcpy(p, head, sizeof head - 1);
    memcpy(p + sizeof head - 1, id, (size_t)idlen);
    memcpy(p + sizeof head - 1 + idlen, cfg->json_tail, cfg->json_tail_len);
    ws_mask(p, len, mask, 0);
    c->out_len += len;
    c->seq[slot] = seq;
    c->sent_ns[slot] = c->w->now;
}

unsigned bench_jobs_fill(struct bconn *c)
{
    struct bench_worker *w = c->w;
    const struct bench_cfg *cfg = w->cfg;
    unsigned n = 0;
    if (w->stopping || c->state != BC_OPEN)
        return 0;
    /* TLS holds a record of the unsent bytes and wants them offered again
     * where they are: leave the buffer alone until they are gone. */
    if (c->s.tls && c->out_off < c->out_len)
        return 0;
    /* Written bytes are dropped first, so out only ever holds frames of
     * jobs in flight: depth of them fit, by the size of out. */
    if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    while (c->count < cfg->depth && c->quota > 0) {
        uint64_t seq = c->next_seq++;
        if (cfg->mode == BENCH_JSON)
            json_job(c, seq);
        else if (cfg->mode == BENCH_TCP)
            tcp_job(c, seq);
        else
            raw_job(c, seq);
        c->count++;
        if (--c->quota == 0)
            w->sending--;
        n++;
    }
    w->in_flight += n;
    w->st.sent += n;
    return n;
}

/* ---- replies ------------------------------------------------------------- */

void bench_complain(struct bench_worker *w, const char *fmt, ...)
{
    enum { MAX_COMPLAINTS = 10 };
    int n = atomic_fetch_add(&w->sh->complaints, 1);
    if (n > MAX_COMPLAINTS)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "wsjob: %s\n", n == MAX_COMPLAINTS ? "(more errors not shown)" : line);
}

/* The job sent at `sent` got its final reply. */
static void answered(struct bconn *c, int64_t sent)
{
    struct bench_worker *w = c->w;
    c->count--;
    w->in_flight--;
    w->st.replies++;
    w->st.last_reply_ns = w->now;
    if (sent >= w->measure_ns && sent < w->stop_ns) {
        hist_record(&w->st.lat_us, (uint64_t)(w->now - sent) / 1000);
        w->st.measured++;
    }
}

/* Checks an ordered reply (raw, tcp) against the oldest job in flight. */
static void ordered_reply(struct bconn *c, const uint8_t *data, size_t len)
{
    const struct bench_cfg *cfg = c->w->cfg;
    if (c->count == 0) {
        c->w->st.unexpected++;
        bench_complain(c->w, "connection %u: a reply with no job in flight", c->id);
        return;
    }
    uint64_t seq = c->seq[c->head];
    int64_t sent = c->sent_ns[c->head];
    c->head = (c->head + 1) % cfg->depth;
    if (cfg->generated) {
        size_t k = cfg->size < sizeof seq ? cfg->size : sizeof seq;
        if (len != cfg->size || memcmp(data, &seq, k) != 0) {
            c->w->st.unexpected++;
            bench_complain(c->w, "connection %u: reply to job %llu is missing, late or "
                           "duplicated", c->id, (unsigned long long)seq);
        } else if (memcmp(data + k, c->tmpl + k, len - k) != 0) {
            c->w->st.wrong++;
            bench_complain(c->w, "connection %u: echo of job %llu differs from what was sent",
                           c->id, (unsigned long long)seq);
        }
    } else if (cfg->has_expect &&
               (len != cfg->expect_len || memcmp(data, cfg->expect, len) != 0)) {
        c->w->st.wrong++;
        bench_complain(c->w, "connection %u: job %llu: output %.*s differs from --expect",
                       c->id, (unsigned long long)seq, (int)(len < 80 ? len : 80),
                       (const char *)data);
    }
    answered(c, sent);
}

size_t bench_jobs_tcp(struct bconn *c, const uint8_t *data, size_t len)
{
    size_t size = c->w->cfg->size, used = 0;
    for (; len - used >= size; used += size)
        ordered_reply(c, data + used, size);
    return used;
}

/* ---- JSON replies -------------------------------------------------------- */

/* True when the done event carries exactly the expected output. */
static bool output_ok(struct bench_worker *w, const struct bench_reply *r)
{
    const struct bench_cfg *cfg = w->cfg;
    size_t olen = 0;
    if (r->output.p) {
        if (!r->output.esc)
            return r->output.n == cfg->expect_len && memcmp(r->output.p, cfg->expect, cfg->expect_len) == 0;
        long n = bench_unescape(r->output.p, r->output.n, w->scratch, w->scratch_cap);
        return n == (long)cfg->expect_len && memcmp(w->scratch, cfg->expect, cfg->expect_len) == 0;
    }
    if (r->output_b64.p &&
        mbedtls_base64_decode(w->scratch, w->scratch_cap, &olen,
                              (const unsigned char *)r->output_b64.p, r->output_b64.n) == 0)
        return olen == cfg->expect_len && memcmp(w->scratch, cfg->expect, olen) == 0;
    return cfg->expect_len == 0 && !r->output_b64.p;
}

static bool is(const struct bench_span *s, const char *lit)
{
    return s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

/* The slot and seq in an id "SLOT.SEQ"; false when it is not one of ours. */
static bool parse_id(const struct bench_span *id, uint32_t depth, uint32_t *slot, uint64_t *seq)
{
    uint64_t v[2] = { 0, 0 };
    int part = 0;
    for (size_t i = 0; i < id->n; i++) {
        char ch = id->p[i];
        if (ch == '.' && part == 0 && i > 0)
            part = 1;
        else if (ch >= '0' && ch <= '9' && v[part] < UINT64_MAX / 10)
            v[part] = v[part] * 10 + (uint64_t)(ch - '0');
        else
            return false;
    }
    *slot = (uint32_t)v[0];
    *seq = v[1];
    return part == 1 && v[0] < depth;
}

static void json_reply(struct bconn *c, const uint8_t *data, size_t len)
{
    struct bench_worker *w = c->w;
    struct bench_reply r;
    uint32_t slot;
    uint64_t seq;
    if (bench_scan_reply((const char *)data, len, &r) < 0 || !r.event.p) {
        w->st.unexpected++;
        bench_complain(w, "connection %u: reply is not a JSON event: %.*s", c->id,
                       (int)(len < 120 ? len : 120), (const char *)data);
        return;
    }
    bool done = is(&r.event, "done"), error = is(&r.event, "error");
    if (!done && !error)
        return;   /* progress and chunks precede the final event */
    if (!r.id.p || !parse_id(&r.id, w->cfg->depth, &slot, &seq) || c->seq[slot] != seq) {
        w->st.unexpected++;
        if (error)
            w->st.job_errors++;
        bench_complain(w, "connection %u: final event for no job in flight: %.*s", c->id,
                       (int)(len < 160 ? len : 160), (const char *)data);
        return;
    }
    if (error) {
        w->st.job_errors++;
        if (!w->cfg->allow_errors)
            bench_complain(w, "job %u/%.*s: %.*s: %.*s", c->id, (int)r.id.n, r.id.p,
                           (int)r.code.n, r.code.p, (int)r.message.n, r.message.p);
    } else if (w->cfg->has_expect && !output_ok(w, &r)) {
        w->st.wrong++;
        bench_complain(w, "job %u/%.*s: output differs from --expect: %.*s", c->id,
                       (int)r.id.n, r.id.p, (int)(len < 160 ? len : 160), (const char *)data);
    }
    int64_t sent = c->sent_ns[slot];
    c->seq[slot] = FREE_SLOT;
    c->free_slot[c->nfree++] = slot;
    answered(c, sent);
}

void bench_jobs_reply(struct bconn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
    (void)opcode;
    if (c->w->cfg->mode == BENCH_JSON)
        json_reply(c, data, len);
    else
        ordered_reply(c, data, len);
}

void bench_jobs_lost(struct bconn *c)
{
    struct bench_worker *w = c->w;
    w->st.missing += c->count;
    w->in_flight -= c->count;
    c->count = 0;
    if (c->quota > 0)
        w->sending--;
    c->quota = 0;
}
