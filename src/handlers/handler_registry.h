/* handler_registry.h — the job types this daemon knows: the built-ins and
 * those of plug-ins loaded with --handlers, indexed in one table that is
 * complete before the first fork, so a type index means the same handler in
 * every process. */
#ifndef WSJOBD_HANDLER_REGISTRY_H
#define WSJOBD_HANDLER_REGISTRY_H

#include <stddef.h>

#include "wsjob.h"

#define REGISTRY_MAX 256

/* Registers the built-ins, then every plug-in in paths.  0, or -1 with a
 * reason naming the file. */
int registry_load(char *const *paths, size_t npaths, char *err, size_t errlen);

/* Adds one job type after registry_load (the Python and executable types
 * of the options), before the first fork.  h->name must outlive the
 * process.  0, or -1 with a reason that begins with `origin`. */
int registry_add(const struct wsjob_handler *h, const char *origin, char *err, size_t errlen);

/* Type index of name, or -1. */
int registry_find(const char *name, size_t len);
const struct wsjob_handler *registry_get(int type);
size_t registry_count(void);

#endif
