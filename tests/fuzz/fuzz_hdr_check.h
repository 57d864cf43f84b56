/* What a decoded histogram must satisfy, for fuzz_hdr and fuzz_hlog. */
#ifndef REFLEX_FUZZ_HDR_CHECK_H
#define REFLEX_FUZZ_HDR_CHECK_H

#include <reflex/hdr_histogram.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_hdr_fail(const char *what, long long a, long long b)
{
    fprintf(stderr, "fuzz: decoded histogram: %s (%lld, %lld)\n", what, a, b);
    abort();
}

static inline void fuzz_hdr_check(const struct rfx_hdr *h)
{
    int64_t total = rfx_hdr_total_count(h), sum = 0;
    if (total < 0)
        fuzz_hdr_fail("negative total", total, 0);
    struct rfx_hdr_iter it;
    rfx_hdr_iter_recorded(&it, h);
    while (rfx_hdr_iter_next(&it)) {
        if (it.count_at_value <= 0)
            fuzz_hdr_fail("recorded bucket with no count", it.value, it.count_at_value);
        if (__builtin_add_overflow(sum, it.count_at_value, &sum))
            fuzz_hdr_fail("counts overflow", sum, it.count_at_value);
    }
    if (sum != total)
        fuzz_hdr_fail("counts do not add up to the total", sum, total);
    if (total > 0) {
        int64_t lo = rfx_hdr_min(h), hi = rfx_hdr_max(h);
        if (lo > hi)
            fuzz_hdr_fail("min above max", lo, hi);
        static const double ps[] = {0, 50, 90, 99, 99.9, 100};
        int64_t last = 0;
        for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
            int64_t v = rfx_hdr_value_at_percentile(h, ps[i]);
            if (v < last || v > rfx_hdr_highest_equivalent(h, hi))
                fuzz_hdr_fail("percentile out of order or range", v, last);
            last = v;
        }
        (void)rfx_hdr_mean(h);
        (void)rfx_hdr_stddev(h);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    struct rfx_hdr *again = NULL;
    int rc = rfx_hdr_encode(h, &buf, &len);
    if (rc == -ENOMEM)
        return;
    if (rc != 0)
        fuzz_hdr_fail("re-encoding failed", rc, 0);
    rc = rfx_hdr_decode(buf, len, &again);
    free(buf);
    if (rc == -ENOMEM)
        return;
    if (rc != 0)
        fuzz_hdr_fail("its own encoding does not decode", rc, 0);
    if (rfx_hdr_total_count(again) != total || rfx_hdr_max(again) != rfx_hdr_max(h) ||
        rfx_hdr_min(again) != rfx_hdr_min(h))
        fuzz_hdr_fail("round trip changed it", rfx_hdr_total_count(again), total);
    rfx_hdr_iter_recorded(&it, h);
    while (rfx_hdr_iter_next(&it))
        if (rfx_hdr_count_at_value(again, it.value) != it.count_at_value)
            fuzz_hdr_fail("round trip changed a count", it.value, it.count_at_value);
    rfx_hdr_destroy(again);
}

#endif
