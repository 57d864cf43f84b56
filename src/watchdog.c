/*
 * The watchdog: every critical thread publishes a heartbeat around each
 * stage call (when the call began, which stage, which frame: relaxed
 * stores on its own line). A monitor thread, unpinned and asleep between
 * checks, looks every `watch_every_us` (default an eighth of the frame
 * budget) for a call that has run longer than `stall_us` (default half the
 * frame budget), so a stall is reported within one frame budget of its
 * start: stage, frame, how long so far. It raises a `stall` alert, records
 * the stall for summary.json and counts it for the ladder (the reporter
 * treats a window with a stall as violated).
 */
#include "engine_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STALLS 256

struct stall {
    char stage[RFX_NAME_MAX];
    uint64_t seq;
    double start_s;     /* since the run's start */
    double detected_ms; /* from the call's start to the report */
    double duration_ms; /* from the call's start to its end (as seen next) */
};

struct rfx_watchdog {
    struct rfx_engine *e;
    pthread_t tid;
    _Atomic int stop;
    int64_t stall_ns, every_ns;
    int64_t reported[RFX_MAX_THREADS]; /* busy_since already reported */
    int open_stall[RFX_MAX_THREADS];   /* index into stalls, -1 */
    pthread_mutex_t lock;              /* stalls[] and the count, for the reporter */
    struct stall stalls[MAX_STALLS];
    int n;
    uint64_t count;
    bool joined;
};

int64_t rfx_frame_budget_ns(const struct rfx_engine *e)
{
    if (e->cfg.frame_hz > 0)
        return (int64_t)(1e9 / e->cfg.frame_hz);
    for (int i = 0; i < e->cfg.n_budgets; i++)
        if (!strcmp(e->cfg.budgets[i].stage, "e2e"))
            return e->cfg.budgets[i].p99_ns;
    return 16700000;
}

static void *monitor(void *arg)
{
    struct rfx_watchdog *w = arg;
    struct rfx_engine *e = w->e;
    rfx_thread_name_self("watchdog");
    while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
        struct timespec ts = {0, w->every_ns};
        nanosleep(&ts, NULL);
        int64_t now = rfx_now_ns();
        for (int i = 0; i < e->n_threads; i++) {
            struct rfx_xthread *t = &e->threads[i];
            if (!t->critical)
                continue;
            int64_t since = atomic_load_explicit(&t->busy_since, memory_order_acquire);
            if (w->open_stall[i] >= 0 && since != w->reported[i]) {
                /* The stalled call ended between two looks. */
                pthread_mutex_lock(&w->lock);
                struct stall *st = &w->stalls[w->open_stall[i]];
                st->duration_ms = (now - e->start_ns) * 1e-6 - st->start_s * 1e3;
                pthread_mutex_unlock(&w->lock);
                w->open_stall[i] = -1;
            }
            if (since == 0 || since == w->reported[i] || now - since <= w->stall_ns)
                continue;
            w->reported[i] = since;
            int si = atomic_load_explicit(&t->busy_stage, memory_order_relaxed);
            uint64_t seq = atomic_load_explicit(&t->busy_seq, memory_order_relaxed);
            const char *name = si >= 0 && si < e->n_stages ? e->stages[si].name : "?";
            double start_s = (since - e->start_ns) * 1e-9, after = (now - since) * 1e-6;
            pthread_mutex_lock(&w->lock);
            w->count++;
            if (w->n < MAX_STALLS) {
                struct stall *st = &w->stalls[w->n];
                snprintf(st->stage, sizeof st->stage, "%s", name);
                st->seq = seq;
                st->start_s = start_s;
                st->detected_ms = after;
                st->duration_ms = after;
                w->open_stall[i] = w->n++;
            }
            pthread_mutex_unlock(&w->lock);
            rfx_alert_raise(&e->alerts, (now - e->start_ns) * 1e-9, RFX_ALERT_STALL,
                            RFX_SEV_CRITICAL, name,
                            "stage %s on thread rfx-%s has been in one call for %.1f ms "
                            "(frame %" PRIu64 "; stall threshold %.1f ms)",
                            name, t->cfg.name, after, seq, w->stall_ns * 1e-6);
        }
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
    w->every_ns = e->cfg.watch_every_us ? (int64_t)e->cfg.watch_every_us * 1000 : fb / 8;
    if (w->every_ns < 100000)
        w->every_ns = 100000;
    if (w->every_ns > 999999999)
        w->every_ns = 999999999;
    for (int i = 0; i < RFX_MAX_THREADS; i++)
        w->open_stall[i] = -1;
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
    pthread_mutex_destroy(&w->lock);
    free(w);
}

uint64_t rfx_watchdog_stalls(struct rfx_watchdog *w, char *last, size_t len)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    uint64_t c = w->count;
    if (last && len) {
        if (w->n > 0) {
            const struct stall *st = &w->stalls[w->n - 1];
            snprintf(last, len, "stall: %s frame %" PRIu64 " stuck %.1f ms at %.1f s", st->stage,
                     st->seq, st->duration_ms, st->start_s);
        } else {
            last[0] = 0;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return c;
}

void rfx_watchdog_json(struct rfx_watchdog *w, FILE *f)
{
    fprintf(f, "  \"watchdog\": {");
    if (!w) {
        fprintf(f, "\"stalls\": 0, \"events\": []},\n");
        return;
    }
    pthread_mutex_lock(&w->lock);
    fprintf(f,
            "\"stall_threshold_ms\": %.3f, \"check_every_ms\": %.3f, \"stalls\": %" PRIu64
            ", \"events\": [",
            w->stall_ns * 1e-6, w->every_ns * 1e-6, w->count);
    for (int i = 0; i < w->n; i++) {
        const struct stall *st = &w->stalls[i];
        fprintf(f,
                "%s\n    {\"stage\": \"%s\", \"frame\": %" PRIu64 ", \"start_s\": %.3f, "
                "\"detected_after_ms\": %.3f, \"duration_ms\": %.3f}",
                i ? "," : "", st->stage, st->seq, st->start_s, st->detected_ms, st->duration_ms);
    }
    fprintf(f, "]},\n");
    pthread_mutex_unlock(&w->lock);
}
