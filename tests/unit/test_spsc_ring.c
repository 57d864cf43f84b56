/* Unit tests: SPSC ring (single-threaded semantics; the torture test covers concurrency). */
#include <criterion/criterion.h>

#include "spsc_ring_impl.h"

#include <stdlib.h>

static struct rfx_spsc_ring *make(uint64_t cap, size_t es, enum rfx_ring_policy p)
{
    struct rfx_spsc_ring *r = NULL;
    cr_assert_eq(rfx_spsc_ring_create(cap, es, p, &r), 0);
    cr_assert_not_null(r);
    return r;
}

Test(spsc_ring, create_rejects_bad_arguments)
{
    struct rfx_spsc_ring *r = NULL;
    cr_expect_eq(rfx_spsc_ring_create(8, 8, RFX_RING_BLOCK, NULL), -EINVAL);
    uint64_t bad_caps[] = {0, 1, 3, 6, 12, 1000, (UINT64_C(1) << 32)};
    for (size_t i = 0; i < sizeof bad_caps / sizeof bad_caps[0]; i++)
        cr_expect_eq(rfx_spsc_ring_create(bad_caps[i], 8, RFX_RING_BLOCK, &r), -EINVAL,
                     "capacity %llu", (unsigned long long)bad_caps[i]);
    cr_expect_eq(rfx_spsc_ring_create(8, 0, RFX_RING_BLOCK, &r), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_create(8, 65537, RFX_RING_BLOCK, &r), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_create(8, 8, (enum rfx_ring_policy)7, &r), -EINVAL);
    cr_expect_null(r, "out must not be written on failure");
    rfx_spsc_ring_destroy(NULL);
}

Test(spsc_ring, null_handles_return_einval)
{
    uint64_t v = 1;
    size_t got = 99;
    struct rfx_ring_stats st;
    cr_expect_eq(rfx_spsc_ring_push(NULL, &v), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_push_evict(NULL, &v, &v), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_push_burst(NULL, &v, 1), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_pop(NULL, &v), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_pop_burst(NULL, &v, 1), -EINVAL);
    cr_expect_null(rfx_spsc_ring_reserve(NULL, 1, &got));
    cr_expect_eq(rfx_spsc_ring_commit(NULL, 0), -EINVAL);
    cr_expect_null(rfx_spsc_ring_peek(NULL, 1, &got));
    cr_expect_eq(rfx_spsc_ring_release(NULL, 0), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_stats(NULL, &st), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_occupancy(NULL), 0);
    cr_expect_eq(rfx_spsc_ring_capacity(NULL), 0);

    struct rfx_spsc_ring *r = make(4, 8, RFX_RING_BLOCK);
    cr_expect_eq(rfx_spsc_ring_push(r, NULL), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_pop(r, NULL), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_push_burst(r, NULL, 2), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_pop_burst(r, NULL, 2), -EINVAL);
    cr_expect_eq(rfx_spsc_ring_stats(r, NULL), -EINVAL);
    cr_expect_null(rfx_spsc_ring_reserve(r, 1, NULL));
    cr_expect_null(rfx_spsc_ring_peek(r, 1, NULL));
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, policy_names_round_trip)
{
    enum rfx_ring_policy p;
    const char *names[] = {"block", "drop-newest", "drop-oldest"};
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(rfx_ring_policy_parse(names[i], &p), 0);
        cr_expect_eq((int)p, i);
        cr_expect_str_eq(rfx_ring_policy_name(p), names[i]);
    }
    cr_expect_eq(rfx_ring_policy_parse("drop", &p), -EINVAL);
    cr_expect_eq(rfx_ring_policy_parse(NULL, &p), -EINVAL);
}

Test(spsc_ring, layout_keeps_sides_apart)
{
    cr_expect_eq(offsetof(struct rfx_spsc_ring, prod) % RFX_RING_LINE, 0);
    cr_expect_eq(offsetof(struct rfx_spsc_ring, cons) % RFX_RING_LINE, 0);
    cr_expect_geq(offsetof(struct rfx_spsc_ring, cons) - offsetof(struct rfx_spsc_ring, prod),
                  RFX_RING_LINE);
    struct rfx_spsc_ring *r = make(8, 8, RFX_RING_BLOCK);
    cr_expect_eq((uintptr_t)r % RFX_RING_LINE, 0);
    cr_expect_eq((uintptr_t)r->cfg.slots % RFX_RING_LINE, 0, "slots start on their own line");
    cr_expect_eq(r->cfg.stride % 8, 0, "stamps stay 8-byte aligned");
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, groups_share_a_line_with_their_stamp)
{
    /* 8-byte elements: 7 and a stamp per 64-byte line. */
    struct rfx_spsc_ring *r = make(1024, 8, RFX_RING_BLOCK);
    cr_expect_eq(r->cfg.group, 7);
    cr_expect_eq(r->cfg.group_bytes, 64);
    for (uint64_t i = 0; i < 1024; i++) {
        struct rfx_ring_loc l = rfx_ring_locate(r, i);
        uintptr_t stamp = (uintptr_t)rfx_ring_loc_stamp(r, l), elem = (uintptr_t)l.elem;
        cr_assert_eq(stamp / 64, (elem + 7) / 64, "index %llu: stamp and element in one line",
                     (unsigned long long)i);
        cr_assert_eq(stamp, (uintptr_t)(r->cfg.slots + (i & 1023) / 7 * 64));
        cr_assert_eq(elem, stamp + 8 + (i & 1023) % 7 * 8);
    }
    cr_expect_eq(rfx_ring_locate(r, 1023).run, 1, "the last group holds 1024 %% 7 = 2 slots");
    rfx_spsc_ring_destroy(r);
    /* 16 and 24 bytes: 3 and 2 a line; larger: a group each. */
    size_t sizes[] = {16, 24, 32, 100}, groups[] = {3, 2, 1, 1};
    for (int k = 0; k < 4; k++) {
        r = make(64, sizes[k], RFX_RING_BLOCK);
        cr_expect_eq(r->cfg.group, groups[k], "%zu-byte elements", sizes[k]);
        rfx_spsc_ring_destroy(r);
    }
    /* A group never outgrows the ring: a stale stamp must stay below i. */
    r = make(2, 8, RFX_RING_BLOCK);
    cr_expect_eq(r->cfg.group, 2);
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, fifo_order_and_block_when_full)
{
    struct rfx_spsc_ring *r = make(8, sizeof(uint64_t), RFX_RING_BLOCK);
    for (uint64_t round = 0; round < 5; round++) {
        for (uint64_t i = 0; i < 8; i++) {
            uint64_t v = round * 100 + i;
            cr_assert_eq(rfx_spsc_ring_push(r, &v), 0);
        }
        uint64_t extra = 999;
        cr_expect_eq(rfx_spsc_ring_push(r, &extra), -EAGAIN);
        cr_expect_eq(rfx_spsc_ring_occupancy(r), 8);
        for (uint64_t i = 0; i < 8; i++) {
            uint64_t v;
            cr_assert_eq(rfx_spsc_ring_pop(r, &v), 0);
            cr_expect_eq(v, round * 100 + i);
        }
        uint64_t v;
        cr_expect_eq(rfx_spsc_ring_pop(r, &v), -EAGAIN);
    }
    struct rfx_ring_stats st;
    cr_assert_eq(rfx_spsc_ring_stats(r, &st), 0);
    cr_expect_eq(st.pushed, 40);
    cr_expect_eq(st.released, 40);
    cr_expect_eq(st.dropped_newest + st.evicted_oldest + st.skipped, 0);
    rfx_spsc_ring_destroy(r);
}

/* Block rings publish the consumer's releases a quarter ring at a time, or
 * as soon as the consumer runs dry; occupancy stays exact throughout. */
Test(spsc_ring, block_release_is_batched_but_never_withheld)
{
    struct rfx_spsc_ring *r = make(16, sizeof(uint64_t), RFX_RING_BLOCK);
    uint64_t v = 0, out;
    for (int i = 0; i < 16; i++, v++)
        cr_assert_eq(rfx_spsc_ring_push(r, &v), 0);
    cr_assert_eq(rfx_spsc_ring_pop(r, &out), 0);
    cr_expect_eq(rfx_spsc_ring_occupancy(r), 15);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(rfx_spsc_ring_pop(r, &out), 0);
    cr_expect_eq(out, 3);
    cr_expect_eq(rfx_spsc_ring_occupancy(r), 12);
    /* Four pops (capacity / 4) published: the producer has those slots. */
    for (int i = 0; i < 4; i++, v++)
        cr_expect_eq(rfx_spsc_ring_push(r, &v), 0, "slot %d after a full batch", i);
    /* A short burst (the ring ran dry) publishes everything read. */
    uint64_t burst[32];
    cr_assert_eq(rfx_spsc_ring_pop_burst(r, burst, 32), 16);
    cr_expect_eq(burst[0], 4);
    cr_expect_eq(burst[15], 19);
    cr_expect_eq(rfx_spsc_ring_occupancy(r), 0);
    for (int i = 0; i < 16; i++, v++)
        cr_expect_eq(rfx_spsc_ring_push(r, &v), 0, "slot %d after the ring ran dry", i);
    /* A single pop that finds nothing publishes too. */
    for (int i = 0; i < 16; i++)
        cr_assert_eq(rfx_spsc_ring_pop(r, &out), 0);
    cr_expect_eq(rfx_spsc_ring_pop(r, &out), -EAGAIN);
    for (int i = 0; i < 16; i++, v++)
        cr_expect_eq(rfx_spsc_ring_push(r, &v), 0, "slot %d after an empty pop", i);
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, drop_newest_discards_and_counts)
{
    struct rfx_spsc_ring *r = make(4, sizeof(uint64_t), RFX_RING_DROP_NEWEST);
    for (uint64_t i = 0; i < 10; i++) {
        int rc = rfx_spsc_ring_push(r, &i);
        cr_expect_eq(rc, i < 4 ? 0 : -ENOBUFS, "push %llu", (unsigned long long)i);
    }
    uint64_t out[8];
    cr_expect_eq(rfx_spsc_ring_pop_burst(r, out, 8), 4);
    for (uint64_t i = 0; i < 4; i++)
        cr_expect_eq(out[i], i, "the oldest four survive");
    uint64_t burst[6] = {10, 11, 12, 13, 14, 15};
    cr_expect_eq(rfx_spsc_ring_push_burst(r, burst, 6), 4);
    struct rfx_ring_stats st;
    rfx_spsc_ring_stats(r, &st);
    cr_expect_eq(st.dropped_newest, 6 + 2);
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, drop_oldest_keeps_the_freshest)
{
    struct rfx_spsc_ring *r = make(4, sizeof(uint64_t), RFX_RING_DROP_OLDEST);
    for (uint64_t i = 0; i < 4; i++)
        cr_assert_eq(rfx_spsc_ring_push(r, &i), 0);
    for (uint64_t i = 4; i < 10; i++) {
        uint64_t ev = 777;
        cr_expect_eq(rfx_spsc_ring_push_evict(r, &i, &ev), 1);
        cr_expect_eq(ev, i - 4, "the evicted element is handed back");
    }
    cr_expect_eq(rfx_spsc_ring_occupancy(r), 4);
    uint64_t out[8];
    cr_expect_eq(rfx_spsc_ring_pop_burst(r, out, 8), 4);
    for (uint64_t i = 0; i < 4; i++)
        cr_expect_eq(out[i], 6 + i);
    struct rfx_ring_stats st;
    rfx_spsc_ring_stats(r, &st);
    cr_expect_eq(st.evicted_oldest, 6);
    cr_expect_eq(st.skipped, 6, "the consumer counts what it skipped");
    cr_expect_eq(st.dropped_newest, 0);
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, drop_oldest_never_evicts_held_slots)
{
    struct rfx_spsc_ring *r = make(2, sizeof(uint64_t), RFX_RING_DROP_OLDEST);
    uint64_t a = 1, b = 2, c = 3;
    rfx_spsc_ring_push(r, &a);
    rfx_spsc_ring_push(r, &b);
    size_t got = 0;
    const uint64_t *held = rfx_spsc_ring_peek(r, 1, &got);
    cr_assert_eq(got, 1);
    cr_expect_eq(*held, 1);
    /* The oldest slot is held by the consumer: the new element is dropped. */
    cr_expect_eq(rfx_spsc_ring_push(r, &c), -ENOBUFS);
    cr_expect_eq(*held, 1, "held slot untouched");
    cr_expect_eq(rfx_spsc_ring_release(r, 1), 0);
    /* Released: its slot takes the next element without evicting anything. */
    cr_expect_eq(rfx_spsc_ring_push(r, &c), 0);
    /* Full again, the oldest (2) unclaimed: it is evicted for the newest. */
    uint64_t ev = 0, d = 4;
    cr_expect_eq(rfx_spsc_ring_push_evict(r, &d, &ev), 1);
    cr_expect_eq(ev, 2);
    uint64_t out[2];
    cr_expect_eq(rfx_spsc_ring_pop_burst(r, out, 2), 2);
    cr_expect_eq(out[0], 3);
    cr_expect_eq(out[1], 4);
    struct rfx_ring_stats st;
    rfx_spsc_ring_stats(r, &st);
    cr_expect_eq(st.dropped_newest, 1);
    cr_expect_eq(st.evicted_oldest, 1);
    cr_expect_eq(st.skipped, 1);
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, bursts_wrap_around)
{
    struct rfx_spsc_ring *r = make(16, sizeof(uint32_t), RFX_RING_BLOCK);
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 200; round++) {
        uint32_t in[11], out[13];
        size_t want = (size_t)(round % 11) + 1;
        for (size_t i = 0; i < want; i++)
            in[i] = next_in + (uint32_t)i;
        ssize_t k = rfx_spsc_ring_push_burst(r, in, want);
        cr_assert_geq(k, 0);
        next_in += (uint32_t)k;
        ssize_t m = rfx_spsc_ring_pop_burst(r, out, (size_t)(round % 13) + 1);
        for (ssize_t i = 0; i < m; i++)
            cr_assert_eq(out[i], next_out++, "round %d", round);
    }
    uint32_t out[16];
    ssize_t m = rfx_spsc_ring_pop_burst(r, out, 16);
    for (ssize_t i = 0; i < m; i++)
        cr_assert_eq(out[i], next_out++);
    cr_expect_eq(next_in, next_out, "nothing lost");
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, zero_copy_reserve_commit_peek_release)
{
    struct rfx_spsc_ring *r = make(8, sizeof(uint64_t), RFX_RING_BLOCK);
    size_t got, stride = rfx_spsc_ring_stride(r);
    cr_expect_eq(stride, 8, "elements of a group are packed; the group's stamp comes first");
    cr_expect_eq(rfx_spsc_ring_stride(NULL), 0);
    unsigned char *w = rfx_spsc_ring_reserve(r, 5, &got);
    cr_assert_eq(got, 5);
    for (int i = 0; i < 5; i++)
        memcpy(w + (size_t)i * stride, &(uint64_t){(uint64_t)i}, 8);
    cr_expect_eq(rfx_spsc_ring_occupancy(r), 0, "nothing visible before commit");
    uint64_t v;
    cr_expect_eq(rfx_spsc_ring_pop(r, &v), -EAGAIN, "nothing poppable before commit");
    cr_expect_eq(rfx_spsc_ring_commit(r, 6), -EINVAL, "cannot commit more than reserved");
    cr_expect_eq(rfx_spsc_ring_commit(r, 5), 0);
    const unsigned char *p = rfx_spsc_ring_peek(r, 8, &got);
    cr_assert_eq(got, 5);
    for (int i = 0; i < 5; i++) {
        memcpy(&v, p + (size_t)i * stride, 8);
        cr_expect_eq(v, (uint64_t)i);
    }
    cr_expect_eq(rfx_spsc_ring_release(r, 6), -EINVAL, "cannot release more than peeked");
    cr_expect_eq(rfx_spsc_ring_release(r, 5), 0);
    /* The next reservation stops at the end of the first group (slots 5, 6);
     * the one after that is the last group, cut short by the array (slot 7). */
    w = rfx_spsc_ring_reserve(r, 8, &got);
    cr_assert_eq(got, 2);
    for (int i = 0; i < 2; i++)
        memcpy(w + (size_t)i * stride, &(uint64_t){(uint64_t)(50 + i)}, 8);
    cr_expect_eq(rfx_spsc_ring_commit(r, 2), 0);
    cr_expect_eq(rfx_spsc_ring_pop(r, &v), 0);
    cr_expect_eq(v, 50, "slot 5 holds what was written through the reservation");
    cr_expect_eq(rfx_spsc_ring_pop(r, &v), 0);
    cr_expect_eq(v, 51);
    w = rfx_spsc_ring_reserve(r, 8, &got);
    cr_assert_eq(got, 1);
    memcpy(w, &(uint64_t){99}, 8);
    cr_expect_eq(rfx_spsc_ring_commit(r, 0), 0, "committing nothing publishes nothing");
    cr_expect_eq(rfx_spsc_ring_pop(r, &v), -EAGAIN, "written but not committed: not visible");
    cr_expect_eq(rfx_spsc_ring_occupancy(r), 0);
    rfx_spsc_ring_destroy(r);
}

Test(spsc_ring, odd_element_sizes)
{
    size_t sizes[] = {1, 3, 8, 24, 64, 1000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t es = sizes[s];
        struct rfx_spsc_ring *r = make(4, es, RFX_RING_BLOCK);
        unsigned char in[1000], out[1000];
        for (int round = 0; round < 9; round++) {
            memset(in, round + 1, es);
            cr_assert_eq(rfx_spsc_ring_push(r, in), 0);
            memset(out, 0, es);
            cr_assert_eq(rfx_spsc_ring_pop(r, out), 0);
            cr_assert_eq(memcmp(in, out, es), 0, "size %zu round %d", es, round);
        }
        rfx_spsc_ring_destroy(r);
    }
}
