/* The action cache's snapshot layout, for tests and the torture test, and
 * what the engine reads of it without the public API's locks. */
#ifndef REFLEX_ACTION_CACHE_IMPL_H
#define REFLEX_ACTION_CACHE_IMPL_H

#include <reflex/action_cache.h>

#include <stdbool.h>
#include <stdint.h>

struct rfx_snapshot {
    uint64_t generation;
    uint64_t checksum; /* rfx_snapshot_checksum at publication */
    uint64_t n1, n2;   /* entries */
    uint32_t l1_mask, l2_mask;
    struct rfx_cache_entry *l1, *l2; /* point into this allocation */
};

/* Reader: the current snapshot (NULL before the first publication). Valid
 * until the calling reader's next quiescent state. */
const struct rfx_snapshot *rfx_action_cache_snapshot(struct rfx_action_cache *c);

/* Any thread: snapshots published so far, without the writers' lock (which
 * a publication holds across a grace period). */
uint64_t rfx_action_cache_publications(const struct rfx_action_cache *c);

/* Any thread: the longest grace period a publication waited for, and their
 * sum (publications: their count), in ns. */
void rfx_action_cache_grace(const struct rfx_action_cache *c, uint64_t *max_ns, uint64_t *total_ns);

/* Writers: fn(arg, snapshot) is called inside every publication, under the
 * writers' lock, after the snapshot is built and before readers can see it
 * (the run recorder). fn must not publish. NULL turns it off. */
typedef void (*rfx_publish_observer)(void *arg, const struct rfx_snapshot *s);
void rfx_action_cache_observe(struct rfx_action_cache *c, rfx_publish_observer fn, void *arg);

/* Writers: the next publication gets generation `gen` instead of the
 * current one + 1 (a replay republishing a record's snapshots). */
void rfx_action_cache_next_generation(struct rfx_action_cache *c, uint64_t gen);

/*
 * Quiet readers (action_cache.c): the engine's critical threads register
 * with rfx_cache_reader_register_quiet instead of rfx_cache_reader_register;
 * their quiescent states and going offline (the same public calls) then
 * never make a system call, and a grace period that went to sleep waiting
 * for them is woken by rfx_cache_grace_kick, which a non-critical thread
 * must call regularly while any quiet reader is registered (the engine's
 * watchdog does, each look); it wakes none that a reader still holds.
 * register_quiet: -ENOSPC past 256 readers in the process.
 * rfx_cache_grace_kick: true if it woke a sleeping grace period;
 * rfx_cache_grace_kicks: how many times it has, in this process.
 */
int rfx_cache_reader_register_quiet(void);
bool rfx_cache_grace_kick(void);
uint64_t rfx_cache_grace_kicks(void);

/* FNV-1a over the generation and every slot of both tables. */
uint64_t rfx_snapshot_checksum(const struct rfx_snapshot *s);

#endif
