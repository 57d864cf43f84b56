/*
 * reflex — placing the calling thread: core pinning, name, priority, memory
 * locking; and how fast idle CPUs must be able to wake (CPU latency QoS).
 *
 * Every function acts on the calling thread (the engine calls them at the top
 * of each thread it starts) and is thread-safe. Functions that can explain a
 * refusal take an optional message buffer `msg` of `msglen` bytes (NULL is
 * allowed) and write a one-line, human-readable reason into it.
 */
#ifndef REFLEX_THREAD_H
#define REFLEX_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <reflex/api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum rfx_prio_kind {
    RFX_PRIO_NORMAL = 0, /* SCHED_OTHER, nice unchanged */
    RFX_PRIO_NICE = 1,   /* SCHED_OTHER with nice value (-20 .. 19) */
    RFX_PRIO_FIFO = 2,   /* SCHED_FIFO with priority (1 .. 99) */
};

struct rfx_priority {
    enum rfx_prio_kind kind;
    int value; /* nice value or FIFO priority; 0 for normal */
};

/* Parse "normal", "nice:N" (-20..19) or "fifo:N" (1..99). Returns 0 or -EINVAL. */
RFX_API int rfx_priority_parse(const char *s, struct rfx_priority *out);

/* The inverse: "normal", "nice:N" or "fifo:N" into buf (NUL-terminated,
 * truncated to len); returns buf. */
RFX_API const char *rfx_priority_format(const struct rfx_priority *p, char *buf, size_t len);

/* Number of online CPUs, and the highest CPU id the kernel could ever use + 1. */
RFX_API int rfx_cpu_online_count(void);
RFX_API int rfx_cpu_possible_count(void);

/*
 * The CPUs the calling thread may run on: online and in its affinity mask,
 * which `taskset` or a cgroup cpuset (a container's --cpuset-cpus) narrows.
 * Writes up to `max` ids into cpus[] in ascending order and returns how
 * many there are in all (>= 1; when the mask cannot be read, every online
 * CPU). The engine lays out its threads on these when the config names no
 * cores.
 */
RFX_API int rfx_cpu_usable(int *cpus, int max);

/* The same CPUs as a kernel CPU list ("0-3,6") in buf (NUL-terminated,
 * truncated to len); returns buf. */
RFX_API const char *rfx_cpu_usable_list(char *buf, size_t len);

/*
 * The CPU bandwidth limit of this process's cgroup: a container's `--cpus`,
 * a Kubernetes CPU limit (cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us,
 * or v2 cpu.max), the tightest of the process's cgroup and its ancestors.
 * Once the process has used `quota_us` of CPU time in a period, the kernel
 * stops every thread of it until the period ends: a thread that spins uses
 * one CPU of quota by itself.
 */
struct rfx_cpu_quota {
    bool found;  /* a cgroup hierarchy with the cpu controller was read */
    bool v2;     /* ... the unified one */
    double cpus; /* quota / period; 0: no limit */
    long quota_us, period_us;
    char where[256];    /* the cgroup directory that sets it */
    char stat_dir[256]; /* the one whose cpu.stat counts the throttling */
};

/* How often the kernel throttled that cgroup (cpu.stat): counters since it
 * was created; take differences. */
struct rfx_cpu_throttle {
    uint64_t periods;      /* enforcement periods that had runnable threads */
    uint64_t throttled;    /* ... in which the quota ran out */
    uint64_t throttled_ns; /* total time throttled */
};

/* Returns 0 (q->cpus 0 when there is no limit), or -ENOENT when no cgroup
 * hierarchy with the cpu controller can be read. Any thread. */
RFX_API int rfx_cpu_quota_read(struct rfx_cpu_quota *q);
/* Returns 0, or -ENOENT when the cgroup has no readable cpu.stat. */
RFX_API int rfx_cpu_throttle_read(const struct rfx_cpu_quota *q, struct rfx_cpu_throttle *t);

/*
 * Is `core` usable for pinning? Returns 0; -ERANGE when it is negative or past
 * the highest CPU id of this machine; -ENODEV when it exists but is offline.
 * msg names the core and what exists. (Whether a cgroup cpuset admits it is
 * known only when pinning: rfx_thread_pin_self reports that as -ENODEV.)
 */
RFX_API int rfx_core_check(int core, char *msg, size_t msglen);

/* Pin the calling thread to `core`. Same errors as rfx_core_check, or another
 * negative errno from sched_setaffinity. */
RFX_API int rfx_thread_pin_self(int core, char *msg, size_t msglen);

/* Name the calling thread "rfx-<name>" (truncated to the kernel's 15 bytes),
 * as perf, top and /proc show it. Returns 0 or -EINVAL (null or empty name). */
RFX_API int rfx_thread_name_self(const char *name);

/* Make the calling thread an off-path one: SCHED_IDLE, so that any critical
 * thread that wakes preempts it at once; nice 19 where SCHED_IDLE is refused.
 * Then it yields, so that a thread runnable on its CPU that the new one
 * started ahead of runs now. Call it first thing in the thread. Returns 0,
 * or 1 when it fell back to nice 19. */
RFX_API int rfx_thread_idle_self(void);

/*
 * Apply a priority to the calling thread. Returns 0 when applied; 1 when FIFO
 * (or a negative nice) was not permitted and the thread fell back to normal
 * scheduling, with a warning in msg; -EINVAL for a bad priority; another
 * negative errno on other failures.
 */
RFX_API int rfx_thread_priority_self(const struct rfx_priority *prio, char *msg, size_t msglen);

/* Lock all current and future pages (mlockall). Returns 0, or a negative errno
 * with the reason (e.g. RLIMIT_MEMLOCK too small) in msg. */
RFX_API int rfx_memory_lock(char *msg, size_t msglen);

/*
 * Ask the kernel to keep every CPU able to wake within `us` microseconds
 * (the PM QoS CPU latency request, /dev/cpu_dma_latency). With 0, an idle CPU
 * polls instead of halting, so a thread woken on it runs at once; on a
 * virtual machine a halted vCPU is handed back to the host, which can take
 * milliseconds to run it again. The cost is an idle CPU that keeps running.
 * Unlike the other functions here it is process-wide, not per thread.
 *
 * Returns a handle (>= 0) that holds the request until
 * rfx_cpu_latency_release or the end of the process, whichever comes first
 * (the kernel drops it when the process exits, however it exits); or a
 * negative errno with the reason in msg (usually -EACCES: the device is
 * root's). Thread-safe.
 */
RFX_API int rfx_cpu_latency_hold(unsigned us, char *msg, size_t msglen);

/* Drop a request of rfx_cpu_latency_hold; a negative handle is ignored. */
RFX_API void rfx_cpu_latency_release(int handle);

/* The machine's current CPU latency limit in microseconds, the strictest
 * request any process holds (2000000000 when none does); a negative errno if
 * it cannot be read. */
RFX_API long long rfx_cpu_latency_current(void);

#ifdef __cplusplus
}
#endif
#endif
