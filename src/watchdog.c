/*
 * The watchdog: every critical thread publishes a heartbeat around each
 * stage call (when the call began, which stage, which frame: relaxed
 * stores on its own line), and every strategic worker around each planner
 * call. A monitor thread, unpinned and asleep between checks, looks every
 * `watch_every_us` (default an eighth of the frame budget) for
 *
 *   - a stage call that has run past its stage's p99 budget: a `budget`
 *     alert (warning) naming the stage, while the call is still running;
 *   - a stage call that has run past `stall_us` (default half the frame
 *     budget): a stall — stage, frame, how long so far — reported within
 *     one frame budget of its start, with a `stall` alert (critical), the
 *     thread's stack in the log, and a record for summary.json; the
 *     reporter treats a window with a stall as violated;
 *   - a planner call past `planner_stall_ms`: the same, stage "planner";
 *   - a stage that drops frames (itself, a fault, the sink's breaker or
 *     failure): a `drops` alert naming it when it starts dropping after a
 *     quiet second, and whenever its drop rate over the last second crosses
 *     the error-rate thresholds (warning, critical); and the sink's
 *     circuit breaker opening (`circuit_open`, critical).
 *
 * Each alert and stall record says how much of the call its thread spent
 * off its CPU: blocked in the kernel, preempted, or (on a VM) with its vCPU
 * taken by the host, as opposed to the stage computing. At every look the
 * monitor reads each critical thread's CPU clock (pthread_getcpuclockid;
 * the guest kernel leaves the host's steal time out of it); wall time minus
 * CPU time between two looks is time off the CPU. For the window between
 * the look before a call began and the first look that sees it, the time
 * before the call began is taken off, so the figure is a lower bound
 * (`off_cpu_ms_min`). This costs the monitor one clock_gettime per critical
 * thread per look and the critical threads nothing.
 *
 * The stack dump: the monitor sends the stalled thread a real-time signal
 * (SIGRTMIN+7) whose handler records backtrace() into a static slot; the
 * monitor waits up to 50 ms for it, then symbolises and logs it. The
 * handler is installed only if nothing else owns that signal; it is left
 * out under ThreadSanitizer, which defers signals to its own safe points.
 * Frames the dynamic symbol table cannot name (static and hidden
 * functions) are named from the file's .symtab (symbolize.c).
 */
#include "action_cache_impl.h"
#include "engine_impl.h"
#include "probes.h"
#include "symbolize.h"

#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__)
#define RFX_NO_STACK_DUMP 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RFX_NO_STACK_DUMP 1
#endif
#endif

#define MAX_STALLS  256
#define MAX_STACKS  16 /* stalls whose stack summary.json keeps */
#define STACK_DEPTH 32
#define N_UNITS     (RFX_MAX_THREADS + RFX_MAX_WORKERS) /* critical threads, then planners */
#define SAMPLES     128                                 /* drop-rate history, one per 10 ms */

struct stall {
    char stage[RFX_NAME_MAX];
    char thread[RFX_NAME_MAX];
    bool planner;
    uint64_t seq;
    double start_s;     /* since the run's start */
    double detected_ms; /* from the call's start to the report */
    double duration_ms; /* from the call's start to its end (as seen next) */
    double off_cpu_ms;  /* at least this long off its CPU (< 0: unknown) */
    char kstate;        /* its thread's state in the kernel when reported (0: unknown) */
    char kwait[40];     /* where it slept in the kernel ("": not asleep, or unknown) */
    bool open;
    char *stack; /* symbolised frames, one per line (NULL: none) */
};

struct sample {
    int64_t t;
    uint64_t captured;
    uint64_t dropped[RFX_MAX_STAGES];
};

struct rfx_watchdog {
    struct rfx_engine *e;
    pthread_t tid;
    _Atomic int stop;
    int64_t stall_ns, planner_stall_ns, every_ns;
    int64_t over_ns[RFX_MAX_STAGES]; /* per-call p99 budget (0: none) */
    int64_t reported[N_UNITS];       /* busy_since already reported as a stall */
    int64_t overran[N_UNITS];        /* busy_since already reported as over budget */
    int open_stall[N_UNITS];         /* index into stalls, -1 */
    /* off-CPU time of the critical threads' calls */
    clockid_t cpu_clock[RFX_MAX_THREADS];
    bool has_clock[RFX_MAX_THREADS];
    int64_t look_wall[RFX_MAX_THREADS], look_cpu[RFX_MAX_THREADS]; /* the last look (0: none) */
    int64_t call_since[RFX_MAX_THREADS]; /* the call call_off belongs to */
    int64_t call_off[RFX_MAX_THREADS];   /* ns off the CPU in it, at least */
    /* drop watch */
    struct sample hist[SAMPLES];
    int n_hist, next_hist;
    uint64_t last_dropped[RFX_MAX_STAGES];
    uint64_t breaker_opens;
    /* grace periods this watchdog woke for the critical threads, which are
     * quiet RCU readers (action_cache_impl.h) */
    _Atomic uint64_t grace_woken;
    char priority[24]; /* in effect on the monitor thread (under lock) */
    bool dumps;
    pthread_mutex_t lock; /* stalls[] and the counts, for the reporter */
    struct stall stalls[MAX_STALLS];
    int n, n_stacks;
    uint64_t count, planner_count;
    bool joined;
};

/* ---- stack dumps ---- */

static struct {
    _Atomic int state; /* 0 idle, 1 requested, 2 written */
    int n;
    void *frames[STACK_DEPTH];
} dump_slot;
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER; /* one dump at a time */
#ifndef RFX_NO_STACK_DUMP
static int dump_installed; /* 1 ours, -1 refused */

static void on_dump_signal(int sig)
{
    (void)sig;
    int saved = errno;
    if (atomic_load_explicit(&dump_slot.state, memory_order_acquire) == 1) {
        dump_slot.n = backtrace(dump_slot.frames, STACK_DEPTH);
        atomic_store_explicit(&dump_slot.state, 2, memory_order_release);
    }
    errno = saved;
}
#endif

static bool dump_install(void)
{
#ifdef RFX_NO_STACK_DUMP
    return false;
#else
    pthread_mutex_lock(&dump_lock);
    if (dump_installed == 0) {
        struct sigaction old, sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_dump_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGRTMIN + 7, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO) && sigaction(SIGRTMIN + 7, &sa, NULL) == 0) {
            void *warm[4];
            backtrace(warm, 4); /* loads the unwinder now, not in the handler */
            dump_installed = 1;
        } else {
            fprintf(stderr, "reflex: warning: signal SIGRTMIN+7 is taken: stalled threads' "
                            "stacks will not be dumped\n");
            dump_installed = -1;
        }
    }
    bool ok = dump_installed == 1;
    pthread_mutex_unlock(&dump_lock);
    return ok;
#endif
}

/* Monitor thread: the stack of `tid`, symbolised (malloc'd), or NULL. */
static char *dump_stack(pthread_t tid)
{
    pthread_mutex_lock(&dump_lock);
    atomic_store_explicit(&dump_slot.state, 1, memory_order_release);
    char *text = NULL;
    if (pthread_kill(tid, SIGRTMIN + 7) == 0) {
        for (int i = 0; i < 500; i++) {
            if (atomic_load_explicit(&dump_slot.state, memory_order_acquire) == 2)
                break;
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    int expected = 1;
    /* A handler that never ran must not write later: withdraw the request. */
    if (!atomic_compare_exchange_strong(&dump_slot.state, &expected, 0)) {
        char **sym = backtrace_symbols(dump_slot.frames, dump_slot.n);
        size_t cap = 248 * (size_t)dump_slot.n + 1, len = 0;
        text = sym ? malloc(cap) : NULL;
        for (int i = 0; text && i < dump_slot.n; i++) {
            /* Frame 0 is where the signal came in; the others are return
             * addresses, named by the call before them. */
            char line[240];
            const char *pc = dump_slot.frames[i];
            rfx_symbolize_line(sym[i], pc, i > 0 ? pc - 1 : pc, line, sizeof line);
            len += (size_t)snprintf(text + len, cap - len, "#%-2d %s\n", i, line);
        }
        free(sym);
        atomic_store_explicit(&dump_slot.state, 0, memory_order_release);
    }
    pthread_mutex_unlock(&dump_lock);
    return text;
}

/* ---- the monitor ---- */

int64_t rfx_frame_budget_ns(const struct rfx_engine *e)
{
    if (e->cfg.frame_hz > 0)
        return (int64_t)(1e9 / e->cfg.frame_hz);
    for (int i = 0; i < e->cfg.n_budgets; i++)
        if (!strcmp(e->cfg.budgets[i].stage, "e2e"))
            return e->cfg.budgets[i].p99_ns;
    return 16700000;
}

/* A call of unit u (heartbeat `since`) ended: close its open stall. */
static void close_stall(struct rfx_watchdog *w, int u, int64_t now)
{
    if (w->open_stall[u] < 0)
        return;
    pthread_mutex_lock(&w->lock);
    struct stall *st = &w->stalls[w->open_stall[u]];
    st->duration_ms = (now - w->e->start_ns) * 1e-6 - st->start_s * 1e3;
    st->open = false;
    pthread_mutex_unlock(&w->lock);
    w->open_stall[u] = -1;
}

/* A duration for a message: "40 us" below a millisecond, else "1.2 ms", so
 * that a threshold of a fast frame rate does not read as "0.0 ms". */
static const char *span_text(char *buf, size_t len, double ms)
{
    if (ms < 1.0)
        snprintf(buf, len, "%.0f us", ms * 1e3);
    else
        snprintf(buf, len, "%.1f ms", ms);
    return buf;
}

/* "; its thread was off CPU for >= X ms of it" when that is a tenth of the
 * call or more, else "". Off CPU: blocked, preempted, or its vCPU taken by
 * the host (kept short: an alert's message holds 200 bytes). */
static const char *off_cpu_note(char *buf, size_t len, int64_t off_ns, int64_t elapsed_ns)
{
    char t[32];
    buf[0] = 0;
    if (off_ns > 0 && off_ns * 10 >= elapsed_ns)
        snprintf(buf, len, "; its thread was off CPU for >= %s of it",
                 span_text(t, sizeof t, off_ns * 1e-6));
    return buf;
}

/*
 * Thread ktid's state in the kernel now (/proc/self/task/ID/stat: R running
 * or runnable, S asleep, D asleep uninterruptibly, ...) and, asleep, the
 * kernel function it waits in (wchan). A stage that blocks (I/O, a lock, a
 * sleep) is asleep; one that computes, or is preempted, or whose vCPU the
 * host took, is R. Returns the state letter, 0 if unknown.
 */
static char kernel_state(int ktid, char *wchan, size_t len)
{
    char path[64], buf[512];
    wchan[0] = 0;
    if (ktid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", ktid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the name in parentheses may hold anything */
    char state = p && p[1] == ' ' && p[2] ? p[2] : 0;
    if (state == 'S' || state == 'D') {
        snprintf(path, sizeof path, "/proc/self/task/%d/wchan", ktid);
        if ((f = fopen(path, "r"))) {
            n = fread(wchan, 1, len - 1, f);
            fclose(f);
            wchan[n] = 0;
            wchan[strcspn(wchan, "\n")] = 0;
            if (!strcmp(wchan, "0")) /* hidden (kptr_restrict) or none */
                wchan[0] = 0;
        }
    }
    return state;
}

/* ", asleep in F" (the kernel function it waits in) or ", runnable (...)"
 * after off_cpu_note's text, when that says anything (an alert's message
 * holds 200 bytes). */
static void kernel_note(char *buf, size_t len, char state, const char *wchan)
{
    size_t at = strlen(buf);
    if (at == 0 || at >= len)
        return;
    if (state == 'S' || state == 'D')
        snprintf(buf + at, len - at, ", asleep in %s", wchan[0] ? wchan : "the kernel");
    else if (state == 'R')
        snprintf(buf + at, len - at, ", runnable (preempted, or the host held its vCPU)");
}

/* When unit u's call in progress began (0: none): critical thread u, or
 * planner u - RFX_MAX_THREADS. */
static int64_t busy_since_of(const struct rfx_watchdog *w, int u)
{
    if (u < RFX_MAX_THREADS)
        return atomic_load_explicit(&w->e->threads[u].busy_since, memory_order_acquire);
    return rfx_strategic_busy_since(w->e->strat, u - RFX_MAX_THREADS);
}

static void report_stall(struct rfx_watchdog *w, int u, int64_t since, int64_t now,
                         const char *stage, const char *thread, uint64_t seq, pthread_t tid,
                         bool planner, int64_t off_ns)
{
    char note[200], wchan[40];
    char kstate =
        planner ? 0
                : kernel_state(atomic_load_explicit(&w->e->threads[u].ktid, memory_order_relaxed),
                               wchan, sizeof wchan);
    if (kstate && busy_since_of(w, u) != since) {
        /* The call ended before the state was read: it says nothing of it. */
        kstate = 0;
        wchan[0] = 0;
    }
    off_cpu_note(note, sizeof note, off_ns, now - since);
    kernel_note(note, sizeof note, kstate, wchan);
    struct rfx_engine *e = w->e;
    double start_s = (since - e->start_ns) * 1e-9, after = (now - since) * 1e-6;
    int64_t limit = planner ? w->planner_stall_ns : w->stall_ns;
    int si = -1;
    for (int i = 0; !planner && i < e->n_stages; i++)
        if (!strcmp(e->stages[i].name, stage))
            si = i;
    RFX_PROBE3(stall, si, seq, (int64_t)(now - since) / 1000000);
    int idx = -1;
    pthread_mutex_lock(&w->lock);
    w->count++;
    w->planner_count += planner;
    if (w->n < MAX_STALLS) {
        idx = w->n++;
        struct stall *st = &w->stalls[idx];
        snprintf(st->stage, sizeof st->stage, "%s", stage);
        snprintf(st->thread, sizeof st->thread, "rfx-%s", thread);
        st->planner = planner;
        st->seq = seq;
        st->start_s = start_s;
        st->detected_ms = after;
        st->duration_ms = after;
        st->off_cpu_ms = off_ns >= 0 ? off_ns * 1e-6 : -1;
        st->kstate = kstate;
        snprintf(st->kwait, sizeof st->kwait, "%s", kstate ? wchan : "");
        st->open = true;
        w->open_stall[u] = idx;
    }
    pthread_mutex_unlock(&w->lock);
    bool told;
    char took[32], lim[32];
    span_text(took, sizeof took, after);
    span_text(lim, sizeof lim, limit * 1e-6);
    if (planner)
        told = rfx_alert_raise(&e->alerts, (now - e->start_ns) * 1e-9, RFX_ALERT_STALL,
                               RFX_SEV_CRITICAL, stage,
                               "the planner on thread rfx-%s has been in one call for %s "
                               "(planner stall threshold %s)",
                               thread, took, lim);
    else
        told = rfx_alert_raise(&e->alerts, (now - e->start_ns) * 1e-9, RFX_ALERT_STALL,
                               RFX_SEV_CRITICAL, stage,
                               "stage %s on thread rfx-%s has been in one call for %s "
                               "(frame %" PRIu64 "; stall threshold %s)%s",
                               stage, thread, took, seq, lim, note);
    if (!w->dumps || !told)
        return; /* one dump per delivered alert: the rate limit bounds the log */
    char *stack = dump_stack(tid);
    if (stack && busy_since_of(w, u) != since) {
        /* The call ended before the thread answered: say so, or the stack
         * (often the thread parked in rfx_wait) passes for the stall's. */
        static const char ended[] =
            "  (the call had ended when the stack was taken: this is where the thread was then)\n";
        char *both = malloc(sizeof ended + strlen(stack));
        if (both) { /* without memory, the stack goes out unmarked */
            memcpy(both, ended, sizeof ended - 1);
            strcpy(both + sizeof ended - 1, stack);
            free(stack);
            stack = both;
        }
    }
    fprintf(stderr, "reflex: stack of rfx-%s, stalled in %s:\n%s", thread, stage,
            stack ? stack : "  (the thread did not answer within 50 ms)\n");
    pthread_mutex_lock(&w->lock);
    if (idx >= 0 && stack && w->n_stacks < MAX_STACKS) {
        w->stalls[idx].stack = stack;
        w->n_stacks++;
        stack = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    free(stack);
}

/*
 * Critical thread i at this look: its CPU clock against the wall clock
 * since the last look, credited to the call in progress (`since`, 0: none).
 * Returns the call's off-CPU time so far, at least (-1: unknown).
 */
static int64_t account_off_cpu(struct rfx_watchdog *w, int i, int64_t since)
{
    struct timespec ts;
    int64_t wall = rfx_now_ns();
    if (!w->has_clock[i] || clock_gettime(w->cpu_clock[i], &ts) != 0) {
        w->look_wall[i] = 0;
        w->call_since[i] = since;
        w->call_off[i] = -1;
        return -1;
    }
    int64_t cpu = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (since != 0 && w->look_wall[i] != 0) {
        int64_t off = (wall - w->look_wall[i]) - (cpu - w->look_cpu[i]);
        off = off > 0 ? off : 0;
        if (since == w->call_since[i] && w->call_off[i] >= 0) {
            w->call_off[i] += off; /* the whole window lies in the call */
        } else {
            /* The call began inside this window: what came before it may
             * all have been off the CPU (a parked thread). */
            int64_t before = since - w->look_wall[i];
            off -= before > 0 ? before : 0;
            w->call_since[i] = since;
            w->call_off[i] = off > 0 ? off : 0;
        }
    } else if (since != w->call_since[i]) {
        w->call_since[i] = since;
        w->call_off[i] = since ? -1 : 0; /* no look before it: unknown */
    }
    w->look_wall[i] = wall;
    w->look_cpu[i] = cpu;
    return since ? w->call_off[i] : -1;
}

static void watch_calls(struct rfx_watchdog *w, int64_t now)
{
    struct rfx_engine *e = w->e;
    for (int i = 0; i < e->n_threads; i++) {
        struct rfx_xthread *t = &e->threads[i];
        if (!t->critical)
            continue;
        int64_t since = atomic_load_explicit(&t->busy_since, memory_order_acquire);
        int64_t off = account_off_cpu(w, i, since);
        if (w->open_stall[i] >= 0 && since != w->reported[i])
            close_stall(w, i, now); /* the stalled call ended between two looks */
        if (since == 0)
            continue;
        if (w->open_stall[i] >= 0 && off >= 0) { /* still stalled: the figure grows */
            pthread_mutex_lock(&w->lock);
            w->stalls[w->open_stall[i]].off_cpu_ms = off * 1e-6;
            pthread_mutex_unlock(&w->lock);
        }
        int si = atomic_load_explicit(&t->busy_stage, memory_order_relaxed);
        uint64_t seq = atomic_load_explicit(&t->busy_seq, memory_order_relaxed);
        const char *name = si >= 0 && si < e->n_stages ? e->stages[si].name : "?";
        int64_t over = si >= 0 && si < e->n_stages ? w->over_ns[si] : 0;
        if (over > 0 && now - since > over && since != w->overran[i] &&
            now - since <= w->stall_ns) {
            w->overran[i] = since;
            char note[160];
            rfx_alert_raise(&e->alerts, (now - e->start_ns) * 1e-9, RFX_ALERT_BUDGET,
                            RFX_SEV_WARNING, name,
                            "stage %s's call has run %.2f ms, over its p99 budget %.2f ms "
                            "(frame %" PRIu64 ", thread rfx-%s)%s",
                            name, (now - since) * 1e-6, over * 1e-6, seq, t->cfg.name,
                            off_cpu_note(note, sizeof note, off, now - since));
        }
        if (since == w->reported[i] || now - since <= w->stall_ns)
            continue;
        w->reported[i] = since;
        report_stall(w, i, since, now, name, t->cfg.name, seq, t->tid, false, off);
    }
    for (int j = 0; e->strat && j < rfx_strategic_workers(e->strat); j++) {
        int u = RFX_MAX_THREADS + j;
        int64_t since = rfx_strategic_busy_since(e->strat, j);
        if (w->open_stall[u] >= 0 && since != w->reported[u])
            close_stall(w, u, now);
        if (since == 0 || since == w->reported[u] || now - since <= w->planner_stall_ns)
            continue;
        pthread_t tid;
        if (!rfx_strategic_thread(e->strat, j, &tid))
            continue;
        w->reported[u] = since;
        char thread[RFX_NAME_MAX];
        snprintf(thread, sizeof thread, "plan%d", j);
        report_stall(w, u, since, now, "planner", thread, 0, tid, true, -1);
    }
}

/* Drops by stage: an alert when a stage starts dropping after a quiet
 * second, and when its rate over the last second crosses a threshold; and
 * the sink's circuit opening. */
static void watch_drops(struct rfx_watchdog *w, int64_t now)
{
    struct rfx_engine *e = w->e;
    const struct rfx_engine_config *c = &e->cfg;
    struct sample cur = {.t = now,
                         .captured = atomic_load_explicit(&e->captured, memory_order_relaxed)};
    for (int s = 0; s < e->n_stages; s++)
        cur.dropped[s] = atomic_load_explicit(&e->stage_dropped[s], memory_order_relaxed);
    /* The oldest sample no older than 1 s (the run's start before that). */
    const struct sample *base = NULL;
    for (int k = 0; k < w->n_hist; k++) {
        const struct sample *x = &w->hist[(w->next_hist - w->n_hist + k + SAMPLES) % SAMPLES];
        if (now - x->t <= 1000000000) {
            base = x;
            break;
        }
    }
    static const struct sample zero;
    if (!base)
        base = &zero;
    for (int s = 0; s < e->n_stages; s++) {
        if (cur.dropped[s] == w->last_dropped[s])
            continue;
        bool fresh = w->last_dropped[s] == base->dropped[s];
        uint64_t dd = cur.dropped[s] - base->dropped[s];
        uint64_t dc = cur.captured - base->captured;
        double rate = (double)dd / (double)(dc ? dc : 1);
        w->last_dropped[s] = cur.dropped[s];
        enum rfx_severity sev = rate >= c->alert_error_critical  ? RFX_SEV_CRITICAL
                                : rate >= c->alert_error_warning ? RFX_SEV_WARNING
                                                                 : RFX_SEV_INFO;
        if (!fresh && sev == RFX_SEV_INFO)
            continue;
        if (sev == RFX_SEV_INFO)
            sev = RFX_SEV_WARNING; /* a stage that starts dropping is worth a look */
        rfx_alert_raise(&e->alerts, (now - e->start_ns) * 1e-9, RFX_ALERT_DROPS, sev,
                        e->stages[s].name,
                        "stage %s %s: %" PRIu64 " of %" PRIu64
                        " frames in the last %.2f s (%.1f%%; warning %.0f%%, critical %.0f%%)",
                        e->stages[s].name, fresh ? "started dropping frames" : "drops frames", dd,
                        dc, (now - (base->t ? base->t : e->start_ns)) * 1e-9, rate * 100,
                        c->alert_error_warning * 100, c->alert_error_critical * 100);
    }
    uint64_t opens = atomic_load_explicit(&e->breaker.opens, memory_order_relaxed);
    if (opens > w->breaker_opens) {
        w->breaker_opens = opens;
        rfx_alert_raise(&e->alerts, (now - e->start_ns) * 1e-9, RFX_ALERT_CIRCUIT_OPEN,
                        RFX_SEV_CRITICAL, e->stages[e->sink_stage].name,
                        "the sink's circuit opened (%llu times so far; %llu failures, %llu "
                        "frames rejected)",
                        (unsigned long long)opens,
                        (unsigned long long)atomic_load(&e->breaker.failures),
                        (unsigned long long)atomic_load(&e->breaker.rejected));
    }
    int64_t last = w->n_hist ? w->hist[(w->next_hist + SAMPLES - 1) % SAMPLES].t : 0;
    if (now - last >= 10000000) {
        w->hist[w->next_hist] = cur;
        w->next_hist = (w->next_hist + 1) % SAMPLES;
        if (w->n_hist < SAMPLES)
            w->n_hist++;
    }
}

/*
 * The monitor's priority ([watchdog] priority, normal by default). A stall
 * of a spinning stage holds its CPU, and on two CPUs the monitor has no CPU
 * of its own: woken at normal priority on the core the stalled thread spins
 * on, it waits behind it until the kernel's tick ends that thread's slice
 * (4 ms at HZ=250). At 60 Hz that still reports a stall within the frame
 * (threshold 8.3 ms, plus at most a tick or two); at 2 kHz, with a 250-us
 * threshold, a 3-ms spinning stall went unseen in 31 of 80. At fifo:1 the
 * monitor preempts a normal thread the moment it wakes and saw 80 of 80;
 * but it then stays on its CPU and preempts whatever runs there, and the
 * default layout's 60-Hz overhead p99 went from 17-29 us (4 runs at normal)
 * to 48-1443 us (4 runs at fifo:1), so it is the user's choice
 * (docs/budgets-and-degradation.md). Refused (no CAP_SYS_NICE or
 * RLIMIT_RTPRIO), it runs at normal priority and says so.
 */
static void apply_priority(struct rfx_watchdog *w)
{
    char msg[200] = "", want[24];
    const struct rfx_priority *p = &w->e->cfg.watchdog_priority;
    int rc = rfx_thread_priority_self(p, msg, sizeof msg);
    struct rfx_priority normal = {.kind = RFX_PRIO_NORMAL};
    rfx_priority_format(p, want, sizeof want);
    if (rc != 0 && msg[0])
        fprintf(stderr, "reflex: warning: watchdog: %s\n", msg);
    else if (rc != 0)
        fprintf(stderr, "reflex: warning: watchdog: priority %s: %s; running at normal priority\n",
                want, strerror(rc < 0 ? -rc : EPERM));
    pthread_mutex_lock(&w->lock);
    rfx_priority_format(rc == 0 ? p : &normal, w->priority, sizeof w->priority);
    pthread_mutex_unlock(&w->lock);
}

static void *monitor(void *arg)
{
    struct rfx_watchdog *w = arg;
    rfx_thread_name_self("watchdog");
    apply_priority(w);
    while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
        struct timespec ts = {0, w->every_ns};
        nanosleep(&ts, NULL);
        int64_t now = rfx_now_ns();
        watch_calls(w, now);
        watch_drops(w, now);
        rfx_strategic_pass_kicks(w->e->strat);
        if (rfx_cache_grace_kick())
            atomic_fetch_add_explicit(&w->grace_woken, 1, memory_order_relaxed);
    }
    return NULL;
}

int rfx_watchdog_start(struct rfx_engine *e, struct rfx_watchdog **out, char *msg, size_t msglen)
{
    struct rfx_watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->e = e;
    int64_t fb = rfx_frame_budget_ns(e);
    w->stall_ns = e->cfg.stall_us ? (int64_t)e->cfg.stall_us * 1000 : fb / 2;
    w->planner_stall_ns = (int64_t)e->cfg.planner_stall_ms * 1000000;
    w->every_ns = e->cfg.watch_every_us ? (int64_t)e->cfg.watch_every_us * 1000 : fb / 8;
    if (w->every_ns < 100000)
        w->every_ns = 100000;
    if (w->every_ns > 999999999)
        w->every_ns = 999999999;
    for (int s = 0; s < e->n_stages; s++)
        for (int b = 0; b < e->cfg.n_budgets; b++)
            if (!strcmp(e->cfg.budgets[b].stage, e->stages[s].name))
                w->over_ns[s] = e->cfg.budgets[b].p99_ns;
    for (int i = 0; i < N_UNITS; i++)
        w->open_stall[i] = -1;
    /* The critical threads run by now: their CPU clocks, for off-CPU time. */
    for (int i = 0; i < e->n_threads && i < RFX_MAX_THREADS; i++)
        w->has_clock[i] = e->threads[i].critical &&
                          pthread_getcpuclockid(e->threads[i].tid, &w->cpu_clock[i]) == 0;
    w->dumps = e->cfg.stack_dump && dump_install();
    pthread_mutex_init(&w->lock, NULL);
    atomic_init(&w->stop, 0);
    if (pthread_create(&w->tid, NULL, monitor, w) != 0) {
        snprintf(msg, msglen, "cannot create the watchdog thread");
        pthread_mutex_destroy(&w->lock);
        free(w);
        return -EAGAIN;
    }
    *out = w;
    return 0;
}

void rfx_watchdog_stop(struct rfx_watchdog *w)
{
    if (!w || w->joined)
        return;
    atomic_store_explicit(&w->stop, 1, memory_order_release);
    pthread_join(w->tid, NULL);
    w->joined = true;
}

void rfx_watchdog_destroy(struct rfx_watchdog *w)
{
    if (!w)
        return;
    rfx_watchdog_stop(w);
    for (int i = 0; i < w->n; i++)
        free(w->stalls[i].stack);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void rfx_watchdog_counts(struct rfx_watchdog *w, struct rfx_watchdog_counts *out, char *last,
                         size_t len)
{
    memset(out, 0, sizeof *out);
    if (last && len)
        last[0] = 0;
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    out->stalls = w->count - w->planner_count;
    out->planner_stalls = w->planner_count;
    for (int i = 0; i < w->n; i++) {
        const struct stall *st = &w->stalls[i];
        if (st->open && st->planner)
            out->open_planner++;
        else if (st->open)
            out->open_stage++;
    }
    if (last && len && w->n > 0) {
        const struct stall *st = &w->stalls[w->n - 1];
        char took[32];
        span_text(took, sizeof took, st->duration_ms);
        if (st->planner)
            snprintf(last, len, "stall: the planner on %s stuck %s at %.1f s", st->thread, took,
                     st->start_s);
        else
            snprintf(last, len, "stall: %s frame %" PRIu64 " stuck %s at %.1f s", st->stage,
                     st->seq, took, st->start_s);
    }
    pthread_mutex_unlock(&w->lock);
}

static void json_text(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

void rfx_watchdog_json(struct rfx_watchdog *w, FILE *f)
{
    char want[24];
    fprintf(f, "  \"watchdog\": {");
    if (!w) {
        fprintf(f, "\"stalls\": 0, \"events\": []},\n");
        return;
    }
    pthread_mutex_lock(&w->lock);
    fprintf(f,
            "\"stall_threshold_ms\": %.3f, \"planner_stall_threshold_ms\": %.3f, "
            "\"check_every_ms\": %.3f, \"priority\": \"%s\", \"priority_in_effect\": \"%s\", "
            "\"stack_dumps\": %s, \"grace_periods_woken\": %" PRIu64 ", \"stalls\": %" PRIu64
            ", \"planner_stalls\": %" PRIu64 ", \"events\": [",
            w->stall_ns * 1e-6, w->planner_stall_ns * 1e-6, w->every_ns * 1e-6,
            rfx_priority_format(&w->e->cfg.watchdog_priority, want, sizeof want),
            w->priority[0] ? w->priority : "not started", w->dumps ? "true" : "false",
            atomic_load_explicit(&w->grace_woken, memory_order_relaxed),
            w->count - w->planner_count, w->planner_count);
    for (int i = 0; i < w->n; i++) {
        const struct stall *st = &w->stalls[i];
        fprintf(f,
                "%s\n    {\"stage\": \"%s\", \"thread\": \"%s\", \"frame\": %" PRIu64
                ", \"start_s\": %.4f, \"detected_after_ms\": %.3f, \"duration_ms\": %.3f, "
                "\"off_cpu_ms_min\": ",
                i ? "," : "", st->stage, st->thread, st->seq, st->start_s, st->detected_ms,
                st->duration_ms);
        if (st->off_cpu_ms >= 0)
            fprintf(f, "%.3f", st->off_cpu_ms);
        else
            fprintf(f, "null");
        if (st->kstate)
            fprintf(f, ", \"kernel_state\": \"%c\", \"kernel_wait\": ", st->kstate);
        else
            fprintf(f, ", \"kernel_state\": null, \"kernel_wait\": ");
        if (st->kwait[0])
            json_text(f, st->kwait);
        else
            fprintf(f, "null");
        fprintf(f, ", \"ended\": %s, \"stack\": ", st->open ? "false" : "true");
        json_text(f, st->stack ? st->stack : "");
        fprintf(f, "}");
    }
    fprintf(f, "]},\n");
    pthread_mutex_unlock(&w->lock);
}
