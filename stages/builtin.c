/*
 * The built-in stage sets (see builtin.h): demo game, synthetic, UDP.
 */
#include "builtin.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udp.h"

#include <reflex/record.h>

const char *const rfx_builtin_stages[5] = {"capture", "pattern", "decide", "execute", "telemetry"};

struct rfx_builtin {
    struct rfx_engine *e; /* NULL in a replay */
    const struct rfx_engine_config *cfg;
    bool demo, synthetic, udp_in, udp_out;
    /* demo: the game lives with capture; execute hands actions back */
    struct rfx_demo_game game;
    _Atomic uint64_t mailbox; /* (seq + 1) << 8 | action, written by execute */
    uint64_t applied_seq;     /* capture's: last action applied */
    uint64_t late_actions;    /* frames captured with no new action */
    uint64_t actions;
    _Atomic uint64_t plan_calls, planned; /* several planners may run at once */
    /* the planners' memory of recent misses, refined on periodic calls */
    pthread_mutex_t recent_lock;
    struct rfx_cache_miss recent[64];
    int n_recent, next_recent;
    /* synthetic */
    uint32_t work_ns[4];
    struct rfx_udp *udp;
    struct rfx_stage_ops cap_ops, exe_ops; /* capture/execute: demo, synthetic or UDP */
    uint32_t cat_by_class[3];              /* cache categories for the demo's plans */
    uint64_t hits_seen;                    /* capture: hits already reported as critical_health */
    uint64_t invalid_states;               /* pattern's: frames dropped for a state off the game */
    /* source replay: a record's payloads, played in sequence order */
    bool replay_src;
    unsigned char *rs_payloads; /* rs_n × rs_size, sorted by seq */
    size_t rs_n, rs_next;
    uint32_t rs_size;
    bool rs_done;
};

static void busy(uint32_t ns)
{
    if (!ns)
        return;
    int64_t end = rfx_now_ns() + ns;
    while (rfx_now_ns() < end)
        ;
}

static struct rfx_demo_state *state_of(struct rfx_frame *f)
{
    return (struct rfx_demo_state *)(void *)f->payload;
}

/* ---- demo ---- */

static void demo_capture(void *ctx, struct rfx_frame **fr, size_t n,
                         const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    for (size_t i = 0; i < n; i++) {
        uint64_t m = atomic_load_explicit(&b->mailbox, memory_order_acquire);
        int action = RFX_ACT_STAY;
        if ((m >> 8) > b->applied_seq) {
            b->applied_seq = m >> 8;
            action = (int)(m & 0xff);
        } else if (b->game.s.tick > 0) {
            b->late_actions++;
        }
        rfx_demo_game_step(&b->game, action);
        memcpy(fr[i]->payload, &b->game.s, sizeof b->game.s);
        if (b->game.hits > b->hits_seen) {
            /* Hit: the rule for critical_health drops exploration_* plans. */
            b->hits_seen = b->game.hits;
            rfx_engine_cache_event(env->engine, "critical_health");
        }
    }
}

static void demo_pattern(void *ctx, struct rfx_frame **fr, size_t n,
                         const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    for (size_t i = 0; i < n; i++) {
        const struct rfx_demo_state *s = state_of(fr[i]);
        /* A UDP game's state comes from outside (the built-in game's never
         * leaves the grid): one off the game is counted, never looked at. */
        if (b->udp_in && !rfx_demo_state_valid(s)) {
            rfx_frame_drop(fr[i], RFX_DROP_STAGE);
            b->invalid_states++;
            continue;
        }
        fr[i]->context_key = rfx_demo_context_key(s);
        fr[i]->pattern_key = rfx_demo_pattern_key(s);
        fr[i]->context_class = (uint8_t)rfx_demo_context_class(s);
    }
    (void)env;
}

static void demo_decide(void *ctx, struct rfx_frame **fr, size_t n, const struct rfx_stage_env *env)
{
    struct rfx_action_cache *c = env->cache;
    for (size_t i = 0; i < n; i++) {
        struct rfx_frame *f = fr[i];
        const struct rfx_demo_state *s = state_of(f);
        uint32_t action = RFX_ACT_STAY;
        enum rfx_cache_result r = RFX_CACHE_MISS;
        if (!(env->degrade & RFX_DEGRADE_FALLBACK_ONLY))
            r = rfx_action_cache_lookup(c, f->context_key, f->pattern_key, &action,
                                        &f->cache_generation);
        else
            f->flags |= RFX_FRAME_FALLBACK_ONLY;
        if (r == RFX_CACHE_MISS) {
            action = (uint32_t)rfx_demo_fallback(s);
            if (!(env->degrade & RFX_DEGRADE_CACHE_ONLY)) {
                struct rfx_cache_miss m = {.context_key = f->context_key,
                                           .pattern_key = f->pattern_key,
                                           .seq = f->seq,
                                           .context_class = f->context_class,
                                           .user_len = 32};
                memcpy(m.user, &s->rows[2], 28); /* the 14 bottom rows */
                m.user[28] = s->x;
                m.user[29] = s->phase;
                rfx_action_cache_queue_miss(c, &m);
            }
        }
        f->cache_result = (uint8_t)r;
        f->action = action;
    }
}

static void demo_execute(void *ctx, struct rfx_frame **fr, size_t n,
                         const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    for (size_t i = 0; i < n; i++)
        if (!(fr[i]->flags & RFX_FRAME_SINK_FAILED)) /* a failed send never reaches the game */
            atomic_store_explicit(&b->mailbox, (fr[i]->seq + 1) << 8 | (fr[i]->action & 0xff),
                                  memory_order_release);
    b->actions += n;
    (void)env;
}

static void miss_state(const struct rfx_cache_miss *m, struct rfx_demo_state *s)
{
    memset(s, 0, sizeof *s);
    memcpy(&s->rows[2], m->user, 28);
    s->x = m->user[28];
    s->phase = m->user[29];
}

/*
 * The demo planner. On misses: a 6-decision look-ahead for each state, an L1
 * entry for its context key and an L2 entry for its pattern key. On periodic
 * calls with no misses (deliberation while nothing is urgent): the last 64
 * missed states again, two decisions deeper, replacing their entries.
 */
static int demo_plan(void *ctx, const struct rfx_cache_miss *m, size_t n, struct rfx_plan *out)
{
    struct rfx_builtin *b = ctx;
    int64_t now = rfx_now_ns();
    struct rfx_cache_miss refine[64];
    size_t n_refine = 0;
    pthread_mutex_lock(&b->recent_lock);
    for (size_t i = 0; i < n; i++) {
        if (m[i].user_len < 30)
            continue;
        b->recent[b->next_recent] = m[i];
        b->next_recent = (b->next_recent + 1) % 64;
        if (b->n_recent < 64)
            b->n_recent++;
    }
    if (n == 0) {
        n_refine = (size_t)b->n_recent;
        memcpy(refine, b->recent, n_refine * sizeof refine[0]);
    }
    pthread_mutex_unlock(&b->recent_lock);
    const struct rfx_cache_miss *work = n ? m : refine;
    size_t count = n ? n : n_refine;
    int depth = n ? 6 : 8;
    for (size_t i = 0; i < count; i++) {
        if (work[i].user_len < 30)
            continue;
        struct rfx_demo_state s;
        miss_state(&work[i], &s);
        uint32_t a = (uint32_t)rfx_demo_plan_depth(&s, depth);
        uint32_t cat = b->cat_by_class[work[i].context_class < 3 ? work[i].context_class : 0];
        struct rfx_cache_entry e1 = {
            .key = work[i].context_key, .action = a, .category = cat, .created_ns = now};
        int rc = rfx_plan_add(out, 1, &e1);
        if (rc == 0 && n) {
            struct rfx_cache_entry e2 = {
                .key = work[i].pattern_key, .action = a, .category = cat, .created_ns = now};
            rc = rfx_plan_add(out, 2, &e2);
        }
        if (rc)
            return rc;
        atomic_fetch_add_explicit(&b->planned, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&b->plan_calls, 1, memory_order_relaxed);
    return 0;
}

/* ---- replay source: a record's frames, as captured ---- */

static void replay_capture(void *ctx, struct rfx_frame **fr, size_t n,
                           const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    for (size_t i = 0; i < n; i++) {
        if (b->rs_next == b->rs_n) {
            /* Played out: nothing more to capture, and the run ends. */
            fr[i]->flags |= RFX_FRAME_EMPTY;
            if (!b->rs_done) {
                b->rs_done = true;
                rfx_engine_stop(env->engine);
            }
            continue;
        }
        memcpy(fr[i]->payload, b->rs_payloads + b->rs_next * b->rs_size, b->rs_size);
        b->rs_next++;
    }
}

struct rs_frame {
    uint64_t seq;
    size_t at;
};

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const struct rs_frame *)a)->seq, y = ((const struct rs_frame *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Load every frame's payload of cfg->source_file, in sequence order. */
static int replay_load(struct rfx_builtin *b, const struct rfx_engine_config *cfg,
                       struct rfx_record_header *h, char *msg, size_t msglen)
{
    if (!cfg->source_file[0]) {
        snprintf(msg, msglen, "source.kind = replay needs source.file (a record.rfx)");
        return -EINVAL;
    }
    struct rfx_record_reader *r;
    char why[300];
    int rc = rfx_record_open(cfg->source_file, &r, h, why, sizeof why);
    if (rc) {
        snprintf(msg, msglen, "source.file %s: %s", cfg->source_file, why);
        return rc == -EIO || rc == -ENOMEM ? rc : -EINVAL;
    }
    if (h->payload_bytes > cfg->payload_bytes) {
        snprintf(msg, msglen,
                 "source.file %s: its frames carry %u-byte payloads; engine.payload_bytes is %u",
                 cfg->source_file, h->payload_bytes, cfg->payload_bytes);
        rfx_record_close(r);
        return -EINVAL;
    }
    size_t cap = 0, n = 0, size = h->payload_bytes;
    unsigned char *raw = NULL;
    struct rs_frame *idx = NULL;
    struct rfx_record_item it;
    while ((rc = rfx_record_next(r, &it, why, sizeof why)) == 1) {
        if (it.kind != RFX_RECORD_FRAME)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            if (cap * (size ? size : 1) > ((size_t)1 << 30)) {
                snprintf(why, sizeof why, "more than 1 GiB of payloads to play");
                rc = -EINVAL;
                break;
            }
            unsigned char *nr = realloc(raw, cap * (size ? size : 1));
            struct rs_frame *ni = realloc(idx, cap * sizeof *idx);
            if (nr)
                raw = nr;
            if (ni)
                idx = ni;
            if (!nr || !ni) {
                snprintf(why, sizeof why, "out of memory");
                rc = -ENOMEM;
                break;
            }
        }
        memcpy(raw + n * size, it.u.frame.payload, size);
        idx[n] = (struct rs_frame){.seq = it.u.frame.seq, .at = n};
        n++;
    }
    rfx_record_close(r);
    if (rc == 0 && n == 0) {
        snprintf(why, sizeof why, "no frames to play");
        rc = -EINVAL;
    }
    if (rc == 0)
        b->rs_payloads = malloc(n * (size ? size : 1));
    if (rc == 0 && !b->rs_payloads) {
        snprintf(why, sizeof why, "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0) {
        qsort(idx, n, sizeof *idx, by_seq);
        for (size_t i = 0; i < n; i++)
            memcpy(b->rs_payloads + i * size, raw + idx[i].at * size, size);
        b->rs_n = n;
        b->rs_size = (uint32_t)size;
    } else {
        snprintf(msg, msglen, "source.file %s: %s", cfg->source_file, why);
    }
    free(raw);
    free(idx);
    return rc;
}

/* ---- synthetic ---- */

static void syn_capture(void *ctx, struct rfx_frame **fr, size_t n, const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    for (size_t i = 0; i < n; i++) {
        if (fr[i]->payload_size >= 8)
            memcpy(fr[i]->payload, &fr[i]->seq, 8);
        busy(b->work_ns[0]);
    }
    (void)env;
}

static void syn_pattern(void *ctx, struct rfx_frame **fr, size_t n, const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    for (size_t i = 0; i < n; i++) {
        fr[i]->context_key = 1ull << 63 | (fr[i]->seq & 1023);
        fr[i]->pattern_key = 1ull << 62 | (fr[i]->seq & 63);
        busy(b->work_ns[1]);
    }
    (void)env;
}

static void syn_decide(void *ctx, struct rfx_frame **fr, size_t n, const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    struct rfx_action_cache *c = env->cache;
    for (size_t i = 0; i < n; i++) {
        struct rfx_frame *f = fr[i];
        uint32_t action = 0;
        enum rfx_cache_result r = rfx_action_cache_lookup(c, f->context_key, f->pattern_key,
                                                          &action, &f->cache_generation);
        if (r == RFX_CACHE_MISS) {
            struct rfx_cache_miss m = {
                .context_key = f->context_key, .pattern_key = f->pattern_key, .seq = f->seq};
            rfx_action_cache_queue_miss(c, &m);
        }
        f->cache_result = (uint8_t)r;
        f->action = action;
        busy(b->work_ns[2]);
    }
    (void)env;
}

static void syn_execute(void *ctx, struct rfx_frame **fr, size_t n, const struct rfx_stage_env *env)
{
    struct rfx_builtin *b = ctx;
    for (size_t i = 0; i < n; i++)
        busy(b->work_ns[3]);
    b->actions += n;
    (void)env;
}

/* Keeps the strategic workers busy: each call burns 20 ms, then answers. */
static int syn_plan(void *ctx, const struct rfx_cache_miss *m, size_t n, struct rfx_plan *out)
{
    struct rfx_builtin *b = ctx;
    busy(20000000);
    int64_t now = rfx_now_ns();
    for (size_t i = 0; i < n; i++) {
        struct rfx_cache_entry e1 = {.key = m[i].context_key, .action = 1, .created_ns = now};
        int rc = rfx_plan_add(out, 1, &e1);
        if (rc)
            return rc;
    }
    atomic_fetch_add_explicit(&b->plan_calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->planned, n, memory_order_relaxed);
    return 0;
}

static const struct rfx_stage_ops demo_ops[4] = {
    {.process = demo_capture, .rescuable = 1},
    /* 2: the L2 key holds the fall phase (a87b8c9); 0 before, when one
     * entry answered all four frames of a fall */
    {.process = demo_pattern, .key_schema = 2, .rescuable = 1},
    {.process = demo_decide, .rescuable = 1},
    {.process = demo_execute, .rescuable = 1},
};
static const struct rfx_stage_ops syn_ops[4] = {
    {.process = syn_capture, .rescuable = 1},
    {.process = syn_pattern, .rescuable = 1},
    {.process = syn_decide, .rescuable = 1},
    {.process = syn_execute, .rescuable = 1},
};
static const struct rfx_planner_ops demo_planner = {.plan = demo_plan};
static const struct rfx_planner_ops syn_planner = {.plan = syn_plan};

int rfx_builtin_setup(struct rfx_engine *e, const struct rfx_engine_config *cfg,
                      struct rfx_builtin **out, char *msg, size_t msglen)
{
    struct rfx_builtin *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    b->e = e;
    b->cfg = cfg;
    atomic_init(&b->mailbox, 0);
    atomic_init(&b->plan_calls, 0);
    atomic_init(&b->planned, 0);
    pthread_mutex_init(&b->recent_lock, NULL);
    for (int i = 0; i < 4; i++)
        b->work_ns[i] = cfg->work_ns[i];
    b->synthetic = !strcmp(cfg->source_kind, "synthetic");
    b->udp_in = !strcmp(cfg->source_kind, "udp");
    b->udp_out = !strcmp(cfg->sink_kind, "udp");
    b->replay_src = !strcmp(cfg->source_kind, "replay");
    struct rfx_record_header rh;
    if (b->replay_src) {
        /* The record's own stage set decides on its frames; every state is
         * checked, as it comes from outside. */
        int rc = replay_load(b, cfg, &rh, msg, msglen);
        if (rc == 0 && rfx_engine_set_record_kind(e, rh.source_kind) != 0)
            rc = -EINVAL;
        if (rc) {
            rfx_builtin_destroy(b);
            return rc;
        }
        b->synthetic = !strcmp(rh.source_kind, "synthetic");
        b->udp_in = !b->synthetic;
    }
    b->demo = !b->synthetic;
    if (b->udp_out && b->synthetic) {
        snprintf(msg, msglen, "[sink] kind = udp needs [source] kind = udp or demo");
        rfx_builtin_destroy(b);
        return -EINVAL;
    }
    if (b->demo && cfg->payload_bytes < sizeof(struct rfx_demo_state)) {
        snprintf(msg, msglen, "engine.payload_bytes: the demo game needs at least %zu bytes",
                 sizeof(struct rfx_demo_state));
        rfx_builtin_destroy(b);
        return -EINVAL;
    }
    rfx_demo_game_init(&b->game, cfg->seed);
    const struct rfx_stage_ops *ops = b->synthetic ? syn_ops : demo_ops;
    int rc = 0;
    bool udp_source = b->udp_in && !b->replay_src;
    if (udp_source || b->udp_out) {
        rc = rfx_udp_create(cfg, udp_source, b->udp_out, &b->udp, msg, msglen);
        if (rc) {
            rfx_builtin_destroy(b);
            return rc;
        }
    }
    static const struct rfx_stage_ops replay_ops = {.process = replay_capture};
    b->cap_ops = b->replay_src ? replay_ops : udp_source ? rfx_udp_capture_ops : ops[0];
    b->exe_ops = b->udp_out ? rfx_udp_execute_ops : ops[3];
    void *cap_ctx = udp_source ? (void *)b->udp : b, *exe_ctx = b->udp_out ? (void *)b->udp : b;
    if ((rc = rfx_engine_add_stage(e, "capture", &b->cap_ops, cap_ctx)) ||
        (rc = rfx_engine_add_stage(e, "pattern", &ops[1], b)) ||
        (rc = rfx_engine_add_stage(e, "decide", &ops[2], b)) ||
        (rc = rfx_engine_add_stage(e, "execute", &b->exe_ops, exe_ctx))) {
        snprintf(msg, msglen, "registering the built-in stages failed (%d)", rc);
        rfx_builtin_destroy(b);
        return rc;
    }
    /* The demo's plan categories, by context class (routine, emergency,
     * deliberative), for the cache rules. */
    static const char *const cats[3] = {"movement_center", "movement_dodge", "exploration_idle"};
    for (int c = 0; c < 3; c++) {
        int id = rfx_engine_category(e, cats[c]);
        b->cat_by_class[c] = id > 0 ? (uint32_t)id : 0;
    }
    if ((rc = rfx_engine_set_planner(e, b->synthetic ? &syn_planner : &demo_planner, b)) != 0) {
        snprintf(msg, msglen, "setting the planner failed (%d)", rc);
        rfx_builtin_destroy(b);
        return rc;
    }
    *out = b;
    return 0;
}

int rfx_builtin_replay_setup(const char *source_kind, struct rfx_builtin **out,
                             const struct rfx_stage_ops **pattern,
                             const struct rfx_stage_ops **decide, char *msg, size_t msglen)
{
    bool synthetic = !strcmp(source_kind, "synthetic"), udp = !strcmp(source_kind, "udp");
    if (!synthetic && !udp && strcmp(source_kind, "demo") != 0) {
        snprintf(msg, msglen, "source kind '%s' has no built-in pattern and decide stages",
                 source_kind);
        return -EINVAL;
    }
    struct rfx_builtin *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    b->synthetic = synthetic;
    /* A record comes from outside, whatever its source was: pattern checks
     * every state, as it does a UDP game's. */
    b->udp_in = udp || !synthetic;
    b->demo = !synthetic;
    pthread_mutex_init(&b->recent_lock, NULL);
    const struct rfx_stage_ops *ops = synthetic ? syn_ops : demo_ops;
    *pattern = &ops[1];
    *decide = &ops[2];
    *out = b;
    return 0;
}

void rfx_builtin_report(struct rfx_builtin *b, struct rfx_engine *e, FILE *out)
{
    char json[512];
    if (b->replay_src) {
        snprintf(json, sizeof json,
                 "\"replay_source\": {\"frames_in_record\": %zu, \"frames_played\": %zu}", b->rs_n,
                 b->rs_next);
        rfx_engine_set_summary_extra(e, json);
        if (out)
            fprintf(out, "replay source: %zu of the record's %zu frames played\n", b->rs_next,
                    b->rs_n);
    } else if (b->demo && !b->udp_in) {
        const struct rfx_demo_game *g = &b->game;
        int64_t score = (int64_t)g->dodged - 5 * (int64_t)g->hits;
        snprintf(json, sizeof json,
                 "\"demo\": {\"score\": %" PRId64 ", \"dodged\": %" PRIu64 ", \"hits\": %" PRIu64
                 ", \"moves\": %" PRIu64 ", \"ticks\": %u, \"late_actions\": %" PRIu64
                 ", \"planner_calls\": %" PRIu64 ", \"planned\": %" PRIu64 ", \"seed\": %" PRIu64
                 "}",
                 score, g->dodged, g->hits, g->moves, g->s.tick, b->late_actions,
                 (uint64_t)atomic_load(&b->plan_calls), (uint64_t)atomic_load(&b->planned),
                 b->cfg->seed);
        rfx_engine_set_summary_extra(e, json);
        if (out)
            fprintf(out,
                    "demo: score %" PRId64 " (%" PRIu64 " hazards dodged, %" PRIu64
                    " hits at -5 each), %u ticks, %" PRIu64 " planned states\n",
                    score, g->dodged, g->hits, g->s.tick, (uint64_t)atomic_load(&b->planned));
    } else if (b->udp) {
        rfx_udp_report(b->udp, b->demo ? (int64_t)b->invalid_states : -1, json, sizeof json);
        rfx_engine_set_summary_extra(e, json);
        if (out)
            fprintf(out, "%s\n", json);
    }
}

void rfx_builtin_destroy(struct rfx_builtin *b)
{
    if (!b)
        return;
    rfx_udp_destroy(b->udp);
    pthread_mutex_destroy(&b->recent_lock);
    free(b->rs_payloads);
    free(b);
}
