/*
 * The Prometheus text exposition (format 0.0.4) of a run: rendered by the
 * reporter after each telemetry interval for the endpoint, and after the
 * stop for metrics.prom in the bundle. Latencies are histograms in seconds
 * whose cumulative buckets come from the whole-run HDR histograms (a
 * bucket counts the HDR sub-buckets whose highest equivalent value is at
 * most `le`, so a count is exact to the histogram's 3 significant digits)
 * and whose `_sum` is the exact running sum of what was recorded.
 */
#include "hdr_histogram_impl.h"
#include "telemetry_impl.h"

#include <jemalloc/jemalloc.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Bucket bounds in seconds: 1-2.5-5 steps from 1 us to 10 s. */
static const double bounds[] = {1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5,   1e-4, 2.5e-4,
                                5e-4, 1e-3,   2.5e-3, 5e-3, 1e-2,   2.5e-2, 5e-2, 0.1,
                                0.25, 0.5,    1,      2.5,  5,      10};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])

static void histogram(FILE *f, const char *name, const char *labels, const struct rfx_hdr *h,
                      int64_t sum_ns)
{
    int64_t cum[N_BOUNDS] = {0};
    struct rfx_hdr_iter it;
    rfx_hdr_iter_recorded(&it, h);
    while (rfx_hdr_iter_next(&it))
        for (size_t b = 0; b < N_BOUNDS; b++)
            if ((double)it.value <= bounds[b] * 1e9)
                cum[b] += it.count_at_value;
    const char *sep = labels[0] ? "," : "";
    for (size_t b = 0; b < N_BOUNDS; b++)
        fprintf(f, "%s_bucket{%s%sle=\"%g\"} %" PRId64 "\n", name, labels, sep, bounds[b], cum[b]);
    int64_t total = rfx_hdr_total_count(h);
    fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %" PRId64 "\n", name, labels, sep, total);
    const char *lb = labels[0] ? "{" : "", *rb = labels[0] ? "}" : "";
    fprintf(f, "%s_sum%s%s%s %.9f\n", name, lb, labels, rb, sum_ns * 1e-9);
    fprintf(f, "%s_count%s%s%s %" PRId64 "\n", name, lb, labels, rb, total);
}

static void help(FILE *f, const char *name, const char *type, const char *text)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static size_t jemalloc_stat(const char *name)
{
    size_t v = 0, sz = sizeof v;
    return mallctl(name, &v, &sz, NULL, 0) == 0 ? v : 0;
}

char *rfx_metrics_render(struct rfx_telemetry *t, size_t *len)
{
    struct rfx_engine *e = t->e;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    char labels[64];

    help(f, "reflex_stage_latency_seconds", "histogram",
         "Service time of each stage per frame, whole run (closed intervals).");
    for (int i = 0; i < t->ns; i++) {
        snprintf(labels, sizeof labels, "stage=\"%s\"", e->stages[i].name);
        histogram(f, "reflex_stage_latency_seconds", labels, t->st[i].all[K_SERVICE], t->st[i].sum);
    }
    help(f, "reflex_e2e_latency_seconds", "histogram",
         "End-to-end latency from each frame's scheduled capture time to the end of its last "
         "stage, whole run.");
    histogram(f, "reflex_e2e_latency_seconds", "", t->e2e_all, t->e2e_sum);
    help(f, "reflex_stage_budget_seconds", "gauge", "Each stage's budget at a percentile.");
    for (int i = 0; i < t->ns; i++) {
        const struct rfx_budget *b = t->st[i].budget;
        if (!b)
            continue;
        fprintf(f,
                "reflex_stage_budget_seconds{stage=\"%s\",percentile=\"p50\"} %.9f\n"
                "reflex_stage_budget_seconds{stage=\"%s\",percentile=\"p95\"} %.9f\n"
                "reflex_stage_budget_seconds{stage=\"%s\",percentile=\"p99\"} %.9f\n",
                e->stages[i].name, b->p50_ns * 1e-9, e->stages[i].name, b->p95_ns * 1e-9,
                e->stages[i].name, b->p99_ns * 1e-9);
    }
    help(f, "reflex_stage_violations_total", "counter",
         "Telemetry intervals in which a stage's p50, p95 or p99 exceeded its budget.");
    for (int i = 0; i < t->ns; i++)
        fprintf(f, "reflex_stage_violations_total{stage=\"%s\"} %" PRIu64 "\n", e->stages[i].name,
                t->st[i].violations);

    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    help(f, "reflex_frames_captured_total", "counter", "Frames the source captured.");
    fprintf(f, "reflex_frames_captured_total %" PRIu64 "\n", k.captured);
    help(f, "reflex_frames_executed_total", "counter", "Frames that reached the end executed.");
    fprintf(f, "reflex_frames_executed_total %" PRIu64 "\n", k.executed);
    help(f, "reflex_frames_dropped_total", "counter", "Frames dropped, by reason.");
    for (int r = 1; r < RFX_DROP_REASONS; r++)
        fprintf(f, "reflex_frames_dropped_total{reason=\"%s\"} %" PRIu64 "\n",
                rfx_drop_reason_name((enum rfx_drop_reason)r), k.dropped[r]);
    help(f, "reflex_frames_in_flight", "gauge",
         "Frames captured and neither executed nor dropped yet.");
    fprintf(f, "reflex_frames_in_flight %" PRIu64 "\n", k.in_flight);
    help(f, "reflex_stage_dropped_total", "counter",
         "Frames dropped inside each stage's call (by the stage, a fault, the breaker).");
    for (int i = 0; i < t->n; i++)
        fprintf(f, "reflex_stage_dropped_total{stage=\"%s\"} %" PRIu64 "\n", e->stages[i].name,
                (uint64_t)atomic_load_explicit(&e->stage_dropped[i], memory_order_relaxed));

    help(f, "reflex_queue_depth", "gauge", "Frames waiting in each ring between threads.");
    for (int i = 0; i + 1 < e->n_threads; i++)
        fprintf(f, "reflex_queue_depth{from=\"%s\",to=\"%s\"} %" PRIu64 "\n",
                e->threads[i].cfg.name, e->threads[i + 1].cfg.name,
                rfx_spsc_ring_occupancy(e->threads[i].out));
    help(f, "reflex_rescued_frames_total", "counter",
         "Frames of a thread's stages another critical thread ran because it was late "
         "(engine.rescue_us).");
    for (int i = 0; i < e->n_threads; i++)
        if (e->threads[i].rescuable)
            fprintf(f, "reflex_rescued_frames_total{thread=\"%s\",by=\"%s\"} %" PRIu64 "\n",
                    e->threads[i].cfg.name, e->threads[e->threads[i].rescuer].cfg.name,
                    (uint64_t)atomic_load_explicit(&e->threads[i].rescued, memory_order_relaxed));
    help(f, "reflex_pool_free_frames", "gauge",
         "Free frames in the pool's ring (the source holds up to a burst more).");
    fprintf(f, "reflex_pool_free_frames %" PRIu64 "\n", rfx_spsc_ring_occupancy(e->pool));

    help(f, "reflex_degradation_level", "gauge",
         "Degradation level: 0 NONE, 1 MINIMAL, 2 MODERATE, 3 SEVERE, 4 CRITICAL.");
    fprintf(f, "reflex_degradation_level %d\n", (int)rfx_engine_level(e));
    help(f, "reflex_degradation_transitions_total", "counter", "Ladder transitions.");
    fprintf(f, "reflex_degradation_transitions_total %d\n",
            t->ladder.n_transitions + (int)t->ladder.dropped_transitions);

    struct rfx_action_cache_stats cs;
    rfx_action_cache_stats(e->cache, &cs);
    help(f, "reflex_cache_lookups_total", "counter", "Action cache lookups by result.");
    fprintf(f,
            "reflex_cache_lookups_total{result=\"l1_hit\"} %" PRIu64 "\n"
            "reflex_cache_lookups_total{result=\"l2_hit\"} %" PRIu64 "\n"
            "reflex_cache_lookups_total{result=\"miss\"} %" PRIu64 "\n",
            t->l1, t->l2, t->miss);
    help(f, "reflex_cache_generation", "gauge", "Generation of the published snapshot.");
    fprintf(f, "reflex_cache_generation %" PRIu64 "\n", cs.generation);
    help(f, "reflex_cache_publications_total", "counter", "Snapshots published.");
    fprintf(f, "reflex_cache_publications_total %" PRIu64 "\n", cs.publications);
    help(f, "reflex_cache_entries", "gauge", "Entries in the published snapshot, by level.");
    fprintf(f, "reflex_cache_entries{level=\"l1\"} %" PRIu64 "\n", cs.l1_entries);
    fprintf(f, "reflex_cache_entries{level=\"l2\"} %" PRIu64 "\n", cs.l2_entries);
    help(f, "reflex_cache_misses_dropped_total", "counter",
         "Misses not queued for the planners because the queue was full.");
    fprintf(f, "reflex_cache_misses_dropped_total %" PRIu64 "\n", cs.misses_dropped);

    help(f, "reflex_breaker_state", "gauge", "The sink's circuit breaker: 1 for its state.");
    int bs = atomic_load(&e->breaker.state);
    for (int s = 0; s < 3; s++)
        fprintf(f, "reflex_breaker_state{state=\"%s\"} %d\n",
                rfx_breaker_state_name((enum rfx_breaker_state)s), bs == s);
    help(f, "reflex_breaker_rejected_total", "counter",
         "Actions rejected while the breaker was open.");
    fprintf(f, "reflex_breaker_rejected_total %" PRIu64 "\n",
            (uint64_t)atomic_load(&e->breaker.rejected));

    help(f, "reflex_alerts_total", "counter", "Alerts delivered, by type.");
    pthread_mutex_lock(&e->alerts.lock);
    for (int a = 0; a < RFX_ALERT_TYPES; a++)
        fprintf(f, "reflex_alerts_total{type=\"%s\"} %" PRIu64 "\n",
                rfx_alert_type_name((enum rfx_alert_type)a), e->alerts.raised[a]);
    pthread_mutex_unlock(&e->alerts.lock);
    struct rfx_watchdog_counts wc;
    rfx_watchdog_counts(e->watchdog, &wc, NULL, 0);
    help(f, "reflex_stalls_total", "counter", "Stalls the watchdog reported, by kind.");
    fprintf(f, "reflex_stalls_total{kind=\"stage\"} %" PRIu64 "\n", wc.stalls);
    fprintf(f, "reflex_stalls_total{kind=\"planner\"} %" PRIu64 "\n", wc.planner_stalls);

    help(f, "reflex_strategic_hz", "gauge", "Strategic planning frequency.");
    fprintf(f, "reflex_strategic_hz %g\n", e->strat ? rfx_strategic_hz(e->strat) : 0.0);
    uint64_t epoch = 1;
    size_t esz = sizeof epoch;
    mallctl("epoch", &epoch, &esz, &epoch, esz); /* refresh jemalloc's stats */
    help(f, "reflex_jemalloc_allocated_bytes", "gauge", "Bytes allocated (jemalloc).");
    fprintf(f, "reflex_jemalloc_allocated_bytes %zu\n", jemalloc_stat("stats.allocated"));
    help(f, "reflex_jemalloc_resident_bytes", "gauge", "Bytes resident (jemalloc).");
    fprintf(f, "reflex_jemalloc_resident_bytes %zu\n", jemalloc_stat("stats.resident"));
    help(f, "reflex_uptime_seconds", "gauge",
         "Seconds from the pipeline's start to the end of the last closed interval.");
    fprintf(f, "reflex_uptime_seconds %.3f\n", (t->iv_start_ns - e->start_ns) * 1e-9);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}
