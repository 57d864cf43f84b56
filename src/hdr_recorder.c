/*
 * Interval recorder: the writer records into the active histogram without
 * ever blocking; the reader swaps in a fresh one and waits for the writer's
 * current record (if any) to finish before it reads the old one.
 *
 * Ordering (docs/memory-ordering.md, pairs P1-P6):
 *   writer: P1 epoch = odd (seq_cst store); P2 load active (seq_cst);
 *           record; P3 epoch = even (release store).
 *   reader: P4 exchange active (seq_cst); P5 load epoch (seq_cst);
 *           P6 while epoch is still that odd value, yield (acquire load).
 * P1/P2 against P4/P5 is a store-buffering pair under seq_cst: a writer that
 * loaded the old histogram made its epoch odd before the reader looked, so
 * the reader waits for P3, which (release -> acquire) publishes the counts.
 */
#include "hdr_histogram_impl.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

struct rfx_hdr_recorder {
    _Alignas(64) _Atomic(struct rfx_hdr *) active; /* P2/P4: written by the reader */
    _Alignas(64) _Atomic uint64_t epoch;  /* P1/P3: written by the writer; odd = recording */
    _Alignas(64) int64_t lowest, highest; /* read-only after create */
    int sigfigs;
};

int rfx_hdr_recorder_create(int64_t lowest, int64_t highest, int sigfigs,
                            struct rfx_hdr_recorder **out)
{
    if (!out)
        return -EINVAL;
    struct rfx_hdr *h;
    int rc = rfx_hdr_create(lowest, highest, sigfigs, &h);
    if (rc < 0)
        return rc;
    struct rfx_hdr_recorder *rec = aligned_alloc(64, sizeof *rec);
    if (!rec) {
        rfx_hdr_destroy(h);
        return -ENOMEM;
    }
    atomic_init(&rec->active, h);
    atomic_init(&rec->epoch, 0);
    rec->lowest = lowest;
    rec->highest = highest;
    rec->sigfigs = sigfigs;
    *out = rec;
    return 0;
}

void rfx_hdr_recorder_destroy(struct rfx_hdr_recorder *rec)
{
    if (!rec)
        return;
    rfx_hdr_destroy(atomic_load_explicit(&rec->active, memory_order_relaxed));
    free(rec);
}

static struct rfx_hdr *writer_enter(struct rfx_hdr_recorder *rec, uint64_t *e)
{
    *e = atomic_load_explicit(&rec->epoch, memory_order_relaxed);
    atomic_store_explicit(&rec->epoch, *e + 1, memory_order_seq_cst); /* P1 */
    return atomic_load_explicit(&rec->active, memory_order_seq_cst);  /* P2 */
}

static void writer_exit(struct rfx_hdr_recorder *rec, uint64_t e)
{
    atomic_store_explicit(&rec->epoch, e + 2, memory_order_release); /* P3 */
}

int rfx_hdr_recorder_record(struct rfx_hdr_recorder *rec, int64_t value)
{
    if (!rec)
        return -EINVAL;
    uint64_t e;
    struct rfx_hdr *h = writer_enter(rec, &e);
    int rc = rfx_hdr_record_fast(h, value);
    writer_exit(rec, e);
    return rc;
}

int rfx_hdr_recorder_record_corrected(struct rfx_hdr_recorder *rec, int64_t value,
                                      int64_t expected_interval)
{
    if (!rec)
        return -EINVAL;
    uint64_t e;
    struct rfx_hdr *h = writer_enter(rec, &e);
    int rc = rfx_hdr_record_corrected(h, value, expected_interval);
    writer_exit(rec, e);
    return rc;
}

int rfx_hdr_recorder_interval(struct rfx_hdr_recorder *rec, struct rfx_hdr **io)
{
    if (!rec || !io)
        return -EINVAL;
    struct rfx_hdr *next = *io;
    if (next) {
        if (next->lowest != rec->lowest || next->highest != rec->highest ||
            next->sigfigs != rec->sigfigs)
            return -EINVAL;
        rfx_hdr_reset(next);
    } else {
        int rc = rfx_hdr_create(rec->lowest, rec->highest, rec->sigfigs, &next);
        if (rc < 0)
            return rc;
    }
    struct rfx_hdr *old =
        atomic_exchange_explicit(&rec->active, next, memory_order_seq_cst); /* P4 */
    uint64_t e = atomic_load_explicit(&rec->epoch, memory_order_seq_cst);   /* P5 */
    if (e & 1) {
        while (atomic_load_explicit(&rec->epoch, memory_order_acquire) == e) /* P6 */
            sched_yield();
    }
    *io = old;
    return 0;
}
