/*
 * The stage times the engine stamps on each frame, in a running engine:
 * fused stages (one thread, no ring between them) tile the thread's time,
 * a stage's entry being the end of the stage before it; a stage never ends
 * before it began; a stage on the next thread begins no earlier than the
 * last one on the thread before ended. Frames a stage drops take no later
 * stage but telemetry, and every one is counted, by stage and by reason.
 */
#include "engine_impl.h"
#include "telemetry_impl.h"
#include "test_out_dir.h"

#include <reflex/config.h>

#include <criterion/criterion.h>
#include <stdatomic.h>

static const char *const names[] = {"capture", "pattern", "decide", "execute", "telemetry"};

enum { FRAMES = 200000, DROP_EVERY = 7 };

struct seen {
    int fused_with_next[4]; /* stage s and s + 1 share a thread */
    _Atomic uint64_t dropped, checked, dropped_seen_later, untiled, backwards, before_ready;
};

static void capture(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)f, (void)n, (void)env;
}

static void pattern(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)env;
    struct seen *x = c;
    for (size_t i = 0; i < n; i++)
        if (f[i]->seq % DROP_EVERY == 3) {
            rfx_frame_drop(f[i], RFX_DROP_STAGE);
            atomic_fetch_add(&x->dropped, 1);
        }
}

/* Stages 0 .. upto-1 have ended for these frames, and stage upto has begun. */
static void check_times(struct seen *x, struct rfx_frame **f, size_t n, int upto)
{
    for (size_t i = 0; i < n; i++) {
        if (f[i]->drop_reason != RFX_DROP_NONE || f[i]->seq % DROP_EVERY == 3)
            atomic_fetch_add(&x->dropped_seen_later, 1);
        int64_t age = rfx_now_ns() - f[i]->scheduled_ns; /* a stamp from an earlier lap is older */
        for (int s = 0; s < upto; s++) {
            int64_t in = rfx_frame_since(f[i], f[i]->enter_at[s]);
            int64_t out = rfx_frame_since(f[i], f[i]->exit_at[s]);
            int64_t next = rfx_frame_since(f[i], f[i]->enter_at[s + 1]);
            if (out < in || out > age || next > age)
                atomic_fetch_add(&x->backwards, 1);
            if (x->fused_with_next[s] ? next != out : next < out)
                atomic_fetch_add(x->fused_with_next[s] ? &x->untiled : &x->before_ready, 1);
        }
        atomic_fetch_add(&x->checked, 1);
    }
}

static void decide(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)env;
    check_times(c, f, n, 2);
}

static void execute(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)env;
    check_times(c, f, n, 3);
}

static void run(const char **layout, int n_layout, struct seen *x)
{
    const char *sets[8] = {"engine.frame_hz=0", "strategic.workers=0", "engine.burst=32"};
    int n = 3;
    for (int i = 0; i < n_layout; i++)
        sets[n++] = layout[i];
    struct rfx_engine_config cfg;
    char msg[512];
    cr_assert_eq(rfx_config_load(NULL, sets, n, names, 5, &cfg, msg, sizeof msg), 0, "%s", msg);
    cfg.max_frames = FRAMES;
    test_out_dir(&cfg);
    struct rfx_engine *e;
    cr_assert_eq(rfx_engine_create(&cfg, &e), 0);
    static const struct rfx_stage_ops ops[4] = {
        {.process = capture}, {.process = pattern}, {.process = decide}, {.process = execute}};
    for (int s = 0; s < 4; s++)
        cr_assert_eq(rfx_engine_add_stage(e, names[s], &ops[s], x), 0);
    cr_assert_eq(rfx_engine_start(e, msg, sizeof msg), 0, "%s", msg);
    rfx_engine_wait(e);

    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    uint64_t dropped = 0;
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        dropped += k.dropped[r];
    cr_expect_eq(k.captured, FRAMES);
    cr_expect_eq(k.in_flight, 0);
    cr_expect_eq(k.captured, k.executed + dropped, "captured %llu, executed %llu, dropped %llu",
                 (unsigned long long)k.captured, (unsigned long long)k.executed,
                 (unsigned long long)dropped);
    uint64_t by_pattern = atomic_load(&x->dropped);
    cr_expect_eq(by_pattern, (FRAMES + DROP_EVERY - 4) / DROP_EVERY);
    cr_expect_eq(k.dropped[RFX_DROP_STAGE], by_pattern, "dropped by a stage: %llu, pattern: %llu",
                 (unsigned long long)k.dropped[RFX_DROP_STAGE], (unsigned long long)by_pattern);
    cr_expect_eq(atomic_load(&e->stage_dropped[1]), by_pattern);
    cr_expect_eq(atomic_load(&x->checked), 2 * (FRAMES - by_pattern),
                 "decide and execute saw %llu frames",
                 (unsigned long long)atomic_load(&x->checked));
    cr_expect_eq(atomic_load(&x->dropped_seen_later), 0, "a dropped frame reached a later stage");
    cr_expect_eq(atomic_load(&x->backwards), 0,
                 "a stage ended before it began, or a stamp was not this lap's");
    /* Telemetry read the dropped frames' times as far as they went: all took
     * capture and pattern (which dropped some), the rest every stage. */
    const struct rfx_telemetry *t = e->tel;
    for (int s = 0; s < 4; s++) {
        int64_t want = s < 2 ? FRAMES : FRAMES - (int64_t)by_pattern;
        cr_expect_eq(rfx_hdr_total_count(t->st[s].all[K_SERVICE]), want,
                     "%s: %lld service times recorded, want %lld", names[s],
                     (long long)rfx_hdr_total_count(t->st[s].all[K_SERVICE]), (long long)want);
    }
    cr_expect_eq(rfx_hdr_total_count(t->e2e_all), (int64_t)k.executed);
    cr_expect_eq(atomic_load(&x->untiled), 0,
                 "%llu times a fused stage did not begin where the one before it ended",
                 (unsigned long long)atomic_load(&x->untiled));
    cr_expect_eq(atomic_load(&x->before_ready), 0,
                 "a stage on the next thread began before the frame was handed to it");
    rfx_engine_destroy(e);
}

Test(stage_times, fused_stages_tile_their_threads_time_across_two_threads)
{
    const char *layout[] = {"thread.rt0.stages=capture,pattern",
                            "thread.rt1.stages=decide,execute,telemetry"};
    struct seen x = {.fused_with_next = {1, 0, 1, 1}};
    run(layout, 2, &x);
}

Test(stage_times, fused_stages_tile_their_threads_time_on_one_thread)
{
    const char *layout[] = {"thread.rt0.stages=capture,pattern,decide,execute,telemetry"};
    struct seen x = {.fused_with_next = {1, 1, 1, 1}};
    run(layout, 1, &x);
}

/* A frame keeps its stage times as the low 32 bits of the clock: read
 * against scheduled_ns, exact across a wrap of those bits and up to
 * RFX_FRAME_SPAN_NS after it. */
Test(stage_times, stamps_read_back_across_a_wrap)
{
    int64_t base[] = {0, 1000, (INT64_C(1) << 32) - 300, (INT64_C(7) << 32) - 1,
                      INT64_C(1700000000123456789)};
    int64_t since[] = {0, 1, 999, 16700000, RFX_FRAME_SPAN_NS - 1};
    for (size_t b = 0; b < sizeof base / sizeof base[0]; b++)
        for (size_t k = 0; k < sizeof since / sizeof since[0]; k++) {
            struct rfx_frame f = {.scheduled_ns = base[b]};
            f.exit_at[3] = rfx_stamp(base[b] + since[k]);
            cr_assert_eq(rfx_frame_since(&f, f.exit_at[3]), since[k], "%lld after %lld",
                         (long long)since[k], (long long)base[b]);
            cr_assert_eq(rfx_frame_time_ns(&f, f.exit_at[3]), base[b] + since[k]);
        }
    struct rfx_frame f = {.reached = 2};
    cr_assert_eq(rfx_frame_reached(&f, 5), 5, "not dropped: every stage");
    f.drop_reason = RFX_DROP_STAGE;
    cr_assert_eq(rfx_frame_reached(&f, 5), 2);
    f.reached = 9;
    cr_assert_eq(rfx_frame_reached(&f, 5), 5, "never beyond the stages there are");
}
