/* shm.h — the shared-memory region and the futex wait/wake that the rings use.
 *
 * The region is one anonymous MAP_SHARED mapping made before fork() and
 * inherited by every worker, so there is no name in the file system to leak
 * and no fixed name that two instances on one host could collide on.
 * Nothing in shm/ knows about libevent, WebSockets or jobs. */
#ifndef WSJOBD_SHM_H
#define WSJOBD_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC          0x77736a6264u /* "wsjbd" */
#define SHM_LAYOUT_VERSION 1u

struct shm_region;

/* Maps `bytes` of shared, lazily committed memory (MAP_NORESERVE: untouched
 * pages cost nothing) and writes the header.  NULL and a reason in err on
 * failure. */
struct shm_region *shm_region_create(size_t bytes, char *err, size_t errlen);

/* Carves `bytes` aligned to `align` (a power of two, at least 64 so no two
 * carved objects share a cache line) out of the region.  Only before fork:
 * the carving cursor is not shared-safe.  NULL when the region is full. */
void *shm_region_alloc(struct shm_region *r, size_t bytes, size_t align);

/* Checks magic, layout version and size: what every process that maps the
 * region does before trusting it.  0, or -1 with a reason. */
int shm_region_check(const struct shm_region *r, char *err, size_t errlen);

size_t shm_region_size(const struct shm_region *r);
size_t shm_region_used(const struct shm_region *r);
void   shm_region_destroy(struct shm_region *r);

/* Process-shared futex on a 32-bit word in the region.  wait returns 0 when
 * woken (or *addr != expected on entry), 1 on timeout; timeout_ms < 0 waits
 * forever.  wake returns the number woken. */
int shm_futex_wait(_Atomic uint32_t *addr, uint32_t expected, int timeout_ms);
int shm_futex_wake(_Atomic uint32_t *addr, int count);

#endif
