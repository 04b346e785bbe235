/* handler_args.c — JSON object inputs of the built-in job types. */
#include <inttypes.h>
#include <string.h>

#include "handlers/handler_args.h"

static int known_key(const char *key, const char *const known[])
{
    for (size_t i = 0; known[i]; i++)
        if (strcmp(key, known[i]) == 0)
            return 1;
    return 0;
}

json_t *args_object(wsjob_ctx *ctx, const char *const known[])
{
    size_t len;
    const void *in = wsjob_input(ctx, &len);
    json_error_t err;
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON and a hash input may hold it. */
    json_t *obj = json_loadb(in ? in : "", len,
                             JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!obj) {
        wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "input is not valid JSON: %s",
                   err.text);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "input must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        if (!known_key(key, known)) {
            wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "unknown field \"%s\"", key);
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static int int_value(wsjob_ctx *ctx, const json_t *v, const char *name,
                     int64_t lo, int64_t hi, int64_t *out)
{
    if (!json_is_integer(v))
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST,
                          "\"%s\" must be an integer", name);
    /* json_int_t is long long: as wide as int64_t on every target we build. */
    int64_t n = (int64_t)json_integer_value(v);
    if (n < lo || n > hi)
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST,
                          "\"%s\" must be %" PRId64 "..%" PRId64, name, lo, hi);
    *out = n;
    return WSJOB_OK;
}

int args_int(wsjob_ctx *ctx, const json_t *obj, const char *name,
             int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST,
                          "missing field \"%s\"", name);
    return int_value(ctx, v, name, lo, hi, out);
}

int args_int_opt(wsjob_ctx *ctx, const json_t *obj, const char *name,
                 int64_t lo, int64_t hi, int64_t def, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    if (!v) {
        *out = def;
        return WSJOB_OK;
    }
    return int_value(ctx, v, name, lo, hi, out);
}

int args_string(wsjob_ctx *ctx, const json_t *obj, const char *name,
                const char **out, size_t *len)
{
    const json_t *v = json_object_get(obj, name);
    if (!v)
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST,
                          "missing field \"%s\"", name);
    if (!json_is_string(v))
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST,
                          "\"%s\" must be a string", name);
    *out = json_string_value(v);
    *len = json_string_length(v);
    return WSJOB_OK;
}
