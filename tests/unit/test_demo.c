/*
 * The demo bot plays better than its own safe reflex: planning matters.
 *
 * The pipeline's closed loop, played offline and deterministically: each
 * tick the bot decides from the state it sees (the L1 entry for its context
 * key, else the L2 entry for its pattern key, else the fallback, queueing
 * the state for the planner), and the game applies that action one tick
 * later, as capture applies the last action execute handed back. The
 * planner's entries appear every 30 ticks (a strategic worker at 2 Hz, 60
 * FPS). Against it: a bot that never moves, and one with only the fallback.
 * 20 seeds of 1800 ticks (30 s) each.
 */
#include "builtin.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define TICKS   1800
#define SEEDS   20
#define PUBLISH 30
#define SLOTS   (1u << 16)

struct table {
    uint64_t key[SLOTS];
    uint8_t action[SLOTS];
};

static uint32_t slot(uint64_t key)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 48);
}

static bool find(const struct table *t, uint64_t key, int *action)
{
    for (uint32_t s = slot(key);; s = (s + 1) & (SLOTS - 1)) {
        if (t->key[s] == key) {
            *action = t->action[s];
            return true;
        }
        if (!t->key[s])
            return false;
    }
}

static void put(struct table *t, uint64_t key, int action)
{
    uint32_t s = slot(key);
    while (t->key[s] && t->key[s] != key)
        s = (s + 1) & (SLOTS - 1);
    t->key[s] = key;
    t->action[s] = (uint8_t)action;
}

enum bot { STILL, FALLBACK, CACHE };

struct outcome {
    uint64_t hits, dodged, l1, l2, misses;
};

static void play(enum bot bot, struct outcome *o)
{
    static struct table l1, l2;
    static struct rfx_demo_state queued[TICKS];
    memset(o, 0, sizeof *o);
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        memset(&l1, 0, sizeof l1);
        memset(&l2, 0, sizeof l2);
        int n_queued = 0, pending = RFX_ACT_STAY;
        struct rfx_demo_game g;
        rfx_demo_game_init(&g, seed);
        for (int t = 0; t < TICKS; t++) {
            const struct rfx_demo_state *s = &g.s;
            int action = RFX_ACT_STAY;
            if (bot == FALLBACK) {
                action = rfx_demo_fallback(s);
            } else if (bot == CACHE) {
                if (find(&l1, rfx_demo_context_key(s), &action)) {
                    o->l1++;
                } else if (find(&l2, rfx_demo_pattern_key(s), &action)) {
                    o->l2++;
                } else {
                    o->misses++;
                    action = rfx_demo_fallback(s);
                    queued[n_queued++] = *s;
                }
                if (t % PUBLISH == PUBLISH - 1) {
                    for (int i = 0; i < n_queued; i++) {
                        int a = rfx_demo_plan(&queued[i]);
                        put(&l1, rfx_demo_context_key(&queued[i]), a);
                        put(&l2, rfx_demo_pattern_key(&queued[i]), a);
                    }
                    n_queued = 0;
                }
            }
            rfx_demo_game_step(&g, pending); /* the action decided a tick ago */
            pending = action;
        }
        o->hits += g.hits;
        o->dodged += g.dodged;
    }
}

static double hit_rate(const struct outcome *o)
{
    return (double)o->hits / (double)(o->hits + o->dodged);
}

Test(demo, the_planned_bot_is_hit_less_often_than_its_fallback_alone)
{
    struct outcome still, fallback, cache;
    play(STILL, &still);
    play(FALLBACK, &fallback);
    play(CACHE, &cache);
    cr_log_info("hit rates: still %.2f%%, fallback %.2f%%, planned (cache) %.2f%% "
                "(L1 %llu, L2 %llu, misses %llu)",
                100 * hit_rate(&still), 100 * hit_rate(&fallback), 100 * hit_rate(&cache),
                (unsigned long long)cache.l1, (unsigned long long)cache.l2,
                (unsigned long long)cache.misses);
    cr_assert_gt(still.hits + still.dodged, 4000, "too few hazards to compare");
    cr_expect_lt(hit_rate(&fallback), hit_rate(&still) / 4,
                 "the fallback (%.2f%%) barely beats standing still (%.2f%%)",
                 100 * hit_rate(&fallback), 100 * hit_rate(&still));
    cr_expect_lt(hit_rate(&cache), hit_rate(&fallback) / 2,
                 "the planned bot (%.2f%%) is not clearly better than its fallback (%.2f%%)",
                 100 * hit_rate(&cache), 100 * hit_rate(&fallback));
    cr_expect_gt(cache.l1 + cache.l2, 10 * cache.misses, "the cache served too few decisions");
}
