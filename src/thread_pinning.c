/*
 * Thread placement: pinning with clear refusals, names visible to perf/top,
 * priorities with a permitted fallback, mlockall, the CPU latency request.
 */
#include <reflex/thread.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static void say(char *msg, size_t msglen, const char *fmt, ...)
{
    if (!msg || msglen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

/* Parse a kernel CPU list ("0-3,5,7-8") into set; returns the highest id + 1, or -1. */
static int parse_cpulist(const char *path, cpu_set_t *set, char *text, size_t textlen)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char buf[4096];
    char *ok = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = 0;
    if (text && textlen) {
        size_t k = strlen(buf) < textlen - 1 ? strlen(buf) : textlen - 1;
        memcpy(text, buf, k);
        text[k] = 0;
    }
    CPU_ZERO(set);
    int top = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long a = strtol(tok, &end, 10), b = a;
        if (*end == '-')
            b = strtol(end + 1, &end, 10);
        if (a < 0 || b < a || b >= CPU_SETSIZE)
            return -1;
        for (long c = a; c <= b; c++)
            CPU_SET((int)c, set);
        if (b + 1 > top)
            top = (int)b + 1;
    }
    return top;
}

int rfx_cpu_online_count(void)
{
    cpu_set_t set;
    if (parse_cpulist("/sys/devices/system/cpu/online", &set, NULL, 0) < 0)
        return (int)sysconf(_SC_NPROCESSORS_ONLN);
    return CPU_COUNT(&set);
}

/* The online CPUs (and their list as text, when `text`): the kernel's
 * list, or 0..N-1 by sysconf where it cannot be read. */
static void online_set(cpu_set_t *set, char *text, size_t textlen)
{
    if (parse_cpulist("/sys/devices/system/cpu/online", set, text, textlen) >= 0)
        return;
    CPU_ZERO(set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n && c < CPU_SETSIZE; c++)
        CPU_SET((int)c, set);
    if (text && textlen)
        snprintf(text, textlen, "0-%ld", n - 1);
}

/* Online CPUs in the calling thread's mask (every online one when the
 * mask cannot be read; CPU 0 when nothing can be read at all). */
static void usable_set(cpu_set_t *both)
{
    cpu_set_t online, mine;
    online_set(&online, NULL, 0);
    if (sched_getaffinity(0, sizeof mine, &mine) == 0)
        CPU_AND(both, &online, &mine);
    else
        CPU_ZERO(both);
    if (CPU_COUNT(both) == 0)
        CPU_OR(both, &online, &online);
    if (CPU_COUNT(both) == 0)
        CPU_SET(0, both);
}

int rfx_cpu_usable(int *cpus, int max)
{
    cpu_set_t set;
    usable_set(&set);
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            if (n < max)
                cpus[n] = c;
            n++;
        }
    return n;
}

const char *rfx_cpu_usable_list(char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    cpu_set_t set;
    usable_set(&set);
    size_t at = 0;
    buf[0] = 0;
    for (int c = 0; c < CPU_SETSIZE && at < len; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        int last = c;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set))
            last++;
        int w = last > c ? snprintf(buf + at, len - at, "%s%d-%d", at ? "," : "", c, last)
                         : snprintf(buf + at, len - at, "%s%d", at ? "," : "", c);
        at = w < 0 || (size_t)w >= len - at ? len : at + (size_t)w;
        c = last;
    }
    return buf;
}

int rfx_cpu_possible_count(void)
{
    cpu_set_t set;
    int top = parse_cpulist("/sys/devices/system/cpu/possible", &set, NULL, 0);
    return top > 0 ? top : (int)sysconf(_SC_NPROCESSORS_CONF);
}

int rfx_core_check(int core, char *msg, size_t msglen)
{
    cpu_set_t online;
    char list[256] = "?";
    online_set(&online, list, sizeof list);
    int possible = rfx_cpu_possible_count();
    if (core < 0 || core >= possible || core >= CPU_SETSIZE) {
        say(msg, msglen, "core %d is out of range: this machine has cores 0-%d (online: %s)", core,
            possible - 1, list);
        return -ERANGE;
    }
    if (!CPU_ISSET(core, &online)) {
        say(msg, msglen, "core %d is offline (online: %s)", core, list);
        return -ENODEV;
    }
    /* Whether a cgroup cpuset allows it is the kernel's call, made when
     * pinning: the calling thread's own mask says nothing about other cores. */
    return 0;
}

int rfx_thread_pin_self(int core, char *msg, size_t msglen)
{
    int rc = rfx_core_check(core, msg, msglen);
    if (rc < 0)
        return rc;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc == EINVAL) {
        say(msg, msglen,
            "core %d is not in this process's allowed CPU set (cgroup cpuset or taskset)", core);
        return -ENODEV;
    }
    if (rc != 0) {
        say(msg, msglen, "cannot pin to core %d: %s", core, strerror(rc));
        return -rc;
    }
    return 0;
}

int rfx_thread_name_self(const char *name)
{
    if (!name || !*name)
        return -EINVAL;
    char full[16]; /* the kernel keeps 15 bytes and a NUL */
    snprintf(full, sizeof full, "rfx-%s", name);
    int rc = pthread_setname_np(pthread_self(), full);
    return rc ? -rc : 0;
}

int rfx_thread_idle_self(void)
{
    /* A new thread runs with its creator's policy, and the scheduler may
     * have picked it ahead of a critical thread that woke on the same
     * core. Changing the policy does not make it pick again: the critical
     * thread waited until the next scheduling point, behind the reporter's
     * start-up work (1.5-1.9 ms on 2 CPUs; frame 0 was that late in 34
     * of 256 starts, docs/benchmarks.md). The yield hands the core over. */
    struct sched_param idle = {.sched_priority = 0};
    int rc = 0;
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0) {
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
        rc = 1;
    }
    sched_yield();
    return rc;
}

int rfx_priority_parse(const char *s, struct rfx_priority *out)
{
    if (!s || !out)
        return -EINVAL;
    if (strcmp(s, "normal") == 0) {
        out->kind = RFX_PRIO_NORMAL;
        out->value = 0;
        return 0;
    }
    enum rfx_prio_kind kind;
    long lo, hi;
    const char *num;
    if (strncmp(s, "nice:", 5) == 0) {
        kind = RFX_PRIO_NICE, lo = -20, hi = 19, num = s + 5;
    } else if (strncmp(s, "fifo:", 5) == 0) {
        kind = RFX_PRIO_FIFO, lo = 1, hi = 99, num = s + 5;
    } else {
        return -EINVAL;
    }
    if (!(*num == '-' || (*num >= '0' && *num <= '9')))
        return -EINVAL;
    char *end;
    errno = 0;
    long v = strtol(num, &end, 10);
    if (errno || end == num || *end || v < lo || v > hi)
        return -EINVAL;
    out->kind = kind;
    out->value = (int)v;
    return 0;
}

const char *rfx_priority_format(const struct rfx_priority *p, char *buf, size_t len)
{
    if (!buf || len == 0)
        return buf;
    if (!p || p->kind == RFX_PRIO_NORMAL)
        snprintf(buf, len, "normal");
    else
        snprintf(buf, len, "%s:%d", p->kind == RFX_PRIO_FIFO ? "fifo" : "nice", p->value);
    return buf;
}

static int set_nice(int value)
{
    /* Linux applies setpriority to one thread when given its thread id. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), value) != 0)
        return -errno;
    return 0;
}

int rfx_thread_priority_self(const struct rfx_priority *prio, char *msg, size_t msglen)
{
    if (!prio)
        return -EINVAL;
    struct sched_param sp = {0};
    int rc;
    switch (prio->kind) {
    case RFX_PRIO_NORMAL:
        rc = pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
        return rc ? -rc : 0;
    case RFX_PRIO_NICE:
        if (prio->value < -20 || prio->value > 19)
            return -EINVAL;
        rc = set_nice(prio->value);
        if (rc == -EPERM || rc == -EACCES) {
            say(msg, msglen,
                "nice:%d not permitted (needs CAP_SYS_NICE); running at normal priority",
                prio->value);
            return 1;
        }
        return rc;
    case RFX_PRIO_FIFO:
        if (prio->value < 1 || prio->value > 99)
            return -EINVAL;
        sp.sched_priority = prio->value;
        rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
        if (rc == EPERM) {
            say(msg, msglen,
                "fifo:%d not permitted (needs CAP_SYS_NICE or RLIMIT_RTPRIO >= %d); running at "
                "normal priority",
                prio->value, prio->value);
            sp.sched_priority = 0;
            pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
            return 1;
        }
        return rc ? -rc : 0;
    }
    return -EINVAL;
}

int rfx_memory_lock(char *msg, size_t msglen)
{
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        int e = errno;
        struct rlimit rl = {0};
        getrlimit(RLIMIT_MEMLOCK, &rl);
        say(msg, msglen, "mlockall failed: %s (RLIMIT_MEMLOCK %llu bytes)", strerror(e),
            (unsigned long long)rl.rlim_cur);
        return -e;
    }
    return 0;
}

#define CPU_LATENCY_DEV "/dev/cpu_dma_latency"

int rfx_cpu_latency_hold(unsigned us, char *msg, size_t msglen)
{
    if (us > INT32_MAX) {
        say(msg, msglen, "CPU latency %u us is out of range", us);
        return -ERANGE;
    }
    int fd = open(CPU_LATENCY_DEV, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        say(msg, msglen, "cannot open %s: %s%s", CPU_LATENCY_DEV, strerror(e),
            e == EACCES || e == EPERM ? " (it is root's)" : "");
        return -e;
    }
    /* The kernel takes the request as a binary s32 (it also parses text,
     * but only the binary form is the same on every kernel). */
    int32_t v = (int32_t)us;
    if (write(fd, &v, sizeof v) != (ssize_t)sizeof v) {
        int e = errno ? errno : EIO;
        say(msg, msglen, "cannot write %s: %s", CPU_LATENCY_DEV, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

void rfx_cpu_latency_release(int handle)
{
    if (handle >= 0)
        close(handle);
}

long long rfx_cpu_latency_current(void)
{
    int fd = open(CPU_LATENCY_DEV, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int32_t v;
    ssize_t n = read(fd, &v, sizeof v);
    int e = errno;
    close(fd);
    if (n != (ssize_t)sizeof v)
        return n < 0 ? -e : -EIO;
    return v;
}
