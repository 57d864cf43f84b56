/*
 * reflex — frames and the stage contract.
 *
 * A frame is a preallocated slot from the engine's pool: this header plus a
 * payload of the configured size. Rings carry frame pointers, never copies.
 * A stage is a set of callbacks: init once on its thread before the first
 * frame, process a burst of frames, fini once after the last. The built-in
 * capture, pattern, decide, execute and telemetry roles are stages like any
 * a user writes.
 *
 * Ownership: the engine owns frames. A stage may read and write the frames
 * of the burst it was given, during the call only; it must not keep them.
 * Thread-safety: a stage's callbacks never run two at a time, so its context
 * needs no locking against itself. init and fini run on the thread that
 * hosts it, and so does process unless the stage sets `rescuable`: then,
 * when its thread is late to take a frame, the critical thread before it
 * may run process instead (never during a call of its own thread, and with
 * every write of one call visible to the next; docs/architecture.md,
 * "Rescue"). Stages on other threads see a frame only after it has left
 * this one (the rings order that).
 */
#ifndef REFLEX_STAGE_H
#define REFLEX_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include <reflex/api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stages in one pipeline, telemetry included. With seven, a frame's header
 * (struct rfx_frame, two 32-bit time arrays of this length) fits in two
 * cache lines: every line of it crosses between cores on every lap. */
#define RFX_MAX_STAGES 7
#define RFX_NAME_MAX   32

/* Degradation level a stage is told about (the ladder drives it). The
 * comments give each level's default actions; [degrade] can change them. */
enum rfx_level {
    RFX_LEVEL_NONE = 0,
    RFX_LEVEL_MINIMAL = 1,  /* planners at their minimum frequency */
    RFX_LEVEL_MODERATE = 2, /* ... and stages take their fast path */
    RFX_LEVEL_SEVERE = 3,   /* ... and cache only: no planning, no misses queued */
    RFX_LEVEL_CRITICAL = 4, /* ... and safe fallback only, stale frames shed */
};

/* What a degradation level does: a set of these bits per level (env.degrade
 * carries the current one). Stages test the bits, not the level number, so
 * a bot that moves the fast path to another level needs no code change. */
enum rfx_degrade_action {
    RFX_DEGRADE_MIN_HZ = 1u << 0,        /* strategic workers run at min_hz */
    RFX_DEGRADE_FAST_PATH = 1u << 1,     /* stages take their fast path */
    RFX_DEGRADE_CACHE_ONLY = 1u << 2,    /* no planning; decide queues no misses */
    RFX_DEGRADE_FALLBACK_ONLY = 1u << 3, /* decide serves only the safe fallback */
    RFX_DEGRADE_SHED_STALE = 1u << 4,    /* frames older than the frame budget are dropped */
};
#define RFX_DEGRADE_ACTIONS 5

enum rfx_context_class {
    RFX_CLASS_ROUTINE = 0,
    RFX_CLASS_EMERGENCY = 1,
    RFX_CLASS_DELIBERATIVE = 2,
};

/* Why a frame was dropped; summary.json names them. */
enum rfx_drop_reason {
    RFX_DROP_NONE = 0,
    RFX_DROP_RING_FULL = 1,      /* drop-newest ring had no room */
    RFX_DROP_EVICTED = 2,        /* drop-oldest ring evicted it for a fresher frame */
    RFX_DROP_POOL_EXHAUSTED = 3, /* no free frame when the source was due */
    RFX_DROP_STAGE = 4,          /* a stage dropped it (rfx_frame_drop) */
    RFX_DROP_STALE = 5,          /* older than the frame budget (degradation) */
    RFX_DROP_CIRCUIT_OPEN = 6,   /* the sink's circuit breaker rejected it */
    RFX_DROP_SINK_FAILED = 7,    /* the sink could not deliver the action */
    RFX_DROP_REASONS = 8,
};

/* How decide resolved the frame's action. */
enum rfx_cache_result {
    RFX_CACHE_NONE = 0, /* no lookup */
    RFX_CACHE_L1 = 1,
    RFX_CACHE_L2 = 2,
    RFX_CACHE_MISS = 3, /* the fallback supplied the action */
};

#define RFX_FRAME_EMPTY       0x1u /* capture: no input for this slot; the engine recycles it */
#define RFX_FRAME_SINK_FAILED 0x2u /* the sink (last stage before telemetry) failed to deliver */
/* decide served the safe fallback without a lookup (RFX_DEGRADE_FALLBACK_ONLY);
 * a replay gives decide the same action */
#define RFX_FRAME_FALLBACK_ONLY 0x4u
/* the engine: some stage of it ran on another critical thread, because its
 * own was late (rescue, engine.rescue_us); rescued_mask says which */
#define RFX_FRAME_RESCUED 0x8u

/*
 * Stage times. A frame keeps when each stage took it and let it go as the
 * low 32 bits of the CLOCK_MONOTONIC nanosecond time: a stamp is one store,
 * and a frame's header stays in two cache lines. A stamp is read against the
 * frame's scheduled_ns (rfx_frame_since, rfx_frame_time_ns), which is exact
 * while the frame is younger than RFX_FRAME_SPAN_NS (2^32 ns, 4.29 s); the
 * telemetry stage counts older frames apart (docs/telemetry.md).
 * Which stages took a frame: all of them unless it was dropped; a dropped
 * frame went through its first `reached` stages (the others' stamps are
 * stale).
 */
#define RFX_FRAME_SPAN_NS (INT64_C(1) << 32)

/* A frame's header: 128 bytes, two cache lines (pinned in src/engine.c). */
struct rfx_frame {
    uint64_t seq;                      /* capture order, from 0 */
    int64_t scheduled_ns;              /* CLOCK_MONOTONIC time the source was due to capture it */
    int64_t capture_ns;                /* when capture began */
    uint32_t enter_at[RFX_MAX_STAGES]; /* per stage: when it took the burst (a fused stage:
                                          the exit of the one before it); low 32 bits */
    uint32_t exit_at[RFX_MAX_STAGES];  /* per stage: when its burst ended; low 32 bits */
    uint64_t context_key;              /* exact context (pattern stage) */
    uint64_t pattern_key;              /* coarser pattern (pattern stage) */
    uint64_t cache_generation;         /* snapshot generation decide looked up in */
    uint32_t action;                   /* decide's choice */
    uint32_t payload_size;
    uint8_t woke_mask;      /* bit i: stage i's thread had parked before this frame */
    uint8_t rescued_mask;   /* bit i: stage i ran on another critical thread, which was
                               rescuing stage i's own (the engine sets it; rescue_us) */
    uint8_t reached;        /* dropped: the stages it went through (the engine sets it) */
    uint8_t drop_reason;    /* enum rfx_drop_reason */
    uint8_t flags;          /* RFX_FRAME_* */
    uint8_t context_class;  /* enum rfx_context_class */
    uint8_t level;          /* enum rfx_level when captured */
    uint8_t cache_result;   /* enum rfx_cache_result */
    unsigned char *payload; /* payload_size bytes, 64-byte aligned */
};

/* The low 32 bits of a CLOCK_MONOTONIC time, as a frame stores it. */
static inline uint32_t rfx_stamp(int64_t t_ns)
{
    return (uint32_t)t_ns;
}

/* Nanoseconds from a 64-bit time `from` to a stamp taken at most
 * RFX_FRAME_SPAN_NS after it. */
static inline int64_t rfx_stamp_since(int64_t from, uint32_t stamp)
{
    return (int64_t)(uint32_t)(stamp - (uint32_t)from);
}

/* Nanoseconds from f's scheduled_ns to one of its stamps (exact while the
 * frame is younger than RFX_FRAME_SPAN_NS). */
static inline int64_t rfx_frame_since(const struct rfx_frame *f, uint32_t stamp)
{
    return rfx_stamp_since(f->scheduled_ns, stamp);
}

/* The CLOCK_MONOTONIC time of one of f's stamps. */
static inline int64_t rfx_frame_time_ns(const struct rfx_frame *f, uint32_t stamp)
{
    return f->scheduled_ns + rfx_frame_since(f, stamp);
}

/* How many of the first stages took f: all n_stages unless it was dropped. */
static inline int rfx_frame_reached(const struct rfx_frame *f, int n_stages)
{
    return f->drop_reason == RFX_DROP_NONE || f->reached > n_stages ? n_stages : f->reached;
}

/* Mark a frame dropped; later stages skip it and telemetry counts it. */
static inline void rfx_frame_drop(struct rfx_frame *f, enum rfx_drop_reason why)
{
    if (f->drop_reason == RFX_DROP_NONE)
        f->drop_reason = (uint8_t)why;
}

struct rfx_action_cache;

/* What a stage's callbacks are told. */
struct rfx_stage_env {
    struct rfx_engine *engine;      /* for rfx_engine_* queries; never destroy it.
                                       NULL in a replay (reflex/replay.h) */
    struct rfx_action_cache *cache; /* the cache decide looks up: the engine's
                                       (rfx_engine_cache), or a replay's */
    int stage_index;                /* position in the pipeline, from 0 */
    enum rfx_level level;           /* current degradation level */
    unsigned degrade;               /* its actions: RFX_DEGRADE_* bits */
    int64_t now_ns;                 /* CLOCK_MONOTONIC at the start of this call */
};

struct rfx_stage_ops {
    /* On the stage's thread, before the first frame. Nonzero fails start. */
    int (*init)(void *ctx, const struct rfx_stage_env *env);
    /* Process n >= 1 frames, in order. Frames dropped earlier are not passed
     * (unless sees_dropped). Must not block in steady state. */
    void (*process)(void *ctx, struct rfx_frame **frames, size_t n,
                    const struct rfx_stage_env *env);
    /* On the stage's thread, after the last frame. */
    void (*fini)(void *ctx, const struct rfx_stage_env *env);
    int sees_dropped; /* telemetry: also receives dropped frames */
    /* Nonzero: process keeps no state tied to the calling thread (thread-
     * locals, a thread's CPU, a lock it holds), so it may be called on the
     * previous critical thread when this stage's own thread is late. A
     * thread's stages are rescued only if all of them set it. */
    int rescuable;
    /* What the keys this stage writes (context_key, pattern_key) mean, for
     * the stage that writes them: change it when they change. A cache
     * snapshot file (`[cache] persist_path`) records the pipeline's (the
     * first stage's that is nonzero; 0 if none is) and is loaded only by a
     * pipeline with the same, so a warm start never answers new keys from
     * entries made for old ones. */
    uint32_t key_schema;
};

#ifdef __cplusplus
}
#endif
#endif
