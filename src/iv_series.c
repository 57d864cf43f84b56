/* The run's per-interval figures, coarsened to fit (iv_series.h). */
#include "iv_series.h"

void rfx_iv_series_init(struct rfx_iv_series *s, struct rfx_iv_point *storage, int cap)
{
    *s = (struct rfx_iv_series){.p = storage, .cap = cap & ~1, .per = 1};
}

/* b, the later span, into a. */
static void merge(struct rfx_iv_point *a, const struct rfx_iv_point *b)
{
    a->hits += b->hits;
    a->lookups += b->lookups;
    a->hz = b->hz;
    a->e2e_p99_ns = b->e2e_p99_ns > a->e2e_p99_ns ? b->e2e_p99_ns : a->e2e_p99_ns;
    a->rss = b->rss ? b->rss : a->rss;
    a->resident = b->resident ? b->resident : a->resident;
    a->allocated = b->allocated ? b->allocated : a->allocated;
    a->level = b->level > a->level ? b->level : a->level;
}

void rfx_iv_series_add(struct rfx_iv_series *s, const struct rfx_iv_point *x)
{
    s->intervals++;
    if (s->n > 0 && s->last < s->per) { /* the last entry has room */
        merge(&s->p[s->n - 1], x);
        s->last++;
        return;
    }
    if (s->n == s->cap) { /* every entry full: halve the resolution */
        for (int i = 0; i < s->cap / 2; i++) {
            s->p[i] = s->p[2 * i];
            merge(&s->p[i], &s->p[2 * i + 1]);
        }
        s->n = s->cap / 2;
        s->per *= 2;
    }
    s->p[s->n++] = *x;
    s->last = 1;
}
