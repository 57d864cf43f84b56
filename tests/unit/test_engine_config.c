/* Layout resolution for 1, 2, 4 and 16 CPUs; config defaults, files, --set. */
#include "engine_impl.h"

#include <reflex/config.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const stages[] = {"capture", "pattern", "decide", "execute", "telemetry"};

static void resolve(struct rfx_engine_config *c, int cpus)
{
    char msg[256];
    rfx_engine_config_default(c);
    cr_assert_eq(rfx_engine_layout_resolve(c, stages, 5, cpus, msg, sizeof msg), 0, "%s", msg);
}

static bool critical(const struct rfx_thread_config *t)
{
    for (int i = 0; i < t->n_stages; i++)
        if (strcmp(t->stages[i], "telemetry") != 0)
            return true;
    return false;
}

/* Every stage once, in order; telemetry last. */
static void check_cover(const struct rfx_engine_config *c)
{
    int next = 0;
    for (int i = 0; i < c->n_threads; i++)
        for (int k = 0; k < c->threads[i].n_stages; k++)
            cr_expect_str_eq(c->threads[i].stages[k], stages[next++]);
    cr_expect_eq(next, 5);
}

Test(layout, one_cpu_fuses_everything_on_one_thread)
{
    struct rfx_engine_config c;
    resolve(&c, 1);
    cr_expect_eq(c.n_threads, 1);
    cr_expect_eq(c.threads[0].n_stages, 5);
    cr_expect_eq(c.threads[0].core, 0);
    check_cover(&c);
}

Test(layout, two_cpus_two_critical_threads_and_no_third_spinner)
{
    struct rfx_engine_config c;
    resolve(&c, 2);
    cr_expect_eq(c.n_threads, 2, "telemetry records on the last critical thread");
    cr_expect_eq(c.threads[0].core, 0);
    cr_expect_eq(c.threads[1].core, 1);
    cr_expect_eq(c.threads[0].n_stages, 2);
    cr_expect_eq(c.threads[1].n_stages, 3);
    cr_expect_str_eq(c.threads[1].stages[2], "telemetry");
    for (int w = 0; w < c.strategic_workers; w++)
        cr_expect_eq(c.strategic_cores[w], -1, "no core to spare: strategic work is unpinned");
    check_cover(&c);
}

Test(layout, four_cpus_keep_a_core_for_telemetry_and_planning)
{
    struct rfx_engine_config c;
    resolve(&c, 4);
    cr_expect_eq(c.n_threads, 4);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(c.threads[i].core, i);
    cr_expect_eq(c.threads[3].core, 3);
    cr_expect_str_eq(c.threads[3].stages[0], "telemetry");
    for (int w = 0; w < c.strategic_workers; w++)
        cr_expect_eq(c.strategic_cores[w], 3);
    check_cover(&c);
}

Test(layout, sixteen_cpus_thread_per_stage_off_core_zero)
{
    struct rfx_engine_config c;
    resolve(&c, 16);
    cr_expect_eq(c.n_threads, 5);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(c.threads[i].core, 1 + i);
        cr_expect_eq(c.threads[i].n_stages, 1);
    }
    cr_expect_eq(c.threads[4].core, 5);
    cr_expect_str_eq(c.threads[4].stages[0], "telemetry");
    for (int w = 0; w < c.strategic_workers; w++) {
        cr_expect_geq(c.strategic_cores[w], 5);
        for (int i = 0; i < c.n_threads; i++)
            if (critical(&c.threads[i]))
                cr_expect_neq(c.strategic_cores[w], c.threads[i].core);
    }
    check_cover(&c);
}

Test(layout, a_given_layout_is_kept)
{
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    c.n_threads = 1;
    snprintf(c.threads[0].name, sizeof c.threads[0].name, "all");
    cr_expect_eq(rfx_engine_layout_resolve(&c, stages, 5, 2, NULL, 0), 0);
    cr_expect_eq(c.n_threads, 1);
    cr_expect_eq(rfx_engine_layout_resolve(&c, stages, 1, 2, NULL, 0), -EINVAL);
    for (int w = 0; w < RFX_MAX_WORKERS; w++)
        cr_expect_eq(c.strategic_cores[w], -1, "no layout to place them by: unpinned");
}

static void resolve_latency(struct rfx_engine_config *c, int cpus)
{
    char msg[256];
    rfx_engine_config_default(c);
    c->layout = RFX_LAYOUT_LATENCY;
    c->strategic_workers = 4;
    cr_assert_eq(rfx_engine_layout_resolve(c, stages, 5, cpus, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(c->n_threads, 2);
    cr_expect_eq(c->threads[0].n_stages, 4, "every critical stage on one thread");
    cr_expect_eq(c->threads[0].wait.kind, RFX_WAIT_SPIN);
    cr_expect_eq(c->threads[1].n_stages, 1);
    cr_expect_eq(c->threads[1].wait.kind, RFX_WAIT_PARK);
    cr_expect_neq(c->threads[1].core, c->threads[0].core);
    for (int w = 0; w < c->strategic_workers; w++)
        cr_expect_neq(c->strategic_cores[w], c->threads[0].core,
                      "worker %d shares the spinning core", w);
    check_cover(c);
}

Test(layout, latency_two_cpus_spins_on_core_0_and_leaves_core_1_to_the_rest)
{
    struct rfx_engine_config c;
    resolve_latency(&c, 2);
    cr_expect_eq(c.threads[0].core, 0);
    cr_expect_eq(c.threads[1].core, 1);
    for (int w = 0; w < 4; w++)
        cr_expect_eq(c.strategic_cores[w], 1);
}

Test(layout, latency_four_and_sixteen_cpus_spread_the_workers)
{
    struct rfx_engine_config c;
    resolve_latency(&c, 4);
    cr_expect_eq(c.threads[0].core, 0);
    cr_expect_eq(c.threads[1].core, 1);
    int want4[4] = {2, 3, 2, 3};
    for (int w = 0; w < 4; w++)
        cr_expect_eq(c.strategic_cores[w], want4[w]);
    resolve_latency(&c, 16);
    cr_expect_eq(c.threads[0].core, 1, "from 5 CPUs core 0 is left to the system");
    cr_expect_eq(c.threads[1].core, 2);
    for (int w = 0; w < 4; w++)
        cr_expect_eq(c.strategic_cores[w], 3 + w);
}

Test(layout, latency_on_one_cpu_is_refused_and_a_resolved_one_is_kept)
{
    struct rfx_engine_config c;
    char msg[256] = "";
    rfx_engine_config_default(&c);
    c.layout = RFX_LAYOUT_LATENCY;
    cr_expect_eq(rfx_engine_layout_resolve(&c, stages, 5, 1, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "2 or more CPUs") != NULL, "%s", msg);
    cr_expect_eq(c.n_threads, 0);
    /* The loader resolves, then the engine resolves again at start. */
    resolve_latency(&c, 2);
    cr_expect_eq(rfx_engine_layout_resolve(&c, stages, 5, 2, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(c.n_threads, 2);
    cr_expect_eq(c.threads[0].wait.kind, RFX_WAIT_SPIN);
}

/* No CPU count given: the layout takes the CPUs this thread may run on,
 * as taskset or a container's cpuset leaves them, not every online one. */
Test(layout, with_no_count_it_lays_out_on_the_cpus_the_thread_may_use)
{
    int all[CPU_SETSIZE];
    int n = rfx_cpu_usable(all, CPU_SETSIZE);
    cr_assert_geq(n, 1);
    for (int i = 1; i < n; i++)
        cr_expect_lt(all[i - 1], all[i], "ascending");
    int last = all[n - 1];
    if (n >= 2 && all[1] == all[0] + 1) { /* the list joins runs: "0-1", not "0,1" */
        char list[64], head[32];
        snprintf(head, sizeof head, "%d-", all[0]);
        cr_expect(strncmp(rfx_cpu_usable_list(list, sizeof list), head, strlen(head)) == 0, "%s",
                  list);
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0); /* this test's own process */
    int ids[2] = {-1, -1};
    cr_expect_eq(rfx_cpu_usable(ids, 2), 1);
    cr_expect_eq(ids[0], last);
    char list[32], want[32];
    snprintf(want, sizeof want, "%d", last);
    cr_expect_str_eq(rfx_cpu_usable_list(list, sizeof list), want);
    struct rfx_engine_config c;
    resolve(&c, 0);
    cr_expect_eq(c.n_threads, 1, "one CPU: one thread");
    cr_expect_eq(c.threads[0].core, last);
    check_cover(&c);
    char msg[256] = "";
    rfx_engine_config_default(&c);
    c.layout = RFX_LAYOUT_LATENCY;
    cr_expect_eq(rfx_engine_layout_resolve(&c, stages, 5, 0, msg, sizeof msg), -EINVAL);
    if (rfx_cpu_online_count() > 1)
        cr_expect(strstr(msg, "may run on 1 of the") != NULL, "%s", msg);
}

/* A cgroup CPU limit caps the CPUs an auto layout takes at the limit
 * rounded up; no limit, or one above the CPUs, changes nothing. */
Test(layout, a_cpu_limit_caps_the_cpus_an_auto_layout_takes)
{
    struct rfx_cpu_quota q = {.cpus = 0.5};
    cr_expect_eq(rfx_layout_cpu_count(2, &q), 1);
    q.cpus = 1.0;
    cr_expect_eq(rfx_layout_cpu_count(16, &q), 1);
    q.cpus = 1.5;
    cr_expect_eq(rfx_layout_cpu_count(16, &q), 2);
    q.cpus = 3.0;
    cr_expect_eq(rfx_layout_cpu_count(16, &q), 3);
    cr_expect_eq(rfx_layout_cpu_count(2, &q), 2);
    q.cpus = 0;
    cr_expect_eq(rfx_layout_cpu_count(16, &q), 16);
    cr_expect_eq(rfx_layout_cpu_count(4, NULL), 4);
}

Test(layout, strategic_cores_the_user_set_are_kept)
{
    struct rfx_engine_config c;
    char msg[256];
    rfx_engine_config_default(&c);
    c.strategic_workers = 3;
    c.strategic_cores[0] = 15;
    c.strategic_cores[1] = -1;
    cr_assert_eq(rfx_engine_layout_resolve(&c, stages, 5, 16, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(c.strategic_cores[0], 15);
    cr_expect_eq(c.strategic_cores[1], -1, "unpinned on purpose stays unpinned");
    cr_expect_geq(c.strategic_cores[2], 5, "left to the resolver: a spare core");
}

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/rfx-cfg-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(config, file_values_then_set_overrides)
{
    char *p = write_tmp("[engine]\nframe_hz = 120\nburst = 8\n[ring]\noverflow = drop-oldest\n");
    const char *sets[] = {"engine.burst=16", "strategic.workers=2"};
    struct rfx_engine_config c;
    char msg[256] = "";
    cr_assert_eq(rfx_config_load(p, sets, 2, stages, 5, &c, msg, sizeof msg), 0, "%s", msg);
    cr_expect_float_eq(c.frame_hz, 120, 1e-9);
    cr_expect_eq(c.burst, 16);
    cr_expect_eq(c.strategic_workers, 2);
    cr_expect_eq(c.ring_policy, RFX_RING_DROP_OLDEST);
    cr_expect_gt(c.n_threads, 0, "the layout was resolved");
    /* Spaces around the names and the value, as the file allows. */
    const char *spaced[] = {" engine . burst = 4 ", "engine.out_dir =  /tmp/a b  "};
    cr_assert_eq(rfx_config_load(p, spaced, 2, stages, 5, &c, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(c.burst, 4);
    cr_expect_str_eq(c.out_dir, "/tmp/a b");
    const char *empty_key[] = {"engine. =4"};
    cr_expect_eq(rfx_config_load(p, empty_key, 1, stages, 5, &c, msg, sizeof msg), -EINVAL);
    cr_expect_str_eq(msg, "--set engine. =4: expected section.key=value");
    unlink(p);
}

Test(config, the_watchdog_runs_at_normal_priority_unless_told_otherwise)
{
    struct rfx_engine_config c;
    char msg[256] = "", buf[24];
    cr_assert_eq(rfx_config_load(NULL, NULL, 0, stages, 5, &c, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(c.watchdog_priority.kind, RFX_PRIO_NORMAL);
    cr_expect_str_eq(rfx_priority_format(&c.watchdog_priority, buf, sizeof buf), "normal");
    const char *sets[] = {"watchdog.priority=nice:-5"};
    cr_assert_eq(rfx_config_load(NULL, sets, 1, stages, 5, &c, msg, sizeof msg), 0, "%s", msg);
    cr_expect_str_eq(rfx_priority_format(&c.watchdog_priority, buf, sizeof buf), "nice:-5");
    const char *fifo[] = {"watchdog.priority=fifo:1"};
    cr_assert_eq(rfx_config_load(NULL, fifo, 1, stages, 5, &c, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(c.watchdog_priority.kind, RFX_PRIO_FIFO);
    cr_expect_eq(c.watchdog_priority.value, 1);
    cr_expect_str_eq(rfx_priority_format(&c.watchdog_priority, buf, sizeof buf), "fifo:1");
    const char *bad[] = {"watchdog.priority=fifo:100"};
    cr_expect_eq(rfx_config_load(NULL, bad, 1, stages, 5, &c, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "--set watchdog.priority: 'fifo:100' is not normal") != NULL,
              "message: %s", msg);
}

Test(config, errors_name_file_line_and_key)
{
    char *p = write_tmp("[engine]\n\nframe_hz = 60\nburst = 99\n");
    struct rfx_engine_config c;
    char msg[256] = "", want[128];
    cr_expect_eq(rfx_config_load(p, NULL, 0, stages, 5, &c, msg, sizeof msg), -EINVAL);
    snprintf(want, sizeof want, "%s:4: engine.burst:", p);
    cr_expect(strstr(msg, want) != NULL, "message: %s", msg);
    const char *sets[] = {"engine.frame_hz=fast"};
    cr_expect_eq(rfx_config_load(NULL, sets, 1, stages, 5, &c, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "--set engine.frame_hz:") != NULL, "message: %s", msg);
    const char *bad[] = {"frame_hz=60"};
    cr_expect_eq(rfx_config_load(NULL, bad, 1, stages, 5, &c, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "expected section.key=value") != NULL, "message: %s", msg);
    cr_expect_eq(rfx_config_load("/nonexistent/x.ini", NULL, 0, stages, 5, &c, msg, sizeof msg),
                 -ENOENT);
    unlink(p);
}

Test(config, engine_create_checks_the_config)
{
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    struct rfx_engine *e = NULL;
    c.pool_frames = 1000;
    cr_expect_eq(rfx_engine_create(&c, &e), -EINVAL);
    cr_expect_null(e);
    cr_expect_eq(rfx_engine_create(NULL, &e), -EINVAL);
    rfx_engine_config_default(&c);
    cr_assert_eq(rfx_engine_create(&c, &e), 0);
    struct rfx_stage_ops ops = {0};
    cr_expect_eq(rfx_engine_add_stage(e, "x", &ops, NULL), -EINVAL, "no process callback");
    cr_expect_eq(rfx_engine_add_stage(e, "telemetry", &ops, NULL), -EINVAL);
    rfx_engine_destroy(e);
}

static void nop(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)f, (void)n, (void)env;
}

/* An engine at 1 kHz without planners for `duration_s` (0: until
 * stopped), its bundle in `dir`. */
static struct rfx_engine *engine_into(const char *dir, double duration_s)
{
    struct rfx_engine_config c;
    rfx_engine_config_default(&c);
    c.frame_hz = 1000;
    c.duration_s = duration_s;
    c.strategic_workers = 0;
    snprintf(c.out_dir, sizeof c.out_dir, "%s", dir);
    struct rfx_engine *e;
    cr_assert_eq(rfx_engine_create(&c, &e), 0);
    return e;
}

/* The same in a new directory made from the template `dir`. */
static struct rfx_engine *paced_engine(char *dir)
{
    cr_assert_not_null(mkdtemp(dir));
    return engine_into(dir, 0);
}

static void remove_dir(const char *dir)
{
    char cmd[RFX_PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Calls out of order are refused with -EINVAL and, where there is a message
 * buffer, a reason; the engine still runs and writes its bundle after. */
Test(lifecycle, calls_out_of_order_are_refused_with_a_reason)
{
    char dir[] = "/tmp/rfx-lifecycle-XXXXXX";
    struct rfx_engine *e = paced_engine(dir);
    char msg[200] = "";
    cr_expect_eq(rfx_engine_wait(e), -EINVAL, "wait before start");
    cr_expect_eq(rfx_engine_write_bundle(e, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "never started"), "write_bundle before start: '%s'", msg);
    cr_expect_eq(rfx_engine_print_report(e, stdout), -EINVAL);
    cr_expect_eq(rfx_engine_start(e, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "no stages"), "start with no stages: '%s'", msg);
    static const struct rfx_stage_ops ops = {.process = nop};
    cr_assert_eq(rfx_engine_add_stage(e, "a", &ops, NULL), 0);
    cr_expect_eq(rfx_engine_add_stage(e, "a", &ops, NULL), -EEXIST);
    /* A name goes unescaped into file names, hlog tags, JSON and labels. */
    static const char *const bad[] = {"",
                                      "../x",
                                      "a/b",
                                      "a b",
                                      "a,b",
                                      "a\"b",
                                      "a.hgrm",
                                      "telemetry",
                                      "e2e",
                                      "tab\there",
                                      "0123456789012345678901234567890x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(rfx_engine_add_stage(e, bad[i], &ops, NULL), -EINVAL, "name '%s'", bad[i]);
    cr_expect_eq(rfx_engine_add_stage(e, "Stage_2-b", &ops, NULL), 0);
    cr_expect_eq(rfx_engine_add_stage(e, "0123456789012345678901234567890", &ops, NULL), 0,
                 "31 characters");
    cr_assert_eq(rfx_engine_start(e, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(rfx_engine_start(e, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "already started"), "start twice: '%s'", msg);
    cr_expect_eq(rfx_engine_add_stage(e, "b", &ops, NULL), -EINVAL, "add_stage after start");
    cr_expect_eq(rfx_engine_write_bundle(e, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "call rfx_engine_wait first"), "write_bundle while running: '%s'", msg);
    rfx_engine_stop(e);
    cr_expect_eq(rfx_engine_wait(e), 0);
    cr_expect_eq(rfx_engine_wait(e), 0, "a second wait returns at once");
    cr_expect_eq(rfx_engine_write_bundle(e, NULL, 0), 0);
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/telemetry.hgrm", dir);
    cr_expect_eq(access(path, R_OK), 0, "%s written", path);
    rfx_engine_destroy(e);
    remove_dir(dir);
}

/* A 20-ms run at 1 kHz of the stages `names` with its bundle in `dir`. */
static void run_into(const char *dir, const char *const *names, int n)
{
    struct rfx_engine *e = engine_into(dir, 0.02);
    static const struct rfx_stage_ops ops = {.process = nop};
    for (int i = 0; i < n; i++)
        cr_assert_eq(rfx_engine_add_stage(e, names[i], &ops, NULL), 0);
    char msg[256] = "";
    cr_assert_eq(rfx_engine_start(e, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(rfx_engine_wait(e), 0);
    cr_assert_eq(rfx_engine_write_bundle(e, msg, sizeof msg), 0, "%s", msg);
    rfx_engine_destroy(e);
}

static bool exists(const char *dir, const char *file)
{
    char path[RFX_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

static void touch(const char *dir, const char *file, const char *text)
{
    char path[RFX_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* A run into a directory an earlier run used removes the files that run's
 * summary.json listed and this one does not write (the .hgrm of a stage
 * since renamed), and nothing else: not a file it did not list, not a
 * listed name a bundle could not have written. */
Test(bundle, a_rerun_removes_the_files_of_stages_it_no_longer_has)
{
    char dir[] = "/tmp/rfx-rerun-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    run_into(dir, (const char *const[]){"a", "b"}, 2);
    cr_expect(exists(dir, "a.hgrm") && exists(dir, "b.hgrm") && exists(dir, "e2e.hgrm"));
    touch(dir, "notes.hgrm", "the user's, not listed\n");
    touch(dir, "keep.txt", "the user's\n");
    run_into(dir, (const char *const[]){"a", "c"}, 2);
    cr_expect(!exists(dir, "b.hgrm"), "b.hgrm, from the run before, removed");
    cr_expect(exists(dir, "a.hgrm") && exists(dir, "c.hgrm") && exists(dir, "e2e.hgrm") &&
                  exists(dir, "telemetry.hgrm") && exists(dir, "summary.json") &&
                  exists(dir, "latency.hlog") && exists(dir, "metrics.prom"),
              "this run's files");
    cr_expect(exists(dir, "notes.hgrm") && exists(dir, "keep.txt"), "unlisted files kept");

    /* A summary.json that lists more than a bundle writes. */
    char sub[sizeof dir + 8];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    touch(sub, "x.hgrm", "\n");
    touch(dir, "summary.json",
          "{\"reflex_version\": \"0\", \"bundle_files\": [\"sub/x.hgrm\", \"../x.hgrm\", "
          "\"keep.txt\", \"notes.hgrm\", \"c.hgrm\"]}\n");
    run_into(dir, (const char *const[]){"a"}, 1);
    cr_expect(!exists(dir, "notes.hgrm") && !exists(dir, "c.hgrm"), "listed .hgrm removed");
    cr_expect(exists(sub, "x.hgrm") && exists(dir, "keep.txt"),
              "names a bundle cannot have are never removed");
    remove_dir(dir);
}

/* An out dir is one engine's from its start to its destruction: another
 * engine (here, in this process) cannot start into it, and can once the
 * first is destroyed. */
Test(bundle, a_directory_in_use_is_refused)
{
    char dir[] = "/tmp/rfx-inuse-XXXXXX";
    struct rfx_engine *a = paced_engine(dir);
    static const struct rfx_stage_ops ops = {.process = nop};
    char msg[256] = "";
    cr_assert_eq(rfx_engine_add_stage(a, "a", &ops, NULL), 0);
    cr_assert_eq(rfx_engine_start(a, msg, sizeof msg), 0, "%s", msg);
    struct rfx_engine *b = engine_into(dir, 0);
    cr_assert_eq(rfx_engine_add_stage(b, "b", &ops, NULL), 0);
    cr_expect_eq(rfx_engine_start(b, msg, sizeof msg), -EBUSY);
    cr_expect(strstr(msg, "is in use by another run"), "'%s'", msg);
    rfx_engine_destroy(b);
    rfx_engine_stop(a);
    cr_expect_eq(rfx_engine_wait(a), 0);
    cr_expect_eq(rfx_engine_write_bundle(a, msg, sizeof msg), 0, "%s", msg);
    rfx_engine_destroy(a);
    run_into(dir, (const char *const[]){"c"}, 1);
    cr_expect(exists(dir, "c.hgrm") && !exists(dir, "a.hgrm"), "the next run has it");
    remove_dir(dir);
}

static int failing_init(void *ctx, const struct rfx_stage_env *env)
{
    (void)ctx, (void)env;
    return -ENODEV;
}

static long file_size(const char *dir, const char *file)
{
    char path[RFX_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* A start that fails (here a stage's init) leaves the previous run's
 * bundle in the directory as it was: latency.hlog is cut only once the
 * run starts. */
Test(bundle, a_failed_start_leaves_the_previous_bundle_whole)
{
    char dir[] = "/tmp/rfx-failstart-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    run_into(dir, (const char *const[]){"a"}, 1);
    long hlog = file_size(dir, "latency.hlog"), summary = file_size(dir, "summary.json");
    cr_assert_gt(hlog, 0);
    struct rfx_engine *e = engine_into(dir, 0);
    static const struct rfx_stage_ops ops = {.init = failing_init, .process = nop};
    cr_assert_eq(rfx_engine_add_stage(e, "b", &ops, NULL), 0);
    char msg[256] = "";
    cr_expect_neq(rfx_engine_start(e, msg, sizeof msg), 0, "a stage's init failed");
    rfx_engine_destroy(e);
    cr_expect_eq(file_size(dir, "latency.hlog"), hlog, "the previous latency.hlog is whole");
    cr_expect_eq(file_size(dir, "summary.json"), summary);
    cr_expect_eq(file_size(dir, "summary.json.tmp"), -1, "no reservation left behind");
    remove_dir(dir);
}

/* A stage that holds its call while `hold` is set, as one stuck on a device. */
static _Atomic int hold, holding;

static void holder(void *c, struct rfx_frame **f, size_t n, const struct rfx_stage_env *env)
{
    (void)c, (void)f, (void)n, (void)env;
    while (atomic_load(&hold)) {
        atomic_store(&holding, 1);
        usleep(1000);
    }
}

/* A drain held by a stuck stage: the timed wait gives up with -ETIMEDOUT
 * after its timeout, and a later one closes the run once the call returns. */
Test(lifecycle, a_timed_wait_gives_up_on_a_stuck_stage_and_can_be_called_again)
{
    char dir[] = "/tmp/rfx-timedwait-XXXXXX";
    struct rfx_engine *e = paced_engine(dir);
    static const struct rfx_stage_ops ops = {.process = holder};
    cr_assert_eq(rfx_engine_add_stage(e, "a", &ops, NULL), 0);
    char msg[200];
    cr_assert_eq(rfx_engine_start(e, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(rfx_engine_wait_for(NULL, 0), -EINVAL);
    atomic_store(&hold, 1);
    for (int i = 0; i < 5000 && !atomic_load(&holding); i++)
        usleep(1000);
    cr_assert(atomic_load(&holding), "the stage took a frame and holds it");
    rfx_engine_stop(e);
    int64_t t0 = rfx_now_ns();
    cr_expect_eq(rfx_engine_wait_for(e, 100000000), -ETIMEDOUT);
    double waited_ms = (rfx_now_ns() - t0) / 1e6;
    cr_expect(waited_ms >= 99 && waited_ms < 2000, "gave up after %.1f ms", waited_ms);
    cr_expect(rfx_engine_running(e));
    cr_expect_eq(rfx_engine_wait_for(e, 0), -ETIMEDOUT, "still stuck");
    atomic_store(&hold, 0);
    cr_expect_eq(rfx_engine_wait_for(e, 10000000000LL), 0, "the call returned: the run closes");
    cr_expect_eq(rfx_engine_wait_for(e, 0), 0);
    struct rfx_engine_counts k;
    rfx_engine_counts(e, &k);
    uint64_t dropped = 0;
    for (int r = 0; r < RFX_DROP_REASONS; r++)
        dropped += k.dropped[r];
    cr_expect(k.captured > 0 && k.in_flight == 0 && k.captured == k.executed + dropped,
              "captured %llu = executed %llu + dropped %llu, in flight %llu",
              (unsigned long long)k.captured, (unsigned long long)k.executed,
              (unsigned long long)dropped, (unsigned long long)k.in_flight);
    cr_expect_eq(rfx_engine_write_bundle(e, msg, sizeof msg), 0, "%s", msg);
    rfx_engine_destroy(e);
    remove_dir(dir);
}

Test(config, degradation_actions_per_level)
{
    struct rfx_engine_config c;
    char msg[300];
    rfx_engine_config_default(&c);
    /* Defaults: each level adds one action to the one below. */
    cr_expect_eq(c.level_actions[RFX_LEVEL_NONE], 0u);
    cr_expect_eq(c.level_actions[RFX_LEVEL_MINIMAL], (unsigned)RFX_DEGRADE_MIN_HZ);
    cr_expect_eq(c.level_actions[RFX_LEVEL_MODERATE],
                 (unsigned)(RFX_DEGRADE_MIN_HZ | RFX_DEGRADE_FAST_PATH));
    cr_expect_eq(c.level_actions[RFX_LEVEL_SEVERE],
                 (unsigned)(RFX_DEGRADE_MIN_HZ | RFX_DEGRADE_FAST_PATH | RFX_DEGRADE_CACHE_ONLY));
    cr_expect_eq(c.level_actions[RFX_LEVEL_CRITICAL], 0x1fu);
    /* A bot that keeps planning until CRITICAL and never sheds. */
    const char *p = write_tmp("[degrade]\nminimal = none\nsevere = fast_path\n"
                              "critical = cache_only, fallback_only\n");
    const char *sets[] = {"degrade.moderate=fast_path, min_hz"};
    cr_assert_eq(rfx_config_load(p, sets, 1, stages, 5, &c, msg, sizeof msg), 0, "%s", msg);
    cr_expect_eq(c.level_actions[RFX_LEVEL_MINIMAL], 0u);
    cr_expect_eq(c.level_actions[RFX_LEVEL_MODERATE],
                 (unsigned)(RFX_DEGRADE_MIN_HZ | RFX_DEGRADE_FAST_PATH));
    cr_expect_eq(c.level_actions[RFX_LEVEL_SEVERE], (unsigned)RFX_DEGRADE_FAST_PATH);
    cr_expect_eq(c.level_actions[RFX_LEVEL_CRITICAL],
                 (unsigned)(RFX_DEGRADE_CACHE_ONLY | RFX_DEGRADE_FALLBACK_ONLY));
    unlink(p);
    const char *bad[] = {"degrade.critical=none, shed_stale"};
    cr_expect_eq(rfx_config_load(NULL, bad, 1, stages, 5, &c, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "degrade.critical") && strstr(msg, "'none'"), "%s", msg);
    /* Out-of-range bits set through the API are refused. */
    rfx_engine_config_default(&c);
    c.level_actions[RFX_LEVEL_SEVERE] = 1u << 7;
    cr_expect_eq(rfx_engine_config_check(&c, msg, sizeof msg), -EINVAL);
    cr_expect(strstr(msg, "degrade.severe"), "%s", msg);
}

/* Off-path threads go where the pinned critical threads are not. */
Test(offpath, cpus_without_critical_cores)
{
    cpu_set_t all, out;
    CPU_ZERO(&all);
    for (int c = 0; c < 4; c++)
        CPU_SET(c, &all);
    int one[] = {0};
    cr_expect_eq(rfx_cpus_without(&all, one, 1, &out), 3);
    cr_expect(!CPU_ISSET(0, &out) && CPU_ISSET(1, &out) && CPU_ISSET(3, &out));
    int unpinned[] = {-1, 2};
    cr_expect_eq(rfx_cpus_without(&all, unpinned, 2, &out), 3, "an unpinned thread frees nothing");
    cr_expect(!CPU_ISSET(2, &out) && CPU_ISSET(0, &out));
    int every[] = {0, 1, 2, 3};
    cr_expect_eq(rfx_cpus_without(&all, every, 4, &out), 0,
                 "all taken: none left (the engine then leaves the mask alone)");
    int outside[] = {7};
    cr_expect_eq(rfx_cpus_without(&all, outside, 1, &out), 4, "a core not in the set changes nothing");
}

/* A spinning FIFO thread is flagged only while RT throttling is on. */
Test(advice, spin_at_fifo_under_rt_throttling)
{
    struct rfx_thread_config t = {.name = "rt0", .core = 0};
    t.wait.kind = RFX_WAIT_SPIN;
    t.priority = (struct rfx_priority){.kind = RFX_PRIO_FIFO, .value = 50};
    char msg[400] = "";
    cr_expect(rfx_spin_fifo_hazard(&t, 950000, 1000000, msg, sizeof msg));
    cr_expect(strstr(msg, "thread rt0") && strstr(msg, "fifo:50") &&
                  strstr(msg, "up to 50 ms of every 1000 ms"),
              "%s", msg);
    cr_expect(!rfx_spin_fifo_hazard(&t, -1, 1000000, msg, sizeof msg), "throttling off");
    cr_expect(!rfx_spin_fifo_hazard(&t, 1000000, 1000000, msg, sizeof msg), "runtime = period");
    t.wait.kind = RFX_WAIT_HYBRID;
    cr_expect(!rfx_spin_fifo_hazard(&t, 950000, 1000000, msg, sizeof msg), "it sleeps: fine");
    t.wait.kind = RFX_WAIT_SPIN;
    t.priority.kind = RFX_PRIO_NORMAL;
    cr_expect(!rfx_spin_fifo_hazard(&t, 950000, 1000000, msg, sizeof msg), "normal: fine");
    long runtime, period;
    rfx_rt_throttle(&runtime, &period);
    cr_expect(period > 0 && (runtime == -1 || (runtime >= 0 && runtime <= period)),
              "read the machine's: %ld of %ld", runtime, period);
}
