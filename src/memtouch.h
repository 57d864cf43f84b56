/*
 * Page faults off the hot path. Memory from calloc (or jemalloc's fresh
 * extents) is often not mapped yet: the first access faults, and a read
 * maps the shared zero page, so a later write faults again and flushes
 * the TLB of every core running the process (an IPI to each critical core).
 * Writing each page once, where the memory is made, maps it for good.
 */
#ifndef REFLEX_MEMTOUCH_H
#define REFLEX_MEMTOUCH_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Write a zero into every page of [p, p + n), which must already be zero
 * (fresh from calloc or memset), so its contents do not change. */
static inline void rfx_touch_zeroed(void *p, size_t n)
{
    volatile char *c = p;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i += 4096)
        c[i] = 0;
    c[n - 1] = 0;
}

/*
 * Map every page of [p, p + n) writable without changing a byte
 * (MADV_POPULATE_WRITE), so it may run while other threads write there.
 * 0, or a negative errno (-EINVAL before Linux 5.14: nothing is done).
 */
static inline int rfx_populate_write(const void *p, size_t n)
{
    if (n == 0)
        return 0;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
    uintptr_t b = ((uintptr_t)p + n + 4095) & ~(uintptr_t)4095;
    return madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0 ? 0 : -errno;
}

#endif
