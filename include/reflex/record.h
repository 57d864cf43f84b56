/*
 * reflex — run records (record.rfx): every frame a run captured, as the
 * pipeline left it, and every action-cache snapshot it published, so that
 * `reflex replay` can run the frames through the pattern and decide stages
 * again on a logical clock and check that every decision comes out the
 * same (docs/record-replay.md has the format byte by byte).
 *
 * A record is written by the engine when [engine] record (or the CLI's
 * --record FILE) names a file; this header is the reader's side.
 *
 * Ownership: a reader owns its file and buffers; an item's pointers (a
 * frame's payload, a publication's entries) stay valid until the next
 * rfx_record_next or rfx_record_close on that reader.
 * Thread-safety: a reader is for one thread at a time; readers of different
 * files (or of the same file) are independent.
 */
#ifndef REFLEX_RECORD_H
#define REFLEX_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <reflex/action_cache.h>
#include <reflex/api.h>
#include <reflex/stage.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RFX_RECORD_MAGIC   "RFXREC\r\n" /* the file's first 8 bytes */
#define RFX_RECORD_VERSION 1u

/* What the run was: enough to set up the same pattern and decide stages. */
struct rfx_record_header {
    uint32_t version;
    uint32_t payload_bytes; /* every frame's payload size */
    double frame_hz;
    uint64_t seed;
    int64_t start_ns;  /* CLOCK_MONOTONIC when the engine started */
    uint32_t n_stages; /* the pipeline, telemetry last */
    char stages[RFX_MAX_STAGES][RFX_NAME_MAX];
    char source_kind[RFX_NAME_MAX], sink_kind[RFX_NAME_MAX];
    uint32_t cache_l1_slots, cache_l2_slots, miss_queue;
    unsigned level_actions[5]; /* RFX_DEGRADE_* bits per level */
    /* [fault] fail_stage / fail_prob: frames that stage dropped on an
     * injected failure, which a replay does not reproduce */
    char fail_stage[RFX_NAME_MAX];
    double fail_prob;
};

enum rfx_record_kind {
    RFX_RECORD_FRAME = 1,       /* a frame as the telemetry stage saw it */
    RFX_RECORD_PUBLICATION = 2, /* a cache snapshot, written before readers could see it */
    RFX_RECORD_END = 3,         /* the last record of a run that stopped cleanly */
};

struct rfx_record_frame {
    uint64_t seq;
    int64_t scheduled_ns;
    uint64_t context_key, pattern_key, cache_generation;
    uint32_t action, payload_size;
    uint8_t drop_reason, reached, flags, context_class, level, cache_result;
    const unsigned char *payload; /* payload_size bytes */
};

struct rfx_record_publication {
    uint64_t generation;
    uint32_t n1, n2; /* L1 and L2 entries */
    const struct rfx_cache_entry *l1, *l2;
};

struct rfx_record_end {
    uint64_t frames;       /* frame records written */
    uint64_t frames_lost;  /* frames the recorder had no room for (not in the file) */
    uint64_t publications; /* publication records written */
    int64_t end_ns;
};

struct rfx_record_item {
    enum rfx_record_kind kind;
    uint64_t offset; /* of the record in the file */
    union {
        struct rfx_record_frame frame;
        struct rfx_record_publication pub;
        struct rfx_record_end end;
    } u;
};

struct rfx_record_reader;

/*
 * Open a record and read its header. Returns 0, or a negative errno with
 * msg naming the file and what is wrong: -ENOENT etc. from open, -EINVAL
 * for a file that is not a reflex record, is of another version or whose
 * header is corrupt or truncated.
 */
RFX_API int rfx_record_open(const char *path, struct rfx_record_reader **out,
                            struct rfx_record_header *h, char *msg, size_t msglen);

/*
 * The next record: 1 with *item filled, 0 after the end record (and nothing
 * after it), or -EINVAL with msg naming the byte offset for a corrupt record
 * (bad checksum, impossible sizes), a file cut short (no end record: the run
 * did not stop cleanly, or the file was truncated) or data after the end;
 * -EIO for a read error.
 */
RFX_API int rfx_record_next(struct rfx_record_reader *r, struct rfx_record_item *item, char *msg,
                            size_t msglen);

RFX_API void rfx_record_close(struct rfx_record_reader *r);

/* Accept a record cut short (no end record: the run was killed, or the
 * file truncated): reading ends at the last whole record instead of
 * failing. A bad checksum or size in a whole record still fails. */
RFX_API void rfx_record_accept_cut(struct rfx_record_reader *r);

/* After rfx_record_next returned 0: whether the file was cut (it had no
 * end record), with the offset where its whole records end and how many
 * bytes after it (a torn last record) were ignored. */
RFX_API bool rfx_record_was_cut(const struct rfx_record_reader *r, uint64_t *at, uint64_t *ignored);

/* Decode a record from memory (for fuzzing and tests): like open + next
 * until the end, calling fn for each item. Returns 0 or the first error. */
typedef int (*rfx_record_fn)(void *arg, const struct rfx_record_item *item);
RFX_API int rfx_record_parse(const void *data, size_t len, struct rfx_record_header *h,
                             rfx_record_fn fn, void *arg, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif
#endif
