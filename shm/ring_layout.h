/* ring_layout.h — how the rings of ring.h lie in shared memory, and the
 * slot state word they share.  Private to shm/ (and to the white-box tests,
 * which forge the states a dead peer leaves behind).
 *
 * Slot state word (64 bits):
 *
 *     63 ............... 19 |   18  | 17 16 | 15 ........ 0
 *     position (low 45 bits)  armed   kind    id, or length
 *
 * A slot at index i holds positions i, i + cap, i + 2 cap, ...; the state
 * says which of them it is at and what it holds.  Positions are compared by
 * equality only, so the 64-bit position counter losing its top 19 bits in
 * the word is harmless: a stale state could match only if the ring advanced
 * by a multiple of 2^45 positions while one process sat between reading the
 * state and its compare-and-swap (four days at 10^8 pushes per second).
 *
 * `armed` (replyring only) is set by the consumer on the slot at its tail
 * before it sleeps; whoever publishes that slot sees it in the value its
 * RMW replaces, and writes the eventfd. */
#ifndef WSJOBD_RING_LAYOUT_H
#define WSJOBD_RING_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "eventcount.h"
#include "ring.h"

#define SLOT_POS_SHIFT  19
#define SLOT_ARMED      (UINT64_C(1) << 18)
#define SLOT_KIND_SHIFT 16
#define SLOT_POS_MASK   ((UINT64_C(1) << (64 - SLOT_POS_SHIFT)) - 1)

enum slot_kind {
    SLOT_EMPTY = 0, /* free for the producer at this position */
    SLOT_FULL  = 1, /* holds the value (jobring) or record (replyring) */
    SLOT_BUSY  = 2, /* jobring: claimed by consumer id; replyring: producer
                       id is writing the record */
    SLOT_TOMB  = 3, /* replyring: the writer died; the consumer skips it */
};

static inline uint64_t slot_state(uint64_t pos, enum slot_kind kind, uint16_t low)
{
    return (pos & SLOT_POS_MASK) << SLOT_POS_SHIFT |
           (uint64_t)kind << SLOT_KIND_SHIFT | low;
}

static inline int slot_at(uint64_t state, uint64_t pos)
{
    return state >> SLOT_POS_SHIFT == (pos & SLOT_POS_MASK);
}

static inline int slot_armed(uint64_t state)
{
    return (state & SLOT_ARMED) != 0;
}

static inline enum slot_kind slot_kind(uint64_t state)
{
    return (enum slot_kind)((state >> SLOT_KIND_SHIFT) & 3u);
}

static inline uint16_t slot_low(uint64_t state)
{
    return (uint16_t)(state & 0xffffu);
}

/* ---- jobring --------------------------------------------------------- */

struct job_slot {
    _Atomic uint64_t state; /* EMPTY(p) / FULL(p) / BUSY(p, consumer id) */
    _Atomic uint64_t value; /* written by the producer before FULL(p);
                               stable until the slot is EMPTY(p + cap) */
};

struct shm_jobring {
    uint32_t capacity;               /* slots, a power of two */
    uint32_t mask;                   /* capacity - 1 */
    /* Producer line: written by the producer only, read for depth. */
    alignas(64) _Atomic uint64_t head;
    /* Consumer line: where a take starts looking.  Stored (plainly) by
     * each claimer as its position + 1; may lag behind claims, never
     * ahead of an unclaimed value; takes walk over what it lags. */
    alignas(64) _Atomic uint64_t tail;
    /* Sleep line: consumers waiting for a value, and the wake_all count. */
    alignas(64) struct shm_evc ready;
    _Atomic uint32_t wake_gen;       /* bumped by shm_jobring_wake_all */
    alignas(64) _Atomic uint8_t sleeping[SHM_EVC_IDS]; /* per consumer id */
    alignas(64) struct job_slot slots[];
};

/* ---- replyring ------------------------------------------------------- */

/* One record per 128 bytes, two cache lines: the state word shares its line
 * with the first 56 record bytes, so a short record costs one line. */
struct reply_slot {
    _Atomic uint64_t state; /* EMPTY(p) / BUSY(p, producer id) /
                               FULL(p, length) / TOMB(p); EMPTY and BUSY
                               may carry SLOT_ARMED */
    unsigned char rec[SHM_REPLY_REC];
};

struct shm_replyring {
    uint32_t capacity;               /* slots, a power of two */
    uint32_t mask;
    int efd;                         /* eventfd, same number in every process */
    /* Producers' line: the next position to write (advanced by CAS, with
     * help). */
    alignas(64) _Atomic uint64_t head;
    /* Consumer's line: written by the consumer only; read for depth and by
     * producers deciding whether to sleep. */
    alignas(64) _Atomic uint64_t tail;
    /* Producers waiting for a free slot. */
    alignas(64) struct shm_evc space;
    alignas(64) _Atomic uint8_t waiting[SHM_EVC_IDS]; /* per producer id */
    alignas(64) struct reply_slot slots[];
};

/* ---- bytering -------------------------------------------------------- */

struct shm_bytering {
    uint64_t capacity;               /* bytes, a multiple of 64 */
    /* Producer line: end of the last allocation (monotonic byte position). */
    alignas(64) _Atomic uint64_t head;
    /* Consumer line: everything below is free (monotonic byte position). */
    alignas(64) _Atomic uint64_t tail;
    /* The producer, waiting for space: it sleeps until tail >= want. */
    alignas(64) struct shm_evc space;
    _Atomic uint64_t want;
    alignas(64) unsigned char data[];
};

#endif
