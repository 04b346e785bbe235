/* result_store_event.h — the kind of a stored event text, for followers
 * that deliver chunks once by seq. */
#ifndef WSJOBD_RESULT_STORE_EVENT_H
#define WSJOBD_RESULT_STORE_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum rs_event_kind {
    RS_EV_CHUNK,                   /* "event":"chunk" with a "seq" */
    RS_EV_FINAL,                   /* "event":"done" or "error" */
    RS_EV_OTHER                    /* progress, or anything else without a seq */
};

/* Reads only the object's top-level "event" and "seq" members; *seq is set
 * for a chunk.  Text that is not a JSON object is RS_EV_OTHER. */
enum rs_event_kind rs_event_kind(const char *text, size_t len, uint64_t *seq);

#endif
