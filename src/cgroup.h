/* Internal: the cgroup readers behind rfx_cpu_quota_read and the frame
 * pool's memory check, with the files they read named, so that tests can
 * give them a tree of their own. */
#ifndef REFLEX_CGROUP_H
#define REFLEX_CGROUP_H

#include <reflex/thread.h>

#include <limits.h>
#include <stdint.h>

struct rfx_cgroup_files {
    const char *prefix;    /* prepended to the mount point ("" for the real one) */
    const char *mountinfo; /* /proc/self/mountinfo */
    const char *cgroup;    /* /proc/self/cgroup */
    const char *meminfo;   /* /proc/meminfo (NULL: not read) */
};

/* How much more memory this process can have before the kernel reclaims
 * or kills: the least of MemAvailable and, at each level of its memory
 * cgroup (v1 or v2) from its own up, the limit less what is in use. */
struct rfx_memory_room {
    uint64_t available_bytes;  /* UINT64_MAX: nothing could be read */
    uint64_t limit_bytes;      /* the binding cgroup's limit; 0: MemAvailable binds */
    char where[PATH_MAX + 16]; /* "MemAvailable in /proc/meminfo" or "the cgroup DIR" */
};

int rfx_cgroup_memory_from(const struct rfx_cgroup_files *fs, struct rfx_memory_room *m);
int rfx_memory_room_read(struct rfx_memory_room *m);

int rfx_cgroup_cpu_quota_from(const struct rfx_cgroup_files *fs, struct rfx_cpu_quota *q);
int rfx_cgroup_cpu_throttle_from(const struct rfx_cpu_quota *q, struct rfx_cpu_throttle *t);

#endif
