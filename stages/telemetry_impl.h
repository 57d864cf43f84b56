/* The telemetry stage's state, shared by stages/telemetry.c (recording, the
 * reporter, the bundle) and stages/metrics.c (the Prometheus exposition).
 * Everything below `active`/`epoch` belongs to the reporter thread (and to
 * the thread that writes the bundle after the pipeline stopped). */
#ifndef REFLEX_TELEMETRY_IMPL_H
#define REFLEX_TELEMETRY_IMPL_H

#include "degrade.h"
#include "engine_impl.h"
#include "flight_recorder.h"
#include "iv_series.h"
#include "outfile.h"

#include <stdio.h>

#define H_LOWEST      1
#define H_HIGHEST     60000000000LL /* 60 s in ns */
#define H_SIGFIGS     3
#define MAX_INTERVALS 8192

enum { K_SERVICE, K_WAIT, K_LATE, K_KINDS };

/* What the stage records during one interval. */
struct tset {
    struct rfx_hdr *h[RFX_MAX_STAGES][K_KINDS];
    struct rfx_hdr *e2e;
    struct rfx_hdr *cls[3]; /* e2e by context class */
    uint64_t l1, l2, miss;
    uint64_t over_p99[RFX_MAX_STAGES], e2e_over_p99;
    int64_t sum[RFX_MAX_STAGES], e2e_sum; /* exact sums of what was recorded (ns) */
    uint64_t beyond_span;                 /* frames older than RFX_FRAME_SPAN_NS at telemetry */
};

struct tstage {
    struct rfx_hdr *all[K_KINDS]; /* whole run (reporter) */
    const struct rfx_budget *budget;
    uint64_t violations;      /* intervals with a percentile over budget */
    uint64_t viol_by_pct[3];  /* p50, p95, p99 */
    uint64_t frames_over_p99; /* frames whose service exceeded the p99 budget */
    int64_t sum;              /* whole run: exact sum of service times (ns) */
};

struct rfx_telemetry {
    struct rfx_engine *e;
    /* Stages with histograms: the pipeline's n, whose times the frames
     * carry, then this stage itself at index n, timed per call by the
     * engine (rfx_telemetry_called): ns = n + 1. */
    int n, ns;
    struct tset sets[2];
    _Alignas(64) _Atomic(struct tset *) active; /* P2/P4 */
    _Alignas(64) _Atomic uint64_t epoch;        /* P1/P3; odd while the stage records */
    /* the stage's last call, not recorded yet (its thread only) */
    int64_t call_ns;
    uint64_t call_frames;
    _Alignas(64) struct tstage st[RFX_MAX_STAGES];
    struct rfx_hdr *e2e_all;
    int64_t e2e_sum; /* whole run, exact (ns) */
    const struct rfx_budget *e2e_budget;
    uint64_t e2e_violations, e2e_viol_by_pct[3], e2e_frames_over_p99;
    uint64_t beyond_span; /* whole run: frames older than RFX_FRAME_SPAN_NS at telemetry */
    uint64_t l1, l2, miss;
    /* budget windows: the last W intervals of each tag, merged (reporter) */
    int w_len, w_next, w_fill;
    struct rfx_hdr *win[16][RFX_MAX_STAGES + 4]; /* stages, e2e, 3 classes */
    struct rfx_hdr *merged[RFX_MAX_STAGES + 4];
    struct rfx_ladder ladder;
    struct rfx_flight flight;    /* trace.json */
    int64_t slow_next_ns;        /* trace a frame slower than this end to end (0: off) */
    pthread_mutex_t status_lock; /* status: the reporter writes, anyone reads */
    struct rfx_engine_status status;
    uint64_t stalls_seen, planner_stalls_seen;
    uint64_t last_captured, last_dropped;                   /* for the drop-rate alert */
    uint64_t publications_seen; /* the hit-rate alert waits for a snapshot */
    uint64_t ev_captured, ev_stage_dropped[RFX_MAX_STAGES]; /* for the ladder */
    size_t resident0; /* jemalloc stats.resident at the first interval */
    int64_t last_persist_ns;
    /* the reporter */
    pthread_t reporter;
    bool reporter_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    int64_t iv_start_ns, iv_len_ns;
    double wall_offset_s; /* CLOCK_REALTIME - CLOCK_MONOTONIC, seconds */
    FILE *hlog_f;
    struct rfx_hlog_writer *hlog;
    /* summary.json's *_by_interval: memory is the process's resident set
     * (/proc/self/statm), jemalloc's stats.resident and stats.allocated */
    struct rfx_iv_series iv;
    struct rfx_iv_point iv_storage[MAX_INTERVALS];
    _Atomic uint64_t last_hit_milli; /* for other threads; UINT64_MAX: none */
    int hlog_errors;
    struct rfx_reserve summary_reserve; /* disk space kept for summary.json (outfile.h) */
};

/* Disk space kept from the start for summary.json, the file that says
 * what the run did: a full summary with every series at its 8192 entries,
 * 256 alerts and 256 stall reports with their stacks stays under it. */
#define SUMMARY_RESERVE (2 << 20)

/* The Prometheus text exposition (0.0.4) of the whole run so far: malloc'd
 * text, or NULL. Reporter (after an interval) or after the stop. */
char *rfx_metrics_render(struct rfx_telemetry *t, size_t *len);

#endif
