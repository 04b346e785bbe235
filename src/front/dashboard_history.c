/* dashboard_history.c — see dashboard_history.h.
 *
 * A sample holds rates (counts over the second just ended, from the
 * front's running totals) and depths (the rings as they stand at the
 * sample).  300 samples of 8 numbers: 19 KiB, fixed. */
#include "front/dashboard_history.h"

#include <string.h>

#include "front/front.h"
#include "pipeline/dispatch.h"
#include "pipeline/pipeline.h"

#define PERIOD_NS 1000000000ll

enum { F_T, F_SUBMITTED, F_DONE, F_FAILED, F_BUSY, F_CPU, F_IO, F_REPLY, F_COUNT };

static const char *const field_names[F_COUNT] = {
    "t", "submitted", "done", "failed", "busy", "cpu", "io", "reply",
};

static struct {
    uint64_t s[HISTORY_SAMPLES][F_COUNT];
    uint64_t seq;                  /* samples taken; the newest is s[(seq - 1) % N] */
    int64_t  next_ns;              /* when the next is due; 0: never sampled */
    uint64_t prev[F_COUNT];        /* the totals at the last sample */
} h;

static void totals(struct front *f, uint64_t *t)
{
    const struct dispatch_stats *st = dispatch_stats(f->d);
    t[F_SUBMITTED] = st->submitted;
    t[F_DONE] = st->done;
    t[F_FAILED] = st->failed;
    t[F_BUSY] = f->busy_total;
}

void history_tick(struct front *f, int64_t now_ns)
{
    if (h.next_ns == 0) {
        totals(f, h.prev);   /* the first second starts here */
        h.next_ns = now_ns + PERIOD_NS;
        return;
    }
    if (now_ns < h.next_ns)
        return;
    /* A loop stalled past a period yields one sample, not a burst: the
     * rates of the gap go to it. */
    h.next_ns += PERIOD_NS;
    if (h.next_ns <= now_ns)
        h.next_ns = now_ns + PERIOD_NS;
    uint64_t cur[F_COUNT] = { 0 };
    totals(f, cur);
    uint64_t *s = h.s[h.seq % HISTORY_SAMPLES];
    s[F_T] = (uint64_t)(now_ns - f->started_ns) / 1000000000;
    for (int i = F_SUBMITTED; i <= F_BUSY; i++) {
        s[i] = cur[i] - h.prev[i];
        h.prev[i] = cur[i];
    }
    s[F_CPU] = shm_jobring_depth(f->p->ring[CLASS_CPU]);
    s[F_IO] = shm_jobring_depth(f->p->ring[CLASS_IO]);
    s[F_REPLY] = shm_replyring_depth(f->p->replies);
    h.seq++;
}

void history_fill_quiet(struct front *f, int64_t now_ns)
{
    if (h.next_ns == 0)
        return;
    for (int n = 0; h.next_ns <= now_ns && n < HISTORY_SAMPLES; n++) {
        uint64_t *s = h.s[h.seq % HISTORY_SAMPLES];
        memset(s, 0, sizeof h.s[0]);
        s[F_T] = (uint64_t)(h.next_ns - f->started_ns) / 1000000000;
        h.next_ns += PERIOD_NS;
        h.seq++;
    }
    if (h.next_ns <= now_ns)
        h.next_ns = now_ns + PERIOD_NS;
}

uint64_t history_seq(void)
{
    return h.seq;
}

void history_fields_json(struct jout *j)
{
    jout_lit(j, "[");
    for (int i = 0; i < F_COUNT; i++) {
        if (i)
            jout_lit(j, ",");
        jout_str(j, field_names[i], strlen(field_names[i]));
    }
    jout_lit(j, "]");
}

static void sample_json(struct jout *j, const uint64_t *s)
{
    jout_lit(j, "[");
    for (int i = 0; i < F_COUNT; i++) {
        if (i)
            jout_lit(j, ",");
        jout_u64(j, s[i]);
    }
    jout_lit(j, "]");
}

void history_json(struct jout *j)
{
    uint64_t n = h.seq < HISTORY_SAMPLES ? h.seq : HISTORY_SAMPLES;
    jout_lit(j, "[");
    for (uint64_t k = h.seq - n; k < h.seq; k++) {
        if (k != h.seq - n)
            jout_lit(j, ",");
        sample_json(j, h.s[k % HISTORY_SAMPLES]);
    }
    jout_lit(j, "]");
}

void history_last_json(struct jout *j)
{
    if (!h.seq)
        jout_lit(j, "null");
    else
        sample_json(j, h.s[(h.seq - 1) % HISTORY_SAMPLES]);
}
