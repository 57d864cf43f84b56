/*
 * The built-in telemetry stage: the last stage of every pipeline. Per frame
 * it counts the outcome (executed, or dropped by reason), records per stage
 * service time, queue wait and wake-up lateness, and end-to-end latency from
 * the frame's *scheduled* capture time (so a late source shows in the tail:
 * coordinated omission), then the engine returns the frame to the pool.
 *
 * Every interval (default 1 s) it closes the interval histograms: appends
 * them to latency.hlog, checks each stage's p50/p95/p99 budgets (a
 * violation is an interval in which a percentile exceeded its budget), adds
 * them to the whole-run histograms, and feeds the strategic frequency
 * controller. The degradation ladder will hang off the same hook.
 *
 * Everything here runs on the one thread that hosts telemetry.
 */
#include "engine_impl.h"
#include "hdr_histogram_impl.h"

#include <reflex/version.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define H_LOWEST      1
#define H_HIGHEST     60000000000LL /* 60 s in ns */
#define H_SIGFIGS     3
#define MAX_INTERVALS 8192

enum { K_SERVICE, K_WAIT, K_LATE, K_KINDS };

struct tstage {
    struct rfx_hdr *iv[K_KINDS];  /* this interval */
    struct rfx_hdr *all[K_KINDS]; /* whole run */
    const struct rfx_budget *budget;
    uint64_t violations;      /* intervals with a percentile over budget */
    uint64_t viol_by_pct[3];  /* p50, p95, p99 */
    uint64_t frames_over_p99; /* frames whose service exceeded the p99 budget */
};

struct rfx_telemetry {
    struct rfx_engine *e;
    int n;    /* stages recorded: all but telemetry itself */
    int self; /* telemetry's stage index */
    struct tstage st[RFX_MAX_STAGES];
    struct rfx_hdr *e2e_iv, *e2e_all;
    const struct rfx_budget *e2e_budget;
    uint64_t e2e_violations, e2e_viol_by_pct[3], e2e_frames_over_p99;
    /* interval bookkeeping */
    int64_t iv_start_ns, iv_len_ns, next_ns;
    double wall_offset_s; /* CLOCK_REALTIME - CLOCK_MONOTONIC, seconds */
    FILE *hlog_f;
    struct rfx_hlog_writer *hlog;
    char hlog_buf[1 << 16];
    uint64_t iv_l1, iv_l2, iv_miss;
    uint64_t l1, l2, miss;
    int n_iv;
    double hit_rate[MAX_INTERVALS]; /* < 0: no lookups that interval */
    double hz[MAX_INTERVALS];
    int64_t e2e_p99[MAX_INTERVALS];
    double last_hit_rate;
    int hlog_errors;
};

static const struct rfx_budget *find_budget(const struct rfx_engine_config *c, const char *name)
{
    for (int i = 0; i < c->n_budgets; i++)
        if (strcmp(c->budgets[i].stage, name) == 0)
            return &c->budgets[i];
    return NULL;
}

static int mkdir_p(const char *dir)
{
    char buf[RFX_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

void rfx_telemetry_destroy(struct rfx_telemetry *t)
{
    if (!t)
        return;
    for (int i = 0; i < RFX_MAX_STAGES; i++)
        for (int k = 0; k < K_KINDS; k++) {
            rfx_hdr_destroy(t->st[i].iv[k]);
            rfx_hdr_destroy(t->st[i].all[k]);
        }
    rfx_hdr_destroy(t->e2e_iv);
    rfx_hdr_destroy(t->e2e_all);
    rfx_hlog_writer_destroy(t->hlog);
    if (t->hlog_f)
        fclose(t->hlog_f);
    free(t);
}

static int new_hist(struct rfx_hdr **h)
{
    return rfx_hdr_create(H_LOWEST, H_HIGHEST, H_SIGFIGS, h);
}

int rfx_telemetry_create(struct rfx_engine *e, struct rfx_telemetry **out, char *msg, size_t msglen)
{
    struct rfx_telemetry *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->e = e;
    t->n = e->n_stages; /* telemetry is appended after this */
    t->self = e->n_stages;
    int rc = 0;
    for (int i = 0; i < t->n && rc == 0; i++) {
        for (int k = 0; k < K_KINDS && rc == 0; k++) {
            rc = new_hist(&t->st[i].iv[k]);
            if (rc == 0)
                rc = new_hist(&t->st[i].all[k]);
        }
        t->st[i].budget = find_budget(&e->cfg, e->stages[i].name);
    }
    if (rc == 0)
        rc = new_hist(&t->e2e_iv);
    if (rc == 0)
        rc = new_hist(&t->e2e_all);
    if (rc) {
        rfx_telemetry_destroy(t);
        snprintf(msg, msglen, "telemetry: out of memory for histograms");
        return rc;
    }
    t->e2e_budget = find_budget(&e->cfg, "e2e");
    t->iv_len_ns = (int64_t)llround(e->cfg.interval_s * 1e9);
    if ((rc = mkdir_p(e->cfg.out_dir)) != 0) {
        snprintf(msg, msglen, "out dir %s: %s", e->cfg.out_dir, strerror(-rc));
        rfx_telemetry_destroy(t);
        return rc;
    }
    char path[RFX_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/latency.hlog", e->cfg.out_dir);
    t->hlog_f = fopen(path, "w");
    if (!t->hlog_f) {
        rc = -errno;
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        rfx_telemetry_destroy(t);
        return rc;
    }
    setvbuf(t->hlog_f, t->hlog_buf, _IOFBF, sizeof t->hlog_buf);
    struct timespec rt, mt;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    t->wall_offset_s = (double)(rt.tv_sec - mt.tv_sec) + (rt.tv_nsec - mt.tv_nsec) * 1e-9;
    t->last_hit_rate = -1;
    *out = t;
    return 0;
}

static double wall_s(const struct rfx_telemetry *t, int64_t mono_ns)
{
    return mono_ns * 1e-9 + t->wall_offset_s;
}

static void count_pct(const struct rfx_hdr *h, const struct rfx_budget *b, uint64_t *viol,
                      uint64_t by_pct[3])
{
    if (!b || rfx_hdr_total_count(h) == 0)
        return;
    int64_t lim[3] = {b->p50_ns, b->p95_ns, b->p99_ns};
    double pct[3] = {50, 95, 99};
    bool any = false;
    for (int i = 0; i < 3; i++) {
        if (lim[i] > 0 && rfx_hdr_value_at_percentile(h, pct[i]) > lim[i]) {
            by_pct[i]++;
            any = true;
        }
    }
    if (any)
        (*viol)++;
}

/* Close the interval [iv_start, end): log, check, fold into the run. */
static void close_interval(struct rfx_telemetry *t, int64_t end)
{
    struct rfx_engine *e = t->e;
    double start = wall_s(t, t->iv_start_ns), len = (end - t->iv_start_ns) * 1e-9;
    for (int i = 0; i < t->n; i++) {
        struct tstage *s = &t->st[i];
        if (t->hlog &&
            rfx_hlog_write(t->hlog, e->stages[i].name, start, len, s->iv[K_SERVICE], 1e6))
            t->hlog_errors++;
        count_pct(s->iv[K_SERVICE], s->budget, &s->violations, s->viol_by_pct);
        for (int k = 0; k < K_KINDS; k++) {
            rfx_hdr_add(s->all[k], s->iv[k]);
            rfx_hdr_reset(s->iv[k]);
        }
    }
    if (t->hlog && rfx_hlog_write(t->hlog, "e2e", start, len, t->e2e_iv, 1e6))
        t->hlog_errors++;
    if (t->hlog_f)
        fflush(t->hlog_f);
    count_pct(t->e2e_iv, t->e2e_budget, &t->e2e_violations, t->e2e_viol_by_pct);
    int64_t p95 = rfx_hdr_value_at_percentile(t->e2e_iv, 95);
    double mean = rfx_hdr_mean(t->e2e_iv);
    bool had = rfx_hdr_total_count(t->e2e_iv) > 0;
    uint64_t lookups = t->iv_l1 + t->iv_l2 + t->iv_miss;
    double hr = lookups ? (double)(t->iv_l1 + t->iv_l2) / (double)lookups : -1;
    if (hr >= 0)
        t->last_hit_rate = hr;
    if (had && t->e->strat)
        rfx_strategic_adapt(t->e->strat, p95, mean);
    if (t->n_iv < MAX_INTERVALS) {
        t->hit_rate[t->n_iv] = hr;
        t->hz[t->n_iv] = t->e->strat ? rfx_strategic_hz(t->e->strat) : 0;
        t->e2e_p99[t->n_iv] = had ? rfx_hdr_value_at_percentile(t->e2e_iv, 99) : -1;
        t->n_iv++;
    }
    rfx_hdr_add(t->e2e_all, t->e2e_iv);
    rfx_hdr_reset(t->e2e_iv);
    t->iv_l1 = t->iv_l2 = t->iv_miss = 0;
    t->iv_start_ns = end;
}

void rfx_telemetry_tick(struct rfx_telemetry *t, int64_t now)
{
    if (!t || t->next_ns == 0 || now < t->next_ns)
        return;
    close_interval(t, t->next_ns);
    t->next_ns += t->iv_len_ns;
    if (t->next_ns <= now) /* fell behind (a stall): skip to the present */
        t->next_ns = now + t->iv_len_ns;
}

double rfx_telemetry_hit_rate_last(const struct rfx_telemetry *t)
{
    return t ? t->last_hit_rate : -1;
}

static int tel_init(void *ctx, const struct rfx_stage_env *env)
{
    struct rfx_telemetry *t = ctx;
    int rc = rfx_hlog_writer_create(t->hlog_f, wall_s(t, env->now_ns), &t->hlog);
    return rc;
}

static void tel_process(void *ctx, struct rfx_frame **frames, size_t n,
                        const struct rfx_stage_env *env)
{
    struct rfx_telemetry *t = ctx;
    struct rfx_engine *e = t->e;
    if (t->next_ns == 0) {
        t->iv_start_ns = e->start_ns;
        t->next_ns = e->start_ns + t->iv_len_ns;
    }
    uint64_t executed = 0, dropped[RFX_DROP_REASONS] = {0};
    for (size_t i = 0; i < n; i++) {
        struct rfx_frame *f = frames[i];
        for (int s = 0; s < t->n; s++) {
            if (f->exit_ns[s] == 0)
                continue; /* did not run there (dropped before) */
            struct tstage *ts = &t->st[s];
            int64_t svc = f->exit_ns[s] - f->enter_ns[s];
            int64_t ready = s == 0 ? f->scheduled_ns : f->exit_ns[s - 1];
            int64_t wait = f->enter_ns[s] - ready;
            rfx_hdr_record_fast(ts->iv[K_SERVICE], svc > 0 ? svc : 1);
            rfx_hdr_record_fast(ts->iv[K_WAIT], wait > 0 ? wait : 1);
            if (s == 0)
                /* The source's wake-up lateness: capture began after its due time. */
                rfx_hdr_record_fast(ts->iv[K_LATE], f->capture_ns - f->scheduled_ns > 0
                                                        ? f->capture_ns - f->scheduled_ns
                                                        : 1);
            else if (f->woke_mask & (1u << s))
                rfx_hdr_record_fast(ts->iv[K_LATE], wait > 0 ? wait : 1);
            if (ts->budget && svc > ts->budget->p99_ns)
                ts->frames_over_p99++;
        }
        if (f->drop_reason != RFX_DROP_NONE) {
            dropped[f->drop_reason < RFX_DROP_REASONS ? f->drop_reason : RFX_DROP_STAGE]++;
            continue;
        }
        executed++;
        int64_t last = f->exit_ns[t->n - 1];
        int64_t e2e = last - f->scheduled_ns;
        rfx_hdr_record_fast(t->e2e_iv, e2e > 0 ? e2e : 1);
        if (t->e2e_budget && e2e > t->e2e_budget->p99_ns)
            t->e2e_frames_over_p99++;
        switch (f->cache_result) {
        case RFX_CACHE_L1:
            t->iv_l1++;
            t->l1++;
            break;
        case RFX_CACHE_L2:
            t->iv_l2++;
            t->l2++;
            break;
        case RFX_CACHE_MISS:
            t->iv_miss++;
            t->miss++;
            break;
        default:
            break;
        }
    }
    /* Publish the counts with release: rfx_engine_counts reads them acquire. */
    if (executed)
        atomic_store_explicit(&e->executed,
                              atomic_load_explicit(&e->executed, memory_order_relaxed) + executed,
                              memory_order_release);
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        if (dropped[r])
            atomic_store_explicit(&e->dropped[r],
                                  atomic_load_explicit(&e->dropped[r], memory_order_relaxed) +
                                      dropped[r],
                                  memory_order_release);
    (void)env;
}

static void tel_fini(void *ctx, const struct rfx_stage_env *env)
{
    struct rfx_telemetry *t = ctx;
    if (t->next_ns == 0) {
        t->iv_start_ns = t->e->start_ns;
        t->next_ns = t->iv_start_ns + t->iv_len_ns;
    }
    rfx_telemetry_tick(t, env->now_ns);
    if (env->now_ns > t->iv_start_ns)
        close_interval(t, env->now_ns); /* the last, partial interval */
    if (t->hlog_f)
        fflush(t->hlog_f);
}

const struct rfx_stage_ops rfx_telemetry_ops = {
    .init = tel_init,
    .process = tel_process,
    .fini = tel_fini,
    .sees_dropped = 1,
};

/* ---- the bundle ---- */

static void json_hist(FILE *f, const struct rfx_hdr *h)
{
    fprintf(f,
            "\"count\": %" PRId64 ", \"p50_ns\": %" PRId64 ", \"p95_ns\": %" PRId64
            ", \"p99_ns\": %" PRId64 ", \"p999_ns\": %" PRId64 ", \"max_ns\": %" PRId64
            ", \"mean_ns\": %.1f",
            rfx_hdr_total_count(h), rfx_hdr_value_at_percentile(h, 50),
            rfx_hdr_value_at_percentile(h, 95), rfx_hdr_value_at_percentile(h, 99),
            rfx_hdr_value_at_percentile(h, 99.9), rfx_hdr_max(h), rfx_hdr_mean(h));
}

static void json_budget(FILE *f, const struct rfx_budget *b, uint64_t viol, const uint64_t by[3],
                        uint64_t over)
{
    if (b)
        fprintf(f,
                ", \"budget_p50_ns\": %" PRId64 ", \"budget_p95_ns\": %" PRId64
                ", \"budget_p99_ns\": %" PRId64,
                b->p50_ns, b->p95_ns, b->p99_ns);
    else
        fprintf(f, ", \"budget_p50_ns\": null, \"budget_p95_ns\": null, \"budget_p99_ns\": null");
    fprintf(f,
            ", \"violations\": %" PRIu64 ", \"violations_by_percentile\": {\"p50\": %" PRIu64
            ", \"p95\": %" PRIu64 ", \"p99\": %" PRIu64 "}, \"frames_over_p99_budget\": %" PRIu64,
            viol, by[0], by[1], by[2], over);
}

static void json_sub(FILE *f, const char *name, const struct rfx_hdr *h)
{
    fprintf(f, ", \"%s\": {", name);
    json_hist(f, h);
    fprintf(f, "}");
}

static int write_hgrm(const char *dir, const char *name, const struct rfx_hdr *h)
{
    char path[RFX_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.hgrm", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    int rc = rfx_hdr_write_percentiles(h, f, 5, 1e6);
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    return rc;
}

static void json_series(FILE *f, const double *v, int n, int prec)
{
    fprintf(f, "[");
    for (int i = 0; i < n; i++) {
        if (v[i] < 0)
            fprintf(f, "%snull", i ? ", " : "");
        else
            fprintf(f, "%s%.*f", i ? ", " : "", prec, v[i]);
    }
    fprintf(f, "]");
}

int rfx_telemetry_write_bundle(struct rfx_telemetry *t, const char *dir, char *msg, size_t msglen)
{
    struct rfx_engine *e = t->e;
    int rc;
    for (int i = 0; i < t->n; i++)
        if ((rc = write_hgrm(dir, e->stages[i].name, t->st[i].all[K_SERVICE])) != 0) {
            snprintf(msg, msglen, "%s/%s.hgrm: %s", dir, e->stages[i].name, strerror(-rc));
            return rc;
        }
    if ((rc = write_hgrm(dir, "e2e", t->e2e_all)) != 0) {
        snprintf(msg, msglen, "%s/e2e.hgrm: %s", dir, strerror(-rc));
        return rc;
    }
    char path[RFX_PATH_MAX + 32], tmp[RFX_PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(msg, msglen, "%s: %s", tmp, strerror(errno));
        return -errno;
    }
    struct rfx_engine_counts c;
    rfx_engine_counts(e, &c);
    uint64_t dropped = 0;
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        dropped += c.dropped[r];
    fprintf(f, "{\n  \"reflex_version\": \"%s\",\n", RFX_VERSION_STRING);
    fprintf(f, "  \"duration_s\": %.3f,\n  \"frame_hz\": %g,\n", (e->end_ns - e->start_ns) * 1e-9,
            e->cfg.frame_hz);
    fprintf(f, "  \"first_frame_ms\": %.3f,\n",
            e->first_frame_ns ? (e->first_frame_ns - e->start_ns) * 1e-6 : -1.0);
    fprintf(f,
            "  \"frames\": {\"captured\": %" PRIu64 ", \"executed\": %" PRIu64
            ", \"in_flight\": %" PRIu64 ", \"dropped_total\": %" PRIu64 ", \"dropped\": {",
            c.captured, c.executed, c.in_flight, dropped);
    for (int r = 1; r < RFX_DROP_REASONS; r++)
        fprintf(f, "%s\"%s\": %" PRIu64, r > 1 ? ", " : "", rfx_drop_reason_name(r), c.dropped[r]);
    fprintf(f, "}, \"identity_holds\": %s},\n",
            c.captured == c.executed + dropped + c.in_flight ? "true" : "false");
    fprintf(f, "  \"stages\": {\n");
    for (int i = 0; i < t->n; i++) {
        struct tstage *s = &t->st[i];
        fprintf(f, "    \"%s\": {", e->stages[i].name);
        json_hist(f, s->all[K_SERVICE]);
        json_budget(f, s->budget, s->violations, s->viol_by_pct, s->frames_over_p99);
        json_sub(f, "queue_wait", s->all[K_WAIT]);
        json_sub(f, "wakeup_lateness", s->all[K_LATE]);
        fprintf(f, ", \"thread\": \"%s\"}%s\n", e->threads[e->stages[i].thread].cfg.name,
                i + 1 < t->n ? "," : "");
    }
    fprintf(f, "  },\n  \"e2e\": {");
    json_hist(f, t->e2e_all);
    json_budget(f, t->e2e_budget, t->e2e_violations, t->e2e_viol_by_pct, t->e2e_frames_over_p99);
    fprintf(f, "},\n");
    struct rfx_action_cache_stats cs;
    rfx_action_cache_stats(e->cache, &cs);
    uint64_t lookups = t->l1 + t->l2 + t->miss;
    fprintf(f,
            "  \"cache\": {\"l1_hits\": %" PRIu64 ", \"l2_hits\": %" PRIu64 ", \"misses\": %" PRIu64
            ", \"fallbacks\": %" PRIu64 ", \"hit_rate\": %.4f, \"publications\": %" PRIu64
            ", \"generation\": %" PRIu64 ", \"l1_entries\": %" PRIu64 ", \"l2_entries\": %" PRIu64
            ", \"misses_queued\": %" PRIu64 ", \"misses_dropped_queue_full\": %" PRIu64
            ", \"hit_rate_by_interval\": ",
            t->l1, t->l2, t->miss, t->miss, lookups ? (double)(t->l1 + t->l2) / lookups : 0.0,
            cs.publications, cs.generation, cs.l1_entries, cs.l2_entries, cs.misses_queued,
            cs.misses_dropped);
    json_series(f, t->hit_rate, t->n_iv, 4);
    fprintf(f, "},\n");
    fprintf(f, "  \"strategic\": {\"workers\": %d, \"plans\": %" PRIu64 ", \"hz_by_interval\": ",
            e->strat ? rfx_strategic_workers(e->strat) : 0,
            e->strat ? rfx_strategic_plans(e->strat) : 0);
    json_series(f, t->hz, t->n_iv, 3);
    fprintf(f, "},\n");
    fprintf(f, "  \"e2e_p99_ns_by_interval\": [");
    for (int i = 0; i < t->n_iv; i++)
        fprintf(f, "%s%" PRId64, i ? ", " : "", t->e2e_p99[i]);
    fprintf(f, "],\n");
    fprintf(f, "  \"degradation\": {\"level\": \"%s\", \"transitions\": []},\n",
            rfx_level_name(rfx_engine_level(e)));
    fprintf(f, "  \"alerts\": [],\n");
    fprintf(f, "  \"allocation_tracking\": %s,\n", e->alloc_tracking ? "true" : "false");
    fprintf(f, "  \"threads\": [\n");
    for (int i = 0; i < e->n_threads; i++) {
        struct rfx_xthread *x = &e->threads[i];
        fprintf(f,
                "    {\"name\": \"rfx-%s\", \"core\": %d, \"critical\": %s, \"wait\": \"%s\", "
                "\"stages\": [",
                x->cfg.name, x->cfg.core, x->critical ? "true" : "false",
                rfx_wait_kind_name(x->cfg.wait.kind));
        for (int k = 0; k < x->n_stages; k++)
            fprintf(f, "%s\"%s\"", k ? ", " : "", e->stages[x->first_stage + k].name);
        fprintf(f, "], \"cpu_s\": %.3f, \"parks\": %" PRIu64 ", \"allocated_bytes_after_start\": ",
                x->cpu_s, x->parks);
        if (x->alloc_known)
            fprintf(f, "%" PRIu64, x->alloc_end - x->alloc_start);
        else
            fprintf(f, "null");
        fprintf(f, "}%s\n", i + 1 < e->n_threads ? "," : "");
    }
    fprintf(f,
            "  ],\n  \"layout\": {\"ring_capacity\": %u, \"overflow\": \"%s\", \"burst\": %u, "
            "\"pool_frames\": %u, \"payload_bytes\": %u}",
            e->cfg.ring_capacity, rfx_ring_policy_name(e->cfg.ring_policy), e->cfg.burst,
            e->cfg.pool_frames, e->cfg.payload_bytes);
    if (e->summary_extra)
        fprintf(f, ",\n  %s", e->summary_extra);
    fprintf(f, "\n}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        return -EIO;
    }
    if (t->hlog_errors) {
        snprintf(msg, msglen, "latency.hlog: %d lines failed to write", t->hlog_errors);
        return -EIO;
    }
    return 0;
}

static void row(FILE *f, const char *name, const struct rfx_hdr *h, const struct rfx_budget *b,
                uint64_t viol)
{
    fprintf(f, "  %-10s %10" PRId64 " %9.1f %9.1f %9.1f %9.1f", name, rfx_hdr_total_count(h),
            rfx_hdr_value_at_percentile(h, 50) / 1e3, rfx_hdr_value_at_percentile(h, 95) / 1e3,
            rfx_hdr_value_at_percentile(h, 99) / 1e3, rfx_hdr_max(h) / 1e3);
    if (b) {
        bool ok = rfx_hdr_value_at_percentile(h, 50) <= b->p50_ns &&
                  rfx_hdr_value_at_percentile(h, 95) <= b->p95_ns &&
                  rfx_hdr_value_at_percentile(h, 99) <= b->p99_ns;
        fprintf(f, "   %7.0f/%7.0f/%7.0f  %-4s %6" PRIu64 "\n", b->p50_ns / 1e3, b->p95_ns / 1e3,
                b->p99_ns / 1e3, ok ? "ok" : "OVER", viol);
    } else {
        fprintf(f, "   %23s  %-4s %6" PRIu64 "\n", "-", "-", viol);
    }
}

int64_t rfx_telemetry_print_report(struct rfx_telemetry *t, FILE *f)
{
    struct rfx_engine *e = t->e;
    int64_t viol = 0;
    fprintf(f, "  %-10s %10s %9s %9s %9s %9s   %-23s  %-4s %6s\n", "stage", "frames", "p50 us",
            "p95 us", "p99 us", "max us", "budget p50/p95/p99 us", "", "viol.");
    for (int i = 0; i < t->n; i++) {
        row(f, e->stages[i].name, t->st[i].all[K_SERVICE], t->st[i].budget, t->st[i].violations);
        viol += (int64_t)t->st[i].violations;
    }
    row(f, "e2e", t->e2e_all, t->e2e_budget, t->e2e_violations);
    viol += (int64_t)t->e2e_violations;
    struct rfx_engine_counts c;
    rfx_engine_counts(e, &c);
    uint64_t dropped = 0;
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        dropped += c.dropped[r];
    fprintf(f,
            "frames: captured %" PRIu64 " = executed %" PRIu64 " + dropped %" PRIu64
            " + in flight %" PRIu64 " (%s)",
            c.captured, c.executed, dropped, c.in_flight,
            c.captured == c.executed + dropped + c.in_flight ? "holds" : "BROKEN");
    for (int r = 1; r < RFX_DROP_REASONS; r++)
        if (c.dropped[r])
            fprintf(f, "; %s %" PRIu64, rfx_drop_reason_name(r), c.dropped[r]);
    fprintf(f, "\n");
    uint64_t lookups = t->l1 + t->l2 + t->miss;
    if (lookups) {
        struct rfx_action_cache_stats cs;
        rfx_action_cache_stats(e->cache, &cs);
        fprintf(f,
                "cache: hit rate %.1f%% (L1 %" PRIu64 ", L2 %" PRIu64 ", misses %" PRIu64
                "), %" PRIu64 " snapshots published, generation %" PRIu64 "\n",
                100.0 * (double)(t->l1 + t->l2) / (double)lookups, t->l1, t->l2, t->miss,
                cs.publications, cs.generation);
    }
    return viol;
}
