/* Unit tests: the interval recorder, alone and with a concurrent writer. */
#include <criterion/criterion.h>

#include "hdr_histogram_impl.h"

#include <stdlib.h>

Test(recorder, intervals_partition_the_records)
{
    struct rfx_hdr_recorder *rec;
    cr_assert_eq(rfx_hdr_recorder_create(1, 1000000, 3, &rec), 0);
    for (int i = 1; i <= 10; i++)
        cr_expect_eq(rfx_hdr_recorder_record(rec, i), 0);
    cr_expect_eq(rfx_hdr_recorder_record(rec, -1), -ERANGE);
    struct rfx_hdr *iv = NULL;
    cr_assert_eq(rfx_hdr_recorder_interval(rec, &iv), 0);
    cr_expect_eq(rfx_hdr_total_count(iv), 10);
    cr_expect_eq(rfx_hdr_out_of_range(iv), 1);
    cr_expect_eq(rfx_hdr_recorder_record_corrected(rec, 500, 100), 0);
    cr_assert_eq(rfx_hdr_recorder_interval(rec, &iv), 0, "recycling the previous interval");
    cr_expect_eq(rfx_hdr_total_count(iv), 5);
    cr_assert_eq(rfx_hdr_recorder_interval(rec, &iv), 0);
    cr_expect_eq(rfx_hdr_total_count(iv), 0, "nothing recorded since");

    struct rfx_hdr *other;
    rfx_hdr_create(1, 1000, 3, &other);
    cr_expect_eq(rfx_hdr_recorder_interval(rec, &other), -EINVAL, "layout mismatch");
    cr_expect_eq(rfx_hdr_recorder_interval(NULL, &iv), -EINVAL);
    cr_expect_eq(rfx_hdr_recorder_interval(rec, NULL), -EINVAL);
    cr_expect_eq(rfx_hdr_recorder_record(NULL, 1), -EINVAL);
    cr_expect_eq(rfx_hdr_recorder_create(0, 1000, 3, &rec), -EINVAL);
    rfx_hdr_destroy(other);
    rfx_hdr_destroy(iv);
    rfx_hdr_recorder_destroy(rec);
    rfx_hdr_recorder_destroy(NULL);
}

/* The concurrent writer/reader case is tests/stress/recorder_race.c (it also runs under TSan). */
