/*
 * The flight recorder's off-path half: keeping frozen rings as windows, and
 * rendering them at the end as Chrome trace events (the JSON object format,
 * {"traceEvents": [...]}), which Perfetto, Chrome's DevTools and
 * chrome://tracing open. One track per thread of the pipeline (named
 * rfx-NAME with its stages), one complete ("X") slice per stage call (the
 * frames of a burst share it), an async span per frame from its scheduled
 * capture time to its end, the frame that froze a window flagged (a
 * violating one's slices named "... OVER"; a global instant event at its
 * end), and the ladder's transitions as global instant events. Timestamps are microseconds since
 * the run's start, in binary fractions (tq below).
 */
#include "flight_recorder.h"

#include "degrade.h"
#include "engine_impl.h"
#include "memtouch.h"
#include "outfile.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rfx_flight_init(struct rfx_flight *fl, uint32_t k)
{
    memset(fl, 0, sizeof *fl);
    fl->onset = -1;
    atomic_init(&fl->ready, 0);
    if (k == 0)
        return 0;
    while (k & (k - 1)) /* up to a power of two: the ring index is a mask */
        k += k & -k;
    for (int i = 0; i < 2; i++) {
        fl->ring[i].slot = calloc(k, sizeof *fl->ring[i].slot);
        fl->ring[i].times = calloc(k, sizeof *fl->ring[i].times);
        if (!fl->ring[i].slot || !fl->ring[i].times) {
            rfx_flight_fini(fl);
            return -ENOMEM;
        }
        /* the first lap must not fault */
        rfx_touch_zeroed(fl->ring[i].slot, k * sizeof *fl->ring[i].slot);
        rfx_touch_zeroed(fl->ring[i].times, k * sizeof *fl->ring[i].times);
    }
    /* Only the reporter writes the windows, so they are not mapped ahead:
     * a first write to a fresh page maps it without a TLB flush of the
     * critical cores (it is a page read first that would cost one). */
    fl->kept = calloc((size_t)(RFX_TRACE_WINDOWS + 1) * k, sizeof *fl->kept);
    if (!fl->kept)
        return -ENOMEM;
    fl->k = k;
    return 0;
}

void rfx_flight_fini(struct rfx_flight *fl)
{
    free(fl->kept);
    for (int i = 0; i < 2; i++) {
        free(fl->ring[i].slot);
        free(fl->ring[i].times);
    }
    memset(fl, 0, sizeof *fl);
}

/* The slowest end to end of the `n` frames written into `ring` (from a
 * frame's scheduled capture time to its last stage's exit, as rendered). */
static int64_t ring_worst(const struct rfx_flight *fl, const struct rfx_trace_ring *ring,
                          uint64_t n)
{
    uint64_t cnt = n < fl->k ? n : fl->k;
    int64_t worst = 0;
    for (uint64_t i = 0; i < cnt; i++) {
        const struct rfx_trace_slot *x = &ring->slot[i];
        const struct rfx_trace_times *t = &ring->times[x->times];
        int64_t e2e = x->reached ? rfx_stamp_since(t->scheduled_ns, t->exit_at[x->reached - 1])
                      : t->capture_ns > 0 ? t->capture_ns - t->scheduled_ns
                                          : 0;
        if (e2e > worst)
            worst = e2e;
    }
    return worst;
}

/* Whether a window of `cause` whose slowest frame took `worst` ns ranks
 * above w. */
static bool outranks(enum rfx_trace_cause cause, int64_t worst, const struct rfx_trace_window *w)
{
    bool v = cause == RFX_TRACE_VIOLATION, wv = w->cause == RFX_TRACE_VIOLATION;
    return v != wv ? v : worst > w->worst_ns;
}

/* Keep the `n` frames written into `ring` (the last k of them, oldest
 * first) as a window: the stop's in its own place; any other in a free
 * one, or else in place of the least window below it but the first
 * violation's; counted when it is not kept or replaces one. */
static void keep(struct rfx_flight *fl, const struct rfx_trace_ring *ring, uint64_t n,
                 uint64_t trigger, enum rfx_trace_cause cause)
{
    int dst = RFX_TRACE_WINDOWS;
    int64_t worst = 0;
    if (cause != RFX_TRACE_STOP) {
        worst = ring_worst(fl, ring, n);
        if (fl->windows < RFX_TRACE_WINDOWS) {
            dst = fl->windows++;
        } else {
            fl->windows_dropped++;
            dst = -1;
            for (int i = 0; i < RFX_TRACE_WINDOWS; i++)
                if (i != fl->onset &&
                    (dst < 0 || outranks((enum rfx_trace_cause)fl->window[dst].cause,
                                         fl->window[dst].worst_ns, &fl->window[i])))
                    dst = i;
            if (!outranks(cause, worst, &fl->window[dst]))
                return;
        }
        if (cause == RFX_TRACE_VIOLATION && fl->onset < 0)
            fl->onset = dst;
    }
    struct rfx_trace_window *w = &fl->window[dst];
    struct rfx_trace_frame *out = fl->kept + (size_t)dst * fl->k;
    uint64_t cnt = n < fl->k ? n : fl->k, first = n < fl->k ? 0 : n & (fl->k - 1);
    for (uint64_t i = 0; i < cnt; i++) {
        const struct rfx_trace_slot *x = &ring->slot[(first + i) & (fl->k - 1)];
        const struct rfx_trace_times *t = &ring->times[x->times];
        struct rfx_trace_frame *o = &out[i];
        o->seq = x->seq;
        o->scheduled_ns = t->scheduled_ns;
        o->capture_ns = t->capture_ns;
        for (int s = 0; s < RFX_MAX_STAGES; s++) {
            bool had = s < x->reached;
            o->enter_ns[s] =
                had ? t->scheduled_ns + rfx_stamp_since(t->scheduled_ns, t->enter_at[s]) : 0;
            o->exit_ns[s] =
                had ? t->scheduled_ns + rfx_stamp_since(t->scheduled_ns, t->exit_at[s]) : 0;
        }
        o->level = x->level;
        o->drop_reason = x->drop_reason;
        o->cache_result = x->cache_result;
        o->over_stage = x->over_stage;
        o->over_e2e = x->over_e2e;
        o->flags = x->flags;
        o->rescued = x->rescued;
    }
    w->n = cnt;
    w->trigger = trigger;
    w->worst_ns = worst;
    w->has_trigger = cause != RFX_TRACE_STOP;
    w->cause = (uint8_t)cause;
}

void rfx_flight_collect(struct rfx_flight *fl)
{
    if (!fl->k || !atomic_load_explicit(&fl->ready, memory_order_acquire)) /* F1 */
        return;
    keep(fl, &fl->ring[fl->frozen], fl->frozen_n, fl->frozen_seq,
         (enum rfx_trace_cause)fl->frozen_cause);
    atomic_store_explicit(&fl->ready, 0, memory_order_release); /* F2 */
}

/*
 * Times in the file: microseconds since the run's start, in steps of 2^-10
 * us (0.98 ns). A viewer adds a slice's "dur" to its "ts" in binary floating
 * point and compares the end with the next slice's start; with 1-ns decimals
 * (".249") the sum can come out a hair past the next start (Chrome's
 * DevTools then takes the two for overlapping and leaves the second out of
 * the thread's track). A multiple of 2^-10 prints exactly in at most ten
 * decimals and parses back to the same double, and the sum of two such
 * values below 2^42 us is exact, so a slice ends exactly where the next one
 * on its thread starts.
 */
static int64_t tq(const struct rfx_engine *e, int64_t ns)
{
    int64_t d = ns - e->start_ns; /* ns * 1024/1000, to the nearest step */
    return d >= 0 ? (d * 128 + 62) / 125 : -((-d * 128 + 62) / 125);
}

/* A time or duration of q steps, as a JSON number. */
static void put_q(FILE *f, int64_t q)
{
    if (q < 0) {
        fputc('-', f);
        q = -q;
    }
    fprintf(f, "%" PRId64, q >> 10);
    int64_t frac = (q & 1023) * 9765625; /* (q mod 1024)/1024 in units of 1e-10 */
    if (frac) {
        char d[11];
        snprintf(d, sizeof d, "%010" PRId64, frac);
        int n = 10;
        while (d[n - 1] == '0')
            n--;
        fprintf(f, ".%.*s", n, d);
    }
}

/* Every event follows another: the metadata events come first. */
static void event_sep(FILE *f)
{
    fputs(",\n", f);
}

/*
 * Window `wi`, the file's window `w` (from 1), as trace events. The frames of a
 * burst go through a stage in one call and share its times: such a call is
 * one slice, its first frame in "frame" and how many in "frames" (frames
 * dropped before the stage are not in it), named OVER if any of them was
 * over the stage's budget there and flagged if it holds the violating
 * frame; its level is its first frame's. Equal slices would stack.
 */
static void render(FILE *f, const struct rfx_flight *fl, struct rfx_engine *e, int n_stages, int wi,
                   int w)
{
    const struct rfx_trace_window *win = &fl->window[wi];
    const struct rfx_trace_frame *frames = fl->kept + (size_t)wi * fl->k;
    /* the argument that marks the frame that froze the window */
    const char *mark =
        win->cause == RFX_TRACE_SLOW ? ", \"slow_frame\": true" : ", \"violating_frame\": true";
    int64_t last_enter[RFX_MAX_STAGES] = {0}, last_exit[RFX_MAX_STAGES] = {0}; /* slices written */
    int64_t slowest_ns = -1, slowest_end = 0;
    uint64_t slowest = 0;
    for (uint64_t i = 0; i < win->n; i++) {
        const struct rfx_trace_frame *x = &frames[i];
        bool flagged = win->has_trigger && x->seq == win->trigger;
        int64_t end = 0;
        for (int s = 0; s < n_stages; s++) {
            if (x->exit_ns[s] == 0)
                continue;
            end = x->exit_ns[s];
            if (x->enter_ns[s] == last_enter[s] && x->exit_ns[s] == last_exit[s])
                continue; /* in the slice of a frame before it */
            last_enter[s] = x->enter_ns[s];
            last_exit[s] = x->exit_ns[s];
            uint64_t k = 1;
            bool over = x->over_stage == s, has_trigger = flagged;
            for (uint64_t j = i + 1; j < win->n; j++) {
                const struct rfx_trace_frame *y = &frames[j];
                if (y->exit_ns[s] == 0)
                    continue; /* dropped before this stage */
                if (y->enter_ns[s] != x->enter_ns[s] || y->exit_ns[s] != x->exit_ns[s])
                    break;
                k++;
                over |= y->over_stage == s;
                has_trigger |= win->has_trigger && y->seq == win->trigger;
            }
            int64_t t0 = tq(e, x->enter_ns[s]);
            /* On the track of the thread that ran it: a rescued stage's
             * slice is its rescuer's. */
            const struct rfx_xthread *home = &e->threads[e->stages[s].thread];
            bool rescued = (x->rescued >> s & 1) && home->rescuable;
            int tid = (rescued ? home->rescuer : home->idx) + 1;
            event_sep(f);
            fprintf(f, "{\"name\": \"%s%s\", \"cat\": \"stage\", \"ph\": \"X\", \"ts\": ",
                    e->stages[s].name, over ? " OVER p99 budget" : "");
            put_q(f, t0);
            fputs(", \"dur\": ", f);
            put_q(f, tq(e, x->exit_ns[s]) - t0);
            fprintf(f,
                    ", \"pid\": 1, \"tid\": %d, \"args\": {\"frame\": %" PRIu64
                    ", \"frames\": %" PRIu64 ", \"stage\": \"%s\", \"level\": \"%s\", "
                    "\"window\": %d%s",
                    tid, x->seq, k, e->stages[s].name, rfx_level_name((enum rfx_level)x->level), w,
                    has_trigger ? mark : "");
            if (rescued)
                fprintf(f, ", \"rescued_from\": \"rfx-%s\"", home->cfg.name);
            fputs("}}", f);
        }
        if (end == 0)
            end = x->capture_ns > 0 ? x->capture_ns : x->scheduled_ns;
        if (end - x->scheduled_ns > slowest_ns) {
            slowest_ns = end - x->scheduled_ns;
            slowest = x->seq;
            slowest_end = end;
        }
        char name[96];
        if (x->drop_reason)
            snprintf(name, sizeof name, "frame %" PRIu64 " dropped (%s)", x->seq,
                     rfx_drop_reason_name((enum rfx_drop_reason)x->drop_reason));
        else
            snprintf(name, sizeof name, "frame %" PRIu64 "%s%s", x->seq,
                     x->over_e2e ? " OVER e2e p99 budget" : "",
                     x->flags & RFX_FRAME_RESCUED ? " (rescued)" : "");
        event_sep(f);
        fprintf(f,
                "{\"name\": \"%s\", \"cat\": \"frame\", \"ph\": \"b\", \"id\": \"w%d-%" PRIu64
                "\", \"ts\": ",
                name, w, x->seq);
        put_q(f, tq(e, x->scheduled_ns));
        fprintf(f,
                ", \"pid\": 1, \"tid\": 0, \"args\": {\"frame\": %" PRIu64
                ", \"e2e_us\": %.3f%s%s}},\n"
                "{\"name\": \"%s\", \"cat\": \"frame\", \"ph\": \"e\", \"id\": \"w%d-%" PRIu64
                "\", \"ts\": ",
                x->seq, (end - x->scheduled_ns) / 1e3, flagged ? mark : "",
                x->flags & RFX_FRAME_RESCUED
                    ? ", \"rescued\": \"some of its stages ran on another critical thread (their "
                      "own was late); their slices are on the track of the thread that ran them, "
                      "with a rescued_from argument\""
                    : "",
                name, w, x->seq);
        put_q(f, tq(e, end));
        fputs(", \"pid\": 1, \"tid\": 0}", f);
        if (flagged && win->cause == RFX_TRACE_SLOW) {
            event_sep(f);
            fprintf(f,
                    "{\"name\": \"slow frame: frame %" PRIu64 " (%.1f us end to end, within "
                    "its budgets)\", \"cat\": \"slow\", \"ph\": \"i\", \"s\": \"g\", \"ts\": ",
                    x->seq, (end - x->scheduled_ns) / 1e3);
            put_q(f, tq(e, end));
            fprintf(f,
                    ", \"pid\": 1, \"tid\": 0, \"args\": {\"frame\": %" PRIu64 ", \"window\": %d}}",
                    x->seq, w);
        } else if (flagged) {
            event_sep(f);
            fprintf(f,
                    "{\"name\": \"budget violation: frame %" PRIu64 " (%s)\", \"cat\": "
                    "\"violation\", \"ph\": \"i\", \"s\": \"g\", \"ts\": ",
                    x->seq,
                    x->over_e2e          ? "end to end over its p99 budget"
                    : x->over_stage >= 0 ? e->stages[x->over_stage].name
                                         : "");
            put_q(f, tq(e, end));
            fprintf(f,
                    ", \"pid\": 1, \"tid\": 0, \"args\": {\"frame\": %" PRIu64 ", \"window\": %d}}",
                    x->seq, w);
        }
    }
    event_sep(f);
    fprintf(f,
            "{\"name\": \"window %d: %s\", \"cat\": \"window\", \"ph\": \"i\", \"s\": \"g\", "
            "\"ts\": ",
            w,
            win->cause == RFX_TRACE_VIOLATION ? "frames around a budget violation"
            : win->cause == RFX_TRACE_SLOW    ? "frames around a slow frame"
                                              : "the last frames at the stop");
    put_q(f, win->n ? tq(e, frames[0].scheduled_ns) : 0);
    fprintf(f, ", \"pid\": 1, \"tid\": 0, \"args\": {\"frames\": %" PRIu64, win->n);
    if (win->n)
        fprintf(f, ", \"slowest_frame\": %" PRIu64 ", \"slowest_e2e_us\": %.3f", slowest,
                slowest_ns / 1e3);
    fputs("}}", f);
    /* A line at the window's slowest frame's end, unless the frame that
     * froze the window is that frame and already has one. */
    if (win->n && !(win->has_trigger && win->trigger == slowest)) {
        event_sep(f);
        fprintf(f,
                "{\"name\": \"slowest frame of window %d: frame %" PRIu64 " (%.1f us end to "
                "end)\", \"cat\": \"slowest\", \"ph\": \"i\", \"s\": \"g\", \"ts\": ",
                w, slowest, slowest_ns / 1e3);
        put_q(f, tq(e, slowest_end));
        fprintf(f, ", \"pid\": 1, \"tid\": 0, \"args\": {\"frame\": %" PRIu64 ", \"window\": %d}}",
                slowest, w);
    }
}

int rfx_flight_write(struct rfx_flight *fl, struct rfx_engine *e, int n_stages,
                     const struct rfx_ladder *ladder, const char *dir)
{
    if (!fl->k) { /* off: no trace.json, not even a previous run's */
        char path[RFX_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/trace.json", dir);
        return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
    }
    rfx_flight_collect(fl);
    keep(fl, &fl->ring[fl->cur], fl->n, 0, RFX_TRACE_STOP); /* a second write: the same */
    /* in the file in the order they came, the stop's last */
    int order[RFX_TRACE_WINDOWS + 1], n_win = 0;
    for (int i = 0; i < fl->windows; i++) {
        int j = n_win++;
        for (; j > 0 && fl->window[order[j - 1]].trigger > fl->window[i].trigger; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    order[n_win++] = RFX_TRACE_WINDOWS;
    struct rfx_outfile o;
    int rc = rfx_outfile_open(&o, dir, "trace.json");
    if (rc)
        return rc;
    FILE *f = o.f;
    fprintf(f,
            "{\"displayTimeUnit\": \"ms\", \"otherData\": {\"windows\": %d, "
            "\"windows_not_written\": %" PRIu64 ", \"violations_not_traced\": %" PRIu64
            ", \"frames_per_window\": %u},\n\"traceEvents\": [\n",
            n_win, fl->windows_dropped, fl->missed, fl->k);
    fprintf(f, "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": 0, \"args\": "
               "{\"name\": \"reflex\"}},\n"
               "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": 0, \"args\": "
               "{\"name\": \"frames (scheduled capture to end)\"}}");
    for (int t = 0; t < e->n_threads; t++) {
        fprintf(f,
                ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": %d, \"args\": "
                "{\"name\": \"rfx-%s:",
                t + 1, e->threads[t].cfg.name);
        for (int s = 0; s < e->threads[t].n_stages; s++)
            fprintf(f, " %s", e->stages[e->threads[t].first_stage + s].name);
        fprintf(f, "\"}}");
    }
    for (int w = 0; w < n_win; w++)
        render(f, fl, e, n_stages, order[w], w + 1);
    for (int i = 0; i < ladder->n_transitions; i++) {
        const struct rfx_transition *x = &ladder->transitions[i];
        event_sep(f);
        fprintf(f,
                "{\"name\": \"level %s -> %s\", \"cat\": \"degradation\", \"ph\": \"i\", \"s\": "
                "\"g\", \"ts\": ",
                rfx_level_name(x->from), rfx_level_name(x->to));
        put_q(f, tq(e, e->start_ns + (int64_t)llround(x->t_s * 1e9)));
        fputs(", \"pid\": 1, \"tid\": 0, \"args\": {\"cause\": \"", f);
        for (const char *c = x->cause; *c; c++)
            fputc(*c == '"' || *c == '\\' ? '\'' : *c, f);
        fputs("\"}}", f);
    }
    fputs("\n]}\n", f);
    return rfx_outfile_commit(&o, 0);
}
