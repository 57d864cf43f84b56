/*
 * Decision-exact replay (reflex/replay.h).
 *
 * A publication is in the file before any frame that saw it (the recorder
 * writes it before readers can see the snapshot), but frames decided on the
 * snapshot before it may come after it. So publications wait in a queue
 * and each is published into the replay's own cache, under its recorded
 * generation, when the first frame that looked it up comes.
 */
#include <reflex/replay.h>

#include "action_cache_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pending {
    uint64_t generation;
    uint32_t n1, n2;
    struct rfx_cache_entry *entries; /* n1 then n2 */
};

struct replay {
    const struct rfx_replay_config *cfg;
    struct rfx_replay_result *res;
    struct rfx_action_cache *cache;
    /* frames decided before the first snapshot decide on a cache that never
     * gets one (a snapshot cannot be taken back from `cache`) */
    struct rfx_action_cache *cache0;
    int pattern_i, decide_i; /* pattern_i -1: no pattern stage replayed */
    int first_i;             /* the first stage replayed */
    unsigned actions[5];
    struct pending *q;
    size_t q_len, q_cap, q_head;
    uint64_t published; /* generation in the replay's cache (0: none) */
    /* q: publications read, in generation order; q[0..q_head) were used */
    unsigned char *payload;
    uint64_t max_seq;
    bool any_frame;
    int listed;
};

static int stage_index(const struct rfx_record_header *h, const char *name)
{
    for (uint32_t i = 0; i < h->n_stages; i++)
        if (!strcmp(h->stages[i], name))
            return (int)i;
    return -1;
}

/* Publications kept after they were used: a frame dropped after its
 * decision may reach telemetry (and the record) after frames decided on a
 * later snapshot, so a replay may need a snapshot again. */
#define KEEP_USED 64

static int queue_publication(struct replay *r, const struct rfx_record_publication *p, char *msg,
                             size_t msglen)
{
    if (r->q_len && p->generation <= r->q[r->q_len - 1].generation) {
        snprintf(msg, msglen, "publication of generation %" PRIu64 " after generation %" PRIu64,
                 p->generation, r->q[r->q_len - 1].generation);
        return -EINVAL;
    }
    if (r->q_len == r->q_cap) {
        /* Forget the oldest used ones before growing. */
        size_t drop = r->q_head > KEEP_USED ? r->q_head - KEEP_USED : 0;
        if (drop) {
            for (size_t i = 0; i < drop; i++)
                free(r->q[i].entries);
            memmove(r->q, r->q + drop, (r->q_len - drop) * sizeof *r->q);
            r->q_len -= drop;
            r->q_head -= drop;
        }
        if (r->q_len == r->q_cap) {
            size_t cap = r->q_cap ? 2 * r->q_cap : 16;
            struct pending *q = realloc(r->q, cap * sizeof *q);
            if (!q)
                return -ENOMEM;
            r->q = q;
            r->q_cap = cap;
        }
    }
    size_t n = (size_t)p->n1 + p->n2;
    struct pending *e = &r->q[r->q_len];
    e->entries = malloc((n ? n : 1) * sizeof *e->entries);
    if (!e->entries)
        return -ENOMEM;
    memcpy(e->entries, p->l1, n * sizeof *e->entries); /* l2 follows l1 in the record */
    e->generation = p->generation;
    e->n1 = p->n1;
    e->n2 = p->n2;
    r->q_len++;
    return 0;
}

/* Make generation g the replay cache's snapshot, as it was in the run. */
static int use_generation(struct replay *r, uint64_t g, uint64_t seq, char *msg, size_t msglen)
{
    if (g == r->published)
        return 0;
    size_t i = 0;
    while (i < r->q_len && r->q[i].generation < g)
        i++;
    if (g == 0 || i == r->q_len || r->q[i].generation != g) {
        if (g != 0 && i < r->q_len && i >= r->q_head)
            snprintf(msg, msglen,
                     "frame %" PRIu64 " was decided in generation %" PRIu64
                     ", which the record never published (the next is %" PRIu64 ")",
                     seq, g, r->q[i].generation);
        else
            snprintf(msg, msglen,
                     "frame %" PRIu64 " was decided in generation %" PRIu64
                     ", which the record holds no publication of before it",
                     seq, g);
        return -EINVAL;
    }
    struct pending *p = &r->q[i];
    rfx_action_cache_next_generation(r->cache, p->generation);
    int64_t rc = rfx_action_cache_publish(r->cache, p->entries, p->n1, p->entries + p->n1, p->n2);
    if (rc == -ENOSPC || rc == -EINVAL) { /* the reader refused key 0: more than the cache holds */
        snprintf(msg, msglen,
                 "generation %" PRIu64 " holds %" PRIu32 " + %" PRIu32
                 " entries, more than the record's cache (%s)",
                 p->generation, p->n1, p->n2, strerror((int)-rc));
        return -EINVAL;
    }
    if (rc < 0) {
        snprintf(msg, msglen, "republishing generation %" PRIu64 ": %s", p->generation,
                 strerror((int)-rc));
        return (int)rc;
    }
    r->published = g;
    if (i + 1 > r->q_head)
        r->q_head = i + 1;
    return 0;
}

static const char *result_name(unsigned r)
{
    static const char *const n[] = {"no lookup", "L1", "L2", "miss"};
    return r < 4 ? n[r] : "?";
}

static void differ(struct replay *r, const struct rfx_record_item *it, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void differ(struct replay *r, const struct rfx_record_item *it, const char *fmt, ...)
{
    if (r->res->differ++ == 0)
        r->res->first_diff_seq = it->u.frame.seq;
    int max = r->cfg->max_listed ? r->cfg->max_listed : 10;
    if (!r->cfg->difference || r->listed >= max)
        return;
    r->listed++;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    struct rfx_replay_difference d = {.seq = it->u.frame.seq, .offset = it->offset, .what = what};
    r->cfg->difference(r->cfg->difference_arg, &d);
}

static int replay_frame(struct replay *r, const struct rfx_record_item *it, char *msg,
                        size_t msglen)
{
    const struct rfx_record_frame *rf = &it->u.frame;
    const struct rfx_record_header *h = &r->res->header;
    const struct rfx_replay_config *cfg = r->cfg;
    struct rfx_replay_result *res = r->res;
    res->frames++;
    if (!r->any_frame || rf->seq > r->max_seq)
        r->max_seq = rf->seq;
    r->any_frame = true;
    int n = (int)h->n_stages;
    int reached = rf->drop_reason == RFX_DROP_NONE || rf->reached > n ? n : rf->reached;
    if (reached <= r->first_i) {
        res->not_reached++;
        return 0;
    }
    memcpy(r->payload, rf->payload, rf->payload_size);
    struct rfx_frame f = {
        .seq = rf->seq,
        .scheduled_ns = rf->scheduled_ns,
        .capture_ns = rf->scheduled_ns,
        .payload_size = rf->payload_size,
        .level = rf->level,
        .context_class = RFX_CLASS_ROUTINE,
        .payload = r->payload,
    };
    struct rfx_frame *fp = &f;
    unsigned level = rf->level <= RFX_LEVEL_CRITICAL ? rf->level : RFX_LEVEL_CRITICAL;
    struct rfx_stage_env env = {
        .cache = r->cache,
        .level = (enum rfx_level)level,
        .degrade = r->actions[level],
        .now_ns = rf->scheduled_ns,
    };
    bool fault_at_pattern =
        r->pattern_i >= 0 && h->fail_prob > 0 && !strcmp(h->fail_stage, h->stages[r->pattern_i]);
    bool fault_at_decide = h->fail_prob > 0 && !strcmp(h->fail_stage, h->stages[r->decide_i]);
    if (r->pattern_i >= 0) {
        env.stage_index = r->pattern_i;
        cfg->pattern.ops->process(cfg->pattern.ctx, &fp, 1, &env);
        bool rec_drop = rf->drop_reason == RFX_DROP_STAGE && reached == r->pattern_i + 1;
        if (rec_drop || f.drop_reason != RFX_DROP_NONE) {
            if (rec_drop && f.drop_reason == RFX_DROP_STAGE) {
                res->compared++;
                res->identical++;
                res->pattern_drops++;
            } else if (rec_drop && fault_at_pattern) {
                res->fault_drops++;
            } else {
                res->compared++;
                differ(r, it, "%s %s it, recorded %s", cfg->pattern.name,
                       f.drop_reason ? "dropped" : "kept", rec_drop ? "dropped" : "kept");
            }
            return 0;
        }
        res->compared++;
        if (f.context_key != rf->context_key || f.pattern_key != rf->pattern_key ||
            f.context_class != rf->context_class) {
            differ(r, it,
                   "%s gave keys %016" PRIx64 "/%016" PRIx64 " class %u, recorded %016" PRIx64
                   "/%016" PRIx64 " class %u",
                   cfg->pattern.name, f.context_key, f.pattern_key, f.context_class,
                   rf->context_key, rf->pattern_key, rf->context_class);
            return 0;
        }
        if (reached <= r->decide_i) { /* dropped between pattern and decide */
            res->identical++;
            return 0;
        }
    } else {
        /* No pattern stage: decide gets what pattern gave it in the run. */
        f.context_key = rf->context_key;
        f.pattern_key = rf->pattern_key;
        f.context_class = rf->context_class;
        res->compared++;
    }
    bool fallback_only = rf->flags & RFX_FRAME_FALLBACK_ONLY;
    if (!fallback_only && rf->cache_result != RFX_CACHE_NONE && rf->cache_generation == 0)
        env.cache = r->cache0;
    else if (!fallback_only && rf->cache_result != RFX_CACHE_NONE) {
        int rc = use_generation(r, rf->cache_generation, rf->seq, msg, msglen);
        if (rc)
            return rc;
    }
    env.stage_index = r->decide_i;
    env.degrade = fallback_only ? env.degrade | RFX_DEGRADE_FALLBACK_ONLY
                                : env.degrade & ~(unsigned)RFX_DEGRADE_FALLBACK_ONLY;
    cfg->decide.ops->process(cfg->decide.ctx, &fp, 1, &env);
    res->decided++;
    /* Whether decide dropped the frame: a failure injected at decide drops
     * it after its decision, so a recorded drop there may be the fault's. */
    bool dropped = f.drop_reason != RFX_DROP_NONE;
    bool rec_dropped = rf->drop_reason == RFX_DROP_STAGE && reached == r->decide_i + 1;
    bool drop_differs = dropped != rec_dropped && !(rec_dropped && fault_at_decide);
    if (f.action != rf->action || f.cache_result != rf->cache_result ||
        f.cache_generation != rf->cache_generation || drop_differs) {
        differ(r, it,
               "%s chose action %u (%s, generation %" PRIu64 "%s), recorded %u (%s, generation "
               "%" PRIu64 "%s)",
               cfg->decide.name, f.action, result_name(f.cache_result), f.cache_generation,
               drop_differs && dropped ? ", dropped" : "", rf->action,
               result_name(rf->cache_result), rf->cache_generation,
               drop_differs && rec_dropped ? ", dropped" : "");
        return 0;
    }
    res->identical++;
    return 0;
}

/* The record's stage called name, or -1 with msg naming what it has. */
static int find_stage(const struct rfx_record_header *h, const char *role, const char *name,
                      char *msg, size_t msglen)
{
    int i = name ? stage_index(h, name) : -1;
    if (i >= 0 && i + 1 < (int)h->n_stages) /* telemetry, last, decides nothing */
        return i;
    int k = snprintf(msg, msglen, "the record's pipeline (");
    for (uint32_t s = 0; s < h->n_stages && k > 0 && (size_t)k < msglen; s++)
        k += snprintf(msg + k, msglen - (size_t)k, "%s%s", s ? ", " : "", h->stages[s]);
    if (k > 0 && (size_t)k < msglen)
        snprintf(msg + k, msglen - (size_t)k, ") has no %s stage '%s' to replay", role,
                 name ? name : "(none named)");
    return -1;
}

static int stage_call(const struct rfx_replay_stage *st, int index, struct rfx_action_cache *c,
                      bool init)
{
    struct rfx_stage_env env = {.cache = c, .stage_index = index, .level = RFX_LEVEL_NONE};
    if (init)
        return st->ops->init ? st->ops->init(st->ctx, &env) : 0;
    if (st->ops->fini)
        st->ops->fini(st->ctx, &env);
    return 0;
}

int rfx_replay(const char *path, const struct rfx_replay_config *cfg, struct rfx_replay_result *res,
               char *msg, size_t msglen)
{
    char dummy[8];
    if (!msg) {
        msg = dummy;
        msglen = sizeof dummy;
    }
    if (!path || !cfg || !res || !cfg->decide.ops || !cfg->decide.ops->process ||
        (cfg->pattern.name && (!cfg->pattern.ops || !cfg->pattern.ops->process))) {
        snprintf(msg, msglen, "rfx_replay: no path, result, decide stage or stage process call");
        return -EINVAL;
    }
    struct replay r = {.cfg = cfg, .res = res, .pattern_i = -1};
    const struct rfx_replay_stage *st[2] = {NULL, &cfg->decide};
    int idx[2] = {-1, -1}, inited = 0;
    memset(res, 0, sizeof *res);
    struct rfx_record_reader *rd = NULL;
    int rc = rfx_record_open(path, &rd, &res->header, msg, msglen);
    if (rc)
        return rc;
    const struct rfx_record_header *h = &res->header;
    if (cfg->pattern.name &&
        (r.pattern_i = find_stage(h, "pattern", cfg->pattern.name, msg, msglen)) < 0) {
        rc = -EINVAL;
        goto out;
    }
    if ((r.decide_i = find_stage(h, "decide", cfg->decide.name, msg, msglen)) < 0) {
        rc = -EINVAL;
        goto out;
    }
    if (r.decide_i <= r.pattern_i) {
        snprintf(msg, msglen,
                 "in the record's pipeline, decide stage '%s' comes before pattern "
                 "stage '%s'",
                 cfg->decide.name, cfg->pattern.name);
        rc = -EINVAL;
        goto out;
    }
    r.first_i = r.pattern_i >= 0 ? r.pattern_i : r.decide_i;
    if (h->payload_bytes < cfg->min_payload) {
        snprintf(msg, msglen, "the stages read payloads of %zu bytes; the record's are %u",
                 cfg->min_payload, h->payload_bytes);
        rc = -EINVAL;
        goto out;
    }
    for (int i = 0; i < 5; i++)
        r.actions[i] = cfg->level_actions ? cfg->level_actions[i] : h->level_actions[i];
    struct rfx_action_cache_config cc;
    rfx_action_cache_config_default(&cc);
    cc.max_entries = h->cache_l1_slots > h->cache_l2_slots ? h->cache_l1_slots : h->cache_l2_slots;
    if (cc.max_entries == 0)
        cc.max_entries = 1;
    cc.miss_queue = 64; /* misses are queued as in the run, and never taken */
    r.payload = aligned_alloc(64, ((size_t)h->payload_bytes + 64) & ~(size_t)63);
    if (!r.payload) {
        snprintf(msg, msglen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = rfx_action_cache_create(&cc, &r.cache)) != 0 ||
        (rc = rfx_action_cache_create(&cc, &r.cache0)) != 0) {
        snprintf(msg, msglen, "cannot create a cache of %u entries: %s", cc.max_entries,
                 strerror(-rc));
        goto out;
    }
    st[0] = r.pattern_i >= 0 ? &cfg->pattern : NULL;
    idx[0] = r.pattern_i;
    idx[1] = r.decide_i;
    for (; inited < 2; inited++)
        if (st[inited] && stage_call(st[inited], idx[inited], r.cache, true) != 0) {
            snprintf(msg, msglen, "stage %s: init failed", st[inited]->name);
            rc = -EIO;
            goto out;
        }
    if (cfg->accept_cut)
        rfx_record_accept_cut(rd);
    struct rfx_record_item it;
    char why[300];
    for (;;) {
        rc = rfx_record_next(rd, &it, why, sizeof why);
        if (rc <= 0) {
            if (rc < 0)
                snprintf(msg, msglen, "%s", why);
            break;
        }
        if (it.kind == RFX_RECORD_PUBLICATION) {
            res->publications++;
            rc = queue_publication(&r, &it.u.pub, why, sizeof why);
        } else if (it.kind == RFX_RECORD_FRAME) {
            rc = replay_frame(&r, &it, why, sizeof why);
            if (cfg->progress && (res->frames & 65535) == 0)
                cfg->progress(cfg->progress_arg, res->frames, it.offset);
        } else {
            rc = 0;
            res->frames_lost = it.u.end.frames_lost;
            if (it.u.end.frames != res->frames || it.u.end.publications != res->publications) {
                snprintf(why, sizeof why,
                         "the end record counts %" PRIu64 " frames and %" PRIu64
                         " publications; the file holds %" PRIu64 " and %" PRIu64,
                         it.u.end.frames, it.u.end.publications, res->frames, res->publications);
                rc = -EINVAL;
            }
        }
        if (rc) {
            snprintf(msg, msglen, "byte %" PRIu64 ": %s", it.offset, why);
            break;
        }
    }
    if (rc == 0)
        res->cut = rfx_record_was_cut(rd, &res->cut_at, &res->cut_ignored);
    if (rc == 0 && r.any_frame && r.max_seq + 1 > res->frames)
        res->unseen = r.max_seq + 1 - res->frames;
out:
    while (inited-- > 0)
        if (st[inited])
            stage_call(st[inited], idx[inited], r.cache, false);
    rfx_record_close(rd);
    for (size_t i = 0; i < r.q_len; i++)
        free(r.q[i].entries);
    free(r.q);
    rfx_action_cache_destroy(r.cache);
    rfx_action_cache_destroy(r.cache0);
    free(r.payload);
    return rc;
}
