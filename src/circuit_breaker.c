/* The execute sink's circuit breaker; see circuit_breaker.h. */
#include "circuit_breaker.h"

#include <string.h>

static void bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

const char *rfx_breaker_state_name(enum rfx_breaker_state s)
{
    static const char *const n[] = {"CLOSED", "OPEN", "HALF_OPEN"};
    return (unsigned)s <= RFX_BREAKER_HALF_OPEN ? n[s] : "unknown";
}

void rfx_breaker_init(struct rfx_breaker *b, uint32_t failures, int64_t reset_ns,
                      uint32_t successes)
{
    memset(b, 0, sizeof *b);
    b->failures_to_open = failures ? failures : 1;
    b->successes_to_close = successes ? successes : 1;
    b->reset_ns = reset_ns;
    atomic_init(&b->state, RFX_BREAKER_CLOSED);
    atomic_init(&b->rejected, 0);
    atomic_init(&b->failures, 0);
    atomic_init(&b->successes, 0);
    atomic_init(&b->opens, 0);
}

static void go(struct rfx_breaker *b, enum rfx_breaker_state to, int64_t now)
{
    enum rfx_breaker_state from =
        (enum rfx_breaker_state)atomic_load_explicit(&b->state, memory_order_relaxed);
    if (b->n_log < RFX_BREAKER_LOG)
        b->log[b->n_log++] = (struct rfx_breaker_transition){.t_ns = now, .from = from, .to = to};
    else
        b->not_logged++;
    atomic_store_explicit(&b->state, to, memory_order_release);
    b->fail_run = b->ok_run = 0;
    if (to == RFX_BREAKER_OPEN) {
        b->opened_ns = now;
        bump(&b->opens);
    }
}

bool rfx_breaker_allow(struct rfx_breaker *b, int64_t now)
{
    int s = atomic_load_explicit(&b->state, memory_order_relaxed);
    if (s != RFX_BREAKER_OPEN)
        return true;
    if (now - b->opened_ns >= b->reset_ns) {
        go(b, RFX_BREAKER_HALF_OPEN, now);
        return true;
    }
    bump(&b->rejected);
    return false;
}

void rfx_breaker_ok_n(struct rfx_breaker *b, uint64_t n, int64_t now)
{
    if (n == 0)
        return;
    atomic_store_explicit(&b->successes,
                          atomic_load_explicit(&b->successes, memory_order_relaxed) + n,
                          memory_order_relaxed);
    b->fail_run = 0;
    if (atomic_load_explicit(&b->state, memory_order_relaxed) != RFX_BREAKER_HALF_OPEN)
        return;
    /* ok_run < successes_to_close here, so the sum cannot wrap past it. */
    uint64_t run = b->ok_run + n;
    if (run >= b->successes_to_close)
        go(b, RFX_BREAKER_CLOSED, now);
    else
        b->ok_run = (uint32_t)run;
}

void rfx_breaker_result(struct rfx_breaker *b, bool ok, int64_t now)
{
    int s = atomic_load_explicit(&b->state, memory_order_relaxed);
    if (ok) {
        bump(&b->successes);
        b->fail_run = 0;
        if (s == RFX_BREAKER_HALF_OPEN && ++b->ok_run >= b->successes_to_close)
            go(b, RFX_BREAKER_CLOSED, now);
        return;
    }
    bump(&b->failures);
    b->ok_run = 0;
    if (s == RFX_BREAKER_HALF_OPEN || ++b->fail_run >= b->failures_to_open)
        go(b, RFX_BREAKER_OPEN, now);
}
