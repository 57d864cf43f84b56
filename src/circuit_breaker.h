/*
 * The execute sink's circuit breaker (src/circuit_breaker.c): CLOSED -> OPEN
 * after `failures` consecutive failures -> HALF_OPEN after `reset_ms` ->
 * CLOSED after `successes` consecutive successes (a failure in HALF_OPEN
 * opens it again). While OPEN, frames are rejected in O(1) (dropped, reason
 * circuit_open) without calling the sink. Driven by the one thread that
 * hosts the sink; the state is published for other threads to read.
 */
#ifndef REFLEX_CIRCUIT_BREAKER_H
#define REFLEX_CIRCUIT_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum rfx_breaker_state { RFX_BREAKER_CLOSED = 0, RFX_BREAKER_OPEN = 1, RFX_BREAKER_HALF_OPEN = 2 };

#define RFX_BREAKER_LOG 64

struct rfx_breaker_transition {
    int64_t t_ns;
    enum rfx_breaker_state from, to;
};

struct rfx_breaker {
    uint32_t failures_to_open, successes_to_close;
    int64_t reset_ns;
    _Atomic int state; /* enum rfx_breaker_state; written by the sink's thread */
    uint32_t fail_run, ok_run;
    int64_t opened_ns;
    _Atomic uint64_t rejected, failures, successes, opens; /* single writer, relaxed */
    int n_log;
    struct rfx_breaker_transition log[RFX_BREAKER_LOG];
    uint64_t not_logged; /* transitions after the log filled (the sink's thread) */
};

void rfx_breaker_init(struct rfx_breaker *b, uint32_t failures, int64_t reset_ns,
                      uint32_t successes);
/* May a frame go to the sink now? False while OPEN (counted as rejected). */
bool rfx_breaker_allow(struct rfx_breaker *b, int64_t now);
/* The sink's outcome for one frame it was allowed. */
void rfx_breaker_result(struct rfx_breaker *b, bool ok, int64_t now);
/* n successes at once: the same as n calls of rfx_breaker_result(b, true, now). */
void rfx_breaker_ok_n(struct rfx_breaker *b, uint64_t n, int64_t now);
/* Whether allow could refuse now (OPEN); CLOSED and HALF_OPEN allow every frame
 * without side effects, so a burst may skip the per-frame calls. */
static inline bool rfx_breaker_is_open(const struct rfx_breaker *b)
{
    return atomic_load_explicit(&b->state, memory_order_relaxed) == RFX_BREAKER_OPEN;
}
const char *rfx_breaker_state_name(enum rfx_breaker_state s);

#endif
