/*
 * The CPU bandwidth limit of this process's cgroup (a container's --cpus, a
 * Kubernetes CPU limit) and how often the kernel throttled it. A process
 * over its quota is stopped, every thread of it, for the rest of the
 * period (100 ms by default): a spinning critical thread uses a whole CPU
 * of quota by itself.
 *
 * Both cgroup versions: v1's cpu controller (cpu.cfs_quota_us,
 * cpu.cfs_period_us, cpu.stat's throttled_time in ns) and v2's unified
 * hierarchy (cpu.max "QUOTA PERIOD" or "max PERIOD", cpu.stat's
 * throttled_usec). The process's cgroup comes from /proc/self/cgroup, the
 * hierarchy's mount from /proc/self/mountinfo; every level from the
 * process's cgroup up to the mount's root is read and the tightest limit
 * wins, since a parent's limit binds its children too.
 */
#include "cgroup.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dst = src, whole or not at all. */
static bool copy_path(char *dst, size_t len, const char *src)
{
    int n = snprintf(dst, len, "%s", src);
    if (n >= 0 && (size_t)n < len)
        return true;
    dst[0] = 0;
    return false;
}

/* Is `tok` one of the comma-separated words of `list`? */
static bool has_word(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, tok, n))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* Call `match` on each line of `file` (newline removed) until it says yes. */
static bool each_line(const char *file, bool (*match)(char *line, void *arg), void *arg)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        found = match(line, arg);
    }
    fclose(f);
    return found;
}

struct want {
    bool v2;
    const char *controller; /* v1's: "cpu" or "memory" */
    char *a, *b;            /* out: path; or the mount's root and point */
    size_t len;
};

/* A /proc/self/cgroup line "ID:CONTROLLERS:PATH" of the hierarchy wanted:
 * v1's with the controller among its controllers, or v2's "0::PATH". */
static bool path_line(char *line, void *arg)
{
    struct want *w = arg;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
        return false;
    *c1 = *c2 = 0;
    const char *controllers = c1 + 1;
    if (w->v2 ? (strcmp(line, "0") != 0 || *controllers) : !has_word(controllers, w->controller))
        return false;
    return copy_path(w->a, w->len, c2 + 1);
}

/* A /proc/self/mountinfo line "ID PARENT DEV ROOT POINT OPTS... - FSTYPE
 * SOURCE SUPEROPTS" mounting the hierarchy wanted. */
static bool mount_line(char *line, void *arg)
{
    struct want *w = arg;
    char *dash = strstr(line, " - ");
    if (!dash)
        return false;
    *dash = 0;
    char fstype[64] = "", opts[1024] = "", r[PATH_MAX], p[PATH_MAX];
    if (sscanf(dash + 3, "%63s %*s %1023s", fstype, opts) < 1 ||
        sscanf(line, "%*s %*s %*s %4095s %4095s", r, p) != 2)
        return false;
    if (w->v2 ? strcmp(fstype, "cgroup2") != 0
              : (strcmp(fstype, "cgroup") != 0 || !has_word(opts, w->controller)))
        return false;
    return copy_path(w->a, w->len, r) && copy_path(w->b, w->len, p);
}

/* The directory of the process's cgroup, and the mount point above which
 * the walk stops. The kernel escapes spaces in mountinfo as \040; cgroup
 * mounts have none in practice, so paths are taken as they are. */
static bool cgroup_dir(const struct rfx_cgroup_files *fs, bool v2, const char *controller,
                       char *dir, char *top, size_t len)
{
    char path[PATH_MAX], root[PATH_MAX], point[PATH_MAX];
    struct want in_cgroup = {v2, controller, path, NULL, sizeof path},
                mount = {v2, controller, root, point, sizeof root};
    if (!each_line(fs->cgroup, path_line, &in_cgroup) ||
        !each_line(fs->mountinfo, mount_line, &mount))
        return false;
    /* Inside a cgroup namespace or a container, the mount's root is the
     * process's own cgroup (or above it): strip that prefix. */
    const char *rel = path;
    size_t rl = strlen(root);
    if (strcmp(root, "/") != 0 && !strncmp(path, root, rl) && (path[rl] == '/' || !path[rl]))
        rel = path + rl;
    snprintf(top, len, "%s%s", fs->prefix, point);
    int n = snprintf(dir, len, "%s%s", top, strcmp(rel, "/") ? rel : "");
    return n > 0 && (size_t)n < len;
}

/* One level's limit in CPUs (0: none or unreadable). */
static double level_limit(const char *dir, bool v2, long *quota, long *period)
{
    char file[PATH_MAX + 32];
    long q = -1, p = 0;
    if (v2) {
        snprintf(file, sizeof file, "%s/cpu.max", dir);
        FILE *f = fopen(file, "re");
        if (!f)
            return 0;
        char qs[32] = "";
        if (fscanf(f, "%31s %ld", qs, &p) != 2 || !strcmp(qs, "max"))
            q = -1;
        else
            q = strtol(qs, NULL, 10);
        fclose(f);
    } else {
        snprintf(file, sizeof file, "%s/cpu.cfs_quota_us", dir);
        FILE *f = fopen(file, "re");
        if (!f)
            return 0;
        if (fscanf(f, "%ld", &q) != 1)
            q = -1;
        fclose(f);
        snprintf(file, sizeof file, "%s/cpu.cfs_period_us", dir);
        if ((f = fopen(file, "re")) != NULL) {
            if (fscanf(f, "%ld", &p) != 1)
                p = 0;
            fclose(f);
        }
    }
    if (q <= 0 || p <= 0)
        return 0;
    *quota = q;
    *period = p;
    return (double)q / (double)p;
}

/* The tightest limit in one hierarchy; false when it is not mounted. */
static bool quota_in(const struct rfx_cgroup_files *fs, bool v2, struct rfx_cpu_quota *q)
{
    memset(q, 0, sizeof *q);
    char dir[PATH_MAX], top[PATH_MAX];
    if (!cgroup_dir(fs, v2, "cpu", dir, top, sizeof dir))
        return false;
    if (!copy_path(q->stat_dir, sizeof q->stat_dir, dir))
        return false;
    q->found = true;
    q->v2 = v2;
    size_t tl = strlen(top);
    for (;;) {
        long quota = 0, period = 0;
        double cpus = level_limit(dir, v2, &quota, &period);
        /* dir is a prefix of stat_dir here, so it fits both fields */
        if (cpus > 0 && (q->cpus == 0 || cpus < q->cpus) &&
            copy_path(q->where, sizeof q->where, dir) &&
            copy_path(q->stat_dir, sizeof q->stat_dir, dir)) {
            q->cpus = cpus;
            q->quota_us = quota;
            q->period_us = period;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < tl)
            break;
        *slash = 0;
    }
    return true;
}

int rfx_cgroup_cpu_quota_from(const struct rfx_cgroup_files *fs, struct rfx_cpu_quota *q)
{
    /* v1's cpu controller where it is mounted; else, or when it sets no
     * limit, the unified hierarchy (where a limit may live instead). */
    struct rfx_cpu_quota v1;
    bool have_v1 = quota_in(fs, false, &v1);
    if (have_v1 && v1.cpus > 0) {
        *q = v1;
        return 0;
    }
    if (quota_in(fs, true, q) && (q->cpus > 0 || !have_v1))
        return 0;
    if (have_v1) {
        *q = v1;
        return 0;
    }
    memset(q, 0, sizeof *q);
    return -ENOENT;
}

int rfx_cgroup_cpu_throttle_from(const struct rfx_cpu_quota *q, struct rfx_cpu_throttle *t)
{
    memset(t, 0, sizeof *t);
    if (!q->found)
        return -ENOENT;
    char file[PATH_MAX + 32];
    snprintf(file, sizeof file, "%s/cpu.stat", q->stat_dir);
    FILE *f = fopen(file, "re");
    if (!f)
        return -ENOENT;
    char key[64];
    unsigned long long v;
    int seen = 0;
    while (fscanf(f, "%63s %llu", key, &v) == 2) {
        if (!strcmp(key, "nr_periods"))
            t->periods = v, seen++;
        else if (!strcmp(key, "nr_throttled"))
            t->throttled = v, seen++;
        else if (!strcmp(key, "throttled_time")) /* v1: ns */
            t->throttled_ns = v, seen++;
        else if (!strcmp(key, "throttled_usec")) /* v2 */
            t->throttled_ns = v * 1000, seen++;
    }
    fclose(f);
    return seen ? 0 : -ENOENT;
}

/* The first number in `file` after `key` (a "key value" line; key NULL:
 * the file's first word), or -1. "max" (v2: no limit) reads as -1 too. */
static long long read_num(const char *dir, const char *name, const char *key)
{
    char file[PATH_MAX + 32];
    snprintf(file, sizeof file, "%s/%s", dir, name);
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    char k[64], v[32];
    long long out = -1;
    if (!key) {
        if (fscanf(f, "%31s", v) == 1 && strcmp(v, "max") != 0)
            out = strtoll(v, NULL, 10);
    } else {
        while (fscanf(f, "%63s %31s", k, v) == 2)
            if (!strcmp(k, key)) {
                out = strtoll(v, NULL, 10);
                break;
            }
    }
    fclose(f);
    return out;
}

/* v1's "no limit" is the page counter's maximum rounded to a page
 * (9223372036854771712 on x86-64), not -1. */
#define NO_LIMIT (1LL << 62)

/* The least room in one hierarchy's levels, from the process's cgroup up:
 * limit minus usage, where usage leaves out the inactive file pages the
 * kernel reclaims before it would kill (as `docker stats` counts it). */
static void memory_in(const struct rfx_cgroup_files *fs, bool v2, struct rfx_memory_room *m)
{
    char dir[PATH_MAX], top[PATH_MAX];
    if (!cgroup_dir(fs, v2, "memory", dir, top, sizeof dir))
        return;
    size_t tl = strlen(top);
    for (;;) {
        long long limit = read_num(dir, v2 ? "memory.max" : "memory.limit_in_bytes", NULL);
        if (limit >= 0 && limit < NO_LIMIT) {
            long long used = read_num(dir, v2 ? "memory.current" : "memory.usage_in_bytes", NULL);
            long long inactive =
                read_num(dir, "memory.stat", v2 ? "inactive_file" : "total_inactive_file");
            if (used < 0)
                used = 0;
            if (inactive > 0 && inactive <= used)
                used -= inactive;
            uint64_t room = limit > used ? (uint64_t)(limit - used) : 0;
            if (room < m->available_bytes) {
                m->available_bytes = room;
                m->limit_bytes = (uint64_t)limit;
                snprintf(m->where, sizeof m->where, "the cgroup %s", dir);
            }
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < tl)
            break;
        *slash = 0;
    }
}

int rfx_cgroup_memory_from(const struct rfx_cgroup_files *fs, struct rfx_memory_room *m)
{
    memset(m, 0, sizeof *m);
    m->available_bytes = UINT64_MAX;
    FILE *f = fs->meminfo ? fopen(fs->meminfo, "re") : NULL;
    if (f) {
        char key[64];
        unsigned long long kb;
        while (fscanf(f, "%63s %llu kB", key, &kb) == 2)
            if (!strcmp(key, "MemAvailable:")) {
                m->available_bytes = kb * 1024;
                snprintf(m->where, sizeof m->where, "MemAvailable in %s", fs->meminfo);
                break;
            }
        fclose(f);
    }
    memory_in(fs, false, m);
    memory_in(fs, true, m);
    return m->available_bytes == UINT64_MAX ? -ENOENT : 0;
}

static const struct rfx_cgroup_files proc_files = {"", "/proc/self/mountinfo", "/proc/self/cgroup",
                                                   "/proc/meminfo"};

int rfx_cpu_quota_read(struct rfx_cpu_quota *q)
{
    if (!q)
        return -EINVAL;
    return rfx_cgroup_cpu_quota_from(&proc_files, q);
}

int rfx_cpu_throttle_read(const struct rfx_cpu_quota *q, struct rfx_cpu_throttle *t)
{
    if (!q || !t)
        return -EINVAL;
    return rfx_cgroup_cpu_throttle_from(q, t);
}

int rfx_memory_room_read(struct rfx_memory_room *m)
{
    if (!m)
        return -EINVAL;
    return rfx_cgroup_memory_from(&proc_files, m);
}
