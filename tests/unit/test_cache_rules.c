/* Cache rules on copies of entries: category events (seed 000's defaults),
 * TTL, generations, precedence and counts. */
#include "cache_rules.h"

#include <criterion/criterion.h>
#include <string.h>

static const char cats[][RFX_NAME_MAX] = {"movement_dodge", "exploration_scout", "combat_melee",
                                          "strategic_route", "movement_jump"};

static struct rfx_rule_pass pass_for(const struct rfx_engine_config *c, uint32_t pending)
{
    struct rfx_rule_pass p = {.now_ns = 1000000000000,
                              .pending = pending,
                              .rules = c->rules,
                              .n_rules = c->n_rules,
                              .categories = cats,
                              .n_categories = 5};
    return p;
}

static bool kept(const struct rfx_cache_entry *t, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].key == key)
            return true;
    return false;
}

Test(cache_rules, seed_000_defaults_drop_the_named_categories)
{
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    cr_assert_eq(c.n_rules, 3);
    cr_expect_str_eq(c.rules[0].event, "area_change");
    cr_expect_str_eq(c.rules[1].event, "critical_health");
    cr_expect_str_eq(c.rules[2].event, "new_objective");
    /* One entry per category (ids 1..5), plus one without a category. */
    struct rfx_cache_entry base[6];
    for (int i = 0; i < 6; i++)
        base[i] = (struct rfx_cache_entry){
            .key = (uint64_t)i + 1, .category = (uint32_t)i + 1, .generation = 1};
    base[5].category = 0;
    const struct {
        int rule;
        bool keep[6]; /* movement_dodge, exploration_scout, combat_melee, strategic_route,
                         movement_jump, (none) */
    } want[] = {
        {0, {false, false, true, true, false, true}}, /* area_change */
        {1, {true, false, false, true, true, true}},  /* critical_health */
        {2, {true, true, true, false, true, true}},   /* new_objective */
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        struct rfx_cache_entry t[6];
        memcpy(t, base, sizeof t);
        struct rfx_rule_pass p = pass_for(&c, 1u << want[w].rule);
        struct rfx_rule_counts k = {0};
        size_t n = rfx_rules_filter(t, 6, &p, &k);
        size_t dropped = 0;
        for (int i = 0; i < 6; i++) {
            cr_expect_eq(kept(t, n, base[i].key), want[w].keep[i], "%s: %s",
                         c.rules[want[w].rule].event, i < 5 ? cats[i] : "(none)");
            dropped += !want[w].keep[i];
        }
        cr_expect_eq(k.by_rule[want[w].rule], dropped);
        cr_expect_eq(k.ttl + k.generation, 0u);
    }
}

Test(cache_rules, no_pending_event_drops_nothing_and_order_is_kept)
{
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    struct rfx_cache_entry t[5];
    for (int i = 0; i < 5; i++)
        t[i] = (struct rfx_cache_entry){
            .key = (uint64_t)(10 - i), .category = (uint32_t)i + 1, .generation = 1};
    struct rfx_rule_pass p = pass_for(&c, 0);
    struct rfx_rule_counts k = {0};
    cr_expect_eq(rfx_rules_filter(t, 5, &p, &k), 5u);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(t[i].key, (uint64_t)(10 - i));
    p.pending = 1u << 0; /* area_change: keys 10, 9 and 6 go */
    cr_assert_eq(rfx_rules_filter(t, 5, &p, &k), 2u);
    cr_expect_eq(t[0].key, 8u, "survivors keep their order");
    cr_expect_eq(t[1].key, 7u);
}

Test(cache_rules, ttl_boundary_and_unknown_creation_time)
{
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    int64_t now = 1000000000000, ttl = 300000000000; /* 300 s */
    struct rfx_cache_entry t[] = {
        {.key = 1, .created_ns = now - ttl, .generation = 1},     /* exactly the TTL: kept */
        {.key = 2, .created_ns = now - ttl - 1, .generation = 1}, /* 1 ns over: dropped */
        {.key = 3, .created_ns = 0, .generation = 1},             /* unknown age: kept */
        {.key = 4, .created_ns = now, .generation = 1},
    };
    struct rfx_rule_pass p = pass_for(&c, 0);
    p.ttl_ns = ttl;
    struct rfx_rule_counts k = {0};
    size_t n = rfx_rules_filter(t, 4, &p, &k);
    cr_expect_eq(n, 3u);
    cr_expect_not(kept(t, n, 2));
    cr_expect_eq(k.ttl, 1u);
    p.ttl_ns = 0; /* no TTL: nothing ages out */
    struct rfx_cache_entry u[] = {{.key = 9, .created_ns = 1, .generation = 1}};
    cr_expect_eq(rfx_rules_filter(u, 1, &p, &k), 1u);
}

Test(cache_rules, generations_and_precedence)
{
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    /* max_generations 4 at generation 10 keeps 7..10; an explicit floor wins if higher. */
    cr_expect_eq(rfx_rules_generation_floor(10, 4, 0), 7u);
    cr_expect_eq(rfx_rules_generation_floor(10, 4, 9), 9u);
    cr_expect_eq(rfx_rules_generation_floor(3, 4, 0), 0u, "younger than the limit");
    cr_expect_eq(rfx_rules_generation_floor(10, 0, 5), 5u, "no limit: the floor alone");
    int64_t now = 1000000000000;
    struct rfx_cache_entry t[] = {
        {.key = 1, .category = 1, .created_ns = 1, .generation = 1}, /* rule, TTL, generation */
        {.key = 2, .category = 3, .created_ns = 1, .generation = 1}, /* TTL and generation */
        {.key = 3, .category = 3, .created_ns = now, .generation = 6},
        {.key = 4, .category = 3, .created_ns = now, .generation = 7}, /* the floor: kept */
    };
    struct rfx_rule_pass p = pass_for(&c, 1u << 0);
    p.ttl_ns = 1000;
    p.below_gen = rfx_rules_generation_floor(10, 4, 0);
    struct rfx_rule_counts k = {0};
    size_t n = rfx_rules_filter(t, 4, &p, &k);
    cr_expect_eq(n, 1u);
    cr_expect_eq(t[0].key, 4u);
    cr_expect_eq(k.by_rule[0], 1u, "a rule first");
    cr_expect_eq(k.ttl, 1u, "then the TTL");
    cr_expect_eq(k.generation, 1u, "then the generation");
}

Test(cache_rules, patterns_are_fnmatch_globs)
{
    struct rfx_cache_rule r = {"x", {"combat_*", "exact_name", "zone_[ab]?"}, 3};
    cr_expect(rfx_rule_matches(&r, "combat_melee"));
    cr_expect(rfx_rule_matches(&r, "exact_name"));
    cr_expect(rfx_rule_matches(&r, "zone_a1"));
    cr_expect_not(rfx_rule_matches(&r, "zone_c1"));
    cr_expect_not(rfx_rule_matches(&r, "exact_name_2"));
    cr_expect_not(rfx_rule_matches(&r, "xcombat_melee"));
}
