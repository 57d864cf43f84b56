/*
 * The degradation ladder: NONE -> MINIMAL -> MODERATE -> SEVERE -> CRITICAL.
 *
 *   up    after `escalate_windows` consecutive windows with a budget violated,
 *         one level (the run of violations then starts again);
 *   down  one level after `recover_s` of unbroken headroom (every figure at
 *         most 1 - headroom of its budget); a window without headroom
 *         restarts the wait;
 *   relapse  going up again within twice the recovery time of a recovery
 *         doubles the recovery time (up to max_backoff times), once however
 *         many levels it climbs, so a load that returns as soon as the bot
 *         relaxes does not make it flap.
 *         Sustained health (two recovery times without a relapse) resets it.
 */
#include "degrade.h"

#include <stdio.h>
#include <string.h>

void rfx_ladder_config_default(struct rfx_ladder_config *c)
{
    c->escalate_windows = 2;
    c->recover_s = 30;
    c->headroom = 0.25;
    c->max_backoff = 8;
}

void rfx_ladder_init(struct rfx_ladder *l, const struct rfx_ladder_config *c)
{
    memset(l, 0, sizeof *l);
    l->cfg = *c;
    l->level = RFX_LEVEL_NONE;
    l->healthy_since_s = -1;
    l->last_recovery_s = -1;
    l->backoff = 1;
}

static void record(struct rfx_ladder *l, double t, enum rfx_level to, const char *cause)
{
    if (l->n_transitions < RFX_MAX_TRANSITIONS) {
        struct rfx_transition *x = &l->transitions[l->n_transitions++];
        x->t_s = t;
        x->from = l->level;
        x->to = to;
        snprintf(x->cause, sizeof x->cause, "%.199s", cause);
    } else {
        l->dropped_transitions++;
    }
    l->level = to;
}

int rfx_ladder_step(struct rfx_ladder *l, double t, const struct rfx_budget_verdict *v)
{
    if (v->violated) {
        l->healthy_since_s = -1;
        if (++l->violated_run < l->cfg.escalate_windows || l->level == RFX_LEVEL_CRITICAL)
            return 0;
        l->violated_run = 0;
        /* A relapse: the first step up after a recovery, soon after it.
         * Wait longer before relaxing again, once per relapse however many
         * levels it then climbs (a climb of four levels is one relapse, not
         * four: at 8x it held a bot at CRITICAL for 240 s of headroom). */
        if (l->last_recovery_s >= 0 && !l->climbed &&
            t - l->last_recovery_s < 2 * l->cfg.recover_s * l->backoff &&
            l->backoff < l->cfg.max_backoff)
            l->backoff *= 2;
        l->climbed = true;
        char cause[240];
        snprintf(cause, sizeof cause, "%.200s (%d windows)", v->cause, l->cfg.escalate_windows);
        record(l, t, (enum rfx_level)(l->level + 1), cause);
        return 1;
    }
    l->violated_run = 0;
    if (!v->headroom) {
        l->healthy_since_s = -1;
        return 0;
    }
    if (l->healthy_since_s < 0)
        l->healthy_since_s = t;
    if (l->last_recovery_s >= 0 && t - l->last_recovery_s > 2 * l->cfg.recover_s * l->backoff &&
        l->level == RFX_LEVEL_NONE)
        l->backoff = 1;
    if (l->level == RFX_LEVEL_NONE || t - l->healthy_since_s < l->cfg.recover_s * l->backoff)
        return 0;
    char cause[200];
    snprintf(cause, sizeof cause, "headroom %.0f%% for %.0f s (worst figure %.0f%% of budget)",
             l->cfg.headroom * 100, t - l->healthy_since_s, v->worst_ratio * 100);
    record(l, t, (enum rfx_level)(l->level - 1), cause);
    l->healthy_since_s = t; /* the next level down needs its own sustained headroom */
    l->last_recovery_s = t;
    l->climbed = false;
    return 1;
}
