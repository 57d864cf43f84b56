/*
 * The run's per-interval figures for summary.json (`*_by_interval`), kept
 * for the whole run in a bounded array. Each entry covers `per` consecutive
 * telemetry intervals, 1 to begin with; when the array is full, neighbouring
 * entries are merged pairwise and `per` doubles, so a run of any length is
 * covered from its first interval to its last at the finest step that fits.
 *
 * Merging: cache hits and lookups add up (the hit rate stays exact); the
 * end-to-end p99 and the degradation level take the worse of the two (an
 * entry's p99 is the highest of its intervals' p99s, its level the highest
 * level any of them ended at); the planners' frequency and the memory
 * figures are those at the entry's end (0 memory: unknown, keeps the
 * earlier figure).
 *
 * Ownership: the caller owns the storage. Thread-safety: none (the
 * telemetry reporter only).
 */
#ifndef REFLEX_IV_SERIES_H
#define REFLEX_IV_SERIES_H

#include <stdint.h>

struct rfx_iv_point {
    uint64_t hits, lookups; /* cache L1 + L2 hits, and all lookups */
    double hz;              /* planners' frequency at the end */
    int64_t e2e_p99_ns;     /* -1: no frames */
    uint64_t rss, resident, allocated; /* bytes at the end; 0: unknown */
    int level;                         /* enum rfx_level at the end */
};

struct rfx_iv_series {
    struct rfx_iv_point *p;
    int cap;            /* entries p holds: even, >= 2 */
    int n;              /* entries in use */
    uint64_t per;       /* intervals an entry covers (the last: up to this many) */
    uint64_t last;      /* intervals in the last entry */
    uint64_t intervals; /* added in all */
};

void rfx_iv_series_init(struct rfx_iv_series *s, struct rfx_iv_point *storage, int cap);
/* One more interval's figures. */
void rfx_iv_series_add(struct rfx_iv_series *s, const struct rfx_iv_point *x);

#endif
