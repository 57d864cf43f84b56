/*
 * bench=telemetry: what the telemetry stage costs a frame, timed on one
 * thread with nothing else in the way. The stage's process call on bursts
 * of 64 frames already in cache, as the engine hands them over after the
 * stage loop has stamped them: at full speed, where the frames of a burst
 * share their times (`burst_ns_per_frame`), and paced, where every frame
 * has times of its own (`paced_ns_per_frame`). Beside it, in the same
 * process, the same stage with `[telemetry] record = false`, which only
 * counts frames (executed, dropped by reason): the least any telemetry
 * stage that keeps the accounting identity can do
 * (`count_only_ns_per_frame`). And the burst case again with the run
 * recorder on (`--record`): what copying each frame's header fields and
 * 256-byte payload into the recorder's ring adds (`record_ns_per_frame`);
 * the ring is written to /dev/null between calls, outside the timing, as
 * the recorder's own thread would on another core.
 *
 * Each figure is the fastest of BATCHES batches of 50 calls: the host can
 * only ever add time to a batch (preemption, a co-tenant in the caches),
 * so the minimum is the stage's own cost. The variants alternate batch by
 * batch. Five stages as in the engine's default pipeline (four and
 * telemetry), the flight recorder on (128 frames).
 *
 * usage: bench_telemetry [--batches N]
 */
#include "engine_impl.h"
#include "recorder.h"

#include <reflex/config.h>
#include <reflex/thread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BURST = 64, SETS = 4, CALLS = 50, PAYLOAD = 256, VARIANTS = 4 };

static const char *const names[] = {"capture", "pattern", "decide", "execute", "telemetry"};

static void nop(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)f, (void)n, (void)env;
}

struct variant {
    const char *name;
    struct rfx_engine *e;
    struct rfx_telemetry *t;
    bool shared; /* a burst shares its times */
    double best; /* ns per frame */
};

static int make(struct variant *v, bool record)
{
    struct rfx_engine_config c;
    char msg[300];
    const char *sets[] = {record ? "telemetry.record=true" : "telemetry.record=false"};
    if (rfx_config_load(NULL, sets, 1, names, 5, &c, msg, sizeof msg)) {
        fprintf(stderr, "bench_telemetry: %s\n", msg);
        return 1;
    }
    /* An out dir per variant: each telemetry holds its own (a run's). */
    static int made;
    snprintf(c.out_dir, sizeof c.out_dir, "/tmp/rfx-bench-telemetry-%d/%d", (int)getpid(), made++);
    if (rfx_engine_create(&c, &v->e)) {
        fprintf(stderr, "bench_telemetry: %s\n", msg);
        return 1;
    }
    static const struct rfx_stage_ops ops = {.process = nop};
    for (int s = 0; s < 4; s++)
        rfx_engine_add_stage(v->e, names[s], &ops, NULL);
    if (rfx_telemetry_create(v->e, &v->t, msg, sizeof msg)) {
        fprintf(stderr, "bench_telemetry: %s\n", msg);
        return 1;
    }
    v->best = 1e30;
    return 0;
}

static int add_recorder(struct variant *v)
{
    struct rfx_record_header h = {
        .version = RFX_RECORD_VERSION, .payload_bytes = PAYLOAD, .n_stages = 5};
    for (int s = 0; s < 5; s++)
        snprintf(h.stages[s], RFX_NAME_MAX, "%s", names[s]);
    char msg[300];
    if (rfx_recorder_create("/dev/null", &h, SETS * BURST * CALLS, &v->e->recorder, msg,
                            sizeof msg)) {
        fprintf(stderr, "bench_telemetry: %s\n", msg);
        return 1;
    }
    return 0;
}

/* The times the engine would have left on burst b's frames. */
static void stamp(struct rfx_frame *f, uint64_t seq, int64_t now, bool shared, int i)
{
    int64_t own = shared ? 0 : i * 250; /* paced: each frame its own schedule */
    f->seq = seq;
    f->scheduled_ns = f->capture_ns = now + own;
    for (int s = 0; s < 5; s++) {
        f->enter_at[s] = rfx_stamp(now + own + 2000 * s + 100);
        f->exit_at[s] = rfx_stamp(now + own + 2000 * s + 900 + (int64_t)(seq / BURST) % 7);
    }
    f->drop_reason = RFX_DROP_NONE;
    f->cache_result = (uint8_t)(1 + i % 3);
    f->context_class = (uint8_t)(i % 3);
    f->woke_mask = 0;
}

int main(int argc, char **argv)
{
    int batches = 3000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batches") && i + 1 < argc)
            batches = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_telemetry [--batches N]\n");
            return 2;
        }
    }
    if (batches < 1)
        batches = 3000;
    rfx_thread_pin_self(0, NULL, 0); /* one core throughout: its caches stay warm */
    struct variant v[VARIANTS] = {{.name = "burst", .shared = true},
                                  {.name = "paced", .shared = false},
                                  {.name = "count only", .shared = true},
                                  {.name = "recording", .shared = true}};
    if (make(&v[0], true) || make(&v[1], true) || make(&v[2], false) || make(&v[3], true) ||
        add_recorder(&v[3]))
        return 1;
    struct rfx_frame *fr = aligned_alloc(64, SETS * BURST * sizeof *fr);
    unsigned char *payload = aligned_alloc(64, SETS * BURST * PAYLOAD);
    if (!fr || !payload)
        return 1;
    memset(fr, 0, SETS * BURST * sizeof *fr);
    memset(payload, 7, SETS * BURST * PAYLOAD);
    for (int i = 0; i < SETS * BURST; i++) {
        fr[i].payload = payload + (size_t)i * PAYLOAD;
        fr[i].payload_size = PAYLOAD;
    }
    struct rfx_frame *p[BURST];
    int64_t now = 1000000000;
    uint64_t seq = 0;
    for (int b = 0; b < batches; b++) {
        for (int k = 0; k < VARIANTS; k++) {
            struct variant *x = &v[k];
            struct rfx_stage_env env = {.engine = x->e, .stage_index = 4};
            int64_t spent = 0;
            for (int c = 0; c < CALLS; c++) {
                struct rfx_frame *q = fr + (c % SETS) * BURST;
                now += 100000;
                for (int i = 0; i < BURST; i++) {
                    p[i] = &q[i];
                    stamp(&q[i], seq++, now, x->shared, i);
                }
                int64_t t0 = rfx_now_ns();
                rfx_telemetry_ops.process(x->t, p, BURST, &env);
                spent += rfx_now_ns() - t0;
            }
            if (x->e->recorder)
                rfx_recorder_drain(x->e->recorder);
            double ns = (double)spent / (CALLS * BURST);
            if (ns < x->best)
                x->best = ns;
        }
    }
    for (int k = 0; k < VARIANTS; k++)
        printf("%-10s %.2f ns a frame (fastest of %d batches of %d calls of %d frames)\n",
               v[k].name, v[k].best, batches, CALLS, BURST);
    printf("SUMMARY bench=telemetry burst_ns_per_frame=%.2f paced_ns_per_frame=%.2f "
           "count_only_ns_per_frame=%.2f ratio_burst_vs_count_only=%.2f "
           "record_ns_per_frame=%.2f record_added_ns_per_frame=%.2f payload_bytes=%d stages=5 "
           "burst=%d trace_frames=128 batches=%d\n",
           v[0].best, v[1].best, v[2].best, v[0].best / v[2].best, v[3].best, v[3].best - v[0].best,
           PAYLOAD, BURST, batches);
    for (int k = 0; k < VARIANTS; k++) {
        rfx_telemetry_destroy(v[k].t);
        rfx_engine_destroy(v[k].e);
    }
    free(fr);
    free(payload);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/rfx-bench-telemetry-%d", (int)getpid());
    if (system(cmd) != 0)
        fprintf(stderr, "bench_telemetry: could not remove its out dirs\n");
    return 0;
}
