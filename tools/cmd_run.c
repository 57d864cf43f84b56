/*
 * reflex run / demo / check.
 */
#include "cmd_run.h"

#include <reflex/config.h>
#include <reflex/reflex.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "engine_impl.h"

#define MAX_SETS 64

/* The engine the signal handler stops; lock-free atomic pointer, so reading
 * it in the handler is async-signal-safe (relaxed: rfx_engine_stop itself
 * publishes with release). */
static struct rfx_engine *_Atomic g_engine;
/* A signal that came before there was an engine to stop: the engine is
 * stopped as soon as it exists, so the run still drains and leaves its
 * bundle. The handler sets it before it looks for the engine, and the main
 * thread publishes the engine before it looks at the flag (both seq_cst):
 * one of the two sees the other. */
static atomic_bool g_interrupted;
/* Say what a first signal does: stderr is a terminal and not --quiet (set
 * before the handler is installed). */
static atomic_bool g_tell;

/* When the first signal came (CLOCK_MONOTONIC ns; 0 until the handler has
 * stored it), and how long after it a signal is still the same request.
 * One request often arrives twice: timeout(1) signals the command and
 * then its own process group, and a kill of a process group or a service
 * manager's stop can do the same; the two are microseconds apart and are
 * not always merged by the kernel. A person's second Ctrl-C comes later. */
static _Atomic int64_t g_first_ns;
#define SAME_REQUEST_NS 250000000LL

static int64_t signal_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe (POSIX.1-2008) */
    int64_t ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    return ns > 0 ? ns : 1;
}

/* The first SIGINT or SIGTERM drains and writes the bundle. A drain waits
 * for every stage call in progress to return, so a stage stuck in a call
 * (a hung device, a deadlock in the bot's code) holds it; a second signal,
 * 0.25 s or more after the first, then ends the process at once, by that
 * signal, without the bundle, as the message says. One sooner is the same
 * request delivered twice and is ignored (also when the first's handler
 * has not yet stored its time). write, signal, raise and clock_gettime are
 * async-signal-safe. */
static void on_signal(int sig)
{
    int64_t now = signal_now_ns();
    if (atomic_exchange(&g_interrupted, true)) {
        int64_t first = atomic_load(&g_first_ns);
        if (first == 0 || now - first < SAME_REQUEST_NS)
            return;
        static const char m[] = "\nreflex: second signal: quitting without draining; the bundle "
                                "is not written\n";
        ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
        (void)w;
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    atomic_store(&g_first_ns, now);
    if (atomic_load_explicit(&g_tell, memory_order_relaxed)) {
        static const char m[] = "\nreflex: stopping: draining the frames in flight, then the "
                                "bundle (a second Ctrl-C quits at once, without it)\n";
        ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
        (void)w;
    }
    struct rfx_engine *e = atomic_load(&g_engine);
    if (e)
        rfx_engine_stop(e); /* an atomic store: async-signal-safe */
}

/* The bundle's directory must be one this process can write, or a path
 * whose nearest existing ancestor is one it can make directories in (the
 * engine makes the rest). That ancestor is probed by making and removing a
 * directory in it: permission bits do not tell (root passes access() on
 * /proc, where mkdir fails). Checked before the engine exists, so that a
 * bad --out is bad usage (exit 2), not a failure to start. */
static int check_out_dir(const char *dir, char *msg, size_t len)
{
    char p[RFX_PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (;;) {
        struct stat st;
        if (stat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                snprintf(msg, len, "%s: %s", p, strerror(ENOTDIR));
                return -ENOTDIR;
            }
            if (access(p, W_OK | X_OK) != 0) {
                int rc = -errno;
                snprintf(msg, len, "%s: %s", p, strerror(-rc));
                return rc;
            }
            if (strcmp(p, dir) == 0)
                return 0;
            char probe[RFX_PATH_MAX + 32];
            snprintf(probe, sizeof probe, "%s/.reflex-probe-XXXXXX", p);
            if (!mkdtemp(probe)) {
                int rc = -errno;
                snprintf(msg, len, "cannot make a directory in %s: %s", p, strerror(-rc));
                return rc;
            }
            rmdir(probe);
            return 0;
        }
        if (errno != ENOENT) {
            int rc = -errno;
            snprintf(msg, len, "%s: %s", p, strerror(-rc));
            return rc;
        }
        char *slash = strrchr(p, '/');
        if (!slash)
            snprintf(p, sizeof p, "."); /* a relative name: the working directory */
        else if (slash == p)
            p[1] = 0; /* "/" */
        else
            *slash = 0;
    }
}

/* One more --set for run, demo or check; false (with the message) past
 * MAX_SETS. */
static bool add_set(const char **sets, int *n, const char *arg, const char *who)
{
    if (*n >= MAX_SETS) {
        fprintf(stderr, "%s: more than %d --set options\n", who, MAX_SETS);
        return false;
    }
    sets[(*n)++] = arg;
    return true;
}

static void run_usage(FILE *f, bool demo)
{
    if (demo)
        fprintf(f, "usage: reflex demo [--duration S] [--frames N] [--out DIR]\n"
                   "                   [--set section.key=value]... [--record FILE]\n"
                   "                   [--fail-on-budget] [--quiet]\n"
                   "\n"
                   "Play the built-in falling-hazards game at 60 FPS with the built-in bot:\n"
                   "capture -> pattern -> decide (RCU action cache) -> execute -> telemetry,\n"
                   "strategic workers planning ahead off the critical path. Prints the\n"
                   "per-stage latency table, cache hit rate and score; leaves the run bundle\n"
                   "in DIR: summary.json, latency.hlog, STAGE.hgrm, e2e.hgrm, latency.svg,\n"
                   "metrics.prom, trace.json (docs/telemetry.md).\n");
    else
        fprintf(
            f, "usage: reflex run CONFIG [--duration S] [--frames N] [--out DIR]\n"
               "                  [--set section.key=value]... [--record FILE] [--fail-on-budget]\n"
               "                  [--quiet]\n"
               "\n"
               "Run the pipeline CONFIG describes (docs/config.md) and write the run bundle.\n");
    fprintf(f, "  --duration S      run for S seconds; 0: until SIGINT/SIGTERM (default:\n"
               "                    [engine] duration_s, demo 30)\n"
               "  --frames N        stop after N frames\n"
               "  --out DIR         bundle directory (default: [engine] out_dir)\n"
               "  --set S.K=V       override a config key (repeatable)\n"
               "  --record FILE     record every frame and cache publication to FILE, for\n"
               "                    'reflex replay FILE' (default: [engine] record)\n"
               "  --fail-on-budget  exit 3 if any budget was violated\n"
               "  --quiet           no progress lines\n"
               "Exit: 0 ok, 1 runtime failure, 2 bad usage or config, 3 budgets failed.\n");
}

/* One status line: elapsed (and a bar for a timed run), frames/s, e2e
 * p99, the stage nearest its budget, level, cache hit rate, drops. */
static void status_line(char *b, size_t n, const struct rfx_engine_status *st, double t,
                        double duration, bool bar)
{
    size_t k = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (k < n)                                                                                 \
            k += (size_t)snprintf(b + k, n - k, __VA_ARGS__);                                      \
    } while (0)
    PUT("%6.1f s", t);
    if (duration > 0) {
        PUT(" / %g s", duration);
        if (bar) {
            int fill = (int)(20 * (t / duration > 1 ? 1 : t / duration));
            PUT(" [%.*s%.*s]", fill, "####################", 20 - fill, "                    ");
        }
    }
    if (st->intervals == 0) {
        PUT("  starting");
        return;
    }
    PUT("  %.0f fps", st->frames_per_s);
    if (st->e2e_p99_ns >= 0) { /* in the unit that shows its digits */
        double v = (double)st->e2e_p99_ns;
        if (v < 1e6)
            PUT("  e2e p99 %.1f us", v / 1e3);
        else if (v < 1e9)
            PUT("  e2e p99 %.2f ms", v / 1e6);
        else
            PUT("  e2e p99 %.2f s", v / 1e9);
    }
    if (st->worst_stage[0])
        PUT("  worst %s %.*f%% of p99 budget%s", st->worst_stage, st->worst_ratio < 0.1 ? 1 : 0,
            st->worst_ratio * 100, st->worst_ratio > 1 ? " OVER" : "");
    PUT("  level %s", rfx_level_name(st->level));
    if (st->hit_rate >= 0)
        PUT("  hit %.1f%%", st->hit_rate * 100);
    PUT("  drops %llu", (unsigned long long)st->dropped);
#undef PUT
}

/* A record file must be a file (new, or one to replace) in a directory
 * this process can write: refused with exit 2 before the run, as --out. */
static int check_record_path(const char *path, const char *out_dir, char *msg, size_t len)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(msg, len, "is a directory");
        return -1;
    }
    char dir[RFX_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    if (!strcmp(dir, out_dir))
        return 0; /* the bundle's directory, checked (and made at start) as such */
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, len, "no directory %s to write it in", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(msg, len, "cannot write in %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int cmd_run(int argc, char **argv, bool demo)
{
    static const struct option opts[] = {
        {"duration", required_argument, NULL, 'd'},
        {"frames", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},
        {"set", required_argument, NULL, 's'},
        {"fail-on-budget", no_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},
        {"record", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sets[MAX_SETS + 2];
    int n_sets = 0;
    double duration = demo ? 30 : -1;
    long long frames = -1;
    const char *out = NULL, *record = NULL;
    bool fail_on_budget = false, quiet = false;
    /* From the start, not only once the engine runs: SIGINT while the
     * config loads or the engine is made still ends in a bundle. */
    atomic_store(&g_tell, isatty(STDERR_FILENO) != 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'd':
            if (!rfx_parse_decimal(optarg, 0, 604800, &duration)) {
                fprintf(stderr,
                        "reflex: --duration: '%s' is not a number of seconds in [0, 604800] "
                        "(0: until SIGINT/SIGTERM)\n",
                        optarg);
                return 2;
            }
            break;
        case 'n':
            frames = strtoll(optarg, &end, 10);
            if (*end || end == optarg || frames <= 0) {
                fprintf(stderr, "reflex: --frames: '%s' is not a positive integer\n", optarg);
                return 2;
            }
            break;
        case 'o':
            out = optarg;
            break;
        case 'r':
            record = optarg;
            break;
        case 's':
            if (!add_set(sets, &n_sets, optarg, "reflex"))
                return 2;
            break;
        case 'f':
            fail_on_budget = true;
            break;
        case 'q':
            quiet = true;
            atomic_store(&g_tell, false);
            break;
        case 'h':
            run_usage(stdout, demo);
            return 0;
        default:
            run_usage(stderr, demo);
            return 2;
        }
    }
    const char *path = NULL;
    if (!demo) {
        if (optind >= argc) {
            fprintf(stderr, "reflex run: missing CONFIG\n");
            run_usage(stderr, false);
            return 2;
        }
        path = argv[optind++];
    }
    if (optind < argc) {
        fprintf(stderr, "reflex: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    struct rfx_engine_config cfg;
    char msg[512];
    int rc = rfx_config_load(path, sets, n_sets, rfx_builtin_stages, 5, &cfg, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "reflex: %s\n", msg);
        return 2;
    }
    if (demo) {
        snprintf(cfg.source_kind, sizeof cfg.source_kind, "demo");
        snprintf(cfg.sink_kind, sizeof cfg.sink_kind, "demo");
        if (!strcmp(cfg.out_dir, "reflex-out"))
            snprintf(cfg.out_dir, sizeof cfg.out_dir, "reflex-demo");
    }
    if (duration >= 0) /* given (run's default -1 keeps the config's) */
        cfg.duration_s = duration;
    if (frames > 0)
        cfg.max_frames = (uint64_t)frames;
    if (out) {
        if (strlen(out) >= sizeof cfg.out_dir || !*out) {
            fprintf(stderr, "reflex: --out: path too long or empty\n");
            return 2;
        }
        snprintf(cfg.out_dir, sizeof cfg.out_dir, "%s", out);
    }
    if (check_out_dir(cfg.out_dir, msg, sizeof msg) != 0) {
        fprintf(stderr, "reflex: %s %s: cannot hold the bundle: %s\n",
                out ? "--out" : "[engine] out_dir", cfg.out_dir, msg);
        return 2;
    }
    if (record) {
        if (strlen(record) >= sizeof cfg.record_path || !*record) {
            fprintf(stderr, "reflex: --record: path too long or empty\n");
            return 2;
        }
        snprintf(cfg.record_path, sizeof cfg.record_path, "%s", record);
    }
    if (cfg.record_path[0] &&
        check_record_path(cfg.record_path, cfg.out_dir, msg, sizeof msg) != 0) {
        fprintf(stderr, "reflex: %s %s: %s\n", record ? "--record" : "[engine] record",
                cfg.record_path, msg);
        return 2;
    }
    if (cfg.duration_s <= 0 && cfg.max_frames == 0 && !isatty(STDIN_FILENO) && !quiet)
        fprintf(stderr, "reflex: no duration or frame limit: running until SIGINT/SIGTERM\n");

    struct rfx_engine *e = NULL;
    if ((rc = rfx_engine_create(&cfg, &e)) != 0) {
        fprintf(stderr, "reflex: cannot create the engine: %s\n", strerror(-rc));
        return 1;
    }
    struct rfx_builtin *b = NULL;
    if ((rc = rfx_builtin_setup(e, &cfg, &b, msg, sizeof msg)) != 0) {
        fprintf(stderr, "reflex: %s\n", msg);
        rfx_engine_destroy(e);
        return rc == -EINVAL ? 2 : 1;
    }
    atomic_store(&g_engine, e);
    if (atomic_load(&g_interrupted))
        rfx_engine_stop(e);
    if ((rc = rfx_engine_start(e, msg, sizeof msg)) != 0) {
        fprintf(stderr, "reflex: cannot start: %s\n", msg);
        atomic_store_explicit(&g_engine, NULL, memory_order_relaxed);
        rfx_engine_destroy(e);
        rfx_builtin_destroy(b);
        return rc == -EINVAL || rc == -ENODEV || rc == -EBUSY ? 2 : 1;
    }
    if (!quiet)
        fprintf(stderr, "reflex: %s at %g Hz%s, bundle in %s/\n", demo ? "demo" : "running",
                cfg.frame_hz, cfg.frame_hz == 0 ? " (as fast as it goes)" : "", cfg.out_dir);
    /* Live status: on a terminal, one line redrawn about once a second
     * (with a progress bar for a timed run); otherwise a plain line every
     * 5 s; nothing with --quiet. */
    bool tty = isatty(STDERR_FILENO);
    int64_t t0 = rfx_now_ns(), last = t0;
    uint64_t shown = 0;
    struct rfx_engine_status shown_st = {0};
    while (rfx_engine_running(e)) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        int64_t now = rfx_now_ns();
        struct rfx_engine_status st;
        rfx_engine_status(e, &st);
        bool due =
            tty ? st.intervals != shown && now - last >= 900000000LL : now - last >= 5000000000LL;
        if (quiet || !due)
            continue;
        last = now;
        shown = st.intervals;
        shown_st = st;
        char line[320];
        status_line(line, sizeof line, &st, (now - t0) * 1e-9, cfg.duration_s, tty);
        if (tty)
            fprintf(stderr, "\r%s\033[K", line);
        else
            fprintf(stderr, "reflex: %s\n", line);
    }
    rfx_engine_wait(e);
    if (tty && !quiet && shown) {
        /* The run ended between redraws: draw the line once more at the
         * last interval's end, where the run ended (a timed run's bar ends
         * full), with that interval's figures, or the last shown ones if it
         * closed empty, with no frames. */
        struct rfx_engine_status fin;
        rfx_engine_status(e, &fin);
        double t_end = fin.t_s;
        if (fin.frames_per_s <= 0)
            fin = shown_st;
        char line[320];
        status_line(line, sizeof line, &fin, t_end, cfg.duration_s, tty);
        fprintf(stderr, "\r%s\033[K\n", line);
    }
    atomic_store_explicit(&g_engine, NULL, memory_order_relaxed);
    rfx_builtin_report(b, e, stdout);
    int status = 0;
    if (rfx_engine_write_bundle(e, msg, sizeof msg) != 0) {
        fprintf(stderr, "reflex: writing the bundle: %s\n", msg);
        status = 1;
    }
    int64_t viol = rfx_engine_print_report(e, stdout);
    if (status == 0)
        printf("bundle: %s/ (summary.json, latency.hlog, STAGE.hgrm, e2e.hgrm, latency.svg, "
               "metrics.prom%s)\n",
               cfg.out_dir, cfg.trace_frames ? ", trace.json" : "");
    else
        printf("bundle: %s/ is incomplete: the files named above could not be written; each "
               "file there is whole\n",
               cfg.out_dir);
    struct rfx_engine_record_stats rs;
    if (rfx_engine_record_stats(e, &rs) == 0) {
        printf("record: %s: %llu frames, %llu cache publications", cfg.record_path,
               (unsigned long long)rs.frames, (unsigned long long)rs.publications);
        if (rs.frames_lost)
            printf(", %llu frames LOST (the recorder fell behind)",
                   (unsigned long long)rs.frames_lost);
        printf("; check it with: reflex replay %s\n", cfg.record_path);
    }
    if (status == 0 && fail_on_budget && viol > 0) {
        fprintf(stderr, "reflex: %lld budget violations (--fail-on-budget)\n", (long long)viol);
        status = 3;
    }
    rfx_engine_destroy(e);
    rfx_builtin_destroy(b);
    return status;
}

static void check_usage(FILE *f)
{
    fprintf(f, "usage: reflex check CONFIG [--set section.key=value]...\n"
               "\n"
               "Validate CONFIG and print the resolved layout: stage -> thread -> core,\n"
               "wait strategies, rings, budgets. Errors name file:line and the key.\n"
               "  --set S.K=V       override a config key (repeatable)\n"
               "Exit: 0 valid, 2 bad usage or config.\n");
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"set", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sets[MAX_SETS];
    int n_sets = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!add_set(sets, &n_sets, optarg, "reflex check"))
                return 2;
            break;
        case 'h':
            check_usage(stdout);
            return 0;
        default:
            check_usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "reflex check: missing CONFIG\n");
        check_usage(stderr);
        return 2;
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "reflex check: unexpected argument '%s'\n", argv[optind + 1]);
        return 2;
    }
    const char *path = argv[optind];
    struct rfx_engine_config cfg;
    char msg[512];
    if (rfx_config_load(path, sets, n_sets, rfx_builtin_stages, 5, &cfg, msg, sizeof msg) != 0) {
        fprintf(stderr, "reflex: %s\n", msg);
        return 2;
    }
    printf("%s: ok\n", path);
    char cpus[256];
    printf("cpus: %d online; this process may use %s", rfx_cpu_online_count(),
           rfx_cpu_usable_list(cpus, sizeof cpus));
    struct rfx_cpu_quota q;
    if (rfx_cpu_quota_read(&q) == 0 && q.cpus > 0)
        printf("; its cgroup allows %.2f CPUs (%ld us every %ld us, %s), so an auto layout "
               "takes at most %d",
               q.cpus, q.quota_us, q.period_us, q.where, (int)ceil(q.cpus - 1e-9));
    printf("\n");
    rfx_engine_config_print(&cfg, stdout);
    /* A core outside this process's CPUs: refused at start under a cgroup
     * cpuset; under taskset, pinning overrides what the user narrowed. */
    int ids[CPU_SETSIZE];
    int n = rfx_cpu_usable(ids, CPU_SETSIZE);
    for (int i = 0; i < cfg.n_threads; i++) {
        bool in = cfg.threads[i].core < 0;
        for (int k = 0; k < n && !in; k++)
            in = ids[k] == cfg.threads[i].core;
        if (!in)
            fprintf(stderr,
                    "reflex: warning: thread.%s: core %d is not among the CPUs this process may "
                    "use (%s): a cgroup cpuset refuses it at start; under taskset it overrides "
                    "the mask\n",
                    cfg.threads[i].name, cfg.threads[i].core, cpus);
    }
    return 0;
}
