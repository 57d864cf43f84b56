/*
 * reflex replay FILE [--config CONFIG] [--set S.K=V]... [--show N]
 * Decision-exact replay of a run record (reflex/replay.h, stages/replay.h): exit 0 when every
 * decision comes out as recorded, 1 when any differs (listed), 2 for a
 * record that is corrupt, cut short or not replayable, or bad usage.
 */
#include "cmd_run.h"
#include "progress.h"

#include <reflex/config.h>
#include <reflex/reflex.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin.h"
#include "replay.h"

#define MAX_SETS 64

static void replay_usage(FILE *f)
{
    fprintf(f, "usage: reflex replay FILE [--config CONFIG] [--set section.key=value]...\n"
               "                     [--show N] [--partial]\n"
               "\n"
               "Run every frame of a run record (reflex run/demo --record FILE) through the\n"
               "pattern and decide stages again, on a logical clock, with the action cache\n"
               "holding the snapshot each frame saw, and compare every decision with the\n"
               "recorded one (docs/record-replay.md).\n"
               "  --config CONFIG  replay with this config's [source] kind and [degrade]\n"
               "                   level actions instead of the record's (a what-if: the\n"
               "                   differences are that config's)\n"
               "  --set S.K=V      override a key of that config (repeatable)\n"
               "  --show N         list at most N differences (default 10)\n"
               "  --partial        replay a record with no end record (a run that was\n"
               "                   killed) up to its last whole record\n"
               "Exit: 0 every decision identical, 1 some differ, 2 bad usage or a corrupt,\n"
               "truncated or unreplayable record.\n");
}

struct replay_out {
    struct progress prog;
    const char *path;
    bool listed; /* the differences' heading is out */
};

/* The differences' heading, once, before the first one or the summary. */
static void heading(struct replay_out *o)
{
    if (!o->listed)
        printf("replay: %s: differences:\n", o->path);
    o->listed = true;
}

/* A difference, on stdout: the progress line on stderr's terminal is
 * cleared first, so the two do not share a line. */
static void on_difference(void *arg, const struct rfx_replay_difference *d)
{
    struct replay_out *o = arg;
    progress_clear(&o->prog);
    heading(o);
    printf("  frame %" PRIu64 " (byte %" PRIu64 "): %s\n", d->seq, d->offset, d->what);
    fflush(stdout);
}

static void on_progress(void *arg, uint64_t frames, uint64_t offset)
{
    progress_tick(&((struct replay_out *)arg)->prog, frames, offset);
}

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
        {"show", required_argument, NULL, 'n'},   {"partial", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *sets[MAX_SETS];
    int n_sets = 0;
    long show = 10;
    bool partial = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 's':
            if (n_sets >= MAX_SETS) {
                fprintf(stderr, "reflex replay: more than %d --set options\n", MAX_SETS);
                return EXIT_USAGE;
            }
            sets[n_sets++] = optarg;
            break;
        case 'n':
            show = strtol(optarg, &end, 10);
            if (*end || end == optarg || show < 0 || show > 1000000) {
                fprintf(stderr, "reflex replay: --show: '%s' is not a count in 0..1000000\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'p':
            partial = true;
            break;
        case 'h':
            replay_usage(stdout);
            return EXIT_OK;
        default:
            replay_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        replay_usage(stderr);
        return EXIT_USAGE;
    }
    if (n_sets && !config) {
        fprintf(stderr, "reflex replay: --set needs --config\n");
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    char msg[512];
    struct rfx_engine_config cfg;
    const char *kind = NULL;
    struct rfx_replay_config opt = {.max_listed = show ? (int)show : -1, .accept_cut = partial};
    if (config) {
        if (rfx_config_load(config, sets, n_sets, rfx_builtin_stages, 5, &cfg, msg, sizeof msg) !=
            0) {
            fprintf(stderr, "reflex replay: %s\n", msg);
            return EXIT_USAGE;
        }
        kind = cfg.source_kind;
        opt.level_actions = cfg.level_actions;
    }
    struct replay_out out = {.path = path};
    progress_begin(&out.prog, "replay", "frames", path);
    opt.progress = on_progress;
    opt.progress_arg = &out;
    opt.difference = on_difference;
    opt.difference_arg = &out;
    /* A file that is no record at all is refused before any output. */
    struct rfx_record_reader *probe;
    int rc = rfx_record_open(path, &probe, NULL, msg, sizeof msg);
    if (rc != 0) {
        fprintf(stderr, "reflex replay: %s: %s\n", path, msg);
        return rc == -EIO || rc == -ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
    }
    rfx_record_close(probe);
    struct rfx_replay_result res;
    rc = rfx_replay_builtin(path, kind, &opt, &res, msg, sizeof msg);
    progress_clear(&out.prog);
    if (rc != 0) {
        fprintf(stderr, "reflex replay: %s: %s\n", path, msg);
        return rc == -EINVAL || rc == -ENOENT || rc == -EISDIR || rc == -EACCES ? EXIT_USAGE
                                                                                : EXIT_RUNTIME;
    }
    heading(&out);
    if (res.differ == 0)
        printf("  none\n");
    else if (show && res.differ > (uint64_t)show)
        printf("  ... and %" PRIu64 " more\n", res.differ - (uint64_t)show);
    const struct rfx_record_header *h = &res.header;
    printf("replay: %s source%s, %g Hz, seed %" PRIu64 ": %" PRIu64 " frames, %" PRIu64
           " cache publications\n",
           h->source_kind, config ? " (replayed as the config's)" : "", h->frame_hz, h->seed,
           res.frames, res.publications);
    printf("replay: %" PRIu64 " frames compared (%" PRIu64 " decisions replayed, %" PRIu64
           " pattern drops): %" PRIu64 " identical, %" PRIu64 " differ\n",
           res.compared, res.decided, res.pattern_drops, res.identical, res.differ);
    if (res.not_reached || res.fault_drops)
        printf("replay: not compared: %" PRIu64 " frames dropped before pattern, %" PRIu64
               " dropped by an injected fault\n",
               res.not_reached, res.fault_drops);
    if (res.cut)
        printf("replay: the record has no end record (the run did not stop cleanly): replayed "
               "its whole records, up to byte %llu (%llu bytes of a torn record after it "
               "ignored)\n",
               (unsigned long long)res.cut_at, (unsigned long long)res.cut_ignored);
    if (res.unseen || res.frames_lost)
        printf("replay: not in the record: %" PRIu64 " sequence numbers (%" PRIu64
               " frames the recorder had no room for)\n",
               res.unseen, res.frames_lost);
    if (res.differ) {
        printf("replay: %" PRIu64 " of %" PRIu64 " decisions DIFFER (first at frame %" PRIu64 ")\n",
               res.differ, res.compared, res.first_diff_seq);
        return EXIT_RUNTIME;
    }
    printf("replay: every decision is identical\n");
    return EXIT_OK;
}
