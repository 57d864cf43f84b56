/* The strategic workers against invalidation: a plan that was being made
 * when rfx_engine_cache_invalidate_before or a cache event came must not
 * bring back what the call dropped. A running engine (synthetic source),
 * with a planner that holds its first plan until the test has cut. */
#include "builtin.h"
#include "engine_impl.h"
#include "test_out_dir.h"

#include <reflex/config.h>
#include <reflex/planner.h>

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define BASE 0x5eed0000ull /* the held plan's keys: BASE + 0..9 in L1, BASE + 100 in L2 */

struct gate {
    _Atomic int calls, held, go;
    _Atomic int after; /* calls from the held plan's thread after it */
    _Atomic int add_failed;
    pthread_t held_by;
    uint32_t cat_move, cat_combat;
};

static void nap(void)
{
    nanosleep(&(struct timespec){0, 1000000}, NULL);
}

/* First call: wait for the test, then plan five movement and five combat
 * entries in L1 and a movement entry in L2. Later calls plan nothing; those
 * on the held plan's thread are counted, as they come after its publish. */
static int held_plan(void *ctx, const struct rfx_cache_miss *m, size_t n, struct rfx_plan *out)
{
    (void)m;
    (void)n;
    struct gate *g = ctx;
    if (atomic_fetch_add(&g->calls, 1) != 0) {
        if (atomic_load(&g->go) && pthread_equal(pthread_self(), g->held_by))
            atomic_fetch_add(&g->after, 1);
        return 0;
    }
    g->held_by = pthread_self(); /* the others read it only after go */
    atomic_store(&g->held, 1);
    for (int i = 0; i < 5000 && !atomic_load(&g->go); i++)
        nap();
    int64_t now = rfx_now_ns();
    for (uint64_t i = 0; i < 10; i++) {
        struct rfx_cache_entry x = {.key = BASE + i,
                                    .action = 1,
                                    .category = i < 5 ? g->cat_move : g->cat_combat,
                                    .created_ns = now};
        if (rfx_plan_add(out, 1, &x))
            atomic_store(&g->add_failed, 1);
    }
    struct rfx_cache_entry y = {
        .key = BASE + 100, .action = 2, .category = g->cat_move, .created_ns = now};
    if (rfx_plan_add(out, 2, &y))
        atomic_store(&g->add_failed, 1);
    return 0;
}

static const struct rfx_planner_ops held_ops = {.plan = held_plan};

enum cut { NOTHING, INVALIDATE, AREA_CHANGE };

/* Runs the engine, two planners, through the held plan with `cut` made
 * while it is held. An event's pending bit is left for the other planner to
 * take (its rules pass runs while the plan is held), which is what leaves
 * the plan as the only place to drop the event's categories.
 * Returns which of the 11 keys the cache holds afterwards (bit i: BASE + i,
 * bit 10: BASE + 100) and the engine's invalidation counts. */
static unsigned run_held_plan(enum cut cut, uint64_t *by_gen, uint64_t *by_area)
{
    const char *sets[] = {"source.kind=synthetic", "sink.kind=null",    "engine.frame_hz=1000",
                          "strategic.workers=2",   "strategic.hz=50",  "strategic.max_hz=50"};
    struct rfx_engine_config cfg;
    char msg[512];
    cr_assert_eq(rfx_config_load(NULL, sets, 6, rfx_builtin_stages, 5, &cfg, msg, sizeof msg), 0,
                 "%s", msg);
    test_out_dir(&cfg);
    struct rfx_engine *e;
    struct rfx_builtin *b;
    cr_assert_eq(rfx_engine_create(&cfg, &e), 0);
    cr_assert_eq(rfx_builtin_setup(e, &cfg, &b, msg, sizeof msg), 0, "%s", msg);
    struct gate g = {0};
    int move = rfx_engine_category(e, "movement_dodge");
    int combat = rfx_engine_category(e, "combat_melee");
    cr_assert(move > 0 && combat > 0);
    g.cat_move = (uint32_t)move;
    g.cat_combat = (uint32_t)combat;
    cr_assert_eq(rfx_engine_set_planner(e, &held_ops, &g), 0);
    cr_assert_eq(rfx_engine_start(e, msg, sizeof msg), 0, "%s", msg);

    for (int i = 0; i < 5000 && !atomic_load(&g.held); i++)
        nap();
    cr_assert(atomic_load(&g.held), "the planner was never called");
    struct rfx_action_cache_stats st;
    rfx_action_cache_stats(rfx_engine_cache(e), &st);
    if (cut == INVALIDATE)
        cr_assert_eq(rfx_engine_cache_invalidate_before(e, st.generation + 1), 0);
    else if (cut == AREA_CHANGE) {
        cr_assert_eq(rfx_engine_cache_event(e, "area_change"), 0);
        for (int i = 0; i < 5000 && atomic_load(&e->pending_rules); i++)
            nap();
        cr_assert_eq(atomic_load(&e->pending_rules), 0, "the other planner took no rules pass");
    }
    atomic_store(&g.go, 1);
    /* The held thread's next call comes after its publish and after the
     * rules pass of its next tick. */
    for (int i = 0; i < 5000 && atomic_load(&g.after) == 0; i++)
        nap();
    cr_assert_gt(atomic_load(&g.after), 0, "the held planner was not called again");
    cr_assert_eq(atomic_load(&g.add_failed), 0, "rfx_plan_add failed");

    struct rfx_cache_entry *l1 = NULL, *l2 = NULL;
    size_t n1 = 0, n2 = 0;
    cr_assert_eq(rfx_action_cache_entries(rfx_engine_cache(e), &l1, &n1, &l2, &n2), 0);
    unsigned held = 0;
    for (size_t i = 0; i < n1; i++)
        if (l1[i].key >= BASE && l1[i].key < BASE + 10)
            held |= 1u << (l1[i].key - BASE);
    for (size_t i = 0; i < n2; i++)
        if (l2[i].key == BASE + 100)
            held |= 1u << 10;
    free(l1);
    free(l2);
    *by_gen = atomic_load(&e->invalidated_generation);
    *by_area = atomic_load(&e->invalidated_by_rule[0]);
    cr_assert_str_eq(cfg.rules[0].event, "area_change");

    rfx_engine_stop(e);
    rfx_engine_wait(e);
    rfx_engine_destroy(e);
    rfx_builtin_destroy(b);
    return held;
}

/* Held keys (bit i: BASE + i, bit 10: BASE + 100) and counts a run must end with. */
static void expect_run(enum cut cut, unsigned held, uint64_t by_gen, uint64_t by_area)
{
    uint64_t gen, area;
    unsigned got = run_held_plan(cut, &gen, &area);
    cr_expect_eq(got, held, "the cache holds 0x%x of the held plan's keys, expected 0x%x", got,
                 held);
    cr_expect_eq(gen, by_gen, "%llu counted as dropped by generation, expected %llu",
                 (unsigned long long)gen, (unsigned long long)by_gen);
    cr_expect_eq(area, by_area, "%llu counted for area_change, expected %llu",
                 (unsigned long long)area, (unsigned long long)by_area);
}

Test(strategic, a_plan_held_over_nothing_is_published_whole)
{
    expect_run(NOTHING, 0x7ff, 0, 0);
}

Test(strategic, a_plan_begun_before_invalidate_before_is_dropped)
{
    expect_run(INVALIDATE, 0, 11, 0);
}

Test(strategic, a_plan_begun_before_an_event_loses_what_the_event_names)
{
    /* area_change drops movement_* (keys 0..4 and the L2 one), not combat_*. */
    expect_run(AREA_CHANGE, 0x3e0, 0, 6);
}
