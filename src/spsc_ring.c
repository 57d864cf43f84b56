/*
 * SPSC ring: creation, the slow paths (full ring, drop-oldest claims) and the
 * checked public wrappers around the inline fast paths of spsc_ring_impl.h.
 */
#include "spsc_ring_impl.h"

#include <reflex/wait.h>

#include <stdlib.h>

/* Drop-oldest: how long the producer waits for a consumer that has claimed
 * the oldest slots to release them (a pop holds them for one copy) before it
 * drops the newest element instead. Bounded: the producer never blocks. */
#define RFX_RING_HOLD_SPINS 64

#define RFX_RING_MAX_CAPACITY (UINT64_C(1) << 31)
#define RFX_RING_MAX_ELEM     65536u

int rfx_ring_policy_parse(const char *s, enum rfx_ring_policy *out)
{
    if (!s || !out)
        return -EINVAL;
    if (strcmp(s, "block") == 0)
        *out = RFX_RING_BLOCK;
    else if (strcmp(s, "drop-newest") == 0)
        *out = RFX_RING_DROP_NEWEST;
    else if (strcmp(s, "drop-oldest") == 0)
        *out = RFX_RING_DROP_OLDEST;
    else
        return -EINVAL;
    return 0;
}

const char *rfx_ring_policy_name(enum rfx_ring_policy p)
{
    switch (p) {
    case RFX_RING_BLOCK:
        return "block";
    case RFX_RING_DROP_NEWEST:
        return "drop-newest";
    case RFX_RING_DROP_OLDEST:
        return "drop-oldest";
    }
    return "?";
}

int rfx_spsc_ring_create(uint64_t capacity, size_t elem_size, enum rfx_ring_policy policy,
                         struct rfx_spsc_ring **out)
{
    if (!out || capacity < 2 || capacity > RFX_RING_MAX_CAPACITY ||
        (capacity & (capacity - 1)) != 0 || elem_size == 0 || elem_size > RFX_RING_MAX_ELEM)
        return -EINVAL;
    if (policy != RFX_RING_BLOCK && policy != RFX_RING_DROP_NEWEST &&
        policy != RFX_RING_DROP_OLDEST)
        return -EINVAL;

    /* One allocation: the control block, then the groups on their own lines.
     * Elements are padded to 8 bytes; up to 24-byte elements share a 64-byte
     * line with their group's stamp (7, 3 or 2 of them), larger ones get a
     * group each (stamp + element). */
    size_t stride = (elem_size + 7) & ~(size_t)7;
    uint64_t group = stride <= 24 ? (64 - RFX_RING_STAMP) / stride : 1;
    if (group > capacity)
        group = capacity;
    size_t group_bytes = group > 1 ? 64 : RFX_RING_STAMP + stride;
    uint64_t groups = (capacity + group - 1) / group;
    size_t head = (sizeof(struct rfx_spsc_ring) + RFX_RING_LINE - 1) & ~(size_t)(RFX_RING_LINE - 1);
    size_t bytes = head + (size_t)groups * group_bytes;
    void *mem = NULL;
    if (posix_memalign(&mem, RFX_RING_LINE, bytes) != 0)
        return -ENOMEM;
    memset(mem, 0, bytes);
    struct rfx_spsc_ring *r = mem;
    r->cfg.mask = capacity - 1;
    r->cfg.capacity = capacity;
    r->cfg.elem_size = (uint32_t)elem_size;
    r->cfg.policy = (uint32_t)policy;
    r->cfg.stride = stride;
    r->cfg.group = (uint32_t)group;
    r->cfg.group_bytes = (uint32_t)group_bytes;
    r->cfg.group_magic = group > 1 ? UINT64_MAX / group + 1 : 0;
    r->cfg.stamp_mask = group > 1 ? ~(uintptr_t)63 : ~(uintptr_t)0;
    /* Block: batch R2 (the producer only waits a little longer when full).
     * The drop policies must see every free slot, or they would drop
     * elements the ring had room for: they publish each release. */
    r->cfg.release_batch = policy == RFX_RING_BLOCK && capacity >= 4 ? (uint64_t)capacity / 4 : 1;
    r->cfg.slots = (unsigned char *)mem + head;
    r->alloc = mem;
    r->prod.at = r->cons.at = rfx_ring_locate(r, 0);
    atomic_init(&r->prod.tail, 0);
    atomic_init(&r->prod.dropped_newest, 0);
    atomic_init(&r->prod.evicted_oldest, 0);
    atomic_init(&r->cons.released, 0);
    atomic_init(&r->cons.cur, 0);
    atomic_init(&r->cons.skipped, 0);
    atomic_init(&r->shared.claim, 0);
    *out = r;
    return 0;
}

void rfx_spsc_ring_destroy(struct rfx_spsc_ring *r)
{
    if (r)
        free(r->alloc);
}

/*
 * Producer, ring full. Block and drop-newest refuse; drop-oldest evicts the
 * oldest unclaimed element (C2) unless the consumer holds it.
 */
int rfx_ring_push_full(struct rfx_spsc_ring *r, const void *elem, void *evicted)
{
    if (r->cfg.policy == RFX_RING_BLOCK)
        return -EAGAIN;
    if (r->cfg.policy == RFX_RING_DROP_NEWEST) {
        rfx_ring_count(&r->prod.dropped_newest, 1);
        return -ENOBUFS;
    }

    uint64_t t = atomic_load_explicit(&r->prod.tail, memory_order_relaxed);
    for (;;) {
        uint64_t base = r->prod.cached_released;
        uint64_t h = atomic_load_explicit(&r->shared.claim, memory_order_acquire);
        if (h != base) {
            /* The consumer claimed [base, h): it may still be reading those
             * slots. Watch for their release (A2) a little while; if they are
             * still held, the freshest element cannot be stored. */
            for (int spin = 0; spin < RFX_RING_HOLD_SPINS; spin++) {
                if (rfx_ring_free(r, t, 1) > 0)
                    return rfx_ring_push(r, elem, evicted);
                if (h == r->prod.cached_released)
                    break;
                rfx_cpu_relax();
            }
            if (h != r->prod.cached_released) {
                rfx_ring_count(&r->prod.dropped_newest, 1);
                return -ENOBUFS;
            }
            continue;
        }
        /* C2: take index h from the consumer's side. On success we own it:
         * the consumer's claim CAS (C1) can no longer succeed at h. */
        if (atomic_compare_exchange_strong_explicit(&r->shared.claim, &h, h + 1,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            if (evicted)
                rfx_ring_copy(evicted, rfx_ring_elem(r, h), r->cfg.elem_size);
            r->prod.evict_end = h + 1;
            r->prod.cached_released = h + 1;
            rfx_ring_count(&r->prod.evicted_oldest, 1);
            rfx_ring_put(r, t, elem);                                          /* R1 */
            atomic_store_explicit(&r->prod.tail, t + 1, memory_order_release); /* R3 */
            return 1;
        }
        /* The consumer claimed concurrently: look again. */
    }
}

/*
 * Consumer, drop-oldest: claim up to `want` readable elements (C1), or return
 * what an earlier peek claimed and has not released. Sets cons.cur to the
 * first claimed index and counts the indices the producer evicted before we
 * reached them.
 */
uint64_t rfx_ring_claim(struct rfx_spsc_ring *r, uint64_t want)
{
    uint64_t cur = rfx_ring_cur(r);
    if (cur < r->cons.claim_end)
        return r->cons.claim_end - cur;
    for (;;) {
        uint64_t c = atomic_load_explicit(&r->shared.claim, memory_order_acquire);
        uint64_t avail = rfx_ring_avail(r, c);
        if (avail == 0)
            return 0;
        uint64_t n = avail < want ? avail : want;
        /* C1: pairs with C2; on success [c, c+n) are ours until R2. */
        if (atomic_compare_exchange_weak_explicit(&r->shared.claim, &c, c + n, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (c > cur)
                rfx_ring_count(&r->cons.skipped, c - cur);
            rfx_ring_set_cur(r, c);
            r->cons.claim_end = c + n;
            return n;
        }
    }
}

size_t rfx_ring_push_burst(struct rfx_spsc_ring *r, const void *elems, size_t n, void *evicted,
                           size_t *n_evicted, size_t *n_dropped)
{
    const unsigned char *src = elems;
    size_t es = r->cfg.elem_size;
    size_t ev_count = 0, dropped = 0, taken;
    if (r->cfg.policy == RFX_RING_DROP_OLDEST) {
        /* Element by element so that every eviction is an owned, counted
         * step; stop after an element is dropped so the caller knows which. */
        for (taken = 0; taken < n;) {
            unsigned char *ev = evicted ? (unsigned char *)evicted + ev_count * es : NULL;
            int rc = rfx_ring_push(r, src + taken * es, ev);
            taken++;
            if (rc == 1 && ev)
                ev_count++;
            if (rc == -ENOBUFS) {
                dropped = 1;
                break;
            }
        }
    } else {
        uint64_t t = atomic_load_explicit(&r->prod.tail, memory_order_relaxed);
        uint64_t free_ = rfx_ring_free(r, t, n);
        size_t k = n < free_ ? n : (size_t)free_;
        if (k) {
            rfx_ring_put_run(r, t, src, k);                                    /* R1 per group */
            atomic_store_explicit(&r->prod.tail, t + k, memory_order_release); /* R3 */
        }
        taken = k;
        if (k < n && r->cfg.policy == RFX_RING_DROP_NEWEST) {
            dropped = n - k;
            rfx_ring_count(&r->prod.dropped_newest, dropped);
            taken = n;
        }
    }
    if (n_evicted)
        *n_evicted = ev_count;
    if (n_dropped)
        *n_dropped = dropped;
    return taken;
}

/* ---- checked public wrappers ---- */

int rfx_spsc_ring_push(struct rfx_spsc_ring *r, const void *elem)
{
    if (!r || !elem)
        return -EINVAL;
    return rfx_ring_push(r, elem, NULL);
}

int rfx_spsc_ring_push_evict(struct rfx_spsc_ring *r, const void *elem, void *evicted)
{
    if (!r || !elem)
        return -EINVAL;
    return rfx_ring_push(r, elem, evicted);
}

ssize_t rfx_spsc_ring_push_burst(struct rfx_spsc_ring *r, const void *elems, size_t n)
{
    if (!r || (!elems && n))
        return -EINVAL;
    size_t stored = 0, taken = 0;
    do {
        size_t dropped;
        size_t k = rfx_ring_push_burst(r, (const unsigned char *)elems + taken * r->cfg.elem_size,
                                       n - taken, NULL, NULL, &dropped);
        stored += k - dropped;
        taken += k;
        if (k == 0 || r->cfg.policy != RFX_RING_DROP_OLDEST)
            break;
    } while (taken < n);
    return (ssize_t)stored;
}

/* min(want, limit, slots left in the run of i's group): zero-copy runs are
 * contiguous, so they end where the group (or the array) does. */
static uint64_t run_in_group(struct rfx_ring_loc l, uint64_t want, uint64_t limit)
{
    uint64_t k = want < limit ? want : limit;
    return k < l.run ? k : l.run;
}

void *rfx_spsc_ring_reserve(struct rfx_spsc_ring *r, size_t want, size_t *got)
{
    if (!r || !got)
        return NULL;
    uint64_t t = atomic_load_explicit(&r->prod.tail, memory_order_relaxed);
    struct rfx_ring_loc l = r->prod.at;
    uint64_t k = run_in_group(l, want, rfx_ring_free(r, t, want ? want : 1));
    r->prod.reserved = k;
    *got = (size_t)k;
    return k ? l.elem : NULL;
}

int rfx_spsc_ring_commit(struct rfx_spsc_ring *r, size_t k)
{
    if (!r || k > r->prod.reserved)
        return -EINVAL;
    uint64_t t = atomic_load_explicit(&r->prod.tail, memory_order_relaxed);
    r->prod.reserved = 0;
    if (k) {
        /* R1: the caller wrote the elements; the run is within one group. */
        atomic_store_explicit(rfx_ring_loc_stamp(r, r->prod.at), t + k, memory_order_release);
        r->prod.at = rfx_ring_loc_skip(r, r->prod.at, t, k);
        atomic_store_explicit(&r->prod.tail, t + k, memory_order_release); /* R3 */
    }
    return 0;
}

int rfx_spsc_ring_pop(struct rfx_spsc_ring *r, void *out)
{
    if (!r || !out)
        return -EINVAL;
    return rfx_ring_pop(r, out);
}

ssize_t rfx_spsc_ring_pop_burst(struct rfx_spsc_ring *r, void *out, size_t n)
{
    if (!r || (!out && n))
        return -EINVAL;
    return (ssize_t)rfx_ring_pop_burst(r, out, n);
}

const void *rfx_spsc_ring_peek(struct rfx_spsc_ring *r, size_t want, size_t *got)
{
    if (!r || !got)
        return NULL;
    uint64_t avail;
    if (r->cfg.policy == RFX_RING_DROP_OLDEST)
        avail = rfx_ring_claim(r, want ? want : 1);
    else
        avail = UINT64_MAX;
    uint64_t c = rfx_ring_cur(r);
    struct rfx_ring_loc l =
        r->cfg.policy == RFX_RING_DROP_OLDEST ? rfx_ring_locate(r, c) : r->cons.at;
    uint64_t k = run_in_group(l, want, avail);
    if (k && r->cfg.policy != RFX_RING_DROP_OLDEST) {
        uint64_t ready = rfx_ring_ready_in(r, l, c); /* A1 */
        k = k < ready ? k : ready;
    }
    r->cons.peeked = k;
    if (k == 0)
        rfx_ring_release_to(r, c, true); /* dry: publish what is pending */
    *got = (size_t)k;
    return k ? l.elem : NULL;
}

int rfx_spsc_ring_release(struct rfx_spsc_ring *r, size_t k)
{
    if (!r || k > r->cons.peeked)
        return -EINVAL;
    r->cons.peeked = 0;
    if (k) {
        uint64_t c = rfx_ring_cur(r);
        if (r->cfg.policy != RFX_RING_DROP_OLDEST)
            r->cons.at = rfx_ring_loc_skip(r, r->cons.at, c, k);
        c += k;
        rfx_ring_set_cur(r, c);
        rfx_ring_release_to(r, c, false); /* R2, batched */
    }
    return 0;
}

uint64_t rfx_spsc_ring_occupancy(const struct rfx_spsc_ring *r)
{
    if (!r)
        return 0;
    /* Read the consumer's position first: both only grow, so the tail read
     * after it is at least the tail of that moment. The consumer can still be
     * ahead of the tail word (it reads a stamp before the producer's R3), so
     * the difference is clamped at 0. Drop-oldest: evicted elements sit below
     * claim but above cur until the consumer skips them; count only what
     * awaits a claim plus what the consumer holds. */
    uint64_t rel = r->cfg.policy == RFX_RING_DROP_OLDEST
                       ? atomic_load_explicit(&r->shared.claim, memory_order_acquire)
                       : rfx_ring_cur(r);
    uint64_t t = atomic_load_explicit(&r->prod.tail, memory_order_acquire);
    uint64_t occ = t > rel ? t - rel : 0;
    return occ > r->cfg.capacity ? r->cfg.capacity : occ;
}

uint64_t rfx_spsc_ring_capacity(const struct rfx_spsc_ring *r)
{
    return r ? r->cfg.capacity : 0;
}

size_t rfx_spsc_ring_stride(const struct rfx_spsc_ring *r)
{
    return r ? (size_t)r->cfg.stride : 0;
}

int rfx_spsc_ring_stats(const struct rfx_spsc_ring *r, struct rfx_ring_stats *out)
{
    if (!r || !out)
        return -EINVAL;
    out->capacity = r->cfg.capacity;
    out->released = rfx_ring_cur(r);
    out->pushed = atomic_load_explicit(&r->prod.tail, memory_order_acquire);
    out->occupancy = rfx_spsc_ring_occupancy(r);
    out->dropped_newest = atomic_load_explicit(&r->prod.dropped_newest, memory_order_relaxed);
    out->evicted_oldest = atomic_load_explicit(&r->prod.evicted_oldest, memory_order_relaxed);
    out->skipped = atomic_load_explicit(&r->cons.skipped, memory_order_relaxed);
    return 0;
}
