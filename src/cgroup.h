/* Internal: the cgroup readers behind rfx_cpu_quota_read, with the files
 * they read named, so that tests can give them a tree of their own. */
#ifndef REFLEX_CGROUP_H
#define REFLEX_CGROUP_H

#include <reflex/thread.h>

struct rfx_cgroup_files {
    const char *prefix;    /* prepended to the mount point ("" for the real one) */
    const char *mountinfo; /* /proc/self/mountinfo */
    const char *cgroup;    /* /proc/self/cgroup */
};

int rfx_cgroup_cpu_quota_from(const struct rfx_cgroup_files *fs, struct rfx_cpu_quota *q);
int rfx_cgroup_cpu_throttle_from(const struct rfx_cpu_quota *q, struct rfx_cpu_throttle *t);

#endif
