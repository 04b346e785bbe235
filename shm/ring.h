/* ring.h — lock-free bounded rings in shared memory.
 *
 * Two kinds, both fixed capacity (a power of two), both lock-free on C11
 * atomics, both safe against a peer process dying at any instruction:
 *
 *  jobring   one producer, many consumers.  Carries non-zero 64-bit values
 *            (job handles).  A consumer's take moves the value from the slot
 *            into a claim word the consumer owns (in shared memory) before
 *            the slot is freed, so at every instant a taken value is in the
 *            ring or in a claim word, never in neither: whoever supervises a
 *            dead consumer finds what it held.
 *
 *  replyring many producers, one consumer.  Carries fixed-size records of up
 *            to SHM_REPLY_REC bytes.  The consumer is woken through an
 *            eventfd that producers write only when it is armed (about to
 *            sleep), so a busy consumer pays no syscall per record.
 *
 * And two byte arenas for payloads of any size (to at least 64 MiB):
 *
 *  bytering  one producer, one consumer: the producer reserves contiguous
 *            space, the consumer frees in the order of allocation.
 *  heap      one owner allocates and frees (in any order); other processes
 *            only read.  Metadata lives in the owner's private memory.
 *
 * Rings are initialised before fork, in the process that creates the
 * region.  Sleeping and waking (shm/eventcount.h) use membarrier(2) where
 * the kernel allows it, so that a producer's push makes no locked
 * instruction; SHM_BARRIER=symmetric in the environment at init time
 * chooses a locked add per push instead of a barrier IPI per consumer
 * going to sleep.
 *
 * Memory-ordering arguments are beside the loads and stores in
 * shm/jobring.c, replyring.c, bytering.c and eventcount.h. */
#ifndef WSJOBD_RING_H
#define WSJOBD_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- jobring: SPMC ---------------------------------------------------- */

struct shm_jobring;

size_t shm_jobring_size(uint32_t slots);                    /* bytes to carve */
struct shm_jobring *shm_jobring_init(void *mem, uint32_t slots); /* slots: power of two */

/* Producer only.  0, or -1 when full.  Makes a wake-up syscall only when a
 * consumer sleeps. */
int shm_jobring_push(struct shm_jobring *r, uint64_t value /* != 0 */);

/* Consumer `id` (1..65535, unique among live consumers) takes the oldest
 * value: it is stored in *claim (release) before its slot is freed, and also
 * returned in *value.  Returns 0, or -1 when empty.  The consumer clears
 * *claim itself when it has finished with the value. */
int shm_jobring_take(struct shm_jobring *r, uint16_t id,
                     _Atomic uint64_t *claim, uint64_t *value);

/* take, sleeping (futex) while the ring is empty, up to timeout_ms (< 0:
 * forever), after re-checking for a few microseconds (bounded: an idle
 * consumer costs no CPU).  0, or -1 on timeout or after
 * shm_jobring_wake_all. */
int shm_jobring_take_wait(struct shm_jobring *r, uint16_t id,
                          _Atomic uint64_t *claim, uint64_t *value,
                          int timeout_ms);

/* Wakes every sleeping consumer (shutdown, recycling). */
void shm_jobring_wake_all(struct shm_jobring *r);

/* After consumer `id` died: frees the slots it had claimed but not yet
 * released and returns their values in out (at most max).  The caller also
 * reads the dead consumer's claim word; a consumer that died between its two
 * stores leaves the same value in both, so count a value once.
 * Producer/owner only. */
size_t shm_jobring_recover(struct shm_jobring *r, uint16_t id,
                           uint64_t *out, size_t max);

uint32_t shm_jobring_depth(const struct shm_jobring *r);   /* values waiting */
uint32_t shm_jobring_capacity(const struct shm_jobring *r);

/* ---- replyring: MPSC -------------------------------------------------- */

#define SHM_REPLY_REC 120   /* record bytes per slot (slot = 128 with state) */

struct shm_replyring;

size_t shm_replyring_size(uint32_t slots);
/* efd: an eventfd (EFD_NONBLOCK) inherited by every producer. */
struct shm_replyring *shm_replyring_init(void *mem, uint32_t slots, int efd);

/* Producer `id` (1..65535).  Copies 1 <= len <= SHM_REPLY_REC bytes.  Sleeps
 * (futex) while the ring is full, up to timeout_ms (< 0: forever).  0, or -1
 * on timeout. */
int shm_replyring_push(struct shm_replyring *r, uint16_t id,
                       const void *rec, size_t len, int timeout_ms);

/* Consumer only.  Copies the oldest record into rec (SHM_REPLY_REC bytes)
 * and returns its length, or 0 when empty.  Slots left half-written by a
 * producer that was recovered are skipped. */
size_t shm_replyring_pop(struct shm_replyring *r, void *rec);

/* Consumer only, after draining: arms the eventfd wake-up.  Returns 1 when
 * armed with the ring still empty (safe to sleep), 0 when records arrived
 * meanwhile (drain again; it stays disarmed). */
int shm_replyring_arm(struct shm_replyring *r);

/* Consumer only: reads and discards the eventfd counter (for a level-
 * triggered watcher; an edge-triggered one need not call it). */
void shm_replyring_ack(struct shm_replyring *r);

/* After producer `id` died: its half-written slots become tombstones that
 * pop skips.  Consumer only. */
void shm_replyring_recover(struct shm_replyring *r, uint16_t id);

uint32_t shm_replyring_depth(const struct shm_replyring *r);
uint32_t shm_replyring_capacity(const struct shm_replyring *r);

/* ---- bytering: SPSC byte arena ---------------------------------------- */

struct shm_bytering;

size_t shm_bytering_size(size_t capacity);
struct shm_bytering *shm_bytering_init(void *mem, size_t capacity);

/* Producer: reserves len contiguous bytes (len <= capacity / 2), sleeping
 * while space is short up to timeout_ms.  Returns a position (>= 0) or -1 on
 * timeout.  The bytes are at shm_bytering_ptr(). */
int64_t shm_bytering_alloc(struct shm_bytering *r, size_t len, int timeout_ms);
void   *shm_bytering_ptr(struct shm_bytering *r, int64_t pos);

/* Consumer: everything allocated up to and including [pos, pos+len) is
 * free again.  Wakes a producer waiting for space. */
void shm_bytering_free(struct shm_bytering *r, int64_t pos, size_t len);

/* Owner, after the producer died: forget everything allocated. */
void shm_bytering_reset(struct shm_bytering *r);

/* ---- heap: owner-allocated, others read ------------------------------ */

struct shm_heap;   /* private to the owner (malloc'd), describes shared bytes */

struct shm_heap *shm_heap_new(void *base, size_t size);
void    shm_heap_delete(struct shm_heap *h);
int64_t shm_heap_alloc(struct shm_heap *h, size_t len);   /* offset or -1 */
void    shm_heap_free(struct shm_heap *h, int64_t off);
size_t  shm_heap_in_use(const struct shm_heap *h);

#endif
