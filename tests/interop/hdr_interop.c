/*
 * Interop with HdrHistogram (Java), reflex's side.
 *
 *   hdr_interop gen DIR
 *       Write DIR/reflex.hlog: 24 random distributions plus the edges (empty,
 *       one value, the highest trackable value, 1..5 significant figures,
 *       lowest discernible > 1), each under its own tag and split over
 *       several intervals; DIR/expected.txt: per tag the count and the
 *       percentiles reflex computes for the merged intervals; DIR/TAG.hgrm:
 *       reflex's percentile distribution of each (unit ratio 1).
 *   hdr_interop check LOG EXPECTED DIR
 *       Read a log the Java library wrote; merge per tag; compare reflex's
 *       percentiles with EXPECTED (computed by Java) and reflex's .hgrm with
 *       DIR/TAG.hgrm (written by Java). Prints one line per tag.
 *
 * Lines of expected.txt: tag count p50 p90 p99 p99.9 p99.99 max
 */
#include "hdr_histogram_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double levels[] = {50, 90, 99, 99.9, 99.99};

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unit(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

static void expected_line(FILE *f, const char *tag, const struct rfx_hdr *h)
{
    fprintf(f, "%s %" PRId64, tag, rfx_hdr_total_count(h));
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        fprintf(f, " %" PRId64, rfx_hdr_value_at_percentile(h, levels[i]));
    fprintf(f, " %" PRId64 "\n", rfx_hdr_max(h));
}

static void write_hgrm(const char *dir, const char *tag, const struct rfx_hdr *h)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.hgrm", dir, tag);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    rfx_hdr_write_percentiles(h, f, 5, 1.0);
    fclose(f);
}

struct dist {
    char tag[32];
    int64_t lowest, highest;
    int sigfigs;
    int kind; /* 0 uniform, 1 exponential, 2 lognormal, 3 bimodal, 4 pareto tail */
    int n, intervals;
    int edge; /* 0 random; 1 empty; 2 one value; 3 highest trackable; 4 small set */
};

static int64_t sample(const struct dist *d)
{
    double v;
    switch (d->kind) {
    case 0:
        v = unit() * 1e6;
        break;
    case 1:
        v = -log(1 - unit()) * 50000;
        break;
    case 2:
        v = exp(10 + 2 * sqrt(-2 * log(1 - unit())) * cos(6.283185307179586 * unit()));
        break;
    case 3:
        v = unit() < 0.9 ? 20000 + unit() * 5000 : 5e6 + unit() * 1e6;
        break;
    default:
        v = 1000 / pow(1 - unit(), 1 / 1.2);
        break;
    }
    if (v > (double)d->highest)
        v = (double)d->highest;
    return (int64_t)v;
}

static int gen(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/reflex.hlog", dir);
    FILE *log = fopen(path, "w");
    snprintf(path, sizeof path, "%s/expected.txt", dir);
    FILE *exp_f = fopen(path, "w");
    if (!log || !exp_f) {
        perror(dir);
        return 1;
    }
    struct rfx_hlog_writer *w;
    rfx_hlog_writer_create(log, 1700000000.0, &w);

    struct dist ds[40];
    int nd = 0;
    rng_state = 20261122;
    for (int i = 0; i < 24; i++) {
        struct dist *d = &ds[nd++];
        snprintf(d->tag, sizeof d->tag, "rand%02d", i);
        d->sigfigs = 1 + i % 5;
        d->lowest = i % 4 == 3 ? 1000 : 1;
        d->highest = i % 3 == 2 ? 100000000 : 3600000000000LL;
        d->kind = i % 5;
        d->n = 1 + (int)(rnd() % 200000);
        d->intervals = 1 + (int)(rnd() % 4);
        d->edge = 0;
    }
    struct dist edges[] = {
        {"empty", 1, 3600000000000LL, 3, 0, 0, 1, 1},
        {"one", 1, 3600000000000LL, 3, 0, 1, 1, 2},
        {"hightrack", 1, 3600000000000LL, 3, 0, 3, 2, 3},
        {"sf1", 1, 1000000000, 1, 0, 7, 1, 4},
        {"sf2", 1, 1000000000, 2, 0, 7, 1, 4},
        {"sf3", 1, 1000000000, 3, 0, 7, 1, 4},
        {"sf4", 1, 1000000000, 4, 0, 7, 1, 4},
        {"sf5", 1, 1000000000, 5, 0, 7, 1, 4},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        ds[nd++] = edges[i];

    for (int i = 0; i < nd; i++) {
        const struct dist *d = &ds[i];
        struct rfx_hdr *iv, *all;
        rfx_hdr_create(d->lowest, d->highest, d->sigfigs, &iv);
        rfx_hdr_create(d->lowest, d->highest, d->sigfigs, &all);
        static const int64_t small[] = {1, 2, 3, 999, 1000, 123456, 999999999};
        for (int k = 0; k < d->intervals; k++) {
            rfx_hdr_reset(iv);
            for (int j = k; j < d->n; j += d->intervals) {
                int64_t v = d->edge == 0   ? sample(d)
                            : d->edge == 2 ? 4242
                            : d->edge == 3 ? d->highest
                                           : small[j];
                if (rfx_hdr_record(iv, v) != 0) {
                    fprintf(stderr, "gen: %s: value %" PRId64 " out of range\n", d->tag, v);
                    return 1;
                }
            }
            rfx_hlog_write(w, d->tag, 1700000000.0 + k, 1.0, iv, 1e6);
            rfx_hdr_add(all, iv);
        }
        expected_line(exp_f, d->tag, all);
        write_hgrm(dir, d->tag, all);
        rfx_hdr_destroy(iv);
        rfx_hdr_destroy(all);
    }
    rfx_hlog_writer_destroy(w);
    fclose(log);
    fclose(exp_f);
    printf("gen: %d distributions written to %s\n", nd, dir);
    return 0;
}

/* Per-tag merge of a whole log. */
struct merged {
    char tag[128];
    struct rfx_hdr *h;
};

static int check(const char *log_path, const char *expected_path, const char *dir)
{
    FILE *f = fopen(log_path, "r");
    FILE *ef = fopen(expected_path, "r");
    if (!f || !ef) {
        perror("check");
        return 1;
    }
    struct rfx_hlog_reader *r;
    rfx_hlog_reader_create(f, &r);
    struct merged m[64];
    int nm = 0, rc;
    struct rfx_hlog_entry e;
    while ((rc = rfx_hlog_read(r, &e)) == 1) {
        int i;
        for (i = 0; i < nm && strcmp(m[i].tag, e.tag) != 0; i++)
            ;
        if (i == nm) {
            if (nm == 64)
                return fprintf(stderr, "too many tags\n"), 1;
            snprintf(m[nm].tag, sizeof m[nm].tag, "%s", e.tag);
            m[nm++].h = e.h;
        } else {
            rfx_hdr_add(m[i].h, e.h);
            rfx_hdr_destroy(e.h);
        }
    }
    if (rc < 0) {
        fprintf(stderr, "check: %s: %s\n", log_path, rfx_hlog_reader_error(r));
        return 1;
    }
    int failures = 0, lines = 0;
    char tag[128];
    int64_t want[7];
    while (fscanf(ef,
                  "%127s %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64
                  " %" SCNd64,
                  tag, &want[0], &want[1], &want[2], &want[3], &want[4], &want[5], &want[6]) == 8) {
        lines++;
        int i;
        for (i = 0; i < nm && strcmp(m[i].tag, tag) != 0; i++)
            ;
        if (i == nm) {
            printf("check: %-10s missing from the log FAIL\n", tag);
            failures++;
            continue;
        }
        const struct rfx_hdr *h = m[i].h;
        int64_t got[7] = {rfx_hdr_total_count(h)};
        for (int k = 0; k < 5; k++)
            got[1 + k] = rfx_hdr_value_at_percentile(h, levels[k]);
        got[6] = rfx_hdr_max(h);
        bool same = memcmp(got, want, sizeof got) == 0;

        /* .hgrm byte for byte against Java's. */
        char path[4096], ours[512];
        snprintf(path, sizeof path, "%s/%s.hgrm", dir, tag);
        snprintf(ours, sizeof ours, "%s/%s.reflex.hgrm", dir, tag);
        FILE *o = fopen(ours, "w");
        rfx_hdr_write_percentiles(h, o, 5, 1.0);
        fclose(o);
        char cmd[8300];
        snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, ours);
        bool hgrm_same = system(cmd) == 0;
        printf("check: %-10s count=%" PRId64 " p50=%" PRId64 " p90=%" PRId64 " p99=%" PRId64
               " p99.9=%" PRId64 " p99.99=%" PRId64 " max=%" PRId64 " percentiles=%s hgrm=%s\n",
               tag, got[0], got[1], got[2], got[3], got[4], got[5], got[6],
               same ? "same" : "DIFFER", hgrm_same ? "identical" : "DIFFER");
        if (!same) {
            printf("       java: count=%" PRId64 " p50=%" PRId64 " p90=%" PRId64 " p99=%" PRId64
                   " p99.9=%" PRId64 " p99.99=%" PRId64 " max=%" PRId64 "\n",
                   want[0], want[1], want[2], want[3], want[4], want[5], want[6]);
        }
        failures += !same || !hgrm_same;
    }
    for (int i = 0; i < nm; i++)
        rfx_hdr_destroy(m[i].h);
    rfx_hlog_reader_destroy(r);
    fclose(f);
    fclose(ef);
    printf("check: %d tags compared, %d differ\n", lines, failures);
    return failures || lines == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2]);
    if (argc == 5 && strcmp(argv[1], "check") == 0)
        return check(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: hdr_interop gen DIR | check LOG EXPECTED DIR\n");
    return 2;
}
