/*
 * A short pipeline run under whatever sanitizer the build has (TSan, ASan):
 * the synthetic source at full speed through a drop-oldest ring, then the
 * demo game at 200 Hz, each with strategic workers publishing snapshots, then
 * the demo with faults (stalls, a failing stage and sink, a hung planner), a
 * short TTL, generation limits and persistence; then two demo engines side
 * by side in one process; then the demo with one of its two critical
 * threads held off its CPU for 5 ms every 20 ms (a signal handler that
 * spins, as a host taking the vCPU looks from inside), so that the other
 * runs its stages for it (rescue, engine.rescue_us) while the planners
 * publish: decide's thread, then the source's; then each thread of a
 * layout with three critical threads in turn (the middle one rescues both
 * others and is rescued by the first). Some of the held thread's frames
 * must have been rescued.
 * Checks the accounting identity with in flight 0 after a clean stop; the
 * demo runs record themselves (the recorder's ring and publication hook under
 * the sanitizer), and their records must replay with every decision identical
 * and every frame that reached telemetry in the record or counted lost.
 *
 * usage: pipeline_short [--long]   (1 s per run; 0.5 s reduced; 20 s long)
 */
#include "builtin.h"
#include "engine_impl.h"
#include "replay.h"

#include <reflex/config.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* The run's record: every frame that reached telemetry is in it or counted
 * lost, and its replay finds every decision identical. */
static bool replay_ok(const char *what, const char *path, const struct rfx_engine_counts *c)
{
    struct rfx_replay_result res;
    char msg[512];
    int rc = rfx_replay_builtin(path, NULL, NULL, &res, msg, sizeof msg);
    uint64_t framed = c->captured - c->dropped[RFX_DROP_POOL_EXHAUSTED];
    bool ok =
        rc == 0 && res.differ == 0 && res.compared > 0 && res.frames + res.frames_lost == framed;
    printf("pipeline_short: %s: record: %llu frames (+ %llu lost) of %llu, %llu publications; "
           "replay: %llu compared, %llu identical, %llu differ, %llu fault drops%s%s: %s\n",
           what, (unsigned long long)res.frames, (unsigned long long)res.frames_lost,
           (unsigned long long)framed, (unsigned long long)res.publications,
           (unsigned long long)res.compared, (unsigned long long)res.identical,
           (unsigned long long)res.differ, (unsigned long long)res.fault_drops, rc ? "; " : "",
           rc ? msg : "", ok ? "ok" : "FAILED");
    unlink(path);
    return ok;
}

/* One engine with the built-in stages, its bundle and record under a name
 * of its own, so that two can run in one process at once. */
struct job {
    const char *what;
    struct rfx_engine_config cfg;
    struct rfx_engine *e;
    struct rfx_builtin *b;
    bool record;
    int held; /* the thread run_held holds, or -1 */
};

static int start(struct job *j, const char *what, const char *tag, double seconds,
                 const char *const *sets, int n_sets)
{
    char msg[512];
    j->what = what;
    j->held = -1;
    if (rfx_config_load(NULL, sets, n_sets, rfx_builtin_stages, 5, &j->cfg, msg, sizeof msg)) {
        fprintf(stderr, "pipeline_short: %s: %s\n", what, msg);
        return 1;
    }
    j->cfg.duration_s = seconds;
    snprintf(j->cfg.out_dir, sizeof j->cfg.out_dir, "/tmp/rfx-pipeline-short-%d-%s", (int)getpid(),
             tag);
    j->record = !strcmp(j->cfg.source_kind, "demo");
    if (j->record)
        snprintf(j->cfg.record_path, sizeof j->cfg.record_path, "/tmp/rfx-pipeline-short-%d-%s.rfx",
                 (int)getpid(), tag);
    if (rfx_engine_create(&j->cfg, &j->e) ||
        rfx_builtin_setup(j->e, &j->cfg, &j->b, msg, sizeof msg) ||
        rfx_engine_start(j->e, msg, sizeof msg)) {
        fprintf(stderr, "pipeline_short: %s: start: %s\n", what, msg);
        return 1;
    }
    return 0;
}

/* invalidate: halfway through, drop every entry published so far
 * (rfx_engine_cache_invalidate_before) and require that some went. */
static int finish(struct job *j, bool invalidate)
{
    const char *what = j->what;
    struct rfx_engine *e = j->e;
    char msg[512];
    uint64_t cut = 0, held = 0;
    if (invalidate) {
        usleep((useconds_t)(j->cfg.duration_s * 5e5));
        struct rfx_action_cache_stats now;
        rfx_action_cache_stats(rfx_engine_cache(e), &now);
        cut = now.generation + 1;
        held = now.l1_entries + now.l2_entries;
        rfx_engine_cache_invalidate_before(e, cut);
    }
    rfx_engine_wait(e);
    rfx_builtin_report(j->b, e, NULL);
    uint64_t rescued = 0, rescues = 0;
    for (int i = 0; i < e->n_threads; i++) {
        rescued += e->threads[i].rescued;
        rescues += e->threads[i].rescues;
    }
    int rc = rfx_engine_write_bundle(e, msg, sizeof msg);
    struct rfx_engine_counts c;
    rfx_engine_counts(e, &c);
    uint64_t dropped = 0;
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        dropped += c.dropped[r];
    struct rfx_action_cache_stats cs;
    rfx_action_cache_stats(rfx_engine_cache(e), &cs);
    bool ok = rc == 0 && c.captured > 0 && c.in_flight == 0 && c.captured == c.executed + dropped;
    uint64_t by_gen = atomic_load(&e->invalidated_generation);
    if (invalidate) {
        /* rfx_engine_cache_invalidate_before's promise: no entry first
         * published before the cut survives. A held entry either went by
         * generation or was re-planned after the cut (a newer copy, a newer
         * generation, replaced it): which one is the planners' timing. */
        struct rfx_cache_entry *l1 = NULL, *l2 = NULL;
        size_t n1 = 0, n2 = 0, older = 0;
        bool listed = rfx_action_cache_entries(rfx_engine_cache(e), &l1, &n1, &l2, &n2) == 0;
        for (size_t i = 0; listed && i < n1; i++)
            older += l1[i].generation < cut;
        for (size_t i = 0; listed && i < n2; i++)
            older += l2[i].generation < cut;
        free(l1);
        free(l2);
        bool went = listed && older == 0 && held > 0;
        printf("pipeline_short: %s: invalidate_before(%llu) with %llu entries held: %llu dropped "
               "by generation, the rest re-planned; %zu of the %zu left are older than the "
               "cut: %s\n",
               what, (unsigned long long)cut, (unsigned long long)held,
               (unsigned long long)by_gen, older, n1 + n2, went ? "ok" : "FAILED");
        ok = ok && went;
    }
    printf("pipeline_short: %s: captured %llu = executed %llu + dropped %llu (evicted %llu), "
           "in flight %llu; %llu publications: %s\n",
           what, (unsigned long long)c.captured, (unsigned long long)c.executed,
           (unsigned long long)dropped, (unsigned long long)c.dropped[RFX_DROP_EVICTED],
           (unsigned long long)c.in_flight, (unsigned long long)cs.publications,
           ok ? "ok" : "FAILED");
    if (j->held >= 0) {
        uint64_t of_held = e->threads[j->held].rescued;
        bool some = of_held > 0;
        printf("pipeline_short: %s: %llu frames rescued in %llu bursts, %llu of them rfx-%s's: "
               "%s\n",
               what, (unsigned long long)rescued, (unsigned long long)rescues,
               (unsigned long long)of_held, j->cfg.threads[j->held].name, some ? "ok" : "FAILED");
        ok = ok && some;
    }
    if (j->record && cs.publications == 0) {
        printf("pipeline_short: %s: no snapshot published: FAILED\n", what);
        ok = false;
    }
    rfx_engine_destroy(e);
    rfx_builtin_destroy(j->b);
    if (j->record && !replay_ok(what, j->cfg.record_path, &c))
        ok = false;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", j->cfg.out_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pipeline_short: could not remove %s\n", j->cfg.out_dir);
    return ok ? 0 : 1;
}

static struct rfx_engine *held_engine;
static int held_idx;

/* On the held thread: stay off the pipeline for 5 ms, unless it is running
 * stages, its own or the other's (a hold in a stage call is no rescue's to
 * cure). */
static void hold_thread(int sig)
{
    (void)sig;
    struct rfx_engine *e = held_engine;
    if (atomic_load(&e->threads[held_idx].owner) == RFX_OWNER_SELF)
        return;
    for (int i = 0; i < e->n_threads; i++)
        if (i != held_idx && atomic_load(&e->threads[i].owner) == RFX_OWNER_RESCUER)
            return; /* perhaps by the held thread */
    int64_t end = rfx_now_ns() + 5000000;
    while (rfx_now_ns() < end)
        ;
}

static int run_held(const char *what, int idx, double seconds, const char *const *sets, int n_sets)
{
    struct job j;
    if (start(&j, what, "held", seconds, sets, n_sets))
        return 1;
    held_engine = j.e;
    held_idx = idx;
    j.held = idx;
    struct sigaction sa = {.sa_handler = hold_thread};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    int tid;
    while ((tid = atomic_load(&j.e->threads[idx].ktid)) == 0)
        usleep(1000);
    while (rfx_engine_running(j.e)) {
        usleep(20000);
        syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
    }
    int rc = finish(&j, false);
    signal(SIGUSR1, SIG_DFL);
    return rc;
}

static int run(const char *what, double seconds, const char *const *sets, int n_sets,
               bool invalidate)
{
    struct job j;
    return start(&j, what, "one", seconds, sets, n_sets) ? 1 : finish(&j, invalidate);
}

/* Two engines in one process at once, each with its planners: they share
 * liburcu's grace periods and the process's reader list, nothing else. */
static int run_two(double seconds, const char *const *sets, int n_sets)
{
    struct job a, b;
    if (start(&a, "two engines at once, first", "a", seconds, sets, n_sets))
        return 1;
    int fails = start(&b, "two engines at once, second", "b", seconds, sets, n_sets);
    fails += finish(&a, false);
    if (!fails)
        fails += finish(&b, false);
    return fails;
}

int main(int argc, char **argv)
{
    double s = getenv("RFX_STRESS_REDUCED") ? 0.5 : 1;
    if (getenv("RFX_STRESS_LONG") || (argc > 1 && !strcmp(argv[1], "--long")))
        s = 20;
    static const char *const syn[] = {
        "engine.frame_hz=0",   "source.kind=synthetic",     "sink.kind=null",
        "ring.capacity=16",    "ring.overflow=drop-oldest", "strategic.hz=4",
        "strategic.max_hz=50", "engine.pool_frames=256"};
    static const char *const demo[] = {"engine.frame_hz=200", "strategic.hz=20",
                                       "strategic.max_hz=50", "strategic.workers=2"};
    /* The demo again with every fault and the off-path machinery busy:
     * stalls (watchdog, alerts, ladder), a failing sink (breaker), a short
     * TTL and hits (cache rules), persistence (reporter writes, warm start). */
    char persist[96];
    snprintf(persist, sizeof persist, "cache.persist_path=/tmp/rfx-pipeline-short-%d.rfxc",
             (int)getpid());
    const char *const faults[] = {"engine.frame_hz=200",
                                  "strategic.hz=20",
                                  "strategic.max_hz=50",
                                  "strategic.workers=2",
                                  "cache.ttl_s=0.2",
                                  "cache.persist_s=0.2",
                                  persist,
                                  "fault.sink_fail_prob=0.3",
                                  "fault.fail_stage=decide",
                                  "fault.fail_prob=0.05",
                                  "fault.planner_hang_ms=30",
                                  "watchdog.planner_stall_ms=10",
                                  "cache.max_generations=4",
                                  "fault.stall_stage=pattern",
                                  "fault.stall_ms=12",
                                  "fault.stall_every=25",
                                  "degrade.recover_s=0.2",
                                  "telemetry.interval_s=0.1"};
    int nf = (int)(sizeof faults / sizeof *faults);
    int fails = run("synthetic, full speed, drop-oldest", s, syn, 8, false);
    fails += run("demo at 200 Hz, 2 planners", s, demo, 4, true);
    fails += run("demo with every fault, TTL, generations, persistence", s, faults, nf,
                 false);
    fails += run("the same, warm", s, faults, nf, false);
    fails += run_two(s, demo, 4);
    /* The demo's settings, then a layout: two critical threads, then three.
     * Each is held in turn. Of three, the middle one is rescued by the
     * source's thread and rescues both others (the source's, and the last,
     * which hosts telemetry and its drop rings). */
    const char *held[7] = {demo[0],
                           demo[1],
                           demo[2],
                           demo[3],
                           "thread.rt0.stages=capture,pattern",
                           "thread.rt1.stages=decide,execute,telemetry"};
    fails += run_held("demo at 200 Hz, decide's thread held (rescue)", 1, s, held, 6);
    fails += run_held("demo at 200 Hz, the source's thread held (rescue)", 0, s, held, 6);
    held[5] = "thread.rt1.stages=decide";
    held[6] = "thread.rt2.stages=execute,telemetry";
    fails += run_held("three critical threads, the middle one held (rescue)", 1, s, held, 7);
    fails += run_held("three critical threads, the last one held (rescue)", 2, s, held, 7);
    fails += run_held("three critical threads, the source's held (rescue)", 0, s, held, 7);
    unlink(persist + strlen("cache.persist_path="));
    return fails ? 1 : 0;
}
