/*
 * The action cache: RCU-published immutable snapshots (liburcu QSBR) and a
 * Concurrency Kit SPMC miss queue. See include/reflex/action_cache.h.
 *
 * A snapshot is one allocation: header, L1 table, L2 table. Tables are
 * open-addressed with linear probing, load <= 0.5, key 0 marks an empty
 * slot. Nothing in a published snapshot is ever written again.
 *
 * Memory ordering (docs/memory-ordering.md, pairs P1/D1):
 *   P1 writer publishes the snapshot pointer (rcu_assign_pointer: a release
 *      store) after filling it  ->  D1 reader loads it (rcu_dereference: a
 *      dependency-ordered load) and reads the tables through it.
 * Under ThreadSanitizer, which cannot see liburcu's own accesses and
 * barriers, P1/D1 are C11 release/acquire operations instead, so the
 * project's own code is checked; the grace period is still liburcu's.
 */
#define _LGPL_SOURCE /* inline read-side fast paths */
#include "action_cache_impl.h"
#include "memtouch.h"
#include "probes.h"

#include <reflex/engine.h>

#include <ck_ring.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <urcu-qsbr.h>

CK_RING_PROTOTYPE(rfx_miss, rfx_cache_miss)

#if defined(__SANITIZE_THREAD__)
#define RFX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RFX_TSAN 1
#endif
#endif

/*
 * ThreadSanitizer cannot see that liburcu's grace period orders a reader's
 * last access to a snapshot before the writer frees it. Tell it: each
 * quiescent state (or going offline) releases a sync token after the
 * reader's accesses; the writer acquires it after synchronize_rcu. That is
 * exactly the guarantee QSBR gives, stated in TSan's terms.
 */
#ifdef RFX_TSAN
#include <sanitizer/tsan_interface.h>
static char grace_token;
#define GRACE_READER_DONE() __tsan_release(&grace_token)
#define GRACE_WRITER_SEES() __tsan_acquire(&grace_token)
#else
#define GRACE_READER_DONE() ((void)0)
#define GRACE_WRITER_SEES() ((void)0)
#endif

struct rfx_action_cache {
    _Alignas(64) struct rfx_snapshot *current; /* P1/D1 */
    struct rfx_action_cache_config cfg;
    pthread_mutex_t writer; /* serialises writers (never taken by readers) */
    _Atomic uint64_t publications;
    _Atomic uint64_t grace_ns_max, grace_ns_total; /* synchronize_rcu in publish */
    _Alignas(64) struct ck_ring misses;
    struct rfx_cache_miss *miss_buf;
    _Atomic uint64_t misses_queued, misses_dropped; /* producer-written */
    /* under `writer`: the recorder's hook, and a replay's next generation */
    rfx_publish_observer observer;
    void *observer_arg;
    uint64_t next_generation; /* 0: the current one + 1 */
};

static struct rfx_snapshot *snap_load(struct rfx_action_cache *c)
{
#ifdef RFX_TSAN
    return __atomic_load_n(&c->current, __ATOMIC_ACQUIRE); /* D1 */
#else
    return rcu_dereference(c->current); /* D1 */
#endif
}

static void snap_store(struct rfx_action_cache *c, struct rfx_snapshot *s)
{
#ifdef RFX_TSAN
    __atomic_store_n(&c->current, s, __ATOMIC_RELEASE); /* P1 */
#else
    rcu_assign_pointer(c->current, s);  /* P1 */
#endif
}

void rfx_action_cache_config_default(struct rfx_action_cache_config *cfg)
{
    if (!cfg)
        return;
    cfg->max_entries = 65536;
    cfg->miss_queue = 1024;
}

int rfx_action_cache_create(const struct rfx_action_cache_config *cfg,
                            struct rfx_action_cache **out)
{
    if (!cfg || !out || cfg->max_entries == 0 || cfg->max_entries > (1u << 26) ||
        cfg->miss_queue < 4 || cfg->miss_queue > (1u << 24) ||
        (cfg->miss_queue & (cfg->miss_queue - 1)) != 0)
        return -EINVAL;
    struct rfx_action_cache *c = NULL;
    if (posix_memalign((void **)&c, 64, sizeof *c) != 0)
        return -ENOMEM;
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    c->miss_buf = calloc(cfg->miss_queue, sizeof *c->miss_buf);
    if (!c->miss_buf) {
        free(c);
        return -ENOMEM;
    }
    rfx_touch_zeroed(c->miss_buf, cfg->miss_queue * sizeof *c->miss_buf); /* decide writes it */
    ck_ring_init(&c->misses, cfg->miss_queue);
    pthread_mutex_init(&c->writer, NULL);
    atomic_init(&c->publications, 0);
    atomic_init(&c->grace_ns_max, 0);
    atomic_init(&c->grace_ns_total, 0);
    atomic_init(&c->misses_queued, 0);
    atomic_init(&c->misses_dropped, 0);
    *out = c;
    return 0;
}

void rfx_action_cache_destroy(struct rfx_action_cache *c)
{
    if (!c)
        return;
    /* No reader or writer is left: the snapshot can go without a grace period. */
    free(c->current);
    free(c->miss_buf);
    pthread_mutex_destroy(&c->writer);
    free(c);
}

/*
 * Quiet readers (the engine's critical threads) never make a system call.
 *
 * liburcu's grace period spins briefly for the readers, then sleeps on its
 * futex (urcu_qsbr_gp.futex = -1), and the reader whose quiescent state or
 * going offline ends the wait wakes it with FUTEX_WAKE, a system call on
 * that reader's thread. A quiet reader reports its quiescent state and goes
 * offline as liburcu's inline read side does (static/urcu-qsbr.h: its
 * counter, fenced on both sides) but leaves the wake to
 * rfx_cache_grace_kick, which a non-critical thread calls regularly (the
 * engine's watchdog, each look): when a grace period sleeps and every quiet
 * reader has since reported, it wakes the writer as the reader would have.
 * The writer then checks the readers itself, as after any wake, so a kick
 * too early only makes it look again. What it costs: a publication that
 * waited for a critical thread ends at the watchdog's next look after it
 * reported.
 *
 * The counters are liburcu's (one per thread, in its TLS); the kick reads
 * those of every reader, quiet or plain, listed here while registered. A
 * grace period held by a plain reader is not kicked: that reader wakes it
 * itself when it reports, and a kick would only make the writer look and
 * sleep again, at every look of the watchdog for as long as it holds on.
 * Past READERS_MAX a reader goes unlisted: a quiet one is refused, and a
 * grace period held by an unlisted plain one is kicked in vain like that.
 */
#define READERS_MAX 256
static pthread_mutex_t quiet_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long *reader_ctr[READERS_MAX]; /* under quiet_lock */
static int reader_n, quiet_n;                  /* under quiet_lock */
static _Thread_local bool quiet_self, listed_self;
static _Atomic uint64_t quiet_kicks;

/* Under quiet_lock. */
static bool list_self(void)
{
    if (reader_n == READERS_MAX)
        return false;
    reader_ctr[reader_n++] = &URCU_TLS(urcu_qsbr_reader).ctr;
    listed_self = true;
    return true;
}

void rfx_cache_reader_register(void)
{
    pthread_mutex_lock(&quiet_lock);
    (void)list_self();
    pthread_mutex_unlock(&quiet_lock);
    urcu_qsbr_register_thread();
}

int rfx_cache_reader_register_quiet(void)
{
    pthread_mutex_lock(&quiet_lock);
    if (!list_self()) {
        pthread_mutex_unlock(&quiet_lock);
        return -ENOSPC;
    }
    quiet_n++;
    pthread_mutex_unlock(&quiet_lock);
    quiet_self = true;
    urcu_qsbr_register_thread();
    return 0;
}

void rfx_cache_reader_unregister(void)
{
    GRACE_READER_DONE();
    pthread_mutex_lock(&quiet_lock);
    if (listed_self)
        for (int i = 0; i < reader_n; i++)
            if (reader_ctr[i] == &URCU_TLS(urcu_qsbr_reader).ctr)
                reader_ctr[i] = reader_ctr[--reader_n];
    if (quiet_self)
        quiet_n--;
    pthread_mutex_unlock(&quiet_lock);
    quiet_self = listed_self = false;
    /* liburcu's own offline: it wakes a grace period waiting for this
     * thread, so none outlives the engine's watchdog. */
    urcu_qsbr_unregister_thread();
}

/* A quiet reader's counter: 0 offline, else the grace-period counter it last
 * saw. liburcu fences both sides of the store; a sequentially consistent
 * exchange (one locked instruction on x86) orders the reader's accesses
 * before it and what it reads next after it, in terms ThreadSanitizer
 * also follows. */
static inline void quiet_set(unsigned long v)
{
    (void)__atomic_exchange_n(&URCU_TLS(urcu_qsbr_reader).ctr, v, __ATOMIC_SEQ_CST);
}

void rfx_cache_reader_offline(void)
{
    GRACE_READER_DONE();
    if (quiet_self)
        quiet_set(0);
    else
        urcu_qsbr_thread_offline();
}

void rfx_cache_reader_online(void)
{
    if (quiet_self)
        quiet_set(__atomic_load_n(&urcu_qsbr_gp.ctr, __ATOMIC_RELAXED));
    else
        urcu_qsbr_thread_online();
}

void rfx_cache_quiescent(void)
{
    GRACE_READER_DONE();
    if (!quiet_self) {
        urcu_qsbr_quiescent_state();
        return;
    }
    unsigned long gp = __atomic_load_n(&urcu_qsbr_gp.ctr, __ATOMIC_RELAXED);
    if (gp != URCU_TLS(urcu_qsbr_reader).ctr) /* a grace period began */
        quiet_set(gp);
}

/*
 * The kick's accesses to liburcu's state: the grace period's futex and
 * counter, and each registered reader's counter, the same accesses
 * liburcu's own writer makes. The readers' side of them is liburcu's inline
 * code, whose volatile stores ThreadSanitizer takes for plain writes racing
 * with these; tests/tsan.supp can scope a suppression to those liburcu
 * functions only while TSan still holds their stack, and a busy run
 * outlives its history ("failed to restore the stack": rcu_torture --long,
 * or any run with TSAN_OPTIONS=history_size=0), leaving a report that names
 * only this file. So under TSan these few atomics are left uninstrumented,
 * as liburcu's own are; the project's own synchronisation stays checked.
 */
/* clang's no_sanitize("thread") still instruments atomics, its
 * disable_sanitizer_instrumentation does not; gcc has only the former and
 * leaves atomics alone under it (gcc 12 and clang 14 checked with objdump:
 * a bare lock cmpxchg, no __tsan_ call). */
#if defined(RFX_TSAN) && defined(__clang__)
#define LIBURCU_SIDE __attribute__((noinline, disable_sanitizer_instrumentation)) static
#elif defined(RFX_TSAN)
#define LIBURCU_SIDE __attribute__((noinline, no_sanitize("thread"))) static
#else
#define LIBURCU_SIDE static inline
#endif

LIBURCU_SIDE int32_t gp_futex_load(void)
{
    return __atomic_load_n(&urcu_qsbr_gp.futex, __ATOMIC_ACQUIRE);
}

LIBURCU_SIDE unsigned long gp_ctr_load(void)
{
    return __atomic_load_n(&urcu_qsbr_gp.ctr, __ATOMIC_ACQUIRE);
}

LIBURCU_SIDE unsigned long reader_ctr_load(const unsigned long *ctr)
{
    return __atomic_load_n(ctr, __ATOMIC_RELAXED);
}

/* As liburcu's urcu_qsbr_wake_up_gp does for a reader: a sleeping grace
 * period's futex goes from -1 to 0, by one waker only. */
LIBURCU_SIDE bool gp_futex_claim(void)
{
    int32_t sleeping = -1;
    return __atomic_compare_exchange_n(&urcu_qsbr_gp.futex, &sleeping, 0, false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_RELAXED);
}

bool rfx_cache_grace_kick(void)
{
    if (gp_futex_load() != -1)
        return false; /* no grace period asleep */
    unsigned long gp = gp_ctr_load();
    pthread_mutex_lock(&quiet_lock);
    bool all = quiet_n > 0; /* with none, the readers wake it themselves */
    for (int i = 0; i < reader_n && all; i++) {
        unsigned long v = reader_ctr_load(reader_ctr[i]);
        all = v == 0 || v == gp; /* offline, or reported since it began */
    }
    pthread_mutex_unlock(&quiet_lock);
    if (!all)
        return false; /* someone holds it: the writer would only sleep again */
    if (!gp_futex_claim())
        return false;
    (void)futex_noasync(&urcu_qsbr_gp.futex, FUTEX_WAKE, 1, NULL, NULL, 0);
    atomic_fetch_add_explicit(&quiet_kicks, 1, memory_order_relaxed);
    return true;
}

uint64_t rfx_cache_grace_kicks(void)
{
    return atomic_load_explicit(&quiet_kicks, memory_order_relaxed);
}

static inline uint64_t slot_of(uint64_t key, uint32_t mask)
{
    return ((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static inline const struct rfx_cache_entry *probe(const struct rfx_cache_entry *t, uint32_t mask,
                                                  uint64_t key)
{
    for (uint64_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (t[i].key == key)
            return &t[i];
        if (t[i].key == 0)
            return NULL;
    }
}

enum rfx_cache_result rfx_action_cache_lookup(struct rfx_action_cache *c, uint64_t context_key,
                                              uint64_t pattern_key, uint32_t *action,
                                              uint64_t *generation)
{
    struct rfx_snapshot *s = snap_load(c);
    if (!s) {
        if (generation)
            *generation = 0;
        return RFX_CACHE_MISS;
    }
    if (generation)
        *generation = s->generation;
    const struct rfx_cache_entry *e;
    if (context_key && (e = probe(s->l1, s->l1_mask, context_key)) != NULL) {
        *action = e->action;
        return RFX_CACHE_L1;
    }
    if (pattern_key && (e = probe(s->l2, s->l2_mask, pattern_key)) != NULL) {
        *action = e->action;
        return RFX_CACHE_L2;
    }
    return RFX_CACHE_MISS;
}

void rfx_action_cache_observe(struct rfx_action_cache *c, rfx_publish_observer fn, void *arg)
{
    pthread_mutex_lock(&c->writer);
    c->observer = fn;
    c->observer_arg = arg;
    pthread_mutex_unlock(&c->writer);
}

void rfx_action_cache_next_generation(struct rfx_action_cache *c, uint64_t gen)
{
    pthread_mutex_lock(&c->writer);
    c->next_generation = gen;
    pthread_mutex_unlock(&c->writer);
}

const struct rfx_snapshot *rfx_action_cache_snapshot(struct rfx_action_cache *c)
{
    return snap_load(c);
}

uint64_t rfx_snapshot_checksum(const struct rfx_snapshot *s)
{
    uint64_t h = 0xcbf29ce484222325ull ^ s->generation;
    size_t slots = (size_t)s->l1_mask + 1 + (size_t)s->l2_mask + 1;
    const struct rfx_cache_entry *t = s->l1;
    for (size_t i = 0; i < slots; i++) {
        h = (h ^ t[i].key) * 0x100000001b3ull;
        h = (h ^ ((uint64_t)t[i].action << 32 | t[i].category)) * 0x100000001b3ull;
    }
    return h;
}

int rfx_action_cache_queue_miss(struct rfx_action_cache *c, const struct rfx_cache_miss *m)
{
    if (!c || !m)
        return -EINVAL;
    /* ck only reads the entry (its inner enqueue takes a const pointer), and
     * only when there is room: a full queue costs two loads, not a copy. */
    if (!ck_ring_enqueue_spmc_rfx_miss(&c->misses, c->miss_buf, (struct rfx_cache_miss *)m)) {
        atomic_store_explicit(&c->misses_dropped,
                              atomic_load_explicit(&c->misses_dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return -EAGAIN;
    }
    atomic_store_explicit(&c->misses_queued,
                          atomic_load_explicit(&c->misses_queued, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return 0;
}

size_t rfx_action_cache_take_misses(struct rfx_action_cache *c, struct rfx_cache_miss *out,
                                    size_t n)
{
    if (!c || !out)
        return 0;
    size_t k = 0;
    while (k < n && ck_ring_dequeue_spmc_rfx_miss(&c->misses, c->miss_buf, &out[k]))
        k++;
    return k;
}

static uint32_t table_slots(size_t n)
{
    uint32_t s = 16;
    while (s < 2 * n)
        s <<= 1;
    return s;
}

static void fill(struct rfx_cache_entry *t, uint32_t mask, const struct rfx_cache_entry *src,
                 size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint64_t i = slot_of(src[k].key, mask);
        while (t[i].key != 0 && t[i].key != src[k].key)
            i = (i + 1) & mask;
        t[i] = src[k]; /* a duplicate key overwrites: the last wins */
    }
}

int64_t rfx_action_cache_publish(struct rfx_action_cache *c, const struct rfx_cache_entry *l1,
                                 size_t n1, const struct rfx_cache_entry *l2, size_t n2)
{
    if (!c || (n1 && !l1) || (n2 && !l2))
        return -EINVAL;
    if (n1 > c->cfg.max_entries || n2 > c->cfg.max_entries)
        return -ENOSPC;
    for (size_t k = 0; k < n1; k++)
        if (l1[k].key == 0)
            return -EINVAL;
    for (size_t k = 0; k < n2; k++)
        if (l2[k].key == 0)
            return -EINVAL;
    uint32_t s1 = table_slots(n1), s2 = table_slots(n2);
    size_t bytes = sizeof(struct rfx_snapshot) + ((size_t)s1 + s2) * sizeof(struct rfx_cache_entry);
    struct rfx_snapshot *s = calloc(1, bytes);
    if (!s)
        return -ENOMEM;
    rfx_touch_zeroed(s, bytes); /* decide's reads of empty slots must not fault */
    s->l1 = (struct rfx_cache_entry *)(s + 1);
    s->l2 = s->l1 + s1;
    s->l1_mask = s1 - 1;
    s->l2_mask = s2 - 1;
    fill(s->l1, s->l1_mask, l1, n1);
    fill(s->l2, s->l2_mask, l2, n2);
    for (uint32_t i = 0; i < s1; i++)
        s->n1 += s->l1[i].key != 0;
    for (uint32_t i = 0; i < s2; i++)
        s->n2 += s->l2[i].key != 0;

    pthread_mutex_lock(&c->writer);
    struct rfx_snapshot *old = c->current; /* writers are serialised: a plain read */
    s->generation = c->next_generation ? c->next_generation : old ? old->generation + 1 : 1;
    c->next_generation = 0;
    for (uint32_t i = 0; i < s1 + s2; i++) /* l2 follows l1 in the allocation */
        if (s->l1[i].key != 0 && s->l1[i].generation == 0)
            s->l1[i].generation = s->generation;
    s->checksum = rfx_snapshot_checksum(s);
    if (c->observer) /* before any reader can see it (recorder.h) */
        c->observer(c->observer_arg, s);
    snap_store(c, s);
    RFX_PROBE3(cache_publish, s->generation, s->n1, s->n2);
    atomic_fetch_add_explicit(&c->publications, 1, memory_order_relaxed);
    /* Every reader has passed a quiescent state after this: none holds old. */
    int64_t g0 = rfx_now_ns();
    urcu_qsbr_synchronize_rcu();
    GRACE_WRITER_SEES();
    uint64_t waited = (uint64_t)(rfx_now_ns() - g0);
    atomic_fetch_add_explicit(&c->grace_ns_total, waited, memory_order_relaxed);
    if (waited > atomic_load_explicit(&c->grace_ns_max, memory_order_relaxed))
        atomic_store_explicit(&c->grace_ns_max, waited, memory_order_relaxed); /* under writer */
    /* Read before unlocking: once the next writer has the lock, s is its
     * "old" and may be freed. */
    int64_t gen = (int64_t)s->generation;
    pthread_mutex_unlock(&c->writer);
    free(old);
    return gen;
}

static struct rfx_cache_entry *copy_table(const struct rfx_cache_entry *t, uint32_t mask, size_t n)
{
    struct rfx_cache_entry *out = malloc((n ? n : 1) * sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    for (uint64_t i = 0; i <= mask; i++)
        if (t[i].key != 0)
            out[k++] = t[i];
    return out;
}

int rfx_action_cache_entries(struct rfx_action_cache *c, struct rfx_cache_entry **l1, size_t *n1,
                             struct rfx_cache_entry **l2, size_t *n2)
{
    if (!c || !l1 || !n1 || !l2 || !n2)
        return -EINVAL;
    pthread_mutex_lock(&c->writer);
    struct rfx_snapshot *s = c->current;
    size_t a = s ? s->n1 : 0, b = s ? s->n2 : 0;
    struct rfx_cache_entry *x = s ? copy_table(s->l1, s->l1_mask, a) : malloc(sizeof *x);
    struct rfx_cache_entry *y = s ? copy_table(s->l2, s->l2_mask, b) : malloc(sizeof *y);
    pthread_mutex_unlock(&c->writer);
    if (!x || !y) {
        free(x);
        free(y);
        return -ENOMEM;
    }
    *l1 = x;
    *n1 = a;
    *l2 = y;
    *n2 = b;
    return 0;
}

void rfx_action_cache_grace(const struct rfx_action_cache *c, uint64_t *max_ns, uint64_t *total_ns)
{
    *max_ns = c ? atomic_load_explicit(&c->grace_ns_max, memory_order_relaxed) : 0;
    *total_ns = c ? atomic_load_explicit(&c->grace_ns_total, memory_order_relaxed) : 0;
}

uint64_t rfx_action_cache_publications(const struct rfx_action_cache *c)
{
    return c ? atomic_load_explicit(&c->publications, memory_order_relaxed) : 0;
}

void rfx_action_cache_stats(const struct rfx_action_cache *c, struct rfx_action_cache_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    struct rfx_action_cache *m = (struct rfx_action_cache *)c;
    pthread_mutex_lock(&m->writer);
    if (m->current) {
        out->generation = m->current->generation;
        out->l1_entries = m->current->n1;
        out->l2_entries = m->current->n2;
    }
    pthread_mutex_unlock(&m->writer);
    out->publications = atomic_load_explicit(&c->publications, memory_order_relaxed);
    out->misses_queued = atomic_load_explicit(&c->misses_queued, memory_order_relaxed);
    out->misses_dropped = atomic_load_explicit(&c->misses_dropped, memory_order_relaxed);
}
