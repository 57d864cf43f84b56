/*
 * The run recorder: see recorder.h. The ring is a single-producer,
 * single-consumer array of fixed-size slots, each an encoded frame body
 * (struct rfx_record_frame_disk and the payload), so the drain only adds
 * each record's head and checksum on its way to the file.
 */
#include "recorder.h"

#include "action_cache_impl.h"
#include "memtouch.h"
#include "record_format.h"

#include <reflex/thread.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define DRAIN_EVERY_NS 10000000 /* 10 ms */

struct rfx_recorder {
    /* the producer's (the telemetry stage) */
    _Alignas(64) _Atomic uint64_t head;
    uint64_t head_local, tail_cache;
    _Atomic uint64_t lost; /* one writer: relaxed load + store */
    /* the consumer's (the drain) */
    _Alignas(64) _Atomic uint64_t tail;
    /* fixed after create */
    _Alignas(64) unsigned char *ring;
    uint32_t slots, mask;
    size_t slot_bytes;
    uint32_t payload_bytes;
    FILE *f;
    pthread_mutex_t lock; /* the file: the drain and publishers */
    uint64_t frames, publications, bytes;
    int error;
    pthread_t thread;
    bool thread_started, finished;
    _Atomic int stop;
};

static void note_error(struct rfx_recorder *r)
{
    if (!r->error)
        r->error = errno ? -errno : -EIO;
}

/* Under r->lock. */
static void write_bytes(struct rfx_recorder *r, const void *p, size_t n, uLong *crc)
{
    if (crc)
        *crc = crc32(*crc, p, (uInt)n);
    if (fwrite(p, 1, n, r->f) != n)
        note_error(r);
    r->bytes += n;
}

static void write_record(struct rfx_recorder *r, uint32_t kind, const void *body, uint32_t len)
{
    uint32_t head[2] = {kind, len};
    uLong crc = crc32(0, NULL, 0);
    write_bytes(r, head, sizeof head, &crc);
    write_bytes(r, body, len, &crc);
    uint32_t c = (uint32_t)crc;
    write_bytes(r, &c, 4, NULL);
}

int rfx_recorder_create(const char *path, const struct rfx_record_header *h, uint32_t slots,
                        struct rfx_recorder **out, char *msg, size_t msglen)
{
    if (h->payload_bytes > RFX_RECORD_MAX_PAYLOAD) {
        snprintf(msg, msglen, "record: payloads of %u bytes are beyond the format's %u",
                 h->payload_bytes, RFX_RECORD_MAX_PAYLOAD);
        return -EINVAL;
    }
    struct rfx_recorder *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(msg, msglen, "record: out of memory");
        return -ENOMEM;
    }
    uint32_t n = 64;
    while (n < slots && n < (1u << 24))
        n <<= 1;
    r->slots = n;
    r->mask = n - 1;
    r->payload_bytes = h->payload_bytes;
    r->slot_bytes = (RFX_RECORD_FRAME_FIXED + h->payload_bytes + 63) & ~(size_t)63;
    r->ring = aligned_alloc(64, r->slot_bytes * n);
    if (!r->ring) {
        free(r);
        snprintf(msg, msglen, "record: cannot allocate a ring of %u frames", n);
        return -ENOMEM;
    }
    memset(r->ring, 0, r->slot_bytes * n);
    rfx_touch_zeroed(r->ring,
                     r->slot_bytes * n); /* the telemetry stage's first lap must not fault */
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->lost, 0);
    atomic_init(&r->stop, 0);
    pthread_mutex_init(&r->lock, NULL);
    r->f = fopen(path, "wbe");
    if (!r->f) {
        int err = errno;
        snprintf(msg, msglen, "record: %s: %s", path, strerror(err));
        rfx_recorder_destroy(r);
        return -err;
    }
    unsigned char body[RFX_RECORD_HEADER_BYTES];
    rfx_record_header_encode(h, body);
    uint32_t vl[2] = {RFX_RECORD_VERSION, RFX_RECORD_HEADER_BYTES};
    uint32_t crc = (uint32_t)crc32(0, body, sizeof body);
    write_bytes(r, RFX_RECORD_MAGIC, 8, NULL);
    write_bytes(r, vl, sizeof vl, NULL);
    write_bytes(r, body, sizeof body, NULL);
    write_bytes(r, &crc, 4, NULL);
    if (fflush(r->f) != 0)
        note_error(r);
    if (r->error) {
        snprintf(msg, msglen, "record: %s: %s", path, strerror(-r->error));
        int rc = r->error;
        rfx_recorder_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

void rfx_recorder_frames(struct rfx_recorder *r, struct rfx_frame *const *frames, size_t n)
{
    uint64_t head = r->head_local, lost = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rfx_frame *f = frames[i];
        if (f->flags & RFX_FRAME_EMPTY)
            continue;
        if (head - r->tail_cache >= r->slots) {
            r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (head - r->tail_cache >= r->slots) {
                lost++;
                continue;
            }
        }
        unsigned char *s = r->ring + (head & r->mask) * r->slot_bytes;
        struct rfx_record_frame_disk d = {
            .seq = f->seq,
            .scheduled_ns = f->scheduled_ns,
            .context_key = f->context_key,
            .pattern_key = f->pattern_key,
            .cache_generation = f->cache_generation,
            .action = f->action,
            .payload_size = r->payload_bytes,
            .drop_reason = f->drop_reason,
            .reached = f->reached,
            .flags = f->flags,
            .context_class = f->context_class,
            .level = f->level,
            .cache_result = f->cache_result,
        };
        memcpy(s, &d, sizeof d);
        size_t p = f->payload_size < r->payload_bytes ? f->payload_size : r->payload_bytes;
        memcpy(s + sizeof d, f->payload, p);
        if (p < r->payload_bytes)
            memset(s + sizeof d + p, 0, r->payload_bytes - p);
        head++;
    }
    if (lost)
        atomic_store_explicit(&r->lost, atomic_load_explicit(&r->lost, memory_order_relaxed) + lost,
                              memory_order_relaxed);
    if (head != r->head_local) {
        r->head_local = head;
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
}

/* The consumer: write every frame the producer has published. */
void rfx_recorder_drain(struct rfx_recorder *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (head == tail)
        return;
    uint32_t len = RFX_RECORD_FRAME_FIXED + r->payload_bytes;
    pthread_mutex_lock(&r->lock);
    for (; tail != head; tail++) {
        write_record(r, RFX_RECORD_FRAME, r->ring + (tail & r->mask) * r->slot_bytes, len);
        r->frames++;
        /* Free slots as they go, so a long drain does not hold the whole ring. */
        if ((tail & 255) == 255)
            atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    }
    if (fflush(r->f) != 0)
        note_error(r);
    pthread_mutex_unlock(&r->lock);
    atomic_store_explicit(&r->tail, tail, memory_order_release);
}

void rfx_recorder_publication(void *arg, const struct rfx_snapshot *s)
{
    struct rfx_recorder *r = arg;
    uint32_t n1 = (uint32_t)s->n1, n2 = (uint32_t)s->n2;
    uint32_t head[2] = {RFX_RECORD_PUBLICATION, RFX_RECORD_PUB_FIXED + (n1 + n2) * 32u};
    uint32_t counts[2] = {n1, n2};
    pthread_mutex_lock(&r->lock);
    if (r->finished) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    uLong crc = crc32(0, NULL, 0);
    write_bytes(r, head, sizeof head, &crc);
    write_bytes(r, &s->generation, 8, &crc);
    write_bytes(r, counts, sizeof counts, &crc);
    const struct rfx_cache_entry *t[2] = {s->l1, s->l2};
    uint64_t slots[2] = {(uint64_t)s->l1_mask + 1, (uint64_t)s->l2_mask + 1};
    for (int lv = 0; lv < 2; lv++)
        for (uint64_t i = 0; i < slots[lv]; i++)
            if (t[lv][i].key != 0)
                write_bytes(r, &t[lv][i], sizeof t[lv][i], &crc);
    uint32_t c = (uint32_t)crc;
    write_bytes(r, &c, 4, NULL);
    r->publications++;
    if (fflush(r->f) != 0)
        note_error(r);
    pthread_mutex_unlock(&r->lock);
}

static void *recorder_main(void *arg)
{
    struct rfx_recorder *r = arg;
    rfx_thread_name_self("record");
    rfx_thread_idle_self(); /* any critical thread that wakes preempts it */
    while (!atomic_load_explicit(&r->stop, memory_order_acquire)) {
        struct timespec ts = {0, DRAIN_EVERY_NS};
        nanosleep(&ts, NULL);
        rfx_recorder_drain(r);
    }
    return NULL;
}

int rfx_recorder_start(struct rfx_recorder *r, char *msg, size_t msglen)
{
    if (pthread_create(&r->thread, NULL, recorder_main, r) != 0) {
        snprintf(msg, msglen, "record: cannot create the recorder thread");
        return -EAGAIN;
    }
    r->thread_started = true;
    return 0;
}

int rfx_recorder_finish(struct rfx_recorder *r, int64_t end_ns, char *msg, size_t msglen)
{
    if (!r || r->finished)
        return r ? r->error : 0;
    atomic_store_explicit(&r->stop, 1, memory_order_release);
    if (r->thread_started)
        pthread_join(r->thread, NULL);
    r->thread_started = false;
    rfx_recorder_drain(r);
    pthread_mutex_lock(&r->lock);
    uint64_t end[4] = {r->frames, atomic_load_explicit(&r->lost, memory_order_relaxed),
                       r->publications, (uint64_t)end_ns};
    write_record(r, RFX_RECORD_END, end, sizeof end);
    if (fflush(r->f) != 0 || fsync(fileno(r->f)) != 0)
        note_error(r);
    if (fclose(r->f) != 0)
        note_error(r);
    r->f = NULL;
    r->finished = true;
    pthread_mutex_unlock(&r->lock);
    if (r->error)
        snprintf(msg, msglen, "record: writing failed: %s", strerror(-r->error));
    return r->error;
}

void rfx_recorder_stats(const struct rfx_recorder *r, struct rfx_recorder_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    struct rfx_recorder *m = (struct rfx_recorder *)r;
    pthread_mutex_lock(&m->lock);
    out->frames = r->frames;
    out->publications = r->publications;
    out->bytes = r->bytes;
    out->error = r->error;
    pthread_mutex_unlock(&m->lock);
    out->frames_lost = atomic_load_explicit(&m->lost, memory_order_relaxed);
    out->slots = r->slots;
}

void rfx_recorder_destroy(struct rfx_recorder *r)
{
    if (!r)
        return;
    if (r->thread_started) {
        atomic_store_explicit(&r->stop, 1, memory_order_release);
        pthread_join(r->thread, NULL);
    }
    if (r->f)
        fclose(r->f);
    pthread_mutex_destroy(&r->lock);
    free(r->ring);
    free(r);
}
