/*
 * Park/wake race: two threads on different cores hand a token back and forth
 * through two waitpoints, for every wait strategy. A lost wake-up leaves a
 * waiter asleep with its condition true; each wait has a deadline, so a lost
 * wake-up shows up as a timeout and is counted, not as a hang.
 *
 * It also checks the system-call economy: with spinning waiters the
 * notifiers must make no FUTEX_WAKE at all, and no strategy may make more
 * FUTEX_WAKE calls than there were parks announced.
 *
 * usage: park_wake_race [--long] [--rounds N]
 *   default 100000 rounds a strategy (10000 with RFX_STRESS_REDUCED);
 *   --long or RFX_STRESS_LONG=1: 10^7.
 */
#include <reflex/thread.h>
#include <reflex/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct side {
    struct rfx_waitpoint wp;
    _Alignas(64) _Atomic uint64_t token; /* the round number this side may run */
};

struct race {
    struct side a, b;
    struct rfx_wait_config cfg;
    uint64_t rounds;
    uint64_t timeouts_a, timeouts_b;
};

struct want {
    struct side *s;
    uint64_t round;
};

static bool has_token(void *arg)
{
    struct want *w = arg;
    return atomic_load_explicit(&w->s->token, memory_order_acquire) >= w->round;
}

/* Wait for `round` on `mine`, then pass round on to `theirs`. */
static uint64_t play(struct race *x, struct side *mine, struct side *theirs, int core)
{
    char msg[256];
    if (rfx_thread_pin_self(core, msg, sizeof msg) != 0)
        fprintf(stderr, "park_wake_race: %s\n", msg);
    uint64_t timeouts = 0;
    for (uint64_t r = 1; r <= x->rounds; r++) {
        struct want w = {mine, r};
        /* 2 s is forever for a hand-off; only a lost wake-up gets there. */
        while (rfx_wait(&mine->wp, &x->cfg, has_token, &w, 2000000000LL) == -ETIMEDOUT)
            timeouts++;
        atomic_store_explicit(&theirs->token, r, memory_order_release);
        rfx_wake(&theirs->wp);
    }
    return timeouts;
}

static void *player_b(void *arg)
{
    struct race *x = arg;
    /* b answers round r after a hands it over. */
    char msg[256];
    if (rfx_thread_pin_self(1 % rfx_cpu_online_count(), msg, sizeof msg) != 0)
        fprintf(stderr, "park_wake_race: %s\n", msg);
    for (uint64_t r = 1; r <= x->rounds; r++) {
        struct want w = {&x->b, r};
        while (rfx_wait(&x->b.wp, &x->cfg, has_token, &w, 2000000000LL) == -ETIMEDOUT)
            x->timeouts_b++;
        atomic_store_explicit(&x->a.token, r + 1, memory_order_release);
        rfx_wake(&x->a.wp);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t rounds = getenv("RFX_STRESS_REDUCED") ? 10000 : 100000;
    bool long_run = getenv("RFX_STRESS_LONG") && atoi(getenv("RFX_STRESS_LONG"));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--long") == 0)
            long_run = true;
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: park_wake_race [--long] [--rounds N]\n");
            return 2;
        }
    }
    if (long_run)
        rounds = 10000000;

    const struct rfx_wait_config cfgs[] = {
        {RFX_WAIT_PARK, 0},       {RFX_WAIT_HYBRID, 200}, /* spin 0.2 µs: park on most waits */
        {RFX_WAIT_HYBRID, 50000}, {RFX_WAIT_YIELD, 0},    {RFX_WAIT_SPIN, 0},
    };
    int failed = 0;
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        struct race *x = aligned_alloc(64, sizeof *x);
        memset(x, 0, sizeof *x);
        rfx_waitpoint_init(&x->a.wp);
        rfx_waitpoint_init(&x->b.wp);
        atomic_init(&x->a.token, 1);
        atomic_init(&x->b.token, 0);
        x->cfg = cfgs[c];
        x->rounds = rounds;
        pthread_t t;
        pthread_create(&t, NULL, player_b, x);
        /* a: runs round r when a.token >= r, then hands r to b. */
        x->timeouts_a = play(x, &x->a, &x->b, 0);
        pthread_join(t, NULL);
        uint64_t parks = rfx_waitpoint_park_calls(&x->a.wp) + rfx_waitpoint_park_calls(&x->b.wp);
        uint64_t wakes = rfx_waitpoint_wake_calls(&x->a.wp) + rfx_waitpoint_wake_calls(&x->b.wp);
        uint64_t lost = x->timeouts_a + x->timeouts_b;
        bool economy = cfgs[c].kind == RFX_WAIT_SPIN || cfgs[c].kind == RFX_WAIT_YIELD
                           ? wakes == 0
                           : wakes <= 2 * rounds;
        bool ok = lost == 0 && economy;
        failed += !ok;
        printf("park_wake_race: wait=%-6s spin_ns=%-6u rounds=%" PRIu64 " lost_wakeups=%" PRIu64
               " futex_wait=%" PRIu64 " futex_wake=%" PRIu64 " %s\n",
               rfx_wait_kind_name(cfgs[c].kind), cfgs[c].spin_ns, rounds, lost, parks, wakes,
               ok ? "ok" : "FAIL");
        free(x);
    }
    printf("park_wake_race: %d strategies failed\n", failed);
    return failed ? 1 : 0;
}
