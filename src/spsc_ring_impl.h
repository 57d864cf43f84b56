/*
 * The SPSC ring's layout and inline fast paths. The engine and the benchmarks
 * include this header so that push and pop inline into their loops; the
 * public functions in spsc_ring.c wrap the same code with argument checks.
 *
 * Indices are free-running 64-bit counters (no ABA, no wrap in practice);
 * index i lives in slot i & mask. Slots are laid out in groups: a group is an
 * 8-byte stamp followed by up to G elements, each padded to 8 bytes. For
 * elements of up to 24 bytes a group is one 64-byte cache line (G = 7 for the
 * 8-byte frame pointers the engine carries), so a line carries 7 elements
 * and one stamp; larger elements get a group each (G = 1, stamp + element).
 * The producer writes elements, then stamps their group with the index of the
 * last one plus 1. A consumer waiting for data polls the stamp, which sits in
 * the same cache line as the element, so one line transfer both announces
 * and delivers it; a burst moves 7 elements per line transfer, and the
 * producer's tail line is never read on the block / drop-newest fast paths.
 * Stamps only grow, and a group's stamp exceeds i exactly when element i is
 * published: a stamp left from the previous lap is at most i - capacity + G,
 * and G <= capacity.
 *
 * Memory-ordering pairs (docs/memory-ordering.md lists them all):
 *   R1 producer's release store of a group stamp  -> A1 consumer's acquire load of that stamp:
 *      the bytes of every element below the stamp's value in that group, written
 *      before R1, are visible to the consumer after A1.
 *   R3 producer's release store of prod.tail      -> A3 acquire loads of prod.tail (drop-oldest
 *      claims, occupancy): every element below tail is written.
 *   R2 consumer's release store of cons.released  -> A2 producer's acquire load of cons.released:
 *      the consumer's reads of a slot finish before the producer reuses it.
 *      (Block rings batch R2: once per capacity/4 elements, or when
 *      the consumer runs dry, so the producer refetches that line rarely.)
 *   C1 consumer's claim CAS on shared.claim  <-> C2 producer's evict CAS on shared.claim
 *      (drop-oldest only): whichever CAS moves claim past index i owns element i;
 *      the loser retries. Both are acq_rel RMWs on one variable, so exactly one wins.
 */
#ifndef REFLEX_SPSC_RING_IMPL_H
#define REFLEX_SPSC_RING_IMPL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <reflex/spsc_ring.h>

/* Two 64-byte lines: the adjacent-line prefetcher pulls lines in pairs, so
 * state written by different threads sits 128 bytes apart. */
#define RFX_RING_LINE 128

struct rfx_ring_cfg {
    uint64_t mask;     /* capacity - 1 */
    uint64_t capacity; /* power of two */
    uint32_t elem_size;
    uint32_t policy;        /* enum rfx_ring_policy */
    uint64_t stride;        /* bytes from one element to the next in a group:
                               elem_size rounded up to 8 */
    uint32_t group;         /* G: elements per group, 1 .. 7, <= capacity */
    uint32_t group_bytes;   /* stamp + G elements: 64 when G > 1 */
    uintptr_t stamp_mask;   /* a group's stamp is at (element - 8) & stamp_mask:
                               ~63 when groups are lines, ~0 when G = 1 */
    uint64_t group_magic;   /* G > 1: floor(2^64 / G) + 1, so that
                               s / G == (s * magic) >> 64 for every slot s < 2^32 */
    uint64_t release_batch; /* block: R2 at most every this many elements
                               (capacity / 4), or when the ring runs dry; 1 otherwise */
    unsigned char *slots;
};

#define RFX_RING_STAMP 8 /* a group's elements follow its stamp */
/* Where index i lives: its element, and how many slots its group has left.
 * The group's stamp is at (elem - 8) & cfg.stamp_mask. */
struct rfx_ring_loc {
    unsigned char *elem; /* element i */
    uint64_t run;        /* slots from i to the end of the group (or the array) */
};

/* Written by the producer only. */
struct rfx_ring_prod {
    _Atomic uint64_t tail;           /* R3: next index to write; published */
    uint64_t cached_released;        /* producer's view of the free boundary:
                                        max(last A2 value, evict_end) */
    uint64_t evict_end;              /* one past the last index the producer evicted */
    uint64_t reserved;               /* slots handed out by reserve, not yet committed */
    _Atomic uint64_t dropped_newest; /* relaxed; read by stats */
    _Atomic uint64_t evicted_oldest; /* relaxed; read by stats */
    struct rfx_ring_loc at;          /* where index tail lives */
};

/* Written by the consumer only. */
struct rfx_ring_cons {
    _Atomic uint64_t released; /* R2: every index below is free for the producer */
    _Atomic uint64_t cur;      /* next index to read; consumer-written (relaxed),
                                  read by occupancy */
    uint64_t claim_end;        /* drop-oldest: end of the range the consumer claimed */
    uint64_t cached_tail;      /* drop-oldest: consumer's view of prod.tail (last A3 value) */
    uint64_t peeked;           /* elements handed out by peek, not yet released */
    _Atomic uint64_t skipped;  /* relaxed; read by stats */
    struct rfx_ring_loc at;    /* block / drop-newest: where index cur lives */
};

/* Written by both sides, drop-oldest only. */
struct rfx_ring_shared {
    _Atomic uint64_t claim; /* C1/C2: every index below is owned by someone */
};

struct rfx_spsc_ring {
    _Alignas(RFX_RING_LINE) struct rfx_ring_cfg cfg;
    _Alignas(RFX_RING_LINE) struct rfx_ring_prod prod;
    _Alignas(RFX_RING_LINE) struct rfx_ring_cons cons;
    _Alignas(RFX_RING_LINE) struct rfx_ring_shared shared;
    void *alloc; /* what destroy frees (read-only, read only by destroy) */
};

_Static_assert(offsetof(struct rfx_spsc_ring, prod) - offsetof(struct rfx_spsc_ring, cfg) >=
                   RFX_RING_LINE,
               "config and producer state must not share a line pair");
_Static_assert(offsetof(struct rfx_spsc_ring, cons) - offsetof(struct rfx_spsc_ring, prod) >=
                   RFX_RING_LINE,
               "producer and consumer state must not share a line pair");
_Static_assert(offsetof(struct rfx_spsc_ring, shared) - offsetof(struct rfx_spsc_ring, cons) >=
                   RFX_RING_LINE,
               "consumer state and the shared claim word must not share a line pair");
_Static_assert(sizeof(struct rfx_ring_prod) <= 64 && sizeof(struct rfx_ring_cons) <= 64,
               "each side's state fits one cache line");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "64-bit atomics are lock-free words");

__extension__ typedef unsigned __int128 rfx_u128;

/* Where index i lives, from scratch: slot / G by a multiply with G's inverse.
 * The fast paths carry their position along instead (prod.at, cons.at). */
static inline struct rfx_ring_loc rfx_ring_locate(const struct rfx_spsc_ring *r, uint64_t i)
{
    uint64_t s = i & r->cfg.mask, g = s, off = 0, run = 1;
    if (r->cfg.group > 1) {
        g = (uint64_t)(((rfx_u128)s * r->cfg.group_magic) >> 64);
        off = s - g * r->cfg.group;
        run = r->cfg.group - off;
        if (run > r->cfg.capacity - s) /* the last group may be short */
            run = r->cfg.capacity - s;
    }
    return (struct rfx_ring_loc){
        r->cfg.slots + (size_t)(g * r->cfg.group_bytes + RFX_RING_STAMP + off * r->cfg.stride), run};
}

static inline _Atomic uint64_t *rfx_ring_loc_stamp(const struct rfx_spsc_ring *r,
                                                   struct rfx_ring_loc l)
{
    return (_Atomic uint64_t *)(void *)((uintptr_t)(l.elem - RFX_RING_STAMP) & r->cfg.stamp_mask);
}

/* The run after l, which ended at index next_i: the next group from its start. */
static inline struct rfx_ring_loc rfx_ring_loc_next(const struct rfx_spsc_ring *r,
                                                    struct rfx_ring_loc l, uint64_t next_i)
{
    uint64_t s = next_i & r->cfg.mask, left = r->cfg.capacity - s;
    uint64_t run = left < r->cfg.group ? left : r->cfg.group;
    if (s == 0)
        return (struct rfx_ring_loc){r->cfg.slots + RFX_RING_STAMP, run};
    unsigned char *stamp = (unsigned char *)rfx_ring_loc_stamp(r, l);
    return (struct rfx_ring_loc){stamp + r->cfg.group_bytes + RFX_RING_STAMP, run};
}

/* l moved on by n elements (n <= l.run) from index i. */
static inline struct rfx_ring_loc rfx_ring_loc_skip(const struct rfx_spsc_ring *r,
                                                    struct rfx_ring_loc l, uint64_t i, uint64_t n)
{
    if (n < l.run) {
        l.elem += n * r->cfg.stride;
        l.run -= n;
        return l;
    }
    return rfx_ring_loc_next(r, l, i + n);
}

static inline unsigned char *rfx_ring_elem(const struct rfx_spsc_ring *r, uint64_t i)
{
    return rfx_ring_locate(r, i).elem;
}

/* Element copy; the common 8-byte case (frame pointers) is one move. */
static inline void rfx_ring_copy(void *dst, const void *src, uint32_t size)
{
    if (size == 8)
        memcpy(dst, src, 8);
    else
        memcpy(dst, src, size);
}

/* Copy k elements of `size` bytes, `dstride` and `sstride` bytes apart. The
 * 8-byte case is a run of word moves, inlined (a group run is at most 7);
 * 8-byte elements are 8 bytes apart on both sides, in the ring and out. */
static inline void rfx_ring_copy_n(unsigned char *dst, size_t dstride, const unsigned char *src,
                                   size_t sstride, uint32_t size, uint64_t k)
{
    if (size == 8) {
        if (k == 7) { /* a whole group: fixed-size moves */
            memcpy(dst, src, 56);
            return;
        }
        for (uint64_t j = 0; j < k; j++) /* a partial group, at most 6 words */
            memcpy(dst + j * 8, src + j * 8, 8);
        return;
    }
    for (uint64_t j = 0; j < k; j++)
        memcpy(dst + j * dstride, src + j * sstride, size);
}

/* Producer: write element i (= tail) and stamp its group (R1: publishes the
 * bytes). */
static inline void rfx_ring_put(struct rfx_spsc_ring *r, uint64_t i, const void *elem)
{
    struct rfx_ring_loc l = r->prod.at;
    rfx_ring_copy(l.elem, elem, r->cfg.elem_size);
    atomic_store_explicit(rfx_ring_loc_stamp(r, l), i + 1, memory_order_release);
    r->prod.at = rfx_ring_loc_skip(r, l, i, 1);
}

/* Producer: write elements [t, t + k) from src (t = tail), stamping each
 * group once, after its elements (R1). */
static inline void rfx_ring_put_run(struct rfx_spsc_ring *r, uint64_t t, const unsigned char *src,
                                    uint64_t k)
{
    uint32_t es = r->cfg.elem_size;
    struct rfx_ring_loc l = r->prod.at;
    for (uint64_t i = t, end = t + k; i < end;) {
        uint64_t n = l.run < end - i ? l.run : end - i;
        rfx_ring_copy_n(l.elem, r->cfg.stride, src + (i - t) * es, es, es, n);
        atomic_store_explicit(rfx_ring_loc_stamp(r, l), i + n, memory_order_release);
        l = rfx_ring_loc_skip(r, l, i, n);
        i += n;
    }
    r->prod.at = l;
}

/* Consumer: copy elements [c, c + k) out to dst, no stamp checks (the caller
 * knows they are published and its own: drop-oldest claims). */
static inline void rfx_ring_get_run(const struct rfx_spsc_ring *r, uint64_t c, unsigned char *dst,
                                    uint64_t k)
{
    uint32_t es = r->cfg.elem_size;
    struct rfx_ring_loc l = rfx_ring_locate(r, c);
    for (uint64_t i = c, end = c + k; i < end;) {
        uint64_t n = l.run < end - i ? l.run : end - i;
        rfx_ring_copy_n(dst + (i - c) * es, es, l.elem, r->cfg.stride, es, n);
        l = rfx_ring_loc_skip(r, l, i, n);
        i += n;
    }
}

/* Consumer: how many elements from i to the end of its group's run are
 * published (A1: pairs with R1; their bytes are visible after it). */
static inline uint64_t rfx_ring_ready_in(const struct rfx_spsc_ring *r, struct rfx_ring_loc l,
                                         uint64_t i)
{
    uint64_t stamp = atomic_load_explicit(rfx_ring_loc_stamp(r, l), memory_order_acquire);
    if (stamp <= i)
        return 0;
    /* A stamp from the next lap (the producer reused earlier slots of this
     * group) covers the whole run. */
    return stamp - i < l.run ? stamp - i : l.run;
}

static inline void rfx_ring_count(_Atomic uint64_t *c, uint64_t n)
{
    /* Single writer: a relaxed load and store, no locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t rfx_ring_cur(const struct rfx_spsc_ring *r)
{
    return atomic_load_explicit(&r->cons.cur, memory_order_relaxed);
}

static inline void rfx_ring_set_cur(struct rfx_spsc_ring *r, uint64_t c)
{
    atomic_store_explicit(&r->cons.cur, c, memory_order_relaxed);
}

/*
 * Consumer: hand slots below `upto` back to the producer (R2: our reads of
 * them are done; pairs with A2). Each R2 store is a line the producer must
 * fetch again, so it is batched: published once release_batch slots have
 * accumulated, or at once when `dry` (the consumer found no more to read,
 * so the producer must not wait on us).
 */
static inline void rfx_ring_release_to(struct rfx_spsc_ring *r, uint64_t upto, bool dry)
{
    uint64_t pub = atomic_load_explicit(&r->cons.released, memory_order_relaxed);
    if (upto != pub && (dry || upto - pub >= r->cfg.release_batch))
        atomic_store_explicit(&r->cons.released, upto, memory_order_release);
}

/* Producer: free slots as far as its cached view knows; refresh it (A2) when
 * fewer than `need` are free. */
static inline uint64_t rfx_ring_free(struct rfx_spsc_ring *r, uint64_t t, uint64_t need)
{
    uint64_t free_ = r->cfg.capacity - (t - r->prod.cached_released);
    if (free_ < need) {
        /* A2: pairs with R2; the consumer has finished reading every slot below. */
        uint64_t rel = atomic_load_explicit(&r->cons.released, memory_order_acquire);
        r->prod.cached_released = rel > r->prod.evict_end ? rel : r->prod.evict_end;
        free_ = r->cfg.capacity - (t - r->prod.cached_released);
    }
    return free_;
}

int rfx_ring_push_full(struct rfx_spsc_ring *r, const void *elem, void *evicted);

/* Producer fast path: no argument checks. See rfx_spsc_ring_push_evict. */
static inline int rfx_ring_push(struct rfx_spsc_ring *r, const void *elem, void *evicted)
{
    uint64_t t = atomic_load_explicit(&r->prod.tail, memory_order_relaxed);
    if (__builtin_expect(rfx_ring_free(r, t, 1) == 0, 0))
        return rfx_ring_push_full(r, elem, evicted);
    rfx_ring_put(r, t, elem);
    /* R3: for occupancy readers and drop-oldest claims; the consumer's fast
     * path reads the stamp instead, so this line stays with the producer. */
    atomic_store_explicit(&r->prod.tail, t + 1, memory_order_release);
    return 0;
}

/* Consumer, drop-oldest: readable elements as far as its cached view of the
 * tail knows; refresh it (A3) when none are. */
static inline uint64_t rfx_ring_avail(struct rfx_spsc_ring *r, uint64_t c)
{
    if (c >= r->cons.cached_tail) {
        /* A3: pairs with R3; element bytes below tail are visible. */
        r->cons.cached_tail = atomic_load_explicit(&r->prod.tail, memory_order_acquire);
        if (c >= r->cons.cached_tail)
            return 0;
    }
    return r->cons.cached_tail - c;
}

uint64_t rfx_ring_claim(struct rfx_spsc_ring *r, uint64_t want);

/* Consumer fast path: take up to n elements into out. */
static inline size_t rfx_ring_pop_burst(struct rfx_spsc_ring *r, void *out, size_t n)
{
    uint64_t c = rfx_ring_cur(r);
    uint64_t got = 0;
    unsigned char *o = out;
    uint32_t es = r->cfg.elem_size;
    if (r->cfg.policy == RFX_RING_DROP_OLDEST) {
        got = rfx_ring_claim(r, n);
        c = rfx_ring_cur(r);
        if (got > n)
            got = n;
        rfx_ring_get_run(r, c, o, got);
    } else {
        /* One stamp (A1) per group: it tells how much of the group is ready. */
        struct rfx_ring_loc l = r->cons.at;
        while (got < n) {
            uint64_t k = rfx_ring_ready_in(r, l, c + got);
            if (k > n - got)
                k = n - got;
            if (k == 0)
                break;
            rfx_ring_copy_n(o + got * es, es, l.elem, r->cfg.stride, es, k);
            bool whole = k == l.run;
            l = rfx_ring_loc_skip(r, l, c + got, k);
            got += k;
            if (!whole)
                break;
        }
        r->cons.at = l;
    }
    rfx_ring_set_cur(r, c + got);
    /* A short burst means the ring ran dry: publish at once. */
    rfx_ring_release_to(r, c + got, got < n);
    return (size_t)got;
}

static inline int rfx_ring_pop(struct rfx_spsc_ring *r, void *out)
{
    uint64_t c;
    if (r->cfg.policy == RFX_RING_DROP_OLDEST) {
        if (!rfx_ring_claim(r, 1))
            return -EAGAIN;
        c = rfx_ring_cur(r);
        rfx_ring_copy(out, rfx_ring_elem(r, c), r->cfg.elem_size);
        rfx_ring_set_cur(r, c + 1);
        rfx_ring_release_to(r, c + 1, false);
        return 0;
    }
    c = rfx_ring_cur(r);
    struct rfx_ring_loc l = r->cons.at;
    if (atomic_load_explicit(rfx_ring_loc_stamp(r, l), memory_order_acquire) <= c) { /* A1 */
        rfx_ring_release_to(r, c, true);
        return -EAGAIN;
    }
    rfx_ring_copy(out, l.elem, r->cfg.elem_size);
    r->cons.at = rfx_ring_loc_skip(r, l, c, 1);
    rfx_ring_set_cur(r, c + 1);
    rfx_ring_release_to(r, c + 1, false);
    return 0;
}

/*
 * Producer: take up to n elements. Returns how many were taken: stored, or
 * dropped by the policy (counted) — the dropped ones are always the last
 * *n_dropped of those taken. Block: stops when full (nothing dropped).
 * Drop-newest: stores what fits, drops the rest. Drop-oldest: evicts as needed
 * (evicted elements copied to `evicted`, *n_evicted of them, when it is not
 * NULL; it needs room for n) and stops after an element it had to drop.
 */
size_t rfx_ring_push_burst(struct rfx_spsc_ring *r, const void *elems, size_t n, void *evicted,
                           size_t *n_evicted, size_t *n_dropped);

#endif
