/*
 * The engine: threads hosting fused stages, SPSC rings of frame pointers
 * between them, the frame pool, start, drain and stop.
 *
 * Thread i hosts stages [first, first + n) and runs, per burst: pop from its
 * input ring (the source instead takes free frames from the pool when the
 * next frame is due), run its stages in order, push to its output ring. The
 * last thread hosts telemetry, which counts every frame and returns it to
 * the pool. A frame a ring refuses (drop-newest) or evicts (drop-oldest) is
 * marked with its reason and sent to the last thread over the producer's
 * drop ring, which is sized to hold the whole pool and so never refuses.
 *
 * Waiting: a thread with no input waits on its own waitpoint; producers wake
 * it after a push (no system call unless it parked). The telemetry thread,
 * when it hosts nothing critical, is woken only when its ring is half full
 * and otherwise drains on its own timer, so critical threads make no system
 * call for it. In rate mode an idle critical thread parks until `lead_us`
 * before the next scheduled frame, then spins: it is awake when the frame
 * arrives, without burning the core between frames.
 *
 * Rescue (engine.rescue_us): a critical thread's CPU can be taken away
 * for a millisecond or more (a host that deschedules the vCPU, a late
 * wake-up), and every frame handed to it waits. So a paced critical thread
 * that has just handed frames to the next critical thread watches them
 * go: if they are still in the ring rescue_us later, it takes the next
 * thread's `owner` word and runs that thread's stages on the frames itself
 * (and forwards them as that thread would), then gives the word back. The
 * next thread takes the same word around each of its own bursts, so the
 * stages never run twice at once and each call sees the last one's writes;
 * if the word is taken, its owner is running and the watcher goes back to
 * its own work. The other way round, the thread after the source's, idle
 * and awake for the next frame, captures that frame itself if the source's
 * thread has not rescue_us after it was due (the source's tick and spare
 * frames, struct rfx_source, move with the source thread's word). Only
 * threads whose stages are all `rescuable` (stage.h) are rescued, one hop.
 *
 * Drain: the source stops capturing on stop, duration or frame count; each
 * later thread exits once its upstream thread has exited and its inputs are
 * empty, so every captured frame reaches telemetry (in flight = 0).
 */
#include "engine_impl.h"
#include "json_check.h"
#include "memtouch.h"
#include "metrics_http.h"
#include "probes.h"
#include "action_cache_impl.h"
#include "persist.h"
#include "recorder.h"

#include <ctype.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int64_t rfx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

_Thread_local bool rfx_on_critical_thread;

/* How often a started thread looks for the release (rfx_engine_start). */
#define GO_POLL_NS 100000

static const char *const drop_names[RFX_DROP_REASONS] = {
    "none",  "ring_full", "evicted",      "pool_exhausted",
    "stage", "stale",     "circuit_open", "sink_failed",
};

const char *rfx_drop_reason_name(enum rfx_drop_reason r)
{
    return (unsigned)r < RFX_DROP_REASONS ? drop_names[r] : "unknown";
}

const char *rfx_level_name(enum rfx_level l)
{
    static const char *const n[] = {"NONE", "MINIMAL", "MODERATE", "SEVERE", "CRITICAL"};
    return (unsigned)l <= RFX_LEVEL_CRITICAL ? n[l] : "unknown";
}

/*
 * Map the calling thread's stack below here before its first frame, so a
 * deeper call in steady state (an alert, a rare branch) does not fault.
 */
__attribute__((noinline)) static void prefault_stack(void)
{
    char pad[RFX_STACK_PREFAULT];
    explicit_bzero(pad, sizeof pad); /* not dropped, though nothing reads pad */
}

/*
 * Map the code and read-only data of every loaded object (the program,
 * libreflex, libc, jemalloc...) before the first frame. A code path a
 * critical thread first runs in steady state (a rare branch, the demo's
 * first step) would otherwise fault on its instruction fetch, or on the
 * first read of a constant or jump table in .rodata. The unwinder of the
 * watchdog's stack dump, which runs on the stalled critical thread, reads
 * .eh_frame_hdr and .eh_frame: a run that dumped a stack took a fault
 * there before these were mapped. Reading one byte a page maps it; the
 * pages are in the page cache already. Writable segments are left alone:
 * a read would map them only until the first write.
 */
static _Atomic unsigned text_sink; /* relaxed: orders nothing, keeps the loads */

/* The reads land anywhere in .rodata, including the redzones AddressSanitizer
 * puts around globals there: they touch pages, not objects, so it is told
 * not to check them. */
__attribute__((no_sanitize("address"))) static int map_text_object(struct dl_phdr_info *info,
                                                                    size_t size, void *arg)
{
    (void)size;
    (void)arg;
    unsigned sum = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) || ph->p_memsz == 0)
            continue;
        uintptr_t a = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)4095;
        uintptr_t b = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        for (; a < b; a += 4096)
            sum += *(const unsigned char *)a;
    }
    atomic_fetch_add_explicit(&text_sink, sum, memory_order_relaxed);
    return 0;
}

static void map_text(void)
{
    dl_iterate_phdr(map_text_object, NULL);
}

/* Page faults the calling thread has taken (minor + major), or -1. */
static int64_t thread_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        return -1;
    return (int64_t)ru.ru_minflt + (int64_t)ru.ru_majflt;
}

bool rfx_thread_allocated(uint64_t *out)
{
    uint64_t *p = NULL;
    size_t sz = sizeof p;
    if (mallctl("thread.allocatedp", &p, &sz, NULL, 0) != 0 || !p)
        return false;
    *out = *p;
    return true;
}

static void *_Atomic alloc_probe;

/* Does malloc in this process go through jemalloc's counters? */
static bool alloc_tracking_works(void)
{
    uint64_t a, b;
    if (!rfx_thread_allocated(&a))
        return false;
    void *p = malloc(4096);
    /* Let the pointer escape so the compiler cannot elide the malloc. */
    atomic_store_explicit(&alloc_probe, p, memory_order_relaxed);
    bool ok = rfx_thread_allocated(&b) && b > a;
    atomic_store_explicit(&alloc_probe, NULL, memory_order_relaxed);
    free(p);
    return ok;
}

/* ---- config defaults and layout ---- */

static void set_budget(struct rfx_engine_config *c, const char *stage, double p99_ms)
{
    struct rfx_budget *b = &c->budgets[c->n_budgets++];
    snprintf(b->stage, sizeof b->stage, "%s", stage);
    /* Seed 000 gives one figure per stage: it is the p99 budget; p95 and p50
     * default to a half and a quarter of it. */
    b->p99_ns = (int64_t)(p99_ms * 1e6);
    b->p95_ns = b->p99_ns / 2;
    b->p50_ns = b->p99_ns / 4;
}

void rfx_engine_config_default(struct rfx_engine_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->frame_hz = 60;
    c->payload_bytes = 256;
    c->pool_frames = 1024;
    c->burst = 32;
    c->lead_us = 200;
    c->lead_max_us = 0;
    c->rescue_us = 20;
    c->cpu_latency_us = RFX_CPU_LATENCY_AUTO;
    snprintf(c->out_dir, sizeof c->out_dir, "reflex-out");
    c->ring_capacity = 256;
    c->ring_policy = RFX_RING_BLOCK;
    set_budget(c, "capture", 1.0);
    set_budget(c, "pattern", 2.0);
    set_budget(c, "decide", 1.0);
    set_budget(c, "execute", 1.0);
    set_budget(c, "telemetry", 0.5);
    /* End to end: the 16.7 ms frame less its 20 % margin at p99; the 5 ms
     * critical path at p95. */
    struct rfx_budget *b = &c->budgets[c->n_budgets++];
    snprintf(b->stage, sizeof b->stage, "e2e");
    b->p99_ns = 13360000;
    b->p95_ns = 5000000;
    b->p50_ns = 2500000;
    c->strategic_workers = 1;
    for (int i = 0; i < RFX_MAX_WORKERS; i++)
        c->strategic_cores[i] = RFX_CORE_AUTO;
    c->strategic_hz = 2;
    c->strategic_min_hz = 0.5;
    c->strategic_max_hz = 4;
    c->cache_l1_slots = 65536;
    c->cache_l2_slots = 65536;
    c->miss_queue = 1024;
    c->class_p95_ns[RFX_CLASS_ROUTINE] = 200000000;
    c->class_p95_ns[RFX_CLASS_EMERGENCY] = 50000000;
    c->class_p95_ns[RFX_CLASS_DELIBERATIVE] = 1000000000;
    c->load_scaling = true;
    c->degrade_enabled = true;
    c->escalate_windows = 2;
    c->recover_s = 30;
    c->headroom = 0.25;
    c->window_intervals = 3;
    /* Each level adds one action to the one below (BRIEF §3's ladder). */
    c->level_actions[RFX_LEVEL_NONE] = 0;
    c->level_actions[RFX_LEVEL_MINIMAL] = RFX_DEGRADE_MIN_HZ;
    c->level_actions[RFX_LEVEL_MODERATE] = RFX_DEGRADE_MIN_HZ | RFX_DEGRADE_FAST_PATH;
    c->level_actions[RFX_LEVEL_SEVERE] =
        c->level_actions[RFX_LEVEL_MODERATE] | RFX_DEGRADE_CACHE_ONLY;
    c->level_actions[RFX_LEVEL_CRITICAL] =
        c->level_actions[RFX_LEVEL_SEVERE] | RFX_DEGRADE_FALLBACK_ONLY | RFX_DEGRADE_SHED_STALE;
    c->fault_to_s = 1e9;
    c->breaker_failures = 5;
    c->breaker_reset_ms = 1000;
    c->breaker_successes = 3;
    c->planner_stall_ms = 1000;
    c->stack_dump = true;
    c->watchdog_priority.kind = RFX_PRIO_NORMAL; /* fifo:1 costs the 60-Hz tail: watchdog.c */
    c->alert_rate_limit_s = 5;
    c->alert_p95_warning_ms = 150; /* seed 001 */
    c->alert_p95_critical_ms = 300;
    c->alert_error_warning = 0.05;
    c->alert_error_critical = 0.15;
    c->alert_hit_rate_warning = 0.5;
    c->alert_memory_growth = 0.5;
    c->persist_s = 10;
    c->cache_ttl_s = 300;
    /* Seed 000's rules. */
    static const struct rfx_cache_rule seed_rules[3] = {
        {"area_change", {"movement_*", "exploration_*"}, 2},
        {"critical_health", {"combat_*", "exploration_*"}, 2},
        {"new_objective", {"strategic_*"}, 1},
    };
    c->n_rules = 3;
    memcpy(c->rules, seed_rules, sizeof seed_rules);
    c->interval_s = 1.0;
    c->trace_frames = 128;
    c->trace_slow_us = 100;
    c->telemetry_record = true;
    c->drain_us = 2000;
    snprintf(c->source_kind, sizeof c->source_kind, "demo");
    snprintf(c->sink_kind, sizeof c->sink_kind, "demo");
    c->seed = 1;
    c->udp_port_in = 47000;
    c->udp_port_out = 47001;
}

int rfx_engine_config_check(const struct rfx_engine_config *cfg, char *msg, size_t msglen)
{
    if (!cfg)
        return -EINVAL;
    int rc = rfx_config_validate(cfg, NULL, NULL, NULL, msg, msglen);
    return rc ? rc : rfx_config_check_memory(cfg, msg, msglen);
}

static void add_thread(struct rfx_engine_config *c, const char *name, const char *const *stages,
                       int first, int n, int core, enum rfx_wait_kind wait)
{
    struct rfx_thread_config *t = &c->threads[c->n_threads++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    for (int i = 0; i < n; i++)
        snprintf(t->stages[i], sizeof t->stages[i], "%s", stages[first + i]);
    t->n_stages = n;
    t->core = core;
    rfx_wait_config_default(&t->wait);
    t->wait.kind = wait;
    t->priority.kind = RFX_PRIO_NORMAL;
}

/* Workers left to the resolver get `cores` in turn, or `fallback` (a core
 * or -1) when there are none. */
static void place_workers(struct rfx_engine_config *cfg, const int *cores, int n, int fallback)
{
    for (int w = 0, k = 0; w < RFX_MAX_WORKERS; w++)
        if (cfg->strategic_cores[w] == RFX_CORE_AUTO)
            cfg->strategic_cores[w] = n > 0 ? cores[k++ % n] : fallback;
}

int rfx_layout_cpu_count(int usable, const struct rfx_cpu_quota *q)
{
    if (q && q->cpus > 0) {
        int by_quota = (int)ceil(q->cpus - 1e-9);
        if (by_quota < 1)
            by_quota = 1;
        if (by_quota < usable)
            return by_quota;
    }
    return usable;
}

int rfx_engine_layout_resolve(struct rfx_engine_config *cfg, const char *const *stages,
                              int n_stages, int cpus, char *msg, size_t msglen)
{
    if (!cfg || !stages || n_stages < 2 || n_stages > RFX_MAX_STAGES) {
        if (msg)
            snprintf(msg, msglen, "layout: need 2..%d stages", RFX_MAX_STAGES);
        return -EINVAL;
    }
    if (cfg->n_threads > 0) { /* given (or resolved before): kept as they are */
        place_workers(cfg, NULL, 0, -1);
        return 0;
    }
    /* The CPUs to lay out on: 0..cpus-1 when told, else the ones this
     * thread may run on (taskset or a container's cpuset narrows them), so
     * that no thread is pinned where the kernel will refuse it. */
    int ids[CPU_SETSIZE];
    int online = 0;
    struct rfx_cpu_quota quota = {0};
    if (cpus > 0) {
        if (cpus > CPU_SETSIZE)
            cpus = CPU_SETSIZE;
        for (int c = 0; c < cpus; c++)
            ids[c] = c;
    } else {
        online = rfx_cpu_online_count();
        if (rfx_cpu_quota_read(&quota) != 0)
            quota.cpus = 0;
        cpus = rfx_layout_cpu_count(rfx_cpu_usable(ids, CPU_SETSIZE), &quota);
    }
    int k = n_stages - 1; /* critical stages; telemetry is last */
    int base = cpus >= 5 ? 1 : 0;
    int spare[RFX_MAX_WORKERS], n_spare = 0;
    if (cfg->layout == RFX_LAYOUT_LATENCY) {
        /* One thread for every critical stage, spinning on a core no other
         * thread of the engine's uses (no ring hop, no wake-up, a CPU that
         * never idles); telemetry parked on the next core with the
         * strategic workers, which take any further cores. */
        if (cpus < 2) {
            if (msg && quota.cpus > 0 && quota.cpus < 2)
                snprintf(msg, msglen,
                         "'latency' needs 2 or more CPUs, and this process's cgroup allows %.2f "
                         "(%ld us every %ld us, %s): its critical thread spins on a core of its "
                         "own and would use up the quota, and the kernel would stop the process "
                         "until each period ends",
                         quota.cpus, quota.quota_us, quota.period_us, quota.where);
            else if (msg && online > cpus)
                snprintf(msg, msglen,
                         "'latency' needs 2 or more CPUs, and this process may run on %d of "
                         "the %d online (CPU %d; taskset or a cgroup cpuset narrows it): its "
                         "critical thread spins on a core of its own",
                         cpus, online, ids[0]);
            else if (msg)
                snprintf(msg, msglen,
                         "'latency' needs 2 or more CPUs (this machine has %d): its "
                         "critical thread spins on a core of its own",
                         cpus);
            return -EINVAL;
        }
        add_thread(cfg, "rt0", stages, 0, k, ids[base], RFX_WAIT_SPIN);
        add_thread(cfg, "tel", stages, k, 1, ids[base + 1], RFX_WAIT_PARK);
        for (int c = base + 2; c < cpus && n_spare < RFX_MAX_WORKERS; c++)
            spare[n_spare++] = ids[c];
        place_workers(cfg, spare, n_spare, ids[base + 1]);
        return 0;
    }
    /* Up to 2 CPUs: one critical thread per CPU, telemetry's recording fused
     * into the last (its interval work runs on the unpinned reporter
     * thread), so no third thread competes for the critical cores. From 3:
     * one critical thread per stage up to the cores available, telemetry
     * on its own core, and from 5 core 0 left to the system. */
    int groups = cpus <= 2 ? cpus : cpus - 1 - base;
    if (groups > k)
        groups = k;
    if (groups < 1)
        groups = 1;
    bool fuse_telemetry = cpus <= 2;
    int first = 0;
    for (int g = 0; g < groups; g++) {
        int n = k / groups + (g < k % groups ? 1 : 0);
        if (fuse_telemetry && g == groups - 1)
            n++;
        char name[RFX_NAME_MAX];
        snprintf(name, sizeof name, "rt%d", g);
        add_thread(cfg, name, stages, first, n, ids[base + g], RFX_WAIT_HYBRID);
        first += n;
    }
    int tcore = -1;
    if (!fuse_telemetry) {
        tcore = ids[base + groups];
        add_thread(cfg, "telemetry", stages, k, 1, tcore, RFX_WAIT_HYBRID);
    }
    for (int c = base + groups; c < cpus && n_spare < RFX_MAX_WORKERS; c++)
        spare[n_spare++] = ids[c];
    place_workers(cfg, spare, n_spare, tcore);
    return 0;
}

static long read_long(const char *path, long fallback)
{
    long v = fallback;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = fallback;
        fclose(f);
    }
    return v;
}

void rfx_rt_throttle(long *runtime_us, long *period_us)
{
    *runtime_us = read_long("/proc/sys/kernel/sched_rt_runtime_us", 950000);
    *period_us = read_long("/proc/sys/kernel/sched_rt_period_us", 1000000);
}

/*
 * A thread that spins at SCHED_FIFO never yields its core, and while the
 * kernel's RT throttling is on (kernel.sched_rt_runtime_us not -1) the
 * kernel takes that core back for the rest of each period: stalls of up
 * to tens of ms. (An 8-s run at 1 kHz here: e2e p99 40 ms, max 53 ms, against
 * 54 us and 0.4 ms at normal priority.)
 */
bool rfx_spin_fifo_hazard(const struct rfx_thread_config *t, long runtime_us, long period_us,
                          char *msg, size_t msglen)
{
    if (t->wait.kind != RFX_WAIT_SPIN || t->priority.kind != RFX_PRIO_FIFO)
        return false;
    if (runtime_us < 0 || runtime_us >= period_us)
        return false; /* throttling off */
    snprintf(msg, msglen,
             "thread %s: wait = spin at fifo:%d never yields its core, and RT throttling is on "
             "(kernel.sched_rt_runtime_us = %ld of %ld): the kernel will take the core from it "
             "for up to %ld ms of every %ld ms. Use priority normal, wait hybrid, or set "
             "kernel.sched_rt_runtime_us to -1",
             t->name, t->priority.value, runtime_us, period_us, (period_us - runtime_us) / 1000,
             period_us / 1000);
    return true;
}

bool rfx_spin_quota_hazard(const struct rfx_engine_config *c, const struct rfx_cpu_quota *q,
                           char *msg, size_t msglen)
{
    int spinning = 0;
    for (int i = 0; i < c->n_threads; i++)
        spinning += c->threads[i].wait.kind == RFX_WAIT_SPIN;
    if (q->cpus <= 0 || spinning == 0 || (double)spinning < q->cpus)
        return false;
    snprintf(msg, msglen,
             "%d thread%s spin%s (wait = spin), using %d CPU%s of time, and this process's cgroup "
             "allows %.2f CPUs (%ld us every %ld us, %s): once that is used up the kernel stops "
             "every thread of the process until the period ends. Give the cgroup more CPU, or "
             "use wait = hybrid (the default layout)",
             spinning, spinning > 1 ? "s" : "", spinning > 1 ? "" : "s", spinning,
             spinning > 1 ? "s" : "", q->cpus, q->quota_us, q->period_us, q->where);
    return true;
}

static bool config_critical(const struct rfx_thread_config *t)
{
    for (int k = 0; k < t->n_stages; k++)
        if (strcmp(t->stages[k], RFX_TELEMETRY_STAGE) != 0)
            return true;
    return false;
}

/* The thread that would rescue thread ti (engine.rescue_us), stages
 * allowing: the one before it, or for the source's, the one after it;
 * both critical, paced. -1: none. */
static int config_rescuer(const struct rfx_engine_config *c, int ti)
{
    int by = ti > 0 ? ti - 1 : 1;
    if (c->rescue_us == 0 || c->frame_hz <= 0 || by >= c->n_threads)
        return -1;
    if (!config_critical(&c->threads[ti]) || !config_critical(&c->threads[by]))
        return -1;
    return by;
}

static void print_rescue(const struct rfx_engine_config *c, FILE *f)
{
    if (c->rescue_us == 0) {
        fprintf(f, "rescue: off (rescue_us=0)\n");
        return;
    }
    if (c->frame_hz <= 0) {
        fprintf(f, "rescue: off (frame_hz=0: the source is not paced)\n");
        return;
    }
    int n = 0;
    for (int ti = 0; ti < c->n_threads; ti++) {
        int by = config_rescuer(c, ti);
        if (by < 0)
            continue;
        if (n++ == 0)
            fprintf(f, "rescue (rescue_us=%u):\n", c->rescue_us);
        fprintf(f, "  rfx-%s's stages run on rfx-%s when ", c->threads[ti].name,
                c->threads[by].name);
        if (ti == 0)
            fprintf(f, "a frame is still not captured %u us after it is due\n", c->rescue_us);
        else
            fprintf(f, "its frames wait in its ring over %u us\n", c->rescue_us);
    }
    if (n == 0)
        fprintf(f, "rescue: none (fewer than two critical threads)\n");
    else
        fprintf(f, "  if all of that thread's stages are rescuable (stage.h; every built-in stage "
                   "is)\n");
}

void rfx_engine_config_print(const struct rfx_engine_config *c, FILE *f)
{
    fprintf(f, "engine: frame_hz=%g payload_bytes=%u pool_frames=%u burst=%u lead_us=%u",
            c->frame_hz, c->payload_bytes, c->pool_frames, c->burst, c->lead_us);
    if (c->lead_max_us)
        fprintf(f, " lead_max_us=%u (adaptive)", c->lead_max_us);
    fprintf(f, " rescue_us=%u", c->rescue_us);
    if (c->layout == RFX_LAYOUT_LATENCY)
        fprintf(f, " layout=latency");
    if (c->cpu_latency_us == RFX_CPU_LATENCY_OFF)
        fprintf(f, " cpu_latency_us=off");
    else if (c->cpu_latency_us >= 0)
        fprintf(f, " cpu_latency_us=%d", (int)c->cpu_latency_us);
    if (c->record_path[0])
        fprintf(f, " record=%s", c->record_path);
    fputc('\n', f);
    fprintf(f, "rings: capacity=%u overflow=%s\n", c->ring_capacity,
            rfx_ring_policy_name(c->ring_policy));
    fprintf(f, "threads:\n");
    for (int i = 0; i < c->n_threads; i++) {
        const struct rfx_thread_config *t = &c->threads[i];
        char core[16];
        if (t->core < 0)
            snprintf(core, sizeof core, "unpinned");
        else
            snprintf(core, sizeof core, "core %d", t->core);
        fprintf(f, "  rfx-%-12s %-9s wait=%s", t->name, core, rfx_wait_kind_name(t->wait.kind));
        if (t->wait.kind == RFX_WAIT_HYBRID)
            fprintf(f, " spin_us=%u", t->wait.spin_ns / 1000);
        char prio[24];
        fprintf(f, " priority=%s stages:", rfx_priority_format(&t->priority, prio, sizeof prio));
        for (int s = 0; s < t->n_stages; s++)
            fprintf(f, " %s", t->stages[s]);
        fprintf(f, "\n");
    }
    print_rescue(c, f);
    long rt_runtime, rt_period;
    rfx_rt_throttle(&rt_runtime, &rt_period);
    for (int i = 0; i < c->n_threads; i++) {
        char why[400];
        if (rfx_spin_fifo_hazard(&c->threads[i], rt_runtime, rt_period, why, sizeof why))
            fprintf(f, "  warning: %s\n", why);
    }
    struct rfx_cpu_quota q;
    char why[700];
    if (rfx_cpu_quota_read(&q) == 0 && rfx_spin_quota_hazard(c, &q, why, sizeof why))
        fprintf(f, "  warning: %s\n", why);
    fprintf(f, "strategic: workers=%d hz=%g [%g, %g] cores:", c->strategic_workers, c->strategic_hz,
            c->strategic_min_hz, c->strategic_max_hz);
    for (int i = 0; i < c->strategic_workers && i < RFX_MAX_WORKERS; i++) {
        if (c->strategic_cores[i] < 0)
            fprintf(f, " unpinned");
        else
            fprintf(f, " %d", c->strategic_cores[i]);
    }
    char wprio[24], stall[16] = "auto", every[16] = "auto";
    if (c->stall_us)
        snprintf(stall, sizeof stall, "%u", c->stall_us);
    if (c->watch_every_us)
        snprintf(every, sizeof every, "%u", c->watch_every_us);
    fprintf(f, "\nwatchdog: stall_us=%s every_us=%s priority=%s\n", stall, every,
            rfx_priority_format(&c->watchdog_priority, wprio, sizeof wprio));
    fprintf(f, "degrade: %s escalate_windows=%d recover_s=%g headroom=%g\n",
            c->degrade_enabled ? "enabled" : "disabled", c->escalate_windows, c->recover_s,
            c->headroom);
    for (int l = RFX_LEVEL_MINIMAL; l <= RFX_LEVEL_CRITICAL; l++) {
        fprintf(f, "  %-9s", rfx_level_name((enum rfx_level)l));
        if (!c->level_actions[l])
            fprintf(f, " none");
        for (unsigned b = 0; b < RFX_DEGRADE_ACTIONS; b++)
            if (c->level_actions[l] >> b & 1)
                fprintf(f, " %s", rfx_degrade_action_name(b));
        fprintf(f, "\n");
    }
    fprintf(f, "budgets (p50/p95/p99 us):\n");
    for (int i = 0; i < c->n_budgets; i++)
        fprintf(f, "  %-12s %g / %g / %g\n", c->budgets[i].stage, c->budgets[i].p50_ns / 1e3,
                c->budgets[i].p95_ns / 1e3, c->budgets[i].p99_ns / 1e3);
}

/* ---- create / destroy ---- */

/*
 * [engine] cpu_latency_us. A critical thread that parks between frames lets
 * its CPU go idle, and an idle CPU that halts can be slow to wake: on a
 * virtual machine the host deschedules a halted vCPU and takes up to
 * milliseconds to run it again when the thread's timer fires
 * (docs/benchmarks.md). Asking for 0 us makes idle CPUs poll instead, so
 * `auto` asks for it whenever some critical thread can sleep; when every
 * critical thread spins, its core never idles and polling the others would
 * only take host time from them. A refusal is a warning, as for
 * lock_memory: the engine runs, with the reason in summary.json.
 */
static void hold_cpu_latency(struct rfx_engine *e)
{
    int32_t want = e->cfg.cpu_latency_us;
    if (want == RFX_CPU_LATENCY_AUTO) {
        want = RFX_CPU_LATENCY_OFF;
        for (int i = 0; i < e->n_threads; i++)
            if (e->threads[i].critical && e->threads[i].cfg.wait.kind != RFX_WAIT_SPIN)
                want = 0;
    }
    if (want < 0)
        return;
    char why[200];
    int fd = rfx_cpu_latency_hold((unsigned)want, why, sizeof why);
    if (fd < 0) {
        snprintf(e->cpu_latency_error, sizeof e->cpu_latency_error, "%s", why);
        fprintf(stderr,
                "reflex: warning: engine.cpu_latency_us: %s; idle CPUs may halt, and a critical "
                "thread that sleeps can wake late\n",
                why);
        return;
    }
    e->cpu_latency_fd = fd;
    e->cpu_latency_held_us = want;
}

static void release_cpu_latency(struct rfx_engine *e)
{
    rfx_cpu_latency_release(e->cpu_latency_fd);
    e->cpu_latency_fd = -1;
}

int rfx_engine_create(const struct rfx_engine_config *cfg, struct rfx_engine **out)
{
    char msg[256];
    if (!cfg || !out || rfx_engine_config_check(cfg, msg, sizeof msg) != 0)
        return -EINVAL;
    struct rfx_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    rfx_touch_zeroed(e, sizeof *e); /* waitpoints and counters: no fault after start */
    e->cpu_latency_fd = -1;
    e->cpu_latency_held_us = -1;
    e->cfg = *cfg;
    e->frame_bytes = rfx_frame_slot_bytes(cfg->payload_bytes);
    int rc = -ENOMEM;
    if (posix_memalign((void **)&e->pool_mem, 64, e->frame_bytes * cfg->pool_frames) != 0)
        goto fail;
    memset(e->pool_mem, 0, e->frame_bytes * cfg->pool_frames);
    /* Twice the frames: a block ring's consumer publishes its releases in
     * batches (up to a quarter of the ring late), and the source may stop
     * with some unpublished; the producer must still fit every frame. */
    if ((rc = rfx_spsc_ring_create(2 * cfg->pool_frames, sizeof(void *), RFX_RING_BLOCK,
                                   &e->pool)) != 0)
        goto fail;
    for (uint32_t i = 0; i < cfg->pool_frames; i++) {
        struct rfx_frame *f = (struct rfx_frame *)(void *)(e->pool_mem + i * e->frame_bytes);
        f->payload_size = cfg->payload_bytes;
        f->payload = (unsigned char *)f + rfx_frame_slot_bytes(0); /* after the header */
        rfx_spsc_ring_push(e->pool, &f);
    }
    struct rfx_action_cache_config cc;
    rfx_action_cache_config_default(&cc);
    cc.max_entries =
        cfg->cache_l1_slots > cfg->cache_l2_slots ? cfg->cache_l1_slots : cfg->cache_l2_slots;
    cc.miss_queue = cfg->miss_queue;
    if ((rc = rfx_action_cache_create(&cc, &e->cache)) != 0)
        goto fail;
    atomic_init(&e->stop, 0);
    atomic_init(&e->level, RFX_LEVEL_NONE);
    atomic_init(&e->ready, 0);
    atomic_init(&e->go, 0);
    atomic_init(&e->next_sched_ns, 0);
    atomic_init(&e->paused, 0);
    atomic_init(&e->captured, 0);
    atomic_init(&e->executed, 0);
    for (int i = 0; i < RFX_DROP_REASONS; i++)
        atomic_init(&e->dropped[i], 0);
    e->alloc_tracking = alloc_tracking_works();
    rfx_alerts_init(&e->alerts, cfg->alert_rate_limit_s);
    pthread_mutex_init(&e->cat_lock, NULL);
    atomic_init(&e->pending_rules, 0);
    atomic_init(&e->invalidated_ttl, 0);
    atomic_init(&e->invalidate_below, 0);
    atomic_init(&e->invalidated_generation, 0);
    for (int i = 0; i < 8; i++) {
        atomic_init(&e->invalidated_by_rule[i], 0);
        atomic_init(&e->rule_events[i], 0);
    }
    e->alerts_ready = true;
    *out = e;
    return 0;
fail:
    rfx_engine_destroy(e);
    return rc;
}

void rfx_engine_destroy(struct rfx_engine *e)
{
    if (!e)
        return;
    if (e->started && !e->waited) {
        rfx_engine_stop(e);
        rfx_engine_wait(e);
    }
    release_cpu_latency(e); /* a start that failed after taking it */
    rfx_watchdog_destroy(e->watchdog);
    rfx_metrics_server_destroy(e->metrics);
    rfx_strategic_destroy(e->strat);
    rfx_recorder_destroy(e->recorder);
    rfx_telemetry_destroy(e->tel);
    for (int i = 0; i < e->n_threads; i++) {
        rfx_spsc_ring_destroy(e->threads[i].out);
        rfx_spsc_ring_destroy(e->threads[i].drop);
    }
    rfx_spsc_ring_destroy(e->pool);
    rfx_action_cache_destroy(e->cache);
    free(e->pool_mem);
    free(e->summary_extra);
    if (e->alerts_ready) {
        rfx_alerts_fini(&e->alerts);
        pthread_mutex_destroy(&e->cat_lock);
    }
    free(e);
}

/* A stage's name becomes a file name (NAME.hgrm), an hlog tag (which ends
 * at ',' or a space), a JSON key and a Prometheus label, unescaped: so it
 * is letters, digits, '_' and '-' only, as a thread's name in a config. */
bool rfx_stage_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= RFX_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return strcmp(name, RFX_TELEMETRY_STAGE) != 0 && strcmp(name, "e2e") != 0;
}

int rfx_engine_add_stage(struct rfx_engine *e, const char *name, const struct rfx_stage_ops *ops,
                         void *ctx)
{
    if (!e || !name || !ops || !ops->process || e->started || !rfx_stage_name_ok(name))
        return -EINVAL;
    if (e->n_stages >= RFX_MAX_STAGES - 1)
        return -ENOSPC;
    for (int i = 0; i < e->n_stages; i++)
        if (strcmp(e->stages[i].name, name) == 0)
            return -EEXIST;
    struct rfx_stage_slot *s = &e->stages[e->n_stages++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ops = ops;
    s->ctx = ctx;
    return 0;
}

struct rfx_action_cache *rfx_engine_cache(struct rfx_engine *e)
{
    return e ? e->cache : NULL;
}

int rfx_engine_category(struct rfx_engine *e, const char *name)
{
    if (!e || !name || !*name || strlen(name) >= RFX_NAME_MAX)
        return -EINVAL;
    pthread_mutex_lock(&e->cat_lock);
    int id = -ENOSPC;
    for (int i = 0; i < e->n_categories; i++)
        if (!strcmp(e->categories[i], name))
            id = i + 1;
    if (id < 0 && e->n_categories < 64) {
        snprintf(e->categories[e->n_categories], RFX_NAME_MAX, "%s", name);
        id = ++e->n_categories;
    }
    pthread_mutex_unlock(&e->cat_lock);
    return id;
}

int rfx_engine_cache_event(struct rfx_engine *e, const char *event)
{
    if (!e || !event)
        return -EINVAL;
    for (int r = 0; r < e->cfg.n_rules && r < 8; r++) {
        if (strcmp(e->cfg.rules[r].event, event) != 0)
            continue;
        /* Counted first: a publish that misses the count finds the bit
         * still pending (see drop_outdated in strategic.c). */
        atomic_fetch_add_explicit(&e->rule_events[r], 1, memory_order_release);
        atomic_fetch_or_explicit(&e->pending_rules, 1u << r, memory_order_release);
        rfx_engine_context_change(e);
        return 0;
    }
    return -ENOENT;
}

int rfx_engine_cache_invalidate_before(struct rfx_engine *e, uint64_t gen)
{
    if (!e)
        return -EINVAL;
    uint64_t cur = atomic_load_explicit(&e->invalidate_below, memory_order_relaxed);
    while (cur < gen &&
           !atomic_compare_exchange_weak_explicit(&e->invalidate_below, &cur, gen,
                                                  memory_order_release, memory_order_relaxed))
        ;
    rfx_engine_context_change(e);
    return 0;
}

int rfx_engine_set_alert_callback(struct rfx_engine *e, rfx_alert_fn fn, void *arg)
{
    if (!e || e->started)
        return -EINVAL;
    e->alerts.fn = fn;
    e->alerts.arg = arg;
    return 0;
}

int rfx_engine_set_planner(struct rfx_engine *e, const struct rfx_planner_ops *ops, void *ctx)
{
    if (!e || !ops || !ops->plan || e->started)
        return -EINVAL;
    e->planner = ops;
    e->planner_ctx = ctx;
    return 0;
}

void rfx_engine_status(const struct rfx_engine *e, struct rfx_engine_status *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (e && e->tel)
        rfx_telemetry_status(e->tel, out);
}

int rfx_engine_metrics_port(const struct rfx_engine *e)
{
    return e && e->metrics ? rfx_metrics_server_port(e->metrics) : -1;
}

unsigned rfx_engine_degrade_actions(const struct rfx_engine *e)
{
    enum rfx_level l = rfx_engine_level(e);
    return e && (unsigned)l <= RFX_LEVEL_CRITICAL ? e->cfg.level_actions[l] : 0;
}

const char *rfx_degrade_action_name(unsigned bit_index)
{
    static const char *const n[RFX_DEGRADE_ACTIONS] = {"min_hz", "fast_path", "cache_only",
                                                       "fallback_only", "shed_stale"};
    return bit_index < RFX_DEGRADE_ACTIONS ? n[bit_index] : NULL;
}

bool rfx_engine_paused(const struct rfx_engine *e)
{
    return e && atomic_load_explicit(&((struct rfx_engine *)e)->paused, memory_order_acquire);
}

int rfx_engine_cpu_latency(const struct rfx_engine *e)
{
    return e && e->cpu_latency_fd >= 0 ? (int)e->cpu_latency_held_us : -1;
}

enum rfx_level rfx_engine_level(const struct rfx_engine *e)
{
    return e ? (enum rfx_level)atomic_load_explicit(&((struct rfx_engine *)e)->level,
                                                    memory_order_relaxed)
             : RFX_LEVEL_NONE;
}

int rfx_engine_set_record_kind(struct rfx_engine *e, const char *kind)
{
    if (!e || !kind || strlen(kind) >= sizeof e->record_kind || e->started)
        return -EINVAL;
    snprintf(e->record_kind, sizeof e->record_kind, "%s", kind);
    return 0;
}

int rfx_engine_record_stats(const struct rfx_engine *e, struct rfx_engine_record_stats *out)
{
    if (!e || !out)
        return -EINVAL;
    if (!e->recorder)
        return -ENOENT;
    struct rfx_recorder_stats rs;
    rfx_recorder_stats(e->recorder, &rs);
    *out = (struct rfx_engine_record_stats){
        .frames = rs.frames,
        .frames_lost = rs.frames_lost,
        .publications = rs.publications,
        .bytes = rs.bytes,
    };
    return 0;
}

int rfx_engine_set_summary_extra(struct rfx_engine *e, const char *json)
{
    if (!e || !json || rfx_json_members_check(json, NULL, 0) != 0)
        return -EINVAL;
    char *copy = strdup(json);
    if (!copy)
        return -ENOMEM;
    free(e->summary_extra);
    e->summary_extra = copy;
    return 0;
}

void rfx_engine_counts(const struct rfx_engine *e, struct rfx_engine_counts *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!e)
        return;
    struct rfx_engine *m = (struct rfx_engine *)e;
    uint64_t dropped = 0;
    for (int i = 0; i < RFX_DROP_REASONS; i++) {
        out->dropped[i] = atomic_load_explicit(&m->dropped[i], memory_order_acquire);
        dropped += out->dropped[i];
    }
    out->executed = atomic_load_explicit(&m->executed, memory_order_acquire);
    /* captured last: it only grows, so in_flight is never negative. */
    out->captured = atomic_load_explicit(&m->captured, memory_order_acquire);
    uint64_t done = out->executed + dropped;
    out->in_flight = out->captured > done ? out->captured - done : 0;
}

bool rfx_engine_running(const struct rfx_engine *e)
{
    if (!e || !e->started)
        return false;
    for (int i = 0; i < e->n_threads; i++)
        if (!atomic_load_explicit(&((struct rfx_engine *)e)->threads[i].done, memory_order_acquire))
            return true;
    return false;
}

int64_t rfx_engine_print_report(struct rfx_engine *e, FILE *f)
{
    if (!e || !e->waited || !e->tel || !f)
        return -EINVAL;
    return rfx_telemetry_print_report(e->tel, f);
}

void rfx_engine_stop(struct rfx_engine *e)
{
    if (e)
        atomic_store_explicit(&e->stop, 1, memory_order_release);
}

/* ---- the threads ---- */

/* [fault] overload: busy work on the stage's full path (fast_work_us on its
 * fast path, which stages take from MODERATE up), between from_s and to_s. */
static void fault_work(struct rfx_engine *e, int si, struct rfx_frame **f, size_t m,
                       unsigned degrade, int64_t now)
{
    if (m == 0 || (e->fault_stage != si && e->stall_stage != si))
        return;
    double t = (now - e->start_ns) * 1e-9;
    if (t < e->cfg.fault_from_s || t >= e->cfg.fault_to_s)
        return;
    int64_t per = 0, extra = 0;
    if (e->fault_stage == si)
        per = (int64_t)((degrade & RFX_DEGRADE_FAST_PATH) ? e->cfg.fault_fast_work_us
                                                          : e->cfg.fault_work_us) *
              1000;
    if (e->stall_stage == si && e->cfg.stall_every)
        for (size_t i = 0; i < m; i++)
            if (f[i]->seq % e->cfg.stall_every == 0)
                extra += (int64_t)e->cfg.stall_ms * 1000000;
    if (per > 0)
        rfx_fault_onset(e, RFX_FAULT_OVERLOAD, now);
    if (extra > 0)
        rfx_fault_onset(e, RFX_FAULT_STALL, now);
    int64_t end = now + per * (int64_t)m;
    while (rfx_now_ns() < end)
        ;
    if (extra > 0 && e->cfg.stall_sleep) {
        /* Off CPU, as a call blocked in a system call would be. */
        end += extra;
        struct timespec ts = {.tv_sec = end / 1000000000, .tv_nsec = end % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        return;
    }
    end += extra;
    while (rfx_now_ns() < end)
        ;
}

/* xorshift64* in [0, 1): the fault draws (one state per drawing thread). */
static double fault_draw(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

static bool fault_window(const struct rfx_engine *e, int64_t now)
{
    double t = (now - e->start_ns) * 1e-9;
    return t >= e->cfg.fault_from_s && t < e->cfg.fault_to_s;
}

/* [fault] fail_stage: the stage fails on its full path (the fast path, from
 * MODERATE up by default, avoids the failing code): each frame with
 * probability fail_prob is dropped, reason `stage`. */
static void stage_fail(struct rfx_engine *e, int si, struct rfx_frame **f, size_t m,
                       unsigned degrade, int64_t now)
{
    if (e->fail_stage != si || (degrade & RFX_DEGRADE_FAST_PATH) || !fault_window(e, now))
        return;
    for (size_t i = 0; i < m; i++)
        if (f[i]->drop_reason == RFX_DROP_NONE && fault_draw(&e->fail_rng) < e->cfg.fail_prob) {
            rfx_frame_drop(f[i], RFX_DROP_STAGE);
            rfx_fault_onset(e, RFX_FAULT_STAGE_FAIL, now);
        }
}

/* [fault] sink_fail_prob: mark frames the sink will fail to deliver (the
 * sink sees the flag and does not deliver them), before it runs. */
static void sink_inject(struct rfx_engine *e, struct rfx_frame **f, size_t m, int64_t now)
{
    if (!(e->cfg.sink_fail_prob > 0 && fault_window(e, now)))
        return;
    for (size_t i = 0; i < m; i++)
        if (fault_draw(&e->fault_rng) < e->cfg.sink_fail_prob) {
            f[i]->flags |= RFX_FRAME_SINK_FAILED;
            rfx_fault_onset(e, RFX_FAULT_SINK_FAIL, now);
        }
}

/* The sink's outcome per frame: the breaker learns it; a failure is a drop
 * (reason sink_failed). */
static void sink_outcomes(struct rfx_engine *e, struct rfx_frame **f, size_t m, int64_t now)
{
    uint64_t oks = 0; /* a run of successes goes to the breaker at once */
    for (size_t i = 0; i < m; i++) {
        if (!(f[i]->flags & RFX_FRAME_SINK_FAILED)) {
            oks++;
            continue;
        }
        rfx_breaker_ok_n(&e->breaker, oks, now);
        oks = 0;
        rfx_frame_drop(f[i], RFX_DROP_SINK_FAILED);
        rfx_breaker_result(&e->breaker, false, now);
    }
    rfx_breaker_ok_n(&e->breaker, oks, now);
}

_Static_assert(RFX_MAX_STAGES <= 8, "woke_mask and rescued_mask hold a bit per stage");
_Static_assert(sizeof(struct rfx_frame) <= 2 * 64,
               "a frame header crosses cores every lap: keep it in two cache lines");

/*
 * A burst's frame headers were last written on another core (upstream, or
 * telemetry for frames back from the pool). Ask for every header line, for
 * writing, before the stages walk the burst frame by frame, so the
 * transfers overlap instead of stalling one frame at a time.
 */
static void prefetch_headers(struct rfx_frame *const *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t off = 0; off < sizeof(struct rfx_frame); off += 64)
            __builtin_prefetch((const char *)frames[i] + off, 1, 3);
}

/*
 * The frames of a burst that stage si takes: all of them if it sees dropped
 * frames, else those not dropped; each is stamped as entering it at `now`.
 */
static size_t stage_take(const struct rfx_stage_slot *s, int si, struct rfx_frame **frames,
                         size_t n, struct rfx_frame **live, int64_t now)
{
    size_t m = 0;
    if (s->ops->sees_dropped) {
        for (size_t i = 0; i < n; i++) {
            frames[i]->enter_at[si] = rfx_stamp(now);
            live[i] = frames[i];
        }
        return n;
    }
    for (size_t i = 0; i < n; i++)
        if (frames[i]->drop_reason == RFX_DROP_NONE) {
            frames[i]->enter_at[si] = rfx_stamp(now);
            live[m++] = frames[i];
        }
    return m;
}

/*
 * Run a burst through thread t's stages, in order, on thread hb (t itself,
 * or the thread rescuing it), from `now` (the
 * caller's clock reading at the start of the burst). A stage's frames enter
 * it at the clock reading that ended the stage before it on this thread (the
 * thread's first stage: at `now`), so one clock reading and
 * one pass over the frames sit between two fused stages: the pass that
 * stamps the one's exit, counts its drops and stamps the next one's entry.
 * The stages' times tile the thread's busy time; the wait between fused
 * stages is 0, as there is no queue between them.
 */
static void run_stages(struct rfx_xthread *t, struct rfx_xthread *hb, struct rfx_frame **frames,
                       size_t n, int64_t now)
{
    struct rfx_engine *e = t->e;
    struct rfx_frame *live[RFX_BURST_MAX * 2];
    if (hb != t) {
        uint8_t mask = (uint8_t)(((1u << t->n_stages) - 1) << t->first_stage);
        for (size_t i = 0; i < n; i++) {
            frames[i]->flags |= RFX_FRAME_RESCUED;
            frames[i]->rescued_mask |= mask;
        }
    }
    struct rfx_stage_env env = {
        .engine = e,
        .cache = e->cache,
        .level = (enum rfx_level)atomic_load_explicit(&e->level, memory_order_relaxed),
    };
    env.degrade = (unsigned)env.level <= RFX_LEVEL_CRITICAL ? e->cfg.level_actions[env.level] : 0;
    if ((env.degrade & RFX_DEGRADE_SHED_STALE) && t->critical) {
        /* Shed frames older than the frame budget (CRITICAL by default). */
        int64_t limit = rfx_frame_budget_ns(e);
        for (size_t i = 0; i < n; i++)
            if (frames[i]->drop_reason == RFX_DROP_NONE && now - frames[i]->scheduled_ns > limit) {
                rfx_frame_drop(frames[i], RFX_DROP_STALE);
                frames[i]->reached = (uint8_t)t->first_stage;
            }
    }
    size_t m = stage_take(&e->stages[t->first_stage], t->first_stage, frames, n, live, now);
    for (int k = 0; k < t->n_stages; k++) {
        int si = t->first_stage + k;
        const struct rfx_stage_slot *s = &e->stages[si];
        const struct rfx_stage_slot *next = k + 1 < t->n_stages ? s + 1 : NULL;
        if (m == 0) {
            if (next)
                m = stage_take(next, si + 1, frames, n, live, now);
            continue;
        }
        int64_t t0 = now;
        if (si == e->sink_stage) {
            /* The breaker: while OPEN, frames never reach the sink. */
            size_t kept = m;
            if (rfx_breaker_is_open(&e->breaker)) {
                kept = 0;
                for (size_t i = 0; i < m; i++) {
                    if (rfx_breaker_allow(&e->breaker, t0)) {
                        live[kept++] = live[i];
                    } else {
                        live[i]->reached = (uint8_t)si; /* never entered */
                        rfx_frame_drop(live[i], RFX_DROP_CIRCUIT_OPEN);
                    }
                }
            }
            if (kept < m)
                rfx_count(&e->stage_dropped[si], m - kept);
            m = kept;
            if (m == 0) {
                if (next)
                    m = stage_take(next, si + 1, frames, n, live, now);
                continue;
            }
            sink_inject(e, live, m, t0);
        }
        env.stage_index = si;
        env.now_ns = t0;
        /* Heartbeat for the watchdog, on the thread running the call
         * (hb: t, or the thread rescuing it): this call began at t0. */
        atomic_store_explicit(&hb->busy_stage, si, memory_order_relaxed);
        atomic_store_explicit(&hb->busy_seq, live[0]->seq, memory_order_relaxed);
        atomic_store_explicit(&hb->busy_since, t0, memory_order_release);
        RFX_PROBE3(stage_enter, si, live[0]->seq, m);
        s->ops->process(s->ctx, live, m, &env);
        fault_work(e, si, live, m, env.degrade, t0);
        stage_fail(e, si, live, m, env.degrade, t0);
        atomic_store_explicit(&hb->busy_since, 0, memory_order_release);
        RFX_PROBE3(stage_exit, si, live[0]->seq, m);
        now = rfx_now_ns();
        if (si == e->sink_stage)
            sink_outcomes(e, live, m, now);
        else if (!next && t->hosts_telemetry)
            rfx_telemetry_called(e->tel, now - t0, m);
        uint64_t went = 0;
        uint32_t at = rfx_stamp(now);
        bool sees = s->ops->sees_dropped;
        if (next && !next->ops->sees_dropped) {
            /* One pass: this stage's exit, its drops, the next one's entry. */
            size_t kept = 0;
            for (size_t i = 0; i < m; i++) {
                struct rfx_frame *f = live[i];
                f->exit_at[si] = at;
                if (f->drop_reason != RFX_DROP_NONE) {
                    went++;
                    if (!sees)
                        f->reached = (uint8_t)(si + 1);
                } else {
                    f->enter_at[si + 1] = at;
                    live[kept++] = f;
                }
            }
            m = kept;
        } else {
            for (size_t i = 0; i < m; i++) {
                live[i]->exit_at[si] = at;
                if (live[i]->drop_reason != RFX_DROP_NONE) {
                    went++;
                    if (!sees)
                        live[i]->reached = (uint8_t)(si + 1);
                }
            }
            if (next)
                m = stage_take(next, si + 1, frames, n, live, now);
        }
        if (went && !sees)
            rfx_count(&e->stage_dropped[si], went);
    }
}

struct wait_arg {
    struct rfx_xthread *t;
};

static bool inputs_ready(struct rfx_xthread *t)
{
    struct rfx_engine *e = t->e;
    if (t->in && rfx_spsc_ring_occupancy(t->in) > 0)
        return true;
    if (t->hosts_telemetry)
        for (int i = 0; i < e->n_threads - 1; i++)
            if (rfx_spsc_ring_occupancy(e->threads[i].drop) > 0)
                return true;
    return false;
}

static bool upstream_done(struct rfx_xthread *t)
{
    struct rfx_engine *e = t->e;
    if (t->hosts_telemetry) {
        for (int i = 0; i < e->n_threads - 1; i++)
            if (!atomic_load_explicit(&e->threads[i].done, memory_order_acquire))
                return false;
        return true;
    }
    return atomic_load_explicit(&e->threads[t->idx - 1].done, memory_order_acquire);
}

/* Thread t captures for the source's thread, which is over rescue_us late
 * for its next frame (and not paused or stopping). */
static bool source_late(const struct rfx_xthread *t)
{
    const struct rfx_engine *e = t->e;
    if (!t->rescues_source)
        return false;
    int64_t due = atomic_load_explicit(&e->next_sched_ns, memory_order_relaxed);
    return due > 0 && rfx_now_ns() - due > (int64_t)e->cfg.rescue_us * 1000 &&
           !atomic_load_explicit(&e->paused, memory_order_relaxed) &&
           !atomic_load_explicit(&e->stop, memory_order_relaxed);
}

static bool wake_cond(void *arg)
{
    struct rfx_xthread *t = arg;
    return inputs_ready(t) || upstream_done(t) || source_late(t);
}

/* Wake the consumer of a ring this thread just pushed into. */
static void wake_consumer(struct rfx_xthread *consumer, struct rfx_spsc_ring *r)
{
    if (consumer->critical || rfx_spsc_ring_occupancy(r) * 2 >= rfx_spsc_ring_capacity(r))
        rfx_wake(&consumer->data_wp);
}

/* How long before a scheduled frame an idle critical thread wakes to spin:
 * lead_us, or with lead_max_us set, 1.5x the lateness this thread's own
 * wake-ups have shown lately (between lead_us and lead_max_us), so that on a
 * machine that wakes sleepers late (a VM whose idle vCPU the host
 * deschedules) the thread is spinning before the frame is due. Always at most
 * a quarter of the frame period, so that between frames the critical cores
 * go idle and off-path threads (reporter, planners, at SCHED_IDLE) run in
 * those gaps rather than preempting a spinning critical thread for a
 * scheduler tick. */
int rfx_cpus_without(const cpu_set_t *from, const int *cores, int n, cpu_set_t *out)
{
    CPU_ZERO(out);
    CPU_OR(out, out, from);
    for (int i = 0; i < n; i++)
        if (cores[i] >= 0 && cores[i] < CPU_SETSIZE)
            CPU_CLR(cores[i], out);
    return CPU_COUNT(out);
}

/*
 * Threads inherit their creator's CPU mask. While the engine creates its
 * off-path threads, point the calling thread's mask at the CPUs that no
 * pinned critical thread uses, so that none of them lands on (and, being
 * runnable, takes time slices from) a critical core. Nothing changes when
 * the critical threads take every allowed CPU. Returns whether the mask
 * changed; offpath_leave restores it.
 */
static bool offpath_enter(const struct rfx_engine *e, cpu_set_t *saved)
{
    int cores[RFX_MAX_STAGES];
    int n = 0;
    for (int i = 0; i < e->n_threads; i++)
        if (e->threads[i].critical)
            cores[n++] = e->threads[i].cfg.core;
    cpu_set_t off;
    if (pthread_getaffinity_np(pthread_self(), sizeof *saved, saved) != 0 ||
        rfx_cpus_without(saved, cores, n, &off) == 0 || CPU_EQUAL(&off, saved))
        return false;
    return pthread_setaffinity_np(pthread_self(), sizeof off, &off) == 0;
}

/* The CPUs this start may use, for summary.json. */
static void note_cpus(struct rfx_engine *e)
{
    rfx_cpu_usable_list(e->cpus_usable, sizeof e->cpus_usable);
    e->cpus_online = rfx_cpu_online_count();
}

static void offpath_leave(bool changed, const cpu_set_t *saved)
{
    if (changed)
        pthread_setaffinity_np(pthread_self(), sizeof *saved, saved);
}

static int64_t lead_ns(const struct rfx_engine *e, const struct rfx_xthread *t)
{
    int64_t lead = (int64_t)e->cfg.lead_us * 1000;
    if (e->cfg.lead_max_us > e->cfg.lead_us) {
        int64_t want = t->wake_peak_ns + t->wake_peak_ns / 2;
        int64_t max = (int64_t)e->cfg.lead_max_us * 1000;
        if (want > lead)
            lead = want < max ? want : max;
    }
    if (e->cfg.frame_hz > 0) {
        int64_t quarter = (int64_t)(1e9 / e->cfg.frame_hz / 4);
        if (lead > quarter)
            lead = quarter;
    }
    return lead;
}

/* A timed sleep of this thread ended `late` ns after it was due. */
static void note_wake(struct rfx_xthread *t, int64_t late, int64_t lead)
{
    t->wake_peak_ns -= t->wake_peak_ns >> 10;
    if (late > t->wake_peak_ns)
        t->wake_peak_ns = late;
    if (lead > t->lead_max_used_ns)
        t->lead_max_used_ns = lead;
}

static void idle_wait(struct rfx_xthread *t)
{
    struct rfx_engine *e = t->e;
    uint64_t parks = rfx_waitpoint_park_calls(&t->data_wp);
    if (t->critical)
        rfx_cache_reader_offline();
    if (!t->critical) {
        /* Telemetry alone: park, drained on its timer. */
        rfx_wait(&t->data_wp, &t->cfg.wait, wake_cond, t, (int64_t)e->cfg.drain_us * 1000);
    } else if (e->cfg.frame_hz > 0 && t->cfg.wait.kind == RFX_WAIT_HYBRID) {
        /* The next frame is due at the next point of the source's schedule
         * (start + k periods) after now; next_sched_ns may still name the
         * frame just handled, so compute it. */
        int64_t now = rfx_now_ns();
        int64_t period = (int64_t)llround(1e9 / e->cfg.frame_hz);
        int64_t k = (now - e->sched0_ns) / period + 1;
        int64_t due = e->sched0_ns + k * period;
        int64_t lead = lead_ns(e, t);
        int64_t wake_at = due - lead;
        int rc = 0;
        if (wake_at > now) {
            struct rfx_wait_config park = {.kind = RFX_WAIT_PARK};
            rc = rfx_wait(&t->data_wp, &park, wake_cond, t, wake_at - now);
            /* Woken after wake_at, by the timer or by a frame that came
             * before the timer fired: either way the timer was at least this
             * late. (Learning only from time-outs, a thread whose frames
             * always beat its late timer would never raise its lead.) */
            int64_t woke = rfx_now_ns();
            if (woke > wake_at)
                note_wake(t, woke - wake_at, lead);
        }
        if (rc == -ETIMEDOUT || wake_at <= now) {
            struct rfx_wait_config spin = t->cfg.wait;
            spin.spin_ns += (uint32_t)(2 * lead);
            int64_t timeout = 100000000;
            if (t->rescues_source) {
                /* Parked after the spin, nothing wakes this thread when the
                 * source's frame goes unpushed (its thread stalled after
                 * taking the tick): wake in time to capture it. */
                int64_t late_at = atomic_load_explicit(&e->next_sched_ns, memory_order_relaxed) +
                                  (int64_t)e->cfg.rescue_us * 1000 + 1000;
                if (late_at - rfx_now_ns() < timeout)
                    timeout = late_at - rfx_now_ns();
                if (timeout < 1000)
                    timeout = 1000;
            }
            rfx_wait(&t->data_wp, &spin, wake_cond, t, timeout);
        }
    } else {
        rfx_wait(&t->data_wp, &t->cfg.wait, wake_cond, t, 100000000);
    }
    if (t->critical)
        rfx_cache_reader_online();
    t->parks += rfx_waitpoint_park_calls(&t->data_wp) - parks;
}

static bool space_cond(void *arg)
{
    struct rfx_xthread *t = arg;
    return rfx_spsc_ring_occupancy(t->out) < rfx_spsc_ring_capacity(t->out);
}

/* Send dropped frames to the telemetry thread (never refuses: sized for the pool). */
static void send_dropped(struct rfx_xthread *t, struct rfx_frame **f, size_t n)
{
    struct rfx_engine *e = t->e;
    size_t done = 0;
    while (done < n) {
        size_t k, dn, ev;
        k = rfx_ring_push_burst(t->drop, f + done, n - done, NULL, &ev, &dn);
        done += k;
        if (done < n)
            rfx_cpu_relax();
    }
    wake_consumer(&e->threads[e->n_threads - 1], t->drop);
}

static void forward(struct rfx_xthread *t, struct rfx_frame **frames, size_t n)
{
    struct rfx_engine *e = t->e;
    if (n == 0)
        return;
    if (t->hosts_telemetry) {
        size_t done = 0;
        while (done < n) { /* the pool ring holds every frame: never full for long */
            size_t k, dn, ev;
            k = rfx_ring_push_burst(e->pool, frames + done, n - done, NULL, &ev, &dn);
            done += k;
        }
        return;
    }
    struct rfx_xthread *next = &e->threads[t->idx + 1];
    struct rfx_frame *evicted[RFX_BURST_MAX * 2];
    size_t done = 0;
    while (done < n) {
        size_t n_ev = 0, n_dr = 0;
        size_t k = rfx_ring_push_burst(t->out, frames + done, n - done, evicted, &n_ev, &n_dr);
        if (n_ev) {
            for (size_t i = 0; i < n_ev; i++) {
                rfx_frame_drop(evicted[i], RFX_DROP_EVICTED);
                evicted[i]->reached = (uint8_t)(t->first_stage + t->n_stages);
            }
            send_dropped(t, evicted, n_ev);
        }
        if (n_dr) {
            struct rfx_frame **d = frames + done + (k - n_dr);
            for (size_t i = 0; i < n_dr; i++) {
                rfx_frame_drop(d[i], RFX_DROP_RING_FULL);
                d[i]->reached = (uint8_t)(t->first_stage + t->n_stages);
            }
            send_dropped(t, d, n_dr);
        }
        done += k;
        if (k)
            wake_consumer(next, t->out);
        if (done < n) {
            /* Block policy and full: wait for the consumer to make room. */
            struct rfx_wait_config w = t->cfg.wait;
            if (t->critical)
                rfx_cache_reader_offline();
            rfx_wait(&next->space_wp, &w, space_cond, t, 1000000);
            if (t->critical)
                rfx_cache_reader_online();
        }
    }
}

/*
 * Two readings of a spinning loop's clock far apart: the thread did not run
 * in between (the host took its vCPU, or the kernel ran something else on
 * its core). Counted, as the tail it makes is no fault of the pipeline's.
 */
static void note_spin_gap(struct rfx_xthread *t, int64_t gap)
{
    if (gap <= RFX_SPIN_GAP_NS)
        return;
    t->spin_gaps++;
    t->spin_gap_total_ns += gap;
    if (gap > t->spin_gap_max_ns)
        t->spin_gap_max_ns = gap;
}

/* Sleep until `due` less the lead, then spin to it; a thread whose wait is
 * `spin` never sleeps. False if stopped.
 *
 * Between frames the source holds no snapshot, so it must not hold up a
 * grace period either: it is an RCU reader offline while it sleeps, and
 * reports a quiescent state on each turn of its spin. Otherwise a strategic
 * worker's publication would wait up to a frame period for the next burst
 * (and sleep meanwhile, to be woken by the watchdog: the critical threads
 * are quiet readers, action_cache_impl.h). While it spins, it counts the
 * times its CPU was taken (note_spin_gap). */
static bool wait_until(struct rfx_xthread *t, int64_t due)
{
    struct rfx_engine *e = t->e;
    int64_t lead = t->cfg.wait.kind == RFX_WAIT_SPIN ? INT64_MAX : lead_ns(e, t);
    int64_t spun_at = 0; /* the last reading, if the loop spun after it */
    for (;;) {
        if (atomic_load_explicit(&e->stop, memory_order_acquire))
            return false;
        int64_t now = rfx_now_ns();
        if (spun_at)
            note_spin_gap(t, now - spun_at);
        if (now >= due)
            return true;
        if (due - now > lead) {
            int64_t until = due - lead;
            bool last = true;
            if (until - now > 5000000) {
                until = now + 5000000; /* re-check stop every 5 ms */
                last = false;
            }
            struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
            if (t->critical)
                rfx_cache_reader_offline();
            int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            int64_t woke = rfx_now_ns();
            if (t->critical)
                rfx_cache_reader_online();
            if (rc == 0 && last)
                note_wake(t, woke - until, lead);
            spun_at = 0;
        } else {
            if (t->critical)
                rfx_cache_quiescent();
            rfx_cpu_relax();
            spun_at = now;
        }
    }
}

/* Take thread t's stages for one burst (RFX_OWNER_SELF or _RESCUER);
 * false if another thread runs them now. */
static bool own(struct rfx_xthread *t, int who)
{
    int free_ = RFX_OWNER_FREE;
    return atomic_compare_exchange_strong_explicit(&t->owner, &free_, who, memory_order_acquire,
                                                   memory_order_relaxed);
}

static void disown(struct rfx_xthread *t)
{
    atomic_store_explicit(&t->owner, RFX_OWNER_FREE, memory_order_release);
}

/* One burst of thread t's input through its stages and on, run by t itself
 * (self) or by the thread before it in a rescue. Returns the frames taken. */
static size_t consume(struct rfx_xthread *t, bool self, struct rfx_frame **frames,
                      uint64_t *parks_seen)
{
    struct rfx_engine *e = t->e;
    size_t burst = e->cfg.burst, n = 0;
    if (t->in)
        n = rfx_ring_pop_burst(t->in, frames, burst);
    if (t->hosts_telemetry)
        for (int i = 0; i < e->n_threads - 1 && n < burst * 2; i++)
            n += rfx_ring_pop_burst(e->threads[i].drop, frames + n,
                                    burst * 2 - n > burst ? burst : burst * 2 - n);
    if (n == 0)
        return 0;
    if (t->idx > 0 && e->cfg.ring_policy == RFX_RING_BLOCK)
        rfx_wake(&t->space_wp);
    prefetch_headers(frames, n);
    if (self && t->parks != *parks_seen) {
        *parks_seen = t->parks;
        frames[0]->woke_mask |= (uint8_t)(1u << t->first_stage);
    }
    run_stages(t, self ? t : &e->threads[t->idx - 1], frames, n, rfx_now_ns());
    forward(t, frames, n);
    return n;
}

/* t's rescuer found a rescue due and t holding its word: count the call
 * t is in (or the gap between two) once, however often it tries. */
static void count_blocked(struct rfx_xthread *t)
{
    int64_t call = atomic_load_explicit(&t->busy_since, memory_order_relaxed);
    if (call != t->blocked_call) {
        t->blocked_call = call;
        rfx_count(&t->rescues_blocked, 1);
    }
}

/*
 * Thread t has just handed frames to the next thread, which is rescuable:
 * wait for it to take them, and if it has not within rescue_us (its CPU
 * taken away, or it woke late), run its stages on them here. If it holds
 * its stages, it is running: leave them to it.
 */
static void watch_next(struct rfx_xthread *t)
{
    struct rfx_engine *e = t->e;
    struct rfx_xthread *next = &e->threads[t->idx + 1];
    int64_t limit = rfx_now_ns() + (int64_t)e->cfg.rescue_us * 1000;
    while (rfx_spsc_ring_occupancy(t->out) > 0) {
        if (rfx_now_ns() < limit) {
            rfx_cache_quiescent();
            rfx_cpu_relax();
            continue;
        }
        if (!own(next, RFX_OWNER_RESCUER)) {
            count_blocked(next);
            return;
        }
        struct rfx_frame *frames[RFX_BURST_MAX * 2];
        uint64_t unused = 0;
        size_t k, got = 0;
        /* What is there now; more comes only from this thread. */
        for (int round = 0; round < 4 && (k = consume(next, false, frames, &unused)) > 0; round++)
            got += k;
        if (got) {
            rfx_count(&next->rescues, 1);
            rfx_count(&next->rescued, got);
        }
        disown(next);
        return;
    }
}

static int64_t source_period(const struct rfx_engine *e)
{
    return e->cfg.frame_hz > 0 ? (int64_t)llround(1e9 / e->cfg.frame_hz) : 0;
}

static int64_t source_end(const struct rfx_engine *e)
{
    return e->cfg.duration_s > 0 ? e->sched0_ns + (int64_t)llround(e->cfg.duration_s * 1e9)
                                 : INT64_MAX;
}

/* Take `want` frames from the source's spares and the pool, due at `sched`
 * (paced; full speed: now), capture them through thread t's stages on
 * thread hb (t, or the next thread capturing for it) and send them on.
 * Returns the frames taken from the pool (0: none free). */
static size_t capture_burst(struct rfx_xthread *t, struct rfx_xthread *hb, size_t want,
                            int64_t sched, int64_t period)
{
    struct rfx_engine *e = t->e;
    struct rfx_source *src = &e->src;
    struct rfx_frame *frames[RFX_BURST_MAX];
    size_t n = 0;
    while (n < want && src->n_spare > 0)
        frames[n++] = src->spare[--src->n_spare];
    size_t from_spare = n; /* their headers are here already (prefetched, or ours) */
    if (n < want)
        n += rfx_ring_pop_burst(e->pool, frames + n, want - n);
    if (n < want && period) {
        /* Due and no free frame: the frame is lost, and counted. */
        rfx_count(&e->captured, want - n);
        rfx_count(&e->dropped[RFX_DROP_POOL_EXHAUSTED], want - n);
        src->seq += want - n;
    }
    if (n == 0)
        return 0;
    prefetch_headers(frames + from_spare, n - from_spare);
    /* Full speed: the reading that began this burst is its capture
     * time (a clock reading costs ~40 ns here, a burst's share of it
     * not nothing); paced: now, after the wait for the due time. */
    int64_t now = period ? rfx_now_ns() : sched;
    int level = atomic_load_explicit(&e->level, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        struct rfx_frame *f = frames[i];
        f->seq = src->seq + i;
        f->scheduled_ns = period ? sched : now;
        f->capture_ns = now;
        f->context_key = f->pattern_key = f->cache_generation = 0;
        f->context_class = RFX_CLASS_ROUTINE;
        f->level = (uint8_t)level;
        f->reached = 0;
        f->action = 0;
        f->flags = 0;
        f->drop_reason = RFX_DROP_NONE;
        f->cache_result = RFX_CACHE_NONE;
        f->woke_mask = 0;
        f->rescued_mask = 0;
        RFX_PROBE2(frame_capture, f->seq, f->scheduled_ns);
    }
    /* The capture stage's time includes the header writes above. */
    run_stages(t, hb, frames, n, now);
    /* Capture may find no input for some slots: recycle them unseen. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (frames[i]->flags & RFX_FRAME_EMPTY)
            src->spare[src->n_spare++] = frames[i];
        else {
            frames[i]->seq = src->seq++;
            frames[kept++] = frames[i];
        }
    }
    if (kept == 0)
        return n;
    if (e->first_frame_ns == 0)
        e->first_frame_ns = rfx_now_ns();
    rfx_count(&e->captured, kept);
    if (t->hosts_telemetry) {
        /* One thread hosts every stage, telemetry last: the frames are
         * done and come straight back for the next burst, the one in
         * this thread's caches, instead of through the pool's ring to
         * the back of the queue (the pool is cycled through only when
         * frames are held elsewhere). */
        for (size_t i = kept; i-- > 0;)
            src->spare[src->n_spare++] = frames[i];
    } else {
        forward(t, frames, kept);
    }
    return n;
}

/* Thread t waited ns for its own stages while its rescuer ran them. */
static void note_rescuer_wait(struct rfx_xthread *t, int64_t ns)
{
    rfx_count(&t->rescuer_waits, 1);
    atomic_store_explicit(&t->rescuer_wait_ns,
                          atomic_load_explicit(&t->rescuer_wait_ns, memory_order_relaxed) + ns,
                          memory_order_relaxed);
    if (ns > atomic_load_explicit(&t->rescuer_wait_max_ns, memory_order_relaxed))
        atomic_store_explicit(&t->rescuer_wait_max_ns, ns, memory_order_relaxed);
}

/* Take thread t's own stages, waiting while another thread runs them. */
static void own_wait(struct rfx_xthread *t)
{
    if (own(t, RFX_OWNER_SELF))
        return;
    int64_t since = rfx_now_ns();
    do {
        rfx_cache_quiescent();
        rfx_cpu_relax();
    } while (!own(t, RFX_OWNER_SELF));
    note_rescuer_wait(t, rfx_now_ns() - since);
}

/*
 * Thread t (the one after the source's) finds the source's thread over
 * rescue_us late for its next frame: capture that frame here, if the
 * source's thread is not at it. True if the source moved on.
 */
static bool rescue_source(struct rfx_xthread *t)
{
    struct rfx_engine *e = t->e;
    struct rfx_xthread *s = &e->threads[0];
    if (!own(s, RFX_OWNER_RESCUER)) {
        count_blocked(s);
        return false;
    }
    struct rfx_source *src = &e->src;
    int64_t period = source_period(e);
    int64_t sched = e->sched0_ns + (int64_t)src->tick * period;
    bool over = sched >= source_end(e) || (e->cfg.max_frames && src->seq >= e->cfg.max_frames);
    bool go = !over && rfx_now_ns() - sched > (int64_t)e->cfg.rescue_us * 1000 &&
              rfx_spsc_ring_occupancy(s->out) < rfx_spsc_ring_capacity(s->out);
    if (over)
        atomic_store_explicit(&e->next_sched_ns, 0, memory_order_relaxed);
    if (go) {
        src->tick++;
        atomic_store_explicit(&e->next_sched_ns, sched + period, memory_order_relaxed);
        size_t n = capture_burst(s, t, 1, sched, period);
        rfx_count(&s->rescues, 1);
        rfx_count(&s->rescued, n);
    }
    disown(s);
    return go;
}

static void source_loop(struct rfx_xthread *t)
{
    struct rfx_engine *e = t->e;
    const struct rfx_engine_config *c = &e->cfg;
    struct rfx_source *src = &e->src;
    int64_t period = source_period(e);
    int64_t end = source_end(e);
    bool shared = t->rescuable; /* the next thread may capture for this one */
    bool held = false;          /* this thread holds its stages (shared only) */
    for (;;) {
        if (atomic_load_explicit(&e->stop, memory_order_acquire))
            break;
        if (shared && !held) {
            own_wait(t);
            held = true;
        }
        if (c->max_frames && src->seq >= c->max_frames)
            break;
        size_t want;
        int64_t sched;
        if (period) {
            uint64_t tick = src->tick;
            sched = e->sched0_ns + (int64_t)tick * period;
            if (sched >= end)
                break;
            atomic_store_explicit(&e->next_sched_ns, sched, memory_order_relaxed);
            if (held) {
                disown(t);
                held = false;
            }
            if (!wait_until(t, sched))
                break;
            while (atomic_load_explicit(&e->paused, memory_order_acquire) &&
                   !atomic_load_explicit(&e->stop, memory_order_acquire)) {
                /* Pause-based planning holds the game; the planners'
                 * publications go on meanwhile (see wait_until). */
                if (t->critical)
                    rfx_cache_quiescent();
                rfx_cpu_relax();
            }
            if (shared) {
                own_wait(t);
                held = true;
                if (src->tick != tick)
                    continue; /* the next thread captured it (rescue_source) */
            }
            src->tick++;
            atomic_store_explicit(&e->next_sched_ns, sched + period, memory_order_relaxed);
            want = 1;
        } else {
            sched = rfx_now_ns();
            if (sched >= end)
                break;
            want = c->burst;
            if (c->max_frames && c->max_frames - src->seq < want)
                want = (size_t)(c->max_frames - src->seq);
        }
        size_t n = capture_burst(t, t, want, sched, period);
        if (held) {
            disown(t);
            held = false;
        }
        if (n == 0) {
            if (!period) {
                /* Max rate: the pipeline is full; wait for frames. */
                if (t->critical)
                    rfx_cache_quiescent();
                rfx_cpu_relax();
            }
            continue;
        }
        if (t->rescues_next)
            watch_next(t);
        if (t->critical)
            rfx_cache_quiescent();
        if (!period && src->n_spare < want) {
            /* Full speed: take the next burst's frames now and prefetch
             * their headers, so that their lines (last written by the
             * telemetry thread) arrive while this burst is handed on. */
            size_t got =
                rfx_ring_pop_burst(e->pool, src->spare + src->n_spare, want - src->n_spare);
            prefetch_headers(src->spare + src->n_spare, got);
            src->n_spare += got;
        }
    }
    /* Keep the stages from here on: their fini comes next, and no frame is
     * captured after the source has ended. Frames held back are returned
     * by the last thread's pool only; the spare ones never left the
     * source, so nothing is in flight here. */
    atomic_store_explicit(&e->next_sched_ns, 0, memory_order_relaxed);
    if (shared && !held)
        own_wait(t);
}

static void consumer_loop(struct rfx_xthread *t)
{
    struct rfx_frame *frames[RFX_BURST_MAX * 2];
    uint64_t parks_seen = 0;
    int64_t waiting_since = 0; /* for its rescuer to give the stages back */
    for (;;) {
        size_t n;
        if (t->rescuable) {
            if (!own(t, RFX_OWNER_SELF)) {
                /* The thread before is running this burst for us. */
                if (!waiting_since)
                    waiting_since = rfx_now_ns();
                rfx_cache_quiescent();
                rfx_cpu_relax();
                continue;
            }
            if (waiting_since) {
                note_rescuer_wait(t, rfx_now_ns() - waiting_since);
                waiting_since = 0;
            }
            n = consume(t, true, frames, &parks_seen);
            disown(t);
        } else {
            n = consume(t, true, frames, &parks_seen);
        }
        if (n == 0) {
            if (upstream_done(t) && !inputs_ready(t))
                break;
            if (source_late(t) && rescue_source(t))
                continue;
            idle_wait(t);
            continue;
        }
        if (t->rescues_next)
            watch_next(t);
        if (t->critical)
            rfx_cache_quiescent();
    }
}

static void *thread_main(void *arg)
{
    struct rfx_xthread *t = arg;
    struct rfx_engine *e = t->e;
    char msg[160];
    rfx_thread_name_self(t->cfg.name);
    atomic_store_explicit(&t->ktid, (int)syscall(SYS_gettid), memory_order_relaxed);
    if (t->cfg.core >= 0 && rfx_thread_pin_self(t->cfg.core, msg, sizeof msg) != 0) {
        t->init_rc = -ENODEV;
        snprintf(t->init_msg, sizeof t->init_msg, "thread %s: %s", t->cfg.name, msg);
    }
    if (t->init_rc == 0) {
        int rc = rfx_thread_priority_self(&t->cfg.priority, msg, sizeof msg);
        if (rc == 1)
            fprintf(stderr, "reflex: warning: thread %s: %s\n", t->cfg.name, msg);
        else if (rc == 0 && t->cfg.priority.kind == RFX_PRIO_FIFO) {
            char why[400];
            long rt_runtime, rt_period;
            rfx_rt_throttle(&rt_runtime, &rt_period);
            if (rfx_spin_fifo_hazard(&t->cfg, rt_runtime, rt_period, why, sizeof why))
                fprintf(stderr, "reflex: warning: %s\n", why);
        } else if (rc < 0) {
            t->init_rc = rc;
            snprintf(t->init_msg, sizeof t->init_msg, "thread %s: %s", t->cfg.name, msg);
        }
    }
    if (t->critical) {
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* timed waits wake on time */
        /* Quiet: its quiescent states never wake a writer (a system
         * call); the watchdog does that (action_cache_impl.h). */
        if (rfx_cache_reader_register_quiet() != 0) {
            fprintf(stderr,
                    "reflex: warning: thread %s: 256 RCU readers in this process already; "
                    "it wakes the cache's writers itself (a system call when one waits)\n",
                    t->cfg.name);
            rfx_cache_reader_register();
        }
        rfx_on_critical_thread = true;
    }
    int inited = 0;
    for (; t->init_rc == 0 && inited < t->n_stages; inited++) {
        const struct rfx_stage_slot *s = &e->stages[t->first_stage + inited];
        struct rfx_stage_env env = {.engine = e,
                                    .cache = e->cache,
                                    .stage_index = t->first_stage + inited,
                                    .level = RFX_LEVEL_NONE,
                                    .now_ns = rfx_now_ns()};
        if (s->ops->init && s->ops->init(s->ctx, &env) != 0) {
            t->init_rc = -EIO;
            snprintf(t->init_msg, sizeof t->init_msg, "stage %s: init failed", s->name);
            break;
        }
    }
    prefault_stack();
    atomic_fetch_add_explicit(&e->ready, 1, memory_order_acq_rel);
    int go;
    while ((go = atomic_load_explicit(&e->go, memory_order_acquire)) == 0) {
        struct timespec ts = {0, GO_POLL_NS};
        nanosleep(&ts, NULL);
    }
    if (go > 0) {
        if (t->critical)
            rfx_cache_reader_online();
        t->alloc_known = e->alloc_tracking && rfx_thread_allocated(&t->alloc_start);
        t->faults_start = thread_faults();
        if (t->idx == 0)
            source_loop(t);
        else
            consumer_loop(t);
        t->faults_end = thread_faults();
        if (t->alloc_known)
            rfx_thread_allocated(&t->alloc_end);
    }
    for (int k = inited - 1; k >= 0; k--) {
        const struct rfx_stage_slot *s = &e->stages[t->first_stage + k];
        struct rfx_stage_env env = {.engine = e,
                                    .cache = e->cache,
                                    .stage_index = t->first_stage + k,
                                    .level = rfx_engine_level(e),
                                    .now_ns = rfx_now_ns()};
        if (s->ops->fini)
            s->ops->fini(s->ctx, &env);
    }
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    t->cpu_s = (double)cpu.tv_sec + cpu.tv_nsec * 1e-9;
    if (t->critical)
        rfx_cache_reader_unregister();
    atomic_store_explicit(&t->done, 1, memory_order_release);
    /* Tell whoever drains after us. */
    if (t->idx + 1 < e->n_threads) {
        rfx_wake(&e->threads[t->idx + 1].data_wp);
        rfx_wake(&e->threads[e->n_threads - 1].data_wp);
    }
    return NULL;
}

static int map_stages(struct rfx_engine *e, char *msg, size_t msglen)
{
    const struct rfx_engine_config *c = &e->cfg;
    int next = 0;
    for (int ti = 0; ti < c->n_threads; ti++) {
        const struct rfx_thread_config *tc = &c->threads[ti];
        struct rfx_xthread *t = &e->threads[ti];
        memset(t, 0, sizeof *t);
        t->e = e;
        t->idx = ti;
        t->cfg = *tc;
        t->first_stage = next;
        t->n_stages = tc->n_stages;
        for (int k = 0; k < tc->n_stages; k++, next++) {
            if (next >= e->n_stages || strcmp(e->stages[next].name, tc->stages[k]) != 0) {
                snprintf(msg, msglen,
                         "thread %s: stage '%s' is not stage %d of the pipeline (%s); threads "
                         "must host the stages in pipeline order",
                         tc->name, tc->stages[k], next + 1,
                         next < e->n_stages ? e->stages[next].name : "none left");
                return -EINVAL;
            }
            e->stages[next].thread = ti;
            if (strcmp(tc->stages[k], RFX_TELEMETRY_STAGE) != 0)
                t->critical = true;
        }
    }
    if (next != e->n_stages) {
        snprintf(msg, msglen, "stage '%s' is on no thread", e->stages[next].name);
        return -EINVAL;
    }
    e->n_threads = c->n_threads;
    e->threads[e->n_threads - 1].hosts_telemetry = true;
    /* Rescue: paced, between two critical threads, of stages that allow it:
     * a thread by the one before it; the source's by the one after it. */
    for (int ti = 0; ti < e->n_threads; ti++) {
        struct rfx_xthread *t = &e->threads[ti];
        int by = config_rescuer(c, ti);
        if (by < 0)
            continue;
        bool all = true;
        for (int k = 0; all && k < t->n_stages; k++)
            all = e->stages[t->first_stage + k].ops->rescuable != 0;
        t->rescuable = all;
        t->rescuer = by;
        if (ti > 0)
            e->threads[by].rescues_next = all;
        else if (all)
            e->threads[1].rescues_source = true;
    }
    return 0;
}

/* The run recorder (src/recorder.h): the header says what a replay needs to
 * set the same stages up; it sees every publication from here on, the warm
 * start's included. The ring holds two seconds of frames (at least 4096),
 * bounded to 64 MiB. */
static int record_create(struct rfx_engine *e, char *msg, size_t msglen)
{
    const struct rfx_engine_config *c = &e->cfg;
    struct rfx_record_header h = {
        .version = RFX_RECORD_VERSION,
        .payload_bytes = c->payload_bytes,
        .frame_hz = c->frame_hz,
        .seed = c->seed,
        .start_ns = e->start_call_ns,
        .n_stages = (uint32_t)e->n_stages,
        .cache_l1_slots = c->cache_l1_slots,
        .cache_l2_slots = c->cache_l2_slots,
        .miss_queue = c->miss_queue,
        .fail_prob = c->fail_prob,
    };
    for (int i = 0; i < e->n_stages; i++)
        snprintf(h.stages[i], RFX_NAME_MAX, "%s", e->stages[i].name);
    snprintf(h.source_kind, RFX_NAME_MAX, "%s",
             e->record_kind[0] ? e->record_kind : c->source_kind);
    snprintf(h.sink_kind, RFX_NAME_MAX, "%s", c->sink_kind);
    if (c->fail_prob > 0)
        snprintf(h.fail_stage, RFX_NAME_MAX, "%s", c->fail_stage);
    for (int i = 0; i < 5; i++)
        h.level_actions[i] = c->level_actions[i];
    size_t slot = 64 + (size_t)c->payload_bytes;
    double want = c->frame_hz > 0 ? 2 * c->frame_hz : 1e9;
    double cap = (double)(64u << 20) / (double)slot;
    uint32_t slots = (uint32_t)(want < cap ? (want > 4096 ? want : 4096) : cap);
    int rc = rfx_recorder_create(c->record_path, &h, slots, &e->recorder, msg, msglen);
    if (rc == 0)
        rfx_action_cache_observe(e->cache, rfx_recorder_publication, e->recorder);
    return rc;
}

/* What the pipeline's keys mean: its first stage's nonzero key_schema. */
static uint32_t key_schema(const struct rfx_engine *e)
{
    for (int i = 0; i < e->n_stages; i++)
        if (e->stages[i].ops->key_schema)
            return e->stages[i].ops->key_schema;
    return 0;
}

int rfx_engine_start(struct rfx_engine *e, char *msg, size_t msglen)
{
    char dummy[8];
    if (!msg) {
        msg = dummy;
        msglen = sizeof dummy;
    }
    msg[0] = 0;
    if (e)
        e->start_call_ns = rfx_now_ns();
    if (!e || e->started) {
        snprintf(msg, msglen, "engine missing or already started");
        return -EINVAL;
    }
    if (e->n_stages < 1) {
        snprintf(msg, msglen, "no stages registered");
        return -EINVAL;
    }
    map_text();
    int rc = rfx_telemetry_create(e, &e->tel, msg, msglen);
    if (rc)
        return rc;
    struct rfx_stage_slot *ts = &e->stages[e->n_stages++];
    snprintf(ts->name, sizeof ts->name, RFX_TELEMETRY_STAGE);
    ts->ops = &rfx_telemetry_ops;
    ts->ctx = e->tel;
    const char *names[RFX_MAX_STAGES] = {0};
    for (int i = 0; i < e->n_stages; i++)
        names[i] = e->stages[i].name;
    note_cpus(e);
    if ((rc = rfx_engine_layout_resolve(&e->cfg, names, e->n_stages, 0, msg, msglen)) != 0)
        return rc;
    if ((rc = rfx_config_validate(&e->cfg, NULL, NULL, NULL, msg, msglen)) != 0)
        return rc;
    if ((rc = map_stages(e, msg, msglen)) != 0)
        return rc;
    /* The endpoint first: a port in use fails the start before any thread. */
    if (e->cfg.metrics_listen[0]) {
        cpu_set_t saved;
        bool moved = offpath_enter(e, &saved);
        rc = rfx_metrics_server_start(e->cfg.metrics_listen, &e->metrics, msg, msglen);
        offpath_leave(moved, &saved);
        if (rc != 0)
            return rc;
        fprintf(stderr, "reflex: metrics on http://%s:%d/metrics\n",
                rfx_metrics_server_host(e->metrics), rfx_metrics_server_port(e->metrics));
    }
    e->fault_stage = -1;
    e->stall_stage = -1;
    e->fail_stage = -1;
    e->fail_rng = e->cfg.seed * 0xD1B54A32D192ED03ull + 7;
    e->sink_stage = e->n_stages - 2; /* the last stage before telemetry */
    e->fault_rng = e->cfg.seed * 0x9E3779B97F4A7C15ull + 1;
    rfx_breaker_init(&e->breaker, e->cfg.breaker_failures,
                     (int64_t)e->cfg.breaker_reset_ms * 1000000, e->cfg.breaker_successes);
    const struct {
        const char *key, *name;
        bool on;
        int *idx;
    } fs[] = {{"stall_stage", e->cfg.stall_stage, e->cfg.stall_ms > 0, &e->stall_stage},
              {"fail_stage", e->cfg.fail_stage, e->cfg.fail_prob > 0, &e->fail_stage},
              {"stage", e->cfg.fault_stage, e->cfg.fault_work_us > 0, &e->fault_stage}};
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
        if (!fs[k].name[0] || !fs[k].on)
            continue;
        for (int i = 0; i < e->n_stages; i++)
            if (!strcmp(e->stages[i].name, fs[k].name))
                *fs[k].idx = i;
        if (*fs[k].idx < 0) {
            snprintf(msg, msglen, "fault.%s: no stage named '%s'", fs[k].key, fs[k].name);
            return -EINVAL;
        }
    }
    for (int i = 0; i < e->n_threads; i++) {
        struct rfx_xthread *t = &e->threads[i];
        rfx_waitpoint_init(&t->data_wp);
        rfx_waitpoint_init(&t->space_wp);
        atomic_init(&t->done, 0);
        atomic_init(&t->ktid, 0);
        atomic_init(&t->busy_since, 0);
        atomic_init(&t->busy_stage, -1);
        atomic_init(&t->busy_seq, 0);
        atomic_init(&t->owner, RFX_OWNER_FREE);
        atomic_init(&t->rescues, 0);
        atomic_init(&t->rescued, 0);
        atomic_init(&t->rescues_blocked, 0);
        atomic_init(&t->rescuer_waits, 0);
        atomic_init(&t->rescuer_wait_ns, 0);
        atomic_init(&t->rescuer_wait_max_ns, 0);
        t->blocked_call = -1;
        if (i + 1 < e->n_threads) {
            if ((rc = rfx_spsc_ring_create(e->cfg.ring_capacity, sizeof(void *), e->cfg.ring_policy,
                                           &t->out)) != 0 ||
                (rc = rfx_spsc_ring_create(2 * e->cfg.pool_frames, sizeof(void *), RFX_RING_BLOCK,
                                           &t->drop)) != 0) {
                snprintf(msg, msglen, "ring allocation failed");
                return rc;
            }
            e->threads[i + 1].in = t->out;
        }
    }
    if (e->cfg.record_path[0] && (rc = record_create(e, msg, msglen)) != 0)
        return rc;
    if ((rc = rfx_strategic_create(e, &e->strat, msg, msglen)) != 0)
        return rc;
    if (e->cfg.persist_path[0]) {
        /* Warm start: a snapshot that checks out is published before the
         * first frame; anything else is reported and ignored. */
        struct rfx_cache_entry *l1 = NULL, *l2 = NULL;
        size_t n1 = 0, n2 = 0;
        char why[300];
        int lr = rfx_persist_read(e->cfg.persist_path, key_schema(e), &l1, &n1, &l2, &n2, why,
                                  sizeof why);
        if (lr == 0) {
            /* Ages restart: the file's times come from another process's clock. */
            int64_t now = rfx_now_ns();
            for (size_t i = 0; i < n1; i++)
                l1[i].created_ns = now;
            for (size_t i = 0; i < n2; i++)
                l2[i].created_ns = now;
            int64_t g = rfx_action_cache_publish(e->cache, l1, n1, l2, n2);
            if (g > 0) {
                e->loaded_l1 = n1;
                e->loaded_l2 = n2;
                fprintf(stderr, "reflex: warm start: %zu L1 and %zu L2 entries from %s\n", n1, n2,
                        e->cfg.persist_path);
            } else {
                snprintf(e->load_error, sizeof e->load_error, "%s: cannot publish (%s)",
                         e->cfg.persist_path, strerror((int)-g));
            }
        } else if (lr != -ENOENT) {
            snprintf(e->load_error, sizeof e->load_error, "%s", why);
        }
        if (e->load_error[0])
            fprintf(stderr, "reflex: %s; cold start\n", e->load_error);
        free(l1);
        free(l2);
    }
    if (e->cfg.lock_memory && rfx_memory_lock(msg, msglen) != 0)
        fprintf(stderr, "reflex: warning: %s\n", msg);
    hold_cpu_latency(e);
    e->started = true;
    for (int i = 0; i < e->n_threads; i++) {
        /* A telemetry-only thread left unpinned is off-path too. */
        cpu_set_t saved;
        bool moved = !e->threads[i].critical && e->threads[i].cfg.core < 0 &&
                     offpath_enter(e, &saved);
        int prc = pthread_create(&e->threads[i].tid, NULL, thread_main, &e->threads[i]);
        offpath_leave(moved, &saved);
        if (prc != 0) {
            atomic_store(&e->go, -1);
            snprintf(msg, msglen, "cannot create thread %s", e->threads[i].cfg.name);
            for (int j = 0; j < i; j++)
                pthread_join(e->threads[j].tid, NULL);
            e->waited = true;
            return -EAGAIN;
        }
        e->threads[i].started = true;
    }
    while (atomic_load_explicit(&e->ready, memory_order_acquire) < e->n_threads) {
        struct timespec pause = {0, 100000};
        nanosleep(&pause, NULL);
    }
    for (int i = 0; i < e->n_threads; i++) {
        if (e->threads[i].init_rc != 0) {
            snprintf(msg, msglen, "%s", e->threads[i].init_msg);
            atomic_store(&e->go, -1);
            for (int j = 0; j < e->n_threads; j++)
                pthread_join(e->threads[j].tid, NULL);
            e->waited = true;
            return e->threads[i].init_rc;
        }
    }
    e->start_ns = rfx_now_ns(); /* before the planners: their faults read it */
    cpu_set_t saved;
    bool moved = offpath_enter(e, &saved);
    rc = rfx_strategic_start(e->strat, msg, msglen);
    /* The watchdog before the reporter: the reporter reads e->watchdog. */
    if (rc == 0 && (rc = rfx_watchdog_start(e, &e->watchdog, msg, msglen)) == 0)
        rc = rfx_telemetry_start(e->tel, e->start_ns, msg, msglen);
    if (rc == 0 && e->recorder)
        rc = rfx_recorder_start(e->recorder, msg, msglen);
    offpath_leave(moved, &saved);
    if (rc != 0) {
        atomic_store(&e->go, -1);
        for (int j = 0; j < e->n_threads; j++)
            pthread_join(e->threads[j].tid, NULL);
        e->waited = true;
        return rc;
    }
    /* The cgroup's CPU limit: a warning if spinning threads alone spend it,
     * and its throttle counters from here to rfx_engine_wait. */
    if (rfx_cpu_quota_read(&e->quota) == 0) {
        char why[700];
        if (rfx_spin_quota_hazard(&e->cfg, &e->quota, why, sizeof why))
            fprintf(stderr, "reflex: warning: %s\n", why);
        e->throttle_known = rfx_cpu_throttle_read(&e->quota, &e->throttle_start) == 0;
    }
    e->released_ns = rfx_now_ns();
    /* Frame 0 is due once every thread has seen `go` (a poll's period, its
     * timer slack) and the source has had its lead: it is not late for the
     * time the off-path threads took to start. */
    e->sched0_ns = e->released_ns + 2 * GO_POLL_NS + (int64_t)e->cfg.lead_us * 1000;
    atomic_store_explicit(&e->go, 1, memory_order_release);
    return 0;
}

int rfx_engine_wait(struct rfx_engine *e)
{
    return rfx_engine_wait_for(e, -1);
}

int rfx_engine_wait_for(struct rfx_engine *e, int64_t timeout_ns)
{
    if (!e || !e->started)
        return -EINVAL;
    if (e->waited)
        return 0;
    struct timespec until;
    if (timeout_ns >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + timeout_ns % 1000000000;
        until.tv_sec += (time_t)(timeout_ns / 1000000000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
    }
    /* Threads joined by an earlier call that timed out stay joined. */
    for (; e->n_joined < e->n_threads; e->n_joined++) {
        pthread_t tid = e->threads[e->n_joined].tid;
        int rc = timeout_ns < 0 ? pthread_join(tid, NULL)
                                : pthread_clockjoin_np(tid, NULL, CLOCK_MONOTONIC, &until);
        if (rc == ETIMEDOUT)
            return -ETIMEDOUT;
    }
    e->end_ns = rfx_now_ns();
    if (e->throttle_known)
        e->throttle_known = rfx_cpu_throttle_read(&e->quota, &e->throttle_end) == 0;
    release_cpu_latency(e);
    rfx_watchdog_stop(e->watchdog);
    rfx_telemetry_stop(e->tel);
    rfx_strategic_stop(e->strat);
    if (e->recorder) { /* every frame and publication is in: the end record */
        rfx_action_cache_observe(e->cache, NULL, NULL);
        if (rfx_recorder_finish(e->recorder, e->end_ns, e->record_error, sizeof e->record_error) !=
            0)
            fprintf(stderr, "reflex: %s\n", e->record_error);
    }
    rfx_engine_persist(e); /* the clean stop's snapshot */
    e->waited = true;
    return 0;
}

void rfx_engine_persist(struct rfx_engine *e)
{
    if (!e->cfg.persist_path[0])
        return;
    struct rfx_cache_entry *l1, *l2;
    size_t n1, n2;
    char why[300];
    int rc = rfx_action_cache_entries(e->cache, &l1, &n1, &l2, &n2);
    if (rc == 0) {
        rc = rfx_persist_write(e->cfg.persist_path, key_schema(e), l1, n1, l2, n2, why, sizeof why);
        free(l1);
        free(l2);
    } else {
        snprintf(why, sizeof why, "cannot copy the cache (%s)", strerror(-rc));
    }
    if (rc == 0) {
        e->persist_writes++;
    } else {
        e->persist_errors++;
        snprintf(e->persist_error, sizeof e->persist_error, "%s", why);
        fprintf(stderr, "reflex: persisting the cache: %s\n", why);
    }
}

int rfx_engine_write_bundle(struct rfx_engine *e, char *msg, size_t msglen)
{
    if (!e || !e->waited || !e->tel) {
        if (msg && msglen)
            snprintf(msg, msglen, "%s",
                     !e ? "no engine"
                     : !e->started || !e->tel
                         ? "the engine was never started: no run to write"
                         : "the run has not ended: call rfx_engine_wait first");
        return -EINVAL;
    }
    return rfx_telemetry_write_bundle(e->tel, e->cfg.out_dir, msg, msglen);
}
