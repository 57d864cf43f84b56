/* Unit tests: V2 compressed encoding, base64, and refusal of corrupt input. */
#include <criterion/criterion.h>

#include "hdr_histogram_impl.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static struct rfx_hdr *random_hist(int sf, int n)
{
    struct rfx_hdr *h;
    cr_assert_eq(rfx_hdr_create(1, 3600000000000LL, sf, &h), 0);
    for (int i = 0; i < n; i++) {
        int shift = (int)(xorshift() % 40);
        rfx_hdr_record(h, (int64_t)(xorshift() >> (64 - shift - 1)) & ((INT64_C(1) << shift) - 1));
    }
    return h;
}

static void expect_same(const struct rfx_hdr *a, const struct rfx_hdr *b)
{
    cr_assert_eq(a->counts_len, b->counts_len);
    cr_expect_eq(a->lowest, b->lowest);
    cr_expect_eq(a->highest, b->highest);
    cr_expect_eq(a->sigfigs, b->sigfigs);
    cr_expect_eq(a->total_count, b->total_count);
    cr_expect_eq(memcmp(a->counts, b->counts, (size_t)a->counts_len * 8), 0, "counts differ");
}

Test(codec, round_trip_every_precision)
{
    for (int sf = 1; sf <= 5; sf++) {
        for (int n = 0; n < 3000; n += 997) {
            struct rfx_hdr *h = random_hist(sf, n), *back = NULL;
            uint8_t *buf;
            size_t len;
            cr_assert_eq(rfx_hdr_encode(h, &buf, &len), 0);
            cr_assert_eq(rfx_hdr_decode(buf, len, &back), 0, "sf %d n %d", sf, n);
            expect_same(h, back);
            char *b64;
            cr_assert_eq(rfx_hdr_encode_base64(h, &b64), 0);
            cr_expect(strncmp(b64, "HISTFAAA", 8) == 0, "%.12s", b64);
            struct rfx_hdr *back2 = NULL;
            cr_assert_eq(rfx_hdr_decode_base64(b64, strlen(b64), &back2), 0);
            expect_same(h, back2);
            free(buf), free(b64);
            rfx_hdr_destroy(h), rfx_hdr_destroy(back), rfx_hdr_destroy(back2);
        }
    }
}

Test(codec, big_counts_and_long_zero_runs)
{
    struct rfx_hdr *h, *back;
    cr_assert_eq(rfx_hdr_create(1, INT64_MAX / 2, 2, &h), 0);
    rfx_hdr_record_n(h, 0, INT64_C(1) << 60);
    rfx_hdr_record_n(h, INT64_MAX / 4, 3);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rfx_hdr_encode(h, &buf, &len), 0);
    cr_assert_eq(rfx_hdr_decode(buf, len, &back), 0);
    expect_same(h, back);
    free(buf);
    rfx_hdr_destroy(h), rfx_hdr_destroy(back);
}

Test(codec, bad_arguments)
{
    struct rfx_hdr *h = random_hist(3, 10), *out = NULL;
    uint8_t *buf;
    size_t len;
    char *s;
    cr_expect_eq(rfx_hdr_encode(NULL, &buf, &len), -EINVAL);
    cr_expect_eq(rfx_hdr_encode(h, NULL, &len), -EINVAL);
    cr_expect_eq(rfx_hdr_encode(h, &buf, NULL), -EINVAL);
    cr_expect_eq(rfx_hdr_decode(NULL, 10, &out), -EINVAL);
    cr_expect_eq(rfx_hdr_decode((const uint8_t *)"x", 1, NULL), -EINVAL);
    cr_expect_eq(rfx_hdr_encode_base64(NULL, &s), -EINVAL);
    cr_expect_eq(rfx_hdr_encode_base64(h, NULL), -EINVAL);
    cr_expect_eq(rfx_hdr_decode_base64(NULL, 0, &out), -EINVAL);
    cr_expect_eq(rfx_hdr_decode_base64("HISTFAAA", 8, NULL), -EINVAL);
    cr_expect_null(out);
    rfx_hdr_destroy(h);
}

Test(codec, every_truncation_is_refused)
{
    struct rfx_hdr *h = random_hist(3, 500), *out = NULL;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rfx_hdr_encode(h, &buf, &len), 0);
    for (size_t cut = 0; cut < len; cut++)
        cr_expect_eq(rfx_hdr_decode(buf, cut, &out), -EBADMSG, "cut at %zu of %zu", cut, len);
    char *b64;
    cr_assert_eq(rfx_hdr_encode_base64(h, &b64), 0);
    size_t blen = strlen(b64);
    for (size_t cut = 0; cut + 4 < blen; cut++)
        cr_expect_lt(rfx_hdr_decode_base64(b64, cut, &out), 0, "base64 cut at %zu", cut);
    cr_expect_null(out);
    free(buf), free(b64);
    rfx_hdr_destroy(h);
}

Test(codec, corrupt_bytes_never_crash)
{
    struct rfx_hdr *h = random_hist(2, 300), *out;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rfx_hdr_encode(h, &buf, &len), 0);
    int refused = 0, accepted = 0;
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1 << bit);
            out = NULL;
            int rc = rfx_hdr_decode(buf, len, &out);
            if (rc == 0) {
                accepted++;
                rfx_hdr_destroy(out);
            } else {
                cr_expect(rc == -EBADMSG || rc == -ENOTSUP, "rc %d", rc);
                refused++;
            }
            buf[i] ^= (uint8_t)(1 << bit);
        }
    }
    cr_expect_gt(refused, 0);
    free(buf);
    rfx_hdr_destroy(h);
}

Test(codec, malformed_inputs_named)
{
    struct rfx_hdr *out = NULL;
    uint8_t junk[64] = {0x1c, 0x84, 0x93, 0x14, 0, 0, 0, 20};
    memset(junk + 8, 0xab, 56);
    cr_expect_eq(rfx_hdr_decode(junk, sizeof junk, &out), -EBADMSG, "zlib garbage");
    uint8_t v1[48] = {0x1c, 0x84, 0x93, 0x11};
    cr_expect_eq(rfx_hdr_decode(v1, sizeof v1, &out), -ENOTSUP, "V1 cookie");
    uint8_t other[48] = {0xde, 0xad, 0xbe, 0xef};
    cr_expect_eq(rfx_hdr_decode(other, sizeof other, &out), -EBADMSG, "unknown cookie");
    cr_expect_eq(rfx_hdr_decode_base64("HIST*AAA", 8, &out), -EBADMSG, "bad character");
    cr_expect_eq(rfx_hdr_decode_base64("HISTF", 5, &out), -EBADMSG, "length 1 mod 4");
    cr_expect_eq(rfx_hdr_decode_base64("", 0, &out), -EBADMSG, "empty");

    /* An uncompressed V2 payload whose zero run runs past the layout. */
    uint8_t plain[48] = {0x1c, 0x84, 0x93, 0x13, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3};
    plain[23] = 1;                      /* lowest 1 */
    plain[30] = 0x03, plain[31] = 0xe8; /* highest 1000 */
    plain[32] = 0x3f, plain[33] = 0xf0; /* 1.0 */
    plain[40] = 0xff, plain[41] = 0x7f; /* zigzag(-8192) */
    cr_expect_eq(rfx_hdr_decode(plain, 42, &out), -EBADMSG, "run beyond counts");
    plain[40] = 0x02, plain[41] = 0x04; /* counts 1, 2 */
    cr_expect_eq(rfx_hdr_decode(plain, 42, &out), 0, "the same header with sane counts");
    cr_expect_eq(rfx_hdr_total_count(out), 3);
    rfx_hdr_destroy(out);
    plain[15] = 6;
    out = NULL;
    cr_expect_eq(rfx_hdr_decode(plain, 42, &out), -EBADMSG, "sigfigs 6 in the header");
    plain[15] = 3;
    plain[11] = 1;
    cr_expect_eq(rfx_hdr_decode(plain, 42, &out), -ENOTSUP, "normalizing offset");
    cr_expect_null(out);
}

Test(codec, payload_length_bomb_is_refused)
{
    /* A compressed stream announcing a payload far larger than the layout. */
    uint8_t plain[40] = {0x1c, 0x84, 0x93, 0x13, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3};
    plain[23] = 1;
    plain[30] = 0x03, plain[31] = 0xe8;
    uint8_t z[128] = {0x1c, 0x84, 0x93, 0x14};
    uLongf zlen = sizeof z - 8;
    cr_assert_eq(compress2(z + 8, &zlen, plain, sizeof plain, 6), Z_OK);
    z[4] = 0, z[5] = 0, z[6] = 0, z[7] = (uint8_t)zlen;
    struct rfx_hdr *out = NULL;
    cr_expect_eq(rfx_hdr_decode(z, 8 + zlen, &out), -EBADMSG);
    cr_expect_null(out);
}
