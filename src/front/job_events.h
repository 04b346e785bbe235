/* job_events.h — the JSON text of each event a job sends (SPEC §5), built
 * by hand into a jout.  With an id the text is what a /jobs client gets;
 * without one (id NULL) it is the form a detached job keeps and mirrors
 * (`{"event":"chunk","seq":3,...}`), which jev_id_prefix later turns into the
 * first by putting `{"id":ID,` in place of the opening brace.
 *
 * Every function appends to j; the caller resets it first. */
#ifndef WSJOBD_JOB_EVENTS_H
#define WSJOBD_JOB_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/pipeline.h"
#include "wire/json_out.h"

/* Progress reaches a client at most ~10 times a second per job (SPEC §5). */
#define JEV_PROGRESS_MIN_NS 100000000

void jev_chunk(struct jout *j, const char *id, size_t idlen, uint64_t seq,
               const uint8_t *data, size_t len);
void jev_progress(struct jout *j, const char *id, size_t idlen, uint64_t done, uint64_t total);
/* An output too large to encode in memory becomes a too_large error. */
void jev_done(struct jout *j, const char *id, size_t idlen, const uint8_t *data, size_t len,
              int has_output, uint64_t queued_us, uint64_t run_us);
void jev_error(struct jout *j, const char *id, size_t idlen, enum job_error code,
               const char *msg, size_t msglen);
/* {"event":"accepted","handle":H} into buf (JEV_ACCEPTED_MAX bytes do for
 * any handle of up to 32 characters); its length, or 0 if it did not fit.
 * A buffer of its own: it may be needed while a jout holds another event. */
#define JEV_ACCEPTED_MAX 80
size_t jev_accepted(char *buf, size_t cap, const char *handle, size_t hlen);
/* For an event kept without an id: the bytes that go in place of its
 * opening brace to make the /jobs text, `{"id":ID,` when more of it
 * follows, `{"id":ID}` for `{}`.  buf holds JEV_ID_PREFIX_MAX(idlen). */
#define JEV_ID_PREFIX_MAX(idlen) (6 + 6 * (idlen) + 2 + 1)
size_t jev_id_prefix(char *buf, const char *id, size_t idlen, int more);

#endif
