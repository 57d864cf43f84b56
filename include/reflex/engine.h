/*
 * reflex — the engine: frames flow through stages on pinned threads over
 * SPSC rings; telemetry closes the loop and returns frames to the pool.
 *
 * Life cycle: rfx_engine_config_default (or rfx_config_load) fills a config;
 * rfx_engine_create checks it and allocates everything (pool, rings,
 * histograms); rfx_engine_add_stage registers the stages in pipeline order
 * (the built-in telemetry stage is appended by the engine); rfx_engine_start
 * starts the threads; rfx_engine_wait blocks until the run ends (duration,
 * frame count, or rfx_engine_stop); rfx_engine_write_bundle writes the run
 * bundle; rfx_engine_destroy frees everything.
 *
 * Ownership: the engine owns its pool, rings, threads and histograms. Stage
 * contexts stay the caller's; they must outlive the engine's threads (until
 * rfx_engine_wait returns).
 * Thread-safety: create, add_stage, start, wait, write_bundle and destroy are
 * for one controlling thread. rfx_engine_stop and the rfx_engine_* queries
 * may be called from any thread (and rfx_engine_stop from a signal handler).
 * Several engines may run in one process at once, each with its own
 * threads, pool, cache and bundle directory; they share liburcu's grace
 * periods (a stage stuck in one engine can delay the other's publications,
 * never its lookups), and the automatic layout puts every engine's critical
 * threads on the same cores, so give each its own cfg.threads.
 */
#ifndef REFLEX_ENGINE_H
#define REFLEX_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <reflex/api.h>
#include <reflex/spsc_ring.h>
#include <reflex/stage.h>
#include <reflex/thread.h>
#include <reflex/wait.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RFX_MAX_THREADS 8
#define RFX_MAX_WORKERS 16
#define RFX_PATH_MAX    256
#define RFX_CORE_AUTO   (-2) /* strategic_cores[i]: the layout resolver picks */

/* cpu_latency_us: AUTO holds 0 us (idle CPUs poll) while the engine runs if a
 * critical thread can sleep (its wait is not spin), else nothing; OFF never
 * asks. */
#define RFX_CPU_LATENCY_AUTO (-1)
#define RFX_CPU_LATENCY_OFF  (-2)

/* How the threads are chosen when the config names none ([engine] layout). */
enum rfx_layout {
    RFX_LAYOUT_AUTO = 0, /* fits the online CPUs: one critical thread per CPU
                            up to 2 CPUs, one per stage beyond (hybrid waits) */
    RFX_LAYOUT_LATENCY,  /* every critical stage fused on one thread spinning
                            on a core of its own; telemetry parked on the
                            next core with the strategic workers (2+ CPUs) */
};

struct rfx_engine;
struct rfx_action_cache;

struct rfx_thread_config {
    char name[RFX_NAME_MAX];                   /* thread is named rfx-<name> */
    char stages[RFX_MAX_STAGES][RFX_NAME_MAX]; /* hosted in this order ("fused") */
    int n_stages;
    int core;                     /* -1: not pinned */
    struct rfx_wait_config wait;  /* how it waits for input */
    struct rfx_priority priority; /* normal | nice:N | fifo:N */
    int line;                     /* config line of its section (0: not from a file) */
};

struct rfx_budget {
    char stage[RFX_NAME_MAX]; /* a stage name, or "e2e" */
    int64_t p50_ns, p95_ns, p99_ns;
};

struct rfx_engine_config {
    /* [engine] */
    double frame_hz;        /* source rate; 0 = as fast as the pipeline goes */
    uint32_t payload_bytes; /* per frame */
    uint32_t pool_frames;   /* frames preallocated; power of two */
    uint32_t burst;         /* frames per ring operation, 1..64 */
    uint32_t lead_us;       /* wake this long before a scheduled frame, then spin */
    uint32_t lead_max_us;   /* 0: the lead is lead_us. Else each critical thread
                               measures how late its own wake-ups come and leads by
                               1.5x that (a peak decaying over ~1000 wake-ups),
                               between lead_us and lead_max_us */
    uint32_t rescue_us;     /* 0: off. Else, paced, a critical thread whose frames
                               wait this long for the next critical thread runs
                               that thread's stages itself when they are all
                               rescuable (stage.h; docs/architecture.md) */
    double duration_s;      /* 0 = until stopped */
    uint64_t max_frames;    /* 0 = no limit */
    char out_dir[RFX_PATH_MAX];
    char record_path[RFX_PATH_MAX]; /* the run record (reflex/record.h); "" = none */
    bool lock_memory; /* mlockall at start */
    int32_t cpu_latency_us; /* CPU latency request while running (rfx_cpu_latency_hold):
                               RFX_CPU_LATENCY_AUTO (the default), RFX_CPU_LATENCY_OFF,
                               or a bound in us held whatever the layout */
    enum rfx_layout layout; /* used when n_threads is 0 */
    /* [thread.NAME]; n_threads = 0: pick a layout for the online CPUs */
    int n_threads;
    struct rfx_thread_config threads[RFX_MAX_THREADS];
    /* [ring] */
    uint32_t ring_capacity; /* power of two */
    enum rfx_ring_policy ring_policy;
    /* [budget] */
    int n_budgets;
    struct rfx_budget budgets[RFX_MAX_STAGES + 1];
    /* [strategic] */
    int strategic_workers;
    int strategic_cores[RFX_MAX_WORKERS]; /* -1: not pinned; RFX_CORE_AUTO (the
                                             default): the resolver picks
                                             cores off the critical ones */
    double strategic_hz, strategic_min_hz, strategic_max_hz;
    bool pause_planning; /* ask the source to pause while the planner runs */
    /* [cache] */
    uint32_t cache_l1_slots; /* table capacity, power of two */
    uint32_t cache_l2_slots;
    uint32_t miss_queue;            /* SPMC miss queue capacity, power of two */
    double cache_ttl_s;             /* entries older than this are dropped (0: never) */
    uint32_t cache_max_generations; /* entries not re-planned in this many snapshots are dropped (0:
                                       never) */
    int n_rules; /* invalidation rules: an event drops categories matching patterns */
    struct rfx_cache_rule {
        char event[RFX_NAME_MAX];
        char patterns[4][RFX_NAME_MAX]; /* fnmatch patterns over category names */
        int n_patterns;
    } rules[8];
    char persist_path[RFX_PATH_MAX]; /* cache snapshot file; "" = no persistence */
    double persist_s;                /* write it this often (and at a clean stop) */
    /* [telemetry] */
    double interval_s;       /* interval histograms and checks */
    uint32_t drain_us;       /* telemetry thread wakes at least this often */
    char metrics_listen[64]; /* Prometheus endpoint "HOST:PORT" ("" = off) */
    uint32_t trace_frames;   /* flight recorder: frames kept per window (0 = off) */
    uint32_t trace_slow_us;  /* ... and a window around each frame slower than this end to
                                end and twice as slow as the last such (0 = off) */
    bool telemetry_record;   /* false: the telemetry stage only counts frames (no
                                latency recorded: for measuring what recording costs) */
    /* [budget] end to end per context class at p95 (routine, emergency,
     * deliberative; 0 = none) and load scaling */
    int64_t class_p95_ns[3];
    bool load_scaling;
    /* [degrade] */
    bool degrade_enabled;
    int escalate_windows;      /* consecutive violated windows to go up a level */
    double recover_s;          /* sustained headroom to come down a level */
    double headroom;           /* 0.25: figures at most 75 % of budget count as headroom */
    int window_intervals;      /* intervals merged into one evaluation window */
    unsigned level_actions[5]; /* RFX_DEGRADE_* bits per level; [0] (NONE) is 0 */
    /* [watchdog] */
    uint32_t stall_us;         /* one call longer than this is a stall (0: half the frame budget) */
    uint32_t watch_every_us;   /* monitor period; 0: an eighth of the frame budget */
    uint32_t planner_stall_ms; /* a planner call longer than this is a stall (1000) */
    bool stack_dump;           /* a stalled thread's stack goes to the log (true) */
    struct rfx_priority watchdog_priority; /* the monitor thread's (normal); fifo:1 lets it
                                              preempt a stall spinning on its CPU */
    /* [alerts] (seed 001's thresholds) */
    double alert_rate_limit_s; /* at most one alert per (type, stage) per this long */
    double alert_p95_warning_ms, alert_p95_critical_ms;
    double alert_error_warning, alert_error_critical; /* dropped / captured in an interval */
    double alert_hit_rate_warning;                    /* cache hit rate below this */
    double alert_memory_growth; /* resident memory above (1 + this) x its first figure */
    /* [breaker] on the sink (the last stage before telemetry) */
    uint32_t breaker_failures;  /* consecutive failures that open it (5) */
    uint32_t breaker_reset_ms;  /* OPEN -> HALF_OPEN after this long (1000) */
    uint32_t breaker_successes; /* HALF_OPEN -> CLOSED after this many successes (3) */
    /* [fault] (tests): extra work on one stage's full path between two times */
    char fault_stage[RFX_NAME_MAX];
    uint32_t fault_work_us;      /* extra work per frame on the full path */
    uint32_t fault_fast_work_us; /* ... on the fast path (MODERATE and up); default work/100 */
    double fault_from_s, fault_to_s;
    char stall_stage[RFX_NAME_MAX]; /* stall this stage for stall_ms every stall_every frames */
    uint32_t stall_ms, stall_every;
    bool stall_sleep; /* the stall sleeps (off CPU, as a call blocked on I/O) instead of spinning */
    double sink_fail_prob;         /* the sink fails each frame with this probability */
    char fail_stage[RFX_NAME_MAX]; /* this stage fails (drops the frame, reason stage) ... */
    double fail_prob;              /* ... each frame with this probability, on its full path */
    uint32_t planner_hang_ms;      /* a planner call hangs this long (from_s to to_s) */
    /* [source] / [sink] (interpreted by the tools' stage set-up) */
    char source_kind[RFX_NAME_MAX]; /* demo | synthetic | udp | replay */
    char source_file[RFX_PATH_MAX]; /* replay: the record whose frames the source plays */
    char sink_kind[RFX_NAME_MAX];   /* demo | null | udp */
    uint64_t seed;
    uint32_t work_ns[RFX_MAX_STAGES]; /* synthetic: busy work per frame per stage */
    int udp_port_in, udp_port_out;
};

/* Defaults: 60 Hz, 256-byte payload, 1024 frames, burst 32, auto layout,
 * 256-slot block rings, seed-000 budgets, 1 strategic worker at 2 Hz in
 * [0.5, 4], 1 s intervals. */
RFX_API void rfx_engine_config_default(struct rfx_engine_config *cfg);

/* Check a config on its own (no file), and that its frame pool fits in the
 * memory this process can still have (MemAvailable, and its memory
 * cgroup's limit less usage). Returns 0 or -EINVAL with a message. */
RFX_API int rfx_engine_config_check(const struct rfx_engine_config *cfg, char *msg, size_t msglen);

/*
 * Resolve the layout: when cfg->n_threads is 0, fill threads for CPUs
 * 0..cpus-1 (cpus <= 0: the CPUs the calling thread may run on,
 * rfx_cpu_usable, so that `taskset -c 2,3` or a container's cpuset is
 * honoured, and no more of them than the cgroup's CPU limit rounded up,
 * rfx_cpu_quota_read) and `stages` (the pipeline, the
 * telemetry stage last) as cfg->layout says, and give every strategic
 * worker left at RFX_CORE_AUTO a core off the critical ones (or none).
 * Threads already given are kept, whatever cfg->layout says (the config
 * loader refuses a file that names both). Returns 0, or -EINVAL with a
 * message (the latency layout on one CPU).
 */
RFX_API int rfx_engine_layout_resolve(struct rfx_engine_config *cfg, const char *const *stages,
                                      int n_stages, int cpus, char *msg, size_t msglen);

RFX_API int rfx_engine_create(const struct rfx_engine_config *cfg, struct rfx_engine **out);
RFX_API void rfx_engine_destroy(struct rfx_engine *e);

/* Register the next stage of the pipeline (before start). The name must be
 * unique, 1..RFX_NAME_MAX-1 letters, digits, '_' or '-' (it names the
 * stage's NAME.hgrm, hlog tag, summary.json key and Prometheus label), and
 * not "telemetry" or "e2e"; -EINVAL otherwise, -EEXIST for a name taken.
 * ops and ctx must stay valid until rfx_engine_wait returns. */
RFX_API int rfx_engine_add_stage(struct rfx_engine *e, const char *name,
                                 const struct rfx_stage_ops *ops, void *ctx);

/* The engine's action cache (created with the engine), for decide stages and planners. */
RFX_API struct rfx_action_cache *rfx_engine_cache(struct rfx_engine *e);

/* Start the threads. msg receives the reason for a failure (a bad core, a
 * stage init that failed). Warnings (FIFO refused) go to stderr. The out
 * dir is this engine's until rfx_engine_destroy: -EBUSY when another run
 * (another process, or another engine here) is using it. */
RFX_API int rfx_engine_start(struct rfx_engine *e, char *msg, size_t msglen);

/* Ask the run to end: the source stops, in-flight frames drain. Any thread,
 * async-signal-safe. */
RFX_API void rfx_engine_stop(struct rfx_engine *e);

/* Block until every thread has drained and exited, then close the run
 * (the last telemetry interval, planners, record, cache snapshot). A stage
 * call that never returns holds it: the watchdog reports the stall. */
RFX_API int rfx_engine_wait(struct rfx_engine *e);

/* rfx_engine_wait for at most timeout_ns (< 0: no limit). Returns 0 once
 * the run is closed, or -ETIMEDOUT while a thread has not exited yet (a
 * drain under way, or a stage stuck in a call): call it again to go on
 * waiting. A caller that gives up must not call rfx_engine_destroy (it
 * waits too), nor free what the stages use: it may only end the process. */
RFX_API int rfx_engine_wait_for(struct rfx_engine *e, int64_t timeout_ns);

/* Write the bundle to the out dir (after rfx_engine_wait): summary.json
 * first, then STAGE.hgrm, e2e.hgrm, trace.json, latency.svg and
 * metrics.prom, each whole or not at all (written to FILE.tmp and renamed).
 * Every file is tried; returns 0, or the first failure's -errno with `msg`
 * naming every file left out and why ("DIR/trace.json: No space left on
 * device; ..."), and latency.hlog lines that failed during the run. Then
 * the files a previous run's summary.json listed in `bundle_files` that
 * this run did not write (a renamed stage's .hgrm) are removed. */
RFX_API int rfx_engine_write_bundle(struct rfx_engine *e, char *msg, size_t msglen);

/* True while any engine thread is still running (any thread). */
RFX_API bool rfx_engine_running(const struct rfx_engine *e);

/* Print the run's report after rfx_engine_wait: per stage p50/p95/p99 against
 * budget, end to end, frames by outcome, cache hit rate. Returns the number
 * of budget violations (intervals with a percentile over budget, all stages
 * and e2e), or a negative errno. */
RFX_API int64_t rfx_engine_print_report(struct rfx_engine *e, FILE *f);

/* Frame accounting; exact after rfx_engine_wait, a snapshot before. */
struct rfx_engine_counts {
    uint64_t captured, executed, in_flight;
    uint64_t dropped[RFX_DROP_REASONS];
};
RFX_API void rfx_engine_counts(const struct rfx_engine *e, struct rfx_engine_counts *out);

/* The last closed telemetry interval, for a live status display. Any
 * thread; a copy, consistent within itself. intervals == 0: none closed yet. */
struct rfx_engine_status {
    uint64_t intervals;             /* closed so far */
    double t_s;                     /* the interval's end, seconds since the start */
    double frames_per_s;            /* frames executed per second in it */
    int64_t e2e_p99_ns;             /* -1: no frames */
    char worst_stage[RFX_NAME_MAX]; /* the stage whose p99 is nearest (or over) its budget */
    double worst_ratio;             /* its p99 / its p99 budget */
    enum rfx_level level;           /* the ladder's level at its end */
    double hit_rate;                /* cache hit rate in it; -1: no lookups */
    uint64_t dropped;               /* frames dropped so far, all reasons */
};
RFX_API void rfx_engine_status(const struct rfx_engine *e, struct rfx_engine_status *out);

RFX_API const char *rfx_drop_reason_name(enum rfx_drop_reason r);
RFX_API const char *rfx_level_name(enum rfx_level l);

/* The Prometheus endpoint's TCP port once started ([telemetry]
 * metrics_listen; port 0 picks a free one); -1 when it is off. */
RFX_API int rfx_engine_metrics_port(const struct rfx_engine *e);

/* The CPU latency request the engine holds while its threads run
 * ([engine] cpu_latency_us, rfx_cpu_latency_hold) in us; -1 when it holds
 * none (off, auto with every critical thread spinning, refused, or not
 * running). Call it from the thread that starts and waits for the engine
 * (rfx_engine_wait drops the request). */
RFX_API int rfx_engine_cpu_latency(const struct rfx_engine *e);

/* The run record ([engine] record): what the recorder wrote so far (exact
 * after rfx_engine_wait). Returns 0, or -ENOENT when the run records
 * nothing. Any thread. */
struct rfx_engine_record_stats {
    uint64_t frames;       /* frame records in the file */
    uint64_t frames_lost;  /* frames the recorder's ring had no room for */
    uint64_t publications; /* cache snapshots in the file */
    uint64_t bytes;
};
RFX_API int rfx_engine_record_stats(const struct rfx_engine *e,
                                    struct rfx_engine_record_stats *out);
/* Before start: the source kind the record's header names, which picks the
 * stage set a replay runs (default: [source] kind). A source that plays
 * another record's frames names that record's kind. */
RFX_API int rfx_engine_set_record_kind(struct rfx_engine *e, const char *kind);

/* Current degradation level (stages receive it in their env). */
RFX_API enum rfx_level rfx_engine_level(const struct rfx_engine *e);
/* The current level's actions (RFX_DEGRADE_* bits); any thread. */
RFX_API unsigned rfx_engine_degrade_actions(const struct rfx_engine *e);
/* "min_hz", "fast_path", "cache_only", "fallback_only", "shed_stale"; NULL if out of range. */
RFX_API const char *rfx_degrade_action_name(unsigned bit_index);

/* Print the resolved layout (threads, cores, waits, rings, budgets). */
RFX_API void rfx_engine_config_print(const struct rfx_engine_config *cfg, FILE *f);

/* Attach extra JSON members to summary.json ("demo": {...}); `json` is a
 * complete member list such as "\"demo\": {\"score\": 3}". Copied.
 * Returns 0, -ENOMEM, or -EINVAL when it is not valid JSON members (an
 * empty text, a bare value, an object with its braces, a trailing comma):
 * summary.json would not parse. */
RFX_API int rfx_engine_set_summary_extra(struct rfx_engine *e, const char *json);

/* Cache categories: a name ("movement_dodge") for the category field of a
 * cache entry; the id is stable for the engine's life. Returns the id (>= 1)
 * or -ENOSPC (64 names at most), -EINVAL. Not for critical threads (it
 * takes a lock); planners and set-up code may call it. */
RFX_API int rfx_engine_category(struct rfx_engine *e, const char *name);

/* A context-change event ("area_change"): the rules for it drop the matching
 * categories in the next snapshot, built by a strategic worker, which is
 * woken; a plan under way when the event came is published without its
 * entries in those categories, as it was made for the world before the
 * event. Never blocks; returns -ENOENT for an event no rule names. */
RFX_API int rfx_engine_cache_event(struct rfx_engine *e, const char *event);

/* Drop every cache entry first published before generation `gen` (e.g.
 * after the bot's model of the world changed: pass the current generation
 * + 1 to drop them all). Applied by a strategic worker building the next
 * snapshot, which is woken. A plan under way when the call came is dropped
 * whole: it was made for the world before the call. Counted in summary.json
 * under cache.invalidations.generation. Never blocks. */
RFX_API int rfx_engine_cache_invalidate_before(struct rfx_engine *e, uint64_t gen);

/* Alerts: typed, severity-ranked, rate-limited per type. */
enum rfx_alert_type {
    RFX_ALERT_BUDGET = 0,   /* a budget exceeded (e2e p95 thresholds, ladder escalations) */
    RFX_ALERT_STALL = 1,    /* the watchdog saw a stage make no progress */
    RFX_ALERT_HIT_RATE = 2, /* cache hit rate below threshold */
    RFX_ALERT_DROPS = 3,    /* dropped frames above the error-rate thresholds */
    RFX_ALERT_MEMORY = 4,   /* resident memory growth */
    RFX_ALERT_CIRCUIT_OPEN = 5,
    RFX_ALERT_TYPES = 6,
};
enum rfx_severity { RFX_SEV_INFO = 0, RFX_SEV_WARNING = 1, RFX_SEV_CRITICAL = 2 };
struct rfx_alert {
    double t_s; /* since start */
    enum rfx_alert_type type;
    enum rfx_severity severity;
    char stage[RFX_NAME_MAX]; /* "" when not about one stage */
    char message[200];
};
typedef void (*rfx_alert_fn)(void *arg, const struct rfx_alert *alert);
/* Before start. The callback runs on the reporter or watchdog thread (never
 * a critical one); it must not block for long. */
RFX_API int rfx_engine_set_alert_callback(struct rfx_engine *e, rfx_alert_fn fn, void *arg);
RFX_API const char *rfx_alert_type_name(enum rfx_alert_type t);
RFX_API const char *rfx_severity_name(enum rfx_severity s);

/* Monotonic time in ns (CLOCK_MONOTONIC, the frames' clock). */
RFX_API int64_t rfx_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif
