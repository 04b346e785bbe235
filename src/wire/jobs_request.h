/* jobs_request.h — the fields of one /jobs request (SPEC §5), read from
 * its JSON text.
 *
 * Nearly every request a client sends has one shape: a flat object of the
 * protocol's own keys, plain strings, integers, booleans and an input that
 * is a plain string or a small JSON value.  jobs_request_scan reads that
 * shape straight from the text, in one pass, allocating only to take the
 * whitespace out of a JSON input that has some; for
 * anything else (an escape in a string, a real number, an unknown key, a
 * syntax error...) it declines, and jobs_request_from_json reads the same
 * fields from jansson's parse, which also gives the error message.  Where
 * the scan accepts, both give the same fields, byte for byte: that is the
 * contract the unit test checks on generated requests.
 *
 * jansson's parse was most of the front's work per job: ~14 000
 * instructions for an 80-byte submit (callgrind), against a few hundred
 * for the scan. */
#ifndef WSJOBD_JOBS_REQUEST_H
#define WSJOBD_JOBS_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum jr_kind {
    JR_ABSENT = 0,
    JR_STRING,      /* s, n: the decoded bytes */
    JR_INTEGER,     /* i */
    JR_TRUE,
    JR_FALSE,
    JR_NULL,
    JR_OTHER,       /* an object, an array or a real */
};

struct jr_field {
    enum jr_kind kind;
    const char  *s;
    size_t       n;
    int64_t      i;
};

struct jobs_request {
    struct jr_field op, id, type, input, input_b64, timeout_ms, detach, handle, from_seq;
    /* The input as a handler receives it when it is not a string: its
     * compact JSON text (jansson's json_dumps, JSON_COMPACT).  Strings are
     * not NUL-terminated: use the lengths. */
    const char *input_json;
    size_t      input_json_len;
    char       *owned;      /* malloc'd text the fields point into, or NULL */
};

/* 1: the request has the common shape and *r holds its fields (pointing
 * into text, or into r->owned); 0: not that shape, *r is untouched.
 * text is the whole message. */
int jobs_request_scan(const char *text, size_t len, struct jobs_request *r);

/* The fields of a parsed object; r's strings point into obj (keep it until
 * r is done with).  A non-string input that could not be encoded (no
 * memory) leaves input_json NULL. */
void jobs_request_from_json(json_t *obj, struct jobs_request *r);

void jobs_request_free(struct jobs_request *r);

#endif
