/* Unit tests: histogram log format 1.3 writer and reader. */
#include <criterion/criterion.h>

#include "hdr_histogram_impl.h"

#include <stdlib.h>
#include <string.h>

static char *write_log(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    struct rfx_hlog_writer *w;
    cr_assert_eq(rfx_hlog_writer_create(f, 1700000000.0, &w), 0);
    struct rfx_hdr *h;
    rfx_hdr_create(1, 3600000000000LL, 3, &h);
    for (int i = 0; i < 3; i++) {
        rfx_hdr_reset(h);
        for (int k = 0; k < 100; k++)
            rfx_hdr_record(h, (i + 1) * 1000000 + k);
        cr_assert_eq(rfx_hlog_write(w, i == 1 ? NULL : "e2e", 1700000000.0 + i, 1.0, h, 1e6), 0);
    }
    cr_expect_eq(rfx_hlog_write(w, "bad,tag", 1700000000.0, 1.0, h, 1e6), -EINVAL);
    cr_expect_eq(rfx_hlog_write(w, "bad tag", 1700000000.0, 1.0, h, 1e6), -EINVAL);
    cr_expect_eq(rfx_hlog_write(w, "e2e", 1700000000.0, -1.0, h, 1e6), -EINVAL);
    cr_expect_eq(rfx_hlog_write(NULL, "e2e", 1700000000.0, 1.0, h, 1e6), -EINVAL);
    cr_expect_eq(rfx_hlog_write(w, "e2e", 1700000000.0, 1.0, NULL, 1e6), -EINVAL);
    rfx_hlog_writer_destroy(w);
    rfx_hdr_destroy(h);
    fclose(f);
    return buf;
}

Test(hlog, header_and_columns)
{
    size_t len;
    char *buf = write_log(&len);
    cr_expect(strncmp(buf, "#[Histogram log format version 1.3]\n", 36) == 0);
    cr_expect(strstr(buf, "#[StartTime: 1700000000.000 (seconds since epoch), Tue Nov 14 "
                          "22:13:20 UTC 2023]\n") != NULL);
    cr_expect(strstr(buf, "#[BaseTime: 1700000000.000 (seconds since epoch)]\n") != NULL);
    cr_expect(strstr(buf, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
                          "\"Interval_Compressed_Histogram\"\n") != NULL);
    /* Start relative to BaseTime; a length, not an end; max in ms. */
    cr_expect(strstr(buf, "Tag=e2e,0.000,1.000,1.000,HISTFAAA") != NULL, "%s", buf);
    cr_expect(strstr(buf, "\n1.000,1.000,2.001,HISTFAAA") != NULL,
              "untagged line; max is the bucket top 2000895 ns");
    cr_expect(strstr(buf, "Tag=e2e,2.000,1.000,3.000,HISTFAAA") != NULL);
    free(buf);
}

Test(hlog, read_back)
{
    size_t len;
    char *buf = write_log(&len);
    FILE *f = fmemopen(buf, len, "r");
    struct rfx_hlog_reader *r;
    cr_assert_eq(rfx_hlog_reader_create(f, &r), 0);
    struct rfx_hlog_entry e;
    const char *tags[] = {"e2e", "", "e2e"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rfx_hlog_read(r, &e), 1, "%s", rfx_hlog_reader_error(r));
        cr_expect_str_eq(e.tag, tags[i]);
        cr_expect_float_eq(e.start_s, 1700000000.0 + i, 1e-6);
        cr_expect_float_eq(e.length_s, 1.0, 1e-9);
        cr_expect_eq(rfx_hdr_total_count(e.h), 100);
        cr_expect_eq(rfx_hdr_min(e.h), rfx_hdr_lowest_equivalent(e.h, (i + 1) * 1000000));
        rfx_hdr_destroy(e.h);
    }
    cr_expect_eq(rfx_hlog_read(r, &e), 0, "end of file");
    cr_expect_float_eq(rfx_hlog_reader_start_time(r), 1700000000.0, 1e-6);
    cr_expect_float_eq(rfx_hlog_reader_base_time(r), 1700000000.0, 1e-6);
    rfx_hlog_reader_destroy(r);
    fclose(f);
    free(buf);
}

static int read_all(const char *text, char *err, size_t errlen)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    struct rfx_hlog_reader *r;
    cr_assert_eq(rfx_hlog_reader_create(f, &r), 0);
    struct rfx_hlog_entry e;
    int rc;
    while ((rc = rfx_hlog_read(r, &e)) == 1)
        rfx_hdr_destroy(e.h);
    snprintf(err, errlen, "%s", rfx_hlog_reader_error(r));
    rfx_hlog_reader_destroy(r);
    fclose(f);
    return rc;
}

Test(hlog, malformed_lines_are_named)
{
    const char *good =
        "0.000,1.000,0.000,HISTFAAAACB4nJNpmSzMwMDAxAABMJoRTPI7Odh/gAjwMgEARe8DGw==\n";
    char err[256];
    struct {
        const char *text, *msg;
    } cases[] = {
        {"#[Histogram log format version 1.3]\ngarbage\n", "line 2: expected 4"},
        {"1.0,2.0,HISTFAAA\n", "line 1: expected 4"},
        {"x,1.000,0.000,HISTFAAA\n", "line 1: start timestamp is not a number"},
        {"0.0,1.0,zz,HISTFAAA\n", "line 1: interval max is not a number"},
        {"0.0,1.0,0.0,HIST!AAA\n", "line 1: histogram does not decode"},
        {"0.0,1.0,0.0,HISTFAAAAB54nJNpmSzMw\n", "line 1: histogram does not decode"},
        {"0.0,1.0,0.0,HISTFAAA,extra\n", "line 1: more than 4 fields"},
        {"Tag=,0.0,1.0,0.0,HISTFAAA\n", "line 1: tag empty"},
        {"Tag=abc\n", "line 1: tag without"},
        {"#[StartTime: soon]\n", "line 1: unreadable StartTime"},
        {"#[BaseTime: ]\n", "line 1: unreadable BaseTime"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect_eq(read_all(cases[i].text, err, sizeof err), -EBADMSG, "case %zu", i);
        cr_expect(strstr(err, cases[i].msg) != NULL, "case %zu: got '%s', want '%s'", i, err,
                  cases[i].msg);
    }
    cr_expect_eq(read_all(good, err, sizeof err), 0, "a well-formed line: %s", err);
    cr_expect_eq(rfx_hlog_reader_create(NULL, NULL), -EINVAL);
    cr_expect_eq(rfx_hlog_writer_create(NULL, 0, NULL), -EINVAL);
    cr_expect_eq(rfx_hlog_read(NULL, NULL), -EINVAL);
}

Test(hlog, relative_timestamps_without_base_time)
{
    /* No BaseTime: timestamps a year below StartTime are relative to it. */
    char text[512];
    snprintf(text, sizeof text,
             "#[StartTime: 1700000000.000 (seconds since epoch), x]\n"
             "5.000,1.000,0.000,HISTFAAAACB4nJNpmSzMwMDAxAABMJoRTPI7Odh/gAjwMgEARe8DGw==\n");
    FILE *f = fmemopen(text, strlen(text), "r");
    struct rfx_hlog_reader *r;
    rfx_hlog_reader_create(f, &r);
    struct rfx_hlog_entry e;
    cr_assert_eq(rfx_hlog_read(r, &e), 1, "%s", rfx_hlog_reader_error(r));
    cr_expect_float_eq(e.start_s, 1700000005.0, 1e-6);
    rfx_hdr_destroy(e.h);
    rfx_hlog_reader_destroy(r);
    fclose(f);
}
