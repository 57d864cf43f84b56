/* The engine's internals, shared by src/ and the built-in telemetry stage. */
#ifndef REFLEX_ENGINE_IMPL_H
#define REFLEX_ENGINE_IMPL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <reflex/action_cache.h>
#include <reflex/engine.h>
#include <reflex/planner.h>

#include "alerts.h"
#include "circuit_breaker.h"
#include "spsc_ring_impl.h"

#define RFX_TELEMETRY_STAGE "telemetry"
#define RFX_BURST_MAX       64
#define RFX_SPIN_GAP_NS     1000000 /* a spinning thread's CPU taken for this long is counted */

struct rfx_telemetry;
struct rfx_strategic;

struct rfx_stage_slot {
    char name[RFX_NAME_MAX];
    const struct rfx_stage_ops *ops;
    void *ctx;
    int thread; /* index of the hosting thread */
};

/* Stack bytes each engine thread maps before its first frame. */
#define RFX_STACK_PREFAULT (256 * 1024)

struct rfx_xthread {
    struct rfx_engine *e;
    int idx;
    struct rfx_thread_config cfg;
    int first_stage, n_stages;
    bool critical;                 /* hosts a stage other than telemetry */
    bool hosts_telemetry;          /* the last thread */
    struct rfx_spsc_ring *in;      /* from the previous thread; NULL for the source */
    struct rfx_spsc_ring *out;     /* to the next thread; NULL for the last */
    struct rfx_spsc_ring *drop;    /* dropped frames to the last thread; NULL for the last */
    struct rfx_waitpoint data_wp;  /* producers wake this thread */
    struct rfx_waitpoint space_wp; /* this thread wakes its producer (block rings) */
    _Atomic int done;
    pthread_t tid;
    _Atomic int ktid; /* its kernel thread id, for the watchdog's /proc reads (0: not yet) */
    bool started;
    int init_rc;
    char init_msg[400];
    /* measured on the thread itself */
    double cpu_s;
    uint64_t alloc_start, alloc_end;
    bool alloc_known;
    int64_t faults_start, faults_end; /* page faults (minor + major), getrusage(RUSAGE_THREAD) */
    uint64_t parks;
    /* adaptive lead (engine.lead_max_us): this thread's wake-up lateness, a
     * peak decaying by 1/1024 per wake-up; thread-private, read by the
     * summary after the thread has ended */
    int64_t wake_peak_ns;
    int64_t lead_max_used_ns;
    /* while it spun to a frame's due time: readings of the clock over
     * RFX_SPIN_GAP_NS apart, i.e. its CPU taken away (by the host, or by a
     * task the kernel preferred); thread-private, read after it ended */
    uint64_t spin_gaps;
    int64_t spin_gap_max_ns, spin_gap_total_ns;
    /* rescue (engine.rescue_us; docs/architecture.md): */
    bool rescuable;      /* another thread may run its stages when it is late: the
                            one before it, or for the source's, the one after */
    bool rescues_next;   /* it watches the next thread, which is rescuable */
    bool rescues_source; /* it captures for the source's thread when that is late */
    int rescuer;         /* rescuable: the thread that runs its stages when it is late */
    /* bursts of its stages another thread ran, and their frames: written
     * under `owner` (so by one thread at a time), read by the reporter */
    _Atomic uint64_t rescues, rescued;
    /* stage calls (or bursts) of this thread during which a rescue was due
     * (frames over rescue_us late) and could not start, as this thread held
     * its word: a call under way, or it had just come back to its stages.
     * Written by its rescuer only; blocked_call (the rescuer's alone) is the
     * busy_since of the call last counted, so that a call is counted once. */
    _Atomic uint64_t rescues_blocked;
    int64_t blocked_call;
    /* what a rescue cost this thread: the times it came back to its stages
     * while its rescuer was running them and waited, and how long in all
     * and at most (the rescuer's CPU taken mid-rescue, or a stage slow on
     * it). Written by the thread itself, read by the reporter. */
    _Atomic uint64_t rescuer_waits;
    _Atomic int64_t rescuer_wait_ns, rescuer_wait_max_ns;
    /* heartbeat for the watchdog, kept by the thread running the call (its
     * own stages, or a rescued thread's): when the current stage call began
     * (0: none) */
    _Alignas(64) _Atomic int64_t busy_since;
    _Atomic int busy_stage;
    _Atomic uint64_t busy_seq;
    /* who runs its stages now (RFX_OWNER_*): taken around each burst by the
     * thread itself, and by another for a rescue */
    _Alignas(64) _Atomic int owner;
};

enum { RFX_OWNER_FREE = 0, RFX_OWNER_SELF = 1, RFX_OWNER_RESCUER = 2 };

/* [fault] kinds, for fault_onset_ns and summary.json. */
enum rfx_fault_kind {
    RFX_FAULT_OVERLOAD = 0,
    RFX_FAULT_STALL,
    RFX_FAULT_STAGE_FAIL,
    RFX_FAULT_SINK_FAIL,
    RFX_FAULT_PLANNER_HANG,
    RFX_FAULT_KINDS
};

/* One frame slot in the pool: the header and the payload, each rounded to
 * a cache line. */
static inline size_t rfx_frame_slot_bytes(uint32_t payload_bytes)
{
    return ((sizeof(struct rfx_frame) + 63) & ~(size_t)63) +
           (((size_t)payload_bytes + 63) & ~(size_t)63);
}

/* The source's own state: its thread's, or, while the next thread captures
 * a frame the source's thread is late for, that thread's (under
 * threads[0].owner; engine.c, "Rescue"). */
struct rfx_source {
    uint64_t tick, seq; /* the next due frame's index; the next frame's seq */
    size_t n_spare;     /* frames taken from the pool and not used */
    struct rfx_frame *spare[RFX_BURST_MAX];
};

struct rfx_engine {
    struct rfx_engine_config cfg;
    struct rfx_stage_slot stages[RFX_MAX_STAGES];
    int n_stages;
    struct rfx_xthread threads[RFX_MAX_THREADS];
    int n_threads;
    /* the pool */
    unsigned char *pool_mem;
    size_t frame_bytes;
    struct rfx_spsc_ring *pool; /* free frames: last thread -> source */
    struct rfx_action_cache *cache;
    struct rfx_telemetry *tel;
    struct rfx_strategic *strat;
    const struct rfx_planner_ops *planner;
    void *planner_ctx;
    _Atomic int stop;
    _Atomic int level;
    _Atomic int ready;             /* threads that finished init */
    _Atomic int go;                /* 1: run; -1: abort start */
    _Atomic int64_t next_sched_ns; /* the source's next frame's due time, not yet
                                      captured (rate mode; 0: none) */
    struct rfx_source src;
    _Atomic int paused;            /* pause-based planning: source holds while set */
    /* accounting: captured by the source, the rest by the telemetry thread */
    _Atomic uint64_t captured;
    _Atomic uint64_t executed;
    _Atomic uint64_t dropped[RFX_DROP_REASONS];
    int64_t start_call_ns; /* when rfx_engine_start was called */
    int fault_stage;       /* [fault] stage index, -1: none */
    int stall_stage;       /* [fault] stall stage index, -1: none */
    struct rfx_alerts alerts;
    bool alerts_ready;
    int sink_stage;             /* the last stage before telemetry */
    int cpus_online;            /* at start; for summary.json */
    char cpus_usable[96];       /* the starting thread's CPUs (cpulist), which an
                                   auto layout is laid out on */
    struct rfx_breaker breaker; /* driven by the sink's thread */
    uint64_t fault_rng;         /* the sink's thread: sink_fail_prob draws */
    int fail_stage;             /* [fault] failing stage index, -1: none */
    uint64_t fail_rng;          /* its thread: fail_prob draws */
    /* frames dropped inside each stage's call (by the stage, a fault, the
     * sink's breaker or failure); written by the hosting thread only */
    _Atomic uint64_t stage_dropped[RFX_MAX_STAGES];
    _Atomic int64_t fault_onset_ns[RFX_FAULT_KINDS]; /* first time each fault acted (0: never) */
    /* persistence (src/persist.c): loaded at start, written by the reporter
     * every persist_s and by rfx_engine_wait at a clean stop */
    size_t loaded_l1, loaded_l2;
    /* cache rules */
    pthread_mutex_t cat_lock;
    char categories[64][RFX_NAME_MAX]; /* id i+1 */
    int n_categories;
    _Atomic uint32_t pending_rules; /* bit r: rule r's event happened */
    _Atomic uint64_t invalidated_ttl, invalidated_by_rule[8], rule_events[8];
    _Atomic uint64_t invalidate_below;       /* rfx_engine_cache_invalidate_before's highest */
    _Atomic uint64_t invalidated_generation; /* entries dropped by generation */
    char load_error[300];
    uint64_t persist_writes, persist_errors;
    char persist_error[300];
    struct rfx_watchdog *watchdog;
    struct rfx_recorder *recorder; /* [engine] record; NULL: none */
    char record_kind[RFX_NAME_MAX]; /* the header's source kind ("": [source] kind) */
    char record_error[300];
    struct rfx_metrics_server *metrics; /* NULL: no endpoint */
    int64_t start_ns, end_ns, first_frame_ns;
    /* The paced source's schedule: frame k is due at sched0_ns + k periods.
     * Set when the threads are released (rfx_engine_start), after the
     * off-path threads have started, so that their start-up is not charged
     * to the first frame's latency. */
    int64_t sched0_ns;
    int64_t released_ns; /* when rfx_engine_start released the threads */
    bool alloc_tracking;
    bool started, waited;
    int n_joined; /* critical threads joined so far (rfx_engine_wait_for) */
    char *summary_extra;
    /* [engine] cpu_latency_us: the request held while the threads run */
    int cpu_latency_fd;           /* -1: none held */
    int32_t cpu_latency_held_us;  /* what it asks; -1: none */
    char cpu_latency_error[200];  /* why a wanted request is not held */
    struct rfx_cpu_quota quota;   /* the cgroup's CPU limit, read at start */
    struct rfx_cpu_throttle throttle_start, throttle_end; /* its cpu.stat */
    bool throttle_known;                                  /* both read */
};

/* Remember when a fault first acted (any thread; the first wins). */
static inline void rfx_fault_onset(struct rfx_engine *e, enum rfx_fault_kind k, int64_t now)
{
    int64_t zero = 0;
    if (atomic_load_explicit(&e->fault_onset_ns[k], memory_order_relaxed) == 0)
        atomic_compare_exchange_strong_explicit(&e->fault_onset_ns[k], &zero, now,
                                                memory_order_relaxed, memory_order_relaxed);
}

/* Single-writer counter bump: relaxed load and store, no locked instruction. */
static inline void rfx_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* A whole value (trailing blanks allowed) as a finite decimal number in
 * [lo, hi]: no hex (strtod reads 0x3c), inf or nan. Config values and the
 * CLI's numeric options alike (src/config.c). */
bool rfx_parse_decimal(const char *v, double lo, double hi, double *out);

/* Config validation shared by rfx_engine_config_check and the file loader:
 * line_of(key) names the config line of "section.key" (0 when unknown). */
typedef int (*rfx_line_of)(void *arg, const char *section, const char *key);
/* The frame pool fits in the memory this process can still have (the
 * least of MemAvailable and its memory cgroup's room): 0 or -EINVAL with a
 * message naming engine.pool_frames. */
int rfx_config_check_memory(const struct rfx_engine_config *cfg, char *msg, size_t msglen);
int rfx_config_validate(const struct rfx_engine_config *cfg, const char *file, rfx_line_of line_of,
                        void *arg, char *msg, size_t msglen);

/*
 * The CPUs of `from` less `cores` (n of them; entries < 0 ignored) into
 * *out; returns how many are left. The engine starts its off-path threads
 * (planners without cores, watchdog, reporter, metrics) on the CPUs its
 * pinned critical threads leave free, when any are.
 */
int rfx_cpus_without(const cpu_set_t *from, const int *cores, int n, cpu_set_t *out);

/* The machine's kernel.sched_rt_runtime_us and sched_rt_period_us (-1: RT
 * throttling off); the kernel's defaults if they cannot be read. */
void rfx_rt_throttle(long *runtime_us, long *period_us);

/* How many of `usable` CPUs an auto layout takes: no more than the
 * cgroup's CPU limit, rounded up (as the JVM counts a container's CPUs):
 * more critical threads than the quota pays for would be throttled. */
int rfx_layout_cpu_count(int usable, const struct rfx_cpu_quota *q);

/* Threads that spin (wait = spin) use a CPU of quota each: true, with a
 * message, when they alone use up the cgroup's CPU limit. */
bool rfx_spin_quota_hazard(const struct rfx_engine_config *c, const struct rfx_cpu_quota *q,
                           char *msg, size_t msglen);
/* A thread that would spin at SCHED_FIFO under RT throttling (runtime_us of
 * period_us; runtime_us -1: off): true with a warning naming the thread. */
bool rfx_spin_fifo_hazard(const struct rfx_thread_config *t, long runtime_us, long period_us,
                          char *msg, size_t msglen);

/* The built-in telemetry stage (stages/telemetry.c). */
int rfx_telemetry_create(struct rfx_engine *e, struct rfx_telemetry **out, char *msg,
                         size_t msglen);
void rfx_telemetry_destroy(struct rfx_telemetry *t);
extern const struct rfx_stage_ops rfx_telemetry_ops;
/* The telemetry stage's call just ended: it took `ns` (the engine's clock
 * readings around it, as for every stage) for `frames` frames. On the
 * thread hosting the stage, after each call; the stage records it as its
 * own service time at its next call (rfx_telemetry_stop: after the last). */
void rfx_telemetry_called(struct rfx_telemetry *t, int64_t ns, size_t frames);
/* Start the reporter thread (intervals from start_ns); stop it and close
 * the last interval once the pipeline has stopped. */
int rfx_telemetry_start(struct rfx_telemetry *t, int64_t start_ns, char *msg, size_t msglen);
void rfx_telemetry_stop(struct rfx_telemetry *t);
int rfx_telemetry_write_bundle(struct rfx_telemetry *t, const char *dir, char *msg, size_t msglen);
int64_t rfx_telemetry_print_report(struct rfx_telemetry *t, FILE *f);
/* Telemetry's figure for the strategic controller and the summary. */
double rfx_telemetry_hit_rate_last(const struct rfx_telemetry *t);

/* Strategic workers (src/strategic.c). */
int rfx_strategic_create(struct rfx_engine *e, struct rfx_strategic **out, char *msg,
                         size_t msglen);
int rfx_strategic_start(struct rfx_strategic *s, char *msg, size_t msglen);
void rfx_strategic_stop(struct rfx_strategic *s);
void rfx_strategic_destroy(struct rfx_strategic *s);
/* Each telemetry interval: adapt the frequency from frame-time pressure. */
void rfx_strategic_adapt(struct rfx_strategic *s, int64_t e2e_p95_ns, double e2e_mean_ns);
double rfx_strategic_hz(const struct rfx_strategic *s);
/* The watchdog (or any thread off the critical path): wake the planners for
 * the kicks critical threads have asked for since the last call. */
void rfx_strategic_pass_kicks(struct rfx_strategic *s);
/* True on the engine's critical threads (set as each starts). */
extern _Thread_local bool rfx_on_critical_thread;
int rfx_strategic_workers(const struct rfx_strategic *s);
uint64_t rfx_strategic_plans(const struct rfx_strategic *s);
/* Watchdog: when worker i's planner call began (0: not in one); its thread. */
int64_t rfx_strategic_busy_since(struct rfx_strategic *s, int i);
bool rfx_strategic_thread(const struct rfx_strategic *s, int i, pthread_t *out);
double rfx_strategic_plan_max_ms(struct rfx_strategic *s);

/* The watchdog (src/watchdog.c). */
struct rfx_watchdog;
int rfx_watchdog_start(struct rfx_engine *e, struct rfx_watchdog **out, char *msg, size_t msglen);
void rfx_watchdog_stop(struct rfx_watchdog *w);
void rfx_watchdog_destroy(struct rfx_watchdog *w);
/* Stalls seen so far (stages, planners), those still going on, and a
 * description of the last (reporter). */
struct rfx_watchdog_counts {
    uint64_t stalls, planner_stalls;
    int open_stage, open_planner;
};
void rfx_watchdog_counts(struct rfx_watchdog *w, struct rfx_watchdog_counts *out, char *last,
                         size_t len);
void rfx_watchdog_json(struct rfx_watchdog *w, FILE *f);
int64_t rfx_frame_budget_ns(const struct rfx_engine *e);

/* The last closed interval's status (any thread). */
void rfx_telemetry_status(struct rfx_telemetry *t, struct rfx_engine_status *out);

/* Reporter: render the exposition and hand it to the endpoint (if any). */
void rfx_telemetry_publish_metrics(struct rfx_telemetry *t);

/* Write the cache snapshot to cfg.persist_path (reporter, and at stop). */
void rfx_engine_persist(struct rfx_engine *e);

/* jemalloc: this thread's allocated-bytes counter (false when malloc is not jemalloc's). */
bool rfx_thread_allocated(uint64_t *out);

/* A name rfx_engine_add_stage takes: 1..RFX_NAME_MAX-1 letters, digits,
 * '_' or '-', not "telemetry" or "e2e" (it goes unescaped into file names,
 * hlog tags, JSON keys and Prometheus labels). */
bool rfx_stage_name_ok(const char *name);

#endif
