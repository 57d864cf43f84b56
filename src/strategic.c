/*
 * Strategic workers: N threads off the critical cores that run the planner on
 * batches of cache misses (and on context changes, and at their tick when
 * there are none), merge what it produced into the next snapshot and publish
 * it. Their allocations come from a dedicated jemalloc arena: each worker
 * binds itself to it ("thread.arena"), so the planner's and the snapshots'
 * memory never touches the critical threads' arenas.
 *
 * Frequency: default 2 Hz within [min_hz, max_hz] ([0.5, 4]), adapted once
 * per telemetry interval by seed 000's rule: end-to-end p95 above 90 % of the
 * frame period -> x0.8; mean below half of it -> x1.1.
 */
#include "cache_rules.h"
#include "engine_impl.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#define MISS_BATCH 256

struct rfx_plan {
    struct rfx_cache_entry *l1, *l2;
    size_t n1, n2, cap1, cap2;
};

struct worker {
    struct rfx_strategic *s;
    int idx;
    pthread_t tid;
    bool started;
};

struct rfx_strategic {
    struct rfx_engine *e;
    int n;
    struct worker w[RFX_MAX_WORKERS];
    unsigned arena;
    bool have_arena;
    pthread_mutex_t merge; /* one copy-merge-publish at a time */
    pthread_mutex_t lock;  /* guards the wake-up condition */
    pthread_cond_t cond;
    bool stopping;
    uint64_t kicks;
    /* Kicks asked for by critical threads, which neither lock nor wake
     * anyone (rfx_engine_context_change); the watchdog passes them on. */
    _Atomic uint64_t kicks_asked, kicks_passed;
    _Atomic uint64_t hz_milli; /* current frequency in mHz */
    _Atomic uint64_t plans, plan_errors;
    /* heartbeat for the watchdog: when worker i's planner call began (0: none) */
    _Atomic int64_t busy_since[RFX_MAX_WORKERS];
    _Atomic int64_t plan_max_ns; /* the longest planner call */
};

int64_t rfx_strategic_busy_since(struct rfx_strategic *s, int i)
{
    return atomic_load_explicit(&s->busy_since[i], memory_order_acquire);
}

bool rfx_strategic_thread(const struct rfx_strategic *s, int i, pthread_t *out)
{
    if (!s || i < 0 || i >= s->n || !s->w[i].started)
        return false;
    *out = s->w[i].tid;
    return true;
}

double rfx_strategic_plan_max_ms(struct rfx_strategic *s)
{
    return s ? atomic_load_explicit(&s->plan_max_ns, memory_order_relaxed) * 1e-6 : 0;
}

/* [fault] planner_hang_ms: the planner call hangs (as if blocked on I/O or
 * a lock) for that long, between from_s and to_s; it still ends at once
 * when the engine stops. */
static void planner_hang(struct rfx_strategic *s, int64_t now)
{
    struct rfx_engine *e = s->e;
    double t = (now - e->start_ns) * 1e-9;
    if (!e->cfg.planner_hang_ms || t < e->cfg.fault_from_s || t >= e->cfg.fault_to_s)
        return;
    rfx_fault_onset(e, RFX_FAULT_PLANNER_HANG, now);
    int64_t until = now + (int64_t)e->cfg.planner_hang_ms * 1000000;
    while (rfx_now_ns() < until) {
        pthread_mutex_lock(&s->lock);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int rfx_plan_add(struct rfx_plan *p, int level, const struct rfx_cache_entry *entry)
{
    if (!p || !entry || entry->key == 0 || (level != 1 && level != 2))
        return -EINVAL;
    struct rfx_cache_entry **t = level == 1 ? &p->l1 : &p->l2;
    size_t *n = level == 1 ? &p->n1 : &p->n2, *cap = level == 1 ? &p->cap1 : &p->cap2;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct rfx_cache_entry *g = realloc(*t, nc * sizeof *g);
        if (!g)
            return -ENOMEM;
        *t = g;
        *cap = nc;
    }
    (*t)[(*n)++] = *entry;
    return 0;
}

double rfx_strategic_hz(const struct rfx_strategic *s)
{
    return s ? atomic_load_explicit(&((struct rfx_strategic *)s)->hz_milli, memory_order_relaxed) /
                   1000.0
             : 0;
}

int rfx_strategic_workers(const struct rfx_strategic *s)
{
    return s ? s->n : 0;
}

uint64_t rfx_strategic_plans(const struct rfx_strategic *s)
{
    return s ? atomic_load_explicit(&((struct rfx_strategic *)s)->plans, memory_order_relaxed) : 0;
}

void rfx_strategic_adapt(struct rfx_strategic *s, int64_t p95_ns, double mean_ns)
{
    if (!s)
        return;
    const struct rfx_engine_config *c = &s->e->cfg;
    double frame_ns = c->frame_hz > 0 ? 1e9 / c->frame_hz : 16.7e6;
    double hz = rfx_strategic_hz(s);
    if (rfx_engine_degrade_actions(s->e) & RFX_DEGRADE_MIN_HZ) {
        /* The ladder wins: from MINIMAL up (by default), planning runs at its minimum. */
        atomic_store_explicit(&s->hz_milli, (uint64_t)llround(c->strategic_min_hz * 1000),
                              memory_order_relaxed);
        return;
    }
    if ((double)p95_ns > 0.9 * frame_ns)
        hz *= 0.8;
    else if (mean_ns < 0.5 * frame_ns)
        hz *= 1.1;
    if (hz < c->strategic_min_hz)
        hz = c->strategic_min_hz;
    if (hz > c->strategic_max_hz)
        hz = c->strategic_max_hz;
    atomic_store_explicit(&s->hz_milli, (uint64_t)llround(hz * 1000), memory_order_relaxed);
}

void rfx_strategic_pass_kicks(struct rfx_strategic *s)
{
    if (!s)
        return;
    uint64_t asked = atomic_load_explicit(&s->kicks_asked, memory_order_acquire);
    if (asked == atomic_load_explicit(&s->kicks_passed, memory_order_relaxed))
        return;
    pthread_mutex_lock(&s->lock);
    if (asked != atomic_load_explicit(&s->kicks_passed, memory_order_relaxed)) {
        atomic_store_explicit(&s->kicks_passed, asked, memory_order_relaxed);
        s->kicks++;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
}

void rfx_engine_context_change(struct rfx_engine *e)
{
    if (!e || !e->strat)
        return;
    struct rfx_strategic *s = e->strat;
    /* A critical thread only counts the kick: waking a planner is a
     * system call (and the lock behind it, a wait), so the watchdog passes
     * it on at its next look, an eighth of a frame budget later. Any other
     * thread passes it on at once. */
    atomic_fetch_add_explicit(&s->kicks_asked, 1, memory_order_release);
    if (!rfx_on_critical_thread)
        rfx_strategic_pass_kicks(s);
}

static int dedupe(struct rfx_cache_miss *m, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = m[j].context_key == m[i].context_key;
        if (!dup)
            m[k++] = m[i];
    }
    return (int)k;
}

/* Run a rules pass over both levels' entries (categories may grow meanwhile,
 * so under cat_lock), count what it dropped by reason in the engine's
 * counters, and return how many went. */
static uint64_t filter_counted(struct rfx_engine *e, struct rfx_rule_pass *pass,
                               struct rfx_cache_entry *l1, size_t *n1,
                               struct rfx_cache_entry *l2, size_t *n2)
{
    struct rfx_rule_counts k = {0};
    pthread_mutex_lock(&e->cat_lock);
    pass->rules = e->cfg.rules;
    pass->n_rules = e->cfg.n_rules;
    pass->categories = (const char(*)[RFX_NAME_MAX])e->categories;
    pass->n_categories = e->n_categories;
    *n1 = rfx_rules_filter(l1, *n1, pass, &k);
    *n2 = rfx_rules_filter(l2, *n2, pass, &k);
    pthread_mutex_unlock(&e->cat_lock);
    uint64_t dropped = k.ttl + k.generation;
    for (int r = 0; r < RFX_RULES_MAX; r++) {
        dropped += k.by_rule[r];
        if (k.by_rule[r])
            atomic_fetch_add_explicit(&e->invalidated_by_rule[r], k.by_rule[r],
                                      memory_order_relaxed);
    }
    if (k.ttl)
        atomic_fetch_add_explicit(&e->invalidated_ttl, k.ttl, memory_order_relaxed);
    if (k.generation)
        atomic_fetch_add_explicit(&e->invalidated_generation, k.generation, memory_order_relaxed);
    return dropped;
}

/* What had been invalidated when a plan began: the cut and each rule's event
 * count. A plan that outlives a cut or an event was computed from the world
 * as it was before it. */
struct plan_mark {
    uint64_t below;
    uint64_t events[RFX_RULES_MAX];
};

static void mark_plan(const struct rfx_engine *e, struct plan_mark *m)
{
    m->below = atomic_load_explicit(&e->invalidate_below, memory_order_acquire);
    for (int r = 0; r < RFX_RULES_MAX; r++)
        m->events[r] = atomic_load_explicit(&e->rule_events[r], memory_order_acquire);
}

/* Under the merge lock: drop what the cuts and events since `m` drop. A cut
 * drops the whole plan; an event, the plan's entries in its rule's
 * categories. Counted with the snapshot entries those went with. The rules
 * pass already run cannot see the plan, and the next one sees its entries
 * with a generation after the cut, so this is the only place to do it.
 * rfx_engine_cache_event counts an event before it sets the pending bit:
 * an event not seen here is still pending, and the next pass drops what it
 * names from the snapshot this publishes. */
static void drop_outdated(struct rfx_engine *e, struct rfx_plan *p, const struct plan_mark *m)
{
    struct rfx_rule_pass pass = {
        .below_gen = atomic_load_explicit(&e->invalidate_below, memory_order_acquire) > m->below
                         ? UINT64_MAX
                         : 0,
    };
    for (int r = 0; r < RFX_RULES_MAX; r++)
        if (atomic_load_explicit(&e->rule_events[r], memory_order_acquire) != m->events[r])
            pass.pending |= 1u << r;
    if (pass.pending || pass.below_gen)
        filter_counted(e, &pass, p->l1, &p->n1, p->l2, &p->n2);
}

/* Merge the plan's entries over the current snapshot's and publish, less
 * what was invalidated while the plan was being made. */
static void publish(struct rfx_strategic *s, struct rfx_plan *p, const struct plan_mark *m)
{
    struct rfx_engine *e = s->e;
    if (p->n1 == 0 && p->n2 == 0)
        return;
    pthread_mutex_lock(&s->merge);
    drop_outdated(e, p, m);
    if (p->n1 == 0 && p->n2 == 0) {
        pthread_mutex_unlock(&s->merge);
        return;
    }
    struct rfx_cache_entry *l1 = NULL, *l2 = NULL;
    size_t n1 = 0, n2 = 0;
    if (rfx_action_cache_entries(e->cache, &l1, &n1, &l2, &n2) == 0) {
        struct rfx_cache_entry *a = realloc(l1, (n1 + p->n1 + 1) * sizeof *a);
        struct rfx_cache_entry *b = a ? realloc(l2, (n2 + p->n2 + 1) * sizeof *b) : NULL;
        if (a)
            l1 = a;
        if (b)
            l2 = b;
        if (a && b) {
            if (p->n1)
                memcpy(l1 + n1, p->l1, p->n1 * sizeof *l1);
            if (p->n2)
                memcpy(l2 + n2, p->l2, p->n2 * sizeof *l2);
            n1 += p->n1;
            n2 += p->n2;
            /* Over capacity: keep the newest (they come last). */
            size_t max1 = e->cfg.cache_l1_slots / 2, max2 = e->cfg.cache_l2_slots / 2;
            size_t off1 = n1 > max1 ? n1 - max1 : 0, off2 = n2 > max2 ? n2 - max2 : 0;
            rfx_action_cache_publish(e->cache, l1 + off1, n1 - off1, l2 + off2, n2 - off2);
        }
    }
    free(l1);
    free(l2);
    pthread_mutex_unlock(&s->merge);
}

/* Cache rules (src/cache_rules.c): drop entries whose category a pending
 * event's rule names, entries older than the TTL, and entries from too old
 * a generation; publish the result if anything went. Always by building a
 * new snapshot, never by writing under readers. */
static void apply_rules(struct rfx_strategic *s)
{
    struct rfx_engine *e = s->e;
    uint32_t pending = atomic_exchange_explicit(&e->pending_rules, 0, memory_order_acquire);
    uint64_t below = atomic_load_explicit(&e->invalidate_below, memory_order_acquire);
    if (!pending && e->cfg.cache_ttl_s <= 0 && !e->cfg.cache_max_generations && !below)
        return;
    pthread_mutex_lock(&s->merge);
    struct rfx_cache_entry *l[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    if (rfx_action_cache_entries(e->cache, &l[0], &n[0], &l[1], &n[1]) == 0) {
        struct rfx_action_cache_stats cs;
        rfx_action_cache_stats(e->cache, &cs);
        struct rfx_rule_pass pass = {
            .now_ns = rfx_now_ns(),
            .ttl_ns = (int64_t)(e->cfg.cache_ttl_s * 1e9),
            .below_gen =
                rfx_rules_generation_floor(cs.generation, e->cfg.cache_max_generations, below),
            .pending = pending,
        };
        uint64_t dropped = filter_counted(e, &pass, l[0], &n[0], l[1], &n[1]);
        if (dropped)
            rfx_action_cache_publish(e->cache, l[0], n[0], l[1], n[1]);
    }
    free(l[0]);
    free(l[1]);
    pthread_mutex_unlock(&s->merge);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rfx_strategic *s = w->s;
    struct rfx_engine *e = s->e;
    char name[RFX_NAME_MAX], msg[160];
    snprintf(name, sizeof name, "plan%d", w->idx);
    rfx_thread_name_self(name);
    int core = e->cfg.strategic_cores[w->idx];
    if (core >= 0 && rfx_thread_pin_self(core, msg, sizeof msg) != 0)
        fprintf(stderr, "reflex: warning: strategic worker %d: %s (left unpinned)\n", w->idx, msg);
    /* Strategic work runs only on CPU time the critical threads leave: as a
     * SCHED_IDLE thread the scheduler preempts it the moment a critical
     * thread wakes on a shared core (a normal-priority planner computing
     * for 20 ms would delay frames by milliseconds on a 2-CPU machine). */
    if (rfx_thread_idle_self() != 0)
        fprintf(stderr, "reflex: warning: strategic worker %d: SCHED_IDLE refused (nice 19)\n",
                w->idx);
    if (s->have_arena)
        mallctl("thread.arena", NULL, NULL, &s->arena, sizeof s->arena);
    struct rfx_cache_miss *batch = malloc(MISS_BATCH * sizeof *batch);
    struct rfx_plan plan = {0};
    uint64_t kicks_seen = 0;
    for (;;) {
        /* Sleep one period (stagger workers), or until kicked or stopped. */
        double hz = rfx_strategic_hz(s);
        int64_t period = (int64_t)(1e9 / (hz > 0 ? hz : 1));
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + period;
        ts.tv_sec = until / 1000000000;
        ts.tv_nsec = until % 1000000000;
        pthread_mutex_lock(&s->lock);
        while (!s->stopping && s->kicks == kicks_seen)
            if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) != 0)
                break;
        bool stop = s->stopping;
        kicks_seen = s->kicks;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            break;
        apply_rules(s);
        if (!batch || !e->planner)
            continue;
        if (rfx_engine_degrade_actions(e) & RFX_DEGRADE_CACHE_ONLY)
            continue; /* cache only: no planning */
        struct plan_mark mark;
        mark_plan(e, &mark);
        size_t n = rfx_action_cache_take_misses(e->cache, batch, MISS_BATCH);
        n = (size_t)dedupe(batch, n);
        plan.n1 = plan.n2 = 0;
        if (e->cfg.pause_planning)
            atomic_store_explicit(&e->paused, 1, memory_order_release);
        int64_t t0 = rfx_now_ns();
        atomic_store_explicit(&s->busy_since[w->idx], t0, memory_order_release);
        planner_hang(s, t0);
        int rc = e->planner->plan(e->planner_ctx, batch, n, &plan);
        atomic_store_explicit(&s->busy_since[w->idx], 0, memory_order_release);
        int64_t took = rfx_now_ns() - t0;
        if (took > atomic_load_explicit(&s->plan_max_ns, memory_order_relaxed))
            atomic_store_explicit(&s->plan_max_ns, took, memory_order_relaxed);
        if (e->cfg.pause_planning)
            atomic_store_explicit(&e->paused, 0, memory_order_release);
        atomic_fetch_add_explicit(&s->plans, 1, memory_order_relaxed);
        if (rc < 0) {
            atomic_fetch_add_explicit(&s->plan_errors, 1, memory_order_relaxed);
            continue;
        }
        publish(s, &plan, &mark);
    }
    free(plan.l1);
    free(plan.l2);
    free(batch);
    return NULL;
}

int rfx_strategic_create(struct rfx_engine *e, struct rfx_strategic **out, char *msg, size_t msglen)
{
    struct rfx_strategic *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(msg, msglen, "strategic: out of memory");
        return -ENOMEM;
    }
    s->e = e;
    s->n = e->cfg.strategic_workers;
    size_t sz = sizeof s->arena;
    s->have_arena = mallctl("arenas.create", &s->arena, &sz, NULL, 0) == 0;
    pthread_mutex_init(&s->merge, NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    atomic_init(&s->hz_milli, (uint64_t)llround(e->cfg.strategic_hz * 1000));
    atomic_init(&s->plans, 0);
    atomic_init(&s->kicks_asked, 0);
    atomic_init(&s->kicks_passed, 0);
    atomic_init(&s->plan_errors, 0);
    atomic_init(&s->plan_max_ns, 0);
    for (int i = 0; i < RFX_MAX_WORKERS; i++)
        atomic_init(&s->busy_since[i], 0);
    *out = s;
    return 0;
}

int rfx_strategic_start(struct rfx_strategic *s, char *msg, size_t msglen)
{
    for (int i = 0; i < s->n; i++) {
        s->w[i].s = s;
        s->w[i].idx = i;
        if (pthread_create(&s->w[i].tid, NULL, worker_main, &s->w[i]) != 0) {
            snprintf(msg, msglen, "cannot create strategic worker %d", i);
            rfx_strategic_stop(s);
            return -EAGAIN;
        }
        s->w[i].started = true;
    }
    return 0;
}

void rfx_strategic_stop(struct rfx_strategic *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->n; i++) {
        if (s->w[i].started)
            pthread_join(s->w[i].tid, NULL);
        s->w[i].started = false;
    }
}

void rfx_strategic_destroy(struct rfx_strategic *s)
{
    if (!s)
        return;
    rfx_strategic_stop(s);
    pthread_mutex_destroy(&s->merge);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}
