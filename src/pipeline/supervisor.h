/* supervisor.h — forks the workers, notices at once when one dies (SIGCHLD
 * on the front's loop), hands the jobs it held back to dispatch, and forks a
 * replacement, with backoff when a worker keeps dying young. */
#ifndef WSJOBD_SUPERVISOR_H
#define WSJOBD_SUPERVISOR_H

#include <stdint.h>

#include "pipeline/pipeline.h"
#include "worker/worker.h"

struct event_base;
struct dispatch;
struct supervisor;

struct supervisor *supervisor_start(struct event_base *base, struct pipeline *p,
                                    struct dispatch *d, const struct worker_limits *lim,
                                    char *err, size_t errlen);
void supervisor_set_limits(struct supervisor *s, const struct worker_limits *lim);

/* 1 when at least one worker of `cls` is alive. */
int supervisor_alive(const struct supervisor *s, enum worker_class cls);
uint64_t supervisor_restarts(const struct supervisor *s);

/* Stops respawning, asks every worker to exit, and reaps them: SIGTERM,
 * then SIGKILL after timeout_ms. */
void supervisor_stop(struct supervisor *s, int timeout_ms);
void supervisor_free(struct supervisor *s);

#endif
