/* handler_args.h — reading the JSON object a built-in job takes as input.
 *
 * Every function that can fail records a bad_request on the job naming the
 * field (so the handler just returns WSJOB_ERR) and returns WSJOB_ERR. */
#ifndef HANDLER_ARGS_H
#define HANDLER_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "wsjob.h"

/* Parses the job input as a JSON object whose keys are all in `known`
 * (NULL-terminated), so a misspelt optional field is an error rather than
 * silently ignored.  Returns a new reference the caller json_decref()s, or
 * NULL after recording bad_request. */
json_t *args_object(wsjob_ctx *ctx, const char *const known[]);

/* Integer field `name`, required, within [lo, hi]. */
int args_int(wsjob_ctx *ctx, const json_t *obj, const char *name,
             int64_t lo, int64_t hi, int64_t *out);

/* Integer field `name` within [lo, hi]; `def` when the field is absent. */
int args_int_opt(wsjob_ctx *ctx, const json_t *obj, const char *name,
                 int64_t lo, int64_t hi, int64_t def, int64_t *out);

/* String field `name`, required.  *out points into obj (valid while the
 * caller holds obj) and may contain NUL bytes: use *len. */
int args_string(wsjob_ctx *ctx, const json_t *obj, const char *name,
                const char **out, size_t *len);

#endif
