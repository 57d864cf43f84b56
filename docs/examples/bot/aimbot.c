/*
 * aimbot: a bot written against reflex's public API only. A target drifts
 * across a 64-cell line; every frame (60 FPS) the bot must point a turret
 * at it. Four stages of its own plus a planner:
 *
 *   sense    (capture) move the target one step, write it into the payload
 *   classify (pattern) context key = the target's cell; pattern key = the
 *                      eighth of the line it is in
 *   choose   (decide)  look the action up in the action cache (L1, then L2);
 *                      on a miss take the safe action (hold) and queue the miss
 *   act      (execute) turn the turret, score a hit when it is on target
 *
 * The planner, on the strategic workers, answers misses with the best turn
 * for that situation and publishes them; the hit rate climbs as it learns.
 *
 * Every run is recorded (OUT_DIR/record.rfx: every frame and every snapshot
 * the planner published), and --replay runs a record through classify and
 * choose again (reflex/replay.h), checking that every decision comes out
 * the same; with --without-l2, as if choose looked up only the exact
 * context (a what-if: the frames an L2 entry answered now differ).
 *
 * usage: aimbot [SECONDS] [OUT_DIR]     (default 5 s, ./aimbot-out)
 *        aimbot --replay RECORD [--without-l2]
 */
#include <reflex/reflex.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CELLS = 64, HOLD = 0, LEFT = 1, RIGHT = 2 };

struct world {       /* the game: one writer per field, each on one stage's thread */
    int target, dir; /* sense */
    int turret;      /* act */
    uint64_t hits, frames;
    struct rfx_engine *e;
};

static int use_l2 = 1; /* choose's policy: --replay --without-l2 clears it */

struct view {
    int target;
}; /* the frame's payload */

static void sense(void *ctx, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    struct world *w = ctx;
    (void)env;
    for (size_t i = 0; i < n; i++) {
        if (w->target == 0 || w->target == CELLS - 1 || f[i]->seq % 97 == 0)
            w->dir = -w->dir;
        w->target += w->dir;
        struct view *v = (struct view *)f[i]->payload;
        v->target = w->target;
    }
}

static void classify(void *ctx, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)ctx;
    (void)env;
    for (size_t i = 0; i < n; i++) {
        const struct view *v = (const struct view *)f[i]->payload;
        /* Exact context: the target's cell. Pattern: the eighth it is in. */
        f[i]->context_key = 1 + (uint64_t)v->target;
        f[i]->pattern_key = 1000 + (uint64_t)v->target / 8;
    }
}

static void choose(void *ctx, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)ctx;
    struct rfx_action_cache *c = env->cache; /* the engine's, or a replay's */
    for (size_t i = 0; i < n; i++) {
        uint32_t action = HOLD;
        enum rfx_cache_result r = RFX_CACHE_MISS;
        if (!(env->degrade & RFX_DEGRADE_FALLBACK_ONLY))
            r = rfx_action_cache_lookup(c, f[i]->context_key, use_l2 ? f[i]->pattern_key : 0,
                                        &action, &f[i]->cache_generation);
        else
            f[i]->flags |= RFX_FRAME_FALLBACK_ONLY; /* so a replay tells it the same */
        if (r == RFX_CACHE_MISS && !(env->degrade & RFX_DEGRADE_CACHE_ONLY)) {
            struct rfx_cache_miss m = {.context_key = f[i]->context_key,
                                       .pattern_key = f[i]->pattern_key,
                                       .seq = f[i]->seq};
            rfx_action_cache_queue_miss(c, &m); /* full queue: counted, never blocks */
        }
        f[i]->cache_result = (uint8_t)r;
        f[i]->action = r == RFX_CACHE_MISS ? HOLD : action;
    }
}

static void act(void *ctx, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    struct world *w = ctx;
    (void)env;
    for (size_t i = 0; i < n; i++) {
        const struct view *v = (const struct view *)f[i]->payload;
        /* The cached action names the cell to aim at (action - 3); HOLD keeps it. */
        if (f[i]->action >= 3)
            w->turret = (int)f[i]->action - 3;
        w->hits += w->turret == v->target;
        w->frames++;
    }
}

/* The planner: aim at the target's cell (L1), or the middle of its eighth (L2). */
static int plan(void *ctx, const struct rfx_cache_miss *m, size_t n, struct rfx_plan *out)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        int cell = (int)m[i].context_key - 1;
        struct rfx_cache_entry l1 = {
            .key = m[i].context_key, .action = 3 + (uint32_t)cell, .created_ns = rfx_now_ns()};
        struct rfx_cache_entry l2 = {.key = m[i].pattern_key,
                                     .action = 3 + (uint32_t)((cell / 8) * 8 + 4),
                                     .created_ns = rfx_now_ns()};
        if (rfx_plan_add(out, 1, &l1) < 0 || rfx_plan_add(out, 2, &l2) < 0)
            return -1;
    }
    return 0;
}

/* No stage keeps state tied to its thread, so each lets the other critical
 * thread run it when its own is late (rescue, docs/architecture.md). */
static const struct rfx_stage_ops ops[4] = {{.process = sense, .rescuable = 1},
                                            {.process = classify, .rescuable = 1},
                                            {.process = choose, .rescuable = 1},
                                            {.process = act, .rescuable = 1}};
static const char *const names[4] = {"sense", "classify", "choose", "act"};

static void difference(void *arg, const struct rfx_replay_difference *d)
{
    (void)arg;
    printf("  frame %llu: %s\n", (unsigned long long)d->seq, d->what);
}

/* Replay a record through classify and choose: 0 identical, 1 differ, 2 bad file. */
static int replay(const char *path)
{
    struct rfx_replay_config rc = {
        .pattern = {.name = names[1], .ops = &ops[1]},
        .decide = {.name = names[2], .ops = &ops[2]},
        .min_payload = sizeof(struct view),
        .difference = difference,
        .max_listed = 3,
    };
    struct rfx_replay_result res;
    char msg[512];
    if (rfx_replay(path, &rc, &res, msg, sizeof msg) != 0) {
        fprintf(stderr, "aimbot: replay: %s\n", msg);
        return 2;
    }
    printf("aimbot: replayed %llu frames: %llu identical, %llu differ\n",
           (unsigned long long)res.compared, (unsigned long long)res.identical,
           (unsigned long long)res.differ);
    return res.differ ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "--replay")) {
        use_l2 = !(argc > 3 && !strcmp(argv[3], "--without-l2"));
        return replay(argv[2]);
    }
    struct rfx_engine_config cfg;
    rfx_engine_config_default(&cfg); /* 60 FPS, layout fitted to this machine */
    cfg.duration_s = argc > 1 ? atof(argv[1]) : 5;
    snprintf(cfg.out_dir, sizeof cfg.out_dir, "%s", argc > 2 ? argv[2] : "aimbot-out");
    if (snprintf(cfg.record_path, sizeof cfg.record_path, "%s/record.rfx", cfg.out_dir) >=
        (int)sizeof cfg.record_path) {
        fprintf(stderr, "aimbot: out dir path too long\n");
        return 2;
    }
    mkdir(cfg.out_dir, 0777); /* the record is opened at start */
    struct world w = {.target = CELLS / 2, .dir = 1, .turret = 0};
    char msg[512];
    if (rfx_engine_create(&cfg, &w.e) != 0) {
        fprintf(stderr, "aimbot: bad engine config\n");
        return 2;
    }
    static const struct rfx_planner_ops planner = {.plan = plan};
    for (int i = 0; i < 4; i++)
        rfx_engine_add_stage(w.e, names[i], &ops[i], &w);
    rfx_engine_set_planner(w.e, &planner, NULL);
    if (rfx_engine_start(w.e, msg, sizeof msg) != 0) {
        fprintf(stderr, "aimbot: %s\n", msg);
        rfx_engine_destroy(w.e);
        return 1;
    }
    rfx_engine_wait(w.e); /* until duration_s */
    struct rfx_engine_counts k;
    rfx_engine_counts(w.e, &k);
    int rc = rfx_engine_write_bundle(w.e, msg, sizeof msg);
    printf("aimbot: %llu frames, %llu executed, %llu on target (%.1f%%); bundle in %s/\n",
           (unsigned long long)k.captured, (unsigned long long)k.executed,
           (unsigned long long)w.hits, w.frames ? 100.0 * w.hits / w.frames : 0.0, cfg.out_dir);
    if (rc != 0)
        fprintf(stderr, "aimbot: bundle: %s\n", msg);
    rfx_engine_destroy(w.e);
    return rc == 0 ? 0 : 1;
}
