/*
 * bench=hist: the cost of recording a latency into the HDR histogram, beside
 * the physical floor of the same loop (an increment of a counter picked from
 * the value with a mask, no bucket arithmetic), and the throughput of V2
 * compressed encoding and decoding.
 *
 * Values are realistic latencies: log-normal around 50 µs in ns with a tail
 * into milliseconds, precomputed so that the loop measures recording only.
 * Timing: batches of 1000 records timed with the TSC; the per-record cost of
 * each batch goes into a distribution; p50 and p99 of it are reported.
 *
 * usage: bench_hist [--batches N]
 */
#include "hdr_histogram_impl.h"
#include "bench_stats.h"

#include <reflex/thread.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#define BATCH   1000
#define NVALUES (1 << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x853c49e6748fea9bull;
static double unit(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int batches = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
            batches = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_hist [--batches N]\n");
            return 2;
        }
    }
    if (batches < 100)
        batches = 100;
    rfx_thread_pin_self(0, NULL, 0);

    double t0 = now_s();
    uint64_t c0 = __rdtsc();
    while (now_s() - t0 < 0.2)
        ;
    double tsc_per_ns = (double)(__rdtsc() - c0) / ((now_s() - t0) * 1e9);

    int64_t *vals = malloc(NVALUES * sizeof *vals);
    for (int i = 0; i < NVALUES; i++) {
        double g = sqrt(-2 * log(1 - unit())) * cos(6.283185307179586 * unit());
        vals[i] = (int64_t)(50000.0 * exp(0.8 * g));
    }
    struct rfx_hdr *h;
    rfx_hdr_create(1, 3600000000000LL, 3, &h);
    int64_t *floor_counts = calloc((size_t)h->counts_len, sizeof(int64_t));
    int64_t floor_mask = 16383; /* well inside counts_len (33,792 for 1 ns..1 h at 3 figures) */
    double *inl = malloc((size_t)batches * sizeof(double));
    double *api = malloc((size_t)batches * sizeof(double));
    double *flo = malloc((size_t)batches * sizeof(double));

    /* Interleave the three loops batch by batch so that noise hits them alike. */
    unsigned pos = 0;
    for (int b = -batches / 10; b < batches; b++) {
        const int64_t *v = vals + (pos & (NVALUES - 1) & ~(unsigned)(BATCH - 1));
        pos += BATCH;
        if (pos + BATCH > NVALUES)
            pos = 0;
        uint64_t s0 = __rdtsc();
        for (int i = 0; i < BATCH; i++)
            rfx_hdr_record_fast(h, v[i]);
        uint64_t s1 = __rdtsc();
        for (int i = 0; i < BATCH; i++)
            rfx_hdr_record(h, v[i]);
        uint64_t s2 = __rdtsc();
        for (int i = 0; i < BATCH; i++)
            floor_counts[v[i] & floor_mask]++;
        uint64_t s3 = __rdtsc();
        if (b >= 0) {
            inl[b] = (double)(s1 - s0) / tsc_per_ns / BATCH;
            api[b] = (double)(s2 - s1) / tsc_per_ns / BATCH;
            flo[b] = (double)(s3 - s2) / tsc_per_ns / BATCH;
        }
    }
    double inl50 = bench_percentile(inl, batches, 50), inl99 = bench_percentile(inl, batches, 99);
    double api50 = bench_percentile(api, batches, 50), flo50 = bench_percentile(flo, batches, 50);

    /* Encoding: a histogram of 1e6 realistic values, encoded and decoded whole. */
    struct rfx_hdr *e;
    rfx_hdr_create(1, 3600000000000LL, 3, &e);
    for (int i = 0; i < NVALUES; i++)
        rfx_hdr_record(e, vals[i]);
    char *b64 = NULL;
    int n_enc = 0, n_dec = 0;
    double te = now_s();
    while (now_s() - te < 1.0) {
        free(b64);
        rfx_hdr_encode_base64(e, &b64);
        n_enc++;
    }
    double enc_s = (now_s() - te) / n_enc;
    size_t b64_len = strlen(b64);
    double td = now_s();
    while (now_s() - td < 1.0) {
        struct rfx_hdr *d;
        if (rfx_hdr_decode_base64(b64, b64_len, &d) != 0) {
            fprintf(stderr, "bench_hist: decode failed\n");
            return 1;
        }
        if (rfx_hdr_total_count(d) != NVALUES) {
            fprintf(stderr, "bench_hist: decoded count differs\n");
            return 1;
        }
        rfx_hdr_destroy(d);
        n_dec++;
    }
    double dec_s = (now_s() - td) / n_dec;

    printf("record: inline p50 %.2f ns p99 %.2f ns; public call p50 %.2f ns; "
           "floor (masked increment) p50 %.2f ns\n",
           inl50, inl99, api50, flo50);
    printf("codec: %zu-byte base64 log entry for %d values: encode %.1f us, decode %.1f us\n",
           b64_len, NVALUES, enc_s * 1e6, dec_s * 1e6);
    printf("SUMMARY bench=hist record_ns_p50=%.2f record_ns_p99=%.2f record_api_ns_p50=%.2f "
           "floor_increment_ns_p50=%.2f ratio_record_vs_floor=%.2f encode_per_s=%.0f "
           "decode_per_s=%.0f encoded_base64_bytes=%zu values=%d batches=%d\n",
           inl50, inl99, api50, flo50, inl50 / flo50, 1 / enc_s, 1 / dec_s, b64_len, NVALUES,
           batches);
    int64_t floor_total = 0; /* reading the floor counts keeps its loop alive */
    for (int i = 0; i <= floor_mask; i++)
        floor_total += floor_counts[i];
    if (floor_total != rfx_hdr_total_count(h) / 2) {
        fprintf(stderr, "bench_hist: floor loop lost increments\n");
        return 1;
    }
    free(b64);
    free(vals), free(floor_counts), free(inl), free(api), free(flo);
    rfx_hdr_destroy(h), rfx_hdr_destroy(e);
    return 0;
}
