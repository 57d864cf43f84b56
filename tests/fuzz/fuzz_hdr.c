/*
 * Fuzz the HdrHistogram V2 decoder (src/hdr_codec.c: zlib, ZigZag LEB128
 * counts). A histogram it accepts must be whole: its counts add up to its
 * total, every query answers inside its range, and encoding it again and
 * decoding that gives the same histogram.
 */
#include "fuzz_hdr_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rfx_hdr *h = NULL;
    int rc = rfx_hdr_decode(data, size, &h);
    if (rc == 0) {
        fuzz_hdr_check(h);
        rfx_hdr_destroy(h);
    } else if (rc != -EBADMSG && rc != -ENOTSUP && rc != -ENOMEM) {
        fprintf(stderr, "fuzz_hdr: decode returned %d\n", rc);
        abort();
    }
    return 0;
}
