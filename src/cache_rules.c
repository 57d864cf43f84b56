/*
 * Cache rules: category patterns dropped on context-change events (seed
 * 000's rules by default), a TTL per entry, and generations (entries not
 * re-planned within max_generations snapshots, or published before a
 * generation the bot names). Applied to a copy; the caller publishes what
 * is kept as the next snapshot, never writing under readers.
 */
#include "cache_rules.h"

#include <fnmatch.h>

bool rfx_rule_matches(const struct rfx_cache_rule *rule, const char *category)
{
    for (int p = 0; p < rule->n_patterns; p++)
        if (fnmatch(rule->patterns[p], category, 0) == 0)
            return true;
    return false;
}

static int first_rule(const struct rfx_rule_pass *p, uint32_t cat)
{
    if (!p->pending || cat == 0 || cat > (uint32_t)p->n_categories)
        return -1;
    for (int r = 0; r < p->n_rules && r < RFX_RULES_MAX; r++)
        if ((p->pending >> r & 1) && rfx_rule_matches(&p->rules[r], p->categories[cat - 1]))
            return r;
    return -1;
}

size_t rfx_rules_filter(struct rfx_cache_entry *t, size_t n, const struct rfx_rule_pass *p,
                        struct rfx_rule_counts *counts)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rfx_cache_entry *x = &t[i];
        int r = first_rule(p, x->category);
        if (r >= 0)
            counts->by_rule[r]++;
        else if (p->ttl_ns > 0 && x->created_ns > 0 && p->now_ns - x->created_ns > p->ttl_ns)
            counts->ttl++;
        else if (x->generation < p->below_gen)
            counts->generation++;
        else
            t[k++] = *x;
    }
    return k;
}

uint64_t rfx_rules_generation_floor(uint64_t current, uint32_t max_generations, uint64_t floor)
{
    /* Keep the last max_generations generations: current - max + 1 and up. */
    if (max_generations && current > max_generations && current - max_generations + 1 > floor)
        return current - max_generations + 1;
    return floor;
}
