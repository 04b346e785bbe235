/* crash_retry.c — a job whose worker died (SPEC §2): run it again on
 * another worker up to crash_retries times, so one crash loses nothing,
 * then answer it worker_crashed, so a poison job cannot kill workers for
 * ever.  The supervisor finds what the dead worker held (its claim word,
 * ring slots it had claimed) and calls dispatch_worker_lost for each. */
#include "pipeline/dispatch_parts.h"

void dispatch_worker_lost(struct dispatch *d, uint64_t h)
{
    uint32_t idx = handle_index(h);
    if (idx >= d->p->njobs)
        return;
    struct job_rec *r = &d->recs[idx];
    if (r->state != REC_LIVE || r->gen != handle_gen(h))
        return;
    if (!r->sink) {
        /* Answered already (cancel, timeout): nobody waits for a re-run. */
        dispatch_release(d, r);
        return;
    }
    if (r->retries < d->prm.crash_retries) {
        r->retries++;
        /* A new generation: anything the dead worker left in the reply ring
         * for this job is now recognisably stale. */
        r->gen++;
        if (dispatch_enqueue(d, r) == 0) {
            d->st.retried++;
            return;
        }
    }
    d->st.crashed++;
    dispatch_answer_error(d, r, JE_WORKER_CRASHED,
                          r->retries ? "the worker running this job died on every try"
                                     : "the worker running this job died");
    dispatch_release(d, r);
}
