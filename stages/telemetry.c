/*
 * The built-in telemetry stage: the last stage of every pipeline. Per frame
 * it counts the outcome (executed, or dropped by reason), records per stage
 * service time, queue wait and wake-up lateness, and end-to-end latency from
 * the frame's *scheduled* capture time (so a late source shows in the tail:
 * coordinated omission); then the engine returns the frame to the pool.
 *
 * The stage only records, so it can share a critical thread: it writes into
 * the active one of two histogram sets and never blocks, never allocates.
 * A reporter thread off the critical path (rfx-report, nice 19) closes each
 * interval (default 1 s): it swaps the sets, waits for the stage to leave
 * the old one, appends it to latency.hlog, checks each stage's p50/p95/p99
 * budgets (a violation is an interval in which a percentile exceeded its
 * budget), folds it into the whole-run histograms and feeds the strategic
 * frequency controller. The degradation ladder will hang off that hook.
 *
 * The swap is the interval recorder's protocol (src/hdr_recorder.c, pairs
 * P1-P6 in docs/memory-ordering.md) applied to a whole set at once: the
 * stage enters once per burst (epoch odd, P1; load the active set, P2),
 * records, leaves (epoch even, P3); the reporter exchanges the active set
 * (P4), reads the epoch (P5) and, if the stage was inside, waits for it to
 * change (P6) before reading the old set.
 */
#include "action_cache_impl.h"
#include "memtouch.h"
#include "metrics_http.h"
#include "outfile.h"
#include "probes.h"
#include "recorder.h"
#include "svg_plot.h"
#include "telemetry_impl.h"
#include "hdr_histogram_impl.h"

#include <reflex/version.h>

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void record_call(struct rfx_telemetry *t, struct tset *set);

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

static void set_destroy(struct tset *s)
{
    for (int i = 0; i < RFX_MAX_STAGES; i++)
        for (int k = 0; k < K_KINDS; k++)
            rfx_hdr_destroy(s->h[i][k]);
    rfx_hdr_destroy(s->e2e);
    for (int c = 0; c < 3; c++)
        rfx_hdr_destroy(s->cls[c]);
}

static void set_reset(struct tset *s, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K_KINDS; k++)
            rfx_hdr_reset(s->h[i][k]);
    rfx_hdr_reset(s->e2e);
    for (int c = 0; c < 3; c++)
        rfx_hdr_reset(s->cls[c]);
    s->l1 = s->l2 = s->miss = s->e2e_over_p99 = s->beyond_span = 0;
    s->e2e_sum = 0;
    memset(s->over_p99, 0, sizeof s->over_p99);
    memset(s->sum, 0, sizeof s->sum);
}

void rfx_telemetry_destroy(struct rfx_telemetry *t)
{
    if (!t)
        return;
    rfx_telemetry_stop(t);
    for (int j = 0; j < 2; j++)
        set_destroy(&t->sets[j]);
    for (int i = 0; i < RFX_MAX_STAGES; i++)
        for (int k = 0; k < K_KINDS; k++)
            rfx_hdr_destroy(t->st[i].all[k]);
    rfx_hdr_destroy(t->e2e_all);
    for (int j = 0; j < 16; j++)
        for (int k = 0; k < RFX_MAX_STAGES + 4; k++)
            rfx_hdr_destroy(t->win[j][k]);
    for (int k = 0; k < RFX_MAX_STAGES + 4; k++)
        rfx_hdr_destroy(t->merged[k]);
    rfx_outfile_unreserve(&t->summary_reserve, t->e->cfg.out_dir, "summary.json"); /* unused */
    rfx_flight_fini(&t->flight);
    rfx_hlog_writer_destroy(t->hlog);
    if (t->hlog_f)
        fclose(t->hlog_f);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->status_lock);
    free(t);
}

static int new_hist(struct rfx_hdr **h)
{
    return rfx_hdr_create(H_LOWEST, H_HIGHEST, H_SIGFIGS, h);
}

/* Histograms are created zero, so writing a zero changes nothing. */
static void populate(const struct rfx_hdr *h)
{
    if (h)
        rfx_touch_zeroed(h->counts, (size_t)h->counts_len * sizeof *h->counts);
}

/*
 * Map histogram counts before they are used. Otherwise the telemetry stage
 * faults the first time a value lands on a new page, and a page the
 * reporter has only read (a percentile, an hlog encoding) maps the zero
 * page, so the reset's write copies it and flushes the TLB of every core
 * running the process: over a thousand IPIs to the critical cores in the
 * first seconds of a demo.
 *
 * The two sets the telemetry stage records into are mapped when telemetry
 * is made, before any thread runs (32 histograms of 221 KB for the demo:
 * about 4 ms here). The reporter's own (45 more), which only the reporter
 * writes, are mapped by the reporter as it starts, while the pipeline runs.
 */
static void populate_sets(struct rfx_telemetry *t)
{
    for (int j = 0; j < 2; j++) {
        for (int i = 0; i < t->ns; i++)
            for (int k = 0; k < K_KINDS; k++)
                populate(t->sets[j].h[i][k]);
        populate(t->sets[j].e2e);
        for (int c = 0; c < 3; c++)
            populate(t->sets[j].cls[c]);
    }
}

static void populate_reporter(struct rfx_telemetry *t)
{
    for (int i = 0; i < t->ns; i++)
        for (int k = 0; k < K_KINDS; k++)
            populate(t->st[i].all[k]);
    populate(t->e2e_all);
    for (int j = 0; j < t->w_len; j++)
        for (int k = 0; k < t->ns + 4; k++)
            populate(t->win[j][k]);
    for (int k = 0; k < t->ns + 4; k++)
        populate(t->merged[k]);
}

int rfx_telemetry_create(struct rfx_engine *e, struct rfx_telemetry **out, char *msg, size_t msglen)
{
    struct rfx_telemetry *t = NULL;
    if (posix_memalign((void **)&t, 64, sizeof *t) != 0)
        return -ENOMEM;
    memset(t, 0, sizeof *t);
    t->summary_reserve.fd = -1;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    pthread_mutex_init(&t->status_lock, NULL);
    t->e = e;
    t->n = e->n_stages; /* telemetry is appended after this */
    t->ns = t->n + 1;
    int rc = 0;
    for (int i = 0; i < t->ns && rc == 0; i++) {
        for (int k = 0; k < K_KINDS && rc == 0; k++) {
            rc = new_hist(&t->st[i].all[k]);
            for (int j = 0; j < 2 && rc == 0; j++)
                rc = new_hist(&t->sets[j].h[i][k]);
        }
        t->st[i].budget = find_budget(&e->cfg, i < t->n ? e->stages[i].name : RFX_TELEMETRY_STAGE);
    }
    for (int j = 0; j < 2 && rc == 0; j++) {
        rc = new_hist(&t->sets[j].e2e);
        for (int c = 0; c < 3 && rc == 0; c++)
            rc = new_hist(&t->sets[j].cls[c]);
    }
    t->w_len =
        e->cfg.window_intervals > 0 && e->cfg.window_intervals <= 16 ? e->cfg.window_intervals : 3;
    for (int j = 0; j < t->w_len && rc == 0; j++)
        for (int k = 0; k < t->ns + 4 && rc == 0; k++)
            rc = new_hist(&t->win[j][k]);
    for (int k = 0; k < t->ns + 4 && rc == 0; k++)
        rc = new_hist(&t->merged[k]);
    struct rfx_ladder_config lc;
    rfx_ladder_config_default(&lc);
    lc.escalate_windows = e->cfg.escalate_windows;
    lc.recover_s = e->cfg.recover_s;
    lc.headroom = e->cfg.headroom;
    rfx_ladder_init(&t->ladder, &lc);
    if (rc == 0)
        rc = new_hist(&t->e2e_all);
    if (rc == 0)
        rc = rfx_flight_init(&t->flight, e->cfg.trace_frames);
    if (rc) {
        rfx_telemetry_destroy(t);
        snprintf(msg, msglen, "telemetry: out of memory for histograms");
        return rc;
    }
    rfx_iv_series_init(&t->iv, t->iv_storage, MAX_INTERVALS);
    atomic_init(&t->active, &t->sets[0]);
    atomic_init(&t->epoch, 0);
    atomic_init(&t->last_hit_milli, UINT64_MAX);
    populate_sets(t);
    t->e2e_budget = find_budget(&e->cfg, "e2e");
    t->slow_next_ns = (int64_t)e->cfg.trace_slow_us * 1000;
    t->iv_len_ns = (int64_t)llround(e->cfg.interval_s * 1e9);
    if ((rc = mkdir_p(e->cfg.out_dir)) != 0) {
        snprintf(msg, msglen, "out dir %s: %s", e->cfg.out_dir, strerror(-rc));
        rfx_telemetry_destroy(t);
        return rc;
    }
    /* The directory is this run's until the engine is destroyed: its
     * latency.hlog is locked (flock: released however the process ends),
     * and a second run into the same directory is refused before it has
     * truncated or reserved anything. A file system without flock
     * (ENOLCK) runs unlocked. The previous run's log is cut only when this
     * run starts (rfx_telemetry_start), so that a start that fails (a
     * stage's init, a port in use) leaves that run's bundle whole. */
    char path[RFX_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/latency.hlog", e->cfg.out_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        close(fd);
        snprintf(msg, msglen, "out dir %s is in use by another run (its latency.hlog is locked)",
                 e->cfg.out_dir);
        rfx_telemetry_destroy(t);
        return -EBUSY;
    }
    if (fd < 0 || !(t->hlog_f = fdopen(fd, "w"))) {
        rc = -errno;
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        rfx_telemetry_destroy(t);
        return rc;
    }
    rc = rfx_outfile_reserve(&t->summary_reserve, e->cfg.out_dir, "summary.json", SUMMARY_RESERVE);
    if (rc == -ENOSPC || rc == -EDQUOT)
        fprintf(stderr,
                "reflex: %s: less than %d MiB free: summary.json is written at the end only if "
                "there is room then\n",
                e->cfg.out_dir, SUMMARY_RESERVE >> 20);
    struct timespec rt, mt;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    t->wall_offset_s = (double)(rt.tv_sec - mt.tv_sec) + (rt.tv_nsec - mt.tv_nsec) * 1e-9;
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

/* Reporter: take the interval's set from the stage (P4-P6). */
static struct tset *swap_sets(struct rfx_telemetry *t)
{
    struct tset *cur = atomic_load_explicit(&t->active, memory_order_relaxed);
    struct tset *next = cur == &t->sets[0] ? &t->sets[1] : &t->sets[0];
    struct tset *old = atomic_exchange_explicit(&t->active, next, memory_order_seq_cst); /* P4 */
    uint64_t e = atomic_load_explicit(&t->epoch, memory_order_seq_cst);                  /* P5 */
    if (e & 1)
        while (atomic_load_explicit(&t->epoch, memory_order_acquire) == e) /* P6 */
            sched_yield();
    return old;
}

/* jemalloc's stats.resident (pages it holds) and stats.allocated (bytes
 * live in the application's allocations), refreshed; 0 when unknown. */
static size_t jemalloc_bytes(size_t *allocated)
{
    uint64_t epoch = 1;
    size_t sz = sizeof epoch, res = 0, all = 0, rsz = sizeof res;
    *allocated = 0;
    if (mallctl("epoch", &epoch, &sz, &epoch, sz) != 0 ||
        mallctl("stats.resident", &res, &rsz, NULL, 0) != 0)
        return 0;
    if (mallctl("stats.allocated", &all, &rsz, NULL, 0) == 0)
        *allocated = all;
    return res;
}

/* The process's resident set in bytes (/proc/self/statm), 0 if unreadable. */
static uint64_t process_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    unsigned long long size, pages = 0;
    int n = fscanf(f, "%llu %llu", &size, &pages);
    fclose(f);
    return n == 2 ? (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* summary.json "faults": each configured fault, its window and when it
 * first acted (null: it never did). */
static void faults_json(struct rfx_engine *e, FILE *f)
{
    const struct rfx_engine_config *c = &e->cfg;
    struct {
        const char *kind, *stage;
        bool on;
    } k[RFX_FAULT_KINDS] = {
        [RFX_FAULT_OVERLOAD] = {"overload", c->fault_stage, c->fault_work_us > 0},
        [RFX_FAULT_STALL] = {"stall", c->stall_stage, c->stall_ms > 0},
        [RFX_FAULT_STAGE_FAIL] = {"stage_fail", c->fail_stage, c->fail_prob > 0},
        [RFX_FAULT_SINK_FAIL] = {"sink_fail", e->stages[e->sink_stage].name, c->sink_fail_prob > 0},
        [RFX_FAULT_PLANNER_HANG] = {"planner_hang", "planner", c->planner_hang_ms > 0},
    };
    fprintf(f, "  \"faults\": [");
    int n = 0;
    for (int i = 0; i < RFX_FAULT_KINDS; i++) {
        if (!k[i].on)
            continue;
        int64_t on = atomic_load_explicit(&e->fault_onset_ns[i], memory_order_relaxed);
        fprintf(f, "%s\n    {\"kind\": \"%s\", \"stage\": \"%s\", \"from_s\": %g, \"to_s\": %g, ",
                n++ ? "," : "", k[i].kind, k[i].stage, c->fault_from_s,
                c->fault_to_s < 1e9 ? c->fault_to_s : -1);
        if (on)
            fprintf(f, "\"onset_s\": %.4f}", (on - e->start_ns) * 1e-9);
        else
            fprintf(f, "\"onset_s\": null}");
    }
    fprintf(f, "],\n");
}

/* Reporter: the alerts an interval can raise (seed 001's thresholds). */
static void interval_alerts(struct rfx_telemetry *t, const struct tset *s, int64_t end, double hr,
                            size_t res)
{
    struct rfx_engine *e = t->e;
    const struct rfx_engine_config *c = &e->cfg;
    double ts = (end - e->start_ns) * 1e-9;
    if (rfx_hdr_total_count(s->e2e) > 0) {
        double p95 = rfx_hdr_value_at_percentile(s->e2e, 95) / 1e6;
        if (p95 >= c->alert_p95_warning_ms)
            rfx_alert_raise(&e->alerts, ts, RFX_ALERT_BUDGET,
                            p95 >= c->alert_p95_critical_ms ? RFX_SEV_CRITICAL : RFX_SEV_WARNING,
                            "e2e",
                            "end-to-end p95 %.1f ms over the interval (warning %g ms, "
                            "critical %g ms)",
                            p95, c->alert_p95_warning_ms, c->alert_p95_critical_ms);
    }
    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    /* Drops no stage made (the rings and the pool); the watchdog reports
     * each stage's own at once, and stale frames are the ladder's doing. */
    uint64_t dropped = k.dropped[RFX_DROP_RING_FULL] + k.dropped[RFX_DROP_EVICTED] +
                       k.dropped[RFX_DROP_POOL_EXHAUSTED];
    uint64_t dc = k.captured - t->last_captured, dd = dropped - t->last_dropped;
    t->last_captured = k.captured;
    t->last_dropped = dropped;
    if (dc > 0 && (double)dd / (double)dc >= c->alert_error_warning)
        rfx_alert_raise(&e->alerts, ts, RFX_ALERT_DROPS,
                        (double)dd / (double)dc >= c->alert_error_critical ? RFX_SEV_CRITICAL
                                                                           : RFX_SEV_WARNING,
                        NULL,
                        "%llu of %llu frames dropped by the rings and the pool in the interval "
                        "(%.1f%%)",
                        (unsigned long long)dd, (unsigned long long)dc, 100.0 * dd / dc);
    /* Named after the built-in decide stage when the pipeline has one; a
     * user's pipeline may look the cache up anywhere. */
    const char *looker = NULL;
    for (int i = 0; i < t->n && !looker; i++)
        if (!strcmp(e->stages[i].name, "decide"))
            looker = "decide";
    /* Armed from the first interval that began with a snapshot published:
     * before it every lookup misses by construction (a cold start, or no
     * planner at all), and a warning on every start would teach users to
     * ignore this one. */
    bool armed = t->publications_seen > 0;
    t->publications_seen = rfx_action_cache_publications(e->cache);
    if (armed && hr >= 0 && s->l1 + s->l2 + s->miss >= 10 && hr < c->alert_hit_rate_warning)
        rfx_alert_raise(&e->alerts, ts, RFX_ALERT_HIT_RATE, RFX_SEV_WARNING, looker,
                        "cache hit rate %.1f%% (threshold %.0f%%)", hr * 100,
                        c->alert_hit_rate_warning * 100);
    if (t->resident0 == 0)
        t->resident0 = res;
    else if (res > (size_t)((double)t->resident0 * (1 + c->alert_memory_growth)))
        rfx_alert_raise(&e->alerts, ts, RFX_ALERT_MEMORY, RFX_SEV_WARNING, NULL,
                        "resident memory %.1f MB, up from %.1f MB at the first interval", res / 1e6,
                        t->resident0 / 1e6);
}

/* Reporter: slide the budget window over this interval, evaluate it and
 * step the ladder; a transition sets the level every stage sees. */
static void evaluate(struct rfx_telemetry *t, const struct tset *s, int64_t end)
{
    struct rfx_engine *e = t->e;
    int tags = t->ns + 4; /* stages, e2e, 3 classes */
    struct rfx_hdr **slot = t->win[t->w_next];
    for (int k = 0; k < tags; k++) {
        const struct rfx_hdr *src = k < t->ns    ? s->h[k][K_SERVICE]
                                    : k == t->ns ? s->e2e
                                                 : s->cls[k - t->ns - 1];
        rfx_hdr_reset(slot[k]);
        rfx_hdr_add(slot[k], src);
    }
    t->w_next = (t->w_next + 1) % t->w_len;
    if (t->w_fill < t->w_len)
        t->w_fill++;
    for (int k = 0; k < tags; k++) {
        rfx_hdr_reset(t->merged[k]);
        for (int j = 0; j < t->w_fill; j++)
            rfx_hdr_add(t->merged[k], t->win[j][k]);
    }
    if (!e->cfg.degrade_enabled)
        return;
    struct rfx_budget_window w = {.n_stages = t->ns,
                                  .e2e = t->merged[t->ns],
                                  .e2e_budget = t->e2e_budget,
                                  .frame_ns = e->cfg.frame_hz > 0 ? 1e9 / e->cfg.frame_hz : 0,
                                  .window_s = t->w_fill * e->cfg.interval_s,
                                  .load_scaling = e->cfg.load_scaling};
    for (int i = 0; i < t->ns; i++) {
        w.stage_names[i] = e->stages[i].name;
        w.stage[i] = t->merged[i];
        w.stage_budget[i] = t->st[i].budget;
    }
    for (int c = 0; c < 3; c++) {
        w.cls[c] = t->merged[t->ns + 1 + c];
        w.class_p95_ns[c] = e->cfg.class_p95_ns[c];
    }
    struct rfx_budget_verdict v;
    rfx_budget_evaluate(&w, e->cfg.headroom, &v);
    double ts = (end - e->start_ns) * 1e-9;
    /* A stage that dropped at least error_rate_critical of the interval's
     * frames violates it; above error_rate_warning, no headroom. */
    uint64_t cap = atomic_load_explicit(&e->captured, memory_order_relaxed);
    uint64_t dc = cap - t->ev_captured;
    t->ev_captured = cap;
    for (int i = 0; i < t->n; i++) {
        uint64_t d = atomic_load_explicit(&e->stage_dropped[i], memory_order_relaxed);
        uint64_t dd = d - t->ev_stage_dropped[i];
        t->ev_stage_dropped[i] = d;
        double rate = dc ? (double)dd / (double)dc : 0;
        if (rate >= e->cfg.alert_error_warning)
            v.headroom = false;
        if (rate >= e->cfg.alert_error_critical && !v.violated) {
            v.violated = true;
            snprintf(v.cause, sizeof v.cause,
                     "stage %s dropped %llu of %llu frames (%.1f%% >= %.0f%%) in the interval",
                     e->stages[i].name, (unsigned long long)dd, (unsigned long long)dc, rate * 100,
                     e->cfg.alert_error_critical * 100);
        }
    }
    /* A stall the watchdog saw since the last window, or one still going
     * on, counts as a violation. A hung planner escalates only as far as
     * the first level that stops planning (cache_only): past it, it holds
     * the level (no headroom) without raising it. */
    char stall[160];
    struct rfx_watchdog_counts wc;
    rfx_watchdog_counts(e->watchdog, &wc, stall, sizeof stall);
    if (wc.stalls > t->stalls_seen || wc.open_stage > 0) {
        t->stalls_seen = wc.stalls;
        v.violated = true;
        v.headroom = false;
        snprintf(v.cause, sizeof v.cause, "%s", stall);
    }
    if (wc.planner_stalls > t->planner_stalls_seen || wc.open_planner > 0) {
        t->planner_stalls_seen = wc.planner_stalls;
        v.headroom = false;
        if (!(rfx_engine_degrade_actions(e) & RFX_DEGRADE_CACHE_ONLY) && !v.violated) {
            v.violated = true;
            snprintf(v.cause, sizeof v.cause, "%s%s", stall,
                     wc.open_planner ? " (still stuck)" : "");
        }
    }
    if (rfx_ladder_step(&t->ladder, ts, &v)) {
        const struct rfx_transition *x = &t->ladder.transitions[t->ladder.n_transitions - 1];
        atomic_store_explicit(&e->level, (int)x->to, memory_order_relaxed);
        RFX_PROBE2(level_change, (int)x->from, (int)x->to);
        fprintf(stderr, "%sreflex: %6.1f s: level %s -> %s: %s\n",
                isatty(STDERR_FILENO) ? "\r\033[K" : "", ts, rfx_level_name(x->from),
                rfx_level_name(x->to), x->cause);
        if (x->to > x->from)
            rfx_alert_raise(&e->alerts, ts, RFX_ALERT_BUDGET,
                            x->to == RFX_LEVEL_CRITICAL ? RFX_SEV_CRITICAL : RFX_SEV_WARNING, NULL,
                            "degraded to %s: %s", rfx_level_name(x->to), x->cause);
        if (e->strat)
            rfx_strategic_adapt(e->strat, 0, 0); /* the ladder wins at once */
        /* Judge the new level on its own intervals only. */
        t->w_fill = 0;
        t->w_next = 0;
    }
}

/* Reporter: the status a live display shows (rfx_engine_status). */
static void update_status(struct rfx_telemetry *t, const struct tset *s, int64_t end, double len,
                          double hr)
{
    struct rfx_engine *e = t->e;
    struct rfx_engine_status st = {.t_s = (end - e->start_ns) * 1e-9,
                                   .e2e_p99_ns = -1,
                                   .worst_ratio = -1,
                                   .level = rfx_engine_level(e),
                                   .hit_rate = hr};
    int64_t frames = rfx_hdr_total_count(s->e2e);
    st.frames_per_s = len > 0 ? (double)frames / len : 0;
    if (frames > 0)
        st.e2e_p99_ns = rfx_hdr_value_at_percentile(s->e2e, 99);
    for (int i = 0; i < t->ns; i++) {
        const struct rfx_budget *b = t->st[i].budget;
        if (!b || b->p99_ns <= 0 || rfx_hdr_total_count(s->h[i][K_SERVICE]) == 0)
            continue;
        double r = (double)rfx_hdr_value_at_percentile(s->h[i][K_SERVICE], 99) / (double)b->p99_ns;
        if (r > st.worst_ratio) {
            st.worst_ratio = r;
            snprintf(st.worst_stage, sizeof st.worst_stage, "%s", e->stages[i].name);
        }
    }
    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        st.dropped += k.dropped[r];
    pthread_mutex_lock(&t->status_lock);
    st.intervals = t->status.intervals + 1;
    t->status = st;
    pthread_mutex_unlock(&t->status_lock);
}

void rfx_telemetry_status(struct rfx_telemetry *t, struct rfx_engine_status *out)
{
    pthread_mutex_lock(&t->status_lock);
    *out = t->status;
    pthread_mutex_unlock(&t->status_lock);
}

/* Reporter: the interval [iv_start, end) is in `s`: log, check, fold in, reset. */
static void close_interval(struct rfx_telemetry *t, struct tset *s, int64_t end)
{
    struct rfx_engine *e = t->e;
    double start = wall_s(t, t->iv_start_ns), len = (end - t->iv_start_ns) * 1e-9;
    for (int i = 0; i < t->ns; i++) {
        struct tstage *st = &t->st[i];
        if (t->hlog &&
            rfx_hlog_write(t->hlog, e->stages[i].name, start, len, s->h[i][K_SERVICE], 1e6))
            t->hlog_errors++;
        count_pct(s->h[i][K_SERVICE], st->budget, &st->violations, st->viol_by_pct);
        for (int k = 0; k < K_KINDS; k++)
            rfx_hdr_add(st->all[k], s->h[i][k]);
        st->frames_over_p99 += s->over_p99[i];
        st->sum += s->sum[i];
    }
    if (t->hlog && rfx_hlog_write(t->hlog, "e2e", start, len, s->e2e, 1e6))
        t->hlog_errors++;
    if (t->hlog_f)
        fflush(t->hlog_f);
    count_pct(s->e2e, t->e2e_budget, &t->e2e_violations, t->e2e_viol_by_pct);
    t->e2e_frames_over_p99 += s->e2e_over_p99;
    t->beyond_span += s->beyond_span;
    bool had = rfx_hdr_total_count(s->e2e) > 0;
    uint64_t lookups = s->l1 + s->l2 + s->miss;
    double hr = lookups ? (double)(s->l1 + s->l2) / (double)lookups : -1;
    if (hr >= 0)
        atomic_store_explicit(&t->last_hit_milli, (uint64_t)llround(hr * 1000),
                              memory_order_relaxed);
    if (had && e->strat)
        rfx_strategic_adapt(e->strat, rfx_hdr_value_at_percentile(s->e2e, 95),
                            rfx_hdr_mean(s->e2e));
    size_t live;
    size_t res = jemalloc_bytes(&live);
    struct rfx_iv_point pt = {.hits = s->l1 + s->l2,
                              .lookups = lookups,
                              .hz = e->strat ? rfx_strategic_hz(e->strat) : 0,
                              .e2e_p99_ns = had ? rfx_hdr_value_at_percentile(s->e2e, 99) : -1,
                              .rss = process_rss(),
                              .resident = res,
                              .allocated = live};
    interval_alerts(t, s, end, hr, res);
    evaluate(t, s, end);
    update_status(t, s, end, len, hr);
    pt.level = (int)t->ladder.level;
    rfx_iv_series_add(&t->iv, &pt);
    t->e2e_sum += s->e2e_sum;
    rfx_hdr_add(t->e2e_all, s->e2e);
    t->l1 += s->l1;
    t->l2 += s->l2;
    t->miss += s->miss;
    set_reset(s, t->ns);
    t->iv_start_ns = end;
}

static void *reporter_main(void *arg)
{
    struct rfx_telemetry *t = arg;
    rfx_thread_name_self("report");
    rfx_thread_idle_self(); /* off the critical path: a waking critical thread preempts it */
    populate_reporter(t);
    int64_t next = t->iv_start_ns + t->iv_len_ns;
    /* A ring freezes half a ring after the violation that finds it free:
     * looking for one every half ring's time (at 60 Hz over a second, so
     * never between intervals), or every RFX_TRACE_POLL_NS if that is
     * longer, keeps a held ring from leaving more than about that much of
     * the run untraced. */
    double fhz = t->e->cfg.frame_hz;
    int64_t poll = fhz > 0 ? (int64_t)(t->flight.k / 2 * 1e9 / fhz) : 0;
    if (poll < RFX_TRACE_POLL_NS)
        poll = RFX_TRACE_POLL_NS;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        /* the interval's end, or sooner to hand the flight recorder its ring back */
        int64_t wake = next, soon = rfx_now_ns() + poll;
        if (t->flight.k && soon < wake)
            wake = soon;
        int64_t until = wake + (int64_t)(t->wall_offset_s * 1e9); /* the cond waits on REALTIME */
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        if (t->stopping)
            break;
        int64_t now = rfx_now_ns();
        if (now < next) {
            pthread_mutex_unlock(&t->lock);
            rfx_flight_collect(&t->flight);
            pthread_mutex_lock(&t->lock);
            continue;
        }
        pthread_mutex_unlock(&t->lock);
        close_interval(t, swap_sets(t), next);
        rfx_telemetry_publish_metrics(t);
        rfx_flight_collect(&t->flight);
        if (t->e->cfg.persist_path[0] &&
            now - t->last_persist_ns >= (int64_t)(t->e->cfg.persist_s * 1e9)) {
            t->last_persist_ns = now;
            rfx_engine_persist(t->e); /* the background path */
        }
        next += t->iv_len_ns;
        if (next <= now) /* fell behind (a stall): skip to the present */
            next = now + t->iv_len_ns;
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int rfx_telemetry_start(struct rfx_telemetry *t, int64_t start_ns, char *msg, size_t msglen)
{
    t->iv_start_ns = start_ns;
    t->last_persist_ns = start_ns;
    if (ftruncate(fileno(t->hlog_f), 0) != 0) {
        int rc = -errno;
        snprintf(msg, msglen, "latency.hlog: %s", strerror(-rc));
        return rc;
    }
    int rc = rfx_hlog_writer_create(t->hlog_f, wall_s(t, start_ns), &t->hlog);
    if (rc) {
        snprintf(msg, msglen, "latency.hlog: cannot write the header");
        return rc;
    }
    rfx_telemetry_publish_metrics(t); /* zeros until the first interval closes */
    if (pthread_create(&t->reporter, NULL, reporter_main, t) != 0) {
        snprintf(msg, msglen, "cannot create the telemetry reporter thread");
        return -EAGAIN;
    }
    t->reporter_started = true;
    return 0;
}

void rfx_telemetry_stop(struct rfx_telemetry *t)
{
    if (!t || !t->reporter_started)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->reporter, NULL);
    t->reporter_started = false;
    /* The pipeline has stopped (its threads joined): the stage's last call,
     * then the last, partial interval. */
    if (t->e->cfg.telemetry_record)
        record_call(t, atomic_load_explicit(&t->active, memory_order_relaxed));
    int64_t now = rfx_now_ns();
    if (now > t->iv_start_ns)
        close_interval(t, swap_sets(t), now);
    if (t->hlog_f)
        fflush(t->hlog_f);
    rfx_telemetry_publish_metrics(t); /* the final figures, for a last scrape */
}

void rfx_telemetry_publish_metrics(struct rfx_telemetry *t)
{
    if (!t->e->metrics)
        return;
    size_t len = 0;
    char *text = rfx_metrics_render(t, &len);
    if (text)
        rfx_metrics_server_publish(t->e->metrics, text, len);
}

double rfx_telemetry_hit_rate_last(const struct rfx_telemetry *t)
{
    uint64_t m =
        t ? atomic_load_explicit(&((struct rfx_telemetry *)t)->last_hit_milli, memory_order_relaxed)
          : UINT64_MAX;
    return m == UINT64_MAX ? -1 : m / 1000.0;
}

/*
 * Runs of equal values. The frames of a burst share each stage's enter and
 * exit times, so service times and the waits between fused stages repeat
 * frame after frame: each run goes into its histogram as one record of n.
 */
struct run {
    int64_t v, n;
};

static inline void run_flush(struct rfx_hdr *h, struct run *r)
{
    if (r->n)
        rfx_hdr_record_fast_n(h, r->v, r->n);
    r->n = 0;
}

/* k more frames of value v. */
static inline void run_add_n(struct rfx_hdr *h, struct run *r, int64_t v, int64_t k)
{
    if (v != r->v || r->n == 0) {
        run_flush(h, r);
        r->v = v;
    }
    r->n += k;
}

/*
 * Frames whose timings are all equal: the frames of one burst, when the
 * source captured them together (it does at full speed) and every stage
 * took them as one burst. Compares scheduled_ns..exit_at[] whole (a fixed
 * 72 bytes) and the word of woke_mask, rescued_mask, reached and drop_reason:
 * frames alike in all four reached the same stages on the same threads, and
 * a run is all executed or all dropped for one reason.
 */
#define TIMES_BYTES                                                                                \
    (offsetof(struct rfx_frame, exit_at) + sizeof(((struct rfx_frame *)0)->exit_at) -              \
     offsetof(struct rfx_frame, scheduled_ns))
_Static_assert(TIMES_BYTES % sizeof(uint64_t) == 0 &&
                   TIMES_BYTES == 2 * sizeof(int64_t) + 2 * RFX_MAX_STAGES * sizeof(uint32_t),
               "a frame's times are contiguous, from scheduled_ns to exit_at[]");
enum { N_TIME_WORDS = TIMES_BYTES / sizeof(uint64_t) };
_Static_assert(offsetof(struct rfx_frame, reached) == offsetof(struct rfx_frame, woke_mask) + 2 &&
                   offsetof(struct rfx_frame, drop_reason) ==
                       offsetof(struct rfx_frame, woke_mask) + 3,
               "woke_mask, rescued_mask, reached and drop_reason share a word");

static inline uint32_t run_tag(const struct rfx_frame *f)
{
    uint32_t v;
    memcpy(&v, &f->woke_mask, sizeof v);
    return v;
}

/* A run's first frame's times, for comparing the next frames against. */
struct run_times {
    uint64_t w[N_TIME_WORDS];
    uint32_t tag; /* run_tag */
    int reached;  /* stages with times */
};

static inline void run_times_of(struct run_times *r, const struct rfx_frame *f, int n)
{
    memcpy(r->w, &f->scheduled_ns, sizeof r->w);
    r->tag = run_tag(f);
    r->reached = rfx_frame_reached(f, n);
}

/* Two words at a time (SSE2 on x86-64, which every x86-64 has): the nine
 * word compares in five loads and xors. */
typedef uint64_t word2 __attribute__((vector_size(16)));

static inline bool same_times(const struct run_times *r, const struct rfx_frame *f)
{
    const char *p = (const char *)&f->scheduled_ns;
    word2 d = {0, 0};
    for (int i = 0; i + 2 <= N_TIME_WORDS; i += 2) {
        word2 x, y;
        memcpy(&x, p + i * sizeof(uint64_t), sizeof x);
        memcpy(&y, &r->w[i], sizeof y);
        d |= x ^ y;
    }
    uint64_t tail = 0;
    if (N_TIME_WORDS % 2) {
        memcpy(&tail, p + (N_TIME_WORDS - 1) * sizeof(uint64_t), sizeof tail);
        tail ^= r->w[N_TIME_WORDS - 1];
    }
    return (d[0] | d[1] | tail) == 0 && run_tag(f) == r->tag;
}

/*
 * Record k frames with the timings of f, stage by stage (its first `reached`
 * stages), into the runs. Returns the first stage over its p99 budget, or -1.
 */
static inline int record_times(struct rfx_telemetry *t, struct tset *set,
                               struct run runs[][K_KINDS], const struct rfx_frame *f, int64_t k,
                               int reached)
{
    int first_over = -1;
    for (int s = 0; s < reached; s++) {
        int64_t enter = rfx_frame_since(f, f->enter_at[s]);
        int64_t svc = rfx_frame_since(f, f->exit_at[s]) - enter;
        int64_t wait = enter - (s == 0 ? 0 : rfx_frame_since(f, f->exit_at[s - 1]));
        svc = svc > 0 ? svc : 1;
        wait = wait > 0 ? wait : 1;
        if (svc <= H_HIGHEST) /* what the histogram takes */
            set->sum[s] += svc * k;
        run_add_n(set->h[s][K_SERVICE], &runs[s][K_SERVICE], svc, k);
        run_add_n(set->h[s][K_WAIT], &runs[s][K_WAIT], wait, k);
        if (s == 0) {
            /* The source's wake-up lateness: capture began after its due time. */
            int64_t late = f->capture_ns - f->scheduled_ns;
            run_add_n(set->h[s][K_LATE], &runs[s][K_LATE], late > 0 ? late : 1, k);
        } else if (f->woke_mask & (1u << s)) {
            run_add_n(set->h[s][K_LATE], &runs[s][K_LATE], wait, k);
        }
        if (t->st[s].budget && svc > t->st[s].budget->p99_ns) {
            set->over_p99[s] += (uint64_t)k;
            if (first_over < 0)
                first_over = s;
        }
    }
    if (reached > 0) {
        /* This stage's own queue wait: from the exit of the last stage the
         * frames went through to this call (its entry is stamped). */
        int s = t->n;
        int64_t wait =
            rfx_frame_since(f, f->enter_at[s]) - rfx_frame_since(f, f->exit_at[reached - 1]);
        wait = wait > 0 ? wait : 1;
        run_add_n(set->h[s][K_WAIT], &runs[s][K_WAIT], wait, k);
        if (f->woke_mask & (1u << s))
            run_add_n(set->h[s][K_LATE], &runs[s][K_LATE], wait, k);
    }
    return first_over;
}

void rfx_telemetry_called(struct rfx_telemetry *t, int64_t ns, size_t frames)
{
    t->call_ns = ns;
    t->call_frames = frames;
}

/* The stage's own last call (rfx_telemetry_called) into `set`: its time for
 * every frame it handled, as a stage's service time is its burst's. */
static void record_call(struct rfx_telemetry *t, struct tset *set)
{
    if (!t->call_frames)
        return;
    int s = t->n;
    int64_t v = t->call_ns > 0 ? t->call_ns : 1, k = (int64_t)t->call_frames;
    if (v <= H_HIGHEST)
        set->sum[s] += v * k;
    rfx_hdr_record_fast_n(set->h[s][K_SERVICE], v, k);
    if (t->st[s].budget && v > t->st[s].budget->p99_ns)
        set->over_p99[s] += (uint64_t)k;
    t->call_frames = 0;
}

/* Publish the counts with release: rfx_engine_counts reads them acquire. */
static void publish_counts(struct rfx_engine *e, uint64_t executed, const uint64_t *dropped)
{
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
}

/* [telemetry] record = false: count the frames, record nothing. */
static void tel_count_only(struct rfx_engine *e, struct rfx_frame **frames, size_t n)
{
    uint64_t executed = 0, dropped[RFX_DROP_REASONS] = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned r = frames[i]->drop_reason;
        if (r == RFX_DROP_NONE)
            executed++;
        else
            dropped[r < RFX_DROP_REASONS ? r : RFX_DROP_STAGE]++;
    }
    publish_counts(e, executed, dropped);
}

/*
 * Counts of three values of a byte (a frame's class, or its cache level) in
 * one word, 16 bits each (a call has at most 2 * RFX_BURST_MAX frames): a
 * frame adds its value's entry. One load and an add a frame, where three
 * compares would be six instructions; any other value adds nothing.
 */
#define COUNT_012(v0, v1, v2)                                                                      \
    {                                                                                              \
        [v0] = 1, [v1] = 1ull << 16, [v2] = 1ull << 32                                             \
    }
static const uint64_t class_counts[256] =
    COUNT_012(RFX_CLASS_ROUTINE, RFX_CLASS_EMERGENCY, RFX_CLASS_DELIBERATIVE);
static const uint64_t cache_counts[256] = COUNT_012(RFX_CACHE_L1, RFX_CACHE_L2, RFX_CACHE_MISS);
_Static_assert(2 * RFX_BURST_MAX < 1 << 16, "a call's counts fit 16 bits");
_Static_assert(RFX_CLASS_ROUTINE == 0 && RFX_CLASS_EMERGENCY == 1 && RFX_CLASS_DELIBERATIVE == 2,
               "class_counts' fields are indexed by class");

static inline uint64_t count_field(uint64_t packed, int i)
{
    return (packed >> (16 * i)) & 0xffff;
}

/*
 * Frames [first, first + k) share their times (and so their end to end
 * latency, e2e, and budget verdicts) and their drop reason: their per-frame
 * part, the flight recorder and the counts, then their end to end latency
 * as k records at once.
 */
static inline void record_run(struct rfx_telemetry *t, struct tset *set, struct run *e2e_run,
                              struct run cls_run[3], struct rfx_frame **frames, size_t k,
                              int over_stage, int reached, int64_t e2e, uint64_t *executed,
                              uint64_t *dropped)
{
    unsigned reason = frames[0]->drop_reason; /* the run's (run_tag) */
    bool ok = reason == RFX_DROP_NONE;
    bool over = t->e2e_budget && e2e > t->e2e_budget->p99_ns;
    /* A slow frame within its budgets is traced too, each one twice as
     * slow as the last, so that trace.json holds the run's worst frames
     * (a handful of windows from trace_slow_us up) and not only its last. */
    bool slow = ok && t->slow_next_ns && e2e > t->slow_next_ns;
    if (slow)
        t->slow_next_ns = 2 * e2e;
    /* The flight recorder: a run of frames within budget (the common case)
     * at once, else frame by frame, as a violation may trigger a hand-over. */
    if (over_stage < 0 && !over && !slow && rfx_flight_plain(&t->flight))
        rfx_flight_record_run(&t->flight, frames, k, reached);
    else
        for (size_t i = 0; i < k; i++) /* a run shares times */
            rfx_flight_record(&t->flight, frames[i], i > 0, over_stage, ok && over, reached,
                              slow && i == 0);
    if (!ok) {
        for (size_t i = 0; i < k; i++)
            RFX_PROBE2(frame_drop, frames[i]->seq, reason);
        dropped[reason < RFX_DROP_REASONS ? reason : RFX_DROP_STAGE] += k;
        return;
    }
    uint64_t by_class = 0, by_result = 0;
    for (size_t i = 0; i < k; i++) {
        by_class += class_counts[frames[i]->context_class];
        by_result += cache_counts[frames[i]->cache_result];
    }
    set->l1 += count_field(by_result, 0);
    set->l2 += count_field(by_result, 1);
    set->miss += count_field(by_result, 2);
    *executed += k;
    e2e = e2e > 0 ? e2e : 1;
    if (e2e <= H_HIGHEST)
        set->e2e_sum += e2e * (int64_t)k;
    run_add_n(set->e2e, e2e_run, e2e, (int64_t)k);
    for (int c = 0; c < 3; c++)
        if (count_field(by_class, c))
            run_add_n(set->cls[c], &cls_run[c], e2e, (int64_t)count_field(by_class, c));
    if (over)
        set->e2e_over_p99 += k;
}

static void tel_process(void *ctx, struct rfx_frame **frames, size_t n,
                        const struct rfx_stage_env *env)
{
    struct rfx_telemetry *t = ctx;
    struct rfx_engine *e = t->e;
    if (e->recorder)
        rfx_recorder_frames(e->recorder, frames, n);
    if (!e->cfg.telemetry_record) {
        tel_count_only(e, frames, n);
        return;
    }
    uint64_t executed = 0, dropped[RFX_DROP_REASONS] = {0};
    struct run e2e_run = {0}, cls_run[3] = {{0}};
    uint64_t ep = atomic_load_explicit(&t->epoch, memory_order_relaxed);
    atomic_store_explicit(&t->epoch, ep + 1, memory_order_seq_cst);            /* P1 */
    struct tset *set = atomic_load_explicit(&t->active, memory_order_seq_cst); /* P2 */
    record_call(t, set);
    /* A run of frames with equal timings is worked out once and recorded as
     * k frames; each histogram's runs of equal values become one record.
     * The records are the same as frame by frame. */
    struct run runs[RFX_MAX_STAGES][K_KINDS];
    memset(runs, 0, sizeof runs);
    size_t first = 0;
    struct run_times ref; /* frames[first]'s, kept in registers */
    run_times_of(&ref, frames[0], t->n);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && same_times(&ref, frames[i]))
            continue;
        const struct rfx_frame *f0 = frames[first];
        int64_t k = (int64_t)(i - first), e2e, age = env->now_ns - f0->scheduled_ns;
        int reached = ref.reached, over_stage = -1;
        if (age < RFX_FRAME_SPAN_NS) { /* its stamps read right (stage.h) */
            over_stage = record_times(t, set, runs, f0, k, reached);
            e2e = reached == t->n ? rfx_frame_since(f0, f0->exit_at[t->n - 1]) : 0;
        } else {
            /* Older than the stamps' span: its stage times are unknown, and
             * its end to end runs to this stage's entry. Counted apart. */
            set->beyond_span += (uint64_t)k;
            reached = 0;
            e2e = age;
        }
        record_run(t, set, &e2e_run, cls_run, frames + first, (size_t)k, over_stage, reached, e2e,
                   &executed, dropped);
        first = i;
        if (i < n)
            run_times_of(&ref, frames[i], t->n);
    }
    for (int s = 0; s < t->ns; s++)
        for (int k = 0; k < K_KINDS; k++)
            run_flush(set->h[s][k], &runs[s][k]);
    run_flush(set->e2e, &e2e_run);
    for (int c = 0; c < 3; c++)
        run_flush(set->cls[c], &cls_run[c]);
    atomic_store_explicit(&t->epoch, ep + 2, memory_order_release); /* P3 */
    publish_counts(e, executed, dropped);
}

const struct rfx_stage_ops rfx_telemetry_ops = {
    .process = tel_process,
    .sees_dropped = 1,
    .rescuable = 1, /* its state is handed on with the stages' owner word */
};

/* ---- the bundle ---- */

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The cgroup's CPU limit and how often the kernel throttled the process
 * during the run (null where unknown). */
static void cpu_quota_json(const struct rfx_engine *e, FILE *f)
{
    const struct rfx_cpu_quota *q = &e->quota;
    fprintf(f, "  \"cpu_quota\": {\"cpus\": ");
    if (q->cpus > 0)
        fprintf(f, "%.3f, \"quota_us\": %ld, \"period_us\": %ld, \"cgroup\": ", q->cpus,
                q->quota_us, q->period_us);
    else
        fprintf(f, "null, \"quota_us\": null, \"period_us\": null, \"cgroup\": ");
    json_string(f, q->cpus > 0 ? q->where : q->stat_dir);
    if (e->throttle_known) {
        const struct rfx_cpu_throttle *a = &e->throttle_start, *b = &e->throttle_end;
        fprintf(f,
                ", \"periods\": %" PRIu64 ", \"throttled_periods\": %" PRIu64
                ", \"throttled_ms\": %.3f}",
                b->periods - a->periods, b->throttled - a->throttled,
                (double)(b->throttled_ns - a->throttled_ns) / 1e6);
    } else {
        fprintf(f, ", \"periods\": null, \"throttled_periods\": null, \"throttled_ms\": null}");
    }
    fprintf(f, ",\n");
}

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
    char file[RFX_NAME_MAX + 8];
    snprintf(file, sizeof file, "%s.hgrm", name);
    struct rfx_outfile o;
    int rc = rfx_outfile_open(&o, dir, file);
    return rc ? rc : rfx_outfile_commit(&o, rfx_hdr_write_percentiles(h, o.f, 5, 1e6));
}

/* One figure of every entry of the run's per-interval series, as a JSON
 * array: a hit rate with no lookups and an unknown byte count are null. */
enum iv_field { IV_HIT_RATE, IV_HZ, IV_E2E_P99, IV_RSS, IV_RESIDENT, IV_ALLOCATED, IV_LEVEL };

static void json_iv(FILE *f, const struct rfx_iv_series *v, enum iv_field k)
{
    fprintf(f, "[");
    for (int i = 0; i < v->n; i++) {
        const struct rfx_iv_point *p = &v->p[i];
        const char *sep = i ? ", " : "";
        uint64_t bytes = k == IV_RSS ? p->rss : k == IV_RESIDENT ? p->resident : p->allocated;
        switch (k) {
        case IV_HIT_RATE:
            if (p->lookups)
                fprintf(f, "%s%.4f", sep, (double)p->hits / (double)p->lookups);
            else
                fprintf(f, "%snull", sep);
            break;
        case IV_HZ:
            fprintf(f, "%s%.3f", sep, p->hz);
            break;
        case IV_E2E_P99:
            fprintf(f, "%s%" PRId64, sep, p->e2e_p99_ns);
            break;
        case IV_RSS:
        case IV_RESIDENT:
        case IV_ALLOCATED:
            if (bytes)
                fprintf(f, "%s%" PRIu64, sep, bytes);
            else
                fprintf(f, "%snull", sep);
            break;
        case IV_LEVEL:
            fprintf(f, "%s\"%s\"", sep, rfx_level_name((enum rfx_level)p->level));
            break;
        }
    }
    fprintf(f, "]");
}

/* latency.svg: every stage and end to end, with their budgets. */
static int write_plot(struct rfx_telemetry *t, const char *dir)
{
    struct rfx_engine *e = t->e;
    struct rfx_plot_series ser[RFX_MAX_STAGES + 1];
    int n = 0;
    for (int i = 0; i < t->ns; i++, n++) {
        const struct rfx_budget *b = t->st[i].budget;
        ser[n] = (struct rfx_plot_series){.name = e->stages[i].name, .h = t->st[i].all[K_SERVICE]};
        if (b) {
            ser[n].budget_ns[0] = b->p50_ns;
            ser[n].budget_ns[1] = b->p95_ns;
            ser[n].budget_ns[2] = b->p99_ns;
        }
    }
    ser[n] = (struct rfx_plot_series){.name = "e2e", .h = t->e2e_all};
    if (t->e2e_budget) {
        ser[n].budget_ns[0] = t->e2e_budget->p50_ns;
        ser[n].budget_ns[1] = t->e2e_budget->p95_ns;
        ser[n].budget_ns[2] = t->e2e_budget->p99_ns;
    }
    n++;
    char title[160];
    snprintf(title, sizeof title,
             "reflex: latency per stage (service time) and end to end, %" PRId64 " frames at %g Hz",
             rfx_hdr_total_count(t->e2e_all), e->cfg.frame_hz);
    struct rfx_outfile o;
    int rc = rfx_outfile_open(&o, dir, "latency.svg");
    return rc ? rc : rfx_outfile_commit(&o, rfx_plot_svg(o.f, title, ser, n));
}

/* summary.json's text. */
/* The files a bundle writes into its directory, summary.json first. */
#define BUNDLE_FILES_MAX (RFX_MAX_STAGES + 8)
struct bundle_files {
    int n;
    char name[BUNDLE_FILES_MAX][RFX_NAME_MAX + 8];
};

static void write_summary(struct rfx_telemetry *t, FILE *f, const struct bundle_files *files)
{
    struct rfx_engine *e = t->e;
    struct rfx_engine_counts c;
    rfx_engine_counts(e, &c);
    uint64_t dropped = 0;
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        dropped += c.dropped[r];
    fprintf(f, "{\n  \"reflex_version\": \"%s\",\n", RFX_VERSION_STRING);
    /* What this run writes here; the next run into this directory removes
     * the ones it does not write itself (a stage since renamed). */
    fprintf(f, "  \"bundle_files\": [");
    for (int i = 0; i < files->n; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", files->name[i]);
    fprintf(f, "],\n");
    fprintf(f, "  \"duration_s\": %.3f,\n  \"frame_hz\": %g,\n", (e->end_ns - e->start_ns) * 1e-9,
            e->cfg.frame_hz);
    /* The *_by_interval series: one entry per `intervals_per_entry`
     * consecutive intervals (iv_series.h), the whole run. */
    fprintf(f,
            "  \"interval_s\": %g,\n  \"intervals\": %" PRIu64
            ",\n  \"intervals_per_entry\": %" PRIu64 ",\n",
            e->cfg.interval_s, t->iv.intervals, t->iv.per);
    /* From the call to rfx_engine_start (threads, pinning, stage init) to
     * the first frame's capture. */
    fprintf(f, "  \"first_frame_ms\": %.3f,\n",
            e->first_frame_ns ? (e->first_frame_ns - e->start_call_ns) * 1e-6 : -1.0);
    /* When the threads were released, and when frame 0 was due (paced
     * sources; -1 otherwise), from the same call. */
    fprintf(f, "  \"threads_released_ms\": %.3f,\n  \"first_frame_due_ms\": %.3f,\n",
            (e->released_ns - e->start_call_ns) * 1e-6,
            e->cfg.frame_hz > 0 ? (e->sched0_ns - e->start_call_ns) * 1e-6 : -1.0);
    fprintf(f,
            "  \"frames\": {\"captured\": %" PRIu64 ", \"executed\": %" PRIu64
            ", \"in_flight\": %" PRIu64 ", \"dropped_total\": %" PRIu64 ", \"dropped\": {",
            c.captured, c.executed, c.in_flight, dropped);
    for (int r = 1; r < RFX_DROP_REASONS; r++)
        fprintf(f, "%s\"%s\": %" PRIu64, r > 1 ? ", " : "", rfx_drop_reason_name(r), c.dropped[r]);
    fprintf(f, "}, \"identity_holds\": %s},\n",
            c.captured == c.executed + dropped + c.in_flight ? "true" : "false");
    fprintf(f, "  \"stages\": {\n");
    for (int i = 0; i < t->ns; i++) {
        struct tstage *s = &t->st[i];
        fprintf(f, "    \"%s\": {", e->stages[i].name);
        json_hist(f, s->all[K_SERVICE]);
        json_budget(f, s->budget, s->violations, s->viol_by_pct, s->frames_over_p99);
        json_sub(f, "queue_wait", s->all[K_WAIT]);
        json_sub(f, "wakeup_lateness", s->all[K_LATE]);
        fprintf(f, ", \"thread\": \"%s\"}%s\n", e->threads[e->stages[i].thread].cfg.name,
                i + 1 < t->ns ? "," : "");
    }
    fprintf(f, "  },\n  \"e2e\": {");
    json_hist(f, t->e2e_all);
    json_budget(f, t->e2e_budget, t->e2e_violations, t->e2e_viol_by_pct, t->e2e_frames_over_p99);
    fprintf(f, ", \"frames_beyond_stamp_span\": %" PRIu64 "},\n", t->beyond_span);
    struct rfx_action_cache_stats cs;
    rfx_action_cache_stats(e->cache, &cs);
    uint64_t grace_max, grace_total;
    rfx_action_cache_grace(e->cache, &grace_max, &grace_total);
    uint64_t lookups = t->l1 + t->l2 + t->miss;
    fprintf(f,
            "  \"cache\": {\"l1_hits\": %" PRIu64 ", \"l2_hits\": %" PRIu64 ", \"misses\": %" PRIu64
            ", \"fallbacks\": %" PRIu64 ", \"hit_rate\": %.4f, \"publications\": %" PRIu64
            ", \"generation\": %" PRIu64 ", \"l1_entries\": %" PRIu64 ", \"l2_entries\": %" PRIu64
            ", \"misses_queued\": %" PRIu64 ", \"misses_dropped_queue_full\": %" PRIu64
            ", \"grace_period_max_ms\": %.3f, \"grace_period_mean_ms\": %.3f"
            ", \"hit_rate_by_interval\": ",
            t->l1, t->l2, t->miss, t->miss, lookups ? (double)(t->l1 + t->l2) / lookups : 0.0,
            cs.publications, cs.generation, cs.l1_entries, cs.l2_entries, cs.misses_queued,
            cs.misses_dropped, grace_max * 1e-6,
            cs.publications ? (double)grace_total * 1e-6 / (double)cs.publications : 0.0);
    json_iv(f, &t->iv, IV_HIT_RATE);
    fprintf(
        f,
        ", \"l1_hit_rate\": %.4f, \"l2_hit_rate\": %.4f, \"ttl_s\": %g, \"max_generations\": %u, "
        "\"invalidations\": {\"ttl\": %llu, \"generation\": %llu",
        lookups ? (double)t->l1 / (double)lookups : 0.0,
        lookups > t->l1 ? (double)t->l2 / (double)(lookups - t->l1) : 0.0, e->cfg.cache_ttl_s,
        e->cfg.cache_max_generations, (unsigned long long)atomic_load(&e->invalidated_ttl),
        (unsigned long long)atomic_load(&e->invalidated_generation));
    for (int r = 0; r < e->cfg.n_rules && r < 8; r++)
        fprintf(f, ", \"%s\": {\"events\": %llu, \"entries\": %llu}", e->cfg.rules[r].event,
                (unsigned long long)atomic_load(&e->rule_events[r]),
                (unsigned long long)atomic_load(&e->invalidated_by_rule[r]));
    fprintf(f, "}},\n");
    fprintf(f,
            "  \"strategic\": {\"workers\": %d, \"plans\": %" PRIu64
            ", \"plan_max_ms\": %.3f, \"hz_by_interval\": ",
            e->strat ? rfx_strategic_workers(e->strat) : 0,
            e->strat ? rfx_strategic_plans(e->strat) : 0, rfx_strategic_plan_max_ms(e->strat));
    json_iv(f, &t->iv, IV_HZ);
    fprintf(f, "},\n");
    fprintf(f, "  \"e2e_p99_ns_by_interval\": ");
    json_iv(f, &t->iv, IV_E2E_P99);
    fprintf(f, ",\n  \"memory\": {\"rss_bytes_by_interval\": ");
    json_iv(f, &t->iv, IV_RSS);
    fprintf(f, ", \"jemalloc_resident_bytes_by_interval\": ");
    json_iv(f, &t->iv, IV_RESIDENT);
    fprintf(f, ", \"jemalloc_allocated_bytes_by_interval\": ");
    json_iv(f, &t->iv, IV_ALLOCATED);
    fprintf(f, "},\n");
    const struct rfx_ladder *L = &t->ladder;
    fprintf(f,
            "  \"degradation\": {\"enabled\": %s, \"level\": \"%s\", \"escalate_windows\": %d, "
            "\"recover_s\": %g, \"headroom\": %g, \"window_intervals\": %d, "
            "\"transitions_not_logged\": %llu, \"transitions\": [",
            e->cfg.degrade_enabled ? "true" : "false", rfx_level_name(rfx_engine_level(e)),
            L->cfg.escalate_windows, L->cfg.recover_s, L->cfg.headroom, t->w_len,
            (unsigned long long)L->dropped_transitions);
    for (int i = 0; i < L->n_transitions; i++) {
        const struct rfx_transition *x = &L->transitions[i];
        fprintf(f, "%s\n    {\"t_s\": %.3f, \"from\": \"%s\", \"to\": \"%s\", \"cause\": \"",
                i ? "," : "", x->t_s, rfx_level_name(x->from), rfx_level_name(x->to));
        for (const char *ch = x->cause; *ch; ch++)
            fputc(*ch == '"' || *ch == '\\' ? '\'' : *ch, f);
        fprintf(f, "\"}");
    }
    fprintf(f, "], \"actions\": {");
    for (int l = RFX_LEVEL_MINIMAL; l <= RFX_LEVEL_CRITICAL; l++) {
        fprintf(f, "%s\"%s\": [", l > RFX_LEVEL_MINIMAL ? ", " : "",
                rfx_level_name((enum rfx_level)l));
        int k = 0;
        for (unsigned b = 0; b < RFX_DEGRADE_ACTIONS; b++)
            if (e->cfg.level_actions[l] >> b & 1)
                fprintf(f, "%s\"%s\"", k++ ? ", " : "", rfx_degrade_action_name(b));
        fprintf(f, "]");
    }
    fprintf(f, "}, \"level_by_interval\": ");
    json_iv(f, &t->iv, IV_LEVEL);
    fprintf(f, "},\n");
    rfx_alerts_json(&e->alerts, f);
    fprintf(f,
            "  \"persistence\": {\"path\": \"%s\", \"loaded_l1\": %zu, \"loaded_l2\": %zu, "
            "\"load_error\": \"%s\", \"writes\": %llu, \"write_errors\": %llu, \"last_error\": "
            "\"%s\"},\n",
            e->cfg.persist_path, e->loaded_l1, e->loaded_l2, e->load_error,
            (unsigned long long)e->persist_writes, (unsigned long long)e->persist_errors,
            e->persist_error);
    if (e->recorder) {
        struct rfx_recorder_stats rs;
        rfx_recorder_stats(e->recorder, &rs);
        fprintf(f, "  \"record\": {\"path\": ");
        json_string(f, e->cfg.record_path);
        fprintf(f,
                ", \"frames\": %llu, \"frames_lost\": %llu, \"publications\": %llu, "
                "\"bytes\": %llu, \"ring_frames\": %u, \"error\": ",
                (unsigned long long)rs.frames, (unsigned long long)rs.frames_lost,
                (unsigned long long)rs.publications, (unsigned long long)rs.bytes, rs.slots);
        json_string(f, e->record_error);
        fprintf(f, "},\n");
    }
    const struct rfx_breaker *br = &e->breaker;
    fprintf(f,
            "  \"breaker\": {\"stage\": \"%s\", \"state\": \"%s\", \"opens\": %llu, \"failures\": "
            "%llu, "
            "\"successes\": %llu, \"rejected\": %llu, \"transitions\": [",
            e->stages[e->sink_stage].name,
            rfx_breaker_state_name((enum rfx_breaker_state)atomic_load(&br->state)),
            (unsigned long long)atomic_load(&br->opens),
            (unsigned long long)atomic_load(&br->failures),
            (unsigned long long)atomic_load(&br->successes),
            (unsigned long long)atomic_load(&br->rejected));
    for (int i = 0; i < br->n_log; i++)
        fprintf(f, "%s{\"t_s\": %.3f, \"from\": \"%s\", \"to\": \"%s\"}", i ? ", " : "",
                (br->log[i].t_ns - e->start_ns) * 1e-9, rfx_breaker_state_name(br->log[i].from),
                rfx_breaker_state_name(br->log[i].to));
    fprintf(f, "], \"transitions_not_logged\": %llu},\n", (unsigned long long)br->not_logged);
    rfx_watchdog_json(e->watchdog, f);
    faults_json(e, f);
    fprintf(f, "  \"cpu_latency\": {\"setting\": ");
    if (e->cfg.cpu_latency_us == RFX_CPU_LATENCY_AUTO)
        fprintf(f, "\"auto\"");
    else if (e->cfg.cpu_latency_us == RFX_CPU_LATENCY_OFF)
        fprintf(f, "\"off\"");
    else
        fprintf(f, "%d", (int)e->cfg.cpu_latency_us);
    fprintf(f, ", \"held_us\": ");
    if (e->cpu_latency_held_us >= 0)
        fprintf(f, "%d", (int)e->cpu_latency_held_us);
    else
        fprintf(f, "null");
    fprintf(f, ", \"error\": \"%s\"},\n", e->cpu_latency_error);
    cpu_quota_json(e, f);
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
        fprintf(f,
                "], \"cpu_s\": %.3f, \"parks\": %" PRIu64 ", \"wake_late_peak_us\": %.1f, "
                "\"lead_max_used_us\": %.1f, \"allocated_bytes_after_start\": ",
                x->cpu_s, x->parks, (double)x->wake_peak_ns / 1e3,
                (double)x->lead_max_used_ns / 1e3);
        if (x->alloc_known)
            fprintf(f, "%" PRIu64, x->alloc_end - x->alloc_start);
        else
            fprintf(f, "null");
        fprintf(f, ", \"page_faults_after_start\": ");
        if (x->faults_start >= 0 && x->faults_end >= x->faults_start)
            fprintf(f, "%" PRId64, x->faults_end - x->faults_start);
        else
            fprintf(f, "null");
        fprintf(f,
                ", \"spin_gaps_over_1ms\": %" PRIu64
                ", \"spin_gap_max_ms\": %.3f, \"spin_gap_total_ms\": %.3f",
                x->spin_gaps, (double)x->spin_gap_max_ns / 1e6, (double)x->spin_gap_total_ns / 1e6);
        fprintf(f, ", \"rescuable\": %s, \"rescued_by\": ", x->rescuable ? "true" : "false");
        if (x->rescuable)
            fprintf(f, "\"rfx-%s\"", e->threads[x->rescuer].cfg.name);
        else
            fprintf(f, "null");
        fprintf(f,
                ", \"rescues\": %" PRIu64 ", \"rescued_frames\": %" PRIu64
                ", \"rescues_blocked\": %" PRIu64 ", \"rescuer_waits\": %" PRIu64
                ", \"rescuer_wait_total_ms\": %.3f, \"rescuer_wait_max_us\": %.1f",
                (uint64_t)atomic_load(&x->rescues), (uint64_t)atomic_load(&x->rescued),
                (uint64_t)atomic_load(&x->rescues_blocked),
                (uint64_t)atomic_load(&x->rescuer_waits),
                (double)atomic_load(&x->rescuer_wait_ns) / 1e6,
                (double)atomic_load(&x->rescuer_wait_max_ns) / 1e3);
        fprintf(f, "}%s\n", i + 1 < e->n_threads ? "," : "");
    }
    fprintf(f,
            "  ],\n  \"layout\": {\"ring_capacity\": %u, \"overflow\": \"%s\", \"burst\": %u, "
            "\"pool_frames\": %u, \"payload_bytes\": %u, \"cpus_online\": %d, "
            "\"cpus_usable\": \"%s\"}",
            e->cfg.ring_capacity, rfx_ring_policy_name(e->cfg.ring_policy), e->cfg.burst,
            e->cfg.pool_frames, e->cfg.payload_bytes, e->cpus_online, e->cpus_usable);
    if (e->summary_extra)
        fprintf(f, ",\n  %s", e->summary_extra);
    fprintf(f, "\n}\n");
}

/* metrics.prom: the exposition the endpoint would serve now. */
static int write_prom(struct rfx_telemetry *t, const char *dir)
{
    size_t len = 0;
    char *text = rfx_metrics_render(t, &len);
    if (!text)
        return -ENOMEM;
    struct rfx_outfile o;
    int rc = rfx_outfile_open(&o, dir, "metrics.prom");
    if (rc == 0)
        rc = rfx_outfile_commit(&o, fwrite(text, 1, len, o.f) == len ? 0 : -errno);
    free(text);
    return rc;
}

/* Note a file that could not be written in `msg` ("DIR/FILE: why; FILE:
 * why"), and remove a previous run's file of that name, so that the
 * directory never mixes runs. */
static int note_failure(char *msg, size_t msglen, const char *dir, int first, const char *file,
                        int rc)
{
    char stale[RFX_PATH_MAX + 64];
    snprintf(stale, sizeof stale, "%s/%s", dir, file);
    unlink(stale);
    size_t used = strlen(msg);
    if (used < msglen)
        snprintf(msg + used, msglen - used, "%s%s%s%s: %s", used ? "; " : "", used ? "" : dir,
                 used ? "" : "/", file, strerror(-rc));
    return first ? first : rc;
}

static void add_file(struct bundle_files *b, const char *name, const char *ext)
{
    if (b->n < BUNDLE_FILES_MAX)
        snprintf(b->name[b->n++], sizeof b->name[0], "%s%s", name, ext);
}

static bool has_file(const struct bundle_files *b, const char *name)
{
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->name[i], name))
            return true;
    return false;
}

/* A name a bundle could have written: one of its fixed files, or
 * STAGE.hgrm for a name rfx_engine_add_stage takes. Only such names are
 * ever removed, whatever a summary.json says. */
static bool bundle_file_name(const char *name)
{
    static const char *const fixed[] = {"summary.json",   "latency.hlog", "e2e.hgrm",
                                        "telemetry.hgrm", "latency.svg",  "metrics.prom",
                                        "trace.json"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(name, fixed[i]))
            return true;
    size_t n = strlen(name);
    if (n <= 5 || n - 5 >= RFX_NAME_MAX || strcmp(name + n - 5, ".hgrm") != 0)
        return false;
    char stage[RFX_NAME_MAX];
    memcpy(stage, name, n - 5);
    stage[n - 5] = 0;
    return rfx_stage_name_ok(stage);
}

/* The files the previous run's summary.json in `dir` lists under
 * "bundle_files" (its first 64 KiB; none if it has no such key, as a
 * summary from before the key has not, or one the reader cannot follow). */
static void previous_files(const char *dir, struct bundle_files *out)
{
    out->n = 0;
    char path[RFX_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    enum { HEAD = 65536 };
    char *buf = malloc(HEAD);
    if (!buf) {
        fclose(f);
        return;
    }
    size_t len = fread(buf, 1, HEAD - 1, f);
    fclose(f);
    buf[len] = 0;
    const char *p = strstr(buf, "\"bundle_files\":");
    if (p && (p = strchr(p, '[')) != NULL)
        for (p++;;) {
            p += strspn(p, " \t\r\n,");
            if (*p != '"')
                break; /* ']' or something the writer does not write */
            const char *end = strchr(p + 1, '"');
            if (!end || (size_t)(end - p - 1) >= sizeof out->name[0])
                break;
            char name[sizeof out->name[0]];
            memcpy(name, p + 1, (size_t)(end - p - 1));
            name[end - p - 1] = 0;
            if (bundle_file_name(name) && !has_file(out, name))
                add_file(out, name, "");
            p = end + 1;
        }
    free(buf);
}

/* Every file is tried, summary.json first (it says what the run did), so
 * that one that cannot be written (a full disk) costs only itself; each is
 * whole or absent (outfile.h). The message names every failure. Files a
 * previous run's summary.json listed that this run does not write (the
 * .hgrm of a stage since renamed or removed) are removed at the end, so
 * that the directory never mixes runs. */
int rfx_telemetry_write_bundle(struct rfx_telemetry *t, const char *dir, char *msg, size_t msglen)
{
    struct rfx_engine *e = t->e;
    int first = 0, rc;
    char none[1]; /* a caller that wants no message */
    if (!msg || !msglen) {
        msg = none;
        msglen = sizeof none;
    }
    msg[0] = 0;
    struct bundle_files now, before; /* ~1 KiB each */
    previous_files(dir, &before);
    now.n = 0;
    add_file(&now, "summary.json", "");
    if (!strcmp(dir, e->cfg.out_dir))
        add_file(&now, "latency.hlog", "");
    for (int i = 0; i <= t->ns; i++)
        add_file(&now, i < t->ns ? e->stages[i].name : "e2e", ".hgrm");
    add_file(&now, "latency.svg", "");
    add_file(&now, "metrics.prom", "");
    if (t->flight.k) /* off: rfx_flight_write removes a previous trace.json */
        add_file(&now, "trace.json", "");
    struct rfx_outfile o;
    rc = !strcmp(dir, e->cfg.out_dir)
             ? rfx_outfile_open_reserved(&o, &t->summary_reserve, dir, "summary.json")
             : rfx_outfile_open(&o, dir, "summary.json");
    if (rc == 0) {
        write_summary(t, o.f, &now);
        rc = rfx_outfile_commit(&o, 0);
    }
    if (rc)
        first = note_failure(msg, msglen, dir, first, "summary.json", rc);
    char file[RFX_NAME_MAX + 8];
    for (int i = 0; i <= t->ns; i++) {
        const char *name = i < t->ns ? e->stages[i].name : "e2e";
        if ((rc = write_hgrm(dir, name, i < t->ns ? t->st[i].all[K_SERVICE] : t->e2e_all)) != 0) {
            snprintf(file, sizeof file, "%s.hgrm", name);
            first = note_failure(msg, msglen, dir, first, file, rc);
        }
    }
    if ((rc = rfx_flight_write(&t->flight, e, t->n, &t->ladder, dir)) != 0)
        first = note_failure(msg, msglen, dir, first, "trace.json", rc);
    if ((rc = write_plot(t, dir)) != 0)
        first = note_failure(msg, msglen, dir, first, "latency.svg", rc);
    if ((rc = write_prom(t, dir)) != 0)
        first = note_failure(msg, msglen, dir, first, "metrics.prom", rc);
    if (t->hlog_errors) {
        size_t used = strlen(msg);
        if (used < msglen)
            snprintf(msg + used, msglen - used, "%s%s%slatency.hlog: %d lines failed to write",
                     used ? "; " : "", used ? "" : dir, used ? "" : "/", t->hlog_errors);
        first = first ? first : -EIO;
    }
    for (int i = 0; i < before.n; i++)
        if (!has_file(&now, before.name[i])) {
            char stale[RFX_PATH_MAX + 64];
            snprintf(stale, sizeof stale, "%s/%s", dir, before.name[i]);
            unlink(stale);
        }
    return first;
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
    for (int i = 0; i < t->ns; i++) {
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
    /* Rescue: frames a late critical thread's partner ran for it. */
    const char *sep = "";
    for (int i = 0; i < e->n_threads; i++) {
        const struct rfx_xthread *x = &e->threads[i];
        if (!x->rescuable)
            continue;
        if (!*sep)
            fprintf(f, "rescue: late over %u us, ", e->cfg.rescue_us);
        uint64_t n = atomic_load(&x->rescued);
        fprintf(f, "%srfx-%s's stages ran on rfx-%s for %" PRIu64 " frame%s", sep, x->cfg.name,
                e->threads[x->rescuer].cfg.name, n, n == 1 ? "" : "s");
        sep = ", ";
    }
    if (*sep)
        fprintf(f, "\n");
    /* What rescue cost: a thread that came back to its stages while its
     * rescuer ran them waited; shown when a wait was longer than the
     * lateness that starts a rescue. */
    for (int i = 0; i < e->n_threads; i++) {
        const struct rfx_xthread *x = &e->threads[i];
        int64_t max = atomic_load(&x->rescuer_wait_max_ns);
        if (!x->rescuable || max <= (int64_t)e->cfg.rescue_us * 1000)
            continue;
        uint64_t n = atomic_load(&x->rescuer_waits);
        fprintf(f,
                "rescue: rfx-%s waited for its stages while rfx-%s ran them %" PRIu64
                " time%s, %.3f ms in all, the longest %.1f us\n",
                x->cfg.name, e->threads[x->rescuer].cfg.name, n, n == 1 ? "" : "s",
                (double)atomic_load(&x->rescuer_wait_ns) / 1e6, (double)max / 1e3);
    }
    if (e->throttle_known && e->throttle_end.throttled > e->throttle_start.throttled)
        fprintf(f,
                "cpu quota: the kernel throttled this process in %" PRIu64 " of %" PRIu64
                " periods, %.1f ms in all: its cgroup allows %.2f CPUs (summary.json cpu_quota)\n",
                e->throttle_end.throttled - e->throttle_start.throttled,
                e->throttle_end.periods - e->throttle_start.periods,
                (double)(e->throttle_end.throttled_ns - e->throttle_start.throttled_ns) / 1e6,
                e->quota.cpus);
    uint64_t lookups = t->l1 + t->l2 + t->miss;
    if (lookups) {
        struct rfx_action_cache_stats cs;
        rfx_action_cache_stats(e->cache, &cs);
        fprintf(f,
                "cache: hit rate %.1f%% (L1 %" PRIu64 ", L2 %" PRIu64 ", misses %" PRIu64
                "), %" PRIu64 " snapshot%s published, generation %" PRIu64 "\n",
                100.0 * (double)(t->l1 + t->l2) / (double)lookups, t->l1, t->l2, t->miss,
                cs.publications, cs.publications == 1 ? "" : "s", cs.generation);
    }
    return viol;
}
