/*
 * bench=cache: lookups per second of the RCU action cache against a
 * pthread_rwlock-protected table of the same layout (open addressing,
 * load 1/2, linear probing), side by side in one run. One reader thread
 * looks up keys (half present, half absent) in a loop; one writer thread
 * republishes the whole table at 100 Hz. The RCU reader reports a quiescent
 * state every 256 lookups, as the decide stage does once per burst.
 * Repetitions alternate the two; medians are reported.
 *
 * usage: bench_cache [--seconds S] [--reps R]
 */
#include "action_cache_impl.h"

#include <reflex/engine.h>
#include <reflex/thread.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENTRIES 4096
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
static struct rfx_cache_entry table[SLOTS];

static uint64_t slot_of(uint64_t key)
{
    return ((key * 0x9E3779B97F4A7C15ull) >> 32) & (SLOTS - 1);
}

static void table_build(uint64_t gen)
{
    memset(table, 0, sizeof table);
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
    double secs;
};

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
            table_build(gen);
            pthread_rwlock_unlock(&lock);
        }
        struct timespec ts = {0, 10000000}; /* 100 Hz */
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static struct result run(int rcu)
{
    struct result r = {0};
    atomic_store(&stop, 0);
    atomic_store(&started, 0);
    pthread_t w;
    pthread_create(&w, NULL, writer, &rcu);
    pin(0);
    if (rcu)
        rfx_cache_reader_register();
    atomic_store(&started, 1);
    int64_t t0 = rfx_now_ns(), end = t0 + (int64_t)(seconds * 1e9);
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
    r.secs = (rfx_now_ns() - t0) * 1e-9;
    if (rcu) {
        rfx_cache_reader_offline(); /* let the writer's last grace period end */
    }
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    if (rcu)
        rfx_cache_reader_unregister();
    r.lookups = n;
    r.hits = hits + (sink & 0); /* keep the loads */
    return r;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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
    entries = calloc(ENTRIES, sizeof *entries);
    probe_keys = calloc(NPROBE, sizeof *probe_keys);
    srand(7);
    for (int i = 0; i < ENTRIES; i++)
        entries[i] = (struct rfx_cache_entry){.key = ((uint64_t)rand() << 20) | (uint64_t)i | 1,
                                              .action = (uint32_t)i};
    for (int i = 0; i < NPROBE; i++)
        probe_keys[i] = (i & 1) ? entries[rand() % ENTRIES].key : ((uint64_t)rand() << 21) + 2;
    struct rfx_action_cache_config cfg = {.max_entries = ENTRIES, .miss_queue = 16};
    if (rfx_action_cache_create(&cfg, &cache) != 0)
        return 1;
    rfx_action_cache_publish(cache, entries, ENTRIES, entries, ENTRIES / 4);
    table_build(0);
    double rcu[31], rw[31];
    double hit_rcu = 0, hit_rw = 0;
    for (int r = 0; r < reps; r++) {
        struct result a = run(1), b = run(0);
        rcu[r] = a.lookups / a.secs / 1e6;
        rw[r] = b.lookups / b.secs / 1e6;
        hit_rcu = (double)a.hits / (double)a.lookups;
        hit_rw = (double)b.hits / (double)b.lookups;
        printf("rep %d: rcu %.1f M lookups/s, rwlock %.1f M lookups/s\n", r, rcu[r], rw[r]);
    }
    qsort(rcu, (size_t)reps, sizeof *rcu, cmp);
    qsort(rw, (size_t)reps, sizeof *rw, cmp);
    struct rfx_action_cache_stats st;
    rfx_action_cache_stats(cache, &st);
    printf("SUMMARY bench=cache rcu_mlookups=%.1f rwlock_mlookups=%.1f ratio_vs_rwlock=%.2f "
           "hit_fraction_rcu=%.3f hit_fraction_rwlock=%.3f publications=%llu writer_hz=100 "
           "seconds=%g reps=%d\n",
           rcu[reps / 2], rw[reps / 2], rcu[reps / 2] / rw[reps / 2], hit_rcu, hit_rw,
           (unsigned long long)st.publications, seconds, reps);
    rfx_action_cache_destroy(cache);
    free(entries);
    free(probe_keys);
    return 0;
}
