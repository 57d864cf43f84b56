/*
 * rfx_replay (reflex/replay.h) through a bot's own stages, as an embedding
 * bot uses it: an engine runs four stages of the test's own with a planner
 * and records the run; the replay of its pattern and decide stages must
 * find every decision identical, with decide alone too; a changed policy
 * or a drop decide did not make is found and named; stages the record
 * cannot replay are refused with what is wrong.
 */
#include <reflex/reflex.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FRAMES = 500, HZ = 500, PAYLOAD = 64 };

struct bot {
    /* decide's policy in a replay: change the action of frames with
     * seq % change_every == change_at, drop frame drop_seq (0: neither) */
    uint64_t change_every, change_at, drop_seq;
    bool fail_init_decide;
    int inits[2], finis[2]; /* pattern, decide */
    uint64_t hits, misses;
};

static void grab(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)env;
    for (size_t i = 0; i < n; i++) {
        memcpy(f[i]->payload, &f[i]->seq, 8);
        for (int b = 8; b < PAYLOAD; b++)
            f[i]->payload[b] = (unsigned char)(f[i]->seq * 31 + (uint64_t)b);
    }
}

static int look_init(void *c, const struct rfx_stage_env *env)
{
    (void)env;
    ((struct bot *)c)->inits[0]++;
    return 0;
}

static void look_fini(void *c, const struct rfx_stage_env *env)
{
    (void)env;
    ((struct bot *)c)->finis[0]++;
}

/* Keys from the payload: a new situation every 10 frames (so the planner
 * keeps publishing), grouped by 8. */
static void look(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        memcpy(&seq, f[i]->payload, 8);
        uint64_t s = seq / 10 % 60;
        f[i]->context_key = 100 + s;
        f[i]->pattern_key = 1000 + s / 8;
        f[i]->context_class = (uint8_t)(s % 3);
        /* Ask the planners now and then; a replay has no engine to ask. */
        if (env->engine && f[i]->seq % 50 == 0)
            rfx_engine_context_change(env->engine);
    }
}

static int pick_init(void *c, const struct rfx_stage_env *env)
{
    struct bot *b = c;
    (void)env;
    b->inits[1]++;
    return b->fail_init_decide ? -1 : 0;
}

static void pick_fini(void *c, const struct rfx_stage_env *env)
{
    (void)env;
    ((struct bot *)c)->finis[1]++;
}

static void pick(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    struct bot *b = c;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = 0;
        enum rfx_cache_result r = rfx_action_cache_lookup(
            env->cache, f[i]->context_key, f[i]->pattern_key, &a, &f[i]->cache_generation);
        if (r == RFX_CACHE_MISS) {
            struct rfx_cache_miss m = {.context_key = f[i]->context_key,
                                       .pattern_key = f[i]->pattern_key,
                                       .seq = f[i]->seq};
            rfx_action_cache_queue_miss(env->cache, &m);
            b->misses++;
        } else {
            b->hits++;
        }
        if (b->change_every && f[i]->seq % b->change_every == b->change_at)
            a += 1000;
        if (b->drop_seq && f[i]->seq == b->drop_seq)
            rfx_frame_drop(f[i], RFX_DROP_STAGE);
        f[i]->cache_result = (uint8_t)r;
        f[i]->action = a;
    }
}

static void act(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)f, (void)n, (void)env;
}

/* L1: the situation's own action; L2: its group's. */
static int plan(void *c, const struct rfx_cache_miss *m, size_t n, struct rfx_plan *out)
{
    (void)c;
    for (size_t i = 0; i < n; i++) {
        struct rfx_cache_entry l1 = {.key = m[i].context_key, .action = (uint32_t)m[i].context_key};
        struct rfx_cache_entry l2 = {.key = m[i].pattern_key, .action = (uint32_t)m[i].pattern_key};
        if (rfx_plan_add(out, 1, &l1) < 0 || rfx_plan_add(out, 2, &l2) < 0)
            return -1;
    }
    return 0;
}

static const struct rfx_stage_ops ops[4] = {
    {.process = grab},
    {.init = look_init, .process = look, .fini = look_fini},
    {.init = pick_init, .process = pick, .fini = pick_fini},
    {.process = act},
};
static const char *const names[4] = {"grab", "look", "pick", "act"};

static char dir[64], record[96];
static struct rfx_engine_counts counts;
static struct rfx_action_cache_stats run_cache;
static struct bot run_bot; /* the recorded run's decide: its hits and misses */

/* One recorded run, shared by the tests of a process (Criterion runs each
 * test in its own). */
static void record_run(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfx-replay-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(record, sizeof record, "%s/record.rfx", dir);
    struct rfx_engine_config cfg;
    rfx_engine_config_default(&cfg);
    cfg.frame_hz = HZ;
    cfg.max_frames = FRAMES;
    cfg.payload_bytes = PAYLOAD;
    snprintf(cfg.out_dir, sizeof cfg.out_dir, "%s", dir);
    snprintf(cfg.record_path, sizeof cfg.record_path, "%s", record);
    struct rfx_engine *e;
    cr_assert_eq(rfx_engine_create(&cfg, &e), 0);
    struct bot *b = &run_bot;
    for (int s = 0; s < 4; s++)
        cr_assert_eq(rfx_engine_add_stage(e, names[s], &ops[s], b), 0);
    static const struct rfx_planner_ops planner = {.plan = plan};
    cr_assert_eq(rfx_engine_set_planner(e, &planner, NULL), 0);
    char msg[512];
    cr_assert_eq(rfx_engine_start(e, msg, sizeof msg), 0, "%s", msg);
    rfx_engine_wait(e);
    rfx_engine_counts(e, &counts);
    rfx_action_cache_stats(rfx_engine_cache(e), &run_cache);
    rfx_engine_destroy(e);
    cr_assert_eq(counts.captured, FRAMES);
    cr_assert_eq(counts.executed, FRAMES, "no frame may be dropped in the recorded run");
}

/* The recorded run's directory: the record and the run's bundle. */
static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(replay, .init = record_run, .fini = cleanup, .timeout = 60);

struct diffs {
    int n;
    uint64_t seq[64];
    char what[64][400];
};

static void on_diff(void *arg, const struct rfx_replay_difference *d)
{
    struct diffs *x = arg;
    if (x->n < 64) {
        x->seq[x->n] = d->seq;
        snprintf(x->what[x->n], sizeof x->what[0], "%s", d->what);
    }
    x->n++;
}

static struct rfx_replay_config config(struct bot *b, struct diffs *d)
{
    return (struct rfx_replay_config){
        .pattern = {.name = "look", .ops = &ops[1], .ctx = b},
        .decide = {.name = "pick", .ops = &ops[2], .ctx = b},
        .min_payload = PAYLOAD,
        .difference = on_diff,
        .difference_arg = d,
    };
}

Test(replay, a_bots_own_stages_replay_identically)
{
    cr_assert_gt(run_cache.publications, 1, "the planner published %llu snapshots",
                 (unsigned long long)run_cache.publications);
    cr_assert_gt(run_bot.hits, 0);
    cr_assert_gt(run_bot.misses, 0);
    struct bot b = {0};
    struct diffs d = {0};
    struct rfx_replay_config c = config(&b, &d);
    struct rfx_replay_result r;
    char msg[512];
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(r.frames, FRAMES);
    cr_assert_eq(r.compared, FRAMES);
    cr_assert_eq(r.decided, FRAMES);
    cr_assert_eq(r.identical, FRAMES, "%llu identical, first difference: %s",
                 (unsigned long long)r.identical, d.n ? d.what[0] : "none");
    cr_assert_eq(r.differ, 0);
    cr_assert_eq(d.n, 0);
    cr_assert_eq(r.publications, run_cache.publications);
    /* the replay's decisions hit and missed the cache as the run's did */
    cr_assert_eq(b.hits, run_bot.hits);
    cr_assert_eq(b.misses, run_bot.misses);
    cr_assert_str_eq(r.header.stages[1], "look");
    cr_assert_eq(b.inits[0], 1);
    cr_assert_eq(b.inits[1], 1);
    cr_assert_eq(b.finis[0], 1);
    cr_assert_eq(b.finis[1], 1);
}

Test(replay, decide_alone_gets_the_recorded_keys)
{
    struct bot b = {0};
    struct diffs d = {0};
    struct rfx_replay_config c = config(&b, &d);
    c.pattern = (struct rfx_replay_stage){0};
    struct rfx_replay_result r;
    char msg[512];
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(r.compared, FRAMES);
    cr_assert_eq(r.identical, FRAMES, "first difference: %s", d.n ? d.what[0] : "none");
    cr_assert_eq(b.inits[0], 0, "no pattern stage: its init is not called");
    cr_assert_eq(b.inits[1], 1);
}

Test(replay, a_changed_policy_is_found_and_named)
{
    struct bot b = {.change_every = 10, .change_at = 3};
    struct diffs d = {0};
    struct rfx_replay_config c = config(&b, &d);
    struct rfx_replay_result r;
    char msg[512];
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(r.differ, FRAMES / 10);
    cr_assert_eq(r.identical, FRAMES - FRAMES / 10);
    cr_assert_eq(r.first_diff_seq, 3);
    cr_assert_eq(d.n, 10, "the first 10 differences are listed (max_listed 0)");
    cr_assert_eq(d.seq[1], 13);
    cr_assert(strstr(d.what[0], "pick chose action ") != NULL, "%s", d.what[0]);
    cr_assert(strstr(d.what[0], "recorded ") != NULL, "%s", d.what[0]);
    /* max_listed: 3, or none */
    struct diffs d3 = {0};
    c.difference_arg = &d3;
    c.max_listed = 3;
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(d3.n, 3);
    cr_assert_eq(r.differ, FRAMES / 10);
    struct diffs d0 = {0};
    c.difference_arg = &d0;
    c.max_listed = -1;
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(d0.n, 0);
    cr_assert_eq(r.differ, FRAMES / 10);
}

Test(replay, a_drop_decide_did_not_make_differs)
{
    struct bot b = {.drop_seq = 77};
    struct diffs d = {0};
    struct rfx_replay_config c = config(&b, &d);
    struct rfx_replay_result r;
    char msg[512];
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(r.differ, 1);
    cr_assert_eq(r.first_diff_seq, 77);
    cr_assert_eq(d.n, 1);
    cr_assert(strstr(d.what[0], ", dropped)") != NULL, "%s", d.what[0]);
}

Test(replay, stages_the_record_cannot_replay_are_refused)
{
    struct bot b = {0};
    struct diffs d = {0};
    struct rfx_replay_result r;
    char msg[512];
    struct rfx_replay_config c = config(&b, &d);
    c.decide.name = "nope";
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), -EINVAL);
    cr_assert_str_eq(msg, "the record's pipeline (grab, look, pick, act, telemetry) has no decide "
                          "stage 'nope' to replay");
    c = config(&b, &d);
    c.decide.name = "telemetry";
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), -EINVAL);
    cr_assert(strstr(msg, "has no decide stage 'telemetry'") != NULL, "%s", msg);
    c = config(&b, &d);
    c.pattern.name = "pick";
    c.decide.name = "look";
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), -EINVAL);
    cr_assert_str_eq(msg, "in the record's pipeline, decide stage 'look' comes before pattern "
                          "stage 'pick'");
    c = config(&b, &d);
    c.min_payload = PAYLOAD + 1;
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), -EINVAL);
    cr_assert_str_eq(msg, "the stages read payloads of 65 bytes; the record's are 64");
    c = config(&b, &d);
    c.decide.ops = NULL;
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), -EINVAL);
    cr_assert_eq(b.inits[0] + b.inits[1], 0, "nothing was set up for a refused replay");
    /* decide's init fails: pattern, set up before it, is finished */
    struct bot f = {.fail_init_decide = true};
    c = config(&f, &d);
    cr_assert_eq(rfx_replay(record, &c, &r, msg, sizeof msg), -EIO);
    cr_assert_str_eq(msg, "stage pick: init failed");
    cr_assert_eq(f.inits[0], 1);
    cr_assert_eq(f.finis[0], 1);
    cr_assert_eq(f.finis[1], 0);
    /* not a record */
    c = config(&b, &d);
    cr_assert_eq(rfx_replay("/nonexistent/record.rfx", &c, &r, msg, sizeof msg), -ENOENT);
}
