/* The ladder's state machine, table-driven, and budget evaluation. */
#include "alerts.h"
#include "degrade.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rfx_budget_verdict V(bool violated, bool headroom) {
    struct rfx_budget_verdict v = {.violated = violated, .headroom = headroom, .worst_ratio = 0.5};
    snprintf(v.cause, sizeof v.cause, "%s", violated ? "e2e p99 over" : "fine");
    return v;
}

/* One window per second: 'V' violated, 'h' headroom, '.' neither. */
static void
play(struct rfx_ladder *l, const char *windows, double t0, enum rfx_level *levels)
{
    for (int i = 0; windows[i]; i++) {
        struct rfx_budget_verdict v = V(windows[i] == 'V', windows[i] == 'h');
        rfx_ladder_step(l, t0 + i, &v);
        levels[i] = l->level;
    }
}

static struct rfx_ladder make(int esc, double rec)
{
    struct rfx_ladder_config c;
    rfx_ladder_config_default(&c);
    c.escalate_windows = esc;
    c.recover_s = rec;
    struct rfx_ladder l;
    rfx_ladder_init(&l, &c);
    return l;
}

Test(ladder, escalates_after_consecutive_violations_only)
{
    struct rfx_ladder l = make(2, 30);
    enum rfx_level lv[16];
    play(&l, "V.V.VhVh", 0, lv); /* never two in a row */
    cr_expect_eq(l.level, RFX_LEVEL_NONE);
    play(&l, "VV", 10, lv);
    cr_expect_eq(lv[0], RFX_LEVEL_NONE, "one window is not enough");
    cr_expect_eq(lv[1], RFX_LEVEL_MINIMAL, "the second consecutive one escalates");
    play(&l, "VVVVVVVVVV", 20, lv);
    cr_expect_eq(l.level, RFX_LEVEL_CRITICAL);
    cr_expect_eq(l.n_transitions, 4, "one level per two windows, stopping at CRITICAL");
    for (int i = 0; i < l.n_transitions; i++)
        cr_expect_eq(l.transitions[i].to, l.transitions[i].from + 1);
}

Test(ladder, recovers_one_level_per_sustained_headroom)
{
    struct rfx_ladder l = make(1, 3);
    enum rfx_level lv[32];
    play(&l, "VV", 0, lv);
    cr_assert_eq(l.level, RFX_LEVEL_MODERATE);
    /* headroom from t=2: first window starts the clock; 3 s later one level down */
    play(&l, "hhhh", 2, lv);
    cr_expect_eq(lv[2], RFX_LEVEL_MODERATE, "2 s of headroom is not 3");
    cr_expect_eq(lv[3], RFX_LEVEL_MINIMAL, "3 s of headroom: down one level");
    play(&l, "hhh", 6, lv);
    cr_expect_eq(lv[1], RFX_LEVEL_MINIMAL, "each level needs its own 3 s");
    cr_expect_eq(lv[2], RFX_LEVEL_NONE);
}

Test(ladder, a_window_without_headroom_restarts_the_wait)
{
    struct rfx_ladder l = make(1, 3);
    enum rfx_level lv[32];
    play(&l, "V", 0, lv);
    play(&l, "hh.hhh", 1, lv); /* the '.' at t=3 breaks it; headroom again from t=4 */
    cr_expect_eq(lv[4], RFX_LEVEL_MINIMAL, "t=5: only 1 s since the break");
    cr_expect_eq(lv[5], RFX_LEVEL_MINIMAL);
    play(&l, "h", 7, lv);
    cr_expect_eq(lv[0], RFX_LEVEL_NONE, "t=7: 3 s since t=4");
}

Test(ladder, a_relapse_doubles_the_recovery_time_so_it_does_not_flap)
{
    struct rfx_ladder l = make(1, 2);
    enum rfx_level lv[64];
    /* overload that returns whenever the bot relaxes: V, then headroom, then V ... */
    play(&l, "VhhhVhhhVhhhVhhhVhhhVhhh", 0, lv);
    int downs = 0;
    for (int i = 0; i < l.n_transitions; i++)
        downs += l.transitions[i].to < l.transitions[i].from;
    cr_expect_leq(downs, 3, "backoff limits recoveries into a relapse (%d)", downs);
    cr_expect_gt(l.backoff, 1);
}

/* A relapse that climbs several levels doubles the recovery time once. */
Test(ladder, a_relapse_up_four_levels_doubles_the_recovery_time_once)
{
    struct rfx_ladder l = make(1, 2);
    enum rfx_level lv[64];
    play(&l, "V", 0, lv);
    play(&l, "hhh", 1, lv);
    cr_assert_eq(lv[2], RFX_LEVEL_NONE, "recovered at t=3");
    cr_assert_eq(l.backoff, 1);
    play(&l, "VVVV", 4, lv); /* back within 2 * 2 s, straight up to CRITICAL */
    cr_assert_eq(lv[3], RFX_LEVEL_CRITICAL);
    cr_expect_eq(l.backoff, 2, "one relapse doubles once, not once per level (%d)", l.backoff);
    play(&l, "hhhhh", 8, lv); /* each level down now needs 4 s of headroom */
    cr_expect_eq(lv[3], RFX_LEVEL_CRITICAL, "3 s of headroom is not 4");
    cr_expect_eq(lv[4], RFX_LEVEL_SEVERE, "4 s: down one level");
    /* A second relapse doubles it again. */
    play(&l, "V", 13, lv);
    cr_expect_eq(lv[0], RFX_LEVEL_CRITICAL);
    cr_expect_eq(l.backoff, 4);
}

Test(budget, evaluation_names_the_worst_figure_and_scales_by_load)
{
    struct rfx_hdr *stage, *e2e;
    rfx_hdr_create(1, 60000000000LL, 3, &stage);
    rfx_hdr_create(1, 60000000000LL, 3, &e2e);
    for (int i = 0; i < 1000; i++) {
        rfx_hdr_record(stage, 100000);                     /* 0.1 ms service */
        rfx_hdr_record(e2e, i < 980 ? 1000000 : 20000000); /* p99 20 ms */
    }
    struct rfx_budget sb = {
        .stage = "pattern", .p50_ns = 500000, .p95_ns = 1000000, .p99_ns = 2000000};
    struct rfx_budget eb = {
        .stage = "e2e", .p50_ns = 2500000, .p95_ns = 5000000, .p99_ns = 13360000};
    struct rfx_budget_window w = {.n_stages = 1,
                                  .stage_names = {"pattern"},
                                  .stage = {stage},
                                  .stage_budget = {&sb},
                                  .e2e = e2e,
                                  .e2e_budget = &eb,
                                  .frame_ns = 16.7e6,
                                  .window_s = 3,
                                  .load_scaling = true};
    struct rfx_budget_verdict v;
    rfx_budget_evaluate(&w, 0.25, &v);
    cr_expect(v.violated);
    cr_expect_not(v.headroom);
    cr_expect_eq(v.load, RFX_LOAD_LOW);
    cr_expect(strstr(v.cause, "e2e p99") != NULL, "%s", v.cause);
    rfx_hdr_reset(e2e);
    rfx_hdr_record_n(e2e, 1000000, 1000);
    rfx_budget_evaluate(&w, 0.25, &v);
    cr_expect_not(v.violated);
    cr_expect(v.headroom, "1 ms e2e and 0.1 ms service are far under budget: %s", v.cause);
    /* A stage busy 15.5 of 16.7 ms: load critical, budgets x0.4. */
    rfx_hdr_reset(stage);
    rfx_hdr_record_n(stage, 15500000, 1000);
    rfx_budget_evaluate(&w, 0.25, &v);
    cr_expect_eq(v.load, RFX_LOAD_CRITICAL);
    cr_expect_float_eq(v.scale, 0.4, 1e-9);
    cr_expect(v.violated);
    rfx_hdr_destroy(stage);
    rfx_hdr_destroy(e2e);
}

#include "circuit_breaker.h"

Test(breaker, opens_after_n_failures_probes_after_reset_closes_after_m_successes)
{
    struct rfx_breaker b;
    rfx_breaker_init(&b, 3, 1000, 2);
    int64_t t = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert(rfx_breaker_allow(&b, t));
        rfx_breaker_result(&b, false, t);
    }
    rfx_breaker_result(&b, true, t); /* a success breaks the run */
    for (int i = 0; i < 2; i++)
        rfx_breaker_result(&b, false, t);
    cr_expect_eq(atomic_load(&b.state), RFX_BREAKER_CLOSED, "2 in a row is not 3");
    rfx_breaker_result(&b, false, t = 10);
    cr_expect_eq(atomic_load(&b.state), RFX_BREAKER_OPEN);
    cr_expect_not(rfx_breaker_allow(&b, 500), "rejected while OPEN");
    cr_expect_not(rfx_breaker_allow(&b, 1009));
    cr_expect_eq(atomic_load(&b.rejected), 2);
    cr_expect(rfx_breaker_allow(&b, 1010), "reset timeout: HALF_OPEN lets one through");
    cr_expect_eq(atomic_load(&b.state), RFX_BREAKER_HALF_OPEN);
    rfx_breaker_result(&b, false, 1010);
    cr_expect_eq(atomic_load(&b.state), RFX_BREAKER_OPEN, "a failure in HALF_OPEN reopens");
    cr_expect(rfx_breaker_allow(&b, 2010));
    rfx_breaker_result(&b, true, 2010);
    cr_expect_eq(atomic_load(&b.state), RFX_BREAKER_HALF_OPEN);
    rfx_breaker_result(&b, true, 2011);
    cr_expect_eq(atomic_load(&b.state), RFX_BREAKER_CLOSED, "2 successes close it");
    cr_expect_eq(atomic_load(&b.opens), 2);
    cr_expect_eq(b.n_log, 5);
}

/* The transition log keeps the first RFX_BREAKER_LOG and counts the rest. */
Test(breaker, transitions_beyond_the_log_are_counted)
{
    struct rfx_breaker b;
    rfx_breaker_init(&b, 1, 10, 1);
    int64_t t = 0;
    for (int i = 0; i < 30; i++) { /* CLOSED -> OPEN -> HALF_OPEN -> CLOSED: 3 each */
        rfx_breaker_result(&b, false, t);
        t += 10;
        cr_assert(rfx_breaker_allow(&b, t));
        rfx_breaker_result(&b, true, t);
        t += 1;
    }
    cr_expect_eq(atomic_load(&b.state), RFX_BREAKER_CLOSED);
    cr_expect_eq(b.n_log, RFX_BREAKER_LOG);
    cr_expect_eq(b.not_logged, 90 - RFX_BREAKER_LOG, "%llu not logged",
                 (unsigned long long)b.not_logged);
}

/* A burst's successes go to the breaker as one call: it must end in the
 * same state, counters and transitions as one call per frame. */
Test(breaker, ok_n_equals_n_single_successes)
{
    for (uint64_t n = 0; n < 6; n++) {
        for (int start = 0; start < 3; start++) {
            struct rfx_breaker a, b;
            rfx_breaker_init(&a, 2, 1000, 3);
            rfx_breaker_init(&b, 2, 1000, 3);
            struct rfx_breaker *both[2] = {&a, &b};
            for (int k = 0; k < 2; k++) {
                struct rfx_breaker *x = both[k];
                rfx_breaker_result(x, false, 0); /* fail_run 1 */
                if (start >= 1) {                /* OPEN, then HALF_OPEN with one success */
                    rfx_breaker_result(x, false, 0);
                    cr_assert(rfx_breaker_allow(x, 1000));
                    cr_assert_eq(atomic_load(&x->state), RFX_BREAKER_HALF_OPEN);
                    if (start == 2)
                        rfx_breaker_result(x, true, 1000);
                }
            }
            rfx_breaker_ok_n(&a, n, 2000);
            for (uint64_t i = 0; i < n; i++)
                rfx_breaker_result(&b, true, 2000);
            cr_expect_eq(atomic_load(&a.state), atomic_load(&b.state), "n=%llu start=%d",
                         (unsigned long long)n, start);
            cr_expect_eq(atomic_load(&a.successes), atomic_load(&b.successes));
            cr_expect_eq(a.fail_run, b.fail_run);
            cr_expect_eq(a.ok_run, b.ok_run, "n=%llu start=%d", (unsigned long long)n, start);
            cr_expect_eq(a.n_log, b.n_log);
            cr_expect_eq(memcmp(a.log, b.log, sizeof a.log), 0);
            /* and one failure afterwards acts the same */
            rfx_breaker_result(&a, false, 3000);
            rfx_breaker_result(&b, false, 3000);
            cr_expect_eq(atomic_load(&a.state), atomic_load(&b.state));
        }
    }
}

static int delivered;
static void count_alert(void *arg, const struct rfx_alert *a)
{
    (void)arg;
    (void)a;
    delivered++;
}

Test(alerts, rate_limited_per_type_and_stage)
{
    struct rfx_alerts a;
    rfx_alerts_init(&a, 5);
    a.fn = count_alert;
    delivered = 0;
    cr_expect(rfx_alert_raise(&a, 1.0, RFX_ALERT_STALL, RFX_SEV_WARNING, "decide", "x"));
    cr_expect(rfx_alert_raise(&a, 1.1, RFX_ALERT_STALL, RFX_SEV_WARNING, "pattern", "x"),
              "another stage is another key");
    cr_expect(rfx_alert_raise(&a, 1.2, RFX_ALERT_DROPS, RFX_SEV_WARNING, "decide", "x"),
              "another type is another key");
    cr_expect_not(rfx_alert_raise(&a, 5.9, RFX_ALERT_STALL, RFX_SEV_WARNING, "decide", "x"),
                  "same key, same severity, within 5 s: held back");
    cr_expect(rfx_alert_raise(&a, 6.0, RFX_ALERT_STALL, RFX_SEV_CRITICAL, "decide", "x"),
              "a more severe one goes out");
    cr_expect_not(rfx_alert_raise(&a, 10.9, RFX_ALERT_STALL, RFX_SEV_WARNING, "decide", "x"));
    cr_expect(rfx_alert_raise(&a, 11.0, RFX_ALERT_STALL, RFX_SEV_WARNING, "decide", "x"),
              "5 s after the last delivered one");
    cr_expect_eq(delivered, 5);
    cr_expect_eq(a.raised[RFX_ALERT_STALL], 4u);
    cr_expect_eq(a.suppressed[RFX_ALERT_STALL], 2u);
    cr_expect_eq(a.n, 5);
    rfx_alerts_fini(&a);
}

/* summary.json keeps the first RFX_ALERT_LOG alerts and counts the rest;
 * every one still reaches the callback. */
Test(alerts, the_log_keeps_the_first_ones_and_counts_the_rest)
{
    struct rfx_alerts a;
    rfx_alerts_init(&a, 5);
    a.fn = count_alert;
    delivered = 0;
    for (int i = 0; i < RFX_ALERT_LOG + 44; i++) /* 10 s apart: none rate-limited */
        cr_assert(rfx_alert_raise(&a, 10.0 * i, RFX_ALERT_HIT_RATE, RFX_SEV_WARNING, "decide",
                                  "alert %d", i));
    cr_expect_eq(delivered, RFX_ALERT_LOG + 44);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    rfx_alerts_json(&a, f);
    fclose(f);
    cr_expect(strstr(text, "\"message\": \"alert 255\"") && !strstr(text, "alert 256"),
              "the first 256 are in the log");
    cr_expect(strstr(text, "\"alerts_not_logged\": 44,"), "the rest are counted: %.200s",
              strstr(text, "alerts_not_logged") ? strstr(text, "alerts_not_logged") : "(none)");
    free(text);
    rfx_alerts_fini(&a);
}
