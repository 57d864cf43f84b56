/*
 * Budgets and the degradation ladder (src/budget.c, src/degrade.c).
 * Everything here runs on the telemetry reporter thread, once per interval:
 * never on the hot path.
 */
#ifndef REFLEX_DEGRADE_H
#define REFLEX_DEGRADE_H

#include <stdbool.h>
#include <stdint.h>

#include <reflex/engine.h>
#include <reflex/hdr_histogram.h>

#define RFX_MAX_TRANSITIONS 256

/* ---- budgets ---- */

enum rfx_load_level { RFX_LOAD_LOW, RFX_LOAD_MEDIUM, RFX_LOAD_HIGH, RFX_LOAD_CRITICAL };

/* What one evaluation window holds (merged interval histograms). */
struct rfx_budget_window {
    int n_stages;
    const char *stage_names[RFX_MAX_STAGES];
    const struct rfx_hdr *stage[RFX_MAX_STAGES]; /* service time */
    const struct rfx_budget *stage_budget[RFX_MAX_STAGES];
    const struct rfx_hdr *e2e;
    const struct rfx_budget *e2e_budget;
    const struct rfx_hdr *cls[3]; /* e2e by context class (enum rfx_context_class) */
    int64_t class_p95_ns[3];      /* 0: no budget */
    double frame_ns;              /* the frame period (for the load level) */
    double window_s;
    bool load_scaling;
};

struct rfx_budget_verdict {
    bool violated;      /* some figure over its (scaled) budget */
    bool headroom;      /* every figure at most (1 - headroom) of its budget */
    double worst_ratio; /* largest figure / budget */
    enum rfx_load_level load;
    double scale;    /* budgets were multiplied by this */
    char cause[200]; /* the worst figure, e.g. "e2e p99 41.2 ms > 13.4 ms" */
};

enum rfx_load_level rfx_load_level_of(double busy_fraction);
double rfx_load_scale(enum rfx_load_level l);
const char *rfx_load_level_name(enum rfx_load_level l);

/* Evaluate a window; `headroom` is the recovery margin (0.25: 25 % under). */
void rfx_budget_evaluate(const struct rfx_budget_window *w, double headroom,
                         struct rfx_budget_verdict *out);

/* ---- the ladder ---- */

struct rfx_ladder_config {
    int escalate_windows; /* consecutive violated windows to go up one level (default 2) */
    double recover_s;     /* sustained headroom to go down one level (default 30) */
    double headroom;      /* 0.25: figures at most 75 % of their budgets */
    int max_backoff;      /* recovery time doubles on a relapse, up to this factor (8) */
};

struct rfx_transition {
    double t_s;
    enum rfx_level from, to;
    char cause[200];
};

struct rfx_ladder {
    struct rfx_ladder_config cfg;
    enum rfx_level level;
    int violated_run;       /* consecutive violated windows */
    double healthy_since_s; /* < 0: not healthy */
    double last_recovery_s; /* < 0: never */
    int backoff;            /* current recovery multiplier */
    bool climbed;           /* stepped up since the last recovery */
    int n_transitions;
    struct rfx_transition transitions[RFX_MAX_TRANSITIONS];
    uint64_t dropped_transitions; /* beyond the log */
};

void rfx_ladder_config_default(struct rfx_ladder_config *c);
void rfx_ladder_init(struct rfx_ladder *l, const struct rfx_ladder_config *c);
/*
 * One window ending at t_s with its verdict. Returns 1 if the level
 * changed (the new transition is the last in the log), 0 otherwise.
 */
int rfx_ladder_step(struct rfx_ladder *l, double t_s, const struct rfx_budget_verdict *v);

#endif
