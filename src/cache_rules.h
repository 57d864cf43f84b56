/* Cache rules (src/cache_rules.c): which entries the next snapshot drops.
 * Pure functions over copies of a snapshot's entries, so the strategic
 * workers build the next snapshot from what they keep and the rules are
 * testable without threads. */
#ifndef REFLEX_CACHE_RULES_H
#define REFLEX_CACHE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <reflex/action_cache.h>
#include <reflex/engine.h>

#define RFX_RULES_MAX 8 /* rules that can be pending at once (bits of a word) */

struct rfx_rule_pass {
    int64_t now_ns;
    int64_t ttl_ns;     /* entries created longer ago are dropped (0: no TTL) */
    uint64_t below_gen; /* entries first published before this generation are dropped */
    uint32_t pending;   /* bit r: rule r's event happened since the last pass */
    const struct rfx_cache_rule *rules;
    int n_rules;
    const char (*categories)[RFX_NAME_MAX]; /* category id i+1 is categories[i] */
    int n_categories;
};

struct rfx_rule_counts {
    uint64_t ttl, generation, by_rule[RFX_RULES_MAX];
};

/* Does rule r name this category (one of its fnmatch patterns)? */
bool rfx_rule_matches(const struct rfx_cache_rule *rule, const char *category);

/* Keep t[0..n) entries no rule, TTL or generation drops, in order, at the
 * front; returns how many. A dropped entry is counted once, under the first
 * reason in this order: a pending rule, the TTL, the generation. */
size_t rfx_rules_filter(struct rfx_cache_entry *t, size_t n, const struct rfx_rule_pass *p,
                        struct rfx_rule_counts *counts);

/* The generation below which cache.max_generations drops entries, given the
 * current generation and an explicit floor (rfx_engine_cache_invalidate_before). */
uint64_t rfx_rules_generation_floor(uint64_t current, uint32_t max_generations, uint64_t floor);

#endif
