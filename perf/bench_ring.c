/*
 * bench=ring: reflex's SPSC ring against its peers and the physical limit,
 * side by side in one run, producer and consumer pinned to two cores.
 *
 *   throughput  single-item and burst-32 transfers of 8-byte elements
 *               (pointers, as the engine carries) through a 1024-slot ring:
 *               reflex (inline fast path, as the engine uses it), reflex's
 *               public out-of-line API, ck_ring SPSC, rte_ring SP/SC (when
 *               DPDK is built in). Repetitions interleave the implementations
 *               so that machine noise hits them alike; medians are reported.
 *   round trip  ping through one ring and pong back through another, timed
 *               per round trip with the TSC; p50 and p99. The physical limit
 *               is a raw cache-line ping-pong between the same two cores,
 *               measured right after reflex's round trips in each
 *               repetition; ratio_rtt_vs_pingpong is the median of those
 *               per-repetition ratios.
 *
 * usage: bench_ring [--items N] [--reps R] [--rtts M]
 */
#include "hdr_histogram_impl.h"
#include "spsc_ring_impl.h"
#include "bench_stats.h"

#include <reflex/thread.h>
#include <reflex/wait.h>

#include <ck_ring.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#ifdef RFX_HAVE_DPDK
#include <rte_ring.h>
#endif

#define CAP   1024
#define BURST 32

static uint64_t n_items = 20000000;
static int reps = 7;
static uint64_t n_rtts = 200000;
static int core_a = 0, core_b = 1;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double tsc_per_ns;
static void calibrate_tsc(void)
{
    double t0 = now_s();
    uint64_t c0 = __rdtsc();
    while (now_s() - t0 < 0.2)
        ;
    tsc_per_ns = (double)(__rdtsc() - c0) / ((now_s() - t0) * 1e9);
}

static void pin(int core)
{
    char msg[256];
    if (rfx_thread_pin_self(core, msg, sizeof msg) != 0) {
        fprintf(stderr, "bench_ring: %s\n", msg);
        exit(1);
    }
}

/* ---- the rings under test, behind a uniform set of macros ---- */

static struct rfx_spsc_ring *rx_ring, *rx_back;
static struct ck_ring ck, ck2;
static struct ck_ring_buffer *ck_buf, *ck_buf2;
#ifdef RFX_HAVE_DPDK
static struct rte_ring *rte, *rte2;
#endif

static size_t ck_push_burst(struct ck_ring *r, struct ck_ring_buffer *b, void **v, size_t n)
{
    size_t i = 0; /* ck_ring has no SPSC burst: a burst is a loop of enqueues */
    while (i < n && ck_ring_enqueue_spsc(r, b, v[i]))
        i++;
    return i;
}

static size_t ck_pop_burst(struct ck_ring *r, struct ck_ring_buffer *b, void **v, size_t n)
{
    size_t i = 0;
    while (i < n && ck_ring_dequeue_spsc(r, b, &v[i]))
        i++;
    return i;
}

/*
 * BENCH(name, RING, PUSH, POP, PUSHB, POPB): producer/consumer loops for one
 * implementation. PUSH(ring, v) and POP(ring, &v) are true on success;
 * PUSHB/POPB return how many elements moved.
 */
#define BENCH(name, R1, R2, PUSH, POP, PUSHB, POPB)                                                \
    static void *name##_prod(void *arg)                                                            \
    {                                                                                              \
        struct shared *s = arg;                                                                    \
        pin(core_a);                                                                               \
        wait_start(s);                                                                             \
        if (s->burst == 1) {                                                                       \
            for (uintptr_t i = 1; i <= n_items; i++)                                               \
                while (!PUSH(R1, (void *)i))                                                       \
                    _mm_pause();                                                                   \
        } else {                                                                                   \
            void *v[BURST];                                                                        \
            for (uintptr_t i = 1; i <= n_items; i += BURST) {                                      \
                for (int k = 0; k < BURST; k++)                                                    \
                    v[k] = (void *)(i + (uintptr_t)k);                                             \
                size_t done = 0;                                                                   \
                while (done < BURST) {                                                             \
                    size_t m = PUSHB(R1, v + done, BURST - done);                                  \
                    if (!m)                                                                        \
                        _mm_pause();                                                               \
                    done += m;                                                                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        return NULL;                                                                               \
    }                                                                                              \
    static void *name##_cons(void *arg)                                                            \
    {                                                                                              \
        struct shared *s = arg;                                                                    \
        pin(core_b);                                                                               \
        wait_start(s);                                                                             \
        uintptr_t expect = 1;                                                                      \
        void *v[BURST];                                                                            \
        while (expect <= n_items) {                                                                \
            size_t m;                                                                              \
            if (s->burst == 1)                                                                     \
                m = POP(R1, &v[0]) ? 1 : 0;                                                        \
            else                                                                                   \
                m = POPB(R1, v, BURST);                                                            \
            if (!m) {                                                                              \
                _mm_pause();                                                                       \
                continue;                                                                          \
            }                                                                                      \
            for (size_t k = 0; k < m; k++)                                                         \
                s->errors += (uintptr_t)v[k] != expect++;                                          \
        }                                                                                          \
        s->t_end = now_s();                                                                        \
        return NULL;                                                                               \
    }                                                                                              \
    static void *name##_ping(void *arg)                                                            \
    {                                                                                              \
        struct shared *s = arg;                                                                    \
        pin(core_a);                                                                               \
        wait_start(s);                                                                             \
        for (uint64_t i = 0; i < n_rtts + n_rtts / 10; i++) {                                      \
            uint64_t t0 = __rdtsc();                                                               \
            while (!PUSH(R1, (void *)(uintptr_t)(i + 1)))                                          \
                _mm_pause();                                                                       \
            void *back;                                                                            \
            while (!POP(R2, &back))                                                                \
                _mm_pause();                                                                       \
            uint64_t dt = __rdtsc() - t0;                                                          \
            if (i >= n_rtts / 10) /* the first tenth warms up */                                   \
                rfx_hdr_record_fast(s->rtt, (int64_t)dt);                                          \
            s->errors += (uintptr_t)back != i + 1;                                                 \
        }                                                                                          \
        return NULL;                                                                               \
    }                                                                                              \
    static void *name##_pong(void *arg)                                                            \
    {                                                                                              \
        struct shared *s = arg;                                                                    \
        pin(core_b);                                                                               \
        wait_start(s);                                                                             \
        for (uint64_t i = 0; i < n_rtts + n_rtts / 10; i++) {                                      \
            void *v;                                                                               \
            while (!POP(R1, &v))                                                                   \
                _mm_pause();                                                                       \
            while (!PUSH(R2, v))                                                                   \
                _mm_pause();                                                                       \
        }                                                                                          \
        return NULL;                                                                               \
    }

struct shared {
    _Alignas(64) _Atomic int go;
    _Alignas(64) int burst;
    uint64_t errors;
    double t_end;
    struct rfx_hdr *rtt;
};

static void wait_start(struct shared *s)
{
    while (!atomic_load_explicit(&s->go, memory_order_acquire))
        _mm_pause();
}

#define RX_PUSH(r, v)     (rfx_ring_push((r), &(void *){(v)}, NULL) == 0)
#define RX_POP(r, pv)     (rfx_ring_pop((r), (pv)) == 0)
#define RX_PUSHB(r, v, n) rfx_ring_push_burst((r), (v), (n), NULL, NULL, NULL)
#define RX_POPB(r, v, n)  rfx_ring_pop_burst((r), (v), (n))
BENCH(reflex, rx_ring, rx_back, RX_PUSH, RX_POP, RX_PUSHB, RX_POPB)

#define API_PUSH(r, v)     (rfx_spsc_ring_push((r), &(void *){(v)}) == 0)
#define API_POP(r, pv)     (rfx_spsc_ring_pop((r), (pv)) == 0)
#define API_PUSHB(r, v, n) (size_t) rfx_spsc_ring_push_burst((r), (v), (n))
#define API_POPB(r, v, n)  (size_t) rfx_spsc_ring_pop_burst((r), (v), (n))
BENCH(reflex_api, rx_ring, rx_back, API_PUSH, API_POP, API_PUSHB, API_POPB)

#define CK_PUSH(r, v)     ck_ring_enqueue_spsc(&ck##r, ck_buf##r, (v))
#define CK_POP(r, pv)     ck_ring_dequeue_spsc(&ck##r, ck_buf##r, (pv))
#define CK_PUSHB(r, v, n) ck_push_burst(&ck##r, ck_buf##r, (v), (n))
#define CK_POPB(r, v, n)  ck_pop_burst(&ck##r, ck_buf##r, (v), (n))
BENCH(ck, , 2, CK_PUSH, CK_POP, CK_PUSHB, CK_POPB)

#ifdef RFX_HAVE_DPDK
#define RTE_PUSH(r, v)     (rte_ring_sp_enqueue((r), (v)) == 0)
#define RTE_POP(r, pv)     (rte_ring_sc_dequeue((r), (pv)) == 0)
#define RTE_PUSHB(r, v, n) rte_ring_sp_enqueue_burst((r), (v), (unsigned)(n), NULL)
#define RTE_POPB(r, v, n)  rte_ring_sc_dequeue_burst((r), (v), (unsigned)(n), NULL)
BENCH(rte, rte, rte2, RTE_PUSH, RTE_POP, RTE_PUSHB, RTE_POPB)
#endif

/* The physical limit: one cache line bounced between the two cores. */
static _Alignas(64) _Atomic uint64_t line;
static void *pp_ping(void *arg)
{
    struct shared *s = arg;
    pin(core_a);
    wait_start(s);
    for (uint64_t i = 0; i < n_rtts + n_rtts / 10; i++) {
        uint64_t t0 = __rdtsc();
        atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2)
            _mm_pause();
        uint64_t dt = __rdtsc() - t0;
        if (i >= n_rtts / 10)
            rfx_hdr_record_fast(s->rtt, (int64_t)dt);
    }
    return NULL;
}
static void *pp_pong(void *arg)
{
    struct shared *s = arg;
    pin(core_b);
    wait_start(s);
    for (uint64_t i = 0; i < n_rtts + n_rtts / 10; i++) {
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1)
            _mm_pause();
        atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static void reset_rings(void)
{
    rfx_spsc_ring_destroy(rx_ring);
    rfx_spsc_ring_destroy(rx_back);
    if (rfx_spsc_ring_create(CAP, sizeof(void *), RFX_RING_BLOCK, &rx_ring) ||
        rfx_spsc_ring_create(CAP, sizeof(void *), RFX_RING_BLOCK, &rx_back)) {
        fprintf(stderr, "bench_ring: ring create failed\n");
        exit(1);
    }
    ck_ring_init(&ck, CAP);
    ck_ring_init(&ck2, CAP);
#ifdef RFX_HAVE_DPDK
    if (rte_ring_init(rte, "a", CAP, RING_F_SP_ENQ | RING_F_SC_DEQ) ||
        rte_ring_init(rte2, "b", CAP, RING_F_SP_ENQ | RING_F_SC_DEQ)) {
        fprintf(stderr, "bench_ring: rte_ring_init failed\n");
        exit(1);
    }
#endif
}

/* Run one producer/consumer pair; return Mitems/s (or the RTT histogram). */
static double run(void *(*a)(void *), void *(*b)(void *), int burst, struct shared *s)
{
    reset_rings();
    atomic_store(&s->go, 0);
    s->burst = burst;
    s->errors = 0;
    pthread_t ta, tb;
    pthread_create(&tb, NULL, b, s);
    pthread_create(&ta, NULL, a, s);
    struct timespec settle = {0, 20000000};
    nanosleep(&settle, NULL); /* both threads pinned and spinning on go */
    double t0 = now_s();
    atomic_store_explicit(&s->go, 1, memory_order_release);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (s->errors) {
        fprintf(stderr, "bench_ring: %" PRIu64 " elements out of order\n", s->errors);
        exit(1);
    }
    return (double)n_items / (s->t_end - t0) / 1e6;
}

struct impl {
    const char *name;
    void *(*prod)(void *), *(*cons)(void *), *(*ping)(void *), *(*pong)(void *);
    double single[32], burst[32], rtt_p50[32], rtt_p99[32];
};

static void rtt(struct impl *im, struct shared *s, int rep)
{
    rfx_hdr_reset(s->rtt);
    run(im->ping, im->pong, 1, s);
    im->rtt_p50[rep] = (double)rfx_hdr_value_at_percentile(s->rtt, 50) / tsc_per_ns;
    im->rtt_p99[rep] = (double)rfx_hdr_value_at_percentile(s->rtt, 99) / tsc_per_ns;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--items") == 0 && i + 1 < argc)
            n_items = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rtts") == 0 && i + 1 < argc)
            n_rtts = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_ring [--items N] [--reps R] [--rtts M]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 31)
        reps = 7;
    n_items -= n_items % BURST;
    if (rfx_cpu_online_count() < 2) {
        fprintf(stderr, "bench_ring: needs two online cores\n");
        return 1;
    }
    calibrate_tsc();
    ck_buf = calloc(CAP, sizeof *ck_buf);
    ck_buf2 = calloc(CAP, sizeof *ck_buf2);
#ifdef RFX_HAVE_DPDK
    rte = aligned_alloc(128, (size_t)rte_ring_get_memsize(CAP));
    rte2 = aligned_alloc(128, (size_t)rte_ring_get_memsize(CAP));
#endif
    struct shared *s = aligned_alloc(64, sizeof *s);
    memset(s, 0, sizeof *s);
    rfx_hdr_create(1, 100000000000LL, 3, &s->rtt);

    struct impl impls[] = {
        {"reflex", reflex_prod, reflex_cons, reflex_ping, reflex_pong, {0}, {0}, {0}, {0}},
        {"reflex_api",
         reflex_api_prod,
         reflex_api_cons,
         reflex_api_ping,
         reflex_api_pong,
         {0},
         {0},
         {0},
         {0}},
        {"ck", ck_prod, ck_cons, ck_ping, ck_pong, {0}, {0}, {0}, {0}},
#ifdef RFX_HAVE_DPDK
        {"rte", rte_prod, rte_cons, rte_ping, rte_pong, {0}, {0}, {0}, {0}},
#endif
    };
    int ni = (int)(sizeof impls / sizeof impls[0]);
    double pp[32];
    printf("bench_ring: %" PRIu64 " items x %d reps, %" PRIu64 " round trips, cores %d/%d, "
           "TSC %.3f GHz\n",
           n_items, reps, n_rtts, core_a, core_b, tsc_per_ns);
    /* Warm-up: one untimed pass of each. */
    for (int i = 0; i < ni; i++)
        run(impls[i].prod, impls[i].cons, 1, s);
    double rtt_ratio[32];
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < ni; i++) {
            impls[i].single[r] = run(impls[i].prod, impls[i].cons, 1, s);
            impls[i].burst[r] = run(impls[i].prod, impls[i].cons, BURST, s);
            rtt(&impls[i], s, r);
            if (i == 0) {
                /* The ping-pong right after reflex's round trips, so that each
                 * repetition's ratio compares two figures taken moments apart
                 * (this VM moves between regimes from one second to the next). */
                rfx_hdr_reset(s->rtt);
                run(pp_ping, pp_pong, 1, s);
                pp[r] = (double)rfx_hdr_value_at_percentile(s->rtt, 50) / tsc_per_ns;
                rtt_ratio[r] = impls[0].rtt_p50[r] / pp[r];
            }
        }
        printf("rep %d:", r);
        for (int i = 0; i < ni; i++)
            printf(" %s %.1f/%.1f Mops %.0f ns;", impls[i].name, impls[i].single[r],
                   impls[i].burst[r], impls[i].rtt_p50[r]);
        printf(" pingpong %.0f ns\n", pp[r]);
    }
    double med_single[8], med_burst[8], med_p50[8], med_p99[8];
    for (int i = 0; i < ni; i++) {
        med_single[i] = bench_median(impls[i].single, reps);
        med_burst[i] = bench_median(impls[i].burst, reps);
        med_p50[i] = bench_median(impls[i].rtt_p50, reps);
        med_p99[i] = bench_median(impls[i].rtt_p99, reps);
        printf("%-10s single %7.1f Mops  burst32 %7.1f Mops  rtt p50 %5.0f ns  p99 %5.0f ns\n",
               impls[i].name, med_single[i], med_burst[i], med_p50[i], med_p99[i]);
    }
    double pingpong = bench_median(pp, reps);
    double ratio_rtt = bench_median(rtt_ratio, reps);
    /* Best peer: ck and rte (indices 2..). */
    int best_single = 2, best_burst = 2, best_rtt = 2;
    for (int i = 3; i < ni; i++) {
        if (med_single[i] > med_single[best_single])
            best_single = i;
        if (med_burst[i] > med_burst[best_burst])
            best_burst = i;
        if (med_p50[i] < med_p50[best_rtt])
            best_rtt = i;
    }
    /* BRIEF §7: single-item >= 1.5x the better peer's single-item rate;
     * burst-32 >= 5x that same figure. The like-for-like burst ratio (against
     * the better peer's own burst-32) is printed too. */
    printf("SUMMARY bench=ring reflex_single_mops=%.1f reflex_burst32_mops=%.1f "
           "reflex_api_single_mops=%.1f ck_single_mops=%.1f ck_burst32_mops=%.1f "
#ifdef RFX_HAVE_DPDK
           "rte_single_mops=%.1f rte_burst32_mops=%.1f "
#endif
           "best_peer_single_mops=%.1f best_peer_burst32_mops=%.1f "
           "ratio_single_vs_best_peer=%.2f ratio_burst32_vs_best_peer=%.2f "
           "ratio_burst32_vs_best_peer_burst32=%.2f "
           "rtt_p50_ns=%.0f rtt_p99_ns=%.0f peer_rtt_p50_ns=%.0f peer_rtt_p99_ns=%.0f "
           "pingpong_rtt_ns=%.0f ratio_rtt_vs_pingpong=%.2f best_peer=%s reps=%d\n",
           med_single[0], med_burst[0], med_single[1], med_single[2], med_burst[2],
#ifdef RFX_HAVE_DPDK
           med_single[3], med_burst[3],
#endif
           med_single[best_single], med_burst[best_burst], med_single[0] / med_single[best_single],
           med_burst[0] / med_single[best_single], med_burst[0] / med_burst[best_burst], med_p50[0],
           med_p99[0], med_p50[best_rtt], med_p99[best_rtt], pingpong, ratio_rtt,
           impls[best_single].name, reps);
    return 0;
}
