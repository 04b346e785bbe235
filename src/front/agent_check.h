/* agent_check.h — HAProxy's agent check (--agent-listen): a TCP port on
 * the front's loop where every connection is answered one ASCII line, how
 * much more work this instance wants ("ready 80%") or that it wants none
 * ("drain"), and closed.  What the peer sends (agent-send) is ignored.
 *
 * The answer, from the instance's load L (a share, 0 to 1):
 *
 *   L       = the largest of: cpu ring depth / capacity, io ring depth /
 *             capacity (jobs waiting, not running), open client
 *             connections / --max-connections
 *   "drain" while shutting down (SIGTERM), and from the moment L reaches
 *             90% until it falls below 75% again (hysteresis: a load
 *             hovering at the mark does not flap the server in and out)
 *   "ready N%" otherwise, N = 100 x (1 - L) to the nearest whole: 10 to
 *             100, since from L = 90% on the answer is "drain"
 *
 * HAProxy takes N as a share of the server's configured weight (so give
 * the server line `weight 100`: 1 x 80% rounds to 0, which is a drain). */
#ifndef WSJOBD_AGENT_CHECK_H
#define WSJOBD_AGENT_CHECK_H

#include <stddef.h>
#include <stdint.h>

struct front;
struct netaddr;
struct agent_check;

/* What the answer is made from: a snapshot the loop takes per connection. */
struct agent_load {
    uint32_t depth[2], capacity[2];   /* cpu and io job rings */
    uint64_t open, max_connections;   /* client connections */
    int      shutting_down;
};

/* Writes the answer for load into buf (room for AGENT_LINE_MAX bytes),
 * newline included, and returns its length.  *high is the hysteresis
 * state: set when the load reached the high-water mark, cleared once it is
 * below the low one; keep it between calls. */
#define AGENT_LINE_MAX 16
size_t agent_answer(const struct agent_load *load, int *high, char *buf);

/* Binds the agent port (not yet accepting).  NULL with a reason. */
struct agent_check *agent_check_open(struct front *f, const struct netaddr *a,
                                     char *err, size_t errlen);

/* Starts answering (once the workers are up, with the main listeners). */
void agent_check_enable(struct agent_check *a);

/* Closes the port.  Call after linger_end_all(): lingering answers
 * report back to a. */
void agent_check_close(struct agent_check *a);

/* For /stats and /metrics; a may be NULL (no --agent-listen). */
struct agent_counts {
    int      port;                   /* 0: no agent port */
    uint64_t answers_total;          /* lines sent */
    uint64_t drain_total;            /* of which "drain" */
    unsigned lingering;              /* answered, waiting for the peer's close */
    unsigned weight;                 /* N of the last "ready N%"; 0 after "drain" */
    char     last[AGENT_LINE_MAX];   /* the last line, no newline; "" before any */
};
void agent_check_counts(const struct agent_check *a, struct agent_counts *out);

#endif
