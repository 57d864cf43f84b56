/* Unit tests: HDR histogram layout, recording, statistics, iteration, .hgrm, Java formatting. */
#include <criterion/criterion.h>

#include "hdr_histogram_impl.h"
#include "java_format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct rfx_hdr *make(int64_t lo, int64_t hi, int sf)
{
    struct rfx_hdr *h = NULL;
    cr_assert_eq(rfx_hdr_create(lo, hi, sf, &h), 0, "create(%lld, %lld, %d)", (long long)lo,
                 (long long)hi, sf);
    return h;
}

Test(hdr, create_rejects_bad_parameters)
{
    struct rfx_hdr *h = NULL;
    cr_expect_eq(rfx_hdr_create(1, 1000, 3, NULL), -EINVAL);
    cr_expect_eq(rfx_hdr_create(0, 1000, 3, &h), -EINVAL, "lowest 0");
    cr_expect_eq(rfx_hdr_create(-5, 1000, 3, &h), -EINVAL, "lowest < 0");
    cr_expect_eq(rfx_hdr_create(1, 1000, 0, &h), -EINVAL, "sigfigs 0");
    cr_expect_eq(rfx_hdr_create(1, 1000, 6, &h), -EINVAL, "sigfigs 6");
    cr_expect_eq(rfx_hdr_create(10, 19, 3, &h), -EINVAL, "lowest >= highest / 2");
    cr_expect_eq(rfx_hdr_create(10, 10, 3, &h), -EINVAL, "lowest == highest");
    cr_expect_eq(rfx_hdr_create(INT64_C(1) << 59, INT64_MAX, 5, &h), -EINVAL,
                 "unit magnitude + sub-bucket magnitude > 61");
    cr_expect_null(h);
    rfx_hdr_destroy(NULL);
}

Test(hdr, layout_matches_hdrhistogram)
{
    /* 1 ns .. 10 s at 3 figures: 2048 sub-buckets, 24 buckets, 25,600 counts. */
    struct rfx_hdr *h = make(1, 10000000000LL, 3);
    cr_expect_eq(rfx_hdr_sub_bucket_count(h), 2048);
    cr_expect_eq(rfx_hdr_bucket_count(h), 24);
    cr_expect_eq(rfx_hdr_counts_len(h), 25600);
    cr_expect_eq(rfx_hdr_memory_size(h), sizeof(struct rfx_hdr) + 25600 * 8);
    rfx_hdr_destroy(h);
    int expect_sub[] = {0, 32, 256, 2048, 32768, 262144};
    for (int sf = 1; sf <= 5; sf++) {
        h = make(1, 3600000000000LL, sf);
        cr_expect_eq(rfx_hdr_sub_bucket_count(h), expect_sub[sf], "sigfigs %d", sf);
        cr_expect_eq(rfx_hdr_significant_figures(h), sf);
        rfx_hdr_destroy(h);
    }
    /* A lowest discernible value of 1000 puts units at 512 (2^9). */
    h = make(1000, 1000000000, 2);
    cr_expect_eq(rfx_hdr_lowest_equivalent(h, 1023), 512);
    cr_expect_eq(rfx_hdr_lowest_trackable(h), 1000);
    cr_expect_eq(rfx_hdr_highest_trackable(h), 1000000000);
    rfx_hdr_destroy(h);
}

Test(hdr, range_check_rejects_and_counts)
{
    struct rfx_hdr *h = make(1, 1000, 3);
    int64_t top = rfx_hdr_max_recordable(h);
    cr_expect_geq(top, 1000, "the last bucket reaches at least highest");
    cr_expect_eq(top, 2047);
    cr_expect_eq(rfx_hdr_record(h, top), 0);
    cr_expect_eq(rfx_hdr_record(h, top + 1), -ERANGE);
    cr_expect_eq(rfx_hdr_record(h, -1), -ERANGE);
    cr_expect_eq(rfx_hdr_record(h, INT64_MIN), -ERANGE);
    cr_expect_eq(rfx_hdr_record_n(h, -1, 5), -ERANGE);
    cr_expect_eq(rfx_hdr_out_of_range(h), 3 + 5);
    cr_expect_eq(rfx_hdr_total_count(h), 1);
    cr_expect_eq(rfx_hdr_record(NULL, 1), -EINVAL);
    cr_expect_eq(rfx_hdr_record_n(h, 1, -1), -EINVAL);
    cr_expect_eq(rfx_hdr_record_corrected(h, 1, -1), -EINVAL);
    cr_expect_eq(rfx_hdr_record_corrected(NULL, 1, 1), -EINVAL);
    rfx_hdr_destroy(h);
}

/* The telemetry stage records runs of equal values as one record of n: the
 * histogram must come out the same as n single records, range check included. */
Test(hdr, fast_n_equals_n_single_records)
{
    struct rfx_hdr *a = make(1, 3600000000LL, 3), *b = make(1, 3600000000LL, 3);
    static const int64_t vals[] = {1, 7, 2047, 2048, 123457, 99999999, 3600000000LL, 1LL << 40};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        int64_t n = (int64_t)i * 3 + 1;
        int rc = rfx_hdr_record_fast_n(a, vals[i], n);
        int want = 0;
        for (int64_t k = 0; k < n; k++)
            want = rfx_hdr_record_fast(b, vals[i]);
        cr_expect_eq(rc, want, "value %lld", (long long)vals[i]);
    }
    cr_expect_eq(rfx_hdr_total_count(a), rfx_hdr_total_count(b));
    cr_expect_eq(rfx_hdr_out_of_range(a), rfx_hdr_out_of_range(b));
    cr_expect_eq(rfx_hdr_out_of_range(a), 22, "the 2^40 record of 22 is out of range");
    cr_expect_eq(rfx_hdr_max(a), rfx_hdr_max(b));
    for (double p = 0; p <= 100; p += 12.5)
        cr_expect_eq(rfx_hdr_value_at_percentile(a, p), rfx_hdr_value_at_percentile(b, p), "p%g",
                     p);
    rfx_hdr_destroy(a);
    rfx_hdr_destroy(b);
}

Test(hdr, percentiles_match_java_2_1_11)
{
    /* Checked against the jar (shared notes). */
    struct rfx_hdr *h = make(1, 3600000000000LL, 3);
    rfx_hdr_record(h, 5000);
    rfx_hdr_record(h, 123456);
    rfx_hdr_record(h, 7777777);
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 0), 5000);
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 50), 123519);
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 100), 7778303);
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 150), 7778303, "clamped to 100");
    /* Below 0 counts like 0 but, as in Java, only p == 0.0 exactly reports the
     * bucket's lowest value: 5000 sits in [5000, 5003]. */
    cr_expect_eq(rfx_hdr_value_at_percentile(h, -3), 5003);
    cr_expect_eq(rfx_hdr_min(h), 5000);
    cr_expect_eq(rfx_hdr_max(h), 7778303);
    rfx_hdr_destroy(h);

    /* Java's ceil() semantics: p25 of [1,2,2,2,2] is 2 (HdrHistogram_c says 1). */
    h = make(1, 1000, 3);
    rfx_hdr_record(h, 1);
    rfx_hdr_record_n(h, 2, 4);
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 25), 2);
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 20), 1);
    rfx_hdr_destroy(h);
}

Test(hdr, empty_histogram_reports_zero)
{
    struct rfx_hdr *h = make(1, 1000000, 3);
    for (double p = 0; p <= 100; p += 12.5)
        cr_expect_eq(rfx_hdr_value_at_percentile(h, p), 0);
    cr_expect_eq(rfx_hdr_min(h), 0);
    cr_expect_eq(rfx_hdr_max(h), 0);
    cr_expect_eq(rfx_hdr_mean(h), 0.0);
    cr_expect_eq(rfx_hdr_stddev(h), 0.0);
    cr_expect_eq(rfx_hdr_value_at_percentile(NULL, 50), 0);
    rfx_hdr_destroy(h);
}

Test(hdr, mean_and_stddev_of_exact_values)
{
    struct rfx_hdr *h = make(1, 100000, 3);
    for (int v = 1; v <= 100; v++)
        rfx_hdr_record(h, v);
    cr_expect_float_eq(rfx_hdr_mean(h), 50.5, 1e-12);
    cr_expect_float_eq(rfx_hdr_stddev(h), sqrt((100.0 * 100.0 - 1) / 12.0), 1e-9);
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 90), 90);
    cr_expect_eq(rfx_hdr_count_at_value(h, 42), 1);
    rfx_hdr_destroy(h);
}

Test(hdr, coordinated_omission_correction)
{
    struct rfx_hdr *h = make(1, 1000000, 3);
    cr_expect_eq(rfx_hdr_record_corrected(h, 1000, 100), 0);
    cr_expect_eq(rfx_hdr_total_count(h), 10, "1000, 900, ..., 100");
    for (int v = 100; v <= 1000; v += 100)
        cr_expect_eq(rfx_hdr_count_at_value(h, v), 1, "value %d", v);
    cr_expect_eq(rfx_hdr_record_corrected(h, 50, 100), 0);
    cr_expect_eq(rfx_hdr_record_corrected(h, 5000, 0), 0, "interval 0: no correction");
    cr_expect_eq(rfx_hdr_total_count(h), 12);
    rfx_hdr_destroy(h);
}

Test(hdr, add_copy_reset)
{
    struct rfx_hdr *a = make(1, 1000000, 3), *b = make(1, 1000000, 3), *c = make(1, 1000, 2);
    for (int i = 0; i < 1000; i++) {
        rfx_hdr_record(a, i);
        rfx_hdr_record(b, i * 100);
    }
    rfx_hdr_record(b, 1000000); /* the last bucket: add must reach it */
    struct rfx_hdr *ref = make(1, 1000000, 3);
    for (int i = 0; i < 1000; i++) {
        rfx_hdr_record(ref, i);
        rfx_hdr_record(ref, i * 100);
    }
    rfx_hdr_record(ref, 1000000);
    cr_expect_eq(rfx_hdr_add(a, b), 0);
    cr_expect_eq(rfx_hdr_total_count(a), 2001);
    int differ = 0;
    for (int i = 0; i < rfx_hdr_counts_len(a); i++)
        differ += a->counts[i] != ref->counts[i];
    cr_expect_eq(differ, 0, "%d buckets differ from recording both", differ);
    rfx_hdr_destroy(ref);
    cr_expect_eq(rfx_hdr_add(c, b), -ERANGE, "values above 1000 do not fit");
    cr_expect_gt(rfx_hdr_out_of_range(c), 0);
    cr_expect_eq(rfx_hdr_total_count(c) + (int64_t)rfx_hdr_out_of_range(c), 1001);
    struct rfx_hdr *d = NULL;
    cr_expect_eq(rfx_hdr_copy(a, &d), 0);
    cr_expect_eq(rfx_hdr_value_at_percentile(d, 99), rfx_hdr_value_at_percentile(a, 99));
    cr_expect_eq(rfx_hdr_total_count(d), 2001);
    rfx_hdr_reset(d);
    cr_expect_eq(rfx_hdr_total_count(d), 0);
    cr_expect_eq(rfx_hdr_max(d), 0);
    cr_expect_eq(rfx_hdr_add(NULL, a), -EINVAL);
    cr_expect_eq(rfx_hdr_add(a, NULL), -EINVAL);
    cr_expect_eq(rfx_hdr_copy(NULL, &d), -EINVAL);
    rfx_hdr_reset(NULL);
    rfx_hdr_destroy(a), rfx_hdr_destroy(b), rfx_hdr_destroy(c), rfx_hdr_destroy(d);
}

Test(hdr, equivalence_ranges)
{
    struct rfx_hdr *h = make(1, 3600000000000LL, 3);
    cr_expect_eq(rfx_hdr_lowest_equivalent(h, 10007), 10000);
    cr_expect_eq(rfx_hdr_highest_equivalent(h, 10007), 10007);
    cr_expect(rfx_hdr_values_equivalent(h, 10000, 10007));
    cr_expect_not(rfx_hdr_values_equivalent(h, 10007, 10008));
    cr_expect_eq(rfx_hdr_median_equivalent(h, 10000), 10004);
    cr_expect_eq(rfx_hdr_lowest_equivalent(h, 2047), 2047, "first bucket is exact");
    rfx_hdr_destroy(h);
    /* A histogram that tracks up to INT64_MAX: its top bucket is 2^62 or
     * more wide, and the range's end is held at INT64_MAX, not wrapped
     * (found by tests/fuzz/fuzz_hdr.c under UBSan: signed overflow). */
    h = make(1, INT64_MAX, 2);
    int64_t top = INT64_MAX - 5;
    cr_expect_eq(rfx_hdr_record(h, top), 0);
    cr_expect_eq(rfx_hdr_highest_equivalent(h, top), INT64_MAX);
    cr_expect(rfx_hdr_median_equivalent(h, top) > rfx_hdr_lowest_equivalent(h, top));
    cr_expect_eq(rfx_hdr_value_at_percentile(h, 100), INT64_MAX);
    cr_expect_eq(rfx_hdr_max(h), INT64_MAX);
    rfx_hdr_destroy(h);
}

Test(hdr, recorded_iteration)
{
    struct rfx_hdr *h = make(1, 1000000, 3);
    int64_t vals[] = {3, 3, 70, 5000, 900000};
    for (size_t i = 0; i < 5; i++)
        rfx_hdr_record(h, vals[i]);
    struct rfx_hdr_iter it;
    rfx_hdr_iter_recorded(&it, h);
    int steps = 0;
    int64_t prev = -1;
    while (rfx_hdr_iter_next(&it)) {
        cr_expect_gt(it.value, prev);
        prev = it.value;
        steps++;
    }
    cr_expect_eq(steps, 4);
    cr_expect_eq(it.count_to_value, 5);
    cr_expect_not(rfx_hdr_iter_next(NULL));
    rfx_hdr_destroy(h);
}

Test(hdr, percentile_file_shape)
{
    struct rfx_hdr *h = make(1, 3600000000000LL, 3);
    for (int i = 1; i <= 10000; i++)
        rfx_hdr_record(h, i * 1000);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(rfx_hdr_write_percentiles(h, f, 5, 1e6), 0);
    fclose(f);
    const char *head = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
    cr_expect(strncmp(buf, head, strlen(head)) == 0);
    cr_expect(strstr(buf, "0.000000000000") != NULL, "starts at percentile 0");
    cr_expect(strstr(buf, "1.000000000000      10000\n") != NULL, "ends at 100 %% without 1/(1-p)");
    /* The mean is over bucket midpoints: 5.001 ms here, not 5.0005. */
    cr_expect(strstr(buf, "#[Mean    =        5.001, StdDeviation   =        2.887]") != NULL, "%s",
              strstr(buf, "#[Mean"));
    cr_expect(strstr(buf, "#[Max     =       10.002, Total count    =        10000]") != NULL);
    cr_expect(strstr(buf, "#[Buckets =           ") != NULL);
    free(buf);
    cr_expect_eq(rfx_hdr_write_percentiles(NULL, stdout, 5, 1), -EINVAL);
    cr_expect_eq(rfx_hdr_write_percentiles(h, NULL, 5, 1), -EINVAL);
    cr_expect_eq(rfx_hdr_write_percentiles(h, stdout, 0, 1), -EINVAL);
    cr_expect_eq(rfx_hdr_write_percentiles(h, stdout, 5, 0), -EINVAL);
    rfx_hdr_destroy(h);
}

Test(java_format, rounds_like_java_formatter)
{
    char b[64];
    struct {
        double v;
        int dec, width;
        const char *want;
    } cases[] = {
        {1.0625, 3, 0, "1.063"}, /* exact tie: Java rounds up, printf to even */
        {2.675, 2, 0, "2.68"},   /* shortest repr "2.675", half-up */
        {0.5, 0, 0, "1"},
        {9.9996, 3, 0, "10.000"},
        {0.0, 3, 0, "0.000"},
        {123.0, 3, 12, "     123.000"},
        {0.0005, 3, 0, "0.001"},
        {0.00049, 3, 0, "0.000"},
        {1e-20, 2, 0, "0.00"},
        {7778.303, 3, 0, "7778.303"},
        {0.999023437500, 12, 0, "0.999023437500"},
        {-1.5, 0, 0, "-2"},
        {1e17, 1, 0, "100000000000000000.0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rfx_java_fixed(b, sizeof b, cases[i].v, cases[i].dec, cases[i].width);
        cr_expect_str_eq(b, cases[i].want, "%.17g at %d decimals", cases[i].v, cases[i].dec);
    }
}
