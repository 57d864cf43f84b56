/*
 * The telemetry stage's recording: whatever shortcuts it takes (runs of
 * frames with equal timings, runs of equal values in one histogram), each
 * histogram must hold exactly what recording frame by frame would put
 * there. The reference below is the definition, one frame at a time.
 */
#include "engine_impl.h"
#include "hdr_histogram_impl.h"
#include "iv_series.h"
#include "json_check.h"
#include "outfile.h"
#include "telemetry_impl.h"
#include "test_out_dir.h"

#include <reflex/config.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const names[] = {"capture", "pattern", "decide", "execute", "telemetry"};
enum { S = 4, FRAMES = 4000 };

static void nop(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)f, (void)n, (void)env;
}

/* Stages 0..S-1 and telemetry itself at S. */
struct expect {
    struct rfx_hdr *h[S + 1][K_KINDS], *e2e, *cls[3];
    int64_t sum[S + 1], e2e_sum;
    uint64_t over[S + 1], executed, dropped, e2e_over, l1, l2, miss;
};

static struct rfx_hdr *hist(void)
{
    struct rfx_hdr *h;
    cr_assert_eq(rfx_hdr_create(1, 60000000000LL, 3, &h), 0);
    return h;
}

static int64_t at_least_1(int64_t v)
{
    return v > 0 ? v : 1;
}

/* A frame's stage times as CLOCK_MONOTONIC (0: the stage never took it),
 * and setting them. */
static int64_t enter_of(const struct rfx_frame *f, int s)
{
    return s < rfx_frame_reached(f, S) ? rfx_frame_time_ns(f, f->enter_at[s]) : 0;
}

static int64_t exit_of(const struct rfx_frame *f, int s)
{
    return s < rfx_frame_reached(f, S) ? rfx_frame_time_ns(f, f->exit_at[s]) : 0;
}

static void stamp(struct rfx_frame *f, int s, int64_t enter, int64_t exit)
{
    f->enter_at[s] = rfx_stamp(enter);
    f->exit_at[s] = rfx_stamp(exit);
}

/* Stamps left from a frame's last lap: telemetry must not read them. */
static void stale_times(struct rfx_frame *f)
{
    for (int s = 0; s < RFX_MAX_STAGES; s++) {
        f->enter_at[s] = (uint32_t)rand();
        f->exit_at[s] = (uint32_t)rand();
    }
}

/* One frame, recorded the plain way (p99[S]: telemetry's budget, p99[S + 1]:
 * the e2e budget's). Telemetry's own queue wait runs from the exit of the
 * last stage the frame went through to its entry to telemetry. */
static void expect_frame(struct expect *x, const struct rfx_frame *f, const int64_t *p99)
{
    int reached = rfx_frame_reached(f, S);
    if (reached > 0) {
        int64_t wait = at_least_1(rfx_frame_time_ns(f, f->enter_at[S]) - exit_of(f, reached - 1));
        rfx_hdr_record(x->h[S][K_WAIT], wait);
        if (f->woke_mask & (1u << S))
            rfx_hdr_record(x->h[S][K_LATE], wait);
    }
    for (int s = 0; s < S; s++) {
        if (s >= rfx_frame_reached(f, S))
            continue;
        int64_t svc = at_least_1(exit_of(f, s) - enter_of(f, s));
        int64_t wait = at_least_1(enter_of(f, s) - (s ? exit_of(f, s - 1) : f->scheduled_ns));
        rfx_hdr_record(x->h[s][K_SERVICE], svc);
        rfx_hdr_record(x->h[s][K_WAIT], wait);
        if (s == 0)
            rfx_hdr_record(x->h[s][K_LATE], at_least_1(f->capture_ns - f->scheduled_ns));
        else if (f->woke_mask & (1u << s))
            rfx_hdr_record(x->h[s][K_LATE], wait);
        x->sum[s] += svc;
        x->over[s] += svc > p99[s];
    }
    if (f->drop_reason != RFX_DROP_NONE) {
        x->dropped++;
        return;
    }
    x->executed++;
    int64_t e2e = at_least_1(exit_of(f, S - 1) - f->scheduled_ns);
    rfx_hdr_record(x->e2e, e2e);
    if (f->context_class < 3)
        rfx_hdr_record(x->cls[f->context_class], e2e);
    x->e2e_sum += e2e;
    x->e2e_over += e2e > p99[S + 1];
    x->l1 += f->cache_result == RFX_CACHE_L1;
    x->l2 += f->cache_result == RFX_CACHE_L2;
    x->miss += f->cache_result == RFX_CACHE_MISS;
}

static void expect_same(const struct rfx_hdr *got, const struct rfx_hdr *want, const char *what,
                        int s)
{
    cr_expect_eq(got->total_count, want->total_count, "%s of stage %d: %lld records, want %lld",
                 what, s, (long long)got->total_count, (long long)want->total_count);
    int differ = 0;
    for (int i = 0; i < want->counts_len; i++)
        differ += got->counts[i] != want->counts[i];
    cr_expect_eq(differ, 0, "%s of stage %d: %d buckets differ", what, s, differ);
}

/*
 * Frames as the engine makes them: a burst captured together shares its
 * times (full speed), a paced source's frames do not, some frames are
 * dropped part way (later stages' stamps are stale), some stages parked
 * (woke_mask), some services run over their budget. Random burst sizes.
 */
/* An engine of S no-op stages with `sets` applied, and its telemetry. */
static struct rfx_telemetry *make_telemetry(const char **sets, int n_sets, struct rfx_engine **e)
{
    struct rfx_engine_config c;
    char msg[300];
    cr_assert_eq(rfx_config_load(NULL, sets, n_sets, names, 5, &c, msg, sizeof msg), 0, "%s", msg);
    test_out_dir(&c);
    cr_assert_eq(rfx_engine_create(&c, e), 0);
    static const struct rfx_stage_ops ops = {.process = nop};
    for (int s = 0; s < S; s++)
        cr_assert_eq(rfx_engine_add_stage(*e, names[s], &ops, NULL), 0);
    struct rfx_telemetry *t;
    cr_assert_eq(rfx_telemetry_create(*e, &t, msg, sizeof msg), 0, "%s", msg);
    return t;
}

Test(telemetry, records_what_frame_by_frame_recording_would)
{
    const char *sets[] = {"budget.pattern=1,2,3", "budget.decide=1,1,2", "budget.e2e=4,5,6",
                          "budget.telemetry=1,2,3"};
    struct rfx_engine *e;
    struct rfx_telemetry *t = make_telemetry(sets, 4, &e);
    int64_t p99[S + 2];
    for (int s = 0; s <= S; s++)
        p99[s] = t->st[s].budget ? t->st[s].budget->p99_ns : INT64_MAX;
    cr_assert_eq(p99[1], 3000);
    cr_assert_eq(p99[S], 3000);
    cr_assert(t->e2e_budget);
    p99[S + 1] = t->e2e_budget->p99_ns;

    struct expect x = {0};
    for (int s = 0; s <= S; s++)
        for (int k = 0; k < K_KINDS; k++)
            x.h[s][k] = hist();
    x.e2e = hist();
    for (int c = 0; c < 3; c++)
        x.cls[c] = hist();

    struct rfx_frame *fr = calloc(FRAMES, sizeof *fr);
    struct rfx_frame *ptr[FRAMES];
    srand(3);
    int64_t now = 1000000;
    for (int i = 0; i < FRAMES; i++) {
        struct rfx_frame *f = &fr[i];
        ptr[i] = f;
        if (i > 0 && rand() % 4 != 0) { /* mostly: a burst-mate of the one before */
            struct rfx_frame *p = &fr[i - 1];
            f->scheduled_ns = p->scheduled_ns;
            f->capture_ns = p->capture_ns;
            memcpy(f->enter_at, p->enter_at, sizeof f->enter_at);
            memcpy(f->exit_at, p->exit_at, sizeof f->exit_at);
            f->woke_mask = p->woke_mask;
            f->drop_reason = p->drop_reason;
            f->reached = p->reached;
            if (rand() % 8 == 0) /* a paced frame: its own due time */
                f->scheduled_ns -= 1 + rand() % 3;
            if (rand() % 16 == 0)
                f->woke_mask ^= 1u << (1 + rand() % S);
            if (rand() % 8 == 0) { /* one stamp of its own: every word of the times counts */
                int w = rand() % (2 * S + 2);
                uint32_t d = 1 + (uint32_t)(rand() % 3);
                if (w == 2 * S + 1)
                    f->capture_ns += d;
                else if (w <= S)
                    f->enter_at[w] += d; /* telemetry's own entry too */
                else
                    f->exit_at[w - S - 1] += d;
            }
        } else {
            now += 1000 + rand() % 5000;
            f->scheduled_ns = now - rand() % 3;
            f->capture_ns = now + rand() % 3;
            int64_t at = f->capture_ns;
            int last = rand() % 6 == 0 ? rand() % S : S - 1; /* dropped after `last` */
            stale_times(f);
            for (int s = 0; s <= last; s++) {
                int64_t in = at + rand() % 4;
                at = in + (rand() % 3 ? 1 + rand() % 4000 : 0);
                stamp(f, s, in, at);
            }
            /* telemetry's entry (the engine stamps it; its exit stays stale) */
            f->enter_at[S] = rfx_stamp(at + (rand() % 2 ? rand() % 3000 : 0));
            f->drop_reason = last < S - 1 ? RFX_DROP_STAGE : RFX_DROP_NONE;
            /* read only when dropped: otherwise anything */
            f->reached = last < S - 1 ? (uint8_t)(last + 1) : (uint8_t)rand();
            f->woke_mask = (uint16_t)(rand() & 0x1e);
            now = at;
        }
        f->seq = (uint64_t)i;
        /* per frame, not per burst: a class now and then out of range */
        f->context_class = rand() % 16 ? (uint8_t)(rand() % 3) : 7;
        f->cache_result = (uint8_t)(rand() % 4);
        expect_frame(&x, f, p99);
    }
    /* Telemetry's own service time: each call's, as the engine times it
     * (rfx_telemetry_called), for every frame of the call; recorded at the
     * next call, so the last one is still pending. */
    struct rfx_stage_env env = {.engine = e, .stage_index = S};
    int64_t call_ns = 0;
    int n = 0;
    for (int i = 0; i < FRAMES; i += n) {
        if (n) { /* the call before this one */
            rfx_hdr_record_n(x.h[S][K_SERVICE], at_least_1(call_ns), n);
            x.sum[S] += at_least_1(call_ns) * n;
            x.over[S] += call_ns > p99[S] ? (uint64_t)n : 0;
        }
        n = 1 + rand() % 128;
        if (n > FRAMES - i)
            n = FRAMES - i;
        rfx_telemetry_ops.process(t, ptr + i, (size_t)n, &env);
        call_ns = rand() % 16 ? rand() % 6000 : 0;
        rfx_telemetry_called(t, call_ns, (size_t)n);
    }
    cr_expect_eq(t->call_frames, (uint64_t)n, "the last call's %d frames wait for the next", n);

    struct tset *got = atomic_load(&t->active);
    for (int s = 0; s <= S; s++) {
        expect_same(got->h[s][K_SERVICE], x.h[s][K_SERVICE], "service", s);
        expect_same(got->h[s][K_WAIT], x.h[s][K_WAIT], "queue wait", s);
        expect_same(got->h[s][K_LATE], x.h[s][K_LATE], "lateness", s);
        cr_expect_eq(got->sum[s], x.sum[s], "stage %d: sum %lld, want %lld", s,
                     (long long)got->sum[s], (long long)x.sum[s]);
        cr_expect_eq(got->over_p99[s], x.over[s], "stage %d: %llu over budget, want %llu", s,
                     (unsigned long long)got->over_p99[s], (unsigned long long)x.over[s]);
    }
    expect_same(got->e2e, x.e2e, "e2e", -1);
    for (int c = 0; c < 3; c++)
        expect_same(got->cls[c], x.cls[c], "e2e of class", c);
    cr_expect_eq(got->e2e_sum, x.e2e_sum, "e2e sum %lld, want %lld", (long long)got->e2e_sum,
                 (long long)x.e2e_sum);
    cr_expect_eq(got->e2e_over_p99, x.e2e_over, "e2e over budget %llu, want %llu",
                 (unsigned long long)got->e2e_over_p99, (unsigned long long)x.e2e_over);
    cr_expect(x.e2e_over > 0 && x.e2e_over < x.executed,
              "the data has frames over the e2e budget and under it (%llu of %llu)",
              (unsigned long long)x.e2e_over, (unsigned long long)x.executed);
    cr_expect_eq(got->l1, x.l1);
    cr_expect_eq(got->l2, x.l2);
    cr_expect_eq(got->miss, x.miss);
    cr_expect(x.over[1] > 0 && x.over[2] > 0 && x.over[S] > 0, "the data has frames over budget");
    cr_expect(x.h[S][K_LATE]->total_count > 0 && x.h[S][K_SERVICE]->total_count > 0,
              "the data has telemetry's own times");
    cr_expect(x.dropped > 0 && x.executed > 0);
    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    cr_expect_eq(k.executed, x.executed);
    uint64_t dropped = 0;
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        dropped += k.dropped[r];
    cr_expect_eq(dropped, x.dropped);

    for (int s = 0; s <= S; s++)
        for (int k2 = 0; k2 < K_KINDS; k2++)
            rfx_hdr_destroy(x.h[s][k2]);
    rfx_hdr_destroy(x.e2e);
    for (int c = 0; c < 3; c++)
        rfx_hdr_destroy(x.cls[c]);
    free(fr);
    rfx_telemetry_destroy(t);
    rfx_engine_destroy(e);
}

/* Stamps hold the low 32 bits of the clock: a frame older than 2^32 ns when
 * telemetry takes it cannot be read. Such frames record no stage times, an
 * end to end up to telemetry's entry, and are counted apart; the others as
 * usual, in the same burst. */
Test(telemetry, frames_older_than_the_stamp_span_are_counted_apart)
{
    struct rfx_engine *e;
    struct rfx_telemetry *t = make_telemetry(NULL, 0, &e);
    enum { N = 12, OLD = 5 };
    struct rfx_frame fr[N] = {{0}};
    struct rfx_frame *ptr[N];
    int64_t now = 10 * RFX_FRAME_SPAN_NS + 12345;
    for (int i = 0; i < N; i++) {
        struct rfx_frame *f = ptr[i] = &fr[i];
        f->seq = (uint64_t)i;
        /* the old ones: up to 8 s; the rest 20 us */
        f->scheduled_ns = i < OLD ? now - RFX_FRAME_SPAN_NS - i * 1000000000LL : now - 20000;
        f->capture_ns = f->scheduled_ns + 100;
        for (int s = 0; s < S; s++)
            stamp(f, s, f->scheduled_ns + 200 + 1000 * s, f->scheduled_ns + 900 + 1000 * s);
    }
    struct rfx_stage_env env = {.engine = e, .stage_index = S, .now_ns = now};
    rfx_telemetry_ops.process(t, ptr, N, &env);
    struct tset *got = atomic_load(&t->active);
    cr_expect_eq(got->beyond_span, OLD, "%llu frames counted beyond the span, want %d",
                 (unsigned long long)got->beyond_span, OLD);
    for (int s = 0; s < S; s++)
        cr_expect_eq(rfx_hdr_total_count(got->h[s][K_SERVICE]), N - OLD,
                     "stage %d: service times of %lld frames, want %d", s,
                     (long long)rfx_hdr_total_count(got->h[s][K_SERVICE]), N - OLD);
    cr_expect_eq(rfx_hdr_total_count(got->e2e), N);
    cr_expect_eq(rfx_hdr_value_at_percentile(got->h[0][K_SERVICE], 100),
                 rfx_hdr_highest_equivalent(got->h[0][K_SERVICE], 700));
    /* e2e: the young frames' last exit, 900 + 1000 (S - 1) ns; the old
     * ones' age at telemetry, 4.29 s and more */
    int64_t young = 900 + 1000 * (S - 1);
    cr_expect_eq(rfx_hdr_min(got->e2e), rfx_hdr_lowest_equivalent(got->e2e, young));
    cr_expect_geq(rfx_hdr_max(got->e2e),
                  rfx_hdr_lowest_equivalent(got->e2e, RFX_FRAME_SPAN_NS + 4000000000LL));
    cr_expect_eq(rfx_hdr_count_at_value(got->e2e, young), N - OLD);
    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    cr_expect_eq(k.executed, N, "all of them executed");
    rfx_telemetry_destroy(t);
    rfx_engine_destroy(e);
}

/* [telemetry] record = false: the frames are still counted (the identity
 * holds), and nothing is recorded. */
Test(telemetry, record_off_counts_frames_and_records_nothing)
{
    const char *sets[] = {"telemetry.record=false"};
    struct rfx_engine *e;
    struct rfx_telemetry *t = make_telemetry(sets, 1, &e);
    cr_assert(!e->cfg.telemetry_record);
    enum { N = 100 };
    struct rfx_frame fr[N] = {{0}};
    struct rfx_frame *ptr[N];
    uint64_t want_dropped = 0;
    for (int i = 0; i < N; i++) {
        ptr[i] = &fr[i];
        fr[i].scheduled_ns = fr[i].capture_ns = 1000 + i;
        for (int s = 0; s < S; s++)
            stamp(&fr[i], s, 1000 + i + s, 1001 + i + s);
        if (i % 7 == 0) {
            fr[i].drop_reason = i % 2 ? RFX_DROP_RING_FULL : RFX_DROP_STAGE;
            want_dropped++;
        }
    }
    struct rfx_stage_env env = {.engine = e, .stage_index = S};
    rfx_telemetry_ops.process(t, ptr, 64, &env);
    rfx_telemetry_ops.process(t, ptr + 64, N - 64, &env);
    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    cr_expect_eq(k.executed, N - want_dropped);
    cr_expect_eq(k.dropped[RFX_DROP_RING_FULL] + k.dropped[RFX_DROP_STAGE], want_dropped);
    cr_expect(k.dropped[RFX_DROP_RING_FULL] > 0 && k.dropped[RFX_DROP_STAGE] > 0);
    struct tset *got = atomic_load(&t->active);
    cr_expect_eq(rfx_hdr_total_count(got->e2e), 0);
    for (int s = 0; s < S; s++)
        for (int k2 = 0; k2 < K_KINDS; k2++)
            cr_expect_eq(rfx_hdr_total_count(got->h[s][k2]), 0, "stage %d kind %d", s, k2);
    rfx_telemetry_destroy(t);
    rfx_engine_destroy(e);
}

/* The flight recorder's reporter half: keeping a frozen window copies into
 * memory taken at init and allocates nothing, however many violations come
 * (rendering each window as text there grew the heap by 2.6 MB a run). */
Test(telemetry, flight_windows_are_kept_without_allocating)
{
    uint64_t before, after;
    if (!rfx_thread_allocated(&before))
        cr_skip("jemalloc's per-thread counters are not available in this build");
    struct rfx_flight fl;
    cr_assert_eq(rfx_flight_init(&fl, 128), 0);
    struct rfx_frame f = {0};
    cr_assert(rfx_thread_allocated(&before));
    for (uint64_t i = 0; i < 40 * 128; i++) {
        f.seq = i;
        f.scheduled_ns = f.capture_ns = (int64_t)i * 1000;
        bool over = i % 256 == 10; /* a violation every two rings */
        rfx_flight_record(&fl, &f, false, over ? 1 : -1, false, 0, false);
        rfx_flight_collect(&fl);
    }
    cr_assert(rfx_thread_allocated(&after));
    cr_expect_eq(after - before, 0, "%llu bytes allocated while keeping windows",
                 (unsigned long long)(after - before));
    cr_expect_eq(fl.windows, RFX_TRACE_WINDOWS, "windows kept: %d", fl.windows);
    cr_expect(fl.windows_dropped > 0, "windows past the 16th are counted");
    /* The first violation (frame 10) froze its ring half a ring later. */
    cr_expect(fl.window[0].has_trigger && fl.window[0].trigger == 10);
    cr_expect_eq(fl.window[0].n, 10 + 1 + 64);
    cr_expect_eq(fl.kept[0].seq, 0);
    cr_expect_eq(fl.kept[fl.window[0].n - 1].seq, 10 + 64);
    rfx_flight_fini(&fl);
}

/* A slow frame within its budgets freezes a window as a violation does,
 * marked as the slow kind, with no slot flagged over a budget. One that
 * comes while the reporter still holds the other ring freezes its window
 * once the ring is back, if it is still in its own ring by then (half a
 * ring later if it can, else at once); otherwise it is counted as missed. */
Test(telemetry, flight_slow_frames_freeze_windows_of_their_own)
{
    struct rfx_flight fl;
    cr_assert_eq(rfx_flight_init(&fl, 64), 0);
    struct rfx_frame f = {0};
    for (uint64_t i = 0; i < 560; i++) {
        f.seq = i;
        f.scheduled_ns = f.capture_ns = (int64_t)i * 1000;
        /* 5: slow; 100: a violation; 150 and 200: slow, the second after
         * the first one's ring was handed over (at 150 + 32) and while it
         * waits for the reporter, which looks again only from 251: 200 is
         * still in its ring then. 300: a violation, handed over at 332 and
         * held until 451; 340: slow, gone from its ring by then. 460: a
         * violation, handed over at 492 and held until 496; 494: slow, its
         * window frozen half a ring after it. */
        bool slow = i == 5 || i == 150 || i == 200 || i == 340 || i == 494,
             over = i == 100 || i == 300 || i == 460;
        rfx_flight_record(&fl, &f, false, -1, over, 0, slow);
        if (i < 150 || (i > 250 && i < 300) || (i > 450 && (i < 492 || i > 495)))
            rfx_flight_collect(&fl);
    }
    cr_assert_eq(fl.windows, 7, "windows kept: %d", fl.windows);
    cr_expect(fl.window[0].cause == RFX_TRACE_SLOW && fl.window[0].has_trigger &&
              fl.window[0].trigger == 5);
    cr_expect_eq(fl.window[0].n, 5 + 1 + 32);
    cr_expect(fl.window[1].cause == RFX_TRACE_VIOLATION && fl.window[1].trigger == 100);
    cr_expect(fl.window[2].cause == RFX_TRACE_SLOW && fl.window[2].trigger == 150);
    /* 200's ring began at 183; the reporter freed the other at 251, so the
     * window was frozen at 252, its last 64 frames */
    cr_expect(fl.window[3].cause == RFX_TRACE_SLOW && fl.window[3].trigger == 200);
    cr_expect_eq(fl.window[3].n, 64);
    cr_expect_eq(fl.kept[3 * 64].seq, 252 - 63);
    cr_expect_eq(fl.kept[3 * 64 + 63].seq, 252);
    cr_expect(fl.window[4].cause == RFX_TRACE_VIOLATION && fl.window[4].trigger == 300);
    cr_expect(fl.window[5].cause == RFX_TRACE_VIOLATION && fl.window[5].trigger == 460);
    cr_expect(fl.window[6].cause == RFX_TRACE_SLOW && fl.window[6].trigger == 494);
    cr_expect_eq(fl.window[6].n, 2 + 32, "494's ring began at 493: %llu frames",
                 (unsigned long long)fl.window[6].n);
    cr_expect_eq(fl.kept[6 * 64].seq, 493);
    cr_expect_eq(fl.missed, 1, "the slow frame 340 had left its ring when the other came back");
    for (uint64_t i = 0; i < fl.window[0].n; i++)
        cr_expect(fl.kept[i].over_stage == -1 && !fl.kept[i].over_e2e,
                  "frame %llu of a slow window flagged over a budget", (unsigned long long)i);
    rfx_flight_fini(&fl);
}

/* Past the 16th window, a new one takes the place of the least: a
 * violation's ranks above a slow frame's, then the slower its slowest
 * frame, the higher; the first violation's stays. trace.json holds them in the order
 * they came, then the last frames at the stop, the same at a second write. */
Test(telemetry, flight_windows_past_the_last_keep_the_worst)
{
    enum { K = 64, V = 40 };
    struct rfx_engine *e;
    struct rfx_telemetry *t = make_telemetry(NULL, 0, &e);
    struct rfx_flight fl;
    cr_assert_eq(rfx_flight_init(&fl, K), 0);
    struct rfx_frame f = {0};
    int64_t e2e[V]; /* violation j's: distinct, in no order */
    uint64_t n = (V + 2) * 2 * K;
    for (uint64_t i = 0; i < n; i++) {
        /* a slow frame at 2, then violation j at 2K(j + 1) + 10 */
        uint64_t j = i / (2 * K) - 1;
        bool slow = i == 2, over = i >= 2 * K && i % (2 * K) == 10 && j < V;
        int64_t took = over ? (int64_t)(j * 17 % V + 1) * 1000 : slow ? 500 : 10;
        if (over)
            e2e[j] = took;
        f.seq = i;
        f.scheduled_ns = (int64_t)i * 100000;
        f.capture_ns = f.scheduled_ns + took; /* reached 0: end to end is capture's */
        rfx_flight_record(&fl, &f, false, over ? 1 : -1, false, 0, slow);
        rfx_flight_collect(&fl);
    }
    cr_assert_eq(fl.windows, RFX_TRACE_WINDOWS);
    cr_expect_eq(fl.windows_dropped, 1 + V - RFX_TRACE_WINDOWS);
    /* want: violation 0 and the 15 slowest of the others */
    bool want[V] = {true};
    for (int k = 0; k < RFX_TRACE_WINDOWS - 1; k++) {
        int best = -1;
        for (int j = 1; j < V; j++)
            if (!want[j] && (best < 0 || e2e[j] > e2e[best]))
                best = j;
        want[best] = true;
    }
    bool got[V] = {false};
    for (int w = 0; w < fl.windows; w++) {
        cr_assert_eq(fl.window[w].cause, RFX_TRACE_VIOLATION, "window %d: the slow one stayed", w);
        uint64_t j = fl.window[w].trigger / (2 * K) - 1;
        cr_assert_eq(fl.window[w].trigger, 2 * K * (j + 1) + 10);
        cr_expect_eq(fl.window[w].worst_ns, e2e[j], "the slowest frame of window %d", w);
        got[j] = true;
    }
    for (int j = 0; j < V; j++)
        cr_expect_eq(got[j], want[j], "violation %d (%lld ns): kept %d, want %d", j,
                     (long long)e2e[j], got[j], want[j]);

    char path[sizeof e->cfg.out_dir + 16];
    snprintf(path, sizeof path, "%s/trace.json", e->cfg.out_dir);
    char *text[2] = {NULL, NULL};
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_eq(rfx_flight_write(&fl, e, t->n, &t->ladder, e->cfg.out_dir), 0);
        FILE *in = fopen(path, "r");
        cr_assert_not_null(in);
        size_t cap = 1 << 24;
        text[pass] = malloc(cap);
        size_t len = fread(text[pass], 1, cap - 1, in);
        fclose(in);
        cr_assert_lt(len, cap - 1);
        text[pass][len] = 0;
    }
    cr_expect_str_eq(text[0], text[1], "a second write differs");
    char why[200], *end = strrchr(text[1], '}'); /* the members between the braces */
    cr_assert(text[1][0] == '{' && end);
    *end = 0;
    cr_expect_eq(rfx_json_members_check(text[1] + 1, why, sizeof why), 0, "%s", why);
    cr_expect_not_null(strstr(text[0], "\"windows\": 17, \"windows_not_written\": 25,"));
    uint64_t last = 0;
    int seen = 0;
    for (const char *p = text[0]; (p = strstr(p, "\"budget violation: frame ")) != NULL; seen++) {
        uint64_t seq = strtoull(p + strlen("\"budget violation: frame "), NULL, 10);
        cr_expect_gt(seq, last, "window of frame %llu after that of %llu", (unsigned long long)seq,
                     (unsigned long long)last);
        last = seq;
        p++;
    }
    cr_expect_eq(seen, RFX_TRACE_WINDOWS);
    for (int j = 0; j < V; j++) { /* each window names its slowest frame */
        char want_slowest[96];
        snprintf(want_slowest, sizeof want_slowest,
                 "\"slowest_frame\": %d, \"slowest_e2e_us\": %.3f}", 2 * K * (j + 1) + 10,
                 e2e[j] / 1e3);
        cr_expect_eq(strstr(text[0], want_slowest) != NULL, want[j], "%s", want_slowest);
    }
    const char *stop = strstr(text[0], "\"window 17: the last frames at the stop\"");
    cr_expect(stop && !strstr(stop + 1, "\"window "), "the stop's window comes last");
    /* each violation is its window's slowest frame and has its line: only
     * the stop's window gets a line of its own at its slowest frame */
    const char *line = strstr(text[0], "\"slowest frame of window ");
    cr_expect(line && strncmp(line, "\"slowest frame of window 17: ", 28) == 0 &&
                  !strstr(line + 1, "\"slowest frame of window "),
              "slowest-frame lines: %.60s", line ? line : "none");
    free(text[0]);
    free(text[1]);
    rfx_flight_fini(&fl);
    rfx_telemetry_destroy(t);
    rfx_engine_destroy(e);
}

/* A window's slowest frame, when it is not the frame that froze the window,
 * gets a line of its own at its end, where the viewer shows it. */
Test(telemetry, flight_window_marks_its_slowest_frame)
{
    enum { K = 64 };
    struct rfx_engine *e;
    struct rfx_telemetry *t = make_telemetry(NULL, 0, &e);
    struct rfx_flight fl;
    cr_assert_eq(rfx_flight_init(&fl, K), 0);
    struct rfx_frame f = {0};
    for (uint64_t i = 0; i < K; i++) {
        /* 10: over pattern's budget in 1 us; 20: 5 us end to end, within
         * every budget; the rest 10 ns */
        f.seq = i;
        f.scheduled_ns = e->start_ns + (int64_t)i * 100000;
        f.capture_ns = f.scheduled_ns + (i == 10 ? 1000 : i == 20 ? 5000 : 10);
        rfx_flight_record(&fl, &f, false, i == 10 ? 1 : -1, false, 0, false);
        rfx_flight_collect(&fl);
    }
    cr_assert_eq(fl.windows, 1);
    cr_assert_eq(fl.window[0].trigger, 10);
    cr_assert_eq(rfx_flight_write(&fl, e, t->n, &t->ladder, e->cfg.out_dir), 0);
    char path[sizeof e->cfg.out_dir + 16];
    snprintf(path, sizeof path, "%s/trace.json", e->cfg.out_dir);
    FILE *in = fopen(path, "r");
    cr_assert_not_null(in);
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    cr_assert_lt(len, sizeof text - 1);
    text[len] = 0;
    const char *line = strstr(text, "\"slowest frame of window 1: frame 20 (5.0 us end to end)\"");
    cr_assert_not_null(line, "no line at window 1's slowest frame");
    /* at frame 20's end, the end of its slice on the frames track */
    const char *end = strstr(text, "\"ph\": \"e\", \"id\": \"w1-20\", \"ts\": ");
    cr_assert_not_null(end);
    double ts_line = strtod(strstr(line, "\"ts\": ") + 6, NULL);
    double ts_end = strtod(end + strlen("\"ph\": \"e\", \"id\": \"w1-20\", \"ts\": "), NULL);
    cr_expect_eq(ts_line, ts_end, "the line at %.4f us, frame 20 ends at %.4f us", ts_line, ts_end);
    cr_expect_float_eq(ts_end, 20 * 100 + 5, 0.01, "frame 20 ends at %.4f us", ts_end);
    cr_expect_null(strstr(text, "\"slowest frame of window 1: frame 10 "),
                   "a line at the violation, which has its own");
    rfx_flight_fini(&fl);
    rfx_telemetry_destroy(t);
    rfx_engine_destroy(e);
}

/* The rings keep a frame's times once per run of equal times: every frame
 * of every window must come back whole, with the times it had, including
 * the oldest frames of a ring that has wrapped many times over and the
 * first frame after a ring is handed over (told "same as before" though
 * the new ring has nothing before it). */
Test(telemetry, flight_windows_hold_every_frames_own_times)
{
    enum { K = 64, N = 40 * K };
    struct rfx_flight fl;
    cr_assert_eq(rfx_flight_init(&fl, K), 0);
    struct rfx_frame *fr = calloc(N, sizeof *fr);
    int *reached = calloc(N, sizeof *reached); /* stages with times, as telemetry says */
    srand(11);
    int64_t now = 1000;
    for (uint64_t i = 0; i < N; i++) {
        struct rfx_frame *f = &fr[i];
        /* Frame 8 + K/2 of every 3K is the first of a fresh ring (the one
         * before it froze the ring), a burst-mate of the one before, and
         * over budget: its ring freezes before it wraps. */
        bool first_of_ring = i % (3 * K) == 8 + K / 2;
        if (i > 0 && (rand() % 8 != 0 || first_of_ring)) { /* runs of 8 frames on average */
            memcpy(&f->scheduled_ns, &fr[i - 1].scheduled_ns, sizeof(struct rfx_trace_times));
            reached[i] = reached[i - 1];
        } else {
            now += 1 + rand() % 1000;
            f->scheduled_ns = now;
            f->capture_ns = now + 1;
            for (int s = 0; s < RFX_MAX_STAGES; s++)
                stamp(f, s, now + 2 + 2 * s, now + 3 + 2 * s + rand() % 3);
            reached[i] = rand() % 4 ? RFX_MAX_STAGES : rand() % RFX_MAX_STAGES;
        }
        f->seq = i;
        f->level = (uint8_t)(i % 3);
        f->cache_result = (uint8_t)(i % 4);
        f->flags = (uint8_t)(i % 5 == 0   ? RFX_FRAME_RESCUED
                             : i % 5 == 1 ? RFX_FRAME_SINK_FAILED
                                          : 0);
        f->rescued_mask = i % 5 == 0 ? (uint8_t)(1u << i % RFX_MAX_STAGES) : 0;
        bool same = i > 0 && !memcmp(&f->scheduled_ns, &fr[i - 1].scheduled_ns,
                                     sizeof(struct rfx_trace_times));
        bool over = i % (3 * K) == 7 || first_of_ring;
        rfx_flight_record(&fl, f, same, over ? 2 : -1, false, reached[i], false);
        rfx_flight_collect(&fl);
    }
    cr_assert_geq(fl.windows, 10, "windows kept: %d", fl.windows);
    uint64_t checked = 0;
    for (int w = 0; w < fl.windows; w++) {
        /* frame 7 froze the first ring at 7 + 1 + K/2 frames; then a fresh
         * ring frozen by its first frame, and a wrapped one, by turns (past
         * the 16th window, a slower one takes the place of another) */
        uint64_t tr = fl.window[w].trigger;
        uint64_t want = tr == 7 ? 7 + 1 + K / 2 : tr % (3 * K) == 8 + K / 2 ? 1 + K / 2 : K;
        cr_assert_eq(fl.window[w].n, want, "window %d: %llu frames", w,
                     (unsigned long long)fl.window[w].n);
        for (uint64_t j = 0; j < fl.window[w].n; j++) {
            const struct rfx_trace_frame *x = &fl.kept[(size_t)w * K + j];
            cr_assert_lt(x->seq, (uint64_t)N);
            const struct rfx_frame *f = &fr[x->seq];
            if (j > 0)
                cr_assert_eq(x->seq, fl.kept[(size_t)w * K + j - 1].seq + 1, "in order");
            cr_assert_eq(x->scheduled_ns, f->scheduled_ns, "window %d frame %llu: scheduled", w,
                         (unsigned long long)x->seq);
            cr_assert_eq(x->capture_ns, f->capture_ns);
            for (int s = 0; s < RFX_MAX_STAGES; s++) {
                bool had = s < reached[x->seq];
                cr_assert_eq(x->enter_ns[s], had ? rfx_frame_time_ns(f, f->enter_at[s]) : 0,
                             "frame %llu: enter %d", (unsigned long long)x->seq, s);
                cr_assert_eq(x->exit_ns[s], had ? rfx_frame_time_ns(f, f->exit_at[s]) : 0,
                             "frame %llu: exit %d", (unsigned long long)x->seq, s);
            }
            cr_assert_eq(x->level, f->level);
            cr_assert_eq(x->cache_result, f->cache_result);
            cr_assert_eq(x->flags, f->flags, "frame %llu: flags (a rescued frame is marked)",
                         (unsigned long long)x->seq);
            cr_assert_eq(x->rescued, f->rescued_mask, "frame %llu: the stages rescued",
                         (unsigned long long)x->seq);
            cr_assert_eq(x->over_stage,
                         x->seq % (3 * K) == 7 || x->seq % (3 * K) == 8 + K / 2 ? 2 : -1);
            checked++;
        }
    }
    cr_expect_geq(checked, 10 * K);
    free(reached);
    free(fr);
    rfx_flight_fini(&fl);
}

/* The telemetry stage's flight recorder: whatever shortcut it takes for a
 * run of frames within budget, its rings and windows must be byte for byte
 * what recording each frame with rfx_flight_record gives, through budget
 * violations, hand-overs, violations while a hand-over is pending, and
 * windows collected between bursts. */
Test(telemetry, flight_recorder_as_frame_by_frame)
{
    const char *sets[] = {"budget.pattern=1,2,3", "budget.e2e=4,5,6", "telemetry.trace_frames=64",
                          "telemetry.trace_slow_us=1"};
    struct rfx_engine *e;
    struct rfx_telemetry *t = make_telemetry(sets, 4, &e);
    cr_assert_eq(t->flight.k, 64);
    struct rfx_flight ref;
    cr_assert_eq(rfx_flight_init(&ref, 64), 0);
    enum { N = 20000 };
    struct rfx_frame *fr = calloc(N, sizeof *fr);
    struct rfx_frame *ptr[N];
    srand(5);
    int64_t now = 1000000;
    for (int i = 0; i < N; i++) {
        struct rfx_frame *f = &fr[i];
        ptr[i] = f;
        if (i > 0 && rand() % 32 != 0) { /* long runs of burst-mates */
            memcpy(&f->scheduled_ns, &fr[i - 1].scheduled_ns, sizeof(struct rfx_trace_times));
            f->woke_mask = fr[i - 1].woke_mask;
            f->rescued_mask = fr[i - 1].rescued_mask;
        } else {
            f->rescued_mask = rand() % 7 == 0 ? (uint8_t)(1 + rand() % 127) : 0;
            now += 1000 + rand() % 5000;
            f->scheduled_ns = now;
            f->capture_ns = now + 1;
            int64_t at = f->capture_ns;
            /* rarely over pattern's 3-us p99 budget or the 6-us e2e one */
            int64_t slow = rand() % 24 == 0 ? 4000 : 0;
            for (int s = 0; s < S; s++) {
                int64_t in = at + 1;
                at = in + 1 + rand() % 700 + (s == 1 ? slow : 0);
                if (s == S - 1 && rand() % 16 == 0)
                    at += 5000;
                stamp(f, s, in, at);
            }
            now = at;
        }
        f->seq = (uint64_t)i;
        f->level = (uint8_t)(rand() % 3);
        f->cache_result = (uint8_t)(rand() % 4);
        f->drop_reason = rand() % 10 == 0 ? RFX_DROP_STAGE : RFX_DROP_NONE;
        f->reached = (uint8_t)(rand() % (S + 1)); /* read only when dropped */
        f->flags = rand() % 7 == 0 ? RFX_FRAME_RESCUED : 0;
    }
    int64_t p99_pattern = t->st[1].budget->p99_ns, p99_e2e = t->e2e_budget->p99_ns;
    int64_t slow_next = 1000; /* trace_slow_us, then twice each slow frame's */
    struct rfx_stage_env env = {.engine = e, .stage_index = S};
    int windows_checked = 0, slow_windows = 0;
    for (int i = 0; i < N;) {
        int n = 1 + rand() % 128;
        if (n > N - i)
            n = N - i;
        rfx_telemetry_ops.process(t, ptr + i, (size_t)n, &env);
        for (int j = i; j < i + n; j++) { /* the reference, frame by frame */
            const struct rfx_frame *f = &fr[j];
            bool same = j > i &&
                        !memcmp(&f->scheduled_ns, &fr[j - 1].scheduled_ns,
                                sizeof(struct rfx_trace_times)) &&
                        f->woke_mask == fr[j - 1].woke_mask &&
                        f->rescued_mask == fr[j - 1].rescued_mask &&
                        f->reached == fr[j - 1].reached && f->drop_reason == fr[j - 1].drop_reason;
            int over_stage = -1;
            for (int s = 0; s < S && over_stage < 0; s++)
                if (s == 1 && exit_of(f, s) - enter_of(f, s) > p99_pattern)
                    over_stage = s;
            bool ok = f->drop_reason == RFX_DROP_NONE;
            int64_t e2e = exit_of(f, S - 1) - f->scheduled_ns;
            bool over_e2e = ok && e2e > p99_e2e, slow = ok && e2e > slow_next;
            if (slow)
                slow_next = 2 * e2e;
            rfx_flight_record(&ref, f, same, over_stage, over_e2e, rfx_frame_reached(f, S), slow);
        }
        i += n;
        rfx_flight_collect(&t->flight);
        rfx_flight_collect(&ref);
        struct rfx_flight *g = &t->flight;
        cr_assert_eq(g->windows, ref.windows, "after frame %d: %d windows, want %d", i, g->windows,
                     ref.windows);
        cr_assert_eq(g->n, ref.n, "after frame %d: ring at %llu, want %llu", i,
                     (unsigned long long)g->n, (unsigned long long)ref.n);
        cr_assert_eq(g->cur, ref.cur);
        cr_assert_eq(g->freeze_at, ref.freeze_at);
        cr_assert_eq(g->missed, ref.missed);
        cr_assert_eq(g->ring[g->cur].nt, ref.ring[ref.cur].nt);
        for (int j = 0; j < 64; j++) {
            const struct rfx_trace_slot *a = &g->ring[g->cur].slot[j],
                                        *b = &ref.ring[ref.cur].slot[j];
            cr_assert(a->seq == b->seq && a->times == b->times && a->level == b->level &&
                          a->drop_reason == b->drop_reason && a->cache_result == b->cache_result &&
                          a->over_stage == b->over_stage && a->over_e2e == b->over_e2e &&
                          a->flags == b->flags && a->rescued == b->rescued,
                      "after frame %d: slot %d differs", i, j);
        }
        cr_assert(
            !memcmp(g->ring[g->cur].times, ref.ring[ref.cur].times, 64 * sizeof *g->ring[0].times),
            "after frame %d: the ring's times differ", i);
        for (; windows_checked < g->windows; windows_checked++) {
            int w = windows_checked;
            cr_assert_eq(g->window[w].n, ref.window[w].n);
            cr_assert_eq(g->window[w].trigger, ref.window[w].trigger);
            cr_assert_eq(g->window[w].cause, ref.window[w].cause);
            slow_windows += g->window[w].cause == RFX_TRACE_SLOW;
            cr_assert(!memcmp(&g->kept[(size_t)w * 64], &ref.kept[(size_t)w * 64],
                              g->window[w].n * sizeof *g->kept),
                      "window %d differs", w);
        }
    }
    cr_expect_geq(windows_checked, 5, "windows: %d", windows_checked);
    cr_expect_geq(slow_windows, 1, "windows around a slow frame: %d", slow_windows);
    cr_expect_gt(ref.missed, 0, "violations while a hand-over was pending");
    free(fr);
    rfx_flight_fini(&ref);
    rfx_telemetry_destroy(t);
    rfx_engine_destroy(e);
}

/* Bundle files are whole or absent: a commit renames the temporary file
 * over the real name; a write that fails (here /dev/full, as a full disk)
 * gives its own errno, and leaves neither the temporary file nor the real
 * name behind. */
/* summary.json's *_by_interval series cover the whole run in a bounded
 * array: entry i is intervals [i * per, (i + 1) * per), merged as
 * iv_series.h says, whatever the number of intervals. */
Test(iv_series, covers_the_whole_run_at_the_finest_step_that_fits)
{
    enum { CAP = 8, MAX = 300 };
    struct rfx_iv_point raw[MAX], store[CAP];
    srand(11);
    for (int i = 0; i < MAX; i++)
        raw[i] = (struct rfx_iv_point){.hits = (uint64_t)(rand() % 50),
                                       .lookups = 50 + (uint64_t)(rand() % 50),
                                       .hz = 0.5 + rand() % 8 * 0.5,
                                       .e2e_p99_ns = rand() % 5 ? rand() % 100000 : -1,
                                       .rss = rand() % 4 ? 1000 + (uint64_t)i : 0,
                                       .resident = 2000 + (uint64_t)i,
                                       .allocated = 3000 + (uint64_t)i,
                                       .level = rand() % 7 ? 0 : rand() % 5};
    for (int total = 1; total <= MAX; total++) {
        struct rfx_iv_series v;
        rfx_iv_series_init(&v, store, CAP);
        for (int i = 0; i < total; i++)
            rfx_iv_series_add(&v, &raw[i]);
        cr_assert_eq(v.intervals, (uint64_t)total);
        cr_assert(v.n >= 1 && v.n <= CAP && (v.per & (v.per - 1)) == 0);
        cr_assert_eq((uint64_t)(v.n - 1) * v.per + v.last, (uint64_t)total,
                     "%d intervals: %d entries of %llu, the last %llu", total, v.n,
                     (unsigned long long)v.per, (unsigned long long)v.last);
        cr_assert(v.per == 1 || v.n > CAP / 2, "%d intervals in %d entries of %llu: not the finest",
                  total, v.n, (unsigned long long)v.per);
        for (int e = 0; e < v.n; e++) {
            struct rfx_iv_point want = raw[e * v.per];
            for (uint64_t j = e * v.per + 1; j < (e + 1) * v.per && j < (uint64_t)total; j++) {
                const struct rfx_iv_point *x = &raw[j];
                want.hits += x->hits;
                want.lookups += x->lookups;
                want.hz = x->hz;
                want.e2e_p99_ns = x->e2e_p99_ns > want.e2e_p99_ns ? x->e2e_p99_ns : want.e2e_p99_ns;
                want.rss = x->rss ? x->rss : want.rss;
                want.resident = x->resident;
                want.allocated = x->allocated;
                want.level = x->level > want.level ? x->level : want.level;
            }
            const struct rfx_iv_point *got = &v.p[e];
            cr_assert(got->hits == want.hits && got->lookups == want.lookups &&
                          got->hz == want.hz && got->e2e_p99_ns == want.e2e_p99_ns &&
                          got->rss == want.rss && got->resident == want.resident &&
                          got->allocated == want.allocated && got->level == want.level,
                      "%d intervals, entry %d of %d (%llu each) differs", total, e, v.n,
                      (unsigned long long)v.per);
        }
    }
}

Test(outfile, written_whole_or_not_at_all_with_the_writes_errno)
{
    char dir[] = "/tmp/rfx-outfile-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct rfx_outfile o;
    cr_assert_eq(rfx_outfile_open(&o, dir, "a.txt"), 0);
    fprintf(o.f, "hello\n");
    cr_expect_eq(access(o.path, F_OK), -1, "nothing under the real name before the commit");
    cr_assert_eq(rfx_outfile_commit(&o, 0), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[16] = "";
    cr_expect_not_null(fgets(line, sizeof line, f));
    cr_expect_str_eq(line, "hello\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/a.txt.tmp", dir);
    cr_expect_eq(access(path, F_OK), -1, "no temporary file after a commit");

    /* A full device: the buffered writes fail at the flush with ENOSPC. */
    cr_assert_eq(rfx_outfile_open(&o, dir, "b.txt"), 0);
    fclose(o.f);
    o.f = fopen("/dev/full", "w");
    cr_assert_not_null(o.f);
    for (int i = 0; i < 1000; i++)
        fprintf(o.f, "line %d of a file that does not fit\n", i);
    cr_expect_eq(rfx_outfile_commit(&o, 0), -ENOSPC);
    cr_expect_eq(access(o.tmp, F_OK), -1, "the temporary file is removed");
    cr_expect_eq(access(o.path, F_OK), -1, "nothing under the real name");
    /* A writer that saw the stream fail and said EIO: the errno is better. */
    cr_assert_eq(rfx_outfile_open(&o, dir, "c.txt"), 0);
    fclose(o.f);
    o.f = fopen("/dev/full", "w");
    cr_assert_not_null(o.f);
    fprintf(o.f, "x");
    cr_expect_eq(rfx_outfile_commit(&o, -EIO), -ENOSPC);
    /* The caller's own failure wins, and the file is dropped. */
    cr_assert_eq(rfx_outfile_open(&o, dir, "d.txt"), 0);
    cr_expect_eq(rfx_outfile_commit(&o, -EINVAL), -EINVAL);
    cr_expect_eq(access(o.path, F_OK), -1);
    cr_expect_eq(access(o.tmp, F_OK), -1);
    snprintf(path, sizeof path, "%s/a.txt", dir);
    cr_expect_eq(unlink(path), 0);
    cr_expect_eq(rmdir(dir), 0, "only a.txt was left");
}

/* Entries in dir other than . and .. */
static int entries_in(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *x; d && (x = readdir(d)) != NULL;)
        n += strcmp(x->d_name, ".") != 0 && strcmp(x->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

/* Space kept for a file: allocated at once with no name, written over,
 * named and cut to what was written at the commit; one not used, or held
 * by a process that is killed, leaves nothing. */
Test(outfile, a_reservation_is_allocated_then_cut_to_what_was_written)
{
    char dir[] = "/tmp/rfx-outfile-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char tmp[128], path[128];
    snprintf(tmp, sizeof tmp, "%s/s.json.tmp", dir);
    snprintf(path, sizeof path, "%s/s.json", dir);
    FILE *stale = fopen(tmp, "w"); /* an earlier run's, killed */
    cr_assert_not_null(stale);
    fclose(stale);
    struct rfx_reserve r;
    cr_assert_eq(rfx_outfile_reserve(&r, dir, "s.json", 1 << 20), 0);
    cr_assert_geq(r.fd, 0);
    cr_expect(!r.named, "O_TMPFILE on ext4 and tmpfs");
    cr_expect_eq(entries_in(dir), 0, "the reservation has no name; the stale one is gone");
    struct stat st;
    cr_assert_eq(fstat(r.fd, &st), 0);
    cr_expect(st.st_size == 1 << 20 && st.st_blocks * 512 >= 1 << 20,
              "1 MiB allocated: size %lld, %lld blocks", (long long)st.st_size,
              (long long)st.st_blocks);
    struct rfx_outfile o;
    cr_assert_eq(rfx_outfile_open_reserved(&o, &r, dir, "s.json"), 0);
    cr_expect(o.reserved);
    cr_expect_eq(r.fd, -1, "taken");
    fprintf(o.f, "{\"a\": 1}\n");
    cr_assert_eq(rfx_outfile_commit(&o, 0), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_size, 9, "cut to what was written: %lld bytes", (long long)st.st_size);
    cr_expect(st.st_blocks * 512 < 1 << 20, "the rest of the space is freed");
    cr_expect_eq(access(tmp, F_OK), -1);
    cr_expect_eq(entries_in(dir), 1, "s.json only");
    /* Without a reservation (used, or never made): an ordinary new file. */
    cr_assert_eq(rfx_outfile_open_reserved(&o, &r, dir, "t.json"), 0);
    cr_expect(!o.reserved);
    cr_assert_eq(rfx_outfile_commit(&o, 0), 0);
    /* More than the disk has: refused, no file left. */
    int rc = rfx_outfile_reserve(&r, dir, "u.json", (off_t)1 << 50);
    cr_expect(rc == -EFBIG || rc == -ENOSPC, "1 PiB: %s", strerror(-rc));
    cr_expect_eq(r.fd, -1);
    cr_assert_eq(rfx_outfile_reserve(&r, dir, "v.json", 4096), 0);
    rfx_outfile_unreserve(&r, dir, "v.json");
    cr_expect_eq(r.fd, -1);
    /* A process killed while it holds one leaves nothing. */
    pid_t child = fork();
    if (child == 0) {
        struct rfx_reserve k;
        if (rfx_outfile_reserve(&k, dir, "w.json", 1 << 20) == 0)
            raise(SIGKILL);
        _exit(1);
    }
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the child reserved, then was killed");
    cr_expect_eq(entries_in(dir), 2, "s.json and t.json only");
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -r %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* What a caller adds to summary.json must keep it parseable: valid member
 * lists pass, anything else is refused with the byte it went wrong at. */
Test(json_check, member_lists_pass_and_everything_else_is_named)
{
    static const char *const good[] = {
        "\"a\": 1",
        " \"demo\": {\"score\": 3, \"x\": [1, -2.5e3, 0, 0.125, 1E+2, true, false, null]} ",
        "\"s\": \"quote \\\" backslash \\\\ \\u00e9 \\n\", \"e\": {}, \"l\": []",
        "\"n\": [[[]]], \"o\": {\"p\": {\"q\": [{}]}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char why[120] = "";
        cr_expect_eq(rfx_json_members_check(good[i], why, sizeof why), 0, "%s: %s", good[i], why);
    }
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "no members at byte 0"},
        {"  ", "no members at byte 2"},
        {"\"a\"", "expected ':' after a member's name at byte 3"},
        {"\"a\": ", "expected a value at byte 5"},
        {"\"a\": 1,", "expected a string at byte 7"},
        {"{\"a\": 1}", "expected a string at byte 0"},
        {"\"a\": 01", "expected ',' or the end at byte 6"},
        {"\"a\": [1,]", "expected a value at byte 8"},
        {"\"a\": \"x", "a string is not closed at byte 7"},
        {"\"a\": tru", "expected a value at byte 5"},
        {"\"a\": 1 \"b\": 2", "expected ',' or the end at byte 7"},
        {"\"a\": \"\x01\"", "a control character in a string at byte 6"},
        {"\"a\": \"\\x\"", "an unknown escape at byte 6"},
        {"\"a\": \"\\u12\"", "a \\u escape without four hex digits at byte 6"},
        {"\"a\": 1.", "a number without digits at byte 7"},
        {"\"a\": {\"b\": 1", "expected ',' or '}' at byte 12"},
        {"\"a\": [1 2]", "expected ',' or ']' at byte 8"},
        {"\"a\": NaN", "expected a value at byte 5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char why[120] = "";
        cr_expect_eq(rfx_json_members_check(bad[i].text, why, sizeof why), -EINVAL, "'%s'",
                     bad[i].text);
        cr_expect_str_eq(why, bad[i].why, "'%s'", bad[i].text);
    }
    char deep[300] = "\"a\": ";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    char why[120] = "";
    cr_expect_eq(rfx_json_members_check(deep, why, sizeof why), -EINVAL);
    cr_expect(strstr(why, "nested more than 64 deep"), "%s", why);
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    struct rfx_engine *e;
    cr_assert_eq(rfx_engine_create(&c, &e), 0);
    cr_expect_eq(rfx_engine_set_summary_extra(e, "\"bot\": {\"level\": 3}"), 0);
    cr_expect_eq(rfx_engine_set_summary_extra(e, "\"bot\": {\"level\": 3},"), -EINVAL);
    rfx_engine_destroy(e);
}
