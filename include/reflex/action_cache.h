/*
 * reflex — the action cache: immutable L1 (exact context key) and L2
 * (pattern key) snapshots, built off the critical path and published with
 * RCU (liburcu QSBR). Readers never block and never write shared lines;
 * writers build a whole new snapshot, publish it with one pointer store and
 * free the old one after a grace period.
 *
 * Misses travel to the planners through a bounded non-blocking SPMC queue
 * (Concurrency Kit ck_ring): one producer (the reader thread that missed),
 * any number of consumers. A full queue drops the miss and counts it.
 *
 * Threads:
 *  - readers (lookup, queue_miss): threads registered with
 *    rfx_cache_reader_register; each must call rfx_cache_quiescent regularly
 *    (the engine does, once per burst) and go offline around any wait that
 *    can block (rfx_cache_reader_offline / _online). A single thread queues
 *    misses (SPMC).
 *  - writers (publish): any unregistered thread (strategic workers); publish
 *    serialises writers with a mutex and waits for a grace period, so never
 *    call it from a registered reader.
 *  - take_misses: any number of threads.
 * Ownership: the cache owns its snapshots; lookup's results are copies.
 */
#ifndef REFLEX_ACTION_CACHE_H
#define REFLEX_ACTION_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <reflex/api.h>
#include <reflex/stage.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rfx_action_cache;

struct rfx_cache_entry {
    uint64_t key; /* nonzero */
    uint32_t action;
    uint32_t category;   /* user-defined category id (invalidation rules) */
    int64_t created_ns;  /* when the planner made it (TTL) */
    uint64_t generation; /* the snapshot that first held it: publish stamps entries
                            that come in with 0 (new plans) and keeps the rest */
};

/* What a reader sends the planners on a miss. */
struct rfx_cache_miss {
    uint64_t context_key;
    uint64_t pattern_key;
    uint64_t seq; /* the frame that missed */
    uint32_t context_class;
    uint32_t user_len;      /* bytes used in user[] */
    unsigned char user[32]; /* what the planner needs to plan (e.g. a state window) */
};

struct rfx_action_cache_config {
    uint32_t max_entries; /* per level; tables are sized for load <= 0.5 */
    uint32_t miss_queue;  /* power of two >= 4 */
};

struct rfx_action_cache_stats {
    uint64_t generation; /* of the current snapshot; 0 = none yet */
    uint64_t publications;
    uint64_t l1_entries, l2_entries;
    uint64_t misses_queued;
    uint64_t misses_dropped; /* queue full */
};

RFX_API void rfx_action_cache_config_default(struct rfx_action_cache_config *cfg);
RFX_API int rfx_action_cache_create(const struct rfx_action_cache_config *cfg,
                                    struct rfx_action_cache **out);
/* After every reader and writer has stopped. */
RFX_API void rfx_action_cache_destroy(struct rfx_action_cache *c);

/* Reader thread registration with RCU (QSBR). */
RFX_API void rfx_cache_reader_register(void);
RFX_API void rfx_cache_reader_unregister(void);
RFX_API void rfx_cache_reader_offline(void);
RFX_API void rfx_cache_reader_online(void);
RFX_API void rfx_cache_quiescent(void);

/*
 * Reader: L1 by context_key, then L2 by pattern_key. Returns RFX_CACHE_L1,
 * RFX_CACHE_L2 (and *action), or RFX_CACHE_MISS. *generation receives the
 * snapshot's generation either way (0 before the first publication). Wait-
 * free: two probes of flat tables, no stores to shared memory.
 */
RFX_API enum rfx_cache_result rfx_action_cache_lookup(struct rfx_action_cache *c,
                                                      uint64_t context_key, uint64_t pattern_key,
                                                      uint32_t *action, uint64_t *generation);

/* Reader (one thread): queue a miss for the planners. -EAGAIN when full (counted). */
RFX_API int rfx_action_cache_queue_miss(struct rfx_action_cache *c, const struct rfx_cache_miss *m);

/* Any thread: take up to n queued misses. Returns how many. */
RFX_API size_t rfx_action_cache_take_misses(struct rfx_action_cache *c, struct rfx_cache_miss *out,
                                            size_t n);

/*
 * Writer: build a snapshot of these entries (duplicate keys: the last wins;
 * an entry with generation 0 is stamped with the new generation), publish it, then free the
 * previous one after a grace period. Returns the new generation (> 0), -EINVAL (a key of 0),
 * -ENOSPC (more than max_entries) or -ENOMEM.
 */
RFX_API int64_t rfx_action_cache_publish(struct rfx_action_cache *c,
                                         const struct rfx_cache_entry *l1, size_t n1,
                                         const struct rfx_cache_entry *l2, size_t n2);

/* Writer: copy the current snapshot's entries (for building the next one).
 * *l1 and *l2 are malloc'd (free them); counts in *n1, *n2. */
RFX_API int rfx_action_cache_entries(struct rfx_action_cache *c, struct rfx_cache_entry **l1,
                                     size_t *n1, struct rfx_cache_entry **l2, size_t *n2);

RFX_API void rfx_action_cache_stats(const struct rfx_action_cache *c,
                                    struct rfx_action_cache_stats *out);

#ifdef __cplusplus
}
#endif
#endif
