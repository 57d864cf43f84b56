/*
 * Ring torture: one producer and one consumer, pinned to different cores,
 * over capacities 2..65536, burst sizes 1..64, every overflow policy and
 * every API shape (single, burst, zero-copy). Each element carries a
 * sequence number and a checksum. The consumer marks what it received in a
 * bitmap; the producer marks what the ring refused or evicted in others.
 * Afterwards every sequence number must be in exactly one of them, the
 * received ones in increasing order, and the refused/evicted totals must
 * equal the ring's own counters.
 *
 * usage: ring_torture [--long] [--items N]
 *   default: bounded for CI (1e6 items a case; 1e5 with RFX_STRESS_REDUCED)
 *   --long or RFX_STRESS_LONG=1: 1e8 items a case
 */
#include "spsc_ring_impl.h"

#include <reflex/thread.h>
#include <reflex/wait.h>

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct elem {
    uint64_t seq;
    uint64_t check;
};

static uint64_t checksum(uint64_t seq)
{
    uint64_t x = seq * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    return x * 0xBF58476D1CE4E5B9ull;
}

/* On the ring an element is 16 bytes (seq, check: 3 to a cache-line group)
 * or 8 bytes (seq << 20 | low 20 bits of check: 7 to a group, the engine's
 * frame-pointer size). */
static size_t esize = 16;
#define WIRE_MAX 16

static void to_wire(const struct elem *e, unsigned char *w)
{
    if (esize == 16) {
        memcpy(w, e, 16);
    } else {
        uint64_t v = e->seq << 20 | (e->check & 0xFFFFF);
        memcpy(w, &v, 8);
    }
}

static struct elem from_wire(const unsigned char *w)
{
    struct elem e;
    if (esize == 16) {
        memcpy(&e, w, 16);
    } else {
        uint64_t v;
        memcpy(&v, w, 8);
        e.seq = v >> 20;
        e.check = (v & 0xFFFFF) == (checksum(e.seq) & 0xFFFFF) ? checksum(e.seq) : ~checksum(e.seq);
    }
    return e;
}

enum api { API_SINGLE, API_BURST, API_ZERO_COPY };
static const char *const api_names[] = {"single", "burst", "zero-copy"};

struct bitmap {
    uint64_t *w;
};

static void mark(struct bitmap *b, uint64_t i)
{
    b->w[i >> 6] |= UINT64_C(1) << (i & 63);
}

static bool test_bit(const struct bitmap *b, uint64_t i)
{
    return (b->w[i >> 6] >> (i & 63)) & 1;
}

struct run {
    struct rfx_spsc_ring *r;
    enum rfx_ring_policy policy;
    enum api api;
    unsigned burst;
    uint64_t items;
    int prod_core, cons_core;
    _Atomic int producer_done;
    /* producer results */
    struct bitmap refused, evicted;
    uint64_t n_refused, n_evicted, bad_evicted;
    /* consumer results */
    struct bitmap seen;
    uint64_t received, duplicated, reordered, corrupt;
};

static void pin(int core)
{
    char msg[256];
    if (core >= 0 && rfx_thread_pin_self(core, msg, sizeof msg) != 0)
        fprintf(stderr, "ring_torture: %s\n", msg);
}

/* Occasionally dawdle so that the drop policies actually drop. */
static void dawdle(uint64_t i, enum rfx_ring_policy p)
{
    if (p != RFX_RING_BLOCK && (i & 4095) == 0)
        for (int k = 0; k < 2000; k++)
            rfx_cpu_relax();
}

static void note_evicted(struct run *x, const struct elem *e)
{
    if (e->check != checksum(e->seq) || e->seq >= x->items) {
        x->bad_evicted++;
        return;
    }
    mark(&x->evicted, e->seq);
    x->n_evicted++;
}

static void *producer(void *arg)
{
    struct run *x = arg;
    pin(x->prod_core);
    struct elem buf[64];
    unsigned char wire[64 * WIRE_MAX], ev[64 * WIRE_MAX];
    uint64_t seq = 0;
    while (seq < x->items) {
        unsigned n = x->burst;
        if (n > x->items - seq)
            n = (unsigned)(x->items - seq);
        for (unsigned i = 0; i < n; i++) {
            buf[i] = (struct elem){seq + i, checksum(seq + i)};
            to_wire(&buf[i], wire + i * esize);
        }
        size_t stored = 0;
        if (x->api == API_SINGLE || (x->api == API_ZERO_COPY && x->policy != RFX_RING_BLOCK)) {
            /* Drop policies apply to push: zero-copy producers use reserve
             * only under backpressure. */
            for (unsigned i = 0; i < n; i++) {
                int rc;
                while ((rc = rfx_ring_push(x->r, wire + i * esize, ev)) == -EAGAIN)
                    rfx_cpu_relax();
                if (rc == -ENOBUFS) {
                    mark(&x->refused, buf[i].seq);
                    x->n_refused++;
                } else if (rc == 1) {
                    struct elem e = from_wire(ev);
                    note_evicted(x, &e);
                }
            }
            stored = n;
        } else if (x->api == API_BURST) {
            while (stored < n) {
                size_t n_ev = 0, n_drop = 0;
                size_t k = rfx_ring_push_burst(x->r, wire + stored * esize, n - stored, ev, &n_ev,
                                               &n_drop);
                for (size_t j = 0; j < n_ev; j++) {
                    struct elem e = from_wire(ev + j * esize);
                    note_evicted(x, &e);
                }
                for (size_t j = stored + k - n_drop; j < stored + k; j++) {
                    mark(&x->refused, buf[j].seq);
                    x->n_refused++;
                }
                stored += k;
                if (!k)
                    rfx_cpu_relax();
            }
        } else { /* zero-copy, block */
            while (stored < n) {
                size_t got;
                void *w = rfx_spsc_ring_reserve(x->r, n - stored, &got);
                if (!got) {
                    rfx_cpu_relax();
                    continue;
                }
                size_t stride = rfx_spsc_ring_stride(x->r);
                for (size_t j = 0; j < got; j++)
                    memcpy((unsigned char *)w + j * stride, wire + (stored + j) * esize, esize);
                rfx_spsc_ring_commit(x->r, got);
                stored += got;
            }
        }
        seq += n;
    }
    atomic_store_explicit(&x->producer_done, 1, memory_order_release);
    return NULL;
}

static void check_elem(struct run *x, const struct elem *e, uint64_t *next)
{
    if (e->check != checksum(e->seq) || e->seq >= x->items) {
        x->corrupt++;
        return;
    }
    if (test_bit(&x->seen, e->seq)) {
        x->duplicated++;
        return;
    }
    mark(&x->seen, e->seq);
    if (e->seq < *next)
        x->reordered++;
    else
        *next = e->seq + 1;
    x->received++;
}

static void *consumer(void *arg)
{
    struct run *x = arg;
    pin(x->cons_core);
    unsigned char buf[64 * WIRE_MAX];
    uint64_t next = 0, polls = 0;
    for (;;) {
        size_t got;
        int done = atomic_load_explicit(&x->producer_done, memory_order_acquire);
        if (x->api == API_ZERO_COPY) {
            const unsigned char *p = rfx_spsc_ring_peek(x->r, x->burst, &got);
            size_t stride = rfx_spsc_ring_stride(x->r);
            for (size_t i = 0; i < got; i++) {
                struct elem e = from_wire(p + i * stride);
                check_elem(x, &e, &next);
            }
            if (got)
                rfx_spsc_ring_release(x->r, got);
        } else if (x->api == API_BURST) {
            got = rfx_ring_pop_burst(x->r, buf, x->burst);
            for (size_t i = 0; i < got; i++) {
                struct elem e = from_wire(buf + i * esize);
                check_elem(x, &e, &next);
            }
        } else {
            got = rfx_ring_pop(x->r, buf) == 0;
            if (got) {
                struct elem e = from_wire(buf);
                check_elem(x, &e, &next);
            }
        }
        if (got == 0) {
            if (done)
                break; /* the producer finished before this empty look */
            rfx_cpu_relax();
        }
        dawdle(++polls, x->policy);
    }
    return NULL;
}

static uint64_t *zalloc_bits(uint64_t n)
{
    uint64_t *w = calloc((n + 63) / 64, 8);
    if (!w) {
        perror("calloc");
        exit(1);
    }
    return w;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Returns the number of violations in this case. */
static uint64_t run_case(uint64_t cap, unsigned burst, enum rfx_ring_policy pol, enum api api,
                         uint64_t items, int pc, int cc)
{
    struct run x = {0};
    x.policy = pol, x.api = api, x.burst = burst, x.items = items;
    x.prod_core = pc, x.cons_core = cc;
    if (rfx_spsc_ring_create(cap, esize, pol, &x.r) != 0) {
        fprintf(stderr, "ring_torture: create failed\n");
        exit(1);
    }
    x.refused.w = zalloc_bits(items);
    x.evicted.w = zalloc_bits(items);
    x.seen.w = zalloc_bits(items);
    double t0 = now_s();
    pthread_t tp, tc;
    pthread_create(&tc, NULL, consumer, &x);
    pthread_create(&tp, NULL, producer, &x);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    double dt = now_s() - t0;

    /* Identity: every sequence number is received, refused or evicted — once. */
    uint64_t lost = 0, double_booked = 0;
    for (uint64_t s = 0; s < items; s++) {
        int n = test_bit(&x.seen, s) + test_bit(&x.refused, s) + test_bit(&x.evicted, s);
        if (n == 0)
            lost++;
        else if (n > 1)
            double_booked++;
    }
    struct rfx_ring_stats st;
    rfx_spsc_ring_stats(x.r, &st);
    uint64_t counter_mismatch = 0;
    if (st.dropped_newest != x.n_refused)
        counter_mismatch++;
    if (st.evicted_oldest != x.n_evicted || st.skipped != st.evicted_oldest)
        counter_mismatch++;
    if (pol == RFX_RING_BLOCK && (x.n_refused || x.n_evicted))
        counter_mismatch++;
    if (st.occupancy != 0)
        counter_mismatch++;
    uint64_t bad = lost + double_booked + x.duplicated + x.reordered + x.corrupt + x.bad_evicted +
                   counter_mismatch;
    printf("elem=%-2zu cap=%-6" PRIu64 " burst=%-2u policy=%-11s api=%-9s items=%" PRIu64 " received=%" PRIu64
           " dropped_newest=%" PRIu64 " evicted=%" PRIu64 " skipped=%" PRIu64 " lost=%" PRIu64
           " dup=%" PRIu64 " reordered=%" PRIu64 " corrupt=%" PRIu64
           " counters=%s %.1f Mitems/s %s\n",
           esize, cap, burst, rfx_ring_policy_name(pol), api_names[api], items, x.received,
           st.dropped_newest, st.evicted_oldest, st.skipped, lost, x.duplicated + double_booked,
           x.reordered, x.corrupt + x.bad_evicted, counter_mismatch ? "MISMATCH" : "agree",
           (double)items / dt / 1e6, bad ? "FAIL" : "ok");
    free(x.refused.w), free(x.evicted.w), free(x.seen.w);
    rfx_spsc_ring_destroy(x.r);
    return bad;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t items = 1000000;
    if (getenv("RFX_STRESS_REDUCED"))
        items = 100000;
    bool long_run = getenv("RFX_STRESS_LONG") && atoi(getenv("RFX_STRESS_LONG"));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--long") == 0) {
            long_run = true;
        } else if (strcmp(argv[i], "--items") == 0 && i + 1 < argc) {
            items = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: ring_torture [--long] [--items N]\n");
            return 2;
        }
    }
    if (long_run)
        items = 100000000;

    int ncpu = rfx_cpu_online_count();
    int pc = 0, cc = ncpu > 1 ? 1 : 0;
    if (ncpu < 2)
        printf("note: one CPU online; producer and consumer share core 0\n");
    printf("ring_torture: %" PRIu64 " items per case, producer on core %d, consumer on core %d\n",
           items, pc, cc);

    const uint64_t caps[] = {2, 4, 16, 64, 1024, 65536};
    const unsigned bursts[] = {1, 7, 32, 64};
    uint64_t cases = 0, failed = 0, total_bad = 0;
    const size_t esizes[] = {16, 8};
    for (size_t e = 0; e < 2; e++) {
        esize = esizes[e];
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
            for (size_t b = 0; b < sizeof bursts / sizeof bursts[0]; b++) {
                for (int p = 0; p < 3; p++) {
                    /* Every API shape with every policy, rotating through bursts. */
                    enum api api = (enum api)((c + b + (size_t)p + e) % 3);
                    if (bursts[b] == 1 && api == API_BURST)
                        api = API_SINGLE;
                    uint64_t bad =
                        run_case(caps[c], bursts[b], (enum rfx_ring_policy)p, api, items, pc, cc);
                    cases++;
                    total_bad += bad;
                    failed += bad != 0;
                }
            }
        }
    }
    printf("ring_torture: %" PRIu64 " cases, %" PRIu64 " failed, %" PRIu64 " violations "
           "(lost, duplicated, reordered, corrupt or counter mismatch)\n",
           cases, failed, total_bad);
    return failed ? 1 : 0;
}
