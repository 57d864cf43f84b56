/*
 * bench=cache: lookups per second of the RCU action cache against a
 * pthread_rwlock-protected table of the same layout (open addressing,
 * load 1/2, linear probing), side by side in one run. One reader thread
 * looks up keys (half present, half absent) in a loop; one writer thread
 * republishes the whole table at 100 Hz. The RCU reader reports a quiescent
 * state every 256 lookups, as the decide stage does once per burst.
 * Repetitions alternate the two; medians are reported.
 *
 * The other half of the bar, "lookups never block", is counted by the
 * kernel: the reader's voluntary context switches over each run
 * (getrusage RUSAGE_THREAD), i.e. the times it went to sleep because a
 * lookup could not go on. A preemption by the host is invisible to the
 * guest and one by the guest's scheduler is involuntary, so neither is
 * counted. Beside them, how long the rwlock writer held its lock per
 * rebuild: a reader that arrives then waits that long.
 *
 * Beside the bar's one reader, the 4096-entry case again with two readers,
 * one per core (the second shares core 1 with the writer, which mostly
 * sleeps): each rwlock read lock and unlock then writes a line the other
 * core also writes, where RCU readers share only read-only lines
 * (`*_2readers`, total lookups/s of both).
 *
 * usage: bench_cache [--seconds S] [--reps R]
 */
#include "action_cache_impl.h"
#include "bench_stats.h"

#include <reflex/engine.h>
#include <reflex/hdr_histogram.h>
#include <reflex/thread.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int ENTRIES = 4096; /* per run: 4096, then 256 */
#define SLOTS   (2 * ENTRIES)

static double seconds = 1.0;
static int reps = 5;
static _Atomic int stop;
static _Atomic int started;
static struct rfx_action_cache *cache;
static struct rfx_cache_entry *entries; /* what the writer publishes */
static uint64_t *probe_keys;            /* what the reader looks up */
#define NPROBE 65536

/* The rwlock peer: the same flat table. */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct rfx_cache_entry *table;

static uint64_t slot_of(uint64_t key)
{
    return ((key * 0x9E3779B97F4A7C15ull) >> 32) & (SLOTS - 1);
}

static void table_build(uint64_t gen)
{
    memset(table, 0, (size_t)SLOTS * sizeof *table);
    for (int i = 0; i < ENTRIES; i++) {
        uint64_t k = entries[i].key, s = slot_of(k);
        while (table[s].key)
            s = (s + 1) & (SLOTS - 1);
        table[s] = entries[i];
        table[s].action = (uint32_t)(entries[i].action + gen);
    }
}

static bool table_lookup(uint64_t key, uint32_t *action)
{
    for (uint64_t s = slot_of(key);; s = (s + 1) & (SLOTS - 1)) {
        if (table[s].key == key) {
            *action = table[s].action;
            return true;
        }
        if (!table[s].key)
            return false;
    }
}

static void pin(int core)
{
    char msg[200];
    if (rfx_thread_pin_self(core, msg, sizeof msg) != 0)
        fprintf(stderr, "bench_cache: %s\n", msg);
}

struct result {
    uint64_t lookups, hits, publications;
    uint64_t waits; /* the reader's voluntary context switches */
    double secs;
};

/* Write-lock hold times of the rwlock writer, ns. */
static struct rfx_hdr *hold_ns;

static uint64_t voluntary_switches(void)
{
    struct rusage u;
    return getrusage(RUSAGE_THREAD, &u) == 0 ? (uint64_t)u.ru_nvcsw : 0;
}

static void *writer(void *arg)
{
    int rcu = *(int *)arg;
    pin(1);
    uint64_t gen = 0;
    while (!atomic_load(&started))
        ;
    while (!atomic_load(&stop)) {
        gen++;
        if (rcu) {
            rfx_action_cache_publish(cache, entries, ENTRIES, entries, ENTRIES / 4);
        } else {
            pthread_rwlock_wrlock(&lock);
            int64_t held = rfx_now_ns();
            table_build(gen);
            held = rfx_now_ns() - held;
            pthread_rwlock_unlock(&lock);
            rfx_hdr_record(hold_ns, held);
        }
        struct timespec ts = {0, 10000000}; /* 100 Hz */
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* One reader's loop, until `end`: lookups, hits, sleeps. */
static void read_until(int rcu, int64_t end, struct result *r)
{
    uint64_t sw0 = voluntary_switches();
    int64_t t0 = rfx_now_ns();
    uint64_t n = 0, hits = 0, sink = 0;
    for (;;) {
        for (int k = 0; k < 256; k++) {
            uint64_t key = probe_keys[(n + (uint64_t)k) & (NPROBE - 1)];
            uint32_t a = 0;
            if (rcu) {
                hits += rfx_action_cache_lookup(cache, key, 0, &a, NULL) == RFX_CACHE_L1;
            } else {
                pthread_rwlock_rdlock(&lock);
                hits += table_lookup(key, &a);
                pthread_rwlock_unlock(&lock);
            }
            sink += a;
        }
        n += 256;
        if (rcu)
            rfx_cache_quiescent();
        if ((n & 0xffff) == 0 && rfx_now_ns() >= end)
            break;
    }
    r->secs = (rfx_now_ns() - t0) * 1e-9;
    r->waits = voluntary_switches() - sw0;
    r->lookups = n;
    r->hits = hits + (sink & 0); /* keep the loads */
}

/* A second reader, on core 1 (beside the writer, which mostly sleeps). */
struct second {
    int rcu;
    int64_t end;
    struct result r;
};

static void *second_reader(void *arg)
{
    struct second *x = arg;
    pin(1);
    if (x->rcu)
        rfx_cache_reader_register();
    while (!atomic_load(&started))
        ;
    read_until(x->rcu, x->end, &x->r);
    if (x->rcu) {
        rfx_cache_reader_offline();
        rfx_cache_reader_unregister();
    }
    return NULL;
}

/* `readers` (1 or 2) readers and the writer; the readers' results summed
 * (secs: the first reader's). */
static struct result run(int rcu, int readers)
{
    struct result r = {0};
    atomic_store(&stop, 0);
    atomic_store(&started, 0);
    int64_t end = rfx_now_ns() + (int64_t)(seconds * 1e9) + 10000000;
    struct second x = {.rcu = rcu, .end = end};
    pthread_t w, r2;
    pthread_create(&w, NULL, writer, &rcu);
    if (readers > 1)
        pthread_create(&r2, NULL, second_reader, &x);
    pin(0);
    if (rcu)
        rfx_cache_reader_register();
    atomic_store(&started, 1);
    read_until(rcu, end, &r);
    if (rcu)
        rfx_cache_reader_offline(); /* let the writer's last grace period end */
    if (readers > 1) {
        pthread_join(r2, NULL);
        r.lookups += x.r.lookups;
        r.hits += x.r.hits;
        r.waits += x.r.waits;
    }
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    if (rcu)
        rfx_cache_reader_unregister();
    return r;
}

struct sized {
    double rcu, rw, hit_rcu, hit_rw;
    double rcu_waits, rw_waits; /* per second */
    double hold_p50_us, hold_max_us;
    double rcu2, rw2; /* two readers, one per core (0: not measured) */
    unsigned long long publications;
};

static struct sized measure(int n, bool two_readers)
{
    ENTRIES = n;
    entries = calloc((size_t)ENTRIES, sizeof *entries);
    table = calloc((size_t)SLOTS, sizeof *table);
    srand(7);
    for (int i = 0; i < ENTRIES; i++)
        entries[i] = (struct rfx_cache_entry){.key = ((uint64_t)rand() << 20) | (uint64_t)i | 1,
                                              .action = (uint32_t)i};
    for (int i = 0; i < NPROBE; i++)
        probe_keys[i] = (i & 1) ? entries[rand() % ENTRIES].key : ((uint64_t)rand() << 21) + 2;
    struct rfx_action_cache_config cfg = {.max_entries = (uint32_t)ENTRIES, .miss_queue = 16};
    struct sized out = {0};
    if (rfx_action_cache_create(&cfg, &cache) != 0)
        exit(1);
    rfx_action_cache_publish(cache, entries, (size_t)ENTRIES, entries, (size_t)ENTRIES / 4);
    table_build(0);
    if (rfx_hdr_create(1, 10000000000LL, 3, &hold_ns) != 0)
        exit(1);
    double rcu[31], rw[31], rcu_w[31], rw_w[31];
    for (int r = 0; r < reps; r++) {
        struct result a = run(1, 1), b = run(0, 1);
        rcu[r] = a.lookups / a.secs / 1e6;
        rw[r] = b.lookups / b.secs / 1e6;
        rcu_w[r] = a.waits / a.secs;
        rw_w[r] = b.waits / b.secs;
        out.hit_rcu = (double)a.hits / (double)a.lookups;
        out.hit_rw = (double)b.hits / (double)b.lookups;
        printf("%d entries, rep %d: rcu %.1f M lookups/s (reader slept %" PRIu64
               " times), rwlock %.1f M lookups/s (reader slept %" PRIu64 " times)\n",
               n, r, rcu[r], a.waits, rw[r], b.waits);
    }
    double rcu2[31], rw2[31];
    for (int r = 0; two_readers && r < reps; r++) {
        struct result a = run(1, 2), b = run(0, 2);
        rcu2[r] = a.lookups / a.secs / 1e6;
        rw2[r] = b.lookups / b.secs / 1e6;
        printf("%d entries, two readers, rep %d: rcu %.1f M lookups/s, rwlock %.1f M lookups/s\n",
               n, r, rcu2[r], rw2[r]);
    }
    if (two_readers) {
        out.rcu2 = bench_median(rcu2, reps);
        out.rw2 = bench_median(rw2, reps);
    }
    out.rcu = bench_median(rcu, reps);
    out.rw = bench_median(rw, reps);
    out.rcu_waits = bench_median(rcu_w, reps);
    out.rw_waits = bench_median(rw_w, reps);
    out.hold_p50_us = rfx_hdr_value_at_percentile(hold_ns, 50) / 1e3;
    out.hold_max_us = rfx_hdr_max(hold_ns) / 1e3;
    printf("%d entries: the rwlock writer held its lock %lld times, p50 %.1f us, max %.1f us\n", n,
           (long long)rfx_hdr_total_count(hold_ns), out.hold_p50_us, out.hold_max_us);
    rfx_hdr_destroy(hold_ns);
    struct rfx_action_cache_stats st;
    rfx_action_cache_stats(cache, &st);
    out.publications = (unsigned long long)st.publications;
    rfx_action_cache_destroy(cache);
    free(entries);
    free(table);
    return out;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cache [--seconds S] [--reps R]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 31)
        reps = 5;
    probe_keys = calloc(NPROBE, sizeof *probe_keys);
    struct sized big = measure(4096, true), small = measure(256, false);
    printf("SUMMARY bench=cache rcu_mlookups=%.1f rwlock_mlookups=%.1f ratio_vs_rwlock=%.2f "
           "rcu_mlookups_256=%.1f rwlock_mlookups_256=%.1f ratio_vs_rwlock_256=%.2f "
           "hit_fraction=%.3f publications=%llu rcu_reader_sleeps_per_s=%.1f "
           "rwlock_reader_sleeps_per_s=%.1f rwlock_hold_us_p50=%.1f rwlock_hold_us_max=%.1f "
           "rcu_mlookups_2readers=%.1f rwlock_mlookups_2readers=%.1f "
           "ratio_vs_rwlock_2readers=%.2f entries=4096 writer_hz=100 seconds=%g reps=%d\n",
           big.rcu, big.rw, big.rcu / big.rw, small.rcu, small.rw, small.rcu / small.rw,
           big.hit_rcu, big.publications, big.rcu_waits, big.rw_waits, big.hold_p50_us,
           big.hold_max_us, big.rcu2, big.rw2, big.rw2 > 0 ? big.rcu2 / big.rw2 : 0.0, seconds,
           reps);
    free(probe_keys);
    return 0;
}
