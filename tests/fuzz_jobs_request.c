/* fuzz_jobs_request.c — libFuzzer target for the /jobs request scan
 * (src/wire/jobs_request.c), differential against jansson: whatever the
 * scan accepts, jansson parses to an object with the same fields, and the
 * input's compact text is jansson's own. */
#include <assert.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/jobs_request.h"

static void same(const struct jr_field *a, const struct jr_field *b)
{
    assert(a->kind == b->kind);
    if (a->kind == JR_STRING)
        assert(a->n == b->n && memcmp(a->s, b->s, a->n) == 0);
    if (a->kind == JR_INTEGER)
        assert(a->i == b->i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jobs_request r, j;
    if (!jobs_request_scan((const char *)data, size, &r))
        return 0;
    json_error_t err;
    json_t *obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    assert(obj && json_is_object(obj));
    jobs_request_from_json(obj, &j);
    same(&r.op, &j.op);
    same(&r.id, &j.id);
    same(&r.type, &j.type);
    same(&r.input, &j.input);
    same(&r.input_b64, &j.input_b64);
    same(&r.timeout_ms, &j.timeout_ms);
    same(&r.detach, &j.detach);
    same(&r.handle, &j.handle);
    same(&r.from_seq, &j.from_seq);
    if (r.input.kind != JR_ABSENT && r.input.kind != JR_STRING)
        assert(r.input_json_len == j.input_json_len &&
               memcmp(r.input_json, j.input_json, r.input_json_len) == 0);
    jobs_request_free(&r);
    jobs_request_free(&j);
    json_decref(obj);
    return 0;
}
