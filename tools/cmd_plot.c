/*
 * reflex plot FILE.hlog [-o OUT.svg] [--budget TAG=P50,P95,P99]... [--title T]
 *
 * The same chart as a run bundle's latency.svg from any histogram log (ns
 * values): every tag's intervals merged into one curve per tag, in the
 * order the tags first appear; budgets in microseconds when given.
 */
#include "cmd_run.h"
#include "progress.h"
#include "svg_plot.h"

#include <reflex/hdr_histogram.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TAGS 16

static void plot_usage(FILE *f)
{
    fprintf(f, "usage: reflex plot FILE.hlog [-o OUT.svg] [--budget TAG=P50,P95,P99]... "
               "[--title T]\n"
               "\n"
               "Plot each tag's merged percentile distribution (values in ns) on a log\n"
               "1/(1-p) axis, as an SVG document (stdout unless -o).\n"
               "  -o, --out FILE        write the SVG there\n"
               "  --budget TAG=A,B,C    draw TAG's p50/p95/p99 budgets (microseconds)\n"
               "  --title T             the chart's title (default: the file name)\n");
}

int cmd_plot(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"budget", required_argument, NULL, 'b'},
        {"title", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL, *title = NULL;
    struct {
        char tag[128];
        int64_t ns[3];
    } budgets[MAX_TAGS];
    int n_budgets = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 't':
            title = optarg;
            break;
        case 'b': {
            const char *eq = strchr(optarg, '=');
            double v[3];
            char tail;
            if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof budgets[0].tag ||
                n_budgets == MAX_TAGS ||
                sscanf(eq + 1, "%lf,%lf,%lf%c", &v[0], &v[1], &v[2], &tail) != 3 || v[0] < 0 ||
                v[1] < 0 || v[2] < 0) {
                fprintf(stderr,
                        "reflex plot: --budget '%s' is not TAG=P50,P95,P99 (microseconds)\n",
                        optarg);
                return EXIT_USAGE;
            }
            memcpy(budgets[n_budgets].tag, optarg, (size_t)(eq - optarg));
            budgets[n_budgets].tag[eq - optarg] = 0;
            for (int k = 0; k < 3; k++)
                budgets[n_budgets].ns[k] = (int64_t)(v[k] * 1000);
            n_budgets++;
            break;
        }
        case 'h':
            plot_usage(stdout);
            return EXIT_OK;
        default:
            plot_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        plot_usage(stderr);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "reflex plot: %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    struct rfx_hlog_reader *r;
    if (rfx_hlog_reader_create(f, &r) < 0) {
        fclose(f);
        return EXIT_RUNTIME;
    }
    struct rfx_plot_series ser[MAX_TAGS];
    char names[MAX_TAGS][128];
    int n = 0, rc, status = EXIT_OK;
    struct rfx_hlog_entry e;
    struct progress prog;
    uint64_t read = 0;
    progress_begin(&prog, "reflex plot", "intervals", path);
    while ((rc = rfx_hlog_read(r, &e)) == 1) {
        progress_tick(&prog, ++read, (uint64_t)ftell(f));
        const char *tag = e.tag[0] ? e.tag : "(untagged)";
        int i = 0;
        while (i < n && strcmp(names[i], tag))
            i++;
        if (i == n && n == MAX_TAGS) {
            progress_clear(&prog);
            fprintf(stderr, "reflex plot: %s: more than %d tags; '%s' is left out\n", path,
                    MAX_TAGS, tag);
            rfx_hdr_destroy(e.h);
            continue;
        }
        if (i == n) {
            snprintf(names[n], sizeof names[n], "%s", tag);
            ser[n] = (struct rfx_plot_series){.name = names[n], .h = e.h};
            n++;
            continue;
        }
        if (rfx_hdr_add((struct rfx_hdr *)ser[i].h, e.h) < 0) {
            progress_clear(&prog);
            fprintf(stderr,
                    "reflex plot: %s: interval at %.3f s of tag '%s' has values the "
                    "first interval's layout cannot hold; they are left out\n",
                    path, e.start_s, tag);
        }
        rfx_hdr_destroy(e.h);
    }
    progress_clear(&prog);
    if (rc < 0) {
        fprintf(stderr, "reflex plot: %s: %s\n", path, rfx_hlog_reader_error(r));
        status = EXIT_USAGE;
    } else if (n == 0) {
        fprintf(stderr, "reflex plot: %s: no intervals\n", path);
        status = EXIT_USAGE;
    }
    for (int b = 0; b < n_budgets && status == EXIT_OK; b++) {
        int i = 0;
        while (i < n && strcmp(names[i], budgets[b].tag))
            i++;
        if (i == n) {
            fprintf(stderr, "reflex plot: --budget %s: no such tag in %s\n", budgets[b].tag, path);
            status = EXIT_USAGE;
        } else {
            memcpy(ser[i].budget_ns, budgets[b].ns, sizeof ser[i].budget_ns);
        }
    }
    if (status == EXIT_OK) {
        FILE *o = out ? fopen(out, "w") : stdout;
        if (!o) {
            fprintf(stderr, "reflex plot: %s: %s\n", out, strerror(errno));
            status = EXIT_RUNTIME;
        } else {
            if (rfx_plot_svg(o, title ? title : path, ser, n) != 0)
                status = EXIT_RUNTIME;
            if (out && fclose(o) != 0)
                status = EXIT_RUNTIME;
        }
    }
    for (int i = 0; i < n; i++)
        rfx_hdr_destroy((struct rfx_hdr *)ser[i].h);
    rfx_hlog_reader_destroy(r);
    fclose(f);
    return status;
}
