/*
 * reflex — HDR histogram, exact to HdrHistogram 2.1.11 (Java): bucket layout,
 * percentile semantics, V2 compressed encoding, histogram log format 1.3 and
 * the .hgrm percentile distribution text.
 *
 * Values are non-negative 64-bit integers (reflex records nanoseconds).
 * A value v is recordable when 0 <= v <= rfx_hdr_max_recordable(h): the top of
 * the last bucket, which is at or above the highest trackable value asked for
 * (as in HdrHistogram, whose counts array also ends at a bucket boundary).
 * Other values are rejected with -ERANGE and counted (rfx_hdr_out_of_range).
 *
 * Thread-safety: a histogram is single-threaded — one thread records, and
 * nobody reads it concurrently. To read while another thread records, use the
 * interval recorder (rfx_hdr_recorder), whose writer never blocks.
 * Ownership: every *_create / *_decode result is the caller's, freed with the
 * matching *_destroy; byte and text buffers returned are freed with free().
 */
#ifndef REFLEX_HDR_HISTOGRAM_H
#define REFLEX_HDR_HISTOGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <reflex/api.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rfx_hdr;

/*
 * Create an empty histogram tracking [lowest, highest] with `sigfigs`
 * significant decimal digits (1..5). lowest >= 1, highest >= 2 * lowest.
 * Returns 0 and *out, -EINVAL for bad parameters, -ENOMEM.
 */
RFX_API int rfx_hdr_create(int64_t lowest, int64_t highest, int sigfigs, struct rfx_hdr **out);
RFX_API void rfx_hdr_destroy(struct rfx_hdr *h);

/* Record one value (or n of it). Returns 0, -ERANGE (out of range; counted),
 * -EINVAL (null h, n < 0). */
RFX_API int rfx_hdr_record(struct rfx_hdr *h, int64_t value);
RFX_API int rfx_hdr_record_n(struct rfx_hdr *h, int64_t value, int64_t n);

/*
 * Record with coordinated-omission correction: record value, then, when
 * expected_interval > 0 and value > expected_interval, also value - k *
 * expected_interval for k = 1, 2, ... while that is >= expected_interval.
 * Never combine with after-the-fact correction of the same data.
 * Returns as rfx_hdr_record (-EINVAL also for expected_interval < 0).
 */
RFX_API int rfx_hdr_record_corrected(struct rfx_hdr *h, int64_t value, int64_t expected_interval);

/* Clear every count; the layout stays. */
RFX_API void rfx_hdr_reset(struct rfx_hdr *h);

/*
 * Add every count of src into dst (any layouts). Values of src that dst cannot
 * record are counted in dst's out-of-range count and make it return -ERANGE;
 * the rest are added. Returns 0, -ERANGE or -EINVAL.
 */
RFX_API int rfx_hdr_add(struct rfx_hdr *dst, const struct rfx_hdr *src);

/* A deep copy. Returns 0 and *out, -EINVAL or -ENOMEM. */
RFX_API int rfx_hdr_copy(const struct rfx_hdr *src, struct rfx_hdr **out);

/*
 * Value at percentile p (0..100, clamped) with HdrHistogram 2.1.11 semantics:
 * the smallest recorded bucket whose cumulative count reaches
 * max(1, ceil(nextafter(p, -inf) / 100 * total)), reported as the highest
 * value equivalent to that bucket (the lowest for p == 0). 0 when empty.
 */
RFX_API int64_t rfx_hdr_value_at_percentile(const struct rfx_hdr *h, double p);

RFX_API int64_t rfx_hdr_total_count(const struct rfx_hdr *h);
/* Lowest equivalent value of the smallest recorded value (0 when empty). */
RFX_API int64_t rfx_hdr_min(const struct rfx_hdr *h);
/* Highest equivalent value of the largest recorded value (0 when empty). */
RFX_API int64_t rfx_hdr_max(const struct rfx_hdr *h);
/* Mean and standard deviation over bucket midpoints, as HdrHistogram computes them. */
RFX_API double rfx_hdr_mean(const struct rfx_hdr *h);
RFX_API double rfx_hdr_stddev(const struct rfx_hdr *h);
RFX_API uint64_t rfx_hdr_out_of_range(const struct rfx_hdr *h);
RFX_API int64_t rfx_hdr_count_at_value(const struct rfx_hdr *h, int64_t value);

/* Layout queries. */
RFX_API int64_t rfx_hdr_lowest_trackable(const struct rfx_hdr *h);
RFX_API int64_t rfx_hdr_highest_trackable(const struct rfx_hdr *h);
RFX_API int rfx_hdr_significant_figures(const struct rfx_hdr *h);
RFX_API int64_t rfx_hdr_max_recordable(const struct rfx_hdr *h);
RFX_API int rfx_hdr_bucket_count(const struct rfx_hdr *h);
RFX_API int rfx_hdr_sub_bucket_count(const struct rfx_hdr *h);
RFX_API int rfx_hdr_counts_len(const struct rfx_hdr *h);
/* Memory the histogram occupies, in bytes. */
RFX_API size_t rfx_hdr_memory_size(const struct rfx_hdr *h);

/* Equivalence ranges: values in one bucket are indistinguishable. */
RFX_API int64_t rfx_hdr_lowest_equivalent(const struct rfx_hdr *h, int64_t value);
RFX_API int64_t rfx_hdr_highest_equivalent(const struct rfx_hdr *h, int64_t value);
RFX_API int64_t rfx_hdr_median_equivalent(const struct rfx_hdr *h, int64_t value);
RFX_API bool rfx_hdr_values_equivalent(const struct rfx_hdr *h, int64_t a, int64_t b);

/*
 * Iteration. `rfx_hdr_iter_recorded` visits every non-empty bucket in value
 * order; `rfx_hdr_iter_percentiles` visits percentile ticks as HdrHistogram's
 * PercentileIterator does (ticks_per_half ticks per halving of the distance to
 * 100 %, ending with a 100 % step). The histogram must not change meanwhile.
 */
struct rfx_hdr_iter {
    /* results of the last successful rfx_hdr_iter_next */
    int64_t value;          /* highest equivalent value of the bucket reached */
    int64_t count_at_value; /* count in that bucket */
    int64_t count_to_value; /* cumulative count up to and including it */
    double percentile;      /* percentile tick reached (percentile iteration) */
    /* private */
    const struct rfx_hdr *h_;
    int idx_;
    bool fresh_, last_, by_percentile_;
    int ticks_;
    int64_t total_;
    double level_; /* percentile level being iterated to */
};
RFX_API void rfx_hdr_iter_recorded(struct rfx_hdr_iter *it, const struct rfx_hdr *h);
RFX_API void rfx_hdr_iter_percentiles(struct rfx_hdr_iter *it, const struct rfx_hdr *h,
                                      int ticks_per_half);
RFX_API bool rfx_hdr_iter_next(struct rfx_hdr_iter *it);

/*
 * Write the percentile distribution (.hgrm) exactly as HdrHistogram's
 * outputPercentileDistribution does: values divided by unit_ratio (1e6 turns
 * ns into ms), ticks_per_half ticks (5 is the standard), and the
 * #[Mean/Max/Buckets] footer. Returns 0, -EINVAL or -EIO.
 */
RFX_API int rfx_hdr_write_percentiles(const struct rfx_hdr *h, FILE *f, int ticks_per_half,
                                      double unit_ratio);

/*
 * V2 compressed encoding (cookie 0x1c849314, zlib): *buf (malloc'd) and *len.
 * Returns 0, -EINVAL, -ENOMEM.
 */
RFX_API int rfx_hdr_encode(const struct rfx_hdr *h, uint8_t **buf, size_t *len);

/*
 * Decode a V2 compressed (or uncompressed V2) histogram. Returns 0 and *out,
 * -EINVAL (null args), -EBADMSG (corrupt, truncated, or counts that do not fit
 * the layout in its header), -ENOTSUP (an older encoding or a normalizing
 * offset), -ENOMEM.
 */
RFX_API int rfx_hdr_decode(const uint8_t *buf, size_t len, struct rfx_hdr **out);

/* The same in base64 (standard alphabet, '=' padding, no line breaks), as
 * histogram logs carry it. *out is malloc'd and NUL-terminated. */
RFX_API int rfx_hdr_encode_base64(const struct rfx_hdr *h, char **out);
RFX_API int rfx_hdr_decode_base64(const char *text, size_t len, struct rfx_hdr **out);

/*
 * Interval recorder: one writer thread records without ever blocking; one
 * reader thread takes the histogram of the interval since its last call.
 * The swap is double-buffered: the reader installs a fresh histogram, then
 * waits (yielding) until any record that began on the old one has finished.
 */
struct rfx_hdr_recorder;
RFX_API int rfx_hdr_recorder_create(int64_t lowest, int64_t highest, int sigfigs,
                                    struct rfx_hdr_recorder **out);
RFX_API void rfx_hdr_recorder_destroy(struct rfx_hdr_recorder *rec);
/* Writer thread only. Returns as rfx_hdr_record. Wait-free. */
RFX_API int rfx_hdr_recorder_record(struct rfx_hdr_recorder *rec, int64_t value);
RFX_API int rfx_hdr_recorder_record_corrected(struct rfx_hdr_recorder *rec, int64_t value,
                                              int64_t expected_interval);
/*
 * Reader thread only. Take the interval histogram: *io, if not NULL, must be a
 * histogram from an earlier call (same layout); it is reset and recycled as
 * the next recording target. On return *io holds the finished interval.
 * Returns 0, -EINVAL, -ENOMEM.
 */
RFX_API int rfx_hdr_recorder_interval(struct rfx_hdr_recorder *rec, struct rfx_hdr **io);

/*
 * Histogram log format 1.3 writer. Writes the version, StartTime and BaseTime
 * header lines (times in seconds since the epoch) and the column legend at
 * creation. The writer does not own f.
 */
struct rfx_hlog_writer;
RFX_API int rfx_hlog_writer_create(FILE *f, double start_time_s, struct rfx_hlog_writer **out);
RFX_API void rfx_hlog_writer_destroy(struct rfx_hlog_writer *w);
/*
 * Append one interval: optional tag (NULL or "" for none; no ',', ' ', CR or
 * LF), start time (seconds since the epoch; written relative to BaseTime),
 * interval length in seconds, and the histogram. The max column is the
 * histogram's max divided by max_unit_ratio (1e6: ns become ms), as in
 * HdrHistogram. Returns 0, -EINVAL, -ENOMEM, -EIO.
 */
RFX_API int rfx_hlog_write(struct rfx_hlog_writer *w, const char *tag, double start_time_s,
                           double length_s, const struct rfx_hdr *h, double max_unit_ratio);

/* Histogram log reader (formats 1.2 and 1.3). Does not own f. */
struct rfx_hlog_reader;
struct rfx_hlog_entry {
    char tag[128];     /* "" when the line has no tag */
    double start_s;    /* absolute start (seconds since the epoch, or since BaseTime if none) */
    double length_s;   /* interval length */
    double max_column; /* the Interval_Max column as written (informational) */
    struct rfx_hdr *h; /* decoded histogram; the caller owns it */
};
RFX_API int rfx_hlog_reader_create(FILE *f, struct rfx_hlog_reader **out);
RFX_API void rfx_hlog_reader_destroy(struct rfx_hlog_reader *r);
/*
 * Read the next interval. Returns 1 and *e, 0 at end of file, -EBADMSG for a
 * malformed line (rfx_hlog_reader_error says which line and what), -EINVAL,
 * -ENOMEM. Comment and legend lines are consumed silently.
 */
RFX_API int rfx_hlog_read(struct rfx_hlog_reader *r, struct rfx_hlog_entry *e);
RFX_API const char *rfx_hlog_reader_error(const struct rfx_hlog_reader *r);
RFX_API double rfx_hlog_reader_start_time(const struct rfx_hlog_reader *r);
RFX_API double rfx_hlog_reader_base_time(const struct rfx_hlog_reader *r);

#ifdef __cplusplus
}
#endif
#endif
