/* ring_fixture.h — what the ring unit tests share: regions, child
 * processes that die with the test, bounded waits, and the barrier-scheme
 * switch for loop tests.  Static functions: each test binary includes it
 * once. */
#ifndef TEST_RING_FIXTURE_H
#define TEST_RING_FIXTURE_H

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring_layout.h"

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Loop tests run twice: _i == 0 with the barrier scheme the kernel allows,
 * _i == 1 with the symmetric one forced (shm/eventcount.h). */
static inline void barrier_mode(int symmetric)
{
    if (symmetric)
        setenv("SHM_BARRIER", "symmetric", 1);
    else
        unsetenv("SHM_BARRIER");
}

static inline struct shm_region *region(size_t bytes)
{
    char err[128];
    struct shm_region *r = shm_region_create(bytes, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    return r;
}

/* Waits (bounded) until n waiters are counted on ev: asleep, or about to. */
static inline int wait_waiting(struct shm_evc *ev, uint32_t n, int ms)
{
    int64_t until = now_ms() + ms;
    while (shm_evc_waiting(ev) != n) {
        if (now_ms() > until)
            return -1;
        usleep(200);
    }
    return 0;
}

static inline pid_t fork_child(void)
{
    pid_t pid = fork();
    if (pid == 0)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    return pid;
}

static inline int reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif
