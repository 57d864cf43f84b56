/* Unit tests: pinning, names, priorities and their refusals. */
#include <criterion/criterion.h>

#include <reflex/thread.h>

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

Test(thread, priority_parse)
{
    struct rfx_priority p;
    cr_expect_eq(rfx_priority_parse("normal", &p), 0);
    cr_expect_eq(p.kind, RFX_PRIO_NORMAL);
    cr_expect_eq(rfx_priority_parse("nice:-5", &p), 0);
    cr_expect_eq(p.kind, RFX_PRIO_NICE);
    cr_expect_eq(p.value, -5);
    cr_expect_eq(rfx_priority_parse("fifo:80", &p), 0);
    cr_expect_eq(p.kind, RFX_PRIO_FIFO);
    cr_expect_eq(p.value, 80);
    const char *bad[] = {"",       "fast",     "nice:", "nice:20", "nice:-21", "nice:3x",
                         "fifo:0", "fifo:100", "fifo:", "FIFO:5",  "nice: 5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(rfx_priority_parse(bad[i], &p), -EINVAL, "'%s'", bad[i]);
    cr_expect_eq(rfx_priority_parse(NULL, &p), -EINVAL);
    cr_expect_eq(rfx_priority_parse("normal", NULL), -EINVAL);
}

Test(thread, core_check_refuses_out_of_range)
{
    char msg[256] = "";
    cr_expect_eq(rfx_core_check(-1, msg, sizeof msg), -ERANGE);
    cr_expect(strstr(msg, "core -1 is out of range") != NULL, "message: %s", msg);
    int n = rfx_cpu_possible_count();
    cr_expect_eq(rfx_core_check(n, msg, sizeof msg), -ERANGE);
    cr_expect(strstr(msg, "out of range") != NULL && strstr(msg, "online") != NULL,
              "message names what exists: %s", msg);
    cr_expect_eq(rfx_core_check(100000, NULL, 0), -ERANGE);
    cr_expect_eq(rfx_thread_pin_self(100000, msg, sizeof msg), -ERANGE);
    cr_expect_eq(rfx_core_check(0, msg, sizeof msg), 0);
    cr_expect_geq(rfx_cpu_online_count(), 1);
}

Test(thread, pin_moves_the_thread)
{
    /* Every online core, in turn, from the same thread: being pinned to one
     * core must not stop a thread from moving to another. */
    int n = rfx_cpu_online_count();
    for (int c = 0; c < n && c < 4; c++) {
        char msg[256] = "";
        cr_assert_eq(rfx_core_check(c, msg, sizeof msg), 0, "core %d: %s", c, msg);
        cr_assert_eq(rfx_thread_pin_self(c, msg, sizeof msg), 0, "%s", msg);
        cr_expect_eq(sched_getcpu(), c);
        cpu_set_t set;
        pthread_getaffinity_np(pthread_self(), sizeof set, &set);
        cr_expect_eq(CPU_COUNT(&set), 1);
        cr_expect(CPU_ISSET(c, &set));
    }
}

static void read_comm(char *buf, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/comm", (long)syscall(SYS_gettid));
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(buf, (int)n, f));
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
}

Test(thread, names_are_visible_to_the_kernel)
{
    char comm[32];
    cr_expect_eq(rfx_thread_name_self("ring"), 0);
    read_comm(comm, sizeof comm);
    cr_expect_str_eq(comm, "rfx-ring");
    cr_expect_eq(rfx_thread_name_self("a-very-long-stage-name"), 0);
    read_comm(comm, sizeof comm);
    cr_expect_str_eq(comm, "rfx-a-very-long", "truncated to the kernel's 15 bytes");
    cr_expect_eq(rfx_thread_name_self(""), -EINVAL);
    cr_expect_eq(rfx_thread_name_self(NULL), -EINVAL);
}

Test(thread, nice_applies_to_this_thread)
{
    struct rfx_priority p = {RFX_PRIO_NICE, 7};
    cr_expect_eq(rfx_thread_priority_self(&p, NULL, 0), 0);
    errno = 0;
    int got = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    cr_expect_eq(got, 7);
    cr_expect_eq(rfx_thread_priority_self(NULL, NULL, 0), -EINVAL);
    struct rfx_priority bad = {RFX_PRIO_FIFO, 0};
    cr_expect_eq(rfx_thread_priority_self(&bad, NULL, 0), -EINVAL);
}

static void *go_idle(void *arg)
{
    int *out = arg;
    out[0] = rfx_thread_idle_self();
    out[1] = sched_getscheduler(0);
    return NULL;
}

Test(thread, idle_applies_to_the_calling_thread_only)
{
    int got[2] = {-1, -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, go_idle, got), 0);
    pthread_join(t, NULL);
    /* Lowering a thread's own policy needs no privilege. */
    cr_expect_eq(got[0], 0, "SCHED_IDLE refused");
    cr_expect_eq(got[1], SCHED_IDLE);
    cr_expect_eq(sched_getscheduler(0), SCHED_OTHER, "the creating thread changed too");
}

Test(thread, fifo_applies_or_falls_back_consistently)
{
    struct rfx_priority p = {RFX_PRIO_FIFO, 10};
    char msg[256] = "";
    int rc = rfx_thread_priority_self(&p, msg, sizeof msg);
    int policy;
    struct sched_param sp;
    pthread_getschedparam(pthread_self(), &policy, &sp);
    if (rc == 0) {
        cr_expect_eq(policy, SCHED_FIFO);
        cr_expect_eq(sp.sched_priority, 10);
        struct rfx_priority n = {RFX_PRIO_NORMAL, 0};
        cr_expect_eq(rfx_thread_priority_self(&n, NULL, 0), 0);
    } else {
        cr_expect_eq(rc, 1);
        cr_expect_eq(policy, SCHED_OTHER);
        cr_expect(strstr(msg, "not permitted") != NULL, "%s", msg);
    }
}

/* Drop CAP_SYS_NICE from this (forked, per-test) process so that FIFO is
 * refused as it is for an unprivileged user, and check the fallback. */
Test(thread, fifo_without_permission_warns_and_falls_back)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    cr_assert_eq(syscall(SYS_capget, &hdr, data), 0);
    data[0].effective &= ~(1u << CAP_SYS_NICE);
    data[0].permitted &= ~(1u << CAP_SYS_NICE);
    cr_assert_eq(syscall(SYS_capset, &hdr, data), 0);
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_RTPRIO, &rl);

    struct rfx_priority p = {RFX_PRIO_FIFO, 10};
    char msg[256] = "";
    cr_expect_eq(rfx_thread_priority_self(&p, msg, sizeof msg), 1);
    cr_expect(strstr(msg, "fifo:10 not permitted") != NULL, "warning: %s", msg);
    int policy;
    struct sched_param sp;
    pthread_getschedparam(pthread_self(), &policy, &sp);
    cr_expect_eq(policy, SCHED_OTHER, "the thread runs on at normal priority");

    struct rfx_priority n = {RFX_PRIO_NICE, -10};
    cr_expect_eq(rfx_thread_priority_self(&n, msg, sizeof msg), 1);
    cr_expect(strstr(msg, "nice:-10 not permitted") != NULL, "warning: %s", msg);
}

Test(thread, memory_lock_reports_failures)
{
    char msg[256] = "";
    int rc = rfx_memory_lock(msg, sizeof msg);
    if (rc == 0) {
        munlockall();
    } else {
        cr_expect_lt(rc, 0);
        cr_expect(strstr(msg, "mlockall failed") != NULL, "%s", msg);
    }
#ifndef __SANITIZE_ADDRESS__
    /* With a zero limit and no privilege, the failure is explained. (ASan
     * intercepts mlockall as a no-op that succeeds, so not there.) */
    struct rlimit rl = {0, 0};
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    cr_assert_eq(syscall(SYS_capget, &hdr, data), 0);
    data[0].effective &= ~(1u << CAP_IPC_LOCK);
    cr_assert_eq(syscall(SYS_capset, &hdr, data), 0);
    cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
    cr_expect_lt(rfx_memory_lock(msg, sizeof msg), 0);
    cr_expect(strstr(msg, "RLIMIT_MEMLOCK 0 bytes") != NULL, "%s", msg);
#endif
}

Test(thread, cpu_latency_request_is_held_then_refused_without_root)
{
    char msg[256] = "";
    cr_expect_eq(rfx_cpu_latency_hold(3000000000u, msg, sizeof msg), -ERANGE);
    if (geteuid() == 0) {
        int h = rfx_cpu_latency_hold(0, msg, sizeof msg);
        cr_assert_geq(h, 0, "%s", msg);
        /* the machine's limit is the strictest request: ours, 0 */
        cr_expect_eq(rfx_cpu_latency_current(), 0);
        int h2 = rfx_cpu_latency_hold(500, msg, sizeof msg);
        cr_expect_geq(h2, 0, "%s", msg);
        cr_expect_eq(rfx_cpu_latency_current(), 0, "a looser request does not loosen it");
        rfx_cpu_latency_release(h2);
        rfx_cpu_latency_release(h);
        rfx_cpu_latency_release(-1); /* ignored */
        cr_assert_eq(setresuid(65534, 65534, 65534), 0);
    }
    msg[0] = 0;
    cr_expect_eq(rfx_cpu_latency_hold(0, msg, sizeof msg), -EACCES);
    cr_expect(strstr(msg, "/dev/cpu_dma_latency") && strstr(msg, "root's"), "%s", msg);
    cr_expect_eq(rfx_cpu_latency_current(), -EACCES);
}

/* ---- the cgroup CPU limit, on trees made here ---- */

#include "cgroup.h"

#include <stdlib.h>
#include <sys/stat.h>

static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void mkdirs(const char *path)
{
    char p[512];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

/* A made-up system: ROOT/mountinfo, ROOT/cgroup, and the directory `leaf`
 * (relative to ROOT) with its parents. */
struct tree {
    char root[32];
    struct rfx_cgroup_files fs;
    char info[96], cg[96];
};

static void tree_make(struct tree *t, const char *leaf, const char *mountinfo, const char *cgroup)
{
    snprintf(t->root, sizeof t->root, "/tmp/rfx-cg-XXXXXX");
    cr_assert_not_null(mkdtemp(t->root));
    char d[512];
    snprintf(d, sizeof d, "%s/%s", t->root, leaf);
    mkdirs(d);
    put(t->root, "mountinfo", mountinfo);
    put(t->root, "cgroup", cgroup);
    snprintf(t->info, sizeof t->info, "%s/mountinfo", t->root);
    snprintf(t->cg, sizeof t->cg, "%s/cgroup", t->root);
    t->fs = (struct rfx_cgroup_files){t->root, t->info, t->cg, NULL};
}

/* Write `text` to ROOT/dir/name; the full directory into `full`. */
static void tree_put(const struct tree *t, const char *dir, const char *name, const char *text,
                     char *full, size_t len)
{
    snprintf(full, len, "%s/%s", t->root, dir);
    put(full, name, text);
}

static void tree_remove(const struct tree *t)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t->root);
    cr_expect_eq(system(cmd), 0);
}

/* cgroup v1: the process in /kubepods/pod1/ctr; the pod allows 1.5 CPUs,
 * the container 0.5, the root none: the tightest wins, and its cpu.stat. */
Test(cgroup, v1_takes_the_tightest_limit_on_the_way_up)
{
    struct tree t;
    tree_make(
        &t, "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr",
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n",
        "4:memory:/kubepods/pod1/ctr\n2:cpu,cpuacct:/kubepods/pod1/ctr\n0::/\n");
    char d[512];
    tree_put(&t, "sys/fs/cgroup/cpu,cpuacct", "cpu.cfs_quota_us", "-1\n", d, sizeof d);
    put(d, "cpu.cfs_period_us", "100000\n");
    tree_put(&t, "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1", "cpu.cfs_quota_us", "150000\n", d,
             sizeof d);
    put(d, "cpu.cfs_period_us", "100000\n");
    tree_put(&t, "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr", "cpu.cfs_quota_us", "50000\n", d,
             sizeof d);
    put(d, "cpu.cfs_period_us", "100000\n");
    put(d, "cpu.stat", "nr_periods 40\nnr_throttled 7\nthrottled_time 123000000\n");
    struct rfx_cpu_quota q;
    cr_assert_eq(rfx_cgroup_cpu_quota_from(&t.fs, &q), 0);
    cr_expect(q.found && !q.v2);
    cr_expect_float_eq(q.cpus, 0.5, 1e-9);
    cr_expect_eq(q.quota_us, 50000);
    cr_expect_eq(q.period_us, 100000);
    cr_expect_str_eq(q.where, d);
    struct rfx_cpu_throttle th;
    cr_assert_eq(rfx_cgroup_cpu_throttle_from(&q, &th), 0);
    cr_expect_eq(th.periods, 40);
    cr_expect_eq(th.throttled, 7);
    cr_expect_eq(th.throttled_ns, 123000000);
    /* The container's limit lifted: the pod's binds. */
    put(d, "cpu.cfs_quota_us", "-1\n");
    cr_assert_eq(rfx_cgroup_cpu_quota_from(&t.fs, &q), 0);
    cr_expect_float_eq(q.cpus, 1.5, 1e-9);
    tree_remove(&t);
}

/* cgroup v2 inside a container: the mount's root is the container's own
 * cgroup (a cgroup namespace shows "/"; without one the path carries the
 * prefix, which is stripped); "max" is no limit. */
Test(cgroup, v2_reads_cpu_max_and_strips_the_mount_root)
{
    struct tree t;
    tree_make(&t, "sys/fs/cgroup/app",
              "29 23 0:26 /docker/abc /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
              "0::/docker/abc/app\n");
    char d[512];
    tree_put(&t, "sys/fs/cgroup", "cpu.max", "max 100000\n", d, sizeof d);
    tree_put(&t, "sys/fs/cgroup/app", "cpu.max", "250000 100000\n", d, sizeof d);
    put(d, "cpu.stat", "usage_usec 5\nnr_periods 9\nnr_throttled 2\nthrottled_usec 1500\n");
    struct rfx_cpu_quota q;
    cr_assert_eq(rfx_cgroup_cpu_quota_from(&t.fs, &q), 0);
    cr_expect(q.found && q.v2);
    cr_expect_float_eq(q.cpus, 2.5, 1e-9);
    cr_expect_str_eq(q.where, d);
    struct rfx_cpu_throttle th;
    cr_assert_eq(rfx_cgroup_cpu_throttle_from(&q, &th), 0);
    cr_expect_eq(th.throttled, 2);
    cr_expect_eq(th.throttled_ns, 1500000);
    put(d, "cpu.max", "max 100000\n");
    cr_assert_eq(rfx_cgroup_cpu_quota_from(&t.fs, &q), 0);
    cr_expect_float_eq(q.cpus, 0.0, 1e-9, "no limit anywhere");
    /* No hierarchy at all. */
    put(t.root, "mountinfo", "31 23 0:28 / /proc rw - proc proc rw\n");
    cr_expect_eq(rfx_cgroup_cpu_quota_from(&t.fs, &q), -ENOENT);
    tree_remove(&t);
}

/* Memory room, cgroup v1: the container's limit less its usage, leaving out
 * inactive file pages (reclaimed before a kill), binds over MemAvailable;
 * v1's "no limit" (the page counter's maximum) is none. */
Test(cgroup, memory_room_is_the_least_of_meminfo_and_each_limit_up_the_tree)
{
    struct tree t;
    tree_make(&t, "sys/fs/cgroup/memory/docker/ctr",
              "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
              "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
              "4:memory:/docker/ctr\n2:cpu,cpuacct:/\n0::/\n");
    char d[512], info[600];
    tree_put(&t, "", "meminfo",
             "MemTotal: 16000000 kB\nMemFree: 1000 kB\nMemAvailable: 8000000 kB\n", info,
             sizeof info);
    strcat(info, "/meminfo");
    t.fs.meminfo = info;
    tree_put(&t, "sys/fs/cgroup/memory", "memory.limit_in_bytes", "9223372036854771712\n", d,
             sizeof d);
    tree_put(&t, "sys/fs/cgroup/memory/docker", "memory.limit_in_bytes", "9223372036854771712\n", d,
             sizeof d);
    tree_put(&t, "sys/fs/cgroup/memory/docker/ctr", "memory.limit_in_bytes", "536870912\n", d,
             sizeof d);
    put(d, "memory.usage_in_bytes", "300000000\n");
    put(d, "memory.stat",
        "cache 200000000\ntotal_cache 200000000\ntotal_inactive_file 100000000\n");
    struct rfx_memory_room m;
    cr_assert_eq(rfx_cgroup_memory_from(&t.fs, &m), 0);
    cr_expect_eq(m.available_bytes, 536870912u - 200000000u);
    cr_expect_eq(m.limit_bytes, 536870912u);
    char want[600];
    snprintf(want, sizeof want, "the cgroup %s", d);
    cr_expect_str_eq(m.where, want);
    /* The limit lifted: MemAvailable binds. */
    put(d, "memory.limit_in_bytes", "9223372036854771712\n");
    cr_assert_eq(rfx_cgroup_memory_from(&t.fs, &m), 0);
    cr_expect_eq(m.available_bytes, 8000000ull * 1024);
    cr_expect_eq(m.limit_bytes, 0u);
    snprintf(want, sizeof want, "MemAvailable in %s", info);
    cr_expect_str_eq(m.where, want);
    /* Usage over the limit leaves no room, not a wrapped-around one. */
    put(d, "memory.limit_in_bytes", "1000000\n");
    put(d, "memory.usage_in_bytes", "2000000\n");
    put(d, "memory.stat", "total_inactive_file 0\n");
    cr_assert_eq(rfx_cgroup_memory_from(&t.fs, &m), 0);
    cr_expect_eq(m.available_bytes, 0u);
    tree_remove(&t);
}

/* Memory room, cgroup v2: memory.max "max" at the container, a number on
 * its parent, which binds; no meminfo given. */
Test(cgroup, memory_room_v2_reads_memory_max_up_the_tree)
{
    struct tree t;
    tree_make(&t, "sys/fs/cgroup/kubepods/pod1/ctr",
              "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
              "0::/kubepods/pod1/ctr\n");
    char d[512];
    tree_put(&t, "sys/fs/cgroup/kubepods/pod1/ctr", "memory.max", "max\n", d, sizeof d);
    put(d, "memory.current", "50000000\n");
    tree_put(&t, "sys/fs/cgroup/kubepods/pod1", "memory.max", "268435456\n", d, sizeof d);
    put(d, "memory.current", "68435456\n");
    put(d, "memory.stat", "anon 60000000\ninactive_file 8435456\n");
    struct rfx_memory_room m;
    cr_assert_eq(rfx_cgroup_memory_from(&t.fs, &m), 0);
    cr_expect_eq(m.available_bytes, 268435456u - 60000000u);
    cr_expect_eq(m.limit_bytes, 268435456u);
    put(d, "memory.max", "max\n");
    cr_expect_eq(rfx_cgroup_memory_from(&t.fs, &m), -ENOENT, "no limit and no meminfo");
    tree_remove(&t);
}

/* This machine's own cgroup: whatever it holds, read without error. */
Test(cgroup, this_process)
{
    struct rfx_cpu_quota q;
    int rc = rfx_cpu_quota_read(&q);
    cr_expect(rc == 0 || rc == -ENOENT);
    if (rc == 0)
        cr_expect_geq(q.cpus, 0.0);
}
