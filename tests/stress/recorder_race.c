/*
 * Interval recorder race: one writer records as fast as it can while the
 * reader swaps intervals; every record must land in exactly one interval.
 * Also a TSan target for the P1..P6 protocol (docs/memory-ordering.md).
 *
 * usage: recorder_race [--long]   (2e6 records; 2e5 with RFX_STRESS_REDUCED; 1e8 --long)
 */
#include <reflex/hdr_histogram.h>
#include <reflex/thread.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arg {
    struct rfx_hdr_recorder *rec;
    int64_t n;
    _Atomic int done;
};

static void *writer(void *p)
{
    struct arg *a = p;
    rfx_thread_pin_self(1 % rfx_cpu_online_count(), NULL, 0);
    for (int64_t i = 0; i < a->n; i++)
        rfx_hdr_recorder_record(a->rec, 1 + (i & 1023));
    atomic_store_explicit(&a->done, 1, memory_order_release);
    return NULL;
}

int main(int argc, char **argv)
{
    struct arg a = {NULL, getenv("RFX_STRESS_REDUCED") ? 200000 : 2000000, 0};
    if ((argc > 1 && strcmp(argv[1], "--long") == 0) ||
        (getenv("RFX_STRESS_LONG") && atoi(getenv("RFX_STRESS_LONG"))))
        a.n = 100000000;
    if (rfx_hdr_recorder_create(1, 1000000, 3, &a.rec) != 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, writer, &a);
    rfx_thread_pin_self(0, NULL, 0);
    int64_t total = 0, swaps = 0;
    struct rfx_hdr *iv = NULL;
    for (;;) {
        int finished = atomic_load_explicit(&a.done, memory_order_acquire);
        if (rfx_hdr_recorder_interval(a.rec, &iv) != 0)
            return 1;
        total += rfx_hdr_total_count(iv);
        swaps++;
        if (finished)
            break;
    }
    pthread_join(t, NULL);
    rfx_hdr_destroy(iv);
    rfx_hdr_recorder_destroy(a.rec);
    bool ok = total == a.n && swaps > 1;
    printf("recorder_race: records=%" PRId64 " counted=%" PRId64 " lost=%" PRId64
           " intervals=%" PRId64 " %s\n",
           a.n, total, a.n - total, swaps, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
