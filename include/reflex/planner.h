/*
 * reflex — the planner: a user callback the strategic workers run off the
 * critical path, on batches of cache misses and on context changes. What it
 * adds becomes part of the next action-cache snapshot.
 *
 * Threads: plan() runs on strategic worker threads, possibly several at once
 * (one call per worker at a time); its context must tolerate that or the
 * engine must be configured with one worker. Allocations made inside plan()
 * come from the strategic jemalloc arena, never a critical thread's.
 * Ownership: the misses are the engine's, valid during the call.
 */
#ifndef REFLEX_PLANNER_H
#define REFLEX_PLANNER_H

#include <stdbool.h>
#include <stddef.h>

#include <reflex/action_cache.h>
#include <reflex/api.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rfx_engine;
struct rfx_plan; /* where plan() puts its entries; the engine's */

struct rfx_planner_ops {
    /* Plan for n misses (n = 0: a periodic or context-change call). Return 0
     * or a negative errno (counted; the batch is dropped). */
    int (*plan)(void *ctx, const struct rfx_cache_miss *misses, size_t n, struct rfx_plan *out);
};

/* Inside plan(): add an entry to L1 (level 1) or L2 (level 2). -EINVAL for
 * another level or a key of 0; -ENOMEM. */
RFX_API int rfx_plan_add(struct rfx_plan *p, int level, const struct rfx_cache_entry *entry);

/* Before rfx_engine_start. ops and ctx must outlive the run. */
RFX_API int rfx_engine_set_planner(struct rfx_engine *e, const struct rfx_planner_ops *ops,
                                   void *ctx);

/* Any thread (a pattern stage on an area change, say): run the planners now
 * rather than at their next tick. Never blocks. On one of the engine's
 * critical threads it takes no lock and makes no system call: it counts the
 * kick, and the watchdog wakes the planners at its next look (within
 * `watch_every_us`, an eighth of the frame budget by default). */
RFX_API void rfx_engine_context_change(struct rfx_engine *e);

/* Pause-based planning: true while a planner asked the source to hold.
 * Any thread. */
RFX_API bool rfx_engine_paused(const struct rfx_engine *e);

#ifdef __cplusplus
}
#endif
#endif
