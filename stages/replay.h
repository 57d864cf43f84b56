/*
 * Decision-exact replay of a run record (record.rfx): every recorded frame
 * goes through the pattern and decide stages again, one at a time, on a
 * logical clock (a frame's scheduled time is its "now"), with the cache
 * holding exactly the snapshot that frame's decision saw and decide told the
 * level it acted on. Every decision is compared with the recorded one:
 * pattern's keys, context class and drops; decide's action, cache level
 * (L1, L2 or miss) and generation. docs/record-replay.md.
 *
 * Threads: one call runs on the calling thread alone (no engine, no other
 * thread); calls on different records are independent.
 */
#ifndef REFLEX_STAGES_REPLAY_H
#define REFLEX_STAGES_REPLAY_H

#include <reflex/record.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct rfx_replay_options {
    const char *source_kind;       /* NULL: the record's ([source] kind of --config) */
    const unsigned *level_actions; /* 5 entries; NULL: the record's */
    FILE *diffs;                   /* differences are listed here (NULL: not listed) */
    int max_listed;                /* at most this many (0: 10) */
    /* called every 65536 frames with the frames read so far and the byte
     * offset reached (NULL: none) */
    void (*progress)(void *arg, uint64_t frames, uint64_t offset);
    void *progress_arg;
    bool accept_cut; /* replay a record with no end record up to its last whole record */
};

struct rfx_replay_result {
    struct rfx_record_header header;
    uint64_t frames;       /* frame records read */
    uint64_t publications; /* publication records read */
    uint64_t frames_lost;  /* the end record's: frames the recorder had no room for */
    uint64_t unseen;       /* sequence numbers with no record (dropped before a frame
                              existed, e.g. pool exhausted, or lost by the recorder) */
    uint64_t not_reached;  /* dropped before pattern (ring full, stale, ...): nothing to compare */
    uint64_t compared;     /* frames with a decision replayed (pattern's, decide's or both) */
    uint64_t identical, differ;
    uint64_t decided;        /* of compared: decide ran again */
    uint64_t pattern_drops;  /* of identical: pattern dropped the frame, as recorded */
    uint64_t fault_drops;    /* dropped by an injected [fault] failure: not compared */
    uint64_t first_diff_seq; /* valid when differ > 0 */
    bool cut;                /* accept_cut: the record had no end record ... */
    uint64_t cut_at, cut_ignored; /* ... its whole records end here; bytes ignored after */
};

/*
 * Replay the record at path. Returns 0 when it ran to the end (res->differ
 * says whether every decision matched), -EINVAL with msg for a record that
 * is corrupt, cut short or not replayable (a pipeline without pattern and
 * decide stages, an unknown source kind), another negative errno for a
 * failure to run (memory, the cache).
 */
int rfx_replay(const char *path, const struct rfx_replay_options *opt,
               struct rfx_replay_result *res, char *msg, size_t msglen);

#endif
