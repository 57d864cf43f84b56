/*
 * reflex — bounded single-producer / single-consumer ring of fixed-size elements.
 *
 * Capacity is a power of two (2 .. 2^31); elements are copied in and out (the
 * engine carries frame pointers, 8 bytes). Elements sit in groups that share
 * a cache line with a sequence stamp (7 frame pointers and their stamp to a
 * 64-byte line), so a waiting consumer learns of a new element and reads it
 * with one cache-line transfer, and a burst moves 7 pointers per transfer. Progress: every operation is
 * wait-free for its side, except drop-oldest pushes and pops, which are
 * lock-free (a compare-and-swap may retry once per concurrent claim by the
 * other side).
 *
 * Threads: exactly one producer thread calls the producer functions and one
 * consumer thread the consumer functions; they may change over time only with
 * a happens-before edge between the old and the new thread. The statistics
 * and occupancy functions may be called from any thread at any time.
 *
 * Overflow policy, fixed at creation:
 *  - RFX_RING_BLOCK:        a push onto a full ring fails with -EAGAIN; the
 *                           caller waits (backpressure) and retries.
 *  - RFX_RING_DROP_NEWEST:  a push onto a full ring discards the new element
 *                           and counts it (dropped_newest).
 *  - RFX_RING_DROP_OLDEST:  a push onto a full ring evicts the oldest element
 *                           the consumer has not claimed, hands it back to the
 *                           producer (so a pooled frame is never lost) and
 *                           stores the new one; the consumer skips over what
 *                           was evicted and counts it (skipped). If the
 *                           consumer holds the oldest slots (peeked, not yet
 *                           released) nothing can be evicted and the new
 *                           element is dropped and counted (dropped_newest).
 *
 * Zero-copy: rfx_spsc_ring_reserve/commit let the producer write elements in
 * place; rfx_spsc_ring_peek/release let the consumer read them in place. The
 * overflow policy applies to push only: reserve reports the space there is.
 */
#ifndef REFLEX_SPSC_RING_H
#define REFLEX_SPSC_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <reflex/api.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rfx_spsc_ring;

enum rfx_ring_policy {
    RFX_RING_BLOCK = 0,
    RFX_RING_DROP_NEWEST = 1,
    RFX_RING_DROP_OLDEST = 2,
};

/* Counters, each written by one side and readable from any thread. */
struct rfx_ring_stats {
    uint64_t capacity;
    uint64_t occupancy;      /* elements stored and not yet released */
    uint64_t pushed;         /* elements the producer stored (tail index) */
    uint64_t released;       /* elements the consumer finished with or skipped */
    uint64_t dropped_newest; /* producer: new elements discarded on a full ring */
    uint64_t evicted_oldest; /* producer: old elements evicted (drop-oldest) */
    uint64_t skipped;        /* consumer: evicted elements it skipped over */
};

/*
 * Create a ring of `capacity` elements of `elem_size` bytes (1 .. 65536).
 * Returns 0 and *out, -EINVAL (null out, capacity not a power of two or out of
 * range, bad element size or policy) or -ENOMEM. The ring owns its storage;
 * free it with rfx_spsc_ring_destroy once both sides have stopped.
 */
RFX_API int rfx_spsc_ring_create(uint64_t capacity, size_t elem_size, enum rfx_ring_policy policy,
                                 struct rfx_spsc_ring **out);
RFX_API void rfx_spsc_ring_destroy(struct rfx_spsc_ring *r);

/* Parse "block", "drop-newest" or "drop-oldest". Returns 0 or -EINVAL. */
RFX_API int rfx_ring_policy_parse(const char *s, enum rfx_ring_policy *out);
RFX_API const char *rfx_ring_policy_name(enum rfx_ring_policy p);

/*
 * Producer: store one element.
 * Returns 0 stored; 1 stored after evicting the oldest element (drop-oldest;
 * the evicted element is copied to `evicted` unless it is NULL); -EAGAIN full
 * (block); -ENOBUFS full, element dropped and counted (drop-newest, or
 * drop-oldest while the consumer holds the oldest slots); -EINVAL null args.
 */
RFX_API int rfx_spsc_ring_push(struct rfx_spsc_ring *r, const void *elem);
RFX_API int rfx_spsc_ring_push_evict(struct rfx_spsc_ring *r, const void *elem, void *evicted);

/*
 * Producer: store up to n elements from `elems` in order. Returns the number
 * stored, or -EINVAL. Block: the first ones that fit; the caller retries the
 * rest later. Drop-newest: the first ones that fit; the rest were dropped and
 * counted. Drop-oldest: every element was taken — stored, evicting older ones
 * (discarded and counted; use push_evict to get them back), or dropped and
 * counted while the consumer held the oldest slots.
 */
RFX_API ssize_t rfx_spsc_ring_push_burst(struct rfx_spsc_ring *r, const void *elems, size_t n);

/*
 * Producer, zero-copy: return a pointer to the first of up to `want` free
 * slots and their number in *got (0 and NULL when full; fewer than want at
 * the end of a group — at most 7 for 8-byte elements — or when space is
 * short; loop for more). Element j of the reservation is at
 * (char *)ptr + j * rfx_spsc_ring_stride(r). Write them, then publish k ≤ *got with
 * commit. reserve without commit publishes nothing. commit returns 0 or
 * -EINVAL (k larger than the reservation).
 */
RFX_API void *rfx_spsc_ring_reserve(struct rfx_spsc_ring *r, size_t want, size_t *got);
RFX_API int rfx_spsc_ring_commit(struct rfx_spsc_ring *r, size_t k);

/* Consumer: take one element into *out. Returns 0, -EAGAIN empty, -EINVAL. */
RFX_API int rfx_spsc_ring_pop(struct rfx_spsc_ring *r, void *out);

/* Consumer: take up to n elements into `out`. Returns the number taken, or -EINVAL. */
RFX_API ssize_t rfx_spsc_ring_pop_burst(struct rfx_spsc_ring *r, void *out, size_t n);

/*
 * Consumer, zero-copy: return a pointer to the first of up to `want` readable
 * elements and their number in *got (0 and NULL when empty; a run ends at
 * the end of a group, as for reserve); element j is at
 * (const char *)ptr + j * rfx_spsc_ring_stride(r). The slots stay
 * the consumer's until release(k), k ≤ *got, hands the first k back to the
 * producer; under drop-oldest they are never evicted while held. release
 * returns 0 or -EINVAL (k larger than what peek returned).
 */
RFX_API const void *rfx_spsc_ring_peek(struct rfx_spsc_ring *r, size_t want, size_t *got);
RFX_API int rfx_spsc_ring_release(struct rfx_spsc_ring *r, size_t k);

/* Any thread: elements stored and not yet released (a snapshot; exact when
 * both sides are idle). Under drop-oldest, elements the consumer holds after
 * a peek are not counted: only those waiting to be claimed. */
RFX_API uint64_t rfx_spsc_ring_occupancy(const struct rfx_spsc_ring *r);
RFX_API uint64_t rfx_spsc_ring_capacity(const struct rfx_spsc_ring *r);
/* Bytes from one element to the next in reserve/peek results: the element
 * size rounded up to 8 (0 for NULL). */
RFX_API size_t rfx_spsc_ring_stride(const struct rfx_spsc_ring *r);
/* Any thread: fill *out. Returns 0 or -EINVAL. */
RFX_API int rfx_spsc_ring_stats(const struct rfx_spsc_ring *r, struct rfx_ring_stats *out);

#ifdef __cplusplus
}
#endif
#endif
