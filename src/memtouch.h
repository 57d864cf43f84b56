/*
 * Page faults off the hot path. Memory from calloc (or jemalloc's fresh
 * extents) is often not mapped yet: the first access faults, and a read
 * maps the shared zero page, so a later write faults again and flushes
 * the TLB of every core running the process (an IPI to each critical core).
 * Writing each page once, where the memory is made, maps it for good.
 */
#ifndef REFLEX_MEMTOUCH_H
#define REFLEX_MEMTOUCH_H

#include <stddef.h>

/* Write a zero into every page of [p, p + n), which must already be zero
 * (fresh from calloc or memset), so its contents do not change. */
static inline void rfx_touch_zeroed(void *p, size_t n)
{
    /* volatile orders nothing here (one thread, before anyone else sees the
     * memory): it keeps the stores, which the compiler may otherwise drop as
     * writing what calloc already made zero. */
    volatile char *c = p;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i += 4096)
        c[i] = 0;
    c[n - 1] = 0;
}

#endif
