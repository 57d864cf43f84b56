/*
 * Waiting: spin, yield, park (futex on a sequence word) and hybrid.
 *
 * Ordering (docs/memory-ordering.md):
 *   W1 waiter:   waiters += 1 (acq_rel RMW), read seq, re-check cond.
 *   N1 notifier: (data published), waiters += 0 (acq_rel RMW); if non-zero,
 *                seq += 1 (release) and FUTEX_WAKE.
 * W1 and N1 are read-modify-writes of one word, so one comes first in its
 * modification order. If N1 is first, W1 reads from it and synchronizes with
 * it: the waiter's re-check sees the data and it does not sleep. If W1 is
 * first, N1 sees the waiter and wakes it; if the notifier bumps seq after the
 * waiter read it, FUTEX_WAIT sees the changed word and returns at once, so
 * the sleep cannot begin after the wake-up it needed. (Two RMWs rather than
 * two fences: ThreadSanitizer models the former, not the latter.)
 */
#include <reflex/wait.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_acle.h>
#endif

void rfx_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __yield();
#endif
}

void rfx_wait_config_default(struct rfx_wait_config *cfg)
{
    if (!cfg)
        return;
    cfg->kind = RFX_WAIT_HYBRID;
    cfg->spin_ns = 50000;
}

static const char *const kind_names[] = {"spin", "yield", "park", "hybrid"};

int rfx_wait_kind_parse(const char *s, enum rfx_wait_kind *out)
{
    if (!s || !out)
        return -EINVAL;
    for (unsigned i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (enum rfx_wait_kind)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *rfx_wait_kind_name(enum rfx_wait_kind k)
{
    return (unsigned)k < 4 ? kind_names[k] : "?";
}

void rfx_waitpoint_init(struct rfx_waitpoint *wp)
{
    if (!wp)
        return;
    atomic_init(&wp->seq, 0);
    atomic_init(&wp->waiters, 0);
    atomic_init(&wp->wake_calls, 0);
    atomic_init(&wp->park_calls, 0);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Returns true when the deadline (absolute, < 0 = none) has passed. */
static bool expired(int64_t deadline)
{
    return deadline >= 0 && now_ns() >= deadline;
}

/* One park: announce, re-check, sleep until woken, the deadline, or a signal. */
static bool park_once(struct rfx_waitpoint *wp, rfx_wait_cond cond, void *arg, int64_t deadline)
{
    /* W1: announce before the last look at the condition; pairs with N1. */
    atomic_fetch_add_explicit(&wp->waiters, 1, memory_order_acq_rel);
    uint32_t seq = atomic_load_explicit(&wp->seq, memory_order_acquire);
    bool ready = cond(arg);
    if (!ready) {
        struct timespec rel, *relp = NULL;
        if (deadline >= 0) {
            int64_t left = deadline - now_ns();
            if (left < 0)
                left = 0;
            rel.tv_sec = left / 1000000000;
            rel.tv_nsec = left % 1000000000;
            relp = &rel;
        }
        count(&wp->park_calls);
        /* Returns at once with EAGAIN if a notifier bumped seq since we read it. */
        syscall(SYS_futex, (uint32_t *)&wp->seq, FUTEX_WAIT_PRIVATE, seq, relp, NULL, 0);
    }
    atomic_fetch_sub_explicit(&wp->waiters, 1, memory_order_relaxed);
    return ready;
}

int rfx_wait(struct rfx_waitpoint *wp, const struct rfx_wait_config *cfg, rfx_wait_cond cond,
             void *arg, int64_t timeout_ns)
{
    if (!wp || !cfg || !cond || (unsigned)cfg->kind > RFX_WAIT_HYBRID)
        return -EINVAL;
    if (cond(arg))
        return 0;
    int64_t start = now_ns();
    int64_t deadline = timeout_ns < 0 ? -1 : start + timeout_ns;
    int64_t spin_until = start + (int64_t)cfg->spin_ns;
    bool parking = cfg->kind == RFX_WAIT_PARK;
    unsigned n = 0;

    for (;;) {
        if (parking) {
            if (park_once(wp, cond, arg, deadline))
                return 0;
        } else if (cfg->kind == RFX_WAIT_YIELD) {
            sched_yield();
        } else {
            rfx_cpu_relax();
            /* Hybrid: read the clock only every 64 spins; vDSO, but not free. */
            if (cfg->kind == RFX_WAIT_HYBRID && (++n & 63) == 0 && now_ns() >= spin_until)
                parking = true;
        }
        if (cond(arg))
            return 0;
        if (deadline >= 0 && (cfg->kind != RFX_WAIT_SPIN || (++n & 255) == 0) && expired(deadline))
            return -ETIMEDOUT;
    }
}

void rfx_wake(struct rfx_waitpoint *wp)
{
    if (!wp)
        return;
    /* N1: an RMW, so that it is ordered against W1 on the same word; the
     * caller's data store comes before it (release), pairs with W1. */
    if (atomic_fetch_add_explicit(&wp->waiters, 0, memory_order_acq_rel) == 0)
        return;
    atomic_fetch_add_explicit(&wp->seq, 1, memory_order_release);
    count(&wp->wake_calls);
    syscall(SYS_futex, (uint32_t *)&wp->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

uint64_t rfx_waitpoint_wake_calls(const struct rfx_waitpoint *wp)
{
    return wp ? atomic_load_explicit(&wp->wake_calls, memory_order_relaxed) : 0;
}

uint64_t rfx_waitpoint_park_calls(const struct rfx_waitpoint *wp)
{
    return wp ? atomic_load_explicit(&wp->park_calls, memory_order_relaxed) : 0;
}
