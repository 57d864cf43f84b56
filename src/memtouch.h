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
#include <string.h>

/* Write a zero into every page of [p, p + n), which must already be zero
 * (fresh from calloc or memset), so its contents do not change.
 * explicit_bzero, because the compiler may drop a plain store of a zero it
 * knows calloc already put there. */
static inline void rfx_touch_zeroed(void *p, size_t n)
{
    char *c = p;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i += 4096)
        explicit_bzero(c + i, 1);
    explicit_bzero(c + n - 1, 1);
}

#endif
