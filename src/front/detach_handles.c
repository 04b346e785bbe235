/* detach_handles.c — a detached job's handle, and the table that finds the
 * job from it.
 *
 * A handle is the job's slot in the table (8 hex digits) followed by 128
 * bits from the kernel's random generator (32 hex digits): the slot finds
 * the record in one step, the random part is the capability.  Freed slots
 * are reused last-freed first, so the slot a new job takes was touched a
 * moment ago.  (A hash map from random handles cost a cache miss on every
 * insert and every removal: 9 % of the front's time with 300 000 jobs held,
 * 1 s TTLs.)  The slot tells a client roughly how many jobs are held, and
 * nothing about any other job's random part. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "front/detach_parts.h"

#define SLOT_DIGITS 8
#define FIRST_SLOTS 64

/* In time that does not depend on where two keys differ: a look-up's
 * timing must not tell a client how much of a guess was right. */
static int key_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < DETACH_KEY_LEN; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int detach_parse_handle(const char *h, size_t len, uint32_t *slot, uint8_t *key)
{
    if (len != DETACH_HANDLE_LEN)
        return -1;
    uint32_t s = 0;
    for (size_t i = 0; i < SLOT_DIGITS; i++) {
        int d = hex_digit(h[i]);
        if (d < 0)
            return -1;
        s = s << 4 | (uint32_t)d;
    }
    h += SLOT_DIGITS;
    for (size_t i = 0; i < DETACH_KEY_LEN; i++) {
        int hi = hex_digit(h[2 * i]), lo = hex_digit(h[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    *slot = s;
    return 0;
}

/* Four bytes (b0 in the low byte of v) as eight lowercase hex digits, in
 * one 64-bit word: the nibbles spread to a byte each, high nibble first,
 * then '0' added to all and 'a' - '0' - 10 more where the nibble is ten or
 * more.  Every detached submit formats 40 digits: 194 instructions a
 * handle (callgrind), 250 with a table look-up per byte. */
static void hex4(char *out, uint32_t v)
{
    uint64_t w = v;
    w = (w | w << 16) & UINT64_C(0x0000ffff0000ffff);
    w = (w | w << 8) & UINT64_C(0x00ff00ff00ff00ff);
    uint64_t nib = (w >> 4 & UINT64_C(0x000f000f000f000f)) | (w & UINT64_C(0x000f000f000f000f)) << 8;
    uint64_t ten = (nib + UINT64_C(0x0606060606060606)) >> 4 & UINT64_C(0x0101010101010101);
    uint64_t text = nib + UINT64_C(0x3030303030303030) + ten * ('a' - '0' - 10);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    text = __builtin_bswap64(text);   /* the first digit at the lowest address */
#endif
    memcpy(out, &text, sizeof text);
}

static uint32_t four(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

void detach_format_handle(uint32_t slot, const uint8_t *key, char *hex)
{
    _Static_assert(SLOT_DIGITS == 8 && DETACH_KEY_LEN % 4 == 0, "handle layout");
    hex4(hex, __builtin_bswap32(slot));   /* the slot's most significant byte first */
    hex += SLOT_DIGITS;
    for (size_t i = 0; i < DETACH_KEY_LEN; i += 4)
        hex4(hex + 2 * i, four(key + i));
    hex[2 * DETACH_KEY_LEN] = 0;
}

int detach_handle_valid(const char *handle, size_t len)
{
    uint32_t slot;
    uint8_t key[DETACH_KEY_LEN];
    return detach_parse_handle(handle, len, &slot, key) == 0;
}

/* A pool of DETACH_RAND_POOL bytes per system call.  Never blocks: before
 * the kernel's generator is ready it fails, and the submit is answered
 * busy.  A read cut short by a signal is used as far as it goes. */
int detach_random_key(struct detach_keys *k, uint8_t *key)
{
    if (k->left < DETACH_KEY_LEN) {
        ssize_t n = getrandom(k->pool, sizeof k->pool, GRND_NONBLOCK);
        if (n < DETACH_KEY_LEN)
            return -1;
        /* The unused bytes are kept at the pool's end. */
        memmove(k->pool + sizeof k->pool - (size_t)n, k->pool, (size_t)n);
        k->left = (size_t)n;
    }
    uint8_t *p = k->pool + sizeof k->pool - k->left;
    memcpy(key, p, DETACH_KEY_LEN);
    explicit_bzero(p, DETACH_KEY_LEN);   /* a handle given out lives only in its record */
    k->left -= DETACH_KEY_LEN;
    return 0;
}

/* ---- the table ------------------------------------------------------------- */

void dtab_free(struct detach_table *t)
{
    free(t->job);
    free(t->free);
    *t = (struct detach_table){ 0 };
}

static int grow(struct detach_table *t)
{
    uint32_t cap = t->cap ? t->cap * 2 : FIRST_SLOTS;
    if (cap <= t->cap)
        return -1;
    struct detach_job **job = realloc(t->job, cap * sizeof *job);
    if (!job)
        return -1;
    t->job = job;
    uint32_t *fr = realloc(t->free, cap * sizeof *fr);
    if (!fr)
        return -1;
    t->free = fr;
    /* Called with no slot free: the new ones, lowest on top. */
    for (uint32_t i = 0; i < cap - t->cap; i++) {
        t->free[i] = cap - 1 - i;
        t->job[t->cap + i] = NULL;
    }
    t->nfree = cap - t->cap;
    t->cap = cap;
    return 0;
}

int dtab_insert(struct detach_table *t, struct detach_job *dj)
{
    if (!t->nfree && grow(t) < 0)
        return -1;
    dj->slot = t->free[--t->nfree];
    t->job[dj->slot] = dj;
    /* The next slot was freed by an expiry a TTL ago: its entry is cold. */
    if (t->nfree)
        __builtin_prefetch(&t->job[t->free[t->nfree - 1]], 1);
    return 0;
}

void dtab_remove(struct detach_table *t, struct detach_job *dj)
{
    t->job[dj->slot] = NULL;
    t->free[t->nfree++] = dj->slot;
}

struct detach_job *dtab_find(const struct detach_table *t, uint32_t slot, const uint8_t *key)
{
    struct detach_job *dj = slot < t->cap ? t->job[slot] : NULL;
    return dj && key_equal(dj->key, key) ? dj : NULL;
}
