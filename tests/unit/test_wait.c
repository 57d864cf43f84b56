/* Unit tests: wait strategies and the wake-up protocol's system-call economy. */
#include <criterion/criterion.h>

#include <reflex/wait.h>

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool flag_set(void *arg)
{
    return atomic_load_explicit((_Atomic int *)arg, memory_order_acquire) != 0;
}

static bool never(void *arg)
{
    return false;
}

Test(wait, config_and_names)
{
    struct rfx_wait_config c;
    rfx_wait_config_default(&c);
    cr_expect_eq(c.kind, RFX_WAIT_HYBRID);
    cr_expect_eq(c.spin_ns, 50000);
    const char *names[] = {"spin", "yield", "park", "hybrid"};
    for (int i = 0; i < 4; i++) {
        enum rfx_wait_kind k;
        cr_expect_eq(rfx_wait_kind_parse(names[i], &k), 0);
        cr_expect_eq((int)k, i);
        cr_expect_str_eq(rfx_wait_kind_name(k), names[i]);
    }
    enum rfx_wait_kind k;
    cr_expect_eq(rfx_wait_kind_parse("sleep", &k), -EINVAL);
    cr_expect_eq(rfx_wait_kind_parse(NULL, &k), -EINVAL);
    rfx_wait_config_default(NULL);
    rfx_waitpoint_init(NULL);
}

Test(wait, bad_arguments)
{
    struct rfx_waitpoint wp;
    rfx_waitpoint_init(&wp);
    struct rfx_wait_config c = {RFX_WAIT_PARK, 0};
    _Atomic int f = 1;
    cr_expect_eq(rfx_wait(NULL, &c, flag_set, &f, 0), -EINVAL);
    cr_expect_eq(rfx_wait(&wp, NULL, flag_set, &f, 0), -EINVAL);
    cr_expect_eq(rfx_wait(&wp, &c, NULL, &f, 0), -EINVAL);
    struct rfx_wait_config bad = {(enum rfx_wait_kind)9, 0};
    cr_expect_eq(rfx_wait(&wp, &bad, flag_set, &f, 0), -EINVAL);
    rfx_wake(NULL);
    cr_expect_eq(rfx_waitpoint_wake_calls(NULL), 0);
}

Test(wait, ready_condition_returns_without_system_calls)
{
    struct rfx_waitpoint wp;
    rfx_waitpoint_init(&wp);
    _Atomic int f = 1;
    for (int k = 0; k < 4; k++) {
        struct rfx_wait_config c = {(enum rfx_wait_kind)k, 1000};
        cr_expect_eq(rfx_wait(&wp, &c, flag_set, &f, -1), 0);
    }
    rfx_wake(&wp);
    cr_expect_eq(rfx_waitpoint_park_calls(&wp), 0);
    cr_expect_eq(rfx_waitpoint_wake_calls(&wp), 0, "no waiter, no FUTEX_WAKE");
}

Test(wait, every_kind_times_out)
{
    struct rfx_waitpoint wp;
    rfx_waitpoint_init(&wp);
    for (int k = 0; k < 4; k++) {
        struct rfx_wait_config c = {(enum rfx_wait_kind)k, 2000000};
        int64_t t0 = now_ns();
        cr_expect_eq(rfx_wait(&wp, &c, never, NULL, 20000000), -ETIMEDOUT, "kind %d", k);
        int64_t dt = now_ns() - t0;
        cr_expect_geq(dt, 20000000, "kind %d waited only %lld ns", k, (long long)dt);
        cr_expect_lt(dt, 2000000000, "kind %d overslept", k);
    }
}

struct waker {
    struct rfx_waitpoint *wp;
    _Atomic int *flag;
    int delay_us;
};

static void *wake_later(void *arg)
{
    struct waker *w = arg;
    usleep((useconds_t)w->delay_us);
    atomic_store_explicit(w->flag, 1, memory_order_release);
    rfx_wake(w->wp);
    return NULL;
}

Test(wait, every_kind_is_woken)
{
    for (int k = 0; k < 4; k++) {
        struct rfx_waitpoint wp;
        rfx_waitpoint_init(&wp);
        _Atomic int f = 0;
        struct waker w = {&wp, &f, 5000};
        pthread_t t;
        pthread_create(&t, NULL, wake_later, &w);
        struct rfx_wait_config c = {(enum rfx_wait_kind)k, 1000};
        cr_expect_eq(rfx_wait(&wp, &c, flag_set, &f, 5000000000LL), 0, "kind %d", k);
        pthread_join(t, NULL);
    }
}

Test(wait, parked_waiter_costs_one_wake_call)
{
    struct rfx_waitpoint wp;
    rfx_waitpoint_init(&wp);
    _Atomic int f = 0;
    struct waker w = {&wp, &f, 50000}; /* long enough for the waiter to park */
    pthread_t t;
    pthread_create(&t, NULL, wake_later, &w);
    struct rfx_wait_config c = {RFX_WAIT_PARK, 0};
    cr_expect_eq(rfx_wait(&wp, &c, flag_set, &f, 5000000000LL), 0);
    pthread_join(t, NULL);
    cr_expect_geq(rfx_waitpoint_park_calls(&wp), 1);
    cr_expect_eq(rfx_waitpoint_wake_calls(&wp), 1);
}

Test(wait, spinning_waiter_costs_no_system_call)
{
    struct rfx_waitpoint wp;
    rfx_waitpoint_init(&wp);
    _Atomic int f = 0;
    struct waker w = {&wp, &f, 20000};
    pthread_t t;
    pthread_create(&t, NULL, wake_later, &w);
    struct rfx_wait_config c = {RFX_WAIT_SPIN, 0};
    cr_expect_eq(rfx_wait(&wp, &c, flag_set, &f, 5000000000LL), 0);
    pthread_join(t, NULL);
    cr_expect_eq(rfx_waitpoint_park_calls(&wp), 0);
    cr_expect_eq(rfx_waitpoint_wake_calls(&wp), 0, "the notifier saw nobody parked");
}
