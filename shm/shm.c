/* shm.c — the shared region (one anonymous MAP_SHARED mapping carved into
 * rings and arenas before fork) and the process-shared futex calls.
 *
 * The region starts with a header that every process checks before trusting
 * what follows.  Carving is a bump cursor in that header: it is written only
 * before fork, by the process that creates the region, so it needs no
 * atomics. */
#include "shm.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct shm_region {
    uint64_t magic;        /* SHM_MAGIC; anything else is not ours */
    uint32_t version;      /* SHM_LAYOUT_VERSION of the creator */
    uint32_t header_bytes; /* sizeof(struct shm_region) of the creator */
    uint64_t size;         /* bytes mapped, header included */
    uint64_t used;         /* carve cursor: bytes from the start handed out */
};

/* Carved pieces start past the header on their own cache line. */
#define SHM_HEADER_SPAN 64u

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096u;
}

struct shm_region *shm_region_create(size_t bytes, char *err, size_t errlen)
{
    size_t page = page_size();
    if (bytes < SHM_HEADER_SPAN || bytes > SIZE_MAX - page) {
        set_err(err, errlen, "shared region of %zu bytes: bad size", bytes);
        return NULL;
    }
    size_t size = (bytes + page - 1) & ~(page - 1);
    /* MAP_NORESERVE: the region is sized for the worst case (every ring
     * full, every arena in use) but only touched pages cost memory. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        set_err(err, errlen, "mmap of %zu bytes: %s", size, strerror(errno));
        return NULL;
    }
    struct shm_region *r = p;
    r->magic = SHM_MAGIC;
    r->version = SHM_LAYOUT_VERSION;
    r->header_bytes = sizeof *r;
    r->size = size;
    r->used = SHM_HEADER_SPAN;
    return r;
}

void *shm_region_alloc(struct shm_region *r, size_t bytes, size_t align)
{
    if (r == NULL || align == 0 || (align & (align - 1)) != 0)
        return NULL;
    if (align < 64)
        align = 64;
    /* Align the address, not the offset: the mapping is page aligned, but an
     * alignment above the page size must still hold for the pointer. */
    uintptr_t base = (uintptr_t)r;
    uintptr_t at = (base + r->used + align - 1) & ~(uintptr_t)(align - 1);
    if (at < base || at - base > r->size || bytes > r->size - (at - base))
        return NULL;
    /* Round the end up to a cache line so the next piece never shares one
     * with this. */
    uint64_t end = (uint64_t)(at - base) + bytes;
    end = (end + 63u) & ~(uint64_t)63u;
    r->used = end < r->size ? end : r->size;
    return (void *)at;
}

int shm_region_check(const struct shm_region *r, char *err, size_t errlen)
{
    if (r == NULL) {
        set_err(err, errlen, "no shared region");
        return -1;
    }
    if (r->magic != SHM_MAGIC) {
        set_err(err, errlen, "shared region: bad magic %#llx",
                (unsigned long long)r->magic);
        return -1;
    }
    if (r->version != SHM_LAYOUT_VERSION || r->header_bytes != sizeof *r) {
        set_err(err, errlen, "shared region: layout %u/%u, expected %u/%zu",
                r->version, r->header_bytes, SHM_LAYOUT_VERSION, sizeof *r);
        return -1;
    }
    if (r->size < SHM_HEADER_SPAN || r->used < SHM_HEADER_SPAN || r->used > r->size) {
        set_err(err, errlen, "shared region: size %llu, used %llu inconsistent",
                (unsigned long long)r->size, (unsigned long long)r->used);
        return -1;
    }
    return 0;
}

size_t shm_region_size(const struct shm_region *r)
{
    return r != NULL ? (size_t)r->size : 0;
}

size_t shm_region_used(const struct shm_region *r)
{
    return r != NULL ? (size_t)r->used : 0;
}

void shm_region_destroy(struct shm_region *r)
{
    if (r == NULL)
        return;
    /* Read the size before unmapping the page that holds it. */
    size_t size = (size_t)r->size;
    munmap(r, size);
}

/* ---- futex ----------------------------------------------------------- */

/* FUTEX_WAIT and FUTEX_WAKE without FUTEX_PRIVATE_FLAG: the word lives in a
 * MAP_SHARED mapping and the waiter and waker are different processes, so
 * the kernel must key the futex on the page, not on the address space. */

int shm_futex_wait(_Atomic uint32_t *addr, uint32_t expected, int timeout_ms)
{
    struct timespec ts, *tp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    /* FUTEX_WAIT's timeout is relative. */
    long rc = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, expected, tp, NULL, 0);
    if (rc == 0)
        return 0;
    if (errno == ETIMEDOUT)
        return 1;
    /* EAGAIN (the word already changed) and EINTR (a signal) both mean
     * "look again": every caller re-checks its condition in a loop. */
    return 0;
}

int shm_futex_wake(_Atomic uint32_t *addr, int count)
{
    long rc = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, count, NULL, NULL, 0);
    return rc < 0 ? 0 : (int)rc;
}
