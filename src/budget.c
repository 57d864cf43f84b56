/*
 * Budget evaluation over a window of interval histograms (the reporter
 * thread, never the hot path). Figures checked: each stage's service time
 * at p50/p95/p99; end to end (from the scheduled capture time, so it counts
 * wake-up delay and queueing as well as work) at p50/p95/p99; end to end per
 * context class at p95. Budgets are scaled by the measured load level:
 * busy fraction = sum of the stages' median service times / frame period;
 * below 0.5 low (x1.0), below 0.75 medium (x0.8), below 0.9 high (x0.6),
 * else critical (x0.4) — a loaded bot degrades earlier.
 */
#include "degrade.h"

#include <stdio.h>
#include <string.h>

enum rfx_load_level rfx_load_level_of(double busy)
{
    if (busy < 0.5)
        return RFX_LOAD_LOW;
    if (busy < 0.75)
        return RFX_LOAD_MEDIUM;
    if (busy < 0.9)
        return RFX_LOAD_HIGH;
    return RFX_LOAD_CRITICAL;
}

double rfx_load_scale(enum rfx_load_level l)
{
    static const double s[] = {1.0, 0.8, 0.6, 0.4};
    return (unsigned)l <= RFX_LOAD_CRITICAL ? s[l] : 1.0;
}

const char *rfx_load_level_name(enum rfx_load_level l)
{
    static const char *const n[] = {"low", "medium", "high", "critical"};
    return (unsigned)l <= RFX_LOAD_CRITICAL ? n[l] : "unknown";
}

struct acc {
    double worst;
    bool violated, headroom;
    double headroom_limit;
    char cause[140];
};

static void check(struct acc *a, const char *what, const char *pct, int64_t figure, int64_t budget,
                  double scale)
{
    if (budget <= 0)
        return;
    double b = (double)budget * scale;
    double ratio = (double)figure / b;
    if (ratio > 1.0)
        a->violated = true;
    if (ratio > a->headroom_limit)
        a->headroom = false;
    if (ratio > a->worst) {
        a->worst = ratio;
        snprintf(a->cause, sizeof a->cause, "%s %s %.3f ms %s budget %.3f ms", what, pct,
                 figure / 1e6, ratio > 1.0 ? ">" : "<=", b / 1e6);
    }
}

void rfx_budget_evaluate(const struct rfx_budget_window *w, double headroom,
                         struct rfx_budget_verdict *out)
{
    memset(out, 0, sizeof *out);
    struct acc a = {.worst = 0, .headroom = true, .headroom_limit = 1.0 - headroom};
    double busy = 0;
    for (int i = 0; i < w->n_stages; i++)
        if (w->stage[i] && rfx_hdr_total_count(w->stage[i]) > 0)
            busy += (double)rfx_hdr_value_at_percentile(w->stage[i], 50);
    out->load = w->frame_ns > 0 ? rfx_load_level_of(busy / w->frame_ns) : RFX_LOAD_LOW;
    out->scale = w->load_scaling ? rfx_load_scale(out->load) : 1.0;
    static const double pcts[3] = {50, 95, 99};
    static const char *const names[3] = {"p50", "p95", "p99"};
    for (int i = 0; i < w->n_stages; i++) {
        const struct rfx_hdr *h = w->stage[i];
        const struct rfx_budget *b = w->stage_budget[i];
        if (!h || !b || rfx_hdr_total_count(h) == 0)
            continue;
        int64_t lim[3] = {b->p50_ns, b->p95_ns, b->p99_ns};
        for (int p = 0; p < 3; p++)
            check(&a, w->stage_names[i], names[p], rfx_hdr_value_at_percentile(h, pcts[p]), lim[p],
                  out->scale);
    }
    if (w->e2e && w->e2e_budget && rfx_hdr_total_count(w->e2e) > 0) {
        const struct rfx_budget *b = w->e2e_budget;
        int64_t lim[3] = {b->p50_ns, b->p95_ns, b->p99_ns};
        for (int p = 0; p < 3; p++)
            check(&a, "e2e", names[p], rfx_hdr_value_at_percentile(w->e2e, pcts[p]), lim[p],
                  out->scale);
    }
    static const char *const cls[3] = {"e2e[routine]", "e2e[emergency]", "e2e[deliberative]"};
    for (int c = 0; c < 3; c++)
        if (w->cls[c] && rfx_hdr_total_count(w->cls[c]) > 0)
            check(&a, cls[c], "p95", rfx_hdr_value_at_percentile(w->cls[c], 95), w->class_p95_ns[c],
                  out->scale);
    out->violated = a.violated;
    out->headroom = a.headroom;
    out->worst_ratio = a.worst;
    char what[140];
    snprintf(what, sizeof what, "%s", a.cause[0] ? a.cause : "no figures");
    snprintf(out->cause, sizeof out->cause, "%s (window %.3g s, load %s)", what, w->window_s,
             rfx_load_level_name(out->load));
}
