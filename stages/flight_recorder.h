/*
 * The flight recorder (stages/flight_recorder.c): the last K frames'
 * timelines, kept by the telemetry stage in a preallocated ring, written as
 * Chrome trace event JSON (trace.json) around each budget violation and at
 * the stop.
 *
 * Two rings of K frames. The telemetry stage writes the current one; on a
 * frame over a p99 budget, or a slow one (end to end over `trace_slow_us`
 * and twice as slow as the last slow frame traced), when the other ring is
 * free, it notes the frame and, K/2 frames later, hands the current ring to
 * the reporter (a release store of `ready`) and goes on in the other one:
 * O(1) on the critical path, nothing allocated.
 *
 * A ring holds each frame's own fields in a 24-byte slot, and its times
 * (scheduled, capture, every stage's enter and exit: 128 bytes) in a times
 * ring of K entries, written only when they differ from the previous
 * frame's. At full speed the frames of a burst share their times, so a
 * frame costs a slot, not a copy of its timeline. A slot's times entry
 * outlives it: at most one entry is written per frame, so the K-1 frames
 * written after the oldest slot cannot have overwritten its entry.
 *
 * The reporter (acquire), which looks every half ring's time (at least
 * RFX_TRACE_POLL_NS), copies the
 * frozen ring into one of RFX_TRACE_WINDOWS windows allocated at init
 * (once they are all taken, in place of the least of them) and frees it
 * (release); the windows become JSON only when trace.json is written, so
 * the reporter neither formats nor allocates during the run. The first
 * violation while the other ring is still waiting for the reporter freezes
 * its window once that ring is back, if it is still in its own ring by
 * then; any other is counted, not traced.
 */
#ifndef REFLEX_FLIGHT_RECORDER_H
#define REFLEX_FLIGHT_RECORDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <reflex/stage.h>

#define RFX_TRACE_WINDOWS                                                                          \
    16 /* windows kept around violations and slow frames (the rest                                 \
          are counted), besides the one at the stop */

/* How often, at least, the reporter looks for a frozen ring (the time of
 * half a ring's frames, if longer): a ring it holds cannot freeze the next
 * window, so this bounds how long a run of violations goes untraced. */
#define RFX_TRACE_POLL_NS 10000000

/* What made a window. */
enum rfx_trace_cause {
    RFX_TRACE_STOP = 0,      /* the last frames at the stop */
    RFX_TRACE_VIOLATION = 1, /* a frame over a p99 budget */
    RFX_TRACE_SLOW = 2,      /* a slow frame within its budgets */
};

struct rfx_trace_frame {
    uint64_t seq;
    int64_t scheduled_ns, capture_ns;
    int64_t enter_ns[RFX_MAX_STAGES], exit_ns[RFX_MAX_STAGES]; /* CLOCK_MONOTONIC; 0: never */
    uint32_t level;
    uint8_t drop_reason, cache_result;
    int8_t over_stage; /* the first stage over its p99 budget, -1: none */
    uint8_t over_e2e;  /* end to end over its p99 budget */
    uint8_t flags;     /* the frame's RFX_FRAME_* */
    uint8_t rescued;   /* the frame's rescued_mask */
};

/* What a ring keeps per frame; its times are in the ring's times[]. */
struct rfx_trace_slot {
    uint64_t seq;
    uint32_t times; /* index into times[] */
    uint32_t level;
    uint8_t drop_reason, cache_result;
    int8_t over_stage;
    uint8_t over_e2e;
    uint8_t reached; /* stages with times (telemetry's count) */
    uint8_t flags;   /* the frame's RFX_FRAME_* */
    uint8_t rescued; /* the frame's rescued_mask */
};
_Static_assert(sizeof(struct rfx_trace_slot) == 24, "a slot is 24 bytes");

/* scheduled_ns .. exit_at[] of a frame, as laid out there. */
struct rfx_trace_times {
    int64_t scheduled_ns, capture_ns;
    uint32_t enter_at[RFX_MAX_STAGES], exit_at[RFX_MAX_STAGES];
};

_Static_assert(offsetof(struct rfx_frame, exit_at) + sizeof(((struct rfx_frame *)0)->exit_at) -
                           offsetof(struct rfx_frame, scheduled_ns) ==
                       sizeof(struct rfx_trace_times) &&
                   offsetof(struct rfx_frame, enter_at) -
                           offsetof(struct rfx_frame, scheduled_ns) ==
                       offsetof(struct rfx_trace_times, enter_at) &&
                   offsetof(struct rfx_frame, exit_at) - offsetof(struct rfx_frame, scheduled_ns) ==
                       offsetof(struct rfx_trace_times, exit_at),
               "a frame's times are contiguous, from scheduled_ns to exit_at[], as here");

struct rfx_trace_ring {
    struct rfx_trace_slot *slot;   /* k */
    struct rfx_trace_times *times; /* k */
    uint64_t nt;                   /* times entries written */
};

struct rfx_flight {
    uint32_t k; /* frames per ring, a power of two; 0: off */
    struct rfx_trace_ring ring[2];
    /* the telemetry stage's */
    int cur;
    uint64_t n;         /* frames written into ring[cur] */
    uint64_t freeze_at; /* hand ring[cur] over when n reaches this (0: none pending) */
    uint64_t pending_seq;
    uint8_t pending_cause; /* enum rfx_trace_cause */
    uint64_t missed;       /* violations (or slow frames) while the other ring was busy */
    /* the first of them, to freeze a window around once the reporter frees
     * the other ring, if it is still in this one by then */
    bool late;
    uint8_t late_cause;
    uint64_t late_seq, late_n; /* its sequence, and fl->n just after it */
    /* handed over */
    _Atomic int ready; /* 1: ring[frozen] is the reporter's */
    int frozen;
    uint64_t frozen_n, frozen_seq;
    uint8_t frozen_cause;
    /* the reporter's: up to RFX_TRACE_WINDOWS windows, each a copy of a
     * frozen ring in order (k frames each, allocated at init), and in
     * window[RFX_TRACE_WINDOWS] the last frames at the stop, rendered only
     * when trace.json is written. Once every window is taken, a new one
     * takes the place of the least of them (the first violation's is
     * kept): a violation ranks above a slow frame, then the slower its
     * slowest frame, the higher. */
    struct rfx_trace_frame *kept;
    struct rfx_trace_window {
        uint64_t n;       /* frames in it */
        uint64_t trigger; /* the frame that froze it */
        int64_t worst_ns; /* its slowest frame's end to end */
        bool has_trigger; /* false: the last frames at the stop */
        uint8_t cause;    /* enum rfx_trace_cause */
    } window[RFX_TRACE_WINDOWS + 1];
    int windows;              /* taken, not counting the stop's */
    int onset;                /* the first violation's window, -1: none yet */
    uint64_t windows_dropped; /* frozen but not in the file: refused or replaced */
};

int rfx_flight_init(struct rfx_flight *fl, uint32_t k);
void rfx_flight_fini(struct rfx_flight *fl);

/* Telemetry stage, per frame. same_times: its scheduled_ns .. exit_at[]
 * equal those of the frame recorded just before it (false is always safe);
 * reached: how many stages' times are its own (the rest are left out);
 * slow: trace a window around it, as for a violation, though it is within
 * its budgets. */
static inline void rfx_flight_record(struct rfx_flight *fl, const struct rfx_frame *f,
                                     bool same_times, int over_stage, bool over_e2e, int reached,
                                     bool slow)
{
    if (!fl->k)
        return;
    struct rfx_trace_ring *r = &fl->ring[fl->cur];
    if (!same_times || fl->n == 0) {
        memcpy(&r->times[r->nt & (fl->k - 1)], &f->scheduled_ns, sizeof *r->times);
        r->nt++;
    }
    struct rfx_trace_slot *x = &r->slot[fl->n & (fl->k - 1)];
    x->seq = f->seq;
    x->times = (uint32_t)((r->nt - 1) & (fl->k - 1));
    x->level = f->level;
    x->drop_reason = f->drop_reason;
    x->cache_result = f->cache_result;
    x->over_stage = (int8_t)over_stage;
    x->over_e2e = over_e2e;
    x->reached = (uint8_t)reached;
    x->flags = f->flags;
    x->rescued = f->rescued_mask;
    fl->n++;
    bool violation = over_stage >= 0 || over_e2e;
    if ((violation || slow) && fl->freeze_at == 0) {
        if (atomic_load_explicit(&fl->ready, memory_order_acquire)) { /* F2 */
            if (fl->late) {
                fl->missed++;
            } else {
                fl->late = true;
                fl->late_seq = f->seq;
                fl->late_n = fl->n;
                fl->late_cause = violation ? RFX_TRACE_VIOLATION : RFX_TRACE_SLOW;
            }
        } else {
            fl->freeze_at = fl->n + fl->k / 2;
            fl->pending_seq = f->seq;
            fl->pending_cause = violation ? RFX_TRACE_VIOLATION : RFX_TRACE_SLOW;
        }
    }
    if (fl->late && !atomic_load_explicit(&fl->ready, memory_order_acquire)) { /* F2 */
        /* the other ring is free again: freeze this one around the frame
         * that found it held, half a ring after it (or now, if that is
         * past), if it is still in the ring by then */
        fl->late = false;
        if (fl->n - fl->late_n < fl->k) {
            uint64_t half = fl->late_n + fl->k / 2;
            fl->freeze_at = half > fl->n ? half : fl->n;
            fl->pending_seq = fl->late_seq;
            fl->pending_cause = fl->late_cause;
        } else {
            fl->missed++;
        }
    }
    if (fl->freeze_at && fl->n >= fl->freeze_at) {
        fl->frozen = fl->cur;
        fl->frozen_n = fl->n;
        fl->frozen_seq = fl->pending_seq;
        fl->frozen_cause = fl->pending_cause;
        atomic_store_explicit(&fl->ready, 1, memory_order_release); /* F1 */
        fl->cur ^= 1;
        fl->n = 0;
        fl->ring[fl->cur].nt = 0;
        fl->freeze_at = 0;
    }
}

/* Telemetry stage: frames[0..k) share their times, none is over a budget,
 * and no hand-over is pending or waiting for the other ring
 * (rfx_flight_plain): the same as
 * rfx_flight_record for each in turn, with the ring's state kept in
 * registers (stores into the slots could otherwise alias it). */
static inline bool rfx_flight_plain(const struct rfx_flight *fl)
{
    return fl->k && fl->freeze_at == 0 && !fl->late;
}

static inline void rfx_flight_record_run(struct rfx_flight *fl, struct rfx_frame *const *frames,
                                         size_t k, int reached)
{
    struct rfx_trace_ring *r = &fl->ring[fl->cur];
    uint64_t mask = fl->k - 1, n = fl->n;
    memcpy(&r->times[r->nt & mask], &frames[0]->scheduled_ns, sizeof *r->times);
    uint32_t times = (uint32_t)(r->nt & mask);
    r->nt++;
    struct rfx_trace_slot *slot = r->slot;
    for (size_t i = 0; i < k; i++) {
        const struct rfx_frame *f = frames[i];
        slot[n++ & mask] = (struct rfx_trace_slot){.seq = f->seq,
                                                   .times = times,
                                                   .level = f->level,
                                                   .drop_reason = f->drop_reason,
                                                   .cache_result = f->cache_result,
                                                   .over_stage = -1,
                                                   .over_e2e = 0,
                                                   .reached = (uint8_t)reached,
                                                   .flags = f->flags,
                                                   .rescued = f->rescued_mask};
    }
    fl->n = n;
}

struct rfx_engine;
struct rfx_ladder;
/* Reporter: keep a frozen ring, if any, as a window and free it. */
void rfx_flight_collect(struct rfx_flight *fl);
/* After the stop: the pending frozen ring, the current ring ("at stop"),
 * then trace.json in dir with every window kept. 0 or -errno. */
int rfx_flight_write(struct rfx_flight *fl, struct rfx_engine *e, int n_stages,
                     const struct rfx_ladder *ladder, const char *dir);

#endif
