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

/* Two digits a byte from one table: every detached submit formats one. */
static void put_byte(char *hex, uint8_t b)
{
    static const char pairs[] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    memcpy(hex, pairs + 2 * b, 2);
}

void detach_format_handle(uint32_t slot, const uint8_t *key, char *hex)
{
    for (int i = SLOT_DIGITS / 2 - 1; i >= 0; i--, slot >>= 8)
        put_byte(hex + 2 * i, (uint8_t)slot);
    hex += SLOT_DIGITS;
    for (size_t i = 0; i < DETACH_KEY_LEN; i++)
        put_byte(hex + 2 * i, key[i]);
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
