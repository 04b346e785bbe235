/* detach_events.c — one detached job's events: the store is its dispatch
 * sink, keeps what detach.h says, passes each event to the mirror and to
 * the client following it, and paces the job's stream by that client
 * alone. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "front/detach_parts.h"
#include "front/job_events.h"

static const char superseded_text[] =
    "{\"event\":\"error\",\"code\":\"superseded\",\"message\":\"a newer attach follows this job\"}";
/* The final event when no memory is left to keep the real one. */
static const char lost_text[] =
    "{\"event\":\"error\",\"code\":\"handler_error\",\"message\":\"out of memory keeping the result\"}";

static struct jout *event_text(struct detach_store *ds)
{
    jout_reset(&ds->ev);
    return &ds->ev;
}

/* ---- kept chunks -------------------------------------------------------- */

static void drop_oldest(struct detach_job *dj)
{
    struct detach_kept *k = dj->kept_head;
    dj->kept_head = k->next;
    if (!dj->kept_head)
        dj->kept_tail = NULL;
    dj->kept_bytes -= k->len;
    dj->ds->st.kept_bytes -= k->len;
    free(k);
}

void detach_drop_kept(struct detach_job *dj)
{
    while (dj->kept_head)
        drop_oldest(dj);
}

/* Kept whole or not at all; past the buffer the oldest go first, so a
 * chunk larger than the whole buffer is dropped at once. */
static void keep(struct detach_job *dj, uint64_t seq, const char *json, size_t len)
{
    struct detach_store *ds = dj->ds;
    struct detach_kept *k = malloc(sizeof *k + len);
    if (!k) {
        ds->st.dropped_events_total++;
        return;
    }
    k->next = NULL;
    k->seq = seq;
    k->len = len;
    memcpy(k->json, json, len);
    if (dj->kept_tail)
        dj->kept_tail->next = k;
    else
        dj->kept_head = k;
    dj->kept_tail = k;
    dj->kept_bytes += len;
    ds->st.kept_bytes += len;
    while (dj->kept_head && dj->kept_bytes > ds->prm.buffer) {
        drop_oldest(dj);
        ds->st.dropped_events_total++;
    }
}

/* ---- the follower ---------------------------------------------------------- */

/* Nobody reads for the follower any more: nothing it had unread may hold
 * the stream back. */
static void release_stream(struct detach_job *dj)
{
    if (dj->unacked && dj->running)
        dispatch_ack(dj->ds->d, dj->job, dj->unacked);
    dj->unacked = 0;
}

static void supersede(struct detach_job *dj)
{
    detach_give_accepted(dj);
    detach_follow_fn *fn = dj->follow;
    if (!fn)
        return;
    void *arg = dj->farg;
    dj->follow = NULL;
    dj->farg = NULL;
    release_stream(dj);
    dj->ds->st.superseded_total++;
    struct detach_text ev = { superseded_text, sizeof superseded_text - 1 };
    fn(arg, &ev, 1, 1);
}

int detach_attach(struct detach_job *dj, uint64_t from_seq, detach_follow_fn *fn, void *arg)
{
    dj->ds->st.attach_total++;
    supersede(dj);
    /* Replay and registration happen in one turn of the loop: no live
     * event can fall between them, so the seqs run on without a gap or a
     * repeat (beyond what the buffer dropped). */
    for (struct detach_kept *k = dj->kept_head; k; k = k->next)
        if (k->seq >= from_seq)
            fn(arg, &(struct detach_text){ k->json, k->len }, 1, 0);
    if (!dj->running) {
        fn(arg, &(struct detach_text){ dj->final, dj->final_len }, 1, 1);
        return 0;
    }
    if (dj->progress_len)
        fn(arg, &(struct detach_text){ dj->text, dj->progress_len }, 1, 0);
    dj->follow = fn;
    dj->farg = arg;
    return 1;
}

void detach_unfollow(struct detach_job *dj, void *arg)
{
    if (!dj->follow || dj->farg != arg)
        return;
    detach_drop_accepted(dj);
    dj->follow = NULL;
    dj->farg = NULL;
    release_stream(dj);
}

void detach_drained(struct detach_job *dj)
{
    release_stream(dj);
}

/* ---- events from dispatch ---------------------------------------------------- */

static void mirror_event(struct detach_job *dj, uint64_t seq, const char *json, size_t len)
{
    struct detach_store *ds = dj->ds;
    if (!ds->has_mirror)
        return;
    char hex[DETACH_HANDLE_LEN + 1];
    detach_handle(dj, hex);
    ds->m.event(ds->m.arg, hex, seq, json, len, ds->prm.buffer);
}

static void on_chunk(void *cookie, uint32_t job, const uint8_t *data, size_t len)
{
    struct detach_job *dj = cookie;
    struct detach_store *ds = dj->ds;
    detach_give_accepted(dj);
    struct jout *j = event_text(ds);
    uint64_t seq = dj->next_seq++;
    jev_chunk(j, NULL, 0, seq, data, len);
    int over = 0;
    if (!j->oom) {
        keep(dj, seq, j->p, j->len);
        mirror_event(dj, seq, j->p, j->len);
        if (dj->follow)
            over = dj->follow(dj->farg, &(struct detach_text){ j->p, j->len }, 1, 0);
    }
    if (over)
        dj->unacked += len;
    else
        dispatch_ack(ds->d, job, len);
}

static void on_progress(void *cookie, uint32_t job, uint64_t done, uint64_t total)
{
    struct detach_job *dj = cookie;
    struct detach_store *ds = dj->ds;
    (void)job;
    int64_t now = shm_now_ns();
    if (now - dj->last_progress_ns < JEV_PROGRESS_MIN_NS)
        return;
    dj->last_progress_ns = now;
    detach_give_accepted(dj);
    struct jout *j = event_text(ds);
    jev_progress(j, NULL, 0, done, total);
    if (j->oom || j->len > sizeof dj->text)
        return;
    memcpy(dj->text, j->p, j->len);
    dj->progress_len = (uint8_t)j->len;
    mirror_event(dj, dj->next_seq, j->p, j->len);
    if (dj->follow)
        dj->follow(dj->farg, &(struct detach_text){ j->p, j->len }, 1, 0);
}

/* The one final answer dispatch gives the job: kept for the TTL, written
 * through the mirror, and the follower's last event. */
static void finish(struct detach_job *dj, struct jout *j)
{
    struct detach_store *ds = dj->ds;
    /* Owed still, `accepted` leaves with the final event, in one write. */
    char accepted[JEV_ACCEPTED_MAX];
    size_t alen = detach_take_accepted(dj, accepted);
    char *copy = j->oom || j->len <= sizeof dj->text ? NULL : malloc(j->len);
    if (!j->oom && j->len <= sizeof dj->text) {
        memcpy(dj->text, j->p, j->len);
        dj->final = dj->text;
        dj->final_len = j->len;
    } else if (copy) {
        memcpy(copy, j->p, j->len);
        dj->final = copy;
        dj->final_len = j->len;
        dj->final_owned = 1;
    } else {
        dj->final = (char *)lost_text;
        dj->final_len = sizeof lost_text - 1;
    }
    dj->running = 0;
    dj->unacked = 0;
    dj->progress_len = 0;
    detach_finished(dj);
    if (ds->has_mirror) {
        char hex[DETACH_HANDLE_LEN + 1];
        detach_handle(dj, hex);
        ds->m.final(ds->m.arg, hex, dj->final, dj->final_len);
    }
    detach_follow_fn *fn = dj->follow;
    void *arg = dj->farg;
    dj->follow = NULL;
    dj->farg = NULL;
    struct detach_text ev[2] = { { accepted, alen }, { dj->final, dj->final_len } };
    if (fn)
        fn(arg, alen ? ev : ev + 1, alen ? 2 : 1, 1);
}

static void on_done(void *cookie, uint32_t job, const uint8_t *data, size_t len,
                    int has_output, uint64_t queued_us, uint64_t run_us)
{
    struct detach_job *dj = cookie;
    (void)job;
    struct jout *j = event_text(dj->ds);
    jev_done(j, NULL, 0, data, len, has_output, queued_us, run_us);
    finish(dj, j);
}

static void on_error(void *cookie, uint32_t job, enum job_error code, const char *msg, size_t len)
{
    struct detach_job *dj = cookie;
    (void)job;
    struct jout *j = event_text(dj->ds);
    jev_error(j, NULL, 0, code, msg, len);
    finish(dj, j);
}

const struct job_sink detach_sink = {
    .chunk = on_chunk, .progress = on_progress, .done = on_done, .error = on_error,
};
