/* The action cache: build, lookup, generations, misses; quiet readers'
 * grace periods. */
#include "action_cache_impl.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdlib.h>

static struct rfx_action_cache *make(uint32_t max, uint32_t q)
{
    struct rfx_action_cache_config cfg = {.max_entries = max, .miss_queue = q};
    struct rfx_action_cache *c = NULL;
    cr_assert_eq(rfx_action_cache_create(&cfg, &c), 0);
    return c;
}

Test(action_cache, create_rejects_bad_arguments)
{
    struct rfx_action_cache *c = NULL;
    struct rfx_action_cache_config cfg;
    rfx_action_cache_config_default(&cfg);
    cr_expect_eq(rfx_action_cache_create(NULL, &c), -EINVAL);
    cr_expect_eq(rfx_action_cache_create(&cfg, NULL), -EINVAL);
    cfg.miss_queue = 1000;
    cr_expect_eq(rfx_action_cache_create(&cfg, &c), -EINVAL);
    cfg.miss_queue = 2;
    cr_expect_eq(rfx_action_cache_create(&cfg, &c), -EINVAL);
    rfx_action_cache_config_default(&cfg);
    cfg.max_entries = 0;
    cr_expect_eq(rfx_action_cache_create(&cfg, &c), -EINVAL);
    cr_expect_null(c);
    rfx_action_cache_destroy(NULL);
}

Test(action_cache, miss_before_the_first_snapshot)
{
    struct rfx_action_cache *c = make(64, 16);
    uint32_t a = 77;
    uint64_t gen = 99;
    cr_expect_eq(rfx_action_cache_lookup(c, 5, 6, &a, &gen), RFX_CACHE_MISS);
    cr_expect_eq(gen, 0);
    cr_expect_eq(a, 77, "a miss leaves the action alone");
    rfx_action_cache_destroy(c);
}

Test(action_cache, l1_then_l2_then_miss)
{
    struct rfx_action_cache *c = make(64, 16);
    struct rfx_cache_entry l1[] = {{.key = 10, .action = 1}, {.key = 11, .action = 2}};
    struct rfx_cache_entry l2[] = {{.key = 20, .action = 3}};
    cr_assert_eq(rfx_action_cache_publish(c, l1, 2, l2, 1), 1);
    uint32_t a = 0;
    uint64_t gen = 0;
    cr_expect_eq(rfx_action_cache_lookup(c, 10, 20, &a, &gen), RFX_CACHE_L1);
    cr_expect_eq(a, 1);
    cr_expect_eq(gen, 1);
    cr_expect_eq(rfx_action_cache_lookup(c, 12, 20, &a, &gen), RFX_CACHE_L2);
    cr_expect_eq(a, 3);
    cr_expect_eq(rfx_action_cache_lookup(c, 12, 21, &a, &gen), RFX_CACHE_MISS);
    cr_expect_eq(rfx_action_cache_lookup(c, 0, 0, &a, &gen), RFX_CACHE_MISS);
    rfx_action_cache_destroy(c);
}

Test(action_cache, each_publication_is_a_new_generation_and_replaces_the_whole)
{
    struct rfx_action_cache *c = make(64, 16);
    struct rfx_cache_entry a1[] = {{.key = 1, .action = 1}};
    struct rfx_cache_entry a2[] = {{.key = 2, .action = 2}};
    cr_assert_eq(rfx_action_cache_publish(c, a1, 1, NULL, 0), 1);
    cr_assert_eq(rfx_action_cache_publish(c, a2, 1, NULL, 0), 2);
    uint32_t a;
    uint64_t gen;
    cr_expect_eq(rfx_action_cache_lookup(c, 1, 0, &a, &gen), RFX_CACHE_MISS);
    cr_expect_eq(rfx_action_cache_lookup(c, 2, 0, &a, &gen), RFX_CACHE_L1);
    cr_expect_eq(gen, 2);
    struct rfx_action_cache_stats st;
    rfx_action_cache_stats(c, &st);
    cr_expect_eq(st.generation, 2);
    cr_expect_eq(st.publications, 2);
    cr_expect_eq(st.l1_entries, 1);
    cr_expect_eq(st.l2_entries, 0);
    rfx_action_cache_destroy(c);
}

Test(action_cache, duplicate_keys_last_wins_and_bad_input_is_refused)
{
    struct rfx_action_cache *c = make(4, 16);
    struct rfx_cache_entry d[] = {{.key = 7, .action = 1}, {.key = 7, .action = 9}};
    cr_assert_eq(rfx_action_cache_publish(c, d, 2, NULL, 0), 1);
    uint32_t a;
    cr_expect_eq(rfx_action_cache_lookup(c, 7, 0, &a, NULL), RFX_CACHE_L1);
    cr_expect_eq(a, 9);
    struct rfx_cache_entry zero[] = {{.key = 0, .action = 1}};
    cr_expect_eq(rfx_action_cache_publish(c, zero, 1, NULL, 0), -EINVAL);
    cr_expect_eq(rfx_action_cache_publish(c, NULL, 1, NULL, 0), -EINVAL);
    struct rfx_cache_entry many[5] = {{.key = 1}, {.key = 2}, {.key = 3}, {.key = 4}, {.key = 5}};
    cr_expect_eq(rfx_action_cache_publish(c, many, 5, NULL, 0), -ENOSPC);
    cr_expect_eq(rfx_action_cache_publish(NULL, many, 1, NULL, 0), -EINVAL);
    rfx_action_cache_destroy(c);
}

Test(action_cache, large_tables_find_every_key)
{
    enum { N = 20000 };
    struct rfx_action_cache *c = make(N, 16);
    struct rfx_cache_entry *e = calloc(N, sizeof *e);
    for (uint32_t i = 0; i < N; i++)
        e[i] = (struct rfx_cache_entry){.key = (uint64_t)i * 1000003 + 1, .action = i};
    cr_assert_eq(rfx_action_cache_publish(c, e, N, e, N), 1);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t a = ~0u;
        cr_assert_eq(rfx_action_cache_lookup(c, e[i].key, 0, &a, NULL), RFX_CACHE_L1);
        cr_assert_eq(a, i);
    }
    const struct rfx_snapshot *s = rfx_action_cache_snapshot(c);
    cr_expect_eq(s->checksum, rfx_snapshot_checksum(s));
    cr_expect_leq(N * 2, s->l1_mask + 1, "load factor at most one half");
    struct rfx_cache_entry *x, *y;
    size_t nx, ny;
    cr_assert_eq(rfx_action_cache_entries(c, &x, &nx, &y, &ny), 0);
    cr_expect_eq(nx, N);
    cr_expect_eq(ny, N);
    free(x);
    free(y);
    free(e);
    rfx_action_cache_destroy(c);
}

Test(action_cache, miss_queue_is_fifo_bounded_and_counts_overflow)
{
    struct rfx_action_cache *c = make(16, 8); /* ck_ring holds capacity - 1 */
    struct rfx_cache_miss m = {0};
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        m.context_key = (uint64_t)i + 1;
        if (rfx_action_cache_queue_miss(c, &m) == 0)
            ok++;
    }
    cr_expect_eq(ok, 7);
    struct rfx_action_cache_stats st;
    rfx_action_cache_stats(c, &st);
    cr_expect_eq(st.misses_queued, 7);
    cr_expect_eq(st.misses_dropped, 13);
    struct rfx_cache_miss out[16];
    cr_assert_eq(rfx_action_cache_take_misses(c, out, 16), 7);
    for (int i = 0; i < 7; i++)
        cr_expect_eq(out[i].context_key, (uint64_t)i + 1);
    cr_expect_eq(rfx_action_cache_take_misses(c, out, 16), 0);
    cr_expect_eq(rfx_action_cache_queue_miss(NULL, &m), -EINVAL);
    rfx_action_cache_destroy(c);
}

static uint64_t gen_of(const struct rfx_cache_entry *t, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].key == key)
            return t[i].generation;
    return UINT64_MAX;
}

Test(action_cache, entries_keep_the_generation_that_first_held_them)
{
    struct rfx_action_cache *c = make(64, 16);
    struct rfx_cache_entry a[] = {{.key = 1, .action = 10}, {.key = 2, .action = 20}};
    cr_assert_eq(rfx_action_cache_publish(c, a, 2, NULL, 0), 1);
    /* The next snapshot: the current one's entries plus a new plan for key 3
     * and a re-plan of key 2 (generation 0: stamped afresh). */
    for (int round = 2; round <= 3; round++) {
        struct rfx_cache_entry *l1, *l2;
        size_t n1, n2;
        cr_assert_eq(rfx_action_cache_entries(c, &l1, &n1, &l2, &n2), 0);
        l1 = realloc(l1, (n1 + 2) * sizeof *l1);
        l1[n1++] = (struct rfx_cache_entry){.key = 3, .action = 30};
        l1[n1++] = (struct rfx_cache_entry){.key = 2, .action = 21};
        cr_assert_eq(rfx_action_cache_publish(c, l1, n1, l2, n2), round);
        free(l1);
        free(l2);
    }
    struct rfx_cache_entry *l1, *l2;
    size_t n1, n2;
    cr_assert_eq(rfx_action_cache_entries(c, &l1, &n1, &l2, &n2), 0);
    cr_expect_eq(n1, 3u);
    cr_expect_eq(gen_of(l1, n1, 1), 1u, "never re-planned: still generation 1");
    cr_expect_eq(gen_of(l1, n1, 2), 3u, "re-planned in each round: the latest");
    cr_expect_eq(gen_of(l1, n1, 3), 3u, "a new plan in round 3 (the copy had 2, the plan won)");
    free(l1);
    free(l2);
    rfx_action_cache_destroy(c);
}

/*
 * Quiet readers (the engine's critical threads): a grace period that goes
 * to sleep waiting for one is not woken by its quiescent state (that would
 * be a system call on the critical thread) but by rfx_cache_grace_kick,
 * and only once every quiet reader has reported. A plain reader wakes it
 * itself. The reader holds its snapshot 100 ms, far past liburcu's brief
 * spinning, so the writer is asleep when it reports.
 */
struct grace {
    struct rfx_action_cache *c;
    bool quiet;
    _Atomic int stage; /* 1 registered, 2 writer started, 3 reported, 4 finish */
    _Atomic int published;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void *grace_reader(void *arg)
{
    struct grace *g = arg;
    if (g->quiet)
        cr_assert_eq(rfx_cache_reader_register_quiet(), 0);
    else
        rfx_cache_reader_register();
    atomic_store(&g->stage, 1);
    while (atomic_load(&g->stage) < 2)
        ;
    sleep_ms(100); /* online, holding the snapshot: no quiescent state */
    rfx_cache_quiescent();
    atomic_store(&g->stage, 3);
    while (atomic_load(&g->stage) < 4)
        rfx_cache_quiescent();
    rfx_cache_reader_unregister();
    return NULL;
}

static void *grace_writer(void *arg)
{
    struct grace *g = arg;
    struct rfx_cache_entry e = {.key = 7, .action = 1};
    atomic_store(&g->stage, 2);
    cr_assert_eq(rfx_action_cache_publish(g->c, &e, 1, NULL, 0), 2);
    atomic_store(&g->published, 1);
    return NULL;
}

static bool published_within(struct grace *g, int ms)
{
    for (int i = 0; i < ms && !atomic_load(&g->published); i++)
        sleep_ms(1);
    return atomic_load(&g->published);
}

static void grace_run(bool quiet)
{
    struct grace g = {.c = make(64, 16), .quiet = quiet};
    struct rfx_cache_entry e = {.key = 7, .action = 0};
    cr_assert_eq(rfx_action_cache_publish(g.c, &e, 1, NULL, 0), 1);
    pthread_t r, w;
    pthread_create(&r, NULL, grace_reader, &g);
    while (atomic_load(&g.stage) < 1)
        ;
    pthread_create(&w, NULL, grace_writer, &g);
    sleep_ms(50); /* the writer is waiting for the reader, asleep by now */
    cr_expect_not(atomic_load(&g.published), "a grace period ended while a reader held on");
    cr_expect_not(rfx_cache_grace_kick(), "a kick woke the writer before the reader reported");
    while (atomic_load(&g.stage) < 3)
        sleep_ms(1);
    uint64_t kicks = rfx_cache_grace_kicks();
    if (quiet) {
        cr_expect_not(published_within(&g, 100),
                      "the quiet reader's quiescent state woke the writer");
        cr_expect(rfx_cache_grace_kick(), "no grace period was asleep to be kicked");
        cr_expect_eq(rfx_cache_grace_kicks(), kicks + 1);
    }
    cr_expect(published_within(&g, 5000), "the publication never ended");
    if (!quiet)
        cr_expect_eq(rfx_cache_grace_kicks(), kicks, "a plain reader's writer was kicked");
    atomic_store(&g.stage, 4);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    rfx_action_cache_destroy(g.c);
}

Test(action_cache, a_quiet_readers_grace_period_is_woken_by_the_kick_not_the_reader)
{
    grace_run(true);
}

Test(action_cache, a_plain_reader_wakes_the_grace_period_itself)
{
    grace_run(false);
}

/*
 * A plain reader holding a grace period beside a quiet one that has
 * reported: the kick leaves the writer asleep (it would only look and sleep
 * again, at every look of the watchdog), and the plain reader wakes it.
 */
struct quiet_spinner {
    _Atomic int registered, stop;
};

static void *quiet_spin(void *arg)
{
    struct quiet_spinner *q = arg;
    cr_assert_eq(rfx_cache_reader_register_quiet(), 0);
    atomic_store(&q->registered, 1);
    while (!atomic_load(&q->stop))
        rfx_cache_quiescent();
    rfx_cache_reader_unregister();
    return NULL;
}

Test(action_cache, a_grace_period_a_plain_reader_holds_is_not_kicked)
{
    struct grace g = {.c = make(64, 16), .quiet = false};
    struct quiet_spinner q = {0};
    struct rfx_cache_entry e = {.key = 7, .action = 0};
    cr_assert_eq(rfx_action_cache_publish(g.c, &e, 1, NULL, 0), 1);
    pthread_t qt, r, w;
    pthread_create(&qt, NULL, quiet_spin, &q);
    while (!atomic_load(&q.registered))
        ;
    pthread_create(&r, NULL, grace_reader, &g);
    while (atomic_load(&g.stage) < 1)
        ;
    uint64_t kicks = rfx_cache_grace_kicks();
    pthread_create(&w, NULL, grace_writer, &g);
    sleep_ms(50); /* asleep, the quiet reader long reported, the plain one not */
    cr_expect_not(atomic_load(&g.published), "a grace period ended while a reader held on");
    for (int i = 0; i < 10; i++) {
        cr_expect_not(rfx_cache_grace_kick(), "kicked while the plain reader held it");
        sleep_ms(2);
    }
    while (atomic_load(&g.stage) < 3)
        sleep_ms(1);
    cr_expect(published_within(&g, 5000), "the plain reader did not wake the writer");
    cr_expect_eq(rfx_cache_grace_kicks(), kicks, "the writer was kicked");
    atomic_store(&g.stage, 4);
    atomic_store(&q.stop, 1);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    pthread_join(qt, NULL);
    rfx_action_cache_destroy(g.c);
}
