/*
 * reflex — how a thread waits for work: spin, yield, park (futex) or hybrid.
 *
 * A waitpoint is an event count shared by one or more waiters and any number
 * of notifiers. The protocol (docs/memory-ordering.md, pairs W1/N1):
 *   waiter:   announce itself (W1), re-check the condition, sleep on the
 *             sequence word only if it is still false;
 *   notifier: publish its data, then (N1) look for announced waiters and wake
 *             them only if there are any.
 * No wake-up is lost: either the notifier sees the announcement or the waiter
 * sees the published data. A notifier makes no system call unless a waiter is
 * parked or about to park; a spinning waiter makes none.
 *
 * Thread-safety: rfx_wait and rfx_wake may be called concurrently from any
 * threads on one waitpoint. rfx_waitpoint_init is single-threaded.
 */
#ifndef REFLEX_WAIT_H
#define REFLEX_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <reflex/api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum rfx_wait_kind {
    RFX_WAIT_SPIN = 0,   /* busy-wait with the CPU pause hint; lowest latency, burns a core */
    RFX_WAIT_YIELD = 1,  /* sched_yield between checks; gives the core to others */
    RFX_WAIT_PARK = 2,   /* sleep on a futex at once */
    RFX_WAIT_HYBRID = 3, /* spin for spin_ns, then park (the default) */
};

struct rfx_wait_config {
    enum rfx_wait_kind kind; /* default RFX_WAIT_HYBRID */
    uint32_t spin_ns;        /* hybrid: how long to spin before parking; default 50000 */
};

/*
 * The shared word pair. Fields are private to wait.c; the struct is public so
 * it can be embedded (one cache line, aligned).
 */
struct rfx_waitpoint {
    _Alignas(64) _Atomic uint32_t seq; /* futex word: bumped by a notifier that saw waiters */
    _Atomic uint32_t waiters;          /* W1: waiters announced and not yet gone */
    _Atomic uint64_t wake_calls;       /* statistics: FUTEX_WAKE system calls made */
    _Atomic uint64_t park_calls;       /* statistics: FUTEX_WAIT system calls made */
};

/* A condition the waiter polls; must be cheap and side-effect free. */
typedef bool (*rfx_wait_cond)(void *arg);

/* Fill *cfg with the defaults (hybrid, 50 µs). */
RFX_API void rfx_wait_config_default(struct rfx_wait_config *cfg);

/* Parse "spin", "yield", "park" or "hybrid" into cfg->kind. Returns 0 or -EINVAL. */
RFX_API int rfx_wait_kind_parse(const char *s, enum rfx_wait_kind *out);
RFX_API const char *rfx_wait_kind_name(enum rfx_wait_kind k);

RFX_API void rfx_waitpoint_init(struct rfx_waitpoint *wp);

/*
 * Wait until cond(arg) is true, the way cfg says. timeout_ns < 0 waits
 * forever. Returns 0 when the condition held, -ETIMEDOUT, or -EINVAL (null
 * wp, cfg or cond; unknown kind). The condition is always re-checked after a
 * wake-up, so spurious wake-ups are harmless.
 */
RFX_API int rfx_wait(struct rfx_waitpoint *wp, const struct rfx_wait_config *cfg,
                     rfx_wait_cond cond, void *arg, int64_t timeout_ns);

/*
 * Call after publishing what waiters wait for (with a release store or
 * stronger). Wakes every parked waiter; makes a system call only if a waiter
 * has announced itself. Null wp is ignored.
 */
RFX_API void rfx_wake(struct rfx_waitpoint *wp);

/* Statistics: system calls made so far on this waitpoint. */
RFX_API uint64_t rfx_waitpoint_wake_calls(const struct rfx_waitpoint *wp);
RFX_API uint64_t rfx_waitpoint_park_calls(const struct rfx_waitpoint *wp);

/* The CPU's spin-wait hint (pause on x86, yield on arm64). */
RFX_API void rfx_cpu_relax(void);

#ifdef __cplusplus
}
#endif
#endif
