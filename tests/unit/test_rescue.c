/*
 * Rescue (engine.rescue_us): when the thread hosting decide..telemetry is
 * held off its CPU, the critical thread before it runs those stages for it.
 *
 * The test holds rfx-rt1 in a signal handler for HOLD_MS at a time, which is
 * what a host taking its vCPU looks like from inside the thread, at moments
 * when rt1 is not running its stages (a hold in the middle of a stage call
 * cannot be rescued, and is skipped). Frames due meanwhile must still reach
 * decide within a fraction of the hold, each once and in order, and the
 * engine's count of rescued frames must match the execute calls made on
 * another thread. With rescue off, the same holds must show in the wait: so
 * the harness does hold the thread.
 */
#include "engine_impl.h"
#include "test_out_dir.h"

#include <reflex/config.h>

#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *const names[] = {"capture", "pattern", "decide", "execute", "telemetry"};

enum { HOLDS = 10, HOLD_MS = 20, GAP_MS = 80 };

struct seen {
    int rt1;           /* rt1's kernel thread id */
    uint64_t next_seq; /* the seq execute expects next */
    uint64_t executed, out_of_order, on_other_thread;
    int64_t max_wait_ns; /* from pattern's end (on rt0) to decide's start */
    uint64_t long_waits; /* waits over half a hold */
};

static struct rfx_engine *g_engine;
static _Atomic int g_held, g_skipped;

static void hold(int sig)
{
    (void)sig;
    /* Only a thread that is not running its stages can be rescued. */
    if (atomic_load(&g_engine->threads[1].owner) == RFX_OWNER_SELF) {
        atomic_fetch_add(&g_skipped, 1);
        return;
    }
    atomic_fetch_add(&g_held, 1);
    int64_t end = rfx_now_ns() + (int64_t)HOLD_MS * 1000000;
    while (rfx_now_ns() < end)
        ;
}

static void nop(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)f, (void)n, (void)env;
}

static void execute(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    struct seen *x = c;
    bool other = (int)syscall(SYS_gettid) != x->rt1;
    for (size_t i = 0; i < n; i++) {
        if (f[i]->seq != x->next_seq)
            x->out_of_order++;
        x->next_seq = f[i]->seq + 1;
        int64_t wait = (uint32_t)(f[i]->enter_at[2] - f[i]->exit_at[1]);
        if (wait > x->max_wait_ns)
            x->max_wait_ns = wait;
        x->long_waits += wait > (int64_t)HOLD_MS * 1000000 / 2;
        x->executed++;
        x->on_other_thread += other;
    }
}

/* A 1 kHz run with rt1 held HOLDS times; returns the engine's rescued count. */
static uint64_t run(const char *rescue, struct seen *x)
{
    const char *sets[] = {"engine.frame_hz=1000", "strategic.workers=0", rescue,
                          "thread.rt0.stages=capture,pattern",
                          "thread.rt1.stages=decide,execute,telemetry"};
    struct rfx_engine_config cfg;
    char msg[512];
    cr_assert_eq(rfx_config_load(NULL, sets, 5, names, 5, &cfg, msg, sizeof msg), 0, "%s", msg);
    cfg.duration_s = (HOLDS + 2) * (HOLD_MS + GAP_MS) / 1000.0;
    test_out_dir(&cfg);
    struct rfx_engine *e;
    cr_assert_eq(rfx_engine_create(&cfg, &e), 0);
    static const struct rfx_stage_ops ops[4] = {{.process = nop},
                                                {.process = nop, .rescuable = 1},
                                                {.process = nop, .rescuable = 1},
                                                {.process = execute, .rescuable = 1}};
    for (int s = 0; s < 4; s++)
        cr_assert_eq(rfx_engine_add_stage(e, names[s], &ops[s], x), 0);
    g_engine = e;
    atomic_store(&g_held, 0);
    atomic_store(&g_skipped, 0);
    struct sigaction sa = {.sa_handler = hold};
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    cr_assert_eq(rfx_engine_start(e, msg, sizeof msg), 0, "%s", msg);
    while ((x->rt1 = atomic_load(&e->threads[1].ktid)) == 0)
        usleep(1000);
    for (int i = 0; i < HOLDS; i++) {
        struct timespec gap = {0, GAP_MS * 1000000L};
        nanosleep(&gap, NULL);
        syscall(SYS_tgkill, getpid(), x->rt1, SIGUSR1);
    }
    rfx_engine_wait(e);
    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    cr_expect_eq(k.in_flight, 0);
    cr_expect_eq(k.captured, k.executed, "captured %llu, executed %llu",
                 (unsigned long long)k.captured, (unsigned long long)k.executed);
    cr_expect_eq(x->executed, k.executed);
    cr_expect_eq(x->out_of_order, 0, "%llu frames reached execute out of order",
                 (unsigned long long)x->out_of_order);
    cr_expect_geq(atomic_load(&g_held), HOLDS / 2, "rt1 was held %d times (%d skipped)",
                  atomic_load(&g_held), atomic_load(&g_skipped));
    uint64_t rescued = e->threads[1].rescued;
    cr_log_info("%s: rt1 held %d times (%d skipped), %llu frames, %llu rescued in %llu bursts, "
                "longest wait for decide %.3f ms, %llu over %d ms",
                rescue, atomic_load(&g_held), atomic_load(&g_skipped),
                (unsigned long long)x->executed, (unsigned long long)rescued,
                (unsigned long long)e->threads[1].rescues, x->max_wait_ns / 1e6,
                (unsigned long long)x->long_waits, HOLD_MS / 2);
    rfx_engine_destroy(e);
    signal(SIGUSR1, SIG_DFL);
    return rescued;
}

Test(rescue, frames_due_while_the_next_thread_is_held_are_run_by_the_thread_before_it)
{
    static struct seen x;
    uint64_t rescued = run("engine.rescue_us=50", &x);
    cr_expect_gt(rescued, 0, "no frame was rescued");
    cr_expect_eq(rescued, x.on_other_thread,
                 "the engine counts %llu rescued frames; execute ran %llu off rt1",
                 (unsigned long long)rescued, (unsigned long long)x.on_other_thread);
    /* Each hold covers ~20 frames: without rescue the first waits about
     * HOLD_MS (the test below). */
    cr_expect_eq(x.long_waits, 0,
                 "%llu frames waited over %d ms for decide (the longest %.2f ms; rt1 held %d ms "
                 "at a time)",
                 (unsigned long long)x.long_waits, HOLD_MS / 2, x.max_wait_ns / 1e6, HOLD_MS);
}

Test(rescue, without_rescue_the_holds_show_in_the_wait)
{
    static struct seen x;
    uint64_t rescued = run("engine.rescue_us=0", &x);
    cr_expect_eq(rescued, 0);
    cr_expect_eq(x.on_other_thread, 0, "execute ran off its thread with rescue off");
    cr_expect_geq(x.long_waits, HOLDS / 2,
                  "%llu frames waited over %d ms (the longest %.2f ms): the holds did not hold rt1",
                  (unsigned long long)x.long_waits, HOLD_MS / 2, x.max_wait_ns / 1e6);
}
