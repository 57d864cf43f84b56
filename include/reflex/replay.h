/*
 * reflex — decision-exact replay of a run record (record.rfx) through a
 * bot's own stages.
 *
 * Every recorded frame goes through the bot's pattern stage (optional) and
 * decide stage again, one frame at a time, on a logical clock: a frame's
 * "now" is its scheduled capture time. The action cache holds exactly the
 * snapshot the frame's decision saw in the run (its recorded generation,
 * republished from the record), and decide is told the degradation level
 * the frame was decided at, with that level's actions. Every decision is
 * compared with the recorded one: pattern's context key, pattern key,
 * context class and whether it dropped the frame; decide's action, cache
 * level (L1, L2 or miss) and generation. `reflex replay` is this function
 * with the built-in stages; docs/record-replay.md.
 *
 * What a stage sees in a replay: env->engine is NULL (a stage that calls
 * rfx_engine_* must check), env->cache is the replay's cache (decide must
 * look up env->cache, not a cache it kept from the run), env->level,
 * env->degrade and env->now_ns are the frame's as recorded. A frame's
 * payload is the recorded one; its stage times are not (they are 0). A
 * decide stage that served a frame the safe fallback because of
 * RFX_DEGRADE_FALLBACK_ONLY marks it RFX_FRAME_FALLBACK_ONLY, so that the
 * replay tells it the same. Misses decide queues go to the replay's own
 * queue, which no planner takes.
 *
 * Ownership: the caller owns the stages and their contexts; the replay
 * calls their init before the first frame and fini after the last, as an
 * engine does, and keeps no pointer after it returns.
 * Thread-safety: one call runs on the calling thread alone (no engine, no
 * other thread); calls with different stage contexts are independent.
 */
#ifndef REFLEX_REPLAY_H
#define REFLEX_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <reflex/api.h>
#include <reflex/record.h>
#include <reflex/stage.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One of the bot's stages, under the name the record gives it (the name it
 * was added to the engine with). */
struct rfx_replay_stage {
    const char *name;
    const struct rfx_stage_ops *ops;
    void *ctx;
};

/* A difference, as passed to the difference callback. */
struct rfx_replay_difference {
    uint64_t seq;     /* the frame's sequence number */
    uint64_t offset;  /* the frame record's byte offset in the file */
    const char *what; /* e.g. "decide chose action 3 (L1, generation 7), recorded 1 (...)" */
};

struct rfx_replay_config {
    /* The stages to run again. pattern.name NULL: none; decide then gets
     * each frame with its recorded keys and class, and only decisions are
     * compared. decide is required; it must come after pattern in the
     * record's pipeline. */
    struct rfx_replay_stage pattern, decide;
    /* Payload bytes the stages read: a record whose payloads are shorter
     * is refused (0: no check). */
    size_t min_payload;
    /* RFX_DEGRADE_* bits per level, 5 entries (NULL: the record's). Other
     * actions than the run's are a what-if: decisions may then differ. */
    const unsigned *level_actions;
    /* Called for each of the first max_listed differences (0: 10; negative:
     * none), on the calling thread. NULL: not called. */
    void (*difference)(void *arg, const struct rfx_replay_difference *d);
    void *difference_arg;
    int max_listed;
    /* Called every 65536 frames with the frames read so far and the byte
     * offset reached. NULL: not called. */
    void (*progress)(void *arg, uint64_t frames, uint64_t offset);
    void *progress_arg;
    /* Replay a record with no end record (a killed run) up to its last
     * whole record, instead of refusing it. */
    bool accept_cut;
};

struct rfx_replay_result {
    struct rfx_record_header header;
    uint64_t frames;       /* frame records read */
    uint64_t publications; /* publication records read */
    uint64_t frames_lost;  /* the end record's: frames the recorder had no room for */
    uint64_t unseen;       /* sequence numbers with no record (dropped before a frame
                              existed, e.g. pool exhausted, or lost by the recorder) */
    uint64_t not_reached;  /* dropped before the first replayed stage (ring full, stale, ...) */
    uint64_t compared;     /* frames with a decision replayed (pattern's, decide's or both) */
    uint64_t identical, differ;
    uint64_t decided;             /* of compared: decide ran again */
    uint64_t pattern_drops;       /* of identical: pattern dropped the frame, as recorded */
    uint64_t fault_drops;         /* dropped by an injected [fault] failure: not compared */
    uint64_t first_diff_seq;      /* valid when differ > 0 */
    bool cut;                     /* accept_cut: the record had no end record ... */
    uint64_t cut_at, cut_ignored; /* ... its whole records end here; bytes ignored after */
};

/*
 * Replay the record at path through cfg's stages. Returns 0 when it ran to
 * the end (res->differ says whether every decision matched); -EINVAL with
 * msg for a record that is corrupt, cut short (without accept_cut) or not
 * replayable with these stages (a stage the record's pipeline lacks,
 * payloads under min_payload, a snapshot larger than the record's cache);
 * -EIO with msg when a stage's init fails; another negative errno from
 * opening or reading the file, or for memory.
 */
RFX_API int rfx_replay(const char *path, const struct rfx_replay_config *cfg,
                       struct rfx_replay_result *res, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif
#endif
