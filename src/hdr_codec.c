/*
 * HdrHistogram V2 encoding: the 40-byte big-endian header, ZigZag LEB128
 * counts with zero runs, zlib compression, and base64 for log lines.
 */
#include "hdr_histogram_impl.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define V2_COOKIE            0x1c849303u /* base; | 0x10 marks the word-size field */
#define V2_COMPRESSED_COOKIE 0x1c849304u
#define V2_HEADER            40
#define MAX_VARINT           9

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* ZigZag, then LEB128 with at most 8 seven-bit groups and a whole 9th byte. */
static size_t put_varint(uint8_t *p, int64_t sv)
{
    uint64_t v = ((uint64_t)sv << 1) ^ (0 - ((uint64_t)sv >> 63)); /* no signed shift */
    size_t n = 0;
    while (n < 8) {
        if (v < 0x80) {
            p[n++] = (uint8_t)v;
            return n;
        }
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Returns bytes consumed, 0 if truncated. */
static size_t get_varint(const uint8_t *p, size_t avail, int64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    for (;;) {
        if (n >= avail)
            return 0;
        uint8_t b = p[n];
        if (n == 8) {
            v |= (uint64_t)b << 56;
            n++;
            break;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * n);
        n++;
        if (!(b & 0x80))
            break;
    }
    *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    return n;
}

/* Uncompressed V2 form into a fresh buffer. */
static int encode_plain(const struct rfx_hdr *h, uint8_t **buf, size_t *len)
{
    int limit = 1; /* counts through the highest non-zero index (index 0 when empty) */
    for (int i = h->counts_len - 1; i > 0; i--) {
        if (h->counts[i]) {
            limit = i + 1;
            break;
        }
    }
    uint8_t *b = malloc(V2_HEADER + (size_t)limit * MAX_VARINT);
    if (!b)
        return -ENOMEM;
    size_t n = V2_HEADER;
    for (int i = 0; i < limit;) {
        int64_t c = h->counts[i++];
        int64_t zeros = 0;
        if (c == 0) {
            zeros = 1;
            while (i < limit && h->counts[i] == 0)
                zeros++, i++;
        }
        /* A single zero is written as 0, a run of two or more as -run. */
        n += put_varint(b + n, zeros > 1 ? -zeros : c);
    }
    double ratio = 1.0;
    uint64_t ratio_bits;
    memcpy(&ratio_bits, &ratio, sizeof ratio_bits);
    put32(b, V2_COOKIE | 0x10);
    put32(b + 4, (uint32_t)(n - V2_HEADER));
    put32(b + 8, 0); /* normalizing index offset */
    put32(b + 12, (uint32_t)h->sigfigs);
    put64(b + 16, (uint64_t)h->lowest);
    put64(b + 24, (uint64_t)h->highest);
    put64(b + 32, ratio_bits);
    *buf = b;
    *len = n;
    return 0;
}

int rfx_hdr_encode(const struct rfx_hdr *h, uint8_t **buf, size_t *len)
{
    if (!h || !buf || !len)
        return -EINVAL;
    uint8_t *plain;
    size_t plain_len;
    int rc = encode_plain(h, &plain, &plain_len);
    if (rc < 0)
        return rc;
    uLongf zlen = compressBound((uLong)plain_len);
    uint8_t *out = malloc(8 + zlen);
    if (!out) {
        free(plain);
        return -ENOMEM;
    }
    if (compress2(out + 8, &zlen, plain, (uLong)plain_len, Z_DEFAULT_COMPRESSION) != Z_OK) {
        free(plain);
        free(out);
        return -ENOMEM;
    }
    free(plain);
    put32(out, V2_COMPRESSED_COOKIE | 0x10);
    put32(out + 4, (uint32_t)zlen);
    *buf = out;
    *len = 8 + zlen;
    return 0;
}

/* Decode the uncompressed V2 form (header + payload, exactly len bytes or more). */
static int decode_plain(const uint8_t *b, size_t len, struct rfx_hdr **out)
{
    if (len < V2_HEADER)
        return -EBADMSG;
    uint32_t cookie = get32(b);
    if ((cookie & ~0xf0u) != V2_COOKIE)
        return (cookie & ~0xf0u) < V2_COOKIE && (cookie & ~0xffu) == 0x1c849300u ? -ENOTSUP
                                                                                 : -EBADMSG;
    uint32_t payload = get32(b + 4);
    uint32_t offset = get32(b + 8);
    int sigfigs = (int)get32(b + 12);
    int64_t lowest = (int64_t)get64(b + 16);
    int64_t highest = (int64_t)get64(b + 24);
    if (offset != 0)
        return -ENOTSUP;
    if ((size_t)payload > len - V2_HEADER)
        return -EBADMSG;
    struct rfx_hdr *h;
    int rc = rfx_hdr_create(lowest, highest, sigfigs, &h);
    if (rc < 0)
        return rc == -ENOMEM ? rc : -EBADMSG;
    const uint8_t *p = b + V2_HEADER;
    size_t left = payload;
    int idx = 0;
    while (left > 0) {
        int64_t v;
        size_t k = get_varint(p, left, &v);
        if (k == 0)
            goto bad;
        p += k, left -= k;
        if (v < 0) {
            if (v < -(int64_t)(h->counts_len - idx))
                goto bad;
            idx += (int)-v;
        } else {
            if (idx >= h->counts_len || v > INT64_MAX - h->total_count)
                goto bad;
            h->counts[idx++] = v;
            h->total_count += v;
        }
    }
    *out = h;
    return 0;
bad:
    rfx_hdr_destroy(h);
    return -EBADMSG;
}

int rfx_hdr_decode(const uint8_t *buf, size_t len, struct rfx_hdr **out)
{
    if (!buf || !out)
        return -EINVAL;
    if (len < 8)
        return -EBADMSG;
    uint32_t cookie = get32(buf);
    if ((cookie & ~0xf0u) == V2_COOKIE)
        return decode_plain(buf, len, out);
    if ((cookie & ~0xf0u) != V2_COMPRESSED_COOKIE)
        return (cookie & ~0xffu) == 0x1c849300u ? -ENOTSUP : -EBADMSG;
    uint32_t zlen = get32(buf + 4);
    if ((size_t)zlen > len - 8)
        return -EBADMSG;

    /* Inflate the header first: its payload length bounds the rest, so a
     * hostile stream cannot make us allocate more than the layout needs. */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return -ENOMEM;
    uint8_t head[V2_HEADER];
    zs.next_in = (Bytef *)(buf + 8);
    zs.avail_in = zlen;
    zs.next_out = head;
    zs.avail_out = V2_HEADER;
    int zrc = inflate(&zs, Z_SYNC_FLUSH);
    if ((zrc != Z_OK && zrc != Z_STREAM_END) || zs.avail_out != 0) {
        inflateEnd(&zs);
        return -EBADMSG;
    }
    uint32_t payload = get32(head + 4);
    struct rfx_hdr *probe;
    int rc = rfx_hdr_create((int64_t)get64(head + 16), (int64_t)get64(head + 24),
                            (int)get32(head + 12), &probe);
    if (rc < 0) {
        inflateEnd(&zs);
        return rc == -ENOMEM ? rc : -EBADMSG;
    }
    size_t max_payload = (size_t)probe->counts_len * MAX_VARINT;
    rfx_hdr_destroy(probe);
    if (payload > max_payload) {
        inflateEnd(&zs);
        return -EBADMSG;
    }
    uint8_t *plain = malloc(V2_HEADER + (size_t)payload);
    if (!plain) {
        inflateEnd(&zs);
        return -ENOMEM;
    }
    memcpy(plain, head, V2_HEADER);
    zs.next_out = plain + V2_HEADER;
    zs.avail_out = payload;
    if (payload > 0 && zrc != Z_STREAM_END)
        zrc = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    if (zs.avail_out != 0 || (zrc != Z_STREAM_END && zrc != Z_OK && zrc != Z_BUF_ERROR)) {
        free(plain);
        return -EBADMSG;
    }
    rc = decode_plain(plain, V2_HEADER + (size_t)payload, out);
    free(plain);
    return rc;
}

/* ---- base64 (RFC 4648, standard alphabet, padded) ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int rfx_hdr_encode_base64(const struct rfx_hdr *h, char **out)
{
    if (!h || !out)
        return -EINVAL;
    uint8_t *bin;
    size_t n;
    int rc = rfx_hdr_encode(h, &bin, &n);
    if (rc < 0)
        return rc;
    char *s = malloc((n + 2) / 3 * 4 + 1);
    if (!s) {
        free(bin);
        return -ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)bin[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)bin[i + 1] << 8;
        if (i + 2 < n)
            v |= bin[i + 2];
        s[o++] = b64[v >> 18 & 63];
        s[o++] = b64[v >> 12 & 63];
        s[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        s[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    s[o] = 0;
    free(bin);
    *out = s;
    return 0;
}

int rfx_hdr_decode_base64(const char *text, size_t len, struct rfx_hdr **out)
{
    if (!text || !out)
        return -EINVAL;
    while (len > 0 && text[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -EBADMSG;
    uint8_t *bin = malloc(len / 4 * 3 + 3);
    if (!bin)
        return -ENOMEM;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)text[i]);
        if (v < 0) {
            free(bin);
            return -EBADMSG;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bin[o++] = (uint8_t)(acc >> bits);
        }
    }
    int rc = rfx_hdr_decode(bin, o, out);
    free(bin);
    return rc;
}
