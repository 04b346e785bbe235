/* json_out.h — builds the server's JSON events into one growable buffer.
 * The front formats every event by hand: it knows exactly which fields it
 * writes, and escaping straight into the output avoids building a tree per
 * reply. */
#ifndef WSJOBD_JSON_OUT_H
#define WSJOBD_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jout {
    char  *p;      /* malloc'd, owned; NUL-terminated after every append */
    size_t len, cap;
    int    oom;    /* an append failed: the text is incomplete */
};

void jout_reset(struct jout *j);
void jout_free(struct jout *j);
void jout_raw(struct jout *j, const char *s, size_t n);
/* NUL-terminated raw; inline, so a literal's length is known at compile time. */
static inline void jout_lit(struct jout *j, const char *s) { jout_raw(j, s, strlen(s)); }
void jout_str(struct jout *j, const void *s, size_t n); /* quoted, escaped (valid UTF-8 in) */
void jout_b64(struct jout *j, const void *s, size_t n); /* quoted base64 */
/* s quoted and escaped as jout_str does, at dst, which has room for
 * jout_str_size(s, n) bytes; returns how many it wrote (no NUL). */
size_t json_quote(char *dst, const void *s, size_t n);
/* What jout_str and jout_b64 would append for n bytes, quotes included. */
size_t jout_str_size(const void *s, size_t n);
size_t jout_b64_size(size_t n);
void jout_u64(struct jout *j, uint64_t v);

#endif
