/*
 * HDR histogram: layout, recording, statistics, iteration and the .hgrm
 * percentile distribution writer, matching HdrHistogram 2.1.11 (Java).
 * The facts this follows are in shared notes (hdrhistogram-formats.md) and
 * docs/architecture.md; the interop test checks them against the Java jar.
 */
#include "hdr_histogram_impl.h"
#include "java_format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rfx_hdr_create(int64_t lowest, int64_t highest, int sigfigs, struct rfx_hdr **out)
{
    if (!out || lowest < 1 || sigfigs < 1 || sigfigs > 5 || highest < 2 || lowest > highest / 2)
        return -EINVAL;

    int unit_magnitude = 63 - __builtin_clzll((uint64_t)lowest);
    int64_t largest_single_unit = 2 * (int64_t)pow(10, sigfigs);
    int count_magnitude = (int)ceil(log2((double)largest_single_unit));
    int half_count_magnitude = (count_magnitude > 1 ? count_magnitude : 1) - 1;
    if (unit_magnitude + half_count_magnitude > 61)
        return -EINVAL;
    int sub_bucket_count = 1 << (half_count_magnitude + 1);

    /* Buckets: the first covers sub_bucket_count units; each next one doubles. */
    int64_t smallest_untrackable = (int64_t)sub_bucket_count << unit_magnitude;
    int bucket_count = 1;
    while (smallest_untrackable <= highest) {
        if (smallest_untrackable > INT64_MAX / 2) {
            bucket_count++;
            break;
        }
        smallest_untrackable <<= 1;
        bucket_count++;
    }

    struct rfx_hdr *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->lowest = lowest;
    h->highest = highest;
    h->sigfigs = sigfigs;
    h->unit_magnitude = unit_magnitude;
    h->half_count_magnitude = half_count_magnitude;
    h->sub_bucket_count = sub_bucket_count;
    h->sub_bucket_half_count = sub_bucket_count / 2;
    h->bucket_count = bucket_count;
    h->counts_len = (bucket_count + 1) * (sub_bucket_count / 2);
    h->leading_zero_count_base = 64 - unit_magnitude - (half_count_magnitude + 1);
    h->sub_bucket_mask = ((int64_t)sub_bucket_count - 1) << unit_magnitude;
    h->counts = calloc((size_t)h->counts_len, sizeof(int64_t));
    if (!h->counts) {
        free(h);
        return -ENOMEM;
    }
    int64_t top = rfx_hdr_value_at_index(h, h->counts_len - 1);
    h->max_recordable = (uint64_t)rfx_hdr_highest_equivalent(h, top);
    *out = h;
    return 0;
}

void rfx_hdr_destroy(struct rfx_hdr *h)
{
    if (!h)
        return;
    free(h->counts);
    free(h);
}

int rfx_hdr_record(struct rfx_hdr *h, int64_t value)
{
    if (!h)
        return -EINVAL;
    return rfx_hdr_record_fast(h, value);
}

int rfx_hdr_record_n(struct rfx_hdr *h, int64_t value, int64_t n)
{
    if (!h || n < 0)
        return -EINVAL;
    if ((uint64_t)value > h->max_recordable) {
        h->out_of_range += (uint64_t)n;
        return -ERANGE;
    }
    h->counts[rfx_hdr_index(h, value)] += n;
    h->total_count += n;
    return 0;
}

int rfx_hdr_record_corrected(struct rfx_hdr *h, int64_t value, int64_t expected_interval)
{
    if (!h || expected_interval < 0)
        return -EINVAL;
    int rc = rfx_hdr_record_fast(h, value);
    if (rc < 0 || expected_interval == 0 || value <= expected_interval)
        return rc;
    for (int64_t missing = value - expected_interval; missing >= expected_interval;
         missing -= expected_interval)
        rfx_hdr_record_fast(h, missing);
    return 0;
}

void rfx_hdr_reset(struct rfx_hdr *h)
{
    if (!h)
        return;
    memset(h->counts, 0, (size_t)h->counts_len * sizeof(int64_t));
    h->total_count = 0;
    h->out_of_range = 0;
}

int rfx_hdr_add(struct rfx_hdr *dst, const struct rfx_hdr *src)
{
    if (!dst || !src)
        return -EINVAL;
    int rc = 0;
    bool same = dst->counts_len == src->counts_len && dst->unit_magnitude == src->unit_magnitude &&
                dst->sub_bucket_count == src->sub_bucket_count;
    /* Counts are never negative and sum to total_count: past the last
     * recorded value there is nothing left to add. */
    int64_t left = src->total_count;
    for (int i = 0; i < src->counts_len && left > 0; i++) {
        int64_t c = src->counts[i];
        if (c == 0)
            continue;
        left -= c;
        if (same) {
            dst->counts[i] += c;
            dst->total_count += c;
        } else if (rfx_hdr_record_n(dst, rfx_hdr_value_at_index(src, i), c) < 0) {
            rc = -ERANGE;
        }
    }
    dst->out_of_range += src->out_of_range;
    return rc;
}

int rfx_hdr_copy(const struct rfx_hdr *src, struct rfx_hdr **out)
{
    if (!src || !out)
        return -EINVAL;
    struct rfx_hdr *h;
    int rc = rfx_hdr_create(src->lowest, src->highest, src->sigfigs, &h);
    if (rc < 0)
        return rc;
    memcpy(h->counts, src->counts, (size_t)src->counts_len * sizeof(int64_t));
    h->total_count = src->total_count;
    h->out_of_range = src->out_of_range;
    *out = h;
    return 0;
}

/* ---- equivalence ranges ---- */

/* Unsigned: the top bucket of a histogram that tracks up to INT64_MAX is
 * 2^63 wide. */
static uint64_t equivalent_range_size(const struct rfx_hdr *h, int64_t v)
{
    int bucket = h->leading_zero_count_base - __builtin_clzll((uint64_t)(v | h->sub_bucket_mask));
    return (uint64_t)1 << (h->unit_magnitude + bucket);
}

/* lowest + add, at most INT64_MAX (HdrHistogram's Java wraps there) */
static int64_t add_saturated(int64_t lowest, uint64_t add)
{
    uint64_t v = (uint64_t)lowest + add; /* lowest >= 0: no wrap in 64 unsigned bits */
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

int64_t rfx_hdr_lowest_equivalent(const struct rfx_hdr *h, int64_t v)
{
    if (!h || v < 0)
        return 0;
    int bucket = h->leading_zero_count_base - __builtin_clzll((uint64_t)(v | h->sub_bucket_mask));
    int64_t sub = v >> (bucket + h->unit_magnitude);
    return sub << (bucket + h->unit_magnitude);
}

int64_t rfx_hdr_highest_equivalent(const struct rfx_hdr *h, int64_t v)
{
    if (!h || v < 0)
        return 0;
    return add_saturated(rfx_hdr_lowest_equivalent(h, v), equivalent_range_size(h, v) - 1);
}

int64_t rfx_hdr_median_equivalent(const struct rfx_hdr *h, int64_t v)
{
    if (!h || v < 0)
        return 0;
    return add_saturated(rfx_hdr_lowest_equivalent(h, v), equivalent_range_size(h, v) >> 1);
}

bool rfx_hdr_values_equivalent(const struct rfx_hdr *h, int64_t a, int64_t b)
{
    return h && rfx_hdr_lowest_equivalent(h, a) == rfx_hdr_lowest_equivalent(h, b);
}

/* ---- statistics ---- */

int64_t rfx_hdr_value_at_percentile(const struct rfx_hdr *h, double p)
{
    if (!h || h->total_count == 0)
        return 0;
    /* One ulp below p, so that a product that should be an integer but
     * rounds up does not push the count into the next bucket. */
    double req = nextafter(p, -INFINITY);
    if (!(req >= 0.0)) /* also catches NaN */
        req = 0.0;
    if (req > 100.0)
        req = 100.0;
    int64_t want = (int64_t)ceil(req / 100.0 * (double)h->total_count);
    if (want < 1)
        want = 1;
    int64_t seen = 0;
    for (int i = 0; i < h->counts_len; i++) {
        seen += h->counts[i];
        if (seen >= want) {
            int64_t v = rfx_hdr_value_at_index(h, i);
            return p == 0.0 ? rfx_hdr_lowest_equivalent(h, v) : rfx_hdr_highest_equivalent(h, v);
        }
    }
    return 0;
}

int64_t rfx_hdr_total_count(const struct rfx_hdr *h)
{
    return h ? h->total_count : 0;
}

int64_t rfx_hdr_min(const struct rfx_hdr *h)
{
    if (!h)
        return 0;
    for (int i = 0; i < h->counts_len; i++)
        if (h->counts[i])
            return i == 0 ? 0 : rfx_hdr_lowest_equivalent(h, rfx_hdr_value_at_index(h, i));
    return 0;
}

int64_t rfx_hdr_max(const struct rfx_hdr *h)
{
    if (!h)
        return 0;
    for (int i = h->counts_len - 1; i > 0; i--)
        if (h->counts[i])
            return rfx_hdr_highest_equivalent(h, rfx_hdr_value_at_index(h, i));
    return 0;
}

double rfx_hdr_mean(const struct rfx_hdr *h)
{
    if (!h || h->total_count == 0)
        return 0.0;
    double total = 0;
    for (int i = 0; i < h->counts_len; i++)
        if (h->counts[i])
            total += (double)rfx_hdr_median_equivalent(h, rfx_hdr_value_at_index(h, i)) *
                     (double)h->counts[i];
    return total / (double)h->total_count;
}

double rfx_hdr_stddev(const struct rfx_hdr *h)
{
    if (!h || h->total_count == 0)
        return 0.0;
    double mean = rfx_hdr_mean(h);
    double sq = 0;
    for (int i = 0; i < h->counts_len; i++) {
        if (!h->counts[i])
            continue;
        double d = (double)rfx_hdr_median_equivalent(h, rfx_hdr_value_at_index(h, i)) - mean;
        sq += d * d * (double)h->counts[i];
    }
    return sqrt(sq / (double)h->total_count);
}

uint64_t rfx_hdr_out_of_range(const struct rfx_hdr *h)
{
    return h ? h->out_of_range : 0;
}

int64_t rfx_hdr_count_at_value(const struct rfx_hdr *h, int64_t v)
{
    if (!h || (uint64_t)v > h->max_recordable)
        return 0;
    return h->counts[rfx_hdr_index(h, v)];
}

int64_t rfx_hdr_lowest_trackable(const struct rfx_hdr *h)
{
    return h ? h->lowest : 0;
}

int64_t rfx_hdr_highest_trackable(const struct rfx_hdr *h)
{
    return h ? h->highest : 0;
}

int rfx_hdr_significant_figures(const struct rfx_hdr *h)
{
    return h ? h->sigfigs : 0;
}

int64_t rfx_hdr_max_recordable(const struct rfx_hdr *h)
{
    return h ? (int64_t)h->max_recordable : 0;
}

int rfx_hdr_bucket_count(const struct rfx_hdr *h)
{
    return h ? h->bucket_count : 0;
}

int rfx_hdr_sub_bucket_count(const struct rfx_hdr *h)
{
    return h ? h->sub_bucket_count : 0;
}

int rfx_hdr_counts_len(const struct rfx_hdr *h)
{
    return h ? h->counts_len : 0;
}

size_t rfx_hdr_memory_size(const struct rfx_hdr *h)
{
    return h ? sizeof *h + (size_t)h->counts_len * sizeof(int64_t) : 0;
}

/* ---- iteration ---- */

static void iter_init(struct rfx_hdr_iter *it, const struct rfx_hdr *h)
{
    memset(it, 0, sizeof *it);
    it->h_ = h;
    it->fresh_ = true;
    it->total_ = h ? h->total_count : 0;
}

void rfx_hdr_iter_recorded(struct rfx_hdr_iter *it, const struct rfx_hdr *h)
{
    if (!it)
        return;
    iter_init(it, h);
}

void rfx_hdr_iter_percentiles(struct rfx_hdr_iter *it, const struct rfx_hdr *h, int ticks_per_half)
{
    if (!it)
        return;
    iter_init(it, h);
    it->by_percentile_ = true;
    it->ticks_ = ticks_per_half > 0 ? ticks_per_half : 1;
    it->level_ = 0.0;
}

/* The next percentile tick after `level`: ticks_per_half ticks per halving of
 * the distance to 100 %. */
static double next_tick(double level, int ticks_per_half)
{
    double halvings = log(100.0 / (100.0 - level)) / log(2);
    int64_t reporting_ticks =
        (int64_t)ticks_per_half * (int64_t)pow(2, (double)((int64_t)halvings + 1));
    return level + 100.0 / (double)reporting_ticks;
}

bool rfx_hdr_iter_next(struct rfx_hdr_iter *it)
{
    if (!it || !it->h_)
        return false;
    const struct rfx_hdr *h = it->h_;
    if (!it->by_percentile_) {
        if (!it->fresh_)
            it->idx_++;
        for (; it->idx_ < h->counts_len; it->idx_++) {
            int64_t c = h->counts[it->idx_];
            if (c == 0)
                continue;
            it->count_to_value += c;
            it->count_at_value = c;
            it->value = rfx_hdr_highest_equivalent(h, rfx_hdr_value_at_index(h, it->idx_));
            it->fresh_ = false;
            return true;
        }
        return false;
    }

    /* Percentile ticks, as HdrHistogram's PercentileIterator: once the
     * cumulative count reaches the total, one final step reports 100 %. */
    if (it->count_to_value >= it->total_) {
        if (it->last_ || it->total_ == 0)
            return false;
        it->level_ = 100.0;
        it->last_ = true;
    }
    while (it->idx_ < h->counts_len) {
        int64_t c = h->counts[it->idx_];
        if (it->fresh_) {
            it->count_to_value += c;
            it->fresh_ = false;
        }
        if (c != 0 && (100.0 * (double)it->count_to_value) / (double)it->total_ >= it->level_) {
            it->value = rfx_hdr_highest_equivalent(h, rfx_hdr_value_at_index(h, it->idx_));
            it->count_at_value = c;
            it->percentile = it->level_;
            if (!it->last_)
                it->level_ = next_tick(it->level_, it->ticks_);
            return true;
        }
        it->idx_++;
        it->fresh_ = true;
    }
    return false;
}

/* ---- .hgrm ---- */

int rfx_hdr_write_percentiles(const struct rfx_hdr *h, FILE *f, int ticks_per_half,
                              double unit_ratio)
{
    if (!h || !f || ticks_per_half < 1 || !(unit_ratio > 0))
        return -EINVAL;
    char a[64], b[64], c[64];
    int sf = h->sigfigs;
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    struct rfx_hdr_iter it;
    rfx_hdr_iter_percentiles(&it, h, ticks_per_half);
    while (rfx_hdr_iter_next(&it)) {
        rfx_java_fixed(a, sizeof a, (double)it.value / unit_ratio, sf, 12);
        rfx_java_fixed(b, sizeof b, it.percentile / 100.0, 12, 2);
        if (it.percentile != 100.0) {
            rfx_java_fixed(c, sizeof c, 1 / (1.0 - it.percentile / 100.0), 2, 14);
            fprintf(f, "%s %s %10lld %s\n", a, b, (long long)it.count_to_value, c);
        } else {
            fprintf(f, "%s %s %10lld\n", a, b, (long long)it.count_to_value);
        }
    }
    rfx_java_fixed(a, sizeof a, rfx_hdr_mean(h) / unit_ratio, sf, 12);
    rfx_java_fixed(b, sizeof b, rfx_hdr_stddev(h) / unit_ratio, sf, 12);
    fprintf(f, "#[Mean    = %s, StdDeviation   = %s]\n", a, b);
    rfx_java_fixed(a, sizeof a, (double)rfx_hdr_max(h) / unit_ratio, sf, 12);
    fprintf(f, "#[Max     = %s, Total count    = %12lld]\n", a, (long long)h->total_count);
    fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n", h->bucket_count, h->sub_bucket_count);
    return ferror(f) ? -EIO : 0;
}
