/*
 * The engine's run recorder (record.rfx, docs/record-replay.md).
 *
 * The telemetry stage copies each finished frame into a preallocated ring
 * of slots (one producer: no lock, no allocation, no system call; a full
 * ring loses the frame and counts it); the recorder's own thread, off the
 * critical cores, drains the ring into the file every few milliseconds.
 * Cache publications are written by the publishing thread itself, under
 * the file's lock, before the snapshot becomes visible to readers: a frame
 * that saw generation g always comes after g's publication in the file.
 *
 * Threads: rfx_recorder_frames from one thread at a time (the telemetry
 * stage's); rfx_recorder_publication from any non-critical thread; the rest
 * from the thread that starts and stops the engine.
 */
#ifndef REFLEX_RECORDER_H
#define REFLEX_RECORDER_H

#include <reflex/record.h>

#include <stdbool.h>
#include <stdint.h>

struct rfx_recorder;
struct rfx_snapshot;

struct rfx_recorder_stats {
    uint64_t frames;       /* frame records written */
    uint64_t frames_lost;  /* frames the ring had no room for */
    uint64_t publications; /* publication records written */
    uint64_t bytes;        /* the file's size so far */
    uint32_t slots;        /* the ring's capacity, frames */
    int error;             /* first write error (negative errno), 0: none */
};

/* Open path (truncating it), write the header and allocate a ring of
 * `slots` frames (rounded up to a power of two). */
int rfx_recorder_create(const char *path, const struct rfx_record_header *h, uint32_t slots,
                        struct rfx_recorder **out, char *msg, size_t msglen);
/* Start the draining thread (call it off the critical cores). */
int rfx_recorder_start(struct rfx_recorder *r, char *msg, size_t msglen);
/* The telemetry stage: copy n finished frames (empty slots are skipped). */
void rfx_recorder_frames(struct rfx_recorder *r, struct rfx_frame *const *frames, size_t n);
/* The consumer's work: write what the ring holds to the file. The
 * recorder's thread does it; call it only while that thread is not
 * started (tests, benchmarks). */
void rfx_recorder_drain(struct rfx_recorder *r);
/* A publication (called inside rfx_action_cache_publish, before the store). */
void rfx_recorder_publication(void *r, const struct rfx_snapshot *s);
/* After the pipeline and the planners stopped: drain, write the end
 * record, flush to disk and close. Returns 0 or the first write error. */
int rfx_recorder_finish(struct rfx_recorder *r, int64_t end_ns, char *msg, size_t msglen);
void rfx_recorder_stats(const struct rfx_recorder *r, struct rfx_recorder_stats *out);
void rfx_recorder_destroy(struct rfx_recorder *r);

#endif
