/*
 * HDR histogram layout and the inline recording path. Telemetry and the
 * benchmarks include this header so a record is a handful of instructions:
 * one range check, a count-leading-zeros, two shifts and two increments.
 */
#ifndef REFLEX_HDR_HISTOGRAM_IMPL_H
#define REFLEX_HDR_HISTOGRAM_IMPL_H

#include <errno.h>
#include <stdint.h>

#include <reflex/hdr_histogram.h>

struct rfx_hdr {
    int64_t lowest;  /* lowest discernible value, as asked */
    int64_t highest; /* highest trackable value, as asked */
    int sigfigs;
    int unit_magnitude;          /* floor(log2(lowest)) */
    int half_count_magnitude;    /* log2(sub_bucket_count) - 1 */
    int sub_bucket_count;        /* 2^ceil(log2(2 * 10^sigfigs)) */
    int sub_bucket_half_count;   /* sub_bucket_count / 2 */
    int bucket_count;            /* buckets needed to reach highest */
    int counts_len;              /* (bucket_count + 1) * half count */
    int leading_zero_count_base; /* 64 - unit_magnitude - (half_count_magnitude + 1) */
    int64_t sub_bucket_mask;     /* (sub_bucket_count - 1) << unit_magnitude */
    uint64_t max_recordable;     /* highest value whose index is < counts_len */
    int64_t total_count;
    uint64_t out_of_range;
    int64_t *counts;
};

static inline int rfx_hdr_index(const struct rfx_hdr *h, int64_t v)
{
    int bucket = h->leading_zero_count_base - __builtin_clzll((uint64_t)(v | h->sub_bucket_mask));
    int sub = (int)(v >> (bucket + h->unit_magnitude));
    return ((bucket + 1) << h->half_count_magnitude) + (sub - h->sub_bucket_half_count);
}

static inline int64_t rfx_hdr_value_at_index(const struct rfx_hdr *h, int idx)
{
    int bucket = (idx >> h->half_count_magnitude) - 1;
    int sub = (idx & (h->sub_bucket_half_count - 1)) + h->sub_bucket_half_count;
    if (bucket < 0) {
        sub -= h->sub_bucket_half_count;
        bucket = 0;
    }
    return (int64_t)sub << (bucket + h->unit_magnitude);
}

/* The recording fast path: no argument checks beyond the range check. */
static inline int rfx_hdr_record_fast(struct rfx_hdr *h, int64_t v)
{
    if (__builtin_expect((uint64_t)v > h->max_recordable, 0)) {
        h->out_of_range++;
        return -ERANGE;
    }
    h->counts[rfx_hdr_index(h, v)]++;
    h->total_count++;
    return 0;
}

/* The fast path for n equal values (n >= 0). */
static inline int rfx_hdr_record_fast_n(struct rfx_hdr *h, int64_t v, int64_t n)
{
    if (__builtin_expect((uint64_t)v > h->max_recordable, 0)) {
        h->out_of_range += (uint64_t)n;
        return -ERANGE;
    }
    h->counts[rfx_hdr_index(h, v)] += n;
    h->total_count += n;
    return 0;
}

#endif
