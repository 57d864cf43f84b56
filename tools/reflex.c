/*
 * reflex — command-line front end.
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input, 3 budgets failed.
 */
#include <reflex/reflex.h>

#include "cmd_run.h"
#include "engine_impl.h"
#include "progress.h"

#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: reflex [--help] [--version] COMMAND [ARGS]\n"
               "\n"
               "A lock-free pipeline engine for latency-sensitive bots.\n"
               "\n"
               "commands:\n"
               "  demo [--duration S] [--frames N] [--out DIR] [--set S.K=V]...\n"
               "       [--record FILE] [--fail-on-budget] [--quiet]\n"
               "        play the built-in game with the built-in bot at 60 FPS\n"
               "  run CONFIG [--duration S] [--frames N] [--out DIR] [--set S.K=V]...\n"
               "      [--record FILE] [--fail-on-budget] [--quiet]\n"
               "        run the pipeline a config file describes; writes the run bundle\n"
               "  replay FILE [--config CONFIG] [--set S.K=V]... [--show N] [--partial]\n"
               "        replay a run record and check that every decision is identical\n"
               "  check CONFIG [--set S.K=V]...\n"
               "        validate a config and print the resolved layout\n"
               "  hist FILE.hlog [--tag T] [--ticks N] [--unit-ratio R]\n"
               "        percentile distribution (.hgrm text) of every interval of a\n"
               "        histogram log, merged; values in ms unless --unit-ratio says\n"
               "  plot FILE.hlog [-o OUT.svg] [--budget TAG=P50,P95,P99]...\n"
               "        percentile curves of every tag of a histogram log, as SVG\n"
               "  help  this text\n"
               "\n"
               "Run 'reflex COMMAND --help' for a command's options.\n");
}

static void hist_usage(FILE *f)
{
    fprintf(f, "usage: reflex hist FILE.hlog [--tag T] [--ticks N] [--unit-ratio R]\n"
               "\n"
               "Merge every interval of a HdrHistogram log (format 1.2/1.3) that carries\n"
               "tag T (default: intervals without a tag; '*' for all) and print its\n"
               "percentile distribution as HdrHistogram's HistogramLogProcessor does.\n"
               "  --tag T          which intervals to merge\n"
               "  --ticks N        percentile ticks per half distance (default 5)\n"
               "  --unit-ratio R   divide values by R (default 1e6: ns shown as ms)\n");
}

/* Add `tag` to the comma-separated list `seen` once ("(untagged)" for ""). */
static void note_tag(char *seen, size_t size, const char *tag)
{
    const char *name = tag[0] ? tag : "(untagged)";
    size_t len = strlen(name);
    for (const char *p = seen; *p;) {
        const char *end = strstr(p, ", ");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && !strncmp(p, name, n))
            return;
        p = end ? end + 2 : p + n;
    }
    size_t used = strlen(seen);
    if (used + len + 3 < size)
        snprintf(seen + used, size - used, "%s%s", used ? ", " : "", name);
}

static int cmd_hist(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tag", required_argument, NULL, 't'},
        {"ticks", required_argument, NULL, 'k'},
        {"unit-ratio", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *tag = "";
    long ticks = 5;
    double ratio = 1e6;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 't':
            tag = optarg;
            break;
        case 'k':
            ticks = strtol(optarg, &end, 10);
            if (*end || ticks < 1 || ticks > 1000) {
                fprintf(stderr, "reflex hist: --ticks must be an integer in 1..1000, got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'u':
            if (!rfx_parse_decimal(optarg, 0, DBL_MAX, &ratio) || !(ratio > 0)) {
                fprintf(stderr, "reflex hist: --unit-ratio must be a positive number, got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            hist_usage(stdout);
            return EXIT_OK;
        default:
            hist_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        hist_usage(stderr);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "reflex hist: %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    struct rfx_hlog_reader *r;
    if (rfx_hlog_reader_create(f, &r) < 0) {
        fclose(f);
        return EXIT_RUNTIME;
    }
    struct rfx_hdr *acc = NULL;
    struct rfx_hlog_entry e;
    int rc, status = EXIT_OK;
    long intervals = 0;
    struct progress prog;
    uint64_t read = 0;
    progress_begin(&prog, "reflex hist", "intervals", path);
    char seen[400] = ""; /* the log's tags, for a --tag that matches none */
    while ((rc = rfx_hlog_read(r, &e)) == 1) {
        progress_tick(&prog, ++read, (uint64_t)ftell(f));
        note_tag(seen, sizeof seen, e.tag);
        if (strcmp(tag, "*") != 0 && strcmp(tag, e.tag) != 0) {
            rfx_hdr_destroy(e.h);
            continue;
        }
        intervals++;
        if (!acc) {
            acc = e.h;
            continue;
        }
        if (rfx_hdr_add(acc, e.h) < 0) {
            progress_clear(&prog);
            fprintf(stderr,
                    "reflex hist: %s: interval at %.3f s has values the first interval's "
                    "layout cannot hold; they are left out\n",
                    path, e.start_s);
        }
        rfx_hdr_destroy(e.h);
    }
    progress_clear(&prog);
    if (rc < 0) {
        fprintf(stderr, "reflex hist: %s: %s\n", path, rfx_hlog_reader_error(r));
        status = EXIT_USAGE;
    } else if (!acc) {
        if (tag[0])
            fprintf(stderr, "reflex hist: %s: no intervals with tag '%s'", path, tag);
        else /* HistogramLogProcessor's default, which a bundle's log never matches */
            fprintf(stderr,
                    "reflex hist: %s: no intervals without a tag (what it reads "
                    "when --tag is not given)",
                    path);
        if (seen[0])
            fprintf(stderr, "; its tags: %s (--tag T picks one, --tag '*' merges all)", seen);
        fprintf(stderr, "\n");
        status = EXIT_USAGE;
    } else if (rfx_hdr_write_percentiles(acc, stdout, (int)ticks, ratio) < 0) {
        status = EXIT_RUNTIME;
    }
    rfx_hdr_destroy(acc);
    rfx_hlog_reader_destroy(r);
    fclose(f);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("reflex %s\n", RFX_VERSION_STRING);
        return EXIT_OK;
    }
    /* getopt names the program by argv[0]: "reflex demo: unrecognized option". */
    static char name[32] = "reflex ";
    strncat(name, cmd, sizeof name - sizeof "reflex ");
    argv[1] = name;
    if (strcmp(cmd, "hist") == 0)
        return cmd_hist(argc - 1, argv + 1);
    if (strcmp(cmd, "replay") == 0)
        return cmd_replay(argc - 1, argv + 1);
    if (strcmp(cmd, "plot") == 0)
        return cmd_plot(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0)
        return cmd_run(argc - 1, argv + 1, true);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1, false);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    fprintf(stderr, "reflex: unknown command '%s' (try 'reflex --help')\n", cmd);
    return EXIT_USAGE;
}
